/* chat-template.c — recognize a chat template's family and render a
 * conversation the way that family's templates do (see chat-template.h). */
#include "chat-template.h"

#include <stdatomic.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "llmh-template.h"

#define CHATML_START "<|im_start|>"
#define CHATML_END "<|im_end|>"
#define LLAMA3_HEADER_START "<|start_header_id|>"
#define LLAMA3_HEADER_END "<|end_header_id|>"
#define LLAMA3_EOT "<|eot_id|>"
#define LLAMA3_BOS "<|begin_of_text|>"
#define LLAMA3_KNOWLEDGE_MARK "Cutting Knowledge Date"
#define LLAMA3_KNOWLEDGE_TEXT "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
#define LLAMA2_INST "[INST]"
#define LLAMA2_BOS "<s>"
#define LLAMA2_EOS "</s>"

/* ------------------------------------------------------------------------ */
/* Families                                                                   */
/* ------------------------------------------------------------------------ */
const char *llmh__chat_family_name(llmh_chat_family family) {
    switch (family) {
    case LLMH_CHAT_CHATML: return "chatml";
    case LLMH_CHAT_LLAMA3: return "llama3";
    case LLMH_CHAT_LLAMA2: return "llama2";
    default: return "unknown";
    }
}

llmh_status llmh__chat_family_parse(const char *name, llmh_chat_family *out) {
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = LLMH_CHAT_UNKNOWN;
    if (name && (strcmp(name, "chatml") == 0 || strcmp(name, "qwen") == 0)) *out = LLMH_CHAT_CHATML;
    else if (name && strcmp(name, "llama3") == 0) *out = LLMH_CHAT_LLAMA3;
    else if (name && strcmp(name, "llama2") == 0) *out = LLMH_CHAT_LLAMA2;
    if (*out != LLMH_CHAT_UNKNOWN) return LLMH_OK;
    llmh_set_error("chat template: unknown family '%s' (known: chatml (alias qwen), llama3, llama2)",
                   name ? name : "(null)");
    return LLMH_ERR_NOT_FOUND;
}

llmh_status llmh__chat_detect(const char *tmpl, llmh_chat_family *out) {
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = LLMH_CHAT_UNKNOWN;
    if (!tmpl || !*tmpl) {
        llmh_set_error("chat template: the model has no chat template (tokenizer.chat_template) "
                       "and none was given; set one or request a fallback family");
        return LLMH_ERR_UNSUPPORTED;
    }
    if (strstr(tmpl, CHATML_START)) *out = LLMH_CHAT_CHATML;
    else if (strstr(tmpl, LLAMA3_HEADER_START)) *out = LLMH_CHAT_LLAMA3;
    else if (strstr(tmpl, LLAMA2_INST)) *out = LLMH_CHAT_LLAMA2;
    if (*out != LLMH_CHAT_UNKNOWN) return LLMH_OK;
    llmh_set_error("chat template: unknown template family (looked for \"" CHATML_START
                   "\" (chatml), \"" LLAMA3_HEADER_START "\" (llama3) and \"" LLAMA2_INST
                   "\" (llama2)); a full Jinja engine is not available yet, so request a "
                   "fallback family");
    return LLMH_ERR_UNSUPPORTED;
}

const char *llmh__chat_stop_marker(llmh_chat_family family) {
    switch (family) {
    case LLMH_CHAT_CHATML: return CHATML_END;
    case LLMH_CHAT_LLAMA3: return LLAMA3_EOT;
    case LLMH_CHAT_LLAMA2: return LLAMA2_EOS;
    default: return NULL;
    }
}

const char *llmh__chat_bos_text(llmh_chat_family family) {
    switch (family) {
    case LLMH_CHAT_LLAMA3: return LLAMA3_BOS;
    case LLMH_CHAT_LLAMA2: return LLAMA2_BOS;
    default: return NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Template analysis                                                          */
/* ------------------------------------------------------------------------ */
/* A ChatML template's literal default system prompt: "<|im_start|>system",
 * a newline, then text up to "<|im_end|>" with no expression inside, either
 * in a string literal ('...' or "...", Python escapes) or as raw template
 * text. Returns a malloc'd unescaped copy, NULL when there is none, or sets
 * *oom. */
static char *chatml_default_system(const char *tmpl, int *oom) {
    static const char mark[] = CHATML_START "system";
    const size_t mark_len = sizeof mark - 1, end_len = sizeof CHATML_END - 1;
    *oom = 0;
    for (const char *p = strstr(tmpl, mark); p; p = strstr(p + 1, mark)) {
        /* A literal opened right before the marker, or raw template text. */
        const char quote = (p > tmpl && (p[-1] == '\'' || p[-1] == '"')) ? p[-1] : 0;
        const char *q = p + mark_len;
        if (quote && q[0] == '\\' && q[1] == 'n') q += 2; /* "\n" escaped in the literal */
        else if (q[0] == '\n') q += 1;
        else continue;
        const char *e = q;
        int ok = 0;
        while (*e) {
            if (strncmp(e, CHATML_END, end_len) == 0) {
                ok = 1;
                break;
            }
            if (quote && *e == quote) break; /* the literal ends: an expression follows */
            if (!quote && e[0] == '{' && (e[1] == '{' || e[1] == '%' || e[1] == '#')) break;
            if (quote && *e == '\\' && e[1]) e++;
            e++;
        }
        if (!ok || e == q) continue;
        char *out = malloc((size_t)(e - q) + 1);
        if (!out) {
            *oom = 1;
            return NULL;
        }
        size_t n = 0;
        for (const char *s = q; s < e; s++) {
            if (quote && *s == '\\' && s + 1 < e) {
                s++;
                switch (*s) {
                case 'n': out[n++] = '\n'; break;
                case 't': out[n++] = '\t'; break;
                case 'r': out[n++] = '\r'; break;
                default: out[n++] = *s; break; /* \\, \', \" */
                }
            } else {
                out[n++] = *s;
            }
        }
        out[n] = 0;
        return out;
    }
    return NULL;
}

llmh_status llmh__chat_template_init(llmh_chat_template *t, const char *tmpl,
                                     llmh_chat_family fallback) {
    if (!t) return LLMH_ERR_INVALID_ARG;
    memset(t, 0, sizeof *t);
    llmh_chat_family fam;
    llmh_status st = llmh__chat_detect(tmpl, &fam);
    if (st != LLMH_OK) {
        if (fallback == LLMH_CHAT_UNKNOWN) return st;
        if (!llmh__chat_stop_marker(fallback)) {
            llmh_set_error("chat template: invalid fallback family %d", (int)fallback);
            return LLMH_ERR_INVALID_ARG;
        }
        llmh_clear_error();
        t->family = fallback;
        return LLMH_OK;
    }
    t->family = fam;
    if (fam == LLMH_CHAT_CHATML) {
        int oom;
        t->default_system = chatml_default_system(tmpl, &oom);
        if (oom) {
            llmh_set_error("chat template: out of memory");
            return LLMH_ERR_NO_MEMORY;
        }
    } else if (fam == LLMH_CHAT_LLAMA3) {
        t->knowledge_date = strstr(tmpl, LLAMA3_KNOWLEDGE_MARK) != NULL;
    }
    return LLMH_OK;
}

void llmh__chat_template_clear(llmh_chat_template *t) {
    if (!t) return;
    free(t->default_system);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------ */
/* Python-style strip                                                         */
/* ------------------------------------------------------------------------ */
static int is_py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decode the UTF-8 code point at s[0..len); returns its byte length (0 for
 * an invalid or truncated sequence). */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    unsigned char b = s[0];
    size_t n;
    uint32_t c;
    if (b < 0x80) { *cp = b; return 1; }
    if ((b & 0xE0) == 0xC0) { n = 2; c = b & 0x1Fu; }
    else if ((b & 0xF0) == 0xE0) { n = 3; c = b & 0x0Fu; }
    else if ((b & 0xF8) == 0xF0) { n = 4; c = b & 0x07u; }
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_cp[n]) return 0; /* overlong */
    *cp = c;
    return n;
}

/* Narrow [*b, *e) of s to exclude leading and trailing white space. */
static void py_strip(const char *s, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    while (*b < *e) {
        size_t n = utf8_decode(u + *b, *e - *b, &cp);
        if (n == 0 || !is_py_space(cp)) break;
        *b += n;
    }
    while (*e > *b) {
        size_t start = *e - 1, k = 0;
        while (start > *b && k < 3 && (u[start] & 0xC0) == 0x80) {
            start--;
            k++;
        }
        size_t n = utf8_decode(u + start, *e - start, &cp);
        if (n == 0 || start + n != *e || !is_py_space(cp)) break;
        *e = start;
    }
}

/* ------------------------------------------------------------------------ */
/* Output buffer                                                              */
/* ------------------------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Append s stripped of surrounding white space. */
static void sb_strip(sbuf *b, const char *s) {
    size_t lo = 0, hi = strlen(s);
    py_strip(s, &lo, &hi);
    sb_put(b, s + lo, hi - lo);
}

/* ------------------------------------------------------------------------ */
/* Renderers                                                                  */
/* ------------------------------------------------------------------------ */
static int role_is(const llmh_chat_message *m, const char *r) { return strcmp(m->role, r) == 0; }

static llmh_status render_chatml(const llmh_chat_template *t, const llmh_chat_message *msgs,
                                 size_t n, const llmh_chat_render_params *p, sbuf *b) {
    if (t->default_system && (n == 0 || !role_is(&msgs[0], "system"))) {
        sb_str(b, CHATML_START "system\n");
        sb_str(b, t->default_system);
        sb_str(b, CHATML_END "\n");
    }
    for (size_t i = 0; i < n; i++) {
        sb_str(b, CHATML_START);
        sb_str(b, msgs[i].role);
        sb_str(b, "\n");
        sb_str(b, msgs[i].content);
        sb_str(b, CHATML_END "\n");
    }
    if (p->add_generation_prompt) sb_str(b, CHATML_START "assistant\n");
    return LLMH_OK;
}

static void llama3_message(sbuf *b, const char *role, const char *content) {
    sb_str(b, LLAMA3_HEADER_START);
    sb_str(b, role);
    sb_str(b, LLAMA3_HEADER_END "\n\n");
    sb_strip(b, content);
    sb_str(b, LLAMA3_EOT);
}

static llmh_status render_llama3(const llmh_chat_template *t, const llmh_chat_message *msgs,
                                 size_t n, const llmh_chat_render_params *p, sbuf *b) {
    size_t first = 0;
    if (t->knowledge_date) {
        /* Llama 3.1+: BOS always, then a system block that carries the
         * knowledge date and the (trimmed) system message, if any. */
        if (p->add_bos) sb_str(b, LLAMA3_BOS);
        sb_str(b, LLAMA3_HEADER_START "system" LLAMA3_HEADER_END "\n\n" LLAMA3_KNOWLEDGE_TEXT);
        if (n > 0 && role_is(&msgs[0], "system")) {
            sb_strip(b, msgs[0].content);
            first = 1;
        }
        sb_str(b, LLAMA3_EOT);
    } else if (p->add_bos && n > 0) {
        sb_str(b, LLAMA3_BOS); /* Llama 3: bos_token + the first message */
    }
    for (size_t i = first; i < n; i++) llama3_message(b, msgs[i].role, msgs[i].content);
    if (p->add_generation_prompt)
        sb_str(b, LLAMA3_HEADER_START "assistant" LLAMA3_HEADER_END "\n\n");
    return LLMH_OK;
}

static llmh_status render_llama2(const llmh_chat_message *msgs, size_t n,
                                 const llmh_chat_render_params *p, sbuf *b) {
    size_t first = 0;
    const char *system = NULL;
    if (n > 0 && role_is(&msgs[0], "system")) {
        system = msgs[0].content;
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        const size_t k = i - first; /* position after the system message */
        const int is_user = role_is(&msgs[i], "user");
        if (role_is(&msgs[i], "system")) {
            llmh_set_error("chat template (llama2): message %zu: a system message may only come "
                           "first", i);
            return LLMH_ERR_INVALID_ARG;
        }
        if (is_user != (k % 2 == 0)) {
            llmh_set_error("chat template (llama2): message %zu has role '%s': conversation roles "
                           "must alternate user/assistant/user/assistant/... after the optional "
                           "system message", i, msgs[i].role);
            return LLMH_ERR_INVALID_ARG;
        }
        if (is_user) {
            if (k > 0 || p->add_bos) sb_str(b, LLAMA2_BOS);
            sb_str(b, "[INST] ");
            if (k == 0 && system) {
                /* strip() applies to the whole "<<SYS>>...content" string */
                sbuf tmp = {0};
                sb_str(&tmp, "<<SYS>>\n");
                sb_str(&tmp, system);
                sb_str(&tmp, "\n<</SYS>>\n\n");
                sb_str(&tmp, msgs[i].content);
                if (tmp.oom) {
                    free(tmp.p);
                    b->oom = 1;
                    return LLMH_OK;
                }
                sb_strip(b, tmp.p);
                free(tmp.p);
            } else {
                sb_strip(b, msgs[i].content);
            }
            sb_str(b, " [/INST]");
        } else {
            sb_str(b, " ");
            sb_strip(b, msgs[i].content);
            sb_str(b, " " LLAMA2_EOS);
        }
    }
    /* Llama-2's template has no generation prompt: the text already ends
     * with " [/INST]" after a user turn. */
    return LLMH_OK;
}

llmh_status llmh__chat_render(const llmh_chat_template *t, const llmh_chat_message *msgs,
                              size_t n, const llmh_chat_render_params *params, char **out,
                              size_t *out_len) {
    static const llmh_chat_render_params no_params = {false, false};
    const llmh_chat_render_params *p = params ? params : &no_params;
    if (!t || !out || (n > 0 && !msgs)) {
        llmh_set_error("chat template: render() needs a template, messages and an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (out_len) *out_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            llmh_set_error("chat template: message %zu has no %s", i,
                           msgs[i].role ? "content" : "role");
            return LLMH_ERR_INVALID_ARG;
        }
        if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") &&
            !role_is(&msgs[i], "assistant")) {
            llmh_set_error("chat template (%s): message %zu has role '%s'; the roles are system, "
                           "user and assistant", llmh__chat_family_name(t->family), i,
                           msgs[i].role);
            return LLMH_ERR_INVALID_ARG;
        }
    }
    sbuf b = {0};
    llmh_status st;
    switch (t->family) {
    case LLMH_CHAT_CHATML: st = render_chatml(t, msgs, n, p, &b); break;
    case LLMH_CHAT_LLAMA3: st = render_llama3(t, msgs, n, p, &b); break;
    case LLMH_CHAT_LLAMA2: st = render_llama2(msgs, n, p, &b); break;
    default:
        llmh_set_error("chat template: cannot render family '%s'",
                       llmh__chat_family_name(t->family));
        return LLMH_ERR_INVALID_ARG;
    }
    if (st == LLMH_OK && b.oom) {
        llmh_set_error("chat template: out of memory rendering %zu messages", n);
        st = LLMH_ERR_NO_MEMORY;
    }
    if (st != LLMH_OK) {
        free(b.p);
        return st;
    }
    if (!b.p) { /* nothing rendered: an empty string */
        b.p = malloc(1);
        if (!b.p) {
            llmh_set_error("chat template: out of memory");
            return LLMH_ERR_NO_MEMORY;
        }
        b.p[0] = 0;
    }
    *out = b.p;
    if (out_len) *out_len = b.len;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Jinja rendering of a template with OpenAI-style messages                  */
/* ------------------------------------------------------------------------ */
/* Replace the value of obj[key] (which must exist) by `v`. */
static bool replace_item(cJSON *obj, const char *key, cJSON *v) {
    if (!v) return false;
    if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* The normalizations llmh-template.h promises: text parts joined into one
 * content string; function.arguments strings holding a JSON object parsed.
 * `msgs` is owned (a copy of the caller's). */
static llmh_status normalize_messages(cJSON *msgs) {
    size_t i = 0;
    for (cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            llmh_set_error("chat messages: message %zu is not a JSON object", i);
            return LLMH_ERR_INVALID_ARG;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) {
            llmh_set_error("chat messages: message %zu has no string \"role\"", i);
            return LLMH_ERR_INVALID_ARG;
        }
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(content)) {
            bool all_text = true;
            size_t len = 0;
            for (const cJSON *part = content->child; part && all_text; part = part->next) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                all_text = cJSON_IsString(type) && !strcmp(type->valuestring, "text") &&
                           cJSON_IsString(text);
                if (all_text) len += strlen(text->valuestring);
            }
            if (all_text) {
                char *joined = malloc(len + 1);
                if (!joined) {
                    llmh_set_error("chat messages: out of memory");
                    return LLMH_ERR_NO_MEMORY;
                }
                size_t k = 0;
                for (const cJSON *part = content->child; part; part = part->next) {
                    const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
                    size_t l = strlen(t);
                    memcpy(joined + k, t, l);
                    k += l;
                }
                joined[k] = 0;
                bool ok = replace_item(m, "content", cJSON_CreateString(joined));
                free(joined);
                if (!ok) {
                    llmh_set_error("chat messages: out of memory");
                    return LLMH_ERR_NO_MEMORY;
                }
            }
        }
        cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (cJSON_IsNull(calls) || (cJSON_IsArray(calls) && !calls->child)) {
            /* "tool_calls": null / [] means none: drop the key, since some
             * templates test `'tool_calls' in message` (Llama 3.x) */
            cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_calls");
            calls = NULL;
        }
        for (cJSON *c = cJSON_IsArray(calls) ? calls->child : NULL; c; c = c->next) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
            cJSON *args = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
            if (!cJSON_IsString(args)) continue;
            cJSON *parsed = cJSON_Parse(args->valuestring);
            if (!cJSON_IsObject(parsed)) {
                cJSON_Delete(parsed);
                continue; /* not a JSON object: the template gets the string */
            }
            if (!replace_item(fn, "arguments", parsed)) {
                llmh_set_error("chat messages: out of memory");
                return LLMH_ERR_NO_MEMORY;
            }
        }
    }
    return LLMH_OK;
}

/* Replace every message's "content": null by ""; false when there was none. */
static bool null_contents_to_empty(cJSON *msgs) {
    bool any = false;
    for (cJSON *m = msgs->child; m; m = m->next) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsNull(c) && replace_item(m, "content", cJSON_CreateString(""))) any = true;
    }
    return any;
}

static bool add_ref(cJSON *vars, const char *key, const cJSON *v) {
    cJSON *item = cJSON_IsArray(v) ? cJSON_CreateArrayReference(v->child)
                : cJSON_IsObject(v) ? cJSON_CreateObjectReference(v->child)
                                    : cJSON_Duplicate(v, 1);
    return item && cJSON_AddItemToObject(vars, key, item);
}

llmh_status llmh__chat_render_jinja(const char *tmpl, const cJSON *messages, const cJSON *tools,
                                    const cJSON *kwargs, bool add_generation_prompt,
                                    const char *bos_token, const char *eos_token, bool strip_bos,
                                    const llmh_jinja_opts *opts, bool *parse_failed, char **out) {
    if (parse_failed) *parse_failed = false;
    if (!out) {
        llmh_set_error("chat template: out is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!tmpl || !*tmpl) {
        llmh_set_error("chat template: the model has no chat template");
        return LLMH_ERR_UNSUPPORTED;
    }
    if (!cJSON_IsArray(messages)) {
        llmh_set_error("chat template: messages must be a JSON array");
        return LLMH_ERR_INVALID_ARG;
    }
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools)) {
        llmh_set_error("chat template: tools must be a JSON array");
        return LLMH_ERR_INVALID_ARG;
    }
    if (kwargs && !cJSON_IsObject(kwargs)) {
        llmh_set_error("chat template: extra template variables must be a JSON object");
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_jinja *t = NULL;
    llmh_status st = llmh__jinja_parse(tmpl, strlen(tmpl), &t);
    if (st != LLMH_OK) {
        if (parse_failed && st == LLMH_ERR_FORMAT) *parse_failed = true;
        return st;
    }
    cJSON *vars = cJSON_CreateObject();
    static const char *const reserved[] = {"messages", "tools", "add_generation_prompt",
                                           "bos_token", "eos_token", NULL};
    bool ok = vars != NULL;
    for (const cJSON *k = kwargs ? kwargs->child : NULL; ok && k; k = k->next) {
        bool skip = false;
        for (size_t i = 0; reserved[i]; i++) skip = skip || !strcmp(k->string, reserved[i]);
        if (!skip) ok = add_ref(vars, k->string, k);
    }
    ok = ok && add_ref(vars, "messages", messages);
    if (ok && cJSON_IsArray(tools)) ok = add_ref(vars, "tools", tools);
    ok = ok && cJSON_AddBoolToObject(vars, "add_generation_prompt", add_generation_prompt);
    ok = ok && cJSON_AddStringToObject(vars, "bos_token", bos_token ? bos_token : "");
    ok = ok && cJSON_AddStringToObject(vars, "eos_token", eos_token ? eos_token : "");
    if (!ok) {
        cJSON_Delete(vars);
        llmh__jinja_free(t);
        llmh_set_error("chat template: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    size_t len = 0;
    st = llmh__jinja_render(t, vars, opts, out, &len);
    cJSON_Delete(vars);
    llmh__jinja_free(t);
    if (st != LLMH_OK) return st;
    size_t bl = bos_token ? strlen(bos_token) : 0;
    if (strip_bos && bl && len >= bl && !memcmp(*out, bos_token, bl))
        memmove(*out, *out + bl, len - bl + 1);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API (llmh.h, llmh-template.h): render with a model's template      */
/* ------------------------------------------------------------------------ */
static atomic_int g_warned_fallback;

static void warn_fallback(const char *why) {
    if (atomic_exchange(&g_warned_fallback, 1)) return;
    llmh_log(LLMH_LOG_WARN, "core",
             "the model's chat template cannot be parsed (%s); using the built-in family renderer", why);
}

typedef struct model_tokens {
    const char *bos, *eos; /* static storage or the tokenizer's */
    bool tokenizer_adds_bos;
    char bos_buf[128], eos_buf[128];
} model_tokens;

static void token_text(const llmh_tokenizer_iface *ti, const llmh_tokenizer *tok,
                       llmh_special_token which, char *buf, size_t cap, const char **out) {
    *out = "";
    if (!ti || !tok || !ti->special || !ti->token_text) return;
    llmh_token id = ti->special(tok, which);
    if (id < 0) return;
    size_t len = 0;
    const char *s = ti->token_text(tok, id, &len);
    if (!s || len >= cap) return;
    memcpy(buf, s, len);
    buf[len] = 0;
    *out = buf;
}

static void get_model_tokens(const llmh_model *model, model_tokens *mt) {
    const llmh_tokenizer *tok = NULL;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(model, &tok);
    mt->tokenizer_adds_bos = ti && tok && ti->add_bos_default && ti->add_bos_default(tok);
    token_text(ti, tok, LLMH_SPECIAL_BOS, mt->bos_buf, sizeof mt->bos_buf, &mt->bos);
    token_text(ti, tok, LLMH_SPECIAL_EOS, mt->eos_buf, sizeof mt->eos_buf, &mt->eos);
}

/* The family renderer on `n` messages (roles system/user/assistant). */
static llmh_status render_family(const char *tmpl, const llmh_chat_message *msgs, size_t n,
                                 bool add_generation_prompt, bool add_bos, char **out) {
    llmh_chat_template t;
    llmh_status st = llmh__chat_template_init(&t, tmpl, LLMH_CHAT_UNKNOWN);
    if (st != LLMH_OK) return st;
    llmh_chat_render_params p = {add_generation_prompt, add_bos};
    st = llmh__chat_render(&t, msgs, n, &p, out, NULL);
    llmh__chat_template_clear(&t);
    return st;
}

llmh_status llmh_chat_render(const llmh_model *model, const llmh_chat_message *msgs, size_t n,
                             bool add_generation_prompt, char **out) {
    if (!out) {
        llmh_set_error("llmh_chat_render: out is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!model) {
        llmh_set_error("llmh_chat_render: model is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    if (n && !msgs) {
        llmh_set_error("llmh_chat_render: messages are NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    const char *tmpl = llmh_model_chat_template(model);
    if (!tmpl || !*tmpl) {
        llmh_set_error("chat template: the model has no chat template");
        return LLMH_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            llmh_set_error("chat template: message %zu has no %s", i,
                           msgs[i].role ? "content" : "role");
            return LLMH_ERR_INVALID_ARG;
        }
        if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") &&
            !role_is(&msgs[i], "assistant")) {
            llmh_set_error("chat template: message %zu has role '%s'; the roles are system, user "
                           "and assistant (llmh_chat_render_json takes any role)", i, msgs[i].role);
            return LLMH_ERR_INVALID_ARG;
        }
    }
    model_tokens mt;
    get_model_tokens(model, &mt);
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        ok = m && cJSON_AddItemToArray(arr, m) && cJSON_AddStringToObject(m, "role", msgs[i].role) &&
             cJSON_AddStringToObject(m, "content", msgs[i].content);
    }
    if (!ok) {
        cJSON_Delete(arr);
        llmh_set_error("llmh_chat_render: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    bool parse_failed = false;
    llmh_status st = llmh__chat_render_jinja(tmpl, arr, NULL, NULL, add_generation_prompt, mt.bos,
                                             mt.eos, mt.tokenizer_adds_bos, NULL, &parse_failed, out);
    cJSON_Delete(arr);
    if (st == LLMH_OK || !parse_failed) return st;
    warn_fallback(llmh_last_error());
    return render_family(tmpl, msgs, n, add_generation_prompt, !mt.tokenizer_adds_bos, out);
}

/* The family fallback for JSON messages, when they fit it. */
static llmh_status render_json_family(const char *tmpl, const cJSON *msgs, const cJSON *tools,
                                      bool add_generation_prompt, bool add_bos, char **out) {
    size_t n = (size_t)cJSON_GetArraySize(msgs);
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0) return LLMH_ERR_UNSUPPORTED;
    llmh_chat_message *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return LLMH_ERR_NO_MEMORY;
    size_t i = 0;
    for (const cJSON *x = msgs->child; x; x = x->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content) ||
            cJSON_GetObjectItemCaseSensitive(x, "tool_calls")) {
            free(m);
            return LLMH_ERR_UNSUPPORTED;
        }
        m[i].role = role->valuestring;
        m[i].content = content->valuestring;
    }
    llmh_status st = render_family(tmpl, m, n, add_generation_prompt, add_bos, out);
    free(m);
    return st;
}

llmh_status llmh_chat_render_json_kw(const llmh_model *m, const char *messages_json,
                                     const char *tools_json, const char *kwargs_json,
                                     int add_generation_prompt, char **out) {
    if (!out) {
        llmh_set_error("llmh_chat_render_json: out is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!m || !messages_json) {
        llmh_set_error("llmh_chat_render_json: %s is NULL", m ? "messages_json" : "model");
        return LLMH_ERR_INVALID_ARG;
    }
    const char *tmpl = llmh_model_chat_template(m);
    if (!tmpl || !*tmpl) {
        llmh_set_error("chat template: the model has no chat template");
        return LLMH_ERR_UNSUPPORTED;
    }
    const char *what[3] = {"messages", "tools", "kwargs"};
    const char *text[3] = {messages_json, tools_json, kwargs_json};
    cJSON *j[3] = {NULL, NULL, NULL};
    llmh_status st = LLMH_OK;
    for (int k = 0; k < 3 && st == LLMH_OK; k++) {
        if (!text[k]) continue;
        const char *end = NULL;
        j[k] = cJSON_ParseWithOpts(text[k], &end, 1);
        if (!j[k]) {
            llmh_set_error("llmh_chat_render_json: %s is not valid JSON (near byte %zu)", what[k],
                           end && end >= text[k] ? (size_t)(end - text[k]) : (size_t)0);
            st = LLMH_ERR_INVALID_ARG;
        } else if (k == 0 && !cJSON_IsArray(j[k])) {
            llmh_set_error("llmh_chat_render_json: messages must be a JSON array");
            st = LLMH_ERR_INVALID_ARG;
        } else if (k == 1 && !cJSON_IsArray(j[k]) && !cJSON_IsNull(j[k])) {
            llmh_set_error("llmh_chat_render_json: tools must be a JSON array or null");
            st = LLMH_ERR_INVALID_ARG;
        } else if (k == 2 && !cJSON_IsObject(j[k])) {
            llmh_set_error("llmh_chat_render_json: kwargs must be a JSON object");
            st = LLMH_ERR_INVALID_ARG;
        }
    }
    if (st == LLMH_OK) st = normalize_messages(j[0]);
    if (st == LLMH_OK) {
        model_tokens mt;
        get_model_tokens(m, &mt);
        bool parse_failed = false;
        st = llmh__chat_render_jinja(tmpl, j[0], j[1], j[2], add_generation_prompt != 0, mt.bos,
                                     mt.eos, mt.tokenizer_adds_bos, NULL, &parse_failed, out);
        if (st == LLMH_ERR_INVALID_ARG && !parse_failed && null_contents_to_empty(j[0])) {
            /* OpenAI clients send "content": null with tool calls; templates
             * differ on what they expect (DeepSeek tests `is not none`,
             * Qwen3 runs `'</think>' in content`), so a render that failed
             * with nulls is tried once more with empty strings */
            char first[512];
            snprintf(first, sizeof first, "%s", llmh_last_error());
            st = llmh__chat_render_jinja(tmpl, j[0], j[1], j[2], add_generation_prompt != 0, mt.bos,
                                         mt.eos, mt.tokenizer_adds_bos, NULL, &parse_failed, out);
            if (st == LLMH_ERR_INVALID_ARG) llmh_set_error("%s", first);
        }
        if (st != LLMH_OK && parse_failed) {
            char why[512];
            snprintf(why, sizeof why, "%s", llmh_last_error());
            llmh_status fb = render_json_family(tmpl, j[0], j[1], add_generation_prompt != 0,
                                                !mt.tokenizer_adds_bos, out);
            if (fb == LLMH_OK) {
                warn_fallback(why);
                st = LLMH_OK;
            } else {
                llmh_set_error("%s", why); /* the parse error says more than the fallback's */
            }
        }
    }
    for (int k = 0; k < 3; k++) cJSON_Delete(j[k]);
    return st;
}

llmh_status llmh_chat_render_json(const llmh_model *m, const char *messages_json,
                                  const char *tools_json, int add_generation_prompt, char **out) {
    return llmh_chat_render_json_kw(m, messages_json, tools_json, NULL, add_generation_prompt, out);
}

const char *llmh_chat_end_of_turn(const llmh_model *model) {
    llmh_chat_family fam;
    const char *tmpl = model ? llmh_model_chat_template(model) : NULL;
    if (!tmpl || llmh__chat_detect(tmpl, &fam) != LLMH_OK) {
        llmh_clear_error(); /* a query, not a failure */
        return NULL;
    }
    return llmh__chat_stop_marker(fam);
}

/* serve-request.c — a request body (untrusted JSON) becomes a srv_request:
 * every field's type and range checked, the chat template rendered, the
 * prompt tokenized and measured against the context. Errors carry the HTTP
 * status and an OpenAI-style message naming the field. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmh-template.h"
#include "serve.h"

#define SRV_MAX_STOP 16
#define SRV_MAX_ADAPTERS 64
#define SRV_MAX_MESSAGES 100000

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *srv_strdup(const char *s) {
    return s ? strdup(s) : NULL;
}

char *srv_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : out;
}

srv_request *srv_request_new(void) {
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->refs = 1;
    atomic_init(&r->cancelled, false);
    return r;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void srv_request_release(srv_request *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->model);
    free(r->prompt);
    free_strv(r->stop, r->n_stop);
    free_strv(r->ad_names, r->n_ad);
    free(r->ad_scales);
    free_strv(r->ad_ns, r->n_ns);
    free(r->ad_key);
    free(r->text);
    free(r->ids);
    free(r->err_msg);
    free(r);
}

cJSON *srv_parse_object(const char *body, size_t len, char **msg) {
    if (!body || len == 0) {
        *msg = srv_printf("the request body is empty; send a JSON object");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        *msg = srv_printf("the request body is not valid JSON (error near byte %zu)", off);
        return NULL;
    }
    /* nothing but whitespace may follow the value */
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(root);
            *msg = srv_printf("the request body has data after the JSON value (byte %zu)", (size_t)(p - body));
            return NULL;
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        *msg = srv_printf("the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---- parse context ------------------------------------------------------ */
typedef struct pctx {
    int status;
    const char *type;
    char *msg;
} pctx;

static bool fail(pctx *p, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static bool fail(pctx *p, int status, const char *fmt, ...) {
    if (p->msg) return false;
    va_list ap;
    va_start(ap, fmt);
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0) m = NULL;
    va_end(ap);
    p->status = status;
    p->type = srv_error_type(status);
    p->msg = m ? m : srv_strdup("invalid request");
    return false;
}

/* Present and not null. */
static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool get_number(pctx *p, const cJSON *o, const char *key, double lo, double hi, bool *has, double *out) {
    const cJSON *v = field(o, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v)) return fail(p, 400, "'%s' must be a number", key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi) return fail(p, 400, "'%s' is %g; it must be between %g and %g", key, d, lo, hi);
    *has = true;
    *out = d;
    return true;
}

static bool get_int(pctx *p, const cJSON *o, const char *key, double lo, double hi, bool *has, int64_t *out) {
    const cJSON *v = field(o, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return fail(p, 400, "'%s' must be an integer", key);
    double d = v->valuedouble;
    if (d < lo || d > hi) return fail(p, 400, "'%s' is %.0f; it must be between %.0f and %.0f", key, d, lo, hi);
    *has = true;
    *out = (int64_t)d;
    return true;
}

static bool get_bool(pctx *p, const cJSON *o, const char *key, bool *out) {
    const cJSON *v = field(o, key);
    if (!v) return true;
    if (!cJSON_IsBool(v)) return fail(p, 400, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return true;
}

/* ---- text buffer -------------------------------------------------------- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* ---- fields ------------------------------------------------------------- */
static bool parse_stop(pctx *p, const cJSON *o, srv_server *s, srv_request *r, bool chat) {
    const cJSON *v = field(o, "stop");
    size_t n_user = 0;
    if (v) {
        if (cJSON_IsString(v)) n_user = 1;
        else if (cJSON_IsArray(v)) {
            int n = cJSON_GetArraySize(v);
            if (n > SRV_MAX_STOP) return fail(p, 400, "'stop' has %d strings; at most %d are allowed", n, SRV_MAX_STOP);
            const cJSON *e;
            cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) return fail(p, 400, "'stop' must be a string or an array of strings");
            n_user = (size_t)n;
        } else {
            return fail(p, 400, "'stop' must be a string or an array of strings");
        }
    }
    const char *eot = chat ? llmh_chat_end_of_turn(s->model) : NULL;
    size_t total = n_user + s->n_default_stop + (eot ? 1 : 0);
    r->stop = calloc(total ? total : 1, sizeof *r->stop);
    if (!r->stop) return fail(p, 500, "out of memory");
    if (v && cJSON_IsString(v)) {
        if (v->valuestring[0]) r->stop[r->n_stop++] = srv_strdup(v->valuestring);
    } else if (v) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (e->valuestring[0]) r->stop[r->n_stop++] = srv_strdup(e->valuestring);
    }
    for (size_t i = 0; i < s->n_default_stop; i++) r->stop[r->n_stop++] = srv_strdup(s->default_stop[i]);
    if (eot) r->stop[r->n_stop++] = srv_strdup(eot);
    for (size_t i = 0; i < r->n_stop; i++)
        if (!r->stop[i]) return fail(p, 500, "out of memory");
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* `model` naming an adapter (vLLM style) and/or `adapters: [{name, scale} |
 * {namespace}]`. */
static bool parse_adapters(pctx *p, const cJSON *o, srv_server *s, srv_request *r) {
    const cJSON *m = field(o, "model");
    const char *model_adapter = NULL;
    if (m) {
        if (!cJSON_IsString(m)) return fail(p, 400, "'model' must be a string");
        if (strcmp(m->valuestring, s->model_id) != 0) {
            if (!srv_adapter_exists(s, m->valuestring)) {
                p->type = "invalid_request_error";
                return fail(p, 404, "The model '%s' does not exist: this server has '%s' and its loaded adapters (GET /v1/models)",
                            m->valuestring, s->model_id);
            }
            model_adapter = m->valuestring;
        }
    }
    r->model = srv_strdup(m ? m->valuestring : s->model_id);
    if (!r->model) return fail(p, 500, "out of memory");

    const cJSON *a = field(o, "adapters");
    int n = 0;
    if (a) {
        if (!cJSON_IsArray(a)) return fail(p, 400, "'adapters' must be an array of {\"name\", \"scale\"} objects");
        n = cJSON_GetArraySize(a);
        if (n > SRV_MAX_ADAPTERS) return fail(p, 400, "'adapters' has %d entries; at most %d are allowed", n, SRV_MAX_ADAPTERS);
    }
    size_t cap = (size_t)n + 1;
    r->ad_names = calloc(cap, sizeof *r->ad_names);
    r->ad_scales = calloc(cap, sizeof *r->ad_scales);
    r->ad_ns = calloc(cap, sizeof *r->ad_ns);
    if (!r->ad_names || !r->ad_scales || !r->ad_ns) return fail(p, 500, "out of memory");
    if (model_adapter) {
        r->ad_names[r->n_ad] = srv_strdup(model_adapter);
        r->ad_scales[r->n_ad++] = 1.0f;
    }
    int idx = 0;
    const cJSON *e;
    if (a) cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsObject(e)) return fail(p, 400, "'adapters[%d]' must be an object {\"name\", \"scale\"}", idx);
        const cJSON *nm = field(e, "name"), *ns = field(e, "namespace"), *sc = field(e, "scale");
        if (nm && !cJSON_IsString(nm)) return fail(p, 400, "'adapters[%d].name' must be a string", idx);
        if (ns && !cJSON_IsString(ns)) return fail(p, 400, "'adapters[%d].namespace' must be a string", idx);
        if (!nm && !ns) return fail(p, 400, "'adapters[%d]' needs a 'name' (or a 'namespace')", idx);
        if (nm && ns) return fail(p, 400, "'adapters[%d]' has both 'name' and 'namespace'; give one", idx);
        if (sc && (!cJSON_IsNumber(sc) || !isfinite(sc->valuedouble) || fabs(sc->valuedouble) > 1000))
            return fail(p, 400, "'adapters[%d].scale' must be a number between -1000 and 1000", idx);
        if (sc && ns) return fail(p, 400, "'adapters[%d]': a namespace takes no 'scale' (the store scales apply)", idx);
        if (nm) {
            if (!srv_adapter_exists(s, nm->valuestring))
                return fail(p, 404, "adapter '%s' (adapters[%d]) is not loaded (GET /v1/adapters lists them)",
                            nm->valuestring, idx);
            for (size_t k = 0; k < r->n_ad; k++)
                if (!strcmp(r->ad_names[k], nm->valuestring))
                    return fail(p, 400, "adapter '%s' is named twice (adapters[%d])", nm->valuestring, idx);
            r->ad_names[r->n_ad] = srv_strdup(nm->valuestring);
            r->ad_scales[r->n_ad++] = sc ? (float)sc->valuedouble : 1.0f;
            if (!r->ad_names[r->n_ad - 1]) return fail(p, 500, "out of memory");
        } else {
            r->ad_ns[r->n_ns] = srv_strdup(ns->valuestring);
            if (!r->ad_ns[r->n_ns++]) return fail(p, 500, "out of memory");
        }
        idx++;
    }
    /* canonical key of the selection: the slots' prefix cache is only valid
     * for the same adapters at the same scales */
    sbuf k = {0};
    sb_add(&k, "", 0);
    for (size_t i = 0; i < r->n_ad; i++) {
        char sc[64];
        snprintf(sc, sizeof sc, "=%.9g;", (double)r->ad_scales[i]);
        sb_add(&k, "n:", 2);
        sb_add(&k, r->ad_names[i], strlen(r->ad_names[i]));
        sb_add(&k, sc, strlen(sc));
    }
    if (r->n_ns) {
        char **sorted = malloc(r->n_ns * sizeof *sorted);
        if (!sorted) { free(k.p); return fail(p, 500, "out of memory"); }
        memcpy(sorted, r->ad_ns, r->n_ns * sizeof *sorted);
        qsort(sorted, r->n_ns, sizeof *sorted, cmp_str);
        for (size_t i = 0; i < r->n_ns; i++) {
            sb_add(&k, "ns:", 3);
            sb_add(&k, sorted[i], strlen(sorted[i]));
            sb_add(&k, ";", 1);
        }
        free(sorted);
    }
    if (k.oom) { free(k.p); return fail(p, 500, "out of memory"); }
    r->ad_key = k.p;
    return true;
}

/* A message's content: a string, null, or [{type:"text", text}] parts. */
static bool check_content(pctx *p, const cJSON *msg, int idx) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!c || cJSON_IsNull(c) || cJSON_IsString(c)) return true;
    if (!cJSON_IsArray(c))
        return fail(p, 400, "'messages[%d].content' must be a string or an array of content parts", idx);
    int k = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(ty))
            return fail(p, 400, "'messages[%d].content[%d]' must be an object with a 'type'", idx, k);
        if (strcmp(ty->valuestring, "text") != 0)
            return fail(p, 400, "'messages[%d].content[%d]': content type '%s' is not supported (text only)", idx, k,
                        ty->valuestring);
        if (!cJSON_IsString(tx)) return fail(p, 400, "'messages[%d].content[%d].text' must be a string", idx, k);
        k++;
    }
    return true;
}

/* messages (+ tools, chat_template_kwargs) -> prompt text through the
 * model's own chat template (the Jinja engine, llmh-template.h). */
static char *render_chat(pctx *p, srv_server *s, const cJSON *o) {
    const cJSON *msgs = field(o, "messages");
    if (!msgs) return fail(p, 400, "'messages' is required"), NULL;
    if (!cJSON_IsArray(msgs)) return fail(p, 400, "'messages' must be an array of {\"role\", \"content\"} objects"), NULL;
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return fail(p, 400, "'messages' is empty"), NULL;
    if (n > SRV_MAX_MESSAGES) return fail(p, 400, "'messages' has %d entries; at most %d are allowed", n, SRV_MAX_MESSAGES), NULL;
    const cJSON *tools = field(o, "tools");
    if (tools) {
        if (!cJSON_IsArray(tools)) return fail(p, 400, "'tools' must be an array of tool definitions"), NULL;
        int k = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            if (!cJSON_IsObject(t)) return fail(p, 400, "'tools[%d]' must be an object", k), NULL;
            k++;
        }
        if (k == 0) tools = NULL;
    }
    const cJSON *kw = field(o, "chat_template_kwargs");
    if (kw && !cJSON_IsObject(kw)) return fail(p, 400, "'chat_template_kwargs' must be an object"), NULL;

    cJSON *norm = cJSON_CreateArray();
    if (!norm) return fail(p, 500, "out of memory"), NULL;
    bool has_system = false;
    int idx = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m)) { fail(p, 400, "'messages[%d]' must be an object", idx); goto bad; }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) { fail(p, 400, "'messages[%d].role' must be a string", idx); goto bad; }
        const char *rs = role->valuestring;
        bool developer = !strcmp(rs, "developer");
        if (!developer && strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool")) {
            fail(p, 400, "'messages[%d].role' is '%s'; expected system, developer, user, assistant or tool", idx, rs);
            goto bad;
        }
        if (!check_content(p, m, idx)) goto bad;
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (tc && !cJSON_IsNull(tc) && !cJSON_IsArray(tc)) {
            fail(p, 400, "'messages[%d].tool_calls' must be an array", idx);
            goto bad;
        }
        cJSON *copy = cJSON_Duplicate(m, 1);
        if (!copy) { fail(p, 500, "out of memory"); goto bad; }
        if (developer) cJSON_ReplaceItemInObjectCaseSensitive(copy, "role", cJSON_CreateString("system"));
        if (developer || !strcmp(rs, "system")) has_system = true;
        cJSON_AddItemToArray(norm, copy);
        idx++;
    }
    if (!has_system && s->system_prompt) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", s->system_prompt);
        cJSON_InsertItemInArray(norm, 0, sys);
    }
    char *mj = cJSON_PrintUnformatted(norm);
    char *tj = tools ? cJSON_PrintUnformatted(tools) : NULL;
    char *kj = kw ? cJSON_PrintUnformatted(kw) : NULL;
    cJSON_Delete(norm);
    char *out = NULL;
    if (!mj || (tools && !tj) || (kw && !kj)) {
        fail(p, 500, "out of memory");
    } else {
        llmh_status st = llmh_chat_render_json_kw(s->model, mj, tj, kj, 1, &out);
        if (st == LLMH_ERR_UNSUPPORTED) {
            fail(p, 400, "this model has no chat template; use /v1/completions");
        } else if (st == LLMH_ERR_NO_MEMORY) {
            fail(p, 500, "out of memory rendering the chat template");
        } else if (st) {
            fail(p, 400, "the chat template refused these messages: %s", llmh_last_error());
        }
        if (st) {
            free(out);
            out = NULL;
        }
    }
    free(mj);
    free(tj);
    free(kj);
    return out;
bad:
    cJSON_Delete(norm);
    return NULL;
}

static bool tokenize_text(pctx *p, srv_server *s, const char *text, size_t len, srv_request *r) {
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(s->model, &tk);
    uint32_t flags = LLMH_ENCODE_PARSE_SPECIAL | (ti->add_bos_default(tk) ? LLMH_ENCODE_ADD_BOS : 0);
    llmh_status st = llmh_tokenize(s->model, text, len, flags, &r->prompt, &r->n_prompt);
    if (st) return fail(p, 400, "cannot tokenize the prompt: %s", llmh_last_error());
    return true;
}

static bool parse_prompt(pctx *p, srv_server *s, const cJSON *o, srv_request *r) {
    const cJSON *pr = field(o, "prompt");
    if (!pr) return fail(p, 400, "'prompt' is required");
    if (cJSON_IsArray(pr)) {
        int n = cJSON_GetArraySize(pr);
        if (n == 0) return fail(p, 400, "'prompt' is empty");
        const cJSON *first = cJSON_GetArrayItem(pr, 0);
        if (cJSON_IsString(first)) {
            if (n != 1) return fail(p, 400, "'prompt' has %d strings; this server takes one prompt per request", n);
            pr = first;
        } else {
            /* token ids */
            const llmh_model_desc *d = llmh_model_describe(s->model);
            r->prompt = malloc((size_t)n * sizeof *r->prompt);
            if (!r->prompt) return fail(p, 500, "out of memory");
            const cJSON *e;
            cJSON_ArrayForEach(e, pr) {
                if (!cJSON_IsNumber(e) || floor(e->valuedouble) != e->valuedouble || e->valuedouble < 0 ||
                    e->valuedouble >= (double)d->n_vocab)
                    return fail(p, 400, "'prompt[%zu]' must be a token id between 0 and %lld (or give one string)",
                                r->n_prompt, (long long)d->n_vocab - 1);
                r->prompt[r->n_prompt++] = (llmh_token)e->valuedouble;
            }
            return true;
        }
    }
    if (!cJSON_IsString(pr)) return fail(p, 400, "'prompt' must be a string, an array of one string, or token ids");
    return tokenize_text(p, s, pr->valuestring, strlen(pr->valuestring), r);
}

srv_request *srv_request_parse(srv_server *s, srv_kind kind, const char *body, size_t len, int *status,
                               const char **type, char **msg) {
    pctx p = {0};
    srv_request *r = NULL;
    char *parse_msg = NULL;
    cJSON *o = srv_parse_object(body, len, &parse_msg);
    if (!o) {
        fail(&p, 400, "%s", parse_msg ? parse_msg : "invalid JSON");
        free(parse_msg);
        goto out;
    }
    r = srv_request_new();
    if (!r) { fail(&p, 500, "out of memory"); goto out; }
    r->kind = kind;
    r->created = (int64_t)time(NULL);
    static atomic_uint_fast64_t counter;
    uint64_t c = atomic_fetch_add(&counter, 1);
    snprintf(r->id, sizeof r->id, "%s-%llx%06llx", kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)r->created, (unsigned long long)(c & 0xffffff));

    bool has = false;
    int64_t iv = 0;
    if (!get_bool(&p, o, "stream", &r->stream)) goto out;
    const cJSON *so = field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) { fail(&p, 400, "'stream_options' must be an object"); goto out; }
        if (!get_bool(&p, so, "include_usage", &r->include_usage)) goto out;
    }
    if (!get_bool(&p, o, "return_token_ids", &r->return_ids)) goto out;
    has = false;
    if (!get_int(&p, o, "n", 1, 1, &has, &iv)) {
        free(p.msg);
        p.msg = NULL;
        fail(&p, 400, "'n' must be 1: this server returns one choice per request");
        goto out;
    }
    if (!get_number(&p, o, "temperature", 0, 2, &r->has_temperature, &r->temperature)) goto out;
    if (!get_number(&p, o, "top_p", 0, 1, &r->has_top_p, &r->top_p)) goto out;
    if (!get_number(&p, o, "frequency_penalty", -2, 2, &r->has_freq, &r->freq_penalty)) goto out;
    if (!get_number(&p, o, "presence_penalty", -2, 2, &r->has_pres, &r->pres_penalty)) goto out;
    has = false;
    if (!get_int(&p, o, "seed", -9007199254740991.0, 9007199254740991.0, &has, &iv)) goto out;
    if (has) {
        r->has_seed = true;
        r->seed = (uint64_t)iv;
    }
    bool has_max = false;
    int64_t max_tokens = 0;
    if (!get_int(&p, o, "max_tokens", 1, 2147483647.0, &has_max, &max_tokens)) goto out;
    if (!has_max && !get_int(&p, o, "max_completion_tokens", 1, 2147483647.0, &has_max, &max_tokens)) goto out;
    const cJSON *lp = field(o, "logprobs");
    if (lp && !(cJSON_IsFalse(lp) || (kind == SRV_COMPLETION && cJSON_IsNumber(lp) && lp->valuedouble == 0))) {
        fail(&p, 400, "'logprobs' is not supported by this server");
        goto out;
    }
    const cJSON *echo = field(o, "echo");
    if (echo && !cJSON_IsFalse(echo)) {
        fail(&p, 400, "'echo' is not supported by this server");
        goto out;
    }
    const cJSON *bo = field(o, "best_of");
    if (bo && !(cJSON_IsNumber(bo) && bo->valuedouble == 1)) {
        fail(&p, 400, "'best_of' must be 1");
        goto out;
    }
    if (!parse_adapters(&p, o, s, r)) goto out;
    if (!parse_stop(&p, o, s, r, kind == SRV_CHAT)) goto out;

    if (kind == SRV_CHAT) {
        const cJSON *tools = field(o, "tools");
        r->has_tools = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
        char *text = render_chat(&p, s, o);
        if (!text) goto out;
        bool ok = tokenize_text(&p, s, text, strlen(text), r);
        free(text);
        if (!ok) goto out;
    } else if (!parse_prompt(&p, s, o, r)) {
        goto out;
    }
    if (r->n_prompt == 0) {
        fail(&p, 400, "the prompt is empty after tokenization");
        goto out;
    }
    const char *what = kind == SRV_CHAT ? "messages" : "prompt";
    if ((int64_t)r->n_prompt >= s->n_ctx) {
        fail(&p, 400,
             "This model's maximum context length is %lld tokens. However, your %s resulted in %zu tokens, "
             "leaving no room for the completion. Please reduce the length of the %s.",
             (long long)s->n_ctx, what, r->n_prompt, what);
        goto out;
    }
    if (has_max && (int64_t)r->n_prompt + max_tokens > s->n_ctx) {
        fail(&p, 400,
             "This model's maximum context length is %lld tokens. However, you requested %lld tokens "
             "(%zu in the %s, %lld in the completion). Please reduce the length of the %s or the completion.",
             (long long)s->n_ctx, (long long)r->n_prompt + (long long)max_tokens, r->n_prompt, what,
             (long long)max_tokens, what);
        goto out;
    }
    r->max_tokens = has_max ? (int32_t)max_tokens : s->default_max_tokens;
out:
    cJSON_Delete(o);
    if (p.msg) {
        srv_request_release(r);
        *status = p.status;
        *type = p.type;
        *msg = p.msg;
        return NULL;
    }
    return r;
}

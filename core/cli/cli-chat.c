/* cli-chat.c — interactive chat (the default action of llmhost --config M).
 *
 * Each turn renders the whole conversation with the model's chat template,
 * reuses the longest prefix already in the KV cache and evaluates the rest.
 * Models without a chat template (e.g. stories260K) get "story mode": the
 * user's text is appended to the running text and the model continues it.
 *
 * /adapter commands load, rescale and unload LoRA adapters in the model's
 * store while chatting, and choose the conversation's adapter set (all
 * adapters, none, or named ones with scales). The chat re-selects its set
 * after every change (a session otherwise keeps the set it selected) and
 * forgets the KV cache, so the next turn is evaluated with the new set.
 * Errors are printed and the chat goes on. docs/routers.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-model.h"

typedef struct chat {
    llmh_cli_model cm;
    llmh_chat_message *msgs;
    size_t n_msgs, cap_msgs;
    llmh_token *cached;     /* tokens in the KV cache, in order */
    size_t n_cached, cap_cached;
    char *story;            /* story mode: the running text */
    char *reply;            /* the assistant reply being streamed */
    size_t reply_len, reply_cap;
    bool tty;
    /* the conversation's adapter request: every adapter (the default), none,
     * or the named ones with their scales */
    enum { SEL_ALL, SEL_NONE, SEL_NAMES } sel;
    char **sel_names;
    float *sel_scales;
    size_t n_sel;
} chat;

static bool on_text(const char *text, size_t len, void *user) {
    chat *c = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (c->reply_len + len + 1 > c->reply_cap) {
        size_t cap = (c->reply_len + len + 1) * 2;
        char *r = realloc(c->reply, cap);
        if (!r) return false;
        c->reply = r;
        c->reply_cap = cap;
    }
    memcpy(c->reply + c->reply_len, text, len);
    c->reply_len += len;
    c->reply[c->reply_len] = 0;
    return true;
}

static int push_msg(chat *c, const char *role, const char *content) {
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 16;
        llmh_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return -1;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    char *r = strdup(role), *t = strdup(content);
    if (!r || !t) { free(r); free(t); return -1; }
    c->msgs[c->n_msgs].role = r;
    c->msgs[c->n_msgs].content = t;
    c->n_msgs++;
    return 0;
}

static void clear_msgs(chat *c, bool keep_system) {
    size_t keep = 0;
    for (size_t i = 0; i < c->n_msgs; i++) {
        if (keep_system && !strcmp(c->msgs[i].role, "system")) {
            c->msgs[keep++] = c->msgs[i];
            continue;
        }
        free((char *)c->msgs[i].role);
        free((char *)c->msgs[i].content);
    }
    c->n_msgs = keep;
}

/* Evaluate `toks` reusing the cached prefix, then generate the reply. */
static int run_turn(chat *c, const llmh_token *toks, size_t n) {
    const llmh_config *cfg = llmh_manifest_config(c->cm.manifest);
    size_t common = 0;
    while (common < n && common < c->n_cached && toks[common] == c->cached[common]) common++;
    if (common == n && n > 0) common--; /* re-evaluate the last token to get its logits */
    llmh_session_truncate(c->cm.session, (int64_t)common);
    c->n_cached = common;
    llmh_sampler_chain_reset(c->cm.chain);

    const char *eot = llmh_chat_end_of_turn(c->cm.model);
    const char **stops = calloc(cfg->generate.n_stop + 2, sizeof *stops);
    if (!stops) return -1;
    size_t n_stop = 0;
    for (size_t i = 0; i < cfg->generate.n_stop; i++) stops[n_stop++] = cfg->generate.stop[i];
    if (eot) stops[n_stop++] = eot;

    c->reply_len = 0;
    if (c->reply) c->reply[0] = 0;
    llmh_generate_params gp = {.max_tokens = cfg->generate.max_tokens, .stop = stops, .n_stop = n_stop,
                               .on_text = on_text, .user = c};
    llmh_generate_result res;
    llmh_status st = llmh_generate(c->cm.session, c->cm.chain, toks + common, n - common, &gp, &res);
    free(stops);
    if (st == LLMH_ERR_CONTEXT_FULL) {
        fprintf(stderr, "\nllmhost: the conversation no longer fits in the context (%s); use /reset\n",
                llmh_last_error());
        llmh_session_truncate(c->cm.session, 0);
        c->n_cached = 0;
        return 1;
    }
    if (st) {
        llmh_cli_error("generate", st);
        return -1;
    }
    /* remember what the cache now holds: prompt + generated, up to pos */
    size_t pos = (size_t)llmh_session_pos(c->cm.session);
    size_t need = pos + 1;
    if (need > c->cap_cached) {
        llmh_token *nc = realloc(c->cached, need * 2 * sizeof *nc);
        if (!nc) { free(res.tokens); return -1; }
        c->cached = nc;
        c->cap_cached = need * 2;
    }
    size_t k = c->n_cached;
    for (size_t i = common; i < n && k < pos; i++) c->cached[k++] = toks[i];
    for (int64_t i = 0; i < res.n_generated && k < pos; i++) c->cached[k++] = res.tokens[i];
    c->n_cached = k;
    if (res.finish == LLMH_FINISH_CONTEXT)
        fprintf(stderr, "\nllmhost: context full; use /reset to start over\n");
    if (!llmh_cli.quiet && llmh_cli.verbose) llmh_cli_print_summary(&res);
    free(res.tokens);
    return 0;
}

static int tokenize_all(chat *c, const char *text, llmh_token **toks, size_t *n) {
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(c->cm.model, &tk);
    uint32_t flags = LLMH_ENCODE_PARSE_SPECIAL | (ti->add_bos_default(tk) ? LLMH_ENCODE_ADD_BOS : 0);
    llmh_status st = llmh_tokenize(c->cm.model, text, strlen(text), flags, toks, n);
    if (st) { llmh_cli_error("tokenizing", st); return -1; }
    return 0;
}

static int chat_turn(chat *c, const char *user_text) {
    if (push_msg(c, "user", user_text)) return -1;
    char *prompt = NULL;
    llmh_status st = llmh_chat_render(c->cm.model, c->msgs, c->n_msgs, true, &prompt);
    if (st) { llmh_cli_error("chat template", st); return -1; }
    llmh_token *toks = NULL;
    size_t n = 0;
    int rc = tokenize_all(c, prompt, &toks, &n);
    free(prompt);
    if (rc == 0) rc = run_turn(c, toks, n);
    free(toks);
    if (rc == 0) rc = push_msg(c, "assistant", c->reply ? c->reply : "");
    else if (rc > 0) { clear_msgs(c, true); rc = 0; }
    return rc;
}

static int story_turn(chat *c, const char *user_text) {
    size_t a = c->story ? strlen(c->story) : 0, b = strlen(user_text);
    char *s = realloc(c->story, a + b + 1);
    if (!s) return -1;
    memcpy(s + a, user_text, b + 1);
    c->story = s;
    llmh_token *toks = NULL;
    size_t n = 0;
    if (tokenize_all(c, c->story, &toks, &n)) return -1;
    int rc = run_turn(c, toks, n);
    free(toks);
    if (rc == 0 && c->reply_len) {
        a = strlen(c->story);
        s = realloc(c->story, a + c->reply_len + 1);
        if (!s) return -1;
        memcpy(s + a, c->reply, c->reply_len + 1);
        c->story = s;
    } else if (rc > 0) {
        free(c->story);
        c->story = NULL;
        rc = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* /adapter commands                                                          */
/* ------------------------------------------------------------------------ */
static void sel_clear(chat *c) {
    for (size_t i = 0; i < c->n_sel; i++) free(c->sel_names[i]);
    free(c->sel_names);
    free(c->sel_scales);
    c->sel_names = NULL;
    c->sel_scales = NULL;
    c->n_sel = 0;
}

/* Apply the conversation's request to the session and drop the KV cache. */
static llmh_status sel_apply(chat *c) {
    llmh_status st = LLMH_OK;
    if (c->sel == SEL_NONE) llmh_session_clear_adapters(c->cm.session);
    else if (c->sel == SEL_ALL) st = llmh_session_select_adapters(c->cm.session, NULL);
    else st = llmh_session_set_adapters(c->cm.session, (const char *const *)c->sel_names, c->sel_scales, c->n_sel);
    llmh_session_truncate(c->cm.session, 0);
    c->n_cached = 0;
    return st;
}

static bool parse_scale(const char *s, float *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || !end || *end || errno || !isfinite(v) || fabs(v) > 1e30) return false;
    *out = (float)v;
    return true;
}

static void adapter_error(const char *what, llmh_status st) {
    const char *msg = llmh_last_error();
    fprintf(stderr, "llmhost: /adapter %s: %s\n", what, msg && *msg ? msg : llmh_status_str(st));
}

static void adapter_list(chat *c) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    llmh_status st = llmh_adapter_list(c->cm.model, &info, &n);
    if (st) {
        adapter_error("list", st);
        return;
    }
    if (n == 0) printf("(no adapters loaded)\n");
    for (size_t i = 0; i < n; i++) {
        const llmh_adapter_info *a = &info[i];
        bool active = c->sel == SEL_ALL;
        float mult = 1.0f;
        for (size_t k = 0; c->sel == SEL_NAMES && k < c->n_sel; k++)
            if (!strcmp(c->sel_names[k], a->name)) {
                active = true;
                mult = c->sel_scales[k];
            }
        printf("%c %-16s scale %-8g rank %-4d alpha %-6g %3d projections%s%s  %s", active ? '*' : ' ', a->name,
               (double)a->scale, a->rank, (double)a->alpha, a->n_targets, a->ns ? "  namespace " : "", a->ns ? a->ns : "",
               a->path);
        if (active && c->sel == SEL_NAMES) printf("  (used at x%g)", (double)mult);
        printf("\n");
    }
    if (n) printf("(* = used by this conversation)\n");
    free(info);
}

/* Split `line` (after "/adapter") into at most `cap` whitespace-separated words. */
static size_t split_words(char *line, char **w, size_t cap) {
    size_t n = 0;
    for (char *p = strtok(line, " \t"); p && n < cap; p = strtok(NULL, " \t")) w[n++] = p;
    return n;
}

static void adapter_use(chat *c, char **w, size_t n) {
    if (n == 0) {
        fprintf(stderr, "llmhost: /adapter use: name adapters (NAME or NAME=SCALE), or none, or all\n");
        return;
    }
    if (n == 1 && (!strcmp(w[0], "none") || !strcmp(w[0], "all"))) {
        sel_clear(c);
        c->sel = !strcmp(w[0], "none") ? SEL_NONE : SEL_ALL;
        llmh_status st = sel_apply(c);
        if (st) adapter_error("use", st);
        else printf("(adapters: %s)\n", w[0]);
        return;
    }
    char **names = calloc(n, sizeof *names);
    float *scales = calloc(n, sizeof *scales);
    bool ok = names && scales;
    for (size_t i = 0; ok && i < n; i++) {
        char *eq = strchr(w[i], '=');
        scales[i] = 1.0f;
        if (eq) {
            *eq = 0;
            if (!parse_scale(eq + 1, &scales[i])) {
                fprintf(stderr, "llmhost: /adapter use: '%s': the scale '%s' is not a finite number\n", w[i], eq + 1);
                ok = false;
                break;
            }
        }
        if (!*w[i] || !(names[i] = strdup(w[i]))) {
            fprintf(stderr, "llmhost: /adapter use: empty adapter name\n");
            ok = false;
        }
    }
    if (ok) {
        /* the session keeps its set when the router refuses the request */
        llmh_status st = llmh_session_set_adapters(c->cm.session, (const char *const *)names, scales, n);
        if (st) {
            adapter_error("use", st);
            ok = false;
        }
    }
    if (!ok) {
        for (size_t i = 0; names && i < n; i++) free(names[i]);
        free(names);
        free(scales);
        return;
    }
    sel_clear(c);
    c->sel = SEL_NAMES;
    c->sel_names = names;
    c->sel_scales = scales;
    c->n_sel = n;
    llmh_session_truncate(c->cm.session, 0);
    c->n_cached = 0;
    printf("(adapters:");
    for (size_t i = 0; i < n; i++) printf(" %s=%g", names[i], (double)scales[i]);
    printf(")\n");
}

/* After a store change: drop an unloaded name from the request, re-select. */
static void adapter_reselect(chat *c, const char *unloaded) {
    if (unloaded && c->sel == SEL_NAMES) {
        size_t k = 0;
        for (size_t i = 0; i < c->n_sel; i++) {
            if (!strcmp(c->sel_names[i], unloaded)) {
                free(c->sel_names[i]);
                continue;
            }
            c->sel_names[k] = c->sel_names[i];
            c->sel_scales[k] = c->sel_scales[i];
            k++;
        }
        c->n_sel = k;
        if (k == 0) c->sel = SEL_NONE;
    }
    llmh_status st = sel_apply(c);
    if (st) adapter_error("re-selecting the conversation's adapters", st);
}

static void adapter_cmd(chat *c, char *args) {
    char *w[66];
    size_t n = split_words(args, w, sizeof w / sizeof w[0]);
    const char *usage = "usage: /adapter load NAME PATH [SCALE] | scale NAME S | unload NAME | list | "
                        "use NAME[=S]... | use none | use all";
    if (n == 0) {
        fprintf(stderr, "llmhost: %s\n", usage);
        return;
    }
    llmh_status st;
    float scale = 1.0f;
    if (!strcmp(w[0], "list") && n == 1) {
        adapter_list(c);
    } else if (!strcmp(w[0], "load") && (n == 3 || n == 4)) {
        if (n == 4 && !parse_scale(w[3], &scale)) {
            fprintf(stderr, "llmhost: /adapter load: the scale '%s' is not a finite number\n", w[3]);
            return;
        }
        if ((st = llmh_adapter_load(c->cm.model, w[1], w[2], scale, NULL))) {
            adapter_error("load", st);
            return;
        }
        adapter_reselect(c, NULL);
        printf("(adapter %s loaded from %s at scale %g%s)\n", w[1], w[2], (double)scale,
               c->sel == SEL_ALL ? "; in use" : "; not in use: /adapter use to select it");
    } else if (!strcmp(w[0], "scale") && n == 3) {
        if (!parse_scale(w[2], &scale)) {
            fprintf(stderr, "llmhost: /adapter scale: the scale '%s' is not a finite number\n", w[2]);
            return;
        }
        if ((st = llmh_adapter_set_scale(c->cm.model, w[1], scale))) {
            adapter_error("scale", st);
            return;
        }
        adapter_reselect(c, NULL);
        printf("(adapter %s: scale %g)\n", w[1], (double)scale);
    } else if (!strcmp(w[0], "unload") && n == 2) {
        if ((st = llmh_adapter_unload(c->cm.model, w[1]))) {
            adapter_error("unload", st);
            return;
        }
        adapter_reselect(c, w[1]);
        printf("(adapter %s unloaded)\n", w[1]);
    } else if (!strcmp(w[0], "use")) {
        adapter_use(c, w + 1, n - 1);
    } else {
        fprintf(stderr, "llmhost: %s\n", usage);
    }
}

static void print_help(void) {
    printf("commands:\n"
           "  /help           this list\n"
           "  /reset          forget the conversation (keeps the system prompt)\n"
           "  /system TEXT    set the system prompt and reset\n"
           "  /adapter load NAME PATH [SCALE]   load a LoRA adapter (GGUF-LoRA file or PEFT directory)\n"
           "  /adapter scale NAME S             change an adapter's scale\n"
           "  /adapter unload NAME              unload an adapter\n"
           "  /adapter list                     list loaded adapters (* = used by this conversation)\n"
           "  /adapter use NAME[=S] ...|none|all  choose the conversation's adapters (default: all)\n"
           "  /exit, /quit    leave (or Ctrl-D)\n");
}

int llmh_cmd_chat(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llmhost --config M.toml [chat]\n\n"
                   "Interactive chat using the model's chat template. Type a message and press Enter.\n"
                   "Models without a chat template continue your text instead (story mode).\n\n");
            print_help();
            return 0;
        }
        fprintf(stderr, "llmhost: chat: unknown option '%s'\n", argv[i]);
        return 2;
    }
    chat c;
    memset(&c, 0, sizeof c);
    c.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (llmh_cli_model_open(&c.cm, NULL)) return 1;
    const llmh_config *cfg = llmh_manifest_config(c.cm.manifest);
    const llmh_model_desc *d = llmh_model_describe(c.cm.model);
    bool story = llmh_chat_end_of_turn(c.cm.model) == NULL;
    if (!story && cfg->generate.system) push_msg(&c, "system", cfg->generate.system);
    if (c.tty || llmh_cli.verbose)
        fprintf(stderr, "llmhost %s: %s model%s%s, %s. /help for commands, Ctrl-D to quit.\n", llmh_version(),
                d->arch, *d->name ? " " : "", d->name,
                story ? "no chat template: story mode (the model continues your text)" : "chat");

    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (c.tty) { printf("\n> "); fflush(stdout); }
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (line[0] == '/') {
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (!strcmp(line, "/help")) { print_help(); continue; }
            if (!strcmp(line, "/reset")) {
                clear_msgs(&c, true);
                free(c.story);
                c.story = NULL;
                printf("(conversation cleared)\n");
                continue;
            }
            if (!strcmp(line, "/adapter") || !strncmp(line, "/adapter ", 9)) {
                adapter_cmd(&c, line + 8);
                fflush(stdout);
                continue;
            }
            if (!strncmp(line, "/system ", 8)) {
                clear_msgs(&c, false);
                push_msg(&c, "system", line + 8);
                printf("(system prompt set; conversation cleared)\n");
                continue;
            }
            printf("unknown command '%s' (/help lists them)\n", line);
            continue;
        }
        int r = story ? story_turn(&c, line) : chat_turn(&c, line);
        printf("\n");
        fflush(stdout);
        if (r < 0) { rc = 1; break; }
    }
    free(line);
    clear_msgs(&c, false);
    free(c.msgs);
    free(c.cached);
    free(c.story);
    free(c.reply);
    sel_clear(&c);
    llmh_cli_model_close(&c.cm);
    return rc;
}

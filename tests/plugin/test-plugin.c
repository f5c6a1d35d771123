/* test-plugin.c — plugins for the registry tests, one per REGTEST_* variant.
 *
 * Built several times (tests/plugin/CMakeLists.txt) into a test-only
 * directory, never installed. One variant is a well-formed sampler that logs
 * its init/fini through the host API so the test can count them; the others
 * are broken on purpose, one defect each, to check every refusal reason.
 */
#include <string.h>

#include "llmh-plugin.h"

static const llmh_host_api *g_host;

/* ------------------------------------------------------------------------ */
/* Sampler: argmax over the candidates ("regtest_a", "regtest_b").           */
/* ------------------------------------------------------------------------ */
#define STATE_MAGIC 0x52454754u /* "REGT" */

typedef struct plugin_state {
    uint32_t magic;
    int32_t samplers_live;
} plugin_state;

struct llmh_sampler {
    plugin_state *st;
    int32_t last_token;
};

static const char *const sampler_names[] = {"regtest_a", "regtest_b", NULL};
static const char *const sampler_keys[] = {"regtest_k", NULL};

static llmh_status sampler_create(void *state, const char *name, const llmh_kv_list *params,
                                  llmh_sampler **out) {
    (void)params;
    if (strcmp(name, "regtest_a") != 0 && strcmp(name, "regtest_b") != 0) {
        g_host->set_error("regtest: unknown sampler '%s'", name);
        return LLMH_ERR_NOT_FOUND;
    }
    llmh_sampler *s = g_host->alloc(sizeof *s);
    if (!s) return LLMH_ERR_NO_MEMORY;
    s->st = state;
    s->last_token = -1;
    if (s->st) s->st->samplers_live++;
    *out = s;
    return LLMH_OK;
}

static void sampler_destroy(llmh_sampler *s) {
    if (!s) return;
    if (s->st) s->st->samplers_live--;
    g_host->free(s);
}

static llmh_status sampler_apply(llmh_sampler *s, llmh_token_array *cands) {
    (void)s;
    if (!cands || cands->n == 0) {
        g_host->set_error("regtest: no candidates");
        return LLMH_ERR_INVALID_ARG;
    }
    size_t best = 0;
    for (size_t i = 1; i < cands->n; i++)
        if (cands->data[i].logit > cands->data[best].logit) best = i;
    cands->selected = (int32_t)best;
    return LLMH_OK;
}

static void sampler_accept(llmh_sampler *s, llmh_token token) { s->last_token = token; }
static void sampler_reset(llmh_sampler *s) { s->last_token = -1; }

static const llmh_sampler_iface sampler_iface = {
    sizeof(llmh_sampler_iface), sampler_names, sampler_keys, sampler_create,
    sampler_destroy,            sampler_apply, sampler_accept, sampler_reset,
};

/* A sampler iface that reports a truncated size (REGTEST_SMALLIFACE) and
 * one that lacks a required slot (REGTEST_NOSLOT). */
static const llmh_sampler_iface small_iface = {
    8, sampler_names, sampler_keys, sampler_create, sampler_destroy, sampler_apply, NULL, NULL,
};
static const llmh_sampler_iface noslot_iface = {
    sizeof(llmh_sampler_iface), sampler_names, sampler_keys, sampler_create,
    sampler_destroy,            NULL,          NULL,         NULL,
};

/* ------------------------------------------------------------------------ */
/* init / fini / probe                                                       */
/* ------------------------------------------------------------------------ */
static int32_t good_probe(const llmh_host_api *host) {
    return host->struct_size >= sizeof(llmh_host_api) && host->abi_major == LLMH_ABI_MAJOR ? 50
                                                                                           : 0;
}

static int32_t refusing_probe(const llmh_host_api *host) {
    host->set_error("regtest: no frobnicator on this machine");
    return 0;
}

static llmh_status good_init(const llmh_host_api *host, void **state) {
    g_host = host;
    plugin_state *st = host->alloc(sizeof *st);
    if (!st) return LLMH_ERR_NO_MEMORY;
    st->magic = STATE_MAGIC;
    st->samplers_live = 0;
    *state = st;
    host->log(LLMH_LOG_INFO, REGTEST_NAME, "init");
    return LLMH_OK;
}

static void good_fini(void *state) {
    plugin_state *st = state;
    int ok = st && st->magic == STATE_MAGIC && st->samplers_live == 0;
    g_host->log(LLMH_LOG_INFO, REGTEST_NAME, ok ? "fini ok" : "fini bad state");
    if (st) st->magic = 0;
    g_host->free(st);
}

static llmh_status failing_init(const llmh_host_api *host, void **state) {
    (void)state;
    host->set_error("regtest: init failed on purpose");
    return LLMH_ERR_BACKEND;
}

/* ------------------------------------------------------------------------ */
/* Format plugin (REGTEST_FORMAT): files starting with "RGTS".               */
/* ------------------------------------------------------------------------ */
struct llmh_model_file {
    llmh_kv kv[1];
};

static int32_t fmt_probe_file(void *state, const char *path, const uint8_t *head, size_t head_len) {
    (void)state;
    (void)path;
    return head_len >= 4 && memcmp(head, "RGTS", 4) == 0 ? 100 : 0;
}

static llmh_status fmt_open(void *state, const char *path, const llmh_kv_list *options,
                            llmh_model_file **out) {
    (void)state;
    (void)options;
    llmh_model_file *f = g_host->alloc(sizeof *f);
    if (!f) return LLMH_ERR_NO_MEMORY;
    f->kv[0].key = "general.architecture";
    f->kv[0].value.type = LLMH_V_STRING;
    f->kv[0].value.v.s.ptr = "regtest";
    f->kv[0].value.v.s.len = 7;
    (void)path;
    *out = f;
    return LLMH_OK;
}

static void fmt_close(llmh_model_file *f) { g_host->free(f); }

static llmh_status fmt_get_metadata(llmh_model_file *f, llmh_kv_list *out) {
    out->items = f->kv;
    out->n = 1;
    return LLMH_OK;
}

static llmh_status fmt_get_tensors(llmh_model_file *f, const llmh_tensor_info **out, size_t *n) {
    (void)f;
    *out = NULL;
    *n = 0;
    return LLMH_OK;
}

static const llmh_format_iface format_iface = {
    sizeof(llmh_format_iface), fmt_probe_file, fmt_open, fmt_close, fmt_get_metadata,
    fmt_get_tensors,
};

/* ------------------------------------------------------------------------ */
/* Tokenizer plugin (REGTEST_TOKENIZER): one token per byte, for            */
/* tokenizer.ggml.model == "regtest".                                         */
/* ------------------------------------------------------------------------ */
struct llmh_tokenizer {
    int unused;
};

static int32_t tok_probe(void *state, const llmh_kv_list *meta) {
    (void)state;
    const llmh_value *v = llmh_kv_find(meta, "tokenizer.ggml.model");
    return v && v->type == LLMH_V_STRING && v->v.s.len == 7 && memcmp(v->v.s.ptr, "regtest", 7) == 0
               ? 90
               : 0;
}

static llmh_status tok_create(void *state, const llmh_kv_list *meta, const llmh_kv_list *options,
                              llmh_tokenizer **out) {
    (void)state;
    (void)meta;
    (void)options;
    llmh_tokenizer *t = g_host->alloc(sizeof *t);
    if (!t) return LLMH_ERR_NO_MEMORY;
    *out = t;
    return LLMH_OK;
}

static void tok_destroy(llmh_tokenizer *t) { g_host->free(t); }
static int32_t tok_n_vocab(const llmh_tokenizer *t) { (void)t; return 256; }

static llmh_status tok_encode(const llmh_tokenizer *t, const char *text, size_t len, uint32_t flags,
                              llmh_token *out, size_t cap, size_t *n_out) {
    (void)t;
    (void)flags;
    *n_out = len;
    if (cap < len) return LLMH_ERR_INVALID_ARG;
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)text[i];
    return LLMH_OK;
}

static llmh_status tok_piece(const llmh_tokenizer *t, llmh_token id, uint32_t flags, char *buf,
                             size_t cap, size_t *n_out) {
    (void)t;
    (void)flags;
    if (id < 0 || id > 255) return LLMH_ERR_INVALID_ARG;
    *n_out = 1;
    if (cap < 1) return LLMH_ERR_INVALID_ARG;
    buf[0] = (char)id;
    return LLMH_OK;
}

static const char *tok_text(const llmh_tokenizer *t, llmh_token id, size_t *len) {
    (void)t;
    (void)id;
    *len = 0;
    return NULL;
}

static int32_t tok_type(const llmh_tokenizer *t, llmh_token id) {
    (void)t;
    return id >= 0 && id < 256 ? LLMH_TOKEN_BYTE : 0;
}

static llmh_token tok_special(const llmh_tokenizer *t, llmh_special_token which) {
    (void)t;
    (void)which;
    return -1;
}

static int32_t tok_add_bos(const llmh_tokenizer *t) { (void)t; return 0; }

static const llmh_tokenizer_iface tokenizer_iface = {
    sizeof(llmh_tokenizer_iface), tok_probe, tok_create, tok_destroy, tok_n_vocab, tok_encode,
    tok_piece, tok_text, tok_type, tok_special, tok_add_bos, NULL,
};

/* ------------------------------------------------------------------------ */
/* The descriptor of each variant                                            */
/* ------------------------------------------------------------------------ */
#define KIND_SAMPLER LLMH_PLUGIN_SAMPLER
#define PROBE good_probe
#define INIT good_init
#define FINI good_fini
#define IFACE &sampler_iface
#define ABI_MAJOR LLMH_ABI_MAJOR
#define ABI_MINOR LLMH_ABI_MINOR
#define KIND KIND_SAMPLER
#define RESERVED_2 NULL

#if defined(REGTEST_MINOR)
#undef ABI_MINOR
#define ABI_MINOR (LLMH_ABI_MINOR + 1)
#elif defined(REGTEST_MAJOR)
#undef ABI_MAJOR
#define ABI_MAJOR 2
#elif defined(REGTEST_PROBE0)
#undef PROBE
#define PROBE refusing_probe
#elif defined(REGTEST_BADKIND)
#undef KIND
#define KIND ((llmh_plugin_kind)9)
#elif defined(REGTEST_NULLIFACE)
#undef IFACE
#define IFACE NULL
#elif defined(REGTEST_RESERVED)
#undef RESERVED_2
#define RESERVED_2 ((void *)&sampler_iface)
#elif defined(REGTEST_SMALLIFACE)
#undef IFACE
#define IFACE &small_iface
#elif defined(REGTEST_NOSLOT)
#undef IFACE
#define IFACE &noslot_iface
#elif defined(REGTEST_INITFAIL)
#undef INIT
#define INIT failing_init
#elif defined(REGTEST_FORMAT)
#undef KIND
#define KIND LLMH_PLUGIN_FORMAT
#undef IFACE
#define IFACE &format_iface
#elif defined(REGTEST_TOKENIZER)
#undef KIND
#define KIND LLMH_PLUGIN_TOKENIZER
#undef IFACE
#define IFACE &tokenizer_iface
#endif

#if defined(REGTEST_UNDEF)
/* Never defined anywhere: dlopen(RTLD_NOW) must fail to resolve it. */
extern int regtest_missing_symbol(void);
LLMH_PLUGIN_EXPORT int regtest_uses_missing(void);
LLMH_PLUGIN_EXPORT int regtest_uses_missing(void) { return regtest_missing_symbol(); }
#endif

#if defined(REGTEST_NODESC)
/* A shared object with exported code but no descriptor. */
LLMH_PLUGIN_EXPORT int regtest_not_a_plugin(void);
LLMH_PLUGIN_EXPORT int regtest_not_a_plugin(void) { return sampler_iface.struct_size != 0; }
/* Keep the otherwise unused pieces referenced so -Werror stays quiet. */
LLMH_PLUGIN_EXPORT const void *regtest_unused[];
const void *regtest_unused[] = {&small_iface, &noslot_iface, &format_iface, &tokenizer_iface,
                                (const void *)good_probe, (const void *)refusing_probe,
                                (const void *)good_init, (const void *)good_fini,
                                (const void *)failing_init};
#elif defined(REGTEST_CRASH)
/* Dies while describing itself, as a corrupt or broken plugin might. */
#include <stdlib.h>
LLMH_PLUGIN_EXPORT const llmh_plugin_desc *llmh_plugin_describe(void);
LLMH_PLUGIN_EXPORT const llmh_plugin_desc *llmh_plugin_describe(void) { abort(); }
LLMH_PLUGIN_EXPORT const void *regtest_unused[];
const void *regtest_unused[] = {&small_iface, &noslot_iface, &format_iface, &tokenizer_iface,
                                &sampler_iface, (const void *)good_probe,
                                (const void *)refusing_probe, (const void *)good_init,
                                (const void *)good_fini, (const void *)failing_init};
#else
static const llmh_plugin_desc regtest_desc = {
    sizeof(llmh_plugin_desc), ABI_MAJOR, ABI_MINOR, KIND, REGTEST_NAME, "1.2.3", "MIT",
    "llmhost registry test plugin", 7, PROBE, INIT, FINI, (const void *)(IFACE), NULL,
    {NULL, NULL, RESERVED_2, NULL, NULL, NULL, NULL, NULL}};

LLMH_PLUGIN_EXPORT const llmh_plugin_desc *llmh_plugin_describe(void);
LLMH_PLUGIN_EXPORT const llmh_plugin_desc *llmh_plugin_describe(void) { return &regtest_desc; }

/* Keep every variant's unused helpers referenced (they are tiny). */
LLMH_PLUGIN_EXPORT const void *regtest_unused[];
const void *regtest_unused[] = {&small_iface, &noslot_iface, &format_iface, &tokenizer_iface,
                                &sampler_iface, (const void *)good_probe,
                                (const void *)refusing_probe, (const void *)good_init,
                                (const void *)good_fini, (const void *)failing_init};
#endif

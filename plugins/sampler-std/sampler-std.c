/*
 * sampler-std.c — the "std" sampler plugin: descriptor, [sampler] parameter
 * validation, and create/apply/accept/reset dispatch to the samplers in
 * filters.c, penalties.c and dist.c.
 *
 * A chain such as ["penalties", "top_k", "top_p", "temperature", "dist"]
 * creates one sampler per name, each reading the same [sampler] table; the
 * host calls apply() on each in order and accept() on each after selection.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sampler-std.h"

#define STD_VERSION "1.0.0"
#define DEFAULT_SEED 42u
#define MAX_PENALTY_LAST_N 1048576

typedef struct std_state {
    const llmh_host_api *host; /* borrowed; valid until fini */
} std_state;

static const char *const std_names[LLMH__SMP_COUNT + 1] = {
    [LLMH__SMP_GREEDY] = "greedy",   [LLMH__SMP_TEMPERATURE] = "temperature",
    [LLMH__SMP_TOP_K] = "top_k",     [LLMH__SMP_TOP_P] = "top_p",
    [LLMH__SMP_MIN_P] = "min_p",     [LLMH__SMP_TYPICAL] = "typical",
    [LLMH__SMP_PENALTIES] = "penalties", [LLMH__SMP_DIST] = "dist",
    [LLMH__SMP_COUNT] = NULL};

static const char *const std_param_keys[] = {
    "temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty",
    "frequency_penalty", "presence_penalty", "penalty_last_n", "seed", "min_keep", NULL};

/* ------------------------------------------------------------------------ */
/* Parameters                                                                 */
/* ------------------------------------------------------------------------ */
static const char *vtype_name(llmh_vtype t) {
    switch (t) {
    case LLMH_V_BOOL: return "a boolean";
    case LLMH_V_STRING: return "a string";
    case LLMH_V_ARRAY: return "an array";
    default: return "a number";
    }
}

static int is_numeric(llmh_vtype t) {
    return t != LLMH_V_BOOL && t != LLMH_V_STRING && t != LLMH_V_ARRAY;
}

/* Float key in [lo, hi] (finite). Absent: *out = def. */
static llmh_status get_float(const llmh_host_api *h, const char *who, const llmh_kv_list *kv,
                             const char *key, double def, double lo, double hi,
                             int lo_exclusive, const char *range, double *out) {
    const llmh_value *v = llmh_kv_find(kv, key);
    double x;
    *out = def;
    if (!v) return LLMH_OK;
    if (!is_numeric(v->type) || !llmh_value_as_f64(v, &x)) {
        h->set_error("sampler '%s': [sampler] key '%s' must be a number, not %s", who, key,
                     vtype_name(v->type));
        return LLMH_ERR_CONFIG;
    }
    if (!isfinite(x) || x < lo || x > hi || (lo_exclusive && x == lo)) {
        h->set_error("sampler '%s': [sampler] key '%s' = %g is out of range: %s", who, key, x,
                     range);
        return LLMH_ERR_CONFIG;
    }
    *out = x;
    return LLMH_OK;
}

/* Integer key in [lo, hi]. Absent: *out = def. */
static llmh_status get_int(const llmh_host_api *h, const char *who, const llmh_kv_list *kv,
                           const char *key, int64_t def, int64_t lo, int64_t hi,
                           const char *range, int64_t *out) {
    const llmh_value *v = llmh_kv_find(kv, key);
    int64_t x;
    *out = def;
    if (!v) return LLMH_OK;
    if (!is_numeric(v->type)) {
        h->set_error("sampler '%s': [sampler] key '%s' must be an integer, not %s", who, key,
                     vtype_name(v->type));
        return LLMH_ERR_CONFIG;
    }
    if ((v->type == LLMH_V_U8 || v->type == LLMH_V_U16 || v->type == LLMH_V_U32 ||
         v->type == LLMH_V_U64) && v->v.u > (uint64_t)hi) {
        h->set_error("sampler '%s': [sampler] key '%s' = %llu is out of range: %s", who, key,
                     (unsigned long long)v->v.u, range);
        return LLMH_ERR_CONFIG;
    }
    if (!llmh_value_as_i64(v, &x)) {
        h->set_error("sampler '%s': [sampler] key '%s' must be an integer", who, key);
        return LLMH_ERR_CONFIG;
    }
    if (x < lo || x > hi) {
        h->set_error("sampler '%s': [sampler] key '%s' = %lld is out of range: %s", who, key,
                     (long long)x, range);
        return LLMH_ERR_CONFIG;
    }
    *out = x;
    return LLMH_OK;
}

/* The seed is any unsigned 64-bit integer. */
static llmh_status get_seed(const llmh_host_api *h, const char *who, const llmh_kv_list *kv,
                            uint64_t *out) {
    const llmh_value *v = llmh_kv_find(kv, "seed");
    int64_t x;
    *out = DEFAULT_SEED;
    if (!v) return LLMH_OK;
    if (v->type == LLMH_V_U8 || v->type == LLMH_V_U16 || v->type == LLMH_V_U32 ||
        v->type == LLMH_V_U64) {
        *out = v->v.u;
        return LLMH_OK;
    }
    if (!is_numeric(v->type) || !llmh_value_as_i64(v, &x)) {
        h->set_error("sampler '%s': [sampler] key 'seed' must be an integer, not %s", who,
                     v->type == LLMH_V_F32 || v->type == LLMH_V_F64 ? "a fraction"
                                                                   : vtype_name(v->type));
        return LLMH_ERR_CONFIG;
    }
    if (x < 0) {
        h->set_error("sampler '%s': [sampler] key 'seed' = %lld is out of range: must be "
                     "between 0 and 2^64-1", who, (long long)x);
        return LLMH_ERR_CONFIG;
    }
    *out = (uint64_t)x;
    return LLMH_OK;
}

/* Read and validate every key this plugin declares (whichever sampler is
 * being created), so a bad value is reported even when only another member
 * of the chain reads it. Defaults follow llama.cpp's. */
static llmh_status parse_params(const llmh_host_api *h, const char *who, const llmh_kv_list *kv,
                                llmh__smp_params *p) {
    llmh_status st;
    int64_t i64;
    if ((st = get_float(h, who, kv, "temperature", 0.8, 0.0, 1e6, 0,
                        "must be between 0 and 1e6 (0 keeps only the most likely token)",
                        &p->temperature)))
        return st;
    if ((st = get_int(h, who, kv, "top_k", 40, INT32_MIN, INT32_MAX,
                      "must be a 32-bit integer (<= 0 turns top_k off)", &p->top_k)))
        return st;
    if ((st = get_float(h, who, kv, "top_p", 0.95, 0.0, 1.0, 0,
                        "must be between 0 and 1 (1 turns top_p off)", &p->top_p)))
        return st;
    if ((st = get_float(h, who, kv, "min_p", 0.05, 0.0, 1.0, 0,
                        "must be between 0 and 1 (0 turns min_p off)", &p->min_p)))
        return st;
    if ((st = get_float(h, who, kv, "typical_p", 1.0, 0.0, 1.0, 0,
                        "must be between 0 and 1 (1 turns typical sampling off)",
                        &p->typical_p)))
        return st;
    if ((st = get_float(h, who, kv, "repeat_penalty", 1.0, 0.0, 1e6, 1,
                        "must be greater than 0 and at most 1e6 (1 turns it off)",
                        &p->repeat_penalty)))
        return st;
    if ((st = get_float(h, who, kv, "frequency_penalty", 0.0, -1e6, 1e6, 0,
                        "must be between -1e6 and 1e6 (0 turns it off)", &p->frequency_penalty)))
        return st;
    if ((st = get_float(h, who, kv, "presence_penalty", 0.0, -1e6, 1e6, 0,
                        "must be between -1e6 and 1e6 (0 turns it off)", &p->presence_penalty)))
        return st;
    if ((st = get_int(h, who, kv, "penalty_last_n", 64, -1, MAX_PENALTY_LAST_N,
                      "must be between -1 (every accepted token) and 1048576 (0 turns "
                      "penalties off)",
                      &p->penalty_last_n)))
        return st;
    if ((st = get_seed(h, who, kv, &p->seed))) return st;
    if ((st = get_int(h, who, kv, "min_keep", 0, 0, INT32_MAX,
                      "must be between 0 and 2147483647", &i64)))
        return st;
    p->min_keep = (size_t)i64;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Plugin                                                                     */
/* ------------------------------------------------------------------------ */
static llmh_status std_init(const llmh_host_api *host, void **state) {
    if (!host || !state) return LLMH_ERR_INVALID_ARG;
    if (host->struct_size < offsetof(llmh_host_api, dequantize) || !host->alloc || !host->free ||
        !host->set_error || !host->log)
        return LLMH_ERR_ABI;
    std_state *st = host->alloc(sizeof *st);
    if (!st) {
        host->set_error("sampler-std: out of memory in init");
        return LLMH_ERR_NO_MEMORY;
    }
    st->host = host;
    *state = st;
    return LLMH_OK;
}

static void std_fini(void *state) {
    std_state *st = state;
    if (st) st->host->free(st);
}

static llmh_status std_create(void *state, const char *name, const llmh_kv_list *params,
                              llmh_sampler **out) {
    std_state *ps = state;
    if (!ps) return LLMH_ERR_INVALID_ARG; /* init() was not called: no way to report */
    const llmh_host_api *h = ps->host;
    if (!out || !name) {
        h->set_error("sampler-std: create() needs a name and an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    int kind = -1;
    for (int i = 0; i < LLMH__SMP_COUNT; i++)
        if (strcmp(std_names[i], name) == 0) kind = i;
    if (kind < 0) {
        h->set_error("sampler-std: no sampler named '%s' (this plugin provides greedy, "
                     "temperature, top_k, top_p, min_p, typical, penalties, dist)", name);
        return LLMH_ERR_NOT_FOUND;
    }
    llmh__smp_params prm;
    llmh_status st = parse_params(h, name, params, &prm);
    if (st) return st;

    llmh_sampler *s = h->alloc(sizeof *s);
    if (!s) {
        h->set_error("sampler '%s': out of memory", name);
        return LLMH_ERR_NO_MEMORY;
    }
    memset(s, 0, sizeof *s);
    s->host = h;
    s->kind = (llmh__smp_kind)kind;
    s->prm = prm;
    if (s->kind == LLMH__SMP_PENALTIES && (st = llmh__smp_penalties_init(s)) != LLMH_OK) {
        h->free(s);
        return st;
    }
    if (s->kind == LLMH__SMP_DIST) llmh__smp_dist_seed(s);
    *out = s;
    return LLMH_OK;
}

static void std_destroy(llmh_sampler *s) {
    if (!s) return;
    if (s->kind == LLMH__SMP_PENALTIES) llmh__smp_penalties_free(s);
    s->host->free(s->scratch);
    s->host->free(s);
}

static llmh_status std_apply(llmh_sampler *s, llmh_token_array *c) {
    if (!s) return LLMH_ERR_INVALID_ARG;
    if (!c || (c->n > 0 && !c->data)) {
        s->host->set_error("sampler '%s': apply() got no candidate array", std_names[s->kind]);
        return LLMH_ERR_INVALID_ARG;
    }
    switch (s->kind) {
    case LLMH__SMP_GREEDY: return llmh__smp_greedy(s, c);
    case LLMH__SMP_TEMPERATURE: return llmh__smp_temperature(s, c);
    case LLMH__SMP_TOP_K: return llmh__smp_top_k(s, c);
    case LLMH__SMP_TOP_P: return llmh__smp_top_p(s, c);
    case LLMH__SMP_MIN_P: return llmh__smp_min_p(s, c);
    case LLMH__SMP_TYPICAL: return llmh__smp_typical(s, c);
    case LLMH__SMP_PENALTIES: return llmh__smp_penalties(s, c);
    case LLMH__SMP_DIST: return llmh__smp_dist(s, c);
    default: break;
    }
    s->host->set_error("sampler-std: corrupt sampler object");
    return LLMH_ERR_INTERNAL;
}

static void std_accept(llmh_sampler *s, llmh_token token) {
    if (s && s->kind == LLMH__SMP_PENALTIES) llmh__smp_penalties_accept(s, token);
}

static void std_reset(llmh_sampler *s) {
    if (!s) return;
    if (s->kind == LLMH__SMP_PENALTIES) llmh__smp_penalties_reset(s);
    if (s->kind == LLMH__SMP_DIST) llmh__smp_dist_seed(s);
}

static const llmh_sampler_iface std_iface = {
    .struct_size = sizeof(llmh_sampler_iface),
    .names = std_names,
    .param_keys = std_param_keys,
    .create = std_create,
    .destroy = std_destroy,
    .apply = std_apply,
    .accept = std_accept,
    .reset = std_reset,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_SAMPLER, "std", STD_VERSION, "MIT",
                   "Standard samplers: greedy, temperature, top_k, top_p, min_p, typical, "
                   "penalties, dist (xoshiro256**)",
                   10, NULL, std_init, std_fini, &std_iface, NULL)

/* xtc.c — "Exclude Top Choices" (XTC) sampler, an out-of-tree llmhost plugin.
 *
 * XTC makes output less predictable without making it less coherent: with
 * probability `xtc_probability` per token, it removes every candidate whose
 * probability is at least `xtc_threshold` except the least likely of them,
 * so the model still picks a plausible token, just not the most obvious one.
 * When fewer than two candidates clear the threshold it does nothing.
 *
 * Chain it before the selecting sampler, e.g.
 *
 *   [sampler]
 *   chain = ["top_k", "xtc", "temperature", "dist"]
 *
 *   [sampler.options]
 *   xtc_probability = 0.5
 *   xtc_threshold = 0.1
 *
 * Built against the installed SDK only (find_package(llmh-sdk)); it includes
 * nothing but llmh-plugin.h and the C library.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llmh-plugin.h"

/* ------------------------------------------------------------------------ */
/* Plugin state: the host API, kept from init for the samplers' errors.       */
/* ------------------------------------------------------------------------ */
typedef struct xtc_plugin {
    const llmh_host_api *host;
} xtc_plugin;

/* Parameters, from the manifest's [sampler] table. */
typedef struct xtc_params {
    double probability; /* chance per token that XTC acts, 0..1 (0 = never) */
    double threshold;   /* a "top choice" has p >= threshold, 0..0.5 */
    int64_t min_keep;   /* never leave fewer candidates than this (0 acts as 1) */
    uint64_t seed;      /* RNG seed */
} xtc_params;

struct llmh_sampler {
    const llmh_host_api *host;
    xtc_params prm;
    uint64_t rng;       /* xorshift64* state, never 0 */
};

static const char *const xtc_names[] = {"xtc", NULL};
static const char *const xtc_param_keys[] = {"xtc_probability", "xtc_threshold", "min_keep", "seed",
                                             NULL};

/* ------------------------------------------------------------------------ */
/* Random numbers: splitmix64 to spread the seed, xorshift64* to draw.        */
/* Integer-only, so a seed gives the same draws on every platform.            */
/* ------------------------------------------------------------------------ */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void xtc_seed(llmh_sampler *s) {
    s->rng = splitmix64(s->prm.seed);
    if (s->rng == 0) s->rng = 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1) from the top 53 bits. */
static double xtc_uniform(llmh_sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                                 */
/* ------------------------------------------------------------------------ */
static llmh_status get_number(const llmh_host_api *host, const llmh_kv_list *params,
                              const char *key, double lo, double hi, const char *rule,
                              double *out) {
    const llmh_value *v = llmh_kv_find(params, key);
    if (!v) return LLMH_OK; /* keep the default */
    double x;
    if (v->type == LLMH_V_BOOL || !llmh_value_as_f64(v, &x)) {
        host->set_error("sampler 'xtc': %s must be a number", key);
        return LLMH_ERR_CONFIG;
    }
    if (!(x >= lo && x <= hi)) { /* also rejects NaN */
        host->set_error("sampler 'xtc': %s = %g: %s", key, x, rule);
        return LLMH_ERR_CONFIG;
    }
    *out = x;
    return LLMH_OK;
}

static llmh_status get_integer(const llmh_host_api *host, const llmh_kv_list *params,
                               const char *key, int64_t lo, const char *rule, int64_t *out) {
    const llmh_value *v = llmh_kv_find(params, key);
    if (!v) return LLMH_OK;
    int64_t x;
    if (v->type == LLMH_V_BOOL || !llmh_value_as_i64(v, &x)) {
        host->set_error("sampler 'xtc': %s must be an integer", key);
        return LLMH_ERR_CONFIG;
    }
    if (x < lo) {
        host->set_error("sampler 'xtc': %s = %lld: %s", key, (long long)x, rule);
        return LLMH_ERR_CONFIG;
    }
    *out = x;
    return LLMH_OK;
}

static llmh_status xtc_parse(const llmh_host_api *host, const llmh_kv_list *params,
                             xtc_params *p) {
    p->probability = 0.0; /* off unless asked for, as in other implementations */
    p->threshold = 0.1;
    p->min_keep = 1;
    p->seed = 0x5EEDull;
    llmh_status st;
    if ((st = get_number(host, params, "xtc_probability", 0.0, 1.0,
                         "must be between 0 and 1 (0 turns XTC off)", &p->probability)))
        return st;
    if ((st = get_number(host, params, "xtc_threshold", 0.0, 0.5,
                         "must be between 0 and 0.5 (above 0.5 at most one token can clear it)",
                         &p->threshold)))
        return st;
    if ((st = get_integer(host, params, "min_keep", 0, "must be >= 0", &p->min_keep)))
        return st;
    int64_t seed = (int64_t)p->seed;
    if ((st = get_integer(host, params, "seed", INT64_MIN, "", &seed))) return st;
    p->seed = (uint64_t)seed;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* The sampler                                                                */
/* ------------------------------------------------------------------------ */
static llmh_status xtc_create(void *state, const char *name, const llmh_kv_list *params,
                              llmh_sampler **out) {
    xtc_plugin *pl = state;
    if (!name || strcmp(name, "xtc") != 0) {
        pl->host->set_error("xtc plugin: unknown sampler '%s' (this plugin provides 'xtc')",
                            name ? name : "(null)");
        return LLMH_ERR_NOT_FOUND;
    }
    xtc_params prm;
    llmh_status st = xtc_parse(pl->host, params, &prm);
    if (st != LLMH_OK) return st;
    llmh_sampler *s = pl->host->alloc(sizeof *s);
    if (!s) {
        pl->host->set_error("sampler 'xtc': out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    s->host = pl->host;
    s->prm = prm;
    xtc_seed(s);
    *out = s;
    return LLMH_OK;
}

static void xtc_destroy(llmh_sampler *s) {
    if (s) s->host->free(s);
}

/* Descending by logit; ties by id so the order never depends on qsort. */
static int by_logit_desc(const void *va, const void *vb) {
    const llmh_token_data *a = va, *b = vb;
    if (a->logit > b->logit) return -1;
    if (a->logit < b->logit) return 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Sort by logit and fill normalized probabilities (a stable softmax). */
static void sort_and_softmax(llmh_token_array *c) {
    if (!c->sorted) {
        qsort(c->data, c->n, sizeof c->data[0], by_logit_desc);
        c->sorted = 1;
    }
    if (c->has_p) return;
    double max = c->data[0].logit, sum = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        double e = exp((double)c->data[i].logit - max); /* -inf logits give 0 */
        c->data[i].p = (float)e;
        sum += e;
    }
    for (size_t i = 0; i < c->n; i++) c->data[i].p = (float)(c->data[i].p / sum);
    c->has_p = 1;
}

static llmh_status xtc_apply(llmh_sampler *s, llmh_token_array *c) {
    if (!c || (c->n > 0 && !c->data)) {
        s->host->set_error("sampler 'xtc': no candidate array");
        return LLMH_ERR_INVALID_ARG;
    }
    if (c->n < 2 || s->prm.probability <= 0.0) return LLMH_OK;
    /* One draw per token, whether or not XTC then acts: the sequence of
     * decisions depends only on the seed. */
    if (xtc_uniform(s) >= s->prm.probability) return LLMH_OK;

    int was_sorted = c->sorted;
    sort_and_softmax(c); /* with p sorted descending, too: the logits order them */
    if (!was_sorted) c->selected = -1; /* reordered: an earlier index is stale */

    /* The last candidate that clears the threshold; everything above it goes. */
    size_t last = 0;
    for (size_t i = 0; i < c->n && c->data[i].p >= s->prm.threshold; i++) last = i;
    if (last == 0) return LLMH_OK;                     /* fewer than two top choices */
    size_t min_keep = s->prm.min_keep > 1 ? (size_t)s->prm.min_keep : 1;
    if (c->n - last < min_keep) return LLMH_OK; /* would keep too few */

    memmove(c->data, c->data + last, (c->n - last) * sizeof c->data[0]);
    c->n -= last;
    c->selected = -1;
    double sum = 0.0;
    for (size_t i = 0; i < c->n; i++) sum += c->data[i].p;
    if (sum > 0.0)
        for (size_t i = 0; i < c->n; i++) c->data[i].p = (float)(c->data[i].p / sum);
    return LLMH_OK;
}

/* XTC has no memory of past tokens, so accept() is left NULL ("stateless");
 * reset() restarts the random sequence from the seed. */
static void xtc_reset(llmh_sampler *s) { xtc_seed(s); }

static const llmh_sampler_iface xtc_iface = {
    sizeof(llmh_sampler_iface),
    xtc_names,
    xtc_param_keys,
    xtc_create,
    xtc_destroy,
    xtc_apply,
    NULL,
    xtc_reset,
};

/* ------------------------------------------------------------------------ */
/* Plugin lifecycle                                                           */
/* ------------------------------------------------------------------------ */
static llmh_status xtc_init(const llmh_host_api *host, void **state) {
    xtc_plugin *pl = host->alloc(sizeof *pl);
    if (!pl) {
        host->set_error("xtc plugin: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    pl->host = host;
    *state = pl;
    return LLMH_OK;
}

static void xtc_fini(void *state) {
    xtc_plugin *pl = state;
    if (pl) pl->host->free(pl);
}

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_SAMPLER, "xtc", "1.0.0", "MIT",
                   "XTC: exclude top choices (out-of-tree example plugin)", 10, NULL, xtc_init,
                   xtc_fini, &xtc_iface, NULL)

/*
 * sampler-std.h — internals shared by the files of the "std" sampler plugin.
 *
 * Data flow: sampler-std.c (descriptor, parameters, create/apply dispatch)
 * -> candidates.c (ordering, partial sort, softmax) -> filters.c (greedy,
 * temperature, top_k, top_p, min_p, typical) / penalties.c / dist.c.
 * Nothing here is exported: the plugin is built with hidden visibility and
 * only llmh_plugin_describe leaves the .so.
 */
#ifndef LLMH_SAMPLER_STD_H
#define LLMH_SAMPLER_STD_H

#include <stddef.h>
#include <stdint.h>

#include "llmh-plugin.h"

typedef enum llmh__smp_kind {
    LLMH__SMP_GREEDY = 0,
    LLMH__SMP_TEMPERATURE,
    LLMH__SMP_TOP_K,
    LLMH__SMP_TOP_P,
    LLMH__SMP_MIN_P,
    LLMH__SMP_TYPICAL,
    LLMH__SMP_PENALTIES,
    LLMH__SMP_DIST,
    LLMH__SMP_COUNT
} llmh__smp_kind;

/* The [sampler] table, validated (see README.md for ranges and defaults). */
typedef struct llmh__smp_params {
    double temperature;       /* <= 0 keeps only the most likely token */
    int64_t top_k;            /* <= 0: off */
    double top_p;             /* [0, 1]; 1: off */
    double min_p;             /* [0, 1]; 0: off */
    double typical_p;         /* [0, 1]; 1: off */
    double repeat_penalty;    /* > 0; 1: off */
    double frequency_penalty; /* 0: off */
    double presence_penalty;  /* 0: off */
    int64_t penalty_last_n;   /* 0: off, -1: every accepted token since reset */
    uint64_t seed;            /* dist's PRNG seed */
    size_t min_keep;          /* filters keep at least this many candidates */
} llmh__smp_params;

/* Token-count table for the penalties sampler: open addressing with linear
 * probing; a slot is free when count == 0. */
typedef struct llmh__smp_count_slot {
    llmh_token token;
    int32_t count;
} llmh__smp_count_slot;

typedef struct llmh__smp_penalty_state {
    llmh_token *ring;             /* (penalty_last_n) accepted tokens, oldest at head */
    size_t ring_head, ring_size;
    llmh__smp_count_slot *slots;  /* (cap) */
    size_t cap, used;             /* cap is a power of two; used = slots with count > 0 */
} llmh__smp_penalty_state;

struct llmh_sampler {
    const llmh_host_api *host;    /* borrowed from init(); outlives the sampler */
    llmh__smp_kind kind;
    llmh__smp_params prm;
    void *scratch;                /* typical's work space (host->alloc) */
    size_t scratch_cap;           /* bytes */
    llmh__smp_penalty_state pen;  /* penalties only */
    uint64_t rng[4];              /* dist only: xoshiro256** state */
};

/* ---- candidates.c ------------------------------------------------------ */
/* Strict total order of candidates: higher logit first, NaN logits last,
 * ties by ascending id. Platform independent. */
static inline int llmh__smp_before(const llmh_token_data *a, const llmh_token_data *b) {
    float x = a->logit, y = b->logit;
    int xn = x != x, yn = y != y;
    if (xn || yn) {
        if (xn != yn) return yn;
        return a->id < b->id;
    }
    if (x != y) return x > y;
    return a->id < b->id;
}

/* Move the k best candidates (llmh__smp_before order) of d[0..n) into
 * d[0..k), sorted best first; d[k..n) keeps the rest in unspecified order.
 * O(n log k), no allocation. k > n is clamped. */
void llmh__smp_partial_sort(llmh_token_data *d, size_t n, size_t k);

/* Set p to softmax(logit) over the array and has_p. NaN logits get p = 0;
 * +inf logits share all the mass; all -inf (or NaN) gives a uniform
 * distribution over the non-NaN entries (over all when every one is NaN). */
void llmh__smp_softmax(llmh_token_array *c);

/* Index of the first highest logit (NaN ignored; 0 when all are NaN). */
size_t llmh__smp_argmax(const llmh_token_array *c);

/* Grow s->scratch to at least `bytes`. */
llmh_status llmh__smp_scratch(llmh_sampler *s, size_t bytes);

/* ---- filters.c --------------------------------------------------------- */
llmh_status llmh__smp_greedy(llmh_sampler *s, llmh_token_array *c);
llmh_status llmh__smp_temperature(llmh_sampler *s, llmh_token_array *c);
llmh_status llmh__smp_top_k(llmh_sampler *s, llmh_token_array *c);
llmh_status llmh__smp_top_p(llmh_sampler *s, llmh_token_array *c);
llmh_status llmh__smp_min_p(llmh_sampler *s, llmh_token_array *c);
llmh_status llmh__smp_typical(llmh_sampler *s, llmh_token_array *c);

/* ---- penalties.c ------------------------------------------------------- */
llmh_status llmh__smp_penalties_init(llmh_sampler *s);
void llmh__smp_penalties_free(llmh_sampler *s);
llmh_status llmh__smp_penalties(llmh_sampler *s, llmh_token_array *c);
void llmh__smp_penalties_accept(llmh_sampler *s, llmh_token token);
void llmh__smp_penalties_reset(llmh_sampler *s);

/* ---- dist.c ------------------------------------------------------------ */
void llmh__smp_dist_seed(llmh_sampler *s);
llmh_status llmh__smp_dist(llmh_sampler *s, llmh_token_array *c);

#endif

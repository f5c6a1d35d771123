/* dist.c — seeded random selection from the softmax distribution.
 *
 * PRNG: xoshiro256** (Blackman & Vigna), state initialized from the 64-bit
 * seed with splitmix64, uniform doubles from the top 53 bits. Pure integer
 * arithmetic, so a seed gives the same sequence on every platform. */
#include "sampler-std.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double uniform01(uint64_t s[4]) {
    return (double)(xoshiro_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

void llmh__smp_dist_seed(llmh_sampler *s) {
    uint64_t x = s->prm.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    /* splitmix64 is a bijection of distinct counters, so the state is never
     * all zero. */
}

llmh_status llmh__smp_dist(llmh_sampler *s, llmh_token_array *c) {
    if (c->n == 0) {
        s->host->set_error("sampler 'dist': no candidates to select from");
        return LLMH_ERR_INVALID_ARG;
    }
    if (c->n > (size_t)INT32_MAX) {
        s->host->set_error("sampler 'dist': %zu candidates do not fit the int32 'selected' index",
                           c->n);
        return LLMH_ERR_INVALID_ARG;
    }
    if (!c->has_p) llmh__smp_softmax(c);
    /* Always draw, even for one candidate, so that the random sequence does
     * not depend on how many candidates earlier filters left. */
    const double u = uniform01(s->rng);
    double sum = 0.0;
    for (size_t i = 0; i < c->n; i++) sum += c->data[i].p;
    const double target = u * sum;
    double cum = 0.0;
    size_t sel = c->n, last_pos = 0;
    for (size_t i = 0; i < c->n; i++) {
        const float p = c->data[i].p;
        if (!(p > 0.0f)) continue;
        last_pos = i;
        cum += p;
        if (cum > target) {
            sel = i;
            break;
        }
    }
    if (sel == c->n) sel = last_pos; /* rounding: the last token with mass */
    c->selected = (int32_t)sel;
    return LLMH_OK;
}

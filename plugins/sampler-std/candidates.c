/* candidates.c — ordering, partial sort and softmax of candidate arrays. */
#include <math.h>

#include "sampler-std.h"

static inline void swap_td(llmh_token_data *a, llmh_token_data *b) {
    llmh_token_data t = *a;
    *a = *b;
    *b = t;
}

/* Heap whose root is the WORST element: no child is worse than its parent,
 * where "worse" is the reverse of llmh__smp_before. */
static void sift_down_worst(llmh_token_data *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && llmh__smp_before(&h[m], &h[l])) m = l;
        if (r < n && llmh__smp_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        swap_td(&h[i], &h[m]);
        i = m;
    }
}

void llmh__smp_partial_sort(llmh_token_data *d, size_t n, size_t k) {
    if (k > n) k = n;
    if (k == 0) return;
    /* Keep the best k seen so far in a worst-at-root heap over d[0..k);
     * anything better than the root replaces it. Every element stays in d. */
    for (size_t i = k / 2; i-- > 0;) sift_down_worst(d, k, i);
    for (size_t i = k; i < n; i++) {
        if (llmh__smp_before(&d[i], &d[0])) {
            swap_td(&d[i], &d[0]);
            sift_down_worst(d, k, 0);
        }
    }
    /* Heap sort: repeatedly move the worst to the end -> best first. */
    for (size_t end = k - 1; end > 0; end--) {
        swap_td(&d[0], &d[end]);
        sift_down_worst(d, end, 0);
    }
}

void llmh__smp_softmax(llmh_token_array *c) {
    llmh_token_data *d = c->data;
    size_t n = c->n, n_valid = 0;
    float max_l = -INFINITY;
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) {
        float l = d[i].logit;
        if (l != l) continue;
        n_valid++;
        if (l > max_l) max_l = l;
    }
    double sum = 0.0;
    if (n_valid == 0) {
        for (size_t i = 0; i < n; i++) d[i].p = 1.0f;
        sum = (double)n;
    } else if (max_l == INFINITY) {
        for (size_t i = 0; i < n; i++) {
            d[i].p = d[i].logit == INFINITY ? 1.0f : 0.0f;
            sum += d[i].p;
        }
    } else if (max_l == -INFINITY) {
        for (size_t i = 0; i < n; i++) {
            d[i].p = d[i].logit == d[i].logit ? 1.0f : 0.0f;
            sum += d[i].p;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float l = d[i].logit;
            float p = l == l ? expf(l - max_l) : 0.0f;
            d[i].p = p;
            sum += p;
        }
    }
    /* sum >= 1: the maximum contributes exp(0) = 1 (or 1 per +inf/valid). */
    for (size_t i = 0; i < n; i++) d[i].p = (float)(d[i].p / sum);
    c->has_p = 1;
}

size_t llmh__smp_argmax(const llmh_token_array *c) {
    size_t best = 0;
    int have = 0;
    for (size_t i = 0; i < c->n; i++) {
        float l = c->data[i].logit;
        if (l != l) continue;
        if (!have || l > c->data[best].logit) {
            best = i;
            have = 1;
        }
    }
    return best;
}

llmh_status llmh__smp_scratch(llmh_sampler *s, size_t bytes) {
    if (bytes <= s->scratch_cap) return LLMH_OK;
    void *p = s->host->alloc(bytes);
    if (!p) {
        s->host->set_error("sampler-std: cannot allocate %zu bytes of scratch space", bytes);
        return LLMH_ERR_NO_MEMORY;
    }
    s->host->free(s->scratch);
    s->scratch = p;
    s->scratch_cap = bytes;
    return LLMH_OK;
}

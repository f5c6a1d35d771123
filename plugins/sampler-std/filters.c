/* filters.c — greedy, temperature, top_k, top_p, min_p and locally typical
 * sampling. Semantics follow llama.cpp's samplers (llama-sampling.cpp):
 * the filters shrink or reorder the candidate array, greedy selects. */
#include <math.h>
#include <stdlib.h>

#include "sampler-std.h"

/* Above this many unsorted candidates top_p first sorts only the best
 * TOP_P_FIRST_K and extends to the rest only if their mass is not enough. */
#define TOP_P_ADAPTIVE_N 1024
#define TOP_P_FIRST_K 256

static llmh_status need_candidates(llmh_sampler *s, const llmh_token_array *c, const char *who) {
    if (c->n == 0) {
        s->host->set_error("sampler '%s': no candidates to select from", who);
        return LLMH_ERR_INVALID_ARG;
    }
    if (c->n > (size_t)INT32_MAX) {
        s->host->set_error("sampler '%s': %zu candidates do not fit the int32 'selected' index",
                           who, c->n);
        return LLMH_ERR_INVALID_ARG;
    }
    return LLMH_OK;
}

llmh_status llmh__smp_greedy(llmh_sampler *s, llmh_token_array *c) {
    llmh_status st = need_candidates(s, c, "greedy");
    if (st) return st;
    c->selected = (int32_t)llmh__smp_argmax(c);
    return LLMH_OK;
}

llmh_status llmh__smp_temperature(llmh_sampler *s, llmh_token_array *c) {
    const float t = (float)s->prm.temperature;
    if (c->n == 0) return LLMH_OK;
    if (t <= 0.0f) {
        /* Keep only the most likely token (greedy-equivalent). */
        size_t best = llmh__smp_argmax(c);
        llmh_token_data tmp = c->data[0];
        c->data[0] = c->data[best];
        c->data[best] = tmp;
        c->n = 1;
        c->data[0].p = 1.0f;
        c->has_p = 1;
        c->sorted = 1;
        return LLMH_OK;
    }
    for (size_t i = 0; i < c->n; i++) c->data[i].logit /= t;
    c->has_p = 0; /* order is unchanged: `sorted` stays as it was */
    return LLMH_OK;
}

llmh_status llmh__smp_top_k(llmh_sampler *s, llmh_token_array *c) {
    if (s->prm.top_k <= 0) return LLMH_OK;
    size_t k = (size_t)s->prm.top_k; /* validated: <= INT32_MAX */
    if (k < s->prm.min_keep) k = s->prm.min_keep;
    if (k >= c->n) return LLMH_OK;
    if (!c->sorted) llmh__smp_partial_sort(c->data, c->n, k);
    c->n = k;
    c->sorted = 1;
    c->has_p = 0; /* the survivors' p no longer sum to 1 */
    return LLMH_OK;
}

llmh_status llmh__smp_top_p(llmh_sampler *s, llmh_token_array *c) {
    const double top_p = s->prm.top_p;
    const size_t n = c->n;
    if (top_p >= 1.0 || n == 0) return LLMH_OK;
    if (!c->has_p) llmh__smp_softmax(c);

    size_t sorted_upto = n;
    if (!c->sorted) {
        sorted_upto = n > TOP_P_ADAPTIVE_N ? TOP_P_FIRST_K : n;
        llmh__smp_partial_sort(c->data, n, sorted_upto);
    }
    double cum = 0.0;
    size_t last = n;
    for (size_t i = 0; i < n; i++) {
        if (i == sorted_upto) { /* the best part was not enough: sort the rest */
            llmh__smp_partial_sort(c->data + i, n - i, n - i);
            sorted_upto = n;
        }
        cum += c->data[i].p;
        if (cum >= top_p && i + 1 >= s->prm.min_keep) {
            last = i + 1;
            break;
        }
    }
    c->n = last;
    c->sorted = 1;
    if (last < n) c->has_p = 0;
    return LLMH_OK;
}

llmh_status llmh__smp_min_p(llmh_sampler *s, llmh_token_array *c) {
    const size_t n = c->n, min_keep = s->prm.min_keep;
    llmh_token_data *d = c->data;
    if (s->prm.min_p <= 0.0 || n == 0) return LLMH_OK;
    const float log_p = logf((float)s->prm.min_p);

    if (!c->sorted) {
        /* Keep p_i >= min_p * p_max, i.e. logit_i >= max + log(min_p), in
         * place and in order, when that keeps enough. */
        float max_l = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (d[i].logit > max_l) max_l = d[i].logit;
        const float min_logit = max_l + log_p;
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            if (d[i].logit >= min_logit) count++;
        if (count > 0 && count >= min_keep) {
            size_t j = 0;
            for (size_t i = 0; i < n; i++)
                if (d[i].logit >= min_logit) d[j++] = d[i];
            c->n = count;
            if (count < n) c->has_p = 0;
            return LLMH_OK;
        }
        /* Fewer than min_keep pass: keep the best min_keep. */
        size_t keep = min_keep < 1 ? 1 : min_keep;
        if (keep > n) keep = n;
        llmh__smp_partial_sort(d, n, keep);
        c->n = keep;
        c->sorted = 1;
        if (keep < n) c->has_p = 0;
        return LLMH_OK;
    }
    const float min_logit = d[0].logit + log_p;
    size_t i = 1; /* the first always stays */
    for (; i < n; i++)
        if (!(d[i].logit >= min_logit) && i >= min_keep) break;
    c->n = i;
    if (i < n) c->has_p = 0;
    return LLMH_OK;
}

/* Work item of the typical sampler: one candidate's distance from the
 * expected surprise. */
typedef struct typical_item {
    float score; /* |-log p - H| */
    float p;
    llmh_token id;
    uint32_t idx; /* index into the candidate array */
} typical_item;

static int typical_cmp(const void *va, const void *vb) {
    const typical_item *a = va, *b = vb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    if (a->p != b->p) return a->p > b->p ? -1 : 1;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

llmh_status llmh__smp_typical(llmh_sampler *s, llmh_token_array *c) {
    const size_t n = c->n;
    if (s->prm.typical_p >= 1.0 || n <= 1) return LLMH_OK;
    if (n > UINT32_MAX ||
        n > SIZE_MAX / (sizeof(typical_item) + sizeof(llmh_token_data))) {
        s->host->set_error("sampler 'typical': %zu candidates are too many", n);
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_status st = llmh__smp_scratch(s, n * (sizeof(typical_item) + sizeof(llmh_token_data)));
    if (st) return st;
    typical_item *items = s->scratch;
    llmh_token_data *out = (llmh_token_data *)(items + n);

    if (!c->has_p) llmh__smp_softmax(c);
    double entropy = 0.0;
    for (size_t i = 0; i < n; i++) {
        float p = c->data[i].p;
        if (p > 0.0f) entropy -= (double)p * log((double)p);
    }
    for (size_t i = 0; i < n; i++) {
        float p = c->data[i].p;
        items[i].score = p > 0.0f ? (float)fabs(-log((double)p) - entropy) : INFINITY;
        items[i].p = p;
        items[i].id = c->data[i].id;
        items[i].idx = (uint32_t)i;
    }
    qsort(items, n, sizeof *items, typical_cmp);

    const size_t min_keep = s->prm.min_keep;
    double cum = 0.0;
    size_t last = n;
    for (size_t i = 0; i < n; i++) {
        cum += items[i].p;
        if (cum > s->prm.typical_p && (min_keep == 0 || i + 1 >= min_keep)) {
            last = i + 1;
            break;
        }
    }
    for (size_t i = 0; i < last; i++) out[i] = c->data[items[i].idx];
    for (size_t i = 0; i < last; i++) c->data[i] = out[i];
    c->n = last;
    c->sorted = 0;
    if (last < n) c->has_p = 0;
    return LLMH_OK;
}

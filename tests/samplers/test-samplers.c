/*
 * test-samplers.c — the "std" sampler plugin on hand-made candidate arrays:
 * exact survivors and probabilities of each sampler, chains composed in
 * order, penalties after accepts, the seeded dist sampler (reproducible and
 * statistically right) and parameter validation.
 *
 * The plugin is dlopen'ed from its build output and initialized with the
 * core's host API, exactly as the registry does.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static void *g_dl;
static const llmh_plugin_desc *g_desc;
static const llmh_sampler_iface *g_sm;
static void *g_state;

static int suite_init(void) {
    g_dl = dlopen(LLMH_SAMPLER_STD_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!g_dl) {
        fprintf(stderr, "cannot load %s: %s\n", LLMH_SAMPLER_STD_PATH, dlerror());
        return 1;
    }
    llmh_plugin_describe_fn fn = (llmh_plugin_describe_fn)dlsym(g_dl, LLMH_PLUGIN_SYMBOL);
    if (!fn) return 1;
    g_desc = fn();
    if (!g_desc || !g_desc->iface) return 1;
    g_sm = g_desc->iface;
    if (g_desc->init && g_desc->init(llmh_host_api_get(), &g_state) != LLMH_OK) return 1;
    return 0;
}

static int suite_cleanup(void) {
    if (g_desc && g_desc->fini) g_desc->fini(g_state);
    if (g_dl) dlclose(g_dl);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */
#define MAX_KV 16
typedef struct kvbuf {
    llmh_kv items[MAX_KV];
    llmh_kv_list list;
} kvbuf;

static void kv_init(kvbuf *b) {
    memset(b, 0, sizeof *b);
    b->list.items = b->items;
}
static void kv_f(kvbuf *b, const char *key, double x) {
    llmh_kv *kv = &b->items[b->list.n++];
    kv->key = key;
    kv->value.type = LLMH_V_F64;
    kv->value.v.f = x;
}
static void kv_i(kvbuf *b, const char *key, int64_t x) {
    llmh_kv *kv = &b->items[b->list.n++];
    kv->key = key;
    kv->value.type = LLMH_V_I64;
    kv->value.v.i = x;
}
static void kv_b(kvbuf *b, const char *key, int x) {
    llmh_kv *kv = &b->items[b->list.n++];
    kv->key = key;
    kv->value.type = LLMH_V_BOOL;
    kv->value.v.b = x;
}
static void kv_s(kvbuf *b, const char *key, const char *s) {
    llmh_kv *kv = &b->items[b->list.n++];
    kv->key = key;
    kv->value.type = LLMH_V_STRING;
    kv->value.v.s.ptr = s;
    kv->value.v.s.len = strlen(s);
}

static llmh_sampler *make(const char *name, const kvbuf *kv) {
    llmh_sampler *s = NULL;
    llmh_status st = g_sm->create(g_state, name, kv ? &kv->list : NULL, &s);
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Candidates with the given ids and logits. */
static llmh_token_array arr_of(llmh_token_data *d, const llmh_token *ids, const float *logits,
                               size_t n) {
    for (size_t i = 0; i < n; i++) {
        d[i].id = ids[i];
        d[i].logit = logits[i];
        d[i].p = 0.0f;
    }
    llmh_token_array a = {d, n, -1, 0, 0};
    return a;
}

/* Logits whose softmax is exactly `probs` (log of each). */
static llmh_token_array arr_probs(llmh_token_data *d, const llmh_token *ids, const double *probs,
                                  size_t n) {
    for (size_t i = 0; i < n; i++) {
        d[i].id = ids[i];
        d[i].logit = (float)log(probs[i]);
        d[i].p = 0.0f;
    }
    llmh_token_array a = {d, n, -1, 0, 0};
    return a;
}

static void expect_ids(const llmh_token_array *a, const llmh_token *ids, size_t n) {
    CU_ASSERT_EQUAL_FATAL(a->n, n);
    for (size_t i = 0; i < n; i++) CU_ASSERT_EQUAL(a->data[i].id, ids[i]);
}

/* xorshift for test data (independent of the plugin's PRNG). */
static uint64_t g_rs = 88172645463325252ull;
static uint64_t trand(void) {
    g_rs ^= g_rs << 13;
    g_rs ^= g_rs >> 7;
    g_rs ^= g_rs << 17;
    return g_rs;
}
static float trand_f(void) { return (float)((trand() >> 11) * (1.0 / 9007199254740992.0)); }

static void shuffle(llmh_token_data *d, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(trand() % i);
        llmh_token_data t = d[i - 1];
        d[i - 1] = d[j];
        d[j] = t;
    }
}

static int cmp_desc(const void *va, const void *vb) {
    const llmh_token_data *a = va, *b = vb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                 */
/* ------------------------------------------------------------------------ */
static void test_descriptor(void) {
    CU_ASSERT_EQUAL(g_desc->kind, LLMH_PLUGIN_SAMPLER);
    CU_ASSERT_STRING_EQUAL(g_desc->name, "std");
    CU_ASSERT_EQUAL(g_desc->abi_major, LLMH_ABI_MAJOR);
    CU_ASSERT_TRUE(g_sm->struct_size >= sizeof(llmh_sampler_iface));
    static const char *const names[] = {"greedy", "temperature", "top_k", "top_p", "min_p",
                                        "typical", "penalties", "dist"};
    size_t n = 0;
    while (g_sm->names[n]) n++;
    CU_ASSERT_EQUAL(n, 8);
    for (size_t i = 0; i < 8 && i < n; i++) CU_ASSERT_STRING_EQUAL(g_sm->names[i], names[i]);
    static const char *const keys[] = {"temperature", "top_k", "top_p", "min_p", "typical_p",
                                       "repeat_penalty", "frequency_penalty",
                                       "presence_penalty", "penalty_last_n", "seed",
                                       "min_keep"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        int found = 0;
        for (size_t i = 0; g_sm->param_keys[i]; i++)
            if (strcmp(g_sm->param_keys[i], keys[k]) == 0) found = 1;
        CU_ASSERT_TRUE(found);
    }
    /* every name can be created with no parameters at all */
    for (size_t i = 0; i < 8; i++) {
        llmh_sampler *s = NULL;
        CU_ASSERT_EQUAL(g_sm->create(g_state, names[i], NULL, &s), LLMH_OK);
        g_sm->destroy(s);
    }
    g_sm->destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* greedy, temperature                                                        */
/* ------------------------------------------------------------------------ */
static void test_greedy(void) {
    llmh_sampler *s = make("greedy", NULL);
    llmh_token_data d[5];
    const llmh_token ids[] = {10, 11, 12, 13, 14};
    const float lg[] = {1.0f, 3.0f, NAN, 3.0f, -INFINITY};
    llmh_token_array a = arr_of(d, ids, lg, 5);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.selected, 1); /* first of the tied maxima, NaN ignored */
    CU_ASSERT_EQUAL(a.n, 5);        /* greedy does not filter */

    llmh_token_array empty = {d, 0, -1, 0, 0};
    llmh_clear_error();
    CU_ASSERT_EQUAL(g_sm->apply(s, &empty), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "greedy"));
    g_sm->destroy(s);
}

static void test_temperature(void) {
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "temperature", 2.0);
    llmh_sampler *s = make("temperature", &kv);
    llmh_token_data d[4];
    const llmh_token ids[] = {0, 1, 2, 3};
    const float lg[] = {1.0f, -3.0f, 5.0f, 0.5f};
    llmh_token_array a = arr_of(d, ids, lg, 4);
    a.has_p = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.n, 4);
    CU_ASSERT_DOUBLE_EQUAL(d[0].logit, 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d[1].logit, -1.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d[2].logit, 2.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d[3].logit, 0.25, 1e-7);
    CU_ASSERT_EQUAL(a.has_p, 0);
    CU_ASSERT_EQUAL(a.selected, -1);
    g_sm->destroy(s);

    /* temperature 0: only the most likely token survives */
    kv_init(&kv);
    kv_f(&kv, "temperature", 0.0);
    s = make("temperature", &kv);
    a = arr_of(d, ids, lg, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.n, 1);
    CU_ASSERT_EQUAL(a.data[0].id, 2);
    CU_ASSERT_DOUBLE_EQUAL(a.data[0].p, 1.0, 0);
    CU_ASSERT_TRUE(a.has_p);
    g_sm->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* top_k                                                                      */
/* ------------------------------------------------------------------------ */
static void test_top_k(void) {
    const llmh_token ids[] = {0, 1, 2, 3, 4};
    const float lg[] = {0.1f, 2.0f, -1.0f, 3.0f, 1.0f};
    llmh_token_data d[5];
    kvbuf kv;

    kv_init(&kv);
    kv_i(&kv, "top_k", 2);
    llmh_sampler *s = make("top_k", &kv);
    llmh_token_array a = arr_of(d, ids, lg, 5);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token want2[] = {3, 1};
    expect_ids(&a, want2, 2);
    CU_ASSERT_TRUE(a.sorted);
    g_sm->destroy(s);

    /* top_k <= 0 is off; k >= n keeps everything */
    const int64_t offs[] = {0, -5, 5, 100};
    for (size_t t = 0; t < 4; t++) {
        kv_init(&kv);
        kv_i(&kv, "top_k", offs[t]);
        s = make("top_k", &kv);
        a = arr_of(d, ids, lg, 5);
        CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
        expect_ids(&a, ids, 5);
        g_sm->destroy(s);
    }

    /* min_keep raises k */
    kv_init(&kv);
    kv_i(&kv, "top_k", 2);
    kv_i(&kv, "min_keep", 3);
    s = make("top_k", &kv);
    a = arr_of(d, ids, lg, 5);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token want3[] = {3, 1, 4};
    expect_ids(&a, want3, 3);
    g_sm->destroy(s);

    /* an already sorted array is only truncated */
    const llmh_token sids[] = {7, 8, 9};
    const float slg[] = {1.0f, 5.0f, 3.0f}; /* claims sorted: top_k trusts it */
    kv_init(&kv);
    kv_i(&kv, "top_k", 2);
    s = make("top_k", &kv);
    a = arr_of(d, sids, slg, 3);
    a.sorted = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token swant[] = {7, 8};
    expect_ids(&a, swant, 2);
    g_sm->destroy(s);
}

/* top_k on a Qwen-size vocabulary against a full qsort reference. */
static void test_top_k_large(void) {
    const size_t n = 151936;
    llmh_token_data *d = malloc(n * sizeof *d), *ref = malloc(n * sizeof *ref);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    const int64_t ks[] = {1, 40, 1000};
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < n; i++) {
            d[i].id = (llmh_token)i;
            /* coarse values: many exact ties, which the id tie-break orders */
            d[i].logit = (float)(int)(trand_f() * 4000.0f) / 100.0f - 20.0f;
            d[i].p = 0;
        }
        memcpy(ref, d, n * sizeof *d);
        qsort(ref, n, sizeof *ref, cmp_desc);
        kvbuf kv;
        kv_init(&kv);
        kv_i(&kv, "top_k", ks[t]);
        llmh_sampler *s = make("top_k", &kv);
        llmh_token_array a = {d, n, -1, 0, 0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("\n    top_k=%lld over %zu candidates: %.2f ms", (long long)ks[t], n,
               (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        CU_ASSERT_EQUAL_FATAL(a.n, (size_t)ks[t]);
        size_t bad = 0;
        for (size_t i = 0; i < a.n; i++)
            if (a.data[i].id != ref[i].id || a.data[i].logit != ref[i].logit) bad++;
        CU_ASSERT_EQUAL(bad, 0);
        g_sm->destroy(s);
    }
    free(d);
    free(ref);
}

/* ------------------------------------------------------------------------ */
/* top_p                                                                      */
/* ------------------------------------------------------------------------ */
static const llmh_token P4_IDS[] = {20, 21, 22, 23};
static const double P4[] = {0.15, 0.5, 0.05, 0.3}; /* shuffled 0.5 / 0.3 / 0.15 / 0.05 */

static void run_top_p(double p, int64_t min_keep, const llmh_token *want, size_t n_want) {
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "top_p", p);
    if (min_keep >= 0) kv_i(&kv, "min_keep", min_keep);
    llmh_sampler *s = make("top_p", &kv);
    llmh_token_data d[4];
    llmh_token_array a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, want, n_want);
    g_sm->destroy(s);
}

static void test_top_p(void) {
    const llmh_token w1[] = {21};
    const llmh_token w2[] = {21, 23};
    const llmh_token w3[] = {21, 23, 20};
    const llmh_token w4[] = {21, 23, 20, 22};
    run_top_p(0.4, -1, w1, 1);  /* 0.5 >= 0.4 */
    run_top_p(0.7, -1, w2, 2);  /* 0.5, 0.8 >= 0.7 */
    run_top_p(0.85, -1, w3, 3); /* 0.5, 0.8, 0.95 */
    run_top_p(0.99, -1, w4, 4);
    run_top_p(0.0, -1, w1, 1);
    run_top_p(0.4, 3, w3, 3); /* min_keep */

    /* top_p = 1 is off: nothing moves, no softmax */
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "top_p", 1.0);
    llmh_sampler *s = make("top_p", &kv);
    llmh_token_data d[4];
    llmh_token_array a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, P4_IDS, 4);
    CU_ASSERT_FALSE(a.has_p);
    g_sm->destroy(s);

    /* has_p honored: given probabilities are used as they are */
    kv_init(&kv);
    kv_f(&kv, "top_p", 0.5);
    s = make("top_p", &kv);
    const llmh_token ids3[] = {1, 2, 3};
    const float lg3[] = {3.0f, 2.0f, 1.0f};
    a = arr_of(d, ids3, lg3, 3);
    d[0].p = 0.1f; d[1].p = 0.2f; d[2].p = 0.7f; /* deliberately not softmax(logits) */
    a.has_p = 1;
    a.sorted = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.n, 3); /* 0.1, 0.3, 1.0: the given p decide */
    g_sm->destroy(s);
}

/* A large, flat distribution: the best 256 do not hold top_p of the mass, so
 * the sampler must extend its partial sort. Compared with a reference. */
static void test_top_p_large(void) {
    const size_t n = 5000;
    llmh_token_data *d = malloc(n * sizeof *d), *ref = malloc(n * sizeof *ref);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    for (size_t i = 0; i < n; i++) {
        d[i].id = (llmh_token)i;
        d[i].logit = -0.0007f * (float)i;
        d[i].p = 0;
    }
    shuffle(d, n);
    memcpy(ref, d, n * sizeof *d);
    qsort(ref, n, sizeof *ref, cmp_desc);
    double sum = 0, cum = 0;
    for (size_t i = 0; i < n; i++) sum += exp((double)ref[i].logit - (double)ref[0].logit);
    size_t want = n;
    for (size_t i = 0; i < n; i++) {
        cum += exp((double)ref[i].logit - (double)ref[0].logit) / sum;
        if (cum >= 0.9) {
            want = i + 1;
            break;
        }
    }
    CU_ASSERT_TRUE(want > 256); /* the case under test */
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "top_p", 0.9);
    llmh_sampler *s = make("top_p", &kv);
    llmh_token_array a = {d, n, -1, 0, 0};
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(a.n, want);
    CU_ASSERT_TRUE(a.sorted);
    size_t bad = 0;
    for (size_t i = 0; i < a.n; i++) bad += a.data[i].id != ref[i].id;
    CU_ASSERT_EQUAL(bad, 0);
    g_sm->destroy(s);
    free(d);
    free(ref);
}

/* ------------------------------------------------------------------------ */
/* min_p                                                                      */
/* ------------------------------------------------------------------------ */
static void test_min_p(void) {
    kvbuf kv;
    llmh_token_data d[4];
    llmh_token_array a;
    llmh_sampler *s;

    /* 0.2 * 0.5 = 0.1: 0.15, 0.5, 0.3 stay, in their original order */
    kv_init(&kv);
    kv_f(&kv, "min_p", 0.2);
    s = make("min_p", &kv);
    a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token w3[] = {20, 21, 23};
    expect_ids(&a, w3, 3);
    CU_ASSERT_FALSE(a.sorted);
    g_sm->destroy(s);

    /* 0.5 * 0.5 = 0.25 */
    kv_init(&kv);
    kv_f(&kv, "min_p", 0.5);
    s = make("min_p", &kv);
    a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token w2[] = {21, 23};
    expect_ids(&a, w2, 2);
    g_sm->destroy(s);

    /* too few pass: the best min_keep stay, sorted */
    kv_init(&kv);
    kv_f(&kv, "min_p", 0.9);
    kv_i(&kv, "min_keep", 3);
    s = make("min_p", &kv);
    a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    const llmh_token wk[] = {21, 23, 20};
    expect_ids(&a, wk, 3);
    CU_ASSERT_TRUE(a.sorted);
    g_sm->destroy(s);

    /* sorted input: cut where p < min_p * p_max */
    kv_init(&kv);
    kv_f(&kv, "min_p", 0.2);
    s = make("min_p", &kv);
    const llmh_token sids[] = {21, 23, 20, 22};
    const double sp[] = {0.5, 0.3, 0.15, 0.05};
    a = arr_probs(d, sids, sp, 4);
    a.sorted = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, sids, 3);
    g_sm->destroy(s);

    /* min_p = 0 is off */
    kv_init(&kv);
    kv_f(&kv, "min_p", 0.0);
    s = make("min_p", &kv);
    a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, P4_IDS, 4);
    g_sm->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* typical                                                                    */
/* ------------------------------------------------------------------------ */
/* p = 0.5, 0.3, 0.15, 0.05: entropy H = 1.14212; |-ln p - H| =
 * 0.4490 (0.5), 0.0619 (0.3), 0.7550 (0.15), 1.8536 (0.05), so the typical
 * order is 0.3, 0.5, 0.15, 0.05 (ids 23, 21, 20, 22). */
static void run_typical(double tp, int64_t min_keep, const llmh_token *want, size_t n_want) {
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "typical_p", tp);
    if (min_keep >= 0) kv_i(&kv, "min_keep", min_keep);
    llmh_sampler *s = make("typical", &kv);
    llmh_token_data d[4];
    llmh_token_array a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, want, n_want);
    CU_ASSERT_FALSE(a.sorted);
    g_sm->destroy(s);
}

static void test_typical(void) {
    const llmh_token w1[] = {23};
    const llmh_token w2[] = {23, 21};
    const llmh_token w3[] = {23, 21, 20};
    run_typical(0.2, -1, w1, 1);  /* 0.3 > 0.2 */
    run_typical(0.5, -1, w2, 2);  /* 0.3, 0.8 > 0.5 */
    run_typical(0.9, -1, w3, 3);  /* 0.3, 0.8, 0.95 > 0.9 */
    run_typical(0.2, 2, w2, 2);   /* min_keep */

    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "typical_p", 1.0);
    llmh_sampler *s = make("typical", &kv);
    llmh_token_data d[4];
    llmh_token_array a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    expect_ids(&a, P4_IDS, 4);
    g_sm->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* penalties                                                                  */
/* ------------------------------------------------------------------------ */
static void test_penalties(void) {
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "repeat_penalty", 2.0);
    kv_f(&kv, "frequency_penalty", 0.5);
    kv_f(&kv, "presence_penalty", 0.25);
    kv_i(&kv, "penalty_last_n", 3);
    llmh_sampler *s = make("penalties", &kv);
    const llmh_token ids[] = {1, 2, 3, 4};
    const float lg[] = {4.0f, -2.0f, 1.0f, 0.5f};
    llmh_token_data d[4];

    /* nothing accepted yet: no change */
    llmh_token_array a = arr_of(d, ids, lg, 4);
    a.sorted = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    for (size_t i = 0; i < 4; i++) CU_ASSERT_EQUAL(d[i].logit, lg[i]);

    g_sm->accept(s, 1);
    g_sm->accept(s, 1);
    g_sm->accept(s, 2);
    a = arr_of(d, ids, lg, 4);
    a.sorted = 1;
    a.has_p = 1;
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_DOUBLE_EQUAL(d[0].logit, 4.0 / 2 - (2 * 0.5 + 0.25), 1e-6);   /* 0.75 */
    CU_ASSERT_DOUBLE_EQUAL(d[1].logit, -2.0 * 2 - (1 * 0.5 + 0.25), 1e-6);  /* -4.75 */
    CU_ASSERT_DOUBLE_EQUAL(d[2].logit, 1.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(d[3].logit, 0.5, 0);
    CU_ASSERT_FALSE(a.sorted);
    CU_ASSERT_FALSE(a.has_p);

    /* the window holds the last 3: 1, 2, 3 */
    g_sm->accept(s, 3);
    a = arr_of(d, ids, lg, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_DOUBLE_EQUAL(d[0].logit, 4.0 / 2 - 0.75, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(d[1].logit, -4.75, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(d[2].logit, 1.0 / 2 - 0.75, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(d[3].logit, 0.5, 0);

    /* reset forgets */
    g_sm->reset(s);
    a = arr_of(d, ids, lg, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    for (size_t i = 0; i < 4; i++) CU_ASSERT_EQUAL(d[i].logit, lg[i]);
    g_sm->destroy(s);

    /* penalty_last_n = 0: off */
    kv_init(&kv);
    kv_f(&kv, "repeat_penalty", 2.0);
    kv_i(&kv, "penalty_last_n", 0);
    s = make("penalties", &kv);
    g_sm->accept(s, 1);
    a = arr_of(d, ids, lg, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_EQUAL(d[0].logit, 4.0f);
    g_sm->destroy(s);

    /* penalty_last_n = -1: every accepted token counts */
    kv_init(&kv);
    kv_f(&kv, "frequency_penalty", 0.01);
    kv_i(&kv, "penalty_last_n", -1);
    s = make("penalties", &kv);
    for (int i = 0; i < 500; i++) g_sm->accept(s, 4);
    a = arr_of(d, ids, lg, 4);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_DOUBLE_EQUAL(d[3].logit, 0.5 - 5.0, 1e-5);
    CU_ASSERT_EQUAL(d[0].logit, 4.0f);
    g_sm->destroy(s);
}

/* Counts over a sliding window against brute force, with many distinct
 * tokens entering and leaving (exercises the hash table's deletions), and
 * the unbounded mode growing its table. `identity`: the candidates are the
 * whole vocabulary in id order (the fast path), with now and then a token
 * outside it in the history (which must fall back to the general path). */
static void run_penalty_window(int identity) {
    enum { V = 300, STEPS = 4000 };
    const int64_t windows[] = {1, 7, 50, -1};
    static llmh_token hist[STEPS];
    static llmh_token_data d[V];
    for (size_t w = 0; w < 4; w++) {
        kvbuf kv;
        kv_init(&kv);
        kv_f(&kv, "frequency_penalty", 1.0);
        kv_i(&kv, "penalty_last_n", windows[w]);
        llmh_sampler *s = make("penalties", &kv);
        size_t bad = 0;
        for (int step = 0; step < STEPS; step++) {
            llmh_token t;
            if (identity) /* mostly in the vocabulary, rarely outside it */
                t = (trand() % 64 == 0) ? (llmh_token)(V + trand() % 3) : (llmh_token)(trand() % V);
            else /* skewed: a few hot tokens and a long tail */
                t = (trand() % 4 == 0) ? (llmh_token)(trand() % 5) : (llmh_token)(trand() % V) * 7919;
            hist[step] = t;
            g_sm->accept(s, t);
            if (step % 97 != 0 && step != STEPS - 1) continue;
            for (int i = 0; i < V; i++) {
                d[i].id = identity || i < 5 ? (llmh_token)i : (llmh_token)i * 7919;
                d[i].logit = 0.0f;
            }
            llmh_token_array a = {d, V, -1, 0, 0};
            CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
            int64_t from = windows[w] < 0 ? 0 : step + 1 - windows[w];
            if (from < 0) from = 0;
            for (int i = 0; i < V; i++) {
                int cnt = 0;
                for (int64_t j = from; j <= step; j++) cnt += hist[j] == d[i].id;
                if (d[i].logit != -(float)cnt) bad++;
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
        g_sm->destroy(s);
    }
}

static void test_penalties_window(void) { run_penalty_window(0); }
static void test_penalties_window_identity(void) { run_penalty_window(1); }

/* ------------------------------------------------------------------------ */
/* dist                                                                       */
/* ------------------------------------------------------------------------ */
static const double P5[] = {0.4, 0.3, 0.15, 0.1, 0.05};
static const llmh_token P5_IDS[] = {0, 1, 2, 3, 4};

static llmh_token draw(llmh_sampler *s) {
    llmh_token_data d[5];
    llmh_token_array a = arr_probs(d, P5_IDS, P5, 5);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_FATAL(a.selected >= 0 && a.selected < 5);
    return a.data[a.selected].id;
}

static llmh_sampler *make_dist(int64_t seed) {
    kvbuf kv;
    kv_init(&kv);
    if (seed >= 0) kv_i(&kv, "seed", seed);
    return make("dist", &kv);
}

static void test_dist_reproducible(void) {
    enum { N = 1000 };
    static llmh_token s1[N], s2[N], s3[N], s4[N];
    llmh_sampler *a = make_dist(123), *b = make_dist(123), *c = make_dist(124);
    for (int i = 0; i < N; i++) {
        s1[i] = draw(a);
        s2[i] = draw(b);
        s3[i] = draw(c);
    }
    CU_ASSERT_EQUAL(memcmp(s1, s2, sizeof s1), 0);
    size_t diff = 0;
    for (int i = 0; i < N; i++) diff += s1[i] != s3[i];
    CU_ASSERT_TRUE(diff > N / 4); /* independent streams disagree often */

    /* reset restarts the sequence */
    g_sm->reset(a);
    for (int i = 0; i < N; i++) s4[i] = draw(a);
    CU_ASSERT_EQUAL(memcmp(s1, s4, sizeof s1), 0);

    /* no seed key = the documented default seed 42 */
    llmh_sampler *dflt = make_dist(-1), *s42 = make_dist(42);
    size_t same = 0;
    for (int i = 0; i < N; i++) same += draw(dflt) == draw(s42);
    CU_ASSERT_EQUAL(same, N);

    g_sm->destroy(a);
    g_sm->destroy(b);
    g_sm->destroy(c);
    g_sm->destroy(dflt);
    g_sm->destroy(s42);
}

/* The first draws for seed 1 are pinned: the PRNG (xoshiro256** seeded by
 * splitmix64) is integer-only, so these hold on every platform. */
static void test_dist_pinned(void) {
    llmh_sampler *s = make_dist(1);
    llmh_token got[16];
    for (int i = 0; i < 16; i++) got[i] = draw(s);
    /* recompute the expected sequence with an independent implementation */
    uint64_t x = 0, z0 = (x + 0x9E3779B97F4A7C15ull);
    z0 = (z0 ^ (z0 >> 30)) * 0xBF58476D1CE4E5B9ull;
    z0 = (z0 ^ (z0 >> 27)) * 0x94D049BB133111EBull;
    CU_ASSERT_EQUAL(z0 ^ (z0 >> 31), 0xE220A8397B1DCDAFull); /* splitmix64(0), published */
    uint64_t st[4];
    x = 1;
    for (int i = 0; i < 4; i++) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        st[i] = z ^ (z >> 31);
    }
    for (int i = 0; i < 16; i++) {
        uint64_t r = st[1] * 5;
        r = ((r << 7) | (r >> 57)) * 9;
        uint64_t t = st[1] << 17;
        st[2] ^= st[0];
        st[3] ^= st[1];
        st[1] ^= st[2];
        st[0] ^= st[3];
        st[2] ^= t;
        st[3] = (st[3] << 45) | (st[3] >> 19);
        double u = (double)(r >> 11) / 9007199254740992.0;
        /* softmax of log(P5) in float, as the plugin does */
        float pf[5];
        double sum = 0, cum = 0;
        for (int k = 0; k < 5; k++) {
            pf[k] = expf((float)log(P5[k]) - (float)log(P5[0]));
            sum += pf[k];
        }
        for (int k = 0; k < 5; k++) pf[k] = (float)(pf[k] / sum);
        sum = 0;
        for (int k = 0; k < 5; k++) sum += pf[k];
        llmh_token want = 4;
        for (int k = 0; k < 5; k++) {
            cum += pf[k];
            if (cum > u * sum) {
                want = k;
                break;
            }
        }
        CU_ASSERT_EQUAL(got[i], want);
    }
    g_sm->destroy(s);
}

static void test_dist_statistics(void) {
    enum { N = 100000 };
    llmh_sampler *s = make_dist(7);
    long count[5] = {0};
    for (int i = 0; i < N; i++) count[draw(s)]++;
    double chi2 = 0;
    for (int k = 0; k < 5; k++) {
        double e = N * P5[k];
        chi2 += (count[k] - e) * (count[k] - e) / e;
    }
    printf("\n    dist: 100000 draws, chi-square %.2f (4 dof; 18.47 is p = 0.001)", chi2);
    CU_ASSERT_TRUE(chi2 < 18.47);

    /* the array's probabilities are normalized after dist */
    llmh_token_data d[5];
    llmh_token_array a = arr_probs(d, P5_IDS, P5, 5);
    CU_ASSERT_EQUAL(g_sm->apply(s, &a), LLMH_OK);
    CU_ASSERT_TRUE(a.has_p);
    for (int k = 0; k < 5; k++) CU_ASSERT_DOUBLE_EQUAL(d[k].p, P5[k], 1e-6);

    /* one candidate, and none */
    llmh_token_array one = {d, 1, -1, 0, 0};
    CU_ASSERT_EQUAL(g_sm->apply(s, &one), LLMH_OK);
    CU_ASSERT_EQUAL(one.selected, 0);
    llmh_token_array none = {d, 0, -1, 0, 0};
    CU_ASSERT_EQUAL(g_sm->apply(s, &none), LLMH_ERR_INVALID_ARG);

    /* has_p honored: the given probabilities decide, not the logits */
    const llmh_token hids[] = {8, 9, 10};
    const float hlg[] = {10.0f, -10.0f, 0.0f};
    for (int i = 0; i < 200; i++) {
        llmh_token_array h = arr_of(d, hids, hlg, 3);
        d[0].p = 0.0f; d[1].p = 1.0f; d[2].p = 0.0f;
        h.has_p = 1;
        CU_ASSERT_EQUAL(g_sm->apply(s, &h), LLMH_OK);
        CU_ASSERT_EQUAL(h.data[h.selected].id, 9);
    }

    /* tokens with zero probability are never drawn */
    const llmh_token ids[] = {5, 6, 7};
    const float lg[] = {-INFINITY, 0.0f, -INFINITY};
    for (int i = 0; i < 200; i++) {
        llmh_token_array z = arr_of(d, ids, lg, 3);
        CU_ASSERT_EQUAL(g_sm->apply(s, &z), LLMH_OK);
        CU_ASSERT_EQUAL(z.data[z.selected].id, 6);
    }
    g_sm->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Chains                                                                     */
/* ------------------------------------------------------------------------ */
typedef struct chain {
    llmh_sampler *s[8];
    size_t n;
} chain;

static void chain_make(chain *c, const char *const *names, size_t n, const kvbuf *kv) {
    c->n = n;
    for (size_t i = 0; i < n; i++) c->s[i] = make(names[i], kv);
}
static llmh_status chain_apply(chain *c, llmh_token_array *a) {
    for (size_t i = 0; i < c->n; i++) {
        llmh_status st = g_sm->apply(c->s[i], a);
        if (st) return st;
    }
    return LLMH_OK;
}
static void chain_accept(chain *c, llmh_token t) {
    for (size_t i = 0; i < c->n; i++) g_sm->accept(c->s[i], t);
}
static void chain_free(chain *c) {
    for (size_t i = 0; i < c->n; i++) g_sm->destroy(c->s[i]);
}

static void test_chain_order(void) {
    /* logits 2.0, 1.5, 1.0, 0.5, 0.0, -1.0; token 0 seen twice with
     * repeat_penalty 1.6 -> 1.25. */
    const llmh_token ids[] = {0, 1, 2, 3, 4, 5};
    const float lg[] = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -1.0f};
    llmh_token_data d[6];
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "repeat_penalty", 1.6);
    kv_i(&kv, "top_k", 3);
    kv_f(&kv, "top_p", 0.8);
    kv_f(&kv, "temperature", 0.5);
    kv_i(&kv, "seed", 5);

    /* penalties, top_k: 1.5 (1), 1.25 (0), 1.0 (2); temperature 0.5 -> 3, 2.5,
     * 2; softmax .5065 .3072 .1863; top_p 0.8 keeps 2; dist renormalizes:
     * p = 1 / (1 + e^-0.5) = .622459 and .377541. */
    static const char *const c1[] = {"penalties", "top_k", "temperature", "top_p", "dist"};
    chain ch;
    chain_make(&ch, c1, 5, &kv);
    chain_accept(&ch, 0);
    chain_accept(&ch, 0);
    llmh_token_array a = arr_of(d, ids, lg, 6);
    CU_ASSERT_EQUAL(chain_apply(&ch, &a), LLMH_OK);
    const llmh_token w2[] = {1, 0};
    expect_ids(&a, w2, 2);
    CU_ASSERT_DOUBLE_EQUAL(a.data[0].p, 0.622459, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(a.data[1].p, 0.377541, 1e-5);
    CU_ASSERT_TRUE(a.selected == 0 || a.selected == 1);
    chain_free(&ch);

    /* top_p before temperature: softmax(1.5, 1.25, 1.0) = .4192 .3265 .2543
     * reaches 0.8 only with all three. */
    static const char *const c2[] = {"penalties", "top_k", "top_p", "temperature", "dist"};
    chain_make(&ch, c2, 5, &kv);
    chain_accept(&ch, 0);
    chain_accept(&ch, 0);
    a = arr_of(d, ids, lg, 6);
    CU_ASSERT_EQUAL(chain_apply(&ch, &a), LLMH_OK);
    const llmh_token w3[] = {1, 0, 2};
    expect_ids(&a, w3, 3);
    chain_free(&ch);

    /* ending in greedy: the best survivor */
    static const char *const c3[] = {"penalties", "top_k", "min_p", "greedy"};
    chain_make(&ch, c3, 4, &kv);
    chain_accept(&ch, 0);
    chain_accept(&ch, 0);
    a = arr_of(d, ids, lg, 6);
    CU_ASSERT_EQUAL(chain_apply(&ch, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.data[a.selected].id, 1);
    chain_free(&ch);

    /* without the accepts token 0 wins */
    chain_make(&ch, c3, 4, &kv);
    a = arr_of(d, ids, lg, 6);
    CU_ASSERT_EQUAL(chain_apply(&ch, &a), LLMH_OK);
    CU_ASSERT_EQUAL(a.data[a.selected].id, 0);
    chain_free(&ch);
}

/* A decode-sized chain on the full vocabulary: same seed, same tokens. */
static void test_chain_vocab(void) {
    const size_t n = 151936;
    enum { STEPS = 50 };
    llmh_token_data *d = malloc(n * sizeof *d);
    float *logits = malloc(n * sizeof *logits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(logits);
    for (size_t i = 0; i < n; i++) logits[i] = trand_f() * 12.0f - 6.0f;
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "repeat_penalty", 1.1);
    kv_i(&kv, "top_k", 40);
    kv_f(&kv, "top_p", 0.9);
    kv_f(&kv, "min_p", 0.05);
    kv_f(&kv, "temperature", 0.7);
    kv_i(&kv, "seed", 99);
    static const char *const names[] = {"penalties", "top_k", "top_p", "min_p", "temperature",
                                        "dist"};
    llmh_token run[2][STEPS];
    double ms = 0;
    for (int r = 0; r < 2; r++) {
        chain ch;
        chain_make(&ch, names, 6, &kv);
        for (int step = 0; step < STEPS; step++) {
            for (size_t i = 0; i < n; i++) {
                d[i].id = (llmh_token)i;
                d[i].logit = logits[(i + (size_t)step * 7) % n];
                d[i].p = 0;
            }
            llmh_token_array a = {d, n, -1, 0, 0};
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            CU_ASSERT_EQUAL_FATAL(chain_apply(&ch, &a), LLMH_OK);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            ms += (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            CU_ASSERT_TRUE_FATAL(a.selected >= 0 && (size_t)a.selected < a.n);
            CU_ASSERT_TRUE(a.n <= 40);
            run[r][step] = a.data[a.selected].id;
            chain_accept(&ch, run[r][step]);
        }
        chain_free(&ch);
    }
    printf("\n    6-sampler chain over %zu candidates: %.2f ms per token", n, ms / (2 * STEPS));
    CU_ASSERT_EQUAL(memcmp(run[0], run[1], sizeof run[0]), 0);
    free(d);
    free(logits);
}

/* ------------------------------------------------------------------------ */
/* Parameter validation                                                       */
/* ------------------------------------------------------------------------ */
static void expect_reject(const char *name, const kvbuf *kv, llmh_status want, const char *needle1,
                          const char *needle2) {
    llmh_sampler *s = (llmh_sampler *)(uintptr_t)1;
    llmh_clear_error();
    llmh_status st = g_sm->create(g_state, name, &kv->list, &s);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(s);
    const char *msg = llmh_last_error();
    if (!strstr(msg, needle1) || (needle2 && !strstr(msg, needle2)))
        fprintf(stderr, "\n    unexpected message: %s", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle1));
    if (needle2) CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle2));
    if (st == LLMH_OK) g_sm->destroy(s);
}

static void test_bad_params(void) {
    kvbuf kv;
#define REJECT(NAME, SETUP, N1, N2)                          \
    do {                                                     \
        kv_init(&kv);                                        \
        SETUP;                                               \
        expect_reject(NAME, &kv, LLMH_ERR_CONFIG, N1, N2);   \
    } while (0)
    REJECT("top_p", kv_f(&kv, "top_p", 1.5), "'top_p'", "between 0 and 1");
    REJECT("top_p", kv_f(&kv, "top_p", -0.1), "'top_p'", "out of range");
    REJECT("dist", kv_f(&kv, "top_p", 2.0), "'top_p'", NULL); /* every key is checked */
    REJECT("temperature", kv_s(&kv, "temperature", "hot"), "'temperature'", "must be a number");
    REJECT("temperature", kv_f(&kv, "temperature", NAN), "'temperature'", "out of range");
    REJECT("temperature", kv_f(&kv, "temperature", -1.0), "'temperature'", "out of range");
    REJECT("top_k", kv_b(&kv, "top_k", 1), "'top_k'", "integer");
    REJECT("top_k", kv_f(&kv, "top_k", 4.5), "'top_k'", "integer");
    REJECT("top_k", kv_i(&kv, "top_k", 5000000000ll), "'top_k'", "out of range");
    REJECT("min_p", kv_f(&kv, "min_p", 1.01), "'min_p'", NULL);
    REJECT("typical", kv_f(&kv, "typical_p", INFINITY), "'typical_p'", NULL);
    REJECT("penalties", kv_f(&kv, "repeat_penalty", 0.0), "'repeat_penalty'", "greater than 0");
    REJECT("penalties", kv_f(&kv, "repeat_penalty", -2.0), "'repeat_penalty'", NULL);
    REJECT("penalties", kv_i(&kv, "penalty_last_n", -2), "'penalty_last_n'", "between -1");
    REJECT("penalties", kv_s(&kv, "frequency_penalty", "x"), "'frequency_penalty'", NULL);
    REJECT("penalties", kv_f(&kv, "presence_penalty", NAN), "'presence_penalty'", NULL);
    REJECT("dist", kv_i(&kv, "seed", -1), "'seed'", "out of range");
    REJECT("dist", kv_f(&kv, "seed", 1.5), "'seed'", "integer");
    REJECT("top_k", kv_i(&kv, "min_keep", -1), "'min_keep'", NULL);
#undef REJECT

    /* an unknown sampler name */
    kv_init(&kv);
    expect_reject("mirostat", &kv, LLMH_ERR_NOT_FOUND, "mirostat", "top_k");

    /* integral floats and unsigned seeds are accepted */
    kv_init(&kv);
    kv_f(&kv, "top_k", 40.0);
    llmh_sampler *s = make("top_k", &kv);
    g_sm->destroy(s);
    kv_init(&kv);
    kv.items[0].key = "seed";
    kv.items[0].value.type = LLMH_V_U64;
    kv.items[0].value.v.u = UINT64_MAX;
    kv.list.n = 1;
    s = make("dist", &kv);
    g_sm->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Through the registry                                                       */
/* ------------------------------------------------------------------------ */
/* The registry finds the plugin by any of its sampler names and the
 * samplers work through the loaded plugin's own state. */
static void test_registry(void) {
    llmh_registry *reg = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_add_path(reg, LLMH_SAMPLER_STD_PATH), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_scan(reg), LLMH_OK);
    const llmh_plugin_info *info = NULL;
    for (size_t i = 0; i < llmh_registry_count(reg); i++) {
        const llmh_plugin_info *pi = llmh_registry_info(reg, i);
        if (pi->kind == LLMH_PLUGIN_SAMPLER && strcmp(pi->name, "std") == 0) info = pi;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info->provides);
    size_t n = 0;
    while (info->provides[n]) n++;
    CU_ASSERT_EQUAL(n, 8);

    llmh_plugin *pl = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "top_p", &pl), LLMH_OK);
    const llmh_sampler_iface *sm = llmh_plugin_iface(pl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sm);
    kvbuf kv;
    kv_init(&kv);
    kv_f(&kv, "top_p", 0.7);
    llmh_sampler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(sm->create(llmh_plugin_state(pl), "top_p", &kv.list, &s), LLMH_OK);
    llmh_token_data d[4];
    llmh_token_array a = arr_probs(d, P4_IDS, P4, 4);
    CU_ASSERT_EQUAL(sm->apply(s, &a), LLMH_OK);
    const llmh_token w2[] = {21, 23};
    expect_ids(&a, w2, 2);
    sm->destroy(s);
    llmh_plugin_release(pl);

    /* a name no plugin provides */
    pl = NULL;
    CU_ASSERT_NOT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "mirostat", &pl), LLMH_OK);
    CU_ASSERT_PTR_NULL(pl);
    llmh_registry_free(reg);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"descriptor", test_descriptor},
        {"greedy", test_greedy},
        {"temperature", test_temperature},
        {"top_k", test_top_k},
        {"top_k on 151936 candidates", test_top_k_large},
        {"top_p", test_top_p},
        {"top_p adaptive sort", test_top_p_large},
        {"min_p", test_min_p},
        {"typical", test_typical},
        {"penalties", test_penalties},
        {"penalties window vs brute force", test_penalties_window},
        {"penalties window, vocabulary order", test_penalties_window_identity},
        {"dist reproducible", test_dist_reproducible},
        {"dist pinned sequence", test_dist_pinned},
        {"dist statistics", test_dist_statistics},
        {"chain order", test_chain_order},
        {"chain on the full vocabulary", test_chain_vocab},
        {"bad params", test_bad_params},
        {"through the registry", test_registry},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"sampler-std", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

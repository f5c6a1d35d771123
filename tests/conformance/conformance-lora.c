/* conformance-lora.c — LLMH_OP_LORA (SDK 1.1, Q8_0 1.2) against a
 * double-precision reference, for every adapter type the backend claims
 * (F32, F16, BF16, and Q8_0 with B transposed: src2 is [M, R]).
 *
 * Each case is a graph of one or more consecutive LORA nodes on one dst and
 * one x (several adapters on one projection, which a backend may fuse):
 *   dst[:, t] += (fp0_i * g_i[t]) * B_i (A_i x[:, t])   for i in node order.
 * The reference widens the adapter values exactly (as the SDK requires) and
 * sums in double. Tolerance per element: 1e-5 of the magnitude bound
 * |dst0| + sum_i |c_i| * sum_j |B_i[m, j]| * sum_k |A_i[j, k] x[k, t]|
 * (f32 partial sums over K <= 4864 stay well inside it), none for tokens
 * whose gate is 0 in every node: those columns must be bit-identical to the
 * dst that went in, even when x holds an infinity there (the SDK: a zero
 * gate leaves the token untouched).
 * Every case runs with the adapter tensors as stored and again after
 * weight_prepare (the host prepares adapter tensors like weights, and a
 * backend may keep them in another layout). Cases cover N = 1 and N > 1, gates absent/present with zeros, x with
 * padded columns and x transposed (nb[0] != 4), ranks 1..32, K and M not
 * multiples of 16, a projection large enough for threaded paths, and 1, 3
 * and 4 adapters on one dst. Q8_0 runs its own cases (K and M multiples
 * of 32, ranks up to 80, the decode shapes of Qwen2.5-0.5B's projections).
 * Malformed nodes (A and B of different types, shapes that do not chain)
 * must be refused, not run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

#define LORA_MAX_AD 4

typedef struct lora_case {
    const char *name;
    int64_t k, m, n;
    int n_ad;
    int64_t rank[LORA_MAX_AD];
    int gated[LORA_MAX_AD]; /* 1: per-token gate src3 with some zeros */
    int x_layout;           /* 0 contiguous, 1 padded columns, 2 transposed (nb[0] != 4) */
    int dead_token;         /* gate 0 in every node for the last token, x = inf there */
} lora_case;

static const lora_case k_cases[] = {
    {"decode N=1", 64, 48, 1, 1, {8}, {0}, 0, 0},
    {"decode N=1 gated", 96, 40, 1, 1, {16}, {1}, 0, 0},
    {"N=5 gated, padded x", 72, 33, 5, 1, {8}, {1}, 1, 0},
    {"odd sizes K=33 M=17 rank 3", 33, 17, 6, 1, {3}, {0}, 0, 0},
    {"rank 1, transposed x", 40, 24, 3, 1, {1}, {0}, 2, 0},
    {"3 adapters on one dst", 80, 56, 7, 3, {4, 16, 1}, {0, 1, 0}, 1, 0},
    {"4 adapters, gated, dead token", 48, 35, 9, 4, {8, 2, 32, 5}, {1, 1, 0, 1}, 0, 1},
    {"3 adapters, transposed x, dead token", 37, 29, 4, 3, {6, 6, 6}, {1, 1, 1}, 2, 1},
    {"projection 896 -> 4864 rank 16, N=4", 896, 4864, 4, 1, {16}, {0}, 0, 0},
    {"2 adapters 4864 -> 896, N=1", 4864, 896, 1, 2, {16, 8}, {0, 1}, 0, 0},
};

/* Q8_0: K and M multiples of 32 (its blocks run along A's rows and along
 * the transposed B's rows) */
static const lora_case k_cases_q8[] = {
    {"decode N=1", 64, 64, 1, 1, {8}, {0}, 0, 0},
    {"N=5 gated, padded x", 96, 32, 5, 1, {16}, {1}, 1, 0},
    {"rank 1, transposed x", 32, 96, 3, 1, {1}, {0}, 2, 0},
    {"3 adapters on one dst, M=160", 128, 160, 7, 3, {4, 16, 1}, {0, 1, 0}, 1, 0},
    {"4 adapters, gated, dead token", 64, 96, 9, 4, {8, 2, 32, 5}, {1, 1, 0, 1}, 0, 1},
    {"rank 80 and 64, N=2", 96, 288, 2, 2, {80, 64}, {0, 0}, 0, 0},
    {"4 adapters 896 -> 128 (k/v), N=1", 896, 128, 1, 4, {16, 16, 16, 16}, {0, 0, 0, 0}, 0, 0},
    {"projection 896 -> 4864 rank 16, N=4", 896, 4864, 4, 1, {16}, {0}, 0, 0},
    {"4 adapters 4864 -> 896, N=1", 4864, 896, 1, 4, {16, 16, 16, 16}, {0, 1, 0, 0}, 0, 0},
    {"4 adapters 896 -> 896, N=6 gated", 896, 896, 6, 4, {16, 16, 16, 16}, {1, 0, 1, 0}, 1, 0},
};

/* x as a [K, N] view over a buffer of N columns, or transposed. */
static cf_tensor *new_x(int64_t k, int64_t n, int layout) {
    if (layout != 2) return cf_new(LLMH_DTYPE_F32, k, n, 1, 1, layout == 1 ? 12 : 0);
    cf_tensor *t = cf_new(LLMH_DTYPE_F32, n, k, 1, 1, 0);
    if (!t) return NULL;
    t->t.ne[0] = k;
    t->t.ne[1] = n;
    t->t.nb[0] = (size_t)n * 4;
    t->t.nb[1] = 4;
    t->t.nb[2] = t->t.nb[3] = (size_t)n * (size_t)k * 4;
    return t;
}

static llmh_status run_nodes(llmh_node *nodes, size_t n) {
    llmh_graph g = {sizeof g, n, nodes};
    llmh_status st = cf_cur->bi->graph_compute(cf_cur->be, &g);
    if (st != LLMH_OK) fprintf(stderr, "  [%s] graph_compute: %s\n", cf_cur->name, llmh_last_error());
    return st;
}

static void lora_node(llmh_node *nd, cf_tensor *d, cf_tensor *a, cf_tensor *x, cf_tensor *b, cf_tensor *g, float s) {
    memset(nd, 0, sizeof *nd);
    nd->struct_size = sizeof *nd;
    nd->op = LLMH_OP_LORA;
    nd->dst = &d->t;
    nd->src[0] = &a->t;
    nd->src[1] = &x->t;
    nd->src[2] = &b->t;
    nd->src[3] = g ? &g->t : NULL;
    nd->fp[0] = s;
}

/* Q8_0: v (rows of ne0) quantized into t, and replaced by the values as
 * stored (d * q) */
static void put_q8(cf_tensor *t, float *v, int64_t ne0, int64_t rows) {
    size_t row = (size_t)(ne0 / 32) * 34;
    uint8_t *q = malloc(row * (size_t)rows);
    CU_ASSERT_EQUAL_FATAL(llmh_quantize(LLMH_DTYPE_Q8_0, v, q, ne0 * rows), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_dequantize(LLMH_DTYPE_Q8_0, q, v, ne0 * rows), LLMH_OK);
    cf_put_rows(t, q);
    free(q);
}

/* B [R, M] (bv[m * R + j]) as a Q8_0 transposed src2 [M, R]; bv becomes
 * the values as stored */
static void put_q8_bt(cf_tensor *t, float *bv, int64_t R, int64_t M) {
    float *bt = malloc((size_t)(R * M) * sizeof(float));
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < R; j++) bt[j * M + m] = bv[m * R + j];
    put_q8(t, bt, M, R);
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < R; j++) bv[m * R + j] = bt[j * M + m];
    free(bt);
}

/* values as the backend sees them after storage in `type` */
static void stored(llmh_dtype type, float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (type == LLMH_DTYPE_F16) v[i] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(v[i]));
        else if (type == LLMH_DTYPE_BF16) v[i] = llmh_bf16_to_fp32(llmh_fp32_to_bf16(v[i]));
    }
}

static bool run_case(const lora_case *c, llmh_dtype type, uint64_t seed, bool prep) {
    int64_t K = c->k, M = c->m, N = c->n;
    cf_seed(seed);
    cf_tensor *x = new_x(K, N, c->x_layout), *d = cf_new(LLMH_DTYPE_F32, M, N, 1, 1, 0);
    cf_tensor *a[LORA_MAX_AD] = {0}, *b[LORA_MAX_AD] = {0}, *g[LORA_MAX_AD] = {0};
    float *av[LORA_MAX_AD] = {0}, *bv[LORA_MAX_AD] = {0}, *gv[LORA_MAX_AD] = {0}, scale[LORA_MAX_AD];
    float *xv = malloc((size_t)(K * N) * sizeof(float)), *d0 = malloc((size_t)(M * N) * sizeof(float));
    float *got = malloc((size_t)(M * N) * sizeof(float));
    double *want = malloc((size_t)(M * N) * sizeof(double)), *mag = malloc((size_t)(M * N) * sizeof(double));
    bool ok = x && d;
    for (int64_t i = 0; i < K * N; i++) xv[i] = cf_randf() * 2.0f;
    if (c->dead_token)
        for (int64_t k = 0; k < K; k++) xv[(N - 1) * K + k] = k % 5 == 0 ? INFINITY : 1e30f;
    for (int64_t i = 0; i < M * N; i++) d0[i] = cf_randf() * 4.0f;
    llmh_node nodes[LORA_MAX_AD];
    for (int i = 0; i < c->n_ad && ok; i++) {
        int64_t R = c->rank[i];
        bool q8 = type == LLMH_DTYPE_Q8_0;
        a[i] = cf_new(type, K, R, 1, 1, 0);
        b[i] = q8 ? cf_new(type, M, R, 1, 1, 0) : cf_new(type, R, M, 1, 1, 0);
        ok = a[i] && b[i];
        if (!ok) break;
        av[i] = malloc((size_t)(K * R) * sizeof(float));
        bv[i] = malloc((size_t)(R * M) * sizeof(float));
        for (int64_t j = 0; j < K * R; j++) av[i][j] = cf_randf() * 0.5f;
        for (int64_t j = 0; j < R * M; j++) bv[i][j] = cf_randf() * 0.5f;
        if (q8) {
            put_q8(a[i], av[i], K, R);
            put_q8_bt(b[i], bv[i], R, M);
        } else {
            stored(type, av[i], K * R);
            stored(type, bv[i], R * M);
            cf_put(a[i], av[i]);
            cf_put(b[i], bv[i]);
        }
        if (prep) { /* as the host does for adapter tensors */
            CU_ASSERT_EQUAL(cf_cur->bi->weight_prepare(cf_cur->be, &a[i]->t), LLMH_OK);
            CU_ASSERT_EQUAL(cf_cur->bi->weight_prepare(cf_cur->be, &b[i]->t), LLMH_OK);
        }
        scale[i] = 0.25f + 1.5f * (float)i + 0.0625f * (cf_randf() + 1.0f);
        if (c->gated[i] || c->dead_token) {
            g[i] = cf_new(LLMH_DTYPE_F32, N, 1, 1, 1, 0);
            ok = g[i] != NULL;
            if (!ok) break;
            gv[i] = malloc((size_t)N * sizeof(float));
            for (int64_t t = 0; t < N; t++) {
                float r = cf_randf();
                gv[i][t] = c->gated[i] && N > 1 && r < -0.4f ? 0.0f : 0.5f * (r + 1.0f) + 0.05f;
            }
            if (c->gated[i] && N > 2) gv[i][1] = 0.0f; /* at least one zero gate */
            if (c->dead_token) gv[i][N - 1] = 0.0f;
            cf_put(g[i], gv[i]);
        }
        lora_node(&nodes[i], d, a[i], x, b[i], g[i], scale[i]);
    }
    if (ok) {
        cf_put(x, xv);
        cf_put(d, d0);
        ok = run_nodes(nodes, (size_t)c->n_ad) == LLMH_OK;
    }
    if (ok) {
        cf_get(d, got);
        for (int64_t t = 0; t < N; t++)
            for (int64_t m = 0; m < M; m++) {
                double w = d0[t * M + m], s = fabs(d0[t * M + m]);
                for (int i = 0; i < c->n_ad; i++) {
                    float gt = gv[i] ? gv[i][t] : 1.0f;
                    if (gt == 0.0f) continue;
                    float coef = scale[i] * gt; /* fp0 * g, an f32 product */
                    double y = 0.0, ym = 0.0;
                    for (int64_t j = 0; j < c->rank[i]; j++) {
                        double r = 0.0, rm = 0.0;
                        for (int64_t k = 0; k < K; k++) {
                            double p = (double)av[i][j * K + k] * (double)xv[t * K + k];
                            r += p;
                            rm += fabs(p);
                        }
                        y += (double)bv[i][m * c->rank[i] + j] * r;
                        ym += fabs((double)bv[i][m * c->rank[i] + j]) * rm;
                    }
                    w += (double)coef * y;
                    s += fabs((double)coef) * ym;
                }
                want[t * M + m] = w;
                mag[t * M + m] = s;
            }
        char what[160];
        snprintf(what, sizeof what, "lora %s %s%s", llmh_dtype_name(type), c->name, prep ? " (prepared)" : "");
        ok = cf_close(what, got, want, mag, M * N, 0.0, 1e-5);
        if (c->dead_token) /* bit-identical */
            for (int64_t m = 0; m < M && ok; m++)
                if (memcmp(&got[(N - 1) * M + m], &d0[(N - 1) * M + m], 4) != 0) {
                    fprintf(stderr, "  [%s] %s: gated-off token changed at row %lld: %.9g -> %.9g\n", cf_cur->name,
                            what, (long long)m, d0[(N - 1) * M + m], got[(N - 1) * M + m]);
                    ok = false;
                }
    }
    for (int i = 0; i < LORA_MAX_AD; i++) {
        if (prep && cf_cur->bi->weight_release) {
            if (a[i]) cf_cur->bi->weight_release(cf_cur->be, &a[i]->t);
            if (b[i]) cf_cur->bi->weight_release(cf_cur->be, &b[i]->t);
        }
        cf_free(a[i]);
        cf_free(b[i]);
        cf_free(g[i]);
        free(av[i]);
        free(bv[i]);
        free(gv[i]);
    }
    cf_free(x);
    cf_free(d);
    free(xv);
    free(d0);
    free(got);
    free(want);
    free(mag);
    return ok;
}

/* Malformed nodes are refused with an error, never run. */
static void check_refusals(llmh_dtype type) {
    bool q8 = type == LLMH_DTYPE_Q8_0; /* B transposed: [M, R] */
    int64_t M = q8 ? 32 : 24;
    cf_tensor *x = cf_new(LLMH_DTYPE_F32, 32, 2, 1, 1, 0), *d = cf_new(LLMH_DTYPE_F32, M, 2, 1, 1, 0);
    cf_tensor *a = cf_new(type, 32, 4, 1, 1, 0), *b = q8 ? cf_new(type, M, 4, 1, 1, 0) : cf_new(type, 4, M, 1, 1, 0);
    llmh_dtype other = type == LLMH_DTYPE_F32 ? LLMH_DTYPE_F16 : LLMH_DTYPE_F32;
    cf_tensor *b_other = cf_new(other, 4, M, 1, 1, 0);
    cf_tensor *b_bad = q8 ? cf_new(type, M, 5, 1, 1, 0) : cf_new(type, 5, M, 1, 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b_bad);
    llmh_node nd;
    llmh_graph g = {sizeof g, 1, &nd};
    lora_node(&nd, d, a, x, b_other, NULL, 1.0f);
    CU_ASSERT(cf_cur->bi->graph_compute(cf_cur->be, &g) != LLMH_OK); /* A and B of different types */
    lora_node(&nd, d, a, x, b_bad, NULL, 1.0f);
    CU_ASSERT(cf_cur->bi->graph_compute(cf_cur->be, &g) != LLMH_OK); /* B's rank is not A's */
    lora_node(&nd, d, a, x, b, NULL, 1.0f);
    nd.src[2] = NULL;
    CU_ASSERT(cf_cur->bi->graph_compute(cf_cur->be, &g) != LLMH_OK); /* no B */
    cf_free(x);
    cf_free(d);
    cf_free(a);
    cf_free(b);
    cf_free(b_other);
    cf_free(b_bad);
}

void cf_test_lora(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_Q8_0};
    int tested = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        llmh_dtype type = types[ti];
        if (!cf_supports(LLMH_OP_LORA, type, LLMH_DTYPE_F32)) {
            fprintf(stderr, "  [%s] lora %s: not claimed, skipped\n", cf_cur->name, llmh_dtype_name(type));
            continue;
        }
        /* as stored, and after weight_prepare (adapters get it like weights) */
        bool q8 = type == LLMH_DTYPE_Q8_0;
        const lora_case *cases = q8 ? k_cases_q8 : k_cases;
        size_t n_cases = q8 ? sizeof k_cases_q8 / sizeof k_cases_q8[0] : sizeof k_cases / sizeof k_cases[0];
        for (int prep = 0; prep < (cf_cur->bi->weight_prepare ? 2 : 1); prep++)
            for (size_t ci = 0; ci < n_cases; ci++) {
                CU_ASSERT(run_case(&cases[ci], type, 0x10a0 + ti * 100 + ci, prep != 0));
                tested++;
            }
        check_refusals(type);
    }
    fprintf(stderr, "  [%s] lora: %d cases\n", cf_cur->name, tested);
}

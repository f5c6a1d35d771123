/* test-vulkan-ops.c — the vulkan backend op by op against scalar references:
 * weights through the host's reference dequantizer (llmh_dequantize),
 * activations converted to the SDK's dot types in C, plain loops for the
 * other ops. Odd shapes (1, 31, 33), batches 1, 7 and 64, strided views and
 * in-place use. Also the no-device error path (VK_ICD_FILENAMES pointing
 * nowhere, in a child process) and a multi-node graph whose nodes depend on
 * each other (barriers). Runs on lavapipe. */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "vk-test-util.h"

static vt_plugin P;
static llmh_backend *BE;

/* The "staged" suite runs with host_map = false and 4 KiB staging chunks:
 * every buffer read/write goes through vkCmdCopyBuffer in many chunks, as on
 * a discrete GPU whose device memory is not host-visible; and with
 * subgroups = false, so the decode kernel's shared-memory reduction (the
 * fallback for devices without subgroup arithmetic) runs too. */
static int g_staged;

static int suite_init(void) {
    if (vt_plugin_load(&P) != 0) return -1;
    llmh_kv kv[3] = {{"host_map", {LLMH_V_BOOL, {.b = 0}}},
                     {"staging_kib", {LLMH_V_I64, {.i = 4}}},
                     {"subgroups", {LLMH_V_BOOL, {.b = 0}}}};
    llmh_kv_list opts = {kv, 3};
    llmh_backend_params prm = {sizeof prm, -1, 0, g_staged ? &opts : NULL};
    if (P.be->create(P.state, &prm, &BE) != LLMH_OK) {
        fprintf(stderr, "vulkan backend create: %s\n", llmh_last_error());
        return -1;
    }
    return 0;
}

static int suite_init_staged(void) {
    g_staged = 1;
    return suite_init();
}

static int suite_cleanup(void) {
    g_staged = 0;
    P.be->destroy(BE);
    BE = NULL;
    vt_plugin_unload(&P);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */
/* ------------------------------------------------------------------------ */
static llmh_status run_nodes(llmh_node *nodes, size_t n) {
    for (size_t i = 0; i < n; i++) nodes[i].struct_size = sizeof(llmh_node);
    llmh_graph g = {sizeof g, n, nodes};
    llmh_status st = P.be->graph_compute(BE, &g);
    if (st) fprintf(stderr, "graph_compute: %s\n", llmh_last_error());
    return st;
}

static llmh_node mk(llmh_op op, vt_tensor *d, vt_tensor *a, vt_tensor *b, vt_tensor *c) {
    llmh_node n;
    memset(&n, 0, sizeof n);
    n.struct_size = sizeof n;
    n.op = op;
    n.dst = &d->t;
    n.src[0] = a ? &a->t : NULL;
    n.src[1] = b ? &b->t : NULL;
    n.src[2] = c ? &c->t : NULL;
    return n;
}

/* Host image of a tensor's whole buffer, filled with random f32 values at
 * every element of its view (other bytes zero), uploaded. */
static uint8_t *fill_random(vt_tensor *t, uint64_t *seed, float scale) {
    uint8_t *img = calloc(1, t->bytes);
    for (int64_t i3 = 0; i3 < t->t.ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->t.ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->t.ne[1]; i1++)
                for (int64_t i0 = 0; i0 < t->t.ne[0]; i0++)
                    vt_set(&t->t, img, i0, i1, i2, i3, scale * vt_randf(seed));
    CU_ASSERT_EQUAL(vt_upload(&P, BE, t, img, t->bytes), 0);
    return img;
}

static uint8_t *download(vt_tensor *t) {
    uint8_t *img = malloc(t->bytes);
    CU_ASSERT_EQUAL(vt_download(&P, BE, t, img, t->bytes), 0);
    return img;
}

typedef struct err_acc {
    double max_err;
    int64_t bad;
} err_acc;

static void check_val(err_acc *e, double got, double want, double atol, double rtol) {
    double err = fabs(got - want);
    double lim = atol + rtol * fabs(want);
    if (err > e->max_err) e->max_err = err;
    if (!(err <= lim)) {
        if (e->bad < 5) fprintf(stderr, "    got %.9g, want %.9g\n", got, want);
        e->bad++;
    }
}

/* ------------------------------------------------------------------------ */
/* SDK dot types (llmh-plugin.h, MUL_MAT)                                      */
/* ------------------------------------------------------------------------ */
static void to_dot_type(llmh_dtype wt, const float *x, float *out, int64_t k) {
    switch (wt) {
    case LLMH_DTYPE_F32:
        memcpy(out, x, (size_t)k * sizeof(float));
        return;
    case LLMH_DTYPE_F16:
        for (int64_t i = 0; i < k; i++) out[i] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(x[i]));
        return;
    case LLMH_DTYPE_BF16:
        for (int64_t i = 0; i < k; i++) out[i] = llmh_bf16_to_fp32(llmh_fp32_to_bf16(x[i]));
        return;
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1:
    case LLMH_DTYPE_Q8_0:
        for (int64_t b = 0; b < k / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            float id = amax > 0.0f ? 127.0f / amax : 0.0f;
            float d = llmh_fp16_to_fp32(llmh_fp32_to_fp16(amax / 127.0f));
            for (int j = 0; j < 32; j++) out[b * 32 + j] = d * nearbyintf(xb[j] * id);
        }
        return;
    default: /* K-quants: Q8_K */
        for (int64_t b = 0; b < k / 256; b++) {
            const float *xb = x + b * 256;
            float amax = 0.0f, mx = 0.0f;
            for (int j = 0; j < 256; j++)
                if (fabsf(xb[j]) > amax) {
                    amax = fabsf(xb[j]);
                    mx = xb[j];
                }
            if (amax == 0.0f) {
                for (int j = 0; j < 256; j++) out[b * 256 + j] = 0.0f;
                continue;
            }
            float iscale = -127.0f / mx, d = 1.0f / iscale;
            for (int j = 0; j < 256; j++) out[b * 256 + j] = d * fminf(127.0f, nearbyintf(iscale * xb[j]));
        }
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* MUL_MAT                                                                    */
/* ------------------------------------------------------------------------ */
/* dst[M, N, B2] = W[K, M, W2] x X[K, N, B2]; X optionally strided (padded
 * rows), dst optionally strided. Returns the number of bad values. */
static int64_t check_mul_mat(llmh_dtype wt, int64_t K, int64_t M, int64_t N, int64_t W2, int64_t B2, int strided,
                             uint64_t *seed) {
    size_t row_bytes = (size_t)(K / llmh_dtype_block_size(wt)) * llmh_dtype_type_size(wt);
    vt_tensor *w = vt_new(&P, BE, wt, K, M, W2, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    uint8_t *wb = malloc(row_bytes * (size_t)(M * W2));
    vt_random_weights(wt, wb, K * M * W2, seed);
    CU_ASSERT_EQUAL(vt_upload(&P, BE, w, wb, row_bytes * (size_t)(M * W2)), 0);
    float *wf = malloc(sizeof(float) * (size_t)(K * M * W2));
    CU_ASSERT_EQUAL_FATAL(llmh_dequantize(wt, wb, wf, K * M * W2), LLMH_OK);

    int64_t xne[4] = {K, N, B2, 1}, dne[4] = {M, N, B2, 1};
    size_t xpad = strided ? 12 : 0, dpad = strided ? 20 : 0;
    size_t xnb[4] = {4, (size_t)K * 4 + xpad, 0, 0}, dnb[4] = {4, (size_t)M * 4 + dpad, 0, 0};
    xnb[2] = xnb[1] * (size_t)N;
    xnb[3] = xnb[2] * (size_t)B2;
    dnb[2] = dnb[1] * (size_t)N;
    dnb[3] = dnb[2] * (size_t)B2;
    vt_tensor *x = vt_new_strided(&P, BE, LLMH_DTYPE_F32, xne, xnb, strided ? 256 : 0);
    vt_tensor *d = vt_new_strided(&P, BE, LLMH_DTYPE_F32, dne, dnb, strided ? 512 : 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    uint8_t *ximg = fill_random(x, seed, 1.0f);
    llmh_node n = mk(LLMH_OP_MUL_MAT, d, w, x, NULL);
    CU_ASSERT_EQUAL_FATAL(run_nodes(&n, 1), LLMH_OK);
    uint8_t *dimg = download(d);
    float *col = malloc(sizeof(float) * (size_t)K), *xq = malloc(sizeof(float) * (size_t)K);
    err_acc e = {0, 0};
    for (int64_t b = 0; b < B2; b++)
        for (int64_t j = 0; j < N; j++) {
            for (int64_t k = 0; k < K; k++) col[k] = vt_get(&x->t, ximg, k, j, b, 0);
            to_dot_type(wt, col, xq, K);
            const float *wm = wf + (size_t)(b / (B2 / W2)) * (size_t)(K * M);
            for (int64_t r = 0; r < M; r++) {
                double acc = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    acc += (double)wm[r * K + k] * xq[k];
                    mag += fabs((double)wm[r * K + k] * xq[k]);
                }
                check_val(&e, vt_get(&d->t, dimg, r, j, b, 0), acc, 1e-5 + 2e-6 * mag, 0);
            }
        }
    if (e.bad)
        fprintf(stderr, "  MUL_MAT %s K=%lld M=%lld N=%lld B=%lld/%lld strided=%d: %lld bad (max err %.3g)\n",
                llmh_dtype_name(wt), (long long)K, (long long)M, (long long)N, (long long)W2, (long long)B2, strided,
                (long long)e.bad, e.max_err);
    free(col);
    free(xq);
    free(dimg);
    free(ximg);
    free(wf);
    free(wb);
    vt_free(&P, BE, w);
    vt_free(&P, BE, x);
    vt_free(&P, BE, d);
    return e.bad;
}

static const llmh_dtype k_weight_types[] = {
    LLMH_DTYPE_F32,  LLMH_DTYPE_F16,  LLMH_DTYPE_BF16, LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1,
    LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q2_K, LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q5_K, LLMH_DTYPE_Q6_K};
#define N_WTYPES (sizeof k_weight_types / sizeof k_weight_types[0])

static void test_mul_mat(void) {
    uint64_t seed = 0x1234567;
    const int64_t rows[] = {1, 31, 33};
    const int64_t cols[] = {1, 7, 64};
    for (size_t t = 0; t < N_WTYPES; t++) {
        llmh_dtype wt = k_weight_types[t];
        int64_t bs = llmh_dtype_block_size(wt);
        int64_t K = bs == 1 ? 33 : bs == 32 ? 96 : 512;
        CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_MUL_MAT, wt, LLMH_DTYPE_F32), 1);
        for (size_t r = 0; r < 3; r++)
            for (size_t c = 0; c < 3; c++) CU_ASSERT_EQUAL(check_mul_mat(wt, K, rows[r], cols[c], 1, 1, 0, &seed), 0);
        if (bs == 1) {
            CU_ASSERT_EQUAL(check_mul_mat(wt, 31, 33, 7, 1, 1, 0, &seed), 0);
            CU_ASSERT_EQUAL(check_mul_mat(wt, 31, 65, 64, 1, 1, 0, &seed), 0);
        }
    }
}

static void test_mul_mat_batched_strided(void) {
    uint64_t seed = 99;
    const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q4_K};
    for (size_t t = 0; t < 4; t++) {
        int64_t K = llmh_dtype_block_size(types[t]) == 256 ? 256 : 64;
        /* broadcast: 2 weight matrices for 4 batches, decode and prefill */
        CU_ASSERT_EQUAL(check_mul_mat(types[t], K, 33, 1, 2, 4, 0, &seed), 0);
        CU_ASSERT_EQUAL(check_mul_mat(types[t], K, 33, 40, 2, 4, 0, &seed), 0);
        /* several 64x64 prefill tiles in both directions, partial at the edges */
        CU_ASSERT_EQUAL(check_mul_mat(types[t], K, 130, 70, 1, 1, 0, &seed), 0);
        /* strided src1 and dst views at offsets */
        CU_ASSERT_EQUAL(check_mul_mat(types[t], K, 31, 7, 1, 1, 1, &seed), 0);
        CU_ASSERT_EQUAL(check_mul_mat(types[t], K, 31, 64, 1, 2, 1, &seed), 0);
    }
}

/* One 32-element block (K = 32) of a Q8_0-activation weight type, where the
 * SDK's arithmetic leaves no summation order to choose: llama.cpp's
 * vec_dot_*_q8_0 forms the integer dot sumi = sum(q_w * q_x) and scales it
 * once, so dst must be exactly f32(f32(d_w * d_x) * sumi) for Q4_0, Q5_0 and
 * Q8_0; Q4_1/Q5_1 add m_w * d_x * sum(q_x) (d_x * (d_w * s + m_w * sx), where
 * the GPU may fuse the inner multiply-add, so within a few ulps). Summing
 * the dequantized products in float instead (d_w * q_w * d_x * q_x) misses
 * the exact values in many rows. Decode (N = 1) and prefill (N = 64) paths. */
static void block_raw(llmh_dtype wt, const uint8_t *b, int q[32], float *d, float *m) {
    *d = llmh_fp16_to_fp32((uint16_t)(b[0] | (b[1] << 8)));
    *m = 0.0f;
    if (wt == LLMH_DTYPE_Q8_0) {
        for (int j = 0; j < 32; j++) q[j] = (int8_t)b[2 + j];
        return;
    }
    if (wt == LLMH_DTYPE_Q4_1 || wt == LLMH_DTYPE_Q5_1) *m = llmh_fp16_to_fp32((uint16_t)(b[2] | (b[3] << 8)));
    uint32_t qh = 0;
    const uint8_t *qs = b + 2;
    if (wt == LLMH_DTYPE_Q4_1) qs = b + 4;
    if (wt == LLMH_DTYPE_Q5_0) {
        qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) | ((uint32_t)b[5] << 24);
        qs = b + 6;
    }
    if (wt == LLMH_DTYPE_Q5_1) {
        qh = (uint32_t)b[4] | ((uint32_t)b[5] << 8) | ((uint32_t)b[6] << 16) | ((uint32_t)b[7] << 24);
        qs = b + 8;
    }
    int off = wt == LLMH_DTYPE_Q4_0 ? 8 : wt == LLMH_DTYPE_Q5_0 ? 16 : 0;
    for (int j = 0; j < 16; j++) {
        q[j] = (int)((qs[j] & 15u) | (((qh >> j) & 1u) << 4)) - off;
        q[j + 16] = (int)((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - off;
    }
}

static void test_mul_mat_block_exact(void) {
    uint64_t seed = 0xb10c32;
    const llmh_dtype types[] = {LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_1};
    const int64_t cols[] = {1, 64};
    const int64_t K = 32, M = 70;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t c = 0; c < 2; c++) {
            llmh_dtype wt = types[t];
            int64_t N = cols[c];
            size_t bsz = llmh_dtype_type_size(wt);
            vt_tensor *w = vt_new(&P, BE, wt, K, M, 1, 1), *x = vt_new(&P, BE, LLMH_DTYPE_F32, K, N, 1, 1);
            vt_tensor *d = vt_new(&P, BE, LLMH_DTYPE_F32, M, N, 1, 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(w);
            CU_ASSERT_PTR_NOT_NULL_FATAL(x);
            CU_ASSERT_PTR_NOT_NULL_FATAL(d);
            uint8_t *wb = malloc(bsz * (size_t)M);
            CU_ASSERT_PTR_NOT_NULL_FATAL(wb);
            vt_random_weights(wt, wb, K * M, &seed);
            CU_ASSERT_EQUAL(vt_upload(&P, BE, w, wb, bsz * (size_t)M), 0);
            uint8_t *ximg = fill_random(x, &seed, 1.0f);
            llmh_node n = mk(LLMH_OP_MUL_MAT, d, w, x, NULL);
            CU_ASSERT_EQUAL_FATAL(run_nodes(&n, 1), LLMH_OK);
            uint8_t *dimg = download(d);
            int64_t bad = 0;
            for (int64_t j = 0; j < N; j++) {
                float xf[32], amax = 0.0f;
                int qx[32], sx = 0;
                for (int k = 0; k < 32; k++) {
                    xf[k] = vt_get(&x->t, ximg, k, j, 0, 0);
                    amax = fmaxf(amax, fabsf(xf[k]));
                }
                float id = amax > 0.0f ? 127.0f / amax : 0.0f;
                float dx = llmh_fp16_to_fp32(llmh_fp32_to_fp16(amax / 127.0f));
                for (int k = 0; k < 32; k++) {
                    qx[k] = (int)nearbyintf(xf[k] * id);
                    sx += qx[k];
                }
                for (int64_t r = 0; r < M; r++) {
                    int qw[32], sumi = 0;
                    float dw, mw;
                    block_raw(wt, wb + (size_t)r * bsz, qw, &dw, &mw);
                    for (int k = 0; k < 32; k++) sumi += qw[k] * qx[k];
                    float got = vt_get(&d->t, dimg, r, j, 0, 0);
                    int ok;
                    double want;
                    if (wt != LLMH_DTYPE_Q4_1 && wt != LLMH_DTYPE_Q5_1) {
                        float ddx = dw * dx;
                        float f = ddx * (float)sumi;
                        want = f;
                        ok = got == f;
                    } else {
                        want = (double)dx * ((double)dw * sumi + (double)mw * sx);
                        double mag = fabs((double)dx) * (fabs((double)dw * sumi) + fabs((double)mw * sx));
                        ok = fabs(got - want) <= mag * 4.0 * FLT_EPSILON;
                    }
                    if (!ok) {
                        if (bad < 5)
                            fprintf(stderr, "    %s N=%lld row %lld col %lld: got %.9g, want %.9g\n", llmh_dtype_name(wt),
                                    (long long)N, (long long)r, (long long)j, got, want);
                        bad++;
                    }
                }
            }
            CU_ASSERT_EQUAL(bad, 0);
            free(dimg);
            free(ximg);
            free(wb);
            vt_free(&P, BE, w);
            vt_free(&P, BE, x);
            vt_free(&P, BE, d);
        }
}

/* ------------------------------------------------------------------------ */
/* GET_ROWS                                                                   */
/* ------------------------------------------------------------------------ */
static void test_get_rows(void) {
    uint64_t seed = 7;
    const llmh_dtype types[] = {LLMH_DTYPE_F32,  LLMH_DTYPE_F16,  LLMH_DTYPE_BF16, LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_1,
                                LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1, LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q8_1, LLMH_DTYPE_Q2_K,
                                LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q5_K, LLMH_DTYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        llmh_dtype wt = types[t];
        int64_t bs = llmh_dtype_block_size(wt), D = bs == 1 ? 33 : bs * 2, V = 31, N = 7;
        CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_GET_ROWS, wt, LLMH_DTYPE_I32), 1);
        size_t row_bytes = (size_t)(D / bs) * llmh_dtype_type_size(wt);
        vt_tensor *w = vt_new(&P, BE, wt, D, V, 1, 1), *ids = vt_new(&P, BE, LLMH_DTYPE_I32, N, 1, 1, 1);
        vt_tensor *d = vt_new(&P, BE, LLMH_DTYPE_F32, D, N, 1, 1);
        uint8_t *wb = malloc(row_bytes * (size_t)V);
        vt_random_weights(wt, wb, D * V, &seed);
        vt_upload(&P, BE, w, wb, row_bytes * (size_t)V);
        int32_t id[7] = {0, 30, 5, 5, 17, 1, 29};
        vt_upload(&P, BE, ids, id, sizeof id);
        llmh_node n = mk(LLMH_OP_GET_ROWS, d, w, ids, NULL);
        CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
        float *got = malloc(sizeof(float) * (size_t)(D * N)), *want = malloc(sizeof(float) * (size_t)D);
        vt_download(&P, BE, d, got, sizeof(float) * (size_t)(D * N));
        err_acc e = {0, 0};
        for (int64_t i = 0; i < N; i++) {
            llmh_dequantize(wt, wb + (size_t)id[i] * row_bytes, want, D);
            for (int64_t k = 0; k < D; k++) check_val(&e, got[i * D + k], want[k], 1e-7, 1e-6);
        }
        if (e.bad) fprintf(stderr, "  GET_ROWS %s: %lld bad\n", llmh_dtype_name(wt), (long long)e.bad);
        CU_ASSERT_EQUAL(e.bad, 0);
        /* an id outside the table fails cleanly */
        id[3] = 31;
        vt_upload(&P, BE, ids, id, sizeof id);
        CU_ASSERT_EQUAL(P.be->graph_compute(BE, &(llmh_graph){sizeof(llmh_graph), 1, &n}), LLMH_ERR_INVALID_ARG);
        free(got);
        free(want);
        free(wb);
        vt_free(&P, BE, w);
        vt_free(&P, BE, ids);
        vt_free(&P, BE, d);
    }
}

/* ------------------------------------------------------------------------ */
/* Elementwise and row ops                                                    */
/* ------------------------------------------------------------------------ */
static float silu_ref(float x) { return x / (1.0f + expf(-x)); }
static float gelu_ref(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

/* ADD/MUL with src1 broadcast, and in place. */
static void test_binary(void) {
    uint64_t seed = 11;
    const int64_t b_shapes[][4] = {{33, 7, 2, 1}, {33, 1, 2, 1}, {1, 7, 1, 1}, {33, 1, 1, 1}};
    for (int op = 0; op < 2; op++)
        for (int s = 0; s < 4; s++)
            for (int inplace = 0; inplace < 2; inplace++) {
                vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, 33, 7, 2, 1);
                const int64_t *bs = b_shapes[s];
                vt_tensor *b = vt_new(&P, BE, LLMH_DTYPE_F32, bs[0], bs[1], bs[2], bs[3]);
                vt_tensor *d = inplace ? a : vt_new(&P, BE, LLMH_DTYPE_F32, 33, 7, 2, 1);
                uint8_t *ai = fill_random(a, &seed, 2.0f), *bi = fill_random(b, &seed, 2.0f);
                llmh_node n = mk(op ? LLMH_OP_MUL : LLMH_OP_ADD, d, a, b, NULL);
                CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
                uint8_t *di = download(d);
                err_acc e = {0, 0};
                for (int64_t i2 = 0; i2 < 2; i2++)
                    for (int64_t i1 = 0; i1 < 7; i1++)
                        for (int64_t i0 = 0; i0 < 33; i0++) {
                            float x = vt_get(&a->t, ai, i0, i1, i2, 0);
                            float y = vt_get(&b->t, bi, i0 % bs[0], i1 % bs[1], i2 % bs[2], 0);
                            check_val(&e, vt_get(&d->t, di, i0, i1, i2, 0), op ? x * y : x + y, 0, 0);
                        }
                CU_ASSERT_EQUAL(e.bad, 0);
                free(ai);
                free(bi);
                free(di);
                vt_free(&P, BE, a);
                vt_free(&P, BE, b);
                if (!inplace) vt_free(&P, BE, d);
            }
}

/* SCALE, SILU, GELU, SWIGLU on a strided view (padded rows) and in place. */
static void test_unary(void) {
    uint64_t seed = 12;
    const llmh_op ops[] = {LLMH_OP_SCALE, LLMH_OP_SILU, LLMH_OP_GELU, LLMH_OP_SWIGLU};
    int64_t ne[4] = {31, 5, 3, 1};
    size_t nb[4] = {4, 31 * 4 + 8, (31 * 4 + 8) * 5, (31 * 4 + 8) * 15};
    for (int o = 0; o < 4; o++)
        for (int inplace = 0; inplace < 2; inplace++) {
            vt_tensor *a = vt_new_strided(&P, BE, LLMH_DTYPE_F32, ne, nb, 64);
            vt_tensor *b = vt_new(&P, BE, LLMH_DTYPE_F32, 31, 5, 3, 1);
            vt_tensor *d = inplace ? a : vt_new(&P, BE, LLMH_DTYPE_F32, 31, 5, 3, 1);
            uint8_t *ai = fill_random(a, &seed, 6.0f), *bi = fill_random(b, &seed, 2.0f);
            llmh_node n = mk(ops[o], d, a, ops[o] == LLMH_OP_SWIGLU ? b : NULL, NULL);
            n.fp[0] = 0.37f;
            CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
            uint8_t *di = download(d);
            err_acc e = {0, 0};
            for (int64_t i2 = 0; i2 < 3; i2++)
                for (int64_t i1 = 0; i1 < 5; i1++)
                    for (int64_t i0 = 0; i0 < 31; i0++) {
                        float x = vt_get(&a->t, ai, i0, i1, i2, 0), want;
                        switch (ops[o]) {
                        case LLMH_OP_SCALE: want = x * 0.37f; break;
                        case LLMH_OP_SILU: want = silu_ref(x); break;
                        case LLMH_OP_GELU: want = gelu_ref(x); break;
                        default: want = silu_ref(x) * vt_get(&b->t, bi, i0, i1, i2, 0); break;
                        }
                        check_val(&e, vt_get(&d->t, di, i0, i1, i2, 0), want, 1e-6, 1e-5);
                    }
            if (e.bad) fprintf(stderr, "  unary op %d inplace %d: %lld bad\n", (int)ops[o], inplace, (long long)e.bad);
            CU_ASSERT_EQUAL(e.bad, 0);
            free(ai);
            free(bi);
            free(di);
            vt_free(&P, BE, a);
            vt_free(&P, BE, b);
            if (!inplace) vt_free(&P, BE, d);
        }
}

static void test_rms_norm_softmax(void) {
    uint64_t seed = 13;
    const int64_t widths[] = {1, 33, 300};
    for (int w = 0; w < 3; w++)
        for (int variant = 0; variant < 4; variant++) { /* 0 norm, 1 norm+weight in place, 2 softmax, 3 softmax in place scaled */
            int64_t W = widths[w];
            vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, W, 7, 2, 1);
            vt_tensor *wt = vt_new(&P, BE, LLMH_DTYPE_F32, W, 1, 1, 1);
            int inplace = variant & 1;
            vt_tensor *d = inplace ? a : vt_new(&P, BE, LLMH_DTYPE_F32, W, 7, 2, 1);
            uint8_t *ai = fill_random(a, &seed, 3.0f), *wi = fill_random(wt, &seed, 1.0f);
            int is_norm = variant < 2;
            llmh_node n = mk(is_norm ? LLMH_OP_RMS_NORM : LLMH_OP_SOFTMAX, d, a, variant == 1 ? wt : NULL, NULL);
            n.fp[0] = is_norm ? 1e-5f : (variant == 3 ? 0.5f : 0.0f);
            CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
            uint8_t *di = download(d);
            err_acc e = {0, 0};
            for (int64_t r = 0; r < 14; r++) {
                int64_t i1 = r % 7, i2 = r / 7;
                double ss = 0, mx = -INFINITY, sum = 0;
                float sc = n.fp[0] == 0.0f ? 1.0f : n.fp[0];
                for (int64_t i = 0; i < W; i++) {
                    double x = vt_get(&a->t, ai, i, i1, i2, 0);
                    ss += x * x;
                    if (x * sc > mx) mx = x * sc;
                }
                for (int64_t i = 0; i < W; i++) sum += exp(vt_get(&a->t, ai, i, i1, i2, 0) * sc - mx);
                for (int64_t i = 0; i < W; i++) {
                    double x = vt_get(&a->t, ai, i, i1, i2, 0), want;
                    if (is_norm) {
                        want = x / sqrt(ss / (double)W + 1e-5);
                        if (variant == 1) want *= vt_get(&wt->t, wi, i, 0, 0, 0);
                    } else {
                        want = exp(x * sc - mx) / sum;
                    }
                    check_val(&e, vt_get(&d->t, di, i, i1, i2, 0), want, 1e-6, 1e-5);
                }
            }
            if (e.bad) fprintf(stderr, "  norm/softmax W=%lld variant %d: %lld bad\n", (long long)W, variant, (long long)e.bad);
            CU_ASSERT_EQUAL(e.bad, 0);
            free(ai);
            free(wi);
            free(di);
            vt_free(&P, BE, a);
            vt_free(&P, BE, wt);
            if (!inplace) vt_free(&P, BE, d);
        }
}

static void test_rope(void) {
    uint64_t seed = 14;
    const int64_t HD = 16, NH = 3, NT = 5;
    for (int mode = 0; mode < 2; mode++)
        for (int ff = 0; ff < 2; ff++)
            for (int inplace = 0; inplace < 2; inplace++) {
                int n_rot = ff ? 12 : 16;
                vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, HD, NH, NT, 1);
                vt_tensor *pos = vt_new(&P, BE, LLMH_DTYPE_I32, NT, 1, 1, 1);
                vt_tensor *fr = vt_new(&P, BE, LLMH_DTYPE_F32, n_rot / 2, 1, 1, 1);
                vt_tensor *d = inplace ? a : vt_new(&P, BE, LLMH_DTYPE_F32, HD, NH, NT, 1);
                uint8_t *ai = fill_random(a, &seed, 1.0f);
                float frv[8];
                for (int i = 0; i < n_rot / 2; i++) frv[i] = 1.0f + 0.5f * (float)i;
                vt_upload(&P, BE, fr, frv, sizeof(float) * (size_t)(n_rot / 2));
                int32_t pv[5] = {0, 1, 7, 100, 3000};
                vt_upload(&P, BE, pos, pv, sizeof pv);
                llmh_node n = mk(LLMH_OP_ROPE, d, a, pos, ff ? fr : NULL);
                n.ip[0] = n_rot;
                n.ip[1] = mode ? LLMH_ROPE_NEOX : LLMH_ROPE_NORMAL;
                n.fp[0] = 10000.0f;
                n.fp[1] = 1.0f;
                CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
                uint8_t *di = download(d);
                err_acc e = {0, 0};
                for (int64_t t = 0; t < NT; t++)
                    for (int64_t h = 0; h < NH; h++) {
                        float want[16];
                        for (int64_t i = 0; i < HD; i++) want[i] = vt_get(&a->t, ai, i, h, t, 0);
                        for (int i = 0; i < n_rot / 2; i++) {
                            double theta = (double)pv[t] * pow(10000.0, -2.0 * i / n_rot);
                            if (ff) theta /= frv[i];
                            int i0 = mode ? i : 2 * i, i1 = mode ? i + n_rot / 2 : 2 * i + 1;
                            double x0 = vt_get(&a->t, ai, i0, h, t, 0), x1 = vt_get(&a->t, ai, i1, h, t, 0);
                            want[i0] = (float)(x0 * cos(theta) - x1 * sin(theta));
                            want[i1] = (float)(x0 * sin(theta) + x1 * cos(theta));
                        }
                        /* f32 angles at position 3000 carry ~1e-4 absolute error */
                        for (int64_t i = 0; i < HD; i++) check_val(&e, vt_get(&d->t, di, i, h, t, 0), want[i], 5e-4, 0);
                    }
                if (e.bad) fprintf(stderr, "  ROPE mode %d ff %d: %lld bad (max %.3g)\n", mode, ff, (long long)e.bad, e.max_err);
                CU_ASSERT_EQUAL(e.bad, 0);
                free(ai);
                free(di);
                vt_free(&P, BE, a);
                vt_free(&P, BE, pos);
                vt_free(&P, BE, fr);
                if (!inplace) vt_free(&P, BE, d);
            }
}

/* CPY between f32/f16/bf16, into a strided cache-like view, and flat. */
static void test_cpy(void) {
    uint64_t seed = 15;
    const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < 3; t++) {
            llmh_dtype st = types[s], dt = types[t];
            CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_CPY, st, dt), 1);
            size_t ss = llmh_dtype_type_size(st), ds = llmh_dtype_type_size(dt);
            int64_t ne[4] = {33, 3, 5, 1};
            size_t snb[4] = {ss, ss * 33, ss * 99, ss * 495};
            /* destination: rows of a [33, 3, 16] cache, written at entries 4..8 */
            size_t dnb[4] = {ds, ds * 33, ds * 99, ds * 99 * 16};
            vt_tensor *a = vt_new_strided(&P, BE, st, ne, snb, 0);
            vt_tensor *d = vt_new_strided(&P, BE, dt, ne, dnb, ds * 99 * 4);
            uint8_t *ai = fill_random(a, &seed, 4.0f);
            llmh_node n = mk(LLMH_OP_CPY, d, a, NULL, NULL);
            CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
            uint8_t *di = download(d);
            err_acc e = {0, 0};
            for (int64_t i2 = 0; i2 < 5; i2++)
                for (int64_t i1 = 0; i1 < 3; i1++)
                    for (int64_t i0 = 0; i0 < 33; i0++) {
                        float x = vt_get(&a->t, ai, i0, i1, i2, 0);
                        float want = dt == LLMH_DTYPE_F16    ? llmh_fp16_to_fp32(llmh_fp32_to_fp16(x))
                                     : dt == LLMH_DTYPE_BF16 ? llmh_bf16_to_fp32(llmh_fp32_to_bf16(x))
                                                             : x;
                        check_val(&e, vt_get(&d->t, di, i0, i1, i2, 0), want, 0, 0);
                    }
            /* bytes outside the view stay zero */
            size_t view_lo = d->t.offset, view_hi = d->t.offset + ds * 99 * 5;
            for (size_t i = 0; i < d->bytes; i++)
                if ((i < view_lo || i >= view_hi) && di[i] != 0) e.bad++;
            if (e.bad) fprintf(stderr, "  CPY %s -> %s: %lld bad\n", llmh_dtype_name(st), llmh_dtype_name(dt), (long long)e.bad);
            CU_ASSERT_EQUAL(e.bad, 0);
            free(ai);
            free(di);
            vt_free(&P, BE, a);
            vt_free(&P, BE, d);
        }
    /* flat copy between different contiguous shapes */
    vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, 12, 5, 1, 1), *d = vt_new(&P, BE, LLMH_DTYPE_F16, 20, 3, 1, 1);
    float av[60], dv[60];
    uint16_t dh[60];
    for (int i = 0; i < 60; i++) av[i] = (float)i * 0.37f - 7.0f;
    vt_upload(&P, BE, a, av, sizeof av);
    llmh_node n = mk(LLMH_OP_CPY, d, a, NULL, NULL);
    CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
    vt_download(&P, BE, d, dh, sizeof dh);
    for (int i = 0; i < 60; i++) dv[i] = llmh_fp16_to_fp32(dh[i]);
    for (int i = 0; i < 60; i++) CU_ASSERT_EQUAL(dv[i], llmh_fp16_to_fp32(llmh_fp32_to_fp16(av[i])));
    vt_free(&P, BE, a);
    vt_free(&P, BE, d);
}

/* ------------------------------------------------------------------------ */
/* ATTENTION                                                                  */
/* ------------------------------------------------------------------------ */
/* out[i]: the SDK's attention; slack[i]: what flipping each f16-rounded
 * probability by one f16 ulp could change (a GPU exp() a few f32 ulps off
 * the double reference may round p the other way at a boundary). */
static void attention_ref(const llmh_tensor *q, const uint8_t *qi, const llmh_tensor *k, const uint8_t *ki,
                          const llmh_tensor *v, const uint8_t *vi, int n_past, int window, float scale, float cap,
                          int64_t h, int64_t t, float *out, float *slack) {
    int64_t D = q->ne[0], H = q->ne[1], Hkv = k->ne[1], hk = h / (H / Hkv);
    int f16 = k->type == LLMH_DTYPE_F16;
    int64_t pos = n_past + t, j0 = 0;
    if (window > 0 && pos - window + 1 > 0) j0 = pos - window + 1;
    double *s = malloc(sizeof(double) * (size_t)(pos + 1)), mx = -INFINITY, sum = 0;
    for (int64_t j = j0; j <= pos; j++) {
        double acc = 0;
        for (int64_t i = 0; i < D; i++) {
            float qv = vt_get(q, qi, i, h, t, 0);
            if (f16) qv = llmh_fp16_to_fp32(llmh_fp32_to_fp16(qv));
            acc += (double)qv * vt_get(k, ki, i, hk, j, 0);
        }
        acc *= scale;
        if (cap > 0) acc = cap * tanh(acc / cap);
        s[j] = acc;
        if (acc > mx) mx = acc;
    }
    for (int64_t j = j0; j <= pos; j++) sum += exp(s[j] - mx);
    for (int64_t i = 0; i < D; i++) out[i] = slack[i] = 0;
    for (int64_t j = j0; j <= pos; j++) {
        float p = (float)(exp(s[j] - mx) / sum), ulp = 0;
        if (f16) {
            p = llmh_fp16_to_fp32(llmh_fp32_to_fp16(p));
            ulp = p > 0 ? ldexpf(1.0f, ilogbf(p) - 10) : ldexpf(1.0f, -24);
        }
        for (int64_t i = 0; i < D; i++) {
            out[i] += p * vt_get(v, vi, i, hk, j, 0);
            slack[i] += ulp * fabsf(vt_get(v, vi, i, hk, j, 0));
        }
    }
    free(s);
}

static void check_attention(llmh_dtype kvt, int64_t D, int64_t H, int64_t Hkv, int64_t T, int n_past, int window,
                            float cap, uint64_t *seed) {
    int64_t n_kv = n_past + T + 3; /* the cache holds more entries than are visible */
    size_t ks = llmh_dtype_type_size(kvt);
    /* K/V: cache views [D, Hkv, n_kv] of a [D, Hkv, 40] layout with a gap per entry */
    int64_t kne[4] = {D, Hkv, n_kv, 1};
    size_t knb[4] = {ks, ks * (size_t)D, ks * (size_t)(D * Hkv) + 16, 0};
    knb[3] = knb[2] * (size_t)n_kv;
    vt_tensor *q = vt_new(&P, BE, LLMH_DTYPE_F32, D, H, T, 1);
    vt_tensor *k = vt_new_strided(&P, BE, kvt, kne, knb, 32);
    vt_tensor *v = vt_new_strided(&P, BE, kvt, kne, knb, 0);
    vt_tensor *d = vt_new(&P, BE, LLMH_DTYPE_F32, D, H, T, 1);
    uint8_t *qi = fill_random(q, seed, 1.0f), *ki = fill_random(k, seed, 1.0f), *vi = fill_random(v, seed, 1.0f);
    llmh_node n = mk(LLMH_OP_ATTENTION, d, q, k, v);
    n.ip[0] = n_past;
    n.ip[1] = window;
    n.fp[0] = 1.0f / sqrtf((float)D);
    n.fp[1] = cap;
    CU_ASSERT_EQUAL(run_nodes(&n, 1), LLMH_OK);
    uint8_t *di = download(d);
    err_acc e = {0, 0};
    float want[512], slack[512];
    int64_t tight = 0, total = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            attention_ref(&q->t, qi, &k->t, ki, &v->t, vi, n_past, window, n.fp[0], cap, h, t, want, slack);
            for (int64_t i = 0; i < D; i++) {
                float got = vt_get(&d->t, di, i, h, t, 0);
                /* at most one boundary flip per probability, and almost all exact to f32 noise */
                check_val(&e, got, want[i], 2e-6 + slack[i], 1e-5);
                if (fabs(got - want[i]) <= 2e-6 + 1e-5 * fabs(want[i])) tight++;
                total++;
            }
        }
    CU_ASSERT(tight >= total * 9 / 10);
    if (e.bad)
        fprintf(stderr, "  ATTENTION %s D=%lld H=%lld/%lld T=%lld past=%d win=%d: %lld bad (max %.3g)\n",
                llmh_dtype_name(kvt), (long long)D, (long long)H, (long long)Hkv, (long long)T, n_past, window,
                (long long)e.bad, e.max_err);
    CU_ASSERT_EQUAL(e.bad, 0);
    free(qi);
    free(ki);
    free(vi);
    free(di);
    vt_free(&P, BE, q);
    vt_free(&P, BE, k);
    vt_free(&P, BE, v);
    vt_free(&P, BE, d);
}

static void test_attention(void) {
    uint64_t seed = 16;
    const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    for (int t = 0; t < 3; t++) {
        CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_ATTENTION, LLMH_DTYPE_F32, types[t]), 1);
        check_attention(types[t], 16, 4, 2, 1, 0, 0, 0.0f, &seed);   /* first token */
        check_attention(types[t], 33, 4, 2, 7, 5, 0, 0.0f, &seed);   /* GQA, prefill after a prefix */
        check_attention(types[t], 64, 2, 1, 3, 70, 4, 0.0f, &seed);  /* sliding window, > 64 entries */
        check_attention(types[t], 16, 2, 2, 64, 1, 0, 30.0f, &seed); /* soft-cap, batch 64 */
        /* decode over long caches: keys split across workgroups (256 per split) */
        check_attention(types[t], 64, 4, 2, 1, 600, 0, 0.0f, &seed);  /* 3 splits, last one partial */
        check_attention(types[t], 32, 2, 1, 3, 700, 300, 0.0f, &seed); /* window: 2 splits, tokens see ranges that shift */
        check_attention(types[t], 16, 2, 2, 1, 511, 0, 20.0f, &seed); /* exactly 2 full splits, soft-cap */
    }
}

/* ------------------------------------------------------------------------ */
/* Graphs: dependent nodes in one submit                                      */
/* ------------------------------------------------------------------------ */
static void test_graph_chain(void) {
    uint64_t seed = 17;
    const int64_t K = 64, M = 48, N = 7;
    vt_tensor *w = vt_new(&P, BE, LLMH_DTYPE_F32, K, M, 1, 1), *x = vt_new(&P, BE, LLMH_DTYPE_F32, K, N, 1, 1);
    vt_tensor *y = vt_new(&P, BE, LLMH_DTYPE_F32, M, N, 1, 1), *bias = vt_new(&P, BE, LLMH_DTYPE_F32, M, 1, 1, 1);
    vt_tensor *z = vt_new(&P, BE, LLMH_DTYPE_F32, M, N, 1, 1);
    uint8_t *wi = fill_random(w, &seed, 1.0f), *xi = fill_random(x, &seed, 1.0f), *bi = fill_random(bias, &seed, 1.0f);
    /* y = W x; y += bias; y = rms_norm(y); z = silu(y); y = W x again (reused
     * activations); z = z * y; z = z * 2 */
    llmh_node nodes[7] = {mk(LLMH_OP_MUL_MAT, y, w, x, NULL), mk(LLMH_OP_ADD, y, y, bias, NULL),
                          mk(LLMH_OP_RMS_NORM, y, y, NULL, NULL), mk(LLMH_OP_SILU, z, y, NULL, NULL),
                          mk(LLMH_OP_MUL_MAT, y, w, x, NULL), mk(LLMH_OP_MUL, z, z, y, NULL),
                          mk(LLMH_OP_SCALE, z, z, NULL, NULL)};
    nodes[2].fp[0] = 1e-6f;
    nodes[6].fp[0] = 2.0f;
    CU_ASSERT_EQUAL_FATAL(run_nodes(nodes, 7), LLMH_OK);
    float *zi = malloc(sizeof(float) * (size_t)(M * N));
    vt_download(&P, BE, z, zi, sizeof(float) * (size_t)(M * N));
    const float *wf = (const float *)wi, *xf = (const float *)xi, *bf = (const float *)bi;
    err_acc e = {0, 0};
    for (int64_t j = 0; j < N; j++) {
        double yv[48], ss = 0;
        for (int64_t r = 0; r < M; r++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)wf[r * K + k] * xf[j * K + k];
            yv[r] = acc + bf[r];
            ss += yv[r] * yv[r];
        }
        double inv = 1.0 / sqrt(ss / M + 1e-6);
        for (int64_t r = 0; r < M; r++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)wf[r * K + k] * xf[j * K + k];
            double want = 2.0 * silu_ref((float)(yv[r] * inv)) * acc;
            check_val(&e, zi[j * M + r], want, 1e-4, 1e-4);
        }
    }
    CU_ASSERT_EQUAL(e.bad, 0);
    free(zi);
    free(wi);
    free(xi);
    free(bi);
    vt_free(&P, BE, w);
    vt_free(&P, BE, x);
    vt_free(&P, BE, y);
    vt_free(&P, BE, bias);
    vt_free(&P, BE, z);
}

/* Barrier placement, read from the backend's debug log line
 * "graph: N nodes, D dispatches, B barriers". */
static int g_dispatches = -1, g_barriers = -1;

static void capture_log(llmh_log_level level, const char *component, const char *msg, void *user) {
    (void)level;
    (void)user;
    size_t nn;
    int d, b;
    if (component && !strcmp(component, "vulkan") &&
        sscanf(msg, "graph: %zu nodes, %d dispatches, %d barriers", &nn, &d, &b) == 3) {
        g_dispatches = d;
        g_barriers = b;
    }
}

static void test_barriers(void) {
    uint64_t seed = 18;
    vt_tensor *x = vt_new(&P, BE, LLMH_DTYPE_F32, 64, 3, 1, 1), *w = vt_new(&P, BE, LLMH_DTYPE_Q8_0, 64, 32, 1, 1);
    vt_tensor *o[4];
    for (int i = 0; i < 4; i++) o[i] = vt_new(&P, BE, LLMH_DTYPE_F32, 64, 3, 1, 1);
    vt_tensor *m[3];
    for (int i = 0; i < 3; i++) m[i] = vt_new(&P, BE, LLMH_DTYPE_F32, 32, 3, 1, 1);
    free(fill_random(x, &seed, 1.0f));
    uint8_t wb[2 * 34 * 32];
    vt_random_weights(LLMH_DTYPE_Q8_0, wb, 64 * 32, &seed);
    vt_upload(&P, BE, w, wb, sizeof wb);
    llmh_log_set(capture_log, NULL, LLMH_LOG_DEBUG);

    /* four nodes that only read x: no barrier */
    llmh_node ind[4] = {mk(LLMH_OP_SCALE, o[0], x, NULL, NULL), mk(LLMH_OP_SILU, o[1], x, NULL, NULL),
                        mk(LLMH_OP_GELU, o[2], x, NULL, NULL), mk(LLMH_OP_RMS_NORM, o[3], x, NULL, NULL)};
    CU_ASSERT_EQUAL(run_nodes(ind, 4), LLMH_OK);
    CU_ASSERT_EQUAL(g_dispatches, 4);
    CU_ASSERT_EQUAL(g_barriers, 0);

    /* a chain: each node reads the previous one's output (RAW), then one
     * overwrites what an earlier node read (WAR) */
    llmh_node chain[4] = {mk(LLMH_OP_SCALE, o[0], x, NULL, NULL), mk(LLMH_OP_SILU, o[1], o[0], NULL, NULL),
                          mk(LLMH_OP_GELU, o[2], o[1], NULL, NULL), mk(LLMH_OP_SCALE, o[1], o[3], NULL, NULL)};
    CU_ASSERT_EQUAL(run_nodes(chain, 4), LLMH_OK);
    CU_ASSERT_EQUAL(g_dispatches, 4);
    CU_ASSERT_EQUAL(g_barriers, 3);

    /* q/k/v-style projections of the same input: the activations are
     * prepared once, then three independent products after one barrier */
    llmh_node mm[3] = {mk(LLMH_OP_MUL_MAT, m[0], w, x, NULL), mk(LLMH_OP_MUL_MAT, m[1], w, x, NULL),
                       mk(LLMH_OP_MUL_MAT, m[2], w, x, NULL)};
    CU_ASSERT_EQUAL(run_nodes(mm, 3), LLMH_OK);
    CU_ASSERT_EQUAL(g_dispatches, 4);
    CU_ASSERT_EQUAL(g_barriers, 1);
    float r0[96], r2[96];
    vt_download(&P, BE, m[0], r0, sizeof r0);
    vt_download(&P, BE, m[2], r2, sizeof r2);
    CU_ASSERT(memcmp(r0, r2, sizeof r0) == 0);

    llmh_log_set(NULL, NULL, LLMH_LOG_WARN);
    vt_free(&P, BE, x);
    vt_free(&P, BE, w);
    for (int i = 0; i < 4; i++) vt_free(&P, BE, o[i]);
    for (int i = 0; i < 3; i++) vt_free(&P, BE, m[i]);
}

/* LORA: consecutive adapters on one dst are recorded as one group (every
 * r_i, one barrier, every term, one barrier, one pass adding them in node
 * order). The group must equal the same nodes run one graph each, bit for
 * bit (the SDK's roundings, gates with zeros included), and a lone node
 * costs two dispatches. Values are checked against a double reference by
 * the conformance suite. */
static void test_lora_groups(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    const int64_t K = 96, M = 40, N = 5, NA = 3, ranks[3] = {8, 16, 3};
    for (size_t ti = 0; ti < 3; ti++) {
        uint64_t seed = 40 + ti;
        llmh_dtype type = types[ti];
        vt_tensor *x = vt_new(&P, BE, LLMH_DTYPE_F32, K, N, 1, 1), *w = vt_new(&P, BE, LLMH_DTYPE_F32, K, M, 1, 1);
        vt_tensor *y = vt_new(&P, BE, LLMH_DTYPE_F32, M, N, 1, 1), *g = vt_new(&P, BE, LLMH_DTYPE_F32, N, 1, 1, 1);
        vt_tensor *a[3], *b[3];
        free(fill_random(x, &seed, 1.0f));
        free(fill_random(w, &seed, 1.0f));
        float gv[5] = {0.7f, 0.0f, 1.3f, 0.25f, 0.0f};
        vt_upload(&P, BE, g, gv, sizeof gv);
        llmh_node nodes[4];
        nodes[0] = mk(LLMH_OP_MUL_MAT, y, w, x, NULL);
        for (int i = 0; i < NA; i++) {
            a[i] = vt_new(&P, BE, type, K, ranks[i], 1, 1);
            b[i] = vt_new(&P, BE, type, ranks[i], M, 1, 1);
            size_t ts = llmh_dtype_type_size(type);
            uint8_t *ab = malloc((size_t)(K * ranks[i]) * ts), *bb = malloc((size_t)(ranks[i] * M) * ts);
            vt_random_weights(type, ab, K * ranks[i], &seed);
            vt_random_weights(type, bb, ranks[i] * M, &seed);
            vt_upload(&P, BE, a[i], ab, (size_t)(K * ranks[i]) * ts);
            vt_upload(&P, BE, b[i], bb, (size_t)(ranks[i] * M) * ts);
            free(ab);
            free(bb);
            nodes[1 + i] = mk(LLMH_OP_LORA, y, a[i], x, b[i]);
            nodes[1 + i].src[3] = i == 1 ? NULL : &g->t;
            nodes[1 + i].fp[0] = 0.5f + (float)i;
        }
        llmh_log_set(capture_log, NULL, LLMH_LOG_DEBUG);
        /* fused: W x (prepare + product), 3 r_i, 3 terms, 1 sum */
        CU_ASSERT_EQUAL(run_nodes(nodes, 4), LLMH_OK);
        CU_ASSERT_EQUAL(g_dispatches, 2 + 3 + 3 + 1);
        CU_ASSERT_EQUAL(g_barriers, 3);
        float fused[200], sep[200], base[200];
        vt_download(&P, BE, y, fused, sizeof fused);
        /* node by node, one graph each */
        CU_ASSERT_EQUAL(run_nodes(nodes, 1), LLMH_OK);
        vt_download(&P, BE, y, base, sizeof base);
        for (int i = 0; i < NA; i++) {
            CU_ASSERT_EQUAL(run_nodes(&nodes[1 + i], 1), LLMH_OK);
            CU_ASSERT_EQUAL(g_dispatches, 2);
            CU_ASSERT_EQUAL(g_barriers, 1);
        }
        vt_download(&P, BE, y, sep, sizeof sep);
        llmh_log_set(NULL, NULL, LLMH_LOG_WARN);
        CU_ASSERT(memcmp(fused, sep, sizeof fused) == 0);
        /* tokens 1 and 4 are gated off in nodes 0 and 2 but not in node 1 */
        int moved = 0;
        for (int64_t i = 0; i < M * N; i++) moved += fused[i] != base[i];
        CU_ASSERT(moved > M * N / 2);
        vt_free(&P, BE, x);
        vt_free(&P, BE, w);
        vt_free(&P, BE, y);
        vt_free(&P, BE, g);
        for (int i = 0; i < NA; i++) {
            vt_free(&P, BE, a[i]);
            vt_free(&P, BE, b[i]);
        }
    }
}

/* Buffer copies from one thread while another runs graphs (the host
 * serializes graphs, not copies from other sessions): both go through the
 * same command buffer and queue when memory is staged. */
typedef struct copy_job {
    vt_tensor *t;
    int failures;
} copy_job;

static void *copy_loop(void *arg) {
    copy_job *j = arg;
    float in[256], out[256];
    for (int it = 0; it < 40; it++) {
        for (int i = 0; i < 256; i++) in[i] = (float)(it * 1000 + i);
        if (P.be->buffer_write(BE, j->t->buf, 0, in, sizeof in) != LLMH_OK ||
            P.be->buffer_read(BE, j->t->buf, 0, out, sizeof out) != LLMH_OK || memcmp(in, out, sizeof in) != 0)
            j->failures++;
    }
    return NULL;
}

static void test_concurrent_copies(void) {
    uint64_t seed = 19;
    vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, 256, 4, 1, 1), *d = vt_new(&P, BE, LLMH_DTYPE_F32, 256, 4, 1, 1);
    copy_job job = {vt_new(&P, BE, LLMH_DTYPE_F32, 256, 1, 1, 1), 0};
    uint8_t *ai = fill_random(a, &seed, 1.0f);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, copy_loop, &job), 0);
    int graph_failures = 0;
    for (int it = 0; it < 40; it++) {
        llmh_node n = mk(LLMH_OP_SCALE, d, a, NULL, NULL);
        n.fp[0] = (float)it;
        if (run_nodes(&n, 1) != LLMH_OK) graph_failures++;
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(graph_failures, 0);
    CU_ASSERT_EQUAL(job.failures, 0);
    float *di = malloc(256 * 4 * sizeof(float));
    vt_download(&P, BE, d, di, 256 * 4 * sizeof(float));
    for (int i = 0; i < 1024; i++) CU_ASSERT_EQUAL(di[i], ((const float *)ai)[i] * 39.0f);
    /* an empty graph is fine */
    llmh_graph g = {sizeof g, 0, NULL};
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_OK);
    free(di);
    free(ai);
    vt_free(&P, BE, a);
    vt_free(&P, BE, d);
    vt_free(&P, BE, job.t);
}

/* Unsupported requests fail with a message, never crash. */
static void test_errors(void) {
    CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_MUL_MAT, LLMH_DTYPE_I32, LLMH_DTYPE_F32), 0);
    CU_ASSERT_EQUAL(P.be->supports(BE, LLMH_OP_ADD, LLMH_DTYPE_F16, LLMH_DTYPE_F32), 0);
    CU_ASSERT_EQUAL(P.be->supports(BE, (llmh_op)999, LLMH_DTYPE_F32, LLMH_DTYPE_F32), 0);
    vt_tensor *a = vt_new(&P, BE, LLMH_DTYPE_F32, 8, 2, 1, 1), *b = vt_new(&P, BE, LLMH_DTYPE_F32, 3, 2, 1, 1);
    llmh_node n = mk(LLMH_OP_ADD, a, a, b, NULL); /* 3 does not divide 8 */
    llmh_graph g = {sizeof g, 1, &n};
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "ADD") != NULL);
    n = mk(LLMH_OP_SCALE, a, a, NULL, NULL);
    n.dst = &b->t; /* shape mismatch */
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_ERR_INVALID_ARG);
    uint8_t tmp[8];
    llmh_tensor big = a->t;
    big.ne[1] = 1000; /* the view runs past its buffer */
    n = mk(LLMH_OP_SCALE, a, a, NULL, NULL);
    n.src[0] = &big;
    n.dst = &big;
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_ERR_INVALID_ARG);
    n.op = (llmh_op)77;
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_ERR_UNSUPPORTED);
    /* a buffer that is not ours (e.g. another backend's) is refused, not used */
    struct { uint64_t junk[8]; } foreign = {{0}};
    llmh_tensor alien = a->t;
    alien.buffer = (llmh_buffer *)&foreign;
    n = mk(LLMH_OP_SCALE, a, a, NULL, NULL);
    n.src[0] = &alien;
    CU_ASSERT_EQUAL(P.be->graph_compute(BE, &g), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "another backend") != NULL);
    CU_ASSERT_EQUAL(P.be->buffer_write(BE, (llmh_buffer *)&foreign, 0, tmp, 4), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(P.be->buffer_read(BE, a->buf, 60, tmp, 8), LLMH_ERR_INVALID_ARG);
    vt_free(&P, BE, a);
    vt_free(&P, BE, b);
}

/* Device listing and the capability report. */
static void test_devices(void) {
    int32_t n = P.be->device_count(P.state);
    CU_ASSERT(n >= 1);
    for (int32_t i = 0; i < n; i++) {
        llmh_device_info info;
        CU_ASSERT_EQUAL(P.be->device_info(P.state, i, &info), LLMH_OK);
        fprintf(stderr, "  device %d: %s (%s)\n", i, info.name, info.description);
        CU_ASSERT(strlen(info.name) > 0);
        CU_ASSERT(strstr(info.description, "subgroup=") != NULL);
        CU_ASSERT(strstr(info.description, "fp16-storage=") != NULL);
    }
    llmh_device_info info;
    CU_ASSERT_EQUAL(P.be->device_info(P.state, n, &info), LLMH_ERR_INVALID_ARG);
    llmh_backend_params prm = {sizeof prm, n, 0, NULL};
    llmh_backend *be = NULL;
    CU_ASSERT_EQUAL(P.be->create(P.state, &prm, &be), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(be);
    prm.device = 0;
    CU_ASSERT_EQUAL(P.be->create(P.state, &prm, &be), LLMH_OK);
    P.be->destroy(be);
    /* [backend] device = N overrides params.device; bad values are config errors */
    llmh_kv kv = {"device", {LLMH_V_I64, {.i = n}}};
    llmh_kv_list opts = {&kv, 1};
    prm.device = -1;
    prm.options = &opts;
    be = NULL;
    CU_ASSERT_EQUAL(P.be->create(P.state, &prm, &be), LLMH_ERR_NOT_FOUND);
    CU_ASSERT(strstr(llmh_last_error(), "device") != NULL);
    kv.value.v.i = n - 1;
    CU_ASSERT_EQUAL(P.be->create(P.state, &prm, &be), LLMH_OK);
    P.be->destroy(be);
    kv.value.type = LLMH_V_STRING;
    kv.value.v.s.ptr = "gpu";
    kv.value.v.s.len = 3;
    be = NULL;
    CU_ASSERT_EQUAL(P.be->create(P.state, &prm, &be), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(be);
}

/* With no ICD the plugin loads, probe/device_count say no device, and
 * create fails naming the loader and the ICD setting. In a child process,
 * since the loader reads VK_ICD_FILENAMES when the instance is made. */
static void test_no_device(void) {
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        setenv("VK_ICD_FILENAMES", "/nonexistent.json", 1);
        setenv("VK_DRIVER_FILES", "/nonexistent.json", 1);
        vt_plugin p;
        if (vt_plugin_load(&p) != 0) _exit(10);
        if (p.desc->probe && p.desc->probe(llmh_host_api_get()) != 0) _exit(11);
        if (p.be->device_count(p.state) != 0) _exit(12);
        llmh_backend *be = NULL;
        llmh_backend_params prm = {sizeof prm, -1, 0, NULL};
        if (p.be->create(p.state, &prm, &be) == LLMH_OK || be) _exit(13);
        const char *msg = llmh_last_error();
        fprintf(stderr, "  no-device message: %s\n", msg);
        if (!strstr(msg, "no Vulkan device found")) _exit(14);
        if (!strstr(msg, "/nonexistent.json")) _exit(15);
        llmh_device_info info;
        if (p.be->device_info(p.state, 0, &info) == LLMH_OK) _exit(16);
        vt_plugin_unload(&p);
        _exit(0);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) fprintf(stderr, "  child failed with %d\n", WEXITSTATUS(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
}

int main(void) {
    static const llmh_test_case nodev_cases[] = {{"no device: clean failure", test_no_device}, {NULL, NULL}};
    static const llmh_test_case dev_cases[] = {
        {"devices and capability report", test_devices},
        {"error paths", test_errors},
        {NULL, NULL}};
    static const llmh_test_case op_cases[] = {
        {"GET_ROWS all types", test_get_rows},
        {"ADD/MUL broadcast, in place", test_binary},
        {"SCALE/SILU/GELU/SWIGLU strided, in place", test_unary},
        {"RMS_NORM/SOFTMAX", test_rms_norm_softmax},
        {"ROPE normal/neox, freq factors", test_rope},
        {"CPY f32/f16/bf16 strided", test_cpy},
        {"ATTENTION f32/f16/bf16 GQA window cap", test_attention},
        {"graph chain (barriers)", test_graph_chain},
        {"barriers only on dependencies", test_barriers},
        {"LORA groups: fused equals node by node, barriers per group", test_lora_groups},
        {NULL, NULL}};
    static const llmh_test_case mm_cases[] = {
        {"MUL_MAT all weight types, rows 1/31/33 x batch 1/7/64", test_mul_mat},
        {"MUL_MAT broadcast batches, strided views", test_mul_mat_batched_strided},
        {"MUL_MAT 32-element blocks: exact integer block dot", test_mul_mat_block_exact},
        {NULL, NULL}};
    static const llmh_test_case staged_cases[] = {
        {"CPY f32/f16/bf16 strided (staged)", test_cpy},
        {"ATTENTION (staged)", test_attention},
        {"graph chain (staged)", test_graph_chain},
        {"LORA groups (staged)", test_lora_groups},
        {"copies from another thread during graphs (staged)", test_concurrent_copies},
        {"MUL_MAT all weight types (staged, no subgroups)", test_mul_mat},
        {"MUL_MAT broadcast batches, strided views (staged)", test_mul_mat_batched_strided},
        {"MUL_MAT 32-element blocks: exact integer block dot (staged, no subgroups)", test_mul_mat_block_exact},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {
        {"vulkan-nodevice", nodev_cases, NULL, NULL},
        {"vulkan-backend", dev_cases, suite_init, suite_cleanup},
        {"vulkan-ops", op_cases, suite_init, suite_cleanup},
        {"vulkan-matmul", mm_cases, suite_init, suite_cleanup},
        {"vulkan-staged", staged_cases, suite_init_staged, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}

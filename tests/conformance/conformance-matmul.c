/* conformance-matmul.c — MUL_MAT for every weight type a backend claims,
 * against a double-precision reference that follows the SDK's normative
 * precision: the activations are first converted to the weight's dot type
 * (F32: as is; F16/BF16: rounded, RNE; Q4_0..Q8_0: Q8_0 blocks with
 * q = rint(x * 127/amax), d = f16(amax/127); K-quants: Q8_K via
 * llmh_quantize), then dequantized weights (llmh_dequantize) and activations
 * are multiplied and summed exactly in double.
 *
 * Tolerance per output: rel * S, S = sum |w_i * a_i| of that output (the
 * scale of the f32 rounding in any summation order): 3e-5 for float types
 * (K up to 4097 summed in f32), 1e-4 for symmetric block types (per-block
 * f32 scaling), 1e-3 for Q4_1/Q5_1 (llama.cpp's Q8_1 keeps the activation
 * block sum as f16) and K-quants.
 *
 * Shapes: K in {1, 31, 33, 4097} (float), {32, 96, 4128} (block-32) or
 * {256, 1024} (K-quants); M = 33 output rows (and M = 1); N in {1, 7, 64}
 * tokens. Variants: raw weights; weights after weight_prepare (when the
 * backend has it); prepared + strided src1/dst views; batched src1 with
 * src0 broadcast (ne[2] 2 -> 4).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

/* The activation values the SDK says the backend must multiply with. */
static void dot_type_activations(llmh_dtype wt, const float *x, int64_t k, float *out) {
    int64_t bs = llmh_dtype_block_size(wt);
    if (wt == LLMH_DTYPE_F32) {
        memcpy(out, x, (size_t)k * sizeof(float));
    } else if (wt == LLMH_DTYPE_F16) {
        for (int64_t i = 0; i < k; i++) out[i] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(x[i]));
    } else if (wt == LLMH_DTYPE_BF16) {
        for (int64_t i = 0; i < k; i++) out[i] = llmh_bf16_to_fp32(llmh_fp32_to_bf16(x[i]));
    } else if (bs == 32) {
        for (int64_t b = 0; b < k / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            float d = llmh_fp16_to_fp32(llmh_fp32_to_fp16(amax / 127.0f));
            for (int j = 0; j < 32; j++) out[b * 32 + j] = d * (float)(int)nearbyintf(xb[j] * id);
        }
    } else { /* K-quants: Q8_K */
        uint8_t *q = malloc((size_t)(k / 256) * llmh_dtype_type_size(LLMH_DTYPE_Q8_K));
        llmh_quantize(LLMH_DTYPE_Q8_K, x, q, k);
        llmh_dequantize(LLMH_DTYPE_Q8_K, q, out, k);
        free(q);
    }
}

static double rel_tol_for(llmh_dtype t) {
    if (t == LLMH_DTYPE_F32 || t == LLMH_DTYPE_F16 || t == LLMH_DTYPE_BF16) return 3e-5;
    if (t == LLMH_DTYPE_Q4_1 || t == LLMH_DTYPE_Q5_1 || llmh_dtype_block_size(t) == 256) return 1e-3;
    return 1e-4;
}

/* One MUL_MAT case; returns false on a failed check. */
static bool run_case(llmh_dtype t, int64_t K, int64_t M, int64_t N, int variant) {
    const llmh_backend_iface *bi = cf_cur->bi;
    if (variant >= 1 && variant <= 2 && !bi->weight_prepare) return true;
    int64_t B0 = variant == 3 ? 2 : 1, B1 = variant == 3 ? 4 : 1;
    int64_t bs = llmh_dtype_block_size(t);
    size_t row = llmh_dtype_type_size(t) * (size_t)(K / bs);
    cf_seed((uint64_t)(t * 100000 + K * 100 + M * 10 + N + variant * 7));
    uint8_t *raw = malloc(row * (size_t)(M * B0));
    cf_random_weights(t, raw, K * M * B0);
    cf_tensor *w = cf_new(t, K, M, B0, 1, 0);
    cf_tensor *x = cf_new(LLMH_DTYPE_F32, K, N, B1, 1, variant == 2 ? 12 : 0);
    cf_tensor *d = cf_new(LLMH_DTYPE_F32, M, N, B1, 1, variant == 2 ? 20 : 0);
    if (!w || !x || !d) {
        CU_FAIL("tensor allocation");
        free(raw);
        cf_free(w);
        cf_free(x);
        cf_free(d);
        return false;
    }
    cf_put_rows(w, raw);
    w->t.name = "conformance.weight";
    float *xv = malloc((size_t)(K * N * B1) * sizeof(float));
    for (int64_t i = 0; i < K * N * B1; i++) xv[i] = cf_randf() * 2.0f;
    cf_put(x, xv);
    bool prepared = false;
    if (variant == 1 || variant == 2) {
        if (bi->weight_prepare(cf_cur->be, &w->t) != LLMH_OK) {
            fprintf(stderr, "  [%s] weight_prepare(%s [%lld, %lld]): %s\n", cf_cur->name, llmh_dtype_name(t),
                    (long long)K, (long long)M, llmh_last_error());
            CU_FAIL("weight_prepare");
        }
        prepared = true;
    }
    llmh_status st = cf_run(LLMH_OP_MUL_MAT, d, w, x, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(st, LLMH_OK);
    /* reference */
    int64_t n_out = M * N * B1;
    double *want = malloc((size_t)n_out * sizeof(double)), *scale = malloc((size_t)n_out * sizeof(double));
    float *wf = malloc((size_t)(K * M * B0) * sizeof(float)), *af = malloc((size_t)K * sizeof(float));
    for (int64_t r = 0; r < M * B0; r++) llmh_dequantize(t, raw + (size_t)r * row, wf + r * K, K);
    for (int64_t b = 0; b < B1; b++) {
        int64_t b0 = b / (B1 / B0);
        for (int64_t c = 0; c < N; c++) {
            dot_type_activations(t, xv + (b * N + c) * K, K, af);
            for (int64_t r = 0; r < M; r++) {
                const float *wr = wf + (b0 * M + r) * K;
                double s = 0, sa = 0;
                for (int64_t i = 0; i < K; i++) {
                    s += (double)wr[i] * af[i];
                    sa += fabs((double)wr[i] * af[i]);
                }
                want[(b * N + c) * M + r] = s;
                scale[(b * N + c) * M + r] = sa;
            }
        }
    }
    float *got = malloc((size_t)n_out * sizeof(float));
    cf_get(d, got);
    static const char *vn[] = {"raw", "prepared", "prepared, strided src1/dst", "batched, src0 broadcast"};
    char what[128];
    snprintf(what, sizeof what, "mul_mat %s K=%lld M=%lld N=%lld (%s)", llmh_dtype_name(t), (long long)K, (long long)M,
             (long long)N, vn[variant]);
    bool ok = st == LLMH_OK && cf_close(what, got, want, scale, n_out, 1e-6, rel_tol_for(t));
    CU_ASSERT(ok);
    if (prepared && bi->weight_release) bi->weight_release(cf_cur->be, &w->t);
    free(got);
    free(af);
    free(wf);
    free(scale);
    free(want);
    free(xv);
    free(raw);
    cf_free(d);
    cf_free(x);
    cf_free(w);
    return ok;
}

static int run_type(llmh_dtype t, const int64_t *ks, size_t nk) {
    static const int64_t ns[] = {1, 7, 64};
    int cases = 0;
    for (size_t ki = 0; ki < nk; ki++) {
        for (size_t ni = 0; ni < 3; ni++) {
            run_case(t, ks[ki], 33, ns[ni], 0);
            run_case(t, ks[ki], 33, ns[ni], 1);
            cases += 2;
        }
        run_case(t, ks[ki], 33, 7, 2);
        run_case(t, ks[ki], 33, 7, 3);
        run_case(t, ks[ki], 1, 7, 0);
        cases += 3;
    }
    return cases;
}

void cf_test_mul_mat_float(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    static const int64_t ks[] = {1, 31, 33, 4097};
    for (size_t i = 0; i < 3; i++) {
        if (!cf_supports(LLMH_OP_MUL_MAT, types[i], LLMH_DTYPE_F32)) continue;
        int n = run_type(types[i], ks, 4);
        fprintf(stderr, "  [%s] mul_mat %s: %d cases\n", cf_cur->name, llmh_dtype_name(types[i]), n);
    }
}

void cf_test_mul_mat_quant(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_dtype types[] = {LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1,
                                       LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q2_K, LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K,
                                       LLMH_DTYPE_Q5_K, LLMH_DTYPE_Q6_K};
    static const int64_t k32[] = {32, 96, 4128}, k256[] = {256, 1024};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        llmh_dtype t = types[i];
        if (!cf_supports(LLMH_OP_MUL_MAT, t, LLMH_DTYPE_F32)) {
            fprintf(stderr, "  [%s] mul_mat %s: not claimed\n", cf_cur->name, llmh_dtype_name(t));
            continue;
        }
        int n = llmh_dtype_block_size(t) == 32 ? run_type(t, k32, 3) : run_type(t, k256, 2);
        fprintf(stderr, "  [%s] mul_mat %s: %d cases\n", cf_cur->name, llmh_dtype_name(t), n);
    }
}

/* conformance-ops.c — every op but MUL_MAT against scalar references
 * (double precision where the SDK leaves rounding free).
 *
 * Shapes: rows of 1, 31, 33 and 4097 columns, 1, 7 and 64 rows; each op runs
 * out of place, in place when the SDK allows it (dst is src0's very view),
 * and on a strided src0 view (rows padded by 12 bytes).
 * Tolerances: ADD/MUL/SCALE/CPY are exact in f32 (1 ulp allowed);
 * SILU/GELU/SOFTMAX/RMS_NORM 2e-6 absolute + 2e-5 relative (expf/tanhf of
 * different libms); ROPE 5e-4 absolute (an angle of pos * freq computed in
 * f32 is off by up to pos * 2^-24 rad; positions < 2048); GET_ROWS equals
 * llmh_dequantize to 1e-6 relative; ATTENTION 1e-5 + 1e-4 relative with f32
 * K/V and 2e-3 absolute with f16 K/V (q and the probabilities rounded to f16
 * per the SDK: one f16 ulp of a probability is 2^-11 of it).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

static const int64_t k_cols[] = {1, 31, 33, 4097};
static const int64_t k_rows[] = {1, 7, 64};

static float *randv(int64_t n, float scale) {
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = cf_randf() * scale;
    return v;
}

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double gelu_d(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

/* 0 = separate dst, 1 = in place, 2 = strided src0 (padded rows) */
static const char *variant_name[] = {"out of place", "in place", "strided src0"};

void cf_test_elementwise(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_op ops[] = {LLMH_OP_ADD, LLMH_OP_MUL, LLMH_OP_SCALE, LLMH_OP_SILU, LLMH_OP_GELU, LLMH_OP_SWIGLU};
    static const char *names[] = {"add", "mul", "scale", "silu", "gelu", "swiglu"};
    int tested = 0;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        llmh_op op = ops[o];
        if (!cf_supports(op, LLMH_DTYPE_F32, LLMH_DTYPE_F32)) continue;
        for (size_t ci = 0; ci < 4; ci++) {
            for (size_t ri = 0; ri < 3; ri++) {
                for (int var = 0; var < 3; var++) {
                    int64_t C = k_cols[ci], R = k_rows[ri], n = C * R;
                    cf_seed((uint64_t)(o * 1000 + ci * 100 + ri * 10 + var));
                    cf_tensor *a = cf_new(LLMH_DTYPE_F32, C, R, 1, 1, var == 2 ? 12 : 0);
                    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
                    cf_tensor *d = var == 1 ? a : cf_new(LLMH_DTYPE_F32, C, R, 1, 1, 0);
                    cf_tensor *b = NULL;
                    float *av = randv(n, op == LLMH_OP_SILU || op == LLMH_OP_GELU ? 6.0f : 2.0f), *bv = NULL;
                    int64_t bc = C, br = R;
                    if (op == LLMH_OP_ADD || op == LLMH_OP_MUL) {
                        /* broadcast: a row vector, the full shape, or one value per row */
                        if (var == 0) br = 1;
                        if (var == 2) bc = 1;
                    }
                    if (op == LLMH_OP_ADD || op == LLMH_OP_MUL || op == LLMH_OP_SWIGLU) {
                        b = cf_new(LLMH_DTYPE_F32, bc, br, 1, 1, 0);
                        bv = randv(bc * br, 2.0f);
                        cf_put(b, bv);
                    }
                    cf_put(a, av);
                    float fp[LLMH_MAX_PARAMS] = {0};
                    fp[0] = 0.37f;
                    CU_ASSERT_EQUAL(cf_run(op, d, a, b, NULL, NULL, fp), LLMH_OK);
                    double *want = malloc((size_t)n * sizeof(double));
                    for (int64_t r = 0; r < R; r++)
                        for (int64_t c = 0; c < C; c++) {
                            double x = av[r * C + c], y = bv ? bv[(r % br) * bc + (c % bc)] : 0.0, w;
                            switch (op) {
                            case LLMH_OP_ADD: w = (float)(x + y); break;
                            case LLMH_OP_MUL: w = (float)(x * y); break;
                            case LLMH_OP_SCALE: w = (float)(x * (double)0.37f); break;
                            case LLMH_OP_SILU: w = silu_d(x); break;
                            case LLMH_OP_GELU: w = gelu_d(x); break;
                            default: w = silu_d(x) * y; break;
                            }
                            want[r * C + c] = w;
                        }
                    float *got = malloc((size_t)n * sizeof(float));
                    cf_get(d, got);
                    char what[128];
                    snprintf(what, sizeof what, "%s %lldx%lld %s", names[o], (long long)C, (long long)R,
                             variant_name[var]);
                    int exact = op == LLMH_OP_ADD || op == LLMH_OP_MUL || op == LLMH_OP_SCALE;
                    CU_ASSERT(cf_close(what, got, want, NULL, n, exact ? 0.0 : 2e-6, exact ? 1.2e-7 : 2e-5));
                    tested++;
                    free(got);
                    free(want);
                    free(av);
                    free(bv);
                    cf_free(b);
                    if (d != a) cf_free(d);
                    cf_free(a);
                }
            }
        }
    }
    fprintf(stderr, "  [%s] elementwise: %d cases\n", cf_cur->name, tested);
}

void cf_test_rms_softmax(void) {
    CF_SKIP_IF_NO_BACKEND();
    int tested = 0;
    for (int which = 0; which < 3; which++) { /* rms_norm with weight, without, softmax */
        llmh_op op = which < 2 ? LLMH_OP_RMS_NORM : LLMH_OP_SOFTMAX;
        if (!cf_supports(op, LLMH_DTYPE_F32, LLMH_DTYPE_F32)) continue;
        for (size_t ci = 0; ci < 4; ci++)
            for (size_t ri = 0; ri < 3; ri++)
                for (int var = 0; var < 3; var++) {
                    int64_t C = k_cols[ci], R = k_rows[ri], n = C * R;
                    cf_seed((uint64_t)(7000 + which * 100 + ci * 10 + ri * 3 + var));
                    cf_tensor *a = cf_new(LLMH_DTYPE_F32, C, R, 1, 1, var == 2 ? 12 : 0);
                    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
                    cf_tensor *d = var == 1 ? a : cf_new(LLMH_DTYPE_F32, C, R, 1, 1, 0);
                    cf_tensor *w = NULL;
                    float *av = randv(n, 3.0f), *wv = NULL;
                    cf_put(a, av);
                    if (which == 0) {
                        w = cf_new(LLMH_DTYPE_F32, C, 1, 1, 1, 0);
                        wv = randv(C, 1.5f);
                        cf_put(w, wv);
                    }
                    float fp[LLMH_MAX_PARAMS] = {0};
                    fp[0] = op == LLMH_OP_RMS_NORM ? 1e-5f : (var == 0 ? 0.0f : 0.125f);
                    CU_ASSERT_EQUAL(cf_run(op, d, a, w, NULL, NULL, fp), LLMH_OK);
                    double *want = malloc((size_t)n * sizeof(double));
                    for (int64_t r = 0; r < R; r++) {
                        const float *x = av + r * C;
                        if (op == LLMH_OP_RMS_NORM) {
                            double ss = 0;
                            for (int64_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
                            double inv = 1.0 / sqrt(ss / (double)C + (double)1e-5f);
                            for (int64_t c = 0; c < C; c++) want[r * C + c] = x[c] * inv * (wv ? wv[c] : 1.0);
                        } else {
                            double s = fp[0] == 0.0f ? 1.0 : fp[0], mx = -INFINITY, sum = 0;
                            for (int64_t c = 0; c < C; c++) mx = fmax(mx, x[c] * s);
                            for (int64_t c = 0; c < C; c++) sum += exp(x[c] * s - mx);
                            for (int64_t c = 0; c < C; c++) want[r * C + c] = exp(x[c] * s - mx) / sum;
                        }
                    }
                    float *got = malloc((size_t)n * sizeof(float));
                    cf_get(d, got);
                    char what[128];
                    snprintf(what, sizeof what, "%s %lldx%lld %s", which == 0 ? "rms_norm*w" : which == 1 ? "rms_norm" : "softmax",
                             (long long)C, (long long)R, variant_name[var]);
                    CU_ASSERT(cf_close(what, got, want, NULL, n, 2e-6, 2e-5));
                    tested++;
                    free(got);
                    free(want);
                    free(av);
                    free(wv);
                    cf_free(w);
                    if (d != a) cf_free(d);
                    cf_free(a);
                }
    }
    fprintf(stderr, "  [%s] rms_norm/softmax: %d cases\n", cf_cur->name, tested);
}

void cf_test_rope(void) {
    CF_SKIP_IF_NO_BACKEND();
    if (!cf_supports(LLMH_OP_ROPE, LLMH_DTYPE_F32, LLMH_DTYPE_I32)) return;
    static const struct { int64_t D, n_rot; int mode; int ff; float scale; } cases[] = {
        {64, 64, LLMH_ROPE_NORMAL, 0, 1.0f}, {64, 64, LLMH_ROPE_NEOX, 0, 1.0f},
        {128, 32, LLMH_ROPE_NEOX, 0, 0.5f},  {64, 48, LLMH_ROPE_NORMAL, 1, 1.0f},
        {64, 64, LLMH_ROPE_NEOX, 1, 0.25f},
    };
    int tested = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int var = 0; var < 3; var++) {
            int64_t D = cases[ci].D, H = 3, T = 7, n = D * H * T;
            cf_seed(9000 + ci * 10 + (uint64_t)var);
            cf_tensor *x = cf_new(LLMH_DTYPE_F32, D, H, T, 1, var == 2 ? 12 : 0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(x);
            cf_tensor *d = var == 1 ? x : cf_new(LLMH_DTYPE_F32, D, H, T, 1, 0);
            cf_tensor *pos = cf_new(LLMH_DTYPE_I32, T, 1, 1, 1, 0);
            cf_tensor *ff = NULL;
            float *xv = randv(n, 2.0f), ffv[128];
            int32_t pv[16];
            for (int64_t t = 0; t < T; t++) pv[t] = (int32_t)(cf_randu() % 2048);
            cf_put(x, xv);
            cf_put_i32(pos, pv);
            int n_rot = (int)cases[ci].n_rot;
            if (cases[ci].ff) {
                ff = cf_new(LLMH_DTYPE_F32, n_rot / 2, 1, 1, 1, 0);
                for (int i = 0; i < n_rot / 2; i++) ffv[i] = 1.0f + (float)i * 0.37f;
                cf_put(ff, ffv);
            }
            int32_t ip[LLMH_MAX_PARAMS] = {n_rot, cases[ci].mode};
            float fp[LLMH_MAX_PARAMS] = {10000.0f, cases[ci].scale};
            CU_ASSERT_EQUAL(cf_run(LLMH_OP_ROPE, d, x, pos, ff, ip, fp), LLMH_OK);
            double *want = malloc((size_t)n * sizeof(double));
            for (int64_t t = 0; t < T; t++)
                for (int64_t h = 0; h < H; h++) {
                    const float *r = xv + (t * H + h) * D;
                    double *w = want + (t * H + h) * D;
                    for (int64_t i = 0; i < D; i++) w[i] = r[i];
                    for (int i = 0; i < n_rot / 2; i++) {
                        double th = pv[t] * (double)cases[ci].scale * pow(10000.0, -2.0 * i / n_rot);
                        if (ff) th /= ffv[i];
                        int64_t i0 = cases[ci].mode == LLMH_ROPE_NEOX ? i : 2 * i;
                        int64_t i1 = cases[ci].mode == LLMH_ROPE_NEOX ? i + n_rot / 2 : 2 * i + 1;
                        w[i0] = r[i0] * cos(th) - r[i1] * sin(th);
                        w[i1] = r[i0] * sin(th) + r[i1] * cos(th);
                    }
                }
            float *got = malloc((size_t)n * sizeof(float));
            cf_get(d, got);
            char what[128];
            snprintf(what, sizeof what, "rope D=%lld n_rot=%d %s%s %s", (long long)D, n_rot,
                     cases[ci].mode == LLMH_ROPE_NEOX ? "neox" : "normal", ff ? " freq-factors" : "", variant_name[var]);
            CU_ASSERT(cf_close(what, got, want, NULL, n, 5e-4, 0.0));
            tested++;
            free(got);
            free(want);
            free(xv);
            cf_free(ff);
            cf_free(pos);
            if (d != x) cf_free(d);
            cf_free(x);
        }
    fprintf(stderr, "  [%s] rope: %d cases\n", cf_cur->name, tested);
}

static double round_to(llmh_dtype t, double v) {
    if (t == LLMH_DTYPE_F16) return llmh_fp16_to_fp32(llmh_fp32_to_fp16((float)v));
    if (t == LLMH_DTYPE_BF16) return llmh_bf16_to_fp32(llmh_fp32_to_bf16((float)v));
    return (float)v;
}

void cf_test_cpy(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_dtype ft[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    int tested = 0;
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 3; di++) {
            if (!cf_supports(LLMH_OP_CPY, ft[si], ft[di])) continue;
            for (int var = 0; var < 3; var++) {
                /* 0: same shape contiguous; 1: into a KV-cache-like strided view; 2: flat reshape */
                int64_t D = 33, H = 2, T = 7, n = D * H * T;
                cf_seed(11000 + (uint64_t)(si * 30 + di * 3 + var));
                cf_tensor *s = cf_new(ft[si], D, H, T, 1, 0);
                cf_tensor *d = var == 2 ? cf_new(ft[di], D * H, T, 1, 1, 0)
                                        : cf_new(ft[di], D, H, T, 1, var == 1 ? 2 * llmh_dtype_type_size(ft[di]) : 0);
                CU_ASSERT_PTR_NOT_NULL_FATAL(s);
                CU_ASSERT_PTR_NOT_NULL_FATAL(d);
                float *v = randv(n, 100.0f), *got = malloc((size_t)n * sizeof(float));
                cf_put(s, v);
                float *sv = malloc((size_t)n * sizeof(float));
                cf_get(s, sv); /* the source values as stored */
                CU_ASSERT_EQUAL(cf_run(LLMH_OP_CPY, d, s, NULL, NULL, NULL, NULL), LLMH_OK);
                cf_get(d, got);
                double *want = malloc((size_t)n * sizeof(double));
                for (int64_t i = 0; i < n; i++) want[i] = round_to(ft[di], sv[i]);
                char what[96];
                snprintf(what, sizeof what, "cpy %s -> %s (%s)", llmh_dtype_name(ft[si]), llmh_dtype_name(ft[di]),
                         var == 0 ? "same shape" : var == 1 ? "strided dst" : "flat");
                CU_ASSERT(cf_close(what, got, want, NULL, n, 0.0, 0.0));
                tested++;
                free(want);
                free(sv);
                free(got);
                free(v);
                cf_free(d);
                cf_free(s);
            }
        }
    fprintf(stderr, "  [%s] cpy: %d cases\n", cf_cur->name, tested);
}

void cf_test_get_rows(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const llmh_dtype types[] = {LLMH_DTYPE_F32,  LLMH_DTYPE_F16,  LLMH_DTYPE_BF16, LLMH_DTYPE_Q4_0,
                                       LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1, LLMH_DTYPE_Q8_0,
                                       LLMH_DTYPE_Q2_K, LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q5_K,
                                       LLMH_DTYPE_Q6_K};
    int tested = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        llmh_dtype t = types[ti];
        if (!cf_supports(LLMH_OP_GET_ROWS, t, LLMH_DTYPE_I32)) continue;
        int64_t bs = llmh_dtype_block_size(t);
        int64_t D = bs == 256 ? 512 : bs == 32 ? 96 : 33, V = 50, R = 7;
        cf_seed(12000 + ti);
        size_t row = llmh_dtype_type_size(t) * (size_t)(D / bs);
        uint8_t *raw = malloc(row * (size_t)V);
        cf_random_weights(t, raw, D * V);
        cf_tensor *w = cf_new(t, D, V, 1, 1, 0), *ids = cf_new(LLMH_DTYPE_I32, R, 1, 1, 1, 0);
        cf_tensor *d = cf_new(LLMH_DTYPE_F32, D, R, 1, 1, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        cf_put_rows(w, raw);
        int32_t iv[7] = {0, 49, 3, 3, 17, 48, 1};
        cf_put_i32(ids, iv);
        CU_ASSERT_EQUAL(cf_run(LLMH_OP_GET_ROWS, d, w, ids, NULL, NULL, NULL), LLMH_OK);
        float *got = malloc((size_t)(D * R) * sizeof(float)), *ref = malloc((size_t)D * sizeof(float));
        double *want = malloc((size_t)(D * R) * sizeof(double));
        cf_get(d, got);
        for (int64_t r = 0; r < R; r++) {
            CU_ASSERT_EQUAL(llmh_dequantize(t, raw + (size_t)iv[r] * row, ref, D), LLMH_OK);
            for (int64_t i = 0; i < D; i++) want[r * D + i] = ref[i];
        }
        char what[64];
        snprintf(what, sizeof what, "get_rows %s", llmh_dtype_name(t));
        CU_ASSERT(cf_close(what, got, want, NULL, D * R, 0.0, 1e-6));
        tested++;
        free(want);
        free(ref);
        free(got);
        free(raw);
        cf_free(d);
        cf_free(ids);
        cf_free(w);
    }
    fprintf(stderr, "  [%s] get_rows: %d types\n", cf_cur->name, tested);
}

/* ------------------------------------------------------------------------ */
/* Attention                                                                  */
/* ------------------------------------------------------------------------ */
void cf_test_attention(void) {
    CF_SKIP_IF_NO_BACKEND();
    static const struct { int64_t D, H, Hkv, T, n_past; int window; float cap; } cases[] = {
        {64, 4, 2, 1, 0, 0, 0.0f},   {64, 4, 2, 7, 0, 0, 0.0f},  {64, 14, 2, 7, 20, 0, 0.0f},
        {32, 4, 4, 64, 5, 0, 0.0f},  {64, 4, 1, 7, 30, 8, 0.0f}, {64, 4, 2, 7, 9, 0, 20.0f},
        {128, 2, 2, 1, 100, 0, 0.0f},
    };
    static const llmh_dtype kv_types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16};
    int tested = 0;
    for (int kt = 0; kt < 2; kt++) {
        llmh_dtype kvt = kv_types[kt];
        if (!cf_supports(LLMH_OP_ATTENTION, LLMH_DTYPE_F32, kvt)) continue;
        if (!cf_supports(LLMH_OP_CPY, LLMH_DTYPE_F32, kvt)) continue;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            int64_t D = cases[ci].D, H = cases[ci].H, Hkv = cases[ci].Hkv, T = cases[ci].T, np = cases[ci].n_past;
            int64_t n_kv = np + T, n_ctx = n_kv + 3;
            cf_seed(13000 + (uint64_t)(kt * 100) + ci);
            cf_tensor *q = cf_new(LLMH_DTYPE_F32, D, H, T, 1, 0);
            cf_tensor *d = cf_new(LLMH_DTYPE_F32, D, H, T, 1, 0);
            /* the cache holds n_ctx entries; K/V are views of its first n_kv */
            cf_tensor *kc = cf_new(kvt, D, Hkv, n_ctx, 1, 0), *vc = cf_new(kvt, D, Hkv, n_ctx, 1, 0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(kc);
            CU_ASSERT_PTR_NOT_NULL_FATAL(vc);
            float *qv = randv(D * H * T, 1.0f), *kv = randv(D * Hkv * n_ctx, 1.0f), *vv = randv(D * Hkv * n_ctx, 1.0f);
            cf_put(q, qv);
            cf_put(kc, kv);
            cf_put(vc, vv);
            float *ks = malloc((size_t)(D * Hkv * n_ctx) * sizeof(float)), *vs = malloc((size_t)(D * Hkv * n_ctx) * sizeof(float));
            cf_get(kc, ks);
            cf_get(vc, vs);
            cf_tensor kview = *kc, vview = *vc;
            kview.t.ne[2] = n_kv;
            vview.t.ne[2] = n_kv;
            int32_t ip[LLMH_MAX_PARAMS] = {(int32_t)np, cases[ci].window};
            float fp[LLMH_MAX_PARAMS] = {1.0f / sqrtf((float)D), cases[ci].cap};
            CU_ASSERT_EQUAL(cf_run(LLMH_OP_ATTENTION, d, q, &kview, &vview, ip, fp), LLMH_OK);
            int64_t n = D * H * T;
            double *want = malloc((size_t)n * sizeof(double)), *sc = malloc((size_t)n_kv * sizeof(double));
            int f16 = kvt == LLMH_DTYPE_F16;
            for (int64_t t = 0; t < T; t++)
                for (int64_t h = 0; h < H; h++) {
                    int64_t hk = h / (H / Hkv), p = np + t, j0 = 0;
                    if (cases[ci].window > 0 && p - cases[ci].window + 1 > 0) j0 = p - cases[ci].window + 1;
                    const float *qr = qv + (t * H + h) * D;
                    double mx = -INFINITY, sum = 0;
                    for (int64_t j = j0; j <= p; j++) {
                        const float *kr = ks + (j * Hkv + hk) * D;
                        double s = 0;
                        for (int64_t i = 0; i < D; i++)
                            s += (f16 ? round_to(LLMH_DTYPE_F16, qr[i]) : (double)qr[i]) * kr[i];
                        s *= (double)fp[0];
                        if (cases[ci].cap > 0) s = cases[ci].cap * tanh(s / cases[ci].cap);
                        sc[j] = s;
                        mx = fmax(mx, s);
                    }
                    for (int64_t j = j0; j <= p; j++) sum += exp(sc[j] - mx);
                    double *w = want + (t * H + h) * D;
                    for (int64_t i = 0; i < D; i++) w[i] = 0;
                    for (int64_t j = j0; j <= p; j++) {
                        double pj = exp(sc[j] - mx) / sum;
                        if (f16) pj = round_to(LLMH_DTYPE_F16, pj);
                        const float *vr = vs + (j * Hkv + hk) * D;
                        for (int64_t i = 0; i < D; i++) w[i] += pj * vr[i];
                    }
                }
            float *got = malloc((size_t)n * sizeof(float));
            cf_get(d, got);
            char what[128];
            snprintf(what, sizeof what, "attention %s D=%lld H=%lld/%lld T=%lld n_past=%lld window=%d cap=%g",
                     llmh_dtype_name(kvt), (long long)D, (long long)H, (long long)Hkv, (long long)T, (long long)np,
                     cases[ci].window, cases[ci].cap);
            CU_ASSERT(cf_close(what, got, want, NULL, n, f16 ? 2e-3 : 1e-5, f16 ? 0.0 : 1e-4));
            tested++;
            free(got);
            free(sc);
            free(want);
            free(ks);
            free(vs);
            free(qv);
            free(kv);
            free(vv);
            cf_free(vc);
            cf_free(kc);
            cf_free(d);
            cf_free(q);
        }
    }
    fprintf(stderr, "  [%s] attention: %d cases\n", cf_cur->name, tested);
}

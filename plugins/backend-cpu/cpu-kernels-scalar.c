/* cpu-kernels-scalar.c — portable matmul kernels and activation quantizers.
 *
 * These compile everywhere and define the arithmetic the SIMD kernels must
 * reproduce: weights of 32-element block types dot against Q8 activations
 * (one f32 scale and one integer sum per 32 values), K-quants against Q8K
 * activations (one scale per 256, int16 sums per 16), and F32/F16/BF16
 * weights against f32 activations. Integer products are summed exactly; only
 * the per-block scaling is floating point.
 */
#include <math.h>
#include <string.h>

#include "cpu-internal.h"

size_t cpu_act_col_bytes(cpu_act_kind kind, int64_t k) {
    size_t n;
    switch (kind) {
    case CPU_ACT_Q8: n = (size_t)k + (size_t)(k / 32) * 8; break;
    case CPU_ACT_Q8K: n = (size_t)k + (size_t)(k / 256) * 4 + (size_t)(k / 16) * 2; break;
    default: n = (size_t)k * sizeof(float); break;
    }
    return (n + 63) & ~(size_t)63;
}

/* ------------------------------------------------------------------------ */
/* Activation quantizers (round half to even, like the SIMD versions). Q8     */
/* keeps its scale at f16 precision, exactly as llama.cpp's Q8_0 activations, */
/* so results track the reference engine as closely as the formats allow.    */
/* ------------------------------------------------------------------------ */
void cpu_act_quantize_q8(const float *x, int64_t k, uint8_t *col) {
    int8_t *qs = (int8_t *)col;
    float *d = (float *)(col + k);
    int32_t *sum = (int32_t *)(col + k + (size_t)(k / 32) * 4);
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        int s = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(xb[j] * id);
            qs[b * 32 + j] = (int8_t)q;
            s += q;
        }
        d[b] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(db)); /* as GGUF's Q8_0 stores it */
        sum[b] = s;
    }
}

void cpu_act_quantize_q8k(const float *x, int64_t k, uint8_t *col) {
    int8_t *qs = (int8_t *)col;
    float *d = (float *)(col + k);
    int16_t *bs = (int16_t *)(col + k + (size_t)(k / 256) * 4);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + b * 256;
        float amax = 0.0f;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 256; j++) qs[b * 256 + j] = (int8_t)(int)nearbyintf(xb[j] * id);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += qs[b * 256 + g * 16 + l];
            bs[b * 16 + g] = (int16_t)s;
        }
        d[b] = amax / 127.0f;
    }
}

float cpu_dot_f32(const float *x, const float *y, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    for (; i < n; i++) acc[0] += x[i] * y[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void cpu_axpy_f32(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void cpu_exp_row(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

void cpu_f16_to_f32_row(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = llmh_fp16_to_fp32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
}

void cpu_silu_row(const float *x, const float *g, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / (1.0f + expf(-x[i]));
        y[i] = g ? v * g[i] : v;
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */
static float f16_at(const uint8_t *p) { return llmh_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ------------------------------------------------------------------------ */
/* Float weights · f32 activations                                            */
/* ------------------------------------------------------------------------ */
static float dot_f32(int64_t k, const uint8_t *w, const uint8_t *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    for (; i < k; i++) acc[0] += x[i] * y[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_f16(int64_t k, const uint8_t *w, const uint8_t *a) {
    const float *y = (const float *)a;
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += f16_at(w + 2 * i) * y[i];
    return acc;
}

static float dot_bf16(int64_t k, const uint8_t *w, const uint8_t *a) {
    const float *y = (const float *)a;
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++)
        acc += llmh_bf16_to_fp32((uint16_t)(w[2 * i] | (w[2 * i + 1] << 8))) * y[i];
    return acc;
}

/* ------------------------------------------------------------------------ */
/* 32-element block types · Q8                                                */
/* ------------------------------------------------------------------------ */
static float dot_q8_0(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8_d(a, k);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        const uint8_t *blk = w + b * 34;
        const int8_t *qw = (const int8_t *)(blk + 2);
        int s = 0;
        for (int j = 0; j < 32; j++) s += qw[j] * qa[b * 32 + j];
        acc += f16_at(blk) * da[b] * (float)s;
    }
    return acc;
}

static float dot_q4_0(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8_d(a, k);
    const int32_t *sa = cpu_act_q8_sum(a, k);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        const uint8_t *blk = w + b * 18, *q = blk + 2;
        const int8_t *y = qa + b * 32;
        int s = 0;
        for (int j = 0; j < 16; j++) s += (q[j] & 0x0f) * y[j] + (q[j] >> 4) * y[j + 16];
        acc += f16_at(blk) * da[b] * (float)(s - 8 * sa[b]);
    }
    return acc;
}

static float dot_q4_1(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8_d(a, k);
    const int32_t *sa = cpu_act_q8_sum(a, k);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        const uint8_t *blk = w + b * 20, *q = blk + 4;
        const int8_t *y = qa + b * 32;
        int s = 0;
        for (int j = 0; j < 16; j++) s += (q[j] & 0x0f) * y[j] + (q[j] >> 4) * y[j + 16];
        acc += da[b] * (f16_at(blk) * (float)s + f16_at(blk + 2) * (float)sa[b]);
    }
    return acc;
}

static int q5_dot(const uint8_t *q, uint32_t qh, const int8_t *y) {
    int s = 0;
    for (int j = 0; j < 16; j++) {
        int lo = (q[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
        int hi = (q[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        s += lo * y[j] + hi * y[j + 16];
    }
    return s;
}

static float dot_q5_0(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8_d(a, k);
    const int32_t *sa = cpu_act_q8_sum(a, k);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        const uint8_t *blk = w + b * 22;
        int s = q5_dot(blk + 6, u32_at(blk + 2), qa + b * 32);
        acc += f16_at(blk) * da[b] * (float)(s - 16 * sa[b]);
    }
    return acc;
}

static float dot_q5_1(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8_d(a, k);
    const int32_t *sa = cpu_act_q8_sum(a, k);
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        const uint8_t *blk = w + b * 24;
        int s = q5_dot(blk + 8, u32_at(blk + 4), qa + b * 32);
        acc += da[b] * (f16_at(blk) * (float)s + f16_at(blk + 2) * (float)sa[b]);
    }
    return acc;
}

/* ------------------------------------------------------------------------ */
/* K-quants · Q8K                                                             */
/* ------------------------------------------------------------------------ */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static float dot_q4_k(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8k_d(a, k);
    const int16_t *bs = cpu_act_q8k_bsums(a, k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 256; i++) {
        const uint8_t *blk = w + i * 144, *q = blk + 16;
        const int8_t *y = qa + i * 256;
        const int16_t *bsi = bs + i * 16;
        int isum = 0, msum = 0;
        for (int j = 0; j < 4; j++) {
            int sc0, m0, sc1, m1, s0 = 0, s1 = 0;
            k4_scale_min(2 * j, blk + 4, &sc0, &m0);
            k4_scale_min(2 * j + 1, blk + 4, &sc1, &m1);
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0x0f) * y[64 * j + l];
                s1 += (q[l] >> 4) * y[64 * j + 32 + l];
            }
            q += 32;
            isum += sc0 * s0 + sc1 * s1;
            msum += m0 * (bsi[4 * j] + bsi[4 * j + 1]) + m1 * (bsi[4 * j + 2] + bsi[4 * j + 3]);
        }
        acc += da[i] * (f16_at(blk) * (float)isum - f16_at(blk + 2) * (float)msum);
    }
    return acc;
}

static float dot_q5_k(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8k_d(a, k);
    const int16_t *bs = cpu_act_q8k_bsums(a, k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 256; i++) {
        const uint8_t *blk = w + i * 176, *qh = blk + 16, *q = blk + 48;
        const int8_t *y = qa + i * 256;
        const int16_t *bsi = bs + i * 16;
        int isum = 0, msum = 0;
        for (int j = 0; j < 4; j++) {
            int sc0, m0, sc1, m1, s0 = 0, s1 = 0;
            k4_scale_min(2 * j, blk + 4, &sc0, &m0);
            k4_scale_min(2 * j + 1, blk + 4, &sc1, &m1);
            for (int l = 0; l < 32; l++) {
                int lo = (q[l] & 0x0f) + (((qh[l] >> (2 * j)) & 1) << 4);
                int hi = (q[l] >> 4) + (((qh[l] >> (2 * j + 1)) & 1) << 4);
                s0 += lo * y[64 * j + l];
                s1 += hi * y[64 * j + 32 + l];
            }
            q += 32;
            isum += sc0 * s0 + sc1 * s1;
            msum += m0 * (bsi[4 * j] + bsi[4 * j + 1]) + m1 * (bsi[4 * j + 2] + bsi[4 * j + 3]);
        }
        acc += da[i] * (f16_at(blk) * (float)isum - f16_at(blk + 2) * (float)msum);
    }
    return acc;
}

static float dot_q6_k(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8k_d(a, k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 256; i++) {
        const uint8_t *blk = w + i * 210;
        const int8_t *y = qa + i * 256;
        int isum = 0;
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = blk + 64 * n, *qh = blk + 128 + 32 * n;
            const int8_t *sc = (const int8_t *)(blk + 192 + 8 * n);
            const int8_t *yn = y + 128 * n;
            int s[8] = {0};
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                s[is + 0] += q1 * yn[l];
                s[is + 2] += q2 * yn[l + 32];
                s[is + 4] += q3 * yn[l + 64];
                s[is + 6] += q4 * yn[l + 96];
            }
            for (int g = 0; g < 8; g++) isum += sc[g] * s[g];
        }
        acc += da[i] * f16_at(blk + 208) * (float)isum;
    }
    return acc;
}

static float dot_q2_k(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8k_d(a, k);
    const int16_t *bs = cpu_act_q8k_bsums(a, k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 256; i++) {
        const uint8_t *blk = w + i * 84, *scales = blk;
        const int8_t *y = qa + i * 256;
        int isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) msum += (scales[g] >> 4) * bs[i * 16 + g];
        for (int n = 0; n < 2; n++) {
            const uint8_t *q = blk + 16 + 32 * n;
            for (int j = 0; j < 4; j++) {
                for (int half = 0; half < 2; half++) {
                    int g = n * 8 + j * 2 + half, s = 0;
                    const int8_t *yy = y + n * 128 + j * 32 + half * 16;
                    for (int l = 0; l < 16; l++) s += ((q[l + 16 * half] >> (2 * j)) & 3) * yy[l];
                    isum += (scales[g] & 0x0f) * s;
                }
            }
        }
        acc += da[i] * (f16_at(blk + 80) * (float)isum - f16_at(blk + 82) * (float)msum);
    }
    return acc;
}

static int q3_k_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
    int hi = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

static float dot_q3_k(int64_t k, const uint8_t *w, const uint8_t *a) {
    const int8_t *qa = (const int8_t *)a;
    const float *da = cpu_act_q8k_d(a, k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 256; i++) {
        const uint8_t *blk = w + i * 110, *hm = blk, *sc = blk + 96;
        const int8_t *y = qa + i * 256;
        int isum = 0;
        for (int n = 0; n < 2; n++) {
            const uint8_t *q = blk + 32 + 32 * n;
            for (int j = 0; j < 4; j++) {
                uint8_t m = (uint8_t)(1u << (4 * n + j));
                for (int half = 0; half < 2; half++) {
                    int g = n * 8 + j * 2 + half, s = 0;
                    const int8_t *yy = y + n * 128 + j * 32 + half * 16;
                    for (int l = 0; l < 16; l++) {
                        int kk = l + 16 * half;
                        int v = ((q[kk] >> (2 * j)) & 3) - ((hm[kk] & m) ? 0 : 4);
                        s += v * yy[l];
                    }
                    isum += q3_k_scale(sc, g) * s;
                }
            }
        }
        acc += da[i] * f16_at(blk + 108) * (float)isum;
    }
    return acc;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                     */
/* ------------------------------------------------------------------------ */
#define SCALAR_MM(NAME, DOT)                                                                     \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,       \
                     size_t as, int nc, float *dst, size_t ds) {                                 \
        for (int64_t r = 0; r < nr; r++)                                                          \
            for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = DOT(k, w + (size_t)r * ws, a + (size_t)c * as); \
    }

SCALAR_MM(mm_f32, dot_f32)
SCALAR_MM(mm_f16, dot_f16)
SCALAR_MM(mm_bf16, dot_bf16)
SCALAR_MM(mm_q8_0, dot_q8_0)
SCALAR_MM(mm_q4_0, dot_q4_0)
SCALAR_MM(mm_q4_1, dot_q4_1)
SCALAR_MM(mm_q5_0, dot_q5_0)
SCALAR_MM(mm_q5_1, dot_q5_1)
SCALAR_MM(mm_q2_k, dot_q2_k)
SCALAR_MM(mm_q3_k, dot_q3_k)
SCALAR_MM(mm_q4_k, dot_q4_k)
SCALAR_MM(mm_q5_k, dot_q5_k)
SCALAR_MM(mm_q6_k, dot_q6_k)

/* ------------------------------------------------------------------------ */
/* LORA's B side: dst[r] += s * dot(row r, x) (f32 products and sums)         */
/* ------------------------------------------------------------------------ */
#define SCALAR_LORA_ACC(NAME, DOT)                                                                \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const float *x, float s, \
                     float *dst) {                                                                \
        for (int64_t r = 0; r < nr; r++) dst[r] = fmaf(s, DOT(k, w + (size_t)r * ws, (const uint8_t *)x), dst[r]); \
    }

SCALAR_LORA_ACC(lora_acc_f32, dot_f32)
SCALAR_LORA_ACC(lora_acc_f16, dot_f16)
SCALAR_LORA_ACC(lora_acc_bf16, dot_bf16)

/* d[i] = fma(s[k], y[k][i], d[i]) in order of k: the LoRA adapter sums'
 * add (cpu-lora.c). */
static void lora_add_scalar(float *d, const float *const *y, const float *s, int n_y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < n_y; k++) d[i] = fmaf(s[k], y[k][i], d[i]);
}

/* Transposed B: dst[i] += s * sum_j bt[j][i] r[j]. */
static float load_plain(llmh_dtype t, const uint8_t *p) {
    if (t == LLMH_DTYPE_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return t == LLMH_DTYPE_F16 ? llmh_fp16_to_fp32(h) : llmh_bf16_to_fp32(h);
}

#define SCALAR_LORA_ACC_T(NAME, TYPE)                                                                     \
    static void NAME(int64_t k, const uint8_t *bt, int64_t r0, int64_t nr, const float *x, float s, float *dst) { \
        size_t ts = llmh_dtype_type_size(TYPE);                                                          \
        for (int64_t r = 0; r < nr; r++) {                                                                \
            int64_t i = r0 + r;                                                                           \
            const uint8_t *col = bt + (size_t)((i / CPU_LORA_BT) * k * CPU_LORA_BT + i % CPU_LORA_BT) * ts; \
            float acc = 0.0f;                                                                             \
            for (int64_t j = 0; j < k; j++) acc += load_plain(TYPE, col + (size_t)(j * CPU_LORA_BT) * ts) * x[j]; \
            dst[r] = fmaf(s, acc, dst[r]);                                                                \
        }                                                                                                 \
    }

SCALAR_LORA_ACC_T(lora_acc_t_f32, LLMH_DTYPE_F32)
SCALAR_LORA_ACC_T(lora_acc_t_f16, LLMH_DTYPE_F16)
SCALAR_LORA_ACC_T(lora_acc_t_bf16, LLMH_DTYPE_BF16)

/* Q8_0 adapters (SDK 1.2). A side, f32 columns: per block the f32 sum of
 * q x, times d, added. */
static void lora_a_q8_0(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as, int nc,
                        float *dst, size_t ds) {
    for (int64_t r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) {
            const float *x = (const float *)(a + (size_t)c * as);
            float acc = 0.0f;
            for (int64_t b = 0; b < k / 32; b++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)b * 34;
                const int8_t *q = (const int8_t *)(blk + 2);
                float p = 0.0f;
                for (int i = 0; i < 32; i++) p = fmaf((float)q[i], x[b * 32 + i], p);
                acc = fmaf(f16_at(blk), p, acc);
            }
            dst[(size_t)c * ds + (size_t)r] = acc;
        }
}

/* B side on the transposed Q8_0 B (cpu_lora_acc_q8t_fn), 32 rows at a time. */
static void lora_acc_q8t(int64_t rank, const uint8_t *bt, size_t bs, int64_t r0, int64_t nr, int nc,
                         const float *const *x, const float *s, float *const *dst) {
    for (int64_t i0 = r0; i0 < r0 + nr; i0 += 32) {
        float acc[4][32] = {{0}};
        for (int64_t j = 0; j < rank; j++) {
            const uint8_t *blk = bt + (size_t)j * bs + (size_t)(i0 / 32) * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            float d = f16_at(blk);
            for (int c = 0; c < nc; c++) {
                float wj = d * x[c][j];
                for (int i = 0; i < 32; i++) acc[c][i] = fmaf((float)q[i], wj, acc[c][i]);
            }
        }
        for (int c = 0; c < nc; c++)
            for (int i = 0; i < 32; i++) dst[c][i0 - r0 + i] = fmaf(s[c], acc[c][i], dst[c][i0 - r0 + i]);
    }
}

void cpu_kernels_init_scalar(cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    k->name = "scalar";
    k->mm[LLMH_DTYPE_F32] = mm_f32;
    k->mm[LLMH_DTYPE_F16] = mm_f16;
    k->mm[LLMH_DTYPE_BF16] = mm_bf16;
    k->mm[LLMH_DTYPE_Q8_0] = mm_q8_0;
    k->mm[LLMH_DTYPE_Q4_0] = mm_q4_0;
    k->mm[LLMH_DTYPE_Q4_1] = mm_q4_1;
    k->mm[LLMH_DTYPE_Q5_0] = mm_q5_0;
    k->mm[LLMH_DTYPE_Q5_1] = mm_q5_1;
    k->mm[LLMH_DTYPE_Q2_K] = mm_q2_k;
    k->mm[LLMH_DTYPE_Q3_K] = mm_q3_k;
    k->mm[LLMH_DTYPE_Q4_K] = mm_q4_k;
    k->mm[LLMH_DTYPE_Q5_K] = mm_q5_k;
    k->mm[LLMH_DTYPE_Q6_K] = mm_q6_k;
    k->lora_a[LLMH_DTYPE_F32] = mm_f32;
    k->lora_a[LLMH_DTYPE_F16] = mm_f16;
    k->lora_a[LLMH_DTYPE_BF16] = mm_bf16;
    k->lora_acc[LLMH_DTYPE_F32] = lora_acc_f32;
    k->lora_acc[LLMH_DTYPE_F16] = lora_acc_f16;
    k->lora_acc[LLMH_DTYPE_BF16] = lora_acc_bf16;
    k->lora_acc_t[LLMH_DTYPE_F32] = lora_acc_t_f32;
    k->lora_acc_t[LLMH_DTYPE_F16] = lora_acc_t_f16;
    k->lora_acc_t[LLMH_DTYPE_BF16] = lora_acc_t_bf16;
    k->lora_a[LLMH_DTYPE_Q8_0] = lora_a_q8_0;
    k->lora_acc_q8t = lora_acc_q8t;
    for (int t = 0; t < LLMH_DTYPE_COUNT; t++) k->act[t] = CPU_ACT_F32;
    k->act[LLMH_DTYPE_Q8_0] = k->act[LLMH_DTYPE_Q4_0] = k->act[LLMH_DTYPE_Q4_1] = CPU_ACT_Q8;
    k->act[LLMH_DTYPE_Q5_0] = k->act[LLMH_DTYPE_Q5_1] = CPU_ACT_Q8;
    k->act[LLMH_DTYPE_Q2_K] = k->act[LLMH_DTYPE_Q3_K] = k->act[LLMH_DTYPE_Q4_K] = CPU_ACT_Q8K;
    k->act[LLMH_DTYPE_Q5_K] = k->act[LLMH_DTYPE_Q6_K] = CPU_ACT_Q8K;
    k->act[LLMH_DTYPE_BF16] = CPU_ACT_BF16R;
    k->act[LLMH_DTYPE_F16] = CPU_ACT_F16R;
    k->silu_row = cpu_silu_row;
    k->f16_to_f32 = cpu_f16_to_f32_row;
    k->dot = cpu_dot_f32;
    k->axpy = cpu_axpy_f32;
    k->lora_add = lora_add_scalar;
    k->exp_row = cpu_exp_row;
    k->quantize_q8 = cpu_act_quantize_q8;
    k->quantize_q8k = cpu_act_quantize_q8k;
}

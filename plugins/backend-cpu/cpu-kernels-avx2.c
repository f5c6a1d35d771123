/* cpu-kernels-avx2.c — AVX2 + FMA + F16C matmul kernels and activation
 * quantizers. Built with -mavx2 -mfma -mf16c (this file only) and used only
 * after CPUID says the machine has them.
 *
 * Integer dots use maddubs (u8 x s8 -> pairs of s16) then madd (-> s32):
 * 4/5-bit weights are unsigned nibbles and their offset (-8, -16) or min is
 * applied through the activation block sums; Q8_0 uses |w| x sign(a, w).
 * Every kernel handles 1..4 activation columns per weight pass: the weight
 * block is unpacked once and dotted with each column.
 */
#include "cpu-internal.h"

#if CPU_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

AI float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI int hsum256_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

AI float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* u8 x s8 dot of 32 bytes -> 8 s32 lanes */
AI __m256i dot_us8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high */
AI __m256i nibbles32(const uint8_t *q) {
    __m128i t = _mm_loadu_si128((const __m128i *)q);
    __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes of 0xff (bit set) / 0x00 */
AI __m256i bits32(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* ------------------------------------------------------------------------ */
/* Activation quantizers (identical results to the scalar ones)               */
/* ------------------------------------------------------------------------ */
AI __m256 absmax8(__m256 m, __m256 v) {
    return _mm256_max_ps(m, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v));
}

AI float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 floats * id -> 32 int8 (round to nearest even); returns lanes of the
 * int32 values summed pairwise into *sum8. */
AI __m256i quant32(const float *x, __m256 id, __m256i *sum8) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    *sum8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    /* undo the per-lane interleave of the packs */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_q8_avx2(const float *x, int64_t k, uint8_t *col) {
    float *d = (float *)(col + k);
    int32_t *sum = (int32_t *)(col + k + (size_t)(k / 32) * 4);
    for (int64_t b = 0; b < k / 32; b++) {
        const float *xb = x + b * 32;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 32; j += 8) m = absmax8(m, _mm256_loadu_ps(xb + j));
        float amax = hmax256(m);
        float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        __m256i s8;
        __m256i q = quant32(xb, _mm256_set1_ps(id), &s8);
        _mm256_storeu_si256((__m256i *)(col + b * 32), q);
        d[b] = _cvtsh_ss(_cvtss_sh(db, _MM_FROUND_TO_NEAREST_INT));
        sum[b] = hsum256_i32(s8);
    }
}

static void quantize_q8k_avx2(const float *x, int64_t k, uint8_t *col) {
    float *d = (float *)(col + k);
    int16_t *bs = (int16_t *)(col + k + (size_t)(k / 256) * 4);
    for (int64_t b = 0; b < k / 256; b++) {
        const float *xb = x + b * 256;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 256; j += 8) m = absmax8(m, _mm256_loadu_ps(xb + j));
        float amax = hmax256(m);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        for (int j = 0; j < 256; j += 32) {
            __m256i s8;
            __m256i q = quant32(xb + j, vid, &s8);
            _mm256_storeu_si256((__m256i *)(col + b * 256 + j), q);
            /* sums of 16: lanes 0..3 of (i0+i1) and of (i2+i3) */
            __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
            __m128i slo = _mm_madd_epi16(_mm_cvtepi8_epi16(lo), _mm_set1_epi16(1));
            slo = _mm_add_epi32(slo, _mm_madd_epi16(_mm_cvtepi8_epi16(_mm_srli_si128(lo, 8)), _mm_set1_epi16(1)));
            __m128i shi = _mm_madd_epi16(_mm_cvtepi8_epi16(hi), _mm_set1_epi16(1));
            shi = _mm_add_epi32(shi, _mm_madd_epi16(_mm_cvtepi8_epi16(_mm_srli_si128(hi, 8)), _mm_set1_epi16(1)));
            int s0 = _mm_extract_epi32(slo, 0) + _mm_extract_epi32(slo, 1) + _mm_extract_epi32(slo, 2) + _mm_extract_epi32(slo, 3);
            int s1 = _mm_extract_epi32(shi, 0) + _mm_extract_epi32(shi, 1) + _mm_extract_epi32(shi, 2) + _mm_extract_epi32(shi, 3);
            bs[b * 16 + j / 16] = (int16_t)s0;
            bs[b * 16 + j / 16 + 1] = (int16_t)s1;
        }
        d[b] = amax / 127.0f;
    }
}

/* ------------------------------------------------------------------------ */
/* SiLU / SwiGLU with a vector exp (Cephes polynomial, ~1 ulp on the reduced  */
/* range; inputs clamped to +-88 so the scale 2^n stays finite).              */
/* ------------------------------------------------------------------------ */
AI __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static float dot_avx2(const float *x, const float *y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* d[i] = fma(s, y[i], d[i]): the LoRA adapter sums' add (cpu-lora.c). */
static void lora_add_avx2(float *d, const float *const *y, const float *s, int n_y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(d + i);
        for (int k = 0; k < n_y; k++) v = _mm256_fmadd_ps(_mm256_set1_ps(s[k]), _mm256_loadu_ps(y[k] + i), v);
        _mm256_storeu_ps(d + i, v);
    }
    for (; i < n; i++)
        for (int k = 0; k < n_y; k++) d[i] = fmaf(s[k], y[k][i], d[i]);
}

static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void exp_row_avx2(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = expf(x[i]);
}

static void f16_to_f32_avx2(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
    for (; i < n; i++) dst[i] = f16(src + 2 * i);
}

static void silu_row_avx2(const float *x, const float *g, float *y, int64_t n) {
    int64_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
        if (g) s = _mm256_mul_ps(s, _mm256_loadu_ps(g + i));
        _mm256_storeu_ps(y + i, s);
    }
    if (i < n) cpu_silu_row(x + i, g ? g + i : NULL, y + i, n - i);
}

/* ------------------------------------------------------------------------ */
/* Float weights                                                              */
/* ------------------------------------------------------------------------ */
#define FLOAT_KERNEL(NAME, LOAD8, LOAD1)                                                          \
    AI void NAME##_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,        \
                     size_t as, const int nc, float *dst, size_t ds) {                            \
        for (int64_t r = 0; r < nr; r++) {                                                        \
            const uint8_t *wr = w + (size_t)r * ws;                                                \
            __m256 acc0[4], acc1[4];                                                               \
            for (int c = 0; c < nc; c++) acc0[c] = acc1[c] = _mm256_setzero_ps();                  \
            int64_t i = 0;                                                                         \
            for (; i + 16 <= k; i += 16) {                                                         \
                __m256 w0 = LOAD8(wr, i), w1 = LOAD8(wr, i + 8);                                   \
                for (int c = 0; c < nc; c++) {                                                     \
                    const float *ac = (const float *)(a + (size_t)c * as);                        \
                    acc0[c] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ac + i), acc0[c]);               \
                    acc1[c] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ac + i + 8), acc1[c]);           \
                }                                                                                  \
            }                                                                                      \
            for (int c = 0; c < nc; c++) {                                                         \
                const float *ac = (const float *)(a + (size_t)c * as);                            \
                float s = hsum256(_mm256_add_ps(acc0[c], acc1[c]));                                \
                for (int64_t j = i; j < k; j++) s += LOAD1(wr, j) * ac[j];                         \
                dst[(size_t)c * ds + (size_t)r] = s;                                               \
            }                                                                                      \
        }                                                                                          \
    }

#define LOAD8_F32(p, i) _mm256_loadu_ps((const float *)(p) + (i))
#define LOAD1_F32(p, i) (((const float *)(p))[i])
#define LOAD8_F16(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * (i))))
#define LOAD1_F16(p, i) f16((p) + 2 * (i))
#define LOAD8_BF16(p, i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((p) + 2 * (i)))), 16))
static inline float load1_bf16(const uint8_t *p, int64_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return llmh_bf16_to_fp32(h);
}
#define LOAD1_BF16(p, i) load1_bf16((p), (i))

FLOAT_KERNEL(mm_f32, LOAD8_F32, LOAD1_F32)
FLOAT_KERNEL(mm_f16, LOAD8_F16, LOAD1_F16)
FLOAT_KERNEL(mm_bf16, LOAD8_BF16, LOAD1_BF16)

/* ------------------------------------------------------------------------ */
/* LORA's B side: dst[r] += s * dot(row r, x), 8 rows at a time              */
/* ------------------------------------------------------------------------ */
/* The eight horizontal sums of a[0..7] as the lanes of one vector. */
AI __m256 hsum8x8(const __m256 *a) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

#define LORA_ACC_KERNEL(NAME, LOAD8, LOAD1)                                                       \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const float *x, float s, \
                     float *dst) {                                                                \
        int64_t k8 = k & ~(int64_t)7, r = 0;                                                      \
        const __m256 vs = _mm256_set1_ps(s);                                                      \
        for (; r + 8 <= nr; r += 8) {                                                              \
            __m256 acc[8];                                                                         \
            for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();                              \
            for (int64_t i = 0; i < k8; i += 8) {                                                  \
                __m256 xv = _mm256_loadu_ps(x + i);                                                \
                for (int q = 0; q < 8; q++)                                                        \
                    acc[q] = _mm256_fmadd_ps(LOAD8(w + (size_t)(r + q) * ws, i), xv, acc[q]);      \
            }                                                                                      \
            __m256 sum = hsum8x8(acc);                                                             \
            if (k8 < k) {                                                                          \
                float t[8];                                                                        \
                _mm256_storeu_ps(t, sum);                                                          \
                for (int q = 0; q < 8; q++)                                                        \
                    for (int64_t i = k8; i < k; i++) t[q] += LOAD1(w + (size_t)(r + q) * ws, i) * x[i]; \
                sum = _mm256_loadu_ps(t);                                                          \
            }                                                                                      \
            _mm256_storeu_ps(dst + r, _mm256_fmadd_ps(vs, sum, _mm256_loadu_ps(dst + r))); \
        }                                                                                          \
        for (; r < nr; r++) {                                                                      \
            const uint8_t *wr = w + (size_t)r * ws;                                                \
            __m256 acc = _mm256_setzero_ps();                                                      \
            for (int64_t i = 0; i < k8; i += 8) acc = _mm256_fmadd_ps(LOAD8(wr, i), _mm256_loadu_ps(x + i), acc); \
            float t = hsum256(acc);                                                                \
            for (int64_t i = k8; i < k; i++) t += LOAD1(wr, i) * x[i];                             \
            dst[r] = fmaf(s, t, dst[r]);                                                           \
        }                                                                                          \
    }

/* Transposed B (blocks of CPU_LORA_BT rows): per block segment, 8-row
 * vectors with one broadcast of r[j] per j; rows off the 8-grid one by one. */
#define LORA_ACC_T_KERNEL(NAME, LOAD8, LOAD1, TS)                                                 \
    static void NAME(int64_t k, const uint8_t *bt, int64_t r0, int64_t nr, const float *x, float s, \
                     float *dst) {                                                                \
        const __m256 vs = _mm256_set1_ps(s);                                                      \
        int64_t i = r0, end = r0 + nr;                                                             \
        while (i < end) {                                                                          \
            int64_t blk = i / CPU_LORA_BT, in = i % CPU_LORA_BT;                                   \
            int64_t seg = CPU_LORA_BT - in < end - i ? CPU_LORA_BT - in : end - i;                 \
            const uint8_t *b0 = bt + (size_t)(blk * k * CPU_LORA_BT) * (TS);                       \
            float *d = dst + (i - r0);                                                             \
            int64_t q = 0;                                                                         \
            if (seg == CPU_LORA_BT) { /* a whole block: 8 accumulators, one pass over j */         \
                __m256 a[8];                                                                       \
                for (int v = 0; v < 8; v++) a[v] = _mm256_setzero_ps();                            \
                for (int64_t j = 0; j < k; j++) {                                                  \
                    __m256 xj = _mm256_set1_ps(x[j]);                                              \
                    for (int v = 0; v < 8; v++) a[v] = _mm256_fmadd_ps(LOAD8(b0, j * CPU_LORA_BT + 8 * v), xj, a[v]); \
                }                                                                                  \
                for (int v = 0; v < 8; v++)                                                        \
                    _mm256_storeu_ps(d + 8 * v, _mm256_fmadd_ps(vs, a[v], _mm256_loadu_ps(d + 8 * v))); \
                q = seg;                                                                           \
            }                                                                                      \
            for (; q + 8 <= seg; q += 8) {                                                         \
                __m256 a = _mm256_setzero_ps();                                                    \
                for (int64_t j = 0; j < k; j++)                                                    \
                    a = _mm256_fmadd_ps(LOAD8(b0, j * CPU_LORA_BT + in + q), _mm256_set1_ps(x[j]), a); \
                _mm256_storeu_ps(d + q, _mm256_fmadd_ps(vs, a, _mm256_loadu_ps(d + q))); \
            }                                                                                      \
            for (; q < seg; q++) {                                                                 \
                float acc = 0.0f;                                                                  \
                for (int64_t j = 0; j < k; j++) acc += LOAD1(b0, j * CPU_LORA_BT + in + q) * x[j];  \
                d[q] = fmaf(s, acc, d[q]);                                                         \
            }                                                                                      \
            i += seg;                                                                              \
        }                                                                                          \
    }

LORA_ACC_T_KERNEL(lora_acc_t_f32, LOAD8_F32, LOAD1_F32, 4)
LORA_ACC_T_KERNEL(lora_acc_t_f16, LOAD8_F16, LOAD1_F16, 2)
LORA_ACC_T_KERNEL(lora_acc_t_bf16, LOAD8_BF16, LOAD1_BF16, 2)

LORA_ACC_KERNEL(lora_acc_f32, LOAD8_F32, LOAD1_F32)
LORA_ACC_KERNEL(lora_acc_f16, LOAD8_F16, LOAD1_F16)
LORA_ACC_KERNEL(lora_acc_bf16, LOAD8_BF16, LOAD1_BF16)

/* 8 int8 of a Q8_0 block widened to f32 */
#define Q8_LOAD8(q, i) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((q) + (i)))))

/* Q8_0 adapters (SDK 1.2). A side with f32 columns: per block the sum of
 * q x in one 8-wide accumulator, times d, added. */
AI void lora_a_q8_0_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as, const int nc,
                      float *dst, size_t ds) {
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m256 acc[4];
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
        for (int64_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = wr + (size_t)b * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            __m256 q0 = Q8_LOAD8(q, 0), q1 = Q8_LOAD8(q, 8), q2 = Q8_LOAD8(q, 16), q3 = Q8_LOAD8(q, 24);
            __m256 vd = _mm256_set1_ps(f16(blk));
            for (int c = 0; c < nc; c++) {
                const float *x = (const float *)(a + (size_t)c * as) + b * 32;
                __m256 p = _mm256_mul_ps(q0, _mm256_loadu_ps(x));
                p = _mm256_fmadd_ps(q1, _mm256_loadu_ps(x + 8), p);
                p = _mm256_fmadd_ps(q2, _mm256_loadu_ps(x + 16), p);
                p = _mm256_fmadd_ps(q3, _mm256_loadu_ps(x + 24), p);
                acc[c] = _mm256_fmadd_ps(p, vd, acc[c]);
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = hsum256(acc[c]);
    }
}

static void lora_a_q8_0(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as, int nc,
                        float *dst, size_t ds) {
    switch (nc) {
    case 1: lora_a_q8_0_n(k, w, ws, nr, a, as, 1, dst, ds); break;
    case 2: lora_a_q8_0_n(k, w, ws, nr, a, as, 2, dst, ds); break;
    case 3: lora_a_q8_0_n(k, w, ws, nr, a, as, 3, dst, ds); break;
    default: lora_a_q8_0_n(k, w, ws, nr, a, as, 4, dst, ds); break;
    }
}

/* B side on the transposed Q8_0 B (cpu_lora_acc_q8t_fn): 32-row tiles, 4
 * accumulators per column, up to 2 columns per pass over bt. */
AI void lora_acc_q8t_n(int64_t rank, const uint8_t *bt, size_t bs, int64_t r0, int64_t nr, const int nc,
                       const float *const *x, const float *s, float *const *dst) {
    for (int64_t i0 = r0; i0 < r0 + nr; i0 += 32) {
        __m256 acc[2][4];
        for (int c = 0; c < nc; c++)
            for (int v = 0; v < 4; v++) acc[c][v] = _mm256_setzero_ps();
        const uint8_t *col = bt + (size_t)(i0 / 32) * 34;
        for (int64_t j = 0; j < rank; j++) {
            const uint8_t *blk = col + (size_t)j * bs;
            const int8_t *q = (const int8_t *)(blk + 2);
            __m256 q0 = Q8_LOAD8(q, 0), q1 = Q8_LOAD8(q, 8), q2 = Q8_LOAD8(q, 16), q3 = Q8_LOAD8(q, 24);
            float d = f16(blk);
            for (int c = 0; c < nc; c++) {
                __m256 wj = _mm256_set1_ps(d * x[c][j]);
                acc[c][0] = _mm256_fmadd_ps(q0, wj, acc[c][0]);
                acc[c][1] = _mm256_fmadd_ps(q1, wj, acc[c][1]);
                acc[c][2] = _mm256_fmadd_ps(q2, wj, acc[c][2]);
                acc[c][3] = _mm256_fmadd_ps(q3, wj, acc[c][3]);
            }
        }
        for (int c = 0; c < nc; c++) {
            __m256 vs = _mm256_set1_ps(s[c]);
            float *d = dst[c] + (i0 - r0);
            for (int v = 0; v < 4; v++)
                _mm256_storeu_ps(d + 8 * v, _mm256_fmadd_ps(vs, acc[c][v], _mm256_loadu_ps(d + 8 * v)));
        }
    }
}

static void lora_acc_q8t(int64_t rank, const uint8_t *bt, size_t bs, int64_t r0, int64_t nr, int nc,
                         const float *const *x, const float *s, float *const *dst) {
    for (int c = 0; c < nc; c += 2) {
        if (nc - c >= 2) lora_acc_q8t_n(rank, bt, bs, r0, nr, 2, x + c, s + c, dst + c);
        else lora_acc_q8t_n(rank, bt, bs, r0, nr, 1, x + c, s + c, dst + c);
    }
}

/* The decode adapter unit's group kernels (cpu_lora_sum_q8t_fn,
 * cpu_lora_a_q8_group_fn): n adapters of a projection read side by side,
 * so that several memory streams are in flight, with the arithmetic of
 * lora_acc_q8t (B: per output row the sum over j in order from 0, fma into
 * a zeroed accumulator) and of lora_a_q8_0 with one column (A). Prefetch
 * distances as in the AVX-512 kernels. */
#define LORA_PF_A 2048
#define LORA_PF_B 1024

/* G rank rows of every B at a time, swept over all m; a 32-row block is
 * done in two halves of 16 rows so that four adapters' accumulators (8)
 * stay in registers. y is loaded and stored once per G rows. */
AI void lora_sum_q8t_g(const uint8_t *const *bt, size_t bs, int64_t j0, int64_t m, const int G, const int n,
                       const float *const *x, float *const *y) {
    for (int64_t b = 0; b < m / 32; b++)
        for (int h = 0; h < 32; h += 16) {
            __m256 acc[CPU_LORA_GROUP][2];
            for (int i = 0; i < n; i++) {
                const float *yi = y[i] + b * 32 + h;
                acc[i][0] = j0 ? _mm256_loadu_ps(yi) : _mm256_setzero_ps();
                acc[i][1] = j0 ? _mm256_loadu_ps(yi + 8) : _mm256_setzero_ps();
            }
            for (int g = 0; g < G; g++)
                for (int i = 0; i < n; i++) {
                    const uint8_t *blk = bt[i] + (size_t)(j0 + g) * bs + (size_t)b * 34;
                    if (!h) _mm_prefetch((const char *)blk + LORA_PF_B, _MM_HINT_T0);
                    const int8_t *q = (const int8_t *)(blk + 2) + h;
                    __m256 wj = _mm256_set1_ps(f16(blk) * x[i][j0 + g]);
                    acc[i][0] = _mm256_fmadd_ps(Q8_LOAD8(q, 0), wj, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(Q8_LOAD8(q, 8), wj, acc[i][1]);
                }
            for (int i = 0; i < n; i++) {
                float *yi = y[i] + b * 32 + h;
                _mm256_storeu_ps(yi, acc[i][0]);
                _mm256_storeu_ps(yi + 8, acc[i][1]);
            }
        }
}

AI void lora_a_q8_group_n(int64_t k, const uint8_t *const *w, size_t ws, int64_t nr, const int n,
                          const float *const *x, float *const *dst) {
    for (int64_t r = 0; r < nr; r++) {
        __m256 acc[CPU_LORA_GROUP];
        for (int i = 0; i < n; i++) acc[i] = _mm256_setzero_ps();
        for (int64_t b = 0; b < k / 32; b++)
            for (int i = 0; i < n; i++) {
                const uint8_t *blk = w[i] + (size_t)r * ws + (size_t)b * 34;
                _mm_prefetch((const char *)blk + LORA_PF_A, _MM_HINT_T0);
                const int8_t *q = (const int8_t *)(blk + 2);
                const float *xi = x[i] + b * 32;
                __m256 p = _mm256_mul_ps(Q8_LOAD8(q, 0), _mm256_loadu_ps(xi));
                p = _mm256_fmadd_ps(Q8_LOAD8(q, 8), _mm256_loadu_ps(xi + 8), p);
                p = _mm256_fmadd_ps(Q8_LOAD8(q, 16), _mm256_loadu_ps(xi + 16), p);
                p = _mm256_fmadd_ps(Q8_LOAD8(q, 24), _mm256_loadu_ps(xi + 24), p);
                acc[i] = _mm256_fmadd_ps(p, _mm256_set1_ps(f16(blk)), acc[i]);
            }
        for (int i = 0; i < n; i++) dst[i][r] = hsum256(acc[i]);
    }
}

CPU_LORA_GROUP_DRIVERS

/* ------------------------------------------------------------------------ */
/* 32-element blocks                                                          */
/* ------------------------------------------------------------------------ */
/* Q8_0: |w| x sign(a, w) */
AI void mm_q8_0_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as,
                  const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 32;
    const float *da[4];
    for (int c = 0; c < nc; c++) da[c] = cpu_act_q8_d(a + (size_t)c * as, k);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m256 acc0[4], acc1[4];
        for (int c = 0; c < nc; c++) acc0[c] = acc1[c] = _mm256_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const uint8_t *b0 = wr + b * 34, *b1 = b0 + 34;
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(b1 + 2));
            __m256i u0 = _mm256_sign_epi8(q0, q0), u1 = _mm256_sign_epi8(q1, q1);
            float d0 = f16(b0), d1 = f16(b1);
            for (int c = 0; c < nc; c++) {
                const uint8_t *ac = a + (size_t)c * as;
                __m256i y0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ac + b * 32)), q0);
                __m256i y1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ac + b * 32 + 32)), q1);
                acc0[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us8(u0, y0)), _mm256_set1_ps(d0 * da[c][b]), acc0[c]);
                acc1[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us8(u1, y1)), _mm256_set1_ps(d1 * da[c][b + 1]), acc1[c]);
            }
        }
        for (; b < nb; b++) {
            const uint8_t *b0 = wr + b * 34;
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            __m256i u0 = _mm256_sign_epi8(q0, q0);
            float d0 = f16(b0);
            for (int c = 0; c < nc; c++) {
                const uint8_t *ac = a + (size_t)c * as;
                __m256i y0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(ac + b * 32)), q0);
                acc0[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us8(u0, y0)), _mm256_set1_ps(d0 * da[c][b]), acc0[c]);
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = hsum256(_mm256_add_ps(acc0[c], acc1[c]));
    }
}

/* Unsigned 4/5-bit blocks. KIND: 0 = Q4_0, 1 = Q4_1, 2 = Q5_0, 3 = Q5_1.
 * dot = dw*da*(Σ q*a) + da*sa*(offset*dw or m). */
AI void mm_qx_n(const int kind, int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,
                size_t as, const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 32;
    const size_t bsz = kind == 0 ? 18 : kind == 1 ? 20 : kind == 2 ? 22 : 24;
    const float *da[4];
    const int32_t *sa[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8_d(a + (size_t)c * as, k);
        sa[c] = cpu_act_q8_sum(a + (size_t)c * as, k);
    }
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m256 acc[4];
        float corr[4];
        for (int c = 0; c < nc; c++) {
            acc[c] = _mm256_setzero_ps();
            corr[c] = 0.0f;
        }
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = wr + (size_t)b * bsz;
            float dw = f16(blk), off;
            __m256i q;
            switch (kind) {
            case 0: q = nibbles32(blk + 2); off = -8.0f * dw; break;
            case 1: q = nibbles32(blk + 4); off = f16(blk + 2); break;
            case 2:
                q = _mm256_or_si256(nibbles32(blk + 6), _mm256_and_si256(bits32(blk + 2), _mm256_set1_epi8(0x10)));
                off = -16.0f * dw;
                break;
            default:
                q = _mm256_or_si256(nibbles32(blk + 8), _mm256_and_si256(bits32(blk + 4), _mm256_set1_epi8(0x10)));
                off = f16(blk + 2);
                break;
            }
            for (int c = 0; c < nc; c++) {
                const uint8_t *ac = a + (size_t)c * as;
                __m256i y = _mm256_loadu_si256((const __m256i *)(ac + b * 32));
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us8(q, y)), _mm256_set1_ps(dw * da[c][b]), acc[c]);
                corr[c] += off * da[c][b] * (float)sa[c][b];
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = hsum256(acc[c]) + corr[c];
    }
}

/* ------------------------------------------------------------------------ */
/* K-quants                                                                   */
/* ------------------------------------------------------------------------ */
AI void k4_scales(const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        mn[j] = q[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K (five = 0) and Q5_K (five = 1). */
AI void mm_q45k_n(const int five, int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,
                  size_t as, const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 256;
    const size_t bsz = five ? 176 : 144;
    const float *da[4];
    const int16_t *bs[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8k_d(a + (size_t)c * as, k);
        bs[c] = cpu_act_q8k_bsums(a + (size_t)c * as, k);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m256 acc[4];
        float corr[4];
        for (int c = 0; c < nc; c++) {
            acc[c] = _mm256_setzero_ps();
            corr[c] = 0.0f;
        }
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *blk = wr + (size_t)i * bsz;
            const uint8_t *qs = blk + (five ? 48 : 16);
            uint8_t sc[8], mn[8];
            k4_scales(blk + 4, sc, mn);
            float d = f16(blk), dmin = f16(blk + 2);
            __m256i hb = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
            __m256i isum[4];
            for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (five) {
                    __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * j)), one);
                    __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * j + 1)), one);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
                }
                __m256i s0 = _mm256_set1_epi16(sc[2 * j]), s1 = _mm256_set1_epi16(sc[2 * j + 1]);
                for (int c = 0; c < nc; c++) {
                    const uint8_t *ac = a + (size_t)c * as + (size_t)i * 256 + 64 * j;
                    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)ac));
                    __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(ac + 32)));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
                }
            }
            for (int c = 0; c < nc; c++) {
                const int16_t *b16 = bs[c] + i * 16;
                int msum = 0;
                for (int j = 0; j < 8; j++) msum += mn[j] * (b16[2 * j] + b16[2 * j + 1]);
                float dd = d * da[c][i];
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(dd), acc[c]);
                corr[c] -= dmin * da[c][i] * (float)msum;
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = hsum256(acc[c]) + corr[c];
    }
}

AI void mm_q6k_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as,
                 const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 256;
    const float *da[4];
    const int16_t *bs[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8k_d(a + (size_t)c * as, k);
        bs[c] = cpu_act_q8k_bsums(a + (size_t)c * as, k);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m256 acc[4];
        float corr[4];
        for (int c = 0; c < nc; c++) {
            acc[c] = _mm256_setzero_ps();
            corr[c] = 0.0f;
        }
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *blk = wr + (size_t)i * 210;
            const int8_t *scl = (const int8_t *)(blk + 192);
            float d = f16(blk + 208);
            __m256i isum[4];
            for (int c = 0; c < nc; c++) isum[c] = _mm256_setzero_si256();
            for (int n = 0; n < 2; n++) {
                const uint8_t *ql = blk + 64 * n, *qh = blk + 128 + 32 * n;
                const int8_t *sc = scl + 8 * n;
                __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
                __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                __m256i h = _mm256_loadu_si256((const __m256i *)qh);
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
                __m256i s[4];
                for (int g = 0; g < 4; g++)
                    s[g] = _mm256_setr_m128i(_mm_set1_epi16(sc[2 * g]), _mm_set1_epi16(sc[2 * g + 1]));
                for (int c = 0; c < nc; c++) {
                    const uint8_t *ac = a + (size_t)c * as + (size_t)i * 256 + 128 * n;
                    for (int g = 0; g < 4; g++) {
                        __m256i p = _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)(ac + 32 * g)));
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, s[g]));
                    }
                }
            }
            for (int c = 0; c < nc; c++) {
                const int16_t *b16 = bs[c] + i * 16;
                int cs = 0;
                for (int g = 0; g < 16; g++) cs += scl[g] * b16[g];
                float dd = d * da[c][i];
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(dd), acc[c]);
                corr[c] -= 32.0f * dd * (float)cs;
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = hsum256(acc[c]) + corr[c];
    }
}

/* ------------------------------------------------------------------------ */
/* Column-count dispatch (constant nc lets the compiler unroll)               */
/* ------------------------------------------------------------------------ */
#define DISPATCH_NC(NAME, CALL)                                                                   \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,        \
                     size_t as, int nc, float *dst, size_t ds) {                                  \
        switch (nc) {                                                                              \
        case 1: CALL(1); break;                                                                    \
        case 2: CALL(2); break;                                                                    \
        case 3: CALL(3); break;                                                                    \
        default: CALL(4); break;                                                                   \
        }                                                                                          \
    }

#define C_F32(n) mm_f32_n(k, w, ws, nr, a, as, n, dst, ds)
#define C_F16(n) mm_f16_n(k, w, ws, nr, a, as, n, dst, ds)
#define C_BF16(n) mm_bf16_n(k, w, ws, nr, a, as, n, dst, ds)
#define C_Q8_0(n) mm_q8_0_n(k, w, ws, nr, a, as, n, dst, ds)
#define C_Q4_0(n) mm_qx_n(0, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q4_1(n) mm_qx_n(1, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q5_0(n) mm_qx_n(2, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q5_1(n) mm_qx_n(3, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q4_K(n) mm_q45k_n(0, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q5_K(n) mm_q45k_n(1, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q6_K(n) mm_q6k_n(k, w, ws, nr, a, as, n, dst, ds)

DISPATCH_NC(mm_f32, C_F32)
DISPATCH_NC(mm_f16, C_F16)
DISPATCH_NC(mm_bf16, C_BF16)
DISPATCH_NC(mm_q8_0, C_Q8_0)
DISPATCH_NC(mm_q4_0, C_Q4_0)
DISPATCH_NC(mm_q4_1, C_Q4_1)
DISPATCH_NC(mm_q5_0, C_Q5_0)
DISPATCH_NC(mm_q5_1, C_Q5_1)
DISPATCH_NC(mm_q4_k, C_Q4_K)
DISPATCH_NC(mm_q5_k, C_Q5_K)
DISPATCH_NC(mm_q6_k, C_Q6_K)

void cpu_kernels_init_avx2(cpu_kernels *k) {
    k->name = "avx2";
    k->mm[LLMH_DTYPE_F32] = mm_f32;
    k->mm[LLMH_DTYPE_F16] = mm_f16;
    k->mm[LLMH_DTYPE_BF16] = mm_bf16;
    k->mm[LLMH_DTYPE_Q8_0] = mm_q8_0;
    k->mm[LLMH_DTYPE_Q4_0] = mm_q4_0;
    k->mm[LLMH_DTYPE_Q4_1] = mm_q4_1;
    k->mm[LLMH_DTYPE_Q5_0] = mm_q5_0;
    k->mm[LLMH_DTYPE_Q5_1] = mm_q5_1;
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
    k->lora_sum_q8t = lora_sum_q8t;
    k->lora_a_q8_group = lora_a_q8_group;
    k->silu_row = silu_row_avx2;
    k->f16_to_f32 = f16_to_f32_avx2;
    k->dot = dot_avx2;
    k->axpy = axpy_avx2;
    k->lora_add = lora_add_avx2;
    k->exp_row = exp_row_avx2;
    k->quantize_q8 = quantize_q8_avx2;
    k->quantize_q8k = quantize_q8k_avx2;
}
#else
typedef int cpu_kernels_avx2_unused; /* non-x86: nothing to build */
#endif

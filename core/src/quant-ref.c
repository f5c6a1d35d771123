/* quant-ref.c — the scalar reference conversions between f32 and every
 * tensor element type (GGUF/ggml block layouts, byte for byte).
 *
 * This is the oracle: backends compare their kernels against it, and a
 * backend without its own dequantizer for a type may call it through the
 * host API. It favours clarity over speed. Blocks are read and written
 * byte-wise (no struct casts), so unaligned sources such as mapped files are
 * fine and the code does not depend on host endianness.
 *
 * Block layouts (little-endian; QK = 32 elements, QK_K = 256):
 *   Q4_0  d:f16, qs[16]                       x = d * (q - 8)
 *   Q4_1  d:f16, m:f16, qs[16]                x = d * q + m
 *   Q5_0  d:f16, qh:u32, qs[16]               x = d * (q - 16)   (q: 4 low bits from qs, bit 4 from qh)
 *   Q5_1  d:f16, m:f16, qh:u32, qs[16]        x = d * q + m
 *   Q8_0  d:f16, qs[32] (int8)                x = d * q
 *   Q8_1  d:f16, s:f16 (= d * sum q), qs[32]  x = d * q
 *   In the 32-element types byte j of qs holds element j in its low nibble
 *   and element j + 16 in its high nibble; qh bit j is bit 4 of element j.
 *   Q2_K  scales[16], qs[64], d:f16, dmin:f16
 *   Q3_K  hmask[32], qs[64], scales[12], d:f16
 *   Q4_K  d:f16, dmin:f16, scales[12], qs[128]
 *   Q5_K  d:f16, dmin:f16, scales[12], qh[32], qs[128]
 *   Q6_K  ql[128], qh[64], scales[16] (int8), d:f16
 *   Q8_K  d:f32, qs[256] (int8), bsums[16] (int16, sums of 16 q each)
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Little-endian field access                                                 */
/* ------------------------------------------------------------------------ */
static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float rd_f16(const uint8_t *p) { return llmh_fp16_to_fp32(rd_u16(p)); }

static float rd_f32(const uint8_t *p) { return llmh__bits_f32(rd_u32(p)); }

static void wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    p[2] = (uint8_t)((v >> 16) & 0xff);
    p[3] = (uint8_t)(v >> 24);
}

static void wr_f16(uint8_t *p, float f) { wr_u16(p, llmh_fp32_to_fp16(f)); }

/* ------------------------------------------------------------------------ */
/* Dequantize: one block of `bs` elements at a time                           */
/* ------------------------------------------------------------------------ */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0x0f) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0x0f) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    uint32_t qh = rd_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4;
        int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)(((qs[j] & 0x0f) | h0) - 16);
        y[j + 16] = d * (float)(((qs[j] >> 4) | h1) - 16);
    }
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh = rd_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4;
        int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        y[j] = d * (float)((qs[j] & 0x0f) | h0) + m;
        y[j + 16] = d * (float)((qs[j] >> 4) | h1) + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
}

static void dq_q8_1(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                uint8_t sc = scales[is++];
                float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

/* Q3_K's 16 six-bit scales: low 4 bits in bytes 0..7 (two per byte, scale j
 * in byte j % 8, high nibble for j >= 8), high 2 bits in bytes 8..11. */
static int q3_k_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
    int hi = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32, *sc = b + 96;
    float d = rd_f16(b + 108);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                float dl = d * (float)q3_k_scale(sc, is++);
                for (int l = 0; l < 16; l++) {
                    int k = l + 16 * half;
                    int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

/* Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and 6-bit min packed
 * into 12 bytes. */
static void k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0; j < 8; j += 2) {
        int sc, mn;
        k4_scale_min(j, scales, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(j + 1, scales, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        q += 32;
    }
}

static void dq_q5_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    unsigned u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2) {
        int sc, mn;
        k4_scale_min(j, scales, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k4_scale_min(j + 1, scales, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
        u1 <<= 2;
        u2 <<= 2;
    }
}

static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

static void dq_q8_k(const uint8_t *b, float *y) {
    float d = rd_f32(b);
    for (int j = 0; j < 256; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn dq_block_for(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_Q4_0: return dq_q4_0;
    case LLMH_DTYPE_Q4_1: return dq_q4_1;
    case LLMH_DTYPE_Q5_0: return dq_q5_0;
    case LLMH_DTYPE_Q5_1: return dq_q5_1;
    case LLMH_DTYPE_Q8_0: return dq_q8_0;
    case LLMH_DTYPE_Q8_1: return dq_q8_1;
    case LLMH_DTYPE_Q2_K: return dq_q2_k;
    case LLMH_DTYPE_Q3_K: return dq_q3_k;
    case LLMH_DTYPE_Q4_K: return dq_q4_k;
    case LLMH_DTYPE_Q5_K: return dq_q5_k;
    case LLMH_DTYPE_Q6_K: return dq_q6_k;
    case LLMH_DTYPE_Q8_K: return dq_q8_k;
    default: return NULL;
    }
}

static llmh_status check_args(const char *what, llmh_dtype type, const void *a, const void *b,
                              int64_t n, int64_t *bs_out) {
    int64_t bs = llmh_dtype_block_size(type);
    if (bs == 0)
        return llmh__fail(LLMH_ERR_UNSUPPORTED, "%s: unsupported tensor type id %d", what, (int)type);
    if (n < 0 || (n > 0 && (!a || !b)))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "%s(%s): bad arguments (n=%lld, src=%p, dst=%p)",
                          what, llmh_dtype_name(type), (long long)n, a, b);
    if (n % bs != 0)
        return llmh__fail(LLMH_ERR_INVALID_ARG,
                          "%s(%s): element count %lld is not a multiple of the block size %lld",
                          what, llmh_dtype_name(type), (long long)n, (long long)bs);
    *bs_out = bs;
    return LLMH_OK;
}

llmh_status llmh_dequantize(llmh_dtype type, const void *src, float *dst, int64_t n) {
    int64_t bs = 0;
    llmh_status st = check_args("dequantize", type, src, dst, n, &bs);
    if (st != LLMH_OK) return st;
    const uint8_t *s = (const uint8_t *)src;
    switch (type) {
    case LLMH_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return LLMH_OK;
    case LLMH_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = llmh_fp16_to_fp32(rd_u16(s + 2 * i));
        return LLMH_OK;
    case LLMH_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = llmh_bf16_to_fp32(rd_u16(s + 2 * i));
        return LLMH_OK;
    default: break;
    }
    dq_block_fn fn = dq_block_for(type);
    if (!fn)
        return llmh__fail(LLMH_ERR_UNSUPPORTED, "dequantize: no reference conversion for type %s",
                          llmh_dtype_name(type));
    size_t ts = llmh_dtype_type_size(type);
    for (int64_t i = 0; i < n / bs; i++) fn(s + (size_t)i * ts, dst + i * bs);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Quantize (round to nearest, as ggml's *_ref functions)                     */
/* ------------------------------------------------------------------------ */

/* The value of largest magnitude, keeping its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void q_q4_0(const float *x, uint8_t *b) {
    float max = signed_absmax(x, 32);
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)(x[j] * id + 8.5f), 0, 15);
        int q1 = clampi((int)(x[j + 16] * id + 8.5f), 0, 15);
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q_q4_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)((x[j] - mn) * id + 0.5f), 0, 15);
        int q1 = clampi((int)((x[j + 16] - mn) * id + 0.5f), 0, 15);
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q_q5_0(const float *x, uint8_t *b) {
    float max = signed_absmax(x, 32);
    float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)(x[j] * id + 16.5f), 0, 31);
        int q1 = clampi((int)(x[j + 16] * id + 16.5f), 0, 31);
        b[6 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    wr_u32(b + 2, qh);
}

static void q_q5_1(const float *x, uint8_t *b) {
    float mn, mx;
    minmax(x, 32, &mn, &mx);
    float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    wr_f16(b, d);
    wr_f16(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        int q0 = clampi((int)((x[j] - mn) * id + 0.5f), 0, 31);
        int q1 = clampi((int)((x[j + 16] - mn) * id + 0.5f), 0, 31);
        b[8 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    wr_u32(b + 4, qh);
}

/* Shared by Q8_0 and Q8_1: scale by absmax/127 and round to nearest. Returns
 * the sum of the quantized values. */
static int q8_block(const float *x, float *d_out, int8_t *qs) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int q = clampi((int)roundf(x[j] * id), -127, 127);
        qs[j] = (int8_t)q;
        sum += q;
    }
    *d_out = d;
    return sum;
}

static void q_q8_0(const float *x, uint8_t *b) {
    float d;
    q8_block(x, &d, (int8_t *)(b + 2));
    wr_f16(b, d);
}

static void q_q8_1(const float *x, uint8_t *b) {
    float d;
    int sum = q8_block(x, &d, (int8_t *)(b + 4));
    wr_f16(b, d);
    wr_f16(b + 2, d * (float)sum);
}

static void q_q8_k(const float *x, uint8_t *b) {
    float max = signed_absmax(x, 256);
    int8_t *qs = (int8_t *)(b + 4);
    if (max == 0.0f) {
        memset(b, 0, 292);
        return;
    }
    float iscale = -127.0f / max;
    for (int j = 0; j < 256; j++) qs[j] = (int8_t)clampi((int)lrintf(iscale * x[j]), -128, 127);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += qs[16 * g + l];
        wr_u16(b + 260 + 2 * g, (uint16_t)(int16_t)s);
    }
    wr_u32(b, llmh__f32_bits(1.0f / iscale));
}

typedef void (*q_block_fn)(const float *x, uint8_t *b);

static q_block_fn q_block_for(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_Q4_0: return q_q4_0;
    case LLMH_DTYPE_Q4_1: return q_q4_1;
    case LLMH_DTYPE_Q5_0: return q_q5_0;
    case LLMH_DTYPE_Q5_1: return q_q5_1;
    case LLMH_DTYPE_Q8_0: return q_q8_0;
    case LLMH_DTYPE_Q8_1: return q_q8_1;
    case LLMH_DTYPE_Q8_K: return q_q8_k;
    default: return NULL;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* q_q8_0 for n / 32 blocks with AVX2, bit for bit: the same amax, d and
 * id (scalar), x * id in f32, and roundf's half-away-from-zero rounding
 * (truncate, then step away from zero when the dropped part is >= 0.5,
 * which is exact). A block with a non-finite value goes to q_q8_0 (fmaxf
 * skips NaN where a vector max would not). The adapter store quantizes
 * millions of values per adapter at load; the scalar loop cost ~80 ms for
 * a rank-16 adapter of a 0.5B model. */
__attribute__((target("avx2,fma"))) static void q8_0_rows_avx2(const float *x, uint8_t *b, int64_t n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), half = _mm256_set1_ps(0.5f);
    const __m256 lim = _mm256_set1_ps(127.0f), inf = _mm256_set1_ps(INFINITY);
    for (int64_t i = 0; i < n / 32; i++, x += 32, b += 34) {
        __m256 v[4], a = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            __m256 av = _mm256_and_ps(v[k], absmask);
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(av, inf, _CMP_NLT_UQ)); /* inf or NaN */
            a = _mm256_max_ps(a, av);
        }
        if (_mm256_movemask_ps(bad)) {
            q_q8_0(x, b);
            continue;
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q32[4];
        for (int k = 0; k < 4; k++) {
            __m256 p = _mm256_mul_ps(v[k], vid);
            __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            __m256 away = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(p, t), absmask), half, _CMP_GE_OQ);
            __m256 step = _mm256_or_ps(_mm256_and_ps(p, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000))),
                                       _mm256_set1_ps(1.0f));
            __m256 r = _mm256_add_ps(t, _mm256_and_ps(away, step));
            r = _mm256_min_ps(_mm256_max_ps(r, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
            q32[k] = _mm256_cvttps_epi32(r);
        }
        /* 32 int32 -> 32 int8 in order (packs interleave 128-bit lanes) */
        __m256i p16a = _mm256_packs_epi32(q32[0], q32[1]), p16b = _mm256_packs_epi32(q32[2], q32[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(b + 2), p8);
        wr_f16(b, d);
    }
}
#endif

llmh_status llmh_quantize(llmh_dtype type, const float *src, void *dst, int64_t n) {
    int64_t bs = 0;
    llmh_status st = check_args("quantize", type, src, dst, n, &bs);
    if (st != LLMH_OK) return st;
    uint8_t *d = (uint8_t *)dst;
    switch (type) {
    case LLMH_DTYPE_F32:
        memmove(dst, src, (size_t)n * sizeof(float));
        return LLMH_OK;
    case LLMH_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) wr_u16(d + 2 * i, llmh_fp32_to_fp16(src[i]));
        return LLMH_OK;
    case LLMH_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) wr_u16(d + 2 * i, llmh_fp32_to_bf16(src[i]));
        return LLMH_OK;
    default: break;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (type == LLMH_DTYPE_Q8_0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        q8_0_rows_avx2(src, d, n);
        return LLMH_OK;
    }
#endif
    q_block_fn fn = q_block_for(type);
    if (!fn)
        return llmh__fail(LLMH_ERR_UNSUPPORTED,
                          "quantize: no reference quantizer for type %s (supported: f32, f16, "
                          "bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q8_k)",
                          llmh_dtype_name(type));
    size_t ts = llmh_dtype_type_size(type);
    for (int64_t i = 0; i < n / bs; i++) fn(src + i * bs, d + (size_t)i * ts);
    return LLMH_OK;
}

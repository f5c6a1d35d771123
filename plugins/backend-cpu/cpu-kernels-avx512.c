/* cpu-kernels-avx512.c — AVX-512 (F, BW, VL) + VNNI kernels for the most
 * used 32-element block types. Built with the matching -m flags (this file
 * only) and installed over the AVX2 table after CPUID confirms the features;
 * types without an AVX-512 kernel keep their AVX2 one.
 *
 * Two weight blocks fill one 512-bit register; VNNI's dpbusd does the u8 x s8
 * multiply-accumulate in one instruction, and a per-lane scale vector
 * (block 0 in lanes 0..7, block 1 in lanes 8..15) keeps one float
 * accumulator per column until the end of the row.
 */
#include "cpu-internal.h"

#if CPU_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

AI float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AI __m512 scale2(float s0, float s1) {
    return _mm512_mask_blend_ps((__mmask16)0xff00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
}

AI __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

AI __m256i nibbles32(const uint8_t *q) {
    __m128i t = _mm_loadu_si128((const __m128i *)q);
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

AI void mm_q8_0_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as,
                  const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 32;
    const float *da[4];
    for (int c = 0; c < nc; c++) da[c] = cpu_act_q8_d(a + (size_t)c * as, k);
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m512 acc[4];
        for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const uint8_t *b0 = wr + b * 34, *b1 = b0 + 34;
            __m512i q = join256(_mm256_loadu_si256((const __m256i *)(b0 + 2)),
                                _mm256_loadu_si256((const __m256i *)(b1 + 2)));
            __m512i u = _mm512_abs_epi8(q);
            __mmask64 neg = _mm512_movepi8_mask(q);
            float d0 = f16(b0), d1 = f16(b1);
            for (int c = 0; c < nc; c++) {
                __m512i y = _mm512_loadu_si512((const void *)(a + (size_t)c * as + b * 32));
                y = _mm512_mask_sub_epi8(y, neg, zero, y);
                __m512i s = _mm512_dpbusd_epi32(zero, u, y);
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale2(d0 * da[c][b], d1 * da[c][b + 1]), acc[c]);
            }
        }
        float tail[4] = {0, 0, 0, 0};
        for (; b < nb; b++) {
            const uint8_t *b0 = wr + b * 34;
            const int8_t *qw = (const int8_t *)(b0 + 2);
            float d0 = f16(b0);
            for (int c = 0; c < nc; c++) {
                const int8_t *y = (const int8_t *)(a + (size_t)c * as + b * 32);
                int s = 0;
                for (int j = 0; j < 32; j++) s += qw[j] * y[j];
                tail[c] += d0 * da[c][b] * (float)s;
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = _mm512_reduce_add_ps(acc[c]) + tail[c];
    }
}

/* Q4_0 (five = 0) and Q5_0 (five = 1): unsigned q, offset -8 / -16 applied
 * through the activation sums. */
AI __m256i q5_high(const uint8_t *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    return _mm256_maskz_mov_epi8((__mmask32)x, _mm256_set1_epi8(0x10));
}

AI void mm_qx0_n(const int five, int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,
                 size_t as, const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 32;
    const size_t bsz = five ? 22 : 18;
    const float offset = five ? -16.0f : -8.0f;
    const float *da[4];
    const int32_t *sa[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8_d(a + (size_t)c * as, k);
        sa[c] = cpu_act_q8_sum(a + (size_t)c * as, k);
    }
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m512 acc[4];
        float corr[4];
        for (int c = 0; c < nc; c++) {
            acc[c] = _mm512_setzero_ps();
            corr[c] = 0.0f;
        }
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            const uint8_t *b0 = wr + (size_t)b * bsz, *b1 = b0 + bsz;
            __m256i q0, q1;
            if (five) {
                q0 = _mm256_or_si256(nibbles32(b0 + 6), q5_high(b0 + 2));
                q1 = _mm256_or_si256(nibbles32(b1 + 6), q5_high(b1 + 2));
            } else {
                q0 = nibbles32(b0 + 2);
                q1 = nibbles32(b1 + 2);
            }
            __m512i q = join256(q0, q1);
            float d0 = f16(b0), d1 = f16(b1);
            for (int c = 0; c < nc; c++) {
                __m512i y = _mm512_loadu_si512((const void *)(a + (size_t)c * as + b * 32));
                __m512i s = _mm512_dpbusd_epi32(zero, q, y);
                float s0 = d0 * da[c][b], s1 = d1 * da[c][b + 1];
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale2(s0, s1), acc[c]);
                corr[c] += offset * (s0 * (float)sa[c][b] + s1 * (float)sa[c][b + 1]);
            }
        }
        for (; b < nb; b++) {
            const uint8_t *b0 = wr + (size_t)b * bsz;
            const uint8_t *qs = b0 + (five ? 6 : 2);
            uint32_t qh = 0;
            if (five) memcpy(&qh, b0 + 2, 4);
            float d0 = f16(b0);
            for (int c = 0; c < nc; c++) {
                const int8_t *y = (const int8_t *)(a + (size_t)c * as + b * 32);
                int s = 0;
                for (int j = 0; j < 16; j++) {
                    int lo = (qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
                    int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
                    s += lo * y[j] + hi * y[j + 16];
                }
                corr[c] += d0 * da[c][b] * ((float)s + offset * (float)sa[c][b]);
            }
        }
        for (int c = 0; c < nc; c++) dst[(size_t)c * ds + (size_t)r] = _mm512_reduce_add_ps(acc[c]) + corr[c];
    }
}

/* ------------------------------------------------------------------------ */
/* Packed 16-row panels (cpu-repack.c): one dpbusd multiplies 4 K-elements of */
/* 16 rows by a broadcast group of 4 activation bytes, so each weight load    */
/* serves up to 8 columns and per-block scaling is one vector op per column.  */
/* ------------------------------------------------------------------------ */
AI __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* kind 0: Q8_0 (weights stored as w + 128); 1: Q4_0 (nibbles); 2: Q5_0
 * (nibbles + per-group high-bit bytes, see cpu-repack.c). */
AI void mmp_n(const int kind, int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as,
              const int nc, float *dst, size_t ds) {
    const int64_t nb = k / 32;
    const int four = kind != 0;
    const size_t bb = kind == 0 ? 544 : kind == 1 ? 288 : 352;
    const size_t qoff = kind == 2 ? 96 : 32; /* where the quant groups start */
    const int32_t off = kind == 0 ? 128 : kind == 1 ? 8 : 16;
    /* Q5_0 high bits: broadcast each lane's byte to its 4 bytes, test one bit each */
    const __m512i bidx = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
    const __m512i sel_lo = _mm512_set1_epi32(0x08040201), sel_hi = _mm512_set1_epi32((int)0x80402010u);
    const __m512i h16 = _mm512_set1_epi8(0x10);
    const float *da[CPU_PACKED_MAX_COLS];
    const int32_t *sa[CPU_PACKED_MAX_COLS];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8_d(a + (size_t)c * as, k);
        sa[c] = cpu_act_q8_sum(a + (size_t)c * as, k);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t pi = 0; pi < np; pi++) {
        const uint8_t *pb = p + (size_t)pi * (size_t)nb * bb;
        __m512 acc[CPU_PACKED_MAX_COLS];
        for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = pb + (size_t)b * bb;
            __m512i s0[CPU_PACKED_MAX_COLS], s1[CPU_PACKED_MAX_COLS]; /* two chains */
            for (int c = 0; c < nc; c++) s0[c] = s1[c] = _mm512_setzero_si512();
            if (four) {
                for (int g = 0; g < 4; g++) {
                    __m512i x = _mm512_loadu_si512((const void *)(blk + qoff + 64 * g));
                    __m512i lo = _mm512_and_si512(x, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
                    if (kind == 2) {
                        __m512i hb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * g)));
                        hb = _mm512_shuffle_epi8(hb, bidx);
                        lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hb, sel_lo), lo, h16);
                        hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(hb, sel_hi), hi, h16);
                    }
                    for (int c = 0; c < nc; c++) {
                        const uint8_t *ac = a + (size_t)c * as + (size_t)b * 32;
                        s0[c] = _mm512_dpbusd_epi32(s0[c], lo, bcast4(ac + 4 * g));
                        s1[c] = _mm512_dpbusd_epi32(s1[c], hi, bcast4(ac + 16 + 4 * g));
                    }
                }
            } else {
                for (int g = 0; g < 8; g += 2) {
                    __m512i x0 = _mm512_loadu_si512((const void *)(blk + 32 + 64 * g));
                    __m512i x1 = _mm512_loadu_si512((const void *)(blk + 96 + 64 * g));
                    for (int c = 0; c < nc; c++) {
                        const uint8_t *ac = a + (size_t)c * as + (size_t)b * 32;
                        s0[c] = _mm512_dpbusd_epi32(s0[c], x0, bcast4(ac + 4 * g));
                        s1[c] = _mm512_dpbusd_epi32(s1[c], x1, bcast4(ac + 4 * g + 4));
                    }
                }
            }
            __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            for (int c = 0; c < nc; c++) {
                __m512i is = _mm512_sub_epi32(_mm512_add_epi32(s0[c], s1[c]), _mm512_set1_epi32(off * sa[c][b]));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw, _mm512_set1_ps(da[c][b])), acc[c]);
            }
        }
        for (int c = 0; c < nc; c++) _mm512_storeu_ps(dst + (size_t)c * ds + (size_t)pi * CPU_PANEL, acc[c]);
    }
}

static void mmp_q8_0(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, int nc, float *dst,
                     size_t ds) {
    switch (nc) {
    case 1: mmp_n(0, k, p, np, a, as, 1, dst, ds); break;
    case 2: mmp_n(0, k, p, np, a, as, 2, dst, ds); break;
    case 3: mmp_n(0, k, p, np, a, as, 3, dst, ds); break;
    case 4: mmp_n(0, k, p, np, a, as, 4, dst, ds); break;
    case 5: mmp_n(0, k, p, np, a, as, 5, dst, ds); break;
    case 6: mmp_n(0, k, p, np, a, as, 6, dst, ds); break;
    case 7: mmp_n(0, k, p, np, a, as, 7, dst, ds); break;
    default: mmp_n(0, k, p, np, a, as, 8, dst, ds); break;
    }
}

static void mmp_q5_0(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, int nc, float *dst,
                     size_t ds) {
    switch (nc) {
    case 1: mmp_n(2, k, p, np, a, as, 1, dst, ds); break;
    case 2: mmp_n(2, k, p, np, a, as, 2, dst, ds); break;
    case 3: mmp_n(2, k, p, np, a, as, 3, dst, ds); break;
    case 4: mmp_n(2, k, p, np, a, as, 4, dst, ds); break;
    case 5: mmp_n(2, k, p, np, a, as, 5, dst, ds); break;
    case 6: mmp_n(2, k, p, np, a, as, 6, dst, ds); break;
    case 7: mmp_n(2, k, p, np, a, as, 7, dst, ds); break;
    default: mmp_n(2, k, p, np, a, as, 8, dst, ds); break;
    }
}

static void mmp_q4_0(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, int nc, float *dst,
                     size_t ds) {
    switch (nc) {
    case 1: mmp_n(1, k, p, np, a, as, 1, dst, ds); break;
    case 2: mmp_n(1, k, p, np, a, as, 2, dst, ds); break;
    case 3: mmp_n(1, k, p, np, a, as, 3, dst, ds); break;
    case 4: mmp_n(1, k, p, np, a, as, 4, dst, ds); break;
    case 5: mmp_n(1, k, p, np, a, as, 5, dst, ds); break;
    case 6: mmp_n(1, k, p, np, a, as, 6, dst, ds); break;
    case 7: mmp_n(1, k, p, np, a, as, 7, dst, ds); break;
    default: mmp_n(1, k, p, np, a, as, 8, dst, ds); break;
    }
}

/* Q4_K panels (layout in cpu-internal.h), up to 4 columns per pass: per
 * sub-block, 8 dpbusd give 16 rows' integer dots; they are scaled by the
 * rows' 6-bit sub-block scales in int32, and the mins are applied through
 * the activation's 16-element sums. */
AI void mmpk_q4k_n(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, const int nc,
                   float *dst, size_t ds) {
    const int64_t nb = k / 256;
    const size_t bb = 2368;
    const float *da[4];
    const int16_t *bs[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8k_d(a + (size_t)c * as, k);
        bs[c] = cpu_act_q8k_bsums(a + (size_t)c * as, k);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t pi = 0; pi < np; pi++) {
        const uint8_t *pb = p + (size_t)pi * (size_t)nb * bb;
        __m512 acc[4];
        for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *blk = pb + (size_t)i * bb;
            __m512i isum[4];
            for (int c = 0; c < nc; c++) isum[c] = _mm512_setzero_si512();
            for (int pp = 0; pp < 4; pp++) {
                __m512i sA[4], sB[4];
                for (int c = 0; c < nc; c++) sA[c] = sB[c] = _mm512_setzero_si512();
                for (int g = 0; g < 8; g++) {
                    __m512i x = _mm512_loadu_si512((const void *)(blk + 320 + pp * 512 + g * 64));
                    __m512i lo = _mm512_and_si512(x, m4);
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
                    for (int c = 0; c < nc; c++) {
                        const uint8_t *ac = a + (size_t)c * as + (size_t)i * 256 + 64 * pp;
                        sA[c] = _mm512_dpbusd_epi32(sA[c], lo, bcast4(ac + 4 * g));
                        sB[c] = _mm512_dpbusd_epi32(sB[c], hi, bcast4(ac + 32 + 4 * g));
                    }
                }
                __m512i scA = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 + 32 * pp)));
                __m512i scB = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 80 + 32 * pp)));
                for (int c = 0; c < nc; c++)
                    isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(sA[c], scA),
                                                                         _mm512_mullo_epi32(sB[c], scB)));
            }
            __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            __m512 dmv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
            for (int c = 0; c < nc; c++) {
                const int16_t *b16 = bs[c] + i * 16;
                __m512i ms = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++) {
                    __m512i mn = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192 + 16 * j)));
                    ms = _mm512_add_epi32(ms, _mm512_mullo_epi32(mn, _mm512_set1_epi32(b16[2 * j] + b16[2 * j + 1])));
                }
                __m512 vda = _mm512_set1_ps(da[c][i]);
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dv, vda), acc[c]);
                acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dmv, vda), acc[c]);
            }
        }
        for (int c = 0; c < nc; c++) _mm512_storeu_ps(dst + (size_t)c * ds + (size_t)pi * CPU_PANEL, acc[c]);
    }
}

/* Q6_K panels, up to 4 columns per pass. q is rebuilt as 0..63 from the ql
 * nibble and 2 qh bits; each 16-element scale group accumulates 4 dpbusd,
 * is scaled by the rows' int8 scales in int32, and the -32 offset is applied
 * as 32 * sum_g sc_g * bsum_g. */
AI void mmpk_q6k_n(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, const int nc,
                   float *dst, size_t ds) {
    const int64_t nb = k / 256;
    const size_t bb = 3360;
    const float *da[4];
    const int16_t *bs[4];
    for (int c = 0; c < nc; c++) {
        da[c] = cpu_act_q8k_d(a + (size_t)c * as, k);
        bs[c] = cpu_act_q8k_bsums(a + (size_t)c * as, k);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(3);
    for (int64_t pi = 0; pi < np; pi++) {
        const uint8_t *pb = p + (size_t)pi * (size_t)nb * bb;
        __m512 acc[4];
        for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *blk = pb + (size_t)i * bb;
            __m512i isum[4];
            for (int c = 0; c < nc; c++) isum[c] = _mm512_setzero_si512();
            for (int h = 0; h < 2; h++)
                for (int half = 0; half < 2; half++) { /* groups 0..3 / 4..7: scale group l/16 */
                    __m512i s[4][4];                   /* [quarter][column] */
                    for (int qq = 0; qq < 4; qq++)
                        for (int c = 0; c < nc; c++) s[qq][c] = _mm512_setzero_si512();
                    for (int g = 4 * half; g < 4 * half + 4; g++) {
                        const uint8_t *gp = blk + 288 + (size_t)(h * 8 + g) * 192;
                        __m512i A = _mm512_loadu_si512((const void *)gp);
                        __m512i B = _mm512_loadu_si512((const void *)(gp + 64));
                        __m512i H = _mm512_loadu_si512((const void *)(gp + 128));
                        __m512i q[4];
                        q[0] = _mm512_or_si512(_mm512_and_si512(A, m4), _mm512_slli_epi16(_mm512_and_si512(H, m3), 4));
                        q[1] = _mm512_or_si512(_mm512_and_si512(B, m4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 2), m3), 4));
                        q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(A, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 4), m3), 4));
                        q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(B, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 6), m3), 4));
                        for (int c = 0; c < nc; c++) {
                            const uint8_t *ac = a + (size_t)c * as + (size_t)i * 256 + 128 * h + 4 * g;
                            for (int qq = 0; qq < 4; qq++)
                                s[qq][c] = _mm512_dpbusd_epi32(s[qq][c], q[qq], bcast4(ac + 32 * qq));
                        }
                    }
                    for (int qq = 0; qq < 4; qq++) {
                        /* scale index within the super-block: 8h + 2qq + half */
                        int j = 8 * h + 2 * qq + half;
                        __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * j)));
                        for (int c = 0; c < nc; c++) isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(s[qq][c], sc));
                    }
                }
            __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            for (int c = 0; c < nc; c++) {
                const int16_t *b16 = bs[c] + i * 16;
                __m512i cs = _mm512_setzero_si512();
                for (int j = 0; j < 16; j++) {
                    __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * j)));
                    cs = _mm512_add_epi32(cs, _mm512_mullo_epi32(sc, _mm512_set1_epi32(b16[j])));
                }
                __m512i tot = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(cs, 5));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_mul_ps(dv, _mm512_set1_ps(da[c][i])), acc[c]);
            }
        }
        for (int c = 0; c < nc; c++) _mm512_storeu_ps(dst + (size_t)c * ds + (size_t)pi * CPU_PANEL, acc[c]);
    }
}

static void mmp_q6_k(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, int nc, float *dst,
                     size_t ds) {
    while (nc > 0) {
        int n = nc > 4 ? 4 : nc;
        switch (n) {
        case 1: mmpk_q6k_n(k, p, np, a, as, 1, dst, ds); break;
        case 2: mmpk_q6k_n(k, p, np, a, as, 2, dst, ds); break;
        case 3: mmpk_q6k_n(k, p, np, a, as, 3, dst, ds); break;
        default: mmpk_q6k_n(k, p, np, a, as, 4, dst, ds); break;
        }
        a += (size_t)n * as;
        dst += (size_t)n * ds;
        nc -= n;
    }
}

static void mmp_q4_k(int64_t k, const uint8_t *p, int64_t np, const uint8_t *a, size_t as, int nc, float *dst,
                     size_t ds) {
    while (nc > 0) {
        int n = nc > 4 ? 4 : nc;
        switch (n) {
        case 1: mmpk_q4k_n(k, p, np, a, as, 1, dst, ds); break;
        case 2: mmpk_q4k_n(k, p, np, a, as, 2, dst, ds); break;
        case 3: mmpk_q4k_n(k, p, np, a, as, 3, dst, ds); break;
        default: mmpk_q4k_n(k, p, np, a, as, 4, dst, ds); break;
        }
        a += (size_t)n * as;
        dst += (size_t)n * ds;
        nc -= n;
    }
}

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

#define C_Q8_0(n) mm_q8_0_n(k, w, ws, nr, a, as, n, dst, ds)
#define C_Q4_0(n) mm_qx0_n(0, k, w, ws, nr, a, as, n, dst, ds)
#define C_Q5_0(n) mm_qx0_n(1, k, w, ws, nr, a, as, n, dst, ds)

DISPATCH_NC(mm_q8_0, C_Q8_0)
DISPATCH_NC(mm_q4_0, C_Q4_0)
DISPATCH_NC(mm_q5_0, C_Q5_0)

/* ------------------------------------------------------------------------ */
/* LORA: float adapters (F32/F16/BF16) against f32 activations, 16 lanes,     */
/* the last partial vector through masked loads (masked-off lanes are 0)      */
/* ------------------------------------------------------------------------ */
#define LD16_F32(p, i, m) _mm512_maskz_loadu_ps((m), (const float *)(p) + (i))
#define LD16_F16(p, i, m) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((m), (const void *)((p) + 2 * (i))))
#define LD16_BF16(p, i, m) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16((m), (const void *)((p) + 2 * (i)))), 16))

AI __mmask16 tail_mask(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u); }

/* The eight horizontal sums of a[0..7] as the lanes of one 256-bit vector. */
AI __m256 hsum8x8_512(const __m512 *a) {
    __m256 h[8];
    for (int q = 0; q < 8; q++)
        h[q] = _mm256_add_ps(_mm512_castps512_ps256(a[q]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[q]), 1)));
    __m256 t0 = _mm256_hadd_ps(h[0], h[1]), t1 = _mm256_hadd_ps(h[2], h[3]);
    __m256 t2 = _mm256_hadd_ps(h[4], h[5]), t3 = _mm256_hadd_ps(h[6], h[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Software prefetch distances (bytes ahead in the stream) for the LoRA
 * kernels. An adapter's A and transposed B are read once per token as
 * sequential runs of 4-160 KB with little arithmetic per byte; on the
 * 2-core EPYC development VM a single core streamed B at 30 GB/s without
 * prefetch and 36-37 GB/s with it 1 KB ahead, A rows of 4864 at 28 GB/s
 * and 32 GB/s 2 KB ahead (prefetches past the end of a run are harmless). */
#define LORA_PF_A 2048
#define LORA_PF_B 1024

/* A side (cpu_mm_fn contract, plain f32 columns): two accumulators per column. */
#define LORA_A_KERNEL(NAME, LD16, TS)                                                                 \
    AI void NAME##_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a,        \
                     size_t as, const int nc, float *dst, size_t ds) {                            \
        for (int64_t r = 0; r < nr; r++) {                                                        \
            const uint8_t *wr = w + (size_t)r * ws;                                                \
            __m512 acc0[4], acc1[4];                                                               \
            for (int c = 0; c < nc; c++) acc0[c] = acc1[c] = _mm512_setzero_ps();                  \
            int64_t i = 0;                                                                         \
            for (; i + 32 <= k; i += 32) {                                                         \
                for (int l = 0; l < 32 * (TS); l += 64)                                            \
                    _mm_prefetch((const char *)wr + (size_t)i * (TS) + LORA_PF_A + l, _MM_HINT_T0); \
                __m512 w0 = LD16(wr, i, 0xffff), w1 = LD16(wr, i + 16, 0xffff);                    \
                for (int c = 0; c < nc; c++) {                                                     \
                    const float *ac = (const float *)(a + (size_t)c * as);                        \
                    acc0[c] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(ac + i), acc0[c]);               \
                    acc1[c] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(ac + i + 16), acc1[c]);          \
                }                                                                                  \
            }                                                                                      \
            for (; i < k; i += 16) {                                                               \
                __mmask16 m = tail_mask(k - i);                                                    \
                __m512 w0 = LD16(wr, i, m);                                                        \
                for (int c = 0; c < nc; c++) {                                                     \
                    const float *ac = (const float *)(a + (size_t)c * as);                        \
                    acc0[c] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, ac + i), acc0[c]);      \
                }                                                                                  \
            }                                                                                      \
            for (int c = 0; c < nc; c++)                                                           \
                dst[(size_t)c * ds + (size_t)r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[c], acc1[c])); \
        }                                                                                          \
    }                                                                                              \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as, \
                     int nc, float *dst, size_t ds) {                                              \
        switch (nc) {                                                                              \
        case 1: NAME##_n(k, w, ws, nr, a, as, 1, dst, ds); break;                                  \
        case 2: NAME##_n(k, w, ws, nr, a, as, 2, dst, ds); break;                                  \
        case 3: NAME##_n(k, w, ws, nr, a, as, 3, dst, ds); break;                                  \
        default: NAME##_n(k, w, ws, nr, a, as, 4, dst, ds); break;                                 \
        }                                                                                          \
    }

/* B side: dst[r] += s * dot(row r, x), 8 rows at a time. */
#define LORA_ACC_KERNEL(NAME, LD16)                                                               \
    static void NAME(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const float *x, float s, \
                     float *dst) {                                                                \
        int64_t r = 0;                                                                             \
        const __m256 vs = _mm256_set1_ps(s);                                                      \
        for (; r + 8 <= nr; r += 8) {                                                              \
            __m512 acc[8];                                                                         \
            for (int q = 0; q < 8; q++) acc[q] = _mm512_setzero_ps();                              \
            for (int64_t i = 0; i < k; i += 16) {                                                  \
                __mmask16 m = tail_mask(k - i);                                                    \
                __m512 xv = _mm512_maskz_loadu_ps(m, x + i);                                       \
                for (int q = 0; q < 8; q++)                                                        \
                    acc[q] = _mm512_fmadd_ps(LD16(w + (size_t)(r + q) * ws, i, m), xv, acc[q]);    \
            }                                                                                      \
            __m256 sum = hsum8x8_512(acc);                                                         \
            _mm256_storeu_ps(dst + r, _mm256_fmadd_ps(vs, sum, _mm256_loadu_ps(dst + r))); \
        }                                                                                          \
        for (; r < nr; r++) {                                                                      \
            const uint8_t *wr = w + (size_t)r * ws;                                                \
            __m512 acc = _mm512_setzero_ps();                                                      \
            for (int64_t i = 0; i < k; i += 16) {                                                  \
                __mmask16 m = tail_mask(k - i);                                                    \
                acc = _mm512_fmadd_ps(LD16(wr, i, m), _mm512_maskz_loadu_ps(m, x + i), acc);       \
            }                                                                                      \
            dst[r] = fmaf(s, _mm512_reduce_add_ps(acc), dst[r]);                                   \
        }                                                                                          \
    }

/* Transposed B (blocks of CPU_LORA_BT = 64 rows): each block segment is up
 * to 4 vectors of 16 rows (masked at the segment's ends), all accumulated
 * in one pass over j, so the FMA chains of the vectors overlap. */
#define LORA_ACC_T_KERNEL(NAME, LD16, TS)                                                         \
    static void NAME(int64_t k, const uint8_t *bt, int64_t r0, int64_t nr, const float *x, float s, \
                     float *dst) {                                                                \
        const __m512 vs = _mm512_set1_ps(s);                                                      \
        int64_t i = r0, end = r0 + nr;                                                             \
        while (i < end) {                                                                          \
            int64_t blk = i / CPU_LORA_BT, in = i % CPU_LORA_BT;                                   \
            int64_t seg = CPU_LORA_BT - in < end - i ? CPU_LORA_BT - in : end - i;                 \
            const uint8_t *b0 = bt + (size_t)(blk * k * CPU_LORA_BT + in) * (TS);                  \
            float *d = dst + (i - r0);                                                             \
            if (seg == CPU_LORA_BT) { /* a whole block: plain loads */                             \
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                        \
                for (int64_t j = 0; j < k; j++) {                                                  \
                    const uint8_t *row = b0 + (size_t)(j * CPU_LORA_BT) * (TS);                    \
                    for (int l = 0; l < (TS) * CPU_LORA_BT; l += 64)                               \
                        _mm_prefetch((const char *)row + LORA_PF_B + l, _MM_HINT_T0);              \
                    __m512 xj = _mm512_set1_ps(x[j]);                                              \
                    a0 = _mm512_fmadd_ps(LD16(row, 0, 0xffff), xj, a0);                            \
                    a1 = _mm512_fmadd_ps(LD16(row, 16, 0xffff), xj, a1);                           \
                    a2 = _mm512_fmadd_ps(LD16(row, 32, 0xffff), xj, a2);                           \
                    a3 = _mm512_fmadd_ps(LD16(row, 48, 0xffff), xj, a3);                           \
                }                                                                                  \
                _mm512_storeu_ps(d, _mm512_fmadd_ps(vs, a0, _mm512_loadu_ps(d)));     \
                _mm512_storeu_ps(d + 16, _mm512_fmadd_ps(vs, a1, _mm512_loadu_ps(d + 16))); \
                _mm512_storeu_ps(d + 32, _mm512_fmadd_ps(vs, a2, _mm512_loadu_ps(d + 32))); \
                _mm512_storeu_ps(d + 48, _mm512_fmadd_ps(vs, a3, _mm512_loadu_ps(d + 48))); \
                i += seg;                                                                          \
                continue;                                                                          \
            }                                                                                      \
            __mmask16 m0 = tail_mask(seg), m1 = seg > 16 ? tail_mask(seg - 16) : 0;                \
            __mmask16 m2 = seg > 32 ? tail_mask(seg - 32) : 0, m3 = seg > 48 ? tail_mask(seg - 48) : 0; \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                            \
            for (int64_t j = 0; j < k; j++) {                                                      \
                const uint8_t *row = b0 + (size_t)(j * CPU_LORA_BT) * (TS);                        \
                __m512 xj = _mm512_set1_ps(x[j]);                                                  \
                a0 = _mm512_fmadd_ps(LD16(row, 0, m0), xj, a0);                                    \
                a1 = _mm512_fmadd_ps(LD16(row, 16, m1), xj, a1);                                   \
                a2 = _mm512_fmadd_ps(LD16(row, 32, m2), xj, a2);                                   \
                a3 = _mm512_fmadd_ps(LD16(row, 48, m3), xj, a3);                                   \
            }                                                                                      \
            _mm512_mask_storeu_ps(d, m0, _mm512_fmadd_ps(vs, a0, _mm512_maskz_loadu_ps(m0, d))); \
            _mm512_mask_storeu_ps(d + 16, m1, _mm512_fmadd_ps(vs, a1, _mm512_maskz_loadu_ps(m1, d + 16))); \
            _mm512_mask_storeu_ps(d + 32, m2, _mm512_fmadd_ps(vs, a2, _mm512_maskz_loadu_ps(m2, d + 32))); \
            _mm512_mask_storeu_ps(d + 48, m3, _mm512_fmadd_ps(vs, a3, _mm512_maskz_loadu_ps(m3, d + 48))); \
            i += seg;                                                                              \
        }                                                                                          \
    }

/* The same for up to 4 token columns at once (prefill): each B vector is
 * loaded once and multiplied into every column's accumulators. Per column
 * the arithmetic is exactly the one-column kernel's. */
#define LORA_ACC_T4_KERNEL(NAME, LD16, TS)                                                        \
    AI void NAME##_seg(int64_t k, const uint8_t *b0, const int nc, const float *const *x,          \
                       const float *s, float *const *d, __mmask16 m0, __mmask16 m1, __mmask16 m2,  \
                       __mmask16 m3) {                                                             \
        __m512 acc[4][4];                                                                          \
        for (int c = 0; c < nc; c++)                                                               \
            for (int v = 0; v < 4; v++) acc[c][v] = _mm512_setzero_ps();                           \
        for (int64_t j = 0; j < k; j++) {                                                          \
            const uint8_t *row = b0 + (size_t)(j * CPU_LORA_BT) * (TS);                            \
            __m512 w0 = LD16(row, 0, m0), w1 = LD16(row, 16, m1);                                  \
            __m512 w2 = LD16(row, 32, m2), w3 = LD16(row, 48, m3);                                 \
            for (int c = 0; c < nc; c++) {                                                         \
                __m512 xj = _mm512_set1_ps(x[c][j]);                                               \
                acc[c][0] = _mm512_fmadd_ps(w0, xj, acc[c][0]);                                    \
                acc[c][1] = _mm512_fmadd_ps(w1, xj, acc[c][1]);                                    \
                acc[c][2] = _mm512_fmadd_ps(w2, xj, acc[c][2]);                                    \
                acc[c][3] = _mm512_fmadd_ps(w3, xj, acc[c][3]);                                    \
            }                                                                                      \
        }                                                                                          \
        for (int c = 0; c < nc; c++) {                                                             \
            __m512 vs = _mm512_set1_ps(s[c]);                                                      \
            float *dc = d[c];                                                                      \
            _mm512_mask_storeu_ps(dc, m0, _mm512_fmadd_ps(vs, acc[c][0], _mm512_maskz_loadu_ps(m0, dc))); \
            _mm512_mask_storeu_ps(dc + 16, m1, _mm512_fmadd_ps(vs, acc[c][1], _mm512_maskz_loadu_ps(m1, dc + 16))); \
            _mm512_mask_storeu_ps(dc + 32, m2, _mm512_fmadd_ps(vs, acc[c][2], _mm512_maskz_loadu_ps(m2, dc + 32))); \
            _mm512_mask_storeu_ps(dc + 48, m3, _mm512_fmadd_ps(vs, acc[c][3], _mm512_maskz_loadu_ps(m3, dc + 48))); \
        }                                                                                          \
    }                                                                                              \
    AI void NAME##_g(int64_t k, const uint8_t *bt, int64_t r0, int64_t nr, const int nc,           \
                     const float *const *x, const float *s, float *const *dst) {                   \
        int64_t i = r0, end = r0 + nr;                                                             \
        while (i < end) {                                                                          \
            int64_t blk = i / CPU_LORA_BT, in = i % CPU_LORA_BT;                                   \
            int64_t seg = CPU_LORA_BT - in < end - i ? CPU_LORA_BT - in : end - i;                 \
            const uint8_t *b0 = bt + (size_t)(blk * k * CPU_LORA_BT + in) * (TS);                  \
            float *d[4];                                                                           \
            for (int c = 0; c < nc; c++) d[c] = dst[c] + (i - r0);                                 \
            if (seg == CPU_LORA_BT) {                                                              \
                NAME##_seg(k, b0, nc, x, s, d, 0xffff, 0xffff, 0xffff, 0xffff);                    \
            } else {                                                                               \
                __mmask16 m1 = seg > 16 ? tail_mask(seg - 16) : 0;                                 \
                __mmask16 m2 = seg > 32 ? tail_mask(seg - 32) : 0, m3 = seg > 48 ? tail_mask(seg - 48) : 0; \
                NAME##_seg(k, b0, nc, x, s, d, tail_mask(seg), m1, m2, m3);                        \
            }                                                                                      \
            i += seg;                                                                              \
        }                                                                                          \
    }                                                                                              \
    static void NAME(int64_t k, const uint8_t *bt, int64_t r0, int64_t nr, int nc, const float *const *x, \
                     const float *s, float *const *dst) {                                          \
        switch (nc) {                                                                              \
        case 1: NAME##_g(k, bt, r0, nr, 1, x, s, dst); break;                                      \
        case 2: NAME##_g(k, bt, r0, nr, 2, x, s, dst); break;                                      \
        case 3: NAME##_g(k, bt, r0, nr, 3, x, s, dst); break;                                      \
        default: NAME##_g(k, bt, r0, nr, 4, x, s, dst); break;                                     \
        }                                                                                          \
    }

LORA_ACC_T4_KERNEL(lora_acc_t4_f32, LD16_F32, 4)
LORA_ACC_T4_KERNEL(lora_acc_t4_f16, LD16_F16, 2)
LORA_ACC_T4_KERNEL(lora_acc_t4_bf16, LD16_BF16, 2)

LORA_ACC_T_KERNEL(lora_acc_t_f32, LD16_F32, 4)
LORA_ACC_T_KERNEL(lora_acc_t_f16, LD16_F16, 2)
LORA_ACC_T_KERNEL(lora_acc_t_bf16, LD16_BF16, 2)

LORA_A_KERNEL(lora_a_f32, LD16_F32, 4)
LORA_A_KERNEL(lora_a_f16, LD16_F16, 2)
LORA_A_KERNEL(lora_a_bf16, LD16_BF16, 2)
LORA_ACC_KERNEL(lora_acc_f32, LD16_F32)
LORA_ACC_KERNEL(lora_acc_f16, LD16_F16)
LORA_ACC_KERNEL(lora_acc_bf16, LD16_BF16)

/* 16 int8 of a Q8_0 block widened to f32 */
#define Q8_LOAD16(q, i) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((q) + (i)))))

/* Q8_0 adapters (SDK 1.2). A side with f32 columns: per block the sum of
 * q x (two products per column), times d, added to one of 4 running sums
 * (block b to sum b % 4: one chain of FMAs per block would run at the FMA
 * latency). Rows one after the other: A is read in storage order, one
 * sequential stream (several rows side by side streamed slower). */
AI void lora_a_q8_0_n(int64_t k, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *a, size_t as, const int nc,
                      float *dst, size_t ds) {
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        __m512 acc[4][4];
        for (int c = 0; c < nc; c++)
            for (int v = 0; v < 4; v++) acc[c][v] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 4 <= k / 32; b += 4)
            for (int v = 0; v < 4; v++) {
                const uint8_t *blk = wr + (size_t)(b + v) * 34;
                _mm_prefetch((const char *)blk + LORA_PF_A, _MM_HINT_T0);
                const int8_t *q = (const int8_t *)(blk + 2);
                __m512 q0 = Q8_LOAD16(q, 0), q1 = Q8_LOAD16(q, 16), vd = _mm512_set1_ps(f16(blk));
                for (int c = 0; c < nc; c++) {
                    const float *x = (const float *)(a + (size_t)c * as) + (b + v) * 32;
                    __m512 p = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(x)));
                    acc[c][v] = _mm512_fmadd_ps(p, vd, acc[c][v]);
                }
            }
        for (; b < k / 32; b++) {
            const uint8_t *blk = wr + (size_t)b * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            __m512 q0 = Q8_LOAD16(q, 0), q1 = Q8_LOAD16(q, 16), vd = _mm512_set1_ps(f16(blk));
            for (int c = 0; c < nc; c++) {
                const float *x = (const float *)(a + (size_t)c * as) + b * 32;
                __m512 p = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(x)));
                acc[c][0] = _mm512_fmadd_ps(p, vd, acc[c][0]);
            }
        }
        for (int c = 0; c < nc; c++) {
            __m512 t = _mm512_add_ps(_mm512_add_ps(acc[c][0], acc[c][1]), _mm512_add_ps(acc[c][2], acc[c][3]));
            dst[(size_t)c * ds + (size_t)r] = _mm512_reduce_add_ps(t);
        }
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

/* B side on the transposed Q8_0 B (cpu_lora_acc_q8t_fn): tiles of nb
 * blocks of 32 rows (the rank rows' nb blocks of the tile, in order of j),
 * every column's accumulators in registers, so bt is read once. The rank
 * rows are rank separate streams: each is prefetched LORA_PF_B ahead. */
AI void lora_acc_q8t_tile(int64_t rank, const uint8_t *col, size_t bs, const int nb, const int nc,
                          const float *const *x, float *const *d, const float *s) {
    __m512 acc[4][8];
    for (int c = 0; c < nc; c++)
        for (int v = 0; v < 2 * nb; v++) acc[c][v] = _mm512_setzero_ps();
    for (int64_t j = 0; j < rank; j++) {
        const uint8_t *row = col + (size_t)j * bs;
        for (int e = 0; e < nb * 34; e += 64) _mm_prefetch((const char *)row + LORA_PF_B + e, _MM_HINT_T0);
        __m512 q[8];
        float dj[4];
        for (int e = 0; e < nb; e++) {
            const int8_t *qp = (const int8_t *)(row + 34 * e + 2);
            q[2 * e] = Q8_LOAD16(qp, 0);
            q[2 * e + 1] = Q8_LOAD16(qp, 16);
            dj[e] = f16(row + 34 * e);
        }
        for (int c = 0; c < nc; c++)
            for (int e = 0; e < nb; e++) {
                __m512 wj = _mm512_set1_ps(dj[e] * x[c][j]);
                acc[c][2 * e] = _mm512_fmadd_ps(q[2 * e], wj, acc[c][2 * e]);
                acc[c][2 * e + 1] = _mm512_fmadd_ps(q[2 * e + 1], wj, acc[c][2 * e + 1]);
            }
    }
    for (int c = 0; c < nc; c++) {
        __m512 vs = _mm512_set1_ps(s[c]);
        for (int v = 0; v < 2 * nb; v++)
            _mm512_storeu_ps(d[c] + 16 * v, _mm512_fmadd_ps(vs, acc[c][v], _mm512_loadu_ps(d[c] + 16 * v)));
    }
}

/* 128-row tiles for one column (8 accumulator chains), 64 for more */
AI void lora_acc_q8t_n(int64_t rank, const uint8_t *bt, size_t bs, int64_t r0, int64_t nr, const int nc,
                       const float *const *x, const float *s, float *const *dst) {
    const int nb = nc == 1 ? 4 : 2;
    int64_t i0 = r0, end = r0 + nr;
    float *d[4];
    for (; i0 < end;) {
        int64_t left = (end - i0) / 32;
        int b; /* blocks in this tile: constants, so each call unrolls */
        for (int c = 0; c < nc; c++) d[c] = dst[c] + (i0 - r0);
        const uint8_t *col = bt + (size_t)(i0 / 32) * 34;
        if (left >= nb) {
            b = nb;
            lora_acc_q8t_tile(rank, col, bs, nb, nc, x, d, s);
        } else if (left >= 2) {
            b = 2;
            lora_acc_q8t_tile(rank, col, bs, 2, nc, x, d, s);
        } else {
            b = 1;
            lora_acc_q8t_tile(rank, col, bs, 1, nc, x, d, s);
        }
        i0 += 32 * b;
    }
}

/* cpu_lora_sum_q8t_fn: n transposed B side by side, G rank rows of each
 * at a time swept over all m: y (in L1/L2) is loaded and stored once per
 * G rows, not once per row as a pass in storage order would (that pass
 * was store-bound), and n * G streams are in flight. The first group
 * writes fma(q, w, 0), as the tiles' zeroed accumulators start; per
 * element the rows are added in order of j. */
AI void lora_sum_q8t_g(const uint8_t *const *bt, size_t bs, int64_t j0, int64_t m, const int G, const int n,
                       const float *const *x, float *const *y) {
    for (int64_t b = 0; b < m / 32; b++) {
        __m512 acc[CPU_LORA_GROUP][2];
        for (int i = 0; i < n; i++) {
            acc[i][0] = j0 ? _mm512_loadu_ps(y[i] + b * 32) : _mm512_setzero_ps();
            acc[i][1] = j0 ? _mm512_loadu_ps(y[i] + b * 32 + 16) : _mm512_setzero_ps();
        }
        for (int g = 0; g < G; g++)
            for (int i = 0; i < n; i++) {
                const uint8_t *blk = bt[i] + (size_t)(j0 + g) * bs + (size_t)b * 34;
                _mm_prefetch((const char *)blk + LORA_PF_B, _MM_HINT_T0);
                const int8_t *qp = (const int8_t *)(blk + 2);
                __m512 wj = _mm512_set1_ps(f16(blk) * x[i][j0 + g]);
                acc[i][0] = _mm512_fmadd_ps(Q8_LOAD16(qp, 0), wj, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(Q8_LOAD16(qp, 16), wj, acc[i][1]);
            }
        for (int i = 0; i < n; i++) {
            _mm512_storeu_ps(y[i] + b * 32, acc[i][0]);
            _mm512_storeu_ps(y[i] + b * 32 + 16, acc[i][1]);
        }
    }
}

/* cpu_lora_a_q8_group_fn: lora_a_q8_0_n's arithmetic (one column) for n
 * adapters, their rows j side by side: n streams in flight. */
AI void lora_a_q8_group_n(int64_t k, const uint8_t *const *w, size_t ws, int64_t nr, const int n,
                          const float *const *x, float *const *dst) {
    for (int64_t r = 0; r < nr; r++) {
        __m512 acc[CPU_LORA_GROUP][4];
        for (int i = 0; i < n; i++)
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 4 <= k / 32; b += 4)
            for (int v = 0; v < 4; v++)
                for (int i = 0; i < n; i++) {
                    const uint8_t *blk = w[i] + (size_t)r * ws + (size_t)(b + v) * 34;
                    _mm_prefetch((const char *)blk + LORA_PF_A, _MM_HINT_T0);
                    const int8_t *q = (const int8_t *)(blk + 2);
                    const float *xi = x[i] + (b + v) * 32;
                    __m512 p = _mm512_fmadd_ps(Q8_LOAD16(q, 16), _mm512_loadu_ps(xi + 16),
                                               _mm512_mul_ps(Q8_LOAD16(q, 0), _mm512_loadu_ps(xi)));
                    acc[i][v] = _mm512_fmadd_ps(p, _mm512_set1_ps(f16(blk)), acc[i][v]);
                }
        for (; b < k / 32; b++)
            for (int i = 0; i < n; i++) {
                const uint8_t *blk = w[i] + (size_t)r * ws + (size_t)b * 34;
                const int8_t *q = (const int8_t *)(blk + 2);
                const float *xi = x[i] + b * 32;
                __m512 p = _mm512_fmadd_ps(Q8_LOAD16(q, 16), _mm512_loadu_ps(xi + 16),
                                           _mm512_mul_ps(Q8_LOAD16(q, 0), _mm512_loadu_ps(xi)));
                acc[i][0] = _mm512_fmadd_ps(p, _mm512_set1_ps(f16(blk)), acc[i][0]);
            }
        for (int i = 0; i < n; i++) {
            __m512 t = _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3]));
            dst[i][r] = _mm512_reduce_add_ps(t);
        }
    }
}

CPU_LORA_GROUP_DRIVERS

static void lora_acc_q8t(int64_t rank, const uint8_t *bt, size_t bs, int64_t r0, int64_t nr, int nc,
                         const float *const *x, const float *s, float *const *dst) {
    switch (nc) {
    case 1: lora_acc_q8t_n(rank, bt, bs, r0, nr, 1, x, s, dst); break;
    case 2: lora_acc_q8t_n(rank, bt, bs, r0, nr, 2, x, s, dst); break;
    case 3: lora_acc_q8t_n(rank, bt, bs, r0, nr, 3, x, s, dst); break;
    default: lora_acc_q8t_n(rank, bt, bs, r0, nr, 4, x, s, dst); break;
    }
}

void cpu_kernels_init_avx512(cpu_kernels *k) {
    k->name = "avx512";
    k->mm[LLMH_DTYPE_Q8_0] = mm_q8_0;
    k->mm[LLMH_DTYPE_Q4_0] = mm_q4_0;
    k->mm[LLMH_DTYPE_Q5_0] = mm_q5_0;
    k->mm_packed[LLMH_DTYPE_Q8_0] = mmp_q8_0;
    k->mm_packed[LLMH_DTYPE_Q4_0] = mmp_q4_0;
    k->mm_packed[LLMH_DTYPE_Q5_0] = mmp_q5_0;
    k->mm_packed[LLMH_DTYPE_Q4_K] = mmp_q4_k;
    k->mm_packed[LLMH_DTYPE_Q6_K] = mmp_q6_k;
    k->lora_a[LLMH_DTYPE_F32] = lora_a_f32;
    k->lora_a[LLMH_DTYPE_F16] = lora_a_f16;
    k->lora_a[LLMH_DTYPE_BF16] = lora_a_bf16;
    k->lora_acc[LLMH_DTYPE_F32] = lora_acc_f32;
    k->lora_acc[LLMH_DTYPE_F16] = lora_acc_f16;
    k->lora_acc[LLMH_DTYPE_BF16] = lora_acc_bf16;
    k->lora_acc_t[LLMH_DTYPE_F32] = lora_acc_t_f32;
    k->lora_acc_t[LLMH_DTYPE_F16] = lora_acc_t_f16;
    k->lora_acc_t[LLMH_DTYPE_BF16] = lora_acc_t_bf16;
    k->lora_acc_t4[LLMH_DTYPE_F32] = lora_acc_t4_f32;
    k->lora_acc_t4[LLMH_DTYPE_F16] = lora_acc_t4_f16;
    k->lora_acc_t4[LLMH_DTYPE_BF16] = lora_acc_t4_bf16;
    k->lora_a[LLMH_DTYPE_Q8_0] = lora_a_q8_0;
    k->lora_acc_q8t = lora_acc_q8t;
    k->lora_sum_q8t = lora_sum_q8t;
    k->lora_a_q8_group = lora_a_q8_group;
}
#else
typedef int cpu_kernels_avx512_unused; /* non-x86: nothing to build */
#endif

/* onednn-quant-vnni.c — the AVX-512 VNNI kernel for block-32 weights
 * (compiled with -mavx512f -mavx512bw -mavx512vnni; called only when the
 * CPU has them). A panel holds 16 weight rows; per 32-element block:
 *   f32 d[16] | f32 m[16] (Q4_1/Q5_1 only) | u8 q[8 groups][16 rows][4]
 * with q = level + 128, so one vpdpbusd multiplies 4 K-elements of all 16
 * rows (unsigned) by 4 broadcast activation bytes (signed); the +128 is
 * removed with the activation block's integer sum. Each block then adds
 * (d_w * d_a) * sum in f32, as llama.cpp.
 */
#include <string.h>

#include "onednn-internal.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>

int od_vnni_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

void od_vnni_panel(int64_t k, const uint8_t *panel, size_t blk_bytes, int mins, const uint8_t *const *cols,
                   int n_cols, float *out) {
    int64_t nb = k / 32;
    __m512 acc[OD_VNNI_MAX_COLS];
    for (int c = 0; c < OD_VNNI_MAX_COLS; c++) acc[c] = _mm512_setzero_ps();
    size_t qoff = mins ? 128 : 64;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = panel + (size_t)b * blk_bytes;
        __m512 dw = _mm512_loadu_ps((const float *)blk);
        __m512 mw = mins ? _mm512_loadu_ps((const float *)(blk + 64)) : _mm512_setzero_ps();
        const __m512i *wq = (const __m512i *)(blk + qoff);
        __m512i w0 = _mm512_loadu_si512(wq + 0), w1 = _mm512_loadu_si512(wq + 1);
        __m512i w2 = _mm512_loadu_si512(wq + 2), w3 = _mm512_loadu_si512(wq + 3);
        __m512i w4 = _mm512_loadu_si512(wq + 4), w5 = _mm512_loadu_si512(wq + 5);
        __m512i w6 = _mm512_loadu_si512(wq + 6), w7 = _mm512_loadu_si512(wq + 7);
        for (int c = 0; c < n_cols; c++) {
            const uint8_t *col = cols[c];
            const uint8_t *aq8 = col + b * 32;
            int32_t aq[8];
            memcpy(aq, aq8, sizeof aq);
            const float *ad = (const float *)(col + k);
            const float *as = ad + nb;
            int32_t asum;
            memcpy(&asum, (const uint8_t *)(as + nb) + (size_t)b * 4, 4);
            /* two independent chains halve the dpbusd latency chain */
            __m512i s0 = _mm512_set1_epi32(-128 * asum), s1 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, w0, _mm512_set1_epi32(aq[0]));
            s1 = _mm512_dpbusd_epi32(s1, w1, _mm512_set1_epi32(aq[1]));
            s0 = _mm512_dpbusd_epi32(s0, w2, _mm512_set1_epi32(aq[2]));
            s1 = _mm512_dpbusd_epi32(s1, w3, _mm512_set1_epi32(aq[3]));
            s0 = _mm512_dpbusd_epi32(s0, w4, _mm512_set1_epi32(aq[4]));
            s1 = _mm512_dpbusd_epi32(s1, w5, _mm512_set1_epi32(aq[5]));
            s0 = _mm512_dpbusd_epi32(s0, w6, _mm512_set1_epi32(aq[6]));
            s1 = _mm512_dpbusd_epi32(s1, w7, _mm512_set1_epi32(aq[7]));
            __m512i s = _mm512_add_epi32(s0, s1);
            __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(ad[b]));
            acc[c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[c]);
            if (mins) acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(as[b]), acc[c]);
        }
    }
    for (int c = 0; c < n_cols; c++) _mm512_storeu_ps(out + c * OD_PANEL, acc[c]);
}
#else
int od_vnni_available(void) { return 0; }

void od_vnni_panel(int64_t k, const uint8_t *panel, size_t blk_bytes, int mins, const uint8_t *const *cols,
                   int n_cols, float *out) {
    (void)k;
    (void)panel;
    (void)blk_bytes;
    (void)mins;
    (void)cols;
    memset(out, 0, (size_t)n_cols * OD_PANEL * sizeof(float));
}
#endif

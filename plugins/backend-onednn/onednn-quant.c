/* onednn-quant.c — MUL_MAT for GGUF's 32-element block types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0), which oneDNN cannot express (one f16 scale per 32
 * weights). The plugin's own int8 kernel, in plain C that the compiler
 * vectorizes (function clones for x86-64-v3/v4 picked at load time).
 *
 * Precision (the SDK's normative MUL_MAT note, as llama.cpp's CPU path):
 * each activation column is quantized to Q8_0 blocks of 32:
 *   amax = max |x|, d = amax / 127 (stored as f16), q = rint(x * 127/amax)
 * (round half to even), and every block contributes
 *   (d_w * d_a) * sum(q_w * q_a)          (integer sum, exact)
 *   + m_w * s_a                           (Q4_1/Q5_1: s_a = f16(d_a' * sum q_a),
 *                                          d_a' the unrounded amax/127, as
 *                                          llama.cpp's Q8_1 blocks)
 * accumulated in f32.
 *
 * Weights are repacked at load (weight_prepare) into a plugin layout: per
 * row, K int8 values (the block's integer levels: Q4_0 nibble - 8, Q5_0
 * 5-bit - 16, Q4_1/Q5_1 unsigned levels, Q8_0 as is), then K/32 f32 scales,
 * then (Q4_1/Q5_1) K/32 f32 mins. 1.1-1.3 bytes per weight: Q4_0 doubles in
 * memory, in exchange for no nibble unpacking in the hot loop.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "onednn-internal.h"

#define QB 32

int od_quant_supported(llmh_dtype t) {
    return t == LLMH_DTYPE_Q4_0 || t == LLMH_DTYPE_Q4_1 || t == LLMH_DTYPE_Q5_0 || t == LLMH_DTYPE_Q5_1 ||
           t == LLMH_DTYPE_Q8_0;
}

static int has_min(llmh_dtype t) { return t == LLMH_DTYPE_Q4_1 || t == LLMH_DTYPE_Q5_1; }

static float f16_at(const uint8_t *p) { return llmh_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static size_t packed_row_bytes(llmh_dtype t, int64_t k) {
    size_t nb = (size_t)(k / QB);
    return (size_t)k + nb * 4 * (has_min(t) ? 2 : 1);
}

/* One GGUF row of K elements -> int8 levels, f32 scales (and mins). */
static void unpack_row(llmh_dtype t, const uint8_t *src, int64_t k, int8_t *q, float *d, float *m) {
    int64_t nb = k / QB;
    size_t bsz = llmh_dtype_type_size(t);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + (size_t)b * bsz;
        int8_t *qb = q + b * QB;
        switch (t) {
        case LLMH_DTYPE_Q4_0:
            d[b] = f16_at(blk);
            for (int j = 0; j < 16; j++) {
                qb[j] = (int8_t)((blk[2 + j] & 0x0f) - 8);
                qb[j + 16] = (int8_t)((blk[2 + j] >> 4) - 8);
            }
            break;
        case LLMH_DTYPE_Q4_1:
            d[b] = f16_at(blk);
            m[b] = f16_at(blk + 2);
            for (int j = 0; j < 16; j++) {
                qb[j] = (int8_t)(blk[4 + j] & 0x0f);
                qb[j + 16] = (int8_t)(blk[4 + j] >> 4);
            }
            break;
        case LLMH_DTYPE_Q5_0: {
            d[b] = f16_at(blk);
            uint32_t qh = u32_at(blk + 2);
            for (int j = 0; j < 16; j++) {
                int lo = (blk[6 + j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
                int hi = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
                qb[j] = (int8_t)(lo - 16);
                qb[j + 16] = (int8_t)(hi - 16);
            }
            break;
        }
        case LLMH_DTYPE_Q5_1: {
            d[b] = f16_at(blk);
            m[b] = f16_at(blk + 2);
            uint32_t qh = u32_at(blk + 4);
            for (int j = 0; j < 16; j++) {
                qb[j] = (int8_t)((blk[8 + j] & 0x0f) | (int)(((qh >> j) & 1u) << 4));
                qb[j + 16] = (int8_t)((blk[8 + j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4));
            }
            break;
        }
        default: /* Q8_0 */
            d[b] = f16_at(blk);
            memcpy(qb, blk + 2, QB);
            break;
        }
    }
}

static void pack_rows(llmh_dtype t, const uint8_t *src, size_t src_row, int64_t k, int64_t m, uint8_t *dst,
                      size_t dst_row) {
    int64_t nb = k / QB;
#pragma omp parallel for schedule(static) if(k * m >= OD_PAR_MIN)
    for (int64_t r = 0; r < m; r++) {
        uint8_t *row = dst + (size_t)r * dst_row;
        float *d = (float *)(row + k);
        unpack_row(t, src + (size_t)r * src_row, k, (int8_t *)row, d, has_min(t) ? d + nb : NULL);
    }
}

/* Panel layout (onednn-quant-vnni.c): bytes per 32-element block of a panel. */
static size_t panel_blk_bytes(llmh_dtype t) { return 64 + (has_min(t) ? 64 : 0) + 512; }

static void pack_panels(llmh_dtype t, const uint8_t *src, size_t src_row, int64_t k, int64_t m, uint8_t *dst,
                        size_t panel_bytes) {
    int64_t nb = k / QB, n_panels = (m + OD_PANEL - 1) / OD_PANEL;
    size_t bb = panel_blk_bytes(t), qoff = has_min(t) ? 128 : 64;
#pragma omp parallel for schedule(static) if(k * m >= OD_PAR_MIN)
    for (int64_t p = 0; p < n_panels; p++) {
        int8_t q[QB];
        uint8_t *pan = dst + (size_t)p * panel_bytes;
        memset(pan, 0, panel_bytes);
        for (int64_t i = 0; i < OD_PANEL; i++) {
            int64_t r = p * OD_PANEL + i;
            if (r >= m) { /* padding rows: scale 0, levels 128 (= 0) */
                for (int64_t b = 0; b < nb; b++)
                    for (int j = 0; j < QB; j++) pan[(size_t)b * bb + qoff + (size_t)(j / 4) * 64 + (size_t)i * 4 + (size_t)(j % 4)] = 128;
                continue;
            }
            const uint8_t *row = src + (size_t)r * src_row;
            size_t bsz = llmh_dtype_type_size(t);
            for (int64_t b = 0; b < nb; b++) {
                float d, mn = 0.0f;
                unpack_row(t, row + (size_t)b * bsz, QB, q, &d, &mn);
                uint8_t *blk = pan + (size_t)b * bb;
                memcpy(blk + (size_t)i * 4, &d, 4);
                if (has_min(t)) memcpy(blk + 64 + (size_t)i * 4, &mn, 4);
                for (int j = 0; j < QB; j++)
                    blk[qoff + (size_t)(j / 4) * 64 + (size_t)i * 4 + (size_t)(j % 4)] = (uint8_t)(q[j] + 128);
            }
        }
    }
}

static size_t packed_bytes(llmh_dtype t, int64_t k, int64_t m, int panels, size_t *unit) {
    if (panels) {
        *unit = panel_blk_bytes(t) * (size_t)(k / QB);
        return *unit * (size_t)((m + OD_PANEL - 1) / OD_PANEL);
    }
    *unit = (packed_row_bytes(t, k) + 63) & ~(size_t)63;
    return *unit * (size_t)m;
}

static void pack_any(llmh_dtype t, const uint8_t *src, size_t src_row, int64_t k, int64_t m, int panels,
                     uint8_t *dst, size_t unit) {
    if (panels) pack_panels(t, src, src_row, k, m, dst, unit);
    else pack_rows(t, src, src_row, k, m, dst, unit);
}

llmh_status od_quant_pack(llmh_backend *be, const llmh_tensor *w, od_weight *out) {
    int64_t k = w->ne[0], m = w->ne[1];
    out->panels = be->vnni;
    out->has_min = has_min(w->type);
    size_t bytes = packed_bytes(w->type, k, m, out->panels, &out->q_row);
    out->q = be->host->alloc_aligned(bytes ? bytes : 64, 64);
    if (!out->q) {
        be->host->set_error("onednn backend: weight '%s': cannot allocate %zu bytes for its int8 layout",
                            w->name ? w->name : "(unnamed)", bytes);
        return LLMH_ERR_NO_MEMORY;
    }
    pack_any(w->type, w->data, w->nb[1], k, m, out->panels, out->q, out->q_row);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Activations: per column K int8, K/32 f32 d (f16-rounded), K/32 f32 s       */
/* ------------------------------------------------------------------------ */
static size_t act_col_bytes(int64_t k) { return ((size_t)k + (size_t)(k / QB) * 12 + 63) & ~(size_t)63; }

static void quantize_col(const uint8_t *x, size_t nb0, int64_t k, uint8_t *col) {
    int8_t *q = (int8_t *)col;
    float *d = (float *)(col + k), *s = d + k / QB;
    int32_t *isum = (int32_t *)(s + k / QB);
    for (int64_t b = 0; b < k / QB; b++) {
        float v[QB], amax = 0.0f;
        for (int j = 0; j < QB; j++) {
            memcpy(&v[j], x + (size_t)(b * QB + j) * nb0, 4);
            amax = fmaxf(amax, fabsf(v[j]));
        }
        float dd = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QB; j++) {
            int qi = (int)nearbyintf(v[j] * id);
            q[b * QB + j] = (int8_t)qi;
            sum += qi;
        }
        d[b] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(dd));
        s[b] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(dd * (float)sum));
        isum[b] = sum;
    }
}

/* ------------------------------------------------------------------------ */
/* Kernel: a tile of rows x one column                                         */
/* ------------------------------------------------------------------------ */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OD_CLONES
#endif

OD_CLONES
static void dot_rows(int64_t k, const uint8_t *w, size_t w_row, int64_t n_rows, int mins, const uint8_t *a,
                     float *out) {
    int64_t nb = k / QB;
    const int8_t *aq = (const int8_t *)a;
    const float *ad = (const float *)(a + k), *as = ad + nb;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *row = w + (size_t)r * w_row;
        const int8_t *wq = (const int8_t *)row;
        const float *wd = (const float *)(row + k), *wm = wd + nb;
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            int32_t sum = 0;
            const int8_t *x = wq + b * QB, *y = aq + b * QB;
            for (int j = 0; j < QB; j++) sum += (int16_t)x[j] * (int16_t)y[j];
            acc += (wd[b] * ad[b]) * (float)sum;
            if (mins) acc += wm[b] * as[b];
        }
        out[r] = acc;
    }
}

#define OD_ROW_TILE OD_PANEL /* rows per work unit (one panel) */

llmh_status od_quant_mul_mat(llmh_backend *be, const llmh_node *n, const od_weight *pw) {
    const llmh_tensor *a = n->src[0], *b = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    int mins = has_min(a->type);
    int panels = pw ? pw->panels : be->vnni;
    size_t col_bytes = act_col_bytes(K), unit = 0;
    size_t w_bytes = packed_bytes(a->type, K, M, panels, &unit);
    if (pw) {
        unit = pw->q_row;
        w_bytes = 0;
    } else {
        be->host->log(LLMH_LOG_DEBUG, OD_NAME, "MUL_MAT %s: %s weight [%lld, %lld] not prepared: repacking per call",
                      a->name ? a->name : "(unnamed)", llmh_dtype_name(a->type), (long long)K, (long long)M);
    }
    size_t a_bytes = col_bytes * (size_t)N;
    size_t o_bytes = (size_t)OD_PANEL * OD_VNNI_MAX_COLS * sizeof(float) * (size_t)be->n_threads;
    uint8_t *scr = od_scratch(be, a_bytes + w_bytes + o_bytes + 128);
    if (!scr) return LLMH_ERR_NO_MEMORY;
    uint8_t *acts = scr, *wbuf = scr + a_bytes;
    float *obuf = (float *)(scr + a_bytes + w_bytes);
    int64_t r2 = b->ne[2] / a->ne[2], r3 = b->ne[3] / a->ne[3];
    int64_t n_tiles = (M + OD_ROW_TILE - 1) / OD_ROW_TILE;
    int par = (double)K * (double)M * (double)N >= (double)OD_MM_PAR_MIN;
    size_t blk_bytes = panel_blk_bytes(a->type);
    for (int64_t i3 = 0; i3 < b->ne[3]; i3++) {
        for (int64_t i2 = 0; i2 < b->ne[2]; i2++) {
            const uint8_t *bs = (const uint8_t *)b->data + (size_t)i2 * b->nb[2] + (size_t)i3 * b->nb[3];
            const uint8_t *as = (const uint8_t *)a->data + (size_t)(i2 / r2) * a->nb[2] + (size_t)(i3 / r3) * a->nb[3];
            uint8_t *ds = (uint8_t *)d->data + (size_t)i2 * d->nb[2] + (size_t)i3 * d->nb[3];
            const uint8_t *wq = pw ? pw->q : wbuf;
            if (!pw) pack_any(a->type, as, a->nb[1], K, M, panels, wbuf, unit);
#pragma omp parallel for schedule(static) if(par && N > 1) /* one column: no fork */
            for (int64_t c = 0; c < N; c++)
                quantize_col(bs + (size_t)c * b->nb[1], b->nb[0], K, acts + (size_t)c * col_bytes);
            int direct = d->nb[0] == 4;
#pragma omp parallel for schedule(dynamic, 1) if(par)
            for (int64_t t = 0; t < n_tiles; t++) {
                int64_t r0 = t * OD_ROW_TILE, nr = M - r0 < OD_ROW_TILE ? M - r0 : OD_ROW_TILE;
                float *tmp = obuf + (size_t)omp_get_thread_num() * OD_PANEL * OD_VNNI_MAX_COLS;
                if (panels) {
                    const uint8_t *pan = wq + (size_t)t * unit;
                    for (int64_t c0 = 0; c0 < N; c0 += OD_VNNI_MAX_COLS) {
                        int nc = N - c0 < OD_VNNI_MAX_COLS ? (int)(N - c0) : OD_VNNI_MAX_COLS;
                        const uint8_t *cols[OD_VNNI_MAX_COLS];
                        for (int c = 0; c < nc; c++) cols[c] = acts + (size_t)(c0 + c) * col_bytes;
                        od_vnni_panel(K, pan, blk_bytes, mins, cols, nc, tmp);
                        for (int c = 0; c < nc; c++) {
                            uint8_t *dc = ds + (size_t)(c0 + c) * d->nb[1];
                            if (direct) memcpy(dc + (size_t)r0 * 4, tmp + c * OD_PANEL, (size_t)nr * 4);
                            else
                                for (int64_t r = 0; r < nr; r++)
                                    memcpy(dc + (size_t)(r0 + r) * d->nb[0], &tmp[c * OD_PANEL + r], 4);
                        }
                    }
                    continue;
                }
                for (int64_t c = 0; c < N; c++) {
                    uint8_t *dc = ds + (size_t)c * d->nb[1];
                    float *out = direct ? (float *)(dc + (size_t)r0 * 4) : tmp;
                    dot_rows(K, wq + (size_t)r0 * unit, unit, nr, mins, acts + (size_t)c * col_bytes, out);
                    if (!direct)
                        for (int64_t r = 0; r < nr; r++) memcpy(dc + (size_t)(r0 + r) * d->nb[0], &tmp[r], 4);
                }
            }
        }
    }
    return LLMH_OK;
}

/* onednn-lora.c — LLMH_OP_LORA (SDK 1.1, Q8_0 1.2): dst[:, t] += (fp0 * g[t]) * B (A x[:, t]).
 *
 * Plain C loops, not oneDNN: the products are rank-thin (A is K x R, B is
 * R x M with R typically 8..64), so the work is reading A and B once per
 * call; a matmul primitive per shape and per thread count would cost more
 * to create and dispatch than the arithmetic, and oneDNN has no f32-activation
 * product for f16/bf16 weights (the SDK keeps activations in f32 here).
 *
 * Precision (normative, see llmh-plugin.h): adapter values are widened
 * exactly to f32 (f16 by exact bit arithmetic that vectorizes, bf16 by a
 * shift), x stays f32, r = A x is kept in f32, both products accumulate
 * in f32 (16 partial sums, then a fixed tree), and dst gets
 * dst + (fp0 * g) * y rounded in that order. Tokens whose gate is 0 are not
 * touched.
 *
 * B phase: weight_prepare keeps a rank-thin B [R, M] transposed ([M] per
 * rank row), so y = B r is R axpys along M (vectors, no horizontal sums);
 * an unprepared B falls back to row dot products. A [K, R] is read as
 * stored (weight_prepare leaves it alone instead of packing it for oneDNN).
 *
 * Q8_0 adapters (SDK 1.2): A is Q8_0 [K, R] and src2 is B already
 * transposed, Q8_0 [M, R] (R rows of M), so both are read as stored and
 * streamed once per call: A by row dot products, B by the axpys above, two
 * blocks of each rank row at a time. A value is widened to d * q (exact in
 * f32) and then used like a float adapter's value, in the same summation
 * order: a Q8_0 adapter gives the bits of its values stored as F32 with a
 * transposed B, and widening it once per call for several tokens changes
 * nothing (a token's result does not depend on N).
 *
 * Fusion: consecutive LORA nodes with the same dst and src1 (several
 * adapters on one projection) run as one group in one OpenMP region: every
 * r_i first, then per slice of 256 dst rows and per token, each adapter's
 * term is added in node order (the same roundings as running the nodes one
 * by one) while the slice stays in L1.
 *
 * The two leaf kernels are compiled for x86-64-v4, x86-64-v3 and the
 * baseline (GCC target_clones, chosen at load by CPUID), so the widening
 * loads and the sums are 8- or 16-wide vectors where the CPU has them.
 */
#include <omp.h>
#include <string.h>

#include "onednn-internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define OD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OD_CLONES
#endif

/* helpers are inlined into each clone, so they get its instruction set */
#define OD_INLINE static inline __attribute__((always_inline))

#define OD_LORA_MAX_GROUP 64 /* nodes fused into one group at most */
#define OD_LORA_WIDEN_N 4    /* tokens from which adapters are widened once per call */
#define OD_LANES 16

/* One adapter of a group, as the kernels see it. */
typedef struct lora_item {
    llmh_dtype type;       /* A and B: F32, F16, BF16 or Q8_0 */
    const uint8_t *a, *b;  /* row 0 of A (R rows of K) and of B (M rows of R) */
    size_t a_ld, b_ld;     /* row strides in bytes */
    const uint8_t *bt;     /* B transposed (R rows of M: weight_prepare, or a Q8_0 src2), or NULL */
    int64_t r;             /* rank */
    float *rv;             /* r = A x: N columns of R floats */
    const float *coef;     /* N factors fp0 * g[t] */
    const uint8_t *on;     /* N flags: token t gets this adapter (g[t] != 0) */
    int any;               /* some token is on */
} lora_item;

/* ------------------------------------------------------------------------ */
/* Widening loads                                                             */
/* ------------------------------------------------------------------------ */
OD_INLINE float ld_f32(const uint8_t *p, int64_t i) {
    float v;
    memcpy(&v, p + 4 * (size_t)i, 4);
    return v;
}

/* Exact f16 -> f32 in integer and f32 arithmetic that vectorizes (GCC 12
 * turns _Float16 conversions into one scalar vcvtph2ps per element): the
 * exponent-and-mantissa bits shifted into f32 position are the value times
 * 2^-112 (also for f16 subnormals, as f32 subnormals), so one exact multiply
 * by 2^112 rebiases; infinities and NaNs keep all-ones exponents. */
OD_INLINE float ld_f16(const uint8_t *p, int64_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * (size_t)i, 2);
    uint32_t em = (uint32_t)(h & 0x7fffu) << 13, sign = (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &em, 4);
    f *= 0x1p112f;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = em >= (0x7c00u << 13) ? (em | 0x7f800000u) : u;
    u |= sign;
    memcpy(&f, &u, 4);
    return f;
}

OD_INLINE float ld_bf16(const uint8_t *p, int64_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * (size_t)i, 2);
    uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* A Q8_0 block's scale d: one scalar per 32 values, where a hardware
 * conversion (one vcvtph2ps in the x86-64-v3/v4 clones) is cheaper than
 * ld_f16's bit arithmetic, which pays off only as vectors. Exact either way. */
OD_INLINE float ld_q8_d(const uint8_t *blk) {
#if defined(__FLT16_MAX__)
    _Float16 h;
    memcpy(&h, blk, 2);
    return (float)h;
#else
    return ld_f16(blk, 0);
#endif
}

/* one Q8_0 block (f16 d, 32 int8 q) as its 32 values d * q (exact) */
OD_INLINE void ld_q8_block(const uint8_t *blk, float *v) {
    float d = ld_q8_d(blk);
    for (int l = 0; l < 32; l++) v[l] = d * (float)(int8_t)blk[2 + l];
}

OD_INLINE float hsum16(const float *acc) {
    float s8[8], s4[4];
    for (int l = 0; l < 8; l++) s8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; l++) s4[l] = s8[l] + s8[l + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* dot products of one adapter row `w` (n values of the item's type) with
 * `nc` (1..4) f32 columns; 16 partial sums per column, then a tree, then
 * the tail. LD is the widening load. */
#define OD_DOT_FN(NAME, LD)                                                                          \
    OD_INLINE void NAME(const uint8_t *w, const float *const *x, int nc, int64_t n, float *out) { \
        float acc[4][OD_LANES];                                                                      \
        memset(acc, 0, sizeof acc);                                                                  \
        int64_t k = 0;                                                                               \
        if (nc == 4) {                                                                               \
            const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];                              \
            for (; k + OD_LANES <= n; k += OD_LANES)                                                 \
                for (int l = 0; l < OD_LANES; l++) {                                                 \
                    float a = LD(w, k + l);                                                          \
                    acc[0][l] += a * x0[k + l];                                                      \
                    acc[1][l] += a * x1[k + l];                                                      \
                    acc[2][l] += a * x2[k + l];                                                      \
                    acc[3][l] += a * x3[k + l];                                                      \
                }                                                                                    \
        } else {                                                                                     \
            for (int c = 0; c < nc; c++) {                                                           \
                const float *xc = x[c];                                                              \
                int64_t kk = 0;                                                                      \
                for (; kk + OD_LANES <= n; kk += OD_LANES)                                           \
                    for (int l = 0; l < OD_LANES; l++) acc[c][l] += LD(w, kk + l) * xc[kk + l];      \
                k = kk;                                                                              \
            }                                                                                        \
        }                                                                                            \
        for (int c = 0; c < nc; c++) {                                                               \
            float tail = 0.0f;                                                                       \
            for (int64_t i = k; i < n; i++) tail += LD(w, i) * x[c][i];                              \
            out[c] = hsum16(acc[c]) + tail;                                                          \
        }                                                                                            \
    }

OD_DOT_FN(dot_f32, ld_f32)
OD_DOT_FN(dot_f16, ld_f16)
OD_DOT_FN(dot_bf16, ld_bf16)

/* OD_DOT_FN for a Q8_0 row (n % 32 == 0) in its order (element k into
 * lane k % 16, the same tree), so a widened copy gives the same bits. Only
 * for fewer than OD_LORA_WIDEN_N tokens (else the row is widened), so one
 * column at a time. The values are formed in the lane loop, not in an
 * array: a block stored as vectors and reloaded costs a failed store
 * forward. */
OD_INLINE void dot_q8(const uint8_t *w, const float *const *x, int nc, int64_t n, float *out) {
    for (int c = 0; c < nc; c++) {
        const float *xc = x[c];
        float acc[OD_LANES] = {0};
        for (int64_t k = 0; k < n; k += 32) {
            const uint8_t *b = w + (size_t)(k / 32) * 34;
            float d = ld_q8_d(b);
            for (int h = 0; h < 32; h += OD_LANES)
                for (int l = 0; l < OD_LANES; l++) acc[l] += (d * (float)(int8_t)b[2 + h + l]) * xc[k + h + l];
        }
        out[c] = hsum16(acc) + 0.0f; /* OD_DOT_FN's empty tail: -0 becomes +0 */
    }
}

OD_INLINE void dot_any(llmh_dtype t, const uint8_t *w, const float *const *x, int nc, int64_t n, float *out) {
    if (t == LLMH_DTYPE_Q8_0) dot_q8(w, x, nc, n, out);
    else if (t == LLMH_DTYPE_F16) dot_f16(w, x, nc, n, out);
    else if (t == LLMH_DTYPE_BF16) dot_bf16(w, x, nc, n, out);
    else dot_f32(w, x, nc, n, out);
}

/* ------------------------------------------------------------------------ */
/* Leaf kernels (cloned per ISA)                                              */
/* ------------------------------------------------------------------------ */
/* rows x cols f16/bf16/Q8_0 values (rows `ld` bytes apart) widened to f32. */
OD_CLONES static void widen_rows(llmh_dtype type, const uint8_t *src, size_t ld, int64_t rows, int64_t cols,
                                 float *dst) {
    for (int64_t i = 0; i < rows; i++) {
        const uint8_t *s = src + (size_t)i * ld;
        float *o = dst + i * cols;
        if (type == LLMH_DTYPE_Q8_0)
            for (int64_t j = 0; j < cols; j += 32) ld_q8_block(s + (size_t)(j / 32) * 34, o + j);
        else if (type == LLMH_DTYPE_F16)
            for (int64_t j = 0; j < cols; j++) o[j] = ld_f16(s, j);
        else
            for (int64_t j = 0; j < cols; j++) o[j] = ld_bf16(s, j);
    }
}

/* r rows [j0, j1) of item `it` for every token (4 at a time): r[t][j] =
 * A_j . x_t. x column t starts at xs + t * x_ld (contiguous floats). */
OD_CLONES static void lora_a_rows(const lora_item *it, int64_t j0, int64_t j1, const uint8_t *xs, size_t x_ld,
                                  int64_t k, int64_t n) {
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *w = it->a + (size_t)j * it->a_ld;
        for (int64_t t = 0; t < n;) {
            const float *cols[4];
            int64_t ts[4];
            int nc = 0;
            for (; t < n && nc < 4; t++) {
                if (!it->on[t]) continue;
                cols[nc] = (const float *)(const void *)(xs + (size_t)t * x_ld);
                ts[nc++] = t;
            }
            if (!nc) break;
            float out[4];
            dot_any(it->type, w, cols, nc, k, out);
            for (int c = 0; c < nc; c++) it->rv[ts[c] * it->r + j] = out[c];
        }
    }
}

#define OD_MCHUNK 256 /* dst rows per step: y and the dst slice stay in L1 */

/* y[l] = sum_j r[j] * BT[j][m0 + l] for l < nm (BT rows of `ld` bytes):
 * vectors along M, no horizontal sums; the sum over j is in order. */
#define OD_AXPY_FN(NAME, LD)                                                                             \
    OD_INLINE void NAME(const uint8_t *bt, size_t ld, int64_t r, int64_t m0, int nm, const float *rv,   \
                        float *y) {                                                                      \
        int l0 = 0;                                                                                      \
        for (; l0 + 32 <= nm; l0 += 32) { /* 32 sums stay in registers across the rank */              \
            float acc[32];                                                                               \
            for (int l = 0; l < 32; l++) acc[l] = 0.0f;                                                  \
            for (int64_t j = 0; j < r; j++) {                                                            \
                const uint8_t *row = bt + (size_t)j * ld;                                                \
                float rj = rv[j];                                                                        \
                for (int l = 0; l < 32; l++) acc[l] += rj * LD(row, m0 + l0 + l);                       \
            }                                                                                            \
            for (int l = 0; l < 32; l++) y[l0 + l] = acc[l];                                             \
        }                                                                                                \
        for (int l = l0; l < nm; l++) y[l] = 0.0f;                                                       \
        for (int64_t j = 0; j < r && l0 < nm; j++) {                                                     \
            const uint8_t *row = bt + (size_t)j * ld;                                                    \
            float rj = rv[j];                                                                            \
            for (int l = l0; l < nm; l++) y[l] += rj * LD(row, m0 + l);                                  \
        }                                                                                                \
    }

OD_AXPY_FN(axpy_f32, ld_f32)
OD_AXPY_FN(axpy_f16, ld_f16)
OD_AXPY_FN(axpy_bf16, ld_bf16)

/* OD_AXPY_FN for Q8_0 rows (m0 and nm multiples of 32), two blocks of each
 * rank row at a time (then one): 64 sums stay in registers across the
 * rank, so each row is read 68 contiguous bytes per step and each block's
 * scalar work (its scale) overlaps twice the products (one block at a
 * time measured about twice as slow). A value is d * q, then r[j] times
 * it, as in the float kernels (same bits). */
#define OD_Q8_AXPY_TILE(NB)                                                             \
    do {                                                                                \
        const uint8_t *blk = bt + (size_t)((m0 + l0) / 32) * 34;                        \
        float acc[32 * (NB)];                                                           \
        for (int l = 0; l < 32 * (NB); l++) acc[l] = 0.0f;                              \
        for (int64_t j = 0; j < r; j++) {                                               \
            const uint8_t *row = blk + (size_t)j * ld;                                  \
            float rj = rv[j];                                                           \
            for (int e = 0; e < (NB); e++) {                                            \
                float d = ld_q8_d(row + 34 * e);                                        \
                for (int l = 0; l < 32; l++)                                            \
                    acc[32 * e + l] += rj * (d * (float)(int8_t)row[34 * e + 2 + l]);   \
            }                                                                           \
        }                                                                               \
        for (int l = 0; l < 32 * (NB); l++) y[l0 + l] = acc[l];                         \
        l0 += 32 * (NB);                                                                \
    } while (0)

OD_INLINE void axpy_q8(const uint8_t *bt, size_t ld, int64_t r, int64_t m0, int nm, const float *rv, float *y) {
    int l0 = 0;
    while (l0 + 64 <= nm) OD_Q8_AXPY_TILE(2);
    if (l0 < nm) OD_Q8_AXPY_TILE(1);
}

/* dst rows [m0, m1) for every token, OD_MCHUNK rows at a time: for each
 * token and each item in node order, y = B r_t, then dst = dst + coef * y
 * (the roundings of running the nodes one by one). dst is contiguous along
 * M (validated). m0 is a multiple of 32 (Q8_0 blocks), and so is m1 or it
 * is M. Gated-off tokens are neither computed nor written. */
OD_CLONES static void lora_b_rows(const lora_item *items, int n_items, int64_t m0, int64_t m1, uint8_t *dst,
                                  size_t d_nb1, int64_t n) {
    float y[OD_MCHUNK];
    for (int64_t mc = m0; mc < m1; mc += OD_MCHUNK) {
        int nm = m1 - mc < OD_MCHUNK ? (int)(m1 - mc) : OD_MCHUNK;
        for (int64_t t = 0; t < n; t++) {
            float *dp = (float *)(void *)(dst + (size_t)t * d_nb1) + mc;
            for (int i = 0; i < n_items; i++) {
                const lora_item *it = &items[i];
                if (!it->on[t]) continue;
                const float *rt = it->rv + t * it->r;
                if (it->bt) {
                    size_t ld = (size_t)items[i].b_ld;
                    if (it->type == LLMH_DTYPE_Q8_0) axpy_q8(it->bt, ld, it->r, mc, nm, rt, y);
                    else if (it->type == LLMH_DTYPE_F16) axpy_f16(it->bt, ld, it->r, mc, nm, rt, y);
                    else if (it->type == LLMH_DTYPE_BF16) axpy_bf16(it->bt, ld, it->r, mc, nm, rt, y);
                    else axpy_f32(it->bt, ld, it->r, mc, nm, rt, y);
                } else {
                    for (int l = 0; l < nm; l++) {
                        const float *col = rt;
                        dot_any(it->type, it->b + (size_t)(mc + l) * it->b_ld, &col, 1, it->r, &y[l]);
                    }
                }
                float c = it->coef[t];
                for (int l = 0; l < nm; l++) dp[l] = dp[l] + c * y[l];
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Grouping and the op                                                        */
/* ------------------------------------------------------------------------ */
static int same_view(const llmh_tensor *a, const llmh_tensor *b) {
    if (a->data != b->data || a->type != b->type) return 0;
    for (int d = 0; d < LLMH_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d] || a->nb[d] != b->nb[d]) return 0;
    return 1;
}

/* [lo, hi) host bytes a view spans */
static void span(const llmh_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    size_t ext = llmh_dtype_type_size(t->type);
    int64_t bs = llmh_dtype_block_size(t->type);
    for (int d = 0; d < LLMH_MAX_DIMS; d++) {
        int64_t cnt = d == 0 ? t->ne[0] / bs : t->ne[d];
        if (cnt > 1) ext += (size_t)(cnt - 1) * t->nb[d];
    }
    *lo = (uintptr_t)t->data;
    *hi = *lo + ext;
}

static int overlaps(const llmh_tensor *a, const llmh_tensor *b) {
    if (!a || !b) return 0;
    uintptr_t alo, ahi, blo, bhi;
    span(a, &alo, &ahi);
    span(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

/* A node whose inputs do not alias its dst (always so in the host's
 * graphs); only such nodes are fused, since fusing reorders reads of x. */
static int fusable(const llmh_node *n) {
    return !overlaps(n->dst, n->src[0]) && !overlaps(n->dst, n->src[1]) && !overlaps(n->dst, n->src[2]) &&
           !overlaps(n->dst, n->src[3]);
}

size_t od_lora_group(const llmh_node *nodes, size_t n_nodes) {
    if (n_nodes == 0 || nodes[0].op != LLMH_OP_LORA) return 0;
    if (!fusable(&nodes[0])) return 1;
    size_t g = 1;
    while (g < n_nodes && g < OD_LORA_MAX_GROUP && nodes[g].op == LLMH_OP_LORA &&
           same_view(nodes[g].dst, nodes[0].dst) && same_view(nodes[g].src[1], nodes[0].src[1]) &&
           fusable(&nodes[g]))
        g++;
    return g;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

int od_lora_shape(const llmh_tensor *w) {
    if (w->ne[2] != 1 || w->ne[3] != 1 || w->ne[0] <= 0 || w->ne[1] <= 0) return 0;
    if (w->ne[1] <= 64 && w->ne[0] >= 16 * w->ne[1] && w->ne[0] <= 65536) return 1;
    if (w->ne[0] <= 64 && w->ne[1] >= 16 * w->ne[0] && w->ne[1] <= 65536) return 2;
    return 0;
}

llmh_status od_lora_transpose(llmh_backend *be, const llmh_tensor *w, od_weight *pw) {
    size_t ts = llmh_dtype_type_size(w->type);
    int64_t r = w->ne[0], m = w->ne[1];
    uint8_t *t = be->host->alloc_aligned((size_t)r * (size_t)m * ts, 64);
    if (!t) {
        be->host->set_error("onednn backend: out of memory transposing '%s'", w->name ? w->name : "(unnamed)");
        return LLMH_ERR_NO_MEMORY;
    }
    const uint8_t *src = w->data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < r; j++)
            memcpy(t + ((size_t)j * (size_t)m + (size_t)i) * ts, src + (size_t)i * w->nb[1] + (size_t)j * ts, ts);
    pw->packed = t;
    return LLMH_OK;
}

llmh_status od_lora(llmh_backend *be, const llmh_node *nodes, size_t count) {
    const llmh_tensor *x = nodes[0].src[1];
    llmh_tensor *d = nodes[0].dst;
    int64_t K = x->ne[0], N = x->ne[1], M = d->ne[0];
    /* scratch: packed x (when its rows are strided) | per node: r, coef, on */
    int pack_x = x->nb[0] != sizeof(float);
    /* with several tokens, f16/bf16/Q8_0 adapters are widened to f32 once
     * per call instead of once per token (exact, so the results are the
     * same); per node, since a fused group may mix adapter types */
    int several = N >= OD_LORA_WIDEN_N;
    size_t bytes = pack_x ? align64((size_t)K * (size_t)N * 4) : 0;
    for (size_t i = 0; i < count; i++) {
        size_t r = (size_t)nodes[i].src[0]->ne[1];
        bytes += align64(r * (size_t)N * 4) + align64((size_t)N * 4) + align64((size_t)N);
        if (several && nodes[i].src[0]->type != LLMH_DTYPE_F32)
            bytes += align64(r * (size_t)K * 4) + align64(r * (size_t)M * 4);
    }
    bytes += align64(count * sizeof(lora_item));
    uint8_t *scr = od_scratch(be, bytes);
    if (!scr) return LLMH_ERR_NO_MEMORY;
    lora_item *items = (lora_item *)(void *)scr;
    uint8_t *p = scr + align64(count * sizeof(lora_item));
    const uint8_t *xs = x->data;
    size_t x_ld = x->nb[1];
    if (pack_x) {
        float *xp = (float *)(void *)p;
        for (int64_t t = 0; t < N; t++)
            for (int64_t k = 0; k < K; k++)
                memcpy(&xp[t * K + k], (const uint8_t *)x->data + (size_t)t * x->nb[1] + (size_t)k * x->nb[0], 4);
        xs = p;
        x_ld = (size_t)K * 4;
        p += align64((size_t)K * (size_t)N * 4);
    }
    int n_items = 0;
    int64_t rows_a = 0;
    for (size_t i = 0; i < count; i++) {
        const llmh_node *nd = &nodes[i];
        const llmh_tensor *a = nd->src[0], *b = nd->src[2], *g = nd->src[3];
        lora_item *it = &items[n_items];
        it->type = a->type;
        it->a = a->data;
        it->b = b->data;
        it->a_ld = a->nb[1];
        it->b_ld = b->nb[1];
        it->bt = NULL;
        const od_weight *pw = b->extra;
        if (a->type == LLMH_DTYPE_Q8_0) {
            it->bt = b->data; /* transposed as stored; a packed copy for MUL_MAT is not used */
        } else if (pw && pw->kind == OD_PACK_T && pw->src == b->data && pw->type == b->type && pw->k == b->ne[0] &&
            pw->m == b->ne[1] && b->nb[1] == llmh_dtype_type_size(b->type) * (size_t)b->ne[0]) {
            it->bt = pw->packed;
            it->b_ld = llmh_dtype_type_size(b->type) * (size_t)b->ne[1]; /* a transposed row: M values */
        }
        it->r = a->ne[1];
        it->rv = (float *)(void *)p;
        p += align64((size_t)it->r * (size_t)N * 4);
        float *coef = (float *)(void *)p;
        p += align64((size_t)N * 4);
        uint8_t *on = p;
        p += align64((size_t)N);
        it->any = 0;
        for (int64_t t = 0; t < N; t++) {
            float gt = 1.0f;
            if (g) memcpy(&gt, (const uint8_t *)g->data + (size_t)t * g->nb[0], 4);
            on[t] = gt != 0.0f;
            coef[t] = nd->fp[0] * gt;
            it->any |= on[t];
        }
        it->coef = coef;
        it->on = on;
        if (!it->any) continue; /* every token gated off: nothing to do */
        if (several && it->type != LLMH_DTYPE_F32) {
            float *wa = (float *)(void *)p, *wb = (float *)(void *)(p + align64((size_t)it->r * (size_t)K * 4));
            p += align64((size_t)it->r * (size_t)K * 4) + align64((size_t)it->r * (size_t)M * 4);
            widen_rows(it->type, it->a, it->a_ld, it->r, K, wa);
            it->a = (const uint8_t *)wa;
            it->a_ld = (size_t)K * 4;
            if (it->bt) {
                widen_rows(it->type, it->bt, it->b_ld, it->r, M, wb);
                it->bt = (const uint8_t *)wb;
                it->b_ld = (size_t)M * 4;
            } else {
                widen_rows(it->type, it->b, it->b_ld, M, it->r, wb);
                it->b = (const uint8_t *)wb;
                it->b_ld = (size_t)it->r * 4;
            }
            it->type = LLMH_DTYPE_F32;
        }
        rows_a += it->r;
        n_items++;
    }
    if (n_items == 0) return LLMH_OK;
    double work = 0.0;
    for (int i = 0; i < n_items; i++) work += (double)items[i].r * (double)(K + M);
    work *= (double)N;
    int par = work >= (double)OD_PAR_MIN * 8 && be->n_threads > 1;
    uint8_t *dd = d->data;
    size_t d_nb1 = d->nb[1];
#pragma omp parallel if(par)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        /* phase 1: the rows of every r, split evenly over the threads */
        int64_t lo = rows_a * id / nt, hi = rows_a * (id + 1) / nt, base = 0;
        for (int i = 0; i < n_items && base < hi; i++) {
            int64_t r = items[i].r;
            int64_t j0 = lo > base ? lo - base : 0, j1 = hi - base < r ? hi - base : r;
            if (j0 < j1) lora_a_rows(&items[i], j0, j1, xs, x_ld, K, N);
            base += r;
        }
#pragma omp barrier
        /* phase 2: dst rows split evenly, in whole Q8_0 blocks */
        int64_t mb = (M + 31) / 32, m0 = mb * id / nt * 32, m1 = mb * (id + 1) / nt * 32;
        if (m1 > M) m1 = M;
        if (m0 < m1) lora_b_rows(items, n_items, m0, m1, dd, d_nb1, N);
    }
    return LLMH_OK;
}

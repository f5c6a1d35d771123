/* cpu-matmul.c — MUL_MAT driver: dst[M, N] = W[K, M] x X[K, N].
 *
 * Phase 0 (units = columns): convert every activation column once into the
 * layout the weight type's kernel wants (Q8 for 32-element blocks, Q8K for
 * K-quants, f32 copies only when X is not contiguous).
 * Phase 1 (units = row chunks x batches): the weight rows are cut into
 * chunks sized to stay in L1/L2 (~64 KiB of weights); threads claim chunks
 * from an atomic counter, so a thread slowed by a busy core does not hold
 * the others up.
 * Within a chunk every group of columns (up to 8 with the VNNI panels of
 * cpu-repack.c, else up to CPU_MM_MAX_COLS) is run against the same weight
 * rows, so in prefill each weight block is loaded once per 4-8 tokens.
 * Decode-sized activations (<= 4 columns) skip phase 0: each thread converts
 * them into a private slice on its first chunk, saving a sync point.
 */
#include <string.h>

#include "cpu-internal.h"

typedef struct mm_shape {
    const llmh_tensor *w, *x;
    llmh_tensor *dst;
    cpu_act_kind act;
    int64_t k, m, n;          /* K, rows M, columns per batch N */
    int64_t b2, b3;           /* batch dims of x / dst */
    size_t col_bytes;         /* bytes per converted column (0 = use x directly) */
    int64_t n_cols_total;     /* n * b2 * b3 */
    const cpu_packed *pk;     /* 16-row panels of w, or NULL */
} mm_shape;

static void mm_shape_get(const llmh_backend *be, const llmh_node *node, mm_shape *s) {
    s->w = node->src[0];
    s->x = node->src[1];
    s->dst = node->dst;
    s->act = be->kern.act[s->w->type];
    s->k = s->w->ne[0];
    s->m = s->w->ne[1];
    s->n = s->x->ne[1];
    s->b2 = s->x->ne[2];
    s->b3 = s->x->ne[3];
    s->n_cols_total = s->n * s->b2 * s->b3;
    s->pk = cpu_packed_for(be, s->w);
    if (s->act == CPU_ACT_F32 && s->x->nb[0] == sizeof(float))
        s->col_bytes = 0;
    else
        s->col_bytes = cpu_act_col_bytes(s->act, s->k);
}

/* Decode-sized activations (a few columns) are converted by every thread
 * into its own slice instead of in a shared phase: a few microseconds of
 * duplicated work saves a synchronization point per matmul. */
static int private_conversion(const mm_shape *s) {
    return s->col_bytes != 0 && s->n_cols_total <= CPU_MM_MAX_COLS;
}

/* Bytes of one thread's private slice: its columns and a gather row. */
static size_t private_bytes(const mm_shape *s) {
    size_t b = (size_t)s->n_cols_total * s->col_bytes + (size_t)s->k * sizeof(float);
    return (b + 63) & ~(size_t)63;
}

size_t cpu_mul_mat_work_size(const llmh_backend *be, const llmh_node *node) {
    mm_shape s;
    mm_shape_get(be, node, &s);
    if (s.col_bytes == 0) return 0;
    if (private_conversion(&s)) return private_bytes(&s) * (size_t)be->n_threads + 64;
    size_t gather = (s.x->nb[0] != sizeof(float)) ? (size_t)s.k * sizeof(float) * (size_t)be->n_threads : 0;
    return (size_t)s.n_cols_total * s.col_bytes + gather + 64;
}

int cpu_mul_mat_phases(const llmh_backend *be, const llmh_node *node) {
    mm_shape s;
    mm_shape_get(be, node, &s);
    return private_conversion(&s) ? 1 : 2;
}

static void convert_column(const llmh_backend *be, const mm_shape *s, uint8_t *cols, float *gather,
                           int64_t c) {
    const llmh_tensor *x = s->x;
    int64_t i1 = c % s->n, i2 = (c / s->n) % s->b2, i3 = c / (s->n * s->b2);
    const uint8_t *src = (const uint8_t *)x->data + (size_t)i1 * x->nb[1] + (size_t)i2 * x->nb[2] +
                         (size_t)i3 * x->nb[3];
    const float *xf = (const float *)src;
    if (x->nb[0] != sizeof(float)) {
        for (int64_t i = 0; i < s->k; i++) memcpy(&gather[i], src + (size_t)i * x->nb[0], sizeof(float));
        xf = gather;
    }
    uint8_t *col = cols + (size_t)c * s->col_bytes;
    switch (s->act) {
    case CPU_ACT_Q8: be->kern.quantize_q8(xf, s->k, col); break;
    case CPU_ACT_Q8K: be->kern.quantize_q8k(xf, s->k, col); break;
    case CPU_ACT_BF16R: {
        float *cf = (float *)col;
        for (int64_t i = 0; i < s->k; i++) cf[i] = llmh_bf16_to_fp32(llmh_fp32_to_bf16(xf[i]));
        break;
    }
    case CPU_ACT_F16R: {
        float *cf = (float *)col;
        for (int64_t i = 0; i < s->k; i++) cf[i] = llmh_fp16_to_fp32(llmh_fp32_to_fp16(xf[i]));
        break;
    }
    default: memcpy(col, xf, (size_t)s->k * sizeof(float)); break;
    }
}

/* Rows per chunk: ~64 KiB of weights (4..256 rows); in decode no fewer rows
 * than give each thread 4 chunks, in prefill no more. Multiple of 4 (16 with
 * packed panels). */
static int64_t chunk_rows(const llmh_backend *be, const mm_shape *s) {
    size_t row_bytes = s->w->nb[1];
    int64_t rows = (int64_t)(65536 / (row_bytes ? row_bytes : 1));
    if (rows < 4) rows = 4;
    if (rows > 256) rows = 256;
    int64_t per = (s->m + (int64_t)be->n_threads * 4 - 1) / ((int64_t)be->n_threads * 4);
    if (s->n <= CPU_MM_MAX_COLS) {
        if (per > rows) rows = per; /* decode: a few big chunks per thread */
    } else if (per < rows) {
        rows = per < 4 ? 4 : per;   /* prefill: enough chunks to balance threads */
    }
    if (s->pk) return (rows + CPU_PANEL - 1) & ~(int64_t)(CPU_PANEL - 1);
    return (rows + 3) & ~(int64_t)3;
}

void cpu_mul_mat_unit_rows(const llmh_backend *be, const llmh_node *node, int64_t unit, int64_t *r0, int64_t *nr) {
    mm_shape s;
    mm_shape_get(be, node, &s);
    int64_t rows = chunk_rows(be, &s), n_chunks = (s.m + rows - 1) / rows, chunk = unit % n_chunks;
    *r0 = chunk * rows;
    *nr = s.m - *r0 < rows ? s.m - *r0 : rows;
}

int64_t cpu_mul_mat_units(const llmh_backend *be, const llmh_node *node, int phase, int64_t *grain) {
    mm_shape s;
    mm_shape_get(be, node, &s);
    if (private_conversion(&s)) phase = 1;
    if (phase == 0) {
        int64_t g = 8192 / s.k;
        *grain = g < 1 ? 1 : g;
        return s.col_bytes ? s.n_cols_total : 0;
    }
    *grain = 1;
    int64_t rows = chunk_rows(be, &s);
    return (s.m + rows - 1) / rows * s.b2 * s.b3;
}

void cpu_mul_mat(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith) {
    llmh_backend *be = ex->be;
    mm_shape s;
    mm_shape_get(be, ex->node, &s);
    uint8_t *cols = be->work + 64;

    if (private_conversion(&s)) {
        /* this thread's slice, converted on its first unit of this node */
        cols = be->work + 64 + private_bytes(&s) * (size_t)ith;
        cpu_conv_mark *mk = &be->conv_mark[ith];
        if (mk->serial != be->graph_serial || mk->node != ex->node) {
            float *gather = (float *)(cols + (size_t)s.n_cols_total * s.col_bytes);
            for (int64_t c = 0; c < s.n_cols_total; c++) convert_column(be, &s, cols, gather, c);
            mk->serial = be->graph_serial;
            mk->node = ex->node;
        }
        phase = 1;
    } else if (phase == 0) {
        float *gather = (float *)(cols + (size_t)s.n_cols_total * s.col_bytes) + (size_t)ith * (size_t)s.k;
        for (int64_t c = u0; c < u1; c++) convert_column(be, &s, cols, gather, c);
        return;
    }

    cpu_mm_fn fn = be->kern.mm[s.w->type];
    const llmh_tensor *w = s.w, *x = s.x;
    llmh_tensor *dst = s.dst;
    size_t row_bytes = w->nb[1];
    int64_t rows = chunk_rows(be, &s);
    int64_t n_chunks = (s.m + rows - 1) / rows;
    int64_t r2 = s.b2 / w->ne[2], r3 = s.b3 / w->ne[3];
    size_t dst_stride = dst->nb[1] / sizeof(float);

    for (int64_t job = u0; job < u1; job++) {
        int64_t chunk = job % n_chunks, b = job / n_chunks;
        int64_t i2 = b % s.b2, i3 = b / s.b2;
        int64_t r0 = chunk * rows, nr = s.m - r0 < rows ? s.m - r0 : rows;
        const uint8_t *wp = (const uint8_t *)w->data + (size_t)(i2 / r2) * w->nb[2] +
                            (size_t)(i3 / r3) * w->nb[3] + (size_t)r0 * row_bytes;
        const uint8_t *ap;
        size_t a_stride;
        if (s.col_bytes) {
            ap = cols + (size_t)((i3 * s.b2 + i2) * s.n) * s.col_bytes;
            a_stride = s.col_bytes;
        } else {
            ap = (const uint8_t *)x->data + (size_t)i2 * x->nb[2] + (size_t)i3 * x->nb[3];
            a_stride = x->nb[1];
        }
        float *dp = (float *)((uint8_t *)dst->data + (size_t)i2 * dst->nb[2] + (size_t)i3 * dst->nb[3]) + r0;
        if (s.pk && r0 < s.pk->n_panels * CPU_PANEL) {
            /* whole panels through the packed kernel, the rest below */
            cpu_mm_packed_fn pf = be->kern.mm_packed[w->type];
            int64_t p0 = r0 / CPU_PANEL, np = nr / CPU_PANEL;
            if (p0 + np > s.pk->n_panels) np = s.pk->n_panels - p0;
            const uint8_t *pp = s.pk->data + (size_t)p0 * (size_t)(s.k / s.pk->block_elems) * s.pk->block_bytes;
            for (int64_t c = 0; c < s.n; c += CPU_PACKED_MAX_COLS) {
                int nc = (int)(s.n - c < CPU_PACKED_MAX_COLS ? s.n - c : CPU_PACKED_MAX_COLS);
                pf(s.k, pp, np, ap + (size_t)c * a_stride, a_stride, nc, dp + (size_t)c * dst_stride, dst_stride);
            }
            r0 += np * CPU_PANEL;
            nr -= np * CPU_PANEL;
            wp += (size_t)(np * CPU_PANEL) * row_bytes;
            dp += np * CPU_PANEL;
            if (nr <= 0) continue;
        }
        for (int64_t c = 0; c < s.n; c += CPU_MM_MAX_COLS) {
            int nc = (int)(s.n - c < CPU_MM_MAX_COLS ? s.n - c : CPU_MM_MAX_COLS);
            fn(s.k, wp, row_bytes, nr, ap + (size_t)c * a_stride, a_stride, nc,
               dp + (size_t)c * dst_stride, dst_stride);
        }
    }
}

/* cpu-lora.c — LLMH_OP_LORA: dst[:, t] += (fp[0] * g[t]) * B (A x[:, t]),
 * the memory fabric's unmerged adapters (contract in llmh-plugin.h).
 *
 * A run of consecutive LORA nodes on the same dst and src1 (the adapters of
 * one projection) executes as one step of the graph:
 * - decode-sized (N <= CPU_LORA_PRIVATE_N columns): a single phase. Each
 *   thread, on its first unit, computes r_i = A_i x for every adapter i of
 *   the run into a private slice (a few microseconds of duplicated work, as
 *   MUL_MAT's private conversion), then units are row chunks of dst: the
 *   rows of every B_i dotted with r_i, scaled and added in node order. k
 *   adapters therefore cost one synchronization point, not 2k.
 * - prefill: phase 0 (units = groups of 4 columns) computes every r_i into
 *   shared scratch, phase 1 (units = row chunks) applies the B_i.
 * - a decode-sized MUL_MAT followed by a run of LORA nodes on its dst and
 *   x (the usual projection W x + adapters): one step for the lot. Its
 *   counter hands out the adapters first, one unit each (with one column,
 *   one group of Q8_0 adapters per thread, read side by side: group_size):
 *   A_i x, then B_i times that over all M rows into the adapter's own
 *   scratch y_i. Then
 *   come the matmul's row chunks; a thread that has multiplied a chunk
 *   waits until every adapter is done (they were all claimed before its
 *   chunk) and adds s_i y_i to its rows in node order, with the kernels'
 *   own rounding. One thread reads an adapter's A and B of the projection
 *   as two long sequential runs, which the hardware prefetcher streams near
 *   full speed; B applied per row chunk read a few KB per adapter at a
 *   time and ran latency-bound, at a third of that. No thread repeats
 *   another's work and the adapters add no synchronization point of their
 *   own.
 * B side: where weight_prepare kept B's transpose (cpu-repack.c), r_j
 * times vectors of output rows; else a short dot product per row. Q8_0
 * adapters (SDK 1.2) come with B transposed already: lora_acc_q8t reads
 * that layout directly (no copy), every active column in one pass, on row
 * ranges aligned to its 32-row blocks; the decode adapter unit reads it
 * through lora_sum_q8t, several rank rows at a time over all of M, where
 * the kernel set has it.
 * Columns whose gate is 0 are skipped (dst untouched). Per element of dst
 * the adapters are added in node order, so a fused run equals the nodes run
 * one after another.
 */
#include <string.h>

#include "cpu-internal.h"

#define CPU_LORA_PRIVATE_N 4
#define CPU_LORA_COLS 4 /* columns per A-side kernel call (CPU_MM_MAX_COLS) */

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Same view: same memory, shape and strides. */
static int same_view(const llmh_tensor *a, const llmh_tensor *b) {
    if (a == b) return 1;
    if (!a || !b || a->data != b->data || a->type != b->type) return 0;
    for (int d = 0; d < LLMH_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d] || a->nb[d] != b->nb[d]) return 0;
    return 1;
}

size_t cpu_lora_run_length(const llmh_node *nodes, size_t n_nodes, size_t i) {
    size_t j = i + 1;
    while (j < n_nodes && nodes[j].op == LLMH_OP_LORA && same_view(nodes[j].dst, nodes[i].dst) &&
           same_view(nodes[j].src[1], nodes[i].src[1]))
        j++;
    return j - i;
}

typedef struct lora_run {
    const llmh_node *nodes;
    size_t n;
    int64_t k, m, cols;       /* K (input width), M (dst rows), N (tokens) */
    int64_t sum_r;            /* total rank of the run */
    int x_strided;            /* src1 ne[0] is not contiguous: columns are gathered */
    int q8;                   /* Q8_0 adapters: row chunks are multiples of 32 */
} lora_run;

static void run_get(const llmh_node *nodes, size_t n, lora_run *r) {
    r->nodes = nodes;
    r->n = n;
    const llmh_tensor *x = nodes[0].src[1], *d = nodes[0].dst;
    r->k = x->ne[0];
    r->m = d->ne[0];
    r->cols = d->ne[1];
    r->sum_r = 0;
    for (size_t i = 0; i < n; i++) r->sum_r += nodes[i].src[0]->ne[1];
    r->x_strided = x->nb[0] != sizeof(float);
    r->q8 = nodes[0].src[0]->type == LLMH_DTYPE_Q8_0;
}

static int private_r(const lora_run *r) { return r->cols <= CPU_LORA_PRIVATE_N; }

/* Scratch: r values [cols][sum_r] (per thread when private), and a gather
 * area of CPU_LORA_COLS columns of K floats per thread when x is strided. */
static size_t r_bytes(const lora_run *r) { return align64((size_t)r->sum_r * (size_t)r->cols * sizeof(float)); }
static size_t gather_bytes(const lora_run *r) {
    return r->x_strided ? align64((size_t)r->k * CPU_LORA_COLS * sizeof(float)) : 0;
}

size_t cpu_lora_work_size(const llmh_backend *be, const llmh_node *nodes, size_t n) {
    lora_run r;
    run_get(nodes, n, &r);
    size_t nth = (size_t)be->n_threads;
    if (private_r(&r)) return (r_bytes(&r) + gather_bytes(&r)) * nth + 64;
    return r_bytes(&r) + gather_bytes(&r) * nth + 64;
}

int cpu_lora_phases(const llmh_backend *be, const llmh_node *nodes, size_t n) {
    (void)be;
    lora_run r;
    run_get(nodes, n, &r);
    return private_r(&r) ? 1 : 2;
}

/* Rows of dst per unit: ~4 chunks per thread, at least 8, a multiple of 8
 * (of 32 for Q8_0, whose B blocks span 32 rows). */
static int64_t chunk_rows(const llmh_backend *be, const lora_run *r) {
    int64_t per = (r->m + (int64_t)be->n_threads * 4 - 1) / ((int64_t)be->n_threads * 4), g = r->q8 ? 32 : 8;
    if (per < g) per = g;
    return (per + g - 1) & ~(g - 1);
}

int64_t cpu_lora_units(const llmh_backend *be, const llmh_node *nodes, size_t n, int phase, int64_t *grain) {
    lora_run r;
    run_get(nodes, n, &r);
    *grain = 1;
    if (!private_r(&r) && phase == 0) return (r.cols + CPU_LORA_COLS - 1) / CPU_LORA_COLS;
    int64_t rows = chunk_rows(be, &r);
    return (r.m + rows - 1) / rows;
}

static float gate_at(const llmh_node *nd, int64_t t) {
    const llmh_tensor *g = nd->src[3];
    if (!g) return 1.0f;
    float v;
    memcpy(&v, (const uint8_t *)g->data + (size_t)t * g->nb[0], sizeof v);
    return v;
}

/* r[t * sum_r + off_i + j] = dot(A_i row j, x[:, t]) for columns
 * t in [c0, c0 + nc), nc <= CPU_LORA_COLS. Adapters whose gates are all 0
 * on these columns are skipped (their r is never read). */
static void compute_r(const llmh_backend *be, const lora_run *r, int64_t c0, int nc, float *rbuf,
                      float *gather) {
    const llmh_tensor *x = r->nodes[0].src[1];
    const uint8_t *xp;
    size_t xs;
    if (r->x_strided) {
        for (int c = 0; c < nc; c++) {
            const uint8_t *col = (const uint8_t *)x->data + (size_t)(c0 + c) * x->nb[1];
            float *gc = gather + (size_t)c * (size_t)r->k;
            for (int64_t i = 0; i < r->k; i++) memcpy(&gc[i], col + (size_t)i * x->nb[0], sizeof(float));
        }
        xp = (const uint8_t *)gather;
        xs = (size_t)r->k * sizeof(float);
    } else {
        xp = (const uint8_t *)x->data + (size_t)c0 * x->nb[1];
        xs = x->nb[1];
    }
    int64_t off = 0;
    for (size_t i = 0; i < r->n; i++) {
        const llmh_node *nd = &r->nodes[i];
        const llmh_tensor *A = nd->src[0];
        int any = 0;
        for (int c = 0; c < nc && !any; c++) any = gate_at(nd, c0 + c) != 0.0f;
        if (any)
            be->kern.lora_a[A->type](r->k, (const uint8_t *)A->data, A->nb[1], A->ne[1], xp, xs, nc,
                                     rbuf + (size_t)c0 * (size_t)r->sum_r + (size_t)off, (size_t)r->sum_r);
        off += A->ne[1];
    }
}

/* Q8_0's B side for nc columns: B is [M, R], rank rows of M values */
static void q8t(const llmh_backend *be, const llmh_tensor *B, int64_t r0, int64_t nr, int nc, const float *const *x,
                const float *s, float *const *dst) {
    be->kern.lora_acc_q8t(B->ne[1], (const uint8_t *)B->data, B->nb[1], r0, nr, nc, x, s, dst);
}

/* dst rows [r0, r0 + nr) of every column: += c_it * B_i r_i, in node order
 * per element. Adapter by adapter; with a transposed B, its active columns
 * go 4 at a time through lora_acc_t4 (or lora_acc_q8t) where the kernel set
 * has it. */
static void apply_b(const llmh_backend *be, const lora_run *r, int64_t r0, int64_t nr, const float *rbuf) {
    llmh_tensor *d = r->nodes[0].dst;
    int64_t off = 0;
    for (size_t i = 0; i < r->n; i++) {
        const llmh_node *nd = &r->nodes[i];
        const llmh_tensor *A = nd->src[0], *B = nd->src[2];
        int q8 = B->type == LLMH_DTYPE_Q8_0;
        const cpu_packed *bt = q8 ? NULL : cpu_transposed_for(be, B);
        cpu_lora_acc_t4_fn t4 = bt ? be->kern.lora_acc_t4[B->type] : NULL;
        const float *x4[4];
        float s4[4], *d4[4];
        int n4 = 0;
        for (int64_t t = 0; t < r->cols; t++) {
            float g = gate_at(nd, t);
            if (g == 0.0f) continue;
            float *dp = (float *)((uint8_t *)d->data + (size_t)t * d->nb[1]) + r0;
            const float *rt = rbuf + (size_t)t * (size_t)r->sum_r + (size_t)off;
            if (t4 || q8) {
                x4[n4] = rt;
                s4[n4] = nd->fp[0] * g;
                d4[n4++] = dp;
                if (n4 == 4) {
                    if (q8) q8t(be, B, r0, nr, n4, x4, s4, d4);
                    else t4(B->ne[0], bt->data, r0, nr, n4, x4, s4, d4);
                    n4 = 0;
                }
            } else if (bt) {
                be->kern.lora_acc_t[B->type](B->ne[0], bt->data, r0, nr, rt, nd->fp[0] * g, dp);
            } else {
                be->kern.lora_acc[B->type](B->ne[0], (const uint8_t *)B->data + (size_t)r0 * B->nb[1], B->nb[1], nr, rt,
                                           nd->fp[0] * g, dp);
            }
        }
        if (n4 && q8) q8t(be, B, r0, nr, n4, x4, s4, d4);
        else if (n4) t4(B->ne[0], bt->data, r0, nr, n4, x4, s4, d4);
        off += A->ne[1];
    }
}

void cpu_lora(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith) {
    llmh_backend *be = ex->be;
    lora_run r;
    run_get(ex->node, ex->n_nodes ? ex->n_nodes : 1, &r);
    float *rbuf;
    if (private_r(&r)) {
        /* this thread's r for every adapter, computed on its first unit */
        uint8_t *slice = be->work + 64 + (r_bytes(&r) + gather_bytes(&r)) * (size_t)ith;
        rbuf = (float *)slice;
        cpu_conv_mark *mk = &be->conv_mark[ith];
        if (mk->serial != be->graph_serial || mk->node != ex->node) {
            compute_r(be, &r, 0, (int)r.cols, rbuf, (float *)(slice + r_bytes(&r)));
            mk->serial = be->graph_serial;
            mk->node = ex->node;
        }
    } else {
        rbuf = (float *)(be->work + 64);
        if (phase == 0) {
            float *gather = (float *)(be->work + 64 + r_bytes(&r) + gather_bytes(&r) * (size_t)ith);
            for (int64_t u = u0; u < u1; u++) {
                int64_t c0 = u * CPU_LORA_COLS;
                int nc = (int)(r.cols - c0 < CPU_LORA_COLS ? r.cols - c0 : CPU_LORA_COLS);
                compute_r(be, &r, c0, nc, rbuf, gather);
            }
            return;
        }
    }
    int64_t rows = chunk_rows(be, &r);
    for (int64_t u = u0; u < u1; u++) {
        int64_t r0 = u * rows, nr = r.m - r0 < rows ? r.m - r0 : rows;
        apply_b(be, &r, r0, nr, rbuf);
    }
}

/* ------------------------------------------------------------------------ */
/* MUL_MAT + its LORA run                                                     */
/* ------------------------------------------------------------------------ */
size_t cpu_mm_lora_length(const llmh_backend *be, const llmh_node *nodes, size_t n_nodes, size_t i) {
    const llmh_node *mm = &nodes[i];
    if (mm->op != LLMH_OP_MUL_MAT || i + 1 >= n_nodes || nodes[i + 1].op != LLMH_OP_LORA) return 0;
    const llmh_node *lo = &nodes[i + 1];
    if (!same_view(lo->dst, mm->dst) || !same_view(lo->src[1], mm->src[1])) return 0;
    if (cpu_mul_mat_phases(be, mm) != 1 || mm->dst->ne[2] * mm->dst->ne[3] != 1) return 0;
    size_t len = cpu_lora_run_length(nodes, n_nodes, i + 1);
    lora_run r;
    run_get(lo, len, &r);
    return private_r(&r) ? 1 + len : 0;
}

static size_t mm_part(const llmh_backend *be, const llmh_node *mm) {
    return align64(cpu_mul_mat_work_size(be, mm));
}

/* Each adapter's B r for every column: [n][cols][m] floats. */
static size_t y_bytes(const lora_run *r) {
    return align64((size_t)r->n * (size_t)r->cols * (size_t)r->m * sizeof(float));
}

size_t cpu_mm_lora_work_size(const llmh_backend *be, const llmh_node *nodes, size_t n) {
    lora_run r;
    run_get(nodes + 1, n - 1, &r);
    return mm_part(be, nodes) + r_bytes(&r) + y_bytes(&r) + gather_bytes(&r) * (size_t)be->n_threads + 64;
}

/* Adapters per unit: with one column and the group kernels, the
 * projection's adapters are shared out so that each thread starts on one
 * group (at most CPU_LORA_GROUP), whose adapters it reads side by side:
 * more memory streams in flight (cpu_lora_sum_q8t_fn). Else one. With 4
 * rank-16 adapters on the Qwen2.5-0.5B shape and 2 threads, decode steps
 * took 2.8-3.6% less time with groups of 2 than with single adapters, and
 * 2.3-2.9% less than with one group of 4 (one thread reading every
 * adapter while the other multiplied): graphs alternated in one process. */
static int group_size(const llmh_backend *be, const lora_run *r) {
    if (r->cols != 1 || r->x_strided || !be->kern.lora_a_q8_group || !be->kern.lora_sum_q8t) return 1;
    int64_t g = ((int64_t)r->n + be->n_threads - 1) / be->n_threads;
    return g < CPU_LORA_GROUP ? (int)g : CPU_LORA_GROUP;
}

static int64_t n_groups(const llmh_backend *be, const lora_run *r) {
    int64_t g = group_size(be, r);
    return ((int64_t)r->n + g - 1) / g;
}

int64_t cpu_mm_lora_units(const llmh_backend *be, const llmh_node *nodes, size_t n, int phase, int64_t *grain) {
    (void)phase;
    int64_t g;
    *grain = 1;
    lora_run r;
    run_get(nodes + 1, n - 1, &r);
    return n_groups(be, &r) + cpu_mul_mat_units(be, nodes, 1, &g); /* adapters first, then row chunks */
}

/* Adapter u whole: r_u = A_u x, then y_u[t] = B_u r_u[t] over all M rows,
 * for each column whose gate is not 0. The B kernels run with scale 1 on a
 * zeroed y (so y is the exact sum); add_y then applies fma(s g, y, dst),
 * the very rounding the kernels apply when they add to dst themselves. */
static void adapter_unit(const llmh_backend *be, const lora_run *r, size_t u, float *rbuf, float *ybuf,
                         float *gather) {
    int64_t off = 0; /* u's first row in the run's r */
    for (size_t i = 0; i < u; i++) off += r->nodes[i].src[0]->ne[1];
    /* r_u = A_u x for every column; compute_r writes at t * sum_r + (the
     * offset within a one-adapter run), so the base is shifted by off */
    lora_run one = *r;
    one.nodes = &r->nodes[u];
    one.n = 1;
    compute_r(be, &one, 0, (int)r->cols, rbuf + off, gather);
    const llmh_node *nd = &r->nodes[u];
    const llmh_tensor *B = nd->src[2];
    int q8 = B->type == LLMH_DTYPE_Q8_0;
    const cpu_packed *bt = q8 ? NULL : cpu_transposed_for(be, B);
    /* Q8_0: every active column in one pass over B (cols <= CPU_LORA_PRIVATE_N) */
    _Static_assert(CPU_LORA_PRIVATE_N == 4, "ones[] below has CPU_LORA_PRIVATE_N entries");
    _Static_assert(CPU_LORA_PRIVATE_N <= CPU_LORA_GROUP, "lora_sum_q8t takes every column at once");
    const float *xq[CPU_LORA_PRIVATE_N], ones[CPU_LORA_PRIVATE_N] = {1.0f, 1.0f, 1.0f, 1.0f};
    float *yq[CPU_LORA_PRIVATE_N];
    int nq = 0;
    for (int64_t t = 0; t < r->cols; t++) {
        if (gate_at(nd, t) == 0.0f) continue;
        float *y = ybuf + ((size_t)u * (size_t)r->cols + (size_t)t) * (size_t)r->m;
        const float *rt = rbuf + (size_t)t * (size_t)r->sum_r + (size_t)off;
        if (q8) { /* lora_sum_q8t writes y; the fallback adds into it */
            xq[nq] = rt;
            yq[nq++] = y;
            if (!be->kern.lora_sum_q8t) memset(y, 0, (size_t)r->m * sizeof(float));
            continue;
        }
        memset(y, 0, (size_t)r->m * sizeof(float));
        if (bt)
            be->kern.lora_acc_t[B->type](B->ne[0], bt->data, 0, r->m, rt, 1.0f, y);
        else
            be->kern.lora_acc[B->type](B->ne[0], (const uint8_t *)B->data, B->nb[1], r->m, rt, 1.0f, y);
    }
    if (nq && be->kern.lora_sum_q8t) {
        const uint8_t *bq[CPU_LORA_PRIVATE_N];
        for (int i = 0; i < nq; i++) bq[i] = (const uint8_t *)B->data;
        be->kern.lora_sum_q8t(B->ne[1], bq, B->nb[1], r->m, nq, xq, yq);
    } else if (nq) {
        q8t(be, B, 0, r->m, nq, xq, ones, yq);
    }
}

/* Adapters [u0, u1) of a one-column run (group_size): the Q8_0 ones with a
 * gate other than 0 through the group kernels, those of equal rank and
 * row strides together (one projection's adapters share K and M), the
 * others through adapter_unit. Per adapter the arithmetic is
 * adapter_unit's. */
static void group_unit(const llmh_backend *be, const lora_run *r, size_t u0, size_t u1, float *rbuf, float *ybuf,
                       float *gather) {
    const uint8_t *a[CPU_LORA_GROUP], *bt[CPU_LORA_GROUP];
    const float *xs[CPU_LORA_GROUP];
    float *rd[CPU_LORA_GROUP], *ys[CPU_LORA_GROUP];
    const float *x = (const float *)r->nodes[0].src[1]->data;
    int64_t off = 0;
    for (size_t i = 0; i < u0; i++) off += r->nodes[i].src[0]->ne[1];
    size_t u = u0;
    while (u < u1) {
        const llmh_tensor *A = r->nodes[u].src[0], *B = r->nodes[u].src[2];
        int64_t rank = A->ne[1];
        int n = 0;
        for (; u < u1; u++) {
            const llmh_node *nd = &r->nodes[u];
            const llmh_tensor *Au = nd->src[0], *Bu = nd->src[2];
            if (Au->type != LLMH_DTYPE_Q8_0 || Au->ne[1] != rank || Au->nb[1] != A->nb[1] || Bu->nb[1] != B->nb[1] ||
                gate_at(nd, 0) == 0.0f)
                break;
            a[n] = (const uint8_t *)Au->data;
            bt[n] = (const uint8_t *)Bu->data;
            xs[n] = x;
            rd[n] = rbuf + off;
            ys[n++] = ybuf + u * (size_t)r->m;
            off += rank;
        }
        if (n) {
            be->kern.lora_a_q8_group(r->k, a, A->nb[1], rank, n, xs, rd);
            be->kern.lora_sum_q8t(rank, bt, B->nb[1], r->m, n, (const float *const *)rd, ys);
            continue;
        }
        adapter_unit(be, r, u, rbuf, ybuf, gather);
        off += rank;
        u++;
    }
}

/* dst rows [r0, r0 + nr) += (s_u g_u) y_u of every adapter, in node order,
 * in one pass over dst per column (up to 8 adapters per pass). */
static void add_y(const llmh_backend *be, const lora_run *r, int64_t r0, int64_t nr, const float *ybuf) {
    llmh_tensor *d = r->nodes[0].dst;
    for (int64_t t = 0; t < r->cols; t++) {
        float *dp = (float *)((uint8_t *)d->data + (size_t)t * d->nb[1]) + r0;
        const float *ys[8];
        float ss[8];
        int n = 0;
        for (size_t u = 0; u < r->n; u++) {
            float g = gate_at(&r->nodes[u], t);
            if (g == 0.0f) continue;
            ys[n] = ybuf + (u * (size_t)r->cols + (size_t)t) * (size_t)r->m + r0;
            ss[n++] = r->nodes[u].fp[0] * g;
            if (n == 8) {
                be->kern.lora_add(dp, ys, ss, n, nr);
                n = 0;
            }
        }
        if (n) be->kern.lora_add(dp, ys, ss, n, nr);
    }
}

void cpu_mm_lora(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith) {
    llmh_backend *be = ex->be;
    size_t n_ad = ex->n_nodes - 1;
    (void)phase;
    lora_run r;
    run_get(ex->node + 1, n_ad, &r);
    float *rbuf = (float *)(be->work + 64 + mm_part(be, ex->node));
    float *ybuf = (float *)((uint8_t *)rbuf + r_bytes(&r));
    float *gather = (float *)((uint8_t *)ybuf + y_bytes(&r) + gather_bytes(&r) * (size_t)ith);
    int64_t gs = group_size(be, &r), n_grp = n_groups(be, &r);
    for (int64_t u = u0; u < u1; u++) {
        if (u < n_grp) {
            size_t a0 = (size_t)(u * gs), a1 = a0 + (size_t)gs < n_ad ? a0 + (size_t)gs : n_ad;
            if (gs == 1) adapter_unit(be, &r, a0, rbuf, ybuf, gather);
            else group_unit(be, &r, a0, a1, rbuf, ybuf, gather);
            atomic_fetch_add(ex->aux, (long long)(a1 - a0));
            continue;
        }
        int64_t mu = u - n_grp, r0, nr;
        cpu_exec mx = {be, ex->node, 1, NULL};
        cpu_mul_mat(&mx, 1, mu, mu + 1, ith);
        /* the adapters were handed out before any row chunk, so they are
         * claimed; usually finished by now */
        int spins = 0;
        while (atomic_load(ex->aux) < (long long)n_ad) cpu_pool_yield_wait(&spins);
        cpu_mul_mat_unit_rows(be, ex->node, mu, &r0, &nr);
        add_y(be, &r, r0, nr, ybuf);
    }
}

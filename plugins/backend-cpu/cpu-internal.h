/* cpu-internal.h — declarations shared by the CPU backend's source files.
 *
 * Data flow: cpu-backend.c (plugin entry, devices, buffers, graph) hands each
 * node to cpu-ops.c (elementwise, norm, rope, attention, ...) or
 * cpu-matmul.c (activation quantization + tiled matmul driver), which call
 * the kernels selected at create time from cpu-kernels-{scalar,avx2,avx512}.c.
 * Each op's work is cut into units claimed dynamically by the pool threads
 * (cpu-threadpool.c), so a descheduled thread never stalls the others.
 */
#ifndef LLMH_CPU_INTERNAL_H
#define LLMH_CPU_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "llmh-plugin.h"

#define CPU_PLUGIN_NAME "cpu"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

/* ------------------------------------------------------------------------ */
/* CPU features (cpu-features.c)                                              */
/* ------------------------------------------------------------------------ */
typedef struct cpu_features {
    int avx, avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avxvnni;
    char model[64];
} cpu_features;

void cpu_features_detect(cpu_features *f);
/* Space-separated feature list ("avx2 fma f16c avx512f ..."). */
void cpu_features_string(const cpu_features *f, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Thread pool (cpu-threadpool.c)                                             */
/* ------------------------------------------------------------------------ */
typedef struct cpu_pool cpu_pool;

/* The work every thread runs once per dispatch. */
typedef void (*cpu_task_fn)(void *arg, int ith, int nth);

/* Create `n_threads` - 1 workers (the caller is thread 0). NULL on failure. */
cpu_pool *cpu_pool_create(int n_threads);
void cpu_pool_free(cpu_pool *p);
int cpu_pool_size(const cpu_pool *p);
/* Run fn(arg, 0, nth) on the caller and fn(arg, ith, nth) on each worker
 * that wakes in time; returns when the caller's call has returned and every
 * worker that joined has left. fn must therefore share work dynamically
 * (atomic counters), never wait for a given thread to arrive. */
void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *arg);
/* One step of a spin-then-yield wait loop (*spins starts at 0). */
void cpu_pool_yield_wait(int *spins);

/* ------------------------------------------------------------------------ */
/* Quantized activation layouts (internal, not GGUF)                          */
/* ------------------------------------------------------------------------ */
/* One activation column of K values is stored structure-of-arrays:
 *   ACT_Q8:  int8 qs[K] | float d[K/32] | int32 sum[K/32]  (sum = Σ qs of the block)
 *   ACT_Q8K: int8 qs[K] | float d[K/256] | int16 bsums[K/16]
 *   ACT_F32: float x[K]
 * so weight blocks of 32 (Q4_0..Q8_0) or 256 (K-quants) dot against integer
 * activations and the block offsets/mins are applied with the sums. */
/*   ACT_BF16R / ACT_F16R: float x[K] rounded through bf16 / f16, the dot
 *   types of BF16 / F16 weights in the SDK's normative precision (llama.cpp
 *   multiplies bf16 x bf16 and f16 x f16); the f32 kernels then apply. */
typedef enum cpu_act_kind {
    CPU_ACT_F32 = 0,
    CPU_ACT_Q8 = 1,
    CPU_ACT_Q8K = 2,
    CPU_ACT_BF16R = 3,
    CPU_ACT_F16R = 4
} cpu_act_kind;

/* Byte size of one quantized column (64-byte multiple). */
size_t cpu_act_col_bytes(cpu_act_kind kind, int64_t k);

static inline const float *cpu_act_q8_d(const uint8_t *col, int64_t k) {
    return (const float *)(col + k);
}
static inline const int32_t *cpu_act_q8_sum(const uint8_t *col, int64_t k) {
    return (const int32_t *)(col + k + (size_t)(k / 32) * 4);
}
static inline const float *cpu_act_q8k_d(const uint8_t *col, int64_t k) {
    return (const float *)(col + k);
}
static inline const int16_t *cpu_act_q8k_bsums(const uint8_t *col, int64_t k) {
    return (const int16_t *)(col + k + (size_t)(k / 256) * 4);
}

/* Quantize one f32 column (contiguous) into the layout above. */
void cpu_act_quantize_q8(const float *x, int64_t k, uint8_t *col);
void cpu_act_quantize_q8k(const float *x, int64_t k, uint8_t *col);
/* Portable attention helpers. */
float cpu_dot_f32(const float *x, const float *y, int64_t n);
void cpu_axpy_f32(float *y, float a, const float *x, int64_t n);
void cpu_exp_row(const float *x, float *y, int64_t n);
/* Portable f16 row conversion. */
void cpu_f16_to_f32_row(const uint8_t *src, float *dst, int64_t n);
/* Portable SiLU / SwiGLU row. */
void cpu_silu_row(const float *x, const float *g, float *y, int64_t n);

/* ------------------------------------------------------------------------ */
/* Matmul kernels                                                             */
/* ------------------------------------------------------------------------ */
/* Compute dst[c * dst_stride + r] = dot(weight row r, activation column c)
 * for r in [0, n_rows) and c in [0, n_cols), n_cols <= CPU_MM_MAX_COLS.
 * `w` points at row 0 (rows are w_stride bytes apart, each k elements of the
 * weight type); `a` at column 0 (columns a_stride bytes apart, in the
 * activation layout of the type). k is a multiple of the type's block size. */
#define CPU_MM_MAX_COLS 4
typedef void (*cpu_mm_fn)(int64_t k, const uint8_t *w, size_t w_stride, int64_t n_rows,
                          const uint8_t *a, size_t a_stride, int n_cols, float *dst,
                          size_t dst_stride);

/* Repacked weights (cpu-repack.c): rows in panels of 16, so one VNNI
 * instruction multiplies 4 K-elements of 16 rows by one broadcast group of 4
 * activation bytes. Per 32-element block and panel:
 *   Q8_0: f16 d[16] | [8 groups][16 rows][4 bytes] (w + 128, as u8)  = 544 B
 *   Q4_0: f16 d[16] | [4 groups][16 rows][4 bytes] (the qs bytes j..j+3:
 *         low nibbles = elements j.., high nibbles = elements 16 + j..) = 288 B
 *   Q5_0: f16 d[16] | hb[4 groups][16 rows] (bit i: high bit of element
 *         4g+i, bit 4+i: of element 16+4g+i) | qs groups as Q4_0       = 352 B
 * and per 256-element super-block and panel:
 *   Q4_K: f16 d[16] | f16 dmin[16] | u8 sc[8][16] | u8 min[8][16] |
 *         qs [4 pairs][8 groups][16 rows][4 bytes] (the row's 32-byte qs run
 *         of sub-blocks 2p / 2p+1, 4 bytes per group)                 = 2368 B
 *   Q6_K: f16 d[16] | i8 sc[16][16] | per 128-half h and group g (0..7):
 *         [ql h,4g..][ql h,32+4g..][qh h,4g..] as [16 rows][4 bytes] each = 3360 B
 * (the same bytes per row as GGUF). Rows past the last whole panel use the
 * plain kernels on the original data. */
#define CPU_PANEL 16
#define CPU_PACKED_MAX_COLS 8
/* A huge-page arena chunk for small prepared copies (LoRA B transposes):
 * bump-allocated, freed when its last copy is released. */
typedef struct cpu_chunk {
    uint8_t *base;
    size_t size, used;
    int live;
    struct cpu_chunk *next;
} cpu_chunk;

typedef struct cpu_packed {
    const void *src;      /* the tensor data this was made from */
    llmh_dtype type;
    int64_t k, m;         /* shape of the source */
    size_t nb1;
    int64_t n_panels;     /* m / 16 */
    int64_t block_elems;  /* 32, or 256 for K-quants */
    size_t block_bytes;   /* bytes per block per panel */
    uint8_t *data;        /* n_panels * (k/block_elems) * block_bytes, 64-byte aligned;
                             NULL while pending */
    int pending;          /* recorded at load, packed by the first graph using it */
    int advise;           /* the source is wrapped host memory (mapped file): page it out */
    struct cpu_chunk *chunk; /* arena chunk holding data (transposed copies), or NULL */
    int transposed;       /* a LoRA B shape (k <= 64, m >= 16 k, float type): data is the
                             transpose in blocks of CPU_LORA_BT rows (cpu_lora_acc_t_fn) */
} cpu_packed;

/* dst[c * dst_stride + r] for r in [0, 16 * n_panels), c < n_cols (<= 8);
 * `p` points at the first panel. */
typedef void (*cpu_mm_packed_fn)(int64_t k, const uint8_t *p, int64_t n_panels, const uint8_t *a,
                                 size_t a_stride, int n_cols, float *dst, size_t dst_stride);

/* LORA's B side (cpu-lora.c): dst[i] += s * dot(row i of w, r) for
 * i < n_rows; rows of k elements of the adapter type (F32, F16 or BF16)
 * w_stride bytes apart, widened exactly to f32; products and sums in f32,
 * then dst[i] = fma(s, sum, dst[i]) (one rounding, written as an explicit
 * FMA in every kernel set, so that cpu-lora.c can compute the sums with
 * s = 1 into zeroed scratch and apply them later through lora_add with the
 * same result). The transposed kernel below keeps the same rule. */
typedef void (*cpu_lora_acc_fn)(int64_t k, const uint8_t *w, size_t w_stride, int64_t n_rows,
                                const float *r, float s, float *dst);

/* LORA's B side on a transposed B (cpu_packed.transposed), stored in
 * blocks of CPU_LORA_BT rows: element (j, i) of B^T (B[i][j]) at index
 * (i / CPU_LORA_BT) * k * CPU_LORA_BT + j * CPU_LORA_BT + i % CPU_LORA_BT, so
 * one block is one contiguous run of k * CPU_LORA_BT values (the last block
 * zero-padded). dst[i - r0] += s * sum_j B[i][j] r[j] for i in [r0, r0 + n_rows). */
#define CPU_LORA_BT 64
typedef void (*cpu_lora_acc_t_fn)(int64_t k, const uint8_t *bt, int64_t r0, int64_t n_rows, const float *r,
                                  float s, float *dst);

/* The same for nc <= 4 token columns at once: column c adds s[c] times B
 * x[c] to dst[c][0 .. n_rows), each exactly as cpu_lora_acc_t_fn would
 * (NULL: call that per column). */
typedef void (*cpu_lora_acc_t4_fn)(int64_t k, const uint8_t *bt, int64_t r0, int64_t n_rows, int nc,
                                   const float *const *x, const float *s, float *const *dst);

/* LORA's B side for Q8_0 adapters, whose B comes transposed (SDK 1.2):
 * bt holds rank rows of M Q8_0 values, bt_stride bytes apart (row j is
 * column j of B). For nc <= 4 token columns and i in [r0, r0 + n_rows)
 * (r0 and n_rows multiples of 32): dst[c][i - r0] = fma(s[c], sum_j
 * q[j][i] * (d[j][i / 32] * x[c][j]), dst[c][i - r0]), the sum over j in
 * order from 0 in f32 (d folded into x[c][j], as the SDK allows). One pass
 * over bt serves every column. */
typedef void (*cpu_lora_acc_q8t_fn)(int64_t rank, const uint8_t *bt, size_t bt_stride, int64_t r0, int64_t n_rows,
                                    int nc, const float *const *x, const float *s, float *const *dst);

/* The same sums for n (B, x, y) triples at once, each over a whole
 * transposed Q8_0 B (rows [0, m)), one token column per triple; every B
 * has the same rank, m and stride (the adapters of one projection, or one
 * adapter's columns: bt[i] may repeat). y[i][0 .. m) = exactly
 * lora_acc_q8t's sums for bt[i] and x[i] before its final fma with s.
 * n <= CPU_LORA_GROUP. Optional (NULL: lora_acc_q8t with s = 1 into a
 * zeroed y, triple by triple). Reading several B together keeps several
 * memory streams in flight: a single-core microbenchmark read 16 KB runs
 * at 14 GB/s one after another and at 25 GB/s four at a time (32 KB: 20
 * and 31; 96 KB: 28 and 35-39). */
typedef void (*cpu_lora_sum_q8t_fn)(int64_t rank, const uint8_t *const *bt, size_t bt_stride, int64_t m, int n,
                                    const float *const *x, float *const *y);

/* The A side of n Q8_0 adapters of one projection at once (the same K,
 * rank and row stride), one token column each: r[i][j] = dot(row j of
 * a[i], x[i]) for j < n_rows, exactly as lora_a[Q8_0] computes it with one
 * column. n <= CPU_LORA_GROUP. Optional (NULL: lora_a[Q8_0] per adapter). */
typedef void (*cpu_lora_a_q8_group_fn)(int64_t k, const uint8_t *const *a, size_t a_stride, int64_t n_rows, int n,
                                       const float *const *x, float *const *r);
#define CPU_LORA_GROUP 4

/* The group kernels' drivers, the same in every SIMD kernel file, which
 * defines lora_sum_q8t_g (rank rows [j0, j0 + G) of n transposed B over
 * all m; j0 = 0 writes y, later calls add to it) and lora_a_q8_group_n,
 * both always inline so that G and n are constants, and expands this once:
 * lora_sum_q8t (8 rank rows per sweep, then 4, then 1) and
 * lora_a_q8_group, one instance per n. */
#define CPU_LORA_GROUP_DRIVERS                                                                               \
    static void lora_sum_q8t(int64_t rank, const uint8_t *const *bt, size_t bs, int64_t m, int n,           \
                             const float *const *x, float *const *y) {                                      \
        _Static_assert(CPU_LORA_GROUP == 4, "one case per group size");                                     \
        int64_t j = 0;                                                                                       \
        for (; j + 8 <= rank; j += 8) CPU_LORA_GROUP_CASES(n, lora_sum_q8t_g(bt, bs, j, m, 8, N_, x, y));   \
        if (j + 4 <= rank) {                                                                                 \
            CPU_LORA_GROUP_CASES(n, lora_sum_q8t_g(bt, bs, j, m, 4, N_, x, y));                             \
            j += 4;                                                                                          \
        }                                                                                                    \
        for (; j < rank; j++) CPU_LORA_GROUP_CASES(n, lora_sum_q8t_g(bt, bs, j, m, 1, N_, x, y));           \
    }                                                                                                        \
    static void lora_a_q8_group(int64_t k, const uint8_t *const *w, size_t ws, int64_t nr, int n,           \
                                const float *const *x, float *const *dst) {                                 \
        CPU_LORA_GROUP_CASES(n, lora_a_q8_group_n(k, w, ws, nr, N_, x, dst));                               \
    }
#define CPU_LORA_GROUP_CASES(n, CALL)                                                                        \
    do {                                                                                                     \
        switch (n) {                                                                                         \
        case 1: { enum { N_ = 1 }; CALL; } break;                                                            \
        case 2: { enum { N_ = 2 }; CALL; } break;                                                            \
        case 3: { enum { N_ = 3 }; CALL; } break;                                                            \
        default: { enum { N_ = 4 }; CALL; } break;                                                           \
        }                                                                                                    \
    } while (0)

typedef struct cpu_kernels {
    const char *name;                      /* "scalar", "avx2", "avx512" */
    /* LORA: the A side (r = A x, F32 activations, no dot-type rounding; the
     * cpu_mm_fn contract with plain f32 columns) and the B side */
    cpu_mm_fn lora_a[LLMH_DTYPE_COUNT];
    cpu_lora_acc_fn lora_acc[LLMH_DTYPE_COUNT];
    cpu_lora_acc_t_fn lora_acc_t[LLMH_DTYPE_COUNT];
    cpu_lora_acc_t4_fn lora_acc_t4[LLMH_DTYPE_COUNT];
    /* Q8_0 adapters: lora_a[Q8_0] takes f32 columns like the float types
     * (d times each block's partial sum), and the B side is this */
    cpu_lora_acc_q8t_fn lora_acc_q8t;
    cpu_lora_sum_q8t_fn lora_sum_q8t;
    cpu_lora_a_q8_group_fn lora_a_q8_group;
    cpu_mm_packed_fn mm_packed[LLMH_DTYPE_COUNT]; /* NULL = no repacking for the type */
    cpu_mm_fn mm[LLMH_DTYPE_COUNT];        /* NULL = type not supported */
    cpu_act_kind act[LLMH_DTYPE_COUNT];    /* activation layout per weight type */
    /* ATTENTION helpers: dot product, y += a * x, y = exp(x) (y may be x). */
    float (*dot)(const float *x, const float *y, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n);
    /* d[i] = fma(s[k], y[k][i], d[i]) for k = 0 .. n_y - 1 in order
     * (cpu-lora.c: adapter sums added to dst; one pass over d) */
    void (*lora_add)(float *d, const float *const *y, const float *s, int n_y, int64_t n);
    void (*exp_row)(const float *x, float *y, int64_t n);
    /* n contiguous f16 values to f32 (KV-cache rows in ATTENTION). */
    void (*f16_to_f32)(const uint8_t *src, float *dst, int64_t n);
    /* y[i] = silu(x[i]) * (g ? g[i] : 1) over contiguous rows; y may be x. */
    void (*silu_row)(const float *x, const float *g, float *y, int64_t n);
    /* Optional faster activation quantizers (NULL = portable ones). */
    void (*quantize_q8)(const float *x, int64_t k, uint8_t *col);
    void (*quantize_q8k)(const float *x, int64_t k, uint8_t *col);
} cpu_kernels;

void cpu_kernels_init_scalar(cpu_kernels *k);
#if CPU_X86
/* Fill in the AVX2+FMA+F16C kernels over an already initialized table. */
void cpu_kernels_init_avx2(cpu_kernels *k);
/* Fill in AVX-512 (F, BW, VL, VNNI) kernels over an AVX2 table. */
void cpu_kernels_init_avx512(cpu_kernels *k);
#endif

/* ------------------------------------------------------------------------ */
/* Backend instance                                                           */
/* ------------------------------------------------------------------------ */
typedef struct cpu_state {
    const llmh_host_api *host;
    cpu_features feat;
} cpu_state;

struct llmh_buffer {
    uint8_t *data;
    size_t size;
    int owned; /* 1 when allocated by us (free on buffer_free) */
    uint32_t usage;
};

/* One phase of one node in a running graph: units are claimed `grain` at a
 * time from `next`; the phase is complete when `done` reaches `units`. */
typedef struct cpu_step {
    const llmh_node *node;
    size_t n_nodes;           /* > 1: a fused run of LORA nodes starting at node */
    int phase;
    int64_t units, grain;
    _Alignas(64) atomic_llong next;
    _Alignas(64) atomic_llong done;
    _Alignas(64) atomic_llong aux; /* op-specific progress (MUL_MAT + LORA: A products done) */
} cpu_step;

/* Which node a thread last converted private activations for. */
typedef struct cpu_conv_mark {
    uint64_t serial;          /* graph_compute call number */
    const llmh_node *node;
} cpu_conv_mark;

#define CPU_MAX_THREADS 256

struct llmh_backend {
    cpu_state *st;
    const llmh_host_api *host;
    cpu_pool *pool;
    int n_threads;
    cpu_kernels kern;
    /* scratch shared by all threads of one node, grown before dispatch */
    uint8_t *work;
    size_t work_size;
    uint64_t graph_serial;    /* bumped per graph_compute */
    cpu_conv_mark conv_mark[CPU_MAX_THREADS]; /* one slot per thread */
    /* the steps of the graph being run */
    cpu_step *steps;
    size_t steps_cap;
    cpu_chunk *chunks;   /* arena of transposed LoRA B copies */
    int repack;          /* option `repack` (default 1) */
    int repack_at_load;  /* option `repack_at_load` (default 0: at first use) */
    /* first error raised by a worker during graph_compute */
    atomic_int err_status;
    char err_msg[256];
    atomic_flag err_lock;
};

/* Record an error from any thread (first one wins). */
void cpu_fail(llmh_backend *be, llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* One node's execution context, shared by the pool threads. */
typedef struct cpu_exec {
    llmh_backend *be;
    const llmh_node *node;
    size_t n_nodes;           /* nodes run as one (a fused LORA run), else 1 */
    atomic_llong *aux;        /* the step's aux counter (starts at 0) */
} cpu_exec;

/* Work division. A node runs in cpu_op_phases() phases (MUL_MAT: convert
 * the activations, then multiply); phase p has cpu_op_units() units of work
 * (rows, columns, row chunks) handed out `grain` at a time from an atomic
 * counter to whichever threads are running. A phase starts only when the
 * previous one (of this or the preceding node) has finished every unit.
 * `ith` selects the calling thread's scratch slice. */
int cpu_op_phases(const llmh_backend *be, const llmh_node *node);
int64_t cpu_op_units(const llmh_backend *be, const llmh_node *node, int phase, int64_t *grain);
void cpu_op_run(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith);
/* Scratch bytes a node needs (all threads together). */
size_t cpu_op_work_size(const llmh_backend *be, const llmh_node *node);
/* Validate shapes/types before running; returns LLMH_OK or an error with
 * the message set through host->set_error. */
llmh_status cpu_op_validate(llmh_backend *be, const llmh_node *node, size_t index);
int cpu_op_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1);

/* cpu-repack.c: the weight_prepare/weight_release slots. */
llmh_status cpu_weight_prepare(llmh_backend *be, llmh_tensor *w);
void cpu_weight_release(llmh_backend *be, llmh_tensor *w);
/* Free the arena of transposed copies (backend destroy). */
void cpu_arena_free(llmh_backend *be);
/* The transposed copy of a LoRA B when usable for this exact view, else NULL. */
const cpu_packed *cpu_transposed_for(const llmh_backend *be, const llmh_tensor *w);
/* The packed form of `w` when it is usable for this exact view, else NULL. */
const cpu_packed *cpu_packed_for(const llmh_backend *be, const llmh_tensor *w);
/* Pack every weight the graph multiplies by that is still pending (runs on
 * the pool; call before scheduling the graph). */
llmh_status cpu_pack_pending(llmh_backend *be, const llmh_graph *g);

/* cpu-lora.c: LORA nodes. Consecutive LORA nodes with the same dst and src1
 * run as one step (cpu_lora_run_length), so k adapters on a projection cost
 * one synchronization point in decode. */
size_t cpu_lora_run_length(const llmh_node *nodes, size_t n_nodes, size_t i);
size_t cpu_lora_work_size(const llmh_backend *be, const llmh_node *nodes, size_t n);
int cpu_lora_phases(const llmh_backend *be, const llmh_node *nodes, size_t n);
int64_t cpu_lora_units(const llmh_backend *be, const llmh_node *nodes, size_t n, int phase, int64_t *grain);
void cpu_lora(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith);
/* A decode-sized MUL_MAT followed by a LORA run on its dst and x: 1 + the
 * run's length when they run as one step (0 = not this shape). */
size_t cpu_mm_lora_length(const llmh_backend *be, const llmh_node *nodes, size_t n_nodes, size_t i);
size_t cpu_mm_lora_work_size(const llmh_backend *be, const llmh_node *nodes, size_t n);
int64_t cpu_mm_lora_units(const llmh_backend *be, const llmh_node *nodes, size_t n, int phase, int64_t *grain);
void cpu_mm_lora(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith);

/* cpu-matmul.c */
size_t cpu_mul_mat_work_size(const llmh_backend *be, const llmh_node *node);
int cpu_mul_mat_phases(const llmh_backend *be, const llmh_node *node);
int64_t cpu_mul_mat_units(const llmh_backend *be, const llmh_node *node, int phase, int64_t *grain);
/* The dst rows [*r0, *r0 + *nr) of multiply unit `unit` (no batch dims). */
void cpu_mul_mat_unit_rows(const llmh_backend *be, const llmh_node *node, int64_t unit, int64_t *r0, int64_t *nr);
void cpu_mul_mat(const cpu_exec *ex, int phase, int64_t u0, int64_t u1, int ith);

#endif

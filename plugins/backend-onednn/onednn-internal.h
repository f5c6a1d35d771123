/* onednn-internal.h — declarations shared by the oneDNN backend's files.
 *
 * onednn-backend.c: plugin entry, device, options, buffers, validation and
 *                   graph dispatch.
 * onednn-matmul.c:  MUL_MAT for F32/F16/BF16 weights through oneDNN matmul
 *                   primitives (weights reordered once into oneDNN's blocked
 *                   layout, primitives cached by shape), plus weight_prepare.
 * onednn-quant.c:   MUL_MAT for GGUF 32-element block types with the
 *                   plugin's own int8 dot (weights repacked at load,
 *                   activations quantized to Q8_0 exactly as llama.cpp).
 * onednn-lora.c:    LORA (the memory fabric's adapters) in plain C,
 *                   consecutive adapters on one dst fused.
 * onednn-ops.c:     the other ops in plain C, threaded with OpenMP (the
 *                   threading runtime Debian's libdnnl is built with).
 */
#ifndef LLMH_ONEDNN_INTERNAL_H
#define LLMH_ONEDNN_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>
#include <stdint.h>

#include "llmh-plugin.h"

#define OD_NAME "onednn"

typedef struct od_state {
    const llmh_host_api *host;
    char isa[96];       /* the ISA oneDNN dispatches to, e.g. "avx512_core_bf16" */
    int has_bf16;       /* the CPU runs BF16 dot products natively */
    char version[32];   /* "2.6.3" */
    const char *runtime; /* "OpenMP", "TBB", ... */
} od_state;

struct llmh_buffer {
    uint8_t *data;
    size_t size;
    int owned;
    uint32_t usage;
};

/* How F32/F16 weights are stored after weight_prepare ([backend] weights). */
typedef enum od_wprec {
    OD_WPREC_EXACT = 0, /* F32 stays F32, F16 becomes F32 (exact), BF16 stays BF16 */
    OD_WPREC_BF16 = 1,  /* F32/F16 weights rounded to BF16 (lossy, faster) */
    OD_WPREC_S8 = 2     /* F32/F16/BF16 weights as s8 with one scale per output row,
                           activations s8 with one scale per token (lossy) */
} od_wprec;

/* A weight after weight_prepare (llmh_tensor.extra). */
/* OD_PACK_T: a LoRA B matrix [R, M] (R <= 64) stored transposed, [M] per
 * rank row, in its own type (onednn-lora.c); MUL_MAT ignores it. */
typedef enum od_pack_kind { OD_PACK_DNNL = 1, OD_PACK_Q = 2, OD_PACK_T = 3 } od_pack_kind;

typedef struct od_weight {
    od_pack_kind kind;
    const void *src;    /* data pointer of the tensor this was made from */
    llmh_dtype type;    /* its type */
    int64_t k, m;       /* ne[0], ne[1] */
    /* OD_PACK_DNNL */
    dnnl_data_type_t dt;      /* f32 or bf16 */
    dnnl_memory_desc_t md;    /* blocked layout chosen by oneDNN, dims {K, M} */
    void *packed;             /* bytes in that layout */
    int act_round;            /* activation rounding before the product: 0, LLMH_DTYPE_F16 or _Q8_K */
    float *wscale;            /* dt s8: M per-row scales */
    /* OD_PACK_Q, two layouts (onednn-quant.c):
     *  rows:   per row, K int8 levels | K/32 f32 scales | K/32 f32 mins
     *  panels: 16 rows at a time for the AVX-512 VNNI kernel */
    uint8_t *q;
    size_t q_row;             /* bytes per row (rows) or per panel (panels) */
    int has_min;
    int panels;
} od_weight;

/* One cached matmul primitive. */
typedef struct od_mm_key {
    int packed;               /* weights in a packed layout (md compared too) */
    dnnl_data_type_t sdt, wdt;
    int64_t k, m, n;
    int64_t lds, ldw, ldd;    /* leading dims (elements); ldw 0 when packed */
    int nthr;                 /* OpenMP threads the primitive was made for */
} od_mm_key;

typedef struct od_prim {
    od_mm_key key;
    dnnl_memory_desc_t wmd;
    dnnl_primitive_t prim;
    dnnl_memory_t msrc, mwei, mdst, mscale; /* mscale: s8 output scales (runtime) */
    uint64_t last_use;
    int used;
} od_prim;

#define OD_CACHE_SIZE 64

/* Below this many elements an op runs on the calling thread: an OpenMP fork
 * and join costs more than the work, and on a busy machine a descheduled
 * team member stalls the whole region. */
#define OD_PAR_MIN 32768
/* Matmuls below this many multiply-adds run single-threaded (primitives are
 * created for, and cached by, their thread count). */
#define OD_MM_PAR_MIN ((int64_t)1 << 21)

struct llmh_backend {
    od_state *st;
    const llmh_host_api *host;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int n_threads;
    od_wprec wprec;
    int vnni;                 /* AVX-512 VNNI int8 kernel for block types */
    od_prim cache[OD_CACHE_SIZE];
    uint64_t tick;
    uint64_t cache_hits, cache_misses;
    /* scratch for converted activations, grown on demand */
    uint8_t *scratch;
    size_t scratch_size;
    /* error from inside a parallel region (first wins) */
    int err_set;
    llmh_status err_status;
    char err_msg[256];
};

const char *od_op_name(llmh_op op);
int od_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1);
/* Grow be->scratch to at least n bytes (64-byte aligned). NULL on failure. */
uint8_t *od_scratch(llmh_backend *be, size_t n);
/* Record an error from any thread (first one wins; reported after the op). */
void od_fail(llmh_backend *be, llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* onednn-matmul.c */
llmh_status od_weight_prepare(llmh_backend *be, llmh_tensor *w);
void od_weight_release(llmh_backend *be, llmh_tensor *w);
llmh_status od_mul_mat(llmh_backend *be, const llmh_node *n);
void od_cache_clear(llmh_backend *be);
int od_float_type(llmh_dtype t);
/* Q2_K..Q6_K: dequantized to f32 at load, activations rounded to Q8_K. */
int od_kquant(llmh_dtype t);

/* onednn-quant.c */
int od_quant_supported(llmh_dtype t);
/* Repack a block-32 weight (contiguous rows) into OD_PACK_Q form. */
llmh_status od_quant_pack(llmh_backend *be, const llmh_tensor *w, od_weight *out);
/* dst = w x src1 for a block-32 weight; `pw` may be NULL (raw GGUF rows are
 * unpacked on the fly). */
llmh_status od_quant_mul_mat(llmh_backend *be, const llmh_node *n, const od_weight *pw);

/* onednn-quant-vnni.c (x86-64 only): 16 rows x n_cols (<= 8) for one panel.
 * cols[c] point at quantized activation columns (onednn-quant.c layout). */
#define OD_PANEL 16
#define OD_VNNI_MAX_COLS 8
int od_vnni_available(void);
void od_vnni_panel(int64_t k, const uint8_t *panel, size_t blk_bytes, int mins, const uint8_t *const *cols,
                   int n_cols, float *out);

/* onednn-lora.c: LORA. od_lora_group: how many nodes from nodes[0] (a
 * LORA) run as one fused group (>= 1); od_lora runs them. */
size_t od_lora_group(const llmh_node *nodes, size_t n_nodes);
/* weight_prepare of rank-thin matrices (float types, and Q8_0 for 1): 1 =
 * a LoRA A shape [K, R] (R <= 64, K >= 16 R; also a Q8_0 transposed B [M,
 * R]), used as stored; 2 = a LoRA B shape [R, M] (R <= 64, M >= 16 R,
 * M <= 65536), kept transposed (od_lora_transpose); 0 = neither. */
int od_lora_shape(const llmh_tensor *w);
llmh_status od_lora_transpose(llmh_backend *be, const llmh_tensor *w, od_weight *pw);
llmh_status od_lora(llmh_backend *be, const llmh_node *nodes, size_t count);

/* onednn-ops.c: every op but MUL_MAT and LORA. */
llmh_status od_run_op(llmh_backend *be, const llmh_node *n);

#endif

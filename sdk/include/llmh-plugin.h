/*
 * llmh-plugin.h — the llmhost plugin ABI.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * `llmh_plugin_describe`, which returns a const descriptor (use
 * LLMH_PLUGIN_DEFINE). The host loads it with dlopen(RTLD_LOCAL), checks the
 * ABI version, calls `probe` and `init`, and then talks to it only through the
 * kind-specific vtable in `desc->iface`. Plugins never link the core library:
 * everything they need from the host comes through `llmh_host_api`.
 *
 * Rules (docs/abi.md):
 *  - The host loads a plugin only if desc->abi_major == LLMH_ABI_MAJOR and
 *    desc->abi_minor <= the host's LLMH_ABI_MINOR.
 *  - Every struct starts with `uint32_t struct_size` and only grows at the end.
 *    The host checks an iface's struct_size before calling a slot added later,
 *    and a plugin checks host->struct_size the same way.
 *  - Slots are documented "required" or "optional (NULL means ...)".
 *  - Vendor extensions go through get_proc(name), never new slots.
 *  - Ownership: "borrowed" = the callee must not free it and must not keep it
 *    past the call unless stated; "owned by X" = X frees it.
 *  - Errors: a failing call returns a negative llmh_status and should first
 *    call host->set_error() with a message that names the file, key, tensor or
 *    op at fault. Plugins never print, exit or abort.
 */
#ifndef LLMH_PLUGIN_H
#define LLMH_PLUGIN_H

#include <string.h>

#include "llmh-types.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LLMH_PLUGIN_EXPORT __declspec(dllexport)
#else
#define LLMH_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* ======================================================================== */
/* Host API: what the host offers every plugin. Handed to probe() and init(). */
/* ======================================================================== */
typedef struct llmh_host_api {
    uint32_t struct_size;
    uint16_t abi_major;   /* the host's LLMH_ABI_MAJOR */
    uint16_t abi_minor;   /* the host's LLMH_ABI_MINOR */

    /* Memory. alloc_aligned's alignment is a power of two >= sizeof(void*).
     * Both return NULL on failure; free(NULL) is a no-op. Memory from these
     * is freed with `free` (and only with it). */
    void *(*alloc)(size_t size);
    void *(*alloc_aligned)(size_t size, size_t alignment);
    void (*free)(void *ptr);

    /* Logging through the application's callback. `plugin` names the caller.
     * Thread-safe. */
    void (*log)(llmh_log_level level, const char *plugin, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Set the calling thread's last-error text (read by the application via
     * llmh_last_error()). Call before returning a negative status. */
    void (*set_error)(const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 1, 2)))
#endif
        ;

    /* Reference (scalar) conversion of `n` elements of `type` to f32.
     * n must be a multiple of the type's block size. This is the oracle every
     * backend is tested against; a backend without its own dequantizer for a
     * type may call it. Returns LLMH_ERR_UNSUPPORTED for unknown types. */
    llmh_status (*dequantize)(llmh_dtype type, const void *src, float *dst, int64_t n);

    /* Reference quantization of `n` f32 values into `type` (block types
     * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, and F16/BF16/F32). */
    llmh_status (*quantize)(llmh_dtype type, const float *src, void *dst, int64_t n);

    /* Version of the host program, e.g. "0.1.0". */
    const char *host_version;
} llmh_host_api;

/* ======================================================================== */
/* Descriptor                                                                */
/* ======================================================================== */
typedef enum llmh_plugin_kind {
    LLMH_PLUGIN_FORMAT = 1,
    LLMH_PLUGIN_TOKENIZER = 2,
    LLMH_PLUGIN_BACKEND = 3,
    LLMH_PLUGIN_SAMPLER = 4,
    LLMH_PLUGIN_ROUTER = 5
} llmh_plugin_kind;

typedef struct llmh_plugin_desc {
    uint32_t struct_size;      /* sizeof(llmh_plugin_desc) at build time */
    uint16_t abi_major;        /* LLMH_ABI_MAJOR at build time */
    uint16_t abi_minor;        /* LLMH_ABI_MINOR at build time */
    llmh_plugin_kind kind;
    const char *name;          /* required: unique per kind, [a-z0-9_-]+ ("gguf", "cpu") */
    const char *version;       /* required: the plugin's own version ("1.2.0") */
    const char *license;       /* optional: SPDX id */
    const char *description;   /* optional: one line */
    int32_t score;             /* priority among plugins that can serve the same
                                  role when the manifest says "auto" (higher wins) */

    /* optional (NULL means "always usable"): can this plugin run on this
     * machine (CPU features, driver present)? Return 0 to be refused (set an
     * error via host->set_error to say why), else a score 1..100. */
    int32_t (*probe)(const llmh_host_api *host);

    /* optional (NULL means no state): called once after loading. *state is
     * passed to every iface call that takes `void *state`. */
    llmh_status (*init)(const llmh_host_api *host, void **state);

    /* optional: called once before unloading, after every object the plugin
     * created has been destroyed. */
    void (*fini)(void *state);

    /* required: the kind's vtable: const llmh_format_iface*,
     * llmh_tokenizer_iface*, llmh_backend_iface*, llmh_sampler_iface* or
     * llmh_router_iface*. Static storage, valid while loaded. */
    const void *iface;

    /* optional: vendor extensions by name; NULL when unknown. */
    void *(*get_proc)(const char *name);

    void *reserved[8];         /* must be NULL */
} llmh_plugin_desc;

/* The one exported symbol. */
typedef const llmh_plugin_desc *(*llmh_plugin_describe_fn)(void);
#define LLMH_PLUGIN_SYMBOL "llmh_plugin_describe"

/* Define the descriptor and export it. Usage:
 *   LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_SAMPLER, "mirostat", "1.0.0", "MIT",
 *                      "Mirostat v2 sampler", 10, NULL, my_init, my_fini,
 *                      &my_sampler_iface, NULL)
 */
#ifdef __cplusplus
#define LLMH__EXTERN_C extern "C"
#else
#define LLMH__EXTERN_C
#endif
#define LLMH_PLUGIN_DEFINE(KIND, NAME, VERSION, LICENSE, DESCRIPTION, SCORE,    \
                           PROBE, INIT, FINI, IFACE, GET_PROC)                  \
    static const llmh_plugin_desc llmh__plugin_desc = {                         \
        sizeof(llmh_plugin_desc), LLMH_ABI_MAJOR, LLMH_ABI_MINOR, (KIND),       \
        (NAME), (VERSION), (LICENSE), (DESCRIPTION), (SCORE), (PROBE), (INIT),  \
        (FINI), (const void *)(IFACE), (GET_PROC),                              \
        {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}};                      \
    LLMH__EXTERN_C LLMH_PLUGIN_EXPORT const llmh_plugin_desc *                  \
    llmh_plugin_describe(void) { return &llmh__plugin_desc; }

/* ======================================================================== */
/* Format plugins: open model files, expose metadata and tensors.            */
/* ======================================================================== */
/* Metadata uses GGUF's key names (general.architecture, <arch>.block_count,
 * tokenizer.ggml.tokens, ...) and tensors use GGUF's names
 * (token_embd.weight, blk.N.attn_q.weight, ...), whatever the file format:
 * a safetensors plugin maps HF config.json and module names onto them, and
 * permutes llama q/k rows into GGUF's interleaved-RoPE order.
 * Extra keys a format may set:
 *   "llmh.tokenizer_json"  STRING  path of an HF tokenizer.json
 *   "llmh.source_format"   STRING  "gguf", "safetensors", ...
 */
typedef struct llmh_model_file llmh_model_file; /* plugin-defined */

typedef struct llmh_format_iface {
    uint32_t struct_size;

    /* required: how well can this plugin open `path` (a file or directory)?
     * `head` holds up to the first 64 bytes of a regular file (head_len may be
     * 0, e.g. for a directory). Return 0 (no) .. 100 (certain). Must not fail
     * loudly: no set_error needed for 0. */
    int32_t (*probe_file)(void *state, const char *path, const uint8_t *head, size_t head_len);

    /* required: open and fully validate `path` (borrowed). `options` (borrowed,
     * may be NULL) are the manifest's [model] keys. On success *out is owned
     * by the caller and freed with close(). Every offset, size and count read
     * from the file must be checked; errors name the field and offset. */
    llmh_status (*open)(void *state, const char *path, const llmh_kv_list *options,
                        llmh_model_file **out);

    /* required: free a file from open(); NULL is a no-op. Invalidates every
     * pointer obtained from it. */
    void (*close)(llmh_model_file *file);

    /* required: all metadata, valid until close(). */
    llmh_status (*get_metadata)(llmh_model_file *file, llmh_kv_list *out);

    /* required: the tensor table (*out: n entries), valid until close(). */
    llmh_status (*get_tensors)(llmh_model_file *file, const llmh_tensor_info **out, size_t *n);
} llmh_format_iface;

/* ======================================================================== */
/* Tokenizer plugins                                                          */
/* ======================================================================== */
typedef struct llmh_tokenizer llmh_tokenizer; /* plugin-defined */

/* Token types, equal to GGUF's tokenizer.ggml.token_type values. */
typedef enum llmh_token_type {
    LLMH_TOKEN_NORMAL = 1,
    LLMH_TOKEN_UNKNOWN = 2,
    LLMH_TOKEN_CONTROL = 3,
    LLMH_TOKEN_USER_DEFINED = 4,
    LLMH_TOKEN_UNUSED = 5,
    LLMH_TOKEN_BYTE = 6
} llmh_token_type;

typedef enum llmh_special_token {
    LLMH_SPECIAL_BOS = 0,
    LLMH_SPECIAL_EOS = 1,
    LLMH_SPECIAL_EOT = 2,   /* end of turn (e.g. <|im_end|>, <|eot_id|>) */
    LLMH_SPECIAL_PAD = 3,
    LLMH_SPECIAL_UNK = 4,
    LLMH_SPECIAL_SEP = 5,
    LLMH_SPECIAL_NL = 6     /* the newline token */
} llmh_special_token;

/* encode() flags */
#define LLMH_ENCODE_ADD_BOS 0x1u        /* prepend BOS (if the vocab has one) */
#define LLMH_ENCODE_PARSE_SPECIAL 0x2u  /* match control/user-defined tokens in text */
#define LLMH_ENCODE_NO_LEADING_SPACE 0x4u /* SPM: do not add the dummy prefix space */
/* token_to_piece() / decode() flags */
#define LLMH_DECODE_SPECIAL 0x1u        /* render control tokens' text (else empty) */
#define LLMH_DECODE_STRIP_LEADING 0x2u  /* SPM: drop the leading space of the first piece */

typedef struct llmh_tokenizer_iface {
    uint32_t struct_size;

    /* required: can this plugin build a tokenizer from `meta` (GGUF keys,
     * possibly "llmh.tokenizer_json")? 0 = no .. 100. E.g. a BPE plugin answers
     * for tokenizer.ggml.model == "gpt2". */
    int32_t (*probe)(void *state, const llmh_kv_list *meta);

    /* required: build from `meta` (borrowed; the tokenizer copies what it
     * keeps). `options` (borrowed, may be NULL): manifest [tokenizer] keys.
     * *out owned by caller, freed with destroy(). */
    llmh_status (*create)(void *state, const llmh_kv_list *meta, const llmh_kv_list *options,
                          llmh_tokenizer **out);

    /* required: NULL is a no-op. */
    void (*destroy)(llmh_tokenizer *tok);

    /* required */
    int32_t (*n_vocab)(const llmh_tokenizer *tok);

    /* required: encode `len` bytes of `text` (UTF-8, borrowed; invalid bytes
     * allowed and encoded via byte tokens/fallback). Writes up to `cap` ids to
     * `out` and the full count to *n_out; returns LLMH_ERR_INVALID_ARG with
     * *n_out = needed count when cap is too small. Thread-safe. */
    llmh_status (*encode)(const llmh_tokenizer *tok, const char *text, size_t len, uint32_t flags,
                          llmh_token *out, size_t cap, size_t *n_out);

    /* required: the bytes token `id` contributes to the output text (byte
     * tokens give their byte; SPM's U+2581 becomes a space). Same cap rule as
     * encode. Pieces may be partial UTF-8. Thread-safe. */
    llmh_status (*token_to_piece)(const llmh_tokenizer *tok, llmh_token id, uint32_t flags,
                                  char *buf, size_t cap, size_t *n_out);

    /* required: the vocab entry of `id` as stored (borrowed), or NULL. */
    const char *(*token_text)(const llmh_tokenizer *tok, llmh_token id, size_t *len);

    /* required: llmh_token_type of `id` (0 if out of range). */
    int32_t (*token_type)(const llmh_tokenizer *tok, llmh_token id);

    /* required: id of a special token, or -1 when the vocab has none. */
    llmh_token (*special)(const llmh_tokenizer *tok, llmh_special_token which);

    /* required: does this vocab add BOS by default (tokenizer.ggml.add_bos_token)? */
    int32_t (*add_bos_default)(const llmh_tokenizer *tok);

    /* optional (NULL means the host concatenates token_to_piece): decode many
     * ids at once, same cap rule. */
    llmh_status (*decode)(const llmh_tokenizer *tok, const llmh_token *ids, size_t n, uint32_t flags,
                          char *buf, size_t cap, size_t *n_out);
} llmh_tokenizer_iface;

/* ======================================================================== */
/* Backend plugins: buffers and a graph of ops.                               */
/* ======================================================================== */
typedef struct llmh_backend llmh_backend; /* plugin-defined */

/* Ops. `src[i]` and `dst` are tensors (see llmh_tensor); ip[] and fp[] are
 * integer and float parameters. Unless stated, src/dst are F32 and may be
 * strided views (check nb). Shapes use ne order (innermost first).
 * In-place: for ADD, MUL, SCALE, RMS_NORM, ROPE, SWIGLU, SOFTMAX, SILU and
 * GELU, dst may be the very same view as src0 (same data and strides); the
 * host relies on this for residual adds and in-place RoPE.
 * New ops are appended; a backend reports support per op x types. */
typedef enum llmh_op {
    LLMH_OP_NONE = 0,      /* no-op */
    /* dst[D, N] (F32) = rows src1[N] (I32 ids) of src0[D, V] (any supported type) */
    LLMH_OP_GET_ROWS = 1,
    /* dst[M, N] = src0[K, M] x src1[K, N]: each dst column is the dot products
     * of src1's column with every row of src0 (the weights, any supported
     * type; src1 F32; dst F32). ne[2], ne[3] batch: src0 broadcasts when its
     * ne[2]/ne[3] divide src1's.
     * Precision (normative, as llama.cpp's CPU path): src1 is converted to
     * the weight's "dot type" before the products: F16 weights -> F16
     * activations, BF16 -> BF16 (round to nearest even); Q4_0, Q4_1, Q5_0,
     * Q5_1, Q8_0 -> Q8_0 blocks of 32 (q = round_half_even(x * 127/amax),
     * scale d = amax/127 stored as F16); K-quants -> Q8_K blocks of 256
     * (iscale = -127/max where max is the element of largest magnitude,
     * q = min(127, round(iscale * x)), d = 1/iscale kept as F32).
     * F32 weights use F32 activations. */
    LLMH_OP_MUL_MAT = 2,
    /* dst = src0 + src1, src1 broadcast (repeated) along each dim it is 1 or divides */
    LLMH_OP_ADD = 3,
    /* dst = src0 * src1, broadcast as ADD */
    LLMH_OP_MUL = 4,
    /* dst = src0 * fp[0] */
    LLMH_OP_SCALE = 5,
    /* per row of ne[0]: dst = src0 / sqrt(mean(src0^2) + fp[0]), then * src1
     * (F32 [ne0], broadcast over rows) when src1 != NULL */
    LLMH_OP_RMS_NORM = 6,
    /* rotary embedding. src0 [head_dim, n_head, n_tok]; src1 I32 positions
     * [n_tok]; src2 optional F32 frequency factors [n_rot/2] (divide the
     * angle). ip[0] = n_rot (<= head_dim; dims past it pass through),
     * ip[1] = mode (LLMH_ROPE_NORMAL: pairs (2i, 2i+1); LLMH_ROPE_NEOX: pairs
     * (i, i + n_rot/2)). fp[0] = freq_base, fp[1] = freq_scale (1 = none).
     * theta_i = pos * freq_scale * freq_base^(-2i/n_rot) */
    LLMH_OP_ROPE = 7,
    /* dst = silu(src0) * src1 (SwiGLU), same shapes */
    LLMH_OP_SWIGLU = 8,
    /* softmax over ne[0] of src0 * fp[0] (fp[0] = 0 means 1) */
    LLMH_OP_SOFTMAX = 9,
    /* dst = src0 converted to dst->type (F32 <-> F16/BF16, F32 -> F32), same
     * element count and shape; either may be strided (e.g. a KV-cache view) */
    LLMH_OP_CPY = 10,
    /* causal multi-head attention with GQA over a KV cache.
     * src0 Q [head_dim, n_head, n_tok] (F32); src1 K [head_dim, n_kv_head, n_kv];
     * src2 V [head_dim, n_kv_head, n_kv] (K/V F32 or F16, strided views of
     * the cache); dst [head_dim, n_head, n_tok] (F32).
     * n_head % n_kv_head == 0; query head h uses kv head h / (n_head/n_kv_head).
     * ip[0] = n_past: query token t sits at cache index n_past + t and sees
     * cache entries j <= n_past + t; ip[1] = sliding window (0 = none: else
     * also j > n_past + t - window). fp[0] = scale of q.k (usually
     * 1/sqrt(head_dim)); fp[1] = logit soft-cap (0 = none).
     * Precision (normative, so every backend reproduces llama.cpp's
     * reference results): with F16 K/V, q is rounded to F16 before q.k and
     * the normalized softmax probabilities are rounded to F16 before they
     * weight V; products accumulate in F32 (or wider). */
    LLMH_OP_ATTENTION = 11,
    /* dst = silu(src0) */
    LLMH_OP_SILU = 12,
    /* dst = gelu(src0) (tanh approximation) */
    LLMH_OP_GELU = 13,
    /* LoRA delta accumulated into dst (the memory fabric's unmerged adapters):
     *   r[R, N]   = src0[K, R] x src1[K, N]      (A x, shapes as MUL_MAT)
     *   y[M, N]   = src2[R, M] x r               (B r)
     *   dst[:, t] += (fp[0] * g[t]) * y[:, t]    g = src3 (F32 [N]) or 1 when src3 is NULL
     * src0 (A) and src2 (B) are F32, F16 or BF16 (both the same type); src1
     * and dst are F32; dst is contiguous [M, N] and is also read (it holds
     * W x already). fp[0] is the adapter's effective scale.
     * Precision (normative): adapter values are widened exactly to F32, the
     * activations stay F32 (no dot-type conversion), r is kept in F32 and
     * both products accumulate in F32 or wider. With F32 adapters and g = 1
     * this is llama.cpp's --lora result (two F32 products, scale, add).
     * Tokens whose gate g[t] is 0 leave dst[:, t] unchanged (a backend may
     * skip them). A backend may fuse consecutive LORA nodes that share dst
     * and src1. supports(LORA, t0 = adapter type, t1 = F32).
     * Q8_0 adapters (SDK 1.2; supports(LORA, Q8_0, F32)) halve the bytes
     * again. src0 (A) is Q8_0 [K, R] as above (K % 32 == 0); src2 holds B
     * TRANSPOSED, Q8_0 [M, R] (ne0 = M, M % 32 == 0): row j of src2 is
     * column j of B (B's own rows have R values, too few for 32-value
     * blocks), so
     *   y[i, t] = sum_j src2[i, j] r[j, t].
     * A Q8_0 value is d * q, exact in F32; a backend may group the scale
     * differently (d times a block's partial sum, or d folded into r[j]),
     * which changes only the rounding. The host sends Q8_0 adapters only to
     * backends that claim them: a transposed B has no MUL_MAT fallback. */
    LLMH_OP_LORA = 14,
    LLMH_OP_COUNT = 15     /* one past the last op; grows */
} llmh_op;

#define LLMH_ROPE_NORMAL 0
#define LLMH_ROPE_NEOX 2

#define LLMH_MAX_SRC 4
#define LLMH_MAX_PARAMS 8

typedef struct llmh_node {
    uint32_t struct_size;
    llmh_op op;
    llmh_tensor *dst;                    /* borrowed */
    const llmh_tensor *src[LLMH_MAX_SRC]; /* borrowed; unused = NULL */
    int32_t ip[LLMH_MAX_PARAMS];
    float fp[LLMH_MAX_PARAMS];
} llmh_node;

/* A list of nodes executed in order; a node may read the dst of an earlier
 * one. Borrowed for the duration of graph_compute. */
typedef struct llmh_graph {
    uint32_t struct_size;
    size_t n_nodes;
    const llmh_node *nodes;
} llmh_graph;

typedef enum llmh_device_type {
    LLMH_DEVICE_CPU = 0,
    LLMH_DEVICE_GPU_INTEGRATED = 1,
    LLMH_DEVICE_GPU_DISCRETE = 2,
    LLMH_DEVICE_OTHER = 3
} llmh_device_type;

typedef struct llmh_device_info {
    uint32_t struct_size;
    char name[128];          /* NUL-terminated */
    char description[256];   /* features: "avx2 fma f16c", "fp16 subgroup=32" */
    llmh_device_type type;
    uint64_t memory_total;   /* bytes (0 = unknown) */
    uint64_t memory_free;    /* bytes (0 = unknown) */
    int32_t max_threads;     /* CPU: usable hardware threads; else 0 */
} llmh_device_info;

typedef struct llmh_backend_params {
    uint32_t struct_size;
    int32_t device;          /* index < device_count(), or -1 for the best */
    int32_t n_threads;       /* CPU threads; <= 0 means the backend's default */
    const llmh_kv_list *options; /* borrowed, may be NULL: manifest [backend] keys */
} llmh_backend_params;

/* buffer usage flags */
#define LLMH_BUFFER_WEIGHTS 0x1u  /* read-only model weights */
#define LLMH_BUFFER_COMPUTE 0x2u  /* activations / scratch */
#define LLMH_BUFFER_KV 0x4u       /* KV cache */

/* A LoRA adapter tensor as the host passes it to weight_prepare (named
 * "lora_a" or "lora_b"): LORA may read its bytes as stored, so a backend
 * leaves them in place (SDK 1.2). */
static inline int llmh_is_adapter_tensor(const llmh_tensor *w) {
    return w->name && (!strcmp(w->name, "lora_a") || !strcmp(w->name, "lora_b"));
}

typedef struct llmh_backend_iface {
    uint32_t struct_size;

    /* required: number of devices this backend can drive (0 = none). */
    int32_t (*device_count)(void *state);

    /* required */
    llmh_status (*device_info)(void *state, int32_t index, llmh_device_info *out);

    /* required: create an instance on a device. *out freed with destroy().
     * When no device exists, fail with a message naming what was tried. */
    llmh_status (*create)(void *state, const llmh_backend_params *params, llmh_backend **out);

    /* required: NULL is a no-op. All buffers must be freed first. */
    void (*destroy)(llmh_backend *be);

    /* required: 1 if `op` with src0 of type t0 and src1 of type t1 is
     * supported, else 0. t1 is src1's type (LLMH_DTYPE_I32 for the ids of
     * GET_ROWS and the positions of ROPE; LLMH_DTYPE_F32 when there is no
     * src1), except: for CPY, t1 is the destination type; for ATTENTION, t1
     * is the K/V cache type. */
    int32_t (*supports)(llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1);

    /* required: a buffer of `size` bytes, aligned to at least 64 bytes.
     * Contents are undefined. */
    llmh_status (*buffer_alloc)(llmh_backend *be, size_t size, uint32_t usage, llmh_buffer **out);

    /* optional (NULL means the host allocates and writes): wrap host memory
     * (e.g. the mapped model file) without copying when possible; the
     * backend may copy instead. `host` is borrowed and outlives the buffer. */
    llmh_status (*buffer_wrap_host)(llmh_backend *be, void *host, size_t size, uint32_t usage,
                                    llmh_buffer **out);

    /* required: NULL is a no-op. */
    void (*buffer_free)(llmh_backend *be, llmh_buffer *buf);

    /* optional (NULL means never host-visible): the host address of byte 0,
     * or NULL when this buffer is not host-visible. */
    void *(*buffer_host_ptr)(llmh_backend *be, llmh_buffer *buf);

    /* required: copy bytes in/out. Synchronous. */
    llmh_status (*buffer_write)(llmh_backend *be, llmh_buffer *buf, size_t offset,
                                const void *src, size_t n);
    llmh_status (*buffer_read)(llmh_backend *be, llmh_buffer *buf, size_t offset,
                               void *dst, size_t n);

    /* optional (NULL means weights are used as stored): called once per
     * weight tensor after its bytes are in place; may repack into a faster
     * layout and set w->extra. The host also calls it for each LoRA adapter
     * tensor, named "lora_a" or "lora_b" (llmh_is_adapter_tensor; documented
     * since SDK 1.2); LORA nodes may read those bytes as stored, so the
     * backend must leave them in place (a copy in another layout is fine). */
    llmh_status (*weight_prepare)(llmh_backend *be, llmh_tensor *w);

    /* optional: undo weight_prepare (free w->extra). */
    void (*weight_release)(llmh_backend *be, llmh_tensor *w);

    /* required: run the graph; returns when dst tensors are written. Ops the
     * backend does not support fail with LLMH_ERR_UNSUPPORTED naming the op.
     * One instance runs one graph at a time (the host serializes). */
    llmh_status (*graph_compute)(llmh_backend *be, const llmh_graph *graph);
} llmh_backend_iface;

/* ======================================================================== */
/* Sampler plugins: transform a candidate array; the last one in a chain      */
/* selects (sets `selected`).                                                 */
/* ======================================================================== */
typedef struct llmh_sampler llmh_sampler; /* plugin-defined */

typedef struct llmh_sampler_iface {
    uint32_t struct_size;

    /* required: NULL-terminated list of sampler names this plugin provides
     * ("top_k", "dist", ...), as written in a manifest's sampler chain. */
    const char *const *names;

    /* required: NULL-terminated list of [sampler] manifest keys this plugin
     * reads (e.g. "top_k"); the host rejects keys no chain member claims. */
    const char *const *param_keys;

    /* required: create sampler `name` with `params` (borrowed: the manifest's
     * [sampler] table, flattened). *out freed with destroy(). */
    llmh_status (*create)(void *state, const char *name, const llmh_kv_list *params,
                          llmh_sampler **out);

    /* required: NULL is a no-op */
    void (*destroy)(llmh_sampler *s);

    /* required: modify the candidates in place (reorder, shrink n, change
     * logits/p) or select one (set `selected`). */
    llmh_status (*apply)(llmh_sampler *s, llmh_token_array *cands);

    /* optional (NULL means stateless): the chosen token, after selection. */
    void (*accept)(llmh_sampler *s, llmh_token token);

    /* optional (NULL means stateless): forget history, reseed. */
    void (*reset)(llmh_sampler *s);
} llmh_sampler_iface;

/* ======================================================================== */
/* Router plugins: which LoRA adapters apply, and how strongly.               */
/* ======================================================================== */
typedef struct llmh_router llmh_router; /* plugin-defined */

/* An adapter resident in the host's adapter store (borrowed view). */
typedef struct llmh_adapter_desc {
    uint32_t struct_size;
    const char *name;        /* unique name */
    const char *ns;          /* namespace, or NULL */
    float scale;             /* user scale (manifest/runtime) */
    float alpha;             /* adapter.lora.alpha */
    int32_t rank;
    int32_t n_layers;        /* gate vectors per adapter (0 = no gate) */
    int64_t gate_dim;        /* length of each gate vector (model dim) */
    const float *gate_w;     /* [n_layers][gate_dim] or NULL */
    const float *gate_b;     /* [n_layers] or NULL */
} llmh_adapter_desc;

/* What a request asked for (borrowed). */
typedef struct llmh_route_request {
    uint32_t struct_size;
    const char *const *adapter_names; /* adapters named by the request */
    const float *adapter_scales;      /* their scales (NULL = 1.0 each) */
    size_t n_adapter_names;
    const char *const *namespaces;    /* namespaces named by the request */
    size_t n_namespaces;
} llmh_route_request;

typedef struct llmh_router_iface {
    uint32_t struct_size;

    /* required: NULL-terminated list of [router] manifest keys it reads. */
    const char *const *param_keys;

    /* required: *out freed with destroy(). params: [router] table (borrowed). */
    llmh_status (*create)(void *state, const llmh_kv_list *params, llmh_router **out);

    /* required: NULL is a no-op */
    void (*destroy)(llmh_router *r);

    /* required: per-request gates: write gates_out[i] (0 = adapter i off,
     * else a multiplier of its effective scale) for the n adapters. */
    llmh_status (*route)(llmh_router *r, const llmh_route_request *req,
                         const llmh_adapter_desc *adapters, size_t n, float *gates_out);

    /* optional (NULL means gates are per request only): per-token gates at
     * layer `layer` from the layer-input hidden states h [n_tok][dim].
     * request_gates [n] are route()'s result; write gates_out [n_tok][n]. */
    llmh_status (*route_tokens)(llmh_router *r, int32_t layer, const float *h, int64_t dim,
                                int64_t n_tok, const llmh_adapter_desc *adapters, size_t n,
                                const float *request_gates, float *gates_out);
} llmh_router_iface;

#ifdef __cplusplus
}
#endif
#endif /* LLMH_PLUGIN_H */

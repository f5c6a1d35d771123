/* model-internal.h — the loaded model: hyper-parameters, weights placed in a
 * backend, tokenizer. Shared by model.c (load), session.c (graph, KV cache)
 * and generate.c. Not installed. */
#ifndef LLMH_MODEL_INTERNAL_H
#define LLMH_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "internal.h"

typedef enum llmh__arch {
    LLMH__ARCH_LLAMA = 0, /* stories260K, Llama-2/3: no biases, interleaved RoPE */
    LLMH__ARCH_QWEN2 = 1, /* QKV bias, NeoX RoPE, often tied embeddings */
    LLMH__ARCH_QWEN3 = 2  /* q/k RMSNorm per head, explicit head_dim, NeoX RoPE */
} llmh__arch;

#define LLMH__MAX_EOG 8

/* Projections a LoRA adapter may target, per layer. */
typedef enum llmh__lora_target {
    LLMH__LORA_Q = 0, LLMH__LORA_K, LLMH__LORA_V, LLMH__LORA_O,
    LLMH__LORA_GATE, LLMH__LORA_UP, LLMH__LORA_DOWN, LLMH__LORA_N
} llmh__lora_target;

/* One adapter in the store (adapter.c). a/b per (layer, target): A ne [in, r]
 * and B ne [r, out] (Q8_0: B transposed, ne [out, r]; SDK 1.2), of the
 * storage type `type` (manifest [model] adapter_type: F32, F16, BF16 or
 * Q8_0), in the backend; ne[0] == 0 where not adapted.
 * refs: the store's own reference (while listed) plus one per session that
 * selected it; guarded by the model's adapter_lock. */
typedef struct llmh__adapter {
    struct llmh_model *model;
    char *name, *path, *ns;
    float scale, alpha;
    int32_t rank;           /* largest rank */
    int32_t n_targets;
    int refs;
    int users;              /* sessions holding it */
    llmh_tensor *a, *b;     /* [n_layer * LLMH__LORA_N] */
    llmh_dtype type;        /* storage type of a/b */
    bool lora_op;           /* the backend runs LLMH_OP_LORA for `type` (else MUL_MAT/SCALE/ADD) */
    llmh_buffer *buf;
    void *host_mem;         /* converted values the buffer wraps (mmap), or NULL */
    size_t host_len;
    /* learned gate (gated router), host memory, or NULL: gate_w
     * [gate_layers][n_embd], gate_b [gate_layers]; docs/memory-fabric.md */
    float *gate_w, *gate_b;
    int32_t gate_layers;
} llmh__adapter;

typedef struct llmh__hparams {
    llmh__arch arch;
    int64_t n_vocab;
    int64_t n_embd;      /* model width */
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;    /* per-head width of q/k/v */
    int64_t n_ff;        /* feed-forward width */
    int64_t n_ctx_train;
    int64_t n_rot;       /* rotated dims per head */
    int32_t rope_mode;   /* LLMH_ROPE_NORMAL or LLMH_ROPE_NEOX */
    float rope_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    float norm_eps;
} llmh__hparams;

typedef struct llmh__layer {
    llmh_tensor *attn_norm; /* (n_embd) */
    llmh_tensor *wq;        /* (n_embd, n_head*head_dim) */
    llmh_tensor *wk;        /* (n_embd, n_head_kv*head_dim) */
    llmh_tensor *wv;        /* (n_embd, n_head_kv*head_dim) */
    llmh_tensor *bq, *bk, *bv; /* optional biases */
    llmh_tensor *q_norm, *k_norm; /* qwen3: (head_dim) */
    llmh_tensor *wo;        /* (n_head*head_dim, n_embd) */
    llmh_tensor *ffn_norm;  /* (n_embd) */
    llmh_tensor *w_gate;    /* (n_embd, n_ff) */
    llmh_tensor *w_up;      /* (n_embd, n_ff) */
    llmh_tensor *w_down;    /* (n_ff, n_embd) */
} llmh__layer;

struct llmh_model {
    llmh_registry *registry;
    bool own_registry;

    /* format */
    llmh_plugin *format_plugin;
    const llmh_format_iface *fmt;
    llmh_model_file *file;
    llmh_kv_list meta;
    const llmh_tensor_info *infos;
    size_t n_infos;

    /* tokenizer */
    llmh_plugin *tok_plugin;
    const llmh_tokenizer_iface *tok_if;
    llmh_tokenizer *tok;
    llmh_token eog[LLMH__MAX_EOG]; /* tokens that end generation (-1 unused) */
    int add_bos;

    /* backend */
    llmh_plugin *backend_plugin;
    const llmh_backend_iface *be_if;
    llmh_backend *be;
    pthread_mutex_t compute_lock; /* one graph at a time per backend instance */

    /* weights */
    llmh_tensor *tensors;   /* n_tensors placed weights */
    size_t n_tensors;
    llmh_buffer **weight_bufs; /* buffers to free (one per tensor when wrapped, or one) */
    size_t n_weight_bufs;
    llmh_tensor *tok_embd;  /* (n_embd, n_vocab) */
    llmh_tensor *output_norm; /* (n_embd) */
    llmh_tensor *output;    /* (n_embd, n_vocab); == tok_embd when tied */
    llmh_tensor *rope_freqs; /* optional (n_rot/2) */
    llmh__layer *layers;
    float *vec_f32;         /* F32 copies of norm/bias vectors stored as F16/BF16 */

    llmh__hparams hp;
    llmh_model_desc desc;
    char *arch_name, *name, *chat_template;
    int64_t default_ctx;
    char kv_type[8];        /* manifest [model] kv_type: "f16" or "f32" */
    llmh_dtype adapter_type; /* manifest [model] adapter_type, parsed ("auto" is F32) */

    /* memory fabric (adapter.c) */
    pthread_mutex_t adapter_lock; /* guards the store, refs and the router */
    llmh__adapter **adapters;
    size_t n_adapters, cap_adapters;
    llmh_plugin *router_plugin;
    const llmh_router_iface *router_if;
    llmh_router *router;
    char *router_name;
    struct llmh__batch_ctx *batch; /* session-batch.c: scratch of batched steps (compute_lock) */
};

/* Memory fabric (adapter.c). */
llmh_status llmh__fabric_load(llmh_model *m, const llmh_config *cfg); /* manifest [[adapter]]s */
void llmh__fabric_free(llmh_model *m);
/* Route a selection (n_names = 0: every adapter) and retain the adapters it
 * turns on: *out (malloc'd) holds *n_out adapters and *mult_out their
 * multiplier gate * store scale (the per-tensor alpha/r comes on top). */
llmh_status llmh__fabric_select(llmh_model *m, const llmh_adapter_request *req, llmh__adapter ***out, float **mult_out,
                                size_t *n_out);
void llmh__adapter_release(llmh__adapter *a);
/* Like llmh__fabric_select, and also each selected adapter's route() gate
 * (*gates_out) and store scale (*scales_out), malloc'd, n_out each. */
llmh_status llmh__fabric_select_ex(llmh_model *m, const llmh_adapter_request *req, llmh__adapter ***out,
                                   float **mult_out, float **gates_out, float **scales_out, size_t *n_out);
/* Whether the model's router gives per-token gates (route_tokens). */
bool llmh__fabric_per_token(llmh_model *m);
/* Per-token gates at `layer` for the n selected adapters `sel` with
 * route() gates `req_gates`: calls the router's route_tokens with the
 * layer-input hidden states h [n_tok][dim]; gates_out [n_tok][n]. Every gate
 * must be finite. */
llmh_status llmh__fabric_route_tokens(llmh_model *m, int32_t layer, const float *h, int64_t dim, int64_t n_tok,
                                      llmh__adapter *const *sel, const float *req_gates, size_t n, float *gates_out);
/* Effective scale of one adapted tensor pair for multiplier `mult`:
 * mult * alpha / r (mult alone when alpha is 0), as llama.cpp computes it. */
float llmh__adapter_pair_scale(const llmh__adapter *a, size_t idx, float mult);


/* Metadata lookups (NULL/0 when absent or of another type). */
const llmh_value *llmh__meta(const llmh_model *m, const char *key);
bool llmh__meta_i64(const llmh_model *m, const char *key, int64_t *out);

/* The model a session belongs to. */
llmh_model *llmh__session_model(const llmh_session *s);

/* Free the batched-step scratch (session-batch.c); before the backend goes. */
void llmh__batch_free(llmh_model *m);
#endif

/* session-internal.h — the session object and the graph-building helpers,
 * shared by session.c (one session) and session-batch.c (decode steps of
 * several sessions in one graph). Not installed. */
#ifndef LLMH_SESSION_INTERNAL_H
#define LLMH_SESSION_INTERNAL_H

#include "llmh-fabric.h"
#include "model-internal.h"

/* Activation tensors of one batch of up to n_batch tokens (all F32). */
typedef struct llmh__act {
    llmh_tensor ids;    /* I32 (n_batch) */
    llmh_tensor pos;    /* I32 (n_batch) */
    llmh_tensor x;      /* (n_embd, n_batch) residual stream */
    llmh_tensor xn;     /* (n_embd, n_batch) normalized */
    llmh_tensor q;      /* (head_dim, n_head, n_batch) */
    llmh_tensor k;      /* (head_dim, n_head_kv, n_batch) */
    llmh_tensor v;      /* (head_dim, n_head_kv, n_batch) */
    llmh_tensor att;    /* (head_dim, n_head, n_batch) */
    llmh_tensor o;      /* (n_embd, n_batch) projection output */
    llmh_tensor g;      /* (n_ff, n_batch) */
    llmh_tensor u;      /* (n_ff, n_batch) */
    llmh_tensor logits; /* (n_vocab, 1) */
} llmh__act;

struct llmh_session {
    llmh_model *model;
    int64_t n_ctx;
    int32_t n_batch;
    int64_t pos;            /* tokens in the cache */
    llmh_dtype kv_type;
    llmh_buffer *kv_buf;    /* K and V of every layer */
    llmh_tensor *k_cache;   /* per layer: (head_dim, n_head_kv, n_ctx) */
    llmh_tensor *v_cache;   /* per layer: (head_dim, n_head_kv, n_ctx) */
    llmh_buffer *act_buf;
    llmh__act a;
    llmh_node *nodes;       /* graph storage */
    size_t cap_nodes;
    llmh_tensor *views;     /* view storage for the graph being built */
    size_t cap_views, n_views;
    float *logits;          /* (n_vocab) host copy of the last token's logits */
    int32_t *host_i32;      /* (n_batch) staging for ids/pos */

    /* memory fabric: the adapters this session selected (it holds a
     * reference to each) and their multipliers gate * store scale */
    llmh__adapter **lora;
    float *lora_mult;
    float *lora_rgate;      /* route()'s gate of each (per-token routing multiplies it in itself) */
    float *lora_scale;      /* store scale of each at selection */
    size_t n_lora;
    llmh_buffer *lora_buf;  /* scratch: lora_r (r_max, n_batch), lora_y (out_max, n_batch) */
    llmh_tensor lora_r, lora_y;
    int64_t lora_rmax;

    /* per-token routing and the hidden-state hook (layer-by-layer eval):
     * tok_route is set only while session.c builds a graph whose LoRA
     * nodes read per-token gates from gate_t (row i: adapter i's gates for
     * the batch's tokens, rewritten before every layer) */
    bool tok_route;
    llmh_buffer *gate_buf;
    llmh_tensor gate_t;     /* F32 (n_batch, gate_cap) */
    size_t gate_cap;
    float *gate_host;       /* (gate_cap * n_batch) staging */
    float *route_out;       /* (n_batch * gate_cap) route_tokens output */
    float *h_host;          /* (n_embd * n_batch) residual stream copy */
    size_t *layer_node;     /* (n_layer + 1) first node of each layer, then of the head */
    llmh_hidden_hook hidden_hook;
    void *hidden_user;
};

/* A graph under construction: node and view pools (borrowed arrays). */
typedef struct llmh__gb {
    llmh_node *nodes;
    size_t cap_nodes, n;
    llmh_tensor *views;
    size_t cap_views, n_views;
    bool overflow;          /* a pool ran out (nodes/views were dropped) */
} llmh__gb;

/* A dense tensor (ne0, ne1, ne2) of `type` at `offset` in buf; data set
 * when host_base (the buffer's host address) is given. */
void llmh__init_tensor(llmh_tensor *t, llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2, llmh_buffer *buf,
                       size_t offset, char *host_base);
/* x rounded up to a multiple of 256 bytes (buffer sub-allocation). */
size_t llmh__align256(size_t x);

/* Append a node (NULL and g->overflow set when the pool is full). */
llmh_node *llmh__g_node(llmh__gb *g, llmh_op op, llmh_tensor *dst, const llmh_tensor *a, const llmh_tensor *b,
                        const llmh_tensor *c);
/* A strided view of t kept in the graph's view pool. */
llmh_tensor *llmh__g_view3(llmh__gb *g, const llmh_tensor *t, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1,
                           size_t nb2, size_t byte_off);
void llmh__g_rms_norm(llmh__gb *g, llmh_tensor *dst, const llmh_tensor *src, const llmh_tensor *w, float eps);
void llmh__g_rope(llmh__gb *g, llmh_tensor *x, const llmh_tensor *pos, const llmh_model *m);
/* dst += the LoRA deltas of session s's adapters for (layer, target). dst
 * (out, n) contiguous, x (in, n); may be column views of a larger batch. */
void llmh__g_lora(llmh__gb *g, llmh_session *s, llmh_tensor *dst, const llmh_tensor *x, int64_t layer, int target);
/* dst = w x (+ the LoRA deltas of session s's adapters for (layer, target);
 * s may be NULL for none) (+ b). dst (out, n) contiguous, x (in, n). */
void llmh__g_matmul(llmh__gb *g, llmh_session *s, llmh_tensor *dst, const llmh_tensor *w, const llmh_tensor *x,
                    const llmh_tensor *b, int64_t layer, int target);

#endif

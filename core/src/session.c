/* session.c — a conversation's state: KV cache, activation buffers, and the
 * transformer forward pass built as a graph of backend ops.
 *
 * The forward pass for llama / qwen2 / qwen3 (per layer):
 *   xn  = rms_norm(x) * attn_norm
 *   q,k,v = W{q,k,v} xn (+ bias)          ; qwen3: rms_norm per head * {q,k}_norm
 *   rope(q), rope(k)                       ; interleaved (llama) or NeoX (qwen)
 *   K/V cache[pos..] = k, v
 *   a   = attention(q, K[0..pos+n), V[0..pos+n))   causal, GQA
 *   x  += Wo a
 *   xn  = rms_norm(x) * ffn_norm
 *   x  += Wdown (silu(Wgate xn) * Wup xn)
 * then logits = Wout rms_norm(x_last) * output_norm.
 *
 * Context-full policy: eval() refuses (LLMH_ERR_CONTEXT_FULL) a batch that
 * does not fit; nothing is evaluated and the cache is unchanged. Callers may
 * truncate the session and retry (docs/architecture.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "session-internal.h"

/* ------------------------------------------------------------------------ */
/* tensor helpers                                                             */
/* ------------------------------------------------------------------------ */
void llmh__init_tensor(llmh_tensor *t, llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2, llmh_buffer *buf,
                       size_t offset, char *host_base) {
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->type = type;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
    t->n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
    t->nb[0] = llmh_dtype_type_size(type);
    t->nb[1] = t->nb[0] * (size_t)ne0;
    t->nb[2] = t->nb[1] * (size_t)ne1;
    t->nb[3] = t->nb[2] * (size_t)ne2;
    t->buffer = buf;
    t->offset = offset;
    t->data = host_base ? host_base + offset : NULL;
}

static size_t bytes_of(llmh_dtype type, int64_t n) { return llmh_dtype_type_size(type) * (size_t)n; }

size_t llmh__align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* A view of t with new shape (ne0, ne1, ne2) and strides (nb1, nb2) starting
 * `byte_off` bytes in. Stored in the graph's view pool (NULL when full). */
llmh_tensor *llmh__g_view3(llmh__gb *g, const llmh_tensor *t, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1,
                           size_t nb2, size_t byte_off) {
    if (g->n_views >= g->cap_views) {
        g->overflow = true;
        return NULL;
    }
    llmh_tensor *v = &g->views[g->n_views++];
    *v = *t;
    v->ne[0] = ne0;
    v->ne[1] = ne1;
    v->ne[2] = ne2;
    v->ne[3] = 1;
    v->n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
    v->nb[1] = nb1;
    v->nb[2] = nb2;
    v->nb[3] = nb2 * (size_t)ne2;
    v->offset = t->offset + byte_off;
    v->data = t->data ? (char *)t->data + byte_off : NULL;
    v->name = NULL;
    return v;
}

/* The first n columns (tokens) of an activation: (ne0, n) for the 2-D ones,
 * (ne0, heads, n) for the per-head ones (q, k, v, att), whatever n_batch is
 * (with n_batch = 1 a per-head tensor's ne[2] is 1 and cannot tell). */
static llmh_tensor *cols(llmh__gb *g, const llmh_tensor *t, int64_t n, bool per_head) {
    if (per_head) return llmh__g_view3(g, t, t->ne[0], t->ne[1], n, t->nb[1], t->nb[2], 0);
    return llmh__g_view3(g, t, t->ne[0], n, 1, t->nb[1], t->nb[1] * (size_t)n, 0);
}

/* ------------------------------------------------------------------------ */
/* create / free                                                              */
/* ------------------------------------------------------------------------ */
llmh_status llmh_session_create(llmh_model *m, const llmh_session_params *params, llmh_session **out) {
    if (!m || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_create: NULL argument");
    *out = NULL;
    const llmh__hparams *hp = &m->hp;
    llmh_session *s = calloc(1, sizeof *s);
    if (!s) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    s->model = m;
    s->n_ctx = params && params->n_ctx > 0 ? params->n_ctx : m->default_ctx;
    s->n_batch = params && params->n_batch > 0 ? params->n_batch : 512;
    const char *kv = params && params->kv_type ? params->kv_type : m->kv_type;
    llmh_status st = LLMH_OK;
    if (!strcmp(kv, "f16")) s->kv_type = LLMH_DTYPE_F16;
    else if (!strcmp(kv, "f32")) s->kv_type = LLMH_DTYPE_F32;
    else {
        st = llmh__fail(LLMH_ERR_INVALID_ARG, "KV cache type '%s' is not supported (use f16 or f32)", kv);
        goto fail;
    }
    if (s->n_batch > s->n_ctx) s->n_batch = (int32_t)s->n_ctx;
    if (s->kv_type != LLMH_DTYPE_F32 &&
        (!m->be_if->supports(m->be, LLMH_OP_CPY, LLMH_DTYPE_F32, s->kv_type) ||
         !m->be_if->supports(m->be, LLMH_OP_ATTENTION, LLMH_DTYPE_F32, s->kv_type))) {
        st = llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' cannot keep the KV cache as %s",
                        llmh_plugin_descriptor(m->backend_plugin)->name, llmh_dtype_name(s->kv_type));
        goto fail;
    }

    const llmh_backend_iface *bi = m->be_if;
    int64_t L = hp->n_layer, B = s->n_batch, E = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    int64_t H = hp->n_head, HKV = hp->n_head_kv, V = hp->n_vocab;

    /* KV cache */
    size_t kv_layer = llmh__align256(bytes_of(s->kv_type, D * HKV * s->n_ctx));
    if ((st = bi->buffer_alloc(m->be, kv_layer * 2 * (size_t)L, LLMH_BUFFER_KV, &s->kv_buf))) goto fail;
    char *kv_host = bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, s->kv_buf) : NULL;
    s->k_cache = calloc((size_t)L, sizeof *s->k_cache);
    s->v_cache = calloc((size_t)L, sizeof *s->v_cache);
    if (!s->k_cache || !s->v_cache) { st = LLMH_ERR_NO_MEMORY; goto fail; }
    for (int64_t l = 0; l < L; l++) {
        llmh__init_tensor(&s->k_cache[l], s->kv_type, D, HKV, s->n_ctx, s->kv_buf, kv_layer * (size_t)(2 * l), kv_host);
        llmh__init_tensor(&s->v_cache[l], s->kv_type, D, HKV, s->n_ctx, s->kv_buf, kv_layer * (size_t)(2 * l + 1), kv_host);
    }

    /* activations */
    struct { llmh_tensor *t; llmh_dtype type; int64_t ne0, ne1, ne2; } plan[] = {
        {&s->a.ids, LLMH_DTYPE_I32, B, 1, 1},   {&s->a.pos, LLMH_DTYPE_I32, B, 1, 1},
        {&s->a.x, LLMH_DTYPE_F32, E, B, 1},     {&s->a.xn, LLMH_DTYPE_F32, E, B, 1},
        {&s->a.q, LLMH_DTYPE_F32, D, H, B},     {&s->a.k, LLMH_DTYPE_F32, D, HKV, B},
        {&s->a.v, LLMH_DTYPE_F32, D, HKV, B},   {&s->a.att, LLMH_DTYPE_F32, D, H, B},
        {&s->a.o, LLMH_DTYPE_F32, E, B, 1},     {&s->a.g, LLMH_DTYPE_F32, F, B, 1},
        {&s->a.u, LLMH_DTYPE_F32, F, B, 1},     {&s->a.logits, LLMH_DTYPE_F32, V, 1, 1},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
        total += llmh__align256(bytes_of(plan[i].type, plan[i].ne0 * plan[i].ne1 * plan[i].ne2));
    if ((st = bi->buffer_alloc(m->be, total, LLMH_BUFFER_COMPUTE, &s->act_buf))) goto fail;
    char *act_host = bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, s->act_buf) : NULL;
    size_t off = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        llmh__init_tensor(plan[i].t, plan[i].type, plan[i].ne0, plan[i].ne1, plan[i].ne2, s->act_buf, off, act_host);
        off += llmh__align256(bytes_of(plan[i].type, plan[i].ne0 * plan[i].ne1 * plan[i].ne2));
    }

    s->cap_nodes = 8 + (size_t)L * 24;
    s->cap_views = 8 + (size_t)L * 24;
    s->nodes = calloc(s->cap_nodes, sizeof *s->nodes);
    s->views = calloc(s->cap_views, sizeof *s->views);
    s->logits = calloc((size_t)V, sizeof *s->logits);
    s->host_i32 = calloc((size_t)B, sizeof *s->host_i32);
    s->layer_node = calloc((size_t)L + 1, sizeof *s->layer_node);
    if (!s->nodes || !s->views || !s->logits || !s->host_i32 || !s->layer_node) { st = LLMH_ERR_NO_MEMORY; goto fail; }
    /* new sessions start with every adapter in the store, through the router */
    pthread_mutex_lock(&m->adapter_lock);
    bool any = m->n_adapters > 0;
    pthread_mutex_unlock(&m->adapter_lock);
    if (any && (st = llmh_session_set_adapters(s, NULL, NULL, 0))) goto fail;
    *out = s;
    return LLMH_OK;
fail:
    llmh_session_free(s);
    return st;
}

void llmh_session_free(llmh_session *s) {
    if (!s) return;
    llmh_model *m = s->model;
    llmh_session_clear_adapters(s);
    if (s->lora_buf) m->be_if->buffer_free(m->be, s->lora_buf);
    if (s->gate_buf) m->be_if->buffer_free(m->be, s->gate_buf);
    free(s->gate_host);
    free(s->route_out);
    free(s->h_host);
    free(s->layer_node);
    if (s->kv_buf) m->be_if->buffer_free(m->be, s->kv_buf);
    if (s->act_buf) m->be_if->buffer_free(m->be, s->act_buf);
    free(s->k_cache);
    free(s->v_cache);
    free(s->nodes);
    free(s->views);
    free(s->logits);
    free(s->host_i32);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* graph                                                                      */
/* ------------------------------------------------------------------------ */
llmh_node *llmh__g_node(llmh__gb *g, llmh_op op, llmh_tensor *dst, const llmh_tensor *a, const llmh_tensor *b,
                        const llmh_tensor *c) {
    if (g->n >= g->cap_nodes || !dst) {
        g->overflow = true;
        return NULL;
    }
    llmh_node *nd = &g->nodes[g->n++];
    memset(nd, 0, sizeof *nd);
    nd->struct_size = sizeof *nd;
    nd->op = op;
    nd->dst = dst;
    nd->src[0] = a;
    nd->src[1] = b;
    nd->src[2] = c;
    return nd;
}

void llmh__g_rms_norm(llmh__gb *g, llmh_tensor *dst, const llmh_tensor *src, const llmh_tensor *w, float eps) {
    llmh_node *nd = llmh__g_node(g, LLMH_OP_RMS_NORM, dst, src, w, NULL);
    if (nd) nd->fp[0] = eps;
}

/* dst += s_i * B_i (A_i x) for every selected adapter that adapts this
 * projection: one LLMH_OP_LORA node per adapter where the backend runs it
 * for the adapter's storage type (consecutive nodes on one dst and x, which
 * a backend may fuse), else as llama.cpp does it: the two products, the
 * scale, the add. With per-token routing (s->tok_route) each adapter's
 * gates for the batch's tokens come from row i of s->gate_t (LORA's src3;
 * a MUL by a [1, n] gate row in the fallback) and the multiplier is the
 * store scale alone (route_tokens folds route()'s gate in). dst is (out, n)
 * contiguous; x is (in, n). */
void llmh__g_lora(llmh__gb *g, llmh_session *s, llmh_tensor *dst, const llmh_tensor *x, int64_t layer, int target) {
    int64_t n = dst->ne[1];
    size_t idx = (size_t)layer * LLMH__LORA_N + (size_t)target;
    for (size_t i = 0; i < s->n_lora; i++) {
        const llmh__adapter *ad = s->lora[i];
        const llmh_tensor *A = &ad->a[idx], *B = &ad->b[idx];
        if (!A->ne[0]) continue;
        bool tok = s->tok_route && s->gate_cap > i;
        float sc = llmh__adapter_pair_scale(ad, idx, tok ? s->lora_scale[i] : s->lora_mult[i]);
        size_t goff = sizeof(float) * i * (size_t)s->n_batch;
        if (ad->lora_op) {
            const llmh_tensor *gate = NULL;
            if (tok && !(gate = llmh__g_view3(g, &s->gate_t, n, 1, 1, sizeof(float) * (size_t)n,
                                              sizeof(float) * (size_t)n, goff)))
                return;
            llmh_node *nd = llmh__g_node(g, LLMH_OP_LORA, dst, A, x, B);
            if (!nd) return;
            nd->src[3] = gate;
            nd->fp[0] = sc;
            continue;
        }
        int64_t r = A->ne[1], out = B->ne[1];
        llmh_tensor *t_r = llmh__g_view3(g, &s->lora_r, r, n, 1, sizeof(float) * (size_t)r, sizeof(float) * (size_t)(r * n), 0);
        llmh_tensor *t_y =
            llmh__g_view3(g, &s->lora_y, out, n, 1, sizeof(float) * (size_t)out, sizeof(float) * (size_t)(out * n), 0);
        if (!t_r || !t_y) {
            g->overflow = true;
            return;
        }
        llmh__g_node(g, LLMH_OP_MUL_MAT, t_r, A, x, NULL);
        llmh__g_node(g, LLMH_OP_MUL_MAT, t_y, B, t_r, NULL);
        llmh_node *sn = llmh__g_node(g, LLMH_OP_SCALE, t_y, t_y, NULL, NULL);
        if (sn) sn->fp[0] = sc;
        if (tok) {
            /* the gate row as [1, n]: broadcast down each column of y */
            llmh_tensor *grow = llmh__g_view3(g, &s->gate_t, 1, n, 1, sizeof(float), sizeof(float) * (size_t)n, goff);
            if (!grow) return;
            llmh__g_node(g, LLMH_OP_MUL, t_y, t_y, grow, NULL);
        }
        llmh__g_node(g, LLMH_OP_ADD, dst, dst, t_y, NULL);
    }
}

void llmh__g_matmul(llmh__gb *g, llmh_session *s, llmh_tensor *dst, const llmh_tensor *w, const llmh_tensor *x,
                    const llmh_tensor *b, int64_t layer, int target) {
    llmh__g_node(g, LLMH_OP_MUL_MAT, dst, w, x, NULL);
    if (s && s->n_lora) llmh__g_lora(g, s, dst, x, layer, target);
    if (b) llmh__g_node(g, LLMH_OP_ADD, dst, dst, b, NULL);
}

void llmh__g_rope(llmh__gb *g, llmh_tensor *x, const llmh_tensor *pos, const llmh_model *m) {
    llmh_node *nd = llmh__g_node(g, LLMH_OP_ROPE, x, x, pos, m->rope_freqs);
    if (!nd) return;
    nd->ip[0] = (int32_t)m->hp.n_rot;
    nd->ip[1] = m->hp.rope_mode;
    nd->fp[0] = m->hp.rope_base;
    nd->fp[1] = m->hp.rope_freq_scale;
}

/* Build the graph for n tokens at cache position s->pos. */
static llmh_status build_graph(llmh_session *s, int64_t n, llmh__gb *g) {
    llmh_model *m = s->model;
    const llmh__hparams *hp = &m->hp;
    llmh__act *a = &s->a;
    *g = (llmh__gb){s->nodes, s->cap_nodes, 0, s->views, s->cap_views, 0, false};
    int64_t D = hp->head_dim, H = hp->n_head, HKV = hp->n_head_kv, E = hp->n_embd;
    int64_t n_kv = s->pos + n;

    llmh_tensor *ids = llmh__g_view3(g, &a->ids, n, 1, 1, a->ids.nb[1], a->ids.nb[2], 0);
    llmh_tensor *pos = llmh__g_view3(g, &a->pos, n, 1, 1, a->pos.nb[1], a->pos.nb[2], 0);
    llmh_tensor *x = cols(g, &a->x, n, false), *xn = cols(g, &a->xn, n, false);
    llmh_tensor *q = cols(g, &a->q, n, true), *k = cols(g, &a->k, n, true), *v = cols(g, &a->v, n, true);
    llmh_tensor *att = cols(g, &a->att, n, true), *o = cols(g, &a->o, n, false);
    llmh_tensor *gt = cols(g, &a->g, n, false), *ut = cols(g, &a->u, n, false);
    if (!ids || !pos || !x || !xn || !q || !k || !v || !att || !o || !gt || !ut)
        return llmh__fail(LLMH_ERR_INTERNAL, "graph view pool exhausted");
    /* 2-D aliases of q/k/v/att: (D*heads, n) for matmul outputs */
    llmh_tensor *q2 = llmh__g_view3(g, q, D * H, n, 1, q->nb[2], q->nb[2] * (size_t)n, 0);
    llmh_tensor *k2 = llmh__g_view3(g, k, D * HKV, n, 1, k->nb[2], k->nb[2] * (size_t)n, 0);
    llmh_tensor *v2 = llmh__g_view3(g, v, D * HKV, n, 1, v->nb[2], v->nb[2] * (size_t)n, 0);
    llmh_tensor *att2 = llmh__g_view3(g, att, D * H, n, 1, att->nb[2], att->nb[2] * (size_t)n, 0);
    /* per-head rows for qwen3's q/k norm: (D, heads*n) */
    llmh_tensor *qh = llmh__g_view3(g, q, D, H * n, 1, q->nb[1], q->nb[1] * (size_t)(H * n), 0);
    llmh_tensor *kh = llmh__g_view3(g, k, D, HKV * n, 1, k->nb[1], k->nb[1] * (size_t)(HKV * n), 0);

    llmh__g_node(g, LLMH_OP_GET_ROWS, x, m->tok_embd, ids, NULL);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const llmh__layer *L = &m->layers[l];
        s->layer_node[l] = g->n;
        llmh__g_rms_norm(g, xn, x, L->attn_norm, hp->norm_eps);
        llmh__g_matmul(g, s, q2, L->wq, xn, L->bq, l, LLMH__LORA_Q);
        llmh__g_matmul(g, s, k2, L->wk, xn, L->bk, l, LLMH__LORA_K);
        llmh__g_matmul(g, s, v2, L->wv, xn, L->bv, l, LLMH__LORA_V);
        if (L->q_norm) llmh__g_rms_norm(g, qh, qh, L->q_norm, hp->norm_eps);
        if (L->k_norm) llmh__g_rms_norm(g, kh, kh, L->k_norm, hp->norm_eps);
        llmh__g_rope(g, q, pos, m);
        llmh__g_rope(g, k, pos, m);
        /* write this batch's K and V into the cache at rows pos .. pos+n */
        const llmh_tensor *kc = &s->k_cache[l], *vc = &s->v_cache[l];
        llmh_tensor *k_dst = llmh__g_view3(g, kc, D, HKV, n, kc->nb[1], kc->nb[2], kc->nb[2] * (size_t)s->pos);
        llmh_tensor *v_dst = llmh__g_view3(g, vc, D, HKV, n, vc->nb[1], vc->nb[2], vc->nb[2] * (size_t)s->pos);
        llmh_tensor *k_all = llmh__g_view3(g, kc, D, HKV, n_kv, kc->nb[1], kc->nb[2], 0);
        llmh_tensor *v_all = llmh__g_view3(g, vc, D, HKV, n_kv, vc->nb[1], vc->nb[2], 0);
        if (!k_dst || !v_dst || !k_all || !v_all) return llmh__fail(LLMH_ERR_INTERNAL, "graph view pool exhausted");
        llmh__g_node(g, LLMH_OP_CPY, k_dst, k, NULL, NULL);
        llmh__g_node(g, LLMH_OP_CPY, v_dst, v, NULL, NULL);
        llmh_node *an = llmh__g_node(g, LLMH_OP_ATTENTION, att, q, k_all, v_all);
        if (an) {
            an->ip[0] = (int32_t)s->pos;
            an->fp[0] = 1.0f / sqrtf((float)D);
        }
        llmh__g_matmul(g, s, o, L->wo, att2, NULL, l, LLMH__LORA_O);
        llmh__g_node(g, LLMH_OP_ADD, x, x, o, NULL);
        llmh__g_rms_norm(g, xn, x, L->ffn_norm, hp->norm_eps);
        llmh__g_matmul(g, s, gt, L->w_gate, xn, NULL, l, LLMH__LORA_GATE);
        llmh__g_matmul(g, s, ut, L->w_up, xn, NULL, l, LLMH__LORA_UP);
        llmh__g_node(g, LLMH_OP_SWIGLU, gt, gt, ut, NULL);
        llmh__g_matmul(g, s, o, L->w_down, gt, NULL, l, LLMH__LORA_DOWN);
        llmh__g_node(g, LLMH_OP_ADD, x, x, o, NULL);
    }
    s->layer_node[hp->n_layer] = g->n;
    /* logits of the last token only */
    llmh_tensor *x_last = llmh__g_view3(g, &a->x, E, 1, 1, a->x.nb[1], a->x.nb[1], a->x.nb[1] * (size_t)(n - 1));
    llmh_tensor *xn_last = llmh__g_view3(g, &a->xn, E, 1, 1, a->xn.nb[1], a->xn.nb[1], 0);
    if (!x_last || !xn_last) return llmh__fail(LLMH_ERR_INTERNAL, "graph view pool exhausted");
    llmh__g_rms_norm(g, xn_last, x_last, m->output_norm, hp->norm_eps);
    llmh__g_node(g, LLMH_OP_MUL_MAT, &a->logits, m->output, xn_last, NULL);
    if (g->overflow) return llmh__fail(LLMH_ERR_INTERNAL, "graph node pool exhausted");
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* eval                                                                       */
/* ------------------------------------------------------------------------ */
static llmh_status run_nodes(llmh_session *s, const llmh__gb *g, size_t from, size_t to) {
    if (to <= from) return LLMH_OK;
    llmh_graph graph = {sizeof graph, to - from, g->nodes + from};
    return s->model->be_if->graph_compute(s->model->be, &graph);
}

/* Room for per-token gates of every selected adapter and the host copies
 * of the residual stream. */
static llmh_status layered_scratch(llmh_session *s, bool route) {
    llmh_model *m = s->model;
    const llmh_backend_iface *bi = m->be_if;
    size_t B = (size_t)s->n_batch, E = (size_t)m->hp.n_embd;
    if (!s->h_host && !(s->h_host = malloc(E * B * sizeof(float))))
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the hidden-state copy");
    if (!route || s->gate_cap >= s->n_lora) return LLMH_OK;
    size_t cap = s->n_lora;
    llmh_buffer *buf = NULL;
    llmh_status st = bi->buffer_alloc(m->be, cap * B * sizeof(float), LLMH_BUFFER_COMPUTE, &buf);
    if (st) return st;
    float *gh = malloc(cap * B * sizeof(float)), *ro = malloc(cap * B * sizeof(float));
    if (!gh || !ro) {
        free(gh);
        free(ro);
        bi->buffer_free(m->be, buf);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for per-token gates");
    }
    if (s->gate_buf) bi->buffer_free(m->be, s->gate_buf);
    free(s->gate_host);
    free(s->route_out);
    s->gate_buf = buf;
    s->gate_host = gh;
    s->route_out = ro;
    s->gate_cap = cap;
    llmh__init_tensor(&s->gate_t, LLMH_DTYPE_F32, (int64_t)B, (int64_t)cap, 1, buf, 0,
                bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, buf) : NULL);
    return LLMH_OK;
}

/* The residual stream of the chunk (n columns) to the host. */
static llmh_status read_h(llmh_session *s, int64_t n) {
    llmh_model *m = s->model;
    return m->be_if->buffer_read(m->be, s->act_buf, s->a.x.offset, s->h_host,
                                 (size_t)n * (size_t)m->hp.n_embd * sizeof(float));
}

/* Layer by layer: before layer l the residual stream goes to the hook and
 * to the router's route_tokens, whose per-token gates are written where
 * the layer's LoRA nodes read them. */
static llmh_status eval_layered(llmh_session *s, const llmh__gb *g, int64_t n, bool route) {
    llmh_model *m = s->model;
    const llmh_backend_iface *bi = m->be_if;
    int64_t L = m->hp.n_layer, E = m->hp.n_embd;
    size_t B = (size_t)s->n_batch, k = s->n_lora;
    llmh_status st = run_nodes(s, g, 0, s->layer_node[0]);
    for (int64_t l = 0; l <= L && !st; l++) {
        if ((st = read_h(s, n))) break;
        if (s->hidden_hook) s->hidden_hook(s->hidden_user, (int32_t)l, s->h_host, E, n);
        if (l == L) break;
        if (route) {
            st = llmh__fabric_route_tokens(m, (int32_t)l, s->h_host, E, n, s->lora, s->lora_rgate, k, s->route_out);
            if (st) break;
            for (size_t i = 0; i < k; i++)
                for (int64_t t = 0; t < n; t++) s->gate_host[i * B + (size_t)t] = s->route_out[(size_t)t * k + i];
            if ((st = bi->buffer_write(m->be, s->gate_buf, 0, s->gate_host, k * B * sizeof(float)))) break;
        }
        st = run_nodes(s, g, s->layer_node[l], s->layer_node[l + 1]);
    }
    if (!st) st = run_nodes(s, g, s->layer_node[L], g->n);
    return st;
}

static llmh_status eval_chunk(llmh_session *s, const llmh_token *tokens, int64_t n) {
    llmh_model *m = s->model;
    const llmh_backend_iface *bi = m->be_if;
    llmh_status st;
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "token id %d at batch index %lld is outside the vocabulary (0..%lld)",
                              tokens[i], (long long)i, (long long)m->hp.n_vocab - 1);
        s->host_i32[i] = tokens[i];
    }
    bool route = s->n_lora > 0 && llmh__fabric_per_token(m);
    bool layered = route || s->hidden_hook != NULL;
    llmh__gb g;
    pthread_mutex_lock(&m->compute_lock);
    if (layered && (st = layered_scratch(s, route))) goto out;
    if ((st = bi->buffer_write(m->be, s->act_buf, s->a.ids.offset,
                               s->host_i32, (size_t)n * sizeof(int32_t))))
        goto out;
    for (int64_t i = 0; i < n; i++) s->host_i32[i] = (int32_t)(s->pos + i);
    if ((st = bi->buffer_write(m->be, s->act_buf, s->a.pos.offset, s->host_i32, (size_t)n * sizeof(int32_t))))
        goto out;
    s->tok_route = route;
    st = build_graph(s, n, &g);
    s->tok_route = false;
    if (st) goto out;
    if (layered) st = eval_layered(s, &g, n, route);
    else st = run_nodes(s, &g, 0, g.n);
    if (st) goto out;
    st = bi->buffer_read(m->be, s->act_buf, s->a.logits.offset, s->logits, (size_t)m->hp.n_vocab * sizeof(float));
    if (st == LLMH_OK) s->pos += n;
out:
    pthread_mutex_unlock(&m->compute_lock);
    return st;
}

llmh_status llmh_session_set_hidden_hook(llmh_session *s, llmh_hidden_hook fn, void *user) {
    if (!s) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_set_hidden_hook: NULL session");
    s->hidden_hook = fn;
    s->hidden_user = fn ? user : NULL;
    return LLMH_OK;
}

llmh_status llmh_session_eval(llmh_session *s, const llmh_token *tokens, size_t n) {
    if (!s || (!tokens && n)) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval: NULL argument");
    if (n == 0) return LLMH_OK;
    if ((int64_t)n > s->n_ctx - s->pos)
        return llmh__fail(LLMH_ERR_CONTEXT_FULL,
                          "context full: %zu new tokens do not fit (%lld of %lld cache slots used); "
                          "raise [model] context or shorten the input",
                          n, (long long)s->pos, (long long)s->n_ctx);
    for (size_t done = 0; done < n;) {
        int64_t chunk = (int64_t)(n - done);
        if (chunk > s->n_batch) chunk = s->n_batch;
        llmh_status st = eval_chunk(s, tokens + done, chunk);
        if (st) return st;
        done += (size_t)chunk;
    }
    return LLMH_OK;
}

const float *llmh_session_logits(const llmh_session *s) { return s ? s->logits : NULL; }

int64_t llmh_session_pos(const llmh_session *s) { return s ? s->pos : 0; }

llmh_status llmh_session_truncate(llmh_session *s, int64_t pos) {
    if (!s || pos < 0 || pos > s->pos)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_truncate: position %lld outside 0..%lld",
                          (long long)pos, s ? (long long)s->pos : 0LL);
    s->pos = pos;
    return LLMH_OK;
}

llmh_model *llmh__session_model(const llmh_session *s) { return s ? s->model : NULL; }

/* ------------------------------------------------------------------------ */
/* memory fabric: the session's adapter set                                   */
/* ------------------------------------------------------------------------ */
void llmh_session_clear_adapters(llmh_session *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_lora; i++) llmh__adapter_release(s->lora[i]);
    free(s->lora);
    free(s->lora_mult);
    free(s->lora_rgate);
    free(s->lora_scale);
    s->lora = NULL;
    s->lora_mult = NULL;
    s->lora_rgate = NULL;
    s->lora_scale = NULL;
    s->n_lora = 0;
}

llmh_status llmh_session_set_adapters(llmh_session *s, const char *const *names, const float *scales, size_t n) {
    if (!s || (n && !names)) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_set_adapters: NULL argument");
    llmh_adapter_request req = {names, scales, n, NULL, 0};
    return llmh_session_select_adapters(s, &req);
}

llmh_status llmh_session_select_adapters(llmh_session *s, const llmh_adapter_request *req) {
    static const llmh_adapter_request all = {NULL, NULL, 0, NULL, 0};
    if (!s) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_select_adapters: NULL session");
    if (!req) req = &all;
    if ((req->n_names && !req->names) || (req->n_namespaces && !req->namespaces))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_select_adapters: NULL names or namespaces");
    llmh_model *m = s->model;
    const llmh__hparams *hp = &m->hp;
    llmh__adapter **sel = NULL;
    float *mult = NULL, *rgate = NULL, *scale = NULL;
    size_t n_sel = 0;
    llmh_status st = llmh__fabric_select_ex(m, req, &sel, &mult, &rgate, &scale, &n_sel);
    if (st) return st;
    /* scratch for the largest rank; per-node and per-view room for 5 nodes
     * and 3 views per adapted projection (the fallback with per-token gates) */
    int64_t rmax = 0;
    size_t extra = 0;
    for (size_t i = 0; i < n_sel; i++) {
        if (sel[i]->rank > rmax) rmax = sel[i]->rank;
        extra += (size_t)sel[i]->n_targets;
    }
    const llmh_backend_iface *bi = m->be_if;
    llmh_buffer *nbuf = NULL;
    llmh_tensor nr, ny;
    if (rmax > s->lora_rmax) {
        int64_t out_max = hp->n_embd;
        int64_t dims[3] = {hp->n_ff, hp->n_head * hp->head_dim, hp->n_head_kv * hp->head_dim};
        for (int i = 0; i < 3; i++)
            if (dims[i] > out_max) out_max = dims[i];
        size_t br = ((size_t)rmax * (size_t)s->n_batch * sizeof(float) + 255) & ~(size_t)255;
        size_t by = (size_t)out_max * (size_t)s->n_batch * sizeof(float);
        if ((st = bi->buffer_alloc(m->be, br + by, LLMH_BUFFER_COMPUTE, &nbuf))) goto fail;
        char *host = bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, nbuf) : NULL;
        llmh__init_tensor(&nr, LLMH_DTYPE_F32, rmax, s->n_batch, 1, nbuf, 0, host);
        llmh__init_tensor(&ny, LLMH_DTYPE_F32, out_max, s->n_batch, 1, nbuf, br, host);
    }
    size_t base = 8 + (size_t)hp->n_layer * 24;
    size_t want_nodes = base + 5 * extra, want_views = base + 3 * extra;
    if (want_nodes > s->cap_nodes) {
        llmh_node *nn = realloc(s->nodes, want_nodes * sizeof *nn);
        if (!nn) { st = llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the adapter graph"); goto fail; }
        s->nodes = nn;
        s->cap_nodes = want_nodes;
    }
    if (want_views > s->cap_views) {
        llmh_tensor *nv = realloc(s->views, want_views * sizeof *nv);
        if (!nv) { st = llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the adapter graph"); goto fail; }
        s->views = nv;
        s->cap_views = want_views;
    }
    if (nbuf) {
        if (s->lora_buf) bi->buffer_free(m->be, s->lora_buf);
        s->lora_buf = nbuf;
        s->lora_r = nr;
        s->lora_y = ny;
        s->lora_rmax = rmax;
    }
    llmh_session_clear_adapters(s);
    s->lora = sel;
    s->lora_mult = mult;
    s->lora_rgate = rgate;
    s->lora_scale = scale;
    s->n_lora = n_sel;
    return LLMH_OK;
fail:
    if (nbuf) bi->buffer_free(m->be, nbuf);
    for (size_t i = 0; i < n_sel; i++) llmh__adapter_release(sel[i]);
    free(sel);
    free(mult);
    free(rgate);
    free(scale);
    return st;
}

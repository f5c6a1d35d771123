/* session-batch.c — llmh_session_eval_batch(): several sessions of one model
 * advanced in one graph per step (the server's scheduler batches decode
 * steps this way), so every weight is read once for all their tokens.
 *
 * The items' new tokens are laid side by side as the columns of one batch
 * (item 0's tokens, then item 1's, ...). Per step, one graph:
 *   GET_ROWS of every column; per layer the norms and the q/k/v/o/gate/up/
 *   down MUL_MATs over all columns at once, then each session's LoRA
 *   deltas on its own column views (the sessions' adapter sets may differ),
 *   then the biases; ROPE with each column's own position; per session a
 *   CPY of its k/v columns into its cache and one ATTENTION node of its
 *   query columns over its cache; finally the logits of the last column of
 *   every item that ends in this step, in one MUL_MAT.
 * The operations and their order per column are those of llmh_session_eval
 * (session.c), so a batched item gets what the session alone would get, up
 * to the summation order a backend picks for a wider matrix product.
 *
 * Steps: a graph holds at most LLMH__BATCH_MAX_COLS columns, and one item at
 * most its session's n_batch columns (its LoRA scratch is that wide); longer
 * prefills go on in the next graphs, which also carry the items still
 * unfinished. The logits of an item are read when its last token is in the
 * graph; at most LLMH__BATCH_MAX_OUT items end in one graph (more decode
 * items than that take several graphs).
 *
 * Scratch: the activations of a batch live in a context cached on the model
 * (model->batch), grown to the widest batch seen and freed with the model
 * (llmh__batch_free). It, the graph and every backend call of the batch are
 * guarded by the model's compute_lock, held for the whole call.
 *
 * All or nothing: every item is validated first (session, model, duplicate,
 * context room, token ids); nothing is evaluated when one fails. When the
 * backend fails in a later graph, every session's position is put back
 * where it was (the cache rows written past it are ignored), and the
 * sessions' logits are only written after the last graph succeeded.
 *
 * Per-token routing: a router with route_tokens (gated adapters) computes
 * gates from each token's hidden state before every layer, and a session's
 * hidden-state hook sees its residual stream there; session.c runs those
 * layer by layer. So when the model's router has route_tokens and some
 * item's session uses adapters, or some item's session has a hook, the
 * items are evaluated one after another with llmh_session_eval (same
 * all-or-nothing contract; no weight sharing). docs/batching.md. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session-internal.h"

#define LLMH__BATCH_MAX_COLS 512
/* logits columns per graph (n_vocab floats each: 64 of Qwen2.5's are 39 MB) */
#define LLMH__BATCH_MAX_OUT 64

/* Activation scratch and graph pools of batched steps (one per model). */
struct llmh__batch_ctx {
    int64_t cap_cols;       /* columns the activations hold */
    int64_t cap_out;        /* columns of logits */
    llmh_buffer *buf;
    llmh__act a;            /* as a session's, logits (n_vocab, cap_out) */
    llmh_node *nodes;
    size_t cap_nodes;
    llmh_tensor *views;
    size_t cap_views;
    int32_t *host_i32;      /* (cap_cols) staging for ids/pos */
};

void llmh__batch_free(llmh_model *m) {
    struct llmh__batch_ctx *b = m ? m->batch : NULL;
    if (!b) return;
    if (b->buf) m->be_if->buffer_free(m->be, b->buf);
    free(b->nodes);
    free(b->views);
    free(b->host_i32);
    free(b);
    m->batch = NULL;
}


/* Make the context hold `cols` columns and `outs` logits columns (grown in
 * steps of 16 so decode batches of changing size do not reallocate). Caller
 * holds compute_lock. */
static llmh_status batch_reserve(llmh_model *m, int64_t cols, int64_t outs) {
    struct llmh__batch_ctx *b = m->batch;
    if (!b) {
        if (!(b = calloc(1, sizeof *b))) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the batch context");
        m->batch = b;
    }
    if (b->buf && cols <= b->cap_cols && outs <= b->cap_out) return LLMH_OK;
    int64_t C = cols > b->cap_cols ? (cols + 15) / 16 * 16 : b->cap_cols;
    int64_t O = outs > b->cap_out ? (outs + 15) / 16 * 16 : b->cap_out;
    if (C > LLMH__BATCH_MAX_COLS) C = LLMH__BATCH_MAX_COLS;
    if (O > LLMH__BATCH_MAX_OUT) O = LLMH__BATCH_MAX_OUT;
    const llmh__hparams *hp = &m->hp;
    int64_t E = hp->n_embd, F = hp->n_ff, D = hp->head_dim, H = hp->n_head, HKV = hp->n_head_kv, V = hp->n_vocab;
    llmh__act na;
    struct { llmh_tensor *t; llmh_dtype type; int64_t ne0, ne1, ne2; } plan[] = {
        {&na.ids, LLMH_DTYPE_I32, C, 1, 1},  {&na.pos, LLMH_DTYPE_I32, C, 1, 1},
        {&na.x, LLMH_DTYPE_F32, E, C, 1},    {&na.xn, LLMH_DTYPE_F32, E, C, 1},
        {&na.q, LLMH_DTYPE_F32, D, H, C},    {&na.k, LLMH_DTYPE_F32, D, HKV, C},
        {&na.v, LLMH_DTYPE_F32, D, HKV, C},  {&na.att, LLMH_DTYPE_F32, D, H, C},
        {&na.o, LLMH_DTYPE_F32, E, C, 1},    {&na.g, LLMH_DTYPE_F32, F, C, 1},
        {&na.u, LLMH_DTYPE_F32, F, C, 1},    {&na.logits, LLMH_DTYPE_F32, V, O, 1},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
        total += llmh__align256(llmh_dtype_type_size(plan[i].type) * (size_t)(plan[i].ne0 * plan[i].ne1 * plan[i].ne2));
    int32_t *staging = malloc((size_t)C * sizeof *staging);
    if (!staging) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the batch context");
    /* the old buffer first: peak memory one scratch, not two */
    if (b->buf) m->be_if->buffer_free(m->be, b->buf);
    b->buf = NULL;
    b->cap_cols = b->cap_out = 0;
    free(b->host_i32);
    b->host_i32 = staging;
    llmh_status st = m->be_if->buffer_alloc(m->be, total, LLMH_BUFFER_COMPUTE, &b->buf);
    if (st) {
        b->buf = NULL;
        return st;
    }
    char *host = m->be_if->buffer_host_ptr ? m->be_if->buffer_host_ptr(m->be, b->buf) : NULL;
    size_t off = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        llmh__init_tensor(plan[i].t, plan[i].type, plan[i].ne0, plan[i].ne1, plan[i].ne2, b->buf, off, host);
        off += llmh__align256(llmh_dtype_type_size(plan[i].type) * (size_t)(plan[i].ne0 * plan[i].ne1 * plan[i].ne2));
    }
    b->a = na;
    b->cap_cols = C;
    b->cap_out = O;
    return LLMH_OK;
}

/* Make the node/view pools hold at least n_nodes/n_views. */
static llmh_status batch_pools(struct llmh__batch_ctx *b, size_t n_nodes, size_t n_views) {
    if (n_nodes > b->cap_nodes) {
        llmh_node *nn = realloc(b->nodes, n_nodes * sizeof *nn);
        if (!nn) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the batch graph");
        b->nodes = nn;
        b->cap_nodes = n_nodes;
    }
    if (n_views > b->cap_views) {
        llmh_tensor *nv = realloc(b->views, n_views * sizeof *nv);
        if (!nv) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for the batch graph");
        b->views = nv;
        b->cap_views = n_views;
    }
    return LLMH_OK;
}

/* One item's columns in a graph. */
typedef struct seg {
    llmh_session *s;
    int64_t col;            /* first column */
    int64_t n;              /* columns */
    int64_t pos;            /* cache position of the first one */
    int64_t out;            /* logits column, or -1 when the item goes on */
    size_t item;            /* index in the items */
} seg;

/* Columns [c, c+n) of a contiguous (rows, N) or (D, H, N) activation. */
static llmh_tensor *colv(llmh__gb *g, const llmh_tensor *t, int64_t c, int64_t n) {
    if (t->ne[2] > 1 || t->n_dims == 3)
        return llmh__g_view3(g, t, t->ne[0], t->ne[1], n, t->nb[1], t->nb[2], t->nb[2] * (size_t)c);
    return llmh__g_view3(g, t, t->ne[0], n, 1, t->nb[1], t->nb[1] * (size_t)n, t->nb[1] * (size_t)c);
}

/* True when two sessions apply the same adapters with the same multipliers
 * (their deltas are the same function of a column). */
static bool same_set(const llmh_session *a, const llmh_session *b) {
    if (a->n_lora != b->n_lora) return false;
    for (size_t i = 0; i < a->n_lora; i++)
        if (a->lora[i] != b->lora[i] || memcmp(&a->lora_mult[i], &b->lora_mult[i], sizeof(float)) != 0) return false;
    return true;
}

/* dst = w x over every column, + the LoRA deltas of each session's adapters
 * on its own columns, + b: per column the order of llmh__g_matmul.
 * Neighbouring segments with the same adapter set (run_step puts them
 * side by side) get their deltas in one go, so an adapter shared by
 * several sessions is read once; the run stays within its first session's
 * n_batch columns (the width of its LoRA scratch). */
static void bmatmul(llmh__gb *g, const seg *segs, size_t n_segs, llmh_tensor *dst, const llmh_tensor *w,
                    const llmh_tensor *x, const llmh_tensor *bias, int64_t layer, int target) {
    llmh__g_matmul(g, NULL, dst, w, x, NULL, layer, target);
    for (size_t i = 0; i < n_segs;) {
        size_t j = i + 1;
        int64_t n = segs[i].n;
        while (j < n_segs && n + segs[j].n <= segs[i].s->n_batch && same_set(segs[i].s, segs[j].s)) n += segs[j++].n;
        if (segs[i].s->n_lora) {
            llmh_tensor *dc = colv(g, dst, segs[i].col, n), *xc = colv(g, x, segs[i].col, n);
            if (!dc || !xc) return;
            llmh__g_lora(g, segs[i].s, dc, xc, layer, target);
        }
        i = j;
    }
    if (bias) llmh__g_node(g, LLMH_OP_ADD, dst, dst, bias, NULL);
}

/* Build the graph of one step: N columns in n_segs segments, n_out of which
 * end their item (their logits columns 0..n_out-1). */
static void build_graph(llmh_model *m, struct llmh__batch_ctx *b, const seg *segs, size_t n_segs, int64_t N,
                        int64_t n_out, llmh__gb *g) {
    const llmh__hparams *hp = &m->hp;
    llmh__act *a = &b->a;
    *g = (llmh__gb){b->nodes, b->cap_nodes, 0, b->views, b->cap_views, 0, false};
    int64_t D = hp->head_dim, H = hp->n_head, HKV = hp->n_head_kv;

    llmh_tensor *ids = llmh__g_view3(g, &a->ids, N, 1, 1, a->ids.nb[1], a->ids.nb[1], 0);
    llmh_tensor *pos = llmh__g_view3(g, &a->pos, N, 1, 1, a->pos.nb[1], a->pos.nb[1], 0);
    llmh_tensor *x = colv(g, &a->x, 0, N), *xn = colv(g, &a->xn, 0, N);
    llmh_tensor *q = colv(g, &a->q, 0, N), *k = colv(g, &a->k, 0, N), *v = colv(g, &a->v, 0, N);
    llmh_tensor *att = colv(g, &a->att, 0, N), *o = colv(g, &a->o, 0, N);
    llmh_tensor *gt = colv(g, &a->g, 0, N), *ut = colv(g, &a->u, 0, N);
    if (!ids || !pos || !x || !xn || !q || !k || !v || !att || !o || !gt || !ut) return;
    /* 2-D aliases (D*heads, N) for the matmul outputs, per-head rows
     * (D, heads*N) for qwen3's q/k norms */
    llmh_tensor *q2 = llmh__g_view3(g, q, D * H, N, 1, q->nb[2], q->nb[2] * (size_t)N, 0);
    llmh_tensor *k2 = llmh__g_view3(g, k, D * HKV, N, 1, k->nb[2], k->nb[2] * (size_t)N, 0);
    llmh_tensor *v2 = llmh__g_view3(g, v, D * HKV, N, 1, v->nb[2], v->nb[2] * (size_t)N, 0);
    llmh_tensor *att2 = llmh__g_view3(g, att, D * H, N, 1, att->nb[2], att->nb[2] * (size_t)N, 0);
    llmh_tensor *qh = llmh__g_view3(g, q, D, H * N, 1, q->nb[1], q->nb[1] * (size_t)(H * N), 0);
    llmh_tensor *kh = llmh__g_view3(g, k, D, HKV * N, 1, k->nb[1], k->nb[1] * (size_t)(HKV * N), 0);
    if (!q2 || !k2 || !v2 || !att2 || !qh || !kh) return;

    llmh__g_node(g, LLMH_OP_GET_ROWS, x, m->tok_embd, ids, NULL);
    for (int64_t l = 0; l < hp->n_layer && !g->overflow; l++) {
        const llmh__layer *L = &m->layers[l];
        llmh__g_rms_norm(g, xn, x, L->attn_norm, hp->norm_eps);
        bmatmul(g, segs, n_segs, q2, L->wq, xn, L->bq, l, LLMH__LORA_Q);
        bmatmul(g, segs, n_segs, k2, L->wk, xn, L->bk, l, LLMH__LORA_K);
        bmatmul(g, segs, n_segs, v2, L->wv, xn, L->bv, l, LLMH__LORA_V);
        if (L->q_norm) llmh__g_rms_norm(g, qh, qh, L->q_norm, hp->norm_eps);
        if (L->k_norm) llmh__g_rms_norm(g, kh, kh, L->k_norm, hp->norm_eps);
        llmh__g_rope(g, q, pos, m);
        llmh__g_rope(g, k, pos, m);
        for (size_t i = 0; i < n_segs; i++) {
            const seg *sg = &segs[i];
            const llmh_tensor *kc = &sg->s->k_cache[l], *vc = &sg->s->v_cache[l];
            int64_t n_kv = sg->pos + sg->n;
            llmh_tensor *k_dst = llmh__g_view3(g, kc, D, HKV, sg->n, kc->nb[1], kc->nb[2], kc->nb[2] * (size_t)sg->pos);
            llmh_tensor *v_dst = llmh__g_view3(g, vc, D, HKV, sg->n, vc->nb[1], vc->nb[2], vc->nb[2] * (size_t)sg->pos);
            llmh_tensor *k_all = llmh__g_view3(g, kc, D, HKV, n_kv, kc->nb[1], kc->nb[2], 0);
            llmh_tensor *v_all = llmh__g_view3(g, vc, D, HKV, n_kv, vc->nb[1], vc->nb[2], 0);
            llmh_tensor *kq = colv(g, &a->k, sg->col, sg->n), *vq = colv(g, &a->v, sg->col, sg->n);
            llmh_tensor *qq = colv(g, &a->q, sg->col, sg->n), *aq = colv(g, &a->att, sg->col, sg->n);
            if (!k_dst || !v_dst || !k_all || !v_all || !kq || !vq || !qq || !aq) return;
            llmh__g_node(g, LLMH_OP_CPY, k_dst, kq, NULL, NULL);
            llmh__g_node(g, LLMH_OP_CPY, v_dst, vq, NULL, NULL);
            llmh_node *an = llmh__g_node(g, LLMH_OP_ATTENTION, aq, qq, k_all, v_all);
            if (an) {
                an->ip[0] = (int32_t)sg->pos;
                an->fp[0] = 1.0f / sqrtf((float)D);
            }
        }
        bmatmul(g, segs, n_segs, o, L->wo, att2, NULL, l, LLMH__LORA_O);
        llmh__g_node(g, LLMH_OP_ADD, x, x, o, NULL);
        llmh__g_rms_norm(g, xn, x, L->ffn_norm, hp->norm_eps);
        bmatmul(g, segs, n_segs, gt, L->w_gate, xn, NULL, l, LLMH__LORA_GATE);
        bmatmul(g, segs, n_segs, ut, L->w_up, xn, NULL, l, LLMH__LORA_UP);
        llmh__g_node(g, LLMH_OP_SWIGLU, gt, gt, ut, NULL);
        bmatmul(g, segs, n_segs, o, L->w_down, gt, NULL, l, LLMH__LORA_DOWN);
        llmh__g_node(g, LLMH_OP_ADD, x, x, o, NULL);
    }
    if (n_out == 0) return;
    /* the last column of each item that ends here, normalized into xn's
     * first n_out columns, then one product with the output matrix */
    for (size_t i = 0; i < n_segs; i++) {
        const seg *sg = &segs[i];
        if (sg->out < 0) continue;
        llmh_tensor *xl = colv(g, &a->x, sg->col + sg->n - 1, 1), *xnl = colv(g, &a->xn, sg->out, 1);
        if (!xl || !xnl) return;
        llmh__g_rms_norm(g, xnl, xl, m->output_norm, hp->norm_eps);
    }
    llmh_tensor *xo = colv(g, &a->xn, 0, n_out), *lo = colv(g, &a->logits, 0, n_out);
    if (!xo || !lo) return;
    llmh__g_node(g, LLMH_OP_MUL_MAT, lo, m->output, xo, NULL);
}

/* The per-session path (routers with per-token gates): the items one after
 * another, every session put back (position and logits) on a failure. */
static llmh_status eval_each(const llmh_batch_item *items, size_t n_items, const int64_t *start) {
    llmh_model *m = items[0].session->model;
    size_t V = (size_t)m->hp.n_vocab;
    float *saved = malloc(n_items * V * sizeof *saved);
    if (!saved) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n_items; i++) memcpy(saved + i * V, items[i].session->logits, V * sizeof *saved);
    llmh_status st = LLMH_OK;
    size_t i = 0;
    for (; i < n_items && !st; i++) st = llmh_session_eval(items[i].session, items[i].tokens, items[i].n_tokens);
    if (st)
        for (size_t j = 0; j < i; j++) {
            items[j].session->pos = start[j];
            memcpy(items[j].session->logits, saved + j * V, V * sizeof *saved);
        }
    free(saved);
    return st;
}

/* True when some item needs the per-session, layer-by-layer path: the
 * model's router gates adapters per token and the item's session uses
 * adapters, or the session has a hidden-state hook. */
static bool needs_layered(llmh_model *m, const llmh_batch_item *items, size_t n_items) {
    bool lora = false;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].session->hidden_hook && items[i].n_tokens) return true;
        if (items[i].session->n_lora && items[i].n_tokens) lora = true;
    }
    return lora && llmh__fabric_per_token(m);
}

static llmh_status validate(const llmh_batch_item *items, size_t n_items) {
    llmh_model *m = items[0].session ? items[0].session->model : NULL;
    for (size_t i = 0; i < n_items; i++) {
        const llmh_batch_item *it = &items[i];
        if (!it->session || (!it->tokens && it->n_tokens))
            return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: item %zu has a NULL session or tokens", i);
        if (it->session->model != m)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: item %zu belongs to another model", i);
        for (size_t j = 0; j < i; j++)
            if (items[j].session == it->session)
                return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: items %zu and %zu name the same session",
                                  j, i);
        if (it->n_tokens > (size_t)(it->session->n_ctx - it->session->pos))
            return llmh__fail(LLMH_ERR_CONTEXT_FULL,
                              "batch item %zu: context full: %zu new tokens do not fit (%lld of %lld cache slots used)", i,
                              it->n_tokens, (long long)it->session->pos, (long long)it->session->n_ctx);
        for (size_t k = 0; k < it->n_tokens; k++)
            if (it->tokens[k] < 0 || it->tokens[k] >= m->hp.n_vocab)
                return llmh__fail(LLMH_ERR_INVALID_ARG, "batch item %zu: token id %d at index %zu is outside the vocabulary",
                                  i, it->tokens[k], k);
    }
    return LLMH_OK;
}

/* One graph: fill segs from the items' remaining tokens (done[i] of each
 * evaluated so far), run it, stage the logits of items that end. Caller
 * holds compute_lock. */
static llmh_status run_step(llmh_model *m, const llmh_batch_item *items, size_t n_items, const int64_t *start,
                            int64_t *done, size_t *next, seg *segs, float *stage) {
    const llmh_backend_iface *bi = m->be_if;
    size_t n_segs = 0;
    int64_t N = 0, n_out = 0;
    /* round-robin from *next so long prefills do not starve later items */
    size_t first = *next;
    for (size_t c = 0; c < n_items && N < LLMH__BATCH_MAX_COLS; c++) {
        size_t i = (first + c) % n_items;
        int64_t rem = (int64_t)items[i].n_tokens - done[i];
        if (rem <= 0) continue;
        int64_t t = rem;
        if (t > items[i].session->n_batch) t = items[i].session->n_batch;
        if (t > LLMH__BATCH_MAX_COLS - N) t = LLMH__BATCH_MAX_COLS - N;
        if (t == rem && n_out == LLMH__BATCH_MAX_OUT) break; /* its logits go in the next graph */
        segs[n_segs] = (seg){items[i].session, 0, t, start[i] + done[i], t == rem ? n_out++ : -1, i};
        n_segs++;
        N += t;
        *next = (i + 1) % n_items;
    }
    /* sessions with the same adapter set side by side (stable), then the
     * columns in that order */
    for (size_t i = 0; i < n_segs;) {
        size_t k = i + 1; /* end of segs[i]'s group */
        for (size_t j = i + 1; j < n_segs; j++)
            if (same_set(segs[i].s, segs[j].s)) {
                seg tmp = segs[j];
                memmove(&segs[k + 1], &segs[k], (j - k) * sizeof *segs);
                segs[k++] = tmp;
            }
        i = k;
    }
    for (size_t i = 0, col = 0; i < n_segs; col += (size_t)segs[i].n, i++) segs[i].col = (int64_t)col;
    llmh_status st = batch_reserve(m, N, n_out);
    if (st) return st;
    struct llmh__batch_ctx *b = m->batch;
    /* ids and positions in column order */
    for (size_t i = 0; i < n_segs; i++) {
        size_t it = segs[i].item;
        for (int64_t j = 0; j < segs[i].n; j++) b->host_i32[segs[i].col + j] = items[it].tokens[done[it] + j];
    }
    if ((st = bi->buffer_write(m->be, b->buf, b->a.ids.offset, b->host_i32, (size_t)N * sizeof(int32_t)))) return st;
    for (size_t i = 0; i < n_segs; i++)
        for (int64_t j = 0; j < segs[i].n; j++) b->host_i32[segs[i].col + j] = (int32_t)(segs[i].pos + j);
    if ((st = bi->buffer_write(m->be, b->buf, b->a.pos.offset, b->host_i32, (size_t)N * sizeof(int32_t)))) return st;

    /* pools: a first estimate (the adapters add up to 4 nodes and 2 views
     * per adapted projection and session), doubled while the graph
     * overflows */
    size_t seg_v = 0, lora = 0;
    for (size_t i = 0; i < n_segs; i++) {
        seg_v += segs[i].s->n_lora ? 22 : 8;
        for (size_t j = 0; j < segs[i].s->n_lora; j++) lora += (size_t)segs[i].s->lora[j]->n_targets;
    }
    size_t L = (size_t)m->hp.n_layer;
    size_t want_n = 16 + L * (32 + 3 * n_segs) + 4 * lora + 2 * n_segs;
    size_t want_v = 16 + L * (16 + seg_v) + 2 * lora + 2 * n_segs;
    llmh__gb g;
    for (int tries = 0;; tries++) {
        if ((st = batch_pools(b, want_n, want_v))) return st;
        build_graph(m, b, segs, n_segs, N, n_out, &g);
        if (!g.overflow) break;
        if (tries == 4) return llmh__fail(LLMH_ERR_INTERNAL, "batch graph: node pool exhausted");
        want_n *= 2;
        want_v *= 2;
    }
    llmh_graph graph = {sizeof graph, g.n, g.nodes};
    if ((st = bi->graph_compute(m->be, &graph))) return st;
    size_t V = (size_t)m->hp.n_vocab;
    for (size_t i = 0; i < n_segs; i++) {
        size_t it = segs[i].item;
        done[it] += segs[i].n;
        if (segs[i].out < 0) continue;
        size_t off = b->a.logits.offset + (size_t)segs[i].out * b->a.logits.nb[1];
        if ((st = bi->buffer_read(m->be, b->buf, off, stage + it * V, V * sizeof(float)))) return st;
    }
    return LLMH_OK;
}

llmh_status llmh_session_eval_batch(const llmh_batch_item *items, size_t n_items) {
    if (!items && n_items) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: NULL items");
    if (n_items == 0) return LLMH_OK;
    llmh_status st = validate(items, n_items);
    if (st) return st;
    llmh_model *m = items[0].session->model;
    size_t V = (size_t)m->hp.n_vocab;
    if (n_items > SIZE_MAX / sizeof(float) / V / 2)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: %zu items are too many", n_items);
    int64_t *start = malloc(2 * n_items * sizeof *start);
    seg *segs = malloc(n_items * sizeof *segs);
    float *stage = malloc(n_items * V * sizeof *stage);
    if (!start || !segs || !stage) {
        free(start);
        free(segs);
        free(stage);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for a batch of %zu items", n_items);
    }
    int64_t *done = start + n_items;
    for (size_t i = 0; i < n_items; i++) {
        start[i] = items[i].session->pos;
        done[i] = 0;
    }
    if (needs_layered(m, items, n_items)) {
        st = eval_each(items, n_items, start);
        goto out;
    }
    pthread_mutex_lock(&m->compute_lock);
    size_t next = 0;
    for (;;) {
        bool left = false;
        for (size_t i = 0; i < n_items; i++)
            if (done[i] < (int64_t)items[i].n_tokens) left = true;
        if (!left) break;
        if ((st = run_step(m, items, n_items, start, done, &next, segs, stage))) break;
    }
    if (!st)
        for (size_t i = 0; i < n_items; i++) {
            items[i].session->pos = start[i] + (int64_t)items[i].n_tokens;
            if (items[i].n_tokens) memcpy(items[i].session->logits, stage + i * V, V * sizeof *stage);
        }
    pthread_mutex_unlock(&m->compute_lock);
out:
    free(start);
    free(segs);
    free(stage);
    return st;
}

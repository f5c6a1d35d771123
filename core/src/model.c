/* model.c — load a model: format plugin -> metadata + tensors, architecture
 * hyper-parameters, tokenizer plugin, backend plugin, weights placed in
 * backend buffers (zero-copy when the backend can wrap host memory). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "llmh-fetch.h"
#include "model-internal.h"

static char *dup_str(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ------------------------------------------------------------------------ */
/* metadata                                                                   */
/* ------------------------------------------------------------------------ */
const llmh_value *llmh__meta(const llmh_model *m, const char *key) {
    return llmh_kv_find(&m->meta, key);
}

bool llmh__meta_i64(const llmh_model *m, const char *key, int64_t *out) {
    return llmh_value_as_i64(llmh__meta(m, key), out) != 0;
}

static bool meta_f64(const llmh_model *m, const char *key, double *out) {
    return llmh_value_as_f64(llmh__meta(m, key), out) != 0;
}

static bool meta_str(const llmh_model *m, const char *key, const char **ptr, size_t *len) {
    const llmh_value *v = llmh__meta(m, key);
    if (!v || v->type != LLMH_V_STRING) return false;
    *ptr = v->v.s.ptr;
    *len = (size_t)v->v.s.len;
    return true;
}

/* "<arch>.<suffix>" */
static bool arch_i64(const llmh_model *m, const char *suffix, int64_t *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    return llmh__meta_i64(m, key, out);
}

static bool arch_f64(const llmh_model *m, const char *suffix, double *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    return meta_f64(m, key, out);
}

static llmh_status need_i64(const llmh_model *m, const char *suffix, int64_t lo, int64_t hi, int64_t *out) {
    if (!arch_i64(m, suffix, out))
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: missing or non-integer key '%s.%s'",
                          m->arch_name, suffix);
    if (*out < lo || *out > hi)
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: '%s.%s' = %lld is out of range [%lld, %lld]",
                          m->arch_name, suffix, (long long)*out, (long long)lo, (long long)hi);
    return LLMH_OK;
}

static llmh_status read_hparams(llmh_model *m) {
    llmh__hparams *hp = &m->hp;
    const char *arch;
    size_t arch_len;
    if (!meta_str(m, "general.architecture", &arch, &arch_len))
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: missing 'general.architecture'");
    m->arch_name = dup_str(arch, arch_len);
    if (!m->arch_name) return LLMH_ERR_NO_MEMORY;
    if (!strcmp(m->arch_name, "llama")) {
        hp->arch = LLMH__ARCH_LLAMA;
        hp->rope_mode = LLMH_ROPE_NORMAL;
    } else if (!strcmp(m->arch_name, "qwen2")) {
        hp->arch = LLMH__ARCH_QWEN2;
        hp->rope_mode = LLMH_ROPE_NEOX;
    } else if (!strcmp(m->arch_name, "qwen3")) {
        hp->arch = LLMH__ARCH_QWEN3;
        hp->rope_mode = LLMH_ROPE_NEOX;
    } else {
        return llmh__fail(LLMH_ERR_UNSUPPORTED,
                          "model architecture '%s' is not supported (supported: llama, qwen2, qwen3)",
                          m->arch_name);
    }
    const int64_t big = (int64_t)1 << 24;
    llmh_status st;
    if ((st = need_i64(m, "embedding_length", 1, big, &hp->n_embd))) return st;
    if ((st = need_i64(m, "block_count", 1, 4096, &hp->n_layer))) return st;
    if ((st = need_i64(m, "feed_forward_length", 1, big, &hp->n_ff))) return st;
    if ((st = need_i64(m, "attention.head_count", 1, 65536, &hp->n_head))) return st;
    if (!arch_i64(m, "attention.head_count_kv", &hp->n_head_kv)) hp->n_head_kv = hp->n_head;
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: head_count %lld is not a multiple of head_count_kv %lld",
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    if (!arch_i64(m, "attention.key_length", &hp->head_dim)) {
        if (hp->n_embd % hp->n_head != 0)
            return llmh__fail(LLMH_ERR_FORMAT, "model metadata: embedding_length %lld not divisible by head_count %lld",
                              (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->head_dim < 2 || hp->head_dim > 4096 || hp->head_dim % 2)
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: head dimension %lld is invalid", (long long)hp->head_dim);
    if (!arch_i64(m, "rope.dimension_count", &hp->n_rot)) hp->n_rot = hp->head_dim;
    if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return llmh__fail(LLMH_ERR_FORMAT, "model metadata: rope.dimension_count %lld is invalid", (long long)hp->n_rot);
    if (!arch_i64(m, "context_length", &hp->n_ctx_train) || hp->n_ctx_train < 1) hp->n_ctx_train = 2048;
    double d;
    hp->rope_base = arch_f64(m, "rope.freq_base", &d) ? (float)d : 10000.0f;
    hp->norm_eps = arch_f64(m, "attention.layer_norm_rms_epsilon", &d) ? (float)d : 1e-5f;
    hp->rope_freq_scale = 1.0f;
    {
        const char *type;
        size_t type_len;
        char key[256];
        snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
        if (meta_str(m, key, &type, &type_len) && type_len == 6 && !memcmp(type, "linear", 6) &&
            arch_f64(m, "rope.scaling.factor", &d) && d > 0)
            hp->rope_freq_scale = (float)(1.0 / d);
    }
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* tensors                                                                    */
/* ------------------------------------------------------------------------ */
static const llmh_tensor_info *find_info(const llmh_model *m, const char *name) {
    for (size_t i = 0; i < m->n_infos; i++)
        if (m->infos[i].name && !strcmp(m->infos[i].name, name)) return &m->infos[i];
    return NULL;
}

static void describe_shape(char *buf, size_t n, const int64_t *ne, int nd) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Claim tensor `name` with expected shape (ne0, ne1) (ne1 = 1 for vectors).
 * Missing and not required -> *out = NULL. */
static llmh_status claim(llmh_model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                         llmh_tensor **out) {
    *out = NULL;
    const llmh_tensor_info *ti = find_info(m, name);
    if (!ti) {
        if (!required) return LLMH_OK;
        return llmh__fail(LLMH_ERR_FORMAT, "model file has no tensor '%s' (required by %s)", name, m->arch_name);
    }
    if (ti->ne[0] != ne0 || ti->ne[1] != ne1 || ti->ne[2] != 1 || ti->ne[3] != 1) {
        int64_t want[2] = {ne0, ne1};
        char got_s[96], want_s[64];
        describe_shape(got_s, sizeof got_s, ti->ne, 4);
        describe_shape(want_s, sizeof want_s, want, 2);
        return llmh__fail(LLMH_ERR_FORMAT, "tensor '%s' has shape %s, expected %s for this %s model",
                          name, got_s, want_s, m->arch_name);
    }
    int64_t bs = llmh_dtype_block_size(ti->type);
    if (bs <= 0 || ne0 % bs != 0)
        return llmh__fail(LLMH_ERR_FORMAT, "tensor '%s': type %s (id %d) cannot hold rows of %lld elements",
                          name, llmh_dtype_name(ti->type), (int)ti->type, (long long)ne0);
    uint64_t row = (uint64_t)(ne0 / bs) * llmh_dtype_type_size(ti->type);
    if (ti->size < row * (uint64_t)ne1 || !ti->data)
        return llmh__fail(LLMH_ERR_FORMAT, "tensor '%s': %llu bytes of data, %llu needed", name,
                          (unsigned long long)ti->size, (unsigned long long)(row * (uint64_t)ne1));
    llmh_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->type = ti->type;
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->nb[0] = llmh_dtype_type_size(ti->type);
    t->nb[1] = (size_t)row;
    t->nb[2] = t->nb[3] = (size_t)row * (size_t)ne1;
    t->name = ti->name;
    t->data = (void *)ti->data; /* host bytes until placed in the backend */
    *out = t;
    return LLMH_OK;
}

static llmh_status claim_weights(llmh_model *m) {
    const llmh__hparams *hp = &m->hp;
    size_t cap = 8 + (size_t)hp->n_layer * 16;
    m->tensors = calloc(cap, sizeof *m->tensors);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->tensors || !m->layers) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory for tensor table");

    const llmh_tensor_info *emb = find_info(m, "token_embd.weight");
    if (!emb) return llmh__fail(LLMH_ERR_FORMAT, "model file has no tensor 'token_embd.weight'");
    m->hp.n_vocab = emb->ne[1];
    if (m->hp.n_vocab < 1) return llmh__fail(LLMH_ERR_FORMAT, "token_embd.weight has no rows");

    llmh_status st;
    int64_t E = hp->n_embd, V = m->hp.n_vocab, F = hp->n_ff;
    int64_t QD = hp->n_head * hp->head_dim, KD = hp->n_head_kv * hp->head_dim;
    if ((st = claim(m, "token_embd.weight", E, V, true, &m->tok_embd))) return st;
    if ((st = claim(m, "output_norm.weight", E, 1, true, &m->output_norm))) return st;
    if ((st = claim(m, "output.weight", E, V, false, &m->output))) return st;
    if (!m->output) m->output = m->tok_embd; /* tied embeddings */
    if ((st = claim(m, "rope_freqs.weight", hp->n_rot / 2, 1, false, &m->rope_freqs))) return st;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        llmh__layer *L = &m->layers[l];
        char nm[128];
#define CLAIM(field, suffix, a, b, req)                                            \
    do {                                                                           \
        snprintf(nm, sizeof nm, "blk.%lld." suffix, (long long)l);                 \
        if ((st = claim(m, nm, (a), (b), (req), &L->field))) return st;            \
    } while (0)
        CLAIM(attn_norm, "attn_norm.weight", E, 1, true);
        CLAIM(wq, "attn_q.weight", E, QD, true);
        CLAIM(wk, "attn_k.weight", E, KD, true);
        CLAIM(wv, "attn_v.weight", E, KD, true);
        CLAIM(bq, "attn_q.bias", QD, 1, false);
        CLAIM(bk, "attn_k.bias", KD, 1, false);
        CLAIM(bv, "attn_v.bias", KD, 1, false);
        CLAIM(q_norm, "attn_q_norm.weight", hp->head_dim, 1, hp->arch == LLMH__ARCH_QWEN3);
        CLAIM(k_norm, "attn_k_norm.weight", hp->head_dim, 1, hp->arch == LLMH__ARCH_QWEN3);
        CLAIM(wo, "attn_output.weight", QD, E, true);
        CLAIM(ffn_norm, "ffn_norm.weight", E, 1, true);
        CLAIM(w_gate, "ffn_gate.weight", E, F, true);
        CLAIM(w_up, "ffn_up.weight", E, F, true);
        CLAIM(w_down, "ffn_down.weight", F, E, true);
#undef CLAIM
    }
    /* Norm weights and biases are read as F32 by the ops: convert the few
     * stored as F16/BF16 (HF checkpoints do this) into model-owned copies. */
    size_t n_vec = 0, vec_elems = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims == 1 && m->tensors[i].type != LLMH_DTYPE_F32) {
            n_vec++;
            vec_elems += (size_t)m->tensors[i].ne[0];
        }
    if (n_vec) {
        m->vec_f32 = malloc(vec_elems * sizeof(float));
        if (!m->vec_f32) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory converting norm vectors");
        float *dst = m->vec_f32;
        for (size_t i = 0; i < m->n_tensors; i++) {
            llmh_tensor *t = &m->tensors[i];
            if (t->n_dims != 1 || t->type == LLMH_DTYPE_F32) continue;
            if (llmh_dequantize(t->type, t->data, dst, t->ne[0]) != LLMH_OK)
                return llmh__fail(LLMH_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to f32", t->name,
                                  llmh_dtype_name(t->type));
            t->type = LLMH_DTYPE_F32;
            t->nb[0] = sizeof(float);
            t->nb[1] = t->nb[2] = t->nb[3] = (size_t)t->ne[0] * sizeof(float);
            t->data = dst;
            dst += t->ne[0];
        }
    }
    return LLMH_OK;
}

/* Refuse a model whose ops the backend cannot run, naming the op. */
static llmh_status check_backend_support(llmh_model *m) {
    static const struct { llmh_op op; const char *name; } plain[] = {
        {LLMH_OP_RMS_NORM, "rms_norm"}, {LLMH_OP_ADD, "add"},         {LLMH_OP_MUL, "mul"},
        {LLMH_OP_SWIGLU, "swiglu"},     {LLMH_OP_CPY, "cpy"},         {LLMH_OP_ATTENTION, "attention"},
    };
    const char *bname = llmh_plugin_descriptor(m->backend_plugin)->name;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!m->be_if->supports(m->be, plain[i].op, LLMH_DTYPE_F32, LLMH_DTYPE_F32))
            return llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' does not support op %s, which %s models need",
                              bname, plain[i].name, m->arch_name);
    if (!m->be_if->supports(m->be, LLMH_OP_ROPE, LLMH_DTYPE_F32, LLMH_DTYPE_I32))
        return llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' does not support op rope, which %s models need",
                          bname, m->arch_name);
    if (!m->be_if->supports(m->be, LLMH_OP_GET_ROWS, m->tok_embd->type, LLMH_DTYPE_I32))
        return llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' does not support op get_rows on %s (tensor token_embd.weight)",
                          bname, llmh_dtype_name(m->tok_embd->type));
    for (size_t i = 0; i < m->n_tensors; i++) {
        llmh_tensor *t = &m->tensors[i];
        if (t->n_dims != 2 || t == m->tok_embd) continue;
        if (!m->be_if->supports(m->be, LLMH_OP_MUL_MAT, t->type, LLMH_DTYPE_F32))
            return llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' does not support op mul_mat with %s weights (tensor '%s')",
                              bname, llmh_dtype_name(t->type), t->name);
    }
    if (m->output == m->tok_embd && !m->be_if->supports(m->be, LLMH_OP_MUL_MAT, m->output->type, LLMH_DTYPE_F32))
        return llmh__fail(LLMH_ERR_UNSUPPORTED, "backend '%s' does not support op mul_mat with %s weights (tensor '%s')",
                          bname, llmh_dtype_name(m->output->type), m->output->name);
    return LLMH_OK;
}

static size_t tensor_bytes(const llmh_tensor *t) { return t->nb[1] * (size_t)t->ne[1]; }

/* Put every claimed tensor into backend memory. */
static llmh_status place_weights(llmh_model *m) {
    const llmh_backend_iface *bi = m->be_if;
    llmh_status st;
    if (bi->buffer_wrap_host) {
        m->weight_bufs = calloc(m->n_tensors, sizeof *m->weight_bufs);
        if (!m->weight_bufs) return LLMH_ERR_NO_MEMORY;
        for (size_t i = 0; i < m->n_tensors; i++) {
            llmh_tensor *t = &m->tensors[i];
            llmh_buffer *b = NULL;
            st = bi->buffer_wrap_host(m->be, t->data, tensor_bytes(t), LLMH_BUFFER_WEIGHTS, &b);
            if (st) return st;
            m->weight_bufs[m->n_weight_bufs++] = b;
            t->buffer = b;
            t->offset = 0;
            t->data = bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, b) : NULL;
        }
    } else {
        size_t total = 0;
        for (size_t i = 0; i < m->n_tensors; i++) total += (tensor_bytes(&m->tensors[i]) + 255) & ~(size_t)255;
        m->weight_bufs = calloc(1, sizeof *m->weight_bufs);
        if (!m->weight_bufs) return LLMH_ERR_NO_MEMORY;
        llmh_buffer *b = NULL;
        if ((st = bi->buffer_alloc(m->be, total, LLMH_BUFFER_WEIGHTS, &b))) return st;
        m->weight_bufs[m->n_weight_bufs++] = b;
        char *host = bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, b) : NULL;
        size_t off = 0;
        for (size_t i = 0; i < m->n_tensors; i++) {
            llmh_tensor *t = &m->tensors[i];
            size_t n = tensor_bytes(t);
            if ((st = bi->buffer_write(m->be, b, off, t->data, n))) return st;
            t->buffer = b;
            t->offset = off;
            t->data = host ? host + off : NULL;
            off += (n + 255) & ~(size_t)255;
        }
    }
    if (bi->weight_prepare)
        for (size_t i = 0; i < m->n_tensors; i++)
            if ((st = bi->weight_prepare(m->be, &m->tensors[i]))) return st;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* load / free                                                                */
/* ------------------------------------------------------------------------ */
static llmh_status open_tokenizer(llmh_model *m, const llmh_config *cfg) {
    llmh_status st;
    if (!strcmp(cfg->tokenizer.plugin, "auto"))
        st = llmh_registry_get_tokenizer_for(m->registry, &m->meta, &m->tok_plugin);
    else
        st = llmh_registry_get(m->registry, LLMH_PLUGIN_TOKENIZER, cfg->tokenizer.plugin, &m->tok_plugin);
    if (st) return st;
    m->tok_if = llmh_plugin_iface(m->tok_plugin);
    st = m->tok_if->create(llmh_plugin_state(m->tok_plugin), &m->meta, &cfg->tokenizer.options, &m->tok);
    if (st) return st;
    int32_t nv = m->tok_if->n_vocab(m->tok);
    if (nv > m->hp.n_vocab)
        return llmh__fail(LLMH_ERR_FORMAT, "tokenizer has %d tokens but token_embd.weight only %lld rows",
                          nv, (long long)m->hp.n_vocab);
    /* End of generation: the declared EOS and EOT, plus control tokens
     * whose text is a well-known end marker (Qwen declares <|endoftext|> as
     * EOS but chats end with <|im_end|>), as llama.cpp does. */
    static const char *const eog_texts[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>",
                                            "<|eom_id|>", "<end_of_turn>", "<|end|>", "</s>"};
    size_t k = 0;
    llmh_token eos = m->tok_if->special(m->tok, LLMH_SPECIAL_EOS);
    llmh_token eot = m->tok_if->special(m->tok, LLMH_SPECIAL_EOT);
    for (size_t i = 0; i < LLMH__MAX_EOG; i++) m->eog[i] = -1;
    if (eos >= 0) m->eog[k++] = eos;
    if (eot >= 0 && eot != eos) m->eog[k++] = eot;
    for (int32_t id = 0; id < nv && k < LLMH__MAX_EOG; id++) {
        int32_t type = m->tok_if->token_type(m->tok, id);
        if (type != LLMH_TOKEN_CONTROL && type != LLMH_TOKEN_USER_DEFINED) continue;
        size_t len = 0;
        const char *text = m->tok_if->token_text(m->tok, id, &len);
        if (!text || id == eos || id == eot) continue;
        for (size_t e = 0; e < sizeof eog_texts / sizeof eog_texts[0]; e++)
            if (strlen(eog_texts[e]) == len && !memcmp(eog_texts[e], text, len)) {
                m->eog[k++] = id;
                break;
            }
    }
    m->add_bos = m->tok_if->add_bos_default(m->tok);
    return LLMH_OK;
}

static llmh_status open_backend(llmh_model *m, const llmh_config *cfg) {
    llmh_status st = llmh_registry_get(m->registry, LLMH_PLUGIN_BACKEND, cfg->backend.plugin, &m->backend_plugin);
    if (st) return st;
    m->be_if = llmh_plugin_iface(m->backend_plugin);
    llmh_backend_params bp = {sizeof bp, cfg->backend.device, cfg->backend.threads, &cfg->backend.options};
    return m->be_if->create(llmh_plugin_state(m->backend_plugin), &bp, &m->be);
}

llmh_status llmh_model_load(const llmh_model_params *params, llmh_model **out) {
    if (!params || !params->manifest || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_model_load: NULL argument");
    *out = NULL;
    double t0 = llmh__now_seconds();
    const llmh_config *cfg = llmh_manifest_config(params->manifest);
    if (cfg->model.url) { /* a model by URL: download what is missing into model.path (llmh-fetch.h) */
        llmh_status fst = llmh_fetch_model(cfg);
        if (fst) return fst;
    }
    llmh_model *m = calloc(1, sizeof *m);
    if (!m) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    pthread_mutex_init(&m->compute_lock, NULL);
    pthread_mutex_init(&m->adapter_lock, NULL);
    llmh_status st = LLMH_OK;

    if (params->registry) {
        m->registry = params->registry;
    } else {
        if ((st = llmh_registry_create(&m->registry))) goto fail;
        m->own_registry = true;
        for (size_t i = 0; i < cfg->plugins.n_paths; i++) llmh_registry_add_path(m->registry, cfg->plugins.paths[i]);
        if ((st = llmh_registry_scan(m->registry))) goto fail;
    }

    /* format */
    if (!cfg->model.format || !strcmp(cfg->model.format, "auto"))
        st = llmh_registry_get_format_for(m->registry, cfg->model.path, &m->format_plugin);
    else
        st = llmh_registry_get(m->registry, LLMH_PLUGIN_FORMAT, cfg->model.format, &m->format_plugin);
    if (st) goto fail;
    m->fmt = llmh_plugin_iface(m->format_plugin);
    if ((st = m->fmt->open(llmh_plugin_state(m->format_plugin), cfg->model.path, &cfg->model.options, &m->file)))
        goto fail;
    if ((st = m->fmt->get_metadata(m->file, &m->meta))) goto fail;
    if ((st = m->fmt->get_tensors(m->file, &m->infos, &m->n_infos))) goto fail;

    if ((st = read_hparams(m))) goto fail;
    if ((st = claim_weights(m))) goto fail;
    if ((st = open_tokenizer(m, cfg))) goto fail;
    if ((st = open_backend(m, cfg))) goto fail;
    if ((st = check_backend_support(m))) goto fail;
    if ((st = place_weights(m))) goto fail;
    if ((st = llmh__fabric_load(m, cfg))) goto fail;

    {
        const char *s;
        size_t n;
        if (cfg->generate.chat_template) m->chat_template = strdup(cfg->generate.chat_template);
        else if (meta_str(m, "tokenizer.chat_template", &s, &n)) m->chat_template = dup_str(s, n);
        m->name = meta_str(m, "general.name", &s, &n) ? dup_str(s, n) : strdup("");
    }
    m->default_ctx = cfg->model.context > 0 ? cfg->model.context : 4096;
    snprintf(m->kv_type, sizeof m->kv_type, "%s", cfg->model.kv_type ? cfg->model.kv_type : "f16");
    if (m->default_ctx > m->hp.n_ctx_train)
        LLMH_LOGW("context %lld exceeds the %lld positions '%s' was trained with; output may degrade past them",
                  (long long)m->default_ctx, (long long)m->hp.n_ctx_train, cfg->model.path);

    /* description */
    llmh_model_desc *d = &m->desc;
    d->arch = m->arch_name;
    d->name = m->name ? m->name : "";
    d->n_vocab = m->hp.n_vocab;
    d->n_embd = m->hp.n_embd;
    d->n_layer = m->hp.n_layer;
    d->n_head = m->hp.n_head;
    d->n_head_kv = m->hp.n_head_kv;
    d->head_dim = m->hp.head_dim;
    d->n_ff = m->hp.n_ff;
    d->n_ctx_train = m->hp.n_ctx_train;
    d->rope_base = m->hp.rope_base;
    d->norm_eps = m->hp.norm_eps;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const llmh_tensor *t = &m->tensors[i];
        d->n_params += (uint64_t)(t->ne[0] * t->ne[1]);
        /* bytes streamed per decoded token: every matrix but the embedding
         * table (one row read), plus the output matrix even when tied */
        if (t != m->tok_embd || m->output == m->tok_embd) d->weight_bytes += tensor_bytes(t);
        else d->weight_bytes += t->nb[1];
    }
    d->load_seconds = llmh__now_seconds() - t0;
    LLMH_LOGI("loaded %s model '%s': %lld layers, dim %lld, vocab %lld, %.1f MB of weights in %.3f s",
              m->arch_name, d->name, (long long)d->n_layer, (long long)d->n_embd, (long long)d->n_vocab,
              (double)d->weight_bytes / 1e6, d->load_seconds);
    *out = m;
    return LLMH_OK;

fail:
    if (!*llmh_last_error()) llmh_set_error("loading %s: %s", cfg->model.path, llmh_status_str(st));
    llmh_model_free(m);
    return st;
}

void llmh_model_free(llmh_model *m) {
    if (!m) return;
    llmh__fabric_free(m);
    llmh__batch_free(m);
    if (m->be) {
        if (m->be_if->weight_release)
            for (size_t i = 0; i < m->n_tensors; i++)
                if (m->tensors[i].buffer) m->be_if->weight_release(m->be, &m->tensors[i]);
        for (size_t i = 0; i < m->n_weight_bufs; i++) m->be_if->buffer_free(m->be, m->weight_bufs[i]);
        m->be_if->destroy(m->be);
    }
    if (m->backend_plugin) llmh_plugin_release(m->backend_plugin);
    if (m->tok) m->tok_if->destroy(m->tok);
    if (m->tok_plugin) llmh_plugin_release(m->tok_plugin);
    if (m->file) m->fmt->close(m->file);
    if (m->format_plugin) llmh_plugin_release(m->format_plugin);
    if (m->own_registry) llmh_registry_free(m->registry);
    free(m->weight_bufs);
    free(m->vec_f32);
    free(m->tensors);
    free(m->layers);
    free(m->arch_name);
    free(m->name);
    free(m->chat_template);
    pthread_mutex_destroy(&m->compute_lock);
    pthread_mutex_destroy(&m->adapter_lock);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* accessors and tokenizer helpers                                            */
/* ------------------------------------------------------------------------ */
const llmh_model_desc *llmh_model_describe(const llmh_model *m) { return m ? &m->desc : NULL; }
llmh_registry *llmh_model_registry(const llmh_model *m) { return m ? m->registry : NULL; }
const char *llmh_model_chat_template(const llmh_model *m) { return m ? m->chat_template : NULL; }

const llmh_tokenizer_iface *llmh_model_tokenizer(const llmh_model *m, const llmh_tokenizer **tok) {
    if (tok) *tok = m->tok;
    return m->tok_if;
}

bool llmh_token_is_eog(const llmh_model *m, llmh_token tok) {
    for (size_t i = 0; i < LLMH__MAX_EOG; i++)
        if (m->eog[i] >= 0 && m->eog[i] == tok) return true;
    return false;
}

llmh_status llmh_tokenize(const llmh_model *m, const char *text, size_t len, uint32_t flags,
                          llmh_token **out, size_t *n) {
    size_t cap = len + 8, got = 0;
    llmh_token *buf = malloc(cap * sizeof *buf);
    if (!buf) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory tokenizing %zu bytes", len);
    llmh_status st = m->tok_if->encode(m->tok, text, len, flags, buf, cap, &got);
    if (st == LLMH_ERR_INVALID_ARG && got > cap) {
        llmh_token *nb = realloc(buf, got * sizeof *buf);
        if (!nb) { free(buf); return LLMH_ERR_NO_MEMORY; }
        buf = nb;
        cap = got;
        st = m->tok_if->encode(m->tok, text, len, flags, buf, cap, &got);
    }
    if (st) { free(buf); return st; }
    *out = buf;
    *n = got;
    return LLMH_OK;
}

llmh_status llmh_detokenize(const llmh_model *m, const llmh_token *ids, size_t n, uint32_t flags,
                            char **out, size_t *len) {
    size_t cap = 64, used = 0;
    char *buf = malloc(cap);
    if (!buf) return LLMH_ERR_NO_MEMORY;
    for (size_t i = 0; i < n; i++) {
        size_t got = 0;
        uint32_t f = flags;
        if (i > 0) f &= ~LLMH_DECODE_STRIP_LEADING;
        for (;;) {
            llmh_status st = m->tok_if->token_to_piece(m->tok, ids[i], f, buf + used, cap - used - 1, &got);
            if (st == LLMH_OK) break;
            if (st != LLMH_ERR_INVALID_ARG || got < cap - used - 1) { free(buf); return st; }
            size_t ncap = (used + got + 1) * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) { free(buf); return LLMH_ERR_NO_MEMORY; }
            buf = nb;
            cap = ncap;
        }
        used += got;
        if (cap - used < 32) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return LLMH_ERR_NO_MEMORY; }
            buf = nb;
            cap *= 2;
        }
    }
    buf[used] = 0;
    *out = buf;
    if (len) *len = used;
    return LLMH_OK;
}

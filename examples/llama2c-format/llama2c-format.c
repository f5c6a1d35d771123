/*
 * llama2c-format.c — an out-of-tree llmhost format plugin for llama2.c
 * checkpoints (Karpathy's llama2.c, "legacy" export: the format run.c reads)
 * and their tokenizer.bin. Built against the installed SDK only.
 *
 * Checkpoint (little-endian):
 *   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *     (vocab_size < 0: the classifier is not shared with the embedding)
 *   float32 weights, row-major [out][in] like PyTorch:
 *     token_embedding_table [vocab][dim]
 *     rms_att_weight        [layer][dim]
 *     wq [layer][n_heads*hs][dim], wk/wv [layer][n_kv_heads*hs][dim],
 *     wo [layer][dim][n_heads*hs]
 *     rms_ffn_weight        [layer][dim]
 *     w1 [layer][hidden][dim], w2 [layer][dim][hidden], w3 [layer][hidden][dim]
 *     rms_final_weight      [dim]
 *     freq_cis_real, freq_cis_imag [seq_len][hs/2] (unused: RoPE is recomputed)
 *     wcls [vocab][dim] when not shared
 * A PyTorch [out][in] matrix is exactly GGUF's ne {in, out}, and llama2.c
 * applies RoPE to adjacent pairs (2i, 2i+1), which is GGUF llama's order, so
 * every tensor maps zero-copy with no q/k permutation (checked against
 * stories260K.gguf, which holds the same model).
 *
 * Tokenizer (tokenizer.bin / tok<N>.bin): int32 max_token_length, then per
 * token: float32 score, int32 len, len bytes. llama2.c's exporter wrote
 * SentencePiece pieces with U+2581 replaced by ' ' and BOS/EOS as
 * "\n<s>\n" / "\n</s>\n"; we undo that and expose a GGUF "llama" (SPM)
 * vocabulary: tokenizer.ggml.tokens / scores / token_type.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <llmh-plugin.h>

#define L2C_HEADER_BYTES 28
#define L2C_MAX_DIM (1 << 20)
#define L2C_MAX_TOKENIZER_BYTES (UINT64_C(256) << 20)

struct llmh_model_file {
    const llmh_host_api *host;
    char *path;
    uint8_t *map;
    size_t map_size;
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared_classifier;
    llmh_tensor_info *tensors;
    size_t n_tensors;
    char *names;             /* n_tensors x L2C_NAME_LEN */
    llmh_kv kvs[24];
    size_t n_kvs;
    /* tokenizer */
    char *tok_path;
    uint8_t *tok_bytes;      /* the file, read into memory */
    char *tok_text;          /* converted pieces, back to back */
    llmh_value *tok_items;   /* [vocab] strings */
    llmh_value *score_items; /* [vocab] f32 */
    llmh_value *type_items;  /* [vocab] i32 */
    char *name;              /* general.name */
};

#define L2C_NAME_LEN 48

/* ------------------------------------------------------------------------ */
static llmh_status l2c_fail(struct llmh_model_file *f, llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static llmh_status l2c_fail(struct llmh_model_file *f, llmh_status st, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->host->set_error("%s", msg);
    return st;
}

static int32_t rd_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float rd_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Number of float32 values the checkpoint holds (without wcls). 0 on
 * overflow. All inputs are validated positive and <= L2C_MAX_DIM first. */
static uint64_t l2c_weight_floats(int64_t dim, int64_t hidden, int64_t nl, int64_t nh, int64_t nkv,
                                  int64_t vocab, int64_t seq) {
    int64_t hs = dim / nh, kvd = nkv * hs;
    /* each product < 2^20 * 2^20 * 2^20 = 2^60: no overflow in int64 */
    uint64_t n = (uint64_t)(vocab * dim);
    n += (uint64_t)(nl * dim);             /* rms_att */
    n += (uint64_t)(nl * dim * dim);       /* wq */
    n += (uint64_t)(nl * dim * kvd) * 2;   /* wk, wv */
    n += (uint64_t)(nl * dim * dim);       /* wo */
    n += (uint64_t)(nl * dim);             /* rms_ffn */
    n += (uint64_t)(nl * dim * hidden) * 3; /* w1, w2, w3 */
    n += (uint64_t)dim;                    /* rms_final */
    n += (uint64_t)(seq * hs);             /* freq_cis real + imag: 2 x seq x hs/2 */
    return n;
}

/* Header validity without the file size (shared by probe and open): 1 when
 * valid, else 0 with the reason in buf. */
static int l2c_check_header(const int32_t h[7], char *buf, size_t cap) {
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
                                         "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++) {
        int64_t v = i == 5 && h[i] < 0 ? -(int64_t)h[i] : h[i];
        if (v <= 0 || v > L2C_MAX_DIM) {
            snprintf(buf, cap, "%s = %d at offset %d is out of range 1..%d", names[i], (int)h[i], 4 * i,
                     L2C_MAX_DIM);
            return 0;
        }
    }
    const char *why = NULL;
    if (h[0] % h[3] != 0) why = "dim is not a multiple of n_heads";
    else if ((h[0] / h[3]) % 2 != 0) why = "head size (dim / n_heads) is odd";
    else if (h[3] % h[4] != 0) why = "n_heads is not a multiple of n_kv_heads";
    else if (h[2] > 4096) why = "n_layers is over 4096";
    if (why) snprintf(buf, cap, "%s", why);
    return why == NULL;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------ */
static void l2c_add(struct llmh_model_file *f, const char *name, int64_t ne0, int64_t ne1,
                    uint64_t *off_floats) {
    llmh_tensor_info *t = &f->tensors[f->n_tensors];
    char *n = f->names + f->n_tensors * L2C_NAME_LEN;
    snprintf(n, L2C_NAME_LEN, "%s", name);
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->name = n;
    t->type = LLMH_DTYPE_F32;
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->size = (uint64_t)ne0 * (uint64_t)ne1 * 4;
    t->file_offset = L2C_HEADER_BYTES + *off_floats * 4;
    t->data = f->map + t->file_offset;
    *off_floats += (uint64_t)ne0 * (uint64_t)ne1;
    f->n_tensors++;
}

/* Per-layer tensor `what` of layer l: the llama2.c file stores each kind for
 * all layers together. */
static void l2c_add_layers(struct llmh_model_file *f, const char *suffix, int64_t ne0, int64_t ne1,
                           uint64_t *off) {
    char name[L2C_NAME_LEN];
    for (int32_t l = 0; l < f->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%d.%s", (int)l, suffix);
        l2c_add(f, name, ne0, ne1, off);
    }
}

static llmh_status l2c_map_tensors(struct llmh_model_file *f) {
    size_t n = 3 + 9 * (size_t)f->n_layers;
    f->tensors = f->host->alloc(n * sizeof *f->tensors);
    f->names = f->host->alloc(n * L2C_NAME_LEN);
    if (!f->tensors || !f->names) return l2c_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    int64_t dim = f->dim, hs = dim / f->n_heads, kvd = (int64_t)f->n_kv_heads * hs;
    uint64_t off = 0;
    l2c_add(f, "token_embd.weight", dim, f->vocab, &off);
    l2c_add_layers(f, "attn_norm.weight", dim, 1, &off);
    l2c_add_layers(f, "attn_q.weight", dim, dim, &off);
    l2c_add_layers(f, "attn_k.weight", dim, kvd, &off);
    l2c_add_layers(f, "attn_v.weight", dim, kvd, &off);
    l2c_add_layers(f, "attn_output.weight", dim, dim, &off);
    l2c_add_layers(f, "ffn_norm.weight", dim, 1, &off);
    l2c_add_layers(f, "ffn_gate.weight", dim, f->hidden, &off);  /* w1 */
    l2c_add_layers(f, "ffn_down.weight", f->hidden, dim, &off);  /* w2 */
    l2c_add_layers(f, "ffn_up.weight", dim, f->hidden, &off);    /* w3 */
    l2c_add(f, "output_norm.weight", dim, 1, &off);
    off += (uint64_t)(f->seq_len * hs); /* freq_cis_real + freq_cis_imag */
    if (f->shared_classifier) {
        /* the classifier is the embedding: same bytes, zero-copy */
        llmh_tensor_info *t = &f->tensors[f->n_tensors];
        char *name = f->names + f->n_tensors * L2C_NAME_LEN;
        snprintf(name, L2C_NAME_LEN, "output.weight");
        *t = f->tensors[0];
        t->name = name;
        f->n_tensors++;
    } else {
        l2c_add(f, "output.weight", dim, f->vocab, &off);
    }
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                 */
/* ------------------------------------------------------------------------ */
static llmh_status l2c_read_file(struct llmh_model_file *f, const char *path, uint8_t **out, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return l2c_fail(f, LLMH_ERR_IO, "%s: cannot open tokenizer: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > L2C_MAX_TOKENIZER_BYTES) {
        close(fd);
        return l2c_fail(f, LLMH_ERR_IO, "%s: not a regular file of at most %llu bytes", path,
                        (unsigned long long)L2C_MAX_TOKENIZER_BYTES);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *b = f->host->alloc(n ? n : 1);
    if (!b) {
        close(fd);
        return l2c_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        f->host->free(b);
        return l2c_fail(f, LLMH_ERR_IO, "%s: short read", path);
    }
    *out = b;
    *len = n;
    return LLMH_OK;
}

/* Find the tokenizer: [model] tokenizer = "...", else tokenizer.bin or
 * tok<vocab>.bin next to the checkpoint. */
static llmh_status l2c_find_tokenizer(struct llmh_model_file *f, const llmh_kv_list *options) {
    const llmh_value *v = llmh_kv_find(options, "tokenizer");
    char buf[PATH_MAX];
    if (v) {
        if (v->type != LLMH_V_STRING || v->v.s.len == 0 || v->v.s.len >= sizeof buf)
            return l2c_fail(f, LLMH_ERR_CONFIG, "%s: [model] tokenizer must be a file path", f->path);
        memcpy(buf, v->v.s.ptr, (size_t)v->v.s.len);
        buf[v->v.s.len] = 0;
    } else {
        const char *slash = strrchr(f->path, '/');
        int dlen = slash ? (int)(slash - f->path) : 1;
        const char *dir = slash ? f->path : ".";
        snprintf(buf, sizeof buf, "%.*s/tokenizer.bin", dlen, dir);
        if (access(buf, R_OK) != 0) snprintf(buf, sizeof buf, "%.*s/tok%d.bin", dlen, dir, (int)f->vocab);
        if (access(buf, R_OK) != 0)
            return l2c_fail(f, LLMH_ERR_NOT_FOUND,
                            "%s: no tokenizer.bin or tok%d.bin next to the checkpoint (set [model] "
                            "tokenizer = \"path\")",
                            f->path, (int)f->vocab);
    }
    size_t n = strlen(buf);
    f->tok_path = f->host->alloc(n + 1);
    if (!f->tok_path) return l2c_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    memcpy(f->tok_path, buf, n + 1);
    return LLMH_OK;
}

static llmh_status l2c_load_tokenizer(struct llmh_model_file *f) {
    size_t len = 0;
    llmh_status st = l2c_read_file(f, f->tok_path, &f->tok_bytes, &len);
    if (st) return st;
    const uint8_t *b = f->tok_bytes;
    if (len < 4) return l2c_fail(f, LLMH_ERR_FORMAT, "%s: too short for max_token_length", f->tok_path);
    int32_t max_len = rd_i32(b);
    if (max_len <= 0 || max_len > 65536)
        return l2c_fail(f, LLMH_ERR_FORMAT, "%s: max_token_length %d at offset 0 is out of range",
                        f->tok_path, (int)max_len);
    size_t n = (size_t)f->vocab;
    /* converted text is at most 3x the input (' ' -> U+2581) */
    f->tok_text = f->host->alloc(len * 3 + 1);
    f->tok_items = f->host->alloc(n * sizeof *f->tok_items);
    f->score_items = f->host->alloc(n * sizeof *f->score_items);
    f->type_items = f->host->alloc(n * sizeof *f->type_items);
    if (!f->tok_text || !f->tok_items || !f->score_items || !f->type_items)
        return l2c_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->tok_path);
    size_t pos = 4, out = 0;
    for (size_t i = 0; i < n; i++) {
        if (len - pos < 8)
            return l2c_fail(f, LLMH_ERR_FORMAT, "%s: token %zu at offset %zu: file ends (the model has %d tokens)",
                            f->tok_path, i, pos, (int)f->vocab);
        float score = rd_f32(b + pos);
        int32_t tl = rd_i32(b + pos + 4);
        if (tl < 0 || tl > max_len || (size_t)tl > len - pos - 8)
            return l2c_fail(f, LLMH_ERR_FORMAT,
                            "%s: token %zu: length %d at offset %zu is negative, over max_token_length %d "
                            "or past end of file (size %zu)",
                            f->tok_path, i, (int)tl, pos + 4, (int)max_len, len);
        const char *p = (const char *)b + pos + 8;
        pos += 8 + (size_t)tl;
        char *dst = f->tok_text + out;
        size_t dl = 0;
        int32_t type = LLMH_TOKEN_NORMAL;
        if (tl == 5 && !memcmp(p, "\n<s>\n", 5)) {
            memcpy(dst, "<s>", 3);
            dl = 3;
            type = LLMH_TOKEN_CONTROL;
        } else if (tl == 6 && !memcmp(p, "\n</s>\n", 6)) {
            memcpy(dst, "</s>", 4);
            dl = 4;
            type = LLMH_TOKEN_CONTROL;
        } else {
            for (int32_t k = 0; k < tl; k++) {
                if (p[k] == ' ') {
                    memcpy(dst + dl, "\xe2\x96\x81", 3); /* U+2581 */
                    dl += 3;
                } else {
                    dst[dl++] = p[k];
                }
            }
            if (tl == 5 && !memcmp(p, "<unk>", 5)) type = LLMH_TOKEN_UNKNOWN;
            else if (tl == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>') type = LLMH_TOKEN_BYTE;
        }
        out += dl;
        f->tok_items[i].type = LLMH_V_STRING;
        f->tok_items[i].v.s.ptr = dst;
        f->tok_items[i].v.s.len = dl;
        f->score_items[i].type = LLMH_V_F32;
        f->score_items[i].v.f = score;
        f->type_items[i].type = LLMH_V_I32;
        f->type_items[i].v.i = type;
    }
    if (pos != len)
        f->host->log(LLMH_LOG_WARN, "llama2c", "%s: %zu bytes after the %d tokens the model uses are ignored",
                     f->tok_path, len - pos, (int)f->vocab);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */
/* ------------------------------------------------------------------------ */
static void kv_u32(struct llmh_model_file *f, const char *key, uint64_t v) {
    llmh_kv *kv = &f->kvs[f->n_kvs++];
    kv->key = key;
    kv->value.type = LLMH_V_U32;
    kv->value.v.u = v;
}

static void kv_f32(struct llmh_model_file *f, const char *key, float v) {
    llmh_kv *kv = &f->kvs[f->n_kvs++];
    kv->key = key;
    kv->value.type = LLMH_V_F32;
    kv->value.v.f = v;
}

static void kv_str(struct llmh_model_file *f, const char *key, const char *s) {
    llmh_kv *kv = &f->kvs[f->n_kvs++];
    kv->key = key;
    kv->value.type = LLMH_V_STRING;
    kv->value.v.s.ptr = s;
    kv->value.v.s.len = strlen(s);
}

static void kv_arr(struct llmh_model_file *f, const char *key, llmh_vtype et, const llmh_value *items) {
    llmh_kv *kv = &f->kvs[f->n_kvs++];
    kv->key = key;
    kv->value.type = LLMH_V_ARRAY;
    kv->value.v.arr.elem_type = et;
    kv->value.v.arr.n = (uint64_t)f->vocab;
    kv->value.v.arr.items = items;
}

static llmh_status l2c_metadata(struct llmh_model_file *f, const llmh_kv_list *options) {
    int64_t ctx = f->seq_len;
    const llmh_value *v = llmh_kv_find(options, "context_length");
    if (v && (!llmh_value_as_i64(v, &ctx) || ctx <= 0 || ctx > INT32_MAX))
        return l2c_fail(f, LLMH_ERR_CONFIG, "%s: [model] context_length must be a positive integer", f->path);
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    size_t bl = strlen(base);
    f->name = f->host->alloc(bl + 1);
    if (!f->name) return l2c_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    memcpy(f->name, base, bl + 1);
    if (bl > 4 && !strcmp(f->name + bl - 4, ".bin")) f->name[bl - 4] = 0;

    kv_str(f, "general.architecture", "llama");
    kv_str(f, "general.name", f->name);
    kv_u32(f, "llama.context_length", (uint64_t)ctx);
    kv_u32(f, "llama.embedding_length", (uint64_t)f->dim);
    kv_u32(f, "llama.feed_forward_length", (uint64_t)f->hidden);
    kv_u32(f, "llama.block_count", (uint64_t)f->n_layers);
    kv_u32(f, "llama.attention.head_count", (uint64_t)f->n_heads);
    kv_u32(f, "llama.attention.head_count_kv", (uint64_t)f->n_kv_heads);
    kv_u32(f, "llama.rope.dimension_count", (uint64_t)(f->dim / f->n_heads));
    kv_f32(f, "llama.rope.freq_base", 10000.0f);                  /* run.c's constant */
    kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);    /* run.c's constant */
    kv_str(f, "tokenizer.ggml.model", "llama");
    kv_arr(f, "tokenizer.ggml.tokens", LLMH_V_STRING, f->tok_items);
    kv_arr(f, "tokenizer.ggml.scores", LLMH_V_F32, f->score_items);
    kv_arr(f, "tokenizer.ggml.token_type", LLMH_V_I32, f->type_items);
    kv_u32(f, "tokenizer.ggml.unknown_token_id", 0); /* fixed ids of llama2.c's SentencePiece vocab */
    kv_u32(f, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(f, "tokenizer.ggml.eos_token_id", 2);
    kv_str(f, "llmh.source_format", "llama2c");
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Plugin entry points                                                       */
/* ------------------------------------------------------------------------ */
static void l2c_close(llmh_model_file *f) {
    if (!f) return;
    const llmh_host_api *h = f->host;
    if (f->map) munmap(f->map, f->map_size);
    h->free(f->tensors);
    h->free(f->names);
    h->free(f->tok_path);
    h->free(f->tok_bytes);
    h->free(f->tok_text);
    h->free(f->tok_items);
    h->free(f->score_items);
    h->free(f->type_items);
    h->free(f->name);
    h->free(f->path);
    h->free(f);
}

static llmh_status l2c_map(struct llmh_model_file *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return l2c_fail(f, LLMH_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return l2c_fail(f, LLMH_ERR_IO, "%s: not a regular file", f->path);
    }
    if (sb.st_size < L2C_HEADER_BYTES) {
        close(fd);
        return l2c_fail(f, LLMH_ERR_FORMAT, "%s: %lld bytes is too short for a llama2.c header (28 bytes)",
                        f->path, (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED) return l2c_fail(f, LLMH_ERR_IO, "%s: mmap failed: %s", f->path, strerror(err));
    f->map = m;
    f->map_size = (size_t)sb.st_size;
    return LLMH_OK;
}

static llmh_status l2c_open(void *state, const char *path, const llmh_kv_list *options,
                            llmh_model_file **out) {
    const llmh_host_api *host = state;
    if (!host || !path || !out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    struct llmh_model_file *f = host->alloc(sizeof *f);
    if (!f) return LLMH_ERR_NO_MEMORY;
    memset(f, 0, sizeof *f);
    f->host = host;
    size_t pl = strlen(path);
    f->path = host->alloc(pl + 1);
    if (!f->path) {
        host->free(f);
        return LLMH_ERR_NO_MEMORY;
    }
    memcpy(f->path, path, pl + 1);

    llmh_status st = l2c_map(f);
    if (!st) {
        int32_t h[7];
        for (int i = 0; i < 7; i++) h[i] = rd_i32(f->map + 4 * i);
        if (!memcmp(f->map, "ak42", 4)) {
            st = l2c_fail(f, LLMH_ERR_UNSUPPORTED,
                          "%s: llama2.c export version %d (magic \"ak42\") is not supported; export "
                          "with --version 0 (the legacy format run.c reads)",
                          path, (int)rd_i32(f->map + 4));
        } else {
            char why[160];
            if (!l2c_check_header(h, why, sizeof why))
                st = l2c_fail(f, LLMH_ERR_FORMAT, "%s: not a llama2.c checkpoint: %s", path, why);
        }
        if (!st) {
            f->dim = h[0], f->hidden = h[1], f->n_layers = h[2], f->n_heads = h[3], f->n_kv_heads = h[4];
            f->shared_classifier = h[5] > 0;
            f->vocab = h[5] > 0 ? h[5] : -h[5];
            f->seq_len = h[6];
            uint64_t floats = l2c_weight_floats(f->dim, f->hidden, f->n_layers, f->n_heads, f->n_kv_heads,
                                                f->vocab, f->seq_len);
            if (!f->shared_classifier) floats += (uint64_t)f->vocab * (uint64_t)f->dim;
            uint64_t want = L2C_HEADER_BYTES + floats * 4;
            if (want != f->map_size)
                st = l2c_fail(f, LLMH_ERR_FORMAT,
                              "%s: the header (dim %d, hidden %d, %d layers, %d/%d heads, vocab %d%s, "
                              "seq_len %d) needs %llu bytes but the file has %zu",
                              path, (int)f->dim, (int)f->hidden, (int)f->n_layers, (int)f->n_heads,
                              (int)f->n_kv_heads, (int)f->vocab, f->shared_classifier ? " shared" : "",
                              (int)f->seq_len, (unsigned long long)want, f->map_size);
        }
    }
    if (!st) st = l2c_map_tensors(f);
    if (!st) st = l2c_find_tokenizer(f, options);
    if (!st) st = l2c_load_tokenizer(f);
    if (!st) st = l2c_metadata(f, options);
    if (st) {
        l2c_close(f);
        return st;
    }
    *out = f;
    return LLMH_OK;
}

static int32_t l2c_probe_file(void *state, const char *path, const uint8_t *head, size_t head_len) {
    (void)state;
    if (!head || head_len < L2C_HEADER_BYTES) return 0;
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = rd_i32(head + 4 * i);
    char why[160];
    if (!l2c_check_header(h, why, sizeof why)) return 0;
    /* the header must also predict the file size exactly */
    struct stat sb;
    if (!path || stat(path, &sb) != 0) return 0;
    int32_t vocab = h[5] > 0 ? h[5] : -h[5];
    uint64_t floats = l2c_weight_floats(h[0], h[1], h[2], h[3], h[4], vocab, h[6]);
    if (h[5] < 0) floats += (uint64_t)vocab * (uint64_t)h[0];
    return (uint64_t)sb.st_size == L2C_HEADER_BYTES + floats * 4 ? 80 : 0;
}

static llmh_status l2c_get_metadata(llmh_model_file *f, llmh_kv_list *out) {
    if (!f || !out) return LLMH_ERR_INVALID_ARG;
    out->items = f->kvs;
    out->n = f->n_kvs;
    return LLMH_OK;
}

static llmh_status l2c_get_tensors(llmh_model_file *f, const llmh_tensor_info **out, size_t *n) {
    if (!f || !out || !n) return LLMH_ERR_INVALID_ARG;
    *out = f->tensors;
    *n = f->n_tensors;
    return LLMH_OK;
}

static llmh_status l2c_init(const llmh_host_api *host, void **state) {
    *state = (void *)host;
    return LLMH_OK;
}

static const llmh_format_iface l2c_iface = {
    .struct_size = sizeof(llmh_format_iface),
    .probe_file = l2c_probe_file,
    .open = l2c_open,
    .close = l2c_close,
    .get_metadata = l2c_get_metadata,
    .get_tensors = l2c_get_tensors,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_FORMAT, "llama2c", "1.0.0", "MIT",
                   "llama2.c checkpoints (legacy export) + tokenizer.bin, as GGUF llama names", 10, NULL,
                   l2c_init, NULL, &l2c_iface, NULL)

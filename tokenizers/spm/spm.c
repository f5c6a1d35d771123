/*
 * spm.c — SentencePiece BPE tokenizer plugin ("spm"), equivalent to
 * llama.cpp's llama-spm tokenizer, built from GGUF metadata
 * (tokenizer.ggml.model == "llama": tokens, scores, token_type).
 *
 * encode(): split the text at special tokens (tok-common.c); each text
 * fragment gets the dummy prefix space when it starts the input or follows a
 * special token (unless LLMH_ENCODE_NO_LEADING_SPACE or
 * tokenizer.ggml.add_space_prefix = false), spaces become U+2581, and the
 * fragment is split into UTF-8 characters. Adjacent symbols whose
 * concatenation is a vocab piece are merged, highest piece score first (ties:
 * leftmost). A final symbol that is not a piece is emitted as <0xXX> byte
 * tokens (or the unknown token when the vocab has no byte token).
 */
#include <stdlib.h>
#include <string.h>

#include "tok-common.h"

struct llmh_tokenizer {
    tokc_vocab v; /* must stay first: tok-common reads it through the handle */
    float *score;               /* n_vocab piece scores */
    llmh_token byte_tok[256];   /* <0xXX> token of each byte, or -1 */
    int add_space_prefix;
    int split_words;            /* no mergeable piece has U+2581 after another
                                   character: words merge independently */
};

/* ====================================================================== */
/* Building                                                                */
/* ====================================================================== */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Token types that ordinary text may produce by merging. */
static int mergeable(int type) {
    return type == LLMH_TOKEN_NORMAL || type == LLMH_TOKEN_USER_DEFINED || type == LLMH_TOKEN_UNUSED;
}

/* Is there a U+2581 at u[p..p+3) (caller checks the bounds)? */
static int is_space_at(const unsigned char *u, size_t p) {
    return u[p] == 0xE2 && u[p + 1] == 0x96 && u[p + 2] == 0x81;
}

static llmh_status build_pieces(llmh_tokenizer *t) {
    tokc_vocab *v = &t->v;
    tokc_bytes arena = {0};
    llmh_status st = LLMH_OK;
    uint64_t *off = malloc(((size_t)v->n_vocab + 1) * sizeof(uint64_t));
    if (!off) return LLMH_ERR_NO_MEMORY;
    for (int32_t id = 0; id < v->n_vocab && !st; id++) {
        size_t n;
        const char *s = tokc_strtab_get(&v->tab, id, &n);
        off[id] = arena.n;
        switch (v->type[id]) {
        case LLMH_TOKEN_NORMAL: {
            size_t i = 0;
            while (i < n && !st) {
                if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    st = tokc_bytes_append(&arena, " ", 1);
                    i += 3;
                } else {
                    st = tokc_bytes_append(&arena, s + i, 1);
                    i++;
                }
            }
            break;
        }
        case LLMH_TOKEN_BYTE: {
            int b = parse_byte_token(s, n);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                st = tokc_bytes_append(&arena, &c, 1);
            } else {
                st = tokc_bytes_append(&arena, s, n);
            }
            break;
        }
        case LLMH_TOKEN_CONTROL: case LLMH_TOKEN_UNKNOWN: case LLMH_TOKEN_USER_DEFINED:
            st = tokc_bytes_append(&arena, s, n);
            break;
        default: /* unused: renders nothing */
            break;
        }
    }
    off[v->n_vocab] = arena.n;
    if (!st) st = tokc_vocab_set_pieces(v, &arena, off);
    tokc_bytes_free(&arena);
    free(off);
    return st;
}

static llmh_status load(llmh_tokenizer *t, const llmh_kv_list *meta) {
    int bad = 0;
    llmh_status st;
    const llmh_value *toks = tokc_meta_array(meta, "tokenizer.ggml.tokens", LLMH_V_STRING, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    if (!toks || toks->v.arr.n == 0) {
        TOKC_ERR("spm: metadata key 'tokenizer.ggml.tokens' is missing or empty");
        return LLMH_ERR_NOT_FOUND;
    }
    if (toks->v.arr.n >= (uint64_t)INT32_MAX) {
        TOKC_ERR("spm: tokenizer.ggml.tokens has %llu entries, too many", (unsigned long long)toks->v.arr.n);
        return LLMH_ERR_FORMAT;
    }
    int32_t n = (int32_t)toks->v.arr.n;
    const llmh_value *types = tokc_meta_array(meta, "tokenizer.ggml.token_type", -1, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    const llmh_value *scores = tokc_meta_array(meta, "tokenizer.ggml.scores", -1, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    if (types && types->v.arr.n < (uint64_t)n) {
        TOKC_ERR("spm: tokenizer.ggml.token_type has %llu entries for %d tokens", (unsigned long long)types->v.arr.n, (int)n);
        return LLMH_ERR_FORMAT;
    }
    if (scores && scores->v.arr.n < (uint64_t)n) {
        TOKC_ERR("spm: tokenizer.ggml.scores has %llu entries for %d tokens", (unsigned long long)scores->v.arr.n, (int)n);
        return LLMH_ERR_FORMAT;
    }
    if ((st = tokc_strtab_init(&t->v.tab, n))) { TOKC_ERR("spm: out of memory"); return st; }
    t->v.type = malloc((size_t)n);
    t->score = malloc((size_t)n * sizeof(float));
    if (!t->v.type || !t->score) { TOKC_ERR("spm: out of memory"); return LLMH_ERR_NO_MEMORY; }
    for (int32_t i = 0; i < n; i++) {
        const llmh_value *s = &toks->v.arr.items[i];
        if (s->type != LLMH_V_STRING || (s->v.s.len && !s->v.s.ptr)) {
            TOKC_ERR("spm: tokenizer.ggml.tokens[%d] is not a string", (int)i);
            return LLMH_ERR_FORMAT;
        }
        int32_t id;
        if ((st = tokc_strtab_add(&t->v.tab, s->v.s.ptr, (size_t)s->v.s.len, 0, &id))) {
            TOKC_ERR("spm: out of memory or oversized token at tokenizer.ggml.tokens[%d]", (int)i);
            return st;
        }
        int64_t ty = LLMH_TOKEN_NORMAL;
        if (types && !llmh_value_as_i64(&types->v.arr.items[i], &ty)) ty = LLMH_TOKEN_NORMAL;
        t->v.type[i] = (ty >= LLMH_TOKEN_NORMAL && ty <= LLMH_TOKEN_BYTE) ? (int8_t)ty : LLMH_TOKEN_NORMAL;
        double sc = 0.0;
        if (scores && !llmh_value_as_f64(&scores->v.arr.items[i], &sc)) sc = 0.0;
        t->score[i] = (float)sc;
    }
    t->v.n_vocab = n;

    t->v.add_bos = 1; /* SentencePiece default; the keys below override */
    t->v.add_eos = 0;
    tokc_vocab_read_specials(&t->v, meta, 1, 2, 0);
    int64_t x;
    t->add_space_prefix = 1;
    if (tokc_meta_int(meta, "tokenizer.ggml.add_space_prefix", &x)) t->add_space_prefix = x != 0;

    for (int b = 0; b < 256; b++) {
        static const char digits[] = "0123456789ABCDEF";
        char hex[6] = {'<', '0', 'x', digits[b >> 4], digits[b & 15], '>'};
        int32_t id = tokc_strtab_find(&t->v.tab, hex, 6);
        if (id < 0) { /* a vocab may spell a byte as the byte itself */
            char c = (char)b;
            id = tokc_strtab_find(&t->v.tab, &c, 1);
        }
        t->byte_tok[b] = id;
    }
    t->v.special[LLMH_SPECIAL_NL] = t->byte_tok['\n'];
    t->split_words = 1;
    for (int32_t id = 0; id < n && t->split_words; id++) {
        size_t len;
        const unsigned char *s = (const unsigned char *)tokc_strtab_get(&t->v.tab, id, &len);
        if (!mergeable(t->v.type[id])) continue;
        for (size_t p = 1; p + 3 <= len; p++)
            if (is_space_at(s, p) && !(p >= 3 && is_space_at(s, p - 3))) { t->split_words = 0; break; }
    }
    if ((st = tokc_vocab_build_specials(&t->v, NULL, NULL))) { TOKC_ERR("spm: out of memory"); return st; }
    tokc_vocab_guess_eot(&t->v);
    if ((st = build_pieces(t))) { TOKC_ERR("spm: out of memory building pieces"); return st; }
    return LLMH_OK;
}

/* ====================================================================== */
/* Encoding                                                                */
/* ====================================================================== */
typedef struct bigram { float score; int32_t left, right; uint32_t size; } bigram;

typedef struct spm_work {
    tokc_bytes text;         /* escaped fragment */
    int32_t *prev, *next;
    uint32_t *start, *len;
    size_t cap;
    bigram *heap;
    size_t heap_n, heap_cap;
} spm_work;

static void work_free(spm_work *w) {
    tokc_bytes_free(&w->text);
    free(w->prev);
    free(w->next);
    free(w->start);
    free(w->len);
    free(w->heap);
}

/* a before b in the queue: higher score, then smaller left index */
static int bigram_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static llmh_status heap_push(spm_work *w, bigram e) {
    if (w->heap_n == w->heap_cap) {
        size_t ncap = w->heap_cap ? w->heap_cap * 2 : 256;
        bigram *h = realloc(w->heap, ncap * sizeof(bigram));
        if (!h) { TOKC_ERR("spm: out of memory"); return LLMH_ERR_NO_MEMORY; }
        w->heap = h;
        w->heap_cap = ncap;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&e, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
    return LLMH_OK;
}

static bigram heap_pop(spm_work *w) {
    bigram top = w->heap[0];
    bigram last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int32_t piece_id(const llmh_tokenizer *t, const char *s, size_t n) {
    int32_t id = tokc_strtab_find(&t->v.tab, s, n);
    return (id >= 0 && mergeable(t->v.type[id])) ? id : -1;
}

static llmh_status try_bigram(const llmh_tokenizer *t, spm_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return LLMH_OK;
    size_t n = (size_t)w->len[left] + w->len[right];
    int32_t id = piece_id(t, w->text.v + w->start[left], n);
    if (id < 0) return LLMH_OK;
    bigram b = {t->score[id], left, right, (uint32_t)n};
    return heap_push(w, b);
}

static llmh_status emit_bytes(const llmh_tokenizer *t, const unsigned char *p, size_t n, tokc_ids *out) {
    llmh_status st;
    for (size_t i = 0; i < n; i++) {
        llmh_token id = t->byte_tok[p[i]];
        if (id < 0) id = t->v.special[LLMH_SPECIAL_UNK];
        if (id < 0) {
            TOKC_ERR("spm: byte 0x%02x has no token in this vocabulary and there is no unknown token", p[i]);
            return LLMH_ERR_UNSUPPORTED;
        }
        if ((st = tokc_ids_push(out, id))) return st;
    }
    return LLMH_OK;
}

static llmh_status merge_range(const llmh_tokenizer *t, spm_work *w, size_t begin, size_t end, tokc_ids *out);

static llmh_status encode_text(const llmh_tokenizer *t, spm_work *w, const char *s, size_t n, int prefix,
                               tokc_ids *out) {
    llmh_status st;
    static const char space[3] = {(char)0xE2, (char)0x96, (char)0x81};
    w->text.n = 0;
    if (prefix && (st = tokc_bytes_append(&w->text, space, 3))) return st;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if ((st = tokc_bytes_append(&w->text, s + i, j - i))) return st;
        if (j < n && (st = tokc_bytes_append(&w->text, space, 3))) return st;
        i = j + 1;
    }
    size_t len = w->text.n;
    if (len == 0) return LLMH_OK;
    if (len > UINT32_MAX / 2) {
        TOKC_ERR("spm: text fragment of %zu bytes is too long", len);
        return LLMH_ERR_INVALID_ARG;
    }
    if (!t->split_words) return merge_range(t, w, 0, len, out);
    /* no piece joins a non-space character to a following U+2581, so every
     * U+2581 after another character starts an independent range */
    const unsigned char *u = (const unsigned char *)w->text.v;
    size_t start = 0;
    for (size_t p = 1; p + 3 <= len; p++) {
        if (is_space_at(u, p) && !(p >= 3 && is_space_at(u, p - 3))) {
            if ((st = merge_range(t, w, start, p, out))) return st;
            start = p;
            p += 2;
        }
    }
    return merge_range(t, w, start, len, out);
}

/* Merge the symbols of w->text[begin, end) and append their tokens. */
static llmh_status merge_range(const llmh_tokenizer *t, spm_work *w, size_t begin, size_t end, tokc_ids *out) {
    llmh_status st;
    size_t len = end - begin;
    if (len == 0) return LLMH_OK;
    /* symbols: UTF-8 characters; an invalid byte is a symbol of its own (so
     * it never swallows the bytes of a following U+2581) */
    if (len > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < len) cap *= 2;
        int32_t *a = realloc(w->prev, cap * sizeof(int32_t));
        if (a) w->prev = a;
        int32_t *b = realloc(w->next, cap * sizeof(int32_t));
        if (b) w->next = b;
        uint32_t *c = realloc(w->start, cap * sizeof(uint32_t));
        if (c) w->start = c;
        uint32_t *d = realloc(w->len, cap * sizeof(uint32_t));
        if (d) w->len = d;
        if (!a || !b || !c || !d) { TOKC_ERR("spm: out of memory"); return LLMH_ERR_NO_MEMORY; }
        w->cap = cap;
    }
    const unsigned char *u = (const unsigned char *)w->text.v;
    int32_t ns = 0;
    for (size_t off = begin; off < end; ns++) {
        size_t k = tokc_utf8_valid_len(u + off, end - off);
        if (k == 0) k = 1;
        w->start[ns] = (uint32_t)off;
        w->len[ns] = (uint32_t)k;
        w->prev[ns] = ns - 1;
        off += k;
        w->next[ns] = off < end ? ns + 1 : -1;
    }
    w->heap_n = 0;
    for (int32_t i = 1; i < ns; i++)
        if ((st = try_bigram(t, w, i - 1, i))) return st;
    while (w->heap_n) {
        bigram b = heap_pop(w);
        int32_t l = b.left, r = b.right;
        if (w->len[l] == 0 || w->len[r] == 0 || w->len[l] + w->len[r] != b.size) continue;
        w->len[l] += w->len[r];
        w->len[r] = 0;
        w->next[l] = w->next[r];
        if (w->next[l] >= 0) w->prev[w->next[l]] = l;
        if ((st = try_bigram(t, w, w->prev[l], l)) || (st = try_bigram(t, w, l, w->next[l]))) return st;
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        int32_t id = piece_id(t, w->text.v + w->start[i], w->len[i]);
        if (id >= 0) st = tokc_ids_push(out, id);
        else st = emit_bytes(t, u + w->start[i], w->len[i], out);
        if (st) return st;
    }
    return LLMH_OK;
}

static llmh_status spm_encode(const llmh_tokenizer *t, const char *text, size_t len, uint32_t flags,
                              llmh_token *out, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!t || (len && !text)) {
        TOKC_ERR("spm: encode: NULL tokenizer or text");
        return LLMH_ERR_INVALID_ARG;
    }
    tokc_ids ids = {0};
    tokc_fragments frags = {0};
    spm_work w;
    memset(&w, 0, sizeof(w));
    llmh_status st = LLMH_OK;
    const int add_prefix = t->add_space_prefix && !(flags & LLMH_ENCODE_NO_LEADING_SPACE);
    if ((flags & LLMH_ENCODE_ADD_BOS) && t->v.special[LLMH_SPECIAL_BOS] >= 0)
        st = tokc_ids_push(&ids, t->v.special[LLMH_SPECIAL_BOS]);
    if (!st && len) st = tokc_partition(&t->v, text, len, flags, &frags);
    int prev_special = 1; /* the first fragment gets the dummy prefix */
    for (size_t i = 0; !st && i < frags.n; i++) {
        if (frags.v[i].id >= 0) {
            st = tokc_ids_push(&ids, frags.v[i].id);
            prev_special = 1;
        } else {
            st = encode_text(t, &w, text + frags.v[i].start, frags.v[i].len, add_prefix && prev_special, &ids);
            prev_special = 0;
        }
    }
    if (!st && (flags & LLMH_ENCODE_ADD_BOS) && t->v.add_eos && t->v.special[LLMH_SPECIAL_EOS] >= 0)
        st = tokc_ids_push(&ids, t->v.special[LLMH_SPECIAL_EOS]);
    if (!st) st = tokc_ids_deliver(&ids, out, cap, n_out);
    work_free(&w);
    tokc_fragments_free(&frags);
    tokc_ids_free(&ids);
    return st;
}

/* ====================================================================== */
/* Plugin interface                                                        */
/* ====================================================================== */
static void spm_destroy(llmh_tokenizer *t) {
    if (!t) return;
    free(t->score);
    tokc_vocab_free(&t->v);
    free(t);
}

static int32_t spm_probe(void *state, const llmh_kv_list *meta) {
    (void)state;
    if (!llmh_kv_find(meta, "tokenizer.ggml.tokens")) return 0;
    return tokc_meta_str_eq(meta, "tokenizer.ggml.model", "llama") ? 90 : 0;
}

static llmh_status spm_create(void *state, const llmh_kv_list *meta, const llmh_kv_list *options,
                              llmh_tokenizer **out) {
    (void)state;
    (void)options;
    if (!out) { TOKC_ERR("spm: create: NULL out"); return LLMH_ERR_INVALID_ARG; }
    *out = NULL;
    size_t n = 0;
    const char *model = tokc_meta_str(meta, "tokenizer.ggml.model", &n);
    if (!model || n != 5 || memcmp(model, "llama", 5) != 0) {
        TOKC_ERR("spm: tokenizer.ggml.model is '%.*s', expected 'llama'", (int)(model ? (n > 64 ? 64 : n) : 0),
                 model ? model : "");
        return LLMH_ERR_UNSUPPORTED;
    }
    llmh_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) { TOKC_ERR("spm: out of memory"); return LLMH_ERR_NO_MEMORY; }
    for (int i = 0; i < TOKC_N_SPECIAL; i++) t->v.special[i] = -1;
    llmh_status st = load(t, meta);
    if (st) {
        spm_destroy(t);
        return st;
    }
    *out = t;
    return LLMH_OK;
}

static const llmh_tokenizer_iface spm_iface = {
    sizeof(llmh_tokenizer_iface),
    spm_probe,
    spm_create,
    spm_destroy,
    tokc_if_n_vocab,
    spm_encode,
    tokc_if_token_to_piece,
    tokc_if_token_text,
    tokc_if_token_type,
    tokc_if_special,
    tokc_if_add_bos_default,
    tokc_if_decode,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_TOKENIZER, "spm", "1.0.0", "MIT",
                   "SentencePiece BPE (llama-spm) from GGUF metadata", 50, NULL, tokc_plugin_init, NULL, &spm_iface,
                   NULL)

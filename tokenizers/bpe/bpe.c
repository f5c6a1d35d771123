/*
 * bpe.c — byte-level BPE tokenizer plugin ("bpe"), as used by GPT-2, Llama 3
 * and Qwen. Built from GGUF tokenizer metadata (tokenizer.ggml.model ==
 * "gpt2") or from an HF tokenizer.json named by "llmh.tokenizer_json"
 * (bpe-json.c).
 *
 * encode(): split the text at special tokens (tok-common.c), normalize
 * (tokenizer.json only), cut each text fragment into words with the
 * pre-tokenizer regexes (PCRE2, UTF + UCP; every regex splits the chunks the
 * previous one produced, keeping matches and gaps), then merge each word's
 * bytes by rank. Symbols are ids: vocab ids, plus "virtual" ids for merge
 * operands that are not tokens, so merging compares integers, never strings.
 * A final symbol that is not a token falls back to one token per byte.
 *
 * Invalid UTF-8 never reaches PCRE2: invalid bytes are shown to the regexes
 * as U+FFFD and mapped back, so the bytes themselves are encoded (and decode
 * gives them back).
 */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ====================================================================== */
/* GPT-2 byte <-> unicode mapping                                          */
/* ====================================================================== */
static int is_printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 non-printable bytes, in order (0x00-0x20, 0x7F-0xA0, 0xAD), map to
 * U+0100.. U+0143; every other byte maps to itself. */
uint32_t bpe_byte_to_cp(uint8_t b) {
    if (is_printable_byte(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (uint32_t)(b - 0x7F);
    return 256u + 67u; /* 0xAD */
}

int bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256) return is_printable_byte(cp) ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k <= 32) return (int)k;
    if (k <= 66) return (int)(0x7F + (k - 33));
    if (k == 67) return 0xAD;
    return -1;
}

/* ====================================================================== */
/* Building                                                                */
/* ====================================================================== */
llmh_status bpe_add_stage(llmh_tokenizer *t, const char *pattern, size_t len, int literal,
                          bpe_split_behavior behavior, const char *where) {
    if (t->n_stages >= BPE_MAX_STAGES) {
        TOKC_ERR("bpe: %s: more than %d pre-tokenizer split stages", where, BPE_MAX_STAGES);
        return LLMH_ERR_UNSUPPORTED;
    }
    int err = 0;
    PCRE2_SIZE erroff = 0;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        TOKC_ERR("bpe: %s: cannot compile pre-tokenizer regex at offset %zu: %s", where, (size_t)erroff,
                 (const char *)msg);
        return LLMH_ERR_FORMAT;
    }
    /* JIT is an optimization; the interpreter is used when it is unavailable */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->stages[t->n_stages].re = re;
    t->stages[t->n_stages].behavior = behavior;
    t->n_stages++;
    return LLMH_OK;
}

static inline size_t merge_slot(int32_t a, int32_t b, size_t mask) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return (size_t)x & mask;
}

llmh_status bpe_init_merges(llmh_tokenizer *t, size_t n_merges) {
    size_t cap = 1024;
    while (cap < n_merges * 2 + 2) {
        if (cap > SIZE_MAX / 4 / sizeof(bpe_merge)) {
            TOKC_ERR("bpe: %zu merges is too many", n_merges);
            return LLMH_ERR_FORMAT;
        }
        cap *= 2;
    }
    t->merges = malloc(cap * sizeof(bpe_merge));
    if (!t->merges) { TOKC_ERR("bpe: out of memory for %zu merges", n_merges); return LLMH_ERR_NO_MEMORY; }
    for (size_t i = 0; i < cap; i++) t->merges[i].left = -1;
    t->merge_cap = cap;
    return LLMH_OK;
}

static const bpe_merge *merge_find(const llmh_tokenizer *t, int32_t a, int32_t b) {
    size_t mask = t->merge_cap - 1;
    size_t i = merge_slot(a, b, mask);
    for (;;) {
        const bpe_merge *m = &t->merges[i];
        if (m->left < 0) return NULL;
        if (m->left == a && m->right == b) return m;
        i = (i + 1) & mask;
    }
}

/* Symbol id for a string: its vocab id, or a new virtual id. */
static llmh_status sym_of(llmh_tokenizer *t, const char *s, size_t n, int32_t *out) {
    int32_t id = tokc_strtab_find(&t->v.tab, s, n);
    if (id >= 0) { *out = id; return LLMH_OK; }
    llmh_status st = tokc_strtab_add(&t->v.tab, s, n, 1, out);
    if (st) TOKC_ERR("bpe: out of memory adding merge symbols");
    return st;
}

llmh_status bpe_add_merge(llmh_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                          int32_t rank) {
    int32_t sa, sb, sr;
    llmh_status st;
    if ((st = sym_of(t, a, alen, &sa)) || (st = sym_of(t, b, blen, &sb))) return st;
    /* the result's text is the concatenation */
    char small[256];
    char *buf = alen + blen <= sizeof(small) ? small : malloc(alen + blen);
    if (!buf) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    st = sym_of(t, buf, alen + blen, &sr);
    if (buf != small) free(buf);
    if (st) return st;
    size_t mask = t->merge_cap - 1;
    size_t i = merge_slot(sa, sb, mask);
    while (t->merges[i].left >= 0) {
        if (t->merges[i].left == sa && t->merges[i].right == sb) return LLMH_OK; /* first rank wins */
        i = (i + 1) & mask;
    }
    t->merges[i].left = sa;
    t->merges[i].right = sb;
    t->merges[i].rank = rank;
    t->merges[i].result = sr;
    return LLMH_OK;
}

/* Decoded bytes of a NORMAL token's byte-level text. */
static llmh_status decode_byte_level(const char *s, size_t n, tokc_bytes *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    llmh_status st;
    while (i < n) {
        size_t k = tokc_utf8_valid_len(u + i, n - i);
        if (k == 0) {
            if ((st = tokc_bytes_append(out, u + i, 1))) return st;
            i++;
            continue;
        }
        int b = bpe_cp_to_byte(tokc_utf8_decode(u + i, k));
        if (b >= 0) {
            unsigned char c = (unsigned char)b;
            if ((st = tokc_bytes_append(out, &c, 1))) return st;
        } else if ((st = tokc_bytes_append(out, u + i, k))) {
            return st;
        }
        i += k;
    }
    return LLMH_OK;
}

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

llmh_status bpe_finish(llmh_tokenizer *t, const uint8_t *lstrip, const uint8_t *rstrip) {
    tokc_vocab *v = &t->v;
    llmh_status st;
    int32_t nsym = v->tab.n;
    t->tok_of_sym = malloc((size_t)nsym * sizeof(int32_t));
    if (!t->tok_of_sym) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    for (int32_t s = 0; s < nsym; s++) {
        int ty = s < v->n_vocab ? v->type[s] : 0;
        t->tok_of_sym[s] = (ty == LLMH_TOKEN_NORMAL || ty == LLMH_TOKEN_USER_DEFINED || ty == LLMH_TOKEN_UNUSED) ? s : -1;
    }
    for (int b = 0; b < 256; b++) {
        char *u = t->byte_chr[b];
        size_t k = tokc_utf8_encode(bpe_byte_to_cp((uint8_t)b), u);
        t->byte_chr_len[b] = (uint8_t)k;
        t->byte_sym[b] = tokc_strtab_find(&v->tab, u, k);
        t->byte_tok[b] = t->byte_sym[b] >= 0 ? t->tok_of_sym[t->byte_sym[b]] : -1;
        if (t->byte_tok[b] < 0) {
            /* a vocab may carry explicit byte tokens instead */
            char hex[7];
            static const char digits[] = "0123456789ABCDEF";
            hex[0] = '<'; hex[1] = '0'; hex[2] = 'x'; hex[3] = digits[b >> 4]; hex[4] = digits[b & 15]; hex[5] = '>'; hex[6] = 0;
            int32_t id = tokc_strtab_find(&v->tab, hex, 6);
            if (id >= 0 && id < v->n_vocab && v->type[id] == LLMH_TOKEN_BYTE) t->byte_tok[b] = id;
        }
    }
    if ((st = tokc_vocab_build_specials(v, lstrip, rstrip))) { TOKC_ERR("bpe: out of memory"); return st; }
    tokc_vocab_guess_eot(v);
    v->special[LLMH_SPECIAL_NL] = t->byte_tok['\n'];

    /* pieces */
    tokc_bytes arena = {0};
    uint64_t *off = malloc(((size_t)v->n_vocab + 1) * sizeof(uint64_t));
    if (!off) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    st = LLMH_OK;
    for (int32_t id = 0; id < v->n_vocab && !st; id++) {
        size_t n;
        const char *s = tokc_strtab_get(&v->tab, id, &n);
        off[id] = arena.n;
        switch (v->type[id]) {
        case LLMH_TOKEN_NORMAL:
            st = decode_byte_level(s, n, &arena);
            break;
        case LLMH_TOKEN_BYTE: {
            int b = parse_byte_token(s, n);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                st = tokc_bytes_append(&arena, &c, 1);
            } else {
                st = decode_byte_level(s, n, &arena);
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
    if (st) { TOKC_ERR("bpe: out of memory building pieces"); return st; }

    /* word cache */
    if (pthread_mutex_init(&t->cache_mu, NULL) != 0) {
        TOKC_ERR("bpe: cannot create the word cache mutex");
        return LLMH_ERR_INTERNAL;
    }
    t->cache_cap = 1u << 15;
    t->cache = calloc(t->cache_cap, sizeof(bpe_cache_entry));
    if (!t->cache) {
        pthread_mutex_destroy(&t->cache_mu);
        t->cache_cap = 0;
        TOKC_ERR("bpe: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    return LLMH_OK;
}

/* ====================================================================== */
/* Creating from GGUF metadata                                             */
/* ====================================================================== */
static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char RE_LLAMA3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int name_in(const char *s, size_t n, const char *const *names) {
    for (; *names; names++)
        if (strlen(*names) == n && memcmp(*names, s, n) == 0) return 1;
    return 0;
}

/* Pre-tokenizer regexes for tokenizer.ggml.pre (llama.cpp's choices). */
static llmh_status set_pre_from_gguf(llmh_tokenizer *t, const llmh_kv_list *meta) {
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", NULL};
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", NULL};
    static const char *const llama3_re[] = {"dbrx", "smaug-bpe", "chatglm-bpe", "glm4", NULL};
    static const char *const gpt2[] = {"gpt2", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat",
                                       "jina-v2-es", "jina-v2-de", "mpt", "olmo", "jais", "roberta-bpe",
                                       "jina-v1-en", "jina-v2-code", "exaone4", "trillion",
                                       "granite-docling", NULL};
    static const char *const starcoder[] = {"starcoder", "refact", "command-r", "smollm", "codeshell",
                                            "exaone", "minerva-7b", NULL};
    size_t n = 0;
    const char *pre = tokc_meta_str(meta, "tokenizer.ggml.pre", &n);
    const char *where = "tokenizer.ggml.pre";
    llmh_status st;
#define ADD(re) do { if ((st = bpe_add_stage(t, re, sizeof(re) - 1, 0, BPE_SPLIT_ISOLATED, where))) return st; } while (0)
    if (!pre || (n == 7 && memcmp(pre, "default", 7) == 0)) {
        static const char p0[] = "[\\p{P}\\$\\+<=>\\^~\\|]+", p2[] = "\\p{N}+", p3[] = "[0-9][0-9][0-9]";
        ADD(p0); ADD(RE_GPT2); ADD(p2); ADD(p3);
    } else if (name_in(pre, n, qwen2)) {
        ADD(RE_QWEN2);
    } else if (name_in(pre, n, llama3)) {
        ADD(RE_LLAMA3);
        t->ignore_merges = 1;
        t->v.add_bos = 1;
    } else if (name_in(pre, n, llama3_re)) {
        ADD(RE_LLAMA3);
    } else if (name_in(pre, n, gpt2)) {
        ADD(RE_GPT2);
    } else if (name_in(pre, n, starcoder)) {
        static const char p0[] = "\\p{N}";
        ADD(p0); ADD(RE_GPT2);
    } else if (n == 6 && memcmp(pre, "falcon", 6) == 0) {
        static const char p0[] = "[\\p{P}\\$\\+<=>\\^~\\|`]+", p2[] = "[0-9][0-9][0-9]";
        ADD(p0); ADD(RE_GPT2); ADD(p2);
    } else {
        TOKC_ERR("bpe: unknown pre-tokenizer type '%.*s' (tokenizer.ggml.pre)", (int)(n > 64 ? 64 : n), pre);
        return LLMH_ERR_UNSUPPORTED;
    }
#undef ADD
    return LLMH_OK;
}

static llmh_status load_gguf(llmh_tokenizer *t, const llmh_kv_list *meta) {
    int bad = 0;
    llmh_status st;
    const llmh_value *toks = tokc_meta_array(meta, "tokenizer.ggml.tokens", LLMH_V_STRING, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    if (!toks || toks->v.arr.n == 0) {
        TOKC_ERR("bpe: metadata key 'tokenizer.ggml.tokens' is missing or empty");
        return LLMH_ERR_NOT_FOUND;
    }
    if (toks->v.arr.n >= (uint64_t)INT32_MAX) {
        TOKC_ERR("bpe: tokenizer.ggml.tokens has %llu entries, too many", (unsigned long long)toks->v.arr.n);
        return LLMH_ERR_FORMAT;
    }
    const llmh_value *types = tokc_meta_array(meta, "tokenizer.ggml.token_type", -1, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    const llmh_value *merges = tokc_meta_array(meta, "tokenizer.ggml.merges", LLMH_V_STRING, &bad);
    if (bad) return LLMH_ERR_FORMAT;
    if (!merges) {
        TOKC_ERR("bpe: metadata key 'tokenizer.ggml.merges' is missing");
        return LLMH_ERR_NOT_FOUND;
    }
    int32_t n = (int32_t)toks->v.arr.n;
    if (types && types->v.arr.n < (uint64_t)n) {
        TOKC_ERR("bpe: tokenizer.ggml.token_type has %llu entries for %d tokens",
                 (unsigned long long)types->v.arr.n, (int)n);
        return LLMH_ERR_FORMAT;
    }
    if ((st = tokc_strtab_init(&t->v.tab, n + n / 4))) { TOKC_ERR("bpe: out of memory"); return st; }
    t->v.type = malloc((size_t)n);
    if (!t->v.type) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    for (int32_t i = 0; i < n; i++) {
        const llmh_value *s = &toks->v.arr.items[i];
        if (s->type != LLMH_V_STRING || (s->v.s.len && !s->v.s.ptr)) {
            TOKC_ERR("bpe: tokenizer.ggml.tokens[%d] is not a string", (int)i);
            return LLMH_ERR_FORMAT;
        }
        int32_t id;
        if ((st = tokc_strtab_add(&t->v.tab, s->v.s.ptr, (size_t)s->v.s.len, 0, &id))) {
            TOKC_ERR("bpe: out of memory or oversized token at tokenizer.ggml.tokens[%d]", (int)i);
            return st;
        }
        int64_t ty = LLMH_TOKEN_NORMAL;
        if (types && !llmh_value_as_i64(&types->v.arr.items[i], &ty)) ty = LLMH_TOKEN_NORMAL;
        t->v.type[i] = (ty >= LLMH_TOKEN_NORMAL && ty <= LLMH_TOKEN_BYTE) ? (int8_t)ty : LLMH_TOKEN_NORMAL;
    }
    t->v.n_vocab = n;
    if ((st = set_pre_from_gguf(t, meta))) return st;

    size_t nm = (size_t)merges->v.arr.n;
    if ((st = bpe_init_merges(t, nm))) return st;
    for (size_t i = 0; i < nm && i < (size_t)INT32_MAX; i++) {
        const llmh_value *m = &merges->v.arr.items[i];
        if (m->type != LLMH_V_STRING || (m->v.s.len && !m->v.s.ptr)) {
            TOKC_ERR("bpe: tokenizer.ggml.merges[%zu] is not a string", i);
            return LLMH_ERR_FORMAT;
        }
        const char *s = m->v.s.ptr;
        size_t len = (size_t)m->v.s.len;
        /* "left right", split at the first space after the first byte */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) continue; /* malformed entry: never matches, as in llama.cpp */
        size_t a = (size_t)(sp - s);
        if ((st = bpe_add_merge(t, s, a, sp + 1, len - a - 1, (int32_t)i))) return st;
    }
    tokc_vocab_read_specials(&t->v, meta, -1, -1, -1);
    return bpe_finish(t, NULL, NULL);
}

/* ====================================================================== */
/* Encoding                                                                */
/* ====================================================================== */
typedef struct span { size_t s, n; } span;
typedef struct spans { span *v; size_t n, cap; } spans;

static llmh_status spans_push(spans *a, size_t s, size_t n) {
    if (n == 0) return LLMH_OK;
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        span *nv = realloc(a->v, ncap * sizeof(span));
        if (!nv) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
        a->v = nv;
        a->cap = ncap;
    }
    a->v[a->n].s = s;
    a->v[a->n].n = n;
    a->n++;
    return LLMH_OK;
}

typedef struct heap_entry { int32_t rank, left, right, lsym, rsym; } heap_entry;

/* Per-call scratch (encode is reentrant: nothing here is shared). */
typedef struct bpe_work {
    pcre2_match_data *md[BPE_MAX_STAGES];
    pcre2_match_context *mctx;
    spans a, b;              /* split chunks, ping-pong */
    tokc_bytes norm;         /* normalized fragment */
    tokc_bytes rx;           /* regex view of the fragment (invalid bytes -> U+FFFD) */
    size_t *rx_map;          /* rx offset -> fragment offset, when rx differs */
    size_t rx_map_cap;
    tokc_bytes bl;           /* byte-level text of a word (ignore_merges) */
    /* merge state of one word */
    int32_t *sym, *prev, *next;
    uint32_t *len;
    size_t sym_cap;
    heap_entry *heap;
    size_t heap_n, heap_cap;
} bpe_work;

static void work_free(bpe_work *w) {
    for (int i = 0; i < BPE_MAX_STAGES; i++) pcre2_match_data_free(w->md[i]);
    pcre2_match_context_free(w->mctx);
    free(w->a.v);
    free(w->b.v);
    tokc_bytes_free(&w->norm);
    tokc_bytes_free(&w->rx);
    free(w->rx_map);
    tokc_bytes_free(&w->bl);
    free(w->sym);
    free(w->prev);
    free(w->next);
    free(w->len);
    free(w->heap);
}

static llmh_status work_init(const llmh_tokenizer *t, bpe_work *w) {
    memset(w, 0, sizeof(*w));
    for (int i = 0; i < t->n_stages; i++) {
        w->md[i] = pcre2_match_data_create_from_pattern(t->stages[i].re, NULL);
        if (!w->md[i]) goto oom;
    }
    w->mctx = pcre2_match_context_create(NULL);
    if (!w->mctx) goto oom;
    /* JIT uses its default 32 KiB stack; a match that needs more is redone
     * by the interpreter (split_stage), which keeps its state on the heap */
    return LLMH_OK;
oom:
    TOKC_ERR("bpe: out of memory creating regex match data");
    return LLMH_ERR_NO_MEMORY;
}

static void heap_push(bpe_work *w, heap_entry e) {
    /* capacity is ensured by the caller */
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        heap_entry *q = &w->heap[p];
        if (q->rank < e.rank || (q->rank == e.rank && q->left < e.left)) break;
        w->heap[i] = *q;
        i = p;
    }
    w->heap[i] = e;
}

static heap_entry heap_pop(bpe_work *w) {
    heap_entry top = w->heap[0];
    heap_entry last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && (w->heap[c + 1].rank < w->heap[c].rank ||
                          (w->heap[c + 1].rank == w->heap[c].rank && w->heap[c + 1].left < w->heap[c].left)))
            c++;
        if (last.rank < w->heap[c].rank || (last.rank == w->heap[c].rank && last.left < w->heap[c].left)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static llmh_status heap_reserve(bpe_work *w, size_t need) {
    if (need <= w->heap_cap) return LLMH_OK;
    size_t ncap = w->heap_cap ? w->heap_cap : 64;
    while (ncap < need) ncap *= 2;
    heap_entry *h = realloc(w->heap, ncap * sizeof(heap_entry));
    if (!h) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    w->heap = h;
    w->heap_cap = ncap;
    return LLMH_OK;
}

static void try_pair(const llmh_tokenizer *t, bpe_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    int32_t a = w->sym[left], b = w->sym[right];
    if (a < 0 || b < 0) return;
    const bpe_merge *m = merge_find(t, a, b);
    if (!m) return;
    heap_entry e = {m->rank, left, right, a, b};
    heap_push(w, e);
}

static llmh_status emit_bytes(const llmh_tokenizer *t, const unsigned char *p, size_t n, tokc_ids *out) {
    llmh_status st;
    for (size_t i = 0; i < n; i++) {
        llmh_token id = t->byte_tok[p[i]];
        if (id < 0) id = t->v.special[LLMH_SPECIAL_UNK];
        if (id < 0) {
            TOKC_ERR("bpe: byte 0x%02x has no token in this vocabulary and there is no unknown token", p[i]);
            return LLMH_ERR_UNSUPPORTED;
        }
        if ((st = tokc_ids_push(out, id))) return st;
    }
    return LLMH_OK;
}

/* Merge one word's bytes and append its tokens. */
static llmh_status bpe_word(const llmh_tokenizer *t, bpe_work *w, const unsigned char *p, size_t n,
                            tokc_ids *out) {
    llmh_status st;
    if (n == 0) return LLMH_OK;
    if (n == 1) return emit_bytes(t, p, 1, out);
    if (t->ignore_merges) {
        w->bl.n = 0;
        for (size_t i = 0; i < n; i++)
            if ((st = tokc_bytes_append(&w->bl, t->byte_chr[p[i]], t->byte_chr_len[p[i]]))) return st;
        int32_t s = tokc_strtab_find(&t->v.tab, w->bl.v, w->bl.n);
        if (s >= 0 && t->tok_of_sym[s] >= 0) return tokc_ids_push(out, t->tok_of_sym[s]);
    }
    if (n > (size_t)INT32_MAX / 2) {
        TOKC_ERR("bpe: pre-tokenized word of %zu bytes is too long", n);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n > w->sym_cap) {
        size_t cap = w->sym_cap ? w->sym_cap : 64;
        while (cap < n) cap *= 2;
        int32_t *a = realloc(w->sym, cap * sizeof(int32_t));
        if (a) w->sym = a;
        int32_t *b = realloc(w->prev, cap * sizeof(int32_t));
        if (b) w->prev = b;
        int32_t *c = realloc(w->next, cap * sizeof(int32_t));
        if (c) w->next = c;
        uint32_t *d = realloc(w->len, cap * sizeof(uint32_t));
        if (d) w->len = d;
        if (!a || !b || !c || !d) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
        w->sym_cap = cap;
    }
    if ((st = heap_reserve(w, 2 * n + 8))) return st;
    int32_t ni = (int32_t)n;
    for (int32_t i = 0; i < ni; i++) {
        w->sym[i] = t->byte_sym[p[i]];
        w->len[i] = 1;
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < ni ? i + 1 : -1;
    }
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < ni; i++) try_pair(t, w, i, i + 1);
    while (w->heap_n) {
        heap_entry e = heap_pop(w);
        int32_t l = e.left, r = e.right;
        if (w->len[l] == 0 || w->next[l] != r || w->sym[l] != e.lsym || w->sym[r] != e.rsym) continue;
        const bpe_merge *m = merge_find(t, e.lsym, e.rsym);
        w->sym[l] = m->result;
        w->len[l] += w->len[r];
        w->len[r] = 0;
        w->next[l] = w->next[r];
        if (w->next[l] >= 0) w->prev[w->next[l]] = l;
        /* each merge adds at most two entries: 2n bounds the total */
        if ((st = heap_reserve(w, w->heap_n + 2))) return st;
        try_pair(t, w, w->prev[l], l);
        try_pair(t, w, l, w->next[l]);
    }
    size_t pos = 0;
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        int32_t s = w->sym[i];
        llmh_token id = s >= 0 ? t->tok_of_sym[s] : -1;
        if (id >= 0) {
            if ((st = tokc_ids_push(out, id))) return st;
        } else if ((st = emit_bytes(t, p + pos, w->len[i], out))) {
            return st;
        }
        pos += w->len[i];
    }
    return LLMH_OK;
}

/* Word through the cache. */
static llmh_status bpe_word_cached(const llmh_tokenizer *t, bpe_work *w, const unsigned char *p, size_t n,
                                   tokc_ids *out) {
    llmh_tokenizer *mt = (llmh_tokenizer *)t; /* the cache is internally synchronized */
    if (!t->cache_cap || n < 2 || n > 64) return bpe_word(t, w, p, n, out);
    uint64_t h = tokc_hash(p, n);
    bpe_cache_entry *e = &mt->cache[h & (t->cache_cap - 1)];
    pthread_mutex_lock(&mt->cache_mu);
    if (e->word && e->hash == h && e->word_len == n && memcmp(e->word, p, n) == 0) {
        llmh_status st = LLMH_OK;
        for (uint32_t i = 0; i < e->n_ids && !st; i++) st = tokc_ids_push(out, e->ids[i]);
        pthread_mutex_unlock(&mt->cache_mu);
        return st;
    }
    pthread_mutex_unlock(&mt->cache_mu);
    size_t n0 = out->n;
    llmh_status st = bpe_word(t, w, p, n, out);
    if (st) return st;
    size_t k = out->n - n0;
    char *word = malloc(n);
    llmh_token *ids = malloc(k * sizeof(llmh_token));
    if (!word || !ids) { free(word); free(ids); return LLMH_OK; } /* caching is optional */
    memcpy(word, p, n);
    memcpy(ids, out->v + n0, k * sizeof(llmh_token));
    pthread_mutex_lock(&mt->cache_mu);
    free(e->word);
    free(e->ids);
    e->word = word;
    e->ids = ids;
    e->hash = h;
    e->word_len = (uint32_t)n;
    e->n_ids = (uint32_t)k;
    pthread_mutex_unlock(&mt->cache_mu);
    return LLMH_OK;
}

/* Normalize `s` with every configured normalizer; invalid UTF-8 bytes pass
 * through untouched. Result in w->norm. */
static llmh_status normalize(const llmh_tokenizer *t, bpe_work *w, const char *s, size_t n) {
    llmh_status st;
    tokc_bytes tmp = {0};
    w->norm.n = 0;
    if ((st = tokc_bytes_append(&w->norm, s, n))) return st;
    for (int k = 0; k < t->n_normalizers; k++) {
        const unsigned char *u = (const unsigned char *)w->norm.v;
        size_t len = w->norm.n, i = 0;
        int ascii = 1;
        for (size_t j = 0; j < len; j++) if (u[j] >= 0x80) { ascii = 0; break; }
        if (ascii) continue; /* every normal form leaves ASCII unchanged */
        tmp.n = 0;
        while (i < len) {
            size_t j = i;
            while (j < len) {
                size_t c = tokc_utf8_valid_len(u + j, len - j);
                if (!c) break;
                j += c;
            }
            if (j > i) {
                utf8proc_uint8_t *dst = NULL;
                utf8proc_ssize_t r = utf8proc_map(u + i, (utf8proc_ssize_t)(j - i), &dst,
                                                  (utf8proc_option_t)t->normalizers[k]);
                if (r >= 0) st = tokc_bytes_append(&tmp, dst, (size_t)r);
                else st = tokc_bytes_append(&tmp, u + i, j - i);
                free(dst);
                if (st) { tokc_bytes_free(&tmp); return st; }
                i = j;
            }
            if (i < len) { /* one invalid byte */
                if ((st = tokc_bytes_append(&tmp, u + i, 1))) { tokc_bytes_free(&tmp); return st; }
                i++;
            }
        }
        tokc_bytes swap = w->norm;
        w->norm = tmp;
        tmp = swap;
    }
    tokc_bytes_free(&tmp);
    return LLMH_OK;
}

/* Build the regex view of text[0..n): NULL map when the text is valid. */
static llmh_status regex_view(bpe_work *w, const char *text, size_t n, const char **rx, size_t *rxn, int *mapped) {
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        size_t c = tokc_utf8_valid_len(u + i, n - i);
        if (!c) break;
        i += c;
    }
    if (i == n) { *rx = text; *rxn = n; *mapped = 0; return LLMH_OK; }
    /* invalid bytes present: each becomes U+FFFD (3 bytes) */
    size_t need = n * 3 + 1;
    if (need > w->rx_map_cap) {
        size_t *m = realloc(w->rx_map, need * sizeof(size_t));
        if (!m) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
        w->rx_map = m;
        w->rx_map_cap = need;
    }
    w->rx.n = 0;
    llmh_status st;
    i = 0;
    while (i < n) {
        size_t c = tokc_utf8_valid_len(u + i, n - i);
        if (c) {
            for (size_t k = 0; k < c; k++) w->rx_map[w->rx.n + k] = i + k;
            if ((st = tokc_bytes_append(&w->rx, u + i, c))) return st;
            i += c;
        } else {
            static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
            for (size_t k = 0; k < 3; k++) w->rx_map[w->rx.n + k] = i;
            if ((st = tokc_bytes_append(&w->rx, fffd, 3))) return st;
            i++;
        }
    }
    w->rx_map[w->rx.n] = n;
    *rx = w->rx.v;
    *rxn = w->rx.n;
    *mapped = 1;
    return LLMH_OK;
}

static llmh_status split_stage(const bpe_stage *stage, pcre2_match_data *md, pcre2_match_context *mctx,
                               const char *text, const spans *in, spans *out) {
    llmh_status st;
    out->n = 0;
    for (size_t ci = 0; ci < in->n; ci++) {
        const char *sub = text + in->v[ci].s;
        size_t n = in->v[ci].n, base = in->v[ci].s;
        size_t pos = 0, gap = 0;
        size_t first_out = out->n;
        while (pos < n) {
            int rc = pcre2_match(stage->re, (PCRE2_SPTR)sub, n, pos, PCRE2_NO_UTF_CHECK, md, mctx);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT)
                rc = pcre2_match(stage->re, (PCRE2_SPTR)sub, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof(msg));
                TOKC_ERR("bpe: pre-tokenizer regex failed at text offset %zu: %s", base + pos, (const char *)msg);
                return LLMH_ERR_INTERNAL;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match: step over one character */
                size_t c = tokc_utf8_lead_len((unsigned char)sub[ms < n ? ms : n - 1]);
                pos = ms + (c ? c : 1);
                continue;
            }
            switch (stage->behavior) {
            case BPE_SPLIT_ISOLATED:
                if ((st = spans_push(out, base + gap, ms - gap)) || (st = spans_push(out, base + ms, me - ms))) return st;
                gap = me;
                break;
            case BPE_SPLIT_REMOVED:
                if ((st = spans_push(out, base + gap, ms - gap))) return st;
                gap = me;
                break;
            case BPE_SPLIT_MERGED_WITH_PREVIOUS:
                if (ms > gap) {
                    if ((st = spans_push(out, base + gap, me - gap))) return st;
                } else if (out->n > first_out && out->v[out->n - 1].s + out->v[out->n - 1].n == base + ms) {
                    out->v[out->n - 1].n += me - ms;
                } else if ((st = spans_push(out, base + ms, me - ms))) {
                    return st;
                }
                gap = me;
                break;
            case BPE_SPLIT_MERGED_WITH_NEXT:
                if ((st = spans_push(out, base + gap, ms - gap))) return st;
                gap = ms;
                break;
            }
            pos = me;
        }
        if ((st = spans_push(out, base + gap, n - gap))) return st;
    }
    return LLMH_OK;
}

/* Encode one text fragment (no special tokens inside). */
static llmh_status encode_text(const llmh_tokenizer *t, bpe_work *w, const char *text, size_t n, tokc_ids *out) {
    llmh_status st;
    if (t->n_normalizers || t->add_prefix_space) {
        if (t->n_normalizers) {
            if ((st = normalize(t, w, text, n))) return st;
        } else {
            w->norm.n = 0;
            if ((st = tokc_bytes_append(&w->norm, text, n))) return st;
        }
        if (t->add_prefix_space && (w->norm.n == 0 || w->norm.v[0] != ' ')) {
            if ((st = tokc_bytes_append(&w->norm, " ", 1))) return st;
            memmove(w->norm.v + 1, w->norm.v, w->norm.n - 1);
            w->norm.v[0] = ' ';
        }
        text = w->norm.v;
        n = w->norm.n;
    }
    if (n == 0) return LLMH_OK;
    const char *rx;
    size_t rxn;
    int mapped;
    if ((st = regex_view(w, text, n, &rx, &rxn, &mapped))) return st;
    w->a.n = 0;
    if ((st = spans_push(&w->a, 0, rxn))) return st;
    for (int k = 0; k < t->n_stages; k++) {
        if ((st = split_stage(&t->stages[k], w->md[k], w->mctx, rx, &w->a, &w->b))) return st;
        spans tmp = w->a;
        w->a = w->b;
        w->b = tmp;
    }
    for (size_t i = 0; i < w->a.n; i++) {
        size_t s = w->a.v[i].s, e = s + w->a.v[i].n;
        if (mapped) { s = w->rx_map[s]; e = w->rx_map[e]; }
        if ((st = bpe_word_cached(t, w, (const unsigned char *)text + s, e - s, out))) return st;
    }
    return LLMH_OK;
}

static llmh_status bpe_encode(const llmh_tokenizer *t, const char *text, size_t len, uint32_t flags,
                              llmh_token *out, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!t || (len && !text)) {
        TOKC_ERR("bpe: encode: NULL tokenizer or text");
        return LLMH_ERR_INVALID_ARG;
    }
    tokc_ids ids = {0};
    tokc_fragments frags = {0};
    bpe_work w;
    llmh_status st = work_init(t, &w);
    if (!st && (flags & LLMH_ENCODE_ADD_BOS) && t->v.special[LLMH_SPECIAL_BOS] >= 0)
        st = tokc_ids_push(&ids, t->v.special[LLMH_SPECIAL_BOS]);
    if (!st && len) st = tokc_partition(&t->v, text, len, flags, &frags);
    for (size_t i = 0; !st && i < frags.n; i++) {
        if (frags.v[i].id >= 0) st = tokc_ids_push(&ids, frags.v[i].id);
        else st = encode_text(t, &w, text + frags.v[i].start, frags.v[i].len, &ids);
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
static void bpe_destroy(llmh_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_stages; i++) pcre2_code_free(t->stages[i].re);
    if (t->cache) {
        for (size_t i = 0; i < t->cache_cap; i++) {
            free(t->cache[i].word);
            free(t->cache[i].ids);
        }
        free(t->cache);
        pthread_mutex_destroy(&t->cache_mu);
    }
    free(t->tok_of_sym);
    free(t->merges);
    tokc_vocab_free(&t->v);
    free(t);
}

static const char *json_path(const llmh_kv_list *meta, char *buf, size_t cap) {
    size_t n;
    const char *p = tokc_meta_str(meta, "llmh.tokenizer_json", &n);
    if (!p || n == 0 || n >= cap || memchr(p, 0, n)) return NULL;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static int32_t bpe_probe(void *state, const llmh_kv_list *meta) {
    (void)state;
    char path[4096];
    if (llmh_kv_find(meta, "tokenizer.ggml.tokens")) {
        return tokc_meta_str_eq(meta, "tokenizer.ggml.model", "gpt2") ? 90 : 0;
    }
    if (json_path(meta, path, sizeof(path))) return bpe_json_probe(path);
    return 0;
}

static llmh_status bpe_create(void *state, const llmh_kv_list *meta, const llmh_kv_list *options,
                              llmh_tokenizer **out) {
    (void)state;
    (void)options;
    char path[4096];
    llmh_status st;
    if (!out) { TOKC_ERR("bpe: create: NULL out"); return LLMH_ERR_INVALID_ARG; }
    *out = NULL;
    llmh_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) { TOKC_ERR("bpe: out of memory"); return LLMH_ERR_NO_MEMORY; }
    for (int i = 0; i < TOKC_N_SPECIAL; i++) t->v.special[i] = -1;
    if (llmh_kv_find(meta, "tokenizer.ggml.tokens")) {
        size_t n = 0;
        const char *model = tokc_meta_str(meta, "tokenizer.ggml.model", &n);
        if (!model || n != 4 || memcmp(model, "gpt2", 4) != 0) {
            TOKC_ERR("bpe: tokenizer.ggml.model is '%.*s', expected 'gpt2'", (int)(model ? (n > 64 ? 64 : n) : 0),
                     model ? model : "");
            free(t);
            return LLMH_ERR_UNSUPPORTED;
        }
        st = load_gguf(t, meta);
    } else if (json_path(meta, path, sizeof(path))) {
        st = bpe_json_load(t, path, meta);
    } else {
        TOKC_ERR("bpe: metadata has neither 'tokenizer.ggml.tokens' nor 'llmh.tokenizer_json'");
        st = LLMH_ERR_NOT_FOUND;
    }
    if (st) {
        bpe_destroy(t);
        return st;
    }
    *out = t;
    return LLMH_OK;
}

static const llmh_tokenizer_iface bpe_iface = {
    sizeof(llmh_tokenizer_iface),
    bpe_probe,
    bpe_create,
    bpe_destroy,
    tokc_if_n_vocab,
    bpe_encode,
    tokc_if_token_to_piece,
    tokc_if_token_text,
    tokc_if_token_type,
    tokc_if_special,
    tokc_if_add_bos_default,
    tokc_if_decode,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_TOKENIZER, "bpe", "1.0.0", "MIT",
                   "Byte-level BPE (GPT-2/Llama 3/Qwen) from GGUF metadata or tokenizer.json", 50, NULL,
                   tokc_plugin_init, NULL, &bpe_iface, NULL)

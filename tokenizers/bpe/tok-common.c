/*
 * tok-common.c — shared tokenizer helpers (see tok-common.h).
 */
#include "tok-common.h"

#include <stdlib.h>
#include <string.h>

const llmh_host_api *tokc_host = NULL;

/* ====================================================================== */
/* String table                                                            */
/* ====================================================================== */
static llmh_status strmap_grow(tokc_strtab *t) {
    size_t ncap = t->map.cap ? t->map.cap * 2 : 1024;
    int32_t *slots = malloc(ncap * sizeof(int32_t));
    if (!slots) return LLMH_ERR_NO_MEMORY;
    memset(slots, 0xff, ncap * sizeof(int32_t));
    for (int32_t id = 0; id < t->n; id++) {
        uint64_t h = tokc_hash(t->arena + t->off[id], t->len[id]);
        size_t i = (size_t)h & (ncap - 1);
        /* keep the first id of duplicate strings: insert in id order and
         * skip an id whose text is already present */
        int dup = 0;
        while (slots[i] >= 0) {
            int32_t o = slots[i];
            if (t->len[o] == t->len[id] && memcmp(t->arena + t->off[o], t->arena + t->off[id], t->len[id]) == 0) {
                dup = 1;
                break;
            }
            i = (i + 1) & (ncap - 1);
        }
        if (!dup) slots[i] = id;
    }
    free(t->map.slots);
    t->map.slots = slots;
    t->map.cap = ncap;
    return LLMH_OK;
}

llmh_status tokc_strtab_init(tokc_strtab *t, int32_t expected) {
    memset(t, 0, sizeof(*t));
    if (expected < 16) expected = 16;
    t->cap = expected;
    t->off = malloc((size_t)expected * sizeof(uint64_t));
    t->len = malloc((size_t)expected * sizeof(uint32_t));
    t->arena_cap = (size_t)expected * 8;
    t->arena = malloc(t->arena_cap);
    if (!t->off || !t->len || !t->arena) { tokc_strtab_free(t); return LLMH_ERR_NO_MEMORY; }
    size_t cap = 1024;
    while (cap < (size_t)expected * 2) cap *= 2;
    t->map.slots = malloc(cap * sizeof(int32_t));
    if (!t->map.slots) { tokc_strtab_free(t); return LLMH_ERR_NO_MEMORY; }
    memset(t->map.slots, 0xff, cap * sizeof(int32_t));
    t->map.cap = cap;
    return LLMH_OK;
}

void tokc_strtab_free(tokc_strtab *t) {
    if (!t) return;
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->map.slots);
    memset(t, 0, sizeof(*t));
}

int32_t tokc_strtab_find(const tokc_strtab *t, const char *s, size_t len) {
    if (!t->map.cap) return -1;
    size_t mask = t->map.cap - 1;
    size_t i = (size_t)tokc_hash(s, len) & mask;
    for (;;) {
        int32_t id = t->map.slots[i];
        if (id < 0) return -1;
        if (t->len[id] == len && memcmp(t->arena + t->off[id], s, len) == 0) return id;
        i = (i + 1) & mask;
    }
}

llmh_status tokc_strtab_add(tokc_strtab *t, const char *s, size_t len, int dedup, int32_t *id_out) {
    if (len > UINT32_MAX - 1) return LLMH_ERR_INVALID_ARG;
    int32_t existing = tokc_strtab_find(t, s, len);
    if (dedup && existing >= 0) { *id_out = existing; return LLMH_OK; }
    if (t->n == INT32_MAX) return LLMH_ERR_INVALID_ARG;
    if (t->n == t->cap) {
        int32_t ncap = t->cap > INT32_MAX / 2 ? INT32_MAX : t->cap * 2;
        uint64_t *off = realloc(t->off, (size_t)ncap * sizeof(uint64_t));
        if (!off) return LLMH_ERR_NO_MEMORY;
        t->off = off;
        uint32_t *ln = realloc(t->len, (size_t)ncap * sizeof(uint32_t));
        if (!ln) return LLMH_ERR_NO_MEMORY;
        t->len = ln;
        t->cap = ncap;
    }
    if (t->arena_len + len + 1 > t->arena_cap) {
        size_t ncap = t->arena_cap * 2;
        while (ncap < t->arena_len + len + 1) ncap *= 2;
        char *a = realloc(t->arena, ncap);
        if (!a) return LLMH_ERR_NO_MEMORY;
        t->arena = a;
        t->arena_cap = ncap;
    }
    int32_t id = t->n;
    if (len) memcpy(t->arena + t->arena_len, s, len);
    t->arena[t->arena_len + len] = 0;
    t->off[id] = t->arena_len;
    t->len[id] = (uint32_t)len;
    t->arena_len += len + 1;
    t->n++;
    if ((size_t)t->n * 2 > t->map.cap) {
        llmh_status st = strmap_grow(t); /* rehash includes the new id */
        if (st) { t->n--; return st; }
    } else if (existing < 0) {
        size_t mask = t->map.cap - 1;
        size_t i = (size_t)tokc_hash(s, len) & mask;
        while (t->map.slots[i] >= 0) i = (i + 1) & mask;
        t->map.slots[i] = id;
    }
    *id_out = id;
    return LLMH_OK;
}

/* ====================================================================== */
/* Buffers                                                                 */
/* ====================================================================== */
llmh_status tokc_ids_push(tokc_ids *b, llmh_token id) {
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        llmh_token *v = realloc(b->v, ncap * sizeof(llmh_token));
        if (!v) { TOKC_ERR("tokenizer: out of memory growing the token buffer"); return LLMH_ERR_NO_MEMORY; }
        b->v = v;
        b->cap = ncap;
    }
    b->v[b->n++] = id;
    return LLMH_OK;
}

void tokc_ids_free(tokc_ids *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

llmh_status tokc_ids_deliver(const tokc_ids *b, llmh_token *out, size_t cap, size_t *n_out) {
    if (n_out) *n_out = b->n;
    if (b->n > cap || (b->n && !out)) {
        TOKC_ERR("tokenizer: output buffer holds %zu tokens, %zu needed", cap, b->n);
        return LLMH_ERR_INVALID_ARG;
    }
    if (b->n) memcpy(out, b->v, b->n * sizeof(llmh_token));
    return LLMH_OK;
}

llmh_status tokc_bytes_append(tokc_bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->n + n) ncap *= 2;
        char *v = realloc(b->v, ncap);
        if (!v) { TOKC_ERR("tokenizer: out of memory"); return LLMH_ERR_NO_MEMORY; }
        b->v = v;
        b->cap = ncap;
    }
    if (n) memcpy(b->v + b->n, p, n);
    b->n += n;
    return LLMH_OK;
}

void tokc_bytes_free(tokc_bytes *b) {
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ====================================================================== */
/* UTF-8                                                                   */
/* ====================================================================== */
size_t tokc_utf8_valid_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0; /* continuation or overlong 2-byte lead */
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

uint32_t tokc_utf8_decode(const unsigned char *s, size_t len) {
    switch (len) {
    case 1: return s[0];
    case 2: return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    default:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

size_t tokc_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ====================================================================== */
/* Metadata                                                                */
/* ====================================================================== */
const char *tokc_meta_str(const llmh_kv_list *meta, const char *key, size_t *len) {
    const llmh_value *v = llmh_kv_find(meta, key);
    if (!v || v->type != LLMH_V_STRING) return NULL;
    if (len) *len = (size_t)v->v.s.len;
    return v->v.s.ptr ? v->v.s.ptr : "";
}

int tokc_meta_str_eq(const llmh_kv_list *meta, const char *key, const char *s) {
    size_t n;
    const char *p = tokc_meta_str(meta, key, &n);
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

int tokc_meta_int(const llmh_kv_list *meta, const char *key, int64_t *out) {
    const llmh_value *v = llmh_kv_find(meta, key);
    return v && v->type != LLMH_V_STRING && v->type != LLMH_V_ARRAY && llmh_value_as_i64(v, out);
}

static int is_numeric_vtype(llmh_vtype t) {
    return t != LLMH_V_STRING && t != LLMH_V_ARRAY && t != LLMH_V_BOOL;
}

const llmh_value *tokc_meta_array(const llmh_kv_list *meta, const char *key, int elem, int *bad) {
    const llmh_value *v = llmh_kv_find(meta, key);
    if (!v) return NULL;
    int ok = v->type == LLMH_V_ARRAY && (v->v.arr.n == 0 || v->v.arr.items);
    if (ok) {
        if (elem < 0) ok = is_numeric_vtype(v->v.arr.elem_type);
        else ok = (int)v->v.arr.elem_type == elem;
    }
    if (!ok) {
        *bad = 1;
        TOKC_ERR("tokenizer: metadata key '%s' has the wrong type (expected an array of %s)", key,
                 elem == LLMH_V_STRING ? "strings" : "numbers");
        return NULL;
    }
    return v;
}

/* ====================================================================== */
/* Vocabulary                                                              */
/* ====================================================================== */
void tokc_vocab_free(tokc_vocab *v) {
    if (!v) return;
    tokc_strtab_free(&v->tab);
    free(v->type);
    free(v->specials);
    free(v->piece_arena);
    free(v->piece_off);
    memset(v, 0, sizeof(*v));
}

static llmh_token read_special_id(const tokc_vocab *v, const llmh_kv_list *meta, const char *key,
                                  llmh_token def) {
    int64_t x;
    if (tokc_meta_int(meta, key, &x) && x >= 0 && x < v->n_vocab) return (llmh_token)x;
    return (def >= 0 && def < v->n_vocab) ? def : -1;
}

void tokc_vocab_read_specials(tokc_vocab *v, const llmh_kv_list *meta, llmh_token def_bos,
                              llmh_token def_eos, llmh_token def_unk) {
    int64_t x;
    v->special[LLMH_SPECIAL_BOS] = read_special_id(v, meta, "tokenizer.ggml.bos_token_id", def_bos);
    v->special[LLMH_SPECIAL_EOS] = read_special_id(v, meta, "tokenizer.ggml.eos_token_id", def_eos);
    v->special[LLMH_SPECIAL_EOT] = read_special_id(v, meta, "tokenizer.ggml.eot_token_id", -1);
    v->special[LLMH_SPECIAL_PAD] = read_special_id(v, meta, "tokenizer.ggml.padding_token_id", -1);
    v->special[LLMH_SPECIAL_UNK] = read_special_id(v, meta, "tokenizer.ggml.unknown_token_id", def_unk);
    /* GGUF spells it "seperator"; accept the correct spelling too */
    v->special[LLMH_SPECIAL_SEP] = read_special_id(v, meta, "tokenizer.ggml.seperator_token_id",
                                                   read_special_id(v, meta, "tokenizer.ggml.separator_token_id", -1));
    if (tokc_meta_int(meta, "tokenizer.ggml.add_bos_token", &x)) v->add_bos = x != 0;
    if (tokc_meta_int(meta, "tokenizer.ggml.add_eos_token", &x)) v->add_eos = x != 0;
}

void tokc_vocab_guess_eot(tokc_vocab *v) {
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|end_of_turn|>", "<EOT>", "<|endoftext|>", "<|end_of_text|>"};
    if (v->special[LLMH_SPECIAL_EOT] >= 0) return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int32_t id = tokc_strtab_find(&v->tab, names[i], strlen(names[i]));
        if (id >= 0 && id < v->n_vocab) {
            v->special[LLMH_SPECIAL_EOT] = id;
            return;
        }
    }
}

static int special_cmp(const void *a, const void *b) {
    const tokc_special_tok *x = a, *y = b;
    unsigned char fx = (unsigned char)x->text[0], fy = (unsigned char)y->text[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

llmh_status tokc_vocab_build_specials(tokc_vocab *v, const uint8_t *lstrip, const uint8_t *rstrip) {
    size_t n = 0;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        int t = v->type[id];
        if ((t == LLMH_TOKEN_CONTROL || t == LLMH_TOKEN_UNKNOWN || t == LLMH_TOKEN_USER_DEFINED) && v->tab.len[id] > 0) n++;
    }
    free(v->specials);
    v->specials = n ? calloc(n, sizeof(tokc_special_tok)) : NULL;
    if (n && !v->specials) return LLMH_ERR_NO_MEMORY;
    size_t k = 0;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        int t = v->type[id];
        if (!((t == LLMH_TOKEN_CONTROL || t == LLMH_TOKEN_UNKNOWN || t == LLMH_TOKEN_USER_DEFINED) && v->tab.len[id] > 0)) continue;
        tokc_special_tok *s = &v->specials[k++];
        s->text = v->tab.arena + v->tab.off[id];
        s->len = v->tab.len[id];
        s->id = id;
        s->type = (int8_t)t;
        s->lstrip = lstrip ? lstrip[id] : 0;
        s->rstrip = rstrip ? rstrip[id] : 0;
    }
    v->n_specials = n;
    if (n) qsort(v->specials, n, sizeof(tokc_special_tok), special_cmp);
    /* first[b] = index of the first special starting with byte >= b */
    size_t j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < n && (unsigned char)v->specials[j].text[0] < b) j++;
        v->first[b] = (uint32_t)j;
    }
    return LLMH_OK;
}

static llmh_status frag_push(tokc_fragments *f, size_t start, size_t len, llmh_token id) {
    if (id < 0 && len == 0) return LLMH_OK;
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        tokc_fragment *nv = realloc(f->v, ncap * sizeof(tokc_fragment));
        if (!nv) { TOKC_ERR("tokenizer: out of memory"); return LLMH_ERR_NO_MEMORY; }
        f->v = nv;
        f->cap = ncap;
    }
    f->v[f->n].start = start;
    f->v[f->n].len = len;
    f->v[f->n].id = id;
    f->n++;
    return LLMH_OK;
}

static int is_ascii_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

llmh_status tokc_partition(const tokc_vocab *v, const char *text, size_t len, uint32_t flags,
                           tokc_fragments *out) {
    const unsigned char *s = (const unsigned char *)text;
    const int parse_special = (flags & LLMH_ENCODE_PARSE_SPECIAL) != 0;
    size_t start = 0, i = 0;
    llmh_status st;
    out->n = 0;
    if (v->n_specials == 0) return frag_push(out, 0, len, -1);
    while (i < len) {
        uint32_t a = v->first[s[i]], b = v->first[s[i] + 1];
        const tokc_special_tok *hit = NULL;
        for (uint32_t k = a; k < b; k++) {
            const tokc_special_tok *c = &v->specials[k];
            if (c->len > len - i) continue;
            if (c->type != LLMH_TOKEN_USER_DEFINED && !parse_special) continue;
            if (memcmp(c->text, s + i, c->len) == 0) { hit = c; break; }
        }
        if (!hit) { i++; continue; }
        size_t left_end = i;
        if (hit->lstrip)
            while (left_end > start && is_ascii_space(s[left_end - 1])) left_end--;
        if ((st = frag_push(out, start, left_end - start, -1))) return st;
        if ((st = frag_push(out, i, hit->len, hit->id))) return st;
        i += hit->len;
        if (hit->rstrip)
            while (i < len && is_ascii_space(s[i])) i++;
        start = i;
    }
    return frag_push(out, start, len - start, -1);
}

void tokc_fragments_free(tokc_fragments *f) {
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}

/* ====================================================================== */
/* Pieces                                                                  */
/* ====================================================================== */
llmh_status tokc_vocab_set_pieces(tokc_vocab *v, const tokc_bytes *arena, const uint64_t *off) {
    free(v->piece_arena);
    free(v->piece_off);
    v->piece_arena = malloc(arena->n ? arena->n : 1);
    v->piece_off = malloc(((size_t)v->n_vocab + 1) * sizeof(uint64_t));
    if (!v->piece_arena || !v->piece_off) return LLMH_ERR_NO_MEMORY;
    if (arena->n) memcpy(v->piece_arena, arena->v, arena->n);
    memcpy(v->piece_off, off, ((size_t)v->n_vocab + 1) * sizeof(uint64_t));
    return LLMH_OK;
}

/* Bytes of `id` under `flags`; strip one leading space when *strip is set
 * and the piece is non-empty (then clears *strip). */
static const char *piece_of(const tokc_vocab *v, llmh_token id, uint32_t flags, size_t *n) {
    int t = v->type[id];
    if (!(flags & LLMH_DECODE_SPECIAL) && (t == LLMH_TOKEN_CONTROL || t == LLMH_TOKEN_UNKNOWN)) {
        *n = 0;
        return v->piece_arena;
    }
    *n = (size_t)(v->piece_off[id + 1] - v->piece_off[id]);
    return v->piece_arena + v->piece_off[id];
}

llmh_status tokc_token_to_piece(const tokc_vocab *v, llmh_token id, uint32_t flags, char *buf,
                                size_t cap, size_t *n_out) {
    if (id < 0 || id >= v->n_vocab) {
        if (n_out) *n_out = 0;
        TOKC_ERR("tokenizer: token id %d out of range (vocab has %d tokens)", (int)id, (int)v->n_vocab);
        return LLMH_ERR_INVALID_ARG;
    }
    size_t n;
    const char *p = piece_of(v, id, flags, &n);
    if ((flags & LLMH_DECODE_STRIP_LEADING) && n && p[0] == ' ') { p++; n--; }
    if (n_out) *n_out = n;
    if (n > cap || (n && !buf)) {
        TOKC_ERR("tokenizer: piece buffer holds %zu bytes, %zu needed", cap, n);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n) memcpy(buf, p, n);
    return LLMH_OK;
}

llmh_status tokc_decode(const tokc_vocab *v, const llmh_token *ids, size_t n, uint32_t flags,
                        char *buf, size_t cap, size_t *n_out) {
    size_t total = 0;
    int strip = (flags & LLMH_DECODE_STRIP_LEADING) != 0;
    if (n && !ids) {
        TOKC_ERR("tokenizer: decode given %zu ids but a NULL array", n);
        return LLMH_ERR_INVALID_ARG;
    }
    /* first pass: size and validation */
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_vocab) {
            if (n_out) *n_out = 0;
            TOKC_ERR("tokenizer: token id %d at position %zu out of range (vocab has %d tokens)",
                     (int)ids[i], i, (int)v->n_vocab);
            return LLMH_ERR_INVALID_ARG;
        }
        size_t k;
        const char *p = piece_of(v, ids[i], flags, &k);
        if (strip && k) {
            if (p[0] == ' ') k--;
            strip = 0;
        }
        total += k;
    }
    if (n_out) *n_out = total;
    if (total > cap || (total && !buf)) {
        TOKC_ERR("tokenizer: decode buffer holds %zu bytes, %zu needed", cap, total);
        return LLMH_ERR_INVALID_ARG;
    }
    strip = (flags & LLMH_DECODE_STRIP_LEADING) != 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *p = piece_of(v, ids[i], flags, &k);
        if (strip && k) {
            if (p[0] == ' ') { p++; k--; }
            strip = 0;
        }
        if (k) memcpy(buf + o, p, k);
        o += k;
    }
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Interface slots shared by the bpe and spm plugins (see tok-common.h)       */
/* ------------------------------------------------------------------------ */
static const tokc_vocab *vocab_of(const llmh_tokenizer *t) { return (const tokc_vocab *)(const void *)t; }

llmh_status tokc_plugin_init(const llmh_host_api *host, void **state) {
    tokc_host = host;
    *state = NULL;
    return LLMH_OK;
}

int32_t tokc_if_n_vocab(const llmh_tokenizer *t) { return t ? vocab_of(t)->n_vocab : 0; }

llmh_status tokc_if_token_to_piece(const llmh_tokenizer *t, llmh_token id, uint32_t flags, char *buf, size_t cap,
                                   size_t *n_out) {
    return tokc_token_to_piece(vocab_of(t), id, flags, buf, cap, n_out);
}

const char *tokc_if_token_text(const llmh_tokenizer *t, llmh_token id, size_t *len) {
    if (!t || id < 0 || id >= vocab_of(t)->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    return tokc_strtab_get(&vocab_of(t)->tab, id, len);
}

int32_t tokc_if_token_type(const llmh_tokenizer *t, llmh_token id) {
    if (!t || id < 0 || id >= vocab_of(t)->n_vocab) return 0;
    return vocab_of(t)->type[id];
}

llmh_token tokc_if_special(const llmh_tokenizer *t, llmh_special_token which) {
    if (!t || (int)which < 0 || (int)which >= TOKC_N_SPECIAL) return -1;
    return vocab_of(t)->special[which];
}

int32_t tokc_if_add_bos_default(const llmh_tokenizer *t) { return t ? vocab_of(t)->add_bos : 0; }

llmh_status tokc_if_decode(const llmh_tokenizer *t, const llmh_token *ids, size_t n, uint32_t flags, char *buf,
                           size_t cap, size_t *n_out) {
    return tokc_decode(vocab_of(t), ids, n, flags, buf, cap, n_out);
}

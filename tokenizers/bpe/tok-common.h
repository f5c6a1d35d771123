/*
 * tok-common.h — pieces shared by the "bpe" and "spm" tokenizer plugins:
 * a vocabulary table with a text -> id hash map, metadata readers, the
 * special-token partition of input text, UTF-8 helpers and a growable token
 * buffer. Compiled into each plugin (static/hidden symbols only); includes
 * nothing but the SDK and libc.
 */
#ifndef LLMH_TOK_COMMON_H
#define LLMH_TOK_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "llmh-plugin.h"

/* The host API a plugin got in init (set once; never NULL afterwards). */
extern const llmh_host_api *tokc_host;
#define TOKC_ERR(...) (tokc_host ? tokc_host->set_error(__VA_ARGS__) : (void)0)

/* ---------------------------------------------------------------------- */
/* Hash map from byte strings (stored elsewhere) to int32 values.          */
/* ---------------------------------------------------------------------- */
typedef struct tokc_strmap {
    int32_t *slots;     /* capacity entries: -1 = empty, else an index into the key table */
    size_t cap;         /* power of two */
} tokc_strmap;

static inline uint64_t tokc_hash(const void *p, size_t n) {
    /* FNV-1a 64 with a final avalanche (splitmix64 finalizer) */
    const unsigned char *s = (const unsigned char *)p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    h ^= h >> 31; h *= 0x7fb5d329728ea185ull; h ^= h >> 27;
    return h;
}

/* ---------------------------------------------------------------------- */
/* String table: n strings in one arena; id -> (ptr, len); text -> id.     */
/* ---------------------------------------------------------------------- */
typedef struct tokc_strtab {
    char *arena;        /* all strings, each followed by a NUL */
    size_t arena_len, arena_cap;
    uint64_t *off;      /* n offsets into arena */
    uint32_t *len;      /* n lengths */
    int32_t n, cap;
    tokc_strmap map;    /* text -> id (first id wins on duplicates) */
} tokc_strtab;

llmh_status tokc_strtab_init(tokc_strtab *t, int32_t expected);
void tokc_strtab_free(tokc_strtab *t);
/* Append a string; *id_out gets its id (the existing id when the text is
 * already present and `dedup` is set, else a new id). */
llmh_status tokc_strtab_add(tokc_strtab *t, const char *s, size_t len, int dedup, int32_t *id_out);
int32_t tokc_strtab_find(const tokc_strtab *t, const char *s, size_t len);
static inline const char *tokc_strtab_get(const tokc_strtab *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n) { if (len) *len = 0; return NULL; }
    if (len) *len = t->len[id];
    return t->arena + t->off[id];
}

/* ---------------------------------------------------------------------- */
/* Growable token buffer                                                   */
/* ---------------------------------------------------------------------- */
typedef struct tokc_ids {
    llmh_token *v;
    size_t n, cap;
} tokc_ids;

llmh_status tokc_ids_push(tokc_ids *b, llmh_token id);
void tokc_ids_free(tokc_ids *b);
/* Copy into the caller's buffer with the encode() cap rule. */
llmh_status tokc_ids_deliver(const tokc_ids *b, llmh_token *out, size_t cap, size_t *n_out);

/* Growable byte buffer */
typedef struct tokc_bytes {
    char *v;
    size_t n, cap;
} tokc_bytes;
llmh_status tokc_bytes_append(tokc_bytes *b, const void *p, size_t n);
void tokc_bytes_free(tokc_bytes *b);

/* ---------------------------------------------------------------------- */
/* UTF-8                                                                   */
/* ---------------------------------------------------------------------- */
/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if invalid
 * (overlong, surrogate, > U+10FFFF, truncated, stray continuation). */
size_t tokc_utf8_valid_len(const unsigned char *s, size_t n);
/* Length implied by a lead byte alone (1 for continuation/invalid bytes). */
static inline size_t tokc_utf8_lead_len(unsigned char c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}
/* Decode one code point (assumes valid input of len bytes). */
uint32_t tokc_utf8_decode(const unsigned char *s, size_t len);
/* Encode a code point; returns bytes written (1..4) into out[4]. */
size_t tokc_utf8_encode(uint32_t cp, char *out);

/* ---------------------------------------------------------------------- */
/* Metadata                                                                */
/* ---------------------------------------------------------------------- */
/* STRING value of `key` (not NUL-terminated), or NULL. */
const char *tokc_meta_str(const llmh_kv_list *meta, const char *key, size_t *len);
/* 1 when `key` is a STRING equal to `s`. */
int tokc_meta_str_eq(const llmh_kv_list *meta, const char *key, const char *s);
/* Integer/bool value of `key`; returns 1 and sets *out when present and numeric. */
int tokc_meta_int(const llmh_kv_list *meta, const char *key, int64_t *out);
/* ARRAY value of `key` with elements of `elem` type (LLMH_V_* or -1 for any
 * numeric); NULL when absent. Fails (returns NULL, *bad = 1, error set)
 * when present with another type. */
const llmh_value *tokc_meta_array(const llmh_kv_list *meta, const char *key, int elem, int *bad);

/* ---------------------------------------------------------------------- */
/* Vocabulary common to both plugins                                       */
/* ---------------------------------------------------------------------- */
enum { TOKC_N_SPECIAL = 7 };

typedef struct tokc_special_tok {
    const char *text;   /* into the vocab arena */
    uint32_t len;
    int32_t id;
    int8_t type;        /* LLMH_TOKEN_CONTROL / _UNKNOWN / _USER_DEFINED */
    uint8_t lstrip, rstrip;
} tokc_special_tok;

typedef struct tokc_vocab {
    tokc_strtab tab;        /* id -> stored text (ids 0..n_vocab-1) */
    int32_t n_vocab;
    int8_t *type;           /* n_vocab llmh_token_type values */
    llmh_token special[TOKC_N_SPECIAL]; /* -1 when none */
    int add_bos, add_eos;   /* model defaults */
    /* control/unknown/user-defined tokens matched in text, sorted by first
     * byte then length descending; first[b] .. first[b+1] index the run of
     * tokens starting with byte b. */
    tokc_special_tok *specials;
    size_t n_specials;
    uint32_t first[257];
    /* decoded pieces (special rendering), one arena */
    char *piece_arena;
    uint64_t *piece_off;    /* n_vocab + 1 */
} tokc_vocab;

void tokc_vocab_free(tokc_vocab *v);
/* Read special ids and add_bos/add_eos from GGUF keys; `defaults` gives the
 * family defaults (BOS, EOS, UNK; -1 = none) applied when a key is absent or
 * out of range. EOT falls back to a well-known end-of-turn text. */
void tokc_vocab_read_specials(tokc_vocab *v, const llmh_kv_list *meta, llmh_token def_bos,
                              llmh_token def_eos, llmh_token def_unk);
/* Detect EOT by text when unset. */
void tokc_vocab_guess_eot(tokc_vocab *v);
/* Build the sorted special-token index from v->type (and strip flags, when
 * `lstrip`/`rstrip` arrays are given, n_vocab entries each). */
llmh_status tokc_vocab_build_specials(tokc_vocab *v, const uint8_t *lstrip, const uint8_t *rstrip);

/* A fragment of input text: either raw text [start, start+len) or a token. */
typedef struct tokc_fragment {
    size_t start, len;
    llmh_token id;          /* >= 0 for a matched special token, else -1 */
} tokc_fragment;

typedef struct tokc_fragments {
    tokc_fragment *v;
    size_t n, cap;
} tokc_fragments;

/* Split `text` at special tokens: user-defined tokens always, control and
 * unknown tokens only with LLMH_ENCODE_PARSE_SPECIAL. Leftmost match wins,
 * the longest token at that position. Empty text fragments are dropped. */
llmh_status tokc_partition(const tokc_vocab *v, const char *text, size_t len, uint32_t flags,
                           tokc_fragments *out);
void tokc_fragments_free(tokc_fragments *f);

/* Pieces: set after the plugin computed every token's bytes (rendered as if
 * LLMH_DECODE_SPECIAL were set). */
llmh_status tokc_vocab_set_pieces(tokc_vocab *v, const tokc_bytes *arena, const uint64_t *off);

/* token_to_piece / decode shared by both plugins (cap rule of the ABI). */
llmh_status tokc_token_to_piece(const tokc_vocab *v, llmh_token id, uint32_t flags, char *buf,
                                size_t cap, size_t *n_out);
llmh_status tokc_decode(const tokc_vocab *v, const llmh_token *ids, size_t n, uint32_t flags,
                        char *buf, size_t cap, size_t *n_out);


/* Interface slots every tokenizer built on tokc_vocab shares. Each plugin's
 * struct llmh_tokenizer must have `tokc_vocab v` as its FIRST member: a
 * pointer to a struct converts to a pointer to its first member (C11
 * 6.7.2.1p15), so these read the vocab through the plugin's handle. */
llmh_status tokc_plugin_init(const llmh_host_api *host, void **state);
int32_t tokc_if_n_vocab(const llmh_tokenizer *t);
llmh_status tokc_if_token_to_piece(const llmh_tokenizer *t, llmh_token id, uint32_t flags, char *buf, size_t cap,
                                   size_t *n_out);
const char *tokc_if_token_text(const llmh_tokenizer *t, llmh_token id, size_t *len);
int32_t tokc_if_token_type(const llmh_tokenizer *t, llmh_token id);
llmh_token tokc_if_special(const llmh_tokenizer *t, llmh_special_token which);
int32_t tokc_if_add_bos_default(const llmh_tokenizer *t);
llmh_status tokc_if_decode(const llmh_tokenizer *t, const llmh_token *ids, size_t n, uint32_t flags, char *buf,
                           size_t cap, size_t *n_out);

#endif

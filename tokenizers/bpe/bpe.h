/*
 * bpe.h — internals of the byte-level BPE tokenizer plugin ("bpe").
 *
 * Data flow of encode(): special-token partition -> (tokenizer.json only)
 * Unicode normalization -> regex pre-tokenization (PCRE2, UTF + UCP) into
 * words -> per word, GPT-2 byte-to-unicode mapping and merge by rank ->
 * token ids, with byte fallback.
 */
#ifndef LLMH_BPE_H
#define LLMH_BPE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "tok-common.h"

/* How a pre-tokenizer split stage treats its matches (HF "behavior"). */
typedef enum bpe_split_behavior {
    BPE_SPLIT_ISOLATED = 0,           /* matches and gaps are separate words */
    BPE_SPLIT_REMOVED = 1,            /* gaps kept, matches dropped */
    BPE_SPLIT_MERGED_WITH_PREVIOUS = 2,
    BPE_SPLIT_MERGED_WITH_NEXT = 3
} bpe_split_behavior;

typedef struct bpe_stage {
    pcre2_code *re;
    bpe_split_behavior behavior;
} bpe_stage;

enum { BPE_MAX_STAGES = 8, BPE_MAX_NORMALIZERS = 4 };

/* A merge: (left symbol, right symbol) -> rank and result symbol. */
typedef struct bpe_merge {
    int32_t left, right;   /* -1 in an empty slot */
    int32_t rank;
    int32_t result;
} bpe_merge;

/* Word cache entry (direct-mapped, guarded by the tokenizer's mutex). */
typedef struct bpe_cache_entry {
    uint64_t hash;
    char *word;            /* owned copy, NULL in an empty slot */
    uint32_t word_len;
    uint32_t n_ids;
    llmh_token *ids;       /* owned */
} bpe_cache_entry;

struct llmh_tokenizer {
    tokc_vocab v;          /* must stay first (tok-common reads it through the
                              handle); v.tab also holds "virtual" symbols past n_vocab:
                              merge operands/results absent from the vocab */
    int32_t *tok_of_sym;   /* tab.n entries: token id a symbol outputs, or -1 */
    bpe_merge *merges;     /* open-addressing table */
    size_t merge_cap;      /* power of two */
    int32_t byte_sym[256]; /* symbol of the byte-level char of each byte, or -1 */
    llmh_token byte_tok[256]; /* token of each byte, or -1 */
    char byte_chr[256][4];  /* UTF-8 of each byte's byte-level character */
    uint8_t byte_chr_len[256];
    int ignore_merges;     /* emit a whole word when it is a token (llama3) */
    int add_prefix_space;  /* ByteLevel add_prefix_space (tokenizer.json) */
    bpe_stage stages[BPE_MAX_STAGES];
    int n_stages;
    int normalizers[BPE_MAX_NORMALIZERS]; /* utf8proc option sets, 0-terminated */
    int n_normalizers;

    pthread_mutex_t cache_mu;
    bpe_cache_entry *cache;
    size_t cache_cap;      /* power of two, 0 = no cache */
};

/* GPT-2 byte <-> unicode mapping. */
uint32_t bpe_byte_to_cp(uint8_t b);
/* Byte for a code point, or -1 when it is not in the mapping. */
int bpe_cp_to_byte(uint32_t cp);

/* Building (bpe.c). */
llmh_status bpe_add_stage(llmh_tokenizer *t, const char *pattern, size_t len, int literal,
                          bpe_split_behavior behavior, const char *where);
llmh_status bpe_add_merge(llmh_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                          int32_t rank);
/* After tokens (v.tab with n_vocab entries, v.type) are set: size the merge
 * table for n_merges. */
llmh_status bpe_init_merges(llmh_tokenizer *t, size_t n_merges);
/* After tokens and merges: symbol tables, specials, pieces. */
llmh_status bpe_finish(llmh_tokenizer *t, const uint8_t *lstrip, const uint8_t *rstrip);

/* tokenizer.json loading (bpe-json.c). */
int32_t bpe_json_probe(const char *path);
llmh_status bpe_json_load(llmh_tokenizer *t, const char *path, const llmh_kv_list *meta);

#endif

/*
 * llmh-bench.h — bench manifests: the variants an A/B benchmark compares
 * (`llmhost bench --bench FILE.toml`, docs/bench.md).
 *
 * A bench manifest names a base manifest and a list of variants, each the
 * base with some keys overridden, plus optional test settings:
 *
 *     base = "qwen-q8.toml"              # relative to this file
 *     [bench]                            # optional; command-line options win
 *     pp = [128]                         # prefill tests
 *     tg = [64]                          # decode tests
 *     pg = [[512, 128]]                  # prefill + decode tests
 *     depth = [0, 1024]                  # tokens already in the cache
 *     np = [1, 4]                        # parallel sequences
 *     reps = 3
 *     warmup = 1
 *     [[variant]]
 *     name = "q8"                        # the base as it is
 *     [[variant]]
 *     name = "q4-onednn"
 *     set = { "model.path" = "q4.gguf", "backend.plugin" = "onednn" }
 *
 * A variant's manifest is the base manifest included by a small document
 * holding the overrides, so relative paths in `set` resolve against the
 * bench manifest's directory and every manifest rule (unknown keys, types)
 * applies to them with the usual messages.
 */
#ifndef LLMH_BENCH_H
#define LLMH_BENCH_H

#include "llmh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One override of a variant: `key = value` applied to the base manifest. */
typedef struct llmh_bench_override {
    const char *key;           /* dotted manifest key, e.g. "backend.plugin" */
    const char *value;         /* the value as TOML text, e.g. "\"onednn\"" */
    int line, col;             /* where it was written in the bench manifest (1-based; 0 = unknown) */
} llmh_bench_override;

typedef struct llmh_bench_variant {
    const char *name;          /* unique within the bench manifest; [A-Za-z0-9._+@-], 1..64 chars */
    const char *base;          /* absolute path of the manifest it starts from */
    const llmh_bench_override *sets; /* n_sets overrides, in file order */
    size_t n_sets;
    int line;                  /* line of the variant's [[variant]] header (0 = unknown) */
} llmh_bench_variant;

/* A list of test sizes from [bench]; `given` is false when the key is absent
 * (an empty list that is given means "no such test"). */
typedef struct llmh_bench_ints {
    const int64_t *v;
    size_t n;
    bool given;
} llmh_bench_ints;

/* A parsed bench manifest. Every string and array is owned by the spec and
 * lives until llmh_bench_spec_free(). */
typedef struct llmh_bench_spec {
    const char *file;          /* the bench manifest as named by the caller (used in messages) */
    const char *dir;           /* absolute directory that relative paths resolve against */
    const llmh_bench_variant *variants;
    size_t n_variants;
    /* [bench] settings (all optional) */
    llmh_bench_ints pp;        /* prefill sizes (>= 1) */
    llmh_bench_ints tg;        /* decode sizes (>= 1) */
    llmh_bench_ints pg;        /* prefill+decode pairs, flattened: v[2i] prompt, v[2i+1] generated; n is 2 x pairs */
    llmh_bench_ints depth;     /* context depths (>= 0) */
    llmh_bench_ints np;        /* parallel sequences (>= 1) */
    int64_t reps;              /* measured repetitions; -1 = not given */
    int64_t warmup;            /* warm-up runs; -1 = not given */
    int64_t ctx;               /* KV cache size per sequence; -1 = not given */
    const char *kv;            /* "f16", "f32" or NULL = not given */
} llmh_bench_spec;

/* Parse the bench manifest at `path`. Errors name file:line:column and the
 * key ("ab.toml:7:1: unknown key 'sett' in [[variant]] (did you mean
 * 'set'?)"); a missing or unreadable base manifest is an error here. */
LLMH_API llmh_status llmh_bench_spec_load(const char *path, llmh_bench_spec **out);
/* Same from memory: `name` is used in messages; relative paths resolve
 * against `base_dir` (NULL = the current directory). */
LLMH_API llmh_status llmh_bench_spec_parse(const char *text, size_t len, const char *name, const char *base_dir,
                                           llmh_bench_spec **out);
LLMH_API void llmh_bench_spec_free(llmh_bench_spec *spec);

/* Build variant `i`'s manifest: its base with its overrides applied (the
 * caller frees *out with llmh_manifest_free). An override the manifest
 * refuses is reported at its place in the bench manifest: "ab.toml:9:9:
 * variant 'b': set backend.plugn = "x": unknown key 'plugn' in [backend]
 * (did you mean 'plugin'?)". */
LLMH_API llmh_status llmh_bench_variant_manifest(const llmh_bench_spec *spec, size_t i, llmh_manifest **out);

#ifdef __cplusplus
}
#endif
#endif /* LLMH_BENCH_H */

/* cli-bench.h — what the bench command's files share: the measured results
 * (cli-bench.c measures, cli-bench-report.c writes the table, CSV, JSON and
 * SVG). docs/bench.md describes the outputs. */
#ifndef LLMH_CLI_BENCH_H
#define LLMH_CLI_BENCH_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

typedef enum llmh_cli_bench_kind {
    LLMH_CLI_BENCH_PP = 0,     /* prefill n_prompt tokens in one call */
    LLMH_CLI_BENCH_TG = 1,     /* decode n_gen tokens, one step each */
    LLMH_CLI_BENCH_PG = 2      /* prefill n_prompt, then decode n_gen, timed together */
} llmh_cli_bench_kind;

/* One test: the same for every variant. */
typedef struct llmh_cli_bench_test {
    llmh_cli_bench_kind kind;
    int n_prompt, n_gen;       /* pp: n_prompt; tg: n_gen; pg: both */
    int depth;                 /* tokens already in each sequence's cache */
    int np;                    /* sequences stepped together (llmh_session_eval_batch) */
    char name[40];             /* "pp128", "tg64", "pp512+tg128" */
} llmh_cli_bench_test;

/* One variant: a manifest and what was loaded from it. */
typedef struct llmh_cli_bench_variant {
    char name[80];             /* unique: --names, the [[variant]] name, or the config's file name */
    const char *source;        /* the config path, or "BENCH.toml [variant NAME]" (owned) */
    llmh_manifest *manifest;
    llmh_registry *registry;
    llmh_model *model;
    llmh_session **sessions;   /* max np sessions of n_ctx tokens each */
    int n_sessions;
    const char *arch;          /* borrowed from the model */
    const char *backend;       /* borrowed from the manifest */
    int threads;               /* the manifest's backend.threads (0 = backend default) */
    double load_seconds;       /* manifest + plugins + model load, wall time */
    uint64_t file_bytes;       /* the model file's size (0 for a directory) */
    uint64_t weight_bytes;     /* weight bytes streamed per decoded token */
    uint64_t adapter_bytes;    /* LoRA adapter bytes its sessions read per decoded token */
    uint64_t kv_bytes_per_pos; /* K+V bytes per cached position, all layers */
    /* --adapters: the variant's adapter set ("none", "all" or a list), and
     * the variant whose manifest, registry and model it borrows (NULL: its own) */
    char *adapter_set;
    const struct llmh_cli_bench_variant *shares;
} llmh_cli_bench_variant;

/* One (test, variant) row. */
typedef struct llmh_cli_bench_row {
    double *samples;           /* reps tokens/s, in the order measured */
    double median, min, max;
    double ratio, ratio_min, ratio_max; /* paired per repetition against variant 0 (1 for variant 0) */
    double bound;              /* decode bound, tokens/s (0: none for this test) */
} llmh_cli_bench_row;

typedef struct llmh_cli_bench_run {
    llmh_cli_bench_variant *variants;
    int n_variants;
    llmh_cli_bench_test *tests;
    int n_tests;
    llmh_cli_bench_row *rows;  /* rows[test * n_variants + variant] */
    int reps, warmup;
    int64_t n_ctx;             /* KV cache per sequence */
    int n_batch;
    const char *kv;            /* "f16", "f32" or NULL = each manifest's */
    const char *bench_file;    /* --bench FILE or NULL */
    double bandwidth_gbs;      /* 0: not measured */
    int bandwidth_threads;
    int bandwidth_mb;
    double peak_rss_mb;        /* all models loaded, before the bandwidth buffer */
    char date[32];             /* UTC, ISO 8601 */
} llmh_cli_bench_run;

static inline llmh_cli_bench_row *llmh_cli_bench_at(const llmh_cli_bench_run *r, int test, int variant) {
    return &r->rows[(size_t)test * (size_t)r->n_variants + (size_t)variant];
}

/* cli-bench-report.c: each returns 0, or prints why to stderr and returns 1. */
void llmh_cli_bench_print_table(const llmh_cli_bench_run *r, FILE *out);
int llmh_cli_bench_write_csv(const llmh_cli_bench_run *r, FILE *f);
int llmh_cli_bench_write_json(const llmh_cli_bench_run *r, FILE *f);
int llmh_cli_bench_write_svg(const llmh_cli_bench_run *r, FILE *f);

#endif

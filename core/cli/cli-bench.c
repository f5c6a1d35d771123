/* cli-bench.c — llmhost bench: prefill (pp), decode (tg) and prefill+decode
 * (pg) speed of several variants of a manifest, at context depths and with
 * parallel sequences, the variants run alternately (A B A B ...) so that
 * machine drift cancels in their ratios; beside each decode row, the
 * memory-bandwidth bound measured in the same run:
 *
 *   decode bound (tok/s) = np x read bandwidth / bytes read per step
 *   bytes read per step  = weight bytes + np x KV bytes at the mean depth
 *
 * Variants come from several --config files or a bench manifest (--bench,
 * llmh-bench.h). Data flow: options -> tests -> variants loaded -> warm-up
 * and repetitions -> statistics -> bandwidth -> table/CSV/JSON/SVG
 * (cli-bench-report.c). docs/bench.md is the user's guide. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli-bench.h"
#include "cli-model.h"
#include "llmh-bench.h"

#define BENCH_MAX_LIST 64
#define BENCH_MAX_TOKENS (1 << 20)
#define BENCH_MAX_DEPTH (1 << 24)
#define BENCH_MAX_NP 1024
#define BENCH_MAX_REPS 1000

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* memory read bandwidth                                                      */
/* ------------------------------------------------------------------------ */
typedef uint64_t v8u64 __attribute__((vector_size(64)));

/* Workers wait for `state` to leave 0: 1 = read, -1 = quit (a thread could
 * not be started). */
typedef struct bw_start {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
} bw_start;

typedef struct bw_job {
    const v8u64 *p;
    size_t n;        /* vectors */
    uint64_t sink;
    bw_start *start;
} bw_job;

static void *bw_worker(void *arg) {
    bw_job *j = arg;
    pthread_mutex_lock(&j->start->mu);
    while (j->start->state == 0) pthread_cond_wait(&j->start->cv, &j->start->mu);
    int state = j->start->state;
    pthread_mutex_unlock(&j->start->mu);
    if (state < 0) return NULL;
    v8u64 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (size_t i = 0; i + 4 <= j->n; i += 4) {
        a0 ^= j->p[i];
        a1 ^= j->p[i + 1];
        a2 ^= j->p[i + 2];
        a3 ^= j->p[i + 3];
    }
    v8u64 a = a0 ^ a1 ^ a2 ^ a3;
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s ^= a[k];
    j->sink = s;
    return NULL;
}

/* Best of `reps` passes reading `bytes` with `threads` threads, in GB/s
 * (0 when the buffer or a thread cannot be had). A pass is timed from the
 * release of the started threads to the last join. */
static double measure_bandwidth(int threads, size_t bytes, int reps) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    v8u64 *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes)) return 0;
    memset(buf, 1, bytes); /* fault every page in */
    size_t nvec = bytes / sizeof(v8u64);
    double best = 0;
    uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        bw_start start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
        bw_job jobs[64];
        pthread_t tid[64];
        size_t per = nvec / (size_t)threads;
        int started = 0;
        for (int t = 0; t < threads; t++) {
            jobs[t] = (bw_job){buf + per * (size_t)t, per, 0, &start};
            if (pthread_create(&tid[t], NULL, bw_worker, &jobs[t]) != 0) break;
            started++;
        }
        pthread_mutex_lock(&start.mu);
        start.state = started == threads ? 1 : -1;
        double t0 = now_s();
        pthread_cond_broadcast(&start.cv);
        pthread_mutex_unlock(&start.mu);
        for (int t = 0; t < started; t++) {
            pthread_join(tid[t], NULL);
            sink ^= jobs[t].sink;
        }
        double dt = now_s() - t0;
        pthread_cond_destroy(&start.cv);
        pthread_mutex_destroy(&start.mu);
        if (started < threads) {
            best = 0;
            break;
        }
        double gbs = (double)(per * (size_t)threads * sizeof(v8u64)) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    if (sink == 0x123456789abcdefULL) fprintf(stderr, " "); /* keep the reads */
    return best;
}

/* ------------------------------------------------------------------------ */
/* options                                                                    */
/* ------------------------------------------------------------------------ */
typedef struct int_list {
    int v[BENCH_MAX_LIST];
    int n;
    int given;
} int_list;

typedef struct bench_opts {
    int_list pp, tg, depth, np;
    int pg[BENCH_MAX_LIST][2];
    int n_pg, pg_given;
    int reps, warmup, ctx, n_batch, bw_mb, do_bw;
    const char *kv;
    const char *bench_file;
    const char *names;
    const char *adapters;
    const char *csv, *json, *svg;
} bench_opts;

static void usage(void) {
    printf("usage: llmhost bench --config A.toml [--config B.toml ...] [options]\n"
           "       llmhost bench --bench BENCH.toml [options]\n"
           "\n"
           "Measures prefill and decode tokens/s of each variant, running the variants alternately\n"
           "(A B A B ...) so that drift cancels in their ratios, and the machine's memory read\n"
           "bandwidth in the same run (the decode bound). Details: docs/bench.md.\n"
           "\n"
           "variants:\n"
           "  --config FILE     one variant per manifest, named after its file (repeatable)\n"
           "  --bench FILE      a bench manifest: base manifest + [[variant]] overrides (+ [bench] tests)\n"
           "  --names A,B,...   names for the --config variants (default: file names)\n"
           "  --adapters SETS   adapter-set variants of one --config, sharing its loaded model (the\n"
           "                    same weights in the same memory, so only the adapters differ):\n"
           "                    ';'-separated sets, each [NAME=]none|all|ADAPTER[*SCALE],...\n"
           "                    e.g. --adapters 'none;a1;a1,a2,a3,a4'\n"
           "  --set S.K=V       (global option) override a key in every variant\n"
           "\n"
           "tests (lists are comma-separated; every test runs at every depth and np):\n"
           "  -p, --n-prompt N[,N]   prefill tests of N tokens (default 128; 0 = none)\n"
           "  -n, --n-gen N[,N]      decode tests of N tokens (default 64; 0 = none)\n"
           "  -pg P,T                prefill P tokens then decode T, timed together (repeatable)\n"
           "  -d, --depth D[,D]      tokens already in the cache before each test (default 0)\n"
           "  -np N[,N]              sequences stepped together with llmh_session_eval_batch (default 1)\n"
           "  -r, --reps N           measured repetitions (default 3)\n"
           "  --warmup N             unmeasured runs of each test first (default 1)\n"
           "  -b, --batch N          max tokens per graph (default 512)\n"
           "  --ctx N                KV cache per sequence (default: largest depth + test + 16)\n"
           "  --kv f16|f32           KV cache type (default: each manifest's [model] kv_type)\n"
           "  --bw-mb N              bandwidth test buffer in MB (default 1024)\n"
           "  --no-bw                skip the bandwidth test (no decode bound)\n"
           "\n"
           "output (the table always goes to stdout, progress to stderr):\n"
           "  --csv FILE     one line per test and variant\n"
           "  --json FILE    settings, variants, and every row with its samples\n"
           "  --svg FILE     a bar chart of tokens/s per test and variant, min-max whiskers\n"
           "\n"
           "Threads: --set backend.threads=N (or a [[variant]] override).\n");
}

/* "N[,N...]" with each N in [lo, hi]. */
static int parse_list(const char *opt, const char *s, int lo, int hi, int_list *out) {
    out->n = 0;
    out->given = 1;
    const char *p = s;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ',')) {
            fprintf(stderr, "llmhost: bench: %s: '%s' is not a list of integers (expected N or N,N,...)\n", opt, s);
            return -1;
        }
        if (v < lo || v > hi) {
            fprintf(stderr, "llmhost: bench: %s: %ld is out of range (%d..%d)\n", opt, v, lo, hi);
            return -1;
        }
        if (out->n == BENCH_MAX_LIST) {
            fprintf(stderr, "llmhost: bench: %s: more than %d values\n", opt, BENCH_MAX_LIST);
            return -1;
        }
        out->v[out->n++] = (int)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    int_list l;
    if (parse_list(opt, s, lo, hi, &l)) return -1;
    if (l.n != 1) {
        fprintf(stderr, "llmhost: bench: %s takes one integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = l.v[0];
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->bw_mb = 1024;
    o->do_bw = 1;
    o->reps = -1;   /* -1: not given (the bench manifest or the default decides) */
    o->warmup = -1;
    o->ctx = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 1; }
        if (!strcmp(a, "--no-bw")) { o->do_bw = 0; continue; }
        if (!val) {
            int known = !strcmp(a, "-p") || !strcmp(a, "--n-prompt") || !strcmp(a, "-n") || !strcmp(a, "--n-gen") ||
                        !strcmp(a, "-pg") || !strcmp(a, "-d") || !strcmp(a, "--depth") || !strcmp(a, "-np") ||
                        !strcmp(a, "-r") || !strcmp(a, "--reps") || !strcmp(a, "--warmup") || !strcmp(a, "-b") ||
                        !strcmp(a, "--batch") || !strcmp(a, "--ctx") || !strcmp(a, "--kv") ||
                        !strcmp(a, "--bw-mb") || !strcmp(a, "--config") || !strcmp(a, "--bench") ||
                        !strcmp(a, "--names") || !strcmp(a, "--adapters") || !strcmp(a, "--csv") ||
                        !strcmp(a, "--json") || !strcmp(a, "--svg");
            if (known) fprintf(stderr, "llmhost: bench: %s needs a value (see bench --help)\n", a);
            else fprintf(stderr, "llmhost: bench: unknown option '%s' (see bench --help)\n", a);
            return -1;
        }
        if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) rc = parse_list(a, val, 0, BENCH_MAX_TOKENS, &o->pp);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) rc = parse_list(a, val, 0, BENCH_MAX_TOKENS, &o->tg);
        else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) rc = parse_list(a, val, 0, BENCH_MAX_DEPTH, &o->depth);
        else if (!strcmp(a, "-np")) rc = parse_list(a, val, 1, BENCH_MAX_NP, &o->np);
        else if (!strcmp(a, "-pg")) {
            int_list l;
            rc = parse_list(a, val, 1, BENCH_MAX_TOKENS, &l);
            if (!rc && l.n != 2) {
                fprintf(stderr, "llmhost: bench: -pg takes PROMPT,GENERATED (e.g. -pg 512,128), got '%s'\n", val);
                rc = -1;
            }
            if (!rc && o->n_pg == BENCH_MAX_LIST) {
                fprintf(stderr, "llmhost: bench: more than %d -pg tests\n", BENCH_MAX_LIST);
                rc = -1;
            }
            if (!rc) {
                o->pg[o->n_pg][0] = l.v[0];
                o->pg[o->n_pg][1] = l.v[1];
                o->n_pg++;
                o->pg_given = 1;
            }
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) rc = parse_int(a, val, 1, BENCH_MAX_REPS, &o->reps);
        else if (!strcmp(a, "--warmup")) rc = parse_int(a, val, 0, 100, &o->warmup);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) rc = parse_int(a, val, 1, 1 << 16, &o->n_batch);
        else if (!strcmp(a, "--ctx")) rc = parse_int(a, val, 1, BENCH_MAX_DEPTH + BENCH_MAX_TOKENS, &o->ctx);
        else if (!strcmp(a, "--bw-mb")) rc = parse_int(a, val, 16, 1 << 20, &o->bw_mb);
        else if (!strcmp(a, "--kv")) {
            if (strcmp(val, "f16") && strcmp(val, "f32")) {
                fprintf(stderr, "llmhost: bench: --kv must be f16 or f32, got '%s'\n", val);
                rc = -1;
            }
            o->kv = val;
        } else if (!strcmp(a, "--config")) {
            if (llmh_cli.n_configs >= 16) {
                fprintf(stderr, "llmhost: bench: too many --config (at most 16)\n");
                rc = -1;
            } else {
                llmh_cli.configs[llmh_cli.n_configs++] = val;
            }
        } else if (!strcmp(a, "--bench")) o->bench_file = val;
        else if (!strcmp(a, "--names")) o->names = val;
        else if (!strcmp(a, "--adapters")) o->adapters = val;
        else if (!strcmp(a, "--csv")) o->csv = val;
        else if (!strcmp(a, "--json")) o->json = val;
        else if (!strcmp(a, "--svg")) o->svg = val;
        else {
            fprintf(stderr, "llmhost: bench: unknown option '%s' (see bench --help)\n", a);
            rc = -1;
            takes = 0;
        }
        if (rc) return -1;
        i += takes;
    }
    return 0;
}

/* Command-line lists win over the bench manifest's, which win over defaults. */
static void merge_list(int_list *dst, const llmh_bench_ints *from_spec, int dflt) {
    if (dst->given) return;
    if (from_spec && from_spec->given) {
        dst->n = 0;
        for (size_t i = 0; i < from_spec->n && i < BENCH_MAX_LIST; i++) dst->v[dst->n++] = (int)from_spec->v[i];
        return;
    }
    dst->v[0] = dflt;
    dst->n = 1;
}

static int build_tests(const bench_opts *o, llmh_cli_bench_run *run) {
    int n_base = 0;
    llmh_cli_bench_test base[3 * BENCH_MAX_LIST];
    for (int i = 0; i < o->pp.n; i++)
        if (o->pp.v[i] > 0) base[n_base++] = (llmh_cli_bench_test){LLMH_CLI_BENCH_PP, o->pp.v[i], 0, 0, 1, ""};
    for (int i = 0; i < o->tg.n; i++)
        if (o->tg.v[i] > 0) base[n_base++] = (llmh_cli_bench_test){LLMH_CLI_BENCH_TG, 0, o->tg.v[i], 0, 1, ""};
    for (int i = 0; i < o->n_pg; i++)
        base[n_base++] = (llmh_cli_bench_test){LLMH_CLI_BENCH_PG, o->pg[i][0], o->pg[i][1], 0, 1, ""};
    if (n_base == 0) {
        fprintf(stderr, "llmhost: bench: no tests left (-p 0 and -n 0 without -pg): nothing to measure\n");
        return -1;
    }
    size_t n = (size_t)n_base * (size_t)o->depth.n * (size_t)o->np.n;
    run->tests = calloc(n, sizeof *run->tests);
    if (!run->tests) return -1;
    for (int d = 0; d < o->depth.n; d++)
        for (int p = 0; p < o->np.n; p++)
            for (int b = 0; b < n_base; b++) {
                llmh_cli_bench_test t = base[b];
                t.depth = o->depth.v[d];
                t.np = o->np.v[p];
                if (t.kind == LLMH_CLI_BENCH_PP) snprintf(t.name, sizeof t.name, "pp%d", t.n_prompt);
                else if (t.kind == LLMH_CLI_BENCH_TG) snprintf(t.name, sizeof t.name, "tg%d", t.n_gen);
                else snprintf(t.name, sizeof t.name, "pp%d+tg%d", t.n_prompt, t.n_gen);
                run->tests[run->n_tests++] = t;
            }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* variants                                                                   */
/* ------------------------------------------------------------------------ */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Names for --config variants: --names, else the file name without .toml,
 * else (when two files share a name) the path as given; repeats get #N. */
/* Split an --adapters set "A[*S],B[*S],..." into names (pointing into buf)
 * and scales. 0, or -1 after saying what is wrong. */
typedef struct adapter_set {
    char buf[1024];
    const char *names[64];
    float scales[64];
    size_t n;
} adapter_set;

static int parse_adapter_set(const char *set, adapter_set *as) {
    as->n = 0;
    if (strlen(set) >= sizeof as->buf) {
        fprintf(stderr, "llmhost: bench: --adapters: set '%.40s...' is too long\n", set);
        return -1;
    }
    snprintf(as->buf, sizeof as->buf, "%s", set);
    for (char *tok = as->buf, *next; tok; tok = next) {
        char *comma = strchr(tok, ',');
        next = comma ? comma + 1 : NULL;
        if (comma) *comma = 0;
        if (as->n == 64) {
            fprintf(stderr, "llmhost: bench: --adapters: more than 64 adapters in set '%s'\n", set);
            return -1;
        }
        char *star = strchr(tok, '*'), *end = NULL;
        as->scales[as->n] = 1.0f;
        if (star) {
            *star = 0;
            as->scales[as->n] = strtof(star + 1, &end);
            if (end == star + 1 || *end) {
                fprintf(stderr, "llmhost: bench: --adapters: bad scale '%s' in set '%s' (ADAPTER*SCALE)\n", star + 1,
                        set);
                return -1;
            }
        }
        if (!*tok) {
            fprintf(stderr, "llmhost: bench: --adapters: empty adapter name in set '%s'\n", set);
            return -1;
        }
        as->names[as->n++] = tok;
    }
    return 0;
}

/* --adapters 'SET;SET;...': one variant per set, all on the one --config's
 * model (variant 0 loads it). SET = [NAME=]none|all|ADAPTER[*SCALE],... */
static int adapter_variants(llmh_cli_bench_run *run, const char *sets) {
    const char *p = sets;
    for (int i = 0; i < run->n_variants; i++) {
        llmh_cli_bench_variant *v = &run->variants[i];
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        const char *body = eq ? eq + 1 : p;
        size_t blen = len - (size_t)(body - p), nlen = eq ? (size_t)(eq - p) : blen;
        if (blen == 0 || nlen == 0 || nlen >= sizeof v->name) {
            fprintf(stderr, "llmhost: bench: --adapters: set %d of '%s' has an empty %s%s\n", i + 1, sets,
                    blen == 0 ? "adapter list (write 'none' for no adapters)" : "or too long name",
                    nlen >= sizeof v->name ? " (at most 79 characters)" : "");
            return -1;
        }
        snprintf(v->name, sizeof v->name, "%.*s", (int)nlen, p);
        if (!(v->adapter_set = strndup(body, blen))) return -1;
        adapter_set check;
        if (strcmp(v->adapter_set, "none") && strcmp(v->adapter_set, "all") &&
            parse_adapter_set(v->adapter_set, &check))
            return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(run->variants[j].name, v->name)) {
                fprintf(stderr, "llmhost: bench: --adapters: two sets are named '%s' (name them: NAME=SET)\n",
                        v->name);
                return -1;
            }
        if (i == 0) {
            if (!(v->source = strdup(llmh_cli.configs[0]))) return -1;
        } else {
            v->shares = &run->variants[0];
            if (asprintf((char **)&v->source, "%s [adapters %s]", llmh_cli.configs[0], v->adapter_set) < 0) {
                v->source = NULL;
                return -1;
            }
        }
        p = semi ? semi + 1 : p + len;
    }
    return 0;
}

static int name_config_variants(llmh_cli_bench_run *run, const char *names) {
    int nv = run->n_variants;
    if (names) {
        int k = 0;
        const char *p = names;
        while (k < nv) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len == 0 || len >= sizeof run->variants[0].name) {
                fprintf(stderr, "llmhost: bench: --names: empty or too long name in '%s'\n", names);
                return -1;
            }
            memcpy(run->variants[k].name, p, len);
            run->variants[k].name[len] = 0;
            k++;
            if (!comma) break;
            p = comma + 1;
        }
        if (k != nv || strchr(p, ',')) {
            fprintf(stderr, "llmhost: bench: --names gives %s names for %d --config variants\n",
                    k != nv ? "too few" : "too many", nv);
            return -1;
        }
        for (int i = 0; i < nv; i++)
            for (int j = 0; j < i; j++)
                if (!strcmp(run->variants[i].name, run->variants[j].name)) {
                    fprintf(stderr, "llmhost: bench: --names: '%s' is given twice\n", run->variants[i].name);
                    return -1;
                }
        return 0;
    }
    for (int i = 0; i < nv; i++) {
        const char *b = base_name(run->variants[i].source);
        size_t len = strlen(b);
        if (len > 5 && !strcmp(b + len - 5, ".toml")) len -= 5;
        snprintf(run->variants[i].name, sizeof run->variants[i].name, "%.*s", (int)len, b);
    }
    for (int i = 0; i < nv; i++)
        for (int j = 0; j < nv; j++)
            if (i != j && !strcmp(run->variants[i].name, run->variants[j].name) &&
                strcmp(run->variants[i].source, run->variants[j].source))
                snprintf(run->variants[i].name, sizeof run->variants[i].name, "%s", run->variants[i].source);
    for (int i = 0; i < nv; i++) {
        int seen = 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(run->variants[i].name, run->variants[j].name)) seen++;
        if (seen > 1) {
            char tmp[128];
            int w = snprintf(tmp, sizeof tmp, "%.60s#%d", run->variants[i].name, seen); /* < 80 bytes */
            if (w > 0) memcpy(run->variants[i].name, tmp, (size_t)w + 1);
        }
    }
    return 0;
}

/* Apply every global --set to a variant's manifest. */
static int apply_sets(llmh_manifest *m, const char *variant) {
    for (int i = 0; i < llmh_cli.n_sets; i++) {
        llmh_status st = llmh_manifest_set(m, llmh_cli.sets[i]);
        if (st) {
            fprintf(stderr, "llmhost: bench: variant '%s': %s\n", variant,
                    *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
            return -1;
        }
    }
    return 0;
}

/* Select the variant's --adapters set on one of its sessions. */
static int apply_adapter_set(const llmh_cli_bench_variant *v, llmh_session *s) {
    const char *set = v->adapter_set;
    if (!set) return 0;
    if (!strcmp(set, "none")) {
        llmh_session_clear_adapters(s);
        return 0;
    }
    llmh_status st;
    if (!strcmp(set, "all")) {
        st = llmh_session_set_adapters(s, NULL, NULL, 0);
    } else {
        adapter_set as;
        if (parse_adapter_set(set, &as)) return -1;
        st = llmh_session_set_adapters(s, as.names, as.scales, as.n);
    }
    if (st) {
        fprintf(stderr, "llmhost: bench: variant '%s': selecting adapters '%s': %s\n", v->name, set,
                *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
        return -1;
    }
    return 0;
}

/* Bytes of the adapters the variant's sessions use: the --adapters set, or
 * every adapter in the store (what a new session selects). */
static uint64_t adapter_bytes(const llmh_cli_bench_variant *v) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    uint64_t total = 0;
    if ((v->adapter_set && !strcmp(v->adapter_set, "none")) || llmh_adapter_list(v->model, &info, &n)) return 0;
    adapter_set as = {0};
    int list = v->adapter_set && strcmp(v->adapter_set, "all") && !parse_adapter_set(v->adapter_set, &as);
    for (size_t i = 0; i < n; i++) {
        int used = !list;
        for (size_t j = 0; j < as.n && !used; j++) used = !strcmp(as.names[j], info[i].name);
        if (used) total += info[i].bytes;
    }
    free(info);
    return total;
}

static int create_sessions(llmh_cli_bench_variant *v, const llmh_session_params *sp, int n_sessions) {
    llmh_status st;
    v->sessions = calloc((size_t)n_sessions, sizeof *v->sessions);
    if (!v->sessions) return -1;
    for (int i = 0; i < n_sessions; i++) {
        if ((st = llmh_session_create(v->model, sp, &v->sessions[i]))) {
            fprintf(stderr, "llmhost: bench: variant '%s': creating session %d of %d (%lld tokens each): %s\n",
                    v->name, i + 1, n_sessions, (long long)sp->n_ctx,
                    *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
            return -1;
        }
        v->n_sessions++;
        if (apply_adapter_set(v, v->sessions[i])) return -1;
    }
    v->adapter_bytes = adapter_bytes(v);
    return 0;
}

static int load_variant(llmh_cli_bench_variant *v, const llmh_session_params *sp, int n_sessions) {
    llmh_status st;
    if (v->shares) { /* --adapters: the first set's model, own sessions */
        const llmh_cli_bench_variant *o = v->shares;
        v->manifest = o->manifest;
        v->registry = o->registry;
        v->model = o->model;
        v->file_bytes = o->file_bytes;
        v->arch = o->arch;
        v->backend = o->backend;
        v->threads = o->threads;
        v->weight_bytes = o->weight_bytes;
        v->kv_bytes_per_pos = o->kv_bytes_per_pos;
        return create_sessions(v, sp, n_sessions);
    }
    double t0 = now_s();
    if (!(v->registry = llmh_cli_registry(v->manifest))) return -1;
    llmh_model_params mp = {v->registry, v->manifest};
    if ((st = llmh_model_load(&mp, &v->model))) {
        fprintf(stderr, "llmhost: bench: variant '%s': loading the model: %s\n", v->name,
                *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
        return -1;
    }
    v->load_seconds = now_s() - t0;
    if (create_sessions(v, sp, n_sessions)) return -1;
    const llmh_config *cfg = llmh_manifest_config(v->manifest);
    const llmh_model_desc *d = llmh_model_describe(v->model);
    struct stat sb;
    if (stat(cfg->model.path, &sb) == 0 && S_ISREG(sb.st_mode)) v->file_bytes = (uint64_t)sb.st_size;
    v->arch = d->arch;
    v->backend = cfg->backend.plugin;
    v->threads = cfg->backend.threads;
    v->weight_bytes = d->weight_bytes;
    const char *kv = sp->kv_type ? sp->kv_type : cfg->model.kv_type;
    uint64_t elt = kv && !strcmp(kv, "f32") ? 4 : 2;
    v->kv_bytes_per_pos = 2 * elt * (uint64_t)d->n_layer * (uint64_t)d->n_head_kv * (uint64_t)d->head_dim;
    return 0;
}

static void free_variant(llmh_cli_bench_variant *v) {
    for (int i = 0; i < v->n_sessions; i++) llmh_session_free(v->sessions[i]);
    free(v->sessions);
    free(v->adapter_set);
    if (v->shares) { /* borrowed from an earlier variant, freed with it */
        free((char *)v->source);
        return;
    }
    llmh_model_free(v->model);
    llmh_registry_free(v->registry);
    llmh_manifest_free(v->manifest);
    free((char *)v->source);
}

/* ------------------------------------------------------------------------ */
/* measuring                                                                  */
/* ------------------------------------------------------------------------ */
/* Token ids shared by every variant: xorshift over [1, vocab) (at most 1000
 * distinct ids, so every model's embedding rows are plausible). */
static void fill_tokens(llmh_token *t, size_t n, int64_t n_vocab, uint64_t seed) {
    uint64_t range = n_vocab > 1001 ? 1000 : (n_vocab > 1 ? (uint64_t)n_vocab - 1 : 1);
    uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t[i] = n_vocab > 1 ? (llmh_token)(1 + x % range) : 0;
    }
}

typedef struct bench_tokens {
    llmh_token *depth;         /* the depth filler, max depth tokens (same prefix for every depth) */
    llmh_token *work;          /* np x longest test tokens for the measured part */
    llmh_batch_item *items;    /* max np */
} bench_tokens;

static int report_eval(const llmh_cli_bench_variant *v, const llmh_cli_bench_test *t, const char *what,
                       llmh_status st) {
    fprintf(stderr, "llmhost: bench: variant '%s', test %s (depth %d, np %d): %s: %s\n", v->name, t->name, t->depth,
            t->np, what, *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
    return -1;
}

/* Bring the first t->np sessions to exactly t->depth cached tokens. */
static int set_depth(llmh_cli_bench_variant *v, const llmh_cli_bench_test *t, const bench_tokens *tk) {
    for (int j = 0; j < t->np; j++) {
        llmh_session *s = v->sessions[j];
        int64_t pos = llmh_session_pos(s);
        llmh_status st = LLMH_OK;
        if (pos > t->depth) st = llmh_session_truncate(s, t->depth);
        else if (pos < t->depth) st = llmh_session_eval(s, tk->depth + pos, (size_t)(t->depth - pos));
        if (st) return report_eval(v, t, "filling the context to the depth", st);
    }
    return 0;
}

/* Evaluate `n` tokens for each of np sequences: tokens of sequence j start
 * at base + j * stride. */
static llmh_status eval_step(llmh_cli_bench_variant *v, int np, const llmh_token *base, size_t stride, size_t n,
                             llmh_batch_item *items) {
    if (np == 1) return llmh_session_eval(v->sessions[0], base, n);
    for (int j = 0; j < np; j++) items[j] = (llmh_batch_item){v->sessions[j], base + (size_t)j * stride, n};
    return llmh_session_eval_batch(items, (size_t)np);
}

/* One timed run of test t on variant v: tokens/s over all sequences. */
static int measure(llmh_cli_bench_variant *v, const llmh_cli_bench_test *t, const bench_tokens *tk, double *tps) {
    if (set_depth(v, t, tk)) return -1;
    size_t np = (size_t)t->np;
    llmh_status st = LLMH_OK;
    double t0 = now_s();
    if (t->n_prompt > 0) {
        st = eval_step(v, t->np, tk->work, (size_t)t->n_prompt, (size_t)t->n_prompt, tk->items);
        if (st) return report_eval(v, t, "prefill", st);
    }
    for (int i = 0; i < t->n_gen; i++) {
        /* step i: sequence j decodes work[i * np + j] */
        st = eval_step(v, t->np, tk->work + (size_t)i * np, 1, 1, tk->items);
        if (st) return report_eval(v, t, "decode", st);
    }
    double dt = now_s() - t0;
    *tps = dt > 0 ? (double)np * (double)(t->n_prompt + t->n_gen) / dt : 0;
    return set_depth(v, t, tk); /* drop what the test added */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median, min, max of n values (n >= 1); tmp has room for n. */
static void stats(const double *v, int n, double *tmp, double *med, double *mn, double *mx) {
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    *mn = tmp[0];
    *mx = tmp[n - 1];
    *med = n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static void compute_stats(llmh_cli_bench_run *run, double *tmp, double *ratio) {
    int nv = run->n_variants, reps = run->reps;
    for (int t = 0; t < run->n_tests; t++) {
        const llmh_cli_bench_test *test = &run->tests[t];
        llmh_cli_bench_row *base = llmh_cli_bench_at(run, t, 0);
        for (int v = 0; v < nv; v++) {
            llmh_cli_bench_row *row = llmh_cli_bench_at(run, t, v);
            stats(row->samples, reps, tmp, &row->median, &row->min, &row->max);
            /* ratios of the runs made next to each other, so drift cancels */
            for (int r = 0; r < reps; r++) ratio[r] = base->samples[r] > 0 ? row->samples[r] / base->samples[r] : 0;
            stats(ratio, reps, tmp, &row->ratio, &row->ratio_min, &row->ratio_max);
            row->bound = 0;
            if (test->kind == LLMH_CLI_BENCH_TG && run->bandwidth_gbs > 0) {
                const llmh_cli_bench_variant *var = &run->variants[v];
                double mean_pos = (double)test->depth + 0.5 * (double)(test->n_gen + 1);
                double bytes = (double)var->weight_bytes + (double)var->adapter_bytes +
                               (double)test->np * (double)var->kv_bytes_per_pos * mean_pos;
                if (bytes > 0) row->bound = (double)test->np * run->bandwidth_gbs * 1e9 / bytes;
            }
        }
    }
}

/* Progress: a rewritten line on a terminal, one line per finished test otherwise. */
typedef struct progress {
    int tty, quiet;
    int done, total;
} progress;

static void progress_step(progress *p, const llmh_cli_bench_run *run, int t, int v, int rep, double tps) {
    p->done++;
    if (p->quiet || !p->tty) return;
    const llmh_cli_bench_test *test = &run->tests[t];
    fprintf(stderr, "\r\033[Kbench: %3d%% test %d/%d %s d%d np%d, %s %s %d/%d: %.1f t/s", 100 * p->done / p->total,
            t + 1, run->n_tests, test->name, test->depth, test->np, run->variants[v].name,
            rep < 0 ? "warm-up" : "rep", rep < 0 ? -rep : rep + 1, rep < 0 ? run->warmup : run->reps, tps);
    fflush(stderr);
}

static void progress_test_done(progress *p, const llmh_cli_bench_run *run, int t, double *tmp) {
    if (p->quiet) return;
    const llmh_cli_bench_test *test = &run->tests[t];
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "bench: [%d/%d] %s depth %d np %d:", t + 1, run->n_tests, test->name, test->depth, test->np);
    for (int v = 0; v < run->n_variants; v++) {
        double med, mn, mx;
        stats(llmh_cli_bench_at(run, t, v)->samples, run->reps, tmp, &med, &mn, &mx);
        fprintf(stderr, "%s %s %.1f t/s", v ? "," : "", run->variants[v].name, med);
    }
    fprintf(stderr, "\n");
}

static int run_all(llmh_cli_bench_run *run, const bench_tokens *tk, double *tmp) {
    int nv = run->n_variants;
    progress p = {isatty(2), llmh_cli.quiet, 0, run->n_tests * nv * (run->warmup + run->reps)};
    for (int t = 0; t < run->n_tests; t++) {
        const llmh_cli_bench_test *test = &run->tests[t];
        for (int w = 0; w < run->warmup; w++)
            for (int v = 0; v < nv; v++) {
                double tps;
                if (measure(&run->variants[v], test, tk, &tps)) return -1;
                progress_step(&p, run, t, v, -(w + 1), tps);
            }
        for (int r = 0; r < run->reps; r++)
            for (int v = 0; v < nv; v++) { /* A B A B ...: neighbours share the machine's state */
                double tps;
                if (measure(&run->variants[v], test, tk, &tps)) return -1;
                llmh_cli_bench_at(run, t, v)->samples[r] = tps;
                progress_step(&p, run, t, v, r, tps);
            }
        progress_test_done(&p, run, t, tmp);
    }
    return 0;
}

/* Open the output files before any work, so a bad path fails at once. */
typedef struct outputs {
    FILE *csv, *json, *svg;
} outputs;

static int open_outputs(const bench_opts *o, outputs *out) {
    const char *paths[3] = {o->csv, o->json, o->svg};
    const char *what[3] = {"--csv", "--json", "--svg"};
    FILE **files[3] = {&out->csv, &out->json, &out->svg};
    for (int i = 0; i < 3; i++) {
        if (!paths[i]) continue;
        for (int j = 0; j < i; j++)
            if (paths[j] && !strcmp(paths[i], paths[j])) {
                fprintf(stderr, "llmhost: bench: %s and %s name the same file '%s'\n", what[j], what[i], paths[i]);
                return -1;
            }
        if (!(*files[i] = fopen(paths[i], "w"))) {
            fprintf(stderr, "llmhost: bench: %s %s: cannot write: %s\n", what[i], paths[i], strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Close the outputs; on failure remove what was opened (it is empty or partial). */
static int close_outputs(const bench_opts *o, outputs *out, int failed) {
    const char *paths[3] = {o->csv, o->json, o->svg};
    FILE *files[3] = {out->csv, out->json, out->svg};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (!files[i]) continue;
        if (fclose(files[i]) != 0 && !failed) {
            fprintf(stderr, "llmhost: bench: writing %s: %s\n", paths[i], strerror(errno));
            rc = -1;
        }
        if (failed) unlink(paths[i]);
    }
    return rc;
}

int llmh_cmd_bench(int argc, char **argv) {
    bench_opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc > 0 ? 0 : 2;

    llmh_bench_spec *spec = NULL;
    if (o.bench_file) {
        if (llmh_cli.n_configs > 0) {
            fprintf(stderr, "llmhost: bench: --bench and --config cannot be combined (the bench manifest names the "
                            "base manifest of its variants)\n");
            return 2;
        }
        if (o.names) {
            fprintf(stderr, "llmhost: bench: --names is for --config variants (a bench manifest names its own)\n");
            return 2;
        }
        llmh_status st = llmh_bench_spec_load(o.bench_file, &spec);
        if (st) {
            fprintf(stderr, "llmhost: bench: %s\n", *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
            return 2;
        }
    } else if (llmh_cli.n_configs == 0) {
        fprintf(stderr, "llmhost: bench: no variants: pass --config FILE.toml (repeat it to compare) or --bench "
                        "BENCH.toml\n");
        return 2;
    }
    if (o.adapters && (o.bench_file || llmh_cli.n_configs != 1 || o.names)) {
        fprintf(stderr, "llmhost: bench: --adapters needs exactly one --config (its model is shared by the adapter "
                        "sets) and names the variants itself (no --bench, no --names)\n");
        llmh_bench_spec_free(spec);
        return 2;
    }

    /* settings: command line, then the bench manifest's [bench], then defaults */
    merge_list(&o.pp, spec ? &spec->pp : NULL, 128);
    merge_list(&o.tg, spec ? &spec->tg : NULL, 64);
    merge_list(&o.depth, spec ? &spec->depth : NULL, 0);
    merge_list(&o.np, spec ? &spec->np : NULL, 1);
    if (!o.pg_given && spec && spec->pg.given)
        for (size_t i = 0; i + 1 < spec->pg.n && o.n_pg < BENCH_MAX_LIST; i += 2) {
            o.pg[o.n_pg][0] = (int)spec->pg.v[i];
            o.pg[o.n_pg][1] = (int)spec->pg.v[i + 1];
            o.n_pg++;
        }
    if (o.reps < 0) o.reps = spec && spec->reps > 0 ? (int)spec->reps : 3;
    if (o.warmup < 0) o.warmup = spec && spec->warmup >= 0 ? (int)spec->warmup : 1;
    if (o.ctx < 0 && spec && spec->ctx > 0) o.ctx = (int)spec->ctx;
    if (!o.kv && spec && spec->kv) o.kv = spec->kv;

    llmh_cli_bench_run run;
    memset(&run, 0, sizeof run);
    run.reps = o.reps;
    run.warmup = o.warmup;
    run.kv = o.kv;
    run.bench_file = o.bench_file;
    run.bandwidth_mb = o.bw_mb;
    run.n_batch = o.n_batch > 0 ? o.n_batch : 512;
    outputs out = {0};
    bench_tokens tk = {0};
    double *tmp = NULL, *ratio = NULL;
    int rc = 1, opened = 0;

    if (build_tests(&o, &run)) { rc = 2; goto done; }
    int max_depth = 0, max_len = 0, max_np = 1;
    for (int t = 0; t < run.n_tests; t++) {
        const llmh_cli_bench_test *test = &run.tests[t];
        if (test->depth > max_depth) max_depth = test->depth;
        if (test->n_prompt + test->n_gen > max_len) max_len = test->n_prompt + test->n_gen;
        if (test->np > max_np) max_np = test->np;
    }
    int64_t need = (int64_t)max_depth + max_len;
    run.n_ctx = o.ctx > 0 ? o.ctx : need + 16;
    if (run.n_ctx < need) {
        fprintf(stderr, "llmhost: bench: --ctx %lld is too small: depth %d + the longest test's %d tokens need %lld\n",
                (long long)run.n_ctx, max_depth, max_len, (long long)need);
        rc = 2;
        goto done;
    }
    if (open_outputs(&o, &out)) { rc = 2; goto done; }
    opened = 1;

    /* variants: manifests first (every config error before any model loads) */
    run.n_variants = spec ? (int)spec->n_variants : llmh_cli.n_configs;
    if (o.adapters) {
        run.n_variants = 1;
        for (const char *p = o.adapters; *p; p++) run.n_variants += *p == ';';
    }
    run.variants = calloc((size_t)run.n_variants, sizeof *run.variants);
    if (!run.variants) goto done;
    if (o.adapters && adapter_variants(&run, o.adapters)) { rc = 2; goto done; }
    for (int i = 0; i < run.n_variants; i++) {
        llmh_cli_bench_variant *v = &run.variants[i];
        if (v->shares) continue;
        if (spec) {
            snprintf(v->name, sizeof v->name, "%s", spec->variants[i].name);
            char *src = NULL;
            if (asprintf(&src, "%s [variant %s]", spec->file, spec->variants[i].name) < 0) goto done;
            v->source = src;
            llmh_status st = llmh_bench_variant_manifest(spec, (size_t)i, &v->manifest);
            if (st) {
                fprintf(stderr, "llmhost: bench: %s\n", *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
                rc = 2;
                goto done;
            }
        } else {
            if (!v->source && !(v->source = strdup(llmh_cli.configs[i]))) goto done;
            llmh_status st = llmh_manifest_load(v->source, &v->manifest);
            if (st) {
                fprintf(stderr, "llmhost: bench: %s\n", *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
                rc = 2;
                goto done;
            }
        }
    }
    if (!spec && !o.adapters && name_config_variants(&run, o.names)) { rc = 2; goto done; }
    for (int i = 0; i < run.n_variants; i++)
        if (!run.variants[i].shares && apply_sets(run.variants[i].manifest, run.variants[i].name)) {
            rc = 2;
            goto done;
        }

    llmh_session_params sp = {run.n_ctx, run.n_batch, o.kv};
    int64_t min_vocab = INT64_MAX;
    for (int i = 0; i < run.n_variants; i++) {
        llmh_cli_bench_variant *v = &run.variants[i];
        if (!llmh_cli.quiet) fprintf(stderr, "bench: loading variant '%s' (%s)\n", v->name, v->source);
        if (load_variant(v, &sp, max_np)) goto done;
        int64_t nvocab = llmh_model_describe(v->model)->n_vocab;
        if (nvocab < min_vocab) min_vocab = nvocab;
        if (!llmh_cli.quiet && v->shares)
            fprintf(stderr, "bench: variant '%s': the model of '%s', adapters: %s\n", v->name, v->shares->name,
                    v->adapter_set);
        else if (!llmh_cli.quiet)
            fprintf(stderr, "bench: variant '%s': %s, %s backend, %.1f MB of weights per token, loaded in %.3f s\n",
                    v->name, v->arch, v->backend, (double)v->weight_bytes / 1e6, v->load_seconds);
    }

    /* tokens and per-row storage */
    tk.depth = malloc(((size_t)max_depth + 1) * sizeof *tk.depth);
    tk.work = malloc((size_t)max_np * ((size_t)max_len + 1) * sizeof *tk.work);
    tk.items = calloc((size_t)max_np, sizeof *tk.items);
    run.rows = calloc((size_t)run.n_tests * (size_t)run.n_variants, sizeof *run.rows);
    tmp = malloc((size_t)run.reps * sizeof *tmp);
    ratio = malloc((size_t)run.reps * sizeof *ratio);
    if (!tk.depth || !tk.work || !tk.items || !run.rows || !tmp || !ratio) {
        fprintf(stderr, "llmhost: bench: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < (size_t)run.n_tests * (size_t)run.n_variants; i++)
        if (!(run.rows[i].samples = calloc((size_t)run.reps, sizeof(double)))) goto done;
    fill_tokens(tk.depth, (size_t)max_depth + 1, min_vocab, 1);
    fill_tokens(tk.work, (size_t)max_np * ((size_t)max_len + 1), min_vocab, 2);

    if (run_all(&run, &tk, tmp)) goto done;

    struct rusage ru; /* before the bandwidth buffer inflates it */
    getrusage(RUSAGE_SELF, &ru);
    run.peak_rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (o.do_bw) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int threads = 0;
        for (int i = 0; i < run.n_variants; i++) {
            int t = run.variants[i].threads > 0 ? run.variants[i].threads : (int)(ncpu > 0 ? ncpu : 1);
            if (t > threads) threads = t;
        }
        run.bandwidth_threads = threads;
        if (!llmh_cli.quiet)
            fprintf(stderr, "bench: measuring memory read bandwidth (%d MB, %d threads, best of 5)\n", o.bw_mb,
                    threads);
        run.bandwidth_gbs = measure_bandwidth(threads, (size_t)o.bw_mb << 20, 5);
        if (run.bandwidth_gbs <= 0)
            fprintf(stderr, "llmhost: bench: warning: the bandwidth test could not run (no %d MB buffer or threads); "
                            "no decode bound\n", o.bw_mb);
    }
    compute_stats(&run, tmp, ratio);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(run.date, sizeof run.date, "%Y-%m-%dT%H:%M:%SZ", &tm);

    llmh_cli_bench_print_table(&run, stdout);
    fflush(stdout);
    rc = 0;
    if (out.csv && llmh_cli_bench_write_csv(&run, out.csv)) rc = 1;
    if (out.json && llmh_cli_bench_write_json(&run, out.json)) rc = 1;
    if (out.svg && llmh_cli_bench_write_svg(&run, out.svg)) rc = 1;
    if (rc == 0 && !llmh_cli.quiet) {
        if (o.csv) fprintf(stderr, "bench: wrote %s\n", o.csv);
        if (o.json) fprintf(stderr, "bench: wrote %s\n", o.json);
        if (o.svg) fprintf(stderr, "bench: wrote %s\n", o.svg);
    }

done:
    if (opened && close_outputs(&o, &out, rc != 0) && rc == 0) rc = 1;
    if (run.rows)
        for (size_t i = 0; i < (size_t)run.n_tests * (size_t)run.n_variants; i++) free(run.rows[i].samples);
    free(run.rows);
    for (int i = run.n_variants; i-- > 0;) free_variant(&run.variants[i]); /* sharers before their model */
    free(run.variants);
    free(run.tests);
    free(tk.depth);
    free(tk.work);
    free(tk.items);
    free(tmp);
    free(ratio);
    llmh_bench_spec_free(spec);
    return rc;
}

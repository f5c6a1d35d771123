/* cli-bench.c — llmhost bench: prefill (pp) and decode (tg) speed of one or
 * more manifests, run alternately (A B A B ...) so machine drift cancels,
 * beside the memory-bandwidth bound measured in the same run.
 *
 *   decode bound (tok/s) = read bandwidth / weight bytes streamed per token */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "cli-model.h"

#define MAX_CFG 16
#define MAX_REPS 100

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* memory read bandwidth                                                      */
/* ------------------------------------------------------------------------ */
typedef uint64_t v8u64 __attribute__((vector_size(64)));

typedef struct bw_job {
    const v8u64 *p;
    size_t n;        /* vectors */
    uint64_t sink;
    pthread_barrier_t *bar;
} bw_job;

static void *bw_worker(void *arg) {
    bw_job *j = arg;
    v8u64 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    pthread_barrier_wait(j->bar);
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
    pthread_barrier_wait(j->bar);
    return NULL;
}

/* Best of `reps` passes reading `bytes` with `threads` threads, in GB/s. */
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
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
        bw_job jobs[64];
        pthread_t tid[64];
        size_t per = nvec / (size_t)threads;
        for (int t = 0; t < threads; t++) {
            jobs[t] = (bw_job){buf + per * (size_t)t, per, 0, &bar};
            pthread_create(&tid[t], NULL, bw_worker, &jobs[t]);
        }
        pthread_barrier_wait(&bar);
        double t0 = now_s();
        pthread_barrier_wait(&bar);
        double dt = now_s() - t0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            sink ^= jobs[t].sink;
        }
        pthread_barrier_destroy(&bar);
        double gbs = (double)(per * (size_t)threads * sizeof(v8u64)) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    if (sink == 0x123456789abcdefULL) fprintf(stderr, " "); /* keep the reads */
    return best;
}

/* ------------------------------------------------------------------------ */
/* runs                                                                       */
/* ------------------------------------------------------------------------ */
typedef struct variant {
    const char *config;
    llmh_cli_model cm;
    double load_s;
    uint64_t file_bytes;
    int threads;
    double pp[MAX_REPS], tg[MAX_REPS]; /* tok/s per repetition */
} variant;

static void fill_tokens(llmh_token *t, int n, int64_t n_vocab, unsigned seed) {
    uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t[i] = (llmh_token)(x % (uint64_t)(n_vocab > 1000 ? 1000 : n_vocab)) + 1;
    }
}

static int run_pp(variant *v, int n, double *tps) {
    llmh_token *toks = malloc((size_t)n * sizeof *toks);
    if (!toks) return -1;
    fill_tokens(toks, n, llmh_model_describe(v->cm.model)->n_vocab, 1);
    llmh_session_truncate(v->cm.session, 0);
    double t0 = now_s();
    llmh_status st = llmh_session_eval(v->cm.session, toks, (size_t)n);
    double dt = now_s() - t0;
    free(toks);
    if (st) { llmh_cli_error("bench pp", st); return -1; }
    *tps = n / dt;
    return 0;
}

static int run_tg(variant *v, int n, double *tps) {
    llmh_token tok[1];
    fill_tokens(tok, 1, llmh_model_describe(v->cm.model)->n_vocab, 2);
    llmh_session_truncate(v->cm.session, 0);
    llmh_status st = llmh_session_eval(v->cm.session, tok, 1); /* warm: first token */
    if (st) { llmh_cli_error("bench tg", st); return -1; }
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        tok[0] = (llmh_token)(1 + (i * 7919) % 1000);
        if ((st = llmh_session_eval(v->cm.session, tok, 1))) { llmh_cli_error("bench tg", st); return -1; }
    }
    *tps = n / (now_s() - t0);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(const double *v, int n, double *med, double *mn, double *mx) {
    double tmp[MAX_REPS];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    *mn = tmp[0];
    *mx = tmp[n - 1];
    *med = n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static void usage(void) {
    printf("usage: llmhost bench --config A.toml [--config B.toml ...] [options]\n"
           "\n"
           "Measures prefill (pp) and decode (tg) tokens/s for each manifest, alternating A B A B\n"
           "so that drift cancels, and the machine's memory read bandwidth in the same run.\n"
           "\n"
           "  -p N          prompt tokens for the prefill test (default 128)\n"
           "  -n N          tokens for the decode test (default 64)\n"
           "  -r N          repetitions after one warm-up (default 3)\n"
           "  --bw-mb N     bandwidth test buffer in MB (default 1024)\n"
           "  --no-bw       skip the bandwidth measurement\n"
           "  --ctx N       KV cache size (default p + n + 16)\n"
           "  --kv f16|f32  KV cache type (default: the manifest's [model] kv_type)\n"
           "\n"
           "Use --set backend.threads=N to choose threads. Progress goes to stderr.\n");
}

int llmh_cmd_bench(int argc, char **argv) {
    int pp_n = 128, tg_n = 64, reps = 3, bw_mb = 1024, do_bw = 1, ctx = 0;
    const char *kv = NULL; /* manifest default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "-p") && val) pp_n = atoi(argv[++i]);
        else if (!strcmp(a, "-n") && val) tg_n = atoi(argv[++i]);
        else if (!strcmp(a, "-r") && val) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--bw-mb") && val) bw_mb = atoi(argv[++i]);
        else if (!strcmp(a, "--ctx") && val) ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--no-bw")) do_bw = 0;
        else if (!strcmp(a, "--kv") && val) {
            const char *k = argv[++i];
            if (!strcmp(k, "f16") || !strcmp(k, "f32")) kv = k;
            else { fprintf(stderr, "llmhost: bench: --kv must be f16 or f32\n"); return 2; }
        } else if (!strcmp(a, "--config") && val) {
            if (llmh_cli.n_configs >= 16) { fprintf(stderr, "llmhost: bench: too many --config\n"); return 2; }
            llmh_cli.configs[llmh_cli.n_configs++] = argv[++i];
        } else {
            fprintf(stderr, "llmhost: bench: unknown or incomplete option '%s' (see bench --help)\n", a);
            return 2;
        }
    }
    if (pp_n < 1 || tg_n < 1 || reps < 1 || reps > MAX_REPS || bw_mb < 16) {
        fprintf(stderr, "llmhost: bench: -p, -n must be >= 1, -r in 1..%d, --bw-mb >= 16\n", MAX_REPS);
        return 2;
    }
    if (llmh_cli.n_configs == 0) {
        fprintf(stderr, "llmhost: bench: pass at least one --config\n");
        return 2;
    }
    int nv = llmh_cli.n_configs;
    variant *vs = calloc((size_t)nv, sizeof *vs);
    if (!vs) return 1;
    int rc = 1;
    for (int i = 0; i < nv; i++) {
        variant *v = &vs[i];
        v->config = llmh_cli.configs[i];
        fprintf(stderr, "bench: loading %s\n", v->config);
        double t0 = now_s();
        llmh_cli_model *cm = &v->cm;
        memset(cm, 0, sizeof *cm);
        cm->manifest = llmh_cli_load_manifest(v->config);
        if (!cm->manifest) goto out;
        cm->registry = llmh_cli_registry(cm->manifest);
        if (!cm->registry) goto out;
        llmh_model_params mp = {cm->registry, cm->manifest};
        llmh_status st = llmh_model_load(&mp, &cm->model);
        if (st) { llmh_cli_error("loading the model", st); goto out; }
        v->load_s = now_s() - t0;
        llmh_session_params sp = {ctx > 0 ? ctx : pp_n + tg_n + 16, 512, kv};
        if ((st = llmh_session_create(cm->model, &sp, &cm->session))) { llmh_cli_error("session", st); goto out; }
        const llmh_config *cfg = llmh_manifest_config(cm->manifest);
        struct stat sb;
        if (stat(cfg->model.path, &sb) == 0 && S_ISREG(sb.st_mode)) v->file_bytes = (uint64_t)sb.st_size;
        v->threads = cfg->backend.threads;
    }
    /* warm-up, then alternate variants within each repetition */
    for (int r = -1; r < reps; r++) {
        for (int i = 0; i < nv; i++) {
            double pp, tg;
            if (r >= 0) fprintf(stderr, "bench: rep %d/%d %s\n", r + 1, reps, vs[i].config);
            else fprintf(stderr, "bench: warm-up %s\n", vs[i].config);
            if (run_pp(&vs[i], pp_n, &pp) || run_tg(&vs[i], tg_n, &tg)) goto out;
            if (r >= 0) { vs[i].pp[r] = pp; vs[i].tg[r] = tg; }
        }
    }
    struct rusage ru; /* before the bandwidth buffer inflates it */
    getrusage(RUSAGE_SELF, &ru);
    double bw = 0;
    int bw_threads = vs[0].threads > 0 ? vs[0].threads : 2;
    if (do_bw) {
        fprintf(stderr, "bench: measuring memory read bandwidth (%d MB, %d threads)\n", bw_mb, bw_threads);
        bw = measure_bandwidth(bw_threads, (size_t)bw_mb << 20, 5);
    }

    printf("\n%-34s %-7s %9s %9s %9s %10s %8s\n", "config", "test", "t/s med", "min", "max", "bound t/s", "% bound");
    for (int i = 0; i < nv; i++) {
        const llmh_model_desc *d = llmh_model_describe(vs[i].cm.model);
        double med, mn, mx;
        char test[32];
        stats(vs[i].pp, reps, &med, &mn, &mx);
        snprintf(test, sizeof test, "pp%d", pp_n);
        printf("%-34s %-7s %9.1f %9.1f %9.1f %10s %8s\n", vs[i].config, test, med, mn, mx, "-", "-");
        stats(vs[i].tg, reps, &med, &mn, &mx);
        snprintf(test, sizeof test, "tg%d", tg_n);
        double bound = bw > 0 ? bw * 1e9 / (double)d->weight_bytes : 0;
        if (bound > 0)
            printf("%-34s %-7s %9.1f %9.1f %9.1f %10.1f %7.1f%%\n", vs[i].config, test, med, mn, mx, bound,
                   100.0 * med / bound);
        else
            printf("%-34s %-7s %9.1f %9.1f %9.1f %10s %8s\n", vs[i].config, test, med, mn, mx, "-", "-");
    }
    if (nv >= 2) {
        printf("\nratios (median, vs %s):\n", vs[0].config);
        for (int i = 1; i < nv; i++) {
            double a_pp, a_tg, b_pp, b_tg, mn, mx;
            stats(vs[0].pp, reps, &a_pp, &mn, &mx);
            stats(vs[0].tg, reps, &a_tg, &mn, &mx);
            stats(vs[i].pp, reps, &b_pp, &mn, &mx);
            stats(vs[i].tg, reps, &b_tg, &mn, &mx);
            printf("  %-34s pp %.3fx  tg %.3fx\n", vs[i].config, b_pp / a_pp, b_tg / a_tg);
        }
    }
    printf("\n");
    if (bw > 0) printf("memory read bandwidth: %.1f GB/s (%d threads, best of 5)\n", bw, bw_threads);
    for (int i = 0; i < nv; i++) {
        const llmh_model_desc *d = llmh_model_describe(vs[i].cm.model);
        printf("%s: %s, %.1f MB weights read per token, file %.1f MB, load %.3f s\n", vs[i].config, d->arch,
               (double)d->weight_bytes / 1e6, (double)vs[i].file_bytes / 1e6, vs[i].load_s);
    }
    printf("peak RSS before the bandwidth test (all models loaded): %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
    rc = 0;
out:
    for (int i = 0; i < nv; i++) llmh_cli_model_close(&vs[i].cm);
    free(vs);
    return rc;
}

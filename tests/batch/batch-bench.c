/* batch-bench.c — decode throughput of N sessions stepping together
 * (llmh_session_eval_batch, one graph per step) against the same sessions
 * stepped one at a time (llmh_session_eval), run alternately so drift
 * cancels. Built, not run as a test (docs/batching.md).
 *
 *   batch-bench MODEL.gguf [sessions=8] [steps=32] [rounds=3] [backend=cpu] [threads=2] [ADAPTER.gguf...]
 *
 * With adapters, session i uses adapter i % n_adapters alone (a batch mixes
 * adapter sets). Each session is prefilled with its own 16-token prompt, then decodes
 * greedily; both ways see the same positions (caches are truncated back
 * before every run). LLMH_PLUGIN_PATH must name the plugin directory. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmh.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int argmax(const float *l, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = (int)i;
    return best;
}

static int fail(const char *what) {
    fprintf(stderr, "batch-bench: %s: %s\n", what, llmh_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [sessions=8] [steps=32] [rounds=3] [backend=cpu] [threads=2] [ADAPTER...]\n",
                argv[0]);
        return 2;
    }
    int ns = argc > 2 ? atoi(argv[2]) : 8, steps = argc > 3 ? atoi(argv[3]) : 32, rounds = argc > 4 ? atoi(argv[4]) : 3;
    const char *backend = argc > 5 ? argv[5] : "cpu";
    int threads = argc > 6 ? atoi(argv[6]) : 2;
    if (ns < 1 || ns > 64 || steps < 1 || rounds < 1 || threads < 1) {
        fprintf(stderr, "batch-bench: sessions 1..64, steps, rounds and threads >= 1\n");
        return 2;
    }
    char text[8192];
    int len = snprintf(text, sizeof text, "[model]\npath = \"%s\"\ncontext = 512\n[backend]\nplugin = \"%s\"\nthreads = %d\n",
                       argv[1], backend, threads);
    int n_ad = argc > 7 ? argc - 7 : 0;
    for (int i = 0; i < n_ad && len > 0 && (size_t)len < sizeof text; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "[[adapter]]\nname = \"ad%d\"\npath = \"%s\"\n", i, argv[7 + i]);
    if (len < 0 || (size_t)len >= sizeof text) {
        fprintf(stderr, "batch-bench: paths too long\n");
        return 2;
    }
    llmh_manifest *man = NULL;
    llmh_model *model = NULL;
    if (llmh_manifest_parse(text, strlen(text), "batch-bench.toml", NULL, &man)) return fail("manifest");
    llmh_model_params mp = {NULL, man};
    if (llmh_model_load(&mp, &model)) return fail("load");
    int64_t V = llmh_model_describe(model)->n_vocab;
    llmh_session *s[64];
    llmh_batch_item items[64];
    llmh_token next[64], seq_last[64];
    enum { PROMPT = 16 };
    for (int i = 0; i < ns; i++) {
        llmh_session_params p = {0};
        p.n_ctx = PROMPT + steps + 1;
        if (llmh_session_create(model, &p, &s[i])) return fail("session");
        if (n_ad) {
            char name[16];
            snprintf(name, sizeof name, "ad%d", i % n_ad);
            const char *nm = name;
            if (llmh_session_set_adapters(s[i], &nm, NULL, 1)) return fail("adapters");
        }
        llmh_token prompt[PROMPT];
        for (int j = 0; j < PROMPT; j++) prompt[j] = (llmh_token)((7919u * (unsigned)(i * PROMPT + j) + 13u) % (unsigned)V);
        if (llmh_session_eval(s[i], prompt, PROMPT)) return fail("prefill");
    }
    double best[2] = {1e30, 1e30}, sum[2] = {0, 0}, cpu[2] = {0, 0};
    int mismatches = 0;
    for (int r = 0; r < rounds; r++)
        for (int way = 0; way < 2; way++) { /* 0: one at a time, 1: batched */
            for (int i = 0; i < ns; i++) {
                llmh_session_truncate(s[i], PROMPT - 1);
                llmh_token last = (llmh_token)((7919u * (unsigned)(i * PROMPT + PROMPT - 1) + 13u) % (unsigned)V);
                if (llmh_session_eval(s[i], &last, 1)) return fail("re-prefill");
                next[i] = argmax(llmh_session_logits(s[i]), V);
            }
            double t0 = now_s(), c0 = cpu_s();
            for (int k = 0; k < steps; k++) {
                if (way == 0) {
                    for (int i = 0; i < ns; i++)
                        if (llmh_session_eval(s[i], &next[i], 1)) return fail("eval");
                } else {
                    for (int i = 0; i < ns; i++) items[i] = (llmh_batch_item){s[i], &next[i], 1};
                    if (llmh_session_eval_batch(items, (size_t)ns)) return fail("eval_batch");
                }
                for (int i = 0; i < ns; i++) next[i] = argmax(llmh_session_logits(s[i]), V);
            }
            double dt = now_s() - t0;
            cpu[way] += cpu_s() - c0;
            /* the greedy ids after the last step, one way against the other */
            if (way == 0) memcpy(seq_last, next, sizeof(llmh_token) * (size_t)ns);
            else
                for (int i = 0; i < ns; i++) mismatches += next[i] != seq_last[i];
            sum[way] += dt;
            if (dt < best[way]) best[way] = dt;
            fprintf(stderr, "round %d %-10s %7.2f tok/s\n", r + 1, way ? "batched" : "one-by-one", ns * steps / dt);
        }
    double tok = (double)ns * steps;
    printf("model %s, backend %s, %d threads, %d sessions x %d decode steps, %d rounds, %d adapters (one per session)\n",
           argv[1], backend, threads, ns, steps, rounds, n_ad);
    printf("one at a time: %.2f tok/s (best %.2f)\n", tok * rounds / sum[0], tok / best[0]);
    printf("batched:       %.2f tok/s (best %.2f)\n", tok * rounds / sum[1], tok / best[1]);
    printf("speed-up: %.2fx (mean)\n", sum[0] / sum[1]);
    printf("process CPU time per token (all threads; steadier on a shared machine): %.2f ms one at a time, %.2f ms "
           "batched, ratio %.2fx\n",
           1e3 * cpu[0] / (tok * rounds), 1e3 * cpu[1] / (tok * rounds), cpu[0] / cpu[1]);
    printf("final greedy ids differing between the two ways: %d of %d\n", mismatches, ns * rounds);
    for (int i = 0; i < ns; i++) llmh_session_free(s[i]);
    llmh_model_free(model);
    llmh_manifest_free(man);
    return 0;
}

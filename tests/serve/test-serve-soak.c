/* test-serve-soak.c — 16 concurrent streaming clients against llmhost serve
 * (qwen2-tiny, 8 slots) for LLMH_SERVE_SOAK_SECONDS (default 60):
 *  - every request completes (200, well-formed SSE, finish_reason, [DONE],
 *    usage);
 *  - none is garbled: each stream's text and usage equal the same request
 *    run alone first (greedy decoding), although the scheduler batches the
 *    decode steps of up to 8 requests and reuses slots' KV prefixes;
 *  - the server's RSS (VmRSS) after the run is within a small margin of its
 *    RSS after the first round (no growth per request).
 * Label `soak`: `ctest -LE soak` leaves it out (the sanitizer pass does). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "serve-client.h"
#include "testutil.h"

enum { N_CLIENTS = 16 };

static srv_proc g_srv;

static const char *const g_prompts[8] = {
    "Write a haiku about the sea.",
    "What is the capital of France?",
    "Count from one to ten.",
    "Tell me a story about a dragon.",
    "Explain photosynthesis briefly.",
    "List three colors.",
    "数学 123 + 4567 = ?",
    "Translate 'good morning' to German.",
};

typedef struct expect {
    char *body;          /* the request */
    char *text;          /* the solo run's text */
    char *finish;
    int completion_tokens;
} expect;

static expect g_expect[N_CLIENTS];

static int suite_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *probe = llmh_test_shared("models/qwen2-tiny-f32.gguf");
    free(probe);
    const char *args[] = {"--parallel", "8", "--queue", "32", NULL};
    return srvc_start(&g_srv, LLMH_SOURCE_DIR "/configs/qwen2-tiny.toml", args);
}

static int suite_cleanup(void) {
    int rc = srvc_stop(&g_srv);
    for (int i = 0; i < N_CLIENTS; i++) {
        free(g_expect[i].body);
        free(g_expect[i].text);
        free(g_expect[i].finish);
    }
    curl_global_cleanup();
    return rc == 0 ? 0 : -1;
}

/* One streamed request; 0 when it matches `e` (or fills `e` when e->text is NULL). */
static int run_one(expect *e, char *why, size_t why_len) {
    srvc_resp r;
    if (srvc_http(&g_srv, "POST", "/v1/chat/completions", e->body, strlen(e->body), NULL, &r)) {
        snprintf(why, why_len, "no HTTP response");
        return -1;
    }
    int rc = 0;
    srvc_stream s;
    srvc_stream_parse(r.body, true, &s);
    int ct = s.usage ? cJSON_GetObjectItem(s.usage, "completion_tokens")->valueint : -1;
    if (r.status != 200) {
        snprintf(why, why_len, "status %ld: %.200s", r.status, r.body);
        rc = -1;
    } else if (s.malformed || !s.done || !s.finish || s.finish_chunks != 1 || !s.usage) {
        snprintf(why, why_len, "malformed stream (malformed %d, done %d, finish chunks %d, usage %d)", s.malformed, s.done,
                 s.finish_chunks, s.usage != NULL);
        rc = -1;
    } else if (!e->text) {
        e->text = strdup(s.text);
        e->finish = strdup(s.finish);
        e->completion_tokens = ct;
    } else if (strcmp(e->text, s.text) != 0 || strcmp(e->finish, s.finish) != 0 || ct != e->completion_tokens) {
        snprintf(why, why_len, "garbled: got '%.80s' (%s, %d tokens), alone it was '%.80s' (%s, %d tokens)", s.text,
                 s.finish, ct, e->text, e->finish, e->completion_tokens);
        rc = -1;
    }
    srvc_stream_free(&s);
    srvc_resp_free(&r);
    return rc;
}

typedef struct client {
    int index;
    double deadline;
    int rounds, failures;
    char why[512];
} client;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *client_main(void *arg) {
    client *c = arg;
    do {
        char why[512];
        if (run_one(&g_expect[c->index], why, sizeof why) != 0) {
            if (!c->failures) snprintf(c->why, sizeof c->why, "%s", why);
            c->failures++;
        }
        c->rounds++;
    } while (now_s() < c->deadline);
    return NULL;
}

static void run_clients(double seconds, client *cs) {
    pthread_t th[N_CLIENTS];
    double deadline = now_s() + seconds;
    for (int i = 0; i < N_CLIENTS; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].index = i;
        cs[i].deadline = deadline;
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    for (int i = 0; i < N_CLIENTS; i++) pthread_join(th[i], NULL);
}

static void test_soak(void) {
    const char *env = getenv("LLMH_SERVE_SOAK_SECONDS");
    double seconds = env && atof(env) > 0 ? atof(env) : 60.0;
    /* 16 different requests: 8 prompts x 2 lengths */
    for (int i = 0; i < N_CLIENTS; i++) {
        cJSON *req = cJSON_CreateObject();
        cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", g_prompts[i % 8]);
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddNumberToObject(req, "max_tokens", i < 8 ? 24 : 48);
        cJSON_AddBoolToObject(req, "stream", 1);
        cJSON *so = cJSON_AddObjectToObject(req, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", 1);
        g_expect[i].body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    }
    /* each request alone */
    for (int i = 0; i < N_CLIENTS; i++) {
        char why[512];
        int rc = run_one(&g_expect[i], why, sizeof why);
        if (rc) fprintf(stderr, "  alone %d: %s\n", i, why);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
    }
    /* one concurrent round to reach the steady state, then the RSS baseline */
    client cs[N_CLIENTS];
    run_clients(0, cs);
    for (int i = 0; i < N_CLIENTS; i++) {
        if (cs[i].failures) fprintf(stderr, "  warm-up client %d: %s\n", i, cs[i].why);
        CU_ASSERT_EQUAL(cs[i].failures, 0);
    }
    long rss0 = srvc_rss_kb(g_srv.pid);
    double t0 = now_s();
    run_clients(seconds, cs);
    double took = now_s() - t0;
    long rss1 = srvc_rss_kb(g_srv.pid);
    int total = 0, failed = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        total += cs[i].rounds;
        failed += cs[i].failures;
        if (cs[i].failures) fprintf(stderr, "  client %d: %d of %d failed; first: %s\n", i, cs[i].failures, cs[i].rounds, cs[i].why);
        CU_ASSERT(cs[i].rounds >= 1);
        CU_ASSERT_EQUAL(cs[i].failures, 0);
    }
    double tps = srvc_metric(&g_srv, "llmhost_tokens_generated_total");
    fprintf(stderr, "  soak: %d clients, %.1f s, %d streamed requests, %d failed; server RSS %ld kB -> %ld kB; %.0f tokens generated in all\n",
            N_CLIENTS, took, total, failed, rss0, rss1, tps);
    CU_ASSERT(rss0 > 0 && rss1 > 0);
    /* stable: no more than 8 MiB (or 10%) above the steady state */
    CU_ASSERT(rss1 <= rss0 + 8192 || rss1 <= rss0 + rss0 / 10);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_slots_active"), 0);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_queue_depth"), 0);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_requests_total{code=\"429\"}"), -1); /* the queue held everyone */
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"16 concurrent streaming clients", test_soak},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"serve-soak", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

/* test-batch.c — llmh_session_eval_batch() (one graph for the steps of
 * several sessions) against llmh_session_eval() of each session alone, on
 * qwen2-tiny F32 with the lora-a and lora-b adapters:
 *  - four sessions with four adapter sets (none, a, b 0.5, a 0.7 + b 1.3)
 *    at different positions, with prompts of different lengths, mixed
 *    prefill and decode items, then 12 greedy steps together: the batched
 *    logits equal the lone ones (bound below) and every greedy id is the
 *    same;
 *  - prefills longer than a session's n_batch, batches wider than a
 *    graph's column cap, and more items than its logits cap (the step is
 *    split into several graphs); sessions sharing adapter sets (their
 *    deltas applied once per group of columns);
 *  - errors: one item's context full, the same session twice, sessions of
 *    two models, a bad token id, NULL items: refused, and every session
 *    keeps its position and logits;
 * on the cpu backend, and on onednn and vulkan when they are built.
 *
 *  - the per-session fallback: a gated router (per-token gates) and a
 *    session with a hidden-state hook, batched with plain sessions.
 *
 * Bound: 1e-4 relative to the largest logit magnitude (at least 1); cpu and
 * onednn measure 0 (bit for bit). The per-column arithmetic of a batch is
 * the session's own, but a backend may pick another summation order for a
 * wider product: vulkan runs a MUL_MAT of fewer than 8 columns with its
 * mat-vec shader and wider ones tiled, so a 4-token item alone and the
 * same item inside a 36-column batch sum in different orders. That moves
 * this two-layer random model's logits by up to 2.0e-4 relative (measured;
 * one session alone prefilling 12 tokens in chunks of 4 instead of one
 * chunk moves them by 5.6e-5 the same way), so vulkan gets 1e-3; the greedy
 * ids must still be equal. docs/batching.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llmh-fabric.h"
#include "model-fixture.h"

#define REL_TOL 1e-4
#define REL_TOL_VULKAN 1e-3
#define N_SETS 4

static bool backend_built(const char *name) {
    llmh_registry *reg = NULL;
    bool found = false;
    if (llmh_registry_create(&reg) == LLMH_OK && llmh_registry_scan(reg) == LLMH_OK)
        for (size_t i = 0; i < llmh_registry_count(reg); i++) {
            const llmh_plugin_info *pi = llmh_registry_info(reg, i);
            if (pi->kind == LLMH_PLUGIN_BACKEND && !strcmp(pi->name, name)) found = true;
        }
    llmh_registry_free(reg);
    return found;
}

/* The model with lora-a as "a" and lora-b as "b" in its store. */
static int open_model(fixture_model *fm, const char *backend) {
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b.gguf");
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[[adapter]]\nname = \"a\"\npath = \"%s\"\n[[adapter]]\nname = \"b\"\npath = \"%s\"\n", pa, pb);
    free(pa);
    free(pb);
    return fixture_open(fm, "models/qwen2-tiny-f32.gguf", backend, extra);
}

/* Adapter set k: none, a, b at 0.5, a 0.7 + b 1.3. */
static void select_set(llmh_session *s, int k) {
    static const char *names[2] = {"a", "b"};
    static const float half = 0.5f, both[2] = {0.7f, 1.3f};
    llmh_status st;
    switch (k) {
    case 0: llmh_session_clear_adapters(s); return;
    case 1: st = llmh_session_set_adapters(s, &names[0], NULL, 1); break;
    case 2: st = llmh_session_set_adapters(s, &names[1], &half, 1); break;
    default: st = llmh_session_set_adapters(s, names, both, 2); break;
    }
    if (st) fprintf(stderr, "set adapters: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
}

static llmh_session *new_session(llmh_model *m, int64_t n_ctx, int32_t n_batch, int set) {
    llmh_session_params p = {0};
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    llmh_session *s = NULL;
    llmh_status st = llmh_session_create(m, &p, &s);
    if (st) fprintf(stderr, "session: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    select_set(s, set);
    return s;
}

/* Deterministic token ids in the vocabulary. */
static void fill_tokens(llmh_token *t, size_t n, uint64_t seed, int64_t n_vocab) {
    for (size_t i = 0; i < n; i++) t[i] = (llmh_token)(llmh_test_rand(&seed) % (uint32_t)n_vocab);
}

static double g_worst; /* largest relative difference seen in a case */
static double g_tol = REL_TOL;

/* Batched logits against lone ones: relative to the largest magnitude. */
static void check_close(const llmh_session *bat, const llmh_session *ref, int64_t n_vocab, const char *what) {
    const float *lb = llmh_session_logits(bat), *lr = llmh_session_logits(ref);
    double diff = 0, mag = 1;
    for (int64_t i = 0; i < n_vocab; i++) {
        double d = fabs((double)lb[i] - lr[i]);
        if (d > diff) diff = d;
        if (fabs(lr[i]) > mag) mag = fabs(lr[i]);
    }
    double rel = diff / mag;
    if (rel > g_worst) g_worst = rel;
    if (rel > g_tol) fprintf(stderr, "  %s: max |diff| %.3e (relative %.3e)\n", what, diff, rel);
    CU_ASSERT(rel <= g_tol);
    CU_ASSERT_EQUAL(llmh_session_pos(bat), llmh_session_pos(ref));
}

/* Run the batch on `bat` and the same items alone on `ref`, then compare. */
static void step_both(llmh_session **bat, llmh_session **ref, const llmh_token *const *toks, const size_t *n, size_t k,
                      int64_t n_vocab, const char *what) {
    llmh_batch_item items[128];
    CU_ASSERT_FATAL(k <= 128);
    for (size_t i = 0; i < k; i++) items[i] = (llmh_batch_item){bat[i], toks[i], n[i]};
    llmh_status st = llmh_session_eval_batch(items, k);
    if (st) fprintf(stderr, "batch: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    for (size_t i = 0; i < k; i++) {
        st = llmh_session_eval(ref[i], toks[i], n[i]);
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    }
    for (size_t i = 0; i < k; i++) {
        char label[128];
        snprintf(label, sizeof label, "%s, item %zu", what, i);
        if (n[i]) check_close(bat[i], ref[i], n_vocab, label);
    }
}

/* Different adapter sets, positions, prompt lengths, mixed prefill and
 * decode, then greedy decoding together. */
static void check_equal(const char *backend) {
    fixture_model fm;
    CU_ASSERT_FATAL(open_model(&fm, backend) == 0);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    llmh_session *bat[N_SETS], *ref[N_SETS];
    for (int i = 0; i < N_SETS; i++) {
        bat[i] = new_session(fm.model, 256, 0, i);
        ref[i] = new_session(fm.model, 256, 0, i);
    }
    g_worst = 0;
    llmh_token buf[N_SETS][32];
    const llmh_token *tp[N_SETS];
    size_t n[N_SETS];

    /* prompts of 5, 11, 1 and 17 tokens */
    size_t lens[N_SETS] = {5, 11, 1, 17};
    for (int i = 0; i < N_SETS; i++) {
        fill_tokens(buf[i], lens[i], 100 + (uint64_t)i, V);
        tp[i] = buf[i];
        n[i] = lens[i];
    }
    step_both(bat, ref, tp, n, N_SETS, V, "prompts");

    /* session 2 alone moves on (different positions), both copies */
    fill_tokens(buf[0], 6, 7, V);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(bat[2], buf[0], 6), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(ref[2], buf[0], 6), LLMH_OK);

    /* mixed: decode, prefill of 9, decode, nothing for item 3 */
    size_t mix[N_SETS] = {1, 9, 1, 0};
    for (int i = 0; i < N_SETS; i++) {
        fill_tokens(buf[i], mix[i], 300 + (uint64_t)i, V);
        n[i] = mix[i];
    }
    float *before = malloc((size_t)V * sizeof *before);
    CU_ASSERT_PTR_NOT_NULL_FATAL(before);
    memcpy(before, llmh_session_logits(bat[3]), (size_t)V * sizeof *before);
    int64_t pos3 = llmh_session_pos(bat[3]);
    step_both(bat, ref, tp, n, N_SETS, V, "mixed");
    /* an item with no tokens is left as it was */
    CU_ASSERT_EQUAL(llmh_session_pos(bat[3]), pos3);
    CU_ASSERT(memcmp(before, llmh_session_logits(bat[3]), (size_t)V * sizeof *before) == 0);
    free(before);

    /* greedy together: every id the same as alone */
    int mismatches = 0;
    for (int step = 0; step < 12; step++) {
        for (int i = 0; i < N_SETS; i++) {
            int tb = fixture_argmax(llmh_session_logits(bat[i]), V);
            int tr = fixture_argmax(llmh_session_logits(ref[i]), V);
            if (tb != tr) mismatches++;
            buf[i][0] = tr;
            n[i] = 1;
        }
        step_both(bat, ref, tp, n, N_SETS, V, "greedy");
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    fprintf(stderr, "  %s: largest relative logit difference batched vs alone: %.2e\n", backend, g_worst);

    /* the adapter sets matter: the four sessions' logits differ pairwise */
    for (int i = 0; i < N_SETS; i++) {
        llmh_session_truncate(bat[i], 0);
        buf[0][0] = 785;
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(bat[i], buf[0], 1), LLMH_OK);
    }
    for (int i = 1; i < N_SETS; i++)
        CU_ASSERT(memcmp(llmh_session_logits(bat[0]), llmh_session_logits(bat[i]), (size_t)V * sizeof(float)) != 0);

    for (int i = 0; i < N_SETS; i++) {
        llmh_session_free(bat[i]);
        llmh_session_free(ref[i]);
    }
    fixture_close(&fm);
}

/* Prefills longer than n_batch, and more columns than one graph holds. */
static void check_chunks(const char *backend) {
    fixture_model fm;
    CU_ASSERT_FATAL(open_model(&fm, backend) == 0);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    g_worst = 0;
    /* n_batch 8: a 29-token prefill next to two decodes (4 graphs) */
    {
        llmh_session *bat[3], *ref[3];
        for (int i = 0; i < 3; i++) {
            bat[i] = new_session(fm.model, 128, 8, i + 1);
            ref[i] = new_session(fm.model, 128, 8, i + 1);
        }
        llmh_token t0[29], t1[3], t2[4];
        fill_tokens(t0, 29, 1, V);
        fill_tokens(t1, 3, 2, V);
        fill_tokens(t2, 4, 3, V);
        const llmh_token *tp[3] = {t1, t2, t0};
        size_t n[3] = {3, 4, 29};
        step_both(bat, ref, tp, n, 3, V, "warm-up");
        const llmh_token *tq[3] = {t0, t1, t2};
        size_t m[3] = {29, 1, 1};
        step_both(bat, ref, tq, m, 3, V, "n_batch 8");
        for (int i = 0; i < 3; i++) {
            llmh_session_free(bat[i]);
            llmh_session_free(ref[i]);
        }
    }
    /* three prefills of 200: 600 columns, more than one graph holds (the
     * split is the core's, the same for every backend: cpu only, to keep
     * the suite short on lavapipe) */
    if (!strcmp(backend, "cpu")) {
        llmh_session *bat[3], *ref[3];
        for (int i = 0; i < 3; i++) {
            bat[i] = new_session(fm.model, 512, 0, i);
            ref[i] = new_session(fm.model, 512, 0, i);
        }
        llmh_token t[3][200];
        const llmh_token *tp[3];
        size_t n[3] = {200, 200, 200};
        for (int i = 0; i < 3; i++) {
            fill_tokens(t[i], 200, 40 + (uint64_t)i, V);
            tp[i] = t[i];
        }
        step_both(bat, ref, tp, n, 3, V, "600 columns");
        for (int i = 0; i < 3; i++) {
            llmh_session_free(bat[i]);
            llmh_session_free(ref[i]);
        }
    }
    /* sessions sharing adapter sets (a, b 0.5, a, a+b, b 0.5, a): their
     * deltas are applied per group of neighbouring columns */
    {
        enum { K = 6 };
        static const int sets[K] = {1, 2, 1, 3, 2, 1};
        llmh_session *bat[K], *ref[K];
        llmh_token t[K][4];
        const llmh_token *tp[K];
        size_t n[K] = {1, 2, 1, 1, 4, 1};
        for (int i = 0; i < K; i++) {
            bat[i] = new_session(fm.model, 64, 0, sets[i]);
            ref[i] = new_session(fm.model, 64, 0, sets[i]);
            fill_tokens(t[i], 4, 900 + (uint64_t)i, V);
            tp[i] = t[i];
        }
        step_both(bat, ref, tp, n, K, V, "shared sets");
        for (int i = 0; i < K; i++) n[i] = 1;
        step_both(bat, ref, tp, n, K, V, "shared sets, decode");
        for (int i = 0; i < K; i++) {
            llmh_session_free(bat[i]);
            llmh_session_free(ref[i]);
        }
    }
    /* 70 items ending in one step: more than a graph's 64 logits columns */
    if (!strcmp(backend, "cpu")) {
        enum { MANY = 70 };
        llmh_session *bat[MANY], *ref[MANY];
        llmh_token t[MANY][3];
        const llmh_token *tp[MANY];
        size_t n[MANY];
        for (int i = 0; i < MANY; i++) {
            bat[i] = new_session(fm.model, 16, 0, i % N_SETS);
            ref[i] = new_session(fm.model, 16, 0, i % N_SETS);
            fill_tokens(t[i], 3, 500 + (uint64_t)i, V);
            tp[i] = t[i];
            n[i] = i % 3 == 0 ? 3 : 1;
        }
        step_both(bat, ref, tp, n, MANY, V, "70 items");
        for (int i = 0; i < MANY; i++) {
            llmh_session_free(bat[i]);
            llmh_session_free(ref[i]);
        }
    }
    fprintf(stderr, "  %s: chunked steps: largest relative logit difference %.2e\n", backend, g_worst);
    fixture_close(&fm);
}

static void for_backends(void (*fn)(const char *)) {
    static const char *backends[] = {"cpu", "onednn", "vulkan"};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        const char *b = backends[i];
        if (!backend_built(b)) {
            fprintf(stderr, "  backend '%s' is not in this build: not checked\n", b);
            continue;
        }
#if defined(__SANITIZE_ADDRESS__)
        /* as tests/fabric: LeakSanitizer's tracer crashes at exit while
         * oneDNN's libgomp threads are alive */
        if (!strcmp(b, "onednn")) {
            fprintf(stderr, "  onednn skipped under AddressSanitizer\n");
            continue;
        }
#endif
        g_tol = strcmp(b, "vulkan") ? REL_TOL : REL_TOL_VULKAN;
        fn(b);
        g_tol = REL_TOL;
    }
}

static void test_equal_alone(void) { for_backends(check_equal); }
static void test_chunks(void) { for_backends(check_chunks); }

/* Per-session fallback: with a router that gates per token, or a session
 * with a hidden-state hook, the items run one after another through
 * llmh_session_eval; results and hook calls are those of each alone. */
typedef struct hook_count {
    int calls;
    int64_t n_tok;
} hook_count;

static void count_hook(void *user, int32_t layer, const float *h, int64_t dim, int64_t n_tok) {
    hook_count *c = user;
    (void)layer;
    (void)dim;
    if (h) c->calls++;
    c->n_tok = n_tok;
}

static void test_fallback(void) {
    fixture_model fm;
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b.gguf");
    char extra[2048];
    snprintf(extra, sizeof extra,
             "[router]\nplugin = \"gated\"\n[[adapter]]\nname = \"a\"\npath = \"%s\"\n"
             "[[adapter]]\nname = \"b\"\npath = \"%s\"\n",
             pa, pb);
    free(pa);
    free(pb);
    CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", "cpu", extra) == 0);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    int64_t L = llmh_model_describe(fm.model)->n_layer;
    g_tol = REL_TOL;
    g_worst = 0;
    llmh_session *bat[3], *ref[3];
    for (int i = 0; i < 3; i++) {
        bat[i] = new_session(fm.model, 64, 0, i + 1);
        ref[i] = new_session(fm.model, 64, 0, i + 1);
    }
    llmh_token t[3][8];
    const llmh_token *tp[3] = {t[0], t[1], t[2]};
    size_t n[3] = {3, 1, 6};
    for (int i = 0; i < 3; i++) fill_tokens(t[i], 8, 70 + (uint64_t)i, V);
    step_both(bat, ref, tp, n, 3, V, "gated router");
    /* a hook on one session of a batch of plain ones (no adapters: the
     * router plays no part) */
    for (int i = 0; i < 3; i++) {
        llmh_session_clear_adapters(bat[i]);
        llmh_session_clear_adapters(ref[i]);
    }
    hook_count hc = {0, 0};
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_hidden_hook(bat[2], count_hook, &hc), LLMH_OK);
    size_t m[3] = {1, 2, 5};
    step_both(bat, ref, tp, m, 3, V, "hidden hook");
    CU_ASSERT_EQUAL(hc.calls, (int)L + 1);
    CU_ASSERT_EQUAL(hc.n_tok, 5);
    fprintf(stderr, "  fallback: largest relative logit difference %.2e\n", g_worst);
    for (int i = 0; i < 3; i++) {
        llmh_session_free(bat[i]);
        llmh_session_free(ref[i]);
    }
    fixture_close(&fm);
}

/* Refusals leave every session as it was. */
static void test_errors(void) {
    fixture_model fm, fm2;
    CU_ASSERT_FATAL(open_model(&fm, "cpu") == 0);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    llmh_session *a = new_session(fm.model, 16, 0, 1);
    llmh_session *b = new_session(fm.model, 64, 0, 2);
    llmh_token t[8];
    fill_tokens(t, 8, 5, V);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(a, t, 8), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(b, t, 5), LLMH_OK);
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    CU_ASSERT_FATAL(la && lb);
    memcpy(la, llmh_session_logits(a), (size_t)V * sizeof *la);
    memcpy(lb, llmh_session_logits(b), (size_t)V * sizeof *lb);
#define UNCHANGED()                                                                                  \
    do {                                                                                             \
        CU_ASSERT_EQUAL(llmh_session_pos(a), 8);                                                     \
        CU_ASSERT_EQUAL(llmh_session_pos(b), 5);                                                     \
        CU_ASSERT(memcmp(la, llmh_session_logits(a), (size_t)V * sizeof *la) == 0);                   \
        CU_ASSERT(memcmp(lb, llmh_session_logits(b), (size_t)V * sizeof *lb) == 0);                   \
    } while (0)

    /* context full in the second item: 9 tokens do not fit in a's 8 left */
    llmh_token nine[9];
    fill_tokens(nine, 9, 6, V);
    llmh_batch_item full[2] = {{b, t, 1}, {a, nine, 9}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(full, 2), LLMH_ERR_CONTEXT_FULL);
    CU_ASSERT(strstr(llmh_last_error(), "item 1") != NULL);
    UNCHANGED();

    /* the same session twice */
    llmh_batch_item twice[3] = {{a, t, 1}, {b, t, 1}, {a, t + 1, 1}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(twice, 3), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "same session") != NULL);
    UNCHANGED();

    /* a token outside the vocabulary in the last item */
    llmh_token bad[2] = {1, (llmh_token)V};
    llmh_batch_item badtok[2] = {{a, t, 1}, {b, bad, 2}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(badtok, 2), LLMH_ERR_INVALID_ARG);
    UNCHANGED();

    /* NULL items, NULL tokens, an empty batch */
    CU_ASSERT_EQUAL(llmh_session_eval_batch(NULL, 1), LLMH_ERR_INVALID_ARG);
    llmh_batch_item nulltok[1] = {{a, NULL, 1}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(nulltok, 1), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_session_eval_batch(NULL, 0), LLMH_OK);
    UNCHANGED();

    /* sessions of two models (the same file loaded twice) */
    CU_ASSERT_FATAL(fixture_open(&fm2, "models/qwen2-tiny-f32.gguf", "cpu", NULL) == 0);
    llmh_batch_item two[2] = {{a, t, 1}, {fm2.session, t, 1}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(two, 2), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "another model") != NULL);
    CU_ASSERT_EQUAL(llmh_session_pos(fm2.session), 0);
    UNCHANGED();
    fixture_close(&fm2);

    /* after all that, a good batch still works and fills a to the brim */
    llmh_batch_item ok[2] = {{a, nine, 8}, {b, t, 1}};
    CU_ASSERT_EQUAL(llmh_session_eval_batch(ok, 2), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_session_pos(a), 16);
    CU_ASSERT_EQUAL(llmh_session_pos(b), 6);
#undef UNCHANGED
    free(la);
    free(lb);
    llmh_session_free(a);
    llmh_session_free(b);
    fixture_close(&fm);
}

/* A session with n_batch = 1 (every chunk one token, so q/k/v have a
 * single token column) equals one that prefills in one chunk; regression:
 * the per-head views once lost their head dimension at n_batch = 1. */
static void test_n_batch_one(void) {
    fixture_model fm;
    if (open_model(&fm, "cpu")) return;
    llmh_model *m = fm.model;
    int64_t n_vocab = llmh_model_describe(m)->n_vocab;
    for (int set = 0; set < N_SETS; set++) {
        llmh_session *one = new_session(m, 64, 1, set), *wide = new_session(m, 64, 16, set);
        llmh_token t[12];
        fill_tokens(t, 12, 77 + (uint64_t)set, n_vocab);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(one, t, 12), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(wide, t, 12), LLMH_OK);
        g_tol = REL_TOL;
        check_close(one, wide, n_vocab, "n_batch 1 vs 16");
        CU_ASSERT_EQUAL(fixture_argmax(llmh_session_logits(one), n_vocab),
                        fixture_argmax(llmh_session_logits(wide), n_vocab));
        llmh_session_free(one);
        llmh_session_free(wide);
    }
    fixture_close(&fm);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"batched equals alone (sets, positions, prefill+decode, greedy)", test_equal_alone},
        {"long prefills and wide batches split into several graphs", test_chunks},
        {"per-session fallback: gated router, hidden-state hook", test_fallback},
        {"refusals leave every session unchanged", test_errors},
        {"n_batch = 1 equals one wide chunk", test_n_batch_one},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"batch", cases, NULL, NULL}};
    return llmh_test_main(suites, 1);
}

/* test-fabric.c — the memory fabric against llama.cpp (--lora / --lora-scaled):
 *  - qwen2-tiny f32 with lora-a at 1.0, lora-b at 0.5, and both (0.7, 1.3),
 *    from GGUF-LoRA files and again from the PEFT directories: top-10 logits
 *    within 1e-3, the same order, and the greedy ids;
 *  - stories260K with its trained adapters tim, big, tim+big and
 *    tim 0.5 + big 0.5 (the greedy text names Tim);
 *  - adapters loaded through the C API and selected per session through the
 *    static router;
 *  - unloading an adapter while a session uses it (run under ASan), and
 *    loads/unloads/rescales on one thread while another selects and
 *    evaluates (every result equals one of the two possible sets);
 *  - a llama-arch PEFT directory written from stories260K-lora-tim.gguf
 *    (q/k lora_B rows put back in HF's rotate-half order) gives the GGUF
 *    form's logits bit for bit;
 *  - errors for an adapter that does not fit the base model name the file
 *    and the tensor. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "llmh-fabric.h"
#include "model-fixture.h"

#define TOL 1e-3

/* Compare the session's outputs with every case of reference `ref_name`
 * (top-10 logits within `tol`, their order, the greedy ids); returns the
 * largest top-10 difference. */
static double check_session_tol(llmh_model *model, llmh_session *s, const char *ref_name, const char *label,
                                double tol) {
    double worst = 0;
    cJSON *ref = fixture_reference(ref_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    const llmh_model_desc *d = llmh_model_describe(model);
    cJSON *c;
    int case_no = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        case_no++;
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        int np = cJSON_GetArraySize(pt);
        llmh_token *toks = malloc((size_t)np * sizeof *toks);
        CU_ASSERT_PTR_NOT_NULL_FATAL(toks);
        for (int i = 0; i < np; i++) toks[i] = cJSON_GetArrayItem(pt, i)->valueint;
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(s, 0), LLMH_OK);
        llmh_status st = llmh_session_eval(s, toks, (size_t)np);
        if (st) fprintf(stderr, "eval: %s\n", llmh_last_error());
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        const float *logits = llmh_session_logits(s);
        double max_diff = 0;
        int k = 0, prev = -1;
        float prev_logit = INFINITY;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "top10")) {
            int id = cJSON_GetArrayItem(e, 0)->valueint;
            double want = cJSON_GetArrayItem(e, 1)->valuedouble;
            CU_ASSERT_FATAL(id >= 0 && id < d->n_vocab);
            double diff = fabs((double)logits[id] - want);
            if (diff > max_diff) max_diff = diff;
            if (diff > tol) fprintf(stderr, "    token %d: ours %.6f, llama.cpp %.6f\n", id, logits[id], want);
            if (k == 0) CU_ASSERT_EQUAL(fixture_argmax(logits, d->n_vocab), id);
            if (prev >= 0) CU_ASSERT(logits[id] <= prev_logit + 1e-6f);
            prev = id;
            prev_logit = logits[id];
            k++;
        }
        CU_ASSERT_EQUAL(k, 10);
        fprintf(stderr, "  %s (%s) case %d: max |logit diff| over top-10 = %.2e\n", ref_name, label, case_no, max_diff);
        CU_ASSERT(max_diff <= tol);
        if (max_diff > worst) worst = max_diff;

        cJSON *g = cJSON_GetObjectItem(c, "greedy");
        int ng = cJSON_GetArraySize(g), matched = 0;
        for (int i = 0; i < ng; i++) {
            int want = cJSON_GetArrayItem(g, i)->valueint;
            const float *lg = llmh_session_logits(s);
            int got = fixture_argmax(lg, d->n_vocab);
            if (got != want) {
                /* a near-tie (within the logit tolerance) may go either way;
                 * past it the continuations legitimately differ */
                double margin = want >= 0 && want < d->n_vocab ? (double)lg[got] - lg[want] : INFINITY;
                fprintf(stderr, "  %s (%s) case %d: greedy token %d: got %d, want %d (logit margin %.2e)%s\n", ref_name,
                        label, case_no, i, got, want, margin, margin <= tol ? ": a tie within tolerance" : "");
                if (margin <= tol) matched = ng;
                break;
            }
            matched++;
            llmh_token t = got;
            if (i + 1 < ng && llmh_session_eval(s, &t, 1) != LLMH_OK) break;
        }
        CU_ASSERT_EQUAL(matched, ng);
        free(toks);
    }
    cJSON_Delete(ref);
    return worst;
}

static void check_session(llmh_model *model, llmh_session *s, const char *ref_name, const char *label) {
    check_session_tol(model, s, ref_name, label, TOL);
}

/* Manifest text for up to two adapters under ../shared/models/adapters. */
static void adapter_tables(char *buf, size_t cap, const char *a, double sa, const char *b, double sb) {
    size_t o = 0;
    const char *names[2] = {a, b};
    double scales[2] = {sa, sb};
    for (int i = 0; i < 2; i++) {
        if (!names[i]) continue;
        char rel[256];
        snprintf(rel, sizeof rel, "models/adapters/%s", names[i]);
        char *path = llmh_test_shared(rel);
        o += (size_t)snprintf(buf + o, cap - o, "[[adapter]]\nname = \"ad%d\"\npath = \"%s\"\nscale = %.3f\n", i, path,
                              scales[i]);
        free(path);
    }
}

static void check_manifest_tol(const char *model_rel, const char *ref, const char *a, double sa, const char *b,
                               double sb, double tol) {
    char extra[2048] = "";
    adapter_tables(extra, sizeof extra, a, sa, b, sb);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, model_rel, NULL, extra) == 0);
    check_session_tol(fm.model, fm.session, ref, a, tol);
    fixture_close(&fm);
}

static void check_manifest(const char *model_rel, const char *ref, const char *a, double sa, const char *b,
                           double sb) {
    check_manifest_tol(model_rel, ref, a, sa, b, sb, TOL);
}

/* True when the registry finds a backend plugin `name` (it may be left out
 * of a build, e.g. -DLLMH_BUILD_VULKAN=OFF). */
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

/* The LoRA path is made of existing ops (mul_mat, scale, add), so every
 * backend runs it: the three qwen2 references on the other backends. */
static void check_backend(const char *backend) {
    if (!backend_built(backend)) {
        fprintf(stderr, "  backend '%s' is not in this build: not checked\n", backend);
        return;
    }
    char extra[2048] = "";
    adapter_tables(extra, sizeof extra, "qwen2-tiny-lora-a.gguf", 1.0, "qwen2-tiny-lora-b-peft", 1.0);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", backend, extra) == 0);
    const char *a = "ad0", *b = "ad1";
    float half = 0.5f;
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, &a, NULL, 1), LLMH_OK);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a", backend);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, &b, &half, 1), LLMH_OK);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-b0.5", backend);
    const char *both[2] = {"ad0", "ad1"};
    float scales[2] = {0.7f, 1.3f};
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, both, scales, 2), LLMH_OK);
    /* oneDNN's blocked f32 matmuls sum in another order than llama.cpp
     * (docs/backend-onednn.md: 6e-4 on the base model), and with both
     * adapters its arithmetic lands near an f16 rounding tie on "The capital
     * of France is": one ulp less of lora-a's scale moves those logits by
     * 7.6e-3 on oneDNN (7.6e-6 on the CPU backend), measured below. */
    bool onednn = !strcmp(backend, "onednn");
    double worst =
        check_session_tol(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a0.7-b1.3", backend, onednn ? 1e-2 : TOL);
    /* the looser bound is taken only where the near-tie is shown (oneDNN's
     * LoRA arithmetic may change: with its own LORA op it may meet 1e-3) */
    if (onednn && worst > TOL) {
        llmh_token toks[] = {785, 6722, 315, 9625, 374}; /* "The capital of France is" */
        const llmh_model_desc *d = llmh_model_describe(fm.model);
        float *base = malloc((size_t)d->n_vocab * sizeof *base);
        CU_ASSERT_PTR_NOT_NULL_FATAL(base);
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, 5), LLMH_OK);
        memcpy(base, llmh_session_logits(fm.session), (size_t)d->n_vocab * sizeof *base);
        scales[0] = nextafterf(0.7f, 0.0f);
        CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, both, scales, 2), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, 5), LLMH_OK);
        const float *l = llmh_session_logits(fm.session);
        double max_diff = 0;
        for (int64_t i = 0; i < d->n_vocab; i++)
            if (fabs((double)l[i] - base[i]) > max_diff) max_diff = fabs((double)l[i] - base[i]);
        fprintf(stderr, "  onednn: one ulp of lora-a's scale moves the logits by %.2e\n", max_diff);
        CU_ASSERT(max_diff > 1e-3);
        free(base);
    }
    fixture_close(&fm);
}

#if defined(__SANITIZE_ADDRESS__)
#define LLMH_FABRIC_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLMH_FABRIC_UNDER_ASAN 1
#endif
#endif

static void test_backend_onednn(void) {
#ifdef LLMH_FABRIC_UNDER_ASAN
    /* oneDNN starts libgomp worker threads that outlive the test, and
     * LeakSanitizer's tracer crashes at exit with them alive. The release
     * build runs this case; the ASan build keeps leak checking for the
     * fabric itself (and runs oneDNN in the conformance suite). */
    fprintf(stderr, "  skipped under AddressSanitizer (LeakSanitizer cannot stop libgomp's threads)\n");
    return;
#else
    check_backend("onednn");
#endif
}
static void test_backend_vulkan(void) { check_backend("vulkan"); }

static void test_qwen2_gguf_a(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-a", "qwen2-tiny-lora-a.gguf", 1.0, NULL, 0);
}
static void test_qwen2_gguf_b05(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-b0.5", "qwen2-tiny-lora-b.gguf", 0.5, NULL, 0);
}
static void test_qwen2_gguf_a07_b13(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "qwen2-tiny-lora-a.gguf", 0.7,
                   "qwen2-tiny-lora-b.gguf", 1.3);
}
static void test_qwen2_peft_a(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-a", "qwen2-tiny-lora-a-peft", 1.0, NULL, 0);
}
static void test_qwen2_peft_b05(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-b0.5", "qwen2-tiny-lora-b-peft", 0.5, NULL, 0);
}
static void test_qwen2_peft_a07_b13(void) {
    check_manifest("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "qwen2-tiny-lora-a-peft", 0.7,
                   "qwen2-tiny-lora-b-peft", 1.3);
}
static void test_stories_tim(void) {
    check_manifest("models/stories260K.gguf", "ref-stories260K-lora-tim", "stories260K-lora-tim.gguf", 1.0, NULL, 0);
}
static void test_stories_big(void) {
    check_manifest("models/stories260K.gguf", "ref-stories260K-lora-big", "stories260K-lora-big.gguf", 1.0, NULL, 0);
}
/* tim + big at full scale interfere (the text degrades), and the forward
 * pass becomes ill-conditioned: test_conditioning shows that changing one
 * adapter's scale by a few ulps (1.2e-7 relative each) moves the logits of
 * "Lily and Tom went to the" by more than 1e-3 (with MUL_MAT/SCALE/ADD one
 * ulp did: 2.2e-3 optimized, 4e-3 in the ASan build), through f16 roundings
 * of q/K/V that flip. Two correct f32
 * evaluations that differ only in summation order (ours and llama.cpp's,
 * or our optimized and sanitizer builds) cannot agree to 1e-3 there. We
 * measure 5.6e-3 on that prompt and <= 4.4e-4 on the others with every
 * greedy id equal (optimized build); the sanitizer build's arithmetic
 * reaches a near-tie (margin 1.2e-2) 53 tokens into the degraded text.
 * Bound: 2e-2, a few ulps of scale perturbation. */
static void test_stories_tim_big(void) {
    check_manifest_tol("models/stories260K.gguf", "ref-stories260K-lora-tim+big", "stories260K-lora-tim.gguf", 1.0,
                       "stories260K-lora-big.gguf", 1.0, 2e-2);
}

/* The conditioning claim above, measured: a few ulps of big's scale. */
static void test_conditioning(void) {
    char extra[2048] = "";
    adapter_tables(extra, sizeof extra, "stories260K-lora-tim.gguf", 1.0, "stories260K-lora-big.gguf", 1.0);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, extra) == 0);
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    llmh_token *toks;
    size_t n;
    const char *prompt = "Lily and Tom went to the";
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), LLMH_ENCODE_ADD_BOS, &toks, &n), LLMH_OK);
    float *base = malloc((size_t)d->n_vocab * sizeof *base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
    memcpy(base, llmh_session_logits(fm.session), (size_t)d->n_vocab * sizeof *base);
    const char *names[2] = {"ad0", "ad1"};
    /* 1..8 ulps up and down: whether a given perturbation flips an f16
     * rounding depends on the summation order, so the largest move counts */
    double worst = 0;
    int worst_ulps = 0;
    for (int k = -8; k <= 8; k++) {
        if (!k) continue;
        float sc = 1.0f;
        for (int j = 0; j < (k < 0 ? -k : k); j++) sc = nextafterf(sc, k < 0 ? 0.0f : 2.0f);
        float scales[2] = {1.0f, sc};
        CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, names, scales, 2), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
        const float *l = llmh_session_logits(fm.session);
        double max_diff = 0;
        for (int64_t i = 0; i < d->n_vocab; i++)
            if (fabs((double)l[i] - base[i]) > max_diff) max_diff = fabs((double)l[i] - base[i]);
        if (max_diff > worst) {
            worst = max_diff;
            worst_ulps = k;
        }
    }
    fprintf(stderr, "  %+d ulps of big's scale move \"%s\" by %.2e (largest of +-1..8 ulps)\n", worst_ulps, prompt,
            worst);
    CU_ASSERT(worst > 1e-3);
    free(base);
    free(toks);
    fixture_close(&fm);
}
static void test_stories_tim05_big05(void) {
    check_manifest("models/stories260K.gguf", "ref-stories260K-lora-tim0.5+big0.5", "stories260K-lora-tim.gguf", 0.5,
                   "stories260K-lora-big.gguf", 0.5);
}

/* The tim adapter's greedy text names Tim (a visible effect end to end). */
static void test_stories_tim_text(void) {
    char extra[1024] = "";
    adapter_tables(extra, sizeof extra, "stories260K-lora-tim.gguf", 1.0, NULL, 0);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, extra) == 0);
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    llmh_token *toks;
    size_t n;
    const char *prompt = "Once upon a time";
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), LLMH_ENCODE_ADD_BOS, &toks, &n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
    llmh_token out[24];
    for (int i = 0; i < 24; i++) {
        out[i] = fixture_argmax(llmh_session_logits(fm.session), d->n_vocab);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, &out[i], 1), LLMH_OK);
    }
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_detokenize(fm.model, out, 24, 0, &text, NULL), LLMH_OK);
    fprintf(stderr, "  stories260K + tim: \"%s%s\"\n", prompt, text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "named Tim"));
    CU_ASSERT_PTR_NULL(strstr(text, "Lily"));
    free(text);
    free(toks);
    fixture_close(&fm);
}

/* Adapters loaded at run time through the C API, selected per session with
 * names and scales (the static router), listed, rescaled and cleared. */
static void test_api_select(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", NULL, NULL) == 0);
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b-peft");
    /* the session created before any adapter existed runs the base model */
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32", "no adapters");
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_load(fm.model, "a", pa, 1.0f, NULL), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_load(fm.model, "b", pb, 1.0f, "tests"), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_adapter_load(fm.model, "a", pa, 1.0f, NULL), LLMH_ERR_INVALID_ARG);
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_list(fm.model, &info, &n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(info[0].name, "a");
    CU_ASSERT_EQUAL(info[0].rank, 4);
    CU_ASSERT_EQUAL(info[0].alpha, 8.0f);
    CU_ASSERT_EQUAL(info[0].n_targets, 2 * 7);
    CU_ASSERT_PTR_NULL(info[0].ns);
    CU_ASSERT_STRING_EQUAL(info[1].name, "b");
    CU_ASSERT_STRING_EQUAL(info[1].ns, "tests");
    CU_ASSERT_EQUAL(info[1].rank, 8);
    CU_ASSERT_EQUAL(info[1].n_targets, 2 * 2);
    CU_ASSERT_EQUAL(info[1].users, 0);
    free(info);

    /* named with scales */
    const char *names[2] = {"a", "b"};
    float scales[2] = {0.7f, 1.3f};
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, names, scales, 2), LLMH_OK);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "API, named");
    /* one named: the others are off */
    float half = 0.5f;
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, &names[1], &half, 1), LLMH_OK);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-b0.5", "API, one named");
    /* none named: every adapter at its store scale */
    CU_ASSERT_EQUAL(llmh_adapter_set_scale(fm.model, "a", 0.7f), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_adapter_set_scale(fm.model, "b", 1.3f), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_adapter_set_scale(fm.model, "zz", 1.0f), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, NULL, NULL, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_list(fm.model, &info, &n), LLMH_OK);
    CU_ASSERT_EQUAL(info[0].users, 1);
    CU_ASSERT_EQUAL(info[1].users, 1);
    free(info);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "API, store scales");
    /* a new session starts with every adapter at its store scale */
    llmh_session *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_session_create(fm.model, NULL, &s2), LLMH_OK);
    check_session(fm.model, s2, "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "new session");
    llmh_session_free(s2);
    /* unknown names are refused, naming the adapter; the set is unchanged */
    const char *bad = "nope";
    CU_ASSERT_EQUAL(llmh_session_set_adapters(fm.session, &bad, NULL, 1), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "nope"));
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a0.7-b1.3", "after refusal");
    /* cleared: the base model again */
    llmh_session_clear_adapters(fm.session);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32", "cleared");
    free(pa);
    free(pb);
    fixture_close(&fm);
}

/* Unloading an adapter a session uses: the session keeps it until it lets
 * go; the store no longer lists it; new sessions do not get it. */
static void test_unload_in_use(void) {
    char extra[1024] = "";
    adapter_tables(extra, sizeof extra, "qwen2-tiny-lora-a.gguf", 1.0, NULL, 0);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", NULL, extra) == 0);
    llmh_session *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_session_create(fm.model, NULL, &s2), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_unload(fm.model, "ad0"), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_adapter_unload(fm.model, "ad0"), LLMH_ERR_NOT_FOUND);
    llmh_adapter_info *info = NULL;
    size_t n = 5;
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_list(fm.model, &info, &n), LLMH_OK);
    CU_ASSERT_EQUAL(n, 0);
    free(info);
    /* both sessions still run with the adapter */
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32-lora-a", "unloaded, still held");
    llmh_session_free(fm.session);
    fm.session = NULL;
    check_session(fm.model, s2, "ref-qwen2-tiny-f32-lora-a", "unloaded, last holder");
    /* the last holder lets go: the adapter is freed (ASan checks) */
    llmh_session_clear_adapters(s2);
    check_session(fm.model, s2, "ref-qwen2-tiny-f32", "after release");
    llmh_session_free(s2);
    /* a new session has no adapters */
    CU_ASSERT_EQUAL_FATAL(llmh_session_create(fm.model, NULL, &fm.session), LLMH_OK);
    check_session(fm.model, fm.session, "ref-qwen2-tiny-f32", "new session after unload");
    /* a name can be loaded again */
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a-peft");
    CU_ASSERT_EQUAL(llmh_adapter_load(fm.model, "ad0", pa, 1.0f, NULL), LLMH_OK);
    free(pa);
    fixture_close(&fm);
}

/* One thread loads, rescales and unloads adapter "b" over and over while
 * another selects adapters and evaluates: every selection succeeds and every
 * result is bit-identical to a run with exactly {a} or {a, b} (no torn
 * reads, no half-loaded adapter). */
typedef struct churn_ctx {
    llmh_model *model;
    const char *path_b;
    int iterations;
    int failures;
    atomic_int stop;
} churn_ctx;

static void *churn_thread(void *arg) {
    churn_ctx *c = arg;
    for (int i = 0; i < c->iterations; i++) {
        if (llmh_adapter_load(c->model, "b", c->path_b, 1.3f, NULL) != LLMH_OK) c->failures++;
        if (llmh_adapter_set_scale(c->model, "b", 1.3f) != LLMH_OK) c->failures++;
        struct timespec ts = {0, 2000000}; /* keep it listed for a few evaluations */
        nanosleep(&ts, NULL);
        if (llmh_adapter_unload(c->model, "b") != LLMH_OK) c->failures++;
    }
    atomic_store(&c->stop, 1);
    return NULL;
}

static void eval_prompt(llmh_session *s, float *out, int64_t n_vocab) {
    static const llmh_token toks[] = {785, 6722, 315, 9625, 374};
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(s, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(s, toks, 5), LLMH_OK);
    memcpy(out, llmh_session_logits(s), (size_t)n_vocab * sizeof *out);
}

static void test_concurrent_churn(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", NULL, NULL) == 0);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b-peft");
    float *only_a = malloc((size_t)V * sizeof(float)), *a_b = malloc((size_t)V * sizeof(float));
    float *got = malloc((size_t)V * sizeof(float));
    CU_ASSERT_FATAL(only_a && a_b && got);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_load(fm.model, "a", pa, 0.7f, NULL), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, NULL, NULL, 0), LLMH_OK);
    eval_prompt(fm.session, only_a, V);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_load(fm.model, "b", pb, 1.3f, NULL), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, NULL, NULL, 0), LLMH_OK);
    eval_prompt(fm.session, a_b, V);
    CU_ASSERT_EQUAL_FATAL(llmh_adapter_unload(fm.model, "b"), LLMH_OK);

    churn_ctx c = {fm.model, pb, 40, 0, 0};
    atomic_init(&c.stop, 0);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, churn_thread, &c), 0);
    int n_a = 0, n_ab = 0, n_bad = 0, rounds = 0;
    const char *name_a = "a";
    while (!atomic_load(&c.stop) || rounds < 4) {
        /* alternately: the default set (a, and b when loaded) and {a} by name */
        llmh_status st = rounds % 2 ? llmh_session_set_adapters(fm.session, &name_a, NULL, 1)
                                    : llmh_session_set_adapters(fm.session, NULL, NULL, 0);
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        eval_prompt(fm.session, got, V);
        if (!memcmp(got, only_a, (size_t)V * sizeof(float))) n_a++;
        else if (!memcmp(got, a_b, (size_t)V * sizeof(float))) n_ab++;
        else n_bad++;
        rounds++;
    }
    pthread_join(th, NULL);
    fprintf(stderr, "  %d rounds during %d load/unload cycles: %d as {a}, %d as {a, b}, %d other\n", rounds,
            c.iterations, n_a, n_ab, n_bad);
    CU_ASSERT_EQUAL(c.failures, 0);
    CU_ASSERT_EQUAL(n_bad, 0);
    CU_ASSERT(n_a >= rounds / 2);
    free(only_a);
    free(a_b);
    free(got);
    free(pa);
    free(pb);
    fixture_close(&fm);
}

/* A PEFT directory in a new temporary folder: adapter_config.json (rank r,
 * alpha 16, all seven projections) and adapter_model.safetensors (the
 * header text and the tensor bytes). Returns it (malloc'd) or NULL. */
static char *write_peft_dir(int r, const char *hdr, size_t hdr_len, const void *data, size_t len) {
    char tmpl[] = "/tmp/llmh-peft-XXXXXX";
    if (!mkdtemp(tmpl)) return NULL;
    char *dir = strdup(tmpl), path[512];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f,
                "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\", "
                "\"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]}",
                r);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if ((f = fopen(path, "wb"))) {
        uint64_t hl = hdr_len;
        fwrite(&hl, 8, 1, f);
        fwrite(hdr, 1, hdr_len, f);
        fwrite(data, 1, len, f);
        fclose(f);
    }
    return dir;
}

/* Write stories260K-lora-tim.gguf as a PEFT directory, HF conventions:
 * shapes [r, in] / [out, r], q/k lora_B rows in rotate-half order (the
 * inverse of GGUF's interleaving; hf_order = false leaves them in GGUF order,
 * a deliberately wrong file). Returns the directory (malloc'd) or NULL. */
static char *write_llama_peft(llmh_model *model, bool hf_order) {
    char *gguf = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    llmh_registry *reg = llmh_model_registry(model);
    llmh_plugin *fp = NULL;
    llmh_model_file *mf = NULL;
    const llmh_format_iface *fi = NULL;
    const llmh_tensor_info *infos = NULL;
    size_t n_infos = 0;
    char *dir = NULL;
    if (llmh_registry_get_format_for(reg, gguf, &fp) != LLMH_OK) goto out;
    fi = llmh_plugin_iface(fp);
    if (fi->open(llmh_plugin_state(fp), gguf, NULL, &mf) != LLMH_OK) goto out;
    if (fi->get_tensors(mf, &infos, &n_infos) != LLMH_OK) goto out;
    const llmh_model_desc *d = llmh_model_describe(model);
    static const struct { const char *gguf, *hf; int qk; } map[] = {
        {"attn_q.weight", "self_attn.q_proj", 1}, {"attn_k.weight", "self_attn.k_proj", 2},
        {"attn_v.weight", "self_attn.v_proj", 0}, {"attn_output.weight", "self_attn.o_proj", 0},
        {"ffn_gate.weight", "mlp.gate_proj", 0},  {"ffn_up.weight", "mlp.up_proj", 0},
        {"ffn_down.weight", "mlp.down_proj", 0},
    };
    char hdr[65536];
    size_t ho = (size_t)snprintf(hdr, sizeof hdr, "{");
    size_t data_len = 0;
    for (size_t i = 0; i < n_infos; i++) data_len += (size_t)(infos[i].ne[0] * infos[i].ne[1]) * sizeof(float);
    float *data = malloc(data_len), *tmp = malloc(data_len);
    if (!data || !tmp) { free(data); free(tmp); goto out; }
    size_t off = 0;
    for (size_t i = 0; i < n_infos; i++) {
        const llmh_tensor_info *t = &infos[i];
        int layer = -1, end = 0;
        char base[64];
        if (sscanf(t->name, "blk.%d.%63[a-z_.]%n", &layer, base, &end) != 2) continue;
        size_t bl = strlen(base);
        bool is_b = bl > 7 && !strcmp(base + bl - 7, ".lora_b");
        base[bl - 7] = 0;
        int k = 0;
        while (k < 7 && strcmp(map[k].gguf, base)) k++;
        if (k == 7) continue;
        int64_t ne0 = t->ne[0], ne1 = t->ne[1], elems = ne0 * ne1;
        if (llmh_dequantize(t->type, t->data, tmp, elems) != LLMH_OK) memcpy(tmp, t->data, (size_t)elems * 4);
        float *dst = data + off / sizeof(float);
        if (is_b && map[k].qk && hf_order) { /* rows of ne0 floats; GGUF row h*hd+2i+j <- HF row h*hd+j*half+i */
            int64_t heads = map[k].qk == 1 ? d->n_head : d->n_head_kv, hd = ne1 / heads, half = hd / 2;
            for (int64_t h = 0; h < heads; h++)
                for (int64_t ii = 0; ii < half; ii++)
                    for (int64_t j = 0; j < 2; j++)
                        memcpy(dst + (h * hd + j * half + ii) * ne0, tmp + (h * hd + 2 * ii + j) * ne0,
                               (size_t)ne0 * sizeof(float));
        } else {
            memcpy(dst, tmp, (size_t)elems * sizeof(float));
        }
        ho += (size_t)snprintf(hdr + ho, sizeof hdr - ho,
                               "%s\"base_model.model.model.layers.%d.%s.lora_%c.weight\":{\"dtype\":\"F32\","
                               "\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                               ho > 1 ? "," : "", layer, map[k].hf, is_b ? 'B' : 'A', (long long)ne1, (long long)ne0,
                               off, off + (size_t)elems * sizeof(float));
        off += (size_t)elems * sizeof(float);
    }
    ho += (size_t)snprintf(hdr + ho, sizeof hdr - ho, "}");
    dir = write_peft_dir(8, hdr, ho, data, off);
    free(data);
    free(tmp);
out:
    if (mf) fi->close(mf);
    if (fp) llmh_plugin_release(fp);
    free(gguf);
    return dir;
}

static void remove_peft(char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
}

/* Logits of `toks` with adapter directory `dir` alone. */
static void eval_with(fixture_model *fm, const char *name, const char *dir, const llmh_token *toks, size_t n,
                      float *out, int64_t V) {
    llmh_status st = llmh_adapter_load(fm->model, name, dir, 1.0f, NULL);
    if (st) fprintf(stderr, "  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm->session, &name, NULL, 1), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm->session, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm->session, toks, n), LLMH_OK);
    memcpy(out, llmh_session_logits(fm->session), (size_t)V * sizeof *out);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m;
}

static void test_llama_peft(void) {
    char extra[1024] = "";
    adapter_tables(extra, sizeof extra, "stories260K-lora-tim.gguf", 1.0, NULL, 0);
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, extra) == 0);
    char *dir = write_llama_peft(fm.model, true), *wrong = write_llama_peft(fm.model, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrong);
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    static const llmh_token toks[] = {1, 365, 2, 3, 400, 22, 35};
    float *ref = malloc((size_t)V * sizeof *ref), *got = malloc((size_t)V * sizeof *got);
    CU_ASSERT_FATAL(ref && got);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, 7), LLMH_OK);
    memcpy(ref, llmh_session_logits(fm.session), (size_t)V * sizeof *ref);
    eval_with(&fm, "tim-peft", dir, toks, 7, got, V);
    double diff = max_abs_diff(got, ref, V);
    fprintf(stderr, "  llama PEFT vs GGUF form of tim: max |logit diff| = %.2e\n", diff);
    CU_ASSERT(diff == 0.0);
    /* control: q/k rows left in GGUF order give other logits, so the
     * permutation is really exercised */
    eval_with(&fm, "tim-wrong", wrong, toks, 7, got, V);
    diff = max_abs_diff(got, ref, V);
    fprintf(stderr, "  unpermuted rows: max |logit diff| = %.2e\n", diff);
    CU_ASSERT(diff > 1e-3);
    free(ref);
    free(got);
    remove_peft(dir);
    remove_peft(wrong);
    fixture_close(&fm);
}

/* An adapter for another model: clear errors naming the file and tensor. */
static void test_errors(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, NULL) == 0);
    /* PEFT for qwen2-tiny (2 layers, ffn 192) on stories260K: the first
     * mismatch is a shape (q/k/v/o agree at width 64/32) */
    char *peft = llmh_test_shared("models/adapters/qwen2-tiny-lora-a-peft");
    llmh_status st = llmh_adapter_load(fm.model, "bad", peft, 1.0f, NULL);
    fprintf(stderr, "  expected error: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "adapter_model.safetensors"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "lora_B.weight"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "blk.0.ffn_"));
    /* the GGUF form names its architecture or tensor, and the file */
    char *gguf = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    st = llmh_adapter_load(fm.model, "bad", gguf, 1.0f, NULL);
    fprintf(stderr, "  expected error: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "qwen2-tiny-lora-a.gguf"));
    /* a missing path, and a model file that is no adapter */
    CU_ASSERT_NOT_EQUAL(llmh_adapter_load(fm.model, "bad", "/nonexistent/adapter.gguf", 1.0f, NULL), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "/nonexistent/adapter.gguf"));
    char *model = llmh_test_shared("models/stories260K.gguf");
    CU_ASSERT_EQUAL(llmh_adapter_load(fm.model, "bad", model, 1.0f, NULL), LLMH_ERR_FORMAT);
    fprintf(stderr, "  expected error: %s\n", llmh_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "stories260K.gguf"));
    /* nothing was added to the store; the model still runs */
    llmh_adapter_info *info = NULL;
    size_t n = 1;
    CU_ASSERT_EQUAL(llmh_adapter_list(fm.model, &info, &n), LLMH_OK);
    CU_ASSERT_EQUAL(n, 0);
    free(info);
    CU_ASSERT_EQUAL(llmh_adapter_load(fm.model, "x", peft, NAN, NULL), LLMH_ERR_INVALID_ARG);
    check_session(fm.model, fm.session, "ref-stories260K", "after errors");
    free(peft);
    free(gguf);
    free(model);
    fixture_close(&fm);

    /* a manifest naming a bad adapter fails the model load with the file */
    char extra[1024] = "";
    adapter_tables(extra, sizeof extra, "qwen2-tiny-lora-a-peft", 1.0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(fixture_open(&fm, "models/stories260K.gguf", NULL, extra), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "adapter_model.safetensors"));
}


/* ------------------------------------------------------------------------ */
/* adapter storage types ([model] adapter_type)                              */
/* ------------------------------------------------------------------------ */
/* Logits of `toks` on ../shared/<model_rel> with the adapter at `adapter`
 * (NULL: none) stored as `type`; *bytes: the adapter's bytes as stored.
 * malloc'd; NULL (and a message) on failure. */
static float *typed_logits_opt(const char *model_rel, const char *type, const char *adapter, const llmh_token *toks,
                               size_t n, int64_t *nv, uint64_t *bytes, const char *backend, const char *backend_opts) {
    char keys[64], extra[1024] = "";
    snprintf(keys, sizeof keys, "adapter_type = \"%s\"\n", type);
    size_t o = 0;
    if (backend_opts) o = (size_t)snprintf(extra, sizeof extra, "[backend.options]\n%s\n", backend_opts);
    if (adapter) snprintf(extra + o, sizeof extra - o, "[[adapter]]\nname = \"ad\"\npath = \"%s\"\n", adapter);
    fixture_model fm;
    if (fixture_open_with(&fm, model_rel, backend, keys, extra) != 0) return NULL;
    int64_t V = llmh_model_describe(fm.model)->n_vocab;
    float *out = malloc((size_t)V * sizeof *out);
    llmh_adapter_info *info = NULL;
    size_t ni = 0;
    *bytes = 0;
    if (adapter && llmh_adapter_list(fm.model, &info, &ni) == LLMH_OK && ni == 1) *bytes = info[0].bytes;
    free(info);
    if (out && llmh_session_eval(fm.session, toks, n) == LLMH_OK) {
        memcpy(out, llmh_session_logits(fm.session), (size_t)V * sizeof *out);
    } else {
        fprintf(stderr, "  eval failed: %s\n", llmh_last_error());
        free(out);
        out = NULL;
    }
    *nv = V;
    fixture_close(&fm);
    return out;
}

static float *typed_logits(const char *model_rel, const char *type, const char *adapter, const llmh_token *toks,
                           size_t n, int64_t *nv, uint64_t *bytes) {
    return typed_logits_opt(model_rel, type, adapter, toks, n, nv, bytes, NULL, NULL);
}

/* A random rank-16 PEFT adapter for llama-tiny (HF conventions, as a
 * trainer writes it: lora_B of q/k in rotate-half row order). */
static char *write_random_llama_peft(const llmh_model_desc *d) {
    static const struct { const char *hf; int out, in; } mods[] = {
        {"self_attn.q_proj", 0, 0}, {"self_attn.k_proj", 1, 0}, {"self_attn.v_proj", 1, 0},
        {"self_attn.o_proj", 0, 0}, {"mlp.gate_proj", 2, 0},    {"mlp.up_proj", 2, 0},
        {"mlp.down_proj", 0, 2},
    };
    const int64_t R = 16, dims[3] = {d->n_embd, d->n_head_kv * d->head_dim, d->n_ff};
    char hdr[16384];
    size_t ho = (size_t)snprintf(hdr, sizeof hdr, "{"), off = 0, cap = 0;
    for (int64_t l = 0; l < d->n_layer; l++)
        for (int k = 0; k < 7; k++) cap += (size_t)(R * (dims[mods[k].in] + dims[mods[k].out])) * sizeof(float);
    float *data = malloc(cap);
    if (!data) return NULL;
    uint64_t seed = 77;
    for (int64_t l = 0; l < d->n_layer; l++)
        for (int k = 0; k < 7; k++)
            for (int ab = 0; ab < 2; ab++) {
                int64_t rows = ab ? dims[mods[k].out] : R, cols = ab ? R : dims[mods[k].in];
                float *p = data + off / sizeof(float);
                for (int64_t i = 0; i < rows * cols; i++) p[i] = 0.5f * llmh_test_randf(&seed);
                ho += (size_t)snprintf(hdr + ho, sizeof hdr - ho,
                                       "%s\"base_model.model.model.layers.%lld.%s.lora_%c.weight\":{\"dtype\":\"F32\","
                                       "\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                       ho > 1 ? "," : "", (long long)l, mods[k].hf, ab ? 'B' : 'A', (long long)rows,
                                       (long long)cols, off, off + (size_t)(rows * cols) * sizeof(float));
                off += (size_t)(rows * cols) * sizeof(float);
            }
    ho += (size_t)snprintf(hdr + ho, sizeof hdr - ho, "}");
    char *dir = write_peft_dir(R, hdr, ho, data, off);
    free(data);
    return dir;
}

/* f16, bf16 and q8_0 storage: logits close to f32 storage (the rounding
 * is small against the adapter's own effect), the same top token, and the
 * stored sizes they promise; q8_0's transposed B also from PEFT and through
 * the llama q/k row permutation. */
static void test_storage_types(void) {
    static const char *types[] = {"f32", "f16", "bf16", "q8_0"};
    static const char prompt[] = "The quick brown fox jumps over";
    char *gguf = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *peft = llmh_test_shared("models/adapters/qwen2-tiny-lora-a-peft");
    llmh_token *toks = NULL;
    size_t n = 0;
    {
        fixture_model fm;
        CU_ASSERT_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", NULL, NULL) == 0);
        CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), LLMH_ENCODE_ADD_BOS, &toks, &n),
                              LLMH_OK);
        fixture_close(&fm);
    }
    int64_t V = 0;
    uint64_t by[4], none_bytes;
    float *lg[4], *base = typed_logits("models/qwen2-tiny-f32.gguf", "f32", NULL, toks, n, &V, &none_bytes);
    CU_ASSERT_PTR_NOT_NULL_FATAL(base);
    for (int i = 0; i < 4; i++) {
        lg[i] = typed_logits("models/qwen2-tiny-f32.gguf", types[i], gguf, toks, n, &V, &by[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(lg[i]);
    }
    double effect = max_abs_diff(lg[0], base, V);
    fprintf(stderr, "  lora-a's effect on the logits (f32): max |diff| = %.3e\n", effect);
    for (int i = 1; i < 4; i++) {
        double diff = max_abs_diff(lg[i], lg[0], V);
        fprintf(stderr, "  %s storage vs f32: max |logit diff| = %.3e, %llu bytes (f32 %llu)\n", types[i], diff,
                (unsigned long long)by[i], (unsigned long long)by[0]);
        CU_ASSERT(diff < 0.05 * effect);
        CU_ASSERT_EQUAL(fixture_argmax(lg[i], V), fixture_argmax(lg[0], V));
    }
    CU_ASSERT_EQUAL(by[1] * 2, by[0]);
    CU_ASSERT_EQUAL(by[2] * 2, by[0]);
    CU_ASSERT_EQUAL(by[3], by[0] / 4 / 32 * 34);
    /* q8_0 from the PEFT form: the same values, so the same logits */
    uint64_t pb;
    float *pq = typed_logits("models/qwen2-tiny-f32.gguf", "q8_0", peft, toks, n, &V, &pb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pq);
    CU_ASSERT_EQUAL(max_abs_diff(pq, lg[3], V), 0.0);
    CU_ASSERT_EQUAL(pb, by[3]);
    free(pq);
    /* the other backends run the same q8_0 adapter (SDK 1.2) */
    static const char *others[] = {"onednn", "vulkan"};
    for (int i = 0; i < 2; i++) {
        if (!backend_built(others[i])) continue;
        uint64_t ob;
        float *ol = typed_logits_opt("models/qwen2-tiny-f32.gguf", "q8_0", gguf, toks, n, &V, &ob, others[i], NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ol);
        double diff = max_abs_diff(ol, lg[3], V);
        fprintf(stderr, "  q8_0 storage, %s vs cpu: max |logit diff| = %.3e\n", others[i], diff);
        CU_ASSERT(diff < 1e-4 * effect); /* summation order only: far below q8_0's own rounding */
        free(ol);
    }
    for (int i = 0; i < 4; i++) free(lg[i]);
    free(base);
    free(toks);

    /* llama: PEFT q/k lora_B rows are permuted into GGUF order before the
     * transpose; a wrong permutation would be as far off as no permutation */
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/llama-tiny-bf16.gguf", NULL, NULL) == 0);
    char *dir = write_random_llama_peft(llmh_model_describe(fm.model));
    fixture_close(&fm);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    static const llmh_token lt[] = {1, 400, 22, 35, 1000, 7};
    uint64_t b32, b8;
    float *l32 = typed_logits("models/llama-tiny-bf16.gguf", "f32", dir, lt, 6, &V, &b32);
    float *l8 = typed_logits("models/llama-tiny-bf16.gguf", "q8_0", dir, lt, 6, &V, &b8);
    float *l0 = typed_logits("models/llama-tiny-bf16.gguf", "f32", NULL, lt, 6, &V, &b32);
    CU_ASSERT_FATAL(l32 && l8 && l0);
    double d8 = max_abs_diff(l8, l32, V), eff = max_abs_diff(l32, l0, V);
    fprintf(stderr, "  llama PEFT: q8_0 vs f32 storage max |logit diff| = %.3e (adapter effect %.3e)\n", d8, eff);
    CU_ASSERT(d8 < 0.05 * eff);
    /* the CPU backend packing weights at load must leave adapter tensors
     * (read where they lie by LORA) alone */
    float *l8p =
        typed_logits_opt("models/llama-tiny-bf16.gguf", "q8_0", dir, lt, 6, &V, &b8, NULL, "repack_at_load = true");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l8p);
    CU_ASSERT_EQUAL(max_abs_diff(l8p, l8, V), 0.0);
    free(l8p);
    free(l32);
    free(l8);
    free(l0);
    remove_peft(dir);

    /* widths that are not multiples of 32 (stories260K's ffn is 172) */
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf"), extra[1024];
    snprintf(extra, sizeof extra, "[[adapter]]\nname = \"tim\"\npath = \"%s\"\n", tim);
    CU_ASSERT_NOT_EQUAL(fixture_open_with(&fm, "models/stories260K.gguf", NULL, "adapter_type = \"q8_0\"\n", extra), 0);
    fprintf(stderr, "  expected error: %s\n", llmh_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "multiples of 32"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "stories260K-lora-tim.gguf"));
    free(tim);
    free(gguf);
    free(peft);
}

/* ------------------------------------------------------------------------ */
/* hidden-state hook and per-token routing (layer-by-layer evaluation)        */
/* ------------------------------------------------------------------------ */
#define TINY "models/qwen2-tiny-f32.gguf"
static const char *const route_prompt = "The quick brown fox jumps over";

/* Logits of route_prompt's last token on qwen2-tiny-f32 with `extra`
 * manifest text (malloc'd; NULL on failure). */
static float *tiny_logits(const char *extra, int64_t *n_vocab) {
    fixture_model fm;
    if (fixture_open(&fm, TINY, NULL, extra) != 0) return NULL;
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    llmh_token *toks = NULL;
    size_t n = 0;
    float *out = NULL;
    if (llmh_tokenize(fm.model, route_prompt, strlen(route_prompt), LLMH_ENCODE_ADD_BOS, &toks, &n) == LLMH_OK &&
        llmh_session_eval(fm.session, toks, n) == LLMH_OK && (out = malloc((size_t)d->n_vocab * sizeof *out)))
        memcpy(out, llmh_session_logits(fm.session), (size_t)d->n_vocab * sizeof *out);
    else
        fprintf(stderr, "  eval failed: %s\n", llmh_last_error());
    *n_vocab = d->n_vocab;
    free(toks);
    fixture_close(&fm);
    return out;
}

static void router_text(char *buf, size_t cap, const char *mode) {
    snprintf(buf, cap, "[plugins]\npaths = [\"%s\"]\n[router]\nplugin = \"fabric-test-router\"\n[router.options]\nmode = \"%s\"\n",
             FABRIC_TEST_PLUGIN_DIR, mode);
}

/* Logits with adapter `a` (scale sa, may be NULL) under the test router in
 * `mode`, or under the static router when mode is NULL. */
static float *routed_logits(const char *a, double sa, const char *mode, int64_t *nv) {
    char extra[4096] = "";
    if (a) adapter_tables(extra, sizeof extra, a, sa, NULL, 0);
    if (mode) router_text(extra + strlen(extra), sizeof extra - strlen(extra), mode);
    return tiny_logits(extra, nv);
}

typedef struct hook_log {
    int calls;
    int32_t layers[64];
    int64_t dim, n_tok;
    float *h0;          /* layer 0 copy */
    int bad;
} hook_log;

static void record_hook(void *user, int32_t layer, const float *h, int64_t dim, int64_t n_tok) {
    hook_log *lg = user;
    if (lg->calls < 64) lg->layers[lg->calls] = layer;
    lg->calls++;
    if (lg->dim && (lg->dim != dim || lg->n_tok != n_tok)) lg->bad++;
    lg->dim = dim;
    lg->n_tok = n_tok;
    if (layer == 0 && !lg->h0) {
        lg->h0 = malloc((size_t)(dim * n_tok) * sizeof(float));
        if (lg->h0) memcpy(lg->h0, h, (size_t)(dim * n_tok) * sizeof(float));
    }
}

/* The hook sees every layer's input and the final residual; layer 0 is the
 * token embeddings (checked against the file); the logits are unchanged. */
static void test_hidden_hook(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, TINY, NULL, NULL) == 0);
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    llmh_token *toks;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, route_prompt, strlen(route_prompt), LLMH_ENCODE_ADD_BOS, &toks, &n),
                          LLMH_OK);
    float *plain = malloc((size_t)d->n_vocab * sizeof *plain);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
    memcpy(plain, llmh_session_logits(fm.session), (size_t)d->n_vocab * sizeof *plain);
    hook_log lg;
    memset(&lg, 0, sizeof lg);
    CU_ASSERT_EQUAL(llmh_session_set_hidden_hook(fm.session, record_hook, &lg), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
    CU_ASSERT_EQUAL(lg.calls, (int)d->n_layer + 1);
    for (int i = 0; i < lg.calls && i < 64; i++) CU_ASSERT_EQUAL(lg.layers[i], i);
    CU_ASSERT_EQUAL(lg.dim, d->n_embd);
    CU_ASSERT_EQUAL(lg.n_tok, (int64_t)n);
    CU_ASSERT_EQUAL(lg.bad, 0);
    CU_ASSERT_EQUAL(memcmp(plain, llmh_session_logits(fm.session), (size_t)d->n_vocab * sizeof *plain), 0);
    /* layer 0: the rows of token_embd.weight (F32 in this file) */
    llmh_registry *reg = NULL;
    llmh_plugin *fp = NULL;
    llmh_model_file *mf = NULL;
    char *path = llmh_test_shared(TINY);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get_format_for(reg, path, &fp), LLMH_OK);
    const llmh_format_iface *fi = llmh_plugin_iface(fp);
    CU_ASSERT_EQUAL_FATAL(fi->open(llmh_plugin_state(fp), path, NULL, &mf), LLMH_OK);
    const llmh_tensor_info *ti = NULL;
    size_t nt = 0;
    CU_ASSERT_EQUAL(fi->get_tensors(mf, &ti, &nt), LLMH_OK);
    int found = 0;
    for (size_t i = 0; i < nt; i++) {
        if (strcmp(ti[i].name, "token_embd.weight") != 0 || ti[i].type != LLMH_DTYPE_F32 || !lg.h0) continue;
        found = 1;
        for (size_t t = 0; t < n; t++)
            CU_ASSERT_EQUAL(memcmp(lg.h0 + t * (size_t)d->n_embd, (const float *)ti[i].data + (size_t)toks[t] * (size_t)d->n_embd,
                                   (size_t)d->n_embd * sizeof(float)), 0);
    }
    CU_ASSERT(found);
    fi->close(mf);
    llmh_plugin_release(fp);
    llmh_registry_free(reg);
    free(path);
    /* removed: no more calls */
    int before = lg.calls;
    CU_ASSERT_EQUAL(llmh_session_set_hidden_hook(fm.session, NULL, NULL), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_session_eval(fm.session, toks, n), LLMH_OK);
    CU_ASSERT_EQUAL(lg.calls, before);
    CU_ASSERT_EQUAL(llmh_session_set_hidden_hook(NULL, NULL, NULL), LLMH_ERR_INVALID_ARG);
    free(lg.h0);
    free(plain);
    free(toks);
    fixture_close(&fm);
}

/* Per-token gates through a router's route_tokens reach every layer's LoRA
 * nodes: gate 1 = the per-request result, gate 0 = no adapter, gate 0.5 =
 * scale 0.5, all bit for bit (the same arithmetic, one layer per submit). */
static void test_route_tokens(void) {
    int64_t nv = 0;
    float *base = routed_logits(NULL, 0, NULL, &nv);
    float *stat_a = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, NULL, &nv);
    float *pass_a = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, "pass", &nv);
    float *zero_a = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, "zero", &nv);
    float *stat_b = routed_logits("qwen2-tiny-lora-b.gguf", 0.5, NULL, &nv);
    float *half_b = routed_logits("qwen2-tiny-lora-b.gguf", 1.0, "half", &nv);
    float *alt_a = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, "alt", &nv);
    CU_ASSERT_FATAL(base && stat_a && pass_a && zero_a && stat_b && half_b && alt_a);
    size_t bytes = (size_t)nv * sizeof(float);
    CU_ASSERT(max_abs_diff(base, stat_a, nv) > 1e-2); /* the adapter matters */
    CU_ASSERT_EQUAL(memcmp(pass_a, stat_a, bytes), 0);
    CU_ASSERT_EQUAL(memcmp(zero_a, base, bytes), 0);
    CU_ASSERT_EQUAL(memcmp(half_b, stat_b, bytes), 0);
    /* odd tokens without the adapter: neither all on nor all off */
    CU_ASSERT(max_abs_diff(alt_a, stat_a, nv) > 1e-4);
    CU_ASSERT(max_abs_diff(alt_a, base, nv) > 1e-4);
    fprintf(stderr, "  route_tokens: pass == static, zero == base, half == scale 0.5 (bit for bit); alternate tokens "
                    "differ from both by %.2e / %.2e\n",
            max_abs_diff(alt_a, stat_a, nv), max_abs_diff(alt_a, base, nv));
    float *all[] = {base, stat_a, pass_a, zero_a, stat_b, half_b, alt_a};
    for (size_t i = 0; i < 7; i++) free(all[i]);
}

/* A PEFT adapter directory in a temp dir: links to lora-a's files plus an
 * adapter_gate.safetensors written from the arguments (w: n_layer rows of
 * n_embd, HF order; bias NULL = no gate.bias). Returns the dir (malloc'd). */
static char *gated_peft_dir(int64_t L, int64_t E, const float *w, int64_t w_rows, const float *b) {
    char tmpl[] = "/tmp/llmh-fabric-gate-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) return NULL;
    char *src = llmh_test_shared("models/adapters/qwen2-tiny-lora-a-peft");
    char p1[512], p2[512];
    const char *files[2] = {"adapter_config.json", "adapter_model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p1, sizeof p1, "%s/%s", src, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", dir, files[i]);
        if (symlink(p1, p2) != 0) fprintf(stderr, "symlink %s: %s\n", p2, strerror(errno));
    }
    free(src);
    char hdr[512];
    size_t wb = (size_t)(w_rows * E) * sizeof(float), bb = b ? (size_t)L * sizeof(float) : 0;
    int hl = b ? snprintf(hdr, sizeof hdr,
                          "{\"gate.weight\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[0,%zu]},"
                          "\"gate.bias\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}}",
                          (long long)w_rows, (long long)E, wb, (long long)L, wb, wb + bb)
               : snprintf(hdr, sizeof hdr, "{\"gate.weight\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[0,%zu]}}",
                          (long long)w_rows, (long long)E, wb);
    while (hl % 8) hdr[hl++] = ' ';
    snprintf(p2, sizeof p2, "%s/adapter_gate.safetensors", dir);
    FILE *f = fopen(p2, "wb");
    if (!f) return NULL;
    uint64_t len = (uint64_t)hl;
    fwrite(&len, 8, 1, f);
    fwrite(hdr, 1, (size_t)hl, f);
    fwrite(w, 1, wb, f);
    if (b) fwrite(b, 1, bb, f);
    fclose(f);
    return strdup(dir);
}

static void rm_gated_dir(char *dir) {
    if (!dir) return;
    const char *files[3] = {"adapter_config.json", "adapter_model.safetensors", "adapter_gate.safetensors"};
    char p[512];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    free(dir);
}

static float *gated_logits(const char *dir, const char *mode, int64_t *nv) {
    char extra[4096];
    int o = snprintf(extra, sizeof extra, "[[adapter]]\nname = \"gated\"\npath = \"%s\"\nscale = 1.0\n", dir);
    router_text(extra + o, sizeof extra - (size_t)o, mode);
    return tiny_logits(extra, nv);
}

/* Gate vectors from a PEFT adapter_gate.safetensors reach the router
 * (llmh_adapter_desc.gate_w/gate_b); the test router's sigmoid mode then
 * turns the adapter fully on (bias +40) or all but off (bias -40). */
static void test_gate_vectors(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, TINY, NULL, NULL) == 0);
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    int64_t L = d->n_layer, E = d->n_embd, nv = 0;
    fixture_close(&fm);
    float *w = calloc((size_t)(L * E), sizeof *w), *b = calloc((size_t)L, sizeof *b);
    CU_ASSERT_FATAL(w && b);
    for (int64_t l = 0; l < L; l++) b[l] = 40.0f;
    char *on = gated_peft_dir(L, E, w, L, b);
    for (int64_t l = 0; l < L; l++) b[l] = -40.0f;
    char *off = gated_peft_dir(L, E, w, L, b);
    CU_ASSERT_FATAL(on && off);
    float *base = routed_logits(NULL, 0, NULL, &nv);
    float *stat_a = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, NULL, &nv);
    float *g_on = gated_logits(on, "sigmoid", &nv), *g_off = gated_logits(off, "sigmoid", &nv);
    CU_ASSERT_FATAL(base && stat_a && g_on && g_off);
    CU_ASSERT_EQUAL(memcmp(g_on, stat_a, (size_t)nv * sizeof(float)), 0);
    CU_ASSERT(max_abs_diff(g_off, base, nv) < 1e-5);
    /* without gate vectors the test router's sigmoid mode refuses */
    float *none = routed_logits("qwen2-tiny-lora-a.gguf", 1.0, "sigmoid", &nv);
    CU_ASSERT_PTR_NULL(none);
    CU_ASSERT(strstr(llmh_last_error(), "has no gate") != NULL);
    free(none);
    free(base);
    free(stat_a);
    free(g_on);
    free(g_off);
    rm_gated_dir(on);
    rm_gated_dir(off);

    /* malformed gate files: clear errors naming the file */
    char *dirs[3];
    dirs[0] = gated_peft_dir(L, E, w, L, NULL);      /* weight without bias */
    dirs[1] = gated_peft_dir(L, E, w, L - 1, b);     /* one layer short */
    w[5] = NAN;
    dirs[2] = gated_peft_dir(L, E, w, L, b);         /* a NaN */
    const char *expect[3] = {"has no matching", "has shape", "non-finite"};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_FATAL(dirs[i] != NULL);
        char extra[1024];
        snprintf(extra, sizeof extra, "[[adapter]]\nname = \"bad\"\npath = \"%s\"\n", dirs[i]);
        fixture_model bad;
        CU_ASSERT(fixture_open(&bad, TINY, NULL, extra) != 0);
        fprintf(stderr, "  expected error: %s\n", llmh_last_error());
        CU_ASSERT(strstr(llmh_last_error(), expect[i]) != NULL);
        CU_ASSERT(strstr(llmh_last_error(), "adapter_gate.safetensors") != NULL);
        rm_gated_dir(dirs[i]);
    }
    free(w);
    free(b);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"qwen2 gguf lora-a", test_qwen2_gguf_a},
        {"qwen2 gguf lora-b 0.5", test_qwen2_gguf_b05},
        {"qwen2 gguf lora-a 0.7 + lora-b 1.3", test_qwen2_gguf_a07_b13},
        {"qwen2 peft lora-a", test_qwen2_peft_a},
        {"qwen2 peft lora-b 0.5", test_qwen2_peft_b05},
        {"qwen2 peft lora-a 0.7 + lora-b 1.3", test_qwen2_peft_a07_b13},
        {"stories260K tim", test_stories_tim},
        {"stories260K big", test_stories_big},
        {"stories260K tim + big", test_stories_tim_big},
        {"stories260K tim + big: conditioning", test_conditioning},
        {"stories260K tim 0.5 + big 0.5", test_stories_tim05_big05},
        {"stories260K tim text", test_stories_tim_text},
        {"onednn backend: qwen2 adapters", test_backend_onednn},
        {"vulkan backend: qwen2 adapters", test_backend_vulkan},
        {"C API: load, list, select, rescale, clear", test_api_select},
        {"unload while in use", test_unload_in_use},
        {"load/unload on one thread, evaluate on another", test_concurrent_churn},
        {"llama PEFT (q/k rows permuted) equals GGUF", test_llama_peft},
        {"errors name file and tensor", test_errors},
        {"adapter storage types f16/bf16/q8_0 against f32", test_storage_types},
        {"hidden-state hook", test_hidden_hook},
        {"per-token routing (route_tokens)", test_route_tokens},
        {"gate vectors from PEFT adapter_gate.safetensors", test_gate_vectors},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"fabric", cases, NULL, NULL}};
    return llmh_test_main(suites, 1);
}

/* test-model-ref.c — the CPU backend end to end against llama.cpp:
 * prompt tokens, top-10 logits at the prompt end, greedy continuations, and
 * HF safetensors directories against their GGUF twins.
 *
 * Numerics follow the SDK's normative precision (activations converted to
 * the weight's dot type, f16 attention operands with the default f16 KV
 * cache), which is what llama.cpp computes; we then agree with its logits to
 * about 1e-5 on every model, and the bounds below leave room only for
 * summation order:
 *  - qwen2-tiny f32 and llama-tiny bf16: 1e-3 absolute (the bar).
 *  - qwen2-tiny q8_0/q4_0: 0.05 and identical top-1 (the bar). These
 *    random-weight models are chaotic (one f16 rounding of an activation
 *    scale moves logits by 0.1), so the bar holds only with llama.cpp's
 *    exact activation quantization; we measure ~5e-6.
 *  - stories260K: 1e-3. Its 8-wide heads make q's f16 rounding sensitive to
 *    the last bit of the f32 projections; with llama.cpp's RMSNorm order one
 *    prompt still measures 7.4e-4 (a rounding flip from summation order in
 *    the projections), the others ~1e-6. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model-fixture.h"

static void check_reference(const char *model_rel, const char *ref_name, double tol, bool quantized,
                            bool check_greedy) {
    fixture_model fm;
    if (fixture_open(&fm, model_rel, NULL, NULL) != 0) {
        CU_FAIL_FATAL("model failed to load");
    }
    cJSON *ref = fixture_reference(ref_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    const llmh_model_desc *d = llmh_model_describe(fm.model);
    cJSON *c;
    int case_no = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        case_no++;
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        int np = cJSON_GetArraySize(pt);
        llmh_token *toks = malloc((size_t)np * sizeof *toks);
        for (int i = 0; i < np; i++) toks[i] = cJSON_GetArrayItem(pt, i)->valueint;

        /* our tokenizer gives the same prompt tokens */
        const llmh_tokenizer *tk;
        const llmh_tokenizer_iface *ti = llmh_model_tokenizer(fm.model, &tk);
        uint32_t flags = LLMH_ENCODE_PARSE_SPECIAL | (ti->add_bos_default(tk) ? LLMH_ENCODE_ADD_BOS : 0);
        llmh_token *ours = NULL;
        size_t n_ours = 0;
        CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), flags, &ours, &n_ours), LLMH_OK);
        CU_ASSERT_EQUAL(n_ours, (size_t)np);
        if (n_ours == (size_t)np) CU_ASSERT(memcmp(ours, toks, n_ours * sizeof *toks) == 0);
        free(ours);

        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
        llmh_status st = llmh_session_eval(fm.session, toks, (size_t)np);
        if (st) fprintf(stderr, "eval: %s\n", llmh_last_error());
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        const float *logits = llmh_session_logits(fm.session);
        cJSON *top = cJSON_GetObjectItem(c, "top10");
        double max_diff = 0;
        int k = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, top) {
            int id = cJSON_GetArrayItem(e, 0)->valueint;
            double want = cJSON_GetArrayItem(e, 1)->valuedouble;
            CU_ASSERT_FATAL(id >= 0 && id < d->n_vocab);
            double diff = fabs((double)logits[id] - want);
            if (diff > max_diff) max_diff = diff;
            if (diff > tol) fprintf(stderr, "    token %d: ours %.6f, llama.cpp %.6f\n", id, logits[id], want);
            if (k == 0) CU_ASSERT_EQUAL(fixture_argmax(logits, d->n_vocab), id);
            k++;
        }
        /* ids in the same order (for unquantized models) */
        if (!quantized) {
            int prev = -1;
            float prev_logit = INFINITY;
            cJSON_ArrayForEach(e, top) {
                int id = cJSON_GetArrayItem(e, 0)->valueint;
                /* the reference order must be our order too: each logit below the previous */
                if (prev >= 0) CU_ASSERT(logits[id] <= prev_logit + 1e-6f);
                /* and no other token may sit between them */
                prev = id;
                prev_logit = logits[id];
            }
            /* the 10th logit bounds everything outside the list */
            int outside_higher = 0;
            for (int64_t t = 0; t < d->n_vocab; t++) {
                bool listed = false;
                cJSON_ArrayForEach(e, top) if (cJSON_GetArrayItem(e, 0)->valueint == t) listed = true;
                if (!listed && logits[t] > prev_logit + 1e-4f) outside_higher++;
            }
            CU_ASSERT_EQUAL(outside_higher, 0);
        }
        fprintf(stderr, "  %s case %d: max |logit diff| over top-10 = %.2e (tolerance %.0e)\n", ref_name, case_no,
                max_diff, tol);
        CU_ASSERT(max_diff <= tol);

        if (check_greedy) {
            cJSON *g = cJSON_GetObjectItem(c, "greedy");
            int ng = cJSON_GetArraySize(g), matched = 0;
            for (int i = 0; i < ng; i++) {
                int want = cJSON_GetArrayItem(g, i)->valueint;
                int got = fixture_argmax(llmh_session_logits(fm.session), d->n_vocab);
                if (got != want) {
                    fprintf(stderr, "  %s case %d: greedy token %d: got %d, want %d\n", ref_name, case_no, i, got, want);
                    break;
                }
                matched++;
                llmh_token t = got;
                if (llmh_session_eval(fm.session, &t, 1) != LLMH_OK) break;
            }
            CU_ASSERT_EQUAL(matched, ng);
        }
        free(toks);
    }
    cJSON_Delete(ref);
    fixture_close(&fm);
}

static void test_stories260k(void) { check_reference("models/stories260K.gguf", "ref-stories260K", 1e-3, false, true); }
static void test_qwen2_f32(void) { check_reference("models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32", 1e-3, false, true); }
static void test_llama_bf16(void) { check_reference("models/llama-tiny-bf16.gguf", "ref-llama-tiny-bf16", 1e-3, false, true); }
static void test_qwen2_q8_0(void) { check_reference("models/qwen2-tiny-q8_0.gguf", "ref-qwen2-tiny-q8_0", 0.05, true, false); }
static void test_qwen2_q4_0(void) { check_reference("models/qwen2-tiny-q4_0.gguf", "ref-qwen2-tiny-q4_0", 0.05, true, false); }

/* The sampler chain + generate loop + detokenizer give the reference text. */
static bool collect(const char *text, size_t len, void *user) {
    char *buf = user;
    size_t have = strlen(buf);
    if (have + len < 4096) {
        memcpy(buf + have, text, len);
        buf[have + len] = 0;
    }
    return true;
}

static void test_stories_text(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, NULL) == 0);
    llmh_sampler_chain *chain = NULL;
    llmh_status st = llmh_sampler_chain_create(fm.model, fm.manifest, &chain);
    if (st) fprintf(stderr, "sampler chain: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    llmh_token *toks;
    size_t n;
    const char *prompt = "Once upon a time";
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), LLMH_ENCODE_ADD_BOS, &toks, &n), LLMH_OK);
    char *text = calloc(1, 4096);
    llmh_generate_params gp = {.max_tokens = 60, .on_text = collect, .user = text};
    llmh_generate_result res;
    CU_ASSERT_EQUAL_FATAL(llmh_generate(fm.session, chain, toks, n, &gp, &res), LLMH_OK);
    fprintf(stderr, "  stories260K: \"%s%s\"\n", prompt, text);
    CU_ASSERT(strncmp(text, ", there was a little girl named Lily.", 37) == 0);
    CU_ASSERT_EQUAL(res.n_generated, 60);
    /* the same ids as llama.cpp's greedy continuation */
    cJSON *ref = fixture_reference("ref-stories260K");
    cJSON *g = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "cases"), 0), "greedy");
    for (int i = 0; i < 60 && i < cJSON_GetArraySize(g); i++)
        CU_ASSERT_EQUAL(res.tokens[i], cJSON_GetArrayItem(g, i)->valueint);
    cJSON_Delete(ref);
    free(res.tokens);
    free(text);
    free(toks);
    llmh_sampler_chain_free(chain);
    fixture_close(&fm);
}

/* Stop strings end generation without being emitted, also when they span
 * tokens; empty stop strings are ignored. */
static void test_stop_strings(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, NULL) == 0);
    llmh_sampler_chain *chain = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_sampler_chain_create(fm.model, fm.manifest, &chain), LLMH_OK);
    llmh_token *toks;
    size_t n;
    const char *prompt = "Once upon a time";
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(fm.model, prompt, strlen(prompt), LLMH_ENCODE_ADD_BOS, &toks, &n), LLMH_OK);
    const char *stops[] = {"", "girl named"};
    char *text = calloc(1, 4096);
    llmh_generate_params gp = {.max_tokens = 60, .stop = stops, .n_stop = 2, .on_text = collect, .user = text};
    llmh_generate_result res;
    CU_ASSERT_EQUAL_FATAL(llmh_generate(fm.session, chain, toks, n, &gp, &res), LLMH_OK);
    CU_ASSERT_EQUAL(res.finish, LLMH_FINISH_STOP);
    CU_ASSERT_STRING_EQUAL(text, ", there was a little ");
    free(res.tokens);
    free(text);
    free(toks);
    llmh_sampler_chain_free(chain);
    fixture_close(&fm);
}

/* llmh_text_holdback, the streaming rule llmh_generate and the server
 * share: the earliest stop string, else the longer of a stop-string prefix
 * and an incomplete UTF-8 sequence at the end is held back. */
static void test_text_holdback(void) {
    const char *st[] = {"world", "", NULL, "STOP", "END"};
    size_t at;
    CU_ASSERT_EQUAL(llmh_text_holdback("Hello wor", 9, st, 5, &at), 3);
    CU_ASSERT_EQUAL(at, SIZE_MAX);
    llmh_text_holdback("say world!", 10, st, 5, &at);
    CU_ASSERT_EQUAL(at, 4);
    llmh_text_holdback("abSTOPxEND world", 16, st, 5, &at); /* earliest wins, whichever stop */
    CU_ASSERT_EQUAL(at, 2);
    CU_ASSERT_EQUAL(llmh_text_holdback("nothing", 7, st, 5, &at), 0);
    CU_ASSERT_EQUAL(at, SIZE_MAX);
    CU_ASSERT_EQUAL(llmh_text_holdback("caf\xc3", 4, st, 5, &at), 1);     /* 2-byte sequence, 1 seen */
    CU_ASSERT_EQUAL(llmh_text_holdback("x\xe2\x82", 3, st, 5, &at), 2);  /* 3-byte, 2 seen */
    CU_ASSERT_EQUAL(llmh_text_holdback("\xe2\x82\xac", 3, st, 5, &at), 0); /* complete */
    CU_ASSERT_EQUAL(llmh_text_holdback("\x80\x80", 2, st, 5, &at), 0);   /* stray continuation bytes */
    CU_ASSERT_EQUAL(llmh_text_holdback("a wo\xe2", 5, st, 5, &at), 1);    /* the UTF-8 tail, not a prefix */
    CU_ASSERT_EQUAL(llmh_text_holdback("ST", 2, st, 5, &at), 2);           /* the whole buffer */
    CU_ASSERT_EQUAL(llmh_text_holdback(NULL, 0, st, 5, &at), 0);
    CU_ASSERT_EQUAL(at, SIZE_MAX);
    CU_ASSERT_EQUAL(llmh_text_holdback("abc", 3, NULL, 0, &at), 0);
}

/* HF safetensors directories give the GGUF twin's logits (<= 1e-4). */
static void compare_twins(const char *gguf_rel, const char *hf_rel) {
    fixture_model a, b;
    CU_ASSERT_FATAL(fixture_open(&a, gguf_rel, NULL, NULL) == 0);
    CU_ASSERT_FATAL(fixture_open(&b, hf_rel, NULL, NULL) == 0);
    const llmh_model_desc *d = llmh_model_describe(a.model);
    CU_ASSERT_EQUAL_FATAL(d->n_vocab, llmh_model_describe(b.model)->n_vocab);
    llmh_token toks[] = {785, 6722, 315, 9625, 374, 1, 2, 3, 100, 1000, 5000};
    size_t n = sizeof toks / sizeof toks[0];
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(a.session, toks, n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(b.session, toks, n), LLMH_OK);
    const float *la = llmh_session_logits(a.session), *lb = llmh_session_logits(b.session);
    double max_diff = 0;
    for (int64_t i = 0; i < d->n_vocab; i++) {
        double diff = fabs((double)la[i] - lb[i]);
        if (diff > max_diff) max_diff = diff;
    }
    fprintf(stderr, "  %s vs %s: max |logit diff| = %.2e\n", gguf_rel, hf_rel, max_diff);
    CU_ASSERT(max_diff <= 1e-4);
    fixture_close(&a);
    fixture_close(&b);
}

static void test_qwen2_hf_twin(void) { compare_twins("models/qwen2-tiny-f32.gguf", "models/qwen2-tiny-hf"); }
static void test_llama_hf_twin(void) { compare_twins("models/llama-tiny-bf16.gguf", "models/llama-tiny-hf"); }

/* Context-full is a clean error and leaves the cache usable. */
static void test_context_full(void) {
    fixture_model fm;
    CU_ASSERT_FATAL(fixture_open(&fm, "models/stories260K.gguf", NULL, NULL) == 0);
    llmh_token big[600];
    for (int i = 0; i < 600; i++) big[i] = 1 + i % 500;
    CU_ASSERT_EQUAL(llmh_session_eval(fm.session, big, 600), LLMH_ERR_CONTEXT_FULL);
    CU_ASSERT(strstr(llmh_last_error(), "context full") != NULL);
    CU_ASSERT_EQUAL(llmh_session_pos(fm.session), 0);
    CU_ASSERT_EQUAL(llmh_session_eval(fm.session, big, 10), LLMH_OK);
    llmh_token bad = 100000;
    CU_ASSERT_EQUAL(llmh_session_eval(fm.session, &bad, 1), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_session_pos(fm.session), 10);
    fixture_close(&fm);
}

/* Batched prefill in chunks equals token-by-token decode. */
static void test_batch_equals_incremental(void) {
    fixture_model a, b;
    CU_ASSERT_FATAL(fixture_open(&a, "models/qwen2-tiny-f32.gguf", NULL, NULL) == 0);
    CU_ASSERT_FATAL(fixture_open(&b, "models/qwen2-tiny-f32.gguf", NULL, NULL) == 0);
    llmh_token toks[37];
    for (int i = 0; i < 37; i++) toks[i] = (llmh_token)(100 + 37 * i);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(a.session, toks, 37), LLMH_OK);
    for (int i = 0; i < 37; i++) CU_ASSERT_EQUAL_FATAL(llmh_session_eval(b.session, &toks[i], 1), LLMH_OK);
    const float *la = llmh_session_logits(a.session), *lb = llmh_session_logits(b.session);
    double max_diff = 0;
    for (int64_t i = 0; i < llmh_model_describe(a.model)->n_vocab; i++) {
        double diff = fabs((double)la[i] - lb[i]);
        if (diff > max_diff) max_diff = diff;
    }
    CU_ASSERT(max_diff < 1e-3);
    fixture_close(&a);
    fixture_close(&b);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"stories260K matches llama.cpp", test_stories260k},
        {"stories260K generate text", test_stories_text},
        {"stop strings", test_stop_strings},
        {"text hold-back rule", test_text_holdback},
        {"qwen2-tiny f32 matches llama.cpp", test_qwen2_f32},
        {"llama-tiny bf16 matches llama.cpp", test_llama_bf16},
        {"qwen2-tiny q8_0 matches llama.cpp", test_qwen2_q8_0},
        {"qwen2-tiny q4_0 matches llama.cpp", test_qwen2_q4_0},
        {"qwen2 HF dir equals GGUF", test_qwen2_hf_twin},
        {"llama HF dir equals GGUF", test_llama_hf_twin},
        {"context full is a clean error", test_context_full},
        {"batched prefill equals incremental", test_batch_equals_incremental},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"model-reference", cases, NULL, NULL}};
    return llmh_test_main(suites, 1);
}

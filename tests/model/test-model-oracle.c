/* test-model-oracle.c — architectures without a llama.cpp reference file
 * (qwen3) checked against an independent numpy forward pass (hf-oracle.py,
 * float64, written from the HF modelling math), which itself is first checked
 * on qwen2-tiny. The KV cache is f32 here: the oracle computes exactly, so
 * only f32 summation order separates the two (bound 1e-3 absolute on logits
 * of magnitude ~30). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model-fixture.h"

static const llmh_token toks[] = {785, 6722, 315, 9625, 374, 1, 2, 3, 100, 1000, 5000};
#define N_TOKS (sizeof toks / sizeof toks[0])

static float *read_oracle(const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.bin", LLMH_ORACLE_DIR, name);
    size_t len = 0;
    char *raw = llmh_test_read_file(path, &len);
    if (!raw) {
        fprintf(stderr, "missing %s: the model-oracle-setup fixture (python3 + numpy) did not run\n", path);
        return NULL;
    }
    *n = len / sizeof(float);
    return (float *)raw;
}

/* Load `path` (absolute), f32 KV cache, evaluate toks, compare with the oracle. */
static double max_diff_vs_oracle(const char *path, const char *oracle, int64_t *argmax_ours, int64_t *argmax_ref) {
    char text[2048];
    snprintf(text, sizeof text,
             "[model]\npath = \"%s\"\ncontext = 64\nkv_type = \"f32\"\n[backend]\nplugin = \"cpu\"\nthreads = 2\n", path);
    llmh_manifest *m = NULL;
    if (llmh_manifest_parse(text, strlen(text), "oracle.toml", NULL, &m)) return INFINITY;
    llmh_model_params mp = {NULL, m};
    llmh_model *model = NULL;
    llmh_session *s = NULL;
    double worst = INFINITY;
    size_t n = 0;
    float *ref = read_oracle(oracle, &n);
    if (llmh_model_load(&mp, &model) || llmh_session_create(model, NULL, &s) ||
        llmh_session_eval(s, toks, N_TOKS) || !ref) {
        fprintf(stderr, "%s: %s\n", path, llmh_last_error());
        goto out;
    }
    const llmh_model_desc *d = llmh_model_describe(model);
    if ((int64_t)n != d->n_vocab) {
        fprintf(stderr, "%s: oracle has %zu logits, model %lld\n", path, n, (long long)d->n_vocab);
        goto out;
    }
    const float *l = llmh_session_logits(s);
    worst = 0;
    for (int64_t i = 0; i < d->n_vocab; i++) worst = fmax(worst, fabs((double)l[i] - ref[i]));
    *argmax_ours = fixture_argmax(l, d->n_vocab);
    *argmax_ref = fixture_argmax(ref, d->n_vocab);
    fprintf(stderr, "  %s vs oracle: max |logit diff| %.2e, top-1 %lld / %lld\n", path, worst,
            (long long)*argmax_ours, (long long)*argmax_ref);
out:
    free(ref);
    llmh_session_free(s);
    llmh_model_free(model);
    llmh_manifest_free(m);
    return worst;
}

static void test_oracle_on_qwen2(void) {
    char *path = llmh_test_shared("models/qwen2-tiny-f32.gguf");
    int64_t a = -1, b = -2;
    CU_ASSERT(max_diff_vs_oracle(path, "qwen2", &a, &b) <= 1e-3);
    CU_ASSERT_EQUAL(a, b);
    free(path);
}

static void test_qwen3_gguf(void) {
    int64_t a = -1, b = -2;
    CU_ASSERT(max_diff_vs_oracle(LLMH_ORACLE_DIR "/qwen3-tiny.gguf", "qwen3", &a, &b) <= 1e-3);
    CU_ASSERT_EQUAL(a, b);
}

static void test_qwen3_hf(void) {
    int64_t a = -1, b = -2;
    CU_ASSERT(max_diff_vs_oracle(LLMH_ORACLE_DIR "/qwen3-tiny-hf", "qwen3", &a, &b) <= 1e-3);
    CU_ASSERT_EQUAL(a, b);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"oracle agrees with our qwen2 (validates the oracle)", test_oracle_on_qwen2},
        {"qwen3 GGUF matches the oracle", test_qwen3_gguf},
        {"qwen3 HF directory matches the oracle", test_qwen3_hf},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"model-oracle", cases, NULL, NULL}};
    return llmh_test_main(suites, 1);
}

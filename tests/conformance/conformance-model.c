/* conformance-model.c — the reference models end to end on the backend
 * under test, and the core's refusal of a model whose ops a backend lacks.
 *
 * For each ../shared/reference file: the top-1 token and the top-10 logits
 * at the end of each prompt (within 1e-3 for F32/BF16 models, 0.05 for the
 * Q8_0/Q4_0 ones, whose llama.cpp references quantize activations to Q8_0),
 * and for stories260K the whole greedy continuation of all 3 prompts.
 * A backend that refuses a model with LLMH_ERR_UNSUPPORTED (it does not
 * claim an op or weight type the model needs) is reported as skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "model-fixture.h"

static llmh_status open_model(const char *rel, const char *backend, const char *registry_dir,
                              llmh_registry **reg_out, llmh_manifest **man, llmh_model **model) {
    char *path = llmh_test_shared(rel);
    char text[2048];
    snprintf(text, sizeof text,
             "[model]\npath = \"%s\"\ncontext = 256\n[backend]\nplugin = \"%s\"\nthreads = 2\n"
             "[sampler]\nchain = [\"greedy\"]\n",
             path, backend);
    free(path);
    *model = NULL;
    *reg_out = NULL;
    llmh_status st = llmh_manifest_parse(text, strlen(text), "conformance.toml", NULL, man);
    if (st != LLMH_OK) return st;
    if (registry_dir) {
        if ((st = llmh_registry_create(reg_out)) != LLMH_OK) return st;
        if ((st = llmh_registry_add_path(*reg_out, registry_dir)) != LLMH_OK) return st;
        if ((st = llmh_registry_scan(*reg_out)) != LLMH_OK) return st;
    }
    llmh_model_params mp = {*reg_out, *man};
    return llmh_model_load(&mp, model);
}

typedef struct ref_model {
    const char *file, *ref;
    double tol;
    bool greedy;
} ref_model;

static const ref_model k_refs[] = {
    {"models/stories260K.gguf", "ref-stories260K", 1e-3, true},
    {"models/qwen2-tiny-f32.gguf", "ref-qwen2-tiny-f32", 1e-3, false},
    {"models/llama-tiny-bf16.gguf", "ref-llama-tiny-bf16", 1e-3, false},
    {"models/qwen2-tiny-q8_0.gguf", "ref-qwen2-tiny-q8_0", 0.05, false},
    {"models/qwen2-tiny-q4_0.gguf", "ref-qwen2-tiny-q4_0", 0.05, false},
};

static void check_model(const ref_model *rm) {
    llmh_registry *reg = NULL;
    llmh_manifest *man = NULL;
    llmh_model *model = NULL;
    llmh_session *s = NULL;
    llmh_status st = open_model(rm->file, cf_cur->name, NULL, &reg, &man, &model);
    if (st == LLMH_ERR_UNSUPPORTED) {
        fprintf(stderr, "  [%s] %s: SKIPPED: %s\n", cf_cur->name, rm->ref, llmh_last_error());
        goto done;
    }
    if (st != LLMH_OK) fprintf(stderr, "  [%s] loading %s: %s\n", cf_cur->name, rm->file, llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    st = llmh_session_create(model, NULL, &s);
    if (st == LLMH_ERR_UNSUPPORTED) {
        fprintf(stderr, "  [%s] %s: SKIPPED (session): %s\n", cf_cur->name, rm->ref, llmh_last_error());
        goto done;
    }
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    cJSON *ref = fixture_reference(rm->ref);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    int64_t n_vocab = llmh_model_describe(model)->n_vocab;
    int case_no = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        case_no++;
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        int np = cJSON_GetArraySize(pt);
        llmh_token *toks = malloc((size_t)np * sizeof *toks);
        for (int i = 0; i < np; i++) toks[i] = cJSON_GetArrayItem(pt, i)->valueint;
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(s, 0), LLMH_OK);
        st = llmh_session_eval(s, toks, (size_t)np);
        free(toks);
        if (st != LLMH_OK) fprintf(stderr, "  [%s] eval: %s\n", cf_cur->name, llmh_last_error());
        CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
        const float *logits = llmh_session_logits(s);
        double max_diff = 0;
        int k = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "top10")) {
            int id = cJSON_GetArrayItem(e, 0)->valueint;
            double want = cJSON_GetArrayItem(e, 1)->valuedouble;
            CU_ASSERT_FATAL(id >= 0 && id < n_vocab);
            double diff = fabs((double)logits[id] - want);
            if (diff > max_diff) max_diff = diff;
            if (k++ == 0) {
                int top = fixture_argmax(logits, n_vocab);
                if (top != id) fprintf(stderr, "  [%s] %s case %d: top-1 %d, llama.cpp %d\n", cf_cur->name, rm->ref, case_no, top, id);
                CU_ASSERT_EQUAL(top, id);
            }
        }
        fprintf(stderr, "  [%s] %s case %d: max |logit - llama.cpp| over top-10 = %.2e (tolerance %.0e)\n",
                cf_cur->name, rm->ref, case_no, max_diff, rm->tol);
        CU_ASSERT(max_diff <= rm->tol);
        if (rm->greedy) {
            cJSON *g = cJSON_GetObjectItem(c, "greedy");
            int ng = cJSON_GetArraySize(g), matched = 0;
            for (int i = 0; i < ng; i++) {
                int want = cJSON_GetArrayItem(g, i)->valueint;
                int got = fixture_argmax(llmh_session_logits(s), n_vocab);
                if (got != want) {
                    fprintf(stderr, "  [%s] %s case %d: greedy token %d: got %d, want %d\n", cf_cur->name, rm->ref,
                            case_no, i, got, want);
                    break;
                }
                matched++;
                llmh_token t = got;
                if (i + 1 < ng && llmh_session_eval(s, &t, 1) != LLMH_OK) break;
            }
            CU_ASSERT_EQUAL(matched, ng);
        }
    }
    cJSON_Delete(ref);
done:
    llmh_session_free(s);
    llmh_model_free(model);
    llmh_manifest_free(man);
    llmh_registry_free(reg);
}

void cf_test_end_to_end(void) {
    CF_SKIP_IF_NO_BACKEND();
    for (size_t i = 0; i < sizeof k_refs / sizeof k_refs[0]; i++) check_model(&k_refs[i]);
}

/* The fake backend (fake-backend.c, built into its own directory) claims
 * only ADD, MUL and SCALE: loading a model with it must fail with
 * LLMH_ERR_UNSUPPORTED and a message naming the backend and the op. */
void cf_test_refusal(void) {
    llmh_registry *reg = NULL;
    llmh_manifest *man = NULL;
    llmh_model *model = NULL;
    llmh_status st = open_model("models/stories260K.gguf", "conformance-fake", CF_FAKE_PLUGIN_DIR, &reg, &man, &model);
    const char *msg = llmh_last_error();
    fprintf(stderr, "\n  refusal: %s\n", msg);
    CU_ASSERT_EQUAL(st, LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(model);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "conformance-fake"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "rms_norm"));
    llmh_model_free(model);
    llmh_manifest_free(man);
    llmh_registry_free(reg);
}

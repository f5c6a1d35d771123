/*
 * test-chat-model.c — llmh_chat_render / llmh_chat_end_of_turn with real
 * models' templates: qwen2-tiny carries Qwen2.5's ChatML template (rendered
 * text must tokenize into the <|im_start|>/<|im_end|> control tokens), and
 * stories260K has none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static llmh_registry *g_reg;

static int suite_init(void) {
    if (llmh_registry_create(&g_reg) != LLMH_OK) return 1;
    if (llmh_registry_add_path(g_reg, LLMH_TEST_PLUGIN_DIR) != LLMH_OK) return 1;
    return llmh_registry_scan(g_reg) == LLMH_OK ? 0 : 1;
}

static int suite_cleanup(void) {
    llmh_registry_free(g_reg);
    return 0;
}

static llmh_model *load(const char *rel, llmh_manifest **man) {
    char *path = llmh_test_shared(rel);
    char text[1024];
    snprintf(text, sizeof text, "[model]\npath = \"%s\"\n[backend]\nplugin = \"cpu\"\nthreads = 1\n",
             path);
    free(path);
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_parse(text, strlen(text), "test.toml", NULL, &m);
    if (st != LLMH_OK) fprintf(stderr, "\n    manifest: %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    llmh_model_params mp = {g_reg, m};
    llmh_model *model = NULL;
    st = llmh_model_load(&mp, &model);
    if (st != LLMH_OK) fprintf(stderr, "\n    model load: %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    *man = m;
    return model;
}

static void test_qwen(void) {
    llmh_manifest *man;
    llmh_model *model = load("models/qwen2-tiny-f32.gguf", &man);
    CU_ASSERT_PTR_NOT_NULL_FATAL(llmh_model_chat_template(model));
    CU_ASSERT_PTR_NOT_NULL_FATAL(llmh_chat_end_of_turn(model));
    CU_ASSERT_STRING_EQUAL(llmh_chat_end_of_turn(model), "<|im_end|>");

    const llmh_chat_message msgs[] = {{"user", "Hi"}};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_chat_render(model, msgs, 1, true, &out), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out,
                           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                           "helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n");

    /* The markers become Qwen's control tokens (151644 <|im_start|>, 151645
     * <|im_end|>): the text starts with <|im_start|>, "system", "\n" and the
     * generation prompt ends with <|im_start|>, "assistant", "\n". */
    llmh_token *toks = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(model, out, strlen(out), LLMH_ENCODE_PARSE_SPECIAL, &toks,
                                        &n),
                          LLMH_OK);
    CU_ASSERT_FATAL(n > 6);
    CU_ASSERT_EQUAL(toks[0], 151644);
    CU_ASSERT_EQUAL(toks[n - 3], 151644);
    size_t n_end = 0;
    for (size_t i = 0; i < n; i++) n_end += toks[i] == 151645;
    CU_ASSERT_EQUAL(n_end, 2);
    free(toks);
    free(out);

    /* errors come through */
    const llmh_chat_message bad[] = {{"robot", "x"}};
    out = (char *)1;
    CU_ASSERT_EQUAL(llmh_chat_render(model, bad, 1, true, &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "robot"));

    llmh_model_free(model);
    llmh_manifest_free(man);
}

static void test_no_template(void) {
    llmh_manifest *man;
    llmh_model *model = load("models/stories260K.gguf", &man);
    CU_ASSERT_PTR_NULL(llmh_model_chat_template(model));
    CU_ASSERT_PTR_NULL(llmh_chat_end_of_turn(model));
    const llmh_chat_message msgs[] = {{"user", "Hi"}};
    char *out = (char *)1;
    CU_ASSERT_EQUAL(llmh_chat_render(model, msgs, 1, true, &out), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "no chat template"));
    llmh_model_free(model);
    llmh_manifest_free(man);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"qwen2-tiny (ChatML from the GGUF)", test_qwen},
        {"stories260K (no template)", test_no_template},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"chat-model", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

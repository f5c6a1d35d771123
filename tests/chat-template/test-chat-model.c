/*
 * test-chat-model.c — llmh_chat_render / llmh_chat_end_of_turn with real
 * models' templates: qwen2-tiny carries Qwen2.5's ChatML template (rendered
 * text must tokenize into the <|im_start|>/<|im_end|> control tokens), and
 * stories260K has none (manifest overrides give it templates).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmh-template.h"
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

/* Load a model; `extra` (may be NULL) is appended to the manifest. */
static llmh_model *load_with(const char *rel, const char *extra, llmh_manifest **man) {
    char *path = llmh_test_shared(rel);
    char text[16384];
    snprintf(text, sizeof text, "[model]\npath = \"%s\"\n[backend]\nplugin = \"cpu\"\nthreads = 1\n%s",
             path, extra ? extra : "");
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

static llmh_model *load(const char *rel, llmh_manifest **man) { return load_with(rel, NULL, man); }

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

/* OpenAI-form messages on the GGUF's own template (Qwen2.5's): content parts are
 * joined, a tool call's JSON-string arguments become an object (which the
 * template's `| tojson` writes back as JSON), tools are listed with tojson. */
static void test_render_json(void) {
    llmh_manifest *man;
    llmh_model *model = load("models/qwen2-tiny-f32.gguf", &man);
    static const char messages[] =
        "[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Weather in \"},"
        "  {\"type\": \"text\", \"text\": \"Paris?\"}]},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", "
        "\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"arguments\": \"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"22C\"}]";
    static const char tools[] =
        "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
        "{\"type\": \"object\"}}}]";
    char *out = NULL;
    llmh_status st = llmh_chat_render_json(model, messages, tools, 1, &out);
    if (st != LLMH_OK) fprintf(stderr, "\n    %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_STRING_EQUAL(
        out,
        /* tools branch, no system message: the default system text */
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "
        "provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
        "{\"type\": \"object\"}}}\n</tools>\n\nFor each function call, return a json object with "
        "function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
        /* the two text parts joined */
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        /* content null is false: no '\n' + content; arguments re-serialized by tojson */
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n");
    free(out);

    /* no tools (NULL) and the same conversation as llmh_chat_render: the same text */
    char *a = NULL, *b = NULL;
    const llmh_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
    CU_ASSERT_EQUAL_FATAL(llmh_chat_render(model, msgs, 2, true, &a), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_chat_render_json(model,
                                                "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                                                " {\"role\": \"user\", \"content\": \"Hi\"}]",
                                                NULL, 1, &b),
                          LLMH_OK);
    CU_ASSERT_STRING_EQUAL(a, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                              "<|im_start|>assistant\n");
    CU_ASSERT_STRING_EQUAL(a, b);
    free(a);
    free(b);

    /* bad input: errors naming the problem, nothing allocated */
    static const char *const bad[][3] = {
        {"[{\"role\": \"user\"", NULL, "not valid JSON"},
        {"{\"role\": \"user\"}", NULL, "must be a JSON array"},
        {"[{\"content\": \"x\"}]", NULL, "message 0 has no string \"role\""},
        {"[1]", NULL, "message 0 is not a JSON object"},
        {"[]", "{\"type\": \"function\"}", "tools must be a JSON array"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out = (char *)1;
        CU_ASSERT_EQUAL(llmh_chat_render_json(model, bad[i][0], bad[i][1], 1, &out), LLMH_ERR_INVALID_ARG);
        CU_ASSERT_PTR_NULL(out);
        CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), bad[i][2]));
    }
    CU_ASSERT_EQUAL(llmh_chat_render_json(NULL, "[]", NULL, 1, &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_chat_render_json_kw(model, "[]", NULL, "[1]", 1, &out), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "kwargs"));
    llmh_model_free(model);
    llmh_manifest_free(man);
}

static int g_warnings;
static void count_warnings(llmh_log_level level, const char *component, const char *msg, void *user) {
    (void)component;
    (void)user;
    if (level == LLMH_LOG_WARN && strstr(msg, "chat template cannot be parsed")) g_warnings++;
}

/* The manifest's [generate] chat_template replaces the GGUF's; its variables
 * include eos_token from the tokenizer and the kwargs. */
static void test_override_and_fallback(void) {
    llmh_manifest *man;
    llmh_model *model = load_with(
        "models/stories260K.gguf",
        "[generate]\nchat_template = '''{{ eos_token }}|{{ greeting }}|{% for m in messages %}"
        "{{ m.role }}:{{ m.content }};{% endfor %}{{ add_generation_prompt }}'''\n",
        &man);
    const llmh_tokenizer *tok = NULL;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(model, &tok);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ti);
    size_t eos_len = 0;
    const char *eos = ti->token_text(tok, ti->special(tok, LLMH_SPECIAL_EOS), &eos_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(eos);
    char want[256];
    snprintf(want, sizeof want, "%.*s|hello|user:Hi;tool:42;False", (int)eos_len, eos);
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_chat_render_json_kw(model,
                                                   "[{\"role\": \"user\", \"content\": \"Hi\"}, "
                                                   "{\"role\": \"tool\", \"content\": \"42\"}]",
                                                   NULL, "{\"greeting\": \"hello\"}", 0, &out),
                          LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
    llmh_model_free(model);
    llmh_manifest_free(man);

    /* a template that does not parse but is recognizably ChatML: the family
     * renderer takes over, with one warning per process */
    model = load_with("models/stories260K.gguf",
                      "[generate]\nchat_template = '''{% for message in messages %}{{'<|im_start|>' + "
                      "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}{% if %}'''\n",
                      &man);
    llmh_log_set(count_warnings, NULL, LLMH_LOG_DEBUG);
    const llmh_chat_message msgs[] = {{"user", "Hi"}};
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(llmh_chat_render(model, msgs, 1, true, &out), LLMH_OK);
        CU_ASSERT_STRING_EQUAL(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        free(out);
        CU_ASSERT_EQUAL_FATAL(llmh_chat_render_json(model, "[{\"role\": \"user\", \"content\": \"Hi\"}]",
                                                    NULL, 1, &out),
                              LLMH_OK);
        CU_ASSERT_STRING_EQUAL(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        free(out);
    }
    CU_ASSERT_EQUAL(g_warnings, 1);
    /* what the family renderer cannot do is refused with the parse error */
    out = (char *)1;
    CU_ASSERT_EQUAL(llmh_chat_render_json(model, "[{\"role\": \"tool\", \"content\": \"x\"}]", NULL, 1, &out),
                    LLMH_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "template line 1:"));
    llmh_log_set(NULL, NULL, LLMH_LOG_WARN);
    llmh_model_free(model);
    llmh_manifest_free(man);
}

/* Qwen3's template (as a manifest override) with an OpenAI client's
 * assistant message: "content": null fails `'</think>' in content`, so the
 * render is retried with "" and succeeds. */
static void test_null_content_retry(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/Qwen-Qwen3-0.6B.jinja", LLMH_TEST_TEMPLATE_DIR);
    char *tmpl = llmh_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    CU_ASSERT_PTR_NULL_FATAL(strstr(tmpl, "'''")); /* fits a TOML literal string */
    size_t cap = strlen(tmpl) + 64;
    char *extra = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(extra);
    snprintf(extra, cap, "[generate]\nchat_template = '''%s'''\n", tmpl);
    llmh_manifest *man;
    llmh_model *model = load_with("models/stories260K.gguf", extra, &man);
    free(extra);
    free(tmpl);
    char *out = NULL;
    llmh_status st = llmh_chat_render_json(
        model,
        "[{\"role\": \"user\", \"content\": \"Weather?\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
        "  \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"22C\"}]",
        NULL, 1, &out);
    if (st != LLMH_OK) fprintf(stderr, "\n    %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, "<|im_start|>user\nWeather?<|im_end|>\n"
                                /* content "" after the last query: '<|im_start|>assistant\n' + '';
                                 * arguments became an object: written by tojson */
                                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", "
                                "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
                                "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
                                "<|im_start|>assistant\n");
    free(out);
    /* an error that is not about null contents still comes through */
    out = (char *)1;
    CU_ASSERT_EQUAL(llmh_chat_render_json(model, "[{\"role\": \"user\", \"content\": 5}]", NULL, 1, &out),
                    LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "template line "));
    llmh_model_free(model);
    llmh_manifest_free(man);
}

/* Llama 3.2's template (as an override) with an OpenAI client's echoed
 * assistant message carrying "tool_calls": null: the key is dropped, so
 * `'tool_calls' in message` is false and the message renders as text.
 * stories260K's tokenizer adds BOS itself, so the template's leading
 * {{ bos_token }} ("<s>") is removed (the BOS rule). */
static void test_tool_calls_null(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/meta-llama-Llama-3.2-3B-Instruct.jinja", LLMH_TEST_TEMPLATE_DIR);
    char *tmpl = llmh_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmpl);
    CU_ASSERT_PTR_NULL_FATAL(strstr(tmpl, "'''"));
    size_t cap = strlen(tmpl) + 64;
    char *extra = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(extra);
    snprintf(extra, cap, "[generate]\nchat_template = '''%s'''\n", tmpl);
    llmh_manifest *man;
    llmh_model *model = load_with("models/stories260K.gguf", extra, &man);
    free(extra);
    free(tmpl);
    char *out = NULL;
    llmh_status st = llmh_chat_render_json_kw(
        model,
        "[{\"role\": \"user\", \"content\": \"Hi\"},"
        " {\"role\": \"assistant\", \"content\": \"Hello\", \"tool_calls\": null},"
        " {\"role\": \"user\", \"content\": \"Bye\"}]",
        NULL, "{\"date_string\": \"01 Jan 2025\"}", 1, &out);
    if (st != LLMH_OK) fprintf(stderr, "\n    %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    const llmh_tokenizer *tok = NULL;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(model, &tok);
    size_t bos_len = 0;
    CU_ASSERT_TRUE(ti->add_bos_default(tok));
    const char *bos = ti->token_text(tok, ti->special(tok, LLMH_SPECIAL_BOS), &bos_len);
    CU_ASSERT_TRUE(bos && bos_len == 3 && !memcmp(bos, "<s>", 3));
    CU_ASSERT_STRING_EQUAL(out, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                                "December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>"
                                "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                                "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
                                "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                                "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
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
        {"llmh_chat_render_json: OpenAI messages, tools", test_render_json},
        {"manifest template override, kwargs, parse-failure fallback", test_override_and_fallback},
        {"content null retried as \"\" (Qwen3 template)", test_null_content_retry},
        {"tool_calls null dropped (Llama 3.2 template)", test_tool_calls_null},
        {"stories260K (no template)", test_no_template},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"chat-model", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

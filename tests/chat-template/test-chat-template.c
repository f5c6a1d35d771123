/*
 * test-chat-template.c — family detection and rendering of chat prompts.
 *
 * Every expected string below was derived by hand from the family's
 * reference template (quoted next to each test), for single- and multi-turn
 * conversations, with and without a system message. Each one is checked
 * twice: against the family renderer (now the fallback for templates that
 * do not parse) and against the Jinja engine running the template itself.
 */
#include <stdlib.h>
#include <string.h>

#include "chat-template.h"
#include "testutil.h"

/* Qwen2.5's template from ../shared (read once). */
static char *g_qwen25;

/* meta-llama/Meta-Llama-3-8B-Instruct */
static const char LLAMA3_TMPL[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/* The no-tools path of meta-llama/Llama-3.1-8B-Instruct's template. */
static const char LLAMA31_TMPL[] =
    "{{- bos_token }}\n"
    "{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}{%- set system_message = \"\" %}{%- endif %}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{{- system_message }}{{- \"<|eot_id|>\" }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n";

/* meta-llama/Llama-2-7b-chat-hf */
static const char LLAMA2_TMPL[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if "
    "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 "
    "and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
    "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' "
    "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}";

/* teknium/OpenHermes-2.5-Mistral-7B: plain ChatML, no default system */
static const char CHATML_TMPL[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* The conversation llama.cpp's chat template tests use. */
static const llmh_chat_message CONV[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};
#define N_CONV (sizeof CONV / sizeof *CONV)

static int suite_init(void) {
    char *path = llmh_test_shared("models/qwen2.5-chat-template.jinja");
    g_qwen25 = llmh_test_read_file(path, NULL);
    free(path);
    return g_qwen25 ? 0 : 1;
}

static int suite_cleanup(void) {
    free(g_qwen25);
    return 0;
}

/* The family renderer only (see the callers for why the Jinja engine differs). */
static void expect_render_family(const char *tmpl, const llmh_chat_message *msgs, size_t n, bool gen,
                                 bool bos, const char *want) {
    llmh_chat_template t;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl, LLMH_CHAT_UNKNOWN), LLMH_OK);
    llmh_chat_render_params p = {gen, bos};
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_render(&t, msgs, n, &p, &out, NULL), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
    llmh__chat_template_clear(&t);
}

/* With no messages, templates that read messages[0] fail in Jinja (as in
 * transformers: an attribute of an undefined value). */
static void expect_jinja_no_messages_error(const char *tmpl) {
    cJSON *arr = cJSON_CreateArray();
    char *out = (char *)1;
    CU_ASSERT_EQUAL(llmh__chat_render_jinja(tmpl, arr, NULL, NULL, true, "", "", false, NULL, NULL, &out),
                    LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "index out of range"));
    cJSON_Delete(arr);
}

/* Render and compare; prints both on mismatch. */
static void expect_render(const char *tmpl, const llmh_chat_message *msgs, size_t n, bool gen,
                          bool bos, const char *want) {
    llmh_chat_template t;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl, LLMH_CHAT_UNKNOWN), LLMH_OK);
    llmh_chat_render_params p = {gen, bos};
    char *out = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_render(&t, msgs, n, &p, &out, &len), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(len, strlen(out));
    if (strcmp(out, want) != 0)
        fprintf(stderr, "\n--- rendered (%s):\n[%s]\n--- expected:\n[%s]\n",
                llmh__chat_family_name(t.family), out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);

    /* The Jinja engine (what llmh_chat_render now runs) executing the
     * template itself must give the same text: bos_token is the family's BOS
     * text, removed at the start unless add_bos, eos_token Llama-2's "</s>". */
    cJSON *arr = cJSON_CreateArray();
    CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
    for (size_t i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", msgs[i].role);
        cJSON_AddStringToObject(m, "content", msgs[i].content);
        cJSON_AddItemToArray(arr, m);
    }
    const char *bos_text = llmh__chat_bos_text(t.family);
    char *jin = NULL;
    llmh_status st = llmh__chat_render_jinja(tmpl, arr, NULL, NULL, gen, bos_text ? bos_text : "",
                                             "</s>", !bos, NULL, NULL, &jin);
    if (st != LLMH_OK) fprintf(stderr, "\n    jinja: %s", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    if (strcmp(jin, want) != 0) fprintf(stderr, "\n--- jinja:\n[%s]\n--- expected:\n[%s]\n", jin, want);
    CU_ASSERT_STRING_EQUAL(jin, want);
    free(jin);
    cJSON_Delete(arr);
    llmh__chat_template_clear(&t);
}

static void expect_render_error(const char *tmpl, const llmh_chat_message *msgs, size_t n,
                                const char *needle1, const char *needle2) {
    llmh_chat_template t;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl, LLMH_CHAT_UNKNOWN), LLMH_OK);
    llmh_chat_render_params p = {true, false};
    char *out = (char *)1;
    llmh_clear_error();
    CU_ASSERT_EQUAL(llmh__chat_render(&t, msgs, n, &p, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    const char *msg = llmh_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle1));
    if (needle2) CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle2));
    llmh__chat_template_clear(&t);
}

/* ------------------------------------------------------------------------ */
/* Detection                                                                  */
/* ------------------------------------------------------------------------ */
static void test_detect(void) {
    llmh_chat_family f;
    CU_ASSERT_EQUAL(llmh__chat_detect(g_qwen25, &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_CHATML);
    CU_ASSERT_EQUAL(llmh__chat_detect(CHATML_TMPL, &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_CHATML);
    CU_ASSERT_EQUAL(llmh__chat_detect(LLAMA3_TMPL, &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_LLAMA3);
    CU_ASSERT_EQUAL(llmh__chat_detect(LLAMA31_TMPL, &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_LLAMA3);
    CU_ASSERT_EQUAL(llmh__chat_detect(LLAMA2_TMPL, &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_LLAMA2);

    /* unknown: a clear error naming the markers */
    llmh_clear_error();
    CU_ASSERT_EQUAL(llmh__chat_detect("{% for m in messages %}{{ m.content }}{% endfor %}", &f),
                    LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_UNKNOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "<|im_start|>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "fallback"));
    CU_ASSERT_EQUAL(llmh__chat_detect(NULL, &f), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(llmh__chat_detect("", &f), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "no chat template"));

    /* init: detection error unless a fallback is requested */
    llmh_chat_template t;
    CU_ASSERT_EQUAL(llmh__chat_template_init(&t, "{{ x }}", LLMH_CHAT_UNKNOWN),
                    LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(t.family, LLMH_CHAT_UNKNOWN);
    CU_ASSERT_EQUAL(llmh__chat_template_init(&t, "{{ x }}", LLMH_CHAT_LLAMA3), LLMH_OK);
    CU_ASSERT_EQUAL(t.family, LLMH_CHAT_LLAMA3);
    CU_ASSERT_FALSE(t.knowledge_date);
    llmh__chat_template_clear(&t);
    CU_ASSERT_EQUAL(llmh__chat_template_init(&t, NULL, LLMH_CHAT_CHATML), LLMH_OK);
    CU_ASSERT_EQUAL(t.family, LLMH_CHAT_CHATML);
    CU_ASSERT_PTR_NULL(t.default_system);
    llmh__chat_template_clear(&t);
    llmh__chat_template_clear(NULL);

    /* what init extracts */
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, g_qwen25, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.default_system);
    CU_ASSERT_STRING_EQUAL(t.default_system,
                           "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    llmh__chat_template_clear(&t);
    CU_ASSERT_EQUAL(llmh__chat_template_init(&t, CHATML_TMPL, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NULL(t.default_system);
    llmh__chat_template_clear(&t);
    CU_ASSERT_EQUAL(llmh__chat_template_init(&t, LLAMA31_TMPL, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_TRUE(t.knowledge_date);
    llmh__chat_template_clear(&t);
}

static void test_names_and_markers(void) {
    CU_ASSERT_STRING_EQUAL(llmh__chat_stop_marker(LLMH_CHAT_CHATML), "<|im_end|>");
    CU_ASSERT_STRING_EQUAL(llmh__chat_stop_marker(LLMH_CHAT_LLAMA3), "<|eot_id|>");
    CU_ASSERT_STRING_EQUAL(llmh__chat_stop_marker(LLMH_CHAT_LLAMA2), "</s>");
    CU_ASSERT_PTR_NULL(llmh__chat_stop_marker(LLMH_CHAT_UNKNOWN));
    CU_ASSERT_STRING_EQUAL(llmh__chat_bos_text(LLMH_CHAT_LLAMA3), "<|begin_of_text|>");
    CU_ASSERT_STRING_EQUAL(llmh__chat_bos_text(LLMH_CHAT_LLAMA2), "<s>");
    CU_ASSERT_PTR_NULL(llmh__chat_bos_text(LLMH_CHAT_CHATML));

    llmh_chat_family f;
    const char *names[] = {"chatml", "llama3", "llama2"};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(llmh__chat_family_parse(names[i], &f), LLMH_OK);
        CU_ASSERT_STRING_EQUAL(llmh__chat_family_name(f), names[i]);
    }
    CU_ASSERT_EQUAL(llmh__chat_family_parse("qwen", &f), LLMH_OK);
    CU_ASSERT_EQUAL(f, LLMH_CHAT_CHATML);
    CU_ASSERT_EQUAL(llmh__chat_family_parse("vicuna", &f), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "vicuna"));
    CU_ASSERT_STRING_EQUAL(llmh__chat_family_name(LLMH_CHAT_UNKNOWN), "unknown");
}

/* ------------------------------------------------------------------------ */
/* ChatML / Qwen2.5                                                           */
/* ------------------------------------------------------------------------ */
/* Qwen2.5 (no tools): messages[0] system -> '<|im_start|>system\n' + content
 * + '<|im_end|>\n', else the default system prompt; then every user,
 * assistant and later system message as '<|im_start|>' + role + '\n' +
 * content + '<|im_end|>\n'; add_generation_prompt -> '<|im_start|>assistant\n'. */
static void test_qwen25(void) {
    expect_render(g_qwen25, CONV, N_CONV, true, false,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
                  "<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* no system message: Qwen's default one */
    expect_render(g_qwen25, CONV + 1, N_CONV - 1, true, false,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
                  "<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* single turn */
    const llmh_chat_message one[] = {{"user", "Hello"}};
    expect_render(g_qwen25, one, 1, true, false,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_render(g_qwen25, one, 1, false, false,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n");
    /* single turn with system; add_bos has no effect (Qwen has no BOS) */
    const llmh_chat_message sys1[] = {{"system", "Be brief."}, {"user", "Hi"}};
    expect_render(g_qwen25, sys1, 2, true, true,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* a later system message renders like any other; content is not trimmed */
    const llmh_chat_message later[] = {{"user", " a "}, {"system", "S"}, {"assistant", "b\n"}};
    expect_render(g_qwen25, later, 3, false, false,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\n<|im_start|>user\n a <|im_end|>\n"
                  "<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\nb\n<|im_end|>\n");
    /* no messages */
    expect_jinja_no_messages_error(g_qwen25); /* messages[0]['role'] */
    expect_render_family(g_qwen25, NULL, 0, true, false,
                  "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                  "assistant.<|im_end|>\n<|im_start|>assistant\n");
}

static void test_chatml_plain(void) {
    /* llama.cpp's expected output for OpenHermes-2.5 */
    expect_render(CHATML_TMPL, CONV, N_CONV, true, false,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
                  "Hello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\n"
                  "Who are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   "
                  "<|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* no default system prompt in this template */
    const llmh_chat_message one[] = {{"user", "Hello"}};
    expect_render(CHATML_TMPL, one, 1, true, false,
                  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
}

/* ------------------------------------------------------------------------ */
/* Llama-3                                                                    */
/* ------------------------------------------------------------------------ */
#define L3(role, text) "<|start_header_id|>" role "<|end_header_id|>\n\n" text "<|eot_id|>"
#define L3_GEN "<|start_header_id|>assistant<|end_header_id|>\n\n"

static void test_llama3(void) {
    /* llama.cpp's expected output (bos_token ""), content trimmed */
    static const char body[] = L3("system", "You are a helpful assistant") L3("user", "Hello")
        L3("assistant", "Hi there") L3("user", "Who are you") L3("assistant", "I am an assistant")
        L3("user", "Another question") L3_GEN;
    expect_render(LLAMA3_TMPL, CONV, N_CONV, true, false, body);
    /* with the BOS text: bos_token + first message */
    char with_bos[sizeof body + 32];
    snprintf(with_bos, sizeof with_bos, "<|begin_of_text|>%s", body);
    expect_render(LLAMA3_TMPL, CONV, N_CONV, true, true, with_bos);

    /* no system message: nothing is injected */
    expect_render(LLAMA3_TMPL, CONV + 1, 2, false, false,
                  L3("user", "Hello") L3("assistant", "Hi there"));
    /* single turn, with and without BOS */
    const llmh_chat_message one[] = {{"user", "\n  What is 2+2?\t\n"}};
    expect_render(LLAMA3_TMPL, one, 1, true, false, L3("user", "What is 2+2?") L3_GEN);
    expect_render(LLAMA3_TMPL, one, 1, true, true,
                  "<|begin_of_text|>" L3("user", "What is 2+2?") L3_GEN);
    /* no messages: no BOS either (the template writes it with message 0) */
    expect_render(LLAMA3_TMPL, NULL, 0, true, true, L3_GEN);
}

#define L31_SYS(text)                                                                        \
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n" \
    "Today Date: 26 Jul 2024\n\n" text "<|eot_id|>"

static void test_llama31(void) {
    expect_render(LLAMA31_TMPL, CONV, N_CONV, true, true,
                  "<|begin_of_text|>" L31_SYS("You are a helpful assistant") L3("user", "Hello")
                      L3("assistant", "Hi there") L3("user", "Who are you")
                          L3("assistant", "I am an assistant") L3("user", "Another question")
                              L3_GEN);
    /* no system message: the block is still there, empty after the date */
    const llmh_chat_message one[] = {{"user", "Hello"}};
    expect_render(LLAMA31_TMPL, one, 1, true, false, L31_SYS("") L3("user", "Hello") L3_GEN);
    /* system content is trimmed */
    const llmh_chat_message sys1[] = {{"system", "  Be brief.\n"}, {"user", "Hi"}};
    expect_render(LLAMA31_TMPL, sys1, 2, false, false, L31_SYS("Be brief.") L3("user", "Hi"));
    /* the template writes bos_token unconditionally */
    expect_jinja_no_messages_error(LLAMA31_TMPL); /* messages[0]['role'] */
    expect_render_family(LLAMA31_TMPL, NULL, 0, false, true, "<|begin_of_text|>" L31_SYS(""));
}

/* ------------------------------------------------------------------------ */
/* Llama-2                                                                    */
/* ------------------------------------------------------------------------ */
static void test_llama2(void) {
    /* bos_token "<s>", eos_token "</s>"; strip() trims the assistant's spaces */
    expect_render(LLAMA2_TMPL, CONV, N_CONV, true, true,
                  "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi "
                  "there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] "
                  "Another question [/INST]");
    /* default: the leading BOS is the tokenizer's; later turns keep "<s>" */
    expect_render(LLAMA2_TMPL, CONV, N_CONV, true, false,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi "
                  "there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] "
                  "Another question [/INST]");
    /* without a system message */
    expect_render(LLAMA2_TMPL, CONV + 1, N_CONV - 1, false, true,
                  "<s>[INST] Hello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an "
                  "assistant </s><s>[INST] Another question [/INST]");
    /* single turn */
    const llmh_chat_message one[] = {{"user", "  Hello\n"}};
    expect_render(LLAMA2_TMPL, one, 1, true, true, "<s>[INST] Hello [/INST]");
    const llmh_chat_message sys1[] = {{"system", "Be brief."}, {"user", "Hi"}};
    expect_render(LLAMA2_TMPL, sys1, 2, true, false,
                  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
    /* strip() covers the whole "<<SYS>>...content" string: an empty user
     * message also loses the "\n\n" after <</SYS>> */
    const llmh_chat_message empty[] = {{"system", "S"}, {"user", ""}};
    expect_render(LLAMA2_TMPL, empty, 2, false, false, "[INST] <<SYS>>\nS\n<</SYS>> [/INST]");
    /* Python's strip() also removes Unicode white space (U+00A0, U+3000) */
    const llmh_chat_message uni[] = {{"user", "\xc2\xa0 Hi\xe3\x80\x80\n"},
                                     {"assistant", "\xe2\x80\x83Yo\xc3\xa9 "}};
    expect_render(LLAMA2_TMPL, uni, 2, false, true, "<s>[INST] Hi [/INST] Yo\xc3\xa9 </s>");
    /* invalid UTF-8 (an overlong space) is kept as it is */
    const llmh_chat_message ovl[] = {{"user", "\xc0\xa0Hi\xe3\x80"}};
    expect_render(LLAMA2_TMPL, ovl, 1, false, false, "[INST] \xc0\xa0Hi\xe3\x80 [/INST]");
}

static void test_errors(void) {
    /* Llama-2 alternation, like the template's raise_exception */
    const llmh_chat_message uu[] = {{"user", "a"}, {"user", "b"}};
    expect_render_error(LLAMA2_TMPL, uu, 2, "message 1", "alternate");
    const llmh_chat_message a0[] = {{"system", "s"}, {"assistant", "a"}};
    expect_render_error(LLAMA2_TMPL, a0, 2, "message 1", "alternate");
    /* the Jinja engine runs the template's own check: raise_exception() */
    cJSON *uu_json = cJSON_Parse("[{\"role\": \"user\", \"content\": \"a\"}, "
                                 "{\"role\": \"user\", \"content\": \"b\"}]");
    char *jout = (char *)1;
    CU_ASSERT_EQUAL(llmh__chat_render_jinja(LLAMA2_TMPL, uu_json, NULL, NULL, true, "<s>", "</s>", false,
                                            NULL, NULL, &jout),
                    LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(jout);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "template line 1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "raise_exception: Conversation roles must alternate "
                                                     "user/assistant/user/assistant/..."));
    cJSON_Delete(uu_json);
    const llmh_chat_message sys_mid[] = {{"user", "a"}, {"assistant", "b"}, {"system", "c"}};
    expect_render_error(LLAMA2_TMPL, sys_mid, 3, "message 2", "system");
    /* roles outside system/user/assistant */
    const llmh_chat_message tool[] = {{"user", "a"}, {"tool", "b"}};
    expect_render_error(g_qwen25, tool, 2, "message 1", "'tool'");
    expect_render_error(LLAMA3_TMPL, tool, 2, "message 1", "'tool'");
    /* missing strings */
    const llmh_chat_message nul[] = {{"user", NULL}};
    expect_render_error(LLAMA3_TMPL, nul, 1, "message 0", "content");
    const llmh_chat_message norole[] = {{NULL, "x"}};
    expect_render_error(CHATML_TMPL, norole, 1, "message 0", "role");
    /* an uninitialized (unknown) template cannot render */
    llmh_chat_template t = {LLMH_CHAT_UNKNOWN, NULL, false};
    char *out = NULL;
    CU_ASSERT_EQUAL(llmh__chat_render(&t, CONV, 1, NULL, &out, NULL), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
}

/* A template whose default-system literal contains escapes. */
static void test_default_system_escapes(void) {
    static const char tmpl[] =
        "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou\\'re \"helpful\".\\n"
        "Line 2<|im_end|>\\n' }}{% endif %}{% for message in messages %}{{'<|im_start|>' + "
        "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    llmh_chat_template t;
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.default_system); /* '"' inside '...' is text */
    CU_ASSERT_STRING_EQUAL(t.default_system, "You're \"helpful\".\nLine 2");
    llmh__chat_template_clear(&t);

    /* the literal ends before <|im_end|>: an expression, not a default */
    static const char tmpl_expr[] =
        "{{ '<|im_start|>system\\nYou are ' + name + '<|im_end|>\\n' }}";
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl_expr, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NULL(t.default_system);
    llmh__chat_template_clear(&t);

    /* raw template text (real newline), up to <|im_end|> */
    static const char tmpl_raw[] =
        "{% if messages[0].role != 'system' %}<|im_start|>system\nRaw \\n text<|im_end|>\n"
        "{% endif %}";
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl_raw, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.default_system);
    CU_ASSERT_STRING_EQUAL(t.default_system, "Raw \\n text");
    llmh__chat_template_clear(&t);

    static const char tmpl2[] =
        "{{ '<|im_start|>system\\nYou\\'re helpful.\\nLine 2<|im_end|>\\n' }}"
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpl2, LLMH_CHAT_UNKNOWN), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t.default_system);
    CU_ASSERT_STRING_EQUAL(t.default_system, "You're helpful.\nLine 2");
    llmh__chat_template_clear(&t);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"detect", test_detect},
        {"names and markers", test_names_and_markers},
        {"qwen2.5 (chatml)", test_qwen25},
        {"plain chatml", test_chatml_plain},
        {"llama3", test_llama3},
        {"llama3.1", test_llama31},
        {"llama2", test_llama2},
        {"errors", test_errors},
        {"default system escapes", test_default_system_escapes},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"chat-template", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

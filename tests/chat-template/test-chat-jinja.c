/*
 * test-chat-jinja.c — the real chat templates (tests/chat-template/templates,
 * copied verbatim from the models' tokenizer_config.json / llama.cpp's
 * models/templates) executed by the Jinja engine through
 * llmh__chat_render_jinja.
 *
 * Every expected string was derived by hand from the template text; the
 * comment next to each piece names the template line that produces it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat-template.h"
#include "testutil.h"

static char *g_qwen25, *g_qwen3, *g_llama32, *g_llama3;

static char *load(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", LLMH_TEST_TEMPLATE_DIR, name);
    return llmh_test_read_file(path, NULL);
}

static int suite_init(void) {
    setenv("TZ", "UTC", 1);
    g_qwen25 = load("Qwen-Qwen2.5-Instruct.jinja");
    g_qwen3 = load("Qwen-Qwen3-0.6B.jinja");
    g_llama32 = load("meta-llama-Llama-3.2-3B-Instruct.jinja");
    g_llama3 = load("meta-llama-Meta-Llama-3-8B-Instruct.jinja");
    /* the fixture must be the template ../shared ships */
    char *path = llmh_test_shared("models/qwen2.5-chat-template.jinja");
    char *shared = llmh_test_read_file(path, NULL);
    free(path);
    int bad = !g_qwen25 || !g_qwen3 || !g_llama32 || !g_llama3 || !shared || strcmp(shared, g_qwen25);
    free(shared);
    return bad;
}

static int suite_cleanup(void) {
    free(g_qwen25);
    free(g_qwen3);
    free(g_llama32);
    free(g_llama3);
    return 0;
}

#define LLAMA_BOS "<|begin_of_text|>"

typedef struct rcase {
    const char *tmpl;
    const char *messages, *tools, *kwargs; /* JSON text; tools/kwargs may be NULL */
    bool gen, strip_bos;
    const char *bos, *eos;
    int64_t now;
} rcase;

static char *render_case(const rcase *c, llmh_status *st_out) {
    cJSON *m = cJSON_Parse(c->messages);
    cJSON *t = c->tools ? cJSON_Parse(c->tools) : NULL;
    cJSON *k = c->kwargs ? cJSON_Parse(c->kwargs) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_FATAL(!c->tools || t);
    CU_ASSERT_FATAL(!c->kwargs || k);
    llmh_jinja_opts o = {.now = c->now};
    char *out = NULL;
    bool parse_failed = true;
    llmh_status st = llmh__chat_render_jinja(c->tmpl, m, t, k, c->gen, c->bos, c->eos, c->strip_bos, &o,
                                             &parse_failed, &out);
    CU_ASSERT_FALSE(parse_failed);
    cJSON_Delete(m);
    cJSON_Delete(t);
    cJSON_Delete(k);
    *st_out = st;
    return out;
}

static void expect_case(const rcase *c, const char *want, int line) {
    llmh_status st;
    char *out = render_case(c, &st);
    if (st != LLMH_OK) fprintf(stderr, "\n    line %d: %s", line, llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    if (strcmp(out, want)) fprintf(stderr, "\n    line %d:\n--- got\n%s\n--- want\n%s\n---", line, out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
}
#define EXPECT_CASE(c, w) expect_case((c), (w), __LINE__)

/* A tool definition in OpenAI's form, and its json.dumps() forms. */
static const char TOOL[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the "
    "weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
    "\"string\"}}, \"required\": [\"city\"]}}}]";
/* {{ tool | tojson }}: ", " and ": " separators, keys in order */
#define TOOL_JSON                                                                                   \
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the " \
    "weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "      \
    "\"string\"}}, \"required\": [\"city\"]}}}"
/* {{ t | tojson(indent=4) }}: "," item separator, 4 spaces per level */
#define TOOL_JSON_INDENT4                                                                           \
    "{\n"                                                                                           \
    "    \"type\": \"function\",\n"                                                                 \
    "    \"function\": {\n"                                                                         \
    "        \"name\": \"get_weather\",\n"                                                          \
    "        \"description\": \"Get the weather\",\n"                                               \
    "        \"parameters\": {\n"                                                                   \
    "            \"type\": \"object\",\n"                                                           \
    "            \"properties\": {\n"                                                               \
    "                \"city\": {\n"                                                                 \
    "                    \"type\": \"string\"\n"                                                    \
    "                }\n"                                                                           \
    "            },\n"                                                                              \
    "            \"required\": [\n"                                                                 \
    "                \"city\"\n"                                                                    \
    "            ]\n"                                                                               \
    "        }\n"                                                                                   \
    "    }\n"                                                                                       \
    "}"

#define QWEN_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
/* The tools preamble both Qwen templates write after the system text. */
#define QWEN_TOOLS_HEAD                                                                            \
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are "     \
    "provided with function signatures within <tools></tools> XML tags:\n<tools>"
#define QWEN_TOOLS_TAIL                                                                            \
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments " \
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "          \
    "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"

/* ------------------------------------------------------------------------ */
/* Qwen2.5                                                                   */
/* ------------------------------------------------------------------------ */
static void test_qwen25_no_system(void) {
    rcase c = {g_qwen25, "[{\"role\": \"user\", \"content\": \"Hello\"}]", NULL, NULL, true, false,
               NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* no tools, messages[0] is not system: the literal default system block */
                "<|im_start|>system\n" QWEN_DEFAULT_SYSTEM "<|im_end|>\n"
                /* role == "user": '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n' */
                "<|im_start|>user\nHello<|im_end|>\n"
                /* add_generation_prompt */
                "<|im_start|>assistant\n");
}

static void test_qwen25_system_multi_turn(void) {
    rcase c = {g_qwen25,
               "[{\"role\": \"system\", \"content\": \"You are a helpful assistant\"},"
               " {\"role\": \"user\", \"content\": \"Hello\"},"
               " {\"role\": \"assistant\", \"content\": \"Hi there\"},"
               " {\"role\": \"user\", \"content\": \"Who are you\"}]",
               NULL, NULL, false, false, NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* messages[0] is system: '<|im_start|>system\n' + content + '<|im_end|>\n' */
                "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                /* loop: the first system message matches no branch (loop.first) */
                "<|im_start|>user\nHello<|im_end|>\n"
                /* assistant without tool_calls takes the first branch too */
                "<|im_start|>assistant\nHi there<|im_end|>\n"
                "<|im_start|>user\nWho are you<|im_end|>\n"
                /* no generation prompt */);
}

static void test_qwen25_tools(void) {
    rcase c = {g_qwen25,
               "[{\"role\": \"system\", \"content\": \"You are a weather bot.\"},"
               " {\"role\": \"user\", \"content\": \"Weather in Paris and Lyon?\"},"
               " {\"role\": \"assistant\", \"content\": \"Let me check.\", \"tool_calls\": ["
               "   {\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\","
               "    \"arguments\": {\"city\": \"Paris\"}}},"
               "   {\"id\": \"c2\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\","
               "    \"arguments\": {\"city\": \"Lyon\"}}}]},"
               " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"22C\"},"
               " {\"role\": \"tool\", \"tool_call_id\": \"c2\", \"content\": \"sunny\"},"
               " {\"role\": \"assistant\", \"content\": \"22C in Paris, sunny in Lyon.\"}]",
               TOOL, NULL, false, false, NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* tools branch: '<|im_start|>system\n' + messages[0].content, then "\n\n# Tools..." */
                "<|im_start|>system\nYou are a weather bot.\n\n" QWEN_TOOLS_HEAD
                /* for tool in tools: "\n" + tool | tojson */
                "\n" TOOL_JSON
                QWEN_TOOLS_TAIL
                "<|im_start|>user\nWeather in Paris and Lyon?<|im_end|>\n"
                /* assistant with tool_calls: '<|im_start|>' + role, '\n' + content (it is non-empty),
                 * then per call '\n<tool_call>\n{"name": "' + name + '", "arguments": ' +
                 * arguments | tojson + '}\n</tool_call>', then '<|im_end|>\n' */
                "<|im_start|>assistant\nLet me check."
                "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
                "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n</tool_call>"
                "<|im_end|>\n"
                /* first tool message (previous is not a tool): '<|im_start|>user'; each one
                 * '\n<tool_response>\n' + content + '\n</tool_response>'; the last of the run
                 * (next is not a tool) closes with '<|im_end|>\n' */
                "<|im_start|>user"
                "\n<tool_response>\n22C\n</tool_response>"
                "\n<tool_response>\nsunny\n</tool_response>"
                "<|im_end|>\n"
                "<|im_start|>assistant\n22C in Paris, sunny in Lyon.<|im_end|>\n");

    /* tools without a system message: the default system text opens the block;
     * an assistant message with empty content skips the '\n' + content */
    rcase d = {g_qwen25,
               "[{\"role\": \"user\", \"content\": \"Paris?\"},"
               " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": "
               "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]},"
               " {\"role\": \"tool\", \"content\": \"22C\"}]",
               TOOL, NULL, true, false, NULL, NULL, 0};
    EXPECT_CASE(&d, "<|im_start|>system\n" QWEN_DEFAULT_SYSTEM "\n\n" QWEN_TOOLS_HEAD "\n" TOOL_JSON
                    QWEN_TOOLS_TAIL
                    "<|im_start|>user\nParis?<|im_end|>\n"
                    "<|im_start|>assistant"
                    "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
                    "<|im_end|>\n"
                    /* a lone tool message is both the first and the last of its run; it is
                     * loop.last, so messages[loop.index0 + 1] is never read */
                    "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
                    "<|im_start|>assistant\n");
}

/* The Jinja rendering equals the family renderer wherever the latter applies. */
static void test_qwen25_matches_family_renderer(void) {
    static const llmh_chat_message conv[] = {
        {"system", "You are a helpful assistant"}, {"user", "Hello"}, {"assistant", "Hi there"},
        {"user", "Who are you"}, {"assistant", "   I am an assistant   "}, {"user", "Another question"}};
    static const char json[] =
        "[{\"role\": \"system\", \"content\": \"You are a helpful assistant\"},"
        " {\"role\": \"user\", \"content\": \"Hello\"}, {\"role\": \"assistant\", \"content\": \"Hi there\"},"
        " {\"role\": \"user\", \"content\": \"Who are you\"},"
        " {\"role\": \"assistant\", \"content\": \"   I am an assistant   \"},"
        " {\"role\": \"user\", \"content\": \"Another question\"}]";
    const char *tmpls[] = {g_qwen25, g_llama3};
    for (size_t k = 0; k < 2; k++) {
        for (size_t from = 0; from < 2; from++) { /* with and without the system message */
            llmh_chat_template t;
            CU_ASSERT_EQUAL_FATAL(llmh__chat_template_init(&t, tmpls[k], LLMH_CHAT_UNKNOWN), LLMH_OK);
            llmh_chat_render_params p = {true, true};
            char *fam = NULL;
            CU_ASSERT_EQUAL_FATAL(llmh__chat_render(&t, conv + from, 6 - from, &p, &fam, NULL), LLMH_OK);
            llmh__chat_template_clear(&t);
            cJSON *m = cJSON_Parse(json);
            CU_ASSERT_PTR_NOT_NULL_FATAL(m);
            if (from) cJSON_DeleteItemFromArray(m, 0);
            char *jin = NULL;
            CU_ASSERT_EQUAL_FATAL(llmh__chat_render_jinja(tmpls[k], m, NULL, NULL, true, LLAMA_BOS,
                                                          "<|eot_id|>", false, NULL, NULL, &jin),
                                  LLMH_OK);
            CU_ASSERT_STRING_EQUAL(jin, fam);
            free(jin);
            free(fam);
            cJSON_Delete(m);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Qwen3                                                                     */
/* ------------------------------------------------------------------------ */
static void test_qwen3_thinking_off(void) {
    rcase c = {g_qwen3,
               "[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Hi\"},"
               " {\"role\": \"assistant\", \"content\": \"<think>\\nhmm\\n</think>\\n\\nHello\"},"
               " {\"role\": \"user\", \"content\": \"Q2\"}]",
               NULL, "{\"enable_thinking\": false}", true, false, NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* no tools, messages[0] is system */
                "<|im_start|>system\nS<|im_end|>\n"
                "<|im_start|>user\nHi<|im_end|>\n"
                /* the reversed scan finds the last user query at index 3; the assistant at
                 * index 2 is before it, so only content = split('</think>')[-1].lstrip('\n')
                 * is written: its reasoning is dropped from the history */
                "<|im_start|>assistant\nHello<|im_end|>\n"
                "<|im_start|>user\nQ2<|im_end|>\n"
                /* generation prompt, and enable_thinking is defined and false: an empty think block */
                "<|im_start|>assistant\n<think>\n\n</think>\n\n");

    /* enable_thinking true (or undefined): the generation prompt stays open */
    rcase d = c;
    d.kwargs = "{\"enable_thinking\": true}";
    EXPECT_CASE(&d, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
                    "<|im_start|>assistant\n");
    d.kwargs = NULL;
    EXPECT_CASE(&d, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
                    "<|im_start|>assistant\n");
}

static void test_qwen3_reasoning_in_history(void) {
    /* reasoning_content after the last user query, in the last message: the think block */
    rcase c = {g_qwen3,
               "[{\"role\": \"user\", \"content\": \"2+2?\"},"
               " {\"role\": \"assistant\", \"content\": \"4\", \"reasoning_content\": \"\\nSimple sum.\\n\"}]",
               NULL, NULL, false, false, NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* no system message and no tools: nothing before the loop */
                "<|im_start|>user\n2+2?<|im_end|>\n"
                /* loop.index0 (1) > last_query_index (0) and loop.last: '\n<think>\n' +
                 * reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') */
                "<|im_start|>assistant\n<think>\nSimple sum.\n</think>\n\n4<|im_end|>\n");

    /* reasoning inline in content (<think>...</think>) after the last query, followed by more
     * turns: not loop.last but reasoning_content is non-empty, so the block is kept */
    rcase d = {g_qwen3,
               "[{\"role\": \"user\", \"content\": \"Go\"},"
               " {\"role\": \"assistant\", \"content\": \"<think>\\nplan\\n</think>\\n\\nstep 1\"},"
               " {\"role\": \"user\", \"content\": \"<tool_response>\\nok\\n</tool_response>\"},"
               " {\"role\": \"assistant\", \"content\": \"done\"}]",
               NULL, NULL, false, false, NULL, NULL, 0};
    EXPECT_CASE(&d,
                "<|im_start|>user\nGo<|im_end|>\n"
                /* the user message at index 2 is a wrapped tool response, so the reversed scan
                 * goes on to index 0: last_query_index = 0 */
                "<|im_start|>assistant\n<think>\nplan\n</think>\n\nstep 1<|im_end|>\n"
                "<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n"
                /* last message, no reasoning: the block is still written, empty */
                "<|im_start|>assistant\n<think>\n\n</think>\n\ndone<|im_end|>\n");
}

static void test_qwen3_tools(void) {
    rcase c = {g_qwen3,
               "[{\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
               " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\","
               "  \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
               " {\"role\": \"tool\", \"content\": \"22C\"}]",
               TOOL, NULL, true, false, NULL, NULL, 0};
    EXPECT_CASE(&c,
                /* tools and no system message: '<|im_start|>system\n' then "# Tools..." directly */
                "<|im_start|>system\n" QWEN_TOOLS_HEAD "\n" TOOL_JSON QWEN_TOOLS_TAIL
                "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                /* after the last query, not last, no reasoning: '<|im_start|>assistant\n' + content
                 * (empty); first call with empty content: no '\n'; arguments is a string, so it
                 * is written as it is */
                "<|im_start|>assistant\n"
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>"
                "<|im_end|>\n"
                "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n");
}

/* ------------------------------------------------------------------------ */
/* Llama 3.x                                                                 */
/* ------------------------------------------------------------------------ */
static void test_llama32_system(void) {
    rcase c = {g_llama32,
               "[{\"role\": \"system\", \"content\": \"  You are terse.  \"},"
               " {\"role\": \"user\", \"content\": \" Hi \"}, {\"role\": \"assistant\", \"content\": \"Hello!\"},"
               " {\"role\": \"user\", \"content\": \"Bye\"}]",
               NULL, "{\"date_string\": \"01 Jan 2025\"}", true, true, LLAMA_BOS, "<|eot_id|>", 0};
    EXPECT_CASE(&c,
                /* {{- bos_token }} is written, then removed: the tokenizer adds BOS (strip_bos) */
                "<|start_header_id|>system<|end_header_id|>\n\n"
                /* tools is none: no "Environment: ipython" */
                "Cutting Knowledge Date: December 2023\n"
                /* date_string is defined (a kwarg), so strftime_now is not called */
                "Today Date: 01 Jan 2025\n\n"
                /* system_message = messages[0]['content']|trim; messages = messages[1:] */
                "You are terse.<|eot_id|>"
                /* '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>' */
                "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_llama32_no_system_date(void) {
    /* no date_string: strftime_now("%d %b %Y") of the render clock (2024-07-26, TZ=UTC);
     * BOS kept (the tokenizer would not add it) */
    rcase c = {g_llama32, "[{\"role\": \"user\", \"content\": \"Hi\"}]", NULL, NULL, false, false,
               LLAMA_BOS, "<|eot_id|>", 1721952000};
    EXPECT_CASE(&c, LLAMA_BOS "<|start_header_id|>system<|end_header_id|>\n\n"
                              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                              /* system_message = "" */
                              "<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

static void test_llama32_tools(void) {
    rcase c = {g_llama32,
               "[{\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
               " {\"role\": \"assistant\", \"tool_calls\": [{\"type\": \"function\", \"function\": "
               "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]},"
               " {\"role\": \"tool\", \"content\": \"22C\"}]",
               TOOL, "{\"date_string\": \"01 Jan 2025\"}", true, true, LLAMA_BOS, "<|eot_id|>", 0};
    EXPECT_CASE(&c,
                "<|start_header_id|>system<|end_header_id|>\n\n"
                /* tools is not none */
                "Environment: ipython\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n"
                /* tools_in_user_message defaults to true: no functions here; system_message "" */
                "<|eot_id|>"
                /* the first user message carries the tools */
                "<|start_header_id|>user<|end_header_id|>\n\n"
                "Given the following functions, please respond with a JSON for a function call "
                "with its proper arguments that best answers the given prompt.\n\n"
                "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument "
                "name and its value}.Do not use variables.\n\n"
                /* for t in tools: t | tojson(indent=4) + "\n\n" */
                TOOL_JSON_INDENT4 "\n\n"
                /* first_user_message + "<|eot_id|>" */
                "Weather in Paris?<|eot_id|>"
                /* 'tool_calls' in message: one call, '{"name": "' + name + '", ' + '"parameters": ' +
                 * arguments | tojson + "}" + "<|eot_id|>" */
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
                /* tool: a string content is iterable, so it goes through tojson (quoted) */
                "<|start_header_id|>ipython<|end_header_id|>\n\n\"22C\"<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");

    /* the template's own errors come back with its message and position */
    rcase d = c;
    d.messages = "[{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"tool_calls\": "
                 "[{\"function\": {\"name\": \"a\", \"arguments\": {}}}, {\"function\": {\"name\": \"b\", "
                 "\"arguments\": {}}}]}]";
    llmh_status st;
    char *out = render_case(&d, &st);
    CU_ASSERT_EQUAL(st, LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "This model only supports single tool-calls at once!"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "template line 72:17:"));
    /* only a system message: no first user message to carry the tools */
    d.messages = "[{\"role\": \"system\", \"content\": \"s\"}]";
    out = render_case(&d, &st);
    CU_ASSERT_EQUAL(st, LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "raise_exception: Cannot put tools in the first "
                                                     "user message when there's no first user message!"));
    /* no messages at all: messages[0]['role'] reads an item of undefined, an error in Jinja too */
    d.messages = "[]";
    out = render_case(&d, &st);
    CU_ASSERT_EQUAL(st, LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "index out of range"));
}

static void test_llama3(void) {
    rcase c = {g_llama3,
               "[{\"role\": \"system\", \"content\": \"You are a helpful assistant\"},"
               " {\"role\": \"user\", \"content\": \" Hello \"}]",
               NULL, NULL, true, false, LLAMA_BOS, "<|eot_id|>", 0};
    /* content = header + message['content'] | trim + '<|eot_id|>'; the first gets bos_token */
    static const char body[] =
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n";
    EXPECT_CASE(&c, LLAMA_BOS "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    c.strip_bos = true; /* only the leading BOS goes */
    EXPECT_CASE(&c, body);
}

static void test_render_jinja_args(void) {
    cJSON *m = cJSON_Parse("[]");
    cJSON *obj = cJSON_Parse("{}");
    char *out = (char *)1;
    bool pf = true;
    CU_ASSERT_EQUAL(llmh__chat_render_jinja(NULL, m, NULL, NULL, true, NULL, NULL, false, NULL, &pf, &out),
                    LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_FALSE(pf);
    CU_ASSERT_EQUAL(llmh__chat_render_jinja("x", obj, NULL, NULL, true, NULL, NULL, false, NULL, &pf, &out),
                    LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh__chat_render_jinja("x", m, obj, NULL, true, NULL, NULL, false, NULL, &pf, &out),
                    LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh__chat_render_jinja("x", m, NULL, m, true, NULL, NULL, false, NULL, &pf, &out),
                    LLMH_ERR_INVALID_ARG);
    /* a parse error is flagged as such */
    CU_ASSERT_EQUAL(llmh__chat_render_jinja("{% if %}", m, NULL, NULL, true, NULL, NULL, false, NULL, &pf, &out),
                    LLMH_ERR_FORMAT);
    CU_ASSERT_TRUE(pf);
    /* kwargs cannot replace the reserved variables */
    cJSON *kw = cJSON_Parse("{\"add_generation_prompt\": false, \"bos_token\": \"X\", \"extra\": 7}");
    CU_ASSERT_EQUAL_FATAL(llmh__chat_render_jinja("{{ add_generation_prompt }}{{ bos_token }}{{ extra }}"
                                                  "{{ messages|length }}{{ tools is defined }}",
                                                  m, NULL, kw, true, "<s>", NULL, false, NULL, &pf, &out),
                          LLMH_OK);
    CU_ASSERT_STRING_EQUAL(out, "True<s>70False");
    free(out);
    cJSON_Delete(kw);
    cJSON_Delete(m);
    cJSON_Delete(obj);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"Qwen2.5: no system message", test_qwen25_no_system},
        {"Qwen2.5: system, multi-turn", test_qwen25_system_multi_turn},
        {"Qwen2.5: tools, tool_calls, tool responses", test_qwen25_tools},
        {"Qwen2.5 and Llama-3: Jinja equals the family renderer", test_qwen25_matches_family_renderer},
        {"Qwen3: enable_thinking false/true", test_qwen3_thinking_off},
        {"Qwen3: reasoning in history", test_qwen3_reasoning_in_history},
        {"Qwen3: tools", test_qwen3_tools},
        {"Llama-3.2: system, date_string, BOS stripped", test_llama32_system},
        {"Llama-3.2: no system, strftime_now", test_llama32_no_system_date},
        {"Llama-3.2: tools, raise_exception", test_llama32_tools},
        {"Llama-3: BOS rule", test_llama3},
        {"render_jinja arguments", test_render_jinja_args},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"chat-jinja", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

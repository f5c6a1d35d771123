/* test-serve.c — llmhost serve end to end: the test starts the built
 * llmhost on a free loopback port with configs/qwen2-tiny.toml (2 slots, a
 * queue of 2, a 64 KiB body limit) and drives it with libcurl:
 *  - chat (rendered by the model's Jinja template, tools included) and
 *    completions, non-streaming and streaming (every SSE chunk
 *    parsed, finish_reason in the last, [DONE], usage), streamed text equal
 *    to the non-streamed text (greedy), stop strings, /v1/models, /health;
 *  - a malformed-request corpus that must get only 4xx with an OpenAI
 *    error body, 404/405 routes, 413 for large bodies (with and without
 *    Content-Length), 400 naming the token counts for too-long prompts;
 *  - a client that disconnects mid-stream: generation stops and the slot
 *    frees; more clients than slots + queue: 429;
 *  - adapters loaded over HTTP and chosen per request (`model` or
 *    `adapters`), also concurrently in one batch: greedy ids equal a direct
 *    llmh generation with the same adapters and the llama.cpp reference
 *    (../shared/reference/ref-qwen2-tiny-f32-lora-*.json); rescale and
 *    unload over HTTP;
 *  - SIGTERM: the server exits 0 (under ASan: with no leak). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "llmh-template.h"
#include "serve-client.h"
#include "testutil.h"

static srv_proc g_srv;
static char *g_config;
static void direct_close(void);

static int suite_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *probe = llmh_test_shared("models/qwen2-tiny-f32.gguf"); /* exits clearly when ../shared is missing */
    free(probe);
    g_config = strdup(LLMH_SOURCE_DIR "/configs/qwen2-tiny.toml");
    const char *args[] = {"--parallel", "2", "--queue", "2", "--max-body", "65536", NULL};
    return srvc_start(&g_srv, g_config, args);
}

static int suite_cleanup(void) {
    direct_close();
    int rc = srvc_stop(&g_srv);
    if (rc != 0) fprintf(stderr, "serve test: the server exited with status %d after SIGTERM\n", rc);
    free(g_config);
    curl_global_cleanup();
    return rc == 0 ? 0 : -1;
}

static const char *choice_text(cJSON *j, bool chat) {
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *t = chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content") : cJSON_GetObjectItem(ch, "text");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static const char *choice_finish(cJSON *j) {
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *f = cJSON_GetObjectItem(ch, "finish_reason");
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static int usage_of(cJSON *u, const char *key) {
    cJSON *v = cJSON_GetObjectItem(u, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* ---- chat and completions ------------------------------------------------ */
static void test_health_models(void) {
    long st;
    cJSON *h = srvc_get_json(&g_srv, "/health", &st);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(h, "status")->valuestring, "ok");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(h, "slots_total")->valueint, 2);
    cJSON_Delete(h);
    cJSON *m = srvc_get_json(&g_srv, "/v1/models", &st);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(m, "object")->valuestring, "list");
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "data"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(first, "id")->valuestring, "qwen2-tiny");
    cJSON_Delete(m);
    cJSON *one = srvc_get_json(&g_srv, "/v1/models/qwen2-tiny", &st);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(one, "object")->valuestring, "model");
    cJSON_Delete(one);
}

static void check_ids_prefix(cJSON *resp, const llmh_token *want, int n) {
    cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0), "token_ids");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(ids), n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(ids); i++) CU_ASSERT_EQUAL(cJSON_GetArrayItem(ids, i)->valueint, want[i]);
}

static void check_usage(cJSON *u, int n_completion) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    int p = usage_of(u, "prompt_tokens"), c = usage_of(u, "completion_tokens"), t = usage_of(u, "total_tokens");
    CU_ASSERT(p > 0);
    CU_ASSERT_EQUAL(c, n_completion);
    CU_ASSERT_EQUAL(t, p + c);
}

static void test_chat(void) {
    const char *body = "{\"model\":\"qwen2-tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Write a haiku about the sea.\"}],\"max_tokens\":12,"
                       "\"temperature\":0}";
    long st;
    cJSON *j = srvc_post_json(&g_srv, "/v1/chat/completions", body, &st);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    CU_ASSERT(!strncmp(cJSON_GetObjectItem(j, "id")->valuestring, "chatcmpl-", 9));
    const char *text = choice_text(j, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(strlen(text) > 0);
    CU_ASSERT_STRING_EQUAL(choice_finish(j), "length");
    check_usage(cJSON_GetObjectItem(j, "usage"), 12);

    /* the same request streamed: same text, chunks well formed */
    char sbody[1024];
    snprintf(sbody, sizeof sbody, "%.*s,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
             (int)strlen(body) - 1, body);
    srvc_resp r;
    CU_ASSERT_EQUAL_FATAL(srvc_http(&g_srv, "POST", "/v1/chat/completions", sbody, strlen(sbody), NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    srvc_stream s;
    srvc_stream_parse(r.body, true, &s);
    CU_ASSERT(!s.malformed);
    CU_ASSERT(s.done);
    CU_ASSERT(s.n >= 3);
    CU_ASSERT_STRING_EQUAL(s.text, text);
    CU_ASSERT_EQUAL(s.finish_chunks, 1);
    CU_ASSERT_STRING_EQUAL(s.finish, "length");
    check_usage(s.usage, 12);
    /* first chunk: the role; every chunk: the object type and the same id */
    cJSON *d0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(s.events[0], "choices"), 0), "delta");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(d0, "role")->valuestring, "assistant");
    for (size_t i = 0; i < s.n; i++) {
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s.events[i], "object")->valuestring, "chat.completion.chunk");
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(s.events[i], "id")->valuestring,
                               cJSON_GetObjectItem(s.events[0], "id")->valuestring);
    }
    /* the usage chunk is last and has no choices */
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(s.events[s.n - 1], "choices")), 0);
    srvc_stream_free(&s);
    srvc_resp_free(&r);
    cJSON_Delete(j);
}

static void test_completion_stream_and_stop(void) {
    const char *body = "{\"prompt\":\"The capital of France is\",\"max_tokens\":16,\"return_token_ids\":true}";
    long st;
    cJSON *j = srvc_post_json(&g_srv, "/v1/completions", body, &st);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "object")->valuestring, "text_completion");
    const char *text = choice_text(j, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    /* the base model's greedy ids, as llama.cpp computed them */
    cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "token_ids");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(ids), 16);
    const int want[] = {374, 374, 374, 126002, 126002, 126002};
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(cJSON_GetArrayItem(ids, i)->valueint, want[i]);

    /* streamed, without usage */
    srvc_resp r;
    const char *sbody = "{\"prompt\":\"The capital of France is\",\"max_tokens\":16,\"stream\":true}";
    CU_ASSERT_EQUAL_FATAL(srvc_http(&g_srv, "POST", "/v1/completions", sbody, strlen(sbody), NULL, &r), 0);
    srvc_stream s;
    srvc_stream_parse(r.body, false, &s);
    CU_ASSERT(!s.malformed);
    CU_ASSERT(s.done);
    CU_ASSERT_PTR_NULL(s.usage);
    CU_ASSERT_STRING_EQUAL(s.text, text);
    CU_ASSERT_STRING_EQUAL(s.finish, "length");
    srvc_stream_free(&s);
    srvc_resp_free(&r);

    /* a stop string from the middle of that text: output ends before it */
    size_t tl = strlen(text);
    CU_ASSERT_FATAL(tl >= 8);
    const char *stop_at = text + tl / 2;
    char stop[8];
    snprintf(stop, sizeof stop, "%.3s", stop_at);
    /* the first occurrence of the stop string decides */
    size_t cut = (size_t)(strstr(text, stop) - text);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "prompt", "The capital of France is");
    cJSON_AddNumberToObject(req, "max_tokens", 16);
    cJSON *stops = cJSON_AddArrayToObject(req, "stop");
    cJSON_AddItemToArray(stops, cJSON_CreateString(stop));
    for (int streamed = 0; streamed < 2; streamed++) {
        cJSON_DeleteItemFromObject(req, "stream");
        cJSON_AddBoolToObject(req, "stream", streamed);
        char *b = cJSON_PrintUnformatted(req);
        CU_ASSERT_EQUAL_FATAL(srvc_http(&g_srv, "POST", "/v1/completions", b, strlen(b), NULL, &r), 0);
        CU_ASSERT_EQUAL(r.status, 200);
        char *got = NULL;
        const char *fin = NULL;
        cJSON *k = NULL;
        if (streamed) {
            srvc_stream_parse(r.body, false, &s);
            got = strdup(s.text);
            fin = s.finish;
        } else {
            k = cJSON_Parse(r.body);
            got = strdup(choice_text(k, false));
            fin = choice_finish(k);
        }
        CU_ASSERT_EQUAL(strlen(got), cut);
        CU_ASSERT(!strncmp(got, text, cut));
        CU_ASSERT_STRING_EQUAL(fin, "stop");
        free(got);
        if (streamed) srvc_stream_free(&s);
        cJSON_Delete(k);
        free(b);
        srvc_resp_free(&r);
    }
    cJSON_Delete(req);
    cJSON_Delete(j);
}

/* One in-process model (with adapters a and b loaded) for the direct
 * llmh runs the server's outputs are compared with. */
static struct {
    llmh_manifest *m;
    llmh_registry *reg;
    llmh_model *model;
    llmh_session *s;
    llmh_sampler_chain *chain;
} g_direct;

static int direct_open(void) {
    if (g_direct.chain) return 0;
    if (llmh_manifest_load(g_config, &g_direct.m) || llmh_registry_create(&g_direct.reg) || llmh_registry_scan(g_direct.reg))
        return -1;
    llmh_model_params mp = {g_direct.reg, g_direct.m};
    if (llmh_model_load(&mp, &g_direct.model) || llmh_session_create(g_direct.model, NULL, &g_direct.s)) return -1;
    static const char *files[] = {"a", "models/adapters/qwen2-tiny-lora-a.gguf", "b", "models/adapters/qwen2-tiny-lora-b-peft"};
    for (int i = 0; i < 4; i += 2) {
        char *path = llmh_test_shared(files[i + 1]);
        llmh_status st = llmh_adapter_load(g_direct.model, files[i], path, 1.0f, NULL);
        free(path);
        if (st) return -1;
    }
    return llmh_sampler_chain_create(g_direct.model, g_direct.m, &g_direct.chain) ? -1 : 0;
}

static void direct_close(void) {
    llmh_sampler_chain_free(g_direct.chain);
    llmh_session_free(g_direct.s);
    llmh_model_free(g_direct.model);
    llmh_registry_free(g_direct.reg);
    llmh_manifest_free(g_direct.m);
    memset(&g_direct, 0, sizeof g_direct);
}

/* Greedy ids of `toks` with the adapters `names`/`scales` (n = 0: base). */
static int direct_run(const llmh_token *toks, size_t nt, const char *const *names, const float *scales, size_t n,
                      const char *const *stop, size_t n_stop, int max_tokens, llmh_token *out) {
    if (n) {
        if (llmh_session_set_adapters(g_direct.s, names, scales, n)) return -1;
    } else {
        llmh_session_clear_adapters(g_direct.s);
    }
    llmh_session_truncate(g_direct.s, 0);
    llmh_sampler_chain_reset(g_direct.chain);
    llmh_generate_params gp = {.max_tokens = max_tokens, .stop = stop, .n_stop = n_stop};
    llmh_generate_result res;
    if (llmh_generate(g_direct.s, g_direct.chain, toks, nt, &gp, &res)) return -1;
    int got = (int)res.n_generated;
    memcpy(out, res.tokens, (size_t)got * sizeof *out);
    free(res.tokens);
    return got;
}

/* Prompt token count and greedy ids of a direct llmh run of a chat rendered
 * with llmh_chat_render_json (the server's renderer). */
static int direct_chat(const char *messages_json, const char *tools_json, int max_tokens, size_t *n_prompt,
                       llmh_token *out) {
    char *text = NULL;
    llmh_token *toks = NULL;
    size_t nt = 0;
    int got = -1;
    if (direct_open() || llmh_chat_render_json(g_direct.model, messages_json, tools_json, 1, &text) ||
        llmh_tokenize(g_direct.model, text, strlen(text), LLMH_ENCODE_PARSE_SPECIAL, &toks, &nt))
        goto out;
    *n_prompt = nt;
    const char *stop[] = {"<|im_end|>"};
    got = direct_run(toks, nt, NULL, NULL, 0, stop, 1, max_tokens, out);
out:
    if (got < 0) fprintf(stderr, "direct chat: %s\n", llmh_last_error());
    free(text);
    free(toks);
    return got;
}

/* tools and a tool-call round trip go through the model's own template */
static void test_chat_tools(void) {
    const char *msgs = "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                       "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
                       "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"22C sunny\"}]";
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the weather\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";
    char body[4096];
    snprintf(body, sizeof body, "{\"messages\":%s,\"tools\":%s,\"max_tokens\":6,\"return_token_ids\":true}", msgs, tools);
    long st;
    cJSON *j = srvc_post_json(&g_srv, "/v1/chat/completions", body, &st);
    CU_ASSERT_EQUAL_FATAL(st, 200);
    llmh_token direct[16];
    size_t n_prompt = 0;
    int nd = direct_chat(msgs, tools, 6, &n_prompt, direct);
    CU_ASSERT_FATAL(nd > 0);
    /* the rendering with the tools block is long; the same prompt, the same ids */
    CU_ASSERT(n_prompt > 100);
    CU_ASSERT_EQUAL(usage_of(cJSON_GetObjectItem(j, "usage"), "prompt_tokens"), (int)n_prompt);
    check_ids_prefix(j, direct, nd);
    cJSON_Delete(j);
    /* a template error (a tool message without the call) is the client's: 4xx */
    j = srvc_post_json(&g_srv, "/v1/chat/completions", "{\"messages\":[{\"role\":\"tool\",\"content\":5}]}", &st);
    CU_ASSERT_EQUAL(st, 400);
    cJSON_Delete(j);
}

/* core/cli/serve/serve-toolcall.c, compiled into this test */
cJSON *srv_parse_tool_calls(const char *text, const char *id_prefix, char **content);

static void test_tool_call_parse(void) {
    char *content = NULL;
    cJSON *calls = srv_parse_tool_calls(
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
        "<tool_call>{\"name\":\"now\"}</tool_call>",
        "chatcmpl-1", &content);
    CU_ASSERT_PTR_NOT_NULL_FATAL(calls);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(calls), 2);
    cJSON *c0 = cJSON_GetArrayItem(calls, 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(c0, "id")->valuestring, "call_chatcmpl-1_0");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(c0, "type")->valuestring, "function");
    cJSON *f0 = cJSON_GetObjectItem(c0, "function");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(f0, "name")->valuestring, "get_weather");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(f0, "arguments")->valuestring, "{\"city\":\"Paris\"}");
    cJSON *f1 = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 1), "function");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(f1, "arguments")->valuestring, "{}");
    CU_ASSERT_STRING_EQUAL(content, "Let me check.");
    free(content);
    cJSON_Delete(calls);
    /* only blocks: no content */
    calls = srv_parse_tool_calls("<tool_call>{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":1}\"}</tool_call>\n", "x", &content);
    CU_ASSERT_PTR_NOT_NULL_FATAL(calls);
    CU_ASSERT_PTR_NULL(content);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "function"), "arguments")->valuestring,
                           "{\"x\":1}");
    cJSON_Delete(calls);
    /* anything malformed stays text */
    const char *bad[] = {"no calls here", "<tool_call>{\"name\":\"a\"}", "<tool_call>not json</tool_call>",
                         "<tool_call>{\"arguments\":{}}</tool_call>", "<tool_call>{\"name\":5}</tool_call>",
                         "<tool_call>[1,2]</tool_call>", "<tool_call>{\"name\":\"a\",\"arguments\":3}</tool_call>",
                         "<tool_call>{\"name\":\"\"}</tool_call>", "<tool_call>{\"name\":\"a\"}</tool_call><tool_call>{</tool_call>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        content = (char *)1;
        calls = srv_parse_tool_calls(bad[i], "x", &content);
        CU_ASSERT_PTR_NULL(calls);
        CU_ASSERT_PTR_NULL(content);
        cJSON_Delete(calls);
    }
}

/* ---- untrusted input ---------------------------------------------------- */
typedef struct bad_case {
    const char *method, *path, *body;
    long want; /* 0 = any 4xx */
} bad_case;

static void test_malformed_corpus(void) {
    static char deep[20001];
    for (int i = 0; i < 10000; i++) {
        deep[i] = '[';
        deep[10000 + i] = ']';
    }
    deep[20000] = 0;
    const bad_case cases[] = {
        {"POST", "/v1/chat/completions", "", 400},
        {"POST", "/v1/chat/completions", "{", 400},
        {"POST", "/v1/chat/completions", "nul", 400},
        {"POST", "/v1/chat/completions", "[]", 400},
        {"POST", "/v1/chat/completions", "\"messages\"", 400},
        {"POST", "/v1/chat/completions", "{} {}", 400},
        {"POST", "/v1/chat/completions", deep, 400},
        {"POST", "/v1/chat/completions", "{}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":\"hi\"}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[1]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"content\":\"hi\"}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":7,\"content\":\"hi\"}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":\"5\"}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-1}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1.5}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1e300}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":5}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":2}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"seed\":\"x\"}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream_options\":1}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":5}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[1,2]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"gpt-9\"}", 404},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":3}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"adapters\":{}}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"adapters\":[{\"name\":\"nope\"}]}", 404},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"adapters\":[{\"scale\":1}]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"adapters\":[7]}", 400},
        {"POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true}", 400},
        {"POST", "/v1/completions", "{}", 400},
        {"POST", "/v1/completions", "{\"prompt\":{}}", 400},
        {"POST", "/v1/completions", "{\"prompt\":\"\"}", 400},
        {"POST", "/v1/completions", "{\"prompt\":[]}", 400},
        {"POST", "/v1/completions", "{\"prompt\":[\"a\",\"b\"]}", 400},
        {"POST", "/v1/completions", "{\"prompt\":[1,-2]}", 400},
        {"POST", "/v1/completions", "{\"prompt\":[1,99999999]}", 400},
        {"POST", "/v1/completions", "{\"prompt\":[1,{}]}", 400},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"echo\":true}", 400},
        {"POST", "/v1/completions", "{\"prompt\":\"hi\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}", 400},
        {"POST", "/v1/adapters", "{\"path\":\"/nonexistent\"}", 400},
        {"POST", "/v1/adapters", "{\"name\":\"x\",\"path\":\"/nonexistent/adapter.gguf\"}", 400},
        {"POST", "/v1/adapters", "{\"name\":\"x\",\"path\":\"" LLMH_SOURCE_DIR "/CMakeLists.txt\"}", 400},
        {"POST", "/v1/adapters", "{\"name\":\"x\",\"scale\":2}", 404},
        {"POST", "/v1/adapters", "{\"name\":\"qwen2-tiny\",\"path\":\"/x\"}", 400},
        {"POST", "/v1/adapters", "{\"name\":\"a/b\",\"path\":\"/x\"}", 400},
        {"POST", "/v1/adapters", "{\"name\":\"x\",\"path\":\"/x\",\"scale\":\"big\"}", 400},
        {"DELETE", "/v1/adapters/nope", NULL, 404},
        {"DELETE", "/v1/adapters", "{\"name\":5}", 400},
        {"DELETE", "/v1/adapters", "oops", 400},
        {"GET", "/v1/chat/completions", NULL, 405},
        {"PUT", "/v1/completions", "{}", 405},
        {"POST", "/v1/models", "{}", 405},
        {"POST", "/health", "{}", 405},
        {"PATCH", "/v1/adapters", "{}", 405},
        {"GET", "/v1/nothing", NULL, 404},
        {"GET", "/", NULL, 404},
        {"GET", "/v1/models/gpt-9", NULL, 404},
        {"GET", "/../../etc/passwd", NULL, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        srvc_resp r;
        int rc = srvc_http(&g_srv, c->method, c->path, c->body, c->body ? strlen(c->body) : 0, NULL, &r);
        CU_ASSERT_EQUAL(rc, 0);
        bool ok = r.status >= 400 && r.status < 500 && (!c->want || r.status == c->want);
        cJSON *j = cJSON_Parse(r.body);
        cJSON *e = cJSON_GetObjectItem(j, "error");
        bool shaped = cJSON_IsString(cJSON_GetObjectItem(e, "message")) && cJSON_IsString(cJSON_GetObjectItem(e, "type"));
        if (!ok || !shaped)
            fprintf(stderr, "  case %zu %s %s %.60s: status %ld (want %ld), body %.200s\n", i, c->method, c->path,
                    c->body ? c->body : "", r.status, c->want, r.body);
        CU_ASSERT(ok);
        CU_ASSERT(shaped);
        cJSON_Delete(j);
        srvc_resp_free(&r);
    }
    /* a body with a NUL byte inside */
    const char nul_body[] = "{\"prompt\":\"a\0b\"}";
    srvc_resp r;
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", nul_body, sizeof nul_body - 1, NULL, &r), 0);
    CU_ASSERT(r.status >= 400 && r.status < 500);
    srvc_resp_free(&r);
    /* invalid UTF-8 in a prompt is the client's text: it must not break the JSON we send back */
    const char bad_utf8[] = "{\"prompt\":\"\xff\xfe caf\xc3\",\"max_tokens\":3}";
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", bad_utf8, sizeof bad_utf8 - 1, NULL, &r), 0);
    CU_ASSERT(r.status == 200 || (r.status >= 400 && r.status < 500));
    cJSON *j = cJSON_Parse(r.body);
    CU_ASSERT_PTR_NOT_NULL(j);
    cJSON_Delete(j);
    srvc_resp_free(&r);
    /* the server is still fine */
    long st;
    cJSON *h = srvc_get_json(&g_srv, "/health", &st);
    CU_ASSERT_EQUAL(st, 200);
    cJSON_Delete(h);
}

static void test_body_limit(void) {
    size_t n = 200 * 1024;
    char *big = malloc(n + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    strcpy(big, "{\"prompt\":\"");
    size_t o = strlen(big);
    memset(big + o, 'a', n);
    strcpy(big + o + n, "\"}");
    srvc_resp r;
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", big, strlen(big), NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "65536"));
    srvc_resp_free(&r);
    /* chunked upload: no Content-Length, the limit applies as it streams in */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", big, strlen(big), chunked, &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    srvc_resp_free(&r);
    free(big);
    long st;
    cJSON *h = srvc_get_json(&g_srv, "/health", &st);
    CU_ASSERT_EQUAL(st, 200);
    cJSON_Delete(h);
}

static void test_prompt_too_long(void) {
    /* 2100 token ids > the 2048-token context */
    size_t cap = 2100 * 8 + 64, o = 0;
    char *b = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    o += (size_t)snprintf(b + o, cap - o, "{\"prompt\":[");
    for (int i = 0; i < 2100; i++) o += (size_t)snprintf(b + o, cap - o, "%s%d", i ? "," : "", 100 + i);
    snprintf(b + o, cap - o, "]}");
    srvc_resp r;
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", b, strlen(b), NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "2048"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "2100"));
    srvc_resp_free(&r);
    free(b);
    /* a prompt that fits, with max_tokens past the context */
    const char *b2 = "{\"prompt\":\"Hello\",\"max_tokens\":5000}";
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/completions", b2, strlen(b2), NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "5000"));
    srvc_resp_free(&r);
    /* a long chat (text): 400 names the token count */
    size_t n = 60000;
    char *chat = malloc(n + 128);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chat);
    o = (size_t)sprintf(chat, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (size_t i = 0; i < n / 6; i++) o += (size_t)sprintf(chat + o, "%s", "ab cd ");
    sprintf(chat + o, "\"}]}");
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "POST", "/v1/chat/completions", chat, strlen(chat), NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "maximum context length is 2048 tokens"));
    srvc_resp_free(&r);
    free(chat);
}

/* ---- disconnects and overload ------------------------------------------- */
typedef struct abort_ctx {
    size_t got;
} abort_ctx;

static size_t abort_after_first(char *data, size_t size, size_t nmemb, void *user) {
    (void)data;
    abort_ctx *a = user;
    a->got += size * nmemb;
    return 0; /* hang up after the first bytes */
}

static double wait_slots_idle(void) {
    double active = -1;
    for (int i = 0; i < 200; i++) { /* 20 s */
        active = srvc_metric(&g_srv, "llmhost_slots_active");
        if (active == 0) break;
        usleep(100000);
    }
    return active;
}

static void test_disconnect_mid_stream(void) {
    double cancelled0 = srvc_metric(&g_srv, "llmhost_requests_cancelled_total");
    double gen0 = srvc_metric(&g_srv, "llmhost_tokens_generated_total");
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", g_srv.port);
    const char *body = "{\"prompt\":\"Hello, my name is\",\"max_tokens\":2000,\"stream\":true}";
    abort_ctx a = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, abort_after_first);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    CU_ASSERT_EQUAL(rc, CURLE_WRITE_ERROR);
    CU_ASSERT(a.got > 0);
    /* the slot frees well before 2000 tokens could be generated */
    CU_ASSERT_EQUAL(wait_slots_idle(), 0);
    double cancelled1 = srvc_metric(&g_srv, "llmhost_requests_cancelled_total");
    double gen1 = srvc_metric(&g_srv, "llmhost_tokens_generated_total");
    CU_ASSERT_EQUAL(cancelled1, cancelled0 + 1);
    CU_ASSERT(gen1 - gen0 < 1500);
    usleep(300000);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_tokens_generated_total"), gen1); /* nothing runs on */

    /* a non-streaming client that gives up (timeout) also frees its slot */
    c = curl_easy_init();
    srvc_resp r = {0};
    const char *body2 = "{\"prompt\":\"Hello, my name is\",\"max_tokens\":2000}";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body2);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    free(r.body);
    CU_ASSERT_EQUAL(rc, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT_EQUAL(wait_slots_idle(), 0);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_requests_cancelled_total"), cancelled0 + 2);
}

typedef struct par_req {
    const char *path, *body;
    srvc_resp r;
} par_req;

static void *par_thread(void *arg) {
    par_req *p = arg;
    srvc_http(&g_srv, "POST", p->path, p->body, strlen(p->body), NULL, &p->r);
    return NULL;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *user) {
    (void)data;
    (void)user;
    return size * nmemb;
}

/* A long streamed request that the client ends after 3 s (or that ends). */
static void *busy_thread(void *arg) {
    CURLcode *rc = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", g_srv.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"prompt\":\"Hello, my name is\",\"max_tokens\":1900,\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return NULL;
}

/* a queued request whose client leaves frees its queue place at once */
static void test_cancel_queued(void) {
    CURLcode busy_rc[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, busy_thread, &busy_rc[i]);
    for (int i = 0; i < 100 && srvc_metric(&g_srv, "llmhost_slots_active") < 2; i++) usleep(20000);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_slots_active"), 2);
    double cancelled0 = srvc_metric(&g_srv, "llmhost_requests_cancelled_total");
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", g_srv.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"prompt\":\"Hi\",\"max_tokens\":4,\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    CU_ASSERT_EQUAL(rc, CURLE_OPERATION_TIMEDOUT);
    double depth = -1, active = -1;
    for (int i = 0; i < 50; i++) {
        depth = srvc_metric(&g_srv, "llmhost_queue_depth");
        if (depth == 0) break;
        usleep(20000);
    }
    active = srvc_metric(&g_srv, "llmhost_slots_active");
    CU_ASSERT_EQUAL(depth, 0);
    CU_ASSERT_EQUAL(active, 2); /* the two long ones still run */
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_requests_cancelled_total"), cancelled0 + 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT(busy_rc[i] == CURLE_OK || busy_rc[i] == CURLE_OPERATION_TIMEDOUT);
    }
    CU_ASSERT_EQUAL(wait_slots_idle(), 0);
}

static void test_overload_429(void) {
    /* 2 slots + 2 queued: of 8 long requests at once, some get 429 */
    enum { N = 8 };
    par_req reqs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        reqs[i].path = "/v1/completions";
        reqs[i].body = "{\"prompt\":\"Hello, my name is\",\"max_tokens\":120}";
        memset(&reqs[i].r, 0, sizeof reqs[i].r);
        pthread_create(&th[i], NULL, par_thread, &reqs[i]);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (reqs[i].r.status == 200) ok++;
        else if (reqs[i].r.status == 429) {
            busy++;
            CU_ASSERT_PTR_NOT_NULL(strstr(reqs[i].r.body, "\"error\""));
        } else {
            fprintf(stderr, "  overload: status %ld: %.200s\n", reqs[i].r.status, reqs[i].r.body);
        }
        srvc_resp_free(&reqs[i].r);
    }
    CU_ASSERT_EQUAL(ok + busy, N);
    CU_ASSERT(ok >= 4);
    CU_ASSERT(busy >= 1);
    CU_ASSERT(srvc_metric(&g_srv, "llmhost_requests_total{code=\"429\"}") >= busy);
}

/* ---- adapters ----------------------------------------------------------- */
/* Greedy ids from a direct llmh generation with `names`/`scales`. */
static int direct_greedy(const char *prompt, const char *const *names, const float *scales, size_t n, int max_tokens,
                         llmh_token *out) {
    llmh_token *toks = NULL;
    size_t nt = 0;
    int got = -1;
    if (direct_open() || llmh_tokenize(g_direct.model, prompt, strlen(prompt), LLMH_ENCODE_PARSE_SPECIAL, &toks, &nt))
        goto out;
    got = direct_run(toks, nt, names, scales, n, NULL, 0, max_tokens, out);
out:
    if (got < 0) fprintf(stderr, "direct generation: %s\n", llmh_last_error());
    free(toks);
    return got;
}

typedef struct ad_case {
    const char *ref;           /* reference file */
    const char *request;       /* JSON fields selecting the adapters */
    const char *names[2];
    float scales[2];
    size_t n;
} ad_case;

static const ad_case g_ad_cases[] = {
    {"ref-qwen2-tiny-f32-lora-a", "\"model\":\"a\"", {"a"}, {1.0f}, 1},
    {"ref-qwen2-tiny-f32-lora-b0.5", "\"adapters\":[{\"name\":\"b\",\"scale\":0.5}]", {"b"}, {0.5f}, 1},
    {"ref-qwen2-tiny-f32-lora-a0.7-b1.3", "\"adapters\":[{\"name\":\"a\",\"scale\":0.7},{\"name\":\"b\",\"scale\":1.3}]",
     {"a", "b"}, {0.7f, 1.3f}, 2},
    {"ref-qwen2-tiny-f32", "\"model\":\"qwen2-tiny\"", {NULL}, {0}, 0},
};

static cJSON *load_ref(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "reference/%s.json", name);
    char *path = llmh_test_shared(rel);
    size_t len = 0;
    char *text = llmh_test_read_file(path, &len);
    free(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static void build_ad_body(char *buf, size_t cap, const ad_case *c, const char *prompt, int n) {
    snprintf(buf, cap, "{%s,\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"return_token_ids\":true}", c->request,
             prompt, n);
}

static void check_ids(cJSON *resp, const llmh_token *want, int n, const char *label) {
    cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0), "token_ids");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(ids), n);
    int same = 0;
    for (int i = 0; i < n && i < cJSON_GetArraySize(ids); i++) {
        if (cJSON_GetArrayItem(ids, i)->valueint != want[i]) break;
        same++;
    }
    if (same != n) fprintf(stderr, "  %s: the first %d of %d greedy ids agree\n", label, same, n);
    CU_ASSERT_EQUAL(same, n);
}

static void test_adapters(void) {
    long st;
    char body[1024];
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b-peft");
    snprintf(body, sizeof body, "{\"name\":\"a\",\"path\":\"%s\"}", pa);
    cJSON *j = srvc_post_json(&g_srv, "/v1/adapters", body, &st);
    CU_ASSERT_EQUAL(st, 201);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j, "rank")->valueint, 4);
    cJSON_Delete(j);
    j = srvc_post_json(&g_srv, "/v1/adapters", body, &st);
    CU_ASSERT_EQUAL(st, 409); /* already loaded */
    cJSON_Delete(j);
    snprintf(body, sizeof body, "{\"name\":\"b\",\"path\":\"%s\",\"scale\":1.0}", pb);
    j = srvc_post_json(&g_srv, "/v1/adapters", body, &st);
    CU_ASSERT_EQUAL(st, 201);
    cJSON_Delete(j);
    j = srvc_get_json(&g_srv, "/v1/adapters", &st);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 2);
    cJSON_Delete(j);
    j = srvc_get_json(&g_srv, "/v1/models", &st);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 3);
    cJSON_Delete(j);

    /* each adapter set alone: the reference's greedy ids, and a direct run's */
    size_t n_cases = sizeof g_ad_cases / sizeof g_ad_cases[0];
    for (size_t i = 0; i < n_cases; i++) {
        const ad_case *c = &g_ad_cases[i];
        cJSON *ref = load_ref(c->ref);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        cJSON *rc;
        cJSON_ArrayForEach(rc, cJSON_GetObjectItem(ref, "cases")) {
            const char *prompt = cJSON_GetObjectItem(rc, "prompt")->valuestring;
            if (strchr(prompt, '\n') || strchr(prompt, '"')) continue; /* keep the JSON by hand simple */
            cJSON *g = cJSON_GetObjectItem(rc, "greedy");
            int ng = cJSON_GetArraySize(g);
            llmh_token want[64], direct[64];
            for (int k = 0; k < ng && k < 64; k++) want[k] = cJSON_GetArrayItem(g, k)->valueint;
            int nd = direct_greedy(prompt, c->names, c->scales, c->n, ng, direct);
            CU_ASSERT_EQUAL(nd, ng);
            build_ad_body(body, sizeof body, c, prompt, ng);
            j = srvc_post_json(&g_srv, "/v1/completions", body, &st);
            CU_ASSERT_EQUAL(st, 200);
            char label[256];
            snprintf(label, sizeof label, "%s '%s' vs llama.cpp", c->ref, prompt);
            check_ids(j, want, ng, label);
            snprintf(label, sizeof label, "%s '%s' vs direct llmh", c->ref, prompt);
            if (nd == ng) check_ids(j, direct, ng, label);
            cJSON_Delete(j);
        }
        cJSON_Delete(ref);
    }

    /* all four sets at once (2 slots: batched in pairs, the rest queued) */
    enum { NC = 4 };
    par_req reqs[NC];
    char bodies[NC][1024];
    pthread_t th[NC];
    for (size_t i = 0; i < NC; i++) {
        build_ad_body(bodies[i], sizeof bodies[i], &g_ad_cases[i], "Hello, my name is", 24);
        reqs[i].path = "/v1/completions";
        reqs[i].body = bodies[i];
        memset(&reqs[i].r, 0, sizeof reqs[i].r);
        pthread_create(&th[i], NULL, par_thread, &reqs[i]);
    }
    for (size_t i = 0; i < NC; i++) {
        pthread_join(th[i], NULL);
        if (reqs[i].r.status != 200) fprintf(stderr, "  %s at once: status %ld: %.200s\n", g_ad_cases[i].ref, reqs[i].r.status, reqs[i].r.body);
        CU_ASSERT_EQUAL(reqs[i].r.status, 200);
        cJSON *ref = load_ref(g_ad_cases[i].ref);
        cJSON *g = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "cases"), 0), "greedy");
        llmh_token want[64];
        int ng = cJSON_GetArraySize(g);
        for (int k = 0; k < ng && k < 64; k++) want[k] = cJSON_GetArrayItem(g, k)->valueint;
        cJSON *resp = cJSON_Parse(reqs[i].r.body);
        check_ids(resp, want, ng, g_ad_cases[i].ref);
        cJSON_Delete(resp);
        cJSON_Delete(ref);
        srvc_resp_free(&reqs[i].r);
    }

    /* rescale b to 0.5 in the store: naming b at 1.0 now gives lora-b0.5 */
    j = srvc_post_json(&g_srv, "/v1/adapters", "{\"name\":\"b\",\"scale\":0.5}", &st);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(j, "scale")->valuedouble, 0.5, 1e-9);
    cJSON_Delete(j);
    {
        cJSON *ref = load_ref("ref-qwen2-tiny-f32-lora-b0.5");
        cJSON *g = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "cases"), 0), "greedy");
        llmh_token want[64];
        int ng = cJSON_GetArraySize(g);
        for (int k = 0; k < ng && k < 64; k++) want[k] = cJSON_GetArrayItem(g, k)->valueint;
        snprintf(body, sizeof body,
                 "{\"model\":\"b\",\"prompt\":\"Hello, my name is\",\"max_tokens\":%d,\"return_token_ids\":true}", ng);
        j = srvc_post_json(&g_srv, "/v1/completions", body, &st);
        CU_ASSERT_EQUAL(st, 200);
        check_ids(j, want, ng, "b rescaled to 0.5");
        cJSON_Delete(j);
        cJSON_Delete(ref);
    }

    /* unload: the name disappears from the API */
    srvc_resp r;
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "DELETE", "/v1/adapters/a", NULL, 0, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    srvc_resp_free(&r);
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "DELETE", "/v1/adapters", "{\"name\":\"b\"}", 12, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    srvc_resp_free(&r);
    j = srvc_post_json(&g_srv, "/v1/completions", "{\"model\":\"a\",\"prompt\":\"Hello\"}", &st);
    CU_ASSERT_EQUAL(st, 404);
    cJSON_Delete(j);
    j = srvc_get_json(&g_srv, "/v1/adapters", &st);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 0);
    cJSON_Delete(j);
    free(pa);
    free(pb);
}

static void test_metrics(void) {
    srvc_resp r;
    CU_ASSERT_EQUAL(srvc_http(&g_srv, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    const char *names[] = {"llmhost_requests_total{code=\"200\"}", "llmhost_requests_total{code=\"400\"}",
                           "llmhost_tokens_generated_total", "llmhost_tokens_per_second", "llmhost_queue_depth",
                           "llmhost_slots_active", "llmhost_kv_cells_used", "llmhost_kv_cells_total"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(r.body, names[i])) fprintf(stderr, "  /metrics lacks %s\n", names[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, names[i]));
    }
    srvc_resp_free(&r);
    CU_ASSERT(srvc_metric(&g_srv, "llmhost_tokens_generated_total") > 0);
    CU_ASSERT(srvc_metric(&g_srv, "llmhost_kv_cells_used") > 0);
    CU_ASSERT_EQUAL(srvc_metric(&g_srv, "llmhost_kv_cells_total"), 2 * 2048);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"health and models", test_health_models},
        {"chat, plain and streamed", test_chat},
        {"completions, streamed, stop strings", test_completion_stream_and_stop},
        {"chat with tools and tool messages (the model's Jinja template)", test_chat_tools},
        {"tool-call blocks in generated text", test_tool_call_parse},
        {"malformed-request corpus: only 4xx", test_malformed_corpus},
        {"body limit: 413", test_body_limit},
        {"prompt longer than the context: 400", test_prompt_too_long},
        {"client disconnects mid-stream", test_disconnect_mid_stream},
        {"a queued client leaves: its place frees", test_cancel_queued},
        {"overload: 429", test_overload_429},
        {"adapters per request, load/rescale/unload over HTTP", test_adapters},
        {"metrics", test_metrics},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {{"serve", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

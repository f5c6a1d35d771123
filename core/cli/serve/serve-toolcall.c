/* serve-toolcall.c — tool calls in generated text (Hermes/Qwen form) to
 * OpenAI's `tool_calls`. Untrusted text: every block must parse, or the
 * text stays plain content. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

cJSON *srv_parse_tool_calls(const char *text, const char *id_prefix, char **content);

static bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

cJSON *srv_parse_tool_calls(const char *text, const char *id_prefix, char **content) {
    static const char open_tag[] = "<tool_call>", close_tag[] = "</tool_call>";
    const size_t lo = sizeof open_tag - 1, lc = sizeof close_tag - 1;
    *content = NULL;
    if (!text || !strstr(text, open_tag)) return NULL;
    cJSON *calls = cJSON_CreateArray();
    char *rest = malloc(strlen(text) + 1);
    size_t n_rest = 0;
    if (!calls || !rest) goto fail;
    const char *p = text;
    for (int k = 0;; k++) {
        const char *a = strstr(p, open_tag);
        size_t keep = a ? (size_t)(a - p) : strlen(p);
        memcpy(rest + n_rest, p, keep);
        n_rest += keep;
        if (!a) break;
        const char *b = strstr(a + lo, close_tag);
        if (!b) goto fail;
        cJSON *call = cJSON_ParseWithLength(a + lo, (size_t)(b - (a + lo)));
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(call, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(call, "arguments");
        if (!cJSON_IsObject(call) || !cJSON_IsString(name) || !name->valuestring[0] ||
            (args && !cJSON_IsObject(args) && !cJSON_IsString(args))) {
            cJSON_Delete(call);
            goto fail;
        }
        char *args_text = !args ? strdup("{}") : cJSON_IsString(args) ? strdup(args->valuestring) : cJSON_PrintUnformatted(args);
        char id[96];
        snprintf(id, sizeof id, "call_%.64s_%d", id_prefix ? id_prefix : "", k);
        cJSON *tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(fn, "name", name->valuestring);
        cJSON_AddStringToObject(fn, "arguments", args_text ? args_text : "{}");
        free(args_text);
        cJSON_AddItemToArray(calls, tc);
        cJSON_Delete(call);
        p = b + lc;
    }
    rest[n_rest] = 0;
    char *t = rest;
    while (is_space(*t)) t++;
    size_t tl = strlen(t);
    while (tl && is_space(t[tl - 1])) t[--tl] = 0;
    if (tl) *content = strdup(t);
    free(rest);
    return calls;
fail:
    cJSON_Delete(calls);
    free(rest);
    return NULL;
}

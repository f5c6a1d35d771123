/*
 * llmh-template.h — Jinja chat templates (the model's own
 * tokenizer.chat_template, rendered by llmhost's Jinja-subset engine).
 *
 * The engine implements what Hugging Face chat templates use (see
 * docs/chat-templates.md for the full list): {{ }}, {% if/elif/else %},
 * {% for %} with loop.* and loop filters, {% set %} (also namespace()
 * attributes and block sets), {% macro %}, {% break/continue %}, filters
 * (tojson as transformers' json.dumps, trim, length, join, default, map,
 * selectattr, ...), tests (defined, none, string, mapping, ...), Python
 * string/dict methods (startswith, split, strip, items, get, ...), slices and
 * negative indexes, whitespace control ({%- -%}, {{- -}}) with the
 * trim_blocks/lstrip_blocks options transformers sets, and the globals
 * raise_exception(), strftime_now(), range(), namespace().
 *
 * Errors never abort: a malformed template or a failing render returns an
 * error status with a message (llmh_last_error()) naming the template
 * line:col, e.g. "template line 3:14: unknown filter 'frobnicate'".
 *
 * Status codes: LLMH_ERR_INVALID_ARG for a NULL argument or malformed /
 * wrongly typed JSON input; LLMH_ERR_FORMAT when the template does not
 * parse; LLMH_ERR_INVALID_ARG when rendering fails (raise_exception() in
 * the template, a type error such as adding a string to a list, an
 * undefined variable used in arithmetic); LLMH_ERR_NO_MEMORY; and
 * LLMH_ERR_UNSUPPORTED (chat rendering only) when the model has no template.
 */
#ifndef LLMH_TEMPLATE_H
#define LLMH_TEMPLATE_H

#include "llmh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Render `template_text` (NUL-terminated Jinja) with the variables of
 * `context_json`, a JSON object (NULL or "" = no variables). Numbers in the
 * JSON that are integral and within ±2^53 become integers, others floats.
 * On success *out is a malloc'd NUL-terminated string (free()). */
LLMH_API llmh_status llmh_template_render(const char *template_text, const char *context_json,
                                          char **out);

/* Render a conversation with the model's chat template (the manifest's
 * [generate] chat_template override first, else tokenizer.chat_template).
 *
 * messages_json: a JSON array of OpenAI-style messages, each an object with
 *   "role" (any string: system, user, assistant, tool, ...) and usually
 *   "content"; other keys (tool_calls, tool_call_id, name,
 *   reasoning_content) are passed to the template as they are, with these
 *   normalizations: a "content" that is an array of parts all of type
 *   "text" becomes the concatenation of their "text" strings, and a
 *   tool_calls[i].function.arguments that is a string holding a JSON object
 *   (OpenAI's wire form) becomes that object (what HF templates expect);
 *   a "tool_calls" that is null or [] is dropped (Llama 3.x tests
 *   `'tool_calls' in message`).
 *   A "content": null is passed as null (DeepSeek's templates test
 *   `is not none`); when the render then fails, it is tried once more with
 *   those contents as "" (Qwen3's template reads content as a string).
 * tools_json: NULL for none, else a JSON array of tool definitions
 *   (OpenAI's {"type": "function", "function": {...}} objects) given to the
 *   template as `tools`.
 * The template also sees add_generation_prompt, bos_token and eos_token (the
 * tokenizer's BOS/EOS token texts, "" when it has none).
 *
 * BOS rule (as llmh_chat_render): when the tokenizer adds BOS by itself
 * (add_bos_default), a BOS text at the very start of the rendering is
 * removed, so encode the result with LLMH_ENCODE_ADD_BOS per the tokenizer's
 * default and LLMH_ENCODE_PARSE_SPECIAL.
 *
 * When the template cannot be parsed, the family renderers (ChatML,
 * Llama-3, Llama-2) are used if the family is recognized and every message
 * has a string content and a system/user/assistant role (a warning is
 * logged once per process); otherwise the parse error is returned.
 * *out is malloc'd (free()). */
LLMH_API llmh_status llmh_chat_render_json(const llmh_model *m, const char *messages_json,
                                           const char *tools_json, int add_generation_prompt,
                                           char **out);

/* llmh_chat_render_json with extra template variables: kwargs_json is NULL
 * or a JSON object whose members are added to the template's variables
 * (e.g. {"enable_thinking": false} for Qwen3, {"date_string": "01 Jan 2025"}
 * for Llama 3.x); they cannot replace messages, tools,
 * add_generation_prompt, bos_token or eos_token. */
LLMH_API llmh_status llmh_chat_render_json_kw(const llmh_model *m, const char *messages_json,
                                              const char *tools_json, const char *kwargs_json,
                                              int add_generation_prompt, char **out);

#ifdef __cplusplus
}
#endif

#endif

/*
 * chat-template.h — chat prompt rendering (internal core API).
 *
 * The public renderers (llmh_chat_render in llmh.h, llmh_chat_render_json in
 * llmh-template.h) execute the model's chat template (tokenizer.chat_template
 * or the manifest override) with the Jinja engine (jinja.h), through
 * llmh__chat_render_jinja below. Only when the template cannot be parsed do
 * they fall back to the family renderers: the family is recognized from
 * marker strings and the conversation is rendered by hand-written code that
 * produces what the family's reference templates produce (a warning is
 * logged once per process). Families:
 *
 *   chatml  "<|im_start|>" in the template (Qwen, Qwen2.5, OpenHermes, ...)
 *           <|im_start|>ROLE\nCONTENT<|im_end|>\n per message; generation
 *           prompt "<|im_start|>assistant\n". When the template carries a
 *           literal default system prompt ("<|im_start|>system\nYou are
 *           Qwen, created by Alibaba Cloud. You are a helpful
 *           assistant.<|im_end|>\n" in Qwen2.5's) it is emitted when the
 *           conversation does not start with a system message.
 *   llama3  "<|start_header_id|>" (Meta-Llama-3-Instruct):
 *           <|start_header_id|>ROLE<|end_header_id|>\n\nTRIM(CONTENT)<|eot_id|>
 *           per message; generation prompt
 *           "<|start_header_id|>assistant<|end_header_id|>\n\n". Templates
 *           with "Cutting Knowledge Date" (Llama 3.1/3.2) always open with a
 *           system block "Cutting Knowledge Date: December 2023\nToday Date:
 *           26 Jul 2024\n\n" + TRIM(system message); the date is the
 *           templates' own fallback (strftime_now is not evaluated).
 *   llama2  "[INST]" (Llama-2-chat): "<s>[INST] " + STRIP(CONTENT) +
 *           " [/INST]" per user turn, the first one prefixed by
 *           "<<SYS>>\nSYSTEM\n<</SYS>>\n\n" when the conversation starts with
 *           a system message; " " + STRIP(CONTENT) + " </s>" per assistant
 *           turn. Roles must alternate user/assistant after the optional
 *           system message. There is no generation prompt: the text ends
 *           with " [/INST]".
 *
 * BOS: the reference templates write the BOS text ("<|begin_of_text|>",
 * "<s>") at the start. By default (add_bos = false) the rendered text does
 * NOT start with it, because the tokenizer adds BOS itself for these vocabs
 * (tokenizer.ggml.add_bos_token = true): encode the text with
 * LLMH_ENCODE_ADD_BOS per the tokenizer's add_bos_default() and
 * LLMH_ENCODE_PARSE_SPECIAL (so that markers become their control tokens).
 * Llama-2's later turns keep their "<s>" in the text (only the leading one is
 * the tokenizer's). Set add_bos to get the template's exact text.
 *
 * TRIM/STRIP remove leading and trailing whitespace as Python's str.strip()
 * does (ASCII and Unicode white space).
 *
 * The public llmh_chat_render() / llmh_chat_render_json() follow the same
 * BOS rule with the Jinja engine: the template gets the tokenizer's BOS text
 * as bos_token, and when the tokenizer adds BOS itself (add_bos_default) a
 * BOS text at the very start of the rendering is removed (later ones, such
 * as Llama-2's per-turn "<s>", stay). llmh_chat_end_of_turn() uses the
 * family's stop marker.
 */
#ifndef LLMH_CHAT_TEMPLATE_H
#define LLMH_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "jinja.h"
#include "llmh.h"

typedef enum llmh_chat_family {
    LLMH_CHAT_UNKNOWN = 0,
    LLMH_CHAT_CHATML = 1,
    LLMH_CHAT_LLAMA3 = 2,
    LLMH_CHAT_LLAMA2 = 3
} llmh_chat_family;

/* Messages are llmh_chat_message (llmh.h): role "system", "user" or
 * "assistant"; role and content borrowed, NUL-terminated UTF-8. */

/* What the renderer knows about one template. Fill with
 * llmh__chat_template_init, release with llmh__chat_template_clear. */
typedef struct llmh_chat_template {
    llmh_chat_family family;
    char *default_system;  /* owned (free()); chatml's default system prompt, or NULL */
    bool knowledge_date;   /* llama3: the Llama 3.1+ "Cutting Knowledge Date" system block */
} llmh_chat_template;

typedef struct llmh_chat_render_params {
    bool add_generation_prompt; /* end with the assistant header (chatml, llama3) */
    bool add_bos;               /* write the leading BOS text (see above); default false */
} llmh_chat_render_params;

/* "chatml", "llama3", "llama2" or "unknown". Never NULL. */
const char *llmh__chat_family_name(llmh_chat_family family);

/* Family by name ("chatml" or "qwen", "llama3", "llama2"); LLMH_ERR_NOT_FOUND
 * with a message listing the names otherwise. */
llmh_status llmh__chat_family_parse(const char *name, llmh_chat_family *out);

/* Family of a template text (borrowed, NUL-terminated). NULL/empty text or
 * no known marker: LLMH_ERR_UNSUPPORTED with a message saying which markers
 * were looked for. */
llmh_status llmh__chat_detect(const char *tmpl, llmh_chat_family *out);

/* Detect `tmpl` (may be NULL) and extract what rendering needs. When the
 * family cannot be detected and `fallback` is not LLMH_CHAT_UNKNOWN, the
 * fallback family is used (with no default system prompt); otherwise the
 * detection error is returned. On failure *t is left cleared. */
llmh_status llmh__chat_template_init(llmh_chat_template *t, const char *tmpl,
                                     llmh_chat_family fallback);

/* Free what init allocated; *t becomes cleared. NULL is a no-op. */
void llmh__chat_template_clear(llmh_chat_template *t);

/* Text that ends an assistant turn: "<|im_end|>", "<|eot_id|>", "</s>"
 * (use it as a stop string, alongside the vocab's EOS/EOT ids); NULL for
 * LLMH_CHAT_UNKNOWN. Static storage. */
const char *llmh__chat_stop_marker(llmh_chat_family family);

/* BOS text the family's templates write: "<|begin_of_text|>" (llama3), "<s>"
 * (llama2); NULL for chatml (Qwen has no BOS). Static storage. */
const char *llmh__chat_bos_text(llmh_chat_family family);

/* Render `n` messages (borrowed). On success *out is a NUL-terminated string
 * owned by the caller (free()) and *out_len its length (out_len may be
 * NULL). params may be NULL (no generation prompt, no BOS). Errors
 * (LLMH_ERR_INVALID_ARG) name the message index and the problem: a NULL
 * role/content, an unknown role, a misplaced system message, llama2's
 * user/assistant alternation. */
llmh_status llmh__chat_render(const llmh_chat_template *t, const llmh_chat_message *msgs,
                              size_t n, const llmh_chat_render_params *params, char **out,
                              size_t *out_len);

/* Render with the Jinja engine: `tmpl` (NUL-terminated) with the variables
 * messages (a cJSON array, borrowed), tools (a cJSON array, or NULL/null for
 * none: then `tools` is undefined in the template), the members of kwargs (a
 * cJSON object or NULL; messages, tools, add_generation_prompt, bos_token
 * and eos_token cannot be overridden), add_generation_prompt, bos_token and
 * eos_token (NULL = ""). With strip_bos, a bos_token at the very start of
 * the result is removed. opts may be NULL (jinja.h). *parse_failed (may be
 * NULL) tells a template that does not parse (LLMH_ERR_FORMAT) from a
 * render error. No template: LLMH_ERR_UNSUPPORTED. *out is malloc'd. */
llmh_status llmh__chat_render_jinja(const char *tmpl, const cJSON *messages, const cJSON *tools,
                                    const cJSON *kwargs, bool add_generation_prompt,
                                    const char *bos_token, const char *eos_token, bool strip_bos,
                                    const llmh_jinja_opts *opts, bool *parse_failed, char **out);

#endif

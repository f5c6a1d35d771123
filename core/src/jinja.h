/*
 * jinja.h — the Jinja-subset template engine behind llmh-template.h
 * (internal core API).
 *
 * A template is parsed once into a tree (llmh__jinja_parse) and rendered any
 * number of times against a cJSON object of variables (llmh__jinja_render);
 * a parsed template is immutable and may be rendered from several threads
 * at once. Whitespace follows Hugging Face's chat-template environment:
 * trim_blocks and lstrip_blocks on, keep_trailing_newline off, no
 * autoescape. Values are Python's: none, bool, int, float, str (UTF-8,
 * indexed by code point), list, dict (insertion-ordered), plus undefined.
 *
 * Errors are returned, never raised: llmh_set_error() gets
 * "template line L:C: ..." (1-based) naming where the problem is. Rendering
 * is bounded (output and memory size, loop steps, macro recursion), so a
 * hostile template fails with a message instead of exhausting the process.
 */
#ifndef LLMH_JINJA_H
#define LLMH_JINJA_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "llmh.h"

typedef struct llmh_jinja llmh_jinja;

typedef struct llmh_jinja_opts {
    int64_t now;       /* Unix time strftime_now() formats (local time); 0 = time(NULL) */
    size_t max_output; /* output size limit in bytes; 0 = 64 MiB */
    size_t max_string; /* size limit of one string value; 0 (or more than 64 MiB) = 64 MiB */
    uint64_t max_steps; /* statements + loop iterations; 0 = 5,000,000 */
} llmh_jinja_opts;

/* Parse `len` bytes of template text (need not be NUL-terminated). Errors:
 * LLMH_ERR_FORMAT naming line:col; LLMH_ERR_NO_MEMORY. */
llmh_status llmh__jinja_parse(const char *text, size_t len, llmh_jinja **out);

void llmh__jinja_free(llmh_jinja *t);

/* Render with the members of `vars` (a cJSON object, or NULL) as variables.
 * opts may be NULL. *out is malloc'd, NUL-terminated; *out_len (may be NULL)
 * its length. Errors: LLMH_ERR_INVALID_ARG (raise_exception(), type errors,
 * limits, all naming line:col), LLMH_ERR_NO_MEMORY. */
llmh_status llmh__jinja_render(const llmh_jinja *t, const cJSON *vars, const llmh_jinja_opts *opts,
                               char **out, size_t *out_len);

#endif

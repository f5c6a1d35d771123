/*
 * tok-harness.h — loading tokenizer plugins and GGUF metadata for the
 * tokenizer tests and the tokenizer benchmark, by dlopen'ing the built
 * plugins directly (paths given by the build as TOK_*_PLUGIN).
 */
#ifndef LLMH_TOK_HARNESS_H
#define LLMH_TOK_HARNESS_H

#include <stddef.h>

#include "llmh-plugin.h"

typedef struct tokh_plugin {
    void *dl;
    const llmh_plugin_desc *desc;
    void *state;
} tokh_plugin;

/* Load and init the plugin at `path`; 0 on success (prints why not). */
int tokh_plugin_load(tokh_plugin *p, const char *path, const llmh_host_api *host);
void tokh_plugin_unload(tokh_plugin *p);
static inline const llmh_tokenizer_iface *tokh_tok_iface(const tokh_plugin *p) {
    return (const llmh_tokenizer_iface *)p->desc->iface;
}

/* A GGUF file opened through the gguf format plugin. */
typedef struct tokh_gguf {
    const llmh_format_iface *fi;
    llmh_model_file *file;
    llmh_kv_list meta;
} tokh_gguf;

int tokh_gguf_open(tokh_gguf *g, const tokh_plugin *gguf, const char *path);
void tokh_gguf_close(tokh_gguf *g);

/* Encode into a malloc'd array (NULL + *n = 0 on failure; status in *st). */
llmh_token *tokh_encode(const llmh_tokenizer_iface *ti, const llmh_tokenizer *tok, const char *text,
                        size_t len, uint32_t flags, size_t *n, llmh_status *st);
/* Decode into a malloc'd, NUL-terminated buffer. */
char *tokh_decode(const llmh_tokenizer_iface *ti, const llmh_tokenizer *tok, const llmh_token *ids,
                  size_t n, uint32_t flags, size_t *len, llmh_status *st);

#endif

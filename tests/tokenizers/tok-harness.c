/* tok-harness.c — see tok-harness.h. */
#include "tok-harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tokh_plugin_load(tokh_plugin *p, const char *path, const llmh_host_api *host) {
    memset(p, 0, sizeof(*p));
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        fprintf(stderr, "cannot load plugin %s: %s\n", path, dlerror());
        return -1;
    }
    llmh_plugin_describe_fn fn = (llmh_plugin_describe_fn)dlsym(p->dl, LLMH_PLUGIN_SYMBOL);
    if (!fn || !(p->desc = fn())) {
        fprintf(stderr, "plugin %s has no descriptor\n", path);
        dlclose(p->dl);
        p->dl = NULL;
        return -1;
    }
    if (p->desc->init && p->desc->init(host, &p->state) != LLMH_OK) {
        fprintf(stderr, "plugin %s failed to init\n", path);
        dlclose(p->dl);
        p->dl = NULL;
        return -1;
    }
    return 0;
}

void tokh_plugin_unload(tokh_plugin *p) {
    if (!p->dl) return;
    if (p->desc->fini) p->desc->fini(p->state);
    dlclose(p->dl);
    memset(p, 0, sizeof(*p));
}

int tokh_gguf_open(tokh_gguf *g, const tokh_plugin *gguf, const char *path) {
    memset(g, 0, sizeof(*g));
    g->fi = (const llmh_format_iface *)gguf->desc->iface;
    if (g->fi->open(gguf->state, path, NULL, &g->file) != LLMH_OK) return -1;
    if (g->fi->get_metadata(g->file, &g->meta) != LLMH_OK) {
        g->fi->close(g->file);
        g->file = NULL;
        return -1;
    }
    return 0;
}

void tokh_gguf_close(tokh_gguf *g) {
    if (g->file) g->fi->close(g->file);
    memset(g, 0, sizeof(*g));
}

llmh_token *tokh_encode(const llmh_tokenizer_iface *ti, const llmh_tokenizer *tok, const char *text,
                        size_t len, uint32_t flags, size_t *n, llmh_status *st) {
    size_t cap = len + 16;
    llmh_token *out = malloc(cap * sizeof(llmh_token));
    *n = 0;
    if (!out) { *st = LLMH_ERR_NO_MEMORY; return NULL; }
    *st = ti->encode(tok, text, len, flags, out, cap, n);
    if (*st == LLMH_ERR_INVALID_ARG && *n > cap) {
        cap = *n;
        llmh_token *o2 = realloc(out, cap * sizeof(llmh_token));
        if (!o2) { free(out); *st = LLMH_ERR_NO_MEMORY; return NULL; }
        out = o2;
        *st = ti->encode(tok, text, len, flags, out, cap, n);
    }
    if (*st != LLMH_OK) { free(out); *n = 0; return NULL; }
    return out;
}

char *tokh_decode(const llmh_tokenizer_iface *ti, const llmh_tokenizer *tok, const llmh_token *ids,
                  size_t n, uint32_t flags, size_t *len, llmh_status *st) {
    size_t need = 0;
    *len = 0;
    *st = ti->decode(tok, ids, n, flags, NULL, 0, &need);
    if (*st != LLMH_OK && !(*st == LLMH_ERR_INVALID_ARG && need > 0)) return NULL;
    char *buf = malloc(need + 1);
    if (!buf) { *st = LLMH_ERR_NO_MEMORY; return NULL; }
    *st = ti->decode(tok, ids, n, flags, buf, need, len);
    if (*st != LLMH_OK) { free(buf); return NULL; }
    buf[*len] = 0;
    return buf;
}

/* sampling.c — the manifest's sampler chain: one sampler plugin instance per
 * chain entry, applied in order to the candidate array; the last selects. */
#include <stdlib.h>
#include <string.h>

#include "model-internal.h"

typedef struct chain_link {
    llmh_plugin *plugin;
    const llmh_sampler_iface *iface;
    llmh_sampler *sampler;
    const char *name;
} chain_link;

struct llmh_sampler_chain {
    chain_link *links;
    size_t n;
    int64_t n_vocab;
    llmh_token_data *cands; /* (n_vocab) */
};

void llmh_sampler_chain_free(llmh_sampler_chain *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        if (c->links[i].sampler) c->links[i].iface->destroy(c->links[i].sampler);
        if (c->links[i].plugin) llmh_plugin_release(c->links[i].plugin);
    }
    free(c->links);
    free(c->cands);
    free(c);
}

static bool list_has(const char *const *list, const char *key) {
    for (; list && *list; list++)
        if (!strcmp(*list, key)) return true;
    return false;
}

llmh_status llmh_sampler_chain_create(llmh_model *model, const llmh_manifest *m, llmh_sampler_chain **out) {
    if (!model || !m || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_sampler_chain_create: NULL argument");
    *out = NULL;
    const llmh_config *cfg = llmh_manifest_config(m);
    llmh_sampler_chain *c = calloc(1, sizeof *c);
    if (!c) return LLMH_ERR_NO_MEMORY;
    c->n_vocab = model->hp.n_vocab;
    c->links = calloc(cfg->sampler.n_chain ? cfg->sampler.n_chain : 1, sizeof *c->links);
    c->cands = malloc((size_t)c->n_vocab * sizeof *c->cands);
    llmh_status st = LLMH_OK;
    if (!c->links || !c->cands) { st = LLMH_ERR_NO_MEMORY; goto fail; }
    if (cfg->sampler.n_chain == 0) {
        const char *file = cfg->file;
        st = llmh__fail(LLMH_ERR_CONFIG, "%s: [sampler] chain is empty; end it with \"greedy\" or \"dist\"", file);
        goto fail;
    }
    for (size_t i = 0; i < cfg->sampler.n_chain; i++) {
        chain_link *L = &c->links[c->n++];
        L->name = cfg->sampler.chain[i];
        if ((st = llmh_registry_get(model->registry, LLMH_PLUGIN_SAMPLER, L->name, &L->plugin))) goto fail;
        L->iface = llmh_plugin_iface(L->plugin);
        if ((st = L->iface->create(llmh_plugin_state(L->plugin), L->name, &cfg->sampler.params, &L->sampler))) {
            const char *file = cfg->file;
            int line = 0, col = 0;
            llmh_manifest_where(m, "sampler.chain", &file, &line, &col);
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", llmh_last_error());
            llmh_set_error("%s:%d:%d: [sampler] chain entry '%s': %s", file, line, col, L->name, msg);
            goto fail;
        }
    }
    /* every [sampler] key must be read by some chain member */
    for (size_t k = 0; k < cfg->sampler.params.n; k++) {
        const char *key = cfg->sampler.params.items[k].key;
        bool claimed = false;
        for (size_t i = 0; i < c->n && !claimed; i++) claimed = list_has(c->links[i].iface->param_keys, key);
        if (!claimed) {
            const char *file = cfg->file;
            int line = 0, col = 0;
            char dotted[256];
            snprintf(dotted, sizeof dotted, "sampler.%s", key);
            llmh_manifest_where(m, dotted, &file, &line, &col);
            /* keys inherited from an included manifest are expected to go
             * unused when the including file swaps the chain: info only */
            bool inherited = file && cfg->file && strcmp(file, cfg->file) != 0;
            llmh_log(inherited ? LLMH_LOG_INFO : LLMH_LOG_WARN, "core",
                     "%s:%d:%d: [sampler] key '%s' is not used by any sampler in the chain", file, line, col, key);
        }
    }
    *out = c;
    return LLMH_OK;
fail:
    llmh_sampler_chain_free(c);
    return st;
}

llmh_status llmh_sampler_chain_sample(llmh_sampler_chain *c, const float *logits, llmh_token *out) {
    if (!c || !logits || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_sampler_chain_sample: NULL argument");
    for (int64_t i = 0; i < c->n_vocab; i++) {
        c->cands[i].id = (llmh_token)i;
        c->cands[i].logit = logits[i];
        c->cands[i].p = 0.0f;
    }
    llmh_token_array arr = {c->cands, (size_t)c->n_vocab, -1, 0, 0};
    for (size_t i = 0; i < c->n; i++) {
        llmh_status st = c->links[i].iface->apply(c->links[i].sampler, &arr);
        if (st) return st;
        if (arr.n == 0) return llmh__fail(LLMH_ERR_INTERNAL, "sampler '%s' removed every candidate", c->links[i].name);
    }
    if (arr.selected < 0 || (size_t)arr.selected >= arr.n)
        return llmh__fail(LLMH_ERR_CONFIG, "the sampler chain selected no token: end [sampler] chain with \"greedy\" or \"dist\"");
    *out = arr.data[arr.selected].id;
    llmh_sampler_chain_accept(c, *out);
    return LLMH_OK;
}

void llmh_sampler_chain_accept(llmh_sampler_chain *c, llmh_token tok) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        if (c->links[i].iface->accept) c->links[i].iface->accept(c->links[i].sampler, tok);
}

void llmh_sampler_chain_reset(llmh_sampler_chain *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        if (c->links[i].iface->reset) c->links[i].iface->reset(c->links[i].sampler);
}

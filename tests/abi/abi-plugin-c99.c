/* abi-plugin-c99.c — a minimal sampler plugin written in strict C99 with
 * LLMH_PLUGIN_DEFINE, to prove the SDK macro and headers work from C99 and
 * that the host loads the result. Selects the highest-logit candidate. */
#include <stddef.h>

#include "llmh-plugin.h"

static const llmh_host_api *host;

struct llmh_sampler {
    llmh_token last;
};

static const char *const names[] = {"abi_c99_argmax", NULL};
static const char *const keys[] = {NULL};

static llmh_status c99_create(void *state, const char *name, const llmh_kv_list *params,
                              llmh_sampler **out) {
    llmh_sampler *s;
    (void)state;
    (void)name;
    (void)params;
    s = (llmh_sampler *)host->alloc(sizeof *s);
    if (!s) return LLMH_ERR_NO_MEMORY;
    s->last = -1;
    *out = s;
    return LLMH_OK;
}

static void c99_destroy(llmh_sampler *s) { host->free(s); }

static llmh_status c99_apply(llmh_sampler *s, llmh_token_array *c) {
    size_t i, best = 0;
    (void)s;
    if (c->n == 0) {
        host->set_error("abi_c99_argmax: empty candidate array");
        return LLMH_ERR_INVALID_ARG;
    }
    for (i = 1; i < c->n; i++)
        if (c->data[i].logit > c->data[best].logit) best = i;
    c->selected = (int32_t)best;
    return LLMH_OK;
}

static void c99_accept(llmh_sampler *s, llmh_token t) { s->last = t; }
static void c99_reset(llmh_sampler *s) { s->last = -1; }

static llmh_status c99_init(const llmh_host_api *h, void **state) {
    host = h;
    *state = NULL;
    return LLMH_OK;
}

static const llmh_sampler_iface iface = {sizeof(llmh_sampler_iface), names, keys, c99_create,
                                         c99_destroy, c99_apply, c99_accept, c99_reset};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_SAMPLER, "abi-c99", "1.0.0", "MIT",
                   "ABI test: sampler plugin written in C99", 1, NULL, c99_init, NULL, &iface, NULL)

/* test-router.c — a router plugin for tests/fabric only (never installed):
 * per-token gates through route_tokens, so the core's layer-by-layer
 * evaluation and the LoRA gate plumbing can be checked against runs without
 * routing. [router] keys:
 *   mode = "pass"    gates_out = route()'s gate for every token
 *          "zero"    0 for every token
 *          "half"    route()'s gate * 0.5
 *          "alt"     route()'s gate on even tokens of the chunk, 0 on odd ones
 *          "sigmoid" route()'s gate * sigmoid(w_l . h + b_l) from the
 *                    adapter's gate vectors (an error when it has none)
 * route(): the named adapters with their scales, or all at 1.
 * route_tokens checks its inputs (layer order within a chunk, finite h,
 * sizes) and fails with a message when they are wrong. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmh-plugin.h"

typedef struct llmh_router {
    const llmh_host_api *host;
    char mode[16];
    int32_t next_layer; /* layer expected next (0 after the last) */
} test_router;

static const llmh_host_api *g_host;

static llmh_status tr_init(const llmh_host_api *host, void **state) {
    g_host = host;
    *state = NULL;
    return LLMH_OK;
}

static void tr_fini(void *state) { (void)state; }

static const char *const tr_keys[] = {"mode", NULL};

static llmh_status tr_create(void *state, const llmh_kv_list *params, llmh_router **out) {
    (void)state;
    test_router *r = calloc(1, sizeof *r);
    if (!r) return LLMH_ERR_NO_MEMORY;
    r->host = g_host;
    snprintf(r->mode, sizeof r->mode, "pass");
    for (size_t i = 0; params && i < params->n; i++) {
        const llmh_kv *kv = &params->items[i];
        if (kv->key && !strcmp(kv->key, "mode") && kv->value.type == LLMH_V_STRING) {
            size_t n = kv->value.v.s.len < sizeof r->mode - 1 ? (size_t)kv->value.v.s.len : sizeof r->mode - 1;
            memcpy(r->mode, kv->value.v.s.ptr, n);
            r->mode[n] = 0;
        }
    }
    *out = r;
    return LLMH_OK;
}

static void tr_destroy(llmh_router *r) { free(r); }

static llmh_status tr_route(llmh_router *r, const llmh_route_request *req, const llmh_adapter_desc *ad, size_t n,
                            float *gates) {
    (void)r;
    for (size_t i = 0; i < n; i++) {
        gates[i] = req->n_adapter_names ? 0.0f : 1.0f;
        for (size_t j = 0; j < req->n_adapter_names; j++)
            if (!strcmp(req->adapter_names[j], ad[i].name))
                gates[i] = req->adapter_scales ? req->adapter_scales[j] : 1.0f;
    }
    return LLMH_OK;
}

static llmh_status tr_route_tokens(llmh_router *r, int32_t layer, const float *h, int64_t dim, int64_t n_tok,
                                   const llmh_adapter_desc *ad, size_t n, const float *req, float *out) {
    if (layer != 0 && layer != r->next_layer) {
        r->host->set_error("test router: layer %d after layer %d", (int)layer, (int)r->next_layer - 1);
        return LLMH_ERR_INTERNAL;
    }
    r->next_layer = layer + 1;
    if (!h || dim <= 0 || n_tok <= 0 || n == 0 || !ad || !req || !out) {
        r->host->set_error("test router: bad arguments (dim %lld, n_tok %lld, n %zu)", (long long)dim,
                           (long long)n_tok, n);
        return LLMH_ERR_INVALID_ARG;
    }
    for (int64_t i = 0; i < dim * n_tok; i++)
        if (!isfinite(h[i])) {
            r->host->set_error("test router: h[%lld] is not finite", (long long)i);
            return LLMH_ERR_INVALID_ARG;
        }
    for (int64_t t = 0; t < n_tok; t++)
        for (size_t i = 0; i < n; i++) {
            float g = req[i];
            if (!strcmp(r->mode, "zero")) g = 0.0f;
            else if (!strcmp(r->mode, "half")) g *= 0.5f;
            else if (!strcmp(r->mode, "alt")) g = (t % 2) ? 0.0f : g;
            else if (!strcmp(r->mode, "sigmoid")) {
                if (!ad[i].gate_w || !ad[i].gate_b || ad[i].gate_dim != dim || layer >= ad[i].n_layers) {
                    r->host->set_error("test router: adapter '%s' has no gate for layer %d (dim %lld)", ad[i].name,
                                       (int)layer, (long long)ad[i].gate_dim);
                    return LLMH_ERR_INVALID_ARG;
                }
                const float *w = ad[i].gate_w + (size_t)layer * (size_t)dim;
                double z = ad[i].gate_b[layer];
                for (int64_t k = 0; k < dim; k++) z += (double)w[k] * h[t * dim + k];
                g *= (float)(1.0 / (1.0 + exp(-z)));
            }
            out[(size_t)t * n + i] = g;
        }
    return LLMH_OK;
}

static const llmh_router_iface tr_iface = {
    .struct_size = sizeof(llmh_router_iface),
    .param_keys = tr_keys,
    .create = tr_create,
    .destroy = tr_destroy,
    .route = tr_route,
    .route_tokens = tr_route_tokens,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_ROUTER, "fabric-test-router", "0.1.0", "MIT",
                   "tests/fabric only: per-token gates for checking the core's routing", 0, NULL, tr_init, tr_fini,
                   &tr_iface, NULL)

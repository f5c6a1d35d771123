/* router-static.c — the "static" router plugin.
 *
 * route(): a request that names adapters (with optional scales) turns on
 * exactly those, each with gate = its request scale (1.0 when the request
 * gives none); every other adapter is off (gate 0). A request that names no
 * adapters turns on every adapter in the store at gate 1.0, so the host
 * applies each at its configured scale (manifest [[adapter]] scale or the
 * last rescale). The host multiplies: s_i = gate_i * scale_i * alpha_i / r_i.
 * A named adapter missing from the store is an error naming it.
 * Stateless per request; it reads no [router] keys. */
#include <string.h>

#include "llmh-plugin.h"
#include "llmh-router-util.h"

typedef struct rs_state {
    const llmh_host_api *host;
} rs_state;

struct llmh_router {
    const llmh_host_api *host;
};

static llmh_status rs_init(const llmh_host_api *host, void **state) {
    if (!host || !state) return LLMH_ERR_INVALID_ARG;
    if (!host->alloc || !host->free || !host->set_error) return LLMH_ERR_ABI;
    rs_state *s = host->alloc(sizeof *s);
    if (!s) {
        host->set_error("router-static: out of memory in init");
        return LLMH_ERR_NO_MEMORY;
    }
    s->host = host;
    *state = s;
    return LLMH_OK;
}

static void rs_fini(void *state) {
    rs_state *s = state;
    if (s) s->host->free(s);
}

static const char *const rs_keys[] = {NULL};

static llmh_status rs_create(void *state, const llmh_kv_list *params, llmh_router **out) {
    rs_state *s = state;
    (void)params;
    if (!s) return LLMH_ERR_INVALID_ARG;
    if (!out) {
        s->host->set_error("router-static: create() needs an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_router *r = s->host->alloc(sizeof *r);
    if (!r) {
        s->host->set_error("router-static: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    r->host = s->host;
    *out = r;
    return LLMH_OK;
}

static void rs_destroy(llmh_router *r) {
    if (r) r->host->free(r);
}

static llmh_status rs_route(llmh_router *r, const llmh_route_request *req, const llmh_adapter_desc *adapters,
                            size_t n, float *gates_out) {
    if (!r) return LLMH_ERR_INVALID_ARG;
    if ((n && (!adapters || !gates_out))) {
        r->host->set_error("router-static: route() needs adapters and gates_out");
        return LLMH_ERR_INVALID_ARG;
    }
    if (!req || req->n_adapter_names == 0) {
        for (size_t i = 0; i < n; i++) gates_out[i] = 1.0f;
        return LLMH_OK;
    }
    for (size_t i = 0; i < n; i++) gates_out[i] = 0.0f;
    return llmh_route_named(r->host, "router-static", req, adapters, n, gates_out);
}

static const llmh_router_iface rs_iface = {
    .struct_size = sizeof(llmh_router_iface),
    .param_keys = rs_keys,
    .create = rs_create,
    .destroy = rs_destroy,
    .route = rs_route,
    .route_tokens = NULL,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_ROUTER, "static", "0.1.0", "MIT",
                   "static router: a request names adapters and scales; none named = every adapter at its scale",
                   10, NULL, rs_init, rs_fini, &rs_iface, NULL)

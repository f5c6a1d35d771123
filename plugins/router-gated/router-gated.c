/* router-gated.c — the "gated" router plugin (docs/routers.md).
 *
 * route() (per request) has the static router's semantics: a request that
 * names adapters turns on exactly those, each at gate = its request scale
 * (1.0 when none given), a request that names none turns on every adapter at
 * gate 1.0; a named adapter that is not loaded is an error naming it.
 *
 * route_tokens() (per token, called by the host before each layer l with the
 * residual stream h entering that layer, n_tok columns of dim floats):
 *   g[t][i] = request_gate[i] * G(sigmoid(w_l . h[t] + b_l))
 * for adapters with gate vectors (adapter.gate.weight/bias in the adapter
 * file, see docs/routers.md), and g[t][i] = request_gate[i] for adapters
 * without. G applies the [router] keys:
 *   threshold = 0.0   a token's gate below this is 0 (the adapter is off for
 *                     that token; 0 keeps every gate), in [0, 1]
 *   hard = false      when true, a gate at or above the threshold becomes 1:
 *                     the adapter is either fully on or off per token (with
 *                     hard = true the threshold defaults to 0.5)
 * The dot product is accumulated in double. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "llmh-plugin.h"
#include "llmh-router-util.h"

typedef struct rg_state {
    const llmh_host_api *host;
} rg_state;

struct llmh_router {
    const llmh_host_api *host;
    double threshold;
    bool hard;
};

static llmh_status rg_init(const llmh_host_api *host, void **state) {
    if (!host || !state) return LLMH_ERR_INVALID_ARG;
    if (!host->alloc || !host->free || !host->set_error) return LLMH_ERR_ABI;
    rg_state *s = host->alloc(sizeof *s);
    if (!s) {
        host->set_error("router-gated: out of memory in init");
        return LLMH_ERR_NO_MEMORY;
    }
    s->host = host;
    *state = s;
    return LLMH_OK;
}

static void rg_fini(void *state) {
    rg_state *s = state;
    if (s) s->host->free(s);
}

static const char *const rg_keys[] = {"threshold", "hard", NULL};

static llmh_status rg_create(void *state, const llmh_kv_list *params, llmh_router **out) {
    rg_state *s = state;
    if (!s) return LLMH_ERR_INVALID_ARG;
    if (!out) {
        s->host->set_error("router-gated: create() needs an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    double threshold = 0.0;
    bool hard = false;
    const llmh_value *v = llmh_kv_find(params, "threshold");
    if (v) {
        if (v->type == LLMH_V_BOOL || v->type == LLMH_V_STRING || v->type == LLMH_V_ARRAY ||
            !llmh_value_as_f64(v, &threshold) || !(threshold >= 0.0 && threshold <= 1.0)) {
            s->host->set_error("router-gated: [router] threshold must be a number in [0, 1]");
            return LLMH_ERR_CONFIG;
        }
    }
    v = llmh_kv_find(params, "hard");
    if (v) {
        if (v->type != LLMH_V_BOOL) {
            s->host->set_error("router-gated: [router] hard must be true or false");
            return LLMH_ERR_CONFIG;
        }
        hard = v->v.b != 0;
        if (hard && !llmh_kv_find(params, "threshold")) threshold = 0.5;
    }
    llmh_router *r = s->host->alloc(sizeof *r);
    if (!r) {
        s->host->set_error("router-gated: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    r->host = s->host;
    r->threshold = threshold;
    r->hard = hard;
    *out = r;
    return LLMH_OK;
}

static void rg_destroy(llmh_router *r) {
    if (r) r->host->free(r);
}

static llmh_status rg_route(llmh_router *r, const llmh_route_request *req, const llmh_adapter_desc *adapters,
                            size_t n, float *gates_out) {
    if (!r) return LLMH_ERR_INVALID_ARG;
    if (n && (!adapters || !gates_out)) {
        r->host->set_error("router-gated: route() needs adapters and gates_out");
        return LLMH_ERR_INVALID_ARG;
    }
    if (req && req->n_namespaces) {
        r->host->set_error("router-gated: requests by namespace need the 'namespace' router "
                           "(this request names namespace '%s')",
                           req->namespaces && req->namespaces[0] ? req->namespaces[0] : "(null)");
        return LLMH_ERR_UNSUPPORTED;
    }
    if (!req || req->n_adapter_names == 0) {
        for (size_t i = 0; i < n; i++) gates_out[i] = 1.0f;
        return LLMH_OK;
    }
    for (size_t i = 0; i < n; i++) gates_out[i] = 0.0f;
    return llmh_route_named(r->host, "router-gated", req, adapters, n, gates_out);
}

static double rg_sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static llmh_status rg_route_tokens(llmh_router *r, int32_t layer, const float *h, int64_t dim, int64_t n_tok,
                                   const llmh_adapter_desc *adapters, size_t n, const float *request_gates,
                                   float *gates_out) {
    if (!r) return LLMH_ERR_INVALID_ARG;
    if (n_tok < 0 || dim < 0 || layer < 0) {
        r->host->set_error("router-gated: route_tokens(layer %d, dim %lld, n_tok %lld): negative argument",
                           (int)layer, (long long)dim, (long long)n_tok);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n == 0 || n_tok == 0) return LLMH_OK;
    if (!adapters || !request_gates || !gates_out || (dim && !h)) {
        r->host->set_error("router-gated: route_tokens() needs h, adapters, request_gates and gates_out");
        return LLMH_ERR_INVALID_ARG;
    }
    /* validate each gated adapter once for this layer */
    for (size_t i = 0; i < n; i++) {
        const llmh_adapter_desc *a = &adapters[i];
        if (a->n_layers <= 0 || !a->gate_w) continue;
        if (a->gate_dim != dim) {
            r->host->set_error("router-gated: adapter '%s' has gate vectors of %lld values but the hidden state "
                               "has %lld",
                               a->name ? a->name : "(unnamed)", (long long)a->gate_dim, (long long)dim);
            return LLMH_ERR_INVALID_ARG;
        }
        if (layer >= a->n_layers) {
            r->host->set_error("router-gated: adapter '%s' has gate vectors for %d layers, asked for layer %d",
                               a->name ? a->name : "(unnamed)", (int)a->n_layers, (int)layer);
            return LLMH_ERR_INVALID_ARG;
        }
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const float *ht = h + (size_t)t * (size_t)dim;
        float *gt = gates_out + (size_t)t * n;
        for (size_t i = 0; i < n; i++) {
            const llmh_adapter_desc *a = &adapters[i];
            float rq = request_gates[i];
            if (rq == 0.0f || a->n_layers <= 0 || !a->gate_w) {
                gt[i] = rq;
                continue;
            }
            const float *w = a->gate_w + (size_t)layer * (size_t)dim;
            double z = a->gate_b ? (double)a->gate_b[layer] : 0.0;
            for (int64_t k = 0; k < dim; k++) z += (double)w[k] * (double)ht[k];
            double g = rg_sigmoid(z);
            if (g < r->threshold || !(g == g)) g = 0.0;
            else if (r->hard) g = 1.0;
            gt[i] = (float)((double)rq * g);
        }
    }
    return LLMH_OK;
}

static const llmh_router_iface rg_iface = {
    .struct_size = sizeof(llmh_router_iface),
    .param_keys = rg_keys,
    .create = rg_create,
    .destroy = rg_destroy,
    .route = rg_route,
    .route_tokens = rg_route_tokens,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_ROUTER, "gated", "0.1.0", "MIT",
                   "gated router: per-token gates sigmoid(w.h + b) from the hidden state at each layer's input",
                   10, NULL, rg_init, rg_fini, &rg_iface, NULL)

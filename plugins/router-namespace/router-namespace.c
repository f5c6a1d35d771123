/* router-namespace.c — the "namespace" router plugin (docs/routers.md).
 *
 * Adapters are registered under a namespace (manifest [[adapter]] namespace,
 * or the ns argument of llmh_adapter_load). route():
 *  - a request that names namespaces turns on every adapter whose namespace
 *    is among them, at gate 1.0; a named namespace with no adapter is an
 *    error naming it;
 *  - adapters the request names (with optional scales) are turned on as
 *    well, each at gate = its request scale (1.0 when none), also when they
 *    are in a named namespace (the per-name scale wins); a named adapter that
 *    is not loaded is an error naming it;
 *  - a request that names neither gets the [router] `default` namespaces
 *    when the manifest sets them (same rules as above), else every adapter
 *    at gate 1.0 (as the static router).
 * The host multiplies: s_i = gate_i * scale_i * alpha_i / r_i.
 *
 * [router] keys:
 *   default = "ns" or ["ns1", "ns2"]   namespaces for requests that name none
 */
#include <stdbool.h>
#include <string.h>

#include "llmh-plugin.h"
#include "llmh-router-util.h"

typedef struct rn_state {
    const llmh_host_api *host;
} rn_state;

struct llmh_router {
    const llmh_host_api *host;
    char **defaults; /* NUL-terminated copies of the `default` namespaces */
    size_t n_defaults;
};

static llmh_status rn_init(const llmh_host_api *host, void **state) {
    if (!host || !state) return LLMH_ERR_INVALID_ARG;
    if (!host->alloc || !host->free || !host->set_error) return LLMH_ERR_ABI;
    rn_state *s = host->alloc(sizeof *s);
    if (!s) {
        host->set_error("router-namespace: out of memory in init");
        return LLMH_ERR_NO_MEMORY;
    }
    s->host = host;
    *state = s;
    return LLMH_OK;
}

static void rn_fini(void *state) {
    rn_state *s = state;
    if (s) s->host->free(s);
}

static const char *const rn_keys[] = {"default", NULL};

static void rn_destroy(llmh_router *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_defaults; i++) r->host->free(r->defaults[i]);
    r->host->free(r->defaults);
    r->host->free(r);
}

/* Copy one STRING value as a NUL-terminated namespace name. */
static llmh_status rn_add_default(llmh_router *r, const llmh_value *v, size_t index) {
    if (v->type != LLMH_V_STRING) {
        r->host->set_error("router-namespace: [router] default: item %zu is not a string", index);
        return LLMH_ERR_CONFIG;
    }
    if (v->v.s.len == 0 || v->v.s.len > 4096 || memchr(v->v.s.ptr, 0, (size_t)v->v.s.len)) {
        r->host->set_error("router-namespace: [router] default: item %zu must be a non-empty namespace name "
                           "(at most 4096 bytes, no NUL)",
                           index);
        return LLMH_ERR_CONFIG;
    }
    char *c = r->host->alloc((size_t)v->v.s.len + 1);
    if (!c) {
        r->host->set_error("router-namespace: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    memcpy(c, v->v.s.ptr, (size_t)v->v.s.len);
    c[v->v.s.len] = 0;
    r->defaults[r->n_defaults++] = c;
    return LLMH_OK;
}

static llmh_status rn_create(void *state, const llmh_kv_list *params, llmh_router **out) {
    rn_state *s = state;
    if (!s) return LLMH_ERR_INVALID_ARG;
    if (!out) {
        s->host->set_error("router-namespace: create() needs an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_router *r = s->host->alloc(sizeof *r);
    if (!r) {
        s->host->set_error("router-namespace: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(r, 0, sizeof *r);
    r->host = s->host;
    const llmh_value *d = llmh_kv_find(params, "default");
    llmh_status st = LLMH_OK;
    if (d) {
        size_t n = d->type == LLMH_V_ARRAY ? (size_t)d->v.arr.n : 1;
        if (d->type == LLMH_V_ARRAY && (d->v.arr.n > 65536 || (d->v.arr.n && !d->v.arr.items))) {
            s->host->set_error("router-namespace: [router] default: bad array (%llu items)",
                               (unsigned long long)d->v.arr.n);
            st = LLMH_ERR_CONFIG;
        } else if (d->type != LLMH_V_ARRAY && d->type != LLMH_V_STRING) {
            s->host->set_error("router-namespace: [router] default must be a string or an array of strings");
            st = LLMH_ERR_CONFIG;
        } else if (n) {
            r->defaults = s->host->alloc(n * sizeof *r->defaults);
            if (!r->defaults) {
                s->host->set_error("router-namespace: out of memory");
                st = LLMH_ERR_NO_MEMORY;
            }
            for (size_t i = 0; i < n && !st; i++)
                st = rn_add_default(r, d->type == LLMH_V_ARRAY ? &d->v.arr.items[i] : d, i);
        }
    }
    if (st) {
        rn_destroy(r);
        return st;
    }
    *out = r;
    return LLMH_OK;
}

static llmh_status rn_route(llmh_router *r, const llmh_route_request *req, const llmh_adapter_desc *adapters,
                            size_t n, float *gates_out) {
    if (!r) return LLMH_ERR_INVALID_ARG;
    if (n && (!adapters || !gates_out)) {
        r->host->set_error("router-namespace: route() needs adapters and gates_out");
        return LLMH_ERR_INVALID_ARG;
    }
    size_t n_names = req ? req->n_adapter_names : 0;
    size_t n_ns = req ? req->n_namespaces : 0;
    if ((n_names && !req->adapter_names) || (n_ns && !req->namespaces)) {
        r->host->set_error("router-namespace: request counts names or namespaces but gives no array");
        return LLMH_ERR_INVALID_ARG;
    }
    const char *const *ns = n_ns ? req->namespaces : NULL;
    const char *const *defaults = (const char *const *)r->defaults;
    bool from_default = false;
    if (n_names == 0 && n_ns == 0) {
        if (r->n_defaults == 0) {
            for (size_t i = 0; i < n; i++) gates_out[i] = 1.0f;
            return LLMH_OK;
        }
        ns = defaults;
        n_ns = r->n_defaults;
        from_default = true;
    }
    for (size_t i = 0; i < n; i++) gates_out[i] = 0.0f;
    for (size_t k = 0; k < n_ns; k++) {
        const char *want = ns[k];
        if (!want) {
            r->host->set_error("router-namespace: request namespace %zu is NULL", k);
            return LLMH_ERR_INVALID_ARG;
        }
        size_t hits = 0;
        for (size_t i = 0; i < n; i++)
            if (adapters[i].ns && !strcmp(adapters[i].ns, want)) {
                gates_out[i] = 1.0f;
                hits++;
            }
        if (hits == 0) {
            r->host->set_error("router-namespace: %s namespace '%s' has no adapters",
                               from_default ? "the [router] default" : "the request's", want);
            return LLMH_ERR_NOT_FOUND;
        }
    }
    return llmh_route_named(r->host, "router-namespace", req, adapters, n, gates_out);
}

static const llmh_router_iface rn_iface = {
    .struct_size = sizeof(llmh_router_iface),
    .param_keys = rn_keys,
    .create = rn_create,
    .destroy = rn_destroy,
    .route = rn_route,
    .route_tokens = NULL,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_ROUTER, "namespace", "0.1.0", "MIT",
                   "namespace router: a request names namespaces and gets every adapter registered under them",
                   10, NULL, rn_init, rn_fini, &rn_iface, NULL)

/* llmh-router-util.h — a small header-only helper for router plugins (part of
 * the SDK; nothing here is ABI: it only uses llmh-plugin.h's types).
 *
 * llmh_route_named(): the "static" routing rule every router that accepts
 * adapter names shares: each adapter the request names gets its request
 * scale (1 when the request gives no scales) as its gate. Adapters the
 * request does not name are left untouched, so a router can combine it
 * with its own rule (namespaces, defaults). Errors go through
 * host->set_error, prefixed with `who` (the router's name). */
#ifndef LLMH_ROUTER_UTIL_H
#define LLMH_ROUTER_UTIL_H

#include <string.h>

#include "llmh-plugin.h"

static inline llmh_status llmh_route_named(const llmh_host_api *host, const char *who, const llmh_route_request *req,
                                           const llmh_adapter_desc *adapters, size_t n, float *gates_out) {
    size_t n_names = req ? req->n_adapter_names : 0;
    if (n_names && !req->adapter_names) {
        host->set_error("%s: request has %zu adapter names but no name array", who, n_names);
        return LLMH_ERR_INVALID_ARG;
    }
    for (size_t k = 0; k < n_names; k++) {
        const char *want = req->adapter_names[k];
        if (!want) {
            host->set_error("%s: request adapter name %zu is NULL", who, k);
            return LLMH_ERR_INVALID_ARG;
        }
        size_t i = 0;
        while (i < n && !(adapters[i].name && !strcmp(adapters[i].name, want))) i++;
        if (i == n) {
            host->set_error("%s: the request names adapter '%s', which is not loaded", who, want);
            return LLMH_ERR_NOT_FOUND;
        }
        gates_out[i] = req->adapter_scales ? req->adapter_scales[k] : 1.0f;
    }
    return LLMH_OK;
}

#endif /* LLMH_ROUTER_UTIL_H */

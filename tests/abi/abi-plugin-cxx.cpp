// abi-plugin-cxx.cpp — a router plugin written in C++ with
// LLMH_PLUGIN_DEFINE, to prove the SDK works from C++ (extern "C" export,
// aggregate descriptor) and that the host loads the result. Policy: an
// adapter is on (gate 1 times its requested scale) when the request names it.
#include <cstring>
#include <new>

#include "llmh-plugin.h"

namespace {

const llmh_host_api *host = nullptr;

const char *const keys[] = {nullptr};

}  // namespace

struct llmh_router {
    int unused;
};

namespace {

llmh_status cxx_create(void *, const llmh_kv_list *, llmh_router **out) {
    llmh_router *r = new (std::nothrow) llmh_router();
    if (!r) return LLMH_ERR_NO_MEMORY;
    *out = r;
    return LLMH_OK;
}

void cxx_destroy(llmh_router *r) { delete r; }

llmh_status cxx_route(llmh_router *, const llmh_route_request *req, const llmh_adapter_desc *adapters,
                      size_t n, float *gates_out) {
    for (size_t i = 0; i < n; i++) {
        gates_out[i] = 0.0f;
        for (size_t j = 0; j < req->n_adapter_names; j++) {
            if (std::strcmp(req->adapter_names[j], adapters[i].name) == 0)
                gates_out[i] = req->adapter_scales ? req->adapter_scales[j] : 1.0f;
        }
    }
    return LLMH_OK;
}

llmh_status cxx_init(const llmh_host_api *h, void **state) {
    host = h;
    *state = nullptr;
    return LLMH_OK;
}

const llmh_router_iface iface = {sizeof(llmh_router_iface), keys, cxx_create, cxx_destroy,
                                 cxx_route, nullptr};

}  // namespace

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_ROUTER, "abi-cxx", "1.0.0", "MIT",
                   "ABI test: router plugin written in C++", 1, NULL, cxx_init, NULL, &iface, NULL)

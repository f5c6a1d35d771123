/* onednn-loader.c — the "onednn" backend plugin as the registry sees it: a
 * descriptor and a vtable that forward to the implementation module
 * onednn/libllmh-onednn-impl.so (next to this file), loaded on first use.
 *
 * Why a separate module: oneDNN (Debian's build) runs on OpenMP, and libgomp
 * reads its wait policy from OMP_WAIT_POLICY once, when it is loaded. Its
 * default spins at every barrier, which on a machine whose cores are shared
 * with other processes lets a descheduled team member stall every oneDNN
 * and plugin parallel region (measured: prefill 1.9x slower on a busy
 * 2-core machine). So before loading the module (and with it libgomp) the
 * loader sets OMP_WAIT_POLICY=passive, unless the user set it or
 * LLMH_ONEDNN_KEEP_OMP_ENV is set. If libgomp was already in the process,
 * the setting has no effect (documented in docs/backend-onednn.md).
 * The module is opened with RTLD_NODELETE: OpenMP worker threads must never
 * see their code unmapped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn-impl.h"

static const od_impl *g_impl;

static llmh_status load_impl(const llmh_host_api *host) {
    if (g_impl) return LLMH_OK;
    Dl_info info;
    if (!dladdr((const void *)&load_impl, &info) || !info.dli_fname) {
        host->set_error("onednn backend: cannot locate its own plugin file (dladdr failed)");
        return LLMH_ERR_IO;
    }
    char path[4096];
    const char *slash = strrchr(info.dli_fname, '/');
    int dir_len = slash ? (int)(slash - info.dli_fname) : 1;
    const char *dir = slash ? info.dli_fname : ".";
    int n = snprintf(path, sizeof path, "%.*s/%s/%s", dir_len, dir, OD_IMPL_SUBDIR, OD_IMPL_FILE);
    if (n < 0 || (size_t)n >= sizeof path) {
        host->set_error("onednn backend: plugin path too long: %s", info.dli_fname);
        return LLMH_ERR_IO;
    }
    const char *keep = getenv("LLMH_ONEDNN_KEEP_OMP_ENV");
    if (!(keep && *keep) && !getenv("OMP_WAIT_POLICY")) setenv("OMP_WAIT_POLICY", "passive", 0);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        const char *why = dlerror();
        host->set_error("onednn backend: cannot load its implementation %s: %s", path, why ? why : "unknown error");
        return LLMH_ERR_IO;
    }
    od_impl_fn fn;
    void *sym = dlsym(dl, OD_IMPL_SYMBOL);
    memcpy(&fn, &sym, sizeof fn);
    const od_impl *impl = fn ? fn() : NULL;
    if (!impl || impl->struct_size < sizeof(od_impl) || !impl->iface || !impl->init) {
        host->set_error("onednn backend: %s does not export a valid %s", path, OD_IMPL_SYMBOL);
        dlclose(dl);
        return LLMH_ERR_ABI;
    }
    g_impl = impl;
    return LLMH_OK;
}

static int32_t ld_probe(const llmh_host_api *host) {
    if (load_impl(host) != LLMH_OK) return 0;
    return g_impl->probe ? g_impl->probe(host) : 40;
}

static llmh_status ld_init(const llmh_host_api *host, void **state) {
    llmh_status st = load_impl(host);
    if (st != LLMH_OK) return st;
    return g_impl->init(host, state);
}

static void ld_fini(void *state) {
    if (g_impl && g_impl->fini) g_impl->fini(state);
}

/* Forwarders: init() has loaded the module before any of these is called. */
#define IF (g_impl->iface)
static int32_t f_device_count(void *s) { return IF->device_count(s); }
static llmh_status f_device_info(void *s, int32_t i, llmh_device_info *o) { return IF->device_info(s, i, o); }
static llmh_status f_create(void *s, const llmh_backend_params *p, llmh_backend **o) { return IF->create(s, p, o); }
static void f_destroy(llmh_backend *be) { IF->destroy(be); }
static int32_t f_supports(llmh_backend *be, llmh_op op, llmh_dtype a, llmh_dtype b) { return IF->supports(be, op, a, b); }
static llmh_status f_buffer_alloc(llmh_backend *be, size_t n, uint32_t u, llmh_buffer **o) {
    return IF->buffer_alloc(be, n, u, o);
}
static llmh_status f_buffer_wrap_host(llmh_backend *be, void *h, size_t n, uint32_t u, llmh_buffer **o) {
    return IF->buffer_wrap_host(be, h, n, u, o);
}
static void f_buffer_free(llmh_backend *be, llmh_buffer *b) { IF->buffer_free(be, b); }
static void *f_buffer_host_ptr(llmh_backend *be, llmh_buffer *b) { return IF->buffer_host_ptr(be, b); }
static llmh_status f_buffer_write(llmh_backend *be, llmh_buffer *b, size_t o, const void *s, size_t n) {
    return IF->buffer_write(be, b, o, s, n);
}
static llmh_status f_buffer_read(llmh_backend *be, llmh_buffer *b, size_t o, void *d, size_t n) {
    return IF->buffer_read(be, b, o, d, n);
}
static llmh_status f_weight_prepare(llmh_backend *be, llmh_tensor *w) { return IF->weight_prepare(be, w); }
static void f_weight_release(llmh_backend *be, llmh_tensor *w) { IF->weight_release(be, w); }
static llmh_status f_graph_compute(llmh_backend *be, const llmh_graph *g) { return IF->graph_compute(be, g); }
#undef IF

static const llmh_backend_iface ld_iface = {
    .struct_size = sizeof(llmh_backend_iface),
    .device_count = f_device_count,
    .device_info = f_device_info,
    .create = f_create,
    .destroy = f_destroy,
    .supports = f_supports,
    .buffer_alloc = f_buffer_alloc,
    .buffer_wrap_host = f_buffer_wrap_host,
    .buffer_free = f_buffer_free,
    .buffer_host_ptr = f_buffer_host_ptr,
    .buffer_write = f_buffer_write,
    .buffer_read = f_buffer_read,
    .weight_prepare = f_weight_prepare,
    .weight_release = f_weight_release,
    .graph_compute = f_graph_compute,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_BACKEND, "onednn", "0.1.0", "MIT",
                   "oneDNN CPU backend: oneDNN matmul (F32/BF16, blocked weights), int8 block-quant kernels", 40,
                   ld_probe, ld_init, ld_fini, &ld_iface, NULL)

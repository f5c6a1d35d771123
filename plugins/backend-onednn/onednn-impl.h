/* onednn-impl.h — the boundary between the "onednn" plugin file (a small
 * loader, onednn-loader.c) and its implementation module
 * (onednn/libllmh-onednn-impl.so next to it, which links oneDNN and
 * OpenMP). The split exists so the loader can choose OpenMP's wait policy
 * before libgomp initializes (it reads OMP_WAIT_POLICY once, when loaded);
 * see docs/backend-onednn.md "Threading". */
#ifndef LLMH_ONEDNN_IMPL_H
#define LLMH_ONEDNN_IMPL_H

#include "llmh-plugin.h"

#define OD_IMPL_SYMBOL "llmh_onednn_impl"
#define OD_IMPL_FILE "libllmh-onednn-impl.so"
#define OD_IMPL_SUBDIR "onednn"

typedef struct od_impl {
    uint32_t struct_size;
    int32_t (*probe)(const llmh_host_api *host);
    llmh_status (*init)(const llmh_host_api *host, void **state);
    void (*fini)(void *state);
    const llmh_backend_iface *iface;
} od_impl;

typedef const od_impl *(*od_impl_fn)(void);

#endif

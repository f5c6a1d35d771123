/* host-api.c — the llmh_host_api table handed to every plugin. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static void *host_alloc(size_t size) { return malloc(size ? size : 1); }

static void *host_alloc_aligned(size_t size, size_t alignment) {
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0) return NULL;
    return p;
}

static void host_free(void *p) { free(p); }

static void host_log(llmh_log_level level, const char *plugin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    llmh__logv(level, plugin, fmt, ap);
    va_end(ap);
}

static void host_set_error(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llmh_set_error("%s", msg);
}

llmh_status llmh__fail(llmh_status st, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llmh_set_error("%s", msg);
    return st;
}

static const llmh_host_api host_api = {
    .struct_size = sizeof(llmh_host_api),
    .abi_major = LLMH_ABI_MAJOR,
    .abi_minor = LLMH_ABI_MINOR,
    .alloc = host_alloc,
    .alloc_aligned = host_alloc_aligned,
    .free = host_free,
    .log = host_log,
    .set_error = host_set_error,
    .dequantize = llmh_dequantize,
    .quantize = llmh_quantize,
    .host_version = LLMH_VERSION_STRING,
};

const llmh_host_api *llmh_host_api_get(void) { return &host_api; }

/* backend-util.h — load the cpu backend plugin and build tensors on it, for
 * the backend-ops tests and the matmul benchmark. */
#ifndef LLMH_TEST_BACKEND_UTIL_H
#define LLMH_TEST_BACKEND_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "llmh.h"

typedef struct bu_plugin {
    void *dl;
    const llmh_plugin_desc *desc;
    const llmh_backend_iface *be;
    void *state;
} bu_plugin;

/* Load libllmh-backend-cpu.so from $LLMH_PLUGIN_PATH (first entry) or the
 * build's plugin dir and init it. Returns 0 on success. */
int bu_plugin_load(bu_plugin *p);
void bu_plugin_unload(bu_plugin *p);

/* Create an instance; kernels may be NULL ("auto"). NULL when the kernel
 * level is not available on this machine (message in llmh_last_error()). */
llmh_backend *bu_backend_create(bu_plugin *p, const char *kernels, int threads);

/* A tensor with its own buffer (freed by bu_tensor_free). Contiguous. */
typedef struct bu_tensor {
    llmh_tensor t;
    llmh_buffer *buf;
} bu_tensor;

bu_tensor *bu_tensor_new(bu_plugin *p, llmh_backend *be, llmh_dtype type, int64_t ne0, int64_t ne1,
                         int64_t ne2, int64_t ne3);
void bu_tensor_free(bu_plugin *p, llmh_backend *be, bu_tensor *t);
size_t bu_tensor_bytes(const llmh_tensor *t);

/* Deterministic random numbers. */
uint32_t bu_rand(uint64_t *s);
float bu_randf(uint64_t *s); /* uniform in [-1, 1) */

/* Random weight bytes for `type` (n elements): quantized from random floats
 * where the host can quantize, else random bytes with sane scale fields. */
void bu_random_weights(llmh_dtype type, void *dst, int64_t n, uint64_t *seed);

double bu_now(void);

#endif

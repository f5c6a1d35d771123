/* vk-test-util.h — load the vulkan backend plugin directly and move tensors
 * between host arrays and its device buffers, for test-vulkan-ops.c. */
#ifndef LLMH_VK_TEST_UTIL_H
#define LLMH_VK_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "llmh.h"

typedef struct vt_plugin {
    void *dl;
    const llmh_plugin_desc *desc;
    const llmh_backend_iface *be;
    void *state;
} vt_plugin;

/* dlopen libllmh-backend-vulkan.so ($LLMH_PLUGIN_PATH first) and init it.
 * Returns 0 on success, else prints why and returns -1. */
int vt_plugin_load(vt_plugin *p);
void vt_plugin_unload(vt_plugin *p);

/* A tensor backed by its own device buffer of `bytes` (>= the view). */
typedef struct vt_tensor {
    llmh_tensor t;
    llmh_buffer *buf;
    size_t bytes;
} vt_tensor;

/* Contiguous tensor of the given shape. NULL on failure. */
vt_tensor *vt_new(vt_plugin *p, llmh_backend *be, llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2,
                  int64_t ne3);
/* Strided f32/f16/bf16 tensor: nb[d] given in bytes, buffer sized to fit
 * `offset` plus the view. */
vt_tensor *vt_new_strided(vt_plugin *p, llmh_backend *be, llmh_dtype type, const int64_t ne[4], const size_t nb[4],
                          size_t offset);
void vt_free(vt_plugin *p, llmh_backend *be, vt_tensor *t);
/* Whole-buffer upload / download of raw bytes. */
int vt_upload(vt_plugin *p, llmh_backend *be, vt_tensor *t, const void *src, size_t n);
int vt_download(vt_plugin *p, llmh_backend *be, vt_tensor *t, void *dst, size_t n);

/* f32 element (i0..i3) of a strided host image of `t`. */
float vt_get(const llmh_tensor *t, const uint8_t *img, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
void vt_set(const llmh_tensor *t, uint8_t *img, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v);

uint32_t vt_rand(uint64_t *s);
float vt_randf(uint64_t *s); /* uniform in [-1, 1) */
/* Random weight bytes of `type` for n elements. */
void vt_random_weights(llmh_dtype type, void *dst, int64_t n, uint64_t *seed);

#endif

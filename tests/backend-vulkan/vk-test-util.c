/* vk-test-util.c — see vk-test-util.h. */
#define _GNU_SOURCE
#include "vk-test-util.h"
#include "testutil.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VK_PLUGIN_FILE
#define VK_PLUGIN_FILE "libllmh-backend-vulkan.so"
#endif

int vt_plugin_load(vt_plugin *p) {
    memset(p, 0, sizeof *p);
    if (llmh_test_plugin_open("libllmh-backend-vulkan.so", VK_PLUGIN_FILE, LLMH_PLUGIN_BACKEND, &p->dl, &p->desc, &p->state)) return -1;
    p->be = (const llmh_backend_iface *)p->desc->iface;
    return 0;
}

void vt_plugin_unload(vt_plugin *p) {
    if (p->desc && p->desc->fini) p->desc->fini(p->state);
    if (p->dl) dlclose(p->dl);
    memset(p, 0, sizeof *p);
}

static vt_tensor *alloc_with(vt_plugin *p, llmh_backend *be, vt_tensor *t, size_t bytes) {
    t->bytes = bytes;
    if (p->be->buffer_alloc(be, bytes, LLMH_BUFFER_COMPUTE, &t->buf) != LLMH_OK) {
        fprintf(stderr, "buffer_alloc(%zu): %s\n", bytes, llmh_last_error());
        free(t);
        return NULL;
    }
    t->t.buffer = t->buf;
    t->t.data = NULL;
    uint8_t *zero = calloc(1, bytes);
    if (zero) {
        p->be->buffer_write(be, t->buf, 0, zero, bytes);
        free(zero);
    }
    return t;
}

vt_tensor *vt_new(vt_plugin *p, llmh_backend *be, llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2,
                  int64_t ne3) {
    vt_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->t.struct_size = sizeof(llmh_tensor);
    t->t.type = type;
    t->t.n_dims = 4;
    t->t.ne[0] = ne0;
    t->t.ne[1] = ne1;
    t->t.ne[2] = ne2;
    t->t.ne[3] = ne3;
    t->t.nb[0] = llmh_dtype_type_size(type);
    t->t.nb[1] = t->t.nb[0] * (size_t)(ne0 / llmh_dtype_block_size(type));
    t->t.nb[2] = t->t.nb[1] * (size_t)ne1;
    t->t.nb[3] = t->t.nb[2] * (size_t)ne2;
    return alloc_with(p, be, t, t->t.nb[3] * (size_t)ne3);
}

vt_tensor *vt_new_strided(vt_plugin *p, llmh_backend *be, llmh_dtype type, const int64_t ne[4], const size_t nb[4],
                          size_t offset) {
    vt_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->t.struct_size = sizeof(llmh_tensor);
    t->t.type = type;
    t->t.n_dims = 4;
    size_t extent = llmh_dtype_type_size(type);
    for (int d = 0; d < 4; d++) {
        t->t.ne[d] = ne[d];
        t->t.nb[d] = nb[d];
        extent += (size_t)(ne[d] - 1) * nb[d];
    }
    t->t.offset = offset;
    return alloc_with(p, be, t, offset + extent + 64);
}

void vt_free(vt_plugin *p, llmh_backend *be, vt_tensor *t) {
    if (!t) return;
    p->be->buffer_free(be, t->buf);
    free(t);
}

int vt_upload(vt_plugin *p, llmh_backend *be, vt_tensor *t, const void *src, size_t n) {
    return p->be->buffer_write(be, t->buf, 0, src, n) == LLMH_OK ? 0 : -1;
}

int vt_download(vt_plugin *p, llmh_backend *be, vt_tensor *t, void *dst, size_t n) {
    return p->be->buffer_read(be, t->buf, 0, dst, n) == LLMH_OK ? 0 : -1;
}

static size_t at(const llmh_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return t->offset + (size_t)i0 * t->nb[0] + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
}

float vt_get(const llmh_tensor *t, const uint8_t *img, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const uint8_t *q = img + at(t, i0, i1, i2, i3);
    uint16_t h;
    float f;
    switch (t->type) {
    case LLMH_DTYPE_F16: memcpy(&h, q, 2); return llmh_fp16_to_fp32(h);
    case LLMH_DTYPE_BF16: memcpy(&h, q, 2); return llmh_bf16_to_fp32(h);
    default: memcpy(&f, q, 4); return f;
    }
}

void vt_set(const llmh_tensor *t, uint8_t *img, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v) {
    uint8_t *q = img + at(t, i0, i1, i2, i3);
    uint16_t h;
    switch (t->type) {
    case LLMH_DTYPE_F16: h = llmh_fp32_to_fp16(v); memcpy(q, &h, 2); break;
    case LLMH_DTYPE_BF16: h = llmh_fp32_to_bf16(v); memcpy(q, &h, 2); break;
    default: memcpy(q, &v, 4); break;
    }
}

uint32_t vt_rand(uint64_t *s) { return llmh_test_rand(s); }

float vt_randf(uint64_t *s) { return llmh_test_randf(s); }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = llmh_fp32_to_fp16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

void vt_random_weights(llmh_dtype type, void *dst, int64_t n, uint64_t *seed) {
    uint8_t *d = dst;
    switch (type) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16: case LLMH_DTYPE_Q4_0:
    case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1: case LLMH_DTYPE_Q8_0:
    case LLMH_DTYPE_Q8_1: {
        float *x = malloc((size_t)n * sizeof(float));
        if (!x) abort();
        for (int64_t i = 0; i < n; i++) x[i] = vt_randf(seed);
        if (llmh_quantize(type, x, dst, n) != LLMH_OK) abort();
        free(x);
        return;
    }
    default: break;
    }
    /* K-quants: random bits with small, sane scale fields */
    size_t ts = llmh_dtype_type_size(type);
    int64_t nb = n / llmh_dtype_block_size(type);
    for (size_t i = 0; i < (size_t)nb * ts; i++) d[i] = (uint8_t)vt_rand(seed);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = d + (size_t)b * ts;
        float s1 = 0.002f + 0.01f * (float)(vt_rand(seed) % 1000) / 1000.0f;
        float s2 = 0.002f + 0.01f * (float)(vt_rand(seed) % 1000) / 1000.0f;
        switch (type) {
        case LLMH_DTYPE_Q2_K: put_f16(blk + 80, s1); put_f16(blk + 82, s2); break;
        case LLMH_DTYPE_Q3_K: put_f16(blk + 108, s1); break;
        case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: put_f16(blk, s1); put_f16(blk + 2, s2); break;
        case LLMH_DTYPE_Q6_K: put_f16(blk + 208, s1); break;
        default: break;
        }
    }
}

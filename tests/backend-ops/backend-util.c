/* backend-util.c — see backend-util.h. */
#define _GNU_SOURCE
#include "backend-util.h"
#include "testutil.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BU_PLUGIN_FILE
#define BU_PLUGIN_FILE "libllmh-backend-cpu.so"
#endif

int bu_plugin_load(bu_plugin *p) {
    memset(p, 0, sizeof *p);
    if (llmh_test_plugin_open("libllmh-backend-cpu.so", BU_PLUGIN_FILE, LLMH_PLUGIN_BACKEND, &p->dl, &p->desc, &p->state)) return -1;
    p->be = (const llmh_backend_iface *)p->desc->iface;
    return 0;
}

void bu_plugin_unload(bu_plugin *p) {
    if (p->desc && p->desc->fini) p->desc->fini(p->state);
    if (p->dl) dlclose(p->dl);
    memset(p, 0, sizeof *p);
}

llmh_backend *bu_backend_create(bu_plugin *p, const char *kernels, int threads) {
    llmh_kv kv;
    llmh_kv_list list = {&kv, 0};
    if (kernels) {
        kv.key = "kernels";
        kv.value.type = LLMH_V_STRING;
        kv.value.v.s.ptr = kernels;
        kv.value.v.s.len = strlen(kernels);
        list.n = 1;
    }
    llmh_backend_params prm = {sizeof prm, -1, threads, &list};
    llmh_backend *be = NULL;
    if (p->be->create(p->state, &prm, &be) != LLMH_OK) return NULL;
    return be;
}

size_t bu_tensor_bytes(const llmh_tensor *t) {
    int64_t bs = llmh_dtype_block_size(t->type);
    return (size_t)(t->ne[0] / bs) * llmh_dtype_type_size(t->type) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

bu_tensor *bu_tensor_new(bu_plugin *p, llmh_backend *be, llmh_dtype type, int64_t ne0, int64_t ne1,
                         int64_t ne2, int64_t ne3) {
    bu_tensor *t = calloc(1, sizeof *t);
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
    size_t bytes = bu_tensor_bytes(&t->t);
    if (p->be->buffer_alloc(be, bytes, LLMH_BUFFER_COMPUTE, &t->buf) != LLMH_OK) {
        free(t);
        return NULL;
    }
    t->t.buffer = t->buf;
    t->t.data = p->be->buffer_host_ptr(be, t->buf);
    memset(t->t.data, 0, bytes);
    return t;
}

void bu_tensor_free(bu_plugin *p, llmh_backend *be, bu_tensor *t) {
    if (!t) return;
    p->be->buffer_free(be, t->buf);
    free(t);
}

uint32_t bu_rand(uint64_t *s) { return llmh_test_rand(s); }

float bu_randf(uint64_t *s) { return llmh_test_randf(s); }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = llmh_fp32_to_fp16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

void bu_random_weights(llmh_dtype type, void *dst, int64_t n, uint64_t *seed) {
    const llmh_host_api *host = llmh_host_api_get();
    uint8_t *d = dst;
    switch (type) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16: case LLMH_DTYPE_Q4_0:
    case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1: case LLMH_DTYPE_Q8_0: {
        float *x = malloc((size_t)n * sizeof(float));
        if (!x) abort();
        for (int64_t i = 0; i < n; i++) x[i] = bu_randf(seed);
        host->quantize(type, x, dst, n);
        free(x);
        return;
    }
    default: break;
    }
    size_t ts = llmh_dtype_type_size(type);
    int64_t nb = n / llmh_dtype_block_size(type);
    for (size_t i = 0; i < (size_t)nb * ts; i++) d[i] = (uint8_t)bu_rand(seed);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = d + (size_t)b * ts;
        float s1 = 0.002f + 0.01f * (float)(bu_rand(seed) % 1000) / 1000.0f;
        float s2 = 0.002f + 0.01f * (float)(bu_rand(seed) % 1000) / 1000.0f;
        switch (type) {
        case LLMH_DTYPE_Q2_K: put_f16(blk + 80, s1); put_f16(blk + 82, s2); break;
        case LLMH_DTYPE_Q3_K: put_f16(blk + 108, s1); break;
        case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: put_f16(blk, s1); put_f16(blk + 2, s2); break;
        case LLMH_DTYPE_Q6_K: put_f16(blk + 208, s1); break;
        default: break;
        }
    }
}

double bu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

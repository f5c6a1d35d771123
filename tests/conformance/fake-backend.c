/* fake-backend.c — a deliberately minimal backend for the conformance
 * suite's refusal test: one host-memory device that runs only ADD, MUL and
 * SCALE on contiguous F32 tensors. The core must refuse to load a model on
 * it, naming the first op it lacks. Built into a test-only directory (never
 * the build's plugin dir, never installed), so no other test sees it.
 */
#include <string.h>

#include "llmh-plugin.h"

static const llmh_host_api *g_host;

struct llmh_backend {
    int unused;
};

struct llmh_buffer {
    unsigned char *data;
    size_t size;
    int owned;
};

static llmh_status fake_init(const llmh_host_api *host, void **state) {
    g_host = host;
    *state = NULL;
    return LLMH_OK;
}

static int32_t fake_device_count(void *state) {
    (void)state;
    return 1;
}

static llmh_status fake_device_info(void *state, int32_t index, llmh_device_info *out) {
    (void)state;
    if (index != 0 || !out || out->struct_size < sizeof *out) {
        g_host->set_error("conformance-fake: no device %d", (int)index);
        return LLMH_ERR_INVALID_ARG;
    }
    uint32_t ss = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = ss;
    strcpy(out->name, "conformance fake device");
    strcpy(out->description, "add mul scale only");
    out->type = LLMH_DEVICE_OTHER;
    return LLMH_OK;
}

static llmh_status fake_create(void *state, const llmh_backend_params *params, llmh_backend **out) {
    (void)state;
    (void)params;
    *out = g_host->alloc(sizeof **out);
    return *out ? LLMH_OK : LLMH_ERR_NO_MEMORY;
}

static void fake_destroy(llmh_backend *be) { g_host->free(be); }

static int32_t fake_supports(llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    (void)be;
    return (op == LLMH_OP_ADD || op == LLMH_OP_MUL || op == LLMH_OP_SCALE) && t0 == LLMH_DTYPE_F32 &&
           t1 == LLMH_DTYPE_F32;
}

static llmh_status fake_buffer_alloc(llmh_backend *be, size_t size, uint32_t usage, llmh_buffer **out) {
    (void)be;
    (void)usage;
    llmh_buffer *b = g_host->alloc(sizeof *b);
    if (!b) return LLMH_ERR_NO_MEMORY;
    b->data = g_host->alloc_aligned(size ? size : 64, 64);
    if (!b->data) {
        g_host->free(b);
        return LLMH_ERR_NO_MEMORY;
    }
    b->size = size;
    b->owned = 1;
    *out = b;
    return LLMH_OK;
}

static void fake_buffer_free(llmh_backend *be, llmh_buffer *b) {
    (void)be;
    if (!b) return;
    g_host->free(b->data);
    g_host->free(b);
}

static void *fake_host_ptr(llmh_backend *be, llmh_buffer *b) {
    (void)be;
    return b ? b->data : NULL;
}

static llmh_status fake_write(llmh_backend *be, llmh_buffer *b, size_t off, const void *src, size_t n) {
    (void)be;
    if (off > b->size || n > b->size - off) return LLMH_ERR_INVALID_ARG;
    if (n) memcpy(b->data + off, src, n);
    return LLMH_OK;
}

static llmh_status fake_read(llmh_backend *be, llmh_buffer *b, size_t off, void *dst, size_t n) {
    (void)be;
    if (off > b->size || n > b->size - off) return LLMH_ERR_INVALID_ARG;
    if (n) memcpy(dst, b->data + off, n);
    return LLMH_OK;
}

static int contiguous_f32(const llmh_tensor *t) {
    return t && t->type == LLMH_DTYPE_F32 && t->data && t->nb[0] == 4 && t->nb[1] == 4 * (size_t)t->ne[0] &&
           t->nb[2] == t->nb[1] * (size_t)t->ne[1] && t->nb[3] == t->nb[2] * (size_t)t->ne[2];
}

static llmh_status fake_compute(llmh_backend *be, const llmh_graph *g) {
    (void)be;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const llmh_node *n = &g->nodes[i];
        const llmh_tensor *a = n->src[0], *b = n->src[1];
        llmh_tensor *d = n->dst;
        int ok = (n->op == LLMH_OP_ADD || n->op == LLMH_OP_MUL || n->op == LLMH_OP_SCALE) && contiguous_f32(a) &&
                 contiguous_f32(d) && (n->op == LLMH_OP_SCALE || contiguous_f32(b));
        for (int k = 0; ok && k < 4; k++) ok = d->ne[k] == a->ne[k] && (n->op == LLMH_OP_SCALE || a->ne[k] % b->ne[k] == 0);
        if (!ok) {
            g_host->set_error("conformance-fake: node %zu: op %d is not supported (only contiguous f32 add, mul, scale)",
                              i, (int)n->op);
            return LLMH_ERR_UNSUPPORTED;
        }
        int64_t cnt = a->ne[0] * a->ne[1] * a->ne[2] * a->ne[3];
        const float *x = a->data;
        float *y = d->data;
        for (int64_t j = 0; j < cnt; j++) {
            if (n->op == LLMH_OP_SCALE) {
                y[j] = x[j] * n->fp[0];
                continue;
            }
            int64_t i0 = j % a->ne[0], r = j / a->ne[0];
            int64_t i1 = r % a->ne[1], i2 = (r / a->ne[1]) % a->ne[2], i3 = r / (a->ne[1] * a->ne[2]);
            const float *z = b->data;
            float v = z[(i0 % b->ne[0]) + b->ne[0] * ((i1 % b->ne[1]) + b->ne[1] * ((i2 % b->ne[2]) + b->ne[2] * (i3 % b->ne[3])))];
            y[j] = n->op == LLMH_OP_ADD ? x[j] + v : x[j] * v;
        }
    }
    return LLMH_OK;
}

static const llmh_backend_iface fake_iface = {
    .struct_size = sizeof(llmh_backend_iface),
    .device_count = fake_device_count,
    .device_info = fake_device_info,
    .create = fake_create,
    .destroy = fake_destroy,
    .supports = fake_supports,
    .buffer_alloc = fake_buffer_alloc,
    .buffer_free = fake_buffer_free,
    .buffer_host_ptr = fake_host_ptr,
    .buffer_write = fake_write,
    .buffer_read = fake_read,
    .graph_compute = fake_compute,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_BACKEND, "conformance-fake", "0.1.0", "MIT",
                   "test-only backend that runs add, mul and scale", 0, NULL, fake_init, NULL, &fake_iface, NULL)

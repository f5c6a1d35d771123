/* vk-graph.c — validation and recording of a graph into ONE command buffer.
 *
 * Every node becomes one dispatch (two for MUL_MAT: activation preparation,
 * then the product). Each tensor is bound as a storage-buffer range that
 * starts at its offset rounded down to minStorageBufferOffsetAlignment; the
 * remainder and all strides travel in push constants, so any view works and
 * buffers larger than maxStorageBufferRange are fine as long as each view
 * fits. A barrier (compute write -> compute read/write) is recorded only when
 * a dispatch reads or writes a byte range that a dispatch since the last
 * barrier wrote, or writes a range one of them read. One submit, one fence.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vk-internal.h"

/* ------------------------------------------------------------------------ */
/* Support                                                                    */
/* ------------------------------------------------------------------------ */
static const char *op_name(llmh_op op) {
    static const char *names[] = {"NONE", "GET_ROWS", "MUL_MAT", "ADD", "MUL", "SCALE",
                                  "RMS_NORM", "ROPE", "SWIGLU", "SOFTMAX", "CPY", "ATTENTION",
                                  "SILU", "GELU", "LORA"};
    if ((unsigned)op < sizeof names / sizeof names[0]) return names[op];
    return "unknown";
}

static int is_float_type(llmh_dtype t) {
    return t == LLMH_DTYPE_F32 || t == LLMH_DTYPE_F16 || t == LLMH_DTYPE_BF16;
}

/* Types the shaders dequantize (dequant.glsl). */
static int shader_type(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16:
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1:
    case LLMH_DTYPE_Q8_0: case LLMH_DTYPE_Q8_1: case LLMH_DTYPE_Q2_K: case LLMH_DTYPE_Q3_K:
    case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: case LLMH_DTYPE_Q6_K:
        return 1;
    default: return 0;
    }
}

/* act_prep.comp MODE for a weight type: the SDK's dot type. */
static int prep_mode(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: return 0;
    case LLMH_DTYPE_F16: return 1;
    case LLMH_DTYPE_BF16: return 2;
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1:
    case LLMH_DTYPE_Q8_0:
        return 3;
    case LLMH_DTYPE_Q2_K: case LLMH_DTYPE_Q3_K: case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K:
    case LLMH_DTYPE_Q6_K:
        return 4;
    default: return -1;
    }
}

/* Floats per prepared activation column (act_prep.comp): MODE 3 stores the
 * K integers q and then the K/32 block scales d; the other modes K values. */
static uint64_t prep_col_floats(int mode, uint64_t k) { return mode == 3 ? k + k / 32 : k; }

int vk_op_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    (void)be;
    switch (op) {
    case LLMH_OP_NONE: return 1;
    case LLMH_OP_GET_ROWS: return shader_type(t0) && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_MUL_MAT: return prep_mode(t0) >= 0 && t1 == LLMH_DTYPE_F32;
    case LLMH_OP_ADD: case LLMH_OP_MUL: case LLMH_OP_SWIGLU: case LLMH_OP_SCALE: case LLMH_OP_RMS_NORM:
    case LLMH_OP_SOFTMAX: case LLMH_OP_SILU: case LLMH_OP_GELU:
        return t0 == LLMH_DTYPE_F32 && t1 == LLMH_DTYPE_F32;
    case LLMH_OP_ROPE: return t0 == LLMH_DTYPE_F32 && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_CPY: return is_float_type(t0) && is_float_type(t1);
    case LLMH_OP_ATTENTION: return t0 == LLMH_DTYPE_F32 && is_float_type(t1);
    case LLMH_OP_LORA: return (is_float_type(t0) || t0 == LLMH_DTYPE_Q8_0) && t1 == LLMH_DTYPE_F32;
    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                 */
/* ------------------------------------------------------------------------ */
static llmh_status nfail(llmh_backend *be, size_t index, const llmh_node *n, llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static llmh_status nfail(llmh_backend *be, size_t index, const llmh_node *n, llmh_status st, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *tn = n->dst && n->dst->name ? n->dst->name : "(unnamed)";
    be->host->set_error("vulkan backend: node %zu (%s -> %s): %s", index, op_name(n->op), tn, msg);
    return st;
}

static int same_shape(const llmh_tensor *a, const llmh_tensor *b) {
    for (int d = 0; d < LLMH_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return 0;
    return 1;
}

static int64_t n_elems(const llmh_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

static int is_contiguous(const llmh_tensor *t) {
    size_t s = llmh_dtype_type_size(t->type);
    if (t->nb[0] != s) return 0;
    size_t expect = s * (size_t)(t->ne[0] / llmh_dtype_block_size(t->type));
    for (int d = 1; d < LLMH_MAX_DIMS; d++) {
        if (t->ne[d] > 1 && t->nb[d] != expect) return 0;
        expect *= (size_t)t->ne[d];
    }
    return 1;
}

/* Bytes a view spans from its offset (last element's end). */
static size_t view_extent(const llmh_tensor *t) {
    int64_t bs = llmh_dtype_block_size(t->type);
    size_t extent = llmh_dtype_type_size(t->type);
    for (int d = 0; d < LLMH_MAX_DIMS; d++) {
        int64_t cnt = d == 0 ? t->ne[0] / bs : t->ne[d];
        if (cnt > 1) extent += (size_t)(cnt - 1) * t->nb[d];
    }
    return extent;
}

static llmh_status check_tensor(llmh_backend *be, size_t index, const llmh_node *n, const char *role,
                                const llmh_tensor *t) {
    if (!t) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s is missing", role);
    if ((unsigned)t->type >= LLMH_DTYPE_COUNT || llmh_dtype_type_size(t->type) == 0)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s has unknown type id %d", role, (int)t->type);
    if (!t->buffer) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s has no buffer", role);
    if (t->buffer->magic != VK_BUFFER_MAGIC)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s lives in a buffer of another backend", role);
    int64_t bs = llmh_dtype_block_size(t->type);
    size_t ts = llmh_dtype_type_size(t->type);
    /* 4-byte words for f32/i32, 2-byte halves for everything else */
    size_t al = ts % 4 == 0 ? 4 : 2;
    if (t->offset % al != 0)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s offset %zu is not %zu-byte aligned", role, t->offset, al);
    for (int d = 0; d < LLMH_MAX_DIMS; d++) {
        if (t->ne[d] <= 0 || t->ne[d] > ((int64_t)1 << 32))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s has bad ne[%d] = %lld", role, d, (long long)t->ne[d]);
        if (t->nb[d] % al != 0 || t->nb[d] > ((size_t)1 << 40))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s has bad nb[%d] = %zu", role, d, t->nb[d]);
    }
    if (t->ne[0] % bs != 0)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s: ne[0] = %lld is not a multiple of the %s block size %lld",
                     role, (long long)t->ne[0], llmh_dtype_name(t->type), (long long)bs);
    if (n_elems(t) > ((int64_t)1 << 31))
        return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "%s has more than 2^31 elements", role);
    size_t ext = view_extent(t);
    if (t->offset > t->buffer->size || ext > t->buffer->size - t->offset)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "%s view (%zu bytes at offset %zu) lies outside its buffer (%zu bytes)",
                     role, ext, t->offset, t->buffer->size);
    if ((VkDeviceSize)ext + be->align > be->max_range)
        return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "%s view of %zu bytes exceeds maxStorageBufferRange (%llu)", role,
                     ext, (unsigned long long)be->max_range);
    return LLMH_OK;
}

static llmh_status validate(llmh_backend *be, const llmh_node *n, size_t index) {
    llmh_status st;
    if (n->op == LLMH_OP_NONE) return LLMH_OK;
    if ((unsigned)n->op >= LLMH_OP_COUNT)
        return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "unknown op %d", (int)n->op);
    const llmh_tensor *d = n->dst, *a = n->src[0], *b = n->src[1], *c = n->src[2], *e = n->src[3];
    if ((st = check_tensor(be, index, n, "dst", d))) return st;
    if ((st = check_tensor(be, index, n, "src0", a))) return st;
    if (b && (st = check_tensor(be, index, n, "src1", b))) return st;
    if (c && (st = check_tensor(be, index, n, "src2", c))) return st;
    if (e && (st = check_tensor(be, index, n, "src3", e))) return st;
    llmh_dtype t1 = b ? b->type : LLMH_DTYPE_F32;
    if (n->op == LLMH_OP_CPY) t1 = d->type;
    if (!vk_op_supported(be, n->op, a->type, t1))
        return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "op %s is not supported for types %s, %s", op_name(n->op),
                     llmh_dtype_name(a->type), llmh_dtype_name(t1));
    if (n->op != LLMH_OP_CPY && d->type != LLMH_DTYPE_F32)
        return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst must be f32, not %s", llmh_dtype_name(d->type));
    switch (n->op) {
    case LLMH_OP_GET_ROWS:
        if (!b) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src1 (row ids) is missing");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[0] || b->ne[1] * b->ne[2] * b->ne[3] != 1 ||
            d->ne[2] * d->ne[3] != 1 || a->ne[2] * a->ne[3] != 1)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "shapes: dst [%lld, %lld] from src0 [%lld, %lld] and %lld ids",
                         (long long)d->ne[0], (long long)d->ne[1], (long long)a->ne[0], (long long)a->ne[1],
                         (long long)b->ne[0]);
        if (a->nb[0] != llmh_dtype_type_size(a->type))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src0 rows must be contiguous");
        break;
    case LLMH_OP_MUL_MAT:
        if (!b) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src1 is missing");
        if (a->ne[0] != b->ne[0] || d->ne[0] != a->ne[1] || d->ne[1] != b->ne[1] || d->ne[2] != b->ne[2] ||
            d->ne[3] != b->ne[3])
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "shapes: src0 [%lld, %lld] x src1 [%lld, %lld] -> dst [%lld, %lld]",
                         (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1],
                         (long long)d->ne[0], (long long)d->ne[1]);
        if (b->ne[2] % a->ne[2] != 0 || b->ne[3] % a->ne[3] != 0)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src0 batch dims do not divide src1's");
        if (a->nb[0] != llmh_dtype_type_size(a->type))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src0 rows must be contiguous");
        if (d->nb[0] != 4) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst must be contiguous along ne[0]");
        if (prep_col_floats(prep_mode(a->type), (uint64_t)a->ne[0]) * (uint64_t)(b->ne[1] * b->ne[2] * b->ne[3]) * 4u >
            (uint64_t)be->max_range / 2)
            return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "activations too large for one scratch range");
        break;
    case LLMH_OP_ADD: case LLMH_OP_MUL:
        if (!b) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src1 is missing");
        if (!same_shape(d, a)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst and src0 shapes differ");
        for (int k = 0; k < LLMH_MAX_DIMS; k++)
            if (a->ne[k] % b->ne[k] != 0)
                return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src1 ne[%d] = %lld does not divide src0's %lld", k,
                             (long long)b->ne[k], (long long)a->ne[k]);
        break;
    case LLMH_OP_SWIGLU:
        if (!b || !same_shape(a, b) || !same_shape(a, d))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src0, src1 and dst must have the same shape");
        break;
    case LLMH_OP_SCALE: case LLMH_OP_SOFTMAX: case LLMH_OP_SILU: case LLMH_OP_GELU:
        if (!same_shape(d, a)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst and src0 shapes differ");
        break;
    case LLMH_OP_RMS_NORM:
        if (!same_shape(d, a)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst and src0 shapes differ");
        if (b && (b->type != LLMH_DTYPE_F32 || b->ne[0] != a->ne[0]))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "weight src1 must be f32 [%lld]", (long long)a->ne[0]);
        break;
    case LLMH_OP_ROPE: {
        if (!same_shape(d, a)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst and src0 shapes differ");
        if (!b || b->ne[0] != a->ne[2])
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "src1 must hold %lld I32 positions", (long long)a->ne[2]);
        int32_t n_rot = n->ip[0], mode = n->ip[1];
        if (n_rot <= 0 || n_rot > a->ne[0] || n_rot % 2 != 0)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "n_rot %d must be even and in 1..%lld", n_rot,
                         (long long)a->ne[0]);
        if (mode != LLMH_ROPE_NORMAL && mode != LLMH_ROPE_NEOX)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "unknown rope mode %d", mode);
        if (c && (c->type != LLMH_DTYPE_F32 || c->ne[0] < n_rot / 2))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "freq factors src2 must be f32 [%d]", n_rot / 2);
        if (!(n->fp[0] > 0.0f)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "freq_base must be > 0");
        break;
    }
    case LLMH_OP_CPY:
        if (!same_shape(d, a) && !(n_elems(d) == n_elems(a) && is_contiguous(d) && is_contiguous(a)))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG,
                         "dst and src0 must have the same shape (or both be contiguous with the same element count)");
        break;
    case LLMH_OP_ATTENTION: {
        if (!b || !c) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "K (src1) and V (src2) are required");
        if (c->type != b->type) return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "K and V must have the same type");
        int64_t D = a->ne[0], H = a->ne[1], T = a->ne[2];
        if (b->ne[0] != D || c->ne[0] != D || b->ne[1] != c->ne[1] || b->ne[2] != c->ne[2])
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "K/V shapes do not match Q's head_dim or each other");
        if (H % b->ne[1] != 0)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "n_head %lld is not a multiple of n_kv_head %lld",
                         (long long)H, (long long)b->ne[1]);
        if (!same_shape(d, a)) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "dst and Q shapes differ");
        if (D > 512) return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "head_dim %lld > 512", (long long)D);
        if (a->ne[3] != 1 || b->ne[3] != 1 || c->ne[3] != 1)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "Q/K/V must be 3-D");
        if (n->ip[0] < 0 || (int64_t)n->ip[0] + T > b->ne[2])
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "n_past %d + n_tok %lld exceeds the %lld cached entries",
                         n->ip[0], (long long)T, (long long)b->ne[2]);
        if (n->ip[1] < 0) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "sliding window must be >= 0");
        break;
    }
    case LLMH_OP_LORA: {
        if (!b || !c) return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "x (src1) and B (src2) are required");
        if (c->type != a->type)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "A (src0, %s) and B (src2, %s) must have the same type",
                         llmh_dtype_name(a->type), llmh_dtype_name(c->type));
        /* a Q8_0 B comes transposed, [M, R] (its blocks run along M) */
        int bt = a->type == LLMH_DTYPE_Q8_0;
        int64_t K = a->ne[0], R = a->ne[1], M = c->ne[bt ? 0 : 1], N = b->ne[1];
        if (b->ne[0] != K || c->ne[bt ? 1 : 0] != R || d->ne[0] != M || d->ne[1] != N)
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG,
                         "shapes: A [%lld, %lld], x [%lld, %lld], B%s [%lld, %lld] -> dst [%lld, %lld]", (long long)K,
                         (long long)R, (long long)b->ne[0], (long long)N, bt ? " transposed" : "",
                         (long long)c->ne[0], (long long)c->ne[1], (long long)d->ne[0], (long long)d->ne[1]);
        const llmh_tensor *flat[4] = {a, b, c, d};
        for (int i = 0; i < 4; i++)
            if (flat[i]->ne[2] != 1 || flat[i]->ne[3] != 1)
                return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "A, x, B and dst must be 2-D");
        if (a->nb[0] != llmh_dtype_type_size(a->type) || c->nb[0] != llmh_dtype_type_size(c->type))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "A and B rows must be contiguous");
        if (e && (e->type != LLMH_DTYPE_F32 || e->ne[0] != N || e->ne[1] * e->ne[2] * e->ne[3] != 1))
            return nfail(be, index, n, LLMH_ERR_INVALID_ARG, "gate src3 must be f32 [%lld]", (long long)N);
        if ((uint64_t)R * (uint64_t)N * 4u > (uint64_t)be->max_range / 2 ||
            (uint64_t)M * (uint64_t)N * 4u > (uint64_t)be->max_range / 2)
            return nfail(be, index, n, LLMH_ERR_UNSUPPORTED, "r or y too large for one scratch range");
        break;
    }
    default: break;
    }
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Recording                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct vk_view {
    const llmh_buffer *buf;
    VkDeviceSize base, range; /* bound range */
    uint32_t off;             /* byte offset of element 0 inside the range */
} vk_view;

static void view_of_range(const llmh_backend *be, const llmh_buffer *buf, VkDeviceSize offset, VkDeviceSize extent,
                          vk_view *v) {
    v->buf = buf;
    v->base = offset & ~(be->align - 1);
    v->off = (uint32_t)(offset - v->base);
    VkDeviceSize r = ((VkDeviceSize)v->off + extent + 3) & ~(VkDeviceSize)3;
    if (v->base + r > buf->alloc_size) r = buf->alloc_size - v->base;
    v->range = r;
}

static void view_of(const llmh_backend *be, const llmh_tensor *t, vk_view *v) {
    view_of_range(be, t->buffer, t->offset, view_extent(t), v);
}

typedef struct rec {
    VkDeviceSize scratch_cur;     /* ring cursor in be->scratch */
    /* last prepared activations, reused by the next MUL_MAT on the same src1 */
    int cached;
    llmh_tensor cache_src;
    int cache_mode;
    VkDeviceSize cache_off, cache_bytes;
} rec;

/* `bytes` of the scratch ring (256-aligned offsets, so views of it start at
 * byte 0 of their range). Wrapping is safe: the barrier tracker orders the
 * reuse after earlier readers. Invalidates cached activations it overwrites. */
static VkDeviceSize scratch_alloc(llmh_backend *be, rec *rc, VkDeviceSize bytes) {
    VkDeviceSize need = (bytes + 255) & ~(VkDeviceSize)255;
    if (rc->scratch_cur + need > be->scratch->alloc_size) rc->scratch_cur = 0;
    VkDeviceSize off = rc->scratch_cur;
    rc->scratch_cur += need;
    if (rc->cached && off < rc->cache_off + rc->cache_bytes && rc->cache_off < off + need) rc->cached = 0;
    return off;
}

static int overlap(const vk_range *list, size_t n, const llmh_buffer *buf, VkDeviceSize lo, VkDeviceSize hi) {
    for (size_t i = 0; i < n; i++)
        if (list[i].buf == buf && list[i].lo < hi && lo < list[i].hi) return 1;
    return 0;
}

/* Append a view's byte range to the pending reads (is_write 0) or writes. */
static llmh_status push_range(llmh_backend *be, int is_write, const vk_view *v) {
    if (be->n_pend_r >= be->cap_pend || be->n_pend_w >= be->cap_pend) {
        size_t cap = be->cap_pend ? be->cap_pend * 2 : 64;
        vk_range *r = be->host->alloc(cap * sizeof *r), *w = be->host->alloc(cap * sizeof *w);
        if (!r || !w) {
            be->host->free(r);
            be->host->free(w);
            be->host->set_error("vulkan backend: out of memory tracking buffer ranges");
            return LLMH_ERR_NO_MEMORY;
        }
        if (be->n_pend_r) memcpy(r, be->pend_r, be->n_pend_r * sizeof *r);
        if (be->n_pend_w) memcpy(w, be->pend_w, be->n_pend_w * sizeof *w);
        be->host->free(be->pend_r);
        be->host->free(be->pend_w);
        be->pend_r = r;
        be->pend_w = w;
        be->cap_pend = cap;
    }
    vk_range rg = {v->buf, v->base + v->off, v->base + v->range};
    if (is_write)
        be->pend_w[be->n_pend_w++] = rg;
    else
        be->pend_r[be->n_pend_r++] = rg;
    return LLMH_OK;
}

static void barrier(llmh_backend *be) {
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, VK_ACCESS_SHADER_WRITE_BIT,
                          VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    be->vd.vkCmdPipelineBarrier(be->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                                1, &mb, 0, NULL, 0, NULL);
    be->n_pend_r = be->n_pend_w = 0;
    be->n_barriers++;
}

/* Record one dispatch: binds[0] is written, binds[1..3] read, binds[4] (aux
 * scratch, element 0 at byte 0 of its range) read and written; NULL = unused. */
static llmh_status dispatch(llmh_backend *be, vk_shader sh, uint32_t c0, uint32_t c1, const vk_view *binds[5],
                            vk_pc *pc, uint64_t groups) {
    llmh_status s;
    VkPipeline pipe;
    if ((s = vk_pipeline(be, sh, c0, c1, &pipe))) return s;
    /* hazards */
    int hazard = 0;
    for (int i = 0; i < 5 && !hazard; i++) {
        const vk_view *v = binds[i];
        if (!v) continue;
        VkDeviceSize lo = v->base + v->off, hi = v->base + v->range;
        if (overlap(be->pend_w, be->n_pend_w, v->buf, lo, hi)) hazard = 1;
        if ((i == 0 || i == 4) && overlap(be->pend_r, be->n_pend_r, v->buf, lo, hi)) hazard = 1;
    }
    if (hazard) barrier(be);
    for (int i = 1; i < 5; i++)
        if (binds[i] && (s = push_range(be, 0, binds[i]))) return s;
    if ((s = push_range(be, 1, binds[0]))) return s;
    if (binds[4] && (s = push_range(be, 1, binds[4]))) return s;

    VkDescriptorSet set;
    VkDescriptorSetAllocateInfo ai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, NULL, be->dpool, 1, &be->dsl};
    if ((s = vk_check(be, be->vd.vkAllocateDescriptorSets(be->dev, &ai, &set), "vkAllocateDescriptorSets"))) return s;
    VkDescriptorBufferInfo bi[VK_N_BINDINGS];
    VkWriteDescriptorSet w[VK_N_BINDINGS];
    for (int i = 0; i < VK_N_BINDINGS; i++) {
        const vk_view *v = i < 4 ? binds[i] : i == 5 ? binds[4] : NULL;
        if (v) {
            bi[i] = (VkDescriptorBufferInfo){v->buf->buf, v->base, v->range};
        } else {
            bi[i] = (VkDescriptorBufferInfo){be->status->buf, 0, VK_WHOLE_SIZE};
        }
        w[i] = (VkWriteDescriptorSet){VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, NULL, set, (uint32_t)i, 0, 1,
                                      VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, NULL, &bi[i], NULL};
    }
    be->vd.vkUpdateDescriptorSets(be->dev, VK_N_BINDINGS, w, 0, NULL);
    pc->off_d = binds[0]->off;
    pc->off_a = binds[1] ? binds[1]->off : 0;
    pc->off_b = binds[2] ? binds[2]->off : 0;
    pc->off_c = binds[3] ? binds[3]->off : 0;
    uint64_t gx = groups < be->max_groups_x ? groups : be->max_groups_x;
    if (gx == 0) return LLMH_OK;
    uint64_t gy = (groups + gx - 1) / gx;
    if (gy > 65535) {
        be->host->set_error("vulkan backend: dispatch of %llu workgroups is too large", (unsigned long long)groups);
        return LLMH_ERR_UNSUPPORTED;
    }
    be->vd.vkCmdBindPipeline(be->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    be->vd.vkCmdBindDescriptorSets(be->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, be->playout, 0, 1, &set, 0, NULL);
    be->vd.vkCmdPushConstants(be->cmd, be->playout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof *pc, pc);
    be->vd.vkCmdDispatch(be->cmd, (uint32_t)gx, (uint32_t)gy, 1);
    be->n_dispatches++;
    return LLMH_OK;
}

static void set4(uint32_t out[4], const size_t in[4]) {
    for (int i = 0; i < 4; i++) out[i] = (uint32_t)in[i];
}

static void set4ne(uint32_t out[4], const int64_t in[4]) {
    for (int i = 0; i < 4; i++) out[i] = (uint32_t)in[i];
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static int same_view(const llmh_tensor *a, const llmh_tensor *b) {
    if (a->buffer != b->buffer || a->offset != b->offset || a->type != b->type) return 0;
    for (int d = 0; d < LLMH_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d] || a->nb[d] != b->nb[d]) return 0;
    return 1;
}

static llmh_status record_mul_mat(llmh_backend *be, rec *rc, const llmh_node *n) {
    const llmh_tensor *w = n->src[0], *x = n->src[1];
    llmh_tensor *d = n->dst;
    llmh_status s;
    uint64_t K = (uint64_t)w->ne[0], M = (uint64_t)w->ne[1], N = (uint64_t)x->ne[1];
    uint64_t B2 = (uint64_t)x->ne[2], B3 = (uint64_t)x->ne[3], ncol = N * B2 * B3;
    int mode = prep_mode(w->type);
    VkDeviceSize bytes = (VkDeviceSize)(prep_col_floats(mode, K) * ncol * 4);
    vk_view xs_v, w_v, x_v, d_v;
    VkDeviceSize soff;
    if (rc->cached && rc->cache_mode == mode && same_view(&rc->cache_src, x)) {
        soff = rc->cache_off;
    } else {
        soff = scratch_alloc(be, rc, bytes);
        vk_pc pc;
        memset(&pc, 0, sizeof pc);
        set4ne(pc.ne, x->ne);
        set4(pc.anb, x->nb);
        view_of(be, x, &x_v);
        view_of_range(be, be->scratch, soff, bytes, &xs_v);
        const vk_view *bp[5] = {&xs_v, &x_v, NULL, NULL, NULL};
        uint64_t threads = mode <= 2 ? K * ncol : (K / (mode == 3 ? 32 : 256)) * ncol;
        if ((s = dispatch(be, VK_SH_ACT_PREP, (uint32_t)mode, 0, bp, &pc, ceil_div(threads, 64)))) return s;
        rc->cached = 1;
        rc->cache_src = *x;
        rc->cache_mode = mode;
        rc->cache_off = soff;
        rc->cache_bytes = bytes;
    }
    vk_pc pc;
    memset(&pc, 0, sizeof pc);
    set4ne(pc.ne, d->ne);
    set4(pc.anb, w->nb);
    set4(pc.dnb, d->nb);
    pc.x[0] = (uint32_t)K;
    pc.x[1] = (uint32_t)(B2 / (uint64_t)w->ne[2]);
    pc.x[2] = (uint32_t)(B3 / (uint64_t)w->ne[3]);
    view_of(be, w, &w_v);
    view_of(be, d, &d_v);
    view_of_range(be, be->scratch, soff, bytes, &xs_v);
    const vk_view *bp[5] = {&d_v, &w_v, &xs_v, NULL, NULL};
    if (N < 8)
        return dispatch(be, be->use_subgroups ? VK_SH_MUL_MAT_VEC_SG : VK_SH_MUL_MAT_VEC, (uint32_t)w->type, 0, bp, &pc,
                        ceil_div(M, 4) * N * B2 * B3);
    return dispatch(be, VK_SH_MUL_MAT_TILED, (uint32_t)w->type, 0, bp, &pc,
                    ceil_div(M, 64) * ceil_div(N, 64) * B2 * B3);
}


/* ------------------------------------------------------------------------ */
/* LORA: r = A x (MODE 0), then dst += c * B r (MODE 1). A group of
 * consecutive LORA nodes on one dst and one x (several adapters on one
 * projection) is recorded as: every r_i (no barriers between them), every
 * adapter's term z_i = c_i * B_i r_i into scratch (MODE 2, again
 * independent), then one MODE 3 pass that adds the z_i to dst in node
 * order; two barriers per group instead of two per adapter, and the sums
 * are the same roundings as node by node (dst + z_0 + z_1 + ..., left to
 * right).                                                                   */
/* ------------------------------------------------------------------------ */
#define VK_LORA_MAX_GROUP 32

static int views_overlap(const llmh_tensor *a, const llmh_tensor *b) {
    if (!a || !b || a->buffer != b->buffer) return 0;
    size_t alo = a->offset, ahi = alo + view_extent(a), blo = b->offset, bhi = blo + view_extent(b);
    return alo < bhi && blo < ahi;
}

static int lora_fusable(const llmh_node *n) {
    return !views_overlap(n->dst, n->src[0]) && !views_overlap(n->dst, n->src[1]) &&
           !views_overlap(n->dst, n->src[2]) && !views_overlap(n->dst, n->src[3]);
}

static VkDeviceSize align256(VkDeviceSize n) { return (n + 255) & ~(VkDeviceSize)255; }

/* Nodes from nodes[0] (a LORA) recorded as one group, and the scratch bytes
 * the group needs (the r_i, then for a group of several the z_i). */
static size_t lora_group(const llmh_backend *be, const llmh_node *nodes, size_t n_nodes, VkDeviceSize *bytes) {
    const llmh_tensor *x = nodes[0].src[1], *d = nodes[0].dst;
    uint64_t N = (uint64_t)x->ne[1], M = (uint64_t)d->ne[0];
    VkDeviceSize rbytes = align256((VkDeviceSize)((uint64_t)nodes[0].src[0]->ne[1] * N * 4));
    size_t g = 1;
    if (lora_fusable(&nodes[0]))
        while (g < n_nodes && g < VK_LORA_MAX_GROUP && nodes[g].op == LLMH_OP_LORA &&
               same_view(nodes[g].dst, d) && same_view(nodes[g].src[1], x) && lora_fusable(&nodes[g]) &&
               (VkDeviceSize)((g + 1) * M * N * 4) <= be->max_range / 2) {
            rbytes += align256((VkDeviceSize)((uint64_t)nodes[g].src[0]->ne[1] * N * 4));
            g++;
        }
    *bytes = rbytes + (g > 1 ? align256((VkDeviceSize)(g * M * N * 4)) : 0);
    return g;
}

/* A write to `d` invalidates cached MUL_MAT activations it overlaps. */
static void invalidate_cache(rec *rc, const llmh_tensor *d) {
    if (rc->cached && d->buffer == rc->cache_src.buffer) {
        size_t lo = d->offset, hi = d->offset + view_extent(d);
        size_t clo = rc->cache_src.offset, chi = clo + view_extent(&rc->cache_src);
        if (lo < chi && clo < hi) rc->cached = 0;
    }
}

static llmh_status record_lora(llmh_backend *be, rec *rc, const llmh_node *nodes, size_t cnt, VkDeviceSize bytes) {
    const llmh_tensor *x = nodes[0].src[1];
    llmh_tensor *d = nodes[0].dst;
    uint64_t N = (uint64_t)x->ne[1], M = (uint64_t)d->ne[0], K = (uint64_t)x->ne[0];
    llmh_status s;
    invalidate_cache(rc, d);
    VkDeviceSize base = scratch_alloc(be, rc, bytes), roff[VK_LORA_MAX_GROUP], off = base;
    for (size_t i = 0; i < cnt; i++) {
        roff[i] = off;
        off += align256((VkDeviceSize)((uint64_t)nodes[i].src[0]->ne[1] * N * 4));
    }
    VkDeviceSize zoff = off, zbytes = (VkDeviceSize)(cnt * M * N * 4);
    vk_view xv, dv, av, bv, gv, rv, zv;
    view_of(be, x, &xv);
    view_of(be, d, &dv);
    /* phase 1: every r_i = A_i x */
    for (size_t i = 0; i < cnt; i++) {
        const llmh_node *n = &nodes[i];
        const llmh_tensor *a = n->src[0], *g = n->src[3];
        uint64_t R = (uint64_t)a->ne[1];
        vk_pc pc;
        memset(&pc, 0, sizeof pc);
        pc.ne[0] = (uint32_t)R;
        pc.ne[1] = (uint32_t)N;
        pc.ne[2] = pc.ne[3] = 1;
        set4(pc.anb, a->nb);
        set4(pc.bnb, x->nb);
        pc.x[0] = (uint32_t)K;
        pc.x[1] = g != NULL;
        pc.x[2] = g ? (uint32_t)g->nb[0] : 0;
        view_of(be, a, &av);
        if (g) view_of(be, g, &gv);
        view_of_range(be, be->scratch, roff[i], (VkDeviceSize)(R * N * 4), &rv);
        const vk_view *bp[5] = {&rv, &av, &xv, g ? &gv : NULL, NULL};
        if ((s = dispatch(be, VK_SH_LORA, (uint32_t)a->type, 0, bp, &pc, R * N))) return s;
    }
    /* phase 2: a lone node adds into dst; a group writes every z_i */
    for (size_t i = 0; i < cnt; i++) {
        const llmh_node *n = &nodes[i];
        const llmh_tensor *b = n->src[2], *g = n->src[3];
        uint64_t R = (uint64_t)n->src[0]->ne[1];
        int direct = cnt == 1;
        vk_pc pc;
        memset(&pc, 0, sizeof pc);
        pc.ne[0] = (uint32_t)M;
        pc.ne[1] = (uint32_t)N;
        pc.ne[2] = pc.ne[3] = 1;
        set4(pc.anb, b->nb);
        set4(pc.dnb, d->nb);
        pc.x[0] = (uint32_t)R;
        pc.x[1] = g != NULL;
        pc.x[2] = g ? (uint32_t)g->nb[0] : 0;
        pc.fp0 = n->fp[0];
        view_of(be, b, &bv);
        if (g) view_of(be, g, &gv);
        view_of_range(be, be->scratch, roff[i], (VkDeviceSize)(R * N * 4), &rv);
        vk_view zi;
        if (!direct) view_of_range(be, be->scratch, zoff + (VkDeviceSize)(i * M * N * 4), (VkDeviceSize)(M * N * 4), &zi);
        const vk_view *bp[5] = {direct ? &dv : &zi, &bv, &rv, g ? &gv : NULL, NULL};
        if ((s = dispatch(be, VK_SH_LORA, (uint32_t)b->type, direct ? 1 : 2, bp, &pc, ceil_div(M * N, 64)))) return s;
    }
    if (cnt == 1) return LLMH_OK;
    /* phase 3: dst + z_0 + z_1 + ..., left to right */
    vk_pc pc;
    memset(&pc, 0, sizeof pc);
    pc.ne[0] = (uint32_t)M;
    pc.ne[1] = (uint32_t)N;
    pc.ne[2] = pc.ne[3] = 1;
    set4(pc.dnb, d->nb);
    pc.x[0] = (uint32_t)cnt;
    view_of_range(be, be->scratch, zoff, zbytes, &zv);
    const vk_view *bp[5] = {&dv, &zv, NULL, NULL, NULL};
    return dispatch(be, VK_SH_LORA, (uint32_t)nodes[0].src[0]->type, 3, bp, &pc, ceil_div(M * N, 64));
}

/* Splits of decode attention: the most keys any query sees, VK_ATTN_SPLIT
 * per split, used only when the (head, token) pairs alone are too few
 * workgroups to fill a GPU. */
static uint64_t attn_splits(const llmh_node *n) {
    const llmh_tensor *q = n->src[0];
    uint64_t ht = (uint64_t)(q->ne[1] * q->ne[2]);
    uint64_t vis = (uint64_t)n->ip[0] + (uint64_t)q->ne[2];
    if (n->ip[1] > 0 && (uint64_t)n->ip[1] < vis) vis = (uint64_t)n->ip[1];
    uint64_t ns = (vis + VK_ATTN_SPLIT - 1) / VK_ATTN_SPLIT;
    if (ns < 2 || ht >= 1024) return 1;
    return ns;
}

/* aux floats: (max, sum) and a D-vector per (head, token, split) */
static VkDeviceSize attn_aux_bytes(const llmh_node *n) {
    const llmh_tensor *q = n->src[0];
    uint64_t g = (uint64_t)(q->ne[1] * q->ne[2]) * attn_splits(n);
    return (VkDeviceSize)(g * (2 + (uint64_t)q->ne[0]) * 4);
}

static llmh_status record_node(llmh_backend *be, rec *rc, const llmh_node *n) {
    const llmh_tensor *a = n->src[0], *b = n->src[1], *c = n->src[2];
    llmh_tensor *d = n->dst;
    vk_view dv, av, bv, cv;
    vk_pc pc;
    memset(&pc, 0, sizeof pc);
    if (n->op == LLMH_OP_NONE) return LLMH_OK;
    /* a write into the cached activations' source invalidates them */
    invalidate_cache(rc, d);
    if (n->op == LLMH_OP_MUL_MAT) return record_mul_mat(be, rc, n);
    view_of(be, d, &dv);
    view_of(be, a, &av);
    if (b) view_of(be, b, &bv);
    if (c) view_of(be, c, &cv);
    const vk_view *bp[5] = {&dv, &av, b ? &bv : NULL, c ? &cv : NULL, NULL};
    set4ne(pc.ne, d->ne);
    set4(pc.dnb, d->nb);
    set4(pc.anb, a->nb);
    if (b) {
        set4(pc.bnb, b->nb);
        set4ne(pc.bne, b->ne);
    }
    uint64_t ne = (uint64_t)n_elems(d), rows = (uint64_t)(d->ne[1] * d->ne[2] * d->ne[3]);
    switch (n->op) {
    case LLMH_OP_GET_ROWS:
        pc.x[0] = (uint32_t)a->ne[1];
        return dispatch(be, VK_SH_GET_ROWS, (uint32_t)a->type, 0, bp, &pc, ceil_div(ne, 256));
    case LLMH_OP_ADD: case LLMH_OP_MUL:
        return dispatch(be, VK_SH_BINARY, n->op == LLMH_OP_MUL, 0, bp, &pc, ceil_div(ne, 256));
    case LLMH_OP_SCALE: case LLMH_OP_SILU: case LLMH_OP_GELU: case LLMH_OP_SWIGLU: {
        uint32_t op = n->op == LLMH_OP_SCALE ? 0 : n->op == LLMH_OP_SILU ? 1 : n->op == LLMH_OP_GELU ? 2 : 3;
        pc.fp0 = n->fp[0];
        if (op != 3) bp[2] = NULL;
        return dispatch(be, VK_SH_UNARY, op, 0, bp, &pc, ceil_div(ne, 256));
    }
    case LLMH_OP_RMS_NORM:
        pc.x[0] = b != NULL;
        pc.fp0 = n->fp[0];
        return dispatch(be, VK_SH_RMS_NORM, 0, 0, bp, &pc, rows);
    case LLMH_OP_SOFTMAX:
        pc.fp0 = n->fp[0] == 0.0f ? 1.0f : n->fp[0];
        return dispatch(be, VK_SH_SOFTMAX, 0, 0, bp, &pc, rows);
    case LLMH_OP_ROPE:
        pc.x[0] = c != NULL;
        pc.x[1] = !same_view(d, a);
        pc.x[2] = c ? (uint32_t)c->nb[0] : 0;
        pc.ip0 = n->ip[0];
        pc.ip1 = n->ip[1];
        pc.fp0 = n->fp[0];
        pc.fp1 = n->fp[1];
        return dispatch(be, VK_SH_ROPE, 0, 0, bp, &pc, ceil_div(ne, 256));
    case LLMH_OP_CPY:
        if (!same_shape(d, a)) { /* both contiguous: one flat row */
            memset(pc.ne, 0, sizeof pc.ne);
            pc.ne[0] = (uint32_t)ne;
            pc.ne[1] = pc.ne[2] = pc.ne[3] = 1;
            pc.anb[0] = (uint32_t)llmh_dtype_type_size(a->type);
            pc.dnb[0] = (uint32_t)llmh_dtype_type_size(d->type);
        }
        return dispatch(be, VK_SH_CPY, (uint32_t)a->type, (uint32_t)d->type, bp, &pc, ceil_div(ne, 256));
    case LLMH_OP_ATTENTION: {
        pc.x[0] = (uint32_t)b->ne[1];
        pc.x[1] = (uint32_t)c->nb[0];
        pc.x[2] = (uint32_t)c->nb[1];
        pc.x[3] = (uint32_t)c->nb[2];
        pc.ip0 = n->ip[0];
        pc.ip1 = n->ip[1];
        pc.fp0 = n->fp[0];
        pc.fp1 = n->fp[1];
        memset(pc.bne, 0, sizeof pc.bne);
        uint64_t ht = (uint64_t)(a->ne[1] * a->ne[2]), nsplit = attn_splits(n);
        if (nsplit < 2) return dispatch(be, VK_SH_ATTENTION, (uint32_t)b->type, 3, bp, &pc, ht);
        /* decode: split the keys so that enough workgroups run */
        VkDeviceSize bytes = attn_aux_bytes(n);
        vk_view xv;
        view_of_range(be, be->scratch, scratch_alloc(be, rc, bytes), bytes, &xv);
        pc.bne[0] = (uint32_t)nsplit;
        pc.bne[1] = VK_ATTN_SPLIT;
        if (xv.off != 0) {
            be->host->set_error("vulkan backend: attention scratch is not aligned (minStorageBufferOffsetAlignment %llu)",
                                (unsigned long long)be->align);
            return LLMH_ERR_INTERNAL;
        }
        llmh_status s;
        /* phases 0 and 1 write only the aux scratch (bound as dst too, for the
         * barrier tracker); phase 2 reads it and writes dst */
        const vk_view *p01[5] = {&xv, &av, &bv, &cv, &xv};
        if ((s = dispatch(be, VK_SH_ATTENTION, (uint32_t)b->type, 0, p01, &pc, ht * nsplit))) return s;
        if ((s = dispatch(be, VK_SH_ATTENTION, (uint32_t)b->type, 1, p01, &pc, ht * nsplit))) return s;
        const vk_view *p2[5] = {&dv, NULL, NULL, NULL, &xv};
        /* attention.comp's workgroups are 64 wide */
        return dispatch(be, VK_SH_ATTENTION, (uint32_t)b->type, 2, p2, &pc, ceil_div(ht * (uint64_t)a->ne[0], 64));
    }
    default:
        be->host->set_error("vulkan backend: op %s is not supported", op_name(n->op));
        return LLMH_ERR_UNSUPPORTED;
    }
}

/* Scratch ring for MUL_MAT activations: at least twice the largest need, so
 * consecutive products rarely wait on each other. */
static llmh_status ensure_scratch(llmh_backend *be, const llmh_graph *g) {
    VkDeviceSize need = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const llmh_node *n = &g->nodes[i];
        VkDeviceSize b;
        if (n->op == LLMH_OP_LORA) {
            size_t cnt = lora_group(be, n, g->n_nodes - i, &b);
            i += cnt - 1;
        } else if (n->op == LLMH_OP_ATTENTION && attn_splits(n) > 1) {
            b = attn_aux_bytes(n);
        } else if (n->op == LLMH_OP_MUL_MAT) {
            const llmh_tensor *x = n->src[1];
            b = (VkDeviceSize)(prep_col_floats(prep_mode(n->src[0]->type), (uint64_t)x->ne[0]) *
                               (uint64_t)(x->ne[1] * x->ne[2] * x->ne[3])) * 4;
        } else {
            continue;
        }
        b = (b + 255) & ~(VkDeviceSize)255;
        if (b > need) need = b;
    }
    if (need == 0) return LLMH_OK;
    VkDeviceSize want = need * 2;
    if (want > be->max_range) want = need;
    if (be->scratch && be->scratch->alloc_size >= want) return LLMH_OK;
    vk_buffer_destroy(be, be->scratch);
    be->scratch = NULL;
    return vk_buffer_create(be, (size_t)want, LLMH_BUFFER_COMPUTE, 0, &be->scratch);
}

static llmh_status ensure_pool(llmh_backend *be, uint32_t sets) {
    if (be->dpool && be->dpool_cap >= sets) {
        return vk_check(be, be->vd.vkResetDescriptorPool(be->dev, be->dpool, 0), "vkResetDescriptorPool");
    }
    if (be->dpool) be->vd.vkDestroyDescriptorPool(be->dev, be->dpool, NULL);
    be->dpool = VK_NULL_HANDLE;
    uint32_t cap = 256;
    while (cap < sets) cap *= 2;
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, cap * VK_N_BINDINGS};
    VkDescriptorPoolCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, NULL, 0, cap, 1, &ps};
    llmh_status s = vk_check(be, be->vd.vkCreateDescriptorPool(be->dev, &ci, NULL, &be->dpool), "vkCreateDescriptorPool");
    if (s == LLMH_OK) be->dpool_cap = cap;
    return s;
}

void vk_graph_release(llmh_backend *be) {
    be->host->free(be->pend_r);
    be->host->free(be->pend_w);
    be->pend_r = be->pend_w = NULL;
    be->cap_pend = be->n_pend_r = be->n_pend_w = 0;
}

llmh_status vk_graph_compute(llmh_backend *be, const llmh_graph *g) {
    llmh_status s;
    for (size_t i = 0; i < g->n_nodes; i++)
        if ((s = validate(be, &g->nodes[i], i))) return s;
    if (g->n_nodes > UINT32_MAX / 4) {
        be->host->set_error("vulkan backend: graph of %zu nodes is too large", g->n_nodes);
        return LLMH_ERR_UNSUPPORTED;
    }
    if ((s = ensure_scratch(be, g))) return s;
    if ((s = ensure_pool(be, (uint32_t)g->n_nodes * 3 + 1))) return s; /* <= 3 dispatches per node */
    memset(be->status->map, 0, 4);
    be->n_pend_r = be->n_pend_w = 0;
    be->n_barriers = be->n_dispatches = 0;
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL,
                                   VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT, NULL};
    if ((s = vk_check(be, be->vd.vkResetCommandBuffer(be->cmd, 0), "vkResetCommandBuffer"))) return s;
    if ((s = vk_check(be, be->vd.vkBeginCommandBuffer(be->cmd, &bi), "vkBeginCommandBuffer"))) return s;
    rec rc;
    memset(&rc, 0, sizeof rc);
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == LLMH_OP_LORA) {
            VkDeviceSize bytes;
            size_t cnt = lora_group(be, &g->nodes[i], g->n_nodes - i, &bytes);
            s = record_lora(be, &rc, &g->nodes[i], cnt, bytes);
            i += cnt - 1;
        } else {
            s = record_node(be, &rc, &g->nodes[i]);
        }
        if (s) {
            be->vd.vkEndCommandBuffer(be->cmd);
            return s;
        }
    }
    /* make shader writes visible to host reads and to later transfers */
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, VK_ACCESS_SHADER_WRITE_BIT,
                          VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    be->vd.vkCmdPipelineBarrier(be->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0,
                                NULL);
    if ((s = vk_check(be, be->vd.vkEndCommandBuffer(be->cmd), "vkEndCommandBuffer"))) return s;
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &be->cmd, 0, NULL};
    if ((s = vk_check(be, be->vd.vkResetFences(be->dev, 1, &be->fence), "vkResetFences"))) return s;
    if ((s = vk_check(be, be->vd.vkQueueSubmit(be->queue, 1, &si, be->fence), "vkQueueSubmit"))) return s;
    if ((s = vk_check(be, be->vd.vkWaitForFences(be->dev, 1, &be->fence, VK_TRUE, UINT64_MAX), "vkWaitForFences")))
        return s;
    uint32_t status;
    memcpy(&status, be->status->map, 4);
    if (status & 1u) {
        be->host->set_error("vulkan backend: GET_ROWS: a row id is outside the table (those rows were zeroed)");
        return LLMH_ERR_INVALID_ARG;
    }
    be->host->log(LLMH_LOG_DEBUG, "vulkan", "graph: %zu nodes, %u dispatches, %u barriers", g->n_nodes,
                  be->n_dispatches, be->n_barriers);
    return LLMH_OK;
}

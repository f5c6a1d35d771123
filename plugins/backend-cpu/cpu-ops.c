/* cpu-ops.c — every llmh_op except MUL_MAT (cpu-matmul.c): validation,
 * scratch sizing, and the threaded bodies.
 *
 * Each op body processes a range of work units [a, b) claimed by one pool
 * thread (see cpu_op_units): rows of dst (all dims past ne[0]) for row-wise
 * ops, (token, head) pairs for ATTENTION. Tensors may be
 * strided views; inner loops take a fast path when ne[0] is contiguous.
 * In-place use (dst is the same view as src0) is allowed for ADD, MUL, SCALE,
 * RMS_NORM, ROPE, SWIGLU, SOFTMAX, SILU and GELU: each row is read fully
 * before (or element by element as) it is written.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cpu-internal.h"

#define ATT_TILE 32 /* keys per ATTENTION tile */

/* ------------------------------------------------------------------------ */
/* Names and helpers                                                          */
/* ------------------------------------------------------------------------ */
static const char *op_name(llmh_op op) {
    static const char *names[] = {"NONE", "GET_ROWS", "MUL_MAT", "ADD", "MUL", "SCALE",
                                  "RMS_NORM", "ROPE", "SWIGLU", "SOFTMAX", "CPY", "ATTENTION",
                                  "SILU", "GELU", "LORA"};
    if ((unsigned)op < sizeof names / sizeof names[0]) return names[op];
    return "unknown";
}

static int64_t n_rows(const llmh_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

/* Byte address of row r (flattened over dims 1..3). */
static uint8_t *row_ptr(const llmh_tensor *t, int64_t r) {
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)t->data + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
}

static float load_f(const uint8_t *row, size_t nb0, int64_t i) {
    float v;
    memcpy(&v, row + (size_t)i * nb0, sizeof v);
    return v;
}

static void store_f(uint8_t *row, size_t nb0, int64_t i, float v) { memcpy(row + (size_t)i * nb0, &v, sizeof v); }

static float silu_f(float x) { return x / (1.0f + expf(-x)); }

static float gelu_f(float x) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

static int is_float_type(llmh_dtype t) {
    return t == LLMH_DTYPE_F32 || t == LLMH_DTYPE_F16 || t == LLMH_DTYPE_BF16;
}

static float load_any(llmh_dtype t, const uint8_t *p) {
    uint16_t h;
    switch (t) {
    case LLMH_DTYPE_F16: memcpy(&h, p, 2); return llmh_fp16_to_fp32(h);
    case LLMH_DTYPE_BF16: memcpy(&h, p, 2); return llmh_bf16_to_fp32(h);
    default: { float v; memcpy(&v, p, 4); return v; }
    }
}

static void store_any(llmh_dtype t, uint8_t *p, float v) {
    uint16_t h;
    switch (t) {
    case LLMH_DTYPE_F16: h = llmh_fp32_to_fp16(v); memcpy(p, &h, 2); break;
    case LLMH_DTYPE_BF16: h = llmh_fp32_to_bf16(v); memcpy(p, &h, 2); break;
    default: memcpy(p, &v, 4); break;
    }
}

/* Convert n elements of a row of type t (stride nb0) into f32. */
static void row_to_f32(const llmh_backend *be, llmh_dtype t, const uint8_t *row, size_t nb0, int64_t n,
                       float *out) {
    if (t == LLMH_DTYPE_F32 && nb0 == 4) {
        memcpy(out, row, (size_t)n * 4);
        return;
    }
    if (t == LLMH_DTYPE_F16 && nb0 == 2) {
        be->kern.f16_to_f32(row, out, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = load_any(t, row + (size_t)i * nb0);
}

/* ------------------------------------------------------------------------ */
/* Support and validation                                                     */
/* ------------------------------------------------------------------------ */
static int dequantizable(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16:
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1:
    case LLMH_DTYPE_Q8_0: case LLMH_DTYPE_Q8_1: case LLMH_DTYPE_Q2_K: case LLMH_DTYPE_Q3_K:
    case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: case LLMH_DTYPE_Q6_K: case LLMH_DTYPE_Q8_K:
        return 1;
    default: return 0;
    }
}

int cpu_op_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    switch (op) {
    case LLMH_OP_NONE: return 1;
    case LLMH_OP_GET_ROWS: return dequantizable(t0) && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_MUL_MAT:
        return (unsigned)t0 < LLMH_DTYPE_COUNT && be->kern.mm[t0] != NULL && t1 == LLMH_DTYPE_F32;
    case LLMH_OP_ADD: case LLMH_OP_MUL: case LLMH_OP_SWIGLU:
        return t0 == LLMH_DTYPE_F32 && t1 == LLMH_DTYPE_F32;
    case LLMH_OP_SCALE: case LLMH_OP_RMS_NORM: case LLMH_OP_SOFTMAX: case LLMH_OP_SILU:
    case LLMH_OP_GELU:
        return t0 == LLMH_DTYPE_F32 && t1 == LLMH_DTYPE_F32;
    case LLMH_OP_ROPE: return t0 == LLMH_DTYPE_F32 && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_CPY: /* t1: the destination type (F32 when not given) */
        return is_float_type(t0) && is_float_type(t1);
    case LLMH_OP_ATTENTION: return t0 == LLMH_DTYPE_F32 && is_float_type(t1);
    case LLMH_OP_LORA: /* t0: the adapter type */
        if (t1 != LLMH_DTYPE_F32) return 0;
        if (t0 == LLMH_DTYPE_Q8_0) return be->kern.lora_a[t0] && be->kern.lora_acc_q8t; /* B transposed (SDK 1.2) */
        return is_float_type(t0) && be->kern.lora_a[t0] && be->kern.lora_acc[t0];
    default: return 0;
    }
}

static llmh_status vfail(llmh_backend *be, size_t index, const llmh_node *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static llmh_status vfail(llmh_backend *be, size_t index, const llmh_node *n, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *tn = n->dst && n->dst->name ? n->dst->name : "(unnamed)";
    be->host->set_error("cpu backend: node %zu (%s -> %s): %s", index, op_name(n->op), tn, msg);
    return LLMH_ERR_INVALID_ARG;
}

/* A tensor view is usable when its shape is positive, data is host-visible,
 * block types are whole blocks along ne[0], and (when the buffer is ours)
 * the whole view lies inside the buffer. */
static llmh_status check_tensor(llmh_backend *be, size_t index, const llmh_node *n, const char *role,
                                const llmh_tensor *t) {
    if (!t) return vfail(be, index, n, "%s is missing", role);
    if ((unsigned)t->type >= LLMH_DTYPE_COUNT || llmh_dtype_type_size(t->type) == 0)
        return vfail(be, index, n, "%s has unknown type id %d", role, (int)t->type);
    if (!t->data) return vfail(be, index, n, "%s has no host data pointer", role);
    int64_t bs = llmh_dtype_block_size(t->type);
    size_t extent = 0;
    for (int d = 0; d < LLMH_MAX_DIMS; d++) {
        if (t->ne[d] <= 0 || t->ne[d] > ((int64_t)1 << 40))
            return vfail(be, index, n, "%s has bad ne[%d] = %lld", role, d, (long long)t->ne[d]);
        int64_t cnt = d == 0 ? t->ne[0] / bs : t->ne[d];
        if (d == 0 && t->ne[0] % bs != 0)
            return vfail(be, index, n, "%s: ne[0] = %lld is not a multiple of the %s block size %lld",
                         role, (long long)t->ne[0], llmh_dtype_name(t->type), (long long)bs);
        if (cnt > 1) {
            size_t span;
            if (__builtin_mul_overflow((size_t)(cnt - 1), t->nb[d], &span) ||
                __builtin_add_overflow(extent, span, &extent))
                return vfail(be, index, n, "%s: ne/nb along dim %d overflow the address space", role, d);
        }
    }
    if (__builtin_add_overflow(extent, llmh_dtype_type_size(t->type), &extent))
        return vfail(be, index, n, "%s: view size overflows", role);
    if (t->buffer) {
        const llmh_buffer *b = t->buffer;
        const uint8_t *p = (const uint8_t *)t->data;
        if (p < b->data || (size_t)(p - b->data) > b->size || extent > b->size - (size_t)(p - b->data))
            return vfail(be, index, n, "%s view (%zu bytes) lies outside its buffer (%zu bytes)", role,
                         extent, b->size);
    }
    return LLMH_OK;
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

llmh_status cpu_op_validate(llmh_backend *be, const llmh_node *n, size_t index) {
    llmh_status st;
    if (n->op == LLMH_OP_NONE) return LLMH_OK;
    if ((unsigned)n->op >= LLMH_OP_COUNT) {
        be->host->set_error("cpu backend: node %zu: unknown op %d", index, (int)n->op);
        return LLMH_ERR_UNSUPPORTED;
    }
    const llmh_tensor *d = n->dst, *a = n->src[0], *b = n->src[1], *c = n->src[2];
    if ((st = check_tensor(be, index, n, "dst", d)) != LLMH_OK) return st;
    if ((st = check_tensor(be, index, n, "src0", a)) != LLMH_OK) return st;
    if (b && (st = check_tensor(be, index, n, "src1", b)) != LLMH_OK) return st;
    if (c && (st = check_tensor(be, index, n, "src2", c)) != LLMH_OK) return st;
    if (n->src[3] && (st = check_tensor(be, index, n, "src3", n->src[3])) != LLMH_OK) return st;
    llmh_dtype t1 = b ? b->type : LLMH_DTYPE_F32;
    if (n->op == LLMH_OP_CPY) t1 = d->type;
    if (!cpu_op_supported(be, n->op, a->type, t1)) {
        be->host->set_error("cpu backend: node %zu: op %s is not supported for types %s, %s", index,
                            op_name(n->op), llmh_dtype_name(a->type), llmh_dtype_name(t1));
        return LLMH_ERR_UNSUPPORTED;
    }
    if (n->op != LLMH_OP_CPY && d->type != LLMH_DTYPE_F32)
        return vfail(be, index, n, "dst must be f32, not %s", llmh_dtype_name(d->type));

    switch (n->op) {
    case LLMH_OP_GET_ROWS:
        if (!b) return vfail(be, index, n, "src1 (row ids) is missing");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[0] || b->ne[1] * b->ne[2] * b->ne[3] != 1 ||
            d->ne[2] * d->ne[3] != 1)
            return vfail(be, index, n, "shapes: dst [%lld, %lld] from src0 [%lld, %lld] and %lld ids",
                         (long long)d->ne[0], (long long)d->ne[1], (long long)a->ne[0],
                         (long long)a->ne[1], (long long)b->ne[0]);
        if (d->nb[0] != 4) return vfail(be, index, n, "dst rows must be contiguous");
        if (a->nb[0] != llmh_dtype_type_size(a->type))
            return vfail(be, index, n, "src0 rows must be contiguous");
        break;
    case LLMH_OP_MUL_MAT:
        if (!b) return vfail(be, index, n, "src1 is missing");
        if (a->ne[0] != b->ne[0] || d->ne[0] != a->ne[1] || d->ne[1] != b->ne[1] ||
            d->ne[2] != b->ne[2] || d->ne[3] != b->ne[3])
            return vfail(be, index, n,
                         "shapes: src0 [%lld, %lld] x src1 [%lld, %lld] -> dst [%lld, %lld]",
                         (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0],
                         (long long)b->ne[1], (long long)d->ne[0], (long long)d->ne[1]);
        if (b->ne[2] % a->ne[2] != 0 || b->ne[3] % a->ne[3] != 0)
            return vfail(be, index, n, "src0 batch dims do not divide src1's");
        if (a->nb[0] != llmh_dtype_type_size(a->type))
            return vfail(be, index, n, "src0 rows must be contiguous");
        if (d->nb[0] != 4 || d->nb[1] % 4 != 0)
            return vfail(be, index, n, "dst must be contiguous along ne[0] with 4-byte aligned rows");
        if (((uintptr_t)d->data) % 4 != 0) return vfail(be, index, n, "dst is not 4-byte aligned");
        if (b->nb[0] == 4 && (((uintptr_t)b->data) % 4 != 0 || b->nb[1] % 4 != 0))
            return vfail(be, index, n, "src1 is not 4-byte aligned");
        break;
    case LLMH_OP_ADD: case LLMH_OP_MUL:
        if (!b) return vfail(be, index, n, "src1 is missing");
        if (!same_shape(d, a)) return vfail(be, index, n, "dst and src0 shapes differ");
        for (int k = 0; k < LLMH_MAX_DIMS; k++)
            if (a->ne[k] % b->ne[k] != 0)
                return vfail(be, index, n, "src1 ne[%d] = %lld does not divide src0's %lld", k,
                             (long long)b->ne[k], (long long)a->ne[k]);
        break;
    case LLMH_OP_SWIGLU:
        if (!b || !same_shape(a, b) || !same_shape(a, d))
            return vfail(be, index, n, "src0, src1 and dst must have the same shape");
        break;
    case LLMH_OP_SCALE: case LLMH_OP_SOFTMAX: case LLMH_OP_SILU: case LLMH_OP_GELU:
        if (!same_shape(d, a)) return vfail(be, index, n, "dst and src0 shapes differ");
        break;
    case LLMH_OP_RMS_NORM:
        if (!same_shape(d, a)) return vfail(be, index, n, "dst and src0 shapes differ");
        if (b && (b->type != LLMH_DTYPE_F32 || b->ne[0] != a->ne[0]))
            return vfail(be, index, n, "weight src1 must be f32 [%lld]", (long long)a->ne[0]);
        break;
    case LLMH_OP_ROPE: {
        if (!same_shape(d, a)) return vfail(be, index, n, "dst and src0 shapes differ");
        if (!b || b->ne[0] != a->ne[2])
            return vfail(be, index, n, "src1 must hold %lld I32 positions", (long long)a->ne[2]);
        int32_t n_rot = n->ip[0], mode = n->ip[1];
        if (n_rot <= 0 || n_rot > a->ne[0] || n_rot % 2 != 0)
            return vfail(be, index, n, "n_rot %d must be even and in 1..%lld", n_rot, (long long)a->ne[0]);
        if (mode != LLMH_ROPE_NORMAL && mode != LLMH_ROPE_NEOX)
            return vfail(be, index, n, "unknown rope mode %d", mode);
        if (c && (c->type != LLMH_DTYPE_F32 || c->ne[0] < n_rot / 2))
            return vfail(be, index, n, "freq factors src2 must be f32 [%d]", n_rot / 2);
        if (!(n->fp[0] > 0.0f)) return vfail(be, index, n, "freq_base must be > 0");
        break;
    }
    case LLMH_OP_CPY:
        if (!same_shape(d, a) && !(n_elems(d) == n_elems(a) && is_contiguous(d) && is_contiguous(a)))
            return vfail(be, index, n, "dst and src0 must have the same shape (or both be contiguous "
                                       "with the same element count)");
        break;
    case LLMH_OP_ATTENTION: {
        if (!b || !c) return vfail(be, index, n, "K (src1) and V (src2) are required");
        if (!is_float_type(c->type)) return vfail(be, index, n, "V must be f32, f16 or bf16");
        int64_t D = a->ne[0], H = a->ne[1], T = a->ne[2];
        if (b->ne[0] != D || c->ne[0] != D || b->ne[1] != c->ne[1] || b->ne[2] != c->ne[2])
            return vfail(be, index, n, "K/V shapes do not match Q's head_dim or each other");
        if (b->ne[1] <= 0 || H % b->ne[1] != 0)
            return vfail(be, index, n, "n_head %lld is not a multiple of n_kv_head %lld", (long long)H,
                         (long long)b->ne[1]);
        if (!same_shape(d, a)) return vfail(be, index, n, "dst and Q shapes differ");
        if (n->ip[0] < 0 || (int64_t)n->ip[0] + T > b->ne[2])
            return vfail(be, index, n, "n_past %d + n_tok %lld exceeds the %lld cached entries",
                         n->ip[0], (long long)T, (long long)b->ne[2]);
        if (n->ip[1] < 0) return vfail(be, index, n, "sliding window must be >= 0");
        break;
    }
    case LLMH_OP_LORA: {
        const llmh_tensor *g = n->src[3];
        if (!b || !c) return vfail(be, index, n, "x (src1) and B (src2) are required");
        if (c->type != a->type)
            return vfail(be, index, n, "A is %s but B is %s (both must be the same type)", llmh_dtype_name(a->type),
                         llmh_dtype_name(c->type));
        /* Q8_0 (SDK 1.2): B comes transposed, [M, R] */
        int q8 = a->type == LLMH_DTYPE_Q8_0;
        int64_t b_rank = q8 ? c->ne[1] : c->ne[0], b_out = q8 ? c->ne[0] : c->ne[1];
        if (a->ne[0] != b->ne[0] || b_rank != a->ne[1] || d->ne[0] != b_out || d->ne[1] != b->ne[1] ||
            a->ne[2] * a->ne[3] * b->ne[2] * b->ne[3] * c->ne[2] * c->ne[3] * d->ne[2] * d->ne[3] != 1)
            return vfail(be, index, n,
                         "shapes: A [%lld, %lld], x [%lld, %lld], B [%lld, %lld] -> dst [%lld, %lld] "
                         "(want A [K, R], x [K, N], %s, dst [M, N])",
                         (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1],
                         (long long)c->ne[0], (long long)c->ne[1], (long long)d->ne[0], (long long)d->ne[1],
                         q8 ? "q8_0 B transposed [M, R]" : "B [R, M]");
        if (q8 && (a->ne[0] % 32 != 0 || d->ne[0] % 32 != 0))
            return vfail(be, index, n, "q8_0 adapters need K and M multiples of 32 (K %lld, M %lld)",
                         (long long)a->ne[0], (long long)d->ne[0]);
        if (a->nb[0] != llmh_dtype_type_size(a->type) || c->nb[0] != llmh_dtype_type_size(c->type))
            return vfail(be, index, n, "A and B rows must be contiguous");
        if (d->nb[0] != 4 || d->nb[1] % 4 != 0 || ((uintptr_t)d->data) % 4 != 0)
            return vfail(be, index, n, "dst must be contiguous along ne[0] with 4-byte aligned rows");
        if (b->nb[0] % 4 != 0 || b->nb[1] % 4 != 0 || ((uintptr_t)b->data) % 4 != 0)
            return vfail(be, index, n, "x (src1) is not 4-byte aligned");
        if (g && (g->type != LLMH_DTYPE_F32 || g->ne[0] != b->ne[1] || g->ne[1] * g->ne[2] * g->ne[3] != 1 ||
                  g->nb[0] % 4 != 0 || ((uintptr_t)g->data) % 4 != 0))
            return vfail(be, index, n, "gates (src3) must be f32 [%lld]", (long long)b->ne[1]);
        /* dst is written while other threads still read x and the gates */
        const uint8_t *d0 = (const uint8_t *)d->data, *d1 = d0 + (size_t)(d->ne[1] - 1) * d->nb[1] + (size_t)d->ne[0] * 4;
        for (int s = 1; s <= 3; s += 2) {
            const llmh_tensor *t = n->src[s];
            if (!t) continue;
            const uint8_t *t0 = (const uint8_t *)t->data;
            const uint8_t *t1e = t0 + (size_t)(t->ne[0] - 1) * t->nb[0] + (size_t)(t->ne[1] - 1) * t->nb[1] + 4;
            if (t0 < d1 && d0 < t1e) return vfail(be, index, n, "dst overlaps src%d", s);
        }
        break;
    }
    default: break;
    }
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Scratch                                                                    */
/* ------------------------------------------------------------------------ */
/* Score slots per thread: a tile for F32 caches (online softmax); every key
 * for F16 caches, whose probabilities are normalized then rounded to F16
 * (the SDK's normative precision). */
static size_t att_score_slots(const llmh_node *n) {
    const llmh_tensor *k = n->src[1], *v = n->src[2];
    if (k && v && (k->type == LLMH_DTYPE_F16 || v->type == LLMH_DTYPE_F16) && k->ne[2] > ATT_TILE)
        return (size_t)k->ne[2];
    return ATT_TILE;
}

size_t cpu_op_work_size(const llmh_backend *be, const llmh_node *n) {
    size_t nth = (size_t)be->n_threads;
    switch (n->op) {
    case LLMH_OP_MUL_MAT: return cpu_mul_mat_work_size(be, n);
    case LLMH_OP_LORA: return cpu_lora_work_size(be, n, 1);
    case LLMH_OP_ROPE: return nth * (size_t)n->ip[0] * sizeof(float) + 64 * nth;
    case LLMH_OP_ATTENTION: return nth * ((size_t)n->src[0]->ne[0] * 3 + att_score_slots(n)) * sizeof(float) + 64 * nth;
    default: return 0;
    }
}

/* Per-thread scratch slice of `bytes` (64-byte aligned). */
static float *thread_scratch(llmh_backend *be, int ith, size_t bytes) {
    size_t per = (bytes + 63) & ~(size_t)63;
    return (float *)(be->work + 64 + per * (size_t)ith);
}

/* ------------------------------------------------------------------------ */
/* Ops                                                                        */
/* ------------------------------------------------------------------------ */
static void op_get_rows(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *w = n->src[0], *ids = n->src[1];
    llmh_tensor *d = n->dst;
    for (int64_t i = a; i < b; i++) {
        int32_t id;
        memcpy(&id, (const uint8_t *)ids->data + (size_t)i * ids->nb[0], sizeof id);
        float *out = (float *)((uint8_t *)d->data + (size_t)i * d->nb[1]);
        if (id < 0 || id >= w->ne[1]) {
            memset(out, 0, (size_t)d->ne[0] * sizeof(float));
            cpu_fail(ex->be, LLMH_ERR_INVALID_ARG, "GET_ROWS: row id %d at index %lld is outside [0, %lld)",
                     id, (long long)i, (long long)w->ne[1]);
            continue;
        }
        const uint8_t *row = (const uint8_t *)w->data + (size_t)id * w->nb[1];
        llmh_status st = ex->be->host->dequantize(w->type, row, out, w->ne[0]);
        if (st != LLMH_OK) cpu_fail(ex->be, st, "GET_ROWS: cannot convert %s rows", llmh_dtype_name(w->type));
    }
}

static void op_binary(const cpu_exec *ex, int64_t a, int64_t b, int ith, int is_mul) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0], *s1 = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0], ne10 = s1->ne[0];
    for (int64_t r = a; r < b; r++) {
        int64_t i1 = r % d->ne[1], i2 = (r / d->ne[1]) % d->ne[2], i3 = r / (d->ne[1] * d->ne[2]);
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *ar = row_ptr(s0, r);
        const uint8_t *br = (const uint8_t *)s1->data + (size_t)(i1 % s1->ne[1]) * s1->nb[1] +
                            (size_t)(i2 % s1->ne[2]) * s1->nb[2] + (size_t)(i3 % s1->ne[3]) * s1->nb[3];
        if (d->nb[0] == 4 && s0->nb[0] == 4 && s1->nb[0] == 4 && ne10 == ne0) {
            float *o = (float *)dr;
            const float *x = (const float *)ar, *y = (const float *)br;
            if (is_mul)
                for (int64_t i = 0; i < ne0; i++) o[i] = x[i] * y[i];
            else
                for (int64_t i = 0; i < ne0; i++) o[i] = x[i] + y[i];
        } else {
            for (int64_t i = 0; i < ne0; i++) {
                float x = load_f(ar, s0->nb[0], i), y = load_f(br, s1->nb[0], i % ne10);
                store_f(dr, d->nb[0], i, is_mul ? x * y : x + y);
            }
        }
    }
}

/* SCALE, SILU, GELU, SWIGLU: elementwise on rows. */
static void op_unary(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0], *s1 = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0];
    float scale = n->fp[0];
    for (int64_t r = a; r < b; r++) {
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *ar = row_ptr(s0, r);
        const uint8_t *br = n->op == LLMH_OP_SWIGLU ? row_ptr(s1, r) : NULL;
        int contig = d->nb[0] == 4 && s0->nb[0] == 4 && (!br || s1->nb[0] == 4);
        if (contig && (n->op == LLMH_OP_SILU || n->op == LLMH_OP_SWIGLU)) {
            ex->be->kern.silu_row((const float *)ar, (const float *)br, (float *)dr, ne0);
            continue;
        }
        if (contig && n->op == LLMH_OP_SCALE) {
            const float *xs = (const float *)ar;
            float *ys = (float *)dr;
            for (int64_t i = 0; i < ne0; i++) ys[i] = xs[i] * scale;
            continue;
        }
        for (int64_t i = 0; i < ne0; i++) {
            float x = load_f(ar, s0->nb[0], i), y;
            switch (n->op) {
            case LLMH_OP_SCALE: y = x * scale; break;
            case LLMH_OP_SILU: y = silu_f(x); break;
            case LLMH_OP_GELU: y = gelu_f(x); break;
            default: y = silu_f(x) * load_f(br, s1->nb[0], i); break;
            }
            store_f(dr, d->nb[0], i, y);
        }
    }
}

static void op_rms_norm(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0], *wt = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0];
    for (int64_t r = a; r < b; r++) {
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *ar = row_ptr(s0, r);
        double ss = 0.0;
        if (s0->nb[0] == 4 && d->nb[0] == 4 && (!wt || wt->nb[0] == 4)) {
            const float *x = (const float *)ar, *wv = wt ? (const float *)wt->data : NULL;
            float *y = (float *)dr;
            /* llama.cpp's order: f32 squares summed in double, mean and
             * scale in f32 (the reference models are sensitive to it) */
            int64_t i = 0;
            for (; i < ne0; i++) ss += (double)(x[i] * x[i]);
            float mean = (float)(ss / (double)ne0);
            float inv = 1.0f / sqrtf(mean + n->fp[0]);
            if (wv)
                for (i = 0; i < ne0; i++) y[i] = x[i] * inv * wv[i];
            else
                for (i = 0; i < ne0; i++) y[i] = x[i] * inv;
            continue;
        }
        for (int64_t i = 0; i < ne0; i++) {
            float x = load_f(ar, s0->nb[0], i);
            ss += (double)(x * x);
        }
        float inv = 1.0f / sqrtf((float)(ss / (double)ne0) + n->fp[0]);
        for (int64_t i = 0; i < ne0; i++) {
            float y = load_f(ar, s0->nb[0], i) * inv;
            if (wt) y *= load_f((const uint8_t *)wt->data, wt->nb[0], i);
            store_f(dr, d->nb[0], i, y);
        }
    }
}

static void op_softmax(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0];
    float scale = n->fp[0] == 0.0f ? 1.0f : n->fp[0];
    for (int64_t r = a; r < b; r++) {
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *ar = row_ptr(s0, r);
        float mx = -INFINITY;
        for (int64_t i = 0; i < ne0; i++) mx = fmaxf(mx, load_f(ar, s0->nb[0], i) * scale);
        double sum = 0.0;
        for (int64_t i = 0; i < ne0; i++) {
            float e = mx == -INFINITY ? 0.0f : expf(load_f(ar, s0->nb[0], i) * scale - mx);
            store_f(dr, d->nb[0], i, e);
            sum += e;
        }
        float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
        for (int64_t i = 0; i < ne0; i++) store_f(dr, d->nb[0], i, load_f(dr, d->nb[0], i) * inv);
    }
}

static void op_rope(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0], *pos = n->src[1], *ff = n->src[2];
    llmh_tensor *d = n->dst;
    int n_rot = n->ip[0], neox = n->ip[1] == LLMH_ROPE_NEOX, half = n_rot / 2;
    float base = n->fp[0], fscale = n->fp[1];
    int64_t ne0 = s0->ne[0];
    float *cs = thread_scratch(ex->be, ith, (size_t)n_rot * sizeof(float)); /* cos[half], sin[half] */
    int64_t cached_tok = -1;
    for (int64_t r = a; r < b; r++) {
        int64_t tok = (r / s0->ne[1]) % s0->ne[2];
        if (tok != cached_tok) {
            int32_t p;
            memcpy(&p, (const uint8_t *)pos->data + (size_t)tok * pos->nb[0], sizeof p);
            for (int i = 0; i < half; i++) {
                double theta = (double)p * (double)fscale * pow((double)base, -2.0 * i / n_rot);
                if (ff) theta /= (double)load_f((const uint8_t *)ff->data, ff->nb[0], i);
                cs[i] = (float)cos(theta);
                cs[half + i] = (float)sin(theta);
            }
            cached_tok = tok;
        }
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *ar = row_ptr(s0, r);
        for (int i = 0; i < half; i++) {
            int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float x0 = load_f(ar, s0->nb[0], i0), x1 = load_f(ar, s0->nb[0], i1);
            float c = cs[i], s = cs[half + i];
            store_f(dr, d->nb[0], i0, x0 * c - x1 * s);
            store_f(dr, d->nb[0], i1, x0 * s + x1 * c);
        }
        if (dr != ar || d->nb[0] != s0->nb[0])
            for (int64_t i = n_rot; i < ne0; i++) store_f(dr, d->nb[0], i, load_f(ar, s0->nb[0], i));
    }
}

static void op_cpy(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const llmh_tensor *s0 = n->src[0];
    llmh_tensor *d = n->dst;
    size_t ss = llmh_dtype_type_size(s0->type), ds = llmh_dtype_type_size(d->type);
    if (!same_shape(d, s0)) { /* both contiguous, same count: flat copy */
        const uint8_t *sp = (const uint8_t *)s0->data;
        uint8_t *dp = (uint8_t *)d->data;
        for (int64_t i = a; i < b; i++) store_any(d->type, dp + (size_t)i * ds, load_any(s0->type, sp + (size_t)i * ss));
        return;
    }
    for (int64_t r = a; r < b; r++) {
        uint8_t *dr = row_ptr(d, r);
        const uint8_t *sr = row_ptr(s0, r);
        if (s0->type == d->type && s0->nb[0] == ss && d->nb[0] == ds) {
            memmove(dr, sr, (size_t)d->ne[0] * ds);
            continue;
        }
        for (int64_t i = 0; i < d->ne[0]; i++)
            store_any(d->type, dr + (size_t)i * d->nb[0], load_any(s0->type, sr + (size_t)i * s0->nb[0]));
    }
}


/* Keys are visited in tiles of ATT_TILE: scores of the tile (vector dots),
 * one rescale of the accumulator when the running max grows, one vector exp
 * over the tile, then acc += p_j * v_j. Same online softmax as key-by-key. */
static inline float round_f16(float x) { return llmh_fp16_to_fp32(llmh_fp32_to_fp16(x)); }

/* F16 K/V: the SDK's normative numerics (llama.cpp's non-flash attention):
 * q rounded to F16 before q.k; all scores, then softmax normalized with a
 * double sum, probabilities rounded to F16 before they weight V. */
static void attention_f16(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    const llmh_node *n = ex->node;
    const cpu_kernels *kn = &ex->be->kern;
    const llmh_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2];
    llmh_tensor *d = n->dst;
    int64_t D = q->ne[0], H = q->ne[1], Hkv = k->ne[1];
    int64_t group = H / Hkv, n_past = n->ip[0], window = n->ip[1];
    float scale = n->fp[0], cap = n->fp[1];
    float *qf = thread_scratch(ex->be, ith, ((size_t)D * 3 + att_score_slots(n)) * sizeof(float));
    float *kf = qf + D, *acc = kf + D, *sc = acc + D; /* kf doubles as the v row buffer */
    for (int64_t r = a; r < b; r++) {
        int64_t t = r / H, h = r % H, hk = h / group;
        int64_t pos = n_past + t;
        int64_t j0 = 0, j1 = pos; /* inclusive */
        if (window > 0 && pos - window + 1 > j0) j0 = pos - window + 1;
        int64_t nk = j1 - j0 + 1;
        const uint8_t *qr = (const uint8_t *)q->data + (size_t)h * q->nb[1] + (size_t)t * q->nb[2];
        row_to_f32(ex->be, LLMH_DTYPE_F32, qr, q->nb[0], D, qf);
        if (k->type == LLMH_DTYPE_F16)
            for (int64_t i = 0; i < D; i++) qf[i] = round_f16(qf[i]);
        float m = -INFINITY;
        for (int64_t u = 0; u < nk; u++) {
            const uint8_t *kr = (const uint8_t *)k->data + (size_t)hk * k->nb[1] + (size_t)(j0 + u) * k->nb[2];
            const float *kp = (const float *)kr;
            if (k->type != LLMH_DTYPE_F32 || k->nb[0] != 4) {
                row_to_f32(ex->be, k->type, kr, k->nb[0], D, kf);
                kp = kf;
            }
            float s = kn->dot(qf, kp, D) * scale;
            if (cap > 0.0f) s = cap * tanhf(s / cap);
            sc[u] = s;
            if (s > m) m = s;
        }
        for (int64_t u = 0; u < nk; u++) sc[u] -= m;
        kn->exp_row(sc, sc, nk);
        double sum = 0.0;
        for (int64_t u = 0; u < nk; u++) sum += sc[u];
        float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
        int round_p = v->type == LLMH_DTYPE_F16;
        for (int64_t i = 0; i < D; i++) acc[i] = 0.0f;
        for (int64_t u = 0; u < nk; u++) {
            float p = sc[u] * inv;
            if (round_p) p = round_f16(p);
            const uint8_t *vr = (const uint8_t *)v->data + (size_t)hk * v->nb[1] + (size_t)(j0 + u) * v->nb[2];
            const float *vp = (const float *)vr;
            if (v->type != LLMH_DTYPE_F32 || v->nb[0] != 4) {
                row_to_f32(ex->be, v->type, vr, v->nb[0], D, kf);
                vp = kf;
            }
            kn->axpy(acc, p, vp, D);
        }
        uint8_t *dr = (uint8_t *)d->data + (size_t)h * d->nb[1] + (size_t)t * d->nb[2];
        for (int64_t i = 0; i < D; i++) store_f(dr, d->nb[0], i, acc[i]);
    }
}

static void op_attention(const cpu_exec *ex, int64_t a, int64_t b, int ith) {
    if (ex->node->src[1]->type == LLMH_DTYPE_F16 || ex->node->src[2]->type == LLMH_DTYPE_F16) {
        attention_f16(ex, a, b, ith);
        return;
    }
    const llmh_node *n = ex->node;
    const cpu_kernels *kn = &ex->be->kern;
    const llmh_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2];
    llmh_tensor *d = n->dst;
    int64_t D = q->ne[0], H = q->ne[1], Hkv = k->ne[1];
    int64_t group = H / Hkv, n_past = n->ip[0], window = n->ip[1];
    float scale = n->fp[0], cap = n->fp[1];
    float *qf = thread_scratch(ex->be, ith, ((size_t)D * 3 + att_score_slots(n)) * sizeof(float));
    float *kf = qf + D, *acc = kf + D, *sc = acc + D; /* kf doubles as the v row buffer */
    int k_direct = k->type == LLMH_DTYPE_F32 && k->nb[0] == 4;
    int v_direct = v->type == LLMH_DTYPE_F32 && v->nb[0] == 4;
    for (int64_t r = a; r < b; r++) {
        int64_t t = r / H, h = r % H, hk = h / group;
        int64_t pos = n_past + t;
        int64_t j0 = 0, j1 = pos; /* inclusive */
        if (window > 0 && pos - window + 1 > j0) j0 = pos - window + 1;
        const uint8_t *qr = (const uint8_t *)q->data + (size_t)h * q->nb[1] + (size_t)t * q->nb[2];
        row_to_f32(ex->be, LLMH_DTYPE_F32, qr, q->nb[0], D, qf);
        float m = -INFINITY, l = 0.0f;
        for (int64_t i = 0; i < D; i++) acc[i] = 0.0f;
        for (int64_t jt = j0; jt <= j1; jt += ATT_TILE) {
            int64_t nt = j1 - jt + 1 < ATT_TILE ? j1 - jt + 1 : ATT_TILE;
            float tmax = -INFINITY;
            for (int64_t u = 0; u < nt; u++) {
                const uint8_t *kr = (const uint8_t *)k->data + (size_t)hk * k->nb[1] + (size_t)(jt + u) * k->nb[2];
                const float *kp = (const float *)kr;
                if (!k_direct) {
                    row_to_f32(ex->be, k->type, kr, k->nb[0], D, kf);
                    kp = kf;
                }
                float s = kn->dot(qf, kp, D) * scale;
                if (cap > 0.0f) s = cap * tanhf(s / cap);
                sc[u] = s;
                if (s > tmax) tmax = s;
            }
            if (tmax > m) {
                float corr = expf(m - tmax); /* 0 on the first tile (m = -inf) */
                for (int64_t i = 0; i < D; i++) acc[i] *= corr;
                l *= corr;
                m = tmax;
            }
            for (int64_t u = 0; u < nt; u++) sc[u] -= m;
            kn->exp_row(sc, sc, nt);
            for (int64_t u = 0; u < nt; u++) {
                const uint8_t *vr = (const uint8_t *)v->data + (size_t)hk * v->nb[1] + (size_t)(jt + u) * v->nb[2];
                const float *vp = (const float *)vr;
                if (!v_direct) {
                    row_to_f32(ex->be, v->type, vr, v->nb[0], D, kf);
                    vp = kf;
                }
                kn->axpy(acc, sc[u], vp, D);
                l += sc[u];
            }
        }
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        uint8_t *dr = (uint8_t *)d->data + (size_t)h * d->nb[1] + (size_t)t * d->nb[2];
        for (int64_t i = 0; i < D; i++) store_f(dr, d->nb[0], i, acc[i] * inv);
    }
}

/* ------------------------------------------------------------------------ */
/* Work division                                                              */
/* ------------------------------------------------------------------------ */
int cpu_op_phases(const llmh_backend *be, const llmh_node *n) {
    if (n->op == LLMH_OP_LORA) return cpu_lora_phases(be, n, 1);
    return n->op == LLMH_OP_MUL_MAT ? cpu_mul_mat_phases(be, n) : 1;
}

static int64_t grain_for(int64_t per_unit, int64_t target) {
    int64_t g = target / (per_unit > 0 ? per_unit : 1);
    return g < 1 ? 1 : g;
}

int64_t cpu_op_units(const llmh_backend *be, const llmh_node *n, int phase, int64_t *grain) {
    const llmh_tensor *d = n->dst;
    *grain = 1;
    switch (n->op) {
    case LLMH_OP_NONE: return 0;
    case LLMH_OP_MUL_MAT: return cpu_mul_mat_units(be, n, phase, grain);
    case LLMH_OP_LORA: return cpu_lora_units(be, n, 1, phase, grain);
    case LLMH_OP_GET_ROWS:
        *grain = grain_for(d->ne[0], 16384);
        return d->ne[1];
    case LLMH_OP_ATTENTION: return d->ne[1] * d->ne[2];
    case LLMH_OP_ROPE:
        *grain = grain_for(d->ne[0], 4096);
        return n_rows(d);
    case LLMH_OP_CPY:
        if (!same_shape(d, n->src[0])) {
            *grain = 16384;
            return n_elems(d);
        }
        *grain = grain_for(d->ne[0], 16384);
        return n_rows(d);
    default:
        *grain = grain_for(d->ne[0], 16384);
        return n_rows(d);
    }
}

void cpu_op_run(const cpu_exec *ex, int phase, int64_t a, int64_t b, int ith) {
    if (ex->n_nodes > 1 && ex->node->op == LLMH_OP_MUL_MAT) {
        cpu_mm_lora(ex, phase, a, b, ith);
        return;
    }
    switch (ex->node->op) {
    case LLMH_OP_NONE: break;
    case LLMH_OP_GET_ROWS: op_get_rows(ex, a, b, ith); break;
    case LLMH_OP_MUL_MAT: cpu_mul_mat(ex, phase, a, b, ith); break;
    case LLMH_OP_ADD: op_binary(ex, a, b, ith, 0); break;
    case LLMH_OP_MUL: op_binary(ex, a, b, ith, 1); break;
    case LLMH_OP_SCALE: case LLMH_OP_SILU: case LLMH_OP_GELU: case LLMH_OP_SWIGLU:
        op_unary(ex, a, b, ith);
        break;
    case LLMH_OP_RMS_NORM: op_rms_norm(ex, a, b, ith); break;
    case LLMH_OP_SOFTMAX: op_softmax(ex, a, b, ith); break;
    case LLMH_OP_ROPE: op_rope(ex, a, b, ith); break;
    case LLMH_OP_CPY: op_cpy(ex, a, b, ith); break;
    case LLMH_OP_ATTENTION: op_attention(ex, a, b, ith); break;
    case LLMH_OP_LORA: cpu_lora(ex, phase, a, b, ith); break;
    default: break;
    }
}

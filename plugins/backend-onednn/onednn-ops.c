/* onednn-ops.c — every op except MUL_MAT, in plain C threaded with OpenMP
 * (the runtime oneDNN itself uses here, so both share one thread team).
 *
 * oneDNN has eltwise/softmax/layer-norm primitives, but these ops are
 * memory-bound, small next to the matmuls, often strided views or in place,
 * and ROPE, RMS_NORM (no RMS variant in oneDNN 2.6), SWIGLU and GQA
 * attention over a KV cache have no primitive at all; a fused C loop reads
 * each value once, where a chain of primitives would not.
 *
 * Semantics follow sdk/include/llmh-plugin.h; in-place use (dst == src0) is
 * safe for ADD, MUL, SCALE, RMS_NORM, ROPE, SWIGLU, SOFTMAX, SILU and GELU:
 * each element (each row, for the row ops) is read before it is written.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "onednn-internal.h"

static int64_t n_rows(const llmh_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static uint8_t *row_at(const llmh_tensor *t, int64_t r) {
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)t->data + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
}

static inline float ld(const uint8_t *p, size_t nb0, int64_t i) {
    float v;
    memcpy(&v, p + (size_t)i * nb0, 4);
    return v;
}

static inline void st(uint8_t *p, size_t nb0, int64_t i, float v) { memcpy(p + (size_t)i * nb0, &v, 4); }

static float ld_any(llmh_dtype t, const uint8_t *p) {
    uint16_t h;
    float v;
    switch (t) {
    case LLMH_DTYPE_F16: memcpy(&h, p, 2); return llmh_fp16_to_fp32(h);
    case LLMH_DTYPE_BF16: memcpy(&h, p, 2); return llmh_bf16_to_fp32(h);
    default: memcpy(&v, p, 4); return v;
    }
}

static void st_any(llmh_dtype t, uint8_t *p, float v) {
    uint16_t h;
    switch (t) {
    case LLMH_DTYPE_F16: h = llmh_fp32_to_fp16(v); memcpy(p, &h, 2); break;
    case LLMH_DTYPE_BF16: h = llmh_fp32_to_bf16(v); memcpy(p, &h, 2); break;
    default: memcpy(p, &v, 4); break;
    }
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

static float gelu(float x) {
    const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

/* Dot of two contiguous f32 vectors with 8 partial sums (vectorizable). */
static float dot8(const float *x, const float *y, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j] * y[i + j];
    for (; i < n; i++) s[0] += x[i] * y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* ------------------------------------------------------------------------ */
static void op_get_rows(llmh_backend *be, const llmh_node *n) {
    const llmh_tensor *w = n->src[0], *ids = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t D = w->ne[0], R = d->ne[1];
    int contig = d->nb[0] == 4;
    float *tmp = NULL;
    if (!contig) {
        tmp = (float *)od_scratch(be, (size_t)D * 4 * (size_t)be->n_threads + 64);
        if (!tmp) {
            od_fail(be, LLMH_ERR_NO_MEMORY, "GET_ROWS: no scratch");
            return;
        }
    }
#pragma omp parallel for schedule(static) if(R * D >= OD_PAR_MIN)
    for (int64_t i = 0; i < R; i++) {
        int32_t id;
        memcpy(&id, (const uint8_t *)ids->data + (size_t)i * ids->nb[0], 4);
        uint8_t *out = (uint8_t *)d->data + (size_t)i * d->nb[1];
        float *o = contig ? (float *)out : tmp + (size_t)omp_get_thread_num() * (size_t)D;
        if (id < 0 || id >= w->ne[1]) {
            memset(o, 0, (size_t)D * 4);
            od_fail(be, LLMH_ERR_INVALID_ARG, "row id %d at index %lld is outside [0, %lld)", id, (long long)i,
                    (long long)w->ne[1]);
        } else {
            const uint8_t *row = (const uint8_t *)w->data + (size_t)id * w->nb[1];
            if (w->type == LLMH_DTYPE_F32) {
                memcpy(o, row, (size_t)D * 4);
            } else {
                llmh_status s = be->host->dequantize(w->type, row, o, D);
                if (s != LLMH_OK) od_fail(be, s, "cannot convert %s rows", llmh_dtype_name(w->type));
            }
        }
        if (!contig)
            for (int64_t j = 0; j < D; j++) st(out, d->nb[0], j, o[j]);
    }
}

static void op_binary(llmh_backend *be, const llmh_node *n, int mul) {
    (void)be;
    const llmh_tensor *a = n->src[0], *b = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0], nb0 = b->ne[0], R = n_rows(d);
#pragma omp parallel for schedule(static) if(R * ne0 >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t i1 = r % d->ne[1], i2 = (r / d->ne[1]) % d->ne[2], i3 = r / (d->ne[1] * d->ne[2]);
        uint8_t *dr = row_at(d, r);
        const uint8_t *ar = row_at(a, r);
        const uint8_t *br = (const uint8_t *)b->data + (size_t)(i1 % b->ne[1]) * b->nb[1] +
                            (size_t)(i2 % b->ne[2]) * b->nb[2] + (size_t)(i3 % b->ne[3]) * b->nb[3];
        if (d->nb[0] == 4 && a->nb[0] == 4 && b->nb[0] == 4 && nb0 == ne0) {
            float *o = (float *)dr;
            const float *x = (const float *)ar, *y = (const float *)br;
            if (mul)
                for (int64_t i = 0; i < ne0; i++) o[i] = x[i] * y[i];
            else
                for (int64_t i = 0; i < ne0; i++) o[i] = x[i] + y[i];
        } else {
            for (int64_t i = 0; i < ne0; i++) {
                float x = ld(ar, a->nb[0], i), y = ld(br, b->nb[0], i % nb0);
                st(dr, d->nb[0], i, mul ? x * y : x + y);
            }
        }
    }
}

static void op_unary(llmh_backend *be, const llmh_node *n) {
    (void)be;
    const llmh_tensor *a = n->src[0], *b = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0], R = n_rows(d);
    float scale = n->fp[0];
    llmh_op op = n->op;
#pragma omp parallel for schedule(static) if(R * ne0 >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        uint8_t *dr = row_at(d, r);
        const uint8_t *ar = row_at(a, r);
        const uint8_t *br = op == LLMH_OP_SWIGLU ? row_at(b, r) : NULL;
        for (int64_t i = 0; i < ne0; i++) {
            float x = ld(ar, a->nb[0], i), y;
            switch (op) {
            case LLMH_OP_SCALE: y = x * scale; break;
            case LLMH_OP_SILU: y = silu(x); break;
            case LLMH_OP_GELU: y = gelu(x); break;
            default: y = silu(x) * ld(br, b->nb[0], i); break; /* SWIGLU */
            }
            st(dr, d->nb[0], i, y);
        }
    }
}

static void op_rms_norm(llmh_backend *be, const llmh_node *n) {
    (void)be;
    const llmh_tensor *a = n->src[0], *w = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0], R = n_rows(d);
    float eps = n->fp[0];
#pragma omp parallel for schedule(static) if(R * ne0 >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        uint8_t *dr = row_at(d, r);
        const uint8_t *ar = row_at(a, r);
        /* as llama.cpp: f32 squares summed in double, mean and scale in f32 */
        double ss = 0.0;
        for (int64_t i = 0; i < ne0; i++) {
            float x = ld(ar, a->nb[0], i);
            ss += (double)(x * x);
        }
        float mean = (float)(ss / (double)ne0);
        float inv = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < ne0; i++) {
            float y = ld(ar, a->nb[0], i) * inv;
            if (w) y *= ld(w->data, w->nb[0], i);
            st(dr, d->nb[0], i, y);
        }
    }
}

static void op_softmax(llmh_backend *be, const llmh_node *n) {
    (void)be;
    const llmh_tensor *a = n->src[0];
    llmh_tensor *d = n->dst;
    int64_t ne0 = d->ne[0], R = n_rows(d);
    float scale = n->fp[0] == 0.0f ? 1.0f : n->fp[0];
#pragma omp parallel for schedule(static) if(R * ne0 >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        uint8_t *dr = row_at(d, r);
        const uint8_t *ar = row_at(a, r);
        float mx = -INFINITY;
        for (int64_t i = 0; i < ne0; i++) mx = fmaxf(mx, ld(ar, a->nb[0], i) * scale);
        double sum = 0.0;
        for (int64_t i = 0; i < ne0; i++) {
            float e = mx == -INFINITY ? 0.0f : expf(ld(ar, a->nb[0], i) * scale - mx);
            st(dr, d->nb[0], i, e);
            sum += e;
        }
        float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
        for (int64_t i = 0; i < ne0; i++) st(dr, d->nb[0], i, ld(dr, d->nb[0], i) * inv);
    }
}

static void op_rope(llmh_backend *be, const llmh_node *n) {
    const llmh_tensor *a = n->src[0], *pos = n->src[1], *ff = n->src[2];
    llmh_tensor *d = n->dst;
    int n_rot = n->ip[0], half = n_rot / 2, neox = n->ip[1] == LLMH_ROPE_NEOX;
    float fscale = n->fp[1], theta_scale = powf(n->fp[0], -2.0f / (float)n_rot);
    int64_t T = a->ne[2], H = a->ne[1], B = a->ne[3], ne0 = a->ne[0];
    /* cos/sin per token, then every head of the token */
    float *cs = (float *)od_scratch(be, (size_t)T * (size_t)n_rot * 4 + 64);
    if (!cs) {
        od_fail(be, LLMH_ERR_NO_MEMORY, "ROPE: no scratch");
        return;
    }
#pragma omp parallel for schedule(static) if(T * half >= OD_PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        int32_t p;
        memcpy(&p, (const uint8_t *)pos->data + (size_t)t * pos->nb[0], 4);
        /* as llama.cpp's rope cache: theta advanced in f32 by powf(base, -2/n_rot) */
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            float ffi = ff ? ld(ff->data, ff->nb[0], i) : 1.0f;
            float th = fscale * (theta / ffi);
            cs[t * n_rot + i] = cosf(th);
            cs[t * n_rot + half + i] = sinf(th);
            theta *= theta_scale;
        }
    }
    int64_t R = H * T * B;
#pragma omp parallel for schedule(static) if(R * n_rot >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        int64_t h = r % H, t = (r / H) % T, b3 = r / (H * T);
        const uint8_t *ar = (const uint8_t *)a->data + (size_t)h * a->nb[1] + (size_t)t * a->nb[2] + (size_t)b3 * a->nb[3];
        uint8_t *dr = (uint8_t *)d->data + (size_t)h * d->nb[1] + (size_t)t * d->nb[2] + (size_t)b3 * d->nb[3];
        const float *c = cs + t * n_rot, *s = c + half;
        for (int i = 0; i < half; i++) {
            int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float x0 = ld(ar, a->nb[0], i0), x1 = ld(ar, a->nb[0], i1);
            st(dr, d->nb[0], i0, x0 * c[i] - x1 * s[i]);
            st(dr, d->nb[0], i1, x0 * s[i] + x1 * c[i]);
        }
        if (dr != ar || d->nb[0] != a->nb[0])
            for (int64_t i = n_rot; i < ne0; i++) st(dr, d->nb[0], i, ld(ar, a->nb[0], i));
    }
}

static void op_cpy(llmh_backend *be, const llmh_node *n) {
    (void)be;
    const llmh_tensor *a = n->src[0];
    llmh_tensor *d = n->dst;
    size_t as = llmh_dtype_type_size(a->type), ds = llmh_dtype_type_size(d->type);
    int same = a->ne[0] == d->ne[0] && a->ne[1] == d->ne[1] && a->ne[2] == d->ne[2] && a->ne[3] == d->ne[3];
    if (!same) { /* both contiguous with the same count: flat */
        int64_t cnt = d->ne[0] * d->ne[1] * d->ne[2] * d->ne[3];
        const uint8_t *sp = a->data;
        uint8_t *dp = d->data;
#pragma omp parallel for schedule(static) if(cnt >= OD_PAR_MIN)
        for (int64_t i = 0; i < cnt; i++) st_any(d->type, dp + (size_t)i * ds, ld_any(a->type, sp + (size_t)i * as));
        return;
    }
    int64_t R = n_rows(d), ne0 = d->ne[0];
#pragma omp parallel for schedule(static) if(R * ne0 >= OD_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        uint8_t *dr = row_at(d, r);
        const uint8_t *sr = row_at(a, r);
        if (a->type == d->type && a->nb[0] == as && d->nb[0] == ds) {
            memmove(dr, sr, (size_t)ne0 * ds);
            continue;
        }
        for (int64_t i = 0; i < ne0; i++)
            st_any(d->type, dr + (size_t)i * d->nb[0], ld_any(a->type, sr + (size_t)i * a->nb[0]));
    }
}

/* Causal GQA attention. K/V rows 0..n_past+T-1 are first converted to
 * contiguous f32 (exact for f16), then each (token, head) computes all its
 * scores, the softmax, and the weighted sum of V. With F16 K/V, q and the
 * normalized probabilities are rounded to f16 (the SDK's normative note). */
static void op_attention(llmh_backend *be, const llmh_node *n) {
    const llmh_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2];
    llmh_tensor *d = n->dst;
    int64_t D = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[1];
    int64_t group = H / Hkv, n_past = n->ip[0], window = n->ip[1], n_kv = n_past + T;
    float scale = n->fp[0], cap = n->fp[1];
    int f16 = k->type == LLMH_DTYPE_F16;
    int nth = be->n_threads;
    size_t kv_floats = (size_t)Hkv * (size_t)n_kv * (size_t)D;
    size_t per_thread = ((size_t)n_kv + 2 * (size_t)D + 16) * 4;
    per_thread = (per_thread + 63) & ~(size_t)63;
    uint8_t *scr = od_scratch(be, 2 * kv_floats * 4 + per_thread * (size_t)nth + 128);
    if (!scr) {
        od_fail(be, LLMH_ERR_NO_MEMORY, "ATTENTION: no scratch for %lld cached entries", (long long)n_kv);
        return;
    }
    float *kf = (float *)scr, *vf = kf + kv_floats;
    uint8_t *thr = scr + 2 * kv_floats * 4;
    thr = (uint8_t *)(((uintptr_t)thr + 63) & ~(uintptr_t)63);
    /* [hkv][j][D] */
#pragma omp parallel for schedule(static) if(Hkv * n_kv * D >= OD_PAR_MIN)
    for (int64_t r = 0; r < Hkv * n_kv; r++) {
        int64_t hk = r / n_kv, j = r % n_kv;
        const uint8_t *kr = (const uint8_t *)k->data + (size_t)hk * k->nb[1] + (size_t)j * k->nb[2];
        const uint8_t *vr = (const uint8_t *)v->data + (size_t)hk * v->nb[1] + (size_t)j * v->nb[2];
        float *ko = kf + (size_t)r * (size_t)D, *vo = vf + (size_t)r * (size_t)D;
        for (int64_t i = 0; i < D; i++) {
            ko[i] = ld_any(k->type, kr + (size_t)i * k->nb[0]);
            vo[i] = ld_any(v->type, vr + (size_t)i * v->nb[0]);
        }
    }
#pragma omp parallel for schedule(dynamic, 4) if(T * H * n_kv * D / 8 >= OD_PAR_MIN)
    for (int64_t r = 0; r < T * H; r++) {
        int64_t t = r / H, h = r % H, hk = h / group, p = n_past + t;
        int64_t j0 = 0;
        if (window > 0 && p - window + 1 > j0) j0 = p - window + 1;
        float *sc = (float *)(thr + per_thread * (size_t)omp_get_thread_num());
        float *qv = sc + n_kv, *o = qv + D;
        const uint8_t *qr = (const uint8_t *)q->data + (size_t)h * q->nb[1] + (size_t)t * q->nb[2];
        for (int64_t i = 0; i < D; i++) {
            float x = ld(qr, q->nb[0], i);
            qv[i] = f16 ? llmh_fp16_to_fp32(llmh_fp32_to_fp16(x)) : x;
        }
        const float *kb = kf + (size_t)hk * (size_t)n_kv * (size_t)D;
        const float *vb = vf + (size_t)hk * (size_t)n_kv * (size_t)D;
        float mx = -INFINITY;
        for (int64_t j = j0; j <= p; j++) {
            float s = dot8(qv, kb + (size_t)j * (size_t)D, D) * scale;
            if (cap > 0.0f) s = cap * tanhf(s / cap);
            sc[j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int64_t j = j0; j <= p; j++) {
            float e = expf(sc[j] - mx);
            sc[j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        uint8_t *dr = (uint8_t *)d->data + (size_t)h * d->nb[1] + (size_t)t * d->nb[2];
        for (int64_t i = 0; i < D; i++) o[i] = 0.0f;
        for (int64_t j = j0; j <= p; j++) {
            float pj = sc[j] * inv;
            if (f16) pj = llmh_fp16_to_fp32(llmh_fp32_to_fp16(pj));
            const float *vr = vb + (size_t)j * (size_t)D;
            for (int64_t i = 0; i < D; i++) o[i] += pj * vr[i];
        }
        for (int64_t i = 0; i < D; i++) st(dr, d->nb[0], i, o[i]);
    }
}

llmh_status od_run_op(llmh_backend *be, const llmh_node *n) {
    switch (n->op) {
    case LLMH_OP_NONE: break;
    case LLMH_OP_GET_ROWS: op_get_rows(be, n); break;
    case LLMH_OP_ADD: op_binary(be, n, 0); break;
    case LLMH_OP_MUL: op_binary(be, n, 1); break;
    case LLMH_OP_SCALE: case LLMH_OP_SILU: case LLMH_OP_GELU: case LLMH_OP_SWIGLU: op_unary(be, n); break;
    case LLMH_OP_RMS_NORM: op_rms_norm(be, n); break;
    case LLMH_OP_SOFTMAX: op_softmax(be, n); break;
    case LLMH_OP_ROPE: op_rope(be, n); break;
    case LLMH_OP_CPY: op_cpy(be, n); break;
    case LLMH_OP_ATTENTION: op_attention(be, n); break;
    default:
        be->host->set_error("onednn backend: op %s (%d) is not supported", od_op_name(n->op), (int)n->op);
        return LLMH_ERR_UNSUPPORTED;
    }
    return LLMH_OK;
}

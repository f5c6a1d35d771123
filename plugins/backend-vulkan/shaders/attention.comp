#version 450
#extension GL_GOOGLE_include_directive : require
// ATTENTION: one workgroup (64 threads) per (query head h, token t).
// Q src0 [D, H, T] (f32), K src1 / V src2 [D, Hkv, n_kv] of type KVT
// (0 f32, 1 f16, 30 bf16), dst [D, H, T]. ip0 = n_past, ip1 = window,
// fp0 = scale, fp1 = soft-cap; pc.x0 = Hkv; pc.ne = Q/dst shape;
// strides: Q anb, K bnb, V (x1 = nb0, x2 = nb1, x3 = nb2), dst dnb.
// Pass 1 finds the row max and the exp-sum of the visible scores; pass 2
// recomputes the scores 64 at a time, normalizes them (rounded to f16 when
// K/V are f16, as the SDK requires) and accumulates p * V with one output
// dimension per thread (up to 8 per thread: D <= 512).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint KVT = 0;
#include "common.glsl"

shared float qs[512];
shared float ps[64];
shared float rm[64];
shared float rl[64];

float kv_load_b(uint o) {
    if (KVT == T_F16) return h2f(LD_U16(b_, o));
    if (KVT == T_BF16) return bf2f(LD_U16(b_, o));
    return LD_F32(b_, o);
}
float kv_load_c(uint o) {
    if (KVT == T_F16) return h2f(LD_U16(c_, o));
    if (KVT == T_BF16) return bf2f(LD_U16(c_, o));
    return LD_F32(c_, o);
}

void main() {
    uint D = pc.ne0, H = pc.ne1;
    uint g = wg_linear();
    if (g >= H * pc.ne2) return;
    uint h = g % H, t = g / H, tid = gl_LocalInvocationID.x;
    uint hk = h / (H / pc.x0);
    int pos = pc.ip0 + int(t);
    int j0 = 0;
    if (pc.ip1 > 0 && pos - pc.ip1 + 1 > 0) j0 = pos - pc.ip1 + 1;
    uint qb = pc.off_a + h * pc.anb1 + t * pc.anb2;
    for (uint i = tid; i < D; i += 64u) {
        float q = LD_F32(a_, qb + i * pc.anb0);
        qs[i] = KVT == T_F16 ? round_f16(q) : q;
    }
    barrier();
    uint kb = pc.off_b + hk * pc.bnb1, vb = pc.off_c + hk * pc.x2;
    float scale = pc.fp0, cap = pc.fp1;
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // pass 1: max and sum
    float m = NEG_INF, l = 0.0;
    for (int j = j0 + int(tid); j <= pos; j += 64) {
        uint kr = kb + uint(j) * pc.bnb2;
        float s = 0.0;
        for (uint i = 0u; i < D; i++) s += qs[i] * kv_load_b(kr + i * pc.bnb0);
        s *= scale;
        if (cap > 0.0) s = cap * tanh_safe(s / cap);
        if (s > m) {
            l = l * exp(m - s) + 1.0;
            m = s;
        } else {
            l += exp(s - m);
        }
    }
    rm[tid] = m;
    rl[tid] = l;
    barrier();
    for (uint st = 32u; st > 0u; st >>= 1) {
        if (tid < st) {
            float m1 = rm[tid], m2 = rm[tid + st], mm = max(m1, m2);
            float l1 = m1 == NEG_INF ? 0.0 : rl[tid] * exp(m1 - mm);
            float l2 = m2 == NEG_INF ? 0.0 : rl[tid + st] * exp(m2 - mm);
            rm[tid] = mm;
            rl[tid] = l1 + l2;
        }
        barrier();
    }
    float M = rm[0], L = rl[0];
    float invL = L > 0.0 ? 1.0 / L : 0.0;

    // pass 2: normalized probabilities times V
    float acc[8];
    for (uint u = 0u; u < 8u; u++) acc[u] = 0.0;
    for (int c0 = j0; c0 <= pos; c0 += 64) {
        int j = c0 + int(tid);
        float p = 0.0;
        if (j <= pos) {
            uint kr = kb + uint(j) * pc.bnb2;
            float s = 0.0;
            for (uint i = 0u; i < D; i++) s += qs[i] * kv_load_b(kr + i * pc.bnb0);
            s *= scale;
            if (cap > 0.0) s = cap * tanh_safe(s / cap);
            p = exp(s - M) * invL;
            if (KVT == T_F16) p = round_f16(p);
        }
        ps[tid] = p;
        barrier();
        int cnt = min(64, pos - c0 + 1);
        for (uint u = 0u; u < 8u; u++) {
            uint i = tid + 64u * u;
            if (i < D) {
                float a = acc[u];
                for (int jj = 0; jj < cnt; jj++)
                    a += ps[jj] * kv_load_c(vb + uint(c0 + jj) * pc.x3 + i * pc.x1);
                acc[u] = a;
            }
        }
        barrier();
    }
    uint ob = pc.off_d + h * pc.dnb1 + t * pc.dnb2;
    for (uint u = 0u; u < 8u; u++) {
        uint i = tid + 64u * u;
        if (i < D) d_[(ob + i * pc.dnb0) >> 2] = floatBitsToUint(acc[u]);
    }
}

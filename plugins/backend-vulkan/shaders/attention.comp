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
//
// PHASE 3 does all of it in one workgroup per (h, t). For decode, where
// H * T workgroups cannot fill a GPU, the visible keys are cut into
// pc.bne0 splits of pc.bne1 keys (G = H * T * splits workgroups) and the
// work runs in three dispatches over the auxiliary buffer x_:
//   PHASE 0: per split, max and exp-sum           -> x_[2g], x_[2g + 1]
//   PHASE 1: per split, combine all splits' stats into the global max and
//            sum, then accumulate its normalized p * V -> x_[2G + g*D + i]
//   PHASE 2: per (h, t, i), sum over the splits   -> dst
// The probabilities are the same normalized (and f16-rounded) values as in
// PHASE 3; only the order of the final f32 sum differs.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint KVT = 0;
layout(constant_id = 1) const uint PHASE = 3;
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

float score(uint kb, int j, uint D, float scale, float cap) {
    uint kr = kb + uint(j) * pc.bnb2;
    float s = 0.0;
    for (uint i = 0u; i < D; i++) s += qs[i] * kv_load_b(kr + i * pc.bnb0);
    s *= scale;
    if (cap > 0.0) s = cap * tanh_safe(s / cap);
    return s;
}

void main() {
    uint D = pc.ne0, H = pc.ne1, T = pc.ne2;
    uint tid = gl_LocalInvocationID.x;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    uint nsplit = PHASE == 3u ? 1u : pc.bne0;
    uint G = H * T * nsplit;
    if (PHASE == 2u) {
        uint e = gid_linear();
        if (e >= H * T * D) return;
        uint i = e % D, ht = e / D;
        float sum = 0.0;
        for (uint sp = 0u; sp < nsplit; sp++) sum += x_[2u * G + (ht * nsplit + sp) * D + i];
        uint h = ht % H, t = ht / H;
        d_[(pc.off_d + h * pc.dnb1 + t * pc.dnb2 + i * pc.dnb0) >> 2] = floatBitsToUint(sum);
        return;
    }
    uint g = wg_linear();
    if (g >= G) return;
    uint sp = g % nsplit, ht = g / nsplit, h = ht % H, t = ht / H;
    uint hk = h / (H / pc.x0);
    int pos = pc.ip0 + int(t);
    int j0 = 0;
    if (pc.ip1 > 0 && pos - pc.ip1 + 1 > 0) j0 = pos - pc.ip1 + 1;
    int jend = pos; // inclusive
    if (PHASE != 3u) {
        j0 += int(sp * pc.bne1);
        jend = min(pos, j0 + int(pc.bne1) - 1);
    }
    uint qb = pc.off_a + h * pc.anb1 + t * pc.anb2;
    for (uint i = tid; i < D; i += 64u) {
        float q = LD_F32(a_, qb + i * pc.anb0);
        qs[i] = KVT == T_F16 ? round_f16(q) : q;
    }
    barrier();
    uint kb = pc.off_b + hk * pc.bnb1, vb = pc.off_c + hk * pc.x2;
    float scale = pc.fp0, cap = pc.fp1;
    float M, L;

    if (PHASE == 0u || PHASE == 3u) {
        // pass 1: max and sum over [j0, jend]
        float m = NEG_INF, l = 0.0;
        for (int j = j0 + int(tid); j <= jend; j += 64) {
            float s = score(kb, j, D, scale, cap);
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
        M = rm[0];
        L = rl[0];
        if (PHASE == 0u) {
            if (tid == 0u) {
                x_[2u * g] = M;
                x_[2u * g + 1u] = L;
            }
            return;
        }
    } else {
        // PHASE 1: global max and sum from every split of this (h, t)
        M = NEG_INF;
        for (uint q = 0u; q < nsplit; q++) M = max(M, x_[2u * (ht * nsplit + q)]);
        L = 0.0;
        for (uint q = 0u; q < nsplit; q++) {
            float mq = x_[2u * (ht * nsplit + q)];
            if (mq != NEG_INF) L += x_[2u * (ht * nsplit + q) + 1u] * exp(mq - M);
        }
    }
    float invL = L > 0.0 ? 1.0 / L : 0.0;

    // pass 2: normalized probabilities times V
    float acc[8];
    for (uint u = 0u; u < 8u; u++) acc[u] = 0.0;
    for (int c0 = j0; c0 <= jend; c0 += 64) {
        int j = c0 + int(tid);
        float p = 0.0;
        if (j <= jend) {
            p = exp(score(kb, j, D, scale, cap) - M) * invL;
            if (KVT == T_F16) p = round_f16(p);
        }
        ps[tid] = p;
        barrier();
        int cnt = min(64, jend - c0 + 1);
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
    if (PHASE == 1u) {
        for (uint u = 0u; u < 8u; u++) {
            uint i = tid + 64u * u;
            if (i < D) x_[2u * G + g * D + i] = acc[u];
        }
        return;
    }
    uint ob = pc.off_d + h * pc.dnb1 + t * pc.dnb2;
    for (uint u = 0u; u < 8u; u++) {
        uint i = tid + 64u * u;
        if (i < D) d_[(ob + i * pc.dnb0) >> 2] = floatBitsToUint(acc[u]);
    }
}

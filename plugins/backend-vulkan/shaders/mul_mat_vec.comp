#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT for few columns (decode): one workgroup of 64 threads computes NR
// rows of one dst column; threads stride over K and reduce in shared memory.
// src0 = weights (binding 1), binding 2 = prepared activations (one column
// per act_col_stride(K) floats, see act_prep.comp), dst binding 0.
// pc.ne = dst shape (M, N, B2, B3); pc.x0 = K; pc.x1 = r2 (B2 / src0 ne2),
// pc.x2 = r3; pc.anb = weight strides; pc.dnb = dst strides.
// Built twice: plain (shared-memory tree reduction) and with -DUSE_SUBGROUP
// (subgroupAdd, then one shared step), used when the device reports subgroup
// arithmetic for compute shaders.
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

#define NR 4u
shared float red[NR][64];

// Quantized weights: chunk c (elements 32c .. 32c+31) of the row at byte
// offset `row`, dotted with xv. Block scales and mins are decoded once per
// chunk; sums of q*x and of x are scaled afterwards.
// For the Q8_0-activation types xv holds the integers q_x and dx the block's
// activation scale: the integer dot sum(q_w * q_x) (every partial sum is an
// integer below 2^24, so exact in f32) is scaled once by d_w * d_x, as in
// llama.cpp's vec_dot_*_q8_0; Q4_1/Q5_1 add m_w * d_x * sum(q_x).
// For the K-quants xv holds the Q8_K values d * q.
float xv[32];

float q3_scale(uint s, uint is) {
    uint lo = is < 8u ? (LD_U8(a_, s + is) & 15u) : (LD_U8(a_, s + is - 8u) >> 4);
    uint hi = (LD_U8(a_, s + 8u + (is & 3u)) >> (2u * (is >> 2))) & 3u;
    return float(int(lo | (hi << 4)) - 32);
}

float wdot32(uint row, uint c, float dx) {
    if (TYPE == T_Q8_0) {
        uint b = row + c * 34u;
        float s = 0.0;
        for (uint w = 0u; w < 8u; w++) {
            uint v = ld_a_u32(b + 2u + 4u * w);
            for (uint i = 0u; i < 4u; i++) s += float(int(v << (24u - 8u * i)) >> 24) * xv[4u * w + i];
        }
        return (dq_f16s(b) * dx) * s;
    }
    if (TYPE == T_Q4_0 || TYPE == T_Q4_1 || TYPE == T_Q5_0 || TYPE == T_Q5_1) {
        uint b = row + c * (TYPE == T_Q4_0 ? 18u : TYPE == T_Q4_1 ? 20u : TYPE == T_Q5_0 ? 22u : 24u);
        uint hq = b + ((TYPE == T_Q4_0 || TYPE == T_Q5_0) ? 2u : 4u);     // qh (Q5) or qs (Q4)
        uint qh = 0u, qs = hq;
        if (TYPE == T_Q5_0 || TYPE == T_Q5_1) {
            qh = ld_a_u32(hq);
            qs = hq + 4u;
        }
        float s = 0.0, sx = 0.0;
        for (uint w = 0u; w < 4u; w++) {
            uint v = ld_a_u32(qs + 4u * w);
            for (uint i = 0u; i < 4u; i++) {
                uint j = 4u * w + i, q = (v >> (8u * i)) & 0xffu;
                uint lo = (q & 15u) | (((qh >> j) & 1u) << 4), hi = (q >> 4) | (((qh >> (j + 16u)) & 1u) << 4);
                s += float(lo) * xv[j] + float(hi) * xv[j + 16u];
                sx += xv[j] + xv[j + 16u];
            }
        }
        if (TYPE == T_Q4_0) return (dq_f16s(b) * dx) * (s - 8.0 * sx);
        if (TYPE == T_Q5_0) return (dq_f16s(b) * dx) * (s - 16.0 * sx);
        return dx * (dq_f16s(b) * s + dq_f16s(b + 2u) * sx);
    }
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        uint b = row + (c >> 3) * (TYPE == T_Q4_K ? 144u : 176u), sub = c & 7u, p = sub >> 1;
        uint ql = b + (TYPE == T_Q4_K ? 16u : 48u) + p * 32u, sh = (sub & 1u) * 4u;
        float sc, mn;
        k4_scale_min(b + 4u, sub, sc, mn);
        float s = 0.0, sx = 0.0;
        for (uint w = 0u; w < 8u; w++) {
            uint v = ld_a_u32(ql + 4u * w), vh = 0u;
            if (TYPE == T_Q5_K) vh = ld_a_u32(b + 16u + 4u * w);
            for (uint i = 0u; i < 4u; i++) {
                uint l = 4u * w + i, q = (v >> (8u * i + sh)) & 15u;
                if (TYPE == T_Q5_K) q += ((vh >> (8u * i + sub)) & 1u) << 4;
                s += float(q) * xv[l];
                sx += xv[l];
            }
        }
        return dq_f16s(b) * sc * s - dq_f16s(b + 2u) * mn * sx;
    }
    if (TYPE == T_Q6_K) {
        uint b = row + (c >> 3) * 210u, sub = c & 7u, n = sub >> 2, quarter = sub & 3u;
        uint qlb = b + n * 64u + ((quarter & 1u) != 0u ? 32u : 0u), sh = quarter < 2u ? 0u : 4u;
        uint qhb = b + 128u + n * 32u;
        float s0 = 0.0, s1 = 0.0;
        for (uint w = 0u; w < 8u; w++) {
            uint v = ld_a_u32(qlb + 4u * w), vh = ld_a_u32(qhb + 4u * w);
            for (uint i = 0u; i < 4u; i++) {
                uint l = 4u * w + i;
                uint ql = (v >> (8u * i + sh)) & 15u, qh = (vh >> (8u * i + 2u * quarter)) & 3u;
                float x = float(int(ql | (qh << 4)) - 32) * xv[l];
                if (l < 16u) s0 += x; else s1 += x;
            }
        }
        uint scb = b + 192u + n * 8u + 2u * quarter;
        return dq_f16s(b + 208u) * (float(LD_I8(a_, scb)) * s0 + float(LD_I8(a_, scb + 1u)) * s1);
    }
    if (TYPE == T_Q2_K || TYPE == T_Q3_K) {
        uint b = row + (c >> 3) * (TYPE == T_Q2_K ? 84u : 110u), sub = c & 7u, n = sub >> 2, si = sub & 3u;
        float acc = 0.0;
        for (uint hf = 0u; hf < 2u; hf++) {
            float s = 0.0, sx = 0.0;
            for (uint l = 0u; l < 16u; l++) {
                uint kk = l + 16u * hf;
                float x = xv[kk];
                if (TYPE == T_Q2_K) {
                    s += float((LD_U8(a_, b + 16u + n * 32u + kk) >> (2u * si)) & 3u) * x;
                } else {
                    int q = int((LD_U8(a_, b + 32u + n * 32u + kk) >> (2u * si)) & 3u);
                    if ((LD_U8(a_, b + kk) & (1u << (n * 4u + si))) == 0u) q -= 4;
                    s += float(q) * x;
                }
                sx += x;
            }
            uint is = n * 8u + si * 2u + hf;
            if (TYPE == T_Q2_K) {
                uint sc = LD_U8(a_, b + is);
                acc += dq_f16s(b + 80u) * float(sc & 15u) * s - dq_f16s(b + 82u) * float(sc >> 4) * sx;
            } else {
                acc += dq_f16s(b + 108u) * q3_scale(b + 96u, is) * s;
            }
        }
        return acc;
    }
    float s = 0.0;
    for (uint j = 0u; j < 32u; j++) s += dq(row, c * 32u + j) * xv[j];
    return s;
}

void main() {
    uint M = pc.ne0, N = pc.ne1, B2 = pc.ne2, K = pc.x0;
    uint nrg = (M + NR - 1u) / NR;
    uint g = wg_linear();
    if (g >= nrg * N * pc.ne2 * pc.ne3) return;
    uint rg = g % nrg, rest = g / nrg, j = rest % N, bt = rest / N, i2 = bt % B2, i3 = bt / B2;
    uint tid = gl_LocalInvocationID.x;
    uint wbase = pc.off_a + (i2 / pc.x1) * pc.anb2 + (i3 / pc.x2) * pc.anb3;
    uint xbase = (pc.off_b >> 2) + (j + N * bt) * act_col_stride(K);
    float acc[NR];
    for (uint r = 0u; r < NR; r++) acc[r] = 0.0;
    if (TYPE == T_F32 || TYPE == T_F16 || TYPE == T_BF16) {
        // plain floats: neighbouring threads read neighbouring elements
        for (uint k = tid; k < K; k += 64u) {
            float x = uintBitsToFloat(b_[xbase + k]);
            for (uint r = 0u; r < NR; r++) {
                uint row = rg * NR + r;
                if (row < M) acc[r] += dq(wbase + row * pc.anb1, k) * x;
            }
        }
    } else {
        // block types (K % 32 == 0): one 32-element chunk per thread at a time
        for (uint c = tid; c < K / 32u; c += 64u) {
            for (uint j = 0u; j < 32u; j++) xv[j] = uintBitsToFloat(b_[xbase + c * 32u + j]);
            float dx = q8_0_act() ? uintBitsToFloat(b_[xbase + K + c]) : 0.0;
            for (uint r = 0u; r < NR; r++) {
                uint row = rg * NR + r;
                if (row < M) acc[r] += wdot32(wbase + row * pc.anb1, c, dx);
            }
        }
    }
#ifdef USE_SUBGROUP
    for (uint r = 0u; r < NR; r++) {
        float v = subgroupAdd(acc[r]);
        if (subgroupElect()) red[r][gl_SubgroupID] = v;
    }
    barrier();
    if (tid < NR) {
        float total = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; i++) total += red[tid][i];
        red[tid][0] = total;
    }
#else
    for (uint r = 0u; r < NR; r++) red[r][tid] = acc[r];
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s)
            for (uint r = 0u; r < NR; r++) red[r][tid] += red[r][tid + s];
        barrier();
    }
#endif
    if (tid < NR) {
        uint row = rg * NR + tid;
        if (row < M)
            d_[(pc.off_d + row * 4u + j * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3) >> 2] = floatBitsToUint(red[tid][0]);
    }
}

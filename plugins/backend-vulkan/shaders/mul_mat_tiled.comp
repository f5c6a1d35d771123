#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT for many columns (prefill): each workgroup (256 threads) computes a
// 64-row x 64-column tile of dst; each thread owns a 4x4 block of outputs
// (rows tx + 16i, columns ty + 16j). Same bindings and push constants as
// mul_mat_vec.comp.
// F32/F16/BF16 and K-quant weights: K advances 16 at a time; every thread
// dequantizes 4 consecutive weights of one row and loads 4 consecutive
// prepared activations of one column into shared memory, then does 16 FMAs
// per 8 shared loads.
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights (Q8_0 activations): K advances one
// 32-element block at a time; the tile holds the integer weights q_w and the
// integer activations q_x, each thread forms its 16 integer block dots
// sum(q_w * q_x) exactly in f32 (partial sums are integers below 2^24) and
// scales each once by d_w * d_x (Q4_1/Q5_1: d_x * (d_w * sum + m_w * sum(q_x))),
// the arithmetic of llama.cpp's vec_dot_*_q8_0.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

#define TM 64u
#define TN 64u
#define BK 16u
#define BQ 32u
shared float ws[TM][BQ + 1u];
shared float xs[TN][BQ + 1u];
shared float wd[TM], wm[TM], xd[TN];

bool has_min() { return TYPE == T_Q4_1 || TYPE == T_Q5_1; }

// The 8 integer weights l0 .. l0+7 (l0 a multiple of 8) of block `blk` of the
// row at byte offset `row` (Q4_0/Q5_0 offset by -8/-16, Q4_1/Q5_1 unsigned),
// with the block's scale d and min m (0 where the type has none).
void qraw8(uint row, uint blk, uint l0, out float v[8], out float d, out float m) {
    m = 0.0;
    if (TYPE == T_Q8_0) {
        uint b = row + blk * 34u;
        d = dq_f16s(b);
        for (uint h = 0u; h < 2u; h++) {
            uint w = ld_a_u32(b + 2u + l0 + 4u * h);
            for (uint i = 0u; i < 4u; i++) v[4u * h + i] = float(int(w << (24u - 8u * i)) >> 24);
        }
        return;
    }
    uint bsz = TYPE == T_Q4_0 ? 18u : TYPE == T_Q4_1 ? 20u : TYPE == T_Q5_0 ? 22u : 24u;
    uint b = row + blk * bsz;
    uint qs = b + (TYPE == T_Q4_0 ? 2u : TYPE == T_Q4_1 ? 4u : TYPE == T_Q5_0 ? 6u : 8u);
    uint qh = 0u;
    if (TYPE == T_Q5_0) qh = ld_a_u32(b + 2u);
    if (TYPE == T_Q5_1) qh = ld_a_u32(b + 4u);
    d = dq_f16s(b);
    if (has_min()) m = dq_f16s(b + 2u);
    float off = TYPE == T_Q4_0 ? 8.0 : TYPE == T_Q5_0 ? 16.0 : 0.0;
    uint sh = l0 < 16u ? 0u : 4u;
    for (uint h = 0u; h < 2u; h++) {
        uint w = ld_a_u32(qs + (l0 & 15u) + 4u * h);
        for (uint i = 0u; i < 4u; i++) {
            uint e = 4u * h + i;
            uint q = (w >> (8u * i + sh)) & 15u;
            q |= ((qh >> (l0 + e)) & 1u) << 4;
            v[e] = float(q) - off;
        }
    }
}

void main() {
    uint M = pc.ne0, N = pc.ne1, B2 = pc.ne2, K = pc.x0;
    uint ntm = (M + TM - 1u) / TM, ntn = (N + TN - 1u) / TN;
    uint g = wg_linear();
    if (g >= ntm * ntn * pc.ne2 * pc.ne3) return; // uniform per workgroup
    uint tm = g % ntm, rest = g / ntm, tn = rest % ntn, bt = rest / ntn, i2 = bt % B2, i3 = bt / B2;
    uint tid = gl_LocalInvocationID.x, tx = tid & 15u, ty = tid >> 4;
    uint m0 = tm * TM, n0 = tn * TN;
    uint wbase = pc.off_a + (i2 / pc.x1) * pc.anb2 + (i3 / pc.x2) * pc.anb3;
    uint cs = act_col_stride(K);
    uint xbase = (pc.off_b >> 2) + (N * bt) * cs;
    uint lr = tid >> 2;
    uint wrow = m0 + lr, xcol = n0 + lr;
    uint wro = wbase + wrow * pc.anb1;
    float acc[4][4];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    if (q8_0_act()) {
        // K % 32 == 0. Stage 8 integers of row/column lr at block offset lq.
        uint lq = (tid & 3u) * 8u;
        for (uint blk = 0u; blk < K / 32u; blk++) {
            float v[8], d = 0.0, m = 0.0;
            if (wrow < M) {
                qraw8(wro, blk, lq, v, d, m);
            } else {
                for (uint e = 0u; e < 8u; e++) v[e] = 0.0;
            }
            for (uint e = 0u; e < 8u; e++) ws[lr][lq + e] = v[e];
            uint xo = xbase + xcol * cs;
            for (uint e = 0u; e < 8u; e++)
                xs[lr][lq + e] = xcol < N ? uintBitsToFloat(b_[xo + blk * 32u + lq + e]) : 0.0;
            if (lq == 0u) {
                wd[lr] = d;
                wm[lr] = m;
                xd[lr] = xcol < N ? uintBitsToFloat(b_[xo + K + blk]) : 0.0;
            }
            barrier();
            float s[4][4], sx[4];
            for (uint i = 0u; i < 4u; i++) {
                sx[i] = 0.0;
                for (uint j = 0u; j < 4u; j++) s[i][j] = 0.0;
            }
            for (uint kk = 0u; kk < BQ; kk++) {
                float w[4], x[4];
                for (uint i = 0u; i < 4u; i++) w[i] = ws[tx + 16u * i][kk];
                for (uint j = 0u; j < 4u; j++) x[j] = xs[ty + 16u * j][kk];
                for (uint i = 0u; i < 4u; i++)
                    for (uint j = 0u; j < 4u; j++) s[i][j] += w[i] * x[j];
                if (has_min())
                    for (uint j = 0u; j < 4u; j++) sx[j] += x[j];
            }
            for (uint i = 0u; i < 4u; i++) {
                float dw = wd[tx + 16u * i], mw = wm[tx + 16u * i];
                for (uint j = 0u; j < 4u; j++) {
                    float dx = xd[ty + 16u * j];
                    if (has_min())
                        acc[i][j] += dx * (dw * s[i][j] + mw * sx[j]);
                    else
                        acc[i][j] += (dw * dx) * s[i][j];
                }
            }
            barrier();
        }
    }
    // the 4 elements this thread stages: row/column lr, k offset lk
    uint lk = (tid & 3u) * 4u;
    for (uint k0 = 0u; !q8_0_act() && k0 < K; k0 += BK) {
        if (wrow < M && k0 + lk + 3u < K) {
            float v[4];
            dq4(wro, k0 + lk, v);
            for (uint e = 0u; e < 4u; e++) ws[lr][lk + e] = v[e];
        } else {
            for (uint e = 0u; e < 4u; e++) {
                uint k = k0 + lk + e;
                ws[lr][lk + e] = (wrow < M && k < K) ? dq(wro, k) : 0.0;
            }
        }
        for (uint e = 0u; e < 4u; e++) {
            uint k = k0 + lk + e;
            xs[lr][lk + e] = (xcol < N && k < K) ? uintBitsToFloat(b_[xbase + xcol * K + k]) : 0.0;
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float w[4], x[4];
            for (uint i = 0u; i < 4u; i++) w[i] = ws[tx + 16u * i][kk];
            for (uint j = 0u; j < 4u; j++) x[j] = xs[ty + 16u * j][kk];
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++) acc[i][j] += w[i] * x[j];
        }
        barrier();
    }
    uint ob = pc.off_d + i2 * pc.dnb2 + i3 * pc.dnb3;
    for (uint i = 0u; i < 4u; i++) {
        uint r = m0 + tx + 16u * i;
        if (r >= M) continue;
        for (uint j = 0u; j < 4u; j++) {
            uint c = n0 + ty + 16u * j;
            if (c < N) d_[(ob + r * 4u + c * pc.dnb1) >> 2] = floatBitsToUint(acc[i][j]);
        }
    }
}

#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT for many columns (prefill): each workgroup (256 threads) computes a
// 64-row x 64-column tile of dst; each thread owns a 4x4 block of outputs
// (rows tx + 16i, columns ty + 16j). K advances 16 at a time: every thread
// dequantizes 4 consecutive weights of one row and loads 4 consecutive
// prepared activations of one column into shared memory, then does 16 FMAs
// per 8 shared loads. Same bindings and push constants as mul_mat_vec.comp.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

#define TM 64u
#define TN 64u
#define BK 16u
shared float ws[TM][BK + 1u];
shared float xs[TN][BK + 1u];

void main() {
    uint M = pc.ne0, N = pc.ne1, B2 = pc.ne2, K = pc.x0;
    uint ntm = (M + TM - 1u) / TM, ntn = (N + TN - 1u) / TN;
    uint g = wg_linear();
    if (g >= ntm * ntn * pc.ne2 * pc.ne3) return; // uniform per workgroup
    uint tm = g % ntm, rest = g / ntm, tn = rest % ntn, bt = rest / ntn, i2 = bt % B2, i3 = bt / B2;
    uint tid = gl_LocalInvocationID.x, tx = tid & 15u, ty = tid >> 4;
    uint m0 = tm * TM, n0 = tn * TN;
    uint wbase = pc.off_a + (i2 / pc.x1) * pc.anb2 + (i3 / pc.x2) * pc.anb3;
    uint xbase = (pc.off_b >> 2) + (N * bt) * K;
    // the 4 elements this thread stages: row/column lr, k offset lk
    uint lr = tid >> 2, lk = (tid & 3u) * 4u;
    uint wrow = m0 + lr, xcol = n0 + lr;
    uint wro = wbase + wrow * pc.anb1;
    float acc[4][4];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < K; k0 += BK) {
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

#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT for many columns (prefill): each workgroup (16x16 threads) computes
// a 32-row x 32-column tile of dst, staging dequantized weights and prepared
// activations through shared memory 32 values of K at a time; each thread
// owns 2x2 outputs. Same bindings and push constants as mul_mat_vec.comp.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

#define TM 32u
#define TN 32u
#define BK 32u
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
    float acc00 = 0.0, acc01 = 0.0, acc10 = 0.0, acc11 = 0.0;
    for (uint k0 = 0u; k0 < K; k0 += BK) {
        for (uint e = tid; e < TM * BK; e += 256u) {
            uint rr = e / BK, kk = e % BK, row = m0 + rr, k = k0 + kk;
            ws[rr][kk] = (row < M && k < K) ? dq(wbase + row * pc.anb1, k) : 0.0;
            uint col = n0 + rr;
            xs[rr][kk] = (col < N && k < K) ? uintBitsToFloat(b_[xbase + col * K + k]) : 0.0;
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float w0 = ws[tx][kk], w1 = ws[tx + 16u][kk];
            float x0 = xs[ty][kk], x1 = xs[ty + 16u][kk];
            acc00 += w0 * x0;
            acc01 += w0 * x1;
            acc10 += w1 * x0;
            acc11 += w1 * x1;
        }
        barrier();
    }
    uint ob = pc.off_d + i2 * pc.dnb2 + i3 * pc.dnb3;
    uint r0 = m0 + tx, r1 = m0 + tx + 16u, c0 = n0 + ty, c1 = n0 + ty + 16u;
    if (r0 < M && c0 < N) d_[(ob + r0 * 4u + c0 * pc.dnb1) >> 2] = floatBitsToUint(acc00);
    if (r0 < M && c1 < N) d_[(ob + r0 * 4u + c1 * pc.dnb1) >> 2] = floatBitsToUint(acc01);
    if (r1 < M && c0 < N) d_[(ob + r1 * 4u + c0 * pc.dnb1) >> 2] = floatBitsToUint(acc10);
    if (r1 < M && c1 < N) d_[(ob + r1 * 4u + c1 * pc.dnb1) >> 2] = floatBitsToUint(acc11);
}

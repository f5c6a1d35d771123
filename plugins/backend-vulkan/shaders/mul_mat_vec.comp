#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT for few columns (decode): one workgroup of 64 threads computes NR
// rows of one dst column; threads stride over K and reduce in shared memory.
// src0 = weights (binding 1), binding 2 = prepared activations (K floats per
// column, see act_prep.comp), dst binding 0.
// pc.ne = dst shape (M, N, B2, B3); pc.x0 = K; pc.x1 = r2 (B2 / src0 ne2),
// pc.x2 = r3; pc.anb = weight strides; pc.dnb = dst strides.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

#define NR 4u
shared float red[NR][64];

void main() {
    uint M = pc.ne0, N = pc.ne1, B2 = pc.ne2, K = pc.x0;
    uint nrg = (M + NR - 1u) / NR;
    uint g = wg_linear();
    if (g >= nrg * N * pc.ne2 * pc.ne3) return;
    uint rg = g % nrg, rest = g / nrg, j = rest % N, bt = rest / N, i2 = bt % B2, i3 = bt / B2;
    uint tid = gl_LocalInvocationID.x;
    uint wbase = pc.off_a + (i2 / pc.x1) * pc.anb2 + (i3 / pc.x2) * pc.anb3;
    uint xbase = (pc.off_b >> 2) + (j + N * bt) * K;
    float acc[NR];
    for (uint r = 0u; r < NR; r++) acc[r] = 0.0;
    for (uint k = tid; k < K; k += 64u) {
        float x = uintBitsToFloat(b_[xbase + k]);
        for (uint r = 0u; r < NR; r++) {
            uint row = rg * NR + r;
            if (row < M) acc[r] += dq(wbase + row * pc.anb1, k) * x;
        }
    }
    for (uint r = 0u; r < NR; r++) red[r][tid] = acc[r];
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s)
            for (uint r = 0u; r < NR; r++) red[r][tid] += red[r][tid + s];
        barrier();
    }
    if (tid < NR) {
        uint row = rg * NR + tid;
        if (row < M)
            d_[(pc.off_d + row * 4u + j * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3) >> 2] = floatBitsToUint(red[tid][0]);
    }
}

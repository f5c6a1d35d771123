#version 450
#extension GL_GOOGLE_include_directive : require
// RMS_NORM: one workgroup per row of ne0; dst = x / sqrt(mean(x^2) + fp0),
// times src1[i] when pc.x0 != 0. In-place safe: each element is read and
// written by the same thread after the reduction.
layout(local_size_x = 128) in;
#include "common.glsl"

shared float red[128];

void main() {
    uint row = wg_linear();
    if (row >= pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i1 = row % pc.ne1, r = row / pc.ne1, i2 = r % pc.ne2, i3 = r / pc.ne2;
    uint ab = pc.off_a + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3;
    uint db = pc.off_d + i1 * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3;
    uint tid = gl_LocalInvocationID.x;
    float ss = 0.0;
    for (uint i = tid; i < pc.ne0; i += 128u) {
        float x = LD_F32(a_, ab + i * pc.anb0);
        ss += x * x;
    }
    red[tid] = ss;
    barrier();
    for (uint s = 64u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    float inv = 1.0 / sqrt(red[0] / float(pc.ne0) + pc.fp0);
    for (uint i = tid; i < pc.ne0; i += 128u) {
        float y = LD_F32(a_, ab + i * pc.anb0) * inv;
        if (pc.x0 != 0u) y *= LD_F32(b_, pc.off_b + i * pc.bnb0);
        d_[(db + i * pc.dnb0) >> 2] = floatBitsToUint(y);
    }
}

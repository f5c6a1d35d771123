#version 450
#extension GL_GOOGLE_include_directive : require
// SOFTMAX over ne0 of src0 * scale (pc.fp0, already 1 when 0 was given):
// one workgroup per row; max, sum of exp, then exp * (1/sum). In-place safe.
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
    float sc = pc.fp0;
    float mx = uintBitsToFloat(0xff800000u);
    for (uint i = tid; i < pc.ne0; i += 128u) mx = max(mx, LD_F32(a_, ab + i * pc.anb0) * sc);
    red[tid] = mx;
    barrier();
    for (uint s = 64u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    mx = red[0];
    barrier();
    bool dead = isinf(mx) && mx < 0.0;
    float sum = 0.0;
    for (uint i = tid; i < pc.ne0; i += 128u) sum += dead ? 0.0 : exp(LD_F32(a_, ab + i * pc.anb0) * sc - mx);
    red[tid] = sum;
    barrier();
    for (uint s = 64u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    float inv = red[0] > 0.0 ? 1.0 / red[0] : 0.0;
    for (uint i = tid; i < pc.ne0; i += 128u) {
        float e = dead ? 0.0 : exp(LD_F32(a_, ab + i * pc.anb0) * sc - mx);
        d_[(db + i * pc.dnb0) >> 2] = floatBitsToUint(e * inv);
    }
}

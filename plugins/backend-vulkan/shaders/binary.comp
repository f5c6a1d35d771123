#version 450
#extension GL_GOOGLE_include_directive : require
// ADD (OP 0) / MUL (OP 1): dst = src0 op src1, src1 repeated along each dim
// it divides. One thread per dst element; each thread reads its element
// before writing it, so dst may be the same view as src0.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0;
#include "common.glsl"

void main() {
    uint e = gid_linear();
    if (e >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = e % pc.ne0, r = e / pc.ne0, i1 = r % pc.ne1, r2 = r / pc.ne1, i2 = r2 % pc.ne2, i3 = r2 / pc.ne2;
    float x = LD_F32(a_, pc.off_a + i0 * pc.anb0 + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3);
    float y = LD_F32(b_, pc.off_b + (i0 % pc.bne0) * pc.bnb0 + (i1 % pc.bne1) * pc.bnb1 +
                             (i2 % pc.bne2) * pc.bnb2 + (i3 % pc.bne3) * pc.bnb3);
    float v = OP == 0u ? x + y : x * y;
    d_[(pc.off_d + i0 * pc.dnb0 + i1 * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3) >> 2] = floatBitsToUint(v);
}

#version 450
#extension GL_GOOGLE_include_directive : require
// CPY: dst (type DT) = src0 (type ST) converted, element by element over the
// dst shape; both may be strided. Types: 0 f32, 1 f16, 30 bf16. 16-bit
// stores touch only their half of a word (atomic and/or), so neighbouring
// threads never clobber each other.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint ST = 0;
layout(constant_id = 1) const uint DT = 0;
#include "common.glsl"

void main() {
    uint e = gid_linear();
    if (e >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = e % pc.ne0, r = e / pc.ne0, i1 = r % pc.ne1, r2 = r / pc.ne1, i2 = r2 % pc.ne2, i3 = r2 / pc.ne2;
    uint ao = pc.off_a + i0 * pc.anb0 + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3;
    uint o = pc.off_d + i0 * pc.dnb0 + i1 * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3;
    float x;
    if (ST == T_F16) x = h2f(LD_U16(a_, ao));
    else if (ST == T_BF16) x = bf2f(LD_U16(a_, ao));
    else x = LD_F32(a_, ao);
    if (DT == T_F32) {
        d_[o >> 2] = floatBitsToUint(x);
    } else {
        uint h = DT == T_F16 ? f2h(x) : f2bf(x);
        uint sh = (o & 2u) << 3;
        atomicAnd(d_[o >> 2], ~(0xffffu << sh));
        atomicOr(d_[o >> 2], h << sh);
    }
}

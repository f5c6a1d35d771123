#version 450
#extension GL_GOOGLE_include_directive : require
// Elementwise: OP 0 SCALE (x * fp0), 1 SILU, 2 GELU (tanh approximation),
// 3 SWIGLU (silu(x) * src1, same shape). In-place safe (thread per element).
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0;
#include "common.glsl"

float silu(float x) { return x / (1.0 + exp(-x)); }

void main() {
    uint e = gid_linear();
    if (e >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = e % pc.ne0, r = e / pc.ne0, i1 = r % pc.ne1, r2 = r / pc.ne1, i2 = r2 % pc.ne2, i3 = r2 / pc.ne2;
    float x = LD_F32(a_, pc.off_a + i0 * pc.anb0 + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3);
    float v;
    if (OP == 0u) {
        v = x * pc.fp0;
    } else if (OP == 1u) {
        v = silu(x);
    } else if (OP == 2u) {
        const float c = 0.7978845608028654;
        v = 0.5 * x * (1.0 + tanh_safe(c * (x + 0.044715 * x * x * x)));
    } else {
        float y = LD_F32(b_, pc.off_b + i0 * pc.bnb0 + i1 * pc.bnb1 + i2 * pc.bnb2 + i3 * pc.bnb3);
        v = silu(x) * y;
    }
    d_[(pc.off_d + i0 * pc.dnb0 + i1 * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3) >> 2] = floatBitsToUint(v);
}

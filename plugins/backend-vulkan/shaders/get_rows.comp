#version 450
#extension GL_GOOGLE_include_directive : require
// GET_ROWS: dst[k, i] = dequant(src0 row ids[i])[k]. One thread per element.
// pc.ne = dst shape (D, N); pc.x0 = number of rows of src0 (V).
// An id outside [0, V) writes zeros and sets status bit 0.
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint TYPE = 0;
#include "common.glsl"
#include "dequant.glsl"

void main() {
    uint e = gid_linear();
    if (e >= pc.ne0 * pc.ne1) return;
    uint k = e % pc.ne0, i = e / pc.ne0;
    int id = int(b_[(pc.off_b + i * pc.bnb0) >> 2]);
    float v = 0.0;
    if (id < 0 || uint(id) >= pc.x0) {
        if (k == 0u) atomicOr(s_[0], 1u);
    } else {
        v = dq(pc.off_a + uint(id) * pc.anb1, k);
    }
    d_[(pc.off_d + k * pc.dnb0 + i * pc.dnb1) >> 2] = floatBitsToUint(v);
}

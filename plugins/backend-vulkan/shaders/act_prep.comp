#version 450
#extension GL_GOOGLE_include_directive : require
// MUL_MAT activation preparation: src1 (binding 1, any strides) is converted
// into the weight's dot type and written to a contiguous scratch area
// (binding 0), one column c = i1 + N*(i2 + B2*i3) after the other:
//   MODE 0: f32 copy    1: f16 rounding    2: bf16 rounding
//           (column: K floats, the rounded values)
//   MODE 3: Q8_0 blocks of 32: q = roundEven(x * 127/amax), d = f16(amax/127)
//           (column: K + K/32 floats: the integers q (exact as floats), then
//           the K/32 block scales d; the matmul kernels form each block's
//           integer dot product exactly and scale it once, as llama.cpp does)
//   MODE 4: Q8_K blocks of 256: iscale = -127/max (max: the element of
//           largest magnitude), q = min(127, roundEven(iscale*x)), d = 1/iscale
//           (column: K floats d * q, exact products)
// pc.ne = src1 shape (K, N, B2, B3), pc.anb = src1 strides.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint MODE = 0;
#include "common.glsl"

float src(uint k, uint col) {
    uint i1 = col % pc.ne1, r = col / pc.ne1, i2 = r % pc.ne2, i3 = r / pc.ne2;
    return LD_F32(a_, pc.off_a + k * pc.anb0 + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3);
}

// floats per prepared column
uint col_stride() { return MODE == 3u ? pc.ne0 + pc.ne0 / 32u : pc.ne0; }

void put(uint k, uint col, float v) { d_[(pc.off_d >> 2) + col * col_stride() + k] = floatBitsToUint(v); }

void main() {
    uint g = gid_linear();
    uint ncol = pc.ne1 * pc.ne2 * pc.ne3;
    if (MODE <= 2u) {
        if (g >= pc.ne0 * ncol) return;
        uint k = g % pc.ne0, col = g / pc.ne0;
        float x = src(k, col);
        if (MODE == 1u) x = round_f16(x);
        if (MODE == 2u) x = round_bf16(x);
        put(k, col, x);
        return;
    }
    uint bs = MODE == 3u ? 32u : 256u;
    uint nblk = pc.ne0 / bs;
    if (g >= nblk * ncol) return;
    uint blk = g % nblk, col = g / nblk, k0 = blk * bs;
    if (MODE == 3u) {
        float amax = 0.0;
        for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(src(k0 + j, col)));
        float id = amax > 0.0 ? div_cr(127.0, amax) : 0.0;
        float d = round_f16(div_cr(amax, 127.0));
        for (uint j = 0u; j < 32u; j++) {
            precise float xs = src(k0 + j, col) * id;
            put(k0 + j, col, roundEven(xs));
        }
        put(pc.ne0 + blk, col, d);
    } else {
        float amax = 0.0, mx = 0.0;
        for (uint j = 0u; j < 256u; j++) {
            float x = src(k0 + j, col);
            if (abs(x) > amax) { amax = abs(x); mx = x; }
        }
        if (amax == 0.0) {
            for (uint j = 0u; j < 256u; j++) put(k0 + j, col, 0.0);
            return;
        }
        float iscale = div_cr(-127.0, mx);
        float d = div_cr(1.0, iscale);
        for (uint j = 0u; j < 256u; j++) {
            precise float xs = iscale * src(k0 + j, col);
            put(k0 + j, col, d * min(127.0, roundEven(xs)));
        }
    }
}

#version 450
#extension GL_GOOGLE_include_directive : require
// ROPE: src0 [head_dim, n_head, n_tok], positions src1 (I32) [n_tok],
// optional frequency factors src2 [n_rot/2] (pc.x0 = 1 when present).
// ip0 = n_rot, ip1 = mode (0 normal: pairs (2i, 2i+1); 2 NeoX: (i, i+n_rot/2)),
// fp0 = freq_base, fp1 = freq_scale; pc.x1 = 1 when dst is not the same view
// as src0 (then dims past n_rot are copied). One thread per element; the
// thread of a pair's first element rotates both, so in-place use is safe.
// sin/cos use a Cody-Waite range reduction and minimax polynomials so large
// angles (long contexts) keep f32 accuracy on every driver.
layout(local_size_x = 256) in;
#include "common.glsl"

void sincos_accurate(float x, out float s, out float c) {
    precise float k = roundEven(x * 0.63661977236758134);  // 2/pi
    precise float r = fma(-k, 1.5703125, x);
    r = fma(-k, 4.837512969970703125e-4, r);
    r = fma(-k, 7.54978995489188216e-8, r);
    float z = r * r;
    float sr = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
    float cr = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
    int q = int(k) & 3;
    if (q == 0) { s = sr; c = cr; }
    else if (q == 1) { s = cr; c = -sr; }
    else if (q == 2) { s = -sr; c = -cr; }
    else { s = -cr; c = sr; }
}

void main() {
    uint e = gid_linear();
    if (e >= pc.ne0 * pc.ne1 * pc.ne2 * pc.ne3) return;
    uint i0 = e % pc.ne0, r = e / pc.ne0, i1 = r % pc.ne1, r2 = r / pc.ne1, i2 = r2 % pc.ne2, i3 = r2 / pc.ne2;
    uint ab = pc.off_a + i1 * pc.anb1 + i2 * pc.anb2 + i3 * pc.anb3;
    uint db = pc.off_d + i1 * pc.dnb1 + i2 * pc.dnb2 + i3 * pc.dnb3;
    uint n_rot = uint(pc.ip0), half_ = n_rot / 2u;
    bool neox = pc.ip1 == 2;
    if (i0 >= n_rot) {
        if (pc.x1 != 0u) d_[(db + i0 * pc.dnb0) >> 2] = a_[(ab + i0 * pc.anb0) >> 2];
        return;
    }
    uint i, j0, j1;
    if (neox) {
        if (i0 >= half_) return;
        i = i0; j0 = i0; j1 = i0 + half_;
    } else {
        if ((i0 & 1u) != 0u) return;
        i = i0 >> 1; j0 = i0; j1 = i0 + 1u;
    }
    int p = int(b_[(pc.off_b + i2 * pc.bnb0) >> 2]);
    float inv_freq = exp2(-float(2u * i) / float(n_rot) * log2(pc.fp0));
    float theta = float(p) * pc.fp1 * inv_freq;
    if (pc.x0 != 0u) theta /= LD_F32(c_, pc.off_c + i * pc.x2);
    float sn, cs;
    sincos_accurate(theta, sn, cs);
    float x0 = LD_F32(a_, ab + j0 * pc.anb0), x1 = LD_F32(a_, ab + j1 * pc.anb0);
    d_[(db + j0 * pc.dnb0) >> 2] = floatBitsToUint(x0 * cs - x1 * sn);
    d_[(db + j1 * pc.dnb0) >> 2] = floatBitsToUint(x0 * sn + x1 * cs);
}

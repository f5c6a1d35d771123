#version 450
#extension GL_GOOGLE_include_directive : require
// LORA (SDK 1.1, Q8_0 1.2): dst[:, t] += (fp0 * g[t]) * B (A x[:, t]), in
// phases. TYPE (constant 0) is the adapter type (F32, F16, BF16, Q8_0),
// widened exactly by dq() (a Q8_0 value d * q is exact in f32);
// MODE (constant 1):
//   0  r = A x: one workgroup per (rank row j, token t); 64 threads stride
//      over K and reduce in shared memory. binding 0 = r (N columns of R
//      floats), 1 = A (R rows of K), 2 = x (F32, strided), 3 = gate.
//      pc.ne0 = R, ne1 = N; pc.x0 = K; anb = A strides, bnb = x strides.
//   1  dst += c * (B r): one thread per (m, t); binding 0 = dst, 1 = B
//      (M rows of R; Q8_0: B transposed, R rows of M, see b_at), 2 = r,
//      3 = gate. pc.ne0 = M, ne1 = N; pc.x0 = R; anb = B strides.
//   2  z = c * (B r) into scratch (each adapter of a fused group; a
//      gated-off token stores -0.0, which leaves any dst unchanged when
//      added). Bindings as mode 1, binding 0 = z ([N][M] floats).
//   3  dst += z_0 + z_1 + ... (added one by one, in node order, the
//      roundings of running the nodes separately): binding 0 = dst,
//      1 = z (pc.x0 blocks of M*N floats). pc.ne0 = M, ne1 = N.
// Gate (modes 0..2): pc.x1 = 1 when bound, pc.x2 = its byte stride; c =
// fp0 * g[t] (f32), g = 0 leaves the token alone (mode 0 skips it too).
// dst strides: pc.dnb. All sums accumulate in f32.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0;
layout(constant_id = 1) const uint MODE = 0;
#include "common.glsl"
#include "dequant.glsl"

shared float red[64];

// B[m, j] (binding 1). Float adapters store B's rows (R values each); a
// Q8_0 B is stored transposed, [M, R]: its row j is column j of B, so that
// the 32-value blocks run along M (a rank-16 row is too short for one).
// Neighbouring threads of mode 1/2 (neighbouring m, same j) then read
// neighbouring bytes of one block.
float b_at(uint m, uint j) {
    if (TYPE == T_Q8_0) return dq(pc.off_a + j * pc.anb1, m);
    return dq(pc.off_a + m * pc.anb1, j);
}

float gate(uint t) {
    if (pc.x1 == 0u) return 1.0;
    return LD_F32(c_, pc.off_c + t * pc.x2);
}

void main() {
    if (MODE == 0u) {
        uint wg = wg_linear();
        uint R = pc.ne0, N = pc.ne1, K = pc.x0;
        if (wg >= R * N) return; // uniform per workgroup
        uint j = wg % R, t = wg / R;
        if (gate(t) == 0.0) return;
        uint row = pc.off_a + j * pc.anb1;
        uint col = pc.off_b + t * pc.bnb1;
        float s = 0.0;
        for (uint k = gl_LocalInvocationID.x; k < K; k += 64u) s += dq(row, k) * LD_F32(b_, col + k * pc.bnb0);
        red[gl_LocalInvocationID.x] = s;
        barrier();
        for (uint w = 32u; w > 0u; w >>= 1) {
            if (gl_LocalInvocationID.x < w) red[gl_LocalInvocationID.x] += red[gl_LocalInvocationID.x + w];
            barrier();
        }
        if (gl_LocalInvocationID.x == 0u) d_[(pc.off_d >> 2) + t * R + j] = floatBitsToUint(red[0]);
        return;
    }
    uint e = gid_linear();
    uint M = pc.ne0, N = pc.ne1;
    if (e >= M * N) return;
    uint m = e % M, t = e / M;
    uint dpos = (pc.off_d + m * pc.dnb0 + t * pc.dnb1) >> 2;
    if (MODE == 3u) {
        precise float v = uintBitsToFloat(d_[dpos]);
        uint zb = pc.off_a >> 2;
        for (uint i = 0u; i < pc.x0; i++) v = v + uintBitsToFloat(a_[zb + i * M * N + t * M + m]);
        d_[dpos] = floatBitsToUint(v);
        return;
    }
    float g = gate(t);
    if (g == 0.0) {
        if (MODE == 2u) d_[(pc.off_d >> 2) + t * M + m] = 0x80000000u;
        return;
    }
    uint R = pc.x0;
    uint rb = (pc.off_b >> 2) + t * R;
    float y = 0.0;
    for (uint j = 0u; j < R; j++) y += b_at(m, j) * uintBitsToFloat(b_[rb + j]);
    precise float term = (pc.fp0 * g) * y;
    if (MODE == 2u) {
        d_[(pc.off_d >> 2) + t * M + m] = floatBitsToUint(term);
    } else {
        precise float v = uintBitsToFloat(d_[dpos]) + term;
        d_[dpos] = floatBitsToUint(v);
    }
}

// common.glsl — bindings, push constants and helpers shared by every shader.
//
// Every pipeline uses the same layout: five storage buffers viewed as uint
// arrays (no 8/16-bit storage features needed) and one 128-byte push-constant
// block. Tensors are addressed in bytes relative to their binding's range:
// off_* is the byte offset of element 0, *nb* are byte strides. Quantized
// blocks (18, 34, ... bytes) are unpacked from the uint words by hand.
//   binding 0: dst    binding 1: src0    binding 2: src1
//   binding 3: src2   binding 4: status word (bit 0: a row id was out of range)
//   binding 5: auxiliary scratch (split attention), element 0 at byte 0

layout(std430, binding = 0) buffer BufD { uint d_[]; };
layout(std430, binding = 1) buffer BufA { uint a_[]; };
layout(std430, binding = 2) buffer BufB { uint b_[]; };
layout(std430, binding = 3) buffer BufC { uint c_[]; };
layout(std430, binding = 4) buffer BufS { uint s_[]; };
layout(std430, binding = 5) buffer BufX { float x_[]; };

layout(push_constant) uniform PC {
    uint off_d, off_a, off_b, off_c;
    uint ne0, ne1, ne2, ne3;     // usually the dst shape
    uint dnb0, dnb1, dnb2, dnb3; // dst strides (bytes)
    uint anb0, anb1, anb2, anb3; // src0 strides
    uint bnb0, bnb1, bnb2, bnb3; // src1 strides
    uint bne0, bne1, bne2, bne3; // src1 shape
    uint x0, x1, x2, x3;         // op-specific
    int ip0, ip1;
    float fp0, fp1;
} pc;

#define LD_U8(B, o) ((B[(o) >> 2] >> (((o) & 3u) << 3)) & 0xffu)
#define LD_I8(B, o) (int(LD_U8(B, o) << 24) >> 24)
#define LD_U16(B, o) ((B[(o) >> 2] >> (((o) & 2u) << 3)) & 0xffffu)
#define LD_F32(B, o) uintBitsToFloat(B[(o) >> 2])

// 4 bytes of src0 at an even byte offset, as one little-endian word.
uint ld_a_u32(uint o) {
    uint w = o >> 2;
    if ((o & 2u) == 0u) return a_[w];
    return (a_[w] >> 16) | (a_[w + 1u] << 16);
}

// Linear ids over a 2-D dispatch (x up to 65535 groups, y as needed).
uint wg_linear() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }
uint gid_linear() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

// IEEE half <-> float, exact and round-to-nearest-even, in integer arithmetic
// so that the rounding does not depend on the driver's OpFConvert mode.
float h2f(uint h) {
    uint s = (h & 0x8000u) << 16;
    uint e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return uintBitsToFloat(s | 0x7f800000u | (m << 13));
    if (e == 0u) {
        float v = float(m) * (1.0 / 16777216.0);
        return s != 0u ? -v : v;
    }
    return uintBitsToFloat(s | ((e + 112u) << 23) | (m << 13));
}

uint f2h(float f) {
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u;
    uint ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u);
    if (ax >= 0x477ff000u) return sign | 0x7c00u;
    if (ax < 0x38800000u) {
        // subnormal half: value / 2^-24, rounded half to even (exact in float)
        precise float a = uintBitsToFloat(ax) * 16777216.0;
        uint m = uint(a);
        precise float rem = a - float(m);
        if (rem > 0.5 || (rem == 0.5 && (m & 1u) != 0u)) m++;
        return sign | m;
    }
    uint r = ax + 0xfffu + ((ax >> 13) & 1u);
    return sign | ((r - 0x38000000u) >> 13);
}

float round_f16(float f) { return h2f(f2h(f)); }

float bf2f(uint h) { return uintBitsToFloat(h << 16); }

uint f2bf(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

float round_bf16(float f) { return bf2f(f2bf(f)); }

// a / b corrected to (nearly always) the correctly rounded quotient: the
// driver's division may be off by a couple of ulps.
float div_cr(float a, float b) {
    precise float q = a / b;
    precise float r = fma(-q, b, a);
    precise float q1 = fma(r, 1.0 / b, q);
    return q1;
}

// tanh that saturates cleanly for large |x|.
float tanh_safe(float x) {
    if (x > 15.0) return 1.0;
    if (x < -15.0) return -1.0;
    float e = exp(2.0 * x);
    return 1.0 - 2.0 / (e + 1.0);
}

// Element types (GGUF ids) used by specialization constants.
#define T_F32 0u
#define T_F16 1u
#define T_Q4_0 2u
#define T_Q4_1 3u
#define T_Q5_0 6u
#define T_Q5_1 7u
#define T_Q8_0 8u
#define T_Q8_1 9u
#define T_Q2_K 10u
#define T_Q3_K 11u
#define T_Q4_K 12u
#define T_Q5_K 13u
#define T_Q6_K 14u
#define T_BF16 30u

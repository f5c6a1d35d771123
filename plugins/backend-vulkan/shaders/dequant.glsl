// dequant.glsl — element k of a weight row of type TYPE (a specialization
// constant) stored at byte offset `row` of src0 (a_), in GGUF block layout.
// The formulas are those of the host's reference dequantizer (quant-ref.c).

float dq_f16s(uint o) { return h2f(LD_U16(a_, o)); }

// Weight types whose MUL_MAT activations are Q8_0 blocks of 32
// (act_prep.comp MODE 3: a column is K integers q, then K/32 scales d).
bool q8_0_act() {
    return TYPE == T_Q4_0 || TYPE == T_Q4_1 || TYPE == T_Q5_0 || TYPE == T_Q5_1 || TYPE == T_Q8_0;
}

// Floats per prepared activation column for a K-element dot.
uint act_col_stride(uint K) { return q8_0_act() ? K + K / 32u : K; }

// Q4_K/Q5_K: 6-bit scale and min of sub-block j from the 12 scale bytes at s.
void k4_scale_min(uint s, uint j, out float sc, out float mn) {
    if (j < 4u) {
        sc = float(LD_U8(a_, s + j) & 63u);
        mn = float(LD_U8(a_, s + j + 4u) & 63u);
    } else {
        uint q4 = LD_U8(a_, s + j + 4u);
        sc = float((q4 & 0x0fu) | ((LD_U8(a_, s + j - 4u) >> 6) << 4));
        mn = float((q4 >> 4) | ((LD_U8(a_, s + j) >> 6) << 4));
    }
}

float dq(uint row, uint k) {
    if (TYPE == T_F32) return LD_F32(a_, row + 4u * k);
    if (TYPE == T_F16) return h2f(LD_U16(a_, row + 2u * k));
    if (TYPE == T_BF16) return bf2f(LD_U16(a_, row + 2u * k));
    if (TYPE == T_Q4_0) {
        uint b = row + (k >> 5) * 18u, j = k & 31u;
        uint q = LD_U8(a_, b + 2u + (j & 15u));
        q = j < 16u ? (q & 15u) : (q >> 4);
        return dq_f16s(b) * float(int(q) - 8);
    }
    if (TYPE == T_Q4_1) {
        uint b = row + (k >> 5) * 20u, j = k & 31u;
        uint q = LD_U8(a_, b + 4u + (j & 15u));
        q = j < 16u ? (q & 15u) : (q >> 4);
        return dq_f16s(b) * float(q) + dq_f16s(b + 2u);
    }
    if (TYPE == T_Q5_0) {
        uint b = row + (k >> 5) * 22u, j = k & 31u;
        uint qh = LD_U16(a_, b + 2u) | (LD_U16(a_, b + 4u) << 16);
        uint q = LD_U8(a_, b + 6u + (j & 15u));
        q = (j < 16u ? (q & 15u) : (q >> 4)) | (((qh >> j) & 1u) << 4);
        return dq_f16s(b) * float(int(q) - 16);
    }
    if (TYPE == T_Q5_1) {
        uint b = row + (k >> 5) * 24u, j = k & 31u;
        uint qh = LD_U16(a_, b + 4u) | (LD_U16(a_, b + 6u) << 16);
        uint q = LD_U8(a_, b + 8u + (j & 15u));
        q = (j < 16u ? (q & 15u) : (q >> 4)) | (((qh >> j) & 1u) << 4);
        return dq_f16s(b) * float(q) + dq_f16s(b + 2u);
    }
    if (TYPE == T_Q8_0) {
        uint b = row + (k >> 5) * 34u;
        return dq_f16s(b) * float(LD_I8(a_, b + 2u + (k & 31u)));
    }
    if (TYPE == T_Q8_1) {
        uint b = row + (k >> 5) * 36u;
        return dq_f16s(b) * float(LD_I8(a_, b + 4u + (k & 31u)));
    }
    if (TYPE == T_Q2_K) {
        uint b = row + (k >> 8) * 84u, j = k & 255u;
        uint n = j >> 7, r = j & 127u, si = r >> 5, half_ = (r & 31u) >> 4, l = r & 15u;
        uint sc = LD_U8(a_, b + n * 8u + si * 2u + half_);
        uint q = (LD_U8(a_, b + 16u + n * 32u + l + 16u * half_) >> (2u * si)) & 3u;
        float d = dq_f16s(b + 80u), dmin = dq_f16s(b + 82u);
        return d * float(sc & 15u) * float(q) - dmin * float(sc >> 4);
    }
    if (TYPE == T_Q3_K) {
        uint b = row + (k >> 8) * 110u, j = k & 255u;
        uint n = j >> 7, r = j & 127u, si = r >> 5, half_ = (r & 31u) >> 4, l = r & 15u;
        uint kk = l + 16u * half_, is = n * 8u + si * 2u + half_;
        uint lo = is < 8u ? (LD_U8(a_, b + 96u + is) & 15u) : (LD_U8(a_, b + 96u + is - 8u) >> 4);
        uint hi = (LD_U8(a_, b + 104u + (is & 3u)) >> (2u * (is >> 2))) & 3u;
        int scale = int(lo | (hi << 4)) - 32;
        int q = int((LD_U8(a_, b + 32u + n * 32u + kk) >> (2u * si)) & 3u);
        if ((LD_U8(a_, b + kk) & (1u << (n * 4u + si))) == 0u) q -= 4;
        return dq_f16s(b + 108u) * float(scale) * float(q);
    }
    if (TYPE == T_Q4_K) {
        uint b = row + (k >> 8) * 144u, j = k & 255u;
        uint p = j >> 6, w = j & 63u, sub = 2u * p + (w >> 5), l = w & 31u;
        float sc, mn;
        k4_scale_min(b + 4u, sub, sc, mn);
        uint q = LD_U8(a_, b + 16u + p * 32u + l);
        q = w < 32u ? (q & 15u) : (q >> 4);
        return dq_f16s(b) * sc * float(q) - dq_f16s(b + 2u) * mn;
    }
    if (TYPE == T_Q5_K) {
        uint b = row + (k >> 8) * 176u, j = k & 255u;
        uint p = j >> 6, w = j & 63u, sub = 2u * p + (w >> 5), l = w & 31u;
        float sc, mn;
        k4_scale_min(b + 4u, sub, sc, mn);
        uint q = LD_U8(a_, b + 48u + p * 32u + l);
        q = w < 32u ? (q & 15u) : (q >> 4);
        if ((LD_U8(a_, b + 16u + l) & (1u << sub)) != 0u) q += 16u;
        return dq_f16s(b) * sc * float(q) - dq_f16s(b + 2u) * mn;
    }
    if (TYPE == T_Q6_K) {
        uint b = row + (k >> 8) * 210u, j = k & 255u;
        uint n = j >> 7, r = j & 127u, quarter = r >> 5, l = r & 31u;
        uint ql = LD_U8(a_, b + n * 64u + l + ((quarter & 1u) != 0u ? 32u : 0u));
        ql = quarter < 2u ? (ql & 15u) : (ql >> 4);
        uint qh = (LD_U8(a_, b + 128u + n * 32u + l) >> (2u * quarter)) & 3u;
        int q = int(ql | (qh << 4)) - 32;
        float sc = float(LD_I8(a_, b + 192u + n * 8u + (l >> 4) + 2u * quarter));
        return dq_f16s(b + 208u) * sc * float(q);
    }
    return 0.0;
}

// Elements k .. k+3 of a row (k % 4 == 0): they always share one block and
// one scale group (groups are >= 16 elements, nibble halves are 16), so the
// scales are decoded once. Same formulas and order as dq().
void dq4(uint row, uint k, out float v[4]) {
    if (TYPE == T_Q8_0) {
        uint b = row + (k >> 5) * 34u;
        float d = dq_f16s(b);
        for (uint e = 0u; e < 4u; e++) v[e] = d * float(LD_I8(a_, b + 2u + (k & 31u) + e));
        return;
    }
    if (TYPE == T_Q4_0 || TYPE == T_Q4_1 || TYPE == T_Q5_0 || TYPE == T_Q5_1) {
        uint bs = TYPE == T_Q4_0 ? 18u : TYPE == T_Q4_1 ? 20u : TYPE == T_Q5_0 ? 22u : 24u;
        uint b = row + (k >> 5) * bs, j = k & 31u, sh = j < 16u ? 0u : 4u;
        uint qs = b + (TYPE == T_Q4_0 ? 2u : TYPE == T_Q4_1 ? 4u : TYPE == T_Q5_0 ? 6u : 8u);
        uint qh = 0u;
        if (TYPE == T_Q5_0) qh = LD_U16(a_, b + 2u) | (LD_U16(a_, b + 4u) << 16);
        if (TYPE == T_Q5_1) qh = LD_U16(a_, b + 4u) | (LD_U16(a_, b + 6u) << 16);
        float d = dq_f16s(b), m = (TYPE == T_Q4_1 || TYPE == T_Q5_1) ? dq_f16s(b + 2u) : 0.0;
        for (uint e = 0u; e < 4u; e++) {
            uint q = (LD_U8(a_, qs + ((j + e) & 15u)) >> sh) & 15u;
            if (TYPE == T_Q5_0 || TYPE == T_Q5_1) q |= ((qh >> (j + e)) & 1u) << 4;
            if (TYPE == T_Q4_0) v[e] = d * float(int(q) - 8);
            else if (TYPE == T_Q5_0) v[e] = d * float(int(q) - 16);
            else v[e] = d * float(q) + m;
        }
        return;
    }
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        uint b = row + (k >> 8) * (TYPE == T_Q4_K ? 144u : 176u), j = k & 255u;
        uint p = j >> 6, w = j & 63u, sub = 2u * p + (w >> 5), l = w & 31u, sh = w < 32u ? 0u : 4u;
        float sc, mn;
        k4_scale_min(b + 4u, sub, sc, mn);
        float ds = dq_f16s(b) * sc, dm = dq_f16s(b + 2u) * mn;
        uint ql = b + (TYPE == T_Q4_K ? 16u : 48u) + p * 32u + l;
        for (uint e = 0u; e < 4u; e++) {
            uint q = (LD_U8(a_, ql + e) >> sh) & 15u;
            if (TYPE == T_Q5_K && (LD_U8(a_, b + 16u + l + e) & (1u << sub)) != 0u) q += 16u;
            v[e] = ds * float(q) - dm;
        }
        return;
    }
    if (TYPE == T_Q6_K) {
        uint b = row + (k >> 8) * 210u, j = k & 255u;
        uint n = j >> 7, r = j & 127u, quarter = r >> 5, l = r & 31u;
        uint qlb = b + n * 64u + l + ((quarter & 1u) != 0u ? 32u : 0u), sh = quarter < 2u ? 0u : 4u;
        float ds = dq_f16s(b + 208u) * float(LD_I8(a_, b + 192u + n * 8u + (l >> 4) + 2u * quarter));
        for (uint e = 0u; e < 4u; e++) {
            uint ql = (LD_U8(a_, qlb + e) >> sh) & 15u;
            uint qh = (LD_U8(a_, b + 128u + n * 32u + l + e) >> (2u * quarter)) & 3u;
            v[e] = ds * float(int(ql | (qh << 4)) - 32);
        }
        return;
    }
    for (uint e = 0u; e < 4u; e++) v[e] = dq(row, k + e);
}

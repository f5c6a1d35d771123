/* test-backend-ops.c — the cpu backend against references, op by op.
 *
 * Suites:
 *  quant-ref  the core's reference dequantize on hand-built blocks with
 *             hand-computed values, quantize->dequantize error bounds, bad
 *             arguments.
 *  backend    device info, buffers, options, supports(), error paths.
 *  ops        every op on every kernel level (scalar, avx2, avx512 where the
 *             CPU has them) x threads 1 and 2, against a double-precision
 *             reference written here, on awkward shapes (ne0 1, 31, 33, 4097;
 *             rows 1, 2, 7, 64), strided views, broadcasting and in-place.
 *  matmul     every weight type: each kernel level x threads vs the scalar
 *             kernels (same quantized activations: only summation order
 *             differs), and the scalar kernels vs dequantized weights in
 *             double precision (bounded by the Q8 activation rounding).
 *
 * Tolerances (documented in docs/backend-cpu.md):
 *  - elementwise/norm/softmax/rope/attention: |got - ref| <= 1e-5 + 1e-4 |ref|
 *    (attention with f16 K/V: the reference rounds q and the probabilities
 *    to f16 as the SDK prescribes; 5e-4 absolute covers a probability whose
 *    f16 rounding lands on the neighbouring value);
 *  - BF16/F16 matmul references round the activations to bf16/f16 first;
 *  - matmul SIMD vs scalar: |d| <= 1e-5 + 2e-5 * sum_i |w_i a_i|;
 *  - matmul scalar vs exact: |d| <= 1e-4 + sum_i |w_i| * amax(block of a_i) / 127
 *    for quantized types (half a Q8 step per element, doubled for margin),
 *    1e-5 * sum |w a| for f32/f16/bf16.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend-util.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Fixtures: the plugin and one instance per kernel level x thread count      */
/* ------------------------------------------------------------------------ */
static bu_plugin plug;
static int plug_ok;

typedef struct cfg {
    const char *kernels;
    int threads;
    llmh_backend *be;
} cfg;
static cfg cfgs[] = {{"scalar", 1, NULL}, {"scalar", 2, NULL}, {"avx2", 1, NULL},
                     {"avx2", 2, NULL},   {"avx512", 1, NULL}, {"avx512", 2, NULL}};
#define N_CFG (sizeof cfgs / sizeof cfgs[0])

static int suite_init(void) {
    if (bu_plugin_load(&plug) != 0) return 1;
    plug_ok = 1;
    for (size_t i = 0; i < N_CFG; i++) {
        cfgs[i].be = bu_backend_create(&plug, cfgs[i].kernels, cfgs[i].threads);
        if (!cfgs[i].be)
            fprintf(stderr, "note: %s kernels unavailable here: %s\n", cfgs[i].kernels, llmh_last_error());
    }
    return cfgs[0].be ? 0 : 1;
}

static int suite_cleanup(void) {
    for (size_t i = 0; i < N_CFG; i++) {
        plug.be->destroy(cfgs[i].be);
        cfgs[i].be = NULL;
    }
    if (plug_ok) bu_plugin_unload(&plug);
    plug_ok = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* quant-ref                                                                  */
/* ------------------------------------------------------------------------ */
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static int check_block(llmh_dtype t, const uint8_t *blk, const float *expect, int n) {
    float got[256];
    CU_ASSERT_EQUAL_FATAL(llmh_dequantize(t, blk, got, n), LLMH_OK);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(got[i] - expect[i]) > 1e-6f * (1.0f + fabsf(expect[i]))) {
            if (bad < 3)
                fprintf(stderr, "%s element %d: got %g expected %g\n", llmh_dtype_name(t), i, got[i], expect[i]);
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    return bad;
}

static void test_known_plain(void) {
    uint8_t b[8];
    float e[4];
    put16(b, 0x3c00); put16(b + 2, 0xc000); put16(b + 4, 0x3800); put16(b + 6, 0x0001);
    e[0] = 1.0f; e[1] = -2.0f; e[2] = 0.5f; e[3] = ldexpf(1.0f, -24);
    check_block(LLMH_DTYPE_F16, b, e, 4);
    put16(b, 0x3f80); put16(b + 2, 0xc040); put16(b + 4, 0x0000); put16(b + 6, 0x4120);
    e[0] = 1.0f; e[1] = -3.0f; e[2] = 0.0f; e[3] = 10.0f;
    check_block(LLMH_DTYPE_BF16, b, e, 4);
    float f[3] = {1.5f, -0.25f, 1e30f}, g[3];
    CU_ASSERT_EQUAL(llmh_dequantize(LLMH_DTYPE_F32, f, g, 3), LLMH_OK);
    CU_ASSERT(memcmp(f, g, sizeof f) == 0);
}

static void test_known_32(void) {
    uint8_t b[64];
    float e[32];
    /* Q4_0: d = 0.5, qs[j] = j | (15 - j) << 4 */
    put16(b, 0x3800);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
        e[j] = 0.5f * (float)(j - 8);
        e[j + 16] = 0.5f * (float)(7 - j);
    }
    check_block(LLMH_DTYPE_Q4_0, b, e, 32);
    /* Q4_1: d = 0.25, m = -1, qs[j] = j | j << 4 */
    put16(b, 0x3400); put16(b + 2, 0xbc00);
    for (int j = 0; j < 16; j++) {
        b[4 + j] = (uint8_t)(j | (j << 4));
        e[j] = e[j + 16] = 0.25f * (float)j - 1.0f;
    }
    check_block(LLMH_DTYPE_Q4_1, b, e, 32);
    /* Q5_0: d = 1, qh = 0xffff0000 (elements 16..31 have bit 4) */
    put16(b, 0x3c00);
    b[2] = 0; b[3] = 0; b[4] = 0xff; b[5] = 0xff;
    for (int j = 0; j < 16; j++) {
        b[6 + j] = (uint8_t)(j | (j << 4));
        e[j] = (float)(j - 16);
        e[j + 16] = (float)j;
    }
    check_block(LLMH_DTYPE_Q5_0, b, e, 32);
    /* Q5_1: d = 0.5, m = 2, qh = 0x0000ffff */
    put16(b, 0x3800); put16(b + 2, 0x4000);
    b[4] = 0xff; b[5] = 0xff; b[6] = 0; b[7] = 0;
    for (int j = 0; j < 16; j++) {
        b[8 + j] = (uint8_t)(j | (j << 4));
        e[j] = 0.5f * (float)(j + 16) + 2.0f;
        e[j + 16] = 0.5f * (float)j + 2.0f;
    }
    check_block(LLMH_DTYPE_Q5_1, b, e, 32);
    /* Q8_0: d = 0.125, q = j - 16 */
    put16(b, 0x3000);
    for (int j = 0; j < 32; j++) {
        b[2 + j] = (uint8_t)(int8_t)(j - 16);
        e[j] = 0.125f * (float)(j - 16);
    }
    check_block(LLMH_DTYPE_Q8_0, b, e, 32);
    /* Q8_1: d = 2, s ignored by dequantize, q = -j */
    put16(b, 0x4000); put16(b + 2, 0x1234);
    for (int j = 0; j < 32; j++) {
        b[4 + j] = (uint8_t)(int8_t)(-j);
        e[j] = -2.0f * (float)j;
    }
    check_block(LLMH_DTYPE_Q8_1, b, e, 32);
}

static void test_known_k(void) {
    uint8_t b[292];
    float e[256];
    /* Q2_K: scale g = g, min 1; every 2-bit field j holds j; d = 1, dmin = 0.5 */
    for (int g = 0; g < 16; g++) b[g] = (uint8_t)(g | (1 << 4));
    memset(b + 16, 0xe4, 64);
    put16(b + 80, 0x3c00); put16(b + 82, 0x3800);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, j = (i % 128) / 32, half = (i % 32) / 16, g = n * 8 + j * 2 + half;
        e[i] = (float)(g * j) - 0.5f;
    }
    check_block(LLMH_DTYPE_Q2_K, b, e, 256);
    /* Q3_K: hmask 0x0f (high bit set for the first 128), 2-bit fields = j,
     * scales 1 (first 8) and 2 (last 8), d = 0.5 */
    memset(b, 0x0f, 32);
    memset(b + 32, 0xe4, 64);
    memset(b + 96, 0x21, 8);
    memset(b + 104, 0xaa, 4);
    put16(b + 108, 0x3800);
    for (int i = 0; i < 256; i++) {
        int n = i / 128, j = (i % 128) / 32, half = (i % 32) / 16, g = n * 8 + j * 2 + half;
        int sc = g < 8 ? 1 : 2, q = j - (n == 1 ? 4 : 0);
        e[i] = 0.5f * (float)(sc * q);
    }
    check_block(LLMH_DTYPE_Q3_K, b, e, 256);
    /* Q4_K: every sub-block scale 2, min 1; d = 1, dmin = 0.5; nibbles 3 (low), 5 (high) */
    put16(b, 0x3c00); put16(b + 2, 0x3800);
    memset(b + 4, 2, 4); memset(b + 8, 1, 4); memset(b + 12, 0x12, 4);
    memset(b + 16, 0x53, 128);
    for (int i = 0; i < 256; i++) e[i] = ((i / 32) % 2 == 0) ? 5.5f : 9.5f;
    check_block(LLMH_DTYPE_Q4_K, b, e, 256);
    /* Q5_K: as Q4_K plus qh bits 0 and 2 set: sub-blocks 0 and 2 get +16 */
    put16(b, 0x3c00); put16(b + 2, 0x3800);
    memset(b + 4, 2, 4); memset(b + 8, 1, 4); memset(b + 12, 0x12, 4);
    memset(b + 16, 0x05, 32);
    memset(b + 48, 0x53, 128);
    for (int i = 0; i < 256; i++) {
        int s = i / 32, q = (s % 2 == 0 ? 3 : 5) + ((s == 0 || s == 2) ? 16 : 0);
        e[i] = 2.0f * (float)q - 0.5f;
    }
    check_block(LLMH_DTYPE_Q5_K, b, e, 256);
    /* Q6_K: ql 0x21, qh 0xe4, scales g - 8, d = 0.25 */
    memset(b, 0x21, 128);
    memset(b + 128, 0xe4, 64);
    for (int g = 0; g < 16; g++) b[192 + g] = (uint8_t)(int8_t)(g - 8);
    put16(b + 208, 0x3400);
    static const int qv[4] = {1 - 32, 17 - 32, 34 - 32, 50 - 32};
    for (int i = 0; i < 256; i++) {
        int n = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        int idx = n * 8 + l / 16 + 2 * quarter;
        e[i] = 0.25f * (float)((idx - 8) * qv[quarter]);
    }
    check_block(LLMH_DTYPE_Q6_K, b, e, 256);
    /* Q8_K: d = 0.5 (f32), q = i - 128 */
    uint32_t dbits = 0x3f000000u;
    memcpy(b, &dbits, 4);
    for (int i = 0; i < 256; i++) {
        b[4 + i] = (uint8_t)(int8_t)(i - 128);
        e[i] = 0.5f * (float)(i - 128);
    }
    check_block(LLMH_DTYPE_Q8_K, b, e, 256);
}

static void test_roundtrip(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_1,
                                       LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1, LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q8_1,
                                       LLMH_DTYPE_Q8_K, LLMH_DTYPE_F32};
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q = malloc(N * 4 + 64);
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) x[i] = bu_randf(&seed) * (i % 256 < 128 ? 1.0f : 30.0f);
    for (int i = 0; i < 32; i++) x[i] = 0.0f; /* an all-zero block */
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        llmh_dtype ty = types[t];
        CU_ASSERT_EQUAL_FATAL(llmh_quantize(ty, x, q, N), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_dequantize(ty, q, y, N), LLMH_OK);
        int64_t bs = llmh_dtype_block_size(ty), blk = bs > 1 ? bs : 1;
        int bad = 0;
        for (int b0 = 0; b0 < N; b0 += (int)blk) {
            float amax = 0.0f, mn = x[b0], mx = x[b0];
            for (int i = b0; i < b0 + blk; i++) {
                amax = fmaxf(amax, fabsf(x[i]));
                mn = fminf(mn, x[i]);
                mx = fmaxf(mx, x[i]);
            }
            for (int i = b0; i < b0 + blk; i++) {
                float bound;
                switch (ty) {
                case LLMH_DTYPE_F32: bound = 0.0f; break;
                case LLMH_DTYPE_F16: bound = fabsf(x[i]) * 4.9e-4f + 6e-8f; break;
                case LLMH_DTYPE_BF16: bound = fabsf(x[i]) * 3.9e-3f; break;
                case LLMH_DTYPE_Q4_0: bound = amax / 8.0f * 1.01f; break;   /* one step (clamped extreme) */
                case LLMH_DTYPE_Q5_0: bound = amax / 16.0f * 1.01f; break;
                case LLMH_DTYPE_Q4_1: bound = (mx - mn) / 15.0f * 0.51f + 2e-3f * amax; break;
                case LLMH_DTYPE_Q5_1: bound = (mx - mn) / 31.0f * 0.51f + 2e-3f * amax; break;
                default: bound = amax / 127.0f * 0.51f + 1e-3f * amax; break; /* Q8_* */
                }
                if (fabsf(x[i] - y[i]) > bound) {
                    if (bad < 3)
                        fprintf(stderr, "%s[%d]: %g -> %g (bound %g)\n", llmh_dtype_name(ty), i, x[i], y[i], bound);
                    bad++;
                }
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
    }
    free(x);
    free(y);
    free(q);
}

/* llmh_quantize(Q8_0) (vectorized where the CPU allows) equals ggml's
 * reference formula bit for bit: amax / 127, x * (1 / d), roundf (ties
 * away from zero), including exact ties, zero and non-finite blocks. */
static void test_q8_0_exact(void) {
    enum { NB = 64 };
    float x[NB * 32];
    uint64_t s = 11;
    for (int i = 0; i < NB * 32; i++) x[i] = bu_randf(&s) * (i < 32 * 8 ? 1e-3f : 3.0f);
    for (int j = 0; j < 32; j++) x[32 * 9 + j] = (float)(j - 16) + 0.5f; /* amax 15.5: d = 15.5/127 */
    for (int j = 0; j < 32; j++) x[32 * 10 + j] = j == 0 ? 127.0f : (float)(j % 9) - 4.5f; /* d = 1: exact ties */
    for (int j = 0; j < 32; j++) x[32 * 11 + j] = 0.0f;
    x[32 * 12 + 5] = NAN;
    x[32 * 13 + 7] = -INFINITY;
    x[32 * 14 + 3] = -0.0f;
    uint8_t got[NB * 34], want[NB * 34];
    CU_ASSERT_EQUAL_FATAL(llmh_quantize(LLMH_DTYPE_Q8_0, x, got, NB * 32), LLMH_OK);
    for (int b = 0; b < NB; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = llmh_fp32_to_fp16(d);
        memcpy(want + 34 * b, &h, 2);
        for (int j = 0; j < 32; j++) {
            int q = (int)roundf(xb[j] * id);
            want[34 * b + 2 + j] = (uint8_t)(int8_t)(q < -127 ? -127 : q > 127 ? 127 : q);
        }
    }
    for (int b = 0; b < NB; b++) {
        if (b == 12 || b == 13) continue; /* (int) of NaN/inf is undefined in C; only the scale is checked */
        if (memcmp(got + 34 * b, want + 34 * b, 34) != 0) fprintf(stderr, "q8_0 block %d differs\n", b);
        CU_ASSERT_EQUAL(memcmp(got + 34 * b, want + 34 * b, 34), 0);
    }
    CU_ASSERT_EQUAL(memcmp(got + 34 * 12, want + 34 * 12, 2), 0);
}

static void test_quant_errors(void) {
    float x[64] = {0}, y[64];
    uint8_t q[256];
    CU_ASSERT_EQUAL(llmh_quantize(LLMH_DTYPE_Q4_0, x, q, 33), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "block size") != NULL);
    CU_ASSERT_EQUAL(llmh_dequantize(LLMH_DTYPE_Q6_K, q, y, 32), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_quantize(LLMH_DTYPE_Q4_K, x, q, 256), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(llmh_dequantize((llmh_dtype)99, q, y, 32), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(llmh_dequantize(LLMH_DTYPE_I32, q, y, 4), LLMH_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(llmh_dequantize(LLMH_DTYPE_Q8_0, NULL, y, 32), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(llmh_quantize(LLMH_DTYPE_Q8_0, x, q, 0), LLMH_OK);
}

/* ------------------------------------------------------------------------ */
/* backend                                                                    */
/* ------------------------------------------------------------------------ */
static void test_device(void) {
    CU_ASSERT_EQUAL(plug.be->device_count(plug.state), 1);
    llmh_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CU_ASSERT_EQUAL_FATAL(plug.be->device_info(plug.state, 0, &info), LLMH_OK);
    CU_ASSERT(info.name[0] != 0);
    CU_ASSERT(info.description[0] != 0);
    CU_ASSERT_EQUAL(info.type, LLMH_DEVICE_CPU);
    CU_ASSERT(info.max_threads >= 1);
    CU_ASSERT(info.memory_total > 0);
    CU_ASSERT_EQUAL(plug.be->device_info(plug.state, 1, &info), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_STRING_EQUAL(plug.desc->name, "cpu");
}

static void test_buffers(void) {
    llmh_backend *be = cfgs[0].be;
    llmh_buffer *b = NULL;
    CU_ASSERT_EQUAL_FATAL(plug.be->buffer_alloc(be, 1000, LLMH_BUFFER_COMPUTE, &b), LLMH_OK);
    uint8_t *p = plug.be->buffer_host_ptr(be, b);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT_EQUAL((uintptr_t)p % 64, 0);
    uint8_t src[100], dst[100];
    for (int i = 0; i < 100; i++) src[i] = (uint8_t)i;
    CU_ASSERT_EQUAL(plug.be->buffer_write(be, b, 900, src, 100), LLMH_OK);
    CU_ASSERT_EQUAL(plug.be->buffer_read(be, b, 900, dst, 100), LLMH_OK);
    CU_ASSERT(memcmp(src, dst, 100) == 0);
    CU_ASSERT_EQUAL(plug.be->buffer_write(be, b, 901, src, 100), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(plug.be->buffer_read(be, b, (size_t)-1, dst, 2), LLMH_ERR_INVALID_ARG);
    plug.be->buffer_free(be, b);
    plug.be->buffer_free(be, NULL);
    /* zero-copy wrap */
    static float host[64];
    CU_ASSERT_EQUAL_FATAL(plug.be->buffer_wrap_host(be, host, sizeof host, LLMH_BUFFER_WEIGHTS, &b), LLMH_OK);
    CU_ASSERT_PTR_EQUAL(plug.be->buffer_host_ptr(be, b), host);
    plug.be->buffer_free(be, b);
}

static void test_options(void) {
    CU_ASSERT_PTR_NULL(bu_backend_create(&plug, "fastest", 1));
    CU_ASSERT(strstr(llmh_last_error(), "kernels") != NULL);
    llmh_backend *be = bu_backend_create(&plug, "auto", 0);
    CU_ASSERT_PTR_NOT_NULL(be);
    plug.be->destroy(be);
    plug.be->destroy(NULL);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_MUL_MAT, LLMH_DTYPE_Q4_K, LLMH_DTYPE_F32), 1);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_MUL_MAT, LLMH_DTYPE_I32, LLMH_DTYPE_F32), 0);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_GET_ROWS, LLMH_DTYPE_Q6_K, LLMH_DTYPE_I32), 1);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_ADD, LLMH_DTYPE_F16, LLMH_DTYPE_F32), 0);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_ATTENTION, LLMH_DTYPE_F32, LLMH_DTYPE_F16), 1);
    CU_ASSERT_EQUAL(plug.be->supports(cfgs[0].be, LLMH_OP_COUNT, LLMH_DTYPE_F32, LLMH_DTYPE_F32), 0);
}

static llmh_status run1(llmh_backend *be, const llmh_node *n) {
    llmh_graph g = {sizeof g, 1, n};
    return plug.be->graph_compute(be, &g);
}

static void test_errors(void) {
    llmh_backend *be = cfgs[0].be;
    bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 8, 4, 1, 1);
    bu_tensor *ids = bu_tensor_new(&plug, be, LLMH_DTYPE_I32, 2, 1, 1, 1);
    bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 8, 2, 1, 1);
    int32_t *id = ids->t.data;
    id[0] = 1;
    id[1] = 4; /* out of range */
    llmh_node n = {sizeof n, LLMH_OP_GET_ROWS, &d->t, {&w->t, &ids->t, NULL, NULL}, {0}, {0}};
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "GET_ROWS") != NULL);
    id[1] = 3;
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_OK);
    /* shape mismatch */
    llmh_node mm = {sizeof mm, LLMH_OP_MUL_MAT, &d->t, {&w->t, &w->t, NULL, NULL}, {0}, {0}};
    CU_ASSERT_EQUAL(run1(be, &mm), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "MUL_MAT") != NULL);
    /* unsupported op id */
    llmh_node bad = {sizeof bad, (llmh_op)77, &d->t, {&w->t, NULL, NULL, NULL}, {0}, {0}};
    CU_ASSERT_EQUAL(run1(be, &bad), LLMH_ERR_UNSUPPORTED);
    /* a view that runs past its buffer */
    llmh_tensor big = d->t;
    big.ne[1] = 3;
    llmh_node sc = {sizeof sc, LLMH_OP_SCALE, &big, {&w->t, NULL, NULL, NULL}, {0}, {2.0f}};
    CU_ASSERT_NOT_EQUAL(run1(be, &sc), LLMH_OK);
    /* strides whose extent overflows size_t */
    llmh_tensor huge = d->t;
    huge.nb[1] = (size_t)-1 / 2;
    huge.nb[2] = (size_t)-1 / 2;
    huge.ne[2] = 4;
    llmh_node hn = {sizeof hn, LLMH_OP_SCALE, &d->t, {&huge, NULL, NULL, NULL}, {0}, {2.0f}};
    CU_ASSERT_EQUAL(run1(be, &hn), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "overflow") != NULL);
    bu_tensor_free(&plug, be, w);
    bu_tensor_free(&plug, be, ids);
    bu_tensor_free(&plug, be, d);
}

/* ------------------------------------------------------------------------ */
/* ops                                                                        */
/* ------------------------------------------------------------------------ */
/* Compare n floats; prints the first few mismatches. */
static int compare(const char *what, const float *got, const double *ref, int64_t n, double abs_tol,
                   double rel_tol) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= abs_tol + rel_tol * fabs(ref[i]))) {
            if (bad < 3) fprintf(stderr, "%s: [%lld] got %.8g ref %.8g\n", what, (long long)i, got[i], ref[i]);
            bad++;
        }
    }
    return bad;
}

static void fill(bu_tensor *t, uint64_t *seed, float scale) {
    int64_t n = t->t.ne[0] * t->t.ne[1] * t->t.ne[2] * t->t.ne[3];
    if (t->t.type == LLMH_DTYPE_F32) {
        float *p = t->t.data;
        for (int64_t i = 0; i < n; i++) p[i] = bu_randf(seed) * scale;
    } else {
        float *tmp = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) tmp[i] = bu_randf(seed) * scale;
        llmh_quantize(t->t.type, tmp, t->t.data, n);
        free(tmp);
    }
}

static const int64_t k_ne0[] = {1, 31, 33, 4097};
static const int64_t k_rows[] = {1, 2, 7, 64};

typedef enum { U_SCALE, U_SILU, U_GELU, U_SOFTMAX, U_RMS, U_RMSW } unary_kind;

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double gelu_d(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

static void run_unary(unary_kind kind, int in_place) {
    uint64_t seed = 99 + (uint64_t)kind;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++) {
            int64_t ne0 = k_ne0[a], rows = k_rows[b];
            for (size_t c = 0; c < N_CFG; c++) {
                llmh_backend *be = cfgs[c].be;
                if (!be) continue;
                bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, ne0, rows, 1, 1);
                bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, ne0, 1, 1, 1);
                bu_tensor *y = in_place ? x : bu_tensor_new(&plug, be, LLMH_DTYPE_F32, ne0, rows, 1, 1);
                uint64_t s = seed;
                fill(x, &s, 3.0f);
                fill(w, &s, 1.0f);
                int64_t n = ne0 * rows;
                double *ref = malloc((size_t)n * sizeof(double));
                const float *xv = x->t.data, *wv = w->t.data;
                for (int64_t r = 0; r < rows; r++) {
                    const float *xr = xv + r * ne0;
                    double *rr = ref + r * ne0;
                    double mx = -INFINITY, sum = 0, ss = 0;
                    for (int64_t i = 0; i < ne0; i++) {
                        mx = fmax(mx, 0.7 * xr[i]);
                        ss += (double)xr[i] * xr[i];
                    }
                    for (int64_t i = 0; i < ne0; i++) sum += exp(0.7 * xr[i] - mx);
                    for (int64_t i = 0; i < ne0; i++) {
                        switch (kind) {
                        case U_SCALE: rr[i] = 0.7 * xr[i]; break;
                        case U_SILU: rr[i] = silu_d(xr[i]); break;
                        case U_GELU: rr[i] = gelu_d(xr[i]); break;
                        case U_SOFTMAX: rr[i] = exp(0.7 * xr[i] - mx) / sum; break;
                        case U_RMS: rr[i] = xr[i] / sqrt(ss / ne0 + 1e-6); break;
                        case U_RMSW: rr[i] = xr[i] / sqrt(ss / ne0 + 1e-6) * wv[i]; break;
                        }
                    }
                }
                static const llmh_op ops[] = {LLMH_OP_SCALE, LLMH_OP_SILU, LLMH_OP_GELU,
                                              LLMH_OP_SOFTMAX, LLMH_OP_RMS_NORM, LLMH_OP_RMS_NORM};
                llmh_node nd = {sizeof nd, ops[kind], &y->t, {&x->t, kind == U_RMSW ? &w->t : NULL, NULL, NULL},
                                {0}, {kind == U_RMS || kind == U_RMSW ? 1e-6f : 0.7f}};
                CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
                char what[96];
                snprintf(what, sizeof what, "unary %d %s/%d ne0=%lld rows=%lld", (int)kind, cfgs[c].kernels,
                         cfgs[c].threads, (long long)ne0, (long long)rows);
                CU_ASSERT_EQUAL(compare(what, y->t.data, ref, n, 1e-6, 1e-4), 0);
                free(ref);
                if (!in_place) bu_tensor_free(&plug, be, y);
                bu_tensor_free(&plug, be, x);
                bu_tensor_free(&plug, be, w);
            }
        }
}

static void test_scale(void) { run_unary(U_SCALE, 0); run_unary(U_SCALE, 1); }
static void test_silu(void) { run_unary(U_SILU, 0); }
static void test_gelu(void) { run_unary(U_GELU, 1); }
static void test_softmax(void) { run_unary(U_SOFTMAX, 0); run_unary(U_SOFTMAX, 1); }
static void test_rms_norm(void) { run_unary(U_RMS, 0); run_unary(U_RMSW, 1); }

/* ADD / MUL with broadcasting, SWIGLU; in place and into a strided dst. */
static void run_binary(llmh_op op) {
    uint64_t seed = 7 + (uint64_t)op;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 4; b++)
            for (int bc = 0; bc < 3; bc++) { /* 0: same shape, 1: src1 one row, 2: src1 [1, rows] */
                int64_t ne0 = k_ne0[a], rows = k_rows[b];
                if (op == LLMH_OP_SWIGLU && bc) continue;
                int64_t b0 = bc == 2 ? 1 : ne0, b1 = bc == 1 ? 1 : rows;
                for (size_t c = 0; c < N_CFG; c++) {
                    llmh_backend *be = cfgs[c].be;
                    if (!be) continue;
                    bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, ne0, rows, 1, 1);
                    bu_tensor *y = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, b0, b1, 1, 1);
                    uint64_t s = seed;
                    fill(x, &s, 2.0f);
                    fill(y, &s, 2.0f);
                    int64_t n = ne0 * rows;
                    double *ref = malloc((size_t)n * sizeof(double));
                    const float *xv = x->t.data, *yv = y->t.data;
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t i = 0; i < ne0; i++) {
                            double u = xv[r * ne0 + i], v = yv[(r % b1) * b0 + i % b0];
                            ref[r * ne0 + i] = op == LLMH_OP_ADD ? u + v : op == LLMH_OP_MUL ? u * v : silu_d(u) * v;
                        }
                    int in_place = (a + b + c) % 2 == 0;
                    bu_tensor *d = in_place ? x : bu_tensor_new(&plug, be, LLMH_DTYPE_F32, ne0, rows, 1, 1);
                    llmh_node nd = {sizeof nd, op, &d->t, {&x->t, &y->t, NULL, NULL}, {0}, {0}};
                    CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
                    char what[96];
                    snprintf(what, sizeof what, "op %d bc %d %s/%d ne0=%lld rows=%lld", (int)op, bc,
                             cfgs[c].kernels, cfgs[c].threads, (long long)ne0, (long long)rows);
                    CU_ASSERT_EQUAL(compare(what, d->t.data, ref, n, 1e-6, 1e-5), 0);
                    free(ref);
                    if (!in_place) bu_tensor_free(&plug, be, d);
                    bu_tensor_free(&plug, be, x);
                    bu_tensor_free(&plug, be, y);
                }
            }
}

static void test_add(void) { run_binary(LLMH_OP_ADD); }
static void test_mul(void) { run_binary(LLMH_OP_MUL); }
static void test_swiglu(void) { run_binary(LLMH_OP_SWIGLU); }

/* Strided views: ADD reading a transposed view of src0 (nb[0] != 4). */
static void test_strided_add(void) {
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 5, 7, 1, 1);
        bu_tensor *y = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 7, 1, 1, 1);
        bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 7, 5, 1, 1);
        uint64_t s = 5;
        fill(x, &s, 1.0f);
        fill(y, &s, 1.0f);
        llmh_tensor xt = x->t; /* transpose: [7, 5] view */
        xt.ne[0] = 7; xt.ne[1] = 5;
        xt.nb[0] = 5 * sizeof(float); xt.nb[1] = sizeof(float);
        double ref[35];
        const float *xv = x->t.data, *yv = y->t.data;
        for (int r = 0; r < 5; r++)
            for (int i = 0; i < 7; i++) ref[r * 7 + i] = (double)xv[i * 5 + r] + yv[i];
        llmh_node nd = {sizeof nd, LLMH_OP_ADD, &d->t, {&xt, &y->t, NULL, NULL}, {0}, {0}};
        CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
        CU_ASSERT_EQUAL(compare("strided add", d->t.data, ref, 35, 1e-6, 1e-6), 0);
        bu_tensor_free(&plug, be, x);
        bu_tensor_free(&plug, be, y);
        bu_tensor_free(&plug, be, d);
    }
}

/* CPY f32 -> f16/bf16/f32 into a strided cache view, and back. */
static void test_cpy(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_F32};
    for (size_t t = 0; t < 3; t++)
        for (size_t c = 0; c < N_CFG; c++) {
            llmh_backend *be = cfgs[c].be;
            if (!be) continue;
            /* cache [64, 2 heads, 40 slots]; write 7 tokens at slot 10 */
            const int64_t D = 64, H = 2, S = 40, T = 7, P = 10;
            bu_tensor *src = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
            bu_tensor *cache = bu_tensor_new(&plug, be, types[t], D, H, S, 1);
            bu_tensor *back = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
            uint64_t s = 77;
            fill(src, &s, 4.0f);
            llmh_tensor view = cache->t;
            view.ne[2] = T;
            view.data = (uint8_t *)cache->t.data + (size_t)P * cache->t.nb[2];
            llmh_node n1 = {sizeof n1, LLMH_OP_CPY, &view, {&src->t, NULL, NULL, NULL}, {0}, {0}};
            CU_ASSERT_EQUAL(run1(be, &n1), LLMH_OK);
            llmh_node n2 = {sizeof n2, LLMH_OP_CPY, &back->t, {&view, NULL, NULL, NULL}, {0}, {0}};
            CU_ASSERT_EQUAL(run1(be, &n2), LLMH_OK);
            int64_t n = D * H * T;
            double *ref = malloc((size_t)n * sizeof(double));
            const float *sv = src->t.data;
            for (int64_t i = 0; i < n; i++) {
                float v = sv[i];
                if (types[t] == LLMH_DTYPE_F16) v = llmh_fp16_to_fp32(llmh_fp32_to_fp16(v));
                if (types[t] == LLMH_DTYPE_BF16) v = llmh_bf16_to_fp32(llmh_fp32_to_bf16(v));
                ref[i] = v;
            }
            CU_ASSERT_EQUAL(compare("cpy", back->t.data, ref, n, 0.0, 0.0), 0);
            /* slots outside the view are untouched (still zero) */
            const uint8_t *cb = cache->t.data;
            int dirty = 0;
            for (size_t i = 0; i < (size_t)P * cache->t.nb[2]; i++) dirty |= cb[i];
            CU_ASSERT_EQUAL(dirty, 0);
            free(ref);
            bu_tensor_free(&plug, be, src);
            bu_tensor_free(&plug, be, cache);
            bu_tensor_free(&plug, be, back);
        }
}

static void test_get_rows(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_Q8_0,
                                       LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q6_K, LLMH_DTYPE_Q5_1};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t c = 0; c < N_CFG; c++) {
            llmh_backend *be = cfgs[c].be;
            if (!be) continue;
            const int64_t D = 512, V = 50, N = 7;
            bu_tensor *w = bu_tensor_new(&plug, be, types[t], D, V, 1, 1);
            bu_tensor *ids = bu_tensor_new(&plug, be, LLMH_DTYPE_I32, N, 1, 1, 1);
            bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, N, 1, 1);
            uint64_t s = 3;
            bu_random_weights(types[t], w->t.data, D * V, &s);
            int32_t *iv = ids->t.data;
            for (int i = 0; i < N; i++) iv[i] = (int32_t)((i * 17 + 3) % V);
            llmh_node nd = {sizeof nd, LLMH_OP_GET_ROWS, &d->t, {&w->t, &ids->t, NULL, NULL}, {0}, {0}};
            CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
            float *row = malloc((size_t)D * sizeof(float));
            double *ref = malloc((size_t)(D * N) * sizeof(double));
            for (int i = 0; i < N; i++) {
                llmh_dequantize(types[t], (uint8_t *)w->t.data + (size_t)iv[i] * w->t.nb[1], row, D);
                for (int64_t j = 0; j < D; j++) ref[i * D + j] = row[j];
            }
            CU_ASSERT_EQUAL(compare("get_rows", d->t.data, ref, D * N, 0.0, 0.0), 0);
            free(row);
            free(ref);
            bu_tensor_free(&plug, be, w);
            bu_tensor_free(&plug, be, ids);
            bu_tensor_free(&plug, be, d);
        }
}

static void test_rope(void) {
    for (int mode = 0; mode < 2; mode++)
        for (int use_ff = 0; use_ff < 2; use_ff++)
            for (size_t c = 0; c < N_CFG; c++) {
                llmh_backend *be = cfgs[c].be;
                if (!be) continue;
                const int64_t D = 64, H = 3, T = 7;
                const int n_rot = use_ff ? 48 : 64; /* partial rotation with freq factors */
                int rmode = mode ? LLMH_ROPE_NEOX : LLMH_ROPE_NORMAL;
                bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
                bu_tensor *pos = bu_tensor_new(&plug, be, LLMH_DTYPE_I32, T, 1, 1, 1);
                bu_tensor *ff = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, n_rot / 2, 1, 1, 1);
                bu_tensor *y = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
                uint64_t s = 11;
                fill(x, &s, 1.0f);
                int32_t *pv = pos->t.data;
                for (int t = 0; t < T; t++) pv[t] = 5 + 13 * t;
                float *fv = ff->t.data;
                for (int i = 0; i < n_rot / 2; i++) fv[i] = 1.0f + 0.25f * (float)i;
                const float base = 10000.0f, fscale = 0.5f;
                double *ref = malloc((size_t)(D * H * T) * sizeof(double));
                const float *xv = x->t.data;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t h = 0; h < H; h++) {
                        const float *xr = xv + (t * H + h) * D;
                        double *rr = ref + (t * H + h) * D;
                        for (int64_t i = 0; i < D; i++) rr[i] = xr[i];
                        for (int i = 0; i < n_rot / 2; i++) {
                            double th = pv[t] * (double)fscale * pow(base, -2.0 * i / n_rot);
                            if (use_ff) th /= fv[i];
                            int i0 = mode ? i : 2 * i, i1 = mode ? i + n_rot / 2 : 2 * i + 1;
                            rr[i0] = xr[i0] * cos(th) - xr[i1] * sin(th);
                            rr[i1] = xr[i0] * sin(th) + xr[i1] * cos(th);
                        }
                    }
                llmh_node nd = {sizeof nd, LLMH_OP_ROPE, &y->t, {&x->t, &pos->t, use_ff ? &ff->t : NULL, NULL},
                                {n_rot, rmode}, {base, fscale}};
                CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
                CU_ASSERT_EQUAL(compare("rope", y->t.data, ref, D * H * T, 1e-5, 1e-5), 0);
                /* in place */
                nd.dst = &x->t;
                CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
                CU_ASSERT_EQUAL(compare("rope in place", x->t.data, ref, D * H * T, 1e-5, 1e-5), 0);
                free(ref);
                bu_tensor_free(&plug, be, x);
                bu_tensor_free(&plug, be, pos);
                bu_tensor_free(&plug, be, ff);
                bu_tensor_free(&plug, be, y);
            }
}

static void test_attention(void) {
    static const llmh_dtype kv_types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16};
    static const struct { int64_t T, n_past, window; float cap; } cases[] = {
        {1, 0, 0, 0.0f}, {1, 40, 0, 0.0f}, {7, 0, 0, 0.0f}, {7, 20, 0, 0.0f},
        {2, 30, 8, 0.0f}, {64, 0, 0, 0.0f}, {5, 9, 4, 30.0f}};
    for (size_t kt = 0; kt < 2; kt++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (size_t c = 0; c < N_CFG; c++) {
                llmh_backend *be = cfgs[c].be;
                if (!be) continue;
                const int64_t D = 64, H = 6, Hkv = 2, S = 80;
                int64_t T = cases[ci].T, n_past = cases[ci].n_past, win = cases[ci].window;
                float cap = cases[ci].cap, scale = 1.0f / 8.0f;
                llmh_dtype kvt = kv_types[kt];
                bu_tensor *q = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
                bu_tensor *kc = bu_tensor_new(&plug, be, kvt, D, Hkv, S, 1);
                bu_tensor *vc = bu_tensor_new(&plug, be, kvt, D, Hkv, S, 1);
                bu_tensor *o = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, D, H, T, 1);
                uint64_t s = 1000 + ci;
                fill(q, &s, 2.0f);
                fill(kc, &s, 2.0f);
                fill(vc, &s, 1.0f);
                /* K/V views of the first n_past + T slots */
                llmh_tensor kv = kc->t, vv = vc->t;
                kv.ne[2] = vv.ne[2] = n_past + T;
                double *ref = malloc((size_t)(D * H * T) * sizeof(double));
                double *sc = malloc((size_t)S * sizeof(double));
                const float *qv = q->t.data;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t h = 0; h < H; h++) {
                        int64_t hk = h / (H / Hkv), pos = n_past + t;
                        int64_t j0 = win > 0 && pos - win + 1 > 0 ? pos - win + 1 : 0;
                        double mx = -INFINITY;
                        for (int64_t j = j0; j <= pos; j++) {
                            double dot = 0;
                            for (int64_t i = 0; i < D; i++) {
                                float kvl;
                                const uint8_t *kp = (const uint8_t *)kc->t.data + hk * kc->t.nb[1] + j * kc->t.nb[2];
                                if (kvt == LLMH_DTYPE_F32) memcpy(&kvl, kp + i * 4, 4);
                                else { uint16_t hb; memcpy(&hb, kp + i * 2, 2); kvl = llmh_fp16_to_fp32(hb); }
                                float qi = qv[(t * H + h) * D + i];
                                if (kvt == LLMH_DTYPE_F16) qi = llmh_fp16_to_fp32(llmh_fp32_to_fp16(qi));
                                dot += (double)qi * kvl;
                            }
                            dot *= scale;
                            if (cap > 0) dot = cap * tanh(dot / cap);
                            sc[j] = dot;
                            mx = fmax(mx, dot);
                        }
                        double sum = 0;
                        for (int64_t j = j0; j <= pos; j++) sum += (sc[j] = exp(sc[j] - mx));
                        /* f16 K/V: probabilities are normalized, then rounded to f16 (SDK) */
                        for (int64_t j = j0; j <= pos; j++) {
                            sc[j] /= sum;
                            if (kvt == LLMH_DTYPE_F16) sc[j] = llmh_fp16_to_fp32(llmh_fp32_to_fp16((float)sc[j]));
                        }
                        sum = 1.0;
                        for (int64_t i = 0; i < D; i++) {
                            double acc = 0;
                            for (int64_t j = j0; j <= pos; j++) {
                                const uint8_t *vp = (const uint8_t *)vc->t.data + hk * vc->t.nb[1] + j * vc->t.nb[2];
                                float vl;
                                if (kvt == LLMH_DTYPE_F32) memcpy(&vl, vp + i * 4, 4);
                                else { uint16_t hb; memcpy(&hb, vp + i * 2, 2); vl = llmh_fp16_to_fp32(hb); }
                                acc += sc[j] * vl;
                            }
                            ref[(t * H + h) * D + i] = acc / sum;
                        }
                    }
                llmh_node nd = {sizeof nd, LLMH_OP_ATTENTION, &o->t, {&q->t, &kv, &vv, NULL},
                                {(int32_t)n_past, (int32_t)win}, {scale, cap}};
                CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
                char what[96];
                snprintf(what, sizeof what, "attention case %zu kv %s %s/%d", ci, llmh_dtype_name(kvt),
                         cfgs[c].kernels, cfgs[c].threads);
                /* f16: the kernel's f32 softmax may round a probability to the
                 * neighbouring f16 value of the double reference's: one f16 ulp
                 * (2^-11 relative) of a probability times |v| <= 1 */
                CU_ASSERT_EQUAL(compare(what, o->t.data, ref, D * H * T, kvt == LLMH_DTYPE_F16 ? 5e-4 : 2e-5, 1e-4), 0);
                free(ref);
                free(sc);
                bu_tensor_free(&plug, be, q);
                bu_tensor_free(&plug, be, kc);
                bu_tensor_free(&plug, be, vc);
                bu_tensor_free(&plug, be, o);
            }
}

/* A small multi-node graph: nodes read earlier nodes' outputs. */
static void test_graph_chain(void) {
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 100, 3, 1, 1);
        bu_tensor *y = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 100, 3, 1, 1);
        uint64_t s = 8;
        fill(x, &s, 1.0f);
        double ref[300];
        const float *xv = x->t.data;
        for (int i = 0; i < 300; i++) ref[i] = silu_d(2.0 * xv[i] + xv[i]);
        llmh_node nodes[3] = {
            {sizeof(llmh_node), LLMH_OP_SCALE, &y->t, {&x->t, NULL, NULL, NULL}, {0}, {2.0f}},
            {sizeof(llmh_node), LLMH_OP_ADD, &y->t, {&y->t, &x->t, NULL, NULL}, {0}, {0}},
            {sizeof(llmh_node), LLMH_OP_SILU, &y->t, {&y->t, NULL, NULL, NULL}, {0}, {0}},
        };
        llmh_graph g = {sizeof g, 3, nodes};
        for (int rep = 0; rep < 3; rep++) CU_ASSERT_EQUAL(plug.be->graph_compute(be, &g), LLMH_OK);
        CU_ASSERT_EQUAL(compare("chain", y->t.data, ref, 300, 1e-6, 1e-5), 0);
        bu_tensor_free(&plug, be, x);
        bu_tensor_free(&plug, be, y);
    }
}

/* ------------------------------------------------------------------------ */
/* matmul                                                                     */
/* ------------------------------------------------------------------------ */
static const llmh_dtype mm_types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_Q8_0,
                                      LLMH_DTYPE_Q4_0, LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1,
                                      LLMH_DTYPE_Q2_K, LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q5_K,
                                      LLMH_DTYPE_Q6_K};

static int is_plain(llmh_dtype t) { return t == LLMH_DTYPE_F32 || t == LLMH_DTYPE_F16 || t == LLMH_DTYPE_BF16; }

/* One matmul case on every config; returns the number of mismatches. */
static int mm_case(llmh_dtype t, int64_t K, int64_t M, int64_t N, int64_t B, uint64_t seed) {
    int bad = 0;
    int64_t bs = llmh_dtype_block_size(t);
    float *wf = malloc((size_t)(K * M) * sizeof(float));
    float *ref_scalar = malloc((size_t)(M * N * B) * sizeof(float));
    double *exact = malloc((size_t)(M * N * B) * sizeof(double));
    double *absdot = malloc((size_t)(M * N * B) * sizeof(double));
    double *qtol = malloc((size_t)(M * N * B) * sizeof(double));
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        bu_tensor *w = bu_tensor_new(&plug, be, t, K, M, 1, 1);
        bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K, N, B, 1);
        bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, B, 1);
        uint64_t s = seed;
        bu_random_weights(t, w->t.data, K * M, &s);
        fill(x, &s, 1.0f);
        /* as the model loader does: let the backend repack (VNNI panels) */
        if (plug.be->weight_prepare) CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &w->t), LLMH_OK);
        llmh_node nd = {sizeof nd, LLMH_OP_MUL_MAT, &d->t, {&w->t, &x->t, NULL, NULL}, {0}, {0}};
        CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
        const float *dv = d->t.data, *xv = x->t.data;
        if (c == 0) {
            /* exact reference from the dequantized weights */
            llmh_dequantize(t, w->t.data, wf, K * M);
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t n = 0; n < N; n++) {
                    const float *xc = xv + (bb * N + n) * K;
                    for (int64_t m = 0; m < M; m++) {
                        double acc = 0, aacc = 0, qt = 0;
                        for (int64_t i = 0; i < K; i++) {
                            /* BF16/F16 weights multiply activations rounded to their type (SDK) */
                            float xi = xc[i];
                            if (t == LLMH_DTYPE_BF16) xi = llmh_bf16_to_fp32(llmh_fp32_to_bf16(xi));
                            else if (t == LLMH_DTYPE_F16) xi = llmh_fp16_to_fp32(llmh_fp32_to_fp16(xi));
                            double p = (double)wf[m * K + i] * xi;
                            acc += p;
                            aacc += fabs(p);
                        }
                        if (!is_plain(t)) {
                            int64_t blk = bs == 256 ? 256 : 32;
                            for (int64_t b0 = 0; b0 < K; b0 += blk) {
                                double amax = 0, wsum = 0;
                                for (int64_t i = b0; i < b0 + blk; i++) {
                                    amax = fmax(amax, fabs(xc[i]));
                                    wsum += fabs(wf[m * K + i]);
                                }
                                qt += wsum * amax / 127.0;
                            }
                        }
                        size_t o = (size_t)((bb * N + n) * M + m);
                        exact[o] = acc;
                        absdot[o] = aacc;
                        qtol[o] = qt;
                    }
                }
            memcpy(ref_scalar, dv, (size_t)(M * N * B) * sizeof(float));
            for (int64_t i = 0; i < M * N * B; i++) {
                double tol = is_plain(t) ? 1e-5 + 1e-5 * absdot[i] : 1e-4 + qtol[i];
                if (!(fabs(dv[i] - exact[i]) <= tol)) {
                    if (bad < 3)
                        fprintf(stderr, "mm %s K=%lld M=%lld N=%lld scalar vs exact [%lld]: %g vs %g (tol %g)\n",
                                llmh_dtype_name(t), (long long)K, (long long)M, (long long)N, (long long)i,
                                dv[i], exact[i], tol);
                    bad++;
                }
            }
        } else {
            for (int64_t i = 0; i < M * N * B; i++) {
                double tol = 1e-5 + 2e-5 * absdot[i];
                if (!(fabs((double)dv[i] - ref_scalar[i]) <= tol)) {
                    if (bad < 3)
                        fprintf(stderr, "mm %s K=%lld M=%lld N=%lld %s/%d vs scalar [%lld]: %g vs %g\n",
                                llmh_dtype_name(t), (long long)K, (long long)M, (long long)N,
                                cfgs[c].kernels, cfgs[c].threads, (long long)i, dv[i], ref_scalar[i]);
                    bad++;
                }
            }
        }
        if (plug.be->weight_release) plug.be->weight_release(be, &w->t);
        CU_ASSERT_PTR_NULL(w->t.extra);
        bu_tensor_free(&plug, be, w);
        bu_tensor_free(&plug, be, x);
        bu_tensor_free(&plug, be, d);
    }
    free(wf);
    free(ref_scalar);
    free(exact);
    free(absdot);
    free(qtol);
    return bad;
}

static void test_mul_mat(void) {
    for (size_t ti = 0; ti < sizeof mm_types / sizeof mm_types[0]; ti++) {
        llmh_dtype t = mm_types[ti];
        int64_t bs = llmh_dtype_block_size(t);
        int64_t ks[3];
        if (bs == 1) { ks[0] = 1; ks[1] = 33; ks[2] = 256; }
        else if (bs == 32) { ks[0] = 32; ks[1] = 96; ks[2] = 288; }
        else { ks[0] = 256; ks[1] = 512; ks[2] = 768; }
        static const int64_t ms[] = {1, 31, 33, 64};
        for (int ki = 0; ki < 3; ki++)
            for (int mi = 0; mi < 4; mi++)
                for (int ni = 0; ni < 4; ni++) {
                    int bad = mm_case(t, ks[ki], ms[mi], k_rows[ni], 1, 17 + (uint64_t)(ki * 100 + mi * 10 + ni));
                    CU_ASSERT_EQUAL(bad, 0);
                }
        /* many rows (4097) and a batch dim */
        CU_ASSERT_EQUAL(mm_case(t, ks[1], 4097, 1, 1, 5), 0);
        CU_ASSERT_EQUAL(mm_case(t, ks[0], 4097, 7, 1, 6), 0);
        CU_ASSERT_EQUAL(mm_case(t, ks[0], 33, 2, 3, 7), 0);
    }
}

/* MUL_MAT with a strided src1 (a transposed view: nb[0] != 4). */
static void test_mul_mat_strided(void) {
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        const int64_t K = 64, M = 5, N = 3;
        bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_Q8_0, K, M, 1, 1);
        bu_tensor *xt = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, N, K, 1, 1); /* [N, K] */
        bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
        uint64_t s = 4;
        bu_random_weights(LLMH_DTYPE_Q8_0, w->t.data, K * M, &s);
        fill(xt, &s, 1.0f);
        llmh_tensor x = xt->t;
        x.ne[0] = K; x.ne[1] = N;
        x.nb[0] = N * sizeof(float); x.nb[1] = sizeof(float);
        x.nb[2] = x.nb[3] = K * N * sizeof(float);
        llmh_node nd = {sizeof nd, LLMH_OP_MUL_MAT, &d->t, {&w->t, &x, NULL, NULL}, {0}, {0}};
        CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
        float wf[64 * 5];
        llmh_dequantize(LLMH_DTYPE_Q8_0, w->t.data, wf, K * M);
        const float *xv = xt->t.data;
        double ref[15], tol = 0.05;
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) {
                double acc = 0;
                for (int i = 0; i < K; i++) acc += (double)wf[m * K + i] * xv[i * N + n];
                ref[n * M + m] = acc;
            }
        CU_ASSERT_EQUAL(compare("mm strided", d->t.data, ref, 15, tol, 0.0), 0);
        bu_tensor_free(&plug, be, w);
        bu_tensor_free(&plug, be, xt);
        bu_tensor_free(&plug, be, d);
    }
}

/* A prepared (repacked) weight used through a different view must fall back
 * to the plain kernels: here the first 20 of 48 rows. */
static void test_mul_mat_prepared_view(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_Q8_0, LLMH_DTYPE_Q4_0};
    for (size_t t = 0; t < 2; t++)
        for (size_t c = 0; c < N_CFG; c++) {
            llmh_backend *be = cfgs[c].be;
            if (!be) continue;
            const int64_t K = 64, M = 48, N = 3;
            bu_tensor *w = bu_tensor_new(&plug, be, types[t], K, M, 1, 1);
            bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K, N, 1, 1);
            bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 20, N, 1, 1);
            uint64_t s = 21;
            bu_random_weights(types[t], w->t.data, K * M, &s);
            fill(x, &s, 1.0f);
            CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &w->t), LLMH_OK);
            llmh_tensor view = w->t; /* extra copied along, shape differs */
            view.ne[1] = 20;
            llmh_node nd = {sizeof nd, LLMH_OP_MUL_MAT, &d->t, {&view, &x->t, NULL, NULL}, {0}, {0}};
            CU_ASSERT_EQUAL(run1(be, &nd), LLMH_OK);
            float wf[64 * 48];
            llmh_dequantize(types[t], w->t.data, wf, K * M);
            const float *xv = x->t.data;
            double ref[60];
            for (int n = 0; n < N; n++)
                for (int m = 0; m < 20; m++) {
                    double acc = 0;
                    for (int i = 0; i < K; i++) acc += (double)wf[m * K + i] * xv[n * K + i];
                    ref[n * 20 + m] = acc;
                }
            CU_ASSERT_EQUAL(compare("prepared view", d->t.data, ref, 60, 0.05, 0.0), 0);
            plug.be->weight_release(be, &w->t);
            bu_tensor_free(&plug, be, w);
            bu_tensor_free(&plug, be, x);
            bu_tensor_free(&plug, be, d);
        }
}

static void test_repack_option(void) {
    llmh_kv kv = {"repack", {LLMH_V_STRING, {0}}};
    kv.value.v.s.ptr = "no";
    kv.value.v.s.len = 2;
    llmh_kv_list list = {&kv, 1};
    llmh_backend_params prm = {sizeof prm, -1, 1, &list};
    llmh_backend *be = NULL;
    CU_ASSERT_EQUAL(plug.be->create(plug.state, &prm, &be), LLMH_ERR_CONFIG);
    CU_ASSERT(strstr(llmh_last_error(), "repack") != NULL);
    kv.value.type = LLMH_V_BOOL;
    kv.value.v.b = 0;
    CU_ASSERT_EQUAL_FATAL(plug.be->create(plug.state, &prm, &be), LLMH_OK);
    bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_Q8_0, 64, 32, 1, 1);
    CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &w->t), LLMH_OK);
    CU_ASSERT_PTR_NULL(w->t.extra); /* nothing repacked */
    bu_tensor_free(&plug, be, w);
    plug.be->destroy(be);
}


/* ------------------------------------------------------------------------ */
/* LORA: dst[:, t] += (fp[0] * g[t]) * B (A x[:, t]), runs of nodes fused    */
/* ------------------------------------------------------------------------ */
enum { X_CONTIG = 0, X_COLVIEW = 1, X_TRANSPOSED = 2 };
enum { G_NONE = 0, G_MIXED = 1 };

/* n_ad adapters (ranks rk[i]) on one dst/x, as consecutive nodes; returns
 * the number of mismatches against a double-precision reference over every
 * config. Zero-gate columns must be left bit for bit. */
static int lora_case(llmh_dtype t, int64_t K, int64_t M, int64_t N, int n_ad, const int64_t *rk, int xmode,
                     int gmode, uint64_t seed) {
    int bad = 0;
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        uint64_t s = seed;
        bu_tensor *A[4], *B[4], *G[4];
        float *af[4], *bf[4];
        llmh_node nodes[4];
        /* x: contiguous, a column view of a wider matrix, or transposed */
        bu_tensor *xs = xmode == X_TRANSPOSED ? bu_tensor_new(&plug, be, LLMH_DTYPE_F32, N, K, 1, 1)
                                              : bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K + 5 * (xmode == X_COLVIEW), N, 1, 1);
        fill(xs, &s, 1.0f);
        llmh_tensor x = xs->t;
        x.ne[0] = K;
        x.ne[1] = N;
        if (xmode == X_TRANSPOSED) {
            x.nb[0] = (size_t)N * sizeof(float);
            x.nb[1] = sizeof(float);
        }
        bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
        fill(d, &s, 1.0f);
        float *d0 = malloc((size_t)(M * N) * sizeof(float));
        memcpy(d0, d->t.data, (size_t)(M * N) * sizeof(float));
        for (int i = 0; i < n_ad; i++) {
            /* Q8_0 (SDK 1.2): B comes transposed, [M, R] */
            int q8 = t == LLMH_DTYPE_Q8_0;
            A[i] = bu_tensor_new(&plug, be, t, K, rk[i], 1, 1);
            B[i] = q8 ? bu_tensor_new(&plug, be, t, M, rk[i], 1, 1) : bu_tensor_new(&plug, be, t, rk[i], M, 1, 1);
            fill(A[i], &s, 0.5f);
            fill(B[i], &s, 0.5f);
            af[i] = malloc((size_t)(K * rk[i]) * sizeof(float));
            bf[i] = malloc((size_t)(rk[i] * M) * sizeof(float));
            llmh_dequantize(t, A[i]->t.data, af[i], K * rk[i]);
            llmh_dequantize(t, B[i]->t.data, bf[i], rk[i] * M);
            if (q8) { /* bf as B [R, M]: bf[m * R + j] */
                float *bt = malloc((size_t)(rk[i] * M) * sizeof(float));
                memcpy(bt, bf[i], (size_t)(rk[i] * M) * sizeof(float));
                for (int64_t m = 0; m < M; m++)
                    for (int64_t j = 0; j < rk[i]; j++) bf[i][m * rk[i] + j] = bt[j * M + m];
                free(bt);
            }
            /* odd seeds: as the adapter store does (B may be kept transposed) */
            if ((seed & 1) && plug.be->weight_prepare) {
                CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &A[i]->t), LLMH_OK);
                CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &B[i]->t), LLMH_OK);
            }
            G[i] = NULL;
            if (gmode == G_MIXED) {
                G[i] = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, N, 1, 1, 1);
                float *g = G[i]->t.data;
                /* column 1 is off for every adapter; others vary */
                for (int64_t j = 0; j < N; j++) g[j] = j == 1 ? 0.0f : (j + i) % 3 == 0 ? 0.0f : 0.25f + 0.5f * (float)((j + i) % 4);
            }
            llmh_node nd = {sizeof nd, LLMH_OP_LORA, &d->t, {&A[i]->t, &x, &B[i]->t, G[i] ? &G[i]->t : NULL}, {0},
                            {0.75f - 0.5f * (float)i}};
            nodes[i] = nd;
        }
        llmh_graph g = {sizeof g, (size_t)n_ad, nodes};
        CU_ASSERT_EQUAL(plug.be->graph_compute(be, &g), LLMH_OK);
        const float *xd = xs->t.data, *dv = d->t.data;
        for (int64_t tok = 0; tok < N; tok++) {
            double *acc = calloc((size_t)M, sizeof(double)), *mag = calloc((size_t)M, sizeof(double));
            int any = 0;
            for (int i = 0; i < n_ad; i++) {
                double gi = G[i] ? ((const float *)G[i]->t.data)[tok] : 1.0;
                if (gi == 0.0) continue;
                any = 1;
                double cf = (double)nodes[i].fp[0] * gi;
                for (int64_t j = 0; j < rk[i]; j++) {
                    double r = 0, ra = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double xv = xmode == X_TRANSPOSED ? xd[k * N + tok] : xd[tok * xs->t.ne[0] + k];
                        r += (double)af[i][j * K + k] * xv;
                        ra += fabs((double)af[i][j * K + k] * xv);
                    }
                    for (int64_t m = 0; m < M; m++) {
                        acc[m] += cf * bf[i][m * rk[i] + j] * r;
                        mag[m] += fabs(cf * bf[i][m * rk[i] + j]) * ra;
                    }
                }
            }
            for (int64_t m = 0; m < M; m++) {
                size_t o = (size_t)(tok * M + m);
                if (!any) {
                    if (memcmp(&dv[o], &d0[o], sizeof(float)) != 0) {
                        if (bad < 3) fprintf(stderr, "lora: zero-gate column %lld changed\n", (long long)tok);
                        bad++;
                    }
                    continue;
                }
                double ref = d0[o] + acc[m], tol = 1e-6 + 2e-6 * fabs(d0[o]) + 3e-6 * mag[m];
                if (!(fabs(dv[o] - ref) <= tol)) {
                    if (bad < 3)
                        fprintf(stderr, "lora %s K=%lld M=%lld N=%lld n=%d x=%d g=%d %s/%d [%lld,%lld]: %.9g vs %.9g\n",
                                llmh_dtype_name(t), (long long)K, (long long)M, (long long)N, n_ad, xmode, gmode,
                                cfgs[c].kernels, cfgs[c].threads, (long long)m, (long long)tok, dv[o], ref);
                    bad++;
                }
            }
            free(acc);
            free(mag);
        }
        for (int i = 0; i < n_ad; i++) {
            if (plug.be->weight_release) {
                plug.be->weight_release(be, &A[i]->t);
                plug.be->weight_release(be, &B[i]->t);
            }
            bu_tensor_free(&plug, be, A[i]);
            bu_tensor_free(&plug, be, B[i]);
            if (G[i]) bu_tensor_free(&plug, be, G[i]);
            free(af[i]);
            free(bf[i]);
        }
        bu_tensor_free(&plug, be, xs);
        bu_tensor_free(&plug, be, d);
        free(d0);
    }
    return bad;
}

static void test_lora(void) {
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16};
    static const int64_t r1[] = {16}, r3[] = {16, 1, 17}, r4[] = {8, 16, 3, 33};
    for (size_t ti = 0; ti < 3; ti++) {
        llmh_dtype t = types[ti];
        /* one adapter: decode and prefill sizes, odd widths (tails) */
        CU_ASSERT_EQUAL(lora_case(t, 64, 48, 1, 1, r1, X_CONTIG, G_NONE, 1), 0);
        CU_ASSERT_EQUAL(lora_case(t, 1, 9, 3, 1, r1, X_CONTIG, G_NONE, 2), 0);
        CU_ASSERT_EQUAL(lora_case(t, 257, 130, 7, 1, r1, X_CONTIG, G_NONE, 3), 0);
        CU_ASSERT_EQUAL(lora_case(t, 33, 64, 33, 1, r1, X_COLVIEW, G_MIXED, 4), 0);
        /* fused runs of several nodes, gates with zeros, strided x */
        CU_ASSERT_EQUAL(lora_case(t, 100, 70, 1, 3, r3, X_CONTIG, G_MIXED, 5), 0);
        CU_ASSERT_EQUAL(lora_case(t, 100, 70, 4, 4, r4, X_COLVIEW, G_MIXED, 6), 0);
        CU_ASSERT_EQUAL(lora_case(t, 96, 31, 9, 4, r4, X_TRANSPOSED, G_MIXED, 7), 0);
        CU_ASSERT_EQUAL(lora_case(t, 48, 200, 2, 3, r3, X_TRANSPOSED, G_NONE, 8), 0);
        /* B kept transposed (rank <= 64, out >= 16 rank and >= 256): 64-row blocks and tails */
        CU_ASSERT_EQUAL(lora_case(t, 64, 600, 1, 4, r4, X_CONTIG, G_MIXED, 9), 0);
        CU_ASSERT_EQUAL(lora_case(t, 40, 301, 3, 3, r3, X_COLVIEW, G_NONE, 11), 0);
        CU_ASSERT_EQUAL(lora_case(t, 40, 200, 1, 3, r3, X_CONTIG, G_MIXED, 15), 0); /* row kernel after prepare */
        CU_ASSERT_EQUAL(lora_case(t, 40, 1037, 9, 1, r1, X_CONTIG, G_MIXED, 13), 0);
    }
    /* Q8_0 adapters, B transposed (K and M multiples of 32): decode and
     * prefill, the 64- and 32-row tiles, gates, fused runs, rank 80 */
    static const int64_t r2[] = {80, 16};
    const llmh_dtype q = LLMH_DTYPE_Q8_0;
    CU_ASSERT_EQUAL(lora_case(q, 64, 32, 1, 1, r1, X_CONTIG, G_NONE, 21), 0);
    CU_ASSERT_EQUAL(lora_case(q, 96, 160, 3, 1, r1, X_CONTIG, G_NONE, 22), 0);
    CU_ASSERT_EQUAL(lora_case(q, 32, 64, 33, 1, r1, X_COLVIEW, G_MIXED, 23), 0);
    CU_ASSERT_EQUAL(lora_case(q, 128, 96, 1, 3, r3, X_CONTIG, G_MIXED, 24), 0);
    CU_ASSERT_EQUAL(lora_case(q, 128, 224, 4, 4, r4, X_COLVIEW, G_MIXED, 25), 0);
    CU_ASSERT_EQUAL(lora_case(q, 96, 608, 9, 4, r4, X_TRANSPOSED, G_MIXED, 26), 0);
    CU_ASSERT_EQUAL(lora_case(q, 64, 288, 2, 2, r2, X_CONTIG, G_NONE, 27), 0);
    CU_ASSERT_EQUAL(lora_case(q, 896, 4864, 1, 4, r4, X_CONTIG, G_NONE, 28), 0);
}

/* Two fused runs back to back (different dst), then a MUL_MAT reading the
 * result: runs must not merge across dst and the graph order holds. */
static void test_lora_graph(void) {
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        const int64_t K = 40, M = 24, N = 2, R = 4;
        uint64_t s = 99;
        bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K, N, 1, 1);
        bu_tensor *d1 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
        bu_tensor *d2 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
        bu_tensor *a = bu_tensor_new(&plug, be, LLMH_DTYPE_F16, K, R, 1, 1);
        bu_tensor *b = bu_tensor_new(&plug, be, LLMH_DTYPE_F16, R, M, 1, 1);
        bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, 3, 1, 1);
        bu_tensor *o = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 3, N, 1, 1);
        fill(x, &s, 1.0f);
        fill(a, &s, 1.0f);
        fill(b, &s, 1.0f);
        fill(w, &s, 1.0f);
        memset(d1->t.data, 0, (size_t)(M * N) * sizeof(float));
        memset(d2->t.data, 0, (size_t)(M * N) * sizeof(float));
        llmh_node nodes[] = {
            {sizeof(llmh_node), LLMH_OP_LORA, &d1->t, {&a->t, &x->t, &b->t, NULL}, {0}, {1.0f}},
            {sizeof(llmh_node), LLMH_OP_LORA, &d1->t, {&a->t, &x->t, &b->t, NULL}, {0}, {1.0f}},
            {sizeof(llmh_node), LLMH_OP_LORA, &d2->t, {&a->t, &x->t, &b->t, NULL}, {0}, {3.0f}},
            {sizeof(llmh_node), LLMH_OP_MUL_MAT, &o->t, {&w->t, &d1->t, NULL, NULL}, {0}, {0}},
            {sizeof(llmh_node), LLMH_OP_LORA, &d1->t, {&a->t, &x->t, &b->t, NULL}, {0}, {1.0f}},
        };
        llmh_graph g = {sizeof g, 5, nodes};
        CU_ASSERT_EQUAL(plug.be->graph_compute(be, &g), LLMH_OK);
        /* d1 = 3 y after the last node, d2 = 3 y, o = W^T (2 y) */
        const float *v1 = d1->t.data, *v2 = d2->t.data, *ov = o->t.data, *wv = w->t.data;
        for (int64_t i = 0; i < M * N; i++) CU_ASSERT(fabsf(v1[i] - v2[i]) <= 1e-4f * (1.0f + fabsf(v2[i])));
        for (int64_t tkn = 0; tkn < N; tkn++)
            for (int j = 0; j < 3; j++) {
                double ref = 0;
                for (int64_t m = 0; m < M; m++) ref += (double)wv[j * M + m] * (2.0 / 3.0) * v2[tkn * M + m];
                CU_ASSERT(fabs(ov[tkn * 3 + j] - ref) <= 1e-3 * (1.0 + fabs(ref)));
            }
        bu_tensor *ts[] = {x, d1, d2, a, b, w, o};
        for (size_t i = 0; i < 7; i++) bu_tensor_free(&plug, be, ts[i]);
    }
}

/* A decode-sized quantized MUL_MAT followed by LORA nodes on its dst and x
 * runs as one two-phase step; it must equal the same nodes run as separate
 * graphs bit for bit (same kernels, same order per element). F16 adapters,
 * and Q8_0 ones (B transposed, M a multiple of 32). Layout 0: three
 * adapters of ranks 5, 6, 7 and K = 96; layout 1: six adapters of rank
 * 13 but the fifth (14), the last with a gate of 0 on column 0, K = 160
 * (the cpu backend reads a one-column projection's adapters in groups of
 * up to 4 of equal rank: 4 and 3 here, with 1 and 2 threads; 4 blocks of
 * K and 8, 4, 1 rank rows at a time). */
static void test_lora_after_mul_mat(void) {
    static const int64_t ns[] = {1, 3, 4, 6};
    static const int64_t rk[2][6] = {{0, 1, 2}, {0, 0, 0, 0, 1, 0}};
    static const int n_ads[2] = {3, 6};
    for (size_t c = 0; c < N_CFG; c++) {
        llmh_backend *be = cfgs[c].be;
        if (!be) continue;
        for (int ni = 0; ni < 16; ni++) {
            const int q8 = (ni & 7) >= 4, lay = ni >= 8, n_ad = n_ads[lay];
            const llmh_dtype at = q8 ? LLMH_DTYPE_Q8_0 : LLMH_DTYPE_F16;
            const int64_t K = lay ? 160 : 96, M = q8 ? 96 : 75, N = ns[ni % 4], R = lay ? 13 : 5;
            uint64_t s = 31 + (uint64_t)ni;
            bu_tensor *w = bu_tensor_new(&plug, be, LLMH_DTYPE_Q4_0, K, M, 1, 1);
            bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K, N, 1, 1);
            bu_tensor *d1 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
            bu_tensor *d2 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, N, 1, 1);
            bu_tensor *gt = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, N, 1, 1, 1);
            bu_tensor *g0 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, N, 1, 1, 1);
            bu_tensor *A[6], *B[6];
            bu_random_weights(LLMH_DTYPE_Q4_0, w->t.data, K * M, &s);
            if (plug.be->weight_prepare) CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &w->t), LLMH_OK);
            fill(x, &s, 1.0f);
            float *gv = gt->t.data, *g0v = g0->t.data;
            for (int64_t j = 0; j < N; j++) {
                gv[j] = j == 1 ? 0.0f : 0.5f + (float)j;
                g0v[j] = j == 0 ? 0.0f : 1.5f;
            }
            for (int i = 0; i < n_ad; i++) {
                int64_t r = R + rk[lay][i];
                A[i] = bu_tensor_new(&plug, be, at, K, r, 1, 1);
                B[i] = q8 ? bu_tensor_new(&plug, be, at, M, r, 1, 1) : bu_tensor_new(&plug, be, at, r, M, 1, 1);
                fill(A[i], &s, 0.5f);
                fill(B[i], &s, 0.5f);
            }
            llmh_node nodes[7];
            for (int pass = 0; pass < 2; pass++) {
                bu_tensor *d = pass ? d2 : d1;
                nodes[0] = (llmh_node){sizeof(llmh_node), LLMH_OP_MUL_MAT, &d->t, {&w->t, &x->t, NULL, NULL}, {0}, {0}};
                for (int i = 0; i < n_ad; i++) {
                    bu_tensor *gi = i == 1 ? gt : lay && i == 5 ? g0 : NULL;
                    nodes[1 + i] = (llmh_node){sizeof(llmh_node), LLMH_OP_LORA, &d->t,
                                               {&A[i]->t, &x->t, &B[i]->t, gi ? &gi->t : NULL}, {0}, {0.5f + (float)i}};
                }
                if (pass == 0) {
                    llmh_graph g = {sizeof g, (size_t)n_ad + 1, nodes};
                    CU_ASSERT_EQUAL(plug.be->graph_compute(be, &g), LLMH_OK);
                } else {
                    for (int i = 0; i <= n_ad; i++) CU_ASSERT_EQUAL(run1(be, &nodes[i]), LLMH_OK);
                }
            }
            if (memcmp(d1->t.data, d2->t.data, (size_t)(M * N) * sizeof(float)) != 0)
                fprintf(stderr, "  %s/%d: fused MUL_MAT + %d %s adapters (layout %d), N=%lld: differs from one by one\n",
                        cfgs[c].kernels, cfgs[c].threads, n_ad, llmh_dtype_name(at), lay, (long long)N);
            CU_ASSERT_EQUAL(memcmp(d1->t.data, d2->t.data, (size_t)(M * N) * sizeof(float)), 0);
            if (plug.be->weight_release) plug.be->weight_release(be, &w->t);
            for (int i = 0; i < n_ad; i++) {
                bu_tensor_free(&plug, be, A[i]);
                bu_tensor_free(&plug, be, B[i]);
            }
            bu_tensor *ts[] = {w, x, d1, d2, gt, g0};
            for (size_t i = 0; i < 6; i++) bu_tensor_free(&plug, be, ts[i]);
        }
    }
}

/* Q8_0 adapter tensors prepared by a backend that packs weights at load,
 * in wrapped anonymous memory as the adapter store places them: LORA reads
 * them where they lie, so the packer must leave them alone (dropping the
 * "cold" source pages of anonymous memory would zero the adapter). */
static void test_lora_q8_prepared_at_load(void) {
    llmh_kv kv = {"repack_at_load", {LLMH_V_BOOL, {0}}};
    kv.value.v.b = 1;
    llmh_kv_list list = {&kv, 1};
    llmh_backend_params prm = {sizeof prm, -1, 2, &list};
    llmh_backend *be = NULL;
    CU_ASSERT_EQUAL_FATAL(plug.be->create(plug.state, &prm, &be), LLMH_OK);
    const int64_t K = 4096, M = 2048, R = 16;
    size_t ab = (size_t)(K / 32 * 34 * R), bb = (size_t)(M / 32 * 34 * R), len = (ab + 4095) / 4096 * 4096 + bb;
    uint8_t *host = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(host != MAP_FAILED);
    uint64_t s = 5;
    float *f = malloc((size_t)(K * R) * sizeof(float));
    for (int64_t i = 0; i < K * R; i++) f[i] = bu_randf(&s) * 0.5f;
    llmh_quantize(LLMH_DTYPE_Q8_0, f, host, K * R);
    size_t boff = (ab + 4095) / 4096 * 4096;
    for (int64_t i = 0; i < M * R; i++) f[i] = bu_randf(&s) * 0.5f;
    llmh_quantize(LLMH_DTYPE_Q8_0, f, host + boff, M * R);
    free(f);
    llmh_buffer *buf = NULL;
    CU_ASSERT_EQUAL_FATAL(plug.be->buffer_wrap_host(be, host, len, LLMH_BUFFER_WEIGHTS, &buf), LLMH_OK);
    llmh_tensor A, B;
    llmh_tensor *ts[2] = {&A, &B};
    for (int i = 0; i < 2; i++) {
        llmh_tensor *t = ts[i];
        memset(t, 0, sizeof *t);
        t->struct_size = sizeof *t;
        t->type = LLMH_DTYPE_Q8_0;
        t->n_dims = 2;
        t->ne[0] = i ? M : K;
        t->ne[1] = R;
        t->ne[2] = t->ne[3] = 1;
        t->nb[0] = 34;
        t->nb[1] = (size_t)(t->ne[0] / 32 * 34);
        t->nb[2] = t->nb[3] = t->nb[1] * (size_t)R;
        t->name = i ? "lora_b" : "lora_a";
        t->buffer = buf;
        t->offset = i ? boff : 0;
        t->data = host + t->offset;
    }
    /* the expected result first, from the bytes before any preparation */
    bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, K, 1, 1, 1);
    bu_tensor *d1 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, 1, 1, 1);
    bu_tensor *d2 = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, M, 1, 1, 1);
    fill(x, &s, 1.0f);
    llmh_node n1 = {sizeof n1, LLMH_OP_LORA, &d1->t, {&A, &x->t, &B, NULL}, {0}, {1.0f}};
    CU_ASSERT_EQUAL(run1(be, &n1), LLMH_OK);
    CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &A), LLMH_OK);
    CU_ASSERT_EQUAL(plug.be->weight_prepare(be, &B), LLMH_OK);
    llmh_node n2 = n1;
    n2.dst = &d2->t;
    CU_ASSERT_EQUAL(run1(be, &n2), LLMH_OK);
    CU_ASSERT_EQUAL(memcmp(d1->t.data, d2->t.data, (size_t)M * sizeof(float)), 0);
    float nz = 0.0f;
    for (int64_t i = 0; i < M; i++) nz += fabsf(((const float *)d1->t.data)[i]);
    CU_ASSERT(nz > 0.0f);
    if (plug.be->weight_release) {
        plug.be->weight_release(be, &A);
        plug.be->weight_release(be, &B);
    }
    bu_tensor_free(&plug, be, x);
    bu_tensor_free(&plug, be, d1);
    bu_tensor_free(&plug, be, d2);
    plug.be->buffer_free(be, buf);
    munmap(host, len);
    plug.be->destroy(be);
}

static void test_lora_errors(void) {
    llmh_backend *be = cfgs[0].be;
    CU_ASSERT(plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_F32, LLMH_DTYPE_F32));
    CU_ASSERT(plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_F16, LLMH_DTYPE_F32));
    CU_ASSERT(plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_BF16, LLMH_DTYPE_F32));
    CU_ASSERT(plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_Q8_0, LLMH_DTYPE_F32));
    CU_ASSERT(!plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_Q4_0, LLMH_DTYPE_F32));
    CU_ASSERT(!plug.be->supports(be, LLMH_OP_LORA, LLMH_DTYPE_F16, LLMH_DTYPE_F16));
    bu_tensor *x = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 8, 2, 1, 1);
    bu_tensor *a = bu_tensor_new(&plug, be, LLMH_DTYPE_F16, 8, 2, 1, 1);
    bu_tensor *b = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 2, 8, 1, 1);
    bu_tensor *b16 = bu_tensor_new(&plug, be, LLMH_DTYPE_F16, 2, 8, 1, 1);
    bu_tensor *d = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 8, 2, 1, 1);
    bu_tensor *g = bu_tensor_new(&plug, be, LLMH_DTYPE_F32, 3, 1, 1, 1);
    llmh_node n = {sizeof n, LLMH_OP_LORA, &d->t, {&a->t, &x->t, &b->t, NULL}, {0}, {1.0f}};
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_ERR_INVALID_ARG); /* A f16, B f32 */
    CU_ASSERT(strstr(llmh_last_error(), "LORA") != NULL);
    n.src[2] = &b16->t;
    n.src[3] = &g->t;
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_ERR_INVALID_ARG); /* 3 gates for 2 tokens */
    CU_ASSERT(strstr(llmh_last_error(), "gates") != NULL);
    n.src[3] = NULL;
    n.src[1] = &d->t; /* in place: dst is x */
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_ERR_INVALID_ARG);
    CU_ASSERT(strstr(llmh_last_error(), "overlaps") != NULL);
    n.src[1] = &x->t;
    n.src[2] = &a->t; /* B of the wrong shape */
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_ERR_INVALID_ARG);
    n.src[2] = &b16->t;
    memset(x->t.data, 0, 64);
    CU_ASSERT_EQUAL(run1(be, &n), LLMH_OK);
    bu_tensor *ts[] = {x, a, b, b16, d, g};
    for (size_t i = 0; i < 6; i++) bu_tensor_free(&plug, be, ts[i]);
}

int main(void) {
    static const llmh_test_case quant_cases[] = {
        {"known blocks: f32/f16/bf16", test_known_plain},
        {"known blocks: 32-element types", test_known_32},
        {"known blocks: k-quants", test_known_k},
        {"quantize -> dequantize error bounds", test_roundtrip},
        {"quantize q8_0 equals the reference formula bit for bit", test_q8_0_exact},
        {"bad arguments", test_quant_errors},
        {NULL, NULL}};
    static const llmh_test_case backend_cases[] = {
        {"device info", test_device},
        {"buffers", test_buffers},
        {"options and supports", test_options},
        {"error paths", test_errors},
        {NULL, NULL}};
    static const llmh_test_case op_cases[] = {
        {"SCALE", test_scale},
        {"SILU", test_silu},
        {"GELU", test_gelu},
        {"SOFTMAX", test_softmax},
        {"RMS_NORM", test_rms_norm},
        {"ADD", test_add},
        {"MUL", test_mul},
        {"SWIGLU", test_swiglu},
        {"ADD strided", test_strided_add},
        {"CPY", test_cpy},
        {"GET_ROWS", test_get_rows},
        {"ROPE", test_rope},
        {"ATTENTION", test_attention},
        {"graph chain", test_graph_chain},
        {NULL, NULL}};
    static const llmh_test_case mm_cases[] = {
        {"MUL_MAT all types, kernels x threads", test_mul_mat},
        {"MUL_MAT strided src1", test_mul_mat_strided},
        {"MUL_MAT prepared weight through another view", test_mul_mat_prepared_view},
        {"option repack", test_repack_option},
        {NULL, NULL}};
    static const llmh_test_case lora_cases[] = {
        {"LORA f32/f16/bf16/q8_0, gates, strided x, fused runs", test_lora},
        {"LORA runs in a graph", test_lora_graph},
        {"LORA run after its MUL_MAT (one step) equals separate nodes", test_lora_after_mul_mat},
        {"LORA q8_0 tensors prepared at load stay intact", test_lora_q8_prepared_at_load},
        {"LORA supports and errors", test_lora_errors},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {
        {"quant-ref", quant_cases, NULL, NULL},
        {"backend", backend_cases, suite_init, suite_cleanup},
        {"ops", op_cases, suite_init, suite_cleanup},
        {"matmul", mm_cases, suite_init, suite_cleanup},
        {"lora", lora_cases, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}

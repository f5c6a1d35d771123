/* test-onednn-options.c — the onednn backend's own options (label plugin):
 * bad values are refused with LLMH_ERR_CONFIG naming the key; weights =
 * "bf16" and "s8" compute exactly what they document (docs/backend-onednn.md)
 * against scalar references of that arithmetic; the device description names
 * the ISA oneDNN dispatches to. Skipped (passes, with a message) when the
 * onednn plugin is not built. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static llmh_registry *g_reg;
static llmh_plugin *g_plugin;
static const llmh_backend_iface *g_bi;
static void *g_state;

static int suite_init(void) {
    if (llmh_registry_create(&g_reg) != LLMH_OK || llmh_registry_scan(g_reg) != LLMH_OK) return -1;
    if (llmh_registry_get(g_reg, LLMH_PLUGIN_BACKEND, "onednn", &g_plugin) != LLMH_OK) {
        fprintf(stderr, "\n  onednn plugin not found (%s): SKIPPED\n", llmh_last_error());
        g_plugin = NULL;
        return 0;
    }
    g_bi = llmh_plugin_iface(g_plugin);
    g_state = llmh_plugin_state(g_plugin);
    return 0;
}

static int suite_cleanup(void) {
    if (g_plugin) llmh_plugin_release(g_plugin);
    llmh_registry_free(g_reg);
    return 0;
}

static llmh_status create_with(const char *weights, int threads, llmh_backend **be) {
    llmh_kv kv;
    kv.key = "weights";
    kv.value.type = LLMH_V_STRING;
    kv.value.v.s.ptr = weights;
    kv.value.v.s.len = strlen(weights);
    llmh_kv_list opts = {&kv, 1};
    llmh_backend_params p = {sizeof p, -1, threads, &opts};
    return g_bi->create(g_state, &p, be);
}

static void test_bad_options(void) {
    if (!g_plugin) return;
    llmh_backend *be = NULL;
    CU_ASSERT_EQUAL(create_with("fp8", 2, &be), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(be);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "weights"));
    llmh_backend_params p = {sizeof p, 3, 1, NULL};
    CU_ASSERT(g_bi->create(g_state, &p, &be) != LLMH_OK); /* device 3 does not exist */
    CU_ASSERT_PTR_NULL(be);
}

static void test_device_info(void) {
    if (!g_plugin) return;
    llmh_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CU_ASSERT_EQUAL_FATAL(g_bi->device_info(g_state, 0, &info), LLMH_OK);
    fprintf(stderr, "\n  %s | %s\n", info.name, info.description);
    CU_ASSERT_PTR_NOT_NULL(strstr(info.description, "isa="));
    CU_ASSERT_PTR_NOT_NULL(strstr(info.description, "threading="));
    CU_ASSERT(info.max_threads >= 1);
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) / 8388608.0 - 1.0);
}

static float bf16r(float x) { return llmh_bf16_to_fp32(llmh_fp32_to_bf16(x)); }

/* MUL_MAT of an F32 weight [K, M] (prepared) with N columns, in a mode. */
static void check_mode(const char *mode, int threads) {
    enum { K = 320, M = 40, N = 9 };
    llmh_backend *be = NULL;
    CU_ASSERT_EQUAL_FATAL(create_with(mode, threads, &be), LLMH_OK);
    llmh_buffer *bw, *bx, *bd;
    CU_ASSERT_EQUAL_FATAL(g_bi->buffer_alloc(be, K * M * 4, LLMH_BUFFER_WEIGHTS, &bw), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(g_bi->buffer_alloc(be, K * N * 4, LLMH_BUFFER_COMPUTE, &bx), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(g_bi->buffer_alloc(be, M * N * 4, LLMH_BUFFER_COMPUTE, &bd), LLMH_OK);
    float *w = g_bi->buffer_host_ptr(be, bw), *x = g_bi->buffer_host_ptr(be, bx), *d = g_bi->buffer_host_ptr(be, bd);
    CU_ASSERT_FATAL(w && x && d);
    uint64_t seed = 42;
    for (int i = 0; i < K * M; i++) w[i] = frand(&seed) * (1.0f + (float)(i / K)); /* rows of different scale */
    for (int i = 0; i < K * N; i++) x[i] = frand(&seed) * (i % 7 == 0 ? 4.0f : 1.0f);
    llmh_tensor tw = {sizeof tw, LLMH_DTYPE_F32, 2, {K, M, 1, 1}, {4, K * 4, K * M * 4, K * M * 4}, "w", bw, 0, w, NULL};
    llmh_tensor tx = {sizeof tx, LLMH_DTYPE_F32, 2, {K, N, 1, 1}, {4, K * 4, K * N * 4, K * N * 4}, "x", bx, 0, x, NULL};
    llmh_tensor td = {sizeof td, LLMH_DTYPE_F32, 2, {M, N, 1, 1}, {4, M * 4, M * N * 4, M * N * 4}, "d", bd, 0, d, NULL};
    CU_ASSERT_EQUAL_FATAL(g_bi->weight_prepare(be, &tw), LLMH_OK);
    llmh_node nd;
    memset(&nd, 0, sizeof nd);
    nd.struct_size = sizeof nd;
    nd.op = LLMH_OP_MUL_MAT;
    nd.dst = &td;
    nd.src[0] = &tw;
    nd.src[1] = &tx;
    llmh_graph g = {sizeof g, 1, &nd};
    CU_ASSERT_EQUAL_FATAL(g_bi->graph_compute(be, &g), LLMH_OK);
    /* the documented arithmetic, exactly (products and sums in double) */
    double worst = 0;
    for (int c = 0; c < N; c++) {
        const float *xc = x + c * K;
        float amax_x = 0;
        for (int i = 0; i < K; i++) amax_x = fmaxf(amax_x, fabsf(xc[i]));
        for (int r = 0; r < M; r++) {
            const float *wr = w + r * K;
            float amax_w = 0;
            for (int i = 0; i < K; i++) amax_w = fmaxf(amax_w, fabsf(wr[i]));
            double want = 0, scale = 0;
            for (int i = 0; i < K; i++) {
                double a, b;
                if (strcmp(mode, "bf16") == 0) {
                    a = bf16r(wr[i]);
                    b = bf16r(xc[i]);
                } else if (strcmp(mode, "s8") == 0) {
                    a = nearbyintf(wr[i] * (127.0f / amax_w)) * (double)(amax_w / 127.0f);
                    b = nearbyintf(xc[i] * (127.0f / amax_x)) * (double)(amax_x / 127.0f);
                } else {
                    a = wr[i];
                    b = xc[i];
                }
                want += a * b;
                scale += fabs(a * b);
            }
            double err = fabs(d[c * M + r] - want) / (scale + 1e-30);
            if (err > worst) worst = err;
        }
    }
    fprintf(stderr, "\n  weights = \"%s\", %d threads: worst |error| / sum|w x| = %.2e\n", mode, threads, worst);
    CU_ASSERT(worst < 1e-5);
    g_bi->weight_release(be, &tw);
    CU_ASSERT_PTR_NULL(tw.extra);
    g_bi->buffer_free(be, bd);
    g_bi->buffer_free(be, bx);
    g_bi->buffer_free(be, bw);
    g_bi->destroy(be);
}

static void test_exact(void) {
    if (g_plugin) check_mode("exact", 2);
}
static void test_bf16(void) {
    if (g_plugin) check_mode("bf16", 2);
}
static void test_s8(void) {
    if (!g_plugin) return;
    check_mode("s8", 1);
    check_mode("s8", 2);
}

int main(void) {
    static const llmh_test_case cases[] = {{"bad options refused", test_bad_options},
                                           {"device description", test_device_info},
                                           {"weights = exact", test_exact},
                                           {"weights = bf16", test_bf16},
                                           {"weights = s8", test_s8},
                                           {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"onednn options", cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, 1);
}

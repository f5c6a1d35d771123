/* conformance-main.c — the backend conformance suite: every backend plugin
 * the registry finds (or only $LLMH_CONFORMANCE_BACKEND) gets one CUnit suite
 * that checks each op it claims through supports() against scalar references
 * written here, then runs the llama.cpp reference models end to end.
 *
 * A vendor runs it on their own plugin with
 *   LLMH_PLUGIN_PATH=/dir/of/plugin LLMH_CONFORMANCE_BACKEND=name test-conformance
 * A backend that cannot be created (no device) or that refuses a model
 * (LLMH_ERR_UNSUPPORTED: ops it does not claim) is reported as skipped with
 * the reason, never failed. Tolerances are documented next to each check and
 * in docs/plugin-guide.md ("Backend conformance suite").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

cf_backend *cf_cur;
static cf_backend *g_backends;
static size_t g_n_backends, g_next;
static llmh_registry *g_reg;
static llmh_plugin **g_plugins;
static size_t g_n_plugins;

/* ------------------------------------------------------------------------ */
/* Randoms                                                                    */
/* ------------------------------------------------------------------------ */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

void cf_seed(uint64_t s) { g_rng = s * 0x9e3779b97f4a7c15ull + 1; }

uint32_t cf_randu(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

float cf_randf(void) { return (float)((cf_randu() & 0xffffff) / 8388608.0 - 1.0); }

static void put_f16(uint8_t *p, float v) {
    uint16_t h = llmh_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

void cf_random_weights(llmh_dtype type, uint8_t *dst, int64_t n) {
    int64_t bs = llmh_dtype_block_size(type);
    size_t ts = llmh_dtype_type_size(type);
    float *tmp = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) tmp[i] = cf_randf();
    if (llmh_quantize(type, tmp, dst, n) == LLMH_OK) {
        free(tmp);
        return;
    }
    free(tmp);
    /* K-quants: random levels and sub-scales, small super-block scales */
    int64_t nb = n / bs;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = dst + (size_t)b * ts;
        for (size_t i = 0; i < ts; i++) blk[i] = (uint8_t)cf_randu();
        float d = 0.002f + 0.008f * (cf_randf() + 1.0f) / 2, dm = 0.001f + 0.004f * (cf_randf() + 1.0f) / 2;
        switch (type) {
        case LLMH_DTYPE_Q2_K: put_f16(blk + 80, d); put_f16(blk + 82, dm); break;
        case LLMH_DTYPE_Q3_K: put_f16(blk + 108, d); break;
        case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: put_f16(blk, d); put_f16(blk + 2, dm); break;
        case LLMH_DTYPE_Q6_K: put_f16(blk + 208, d); break;
        default: break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                    */
/* ------------------------------------------------------------------------ */
int64_t cf_nel(const cf_tensor *t) { return t->t.ne[0] * t->t.ne[1] * t->t.ne[2] * t->t.ne[3]; }

cf_tensor *cf_new(llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, size_t row_pad) {
    cf_backend *b = cf_cur;
    cf_tensor *t = calloc(1, sizeof *t);
    size_t ts = llmh_dtype_type_size(type);
    int64_t bs = llmh_dtype_block_size(type);
    t->t.struct_size = sizeof(llmh_tensor);
    t->t.type = type;
    t->t.n_dims = ne3 > 1 ? 4 : ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
    t->t.ne[0] = ne0;
    t->t.ne[1] = ne1;
    t->t.ne[2] = ne2;
    t->t.ne[3] = ne3;
    t->t.nb[0] = ts;
    t->t.nb[1] = ts * (size_t)(ne0 / bs) + row_pad;
    t->t.nb[2] = t->t.nb[1] * (size_t)ne1;
    t->t.nb[3] = t->t.nb[2] * (size_t)ne2;
    t->size = t->t.nb[3] * (size_t)ne3;
    if (b->bi->buffer_alloc(b->be, t->size, LLMH_BUFFER_COMPUTE, &t->buf) != LLMH_OK) {
        fprintf(stderr, "  [%s] buffer_alloc(%zu): %s\n", b->name, t->size, llmh_last_error());
        free(t);
        return NULL;
    }
    t->t.buffer = t->buf;
    t->t.data = b->bi->buffer_host_ptr ? b->bi->buffer_host_ptr(b->be, t->buf) : NULL;
    /* deterministic contents, also in the padding */
    uint8_t *junk = malloc(t->size ? t->size : 1);
    memset(junk, 0x7f, t->size);
    b->bi->buffer_write(b->be, t->buf, 0, junk, t->size);
    free(junk);
    return t;
}

void cf_free(cf_tensor *t) {
    if (!t) return;
    cf_cur->bi->buffer_free(cf_cur->be, t->buf);
    free(t);
}

static size_t off_of(const cf_tensor *t, int64_t i) {
    int64_t i0 = i % t->t.ne[0], r = i / t->t.ne[0];
    int64_t i1 = r % t->t.ne[1], i2 = (r / t->t.ne[1]) % t->t.ne[2], i3 = r / (t->t.ne[1] * t->t.ne[2]);
    return (size_t)i0 * t->t.nb[0] + (size_t)i1 * t->t.nb[1] + (size_t)i2 * t->t.nb[2] + (size_t)i3 * t->t.nb[3];
}

static uint8_t *read_all(cf_tensor *t) {
    uint8_t *img = malloc(t->size ? t->size : 1);
    if (cf_cur->bi->buffer_read(cf_cur->be, t->buf, 0, img, t->size) != LLMH_OK) memset(img, 0, t->size);
    return img;
}

void cf_put(cf_tensor *t, const float *v) {
    uint8_t *img = read_all(t);
    int64_t n = cf_nel(t);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = img + off_of(t, i);
        uint16_t h;
        switch (t->t.type) {
        case LLMH_DTYPE_F16: h = llmh_fp32_to_fp16(v[i]); memcpy(p, &h, 2); break;
        case LLMH_DTYPE_BF16: h = llmh_fp32_to_bf16(v[i]); memcpy(p, &h, 2); break;
        default: memcpy(p, &v[i], 4); break;
        }
    }
    cf_cur->bi->buffer_write(cf_cur->be, t->buf, 0, img, t->size);
    free(img);
}

void cf_put_i32(cf_tensor *t, const int32_t *v) {
    uint8_t *img = read_all(t);
    for (int64_t i = 0; i < cf_nel(t); i++) memcpy(img + off_of(t, i), &v[i], 4);
    cf_cur->bi->buffer_write(cf_cur->be, t->buf, 0, img, t->size);
    free(img);
}

void cf_put_rows(cf_tensor *t, const uint8_t *src) {
    uint8_t *img = read_all(t);
    size_t row = llmh_dtype_type_size(t->t.type) * (size_t)(t->t.ne[0] / llmh_dtype_block_size(t->t.type));
    int64_t rows = t->t.ne[1] * t->t.ne[2] * t->t.ne[3];
    for (int64_t r = 0; r < rows; r++) {
        int64_t i1 = r % t->t.ne[1], i2 = (r / t->t.ne[1]) % t->t.ne[2], i3 = r / (t->t.ne[1] * t->t.ne[2]);
        memcpy(img + (size_t)i1 * t->t.nb[1] + (size_t)i2 * t->t.nb[2] + (size_t)i3 * t->t.nb[3],
               src + (size_t)r * row, row);
    }
    cf_cur->bi->buffer_write(cf_cur->be, t->buf, 0, img, t->size);
    free(img);
}

void cf_get(cf_tensor *t, float *v) {
    uint8_t *img = read_all(t);
    for (int64_t i = 0; i < cf_nel(t); i++) {
        const uint8_t *p = img + off_of(t, i);
        uint16_t h;
        switch (t->t.type) {
        case LLMH_DTYPE_F16: memcpy(&h, p, 2); v[i] = llmh_fp16_to_fp32(h); break;
        case LLMH_DTYPE_BF16: memcpy(&h, p, 2); v[i] = llmh_bf16_to_fp32(h); break;
        default: memcpy(&v[i], p, 4); break;
        }
    }
    free(img);
}

llmh_status cf_run(llmh_op op, cf_tensor *dst, cf_tensor *s0, cf_tensor *s1, cf_tensor *s2, const int32_t *ip,
                   const float *fp) {
    llmh_node nd;
    memset(&nd, 0, sizeof nd);
    nd.struct_size = sizeof nd;
    nd.op = op;
    nd.dst = &dst->t;
    nd.src[0] = s0 ? &s0->t : NULL;
    nd.src[1] = s1 ? &s1->t : NULL;
    nd.src[2] = s2 ? &s2->t : NULL;
    for (int i = 0; i < LLMH_MAX_PARAMS; i++) {
        nd.ip[i] = ip ? ip[i] : 0;
        nd.fp[i] = fp ? fp[i] : 0.0f;
    }
    llmh_graph g = {sizeof g, 1, &nd};
    llmh_status st = cf_cur->bi->graph_compute(cf_cur->be, &g);
    if (st != LLMH_OK) fprintf(stderr, "  [%s] graph_compute: %s\n", cf_cur->name, llmh_last_error());
    return st;
}

bool cf_supports(llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    return cf_cur && cf_cur->be && cf_cur->bi->supports(cf_cur->be, op, t0, t1);
}

bool cf_close(const char *what, const float *got, const double *want, const double *scale, int64_t n,
              double abs_tol, double rel_tol) {
    int64_t worst = -1;
    double worst_excess = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double s = scale ? scale[i] : fabs(want[i]);
        double err = fabs((double)got[i] - want[i]);
        if (!(err == err) || isinf(got[i])) err = INFINITY;
        if (err > max_err) max_err = err;
        double excess = err - (abs_tol + rel_tol * s);
        if (excess > 0 && (worst < 0 || excess > worst_excess)) {
            worst = i;
            worst_excess = excess;
        }
    }
    if (worst >= 0) {
        fprintf(stderr, "  [%s] %s: element %lld: got %.8g, want %.8g (tolerance %.3g + %.3g * %.4g)\n",
                cf_cur->name, what, (long long)worst, got[worst], want[worst], abs_tol, rel_tol,
                scale ? scale[worst] : fabs(want[worst]));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Capabilities                                                               */
/* ------------------------------------------------------------------------ */
static const char *op_names[LLMH_OP_COUNT] = {"none", "get_rows", "mul_mat", "add", "mul", "scale", "rms_norm",
                                              "rope", "swiglu", "softmax", "cpy", "attention", "silu", "gelu",
                                              "lora"};

void cf_test_info(void) {
    cf_backend *b = cf_cur;
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    if (!b->be) {
        fprintf(stderr, "\n  [%s] SKIPPED: %s\n", b->name, b->skip_reason);
        return;
    }
    int32_t nd = b->bi->device_count(b->state);
    CU_ASSERT(nd >= 1);
    llmh_device_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CU_ASSERT_EQUAL(b->bi->device_info(b->state, 0, &info), LLMH_OK);
    CU_ASSERT(memchr(info.name, 0, sizeof info.name) != NULL);
    CU_ASSERT(memchr(info.description, 0, sizeof info.description) != NULL);
    /* an index past the last device is an error, not a crash */
    llmh_device_info bad;
    memset(&bad, 0, sizeof bad);
    bad.struct_size = sizeof bad;
    CU_ASSERT(b->bi->device_info(b->state, nd, &bad) != LLMH_OK);
    fprintf(stderr, "\n  [%s] device: %s | %s\n  [%s] claims:", b->name, info.name, info.description, b->name);
    static const llmh_dtype types[] = {LLMH_DTYPE_F32, LLMH_DTYPE_F16, LLMH_DTYPE_BF16, LLMH_DTYPE_Q4_0,
                                       LLMH_DTYPE_Q4_1, LLMH_DTYPE_Q5_0, LLMH_DTYPE_Q5_1, LLMH_DTYPE_Q8_0,
                                       LLMH_DTYPE_Q2_K, LLMH_DTYPE_Q3_K, LLMH_DTYPE_Q4_K, LLMH_DTYPE_Q5_K,
                                       LLMH_DTYPE_Q6_K};
    for (int op = 1; op < LLMH_OP_COUNT; op++) {
        llmh_dtype t1 = op == LLMH_OP_GET_ROWS || op == LLMH_OP_ROPE ? LLMH_DTYPE_I32 : LLMH_DTYPE_F32;
        fprintf(stderr, " %s(", op_names[op]);
        int any = 0;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            llmh_dtype t = types[i];
            int ok = op == LLMH_OP_CPY || op == LLMH_OP_ATTENTION
                         ? b->bi->supports(b->be, (llmh_op)op, LLMH_DTYPE_F32, t)
                         : b->bi->supports(b->be, (llmh_op)op, t, t1);
            if (ok) fprintf(stderr, "%s%s", any++ ? "," : "", llmh_dtype_name(t));
        }
        fprintf(stderr, ")");
    }
    fprintf(stderr, "\n");
    /* an unknown op is never claimed */
    CU_ASSERT_EQUAL(b->bi->supports(b->be, LLMH_OP_COUNT, LLMH_DTYPE_F32, LLMH_DTYPE_F32), 0);
}

/* ------------------------------------------------------------------------ */
/* Suites: one per backend; each suite's init selects the next backend        */
/* ------------------------------------------------------------------------ */
static int suite_init(void) {
    cf_cur = g_next < g_n_backends ? &g_backends[g_next] : NULL;
    g_next++;
    return 0;
}

static const llmh_test_case backend_cases[] = {
    {"capabilities", cf_test_info},
    {"add, mul, scale, silu, gelu, swiglu", cf_test_elementwise},
    {"rms_norm, softmax", cf_test_rms_softmax},
    {"rope", cf_test_rope},
    {"cpy", cf_test_cpy},
    {"get_rows", cf_test_get_rows},
    {"mul_mat f32/f16/bf16", cf_test_mul_mat_float},
    {"mul_mat block types", cf_test_mul_mat_quant},
    {"attention", cf_test_attention},
    {"lora (f32/f16/bf16 adapters, gates, fused nodes)", cf_test_lora},
    {"reference models end to end", cf_test_end_to_end},
    {NULL, NULL}};

static const llmh_test_case core_cases[] = {{"model refused for a missing op", cf_test_refusal}, {NULL, NULL}};

static void open_backends(void) {
    const char *only = getenv("LLMH_CONFORMANCE_BACKEND");
    if (llmh_registry_create(&g_reg) != LLMH_OK || llmh_registry_scan(g_reg) != LLMH_OK) {
        fprintf(stderr, "registry: %s\n", llmh_last_error());
        return;
    }
    if (llmh_registry_get_all(g_reg, LLMH_PLUGIN_BACKEND, &g_plugins, &g_n_plugins) != LLMH_OK) {
        fprintf(stderr, "registry_get_all: %s\n", llmh_last_error());
        return;
    }
    g_backends = calloc(g_n_plugins ? g_n_plugins : 1, sizeof *g_backends);
    for (size_t i = 0; i < g_n_plugins; i++) {
        const llmh_plugin_desc *d = llmh_plugin_descriptor(g_plugins[i]);
        if (only && *only && strcmp(only, d->name) != 0) continue;
        cf_backend *b = &g_backends[g_n_backends++];
        b->plugin = g_plugins[i];
        b->name = d->name;
        b->bi = llmh_plugin_iface(g_plugins[i]);
        b->state = llmh_plugin_state(g_plugins[i]);
        if (b->bi->device_count(b->state) <= 0) {
            snprintf(b->skip_reason, sizeof b->skip_reason, "device_count() is 0: no device");
            continue;
        }
        llmh_backend_params p = {sizeof p, -1, 2, NULL};
        if (b->bi->create(b->state, &p, &b->be) != LLMH_OK) {
            snprintf(b->skip_reason, sizeof b->skip_reason, "create() failed: %s", llmh_last_error());
            b->be = NULL;
        }
    }
    if (only && *only && g_n_backends == 0)
        fprintf(stderr, "LLMH_CONFORMANCE_BACKEND=%s: no backend plugin of that name was found\n", only);
}

static void close_backends(void) {
    for (size_t i = 0; i < g_n_backends; i++)
        if (g_backends[i].be) g_backends[i].bi->destroy(g_backends[i].be);
    for (size_t i = 0; i < g_n_plugins; i++) llmh_plugin_release(g_plugins[i]);
    free(g_plugins);
    free(g_backends);
    llmh_registry_free(g_reg);
}

int main(void) {
    open_backends();
    const char *only = getenv("LLMH_CONFORMANCE_BACKEND");
    if (g_n_backends == 0) {
        fprintf(stderr, "no backend plugins found (LLMH_PLUGIN_PATH=%s)\n", getenv("LLMH_PLUGIN_PATH"));
        close_backends();
        return 1;
    }
    size_t n = g_n_backends + 1;
    llmh_test_suite *suites = calloc(n, sizeof *suites);
    char (*names)[96] = calloc(n, sizeof *names);
    for (size_t i = 0; i < g_n_backends; i++) {
        snprintf(names[i], sizeof names[i], "backend %s", g_backends[i].name);
        suites[i] = (llmh_test_suite){names[i], backend_cases, suite_init, NULL};
    }
    /* the core's refusal check runs once, not per backend */
    size_t ns = g_n_backends;
    if (!(only && *only)) suites[ns++] = (llmh_test_suite){"core refuses what a backend lacks", core_cases, NULL, NULL};
    int rc = llmh_test_main(suites, ns);
    free(suites);
    free(names);
    close_backends();
    return rc;
}

/* matmul-bench.c — MUL_MAT micro-benchmark for the cpu backend (built, not
 * run by ctest).
 *
 *   matmul-bench [-t TYPES] [-j THREADS] [-k KERNELS] [-n COLS] [-s SECONDS] [-m]
 *     -t q8_0,q4_0,...   weight types (default q8_0,q4_0,q4_k,q6_k,f16)
 *     -j 1,2             thread counts (default 1,2)
 *     -k auto|scalar|avx2|avx512
 *     -n 1,128           src1 columns: 1 = decode, 128 = prefill (default 1,128)
 *     -s 0.5             seconds per measurement
 *     -c                 cache-resident: time one copy of each matrix
 *                        (kernel speed without DRAM limits)
 *     -m                 also time a whole Qwen2.5-0.5B-shaped stack of
 *                        matmuls (24 layers + output) per token
 *
 * Each shape is timed over several copies of the weight matrix totalling
 * >= 256 MiB, visited in turn, so weights stream from DRAM as in a real
 * model instead of sitting in the L3 cache. GB/s counts weight bytes read
 * per second (once per call, whatever the column count).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend-util.h"

typedef struct shape {
    const char *name;
    int64_t k, m;
} shape;

static const shape shapes[] = {
    {"attn_q/o  [896 x 896]", 896, 896},
    {"ffn_up    [896 x 4864]", 896, 4864},
    {"ffn_down  [4864 x 896]", 4864, 896},
    {"output    [896 x 151936]", 896, 151936},
    {"square    [4096 x 4096]", 4096, 4096},
    {"small     [1024 x 256]", 1024, 256},
};

static llmh_dtype parse_type(const char *s) {
    for (int t = 0; t < LLMH_DTYPE_COUNT; t++)
        if (strcmp(llmh_dtype_name((llmh_dtype)t), s) == 0) return (llmh_dtype)t;
    return LLMH_DTYPE_COUNT;
}

static int parse_list(const char *s, char items[][16], int cap) {
    int n = 0;
    while (*s && n < cap) {
        size_t len = strcspn(s, ",");
        snprintf(items[n++], 16, "%.*s", (int)len, s);
        s += len;
        if (*s == ',') s++;
    }
    return n;
}

typedef struct mats {
    bu_tensor **w;
    int n;
} mats;

/* Fill one matrix with random weights, then copy it to the others. */
static int make_mats(bu_plugin *p, llmh_backend *be, llmh_dtype t, int64_t k, int64_t m, size_t min_total,
                     mats *out) {
    bu_tensor *first = bu_tensor_new(p, be, t, k, m, 1, 1);
    if (!first) return -1;
    size_t bytes = bu_tensor_bytes(&first->t);
    int n = (int)((min_total + bytes - 1) / bytes);
    if (n < 1) n = 1;
    out->w = calloc((size_t)n, sizeof *out->w);
    out->n = n;
    out->w[0] = first;
    /* random rows in 1 MiB-ish pieces, repeated */
    uint64_t seed = 42;
    int64_t piece_rows = (int64_t)((1u << 20) / first->t.nb[1]) + 1;
    if (piece_rows > m) piece_rows = m;
    bu_random_weights(t, first->t.data, k * piece_rows, &seed);
    size_t piece = (size_t)piece_rows * first->t.nb[1];
    for (size_t off = piece; off < bytes; off += piece)
        memcpy((uint8_t *)first->t.data + off, first->t.data, off + piece <= bytes ? piece : bytes - off);
    for (int i = 1; i < n; i++) {
        out->w[i] = bu_tensor_new(p, be, t, k, m, 1, 1);
        if (!out->w[i]) return -1;
        memcpy(out->w[i]->t.data, first->t.data, bytes);
    }
    for (int i = 0; i < n; i++)
        if (p->be->weight_prepare && p->be->weight_prepare(be, &out->w[i]->t) != LLMH_OK) return -1;
    return 0;
}

static void free_mats(bu_plugin *p, llmh_backend *be, mats *ms) {
    for (int i = 0; i < ms->n; i++) {
        if (p->be->weight_release) p->be->weight_release(be, &ms->w[i]->t);
        bu_tensor_free(p, be, ms->w[i]);
    }
    free(ms->w);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Returns wall seconds per call; *cpu_out = process CPU seconds per call
 * (all threads), which shows kernel speed when the machine is shared. */
static double time_mm(bu_plugin *p, llmh_backend *be, mats *ms, bu_tensor *x, bu_tensor *d, double secs,
                      int *calls_out, double *cpu_out) {
    llmh_node nd = {sizeof nd, LLMH_OP_MUL_MAT, &d->t, {NULL, &x->t, NULL, NULL}, {0}, {0}};
    llmh_graph g = {sizeof g, 1, &nd};
    /* warm-up */
    nd.src[0] = &ms->w[0]->t;
    p->be->graph_compute(be, &g);
    int calls = 0;
    double t0 = bu_now(), t1, c0 = cpu_now();
    do {
        nd.src[0] = &ms->w[calls % ms->n]->t;
        if (p->be->graph_compute(be, &g) != LLMH_OK) {
            fprintf(stderr, "graph_compute failed: %s\n", llmh_last_error());
            return -1;
        }
        calls++;
        t1 = bu_now();
    } while (t1 - t0 < secs || calls < 3);
    *calls_out = calls;
    *cpu_out = (cpu_now() - c0) / calls;
    return (t1 - t0) / calls;
}

/* One token through Qwen2.5-0.5B's matmuls: 24 x (q, k, v, o, gate, up,
 * down) + output, every weight distinct (as in the real model). */
static void model_bench(bu_plugin *p, llmh_backend *be, llmh_dtype t, int64_t ncols, double secs) {
    static const struct { int64_t k, m; } layer[] = {{896, 896}, {896, 128}, {896, 128}, {896, 896},
                                                     {896, 4864}, {896, 4864}, {4864, 896}};
    enum { NL = 24, NM = 7 };
    bu_tensor *w[NL * NM + 1];
    size_t total = 0;
    uint64_t seed = 1;
    for (int l = 0; l < NL; l++)
        for (int j = 0; j < NM; j++) {
            bu_tensor *m = bu_tensor_new(p, be, t, layer[j].k, layer[j].m, 1, 1);
            if (!m) { fprintf(stderr, "out of memory\n"); return; }
            if (l == 0) bu_random_weights(t, m->t.data, layer[j].k * layer[j].m, &seed);
            else memcpy(m->t.data, w[j]->t.data, bu_tensor_bytes(&m->t));
            w[l * NM + j] = m;
            total += bu_tensor_bytes(&m->t);
        }
    bu_tensor *out = bu_tensor_new(p, be, t, 896, 151936, 1, 1);
    if (!out) { fprintf(stderr, "out of memory\n"); return; }
    bu_random_weights(t, out->t.data, 896 * 2048, &seed);
    size_t ob = bu_tensor_bytes(&out->t), piece = (size_t)2048 * out->t.nb[1];
    for (size_t off = piece; off < ob; off += piece)
        memcpy((uint8_t *)out->t.data + off, out->t.data, off + piece <= ob ? piece : ob - off);
    w[NL * NM] = out;
    total += ob;
    for (int i = 0; i < NL * NM + 1; i++)
        if (p->be->weight_prepare) p->be->weight_prepare(be, &w[i]->t);
    bu_tensor *x896 = bu_tensor_new(p, be, LLMH_DTYPE_F32, 896, ncols, 1, 1);
    bu_tensor *x4864 = bu_tensor_new(p, be, LLMH_DTYPE_F32, 4864, ncols, 1, 1);
    bu_tensor *y = bu_tensor_new(p, be, LLMH_DTYPE_F32, 151936, ncols, 1, 1);
    uint64_t s = 3;
    for (int64_t i = 0; i < 896 * ncols; i++) ((float *)x896->t.data)[i] = bu_randf(&s);
    for (int64_t i = 0; i < 4864 * ncols; i++) ((float *)x4864->t.data)[i] = bu_randf(&s);
    llmh_node nodes[NL * NM + 1];
    llmh_tensor ys[NL * NM + 1];
    for (int i = 0; i < NL * NM + 1; i++) {
        int64_t k = w[i]->t.ne[0], m = w[i]->t.ne[1];
        ys[i] = y->t;
        ys[i].ne[0] = m;
        ys[i].nb[1] = (size_t)m * sizeof(float);
        ys[i].nb[2] = ys[i].nb[3] = ys[i].nb[1] * (size_t)ncols;
        llmh_node nd = {sizeof nd, LLMH_OP_MUL_MAT, &ys[i], {&w[i]->t, k == 896 ? &x896->t : &x4864->t, NULL, NULL},
                        {0}, {0}};
        nodes[i] = nd;
    }
    llmh_graph g = {sizeof g, NL * NM + 1, nodes};
    p->be->graph_compute(be, &g);
    int calls = 0;
    double t0 = bu_now(), t1;
    do {
        p->be->graph_compute(be, &g);
        calls++;
        t1 = bu_now();
    } while (t1 - t0 < secs || calls < 3);
    double per = (t1 - t0) / calls;
    if (ncols == 1)
        printf("  model %-5s decode: %.2f ms/token  %.1f tok/s  %.1f GB/s (weights %.0f MB)\n",
               llmh_dtype_name(t), per * 1e3, 1.0 / per, (double)total / per / 1e9, (double)total / 1e6);
    else
        printf("  model %-5s prefill %lld: %.1f ms  %.1f tok/s (matmuls only)\n", llmh_dtype_name(t),
               (long long)ncols, per * 1e3, (double)ncols / per);
    for (int i = 0; i < NL * NM + 1; i++) {
        if (p->be->weight_release) p->be->weight_release(be, &w[i]->t);
        bu_tensor_free(p, be, w[i]);
    }
    bu_tensor_free(p, be, x896);
    bu_tensor_free(p, be, x4864);
    bu_tensor_free(p, be, y);
}

int main(int argc, char **argv) {
    const char *types_s = "q8_0,q4_0,q4_k,q6_k,f16", *threads_s = "1,2", *cols_s = "1,128";
    const char *kernels = NULL;
    double secs = 0.5;
    int model = 0, cached = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) types_s = argv[++i];
        else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) threads_s = argv[++i];
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) kernels = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) cols_s = argv[++i];
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) secs = atof(argv[++i]);
        else if (strcmp(argv[i], "-m") == 0) model = 1;
        else if (strcmp(argv[i], "-c") == 0) cached = 1;
        else {
            fprintf(stderr, "usage: %s [-t types] [-j threads] [-k kernels] [-n cols] [-s seconds] [-m]\n", argv[0]);
            return 2;
        }
    }
    bu_plugin p;
    if (bu_plugin_load(&p) != 0) {
        fprintf(stderr, "cannot load the cpu backend plugin (set LLMH_PLUGIN_PATH)\n");
        return 1;
    }
    char types[16][16], threads[8][16], cols[8][16];
    int nt = parse_list(types_s, types, 16), nj = parse_list(threads_s, threads, 8), nc = parse_list(cols_s, cols, 8);
    for (int j = 0; j < nj; j++) {
        int th = atoi(threads[j]);
        llmh_backend *be = bu_backend_create(&p, kernels, th);
        if (!be) {
            fprintf(stderr, "create failed: %s\n", llmh_last_error());
            return 1;
        }
        llmh_device_info info = {.struct_size = sizeof info};
        p.be->device_info(p.state, 0, &info);
        printf("== %s | threads %d | kernels %s | %s\n", info.name, th, kernels ? kernels : "auto", info.description);
        for (int ti = 0; ti < nt; ti++) {
            llmh_dtype t = parse_type(types[ti]);
            if (t == LLMH_DTYPE_COUNT || !p.be->supports(be, LLMH_OP_MUL_MAT, t, LLMH_DTYPE_F32)) {
                fprintf(stderr, "skipping unsupported type %s\n", types[ti]);
                continue;
            }
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                mats ms;
                if (shapes[si].k % llmh_dtype_block_size(t) != 0) continue; /* e.g. k-quants need K % 256 == 0 */
                if (make_mats(&p, be, t, shapes[si].k, shapes[si].m, cached ? 0 : (size_t)256 << 20, &ms) != 0) {
                    fprintf(stderr, "out of memory\n");
                    return 1;
                }
                size_t bytes = bu_tensor_bytes(&ms.w[0]->t);
                for (int ci = 0; ci < nc; ci++) {
                    int64_t n = atoll(cols[ci]);
                    bu_tensor *x = bu_tensor_new(&p, be, LLMH_DTYPE_F32, shapes[si].k, n, 1, 1);
                    bu_tensor *d = bu_tensor_new(&p, be, LLMH_DTYPE_F32, shapes[si].m, n, 1, 1);
                    uint64_t s = 9;
                    for (int64_t i = 0; i < shapes[si].k * n; i++) ((float *)x->t.data)[i] = bu_randf(&s);
                    int calls = 0;
                    double cpu = 0;
                    double per = time_mm(&p, be, &ms, x, d, secs, &calls, &cpu);
                    double flops = 2.0 * (double)shapes[si].k * (double)shapes[si].m * (double)n;
                    printf("  %-5s %-26s N=%-4lld %9.3f ms  %7.2f GB/s  %8.1f GFLOP/s  | per CPU-second: %6.2f GB/s %7.1f GFLOP/s (%d calls)\n",
                           llmh_dtype_name(t), shapes[si].name, (long long)n, per * 1e3, (double)bytes / per / 1e9,
                           flops / per / 1e9, (double)bytes / cpu / 1e9, flops / cpu / 1e9, calls);
                    fflush(stdout);
                    bu_tensor_free(&p, be, x);
                    bu_tensor_free(&p, be, d);
                }
                free_mats(&p, be, &ms);
            }
            if (model && 896 % llmh_dtype_block_size(t) == 0)
                for (int ci = 0; ci < nc; ci++) model_bench(&p, be, t, atoll(cols[ci]), secs * 4);
        }
        p.be->destroy(be);
    }
    bu_plugin_unload(&p);
    return 0;
}

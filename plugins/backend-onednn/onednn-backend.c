/* onednn-backend.c — the "onednn" backend plugin: descriptor, device,
 * options, host-memory buffers, node validation and graph execution.
 *
 * Options ([backend.options] keys / llmh_backend_params.options):
 *   weights = "exact" | "bf16" | "s8"   how float weights are stored for
 *             oneDNN (default "exact": the SDK's normative precision; "bf16"
 *             rounds F32/F16 weights to BF16, "s8" quantizes float weights
 *             per row and activations per token; both lossy, for speed, see
 *             docs/backend-onednn.md)
 * The environment variable LLMH_ONEDNN_WEIGHTS sets the same when the option
 * is absent. Threads: params->n_threads (<= 0: all online CPUs), applied to
 * oneDNN's OpenMP runtime on every graph_compute (omp_set_num_threads acts
 * per calling thread).
 */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onednn-impl.h"
#include "onednn-internal.h"

#define OD_MAX_THREADS 256

const char *od_op_name(llmh_op op) {
    static const char *names[] = {"NONE", "GET_ROWS", "MUL_MAT", "ADD", "MUL", "SCALE",
                                  "RMS_NORM", "ROPE", "SWIGLU", "SOFTMAX", "CPY", "ATTENTION",
                                  "SILU", "GELU", "LORA"};
    if ((unsigned)op < sizeof names / sizeof names[0]) return names[op];
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Plugin state and device                                                    */
/* ------------------------------------------------------------------------ */
static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "generic";
    }
}

static int32_t od_probe(const llmh_host_api *host) {
    dnnl_engine_t eng = NULL;
    if (dnnl_engine_get_count(dnnl_cpu) == 0 || dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
        host->set_error("onednn backend: oneDNN has no CPU engine");
        return 0;
    }
    dnnl_engine_destroy(eng);
    return 40;
}

static llmh_status od_init(const llmh_host_api *host, void **state) {
    if (!host || host->struct_size < sizeof(llmh_host_api) || !host->alloc_aligned || !host->dequantize)
        return LLMH_ERR_ABI;
    od_state *st = host->alloc(sizeof *st);
    if (!st) {
        host->set_error("onednn backend: out of memory creating plugin state");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(st, 0, sizeof *st);
    st->host = host;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    snprintf(st->isa, sizeof st->isa, "%s", isa_name(isa));
    st->has_bf16 = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    const dnnl_version_t *v = dnnl_version();
    snprintf(st->version, sizeof st->version, "%d.%d.%d", v->major, v->minor, v->patch);
    switch (v->cpu_runtime) {
    case DNNL_RUNTIME_OMP: st->runtime = "OpenMP"; break;
    case DNNL_RUNTIME_TBB: st->runtime = "TBB"; break;
    case DNNL_RUNTIME_SEQ: st->runtime = "sequential"; break;
    case DNNL_RUNTIME_THREADPOOL: st->runtime = "threadpool"; break;
    default: st->runtime = "unknown"; break;
    }
    *state = st;
    return LLMH_OK;
}

static void od_fini(void *state) {
    od_state *st = state;
    if (st) st->host->free(st);
}

static int online_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > OD_MAX_THREADS ? OD_MAX_THREADS : n) : 1;
}

static int32_t od_device_count(void *state) {
    (void)state;
    return dnnl_engine_get_count(dnnl_cpu) > 0 ? 1 : 0;
}

static void cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                size_t n = strcspn(c, "\n");
                snprintf(buf, cap, "%.*s", (int)n, c);
            }
            break;
        }
    }
    fclose(f);
}

static llmh_status od_device_info(void *state, int32_t index, llmh_device_info *out) {
    od_state *st = state;
    if (!out || out->struct_size < sizeof(llmh_device_info)) {
        st->host->set_error("onednn backend: device_info: output struct missing or too small");
        return LLMH_ERR_INVALID_ARG;
    }
    if (index != 0 || od_device_count(state) == 0) {
        st->host->set_error("onednn backend: device index %d out of range (%d device)", (int)index,
                            (int)od_device_count(state));
        return LLMH_ERR_INVALID_ARG;
    }
    uint32_t ss = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = ss;
    cpu_model(out->name, sizeof out->name);
    snprintf(out->description, sizeof out->description, "oneDNN %s isa=%s%s threading=%s", st->version,
             st->isa, st->has_bf16 ? " bf16" : "", st->runtime);
    out->type = LLMH_DEVICE_CPU;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0) out->memory_total = (uint64_t)pages * (uint64_t)psz;
    if (avail > 0 && psz > 0) out->memory_free = (uint64_t)avail * (uint64_t)psz;
    out->max_threads = online_cpus();
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                   */
/* ------------------------------------------------------------------------ */
void od_fail(llmh_backend *be, llmh_status st, const char *fmt, ...) {
#pragma omp critical(od_fail)
    {
        if (!be->err_set) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(be->err_msg, sizeof be->err_msg, fmt, ap);
            va_end(ap);
            be->err_status = st;
            be->err_set = 1;
        }
    }
}

uint8_t *od_scratch(llmh_backend *be, size_t n) {
    if (n <= be->scratch_size) return be->scratch;
    size_t want = n + n / 4 + 4096;
    uint8_t *p = be->host->alloc_aligned(want, 64);
    if (!p) {
        be->host->set_error("onednn backend: cannot allocate %zu bytes of scratch", want);
        return NULL;
    }
    be->host->free(be->scratch);
    be->scratch = p;
    be->scratch_size = want;
    return p;
}

static int str_value(const llmh_value *v, char *buf, size_t cap) {
    if (v->type != LLMH_V_STRING || v->v.s.len == 0 || v->v.s.len >= cap) return 0;
    memcpy(buf, v->v.s.ptr, (size_t)v->v.s.len);
    buf[v->v.s.len] = 0;
    return 1;
}

static llmh_status set_wprec(llmh_backend *be, const char *w, const char *where) {
    if (strcmp(w, "exact") == 0 || strcmp(w, "auto") == 0) {
        be->wprec = OD_WPREC_EXACT;
    } else if (strcmp(w, "bf16") == 0) {
        if (!be->st->has_bf16)
            be->host->log(LLMH_LOG_WARN, OD_NAME,
                          "weights = \"bf16\" on a CPU without AVX-512 BF16 (isa %s): oneDNN emulates it, slowly",
                          be->st->isa);
        be->wprec = OD_WPREC_BF16;
    } else if (strcmp(w, "s8") == 0) {
        be->wprec = OD_WPREC_S8;
    } else {
        be->host->set_error("onednn backend: %s 'weights' = \"%s\" is not one of exact, bf16, s8", where, w);
        return LLMH_ERR_CONFIG;
    }
    return LLMH_OK;
}

static llmh_status parse_options(llmh_backend *be, const llmh_kv_list *opts) {
    const char *env = getenv("LLMH_ONEDNN_WEIGHTS");
    llmh_status rc;
    if (env && *env && (rc = set_wprec(be, env, "environment LLMH_ONEDNN_WEIGHTS:")) != LLMH_OK) return rc;
    if (!opts) return LLMH_OK;
    for (size_t i = 0; i < opts->n; i++) {
        const llmh_kv *kv = &opts->items[i];
        if (!kv->key) continue;
        if (strcmp(kv->key, "weights") == 0) {
            char buf[32];
            if (!str_value(&kv->value, buf, sizeof buf)) {
                be->host->set_error("onednn backend: option 'weights' must be the string \"exact\", \"bf16\" or \"s8\"");
                return LLMH_ERR_CONFIG;
            }
            if ((rc = set_wprec(be, buf, "option")) != LLMH_OK) return rc;
        } else if (strcmp(kv->key, "plugin") != 0 && strcmp(kv->key, "threads") != 0 &&
                   strcmp(kv->key, "device") != 0) {
            be->host->log(LLMH_LOG_WARN, OD_NAME, "ignoring unknown [backend] option '%s'", kv->key);
        }
    }
    return LLMH_OK;
}

static void od_destroy(llmh_backend *be);

static llmh_status od_create(void *state, const llmh_backend_params *params, llmh_backend **out) {
    od_state *st = state;
    const llmh_host_api *host = st->host;
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    if (params && params->struct_size < sizeof(llmh_backend_params)) {
        host->set_error("onednn backend: create: params struct too small (%u bytes)", params->struct_size);
        return LLMH_ERR_INVALID_ARG;
    }
    if (params && params->device > 0) {
        host->set_error("onednn backend: device %d does not exist (the onednn backend has 1 CPU device)",
                        (int)params->device);
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_backend *be = host->alloc(sizeof *be);
    if (!be) {
        host->set_error("onednn backend: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(be, 0, sizeof *be);
    be->st = st;
    be->host = host;
    llmh_status rc = parse_options(be, params ? params->options : NULL);
    if (rc != LLMH_OK) {
        host->free(be);
        return rc;
    }
    if (dnnl_engine_create(&be->engine, dnnl_cpu, 0) != dnnl_success) {
        host->set_error("onednn backend: dnnl_engine_create(cpu, 0) failed: no oneDNN CPU engine");
        host->free(be);
        return LLMH_ERR_BACKEND;
    }
    if (dnnl_stream_create(&be->stream, be->engine, dnnl_stream_default_flags) != dnnl_success) {
        host->set_error("onednn backend: dnnl_stream_create failed");
        dnnl_engine_destroy(be->engine);
        host->free(be);
        return LLMH_ERR_BACKEND;
    }
    be->vnni = od_vnni_available() && !(getenv("LLMH_ONEDNN_NO_VNNI") && *getenv("LLMH_ONEDNN_NO_VNNI"));
    int nt = params && params->n_threads > 0 ? params->n_threads : online_cpus();
    if (nt > OD_MAX_THREADS) nt = OD_MAX_THREADS;
    be->n_threads = nt;
    host->log(LLMH_LOG_INFO, OD_NAME, "oneDNN %s, isa %s, %d %s threads, weights %s", st->version, st->isa, nt,
              st->runtime, be->wprec == OD_WPREC_BF16 ? "bf16" : be->wprec == OD_WPREC_S8 ? "s8" : "exact");
    *out = be;
    return LLMH_OK;
}

static void od_destroy(llmh_backend *be) {
    if (!be) return;
    od_cache_clear(be);
    if (be->stream) dnnl_stream_destroy(be->stream);
    if (be->engine) dnnl_engine_destroy(be->engine);
    be->host->free(be->scratch);
    be->host->free(be);
}

/* ------------------------------------------------------------------------ */
/* Capabilities                                                               */
/* ------------------------------------------------------------------------ */
static int dequantizable(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16:
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1:
    case LLMH_DTYPE_Q8_0: case LLMH_DTYPE_Q8_1: case LLMH_DTYPE_Q2_K: case LLMH_DTYPE_Q3_K:
    case LLMH_DTYPE_Q4_K: case LLMH_DTYPE_Q5_K: case LLMH_DTYPE_Q6_K: case LLMH_DTYPE_Q8_K:
        return 1;
    default: return 0;
    }
}

int od_supported(const llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    (void)be;
    const llmh_dtype F = LLMH_DTYPE_F32;
    switch (op) {
    case LLMH_OP_NONE: return 1;
    case LLMH_OP_GET_ROWS: return dequantizable(t0) && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_MUL_MAT: return (od_float_type(t0) || od_quant_supported(t0) || od_kquant(t0)) && t1 == F;
    case LLMH_OP_ADD: case LLMH_OP_MUL: case LLMH_OP_SWIGLU: case LLMH_OP_SCALE:
    case LLMH_OP_RMS_NORM: case LLMH_OP_SOFTMAX: case LLMH_OP_SILU: case LLMH_OP_GELU:
        return t0 == F && t1 == F;
    case LLMH_OP_ROPE: return t0 == F && t1 == LLMH_DTYPE_I32;
    case LLMH_OP_CPY: return od_float_type(t0) && od_float_type(t1);
    case LLMH_OP_ATTENTION: return t0 == F && (t1 == F || t1 == LLMH_DTYPE_F16);
    case LLMH_OP_LORA: return (od_float_type(t0) || t0 == LLMH_DTYPE_Q8_0) && t1 == F;
    default: return 0;
    }
}

static int32_t od_supports(llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    return be ? od_supported(be, op, t0, t1) : 0;
}

/* ------------------------------------------------------------------------ */
/* Buffers (host memory)                                                      */
/* ------------------------------------------------------------------------ */
static llmh_status od_buffer_alloc(llmh_backend *be, size_t size, uint32_t usage, llmh_buffer **out) {
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    if (size > ((size_t)1 << 48)) {
        be->host->set_error("onednn backend: buffer of %zu bytes is too large", size);
        return LLMH_ERR_NO_MEMORY;
    }
    llmh_buffer *b = be->host->alloc(sizeof *b);
    if (b) b->data = be->host->alloc_aligned(size ? size : 64, 64);
    if (!b || !b->data) {
        be->host->free(b);
        be->host->set_error("onednn backend: cannot allocate a buffer of %zu bytes", size);
        return LLMH_ERR_NO_MEMORY;
    }
    b->size = size;
    b->owned = 1;
    b->usage = usage;
    *out = b;
    return LLMH_OK;
}

static llmh_status od_buffer_wrap_host(llmh_backend *be, void *host, size_t size, uint32_t usage,
                                       llmh_buffer **out) {
    if (!out || (!host && size)) {
        be->host->set_error("onednn backend: buffer_wrap_host: NULL memory");
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_buffer *b = be->host->alloc(sizeof *b);
    if (!b) {
        be->host->set_error("onednn backend: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    b->data = host;
    b->size = size;
    b->owned = 0;
    b->usage = usage;
    *out = b;
    return LLMH_OK;
}

static void od_buffer_free(llmh_backend *be, llmh_buffer *buf) {
    if (!buf) return;
    if (buf->owned) be->host->free(buf->data);
    be->host->free(buf);
}

static void *od_buffer_host_ptr(llmh_backend *be, llmh_buffer *buf) {
    (void)be;
    return buf ? buf->data : NULL;
}

static llmh_status od_buffer_write(llmh_backend *be, llmh_buffer *buf, size_t offset, const void *src, size_t n) {
    if (!buf || (!src && n) || offset > buf->size || n > buf->size - offset) {
        be->host->set_error("onednn backend: buffer_write of %zu bytes at offset %zu outside a %zu-byte buffer", n,
                            offset, buf ? buf->size : 0);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n) memmove(buf->data + offset, src, n);
    return LLMH_OK;
}

static llmh_status od_buffer_read(llmh_backend *be, llmh_buffer *buf, size_t offset, void *dst, size_t n) {
    if (!buf || (!dst && n) || offset > buf->size || n > buf->size - offset) {
        be->host->set_error("onednn backend: buffer_read of %zu bytes at offset %zu outside a %zu-byte buffer", n,
                            offset, buf ? buf->size : 0);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n) memmove(dst, buf->data + offset, n);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                 */
/* ------------------------------------------------------------------------ */
static llmh_status nfail(llmh_backend *be, size_t index, const llmh_node *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static llmh_status nfail(llmh_backend *be, size_t index, const llmh_node *n, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    be->host->set_error("onednn backend: node %zu (%s -> %s): %s", index, od_op_name(n->op),
                        n->dst && n->dst->name ? n->dst->name : "(unnamed)", msg);
    return LLMH_ERR_INVALID_ARG;
}

/* Shape positive, host-visible, whole blocks, inside its buffer when ours. */
static llmh_status check_view(llmh_backend *be, size_t index, const llmh_node *n, const char *role,
                              const llmh_tensor *t) {
    if (!t) return nfail(be, index, n, "%s is missing", role);
    if ((unsigned)t->type >= LLMH_DTYPE_COUNT || llmh_dtype_type_size(t->type) == 0)
        return nfail(be, index, n, "%s has unknown type id %d", role, (int)t->type);
    if (!t->data) return nfail(be, index, n, "%s is not host-visible (data is NULL)", role);
    int64_t bs = llmh_dtype_block_size(t->type);
    size_t last = 0;
    for (int d = 0; d < LLMH_MAX_DIMS; d++) {
        if (t->ne[d] <= 0 || t->ne[d] > ((int64_t)1 << 40))
            return nfail(be, index, n, "%s has bad ne[%d] = %lld", role, d, (long long)t->ne[d]);
        if (d == 0 && t->ne[0] % bs)
            return nfail(be, index, n, "%s: ne[0] = %lld is not a multiple of the %s block size %lld", role,
                         (long long)t->ne[0], llmh_dtype_name(t->type), (long long)bs);
        int64_t cnt = d == 0 ? t->ne[0] / bs : t->ne[d];
        if (cnt > 1) {
            if (t->nb[d] > ((size_t)1 << 46)) return nfail(be, index, n, "%s has bad nb[%d]", role, d);
            last += (size_t)(cnt - 1) * t->nb[d];
        }
    }
    size_t extent = last + llmh_dtype_type_size(t->type);
    if (t->buffer) {
        const llmh_buffer *b = t->buffer;
        const uint8_t *p = t->data;
        if (p < b->data || (size_t)(p - b->data) > b->size || extent > b->size - (size_t)(p - b->data))
            return nfail(be, index, n, "%s view (%zu bytes) lies outside its %zu-byte buffer", role, extent, b->size);
    }
    return LLMH_OK;
}

static int same_shape(const llmh_tensor *a, const llmh_tensor *b) {
    return a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3];
}

static int contiguous(const llmh_tensor *t) {
    size_t s = llmh_dtype_type_size(t->type);
    if (t->nb[0] != s) return 0;
    size_t expect = s * (size_t)(t->ne[0] / llmh_dtype_block_size(t->type));
    for (int d = 1; d < LLMH_MAX_DIMS; d++) {
        if (t->ne[d] > 1 && t->nb[d] != expect) return 0;
        expect *= (size_t)t->ne[d];
    }
    return 1;
}

static llmh_status validate(llmh_backend *be, const llmh_node *n, size_t index) {
    llmh_status rc;
    if (n->op == LLMH_OP_NONE) return LLMH_OK;
    if ((unsigned)n->op >= LLMH_OP_COUNT) {
        be->host->set_error("onednn backend: node %zu: unknown op %d", index, (int)n->op);
        return LLMH_ERR_UNSUPPORTED;
    }
    const llmh_tensor *d = n->dst, *a = n->src[0], *b = n->src[1], *c = n->src[2], *e = n->src[3];
    if ((rc = check_view(be, index, n, "dst", d)) || (rc = check_view(be, index, n, "src0", a))) return rc;
    if (b && (rc = check_view(be, index, n, "src1", b))) return rc;
    if (c && (rc = check_view(be, index, n, "src2", c))) return rc;
    if (e && (rc = check_view(be, index, n, "src3", e))) return rc;
    llmh_dtype t1 = b ? b->type : LLMH_DTYPE_F32;
    if (n->op == LLMH_OP_CPY) t1 = d->type;
    if (!od_supported(be, n->op, a->type, t1)) {
        be->host->set_error("onednn backend: node %zu: op %s is not supported for types %s, %s", index,
                            od_op_name(n->op), llmh_dtype_name(a->type), llmh_dtype_name(t1));
        return LLMH_ERR_UNSUPPORTED;
    }
    if (n->op != LLMH_OP_CPY && d->type != LLMH_DTYPE_F32)
        return nfail(be, index, n, "dst must be f32, not %s", llmh_dtype_name(d->type));
    /* f32 views are read as floats: keep them 4-byte aligned */
    const llmh_tensor *all[5] = {d, a, b, c, e};
    for (int i = 0; i < 5; i++) {
        const llmh_tensor *t = all[i];
        if (!t) continue;
        size_t al = t->type == LLMH_DTYPE_F32 || t->type == LLMH_DTYPE_I32 ? 4
                    : (t->type == LLMH_DTYPE_F16 || t->type == LLMH_DTYPE_BF16) ? 2 : 1;
        int bad = ((uintptr_t)t->data) % al != 0;
        for (int k = 0; k < LLMH_MAX_DIMS; k++) bad |= t->nb[k] % al != 0;
        if (bad) return nfail(be, index, n, "a %s view is not %zu-byte aligned", llmh_dtype_name(t->type), al);
    }
    switch (n->op) {
    case LLMH_OP_GET_ROWS:
        if (!b) return nfail(be, index, n, "src1 (row ids) is missing");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[0] || b->ne[1] * b->ne[2] * b->ne[3] != 1 ||
            d->ne[2] * d->ne[3] != 1)
            return nfail(be, index, n, "shapes: dst [%lld, %lld] from src0 [%lld, %lld] and %lld ids",
                         (long long)d->ne[0], (long long)d->ne[1], (long long)a->ne[0], (long long)a->ne[1],
                         (long long)b->ne[0]);
        if (a->nb[0] != llmh_dtype_type_size(a->type)) return nfail(be, index, n, "src0 rows must be contiguous");
        break;
    case LLMH_OP_MUL_MAT:
        if (!b) return nfail(be, index, n, "src1 is missing");
        if (a->ne[0] != b->ne[0] || d->ne[0] != a->ne[1] || d->ne[1] != b->ne[1] || d->ne[2] != b->ne[2] ||
            d->ne[3] != b->ne[3])
            return nfail(be, index, n, "shapes: src0 [%lld, %lld] x src1 [%lld, %lld] -> dst [%lld, %lld]",
                         (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1],
                         (long long)d->ne[0], (long long)d->ne[1]);
        if (b->ne[2] % a->ne[2] || b->ne[3] % a->ne[3])
            return nfail(be, index, n, "src0 batch dims (%lld, %lld) do not divide src1's (%lld, %lld)",
                         (long long)a->ne[2], (long long)a->ne[3], (long long)b->ne[2], (long long)b->ne[3]);
        if (a->nb[0] != llmh_dtype_type_size(a->type)) return nfail(be, index, n, "src0 rows must be contiguous");
        break;
    case LLMH_OP_ADD: case LLMH_OP_MUL:
        if (!b) return nfail(be, index, n, "src1 is missing");
        if (!same_shape(d, a)) return nfail(be, index, n, "dst and src0 shapes differ");
        for (int k = 0; k < LLMH_MAX_DIMS; k++)
            if (a->ne[k] % b->ne[k])
                return nfail(be, index, n, "src1 ne[%d] = %lld does not divide src0's %lld", k, (long long)b->ne[k],
                             (long long)a->ne[k]);
        break;
    case LLMH_OP_SWIGLU:
        if (!b || !same_shape(a, b) || !same_shape(a, d))
            return nfail(be, index, n, "src0, src1 and dst must have the same shape");
        break;
    case LLMH_OP_SCALE: case LLMH_OP_SOFTMAX: case LLMH_OP_SILU: case LLMH_OP_GELU:
        if (!same_shape(d, a)) return nfail(be, index, n, "dst and src0 shapes differ");
        break;
    case LLMH_OP_RMS_NORM:
        if (!same_shape(d, a)) return nfail(be, index, n, "dst and src0 shapes differ");
        if (b && (b->type != LLMH_DTYPE_F32 || b->ne[0] != a->ne[0]))
            return nfail(be, index, n, "weight src1 must be f32 [%lld]", (long long)a->ne[0]);
        break;
    case LLMH_OP_ROPE:
        if (!same_shape(d, a)) return nfail(be, index, n, "dst and src0 shapes differ");
        if (!b || b->ne[0] < a->ne[2])
            return nfail(be, index, n, "src1 must hold %lld I32 positions", (long long)a->ne[2]);
        if (n->ip[0] <= 0 || n->ip[0] > a->ne[0] || n->ip[0] % 2)
            return nfail(be, index, n, "n_rot %d must be even and in 2..%lld", n->ip[0], (long long)a->ne[0]);
        if (n->ip[1] != LLMH_ROPE_NORMAL && n->ip[1] != LLMH_ROPE_NEOX)
            return nfail(be, index, n, "unknown rope mode %d", n->ip[1]);
        if (c && (c->type != LLMH_DTYPE_F32 || c->ne[0] < n->ip[0] / 2))
            return nfail(be, index, n, "freq factors src2 must be f32 [%d]", n->ip[0] / 2);
        if (!(n->fp[0] > 0.0f)) return nfail(be, index, n, "freq_base must be > 0");
        break;
    case LLMH_OP_CPY:
        if (!same_shape(d, a) && !(d->ne[0] * d->ne[1] * d->ne[2] * d->ne[3] == a->ne[0] * a->ne[1] * a->ne[2] * a->ne[3] &&
                                   contiguous(d) && contiguous(a)))
            return nfail(be, index, n, "dst and src0 need the same shape (or both contiguous with equal counts)");
        break;
    case LLMH_OP_ATTENTION: {
        if (!b || !c) return nfail(be, index, n, "K (src1) and V (src2) are required");
        if (c->type != b->type) return nfail(be, index, n, "K and V must have the same type");
        int64_t D = a->ne[0], H = a->ne[1], T = a->ne[2];
        if (b->ne[0] != D || c->ne[0] != D || b->ne[1] != c->ne[1] || b->ne[2] != c->ne[2])
            return nfail(be, index, n, "K/V shapes do not match Q's head_dim or each other");
        if (H % b->ne[1]) return nfail(be, index, n, "n_head %lld is not a multiple of n_kv_head %lld",
                                       (long long)H, (long long)b->ne[1]);
        if (!same_shape(d, a)) return nfail(be, index, n, "dst and Q shapes differ");
        if (n->ip[0] < 0 || (int64_t)n->ip[0] + T > b->ne[2])
            return nfail(be, index, n, "n_past %d + n_tok %lld exceeds the %lld cached entries", n->ip[0],
                         (long long)T, (long long)b->ne[2]);
        if (n->ip[1] < 0) return nfail(be, index, n, "sliding window must be >= 0");
        break;
    }
    case LLMH_OP_LORA: {
        if (!b || !c) return nfail(be, index, n, "x (src1) and B (src2) are required");
        if (c->type != a->type)
            return nfail(be, index, n, "A (src0, %s) and B (src2, %s) must have the same type", llmh_dtype_name(a->type),
                         llmh_dtype_name(c->type));
        /* Q8_0: src2 is B transposed, [M, R]; check_view made K and M
         * (both ne[0]) multiples of 32 */
        int bt = a->type == LLMH_DTYPE_Q8_0;
        int64_t K = a->ne[0], R = a->ne[1], M = c->ne[bt ? 0 : 1], N = b->ne[1];
        if (b->ne[0] != K || c->ne[bt ? 1 : 0] != R || d->ne[0] != M || d->ne[1] != N)
            return nfail(be, index, n,
                         "shapes: A [%lld, %lld], x [%lld, %lld], %s [%lld, %lld] -> dst [%lld, %lld]",
                         (long long)K, (long long)R, (long long)b->ne[0], (long long)N, bt ? "B transposed" : "B",
                         (long long)c->ne[0], (long long)c->ne[1], (long long)d->ne[0], (long long)d->ne[1]);
        const llmh_tensor *flat[4] = {a, b, c, d};
        for (int i = 0; i < 4; i++)
            if (flat[i]->ne[2] != 1 || flat[i]->ne[3] != 1) return nfail(be, index, n, "A, x, B and dst must be 2-D");
        if (a->nb[0] != llmh_dtype_type_size(a->type) || c->nb[0] != llmh_dtype_type_size(c->type))
            return nfail(be, index, n, "A and B rows must be contiguous");
        if (d->nb[0] != sizeof(float)) return nfail(be, index, n, "dst must be contiguous along ne[0]");
        /* scratch holds x packed (K x N), r (R x N) and per-token factors */
        if ((double)K * (double)N > 4e11 || (double)R * (double)N > 4e11)
            return nfail(be, index, n, "x or r too large (K %lld, R %lld, N %lld)", (long long)K, (long long)R,
                         (long long)N);
        if (e && (e->type != LLMH_DTYPE_F32 || e->ne[0] != N || e->ne[1] * e->ne[2] * e->ne[3] != 1))
            return nfail(be, index, n, "gate src3 must be f32 [%lld]", (long long)N);
        break;
    }
    default: break;
    }
    return LLMH_OK;
}

static llmh_status od_graph_compute(llmh_backend *be, const llmh_graph *g) {
    if (!be || !g || (g->n_nodes && !g->nodes)) return LLMH_ERR_INVALID_ARG;
    for (size_t i = 0; i < g->n_nodes; i++) {
        llmh_status rc = validate(be, &g->nodes[i], i);
        if (rc != LLMH_OK) return rc;
    }
    /* OpenMP's nthreads-var is per calling thread: set it for oneDNN and ours */
    omp_set_num_threads(be->n_threads);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const llmh_node *n = &g->nodes[i];
        be->err_set = 0;
        be->err_status = LLMH_OK;
        llmh_status rc;
        if (n->op == LLMH_OP_LORA) {
            size_t cnt = od_lora_group(n, g->n_nodes - i); /* consecutive adapters on one dst */
            rc = od_lora(be, n, cnt);
            i += cnt - 1;
        } else {
            rc = n->op == LLMH_OP_MUL_MAT ? od_mul_mat(be, n) : od_run_op(be, n);
        }
        if (rc == LLMH_OK && be->err_set) {
            be->host->set_error("onednn backend: node %zu (%s): %s", i, od_op_name(n->op), be->err_msg);
            rc = be->err_status;
        }
        if (rc != LLMH_OK) return rc;
    }
    return LLMH_OK;
}

static const llmh_backend_iface od_iface = {
    .struct_size = sizeof(llmh_backend_iface),
    .device_count = od_device_count,
    .device_info = od_device_info,
    .create = od_create,
    .destroy = od_destroy,
    .supports = od_supports,
    .buffer_alloc = od_buffer_alloc,
    .buffer_wrap_host = od_buffer_wrap_host,
    .buffer_free = od_buffer_free,
    .buffer_host_ptr = od_buffer_host_ptr,
    .buffer_write = od_buffer_write,
    .buffer_read = od_buffer_read,
    .weight_prepare = od_weight_prepare,
    .weight_release = od_weight_release,
    .graph_compute = od_graph_compute,
};

static const od_impl od_impl_desc = {sizeof(od_impl), od_probe, od_init, od_fini, &od_iface};

/* The one symbol the implementation module exports (see onednn-impl.h). */
__attribute__((visibility("default"))) const od_impl *llmh_onednn_impl(void);
const od_impl *llmh_onednn_impl(void) { return &od_impl_desc; }

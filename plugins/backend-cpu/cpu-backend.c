/* cpu-backend.c — the "cpu" backend plugin: descriptor, device, instance
 * options, buffers and graph execution.
 *
 * Options ([backend] keys / llmh_backend_params.options):
 *   kernels = "auto" | "scalar" | "avx2" | "avx512"   (default "auto": best by CPUID)
 *   repack  = true | false   (default true: Q8_0/Q4_0/Q5_0/Q4_K/Q6_K into VNNI panels)
 *   repack_at_load = true | false  (default false: each weight is packed by
 *                            the first graph that uses it, so loading is fast)
 * The environment variable LLMH_CPU_KERNELS sets the same choice when the
 * option is absent or "auto". Threads come from params->n_threads (<= 0: all
 * online CPUs). See docs/backend-cpu.md.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu-internal.h"


/* ------------------------------------------------------------------------ */
/* Plugin state and device                                                    */
/* ------------------------------------------------------------------------ */
static llmh_status cpu_init(const llmh_host_api *host, void **state) {
    if (!host || host->struct_size < sizeof(llmh_host_api) || !host->alloc_aligned || !host->dequantize)
        return LLMH_ERR_ABI;
    cpu_state *st = host->alloc(sizeof *st);
    if (!st) {
        host->set_error("cpu backend: out of memory creating plugin state");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(st, 0, sizeof *st);
    st->host = host;
    cpu_features_detect(&st->feat);
    *state = st;
    return LLMH_OK;
}

static void cpu_fini(void *state) {
    cpu_state *st = state;
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
    return n > 0 ? (int)(n > CPU_MAX_THREADS ? CPU_MAX_THREADS : n) : 1;
}

static int32_t cpu_device_count(void *state) {
    (void)state;
    return 1;
}

static llmh_status cpu_device_info(void *state, int32_t index, llmh_device_info *out) {
    cpu_state *st = state;
    if (!out || out->struct_size < sizeof(llmh_device_info)) {
        st->host->set_error("cpu backend: device_info: output struct missing or too small");
        return LLMH_ERR_INVALID_ARG;
    }
    if (index != 0) {
        st->host->set_error("cpu backend: device index %d out of range (1 device)", (int)index);
        return LLMH_ERR_INVALID_ARG;
    }
    uint32_t ss = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = ss;
    snprintf(out->name, sizeof out->name, "%s", st->feat.model);
    cpu_features_string(&st->feat, out->description, sizeof out->description);
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
void cpu_fail(llmh_backend *be, llmh_status st, const char *fmt, ...) {
    while (atomic_flag_test_and_set(&be->err_lock)) {}
    if (atomic_load(&be->err_status) == LLMH_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(be->err_msg, sizeof be->err_msg, fmt, ap);
        va_end(ap);
        atomic_store(&be->err_status, st);
    }
    atomic_flag_clear(&be->err_lock);
}

static int level_available(const cpu_features *f, const char *level) {
    if (strcmp(level, "scalar") == 0) return 1;
#if CPU_X86
    int avx2 = f->avx2 && f->fma && f->f16c;
    if (strcmp(level, "avx2") == 0) return avx2;
    if (strcmp(level, "avx512") == 0)
        return avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
#else
    (void)f;
#endif
    return 0;
}

static llmh_status select_kernels(llmh_backend *be, const char *want) {
    const cpu_features *f = &be->st->feat;
    if (strcmp(want, "auto") == 0) {
        if (level_available(f, "avx512")) want = "avx512";
        else if (level_available(f, "avx2")) want = "avx2";
        else want = "scalar";
    }
    if (strcmp(want, "scalar") != 0 && strcmp(want, "avx2") != 0 && strcmp(want, "avx512") != 0) {
        be->host->set_error("cpu backend: option 'kernels' = \"%s\" is not one of auto, scalar, avx2, avx512",
                            want);
        return LLMH_ERR_CONFIG;
    }
    if (!level_available(f, want)) {
        char feats[256];
        cpu_features_string(f, feats, sizeof feats);
        be->host->set_error("cpu backend: kernels \"%s\" need CPU features this machine lacks (has: %s)",
                            want, feats);
        return LLMH_ERR_UNSUPPORTED;
    }
    cpu_kernels_init_scalar(&be->kern);
#if CPU_X86
    if (strcmp(want, "avx2") == 0 || strcmp(want, "avx512") == 0) cpu_kernels_init_avx2(&be->kern);
    if (strcmp(want, "avx512") == 0) cpu_kernels_init_avx512(&be->kern);
#endif
    return LLMH_OK;
}

static llmh_status parse_options(llmh_backend *be, const llmh_kv_list *opts, char *kernels, size_t cap) {
    const char *env = getenv("LLMH_CPU_KERNELS");
    snprintf(kernels, cap, "%s", env && *env ? env : "auto");
    if (!opts) return LLMH_OK;
    for (size_t i = 0; i < opts->n; i++) {
        const llmh_kv *kv = &opts->items[i];
        if (!kv->key) continue;
        if (strcmp(kv->key, "kernels") == 0) {
            if (kv->value.type != LLMH_V_STRING) {
                be->host->set_error("cpu backend: option 'kernels' must be a string");
                return LLMH_ERR_CONFIG;
            }
            size_t len = (size_t)kv->value.v.s.len;
            if (len == 0 || len >= cap) {
                be->host->set_error("cpu backend: option 'kernels' has a bad value");
                return LLMH_ERR_CONFIG;
            }
            char tmp[32];
            if (len >= sizeof tmp) len = sizeof tmp - 1;
            memcpy(tmp, kv->value.v.s.ptr, len);
            tmp[len] = 0;
            if (strcmp(tmp, "auto") != 0) snprintf(kernels, cap, "%s", tmp);
        } else if (strcmp(kv->key, "repack") == 0) {
            if (kv->value.type != LLMH_V_BOOL) {
                be->host->set_error("cpu backend: option 'repack' must be true or false");
                return LLMH_ERR_CONFIG;
            }
            be->repack = kv->value.v.b != 0;
        } else if (strcmp(kv->key, "repack_at_load") == 0) {
            if (kv->value.type != LLMH_V_BOOL) {
                be->host->set_error("cpu backend: option 'repack_at_load' must be true or false");
                return LLMH_ERR_CONFIG;
            }
            be->repack_at_load = kv->value.v.b != 0;
        } else if (strcmp(kv->key, "plugin") != 0 && strcmp(kv->key, "threads") != 0 &&
                   strcmp(kv->key, "device") != 0) {
            be->host->log(LLMH_LOG_WARN, CPU_PLUGIN_NAME, "ignoring unknown [backend] option '%s'", kv->key);
        }
    }
    return LLMH_OK;
}

static void cpu_destroy(llmh_backend *be);

static llmh_status cpu_create(void *state, const llmh_backend_params *params, llmh_backend **out) {
    cpu_state *st = state;
    const llmh_host_api *host = st->host;
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    if (params && params->struct_size < sizeof(llmh_backend_params)) {
        host->set_error("cpu backend: create: params struct too small (%u bytes)", params->struct_size);
        return LLMH_ERR_INVALID_ARG;
    }
    if (params && params->device > 0) {
        host->set_error("cpu backend: device %d does not exist (the cpu backend has 1 device)",
                        (int)params->device);
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_backend *be = host->alloc(sizeof *be);
    if (!be) {
        host->set_error("cpu backend: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(be, 0, sizeof *be);
    be->st = st;
    be->host = host;
    atomic_init(&be->err_status, LLMH_OK);
    atomic_flag_clear(&be->err_lock);
    be->repack = 1;

    char kernels[32];
    llmh_status rc = parse_options(be, params ? params->options : NULL, kernels, sizeof kernels);
    if (rc == LLMH_OK) rc = select_kernels(be, kernels);
    if (rc != LLMH_OK) {
        host->free(be);
        return rc;
    }
    int nt = params && params->n_threads > 0 ? params->n_threads : online_cpus();
    if (nt > CPU_MAX_THREADS) nt = CPU_MAX_THREADS;
    be->n_threads = nt;
    be->pool = cpu_pool_create(nt);
    if (!be->pool) {
        host->set_error("cpu backend: cannot start %d threads", nt);
        host->free(be);
        return LLMH_ERR_NO_MEMORY;
    }
    host->log(LLMH_LOG_INFO, CPU_PLUGIN_NAME, "%s, %d threads, %s kernels", st->feat.model, nt,
              be->kern.name);
    *out = be;
    return LLMH_OK;
}

static void cpu_destroy(llmh_backend *be) {
    if (!be) return;
    cpu_pool_free(be->pool);
    cpu_arena_free(be);
    be->host->free(be->work);
    be->host->free(be->steps);
    be->host->free(be);
}

static int32_t cpu_supports(llmh_backend *be, llmh_op op, llmh_dtype t0, llmh_dtype t1) {
    return be ? cpu_op_supported(be, op, t0, t1) : 0;
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                    */
/* ------------------------------------------------------------------------ */
static llmh_status cpu_buffer_alloc(llmh_backend *be, size_t size, uint32_t usage, llmh_buffer **out) {
    if (!out) return LLMH_ERR_INVALID_ARG;
    *out = NULL;
    if (size > ((size_t)1 << 48)) {
        be->host->set_error("cpu backend: buffer of %zu bytes is too large", size);
        return LLMH_ERR_NO_MEMORY;
    }
    llmh_buffer *b = be->host->alloc(sizeof *b);
    if (!b) goto oom;
    b->data = be->host->alloc_aligned(size ? size : 64, 64);
    if (!b->data) {
        be->host->free(b);
        goto oom;
    }
    b->size = size;
    b->owned = 1;
    b->usage = usage;
    *out = b;
    return LLMH_OK;
oom:
    be->host->set_error("cpu backend: cannot allocate a buffer of %zu bytes", size);
    return LLMH_ERR_NO_MEMORY;
}

static llmh_status cpu_buffer_wrap_host(llmh_backend *be, void *host, size_t size, uint32_t usage,
                                        llmh_buffer **out) {
    if (!out || (!host && size)) {
        be->host->set_error("cpu backend: buffer_wrap_host: NULL memory");
        return LLMH_ERR_INVALID_ARG;
    }
    llmh_buffer *b = be->host->alloc(sizeof *b);
    if (!b) {
        be->host->set_error("cpu backend: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    b->data = host;
    b->size = size;
    b->owned = 0;
    b->usage = usage;
    *out = b;
    return LLMH_OK;
}

static void cpu_buffer_free(llmh_backend *be, llmh_buffer *buf) {
    if (!buf) return;
    if (buf->owned) be->host->free(buf->data);
    be->host->free(buf);
}

static void *cpu_buffer_host_ptr(llmh_backend *be, llmh_buffer *buf) {
    (void)be;
    return buf ? buf->data : NULL;
}

static llmh_status cpu_buffer_write(llmh_backend *be, llmh_buffer *buf, size_t offset, const void *src,
                                    size_t n) {
    if (!buf || (!src && n) || offset > buf->size || n > buf->size - offset) {
        be->host->set_error("cpu backend: buffer_write of %zu bytes at offset %zu outside a %zu-byte buffer",
                            n, offset, buf ? buf->size : 0);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n) memmove(buf->data + offset, src, n);
    return LLMH_OK;
}

static llmh_status cpu_buffer_read(llmh_backend *be, llmh_buffer *buf, size_t offset, void *dst, size_t n) {
    if (!buf || (!dst && n) || offset > buf->size || n > buf->size - offset) {
        be->host->set_error("cpu backend: buffer_read of %zu bytes at offset %zu outside a %zu-byte buffer",
                            n, offset, buf ? buf->size : 0);
        return LLMH_ERR_INVALID_ARG;
    }
    if (n) memmove(dst, buf->data + offset, n);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Graph                                                                      */
/* ------------------------------------------------------------------------ */
typedef struct graph_run {
    llmh_backend *be;
    size_t n_steps;
} graph_run;

/* Every thread walks the steps in order, claiming units until none are
 * left, then waits (spin, then yield) for the units others claimed. */
static void graph_task(void *arg, int ith, int nth) {
    graph_run *run = arg;
    (void)nth;
    for (size_t i = 0; i < run->n_steps; i++) {
        cpu_step *st = &run->be->steps[i];
        cpu_exec ex = {run->be, st->node, st->n_nodes, &st->aux};
        for (;;) {
            int64_t u0 = atomic_fetch_add(&st->next, st->grain);
            if (u0 >= st->units) break;
            int64_t u1 = u0 + st->grain < st->units ? u0 + st->grain : st->units;
            cpu_op_run(&ex, st->phase, u0, u1, ith);
            atomic_fetch_add(&st->done, u1 - u0);
        }
        int spins = 0;
        while (atomic_load(&st->done) < st->units) cpu_pool_yield_wait(&spins);
    }
}

static llmh_status cpu_graph_compute(llmh_backend *be, const llmh_graph *g) {
    if (!be || !g || (g->n_nodes && !g->nodes)) return LLMH_ERR_INVALID_ARG;
    size_t need = 0, n_steps = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        llmh_status st = cpu_op_validate(be, &g->nodes[i], i);
        if (st != LLMH_OK) return st;
    }
    /* weights recorded for packing at load are packed on first use */
    llmh_status pst = cpu_pack_pending(be, g);
    if (pst != LLMH_OK) return pst;
    /* consecutive LORA nodes on one dst and x run as one step, with the
     * MUL_MAT before them in decode (cpu-lora.c) */
    for (size_t i = 0; i < g->n_nodes;) {
        size_t len = 1, w, ml = cpu_mm_lora_length(be, g->nodes, g->n_nodes, i);
        if (ml) {
            len = ml;
            w = cpu_mm_lora_work_size(be, &g->nodes[i], len);
            n_steps += 1;
        } else if (g->nodes[i].op == LLMH_OP_LORA) {
            len = cpu_lora_run_length(g->nodes, g->n_nodes, i);
            w = cpu_lora_work_size(be, &g->nodes[i], len);
            n_steps += (size_t)cpu_lora_phases(be, &g->nodes[i], len);
        } else {
            w = cpu_op_work_size(be, &g->nodes[i]);
            n_steps += (size_t)cpu_op_phases(be, &g->nodes[i]);
        }
        if (w > need) need = w;
        i += len;
    }
    need += 64;
    if (need > be->work_size) {
        uint8_t *w = be->host->alloc_aligned(need, 64);
        if (!w) {
            be->host->set_error("cpu backend: cannot allocate %zu bytes of scratch", need);
            return LLMH_ERR_NO_MEMORY;
        }
        be->host->free(be->work);
        be->work = w;
        be->work_size = need;
    }
    if (n_steps > be->steps_cap) {
        cpu_step *s = be->host->alloc_aligned(n_steps * sizeof *s, 64);
        if (!s) {
            be->host->set_error("cpu backend: cannot allocate a %zu-step schedule", n_steps);
            return LLMH_ERR_NO_MEMORY;
        }
        be->host->free(be->steps);
        be->steps = s;
        be->steps_cap = n_steps;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->n_nodes;) {
        const llmh_node *nd = &g->nodes[i];
        size_t ml = cpu_mm_lora_length(be, g->nodes, g->n_nodes, i);
        size_t len = ml ? ml : nd->op == LLMH_OP_LORA ? cpu_lora_run_length(g->nodes, g->n_nodes, i) : 1;
        int nph = ml ? 1 : nd->op == LLMH_OP_LORA ? cpu_lora_phases(be, nd, len) : cpu_op_phases(be, nd);
        for (int ph = 0; ph < nph; ph++) {
            cpu_step *st = &be->steps[k++];
            st->node = nd;
            st->n_nodes = len;
            st->phase = ph;
            st->units = ml ? cpu_mm_lora_units(be, nd, len, ph, &st->grain)
                        : nd->op == LLMH_OP_LORA ? cpu_lora_units(be, nd, len, ph, &st->grain)
                                                 : cpu_op_units(be, nd, ph, &st->grain);
            atomic_init(&st->next, 0);
            atomic_init(&st->done, 0);
            atomic_init(&st->aux, 0);
        }
        i += len;
    }
    atomic_store(&be->err_status, LLMH_OK);
    be->graph_serial++;
    graph_run run = {be, n_steps};
    cpu_pool_run(be->pool, graph_task, &run);
    llmh_status st = atomic_load(&be->err_status);
    if (st != LLMH_OK) be->host->set_error("cpu backend: %s", be->err_msg);
    return st;
}

static const llmh_backend_iface cpu_iface = {
    .struct_size = sizeof(llmh_backend_iface),
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .supports = cpu_supports,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .buffer_free = cpu_buffer_free,
    .buffer_host_ptr = cpu_buffer_host_ptr,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .weight_prepare = cpu_weight_prepare,
    .weight_release = cpu_weight_release,
    .graph_compute = cpu_graph_compute,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_BACKEND, "cpu", "0.1.0", "MIT",
                   "CPU backend: scalar, AVX2 and AVX-512/VNNI kernels, persistent thread pool", 50,
                   NULL, cpu_init, cpu_fini, &cpu_iface, NULL)

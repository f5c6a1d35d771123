/* format-test-util.c — see format-test-util.h. */
#include "format-test-util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- plugins ------------------------------------------------------------ */
int fmt_plugin_load(fmt_plugin *p, const char *so_path) {
    memset(p, 0, sizeof *p);
    p->dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        fprintf(stderr, "dlopen %s: %s\n", so_path, dlerror());
        return -1;
    }
    llmh_plugin_describe_fn fn = (llmh_plugin_describe_fn)dlsym(p->dl, LLMH_PLUGIN_SYMBOL);
    if (!fn) {
        fprintf(stderr, "%s: no %s symbol\n", so_path, LLMH_PLUGIN_SYMBOL);
        dlclose(p->dl);
        p->dl = NULL;
        return -1;
    }
    p->desc = fn();
    if (!p->desc || p->desc->kind != LLMH_PLUGIN_FORMAT || !p->desc->iface) {
        fprintf(stderr, "%s: not a format plugin\n", so_path);
        dlclose(p->dl);
        p->dl = NULL;
        return -1;
    }
    p->fi = p->desc->iface;
    if (p->desc->init && p->desc->init(llmh_host_api_get(), &p->state) != LLMH_OK) {
        fprintf(stderr, "%s: init failed: %s\n", so_path, llmh_last_error());
        dlclose(p->dl);
        p->dl = NULL;
        return -1;
    }
    return 0;
}

void fmt_plugin_unload(fmt_plugin *p) {
    if (!p->dl) return;
    if (p->desc->fini) p->desc->fini(p->state);
    dlclose(p->dl);
    memset(p, 0, sizeof *p);
}

llmh_status fmt_open(const fmt_plugin *p, const char *path, const llmh_kv_list *options, fmt_file *out) {
    memset(out, 0, sizeof *out);
    out->p = p;
    llmh_clear_error();
    llmh_status st = p->fi->open(p->state, path, options, &out->f);
    if (st != LLMH_OK) {
        out->f = NULL;
        return st;
    }
    st = p->fi->get_metadata(out->f, &out->kv);
    if (st == LLMH_OK) st = p->fi->get_tensors(out->f, &out->t, &out->n_t);
    if (st != LLMH_OK) fmt_close(out);
    return st;
}

void fmt_close(fmt_file *f) {
    if (f->f) f->p->fi->close(f->f);
    f->f = NULL;
}

const llmh_value *fmt_kv(const fmt_file *f, const char *key) { return llmh_kv_find(&f->kv, key); }

int64_t fmt_kv_int(const fmt_file *f, const char *key, int64_t def) {
    int64_t v;
    const llmh_value *x = fmt_kv(f, key);
    if (!x || x->type == LLMH_V_F32 || x->type == LLMH_V_F64 || !llmh_value_as_i64(x, &v)) return def;
    return v;
}

int fmt_kv_str_eq(const fmt_file *f, const char *key, const char *s) {
    const llmh_value *v = fmt_kv(f, key);
    return v && v->type == LLMH_V_STRING && v->v.s.len == strlen(s) && !memcmp(v->v.s.ptr, s, v->v.s.len);
}

const llmh_tensor_info *fmt_tensor(const fmt_file *f, const char *name) {
    for (size_t i = 0; i < f->n_t; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

int64_t fmt_tensor_nelem(const llmh_tensor_info *t) {
    int64_t n = 1;
    for (int d = 0; d < LLMH_MAX_DIMS; d++) n *= t->ne[d];
    return n;
}

float *fmt_tensor_f32(const llmh_tensor_info *t, int64_t *n) {
    int64_t ne = fmt_tensor_nelem(t);
    float *out = malloc((size_t)ne * sizeof *out);
    if (!out) abort();
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < ne; i++) {
        if (t->type == LLMH_DTYPE_F32) {
            memcpy(&out[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->type == LLMH_DTYPE_BF16 ? llmh_bf16_to_fp32(h) : llmh_fp16_to_fp32(h);
        }
    }
    *n = ne;
    return out;
}

uint64_t fmt_fnv1a(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- byte buffer ---------------------------------------------------------- */
void fb_free(fmt_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void fb_bytes(fmt_buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void fb_le(fmt_buf *b, uint64_t v, int n) {
    uint8_t x[8];
    for (int i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
    fb_bytes(b, x, (size_t)n);
}

void fb_u8(fmt_buf *b, uint8_t v) { fb_le(b, v, 1); }
void fb_u16(fmt_buf *b, uint16_t v) { fb_le(b, v, 2); }
void fb_u32(fmt_buf *b, uint32_t v) { fb_le(b, v, 4); }
void fb_u64(fmt_buf *b, uint64_t v) { fb_le(b, v, 8); }
void fb_f32(fmt_buf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    fb_u32(b, u);
}
void fb_f64(fmt_buf *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    fb_u64(b, u);
}
void fb_str(fmt_buf *b, const char *s) {
    fb_u64(b, strlen(s));
    fb_bytes(b, s, strlen(s));
}
void fb_pad(fmt_buf *b, size_t align) {
    static const uint8_t z[256];
    while (b->n % align) fb_bytes(b, z, 1);
}
void fb_printf(fmt_buf *b, const char *fmt, ...) {
    char tmp[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) abort();
    fb_bytes(b, tmp, (size_t)n);
}

/* ---- GGUF ------------------------------------------------------------------ */
void gguf_header(fmt_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    fb_bytes(b, "GGUF", 4);
    fb_u32(b, version);
    fb_u64(b, n_tensors);
    fb_u64(b, n_kv);
}

void gguf_kv_u32(fmt_buf *b, const char *key, uint32_t v) {
    fb_str(b, key);
    fb_u32(b, LLMH_V_U32);
    fb_u32(b, v);
}

void gguf_kv_str(fmt_buf *b, const char *key, const char *v) {
    fb_str(b, key);
    fb_u32(b, LLMH_V_STRING);
    fb_str(b, v);
}

void gguf_tensor_info(fmt_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                      uint32_t type, uint64_t offset) {
    fb_str(b, name);
    fb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) fb_u64(b, ne[d]);
    fb_u32(b, type);
    fb_u64(b, offset);
}

static uint64_t spec_size(const gguf_tspec *t) {
    int64_t bs = llmh_dtype_block_size((llmh_dtype)t->type);
    size_t ts = llmh_dtype_type_size((llmh_dtype)t->type);
    if (bs == 0 || t->type >= LLMH_DTYPE_COUNT) return 64;
    uint64_t n = t->ne[0] / (uint64_t)bs * ts;
    for (uint32_t d = 1; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

void gguf_build(fmt_buf *b, uint32_t version, uint32_t alignment, const gguf_tspec *ts, size_t n,
                uint64_t *data_start) {
    uint64_t align = alignment ? alignment : 32;
    uint64_t offs[64], end = 0;
    if (n > 64) abort();
    for (size_t i = 0; i < n; i++) {
        uint64_t o = ts[i].offset;
        if (o == UINT64_MAX) o = (end + align - 1) / align * align;
        offs[i] = o;
        uint64_t e = o + spec_size(&ts[i]);
        if (e > end) end = e;
    }
    gguf_header(b, version, n, alignment ? 2 : 1);
    gguf_kv_str(b, "general.architecture", "test");
    if (alignment) gguf_kv_u32(b, "general.alignment", alignment);
    for (size_t i = 0; i < n; i++) gguf_tensor_info(b, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type, offs[i]);
    fb_pad(b, (size_t)align);
    uint64_t start = b->n;
    if (data_start) *data_start = start;
    /* data: zero-fill then write each tensor's pattern */
    size_t base = b->n;
    uint8_t zero = 0;
    for (uint64_t i = 0; i < end; i++) fb_bytes(b, &zero, 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t sz = spec_size(&ts[i]);
        for (uint64_t j = 0; j < sz; j++) b->p[base + offs[i] + j] = (uint8_t)((j * 7 + i) & 0xff);
    }
}

char *fmt_write_temp(const fmt_buf *b, const char *suffix) {
    char *p = llmh_test_write_temp(b->p ? (const void *)b->p : (const void *)"", b->n, suffix);
    if (!p) abort();
    return p;
}

char *fmt_mkdtemp(void) {
    const char *dir = getenv("TMPDIR");
    if (!dir) dir = "/tmp";
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/llmh-fmt-XXXXXX", dir);
    if (!mkdtemp(p)) abort();
    return p;
}

void fmt_write_in(const char *dir, const char *name, const void *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

void fmt_rmdir(char *dir) {
    if (!dir) return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

/* ---- a GGUF with every metadata type (see the header) ------------------- */
void gguf_kv_head(fmt_buf *b, const char *key, uint32_t type) {
    fb_str(b, key);
    fb_u32(b, type);
}

void gguf_arr_head(fmt_buf *b, uint32_t et, uint64_t n) {
    fb_u32(b, et);
    fb_u64(b, n);
}

/* 17 KVs: one of each scalar type, arrays, nested arrays, empty array. */
void gguf_build_all_types(fmt_buf *b, uint32_t version) {
    static const gguf_tspec ts[] = {
        {"a.f32", 2, {8, 2, 1, 1}, LLMH_DTYPE_F32, UINT64_MAX},
        {"b.f16", 1, {4, 1, 1, 1}, LLMH_DTYPE_F16, UINT64_MAX},
        {"c.q8_0", 2, {64, 2, 1, 1}, LLMH_DTYPE_Q8_0, UINT64_MAX},
        {"d.q4_k", 1, {256, 1, 1, 1}, LLMH_DTYPE_Q4_K, UINT64_MAX},
        {"e.i32", 1, {3, 1, 1, 1}, LLMH_DTYPE_I32, UINT64_MAX},
        {"f.bf16", 4, {2, 2, 2, 2}, LLMH_DTYPE_BF16, UINT64_MAX},
        {"g.q6_k", 2, {256, 3, 1, 1}, LLMH_DTYPE_Q6_K, UINT64_MAX},
        {"h.f64", 3, {1, 2, 3, 1}, LLMH_DTYPE_F64, UINT64_MAX},
    };
    const size_t nt = sizeof ts / sizeof ts[0];
    const uint64_t align = 64;
    gguf_header(b, version, nt, 18);
    gguf_kv_head(b, "t.u8", LLMH_V_U8); fb_u8(b, 200);
    gguf_kv_head(b, "t.i8", LLMH_V_I8); fb_u8(b, (uint8_t)-100);
    gguf_kv_head(b, "t.u16", LLMH_V_U16); fb_u16(b, 60000);
    gguf_kv_head(b, "t.i16", LLMH_V_I16); fb_u16(b, (uint16_t)-30000);
    gguf_kv_head(b, "t.u32", LLMH_V_U32); fb_u32(b, 4000000000u);
    gguf_kv_head(b, "t.i32", LLMH_V_I32); fb_u32(b, (uint32_t)-2000000000);
    gguf_kv_head(b, "t.f32", LLMH_V_F32); fb_f32(b, 1.5f);
    gguf_kv_head(b, "t.bool", LLMH_V_BOOL); fb_u8(b, 1);
    gguf_kv_head(b, "t.string", LLMH_V_STRING); fb_u64(b, 8); fb_bytes(b, "h\xc3\xa9llo\0x", 8);
    gguf_kv_head(b, "t.u64", LLMH_V_U64); fb_u64(b, UINT64_C(9223372036854775813));
    gguf_kv_head(b, "t.i64", LLMH_V_I64); fb_u64(b, (uint64_t)INT64_C(-4611686018427387904));
    gguf_kv_head(b, "t.f64", LLMH_V_F64); fb_f64(b, 3.25);
    gguf_kv_head(b, "t.arr_u8", LLMH_V_ARRAY); gguf_arr_head(b, LLMH_V_U8, 3); fb_u8(b, 1); fb_u8(b, 2); fb_u8(b, 3);
    gguf_kv_head(b, "t.arr_str", LLMH_V_ARRAY); gguf_arr_head(b, LLMH_V_STRING, 3);
    fb_str(b, "a"); fb_str(b, ""); fb_str(b, "ccc");
    /* [[1, 2], [], [3]] of i32 */
    gguf_kv_head(b, "t.nested", LLMH_V_ARRAY); gguf_arr_head(b, LLMH_V_ARRAY, 3);
    gguf_arr_head(b, LLMH_V_I32, 2); fb_u32(b, 1); fb_u32(b, 2);
    gguf_arr_head(b, LLMH_V_I32, 0);
    gguf_arr_head(b, LLMH_V_I32, 1); fb_u32(b, 3);
    /* [[["x", "yz"]], []] of strings, three levels */
    gguf_kv_head(b, "t.deep", LLMH_V_ARRAY); gguf_arr_head(b, LLMH_V_ARRAY, 2);
    gguf_arr_head(b, LLMH_V_ARRAY, 1); gguf_arr_head(b, LLMH_V_STRING, 2); fb_str(b, "x"); fb_str(b, "yz");
    gguf_arr_head(b, LLMH_V_ARRAY, 0);
    gguf_kv_head(b, "t.empty", LLMH_V_ARRAY); gguf_arr_head(b, LLMH_V_F64, 0);
    gguf_kv_u32(b, "general.alignment", (uint32_t)align);
    uint64_t off = 0, offs[8];
    for (size_t i = 0; i < nt; i++) {
        offs[i] = off;
        gguf_tensor_info(b, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type, off);
        uint64_t sz = (ts[i].ne[0] / (uint64_t)llmh_dtype_block_size((llmh_dtype)ts[i].type)) *
                      llmh_dtype_type_size((llmh_dtype)ts[i].type) * ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3];
        off = (off + sz + align - 1) / align * align;
    }
    fb_pad(b, align);
    size_t base = b->n;
    for (uint64_t i = 0; i < off; i++) fb_u8(b, (uint8_t)(i * 13 + 5));
    (void)base;
    (void)offs;
}


/* ---- walking an opened file ------------------------------------------------ */
static uint64_t walk_value(const llmh_value *v, int depth) {
    uint64_t h = (uint64_t)v->type * 31u;
    switch (v->type) {
    case LLMH_V_STRING:
        return h ^ fmt_fnv1a(v->v.s.ptr, (size_t)v->v.s.len);
    case LLMH_V_ARRAY:
        h ^= v->v.arr.n;
        if (depth > 64) abort(); /* the plugin promised a depth limit */
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            if (v->v.arr.items[i].type != v->v.arr.elem_type) abort();
            h = h * 1099511628211ull ^ walk_value(&v->v.arr.items[i], depth + 1);
        }
        return h;
    default:
        return h ^ v->v.u;
    }
}

uint64_t fmt_walk(const fmt_file *f) {
    uint64_t h = 0;
    for (size_t i = 0; i < f->kv.n; i++) {
        h ^= fmt_fnv1a(f->kv.items[i].key, strlen(f->kv.items[i].key));
        h = h * 31u + walk_value(&f->kv.items[i].value, 0);
    }
    for (size_t i = 0; i < f->n_t; i++) {
        const llmh_tensor_info *t = &f->t[i];
        h ^= fmt_fnv1a(t->name, strlen(t->name));
        if (t->n_dims < 1 || t->n_dims > LLMH_MAX_DIMS) abort();
        int64_t bs = llmh_dtype_block_size(t->type);
        if (bs <= 0) abort();
        uint64_t expect = (uint64_t)(t->ne[0] / bs) * llmh_dtype_type_size(t->type);
        for (int d = 1; d < LLMH_MAX_DIMS; d++) expect *= (uint64_t)t->ne[d];
        if (t->ne[0] % bs != 0 || expect != t->size) abort();
        /* the first and last bytes: enough to fault on a bad pointer or size
         * without hashing gigabytes */
        size_t n = t->size < 64 ? (size_t)t->size : 64;
        const uint8_t *d = t->data;
        h = h * 31u + fmt_fnv1a(d, n);
        h = h * 31u + fmt_fnv1a(d + t->size - n, n);
    }
    return h;
}

/*
 * gguf-format.c — the "gguf" format plugin: GGUF v2/v3 model files.
 *
 * The file is mapped read-only and every tensor's `data` points into the
 * mapping (zero-copy). Metadata string values point into the mapping too
 * (not NUL-terminated, as llmh_value allows); keys and tensor names are
 * copied so they can be NUL-terminated.
 *
 * Layout (little-endian), https://github.com/ggml-org/ggml/blob/master/docs/gguf.md:
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32; a power of two >= 8)
 *   tensor data; each tensor at data_start + offset, offset aligned
 * A string is u64 length + bytes; an array is u32 elem_type + u64 n + items.
 *
 * Everything in the file is untrusted: counts are checked against the bytes
 * left before anything is allocated, every length/offset against the file
 * size, and errors name the field and its byte offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmh-plugin.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ALIGNMENT (1u << 30)
#define GGUF_MAX_DEPTH 8                     /* nesting of arrays inside arrays */
#define GGUF_MAX_ARRAY_ITEMS (UINT64_C(1) << 26) /* all array items of one file */
#define GGUF_MAX_KEY_LEN 65535u              /* the spec's limit for keys */
#define GGUF_MAX_NAME_LEN 4096u              /* generous; ggml itself uses 64 */

/* Minimum encoded size of a KV (key len 8 + 1 byte key + type 4 + 1 byte
 * value) and of a tensor info (name len 8 + 1 + n_dims 4 + ne 8 + type 4 +
 * offset 8): used to bound the header counts by the file size. */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_INFO_BYTES 33u

struct llmh_model_file {
    const llmh_host_api *host;
    char *path;
    uint8_t *map;        /* whole file, PROT_READ */
    size_t map_size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start; /* absolute offset of the tensor data section */
    llmh_kv *kvs;        /* file KVs + llmh.source_format */
    size_t n_kvs;
    llmh_tensor_info *tensors;
    size_t n_tensors;
    void **allocs;       /* keys, names and array item blocks, freed at close */
    size_t n_allocs, cap_allocs;
    uint64_t array_items; /* running total, bounded by GGUF_MAX_ARRAY_ITEMS */
};

typedef struct gguf_reader {
    struct llmh_model_file *f;
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
} gguf_reader;

static const char gguf_source_format[] = "gguf";

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static llmh_status gguf_fail(const llmh_host_api *host, const char *path, llmh_status st,
                             const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    host->set_error("%s: %s", path, msg);
    return st;
}

#define FAIL(f, st, ...) gguf_fail((f)->host, (f)->path, (st), __VA_ARGS__)

static const char *gguf_vtype_name(uint32_t t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* Allocation bookkeeping                                                    */
/* ------------------------------------------------------------------------ */
static void *gguf_alloc(struct llmh_model_file *f, size_t size) {
    if (f->n_allocs == f->cap_allocs) {
        size_t cap = f->cap_allocs ? f->cap_allocs * 2 : 64;
        void **na = f->host->alloc(cap * sizeof *na);
        if (!na) return NULL;
        if (f->n_allocs) memcpy(na, f->allocs, f->n_allocs * sizeof *na);
        f->host->free(f->allocs);
        f->allocs = na;
        f->cap_allocs = cap;
    }
    void *p = f->host->alloc(size ? size : 1);
    if (p) f->allocs[f->n_allocs++] = p;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Little-endian primitive reads (bounds-checked)                            */
/* ------------------------------------------------------------------------ */
static int rd_has(const gguf_reader *r, uint64_t n) { return n <= r->size - r->pos; }

static uint64_t rd_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads an n-byte little-endian integer; `what` names the field for errors. */
static llmh_status rd_uint(gguf_reader *r, unsigned n, uint64_t *out, const char *what) {
    if (!rd_has(r, n))
        return FAIL(r->f, LLMH_ERR_FORMAT,
                    "%s at offset %llu: file ends (size %llu) before its %u bytes", what,
                    (unsigned long long)r->pos, (unsigned long long)r->size, n);
    *out = rd_le(r->base + r->pos, n);
    r->pos += n;
    return LLMH_OK;
}

/* A GGUF string: u64 length + bytes. Returns a pointer into the mapping. */
static llmh_status rd_string(gguf_reader *r, const char **ptr, uint64_t *len, const char *what) {
    uint64_t at = r->pos, n = 0;
    llmh_status st = rd_uint(r, 8, &n, what);
    if (st) return st;
    if (!rd_has(r, n))
        return FAIL(r->f, LLMH_ERR_FORMAT,
                    "%s at offset %llu: length %llu runs past end of file (size %llu)", what,
                    (unsigned long long)at, (unsigned long long)n, (unsigned long long)r->size);
    *ptr = (const char *)(r->base + r->pos);
    *len = n;
    r->pos += n;
    return LLMH_OK;
}

/* Copies a key or name into NUL-terminated storage, refusing empty names,
 * names over `max_len` and names containing NUL bytes. */
static llmh_status rd_name(gguf_reader *r, uint64_t max_len, char **out, const char *what) {
    uint64_t at = r->pos, len = 0;
    const char *p;
    llmh_status st = rd_string(r, &p, &len, what);
    if (st) return st;
    if (len == 0)
        return FAIL(r->f, LLMH_ERR_FORMAT, "%s at offset %llu is empty", what, (unsigned long long)at);
    if (len > max_len)
        return FAIL(r->f, LLMH_ERR_FORMAT, "%s at offset %llu: length %llu exceeds the limit of %llu",
                    what, (unsigned long long)at, (unsigned long long)len, (unsigned long long)max_len);
    if (memchr(p, 0, (size_t)len))
        return FAIL(r->f, LLMH_ERR_FORMAT, "%s at offset %llu contains a NUL byte", what,
                    (unsigned long long)at);
    char *s = gguf_alloc(r->f, (size_t)len + 1);
    if (!s) return FAIL(r->f, LLMH_ERR_NO_MEMORY, "out of memory reading %s", what);
    memcpy(s, p, (size_t)len);
    s[len] = 0;
    *out = s;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Metadata values                                                           */
/* ------------------------------------------------------------------------ */
/* Smallest encoding of one value of type t, or 0 for an unknown type. */
static uint64_t gguf_min_value_bytes(uint32_t t) {
    switch (t) {
    case LLMH_V_U8: case LLMH_V_I8: case LLMH_V_BOOL: return 1;
    case LLMH_V_U16: case LLMH_V_I16: return 2;
    case LLMH_V_U32: case LLMH_V_I32: case LLMH_V_F32: return 4;
    case LLMH_V_U64: case LLMH_V_I64: case LLMH_V_F64: return 8;
    case LLMH_V_STRING: return 8;      /* the length */
    case LLMH_V_ARRAY: return 12;      /* elem type + count */
    default: return 0;
    }
}

/* `key` names the KV for messages; `item` is the index inside the innermost
 * array (or UINT64_MAX for the top-level value). */
static llmh_status rd_value(gguf_reader *r, uint32_t type, llmh_value *out, int depth,
                            const char *key, uint64_t item) {
    char what[320];
    if (item == UINT64_MAX)
        snprintf(what, sizeof what, "key '%s': %s value", key, gguf_vtype_name(type));
    else
        snprintf(what, sizeof what, "key '%s': array item %llu (%s)", key,
                 (unsigned long long)item, gguf_vtype_name(type));
    uint64_t u = 0, at = r->pos;
    llmh_status st;
    out->type = (llmh_vtype)type;
    switch (type) {
    case LLMH_V_U8: case LLMH_V_U16: case LLMH_V_U32: case LLMH_V_U64:
        st = rd_uint(r, (unsigned)gguf_min_value_bytes(type), &u, what);
        if (st) return st;
        out->v.u = u;
        return LLMH_OK;
    case LLMH_V_I8:
        if ((st = rd_uint(r, 1, &u, what))) return st;
        out->v.i = (int8_t)(uint8_t)u;
        return LLMH_OK;
    case LLMH_V_I16:
        if ((st = rd_uint(r, 2, &u, what))) return st;
        out->v.i = (int16_t)(uint16_t)u;
        return LLMH_OK;
    case LLMH_V_I32:
        if ((st = rd_uint(r, 4, &u, what))) return st;
        out->v.i = (int32_t)(uint32_t)u;
        return LLMH_OK;
    case LLMH_V_I64:
        if ((st = rd_uint(r, 8, &u, what))) return st;
        out->v.i = (int64_t)u;
        return LLMH_OK;
    case LLMH_V_F32: {
        if ((st = rd_uint(r, 4, &u, what))) return st;
        union { uint32_t u; float f; } x;
        x.u = (uint32_t)u;
        out->v.f = x.f;
        return LLMH_OK;
    }
    case LLMH_V_F64: {
        if ((st = rd_uint(r, 8, &u, what))) return st;
        union { uint64_t u; double f; } x;
        x.u = u;
        out->v.f = x.f;
        return LLMH_OK;
    }
    case LLMH_V_BOOL:
        if ((st = rd_uint(r, 1, &u, what))) return st;
        if (u > 1)
            return FAIL(r->f, LLMH_ERR_FORMAT, "%s at offset %llu: bool byte is %llu, not 0 or 1",
                        what, (unsigned long long)at, (unsigned long long)u);
        out->v.b = (int)u;
        return LLMH_OK;
    case LLMH_V_STRING:
        return rd_string(r, &out->v.s.ptr, &out->v.s.len, what);
    case LLMH_V_ARRAY: {
        uint64_t et = 0, n = 0;
        if (depth >= GGUF_MAX_DEPTH)
            return FAIL(r->f, LLMH_ERR_FORMAT,
                        "%s at offset %llu: arrays nested deeper than %d levels", what,
                        (unsigned long long)at, GGUF_MAX_DEPTH);
        if ((st = rd_uint(r, 4, &et, what))) return st;
        uint64_t min = gguf_min_value_bytes((uint32_t)et);
        if (et > UINT32_MAX || min == 0)
            return FAIL(r->f, LLMH_ERR_FORMAT,
                        "%s at offset %llu: unknown array element type %llu", what,
                        (unsigned long long)at, (unsigned long long)et);
        uint64_t n_at = r->pos;
        if ((st = rd_uint(r, 8, &n, what))) return st;
        if (n > (r->size - r->pos) / min)
            return FAIL(r->f, LLMH_ERR_FORMAT,
                        "%s at offset %llu: array of %llu %s items needs at least %llu bytes but "
                        "only %llu remain in the file",
                        what, (unsigned long long)n_at, (unsigned long long)n,
                        gguf_vtype_name((uint32_t)et),
                        (unsigned long long)(n <= UINT64_MAX / min ? n * min : UINT64_MAX),
                        (unsigned long long)(r->size - r->pos));
        if (n > GGUF_MAX_ARRAY_ITEMS - r->f->array_items)
            return FAIL(r->f, LLMH_ERR_FORMAT,
                        "%s at offset %llu: arrays hold more than %llu items in total", what,
                        (unsigned long long)n_at, (unsigned long long)GGUF_MAX_ARRAY_ITEMS);
        r->f->array_items += n;
        out->v.arr.elem_type = (llmh_vtype)et;
        out->v.arr.n = n;
        out->v.arr.items = NULL;
        if (n == 0) return LLMH_OK;
        llmh_value *items = gguf_alloc(r->f, (size_t)n * sizeof *items);
        if (!items)
            return FAIL(r->f, LLMH_ERR_NO_MEMORY, "%s: out of memory for %llu array items", what,
                        (unsigned long long)n);
        memset(items, 0, (size_t)n * sizeof *items);
        for (uint64_t i = 0; i < n; i++) {
            st = rd_value(r, (uint32_t)et, &items[i], depth + 1, key, i);
            if (st) return st;
        }
        out->v.arr.items = items;
        return LLMH_OK;
    }
    default:
        return FAIL(r->f, LLMH_ERR_FORMAT, "%s at offset %llu: unknown value type %u", what,
                    (unsigned long long)at, type);
    }
}

/* ------------------------------------------------------------------------ */
/* Sorting helpers for duplicate and overlap checks                          */
/* ------------------------------------------------------------------------ */
typedef struct gguf_sort_item {
    const char *name;
    uint64_t a, b; /* offset and end for tensors */
    size_t index;
} gguf_sort_item;

static int cmp_by_name(const void *x, const void *y) {
    const gguf_sort_item *p = x, *q = y;
    int c = strcmp(p->name, q->name);
    if (c) return c;
    return p->index < q->index ? -1 : p->index > q->index;
}

static int cmp_by_offset(const void *x, const void *y) {
    const gguf_sort_item *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */
/* ------------------------------------------------------------------------ */
static void gguf_close(llmh_model_file *f) {
    if (!f) return;
    const llmh_host_api *host = f->host;
    for (size_t i = 0; i < f->n_allocs; i++) host->free(f->allocs[i]);
    host->free(f->allocs);
    host->free(f->kvs);
    host->free(f->tensors);
    if (f->map) munmap(f->map, f->map_size);
    host->free(f->path);
    host->free(f);
}

static llmh_status gguf_map(struct llmh_model_file *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FAIL(f, LLMH_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return FAIL(f, LLMH_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return FAIL(f, LLMH_ERR_IO, "not a regular file");
    }
    if (sb.st_size < 24) {
        close(fd);
        return FAIL(f, LLMH_ERR_FORMAT,
                    "file is %lld bytes, too short for a GGUF header (24 bytes)",
                    (long long)sb.st_size);
    }
    if ((unsigned long long)sb.st_size > (unsigned long long)SIZE_MAX) {
        close(fd);
        return FAIL(f, LLMH_ERR_IO, "file too large to map");
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return FAIL(f, LLMH_ERR_IO, "mmap failed: %s", strerror(e));
    f->map = m;
    f->map_size = (size_t)sb.st_size;
    return LLMH_OK;
}

static llmh_status gguf_parse_kvs(struct llmh_model_file *f, gguf_reader *r, uint64_t n_kv) {
    /* +1 for llmh.source_format; n_kv is already bounded by the file size */
    f->kvs = f->host->alloc(((size_t)n_kv + 1) * sizeof *f->kvs);
    if (!f->kvs) return FAIL(f, LLMH_ERR_NO_MEMORY, "out of memory for %llu keys", (unsigned long long)n_kv);
    memset(f->kvs, 0, ((size_t)n_kv + 1) * sizeof *f->kvs);
    size_t out = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        char what[64];
        uint64_t at = r->pos, t = 0;
        char *key = NULL;
        llmh_status st;
        snprintf(what, sizeof what, "key %llu name", (unsigned long long)i);
        if ((st = rd_name(r, GGUF_MAX_KEY_LEN, &key, what))) return st;
        char twhat[320];
        snprintf(twhat, sizeof twhat, "key '%s' value type", key);
        uint64_t t_at = r->pos;
        if ((st = rd_uint(r, 4, &t, twhat))) return st;
        if (gguf_min_value_bytes((uint32_t)t) == 0)
            return FAIL(f, LLMH_ERR_FORMAT, "key '%s' (offset %llu): unknown value type %llu at offset %llu",
                        key, (unsigned long long)at, (unsigned long long)t, (unsigned long long)t_at);
        llmh_kv *kv = &f->kvs[out];
        kv->key = key;
        if ((st = rd_value(r, (uint32_t)t, &kv->value, 0, key, UINT64_MAX))) return st;
        /* "llmh." keys are the host's own (e.g. llmh.tokenizer_json names a
         * file to read): a model file may not set them. */
        if (!strncmp(key, "llmh.", 5)) {
            f->host->log(LLMH_LOG_WARN, "gguf", "%s: ignoring reserved key '%s' at offset %llu",
                         f->path, key, (unsigned long long)at);
            continue;
        }
        out++;
    }
    f->n_kvs = out;

    /* duplicate keys */
    if (out > 1) {
        gguf_sort_item *s = f->host->alloc(out * sizeof *s);
        if (!s) return FAIL(f, LLMH_ERR_NO_MEMORY, "out of memory");
        for (size_t i = 0; i < out; i++) s[i] = (gguf_sort_item){f->kvs[i].key, 0, 0, i};
        qsort(s, out, sizeof *s, cmp_by_name);
        for (size_t i = 1; i < out; i++) {
            if (!strcmp(s[i - 1].name, s[i].name)) {
                llmh_status st = FAIL(f, LLMH_ERR_FORMAT, "duplicate key '%s' (keys %zu and %zu)",
                                      s[i].name, s[i - 1].index, s[i].index);
                f->host->free(s);
                return st;
            }
        }
        f->host->free(s);
    }

    f->kvs[f->n_kvs].key = "llmh.source_format";
    f->kvs[f->n_kvs].value.type = LLMH_V_STRING;
    f->kvs[f->n_kvs].value.v.s.ptr = gguf_source_format;
    f->kvs[f->n_kvs].value.v.s.len = sizeof gguf_source_format - 1;
    f->n_kvs++;
    return LLMH_OK;
}

static llmh_status gguf_read_alignment(struct llmh_model_file *f) {
    llmh_kv_list list = {f->kvs, f->n_kvs};
    const llmh_value *v = llmh_kv_find(&list, "general.alignment");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!v) return LLMH_OK;
    int64_t a;
    if (v->type == LLMH_V_STRING || v->type == LLMH_V_ARRAY || v->type == LLMH_V_BOOL ||
        v->type == LLMH_V_F32 || v->type == LLMH_V_F64 || !llmh_value_as_i64(v, &a))
        return FAIL(f, LLMH_ERR_FORMAT, "key 'general.alignment' must be an unsigned integer, not %s",
                    gguf_vtype_name(v->type));
    /* the spec asks for a multiple of 8; a power of two >= 8 also keeps every
     * tensor's data aligned for its widest element (8 bytes) */
    if (a < 8 || a > (int64_t)GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "key 'general.alignment' is %lld: must be a power of two between 8 and %u",
                    (long long)a, GGUF_MAX_ALIGNMENT);
    f->alignment = (uint64_t)a;
    return LLMH_OK;
}

/* Per-tensor file offset as read, before validation against the data section. */
static llmh_status gguf_parse_tensor_infos(struct llmh_model_file *f, gguf_reader *r,
                                           uint64_t n_tensors, uint64_t *rel_offsets) {
    f->tensors = f->host->alloc((n_tensors ? (size_t)n_tensors : 1) * sizeof *f->tensors);
    if (!f->tensors)
        return FAIL(f, LLMH_ERR_NO_MEMORY, "out of memory for %llu tensor infos",
                    (unsigned long long)n_tensors);
    memset(f->tensors, 0, (n_tensors ? (size_t)n_tensors : 1) * sizeof *f->tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        llmh_tensor_info *t = &f->tensors[i];
        char what[320];
        char *name = NULL;
        uint64_t v = 0;
        llmh_status st;
        snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
        if ((st = rd_name(r, GGUF_MAX_NAME_LEN, &name, what))) return st;
        t->struct_size = sizeof *t;
        t->name = name;
        snprintf(what, sizeof what, "tensor %llu '%s' n_dims", (unsigned long long)i, name);
        uint64_t nd_at = r->pos;
        if ((st = rd_uint(r, 4, &v, what))) return st;
        if (v < 1 || v > LLMH_MAX_DIMS)
            return FAIL(f, LLMH_ERR_FORMAT, "%s at offset %llu is %llu: must be 1..%d", what,
                        (unsigned long long)nd_at, (unsigned long long)v, LLMH_MAX_DIMS);
        t->n_dims = (int32_t)v;
        for (int d = 0; d < LLMH_MAX_DIMS; d++) t->ne[d] = 1;
        for (int d = 0; d < t->n_dims; d++) {
            snprintf(what, sizeof what, "tensor %llu '%s' ne[%d]", (unsigned long long)i, name, d);
            uint64_t ne_at = r->pos;
            if ((st = rd_uint(r, 8, &v, what))) return st;
            /* ggml allows no empty dimensions in practice (its loader divides
             * by ne[1..3]); an element count must also fit in int64. */
            if (v < 1 || v > (uint64_t)INT64_MAX)
                return FAIL(f, LLMH_ERR_FORMAT, "%s at offset %llu is %llu: must be >= 1", what,
                            (unsigned long long)ne_at, (unsigned long long)v);
            t->ne[d] = (int64_t)v;
        }
        snprintf(what, sizeof what, "tensor %llu '%s' type", (unsigned long long)i, name);
        uint64_t ty_at = r->pos;
        if ((st = rd_uint(r, 4, &v, what))) return st;
        if (v >= LLMH_DTYPE_COUNT || llmh_dtype_block_size((llmh_dtype)v) == 0)
            return FAIL(f, LLMH_ERR_UNSUPPORTED,
                        "%s at offset %llu: unknown or unsupported ggml type id %llu", what,
                        (unsigned long long)ty_at, (unsigned long long)v);
        t->type = (llmh_dtype)v;
        snprintf(what, sizeof what, "tensor %llu '%s' offset", (unsigned long long)i, name);
        if ((st = rd_uint(r, 8, &rel_offsets[i], what))) return st;
    }
    return LLMH_OK;
}

/* Element count and byte size with overflow checks. */
static llmh_status gguf_tensor_size(struct llmh_model_file *f, size_t i, uint64_t *bytes) {
    llmh_tensor_info *t = &f->tensors[i];
    int64_t bs = llmh_dtype_block_size(t->type);
    uint64_t ts = llmh_dtype_type_size(t->type);
    if (t->ne[0] % bs != 0)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "tensor %zu '%s': ne[0] = %lld is not a multiple of the %s block size %lld", i,
                    t->name, (long long)t->ne[0], llmh_dtype_name(t->type), (long long)bs);
    uint64_t n = (uint64_t)(t->ne[0] / bs) * ts; /* row bytes: ne0/bs <= INT64_MAX, ts <= 292 */
    if ((uint64_t)(t->ne[0] / bs) > UINT64_MAX / ts) goto overflow;
    uint64_t elems = (uint64_t)t->ne[0];
    for (int d = 1; d < LLMH_MAX_DIMS; d++) {
        uint64_t ne = (uint64_t)t->ne[d];
        if (n > UINT64_MAX / ne) goto overflow;
        n *= ne;
        if (elems > (uint64_t)INT64_MAX / ne) goto overflow;
        elems *= ne;
    }
    *bytes = n;
    return LLMH_OK;
overflow:
    return FAIL(f, LLMH_ERR_FORMAT,
                "tensor %zu '%s': shape [%lld, %lld, %lld, %lld] overflows the element count", i,
                t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                (long long)t->ne[3]);
}

static llmh_status gguf_place_tensors(struct llmh_model_file *f, uint64_t header_end,
                                      const uint64_t *rel) {
    uint64_t a = f->alignment;
    if (header_end > UINT64_MAX - (a - 1))
        return FAIL(f, LLMH_ERR_FORMAT, "header end overflows");
    f->data_start = (header_end + a - 1) / a * a;
    uint64_t file_size = f->map_size;
    uint64_t data_bytes = f->data_start <= file_size ? file_size - f->data_start : 0;
    if (f->n_tensors > 0 && f->data_start > file_size)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "tensor data section starts at offset %llu, past end of file (size %llu)",
                    (unsigned long long)f->data_start, (unsigned long long)file_size);
    for (size_t i = 0; i < f->n_tensors; i++) {
        llmh_tensor_info *t = &f->tensors[i];
        uint64_t size = 0;
        llmh_status st = gguf_tensor_size(f, i, &size);
        if (st) return st;
        if (rel[i] % a != 0)
            return FAIL(f, LLMH_ERR_FORMAT,
                        "tensor %zu '%s': data offset %llu is not a multiple of the alignment %llu",
                        i, t->name, (unsigned long long)rel[i], (unsigned long long)a);
        if (rel[i] > data_bytes || size > data_bytes - rel[i])
            return FAIL(f, LLMH_ERR_FORMAT,
                        "tensor %zu '%s': data [offset %llu, size %llu] runs past end of file "
                        "(size %llu, data section at %llu)",
                        i, t->name,
                        (unsigned long long)(rel[i] <= UINT64_MAX - f->data_start
                                                 ? f->data_start + rel[i] : rel[i]),
                        (unsigned long long)size, (unsigned long long)file_size,
                        (unsigned long long)f->data_start);
        t->size = size;
        t->file_offset = f->data_start + rel[i];
        t->data = f->map + t->file_offset;
    }
    if (f->n_tensors < 2) return LLMH_OK;

    gguf_sort_item *s = f->host->alloc(f->n_tensors * sizeof *s);
    if (!s) return FAIL(f, LLMH_ERR_NO_MEMORY, "out of memory");
    llmh_status st = LLMH_OK;
    for (size_t i = 0; i < f->n_tensors; i++)
        s[i] = (gguf_sort_item){f->tensors[i].name, f->tensors[i].file_offset,
                                f->tensors[i].file_offset + f->tensors[i].size, i};
    qsort(s, f->n_tensors, sizeof *s, cmp_by_name);
    for (size_t i = 1; i < f->n_tensors && !st; i++)
        if (!strcmp(s[i - 1].name, s[i].name))
            st = FAIL(f, LLMH_ERR_FORMAT, "duplicate tensor name '%s' (tensors %zu and %zu)",
                      s[i].name, s[i - 1].index, s[i].index);
    if (!st) {
        qsort(s, f->n_tensors, sizeof *s, cmp_by_offset);
        for (size_t i = 1; i < f->n_tensors && !st; i++)
            if (s[i].a < s[i - 1].b)
                st = FAIL(f, LLMH_ERR_FORMAT,
                          "tensor %zu '%s' [offset %llu, size %llu] overlaps tensor %zu '%s' "
                          "[offset %llu, size %llu]",
                          s[i].index, s[i].name, (unsigned long long)s[i].a,
                          (unsigned long long)(s[i].b - s[i].a), s[i - 1].index, s[i - 1].name,
                          (unsigned long long)s[i - 1].a,
                          (unsigned long long)(s[i - 1].b - s[i - 1].a));
    }
    f->host->free(s);
    return st;
}

static llmh_status gguf_parse(struct llmh_model_file *f) {
    gguf_reader r = {f, f->map, f->map_size, 0};
    uint64_t v = 0, n_tensors = 0, n_kv = 0;
    llmh_status st;

    if (memcmp(f->map, GGUF_MAGIC, 4) != 0)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "not a GGUF file: magic at offset 0 is %02x %02x %02x %02x, expected \"GGUF\"",
                    f->map[0], f->map[1], f->map[2], f->map[3]);
    r.pos = 4;
    if ((st = rd_uint(&r, 4, &v, "version"))) return st;
    if (v == 1)
        return FAIL(f, LLMH_ERR_UNSUPPORTED,
                    "GGUF version 1 (offset 4) is not supported: v1 used 32-bit counts and "
                    "lengths; re-convert the model with a current llama.cpp (v2 or v3)");
    if (v != 2 && v != 3) {
        if ((v & 0xffff) == 0 && (v >> 16) != 0)
            return FAIL(f, LLMH_ERR_UNSUPPORTED,
                        "GGUF version field at offset 4 is 0x%08llx: this looks like a "
                        "big-endian GGUF, which is not supported",
                        (unsigned long long)v);
        return FAIL(f, LLMH_ERR_UNSUPPORTED,
                    "GGUF version %llu at offset 4 is not supported (supported: 2, 3)",
                    (unsigned long long)v);
    }
    f->version = (uint32_t)v;
    if ((st = rd_uint(&r, 8, &n_tensors, "n_tensors"))) return st;
    if ((st = rd_uint(&r, 8, &n_kv, "n_kv"))) return st;
    uint64_t left = r.size - r.pos;
    if (n_tensors > left / GGUF_MIN_TENSOR_INFO_BYTES)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "n_tensors at offset 8 is %llu: the file (size %llu) cannot hold that many "
                    "tensor infos",
                    (unsigned long long)n_tensors, (unsigned long long)r.size);
    if (n_kv > left / GGUF_MIN_KV_BYTES ||
        n_tensors * GGUF_MIN_TENSOR_INFO_BYTES > left - n_kv * GGUF_MIN_KV_BYTES)
        return FAIL(f, LLMH_ERR_FORMAT,
                    "n_kv at offset 16 is %llu (with %llu tensors): the file (size %llu) cannot "
                    "hold that many key/values",
                    (unsigned long long)n_kv, (unsigned long long)n_tensors,
                    (unsigned long long)r.size);

    if ((st = gguf_parse_kvs(f, &r, n_kv))) return st;
    if ((st = gguf_read_alignment(f))) return st;

    uint64_t *rel = f->host->alloc((n_tensors ? (size_t)n_tensors : 1) * sizeof *rel);
    if (!rel) return FAIL(f, LLMH_ERR_NO_MEMORY, "out of memory");
    st = gguf_parse_tensor_infos(f, &r, n_tensors, rel);
    if (!st) {
        f->n_tensors = (size_t)n_tensors;
        st = gguf_place_tensors(f, r.pos, rel);
    }
    f->host->free(rel);
    return st;
}

static llmh_status gguf_open(void *state, const char *path, const llmh_kv_list *options,
                             llmh_model_file **out) {
    const llmh_host_api *host = state;
    (void)options; /* GGUF needs no options */
    if (!host) return LLMH_ERR_INVALID_ARG;
    if (!path || !out) {
        host->set_error("gguf: open: path and out are required");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    struct llmh_model_file *f = host->alloc(sizeof *f);
    if (!f) {
        host->set_error("%s: out of memory", path);
        return LLMH_ERR_NO_MEMORY;
    }
    memset(f, 0, sizeof *f);
    f->host = host;
    size_t plen = strlen(path);
    f->path = host->alloc(plen + 1);
    if (!f->path) {
        host->free(f);
        host->set_error("%s: out of memory", path);
        return LLMH_ERR_NO_MEMORY;
    }
    memcpy(f->path, path, plen + 1);
    llmh_status st = gguf_map(f);
    if (!st) st = gguf_parse(f);
    if (st) {
        gguf_close(f);
        return st;
    }
    host->log(LLMH_LOG_DEBUG, "gguf", "%s: GGUF v%u, %zu keys, %zu tensors, alignment %llu", path,
              f->version, f->n_kvs, f->n_tensors, (unsigned long long)f->alignment);
    *out = f;
    return LLMH_OK;
}

static int32_t gguf_probe_file(void *state, const char *path, const uint8_t *head, size_t head_len) {
    (void)state;
    (void)path;
    if (head && head_len >= 4 && memcmp(head, GGUF_MAGIC, 4) == 0) return 100;
    return 0;
}

static llmh_status gguf_get_metadata(llmh_model_file *f, llmh_kv_list *out) {
    if (!f || !out) return LLMH_ERR_INVALID_ARG;
    out->items = f->kvs;
    out->n = f->n_kvs;
    return LLMH_OK;
}

static llmh_status gguf_get_tensors(llmh_model_file *f, const llmh_tensor_info **out, size_t *n) {
    if (!f || !out || !n) return LLMH_ERR_INVALID_ARG;
    *out = f->tensors;
    *n = f->n_tensors;
    return LLMH_OK;
}

static llmh_status gguf_init(const llmh_host_api *host, void **state) {
    *state = (void *)host;
    return LLMH_OK;
}

static const llmh_format_iface gguf_iface = {
    .struct_size = sizeof(llmh_format_iface),
    .probe_file = gguf_probe_file,
    .open = gguf_open,
    .close = gguf_close,
    .get_metadata = gguf_get_metadata,
    .get_tensors = gguf_get_tensors,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_FORMAT, "gguf", "1.0.0", "MIT",
                   "GGUF v2/v3 model files (memory-mapped, zero-copy tensors)", 50, NULL,
                   gguf_init, NULL, &gguf_iface, NULL)

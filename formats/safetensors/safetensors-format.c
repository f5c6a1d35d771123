/*
 * safetensors-format.c — the "safetensors" format plugin: Hugging Face model
 * directories (config.json + model.safetensors, or a sharded
 * model.safetensors.index.json) and single .safetensors files.
 *
 * What it exposes follows GGUF conventions so the core sees one shape:
 *  - config.json is mapped onto GGUF keys (general.architecture,
 *    <arch>.block_count, <arch>.attention.head_count, ...);
 *  - tensor names are mapped from HF module names onto GGUF names
 *    (model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight);
 *  - shapes are reversed into ggml's ne order (HF [out, in] -> ne {in, out});
 *  - for llama, q/k rows (weights and biases) are permuted from HF's
 *    rotate-half order into GGUF's interleaved order. That permuted copy is
 *    owned by the plugin; every other tensor points into the read-only
 *    mapping of its shard (zero-copy).
 *  - the tokenizer is described by "llmh.tokenizer_json" (absolute path of
 *    tokenizer.json) plus tokenizer.chat_template / bos / eos ids.
 *
 * A .safetensors file is: u64 N (little-endian) | N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {...}} | data. Offsets are relative to the data start.
 * Everything read from disk is untrusted and checked; errors name the file,
 * the tensor or key, and the byte offset.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmh-plugin.h"

#define ST_MAX_HEADER (UINT64_C(100) << 20) /* the reference implementation's limit */
#define ST_MAX_JSON_FILE (UINT64_C(64) << 20) /* config.json, tokenizer_config.json, index */
#define ST_MAX_SHARDS 4096
#define ST_MAX_SAFE_INT 9007199254740992.0   /* 2^53: larger JSON numbers lose precision */

typedef struct st_shard {
    char *path;          /* absolute or as resolved */
    uint8_t *map;
    size_t size;
    uint64_t data_start; /* 8 + header length */
} st_shard;

/* A tensor as found in a shard, before name mapping. */
typedef struct st_raw {
    char *hf_name;
    size_t shard;
    llmh_dtype type;
    int32_t n_dims;
    int64_t ne[LLMH_MAX_DIMS];
    uint64_t begin, end; /* relative to the shard's data start */
} st_raw;

struct llmh_model_file {
    const llmh_host_api *host;
    char *path;          /* as passed to open() */
    char *dir;           /* the model directory (absolute when resolvable) */
    st_shard *shards;
    size_t n_shards;
    st_raw *raw;
    size_t n_raw, cap_raw;
    llmh_tensor_info *tensors;
    size_t n_tensors;
    llmh_kv *kvs;
    size_t n_kvs, cap_kvs;
    void **allocs;       /* strings, value arrays, permuted copies */
    size_t n_allocs, cap_allocs;

    /* from config.json */
    const char *arch;    /* "llama", "qwen2", "qwen3" or NULL */
    int tied;            /* tie_word_embeddings */
    int64_t n_head, n_head_kv, head_dim, n_embd;
    double rope_base;
    int permute_qk;
};

/* ------------------------------------------------------------------------ */
/* Errors and allocation                                                     */
/* ------------------------------------------------------------------------ */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static llmh_status st_fail(struct llmh_model_file *f, llmh_status st, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->host->set_error("%s", msg);
    return st;
}

static int st_track(struct llmh_model_file *f, void *p) {
    if (f->n_allocs == f->cap_allocs) {
        size_t cap = f->cap_allocs ? f->cap_allocs * 2 : 64;
        void **na = f->host->alloc(cap * sizeof *na);
        if (!na) return 0;
        if (f->n_allocs) memcpy(na, f->allocs, f->n_allocs * sizeof *na);
        f->host->free(f->allocs);
        f->allocs = na;
        f->cap_allocs = cap;
    }
    f->allocs[f->n_allocs++] = p;
    return 1;
}

static void *st_alloc(struct llmh_model_file *f, size_t size, size_t align) {
    void *p = align ? f->host->alloc_aligned(size ? size : 1, align) : f->host->alloc(size ? size : 1);
    if (!p) return NULL;
    if (!st_track(f, p)) {
        f->host->free(p);
        return NULL;
    }
    return p;
}

static char *st_strndup(struct llmh_model_file *f, const char *s, size_t n) {
    char *p = st_alloc(f, n + 1, 0);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static char *st_strdup(struct llmh_model_file *f, const char *s) { return st_strndup(f, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static char *st_printf(struct llmh_model_file *f, const char *fmt, ...) {
    char buf[PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) return NULL;
    return st_strndup(f, buf, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* Metadata list                                                             */
/* ------------------------------------------------------------------------ */
static llmh_value *st_kv_add(struct llmh_model_file *f, const char *key) {
    for (size_t i = 0; i < f->n_kvs; i++)
        if (!strcmp(f->kvs[i].key, key)) return &f->kvs[i].value; /* replace */
    if (f->n_kvs == f->cap_kvs) {
        size_t cap = f->cap_kvs ? f->cap_kvs * 2 : 32;
        llmh_kv *nk = f->host->alloc(cap * sizeof *nk);
        if (!nk) return NULL;
        if (f->n_kvs) memcpy(nk, f->kvs, f->n_kvs * sizeof *nk);
        f->host->free(f->kvs);
        f->kvs = nk;
        f->cap_kvs = cap;
    }
    char *k = st_strdup(f, key);
    if (!k) return NULL;
    llmh_kv *kv = &f->kvs[f->n_kvs++];
    memset(kv, 0, sizeof *kv);
    kv->key = k;
    return &kv->value;
}

static llmh_status st_set_str(struct llmh_model_file *f, const char *key, const char *s, size_t len) {
    llmh_value *v = st_kv_add(f, key);
    char *copy = v ? st_strndup(f, s, len) : NULL;
    if (!copy) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    v->type = LLMH_V_STRING;
    v->v.s.ptr = copy;
    v->v.s.len = len;
    return LLMH_OK;
}

static llmh_status st_set_u32(struct llmh_model_file *f, const char *key, uint64_t x) {
    llmh_value *v = st_kv_add(f, key);
    if (!v) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    v->type = LLMH_V_U32;
    v->v.u = x;
    return LLMH_OK;
}

static llmh_status st_set_f32(struct llmh_model_file *f, const char *key, double x) {
    llmh_value *v = st_kv_add(f, key);
    if (!v) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    v->type = LLMH_V_F32;
    v->v.f = (double)(float)x; /* as GGUF stores it */
    return LLMH_OK;
}

static llmh_status st_set_bool(struct llmh_model_file *f, const char *key, int b) {
    llmh_value *v = st_kv_add(f, key);
    if (!v) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    v->type = LLMH_V_BOOL;
    v->v.b = b ? 1 : 0;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */
static int st_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int st_is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int st_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Read a small JSON file and parse it (NULL result with an error set on failure). */
static llmh_status st_load_json(struct llmh_model_file *f, const char *path, cJSON **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return st_fail(f, LLMH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return st_fail(f, LLMH_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > ST_MAX_JSON_FILE) {
        close(fd);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: %lld bytes is too large for a JSON side file (limit %llu)",
                       path, (long long)sb.st_size, (unsigned long long)ST_MAX_JSON_FILE);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = f->host->alloc(n + 1);
    if (!buf) {
        close(fd);
        return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        f->host->free(buf);
        return st_fail(f, LLMH_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!j) {
        size_t at = end && end >= buf && end <= buf + n ? (size_t)(end - buf) : 0;
        f->host->free(buf);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: invalid JSON near byte offset %zu", path, at);
    }
    f->host->free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: top-level JSON value is not an object", path);
    }
    *out = j;
    return LLMH_OK;
}

/* A JSON number that is a non-negative integer representable exactly. */
static int st_json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_SAFE_INT || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* One .safetensors shard                                                    */
/* ------------------------------------------------------------------------ */
static int st_parse_dtype(const char *s, llmh_dtype *out) {
    if (!strcmp(s, "F32")) *out = LLMH_DTYPE_F32;
    else if (!strcmp(s, "F16")) *out = LLMH_DTYPE_F16;
    else if (!strcmp(s, "BF16")) *out = LLMH_DTYPE_BF16;
    else return 0;
    return 1;
}

static st_raw *st_raw_add(struct llmh_model_file *f) {
    if (f->n_raw == f->cap_raw) {
        size_t cap = f->cap_raw ? f->cap_raw * 2 : 256;
        st_raw *nr = f->host->alloc(cap * sizeof *nr);
        if (!nr) return NULL;
        if (f->n_raw) memcpy(nr, f->raw, f->n_raw * sizeof *nr);
        f->host->free(f->raw);
        f->raw = nr;
        f->cap_raw = cap;
    }
    st_raw *r = &f->raw[f->n_raw++];
    memset(r, 0, sizeof *r);
    return r;
}

typedef struct st_span {
    uint64_t begin, end;
    const char *name;
} st_span;

static int st_cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static llmh_status st_parse_entry(struct llmh_model_file *f, size_t si, const cJSON *e,
                                  uint64_t data_size, st_raw *r) {
    const st_shard *sh = &f->shards[si];
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header: tensor '%s' is not a JSON object", sh->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header: tensor '%s': missing or non-string 'dtype'",
                       sh->path, name);
    if (!cJSON_IsArray(shape))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header: tensor '%s': missing or non-array 'shape'",
                       sh->path, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: header: tensor '%s': 'data_offsets' must be an array [begin, end]",
                       sh->path, name);
    if (!st_parse_dtype(dt->valuestring, &r->type))
        return st_fail(f, LLMH_ERR_UNSUPPORTED,
                       "%s: tensor '%s': dtype %s is not supported (F32, F16 and BF16 are)",
                       sh->path, name, dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > LLMH_MAX_DIMS)
        return st_fail(f, LLMH_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)",
                       sh->path, name, nd, LLMH_MAX_DIMS);
    for (int d = 0; d < LLMH_MAX_DIMS; d++) r->ne[d] = 1;
    r->n_dims = nd > 0 ? nd : 1; /* a scalar is one element */
    uint64_t elems = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t v;
        if (!st_json_uint(cJSON_GetArrayItem(shape, d), &v) || v > (uint64_t)INT64_MAX)
            return st_fail(f, LLMH_ERR_FORMAT,
                           "%s: header: tensor '%s': shape[%d] is not a non-negative integer",
                           sh->path, name, d);
        if (v == 0)
            return st_fail(f, LLMH_ERR_UNSUPPORTED, "%s: tensor '%s': shape[%d] is 0 (empty tensors are not supported)",
                           sh->path, name, d);
        r->ne[nd - 1 - d] = (int64_t)v; /* HF row-major -> ggml ne order */
        if (elems > (uint64_t)INT64_MAX / v)
            return st_fail(f, LLMH_ERR_FORMAT, "%s: header: tensor '%s': element count overflows",
                           sh->path, name);
        elems *= v;
    }
    uint64_t begin, end;
    if (!st_json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !st_json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: header: tensor '%s': data_offsets are not non-negative integers",
                       sh->path, name);
    if (begin > end)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] are out of order", sh->path, name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: tensor '%s': data [offset %llu, size %llu] runs past end of file (size %llu)",
                       sh->path, name, (unsigned long long)(sh->data_start + begin),
                       (unsigned long long)(end - begin), (unsigned long long)sh->size);
    uint64_t es = llmh_dtype_type_size(r->type);
    if (elems > UINT64_MAX / es || elems * es != end - begin)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: tensor '%s': shape holds %llu %s elements (%llu bytes) but data_offsets "
                       "[%llu, %llu] span %llu bytes",
                       sh->path, name, (unsigned long long)elems, dt->valuestring,
                       (unsigned long long)(elems <= UINT64_MAX / es ? elems * es : UINT64_MAX),
                       (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin));
    r->begin = begin;
    r->end = end;
    r->shard = si;
    r->hf_name = st_strdup(f, name);
    if (!r->hf_name) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", sh->path);
    return LLMH_OK;
}

static llmh_status st_open_shard(struct llmh_model_file *f, size_t si) {
    st_shard *sh = &f->shards[si];
    int fd = open(sh->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return st_fail(f, LLMH_ERR_IO, "%s: cannot open: %s", sh->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return st_fail(f, LLMH_ERR_IO, "%s: not a regular file", sh->path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: file is %lld bytes, too short for a safetensors header length (8 bytes)",
                       sh->path, (long long)sb.st_size);
    }
    if ((unsigned long long)sb.st_size > (unsigned long long)SIZE_MAX) {
        close(fd);
        return st_fail(f, LLMH_ERR_IO, "%s: file too large to map", sh->path);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED) return st_fail(f, LLMH_ERR_IO, "%s: mmap failed: %s", sh->path, strerror(err));
    sh->map = m;
    sh->size = (size_t)sb.st_size;

    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)sh->map[i] << (8 * i);
    if (n > sh->size - 8)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: header length %llu at offset 0 runs past end of file (size %llu)",
                       sh->path, (unsigned long long)n, (unsigned long long)sh->size);
    if (n > ST_MAX_HEADER)
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header length %llu at offset 0 exceeds the %llu-byte limit",
                       sh->path, (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n < 2 || sh->map[8] != '{')
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: not a safetensors file: the header at offset 8 does not start with '{'",
                       sh->path);
    sh->data_start = 8 + n;
    const char *json = (const char *)sh->map + 8;
    const char *end = NULL;
    cJSON *hdr = cJSON_ParseWithLengthOpts(json, (size_t)n, &end, 0);
    if (!hdr) {
        size_t at = end && end >= json && end <= json + n ? (size_t)(end - json) : 0;
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header: invalid JSON near byte offset %zu", sh->path,
                       8 + at);
    }
    /* only trailing whitespace may follow the JSON object inside the header */
    for (const char *p = end; p && p < json + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(hdr);
            return st_fail(f, LLMH_ERR_FORMAT, "%s: header: trailing bytes after the JSON at offset %zu",
                           sh->path, (size_t)(8 + (p - json)));
        }
    if (!cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: header at offset 8 is not a JSON object", sh->path);
    }
    uint64_t data_size = sh->size - sh->data_start;
    size_t first = f->n_raw, count = 0;
    llmh_status st = LLMH_OK;
    for (const cJSON *e = hdr->child; e && !st; e = e->next) {
        if (!e->string) {
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: header: entry without a name", sh->path);
            break;
        }
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e))
                st = st_fail(f, LLMH_ERR_FORMAT, "%s: header: '__metadata__' is not an object", sh->path);
            continue;
        }
        if (!e->string[0]) {
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: header: tensor with an empty name", sh->path);
            break;
        }
        st_raw *r = st_raw_add(f);
        if (!r) {
            st = st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", sh->path);
            break;
        }
        st = st_parse_entry(f, si, e, data_size, r);
        count++;
    }
    cJSON_Delete(hdr);
    if (st) return st;

    /* no two tensors of this shard may share bytes */
    if (count > 1) {
        st_span *sp = f->host->alloc(count * sizeof *sp);
        if (!sp) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", sh->path);
        for (size_t i = 0; i < count; i++)
            sp[i] = (st_span){f->raw[first + i].begin, f->raw[first + i].end, f->raw[first + i].hf_name};
        qsort(sp, count, sizeof *sp, st_cmp_span);
        for (size_t i = 1; i < count && !st; i++)
            if (sp[i].begin < sp[i - 1].end)
                st = st_fail(f, LLMH_ERR_FORMAT,
                             "%s: tensor '%s' [offset %llu, size %llu] overlaps tensor '%s' [offset "
                             "%llu, size %llu]",
                             sh->path, sp[i].name, (unsigned long long)(sh->data_start + sp[i].begin),
                             (unsigned long long)(sp[i].end - sp[i].begin), sp[i - 1].name,
                             (unsigned long long)(sh->data_start + sp[i - 1].begin),
                             (unsigned long long)(sp[i - 1].end - sp[i - 1].begin));
        f->host->free(sp);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Locating the shards                                                       */
/* ------------------------------------------------------------------------ */
static llmh_status st_add_shard(struct llmh_model_file *f, const char *path) {
    for (size_t i = 0; i < f->n_shards; i++)
        if (!strcmp(f->shards[i].path, path)) return LLMH_OK;
    if (f->n_shards >= ST_MAX_SHARDS)
        return st_fail(f, LLMH_ERR_FORMAT, "%s: more than %d shards", f->path, ST_MAX_SHARDS);
    st_shard *ns = f->host->alloc((f->n_shards + 1) * sizeof *ns);
    if (!ns) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    if (f->n_shards) memcpy(ns, f->shards, f->n_shards * sizeof *ns);
    f->host->free(f->shards);
    f->shards = ns;
    memset(&ns[f->n_shards], 0, sizeof *ns);
    ns[f->n_shards].path = st_strdup(f, path);
    if (!ns[f->n_shards].path) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    f->n_shards++;
    return LLMH_OK;
}

/* Sharded checkpoint: model.safetensors.index.json names each tensor's shard. */
static llmh_status st_open_index(struct llmh_model_file *f, const char *index_path) {
    cJSON *idx = NULL;
    llmh_status st = st_load_json(f, index_path, &idx);
    if (st) return st;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        cJSON_Delete(idx);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: missing or empty 'weight_map' object", index_path);
    }
    for (const cJSON *e = wm->child; e && !st; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", index_path,
                         e->string ? e->string : "");
            break;
        }
        const char *fn = e->valuestring;
        /* shard names are plain file names inside the model directory */
        if (strchr(fn, '/') || !strcmp(fn, ".") || !strcmp(fn, "..")) {
            st = st_fail(f, LLMH_ERR_FORMAT,
                         "%s: weight_map['%s'] = '%s' is not a plain file name in the model directory",
                         index_path, e->string ? e->string : "", fn);
            break;
        }
        char *p = st_printf(f, "%s/%s", f->dir, fn);
        if (!p) {
            st = st_fail(f, LLMH_ERR_NO_MEMORY, "%s: path too long or out of memory", index_path);
            break;
        }
        st = st_add_shard(f, p);
    }
    for (size_t i = 0; i < f->n_shards && !st; i++) st = st_open_shard(f, i);
    /* every tensor the index names must be in the shard it names */
    for (const cJSON *e = wm->child; e && !st; e = e->next) {
        size_t k = 0;
        for (; k < f->n_raw; k++)
            if (!strcmp(f->raw[k].hf_name, e->string)) break;
        if (k == f->n_raw) {
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: tensor '%s' listed in the weight_map is in no shard",
                         index_path, e->string);
            break;
        }
        const char *sp = f->shards[f->raw[k].shard].path;
        const char *base = strrchr(sp, '/');
        base = base ? base + 1 : sp;
        if (strcmp(base, e->valuestring) != 0)
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: tensor '%s' is in shard '%s', not '%s' as the index says",
                         index_path, e->string, base, e->valuestring);
    }
    cJSON_Delete(idx);
    return st;
}

/* Resolve `path` (file or directory) into f->dir and the shard list. */
static llmh_status st_locate(struct llmh_model_file *f) {
    char abs[PATH_MAX];
    if (st_is_dir(f->path)) {
        f->dir = realpath(f->path, abs) ? st_strdup(f, abs) : st_strdup(f, f->path);
        if (!f->dir) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
        char *idx = st_printf(f, "%s/model.safetensors.index.json", f->dir);
        char *one = st_printf(f, "%s/model.safetensors", f->dir);
        if (!idx || !one) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: path too long", f->path);
        if (st_is_file(idx)) return st_open_index(f, idx);
        if (st_is_file(one)) {
            llmh_status st = st_add_shard(f, one);
            return st ? st : st_open_shard(f, 0);
        }
        /* otherwise: exactly one *.safetensors file in the directory */
        DIR *d = opendir(f->dir);
        if (!d) return st_fail(f, LLMH_ERR_IO, "%s: cannot list directory: %s", f->path, strerror(errno));
        struct dirent *de;
        char *found = NULL;
        int n = 0;
        while ((de = readdir(d)) != NULL) {
            if (!st_ends_with(de->d_name, ".safetensors")) continue;
            if (n++ == 0) found = st_printf(f, "%s/%s", f->dir, de->d_name);
        }
        closedir(d);
        if (n == 0)
            return st_fail(f, LLMH_ERR_NOT_FOUND,
                           "%s: no model.safetensors, model.safetensors.index.json or *.safetensors "
                           "file in this directory",
                           f->path);
        if (n > 1)
            return st_fail(f, LLMH_ERR_FORMAT,
                           "%s: %d *.safetensors files but no model.safetensors.index.json saying "
                           "which belong to the model",
                           f->path, n);
        if (!found) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: path too long", f->path);
        llmh_status st = st_add_shard(f, found);
        return st ? st : st_open_shard(f, 0);
    }
    if (!st_is_file(f->path))
        return st_fail(f, LLMH_ERR_IO, "%s: no such file or directory", f->path);
    const char *file = realpath(f->path, abs) ? abs : f->path;
    const char *slash = strrchr(file, '/');
    f->dir = slash ? st_strndup(f, file, slash == file ? 1 : (size_t)(slash - file)) : st_strdup(f, ".");
    char *fcopy = st_strdup(f, file);
    if (!f->dir || !fcopy) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    if (st_ends_with(fcopy, ".index.json")) return st_open_index(f, fcopy);
    llmh_status st = st_add_shard(f, fcopy);
    return st ? st : st_open_shard(f, 0);
}

/* ------------------------------------------------------------------------ */
/* config.json -> GGUF metadata                                              */
/* ------------------------------------------------------------------------ */
static const cJSON *st_cfg(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* An integer config key mapped to a u32 GGUF key; absent is fine unless `required`. */
static llmh_status st_map_uint(struct llmh_model_file *f, const char *cfg_path, const cJSON *cfg,
                               const char *hf_key, const char *gguf_key, int required, int64_t *out) {
    const cJSON *v = st_cfg(cfg, hf_key);
    uint64_t x;
    if (!v) {
        if (required)
            return st_fail(f, LLMH_ERR_FORMAT, "%s: required key '%s' is missing", cfg_path, hf_key);
        return LLMH_OK;
    }
    if (!st_json_uint(v, &x) || x > UINT32_MAX)
        return st_fail(f, LLMH_ERR_FORMAT, "%s: key '%s' must be an integer 0..4294967295", cfg_path, hf_key);
    if (out) *out = (int64_t)x;
    if (!gguf_key) return LLMH_OK;
    char k[160];
    snprintf(k, sizeof k, "%s.%s", f->arch, gguf_key);
    return st_set_u32(f, k, x);
}

static llmh_status st_map_float(struct llmh_model_file *f, const char *cfg_path, const cJSON *cfg,
                                const char *hf_key, const char *gguf_key, double def, int has_def,
                                double *out) {
    const cJSON *v = st_cfg(cfg, hf_key);
    double x = def;
    if (v) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return st_fail(f, LLMH_ERR_FORMAT, "%s: key '%s' must be a number", cfg_path, hf_key);
        x = v->valuedouble;
    } else if (!has_def) {
        return LLMH_OK;
    }
    if (out) *out = x;
    char k[160];
    snprintf(k, sizeof k, "%s.%s", f->arch, gguf_key);
    return st_set_f32(f, k, x);
}

/* Llama 3 rope scaling: per-frequency factors as llama.cpp's converter
 * computes them, exposed as the F32 tensor rope_freqs.weight [head_dim/2]. */
static llmh_status st_llama3_rope_freqs(struct llmh_model_file *f, const char *cfg_path,
                                        const cJSON *rs, double factor) {
    const cJSON *lo = st_cfg(rs, "low_freq_factor"), *hi = st_cfg(rs, "high_freq_factor");
    const cJSON *oc = st_cfg(rs, "original_max_position_embeddings");
    double low = lo && cJSON_IsNumber(lo) ? lo->valuedouble : 1.0;
    double high = hi && cJSON_IsNumber(hi) ? hi->valuedouble : 4.0;
    double old_ctx = oc && cJSON_IsNumber(oc) ? oc->valuedouble : 8192.0;
    int64_t dim = f->head_dim;
    if (dim <= 0 || dim % 2 || dim > 65536 || !(high > low) || !(old_ctx > 0) || !(factor > 0))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: rope_scaling (llama3) parameters are invalid", cfg_path);
    float *fr = st_alloc(f, (size_t)(dim / 2) * sizeof(float), 64);
    if (!fr) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", cfg_path);
    double lo_wl = old_ctx / low, hi_wl = old_ctx / high;
    for (int64_t i = 0; i < dim / 2; i++) {
        double freq = 1.0 / pow(f->rope_base, (double)(2 * i) / (double)dim);
        double wl = 2.0 * M_PI / freq;
        double v;
        if (wl < hi_wl) v = 1.0;
        else if (wl > lo_wl) v = factor;
        else {
            double smooth = (old_ctx / wl - low) / (high - low);
            v = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        fr[i] = (float)v;
    }
    st_raw *r = st_raw_add(f);
    if (!r) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", cfg_path);
    r->hf_name = st_strdup(f, "rope_freqs.weight");
    if (!r->hf_name) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", cfg_path);
    r->shard = SIZE_MAX; /* plugin-owned: data in begin as a pointer */
    r->type = LLMH_DTYPE_F32;
    r->n_dims = 1;
    r->ne[0] = dim / 2;
    r->ne[1] = r->ne[2] = r->ne[3] = 1;
    r->begin = (uint64_t)(uintptr_t)fr;
    r->end = r->begin + (uint64_t)(dim / 2) * sizeof(float);
    return LLMH_OK;
}

static llmh_status st_map_rope_scaling(struct llmh_model_file *f, const char *cfg_path, const cJSON *cfg) {
    const cJSON *rs = st_cfg(cfg, "rope_scaling");
    if (!rs) return LLMH_OK;
    if (!cJSON_IsObject(rs))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: 'rope_scaling' must be an object or null", cfg_path);
    const cJSON *t = st_cfg(rs, "rope_type");
    if (!t) t = st_cfg(rs, "type");
    if (!cJSON_IsString(t))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: rope_scaling has no 'rope_type' string", cfg_path);
    const cJSON *fa = st_cfg(rs, "factor");
    double factor = 1.0;
    if (fa) {
        if (!cJSON_IsNumber(fa) || !(fa->valuedouble > 0))
            return st_fail(f, LLMH_ERR_FORMAT, "%s: rope_scaling.factor must be a positive number", cfg_path);
        factor = fa->valuedouble;
    }
    char k[160];
    llmh_status st;
    const char *type = t->valuestring;
    if (!strcmp(type, "default")) return LLMH_OK;
    if (!strcmp(type, "llama3")) return st_llama3_rope_freqs(f, cfg_path, rs, factor);
    if (strcmp(type, "linear") != 0 && strcmp(type, "yarn") != 0)
        return st_fail(f, LLMH_ERR_UNSUPPORTED,
                       "%s: rope_scaling type '%s' is not supported (linear, yarn, llama3)", cfg_path, type);
    snprintf(k, sizeof k, "%s.rope.scaling.type", f->arch);
    if ((st = st_set_str(f, k, type, strlen(type)))) return st;
    snprintf(k, sizeof k, "%s.rope.scaling.factor", f->arch);
    if ((st = st_set_f32(f, k, factor))) return st;
    const cJSON *oc = st_cfg(rs, "original_max_position_embeddings");
    uint64_t x;
    if (oc) {
        if (!st_json_uint(oc, &x) || x > UINT32_MAX)
            return st_fail(f, LLMH_ERR_FORMAT,
                           "%s: rope_scaling.original_max_position_embeddings must be an integer", cfg_path);
        snprintf(k, sizeof k, "%s.rope.scaling.original_context_length", f->arch);
        if ((st = st_set_u32(f, k, x))) return st;
    }
    return LLMH_OK;
}

/* A token id key in config.json: an integer, or a list whose first item is used. */
static int st_token_id(const cJSON *v, uint64_t *out) {
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    return v && st_json_uint(v, out) && *out <= INT32_MAX;
}

static llmh_status st_map_config(struct llmh_model_file *f) {
    char *cfg_path = st_printf(f, "%s/config.json", f->dir);
    if (!cfg_path) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: path too long", f->path);
    if (!st_is_file(cfg_path)) {
        f->host->log(LLMH_LOG_WARN, "safetensors",
                     "%s: no config.json next to the weights: no architecture metadata", f->path);
        return LLMH_OK;
    }
    cJSON *cfg = NULL;
    llmh_status st = st_load_json(f, cfg_path, &cfg);
    if (st) return st;

    const cJSON *mt = st_cfg(cfg, "model_type");
    if (!cJSON_IsString(mt)) {
        cJSON_Delete(cfg);
        return st_fail(f, LLMH_ERR_FORMAT, "%s: missing 'model_type' string", cfg_path);
    }
    const char *m = mt->valuestring;
    if (!strcmp(m, "llama") || !strcmp(m, "mistral")) f->arch = "llama";
    else if (!strcmp(m, "qwen2")) f->arch = "qwen2";
    else if (!strcmp(m, "qwen3")) f->arch = "qwen3";
    else {
        st = st_fail(f, LLMH_ERR_UNSUPPORTED,
                     "%s: model_type '%s' is not supported (llama, mistral, qwen2, qwen3)", cfg_path, m);
        cJSON_Delete(cfg);
        return st;
    }
    f->permute_qk = !strcmp(f->arch, "llama");
    st = st_set_str(f, "general.architecture", f->arch, strlen(f->arch));

    /* general.name: _name_or_path when set, else the directory's name */
    if (!st) {
        const cJSON *nm = st_cfg(cfg, "_name_or_path");
        const char *name = NULL;
        if (cJSON_IsString(nm) && nm->valuestring[0]) {
            name = strrchr(nm->valuestring, '/');
            name = name && name[1] ? name + 1 : nm->valuestring;
        } else {
            name = strrchr(f->dir, '/');
            name = name && name[1] ? name + 1 : f->dir;
        }
        st = st_set_str(f, "general.name", name, strlen(name));
    }
    if (!st) st = st_map_uint(f, cfg_path, cfg, "max_position_embeddings", "context_length", 0, NULL);
    if (!st) st = st_map_uint(f, cfg_path, cfg, "hidden_size", "embedding_length", 1, &f->n_embd);
    if (!st) st = st_map_uint(f, cfg_path, cfg, "num_hidden_layers", "block_count", 1, NULL);
    if (!st) st = st_map_uint(f, cfg_path, cfg, "intermediate_size", "feed_forward_length", 1, NULL);
    if (!st) st = st_map_uint(f, cfg_path, cfg, "vocab_size", "vocab_size", 0, NULL);
    if (!st) st = st_map_uint(f, cfg_path, cfg, "num_attention_heads", "attention.head_count", 1, &f->n_head);
    if (!st) {
        f->n_head_kv = f->n_head;
        st = st_map_uint(f, cfg_path, cfg, "num_key_value_heads", NULL, 0, &f->n_head_kv);
        char k[160];
        snprintf(k, sizeof k, "%s.attention.head_count_kv", f->arch);
        if (!st) st = st_set_u32(f, k, (uint64_t)f->n_head_kv);
    }
    if (!st && (f->n_head <= 0 || f->n_head_kv <= 0 || f->n_head % f->n_head_kv != 0))
        st = st_fail(f, LLMH_ERR_FORMAT,
                     "%s: num_attention_heads %lld must be a positive multiple of num_key_value_heads %lld",
                     cfg_path, (long long)f->n_head, (long long)f->n_head_kv);
    if (!st) {
        f->head_dim = f->n_embd / f->n_head;
        if (st_cfg(cfg, "head_dim")) {
            st = st_map_uint(f, cfg_path, cfg, "head_dim", "attention.key_length", 0, &f->head_dim);
            char k[160];
            snprintf(k, sizeof k, "%s.attention.value_length", f->arch);
            if (!st) st = st_set_u32(f, k, (uint64_t)f->head_dim);
        }
    }
    if (!st) st = st_map_float(f, cfg_path, cfg, "rope_theta", "rope.freq_base", 10000.0, 1, &f->rope_base);
    if (!st) st = st_map_float(f, cfg_path, cfg, "rms_norm_eps", "attention.layer_norm_rms_epsilon", 1e-6, 1, NULL);
    if (!st) {
        const cJSON *sw = st_cfg(cfg, "sliding_window");
        const cJSON *use = st_cfg(cfg, "use_sliding_window");
        uint64_t x;
        if (sw && cJSON_IsTrue(use) && st_json_uint(sw, &x) && x <= UINT32_MAX) {
            char k[160];
            snprintf(k, sizeof k, "%s.attention.sliding_window", f->arch);
            st = st_set_u32(f, k, x);
        }
    }
    if (!st) st = st_map_rope_scaling(f, cfg_path, cfg);
    if (!st) {
        const cJSON *tie = st_cfg(cfg, "tie_word_embeddings");
        /* absent: untied, the default of LlamaConfig / Qwen2Config / Qwen3Config */
        f->tied = tie ? cJSON_IsTrue(tie) : 0;
        uint64_t id;
        const cJSON *b = st_cfg(cfg, "bos_token_id"), *e = st_cfg(cfg, "eos_token_id");
        if (b && st_token_id(b, &id)) st = st_set_u32(f, "tokenizer.ggml.bos_token_id", id);
        if (!st && e && st_token_id(e, &id)) st = st_set_u32(f, "tokenizer.ggml.eos_token_id", id);
        const cJSON *p = st_cfg(cfg, "pad_token_id");
        if (!st && p && st_token_id(p, &id)) st = st_set_u32(f, "tokenizer.ggml.padding_token_id", id);
    }
    cJSON_Delete(cfg);
    return st;
}

/* tokenizer.json path, chat template and add_bos from tokenizer_config.json. */
static llmh_status st_map_tokenizer(struct llmh_model_file *f) {
    char *tj = st_printf(f, "%s/tokenizer.json", f->dir);
    char *tc = st_printf(f, "%s/tokenizer_config.json", f->dir);
    if (!tj || !tc) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: path too long", f->path);
    llmh_status st = LLMH_OK;
    if (st_is_file(tj)) st = st_set_str(f, "llmh.tokenizer_json", tj, strlen(tj));
    if (st || !st_is_file(tc)) return st;
    cJSON *cfg = NULL;
    if ((st = st_load_json(f, tc, &cfg))) return st;
    const cJSON *t = st_cfg(cfg, "chat_template");
    const char *tmpl = NULL;
    if (cJSON_IsString(t)) {
        tmpl = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        /* a list of {"name", "template"}: use "default", else the first */
        for (const cJSON *it = t->child; it; it = it->next) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (!cJSON_IsString(v)) continue;
            if (!tmpl) tmpl = v->valuestring;
            if (cJSON_IsString(n) && !strcmp(n->valuestring, "default")) {
                tmpl = v->valuestring;
                break;
            }
        }
    }
    if (tmpl) st = st_set_str(f, "tokenizer.chat_template", tmpl, strlen(tmpl));
    const cJSON *ab = st_cfg(cfg, "add_bos_token");
    if (!st && cJSON_IsBool(ab)) st = st_set_bool(f, "tokenizer.ggml.add_bos_token", cJSON_IsTrue(ab));
    const cJSON *ae = st_cfg(cfg, "add_eos_token");
    if (!st && cJSON_IsBool(ae)) st = st_set_bool(f, "tokenizer.ggml.add_eos_token", cJSON_IsTrue(ae));
    cJSON_Delete(cfg);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tensor names and the llama q/k permutation                                */
/* ------------------------------------------------------------------------ */
typedef enum st_role { ST_PLAIN = 0, ST_Q = 1, ST_K = 2, ST_DROP = 3 } st_role;

static const struct {
    const char *hf;
    const char *gguf;
    st_role role;
} st_layer_map[] = {
    {"self_attn.q_proj.weight", "attn_q.weight", ST_Q},
    {"self_attn.q_proj.bias", "attn_q.bias", ST_Q},
    {"self_attn.k_proj.weight", "attn_k.weight", ST_K},
    {"self_attn.k_proj.bias", "attn_k.bias", ST_K},
    {"self_attn.v_proj.weight", "attn_v.weight", ST_PLAIN},
    {"self_attn.v_proj.bias", "attn_v.bias", ST_PLAIN},
    {"self_attn.o_proj.weight", "attn_output.weight", ST_PLAIN},
    {"self_attn.o_proj.bias", "attn_output.bias", ST_PLAIN},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", ST_PLAIN},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", ST_PLAIN},
    {"mlp.gate_proj.weight", "ffn_gate.weight", ST_PLAIN},
    {"mlp.up_proj.weight", "ffn_up.weight", ST_PLAIN},
    {"mlp.down_proj.weight", "ffn_down.weight", ST_PLAIN},
    {"input_layernorm.weight", "attn_norm.weight", ST_PLAIN},
    {"post_attention_layernorm.weight", "ffn_norm.weight", ST_PLAIN},
    {"self_attn.rotary_emb.inv_freq", NULL, ST_DROP}, /* a recomputable buffer */
};

/* Maps an HF name to its GGUF name in buf; unknown names keep their HF name. */
static st_role st_map_name(struct llmh_model_file *f, const char *hf, char *buf, size_t cap) {
    if (!strcmp(hf, "model.embed_tokens.weight")) {
        snprintf(buf, cap, "token_embd.weight");
        return ST_PLAIN;
    }
    if (!strcmp(hf, "model.norm.weight")) {
        snprintf(buf, cap, "output_norm.weight");
        return ST_PLAIN;
    }
    if (!strcmp(hf, "lm_head.weight")) {
        snprintf(buf, cap, "output.weight");
        return f->tied ? ST_DROP : ST_PLAIN;
    }
    static const char pre[] = "model.layers.";
    if (!strncmp(hf, pre, sizeof pre - 1)) {
        const char *p = hf + sizeof pre - 1;
        unsigned long n = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 7) {
            n = n * 10 + (unsigned long)(*p - '0');
            p++;
            digits++;
        }
        if (digits > 0 && *p == '.' && !(digits > 1 && hf[sizeof pre - 1] == '0')) {
            p++;
            for (size_t i = 0; i < sizeof st_layer_map / sizeof st_layer_map[0]; i++) {
                if (strcmp(p, st_layer_map[i].hf) != 0) continue;
                if (st_layer_map[i].role == ST_DROP) return ST_DROP;
                snprintf(buf, cap, "blk.%lu.%s", n, st_layer_map[i].gguf);
                return st_layer_map[i].role;
            }
        }
    }
    snprintf(buf, cap, "%s", hf);
    return ST_PLAIN;
}

/* HF rotate-half rows -> GGUF interleaved rows, per head:
 * out row h*hd + 2*i + j = in row h*hd + j*hd/2 + i  (i < hd/2, j in {0,1}).
 * `rows` = ne[1] for a matrix (ne[0] = row length) or ne[0] for a bias. */
static llmh_status st_permute(struct llmh_model_file *f, const st_raw *r, const uint8_t *src,
                              int64_t n_head, const char *gguf_name, void **out) {
    size_t es = llmh_dtype_type_size(r->type);
    int is_bias = r->n_dims == 1;
    int64_t rows = is_bias ? r->ne[0] : r->ne[1];
    int64_t row_elems = is_bias ? 1 : r->ne[0];
    if (!is_bias && (r->n_dims != 2))
        return st_fail(f, LLMH_ERR_FORMAT, "%s: tensor '%s' (%s): expected a matrix, got %d dimensions",
                       f->path, r->hf_name, gguf_name, r->n_dims);
    if (n_head <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0)
        return st_fail(f, LLMH_ERR_FORMAT,
                       "%s: tensor '%s' (%s): %lld rows do not split into %lld heads of even size",
                       f->path, r->hf_name, gguf_name, (long long)rows, (long long)n_head);
    size_t row_bytes = (size_t)row_elems * es;
    uint8_t *dst = st_alloc(f, (size_t)(r->end - r->begin), 64);
    if (!dst) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory permuting '%s'", f->path, r->hf_name);
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(dst + (size_t)(h * hd + 2 * i + j) * row_bytes,
                       src + (size_t)(h * hd + j * half + i) * row_bytes, row_bytes);
    *out = dst;
    return LLMH_OK;
}

typedef struct st_name_ref {
    const char *name;
    size_t index;
} st_name_ref;

static int st_cmp_name(const void *a, const void *b) {
    const st_name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static llmh_status st_build_tensors(struct llmh_model_file *f) {
    f->tensors = f->host->alloc((f->n_raw ? f->n_raw : 1) * sizeof *f->tensors);
    if (!f->tensors) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    size_t n = 0;
    for (size_t i = 0; i < f->n_raw; i++) {
        const st_raw *r = &f->raw[i];
        char name[512];
        st_role role = r->shard == SIZE_MAX ? ST_PLAIN : st_map_name(f, r->hf_name, name, sizeof name);
        if (r->shard == SIZE_MAX) snprintf(name, sizeof name, "%s", r->hf_name);
        if (role == ST_DROP) continue;
        llmh_tensor_info *t = &f->tensors[n];
        memset(t, 0, sizeof *t);
        t->struct_size = sizeof *t;
        t->name = st_strdup(f, name);
        if (!t->name) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
        t->type = r->type;
        t->n_dims = r->n_dims;
        memcpy(t->ne, r->ne, sizeof t->ne);
        t->size = r->end - r->begin;
        if (r->shard == SIZE_MAX) {
            t->data = (const void *)(uintptr_t)r->begin;
            t->file_offset = 0;
        } else {
            const st_shard *sh = &f->shards[r->shard];
            const uint8_t *src = sh->map + sh->data_start + r->begin;
            t->file_offset = sh->data_start + r->begin;
            t->data = src;
            if (f->permute_qk && (role == ST_Q || role == ST_K)) {
                void *copy = NULL;
                llmh_status st = st_permute(f, r, src, role == ST_Q ? f->n_head : f->n_head_kv, name, &copy);
                if (st) return st;
                t->data = copy;
                t->file_offset = 0;
            } else if ((uintptr_t)src % llmh_dtype_type_size(r->type) != 0) {
                /* safetensors promises no alignment; consumers read whole
                 * elements, so a misaligned tensor gets an aligned copy */
                void *copy = st_alloc(f, (size_t)t->size, 64);
                if (!copy) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory copying '%s'", f->path, r->hf_name);
                memcpy(copy, src, (size_t)t->size);
                f->host->log(LLMH_LOG_DEBUG, "safetensors", "%s: tensor '%s' at offset %llu is misaligned: copied",
                             sh->path, r->hf_name, (unsigned long long)t->file_offset);
                t->data = copy;
                t->file_offset = 0;
            }
        }
        n++;
    }
    f->n_tensors = n;
    if (n < 2) return LLMH_OK;
    st_name_ref *refs = f->host->alloc(n * sizeof *refs);
    if (!refs) return st_fail(f, LLMH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    for (size_t i = 0; i < n; i++) refs[i] = (st_name_ref){f->tensors[i].name, i};
    qsort(refs, n, sizeof *refs, st_cmp_name);
    llmh_status st = LLMH_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (!strcmp(refs[i].name, refs[i - 1].name))
            st = st_fail(f, LLMH_ERR_FORMAT, "%s: duplicate tensor '%s' (after mapping HF names to GGUF names)",
                         f->path, refs[i].name);
    f->host->free(refs);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Plugin entry points                                                       */
/* ------------------------------------------------------------------------ */
static void st_close(llmh_model_file *f) {
    if (!f) return;
    const llmh_host_api *host = f->host;
    for (size_t i = 0; i < f->n_shards; i++)
        if (f->shards[i].map) munmap(f->shards[i].map, f->shards[i].size);
    for (size_t i = 0; i < f->n_allocs; i++) host->free(f->allocs[i]);
    host->free(f->allocs);
    host->free(f->shards);
    host->free(f->raw);
    host->free(f->tensors);
    host->free(f->kvs);
    host->free(f->path);
    host->free(f);
}

static llmh_status st_apply_options(struct llmh_model_file *f, const llmh_kv_list *options) {
    if (!options) return LLMH_OK;
    const llmh_value *v = llmh_kv_find(options, "permute_qk");
    if (v) {
        if (v->type != LLMH_V_BOOL)
            return st_fail(f, LLMH_ERR_CONFIG, "%s: [model] permute_qk must be true or false", f->path);
        f->permute_qk = v->v.b;
    }
    return LLMH_OK; /* other [model] keys belong to the host or other formats */
}

static llmh_status st_open(void *state, const char *path, const llmh_kv_list *options,
                           llmh_model_file **out) {
    const llmh_host_api *host = state;
    if (!host) return LLMH_ERR_INVALID_ARG;
    if (!path || !out) {
        host->set_error("safetensors: open: path and out are required");
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

    llmh_status st = st_locate(f);
    if (!st) st = st_map_config(f);
    if (!st) st = st_apply_options(f, options);
    if (!st) st = st_map_tokenizer(f);
    if (!st) st = st_build_tensors(f);
    if (!st) st = st_set_str(f, "llmh.source_format", "safetensors", 11);
    if (st) {
        st_close(f);
        return st;
    }
    host->log(LLMH_LOG_DEBUG, "safetensors", "%s: %zu shard(s), %zu tensors, arch %s%s", path,
              f->n_shards, f->n_tensors, f->arch ? f->arch : "(none)",
              f->permute_qk ? ", q/k permuted" : "");
    *out = f;
    return LLMH_OK;
}

static int32_t st_probe_file(void *state, const char *path, const uint8_t *head, size_t head_len) {
    (void)state;
    if (!path) return 0;
    if (st_is_dir(path)) {
        char buf[PATH_MAX];
        snprintf(buf, sizeof buf, "%s/model.safetensors.index.json", path);
        if (st_is_file(buf)) return 90;
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        if (st_is_file(buf)) return 90;
        DIR *d = opendir(path);
        if (!d) return 0;
        struct dirent *de;
        int n = 0;
        while ((de = readdir(d)) != NULL)
            if (st_ends_with(de->d_name, ".safetensors")) n++;
        closedir(d);
        return n == 1 ? 60 : 0;
    }
    if (st_ends_with(path, ".safetensors.index.json")) return 80;
    /* u64 header length followed by '{' */
    if (head && head_len >= 9 && head[8] == '{') {
        uint64_t n = 0;
        for (int i = 0; i < 8; i++) n |= (uint64_t)head[i] << (8 * i);
        if (n >= 2 && n <= ST_MAX_HEADER) return st_ends_with(path, ".safetensors") ? 90 : 60;
    }
    return 0;
}

static llmh_status st_get_metadata(llmh_model_file *f, llmh_kv_list *out) {
    if (!f || !out) return LLMH_ERR_INVALID_ARG;
    out->items = f->kvs;
    out->n = f->n_kvs;
    return LLMH_OK;
}

static llmh_status st_get_tensors(llmh_model_file *f, const llmh_tensor_info **out, size_t *n) {
    if (!f || !out || !n) return LLMH_ERR_INVALID_ARG;
    *out = f->tensors;
    *n = f->n_tensors;
    return LLMH_OK;
}

static llmh_status st_init(const llmh_host_api *host, void **state) {
    *state = (void *)host;
    return LLMH_OK;
}

static const llmh_format_iface st_iface = {
    .struct_size = sizeof(llmh_format_iface),
    .probe_file = st_probe_file,
    .open = st_open,
    .close = st_close,
    .get_metadata = st_get_metadata,
    .get_tensors = st_get_tensors,
};

LLMH_PLUGIN_DEFINE(LLMH_PLUGIN_FORMAT, "safetensors", "1.0.0", "MIT",
                   "Hugging Face safetensors checkpoints (single, directory or sharded) with config.json",
                   40, NULL, st_init, NULL, &st_iface, NULL)

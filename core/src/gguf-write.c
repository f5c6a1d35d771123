/* gguf-write.c — the GGUF v3 writer (core/include/llmh-gguf.h).
 *
 * Everything is validated before the first byte is written; then the header,
 * the tensor infos and the data go through one buffered stream into a
 * temporary file beside the target (mkstemp), which is renamed over the
 * target once complete and flushed. Values are encoded from their llmh_vtype,
 * which equals GGUF's type id, with integers narrowed back to their width
 * (a value out of its width's range is an error naming the key). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "llmh-gguf.h"

#define GGUF_VERSION 3u
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ALIGNMENT (1u << 30)
#define GGUF_MAX_NAME 4096u
#define GGUF_MAX_DEPTH 8

uint64_t llmh_gguf_tensor_size(llmh_dtype type, int32_t n_dims, const int64_t *ne) {
    int64_t bs = llmh_dtype_block_size(type);
    size_t ts = llmh_dtype_type_size(type);
    if (bs <= 0 || ts == 0 || !ne || n_dims < 1 || n_dims > LLMH_MAX_DIMS) return 0;
    if (ne[0] <= 0 || ne[0] % bs) return 0;
    uint64_t bytes = (uint64_t)(ne[0] / bs) * ts;
    for (int d = 1; d < n_dims; d++) {
        if (ne[d] <= 0) return 0;
        if (bytes > UINT64_MAX / (uint64_t)ne[d]) return 0;
        bytes *= (uint64_t)ne[d];
    }
    if (bytes > (uint64_t)INT64_MAX) return 0;
    return bytes;
}

/* ------------------------------------------------------------------------ */
/* validation                                                                 */
/* ------------------------------------------------------------------------ */
static bool scalar_in_range(const llmh_value *v) {
    switch (v->type) {
    case LLMH_V_U8: return v->v.u <= UINT8_MAX;
    case LLMH_V_U16: return v->v.u <= UINT16_MAX;
    case LLMH_V_U32: return v->v.u <= UINT32_MAX;
    case LLMH_V_I8: return v->v.i >= INT8_MIN && v->v.i <= INT8_MAX;
    case LLMH_V_I16: return v->v.i >= INT16_MIN && v->v.i <= INT16_MAX;
    case LLMH_V_I32: return v->v.i >= INT32_MIN && v->v.i <= INT32_MAX;
    case LLMH_V_BOOL: return v->v.b == 0 || v->v.b == 1;
    default: return true;
    }
}

static llmh_status check_value(const char *key, const llmh_value *v, int depth) {
    if (depth > GGUF_MAX_DEPTH) return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': arrays nest too deep", key);
    switch (v->type) {
    case LLMH_V_U8: case LLMH_V_I8: case LLMH_V_U16: case LLMH_V_I16: case LLMH_V_U32: case LLMH_V_I32:
    case LLMH_V_F32: case LLMH_V_BOOL: case LLMH_V_U64: case LLMH_V_I64: case LLMH_V_F64:
        if (!scalar_in_range(v))
            return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': value out of range for its type %d", key,
                              (int)v->type);
        return LLMH_OK;
    case LLMH_V_STRING:
        if (v->v.s.len && !v->v.s.ptr)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': string without bytes", key);
        return LLMH_OK;
    case LLMH_V_ARRAY:
        if (v->v.arr.n && !v->v.arr.items)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': array without items", key);
        if ((unsigned)v->v.arr.elem_type > LLMH_V_F64)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': unknown array item type %d", key,
                              (int)v->v.arr.elem_type);
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            const llmh_value *it = &v->v.arr.items[i];
            if (it->type != v->v.arr.elem_type)
                return llmh__fail(LLMH_ERR_INVALID_ARG,
                                  "gguf write: key '%s': array item %llu has type %d, the array declares %d", key,
                                  (unsigned long long)i, (int)it->type, (int)v->v.arr.elem_type);
            llmh_status st = check_value(key, it, depth + 1);
            if (st) return st;
        }
        return LLMH_OK;
    default:
        return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key '%s': unknown value type %d", key, (int)v->type);
    }
}

static bool host_key(const char *k) { return !strncmp(k, "llmh.", 5); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Sorted copy of `n` names; a duplicate is an error naming it. */
static llmh_status check_unique(const char *const *names, size_t n, const char *what) {
    if (n < 2) return LLMH_OK;
    const char **s = malloc(n * sizeof *s);
    if (!s) return llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: out of memory");
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    llmh_status st = LLMH_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (!strcmp(s[i - 1], s[i])) st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: duplicate %s '%s'", what, s[i]);
    free(s);
    return st;
}

static llmh_status check_params(const llmh_gguf_write_params *p, uint32_t *align_out, uint64_t *sizes) {
    if ((p->n_kv && !p->kv) || (p->n_tensors && !p->tensors))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: NULL metadata or tensor array");
    uint32_t align = p->alignment;
    size_t nk = 0;
    const char **names = malloc((p->n_kv > p->n_tensors ? p->n_kv : p->n_tensors) * sizeof *names + 1);
    if (!names) return llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: out of memory");
    llmh_status st = LLMH_OK;
    for (size_t i = 0; i < p->n_kv && !st; i++) {
        const llmh_kv *kv = &p->kv[i];
        if (!kv->key || !*kv->key || strlen(kv->key) > 65535) {
            st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: key %zu is empty or longer than 65535 bytes", i);
            break;
        }
        if (host_key(kv->key)) continue;
        if ((st = check_value(kv->key, &kv->value, 0))) break;
        if (!strcmp(kv->key, "general.alignment")) {
            int64_t a = 0;
            if (kv->value.type != LLMH_V_U32 || !llmh_value_as_i64(&kv->value, &a) || a < 8 ||
                a > (int64_t)GGUF_MAX_ALIGNMENT || (a & (a - 1))) {
                st = llmh__fail(LLMH_ERR_INVALID_ARG,
                                "gguf write: key 'general.alignment' must be a u32 power of two in 8..2^30");
                break;
            }
            if (p->alignment && p->alignment != (uint32_t)a) {
                st = llmh__fail(LLMH_ERR_INVALID_ARG,
                                "gguf write: alignment %u asked for, but key 'general.alignment' says %lld",
                                p->alignment, (long long)a);
                break;
            }
            align = (uint32_t)a;
        }
        names[nk++] = kv->key;
    }
    if (!st) st = check_unique(names, nk, "key");
    if (!align) align = GGUF_DEFAULT_ALIGNMENT;
    if (!st && (align < 8 || align > GGUF_MAX_ALIGNMENT || (align & (align - 1))))
        st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: alignment %u is not a power of two in 8..2^30", align);
    for (size_t i = 0; i < p->n_tensors && !st; i++) {
        const llmh_gguf_tensor *t = &p->tensors[i];
        if (!t->name || !*t->name || strlen(t->name) > GGUF_MAX_NAME) {
            st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: tensor %zu: name empty or longer than %u bytes", i,
                            GGUF_MAX_NAME);
            break;
        }
        sizes[i] = llmh_gguf_tensor_size(t->type, t->n_dims, t->ne);
        if (!sizes[i]) {
            st = llmh__fail(LLMH_ERR_INVALID_ARG,
                            "gguf write: tensor '%s': type %s with %d dims [%lld, %lld, ...] is not a valid shape", t->name,
                            llmh_dtype_name(t->type), (int)t->n_dims, (long long)(t->n_dims > 0 ? t->ne[0] : 0),
                            (long long)(t->n_dims > 1 ? t->ne[1] : 1));
            break;
        }
        if (!t->data && !p->fill) {
            st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: tensor '%s' has no data and there is no fill callback",
                            t->name);
            break;
        }
        names[i] = t->name;
    }
    if (!st) st = check_unique(names, p->n_tensors, "tensor name");
    free(names);
    *align_out = align;
    return st;
}

/* ------------------------------------------------------------------------ */
/* encoding                                                                   */
/* ------------------------------------------------------------------------ */
typedef struct wr {
    FILE *f;
    uint64_t pos;
    bool err;
} wr;

static void put(wr *w, const void *p, size_t n) {
    if (w->err || n == 0) return;
    if (fwrite(p, 1, n, w->f) != n) w->err = true;
    w->pos += n;
}

static void put_le(wr *w, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, (size_t)bytes);
}

static void put_str(wr *w, const char *s, uint64_t len) {
    put_le(w, len, 8);
    put(w, s, (size_t)len);
}

static void put_pad(wr *w, uint32_t align) {
    static const uint8_t zeros[64];
    uint64_t pad = (align - w->pos % align) % align;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        put(w, zeros, k);
        pad -= k;
    }
}

static void put_value(wr *w, const llmh_value *v) {
    switch (v->type) {
    case LLMH_V_U8: put_le(w, v->v.u, 1); break;
    case LLMH_V_I8: put_le(w, (uint64_t)v->v.i, 1); break;
    case LLMH_V_U16: put_le(w, v->v.u, 2); break;
    case LLMH_V_I16: put_le(w, (uint64_t)v->v.i, 2); break;
    case LLMH_V_U32: put_le(w, v->v.u, 4); break;
    case LLMH_V_I32: put_le(w, (uint64_t)v->v.i, 4); break;
    case LLMH_V_U64: put_le(w, v->v.u, 8); break;
    case LLMH_V_I64: put_le(w, (uint64_t)v->v.i, 8); break;
    case LLMH_V_BOOL: put_le(w, (uint64_t)v->v.b, 1); break;
    case LLMH_V_F32: {
        float f = (float)v->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        put_le(w, u, 4);
        break;
    }
    case LLMH_V_F64: {
        uint64_t u;
        memcpy(&u, &v->v.f, 8);
        put_le(w, u, 8);
        break;
    }
    case LLMH_V_STRING: put_str(w, v->v.s.ptr, v->v.s.len); break;
    case LLMH_V_ARRAY:
        put_le(w, (uint64_t)v->v.arr.elem_type, 4);
        put_le(w, v->v.arr.n, 8);
        for (uint64_t i = 0; i < v->v.arr.n; i++) put_value(w, &v->v.arr.items[i]);
        break;
    }
}

llmh_status llmh_gguf_write(const char *path, const llmh_gguf_write_params *p) {
    if (!path || !*path || !p) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_gguf_write: NULL argument");
    uint64_t *sizes = calloc(p->n_tensors + 1, sizeof *sizes);
    if (!sizes) return llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: out of memory");
    uint32_t align = 0;
    llmh_status st = check_params(p, &align, sizes);
    if (st) {
        free(sizes);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(sizes);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = llmh__fail(LLMH_ERR_IO, "gguf write: cannot create a temporary file beside %s: %s", path, strerror(errno));
        free(tmp);
        free(sizes);
        return st;
    }
    wr w = {fdopen(fd, "wb"), 0, false};
    void *scratch = NULL;
    uint64_t scratch_cap = 0;
    if (!w.f) {
        st = llmh__fail(LLMH_ERR_IO, "gguf write: %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    setvbuf(w.f, NULL, _IOFBF, 1 << 20);
    size_t n_kv = 0;
    for (size_t i = 0; i < p->n_kv; i++) n_kv += !host_key(p->kv[i].key);
    put(&w, "GGUF", 4);
    put_le(&w, GGUF_VERSION, 4);
    put_le(&w, p->n_tensors, 8);
    put_le(&w, n_kv, 8);
    for (size_t i = 0; i < p->n_kv; i++) {
        const llmh_kv *kv = &p->kv[i];
        if (host_key(kv->key)) continue;
        put_str(&w, kv->key, strlen(kv->key));
        put_le(&w, (uint64_t)kv->value.type, 4);
        put_value(&w, &kv->value);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < p->n_tensors; i++) {
        const llmh_gguf_tensor *t = &p->tensors[i];
        put_str(&w, t->name, strlen(t->name));
        put_le(&w, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) put_le(&w, (uint64_t)t->ne[d], 8);
        put_le(&w, (uint64_t)t->type, 4);
        put_le(&w, off, 8);
        if (sizes[i] > UINT64_MAX - off - align) {
            st = llmh__fail(LLMH_ERR_INVALID_ARG, "gguf write: tensor data offsets overflow at '%s'", t->name);
            goto out;
        }
        off += (sizes[i] + align - 1) / align * align;
    }
    put_pad(&w, align);
    for (size_t i = 0; i < p->n_tensors && !w.err; i++) {
        const llmh_gguf_tensor *t = &p->tensors[i];
        const void *src = t->data;
        if (!src) {
            if (sizes[i] > scratch_cap) {
                if (sizes[i] > (uint64_t)SIZE_MAX) {
                    st = llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: tensor '%s' does not fit in memory", t->name);
                    goto out;
                }
                void *ns = realloc(scratch, (size_t)sizes[i]);
                if (!ns) {
                    st = llmh__fail(LLMH_ERR_NO_MEMORY, "gguf write: out of memory for tensor '%s' (%llu bytes)",
                                    t->name, (unsigned long long)sizes[i]);
                    goto out;
                }
                scratch = ns;
                scratch_cap = sizes[i];
            }
            llmh_clear_error();
            if ((st = p->fill(p->user, i, t, scratch, sizes[i]))) {
                if (!*llmh_last_error())
                    llmh_set_error("gguf write: producing tensor '%s' failed: %s", t->name, llmh_status_str(st));
                goto out;
            }
            src = scratch;
        }
        put_pad(&w, align);
        put(&w, src, (size_t)sizes[i]);
    }
    put_pad(&w, align);
    if (!w.err && fflush(w.f) != 0) w.err = true;
    if (!w.err && fsync(fileno(w.f)) != 0) w.err = true;
    if (w.err) {
        st = llmh__fail(LLMH_ERR_IO, "gguf write: writing %s failed at byte %llu: %s", path,
                        (unsigned long long)w.pos, strerror(errno));
        goto out;
    }
out:
    if (w.f && fclose(w.f) != 0 && !st)
        st = llmh__fail(LLMH_ERR_IO, "gguf write: closing %s failed: %s", tmp, strerror(errno));
    if (!st) {
        /* mkstemp makes 0600; give the file the usual permissions */
        mode_t um = umask(0);
        umask(um);
        chmod(tmp, 0666 & ~um);
        if (rename(tmp, path) != 0) st = llmh__fail(LLMH_ERR_IO, "gguf write: renaming to %s failed: %s", path, strerror(errno));
    }
    if (st) unlink(tmp);
    free(scratch);
    free(tmp);
    free(sizes);
    return st;
}

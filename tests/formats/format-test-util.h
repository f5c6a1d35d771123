/* format-test-util.h — helpers shared by the format plugin tests: load a
 * format plugin .so directly (dlopen + llmh_plugin_describe, no registry),
 * build GGUF and safetensors files byte by byte, compare tensors. */
#ifndef LLMH_FORMAT_TEST_UTIL_H
#define LLMH_FORMAT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "llmh.h"

/* ---- plugins ------------------------------------------------------------ */
typedef struct fmt_plugin {
    void *dl;
    const llmh_plugin_desc *desc;
    const llmh_format_iface *fi;
    void *state;
} fmt_plugin;

/* Load the format plugin at `so_path` and init it with llmh_host_api_get().
 * Returns 0 on success; on failure prints why to stderr and returns -1. */
int fmt_plugin_load(fmt_plugin *p, const char *so_path);
void fmt_plugin_unload(fmt_plugin *p);

/* An opened model file with its metadata and tensors fetched. */
typedef struct fmt_file {
    const fmt_plugin *p;
    llmh_model_file *f;
    llmh_kv_list kv;
    const llmh_tensor_info *t;
    size_t n_t;
} fmt_file;

/* Open `path`; returns the status (the error text is llmh_last_error()). */
llmh_status fmt_open(const fmt_plugin *p, const char *path, const llmh_kv_list *options, fmt_file *out);
void fmt_close(fmt_file *f);
const llmh_value *fmt_kv(const fmt_file *f, const char *key);
/* Integer value of `key`, or `def` when absent / not an integer. */
int64_t fmt_kv_int(const fmt_file *f, const char *key, int64_t def);
/* 1 when `key` is a string equal to `s`. */
int fmt_kv_str_eq(const fmt_file *f, const char *key, const char *s);
const llmh_tensor_info *fmt_tensor(const fmt_file *f, const char *name);

/* Convert a F32/F16/BF16 tensor's values to f32 (malloc'd, n elements). */
float *fmt_tensor_f32(const llmh_tensor_info *t, int64_t *n);
/* Number of elements of a tensor. */
int64_t fmt_tensor_nelem(const llmh_tensor_info *t);
/* FNV-1a 64 of a byte range. */
uint64_t fmt_fnv1a(const void *data, size_t n);

/* ---- a growable byte buffer for building files --------------------------- */
typedef struct fmt_buf {
    uint8_t *p;
    size_t n, cap;
} fmt_buf;

void fb_free(fmt_buf *b);
void fb_bytes(fmt_buf *b, const void *d, size_t n);
void fb_u8(fmt_buf *b, uint8_t v);
void fb_u16(fmt_buf *b, uint16_t v);
void fb_u32(fmt_buf *b, uint32_t v);
void fb_u64(fmt_buf *b, uint64_t v);
void fb_f32(fmt_buf *b, float v);
void fb_f64(fmt_buf *b, double v);
void fb_str(fmt_buf *b, const char *s);           /* GGUF string: u64 len + bytes */
void fb_pad(fmt_buf *b, size_t align);            /* zero bytes up to a multiple */
void fb_printf(fmt_buf *b, const char *fmt, ...)  /* raw text (safetensors JSON) */
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* GGUF pieces */
void gguf_header(fmt_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
void gguf_kv_u32(fmt_buf *b, const char *key, uint32_t v);
void gguf_kv_str(fmt_buf *b, const char *key, const char *v);
void gguf_tensor_info(fmt_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                      uint32_t type, uint64_t offset);

/* A tensor for gguf_build(). */
typedef struct gguf_tspec {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t offset;   /* UINT64_MAX: packed after the previous one, aligned */
} gguf_tspec;

/* Write a v3 (or `version`) GGUF: general.architecture = "test", optionally
 * general.alignment = `alignment` (0 = absent, default 32), the tensors with
 * data bytes filled with (i*7 + tensor) & 0xff. Returns the data section
 * start in *data_start when non-NULL. `size` of each tensor is computed from
 * its type unless the type is unknown (then 64 bytes). */
void gguf_build(fmt_buf *b, uint32_t version, uint32_t alignment, const gguf_tspec *ts, size_t n,
                uint64_t *data_start);

/* A key and its value type; an array's element type and count. */
void gguf_kv_head(fmt_buf *b, const char *key, uint32_t type);
void gguf_arr_head(fmt_buf *b, uint32_t elem_type, uint64_t n);
/* A GGUF of `version` with 18 KVs (one per scalar type, string with a NUL
 * byte, arrays, arrays nested three deep, an empty array, general.alignment
 * = 64) and 8 tensors of types f32, f16, q8_0, q4_k, i32, bf16, q6_k, f64,
 * data bytes (i * 13 + 5). */
void gguf_build_all_types(fmt_buf *b, uint32_t version);

/* Read every metadata value and the first and last bytes of every tensor of
 * an opened file (a bad pointer or size faults, or shows up under ASan), and
 * check each tensor's size against its type and shape (abort() if wrong);
 * returns a checksum. */
uint64_t fmt_walk(const fmt_file *f);

/* Write the buffer to a temp file with `suffix`; returns the malloc'd path. */
char *fmt_write_temp(const fmt_buf *b, const char *suffix);

/* Make a fresh temp directory; returns its malloc'd path. Files inside are
 * written with fmt_write_in(dir, name, data, n). fmt_rmdir removes the
 * directory and every file in it (one level). */
char *fmt_mkdtemp(void);
void fmt_write_in(const char *dir, const char *name, const void *data, size_t n);
void fmt_rmdir(char *dir);

#endif

/*
 * llmh-gguf.h — writing GGUF files (libllmh).
 *
 * Used by `llmhost export-lora` (merged models) and `llmhost lora-gate`
 * (adapter files with gate vectors); reading GGUF stays the gguf format
 * plugin's job. The writer produces GGUF v3, little-endian:
 *   magic | version 3 | n_tensors | n_kv | KVs | tensor infos | padding |
 *   tensor data, each tensor at a multiple of the alignment.
 * Metadata is written from llmh_kv values exactly as a format plugin reports
 * them (each value keeps its GGUF type), so a file read with the gguf plugin
 * and written back has identical metadata. Keys that start with "llmh." (the
 * host's own, e.g. llmh.source_format) are never written.
 *
 * The file is written to a temporary name beside `path` and renamed over it
 * only when complete: a failed write leaves no partial output.
 */
#ifndef LLMH_GGUF_H
#define LLMH_GGUF_H

#include "llmh.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One tensor to write. `data` holds its bytes (llmh_gguf_tensor_size), or is
 * NULL to have the writer ask llmh_gguf_write_params.fill for them. */
typedef struct llmh_gguf_tensor {
    const char *name;          /* unique, 1..4096 bytes */
    llmh_dtype type;
    int32_t n_dims;            /* 1..LLMH_MAX_DIMS */
    int64_t ne[LLMH_MAX_DIMS]; /* ne[0] a multiple of the type's block size; unused dims 1 */
    const void *data;          /* borrowed, or NULL (see fill) */
} llmh_gguf_tensor;

/* Produce the `size` bytes of tensor `index` into `dst` (tensors are asked
 * for in order, one at a time, so a caller can compute each on demand). A
 * failure aborts the write; set an error with llmh_set_error. */
typedef llmh_status (*llmh_gguf_fill_fn)(void *user, size_t index, const llmh_gguf_tensor *t, void *dst,
                                         uint64_t size);

typedef struct llmh_gguf_write_params {
    const llmh_kv *kv;         /* metadata in file order (borrowed) */
    size_t n_kv;
    const llmh_gguf_tensor *tensors; /* in file order (borrowed) */
    size_t n_tensors;
    llmh_gguf_fill_fn fill;    /* for tensors whose data is NULL */
    void *user;
    uint32_t alignment;        /* 0: general.alignment from kv when present, else 32 */
} llmh_gguf_write_params;

/* Bytes of a tensor of `type` and shape `ne` (n_dims dims), or 0 when the type
 * is unknown, ne[0] is not a multiple of its block size, or the size overflows. */
LLMH_API uint64_t llmh_gguf_tensor_size(llmh_dtype type, int32_t n_dims, const int64_t *ne);

/* Write a GGUF v3 file. Validates everything first (unique keys and tensor
 * names, value types, array items of the declared type, shapes, the
 * alignment: a power of two, 8..2^30); errors name the key or tensor. */
LLMH_API llmh_status llmh_gguf_write(const char *path, const llmh_gguf_write_params *params);

#ifdef __cplusplus
}
#endif
#endif /* LLMH_GGUF_H */

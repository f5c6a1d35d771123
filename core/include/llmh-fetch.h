/*
 * llmh-fetch.h — models by URL: download, verify (SHA-256) and cache.
 *
 * A manifest's [model] may name `url` (https://..., hf://owner/repo/file,
 * http:// for loopback hosts) with `sha256` and `size`, or a list of
 * `files` fetched from a base URL (a Hugging Face directory). The file goes
 * to the cache ($LLMH_CACHE, else $XDG_CACHE_HOME/llmhost, else
 * ~/.cache/llmhost) under its checksum; the manifest's resolved model.path
 * already points there, so later runs find it without the network.
 * llmh_model_load() calls llmh_fetch_model() itself. docs/models.md
 * describes the cache layout, the errors and the lock.
 *
 * Same conventions as llmh.h: status returns, llmh_last_error() messages,
 * no printing; progress goes to a callback.
 */
#ifndef LLMH_FETCH_H
#define LLMH_FETCH_H

#include "llmh.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* SHA-256                                                                   */
/* ======================================================================== */
typedef struct llmh_sha256_ctx {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t buf[64];
    size_t n_buf;
} llmh_sha256_ctx;

LLMH_API void llmh_sha256_init(llmh_sha256_ctx *c);
LLMH_API void llmh_sha256_update(llmh_sha256_ctx *c, const void *data, size_t len);
LLMH_API void llmh_sha256_final(llmh_sha256_ctx *c, uint8_t out[32]);
/* 32-byte digest -> 64 lower-case hex digits + NUL. */
LLMH_API void llmh_sha256_hex(const uint8_t digest[32], char out[65]);
/* One-shot: hex digest of `len` bytes. */
LLMH_API void llmh_sha256(const void *data, size_t len, char out_hex[65]);
/* Hex digest of a whole file. LLMH_ERR_IO (message names the file) on error. */
LLMH_API llmh_status llmh_sha256_file(const char *path, char out_hex[65]);

/* ======================================================================== */
/* URLs and the cache                                                        */
/* ======================================================================== */
/* Expand a model URL: "hf://owner/repo/path" and "hf://owner/repo@rev/path"
 * become "$HF_ENDPOINT/owner/repo/resolve/<rev or main>/path" (HF_ENDPOINT
 * defaults to https://huggingface.co); https:// stays; http:// is accepted
 * only for loopback hosts (localhost, 127.x.x.x, [::1]). With allow_base,
 * "hf://owner/repo[@rev]" without a file is accepted too (the base of a
 * [model] files list). *out is malloc'd. LLMH_ERR_INVALID_ARG with a
 * message saying what is wrong. */
LLMH_API llmh_status llmh_fetch_expand_url(const char *url, bool allow_base, char **out);

/* The cache directory (not created): $LLMH_CACHE, else
 * $XDG_CACHE_HOME/llmhost, else $HOME/.cache/llmhost. */
LLMH_API llmh_status llmh_cache_dir(char *buf, size_t size);

/* ======================================================================== */
/* Downloads                                                                 */
/* ======================================================================== */
typedef enum llmh_fetch_event {
    LLMH_FETCH_START = 0,   /* a transfer begins (done = bytes resumed from) */
    LLMH_FETCH_PROGRESS = 1,/* at most ~10 times a second */
    LLMH_FETCH_VERIFY = 2,  /* the whole file is on disk; checking its SHA-256 */
    LLMH_FETCH_DONE = 3,    /* verified and in place */
    LLMH_FETCH_WAIT = 4,    /* another process holds the file's lock; waiting */
    LLMH_FETCH_FAILED = 5   /* this attempt failed (a retry may follow) */
} llmh_fetch_event;

typedef struct llmh_fetch_progress {
    llmh_fetch_event event;
    const char *name;       /* file name */
    const char *url;
    uint64_t done;          /* bytes of the file on disk (resumed bytes included) */
    uint64_t total;         /* file size; 0 when unknown */
    uint64_t resumed_from;  /* bytes that were already on disk when the transfer began */
    double seconds;         /* since the transfer began */
    double rate;            /* bytes/s received by this transfer */
    bool verified;          /* DONE: the file's SHA-256 matched the manifest's (false: none was given) */
} llmh_fetch_progress;

typedef void (*llmh_fetch_progress_fn)(const llmh_fetch_progress *p, void *user);

/* Process-wide progress callback used by every download (NULL = none; the
 * library then only logs at info level). Called on the downloading thread. */
LLMH_API void llmh_fetch_set_progress(llmh_fetch_progress_fn fn, void *user);

/* Make sure one file is at `dest`: when it exists it is used as is (files
 * are renamed there only after verification); otherwise it is downloaded
 * from `url` into dest + ".part" (resumed with a Range request when a
 * partial file exists), its size and SHA-256 checked, and renamed. A lock
 * (flock on a ".<name>.lock" file beside it) makes a second process wait
 * and then use the first one's result. `sha256` (64 hex digits) may be NULL:
 * the file is then not verified and a warning is logged. `size` < 0 when
 * unknown. Up to three attempts resume a transfer cut off midway.
 * Errors: LLMH_ERR_IO with a message naming the URL and the cause (HTTP
 * status, checksum mismatch, disk full, host unreachable). */
LLMH_API llmh_status llmh_fetch_file(const char *url, const char *sha256, int64_t size, const char *dest);

/* Resolve the manifest's model: when [model] has a url (or files), fetch
 * what is missing so cfg->model.path exists. No-op otherwise. Touches the
 * network only when something is missing. */
LLMH_API llmh_status llmh_fetch_model(const llmh_config *cfg);

/* Where a URL with this checksum lives in the cache (what the manifest
 * resolves model.path to): <cache>/sha256/<hex>/<name>, or, without a
 * checksum, <cache>/url/<sha256 of the url>/<name>. `name` NULL = the URL's
 * last path segment. *out is malloc'd. */
LLMH_API llmh_status llmh_fetch_cache_path(const char *url, const char *sha256, const char *name, char **out);

/* ======================================================================== */
/* Cache listing and removal                                                 */
/* ======================================================================== */
typedef enum llmh_cache_kind {
    LLMH_CACHE_FILE = 0,       /* a verified file (keyed by its SHA-256) */
    LLMH_CACHE_UNVERIFIED = 1, /* a file downloaded without a checksum (keyed by its URL) */
    LLMH_CACHE_DIR = 2         /* a directory of files ([model] files) */
} llmh_cache_kind;

typedef struct llmh_cache_entry {
    llmh_cache_kind kind;
    const char *name;       /* file or directory name */
    const char *key;        /* 64 hex digits: the file's SHA-256, the URL's, or the file list's */
    const char *path;       /* absolute path of the file or directory */
    const char *source;     /* the URL it came from ("" when unknown) */
    uint64_t bytes;         /* complete files */
    uint64_t partial_bytes; /* *.part files of unfinished downloads */
    bool complete;          /* false when only a partial download is there */
} llmh_cache_entry;

/* Every cache entry, sorted by name. *out is one malloc'd block (free with
 * free()); an absent cache is an empty list. */
LLMH_API llmh_status llmh_cache_list(llmh_cache_entry **out, size_t *n);

/* Remove the entries whose name equals `what` or whose key starts with it
 * (at least 6 hex digits); `what` NULL removes everything. A key prefix
 * matching entries of different keys is refused as ambiguous.
 * LLMH_ERR_NOT_FOUND when nothing matches. Counts are optional. */
LLMH_API llmh_status llmh_cache_remove(const char *what, size_t *n_removed, uint64_t *bytes_freed);

#ifdef __cplusplus
}
#endif

#endif

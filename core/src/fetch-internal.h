/* fetch-internal.h — what manifest.c and the cache code share with fetch.c
 * (not installed). */
#ifndef LLMH_FETCH_INTERNAL_H
#define LLMH_FETCH_INTERNAL_H

#include "internal.h"
#include "llmh-fetch.h"

/* Cache sub-directories: <cache>/sha256/<hex>/<file>,
 * <cache>/url/<sha256 of url>/<file>, <cache>/dirs/<key>/<name>/<files>. */
#define LLMH__CACHE_SHA "sha256"
#define LLMH__CACHE_URL "url"
#define LLMH__CACHE_DIRS "dirs"
/* File in an entry's key directory recording where it came from. */
#define LLMH__CACHE_SOURCE ".source"

/* The URL's last path segment (query and fragment removed), usable as a
 * file name; "model" when there is none. Writes into buf. */
void llmh__fetch_url_name(const char *url, char *buf, size_t size);

/* True when `name` is a plain file name: non-empty, not "." or "..", no '/',
 * no NUL or control characters, at most 255 bytes. */
bool llmh__fetch_valid_name(const char *name);

/* The cache directory of a [model] files list: <cache>/dirs/<key>/<name>,
 * key = SHA-256 of "name\n(sha256 or url)\n" for each file in order; `name`
 * is the base URL's repository name. *out malloc'd. */
llmh_status llmh__fetch_dir_path(const char *base_url, const char *const *names, const char *const *sha256,
                                 const char *const *urls, size_t n, char **out);

/* mkdir -p (mode 0755). 0 or an errno value. */
int llmh__mkdirs(const char *path);

#endif

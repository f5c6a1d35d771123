/* fetch.c — download a model file once, verify it, keep it in the cache.
 *
 * One file at a time (llmh_fetch_file):
 *   1. take an exclusive flock on "<dir>/.<name>.lock" (a second process
 *      waits here, then finds the finished file and returns);
 *   2. when "<dest>.part" exists, hash what it holds and ask for the rest
 *      with a Range request; a server that answers 200 instead of 206
 *      restarts the file from byte 0;
 *   3. stream the body into the .part file and the running SHA-256, with a
 *      progress callback (bytes, rate, ETA computed by the caller);
 *   4. check size and checksum, fsync, rename to <dest>: a file at <dest>
 *      is therefore always complete and verified.
 * A transfer cut off midway is retried (resumed) up to three times; the
 * .part file stays for a later run otherwise. Checksum mismatches delete it.
 * docs/models.md documents the behaviour and the cache layout. */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fetch-internal.h"

#define FETCH_ATTEMPTS 3     /* consecutive failed attempts without progress */
#define FETCH_MAX_RESUMES 50 /* cut-off transfers resumed within one call */
#define FETCH_IO_CHUNK (1u << 20)

/* ======================================================================== */
/* Progress callback (process-wide)                                          */
/* ======================================================================== */
static pthread_mutex_t g_progress_lock = PTHREAD_MUTEX_INITIALIZER;
static llmh_fetch_progress_fn g_progress_fn;
static void *g_progress_user;

void llmh_fetch_set_progress(llmh_fetch_progress_fn fn, void *user) {
    pthread_mutex_lock(&g_progress_lock);
    g_progress_fn = fn;
    g_progress_user = user;
    pthread_mutex_unlock(&g_progress_lock);
}

static void notify(const llmh_fetch_progress *p) {
    pthread_mutex_lock(&g_progress_lock);
    llmh_fetch_progress_fn fn = g_progress_fn;
    void *user = g_progress_user;
    pthread_mutex_unlock(&g_progress_lock);
    if (fn) fn(p, user);
}

/* ======================================================================== */
/* Small helpers                                                             */
/* ======================================================================== */
int llmh__mkdirs(const char *path) {
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    struct stat st;
    if (stat(buf, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

static void human_bytes(uint64_t b, char *buf, size_t size) {
    if (b >= (1ull << 30)) snprintf(buf, size, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, size, "%.1f MiB", (double)b / (double)(1ull << 20));
    else if (b >= 1024) snprintf(buf, size, "%.1f KiB", (double)b / 1024.0);
    else snprintf(buf, size, "%" PRIu64 " bytes", b);
}

bool llmh__fetch_valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 255 || !strcmp(name, ".") || !strcmp(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

void llmh__fetch_url_name(const char *url, char *buf, size_t size) {
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    size_t end = strcspn(s, "?#");
    const char *last = NULL;
    size_t last_len = 0;
    for (size_t i = 0; i < end;) {
        size_t j = i;
        while (j < end && s[j] != '/') j++;
        if (j > i && i > 0) { /* skip the host (first segment) */
            last = s + i;
            last_len = j - i;
        }
        i = j + 1;
    }
    if (!last || last_len >= size) {
        snprintf(buf, size, "model");
        return;
    }
    memcpy(buf, last, last_len);
    buf[last_len] = 0;
    if (!llmh__fetch_valid_name(buf)) snprintf(buf, size, "model");
}

static int is_loopback_host(const char *host, size_t n) {
    if (n == 9 && !strncasecmp(host, "localhost", 9)) return 1;
    if (n == 5 && !strncmp(host, "[::1]", 5)) return 1;
    if (n >= 4 && !strncmp(host, "127.", 4)) {
        for (size_t i = 4; i < n; i++)
            if (!isdigit((unsigned char)host[i]) && host[i] != '.') return 0;
        return 1;
    }
    return 0;
}

/* The host of "scheme://host[:port]/..." (length in *n). */
static const char *url_host(const char *url, size_t *n) {
    const char *s = strstr(url, "://");
    if (!s) return NULL;
    s += 3;
    size_t len = strcspn(s, "/?#");
    const char *at = memchr(s, '@', len);
    if (at) {
        len -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        *n = close ? (size_t)(close - s) + 1 : len;
    } else {
        const char *colon = memchr(s, ':', len);
        *n = colon ? (size_t)(colon - s) : len;
    }
    return s;
}

llmh_status llmh_fetch_expand_url(const char *url, bool allow_base, char **out) {
    if (!url || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_fetch_expand_url: NULL argument");
    *out = NULL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s' contains a space or control character", url);
    if (!strncmp(url, "hf://", 5)) {
        /* hf://owner/repo[@rev][/path] */
        const char *s = url + 5;
        const char *slash1 = strchr(s, '/');
        if (!slash1 || slash1 == s)
            return llmh__fail(LLMH_ERR_INVALID_ARG,
                              "URL '%s': expected hf://owner/repo/file or hf://owner/repo@revision/file", url);
        const char *repo = slash1 + 1;
        size_t repo_len = strcspn(repo, "/");
        const char *path = repo[repo_len] == '/' ? repo + repo_len + 1 : NULL;
        const char *at = memchr(repo, '@', repo_len);
        size_t name_len = at ? (size_t)(at - repo) : repo_len;
        const char *rev = at ? at + 1 : "main";
        size_t rev_len = at ? repo_len - name_len - 1 : 4;
        if (name_len == 0 || rev_len == 0)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s': empty repository name or revision", url);
        if ((!path || !*path) && !allow_base)
            return llmh__fail(LLMH_ERR_INVALID_ARG,
                              "URL '%s' names a repository, not a file (hf://owner/repo/file; a whole "
                              "directory needs a [model] files list)",
                              url);
        if (path && strstr(path, "..")) return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s': '..' in the file path", url);
        const char *ep = getenv("HF_ENDPOINT");
        if (!ep || !*ep) ep = "https://huggingface.co";
        size_t ep_len = strlen(ep);
        while (ep_len > 0 && ep[ep_len - 1] == '/') ep_len--;
        size_t need = ep_len + (size_t)(slash1 - s) + name_len + rev_len + (path ? strlen(path) : 0) + 32;
        char *r = malloc(need);
        if (!r) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
        int w = snprintf(r, need, "%.*s/%.*s/%.*s/resolve/%.*s%s%s", (int)ep_len, ep, (int)(slash1 - s), s,
                         (int)name_len, repo, (int)rev_len, rev, path && *path ? "/" : "", path && *path ? path : "");
        if (w < 0 || (size_t)w >= need) {
            free(r);
            return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s' is too long", url);
        }
        *out = r;
        return LLMH_OK;
    }
    if (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7)) {
        size_t hn = 0;
        const char *host = url_host(url, &hn);
        if (!host || hn == 0) return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s' has no host", url);
        if (!strncasecmp(url, "http://", 7) && !is_loopback_host(host, hn))
            return llmh__fail(LLMH_ERR_INVALID_ARG,
                              "URL '%s': plain http:// is only accepted for loopback hosts (localhost, 127.0.0.1, "
                              "[::1]); use https://",
                              url);
        if (!(*out = strdup(url))) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
        return LLMH_OK;
    }
    return llmh__fail(LLMH_ERR_INVALID_ARG, "URL '%s': expected https://..., hf://owner/repo/file or http:// on loopback",
                      url);
}

llmh_status llmh_cache_dir(char *buf, size_t size) {
    const char *c = getenv("LLMH_CACHE");
    int w;
    if (c && *c) {
        w = snprintf(buf, size, "%s", c);
    } else if ((c = getenv("XDG_CACHE_HOME")) && *c == '/') {
        w = snprintf(buf, size, "%s/llmhost", c);
    } else if ((c = getenv("HOME")) && *c) {
        w = snprintf(buf, size, "%s/.cache/llmhost", c);
    } else {
        return llmh__fail(LLMH_ERR_NOT_FOUND, "no cache directory: set LLMH_CACHE (or HOME)");
    }
    if (w < 0 || (size_t)w >= size) return llmh__fail(LLMH_ERR_INVALID_ARG, "cache directory path is too long");
    while (w > 1 && buf[w - 1] == '/') buf[--w] = 0;
    return LLMH_OK;
}

static void lower_hex(const char *in, char out[65]) {
    for (int i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)in[i]);
    out[64] = 0;
}

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

llmh_status llmh_fetch_cache_path(const char *url, const char *sha256, const char *name, char **out) {
    if (!url || !out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_fetch_cache_path: NULL argument");
    *out = NULL;
    char dir[PATH_MAX], key[65], nm[256];
    llmh_status st = llmh_cache_dir(dir, sizeof dir);
    if (st) return st;
    if (sha256 && !is_hex64(sha256))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "sha256 '%s' is not 64 hexadecimal digits", sha256);
    if (sha256) lower_hex(sha256, key);
    else llmh_sha256(url, strlen(url), key);
    if (name) {
        if (!llmh__fetch_valid_name(name)) return llmh__fail(LLMH_ERR_INVALID_ARG, "'%s' is not a valid file name", name);
        snprintf(nm, sizeof nm, "%s", name);
    } else {
        llmh__fetch_url_name(url, nm, sizeof nm);
    }
    size_t need = strlen(dir) + strlen(nm) + 96;
    char *p = malloc(need);
    if (!p) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    snprintf(p, need, "%s/%s/%s/%s", dir, sha256 ? LLMH__CACHE_SHA : LLMH__CACHE_URL, key, nm);
    *out = p;
    return LLMH_OK;
}

llmh_status llmh__fetch_dir_path(const char *base_url, const char *const *names, const char *const *sha256,
                                 const char *const *urls, size_t n, char **out) {
    *out = NULL;
    char dir[PATH_MAX], key[65], nm[256];
    llmh_status st = llmh_cache_dir(dir, sizeof dir);
    if (st) return st;
    llmh_sha256_ctx c;
    uint8_t d[32];
    llmh_sha256_init(&c);
    for (size_t i = 0; i < n; i++) {
        const char *v = sha256[i] ? sha256[i] : urls[i];
        llmh_sha256_update(&c, names[i], strlen(names[i]));
        llmh_sha256_update(&c, "\n", 1);
        if (sha256[i]) {
            char low[65];
            lower_hex(v, low);
            llmh_sha256_update(&c, low, 64);
        } else {
            llmh_sha256_update(&c, v, strlen(v));
        }
        llmh_sha256_update(&c, "\n", 1);
    }
    llmh_sha256_final(&c, d);
    llmh_sha256_hex(d, key);
    /* the repository name: ".../owner/repo/resolve/rev" -> "repo" */
    const char *r = strstr(base_url, "/resolve/");
    size_t end = r ? (size_t)(r - base_url) : strlen(base_url);
    while (end > 0 && base_url[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && base_url[start - 1] != '/') start--;
    if (end > start && end - start < sizeof nm) {
        memcpy(nm, base_url + start, end - start);
        nm[end - start] = 0;
        if (!llmh__fetch_valid_name(nm) || strstr(nm, "://")) snprintf(nm, sizeof nm, "model");
    } else {
        snprintf(nm, sizeof nm, "model");
    }
    size_t need = strlen(dir) + strlen(nm) + 96;
    char *p = malloc(need);
    if (!p) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    snprintf(p, need, "%s/%s/%s/%s", dir, LLMH__CACHE_DIRS, key, nm);
    *out = p;
    return LLMH_OK;
}

llmh_status llmh_sha256_file(const char *path, char out_hex[65]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return llmh__fail(LLMH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = malloc(FETCH_IO_CHUNK);
    if (!buf) {
        close(fd);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    }
    llmh_sha256_ctx c;
    llmh_sha256_init(&c);
    for (;;) {
        ssize_t r = read(fd, buf, FETCH_IO_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return llmh__fail(LLMH_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        llmh_sha256_update(&c, buf, (size_t)r);
    }
    free(buf);
    close(fd);
    uint8_t d[32];
    llmh_sha256_final(&c, d);
    llmh_sha256_hex(d, out_hex);
    return LLMH_OK;
}

/* ======================================================================== */
/* The lock                                                                  */
/* ======================================================================== */

/* Lock `lockpath` exclusively. The lock file is unlinked by its holder on
 * release, so after getting the lock we check the path still names the
 * inode we locked (else someone released and removed it: start over). */
static llmh_status lock_take(const char *lockpath, const char *name, const char *url, int *fd_out) {
    *fd_out = -1;
    for (;;) {
        int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && errno == ENOENT) {
            /* a failed download removed its empty directory meanwhile: recreate it */
            char dir[PATH_MAX + 300];
            snprintf(dir, sizeof dir, "%s", lockpath);
            char *slash = strrchr(dir, '/');
            if (slash && slash != dir) {
                *slash = 0;
                llmh__mkdirs(dir);
            }
            fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        }
        if (fd < 0) return llmh__fail(LLMH_ERR_IO, "%s: cannot create the download lock: %s", lockpath, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) {
                int e = errno;
                close(fd);
                return llmh__fail(LLMH_ERR_IO, "%s: cannot lock: %s", lockpath, strerror(e));
            }
            LLMH_LOGI("waiting for another process downloading %s", name);
            llmh_fetch_progress p = {LLMH_FETCH_WAIT, name, url, 0, 0, 0, 0, 0, false};
            notify(&p);
            int rc;
            while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
            }
            if (rc != 0) {
                int e = errno;
                close(fd);
                return llmh__fail(LLMH_ERR_IO, "%s: cannot lock: %s", lockpath, strerror(e));
            }
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lockpath, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            *fd_out = fd;
            return LLMH_OK;
        }
        close(fd); /* released and removed by its holder meanwhile: retry */
    }
}

static void lock_release(const char *lockpath, int fd) {
    if (fd < 0) return;
    unlink(lockpath);
    close(fd);
}

/* ======================================================================== */
/* One transfer                                                              */
/* ======================================================================== */
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc;
static void curl_init_once(void) { g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef enum { ATT_DONE, ATT_RETRY, ATT_RESTART, ATT_FATAL } attempt_result;

typedef struct dl_state {
    const char *url, *name, *part, *dir;
    int fd;
    int64_t expect_size;       /* -1 unknown */
    uint64_t offset;           /* bytes on disk when the transfer began */
    uint64_t written;          /* bytes on disk now */
    uint64_t total;            /* file size as the server reports it (0 unknown) */
    llmh_sha256_ctx sha;
    long status;
    bool started;
    /* headers of the current response */
    bool have_cr;
    uint64_t cr_start, cr_total;
    int64_t clen;
    /* abort reasons */
    int write_errno;
    char why[512];
    /* progress */
    double t0, last_cb;
    bool verified;
    uint64_t received;         /* body bytes of the current attempt */
    char linked_etag[65];      /* Hugging Face's X-Linked-Etag: the file's SHA-256 (LFS oid), or "" */
} dl_state;

static size_t on_header(char *buf, size_t size, size_t n, void *user) {
    dl_state *s = user;
    size_t len = size * n;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (redirects) */
        s->have_cr = false;
        s->clen = -1;
        return len;
    }
    char line[256];
    size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, buf, l);
    line[l] = 0;
    unsigned long long a = 0, b = 0, t = 0;
    if (!strncasecmp(line, "content-range:", 14)) {
        const char *v = line + 14;
        while (*v == ' ') v++;
        if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
            s->have_cr = true;
            s->cr_start = a;
            s->cr_total = t;
        } else if (sscanf(v, "bytes */%llu", &t) == 1) {
            s->have_cr = true;
            s->cr_start = UINT64_MAX;
            s->cr_total = t;
        }
    } else if (!strncasecmp(line, "x-linked-etag:", 14)) {
        /* Hugging Face names an LFS file's SHA-256 here (on the resolve redirect) */
        const char *v = line + 14;
        while (*v == ' ') v++;
        if (!strncmp(v, "W/", 2)) v += 2;
        if (*v == '"') v++;
        size_t hex = 0;
        while (hex < 65 && isxdigit((unsigned char)v[hex])) hex++;
        if (hex == 64) {
            for (int i = 0; i < 64; i++) s->linked_etag[i] = (char)tolower((unsigned char)v[i]);
            s->linked_etag[64] = 0;
        }
    } else if (!strncasecmp(line, "content-length:", 15)) {
        if (sscanf(line + 15, " %llu", &a) == 1 && a <= (unsigned long long)INT64_MAX) s->clen = (int64_t)a;
    }
    return len;
}

static void progress_now(dl_state *s, llmh_fetch_event ev) {
    double now = llmh__now_seconds(), el = now - s->t0;
    llmh_fetch_progress p = {ev, s->name, s->url, s->written, s->total, s->offset, el,
                             el > 0 ? (double)(s->written - s->offset) / el : 0, s->verified};
    s->last_cb = now;
    notify(&p);
}

/* First body bytes: decide what this response means for the .part file. */
static int on_first_body(dl_state *s, CURL *h) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 400) return -1; /* reported after perform() */
    if (s->status == 206) {
        if (!s->have_cr || s->cr_start != s->offset) {
            snprintf(s->why, sizeof s->why, "the server answered the request for bytes %" PRIu64 "- with another range",
                     s->offset);
            return -1;
        }
        s->total = s->cr_total;
    } else {
        if (s->offset > 0) {
            LLMH_LOGI("%s: the server sent the whole file (HTTP %ld) instead of the rest; starting over", s->url,
                      s->status);
            if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0) {
                s->write_errno = errno;
                return -1;
            }
            llmh_sha256_init(&s->sha);
            s->offset = s->written = 0;
        }
        s->total = s->clen >= 0 ? (uint64_t)s->clen : 0;
    }
    if (s->expect_size >= 0 && s->total && s->total != (uint64_t)s->expect_size) {
        snprintf(s->why, sizeof s->why, "the server's file has %" PRIu64 " bytes, the manifest's size says %" PRId64,
                 s->total, s->expect_size);
        return -1;
    }
    if (s->total > s->written) {
        struct statvfs vf;
        if (statvfs(s->dir, &vf) == 0) {
            uint64_t avail = (uint64_t)vf.f_bavail * (uint64_t)vf.f_frsize, need = s->total - s->written;
            if (avail < need) {
                char a[32], b[32];
                human_bytes(need, a, sizeof a);
                human_bytes(avail, b, sizeof b);
                snprintf(s->why, sizeof s->why, "disk full: %s needs %s more, %s has %s free", s->name, a, s->dir, b);
                return -1;
            }
        }
    }
    s->started = true;
    s->t0 = llmh__now_seconds();
    progress_now(s, LLMH_FETCH_START);
    return 0;
}

typedef struct dl_ctx {
    dl_state *s;
    CURL *h;
} dl_ctx;

static size_t on_body_h(char *data, size_t size, size_t n, void *user) {
    dl_ctx *c = user;
    dl_state *s = c->s;
    size_t len = size * n;
    if (!s->started && on_first_body(s, c->h) != 0) return 0;
    if (s->expect_size >= 0 && s->written + len > (uint64_t)s->expect_size) {
        snprintf(s->why, sizeof s->why, "the server sent more than the manifest's size of %" PRId64 " bytes",
                 s->expect_size);
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(s->fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        off += (size_t)w;
    }
    llmh_sha256_update(&s->sha, data, len);
    s->written += len;
    s->received += len;
    return len;
}

static int on_xfer(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    dl_ctx *c = user;
    dl_state *s = c->s;
    if (s->started && llmh__now_seconds() - s->last_cb >= 0.1) progress_now(s, LLMH_FETCH_PROGRESS);
    return 0;
}

static const char *http_reason(long code) {
    switch (code) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 410: return "Gone";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return code >= 500 ? "server error" : "client error";
    }
}

/* True for URLs of the Hugging Face endpoint (where HF_TOKEN may go):
 * https://huggingface.co/..., or under $HF_ENDPOINT (scheme, host and port). */
static bool is_hf_url(const char *url) {
    const char *ep = getenv("HF_ENDPOINT");
    if (ep && *ep) {
        size_t n = strlen(ep);
        while (n > 0 && ep[n - 1] == '/') n--;
        if (n > 0 && !strncasecmp(url, ep, n) && url[n] == '/') return true;
    }
    return !strncasecmp(url, "https://huggingface.co/", 23);
}

/* One HTTP transfer appending to the open .part file. */
static attempt_result attempt(dl_state *s, bool *progressed) {
    CURL *h = curl_easy_init();
    if (!h) {
        llmh_set_error("%s: cannot start a transfer (libcurl init failed)", s->url);
        return ATT_FATAL;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    char range[48];
    struct curl_slist *hdrs = NULL;
    dl_ctx ctx = {s, h};
    s->status = 0;
    s->started = false;
    s->have_cr = false;
    s->clen = -1;
    s->why[0] = 0;
    s->write_errno = 0;
    s->received = 0;

    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, strncasecmp(s->url, "https://", 8) ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* stalled: < 1 KiB/s for 60 s */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "llmhost/" LLMH_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_h);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ctx);
    if (s->offset > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", s->offset);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    const char *tok = getenv("HF_TOKEN");
    char auth[1100];
    if (tok && *tok && strlen(tok) < 1000 && is_hf_url(s->url)) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
        hdrs = curl_slist_append(hdrs, auth);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (!s->started) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    *progressed = s->received > 0;

    if (s->status >= 400) {
        if (s->status == 416 && s->offset > 0) {
            /* asked for bytes past the end: the .part may already be whole */
            uint64_t total = s->have_cr ? s->cr_total : 0;
            if ((total && total == s->offset) || (s->expect_size >= 0 && (uint64_t)s->expect_size == s->offset)) {
                s->total = s->offset;
                return ATT_DONE;
            }
            return ATT_RESTART;
        }
        const char *hint = "";
        if ((s->status == 401 || s->status == 403) && is_hf_url(s->url))
            hint = " (a gated or private Hugging Face repository: accept its license on the website and set HF_TOKEN)";
        llmh_set_error("%s: HTTP %ld (%s)%s", s->url, s->status, http_reason(s->status), hint);
        return s->status >= 500 || s->status == 429 ? ATT_RETRY : ATT_FATAL;
    }
    if (s->why[0]) {
        llmh_set_error("%s: %s", s->url, s->why);
        return ATT_FATAL;
    }
    if (s->write_errno) {
        int e = s->write_errno;
        if (e == ENOSPC || e == EDQUOT) {
            struct statvfs vf;
            char a[32] = "?";
            if (statvfs(s->dir, &vf) == 0) human_bytes((uint64_t)vf.f_bavail * vf.f_frsize, a, sizeof a);
            llmh_set_error("%s: disk full writing %s after %" PRIu64 " bytes (%s free in %s); the partial file is kept "
                           "and resumes once space is freed",
                           s->url, s->part, s->written, a, s->dir);
        } else {
            llmh_set_error("%s: cannot write %s: %s", s->url, s->part, strerror(e));
        }
        return ATT_FATAL;
    }
    switch (rc) {
    case CURLE_OK:
        if (s->total && s->written != s->total) {
            llmh_set_error("%s: transfer ended at %" PRIu64 " of %" PRIu64 " bytes", s->url, s->written, s->total);
            return ATT_RETRY;
        }
        if (!s->started) s->total = s->written; /* empty body */
        return ATT_DONE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: {
        size_t hn = 0;
        const char *host = url_host(s->url, &hn);
        llmh_set_error("%s: cannot resolve host '%.*s' (no network?): %s", s->url, (int)hn, host ? host : "",
                       errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return ATT_FATAL;
    }
    case CURLE_COULDNT_CONNECT:
        llmh_set_error("%s: cannot connect (no network, or the server is down): %s", s->url,
                       errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return ATT_FATAL;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        llmh_set_error("%s: transfer cut off after %" PRIu64 " bytes: %s", s->url, s->written,
                       errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return ATT_RETRY;
    default:
        llmh_set_error("%s: %s", s->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return ATT_FATAL;
    }
}

/* ======================================================================== */
/* llmh_fetch_file                                                           */
/* ======================================================================== */
static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Hash the first `n` bytes already in the .part file. */
static llmh_status hash_prefix(dl_state *s) {
    uint8_t *buf = malloc(FETCH_IO_CHUNK);
    if (!buf) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    uint64_t left = s->offset;
    if (lseek(s->fd, 0, SEEK_SET) != 0) {
        free(buf);
        return llmh__fail(LLMH_ERR_IO, "%s: seek: %s", s->part, strerror(errno));
    }
    while (left > 0) {
        ssize_t r = read(s->fd, buf, left < FETCH_IO_CHUNK ? (size_t)left : FETCH_IO_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            return llmh__fail(LLMH_ERR_IO, "%s: read: %s", s->part, strerror(e));
        }
        llmh_sha256_update(&s->sha, buf, (size_t)r);
        left -= (uint64_t)r;
    }
    free(buf);
    if (lseek(s->fd, (off_t)s->offset, SEEK_SET) != (off_t)s->offset)
        return llmh__fail(LLMH_ERR_IO, "%s: seek: %s", s->part, strerror(errno));
    return LLMH_OK;
}

static llmh_status download_locked(const char *url, const char *sha, int64_t size, const char *dest,
                                   const char *dir, const char *name) {
    size_t plen = strlen(dest) + 6;
    char *part = malloc(plen);
    if (!part) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    snprintf(part, plen, "%s.part", dest);
    dl_state s;
    memset(&s, 0, sizeof s);
    s.url = url;
    s.name = name;
    s.part = part;
    s.dir = dir;
    s.expect_size = size;
    s.fd = -1;
    llmh_status st = LLMH_OK;
    int attempts = 0, restarts = 0, resumes = 0;

    for (;;) {
        if (s.fd < 0) {
            s.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (s.fd < 0) {
                st = llmh__fail(LLMH_ERR_IO, "%s: cannot create %s: %s", url, part, strerror(errno));
                goto out;
            }
            struct stat sb;
            if (fstat(s.fd, &sb) != 0) {
                st = llmh__fail(LLMH_ERR_IO, "%s: %s", part, strerror(errno));
                goto out;
            }
            s.offset = s.written = (uint64_t)sb.st_size;
            llmh_sha256_init(&s.sha);
            if (size >= 0 && s.offset > (uint64_t)size) { /* not ours: start over */
                if (ftruncate(s.fd, 0) != 0) {
                    st = llmh__fail(LLMH_ERR_IO, "%s: %s", part, strerror(errno));
                    goto out;
                }
                s.offset = s.written = 0;
            }
            if (s.offset > 0) {
                LLMH_LOGI("resuming %s at byte %" PRIu64, name, s.offset);
                s.t0 = llmh__now_seconds();
                progress_now(&s, LLMH_FETCH_VERIFY);
                if ((st = hash_prefix(&s))) goto out;
            }
        }
        s.offset = s.written; /* the running hash covers [0, offset) */
        bool progressed = false;
        LLMH_LOGI("downloading %s%s", url, s.offset ? " (resuming)" : "");
        attempt_result r = attempt(&s, &progressed);
        if (r == ATT_DONE) break;
        s.t0 = s.t0 ? s.t0 : llmh__now_seconds();
        progress_now(&s, LLMH_FETCH_FAILED);
        if (r == ATT_FATAL) {
            st = LLMH_ERR_IO;
            goto out;
        }
        if (r == ATT_RESTART) {
            if (++restarts > 1) {
                st = llmh__fail(LLMH_ERR_IO, "%s: the server refuses to resume and the partial file does not match it",
                                url);
                goto out;
            }
            LLMH_LOGI("%s: the partial file does not fit the server's file; starting over", name);
            close(s.fd);
            s.fd = -1;
            unlink(part);
            continue;
        }
        /* ATT_RETRY: resume from what is on disk; a transfer that keeps
         * making progress keeps going, up to FETCH_MAX_RESUMES cuts */
        if (progressed) attempts = 0;
        if (++attempts >= FETCH_ATTEMPTS || ++resumes > FETCH_MAX_RESUMES) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", llmh_last_error());
            if (s.written)
                st = llmh__fail(LLMH_ERR_IO, "%s (gave up after %d attempts; %" PRIu64
                                " bytes kept in %s, the next run resumes)", msg, attempts, s.written, part);
            else
                st = llmh__fail(LLMH_ERR_IO, "%s (gave up after %d attempts)", msg, attempts);
            goto out;
        }
        LLMH_LOGW("%s; retrying", llmh_last_error());
        struct timespec ts = {0, 250000000L * attempts};
        nanosleep(&ts, NULL);
    }

    /* verify */
    if (size >= 0 && s.written != (uint64_t)size) {
        unlink(part);
        st = llmh__fail(LLMH_ERR_IO, "%s: got %" PRIu64 " bytes, the manifest's size says %" PRId64
                        "; the download was deleted", url, s.written, size);
        goto out;
    }
    if (fsync(s.fd) != 0) {
        st = llmh__fail(LLMH_ERR_IO, "%s: fsync: %s", part, strerror(errno));
        goto out;
    }
    {
        uint8_t d[32];
        char got[65];
        llmh_sha256_final(&s.sha, d);
        llmh_sha256_hex(d, got);
        if (sha) {
            char want[65];
            lower_hex(sha, want);
            if (strcmp(want, got) != 0) {
                unlink(part);
                st = llmh__fail(LLMH_ERR_IO,
                                "%s: checksum mismatch: expected sha256 %s, got %s (%" PRIu64
                                " bytes); the download was deleted. The file on the server changed or the "
                                "manifest's sha256 is wrong",
                                url, want, got, s.written);
                goto out;
            }
            s.verified = true;
        } else if (s.linked_etag[0]) {
            /* no checksum in the manifest, but the server published one: hold the file to it */
            if (strcmp(s.linked_etag, got) != 0) {
                unlink(part);
                st = llmh__fail(LLMH_ERR_IO,
                                "%s: checksum mismatch: the server's X-Linked-Etag says sha256 %s, got %s (%" PRIu64
                                " bytes); the download was deleted",
                                url, s.linked_etag, got, s.written);
                goto out;
            }
            s.verified = true;
            LLMH_LOGW("%s has no sha256 in the manifest; it matches the SHA-256 the server publishes (%s). Add "
                      "`sha256 = \"%s\"` to pin it",
                      url, got, got);
        } else {
            LLMH_LOGW("%s has no sha256 in the manifest; its SHA-256 is %s (add `sha256 = \"%s\"` to verify it)",
                      url, got, got);
        }
    }
    close(s.fd);
    s.fd = -1;
    if (rename(part, dest) != 0) {
        st = llmh__fail(LLMH_ERR_IO, "%s: cannot rename %s to %s: %s", url, part, dest, strerror(errno));
        goto out;
    }
    fsync_dir(dir);
    progress_now(&s, LLMH_FETCH_DONE);
    {
        char a[32];
        double el = llmh__now_seconds() - s.t0;
        human_bytes(s.written, a, sizeof a);
        LLMH_LOGI("downloaded %s (%s) in %.1f s to %s", name, a, el, dest);
    }
out:
    if (s.fd >= 0) close(s.fd);
    if (st != LLMH_OK && s.written == 0) unlink(part); /* nothing worth resuming */
    free(part);
    return st;
}

llmh_status llmh_fetch_file(const char *url, const char *sha256, int64_t size, const char *dest) {
    if (!url || !dest || !*dest) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_fetch_file: NULL argument");
    if (sha256 && !is_hex64(sha256))
        return llmh__fail(LLMH_ERR_INVALID_ARG, "%s: sha256 '%s' is not 64 hexadecimal digits", url, sha256);
    if (access(dest, F_OK) == 0) return LLMH_OK; /* files land there only once verified */
    char *full = NULL;
    llmh_status st = llmh_fetch_expand_url(url, false, &full);
    if (st) return st;
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK) {
        free(full);
        return llmh__fail(LLMH_ERR_IO, "libcurl initialization failed: %s", curl_easy_strerror(g_curl_init_rc));
    }
    const char *slash = strrchr(dest, '/');
    char dir[PATH_MAX], name[256], lockpath[PATH_MAX + 300];
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
        snprintf(name, sizeof name, "%s", dest);
    } else {
        size_t dn = (size_t)(slash - dest);
        if (dn >= sizeof dir || strlen(slash + 1) >= sizeof name) {
            free(full);
            return llmh__fail(LLMH_ERR_INVALID_ARG, "%s: path too long", dest);
        }
        memcpy(dir, dest, dn ? dn : 1);
        dir[dn ? dn : 1] = 0;
        snprintf(name, sizeof name, "%s", slash + 1);
    }
    int e = llmh__mkdirs(dir);
    if (e) {
        free(full);
        return llmh__fail(LLMH_ERR_IO, "%s: cannot create directory %s: %s", url, dir, strerror(e));
    }
    snprintf(lockpath, sizeof lockpath, "%s/.%s.lock", dir, name);
    int lfd = -1;
    if ((st = lock_take(lockpath, name, full, &lfd))) {
        free(full);
        return st;
    }
    if (access(dest, F_OK) == 0) { /* another process finished it while we waited */
        LLMH_LOGI("%s: downloaded by another process", name);
        lock_release(lockpath, lfd);
        free(full);
        return LLMH_OK;
    }
    st = download_locked(full, sha256, size, dest, dir, name);
    lock_release(lockpath, lfd);
    if (st) {
        /* nothing of ours left in an empty cache entry directory */
        rmdir(dir);
    }
    free(full);
    return st;
}

/* ======================================================================== */
/* llmh_fetch_model                                                          */
/* ======================================================================== */
static void write_source(const char *entry_dir, const char *url) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/%s", entry_dir, LLMH__CACHE_SOURCE);
    if (access(p, F_OK) == 0) return;
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld", p, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "%s\n", url);
    if (fclose(f) == 0) rename(tmp, p);
    else unlink(tmp);
}

/* The directory above `path` when path is inside the cache, else NULL. */
static bool in_cache(const char *path, char *entry_dir, size_t size) {
    char cache[PATH_MAX];
    if (llmh_cache_dir(cache, sizeof cache) != LLMH_OK) {
        llmh_clear_error();
        return false;
    }
    size_t cl = strlen(cache);
    if (strncmp(path, cache, cl) != 0 || path[cl] != '/') return false;
    const char *slash = strrchr(path, '/');
    size_t n = (size_t)(slash - path);
    if (n >= size) return false;
    memcpy(entry_dir, path, n);
    entry_dir[n] = 0;
    return true;
}

llmh_status llmh_fetch_model(const llmh_config *cfg) {
    if (!cfg) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_fetch_model: NULL config");
    if (!cfg->model.url || !cfg->model.path) return LLMH_OK;
    char entry[PATH_MAX];
    if (cfg->model.n_files == 0) {
        if (!cfg->model.sha256)
            LLMH_LOGW("UNVERIFIED MODEL: [model] url %s has no sha256, so nothing pins the file to the one intended "
                      "(a download is only checked against a checksum the server publishes, as Hugging Face does; "
                      "add sha256 to the manifest, llmhost pull prints the digest)",
                      cfg->model.url);
        bool had = access(cfg->model.path, F_OK) == 0;
        llmh_status st = llmh_fetch_file(cfg->model.url, cfg->model.sha256, cfg->model.size, cfg->model.path);
        if (st) return st;
        if (!had && in_cache(cfg->model.path, entry, sizeof entry)) write_source(entry, cfg->model.url);
        return LLMH_OK;
    }
    int e = llmh__mkdirs(cfg->model.path);
    if (e) return llmh__fail(LLMH_ERR_IO, "%s: cannot create directory: %s", cfg->model.path, strerror(e));
    size_t unverified = 0;
    for (size_t i = 0; i < cfg->model.n_files; i++)
        if (!cfg->model.files[i].sha256) unverified++;
    if (unverified)
        LLMH_LOGW("UNVERIFIED MODEL: %zu of the %zu [model] files from %s have no sha256; nothing checks them", unverified,
                  cfg->model.n_files, cfg->model.url);
    for (size_t i = 0; i < cfg->model.n_files; i++) {
        const struct llmh_model_file *f = &cfg->model.files[i];
        size_t need = strlen(cfg->model.path) + strlen(f->name) + 2;
        char *dest = malloc(need);
        if (!dest) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
        snprintf(dest, need, "%s/%s", cfg->model.path, f->name);
        llmh_status st = llmh_fetch_file(f->url, f->sha256, f->size, dest);
        free(dest);
        if (st) return st;
    }
    if (in_cache(cfg->model.path, entry, sizeof entry)) write_source(entry, cfg->model.url);
    return LLMH_OK;
}

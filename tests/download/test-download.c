/* test-download.c — models by URL against a loopback HTTP server started
 * here (libmicrohttpd): fresh download, cache hit with the server stopped,
 * resume after cut-off transfers (Range requests checked on the server),
 * a server that ignores Range, checksum mismatch (nothing left in the
 * cache), 404, no server, disk-full preflight, two processes pulling the
 * same file (one download), hf:// file lists, manifest errors, llmh_model_load
 * of a url model, and `llmhost pull/models/rm` on a temporary $LLMH_CACHE.
 * SHA-256 is checked against the NIST example vectors. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llmh-fetch.h"
#include "testutil.h"

/* ======================================================================== */
/* The test server                                                           */
/* ======================================================================== */
#define MAX_FILES 16

typedef struct srv_file {
    char path[256];
    const unsigned char *data; /* NULL: virtual zeros of `size` bytes */
    size_t size;
    const char *etag;          /* sent as X-Linked-Etag (as Hugging Face does), or NULL */
} srv_file;

typedef struct srv {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t lock;
    srv_file files[MAX_FILES];
    int n_files;
    /* behaviour */
    int cut_remaining;     /* cut this many responses off after cut_after bytes */
    size_t cut_after;
    int ignore_range;      /* answer 200 with the whole file to Range requests */
    unsigned delay_us;     /* sleep per 16 KiB chunk (slow server) */
    /* what it saw */
    int requests;
    int range_requests;
    char last_range[64];
    char first_range[64];
    char last_auth[128];
} srv;

static srv S;

typedef struct body {
    const srv_file *f;
    size_t start, end; /* [start, end) */
    size_t cut;        /* bytes of this response before cutting (SIZE_MAX none) */
} body;

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max) {
    body *b = cls;
    size_t sent = (size_t)pos;
    if (sent >= b->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t left = b->end - b->start - sent;
    if (left == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < 16384 ? max : 16384;
    if (n > left) n = left;
    if (b->cut != SIZE_MAX && sent + n > b->cut) n = b->cut - sent;
    if (S.delay_us) usleep(S.delay_us);
    if (b->f->data) memcpy(buf, b->f->data + b->start + sent, n);
    else memset(buf, 0, n);
    return (ssize_t)n;
}

static void body_free(void *cls) { free(cls); }

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0) return MHD_NO;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&S.lock);
    S.requests++;
    snprintf(S.last_range, sizeof S.last_range, "%s", range ? range : "");
    snprintf(S.last_auth, sizeof S.last_auth, "%s", auth ? auth : "");
    if (range) {
        if (S.range_requests++ == 0) snprintf(S.first_range, sizeof S.first_range, "%s", range);
    }
    const srv_file *f = NULL;
    for (int i = 0; i < S.n_files; i++)
        if (!strcmp(S.files[i].path, url)) f = &S.files[i];
    int cut = 0;
    if (f && S.cut_remaining > 0) {
        S.cut_remaining--;
        cut = 1;
    }
    int ignore_range = S.ignore_range;
    size_t cut_after = S.cut_after;
    pthread_mutex_unlock(&S.lock);

    struct MHD_Response *r;
    enum MHD_Result ret;
    if (!f) {
        static const char msg[] = "not found";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    size_t start = 0;
    unsigned long long a = 0;
    int partial = 0;
    if (range && !ignore_range && sscanf(range, "bytes=%llu-", &a) == 1) {
        if (a >= f->size) {
            r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%zu", f->size);
            MHD_add_response_header(r, "Content-Range", cr);
            ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
            MHD_destroy_response(r);
            return ret;
        }
        start = (size_t)a;
        partial = 1;
    }
    body *b = calloc(1, sizeof *b);
    b->f = f;
    b->start = start;
    b->end = f->size;
    b->cut = cut ? cut_after : SIZE_MAX;
    r = MHD_create_response_from_callback(f->size - start, 16384, body_read, b, body_free);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (f->etag) MHD_add_response_header(r, "X-Linked-Etag", f->etag);
    if (partial) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", start, f->size - 1, f->size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    ret = MHD_queue_response(c, partial ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void srv_reset_counters(void) {
    pthread_mutex_lock(&S.lock);
    S.requests = S.range_requests = 0;
    S.last_range[0] = S.first_range[0] = S.last_auth[0] = 0;
    S.cut_remaining = 0;
    S.ignore_range = 0;
    S.delay_us = 0;
    pthread_mutex_unlock(&S.lock);
}

/* The cut-off responses are deliberate: keep libmicrohttpd quiet about them. */
static void srv_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    (void)fmt;
    (void)ap;
}

static int srv_start(void) {
    S.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                           NULL, NULL, handler, NULL, MHD_OPTION_EXTERNAL_LOGGER, srv_log, NULL, MHD_OPTION_END);
    if (!S.d) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info) return -1;
    S.port = info->port;
    return 0;
}

static void srv_stop(void) {
    if (S.d) MHD_stop_daemon(S.d);
    S.d = NULL;
}

static void srv_add(const char *path, const unsigned char *data, size_t size) {
    if (S.n_files >= MAX_FILES) abort();
    srv_file *f = &S.files[S.n_files++];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->data = data;
    f->size = size;
    f->etag = NULL;
}

/* ======================================================================== */
/* Fixtures                                                                  */
/* ======================================================================== */
#define BLOB_SIZE (1536u * 1024u + 77u)
static unsigned char *g_blob;
static char g_blob_sha[65];
static unsigned char g_small[3000];
static char g_small_sha[65];
static char g_root[256]; /* temp dir of this run */
static char g_cache[300];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static int mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *q = buf + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        mkdir(buf, 0755);
        *q = '/';
    }
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* N of a "bytes=N-" header, or -1. */
static long long range_start(const char *h) {
    long long n = -1;
    if (sscanf(h, "bytes=%lld-", &n) != 1) return -1;
    return n;
}

/* A fresh, empty $LLMH_CACHE for one test. */
static void fresh_cache(const char *name) {
    snprintf(g_cache, sizeof g_cache, "%s/%s", g_root, name);
    rm_rf(g_cache);
    setenv("LLMH_CACHE", g_cache, 1);
}

static char *url_of(const char *path) {
    char *u = malloc(512);
    snprintf(u, 512, "http://127.0.0.1:%u%s", S.port, path);
    return u;
}

static size_t cache_entries(void) {
    llmh_cache_entry *v = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(llmh_cache_list(&v, &n), LLMH_OK);
    free(v);
    return n;
}

static int file_equals(const char *path, const unsigned char *data, size_t size) {
    size_t len = 0;
    char *got = llmh_test_read_file(path, &len);
    int ok = got && len == size && memcmp(got, data, size) == 0;
    free(got);
    return ok;
}

static llmh_manifest *parse(const char *text) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_parse(text, strlen(text), "dl.toml", g_root, &m);
    if (st) fprintf(stderr, "\n  manifest: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    return m;
}

static llmh_manifest *manifest_for(const char *url, const char *sha, long long size) {
    char text[1024];
    int w = snprintf(text, sizeof text, "[model]\nurl = \"%s\"\n", url);
    if (sha) w += snprintf(text + w, sizeof text - (size_t)w, "sha256 = \"%s\"\n", sha);
    if (size >= 0) snprintf(text + w, sizeof text - (size_t)w, "size = %lld\n", size);
    return parse(text);
}

static int suite_init(void) {
    snprintf(g_root, sizeof g_root, "/tmp/llmh-download-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    g_blob = malloc(BLOB_SIZE);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < BLOB_SIZE; i++) g_blob[i] = (unsigned char)llmh_test_rand(&rng);
    llmh_sha256(g_blob, BLOB_SIZE, g_blob_sha);
    for (size_t i = 0; i < sizeof g_small; i++) g_small[i] = (unsigned char)(i * 7 + 3);
    llmh_sha256(g_small, sizeof g_small, g_small_sha);
    pthread_mutex_init(&S.lock, NULL);
    unsetenv("HF_TOKEN");
    unsetenv("HF_ENDPOINT");
    srv_add("/m/model.gguf", g_blob, BLOB_SIZE);
    srv_add("/small.bin", g_small, sizeof g_small);
    srv_add("/huge.bin", NULL, (size_t)1 << 50);
    static char good_etag[70];
    snprintf(good_etag, sizeof good_etag, "\"%s\"", g_small_sha);
    srv_add("/etag/good.bin", g_small, sizeof g_small);
    S.files[S.n_files - 1].etag = good_etag;
    srv_add("/etag/bad.bin", g_small, sizeof g_small);
    S.files[S.n_files - 1].etag = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    return srv_start();
}

static int suite_cleanup(void) {
    srv_stop();
    rm_rf(g_root);
    free(g_blob);
    return 0;
}

/* ======================================================================== */
/* SHA-256 (NIST FIPS 180-4 examples)                                        */
/* ======================================================================== */
static void test_sha256_vectors(void) {
    char hex[65];
    llmh_sha256("abc", 3, hex);
    CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    llmh_sha256("", 0, hex);
    CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    llmh_sha256(m448, strlen(m448), hex);
    CU_ASSERT_STRING_EQUAL(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    llmh_sha256(m896, strlen(m896), hex);
    CU_ASSERT_STRING_EQUAL(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* one million 'a', fed in odd-sized pieces */
    llmh_sha256_ctx c;
    uint8_t d[32];
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    llmh_sha256_init(&c);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        llmh_sha256_update(&c, chunk, n);
        left -= n;
    }
    llmh_sha256_final(&c, d);
    llmh_sha256_hex(d, hex);
    CU_ASSERT_STRING_EQUAL(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every split point of every length up to 200 equals the one-shot digest
 * (block boundary and padding paths: 55, 56, 63, 64, 119, 120 bytes...). */
static void test_sha256_splits(void) {
    unsigned char msg[200];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 31 + 1);
    int bad = 0;
    for (size_t len = 0; len <= sizeof msg; len++) {
        char one[65];
        llmh_sha256(msg, len, one);
        for (size_t cut = 0; cut <= len; cut += (len > 70 ? 7 : 1)) {
            llmh_sha256_ctx c;
            uint8_t d[32];
            char two[65];
            llmh_sha256_init(&c);
            llmh_sha256_update(&c, msg, cut);
            llmh_sha256_update(&c, msg + cut, len - cut);
            llmh_sha256_final(&c, d);
            llmh_sha256_hex(d, two);
            if (strcmp(one, two) != 0) bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    char path[300], hex[65];
    snprintf(path, sizeof path, "%s/blob.bin", g_root);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(g_blob, 1, BLOB_SIZE, f);
    fclose(f);
    CU_ASSERT_EQUAL(llmh_sha256_file(path, hex), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(hex, g_blob_sha);
    unlink(path);
}

/* ======================================================================== */
/* URLs and manifests                                                        */
/* ======================================================================== */
static void expect_url(const char *in, bool base, const char *want) {
    char *out = NULL;
    llmh_status st = llmh_fetch_expand_url(in, base, &out);
    if (want) {
        CU_ASSERT_EQUAL(st, LLMH_OK);
        if (out && strcmp(out, want)) fprintf(stderr, "\n  %s -> %s (want %s)\n", in, out, want);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_STRING_EQUAL(out, want);
    } else {
        CU_ASSERT_NOT_EQUAL(st, LLMH_OK);
        CU_ASSERT_PTR_NULL(out);
    }
    free(out);
}

static void test_urls(void) {
    unsetenv("HF_ENDPOINT");
    expect_url("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", false,
               "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf");
    expect_url("hf://o/r@v1.0/sub/f.gguf", false, "https://huggingface.co/o/r/resolve/v1.0/sub/f.gguf");
    expect_url("hf://o/r@abc123", true, "https://huggingface.co/o/r/resolve/abc123");
    expect_url("hf://o/r", false, NULL); /* a repository is not a file */
    expect_url("hf://o", true, NULL);
    expect_url("hf://o/r/../x", false, NULL);
    expect_url("https://example.com/m.gguf", false, "https://example.com/m.gguf");
    expect_url("http://127.0.0.1:8080/m.gguf", false, "http://127.0.0.1:8080/m.gguf");
    expect_url("http://localhost/m.gguf", false, "http://localhost/m.gguf");
    expect_url("http://[::1]:9/m", false, "http://[::1]:9/m");
    expect_url("http://example.com/m.gguf", false, NULL); /* plain http only on loopback */
    expect_url("http://127.0.0.1.evil.com/m", false, NULL);
    expect_url("ftp://example.com/m.gguf", false, NULL);
    expect_url("https://example.com/a b", false, NULL);
    setenv("HF_ENDPOINT", "http://127.0.0.1:1/", 1);
    expect_url("hf://o/r/f", false, "http://127.0.0.1:1/o/r/resolve/main/f");
    unsetenv("HF_ENDPOINT");

    /* cache locations */
    setenv("LLMH_CACHE", "/x/cache/", 1);
    char dir[256];
    CU_ASSERT_EQUAL(llmh_cache_dir(dir, sizeof dir), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(dir, "/x/cache");
    unsetenv("LLMH_CACHE");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    CU_ASSERT_EQUAL(llmh_cache_dir(dir, sizeof dir), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(dir, "/xdg/llmhost");
    unsetenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (home && *home) {
        char want[300];
        snprintf(want, sizeof want, "%s/.cache/llmhost", home);
        CU_ASSERT_EQUAL(llmh_cache_dir(dir, sizeof dir), LLMH_OK);
        CU_ASSERT_STRING_EQUAL(dir, want);
    }
    setenv("LLMH_CACHE", "/c", 1);
    char *p = NULL;
    CU_ASSERT_EQUAL(llmh_fetch_cache_path("https://h/a/b/M.gguf?download=1", g_small_sha, NULL, &p), LLMH_OK);
    char want[300];
    snprintf(want, sizeof want, "/c/sha256/%s/M.gguf", g_small_sha);
    CU_ASSERT_STRING_EQUAL(p, want);
    free(p);
}

static void expect_manifest_error(const char *text, const char *where, const char *what) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_parse(text, strlen(text), "bad.toml", "/", &m);
    CU_ASSERT_EQUAL(st, LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    char loc[64];
    snprintf(loc, sizeof loc, "bad.toml:%s: ", where);
    const char *e = llmh_last_error();
    if (!strstr(e, loc) || !strstr(e, what)) fprintf(stderr, "\n  got '%s'\n  want '%s' and '%s'\n", e, loc, what);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, loc));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, what));
    llmh_manifest_free(m);
}

static void test_manifest(void) {
    setenv("LLMH_CACHE", "/c", 1);
    unsetenv("HF_ENDPOINT");
    expect_manifest_error("[model]\nurl = \"ftp://x/m.gguf\"\n", "2:7", "model.url: URL 'ftp://x/m.gguf'");
    expect_manifest_error("[model]\nurl = \"http://example.com/m.gguf\"\n", "2:7", "only accepted for loopback");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\n", "2:7", "names a repository, not a file");
    expect_manifest_error("[model]\ncontext = 8\n", "1:1", "missing required key 'path'");
    expect_manifest_error("[model]\npath = \"d\"\nfiles = [{ name = \"a\" }]\n", "3:1", "model.files needs model.url");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = [{ sha256 = \"00\" }]\n", "3:21", "sha256 must be 64");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = [{ size = 3 }]\n", "3:10", "missing required key 'name'");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = [{ name = \"../x\" }]\n", "3:19", "plain file name");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = [{ name = \"a\" }, { name = \"a\" }]\n", "3:35", "listed twice");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = [{ name = \"a\", sha = \"x\" }]\n", "3:24",
                          "unknown key 'sha' in model.files");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = []\n", "3:9", "at least one file");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nfiles = \"x\"\n", "3:9", "model.files must be an array of tables");
    expect_manifest_error("[model]\nurl = \"hf://o/r\"\nsha256 = \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"\nfiles = [{ name = \"a\" }]\n",
                          "3:1", "model.sha256 does not go with model.files");

    /* a url model's path is its cache location; hf:// is expanded */
    llmh_manifest *m = manifest_for("hf://Qwen/Q-GGUF/q.gguf", "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 42);
    const llmh_config *c = llmh_manifest_config(m);
    CU_ASSERT_STRING_EQUAL(c->model.url, "https://huggingface.co/Qwen/Q-GGUF/resolve/main/q.gguf");
    CU_ASSERT_STRING_EQUAL(c->model.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    CU_ASSERT_EQUAL(c->model.size, 42);
    CU_ASSERT_STRING_EQUAL(c->model.path, "/c/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/q.gguf");
    /* the dump reads back to the same config */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    llmh_manifest_dump(m, f);
    fclose(f);
    llmh_manifest *r = NULL;
    CU_ASSERT_EQUAL(llmh_manifest_parse(buf, len, "dump", "/", &r), LLMH_OK);
    if (r) {
        CU_ASSERT_STRING_EQUAL(llmh_manifest_config(r)->model.path, c->model.path);
        CU_ASSERT_STRING_EQUAL(llmh_manifest_config(r)->model.url, c->model.url);
    }
    llmh_manifest_free(r);
    free(buf);
    llmh_manifest_free(m);

    /* an explicit path wins: the file is fetched there */
    m = parse("[model]\npath = \"here/m.gguf\"\nurl = \"https://e.com/m.gguf\"\n");
    c = llmh_manifest_config(m);
    char want[512];
    snprintf(want, sizeof want, "%s/here/m.gguf", g_root);
    CU_ASSERT_STRING_EQUAL(c->model.path, want);
    llmh_manifest_free(m);

    /* a files list: per-file URLs under the base; the directory in the cache */
    m = parse("[model]\nurl = \"hf://org/Repo-1B@rev9\"\nfiles = [\n { name = \"config.json\", size = 10 },\n"
              " { name = \"model.safetensors\", sha256 = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" },\n"
              " { name = \"x.bin\", url = \"https://cdn.example.com/x.bin\" },\n]\n");
    c = llmh_manifest_config(m);
    CU_ASSERT_EQUAL_FATAL(c->model.n_files, 3);
    CU_ASSERT_STRING_EQUAL(c->model.files[0].url, "https://huggingface.co/org/Repo-1B/resolve/rev9/config.json");
    CU_ASSERT_EQUAL(c->model.files[0].size, 10);
    CU_ASSERT_PTR_NULL(c->model.files[0].sha256);
    CU_ASSERT_STRING_EQUAL(c->model.files[2].url, "https://cdn.example.com/x.bin");
    CU_ASSERT_EQUAL(strncmp(c->model.path, "/c/dirs/", 8), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(c->model.path, "/Repo-1B"));
    llmh_manifest_free(m);
}

/* ======================================================================== */
/* Downloads                                                                 */
/* ======================================================================== */
static void test_fresh_then_cache_hit(void) {
    fresh_cache("fresh");
    srv_reset_counters();
    char *url = url_of("/m/model.gguf");
    llmh_manifest *m = manifest_for(url, g_blob_sha, BLOB_SIZE);
    const llmh_config *c = llmh_manifest_config(m);
    CU_ASSERT_EQUAL(access(c->model.path, F_OK), -1);
    llmh_status st = llmh_fetch_model(c);
    if (st) fprintf(stderr, "\n  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT(file_equals(c->model.path, g_blob, BLOB_SIZE));
    CU_ASSERT_EQUAL(S.requests, 1);
    CU_ASSERT_STRING_EQUAL(S.last_range, "");
    char part[1024];
    snprintf(part, sizeof part, "%s.part", c->model.path);
    CU_ASSERT_EQUAL(access(part, F_OK), -1);
    /* listed with its size and checksum */
    llmh_cache_entry *v = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(llmh_cache_list(&v, &n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(v[0].kind, LLMH_CACHE_FILE);
    CU_ASSERT_STRING_EQUAL(v[0].name, "model.gguf");
    CU_ASSERT_STRING_EQUAL(v[0].key, g_blob_sha);
    CU_ASSERT_STRING_EQUAL(v[0].source, url);
    CU_ASSERT_EQUAL(v[0].bytes, BLOB_SIZE);
    CU_ASSERT(v[0].complete);
    free(v);
    llmh_manifest_free(m);

    /* server stopped: the cache answers, even for another URL of the same checksum */
    srv_stop();
    m = manifest_for("https://unreachable.invalid/elsewhere/model.gguf", g_blob_sha, -1);
    c = llmh_manifest_config(m);
    CU_ASSERT_EQUAL(llmh_fetch_model(c), LLMH_OK);
    llmh_manifest_free(m);
    m = manifest_for(url, g_blob_sha, BLOB_SIZE);
    CU_ASSERT_EQUAL(llmh_fetch_model(llmh_manifest_config(m)), LLMH_OK);
    llmh_manifest_free(m);

    /* and no server is a clear error for what is not cached */
    m = manifest_for(url, g_small_sha, -1);
    st = llmh_fetch_model(llmh_manifest_config(m));
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "cannot connect"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), url));
    llmh_manifest_free(m);
    CU_ASSERT_EQUAL(cache_entries(), 1);
    CU_ASSERT_EQUAL_FATAL(srv_start(), 0);
    free(url);
}

static void test_resume_after_cut(void) {
    fresh_cache("resume");
    srv_reset_counters();
    S.cut_remaining = 2;
    S.cut_after = 300000;
    char *url = url_of("/m/model.gguf");
    char *path = NULL;
    CU_ASSERT_EQUAL(llmh_fetch_cache_path(url, g_blob_sha, NULL, &path), LLMH_OK);
    llmh_status st = llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path);
    if (st) fprintf(stderr, "\n  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_OK);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    /* two cut-off responses, then the rest: each retry asked for the bytes it lacked */
    CU_ASSERT_EQUAL(S.requests, 3);
    CU_ASSERT_EQUAL(S.range_requests, 2);
    long long r1 = range_start(S.first_range), r2 = range_start(S.last_range);
    CU_ASSERT(r1 > 0 && r1 <= 300000); /* what arrived before the cut */
    CU_ASSERT(r2 > r1 && r2 <= 600000);

    /* a partial file left by an earlier process resumes with one Range request */
    CU_ASSERT_EQUAL(llmh_cache_remove(NULL, NULL, NULL), LLMH_OK);
    CU_ASSERT_EQUAL(cache_entries(), 0);
    char part[1024];
    snprintf(part, sizeof part, "%s.part", path);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    CU_ASSERT_EQUAL(mkdirs(dir), 0);
    FILE *f = fopen(part, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(g_blob, 1, 777777, f);
    fclose(f);
    llmh_cache_entry *v = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(llmh_cache_list(&v, &n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1); /* listed as an unfinished download */
    CU_ASSERT_FALSE(v[0].complete);
    CU_ASSERT_EQUAL(v[0].partial_bytes, 777777);
    free(v);
    srv_reset_counters();
    CU_ASSERT_EQUAL(llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path), LLMH_OK);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    CU_ASSERT_EQUAL(S.requests, 1);
    CU_ASSERT_STRING_EQUAL(S.last_range, "bytes=777777-");

    /* a complete .part: the server answers 416 and the file is verified as is */
    CU_ASSERT_EQUAL(rename(path, part), 0);
    srv_reset_counters();
    CU_ASSERT_EQUAL(llmh_fetch_file(url, g_blob_sha, -1, path), LLMH_OK);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    CU_ASSERT_STRING_EQUAL(S.last_range, "bytes=1572941-");

    /* a server that ignores Range: the file starts over and is still right */
    CU_ASSERT_EQUAL(llmh_cache_remove(g_blob_sha, NULL, NULL), LLMH_OK);
    CU_ASSERT_EQUAL(mkdirs(dir), 0);
    f = fopen(part, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(g_small, 1, 1000, f); /* and what is there is not even the file's start */
    fclose(f);
    srv_reset_counters();
    S.ignore_range = 1;
    CU_ASSERT_EQUAL(llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path), LLMH_OK);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    CU_ASSERT_EQUAL(S.requests, 1);
    CU_ASSERT_STRING_EQUAL(S.last_range, "bytes=1000-");

    /* cut off with no progress: gives up, keeps nothing to resume */
    CU_ASSERT_EQUAL(llmh_cache_remove(NULL, NULL, NULL), LLMH_OK);
    srv_reset_counters();
    S.cut_remaining = 100;
    S.cut_after = 0;
    st = llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path);
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "cut off"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "gave up after 3 attempts"));
    CU_ASSERT_EQUAL(S.requests, 3);
    CU_ASSERT_EQUAL(cache_entries(), 0);
    /* cut off midway every time: the partial file is kept for the next run */
    srv_reset_counters();
    S.cut_remaining = 100;
    S.cut_after = 500000;
    st = llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path);
    CU_ASSERT_EQUAL(st, LLMH_OK); /* up to 500000 more bytes each time: it completes */
    CU_ASSERT(S.requests >= 4);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    free(path);
    free(url);
}

static void test_checksum_mismatch(void) {
    fresh_cache("mismatch");
    srv_reset_counters();
    char *url = url_of("/m/model.gguf");
    llmh_manifest *m = manifest_for(url, g_small_sha, -1); /* the wrong checksum */
    const llmh_config *c = llmh_manifest_config(m);
    llmh_status st = llmh_fetch_model(c);
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    const char *e = llmh_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "checksum mismatch"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, g_small_sha));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, g_blob_sha));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, url));
    /* nothing left: no file, no .part, no entry directory */
    CU_ASSERT_EQUAL(access(c->model.path, F_OK), -1);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", c->model.path);
    *strrchr(dir, '/') = 0;
    CU_ASSERT_EQUAL(access(dir, F_OK), -1);
    CU_ASSERT_EQUAL(cache_entries(), 0);
    llmh_manifest_free(m);

    /* a wrong size is refused before anything is written */
    m = manifest_for(url, g_blob_sha, BLOB_SIZE + 1);
    st = llmh_fetch_model(llmh_manifest_config(m));
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "the manifest's size says"));
    CU_ASSERT_EQUAL(cache_entries(), 0);
    llmh_manifest_free(m);
    free(url);
}

static void test_http_errors(void) {
    fresh_cache("errors");
    srv_reset_counters();
    char *url = url_of("/no/such/file.gguf");
    llmh_manifest *m = manifest_for(url, g_blob_sha, -1);
    llmh_status st = llmh_fetch_model(llmh_manifest_config(m));
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    const char *e = llmh_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(e, url));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "HTTP 404 (Not Found)"));
    CU_ASSERT_EQUAL(S.requests, 1); /* a 404 is not retried */
    CU_ASSERT_EQUAL(cache_entries(), 0);
    llmh_manifest_free(m);
    free(url);

    /* disk full: a 1 PiB file is refused from its Content-Length */
    url = url_of("/huge.bin");
    char *path = NULL;
    CU_ASSERT_EQUAL(llmh_fetch_cache_path(url, g_small_sha, NULL, &path), LLMH_OK);
    st = llmh_fetch_file(url, g_small_sha, -1, path);
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    e = llmh_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "disk full"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "free"));
    CU_ASSERT_EQUAL(cache_entries(), 0);
    free(path);
    free(url);

    /* HF_TOKEN goes to the Hugging Face endpoint only */
    setenv("HF_ENDPOINT", "http://127.0.0.1:1", 1); /* not this server */
    setenv("HF_TOKEN", "secret-token", 1);
    url = url_of("/small.bin");
    path = NULL;
    CU_ASSERT_EQUAL(llmh_fetch_cache_path(url, g_small_sha, NULL, &path), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_fetch_file(url, g_small_sha, sizeof g_small, path), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(S.last_auth, "");
    CU_ASSERT_EQUAL(llmh_cache_remove(NULL, NULL, NULL), LLMH_OK);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%u/", S.port); /* now it is the endpoint */
    setenv("HF_ENDPOINT", ep, 1);
    CU_ASSERT_EQUAL(llmh_fetch_file(url, g_small_sha, sizeof g_small, path), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(S.last_auth, "Bearer secret-token");
    free(path);
    free(url);
    unsetenv("HF_TOKEN");
    unsetenv("HF_ENDPOINT");
}

typedef struct fetch_job {
    const char *url, *path;
    llmh_status st;
} fetch_job;

static void *fetch_job_run(void *p) {
    fetch_job *j = p;
    j->st = llmh_fetch_file(j->url, g_blob_sha, BLOB_SIZE, j->path);
    return NULL;
}

/* No sha256 in the manifest, but the server publishes the file's SHA-256 as
 * X-Linked-Etag (Hugging Face does for LFS files): the download is held to it. */
static void test_linked_etag(void) {
    fresh_cache("etag");
    srv_reset_counters();
    char *url = url_of("/etag/good.bin");
    llmh_manifest *m = manifest_for(url, NULL, -1);
    llmh_status st = llmh_fetch_model(llmh_manifest_config(m));
    if (st) fprintf(stderr, "\n  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_OK);
    CU_ASSERT(file_equals(llmh_manifest_config(m)->model.path, g_small, sizeof g_small));
    llmh_manifest_free(m);
    free(url);
    url = url_of("/etag/bad.bin");
    m = manifest_for(url, NULL, -1);
    st = llmh_fetch_model(llmh_manifest_config(m));
    CU_ASSERT_EQUAL(st, LLMH_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "X-Linked-Etag"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "checksum mismatch"));
    CU_ASSERT_EQUAL(access(llmh_manifest_config(m)->model.path, F_OK), -1);
    CU_ASSERT_EQUAL(cache_entries(), 1); /* only the good one */
    llmh_manifest_free(m);
    free(url);
}

/* Two processes pull the same file at once: one downloads, the other waits
 * for the lock and uses the result. */
static void test_concurrent_pulls(void) {
    fresh_cache("concurrent");
    srv_reset_counters();
    S.delay_us = 3000; /* ~100 chunks: about 0.3 s, long enough to overlap */
    char *url = url_of("/m/model.gguf");
    char *path = NULL;
    CU_ASSERT_EQUAL(llmh_fetch_cache_path(url, g_blob_sha, NULL, &path), LLMH_OK);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        CU_ASSERT_FATAL(kids[i] >= 0);
        if (kids[i] == 0) {
            llmh_status st = llmh_fetch_file(url, g_blob_sha, BLOB_SIZE, path);
            if (st) fprintf(stderr, "\n  child: %s\n", llmh_last_error());
            _exit(st == LLMH_OK && file_equals(path, g_blob, BLOB_SIZE) ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        CU_ASSERT_EQUAL(waitpid(kids[i], &status, 0), kids[i]);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CU_ASSERT_EQUAL(S.requests, 1);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    CU_ASSERT_EQUAL(cache_entries(), 1);

    /* and two threads of one process */
    CU_ASSERT_EQUAL(llmh_cache_remove(NULL, NULL, NULL), LLMH_OK);
    srv_reset_counters();
    S.delay_us = 3000;
    pthread_t t[2];
    fetch_job jobs[2] = {{url, path, LLMH_ERR_IO}, {url, path, LLMH_ERR_IO}};
    for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, fetch_job_run, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(jobs[0].st, LLMH_OK);
    CU_ASSERT_EQUAL(jobs[1].st, LLMH_OK);
    CU_ASSERT_EQUAL(S.requests, 1);
    CU_ASSERT(file_equals(path, g_blob, BLOB_SIZE));
    free(path);
    free(url);
}

/* hf:// with a files list: a safetensors directory fetched file by file. */
static void test_files_list(void) {
    fresh_cache("files");
    srv_reset_counters();
    static const char config[] = "{\"architectures\": [\"LlamaForCausalLM\"]}\n";
    srv_add("/org/Tiny-HF/resolve/r1/config.json", (const unsigned char *)config, sizeof config - 1);
    srv_add("/org/Tiny-HF/resolve/r1/model.safetensors", g_blob, BLOB_SIZE);
    srv_add("/org/Tiny-HF/resolve/r1/tokenizer.json", g_small, sizeof g_small);
    char ep[64], cfg_sha[65], text[2048];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%u", S.port);
    setenv("HF_ENDPOINT", ep, 1);
    llmh_sha256(config, sizeof config - 1, cfg_sha);
    snprintf(text, sizeof text,
             "[model]\nurl = \"hf://org/Tiny-HF@r1\"\nfiles = [\n"
             "  { name = \"config.json\", sha256 = \"%s\" },\n"
             "  { name = \"model.safetensors\", sha256 = \"%s\", size = %u },\n"
             "  { name = \"tokenizer.json\" },\n]\n",
             cfg_sha, g_blob_sha, BLOB_SIZE);
    llmh_manifest *m = parse(text);
    const llmh_config *c = llmh_manifest_config(m);
    llmh_status st = llmh_fetch_model(c);
    if (st) fprintf(stderr, "\n  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_EQUAL(S.requests, 3);
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", c->model.path);
    CU_ASSERT(file_equals(p, g_blob, BLOB_SIZE));
    snprintf(p, sizeof p, "%s/tokenizer.json", c->model.path);
    CU_ASSERT(file_equals(p, g_small, sizeof g_small));
    snprintf(p, sizeof p, "%s/config.json", c->model.path);
    CU_ASSERT(file_equals(p, (const unsigned char *)config, sizeof config - 1));
    llmh_cache_entry *v = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(llmh_cache_list(&v, &n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_EQUAL(v[0].kind, LLMH_CACHE_DIR);
    CU_ASSERT_STRING_EQUAL(v[0].name, "Tiny-HF");
    CU_ASSERT(v[0].complete);
    CU_ASSERT_EQUAL(v[0].bytes, BLOB_SIZE + sizeof g_small + sizeof config - 1);
    free(v);
    /* again: nothing downloaded */
    srv_reset_counters();
    CU_ASSERT_EQUAL(llmh_fetch_model(c), LLMH_OK);
    CU_ASSERT_EQUAL(S.requests, 0);
    /* rm by name frees it */
    size_t removed = 0;
    uint64_t freed = 0;
    CU_ASSERT_EQUAL(llmh_cache_remove("Tiny-HF", &removed, &freed), LLMH_OK);
    CU_ASSERT_EQUAL(removed, 1);
    if (freed != BLOB_SIZE + sizeof g_small + sizeof config - 1) fprintf(stderr, "\n  freed %llu\n", (unsigned long long)freed);
    CU_ASSERT_EQUAL(freed, BLOB_SIZE + sizeof g_small + sizeof config - 1);
    CU_ASSERT_EQUAL(cache_entries(), 0);
    CU_ASSERT_EQUAL(llmh_cache_remove("Tiny-HF", NULL, NULL), LLMH_ERR_NOT_FOUND);
    llmh_manifest_free(m);
    unsetenv("HF_ENDPOINT");
}

/* llmh_model_load of a url manifest: downloads a real model, then loads it
 * from the cache. Needs ../shared (skipped without it). */
static void test_model_load(void) {
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s/models/stories260K.gguf", LLMH_SHARED_DIR);
    size_t len = 0;
    unsigned char *data = (unsigned char *)llmh_test_read_file(gguf, &len);
    if (!data) {
        fprintf(stderr, "\n  (skipped: %s not found)\n", gguf);
        return;
    }
    fresh_cache("load");
    srv_reset_counters();
    srv_add("/models/stories260K.gguf", data, len);
    char sha[65], *url = url_of("/models/stories260K.gguf");
    llmh_sha256(data, len, sha);
    llmh_manifest *m = manifest_for(url, sha, (long long)len);
    llmh_model_params mp = {NULL, m};
    llmh_model *model = NULL;
    llmh_status st = llmh_model_load(&mp, &model);
    if (st) fprintf(stderr, "\n  %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_OK);
    CU_ASSERT_EQUAL(S.requests, 1);
    if (model) CU_ASSERT_STRING_EQUAL(llmh_model_describe(model)->arch, "llama");
    llmh_model_free(model);
    model = NULL;
    CU_ASSERT_EQUAL(llmh_model_load(&mp, &model), LLMH_OK); /* from the cache */
    CU_ASSERT_EQUAL(S.requests, 1);
    llmh_model_free(model);
    llmh_manifest_free(m);
    S.n_files--;
    free(url);
    free(data);
}

/* The shipped url manifests: each parses, resolves into the cache, and says
 * where its checksum comes from or that it is not confirmed. */
static void check_catalog_file(const char *path, int *n) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_load(path, &m);
    if (st) fprintf(stderr, "\n  %s: %s\n", path, llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    const llmh_config *c = llmh_manifest_config(m);
    CU_ASSERT_PTR_NOT_NULL(c->model.url);
    CU_ASSERT_EQUAL(strncmp(c->model.path, "/catalog-cache/", 15), 0);
    if (c->model.url) CU_ASSERT_EQUAL(strncmp(c->model.url, "https://huggingface.co/", 23), 0);
    char *text = llmh_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    bool unverified = !c->model.sha256 && !c->model.n_files;
    for (size_t i = 0; i < c->model.n_files; i++)
        if (!c->model.files[i].sha256) unverified = true;
    if (unverified && !strstr(text, "NOT CONFIRMED")) {
        fprintf(stderr, "\n  %s: a checksum is missing and not marked NOT CONFIRMED\n", path);
        CU_FAIL("unmarked missing checksum");
    }
    if (!unverified) CU_ASSERT_PTR_NOT_NULL(strstr(text, "sha256"));
    free(text);
    llmh_manifest_free(m);
    (*n)++;
}

static void test_catalog(void) {
    setenv("LLMH_CACHE", "/catalog-cache", 1);
    unsetenv("HF_ENDPOINT");
    int n = 0;
    char path[2048];
    snprintf(path, sizeof path, "%s/configs/qwen2.5-0.5b-instruct.toml", LLMH_SOURCE_DIR);
    check_catalog_file(path, &n);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/configs/models", LLMH_SOURCE_DIR);
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".toml")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_catalog_file(path, &n);
    }
    closedir(d);
    CU_ASSERT(n >= 12);
}

/* ======================================================================== */
/* llmhost pull / models / rm                                                */
/* ======================================================================== */
static int run(const char *cmd, char **out) {
    char full[4096], outp[512];
    snprintf(outp, sizeof outp, "%s/cmd.out", g_root);
    snprintf(full, sizeof full, "LLMH_CACHE='%s' %s > '%s' 2>&1", g_cache, cmd, outp);
    int rc = system(full);
    size_t len = 0;
    *out = llmh_test_read_file(outp, &len);
    if (!*out) *out = strdup("");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void) {
    fresh_cache("cli");
    srv_reset_counters();
    char *url = url_of("/m/model.gguf"), cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s pull %s --sha256 %s", LLMH_TEST_LLMHOST, url, g_blob_sha);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "downloading model.gguf"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "checksum verified"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, g_blob_sha)); /* the printed path */
    free(out);
    /* a manifest: cached already, no request */
    char toml[512];
    snprintf(toml, sizeof toml, "%s/pull.toml", g_root);
    FILE *f = fopen(toml, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "[model]\nurl = \"%s\"\nsha256 = \"%s\"\n", url, g_blob_sha);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s pull %s", LLMH_TEST_LLMHOST, toml);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_EQUAL(S.requests, 1);
    free(out);
    /* a URL without a checksum: kept under its URL, marked unverified, digest printed */
    snprintf(cmd, sizeof cmd, "%s pull %s", LLMH_TEST_LLMHOST, url);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot be verified"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, g_blob_sha));
    free(out);
    snprintf(cmd, sizeof cmd, "%s models", LLMH_TEST_LLMHOST);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "model.gguf"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "1.5 MiB"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "verified"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "unverified"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 entries"));
    free(out);
    /* 404 through the CLI: the URL and the status, exit 1 */
    snprintf(cmd, sizeof cmd, "%s pull %s/missing.gguf --sha256 %s", LLMH_TEST_LLMHOST, url, g_blob_sha);
    CU_ASSERT_EQUAL(run(cmd, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP 404"));
    free(out);
    char prefix[13];
    snprintf(prefix, sizeof prefix, "%.12s", g_blob_sha);
    snprintf(cmd, sizeof cmd, "%s rm %s", LLMH_TEST_LLMHOST, prefix);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "removed 1 entry"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s rm %s", LLMH_TEST_LLMHOST, prefix);
    CU_ASSERT_EQUAL(run(cmd, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no cached model"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s rm --all", LLMH_TEST_LLMHOST);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "removed 1 entry"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s models", LLMH_TEST_LLMHOST);
    CU_ASSERT_EQUAL(run(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "(empty)"));
    free(out);
    free(url);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"SHA-256: NIST vectors", test_sha256_vectors},
        {"SHA-256: split updates and files", test_sha256_splits},
        {"URLs and cache paths", test_urls},
        {"manifest url/sha256/files", test_manifest},
        {"fresh download, then cache hit with the server stopped", test_fresh_then_cache_hit},
        {"resume after cut-off transfers (Range)", test_resume_after_cut},
        {"checksum mismatch leaves nothing", test_checksum_mismatch},
        {"404, disk full, token scope", test_http_errors},
        {"two concurrent pulls of one file", test_concurrent_pulls},
        {"no sha256: held to the server's X-Linked-Etag", test_linked_etag},
        {"hf:// files list (HF directory)", test_files_list},
        {"llmh_model_load of a url model", test_model_load},
        {"llmhost pull, models, rm", test_cli},
        {"configs/ url manifests", test_catalog},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {
        {"download", cases, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, 1);
}

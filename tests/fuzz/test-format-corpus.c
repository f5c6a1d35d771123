/* test-format-corpus.c — a deterministic corruption corpus from the real
 * fixtures, run through the gguf and safetensors plugins: truncations at
 * many offsets (inside the header, the key/values, the tensor infos, the
 * data) and random bit flips / byte and integer overwrites of the header
 * region. Every open must either succeed (and then every metadata value
 * and tensor byte is readable) or fail with a non-empty message: never
 * crash, hang or leak (run it in the sanitizer build). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format-test-util.h"
#include "testutil.h"

static fmt_plugin gguf, st;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

typedef struct tally {
    unsigned ok, failed;
} tally;

/* Open `path` (file or dir) and check the outcome. */
static void try_open(const fmt_plugin *p, const char *path, tally *t, const char *what) {
    fmt_file f;
    llmh_status s = fmt_open(p, path, NULL, &f);
    if (s == LLMH_OK) {
        volatile uint64_t h = fmt_walk(&f);
        (void)h;
        fmt_close(&f);
        t->ok++;
        return;
    }
    const char *msg = llmh_last_error();
    int good = s < 0 && msg && *msg && f.f == NULL;
    if (!good) fprintf(stderr, "\n%s (%s): status %d with message '%s'\n", what, path, s, msg ? msg : "(null)");
    CU_ASSERT(good);
    t->failed++;
}

static void pwrite_all(int fd, const void *p, size_t n, off_t off) {
    if (pwrite(fd, p, n, off) != (ssize_t)n) abort();
}

/* Truncations: every offset in the first 64 bytes, then `step` apart up to
 * header_end + 64, then a few inside the data. */
static void truncations(const fmt_plugin *p, const char *suffix, const uint8_t *bytes, size_t len,
                        size_t header_end, size_t step, tally *t) {
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/llmh-corpus-XXXXXX%s", dir ? dir : "/tmp", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    CU_ASSERT_FATAL(fd >= 0);
    size_t lim = header_end + 64 < len ? header_end + 64 : len;
    size_t written = 0;
    for (size_t n = 0; n < lim; n += (n < 64 ? 1 : step)) {
        if (ftruncate(fd, (off_t)n) != 0) abort();
        if (n > written) pwrite_all(fd, bytes + written, n - written, (off_t)written);
        written = n;
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", n);
        try_open(p, path, t, what);
    }
    /* inside the data: the last tensor loses its tail */
    pwrite_all(fd, bytes + written, len - written, (off_t)written);
    const size_t cuts[] = {len - 1, len - 32, header_end + (len - header_end) / 2};
    for (size_t i = 0; i < 3; i++) {
        if (cuts[i] >= len || cuts[i] < header_end) continue;
        if (ftruncate(fd, (off_t)cuts[i]) != 0) abort();
        try_open(p, path, t, "truncated in the data");
        pwrite_all(fd, bytes + cuts[i], len - cuts[i], (off_t)cuts[i]);
    }
    close(fd);
    unlink(path);
}

/* Mutations of [0, region) written in place into a full copy and undone. */
static void mutations(const fmt_plugin *p, const char *dir_or_null, const char *file_name, const char *suffix,
                      const uint8_t *bytes, size_t len, size_t region, int count, int json, tally *t) {
    char path[4096];
    int fd;
    if (dir_or_null) {
        snprintf(path, sizeof path, "%s/%s", dir_or_null, file_name);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    } else {
        const char *tmp = getenv("TMPDIR"), *sfx = suffix ? suffix : "";
        snprintf(path, sizeof path, "%s/llmh-corpus-XXXXXX%s", tmp ? tmp : "/tmp", sfx);
        fd = mkstemps(path, (int)strlen(sfx));
    }
    CU_ASSERT_FATAL(fd >= 0);
    pwrite_all(fd, bytes, len, 0);
    if (region > len) region = len;
    static const uint64_t interesting[] = {0, 1, 2, 7, 31, 32, 33, 0x7f, 0xff, 0xffff, 0xffffffffu,
                                           0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                           0xffffffffffffffffull, 64, 4096, 1000000};
    const char *open_path = dir_or_null ? dir_or_null : path;
    for (int i = 0; i < count; i++) {
        size_t at = (size_t)(rnd() % region);
        uint8_t buf[8];
        size_t n = 1;
        int kind = (int)(rnd() % 4);
        if (json && kind == 3) {
            /* JSON: replace a digit by another, or a structural byte by another */
            static const char repl[] = "0123456789{}[],:\"-e.";
            buf[0] = (uint8_t)repl[rnd() % (sizeof repl - 1)];
        } else if (kind == 0) {
            buf[0] = bytes[at] ^ (uint8_t)(1u << (rnd() % 8)); /* bit flip */
        } else if (kind == 1) {
            buf[0] = (uint8_t)rnd();                            /* byte overwrite */
        } else {
            uint64_t v = interesting[rnd() % (sizeof interesting / sizeof interesting[0])];
            n = at + 8 <= region ? 8 : 1;
            for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)(v >> (8 * k)); /* LE integer */
        }
        pwrite_all(fd, buf, n, (off_t)at);
        char what[96];
        snprintf(what, sizeof what, "mutation %d: %zu byte(s) at offset %zu", i, n, at);
        try_open(p, open_path, t, what);
        pwrite_all(fd, bytes + at, n, (off_t)at);
    }
    close(fd);
    if (!dir_or_null) unlink(path);
}

static uint8_t *read_fixture(const char *rel, size_t *len) {
    char *p = llmh_test_shared(rel);
    uint8_t *b = (uint8_t *)llmh_test_read_file(p, len);
    free(p);
    if (!b) abort();
    return b;
}

/* The GGUF header end (data section start) of an opened file. */
static size_t gguf_header_end(const char *rel) {
    char *p = llmh_test_shared(rel);
    fmt_file f;
    CU_ASSERT_FATAL(fmt_open(&gguf, p, NULL, &f) == LLMH_OK);
    size_t end = (size_t)-1;
    for (size_t i = 0; i < f.n_t; i++)
        if (f.t[i].file_offset < end) end = (size_t)f.t[i].file_offset;
    fmt_close(&f);
    free(p);
    return end;
}

static void report(const char *name, const tally *t, clock_t t0) {
    fprintf(stderr, "\n  %s: %u opened, %u refused with a message (%.1f s) ", name, t->ok, t->failed,
            (double)(clock() - t0) / CLOCKS_PER_SEC);
}

static void test_gguf_corpus(void) {
    clock_t t0 = clock();
    tally t = {0, 0};
    size_t len;
    uint8_t *b = read_fixture("models/stories260K.gguf", &len);
    size_t hend = gguf_header_end("models/stories260K.gguf");
    CU_ASSERT_FATAL(hend > 1000 && hend < len);
    truncations(&gguf, ".gguf", b, len, hend, 7, &t);
    mutations(&gguf, NULL, NULL, ".gguf", b, len, hend, 2000, 0, &t);
    free(b);

    b = read_fixture("models/adapters/stories260K-lora-big.gguf", &len);
    hend = gguf_header_end("models/adapters/stories260K-lora-big.gguf");
    truncations(&gguf, ".gguf", b, len, hend, 5, &t);
    mutations(&gguf, NULL, NULL, ".gguf", b, len, hend, 500, 0, &t);
    free(b);

    fmt_buf all = {0};
    gguf_build_all_types(&all, 3);
    truncations(&gguf, ".gguf", all.p, all.n, all.n - 1, 1, &t);
    mutations(&gguf, NULL, NULL, ".gguf", all.p, all.n, all.n, 1500, 0, &t);
    fb_free(&all);
    report("gguf", &t, t0);
    CU_ASSERT(t.ok > 0 && t.failed > 0);
}

static void test_safetensors_corpus(void) {
    clock_t t0 = clock();
    tally t = {0, 0};
    size_t len;
    uint8_t *b = read_fixture("models/qwen2-tiny-hf/model.safetensors", &len);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    CU_ASSERT_FATAL(hl < len);
    size_t hend = (size_t)(8 + hl);
    truncations(&st, ".safetensors", b, len, hend, 3, &t);
    mutations(&st, NULL, NULL, ".safetensors", b, len, hend, 2000, 1, &t);

    /* a model directory: config.json, tokenizer_config.json and a sharded
     * index mutated next to valid weights */
    char *dir = fmt_mkdtemp();
    fmt_write_in(dir, "model.safetensors", b, len);
    size_t clen, tlen;
    uint8_t *cfg = read_fixture("models/qwen2-tiny-hf/config.json", &clen);
    uint8_t *tcfg = read_fixture("models/qwen2-tiny-hf/tokenizer_config.json", &tlen);
    fmt_write_in(dir, "tokenizer_config.json", tcfg, tlen);
    mutations(&st, dir, "config.json", NULL, cfg, clen, clen, 800, 1, &t);
    truncations(&st, ".json", cfg, clen, clen, 1, &t); /* a lone config.json: not a model */
    mutations(&st, dir, "tokenizer_config.json", NULL, tcfg, tlen, tlen, 300, 1, &t);
    fmt_write_in(dir, "tokenizer_config.json", tcfg, tlen);
    static const char index[] =
        "{\"metadata\":{\"total_size\":39291136},\"weight_map\":{\"model.norm.weight\":\"model.safetensors\","
        "\"model.embed_tokens.weight\":\"model.safetensors\"}}";
    mutations(&st, dir, "model.safetensors.index.json", NULL, (const uint8_t *)index, sizeof index - 1,
              sizeof index - 1, 400, 1, &t);
    fmt_rmdir(dir);
    free(cfg);
    free(tcfg);
    free(b);
    report("safetensors", &t, t0);
    CU_ASSERT(t.ok > 0 && t.failed > 0);
}

static int init(void) {
    if (fmt_plugin_load(&gguf, LLMH_TEST_GGUF_SO) != 0) return 1;
    if (fmt_plugin_load(&st, LLMH_TEST_ST_SO) != 0) return 1;
    return 0;
}

static int cleanup(void) {
    fmt_plugin_unload(&gguf);
    fmt_plugin_unload(&st);
    return 0;
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"gguf: truncations and header mutations never crash", test_gguf_corpus},
        {"safetensors: truncations, header/config/index mutations never crash", test_safetensors_corpus},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {{"format corruption corpus", cases, init, cleanup}};
    return llmh_test_main(suites, 1);
}

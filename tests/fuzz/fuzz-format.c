/* fuzz-format.c — libFuzzer target for a format plugin. The input is written
 * to a temp file (FUZZ_MODE 0: a .gguf, 1: a .safetensors) or used as the
 * config.json of a model directory holding a small valid model.safetensors
 * (FUZZ_MODE 2), then opened through the plugin at FUZZ_PLUGIN_SO. Opening
 * must succeed (and every value/tensor be readable) or fail with a message. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format-test-util.h"

static fmt_plugin plugin;
static char target[4096]; /* the file the input is written to */
static char open_path[4096];
static char dir_path[4096];   /* FUZZ_MODE 2: the model directory */

static void cleanup(void) {
    unlink(target);
    if (dir_path[0]) {
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", dir_path);
        unlink(p);
        rmdir(dir_path);
    }
}

static void setup(void) {
    if (fmt_plugin_load(&plugin, FUZZ_PLUGIN_SO) != 0) abort();
    const char *tmp = getenv("TMPDIR");
    if (!tmp) tmp = "/tmp";
    if (FUZZ_MODE == 2) {
        char *dir = fmt_mkdtemp();
        /* model.safetensors: one F32 tensor model.norm.weight [4] */
        static const char hdr[] =
            "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}   ";
        fmt_buf b = {0};
        fb_u64(&b, sizeof hdr - 1);
        fb_bytes(&b, hdr, sizeof hdr - 1);
        for (int i = 0; i < 4; i++) fb_f32(&b, (float)i);
        fmt_write_in(dir, "model.safetensors", b.p, b.n);
        fb_free(&b);
        snprintf(target, sizeof target, "%s/config.json", dir);
        snprintf(open_path, sizeof open_path, "%s", dir);
        snprintf(dir_path, sizeof dir_path, "%s", dir);
        free(dir);
    } else {
        const char *suffix = FUZZ_MODE == 0 ? ".gguf" : ".safetensors";
        snprintf(target, sizeof target, "%s/llmh-fuzz-XXXXXX%s", tmp, suffix);
        int fd = mkstemps(target, (int)strlen(suffix));
        if (fd < 0) abort();
        close(fd);
        snprintf(open_path, sizeof open_path, "%s", target);
    }
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    close(fd);
    fmt_file f;
    llmh_status s = fmt_open(&plugin, open_path, NULL, &f);
    if (s == LLMH_OK) {
        volatile uint64_t h = fmt_walk(&f);
        (void)h;
        fmt_close(&f);
    } else {
        const char *msg = llmh_last_error();
        if (s > 0 || !msg || !*msg || f.f) abort(); /* a failure must say why */
    }
    return 0;
}

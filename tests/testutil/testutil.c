#define _GNU_SOURCE
#include "testutil.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *llmh_test_shared(const char *rel) {
    size_t n = strlen(LLMH_SHARED_DIR) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", LLMH_SHARED_DIR, rel);
    if (access(p, R_OK) != 0) {
        fprintf(stderr,
                "FIXTURE MISSING: %s\n"
                "The tests read fixtures from ../shared next to the project root "
                "(expected at %s). Check out the shared fixtures there.\n",
                p, LLMH_SHARED_DIR);
        exit(2);
    }
    return p;
}

char *llmh_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long sz = ftell(f);
    if (sz < 0) { fclose(f); return NULL; }
    rewind(f);
    char *buf = malloc((size_t)sz + 1);
    if (!buf) { fclose(f); return NULL; }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    buf[got] = 0;
    if (len) *len = got;
    return buf;
}

char *llmh_test_write_temp(const void *data, size_t len, const char *suffix) {
    const char *dir = getenv("TMPDIR");
    if (!dir) dir = "/tmp";
    size_t n = strlen(dir) + strlen(suffix) + 32;
    char *path = malloc(n);
    if (!path) abort();
    snprintf(path, n, "%s/llmh-test-XXXXXX%s", dir, suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) { free(path); return NULL; }
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w <= 0) { close(fd); unlink(path); free(path); return NULL; }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return path;
}

int llmh_test_main(const llmh_test_suite *suites, size_t n) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    for (size_t i = 0; i < n; i++) {
        CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init, suites[i].cleanup);
        if (!s) { CU_cleanup_registry(); return 2; }
        for (const llmh_test_case *c = suites[i].cases; c->name; c++)
            if (!CU_add_test(s, c->name, c->fn)) { CU_cleanup_registry(); return 2; }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned failed_suites = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (failed || failed_suites) ? 1 : 0;
}

int llmh_test_plugin_open(const char *file_name, const char *fallback, llmh_plugin_kind kind, void **dl,
                          const llmh_plugin_desc **desc, void **state) {
    char path[4096] = "";
    const char *env = getenv("LLMH_PLUGIN_PATH");
    void *h = NULL;
    *dl = NULL;
    *desc = NULL;
    *state = NULL;
    /* each $LLMH_PLUGIN_PATH entry, then the file the build produced */
    while (env && *env && !h) {
        size_t n = strcspn(env, ":");
        snprintf(path, sizeof path, "%.*s/%s", (int)n, env, file_name);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        env += n;
        if (*env == ':') env++;
    }
    if (!h) {
        snprintf(path, sizeof path, "%s", fallback);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        fprintf(stderr, "cannot load plugin %s (%s): %s\n", file_name, path, dlerror());
        return -1;
    }
    *dl = h;
    llmh_plugin_describe_fn fn = (llmh_plugin_describe_fn)dlsym(h, LLMH_PLUGIN_SYMBOL);
    if (!fn) return -1;
    const llmh_plugin_desc *d = fn();
    if (!d || d->kind != kind) return -1;
    *desc = d;
    if (d->init && d->init(llmh_host_api_get(), state) != LLMH_OK) {
        fprintf(stderr, "%s: init failed: %s\n", path, llmh_last_error());
        return -1;
    }
    return 0;
}

uint32_t llmh_test_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(x >> 32);
}

float llmh_test_randf(uint64_t *s) { return (float)((double)llmh_test_rand(s) / 2147483648.0 - 1.0); }

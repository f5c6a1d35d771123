/* test-registry.c — plugin discovery, refusal reasons, loading, reference
 * counting and unloading (label `plugin`).
 *
 * The plugins under test are built by tests/plugin/CMakeLists.txt into
 * REGTEST_PLUGIN_DIR: regtest-good (a sampler that logs "init" / "fini ok"
 * through the host API), format and tokenizer test plugins, and one broken
 * plugin per refusal reason.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define PDIR REGTEST_PLUGIN_DIR
#define GOOD PDIR "/libllmh-sampler-regtest-good.so"

/* ------------------------------------------------------------------------ */
/* Log capture: the good plugin logs "init" and "fini ok" under its name.    */
/* ------------------------------------------------------------------------ */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int n_init, n_fini_ok, n_fini_bad;

static void capture_log(llmh_log_level level, const char *component, const char *msg, void *user) {
    (void)level;
    (void)user;
    if (!component || strcmp(component, "regtest-good") != 0) return;
    pthread_mutex_lock(&log_lock);
    if (!strcmp(msg, "init")) n_init++;
    else if (!strcmp(msg, "fini ok")) n_fini_ok++;
    else if (!strcmp(msg, "fini bad state")) n_fini_bad++;
    pthread_mutex_unlock(&log_lock);
}

static void counts(int *init, int *fini_ok, int *fini_bad) {
    pthread_mutex_lock(&log_lock);
    *init = n_init;
    *fini_ok = n_fini_ok;
    *fini_bad = n_fini_bad;
    pthread_mutex_unlock(&log_lock);
}

/* Is the file mapped in this process right now? */
static int is_mapped(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h) return 0;
    dlclose(h);
    return 1;
}

static char junk_dir[256];
static char junk_path[300];
static char trunc_path[300];

static int suite_init(void) {
    llmh_log_set(capture_log, NULL, LLMH_LOG_DEBUG);
    /* A file that looks like a plugin by name but is not an ELF object. */
    snprintf(junk_dir, sizeof junk_dir, "%s/llmh-regtest-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(junk_dir)) return 1;
    snprintf(junk_path, sizeof junk_path, "%s/libllmh-junk.so", junk_dir);
    FILE *f = fopen(junk_path, "w");
    if (!f) return 1;
    fputs("this is not an ELF file\n", f);
    fclose(f);
    /* A good plugin cut short, as an interrupted copy leaves it: 4200
     * bytes keep the ELF and program headers but end inside the code
     * segment (which starts at page 1). */
    size_t len = 0;
    char *img = llmh_test_read_file(GOOD, &len);
    if (!img) return 1;
    snprintf(trunc_path, sizeof trunc_path, "%s/libllmh-truncated.so", junk_dir);
    f = fopen(trunc_path, "wb");
    if (!f) return 1;
    fwrite(img, 1, len > 4200 ? 4200 : len / 2, f);
    fclose(f);
    free(img);
    return 0;
}

static int suite_cleanup(void) {
    unlink(junk_path);
    unlink(trunc_path);
    rmdir(junk_dir);
    llmh_log_set(NULL, NULL, LLMH_LOG_WARN);
    return 0;
}

/* A registry over the test dir (good plugin added first so the duplicate is
 * the one refused) plus the junk dir. */
static llmh_registry *make_registry(void) {
    llmh_registry *reg = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_add_path(reg, GOOD), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_add_path(reg, PDIR), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_add_path(reg, junk_dir), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_scan(reg), LLMH_OK);
    return reg;
}

static const llmh_plugin_refusal *find_refusal(const llmh_registry *reg, const char *file) {
    const llmh_plugin_refusal *found = NULL;
    int n = 0;
    for (size_t i = 0; i < llmh_registry_refused_count(reg); i++) {
        const llmh_plugin_refusal *r = llmh_registry_refused(reg, i);
        const char *slash = strrchr(r->path, '/');
        if (slash && !strcmp(slash + 1, file)) {
            found = r;
            n++;
        }
    }
    CU_ASSERT_EQUAL(n, 1); /* refused exactly once */
    return found;
}

static const llmh_plugin_info *find_info(const llmh_registry *reg, const char *name) {
    for (size_t i = 0; i < llmh_registry_count(reg); i++) {
        const llmh_plugin_info *info = llmh_registry_info(reg, i);
        if (!strcmp(info->name, name)) return info;
    }
    return NULL;
}

/* The refusal of `file` says `reason`, and llmh_plugin_check on it fails
 * with a message naming the file and the same reason. */
static void expect_refused(const llmh_registry *reg, const char *file, const char *reason) {
    const llmh_plugin_refusal *r = find_refusal(reg, file);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    if (!strstr(r->reason, reason))
        fprintf(stderr, "\n  %s: reason '%s' lacks '%s'\n", file, r->reason, reason);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->reason, reason));
    CU_ASSERT_EQUAL(r->path[0], '/'); /* absolute */

    char buf[1024] = "";
    llmh_plugin_info info;
    llmh_status st = llmh_plugin_check(r->path, &info, buf, sizeof buf);
    const char *msg = llmh_last_error();
    if (strstr(reason, "duplicate")) {
        CU_ASSERT_EQUAL(st, LLMH_OK); /* fine on its own; only a duplicate in a search */
        return;
    }
    CU_ASSERT_TRUE(st < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, r->path));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, reason));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, reason));
}

/* ------------------------------------------------------------------------ */
static void test_refusal_reasons(void) {
    llmh_registry *reg = make_registry();
    char want[4400];

    expect_refused(reg, "libllmh-sampler-regtest-nodesc.so",
                   "not a plugin (no llmh_plugin_describe symbol)");
    snprintf(want, sizeof want, "ABI mismatch: plugin built for %d.%d, host is %d.%d (needs minor <= %d)",
             LLMH_ABI_MAJOR, LLMH_ABI_MINOR + 1, LLMH_ABI_MAJOR, LLMH_ABI_MINOR, LLMH_ABI_MINOR);
    expect_refused(reg, "libllmh-sampler-regtest-minor.so", want);
    snprintf(want, sizeof want, "ABI mismatch: plugin major 2, host major %d", LLMH_ABI_MAJOR);
    expect_refused(reg, "libllmh-sampler-regtest-major.so", want);
    snprintf(want, sizeof want, "plugin built for 2.%d, host is %d.%d", LLMH_ABI_MINOR,
             LLMH_ABI_MAJOR, LLMH_ABI_MINOR);
    expect_refused(reg, "libllmh-sampler-regtest-major.so", want);

    char good_real[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(GOOD, good_real));
    snprintf(want, sizeof want, "duplicate name 'regtest-good' for kind sampler (first: %s)",
             good_real);
    expect_refused(reg, "libllmh-sampler-regtest-zdup.so", want);

    expect_refused(reg, "libllmh-sampler-regtest-probe0.so",
                   "probe returned 0: regtest: no frobnicator on this machine");
    expect_refused(reg, "libllmh-sampler-regtest-badkind.so",
                   "bad descriptor: kind 9 is not a plugin kind");
    expect_refused(reg, "libllmh-sampler-regtest-nulliface.so", "bad descriptor: iface is NULL");
    expect_refused(reg, "libllmh-sampler-regtest-badname.so", "bad descriptor: name 'Bad Name'");
    expect_refused(reg, "libllmh-sampler-regtest-reserved.so",
                   "bad descriptor: reserved[2] is not NULL");
    expect_refused(reg, "libllmh-sampler-regtest-smalliface.so",
                   "sampler iface struct_size 8 is smaller than the ABI 1.0 size");
    expect_refused(reg, "libllmh-sampler-regtest-noslot.so",
                   "sampler iface slot 'apply' is required but NULL");
    expect_refused(reg, "libllmh-sampler-regtest-undef.so", "cannot load: ");
    expect_refused(reg, "libllmh-sampler-regtest-undef.so", "regtest_missing_symbol");
    expect_refused(reg, "libllmh-junk.so", "cannot load: ");
    /* Crashes while loading: caught in a child process, refused here. */
    expect_refused(reg, "libllmh-sampler-regtest-crash.so", "cannot load: loading it ");
    /* Truncated copy of a good plugin: dlopen would SIGBUS on it. */
    expect_refused(reg, "libllmh-truncated.so", "cannot load: truncated file");

    /* An ASan-built plugin: refused (naming the runtime) unless this test
     * itself runs under ASan, in which case it loads like any other. */
#if !defined(REGTEST_ASAN_PLUGIN)
    /* not built: the compiler cannot link ASan here */
#elif defined(__SANITIZE_ADDRESS__)
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-asan"));
#else
    expect_refused(reg, "libllmh-sampler-regtest-asan.so",
                   "cannot load: built with AddressSanitizer (needs libasan.so");
#endif

    /* The usable ones are listed, the refused ones are not. */
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-good"));
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-initfail")); /* fails only at init */
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-fmt"));
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-tok"));
    CU_ASSERT_PTR_NULL(find_info(reg, "regtest-probe0"));
    CU_ASSERT_PTR_NULL(find_info(reg, "regtest-minor"));

    /* Discovery unloads everything it opened. */
    CU_ASSERT_FALSE(is_mapped(GOOD));
    CU_ASSERT_FALSE(is_mapped(PDIR "/libllmh-sampler-regtest-probe0.so"));
    llmh_registry_free(reg);
}

static void test_missing_search_path(void) {
    llmh_registry *reg = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_add_path(reg, PDIR "/no-such-dir"), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_scan(reg), LLMH_OK);
    const llmh_plugin_refusal *r = find_refusal(reg, "no-such-dir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->reason, "search path not found"));
    llmh_registry_free(reg);
}

/* Applications that ignore SIGCHLD (children auto-reaped) still get exact
 * verdicts from the crash-isolating preflight. */
static void test_sigchld_ignored(void) {
    struct sigaction old, ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    CU_ASSERT_EQUAL_FATAL(sigaction(SIGCHLD, &ign, &old), 0);
    llmh_registry *reg = make_registry();
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-good"));
    const llmh_plugin_refusal *r = find_refusal(reg, "libllmh-sampler-regtest-crash.so");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->reason, "cannot load: loading it "));
    llmh_registry_free(reg);
    sigaction(SIGCHLD, &old, NULL);
}

static void test_info_and_idempotent_scan(void) {
    llmh_registry *reg = make_registry();
    size_t n = llmh_registry_count(reg), nr = llmh_registry_refused_count(reg);
    const llmh_plugin_info *info = find_info(reg, "regtest-good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT_EQUAL(info->kind, LLMH_PLUGIN_SAMPLER);
    CU_ASSERT_STRING_EQUAL(info->version, "1.2.3");
    CU_ASSERT_STRING_EQUAL(info->license, "MIT");
    CU_ASSERT_STRING_EQUAL(info->description, "llmhost registry test plugin");
    CU_ASSERT_EQUAL(info->abi_major, LLMH_ABI_MAJOR);
    CU_ASSERT_EQUAL(info->abi_minor, LLMH_ABI_MINOR);
    CU_ASSERT_EQUAL(info->score, 7);
    CU_ASSERT_EQUAL(info->path[0], '/');
    CU_ASSERT_PTR_NOT_NULL_FATAL(info->provides);
    CU_ASSERT_STRING_EQUAL(info->provides[0], "regtest_a");
    CU_ASSERT_STRING_EQUAL(info->provides[1], "regtest_b");
    CU_ASSERT_PTR_NULL(info->provides[2]);
    const llmh_plugin_info *fmt = find_info(reg, "regtest-fmt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fmt);
    CU_ASSERT_PTR_NULL(fmt->provides);

    CU_ASSERT_EQUAL(llmh_registry_scan(reg), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_registry_count(reg), n);
    CU_ASSERT_EQUAL(llmh_registry_refused_count(reg), nr);
    llmh_registry_free(reg);
}

static void test_load_refcount_unload(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    int i0, f0, b0, i1, f1, b1;
    counts(&i0, &f0, &b0);

    llmh_plugin *p1 = NULL, *p2 = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest-good", &p1), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before + 1);
    CU_ASSERT_TRUE(is_mapped(GOOD));
    /* A sampler is also found by any name it provides; same loaded plugin. */
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest_b", &p2), LLMH_OK);
    CU_ASSERT_PTR_EQUAL(p1, p2);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before + 1);
    counts(&i1, &f1, &b1);
    CU_ASSERT_EQUAL(i1 - i0, 1); /* init ran once */
    CU_ASSERT_EQUAL(f1 - f0, 0);

    const llmh_plugin_desc *d = llmh_plugin_descriptor(p1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(d->name, "regtest-good");
    CU_ASSERT_PTR_NOT_NULL(llmh_plugin_state(p1));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_plugin_path(p1), "libllmh-sampler-regtest-good.so"));

    /* The iface works. */
    const llmh_sampler_iface *si = llmh_plugin_iface(p1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(si);
    llmh_sampler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(si->create(llmh_plugin_state(p1), "regtest_a", NULL, &s), LLMH_OK);
    llmh_token_data td[3] = {{0, 1.0f, 0}, {1, 3.0f, 0}, {2, -2.0f, 0}};
    llmh_token_array arr = {td, 3, -1, 0, 0};
    CU_ASSERT_EQUAL(si->apply(s, &arr), LLMH_OK);
    CU_ASSERT_EQUAL(arr.selected, 1);
    si->destroy(s);

    llmh_plugin_retain(p1);
    llmh_plugin_release(p1);
    llmh_plugin_release(p2);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before + 1);
    counts(&i1, &f1, &b1);
    CU_ASSERT_EQUAL(f1 - f0, 0); /* still referenced once */
    CU_ASSERT_TRUE(is_mapped(GOOD));

    llmh_plugin_release(p1); /* the last reference: fini + dlclose */
    counts(&i1, &f1, &b1);
    CU_ASSERT_EQUAL(f1 - f0, 1);
    CU_ASSERT_EQUAL(b1 - b0, 0);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    CU_ASSERT_FALSE(is_mapped(GOOD));

    /* Loading again initializes again. */
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest_a", &p1), LLMH_OK);
    counts(&i1, &f1, &b1);
    CU_ASSERT_EQUAL(i1 - i0, 2);
    llmh_plugin_release(p1);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    llmh_registry_free(reg);
}

static void test_plugin_outlives_registry(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    llmh_plugin *p = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest-good", &p), LLMH_OK);
    llmh_registry_free(reg);
    const llmh_sampler_iface *si = llmh_plugin_iface(p);
    llmh_sampler *s = NULL;
    CU_ASSERT_EQUAL(si->create(llmh_plugin_state(p), "regtest_b", NULL, &s), LLMH_OK);
    si->destroy(s);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before + 1);
    llmh_plugin_release(p);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    CU_ASSERT_FALSE(is_mapped(GOOD));
}

static void test_lookup_errors(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    llmh_plugin *p = (llmh_plugin *)1;

    CU_ASSERT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "nope", &p), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'nope'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "regtest-good")); /* lists what exists */

    /* A name that exists for another kind is not found for this one. */
    CU_ASSERT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_BACKEND, "regtest-good", &p),
                    LLMH_ERR_NOT_FOUND);

    /* A refused plugin is not usable, and the message says why. */
    CU_ASSERT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest-probe0", &p),
                    LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "no frobnicator"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "libllmh-sampler-regtest-probe0.so"));

    /* Refused before its descriptor could be trusted: found by file name. */
    CU_ASSERT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest-minor", &p),
                    LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "libllmh-sampler-regtest-minor.so: ABI mismatch"));

    /* init failing: error names the file and carries the plugin's text;
     * nothing stays loaded. */
    CU_ASSERT_EQUAL(llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, "regtest-initfail", &p),
                    LLMH_ERR_BACKEND);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "libllmh-sampler-regtest-initfail.so"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "init failed on purpose"));
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    CU_ASSERT_FALSE(is_mapped(PDIR "/libllmh-sampler-regtest-initfail.so"));

    CU_ASSERT_EQUAL(llmh_registry_get(reg, (llmh_plugin_kind)42, "x", &p), LLMH_ERR_INVALID_ARG);
    llmh_registry_free(reg);
}

static void test_format_for(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    llmh_plugin *p = NULL;

    static const char good[] = "RGTS and then some payload";
    char *path = llmh_test_write_temp(good, sizeof good - 1, ".rgts");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get_format_for(reg, path, &p), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(llmh_plugin_descriptor(p)->name, "regtest-fmt");
    const llmh_format_iface *fi = llmh_plugin_iface(p);
    llmh_model_file *mf = NULL;
    CU_ASSERT_EQUAL(fi->open(llmh_plugin_state(p), path, NULL, &mf), LLMH_OK);
    llmh_kv_list kv = {0};
    CU_ASSERT_EQUAL(fi->get_metadata(mf, &kv), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL(llmh_kv_find(&kv, "general.architecture"));
    fi->close(mf);
    llmh_plugin_release(p);
    unlink(path);
    free(path);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before); /* losers were released too */

    static const char bad[] = "definitely not a model file";
    path = llmh_test_write_temp(bad, sizeof bad - 1, ".bin");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    p = (llmh_plugin *)1;
    CU_ASSERT_EQUAL(llmh_registry_get_format_for(reg, path, &p), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "regtest-fmt=0"));
    unlink(path);
    free(path);

    /* A directory: probe_file sees no head bytes; the test plugin says no. */
    CU_ASSERT_EQUAL(llmh_registry_get_format_for(reg, junk_dir, &p), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), junk_dir));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "directory"));

    CU_ASSERT_EQUAL(llmh_registry_get_format_for(reg, "/nonexistent/model.gguf", &p),
                    LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "/nonexistent/model.gguf"));
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    llmh_registry_free(reg);
}

static llmh_kv_list tokenizer_meta(llmh_kv *kv, const char *model) {
    kv->key = "tokenizer.ggml.model";
    kv->value.type = LLMH_V_STRING;
    kv->value.v.s.ptr = model;
    kv->value.v.s.len = strlen(model);
    llmh_kv_list l = {kv, 1};
    return l;
}

static void test_tokenizer_for(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    llmh_kv kv;
    llmh_kv_list meta = tokenizer_meta(&kv, "regtest");
    llmh_plugin *p = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get_tokenizer_for(reg, &meta, &p), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(llmh_plugin_descriptor(p)->name, "regtest-tok");
    llmh_plugin_release(p);

    meta = tokenizer_meta(&kv, "nonesuch");
    CU_ASSERT_EQUAL(llmh_registry_get_tokenizer_for(reg, &meta, &p), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'nonesuch'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "regtest-tok=0"));
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    llmh_registry_free(reg);
}

static void test_env_path(void) {
    const char *old = getenv("LLMH_PLUGIN_PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("LLMH_PLUGIN_PATH", "/nonexistent-llmh-dir:" PDIR, 1);
    llmh_registry *reg = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(&reg), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_scan(reg), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL(find_info(reg, "regtest-good"));
    CU_ASSERT_PTR_NOT_NULL(find_refusal(reg, "nonexistent-llmh-dir"));
    /* No added path puts the duplicate second in sorted order: -good < -zdup. */
    CU_ASSERT_PTR_NOT_NULL(find_refusal(reg, "libllmh-sampler-regtest-zdup.so"));
    llmh_registry_free(reg);
    if (saved) {
        setenv("LLMH_PLUGIN_PATH", saved, 1);
        free(saved);
    } else {
        unsetenv("LLMH_PLUGIN_PATH");
    }
}

static void test_check_ok(void) {
    char buf[1024];
    llmh_plugin_info info;
    CU_ASSERT_EQUAL_FATAL(llmh_plugin_check(GOOD, &info, buf, sizeof buf), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(info.name, "regtest-good");
    CU_ASSERT_EQUAL(info.kind, LLMH_PLUGIN_SAMPLER);
    CU_ASSERT_STRING_EQUAL(info.version, "1.2.3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(info.provides);
    CU_ASSERT_STRING_EQUAL(info.provides[1], "regtest_b");
    CU_ASSERT_PTR_NULL(info.provides[2]);
    CU_ASSERT_EQUAL(info.path[0], '/');
    CU_ASSERT_FALSE(is_mapped(GOOD));

    /* Too small a buffer is reported, not overrun. */
    char small[16];
    CU_ASSERT_EQUAL(llmh_plugin_check(GOOD, &info, small, sizeof small), LLMH_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "buffer too small"));
    /* Validation alone needs no buffer. */
    CU_ASSERT_EQUAL(llmh_plugin_check(GOOD, NULL, NULL, 0), LLMH_OK);
    CU_ASSERT_EQUAL(llmh_plugin_check("/nonexistent/libllmh-x.so", NULL, NULL, 0),
                    LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "/nonexistent/libllmh-x.so"));
}

static void test_get_all(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    llmh_plugin **all = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get_all(reg, LLMH_PLUGIN_FORMAT, &all, &n), LLMH_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(llmh_plugin_descriptor(all[i])->name, "regtest-fmt")) seen++;
        llmh_plugin_release(all[i]);
    }
    free(all);
    CU_ASSERT_EQUAL(seen, 1);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);

    /* One plugin of the kind fails init: the whole call fails, nothing leaks. */
    CU_ASSERT_EQUAL(llmh_registry_get_all(reg, LLMH_PLUGIN_SAMPLER, &all, &n), LLMH_ERR_BACKEND);
    CU_ASSERT_PTR_NULL(all);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    llmh_registry_free(reg);
}

#define N_THREADS 8
#define N_ITERS 200

static void *hammer(void *arg) {
    llmh_registry *reg = arg;
    long failures = 0;
    for (int i = 0; i < N_ITERS; i++) {
        llmh_plugin *a = NULL, *b = NULL;
        if (llmh_registry_get(reg, LLMH_PLUGIN_SAMPLER, (i & 1) ? "regtest_a" : "regtest-good",
                              &a) != LLMH_OK)
            failures++;
        if (llmh_registry_get(reg, LLMH_PLUGIN_FORMAT, "regtest-fmt", &b) != LLMH_OK) failures++;
        llmh_plugin_release(a);
        llmh_plugin_release(b);
    }
    return (void *)failures;
}

static void test_threads(void) {
    llmh_registry *reg = make_registry();
    size_t before = llmh_plugins_loaded();
    int i0, f0, b0, i1, f1, b1;
    counts(&i0, &f0, &b0);
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer, reg), 0);
    long failures = 0;
    for (int i = 0; i < N_THREADS; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        failures += (long)r;
    }
    CU_ASSERT_EQUAL(failures, 0);
    counts(&i1, &f1, &b1);
    CU_ASSERT_TRUE(i1 - i0 >= 1);
    CU_ASSERT_EQUAL(i1 - i0, f1 - f0); /* every init had its fini */
    CU_ASSERT_EQUAL(b1 - b0, 0);
    CU_ASSERT_EQUAL(llmh_plugins_loaded(), before);
    CU_ASSERT_FALSE(is_mapped(GOOD));
    llmh_registry_free(reg);
}

int main(void) {
    static const llmh_test_case cases[] = {
        {"refusal reasons name file and cause", test_refusal_reasons},
        {"missing search path is reported", test_missing_search_path},
        {"crash isolation with SIGCHLD ignored", test_sigchld_ignored},
        {"info fields; scan is idempotent", test_info_and_idempotent_scan},
        {"load, refcount, fini + dlclose on last release", test_load_refcount_unload},
        {"a plugin outlives its registry", test_plugin_outlives_registry},
        {"lookup errors", test_lookup_errors},
        {"format plugin chosen by probe_file", test_format_for},
        {"tokenizer plugin chosen by probe(meta)", test_tokenizer_for},
        {"LLMH_PLUGIN_PATH", test_env_path},
        {"llmh_plugin_check on a good plugin", test_check_ok},
        {"get_all", test_get_all},
        {"concurrent get/release", test_threads},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {
        {"registry", cases, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, 1);
}

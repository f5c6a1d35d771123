/* test-manifest.c — the TOML manifest: errors name file:line:column and the
 * key; defaults, includes, relative paths, --set, where() and dump round trip;
 * every manifest in configs/ parses. */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[64];

static int suite_init(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/llmh-manifest-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : 1;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int suite_cleanup(void) {
    rm_rf(tmpdir);
    return 0;
}

/* Write tmpdir/name (creating one level of subdirectory) and return the path
 * in a static rotating buffer. */
static const char *put(const char *name, const char *text) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *path = bufs[next++ % 8];
    snprintf(path, PATH_MAX, "%s/%s", tmpdir, name);
    char *slash = strrchr(path, '/');
    if (slash && slash > path + strlen(tmpdir)) {
        *slash = 0;
        mkdir(path, 0755);
        *slash = '/';
    }
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Load `path`; expect failure with a message starting with
 * "<path>:<where>: " and containing each of the NULL-terminated needles. */
static void expect_error_at(const char *shown, const char *path, const char *where, ...) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_load(path, &m);
    CU_ASSERT_EQUAL(st, LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    llmh_manifest_free(m);
    const char *msg = llmh_last_error();
    char prefix[PATH_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s:%s: ", shown, where);
    int ok = strncmp(msg, prefix, strlen(prefix)) == 0;
    va_list ap;
    va_start(ap, where);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        if (!strstr(msg, needle)) ok = 0;
    va_end(ap);
    if (!ok) fprintf(stderr, "\n  expected prefix '%s', got: %s\n", prefix, msg);
    CU_ASSERT(ok);
}

#define EXPECT_ERROR(path, where, ...) expect_error_at(path, path, where, __VA_ARGS__, (const char *)NULL)

static llmh_manifest *load_ok(const char *path) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_load(path, &m);
    if (st) fprintf(stderr, "\n  load %s: %s\n", path, llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

static const llmh_value *opt(const llmh_kv_list *l, const char *key) { return llmh_kv_find(l, key); }

/* ------------------------------------------------------------------------ */
/* Malformed manifests                                                        */
/* ------------------------------------------------------------------------ */

static void test_syntax_error(void) {
    const char *p = put("syntax.toml", "[model]\npath = \"m.gguf\"\ncontext = = 3\n");
    EXPECT_ERROR(p, "3:11", "TOML syntax error");
    p = put("syntax2.toml", "[model\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:7", "TOML syntax error");
}

static void test_unknown_key_suggestion(void) {
    const char *p = put("thread.toml", "[model]\npath = \"m.gguf\"\n\n[backend]\nthread = 4\n");
    EXPECT_ERROR(p, "5:1", "unknown key 'thread' in [backend] (did you mean 'threads'?)");
    p = put("temp.toml", "[model]\npath = \"m.gguf\"\n[sampler]\n  temprature = 0.5\n");
    EXPECT_ERROR(p, "4:3", "unknown key 'temprature' in [sampler] (did you mean 'temperature'?)");
    /* far from every known key: no suggestion, but a hint about options */
    p = put("numa.toml", "[model]\npath = \"m.gguf\"\n[backend]\nnuma_nodes = 2\n");
    EXPECT_ERROR(p, "4:1", "unknown key 'numa_nodes' in [backend]", "[backend.options]");
    p = put("adkey.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"a\"\npath = \"a.gguf\"\nscael = 2.0\n");
    EXPECT_ERROR(p, "6:1", "unknown key 'scael' in [[adapter]] (did you mean 'scale'?)");
}

static void test_unknown_table(void) {
    const char *p = put("backnd.toml", "[model]\npath = \"m.gguf\"\n[backnd]\nthreads = 2\n");
    EXPECT_ERROR(p, "3:2", "unknown table [backnd] (did you mean [backend]?)");
    p = put("zzz.toml", "[model]\npath = \"m.gguf\"\n[zzz]\n");
    EXPECT_ERROR(p, "3:2", "unknown table [zzz]");
    p = put("toplevel.toml", "modle = 1\n[model]\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:1", "unknown top-level key 'modle' (did you mean 'model'?)");
    p = put("subtable.toml", "[model]\npath = \"m.gguf\"\n[backend.tuning]\nx = 1\n");
    EXPECT_ERROR(p, "3:10", "unknown key 'tuning' in [backend]");
}

static void test_wrong_type(void) {
    const char *p = put("type.toml", "[model]\npath = \"m.gguf\"\n[backend]\nthreads = \"four\"\n");
    EXPECT_ERROR(p, "4:11", "backend.threads must be an integer, got string");
    p = put("type2.toml", "[model]\npath = 42\n");
    EXPECT_ERROR(p, "2:8", "model.path must be a path (string), got integer");
    p = put("type3.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntemperature = \"hot\"\n");
    EXPECT_ERROR(p, "4:15", "sampler.temperature must be a number, got string");
    p = put("type4.toml", "backend = 3\n[model]\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:1", "backend must be a table", "got integer");
    p = put("type5.toml", "[model]\npath = \"m.gguf\"\n[generate]\nstop = \"</s>\"\n");
    EXPECT_ERROR(p, "4:8", "generate.stop must be an array of strings, got string");
    p = put("type6.toml", "[model]\npath = \"m.gguf\"\n[backend]\nplugin = \"CPU\"\n");
    EXPECT_ERROR(p, "4:10", "backend.plugin must be a plugin name", "'CPU'");
    p = put("type7.toml", "[model]\npath = \"m.gguf\"\n[backend]\noptions = 1\n");
    EXPECT_ERROR(p, "4:11", "backend.options must be a table, got integer");
}

static void test_bad_range(void) {
    const char *p = put("range1.toml", "[model]\npath = \"m.gguf\"\n[backend]\nthreads = -1\n");
    EXPECT_ERROR(p, "4:11", "backend.threads must be in [0, 4096], got -1");
    p = put("range2.toml", "[model]\npath = \"m.gguf\"\ncontext = 0\n");
    EXPECT_ERROR(p, "3:11", "model.context must be in [1, 2147483647], got 0");
    p = put("range3.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntop_p = 1.5\n");
    EXPECT_ERROR(p, "4:9", "sampler.top_p must be in (0, 1], got 1.5");
    p = put("range4.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntop_p = 0\n");
    EXPECT_ERROR(p, "4:9", "sampler.top_p must be in (0, 1], got 0");
    p = put("range5.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntemperature = -0.5\n");
    EXPECT_ERROR(p, "4:15", "sampler.temperature must be >= 0, got -0.5");
    p = put("range6.toml", "[model]\npath = \"m.gguf\"\n[generate]\nmax_tokens = -2\n");
    EXPECT_ERROR(p, "4:14", "generate.max_tokens must be in [-1, 2147483647], got -2");
    p = put("range7.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntemperature = nan\n");
    EXPECT_ERROR(p, "4:15", "sampler.temperature must be a finite number");
    p = put("range8.toml", "[model]\npath = \"m.gguf\"\nsha256 = \"abc\"\n");
    EXPECT_ERROR(p, "3:10", "model.sha256 must be 64 hexadecimal digits");
    p = put("range9.toml", "[model]\npath = \"m.gguf\"\nadapter_type = \"q4_0\"\n");
    EXPECT_ERROR(p, "3:16", "model.adapter_type must be", "\"q8_0\"", "got \"q4_0\"");
    /* every storage type the adapter store knows is accepted */
    static const char *const types[] = {"auto", "f32", "f16", "bf16", "q8_0"};
    for (int i = 0; i < 5; i++) {
        char text[128];
        snprintf(text, sizeof text, "[model]\npath = \"m.gguf\"\nadapter_type = \"%s\"\n", types[i]);
        llmh_manifest *m = NULL;
        CU_ASSERT_EQUAL(llmh_manifest_parse(text, strlen(text), "types.toml", NULL, &m), LLMH_OK);
        if (m) CU_ASSERT_STRING_EQUAL(llmh_manifest_config(m)->model.adapter_type, types[i]);
        llmh_manifest_free(m);
    }
}

static void test_missing_path(void) {
    const char *p = put("nopath.toml", "# no path\n[model]\nformat = \"gguf\"\n");
    EXPECT_ERROR(p, "2:1", "missing required key 'path' in [model]");
    p = put("nomodel.toml", "[backend]\nthreads = 2\n");
    EXPECT_ERROR(p, "1:1", "model.path is required");
    p = put("emptypath.toml", "[model]\npath = \"\"\n");
    EXPECT_ERROR(p, "2:8", "model.path must not be empty");
}

static void test_include_cycle(void) {
    put("cyc-a.toml", "include = \"cyc-b.toml\"\n[model]\npath = \"m.gguf\"\n");
    const char *b = put("cyc-b.toml", "# b\ninclude = \"cyc-a.toml\"\n");
    const char *a = put("cyc-a.toml", "include = \"cyc-b.toml\"\n[model]\npath = \"m.gguf\"\n");
    char msg[PATH_MAX * 3];
    snprintf(msg, sizeof msg, "include cycle: %s -> %s -> %s", a, b, a);
    expect_error_at(b, a, "2:11", msg, (const char *)NULL);
    const char *self = put("self.toml", "include = [\"self.toml\"]\n");
    snprintf(msg, sizeof msg, "include cycle: %s -> %s", self, self);
    expect_error_at(self, self, "1:12", msg, (const char *)NULL);
}

static void test_include_missing(void) {
    const char *p = put("incmiss.toml", "[model]\npath = \"m.gguf\"\n");
    p = put("incmiss.toml", "include = \"nope/base.toml\"\n[model]\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:11", "include 'nope/base.toml' not found", "No such file");
    p = put("inctype.toml", "include = 3\n[model]\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:11", "include must be a string or an array of strings, got integer");
    p = put("inctype2.toml", "include = [\"a.toml\", 3]\n[model]\npath = \"m.gguf\"\n");
    EXPECT_ERROR(p, "1:22", "include[1] must be a string, got integer");
    p = put("incnested.toml", "[model]\npath = \"m.gguf\"\ninclude = \"x.toml\"\n");
    EXPECT_ERROR(p, "3:1", "unknown key 'include' in [model]");
}

static void test_error_in_included_file(void) {
    const char *base = put("inc/base-bad.toml", "[model]\npath = \"m.gguf\"\n[backend]\nthreads = true\n");
    const char *top = put("uses-bad.toml", "include = \"inc/base-bad.toml\"\n");
    expect_error_at(base, top, "4:11", "backend.threads must be an integer, got boolean", (const char *)NULL);
}

static void test_include_depth(void) {
    char name[64], text[128];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "deep%d.toml", i);
        if (i < 19)
            snprintf(text, sizeof text, "include = \"deep%d.toml\"\n", i + 1);
        else
            snprintf(text, sizeof text, "[model]\npath = \"m.gguf\"\n");
        put(name, text);
    }
    char top[PATH_MAX];
    snprintf(top, sizeof top, "%s/deep0.toml", tmpdir);
    llmh_manifest *m = NULL;
    CU_ASSERT_EQUAL(llmh_manifest_load(top, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "nested deeper than 16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "deep16.toml:1:11: "));
}

static void test_duplicate_key(void) {
    const char *p = put("dup.toml", "[model]\npath = \"a.gguf\"\npath = \"b.gguf\"\n");
    EXPECT_ERROR(p, "3:8", "TOML syntax error", "cannot redefine", "'path'");
    p = put("duptable.toml", "[model]\npath = \"a.gguf\"\n[backend]\n[model]\n");
    EXPECT_ERROR(p, "4:1", "TOML syntax error", "cannot redefine", "'model'");
}

static void test_adapter_errors(void) {
    const char *p = put("adname.toml", "[model]\npath = \"m.gguf\"\n\n  [[adapter]]\npath = \"a.gguf\"\n");
    EXPECT_ERROR(p, "4:3", "missing required key 'name' in [[adapter]]", "adapter.0");
    p = put("adpath.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"a\"\npath = \"a.gguf\"\n[[adapter]]\nname = \"b\"\n");
    EXPECT_ERROR(p, "6:1", "missing required key 'path' in [[adapter]] 'b'", "adapter.1");
    p = put("addup.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"a\"\npath = \"a.gguf\"\n"
                          "[[adapter]]\nname = \"a\"\npath = \"b.gguf\"\n");
    EXPECT_ERROR(p, "7:8", "duplicate adapter name 'a'", ":4:8)");
    p = put("adtable.toml", "[model]\npath = \"m.gguf\"\n[adapter]\nname = \"a\"\n");
    EXPECT_ERROR(p, "3:2", "adapter must be an array of tables ([[adapter]]), got table");
    p = put("adscale.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"a\"\npath = \"a.gguf\"\nscale = \"big\"\n");
    EXPECT_ERROR(p, "6:9", "adapter.0.scale must be a number, got string");
    p = put("adempty.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"\"\npath = \"a.gguf\"\n");
    EXPECT_ERROR(p, "4:8", "adapter.0.name must not be empty");
}

static void test_chain_errors(void) {
    const char *p = put("chain1.toml", "[model]\npath = \"m.gguf\"\n[sampler]\nchain = [\"top_k\", 3, \"dist\"]\n");
    EXPECT_ERROR(p, "4:19", "sampler.chain[1] must be a string, got integer");
    p = put("chain2.toml", "[model]\npath = \"m.gguf\"\n[sampler]\nchain = []\n");
    EXPECT_ERROR(p, "4:9", "sampler.chain must not be empty");
    p = put("chain3.toml", "[model]\npath = \"m.gguf\"\n[sampler]\nchain = \"greedy\"\n");
    EXPECT_ERROR(p, "4:9", "sampler.chain must be an array of names, got string");
    p = put("chain4.toml", "[model]\npath = \"m.gguf\"\n[plugins]\npaths = [\"a\", \"\"]\n");
    EXPECT_ERROR(p, "4:15", "plugins.paths[1] must not be empty");
}

static void test_open_table_errors(void) {
    const char *p = put("shadow.toml", "[model]\npath = \"m.gguf\"\n[sampler.options]\ntop_k = 3\n");
    EXPECT_ERROR(p, "4:1", "key 'top_k' in [sampler.options] is a standard key: set it in [sampler]");
    p = put("optarr.toml", "[model]\npath = \"m.gguf\"\n[backend.options]\nx = [{a = 1}]\n");
    EXPECT_ERROR(p, "4:6", "tables inside arrays are not supported");
    p = put("optdot.toml", "[model]\npath = \"m.gguf\"\n[router.options]\n\"a.b\" = 1\n");
    EXPECT_ERROR(p, "4:1", "key 'a.b' in [router.options]");
}

/* ------------------------------------------------------------------------ */
/* Good manifests                                                             */
/* ------------------------------------------------------------------------ */

static void test_defaults(void) {
    const char *p = put("minimal.toml", "[model]\npath = \"m.gguf\"\n");
    llmh_manifest *m = load_ok(p);
    const llmh_config *c = llmh_manifest_config(m);
    char expect[PATH_MAX];
    snprintf(expect, sizeof expect, "%s/m.gguf", tmpdir);
    char real[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(p, real));
    CU_ASSERT_STRING_EQUAL(c->file, real);
    CU_ASSERT_STRING_EQUAL(c->model.path, expect);
    CU_ASSERT_STRING_EQUAL(c->model.format, "auto");
    CU_ASSERT_EQUAL(c->model.context, 4096);
    CU_ASSERT_STRING_EQUAL(c->backend.plugin, "cpu");
    CU_ASSERT_EQUAL(c->backend.threads, 0);
    CU_ASSERT_EQUAL(c->backend.device, -1);
    CU_ASSERT_STRING_EQUAL(c->tokenizer.plugin, "auto");
    CU_ASSERT_EQUAL_FATAL(c->sampler.n_chain, 1);
    CU_ASSERT_STRING_EQUAL(c->sampler.chain[0], "greedy");
    CU_ASSERT_EQUAL(c->sampler.params.n, 0);
    CU_ASSERT_EQUAL(c->generate.max_tokens, 256);
    CU_ASSERT_EQUAL(c->generate.n_stop, 0);
    CU_ASSERT_PTR_NULL(c->generate.system);
    CU_ASSERT_PTR_NULL(c->generate.chat_template);
    CU_ASSERT_EQUAL(c->n_adapters, 0);
    CU_ASSERT_STRING_EQUAL(c->router.plugin, "static");
    CU_ASSERT_EQUAL(c->router.params.n, 0);
    CU_ASSERT_EQUAL(c->plugins.n_paths, 0);
    /* [model] options hold every [model] key, defaults included */
    const llmh_value *v = opt(&c->model.options, "context");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    int64_t i = 0;
    CU_ASSERT(llmh_value_as_i64(v, &i) && i == 4096);
    v = opt(&c->backend.options, "plugin");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, LLMH_V_STRING);
    CU_ASSERT(v->v.s.len == 3 && !memcmp(v->v.s.ptr, "cpu", 3));
    /* defaults were not written by anyone */
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "backend.threads", NULL, NULL, NULL), 0);
    llmh_manifest_free(m);
}

static void test_full_manifest(void) {
    const char *p = put("full.toml",
                        "[model]\npath = \"/abs/model.gguf\"\nformat = \"gguf\"\ncontext = 1024\n"
                        "url = \"https://example.com/m.gguf\"\nsize = 1234\n"
                        "[model.options]\nmmap = false\n"
                        "[backend]\nplugin = \"onednn\"\nthreads = 8\ndevice = 1\n"
                        "[backend.options]\nnuma = true\ntile = { m = 16, n = 32 }\nlist = [1, 2.5, \"x\"]\n"
                        "[tokenizer]\nplugin = \"bpe\"\n[tokenizer.options]\nadd_bos = true\n"
                        "[sampler]\nchain = [\"penalties\", \"top_k\", \"dist\"]\ntop_k = 40\ntemperature = 1\nseed = 7\n"
                        "[sampler.options]\nmirostat_tau = 5.0\n"
                        "[generate]\nmax_tokens = -1\nstop = [\"</s>\", \"\\n\\n\"]\nsystem = \"Be brief.\"\n"
                        "chat_template = \"{{ messages }}\"\n"
                        "[[adapter]]\nname = \"tim\"\npath = \"ad/tim.gguf\"\nnamespace = \"persona\"\nscale = 0.5\n"
                        "[[adapter]]\nname = \"big\"\npath = \"/abs/big.gguf\"\n"
                        "[router]\nplugin = \"namespace\"\n[router.options]\ndefault = \"persona\"\n"
                        "[plugins]\npaths = [\"plug\", \"/opt/plugins\"]\n");
    llmh_manifest *m = load_ok(p);
    const llmh_config *c = llmh_manifest_config(m);
    char expect[PATH_MAX];
    CU_ASSERT_STRING_EQUAL(c->model.path, "/abs/model.gguf");
    CU_ASSERT_STRING_EQUAL(c->model.format, "gguf");
    CU_ASSERT_EQUAL(c->model.context, 1024);
    CU_ASSERT_PTR_NOT_NULL(opt(&c->model.options, "url"));
    CU_ASSERT_PTR_NOT_NULL(opt(&c->model.options, "size"));
    const llmh_value *v = opt(&c->model.options, "mmap");
    CU_ASSERT(v && v->type == LLMH_V_BOOL && v->v.b == 0);
    CU_ASSERT_STRING_EQUAL(c->backend.plugin, "onednn");
    CU_ASSERT_EQUAL(c->backend.threads, 8);
    CU_ASSERT_EQUAL(c->backend.device, 1);
    v = opt(&c->backend.options, "tile.n");
    int64_t i = 0;
    CU_ASSERT(v && llmh_value_as_i64(v, &i) && i == 32);
    v = opt(&c->backend.options, "list");
    CU_ASSERT_FATAL(v && v->type == LLMH_V_ARRAY && v->v.arr.n == 3);
    CU_ASSERT_EQUAL(v->v.arr.items[0].type, LLMH_V_I64);
    CU_ASSERT_EQUAL(v->v.arr.items[1].type, LLMH_V_F64);
    CU_ASSERT_EQUAL(v->v.arr.items[2].type, LLMH_V_STRING);
    CU_ASSERT_STRING_EQUAL(c->tokenizer.plugin, "bpe");
    CU_ASSERT_PTR_NOT_NULL(opt(&c->tokenizer.options, "add_bos"));
    CU_ASSERT_EQUAL_FATAL(c->sampler.n_chain, 3);
    CU_ASSERT_STRING_EQUAL(c->sampler.chain[2], "dist");
    CU_ASSERT_EQUAL(c->sampler.params.n, 4);
    v = opt(&c->sampler.params, "temperature");
    CU_ASSERT(v && v->type == LLMH_V_F64 && v->v.f == 1.0); /* numbers are floats even when written 1 */
    v = opt(&c->sampler.params, "top_k");
    CU_ASSERT(v && v->type == LLMH_V_I64 && v->v.i == 40);
    CU_ASSERT_PTR_NOT_NULL(opt(&c->sampler.params, "mirostat_tau"));
    CU_ASSERT_PTR_NULL(opt(&c->sampler.params, "chain"));
    CU_ASSERT_EQUAL(c->generate.max_tokens, -1);
    CU_ASSERT_EQUAL_FATAL(c->generate.n_stop, 2);
    CU_ASSERT_STRING_EQUAL(c->generate.stop[1], "\n\n");
    CU_ASSERT_STRING_EQUAL(c->generate.system, "Be brief.");
    CU_ASSERT_STRING_EQUAL(c->generate.chat_template, "{{ messages }}");
    CU_ASSERT_EQUAL_FATAL(c->n_adapters, 2);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].name, "tim");
    snprintf(expect, sizeof expect, "%s/ad/tim.gguf", tmpdir);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].path, expect);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].ns, "persona");
    CU_ASSERT_DOUBLE_EQUAL(c->adapters[0].scale, 0.5, 1e-7);
    CU_ASSERT_PTR_NULL(c->adapters[1].ns);
    CU_ASSERT_DOUBLE_EQUAL(c->adapters[1].scale, 1.0, 1e-7);
    CU_ASSERT_STRING_EQUAL(c->router.plugin, "namespace");
    CU_ASSERT_EQUAL(c->router.params.n, 1);
    CU_ASSERT_PTR_NOT_NULL(opt(&c->router.params, "default"));
    CU_ASSERT_EQUAL_FATAL(c->plugins.n_paths, 2);
    snprintf(expect, sizeof expect, "%s/plug", tmpdir);
    CU_ASSERT_STRING_EQUAL(c->plugins.paths[0], expect);
    CU_ASSERT_STRING_EQUAL(c->plugins.paths[1], "/opt/plugins");
    llmh_manifest_free(m);
}

static void test_include_override(void) {
    put("base/base.toml", "[model]\npath = \"../models/base.gguf\"\nformat = \"gguf\"\n"
                          "[backend]\nplugin = \"onednn\"\nthreads = 2\n"
                          "[sampler]\nchain = [\"top_k\", \"dist\"]\ntop_k = 10\n"
                          "[[adapter]]\nname = \"a\"\npath = \"ad/a.gguf\"\n"
                          "[[adapter]]\nname = \"b\"\npath = \"ad/b.gguf\"\n"
                          "[plugins]\npaths = [\"plug\"]\n");
    put("base/extra.toml", "[generate]\nmax_tokens = 5\n[backend]\nthreads = 3\n");
    const char *top = put("child.toml", "include = [\"base/base.toml\", \"base/extra.toml\"]\n"
                                        "[backend]\nthreads = 4\n"
                                        "[sampler]\nchain = [\"greedy\"]\n"
                                        "[[adapter]]\nname = \"c\"\npath = \"c.gguf\"\n");
    llmh_manifest *m = load_ok(top);
    const llmh_config *c = llmh_manifest_config(m);
    char expect[PATH_MAX];
    /* relative paths resolve against the file that set them */
    snprintf(expect, sizeof expect, "%s/models/base.gguf", tmpdir);
    CU_ASSERT_STRING_EQUAL(c->model.path, expect);
    CU_ASSERT_STRING_EQUAL(c->model.format, "gguf");
    /* tables merge key by key; the including file wins; later includes win */
    CU_ASSERT_STRING_EQUAL(c->backend.plugin, "onednn");
    CU_ASSERT_EQUAL(c->backend.threads, 4);
    CU_ASSERT_EQUAL(c->generate.max_tokens, 5);
    /* arrays replace; other sampler keys survive the merge */
    CU_ASSERT_EQUAL_FATAL(c->sampler.n_chain, 1);
    CU_ASSERT_STRING_EQUAL(c->sampler.chain[0], "greedy");
    CU_ASSERT_PTR_NOT_NULL(opt(&c->sampler.params, "top_k"));
    /* [[adapter]] replaces as a whole */
    CU_ASSERT_EQUAL_FATAL(c->n_adapters, 1);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].name, "c");
    snprintf(expect, sizeof expect, "%s/c.gguf", tmpdir);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].path, expect);
    snprintf(expect, sizeof expect, "%s/base/plug", tmpdir);
    CU_ASSERT_EQUAL_FATAL(c->plugins.n_paths, 1);
    CU_ASSERT_STRING_EQUAL(c->plugins.paths[0], expect);

    /* where(): each key names the file that set it */
    const char *file = NULL;
    int line = 0, col = 0;
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/base/base.toml", tmpdir);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "backend.threads", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, top);
    CU_ASSERT_EQUAL(line, 3);
    CU_ASSERT_EQUAL(col, 1);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "model.path", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, base);
    CU_ASSERT_EQUAL(line, 2);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "sampler.top_k", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, base);
    CU_ASSERT_EQUAL(line, 9);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "adapter.0.path", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, top);
    CU_ASSERT_EQUAL(line, 8);
    CU_ASSERT_EQUAL(col, 1);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "adapter.1.path", &file, &line, &col), 0);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "generate.max_tokens", &file, &line, &col), 1);
    snprintf(base, sizeof base, "%s/base/extra.toml", tmpdir);
    CU_ASSERT_STRING_EQUAL(file, base);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "include", &file, &line, &col), 0);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "nothing.here", &file, &line, &col), 0);
    llmh_manifest_free(m);
}

static void test_where_options(void) {
    const char *p = put("where.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntop_k = 3\n"
                                      "[sampler.options]\n  mirostat_tau = 5.0\n"
                                      "[backend.options]\ntile.m = 16\n");
    llmh_manifest *m = load_ok(p);
    const char *file = NULL;
    int line = 0, col = 0;
    /* plugin parameters are flattened, so "sampler.x" finds [sampler.options] x */
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "sampler.mirostat_tau", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, p);
    CU_ASSERT_EQUAL(line, 6);
    CU_ASSERT_EQUAL(col, 3);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "sampler.options.mirostat_tau", &file, &line, &col), 1);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "backend.options.tile.m", &file, &line, &col), 1);
    CU_ASSERT_EQUAL(line, 8);
    CU_ASSERT_EQUAL(col, 6);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "backend.tile.m", &file, &line, &col), 1);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "sampler.top_k", &file, &line, &col), 1);
    CU_ASSERT_EQUAL(line, 4);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "sampler.top_p", &file, &line, &col), 0);
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "", &file, &line, &col), 0);
    CU_ASSERT_EQUAL(llmh_manifest_where(NULL, "model.path", &file, &line, &col), 0);
    llmh_manifest_free(m);
}

static void test_set(void) {
    const char *p = put("set.toml", "[model]\npath = \"m.gguf\"\n[[adapter]]\nname = \"a\"\npath = \"a.gguf\"\n");
    llmh_manifest *m = load_ok(p);
    const llmh_config *c = llmh_manifest_config(m);
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "backend.threads=4"), LLMH_OK);
    CU_ASSERT_EQUAL(c->backend.threads, 4);
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "sampler.chain = [\"top_k\", \"dist\"]"), LLMH_OK);
    CU_ASSERT_EQUAL(c->sampler.n_chain, 2);
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "sampler.temperature=0.25"), LLMH_OK);
    const llmh_value *v = opt(&c->sampler.params, "temperature");
    CU_ASSERT(v && v->v.f == 0.25);
    /* a bare word is taken as a string; relative paths resolve against cwd */
    const char *keep = c->model.path; /* earlier strings stay valid until free */
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "model.path=other.gguf"), LLMH_OK);
    char cwd[PATH_MAX], expect[PATH_MAX * 2];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    snprintf(expect, sizeof expect, "%s/other.gguf", strcmp(cwd, "/") ? cwd : "");
    CU_ASSERT_STRING_EQUAL(c->model.path, expect);
    CU_ASSERT_PTR_NOT_NULL(strstr(keep, "m.gguf"));
    /* array elements by index */
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "adapter.0.scale=0.5"), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(c->n_adapters, 1);
    CU_ASSERT_DOUBLE_EQUAL(c->adapters[0].scale, 0.5, 1e-7);
    CU_ASSERT_STRING_EQUAL(c->adapters[0].name, "a");
    const char *file = NULL;
    int line = 0, col = 0;
    CU_ASSERT_EQUAL(llmh_manifest_where(m, "backend.threads", &file, &line, &col), 1);
    CU_ASSERT_STRING_EQUAL(file, "--set");
    CU_ASSERT_EQUAL(line, 1);
    CU_ASSERT_EQUAL(col, 9);

    /* failures re-validate and leave the manifest unchanged */
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "backend.threads=\"x\""), LLMH_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(llmh_last_error(), "--set:1:17: backend.threads must be an integer, got string");
    CU_ASSERT_EQUAL(c->backend.threads, 4);
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "backend.thread=2"), LLMH_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(llmh_last_error(),
                           "--set:1:9: unknown key 'thread' in [backend] (did you mean 'threads'?)");
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "sampler.top_p=2"), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "sampler.top_p must be in (0, 1], got 2"));
    CU_ASSERT_PTR_NULL(opt(&c->sampler.params, "top_p"));
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "threads"), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "expected section.key=value"));
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "backend..threads=1"), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "--set:1:"));
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "include=\"x.toml\""), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "include is only allowed"));
    CU_ASSERT_EQUAL(c->backend.threads, 4);
    CU_ASSERT_EQUAL(llmh_manifest_set(NULL, "a.b=1"), LLMH_ERR_INVALID_ARG);
    llmh_manifest_free(m);
}

static void test_parse_memory(void) {
    const char *text = "[model]\npath = \"m.gguf\"\n[backend]\nthreads = 2\n";
    llmh_manifest *m = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_manifest_parse(text, strlen(text), "mem.toml", "/srv/models", &m), LLMH_OK);
    const llmh_config *c = llmh_manifest_config(m);
    CU_ASSERT_STRING_EQUAL(c->model.path, "/srv/models/m.gguf");
    CU_ASSERT_EQUAL(c->backend.threads, 2);
    llmh_manifest_free(m);
    m = NULL;
    const char *bad = "[model]\npath = \"m.gguf\"\n[backend]\nthreads = 1.5\n";
    CU_ASSERT_EQUAL(llmh_manifest_parse(bad, strlen(bad), "mem.toml", NULL, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(llmh_last_error(), "mem.toml:4:11: backend.threads must be an integer, got float");
    CU_ASSERT_PTR_NULL(m);
    /* length is honoured: the text after len is not read */
    CU_ASSERT_EQUAL(llmh_manifest_parse(bad, 24, "mem.toml", NULL, &m), LLMH_OK);
    llmh_manifest_free(m);
    /* untrusted bytes never crash */
    const char junk[] = "[model]\npath = \"\xff\xfe\"\n\0\x01[[[";
    m = NULL;
    CU_ASSERT_EQUAL(llmh_manifest_parse(junk, sizeof junk - 1, "junk", NULL, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(llmh_manifest_parse(NULL, 0, "empty", NULL, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "empty:1:1: missing [model] table"));
    CU_ASSERT_EQUAL(llmh_manifest_load("/nonexistent/x.toml", &m), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "/nonexistent/x.toml"));
}

static void compare_kvs(const llmh_kv_list *a, const llmh_kv_list *b) {
    CU_ASSERT_EQUAL_FATAL(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        CU_ASSERT_STRING_EQUAL(a->items[i].key, b->items[i].key);
        const llmh_value *x = &a->items[i].value, *y = &b->items[i].value;
        CU_ASSERT_EQUAL_FATAL(x->type, y->type);
        switch (x->type) {
        case LLMH_V_STRING:
            CU_ASSERT(x->v.s.len == y->v.s.len && !memcmp(x->v.s.ptr, y->v.s.ptr, x->v.s.len));
            break;
        case LLMH_V_F64: CU_ASSERT(x->v.f == y->v.f || (isnan(x->v.f) && isnan(y->v.f))); break;
        case LLMH_V_ARRAY: CU_ASSERT_EQUAL(x->v.arr.n, y->v.arr.n); break;
        case LLMH_V_BOOL: CU_ASSERT_EQUAL(x->v.b, y->v.b); break;
        default: CU_ASSERT_EQUAL(x->v.i, y->v.i); break;
        }
    }
}

static void compare_strs(const char *const *a, size_t na, const char *const *b, size_t nb) {
    CU_ASSERT_EQUAL_FATAL(na, nb);
    for (size_t i = 0; i < na; i++) CU_ASSERT_STRING_EQUAL(a[i], b[i]);
}

static void test_dump_round_trip(void) {
    put("rt/base.toml", "[model]\npath = \"m.gguf\"\n[sampler]\ntop_p = 0.95\n");
    const char *p = put("rt/top.toml",
                        "include = \"base.toml\"\n"
                        "[model]\ncontext = 100\nsha256 = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n"
                        "[model.options]\n\"odd key\" = \"tab\\there \\\"q\\\" \\u0001 ü\"\n"
                        "[backend]\nthreads = 3\n[backend.options]\nx.y.z = [1, [2, 3], \"s\"]\nf = 1e300\nneg = -0.1\n"
                        "when = 1979-05-27T07:32:00Z\n"
                        "[sampler]\nchain = [\"top_k\", \"dist\"]\ntemperature = 0.7\nseed = 4294967295\n"
                        "[sampler.options]\ninf_val = inf\n"
                        "[generate]\nstop = [\"a\\nb\"]\nsystem = \"line1\\nline2\"\nchat_template = \"{% x %}\"\n"
                        "[[adapter]]\nname = \"n a m e\"\npath = \"a.gguf\"\nscale = 0.7\nnamespace = \"ns\"\n"
                        "[router.options]\nk = true\n"
                        "[plugins]\npaths = [\"p\"]\n");
    llmh_manifest *m = load_ok(p);
    CU_ASSERT_EQUAL(llmh_manifest_set(m, "backend.device=2"), LLMH_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    llmh_manifest_dump(m, f);
    fclose(f);
    llmh_manifest *r = NULL;
    llmh_status st = llmh_manifest_parse(buf, len, "dump", "/", &r);
    if (st) fprintf(stderr, "\n  %s\n%s\n", llmh_last_error(), buf);
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    const llmh_config *a = llmh_manifest_config(m), *b = llmh_manifest_config(r);
    CU_ASSERT_STRING_EQUAL(a->model.path, b->model.path);
    CU_ASSERT_STRING_EQUAL(a->model.format, b->model.format);
    CU_ASSERT_EQUAL(a->model.context, b->model.context);
    compare_kvs(&a->model.options, &b->model.options);
    CU_ASSERT_STRING_EQUAL(a->backend.plugin, b->backend.plugin);
    CU_ASSERT_EQUAL(a->backend.threads, b->backend.threads);
    CU_ASSERT_EQUAL(b->backend.device, 2);
    compare_kvs(&a->backend.options, &b->backend.options);
    CU_ASSERT_STRING_EQUAL(a->tokenizer.plugin, b->tokenizer.plugin);
    compare_kvs(&a->tokenizer.options, &b->tokenizer.options);
    compare_strs(a->sampler.chain, a->sampler.n_chain, b->sampler.chain, b->sampler.n_chain);
    compare_kvs(&a->sampler.params, &b->sampler.params);
    CU_ASSERT_EQUAL(a->generate.max_tokens, b->generate.max_tokens);
    compare_strs(a->generate.stop, a->generate.n_stop, b->generate.stop, b->generate.n_stop);
    CU_ASSERT_STRING_EQUAL(a->generate.system, b->generate.system);
    CU_ASSERT_STRING_EQUAL(a->generate.chat_template, b->generate.chat_template);
    CU_ASSERT_EQUAL_FATAL(a->n_adapters, b->n_adapters);
    for (size_t i = 0; i < a->n_adapters; i++) {
        CU_ASSERT_STRING_EQUAL(a->adapters[i].name, b->adapters[i].name);
        CU_ASSERT_STRING_EQUAL(a->adapters[i].path, b->adapters[i].path);
        CU_ASSERT_STRING_EQUAL(a->adapters[i].ns, b->adapters[i].ns);
        CU_ASSERT_EQUAL(a->adapters[i].scale, b->adapters[i].scale);
    }
    CU_ASSERT_STRING_EQUAL(a->router.plugin, b->router.plugin);
    compare_kvs(&a->router.params, &b->router.params);
    compare_strs(a->plugins.paths, a->plugins.n_paths, b->plugins.paths, b->plugins.n_paths);
    /* and the dump of the dump is identical but for the "from:" line */
    char *buf2 = NULL;
    size_t len2 = 0;
    f = open_memstream(&buf2, &len2);
    llmh_manifest_dump(r, f);
    fclose(f);
    const char *body1 = strstr(buf, "\n\n"), *body2 = strstr(buf2, "\n\n");
    CU_ASSERT_FATAL(body1 && body2);
    CU_ASSERT_STRING_EQUAL(body1, body2);
    free(buf);
    free(buf2);
    llmh_manifest_free(r);
    llmh_manifest_free(m);
}

/* Every manifest shipped in configs/ parses, and those that point into
 * ../shared name files that exist. */
/* Every manifest in dir parses; models are fixtures in ../shared or are
 * fetched by url. Returns the count; *greedy counts greedy-only chains. */
static int check_config_dir(const char *dir, const char *shared_real, int *greedy) {
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".toml")) continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        llmh_manifest *m = NULL;
        llmh_status st = llmh_manifest_load(path, &m);
        if (st) fprintf(stderr, "\n  %s: %s\n", e->d_name, llmh_last_error());
        CU_ASSERT_EQUAL(st, LLMH_OK);
        if (!m) continue;
        n++;
        const llmh_config *c = llmh_manifest_config(m);
        char real[PATH_MAX];
        if (realpath(c->model.path, real) && !strncmp(real, shared_real, strlen(shared_real))) {
            /* fixture models exist */
        } else if (c->model.url || c->model.n_files) {
            /* downloaded on first use (docs/models.md) */
        } else {
            fprintf(stderr, "\n  %s: model %s is not in ../shared/models and has no url\n", e->d_name, c->model.path);
            CU_FAIL("config points at a missing model");
        }
        if (c->sampler.n_chain == 1 && !strcmp(c->sampler.chain[0], "greedy")) (*greedy)++;
        llmh_manifest_free(m);
    }
    closedir(d);
    return n;
}

static void test_configs_parse(void) {
    char dir[PATH_MAX];
    char *shared = llmh_test_shared("models");
    char shared_real[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(shared, shared_real));
    free(shared);
    int greedy = 0;
    snprintf(dir, sizeof dir, "%s/configs", LLMH_SOURCE_DIR);
    CU_ASSERT(check_config_dir(dir, shared_real, &greedy) >= 9);
    CU_ASSERT(greedy >= 1);
    snprintf(dir, sizeof dir, "%s/configs/models", LLMH_SOURCE_DIR);
    CU_ASSERT(check_config_dir(dir, shared_real, &greedy) >= 10); /* the catalog of real models */
}

int main(void) {
    static const llmh_test_case errors[] = {
        {"syntax error", test_syntax_error},
        {"unknown key with suggestion", test_unknown_key_suggestion},
        {"unknown table", test_unknown_table},
        {"wrong type", test_wrong_type},
        {"bad range", test_bad_range},
        {"missing model.path", test_missing_path},
        {"include cycle", test_include_cycle},
        {"include missing or mistyped", test_include_missing},
        {"error inside an included file", test_error_in_included_file},
        {"include depth limit", test_include_depth},
        {"duplicate key", test_duplicate_key},
        {"adapter errors", test_adapter_errors},
        {"sampler chain and path arrays", test_chain_errors},
        {"open table errors", test_open_table_errors},
        {NULL, NULL},
    };
    static const llmh_test_case good[] = {
        {"defaults", test_defaults},
        {"every key", test_full_manifest},
        {"include with override and relative paths", test_include_override},
        {"where() in option tables", test_where_options},
        {"--set", test_set},
        {"parse from memory", test_parse_memory},
        {"dump -> parse round trip", test_dump_round_trip},
        {"configs/ parse", test_configs_parse},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {
        {"manifest errors", errors, suite_init, suite_cleanup},
        {"manifest", good, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}

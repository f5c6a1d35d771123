/* test-fabric-ops.c — the memory fabric's user-facing tools (docs/routers.md):
 *  - the GGUF writer: every value type and nested arrays read back by the
 *    gguf format plugin exactly; invalid input refused, naming the key or
 *    tensor; a failed write leaves no file behind;
 *  - `llmhost export-lora`: the merged model equals the unmerged fabric with
 *    the same adapter (every logit within 1e-3, prompt and greedy steps) for
 *    qwen2-tiny f32 + lora-a and stories260K + tim; the written GGUF has the
 *    base model's metadata exactly, untouched tensors byte for byte; the PEFT
 *    form merges to the same bytes as the GGUF form; quantized bases keep
 *    their type (or take --type);
 *  - the namespace router (requests by namespace, [router] default, errors)
 *    and the gated router (route_tokens arithmetic, threshold, hard, errors);
 *  - `llmhost lora-gate`: gate tensors in the documented layout; constant
 *    gates through the gated router equal the plain adapter (gate 1), the
 *    adapter at scale 0.5 (gate 1/2) and the base model (gate under the
 *    threshold); learned gates turn Lily into Tim in a story about a girl and
 *    leave a story about a dog to the base model;
 *  - the chat's /adapter commands, piped into `llmhost chat`. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmh-gguf.h"
#include "model-fixture.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */
/* ------------------------------------------------------------------------ */
static char g_tmp[256];

static const char *host_bin(void) {
    const char *e = getenv("LLMH_TEST_LLMHOST");
    return e && *e ? e : LLMH_HOST_BIN;
}

static char *tmp_path(const char *name) {
    size_t n = strlen(g_tmp) + strlen(name) + 2;
    char *p = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    snprintf(p, n, "%s/%s", g_tmp, name);
    return p;
}

/* Run `llmhost ARGS` with stdin from `in` (or /dev/null), stdout+stderr into
 * *out (malloc'd). Returns the exit status. */
static int run_host(const char *args, const char *in, char **out) {
    char *log = tmp_path("cmd.log");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' > '%s' 2>&1", host_bin(), args, in ? in : "/dev/null", log);
    int rc = system(cmd);
    *out = llmh_test_read_file(log, NULL);
    if (!*out) *out = strdup("");
    unlink(log);
    free(log);
    int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (code != 0) fprintf(stderr, "  `llmhost %s` exited %d:\n%s\n", args, code, *out);
    return code;
}

/* A manifest for the model at `abs_path` (greedy, 2 threads, a 128-token
 * f32 KV cache) plus `extra`. The f32 cache matters for merged-vs-unmerged
 * comparisons: with an f16 cache, attention rounds q, K, V and the
 * probabilities to f16, and stories260K is ill-conditioned enough that
 * last-bit differences of W' x against W x + s B A x flip those roundings
 * (docs/memory-fabric.md, "Accuracy"). */
static char *write_manifest_kv(const char *name, const char *abs_path, const char *extra, const char *kv) {
    char text[8192];
    snprintf(text, sizeof text,
             "[model]\npath = \"%s\"\ncontext = 128\nkv_type = \"%s\"\n[backend]\nplugin = \"cpu\"\nthreads = 2\n"
             "[sampler]\nchain = [\"greedy\"]\n%s\n",
             abs_path, kv, extra ? extra : "");
    char *p = tmp_path(name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static char *write_manifest(const char *name, const char *abs_path, const char *extra) {
    return write_manifest_kv(name, abs_path, extra, "f32");
}

static int open_manifest(fixture_model *fm, const char *manifest_path) {
    memset(fm, 0, sizeof *fm);
    llmh_status st = llmh_manifest_load(manifest_path, &fm->manifest);
    if (!st) {
        llmh_model_params mp = {NULL, fm->manifest};
        st = llmh_model_load(&mp, &fm->model);
    }
    if (!st) st = llmh_session_create(fm->model, NULL, &fm->session);
    if (st) {
        fprintf(stderr, "opening %s: %s\n", manifest_path, llmh_last_error());
        fixture_close(fm);
        return -1;
    }
    return 0;
}

/* Evaluate the same tokens on two sessions: the prompt, then `steps` greedy
 * tokens (taken from a); returns the largest |logit difference| seen. */
static double compare_sessions(llmh_session *a, llmh_session *b, int64_t n_vocab, const llmh_token *prompt, size_t n,
                               int steps) {
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(a, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(b, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(a, prompt, n), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(b, prompt, n), LLMH_OK);
    double worst = 0;
    for (int s = 0;; s++) {
        const float *la = llmh_session_logits(a), *lb = llmh_session_logits(b);
        for (int64_t i = 0; i < n_vocab; i++) {
            double d = fabs((double)la[i] - lb[i]);
            if (!(d <= worst)) worst = d; /* NaN counts as a failure too */
        }
        if (s == steps) break;
        llmh_token t = fixture_argmax(la, n_vocab);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(a, &t, 1), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(b, &t, 1), LLMH_OK);
    }
    return worst;
}

/* The gguf format plugin, opened through a registry. */
typedef struct gguf_file {
    llmh_registry *reg;
    llmh_plugin *p;
    const llmh_format_iface *fi;
    llmh_model_file *mf;
    llmh_kv_list meta;
    const llmh_tensor_info *t;
    size_t nt;
} gguf_file;

static int gguf_open(gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    if (llmh_registry_create(&g->reg) || llmh_registry_scan(g->reg) ||
        llmh_registry_get(g->reg, LLMH_PLUGIN_FORMAT, "gguf", &g->p))
        return -1;
    g->fi = llmh_plugin_iface(g->p);
    if (g->fi->open(llmh_plugin_state(g->p), path, NULL, &g->mf)) {
        fprintf(stderr, "gguf open %s: %s\n", path, llmh_last_error());
        return -1;
    }
    if (g->fi->get_metadata(g->mf, &g->meta) || g->fi->get_tensors(g->mf, &g->t, &g->nt)) return -1;
    return 0;
}

static void gguf_close(gguf_file *g) {
    if (g->mf) g->fi->close(g->mf);
    if (g->p) llmh_plugin_release(g->p);
    llmh_registry_free(g->reg);
    memset(g, 0, sizeof *g);
}

static bool value_eq(const llmh_value *a, const llmh_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case LLMH_V_U8: case LLMH_V_U16: case LLMH_V_U32: case LLMH_V_U64: return a->v.u == b->v.u;
    case LLMH_V_I8: case LLMH_V_I16: case LLMH_V_I32: case LLMH_V_I64: return a->v.i == b->v.i;
    case LLMH_V_BOOL: return a->v.b == b->v.b;
    case LLMH_V_F32: case LLMH_V_F64: return memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
    case LLMH_V_STRING: return a->v.s.len == b->v.s.len && !memcmp(a->v.s.ptr, b->v.s.ptr, (size_t)a->v.s.len);
    case LLMH_V_ARRAY:
        if (a->v.arr.elem_type != b->v.arr.elem_type || a->v.arr.n != b->v.arr.n) return false;
        for (uint64_t i = 0; i < a->v.arr.n; i++)
            if (!value_eq(&a->v.arr.items[i], &b->v.arr.items[i])) return false;
        return true;
    }
    return false;
}

/* Same keys in the same order with equal values (llmh.* keys aside). */
static void check_same_metadata(const llmh_kv_list *a, const llmh_kv_list *b) {
    size_t i = 0, j = 0, checked = 0;
    for (;;) {
        while (i < a->n && !strncmp(a->items[i].key, "llmh.", 5)) i++;
        while (j < b->n && !strncmp(b->items[j].key, "llmh.", 5)) j++;
        if (i == a->n || j == b->n) break;
        if (strcmp(a->items[i].key, b->items[j].key) || !value_eq(&a->items[i].value, &b->items[j].value)) {
            fprintf(stderr, "  metadata differs at key '%s' / '%s'\n", a->items[i].key, b->items[j].key);
            CU_FAIL("metadata differs");
            return;
        }
        i++, j++, checked++;
    }
    CU_ASSERT_EQUAL(i, a->n);
    CU_ASSERT_EQUAL(j, b->n);
    CU_ASSERT(checked > 0);
}

/* ------------------------------------------------------------------------ */
/* GGUF writer                                                                */
/* ------------------------------------------------------------------------ */
static llmh_status fill_q8(void *user, size_t index, const llmh_gguf_tensor *t, void *dst, uint64_t size) {
    const float *src = user;
    (void)index;
    CU_ASSERT_EQUAL(size, llmh_gguf_tensor_size(t->type, t->n_dims, t->ne));
    return llmh_quantize(LLMH_DTYPE_Q8_0, src, dst, 64);
}

static void test_gguf_roundtrip(void) {
    llmh_value strs[3], ints[2], inner_a[2], inner_b[1], nested[2];
    strs[0] = (llmh_value){.type = LLMH_V_STRING, .v.s = {"a", 1}};
    strs[1] = (llmh_value){.type = LLMH_V_STRING, .v.s = {"", 0}};
    strs[2] = (llmh_value){.type = LLMH_V_STRING, .v.s = {"x\0y", 3}};
    ints[0] = (llmh_value){.type = LLMH_V_I32, .v.i = -7};
    ints[1] = (llmh_value){.type = LLMH_V_I32, .v.i = 2147483647};
    inner_a[0] = (llmh_value){.type = LLMH_V_U8, .v.u = 1};
    inner_a[1] = (llmh_value){.type = LLMH_V_U8, .v.u = 255};
    inner_b[0] = (llmh_value){.type = LLMH_V_U8, .v.u = 9};
    nested[0] = (llmh_value){.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_U8, 2, inner_a}};
    nested[1] = (llmh_value){.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_U8, 1, inner_b}};
    llmh_kv kv[] = {
        {"general.architecture", {.type = LLMH_V_STRING, .v.s = {"llama", 5}}},
        {"t.u8", {.type = LLMH_V_U8, .v.u = 200}},
        {"t.i8", {.type = LLMH_V_I8, .v.i = -100}},
        {"t.u16", {.type = LLMH_V_U16, .v.u = 65535}},
        {"t.i16", {.type = LLMH_V_I16, .v.i = -32768}},
        {"t.u32", {.type = LLMH_V_U32, .v.u = 4000000000u}},
        {"t.i32", {.type = LLMH_V_I32, .v.i = -2000000000}},
        {"t.f32", {.type = LLMH_V_F32, .v.f = (double)0.1f}},
        {"t.bool", {.type = LLMH_V_BOOL, .v.b = 1}},
        {"t.u64", {.type = LLMH_V_U64, .v.u = UINT64_MAX}},
        {"t.i64", {.type = LLMH_V_I64, .v.i = INT64_MIN}},
        {"t.f64", {.type = LLMH_V_F64, .v.f = 1.0 / 3.0}},
        {"t.strs", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_STRING, 3, strs}}},
        {"t.ints", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_I32, 2, ints}}},
        {"t.nested", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_ARRAY, 2, nested}}},
        {"t.empty", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_F32, 0, NULL}}},
        {"llmh.source_format", {.type = LLMH_V_STRING, .v.s = {"x", 1}}}, /* never written */
    };
    size_t n_kv = sizeof kv / sizeof kv[0];
    float f32[6] = {1, 2, 3, 4, 5, 6};
    uint16_t f16[3] = {llmh_fp32_to_fp16(1.5f), llmh_fp32_to_fp16(-2.0f), llmh_fp32_to_fp16(0.25f)};
    float q8src[64];
    for (int i = 0; i < 64; i++) q8src[i] = sinf((float)i);
    llmh_gguf_tensor t[] = {
        {"a.weight", LLMH_DTYPE_F32, 2, {3, 2, 1, 1}, f32},
        {"b.q8", LLMH_DTYPE_Q8_0, 2, {32, 2, 1, 1}, NULL},
        {"c.f16", LLMH_DTYPE_F16, 1, {3, 1, 1, 1}, f16},
    };
    char *path = tmp_path("types.gguf");
    llmh_gguf_write_params wp = {kv, n_kv, t, 3, fill_q8, q8src, 64};
    llmh_status st = llmh_gguf_write(path, &wp);
    if (st) fprintf(stderr, "gguf write: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL_FATAL(st, LLMH_OK);
    gguf_file g;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&g, path), 0);
    llmh_kv_list want = {kv, n_kv - 1};
    check_same_metadata(&want, &g.meta);
    /* the plugin adds llmh.source_format = "gguf": the one from the input was not written */
    const llmh_value *sf = llmh_kv_find(&g.meta, "llmh.source_format");
    CU_ASSERT(sf && sf->v.s.len == 4 && !memcmp(sf->v.s.ptr, "gguf", 4));
    CU_ASSERT_EQUAL_FATAL(g.nt, 3);
    CU_ASSERT_STRING_EQUAL(g.t[0].name, "a.weight");
    CU_ASSERT_EQUAL(g.t[0].size, sizeof f32);
    CU_ASSERT(!memcmp(g.t[0].data, f32, sizeof f32));
    CU_ASSERT_EQUAL(g.t[1].type, LLMH_DTYPE_Q8_0);
    CU_ASSERT_EQUAL(g.t[1].ne[1], 2);
    uint8_t q8[68];
    CU_ASSERT_EQUAL(llmh_quantize(LLMH_DTYPE_Q8_0, q8src, q8, 64), LLMH_OK);
    CU_ASSERT(g.t[1].size == sizeof q8 && !memcmp(g.t[1].data, q8, sizeof q8));
    CU_ASSERT(!memcmp(g.t[2].data, f16, sizeof f16));
    /* the alignment: every tensor's file offset is a multiple of 64 */
    for (size_t i = 0; i < g.nt; i++) CU_ASSERT_EQUAL(g.t[i].file_offset % 64, 0);
    gguf_close(&g);
    unlink(path);
    free(path);
}

static llmh_status fill_fail(void *user, size_t index, const llmh_gguf_tensor *t, void *dst, uint64_t size) {
    (void)user, (void)index, (void)dst, (void)size;
    llmh_set_error("test: cannot produce '%s'", t->name);
    return LLMH_ERR_IO;
}

static size_t count_files(void) {
    DIR *d = opendir(g_tmp);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void test_gguf_errors(void) {
    float f[32] = {0};
    llmh_kv dup[] = {{"k", {.type = LLMH_V_U32, .v.u = 1}}, {"k", {.type = LLMH_V_U32, .v.u = 2}}};
    llmh_value bad_items[1] = {{.type = LLMH_V_I32, .v.i = 1}};
    llmh_kv mixed[] = {{"arr", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_U8, 1, bad_items}}}};
    llmh_kv range[] = {{"small", {.type = LLMH_V_U8, .v.u = 256}}};
    llmh_kv align[] = {{"general.alignment", {.type = LLMH_V_U32, .v.u = 24}}};
    llmh_gguf_tensor ok = {"t", LLMH_DTYPE_F32, 1, {32, 1, 1, 1}, f};
    llmh_gguf_tensor twice[2] = {ok, ok};
    llmh_gguf_tensor q31 = {"q", LLMH_DTYPE_Q8_0, 1, {31, 1, 1, 1}, f};
    llmh_gguf_tensor nodata = {"nd", LLMH_DTYPE_F32, 1, {32, 1, 1, 1}, NULL};
    struct {
        llmh_gguf_write_params p;
        const char *needle;
    } cases[] = {
        {{dup, 2, NULL, 0, NULL, NULL, 0}, "duplicate key 'k'"},
        {{mixed, 1, NULL, 0, NULL, NULL, 0}, "key 'arr': array item 0"},
        {{range, 1, NULL, 0, NULL, NULL, 0}, "key 'small'"},
        {{align, 1, NULL, 0, NULL, NULL, 0}, "general.alignment"},
        {{NULL, 0, twice, 2, NULL, NULL, 0}, "duplicate tensor name 't'"},
        {{NULL, 0, &q31, 1, NULL, NULL, 0}, "tensor 'q'"},
        {{NULL, 0, &nodata, 1, NULL, NULL, 0}, "tensor 'nd' has no data"},
        {{NULL, 0, &nodata, 1, fill_fail, NULL, 0}, "cannot produce 'nd'"},
        {{NULL, 0, &ok, 1, NULL, NULL, 48}, "alignment 48"},
    };
    char *path = tmp_path("bad.gguf");
    size_t before = count_files();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llmh_status st = llmh_gguf_write(path, &cases[i].p);
        CU_ASSERT(st != LLMH_OK);
        const char *msg = llmh_last_error();
        if (!strstr(msg, cases[i].needle)) fprintf(stderr, "  case %zu: message '%s' lacks '%s'\n", i, msg, cases[i].needle);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, cases[i].needle));
        struct stat sb;
        CU_ASSERT(stat(path, &sb) != 0); /* nothing written, no partial file */
        CU_ASSERT_EQUAL(count_files(), before); /* and no temporary left */
    }
    free(path);
}

/* ------------------------------------------------------------------------ */
/* export-lora                                                                */
/* ------------------------------------------------------------------------ */
/* Prompt tokens of case `case_no` of a reference file; NULL past the last case. */
static llmh_token *ref_prompt(const char *ref_name, int case_no, size_t *n) {
    cJSON *ref = fixture_reference(ref_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "cases"), case_no);
    if (!c) {
        cJSON_Delete(ref);
        return NULL;
    }
    cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
    int np = cJSON_GetArraySize(pt);
    llmh_token *toks = malloc((size_t)np * sizeof *toks);
    CU_ASSERT_PTR_NOT_NULL_FATAL(toks);
    for (int i = 0; i < np; i++) toks[i] = cJSON_GetArrayItem(pt, i)->valueint;
    *n = (size_t)np;
    cJSON_Delete(ref);
    return toks;
}

/* Merge `adapter_rel` (scale 1) into `model_rel` with export-lora, then check
 * merged == unmerged on every case of `ref_name` and the file round trip. */
static void check_export(const char *model_rel, const char *adapter_rel, const char *ref_name) {
    char *model = llmh_test_shared(model_rel), *adapter = llmh_test_shared(adapter_rel);
    char *base_toml = write_manifest("base.toml", model, NULL);
    char *out = tmp_path("merged.gguf");
    char args[4096], *log = NULL;
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'a=%s' -o '%s'", base_toml, adapter, out);
    CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
    free(log);

    /* unmerged: the base with the adapter through the fabric; merged: no adapter */
    char extra[4096];
    snprintf(extra, sizeof extra, "[[adapter]]\nname = \"a\"\npath = \"%s\"\n", adapter);
    char *fabric_toml = write_manifest("fabric.toml", model, extra);
    char *merged_toml = write_manifest("merged.toml", out, NULL);
    fixture_model fa, fb;
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fa, fabric_toml), 0);
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fb, merged_toml), 0);
    int64_t n_vocab = llmh_model_describe(fa.model)->n_vocab;
    int cases = 0;
    for (int c = 0;; c++) {
        size_t n = 0;
        llmh_token *toks = ref_prompt(ref_name, c, &n);
        if (!toks) break;
        cases++;
        double d = compare_sessions(fa.session, fb.session, n_vocab, toks, n, 8);
        fprintf(stderr, "  %s + %s: merged vs unmerged, case %d: max |logit diff| %.2e\n", model_rel, adapter_rel, c, d);
        CU_ASSERT(d <= 1e-3);
        free(toks);
    }
    CU_ASSERT(cases >= 2);
    /* the base without the adapter is far from both: the merge did something */
    llmh_session_clear_adapters(fa.session);
    size_t n = 0;
    llmh_token *toks = ref_prompt(ref_name, 0, &n);
    double d = compare_sessions(fa.session, fb.session, n_vocab, toks, n, 0);
    CU_ASSERT(d > 1e-2);
    free(toks);
    fixture_close(&fa);
    fixture_close(&fb);

    /* round trip: identical metadata; untouched tensors byte for byte */
    gguf_file gb, gm;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&gb, model), 0);
    CU_ASSERT_EQUAL_FATAL(gguf_open(&gm, out), 0);
    check_same_metadata(&gb.meta, &gm.meta);
    CU_ASSERT_EQUAL_FATAL(gb.nt, gm.nt);
    size_t same = 0, merged = 0;
    for (size_t i = 0; i < gb.nt; i++) {
        CU_ASSERT_STRING_EQUAL(gb.t[i].name, gm.t[i].name);
        CU_ASSERT_EQUAL(gb.t[i].type, gm.t[i].type);
        CU_ASSERT(!memcmp(gb.t[i].ne, gm.t[i].ne, sizeof gb.t[i].ne));
        CU_ASSERT_EQUAL_FATAL(gb.t[i].size, gm.t[i].size);
        if (!memcmp(gb.t[i].data, gm.t[i].data, (size_t)gb.t[i].size)) same++;
        else merged++;
    }
    fprintf(stderr, "  %s: %zu tensors copied, %zu merged\n", model_rel, same, merged);
    CU_ASSERT(merged > 0 && same > 0);
    gguf_close(&gb);
    gguf_close(&gm);
    unlink(out);
    unlink(base_toml);
    unlink(fabric_toml);
    unlink(merged_toml);
    free(out);
    free(base_toml);
    free(fabric_toml);
    free(merged_toml);
    free(model);
    free(adapter);
}

static void test_export_qwen2(void) {
    check_export("models/qwen2-tiny-f32.gguf", "models/adapters/qwen2-tiny-lora-a.gguf", "ref-qwen2-tiny-f32-lora-a");
}

static void test_export_stories(void) {
    check_export("models/stories260K.gguf", "models/adapters/stories260K-lora-tim.gguf", "ref-stories260K-lora-tim");
}

/* The PEFT form of lora-a merges to exactly the bytes of its GGUF form;
 * scales and several adapters combine; bad input is refused. */
static void test_export_forms(void) {
    char *model = llmh_test_shared("models/qwen2-tiny-f32.gguf");
    char *ga = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *pa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a-peft");
    char *gb = llmh_test_shared("models/adapters/qwen2-tiny-lora-b.gguf");
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *toml = write_manifest("base.toml", model, NULL);
    char *o1 = tmp_path("g.gguf"), *o2 = tmp_path("p.gguf");
    char args[4096], *log = NULL;
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'a=%s:0.7' --adapter 'b=%s:1.3' -o '%s'", toml, ga, gb, o1);
    CU_ASSERT_EQUAL(run_host(args, NULL, &log), 0);
    free(log);
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'a=%s:0.7' --adapter 'b=%s:1.3' -o '%s'", toml, pa, gb, o2);
    CU_ASSERT_EQUAL(run_host(args, NULL, &log), 0);
    free(log);
    size_t l1 = 0, l2 = 0;
    char *b1 = llmh_test_read_file(o1, &l1), *b2 = llmh_test_read_file(o2, &l2);
    CU_ASSERT(b1 && b2 && l1 == l2 && !memcmp(b1, b2, l1));
    free(b2);
    /* the manifest's [[adapter]] tables (with their scales) count as well */
    char extra[4096];
    snprintf(extra, sizeof extra, "[[adapter]]\nname = \"a\"\npath = \"%s\"\nscale = 0.7\n", ga);
    char *with = write_manifest("with.toml", model, extra);
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'b=%s:1.3' -o '%s'", with, gb, o2);
    CU_ASSERT_EQUAL(run_host(args, NULL, &log), 0);
    free(log);
    b2 = llmh_test_read_file(o2, &l2);
    CU_ASSERT(b1 && b2 && l1 == l2 && !memcmp(b1, b2, l1));
    free(b1);
    free(b2);
    unlink(with);
    free(with);
    /* the merged 0.7/1.3 model reproduces llama.cpp's reference for both
     * adapters (with llama.cpp's f16 KV cache) */
    char *mt = write_manifest_kv("m.toml", o1, NULL, "f16");
    fixture_model fm;
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fm, mt), 0);
    cJSON *ref = fixture_reference("ref-qwen2-tiny-f32-lora-a0.7-b1.3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        llmh_token toks[256];
        int np = cJSON_GetArraySize(pt);
        CU_ASSERT_FATAL(np > 0 && np <= 256);
        for (int i = 0; i < np; i++) toks[i] = cJSON_GetArrayItem(pt, i)->valueint;
        CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(fm.session, 0), LLMH_OK);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(fm.session, toks, (size_t)np), LLMH_OK);
        const float *lg = llmh_session_logits(fm.session);
        double worst = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "top10")) {
            double dd = fabs((double)lg[cJSON_GetArrayItem(e, 0)->valueint] - cJSON_GetArrayItem(e, 1)->valuedouble);
            if (dd > worst) worst = dd;
        }
        fprintf(stderr, "  merged lora-a 0.7 + lora-b 1.3 vs llama.cpp --lora-scaled: max top-10 diff %.2e\n", worst);
        CU_ASSERT(worst <= 1e-3);
    }
    cJSON_Delete(ref);
    fixture_close(&fm);
    /* errors: an adapter of another architecture, a missing file, no adapters, a bad scale */
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 't=%s' -o '%s'", toml, tim, o2);
    CU_ASSERT_NOT_EQUAL(run_host(args, NULL, &log), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "general.architecture"));
    free(log);
    snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'x=/nonexistent/a.gguf' -o '%s'", toml, o2);
    CU_ASSERT_NOT_EQUAL(run_host(args, NULL, &log), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/nonexistent/a.gguf"));
    free(log);
    snprintf(args, sizeof args, "export-lora --config '%s' -o '%s'", toml, o2);
    CU_ASSERT_NOT_EQUAL(run_host(args, NULL, &log), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "no adapters"));
    free(log);
    unlink(o1);
    unlink(o2);
    unlink(mt);
    unlink(toml);
    free(mt);
    free(o1);
    free(o2);
    free(toml);
    free(model);
    free(ga);
    free(pa);
    free(gb);
    free(tim);
}

/* Quantized bases: merged tensors are re-quantized to their type (Q8_0 here),
 * or written as --type says; the result loads and runs. */
static void test_export_quantized(void) {
    char *model = llmh_test_shared("models/qwen2-tiny-q8_0.gguf");
    char *ga = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *toml = write_manifest("base.toml", model, NULL);
    char *o = tmp_path("q.gguf");
    for (int v = 0; v < 2; v++) {
        char args[4096], *log = NULL;
        snprintf(args, sizeof args, "export-lora --config '%s' --adapter 'a=%s' -o '%s'%s", toml, ga, o,
                 v ? " --type f16" : "");
        CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
        free(log);
        gguf_file gb, gm;
        CU_ASSERT_EQUAL_FATAL(gguf_open(&gb, model), 0);
        CU_ASSERT_EQUAL_FATAL(gguf_open(&gm, o), 0);
        check_same_metadata(&gb.meta, &gm.meta);
        size_t f16 = 0;
        for (size_t i = 0; i < gb.nt && i < gm.nt; i++) {
            /* lora-a adapts q, k, v, o, gate, up and down of both layers */
            const char *nm = gb.t[i].name;
            bool adapted = !strncmp(nm, "blk.", 4) && strstr(nm, ".weight") && !strstr(nm, "norm");
            if (adapted && v) {
                CU_ASSERT_EQUAL(gm.t[i].type, LLMH_DTYPE_F16);
                f16++;
            } else {
                CU_ASSERT_EQUAL(gm.t[i].type, gb.t[i].type);
            }
        }
        CU_ASSERT(v == 0 || f16 == 14);
        gguf_close(&gb);
        gguf_close(&gm);
        char *mt = write_manifest("m.toml", o, NULL);
        fixture_model fm;
        CU_ASSERT_EQUAL_FATAL(open_manifest(&fm, mt), 0);
        llmh_token t[3] = {785, 6722, 315};
        CU_ASSERT_EQUAL(llmh_session_eval(fm.session, t, 3), LLMH_OK);
        fixture_close(&fm);
        unlink(mt);
        free(mt);
    }
    unlink(o);
    unlink(toml);
    free(o);
    free(toml);
    free(model);
    free(ga);
}

/* ------------------------------------------------------------------------ */
/* routers                                                                    */
/* ------------------------------------------------------------------------ */
static void logits_of(llmh_session *s, const llmh_token *t, size_t n, float *out, int64_t n_vocab) {
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(s, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(s, t, n), LLMH_OK);
    memcpy(out, llmh_session_logits(s), (size_t)n_vocab * sizeof *out);
}

static void test_namespace_router(void) {
    char *a = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    char *b = llmh_test_shared("models/adapters/qwen2-tiny-lora-b.gguf");
    char extra[4096];
    snprintf(extra, sizeof extra,
             "[router]\nplugin = \"namespace\"\n[router.options]\ndefault = [\"beta\"]\n"
             "[[adapter]]\nname = \"a\"\npath = \"%s\"\nnamespace = \"alpha\"\n"
             "[[adapter]]\nname = \"b\"\npath = \"%s\"\nnamespace = \"beta\"\n",
             a, b);
    fixture_model fm;
    CU_ASSERT_EQUAL_FATAL(fixture_open(&fm, "models/qwen2-tiny-f32.gguf", NULL, extra), 0);
    int64_t nv = llmh_model_describe(fm.model)->n_vocab;
    float *x = malloc((size_t)nv * sizeof *x), *y = malloc((size_t)nv * sizeof *y);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x && y);
    llmh_token t[5] = {785, 6722, 315, 9625, 374}; /* "The capital of France is" */
    /* a new session gets the [router] default: namespace beta = adapter b */
    logits_of(fm.session, t, 5, x, nv);
    const char *nb = "b";
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, &nb, NULL, 1), LLMH_OK);
    logits_of(fm.session, t, 5, y, nv);
    CU_ASSERT(!memcmp(x, y, (size_t)nv * sizeof *x));
    /* namespace alpha = adapter a, which reproduces llama.cpp's lora-a reference */
    const char *alpha = "alpha";
    llmh_adapter_request rq = {NULL, NULL, 0, &alpha, 1};
    CU_ASSERT_EQUAL_FATAL(llmh_session_select_adapters(fm.session, &rq), LLMH_OK);
    logits_of(fm.session, t, 5, x, nv);
    const char *na = "a";
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, &na, NULL, 1), LLMH_OK);
    logits_of(fm.session, t, 5, y, nv);
    CU_ASSERT(!memcmp(x, y, (size_t)nv * sizeof *x));
    cJSON *ref = fixture_reference("ref-qwen2-tiny-f32-lora-a");
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        cJSON *pt = cJSON_GetObjectItem(c, "prompt_tokens");
        if (cJSON_GetArraySize(pt) != 5 || cJSON_GetArrayItem(pt, 1)->valueint != 6722) continue;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "top10"))
            CU_ASSERT(fabs((double)x[cJSON_GetArrayItem(e, 0)->valueint] - cJSON_GetArrayItem(e, 1)->valuedouble) <= 1e-3);
    }
    cJSON_Delete(ref);
    /* both namespaces = both adapters; a named adapter's scale applies on top of a namespace */
    const char *both_ns[2] = {"alpha", "beta"};
    rq = (llmh_adapter_request){NULL, NULL, 0, both_ns, 2};
    CU_ASSERT_EQUAL_FATAL(llmh_session_select_adapters(fm.session, &rq), LLMH_OK);
    logits_of(fm.session, t, 5, x, nv);
    const char *both[2] = {"a", "b"};
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, both, NULL, 2), LLMH_OK);
    logits_of(fm.session, t, 5, y, nv);
    CU_ASSERT(!memcmp(x, y, (size_t)nv * sizeof *x));
    float half = 0.5f, sc[2] = {0.5f, 1.0f};
    rq = (llmh_adapter_request){&na, &half, 1, &both_ns[1], 1};
    CU_ASSERT_EQUAL_FATAL(llmh_session_select_adapters(fm.session, &rq), LLMH_OK);
    logits_of(fm.session, t, 5, x, nv);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fm.session, both, sc, 2), LLMH_OK);
    logits_of(fm.session, t, 5, y, nv);
    CU_ASSERT(!memcmp(x, y, (size_t)nv * sizeof *x));
    /* an empty namespace is an error naming it, and the session keeps its set */
    const char *nope = "gamma";
    rq = (llmh_adapter_request){NULL, NULL, 0, &nope, 1};
    CU_ASSERT_EQUAL(llmh_session_select_adapters(fm.session, &rq), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'gamma'"));
    logits_of(fm.session, t, 5, x, nv);
    CU_ASSERT(!memcmp(x, y, (size_t)nv * sizeof *x));
    free(x);
    free(y);
    fixture_close(&fm);
    free(a);
    free(b);
}

/* A router plugin's iface and state, from the build's plugin directory. */
static const llmh_router_iface *router_open(const char *name, llmh_registry **reg, llmh_plugin **p) {
    CU_ASSERT_EQUAL_FATAL(llmh_registry_create(reg), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_scan(*reg), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_registry_get(*reg, LLMH_PLUGIN_ROUTER, name, p), LLMH_OK);
    return llmh_plugin_iface(*p);
}

static void test_gated_router_math(void) {
    llmh_registry *reg;
    llmh_plugin *p;
    const llmh_router_iface *ri = router_open("gated", &reg, &p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ri->route_tokens);
    enum { DIM = 5, NL = 3, NT = 4 };
    float w[NL * DIM], bias[NL], h[NT * DIM];
    uint64_t rs = 42;
    for (int i = 0; i < NL * DIM; i++) w[i] = llmh_test_randf(&rs);
    for (int i = 0; i < NL; i++) bias[i] = llmh_test_randf(&rs);
    for (int i = 0; i < NT * DIM; i++) h[i] = 2 * llmh_test_randf(&rs);
    llmh_adapter_desc ad[2] = {
        {sizeof(llmh_adapter_desc), "g", NULL, 1, 8, 4, NL, DIM, w, bias},
        {sizeof(llmh_adapter_desc), "plain", NULL, 1, 8, 4, 0, 0, NULL, NULL},
    };
    float req[2] = {0.5f, 0.7f}, out[NT * 2];
    for (int mode = 0; mode < 3; mode++) {
        llmh_kv kv[2];
        size_t nkv = 0;
        if (mode >= 1) kv[nkv++] = (llmh_kv){"threshold", {.type = LLMH_V_F64, .v.f = 0.5}};
        if (mode == 2) kv[nkv++] = (llmh_kv){"hard", {.type = LLMH_V_BOOL, .v.b = 1}};
        llmh_kv_list params = {kv, nkv};
        llmh_router *r = NULL;
        CU_ASSERT_EQUAL_FATAL(ri->create(llmh_plugin_state(p), &params, &r), LLMH_OK);
        int on = 0, off = 0;
        for (int layer = 0; layer < NL; layer++) {
            CU_ASSERT_EQUAL_FATAL(ri->route_tokens(r, layer, h, DIM, NT, ad, 2, req, out), LLMH_OK);
            for (int t = 0; t < NT; t++) {
                double z = bias[layer];
                for (int k = 0; k < DIM; k++) z += (double)w[layer * DIM + k] * h[t * DIM + k];
                double g = 1 / (1 + exp(-z));
                if (mode >= 1 && g < 0.5) g = 0;
                if (mode == 2 && g >= 0.5) g = 1;
                on += g > 0;
                off += g == 0;
                CU_ASSERT(fabs(out[t * 2] - 0.5 * g) <= 1e-6);
                CU_ASSERT_EQUAL(out[t * 2 + 1], 0.7f); /* no gate vectors: the request gate */
            }
        }
        if (mode >= 1) CU_ASSERT(on > 0 && off > 0); /* the random data exercises both sides */
        ri->destroy(r);
    }
    /* errors: a gate of the wrong width, a layer past the gates, bad params */
    llmh_router *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ri->create(llmh_plugin_state(p), NULL, &r), LLMH_OK);
    CU_ASSERT_NOT_EQUAL(ri->route_tokens(r, 0, h, DIM - 1, 1, ad, 1, req, out), LLMH_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'g'"));
    CU_ASSERT_NOT_EQUAL(ri->route_tokens(r, NL, h, DIM, 1, ad, 1, req, out), LLMH_OK);
    /* route(): static semantics; namespaces need the namespace router */
    float gates[2];
    const char *nm = "plain";
    float sc = 0.25f;
    llmh_route_request rr = {sizeof rr, &nm, &sc, 1, NULL, 0};
    CU_ASSERT_EQUAL(ri->route(r, &rr, ad, 2, gates), LLMH_OK);
    CU_ASSERT(gates[0] == 0.0f && gates[1] == 0.25f);
    const char *ns = "x";
    rr = (llmh_route_request){sizeof rr, NULL, NULL, 0, &ns, 1};
    CU_ASSERT_NOT_EQUAL(ri->route(r, &rr, ad, 2, gates), LLMH_OK);
    ri->destroy(r);
    llmh_kv badkv = {"threshold", {.type = LLMH_V_F64, .v.f = 1.5}};
    llmh_kv_list bad = {&badkv, 1};
    r = NULL;
    CU_ASSERT_EQUAL(ri->create(llmh_plugin_state(p), &bad, &r), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "threshold"));
    llmh_plugin_release(p);
    llmh_registry_free(reg);
}

static void test_namespace_router_errors(void) {
    llmh_registry *reg;
    llmh_plugin *p;
    const llmh_router_iface *ri = router_open("namespace", &reg, &p);
    llmh_value items[2] = {{.type = LLMH_V_STRING, .v.s = {"ok", 2}}, {.type = LLMH_V_I64, .v.i = 3}};
    llmh_kv kv = {"default", {.type = LLMH_V_ARRAY, .v.arr = {LLMH_V_STRING, 2, items}}};
    llmh_kv_list params = {&kv, 1};
    llmh_router *r = NULL;
    CU_ASSERT_EQUAL(ri->create(llmh_plugin_state(p), &params, &r), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "default"));
    kv.value = (llmh_value){.type = LLMH_V_STRING, .v.s = {"empty-ns", 8}};
    CU_ASSERT_EQUAL_FATAL(ri->create(llmh_plugin_state(p), &params, &r), LLMH_OK);
    llmh_adapter_desc ad[1] = {{sizeof(llmh_adapter_desc), "a", "full", 1, 8, 4, 0, 0, NULL, NULL}};
    float g[1];
    llmh_route_request rr = {sizeof rr, NULL, NULL, 0, NULL, 0};
    CU_ASSERT_EQUAL(ri->route(r, &rr, ad, 1, g), LLMH_ERR_NOT_FOUND); /* the default namespace is empty */
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'empty-ns'"));
    const char *nm = "zz";
    rr = (llmh_route_request){sizeof rr, &nm, NULL, 1, NULL, 0};
    CU_ASSERT_EQUAL(ri->route(r, &rr, ad, 1, g), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "'zz'"));
    const char *full = "full";
    rr = (llmh_route_request){sizeof rr, NULL, NULL, 0, &full, 1};
    CU_ASSERT_EQUAL(ri->route(r, &rr, ad, 1, g), LLMH_OK);
    CU_ASSERT_EQUAL(g[0], 1.0f);
    ri->destroy(r);
    llmh_plugin_release(p);
    llmh_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* lora-gate                                                                  */
/* ------------------------------------------------------------------------ */
static void test_lora_gate_bias(void) {
    char *model = llmh_test_shared("models/stories260K.gguf");
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *toml = write_manifest("s.toml", model, NULL);
    char *out = tmp_path("tim-gated.gguf"), *out2 = tmp_path("tim-gated2.gguf");
    char args[4096], *log = NULL;
    snprintf(args, sizeof args, "lora-gate --config '%s' --adapter '%s' --bias 3 -o '%s'", toml, tim, out);
    CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
    free(log);
    /* gating a gated file replaces its gate */
    snprintf(args, sizeof args, "lora-gate --config '%s' --adapter '%s' --bias -2.5 -o '%s'", toml, out, out2);
    CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
    free(log);
    gguf_file gi, go;
    CU_ASSERT_EQUAL_FATAL(gguf_open(&gi, tim), 0);
    CU_ASSERT_EQUAL_FATAL(gguf_open(&go, out2), 0);
    check_same_metadata(&gi.meta, &go.meta);
    CU_ASSERT_EQUAL_FATAL(go.nt, gi.nt + 2);
    for (size_t i = 0; i < gi.nt; i++) {
        CU_ASSERT_STRING_EQUAL(gi.t[i].name, go.t[i].name);
        CU_ASSERT(gi.t[i].size == go.t[i].size && !memcmp(gi.t[i].data, go.t[i].data, (size_t)gi.t[i].size));
    }
    const llmh_tensor_info *w = &go.t[gi.nt], *b = &go.t[gi.nt + 1];
    CU_ASSERT_STRING_EQUAL(w->name, "adapter.gate.weight");
    CU_ASSERT_STRING_EQUAL(b->name, "adapter.gate.bias");
    CU_ASSERT(w->type == LLMH_DTYPE_F32 && w->ne[0] == 64 && w->ne[1] == 5);
    CU_ASSERT(b->type == LLMH_DTYPE_F32 && b->ne[0] == 5 && b->n_dims == 1);
    const float *wf = w->data, *bf = b->data;
    for (int i = 0; i < 64 * 5; i++) CU_ASSERT_EQUAL(wf[i], 0.0f);
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(bf[i], -2.5f);
    gguf_close(&gi);
    gguf_close(&go);
    /* errors: neither mode, both modes, an adapter for another model */
    snprintf(args, sizeof args, "lora-gate --config '%s' --adapter '%s' -o '%s'", toml, tim, out);
    CU_ASSERT_EQUAL(run_host(args, NULL, &log), 2);
    free(log);
    char *qa = llmh_test_shared("models/adapters/qwen2-tiny-lora-a.gguf");
    snprintf(args, sizeof args, "lora-gate --config '%s' --adapter '%s' --bias 1 -o '%s'", toml, qa, out);
    CU_ASSERT_EQUAL(run_host(args, NULL, &log), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "qwen2-tiny-lora-a.gguf"));
    free(log);
    free(qa);
    unlink(out);
    unlink(out2);
    unlink(toml);
    free(out);
    free(out2);
    free(toml);
    free(model);
    free(tim);
}

/* Greedy text of `prompt` (BOS added as the tokenizer wants), n tokens. */
static char *greedy_text(llmh_model *m, llmh_session *s, const char *prompt, int n) {
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(m, &tk);
    llmh_token *toks = NULL, out[64];
    size_t np = 0;
    CU_ASSERT_EQUAL_FATAL(llmh_tokenize(m, prompt, strlen(prompt), ti->add_bos_default(tk) ? LLMH_ENCODE_ADD_BOS : 0,
                                        &toks, &np), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_truncate(s, 0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_eval(s, toks, np), LLMH_OK);
    free(toks);
    int64_t nv = llmh_model_describe(m)->n_vocab;
    CU_ASSERT_FATAL(n <= 64);
    for (int i = 0; i < n; i++) {
        out[i] = fixture_argmax(llmh_session_logits(s), nv);
        CU_ASSERT_EQUAL_FATAL(llmh_session_eval(s, &out[i], 1), LLMH_OK);
    }
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(llmh_detokenize(m, out, (size_t)n, 0, &text, &len), LLMH_OK);
    return text;
}

/* Constant gates from `lora-gate --bias` through the gated router: bias +30
 * (sigmoid = 1 in f32) is the plain adapter, bias 0 (gate 1/2) is the
 * adapter at scale 0.5, bias -30 under threshold 0.5 is the base model. */
static void test_gated_constant(void) {
    char *model = llmh_test_shared("models/stories260K.gguf");
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *toml = write_manifest("s.toml", model, NULL);
    const double biases[3] = {30, 0, -30};
    char *gated[3];
    for (int i = 0; i < 3; i++) {
        char nm[32], args[4096], *log = NULL;
        snprintf(nm, sizeof nm, "tim-b%d.gguf", i);
        gated[i] = tmp_path(nm);
        snprintf(args, sizeof args, "lora-gate --config '%s' --adapter '%s' --bias %g -o '%s'", toml, tim, biases[i],
                 gated[i]);
        CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
        free(log);
    }
    char extra[4096];
    snprintf(extra, sizeof extra,
             "[router]\nplugin = \"gated\"\n[router.options]\nthreshold = 0.5\n"
             "[[adapter]]\nname = \"on\"\npath = \"%s\"\n[[adapter]]\nname = \"half\"\npath = \"%s\"\n"
             "[[adapter]]\nname = \"off\"\npath = \"%s\"\n",
             gated[0], gated[1], gated[2]);
    char *gt = write_manifest("gated.toml", model, extra);
    snprintf(extra, sizeof extra, "[[adapter]]\nname = \"tim\"\npath = \"%s\"\n", tim);
    char *st = write_manifest("static.toml", model, extra);
    fixture_model fg, fs;
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fg, gt), 0);
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fs, st), 0);
    int64_t nv = llmh_model_describe(fg.model)->n_vocab;
    size_t n = 0;
    llmh_token *toks = ref_prompt("ref-stories260K-lora-tim", 0, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(toks);
    const char *on = "on", *half_nm = "half", *off = "off", *t = "tim";
    float half = 0.5f;
    /* gate 1 == the adapter */
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fg.session, &on, NULL, 1), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fs.session, &t, NULL, 1), LLMH_OK);
    double d = compare_sessions(fg.session, fs.session, nv, toks, n, 6);
    fprintf(stderr, "  gate sigmoid(30) vs the plain adapter: %.2e\n", d);
    CU_ASSERT(d <= 1e-5);
    /* gate 1/2 == scale 0.5 */
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fg.session, &half_nm, NULL, 1), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fs.session, &t, &half, 1), LLMH_OK);
    d = compare_sessions(fg.session, fs.session, nv, toks, n, 6);
    fprintf(stderr, "  gate sigmoid(0) vs the adapter at scale 0.5: %.2e\n", d);
    CU_ASSERT(d <= 1e-5);
    /* gate sigmoid(-30) < threshold: 0, the base model */
    CU_ASSERT_EQUAL_FATAL(llmh_session_set_adapters(fg.session, &off, NULL, 1), LLMH_OK);
    llmh_session_clear_adapters(fs.session);
    d = compare_sessions(fg.session, fs.session, nv, toks, n, 6);
    fprintf(stderr, "  gate under the threshold vs the base model: %.2e\n", d);
    CU_ASSERT(d <= 1e-5);
    free(toks);
    fixture_close(&fg);
    fixture_close(&fs);
    for (int i = 0; i < 3; i++) {
        unlink(gated[i]);
        free(gated[i]);
    }
    unlink(gt);
    unlink(st);
    unlink(toml);
    free(gt);
    free(st);
    free(toml);
    free(model);
    free(tim);
}

/* Learned gates: tim (Lily -> Tim, She -> He) is meant for stories about a
 * girl; on other stories it garbles the text. `lora-gate` learns from
 * base-model stories about Lily (data/tim-on.txt) and stories about dogs,
 * cats, the sun (data/tim-off.txt); through the gated router the heroine of
 * "Once upon a time" becomes Tim, while "There was a big dog" keeps the base
 * model's sentence (the plain adapter garbles it). */
static void test_gated_learned(void) {
    char *model = llmh_test_shared("models/stories260K.gguf");
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *toml = write_manifest("s.toml", model, NULL);
    char *out = tmp_path("tim-learned.gguf");
    char args[4096], *log = NULL;
    snprintf(args, sizeof args,
             "lora-gate --config '%s' --adapter '%s' --on '%s/tests/fabric-ops/data/tim-on.txt' "
             "--off '%s/tests/fabric-ops/data/tim-off.txt' -o '%s'",
             toml, tim, LLMH_SOURCE_DIR, LLMH_SOURCE_DIR, out);
    CU_ASSERT_EQUAL_FATAL(run_host(args, NULL, &log), 0);
    fprintf(stderr, "%s", log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "layer 4: training accuracy"));
    free(log);
    char extra[4096];
    snprintf(extra, sizeof extra, "[router]\nplugin = \"gated\"\n[[adapter]]\nname = \"tim\"\npath = \"%s\"\n", out);
    char *gt = write_manifest("gated.toml", model, extra);
    snprintf(extra, sizeof extra, "[[adapter]]\nname = \"tim\"\npath = \"%s\"\n", tim);
    char *st = write_manifest("static.toml", model, extra);
    fixture_model fg, fs;
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fg, gt), 0);
    CU_ASSERT_EQUAL_FATAL(open_manifest(&fs, st), 0);
    char *g_on = greedy_text(fg.model, fg.session, "Once upon a time", 12);
    char *g_off = greedy_text(fg.model, fg.session, "There was a big dog", 12);
    char *a_off = greedy_text(fs.model, fs.session, "There was a big dog", 12);
    llmh_session_clear_adapters(fs.session);
    char *b_on = greedy_text(fs.model, fs.session, "Once upon a time", 12);
    char *b_off = greedy_text(fs.model, fs.session, "There was a big dog", 12);
    fprintf(stderr, "  base:  'Once upon a time%s' / 'There was a big dog%s'\n", b_on, b_off);
    fprintf(stderr, "  gated: 'Once upon a time%s' / 'There was a big dog%s'\n", g_on, g_off);
    fprintf(stderr, "  plain adapter on the dog: 'There was a big dog%s'\n", a_off);
    CU_ASSERT_PTR_NOT_NULL(strstr(b_on, "named Lily"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g_on, "named Tim"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b_off, " named Max. Max"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g_off, " named Max. Max"));
    CU_ASSERT_PTR_NULL(strstr(a_off, " named Max. Max"));
    free(g_on);
    free(g_off);
    free(a_off);
    free(b_on);
    free(b_off);
    fixture_close(&fg);
    fixture_close(&fs);
    unlink(out);
    unlink(gt);
    unlink(st);
    unlink(toml);
    free(out);
    free(gt);
    free(st);
    free(toml);
    free(model);
    free(tim);
}

/* ------------------------------------------------------------------------ */
/* chat /adapter commands                                                     */
/* ------------------------------------------------------------------------ */
static void test_chat_commands(void) {
    char *model = llmh_test_shared("models/stories260K.gguf");
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *big = llmh_test_shared("models/adapters/stories260K-lora-big.gguf");
    char *toml = write_manifest("chat.toml", model, "[generate]\nmax_tokens = 24\n");
    char script[8192];
    snprintf(script, sizeof script,
             "/adapter list\n"
             "/adapter load tim %s\n"
             "/adapter list\n"
             "Once upon a time\n"                         /* all adapters: tim */
             "/reset\n"
             "/adapter use none\n"
             "Once upon a time\n"                         /* base: Lily */
             "/reset\n"
             "/adapter bogus\n"                           /* usage, chat goes on */
             "/adapter use nope\n"                        /* router error, set unchanged */
             "/adapter load tim %s\n"                     /* duplicate name */
             "/adapter load big %s 0.5\n"
             "/adapter use tim=1 big=0\n"
             "Once upon a time\n"                         /* tim again */
             "/reset\n"
             "/adapter scale tim 0\n"                     /* re-selected at scale 0: base text */
             "/adapter scale tim x\n"
             "Once upon a time\n"
             "/reset\n"
             "/adapter unload tim\n"
             "/adapter unload tim\n"
             "/adapter list\n"
             "/help\n",
             tim, tim, big);
    char *in = tmp_path("chat.in");
    FILE *f = fopen(in, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(script, f);
    fclose(f);
    char args[4096], *log = NULL;
    snprintf(args, sizeof args, "--config '%s' chat", toml);
    CU_ASSERT_EQUAL(run_host(args, in, &log), 0);
    const char *want[] = {
        "(no adapters loaded)",
        "(adapter tim loaded from",
        "* tim ",
        "little girl named Tim. He",
        "(adapters: none)",
        "little girl named Lily. She",
        "usage: /adapter load NAME PATH",
        "/adapter use: router-static: the request names adapter 'nope', which is not loaded",
        "/adapter load: adapter 'tim' is already loaded",
        "(adapter big loaded from",
        "(adapters: tim=1 big=0)",
        "little girl named Tim. He",
        "(adapter tim: scale 0)",
        "/adapter scale: the scale 'x' is not a finite number",
        "little girl named Lily. She",
        "(adapter tim unloaded)",
        "/adapter unload: no adapter named 'tim' is loaded",
        "big              scale 0.5",
        "/adapter use NAME[=S]",
    };
    const char *at = log;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        if (!hit) fprintf(stderr, "  chat output lacks (in order) '%s':\n%s\n", want[i], log);
        CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
        at = hit + strlen(want[i]);
    }
    free(log);
    unlink(in);
    unlink(toml);
    free(in);
    free(toml);
    free(model);
    free(tim);
    free(big);
}

/* ------------------------------------------------------------------------ */
static int suite_init(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llmh-fabric-ops-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int suite_cleanup(void) { return rmdir(g_tmp) == 0 ? 0 : -1; }

int main(void) {
    static const llmh_test_case writer[] = {
        {"all value types round trip", test_gguf_roundtrip},
        {"invalid input refused, nothing left behind", test_gguf_errors},
        {NULL, NULL},
    };
    static const llmh_test_case exp[] = {
        {"qwen2-tiny + lora-a: merged == unmerged", test_export_qwen2},
        {"stories260K + tim: merged == unmerged", test_export_stories},
        {"PEFT == GGUF, scales, errors", test_export_forms},
        {"quantized base keeps its type or takes --type", test_export_quantized},
        {NULL, NULL},
    };
    static const llmh_test_case routers[] = {
        {"namespace router through the C API", test_namespace_router},
        {"namespace router errors", test_namespace_router_errors},
        {"gated router arithmetic", test_gated_router_math},
        {NULL, NULL},
    };
    static const llmh_test_case tools[] = {
        {"lora-gate --bias", test_lora_gate_bias},
        {"gated router: constant gates", test_gated_constant},
        {"gated router: learned gates", test_gated_learned},
        {"chat /adapter commands", test_chat_commands},
        {NULL, NULL},
    };
    static const llmh_test_suite suites[] = {
        {"gguf writer", writer, suite_init, suite_cleanup},
        {"export-lora", exp, suite_init, suite_cleanup},
        {"routers", routers, NULL, NULL},
        {"tools", tools, suite_init, suite_cleanup},
    };
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}

/* test-bench.c — llmhost bench: the bench manifest API (llmh-bench.h) and the
 * command end to end on stories260K (tiny: -p 16 -n 8 -r 2), checking the
 * CSV columns, the JSON fields and statistics, and the SVG's structure. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llmh-bench.h"
#include "testutil.h"

static char tmpdir[256];   /* per-run scratch directory */
static char *model_path;   /* stories260K.gguf */

static char *path_in(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", tmpdir, name) < 0) abort();
    return p;
}

/* Write `text` to tmpdir/name; 0 on success (usable outside a test case). */
static int write_file(const char *name, const char *text) {
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    free(p);
    if (!f) return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static void write_text(const char *name, const char *text) { CU_ASSERT_EQUAL_FATAL(write_file(name, text), 0); }

static int suite_init(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/llmh-bench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) return -1;
    model_path = llmh_test_shared("models/stories260K.gguf");
    char *base = NULL;
    if (asprintf(&base,
                 "[model]\npath = \"%s\"\ncontext = 256\n[backend]\nplugin = \"cpu\"\nthreads = 1\n"
                 "[sampler]\nchain = [\"greedy\"]\n",
                 model_path) < 0)
        return -1;
    int bad = write_file("base.toml", base);
    /* the second config: same model, f32 KV cache (another KV size per position) */
    char *b = NULL;
    if (asprintf(&b, "include = \"base.toml\"\n[model]\nkv_type = \"f32\"\n") < 0) return -1;
    bad |= write_file("b.toml", b);
    free(base);
    free(b);
    return bad;
}

static int suite_cleanup(void) {
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", tmpdir) >= 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    free(model_path);
    return 0;
}

/* ======================================================================== */
/* The bench manifest API                                                    */
/* ======================================================================== */
static llmh_bench_spec *parse(const char *text) {
    llmh_bench_spec *s = NULL;
    llmh_status st = llmh_bench_spec_parse(text, strlen(text), "t.toml", tmpdir, &s);
    if (st) fprintf(stderr, "unexpected error: %s\n", llmh_last_error());
    CU_ASSERT_EQUAL(st, LLMH_OK);
    return s;
}

/* Parsing must fail with a message containing `want`. */
static void parse_fails(const char *text, const char *want) {
    llmh_bench_spec *s = NULL;
    llmh_status st = llmh_bench_spec_parse(text, strlen(text), "t.toml", tmpdir, &s);
    CU_ASSERT_NOT_EQUAL(st, LLMH_OK);
    CU_ASSERT_PTR_NULL(s);
    if (!strstr(llmh_last_error(), want)) fprintf(stderr, "\nmessage '%s' lacks '%s'\n", llmh_last_error(), want);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), want));
    llmh_bench_spec_free(s);
}

static void test_spec_good(void) {
    llmh_bench_spec *s = parse("base = \"base.toml\"\n"
                               "[bench]\npp = [16, 32]\ntg = 8\npg = [[8, 4], [4, 2]]\ndepth = [0, 64]\nnp = [1, 2]\n"
                               "reps = 5\nwarmup = 0\nkv = \"f32\"\n"
                               "[[variant]]\nname = \"plain\"\n"
                               "[[variant]]\nname = \"more.threads-2\"\n"
                               "set = { \"backend.threads\" = 2, model = { kv_type = \"f16\", context = 128 }, "
                               "\"sampler.chain\" = [\"top_k\", \"greedy\"], \"sampler.temperature\" = 0.5 }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->n_variants, 2);
    CU_ASSERT_STRING_EQUAL(s->variants[0].name, "plain");
    CU_ASSERT_EQUAL(s->variants[0].n_sets, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s->variants[0].base, "/base.toml"));
    CU_ASSERT_EQUAL(s->variants[0].base[0], '/');
    const llmh_bench_variant *v = &s->variants[1];
    CU_ASSERT_STRING_EQUAL(v->name, "more.threads-2");
    CU_ASSERT_EQUAL_FATAL(v->n_sets, 5);
    CU_ASSERT_STRING_EQUAL(v->sets[0].key, "backend.threads");
    CU_ASSERT_STRING_EQUAL(v->sets[0].value, "2");
    CU_ASSERT_STRING_EQUAL(v->sets[1].key, "model.kv_type");
    CU_ASSERT_STRING_EQUAL(v->sets[1].value, "\"f16\"");
    CU_ASSERT_STRING_EQUAL(v->sets[2].key, "model.context");
    CU_ASSERT_STRING_EQUAL(v->sets[3].key, "sampler.chain");
    CU_ASSERT_STRING_EQUAL(v->sets[3].value, "[\"top_k\", \"greedy\"]");
    CU_ASSERT_STRING_EQUAL(v->sets[4].value, "0.5");
    CU_ASSERT_EQUAL(v->sets[0].line, 15);
    CU_ASSERT(s->pp.given && s->pp.n == 2 && s->pp.v[0] == 16 && s->pp.v[1] == 32);
    CU_ASSERT(s->tg.given && s->tg.n == 1 && s->tg.v[0] == 8);
    CU_ASSERT(s->pg.given && s->pg.n == 4 && s->pg.v[0] == 8 && s->pg.v[1] == 4 && s->pg.v[3] == 2);
    CU_ASSERT(s->depth.given && s->depth.n == 2 && s->depth.v[1] == 64);
    CU_ASSERT(s->np.given && s->np.n == 2);
    CU_ASSERT_EQUAL(s->reps, 5);
    CU_ASSERT_EQUAL(s->warmup, 0);
    CU_ASSERT_EQUAL(s->ctx, -1);
    CU_ASSERT_STRING_EQUAL(s->kv, "f32");

    /* the variant manifests: base keys kept, overrides applied */
    llmh_manifest *m0 = NULL, *m1 = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_bench_variant_manifest(s, 0, &m0), LLMH_OK);
    CU_ASSERT_EQUAL_FATAL(llmh_bench_variant_manifest(s, 1, &m1), LLMH_OK);
    const llmh_config *c0 = llmh_manifest_config(m0), *c1 = llmh_manifest_config(m1);
    CU_ASSERT_EQUAL(c0->backend.threads, 1);
    CU_ASSERT_EQUAL(c1->backend.threads, 2);
    CU_ASSERT_STRING_EQUAL(c0->model.path, model_path);
    CU_ASSERT_STRING_EQUAL(c1->model.path, model_path);
    CU_ASSERT_EQUAL(c0->model.context, 256);
    CU_ASSERT_EQUAL(c1->model.context, 128);
    CU_ASSERT_STRING_EQUAL(c1->model.kv_type, "f16");
    CU_ASSERT_EQUAL_FATAL(c1->sampler.n_chain, 2);
    CU_ASSERT_STRING_EQUAL(c1->sampler.chain[0], "top_k");
    CU_ASSERT_STRING_EQUAL(c1->backend.plugin, "cpu");
    llmh_manifest_free(m0);
    llmh_manifest_free(m1);
    CU_ASSERT_NOT_EQUAL(llmh_bench_variant_manifest(s, 2, &m0), LLMH_OK);
    llmh_bench_spec_free(s);
    llmh_bench_spec_free(NULL);
}

/* Relative paths in overrides resolve against the bench manifest's directory. */
static void test_spec_relative_paths(void) {
    char *link = path_in("m.gguf");
    unlink(link);
    CU_ASSERT_EQUAL_FATAL(symlink(model_path, link), 0);
    char *sub = path_in("sub");
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755) == 0 || access(sub, F_OK) == 0, 1);
    /* from a file in sub/: base is ../base.toml, the model ../m.gguf */
    char *bench = path_in("sub/rel.toml");
    FILE *f = fopen(bench, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("base = \"../base.toml\"\n[[variant]]\nname = \"a\"\nset = { \"model.path\" = \"../m.gguf\" }\n", f);
    fclose(f);
    llmh_bench_spec *s = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_bench_spec_load(bench, &s), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(s->dir, sub);
    llmh_manifest *m = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_bench_variant_manifest(s, 0, &m), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(llmh_manifest_config(m)->model.path, link);
    llmh_manifest_free(m);
    llmh_bench_spec_free(s);
    CU_ASSERT_EQUAL(llmh_bench_spec_load("/nonexistent/bench.toml", &s), LLMH_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(s);
    free(bench);
    free(sub);
    free(link);
}

static void test_spec_errors(void) {
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a\"\nsett = { x = 1 }\n",
                "t.toml:4:1: unknown key 'sett' in [[variant]] (did you mean 'set'?)");
    parse_fails("[[variant]]\nname = \"a\"\n", "variant 'a' has no base manifest");
    parse_fails("base = \"missing.toml\"\n[[variant]]\nname = \"a\"\n", "t.toml:1:1: base manifest 'missing.toml' not found");
    parse_fails("base = \"base.toml\"\n", "no variants");
    parse_fails("base = \"base.toml\"\nvariants = 1\n", "unknown key 'variants' at the top of a bench manifest");
    parse_fails("base = \"base.toml\"\n[[variant]]\nset = {}\n", "variant 1 has no name");
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a b\"\n", "variant name must be");
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n",
                "two variants are named 'a'");
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a\"\nset = 3\n", "set must be a table of overrides");
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a\"\nset = { \"model.path\" = \"x\", model = { path = "
                "\"y\" } }\n",
                "conflicts with set model.path");
    parse_fails("base = \"base.toml\"\n[[variant]]\nname = \"a\"\nset = { \"model..path\" = 1 }\n", "empty part");
    parse_fails("base = \"base.toml\"\n[bench]\npp = [0]\n[[variant]]\nname = \"a\"\n", "pp must be in 1..");
    parse_fails("base = \"base.toml\"\n[bench]\nnp = \"2\"\n[[variant]]\nname = \"a\"\n",
                "np must be an array of integers");
    parse_fails("base = \"base.toml\"\n[bench]\npg = [[1, 2, 3]]\n[[variant]]\nname = \"a\"\n",
                "pairs of two integers");
    parse_fails("base = \"base.toml\"\n[bench]\nkv = \"q8\"\n[[variant]]\nname = \"a\"\n", "kv must be");
    parse_fails("base = \"base.toml\"\n[bench]\ndepth = []\n[[variant]]\nname = \"a\"\n",
                "depth must list at least one value");
    parse_fails("base = \"base.toml\"\n[bench]\nrepz = 3\n[[variant]]\nname = \"a\"\n",
                "unknown key 'repz' in [bench] (did you mean 'reps'?)");
    parse_fails("base = \"base.toml\"\n[[variant]\n", "t.toml:2:");

    /* an override the manifest refuses is reported where it was written */
    llmh_bench_spec *s = parse("base = \"base.toml\"\n[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\n"
                               "set = { \"backend.threads\" = 2, \"backend.plugn\" = \"cpu\" }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    llmh_manifest *m = NULL;
    CU_ASSERT_EQUAL(llmh_bench_variant_manifest(s, 0, &m), LLMH_OK);
    llmh_manifest_free(m);
    m = NULL;
    CU_ASSERT_EQUAL(llmh_bench_variant_manifest(s, 1, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(m);
    const char *want = "t.toml:6:32: variant 'b': set backend.plugn = \"cpu\": unknown key 'plugn' in [backend]";
    if (!strstr(llmh_last_error(), want)) fprintf(stderr, "\nmessage: %s\n", llmh_last_error());
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), want));
    llmh_bench_spec_free(s);

    /* a wrong type for a known key, too */
    s = parse("base = \"base.toml\"\n[[variant]]\nname = \"a\"\nset = { \"backend.threads\" = \"two\" }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(llmh_bench_variant_manifest(s, 0, &m), LLMH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(llmh_last_error(), "t.toml:4:9: variant 'a': set backend.threads = \"two\":"));
    llmh_bench_spec_free(s);
}

/* Strings with quotes, backslashes and control characters survive the trip
 * through TOML text unchanged. */
static void test_spec_quoting(void) {
    llmh_bench_spec *s = parse("base = \"base.toml\"\n[[variant]]\nname = \"q\"\n"
                               "set = { \"generate.system\" = \"say \\\"hi\\\"\\\\\\n\\tnow\" }\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    llmh_manifest *m = NULL;
    CU_ASSERT_EQUAL_FATAL(llmh_bench_variant_manifest(s, 0, &m), LLMH_OK);
    CU_ASSERT_STRING_EQUAL(llmh_manifest_config(m)->generate.system, "say \"hi\"\\\n\tnow");
    llmh_manifest_free(m);
    llmh_bench_spec_free(s);
}

/* ======================================================================== */
/* llmhost bench end to end                                                  */
/* ======================================================================== */
/* Run llmhost with `args` (shell words) in tmpdir; stdout and stderr go to
 * files read back into *out / *err. Returns the exit code. */
static int run_llmhost(const char *args, char **out, char **err) {
    char *cmd = NULL;
    if (asprintf(&cmd, "cd '%s' && '%s' %s > stdout.txt 2> stderr.txt", tmpdir, LLMH_TEST_LLMHOST, args) < 0) abort();
    int st = system(cmd);
    free(cmd);
    char *po = path_in("stdout.txt"), *pe = path_in("stderr.txt");
    char *o = llmh_test_read_file(po, NULL), *e = llmh_test_read_file(pe, NULL);
    free(po);
    free(pe);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_in(const char *name) {
    char *p = path_in(name);
    char *t = llmh_test_read_file(p, NULL);
    free(p);
    return t;
}

/* CSV: the header, then one row per test and variant in test-major order. */
#define CSV_COLS 16
static const char *const csv_header[CSV_COLS] = {
    "test",  "kind",      "n_prompt",  "n_gen",     "depth",     "np",        "variant",   "reps",
    "tps_median", "tps_min", "tps_max", "ratio", "ratio_min", "ratio_max", "bound_tps", "bound_fraction"};

typedef struct csv_row {
    char *f[CSV_COLS];
} csv_row;

/* Split `text` into rows of exactly CSV_COLS fields (in place); returns rows. */
static int csv_parse(char *text, csv_row *rows, int max_rows) {
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (n == max_rows) return -1;
        int k = 0;
        char *p = line;
        for (;;) {
            if (k == CSV_COLS) return -1;
            rows[n].f[k++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        if (k != CSV_COLS) return -1;
        n++;
    }
    return n;
}

static void check_csv(const char *name, int n_rows, const char *const *variants, int nv, int reps, int with_bound) {
    char *text = read_in(name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    csv_row rows[256];
    int n = csv_parse(text, rows, 256);
    CU_ASSERT_EQUAL_FATAL(n, n_rows + 1);
    for (int k = 0; k < CSV_COLS; k++) CU_ASSERT_STRING_EQUAL(rows[0].f[k], csv_header[k]);
    for (int i = 1; i < n; i++) {
        char **f = rows[i].f;
        int v = (i - 1) % nv;
        CU_ASSERT_STRING_EQUAL(f[6], variants[v]);
        CU_ASSERT_EQUAL(atoi(f[7]), reps);
        double med = atof(f[8]), mn = atof(f[9]), mx = atof(f[10]);
        CU_ASSERT(mn > 0 && mn <= med && med <= mx);
        double r = atof(f[11]), rmin = atof(f[12]), rmax = atof(f[13]);
        CU_ASSERT(rmin <= r && r <= rmax && rmin > 0);
        if (v == 0) {
            CU_ASSERT(!strcmp(f[11], "1.00000") && !strcmp(f[12], "1.00000") && !strcmp(f[13], "1.00000"));
        }
        /* the test name matches its kind and sizes */
        char want[64];
        if (!strcmp(f[1], "pp")) snprintf(want, sizeof want, "pp%s", f[2]);
        else if (!strcmp(f[1], "tg")) snprintf(want, sizeof want, "tg%s", f[3]);
        else snprintf(want, sizeof want, "pp%s+tg%s", f[2], f[3]);
        CU_ASSERT_STRING_EQUAL(f[0], want);
        int has_bound = f[14][0] != 0;
        CU_ASSERT_EQUAL(has_bound, with_bound && !strcmp(f[1], "tg"));
        if (has_bound) {
            CU_ASSERT(atof(f[14]) > 0);
            CU_ASSERT(fabs(atof(f[15]) - med / atof(f[14])) < 1e-3 * (1 + med / atof(f[14])));
        } else {
            CU_ASSERT_STRING_EQUAL(f[15], "");
        }
    }
    free(text);
}

static double median_of(cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    double v[64];
    if (n < 1 || n > 64) return NAN;
    for (int i = 0; i < n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valuedouble;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void check_json(const char *name, int n_rows, const char *const *variants, int nv, int reps, int with_bw) {
    char *text = read_in(name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(root, "llmhost")));
    CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(root, "date")));
    cJSON *settings = cJSON_GetObjectItem(root, "settings");
    CU_ASSERT_PTR_NOT_NULL_FATAL(settings);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(settings, "reps")->valueint, reps);
    CU_ASSERT(cJSON_IsNumber(cJSON_GetObjectItem(settings, "warmup")));
    CU_ASSERT(cJSON_GetObjectItem(settings, "n_ctx")->valuedouble >= 24);
    cJSON *bw = cJSON_GetObjectItem(root, "bandwidth");
    if (with_bw) {
        CU_ASSERT(cJSON_IsObject(bw) && cJSON_GetObjectItem(bw, "gbs")->valuedouble > 0);
    } else {
        CU_ASSERT(cJSON_IsNull(bw));
    }
    CU_ASSERT(cJSON_GetObjectItem(root, "peak_rss_mb")->valuedouble > 0);
    cJSON *vars = cJSON_GetObjectItem(root, "variants");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(vars), nv);
    for (int v = 0; v < nv; v++) {
        cJSON *e = cJSON_GetArrayItem(vars, v);
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e, "name")->valuestring, variants[v]);
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e, "arch")->valuestring, "llama");
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e, "backend")->valuestring, "cpu");
        CU_ASSERT(cJSON_GetObjectItem(e, "weight_bytes")->valuedouble > 0);
        CU_ASSERT(cJSON_GetObjectItem(e, "kv_bytes_per_position")->valuedouble > 0);
        CU_ASSERT(cJSON_GetObjectItem(e, "file_bytes")->valuedouble > 0);
        CU_ASSERT(cJSON_GetObjectItem(e, "load_seconds")->valuedouble > 0);
        CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(e, "source")));
    }
    cJSON *res = cJSON_GetObjectItem(root, "results");
    CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(res), n_rows);
    for (int i = 0; i < n_rows; i++) {
        cJSON *e = cJSON_GetArrayItem(res, i);
        int v = i % nv;
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(e, "variant")->valuestring, variants[v]);
        const char *kind = cJSON_GetObjectItem(e, "kind")->valuestring;
        CU_ASSERT(!strcmp(kind, "pp") || !strcmp(kind, "tg") || !strcmp(kind, "pg"));
        CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(e, "test")));
        CU_ASSERT(cJSON_GetObjectItem(e, "np")->valueint >= 1);
        CU_ASSERT(cJSON_GetObjectItem(e, "depth")->valueint >= 0);
        cJSON *samples = cJSON_GetObjectItem(e, "samples_tps");
        CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(samples), reps);
        double med = cJSON_GetObjectItem(e, "median_tps")->valuedouble;
        double mn = cJSON_GetObjectItem(e, "min_tps")->valuedouble, mx = cJSON_GetObjectItem(e, "max_tps")->valuedouble;
        CU_ASSERT(mn > 0 && mn <= med && med <= mx);
        CU_ASSERT(fabs(median_of(samples) - med) <= 1e-9 * med);
        double ratio = cJSON_GetObjectItem(e, "ratio")->valuedouble;
        CU_ASSERT(cJSON_GetObjectItem(e, "ratio_min")->valuedouble <= ratio);
        CU_ASSERT(ratio <= cJSON_GetObjectItem(e, "ratio_max")->valuedouble);
        if (v == 0) {
            CU_ASSERT_EQUAL(ratio, 1.0);
            CU_ASSERT_EQUAL(cJSON_GetObjectItem(e, "ratio_min")->valuedouble, 1.0);
            CU_ASSERT_EQUAL(cJSON_GetObjectItem(e, "ratio_max")->valuedouble, 1.0);
        } else {
            /* the ratio is the median of per-repetition ratios to the base row just before */
            cJSON *bs = cJSON_GetObjectItem(cJSON_GetArrayItem(res, i - v), "samples_tps");
            cJSON *q = cJSON_CreateArray();
            for (int r = 0; r < reps; r++)
                cJSON_AddItemToArray(q, cJSON_CreateNumber(cJSON_GetArrayItem(samples, r)->valuedouble /
                                                           cJSON_GetArrayItem(bs, r)->valuedouble));
            CU_ASSERT(fabs(median_of(q) - ratio) <= 1e-9 * ratio);
            cJSON_Delete(q);
        }
        cJSON *bound = cJSON_GetObjectItem(e, "bound_tps");
        if (with_bw && !strcmp(kind, "tg")) {
            CU_ASSERT(cJSON_IsNumber(bound) && bound->valuedouble > 0);
            CU_ASSERT(fabs(cJSON_GetObjectItem(e, "bound_fraction")->valuedouble - med / bound->valuedouble) < 1e-9);
        } else {
            CU_ASSERT(cJSON_IsNull(bound));
            CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(e, "bound_fraction")));
        }
    }
    cJSON_Delete(root);
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Well-formed enough: one <svg> root, every tag closed in order, attribute
 * values quoted, no raw '<' or stray '&' in text. Returns 0 when good. */
static int svg_check(const char *s) {
    char stack[64][32];
    int depth = 0, roots = 0;
    const char *p = s;
    while (*p) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            if (!semi || semi - p > 8) return -1;
            p = semi + 1;
            continue;
        }
        if (*p != '<') { p++; continue; }
        const char *end = strchr(p, '>');
        if (!end) return -2;
        int closing = p[1] == '/';
        const char *nm = p + 1 + closing;
        size_t len = strcspn(nm, " \t\n/>");
        if (len == 0 || len >= 32) return -3;
        int quotes = 0;
        for (const char *q = p; q < end; q++) quotes += *q == '"';
        if (quotes % 2) return -4;
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], nm, len) || stack[depth - 1][len]) return -5;
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 64) return -6;
            if (depth == 0) roots++;
            memcpy(stack[depth], nm, len);
            stack[depth][len] = 0;
            depth++;
        }
        p = end + 1;
    }
    return depth == 0 && roots == 1 ? 0 : -7;
}

static void check_svg(const char *name, int n_rows, int n_bound_rows) {
    char *text = read_in(name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(strncmp(text, "<svg ", 5), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "xmlns=\"http://www.w3.org/2000/svg\""));
    size_t len = strlen(text);
    CU_ASSERT(len > 7 && !strcmp(text + len - 7, "</svg>\n"));
    int rc = svg_check(text);
    if (rc) fprintf(stderr, "\nSVG check failed: %d\n", rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(count_of(text, "class=\"bar\""), n_rows);
    CU_ASSERT_EQUAL(count_of(text, "class=\"whisker\""), n_rows);
    CU_ASSERT_EQUAL(count_of(text, "class=\"bound\""), n_bound_rows);
    free(text);
}

static void test_cli_configs(void) {
    char *out = NULL, *err = NULL;
    /* 3 tests (pp16, tg8, pp8+tg4) x 2 depths x 2 np = 12 tests, 2 variants */
    int rc = run_llmhost("bench --config base.toml --config b.toml -p 16 -n 8 -pg 8,4 -d 0,8 -np 1,2 -r 2 "
                         "--bw-mb 16 --csv c.csv --json c.json --svg c.svg",
                         &out, &err);
    if (rc) fprintf(stderr, "\nllmhost bench failed (%d):\n%s\n", rc, err ? err : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    static const char *const names[] = {"base", "b"};
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ratio"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "memory read bandwidth"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pp8+tg4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bench: [12/12]"));
    check_csv("c.csv", 24, names, 2, 2, 1);
    check_json("c.json", 24, names, 2, 2, 1);
    check_svg("c.svg", 24, 8); /* tg8 at 2 depths x 2 np, for 2 variants */

    /* the depth and np columns cover every combination, in order */
    char *csv = read_in("c.csv");
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\npp16,pp,16,0,0,1,base,2,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\ntg8,tg,0,8,8,2,b,2,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\npp8+tg4,pg,8,4,8,2,b,2,"));
    free(csv);
    free(out);
    free(err);

    /* --names */
    rc = run_llmhost("bench --config base.toml --config b.toml --names f16,f32 -p 16 -n 0 -r 2 --no-bw --csv n.csv",
                     &out, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    static const char *const names2[] = {"f16", "f32"};
    check_csv("n.csv", 2, names2, 2, 2, 0);
    free(out);
    free(err);
}

static void test_cli_bench_manifest(void) {
    write_text("ab.toml", "base = \"base.toml\"\n"
                          "[bench]\npp = [16]\ntg = [8]\nreps = 2\n"
                          "[[variant]]\nname = \"kv-f16\"\n"
                          "[[variant]]\nname = \"kv-f32\"\nset = { \"model.kv_type\" = \"f32\" }\n");
    char *out = NULL, *err = NULL;
    int rc = run_llmhost("bench --bench ab.toml --no-bw --csv m.csv --json m.json --svg m.svg", &out, &err);
    if (rc) fprintf(stderr, "\nllmhost bench failed (%d):\n%s\n", rc, err ? err : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    static const char *const names[] = {"kv-f16", "kv-f32"};
    check_csv("m.csv", 4, names, 2, 2, 0);
    check_json("m.json", 4, names, 2, 2, 0);
    check_svg("m.svg", 4, 0);
    /* the override reached the model: an f32 cache is twice the bytes per position */
    char *json = read_in("m.json");
    cJSON *root = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    cJSON *vars = cJSON_GetObjectItem(root, "variants");
    double kv0 = cJSON_GetObjectItem(cJSON_GetArrayItem(vars, 0), "kv_bytes_per_position")->valuedouble;
    double kv1 = cJSON_GetObjectItem(cJSON_GetArrayItem(vars, 1), "kv_bytes_per_position")->valuedouble;
    CU_ASSERT_EQUAL(kv1, 2 * kv0);
    CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetObjectItem(root, "bench_file")->valuestring, "ab.toml"));
    cJSON_Delete(root);
    free(json);
    free(out);
    free(err);

    /* command-line options win over [bench]: -r 3 and -n 0 */
    rc = run_llmhost("bench --bench ab.toml --no-bw -r 3 -n 0 --csv m2.csv", &out, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    check_csv("m2.csv", 2, names, 2, 3, 0);
    free(out);
    free(err);
}

static void cli_fails(const char *args, const char *want);

/* --adapters: adapter sets of one manifest as variants on one loaded model */
static void test_cli_adapter_sets(void) {
    char *tim = llmh_test_shared("models/adapters/stories260K-lora-tim.gguf");
    char *big = llmh_test_shared("models/adapters/stories260K-lora-big.gguf");
    char *fab = NULL;
    CU_ASSERT_FATAL(asprintf(&fab,
                             "include = \"base.toml\"\n[[adapter]]\nname = \"tim\"\npath = \"%s\"\n"
                             "[[adapter]]\nname = \"big\"\npath = \"%s\"\n",
                             tim, big) > 0);
    CU_ASSERT_EQUAL_FATAL(write_file("fab.toml", fab), 0);
    free(fab);
    free(tim);
    free(big);
    char *out = NULL, *err = NULL;
    int rc = run_llmhost("bench --config fab.toml --adapters 'base=none;tim;both=tim,big*0.5;all' -p 0 -n 8 -r 2 "
                         "--no-bw --csv s.csv --json s.json",
                         &out, &err);
    if (rc) fprintf(stderr, "\nllmhost bench --adapters failed (%d):\n%s\n", rc, err ? err : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    static const char *const names[] = {"base", "tim", "both", "all"};
    check_csv("s.csv", 4, names, 4, 2, 0);
    /* one model load; the others say whose model they use and which set */
    CU_ASSERT_EQUAL(count_of(err, "loaded in"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "variant 'both': the model of 'base', adapters: tim,big*0.5"));
    char *json = read_in("s.json");
    CU_ASSERT_PTR_NOT_NULL(json && strstr(json, "fab.toml [adapters tim,big*0.5]"));
    /* the adapters' bytes: none for base, tim's for tim, both for both and all */
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    cJSON *vars = cJSON_GetObjectItem(root, "variants");
    double ab[4];
    for (int i = 0; i < 4; i++) ab[i] = cJSON_GetObjectItem(cJSON_GetArrayItem(vars, i), "adapter_bytes")->valuedouble;
    CU_ASSERT_EQUAL(ab[0], 0);
    CU_ASSERT(ab[1] > 0);
    CU_ASSERT(ab[2] > ab[1]);
    CU_ASSERT_EQUAL(ab[3], ab[2]);
    cJSON_Delete(root);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "MB of LoRA adapters read per token"));
    free(json);
    free(out);
    free(err);

    /* an adapter the store lacks: the router's error, before any test */
    rc = run_llmhost("bench --config fab.toml --adapters 'none;lily' -p 0 -n 8 -r 2 --no-bw", NULL, &err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "variant 'lily': selecting adapters 'lily'"));
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "'lily', which is not loaded"));
    CU_ASSERT_PTR_NULL(err && strstr(err, "bench: [1/1]"));
    free(err);
    cli_fails("bench --config fab.toml --adapters 'none;tim*x'", "bad scale 'x' in set 'tim*x'");
    cli_fails("bench --config fab.toml --adapters 'none;;tim'", "set 2 of 'none;;tim' has an empty adapter list");
    cli_fails("bench --config fab.toml --adapters 'a=none;a=tim'", "two sets are named 'a'");
    cli_fails("bench --config fab.toml --config b.toml --adapters none", "--adapters needs exactly one --config");
}

/* `args` must exit with status 2 and say `want` on stderr; no output file is left. */
static void cli_fails(const char *args, const char *want) {
    char *err = NULL;
    int rc = run_llmhost(args, NULL, &err);
    CU_ASSERT_EQUAL(rc, 2);
    if (!err || !strstr(err, want)) fprintf(stderr, "\n'%s': stderr '%s' lacks '%s'\n", args, err ? err : "", want);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, want));
    free(err);
}

static void test_cli_errors(void) {
    write_text("bad-key.toml", "base = \"base.toml\"\n[[variant]]\nname = \"a\"\nsett = { x = 1 }\n");
    write_text("no-base.toml", "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\n");
    write_text("bad-set.toml", "base = \"base.toml\"\n[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\n"
                               "set = { \"backend.plugn\" = \"cpu\" }\n");
    cli_fails("bench --bench bad-key.toml -p 16 -n 8 -r 2 --csv x.csv",
              "bad-key.toml:4:1: unknown key 'sett' in [[variant]] (did you mean 'set'?)");
    cli_fails("bench --bench no-base.toml -p 16 -n 8 -r 2", "variant 'a' has no base manifest");
    cli_fails("bench --bench bad-set.toml -p 16 -n 8 -r 2 --csv x.csv",
              "bad-set.toml:6:9: variant 'b': set backend.plugn = \"cpu\": unknown key 'plugn' in [backend]");
    char *x = path_in("x.csv");
    CU_ASSERT_NOT_EQUAL(access(x, F_OK), 0); /* removed after the failure */
    free(x);
    cli_fails("bench --bench missing.toml", "missing.toml: cannot open bench manifest");
    cli_fails("bench", "no variants: pass --config");
    cli_fails("bench --bench bad-set.toml --config base.toml", "--bench and --config cannot be combined");
    cli_fails("bench --config base.toml -p 1x", "-p: '1x' is not a list of integers");
    cli_fails("bench --config base.toml -pg 512", "-pg takes PROMPT,GENERATED");
    cli_fails("bench --config base.toml -np 0", "-np: 0 is out of range");
    cli_fails("bench --config base.toml -r", "-r needs a value");
    cli_fails("bench --config base.toml --frobnicate 1", "unknown option '--frobnicate'");
    cli_fails("bench --config base.toml -p 0 -n 0", "no tests left");
    cli_fails("bench --config base.toml --ctx 8 -p 16", "--ctx 8 is too small");
    cli_fails("bench --config base.toml --csv /nonexistent-dir/x.csv", "--csv /nonexistent-dir/x.csv: cannot write");
    cli_fails("bench --config base.toml --config b.toml --names one", "--names gives too few names");
    cli_fails("bench --config nope.toml", "nope.toml: cannot open manifest");
    cli_fails("--set backend.thread=1 bench --config base.toml -p 16 -n 8", "unknown key 'thread' in [backend]");
}

int main(void) {
    static const llmh_test_case manifest_cases[] = {
        {"spec: lists, overrides, variant manifests", test_spec_good},
        {"spec: relative paths resolve against the bench file", test_spec_relative_paths},
        {"spec: errors name file:line:col and the key", test_spec_errors},
        {"spec: quoting round trip", test_spec_quoting},
        {NULL, NULL}};
    static const llmh_test_case cli_cases[] = {
        {"two --config variants: CSV, JSON, SVG", test_cli_configs},
        {"bench manifest with two variants", test_cli_bench_manifest},
        {"--adapters: adapter sets on one model", test_cli_adapter_sets},
        {"bad configs and arguments", test_cli_errors},
        {NULL, NULL}};
    static const llmh_test_suite suites[] = {
        {"bench-manifest", manifest_cases, suite_init, suite_cleanup},
        {"bench-cli", cli_cases, suite_init, suite_cleanup}};
    return llmh_test_main(suites, sizeof suites / sizeof suites[0]);
}

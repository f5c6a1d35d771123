/*
 * bench-manifest.c — bench manifests (llmh-bench.h, docs/bench.md): a base
 * manifest, [[variant]] tables overriding its keys, optional [bench] test
 * settings.
 *
 * Data flow, top to bottom:
 *   1. a small allocation pool (everything the spec points to) and a string
 *      builder;
 *   2. TOML values written back as TOML text (the overrides are kept as text
 *      so the manifest loader parses them with its own rules);
 *   3. reading and checking the bench manifest;
 *   4. building a variant's manifest: a document that includes the base and
 *      sets the overrides, parsed by llmh_manifest_parse; a refusal is traced
 *      back to the override that caused it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "llmh-bench.h"
#include "toml-shim.h"

#define BM_MAX_NAME 64
#define BM_MAX_FILE (16u << 20) /* a bench manifest is a few hundred bytes */

/* ======================================================================== */
/* 1. Pool and string builder                                                */
/* ======================================================================== */
typedef struct bm_spec {
    llmh_bench_spec pub;       /* first: the public view */
    void **allocs;             /* every block the spec owns */
    size_t n_allocs, cap_allocs;
} bm_spec;

static void *bm_alloc(bm_spec *s, size_t size) {
    if (s->n_allocs == s->cap_allocs) {
        size_t cap = s->cap_allocs ? s->cap_allocs * 2 : 32;
        void **na = realloc(s->allocs, cap * sizeof *na);
        if (!na) return NULL;
        s->allocs = na;
        s->cap_allocs = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (p) s->allocs[s->n_allocs++] = p;
    return p;
}

static char *bm_strdup(bm_spec *s, const char *str) {
    size_t n = strlen(str);
    char *d = bm_alloc(s, n + 1);
    if (d) memcpy(d, str, n + 1);
    return d;
}

typedef struct bm_buf {
    char *p;
    size_t n, cap;
    int oom;
} bm_buf;

static void bm_putn(bm_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void bm_puts(bm_buf *b, const char *s) { bm_putn(b, s, strlen(s)); }

static void bm_printf(bm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bm_printf(bm_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof tmp) { b->oom = 1; return; }
    bm_putn(b, tmp, (size_t)w);
}

static llmh_status bm_oom(void) { return llmh__fail(LLMH_ERR_NO_MEMORY, "bench manifest: out of memory"); }

/* ======================================================================== */
/* 2. TOML values as TOML text                                               */
/* ======================================================================== */
/* A TOML basic string holding `len` bytes of s (NULs and controls escaped). */
static void bm_quote(bm_buf *b, const char *s, size_t len) {
    bm_puts(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') bm_puts(b, "\\\"");
        else if (c == '\\') bm_puts(b, "\\\\");
        else if (c == '\n') bm_puts(b, "\\n");
        else if (c == '\t') bm_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f) bm_printf(b, "\\u%04x", c);
        else bm_putn(b, (const char *)&s[i], 1);
    }
    bm_puts(b, "\"");
}

static void bm_render(bm_buf *b, const llmh_toml_node *v) {
    switch (v->type) {
    case LLMH_TOML_STRING: bm_quote(b, v->str, v->len); break;
    case LLMH_TOML_INTEGER: bm_printf(b, "%lld", (long long)v->i); break;
    case LLMH_TOML_FLOAT:
        if (isnan(v->f)) bm_puts(b, "nan");
        else if (isinf(v->f)) bm_puts(b, v->f < 0 ? "-inf" : "inf");
        else {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.17g", v->f);
            bm_puts(b, tmp);
            if (!strpbrk(tmp, ".eE")) bm_puts(b, ".0"); /* stay a float */
        }
        break;
    case LLMH_TOML_BOOLEAN: bm_puts(b, v->b ? "true" : "false"); break;
    case LLMH_TOML_DATETIME: bm_putn(b, v->str, v->len); break;
    case LLMH_TOML_ARRAY:
        bm_puts(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) bm_puts(b, ", ");
            bm_render(b, v->items[i]);
        }
        bm_puts(b, "]");
        break;
    case LLMH_TOML_TABLE:
        bm_puts(b, "{");
        for (size_t i = 0; i < v->n; i++) {
            bm_puts(b, i ? ", " : " ");
            bm_quote(b, v->items[i]->key, strlen(v->items[i]->key));
            bm_puts(b, " = ");
            bm_render(b, v->items[i]);
        }
        bm_puts(b, v->n ? " }" : "}");
        break;
    }
}

/* "model.path" as the TOML dotted key "model"."path". */
static void bm_render_key(bm_buf *b, const char *dotted) {
    const char *s = dotted;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        bm_quote(b, s, n);
        if (!dot) break;
        bm_puts(b, ".");
        s = dot + 1;
    }
}

/* ======================================================================== */
/* 3. Reading the bench manifest                                             */
/* ======================================================================== */
typedef struct bm_ctx {
    bm_spec *spec;
    const char *name;          /* for messages */
} bm_ctx;

static llmh_status bm_fail(const bm_ctx *c, const llmh_toml_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static llmh_status bm_fail(const bm_ctx *c, const llmh_toml_node *n, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = n ? (n->key_line > 0 ? n->key_line : n->line) : 0;
    int col = n ? (n->key_line > 0 ? n->key_col : n->col) : 0;
    if (line > 0) llmh_set_error("%s:%d:%d: %s", c->name, line, col, msg);
    else llmh_set_error("%s: %s", c->name, msg);
    return LLMH_ERR_CONFIG;
}

/* Levenshtein distance, for "did you mean" (short keys only). */
static size_t bm_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32) return 99;
    size_t d[33];
    for (size_t j = 0; j <= lb; j++) d[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = d[0];
        d[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = d[j];
            size_t sub = prev + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = d[j] + 1 < d[j - 1] + 1 ? d[j] + 1 : d[j - 1] + 1;
            d[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return d[lb];
}

static llmh_status bm_unknown(const bm_ctx *c, const llmh_toml_node *n, const char *where, const char *const *known,
                              size_t n_known) {
    const char *best = NULL;
    size_t bd = 3;
    for (size_t i = 0; i < n_known; i++) {
        size_t d = bm_distance(n->key, known[i]);
        if (d < bd) { bd = d; best = known[i]; }
    }
    char list[256];
    size_t used = 0;
    list[0] = 0;
    for (size_t i = 0; i < n_known; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", known[i]);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    if (best) return bm_fail(c, n, "unknown key '%s' %s (did you mean '%s'?)", n->key, where, best);
    return bm_fail(c, n, "unknown key '%s' %s (known: %s)", n->key, where, list);
}

static int bm_plain_string(const llmh_toml_node *n) { return n->type == LLMH_TOML_STRING && strlen(n->str) == n->len; }

static char *bm_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Resolve `p` against `dir` (absolute p and ~/ are kept / expanded). */
static char *bm_join(const char *dir, const char *p) {
    const char *home = getenv("HOME");
    char *out = NULL;
    int w;
    if (p[0] == '/') w = asprintf(&out, "%s", p);
    else if (p[0] == '~' && (p[1] == '/' || p[1] == 0) && home && *home) w = asprintf(&out, "%s%s", home, p + 1);
    else w = asprintf(&out, "%s/%s", dir, p);
    return w < 0 ? NULL : out;
}

/* A base manifest path (from `n`) as an absolute, existing file. */
static llmh_status bm_base(const bm_ctx *c, const llmh_toml_node *n, const char **out) {
    if (!bm_plain_string(n) || n->len == 0)
        return bm_fail(c, n, "base must be the path of a manifest (a non-empty string), got %s",
                       n->type == LLMH_TOML_STRING ? "an empty string" : llmh__toml_type_name(n->type));
    char *joined = bm_join(c->spec->pub.dir, n->str);
    if (!joined) return bm_oom();
    char real[PATH_MAX];
    if (!realpath(joined, real)) {
        int e = errno;
        llmh_status st = bm_fail(c, n, "base manifest '%s' not found (looked for %s): %s", n->str, joined, strerror(e));
        free(joined);
        return st;
    }
    struct stat sb;
    if (stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        llmh_status st = bm_fail(c, n, "base manifest '%s' (%s) is not a regular file", n->str, joined);
        free(joined);
        return st;
    }
    free(joined);
    if (!(*out = bm_strdup(c->spec, real))) return bm_oom();
    return LLMH_OK;
}

/* An integer from `n` in [lo, hi]; `what` names it in messages. */
static llmh_status bm_int(const bm_ctx *c, const llmh_toml_node *n, const char *what, int64_t lo, int64_t hi,
                          int64_t *out) {
    if (n->type != LLMH_TOML_INTEGER)
        return bm_fail(c, n, "%s must be an integer, got %s", what, llmh__toml_type_name(n->type));
    if (n->i < lo || n->i > hi)
        return bm_fail(c, n, "%s must be in %lld..%lld, got %lld", what, (long long)lo, (long long)hi, (long long)n->i);
    *out = n->i;
    return LLMH_OK;
}

/* A list of integers in [lo, hi]: an array, or one integer for a list of one. */
static llmh_status bm_ints(const bm_ctx *c, const llmh_toml_node *n, const char *what, int64_t lo, int64_t hi,
                           llmh_bench_ints *out) {
    const llmh_toml_node *const *items = (const llmh_toml_node *const *)&n;
    size_t count = 1;
    if (n->type == LLMH_TOML_ARRAY) {
        items = (const llmh_toml_node *const *)n->items;
        count = n->n;
    } else if (n->type != LLMH_TOML_INTEGER) {
        return bm_fail(c, n, "%s must be an array of integers, got %s", what, llmh__toml_type_name(n->type));
    }
    int64_t *v = bm_alloc(c->spec, count * sizeof *v);
    if (!v) return bm_oom();
    for (size_t i = 0; i < count; i++) {
        llmh_status st = bm_int(c, items[i], what, lo, hi, &v[i]);
        if (st) return st;
    }
    out->v = v;
    out->n = count;
    out->given = true;
    return LLMH_OK;
}

/* pg: [[P, T], ...] or one pair [P, T]. */
static llmh_status bm_pairs(const bm_ctx *c, const llmh_toml_node *n, llmh_bench_ints *out) {
    if (n->type != LLMH_TOML_ARRAY)
        return bm_fail(c, n, "pg must be an array of [prompt, generated] pairs, got %s", llmh__toml_type_name(n->type));
    const llmh_toml_node *const *pairs = (const llmh_toml_node *const *)n->items;
    size_t count = n->n;
    if (n->n > 0 && n->items[0]->type != LLMH_TOML_ARRAY) {
        pairs = (const llmh_toml_node *const *)&n; /* a single pair */
        count = 1;
    }
    int64_t *v = bm_alloc(c->spec, 2 * count * sizeof *v);
    if (!v) return bm_oom();
    for (size_t i = 0; i < count; i++) {
        const llmh_toml_node *p = pairs[i];
        if (p->type != LLMH_TOML_ARRAY || p->n != 2)
            return bm_fail(c, p, "pg entries must be [prompt, generated] pairs of two integers");
        llmh_status st;
        if ((st = bm_int(c, p->items[0], "pg prompt size", 1, 1 << 20, &v[2 * i])) ||
            (st = bm_int(c, p->items[1], "pg generated size", 1, 1 << 20, &v[2 * i + 1])))
            return st;
    }
    out->v = v;
    out->n = 2 * count;
    out->given = true;
    return LLMH_OK;
}

static llmh_status bm_read_bench(const bm_ctx *c, const llmh_toml_node *t) {
    static const char *const known[] = {"pp", "tg", "pg", "depth", "np", "reps", "warmup", "ctx", "kv"};
    if (t->type != LLMH_TOML_TABLE)
        return bm_fail(c, t, "bench must be a table ([bench]), got %s", llmh__toml_type_name(t->type));
    llmh_bench_spec *s = &c->spec->pub;
    for (size_t i = 0; i < t->n; i++) {
        const llmh_toml_node *v = t->items[i];
        const char *k = v->key;
        llmh_status st = LLMH_OK;
        if (!strcmp(k, "pp")) st = bm_ints(c, v, "pp", 1, 1 << 20, &s->pp);
        else if (!strcmp(k, "tg")) st = bm_ints(c, v, "tg", 1, 1 << 20, &s->tg);
        else if (!strcmp(k, "pg")) st = bm_pairs(c, v, &s->pg);
        else if (!strcmp(k, "depth") || !strcmp(k, "np")) {
            int is_depth = k[0] == 'd';
            llmh_bench_ints *dst = is_depth ? &s->depth : &s->np;
            st = bm_ints(c, v, k, is_depth ? 0 : 1, is_depth ? 1 << 24 : 1024, dst);
            if (!st && dst->n == 0)
                return bm_fail(c, v, "%s must list at least one value (every test runs at each)", k);
        }
        else if (!strcmp(k, "reps")) st = bm_int(c, v, "reps", 1, 1000, &s->reps);
        else if (!strcmp(k, "warmup")) st = bm_int(c, v, "warmup", 0, 100, &s->warmup);
        else if (!strcmp(k, "ctx")) st = bm_int(c, v, "ctx", 1, 1 << 24, &s->ctx);
        else if (!strcmp(k, "kv")) {
            if (!bm_plain_string(v) || (strcmp(v->str, "f16") && strcmp(v->str, "f32")))
                return bm_fail(c, v, "kv must be \"f16\" or \"f32\"");
            if (!(s->kv = bm_strdup(c->spec, v->str))) return bm_oom();
        } else return bm_unknown(c, v, "in [bench]", known, sizeof known / sizeof known[0]);
        if (st) return st;
    }
    return LLMH_OK;
}

/* Overrides being collected for one variant. */
typedef struct bm_sets {
    llmh_bench_override *v;
    size_t n, cap;
} bm_sets;

/* Flatten `n` (a value under dotted key `prefix`) into overrides: tables
 * recurse (merging a table equals setting each of its keys), anything else
 * is one override. */
static llmh_status bm_flatten(const bm_ctx *c, const char *vname, const char *prefix, const llmh_toml_node *n,
                              bm_sets *out) {
    if (n->type == LLMH_TOML_TABLE) {
        if (n->n == 0) return bm_fail(c, n, "variant '%s': set %s is an empty table", vname, prefix);
        for (size_t i = 0; i < n->n; i++) {
            const llmh_toml_node *m = n->items[i];
            char *key = NULL;
            if (asprintf(&key, "%s.%s", prefix, m->key) < 0) return bm_oom();
            llmh_status st = bm_flatten(c, vname, key, m, out);
            free(key);
            if (st) return st;
        }
        return LLMH_OK;
    }
    /* every segment of the key must be non-empty */
    size_t klen = strlen(prefix);
    if (klen == 0 || prefix[0] == '.' || prefix[klen - 1] == '.' || strstr(prefix, ".."))
        return bm_fail(c, n, "variant '%s': set key '%s' has an empty part (write \"section.key\")", vname, prefix);
    for (size_t i = 0; i < out->n; i++) {
        const char *k = out->v[i].key;
        size_t kl = strlen(k);
        int same = !strcmp(k, prefix);
        int nested = (kl < klen && !strncmp(k, prefix, kl) && prefix[kl] == '.') ||
                     (klen < kl && !strncmp(k, prefix, klen) && k[klen] == '.');
        if (same || nested)
            return bm_fail(c, n, "variant '%s': set %s conflicts with set %s (line %d)", vname, prefix, k,
                           out->v[i].line);
    }
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        llmh_bench_override *nv = realloc(out->v, cap * sizeof *nv);
        if (!nv) return bm_oom();
        out->v = nv;
        out->cap = cap;
    }
    bm_buf b = {0};
    bm_render(&b, n);
    char *key = bm_strdup(c->spec, prefix);
    char *val = b.oom ? NULL : bm_strdup(c->spec, b.p ? b.p : "");
    free(b.p);
    if (!key || !val) return bm_oom();
    out->v[out->n++] = (llmh_bench_override){key, val, n->key_line > 0 ? n->key_line : n->line,
                                              n->key_line > 0 ? n->key_col : n->col};
    return LLMH_OK;
}

static int bm_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > BM_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._+@-", s[i])) return 0;
    return 1;
}

static llmh_status bm_read_variant(const bm_ctx *c, const llmh_toml_node *t, size_t index, const char *top_base,
                                   llmh_bench_variant *out) {
    static const char *const known[] = {"name", "base", "set"};
    if (t->type != LLMH_TOML_TABLE)
        return bm_fail(c, t, "variant[%zu] must be a table ([[variant]]), got %s", index,
                       llmh__toml_type_name(t->type));
    const llmh_toml_node *name = NULL, *base = NULL, *set = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const llmh_toml_node *v = t->items[i];
        if (!strcmp(v->key, "name")) name = v;
        else if (!strcmp(v->key, "base")) base = v;
        else if (!strcmp(v->key, "set")) set = v;
        else return bm_unknown(c, v, "in [[variant]]", known, sizeof known / sizeof known[0]);
    }
    if (!name) return bm_fail(c, t, "variant %zu has no name (add name = \"...\")", index + 1);
    if (!bm_plain_string(name) || !bm_name_ok(name->str))
        return bm_fail(c, name,
                       "variant name must be 1..%d characters of letters, digits and . _ + @ - (it names CSV rows, "
                       "JSON entries and chart bars)",
                       BM_MAX_NAME);
    if (!(out->name = bm_strdup(c->spec, name->str))) return bm_oom();
    out->line = t->line;
    llmh_status st;
    if (base) {
        if ((st = bm_base(c, base, &out->base))) return st;
    } else if (top_base) {
        out->base = top_base;
    } else {
        return bm_fail(c, t,
                       "variant '%s' has no base manifest: set base = \"FILE.toml\" at the top of the bench "
                       "manifest (or in this variant)",
                       out->name);
    }
    if (set) {
        if (set->type != LLMH_TOML_TABLE)
            return bm_fail(c, set,
                           "variant '%s': set must be a table of overrides, e.g. set = { \"backend.plugin\" = "
                           "\"onednn\" }, got %s",
                           out->name, llmh__toml_type_name(set->type));
        bm_sets sets = {0};
        st = LLMH_OK;
        for (size_t i = 0; i < set->n && !st; i++) st = bm_flatten(c, out->name, set->items[i]->key, set->items[i], &sets);
        if (!st && sets.n) {
            llmh_bench_override *kept = bm_alloc(c->spec, sets.n * sizeof *kept);
            if (!kept) st = bm_oom();
            else {
                memcpy(kept, sets.v, sets.n * sizeof *kept);
                out->sets = kept;
                out->n_sets = sets.n;
            }
        }
        free(sets.v);
        if (st) return st;
    }
    return LLMH_OK;
}

static llmh_status bm_read(const bm_ctx *c, const llmh_toml_node *root) {
    static const char *const known[] = {"base", "bench", "variant"};
    const llmh_toml_node *base = NULL, *bench = NULL, *variant = NULL;
    for (size_t i = 0; i < root->n; i++) {
        const llmh_toml_node *v = root->items[i];
        if (!strcmp(v->key, "base")) base = v;
        else if (!strcmp(v->key, "bench")) bench = v;
        else if (!strcmp(v->key, "variant")) variant = v;
        else return bm_unknown(c, v, "at the top of a bench manifest", known, sizeof known / sizeof known[0]);
    }
    llmh_bench_spec *s = &c->spec->pub;
    llmh_status st;
    const char *top_base = NULL;
    if (base && (st = bm_base(c, base, &top_base))) return st;
    if (bench && (st = bm_read_bench(c, bench))) return st;
    if (!variant || (variant->type == LLMH_TOML_ARRAY && variant->n == 0))
        return bm_fail(c, NULL, "no variants: add [[variant]] tables (name = \"...\", set = { ... })");
    if (variant->type != LLMH_TOML_ARRAY)
        return bm_fail(c, variant, "variant must be an array of tables ([[variant]]), got %s",
                       llmh__toml_type_name(variant->type));
    llmh_bench_variant *vs = bm_alloc(c->spec, variant->n * sizeof *vs);
    if (!vs) return bm_oom();
    for (size_t i = 0; i < variant->n; i++) {
        if ((st = bm_read_variant(c, variant->items[i], i, top_base, &vs[i]))) return st;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(vs[j].name, vs[i].name))
                return bm_fail(c, variant->items[i], "two variants are named '%s' (lines %d and %d)", vs[i].name,
                               vs[j].line, vs[i].line);
    }
    s->variants = vs;
    s->n_variants = variant->n;
    return LLMH_OK;
}

void llmh_bench_spec_free(llmh_bench_spec *spec) {
    if (!spec) return;
    bm_spec *s = (bm_spec *)spec;
    for (size_t i = 0; i < s->n_allocs; i++) free(s->allocs[i]);
    free(s->allocs);
    free(s);
}

llmh_status llmh_bench_spec_parse(const char *text, size_t len, const char *name, const char *base_dir,
                                  llmh_bench_spec **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_spec_parse: NULL out");
    *out = NULL;
    if (!text && len) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_spec_parse: NULL text");
    llmh_clear_error();
    if (!name) name = "<bench manifest>";
    bm_spec *s = calloc(1, sizeof *s);
    if (!s) return bm_oom();
    s->pub.reps = s->pub.warmup = s->pub.ctx = -1;
    char cwd[PATH_MAX];
    char *dir = NULL;
    if (base_dir && base_dir[0] == '/') dir = strdup(base_dir);
    else if (getcwd(cwd, sizeof cwd)) dir = base_dir && *base_dir ? bm_join(cwd, base_dir) : strdup(cwd);
    if (!dir || !(s->pub.dir = bm_strdup(s, dir)) || !(s->pub.file = bm_strdup(s, name))) {
        free(dir);
        llmh_bench_spec_free(&s->pub);
        return dir ? bm_oom() : llmh__fail(LLMH_ERR_IO, "%s: cannot get the current directory", name);
    }
    free(dir);
    bm_ctx c = {s, s->pub.file};
    char err[1024];
    int line = 0, col = 0;
    llmh_toml_node *root = NULL;
    int rc = llmh__toml_parse(text ? text : "", len, &root, err, sizeof err, &line, &col);
    llmh_status st = LLMH_OK;
    if (rc == 1) {
        if (line > 0) llmh_set_error("%s:%d:%d: TOML syntax error: %s", name, line, col, err);
        else llmh_set_error("%s: TOML syntax error: %s", name, err);
        st = LLMH_ERR_CONFIG;
    } else if (rc != 0) {
        st = llmh__fail(LLMH_ERR_NO_MEMORY, "%s: %s", name, err);
    } else {
        st = bm_read(&c, root);
    }
    llmh__toml_free(root);
    if (st) {
        llmh_bench_spec_free(&s->pub);
        return st;
    }
    *out = &s->pub;
    return LLMH_OK;
}

llmh_status llmh_bench_spec_load(const char *path, llmh_bench_spec **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_spec_load: NULL out");
    *out = NULL;
    if (!path || !*path) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_spec_load: no path");
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        return llmh__fail(e == ENOENT ? LLMH_ERR_NOT_FOUND : LLMH_ERR_IO, "%s: cannot open bench manifest: %s", path,
                          strerror(e));
    }
    FILE *f = fopen(real, "rb");
    if (!f) return llmh__fail(LLMH_ERR_IO, "%s: cannot open bench manifest: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)BM_MAX_FILE) {
        fclose(f);
        return llmh__fail(LLMH_ERR_IO, "%s: not a regular file of at most %u bytes", path, BM_MAX_FILE);
    }
    size_t size = (size_t)sb.st_size;
    char *text = malloc(size + 1);
    if (!text) {
        fclose(f);
        return bm_oom();
    }
    size_t got = fread(text, 1, size, f);
    int bad = ferror(f) || got != size;
    fclose(f);
    if (bad) {
        free(text);
        return llmh__fail(LLMH_ERR_IO, "%s: cannot read the bench manifest", path);
    }
    text[size] = 0;
    char *dir = bm_dirname(real);
    if (!dir) {
        free(text);
        return bm_oom();
    }
    llmh_status st = llmh_bench_spec_parse(text, size, path, dir, out);
    free(dir);
    free(text);
    return st;
}

/* ======================================================================== */
/* 4. A variant's manifest                                                   */
/* ======================================================================== */
/* The document `include = BASE` followed by the first n_sets overrides. */
static char *bm_variant_text(const llmh_bench_variant *v, size_t n_sets, size_t *len) {
    bm_buf b = {0};
    bm_puts(&b, "include = ");
    bm_quote(&b, v->base, strlen(v->base));
    bm_puts(&b, "\n");
    for (size_t i = 0; i < n_sets; i++) {
        bm_render_key(&b, v->sets[i].key);
        bm_puts(&b, " = ");
        bm_puts(&b, v->sets[i].value);
        bm_puts(&b, "\n");
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

static llmh_status bm_parse_variant(const llmh_bench_spec *spec, const llmh_bench_variant *v, size_t n_sets,
                                    const char *doc_name, llmh_manifest **out) {
    size_t len = 0;
    char *text = bm_variant_text(v, n_sets, &len);
    if (!text) return bm_oom();
    llmh_status st = llmh_manifest_parse(text, len, doc_name, spec->dir, out);
    free(text);
    return st;
}

/* The manifest loader's message without the generated document's
 * "name:line:col: " prefix (the caller names the place in the bench file). */
static const char *bm_strip_doc(const char *msg, const char *doc_name) {
    size_t n = strlen(doc_name);
    if (strncmp(msg, doc_name, n) != 0) return msg;
    const char *p = msg + n;
    for (int part = 0; part < 2 && *p == ':'; part++) {
        const char *q = p + 1;
        while (isdigit((unsigned char)*q)) q++;
        if (q == p + 1) break;
        p = q;
    }
    if (*p == ':') p++;
    while (*p == ' ') p++;
    return p;
}

llmh_status llmh_bench_variant_manifest(const llmh_bench_spec *spec, size_t i, llmh_manifest **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_variant_manifest: NULL out");
    *out = NULL;
    if (!spec || i >= spec->n_variants)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_bench_variant_manifest: no variant %zu", i);
    const llmh_bench_variant *v = &spec->variants[i];
    char *doc_name = NULL;
    if (asprintf(&doc_name, "%s [variant %s]", spec->file, v->name) < 0) return bm_oom();
    llmh_status st = bm_parse_variant(spec, v, v->n_sets, doc_name, out);
    if (st == LLMH_OK || st == LLMH_ERR_NO_MEMORY) {
        free(doc_name);
        return st;
    }
    /* Find the shortest failing document: the base alone (k = 0), then one
     * override more each time; the last override it holds is the culprit.
     * When every shorter one loads, the full document (k = n_sets) is it. */
    char *msg = strdup(llmh_last_error());
    if (!msg) {
        free(doc_name);
        return bm_oom();
    }
    size_t k = 0;
    for (; k < v->n_sets; k++) {
        llmh_manifest *m = NULL;
        llmh_status sk = bm_parse_variant(spec, v, k, doc_name, &m);
        llmh_manifest_free(m);
        if (sk == LLMH_OK) continue;
        char *mk = strdup(llmh_last_error());
        if (mk) {
            free(msg);
            msg = mk;
            st = sk;
        }
        break;
    }
    if (k == 0)
        llmh_set_error("%s:%d: variant '%s': its base manifest does not load: %s", spec->file, v->line, v->name, msg);
    else {
        const llmh_bench_override *o = &v->sets[k - 1];
        llmh_set_error("%s:%d:%d: variant '%s': set %s = %s: %s", spec->file, o->line, o->col, v->name, o->key,
                       o->value, bm_strip_doc(msg, doc_name));
    }
    free(msg);
    free(doc_name);
    return st;
}

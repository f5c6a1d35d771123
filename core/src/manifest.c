/*
 * manifest.c — the TOML manifest: read, include, validate, resolve, dump.
 *
 * Data flow, top to bottom:
 *   1. origins and a small arena (strings of the resolved config live there);
 *   2. tree helpers over toml-shim's C tree (find, clone, merge);
 *   3. reading files and resolving `include` (included files first, the
 *      including file overrides key by key);
 *   4. the schema: one table of known keys per section, checked strictly
 *      (unknown keys are errors, with a suggestion) except inside the open
 *      `options` tables, whose keys belong to plugins;
 *   5. building llmh_config from the validated tree;
 *   6. the public API (load, parse, set, where, dump).
 * docs/manifest.md documents the schema implemented here.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch-internal.h"
#include "internal.h"
#include "toml-shim.h"

#define MF_MAX_INCLUDE_DEPTH 16
#define MF_MAX_FILE_BYTES (16u << 20)
#define MF_MAX_KEY_DEPTH 32

/* ======================================================================== */
/* 1. Origins and arena                                                      */
/* ======================================================================== */

/* A file (or "--set" assignment) that contributed nodes to the tree. */
typedef struct mf_origin {
    char *name;              /* as shown in messages: the path as given, or "--set" */
    char *dir;               /* absolute directory its relative paths resolve against */
    struct mf_origin *next;
} mf_origin;

/* Every allocation of a built config; released together with the manifest,
 * so pointers handed out by llmh_manifest_config() stay valid until
 * llmh_manifest_free() even across llmh_manifest_set(). */
typedef struct mf_chunk {
    struct mf_chunk *next;
    max_align_t data[];
} mf_chunk;

enum { MF_SEC_MODEL, MF_SEC_BACKEND, MF_SEC_TOKENIZER, MF_SEC_SAMPLER, MF_SEC_ROUTER, MF_SEC_OPEN_COUNT };

struct llmh_manifest {
    llmh_toml_node *tree;          /* merged, validated document (without `include`) */
    mf_origin *origins;
    const mf_origin *root;         /* the top-level file */
    mf_chunk *chunks;
    llmh_config cfg;
    size_t n_known[MF_SEC_OPEN_COUNT]; /* leading known keys of each options list (for dump) */
};

static mf_origin *mf_origin_new(llmh_manifest *m, const char *name, const char *dir) {
    mf_origin *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->name = strdup(name);
    o->dir = strdup(dir);
    if (!o->name || !o->dir) {
        free(o->name);
        free(o->dir);
        free(o);
        return NULL;
    }
    o->next = m->origins;
    m->origins = o;
    return o;
}

static void *mf_alloc(mf_chunk **chunks, size_t size) {
    if (size > SIZE_MAX - sizeof(mf_chunk)) return NULL;
    mf_chunk *c = calloc(1, sizeof(mf_chunk) + (size ? size : 1));
    if (!c) return NULL;
    c->next = *chunks;
    *chunks = c;
    return c->data;
}

static char *mf_strndup(mf_chunk **chunks, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = mf_alloc(chunks, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *mf_strdup(mf_chunk **chunks, const char *s) { return mf_strndup(chunks, s, strlen(s)); }

static void mf_chunks_free(mf_chunk *c) {
    while (c) {
        mf_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* ======================================================================== */
/* Errors                                                                    */
/* ======================================================================== */

/* Set "file:line:col: message" for node `n` (key position when prefer_key
 * and known, else the value's) and return LLMH_ERR_CONFIG. */
static llmh_status mf_fail_node(const llmh_toml_node *n, int prefer_key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static llmh_status mf_fail_node(const llmh_toml_node *n, int prefer_key, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const mf_origin *o = n ? n->origin : NULL;
    int line = 0, col = 0;
    if (n) {
        if ((prefer_key && n->key_line > 0) || n->line <= 0) {
            line = n->key_line;
            col = n->key_col;
        } else {
            line = n->line;
            col = n->col;
        }
    }
    if (o && line > 0)
        llmh_set_error("%s:%d:%d: %s", o->name, line, col, msg);
    else if (o)
        llmh_set_error("%s: %s", o->name, msg);
    else
        llmh_set_error("%s", msg);
    return LLMH_ERR_CONFIG;
}

static llmh_status mf_oom(void) { return llmh__fail(LLMH_ERR_NO_MEMORY, "manifest: out of memory"); }

/* Levenshtein distance of two short strings (capped inputs). */
static size_t mf_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return SIZE_MAX;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* The closest candidate to `key` when it is close enough to be a typo. */
static const char *mf_suggest(const char *key, const char *const *cands, size_t n) {
    size_t len = strlen(key), limit = len <= 4 ? 1 : 2, best = SIZE_MAX;
    const char *found = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t d = mf_edit_distance(key, cands[i]);
        if (d <= limit && d < best) {
            best = d;
            found = cands[i];
        }
    }
    return found;
}

/* ======================================================================== */
/* 2. Tree helpers                                                           */
/* ======================================================================== */

static ptrdiff_t mf_index_of(const llmh_toml_node *t, const char *key) {
    if (!t || t->type != LLMH_TOML_TABLE) return -1;
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i]->key && !strcmp(t->items[i]->key, key)) return (ptrdiff_t)i;
    return -1;
}

static llmh_toml_node *mf_member(const llmh_toml_node *t, const char *key) {
    ptrdiff_t i = mf_index_of(t, key);
    return i < 0 ? NULL : t->items[i];
}

static void mf_tag(llmh_toml_node *n, const mf_origin *o) {
    n->origin = o;
    for (size_t i = 0; i < n->n; i++) mf_tag(n->items[i], o);
}

static llmh_toml_node *mf_clone(const llmh_toml_node *n) {
    llmh_toml_node *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    *c = *n;
    c->key = NULL;
    c->str = NULL;
    c->items = NULL;
    c->n = 0;
    if (n->key && !(c->key = strdup(n->key))) goto oom;
    if (n->str) {
        if (!(c->str = malloc(n->len + 1))) goto oom;
        memcpy(c->str, n->str, n->len + 1);
    }
    if (n->n) {
        if (!(c->items = calloc(n->n, sizeof *c->items))) goto oom;
        for (size_t i = 0; i < n->n; i++) {
            if (!(c->items[i] = mf_clone(n->items[i]))) goto oom;
            c->n++;
        }
    }
    return c;
oom:
    llmh__toml_free(c);
    return NULL;
}

static int mf_append(llmh_toml_node *t, llmh_toml_node *child) {
    if (t->n >= SIZE_MAX / sizeof *t->items - 1) return -1;
    llmh_toml_node **items = realloc(t->items, (t->n + 1) * sizeof *items);
    if (!items) return -1;
    t->items = items;
    t->items[t->n++] = child;
    return 0;
}

/* Decimal array index ("0", "12"), or -1. */
static long mf_parse_index(const char *s) {
    if (!*s || strlen(s) > 9) return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return -1;
    return strtol(s, NULL, 10);
}

/* Merge table `src` into table `dst`, key by key: tables merge recursively,
 * every other value (arrays included) replaces. Takes ownership of src.
 * With allow_index (--set), a table of decimal keys merges into the
 * elements of an existing array ("adapter.0.scale"). Returns -1 on OOM
 * (src is freed either way). */
static int mf_merge(llmh_toml_node *dst, llmh_toml_node *src, int allow_index) {
    int rc = 0;
    for (size_t i = 0; i < src->n && rc == 0; i++) {
        llmh_toml_node *s = src->items[i];
        ptrdiff_t di = mf_index_of(dst, s->key);
        if (di < 0) {
            if (mf_append(dst, s) != 0) { rc = -1; break; }
            src->items[i] = NULL;
            continue;
        }
        llmh_toml_node *d = dst->items[di];
        if (d->type == LLMH_TOML_TABLE && s->type == LLMH_TOML_TABLE) {
            src->items[i] = NULL;
            d->origin = s->origin;
            if (s->key_line > 0) { d->key_line = s->key_line; d->key_col = s->key_col; }
            if (s->line > 0) { d->line = s->line; d->col = s->col; }
            rc = mf_merge(d, s, allow_index);
            continue;
        }
        if (allow_index && d->type == LLMH_TOML_ARRAY && s->type == LLMH_TOML_TABLE && s->n > 0) {
            int all_index = 1;
            for (size_t k = 0; k < s->n; k++) {
                long idx = mf_parse_index(s->items[k]->key);
                if (idx < 0 || (size_t)idx >= d->n) all_index = 0;
            }
            if (all_index) {
                for (size_t k = 0; k < s->n && rc == 0; k++) {
                    llmh_toml_node *sv = s->items[k];
                    size_t idx = (size_t)mf_parse_index(sv->key);
                    llmh_toml_node *el = d->items[idx];
                    s->items[k] = NULL;
                    if (el->type == LLMH_TOML_TABLE && sv->type == LLMH_TOML_TABLE) {
                        rc = mf_merge(el, sv, allow_index);
                    } else {
                        free(sv->key);
                        sv->key = NULL;
                        llmh__toml_free(el);
                        d->items[idx] = sv;
                    }
                }
                continue;
            }
        }
        llmh__toml_free(d);
        dst->items[di] = s;
        src->items[i] = NULL;
    }
    llmh__toml_free(src);
    return rc;
}

/* ======================================================================== */
/* 3. Files, paths and includes                                              */
/* ======================================================================== */

static int mf_getcwd(char *buf, size_t size) { return getcwd(buf, size) ? 0 : -1; }

/* Absolute, lexically normalized path of `p` relative to `dir` ("~/" means
 * $HOME). Returns a malloc'd string or NULL (OOM or too long). */
static char *mf_resolve_path(const char *dir, const char *p) {
    char joined[PATH_MAX * 2];
    const char *home = getenv("HOME");
    int w;
    if (p[0] == '/')
        w = snprintf(joined, sizeof joined, "%s", p);
    else if (p[0] == '~' && (p[1] == '/' || p[1] == 0) && home && *home)
        w = snprintf(joined, sizeof joined, "%s/%s", home, p + 1);
    else
        w = snprintf(joined, sizeof joined, "%s/%s", dir, p);
    if (w < 0 || (size_t)w >= sizeof joined) return NULL;
    /* normalize: drop "", ".", and resolve ".." lexically */
    char *out = malloc((size_t)w + 2);
    if (!out) return NULL;
    size_t len = 0;
    const char *s = joined;
    while (*s) {
        while (*s == '/') s++;
        if (!*s) break;
        const char *e = strchr(s, '/');
        size_t seg = e ? (size_t)(e - s) : strlen(s);
        if (seg == 1 && s[0] == '.') {
            /* skip */
        } else if (seg == 2 && s[0] == '.' && s[1] == '.') {
            while (len > 0 && out[len - 1] != '/') len--;
            if (len > 0) len--; /* the slash */
        } else {
            out[len++] = '/';
            memcpy(out + len, s, seg);
            len += seg;
        }
        s += seg;
    }
    if (len == 0) out[len++] = '/';
    out[len] = 0;
    return out;
}

/* Directory part of an absolute path (malloc'd). */
static char *mf_dirname(const char *abs) {
    const char *slash = strrchr(abs, '/');
    size_t n = slash ? (size_t)(slash - abs) : 0;
    if (n == 0) return strdup("/");
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, abs, n);
    d[n] = 0;
    return d;
}

/* Read a whole regular file. Returns 0, or an errno value (EFBIG: too big,
 * EISDIR: not a regular file). */
static int mf_read_file(const char *path, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno ? errno : EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return EISDIR;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > MF_MAX_FILE_BYTES) {
        fclose(f);
        return EFBIG;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ENOMEM;
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (err || got != n) {
        free(buf);
        return EIO;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return 0;
}

static const char *mf_errno_str(int e) {
    if (e == EFBIG) return "file too large for a manifest (limit 16 MiB)";
    if (e == EISDIR) return "not a regular file";
    return strerror(e);
}

typedef struct mf_stack_entry {
    char real[PATH_MAX];
    const char *name;
} mf_stack_entry;

typedef struct mf_stack {
    mf_stack_entry e[MF_MAX_INCLUDE_DEPTH + 2];
    int n;
} mf_stack;

static llmh_status mf_load_text(llmh_manifest *m, const char *text, size_t len, const mf_origin *o,
                                mf_stack *stack, int depth, llmh_toml_node **out);

/* Display name of an included file: beside its includer's name. */
static char *mf_include_display(const mf_origin *o, const char *rel, const char *abs) {
    if (rel[0] == '/' || rel[0] == '~') return strdup(abs);
    const char *slash = strrchr(o->name, '/');
    if (!slash) return strdup(rel);
    size_t n = (size_t)(slash - o->name) + 1, rl = strlen(rel);
    char *d = malloc(n + rl + 1);
    if (!d) return NULL;
    memcpy(d, o->name, n);
    memcpy(d + n, rel, rl + 1);
    return d;
}

static llmh_status mf_include_one(llmh_manifest *m, const llmh_toml_node *s, const mf_origin *o,
                                  mf_stack *stack, int depth, llmh_toml_node **out) {
    *out = NULL;
    if (s->len == 0 || strlen(s->str) != s->len)
        return mf_fail_node(s, 0, "include must name a file, got an empty string");
    if (depth >= MF_MAX_INCLUDE_DEPTH)
        return mf_fail_node(s, 0, "include '%s': includes nested deeper than %d levels", s->str,
                            MF_MAX_INCLUDE_DEPTH);
    char *abs = mf_resolve_path(o->dir, s->str);
    if (!abs) return mf_fail_node(s, 0, "include '%s': path too long", s->str);
    char real[PATH_MAX];
    if (!realpath(abs, real)) {
        int e = errno;
        llmh_status st = mf_fail_node(s, 0, "include '%s' not found (looked for %s): %s", s->str, abs, strerror(e));
        free(abs);
        return st;
    }
    char *display = mf_include_display(o, s->str, abs);
    free(abs);
    if (!display) return mf_oom();
    for (int i = 0; i < stack->n; i++) {
        if (strcmp(stack->e[i].real, real) != 0) continue;
        char chain[1024];
        size_t used = 0;
        chain[0] = 0;
        for (int k = i; k < stack->n; k++) {
            int w = snprintf(chain + used, sizeof chain - used, "%s -> ", stack->e[k].name);
            if (w < 0 || (size_t)w >= sizeof chain - used) break;
            used += (size_t)w;
        }
        snprintf(chain + used, sizeof chain - used, "%s", display);
        llmh_status st = mf_fail_node(s, 0, "include cycle: %s", chain);
        free(display);
        return st;
    }
    char *text = NULL;
    size_t len = 0;
    int e = mf_read_file(real, &text, &len);
    if (e) {
        llmh_status st = mf_fail_node(s, 0, "include '%s': cannot read %s: %s", s->str, real, mf_errno_str(e));
        free(display);
        return st;
    }
    char *dir = mf_dirname(real);
    const mf_origin *inc = dir ? mf_origin_new(m, display, dir) : NULL;
    free(dir);
    if (!inc) {
        free(display);
        free(text);
        return mf_oom();
    }
    mf_stack_entry *top = &stack->e[stack->n++];
    memcpy(top->real, real, sizeof real);
    top->name = inc->name;
    llmh_status st = mf_load_text(m, text, len, inc, stack, depth + 1, out);
    stack->n--;
    free(display);
    free(text);
    return st;
}

/* Parse one document, then its includes: the included files load first (in
 * order, each overriding the previous) and this document overrides them. */
static llmh_status mf_load_text(llmh_manifest *m, const char *text, size_t len, const mf_origin *o,
                                mf_stack *stack, int depth, llmh_toml_node **out) {
    char err[1024];
    int line = 0, col = 0;
    llmh_toml_node *root = NULL;
    *out = NULL;
    int rc = llmh__toml_parse(text, len, &root, err, sizeof err, &line, &col);
    if (rc == 1) {
        if (line > 0)
            llmh_set_error("%s:%d:%d: TOML syntax error: %s", o->name, line, col, err);
        else
            llmh_set_error("%s: TOML syntax error: %s", o->name, err);
        return LLMH_ERR_CONFIG;
    }
    if (rc != 0) return llmh__fail(LLMH_ERR_NO_MEMORY, "%s: %s", o->name, err);
    mf_tag(root, o);

    ptrdiff_t ii = mf_index_of(root, "include");
    if (ii < 0) {
        *out = root;
        return LLMH_OK;
    }
    llmh_toml_node *inc = root->items[ii];
    memmove(root->items + ii, root->items + ii + 1, (root->n - (size_t)ii - 1) * sizeof *root->items);
    root->n--;

    llmh_status st = LLMH_OK;
    llmh_toml_node *base = NULL;
    const llmh_toml_node *const *list = (const llmh_toml_node *const *)&inc;
    size_t n_list = 1;
    if (inc->type == LLMH_TOML_ARRAY) {
        list = (const llmh_toml_node *const *)inc->items;
        n_list = inc->n;
    }
    for (size_t i = 0; i < n_list && st == LLMH_OK; i++) {
        if (list[i]->type != LLMH_TOML_STRING)
            st = inc->type == LLMH_TOML_ARRAY
                     ? mf_fail_node(list[i], 0, "include[%zu] must be a string, got %s", i,
                                    llmh__toml_type_name(list[i]->type))
                     : mf_fail_node(list[i], 0, "include must be a string or an array of strings, got %s",
                                    llmh__toml_type_name(list[i]->type));
    }
    for (size_t i = 0; i < n_list && st == LLMH_OK; i++) {
        llmh_toml_node *t = NULL;
        st = mf_include_one(m, list[i], o, stack, depth, &t);
        if (st != LLMH_OK) break;
        if (!base)
            base = t;
        else if (mf_merge(base, t, 0) != 0)
            st = mf_oom();
    }
    llmh__toml_free(inc);
    if (st != LLMH_OK) {
        llmh__toml_free(base);
        llmh__toml_free(root);
        return st;
    }
    if (!base) {
        *out = root;
        return LLMH_OK;
    }
    base->origin = root->origin;
    if (mf_merge(base, root, 0) != 0) {
        llmh__toml_free(base);
        return mf_oom();
    }
    *out = base;
    return LLMH_OK;
}

/* ======================================================================== */
/* 4. Schema                                                                 */
/* ======================================================================== */

typedef enum mf_kind {
    MF_STRING,   /* any string without NUL */
    MF_NAME,     /* a plugin name: [a-z0-9_-]+ */
    MF_PATH,     /* non-empty string, resolved against the file that set it */
    MF_HEX64,    /* 64 hexadecimal digits (sha256) */
    MF_INT,      /* integer within [lo, hi] */
    MF_NUM,      /* integer or float within the range (stored as float) */
    MF_STRINGS,  /* array of strings */
    MF_NAMES,    /* non-empty array of plugin names */
    MF_PATHS,    /* array of paths */
    MF_FILES,    /* [model] files: array of tables {name, sha256, size, url} */
    MF_OPEN      /* the open table: any keys, passed to the plugin */
} mf_kind;

#define MF_LO 0x1u      /* has a lower bound */
#define MF_HI 0x2u      /* has an upper bound */
#define MF_LO_OPEN 0x4u /* lower bound exclusive */
#define MF_HI_OPEN 0x8u /* upper bound exclusive */

typedef struct mf_key {
    const char *key;
    mf_kind kind;
    unsigned flags;
    double lo, hi;
} mf_key;

static const mf_key model_keys[] = {
    {"path", MF_PATH, 0, 0, 0},
    {"format", MF_NAME, 0, 0, 0},
    {"context", MF_INT, MF_LO | MF_HI, 1, 2147483647.0},
    {"kv_type", MF_NAME, 0, 0, 0},   /* "f16" (default) or "f32" */
    {"adapter_type", MF_NAME, 0, 0, 0}, /* "auto" (default), "f32", "f16", "bf16" or "q8_0" */
    {"url", MF_STRING, 0, 0, 0},     /* download: https://, hf://owner/repo[@rev]/file, http:// on loopback */
    {"sha256", MF_HEX64, 0, 0, 0},   /* the file's SHA-256 (verified before it enters the cache) */
    {"size", MF_INT, MF_LO, 0, 0},   /* the file's size in bytes */
    {"files", MF_FILES, 0, 0, 0},    /* a directory: files fetched from url/<name> */
    {"options", MF_OPEN, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key backend_keys[] = {
    {"plugin", MF_NAME, 0, 0, 0},
    {"threads", MF_INT, MF_LO | MF_HI, 0, 4096},
    {"device", MF_INT, MF_LO | MF_HI, -1, 65535},
    {"options", MF_OPEN, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key tokenizer_keys[] = {
    {"plugin", MF_NAME, 0, 0, 0},
    {"options", MF_OPEN, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

/* The standard sampler parameters: the one list of [sampler] keys accepted
 * outside [sampler.options]. A sampler plugin that reads a new standard
 * parameter adds it here (with its range); others go in [sampler.options]. */
static const mf_key sampler_keys[] = {
    {"chain", MF_NAMES, 0, 0, 0},
    {"top_k", MF_INT, MF_LO, 0, 0},
    {"top_p", MF_NUM, MF_LO | MF_HI | MF_LO_OPEN, 0, 1},
    {"min_p", MF_NUM, MF_LO | MF_HI, 0, 1},
    {"typical_p", MF_NUM, MF_LO | MF_HI | MF_LO_OPEN, 0, 1},
    {"temperature", MF_NUM, MF_LO, 0, 0},
    {"seed", MF_INT, MF_LO | MF_HI, 0, 4294967295.0},
    {"repeat_penalty", MF_NUM, MF_LO | MF_LO_OPEN, 0, 0},
    {"frequency_penalty", MF_NUM, MF_LO | MF_HI, -2, 2},
    {"presence_penalty", MF_NUM, MF_LO | MF_HI, -2, 2},
    {"penalty_last_n", MF_INT, MF_LO | MF_HI, -1, 2147483647.0},
    {"min_keep", MF_INT, MF_LO | MF_HI, 0, 2147483647.0},
    {"options", MF_OPEN, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key generate_keys[] = {
    {"max_tokens", MF_INT, MF_LO | MF_HI, -1, 2147483647.0},
    {"stop", MF_STRINGS, 0, 0, 0},
    {"system", MF_STRING, 0, 0, 0},
    {"chat_template", MF_STRING, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key adapter_keys[] = {
    {"name", MF_STRING, 0, 0, 0},
    {"path", MF_PATH, 0, 0, 0},
    {"namespace", MF_STRING, 0, 0, 0},
    {"scale", MF_NUM, MF_LO | MF_HI, -1000, 1000},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key router_keys[] = {
    {"plugin", MF_NAME, 0, 0, 0},
    {"options", MF_OPEN, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

static const mf_key plugins_keys[] = {
    {"paths", MF_PATHS, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

/* Top-level tables. `adapter` is an array of tables ([[adapter]]). */
static const char *const section_names[] = {"model", "backend", "tokenizer", "sampler", "generate",
                                            "adapter", "router", "plugins", "include"};

static size_t mf_key_count(const mf_key *keys) {
    size_t n = 0;
    while (keys[n].key) n++;
    return n;
}

static const char *mf_article(mf_kind k) {
    switch (k) {
    case MF_STRING: return "a string";
    case MF_NAME: return "a plugin name (string)";
    case MF_PATH: return "a path (string)";
    case MF_HEX64: return "a sha256 hex string";
    case MF_INT: return "an integer";
    case MF_NUM: return "a number";
    case MF_STRINGS: return "an array of strings";
    case MF_NAMES: return "an array of names";
    case MF_PATHS: return "an array of paths";
    case MF_FILES: return "an array of tables ({ name = \"...\", sha256 = \"...\" })";
    case MF_OPEN: return "a table";
    }
    return "a value";
}

static void mf_range_text(const mf_key *k, char *buf, size_t size) {
    if ((k->flags & MF_LO) && (k->flags & MF_HI))
        snprintf(buf, size, "in %c%.10g, %.10g%c", (k->flags & MF_LO_OPEN) ? '(' : '[', k->lo, k->hi,
                 (k->flags & MF_HI_OPEN) ? ')' : ']');
    else if (k->flags & MF_LO)
        snprintf(buf, size, "%s %.10g", (k->flags & MF_LO_OPEN) ? ">" : ">=", k->lo);
    else
        snprintf(buf, size, "%s %.10g", (k->flags & MF_HI_OPEN) ? "<" : "<=", k->hi);
}

static int mf_in_range(const mf_key *k, double v) {
    if (v != v) return 0;
    if (k->flags & MF_LO) {
        if ((k->flags & MF_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return 0;
    }
    if (k->flags & MF_HI) {
        if ((k->flags & MF_HI_OPEN) ? !(v < k->hi) : !(v <= k->hi)) return 0;
    }
    return 1;
}

static int mf_valid_name(const char *s, size_t len) {
    if (len == 0 || strlen(s) != len) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* Check one string element for the kinds that hold strings. */
static llmh_status mf_check_string(const char *what, mf_kind kind, const llmh_toml_node *v) {
    if (strlen(v->str) != v->len) return mf_fail_node(v, 0, "%s must not contain a NUL character", what);
    switch (kind) {
    case MF_NAME:
    case MF_NAMES:
        if (!mf_valid_name(v->str, v->len))
            return mf_fail_node(v, 0, "%s must be a plugin name (lower-case letters, digits, '_', '-'), got '%s'",
                                what, v->str);
        break;
    case MF_PATH:
    case MF_PATHS:
        if (v->len == 0) return mf_fail_node(v, 0, "%s must not be empty", what);
        if (v->len >= PATH_MAX) return mf_fail_node(v, 0, "%s is longer than PATH_MAX", what);
        break;
    case MF_HEX64:
        if (v->len != 64) return mf_fail_node(v, 0, "%s must be 64 hexadecimal digits, got %zu characters", what, v->len);
        for (size_t i = 0; i < 64; i++)
            if (!isxdigit((unsigned char)v->str[i]))
                return mf_fail_node(v, 0, "%s must be 64 hexadecimal digits, got '%c' at %zu", what, v->str[i], i);
        break;
    default:
        break;
    }
    return LLMH_OK;
}

/* Type- and range-check value `v` of known key `k`; `dotted` names it. */
static llmh_status mf_check_value(const char *dotted, const mf_key *k, const llmh_toml_node *v) {
    char range[96];
    switch (k->kind) {
    case MF_STRING:
    case MF_NAME:
    case MF_PATH:
    case MF_HEX64:
        if (v->type != LLMH_TOML_STRING)
            return mf_fail_node(v, 0, "%s must be %s, got %s", dotted, mf_article(k->kind),
                                llmh__toml_type_name(v->type));
        return mf_check_string(dotted, k->kind, v);
    case MF_INT:
        if (v->type != LLMH_TOML_INTEGER)
            return mf_fail_node(v, 0, "%s must be an integer, got %s", dotted, llmh__toml_type_name(v->type));
        if (k->flags && !mf_in_range(k, (double)v->i)) {
            mf_range_text(k, range, sizeof range);
            return mf_fail_node(v, 0, "%s must be %s, got %lld", dotted, range, (long long)v->i);
        }
        return LLMH_OK;
    case MF_NUM: {
        double d;
        if (v->type == LLMH_TOML_INTEGER)
            d = (double)v->i;
        else if (v->type == LLMH_TOML_FLOAT)
            d = v->f;
        else
            return mf_fail_node(v, 0, "%s must be a number, got %s", dotted, llmh__toml_type_name(v->type));
        if (!isfinite(d)) return mf_fail_node(v, 0, "%s must be a finite number, got %g", dotted, d);
        if (k->flags && !mf_in_range(k, d)) {
            mf_range_text(k, range, sizeof range);
            return mf_fail_node(v, 0, "%s must be %s, got %.10g", dotted, range, d);
        }
        return LLMH_OK;
    }
    case MF_STRINGS:
    case MF_NAMES:
    case MF_PATHS:
        if (v->type != LLMH_TOML_ARRAY)
            return mf_fail_node(v, 0, "%s must be %s, got %s", dotted, mf_article(k->kind),
                                llmh__toml_type_name(v->type));
        if (k->kind == MF_NAMES && v->n == 0) return mf_fail_node(v, 0, "%s must not be empty", dotted);
        for (size_t i = 0; i < v->n; i++) {
            const llmh_toml_node *e = v->items[i];
            char what[224];
            snprintf(what, sizeof what, "%s[%zu]", dotted, i);
            if (e->type != LLMH_TOML_STRING)
                return mf_fail_node(e, 0, "%s must be a string, got %s", what, llmh__toml_type_name(e->type));
            llmh_status st = mf_check_string(what, k->kind, e);
            if (st) return st;
        }
        return LLMH_OK;
    case MF_FILES:
        if (v->type != LLMH_TOML_ARRAY)
            return mf_fail_node(v, 0, "%s must be %s, got %s", dotted, mf_article(k->kind),
                                llmh__toml_type_name(v->type));
        return LLMH_OK; /* elements: mf_build_files */
    case MF_OPEN:
        if (v->type != LLMH_TOML_TABLE)
            return mf_fail_node(v, 0, "%s must be a table, got %s", dotted, llmh__toml_type_name(v->type));
        return LLMH_OK;
    }
    return LLMH_OK;
}

/* Check every member of table `t` against `keys`: unknown keys are errors
 * (with a suggestion), known ones are type/range checked and stored in
 * found[] (indexed like keys). `label` is "[backend]", `prefix` "backend". */
static llmh_status mf_scan_table(const char *label, const char *prefix, const llmh_toml_node *t,
                                 const mf_key *keys, const llmh_toml_node **found) {
    size_t nk = mf_key_count(keys);
    for (size_t i = 0; i < nk; i++) found[i] = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const llmh_toml_node *v = t->items[i];
        size_t k = 0;
        while (k < nk && strcmp(keys[k].key, v->key) != 0) k++;
        if (k == nk) {
            const char *names[32];
            size_t nn = 0, has_open = 0;
            for (size_t j = 0; j < nk && nn < 32; j++) {
                names[nn++] = keys[j].key;
                if (keys[j].kind == MF_OPEN) has_open = 1;
            }
            const char *s = mf_suggest(v->key, names, nn);
            if (s) return mf_fail_node(v, 1, "unknown key '%s' in %s (did you mean '%s'?)", v->key, label, s);
            if (has_open)
                return mf_fail_node(v, 1, "unknown key '%s' in %s (plugin-specific keys go in [%s.options])",
                                    v->key, label, prefix);
            return mf_fail_node(v, 1, "unknown key '%s' in %s", v->key, label);
        }
        char dotted[192];
        snprintf(dotted, sizeof dotted, "%s.%s", prefix, v->key);
        llmh_status st = mf_check_value(dotted, &keys[k], v);
        if (st) return st;
        found[k] = v;
    }
    return LLMH_OK;
}

static const llmh_toml_node *mf_found(const mf_key *keys, const llmh_toml_node **found, const char *key) {
    for (size_t i = 0; keys[i].key; i++)
        if (!strcmp(keys[i].key, key)) return found[i];
    return NULL;
}

/* ======================================================================== */
/* 5. Building the config                                                    */
/* ======================================================================== */

typedef struct mf_kvvec {
    llmh_kv *v;
    size_t n, cap;
} mf_kvvec;

typedef struct mf_build {
    llmh_manifest *m;
    mf_chunk *chunks;       /* this build's allocations */
    llmh_config cfg;
    size_t n_known[MF_SEC_OPEN_COUNT];
} mf_build;

static llmh_kv *mf_kv_push(mf_kvvec *vec) {
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 8;
        llmh_kv *nv = realloc(vec->v, cap * sizeof *nv);
        if (!nv) return NULL;
        vec->v = nv;
        vec->cap = cap;
    }
    llmh_kv *kv = &vec->v[vec->n++];
    memset(kv, 0, sizeof *kv);
    return kv;
}

static int mf_kv_has(const mf_kvvec *vec, const char *key) {
    for (size_t i = 0; i < vec->n; i++)
        if (!strcmp(vec->v[i].key, key)) return 1;
    return 0;
}

/* Copy a vector into the build's arena as a kv list; frees the vector. */
static llmh_status mf_kv_finish(mf_build *b, mf_kvvec *vec, llmh_kv_list *out) {
    out->items = NULL;
    out->n = 0;
    if (vec->n) {
        llmh_kv *items = mf_alloc(&b->chunks, vec->n * sizeof *items);
        if (!items) {
            free(vec->v);
            vec->v = NULL;
            return mf_oom();
        }
        memcpy(items, vec->v, vec->n * sizeof *items);
        out->items = items;
        out->n = vec->n;
    }
    free(vec->v);
    vec->v = NULL;
    vec->n = vec->cap = 0;
    return LLMH_OK;
}

/* Convert a TOML value (not a table) into an llmh_value in the arena.
 * `what` names it for errors. */
static llmh_status mf_to_value(mf_build *b, const char *what, const llmh_toml_node *n, llmh_value *out) {
    memset(out, 0, sizeof *out);
    switch (n->type) {
    case LLMH_TOML_STRING:
    case LLMH_TOML_DATETIME:
        out->type = LLMH_V_STRING;
        out->v.s.ptr = mf_strndup(&b->chunks, n->str, n->len);
        out->v.s.len = n->len;
        if (!out->v.s.ptr) return mf_oom();
        return LLMH_OK;
    case LLMH_TOML_INTEGER:
        out->type = LLMH_V_I64;
        out->v.i = n->i;
        return LLMH_OK;
    case LLMH_TOML_FLOAT:
        out->type = LLMH_V_F64;
        out->v.f = n->f;
        return LLMH_OK;
    case LLMH_TOML_BOOLEAN:
        out->type = LLMH_V_BOOL;
        out->v.b = n->b;
        return LLMH_OK;
    case LLMH_TOML_ARRAY: {
        llmh_value *items = NULL;
        if (n->n) {
            if (n->n > SIZE_MAX / sizeof *items) return mf_oom();
            items = mf_alloc(&b->chunks, n->n * sizeof *items);
            if (!items) return mf_oom();
        }
        for (size_t i = 0; i < n->n; i++) {
            if (n->items[i]->type == LLMH_TOML_TABLE)
                return mf_fail_node(n->items[i], 0, "%s: tables inside arrays are not supported in plugin options",
                                    what);
            llmh_status st = mf_to_value(b, what, n->items[i], &items[i]);
            if (st) return st;
        }
        out->type = LLMH_V_ARRAY;
        out->v.arr.elem_type = n->n ? items[0].type : LLMH_V_STRING;
        out->v.arr.n = n->n;
        out->v.arr.items = items;
        return LLMH_OK;
    }
    case LLMH_TOML_TABLE:
        break;
    }
    return mf_fail_node(n, 0, "%s: unexpected table", what);
}

/* Flatten open table `t` into vec with dotted keys ("a.b" for nested tables).
 * `label` is e.g. "backend.options"; `section` the owning section name used
 * to reject keys that shadow a known key of the section. */
static llmh_status mf_flatten_open(mf_build *b, mf_kvvec *vec, const char *label, const char *prefix,
                                   const llmh_toml_node *t, const mf_key *section_keys, int depth) {
    if (depth > MF_MAX_KEY_DEPTH) return mf_fail_node(t, 1, "%s: tables nested too deeply", label);
    for (size_t i = 0; i < t->n; i++) {
        const llmh_toml_node *v = t->items[i];
        if (strchr(v->key, '.') || v->key[0] == 0)
            return mf_fail_node(v, 1, "key '%s' in [%s]: plugin option names must be non-empty and contain no '.'",
                                v->key, label);
        char key[512];
        int w = prefix ? snprintf(key, sizeof key, "%s.%s", prefix, v->key) : snprintf(key, sizeof key, "%s", v->key);
        if (w < 0 || (size_t)w >= sizeof key) return mf_fail_node(v, 1, "key '%s' in [%s] is too long", v->key, label);
        if (v->type == LLMH_TOML_TABLE) {
            llmh_status st = mf_flatten_open(b, vec, label, key, v, section_keys, depth + 1);
            if (st) return st;
            continue;
        }
        if (!prefix && section_keys) {
            for (size_t k = 0; section_keys[k].key; k++)
                if (!strcmp(section_keys[k].key, key) && section_keys[k].kind != MF_OPEN) {
                    char sec[64];
                    snprintf(sec, sizeof sec, "%s", label);
                    char *dot = strrchr(sec, '.');
                    if (dot) *dot = 0;
                    return mf_fail_node(v, 1, "key '%s' in [%s] is a standard key: set it in [%s]", key, label, sec);
                }
        }
        if (mf_kv_has(vec, key)) return mf_fail_node(v, 1, "key '%s' in [%s] is set twice", key, label);
        char what[600];
        snprintf(what, sizeof what, "%s.%s", label, key);
        llmh_kv *kv = mf_kv_push(vec);
        if (!kv) return mf_oom();
        if (!(kv->key = mf_strdup(&b->chunks, key))) return mf_oom();
        llmh_status st = mf_to_value(b, what, v, &kv->value);
        if (st) return st;
    }
    return LLMH_OK;
}

static llmh_status mf_push_str(mf_kvvec *vec, const char *key, const char *val) {
    llmh_kv *kv = mf_kv_push(vec);
    if (!kv) return mf_oom();
    kv->key = key; /* static key names */
    kv->value.type = LLMH_V_STRING;
    kv->value.v.s.ptr = val;
    kv->value.v.s.len = strlen(val);
    return LLMH_OK;
}

static llmh_status mf_push_int(mf_kvvec *vec, const char *key, int64_t val) {
    llmh_kv *kv = mf_kv_push(vec);
    if (!kv) return mf_oom();
    kv->key = key;
    kv->value.type = LLMH_V_I64;
    kv->value.v.i = val;
    return LLMH_OK;
}

static llmh_status mf_push_f64(mf_kvvec *vec, const char *key, double val) {
    llmh_kv *kv = mf_kv_push(vec);
    if (!kv) return mf_oom();
    kv->key = key;
    kv->value.type = LLMH_V_F64;
    kv->value.v.f = val;
    return LLMH_OK;
}

static const char *mf_str_or(mf_build *b, const llmh_toml_node *n, const char *def) {
    if (!n) return def;
    return mf_strndup(&b->chunks, n->str, n->len);
}

static const char *mf_path(mf_build *b, const llmh_toml_node *n) {
    const mf_origin *o = n->origin;
    char cwd[PATH_MAX];
    const char *dir = o ? o->dir : NULL;
    if (!dir) {
        if (mf_getcwd(cwd, sizeof cwd) != 0) return NULL;
        dir = cwd;
    }
    char *p = mf_resolve_path(dir, n->str);
    if (!p) return NULL;
    char *r = mf_strdup(&b->chunks, p);
    free(p);
    return r;
}

static double mf_num(const llmh_toml_node *n) { return n->type == LLMH_TOML_INTEGER ? (double)n->i : n->f; }

/* The options list of a section: its known scalar keys first (n_known of
 * them), then the keys of its [<section>.options] table. */
static llmh_status mf_section_options(mf_build *b, mf_kvvec *vec, const char *section, const mf_key *keys,
                                      const llmh_toml_node *open, llmh_kv_list *out, size_t *n_known) {
    *n_known = vec->n;
    llmh_status st = LLMH_OK;
    if (open) {
        char label[64];
        snprintf(label, sizeof label, "%s.options", section);
        st = mf_flatten_open(b, vec, label, NULL, open, keys, 0);
    }
    if (st) {
        free(vec->v);
        vec->v = NULL;
        return st;
    }
    return mf_kv_finish(b, vec, out);
}

static const char *const *mf_string_array(mf_build *b, const llmh_toml_node *arr, int paths, size_t *n) {
    *n = 0;
    if (!arr || arr->n == 0) {
        const char **empty = mf_alloc(&b->chunks, sizeof *empty);
        return (const char *const *)empty;
    }
    const char **v = mf_alloc(&b->chunks, (arr->n + 1) * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < arr->n; i++) {
        v[i] = paths ? mf_path(b, arr->items[i]) : mf_strndup(&b->chunks, arr->items[i]->str, arr->items[i]->len);
        if (!v[i]) return NULL;
    }
    *n = arr->n;
    return (const char *const *)v;
}

static const mf_key file_keys[] = {
    {"name", MF_STRING, 0, 0, 0},
    {"sha256", MF_HEX64, 0, 0, 0},
    {"size", MF_INT, MF_LO, 0, 0},
    {"url", MF_STRING, 0, 0, 0},
    {NULL, MF_STRING, 0, 0, 0},
};

/* Expand and check a URL node (hf:// shorthand, https, loopback http). */
static llmh_status mf_url(mf_build *b, const llmh_toml_node *n, const char *what, bool allow_base, const char **out) {
    char *full = NULL;
    if (llmh_fetch_expand_url(n->str, allow_base, &full) != LLMH_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", llmh_last_error());
        return mf_fail_node(n, 0, "%s: %s", what, msg);
    }
    *out = mf_strdup(&b->chunks, full);
    free(full);
    return *out ? LLMH_OK : mf_oom();
}

static const char *mf_lower_hex(mf_build *b, const llmh_toml_node *n) {
    char *s = mf_strndup(&b->chunks, n->str, n->len);
    if (s)
        for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    return s;
}

/* [model] files = [{ name, sha256, size, url }, ...]: each fetched from
 * url/<name> (or its own url) into the directory model.path. */
static llmh_status mf_build_files(mf_build *b, const llmh_toml_node *arr, const char *base) {
    llmh_config *c = &b->cfg;
    if (arr->n == 0) return mf_fail_node(arr, 0, "model.files must list at least one file");
    if (arr->n > 4096) return mf_fail_node(arr, 0, "model.files lists %zu files (limit 4096)", arr->n);
    struct llmh_model_file *files = mf_alloc(&b->chunks, arr->n * sizeof *files);
    if (!files) return mf_oom();
    for (size_t i = 0; i < arr->n; i++) {
        const llmh_toml_node *t = arr->items[i];
        char prefix[48], what[96];
        snprintf(prefix, sizeof prefix, "model.files[%zu]", i);
        if (t->type != LLMH_TOML_TABLE)
            return mf_fail_node(t, 0, "%s must be a table ({ name = \"...\", sha256 = \"...\" }), got %s", prefix,
                                llmh__toml_type_name(t->type));
        const llmh_toml_node *f[8];
        llmh_status st = mf_scan_table("model.files", prefix, t, file_keys, f);
        if (st) return st;
        const llmh_toml_node *name = mf_found(file_keys, f, "name"), *sha = mf_found(file_keys, f, "sha256");
        const llmh_toml_node *size = mf_found(file_keys, f, "size"), *url = mf_found(file_keys, f, "url");
        if (!name) return mf_fail_node(t, 0, "missing required key 'name' in %s", prefix);
        if (!llmh__fetch_valid_name(name->str))
            return mf_fail_node(name, 0, "%s.name must be a plain file name (no '/', not '.' or '..'), got '%s'", prefix,
                                name->str);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(files[j].name, name->str))
                return mf_fail_node(name, 0, "%s.name: '%s' is listed twice", prefix, name->str);
        if (!(files[i].name = mf_str_or(b, name, NULL))) return mf_oom();
        files[i].sha256 = sha ? mf_lower_hex(b, sha) : NULL;
        if (sha && !files[i].sha256) return mf_oom();
        files[i].size = size ? size->i : -1;
        if (url) {
            snprintf(what, sizeof what, "%s.url", prefix);
            if ((st = mf_url(b, url, what, false, &files[i].url))) return st;
        } else {
            size_t need = strlen(base) + strlen(files[i].name) + 2;
            char *u = mf_alloc(&b->chunks, need);
            if (!u) return mf_oom();
            snprintf(u, need, "%s%s%s", base, base[0] && base[strlen(base) - 1] == '/' ? "" : "/", files[i].name);
            files[i].url = u;
        }
    }
    c->model.files = files;
    c->model.n_files = arr->n;
    return LLMH_OK;
}

/* model.path of a url model without a path: its place in the cache. */
static llmh_status mf_cache_path(mf_build *b, const llmh_toml_node *url_node) {
    llmh_config *c = &b->cfg;
    char *p = NULL;
    llmh_status st;
    if (c->model.n_files) {
        const char **names = calloc(c->model.n_files * 3, sizeof *names);
        if (!names) return mf_oom();
        for (size_t i = 0; i < c->model.n_files; i++) {
            names[i] = c->model.files[i].name;
            names[c->model.n_files + i] = c->model.files[i].sha256;
            names[2 * c->model.n_files + i] = c->model.files[i].url;
        }
        st = llmh__fetch_dir_path(c->model.url, names, names + c->model.n_files, names + 2 * c->model.n_files,
                                  c->model.n_files, &p);
        free(names);
    } else {
        st = llmh_fetch_cache_path(c->model.url, c->model.sha256, NULL, &p);
    }
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", llmh_last_error());
        return mf_fail_node(url_node, 1, "model.url: %s", msg);
    }
    c->model.path = mf_strdup(&b->chunks, p);
    free(p);
    return c->model.path ? LLMH_OK : mf_oom();
}

static llmh_status mf_build_model(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[16];
    llmh_status st;
    if (!t) {
        const mf_origin *o = b->m->root;
        llmh_set_error("%s:1:1: missing [model] table: model.path is required (or model.url to download)",
                       o ? o->name : "manifest");
        return LLMH_ERR_CONFIG;
    }
    if ((st = mf_scan_table("[model]", "model", t, model_keys, f))) return st;
    const llmh_toml_node *path = mf_found(model_keys, f, "path");
    const llmh_toml_node *url = mf_found(model_keys, f, "url"), *sha = mf_found(model_keys, f, "sha256");
    const llmh_toml_node *size = mf_found(model_keys, f, "size"), *files = mf_found(model_keys, f, "files");
    if (!path && !url)
        return mf_fail_node(t, 0, "missing required key 'path' in [model] (model.path, or model.url to download)");
    llmh_config *c = &b->cfg;
    c->model.size = -1;
    if (files && !url)
        return mf_fail_node(files, 1, "model.files needs model.url, the base URL its files are fetched from");
    if (url) {
        if ((st = mf_url(b, url, "model.url", files != NULL, &c->model.url))) return st;
        if (files) {
            if (sha) return mf_fail_node(sha, 1, "model.sha256 does not go with model.files: give each file its sha256");
            if (size) return mf_fail_node(size, 1, "model.size does not go with model.files: give each file its size");
            if ((st = mf_build_files(b, files, c->model.url))) return st;
        } else {
            if (sha && !(c->model.sha256 = mf_lower_hex(b, sha))) return mf_oom();
            if (size) c->model.size = size->i;
        }
    } else {
        /* without a url they are recorded (options, dump) but nothing downloads or checks the file */
        if (sha && !(c->model.sha256 = mf_lower_hex(b, sha))) return mf_oom();
        if (size) c->model.size = size->i;
    }
    if (path) {
        if (!(c->model.path = mf_path(b, path))) return mf_oom();
    } else if ((st = mf_cache_path(b, url))) {
        return st;
    }
    if (!(c->model.format = mf_str_or(b, mf_found(model_keys, f, "format"), "auto"))) return mf_oom();
    const llmh_toml_node *ctx = mf_found(model_keys, f, "context");
    c->model.context = ctx ? ctx->i : 4096;
    const llmh_toml_node *kvt = mf_found(model_keys, f, "kv_type");
    if (!(c->model.kv_type = mf_str_or(b, kvt, "f16"))) return mf_oom();
    if (strcmp(c->model.kv_type, "f16") != 0 && strcmp(c->model.kv_type, "f32") != 0)
        return mf_fail_node(kvt, 0, "model.kv_type must be \"f16\" or \"f32\", got \"%s\"", c->model.kv_type);
    const llmh_toml_node *adt = mf_found(model_keys, f, "adapter_type");
    if (!(c->model.adapter_type = mf_str_or(b, adt, "auto"))) return mf_oom();
    llmh_dtype adapter_dtype;
    if (llmh__adapter_storage_type(c->model.adapter_type, &adapter_dtype))
        return mf_fail_node(adt, 0, "model.adapter_type must be " LLMH__ADAPTER_TYPES ", got \"%s\"",
                            c->model.adapter_type);

    mf_kvvec vec = {0};
    if ((st = mf_push_str(&vec, "path", c->model.path)) || (st = mf_push_str(&vec, "format", c->model.format)) ||
        (st = mf_push_int(&vec, "context", c->model.context)) ||
        (st = mf_push_str(&vec, "kv_type", c->model.kv_type)) ||
        (st = mf_push_str(&vec, "adapter_type", c->model.adapter_type)))
        goto fail;
    if (c->model.url && (st = mf_push_str(&vec, "url", c->model.url))) goto fail;
    if (c->model.sha256 && (st = mf_push_str(&vec, "sha256", c->model.sha256))) goto fail;
    if (c->model.size >= 0 && (st = mf_push_int(&vec, "size", c->model.size))) goto fail;
    return mf_section_options(b, &vec, "model", model_keys, mf_found(model_keys, f, "options"), &c->model.options,
                              &b->n_known[MF_SEC_MODEL]);
fail:
    free(vec.v);
    return st;
}

static llmh_status mf_build_backend(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[8] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[backend]", "backend", t, backend_keys, f))) return st;
    llmh_config *c = &b->cfg;
    const llmh_toml_node *n;
    if (!(c->backend.plugin = mf_str_or(b, mf_found(backend_keys, f, "plugin"), "cpu"))) return mf_oom();
    c->backend.threads = (n = mf_found(backend_keys, f, "threads")) ? (int32_t)n->i : 0;
    c->backend.device = (n = mf_found(backend_keys, f, "device")) ? (int32_t)n->i : -1;
    mf_kvvec vec = {0};
    if ((st = mf_push_str(&vec, "plugin", c->backend.plugin)) || (st = mf_push_int(&vec, "threads", c->backend.threads)) ||
        (st = mf_push_int(&vec, "device", c->backend.device))) {
        free(vec.v);
        return st;
    }
    return mf_section_options(b, &vec, "backend", backend_keys, mf_found(backend_keys, f, "options"),
                              &c->backend.options, &b->n_known[MF_SEC_BACKEND]);
}

static llmh_status mf_build_tokenizer(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[4] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[tokenizer]", "tokenizer", t, tokenizer_keys, f))) return st;
    llmh_config *c = &b->cfg;
    if (!(c->tokenizer.plugin = mf_str_or(b, mf_found(tokenizer_keys, f, "plugin"), "auto"))) return mf_oom();
    mf_kvvec vec = {0};
    if ((st = mf_push_str(&vec, "plugin", c->tokenizer.plugin))) {
        free(vec.v);
        return st;
    }
    return mf_section_options(b, &vec, "tokenizer", tokenizer_keys, mf_found(tokenizer_keys, f, "options"),
                              &c->tokenizer.options, &b->n_known[MF_SEC_TOKENIZER]);
}

static llmh_status mf_build_sampler(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[16] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[sampler]", "sampler", t, sampler_keys, f))) return st;
    llmh_config *c = &b->cfg;
    const llmh_toml_node *chain = mf_found(sampler_keys, f, "chain");
    if (chain) {
        if (!(c->sampler.chain = mf_string_array(b, chain, 0, &c->sampler.n_chain))) return mf_oom();
    } else {
        const char **def = mf_alloc(&b->chunks, 2 * sizeof *def);
        if (!def || !(def[0] = mf_strdup(&b->chunks, "greedy"))) return mf_oom();
        c->sampler.chain = (const char *const *)def;
        c->sampler.n_chain = 1;
    }
    /* standard parameters, in the order the manifest wrote them */
    mf_kvvec vec = {0};
    for (size_t i = 0; t && i < t->n; i++) {
        const llmh_toml_node *v = t->items[i];
        size_t k = 0;
        while (sampler_keys[k].key && strcmp(sampler_keys[k].key, v->key)) k++;
        const mf_key *spec = &sampler_keys[k];
        if (!spec->key || spec->kind == MF_NAMES || spec->kind == MF_OPEN) continue;
        st = spec->kind == MF_INT ? mf_push_int(&vec, spec->key, v->i) : mf_push_f64(&vec, spec->key, mf_num(v));
        if (st) {
            free(vec.v);
            return st;
        }
    }
    return mf_section_options(b, &vec, "sampler", sampler_keys, mf_found(sampler_keys, f, "options"),
                              &c->sampler.params, &b->n_known[MF_SEC_SAMPLER]);
}

static llmh_status mf_build_generate(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[8] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[generate]", "generate", t, generate_keys, f))) return st;
    llmh_config *c = &b->cfg;
    const llmh_toml_node *n;
    c->generate.max_tokens = (n = mf_found(generate_keys, f, "max_tokens")) ? (int32_t)n->i : 256;
    if (!(c->generate.stop = mf_string_array(b, mf_found(generate_keys, f, "stop"), 0, &c->generate.n_stop)))
        return mf_oom();
    if ((n = mf_found(generate_keys, f, "system")) && !(c->generate.system = mf_str_or(b, n, NULL))) return mf_oom();
    if ((n = mf_found(generate_keys, f, "chat_template")) && !(c->generate.chat_template = mf_str_or(b, n, NULL)))
        return mf_oom();
    return LLMH_OK;
}

static llmh_status mf_build_adapters(mf_build *b, const llmh_toml_node *arr) {
    llmh_config *c = &b->cfg;
    c->adapters = NULL;
    c->n_adapters = 0;
    if (!arr || arr->n == 0) return LLMH_OK;
    llmh_adapter_config *ad = mf_alloc(&b->chunks, arr->n * sizeof *ad);
    if (!ad) return mf_oom();
    for (size_t i = 0; i < arr->n; i++) {
        const llmh_toml_node *t = arr->items[i];
        char prefix[48];
        snprintf(prefix, sizeof prefix, "adapter.%zu", i);
        if (t->type != LLMH_TOML_TABLE)
            return mf_fail_node(t, 0, "%s must be a table ([[adapter]]), got %s", prefix, llmh__toml_type_name(t->type));
        const llmh_toml_node *f[8];
        llmh_status st = mf_scan_table("[[adapter]]", prefix, t, adapter_keys, f);
        if (st) return st;
        const llmh_toml_node *name = mf_found(adapter_keys, f, "name"), *path = mf_found(adapter_keys, f, "path");
        const llmh_toml_node *ns = mf_found(adapter_keys, f, "namespace"), *scale = mf_found(adapter_keys, f, "scale");
        if (!name) return mf_fail_node(t, 0, "missing required key 'name' in [[adapter]] (%s)", prefix);
        if (name->len == 0) return mf_fail_node(name, 0, "%s.name must not be empty", prefix);
        if (!path) return mf_fail_node(t, 0, "missing required key 'path' in [[adapter]] '%s' (%s)", name->str, prefix);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ad[j].name, name->str)) {
                const llmh_toml_node *prev = mf_member(arr->items[j], "name");
                const mf_origin *po = prev ? prev->origin : NULL;
                return mf_fail_node(name, 0, "duplicate adapter name '%s' (first defined at %s:%d:%d)", name->str,
                                    po ? po->name : "?", prev ? prev->line : 0, prev ? prev->col : 0);
            }
        if (!(ad[i].name = mf_str_or(b, name, NULL)) || !(ad[i].path = mf_path(b, path))) return mf_oom();
        if (ns && !(ad[i].ns = mf_str_or(b, ns, NULL))) return mf_oom();
        ad[i].scale = scale ? (float)mf_num(scale) : 1.0f;
    }
    c->adapters = ad;
    c->n_adapters = arr->n;
    return LLMH_OK;
}

static llmh_status mf_build_router(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[4] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[router]", "router", t, router_keys, f))) return st;
    llmh_config *c = &b->cfg;
    if (!(c->router.plugin = mf_str_or(b, mf_found(router_keys, f, "plugin"), "static"))) return mf_oom();
    mf_kvvec vec = {0};
    return mf_section_options(b, &vec, "router", router_keys, mf_found(router_keys, f, "options"), &c->router.params,
                              &b->n_known[MF_SEC_ROUTER]);
}

static llmh_status mf_build_plugins(mf_build *b, const llmh_toml_node *t) {
    const llmh_toml_node *f[2] = {0};
    llmh_status st;
    if (t && (st = mf_scan_table("[plugins]", "plugins", t, plugins_keys, f))) return st;
    llmh_config *c = &b->cfg;
    if (!(c->plugins.paths = mf_string_array(b, mf_found(plugins_keys, f, "paths"), 1, &c->plugins.n_paths)))
        return mf_oom();
    return LLMH_OK;
}

/* Validate the whole tree and build a config (into b). */
static llmh_status mf_build_all(mf_build *b, const llmh_toml_node *root, const char *file) {
    const llmh_toml_node *sec[8] = {0};
    size_t n_sections = sizeof section_names / sizeof section_names[0];
    for (size_t i = 0; i < root->n; i++) {
        const llmh_toml_node *v = root->items[i];
        size_t k = 0;
        while (k < n_sections && strcmp(section_names[k], v->key)) k++;
        if (k == n_sections) {
            const char *s = mf_suggest(v->key, section_names, n_sections - 1);
            if (v->type == LLMH_TOML_TABLE) {
                if (s) return mf_fail_node(v, 1, "unknown table [%s] (did you mean [%s]?)", v->key, s);
                return mf_fail_node(v, 1,
                                    "unknown table [%s] (known: model, backend, tokenizer, sampler, generate, "
                                    "adapter, router, plugins)",
                                    v->key);
            }
            if (s) return mf_fail_node(v, 1, "unknown top-level key '%s' (did you mean '%s'?)", v->key, s);
            return mf_fail_node(v, 1, "unknown top-level key '%s'", v->key);
        }
        if (!strcmp(v->key, "include"))
            return mf_fail_node(v, 1, "include is only allowed at the top of a manifest file");
        if (!strcmp(v->key, "adapter")) {
            if (v->type != LLMH_TOML_ARRAY)
                return mf_fail_node(v, 1, "adapter must be an array of tables ([[adapter]]), got %s",
                                    llmh__toml_type_name(v->type));
        } else if (v->type != LLMH_TOML_TABLE) {
            return mf_fail_node(v, 1, "%s must be a table ([%s]), got %s", v->key, v->key,
                                llmh__toml_type_name(v->type));
        }
        sec[k] = v;
    }
    llmh_status st;
    if (!(b->cfg.file = mf_strdup(&b->chunks, file))) return mf_oom();
    if ((st = mf_build_model(b, sec[0])) || (st = mf_build_backend(b, sec[1])) || (st = mf_build_tokenizer(b, sec[2])) ||
        (st = mf_build_sampler(b, sec[3])) || (st = mf_build_generate(b, sec[4])) ||
        (st = mf_build_adapters(b, sec[5])) || (st = mf_build_router(b, sec[6])) || (st = mf_build_plugins(b, sec[7])))
        return st;
    return LLMH_OK;
}

/* Build a config from `tree` and, on success, install both in m (taking
 * ownership of tree). On failure m is unchanged and tree is freed. */
static llmh_status mf_commit(llmh_manifest *m, llmh_toml_node *tree, const char *file) {
    mf_build b;
    memset(&b, 0, sizeof b);
    b.m = m;
    llmh_status st = mf_build_all(&b, tree, file);
    if (st != LLMH_OK) {
        llmh__toml_free(tree);
        mf_chunks_free(b.chunks);
        return st;
    }
    llmh__toml_free(m->tree);
    m->tree = tree;
    /* keep every earlier build alive: callers may still hold its pointers */
    if (b.chunks) {
        mf_chunk *last = b.chunks;
        while (last->next) last = last->next;
        last->next = m->chunks;
        m->chunks = b.chunks;
    }
    m->cfg = b.cfg;
    memcpy(m->n_known, b.n_known, sizeof m->n_known);
    return LLMH_OK;
}

/* ======================================================================== */
/* 6. Public API                                                             */
/* ======================================================================== */

void llmh_manifest_free(llmh_manifest *m) {
    if (!m) return;
    llmh__toml_free(m->tree);
    mf_chunks_free(m->chunks);
    mf_origin *o = m->origins;
    while (o) {
        mf_origin *next = o->next;
        free(o->name);
        free(o->dir);
        free(o);
        o = next;
    }
    free(m);
}

llmh_status llmh_manifest_load(const char *path, llmh_manifest **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_manifest_load: NULL out");
    *out = NULL;
    if (!path || !*path) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_manifest_load: no path");
    llmh_clear_error();
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        return llmh__fail(e == ENOENT ? LLMH_ERR_NOT_FOUND : LLMH_ERR_IO, "%s: cannot open manifest: %s", path,
                          strerror(e));
    }
    char *text = NULL;
    size_t len = 0;
    int e = mf_read_file(real, &text, &len);
    if (e) return llmh__fail(LLMH_ERR_IO, "%s: cannot read manifest: %s", path, mf_errno_str(e));
    llmh_manifest *m = calloc(1, sizeof *m);
    char *dir = mf_dirname(real);
    const mf_origin *o = (m && dir) ? mf_origin_new(m, path, dir) : NULL;
    free(dir);
    if (!o) {
        free(text);
        llmh_manifest_free(m);
        return mf_oom();
    }
    m->root = o;
    mf_stack *stack = calloc(1, sizeof *stack);
    if (!stack) {
        free(text);
        llmh_manifest_free(m);
        return mf_oom();
    }
    memcpy(stack->e[0].real, real, sizeof real);
    stack->e[0].name = o->name;
    stack->n = 1;
    llmh_toml_node *tree = NULL;
    llmh_status st = mf_load_text(m, text, len, o, stack, 0, &tree);
    free(stack);
    free(text);
    if (st == LLMH_OK) st = mf_commit(m, tree, real);
    if (st != LLMH_OK) {
        llmh_manifest_free(m);
        return st;
    }
    *out = m;
    return LLMH_OK;
}

llmh_status llmh_manifest_parse(const char *text, size_t len, const char *name, const char *base_dir,
                                llmh_manifest **out) {
    if (!out) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_manifest_parse: NULL out");
    *out = NULL;
    if (!text && len) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_manifest_parse: NULL text");
    llmh_clear_error();
    if (!name) name = "<manifest>";
    char cwd[PATH_MAX];
    if (mf_getcwd(cwd, sizeof cwd) != 0) return llmh__fail(LLMH_ERR_IO, "%s: cannot get the current directory", name);
    char *dir = mf_resolve_path(cwd, base_dir && *base_dir ? base_dir : ".");
    llmh_manifest *m = calloc(1, sizeof *m);
    const mf_origin *o = (m && dir) ? mf_origin_new(m, name, dir) : NULL;
    free(dir);
    if (!o) {
        llmh_manifest_free(m);
        return mf_oom();
    }
    m->root = o;
    mf_stack *stack = calloc(1, sizeof *stack);
    if (!stack) {
        llmh_manifest_free(m);
        return mf_oom();
    }
    llmh_toml_node *tree = NULL;
    llmh_status st = mf_load_text(m, text ? text : "", len, o, stack, 0, &tree);
    free(stack);
    if (st == LLMH_OK) st = mf_commit(m, tree, name);
    if (st != LLMH_OK) {
        llmh_manifest_free(m);
        return st;
    }
    *out = m;
    return LLMH_OK;
}

/* TOML basic-string escape of `s` into buf (always NUL-terminated). */
static void mf_quote(const char *s, size_t len, char *buf, size_t size);

llmh_status llmh_manifest_set(llmh_manifest *m, const char *assignment) {
    if (!m || !assignment) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_manifest_set: NULL argument");
    llmh_clear_error();
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return llmh__fail(LLMH_ERR_CONFIG, "--set '%s': expected section.key=value (e.g. backend.threads=4)",
                          assignment);
    char cwd[PATH_MAX];
    if (mf_getcwd(cwd, sizeof cwd) != 0) return llmh__fail(LLMH_ERR_IO, "--set: cannot get the current directory");
    const mf_origin *o = mf_origin_new(m, "--set", cwd);
    if (!o) return mf_oom();

    char err[1024];
    int line = 0, col = 0;
    llmh_toml_node *src = NULL;
    int rc = llmh__toml_parse(assignment, strlen(assignment), &src, err, sizeof err, &line, &col);
    if (rc == 1) {
        /* A bare word such as model.path=x.gguf: retry it as a string. */
        const char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (*v && !strchr("\"'[{", *v)) {
            size_t klen = (size_t)(eq - assignment);
            size_t need = klen + 2 + strlen(v) * 6 + 3;
            char *retry = malloc(need);
            if (!retry) return mf_oom();
            memcpy(retry, assignment, klen);
            retry[klen] = '=';
            mf_quote(v, strlen(v), retry + klen + 1, need - klen - 1);
            char err2[1024];
            int l2 = 0, c2 = 0;
            int rc2 = llmh__toml_parse(retry, strlen(retry), &src, err2, sizeof err2, &l2, &c2);
            free(retry);
            if (rc2 == 0) rc = 0;
            else if (rc2 < 0) return llmh__fail(LLMH_ERR_NO_MEMORY, "--set: %s", err2);
        }
        if (rc == 1)
            return llmh__fail(LLMH_ERR_CONFIG, "--set:%d:%d: TOML syntax error in '%s': %s", line, col, assignment,
                              err);
    }
    if (rc != 0) return llmh__fail(LLMH_ERR_NO_MEMORY, "--set: %s", err);
    mf_tag(src, o);
    llmh_toml_node *tree = m->tree ? mf_clone(m->tree) : NULL;
    if (!tree) {
        llmh__toml_free(src);
        return mf_oom();
    }
    if (mf_merge(tree, src, 1) != 0) {
        llmh__toml_free(tree);
        return mf_oom();
    }
    return mf_commit(m, tree, m->cfg.file ? m->cfg.file : "");
}

const llmh_config *llmh_manifest_config(const llmh_manifest *m) { return m ? &m->cfg : NULL; }

/* Walk `dotted` ("sampler.top_k", "adapter.0.path") in the tree. */
static const llmh_toml_node *mf_lookup(const llmh_toml_node *root, const char *dotted) {
    char buf[512];
    size_t len = strlen(dotted);
    if (len == 0 || len >= sizeof buf) return NULL;
    memcpy(buf, dotted, len + 1);
    const llmh_toml_node *n = root;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (!n) return NULL;
        if (n->type == LLMH_TOML_TABLE) {
            n = mf_member(n, seg);
        } else if (n->type == LLMH_TOML_ARRAY) {
            long idx = mf_parse_index(seg);
            if (idx < 0 || (size_t)idx >= n->n) return NULL;
            n = n->items[idx];
        } else {
            return NULL;
        }
    }
    return n;
}

int llmh_manifest_where(const llmh_manifest *m, const char *dotted_key, const char **file, int *line, int *col) {
    if (!m || !m->tree || !dotted_key) return 0;
    const llmh_toml_node *n = mf_lookup(m->tree, dotted_key);
    if (!n) {
        /* plugin parameters are flattened: "sampler.x" may live in [sampler.options] */
        const char *dot = strchr(dotted_key, '.');
        char alt[600];
        if (dot && (size_t)(dot - dotted_key) < 64) {
            snprintf(alt, sizeof alt, "%.*s.options%s", (int)(dot - dotted_key), dotted_key, dot);
            n = mf_lookup(m->tree, alt);
        }
    }
    if (!n) return 0;
    const mf_origin *o = n->origin;
    int l = n->key_line > 0 ? n->key_line : n->line, c = n->key_line > 0 ? n->key_col : n->col;
    if (file) *file = o ? o->name : m->cfg.file;
    if (line) *line = l;
    if (col) *col = c;
    return 1;
}

/* ---- dump ---- */

static void mf_quote(const char *s, size_t len, char *buf, size_t size) {
    size_t o = 0;
    if (size < 3) {
        if (size) buf[0] = 0;
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 8 <= size; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\f': esc = "\\f"; break;
        case '\r': esc = "\\r"; break;
        default: break;
        }
        if (esc) {
            size_t el = strlen(esc);
            memcpy(buf + o, esc, el);
            o += el;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\u%04x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = 0;
}

static void mf_dump_string(FILE *out, const char *s, size_t len) {
    size_t need = len * 6 + 3;
    char small[256];
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf) return;
    mf_quote(s, len, buf, need);
    fputs(buf, out);
    if (buf != small) free(buf);
}

static void mf_dump_float(FILE *out, double f, int single) {
    if (f != f) {
        fputs("nan", out);
        return;
    }
    if (isinf(f)) {
        fputs(f > 0 ? "inf" : "-inf", out);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", f);
    /* shortest text that reads back to the same double */
    for (int prec = 1; prec <= 17; prec++) {
        char t[64];
        snprintf(t, sizeof t, "%.*g", prec, f);
        if (single ? (float)strtod(t, NULL) == (float)f : strtod(t, NULL) == f) {
            memcpy(buf, t, sizeof t);
            break;
        }
    }
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    fputs(buf, out);
}

static void mf_dump_value(FILE *out, const llmh_value *v, int depth) {
    switch (v->type) {
    case LLMH_V_STRING: mf_dump_string(out, v->v.s.ptr, (size_t)v->v.s.len); break;
    case LLMH_V_BOOL: fputs(v->v.b ? "true" : "false", out); break;
    case LLMH_V_F32:
    case LLMH_V_F64: mf_dump_float(out, v->v.f, v->type == LLMH_V_F32); break;
    case LLMH_V_U8:
    case LLMH_V_U16:
    case LLMH_V_U32:
    case LLMH_V_U64: fprintf(out, "%llu", (unsigned long long)v->v.u); break;
    case LLMH_V_ARRAY:
        fputc('[', out);
        for (uint64_t i = 0; i < v->v.arr.n && depth < 64; i++) {
            if (i) fputs(", ", out);
            mf_dump_value(out, &v->v.arr.items[i], depth + 1);
        }
        fputc(']', out);
        break;
    default: fprintf(out, "%lld", (long long)v->v.i); break;
    }
}

/* A key as TOML: bare when possible, else quoted; dotted names are written
 * as dotted keys (they came from nested option tables). */
static void mf_dump_key(FILE *out, const char *key) {
    const char *s = key;
    while (*s) {
        const char *e = strchr(s, '.');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        int bare = n > 0;
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-')) bare = 0;
        if (bare)
            fwrite(s, 1, n, out);
        else
            mf_dump_string(out, s, n);
        if (!e) break;
        fputc('.', out);
        s = e + 1;
    }
}

static void mf_dump_kvs(FILE *out, const llmh_kv_list *l, size_t from, size_t to) {
    for (size_t i = from; i < to && i < l->n; i++) {
        mf_dump_key(out, l->items[i].key);
        fputs(" = ", out);
        mf_dump_value(out, &l->items[i].value, 0);
        fputc('\n', out);
    }
}

static void mf_dump_strings(FILE *out, const char *const *v, size_t n) {
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", out);
        mf_dump_string(out, v[i], strlen(v[i]));
    }
    fputc(']', out);
}

static void mf_dump_open(FILE *out, const char *section, const llmh_kv_list *l, size_t n_known) {
    if (l->n <= n_known) return;
    fprintf(out, "\n[%s.options]\n", section);
    mf_dump_kvs(out, l, n_known, l->n);
}

void llmh_manifest_dump(const llmh_manifest *m, FILE *out) {
    if (!m || !out) return;
    const llmh_config *c = &m->cfg;
    fprintf(out, "# llmhost manifest, fully resolved (defaults filled in, includes merged)\n");
    fprintf(out, "# from: %s\n\n", c->file ? c->file : "");

    fputs("[model]\n", out);
    mf_dump_kvs(out, &c->model.options, 0, m->n_known[MF_SEC_MODEL]);
    if (c->model.n_files) {
        fputs("files = [\n", out);
        for (size_t i = 0; i < c->model.n_files; i++) {
            const struct llmh_model_file *mf = &c->model.files[i];
            fputs("  { name = ", out);
            mf_dump_string(out, mf->name, strlen(mf->name));
            fputs(", url = ", out);
            mf_dump_string(out, mf->url, strlen(mf->url));
            if (mf->sha256) fprintf(out, ", sha256 = \"%s\"", mf->sha256);
            if (mf->size >= 0) fprintf(out, ", size = %lld", (long long)mf->size);
            fputs(" },\n", out);
        }
        fputs("]\n", out);
    }
    mf_dump_open(out, "model", &c->model.options, m->n_known[MF_SEC_MODEL]);

    fputs("\n[backend]\n", out);
    mf_dump_kvs(out, &c->backend.options, 0, m->n_known[MF_SEC_BACKEND]);
    mf_dump_open(out, "backend", &c->backend.options, m->n_known[MF_SEC_BACKEND]);

    fputs("\n[tokenizer]\n", out);
    mf_dump_kvs(out, &c->tokenizer.options, 0, m->n_known[MF_SEC_TOKENIZER]);
    mf_dump_open(out, "tokenizer", &c->tokenizer.options, m->n_known[MF_SEC_TOKENIZER]);

    fputs("\n[sampler]\nchain = ", out);
    mf_dump_strings(out, c->sampler.chain, c->sampler.n_chain);
    fputc('\n', out);
    mf_dump_kvs(out, &c->sampler.params, 0, m->n_known[MF_SEC_SAMPLER]);
    mf_dump_open(out, "sampler", &c->sampler.params, m->n_known[MF_SEC_SAMPLER]);

    fprintf(out, "\n[generate]\nmax_tokens = %d\nstop = ", (int)c->generate.max_tokens);
    mf_dump_strings(out, c->generate.stop, c->generate.n_stop);
    fputc('\n', out);
    if (c->generate.system) {
        fputs("system = ", out);
        mf_dump_string(out, c->generate.system, strlen(c->generate.system));
        fputc('\n', out);
    }
    if (c->generate.chat_template) {
        fputs("chat_template = ", out);
        mf_dump_string(out, c->generate.chat_template, strlen(c->generate.chat_template));
        fputc('\n', out);
    }

    fputs("\n[router]\nplugin = ", out);
    mf_dump_string(out, c->router.plugin, strlen(c->router.plugin));
    fputc('\n', out);
    mf_dump_open(out, "router", &c->router.params, m->n_known[MF_SEC_ROUTER]);

    fputs("\n[plugins]\npaths = ", out);
    mf_dump_strings(out, c->plugins.paths, c->plugins.n_paths);
    fputc('\n', out);

    for (size_t i = 0; i < c->n_adapters; i++) {
        const llmh_adapter_config *a = &c->adapters[i];
        fputs("\n[[adapter]]\nname = ", out);
        mf_dump_string(out, a->name, strlen(a->name));
        fputs("\npath = ", out);
        mf_dump_string(out, a->path, strlen(a->path));
        fputc('\n', out);
        if (a->ns) {
            fputs("namespace = ", out);
            mf_dump_string(out, a->ns, strlen(a->ns));
            fputc('\n', out);
        }
        fputs("scale = ", out);
        mf_dump_float(out, (double)a->scale, 1);
        fputc('\n', out);
    }
}

/* fetch-cache.c — list and free the model cache (llmhost models / rm).
 *
 * Layout (docs/models.md): <cache>/sha256/<hex>/<file>, <cache>/url/<hex>/<file>
 * and <cache>/dirs/<hex>/<name>/<files>; each <hex> directory is one entry
 * and may also hold ".source" (the URL), "<file>.part" (an unfinished
 * download) and ".<file>.lock" (a download in progress). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch-internal.h"

typedef struct tmp_entry {
    llmh_cache_kind kind;
    char *name, *key, *path, *source;
    uint64_t bytes, partial;
    bool complete;
} tmp_entry;

typedef struct tmp_list {
    tmp_entry *v;
    size_t n, cap;
} tmp_list;

static void tmp_free(tmp_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].key);
        free(l->v[i].path);
        free(l->v[i].source);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static bool hex64_name(const char *s) {
    if (strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static char *read_source(const char *keydir) {
    char p[PATH_MAX + 320], line[4096];
    int w = snprintf(p, sizeof p, "%s/%s", keydir, LLMH__CACHE_SOURCE);
    if (w < 0 || (size_t)w >= sizeof p) return strdup("");
    FILE *f = fopen(p, "r");
    if (!f) return strdup("");
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    return strdup(line);
}

/* Regular files below `dir` (one level of sub-directories is enough for
 * our layout, but recurse anyway), split into complete and .part bytes. */
static void du(const char *dir, int depth, uint64_t *bytes, uint64_t *partial, size_t *n_files) {
    if (depth > 4) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[PATH_MAX];
        int w = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (w < 0 || (size_t)w >= sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            du(p, depth + 1, bytes, partial, n_files);
        } else if (S_ISREG(st.st_mode)) {
            if (ends_with(de->d_name, ".part")) {
                *partial += (uint64_t)st.st_size;
            } else {
                *bytes += (uint64_t)st.st_size;
                (*n_files)++;
            }
        }
    }
    closedir(d);
}

static int tmp_push(tmp_list *l, tmp_entry *e) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tmp_entry *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return 0;
}

/* One key directory: its file (or directory) and any partial download. */
static int scan_key(tmp_list *l, llmh_cache_kind kind, const char *keydir, const char *key) {
    DIR *d = opendir(keydir);
    if (!d) return 0;
    struct dirent *de;
    tmp_entry e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    char name[256] = "";
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[PATH_MAX];
        int w = snprintf(p, sizeof p, "%s/%s", keydir, de->d_name);
        if (w < 0 || (size_t)w >= sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (kind == LLMH_CACHE_DIR && S_ISDIR(st.st_mode)) {
            size_t nf = 0;
            du(p, 0, &e.bytes, &e.partial, &nf);
            snprintf(name, sizeof name, "%s", de->d_name);
        } else if (S_ISREG(st.st_mode)) {
            if (ends_with(de->d_name, ".part")) {
                e.partial += (uint64_t)st.st_size;
                if (!name[0]) snprintf(name, sizeof name, "%.*s", (int)(strlen(de->d_name) - 5), de->d_name);
            } else {
                e.bytes += (uint64_t)st.st_size;
                e.complete = true;
                snprintf(name, sizeof name, "%s", de->d_name);
            }
        }
    }
    closedir(d);
    if (!name[0]) return 0; /* empty or only locks */
    char *src = read_source(keydir);
    if (kind == LLMH_CACHE_DIR) e.complete = src && src[0]; /* .source is written once every file is in */
    char full[PATH_MAX + 600];
    int fw = snprintf(full, sizeof full, "%s/%s", keydir, name);
    if (fw < 0 || (size_t)fw >= sizeof full) {
        free(src);
        return 0;
    }
    e.name = strdup(name);
    e.key = strdup(key);
    e.path = strdup(full);
    e.source = src;
    if (!e.name || !e.key || !e.path || !e.source || tmp_push(l, &e) != 0) {
        free(e.name);
        free(e.key);
        free(e.path);
        free(e.source);
        return -1;
    }
    return 0;
}

static llmh_status scan_all(tmp_list *l, char *cache, size_t cache_size) {
    llmh_status st = llmh_cache_dir(cache, cache_size);
    if (st) return st;
    static const struct {
        const char *sub;
        llmh_cache_kind kind;
    } kinds[] = {{LLMH__CACHE_SHA, LLMH_CACHE_FILE}, {LLMH__CACHE_URL, LLMH_CACHE_UNVERIFIED},
                 {LLMH__CACHE_DIRS, LLMH_CACHE_DIR}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char sub[PATH_MAX + 16];
        snprintf(sub, sizeof sub, "%s/%s", cache, kinds[k].sub);
        DIR *d = opendir(sub);
        if (!d) {
            if (errno == ENOENT || errno == ENOTDIR) continue;
            return llmh__fail(LLMH_ERR_IO, "%s: cannot list the cache: %s", sub, strerror(errno));
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!hex64_name(de->d_name)) continue;
            char keydir[PATH_MAX + 300];
            int w = snprintf(keydir, sizeof keydir, "%s/%s", sub, de->d_name);
            if (w < 0 || (size_t)w >= sizeof keydir) continue;
            if (scan_key(l, kinds[k].kind, keydir, de->d_name) != 0) {
                closedir(d);
                return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
            }
        }
        closedir(d);
    }
    return LLMH_OK;
}

static int cmp_entry(const void *a, const void *b) {
    const tmp_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->key, y->key);
}

llmh_status llmh_cache_list(llmh_cache_entry **out, size_t *n) {
    if (!out || !n) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_cache_list: NULL argument");
    *out = NULL;
    *n = 0;
    tmp_list l = {0};
    char cache[PATH_MAX];
    llmh_status st = scan_all(&l, cache, sizeof cache);
    if (st) {
        tmp_free(&l);
        return st;
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, cmp_entry);
    size_t strings = 0;
    for (size_t i = 0; i < l.n; i++)
        strings += strlen(l.v[i].name) + strlen(l.v[i].key) + strlen(l.v[i].path) + strlen(l.v[i].source) + 4;
    size_t head = l.n * sizeof(llmh_cache_entry);
    char *block = malloc(head + strings + 1);
    if (!block) {
        tmp_free(&l);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    }
    llmh_cache_entry *v = (llmh_cache_entry *)(void *)block;
    char *s = block + head;
    for (size_t i = 0; i < l.n; i++) {
        const tmp_entry *e = &l.v[i];
        const char *src[4] = {e->name, e->key, e->path, e->source};
        const char **dst[4] = {&v[i].name, &v[i].key, &v[i].path, &v[i].source};
        for (int k = 0; k < 4; k++) {
            size_t len = strlen(src[k]) + 1;
            memcpy(s, src[k], len);
            *dst[k] = s;
            s += len;
        }
        v[i].kind = e->kind;
        v[i].bytes = e->bytes;
        v[i].partial_bytes = e->partial;
        v[i].complete = e->complete;
    }
    *n = l.n;
    *out = v;
    tmp_free(&l);
    return LLMH_OK;
}

static uint64_t g_rm_bytes;
static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    if (flag == FTW_DP || flag == FTW_D) return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    if (flag == FTW_F && sb && path[ftw->base] != '.') g_rm_bytes += (uint64_t)sb->st_size; /* as listed */
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static pthread_mutex_t g_rm_lock = PTHREAD_MUTEX_INITIALIZER;

static llmh_status rm_tree(const char *path, uint64_t *freed) {
    pthread_mutex_lock(&g_rm_lock);
    g_rm_bytes = 0;
    int rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    int e = errno;
    *freed += g_rm_bytes;
    pthread_mutex_unlock(&g_rm_lock);
    if (rc != 0 && e != ENOENT) return llmh__fail(LLMH_ERR_IO, "%s: cannot remove: %s", path, strerror(e));
    return LLMH_OK;
}

llmh_status llmh_cache_remove(const char *what, size_t *n_removed, uint64_t *bytes_freed) {
    size_t removed = 0;
    uint64_t freed = 0;
    if (n_removed) *n_removed = 0;
    if (bytes_freed) *bytes_freed = 0;
    tmp_list l = {0};
    char cache[PATH_MAX];
    llmh_status st = scan_all(&l, cache, sizeof cache);
    if (st) {
        tmp_free(&l);
        return st;
    }
    if (!what) {
        removed = l.n;
        tmp_free(&l);
        static const char *const subs[] = {LLMH__CACHE_SHA, LLMH__CACHE_URL, LLMH__CACHE_DIRS};
        for (size_t k = 0; k < 3; k++) {
            char sub[PATH_MAX + 16];
            snprintf(sub, sizeof sub, "%s/%s", cache, subs[k]);
            if (access(sub, F_OK) != 0) continue;
            if ((st = rm_tree(sub, &freed))) return st;
        }
        if (n_removed) *n_removed = removed;
        if (bytes_freed) *bytes_freed = freed;
        return LLMH_OK;
    }
    size_t wl = strlen(what);
    bool hexprefix = wl >= 6 && wl <= 64;
    for (size_t i = 0; i < wl && hexprefix; i++)
        if (!strchr("0123456789abcdefABCDEF", what[i])) hexprefix = false;
    char low[65] = "";
    if (hexprefix)
        for (size_t i = 0; i <= wl; i++) low[i] = (char)((what[i] >= 'A' && what[i] <= 'F') ? what[i] + 32 : what[i]);
    /* by name first; a key prefix only when no name matches */
    bool any_name = false;
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.v[i].name, what)) any_name = true;
    const char *first_key = NULL;
    for (size_t i = 0; i < l.n && !any_name; i++) {
        if (!hexprefix || strncmp(l.v[i].key, low, wl) != 0) continue;
        if (first_key && strcmp(first_key, l.v[i].key) != 0) {
            tmp_free(&l);
            return llmh__fail(LLMH_ERR_INVALID_ARG, "'%s' matches several cache entries; give more of the checksum",
                              what);
        }
        first_key = l.v[i].key;
    }
    for (size_t i = 0; i < l.n; i++) {
        const tmp_entry *e = &l.v[i];
        bool match = any_name ? !strcmp(e->name, what) : (hexprefix && !strncmp(e->key, low, wl));
        if (!match) continue;
        /* the key directory: the entry's parent */
        char keydir[PATH_MAX + 300];
        snprintf(keydir, sizeof keydir, "%s", e->path);
        char *slash = strrchr(keydir, '/');
        if (slash) *slash = 0;
        if ((st = rm_tree(keydir, &freed))) {
            tmp_free(&l);
            return st;
        }
        removed++;
    }
    tmp_free(&l);
    if (n_removed) *n_removed = removed;
    if (bytes_freed) *bytes_freed = freed;
    if (!removed) return llmh__fail(LLMH_ERR_NOT_FOUND, "no cached model named '%s' or with a checksum starting so (see llmhost models)", what);
    return LLMH_OK;
}

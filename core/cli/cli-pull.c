/* cli-pull.c — llmhost pull / models / rm: the model cache from the command
 * line, and the download progress display every command shares. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "llmh-fetch.h"

/* ------------------------------------------------------------------------ */
/* progress                                                                   */
/* ------------------------------------------------------------------------ */
static void fmt_bytes(double b, char *buf, size_t size) {
    if (b >= 1073741824.0) snprintf(buf, size, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1048576.0) snprintf(buf, size, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024.0) snprintf(buf, size, "%.1f KiB", b / 1024.0);
    else snprintf(buf, size, "%.0f B", b);
}

static void fmt_eta(double s, char *buf, size_t size) {
    if (s < 0 || s > 360000) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

typedef struct progress_state {
    int tty;
    int drawn; /* a bar line is on screen */
} progress_state;

static progress_state g_progress;

static int term_cols(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
    return 80;
}

/* "name [#####.....]  45% 12.1 MiB / 26.8 MiB  5.2 MiB/s  ETA 0:03", fitted
 * to the terminal's width: the bar takes what the text leaves. */
static void draw_bar(const llmh_fetch_progress *p) {
    char done[32], total[32], rate[32], eta[32], text[160], name[40];
    fmt_bytes((double)p->done, done, sizeof done);
    fmt_bytes(p->rate, rate, sizeof rate);
    size_t nl = strlen(p->name);
    if (nl > 24) snprintf(name, sizeof name, "...%s", p->name + nl - 21);
    else snprintf(name, sizeof name, "%s", p->name);
    int cols = term_cols() - 1;
    if (p->total) {
        double f = (double)p->done / (double)p->total;
        if (f > 1) f = 1;
        fmt_bytes((double)p->total, total, sizeof total);
        double left = p->rate > 0 ? (double)(p->total - (p->done < p->total ? p->done : p->total)) / p->rate : -1;
        fmt_eta(left, eta, sizeof eta);
        snprintf(text, sizeof text, "%3d%% %s / %s  %s/s  ETA %s", (int)(f * 100), done, total, rate, eta);
        int width = cols - (int)strlen(name) - (int)strlen(text) - 5;
        if (width > 40) width = 40;
        char bar[41];
        if (width >= 5) {
            int fill = (int)(f * width);
            for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
            bar[width] = 0;
            fprintf(stderr, "\r\033[K%s [%s] %s", name, bar, text);
        } else {
            fprintf(stderr, "\r\033[K%s %s", name, text);
        }
    } else {
        fprintf(stderr, "\r\033[K%s %s  %s/s", name, done, rate);
    }
    fflush(stderr);
    g_progress.drawn = 1;
}

static void on_progress(const llmh_fetch_progress *p, void *user) {
    (void)user;
    char a[32], b[32];
    switch (p->event) {
    case LLMH_FETCH_START:
        if (g_progress.tty) {
            draw_bar(p);
        } else {
            fmt_bytes((double)p->total, a, sizeof a);
            if (p->resumed_from) {
                fmt_bytes((double)p->resumed_from, b, sizeof b);
                fprintf(stderr, "llmhost: downloading %s (%s, resuming at %s) from %s\n", p->name,
                        p->total ? a : "size unknown", b, p->url);
            } else {
                fprintf(stderr, "llmhost: downloading %s (%s) from %s\n", p->name, p->total ? a : "size unknown",
                        p->url);
            }
        }
        break;
    case LLMH_FETCH_PROGRESS:
        if (g_progress.tty) draw_bar(p);
        break;
    case LLMH_FETCH_VERIFY:
        if (g_progress.tty) {
            fprintf(stderr, "\r\033[K%s: checking the %" PRIu64 " bytes already downloaded", p->name, p->done);
            fflush(stderr);
            g_progress.drawn = 1;
        }
        break;
    case LLMH_FETCH_DONE:
        fmt_bytes((double)p->done, a, sizeof a);
        fmt_bytes(p->rate, b, sizeof b);
        if (g_progress.tty) {
            draw_bar(p);
            fputc('\n', stderr);
            g_progress.drawn = 0;
        } else {
            fprintf(stderr, "llmhost: downloaded %s (%s in %.1f s, %s/s)%s\n", p->name, a, p->seconds, b,
                    p->verified ? ", checksum verified" : ", NOT verified (no sha256)");
        }
        break;
    case LLMH_FETCH_WAIT:
        if (g_progress.drawn) fputc('\n', stderr);
        g_progress.drawn = 0;
        fprintf(stderr, "llmhost: another process is downloading %s; waiting for it\n", p->name);
        break;
    case LLMH_FETCH_FAILED:
        if (g_progress.drawn) fputc('\n', stderr);
        g_progress.drawn = 0;
        break;
    }
}

void llmh_cli_fetch_progress_install(void) {
    if (llmh_cli.quiet) return;
    g_progress.tty = isatty(STDERR_FILENO);
    llmh_fetch_set_progress(on_progress, NULL);
}

/* ------------------------------------------------------------------------ */
/* pull                                                                       */
/* ------------------------------------------------------------------------ */
static int is_url(const char *s) {
    return !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7) || !strncmp(s, "hf://", 5);
}

static int pull_url(const char *url, const char *sha, int64_t size) {
    char *path = NULL;
    llmh_status st = llmh_fetch_cache_path(url, sha, NULL, &path);
    if (st) {
        llmh_cli_error("pull", st);
        return 1;
    }
    if (!sha)
        fprintf(stderr, "llmhost: warning: no --sha256: the download cannot be verified (it is kept under its URL)\n");
    st = llmh_fetch_file(url, sha, size, path);
    if (st) {
        llmh_cli_error("pull", st);
        free(path);
        return 1;
    }
    printf("%s\n", path);
    free(path);
    return 0;
}

static int pull_manifest(const char *config) {
    llmh_manifest *m = llmh_cli_load_manifest(config);
    if (!m) return 1;
    const llmh_config *c = llmh_manifest_config(m);
    int rc = 0;
    if (!c->model.url) {
        struct stat sb;
        if (stat(c->model.path, &sb) == 0) {
            fprintf(stderr, "llmhost: %s: [model] has no url; nothing to download (model.path exists)\n", c->file);
            printf("%s\n", c->model.path);
        } else {
            fprintf(stderr, "llmhost: %s: [model] has no url and model.path %s does not exist\n", c->file,
                    c->model.path);
            rc = 1;
        }
        llmh_manifest_free(m);
        return rc;
    }
    llmh_status st = llmh_fetch_model(c);
    if (st) {
        llmh_cli_error("pull", st);
        rc = 1;
    } else {
        printf("%s\n", c->model.path);
    }
    llmh_manifest_free(m);
    return rc;
}

static void pull_usage(FILE *out) {
    fprintf(out,
            "usage: llmhost pull [CONFIG.toml | URL] [--sha256 HEX] [--size BYTES]\n"
            "       llmhost --config CONFIG.toml pull\n"
            "\n"
            "Download a model into the cache without loading it, and print where it is.\n"
            "CONFIG.toml: the manifest's [model] url (and files). URL: https://..., or\n"
            "hf://owner/repo/file (hf://owner/repo@revision/file for a revision).\n"
            "Already cached files are not downloaded again; an interrupted download resumes.\n"
            "Cache: $LLMH_CACHE, else $XDG_CACHE_HOME/llmhost, else ~/.cache/llmhost.\n");
}

int llmh_cmd_pull(int argc, char **argv) {
    const char *what = NULL, *sha = NULL;
    int64_t size = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            pull_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--sha256") && i + 1 < argc) {
            sha = argv[++i];
        } else if (!strcmp(a, "--size") && i + 1 < argc) {
            char *end = NULL;
            long long v = strtoll(argv[++i], &end, 10);
            if (!end || *end || v < 0) {
                fprintf(stderr, "llmhost: pull: --size needs a byte count, got '%s'\n", argv[i]);
                return 2;
            }
            size = v;
        } else if (a[0] == '-') {
            fprintf(stderr, "llmhost: pull: unknown option '%s'\n", a);
            pull_usage(stderr);
            return 2;
        } else if (!what) {
            what = a;
        } else {
            fprintf(stderr, "llmhost: pull: one manifest or URL at a time\n");
            return 2;
        }
    }
    if (!what) what = llmh_cli.config;
    if (!what) {
        pull_usage(stderr);
        return 2;
    }
    if (is_url(what)) return pull_url(what, sha, size);
    if (sha || size >= 0) {
        fprintf(stderr, "llmhost: pull: --sha256 and --size go with a URL; a manifest gives them in [model]\n");
        return 2;
    }
    return pull_manifest(what);
}

/* ------------------------------------------------------------------------ */
/* models                                                                     */
/* ------------------------------------------------------------------------ */
int llmh_cmd_models(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llmhost models\n\nList the model cache: name, size on disk, checksum (the cache key) "
                   "and state.\n");
            return 0;
        }
        fprintf(stderr, "llmhost: models: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    char dir[4096];
    llmh_status st = llmh_cache_dir(dir, sizeof dir);
    if (st) {
        llmh_cli_error("models", st);
        return 1;
    }
    llmh_cache_entry *v = NULL;
    size_t n = 0;
    if ((st = llmh_cache_list(&v, &n))) {
        llmh_cli_error("models", st);
        return 1;
    }
    printf("cache: %s\n", dir);
    if (n == 0) {
        printf("(empty)\n");
        free(v);
        return 0;
    }
    printf("%-44s %11s  %-12s  %s\n", "NAME", "SIZE", "SHA256", "STATE");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char sz[32], part[32], state[96];
        fmt_bytes((double)v[i].bytes, sz, sizeof sz);
        const char *kind = v[i].kind == LLMH_CACHE_DIR ? "directory" : v[i].kind == LLMH_CACHE_UNVERIFIED ? "unverified" : "verified";
        if (v[i].partial_bytes) {
            fmt_bytes((double)v[i].partial_bytes, part, sizeof part);
            snprintf(state, sizeof state, "%s, %s partial download", v[i].complete ? kind : "incomplete", part);
        } else {
            snprintf(state, sizeof state, "%s", v[i].complete ? kind : "incomplete");
        }
        printf("%-44s %11s  %.12s  %s\n", v[i].name, sz, v[i].kind == LLMH_CACHE_FILE ? v[i].key : "-", state);
        if (llmh_cli.verbose) printf("    %s\n    from %s\n", v[i].path, v[i].source[0] ? v[i].source : "?");
        total += v[i].bytes + v[i].partial_bytes;
    }
    char t[32];
    fmt_bytes((double)total, t, sizeof t);
    printf("%zu entr%s, %s\n", n, n == 1 ? "y" : "ies", t);
    free(v);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* rm                                                                         */
/* ------------------------------------------------------------------------ */
int llmh_cmd_rm(int argc, char **argv) {
    int all = 0, n_what = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llmhost rm NAME|SHA256-PREFIX... | --all\n\n"
                   "Remove cached models (names and checksums as `llmhost models` shows them;\n"
                   "a checksum prefix needs at least 6 hex digits). --all empties the cache.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--all")) all = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "llmhost: rm: unknown option '%s'\n", argv[i]);
            return 2;
        } else n_what++;
    }
    if (!all && n_what == 0) {
        fprintf(stderr, "usage: llmhost rm NAME|SHA256-PREFIX... | --all\n");
        return 2;
    }
    if (all && n_what) {
        fprintf(stderr, "llmhost: rm: --all takes no names\n");
        return 2;
    }
    int rc = 0;
    size_t removed_total = 0;
    uint64_t freed_total = 0;
    for (int i = all ? 0 : 1; i < argc; i++) {
        if (!all && argv[i][0] == '-') continue;
        size_t removed = 0;
        uint64_t freed = 0;
        llmh_status st = llmh_cache_remove(all ? NULL : argv[i], &removed, &freed);
        if (st) {
            llmh_cli_error("rm", st);
            rc = 1;
        }
        removed_total += removed;
        freed_total += freed;
        if (all) break;
    }
    char f[32];
    fmt_bytes((double)freed_total, f, sizeof f);
    printf("removed %zu entr%s, freed %s\n", removed_total, removed_total == 1 ? "y" : "ies", f);
    return rc;
}

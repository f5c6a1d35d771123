/* cli-dry-run.c — `llmhost --config M.toml --dry-run`: print the resolved
 * manifest, then which plugin serves each role, without loading the model.
 * Exit 0 when every role resolves, 1 otherwise (2: no usable manifest). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *kind_word(llmh_plugin_kind k) {
    switch (k) {
    case LLMH_PLUGIN_FORMAT: return "format";
    case LLMH_PLUGIN_TOKENIZER: return "tokenizer";
    case LLMH_PLUGIN_BACKEND: return "backend";
    case LLMH_PLUGIN_SAMPLER: return "sampler";
    case LLMH_PLUGIN_ROUTER: return "router";
    }
    return "plugin";
}

/* Print one resolved role line and release the plugin. */
static void print_plugin(const char *role, llmh_plugin *p) {
    const llmh_plugin_desc *d = llmh_plugin_descriptor(p);
    printf("  %-24s %s %s (%s)\n", role, d && d->name ? d->name : "?", d && d->version ? d->version : "?",
           llmh_plugin_path(p) ? llmh_plugin_path(p) : "?");
    llmh_plugin_release(p);
}

static void print_missing(const char *role, llmh_plugin_kind kind, const char *name) {
    const char *why = llmh_last_error();
    if (why && *why)
        printf("  %-24s NOT FOUND: %s\n", role, why);
    else
        printf("  %-24s NOT FOUND: no %s plugin named '%s'\n", role, kind_word(kind), name);
}

/* Resolve plugin `name` of `kind`; returns 1 when found. */
static int resolve(llmh_registry *reg, const char *role, llmh_plugin_kind kind, const char *name) {
    llmh_plugin *p = NULL;
    llmh_clear_error();
    if (llmh_registry_get(reg, kind, name, &p) == LLMH_OK && p) {
        print_plugin(role, p);
        return 1;
    }
    print_missing(role, kind, name);
    return 0;
}

static int path_exists(const char *path, int *is_dir) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (is_dir) *is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
    return 1;
}

int llmh_cmd_dry_run(int argc, char **argv) {
    if (argc > 0 && argv && argv[0] && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: llmhost --config M.toml [--set S.K=V ...] --dry-run\n"
               "Print the fully resolved manifest and the plugin that serves each role\n"
               "(format, backend, tokenizer, samplers, router). Exit 0 when all resolve.\n");
        return 0;
    }
    llmh_manifest *m = llmh_cli_load_manifest(NULL);
    if (!m) return 2;
    const llmh_config *c = llmh_manifest_config(m);

    llmh_manifest_dump(m, stdout);
    if (argc > 0 && argv && argv[0]) printf("\n# dry run: command '%s' not executed\n", argv[0]);

    llmh_registry *reg = llmh_cli_registry(m);
    if (!reg) {
        llmh_manifest_free(m);
        return 1;
    }
    int ok = 1;
    printf("\nroles:\n");

    /* format: by name, or probed from the model file when "auto" */
    int is_dir = 0;
    int exists = path_exists(c->model.path, &is_dir);
    bool fetchable = !exists && (c->model.url || c->model.n_files);
    if (fetchable) {
        /* a url model that is not in the cache yet is fine: it is fetched on
         * first use (or by llmhost pull); the format is probed then */
        printf("  %-24s not downloaded yet: %s -> %s (llmhost pull, or on first use)\n", "model",
               c->model.url ? c->model.url : c->model.files[0].url, c->model.path);
        if (strcmp(c->model.format, "auto") != 0) ok &= resolve(reg, "format", LLMH_PLUGIN_FORMAT, c->model.format);
    } else if (strcmp(c->model.format, "auto") != 0) {
        ok &= resolve(reg, "format", LLMH_PLUGIN_FORMAT, c->model.format);
        if (!exists) {
            printf("  %-24s MISSING: model file %s does not exist\n", "model", c->model.path);
            ok = 0;
        }
    } else if (!exists) {
        printf("  %-24s NOT RESOLVED: model %s does not exist (format \"auto\" probes the file)\n", "format",
               c->model.path);
        ok = 0;
    } else {
        llmh_plugin *p = NULL;
        llmh_clear_error();
        if (llmh_registry_get_format_for(reg, c->model.path, &p) == LLMH_OK && p) {
            print_plugin("format", p);
        } else {
            printf("  %-24s NOT FOUND: %s\n", "format",
                   *llmh_last_error() ? llmh_last_error() : "no format plugin recognizes the model");
            ok = 0;
        }
    }
    if (exists) printf("  %-24s %s%s\n", "model", c->model.path, is_dir ? " (directory)" : "");

    ok &= resolve(reg, "backend", LLMH_PLUGIN_BACKEND, c->backend.plugin);

    if (!strcmp(c->tokenizer.plugin, "auto"))
        printf("  %-24s auto: decided from model metadata at load time\n", "tokenizer");
    else
        ok &= resolve(reg, "tokenizer", LLMH_PLUGIN_TOKENIZER, c->tokenizer.plugin);

    for (size_t i = 0; i < c->sampler.n_chain; i++) {
        char role[64];
        snprintf(role, sizeof role, "sampler[%zu] %s", i, c->sampler.chain[i]);
        ok &= resolve(reg, role, LLMH_PLUGIN_SAMPLER, c->sampler.chain[i]);
    }

    if (c->n_adapters > 0) {
        ok &= resolve(reg, "router", LLMH_PLUGIN_ROUTER, c->router.plugin);
    } else {
        /* without adapters nothing is routed: report, but do not fail */
        llmh_plugin *p = NULL;
        llmh_clear_error();
        if (llmh_registry_get(reg, LLMH_PLUGIN_ROUTER, c->router.plugin, &p) == LLMH_OK && p)
            print_plugin("router", p);
        else
            printf("  %-24s unused (no [[adapter]]); '%s' would not load: %s\n", "router", c->router.plugin,
                   *llmh_last_error() ? llmh_last_error() : "not found");
    }

    for (size_t i = 0; i < c->n_adapters; i++) {
        char role[64];
        snprintf(role, sizeof role, "adapter[%zu]", i);
        if (path_exists(c->adapters[i].path, NULL)) {
            printf("  %-24s %s: %s (scale %g)\n", role, c->adapters[i].name, c->adapters[i].path,
                   (double)c->adapters[i].scale);
        } else {
            printf("  %-24s MISSING: adapter '%s': %s does not exist\n", role, c->adapters[i].name,
                   c->adapters[i].path);
            ok = 0;
        }
    }

    printf("\n%s\n", ok ? "all roles resolved" : "some roles did not resolve");
    llmh_registry_free(reg);
    llmh_manifest_free(m);
    return ok ? 0 : 1;
}

/* main.c — llmhost entry point: global options, logging, command dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

llmh_cli_globals llmh_cli;

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"chat", llmh_cmd_chat, "interactive chat with the model's chat template (default)"},
    {"generate", llmh_cmd_generate, "complete a prompt (-p TEXT or stdin), streaming"},
    {"bench", llmh_cmd_bench, "measure prefill/decode speed against the memory-bandwidth bound"},
    {"inspect", llmh_cmd_inspect, "describe a model file or HF directory"},
    {"plugins", llmh_cmd_plugins, "list plugins found, and why any file was refused"},
    {"plugin", llmh_cmd_plugin, "plugin check FILE: validate and describe one plugin"},
    {"serve", llmh_cmd_serve, "OpenAI-compatible HTTP server with per-request adapters (docs/server.md)"},
    {"pull", llmh_cmd_pull, "download a manifest's model (or a URL) into the cache"},
    {"models", llmh_cmd_models, "list the model cache with sizes"},
    {"rm", llmh_cmd_rm, "rm NAME|SHA|--all: remove models from the cache"},
    {"export-lora", llmh_cmd_export_lora, "merge LoRA adapters into the model and write a new GGUF"},
    {"lora-gate", llmh_cmd_lora_gate, "attach gate vectors (gated router) to a LoRA adapter file"},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmhost [--config M.toml] [options] [command] [command options]\n"
            "\n"
            "llmhost %s: plugin-based LLM inference. A TOML manifest names the model and the\n"
            "plugin serving each role (format, tokenizer, backend, sampler, router).\n"
            "\n"
            "commands:\n",
            llmh_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out,
            "\n"
            "global options:\n"
            "  --config FILE    model manifest (TOML); see docs/manifest.md\n"
            "  --set S.K=V      override a manifest key, e.g. --set backend.threads=2\n"
            "  --dry-run        print the resolved manifest and the plugin serving each role\n"
            "  -v, --verbose    more logging (repeat for debug)\n"
            "  -q, --quiet      errors only\n"
            "  -h, --help       this help ('llmhost COMMAND --help' for a command)\n"
            "  --version        print the version\n"
            "\n"
            "With --config and no command, llmhost starts an interactive chat.\n");
}

static const char *level_name(llmh_log_level l) {
    switch (l) {
    case LLMH_LOG_DEBUG: return "debug";
    case LLMH_LOG_INFO: return "info";
    case LLMH_LOG_WARN: return "warning";
    default: return "error";
    }
}

static void stderr_logger(llmh_log_level level, const char *component, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "llmhost: %s: %s: %s\n", level_name(level), component ? component : "core", msg);
}

void llmh_cli_error(const char *what, llmh_status st) {
    const char *msg = llmh_last_error();
    if (msg && *msg)
        fprintf(stderr, "llmhost: %s: %s\n", what, msg);
    else
        fprintf(stderr, "llmhost: %s: %s\n", what, llmh_status_str(st));
}

llmh_manifest *llmh_cli_load_manifest(const char *path) {
    if (!path) path = llmh_cli.config;
    if (!path) {
        fprintf(stderr, "llmhost: no manifest: pass --config FILE.toml (examples in configs/)\n");
        return NULL;
    }
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_load(path, &m);
    if (st != LLMH_OK) {
        llmh_cli_error("manifest", st);
        return NULL;
    }
    for (int i = 0; i < llmh_cli.n_sets; i++) {
        st = llmh_manifest_set(m, llmh_cli.sets[i]);
        if (st != LLMH_OK) {
            fprintf(stderr, "llmhost: %s\n", *llmh_last_error() ? llmh_last_error() : llmh_status_str(st));
            llmh_manifest_free(m);
            return NULL;
        }
    }
    return m;
}

llmh_registry *llmh_cli_registry(const llmh_manifest *m) {
    llmh_registry *reg = NULL;
    llmh_status st = llmh_registry_create(&reg);
    if (st != LLMH_OK) {
        llmh_cli_error("registry", st);
        return NULL;
    }
    if (m) {
        const llmh_config *c = llmh_manifest_config(m);
        for (size_t i = 0; i < c->plugins.n_paths; i++) llmh_registry_add_path(reg, c->plugins.paths[i]);
    }
    st = llmh_registry_scan(reg);
    if (st != LLMH_OK) {
        llmh_cli_error("plugin discovery", st);
        llmh_registry_free(reg);
        return NULL;
    }
    return reg;
}

int llmh_cli_manifest_option(int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strncmp(a, "--config=", 9)) {
        if (llmh_cli.n_configs >= 16) { fprintf(stderr, "llmhost: too many --config\n"); return -1; }
        llmh_cli.config = a + 9;
        llmh_cli.configs[llmh_cli.n_configs++] = llmh_cli.config;
        return 1;
    }
    if (strcmp(a, "--config") && strcmp(a, "-c") && strcmp(a, "--set")) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "llmhost: %s needs a value\n", a);
        return -1;
    }
    if (!strcmp(a, "--set")) {
        if (llmh_cli.n_sets >= 64) { fprintf(stderr, "llmhost: too many --set\n"); return -1; }
        llmh_cli.sets[llmh_cli.n_sets++] = argv[++*i];
    } else {
        if (llmh_cli.n_configs >= 16) { fprintf(stderr, "llmhost: too many --config\n"); return -1; }
        llmh_cli.config = argv[++*i];
        llmh_cli.configs[llmh_cli.n_configs++] = llmh_cli.config;
    }
    return 1;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') break;
        int mo = llmh_cli_manifest_option(argc, argv, &i);
        if (mo < 0) return 2;
        if (mo > 0) continue;
        if (!strcmp(a, "--dry-run")) {
            llmh_cli.dry_run = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            llmh_cli.verbose++;
        } else if (!strcmp(a, "-vv")) {
            llmh_cli.verbose += 2;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            llmh_cli.quiet = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("llmhost %s (plugin ABI %d.%d)\n", llmh_version(), LLMH_ABI_MAJOR, LLMH_ABI_MINOR);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else {
            fprintf(stderr, "llmhost: unknown option '%s' (see llmhost --help)\n", a);
            return 2;
        }
    }

    llmh_log_level lvl = llmh_cli.quiet ? LLMH_LOG_ERROR
                         : llmh_cli.verbose >= 2 ? LLMH_LOG_DEBUG
                         : llmh_cli.verbose == 1 ? LLMH_LOG_INFO
                                                 : LLMH_LOG_WARN;
    llmh_log_set(stderr_logger, NULL, lvl);
    llmh_cli_fetch_progress_install();

    if (llmh_cli.dry_run) return llmh_cmd_dry_run(argc - i, argv + i);

    if (i >= argc) {
        if (llmh_cli.config) {
            char *chat_argv[] = {"chat", NULL};
            return llmh_cmd_chat(1, chat_argv);
        }
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (!strcmp(argv[i], commands[c].name)) return commands[c].fn(argc - i, argv + i);
    fprintf(stderr, "llmhost: unknown command '%s' (see llmhost --help)\n", argv[i]);
    return 2;
}

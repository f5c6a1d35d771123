/* cli.h — the llmhost program: one command per file in core/cli/. */
#ifndef LLMH_CLI_H
#define LLMH_CLI_H

#include "llmh.h"

/* Options every command shares, parsed by main() before dispatch. */
typedef struct llmh_cli_globals {
    const char *config;         /* --config FILE (last one wins; bench takes several) */
    const char *configs[16];    /* every --config in order */
    int n_configs;
    const char *sets[64];       /* --set section.key=value overrides, in order */
    int n_sets;
    int verbose;                /* -v count: 0 warn, 1 info, 2 debug */
    int quiet;                  /* -q: errors only */
    int dry_run;                /* --dry-run */
} llmh_cli_globals;

extern llmh_cli_globals llmh_cli;

/* Load --config (or `path`) and apply every --set. Prints the error and
 * returns NULL on failure. */
llmh_manifest *llmh_cli_load_manifest(const char *path);
/* The manifest options (--config F, -c F, --config=F, --set S.K=V) at
 * argv[*i], before or after a command: 1 consumed (*i advanced past its
 * value), 0 not one of them, -1 error (printed). */
int llmh_cli_manifest_option(int argc, char **argv, int *i);
/* A registry with the manifest's plugin paths added and scanned (m may be NULL). */
llmh_registry *llmh_cli_registry(const llmh_manifest *m);
/* Print "llmhost: <what>: <llmh_last_error()>" to stderr. */
void llmh_cli_error(const char *what, llmh_status st);

/* Commands: argv[0] is the command name; return the process exit code. */
int llmh_cmd_plugins(int argc, char **argv);      /* cli-plugins.c */
int llmh_cmd_plugin(int argc, char **argv);       /* cli-plugins.c: plugin check FILE */
int llmh_cmd_dry_run(int argc, char **argv);      /* cli-dry-run.c */
int llmh_cmd_inspect(int argc, char **argv);      /* cli-inspect.c */
int llmh_cmd_generate(int argc, char **argv);     /* cli-generate.c */
int llmh_cmd_chat(int argc, char **argv);         /* cli-chat.c */
int llmh_cmd_bench(int argc, char **argv);        /* cli-bench.c */
int llmh_cmd_serve(int argc, char **argv);        /* cli-serve.c, serve/ */
int llmh_cmd_pull(int argc, char **argv);         /* cli-pull.c */
int llmh_cmd_models(int argc, char **argv);       /* cli-pull.c */
int llmh_cmd_rm(int argc, char **argv);           /* cli-pull.c */
void llmh_cli_fetch_progress_install(void);       /* cli-pull.c: download progress on stderr */
int llmh_cmd_export_lora(int argc, char **argv);  /* cli-export-lora.c */
int llmh_cmd_lora_gate(int argc, char **argv);    /* cli-lora-gate.c */

#endif

/* cli-model.h — what generate, chat and bench share: manifest -> registry ->
 * model -> session -> sampler chain, and small I/O helpers. */
#ifndef LLMH_CLI_MODEL_H
#define LLMH_CLI_MODEL_H

#include "cli.h"

typedef struct llmh_cli_model {
    llmh_manifest *manifest;
    llmh_registry *registry;
    llmh_model *model;
    llmh_session *session;
    llmh_sampler_chain *chain;
} llmh_cli_model;

/* Open everything for `config_path` (NULL = --config). Prints errors; returns
 * 0 on success. */
int llmh_cli_model_open(llmh_cli_model *cm, const char *config_path);
void llmh_cli_model_close(llmh_cli_model *cm);

/* Whole file / stream as a NUL-terminated malloc'd string, or NULL. */
char *llmh_cli_read_file(const char *path);
char *llmh_cli_read_stream(FILE *f);

/* "prompt: 5 tokens, 0.002 s (2500 tok/s) | generated: ..." on stderr. */
void llmh_cli_print_summary(const llmh_generate_result *res);

#endif

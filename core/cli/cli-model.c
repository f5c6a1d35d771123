/* cli-model.c — shared model setup and I/O helpers for the llmhost commands. */
#include <stdlib.h>
#include <string.h>

#include "cli-model.h"

int llmh_cli_model_open(llmh_cli_model *cm, const char *config_path) {
    memset(cm, 0, sizeof *cm);
    cm->manifest = llmh_cli_load_manifest(config_path);
    if (!cm->manifest) return 1;
    cm->registry = llmh_cli_registry(cm->manifest);
    if (!cm->registry) goto fail;
    llmh_model_params mp = {cm->registry, cm->manifest};
    llmh_status st = llmh_model_load(&mp, &cm->model);
    if (st) { llmh_cli_error("loading the model", st); goto fail; }
    st = llmh_session_create(cm->model, NULL, &cm->session);
    if (st) { llmh_cli_error("creating a session", st); goto fail; }
    st = llmh_sampler_chain_create(cm->model, cm->manifest, &cm->chain);
    if (st) { llmh_cli_error("building the sampler chain", st); goto fail; }
    return 0;
fail:
    llmh_cli_model_close(cm);
    return 1;
}

void llmh_cli_model_close(llmh_cli_model *cm) {
    llmh_sampler_chain_free(cm->chain);
    llmh_session_free(cm->session);
    llmh_model_free(cm->model);
    llmh_registry_free(cm->registry);
    llmh_manifest_free(cm->manifest);
    memset(cm, 0, sizeof *cm);
}

char *llmh_cli_read_stream(FILE *f) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) { free(buf); return NULL; }
    buf[n] = 0;
    return buf;
}

char *llmh_cli_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = llmh_cli_read_stream(f);
    fclose(f);
    return s;
}

static const char *finish_name(llmh_finish_reason r) {
    switch (r) {
    case LLMH_FINISH_LENGTH: return "length";
    case LLMH_FINISH_EOG: return "end of text";
    case LLMH_FINISH_STOP: return "stop string";
    case LLMH_FINISH_CONTEXT: return "context full";
    default: return "cancelled";
    }
}

void llmh_cli_print_summary(const llmh_generate_result *res) {
    double pp = res->prompt_seconds > 0 ? (double)res->n_prompt / res->prompt_seconds : 0;
    double tg = res->gen_seconds > 0 ? (double)res->n_generated / res->gen_seconds : 0;
    fprintf(stderr, "\nllmhost: prompt %lld tokens in %.3f s (%.1f tok/s) | generated %lld tokens in %.3f s (%.1f tok/s) | finish: %s\n",
            (long long)res->n_prompt, res->prompt_seconds, pp, (long long)res->n_generated, res->gen_seconds, tg,
            finish_name(res->finish));
}

/* cli-generate.c — llmhost generate: complete a prompt, streaming to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-model.h"

static void usage(void) {
    printf("usage: llmhost --config M.toml generate [options]\n"
           "\n"
           "Complete a prompt with the manifest's model and sampler chain, streaming text to stdout.\n"
           "\n"
           "  -p, --prompt TEXT   the prompt (default: read stdin)\n"
           "  -f, --file FILE     read the prompt from FILE\n"
           "  -n, --max-tokens N  tokens to generate (-1 = until end of text or context full;\n"
           "                      default: [generate] max_tokens)\n"
           "  --stop TEXT         stop when TEXT is generated (repeatable; adds to [generate] stop)\n"
           "  --ignore-eos        keep generating past the end-of-text token\n"
           "  --no-special        treat special-token text in the prompt as plain text\n"
           "  --no-bos            never add a BOS token\n"
           "  --no-echo           do not print the prompt before the completion\n"
           "  --ids               print the generated token ids on stderr at the end\n"
           "  -h, --help          this help\n"
           "\n"
           "A tokens/s summary goes to stderr unless -q is given.\n");
}

static bool write_stdout(const char *text, size_t len, void *user) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

int llmh_cmd_generate(int argc, char **argv) {
    const char *prompt = NULL, *file = NULL;
    const char *stops[64];
    size_t n_stop = 0;
    int max_tokens = -2, ignore_eos = 0, no_special = 0, no_bos = 0, echo = 1, print_ids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) prompt = argv[++i];
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) file = argv[++i];
        else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < -1 || v > 1000000000L) {
                fprintf(stderr, "llmhost: generate: -n needs an integer >= -1, got '%s'\n", argv[i]);
                return 2;
            }
            max_tokens = (int)v;
        } else if (!strcmp(a, "--stop") && has_val) {
            if (n_stop == 64) { fprintf(stderr, "llmhost: generate: too many --stop\n"); return 2; }
            stops[n_stop++] = argv[++i];
        } else if (!strcmp(a, "--ignore-eos")) ignore_eos = 1;
        else if (!strcmp(a, "--no-special")) no_special = 1;
        else if (!strcmp(a, "--no-bos")) no_bos = 1;
        else if (!strcmp(a, "--no-echo")) echo = 0;
        else if (!strcmp(a, "--ids")) print_ids = 1;
        else {
            fprintf(stderr, "llmhost: generate: unknown or incomplete option '%s' (see generate --help)\n", a);
            return 2;
        }
    }

    char *owned_prompt = NULL;
    if (!prompt) {
        owned_prompt = file ? llmh_cli_read_file(file) : llmh_cli_read_stream(stdin);
        if (!owned_prompt) {
            fprintf(stderr, "llmhost: generate: cannot read the prompt from %s\n", file ? file : "stdin");
            return 1;
        }
        prompt = owned_prompt;
    }

    llmh_cli_model cm;
    if (llmh_cli_model_open(&cm, NULL) != 0) { free(owned_prompt); return 1; }
    const llmh_config *cfg = llmh_manifest_config(cm.manifest);
    int rc = 1;

    uint32_t flags = (no_special ? 0 : LLMH_ENCODE_PARSE_SPECIAL);
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(cm.model, &tk);
    if (!no_bos && ti->add_bos_default(tk)) flags |= LLMH_ENCODE_ADD_BOS;
    llmh_token *toks = NULL;
    size_t n_toks = 0;
    llmh_status st = llmh_tokenize(cm.model, prompt, strlen(prompt), flags, &toks, &n_toks);
    if (st) { llmh_cli_error("tokenizing the prompt", st); goto out; }
    if (n_toks == 0) { fprintf(stderr, "llmhost: generate: the prompt is empty\n"); goto out; }

    /* stop strings: manifest ones then command-line ones */
    const char **all_stops = calloc(cfg->generate.n_stop + n_stop + 1, sizeof *all_stops);
    if (!all_stops) goto out;
    size_t n_all = 0;
    for (size_t i = 0; i < cfg->generate.n_stop; i++) all_stops[n_all++] = cfg->generate.stop[i];
    for (size_t i = 0; i < n_stop; i++) all_stops[n_all++] = stops[i];

    if (echo) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    llmh_generate_params gp = {
        .max_tokens = max_tokens != -2 ? max_tokens : cfg->generate.max_tokens,
        .stop = all_stops,
        .n_stop = n_all,
        .ignore_eos = ignore_eos,
        .on_text = write_stdout,
    };
    llmh_generate_result res;
    st = llmh_generate(cm.session, cm.chain, toks, n_toks, &gp, &res);
    free(all_stops);
    if (st) {
        putchar('\n');
        llmh_cli_error("generate", st);
        goto out;
    }
    putchar('\n');
    fflush(stdout);
    if (print_ids) {
        fprintf(stderr, "ids:");
        for (int64_t i = 0; i < res.n_generated; i++) fprintf(stderr, " %d", res.tokens[i]);
        fprintf(stderr, "\n");
    }
    if (!llmh_cli.quiet) llmh_cli_print_summary(&res);
    free(res.tokens);
    rc = 0;
out:
    free(toks);
    llmh_cli_model_close(&cm);
    free(owned_prompt);
    return rc;
}

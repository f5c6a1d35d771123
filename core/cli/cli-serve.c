/* cli-serve.c — llmhost serve: load the manifest's model once and serve it
 * over HTTP with an OpenAI-compatible API until SIGINT/SIGTERM. The server
 * itself lives in core/cli/serve/ (see serve.h for the data flow). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

static void usage(void) {
    printf("usage: llmhost serve --config M.toml [options]\n"
           "\n"
           "Serve the manifest's model over HTTP with an OpenAI-compatible API:\n"
           "/v1/chat/completions, /v1/completions, /v1/models, /v1/adapters, /health, /metrics\n"
           "(docs/server.md).\n"
           "\n"
           "  --config FILE       the model manifest (or give it before 'serve')\n"
           "  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
           "  --port N            TCP port (default 8080; 0 = any free port, printed at start)\n"
           "  --parallel N        requests generating at once, one KV cache each (default 4)\n"
           "  --queue N           requests waiting for a slot before 429 (default 64)\n"
           "  --max-body BYTES    request body limit; larger bodies get 413 (default 4194304)\n"
           "  --name ID           model id in the API (default: the manifest's file name)\n"
           "  --batch N           prompt tokens evaluated per step, all slots together (default 512)\n"
           "  --no-prefix-cache   always evaluate the whole prompt (no KV reuse across requests)\n"
           "  -h, --help          this help\n"
           "\n"
           "Adapters from the manifest's [[adapter]] tables are loaded at start and can be\n"
           "named per request; requests that name none use the base model.\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "llmhost: serve: %s needs an integer from %ld to %ld, got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* The manifest's file name without directory and ".toml". */
static char *default_model_id(const llmh_config *cfg) {
    const char *f = cfg->file ? cfg->file : "model";
    const char *b = strrchr(f, '/');
    b = b ? b + 1 : f;
    char *id = srv_strdup(b);
    if (!id) return NULL;
    size_t n = strlen(id);
    if (n > 5 && !strcmp(id + n - 5, ".toml")) id[n - 5] = 0;
    return id;
}

static char *manifest_text(const llmh_manifest *m) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    llmh_manifest_dump(m, f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int llmh_cmd_serve(int argc, char **argv) {
    srv_options opt = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 64, .max_body = 4u << 20,
                       .n_batch = 512, .prefix_cache = true};
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        long v = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if ((!strcmp(a, "--config") || !strcmp(a, "-c")) && has_val) {
            config = argv[++i];
        } else if (!strcmp(a, "--host") && has_val) {
            opt.host = argv[++i];
        } else if (!strcmp(a, "--port") && has_val) {
            if (parse_int(a, argv[++i], 0, 65535, &v)) return 2;
            opt.port = (int)v;
        } else if (!strcmp(a, "--parallel") && has_val) {
            if (parse_int(a, argv[++i], 1, 256, &v)) return 2;
            opt.parallel = (int)v;
        } else if (!strcmp(a, "--queue") && has_val) {
            if (parse_int(a, argv[++i], 0, 100000, &v)) return 2;
            opt.queue = (int)v;
        } else if (!strcmp(a, "--max-body") && has_val) {
            if (parse_int(a, argv[++i], 64, 1L << 30, &v)) return 2;
            opt.max_body = (size_t)v;
        } else if (!strcmp(a, "--batch") && has_val) {
            if (parse_int(a, argv[++i], 1, 65536, &v)) return 2;
            opt.n_batch = (int)v;
        } else if (!strcmp(a, "--name") && has_val) {
            opt.name = argv[++i];
        } else if (!strcmp(a, "--no-prefix-cache")) {
            opt.prefix_cache = false;
        } else {
            fprintf(stderr, "llmhost: serve: unknown or incomplete option '%s' (see serve --help)\n", a);
            return 2;
        }
    }
    if (opt.name && (!*opt.name || strlen(opt.name) > 256)) {
        fprintf(stderr, "llmhost: serve: --name needs 1 to 256 characters\n");
        return 2;
    }

    /* every thread inherits this mask: the main thread takes the signals */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    s->opt = opt;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->admin_mu, NULL);
    pthread_mutex_init(&s->rate_mu, NULL);
    s->created = (int64_t)time(NULL);
    int rc = 1;

    s->manifest = llmh_cli_load_manifest(config);
    if (!s->manifest) goto out;
    const llmh_config *cfg = llmh_manifest_config(s->manifest);
    s->registry = llmh_cli_registry(s->manifest);
    if (!s->registry) goto out;
    llmh_model_params mp = {s->registry, s->manifest};
    llmh_status st = llmh_model_load(&mp, &s->model);
    if (st) {
        llmh_cli_error("loading the model", st);
        goto out;
    }
    s->manifest_text = manifest_text(s->manifest);
    s->model_id = opt.name ? srv_strdup(opt.name) : default_model_id(cfg);
    if (!s->manifest_text || !s->model_id) {
        fprintf(stderr, "llmhost: serve: out of memory\n");
        goto out;
    }
    /* a sampler chain now, so a bad [sampler] table fails at start */
    {
        llmh_sampler_chain *chain = NULL;
        st = llmh_sampler_chain_create(s->model, s->manifest, &chain);
        if (st) {
            llmh_cli_error("building the sampler chain", st);
            goto out;
        }
        llmh_sampler_chain_free(chain);
    }
    s->n_ctx = cfg->model.context;
    s->default_max_tokens = cfg->generate.max_tokens;
    s->default_stop = cfg->generate.stop;
    s->n_default_stop = cfg->generate.n_stop;
    s->system_prompt = cfg->generate.system;

    if (srv_sched_start(s)) {
        fprintf(stderr, "llmhost: serve: cannot start the scheduler\n");
        goto stop;
    }
    if (srv_http_start(s)) goto stop;
    const llmh_model_desc *d = llmh_model_describe(s->model);
    printf("llmhost: serving '%s' (%s, %d slots, context %lld) on http://%s%s%s:%d\n", s->model_id, d->arch,
           s->n_slots, (long long)s->n_ctx, strchr(opt.host, ':') ? "[" : "", opt.host, strchr(opt.host, ':') ? "]" : "",
           s->opt.port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    llmh_log(LLMH_LOG_INFO, "serve", "signal %d: shutting down", sig);
    rc = 0;
stop:
    /* fail what waits and runs, close the connections, then free the slots
     * (connection threads read the slot count until they are gone) */
    srv_sched_stop(s);
    srv_http_stop(s);
    srv_sched_free(s);
out:
    free(s->manifest_text);
    free(s->model_id);
    llmh_model_free(s->model);
    llmh_registry_free(s->registry);
    llmh_manifest_free(s->manifest);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->admin_mu);
    pthread_mutex_destroy(&s->rate_mu);
    free(s);
    return rc;
}

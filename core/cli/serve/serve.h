/* serve.h — llmhost serve: an OpenAI-compatible HTTP server (libmicrohttpd).
 *
 * Data flow, one file per stage:
 *   serve-http.c    connections: routing, request bodies (size limit), the
 *                   JSON/SSE responses, client hang-up detection;
 *   serve-request.c a request body (untrusted JSON) -> srv_request: fields
 *                   validated, chat template rendered, prompt tokenized and
 *                   checked against the context;
 *   serve-sched.c   the scheduler thread: owns the slots (one session
 *                   each), admits queued requests, batches the decode steps
 *                   of every active slot with llmh_session_eval_batch(),
 *                   samples per request and streams text back;
 *   serve-admin.c   /v1/models, /v1/adapters, /health, /metrics.
 * cli-serve.c parses the command line, loads the model and runs the server
 * until SIGINT/SIGTERM. */
#ifndef LLMH_SERVE_H
#define LLMH_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cli.h"

typedef struct srv_options {
    const char *host;      /* bind address (default 127.0.0.1) */
    int port;              /* 0 = any free port (printed at start) */
    int parallel;          /* slots: requests generating at once */
    int queue;             /* requests waiting for a slot before 503 */
    size_t max_body;       /* request body limit in bytes (413 past it) */
    const char *name;      /* model id for the API (default: manifest file stem) */
    int n_batch;           /* max prompt tokens evaluated per slot per step */
    bool prefix_cache;     /* reuse the KV prefix a slot already holds */
} srv_options;

typedef enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION = 1 } srv_kind;

typedef enum srv_state { SRV_QUEUED = 0, SRV_RUNNING = 1, SRV_DONE = 2 } srv_state;

/* One generation request. Fields above `mu` are set by the HTTP thread
 * before submission and read-only afterwards; fields below it are guarded
 * by `mu` (the scheduler writes, the HTTP thread reads). */
typedef struct srv_request {
    srv_kind kind;
    bool stream, include_usage, return_ids;
    bool has_tools;              /* tools given: parse <tool_call> blocks (non-streaming) */
    char id[48];                 /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;             /* unix seconds */
    char *model;                 /* the model id echoed in responses */
    llmh_token *prompt;          /* (n_prompt) */
    size_t n_prompt;
    int32_t max_tokens;          /* >= 0 limit; -1 until the context is full */
    char **stop;                 /* (n_stop) stop strings, not emitted */
    size_t n_stop;
    /* sampling overrides (has_* false = the manifest's [sampler] value) */
    bool has_temperature, has_top_p, has_seed, has_freq, has_pres;
    double temperature, top_p, freq_penalty, pres_penalty;
    uint64_t seed;
    /* adapters: names with scales and/or namespaces; none = the base model */
    char **ad_names;             /* (n_ad) */
    float *ad_scales;            /* (n_ad) */
    size_t n_ad;
    char **ad_ns;                /* (n_ns) */
    size_t n_ns;
    char *ad_key;                /* canonical text of the selection ("" = base) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;                    /* HTTP side + scheduler side */
    srv_state state;
    char *text;                  /* generated text so far (text_len bytes) */
    size_t text_len, text_cap;
    llmh_token *ids;             /* generated ids (n_ids) */
    size_t n_ids, cap_ids;
    const char *finish;          /* "stop" or "length" once done */
    int err_status;              /* != 0: failed with this HTTP status */
    char *err_msg;
    int64_t n_reused;            /* prompt tokens found in the slot's cache */
    atomic_bool cancelled;       /* the client went away */
    double t_submit, t_start, t_done;
    struct srv_request *next;    /* queue link (scheduler lock) */
} srv_request;

#define SRV_STATUS_MAX 600

typedef struct srv_slot srv_slot;

typedef struct srv_server {
    srv_options opt;
    llmh_manifest *manifest;
    llmh_registry *registry;
    llmh_model *model;
    char *manifest_text;         /* the resolved manifest (per-request sampler chains) */
    char *model_id;
    int64_t n_ctx;
    int32_t default_max_tokens;  /* [generate] max_tokens */
    const char *const *default_stop;
    size_t n_default_stop;
    const char *system_prompt;   /* [generate] system, or NULL */
    int64_t created;

    srv_slot *slots;
    int n_slots;

    pthread_mutex_t mu;          /* queue, stopping, slot activity */
    pthread_cond_t cv;
    srv_request *q_head, *q_tail;
    int n_queued;
    int n_active;
    bool stopping;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t admin_mu;    /* serializes adapter load/unload/rescale */
    atomic_uint_fast64_t adapter_gen; /* bumped on every adapter store change */

    /* metrics */
    atomic_uint_fast64_t status_count[SRV_STATUS_MAX];
    atomic_uint_fast64_t tokens_generated, tokens_prompt, tokens_reused, cancelled_total;
    atomic_int_fast64_t kv_used; /* sum of slot cache positions */
    pthread_mutex_t rate_mu;
    double rate_t[64];           /* recent decode steps: time, tokens */
    int rate_n[64];
    int rate_i;

    void *daemon;                /* struct MHD_Daemon * */
} srv_server;

/* serve-sched.c */
int srv_sched_start(srv_server *s);           /* creates the slots and the thread */
void srv_sched_stop(srv_server *s);           /* fails what is queued/active, joins */
void srv_sched_free(srv_server *s);           /* frees the slots (after srv_http_stop) */
/* Queue `r` (takes a reference). Returns 0, or the HTTP status (503) when
 * the queue is full or the server is stopping. */
int srv_sched_submit(srv_server *s, srv_request *r);
double srv_tokens_per_second(srv_server *s);  /* decode rate over the last seconds */
/* The client went away: mark `r` cancelled; a queued request leaves the
 * queue now (its slot in the queue frees), a running one at the next step. */
void srv_sched_cancel(srv_server *s, srv_request *r);

/* serve-request.c */
srv_request *srv_request_new(void);
void srv_request_release(srv_request *r);    /* drop one reference */
/* Parse and validate a body for `kind`. On failure returns NULL with
 * *status (400/404/...), *type and *msg (malloc'd) set. */
srv_request *srv_request_parse(srv_server *s, srv_kind kind, const char *body, size_t len, int *status,
                               const char **type, char **msg);
/* Parse the body as a JSON object (NULL with *msg on failure). */
cJSON *srv_parse_object(const char *body, size_t len, char **msg);

/* serve-http.c */
int srv_http_start(srv_server *s);
void srv_http_stop(srv_server *s);
/* The OpenAI error body {"error": {message, type, param, code}}; malloc'd. */
char *srv_error_json(int status, const char *type, const char *msg);
const char *srv_error_type(int status);

/* serve-admin.c: handlers returning the body (malloc'd) and *status. */
char *srv_admin_models(srv_server *s, int *status);
char *srv_admin_adapters_list(srv_server *s, int *status);
char *srv_admin_adapters_post(srv_server *s, const char *body, size_t len, int *status);
char *srv_admin_adapters_delete(srv_server *s, const char *name, const char *body, size_t len, int *status);
char *srv_admin_health(srv_server *s, int *status);
char *srv_admin_metrics(srv_server *s, int *status);
/* True when `name` is an adapter in the store now. */
bool srv_adapter_exists(srv_server *s, const char *name);

/* serve-toolcall.c: the Hermes/Qwen tool-call form the chat templates teach,
 * <tool_call>{"name": ..., "arguments": {...}}</tool_call>, found in `text`.
 * When there is at least one block and every block parses, returns OpenAI
 * `tool_calls` ([{id: "call_<id_prefix>_<i>", type: "function", function:
 * {name, arguments (a JSON string)}}]) and sets *content (malloc'd) to the
 * text around the blocks, trimmed, or NULL when nothing is left. Otherwise
 * returns NULL. Depends on cJSON only. */
cJSON *srv_parse_tool_calls(const char *text, const char *id_prefix, char **content);

/* small helpers (serve-request.c) */
double srv_now(void);                        /* monotonic seconds */
char *srv_strdup(const char *s);
char *srv_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif

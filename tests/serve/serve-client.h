/* serve-client.h — what the llmhost serve suites share: start the built
 * llmhost serve on a free loopback port (fork/exec, the port read from its
 * first stdout line), HTTP requests through libcurl, SSE parsing, and the
 * server's RSS. */
#ifndef LLMH_SERVE_CLIENT_H
#define LLMH_SERVE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef struct srv_proc {
    pid_t pid;
    int port;
} srv_proc;

/* Start `llmhost serve --config <config> --port 0 <args...>` (args NULL-
 * terminated). Returns 0 when it listens (within 120 s). */
int srvc_start(srv_proc *p, const char *config, const char *const *args);
/* SIGTERM and wait; returns the exit status (0 = clean shutdown), -1 when it
 * had to be killed. */
int srvc_stop(srv_proc *p);

typedef struct srvc_resp {
    long status;
    char *body;                /* NUL-terminated (len bytes) */
    size_t len;
} srvc_resp;

/* One request; body may be NULL. `headers` NULL-terminated or NULL. Returns
 * 0 when an HTTP response came back (any status). */
int srvc_http(const srv_proc *p, const char *method, const char *path, const char *body, size_t body_len,
              const char *const *headers, srvc_resp *out);
void srvc_resp_free(srvc_resp *r);
/* POST JSON, parse the JSON answer (NULL when it is not JSON). */
cJSON *srvc_post_json(const srv_proc *p, const char *path, const char *body, long *status);
cJSON *srvc_get_json(const srv_proc *p, const char *path, long *status);

/* A parsed SSE stream: the JSON of every "data:" event before [DONE]. */
typedef struct srvc_stream {
    cJSON **events;
    size_t n;
    bool done;                 /* "data: [DONE]" came, last */
    bool malformed;            /* a line that is not "data: ..." or an event that is not JSON */
    char *text;                /* concatenated delta.content / text */
    const char *finish;        /* finish_reason of the last choice chunk (inside events) */
    cJSON *usage;              /* the usage chunk's usage, or NULL (inside events) */
    int finish_chunks;         /* chunks with a non-null finish_reason */
} srvc_stream;
/* Parse `body` as a text/event-stream of chat (chat=true) or completion chunks. */
void srvc_stream_parse(const char *body, bool chat, srvc_stream *out);
void srvc_stream_free(srvc_stream *s);

/* VmRSS of the process in kB (0 when unknown). */
long srvc_rss_kb(pid_t pid);
/* A value from the /metrics text ("name" or "name{labels}"); -1 when absent. */
double srvc_metric(const srv_proc *p, const char *name);

#endif

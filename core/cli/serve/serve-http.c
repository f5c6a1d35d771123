/* serve-http.c — the HTTP side: libmicrohttpd with one thread per
 * connection. Bodies are read up to --max-body (413 past it), routes are
 * matched (404 unknown, 405 wrong method), generation requests are parsed
 * and queued; a non-streaming request waits for its result, a streaming one
 * gets its headers once a slot takes it and then one SSE event per batch of
 * new text. While waiting, the connection's socket is polled: a client that
 * hangs up cancels its request, and the scheduler frees the slot. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "serve.h"

#define WAIT_SLICE_MS 50

const char *srv_error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "server_overloaded";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *srv_error_json(int status, const char *type, const char *msg) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg ? msg : "error");
    cJSON_AddStringToObject(e, "type", type ? type : srv_error_type(status));
    cJSON_AddNullToObject(e, "param");
    if (status == 404 && msg && !strncmp(msg, "The model", 9)) cJSON_AddStringToObject(e, "code", "model_not_found");
    else cJSON_AddNullToObject(e, "code");
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void count_status(srv_server *s, int status) {
    if (status > 0 && status < SRV_STATUS_MAX) atomic_fetch_add(&s->status_count[status], 1);
}

/* Queue `body` (malloc'd, taken) as the response. */
static enum MHD_Result send_body(srv_server *s, struct MHD_Connection *c, int status, char *body, const char *ctype) {
    if (!body) {
        status = 500;
        body = srv_strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        if (!body) return MHD_NO;
    }
    size_t len = strlen(body);
    char *with_nl = realloc(body, len + 2);
    if (with_nl) {
        body = with_nl;
        body[len++] = '\n';
        body[len] = 0;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "application/json");
    if (status == 503 || status == 429) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    count_status(s, status);
    return ret;
}

static enum MHD_Result send_error(srv_server *s, struct MHD_Connection *c, int status, const char *msg) {
    return send_body(s, c, status, srv_error_json(status, NULL, msg), NULL);
}

static enum MHD_Result send_405(srv_server *s, struct MHD_Connection *c, const char *method, const char *url,
                                const char *allow) {
    char msg[512];
    snprintf(msg, sizeof msg, "method %.32s is not allowed on %.256s (allowed: %s)", method, url, allow);
    char *body = srv_error_json(405, NULL, msg);
    if (!body) return MHD_NO;
    size_t len = strlen(body);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, 405, resp);
    MHD_destroy_response(resp);
    count_status(s, 405);
    return ret;
}

/* True when the peer closed its side of the connection (or it broke). */
static bool peer_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd pfd = {fd, POLLIN | POLLRDHUP, 0};
    int n = poll(&pfd, 1, 0);
    if (n <= 0) return false;
    if (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
    if (pfd.revents & POLLIN) {
        char b;
        ssize_t got = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wait (r->mu held) until `ready(r)` or the client leaves. Returns false
 * when the client left (the request is then marked cancelled). */
static bool wait_for(srv_request *r, int fd, bool (*ready)(const srv_request *, const void *), const void *arg) {
    struct timespec next_check;
    deadline_in(&next_check, WAIT_SLICE_MS);
    while (!ready(r, arg)) {
        /* woken often (every token) or not at all: look at the socket every slice either way */
        pthread_cond_timedwait(&r->cv, &r->mu, &next_check);
        if (ready(r, arg)) break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next_check.tv_sec || (now.tv_sec == next_check.tv_sec && now.tv_nsec >= next_check.tv_nsec)) {
            if (peer_gone(fd)) {
                atomic_store(&r->cancelled, true);
                return false;
            }
            deadline_in(&next_check, WAIT_SLICE_MS);
        }
    }
    return true;
}

static bool is_started(const srv_request *r, const void *arg) {
    (void)arg;
    return r->state != SRV_QUEUED;
}

static bool is_done(const srv_request *r, const void *arg) {
    (void)arg;
    return r->state == SRV_DONE;
}

static bool has_news(const srv_request *r, const void *arg) {
    return r->state == SRV_DONE || r->text_len > *(const size_t *)arg;
}

/* ---- response bodies ----------------------------------------------------- */
static cJSON *usage_json(const srv_request *r) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)r->n_ids);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(r->n_prompt + r->n_ids));
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)r->n_reused);
    return u;
}

static cJSON *ids_json(const llmh_token *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static cJSON *envelope(const srv_request *r, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "llmhost");
    return o;
}

/* Hermes/Qwen tool-call blocks in the text become OpenAI tool_calls. */
static bool add_tool_calls(const srv_request *r, cJSON *msg) {
    char *content = NULL;
    cJSON *calls = srv_parse_tool_calls(r->text ? r->text : "", r->id, &content);
    if (!calls) return false;
    if (content) cJSON_AddStringToObject(msg, "content", content);
    else cJSON_AddNullToObject(msg, "content");
    cJSON_AddItemToObject(msg, "tool_calls", calls);
    free(content);
    return true;
}

/* The whole result (r->mu held, r done without error). */
static char *final_json(const srv_request *r) {
    bool chat = r->kind == SRV_CHAT, tool_calls = false;
    cJSON *o = envelope(r, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        tool_calls = r->has_tools && add_tool_calls(r, m);
        if (!tool_calls) cJSON_AddStringToObject(m, "content", r->text ? r->text : "");
    } else {
        cJSON_AddStringToObject(ch, "text", r->text ? r->text : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", tool_calls ? "tool_calls" : r->finish ? r->finish : "stop");
    if (r->return_ids) cJSON_AddItemToObject(ch, "token_ids", ids_json(r->ids, r->n_ids));
    cJSON_AddItemToObject(o, "usage", usage_json(r));
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* ---- streaming ------------------------------------------------------------ */
typedef struct stream_ctx {
    srv_server *s;
    srv_request *r;
    int fd;
    size_t text_sent, ids_sent;
    bool sent_role, finished;
    char *out;                  /* formatted SSE bytes not yet handed to MHD */
    size_t n_out, off_out, cap_out;
} stream_ctx;

static bool out_add(stream_ctx *st, const char *s, size_t n) {
    if (st->n_out + n > st->cap_out) {
        size_t cap = (st->n_out + n) * 2;
        char *o = realloc(st->out, cap);
        if (!o) return false;
        st->out = o;
        st->cap_out = cap;
    }
    memcpy(st->out + st->n_out, s, n);
    st->n_out += n;
    return true;
}

static bool out_event(stream_ctx *st, cJSON *o) {
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return false;
    bool ok = out_add(st, "data: ", 6) && out_add(st, j, strlen(j)) && out_add(st, "\n\n", 2);
    free(j);
    return ok;
}

/* A chunk with new text (NULL finish) or the final one. r->mu held. */
static cJSON *chunk_json(stream_ctx *st, const char *text, size_t len, const char *finish) {
    const srv_request *r = st->r;
    bool chat = r->kind == SRV_CHAT;
    cJSON *o = envelope(r, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, text, len);
        t[len] = 0;
    }
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (!st->sent_role) {
            cJSON_AddStringToObject(d, "role", "assistant");
            st->sent_role = true;
        }
        if (len || !finish) cJSON_AddStringToObject(d, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(ch, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    if (r->return_ids) {
        cJSON_AddItemToObject(ch, "token_ids", ids_json(r->ids + st->ids_sent, r->n_ids - st->ids_sent));
        st->ids_sent = r->n_ids;
    }
    if (r->include_usage) cJSON_AddNullToObject(o, "usage");
    return o;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *st = cls;
    for (;;) {
        if (st->off_out < st->n_out) {
            size_t n = st->n_out - st->off_out;
            if (n > max) n = max;
            memcpy(buf, st->out + st->off_out, n);
            st->off_out += n;
            return (ssize_t)n;
        }
        st->n_out = st->off_out = 0;
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        srv_request *r = st->r;
        pthread_mutex_lock(&r->mu);
        if (!wait_for(r, st->fd, has_news, &st->text_sent)) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        bool ok = true;
        if (r->text_len > st->text_sent) {
            ok = out_event(st, chunk_json(st, r->text + st->text_sent, r->text_len - st->text_sent, NULL));
            st->text_sent = r->text_len;
        }
        if (ok && r->state == SRV_DONE) {
            if (r->err_status) {
                char *ej = srv_error_json(r->err_status, NULL, r->err_msg);
                ok = ej && out_add(st, "data: ", 6) && out_add(st, ej, strlen(ej)) && out_add(st, "\n\n", 2);
                free(ej);
            } else {
                ok = out_event(st, chunk_json(st, "", 0, r->finish ? r->finish : "stop"));
                if (ok && r->include_usage) {
                    cJSON *o = envelope(r, r->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage_json(r));
                    ok = out_event(st, o);
                }
            }
            ok = ok && out_add(st, "data: [DONE]\n\n", 14);
            st->finished = true;
        }
        pthread_mutex_unlock(&r->mu);
        if (!ok) {
            atomic_store(&r->cancelled, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream_ctx *st = cls;
    srv_request *r = st->r;
    pthread_mutex_lock(&r->mu);
    bool unfinished = r->state != SRV_DONE || !st->finished || st->off_out < st->n_out;
    pthread_mutex_unlock(&r->mu);
    if (unfinished) srv_sched_cancel(st->s, r);
    srv_request_release(r);
    free(st->out);
    free(st);
}

/* ---- generation endpoints -------------------------------------------------- */
static enum MHD_Result handle_generate(srv_server *s, struct MHD_Connection *c, srv_kind kind, const char *body,
                                       size_t len) {
    int status = 0;
    const char *type = NULL;
    char *msg = NULL;
    srv_request *r = srv_request_parse(s, kind, body, len, &status, &type, &msg);
    if (!r) {
        enum MHD_Result ret = send_body(s, c, status, srv_error_json(status, type, msg), NULL);
        free(msg);
        return ret;
    }
    int rc = srv_sched_submit(s, r);
    if (rc) {
        srv_request_release(r);
        return send_error(s, c, rc,
                          rc == 429 ? "too many requests: every slot is busy and the queue is full; retry later"
                                    : "the server is shutting down");
    }
    int fd = conn_fd(c);
    pthread_mutex_lock(&r->mu);
    bool here = wait_for(r, fd, r->stream ? is_started : is_done, NULL);
    if (!here) {
        pthread_mutex_unlock(&r->mu);
        srv_sched_cancel(s, r);
        srv_request_release(r);
        count_status(s, 499);
        return MHD_NO; /* the client is gone: close */
    }
    if (r->state == SRV_DONE && r->err_status) {
        int es = r->err_status;
        char *eb = srv_error_json(es, NULL, r->err_msg);
        pthread_mutex_unlock(&r->mu);
        srv_request_release(r);
        return send_body(s, c, es, eb, NULL);
    }
    if (!r->stream) {
        char *out = final_json(r);
        pthread_mutex_unlock(&r->mu);
        srv_request_release(r);
        return send_body(s, c, 200, out, NULL);
    }
    pthread_mutex_unlock(&r->mu);
    stream_ctx *st = calloc(1, sizeof *st);
    if (!st) {
        atomic_store(&r->cancelled, true);
        srv_request_release(r);
        return send_error(s, c, 500, "out of memory");
    }
    st->s = s;
    st->r = r; /* the stream owns the HTTP side's reference now */
    st->fd = fd;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    count_status(s, 200);
    return ret;
}

/* ---- connections ----------------------------------------------------------- */
typedef struct conn_ctx {
    char *body;
    size_t len, cap;
    size_t discarded;           /* body bytes dropped past the limit */
    bool too_big, responded;
} conn_ctx;

static bool method_is(const char *m, const char *want) {
    return !strcmp(m, want);
}

static enum MHD_Result route(srv_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             conn_ctx *cx) {
    int status = 200;
    char *out = NULL;
    bool get = method_is(method, "GET") || method_is(method, "HEAD");
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions")) {
        if (!method_is(method, "POST")) return send_405(s, c, method, url, "POST");
        return handle_generate(s, c, url[4] == 'c' && url[5] == 'h' ? SRV_CHAT : SRV_COMPLETION, cx->body, cx->len);
    }
    if (!strcmp(url, "/v1/models")) {
        if (!get) return send_405(s, c, method, url, "GET");
        out = srv_admin_models(s, &status);
        return send_body(s, c, status, out, NULL);
    }
    if (!strncmp(url, "/v1/models/", 11)) {
        if (!get) return send_405(s, c, method, url, "GET");
        const char *id = url + 11;
        if (strcmp(id, s->model_id) != 0 && !srv_adapter_exists(s, id)) {
            char msg[512];
            snprintf(msg, sizeof msg, "The model '%.256s' does not exist", id);
            return send_error(s, c, 404, msg);
        }
        cJSON *all = NULL;
        char *list = srv_admin_models(s, &status);
        if (list) all = cJSON_Parse(list);
        free(list);
        cJSON *e, *found = NULL;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(all, "data")) {
            cJSON *eid = cJSON_GetObjectItem(e, "id");
            if (cJSON_IsString(eid) && !strcmp(eid->valuestring, id)) found = e;
        }
        out = found ? cJSON_PrintUnformatted(found) : NULL;
        cJSON_Delete(all);
        if (!found) return send_error(s, c, 404, "the model went away");
        return send_body(s, c, 200, out, NULL);
    }
    if (!strcmp(url, "/v1/adapters")) {
        if (get) out = srv_admin_adapters_list(s, &status);
        else if (method_is(method, "POST")) out = srv_admin_adapters_post(s, cx->body, cx->len, &status);
        else if (method_is(method, "DELETE")) out = srv_admin_adapters_delete(s, NULL, cx->body, cx->len, &status);
        else return send_405(s, c, method, url, "GET, POST, DELETE");
        return send_body(s, c, status, out, NULL);
    }
    if (!strncmp(url, "/v1/adapters/", 13)) {
        if (!method_is(method, "DELETE")) return send_405(s, c, method, url, "DELETE");
        out = srv_admin_adapters_delete(s, url + 13, NULL, 0, &status);
        return send_body(s, c, status, out, NULL);
    }
    if (!strcmp(url, "/health")) {
        if (!get) return send_405(s, c, method, url, "GET");
        out = srv_admin_health(s, &status);
        return send_body(s, c, status, out, NULL);
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return send_405(s, c, method, url, "GET");
        out = srv_admin_metrics(s, &status);
        return send_body(s, c, status, out, "text/plain; version=0.0.4; charset=utf-8");
    }
    char msg[512];
    snprintf(msg, sizeof msg, "unknown route %.32s %.256s (see docs/server.md)", method, url);
    return send_error(s, c, 404, msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    srv_server *s = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx) return MHD_NO;
        *con_cls = cx;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > (unsigned long long)s->opt.max_body) {
                cx->too_big = cx->responded = true;
                char msg[256];
                snprintf(msg, sizeof msg, "the request body (Content-Length %.40s) is larger than the limit of %zu bytes",
                         cl, s->opt.max_body);
                return send_error(s, c, 413, msg);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cx->responded) return MHD_YES; /* discard */
        if (cx->too_big) {
            /* libmicrohttpd answers only once the body is in: discard it,
             * up to a bound, then drop the connection */
            cx->discarded += n;
            return cx->discarded > 4 * s->opt.max_body + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (cx->len + n > s->opt.max_body) {
            cx->too_big = true;
            cx->discarded = cx->len + n;
            free(cx->body);
            cx->body = NULL;
            cx->len = cx->cap = 0;
            return MHD_YES;
        }
        if (cx->len + n + 1 > cx->cap) {
            size_t cap = (cx->len + n + 1) * 2;
            if (cap > s->opt.max_body + 1) cap = s->opt.max_body + 1;
            char *b = realloc(cx->body, cap);
            if (!b) {
                cx->responded = true;
                return send_error(s, c, 500, "out of memory");
            }
            cx->body = b;
            cx->cap = cap;
        }
        memcpy(cx->body + cx->len, upload_data, n);
        cx->len += n;
        cx->body[cx->len] = 0;
        return MHD_YES;
    }
    if (cx->responded) return MHD_YES;
    cx->responded = true;
    if (cx->too_big) {
        char msg[256];
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", s->opt.max_body);
        return send_error(s, c, 413, msg);
    }
    if (cx->body && memchr(cx->body, 0, cx->len))
        return send_error(s, c, 400, "the request body contains a NUL byte; send a JSON object");
    /* the path without a query string */
    char path[1024];
    size_t ul = strcspn(url, "?");
    if (ul >= sizeof path) return send_error(s, c, 404, "the URL is too long");
    memcpy(path, url, ul);
    path[ul] = 0;
    return route(s, c, path, method, cx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    free(cx->body);
    free(cx);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    llmh_log(LLMH_LOG_INFO, "http", "%s", buf);
}

int srv_http_start(srv_server *s) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (strchr(s->opt.host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)s->opt.port);
        if (inet_pton(AF_INET6, s->opt.host, &a6->sin6_addr) != 1) {
            fprintf(stderr, "llmhost: serve: --host '%s' is not an IPv4 or IPv6 address\n", s->opt.host);
            return -1;
        }
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)s->opt.port);
        if (inet_pton(AF_INET, s->opt.host, &a4->sin_addr) != 1) {
            fprintf(stderr, "llmhost: serve: --host '%s' is not an IPv4 or IPv6 address\n", s->opt.host);
            return -1;
        }
    }
    unsigned int conn_limit = (unsigned)(s->opt.parallel + s->opt.queue + 64);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "llmhost: serve: cannot listen on %s port %d: %s\n", s->opt.host, s->opt.port,
                errno ? strerror(errno) : "libmicrohttpd refused to start");
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (di && di->port) s->opt.port = di->port;
    s->daemon = d;
    return 0;
}

void srv_http_stop(srv_server *s) {
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

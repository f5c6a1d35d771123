/* serve-client.c — start/stop the llmhost server and talk to it (libcurl). */
#define _GNU_SOURCE
#include "serve-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

int srvc_start(srv_proc *p, const char *config, const char *const *args) {
    memset(p, 0, sizeof *p);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    const char *exe = LLMH_BINARY_DIR "/bin/llmhost";
    const char *argv[64];
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "serve";
    argv[n++] = "--config";
    argv[n++] = config;
    argv[n++] = "--port";
    argv[n++] = "0";
    for (; args && *args && n < 62; args++) argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    p->pid = pid;
    /* the first line: "llmhost: serving '...' (...) on http://127.0.0.1:PORT" */
    char line[1024];
    size_t len = 0;
    time_t t0 = time(NULL);
    while (len + 1 < sizeof line && time(NULL) - t0 < 120) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (poll(&pfd, 1, 1000) <= 0) continue;
        ssize_t got = read(fds[0], line + len, 1);
        if (got <= 0) break;
        if (line[len] == '\n') break;
        len++;
    }
    line[len] = 0;
    /* keep the pipe drained: the server prints nothing more to stdout */
    close(fds[0]);
    const char *colon = strrchr(line, ':');
    if (!strstr(line, "http://") || !colon) {
        fprintf(stderr, "serve test: the server did not start (first line: '%s')\n", line);
        srvc_stop(p);
        return -1;
    }
    p->port = atoi(colon + 1);
    return p->port > 0 ? 0 : -1;
}

int srvc_stop(srv_proc *p) {
    if (p->pid <= 0) return -1;
    kill(p->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 600; i++) { /* 60 s */
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid) {
            p->pid = 0;
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            fprintf(stderr, "serve test: the server died from signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
            return -1;
        }
        usleep(100000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    fprintf(stderr, "serve test: the server did not stop within 60 s of SIGTERM\n");
    return -1;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *user) {
    srvc_resp *r = user;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->len + n + 1);
    if (!b) return 0;
    r->body = b;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return n;
}

int srvc_http(const srv_proc *p, const char *method, const char *path, const char *body, size_t body_len,
              const char *const *headers, srvc_resp *out) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p->port, path);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");
    for (; headers && *headers; headers++) hl = curl_slist_append(hl, *headers);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (!out->body) out->body = calloc(1, 1);
    if (rc != CURLE_OK && out->status == 0) {
        fprintf(stderr, "serve test: %s %s: %s\n", method, path, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void srvc_resp_free(srvc_resp *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

cJSON *srvc_post_json(const srv_proc *p, const char *path, const char *body, long *status) {
    srvc_resp r;
    *status = 0;
    if (srvc_http(p, "POST", path, body, strlen(body), NULL, &r)) return NULL;
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    srvc_resp_free(&r);
    return j;
}

cJSON *srvc_get_json(const srv_proc *p, const char *path, long *status) {
    srvc_resp r;
    *status = 0;
    if (srvc_http(p, "GET", path, NULL, 0, NULL, &r)) return NULL;
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    srvc_resp_free(&r);
    return j;
}

static void add_text(srvc_stream *s, const char *t) {
    size_t a = s->text ? strlen(s->text) : 0, b = strlen(t);
    char *n = realloc(s->text, a + b + 1);
    if (!n) return;
    memcpy(n + a, t, b + 1);
    s->text = n;
}

void srvc_stream_parse(const char *body, bool chat, srvc_stream *out) {
    memset(out, 0, sizeof *out);
    out->text = calloc(1, 1);
    const char *p = body;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == 0) { /* event separator */
            p = nl ? nl + 1 : p + len;
            continue;
        }
        if (out->done || len < 6 || strncmp(p, "data: ", 6) != 0) {
            out->malformed = true;
            break;
        }
        char *data = strndup(p + 6, len - 6);
        if (!strcmp(data, "[DONE]")) {
            out->done = true;
        } else {
            cJSON *e = cJSON_Parse(data);
            if (!e) {
                out->malformed = true;
                free(data);
                break;
            }
            cJSON **ev = realloc(out->events, (out->n + 1) * sizeof *ev);
            if (ev) {
                out->events = ev;
                out->events[out->n++] = e;
            } else {
                cJSON_Delete(e);
            }
            cJSON *choices = cJSON_GetObjectItem(e, "choices");
            cJSON *ch = cJSON_GetArrayItem(choices, 0);
            if (ch) {
                cJSON *t = chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content")
                                : cJSON_GetObjectItem(ch, "text");
                if (cJSON_IsString(t)) add_text(out, t->valuestring);
                cJSON *fr = cJSON_GetObjectItem(ch, "finish_reason");
                if (cJSON_IsString(fr)) {
                    out->finish = fr->valuestring;
                    out->finish_chunks++;
                }
            }
            cJSON *u = cJSON_GetObjectItem(e, "usage");
            if (cJSON_IsObject(u)) out->usage = u;
        }
        free(data);
        p = nl ? nl + 1 : p + len;
    }
}

void srvc_stream_free(srvc_stream *s) {
    for (size_t i = 0; i < s->n; i++) cJSON_Delete(s->events[i]);
    free(s->events);
    free(s->text);
    memset(s, 0, sizeof *s);
}

long srvc_rss_kb(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    fclose(f);
    return kb;
}

double srvc_metric(const srv_proc *p, const char *name) {
    srvc_resp r;
    if (srvc_http(p, "GET", "/metrics", NULL, 0, NULL, &r)) return -1;
    double v = -1;
    size_t nl = strlen(name);
    for (char *line = r.body; line && *line;) {
        char *end = strchr(line, '\n');
        if (!strncmp(line, name, nl) && line[nl] == ' ') v = strtod(line + nl + 1, NULL);
        line = end ? end + 1 : NULL;
    }
    srvc_resp_free(&r);
    return v;
}

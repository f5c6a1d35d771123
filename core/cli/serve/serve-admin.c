/* serve-admin.c — the endpoints around generation: /v1/models (the base
 * model and every loaded adapter, vLLM style), /v1/adapters (list, load,
 * rescale, unload at run time through the memory fabric), /health and
 * /metrics (Prometheus text format). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

bool srv_adapter_exists(srv_server *s, const char *name) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    if (llmh_adapter_list(s->model, &info, &n) != LLMH_OK) return false;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) found = !strcmp(info[i].name, name);
    free(info);
    return found;
}

static char *print_free(cJSON *o) {
    char *out = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return out;
}

static char *err(int *status, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static char *err(int *status, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *status = code;
    return srv_error_json(code, NULL, msg);
}

static cJSON *adapter_json(const llmh_adapter_info *a) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", a->name);
    cJSON_AddStringToObject(o, "path", a->path ? a->path : "");
    if (a->ns) cJSON_AddStringToObject(o, "namespace", a->ns);
    else cJSON_AddNullToObject(o, "namespace");
    cJSON_AddNumberToObject(o, "scale", a->scale);
    cJSON_AddNumberToObject(o, "alpha", a->alpha);
    cJSON_AddNumberToObject(o, "rank", a->rank);
    cJSON_AddNumberToObject(o, "targets", a->n_targets);
    cJSON_AddNumberToObject(o, "users", a->users);
    return o;
}

char *srv_admin_models(srv_server *s, int *status) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    if (llmh_adapter_list(s->model, &info, &n) != LLMH_OK) return err(status, 500, "cannot list adapters: %s", llmh_last_error());
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "llmhost");
    cJSON_AddNullToObject(m, "parent");
    cJSON_AddNumberToObject(m, "max_model_len", (double)s->n_ctx);
    cJSON_AddItemToArray(data, m);
    for (size_t i = 0; i < n; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "id", info[i].name);
        cJSON_AddStringToObject(a, "object", "model");
        cJSON_AddNumberToObject(a, "created", (double)s->created);
        cJSON_AddStringToObject(a, "owned_by", "llmhost");
        cJSON_AddStringToObject(a, "parent", s->model_id);
        cJSON_AddNumberToObject(a, "max_model_len", (double)s->n_ctx);
        cJSON_AddItemToArray(data, a);
    }
    free(info);
    *status = 200;
    return print_free(o);
}

char *srv_admin_adapters_list(srv_server *s, int *status) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    if (llmh_adapter_list(s->model, &info, &n) != LLMH_OK) return err(status, 500, "cannot list adapters: %s", llmh_last_error());
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(data, adapter_json(&info[i]));
    free(info);
    *status = 200;
    return print_free(o);
}

/* One adapter's entry, or 404. */
static char *adapter_entry(srv_server *s, const char *name, int *status, int ok_status) {
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    if (llmh_adapter_list(s->model, &info, &n) != LLMH_OK) return err(status, 500, "cannot list adapters: %s", llmh_last_error());
    cJSON *o = NULL;
    for (size_t i = 0; i < n && !o; i++)
        if (!strcmp(info[i].name, name)) o = adapter_json(&info[i]);
    free(info);
    if (!o) return err(status, 404, "adapter '%.256s' is not loaded", name);
    *status = ok_status;
    return print_free(o);
}

static bool valid_name(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len > 256) return false;
    for (const unsigned char *p = (const unsigned char *)n; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/') return false;
    return true;
}

char *srv_admin_adapters_post(srv_server *s, const char *body, size_t len, int *status) {
    char *msg = NULL;
    cJSON *o = srv_parse_object(body, len, &msg);
    if (!o) {
        char *e = err(status, 400, "%s", msg ? msg : "invalid JSON");
        free(msg);
        return e;
    }
    char *out = NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(o, "scale");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o, "namespace");
    if (!cJSON_IsString(name) || !valid_name(name->valuestring)) {
        out = err(status, 400, "'name' must be a string of 1 to 256 characters without '/' or control characters");
        goto done;
    }
    if (!strcmp(name->valuestring, s->model_id)) {
        out = err(status, 400, "'name' must differ from the base model's id '%s'", s->model_id);
        goto done;
    }
    if (path && !cJSON_IsNull(path) && !cJSON_IsString(path)) { out = err(status, 400, "'path' must be a string"); goto done; }
    if (scale && !cJSON_IsNull(scale) &&
        (!cJSON_IsNumber(scale) || !isfinite(scale->valuedouble) || fabs(scale->valuedouble) > 1000)) {
        out = err(status, 400, "'scale' must be a number between -1000 and 1000");
        goto done;
    }
    if (ns && !cJSON_IsNull(ns) && (!cJSON_IsString(ns) || !valid_name(ns->valuestring))) {
        out = err(status, 400, "'namespace' must be a string of 1 to 256 characters");
        goto done;
    }
    bool has_path = cJSON_IsString(path), has_scale = cJSON_IsNumber(scale), has_ns = cJSON_IsString(ns);
    pthread_mutex_lock(&s->admin_mu);
    bool exists = srv_adapter_exists(s, name->valuestring);
    llmh_status st;
    if (has_path) {
        if (exists) {
            pthread_mutex_unlock(&s->admin_mu);
            out = err(status, 409, "adapter '%s' is already loaded; DELETE /v1/adapters/%s first, or POST {name, scale} to rescale it",
                      name->valuestring, name->valuestring);
            goto done;
        }
        st = llmh_adapter_load(s->model, name->valuestring, path->valuestring, has_scale ? (float)scale->valuedouble : 1.0f,
                               has_ns ? ns->valuestring : NULL);
        if (st) {
            pthread_mutex_unlock(&s->admin_mu);
            out = err(status, st == LLMH_ERR_NO_MEMORY ? 500 : 400, "cannot load adapter '%s': %s", name->valuestring,
                      llmh_last_error());
            goto done;
        }
        atomic_fetch_add(&s->adapter_gen, 1);
        pthread_mutex_unlock(&s->admin_mu);
        llmh_log(LLMH_LOG_INFO, "serve", "adapter '%s' loaded from %s", name->valuestring, path->valuestring);
        out = adapter_entry(s, name->valuestring, status, 201);
        goto done;
    }
    if (!exists) {
        pthread_mutex_unlock(&s->admin_mu);
        out = err(status, 404, "adapter '%s' is not loaded; give 'path' to load it", name->valuestring);
        goto done;
    }
    if (!has_scale || has_ns) {
        pthread_mutex_unlock(&s->admin_mu);
        out = err(status, 400, "to change a loaded adapter give 'name' and 'scale' (the namespace is fixed at load)");
        goto done;
    }
    st = llmh_adapter_set_scale(s->model, name->valuestring, (float)scale->valuedouble);
    if (st) {
        pthread_mutex_unlock(&s->admin_mu);
        out = err(status, st == LLMH_ERR_NOT_FOUND ? 404 : 400, "cannot rescale adapter '%s': %s", name->valuestring,
                  llmh_last_error());
        goto done;
    }
    atomic_fetch_add(&s->adapter_gen, 1);
    pthread_mutex_unlock(&s->admin_mu);
    out = adapter_entry(s, name->valuestring, status, 200);
done:
    cJSON_Delete(o);
    return out;
}

char *srv_admin_adapters_delete(srv_server *s, const char *name, const char *body, size_t len, int *status) {
    cJSON *o = NULL;
    if (!name) {
        char *msg = NULL;
        o = srv_parse_object(body, len, &msg);
        if (!o) {
            char *e = err(status, 400, "%s (DELETE /v1/adapters/NAME, or a body {\"name\": ...})", msg ? msg : "invalid JSON");
            free(msg);
            return e;
        }
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (!cJSON_IsString(n)) {
            cJSON_Delete(o);
            return err(status, 400, "'name' must be a string");
        }
        name = n->valuestring;
    }
    char *out;
    pthread_mutex_lock(&s->admin_mu);
    llmh_status st = llmh_adapter_unload(s->model, name);
    if (st == LLMH_OK) atomic_fetch_add(&s->adapter_gen, 1);
    pthread_mutex_unlock(&s->admin_mu);
    if (st == LLMH_ERR_NOT_FOUND || (st && !srv_adapter_exists(s, name))) {
        out = err(status, 404, "adapter '%.256s' is not loaded", name);
    } else if (st) {
        out = err(status, 500, "cannot unload adapter '%.256s': %s", name, llmh_last_error());
    } else {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddStringToObject(r, "object", "adapter");
        cJSON_AddTrueToObject(r, "deleted");
        *status = 200;
        out = print_free(r);
    }
    cJSON_Delete(o);
    return out;
}

char *srv_admin_health(srv_server *s, int *status) {
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    int active = s->n_active, queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", stopping ? "shutting down" : "ok");
    cJSON_AddStringToObject(o, "model", s->model_id);
    cJSON_AddNumberToObject(o, "slots_total", s->n_slots);
    cJSON_AddNumberToObject(o, "slots_active", active);
    cJSON_AddNumberToObject(o, "queue_depth", queued);
    cJSON_AddNumberToObject(o, "queue_limit", s->opt.queue);
    *status = stopping ? 503 : 200;
    return print_free(o);
}

typedef struct mbuf {
    char *p;
    size_t n, cap;
} mbuf;

static void mb_printf(mbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void mb_printf(mbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int w = b->p ? vsnprintf(b->p + b->n, room, fmt, ap) : -2;
        va_end(ap);
        if (w >= 0 && (size_t)w < room) {
            b->n += (size_t)w;
            return;
        }
        if (w == -1) return;
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (w >= 0 && cap < b->n + (size_t)w + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
}

static void metric(mbuf *b, const char *name, const char *type, const char *help, double v) {
    mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *srv_admin_metrics(srv_server *s, int *status) {
    mbuf b = {0};
    mb_printf(&b, "# HELP llmhost_requests_total HTTP responses sent, by status code (499: the client left first).\n"
                  "# TYPE llmhost_requests_total counter\n");
    for (int c = 100; c < SRV_STATUS_MAX; c++) {
        uint64_t v = atomic_load(&s->status_count[c]);
        if (v) mb_printf(&b, "llmhost_requests_total{code=\"%d\"} %llu\n", c, (unsigned long long)v);
    }
    pthread_mutex_lock(&s->mu);
    int active = s->n_active, queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
    metric(&b, "llmhost_requests_cancelled_total", "counter", "Requests stopped because the client disconnected.",
           (double)atomic_load(&s->cancelled_total));
    metric(&b, "llmhost_tokens_generated_total", "counter", "Tokens sampled for all requests.",
           (double)atomic_load(&s->tokens_generated));
    metric(&b, "llmhost_prompt_tokens_total", "counter", "Prompt tokens evaluated (prefill).",
           (double)atomic_load(&s->tokens_prompt));
    metric(&b, "llmhost_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.",
           (double)atomic_load(&s->tokens_reused));
    metric(&b, "llmhost_tokens_per_second", "gauge", "Decode throughput over the last 10 seconds, all slots.",
           srv_tokens_per_second(s));
    metric(&b, "llmhost_queue_depth", "gauge", "Requests waiting for a slot.", queued);
    metric(&b, "llmhost_queue_limit", "gauge", "Requests allowed to wait (--queue).", s->opt.queue);
    metric(&b, "llmhost_slots_active", "gauge", "Slots generating now.", active);
    metric(&b, "llmhost_slots_total", "gauge", "Slots (--parallel).", s->n_slots);
    metric(&b, "llmhost_kv_cells_used", "gauge", "KV cache cells holding tokens, all slots.", (double)atomic_load(&s->kv_used));
    metric(&b, "llmhost_kv_cells_total", "gauge", "KV cache cells, all slots.", (double)s->n_ctx * s->n_slots);
    llmh_adapter_info *info = NULL;
    size_t n = 0;
    if (llmh_adapter_list(s->model, &info, &n) == LLMH_OK) {
        metric(&b, "llmhost_adapters_loaded", "gauge", "LoRA adapters in the store.", (double)n);
        free(info);
    }
    *status = 200;
    return b.p;
}

/* serve-sched.c — the scheduler thread. It alone touches the slots: each
 * slot is one session (KV cache) reused across requests, with its own
 * sampler chain per request. One step evaluates, for every active slot, a
 * chunk of its prompt or its last sampled token, all in one
 * llmh_session_eval_batch() call (requests with different adapters batch
 * together), then samples one token per slot that finished its prompt.
 * Text goes to the request with stop strings and incomplete UTF-8 held back
 * (llmh_text_holdback, as llmh_generate streams), so a stream never shows a
 * stop string or a broken character. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

struct srv_slot {
    int index;
    llmh_session *session;
    llmh_token *cache;          /* tokens in the KV cache, in order (n_cache = session pos) */
    size_t n_cache, cap_cache;
    char *ad_key;               /* adapter selection the cache was computed with */
    uint64_t ad_gen;            /* adapter store generation at that selection */
    srv_request *req;           /* NULL when free */
    llmh_sampler_chain *chain;
    size_t n_fed;               /* prompt tokens in the cache for req */
    bool decoding;              /* the prompt is in; `last` is next to evaluate */
    llmh_token last;
    int64_t n_gen;
    char *pending;              /* text held back (stop prefix / partial UTF-8) */
    size_t n_pending, cap_pending;
    double last_used;
};

/* ---- text ---------------------------------------------------------------- */
/* Append `n` bytes to r->text, replacing invalid UTF-8 with U+FFFD so every
 * JSON string built from it is valid. Caller holds r->mu. */
static bool text_append_valid(srv_request *r, const char *s, size_t n) {
    size_t need = r->text_len + n * 3 + 1;
    if (need > r->text_cap) {
        size_t cap = need * 2;
        char *t = realloc(r->text, cap);
        if (!t) return false;
        r->text = t;
        r->text_cap = cap;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    char *o = r->text + r->text_len;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        uint32_t cp = 0;
        if (ok) {
            cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
            for (size_t k = 1; k < len && ok; k++) {
                if ((p[i + k] & 0xC0) != 0x80) ok = false;
                else cp = (cp << 6) | (p[i + k] & 0x3Fu);
            }
            /* overlong forms, surrogates, past U+10FFFF */
            if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                       (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF))
                ok = false;
        }
        if (ok) {
            memcpy(o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += 1;
        }
    }
    r->text_len = (size_t)(o - r->text);
    r->text[r->text_len] = 0;
    return true;
}

static void emit(srv_request *r, const char *s, size_t n) {
    if (!n) return;
    pthread_mutex_lock(&r->mu);
    text_append_valid(r, s, n);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- slots --------------------------------------------------------------- */
static void slot_cache_push(srv_slot *sl, const llmh_token *t, size_t n) {
    if (sl->n_cache + n > sl->cap_cache) {
        size_t cap = (sl->n_cache + n) * 2;
        llmh_token *c = realloc(sl->cache, cap * sizeof *c);
        if (!c) { /* the cache list is only an optimization: forget it */
            sl->n_cache = 0;
            free(sl->ad_key);
            sl->ad_key = NULL;
            return;
        }
        sl->cache = c;
        sl->cap_cache = cap;
    }
    memcpy(sl->cache + sl->n_cache, t, n * sizeof *t);
    sl->n_cache += n;
}

static size_t common_prefix(const srv_slot *sl, const srv_request *r) {
    size_t k = 0;
    while (k < sl->n_cache && k < r->n_prompt && sl->cache[k] == r->prompt[k]) k++;
    return k;
}

static bool slot_cache_valid(srv_server *s, const srv_slot *sl, const srv_request *r) {
    return s->opt.prefix_cache && sl->ad_key && !strcmp(sl->ad_key, r->ad_key) &&
           sl->ad_gen == atomic_load(&s->adapter_gen);
}

/* Finish the slot's request: flush held text (unless failed), publish the
 * result, free the chain, release the slot. */
static void finish(srv_server *s, srv_slot *sl, const char *reason, int err_status, const char *err_msg) {
    srv_request *r = sl->req;
    if (!err_status && sl->n_pending) emit(r, sl->pending, sl->n_pending);
    sl->n_pending = 0;
    /* the slot counts as free before the client hears of the result, so a
     * client that sends its next request at once finds room for it */
    pthread_mutex_lock(&s->mu);
    s->n_active--;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&r->mu);
    r->state = SRV_DONE;
    r->finish = reason;
    r->err_status = err_status;
    if (err_status) r->err_msg = srv_strdup(err_msg ? err_msg : "internal error");
    r->t_done = srv_now();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (atomic_load(&r->cancelled)) atomic_fetch_add(&s->cancelled_total, 1);
    llmh_sampler_chain_free(sl->chain);
    sl->chain = NULL;
    sl->req = NULL;
    sl->last_used = srv_now();
    srv_request_release(r);
}

/* A sampler chain for the request: the manifest's [sampler] with the
 * request's overrides (docs/server.md, "Sampling"). */
static llmh_status make_chain(srv_server *s, srv_request *r, llmh_sampler_chain **out) {
    llmh_manifest *m = NULL;
    llmh_status st = llmh_manifest_parse(s->manifest_text, strlen(s->manifest_text), "serve-request", NULL, &m);
    if (st) return st;
    const llmh_config *cfg = llmh_manifest_config(m);
    char buf[512];
    const char *chain[16];
    size_t n = 0;
    bool greedy_base = cfg->sampler.n_chain == 0 || strcmp(cfg->sampler.chain[cfg->sampler.n_chain - 1], "dist") != 0;
    bool sampling = r->has_temperature || r->has_top_p || r->has_seed;
    bool penalties = r->has_freq || r->has_pres;
    if (r->has_temperature && r->temperature == 0) {
        bool had_pen = false;
        for (size_t i = 0; i < cfg->sampler.n_chain; i++) had_pen |= !strcmp(cfg->sampler.chain[i], "penalties");
        if (had_pen || penalties) chain[n++] = "penalties";
        chain[n++] = "greedy";
    } else if (sampling && !greedy_base) {
        bool has_pen = false, has_top_p = false, has_temp = false;
        for (size_t i = 0; i < cfg->sampler.n_chain; i++) {
            has_pen |= !strcmp(cfg->sampler.chain[i], "penalties");
            has_top_p |= !strcmp(cfg->sampler.chain[i], "top_p");
            has_temp |= !strcmp(cfg->sampler.chain[i], "temperature");
        }
        if (penalties && !has_pen) chain[n++] = "penalties";
        for (size_t i = 0; i + 1 < cfg->sampler.n_chain && n < 12; i++) {
            if (!strcmp(cfg->sampler.chain[i], "temperature") && r->has_top_p && !has_top_p) chain[n++] = "top_p";
            chain[n++] = cfg->sampler.chain[i];
        }
        if (r->has_top_p && !has_top_p && !has_temp) chain[n++] = "top_p";
        if (!has_temp) chain[n++] = "temperature";
        chain[n++] = "dist";
    } else if (sampling) {
        if (penalties) chain[n++] = "penalties";
        if (r->has_top_p) chain[n++] = "top_p";
        chain[n++] = "temperature";
        chain[n++] = "dist";
        if (!r->has_temperature && !llmh_kv_find(&cfg->sampler.params, "temperature")) {
            r->has_temperature = true; /* OpenAI's default */
            r->temperature = 1.0;
        }
    } else if (penalties) {
        bool has_pen = false;
        for (size_t i = 0; i < cfg->sampler.n_chain; i++) has_pen |= !strcmp(cfg->sampler.chain[i], "penalties");
        if (!has_pen) chain[n++] = "penalties";
        for (size_t i = 0; i < cfg->sampler.n_chain && n < 15; i++) chain[n++] = cfg->sampler.chain[i];
    }
    if (n) {
        size_t o = (size_t)snprintf(buf, sizeof buf, "sampler.chain=[");
        for (size_t i = 0; i < n && o < sizeof buf; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\"", i ? "," : "", chain[i]);
        if (o < sizeof buf) snprintf(buf + o, sizeof buf - o, "]");
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    if (r->has_temperature) {
        snprintf(buf, sizeof buf, "sampler.temperature=%.17g", r->temperature);
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    if (r->has_top_p) {
        snprintf(buf, sizeof buf, "sampler.top_p=%.17g", r->top_p);
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    if (r->has_freq) {
        snprintf(buf, sizeof buf, "sampler.frequency_penalty=%.17g", r->freq_penalty);
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    if (r->has_pres) {
        snprintf(buf, sizeof buf, "sampler.presence_penalty=%.17g", r->pres_penalty);
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    if (r->has_seed) {
        /* the std samplers take 32-bit seeds: fold the request's 64 bits */
        snprintf(buf, sizeof buf, "sampler.seed=%llu", (unsigned long long)((r->seed ^ (r->seed >> 32)) & 0xFFFFFFFFull));
        if ((st = llmh_manifest_set(m, buf))) goto out;
    } else if (sampling || !greedy_base) {
        /* no seed: a different draw per request */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        static atomic_uint_fast64_t ctr;
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (atomic_fetch_add(&ctr, 1) * 0x9E3779B97F4A7C15ull);
        snprintf(buf, sizeof buf, "sampler.seed=%llu", (unsigned long long)((x ^ (x >> 32)) & 0xFFFFFFFFull));
        if ((st = llmh_manifest_set(m, buf))) goto out;
    }
    st = llmh_sampler_chain_create(s->model, m, out);
out:
    llmh_manifest_free(m);
    return st;
}

/* Bind an admitted request to its slot: adapters, cache reuse, sampler. */
static void start(srv_server *s, srv_slot *sl) {
    srv_request *r = sl->req;
    pthread_mutex_lock(&r->mu);
    r->state = SRV_RUNNING;
    r->t_start = srv_now();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);

    uint64_t gen = atomic_load(&s->adapter_gen);
    bool valid = slot_cache_valid(s, sl, r);
    llmh_status st = LLMH_OK;
    if (!r->n_ad && !r->n_ns) {
        llmh_session_clear_adapters(sl->session);
    } else {
        llmh_adapter_request ar = {(const char *const *)r->ad_names, r->ad_scales, r->n_ad,
                                   (const char *const *)r->ad_ns, r->n_ns};
        st = llmh_session_select_adapters(sl->session, &ar);
    }
    if (st) {
        char *msg = srv_printf("cannot select the adapters: %s", llmh_last_error());
        free(sl->ad_key);
        sl->ad_key = NULL; /* the session's set is unknown now */
        finish(s, sl, NULL, st == LLMH_ERR_NOT_FOUND ? 404 : 400, msg);
        free(msg);
        return;
    }
    size_t common = valid ? common_prefix(sl, r) : 0;
    if (common == r->n_prompt) common--; /* re-evaluate the last prompt token for its logits */
    llmh_session_truncate(sl->session, (int64_t)common);
    sl->n_cache = common;
    if (!sl->ad_key || strcmp(sl->ad_key, r->ad_key) != 0) {
        free(sl->ad_key);
        sl->ad_key = srv_strdup(r->ad_key);
    }
    sl->ad_gen = gen;
    r->n_reused = (int64_t)common;
    atomic_fetch_add(&s->tokens_reused, common);

    st = make_chain(s, r, &sl->chain);
    if (st) {
        char *msg = srv_printf("cannot build the sampler chain: %s", llmh_last_error());
        finish(s, sl, NULL, 400, msg);
        free(msg);
        return;
    }
    for (size_t i = 0; i < r->n_prompt; i++) llmh_sampler_chain_accept(sl->chain, r->prompt[i]);
    sl->n_fed = common;
    sl->decoding = false;
    sl->n_gen = 0;
    sl->n_pending = 0;
}

static bool pending_add(srv_slot *sl, const char *s, size_t n) {
    if (sl->n_pending + n + 1 > sl->cap_pending) {
        size_t cap = (sl->n_pending + n + 1) * 2;
        char *p = realloc(sl->pending, cap);
        if (!p) return false;
        sl->pending = p;
        sl->cap_pending = cap;
    }
    memcpy(sl->pending + sl->n_pending, s, n);
    sl->n_pending += n;
    sl->pending[sl->n_pending] = 0;
    return true;
}

static void rate_add(srv_server *s, int64_t tokens) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t sec = (int64_t)ts.tv_sec;
    pthread_mutex_lock(&s->rate_mu);
    int b = (int)(sec % 64);
    if ((int64_t)s->rate_t[b] != sec) {
        s->rate_t[b] = (double)sec;
        s->rate_n[b] = 0;
    }
    s->rate_n[b] += (int)tokens;
    pthread_mutex_unlock(&s->rate_mu);
}

double srv_tokens_per_second(srv_server *s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec;
    int64_t total = 0;
    pthread_mutex_lock(&s->rate_mu);
    for (int64_t sec = now - 10; sec < now; sec++) { /* the last 10 complete seconds */
        int b = (int)(sec % 64);
        if ((int64_t)s->rate_t[b] == sec) total += s->rate_n[b];
    }
    pthread_mutex_unlock(&s->rate_mu);
    return (double)total / 10.0;
}

/* After the slot's logits are fresh: sample one token and stream it. */
static void sample_one(srv_server *s, srv_slot *sl) {
    srv_request *r = sl->req;
    if (r->max_tokens >= 0 && sl->n_gen >= r->max_tokens) {
        finish(s, sl, "length", 0, NULL);
        return;
    }
    llmh_token tok;
    llmh_status st = llmh_sampler_chain_sample(sl->chain, llmh_session_logits(sl->session), &tok);
    if (st) {
        char *msg = srv_printf("sampling failed: %s", llmh_last_error());
        finish(s, sl, NULL, 500, msg);
        free(msg);
        return;
    }
    if (llmh_token_is_eog(s->model, tok)) {
        finish(s, sl, "stop", 0, NULL);
        return;
    }
    sl->n_gen++;
    atomic_fetch_add(&s->tokens_generated, 1);
    pthread_mutex_lock(&r->mu);
    if (r->n_ids == r->cap_ids) {
        size_t cap = r->cap_ids ? r->cap_ids * 2 : 64;
        llmh_token *ids = realloc(r->ids, cap * sizeof *ids);
        if (ids) {
            r->ids = ids;
            r->cap_ids = cap;
        }
    }
    if (r->n_ids < r->cap_ids) r->ids[r->n_ids++] = tok;
    pthread_mutex_unlock(&r->mu);

    char piece[256];
    size_t got = 0;
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(s->model, &tk);
    st = ti->token_to_piece(tk, tok, 0, piece, sizeof piece, &got);
    bool ok;
    if (st == LLMH_ERR_INVALID_ARG && got > sizeof piece) {
        char *big = malloc(got);
        ok = big && ti->token_to_piece(tk, tok, 0, big, got, &got) == LLMH_OK && pending_add(sl, big, got);
        free(big);
    } else {
        ok = st == LLMH_OK && pending_add(sl, piece, got);
    }
    if (!ok) {
        finish(s, sl, NULL, 500, "cannot decode a generated token");
        return;
    }
    /* a stop string anywhere in the held text ends the request there */
    size_t stop_at,
           hold = llmh_text_holdback(sl->pending, sl->n_pending, (const char *const *)r->stop, r->n_stop, &stop_at);
    if (stop_at != SIZE_MAX) {
        emit(r, sl->pending, stop_at);
        sl->n_pending = 0;
        finish(s, sl, "stop", 0, NULL);
        return;
    }
    size_t out = sl->n_pending - hold;
    emit(r, sl->pending, out);
    memmove(sl->pending, sl->pending + out, hold);
    sl->n_pending = hold;
    if (r->max_tokens >= 0 && sl->n_gen >= r->max_tokens) {
        finish(s, sl, "length", 0, NULL);
        return;
    }
    if (llmh_session_pos(sl->session) + 1 > s->n_ctx) {
        finish(s, sl, "length", 0, NULL); /* the context is full */
        return;
    }
    sl->last = tok;
    sl->decoding = true;
}

/* One step over every active slot. */
static void step(srv_server *s, llmh_batch_item *items, int *who, bool *failed) {
    size_t n = 0;
    int64_t budget = s->opt.n_batch; /* prompt tokens this step, all slots together */
    for (int i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        if (!sl->req) continue;
        if (atomic_load(&sl->req->cancelled)) {
            finish(s, sl, "cancelled", 0, NULL);
            continue;
        }
        if (sl->decoding) {
            items[n] = (llmh_batch_item){sl->session, &sl->last, 1};
        } else {
            if (budget <= 0) continue;
            size_t left = sl->req->n_prompt - sl->n_fed;
            size_t chunk = left < (size_t)budget ? left : (size_t)budget;
            budget -= (int64_t)chunk;
            items[n] = (llmh_batch_item){sl->session, sl->req->prompt + sl->n_fed, chunk};
        }
        who[n++] = i;
    }
    if (!n) return;
    llmh_status st = llmh_session_eval_batch(items, n);
    memset(failed, 0, n * sizeof *failed);
    if (st) {
        /* nothing was evaluated; find the item at fault one by one */
        for (size_t k = 0; k < n; k++) {
            if (llmh_session_eval(items[k].session, items[k].tokens, items[k].n_tokens) != LLMH_OK) {
                srv_slot *sl = &s->slots[who[k]];
                char *msg = srv_printf("evaluation failed: %s", llmh_last_error());
                llmh_log(LLMH_LOG_ERROR, "serve", "%s: %s", sl->req->id, msg);
                finish(s, sl, NULL, 500, msg);
                free(msg);
                failed[k] = true;
            }
        }
    }
    int64_t decoded = 0;
    for (size_t k = 0; k < n; k++) {
        if (failed[k]) continue;
        srv_slot *sl = &s->slots[who[k]];
        slot_cache_push(sl, items[k].tokens, items[k].n_tokens);
        if (sl->decoding) {
            decoded++;
        } else {
            sl->n_fed += items[k].n_tokens;
            atomic_fetch_add(&s->tokens_prompt, items[k].n_tokens);
            if (sl->n_fed < sl->req->n_prompt) continue;
        }
        sample_one(s, sl);
    }
    int64_t kv = 0;
    for (int i = 0; i < s->n_slots; i++) kv += llmh_session_pos(s->slots[i].session);
    atomic_store(&s->kv_used, kv);
    if (decoded) rate_add(s, decoded);
}

/* The free slot for `r`: the longest reusable prefix, else the least
 * recently used. */
static srv_slot *pick_slot(srv_server *s, const srv_request *r) {
    srv_slot *best = NULL;
    size_t best_common = 0;
    for (int i = 0; i < s->n_slots; i++) {
        srv_slot *sl = &s->slots[i];
        if (sl->req) continue;
        size_t c = slot_cache_valid(s, sl, r) ? common_prefix(sl, r) : 0;
        if (!best || c > best_common || (c == best_common && sl->last_used < best->last_used)) {
            best = sl;
            best_common = c;
        }
    }
    return best;
}

static void fail_request(srv_request *r, int status, const char *msg) {
    pthread_mutex_lock(&r->mu);
    r->state = SRV_DONE;
    r->err_status = status;
    r->err_msg = srv_strdup(msg);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    srv_request_release(r);
}

static void *sched_main(void *arg) {
    srv_server *s = arg;
    llmh_batch_item *items = calloc((size_t)s->n_slots, sizeof *items);
    int *who = calloc((size_t)s->n_slots, sizeof *who);
    srv_slot **admitted = calloc((size_t)s->n_slots, sizeof *admitted);
    bool *failed = calloc((size_t)s->n_slots, sizeof *failed);
    if (!items || !who || !admitted || !failed) {
        llmh_log(LLMH_LOG_ERROR, "serve", "scheduler: out of memory");
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int n_adm = 0;
        while (s->q_head && s->n_active < s->n_slots) {
            srv_request *r = s->q_head;
            s->q_head = r->next;
            if (!s->q_head) s->q_tail = NULL;
            s->n_queued--;
            if (atomic_load(&r->cancelled)) {
                atomic_fetch_add(&s->cancelled_total, 1);
                pthread_mutex_unlock(&s->mu);
                fail_request(r, 499, "the client closed the connection");
                pthread_mutex_lock(&s->mu);
                continue;
            }
            srv_slot *sl = pick_slot(s, r);
            sl->req = r;
            s->n_active++;
            admitted[n_adm++] = sl;
        }
        if (s->n_active == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n_adm; i++) start(s, admitted[i]);
        step(s, items, who, failed);
        pthread_mutex_lock(&s->mu);
    }
    /* stopping: fail what waits, then what runs */
    srv_request *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        srv_request *next = q->next;
        fail_request(q, 503, "the server is shutting down");
        q = next;
    }
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].req) finish(s, &s->slots[i], NULL, 503, "the server is shutting down");
    free(items);
    free(who);
    free(admitted);
    free(failed);
    return NULL;
}

int srv_sched_start(srv_server *s) {
    s->slots = calloc((size_t)s->opt.parallel, sizeof *s->slots);
    if (!s->slots) return -1;
    s->n_slots = s->opt.parallel;
    for (int i = 0; i < s->n_slots; i++) {
        s->slots[i].index = i;
        llmh_session_params sp = {0};
        sp.n_batch = s->opt.n_batch;
        llmh_status st = llmh_session_create(s->model, &sp, &s->slots[i].session);
        if (st) {
            llmh_cli_error("creating a session", st);
            return -1;
        }
    }
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) return -1;
    s->thread_started = true;
    return 0;
}

void srv_sched_stop(srv_server *s) {
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->thread_started = false;
    }
}

void srv_sched_free(srv_server *s) {
    if (s->slots)
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *sl = &s->slots[i];
            llmh_sampler_chain_free(sl->chain);
            llmh_session_free(sl->session);
            free(sl->cache);
            free(sl->ad_key);
            free(sl->pending);
        }
    free(s->slots);
    s->slots = NULL;
    s->n_slots = 0;
}

int srv_sched_submit(srv_server *s, srv_request *r) {
    pthread_mutex_lock(&s->mu);
    int free_slots = s->n_slots - s->n_active;
    if (s->stopping || s->n_queued >= s->opt.queue + (free_slots > 0 ? free_slots : 0)) {
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        return stopping ? 503 : 429;
    }
    pthread_mutex_lock(&r->mu);
    r->refs++;
    r->state = SRV_QUEUED;
    r->t_submit = srv_now();
    pthread_mutex_unlock(&r->mu);
    r->next = NULL;
    if (s->q_tail) s->q_tail->next = r;
    else s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_sched_cancel(srv_server *s, srv_request *r) {
    atomic_store(&r->cancelled, true);
    bool removed = false;
    pthread_mutex_lock(&s->mu);
    for (srv_request *q = s->q_head, *prev = NULL; q; prev = q, q = q->next) {
        if (q != r) continue;
        if (prev) prev->next = q->next;
        else s->q_head = q->next;
        if (s->q_tail == q) s->q_tail = prev;
        s->n_queued--;
        removed = true;
        break;
    }
    pthread_cond_broadcast(&s->cv); /* a running request is dropped at the next step */
    pthread_mutex_unlock(&s->mu);
    if (removed) {
        atomic_fetch_add(&s->cancelled_total, 1);
        fail_request(r, 499, "the client closed the connection");
    }
}

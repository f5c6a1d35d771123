/* generate.c — prompt evaluation then sample/eval until a stop condition.
 * Text is streamed in complete UTF-8 sequences; text that could be the start
 * of a stop string is held back until it is known not to be one. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model-internal.h"

/* Bytes at the end of buf[0..n) that form an incomplete UTF-8 sequence. */
static size_t utf8_incomplete_tail(const char *buf, size_t n) {
    size_t back = 0;
    while (back < n && back < 4) {
        unsigned char c = (unsigned char)buf[n - 1 - back];
        if ((c & 0xC0) != 0x80) { /* lead byte or ASCII */
            size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            return back + 1 < need ? back + 1 : 0;
        }
        back++;
    }
    return 0; /* only continuation bytes (invalid): emit as they are */
}

/* Longest suffix of buf[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const char *buf, size_t n, const char *const *stop, size_t n_stop) {
    size_t best = 0;
    for (size_t i = 0; i < n_stop; i++) {
        size_t sl = stop[i] ? strlen(stop[i]) : 0;
        if (sl == 0) continue; /* an empty stop string never matches */
        for (size_t k = sl - 1 < n ? sl - 1 : n; k > best; k--)
            if (!memcmp(buf + n - k, stop[i], k)) { best = k; break; }
    }
    return best;
}

size_t llmh_text_holdback(const char *buf, size_t n, const char *const *stop, size_t n_stop, size_t *stop_at) {
    *stop_at = SIZE_MAX;
    for (size_t i = 0; i < n_stop && buf; i++) {
        if (!stop[i] || !stop[i][0]) continue; /* as in stop_prefix_tail */
        const char *hit = memmem(buf, n, stop[i], strlen(stop[i]));
        if (hit && (size_t)(hit - buf) < *stop_at) *stop_at = (size_t)(hit - buf);
    }
    size_t hold = stop_prefix_tail(buf, n, stop, n_stop), inc = utf8_incomplete_tail(buf, n);
    return inc > hold ? inc : hold;
}

typedef struct textbuf {
    char *p;
    size_t n, cap;
} textbuf;

static bool tb_append(textbuf *t, const char *s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t cap = (t->n + n + 1) * 2;
        char *np = realloc(t->p, cap);
        if (!np) return false;
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
    return true;
}

static bool emit(const llmh_generate_params *p, textbuf *t, size_t n) {
    bool go_on = true;
    if (n && p->on_text) go_on = p->on_text(t->p, n, p->user);
    memmove(t->p, t->p + n, t->n - n);
    t->n -= n;
    if (t->p) t->p[t->n] = 0;
    return go_on;
}

llmh_status llmh_generate(llmh_session *s, llmh_sampler_chain *chain, const llmh_token *prompt, size_t n_prompt,
                          const llmh_generate_params *params, llmh_generate_result *res) {
    if (!s || !chain || !params || !res) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_generate: NULL argument");
    memset(res, 0, sizeof *res);
    const llmh_model *m = llmh__session_model(s);
    llmh_status st = LLMH_OK;
    textbuf pending = {0};
    size_t cap_tokens = 64;
    res->tokens = malloc(cap_tokens * sizeof *res->tokens);
    if (!res->tokens) return LLMH_ERR_NO_MEMORY;

    double t0 = llmh__now_seconds();
    if (n_prompt) {
        if ((st = llmh_session_eval(s, prompt, n_prompt))) {
            free(res->tokens);
            res->tokens = NULL;
            return st;
        }
        for (size_t i = 0; i < n_prompt; i++) llmh_sampler_chain_accept(chain, prompt[i]);
    }
    res->n_prompt = (int64_t)n_prompt;
    double t1 = llmh__now_seconds();
    res->prompt_seconds = t1 - t0;
    res->finish = LLMH_FINISH_LENGTH;

    char piece[256];
    for (;;) {
        if (params->max_tokens >= 0 && res->n_generated >= params->max_tokens) {
            res->finish = LLMH_FINISH_LENGTH;
            break;
        }
        llmh_token tok;
        /* the chain's accept() is called by sample() */
        if ((st = llmh_sampler_chain_sample(chain, llmh_session_logits(s), &tok))) break;
        if (!params->ignore_eos && llmh_token_is_eog(m, tok)) {
            res->finish = LLMH_FINISH_EOG;
            break;
        }
        if ((size_t)res->n_generated == cap_tokens) {
            llmh_token *nt = realloc(res->tokens, cap_tokens * 2 * sizeof *nt);
            if (!nt) { st = LLMH_ERR_NO_MEMORY; break; }
            res->tokens = nt;
            cap_tokens *= 2;
        }
        res->tokens[res->n_generated++] = tok;

        size_t got = 0;
        const llmh_tokenizer *tk;
        const llmh_tokenizer_iface *ti = llmh_model_tokenizer(m, &tk);
        st = ti->token_to_piece(tk, tok, 0, piece, sizeof piece, &got);
        if (st == LLMH_ERR_INVALID_ARG && got > sizeof piece) {
            char *big = malloc(got);
            if (!big) { st = LLMH_ERR_NO_MEMORY; break; }
            st = ti->token_to_piece(tk, tok, 0, big, got, &got);
            if (!st && !tb_append(&pending, big, got)) st = LLMH_ERR_NO_MEMORY;
            free(big);
        } else if (!st && !tb_append(&pending, piece, got)) {
            st = LLMH_ERR_NO_MEMORY;
        }
        if (st) break;

        /* stop strings anywhere in the held text */
        size_t stop_at, hold = llmh_text_holdback(pending.p, pending.n, params->stop, params->n_stop, &stop_at);
        if (stop_at != SIZE_MAX) {
            emit(params, &pending, stop_at);
            pending.n = 0;
            res->finish = LLMH_FINISH_STOP;
            break;
        }
        if (!emit(params, &pending, pending.n - hold)) {
            res->finish = LLMH_FINISH_CANCELLED;
            pending.n = 0;
            break;
        }
        if (params->max_tokens >= 0 && res->n_generated >= params->max_tokens) {
            res->finish = LLMH_FINISH_LENGTH;
            break;
        }
        st = llmh_session_eval(s, &tok, 1);
        if (st == LLMH_ERR_CONTEXT_FULL) {
            res->finish = LLMH_FINISH_CONTEXT;
            st = LLMH_OK;
            break;
        }
        if (st) break;
    }
    if (!st && pending.n) emit(params, &pending, pending.n);
    free(pending.p);
    res->gen_seconds = llmh__now_seconds() - t1;
    if (st) {
        free(res->tokens);
        res->tokens = NULL;
    }
    return st;
}

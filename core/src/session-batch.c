/* session-batch.c — llmh_session_eval_batch(): several sessions of one model
 * advanced in one call (the server's scheduler batches decode steps this
 * way).
 *
 * This version validates every item first and then evaluates the items one
 * after another; on a failure the items already evaluated are rolled back
 * (their caches truncated to where they were), so every session is left as
 * it was. */
#include <stdlib.h>

#include "session-internal.h"

llmh_status llmh_session_eval_batch(const llmh_batch_item *items, size_t n_items) {
    if (!items && n_items) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: NULL items");
    if (n_items == 0) return LLMH_OK;
    llmh_model *m = items[0].session ? items[0].session->model : NULL;
    for (size_t i = 0; i < n_items; i++) {
        const llmh_batch_item *it = &items[i];
        if (!it->session || (!it->tokens && it->n_tokens))
            return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: item %zu has a NULL session or tokens", i);
        if (it->session->model != m)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: item %zu belongs to another model", i);
        for (size_t j = 0; j < i; j++)
            if (items[j].session == it->session)
                return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_session_eval_batch: items %zu and %zu name the same session",
                                  j, i);
        if ((int64_t)it->n_tokens > it->session->n_ctx - it->session->pos)
            return llmh__fail(LLMH_ERR_CONTEXT_FULL,
                              "batch item %zu: context full: %zu new tokens do not fit (%lld of %lld cache slots used)", i,
                              it->n_tokens, (long long)it->session->pos, (long long)it->session->n_ctx);
        for (size_t k = 0; k < it->n_tokens; k++)
            if (it->tokens[k] < 0 || it->tokens[k] >= m->hp.n_vocab)
                return llmh__fail(LLMH_ERR_INVALID_ARG, "batch item %zu: token id %d at index %zu is outside the vocabulary",
                                  i, it->tokens[k], k);
    }
    int64_t *start = malloc(n_items * sizeof *start);
    if (!start) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n_items; i++) start[i] = items[i].session->pos;
    llmh_status st = LLMH_OK;
    size_t i = 0;
    for (; i < n_items && !st; i++) st = llmh_session_eval(items[i].session, items[i].tokens, items[i].n_tokens);
    if (st)
        for (size_t j = 0; j < i; j++) items[j].session->pos = start[j];
    free(start);
    return st;
}

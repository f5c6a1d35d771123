/* penalties.c — repetition, frequency and presence penalties over the last
 * penalty_last_n accepted tokens (llama.cpp semantics: a repeated token's
 * positive logit is divided by repeat_penalty and a negative one
 * multiplied; then count * frequency_penalty + presence_penalty is
 * subtracted). */
#include <string.h>

#include "sampler-std.h"

#define MIN_CAP 16

static size_t slot_of(const llmh__smp_penalty_state *ps, llmh_token t) {
    uint32_t h = (uint32_t)t * 0x9E3779B1u;
    h ^= h >> 15;
    return (size_t)h & (ps->cap - 1);
}

/* Index of `t`'s slot, or of the free slot where it would go. */
static size_t find_slot(const llmh__smp_penalty_state *ps, llmh_token t) {
    size_t i = slot_of(ps, t);
    while (ps->slots[i].count != 0 && ps->slots[i].token != t) i = (i + 1) & (ps->cap - 1);
    return i;
}

static llmh_status alloc_table(llmh_sampler *s, size_t cap) {
    llmh__smp_penalty_state *ps = &s->pen;
    if (cap > SIZE_MAX / sizeof(llmh__smp_count_slot)) return LLMH_ERR_NO_MEMORY;
    llmh__smp_count_slot *slots = s->host->alloc(cap * sizeof *slots);
    if (!slots) return LLMH_ERR_NO_MEMORY;
    memset(slots, 0, cap * sizeof *slots);
    llmh__smp_count_slot *old = ps->slots;
    size_t old_cap = ps->cap;
    ps->slots = slots;
    ps->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].count == 0) continue;
        ps->slots[find_slot(ps, old[i].token)] = old[i];
    }
    s->host->free(old);
    return LLMH_OK;
}

llmh_status llmh__smp_penalties_init(llmh_sampler *s) {
    llmh__smp_penalty_state *ps = &s->pen;
    const int64_t last_n = s->prm.penalty_last_n;
    size_t cap = MIN_CAP;
    memset(ps, 0, sizeof *ps);
    if (last_n > 0) {
        /* At most last_n distinct tokens: a table of >= 2 * last_n never fills. */
        while (cap < 2 * (size_t)last_n) cap *= 2;
        ps->ring = s->host->alloc((size_t)last_n * sizeof *ps->ring);
        if (!ps->ring) goto oom;
    }
    if (alloc_table(s, cap) != LLMH_OK) goto oom;
    return LLMH_OK;
oom:
    llmh__smp_penalties_free(s);
    s->host->set_error("sampler 'penalties': cannot allocate the history for penalty_last_n = %lld",
                       (long long)last_n);
    return LLMH_ERR_NO_MEMORY;
}

void llmh__smp_penalties_free(llmh_sampler *s) {
    s->host->free(s->pen.ring);
    s->host->free(s->pen.slots);
    memset(&s->pen, 0, sizeof s->pen);
}

void llmh__smp_penalties_reset(llmh_sampler *s) {
    llmh__smp_penalty_state *ps = &s->pen;
    ps->ring_head = ps->ring_size = 0;
    ps->used = 0;
    if (ps->slots) memset(ps->slots, 0, ps->cap * sizeof *ps->slots);
}

/* Remove one occurrence of `t` (present by construction). Deletion with
 * backward shift keeps every probe sequence unbroken. */
static void count_dec(llmh__smp_penalty_state *ps, llmh_token t) {
    size_t i = find_slot(ps, t);
    if (ps->slots[i].count == 0) return;
    if (--ps->slots[i].count > 0) return;
    ps->used--;
    size_t mask = ps->cap - 1, hole = i, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (ps->slots[j].count == 0) break;
        size_t home = slot_of(ps, ps->slots[j].token);
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        ps->slots[hole] = ps->slots[j];
        ps->slots[j].count = 0;
        hole = j;
    }
}

static void count_inc(llmh_sampler *s, llmh_token t) {
    llmh__smp_penalty_state *ps = &s->pen;
    size_t i = find_slot(ps, t);
    if (ps->slots[i].count != 0) {
        if (ps->slots[i].count < INT32_MAX) ps->slots[i].count++;
        return;
    }
    if (2 * (ps->used + 1) > ps->cap) { /* only in unbounded (-1) mode */
        if (ps->cap > SIZE_MAX / 4 || alloc_table(s, ps->cap * 2) != LLMH_OK) {
            s->host->log(LLMH_LOG_WARN, "sampler-std",
                         "penalties: out of memory growing the token history; "
                         "token %d is not counted", (int)t);
            return;
        }
        i = find_slot(ps, t);
    }
    ps->slots[i].token = t;
    ps->slots[i].count = 1;
    ps->used++;
}

void llmh__smp_penalties_accept(llmh_sampler *s, llmh_token token) {
    llmh__smp_penalty_state *ps = &s->pen;
    const int64_t last_n = s->prm.penalty_last_n;
    if (last_n == 0 || !ps->slots) return;
    if (last_n > 0) {
        size_t cap = (size_t)last_n;
        if (ps->ring_size == cap) { /* full: the oldest leaves the window */
            count_dec(ps, ps->ring[ps->ring_head]);
            ps->ring[ps->ring_head] = token;
            ps->ring_head = (ps->ring_head + 1) % cap;
        } else {
            ps->ring[(ps->ring_head + ps->ring_size) % cap] = token;
            ps->ring_size++;
        }
    }
    count_inc(s, token);
}

static void penalize(llmh_token_data *td, int32_t count, float rep, float freq, float pres) {
    if (td->logit <= 0.0f)
        td->logit *= rep;
    else
        td->logit /= rep;
    td->logit -= (float)count * freq + pres;
}

llmh_status llmh__smp_penalties(llmh_sampler *s, llmh_token_array *c) {
    const llmh__smp_penalty_state *ps = &s->pen;
    const llmh__smp_params *p = &s->prm;
    if (p->penalty_last_n == 0 || ps->used == 0 || c->n == 0 ||
        (p->repeat_penalty == 1.0 && p->frequency_penalty == 0.0 && p->presence_penalty == 0.0))
        return LLMH_OK;
    const float rep = (float)p->repeat_penalty, freq = (float)p->frequency_penalty,
                pres = (float)p->presence_penalty;

    /* Fast path: the array is still the full vocabulary in id order (the
     * usual place of penalties, first in the chain) when every counted token
     * t sits at index t. Then only the counted tokens are touched. */
    int identity = ps->used <= c->n;
    for (size_t i = 0; identity && i < ps->cap; i++) {
        const llmh__smp_count_slot *slot = &ps->slots[i];
        if (slot->count == 0) continue;
        identity = slot->token >= 0 && (size_t)slot->token < c->n &&
                   c->data[slot->token].id == slot->token;
    }
    if (identity) {
        for (size_t i = 0; i < ps->cap; i++)
            if (ps->slots[i].count != 0)
                penalize(&c->data[ps->slots[i].token], ps->slots[i].count, rep, freq, pres);
    } else {
        for (size_t i = 0; i < c->n; i++) {
            const llmh__smp_count_slot *slot = &ps->slots[find_slot(ps, c->data[i].id)];
            if (slot->count != 0) penalize(&c->data[i], slot->count, rep, freq, pres);
        }
    }
    c->sorted = 0;
    c->has_p = 0;
    return LLMH_OK;
}

/* cpu-repack.c — weight_prepare: repack Q8_0/Q4_0/Q5_0/Q4_K/Q6_K matrices into
 * 16-row panels for the VNNI kernels (layout in cpu-internal.h).
 *
 * Only done when the selected kernels have a packed kernel for the type. The
 * packed copy is as large as the original; the original (usually the mapped
 * file) stays in place for GET_ROWS and for rows past the last whole panel,
 * and its pages are not touched by matmuls any more. A graph may pass a view
 * that differs from the prepared tensor (other data pointer or shape): then
 * the packed form is ignored and the plain kernels run.
 *
 * Packing runs on the backend's thread pool. When the weights were wrapped
 * zero-copy (buffer_wrap_host, i.e. usually the mapped model file), the
 * source pages of the packed rows are dropped (MADV_DONTNEED) so the
 * resident size stays about one copy of the model; GET_ROWS faults back in
 * the few embedding rows it reads. Option `repack = false` turns all of this
 * off (plain kernels).
 *
 * When: by default weight_prepare only records the plan, and the first graph
 * that multiplies by a weight packs it (cpu_pack_pending, before that graph
 * is scheduled), so loading stays as fast as mapping the file and the
 * one-time cost lands in the first prompt. `repack_at_load = true` packs
 * everything inside weight_prepare instead.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu-internal.h"

/* Pack panels [p0, p1) (all blocks), 4 bytes at a time. */
static void pack_panels(const cpu_packed *pk, const uint8_t *src, int64_t p0, int64_t p1) {
    int64_t nb = pk->k / 32;
    int q8 = pk->type == LLMH_DTYPE_Q8_0, q5 = pk->type == LLMH_DTYPE_Q5_0;
    size_t bsz = llmh_dtype_type_size(pk->type);
    size_t qs_src = q5 ? 6 : 2, qs_dst = q5 ? 96 : 32;
    int groups = q8 ? 8 : 4;
    uint32_t flip = q8 ? 0x80808080u : 0u; /* Q8_0: w + 128 as u8 */
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = pk->data + ((size_t)p * (size_t)nb + (size_t)b) * pk->block_bytes;
            for (int r = 0; r < CPU_PANEL; r++) {
                const uint8_t *blk = src + (size_t)(p * CPU_PANEL + r) * pk->nb1 + (size_t)b * bsz;
                memcpy(dst + 2 * r, blk, 2);
                for (int g = 0; g < groups; g++) {
                    uint32_t v;
                    memcpy(&v, blk + qs_src + 4 * g, 4);
                    v ^= flip;
                    memcpy(dst + qs_dst + g * 64 + r * 4, &v, 4);
                }
                if (q5) { /* high bits of elements 4g.. (low nibble) and 16+4g.. (high nibble) */
                    uint32_t qh = (uint32_t)blk[2] | ((uint32_t)blk[3] << 8) | ((uint32_t)blk[4] << 16) |
                                  ((uint32_t)blk[5] << 24);
                    for (int g = 0; g < 4; g++)
                        dst[32 + g * 16 + r] = (uint8_t)(((qh >> (4 * g)) & 0xf) | (((qh >> (16 + 4 * g)) & 0xf) << 4));
                }
            }
        }
}

/* Q4_K: unpack the 6-bit scales/mins once, regroup qs as for Q4_0. */
static void pack_panels_q4k(const cpu_packed *pk, const uint8_t *src, int64_t p0, int64_t p1) {
    int64_t nb = pk->k / 256;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = pk->data + ((size_t)p * (size_t)nb + (size_t)b) * pk->block_bytes;
            for (int r = 0; r < CPU_PANEL; r++) {
                const uint8_t *blk = src + (size_t)(p * CPU_PANEL + r) * pk->nb1 + (size_t)b * 144;
                const uint8_t *q = blk + 4;
                memcpy(dst + 2 * r, blk, 2);
                memcpy(dst + 32 + 2 * r, blk + 2, 2);
                for (int j = 0; j < 8; j++) {
                    int sc, mn;
                    if (j < 4) {
                        sc = q[j] & 63;
                        mn = q[j + 4] & 63;
                    } else {
                        sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
                        mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
                    }
                    dst[64 + j * 16 + r] = (uint8_t)sc;
                    dst[192 + j * 16 + r] = (uint8_t)mn;
                }
                for (int pp = 0; pp < 4; pp++)
                    for (int g = 0; g < 8; g++)
                        memcpy(dst + 320 + pp * 512 + g * 64 + r * 4, blk + 16 + pp * 32 + g * 4, 4);
            }
        }
}

/* Q6_K: scales by sub-block, then per half and group the two ql runs and
 * the qh run that together hold elements 4g.., 32+4g.., 64+4g.., 96+4g... */
static void pack_panels_q6k(const cpu_packed *pk, const uint8_t *src, int64_t p0, int64_t p1) {
    int64_t nb = pk->k / 256;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = pk->data + ((size_t)p * (size_t)nb + (size_t)b) * pk->block_bytes;
            for (int r = 0; r < CPU_PANEL; r++) {
                const uint8_t *blk = src + (size_t)(p * CPU_PANEL + r) * pk->nb1 + (size_t)b * 210;
                memcpy(dst + 2 * r, blk + 208, 2);
                for (int j = 0; j < 16; j++) dst[32 + j * 16 + r] = blk[192 + j];
                for (int h = 0; h < 2; h++)
                    for (int g = 0; g < 8; g++) {
                        uint8_t *o = dst + 288 + (size_t)(h * 8 + g) * 192 + (size_t)r * 4;
                        memcpy(o, blk + 64 * h + 4 * g, 4);
                        memcpy(o + 64, blk + 64 * h + 32 + 4 * g, 4);
                        memcpy(o + 128, blk + 128 + 32 * h + 4 * g, 4);
                    }
            }
        }
}

typedef struct pack_job {
    const cpu_packed *pk;
    const uint8_t *src;
    atomic_llong next;
} pack_job;

/* Pool task: panels are claimed 16 at a time. */
static void pack_task(void *arg, int ith, int nth) {
    pack_job *job = arg;
    (void)ith;
    (void)nth;
    for (;;) {
        int64_t p0 = atomic_fetch_add(&job->next, 16);
        if (p0 >= job->pk->n_panels) break;
        int64_t p1 = p0 + 16 < job->pk->n_panels ? p0 + 16 : job->pk->n_panels;
        if (job->pk->type == LLMH_DTYPE_Q4_K)
            pack_panels_q4k(job->pk, job->src, p0, p1);
        else if (job->pk->type == LLMH_DTYPE_Q6_K)
            pack_panels_q6k(job->pk, job->src, p0, p1);
        else
            pack_panels(job->pk, job->src, p0, p1);
    }
}

/* The source pages are no longer read by matmuls: drop them from this
 * process (only whole pages inside the tensor). The source is a read-only
 * mapping of the model file, so MADV_DONTNEED just unmaps the pages at once
 * (RSS falls immediately; a later read faults them back from the page
 * cache with the file's contents). MADV_PAGEOUT was asynchronous and left a
 * ~100 MB transient peak while a whole model was packed in one go. */
static void advise_source_cold(const void *src, size_t bytes) {
#if defined(__linux__) && defined(MADV_DONTNEED)
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = ((uintptr_t)src + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)src + bytes) & ~((uintptr_t)pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
#else
    (void)src;
    (void)bytes;
#endif
}

/* Allocate and fill the panels of a recorded plan. */
static llmh_status materialize(llmh_backend *be, cpu_packed *pk) {
    size_t bytes = (size_t)pk->n_panels * (size_t)(pk->k / pk->block_elems) * pk->block_bytes;
    size_t align = bytes >= ((size_t)4 << 20) ? ((size_t)2 << 20) : 64;
    pk->data = be->host->alloc_aligned(bytes, align);
    if (!pk->data) return LLMH_ERR_NO_MEMORY;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align > 64) madvise(pk->data, bytes & ~(align - 1), MADV_HUGEPAGE); /* fewer faults and TLB misses */
#endif
    pack_job job = {pk, (const uint8_t *)pk->src, 0};
    atomic_init(&job.next, 0);
    cpu_pool_run(be->pool, pack_task, &job);
    if (pk->advise) advise_source_cold(pk->src, pk->nb1 * (size_t)(pk->n_panels * CPU_PANEL));
    pk->pending = 0;
    return LLMH_OK;
}

/* A LoRA B (ne [r, out], r <= 64, out >= 16 r and >= 256, F32/F16/BF16):
 * keep its transpose (made by the first graph that uses it), so LORA's B side runs as r broadcast multiply-adds
 * over vectors of output rows instead of a short dot product (and a
 * horizontal sum) per row. Costs one more copy of B; narrower outputs keep
 * the row kernel (little to gain there, and the tiny reference models keep
 * the summation order their chaotic tim+big check was measured with). */
static int transposable(const llmh_backend *be, const llmh_tensor *w) {
    if ((unsigned)w->type >= LLMH_DTYPE_COUNT || !be->kern.lora_acc_t[w->type]) return 0;
    size_t ts = llmh_dtype_type_size(w->type);
    return w->data && w->ne[2] == 1 && w->ne[3] == 1 && w->ne[0] >= 1 && w->ne[0] <= 64 && w->ne[1] >= 16 * w->ne[0] && w->ne[1] >= 256 &&
           w->nb[0] == ts && w->nb[1] >= ts * (size_t)w->ne[0];
}

/* Record the plan; the first graph that uses B makes the copy
 * (cpu_pack_pending), so loading an adapter stays a conversion pass. */
static llmh_status prepare_transposed(llmh_backend *be, llmh_tensor *w) {
    cpu_packed *pk = be->host->alloc(sizeof *pk);
    if (!pk) {
        be->host->set_error("cpu backend: out of memory preparing tensor '%s'", w->name ? w->name : "(unnamed)");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(pk, 0, sizeof *pk);
    pk->src = w->data;
    pk->type = w->type;
    pk->k = w->ne[0];
    pk->m = w->ne[1];
    pk->nb1 = w->nb[1];
    pk->transposed = 1;
    pk->pending = 1;
    w->extra = pk;
    return LLMH_OK;
}

/* `bytes` (64-byte aligned) from the arena: 32 MiB chunks on 2 MiB huge
 * pages (decode streams every copy once per token: fewer TLB misses). */
static uint8_t *arena_alloc(llmh_backend *be, size_t bytes, cpu_chunk **out) {
    bytes = (bytes + 63) & ~(size_t)63;
    cpu_chunk *c = be->chunks;
    while (c && c->size - c->used < bytes) c = c->next;
    if (!c) {
        size_t huge = (size_t)2 << 20, size = (size_t)32 << 20;
        if (bytes > size) size = (bytes + huge - 1) & ~(huge - 1);
        c = be->host->alloc(sizeof *c);
        uint8_t *base = c ? be->host->alloc_aligned(size, huge) : NULL;
        if (!base) {
            be->host->free(c);
            return NULL;
        }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(base, size, MADV_HUGEPAGE);
#endif
        c->base = base;
        c->size = size;
        c->used = 0;
        c->live = 0;
        c->next = be->chunks;
        be->chunks = c;
    }
    uint8_t *p = c->base + c->used;
    c->used += bytes;
    c->live++;
    *out = c;
    return p;
}

static void arena_release(llmh_backend *be, cpu_chunk *c) {
    if (--c->live > 0) return;
    for (cpu_chunk **pp = &be->chunks; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    be->host->free(c->base);
    be->host->free(c);
}

void cpu_arena_free(llmh_backend *be) {
    while (be->chunks) {
        cpu_chunk *c = be->chunks;
        be->chunks = c->next;
        be->host->free(c->base);
        be->host->free(c);
    }
}

static llmh_status materialize_transposed(llmh_backend *be, cpu_packed *pk) {
    size_t ts = llmh_dtype_type_size(pk->type);
    int64_t k = pk->k, m = pk->m, nb = (m + CPU_LORA_BT - 1) / CPU_LORA_BT;
    size_t bytes = (size_t)(nb * k * CPU_LORA_BT) * ts;
    uint8_t *data = arena_alloc(be, bytes, &pk->chunk);
    if (!data) return LLMH_ERR_NO_MEMORY;
    memset(data + (size_t)((nb - 1) * k * CPU_LORA_BT) * ts, 0, (size_t)(k * CPU_LORA_BT) * ts); /* pad */
    const uint8_t *src = pk->src;
    for (int64_t i = 0; i < m; i++) {
        size_t base = (size_t)((i / CPU_LORA_BT) * k * CPU_LORA_BT + i % CPU_LORA_BT);
        const uint8_t *row = src + (size_t)i * pk->nb1;
        if (ts == 2) {
            uint16_t v[64], *d = (uint16_t *)data;
            memcpy(v, row, (size_t)k * 2);
            for (int64_t j = 0; j < k; j++) d[base + (size_t)(j * CPU_LORA_BT)] = v[j];
        } else {
            float v[64], *d = (float *)data;
            memcpy(v, row, (size_t)k * 4);
            for (int64_t j = 0; j < k; j++) d[base + (size_t)(j * CPU_LORA_BT)] = v[j];
        }
    }
    pk->data = data;
    pk->pending = 0;
    return LLMH_OK;
}

const cpu_packed *cpu_transposed_for(const llmh_backend *be, const llmh_tensor *w) {
    const cpu_packed *pk = w->extra;
    (void)be;
    if (!pk || !pk->transposed || pk->pending || pk->src != w->data || pk->type != w->type || pk->k != w->ne[0] ||
        pk->m != w->ne[1] || pk->nb1 != w->nb[1] || w->ne[2] != 1 || w->ne[3] != 1)
        return NULL;
    return pk;
}

llmh_status cpu_weight_prepare(llmh_backend *be, llmh_tensor *w) {
    if (w && !w->extra && be->repack && transposable(be, w)) return prepare_transposed(be, w);
    /* other adapter tensors: LORA reads A and a Q8_0 B where they lie; a
     * matmul panel copy would only cost memory, and packing at load
     * advises the source pages cold, which drops the adapter's anonymous
     * pages outright */
    if (w && llmh_is_adapter_tensor(w)) return LLMH_OK;
    if (!w || w->extra || !be->repack || (unsigned)w->type >= LLMH_DTYPE_COUNT || !be->kern.mm_packed[w->type])
        return LLMH_OK;
    if (!w->data || w->ne[2] != 1 || w->ne[3] != 1 || w->ne[1] < CPU_PANEL || w->ne[0] <= 0 ||
        w->ne[0] % llmh_dtype_block_size(w->type) != 0 || w->nb[0] != llmh_dtype_type_size(w->type))
        return LLMH_OK;
    size_t row = (size_t)(w->ne[0] / llmh_dtype_block_size(w->type)) * llmh_dtype_type_size(w->type);
    if (w->nb[1] < row) return LLMH_OK;
    cpu_packed *pk = be->host->alloc(sizeof *pk);
    if (!pk) goto oom;
    memset(pk, 0, sizeof *pk);
    pk->src = w->data;
    pk->type = w->type;
    pk->k = w->ne[0];
    pk->m = w->ne[1];
    pk->nb1 = w->nb[1];
    pk->n_panels = w->ne[1] / CPU_PANEL;
    pk->block_elems = llmh_dtype_block_size(w->type);
    switch (w->type) {
    case LLMH_DTYPE_Q8_0: pk->block_bytes = 544; break;
    case LLMH_DTYPE_Q4_0: pk->block_bytes = 288; break;
    case LLMH_DTYPE_Q5_0: pk->block_bytes = 352; break;
    case LLMH_DTYPE_Q4_K: pk->block_bytes = 2368; break;
    case LLMH_DTYPE_Q6_K: pk->block_bytes = 3360; break;
    default: be->host->free(pk); return LLMH_OK; /* a kernel without a packer: keep the plain path */
    }
    pk->advise = w->buffer && !w->buffer->owned;
    pk->pending = 1;
    w->extra = pk;
    if (be->repack_at_load) {
        llmh_status st = materialize(be, pk);
        if (st != LLMH_OK) {
            w->extra = NULL;
            be->host->free(pk);
            be->host->set_error("cpu backend: out of memory repacking tensor '%s'", w->name ? w->name : "(unnamed)");
        }
        return st;
    }
    return LLMH_OK;
oom:
    be->host->set_error("cpu backend: out of memory repacking tensor '%s'", w->name ? w->name : "(unnamed)");
    return LLMH_ERR_NO_MEMORY;
}

/* Largest first: while a weight is packed its source pages and its packed
 * copy are both resident, so the biggest one (often the tied output matrix,
 * the graph's last node) is packed while little else is, and the peak stays
 * at about one model copy. */
llmh_status cpu_pack_pending(llmh_backend *be, const llmh_graph *g) {
    /* LoRA B transposes (small: one pass each) */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const llmh_node *n = &g->nodes[i];
        if (n->op != LLMH_OP_LORA || !n->src[2] || !n->src[2]->extra) continue;
        cpu_packed *pk = n->src[2]->extra;
        if (!pk->transposed || !pk->pending || pk->src != n->src[2]->data) continue;
        if (materialize_transposed(be, pk) != LLMH_OK) {
            be->host->set_error("cpu backend: out of memory transposing tensor '%s'",
                                n->src[2]->name ? n->src[2]->name : "(unnamed)");
            return LLMH_ERR_NO_MEMORY;
        }
    }
    for (;;) {
        const llmh_node *best = NULL;
        size_t best_bytes = 0;
        for (size_t i = 0; i < g->n_nodes; i++) {
            const llmh_node *n = &g->nodes[i];
            if (n->op != LLMH_OP_MUL_MAT || !n->src[0] || !n->src[0]->extra) continue;
            const cpu_packed *pk = n->src[0]->extra;
            if (!pk->pending || pk->transposed || pk->src != n->src[0]->data) continue;
            size_t bytes = pk->nb1 * (size_t)pk->m;
            if (!best || bytes > best_bytes) {
                best = n;
                best_bytes = bytes;
            }
        }
        if (!best) return LLMH_OK;
        if (materialize(be, best->src[0]->extra) != LLMH_OK) {
            const char *name = best->src[0]->name ? best->src[0]->name : "(unnamed)";
            be->host->set_error("cpu backend: out of memory repacking tensor '%s'", name);
            return LLMH_ERR_NO_MEMORY;
        }
    }
}

void cpu_weight_release(llmh_backend *be, llmh_tensor *w) {
    if (!w || !w->extra) return;
    cpu_packed *pk = w->extra;
    if (pk->chunk) arena_release(be, pk->chunk);
    else be->host->free(pk->data);
    be->host->free(pk);
    w->extra = NULL;
}

const cpu_packed *cpu_packed_for(const llmh_backend *be, const llmh_tensor *w) {
    const cpu_packed *pk = w->extra;
    if (!pk || pk->pending || pk->transposed || pk->src != w->data || pk->type != w->type || pk->k != w->ne[0] || pk->m != w->ne[1] ||
        pk->nb1 != w->nb[1] || w->ne[2] != 1 || w->ne[3] != 1 || !be->kern.mm_packed[w->type])
        return NULL;
    return pk;
}

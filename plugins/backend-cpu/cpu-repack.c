/* cpu-repack.c — weight_prepare: repack Q8_0 / Q4_0 matrices into 16-row
 * panels for the VNNI kernels (layout in cpu-internal.h).
 *
 * Only done when the selected kernels have a packed kernel for the type. The
 * packed copy is as large as the original; the original (usually the mapped
 * file) stays in place for GET_ROWS and for rows past the last whole panel,
 * and its pages are not touched by matmuls any more. A graph may pass a view
 * that differs from the prepared tensor (other data pointer or shape): then
 * the packed form is ignored and the plain kernels run.
 */
#include <string.h>

#include "cpu-internal.h"

static void pack_q8_0(const cpu_packed *pk, const uint8_t *src) {
    int64_t nb = pk->k / 32;
    for (int64_t p = 0; p < pk->n_panels; p++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = pk->data + ((size_t)p * (size_t)nb + (size_t)b) * pk->block_bytes;
            for (int r = 0; r < CPU_PANEL; r++) {
                const uint8_t *blk = src + (size_t)(p * CPU_PANEL + r) * pk->nb1 + (size_t)b * 34;
                memcpy(dst + 2 * r, blk, 2);
                for (int g = 0; g < 8; g++)
                    for (int i = 0; i < 4; i++)
                        dst[32 + g * 64 + r * 4 + i] = (uint8_t)(blk[2 + 4 * g + i] ^ 0x80);
            }
        }
}

static void pack_q4_0(const cpu_packed *pk, const uint8_t *src) {
    int64_t nb = pk->k / 32;
    for (int64_t p = 0; p < pk->n_panels; p++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *dst = pk->data + ((size_t)p * (size_t)nb + (size_t)b) * pk->block_bytes;
            for (int r = 0; r < CPU_PANEL; r++) {
                const uint8_t *blk = src + (size_t)(p * CPU_PANEL + r) * pk->nb1 + (size_t)b * 18;
                memcpy(dst + 2 * r, blk, 2);
                for (int g = 0; g < 4; g++) memcpy(dst + 32 + g * 64 + r * 4, blk + 2 + 4 * g, 4);
            }
        }
}

llmh_status cpu_weight_prepare(llmh_backend *be, llmh_tensor *w) {
    if (!w || w->extra || (unsigned)w->type >= LLMH_DTYPE_COUNT || !be->kern.mm_packed[w->type]) return LLMH_OK;
    if (!w->data || w->ne[2] != 1 || w->ne[3] != 1 || w->ne[1] < CPU_PANEL || w->ne[0] <= 0 ||
        w->ne[0] % 32 != 0 || w->nb[0] != llmh_dtype_type_size(w->type))
        return LLMH_OK;
    size_t row = (size_t)(w->ne[0] / 32) * llmh_dtype_type_size(w->type);
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
    pk->block_bytes = w->type == LLMH_DTYPE_Q8_0 ? 544 : 288;
    size_t bytes = (size_t)pk->n_panels * (size_t)(pk->k / 32) * pk->block_bytes;
    pk->data = be->host->alloc_aligned(bytes, 64);
    if (!pk->data) {
        be->host->free(pk);
        goto oom;
    }
    if (w->type == LLMH_DTYPE_Q8_0)
        pack_q8_0(pk, (const uint8_t *)w->data);
    else
        pack_q4_0(pk, (const uint8_t *)w->data);
    w->extra = pk;
    return LLMH_OK;
oom:
    be->host->set_error("cpu backend: out of memory repacking tensor '%s'", w->name ? w->name : "(unnamed)");
    return LLMH_ERR_NO_MEMORY;
}

void cpu_weight_release(llmh_backend *be, llmh_tensor *w) {
    if (!w || !w->extra) return;
    cpu_packed *pk = w->extra;
    be->host->free(pk->data);
    be->host->free(pk);
    w->extra = NULL;
}

const cpu_packed *cpu_packed_for(const llmh_backend *be, const llmh_tensor *w) {
    const cpu_packed *pk = w->extra;
    if (!pk || pk->src != w->data || pk->type != w->type || pk->k != w->ne[0] || pk->m != w->ne[1] ||
        pk->nb1 != w->nb[1] || w->ne[2] != 1 || w->ne[3] != 1 || !be->kern.mm_packed[w->type])
        return NULL;
    return pk;
}

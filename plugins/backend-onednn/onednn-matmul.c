/* onednn-matmul.c — MUL_MAT for F32/F16/BF16 weights through oneDNN matmul,
 * the per-instance primitive cache, and weight_prepare/weight_release.
 *
 * GGML's dst[M, N] = src0[K, M] x src1[K, N] is oneDNN's
 *   dst{N, M} = src{N, K} x wei{K, M}
 * with src1 columns as rows of `src` (leading dim nb1/4), src0 rows as the
 * columns of `wei` (format "ba") and dst columns as rows of `dst`.
 *
 * Weights: weight_prepare asks oneDNN which layout its matmul wants for the
 * weight's shape and data type (format_tag any; the layout does not depend on
 * the token count, checked for 1..512 on AVX-512) and reorders the tensor
 * into it once. Types, per the SDK's normative precision:
 *   F32  -> f32 weights, f32 activations
 *   F16  -> f32 weights (exact), activations rounded to f16 first: each
 *           product of two f16 values is exact in f32, so this is llama.cpp's
 *           f16 x f16 dot with f32 accumulation
 *   BF16 -> bf16 weights, activations rounded to bf16 (RNE), f32 accumulate
 * With option weights = "bf16", F32 and F16 weights are stored as bf16 too
 * (activations rounded to bf16): faster, not the normative precision.
 *
 * Primitives are cached per (types, K, M, N, leading dims, weight layout):
 * creating a primitive descriptor costs far more than running a small one.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "onednn-internal.h"

int od_float_type(llmh_dtype t) {
    return t == LLMH_DTYPE_F32 || t == LLMH_DTYPE_F16 || t == LLMH_DTYPE_BF16;
}

int od_kquant(llmh_dtype t) {
    return t == LLMH_DTYPE_Q2_K || t == LLMH_DTYPE_Q3_K || t == LLMH_DTYPE_Q4_K || t == LLMH_DTYPE_Q5_K ||
           t == LLMH_DTYPE_Q6_K;
}

/* Round a contiguous f32 column to the values of its Q8_K blocks (the SDK's
 * K-quant dot type, as llama.cpp's quantize_row_q8_K): per 256 values,
 * max = the value of largest magnitude, iscale = -127/max,
 * q = min(127, rint(iscale * x)), value = q * (1/iscale). */
static void round_q8k(float *x, int64_t k) {
    for (int64_t b = 0; b + 256 <= k; b += 256) {
        float amax = 0.0f, mx = 0.0f;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[b + j]) > amax) {
                amax = fabsf(x[b + j]);
                mx = x[b + j];
            }
        if (amax == 0.0f) {
            for (int j = 0; j < 256; j++) x[b + j] = 0.0f;
            continue;
        }
        float iscale = -127.0f / mx, d = 1.0f / iscale;
        for (int j = 0; j < 256; j++) {
            int q = (int)nearbyintf(iscale * x[b + j]);
            x[b + j] = (float)(q > 127 ? 127 : q) * d;
        }
    }
}

/* Activation rounding a weight type implies with exact storage. */
static int act_round_for(llmh_dtype t) {
    return t == LLMH_DTYPE_F16 ? LLMH_DTYPE_F16 : od_kquant(t) ? LLMH_DTYPE_Q8_K : 0;
}

/* Token count used to ask oneDNN for its preferred weight layout. */
#define OD_LAYOUT_PROBE_N 64

/* ------------------------------------------------------------------------ */
/* Primitive cache                                                            */
/* ------------------------------------------------------------------------ */
static void prim_free(od_prim *p) {
    if (!p->used) return;
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->msrc) dnnl_memory_destroy(p->msrc);
    if (p->mwei) dnnl_memory_destroy(p->mwei);
    if (p->mdst) dnnl_memory_destroy(p->mdst);
    if (p->mscale) dnnl_memory_destroy(p->mscale);
    memset(p, 0, sizeof *p);
}

void od_cache_clear(llmh_backend *be) {
    for (int i = 0; i < OD_CACHE_SIZE; i++) prim_free(&be->cache[i]);
}

static int key_equal(const od_mm_key *a, const od_mm_key *b) {
    return a->packed == b->packed && a->sdt == b->sdt && a->wdt == b->wdt && a->k == b->k && a->m == b->m &&
           a->n == b->n && a->lds == b->lds && a->ldw == b->ldw && a->ldd == b->ldd && a->nthr == b->nthr;
}

static llmh_status dnnl_err(llmh_backend *be, const char *what, dnnl_status_t s, const od_mm_key *k) {
    be->host->set_error("onednn backend: MUL_MAT: %s failed (dnnl status %d) for K=%lld M=%lld N=%lld", what, (int)s,
                        (long long)k->k, (long long)k->m, (long long)k->n);
    return LLMH_ERR_BACKEND;
}

/* The weights memory descriptor of a plain (row-major rows of K) matrix. */
static void plain_wei_md(dnnl_memory_desc_t *md, int64_t k, int64_t m, int64_t ldw, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {k, m}, strides = {1, ldw};
    dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static dnnl_status_t scale_mem(llmh_backend *be, int64_t m, dnnl_memory_t *out) {
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {m};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_f32, dnnl_a);
    return s == dnnl_success ? dnnl_memory_create(out, &md, be->engine, DNNL_MEMORY_NONE) : s;
}

static llmh_status get_prim(llmh_backend *be, const od_mm_key *key, const dnnl_memory_desc_t *packed_md,
                            od_prim **out) {
    od_prim *victim = NULL;
    for (int i = 0; i < OD_CACHE_SIZE; i++) {
        od_prim *p = &be->cache[i];
        if (!p->used) {
            if (!victim || victim->used) victim = p;
            continue;
        }
        if (key_equal(&p->key, key) && (!key->packed || dnnl_memory_desc_equal(&p->wmd, packed_md))) {
            p->last_use = ++be->tick;
            be->cache_hits++;
            *out = p;
            return LLMH_OK;
        }
        if (!victim || (victim->used && p->last_use < victim->last_use)) victim = p;
    }
    be->cache_misses++;
    prim_free(victim);
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_dims_t sdims = {key->n, key->k}, sstr = {key->lds, 1};
    dnnl_dims_t ddims = {key->n, key->m}, dstr = {key->ldd, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&smd, 2, sdims, key->sdt, sstr)) != dnnl_success)
        return dnnl_err(be, "src descriptor", s, key);
    if ((s = dnnl_memory_desc_init_by_strides(&dmd, 2, ddims, dnnl_f32, dstr)) != dnnl_success)
        return dnnl_err(be, "dst descriptor", s, key);
    if (key->packed) wmd = *packed_md;
    else plain_wei_md(&wmd, key->k, key->m, key->ldw, key->wdt);
    dnnl_matmul_desc_t mmd;
    if ((s = dnnl_matmul_desc_init(&mmd, &smd, &wmd, NULL, &dmd)) != dnnl_success)
        return dnnl_err(be, "dnnl_matmul_desc_init", s, key);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    if (key->wdt == dnnl_s8) { /* per-row weight scales, given at run time */
        const float rt = DNNL_RUNTIME_F32_VAL;
        if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success ||
            (s = dnnl_primitive_attr_set_output_scales(attr, 1, 1 << 1, &rt)) != dnnl_success) {
            if (attr) dnnl_primitive_attr_destroy(attr);
            return dnnl_err(be, "s8 output scales attribute", s, key);
        }
    }
    s = dnnl_primitive_desc_create(&pd, &mmd, attr, be->engine, NULL);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return dnnl_err(be, "matmul primitive descriptor", s, key);
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
        strncmp(impl, "ref", 3) == 0)
        be->host->log(LLMH_LOG_DEBUG, OD_NAME, "matmul K=%lld M=%lld N=%lld runs oneDNN's reference code (%s)",
                      (long long)key->k, (long long)key->m, (long long)key->n, impl);
    od_prim p;
    memset(&p, 0, sizeof p);
    p.used = 1;
    p.key = *key;
    p.wmd = wmd;
    s = dnnl_primitive_create(&p.prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return dnnl_err(be, "dnnl_primitive_create", s, key);
    if (dnnl_memory_create(&p.msrc, &smd, be->engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&p.mwei, &wmd, be->engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&p.mdst, &dmd, be->engine, DNNL_MEMORY_NONE) != dnnl_success ||
        (key->wdt == dnnl_s8 && scale_mem(be, key->m, &p.mscale) != dnnl_success)) {
        prim_free(&p);
        return dnnl_err(be, "dnnl_memory_create", dnnl_out_of_memory, key);
    }
    p.last_use = ++be->tick;
    *victim = p;
    *out = victim;
    return LLMH_OK;
}

static llmh_status run_prim(llmh_backend *be, od_prim *p, const void *src, const void *wei, void *dst,
                            const float *scales) {
    dnnl_status_t s;
    if ((s = dnnl_memory_set_data_handle(p->msrc, (void *)src)) != dnnl_success ||
        (s = dnnl_memory_set_data_handle(p->mwei, (void *)wei)) != dnnl_success ||
        (s = dnnl_memory_set_data_handle(p->mdst, dst)) != dnnl_success)
        return dnnl_err(be, "dnnl_memory_set_data_handle", s, &p->key);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->msrc},
                               {DNNL_ARG_WEIGHTS, p->mwei},
                               {DNNL_ARG_DST, p->mdst},
                               {DNNL_ARG_ATTR_OUTPUT_SCALES, p->mscale}};
    if (p->mscale && (s = dnnl_memory_set_data_handle(p->mscale, (void *)scales)) != dnnl_success)
        return dnnl_err(be, "dnnl_memory_set_data_handle", s, &p->key);
    if ((s = dnnl_primitive_execute(p->prim, be->stream, p->mscale ? 4 : 3, args)) != dnnl_success)
        return dnnl_err(be, "dnnl_primitive_execute", s, &p->key);
    if ((s = dnnl_stream_wait(be->stream)) != dnnl_success) return dnnl_err(be, "dnnl_stream_wait", s, &p->key);
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* weight_prepare                                                             */
/* ------------------------------------------------------------------------ */
static int is_plain_matrix(const llmh_tensor *w) {
    size_t ts = llmh_dtype_type_size(w->type);
    int64_t bs = llmh_dtype_block_size(w->type);
    if (!w->data || ts == 0 || bs == 0 || w->n_dims < 2 || w->ne[1] < 2 || w->ne[2] != 1 || w->ne[3] != 1)
        return 0;
    if (w->ne[0] <= 0 || w->ne[0] % bs || w->ne[1] > ((int64_t)1 << 32) || w->ne[0] > ((int64_t)1 << 32)) return 0;
    if ((double)w->ne[0] * (double)w->ne[1] > (double)((int64_t)1 << 40)) return 0; /* no repack beyond 2^40 weights */
    return w->nb[0] == ts && w->nb[1] == ts * (size_t)(w->ne[0] / bs);
}

/* Reorder `src` (plain "ba" of type sdt) into `dst` (md), both K x M. */
static llmh_status reorder_into(llmh_backend *be, const void *src, dnnl_data_type_t sdt, int64_t k, int64_t m,
                                const dnnl_memory_desc_t *dmd, void *dst, const char *name) {
    dnnl_memory_desc_t smd;
    plain_wei_md(&smd, k, m, k, sdt);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&rpd, &smd, be->engine, dmd, be->engine, NULL);
    if (s == dnnl_success) s = dnnl_primitive_create(&r, rpd);
    if (s == dnnl_success) s = dnnl_memory_create(&ms, &smd, be->engine, (void *)src);
    if (s == dnnl_success) s = dnnl_memory_create(&md, dmd, be->engine, dst);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
        s = dnnl_primitive_execute(r, be->stream, 2, args);
        if (s == dnnl_success) s = dnnl_stream_wait(be->stream);
    }
    if (md) dnnl_memory_destroy(md);
    if (ms) dnnl_memory_destroy(ms);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (s != dnnl_success) {
        be->host->set_error("onednn backend: weight '%s': reorder into oneDNN's layout failed (dnnl status %d)",
                            name, (int)s);
        return LLMH_ERR_BACKEND;
    }
    return LLMH_OK;
}

static llmh_status pack_float(llmh_backend *be, llmh_tensor *w, od_weight *pw) {
    const char *name = w->name ? w->name : "(unnamed)";
    int64_t k = w->ne[0], m = w->ne[1];
    int to_bf16 = w->type == LLMH_DTYPE_BF16 || (be->wprec == OD_WPREC_BF16 && od_float_type(w->type));
    pw->dt = to_bf16 ? dnnl_bf16 : dnnl_f32;
    pw->act_round = to_bf16 ? 0 : act_round_for(w->type);
    /* the layout oneDNN's matmul wants for these weights */
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_dims_t sdims = {OD_LAYOUT_PROBE_N, k}, wdims = {k, m}, ddims = {OD_LAYOUT_PROBE_N, m};
    dnnl_memory_desc_init_by_tag(&smd, 2, sdims, pw->dt, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&wmd, 2, wdims, pw->dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dmd, 2, ddims, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t mmd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_matmul_desc_init(&mmd, &smd, &wmd, NULL, &dmd);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &mmd, NULL, be->engine, NULL);
    if (s != dnnl_success) {
        be->host->set_error("onednn backend: weight '%s' [%lld, %lld]: no oneDNN matmul for %s (dnnl status %d)",
                            name, (long long)k, (long long)m, to_bf16 ? "bf16" : "f32", (int)s);
        return LLMH_ERR_BACKEND;
    }
    pw->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    size_t bytes = dnnl_memory_desc_get_size(&pw->md);
    pw->packed = be->host->alloc_aligned(bytes ? bytes : 64, 64);
    if (!pw->packed) {
        be->host->set_error("onednn backend: weight '%s': cannot allocate %zu bytes for its oneDNN layout", name, bytes);
        return LLMH_ERR_NO_MEMORY;
    }
    llmh_status rc;
    if (w->type != LLMH_DTYPE_F32 && w->type != LLMH_DTYPE_BF16) {
        /* F16 (exact) and K-quants (the reference dequantizer) -> plain f32,
         * then reorder (oneDNN 2.6 has no portable f16 reorder) */
        size_t n = (size_t)k * (size_t)m;
        float *tmp = be->host->alloc_aligned(n * sizeof(float), 64);
        if (!tmp) {
            be->host->set_error("onednn backend: weight '%s': cannot allocate %zu bytes to convert %s", name,
                                n * sizeof(float), llmh_dtype_name(w->type));
            return LLMH_ERR_NO_MEMORY;
        }
        int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
        for (int64_t r = 0; r < m; r++)
            bad |= be->host->dequantize(w->type, (const uint8_t *)w->data + (size_t)r * w->nb[1], tmp + (size_t)r * (size_t)k,
                                        k) != LLMH_OK;
        rc = bad ? LLMH_ERR_UNSUPPORTED : reorder_into(be, tmp, dnnl_f32, k, m, &pw->md, pw->packed, name);
        if (bad) be->host->set_error("onednn backend: weight '%s': cannot dequantize %s", name, llmh_dtype_name(w->type));
        be->host->free(tmp);
    } else {
        rc = reorder_into(be, w->data, w->type == LLMH_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32, k, m, &pw->md,
                          pw->packed, name);
    }
    return rc;
}

/* weights = "s8": one symmetric scale per output row (amax/127), levels
 * rint(w * 127/amax); oneDNN's int8 matmul applies the row scales as
 * runtime output scales, and od_mul_mat_s8 the per-token activation scale. */
static llmh_status pack_s8(llmh_backend *be, llmh_tensor *w, od_weight *pw) {
    const char *name = w->name ? w->name : "(unnamed)";
    int64_t k = w->ne[0], m = w->ne[1];
    pw->dt = dnnl_s8;
    pw->act_round = 0;
    pw->wscale = be->host->alloc_aligned((size_t)m * sizeof(float) + 64, 64);
    int8_t *plain = be->host->alloc_aligned((size_t)k * (size_t)m + 64, 64);
    int nth = be->n_threads;
    float *tmp = be->host->alloc_aligned((size_t)k * sizeof(float) * (size_t)nth + 64, 64);
    llmh_status rc = LLMH_OK;
    if (!pw->wscale || !plain || !tmp) {
        be->host->set_error("onednn backend: weight '%s': out of memory quantizing to s8", name);
        rc = LLMH_ERR_NO_MEMORY;
        goto out;
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; r++) {
        float *x = tmp + (size_t)omp_get_thread_num() * (size_t)k;
        if (be->host->dequantize(w->type, (const uint8_t *)w->data + (size_t)r * w->nb[1], x, k) != LLMH_OK)
            memset(x, 0, (size_t)k * sizeof(float));
        float amax = 0.0f;
        for (int64_t i = 0; i < k; i++) amax = fmaxf(amax, fabsf(x[i]));
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t i = 0; i < k; i++) {
            float q = nearbyintf(x[i] * inv);
            plain[(size_t)r * (size_t)k + (size_t)i] = (int8_t)(q > 127.0f ? 127 : q < -127.0f ? -127 : (int)q);
        }
        pw->wscale[r] = amax / 127.0f;
    }
    {
        dnnl_memory_desc_t smd, wmd, dmd;
        dnnl_dims_t sdims = {OD_LAYOUT_PROBE_N, k}, wdims = {k, m}, ddims = {OD_LAYOUT_PROBE_N, m};
        dnnl_memory_desc_init_by_tag(&smd, 2, sdims, dnnl_s8, dnnl_ab);
        dnnl_memory_desc_init_by_tag(&wmd, 2, wdims, dnnl_s8, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&dmd, 2, ddims, dnnl_f32, dnnl_ab);
        dnnl_matmul_desc_t mmd;
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        const float rt = DNNL_RUNTIME_F32_VAL;
        dnnl_status_t s = dnnl_matmul_desc_init(&mmd, &smd, &wmd, NULL, &dmd);
        if (s == dnnl_success) s = dnnl_primitive_attr_create(&attr);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_output_scales(attr, 1, 1 << 1, &rt);
        if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &mmd, attr, be->engine, NULL);
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (s != dnnl_success) {
            be->host->set_error("onednn backend: weight '%s': no oneDNN s8 matmul (dnnl status %d)", name, (int)s);
            rc = LLMH_ERR_BACKEND;
            goto out;
        }
        pw->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_primitive_desc_destroy(pd);
    }
    size_t bytes = dnnl_memory_desc_get_size(&pw->md);
    pw->packed = be->host->alloc_aligned(bytes ? bytes : 64, 64);
    if (!pw->packed) {
        be->host->set_error("onednn backend: weight '%s': cannot allocate %zu bytes for its s8 layout", name, bytes);
        rc = LLMH_ERR_NO_MEMORY;
        goto out;
    }
    rc = reorder_into(be, plain, dnnl_s8, k, m, &pw->md, pw->packed, name);
out:
    be->host->free(tmp);
    be->host->free(plain);
    return rc;
}

llmh_status od_weight_prepare(llmh_backend *be, llmh_tensor *w) {
    if (!be || !w) return LLMH_ERR_INVALID_ARG;
    if (w->extra || !is_plain_matrix(w)) return LLMH_OK; /* vectors, odd views: used as stored */
    int fl = od_float_type(w->type) || od_kquant(w->type), q = od_quant_supported(w->type);
    if (!fl && !q) return LLMH_OK; /* not a MUL_MAT type here (e.g. K-quant embeddings for GET_ROWS) */
    /* LoRA adapters: A is read as stored, B transposed (see onednn-lora.c);
     * a Q8_0 adapter's A [K, R] and transposed B [M, R] are both read as
     * stored (llmh_is_adapter_tensor, SDK 1.2) */
    int lora = od_float_type(w->type) ? od_lora_shape(w) : 0;
    if (lora == 1 || (w->type == LLMH_DTYPE_Q8_0 && (llmh_is_adapter_tensor(w) || od_lora_shape(w) == 1)))
        return LLMH_OK;
    od_weight *pw = be->host->alloc(sizeof *pw);
    if (!pw) {
        be->host->set_error("onednn backend: out of memory preparing '%s'", w->name ? w->name : "(unnamed)");
        return LLMH_ERR_NO_MEMORY;
    }
    memset(pw, 0, sizeof *pw);
    pw->src = w->data;
    pw->type = w->type;
    pw->k = w->ne[0];
    pw->m = w->ne[1];
    omp_set_num_threads(be->n_threads);
    llmh_status rc;
    if (lora == 2) {
        pw->kind = OD_PACK_T;
        rc = od_lora_transpose(be, w, pw);
    } else if (fl) {
        pw->kind = OD_PACK_DNNL;
        rc = be->wprec == OD_WPREC_S8 && od_float_type(w->type) ? pack_s8(be, w, pw) : pack_float(be, w, pw);
    } else {
        pw->kind = OD_PACK_Q;
        rc = od_quant_pack(be, w, pw);
    }
    if (rc != LLMH_OK) {
        be->host->free(pw->packed);
        be->host->free(pw->q);
        be->host->free(pw->wscale);
        be->host->free(pw);
        return rc;
    }
    w->extra = pw;
    return LLMH_OK;
}

void od_weight_release(llmh_backend *be, llmh_tensor *w) {
    if (!be || !w || !w->extra) return;
    od_weight *pw = w->extra;
    be->host->free(pw->packed);
    be->host->free(pw->q);
    be->host->free(pw->wscale);
    be->host->free(pw);
    w->extra = NULL;
}

/* ------------------------------------------------------------------------ */
/* MUL_MAT                                                                    */
/* ------------------------------------------------------------------------ */
/* The prepared form of src0 when it is this exact 2-D weight, else NULL. */
static const od_weight *prepared(const llmh_tensor *a) {
    const od_weight *pw = a->extra;
    if (!pw || pw->src != a->data || pw->type != a->type || pw->k != a->ne[0] || pw->m != a->ne[1] ||
        a->ne[2] != 1 || a->ne[3] != 1 ||
        a->nb[1] != llmh_dtype_type_size(a->type) * (size_t)(a->ne[0] / llmh_dtype_block_size(a->type)))
        return NULL;
    return pw;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Run the primitive over every batch slice (src0 broadcast as ggml). */
static llmh_status mm_slices(llmh_backend *be, const llmh_node *n, const od_weight *pw, od_prim *p, int par,
                             int direct_src, int direct_wei, int direct_dst, void *s_buf, void *w_buf, float *d_buf) {
    const llmh_tensor *a = n->src[0], *b = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    dnnl_data_type_t wdt = p->key.wdt;
    int act_round = pw ? pw->act_round : act_round_for(a->type);
    llmh_status rc;
    int64_t r2 = b->ne[2] / a->ne[2], r3 = b->ne[3] / a->ne[3];
    for (int64_t i3 = 0; i3 < b->ne[3]; i3++) {
        for (int64_t i2 = 0; i2 < b->ne[2]; i2++) {
            const uint8_t *bs = (const uint8_t *)b->data + (size_t)i2 * b->nb[2] + (size_t)i3 * b->nb[3];
            const uint8_t *as = (const uint8_t *)a->data + (size_t)(i2 / r2) * a->nb[2] + (size_t)(i3 / r3) * a->nb[3];
            uint8_t *ds = (uint8_t *)d->data + (size_t)i2 * d->nb[2] + (size_t)i3 * d->nb[3];
            const void *src = bs, *wei = pw ? pw->packed : (const void *)as;
            if (!direct_src) {
#pragma omp parallel for schedule(static) if(par && N > 1) /* one column: no fork */
                for (int64_t c = 0; c < N; c++) {
                    const uint8_t *col = bs + (size_t)c * b->nb[1];
                    for (int64_t i = 0; i < K; i++) {
                        float x;
                        memcpy(&x, col + (size_t)i * b->nb[0], 4);
                        if (wdt == dnnl_bf16) {
                            ((uint16_t *)s_buf)[c * K + i] = llmh_fp32_to_bf16(x);
                        } else {
                            if (act_round == LLMH_DTYPE_F16) x = llmh_fp16_to_fp32(llmh_fp32_to_fp16(x));
                            ((float *)s_buf)[c * K + i] = x;
                        }
                    }
                    if (act_round == LLMH_DTYPE_Q8_K) round_q8k((float *)s_buf + c * K, K);
                }
                src = s_buf;
            }
            if (!direct_wei) {
#pragma omp parallel for schedule(static) if(par)
                for (int64_t r = 0; r < M; r++) {
                    const uint8_t *row = as + (size_t)r * a->nb[1];
                    if (od_kquant(a->type)) {
                        if (be->host->dequantize(a->type, row, (float *)w_buf + r * K, K) != LLMH_OK)
                            od_fail(be, LLMH_ERR_UNSUPPORTED, "cannot dequantize %s rows", llmh_dtype_name(a->type));
                        continue;
                    }
                    for (int64_t i = 0; i < K; i++) {
                        if (a->type == LLMH_DTYPE_F16) {
                            uint16_t h;
                            memcpy(&h, row + 2 * (size_t)i, 2);
                            ((float *)w_buf)[r * K + i] = llmh_fp16_to_fp32(h);
                        } else if (a->type == LLMH_DTYPE_BF16) {
                            memcpy((uint16_t *)w_buf + r * K + i, row + 2 * (size_t)i, 2);
                        } else {
                            memcpy((float *)w_buf + r * K + i, row + 4 * (size_t)i, 4);
                        }
                    }
                }
                wei = w_buf;
            }
            if ((rc = run_prim(be, p, src, wei, direct_dst ? (void *)ds : (void *)d_buf, NULL)) != LLMH_OK) return rc;
            if (!direct_dst) {
#pragma omp parallel for schedule(static) if(par && N > 1) /* one column: no fork */
                for (int64_t c = 0; c < N; c++)
                    for (int64_t r = 0; r < M; r++)
                        memcpy(ds + (size_t)c * d->nb[1] + (size_t)r * d->nb[0], &d_buf[c * M + r], 4);
            }
        }
    }
    return LLMH_OK;
}

/* weights = "s8": activations quantized per token (column) to s8 with
 * scale amax/127, oneDNN's int8 matmul with the row scales as output scales,
 * then each output column times its token's scale. */
static llmh_status mul_mat_s8(llmh_backend *be, const llmh_node *n, const od_weight *pw) {
    const llmh_tensor *b = n->src[1];
    llmh_tensor *d = n->dst;
    int64_t K = pw->k, M = pw->m, N = b->ne[1];
    int direct_dst = d->nb[0] == 4 && d->nb[1] % 4 == 0 && d->nb[1] / 4 >= (size_t)M;
    size_t q_bytes = align64((size_t)N * (size_t)K), s_bytes = align64((size_t)N * sizeof(float));
    size_t d_bytes = direct_dst ? 0 : align64((size_t)N * (size_t)M * 4);
    uint8_t *scr = od_scratch(be, q_bytes + s_bytes + d_bytes);
    if (!scr) return LLMH_ERR_NO_MEMORY;
    int8_t *q = (int8_t *)scr;
    float *sa = (float *)(scr + q_bytes), *d_buf = (float *)(scr + q_bytes + s_bytes);
    int par = (double)K * (double)M * (double)N >= (double)OD_MM_PAR_MIN;
    od_mm_key key;
    memset(&key, 0, sizeof key);
    key.nthr = par ? be->n_threads : 1;
    key.packed = 1;
    key.sdt = dnnl_s8;
    key.wdt = dnnl_s8;
    key.k = K;
    key.m = M;
    key.n = N;
    key.lds = K;
    key.ldd = direct_dst ? (int64_t)(d->nb[1] / 4) : M;
    od_prim *p = NULL;
    omp_set_num_threads(key.nthr);
    llmh_status rc = get_prim(be, &key, &pw->md, &p);
    for (int64_t i3 = 0; rc == LLMH_OK && i3 < b->ne[3]; i3++) {
        for (int64_t i2 = 0; rc == LLMH_OK && i2 < b->ne[2]; i2++) {
            const uint8_t *bs = (const uint8_t *)b->data + (size_t)i2 * b->nb[2] + (size_t)i3 * b->nb[3];
            uint8_t *ds = (uint8_t *)d->data + (size_t)i2 * d->nb[2] + (size_t)i3 * d->nb[3];
#pragma omp parallel for schedule(static) if(par && N > 1) /* one column: no fork */
            for (int64_t c = 0; c < N; c++) {
                const uint8_t *col = bs + (size_t)c * b->nb[1];
                float amax = 0.0f;
                for (int64_t i = 0; i < K; i++) {
                    float x;
                    memcpy(&x, col + (size_t)i * b->nb[0], 4);
                    amax = fmaxf(amax, fabsf(x));
                }
                float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                for (int64_t i = 0; i < K; i++) {
                    float x;
                    memcpy(&x, col + (size_t)i * b->nb[0], 4);
                    q[c * K + i] = (int8_t)(int)nearbyintf(x * inv);
                }
                sa[c] = amax / 127.0f;
            }
            rc = run_prim(be, p, q, pw->packed, direct_dst ? (void *)ds : (void *)d_buf, pw->wscale);
            if (rc != LLMH_OK) break;
#pragma omp parallel for schedule(static) if(par && N > 1) /* one column: no fork */
            for (int64_t c = 0; c < N; c++) {
                uint8_t *dc = ds + (size_t)c * d->nb[1];
                for (int64_t r = 0; r < M; r++) {
                    float v = direct_dst ? ((float *)dc)[r] : d_buf[c * M + r];
                    v *= sa[c];
                    memcpy(dc + (size_t)r * d->nb[0], &v, 4);
                }
            }
        }
    }
    omp_set_num_threads(be->n_threads);
    return rc;
}

llmh_status od_mul_mat(llmh_backend *be, const llmh_node *n) {
    const llmh_tensor *a = n->src[0], *b = n->src[1];
    llmh_tensor *d = n->dst;
    const od_weight *pw = prepared(a);
    if (!od_float_type(a->type) && !od_kquant(a->type))
        return od_quant_mul_mat(be, n, pw && pw->kind == OD_PACK_Q ? pw : NULL);
    if (pw && pw->kind != OD_PACK_DNNL) pw = NULL;
    if (pw && pw->dt == dnnl_s8) return mul_mat_s8(be, n, pw);

    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    dnnl_data_type_t wdt;
    int act_round;
    if (pw) {
        wdt = pw->dt;
        act_round = pw->act_round;
    } else {
        wdt = a->type == LLMH_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
        act_round = act_round_for(a->type);
    }
    size_t sel = wdt == dnnl_bf16 ? 2 : 4;
    /* activations go through scratch unless usable in place */
    int direct_src = wdt == dnnl_f32 && !act_round && b->nb[0] == 4 && b->nb[1] % 4 == 0 &&
                     b->nb[1] / 4 >= (size_t)K;
    int direct_dst = d->nb[0] == 4 && d->nb[1] % 4 == 0 && d->nb[1] / 4 >= (size_t)M;
    /* plain f32 weights with a usable row stride are read in place; f16 (and
     * odd strides) are converted per batch slice */
    int direct_wei = pw || (od_float_type(a->type) && a->type != LLMH_DTYPE_F16 && a->nb[1] % sel == 0 &&
                            a->nb[1] / sel >= (size_t)K);
    size_t s_bytes = direct_src ? 0 : align64((size_t)N * (size_t)K * sel);
    size_t w_bytes = direct_wei ? 0 : align64((size_t)M * (size_t)K * sel);
    size_t d_bytes = direct_dst ? 0 : align64((size_t)N * (size_t)M * 4);
    uint8_t *scr = NULL;
    if (s_bytes + w_bytes + d_bytes) {
        scr = od_scratch(be, s_bytes + w_bytes + d_bytes);
        if (!scr) return LLMH_ERR_NO_MEMORY;
    }
    void *s_buf = scr, *w_buf = scr + s_bytes;
    float *d_buf = (float *)(scr + s_bytes + w_bytes);

    int serial = (double)K * (double)M * (double)N * (double)(b->ne[2] * b->ne[3]) < (double)OD_MM_PAR_MIN;
    int par = !serial;
    od_mm_key key;
    memset(&key, 0, sizeof key);
    key.nthr = serial ? 1 : be->n_threads;
    key.packed = pw != NULL;
    key.sdt = wdt;
    key.wdt = wdt;
    key.k = K;
    key.m = M;
    key.n = N;
    key.lds = direct_src ? (int64_t)(b->nb[1] / 4) : K;
    key.ldw = pw ? 0 : direct_wei ? (int64_t)(a->nb[1] / sel) : K;
    key.ldd = direct_dst ? (int64_t)(d->nb[1] / 4) : M;
    od_prim *p = NULL;
    omp_set_num_threads(key.nthr); /* oneDNN sizes its work split at creation */
    llmh_status rc = get_prim(be, &key, pw ? &pw->md : NULL, &p);
    if (rc == LLMH_OK) rc = mm_slices(be, n, pw, p, par, direct_src, direct_wei, direct_dst, s_buf, w_buf, d_buf);
    omp_set_num_threads(be->n_threads);
    return rc;
}


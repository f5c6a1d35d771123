/* adapter.c — the memory fabric's adapter store: LoRA adapters loaded from
 * GGUF-LoRA files or PEFT directories, validated against the base model,
 * converted to F32 and placed in the model's backend; reference-counted so a
 * session keeps the adapters it selected while others load, unload and
 * rescale; selection goes through the router plugin. docs/memory-fabric.md.
 *
 * GGUF-LoRA (llama.cpp's converter): tensors "<base>.lora_a" ne [in, r] and
 * "<base>.lora_b" ne [r, out] where <base> is a model tensor name
 * ("blk.3.attn_q.weight"); key adapter.lora.alpha.
 * PEFT: adapter_config.json (r, lora_alpha, target_modules) and
 * adapter_model.safetensors with "base_model.model.model.layers.N.<module>.
 * lora_A.weight" [r, in] and "...lora_B.weight" [out, r] (the safetensors
 * format plugin reverses shapes into ne order). For llama models the rows of
 * q/k lora_B are permuted from HF's rotate-half order into GGUF's interleaved
 * order, as the safetensors plugin does for the q/k weights. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "model-internal.h"

static const struct {
    const char *gguf; /* model tensor suffix after "blk.N." */
    const char *hf;   /* PEFT module path after "layers.N." */
    const char *module; /* PEFT target_modules entry */
} lora_targets[LLMH__LORA_N] = {
    {"attn_q.weight", "self_attn.q_proj", "q_proj"},   {"attn_k.weight", "self_attn.k_proj", "k_proj"},
    {"attn_v.weight", "self_attn.v_proj", "v_proj"},   {"attn_output.weight", "self_attn.o_proj", "o_proj"},
    {"ffn_gate.weight", "mlp.gate_proj", "gate_proj"}, {"ffn_up.weight", "mlp.up_proj", "up_proj"},
    {"ffn_down.weight", "mlp.down_proj", "down_proj"},
};

static const llmh_tensor *base_weight(const llmh_model *m, int64_t layer, int target) {
    const llmh__layer *L = &m->layers[layer];
    switch (target) {
    case LLMH__LORA_Q: return L->wq;
    case LLMH__LORA_K: return L->wk;
    case LLMH__LORA_V: return L->wv;
    case LLMH__LORA_O: return L->wo;
    case LLMH__LORA_GATE: return L->w_gate;
    case LLMH__LORA_UP: return L->w_up;
    default: return L->w_down;
    }
}

/* ------------------------------------------------------------------------ */
/* free / release                                                             */
/* ------------------------------------------------------------------------ */
static void adapter_destroy(llmh__adapter *a) {
    if (!a) return;
    llmh_model *m = a->model;
    if (a->buf) {
        /* no graph may run while backend memory goes away */
        pthread_mutex_lock(&m->compute_lock);
        size_t n = (size_t)m->hp.n_layer * LLMH__LORA_N;
        if (m->be_if->weight_release)
            for (size_t i = 0; i < n; i++)
                if (a->a[i].ne[0]) {
                    m->be_if->weight_release(m->be, &a->a[i]);
                    m->be_if->weight_release(m->be, &a->b[i]);
                }
        m->be_if->buffer_free(m->be, a->buf);
        pthread_mutex_unlock(&m->compute_lock);
    }
    if (a->host_mem) munmap(a->host_mem, a->host_len); /* after the buffer that wrapped it */
    free(a->gate_w);
    free(a->gate_b);
    free(a->a);
    free(a->b);
    free(a->name);
    free(a->path);
    free(a->ns);
    free(a);
}

void llmh__adapter_release(llmh__adapter *a) {
    if (!a) return;
    llmh_model *m = a->model;
    pthread_mutex_lock(&m->adapter_lock);
    int left = --a->refs;
    a->users--;
    pthread_mutex_unlock(&m->adapter_lock);
    if (left == 0) adapter_destroy(a);
}

float llmh__adapter_pair_scale(const llmh__adapter *a, size_t idx, float mult) {
    int64_t r = a->a[idx].ne[1];
    /* llama.cpp's order: (scale * alpha) / rank, in f32 */
    return a->alpha != 0.0f && r > 0 ? mult * a->alpha / (float)r : mult;
}

/* ------------------------------------------------------------------------ */
/* loading                                                                    */
/* ------------------------------------------------------------------------ */
typedef struct lora_src {
    const llmh_tensor_info *a, *b;
} lora_src;

typedef struct load_ctx {
    llmh_model *m;
    const char *path;       /* the adapter as given (file or directory) */
    const char *file;       /* the tensor file */
    bool peft;
    lora_src *src;          /* [n_layer * LLMH__LORA_N] */
    float alpha;
    int64_t peft_rank;
    bool peft_targets[LLMH__LORA_N];
    const llmh_tensor_info *gate_w, *gate_b; /* GGUF adapter.gate.weight / .bias */
} load_ctx;

static void shape_str(char *buf, size_t n, const int64_t *ne, int nd) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* "blk.N.<suffix>" -> layer, target; false when not a known projection. */
static bool parse_gguf_base(const llmh_model *m, const char *base, size_t len, int64_t *layer, int *target) {
    if (len < 5 || memcmp(base, "blk.", 4) != 0) return false;
    size_t i = 4;
    int64_t n = 0;
    size_t digits = 0;
    while (i < len && base[i] >= '0' && base[i] <= '9' && digits < 7) n = n * 10 + (base[i++] - '0'), digits++;
    if (!digits || i >= len || base[i] != '.') return false;
    i++;
    for (int t = 0; t < LLMH__LORA_N; t++) {
        size_t sl = strlen(lora_targets[t].gguf);
        if (len - i == sl && !memcmp(base + i, lora_targets[t].gguf, sl)) {
            if (n >= m->hp.n_layer) return false;
            *layer = n;
            *target = t;
            return true;
        }
    }
    return false;
}

/* "base_model.model.model.layers.N.<module>.lora_{A,B}.weight" */
static bool parse_peft_name(const llmh_model *m, const char *name, int64_t *layer, int *target, bool *is_b) {
    static const char pre[] = "base_model.model.model.layers.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return false;
    const char *p = name + sizeof pre - 1;
    int64_t n = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 7) n = n * 10 + (*p++ - '0'), digits++;
    if (!digits || *p != '.') return false;
    p++;
    for (int t = 0; t < LLMH__LORA_N; t++) {
        size_t hl = strlen(lora_targets[t].hf);
        if (strncmp(p, lora_targets[t].hf, hl) != 0) continue;
        const char *rest = p + hl;
        if (!strcmp(rest, ".lora_A.weight")) *is_b = false;
        else if (!strcmp(rest, ".lora_B.weight")) *is_b = true;
        else continue;
        if (n >= m->hp.n_layer) return false;
        *layer = n;
        *target = t;
        return true;
    }
    return false;
}

static llmh_status read_peft_config(load_ctx *c) {
    char cfg_path[4096];
    if ((size_t)snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", c->path) >= sizeof cfg_path)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "adapter %s: path too long", c->path);
    FILE *fp = fopen(cfg_path, "rb");
    if (!fp) return llmh__fail(LLMH_ERR_IO, "adapter %s: cannot open adapter_config.json: %s", c->path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            if (cap > ((size_t)16 << 20)) {
                fclose(fp);
                free(text);
                return llmh__fail(LLMH_ERR_FORMAT, "%s: larger than 16 MiB", cfg_path);
            }
            char *nt = realloc(text, cap + 65536);
            if (!nt) {
                fclose(fp);
                free(text);
                return llmh__fail(LLMH_ERR_NO_MEMORY, "%s: out of memory", cfg_path);
            }
            text = nt;
            cap += 65536;
        }
        size_t got = fread(text + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
    }
    fclose(fp);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) return llmh__fail(LLMH_ERR_FORMAT, "%s: not valid JSON", cfg_path);
    llmh_status st = LLMH_OK;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    const cJSON *fifo = cJSON_GetObjectItemCaseSensitive(j, "fan_in_fan_out");
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA") != 0)) {
        st = llmh__fail(LLMH_ERR_UNSUPPORTED, "%s: peft_type must be \"LORA\"", cfg_path);
    } else if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 65536 ||
               r->valuedouble != floor(r->valuedouble)) {
        st = llmh__fail(LLMH_ERR_FORMAT, "%s: key 'r' must be an integer in 1..65536", cfg_path);
    } else if (al && (!cJSON_IsNumber(al) || !isfinite(al->valuedouble))) {
        st = llmh__fail(LLMH_ERR_FORMAT, "%s: key 'lora_alpha' must be a number", cfg_path);
    } else if (cJSON_IsTrue(fifo)) {
        st = llmh__fail(LLMH_ERR_UNSUPPORTED, "%s: fan_in_fan_out = true is not supported", cfg_path);
    } else if (!cJSON_IsArray(tm)) {
        st = llmh__fail(LLMH_ERR_FORMAT, "%s: key 'target_modules' must be an array of module names", cfg_path);
    } else {
        c->peft_rank = (int64_t)r->valuedouble;
        c->alpha = al ? (float)al->valuedouble : (float)c->peft_rank;
        const cJSON *e;
        cJSON_ArrayForEach(e, tm) {
            int t = 0;
            while (t < LLMH__LORA_N && !(cJSON_IsString(e) && !strcmp(e->valuestring, lora_targets[t].module))) t++;
            if (t == LLMH__LORA_N) {
                st = llmh__fail(LLMH_ERR_UNSUPPORTED,
                                "%s: target module '%s' is not supported (q_proj, k_proj, v_proj, o_proj, "
                                "gate_proj, up_proj, down_proj)",
                                cfg_path, cJSON_IsString(e) ? e->valuestring : "(not a string)");
                break;
            }
            c->peft_targets[t] = true;
        }
    }
    cJSON_Delete(j);
    return st;
}

/* Match the file's tensors to (layer, target) pairs. */
static llmh_status collect_pairs(load_ctx *c, const llmh_tensor_info *infos, size_t n_infos) {
    const llmh_model *m = c->m;
    for (size_t i = 0; i < n_infos; i++) {
        const llmh_tensor_info *ti = &infos[i];
        const char *nm = ti->name ? ti->name : "";
        int64_t layer = -1;
        int target = -1;
        bool is_b = false, ok;
        if (c->peft) {
            ok = parse_peft_name(m, nm, &layer, &target, &is_b);
        } else if (!strcmp(nm, "adapter.gate.weight") || !strcmp(nm, "adapter.gate.bias")) {
            const llmh_tensor_info **slot = nm[13] == 'w' ? &c->gate_w : &c->gate_b;
            if (*slot) return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' appears twice", c->file, nm);
            *slot = ti;
            continue;
        } else {
            size_t len = strlen(nm);
            ok = len > 7 && (!strcmp(nm + len - 7, ".lora_a") || !strcmp(nm + len - 7, ".lora_b"));
            if (ok) {
                is_b = nm[len - 1] == 'b';
                ok = parse_gguf_base(m, nm, len - 7, &layer, &target);
            }
        }
        if (!ok)
            return llmh__fail(LLMH_ERR_FORMAT,
                              "adapter %s: tensor '%s' does not adapt a projection of this %s model "
                              "(%lld layers; q, k, v, o, gate, up, down)",
                              c->file, nm, m->arch_name, (long long)m->hp.n_layer);
        lora_src *p = &c->src[(size_t)layer * LLMH__LORA_N + (size_t)target];
        if (is_b ? p->b != NULL : p->a != NULL)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' appears twice", c->file, nm);
        if (is_b) p->b = ti;
        else p->a = ti;
    }
    return LLMH_OK;
}

/* Check one pair against the base weight W ne [in, out]. */
static llmh_status check_pair(load_ctx *c, int64_t layer, int target) {
    const lora_src *p = &c->src[(size_t)layer * LLMH__LORA_N + (size_t)target];
    const llmh_model *m = c->m;
    const llmh_tensor *w = base_weight(m, layer, target);
    char wname[96];
    snprintf(wname, sizeof wname, "blk.%lld.%s", (long long)layer, lora_targets[target].gguf);
    if (!p->a || !p->b)
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' has no matching %s (for base tensor '%s')",
                          c->file, (p->a ? p->a : p->b)->name, p->a ? "lora_b" : "lora_a", wname);
    const llmh_tensor_info *A = p->a, *B = p->b;
    char sa[96], sb[96], sw[64];
    shape_str(sa, sizeof sa, A->ne, A->n_dims > 0 ? A->n_dims : 2);
    shape_str(sb, sizeof sb, B->ne, B->n_dims > 0 ? B->n_dims : 2);
    shape_str(sw, sizeof sw, w->ne, 2);
    for (const llmh_tensor_info *t = A; t; t = t == A ? B : NULL)
        if (t->ne[2] != 1 || t->ne[3] != 1 || t->ne[0] < 1 || t->ne[1] < 1)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' has shape %s; expected a matrix", c->file,
                              t->name, t == A ? sa : sb);
    if (A->ne[0] != w->ne[0])
        return llmh__fail(LLMH_ERR_FORMAT,
                          "adapter %s: tensor '%s' has shape %s but base tensor '%s' is %s: input width %lld != %lld",
                          c->file, A->name, sa, wname, sw, (long long)A->ne[0], (long long)w->ne[0]);
    if (B->ne[1] != w->ne[1])
        return llmh__fail(LLMH_ERR_FORMAT,
                          "adapter %s: tensor '%s' has shape %s but base tensor '%s' is %s: output width %lld != %lld",
                          c->file, B->name, sb, wname, sw, (long long)B->ne[1], (long long)w->ne[1]);
    if (A->ne[1] != B->ne[0])
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: rank of '%s' %s differs from '%s' %s", c->file, A->name, sa,
                          B->name, sb);
    if (A->ne[1] > 65536)
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' has rank %lld; at most 65536 is supported", c->file,
                          A->name, (long long)A->ne[1]);
    if (c->peft && A->ne[1] != c->peft_rank)
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' has rank %lld but adapter_config.json says r = %lld",
                          c->file, A->name, (long long)A->ne[1], (long long)c->peft_rank);
    if (c->peft && !c->peft_targets[target])
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s' adapts '%s', which target_modules does not list",
                          c->file, A->name, lora_targets[target].module);
    for (const llmh_tensor_info *t = A; t; t = t == A ? B : NULL) {
        int64_t bs = llmh_dtype_block_size(t->type);
        size_t ts = llmh_dtype_type_size(t->type);
        if (bs <= 0 || ts == 0 || t->ne[0] % bs != 0 || !t->data)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s': type %s cannot hold rows of %lld elements",
                              c->file, t->name, llmh_dtype_name(t->type), (long long)t->ne[0]);
        uint64_t need = (uint64_t)(t->ne[0] / bs) * ts * (uint64_t)t->ne[1];
        if (t->size < need)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s': %llu bytes of data, %llu needed", c->file,
                              t->name, (unsigned long long)t->size, (unsigned long long)need);
    }
    return LLMH_OK;
}

/* HF rotate-half rows -> interleaved rows (per head), rows of `row_bytes`. */
static void permute_rows(uint8_t *dst, const uint8_t *src, int64_t rows, size_t row_bytes, int64_t n_head) {
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(dst + (size_t)(h * hd + 2 * i + j) * row_bytes, src + (size_t)(h * hd + j * half + i) * row_bytes,
                       row_bytes);
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static void init_mat(llmh_tensor *t, llmh_dtype type, int64_t ne0, int64_t ne1, llmh_buffer *buf, size_t off,
                     char *host) {
    memset(t, 0, sizeof *t);
    t->struct_size = sizeof *t;
    t->type = type;
    t->n_dims = 2;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->nb[0] = llmh_dtype_type_size(type);
    t->nb[1] = t->nb[0] * (size_t)(ne0 / llmh_dtype_block_size(type));
    t->nb[2] = t->nb[3] = t->nb[1] * (size_t)ne1;
    t->buffer = buf;
    t->offset = off;
    t->data = host ? host + off : NULL;
}

/* The storage type for adapters: the manifest's [model] adapter_type;
 * "auto" is F32. F16 storage halves the bytes a decode step reads, but
 * rounding the adapter values moves the reference models' logits by up to
 * 6e-2 (llama.cpp's references use F32 adapters; tests/fabric holds them to
 * 1e-3), so it is opt-in (docs/memory-fabric.md); Q8_0 (SDK 1.2: B stored
 * transposed) halves them again. */
int llmh__adapter_storage_type(const char *name, llmh_dtype *out) {
    static const struct {
        const char *name;
        llmh_dtype type;
    } types[] = {{"auto", LLMH_DTYPE_F32}, {"f32", LLMH_DTYPE_F32},   {"f16", LLMH_DTYPE_F16},
                 {"bf16", LLMH_DTYPE_BF16}, {"q8_0", LLMH_DTYPE_Q8_0}};
    for (size_t i = 0; name && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(name, types[i].name)) {
            *out = types[i].type;
            return 0;
        }
    return -1;
}

/* Bytes of elems values stored as `type` (whole blocks). */
static size_t stored_bytes(llmh_dtype type, int64_t elems) {
    return (size_t)(elems / llmh_dtype_block_size(type)) * llmh_dtype_type_size(type);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* F32 -> F16 with F16C (round to nearest even, as llmh_fp32_to_fp16), 8 at a time. */
__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = llmh_fp32_to_fp16(src[i]);
}
#endif

/* f32 values into `type` (F16 through F16C where the CPU has it). */
static llmh_status from_f32(llmh_dtype type, const float *f, void *dst, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (type == LLMH_DTYPE_F16 && __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c")) {
        f32_to_f16_f16c(f, (uint16_t *)dst, n);
        return LLMH_OK;
    }
#endif
    return llmh_quantize(type, f, dst, n);
}

/* Map the pages of a tensor of the (mmapped) adapter file in one call
 * rather than one page fault per page; advisory, errors ignored. */
static void prefault(const void *p, size_t len) {
#ifdef MADV_POPULATE_READ
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + len + 4095) & ~(uintptr_t)4095;
    (void)madvise((void *)a, e - a, MADV_POPULATE_READ);
#else
    (void)p;
    (void)len;
#endif
}

/* Convert one tensor of the file into `type` at dst (elems values). */
static llmh_status convert_tensor(load_ctx *c, const llmh_tensor_info *ti, llmh_dtype type, void *dst, int64_t elems,
                                  float *tmp) {
    prefault(ti->data, ti->size);
    if (ti->type == type) {
        memcpy(dst, ti->data, (size_t)elems * llmh_dtype_type_size(type));
        return LLMH_OK;
    }
    const float *f = NULL;
    if (ti->type == LLMH_DTYPE_F32 && ((uintptr_t)ti->data % sizeof(float)) == 0) {
        f = (const float *)ti->data;
    } else {
        float *out = type == LLMH_DTYPE_F32 ? (float *)dst : tmp;
        if (llmh_dequantize(ti->type, ti->data, out, elems))
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s': cannot convert %s to f32", c->file, ti->name,
                              llmh_dtype_name(ti->type));
        if (type == LLMH_DTYPE_F32) return LLMH_OK;
        f = out;
    }
    if (from_f32(type, f, dst, elems))
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s': cannot convert to %s", c->file, ti->name,
                          llmh_dtype_name(type));
    return LLMH_OK;
}

/* Q8_0 storage of a B ([R, M]) into dst (SDK 1.2): widened to f32 (f), its
 * output rows permuted when `heads` is not 0 (PEFT q/k of a llama-
 * architecture model), transposed into rank rows of M values (f2), then
 * quantized. f and f2: f32 scratch of the tensor's size. (A goes through
 * convert_tensor like the other storage types.) */
static llmh_status convert_q8_b(load_ctx *c, const llmh_tensor_info *ti, int64_t heads, uint8_t *dst, float *f,
                                float *f2) {
    int64_t ne0 = ti->ne[0], ne1 = ti->ne[1], elems = ne0 * ne1;
    llmh_status st = convert_tensor(c, ti, LLMH_DTYPE_F32, f, elems, NULL);
    if (st) return st;
    if (heads) {
        permute_rows((uint8_t *)f2, (const uint8_t *)f, ne1, (size_t)ne0 * sizeof(float), heads);
        memcpy(f, f2, (size_t)elems * sizeof(float));
    }
    for (int64_t m = 0; m < ne1; m++)
        for (int64_t j = 0; j < ne0; j++) f2[j * ne1 + m] = f[m * ne0 + j];
    if (llmh_quantize(LLMH_DTYPE_Q8_0, f2, dst, elems))
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: tensor '%s': cannot convert to q8_0", c->file, ti->name);
    return LLMH_OK;
}

/* Convert every pair to the storage type and place it in one backend
 * buffer. When the backend can wrap host memory, the values are written
 * straight into a pre-faulted anonymous mapping that the buffer wraps (one
 * pass, no page fault per page); otherwise through buffer_alloc +
 * buffer_write. */
static llmh_status place_adapter(load_ctx *c, llmh__adapter *ad) {
    llmh_model *m = c->m;
    const llmh_backend_iface *bi = m->be_if;
    size_t n = (size_t)m->hp.n_layer * LLMH__LORA_N, total = 0, max_elems = 0;
    llmh_dtype type = m->adapter_type;
    bool q8 = type == LLMH_DTYPE_Q8_0;
    ad->type = type;
    ad->lora_op = bi->supports(m->be, LLMH_OP_LORA, type, LLMH_DTYPE_F32) != 0;
    if (q8 && !ad->lora_op) /* a transposed B has no MUL_MAT fallback */
        return llmh__fail(LLMH_ERR_UNSUPPORTED,
                          "adapter %s: backend '%s' does not run LORA for q8_0 adapters (SDK 1.2); "
                          "set [model] adapter_type to \"f16\" or \"f32\"",
                          c->path, llmh_plugin_descriptor(m->backend_plugin)->name);
    if (!ad->lora_op && (!bi->supports(m->be, LLMH_OP_MUL_MAT, type, LLMH_DTYPE_F32) ||
                         !bi->supports(m->be, LLMH_OP_SCALE, LLMH_DTYPE_F32, LLMH_DTYPE_F32)))
        return llmh__fail(LLMH_ERR_UNSUPPORTED,
                          "adapter %s: backend '%s' runs neither LORA nor %s mul_mat and scale for %s adapters "
                          "(set [model] adapter_type)",
                          c->path, llmh_plugin_descriptor(m->backend_plugin)->name, llmh_dtype_name(type),
                          llmh_dtype_name(type));
    for (size_t i = 0; i < n; i++) {
        const lora_src *p = &c->src[i];
        if (!p->a) continue;
        size_t ea = (size_t)p->a->ne[0] * (size_t)p->a->ne[1], eb = (size_t)p->b->ne[0] * (size_t)p->b->ne[1];
        if (q8 && (p->a->ne[0] % 32 != 0 || p->b->ne[1] % 32 != 0))
            return llmh__fail(LLMH_ERR_UNSUPPORTED,
                              "adapter %s: tensor '%s' adapts a %lld -> %lld projection; q8_0 adapters need both "
                              "widths to be multiples of 32 (set [model] adapter_type to \"f16\" or \"f32\")",
                              c->path, p->a->name, (long long)p->a->ne[0], (long long)p->b->ne[1]);
        total += align256(stored_bytes(type, (int64_t)ea)) + align256(stored_bytes(type, (int64_t)eb));
        if (ea > max_elems) max_elems = ea;
        if (eb > max_elems) max_elems = eb;
    }
    /* tmp: f32 staging for non-f32 sources; perm: a converted tensor before
     * its rows are permuted, or the value to buffer_write; tmp2: Q8_0's
     * second f32 scratch (the transpose) */
    size_t ts = llmh_dtype_type_size(type);
    float *tmp = malloc(max_elems * sizeof(float)), *tmp2 = q8 ? malloc(max_elems * sizeof(float)) : NULL;
    uint8_t *perm = malloc(q8 ? stored_bytes(type, (int64_t)max_elems) : max_elems * ts);
    if (!tmp || !perm || (q8 && !tmp2)) {
        free(tmp);
        free(tmp2);
        free(perm);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "adapter %s: out of memory", c->path);
    }
    char *wrap = NULL;
    if (bi->buffer_wrap_host) {
        /* 2 MiB-aligned and backed by huge pages where the kernel allows
         * (decode reads every adapter byte per token: fewer TLB misses),
         * then prefaulted in one call */
        size_t huge = (size_t)2 << 20, len = total + huge;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            char *al = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
            (void)madvise(al, (total + huge - 1) & ~(huge - 1), MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
            if (madvise(al, total, MADV_POPULATE_WRITE) != 0)
#endif
                memset(al, 0, total); /* fault it in before the conversion pass */
            wrap = al;
            ad->host_mem = p;
            ad->host_len = len;
        }
    }
    llmh_status st = LLMH_OK;
    if (!wrap) st = bi->buffer_alloc(m->be, total, LLMH_BUFFER_WEIGHTS, &ad->buf);
    /* convert: into the mapping, or through `perm` and buffer_write */
    size_t off = 0;
    for (size_t i = 0; i < n && !st; i++) {
        const lora_src *p = &c->src[i];
        if (!p->a) continue;
        int target = (int)(i % LLMH__LORA_N);
        for (int k = 0; k < 2 && !st; k++) {
            const llmh_tensor_info *ti = k ? p->b : p->a;
            int64_t elems = ti->ne[0] * ti->ne[1];
            bool permute = k == 1 && c->peft && m->hp.arch == LLMH__ARCH_LLAMA &&
                           (target == LLMH__LORA_Q || target == LLMH__LORA_K);
            uint8_t *dst = wrap ? (uint8_t *)wrap + off : perm;
            size_t bytes = stored_bytes(type, elems);
            if (q8 && k == 1) {
                int64_t heads = !permute ? 0 : target == LLMH__LORA_Q ? m->hp.n_head : m->hp.n_head_kv;
                st = convert_q8_b(c, ti, heads, dst, tmp, tmp2);
            } else if (permute) {
                /* converted into perm, rows permuted into place (through
                 * tmp, as large in bytes, when perm is what gets written) */
                st = convert_tensor(c, ti, type, perm, elems, tmp);
                if (!st) {
                    uint8_t *out = wrap ? dst : (uint8_t *)tmp;
                    permute_rows(out, perm, ti->ne[1], (size_t)ti->ne[0] * ts,
                                 target == LLMH__LORA_Q ? m->hp.n_head : m->hp.n_head_kv);
                    if (!wrap) memcpy(perm, tmp, (size_t)elems * ts);
                }
            } else {
                st = convert_tensor(c, ti, type, dst, elems, tmp);
            }
            if (!st && !wrap) st = bi->buffer_write(m->be, ad->buf, off, perm, bytes);
            off += align256(bytes);
        }
    }
    free(tmp);
    free(tmp2);
    free(perm);
    if (!st && wrap) st = bi->buffer_wrap_host(m->be, wrap, total, LLMH_BUFFER_WEIGHTS, &ad->buf);
    /* tensors, then the backend's preparation */
    char *host = !st && bi->buffer_host_ptr ? bi->buffer_host_ptr(m->be, ad->buf) : NULL;
    off = 0;
    for (size_t i = 0; i < n && !st; i++) {
        const lora_src *p = &c->src[i];
        if (!p->a) continue;
        for (int k = 0; k < 2 && !st; k++) {
            const llmh_tensor_info *ti = k ? p->b : p->a;
            llmh_tensor *t = k ? &ad->b[i] : &ad->a[i];
            if (q8 && k) init_mat(t, type, ti->ne[1], ti->ne[0], ad->buf, off, host); /* B transposed: [M, R] */
            else init_mat(t, type, ti->ne[0], ti->ne[1], ad->buf, off, host);
            t->name = k ? "lora_b" : "lora_a";
            off += align256(stored_bytes(type, ti->ne[0] * ti->ne[1]));
            if (bi->weight_prepare && (st = bi->weight_prepare(m->be, t))) t->buffer = NULL; /* not prepared */
        }
    }
    if (st) {
        /* release what was prepared, then the buffer and the mapping */
        if (bi->weight_release)
            for (size_t i = 0; i < n; i++) {
                if (ad->a[i].ne[0] && ad->a[i].buffer) bi->weight_release(m->be, &ad->a[i]);
                if (ad->b[i].ne[0] && ad->b[i].buffer) bi->weight_release(m->be, &ad->b[i]);
            }
        if (ad->buf) bi->buffer_free(m->be, ad->buf);
        ad->buf = NULL;
        if (ad->host_mem) munmap(ad->host_mem, ad->host_len);
        ad->host_mem = NULL;
        memset(ad->a, 0, n * sizeof *ad->a);
        memset(ad->b, 0, n * sizeof *ad->b);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* gate vectors (gated router; docs/memory-fabric.md)                         */
/* ------------------------------------------------------------------------ */
/* Check and copy a gate: w ne [n_embd, n_layer], b ne [n_layer], F32 (F16
 * and BF16 widened), finite. `file` and the names are for messages. */
static llmh_status load_gate(const llmh_model *m, llmh__adapter *ad, const char *file, const llmh_tensor_info *w,
                             const llmh_tensor_info *b) {
    if (!w || !b)
        return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s' has no matching '%s' (a gate needs both)", file,
                          (w ? w : b)->name, w ? "bias" : "weight");
    int64_t E = m->hp.n_embd, L = m->hp.n_layer;
    const llmh_tensor_info *t2[2] = {w, b};
    for (int k = 0; k < 2; k++) {
        const llmh_tensor_info *t = t2[k];
        char sh[96], want[64];
        shape_str(sh, sizeof sh, t->ne, t->n_dims > 0 ? t->n_dims : 1);
        bool shape_ok = k == 0 ? (t->ne[0] == E && t->ne[1] == L && t->ne[2] == 1 && t->ne[3] == 1)
                               : (t->ne[0] == L && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1);
        if (k == 0) snprintf(want, sizeof want, "[%lld, %lld]", (long long)E, (long long)L);
        else snprintf(want, sizeof want, "[%lld]", (long long)L);
        if (!shape_ok)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s' has shape %s; this model needs %s (n_embd, n_layer)",
                              file, t->name, sh, want);
        if (t->type != LLMH_DTYPE_F32 && t->type != LLMH_DTYPE_F16 && t->type != LLMH_DTYPE_BF16)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s' is %s; f32, f16 or bf16 expected", file,
                              t->name, llmh_dtype_name(t->type));
        uint64_t need = (uint64_t)(t->ne[0] * t->ne[1]) * llmh_dtype_type_size(t->type);
        if (!t->data || t->size < need)
            return llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s': %llu bytes of data, %llu needed", file,
                              t->name, (unsigned long long)t->size, (unsigned long long)need);
    }
    float *gw = malloc((size_t)(E * L) * sizeof(float)), *gb = malloc((size_t)L * sizeof(float));
    if (!gw || !gb) {
        free(gw);
        free(gb);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "adapter %s: out of memory for the gate", file);
    }
    llmh_status st = llmh_dequantize(w->type, w->data, gw, E * L);
    if (!st) st = llmh_dequantize(b->type, b->data, gb, L);
    if (st) st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: cannot read the gate tensors", file);
    for (int64_t i = 0; i < E * L && !st; i++)
        if (!isfinite(gw[i]))
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s' has a non-finite value at layer %lld, index %lld",
                            file, w->name, (long long)(i / E), (long long)(i % E));
    for (int64_t i = 0; i < L && !st; i++)
        if (!isfinite(gb[i]))
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: gate tensor '%s' has a non-finite value at layer %lld", file,
                            b->name, (long long)i);
    if (st) {
        free(gw);
        free(gb);
        return st;
    }
    ad->gate_w = gw;
    ad->gate_b = gb;
    ad->gate_layers = (int32_t)L;
    return LLMH_OK;
}

/* PEFT: the optional adapter_gate.safetensors beside the adapter's weights,
 * with gate.weight (HF [n_layer, n_embd]) and gate.bias ([n_layer]). */
static llmh_status load_peft_gate(load_ctx *c, llmh__adapter *ad) {
    char gfile[4096];
    if ((size_t)snprintf(gfile, sizeof gfile, "%s/adapter_gate.safetensors", c->path) >= sizeof gfile)
        return llmh__fail(LLMH_ERR_INVALID_ARG, "adapter %s: path too long", c->path);
    struct stat sb;
    if (stat(gfile, &sb) != 0) return LLMH_OK; /* no gate */
    llmh_plugin *fp = NULL;
    llmh_model_file *mf = NULL;
    const llmh_format_iface *fi = NULL;
    llmh_status st = llmh_registry_get_format_for(c->m->registry, gfile, &fp);
    if (!st) {
        fi = llmh_plugin_iface(fp);
        st = fi->open(llmh_plugin_state(fp), gfile, NULL, &mf);
    }
    const llmh_tensor_info *infos = NULL, *w = NULL, *b = NULL;
    size_t n_infos = 0;
    if (!st) st = fi->get_tensors(mf, &infos, &n_infos);
    for (size_t i = 0; i < n_infos && !st; i++) {
        const char *nm = infos[i].name ? infos[i].name : "";
        if (!strcmp(nm, "gate.weight")) w = &infos[i];
        else if (!strcmp(nm, "gate.bias")) b = &infos[i];
        else
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: unexpected tensor '%s' (gate.weight and gate.bias only)", gfile,
                            nm);
    }
    if (!st && !w && !b) st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: no gate.weight or gate.bias", gfile);
    if (!st) st = load_gate(c->m, ad, gfile, w, b);
    if (mf) fi->close(mf);
    if (fp) llmh_plugin_release(fp);
    return st;
}

/* CPU time of the calling thread (load cost without the machine's load). */
static double thread_cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static llmh_status adapter_open(llmh_model *m, const char *name, const char *path, float scale, const char *ns,
                                llmh__adapter **out) {
    *out = NULL;
    double t0 = llmh__now_seconds(), c0 = thread_cpu_seconds();
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.path = path;
    struct stat sb;
    if (stat(path, &sb) != 0) return llmh__fail(LLMH_ERR_IO, "adapter %s: %s", path, strerror(errno));
    c.peft = S_ISDIR(sb.st_mode);
    char file[4096];
    llmh_status st;
    if (c.peft) {
        if ((st = read_peft_config(&c))) return st;
        if ((size_t)snprintf(file, sizeof file, "%s/adapter_model.safetensors", path) >= sizeof file)
            return llmh__fail(LLMH_ERR_INVALID_ARG, "adapter %s: path too long", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    c.file = file;

    llmh_plugin *fp = NULL;
    const llmh_format_iface *fi = NULL;
    llmh_model_file *mf = NULL;
    llmh__adapter *ad = NULL;
    size_t n = (size_t)m->hp.n_layer * LLMH__LORA_N;
    if ((st = llmh_registry_get_format_for(m->registry, file, &fp))) goto done;
    fi = llmh_plugin_iface(fp);
    if ((st = fi->open(llmh_plugin_state(fp), file, NULL, &mf))) goto done;
    llmh_kv_list meta = {0};
    const llmh_tensor_info *infos = NULL;
    size_t n_infos = 0;
    if ((st = fi->get_metadata(mf, &meta)) || (st = fi->get_tensors(mf, &infos, &n_infos))) goto done;
    if (!c.peft) {
        const llmh_value *v = llmh_kv_find(&meta, "general.type");
        if (v && v->type == LLMH_V_STRING && !(v->v.s.len == 7 && !memcmp(v->v.s.ptr, "adapter", 7))) {
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: general.type is '%.*s', not 'adapter'", file,
                            (int)(v->v.s.len > 64 ? 64 : v->v.s.len), v->v.s.ptr);
            goto done;
        }
        v = llmh_kv_find(&meta, "adapter.type");
        if (v && v->type == LLMH_V_STRING && !(v->v.s.len == 4 && !memcmp(v->v.s.ptr, "lora", 4))) {
            st = llmh__fail(LLMH_ERR_UNSUPPORTED, "adapter %s: adapter.type is '%.*s'; only 'lora' is supported", file,
                            (int)(v->v.s.len > 64 ? 64 : v->v.s.len), v->v.s.ptr);
            goto done;
        }
        v = llmh_kv_find(&meta, "general.architecture");
        if (v && v->type == LLMH_V_STRING &&
            !(v->v.s.len == strlen(m->arch_name) && !memcmp(v->v.s.ptr, m->arch_name, v->v.s.len))) {
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: made for a '%.*s' model, but the base model is '%s'", file,
                            (int)(v->v.s.len > 64 ? 64 : v->v.s.len), v->v.s.ptr, m->arch_name);
            goto done;
        }
        double alpha = 0;
        v = llmh_kv_find(&meta, "adapter.lora.alpha");
        if (v && !llmh_value_as_f64(v, &alpha)) {
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: adapter.lora.alpha is not a number", file);
            goto done;
        }
        if (!isfinite(alpha)) {
            st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: adapter.lora.alpha is not finite", file);
            goto done;
        }
        c.alpha = (float)alpha;
    }
    c.src = calloc(n, sizeof *c.src);
    ad = calloc(1, sizeof *ad);
    if (!c.src || !ad || !(ad->a = calloc(n, sizeof *ad->a)) || !(ad->b = calloc(n, sizeof *ad->b))) {
        st = llmh__fail(LLMH_ERR_NO_MEMORY, "adapter %s: out of memory", path);
        goto done;
    }
    ad->model = m;
    if ((st = collect_pairs(&c, infos, n_infos))) goto done;
    for (size_t i = 0; i < n; i++) {
        if (!c.src[i].a && !c.src[i].b) continue;
        if ((st = check_pair(&c, (int64_t)(i / LLMH__LORA_N), (int)(i % LLMH__LORA_N)))) goto done;
        ad->n_targets++;
        if (c.src[i].a->ne[1] > ad->rank) ad->rank = (int32_t)c.src[i].a->ne[1];
    }
    if (ad->n_targets == 0) {
        st = llmh__fail(LLMH_ERR_FORMAT, "adapter %s: no LoRA tensors", file);
        goto done;
    }
    if (c.gate_w || c.gate_b) {
        if ((st = load_gate(m, ad, file, c.gate_w, c.gate_b))) goto done;
    } else if (c.peft && (st = load_peft_gate(&c, ad))) {
        goto done;
    }
    if ((st = place_adapter(&c, ad))) goto done;
    ad->alpha = c.alpha;
    ad->scale = scale;
    ad->name = strdup(name);
    ad->path = strdup(path);
    ad->ns = ns ? strdup(ns) : NULL;
    if (!ad->name || !ad->path || (ns && !ad->ns)) {
        st = llmh__fail(LLMH_ERR_NO_MEMORY, "adapter %s: out of memory", path);
        goto done;
    }
    LLMH_LOGI("adapter '%s' from %s: %d projections, rank %d, alpha %g, stored as %s (%s)%s, loaded in %.1f ms "
              "(%.1f ms of CPU)",
              name, path, ad->n_targets, ad->rank, (double)ad->alpha, llmh_dtype_name(ad->type),
              ad->lora_op ? "lora op" : "mul_mat fallback", ad->gate_w ? ", with gate vectors" : "",
              (llmh__now_seconds() - t0) * 1e3, (thread_cpu_seconds() - c0) * 1e3);
done:
    if (mf) fi->close(mf); /* the F32 copies live in the backend */
    if (fp) llmh_plugin_release(fp);
    free(c.src);
    if (st) {
        if (!*llmh_last_error()) llmh_set_error("adapter %s: %s", path, llmh_status_str(st));
        adapter_destroy(ad);
        return st;
    }
    *out = ad;
    return LLMH_OK;
}

/* ------------------------------------------------------------------------ */
/* router                                                                     */
/* ------------------------------------------------------------------------ */
/* Called with adapter_lock held. */
static llmh_status router_open(llmh_model *m, const llmh_kv_list *params) {
    if (m->router) return LLMH_OK;
    const char *name = m->router_name ? m->router_name : "static";
    llmh_status st = llmh_registry_get(m->registry, LLMH_PLUGIN_ROUTER, name, &m->router_plugin);
    if (st) return st;
    m->router_if = llmh_plugin_iface(m->router_plugin);
    if (m->router_if->struct_size < offsetof(llmh_router_iface, route_tokens) || !m->router_if->create ||
        !m->router_if->route || !m->router_if->destroy) {
        llmh_plugin_release(m->router_plugin);
        m->router_plugin = NULL;
        m->router_if = NULL;
        return llmh__fail(LLMH_ERR_ABI, "router plugin '%s' lacks create/route/destroy", name);
    }
    st = m->router_if->create(llmh_plugin_state(m->router_plugin), params, &m->router);
    if (st) {
        if (!*llmh_last_error()) llmh_set_error("router '%s': create failed: %s", name, llmh_status_str(st));
        llmh_plugin_release(m->router_plugin);
        m->router_plugin = NULL;
        m->router_if = NULL;
        m->router = NULL;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* store                                                                      */
/* ------------------------------------------------------------------------ */
static llmh__adapter *find_locked(llmh_model *m, const char *name, size_t *idx) {
    for (size_t i = 0; i < m->n_adapters; i++)
        if (!strcmp(m->adapters[i]->name, name)) {
            if (idx) *idx = i;
            return m->adapters[i];
        }
    return NULL;
}

static bool valid_scale(float s) { return isfinite(s); }

llmh_status llmh_adapter_load(llmh_model *m, const char *name, const char *path, float scale, const char *ns) {
    if (!m || !name || !path || !*name) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_adapter_load: NULL argument");
    if (!valid_scale(scale)) return llmh__fail(LLMH_ERR_INVALID_ARG, "adapter '%s': scale must be finite", name);
    pthread_mutex_lock(&m->adapter_lock);
    bool dup = find_locked(m, name, NULL) != NULL;
    llmh_status st = dup ? llmh__fail(LLMH_ERR_INVALID_ARG, "adapter '%s' is already loaded", name) : router_open(m, NULL);
    pthread_mutex_unlock(&m->adapter_lock);
    if (st) return st;
    /* the slow part runs unlocked: other sessions keep selecting and running */
    llmh__adapter *ad = NULL;
    if ((st = adapter_open(m, name, path, scale, ns, &ad))) return st;
    pthread_mutex_lock(&m->adapter_lock);
    if (find_locked(m, name, NULL)) {
        st = llmh__fail(LLMH_ERR_INVALID_ARG, "adapter '%s' is already loaded", name);
    } else if (m->n_adapters == m->cap_adapters) {
        size_t cap = m->cap_adapters ? m->cap_adapters * 2 : 8;
        llmh__adapter **na = realloc(m->adapters, cap * sizeof *na);
        if (!na) st = llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory growing the adapter store");
        else {
            m->adapters = na;
            m->cap_adapters = cap;
        }
    }
    if (!st) {
        ad->refs = 1; /* the store's reference */
        m->adapters[m->n_adapters++] = ad;
    }
    pthread_mutex_unlock(&m->adapter_lock);
    if (st) adapter_destroy(ad);
    return st;
}

llmh_status llmh_adapter_unload(llmh_model *m, const char *name) {
    if (!m || !name) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_adapter_unload: NULL argument");
    pthread_mutex_lock(&m->adapter_lock);
    size_t idx = 0;
    llmh__adapter *ad = find_locked(m, name, &idx);
    int left = 0;
    if (ad) {
        memmove(&m->adapters[idx], &m->adapters[idx + 1], (m->n_adapters - idx - 1) * sizeof *m->adapters);
        m->n_adapters--;
        left = --ad->refs;
    }
    pthread_mutex_unlock(&m->adapter_lock);
    if (!ad) return llmh__fail(LLMH_ERR_NOT_FOUND, "no adapter named '%s' is loaded", name);
    if (left == 0) adapter_destroy(ad);
    return LLMH_OK;
}

llmh_status llmh_adapter_set_scale(llmh_model *m, const char *name, float scale) {
    if (!m || !name) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_adapter_set_scale: NULL argument");
    if (!valid_scale(scale)) return llmh__fail(LLMH_ERR_INVALID_ARG, "adapter '%s': scale must be finite", name);
    pthread_mutex_lock(&m->adapter_lock);
    llmh__adapter *ad = find_locked(m, name, NULL);
    if (ad) ad->scale = scale;
    pthread_mutex_unlock(&m->adapter_lock);
    return ad ? LLMH_OK : llmh__fail(LLMH_ERR_NOT_FOUND, "no adapter named '%s' is loaded", name);
}

llmh_status llmh_adapter_list(llmh_model *m, llmh_adapter_info **out, size_t *n) {
    if (!m || !out || !n) return llmh__fail(LLMH_ERR_INVALID_ARG, "llmh_adapter_list: NULL argument");
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&m->adapter_lock);
    size_t bytes = m->n_adapters * sizeof(llmh_adapter_info);
    for (size_t i = 0; i < m->n_adapters; i++) {
        const llmh__adapter *a = m->adapters[i];
        bytes += strlen(a->name) + strlen(a->path) + (a->ns ? strlen(a->ns) : 0) + 3;
    }
    llmh_adapter_info *info = malloc(bytes ? bytes : 1);
    if (!info) {
        pthread_mutex_unlock(&m->adapter_lock);
        return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory listing adapters");
    }
    char *str = (char *)(info + m->n_adapters);
    for (size_t i = 0; i < m->n_adapters; i++) {
        const llmh__adapter *a = m->adapters[i];
        llmh_adapter_info *e = &info[i];
        size_t l;
        e->name = str;
        l = strlen(a->name) + 1;
        memcpy(str, a->name, l);
        str += l;
        e->path = str;
        l = strlen(a->path) + 1;
        memcpy(str, a->path, l);
        str += l;
        e->ns = NULL;
        if (a->ns) {
            e->ns = str;
            l = strlen(a->ns) + 1;
            memcpy(str, a->ns, l);
            str += l;
        } else {
            *str++ = 0;
        }
        e->scale = a->scale;
        e->alpha = a->alpha;
        e->rank = a->rank;
        e->n_targets = a->n_targets;
        e->users = a->users;
        e->bytes = 0;
        for (int64_t t = 0; t < m->hp.n_layer * LLMH__LORA_N; t++)
            if (a->a[t].ne[0] > 0)
                e->bytes += (uint64_t)((a->a[t].ne[0] * a->a[t].ne[1] + a->b[t].ne[0] * a->b[t].ne[1]) /
                                       llmh_dtype_block_size(a->type)) *
                            llmh_dtype_type_size(a->type);
    }
    *n = m->n_adapters;
    pthread_mutex_unlock(&m->adapter_lock);
    *out = info;
    return LLMH_OK;
}

static llmh_adapter_desc desc_of(const llmh_model *m, const llmh__adapter *a) {
    return (llmh_adapter_desc){sizeof(llmh_adapter_desc), a->name, a->ns, a->scale, a->alpha, a->rank,
                               a->gate_w ? a->gate_layers : 0, a->gate_w ? m->hp.n_embd : 0, a->gate_w, a->gate_b};
}

llmh_status llmh__fabric_select(llmh_model *m, const llmh_adapter_request *req, llmh__adapter ***out, float **mult_out,
                                size_t *n_out) {
    return llmh__fabric_select_ex(m, req, out, mult_out, NULL, NULL, n_out);
}

bool llmh__fabric_per_token(llmh_model *m) {
    pthread_mutex_lock(&m->adapter_lock);
    bool r = m->router && m->router_if->struct_size >= offsetof(llmh_router_iface, route_tokens) + sizeof(void *) &&
             m->router_if->route_tokens != NULL;
    pthread_mutex_unlock(&m->adapter_lock);
    return r;
}

llmh_status llmh__fabric_route_tokens(llmh_model *m, int32_t layer, const float *h, int64_t dim, int64_t n_tok,
                                      llmh__adapter *const *sel, const float *req_gates, size_t n, float *gates_out) {
    llmh_adapter_desc *desc = calloc(n ? n : 1, sizeof *desc);
    if (!desc) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory routing tokens");
    pthread_mutex_lock(&m->adapter_lock);
    for (size_t i = 0; i < n; i++) desc[i] = desc_of(m, sel[i]);
    llmh_clear_error();
    llmh_status st = m->router_if->route_tokens(m->router, layer, h, dim, n_tok, desc, n, req_gates, gates_out);
    if (st && !*llmh_last_error())
        llmh_set_error("router '%s': route_tokens failed at layer %d: %s", m->router_name ? m->router_name : "static",
                       (int)layer, llmh_status_str(st));
    pthread_mutex_unlock(&m->adapter_lock);
    for (size_t i = 0; i < (size_t)n_tok * n && !st; i++)
        if (!isfinite(gates_out[i]))
            st = llmh__fail(LLMH_ERR_INVALID_ARG, "router gave adapter '%s' a non-finite gate for token %zu at layer %d",
                            desc[i % n].name, i / n, (int)layer);
    free(desc);
    return st;
}

llmh_status llmh__fabric_select_ex(llmh_model *m, const llmh_adapter_request *req, llmh__adapter ***out,
                                   float **mult_out, float **gates_out, float **scales_out, size_t *n_out) {
    const char *const *names = req->names;
    size_t n_names = req->n_names;
    *out = NULL;
    *mult_out = NULL;
    if (gates_out) *gates_out = NULL;
    if (scales_out) *scales_out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&m->adapter_lock);
    llmh_status st = LLMH_OK;
    size_t n = m->n_adapters;
    if (n == 0) {
        if (req->n_namespaces && !n_names)
            st = llmh__fail(LLMH_ERR_NOT_FOUND, "namespace '%s' has no adapters (the adapter store is empty)",
                            req->namespaces[0] ? req->namespaces[0] : "(null)");
        if (n_names)
            st = llmh__fail(LLMH_ERR_NOT_FOUND, "adapter '%s' is not loaded (the adapter store is empty)",
                            names[0] ? names[0] : "(null)");
        pthread_mutex_unlock(&m->adapter_lock);
        return st;
    }
    llmh_adapter_desc *desc = calloc(n, sizeof *desc);
    float *gates = calloc(n, sizeof *gates);
    llmh__adapter **sel = calloc(n, sizeof *sel);
    float *mult = calloc(n, sizeof *mult);
    float *sgate = calloc(n, sizeof *sgate), *sscale = calloc(n, sizeof *sscale);
    if (!desc || !gates || !sel || !mult || !sgate || !sscale)
        st = llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory routing adapters");
    if (!st) st = router_open(m, NULL);
    if (!st) {
        for (size_t i = 0; i < n; i++) {
            desc[i] = desc_of(m, m->adapters[i]);
        }
        llmh_route_request rr = {sizeof rr, names, req->scales, n_names, req->namespaces, req->n_namespaces};
        llmh_clear_error();
        st = m->router_if->route(m->router, &rr, desc, n, gates);
        if (st && !*llmh_last_error()) llmh_set_error("router '%s' failed: %s", m->router_name ? m->router_name : "static",
                                                      llmh_status_str(st));
    }
    size_t k = 0;
    if (!st) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(gates[i])) {
                st = llmh__fail(LLMH_ERR_INVALID_ARG, "router gave adapter '%s' a non-finite gate", desc[i].name);
                break;
            }
        }
    }
    if (!st)
        for (size_t i = 0; i < n; i++) {
            if (gates[i] == 0.0f) continue;
            llmh__adapter *a = m->adapters[i];
            a->refs++;
            a->users++;
            sel[k] = a;
            mult[k] = gates[i] * a->scale;
            sgate[k] = gates[i];
            sscale[k] = a->scale;
            k++;
        }
    pthread_mutex_unlock(&m->adapter_lock);
    free(desc);
    free(gates);
    if (st) {
        free(sel);
        free(mult);
        free(sgate);
        free(sscale);
        return st;
    }
    *out = sel;
    *mult_out = mult;
    if (gates_out) *gates_out = sgate;
    else free(sgate);
    if (scales_out) *scales_out = sscale;
    else free(sscale);
    *n_out = k;
    return LLMH_OK;
}

llmh_status llmh__fabric_load(llmh_model *m, const llmh_config *cfg) {
    const char *at = cfg->model.adapter_type ? cfg->model.adapter_type : "auto";
    if (llmh__adapter_storage_type(at, &m->adapter_type))
        return llmh__fail(LLMH_ERR_CONFIG, "model.adapter_type must be " LLMH__ADAPTER_TYPES ", got \"%.64s\"", at);
    m->router_name = strdup(cfg->router.plugin ? cfg->router.plugin : "static");
    if (!m->router_name) return llmh__fail(LLMH_ERR_NO_MEMORY, "out of memory");
    if (cfg->n_adapters == 0 && cfg->router.params.n == 0) return LLMH_OK;
    pthread_mutex_lock(&m->adapter_lock);
    llmh_status st = router_open(m, &cfg->router.params);
    pthread_mutex_unlock(&m->adapter_lock);
    for (size_t i = 0; i < cfg->n_adapters && !st; i++) {
        const llmh_adapter_config *a = &cfg->adapters[i];
        st = llmh_adapter_load(m, a->name, a->path, a->scale, a->ns);
    }
    return st;
}

void llmh__fabric_free(llmh_model *m) {
    /* sessions must be gone: every adapter holds only the store's reference */
    for (size_t i = 0; i < m->n_adapters; i++) {
        llmh__adapter *a = m->adapters[i];
        if (--a->refs == 0) adapter_destroy(a);
        else LLMH_LOGW("adapter '%s' still has %d users while the model is freed", a->name, a->refs);
    }
    free(m->adapters);
    m->adapters = NULL;
    m->n_adapters = m->cap_adapters = 0;
    if (m->router) m->router_if->destroy(m->router);
    if (m->router_plugin) llmh_plugin_release(m->router_plugin);
    m->router = NULL;
    m->router_plugin = NULL;
    free(m->router_name);
    m->router_name = NULL;
}

/* cli-lora-file.c — base-model and LoRA-adapter files for export-lora and
 * lora-gate (see cli-lora-file.h). Everything read from the files is
 * untrusted: shapes are checked against the base tensors and element counts
 * against overflow before anything is allocated. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli-lora-file.h"
#include "cli-model.h"

llmh_status llmh_lora_fail(llmh_status st, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    llmh_set_error("%s", buf);
    return st;
}

int llmh_lora_parse_spec(const char *arg, llmh_lora_spec *out) {
    static char store[64][4096]; /* the name and path need NUL-terminated copies */
    static int used;
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "llmhost: --adapter '%s': expected NAME=PATH[:SCALE]\n", arg);
        return -1;
    }
    if (used == 64 || strlen(arg) >= sizeof store[0]) {
        fprintf(stderr, "llmhost: --adapter '%s': too many adapters or too long\n", arg);
        return -1;
    }
    char *s = store[used++];
    strcpy(s, arg);
    s[eq - arg] = 0;
    out->name = s;
    out->path = s + (eq - arg) + 1;
    out->scale = 1.0f;
    char *colon = strrchr(s + (eq - arg) + 1, ':');
    if (colon && colon[1]) {
        char *end = NULL;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (end && !*end && !errno) {
            if (!isfinite(v) || fabs(v) > 1e30) {
                fprintf(stderr, "llmhost: --adapter '%s': the scale must be a finite number\n", arg);
                return -1;
            }
            out->scale = (float)v;
            *colon = 0;
        }
    }
    if (!*out->path) {
        fprintf(stderr, "llmhost: --adapter '%s': empty path\n", arg);
        return -1;
    }
    return 0;
}

static bool str_eq(const llmh_value *v, const char *s) {
    size_t n = strlen(s);
    return v && v->type == LLMH_V_STRING && v->v.s.len == n && !memcmp(v->v.s.ptr, s, n);
}

static int64_t meta_int(const llmh_kv_list *meta, const char *arch, const char *suffix) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = 0;
    const llmh_value *val = llmh_kv_find(meta, key);
    if (!val || val->type == LLMH_V_ARRAY || !llmh_value_as_i64(val, &v)) return -1;
    return v;
}

llmh_status llmh_lora_open_any(llmh_registry *reg, const char *path, llmh_plugin **fp,
                                    const llmh_format_iface **fi, llmh_model_file **mf) {
    llmh_status st = llmh_registry_get_format_for(reg, path, fp);
    if (st) return st;
    *fi = llmh_plugin_iface(*fp);
    llmh_clear_error();
    st = (*fi)->open(llmh_plugin_state(*fp), path, NULL, mf);
    if (st) {
        if (!*llmh_last_error()) llmh_set_error("%s: %s", path, llmh_status_str(st));
        llmh_plugin_release(*fp);
        *fp = NULL;
        *mf = NULL;
    }
    return st;
}

llmh_status llmh_lora_base_open(llmh_registry *reg, const char *path, llmh_lora_base *b) {
    memset(b, 0, sizeof *b);
    llmh_status st = llmh_lora_open_any(reg, path, &b->fp, &b->fi, &b->mf);
    if (st) return st;
    if ((st = b->fi->get_metadata(b->mf, &b->meta)) || (st = b->fi->get_tensors(b->mf, &b->tensors, &b->n_tensors)))
        goto fail;
    if (!str_eq(llmh_kv_find(&b->meta, "llmh.source_format"), "gguf")) {
        st = llmh_lora_fail(LLMH_ERR_UNSUPPORTED,
                            "%s: the base model must be a GGUF file (the output keeps its metadata and tokenizer)", path);
        goto fail;
    }
    const llmh_value *arch = llmh_kv_find(&b->meta, "general.architecture");
    if (!arch || arch->type != LLMH_V_STRING || arch->v.s.len == 0 || arch->v.s.len >= sizeof b->arch) {
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "%s: key general.architecture is missing or not a short string", path);
        goto fail;
    }
    memcpy(b->arch, arch->v.s.ptr, (size_t)arch->v.s.len);
    b->arch[arch->v.s.len] = 0;
    b->n_layer = meta_int(&b->meta, b->arch, "block_count");
    b->n_embd = meta_int(&b->meta, b->arch, "embedding_length");
    b->n_head = meta_int(&b->meta, b->arch, "attention.head_count");
    b->n_head_kv = meta_int(&b->meta, b->arch, "attention.head_count_kv");
    if (b->n_head_kv <= 0) b->n_head_kv = b->n_head;
    if (b->n_layer <= 0 || b->n_embd <= 0 || b->n_head <= 0) {
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "%s: %s.block_count, .embedding_length or .attention.head_count missing",
                            path, b->arch);
        goto fail;
    }
    return LLMH_OK;
fail:
    llmh_lora_base_close(b);
    return st;
}

void llmh_lora_base_close(llmh_lora_base *b) {
    if (b->mf) b->fi->close(b->mf);
    if (b->fp) llmh_plugin_release(b->fp);
    memset(b, 0, sizeof *b);
}

static const struct {
    const char *hf, *gguf;
} peft_map[] = {
    {"self_attn.q_proj", "attn_q.weight"}, {"self_attn.k_proj", "attn_k.weight"},
    {"self_attn.v_proj", "attn_v.weight"}, {"self_attn.o_proj", "attn_output.weight"},
    {"mlp.gate_proj", "ffn_gate.weight"},  {"mlp.up_proj", "ffn_up.weight"},
    {"mlp.down_proj", "ffn_down.weight"},
};

/* Tensor name -> base tensor name and which half (0 = A, 1 = B); false when
 * the name is not a LoRA matrix. */
static bool lora_name(const char *name, bool peft, char *base, size_t cap, int *half) {
    size_t n = strlen(name);
    if (!peft) {
        if (n > 7 && (!strcmp(name + n - 7, ".lora_a") || !strcmp(name + n - 7, ".lora_b"))) {
            if (n - 7 >= cap) return false;
            memcpy(base, name, n - 7);
            base[n - 7] = 0;
            *half = name[n - 1] == 'b';
            return true;
        }
        return false;
    }
    static const char pre[] = "base_model.model.model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return false;
    const char *p = name + sizeof pre - 1;
    char *end = NULL;
    errno = 0;
    long layer = strtol(p, &end, 10);
    if (end == p || *end != '.' || errno || layer < 0 || layer > 1000000) return false;
    p = end + 1;
    for (size_t k = 0; k < sizeof peft_map / sizeof peft_map[0]; k++) {
        size_t l = strlen(peft_map[k].hf);
        if (strncmp(p, peft_map[k].hf, l)) continue;
        const char *rest = p + l;
        if (strcmp(rest, ".lora_A.weight") && strcmp(rest, ".lora_B.weight")) return false;
        *half = rest[6] == 'B';
        return (size_t)snprintf(base, cap, "blk.%ld.%s", layer, peft_map[k].gguf) < cap;
    }
    return false;
}

static llmh_status peft_config(const char *dir, llmh_lora_file *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *text = llmh_cli_read_file(path);
    if (!text) return llmh_lora_fail(LLMH_ERR_IO, "adapter %s: cannot read %s", f->name, path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s is not valid JSON", f->name, path);
    llmh_status st = LLMH_OK;
    cJSON *pt = cJSON_GetObjectItem(j, "peft_type");
    cJSON *r = cJSON_GetObjectItem(j, "r");
    cJSON *al = cJSON_GetObjectItem(j, "lora_alpha");
    cJSON *fifo = cJSON_GetObjectItem(j, "fan_in_fan_out");
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA")))
        st = llmh_lora_fail(LLMH_ERR_UNSUPPORTED, "adapter %s: %s: peft_type is not LORA", f->name, path);
    else if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 65536)
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: 'r' must be a rank in 1..65536", f->name, path);
    else if (cJSON_IsTrue(fifo))
        st = llmh_lora_fail(LLMH_ERR_UNSUPPORTED, "adapter %s: %s: fan_in_fan_out = true is not supported", f->name, path);
    else if (al && (!cJSON_IsNumber(al) || !isfinite(al->valuedouble)))
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: 'lora_alpha' must be a number", f->name, path);
    else
        f->alpha = (float)(al ? al->valuedouble : r->valuedouble);
    cJSON_Delete(j);
    return st;
}

static void shape(char *buf, size_t cap, const llmh_tensor_info *t) {
    snprintf(buf, cap, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
             (long long)t->ne[3]);
}

llmh_status llmh_lora_file_open(llmh_registry *reg, const llmh_lora_base *base, const llmh_lora_spec *spec,
                                llmh_lora_file *f) {
    memset(f, 0, sizeof *f);
    f->name = strdup(spec->name);
    f->path = strdup(spec->path);
    f->scale = spec->scale;
    if (!f->name || !f->path) return llmh_lora_fail(LLMH_ERR_NO_MEMORY, "out of memory");
    struct stat sb;
    if (stat(spec->path, &sb) != 0) {
        llmh_lora_file_close(f);
        return llmh_lora_fail(LLMH_ERR_IO, "adapter %s: %s: %s", spec->name, spec->path, strerror(errno));
    }
    f->peft = S_ISDIR(sb.st_mode);
    char file[4096];
    snprintf(file, sizeof file, f->peft ? "%s/adapter_model.safetensors" : "%s", spec->path);
    llmh_status st = f->peft ? peft_config(spec->path, f) : LLMH_OK;
    if (!st) st = llmh_lora_open_any(reg, file, &f->fp, &f->fi, &f->mf);
    if (!st) st = f->fi->get_metadata(f->mf, &f->meta);
    if (!st) st = f->fi->get_tensors(f->mf, &f->tensors, &f->n_tensors);
    if (st) goto fail;
    if (!f->peft) {
        const llmh_value *v = llmh_kv_find(&f->meta, "general.type");
        if (v && !str_eq(v, "adapter")) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: general.type is not 'adapter'", f->name, file);
            goto fail;
        }
        v = llmh_kv_find(&f->meta, "adapter.type");
        if (v && !str_eq(v, "lora")) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: adapter.type is not 'lora'", f->name, file);
            goto fail;
        }
        v = llmh_kv_find(&f->meta, "general.architecture");
        if (v && !str_eq(v, base->arch)) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: general.architecture is not the base model's '%s'",
                                f->name, file, base->arch);
            goto fail;
        }
        v = llmh_kv_find(&f->meta, "adapter.lora.alpha");
        double alpha = 0;
        if (v && (v->type == LLMH_V_STRING || v->type == LLMH_V_ARRAY || !llmh_value_as_f64(v, &alpha) ||
                  !isfinite(alpha))) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: adapter.lora.alpha is not a number", f->name, file);
            goto fail;
        }
        f->alpha = (float)alpha;
    }
    f->pairs = calloc(f->n_tensors + 1, sizeof *f->pairs);
    if (!f->pairs) {
        st = llmh_lora_fail(LLMH_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const llmh_tensor_info *t = &f->tensors[i];
        if (!f->peft && !strcmp(t->name, "adapter.gate.weight")) { f->gate_w = t; continue; }
        if (!f->peft && !strcmp(t->name, "adapter.gate.bias")) { f->gate_b = t; continue; }
        char bname[512];
        int half = 0;
        if (!lora_name(t->name, f->peft, bname, sizeof bname, &half)) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: tensor '%s' is not a LoRA matrix", f->name, file,
                                t->name);
            goto fail;
        }
        size_t bi = 0;
        while (bi < base->n_tensors && strcmp(base->tensors[bi].name, bname)) bi++;
        if (bi == base->n_tensors) {
            st = llmh_lora_fail(LLMH_ERR_NOT_FOUND, "adapter %s: %s: tensor '%s' adapts '%s', which the base model lacks",
                                f->name, file, t->name, bname);
            goto fail;
        }
        size_t k = 0;
        while (k < f->n_pairs && f->pairs[k].base_index != bi) k++;
        if (k == f->n_pairs) f->pairs[f->n_pairs++].base_index = bi;
        const llmh_tensor_info **slot = half ? &f->pairs[k].b : &f->pairs[k].a;
        if (*slot) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: two lora_%c tensors for '%s'", f->name, file,
                                half ? 'b' : 'a', bname);
            goto fail;
        }
        *slot = t;
    }
    if ((f->gate_w != NULL) != (f->gate_b != NULL)) {
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: adapter.gate.weight and adapter.gate.bias come together",
                            f->name, file);
        goto fail;
    }
    for (size_t k = 0; k < f->n_pairs; k++) {
        const llmh_lora_pairref *p = &f->pairs[k];
        const llmh_tensor_info *w = &base->tensors[p->base_index];
        const llmh_tensor_info *a = p->a, *b = p->b;
        if (!a || !b) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: '%s' has lora_%c but no lora_%c", f->name, file, w->name,
                                a ? 'a' : 'b', a ? 'b' : 'a');
            goto fail;
        }
        char ws[96], as[96], bs[96];
        shape(ws, sizeof ws, w);
        shape(as, sizeof as, a);
        shape(bs, sizeof bs, b);
        bool w2 = w->ne[2] == 1 && w->ne[3] == 1;
        bool ok = w2 && a->ne[2] == 1 && a->ne[3] == 1 && b->ne[2] == 1 && b->ne[3] == 1 && a->ne[0] == w->ne[0] &&
                  b->ne[1] == w->ne[1] && a->ne[1] == b->ne[0] && a->ne[1] >= 1 && a->ne[1] <= 65536;
        if (!ok) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT,
                                "adapter %s: %s: '%s' (lora_a %s, lora_b %s) does not fit base tensor '%s' %s: want "
                                "lora_a [in, r], lora_b [r, out], r in 1..65536",
                                f->name, file, a->name, as, bs, w->name, ws);
            goto fail;
        }
        for (int h = 0; h < 2; h++) {
            const llmh_tensor_info *t = h ? b : a;
            int64_t bsz = llmh_dtype_block_size(t->type);
            if (bsz <= 0 || t->ne[0] % bsz) {
                st = llmh_lora_fail(LLMH_ERR_UNSUPPORTED, "adapter %s: %s: tensor '%s' has type %s, which cannot be read",
                                    f->name, file, t->name, llmh_dtype_name(t->type));
                goto fail;
            }
        }
    }
    if (f->n_pairs == 0 && !f->gate_w) {
        st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: %s: no LoRA tensors", f->name, file);
        goto fail;
    }
    return LLMH_OK;
fail:
    llmh_lora_file_close(f);
    return st;
}

void llmh_lora_file_close(llmh_lora_file *f) {
    if (f->mf) f->fi->close(f->mf);
    if (f->fp) llmh_plugin_release(f->fp);
    free(f->pairs);
    free(f->name);
    free(f->path);
    memset(f, 0, sizeof *f);
}

float llmh_lora_scale(const llmh_lora_file *f, int64_t r) {
    return f->alpha != 0.0f && r > 0 ? f->scale * f->alpha / (float)r : f->scale;
}

llmh_status llmh_lora_pair_f32(const llmh_lora_file *f, const llmh_lora_base *base, const char *base_name,
                               const llmh_tensor_info *a, const llmh_tensor_info *b, float **A, float **B) {
    int64_t in = a->ne[0], r = a->ne[1], out = b->ne[1];
    size_t na = (size_t)in * (size_t)r, nb = (size_t)r * (size_t)out;
    *A = malloc(na * sizeof **A);
    *B = malloc(nb * sizeof **B);
    float *tmp = NULL;
    llmh_status st = LLMH_OK;
    if (!*A || !*B) st = llmh_lora_fail(LLMH_ERR_NO_MEMORY, "out of memory reading adapter %s", f->name);
    if (!st) st = llmh_dequantize(a->type, a->data, *A, (int64_t)na);
    if (!st) st = llmh_dequantize(b->type, b->data, *B, (int64_t)nb);
    /* PEFT on a llama model: q/k lora_B rows from HF's rotate-half order to GGUF's interleaved order */
    size_t bl = strlen(base_name);
    bool is_q = bl >= 13 && !strcmp(base_name + bl - 13, ".attn_q.weight");
    bool is_k = bl >= 13 && !strcmp(base_name + bl - 13, ".attn_k.weight");
    if (!st && f->peft && !strcmp(base->arch, "llama") && (is_q || is_k)) {
        int64_t heads = is_q ? base->n_head : base->n_head_kv;
        if (heads <= 0 || out % heads || (out / heads) % 2) {
            st = llmh_lora_fail(LLMH_ERR_FORMAT, "adapter %s: '%s': %lld rows do not split into %lld heads", f->name,
                                b->name, (long long)out, (long long)heads);
        } else if (!(tmp = malloc(nb * sizeof *tmp))) {
            st = llmh_lora_fail(LLMH_ERR_NO_MEMORY, "out of memory reading adapter %s", f->name);
        } else {
            memcpy(tmp, *B, nb * sizeof *tmp);
            int64_t hd = out / heads, half = hd / 2;
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < half; i++)
                    for (int64_t j = 0; j < 2; j++)
                        memcpy(*B + (size_t)(h * hd + 2 * i + j) * (size_t)r, tmp + (size_t)(h * hd + j * half + i) * (size_t)r,
                               (size_t)r * sizeof *tmp);
        }
    }
    free(tmp);
    if (st) {
        free(*A);
        free(*B);
        *A = *B = NULL;
    }
    return st;
}

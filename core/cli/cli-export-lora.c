/* cli-export-lora.c — `llmhost export-lora`: merge LoRA adapters into the base
 * model's weights and write a new GGUF (docs/routers.md, "export-lora").
 *
 *   W' = W + sum_i s_i B_i A_i,   s_i = (scale_i * alpha_i) / r_i   (alpha 0: s_i = scale_i)
 *
 * The adapters are the manifest's [[adapter]] tables followed by every
 * --adapter NAME=PATH[:SCALE]; GGUF-LoRA files and PEFT directories are both
 * read (PEFT module names mapped onto the model's projections; for llama
 * models the rows of q/k lora_B are permuted from HF's rotate-half order into
 * GGUF's interleaved order, as the adapter loader does). Every metadata key
 * and every untouched tensor is copied as is; a merged tensor keeps its type
 * when it is F32/F16/BF16 or a block type the reference quantizer writes
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: dequantized, merged in double,
 * re-quantized), else `--type f16|f32` must say what to write. Only GGUF base
 * models are merged (the output keeps their metadata and tokenizer). */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-lora-file.h"
#include "cli-model.h"
#include "llmh-gguf.h"

typedef struct el_pair {
    const llmh_lora_file *ad;
    const llmh_tensor_info *a, *b;
} el_pair;

typedef struct el_job {
    const llmh_lora_base *base;
    el_pair **pairs;  /* per base tensor: NULL-terminated list, or NULL */
    size_t *n_pairs;
    llmh_dtype *out_type;
    size_t n_merged;
    bool tty; /* progress on a terminal */
} el_job;

static bool requantizable(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16: case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1:
    case LLMH_DTYPE_Q5_0: case LLMH_DTYPE_Q5_1: case LLMH_DTYPE_Q8_0: case LLMH_DTYPE_Q8_1:
        return true;
    default:
        return false;
    }
}

/* Produce merged tensor `index`: dequantize W, add every pair's s * B A in
 * double, convert to the output type. */
static llmh_status el_fill(void *user, size_t index, const llmh_gguf_tensor *t, void *dst, uint64_t size) {
    el_job *job = user;
    const llmh_tensor_info *w = &job->base->tensors[index];
    int64_t in = w->ne[0], out = w->ne[1];
    size_t n = (size_t)in * (size_t)out;
    (void)size;
    float *wf = malloc(n * sizeof *wf);
    double *acc = malloc((size_t)in * sizeof *acc);
    llmh_status st = LLMH_OK;
    if (!wf || !acc) {
        st = llmh_lora_fail(LLMH_ERR_NO_MEMORY, "export-lora: out of memory merging '%s'", w->name);
        goto done;
    }
    if ((st = llmh_dequantize(w->type, w->data, wf, (int64_t)n))) goto done;
    float *af[64] = {0}, *bf[64] = {0};
    size_t np = job->n_pairs[index];
    for (size_t j = 0; j < np && !st; j++) {
        const el_pair *p = &job->pairs[index][j];
        st = llmh_lora_pair_f32(p->ad, job->base, w->name, p->a, p->b, &af[j], &bf[j]);
    }
    if (!st) {
        for (int64_t o = 0; o < out; o++) {
            for (int64_t i = 0; i < in; i++) acc[i] = 0.0;
            for (size_t j = 0; j < np; j++) {
                const el_pair *p = &job->pairs[index][j];
                int64_t r = p->a->ne[1];
                double s = (double)llmh_lora_scale(p->ad, r);
                const float *brow = bf[j] + (size_t)o * (size_t)r;
                for (int64_t k = 0; k < r; k++) {
                    double c = s * (double)brow[k];
                    const float *arow = af[j] + (size_t)k * (size_t)in;
                    for (int64_t i = 0; i < in; i++) acc[i] += c * (double)arow[i];
                }
            }
            float *wrow = wf + (size_t)o * (size_t)in;
            for (int64_t i = 0; i < in; i++) wrow[i] = (float)((double)wrow[i] + acc[i]);
        }
        st = llmh_quantize(t->type, wf, dst, (int64_t)n);
    }
    for (size_t j = 0; j < np; j++) {
        free(af[j]);
        free(bf[j]);
    }
    job->n_merged++;
    if (!st && job->tty) {
        fprintf(stderr, "\r  merged %zu tensors", job->n_merged);
        fflush(stderr);
    }
done:
    free(wf);
    free(acc);
    return st;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmhost export-lora --config M.toml [--adapter NAME=PATH[:SCALE]]... -o OUT.gguf\n"
            "                           [--type f16|f32]\n"
            "\n"
            "Merge LoRA adapters into the base model and write a new GGUF: W' = W + sum s*B*A with\n"
            "s = scale*alpha/rank. The adapters are the manifest's [[adapter]] tables and every --adapter\n"
            "(GGUF-LoRA files or PEFT directories; SCALE defaults to 1.0). Metadata and untouched tensors\n"
            "are copied; merged tensors keep their type (F32/F16/BF16; Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q8_1 are\n"
            "re-quantized with the reference quantizer). --type writes every merged tensor as f16 or f32\n"
            "instead (needed for K-quant bases).\n"
            "\n"
            "  -o, --output FILE       the merged model (written to a temporary file, then renamed)\n"
            "  --adapter NAME=PATH[:SCALE]  one more adapter (repeatable)\n"
            "  --type f16|f32          type of the merged tensors\n"
            "  --config FILE, --set S.K=V   as the global options\n");
}

int llmh_cmd_export_lora(int argc, char **argv) {
    const char *out_path = NULL, *type_name = NULL;
    llmh_lora_spec specs[64];
    size_t n_specs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        int g = llmh_cli_manifest_option(argc, argv, &i);
        if (g < 0) return 2;
        if (g > 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "llmhost: export-lora: unknown option '%s' or missing value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out_path = argv[++i];
        else if (!strcmp(a, "--type")) type_name = argv[++i];
        else if (!strcmp(a, "--adapter")) {
            if (n_specs == sizeof specs / sizeof specs[0]) {
                fprintf(stderr, "llmhost: export-lora: at most 64 adapters\n");
                return 2;
            }
            if (llmh_lora_parse_spec(argv[++i], &specs[n_specs])) return 2;
            n_specs++;
        } else {
            fprintf(stderr, "llmhost: export-lora: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!out_path) {
        fprintf(stderr, "llmhost: export-lora: -o OUT.gguf is required (see --help)\n");
        return 2;
    }
    llmh_dtype force = LLMH_DTYPE_COUNT;
    if (type_name) {
        if (!strcmp(type_name, "f16")) force = LLMH_DTYPE_F16;
        else if (!strcmp(type_name, "f32")) force = LLMH_DTYPE_F32;
        else {
            fprintf(stderr, "llmhost: export-lora: --type must be f16 or f32, not '%s'\n", type_name);
            return 2;
        }
    }
    llmh_manifest *m = llmh_cli_load_manifest(NULL);
    if (!m) return 1;
    const llmh_config *cfg = llmh_manifest_config(m);
    int rc = 1;
    llmh_registry *reg = llmh_cli_registry(m);
    llmh_lora_base base;
    memset(&base, 0, sizeof base);
    llmh_lora_file *ads = NULL;
    size_t n_ads = 0;
    el_job job;
    memset(&job, 0, sizeof job);
    llmh_gguf_tensor *gt = NULL;
    if (!reg) goto out;
    llmh_status st = llmh_lora_base_open(reg, cfg->model.path, &base);
    if (st) {
        llmh_cli_error("export-lora", st);
        goto out;
    }
    size_t total = cfg->n_adapters + n_specs;
    if (total == 0) {
        fprintf(stderr, "llmhost: export-lora: no adapters: the manifest has no [[adapter]] and no --adapter was given\n");
        goto out;
    }
    ads = calloc(total, sizeof *ads);
    if (!ads) goto oom;
    for (size_t k = 0; k < total; k++) {
        llmh_lora_spec sp;
        if (k < cfg->n_adapters) {
            sp.name = cfg->adapters[k].name;
            sp.path = cfg->adapters[k].path;
            sp.scale = cfg->adapters[k].scale;
        } else {
            sp = specs[k - cfg->n_adapters];
        }
        for (size_t j = 0; j < n_ads; j++)
            if (!strcmp(ads[j].name, sp.name)) {
                fprintf(stderr, "llmhost: export-lora: adapter name '%s' is used twice\n", sp.name);
                goto out;
            }
        if ((st = llmh_lora_file_open(reg, &base, &sp, &ads[n_ads]))) {
            llmh_cli_error("export-lora", st);
            goto out;
        }
        n_ads++;
    }
    job.base = &base;
    job.tty = !llmh_cli.quiet && isatty(STDERR_FILENO);
    job.pairs = calloc(base.n_tensors, sizeof *job.pairs);
    job.n_pairs = calloc(base.n_tensors, sizeof *job.n_pairs);
    gt = calloc(base.n_tensors, sizeof *gt);
    if (!job.pairs || !job.n_pairs || !gt) goto oom;
    size_t n_merge = 0;
    for (size_t k = 0; k < n_ads; k++) {
        for (size_t j = 0; j < ads[k].n_pairs; j++) {
            size_t bi = ads[k].pairs[j].base_index;
            if (job.n_pairs[bi] == 64) {
                fprintf(stderr, "llmhost: export-lora: more than 64 adapters adapt '%s'\n", base.tensors[bi].name);
                goto out;
            }
            if (!job.pairs[bi]) {
                job.pairs[bi] = calloc(64, sizeof **job.pairs);
                if (!job.pairs[bi]) goto oom;
                n_merge++;
            }
            job.pairs[bi][job.n_pairs[bi]++] = (el_pair){&ads[k], ads[k].pairs[j].a, ads[k].pairs[j].b};
        }
    }
    for (size_t i = 0; i < base.n_tensors; i++) {
        const llmh_tensor_info *t = &base.tensors[i];
        gt[i].name = t->name;
        gt[i].type = t->type;
        gt[i].n_dims = t->n_dims;
        for (int d = 0; d < LLMH_MAX_DIMS; d++) gt[i].ne[d] = t->ne[d];
        gt[i].data = t->data;
        if (!job.n_pairs[i]) continue;
        gt[i].data = NULL;
        if (force != LLMH_DTYPE_COUNT) gt[i].type = force;
        else if (!requantizable(t->type)) {
            fprintf(stderr,
                    "llmhost: export-lora: tensor '%s' is %s, which the reference quantizer cannot write back; "
                    "pass --type f16 or --type f32\n",
                    t->name, llmh_dtype_name(t->type));
            goto out;
        }
    }
    if (!llmh_cli.quiet)
        fprintf(stderr, "llmhost: export-lora: %zu adapter%s, %zu of %zu tensors merged -> %s\n", n_ads,
                n_ads == 1 ? "" : "s", n_merge, base.n_tensors, out_path);
    llmh_gguf_write_params wp = {base.meta.items, base.meta.n, gt, base.n_tensors, el_fill, &job, 0};
    st = llmh_gguf_write(out_path, &wp);
    if (job.tty) fprintf(stderr, "\n");
    if (st) {
        llmh_cli_error("export-lora", st);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "llmhost: export-lora: out of memory\n");
out:
    if (job.pairs)
        for (size_t i = 0; i < base.n_tensors; i++) free(job.pairs[i]);
    free(job.pairs);
    free(job.n_pairs);
    free(gt);
    for (size_t k = 0; k < n_ads; k++) llmh_lora_file_close(&ads[k]);
    free(ads);
    llmh_lora_base_close(&base);
    llmh_registry_free(reg);
    llmh_manifest_free(m);
    return rc;
}

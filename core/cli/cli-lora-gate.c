/* cli-lora-gate.c — `llmhost lora-gate`: attach gate vectors to a GGUF-LoRA
 * adapter file for the gated router (docs/routers.md, "Gate vectors").
 *
 * The gate of layer l for token t is g = sigmoid(w_l . h_l[t] + b_l), h_l the
 * residual stream entering layer l. The output file is the adapter file with
 * every tensor and key copied, any previous gate replaced by
 *   adapter.gate.weight  F32 ne [n_embd, n_layer]  (column l = w_l)
 *   adapter.gate.bias    F32 ne [n_layer]
 *
 * Two ways to get (w, b):
 *  - explicit: --bias B gives w = 0, b = B on every layer (a constant gate
 *    sigmoid(B): B = 0 halves the adapter, +8/-8 is nearly on/off);
 *  - learned: --on ON.txt --off OFF.txt fits one logistic regression per
 *    layer on the base model's layer-input hidden states (the public hidden
 *    hook) of every token of the ON texts (label 1) and the OFF texts
 *    (label 0). Each non-empty line of a file is one text, evaluated as its
 *    own sequence. Features are standardized, the two classes weighted
 *    equally, the loss is the mean log-loss plus l2/2 |w|^2 (standardized
 *    units), minimized by full-batch gradient descent with momentum; (w, b)
 *    are folded back into raw units. The adapter is validated against the
 *    base model by loading it into the model's adapter store first. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli-lora-file.h"
#include "cli-model.h"
#include "llmh-fabric.h"
#include "llmh-gguf.h"

/* Hidden states collected per layer: rows of n_embd floats with a label each. */
typedef struct lg_data {
    int64_t n_layer, dim;
    float **x;        /* [n_layer] -> [n][dim] */
    size_t n, cap;    /* rows (the same for every layer) */
    unsigned char *y; /* [n] labels */
    size_t rows_before; /* rows when the current text started */
    int label;
    llmh_status err;
} lg_data;

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmhost lora-gate --config M.toml --adapter A.gguf -o A-gated.gguf\n"
            "                         (--on ON.txt --off OFF.txt [--l2 L] [--epochs N] | --bias B)\n"
            "\n"
            "Attach gate vectors for the gated router to a GGUF-LoRA adapter: per layer l and token t the\n"
            "adapter applies with g = sigmoid(w_l . h + b_l), h the hidden state entering layer l.\n"
            "\n"
            "  --on FILE, --off FILE   learn (w, b): one logistic regression per layer on the base model's\n"
            "                          hidden states of every token of the ON texts (gate 1) and the OFF\n"
            "                          texts (gate 0); one text per non-empty line\n"
            "  --l2 L                  L2 penalty on standardized weights (default 0.01)\n"
            "  --epochs N              gradient-descent steps per layer (default 400)\n"
            "  --bias B                no learning: w = 0, b = B on every layer (constant gate sigmoid(B))\n"
            "  -o, --output FILE       the gated adapter (any previous gate is replaced)\n"
            "  --config FILE, --set S.K=V   as the global options\n");
}

static llmh_status lg_grow(lg_data *d, size_t need) {
    if (need <= d->cap) return LLMH_OK;
    size_t cap = d->cap ? d->cap : 256;
    while (cap < need) cap *= 2;
    for (int64_t l = 0; l < d->n_layer; l++) {
        float *nx = realloc(d->x[l], cap * (size_t)d->dim * sizeof *nx);
        if (!nx) return llmh_lora_fail(LLMH_ERR_NO_MEMORY, "lora-gate: out of memory for hidden states");
        d->x[l] = nx;
    }
    unsigned char *ny = realloc(d->y, cap);
    if (!ny) return llmh_lora_fail(LLMH_ERR_NO_MEMORY, "lora-gate: out of memory for hidden states");
    d->y = ny;
    d->cap = cap;
    return LLMH_OK;
}

/* The hook: layer l's h (n_tok columns of dim floats) for the text being
 * evaluated; rows are appended once per token, layer 0 first. */
static void lg_hook(void *user, int32_t layer, const float *h, int64_t dim, int64_t n_tok) {
    lg_data *d = user;
    if (d->err || layer < 0 || layer >= d->n_layer) return;
    if (dim != d->dim || n_tok < 0) {
        d->err = llmh_lora_fail(LLMH_ERR_INTERNAL, "lora-gate: hidden hook gave dim %lld (model %lld)", (long long)dim,
                                (long long)d->dim);
        return;
    }
    size_t start = d->rows_before;
    if (layer == 0) {
        if ((d->err = lg_grow(d, d->n + (size_t)n_tok))) return;
        for (int64_t t = 0; t < n_tok; t++) d->y[d->n + (size_t)t] = (unsigned char)d->label;
        start = d->n;
        d->rows_before = d->n;
        d->n += (size_t)n_tok;
    }
    if (start + (size_t)n_tok > d->n) {
        d->err = llmh_lora_fail(LLMH_ERR_INTERNAL, "lora-gate: hidden hook: layer %d before layer 0", (int)layer);
        return;
    }
    memcpy(d->x[layer] + start * (size_t)dim, h, (size_t)n_tok * (size_t)dim * sizeof *h);
}

/* Evaluate every non-empty line of `path` as its own text with label `label`. */
static int lg_collect(llmh_cli_model *cm, const char *path, int label, lg_data *d, size_t *n_texts) {
    char *text = llmh_cli_read_file(path);
    if (!text) {
        fprintf(stderr, "llmhost: lora-gate: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    const llmh_tokenizer *tk;
    const llmh_tokenizer_iface *ti = llmh_model_tokenizer(cm->model, &tk);
    uint32_t flags = ti->add_bos_default(tk) ? LLMH_ENCODE_ADD_BOS : 0;
    int rc = 0;
    d->label = label;
    for (char *line = text, *next; line && *line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = 0;
        if (!len) continue;
        llmh_token *toks = NULL;
        size_t n = 0;
        llmh_status st = llmh_tokenize(cm->model, line, len, flags, &toks, &n);
        if (!st) st = llmh_session_truncate(cm->session, 0);
        if (!st && n) st = llmh_session_eval(cm->session, toks, n);
        free(toks);
        if (!st && d->err) st = d->err;
        if (st) {
            llmh_cli_error(path, st);
            rc = -1;
        }
        (*n_texts)++;
    }
    free(text);
    return rc;
}

/* One logistic regression: x [n][dim], y [n] -> w [dim], *b. Returns the
 * training accuracy at threshold 0.5. */
static double lg_fit(const float *x, const unsigned char *y, size_t n, int64_t dim, double l2, int epochs, float *w_out,
                     float *b_out) {
    size_t n1 = 0;
    for (size_t i = 0; i < n; i++) n1 += y[i];
    size_t n0 = n - n1;
    double c1 = n1 ? 0.5 / (double)n1 : 0, c0 = n0 ? 0.5 / (double)n0 : 0; /* class weights: each class sums to 1/2 */
    double *mean = calloc((size_t)dim, sizeof *mean), *sd = calloc((size_t)dim, sizeof *sd);
    double *w = calloc((size_t)dim, sizeof *w), *g = calloc((size_t)dim, sizeof *g), *v = calloc((size_t)dim, sizeof *v);
    double acc = -1;
    if (!mean || !sd || !w || !g || !v) goto done;
    for (size_t i = 0; i < n; i++)
        for (int64_t k = 0; k < dim; k++) mean[k] += x[i * (size_t)dim + (size_t)k];
    for (int64_t k = 0; k < dim; k++) mean[k] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (int64_t k = 0; k < dim; k++) {
            double t = x[i * (size_t)dim + (size_t)k] - mean[k];
            sd[k] += t * t;
        }
    for (int64_t k = 0; k < dim; k++) {
        sd[k] = sqrt(sd[k] / (double)n);
        if (!(sd[k] > 1e-12)) sd[k] = 0; /* a constant feature gets no weight */
    }
    /* step size from the curvature: the weighted log-loss Hessian is at most
     * 1/4 of the weighted second moment of the standardized features (plus
     * the bias column), whose largest eigenvalue a power iteration bounds */
    double lmax = 1.0;
    for (int64_t k = 0; k < dim; k++) v[k] = 1.0;
    for (int it = 0; it < 30; it++) {
        for (int64_t k = 0; k < dim; k++) g[k] = 0;
        for (size_t i = 0; i < n; i++) {
            const float *xi = x + i * (size_t)dim;
            double c = y[i] ? c1 : c0, p = 0;
            for (int64_t k = 0; k < dim; k++)
                if (sd[k] > 0) p += v[k] * ((xi[k] - mean[k]) / sd[k]);
            for (int64_t k = 0; k < dim; k++)
                if (sd[k] > 0) g[k] += c * p * ((xi[k] - mean[k]) / sd[k]);
        }
        double norm = 0, vn = 0;
        for (int64_t k = 0; k < dim; k++) norm += g[k] * g[k], vn += v[k] * v[k];
        norm = sqrt(norm);
        if (!(norm > 0)) break;
        lmax = norm / sqrt(vn);
        for (int64_t k = 0; k < dim; k++) v[k] = g[k] / norm;
    }
    for (int64_t k = 0; k < dim; k++) v[k] = 0;
    double b = 0, vb = 0, mom = 0.9, lr = 1.0 / (0.25 * (lmax > 1.0 ? lmax : 1.0) + l2);
    for (int e = 0; e < epochs; e++) {
        for (int64_t k = 0; k < dim; k++) g[k] = l2 * w[k];
        double gb = 0;
        for (size_t i = 0; i < n; i++) {
            const float *xi = x + i * (size_t)dim;
            double z = b;
            for (int64_t k = 0; k < dim; k++)
                if (sd[k] > 0) z += w[k] * ((xi[k] - mean[k]) / sd[k]);
            double p = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
            double r = (p - (double)y[i]) * (y[i] ? c1 : c0);
            gb += r;
            for (int64_t k = 0; k < dim; k++)
                if (sd[k] > 0) g[k] += r * ((xi[k] - mean[k]) / sd[k]);
        }
        for (int64_t k = 0; k < dim; k++) {
            v[k] = mom * v[k] - lr * g[k];
            w[k] += v[k];
        }
        vb = mom * vb - lr * gb;
        b += vb;
    }
    /* fold the standardization back: w_raw = w / sd, b_raw = b - sum w mean / sd */
    double braw = b;
    for (int64_t k = 0; k < dim; k++) {
        double wr = sd[k] > 0 ? w[k] / sd[k] : 0;
        w_out[k] = (float)wr;
        braw -= wr * mean[k];
    }
    *b_out = (float)braw;
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        double z = *b_out;
        for (int64_t k = 0; k < dim; k++) z += (double)w_out[k] * x[i * (size_t)dim + (size_t)k];
        right += (z >= 0) == (y[i] != 0);
    }
    acc = n ? (double)right / (double)n : 0;
done:
    free(mean);
    free(sd);
    free(w);
    free(g);
    free(v);
    return acc;
}


/* Write the adapter with gate tensors: every key, every tensor but an old gate. */
static llmh_status lg_write(llmh_registry *reg, const char *in_path, const char *out_path, const float *gw,
                            const float *gb, int64_t n_layer, int64_t dim) {
    llmh_plugin *fp = NULL;
    const llmh_format_iface *fi = NULL;
    llmh_model_file *mf = NULL;
    llmh_status st = llmh_lora_open_any(reg, in_path, &fp, &fi, &mf);
    if (st) return st;
    llmh_kv_list meta;
    const llmh_tensor_info *ti = NULL;
    size_t nt = 0;
    llmh_gguf_tensor *gt = NULL;
    if ((st = fi->get_metadata(mf, &meta)) || (st = fi->get_tensors(mf, &ti, &nt))) goto out;
    const llmh_value *src = llmh_kv_find(&meta, "llmh.source_format");
    if (!src || src->type != LLMH_V_STRING || src->v.s.len != 4 || memcmp(src->v.s.ptr, "gguf", 4)) {
        st = llmh_lora_fail(LLMH_ERR_UNSUPPORTED, "lora-gate: %s is not a GGUF-LoRA file", in_path);
        goto out;
    }
    gt = calloc(nt + 2, sizeof *gt);
    if (!gt) {
        st = llmh_lora_fail(LLMH_ERR_NO_MEMORY, "lora-gate: out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!strcmp(ti[i].name, "adapter.gate.weight") || !strcmp(ti[i].name, "adapter.gate.bias")) continue;
        gt[k].name = ti[i].name;
        gt[k].type = ti[i].type;
        gt[k].n_dims = ti[i].n_dims;
        for (int d = 0; d < LLMH_MAX_DIMS; d++) gt[k].ne[d] = ti[i].ne[d];
        gt[k].data = ti[i].data;
        k++;
    }
    gt[k] = (llmh_gguf_tensor){"adapter.gate.weight", LLMH_DTYPE_F32, 2, {dim, n_layer, 1, 1}, gw};
    gt[k + 1] = (llmh_gguf_tensor){"adapter.gate.bias", LLMH_DTYPE_F32, 1, {n_layer, 1, 1, 1}, gb};
    llmh_gguf_write_params wp = {meta.items, meta.n, gt, k + 2, NULL, NULL, 0};
    st = llmh_gguf_write(out_path, &wp);
out:
    free(gt);
    if (mf) fi->close(mf);
    if (fp) llmh_plugin_release(fp);
    return st;
}

int llmh_cmd_lora_gate(int argc, char **argv) {
    const char *adapter = NULL, *out_path = NULL, *on = NULL, *off = NULL, *bias_s = NULL;
    double l2 = 0.01;
    long epochs = 400;
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
            fprintf(stderr, "llmhost: lora-gate: unknown option '%s' or missing value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--adapter")) adapter = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out_path = v;
        else if (!strcmp(a, "--on")) on = v;
        else if (!strcmp(a, "--off")) off = v;
        else if (!strcmp(a, "--bias")) bias_s = v;
        else if (!strcmp(a, "--l2")) {
            l2 = strtod(v, &end);
            if (!end || *end || !(l2 >= 0 && l2 < 1e6)) {
                fprintf(stderr, "llmhost: lora-gate: --l2 must be a number >= 0, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--epochs")) {
            epochs = strtol(v, &end, 10);
            if (!end || *end || epochs < 1 || epochs > 1000000) {
                fprintf(stderr, "llmhost: lora-gate: --epochs must be 1..1000000, not '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "llmhost: lora-gate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    double bias = 0;
    if (bias_s) {
        char *end = NULL;
        bias = strtod(bias_s, &end);
        if (!end || *end || !isfinite(bias) || fabs(bias) > 1e6) {
            fprintf(stderr, "llmhost: lora-gate: --bias must be a finite number, not '%s'\n", bias_s);
            return 2;
        }
    }
    if (!adapter || !out_path || (!bias_s && (!on || !off)) || (bias_s && (on || off))) {
        fprintf(stderr, "llmhost: lora-gate: needs --adapter, -o and either --on and --off, or --bias (see --help)\n");
        return 2;
    }
    struct stat sb;
    if (stat(adapter, &sb) != 0 || S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "llmhost: lora-gate: %s: %s\n", adapter,
                S_ISDIR(sb.st_mode) ? "a directory; lora-gate writes GGUF-LoRA files (convert PEFT adapters first)"
                                    : strerror(errno));
        return 1;
    }
    llmh_cli_model cm;
    if (llmh_cli_model_open(&cm, NULL)) return 1;
    int rc = 1;
    const llmh_model_desc *md = llmh_model_describe(cm.model);
    int64_t n_layer = md->n_layer, dim = md->n_embd;
    lg_data d;
    memset(&d, 0, sizeof d);
    d.n_layer = n_layer;
    d.dim = dim;
    float *gw = calloc((size_t)n_layer * (size_t)dim, sizeof *gw), *gb = calloc((size_t)n_layer, sizeof *gb);
    d.x = calloc((size_t)n_layer, sizeof *d.x);
    if (!gw || !gb || !d.x) {
        fprintf(stderr, "llmhost: lora-gate: out of memory\n");
        goto out;
    }
    /* validate the adapter against the model (the core's loader) */
    llmh_status st = llmh_adapter_load(cm.model, "lora-gate-input", adapter, 1.0f, NULL);
    if (!st) st = llmh_adapter_unload(cm.model, "lora-gate-input");
    if (st) {
        llmh_cli_error("lora-gate", st);
        goto out;
    }
    if (bias_s) {
        for (int64_t l = 0; l < n_layer; l++) gb[l] = (float)bias;
    } else {
        llmh_session_clear_adapters(cm.session); /* the base model's hidden states */
        if ((st = llmh_session_set_hidden_hook(cm.session, lg_hook, &d))) {
            llmh_cli_error("lora-gate: hidden hook", st);
            goto out;
        }
        size_t n_on = 0, n_off = 0;
        if (lg_collect(&cm, on, 1, &d, &n_on) || lg_collect(&cm, off, 0, &d, &n_off)) goto out;
        llmh_session_set_hidden_hook(cm.session, NULL, NULL);
        size_t pos = 0;
        for (size_t i = 0; i < d.n; i++) pos += d.y[i];
        if (pos == 0 || pos == d.n) {
            fprintf(stderr, "llmhost: lora-gate: need tokens from both files (%zu ON, %zu OFF tokens)\n", pos, d.n - pos);
            goto out;
        }
        if (!llmh_cli.quiet)
            fprintf(stderr, "llmhost: lora-gate: %zu ON texts (%zu tokens), %zu OFF texts (%zu tokens), %lld layers\n",
                    n_on, pos, n_off, d.n - pos, (long long)n_layer);
        for (int64_t l = 0; l < n_layer; l++) {
            double acc = lg_fit(d.x[l], d.y, d.n, dim, l2, (int)epochs, gw + (size_t)l * (size_t)dim, &gb[l]);
            if (acc < 0) {
                fprintf(stderr, "llmhost: lora-gate: out of memory fitting layer %lld\n", (long long)l);
                goto out;
            }
            if (!llmh_cli.quiet)
                fprintf(stderr, "  layer %lld: training accuracy %.1f%%\n", (long long)l, 100.0 * acc);
        }
    }
    if ((st = lg_write(cm.registry, adapter, out_path, gw, gb, n_layer, dim))) {
        llmh_cli_error("lora-gate", st);
        goto out;
    }
    if (!llmh_cli.quiet) fprintf(stderr, "llmhost: lora-gate: wrote %s\n", out_path);
    rc = 0;
out:
    if (d.x)
        for (int64_t l = 0; l < n_layer; l++) free(d.x[l]);
    free(d.x);
    free(d.y);
    free(gw);
    free(gb);
    llmh_cli_model_close(&cm);
    return rc;
}

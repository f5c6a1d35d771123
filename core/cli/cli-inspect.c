/* cli-inspect.c — `llmhost inspect FILE_OR_DIR`: open a model with the best
 * format plugin (or --format NAME) and describe it: architecture and
 * hyper-parameters, tokenizer summary, tensor table, bytes vs file size;
 * --kv dumps every metadata key (arrays abbreviated). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void inspect_usage(FILE *out) {
    fprintf(out,
            "usage: llmhost inspect [--kv] [--no-tensors] [--format NAME] FILE_OR_DIR\n"
            "\n"
            "Describe a model file (GGUF, ...) or a Hugging Face directory: architecture and\n"
            "hyper-parameters, tokenizer, tensor table (name, type, shape in ggml ne order,\n"
            "bytes) and total tensor bytes against the size on disk.\n"
            "\n"
            "  --kv           dump every metadata key/value (arrays abbreviated)\n"
            "  --no-tensors   leave out the tensor table\n"
            "  --format NAME  use this format plugin instead of the best match\n");
}

/* ------------------------------------------------------------------------ */
/* Value printing                                                            */
/* ------------------------------------------------------------------------ */
static const char *vtype_name(llmh_vtype t) {
    switch (t) {
    case LLMH_V_U8: return "u8";
    case LLMH_V_I8: return "i8";
    case LLMH_V_U16: return "u16";
    case LLMH_V_I16: return "i16";
    case LLMH_V_U32: return "u32";
    case LLMH_V_I32: return "i32";
    case LLMH_V_F32: return "f32";
    case LLMH_V_BOOL: return "bool";
    case LLMH_V_STRING: return "string";
    case LLMH_V_ARRAY: return "array";
    case LLMH_V_U64: return "u64";
    case LLMH_V_I64: return "i64";
    case LLMH_V_F64: return "f64";
    default: return "?";
    }
}

/* A string, quoted and escaped, cut after `max` bytes. */
static void print_str(FILE *out, const char *s, uint64_t len, size_t max) {
    fputc('"', out);
    size_t n = len > max ? max : (size_t)len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%02x", c);
        else fputc(c, out);
    }
    fputc('"', out);
    if (len > max) fprintf(out, "... (%llu bytes)", (unsigned long long)len);
}

static void print_value(FILE *out, const llmh_value *v, int depth) {
    switch (v->type) {
    case LLMH_V_U8: case LLMH_V_U16: case LLMH_V_U32: case LLMH_V_U64:
        fprintf(out, "%llu", (unsigned long long)v->v.u);
        break;
    case LLMH_V_I8: case LLMH_V_I16: case LLMH_V_I32: case LLMH_V_I64:
        fprintf(out, "%lld", (long long)v->v.i);
        break;
    case LLMH_V_F32: fprintf(out, "%.9g", v->v.f); break;
    case LLMH_V_F64: fprintf(out, "%.17g", v->v.f); break;
    case LLMH_V_BOOL: fputs(v->v.b ? "true" : "false", out); break;
    case LLMH_V_STRING: print_str(out, v->v.s.ptr, v->v.s.len, depth ? 24 : 80); break;
    case LLMH_V_ARRAY: {
        const uint64_t show = depth ? 3 : 6;
        fprintf(out, "[%s x %llu]", vtype_name(v->v.arr.elem_type), (unsigned long long)v->v.arr.n);
        if (v->v.arr.n == 0 || !v->v.arr.items) break;
        fputs(" {", out);
        for (uint64_t i = 0; i < v->v.arr.n && i < show; i++) {
            if (i) fputs(", ", out);
            print_value(out, &v->v.arr.items[i], depth + 1);
        }
        if (v->v.arr.n > show) fputs(", ...", out);
        fputc('}', out);
        break;
    }
    default: fputs("?", out); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Metadata helpers                                                          */
/* ------------------------------------------------------------------------ */
static const llmh_value *kv_arch(const llmh_kv_list *kv, const char *arch, const char *suffix) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return llmh_kv_find(kv, key);
}

/* Copy a string value into buf (NUL-terminated), or `def`. */
static const char *kv_str(const llmh_kv_list *kv, const char *key, char *buf, size_t cap, const char *def) {
    const llmh_value *v = llmh_kv_find(kv, key);
    if (!v || v->type != LLMH_V_STRING) return def;
    size_t n = v->v.s.len < cap - 1 ? (size_t)v->v.s.len : cap - 1;
    memcpy(buf, v->v.s.ptr, n);
    buf[n] = 0;
    return buf;
}

static int kv_int(const llmh_kv_list *kv, const char *key, int64_t *out) {
    const llmh_value *v = llmh_kv_find(kv, key);
    return v && v->type != LLMH_V_STRING && v->type != LLMH_V_ARRAY && llmh_value_as_i64(v, out);
}

static void human_bytes(uint64_t b, char *buf, size_t cap) {
    if (b >= (UINT64_C(1) << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (double)(UINT64_C(1) << 30));
    else if (b >= (UINT64_C(1) << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (double)(UINT64_C(1) << 20));
    else if (b >= 1024) snprintf(buf, cap, "%.1f KiB", (double)b / 1024.0);
    else snprintf(buf, cap, "%llu B", (unsigned long long)b);
}

/* Size on disk: the file, or for a directory its *.safetensors / *.gguf /
 * *.bin files (the weights). */
static uint64_t disk_size(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return (uint64_t)sb.st_size;
    uint64_t total = 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        int weights = (n > 12 && !strcmp(de->d_name + n - 12, ".safetensors")) ||
                      (n > 5 && !strcmp(de->d_name + n - 5, ".gguf")) ||
                      (n > 4 && !strcmp(de->d_name + n - 4, ".bin"));
        if (!weights) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size;
    }
    closedir(d);
    return total;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */
/* ------------------------------------------------------------------------ */
static void print_hparams(const llmh_kv_list *kv, const char *arch) {
    static const char *const keys[] = {
        "context_length", "embedding_length", "block_count", "feed_forward_length",
        "attention.head_count", "attention.head_count_kv", "attention.key_length",
        "attention.value_length", "rope.dimension_count", "rope.freq_base",
        "attention.layer_norm_rms_epsilon", "attention.sliding_window", "rope.scaling.type",
        "rope.scaling.factor", "rope.scaling.original_context_length", "vocab_size",
    };
    printf("hyper-parameters:\n");
    int any = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const llmh_value *v = kv_arch(kv, arch, keys[i]);
        if (!v) continue;
        printf("  %-36s ", keys[i]);
        print_value(stdout, v, 0);
        putchar('\n');
        any = 1;
    }
    if (!any) printf("  (none under '%s.')\n", arch);
}

static void print_token(const llmh_kv_list *kv, const char *label, const char *key) {
    int64_t id;
    if (!kv_int(kv, key, &id)) return;
    if (id == -1 || id == (int64_t)UINT32_MAX) { /* GGUF's "no such token" */
        printf("  %-36s (none)\n", label);
        return;
    }
    printf("  %-36s %lld", label, (long long)id);
    const llmh_value *toks = llmh_kv_find(kv, "tokenizer.ggml.tokens");
    if (toks && toks->type == LLMH_V_ARRAY && toks->v.arr.items && id >= 0 &&
        (uint64_t)id < toks->v.arr.n && toks->v.arr.items[id].type == LLMH_V_STRING) {
        putchar(' ');
        print_str(stdout, toks->v.arr.items[id].v.s.ptr, toks->v.arr.items[id].v.s.len, 40);
    }
    putchar('\n');
}

static void print_tokenizer(const llmh_kv_list *kv, const char *arch, const llmh_tensor_info *t, size_t n_t) {
    char buf[512];
    printf("tokenizer:\n");
    const char *model = kv_str(kv, "tokenizer.ggml.model", buf, sizeof buf, NULL);
    const llmh_value *tj = llmh_kv_find(kv, "llmh.tokenizer_json");
    if (model) {
        printf("  %-36s %s", "model", model);
        const char *pre = kv_str(kv, "tokenizer.ggml.pre", buf, sizeof buf, NULL);
        if (pre) printf(" (pre-tokenizer %s)", pre);
        putchar('\n');
    } else if (tj && tj->type == LLMH_V_STRING) {
        printf("  %-36s Hugging Face tokenizer.json: %.*s\n", "model", (int)tj->v.s.len, tj->v.s.ptr);
    } else {
        printf("  %-36s (none in the metadata)\n", "model");
    }
    int64_t vocab = -1;
    const char *src = "";
    const llmh_value *toks = llmh_kv_find(kv, "tokenizer.ggml.tokens");
    if (toks && toks->type == LLMH_V_ARRAY) {
        vocab = (int64_t)toks->v.arr.n;
        src = "tokenizer.ggml.tokens";
    } else {
        const llmh_value *v = arch ? kv_arch(kv, arch, "vocab_size") : NULL;
        if (v && llmh_value_as_i64(v, &vocab)) {
            src = "config vocab_size";
        } else {
            for (size_t i = 0; i < n_t; i++)
                if (!strcmp(t[i].name, "token_embd.weight")) {
                    vocab = t[i].ne[1];
                    src = "token_embd.weight rows";
                }
        }
    }
    if (vocab >= 0) printf("  %-36s %lld (%s)\n", "vocab size", (long long)vocab, src);
    const llmh_value *merges = llmh_kv_find(kv, "tokenizer.ggml.merges");
    if (merges && merges->type == LLMH_V_ARRAY)
        printf("  %-36s %llu\n", "merges", (unsigned long long)merges->v.arr.n);
    print_token(kv, "bos", "tokenizer.ggml.bos_token_id");
    print_token(kv, "eos", "tokenizer.ggml.eos_token_id");
    print_token(kv, "eot", "tokenizer.ggml.eot_token_id");
    print_token(kv, "padding", "tokenizer.ggml.padding_token_id");
    const llmh_value *ab = llmh_kv_find(kv, "tokenizer.ggml.add_bos_token");
    if (ab && ab->type == LLMH_V_BOOL) printf("  %-36s %s\n", "add bos", ab->v.b ? "yes" : "no");
    const llmh_value *ct = llmh_kv_find(kv, "tokenizer.chat_template");
    if (ct && ct->type == LLMH_V_STRING)
        printf("  %-36s yes (%llu bytes)\n", "chat template", (unsigned long long)ct->v.s.len);
    else
        printf("  %-36s no\n", "chat template");
}

static void print_tensors(const llmh_tensor_info *t, size_t n, int table) {
    uint64_t total = 0, params = 0;
    size_t w = 4;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(t[i].name);
        if (l > w) w = l;
    }
    if (w > 60) w = 60;
    if (table && n) {
        printf("tensors (%zu; shape in ggml ne order, innermost first):\n", n);
        printf("  %-*s  %-5s  %-24s %12s\n", (int)w, "name", "type", "shape", "bytes");
    }
    for (size_t i = 0; i < n; i++) {
        total += t[i].size;
        uint64_t el = 1;
        for (int d = 0; d < LLMH_MAX_DIMS; d++) el *= (uint64_t)t[i].ne[d];
        params += el;
        if (!table) continue;
        char shape[96];
        int o = snprintf(shape, sizeof shape, "[");
        int nd = t[i].n_dims >= 1 && t[i].n_dims <= LLMH_MAX_DIMS ? t[i].n_dims : LLMH_MAX_DIMS;
        for (int d = 0; d < nd && o > 0 && (size_t)o < sizeof shape; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "", (long long)t[i].ne[d]);
        if (o > 0 && (size_t)o < sizeof shape) snprintf(shape + o, sizeof shape - (size_t)o, "]");
        printf("  %-*s  %-5s  %-24s %12llu%s\n", (int)w, t[i].name, llmh_dtype_name(t[i].type), shape,
               (unsigned long long)t[i].size, t[i].file_offset == 0 && t[i].size ? "  (plugin memory: converted, not mapped)" : "");
    }
    if (!table) printf("tensors: %zu\n", n);
    char hb[32];
    human_bytes(total, hb, sizeof hb);
    printf("parameters: %llu\n", (unsigned long long)params);
    printf("total tensor bytes: %llu (%s)\n", (unsigned long long)total, hb);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */
int llmh_cmd_inspect(int argc, char **argv) {
    int dump_kv = 0, table = 1;
    const char *format = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--kv")) dump_kv = 1;
        else if (!strcmp(a, "--no-tensors")) table = 0;
        else if (!strcmp(a, "--format")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "llmhost: inspect: --format needs a plugin name\n");
                return 2;
            }
            format = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            inspect_usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "llmhost: inspect: unknown option '%s'\n", a);
            inspect_usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "llmhost: inspect: one FILE_OR_DIR at a time ('%s' is extra)\n", a);
            return 2;
        }
    }
    if (!path) {
        inspect_usage(stderr);
        return 2;
    }

    llmh_manifest *m = NULL;
    if (llmh_cli.config) {
        m = llmh_cli_load_manifest(NULL); /* only for its [plugins] paths */
        if (!m) return 1;
    }
    llmh_registry *reg = llmh_cli_registry(m);
    if (!reg) {
        llmh_manifest_free(m);
        return 1;
    }
    int rc = 1;
    llmh_plugin *plugin = NULL;
    llmh_model_file *file = NULL;
    const llmh_format_iface *fi = NULL;
    llmh_status st = format ? llmh_registry_get(reg, LLMH_PLUGIN_FORMAT, format, &plugin)
                            : llmh_registry_get_format_for(reg, path, &plugin);
    if (st != LLMH_OK) {
        llmh_cli_error(format ? "format plugin" : "inspect", st);
        goto done;
    }
    fi = llmh_plugin_iface(plugin);
    st = fi->open(llmh_plugin_state(plugin), path, NULL, &file);
    if (st != LLMH_OK) {
        llmh_cli_error("inspect", st);
        goto done;
    }
    llmh_kv_list kv = {NULL, 0};
    const llmh_tensor_info *t = NULL;
    size_t n_t = 0;
    st = fi->get_metadata(file, &kv);
    if (st == LLMH_OK) st = fi->get_tensors(file, &t, &n_t);
    if (st != LLMH_OK) {
        llmh_cli_error("inspect", st);
        goto done;
    }

    const llmh_plugin_desc *d = llmh_plugin_descriptor(plugin);
    char arch_buf[128], name_buf[256], src_buf[64], hb[32];
    const char *arch = kv_str(&kv, "general.architecture", arch_buf, sizeof arch_buf, NULL);
    uint64_t on_disk = disk_size(path);
    human_bytes(on_disk, hb, sizeof hb);
    printf("file:          %s (%s on disk)\n", path, hb);
    printf("format:        %s (plugin %s %s, %s)\n",
           kv_str(&kv, "llmh.source_format", src_buf, sizeof src_buf, d->name), d->name, d->version,
           llmh_plugin_path(plugin));
    printf("architecture:  %s\n", arch ? arch : "(none: general.architecture is absent)");
    printf("name:          %s\n", kv_str(&kv, "general.name", name_buf, sizeof name_buf, "(none)"));
    int64_t ft;
    if (kv_int(&kv, "general.file_type", &ft)) printf("file type:     %lld\n", (long long)ft);
    printf("metadata keys: %zu\n", kv.n);
    if (arch) print_hparams(&kv, arch);
    print_tokenizer(&kv, arch, t, n_t);
    print_tensors(t, n_t, table);
    uint64_t total = 0;
    for (size_t i = 0; i < n_t; i++) total += t[i].size;
    if (on_disk > 0)
        printf("size on disk: %llu bytes: tensors are %.1f%% of it (the rest is metadata%s)\n",
               (unsigned long long)on_disk, 100.0 * (double)total / (double)on_disk,
               n_t ? ", tensor infos and padding" : "");

    if (dump_kv) {
        printf("metadata (%zu keys):\n", kv.n);
        size_t w = 8;
        for (size_t i = 0; i < kv.n; i++) {
            size_t l = strlen(kv.items[i].key);
            if (l > w) w = l;
        }
        if (w > 48) w = 48;
        for (size_t i = 0; i < kv.n; i++) {
            printf("  %-*s %-6s ", (int)w, kv.items[i].key, vtype_name(kv.items[i].value.type));
            print_value(stdout, &kv.items[i].value, 0);
            putchar('\n');
        }
    }
    rc = 0;

done:
    if (file) fi->close(file);
    if (plugin) llmh_plugin_release(plugin);
    llmh_registry_free(reg);
    llmh_manifest_free(m);
    return rc;
}

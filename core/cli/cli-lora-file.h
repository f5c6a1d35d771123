/* cli-lora-file.h — what `llmhost export-lora` and `llmhost lora-gate` share:
 * the base GGUF and LoRA adapter files opened through the format plugins,
 * adapter tensors matched to the base model's tensors and validated, and
 * adapter matrices widened to F32 (PEFT q/k lora_B rows permuted for llama).
 * Functions returning llmh_status set llmh_last_error() with a message naming
 * the file and tensor. */
#ifndef LLMH_CLI_LORA_FILE_H
#define LLMH_CLI_LORA_FILE_H

#include <stdbool.h>

#include "cli.h"

/* An adapter as named on the command line or in the manifest (borrowed strings). */
typedef struct llmh_lora_spec {
    const char *name;
    const char *path;
    float scale;
} llmh_lora_spec;

/* The base model: a GGUF file, mapped by the gguf format plugin. */
typedef struct llmh_lora_base {
    llmh_plugin *fp;
    const llmh_format_iface *fi;
    llmh_model_file *mf;
    llmh_kv_list meta;
    const llmh_tensor_info *tensors;
    size_t n_tensors;
    char arch[64];
    int64_t n_layer, n_embd, n_head, n_head_kv;
} llmh_lora_base;

/* One adapted projection: lora_a ne [in, r], lora_b ne [r, out]. */
typedef struct llmh_lora_pairref {
    size_t base_index;           /* into llmh_lora_base.tensors */
    const llmh_tensor_info *a, *b;
} llmh_lora_pairref;

typedef struct llmh_lora_file {
    char *name, *path;
    float scale, alpha;
    bool peft;                   /* a PEFT directory (else GGUF-LoRA) */
    llmh_plugin *fp;
    const llmh_format_iface *fi;
    llmh_model_file *mf;
    llmh_kv_list meta;
    const llmh_tensor_info *tensors;
    size_t n_tensors;
    llmh_lora_pairref *pairs;
    size_t n_pairs;
    const llmh_tensor_info *gate_w, *gate_b; /* adapter.gate.weight / .bias, or NULL */
} llmh_lora_file;

/* llmh_set_error(fmt, ...) and return st. */
llmh_status llmh_lora_fail(llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Parse NAME=PATH[:SCALE] (SCALE a finite number; the argument is borrowed).
 * Prints the error and returns -1 on a bad spec. */
int llmh_lora_parse_spec(const char *arg, llmh_lora_spec *out);

/* Open any model or adapter file with the format plugin that claims it. */
llmh_status llmh_lora_open_any(llmh_registry *reg, const char *path, llmh_plugin **fp, const llmh_format_iface **fi,
                               llmh_model_file **mf);

/* Open the base model `path` (must be a GGUF file). */
llmh_status llmh_lora_base_open(llmh_registry *reg, const char *path, llmh_lora_base *out);
void llmh_lora_base_close(llmh_lora_base *b);

/* Open and validate an adapter against `base`: every tensor is a lora_a /
 * lora_b of a 2-D base tensor (or a gate tensor), pairs complete, shapes
 * agree, ranks equal; GGUF keys general.type/adapter.type/architecture agree. */
llmh_status llmh_lora_file_open(llmh_registry *reg, const llmh_lora_base *base, const llmh_lora_spec *spec,
                                llmh_lora_file *out);
void llmh_lora_file_close(llmh_lora_file *f);

/* The effective scale for rank r: (scale * alpha) / r in f32, or scale when alpha is 0. */
float llmh_lora_scale(const llmh_lora_file *f, int64_t r);

/* A and B of one pair as malloc'd F32 row-major arrays: *A [r][in], *B [out][r]. */
llmh_status llmh_lora_pair_f32(const llmh_lora_file *f, const llmh_lora_base *base, const char *base_name,
                               const llmh_tensor_info *a, const llmh_tensor_info *b, float **A, float **B);

#endif

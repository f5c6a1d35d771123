/*
 * llmh.h — the llmhost core library API (libllmh).
 *
 * Applications (the llmhost program, servers, tests) use this header.
 * Plugins never do: they include only the SDK (llmh-plugin.h).
 *
 * Conventions: fallible calls return llmh_status (0 ok, negative error) and
 * set a thread-local message readable with llmh_last_error(). Objects are
 * opaque handles created by llmh_<x>_create/_load and freed by
 * llmh_<x>_free (NULL is a no-op). Every pointer parameter is borrowed unless
 * its comment says otherwise.
 */
#ifndef LLMH_H
#define LLMH_H

#include "llmh-plugin.h"

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LLMH_BUILDING_CORE)
#define LLMH_API __attribute__((visibility("default")))
#else
#define LLMH_API
#endif

/* ======================================================================== */
/* Versions, status, errors, logging                                         */
/* ======================================================================== */
LLMH_API const char *llmh_version(void);             /* "0.1.0" */
LLMH_API const char *llmh_status_str(llmh_status s); /* "invalid argument", never NULL */

/* The calling thread's last error message ("" when none). Valid until the
 * next llmhost call on this thread. */
LLMH_API const char *llmh_last_error(void);
/* Set/clear the calling thread's error message (printf-style). */
LLMH_API void llmh_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
LLMH_API void llmh_clear_error(void);

/* Log callback; `component` is "core", "registry" or a plugin name. The
 * library never prints: with no callback installed, logs are dropped.
 * Thread-safe; the callback may be called from any thread. */
typedef void (*llmh_log_fn)(llmh_log_level level, const char *component, const char *msg,
                            void *user);
LLMH_API void llmh_log_set(llmh_log_fn fn, void *user, llmh_log_level min_level);
LLMH_API void llmh_log(llmh_log_level level, const char *component, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The host API handed to plugins (static storage). */
LLMH_API const llmh_host_api *llmh_host_api_get(void);

/* Reference dequantize/quantize (same as the host API's; the scalar oracle). */
LLMH_API llmh_status llmh_dequantize(llmh_dtype type, const void *src, float *dst, int64_t n);
LLMH_API llmh_status llmh_quantize(llmh_dtype type, const float *src, void *dst, int64_t n);

/* ======================================================================== */
/* Plugin registry                                                           */
/* ======================================================================== */
typedef struct llmh_registry llmh_registry;
typedef struct llmh_plugin llmh_plugin; /* a loaded, initialized plugin (ref-counted) */

/* What discovery learned about one plugin file, without keeping it loaded. */
typedef struct llmh_plugin_info {
    const char *path;         /* absolute path of the .so */
    llmh_plugin_kind kind;
    const char *name;
    const char *version;
    const char *license;      /* "" when absent */
    const char *description;  /* "" when absent */
    uint16_t abi_major, abi_minor;
    int32_t score;
    const char *const *provides; /* samplers: sampler names; else NULL */
} llmh_plugin_info;

/* A file that looked like a plugin and was refused, and why. */
typedef struct llmh_plugin_refusal {
    const char *path;
    const char *reason;       /* e.g. "ABI mismatch: plugin 2.0, host 1.0" */
} llmh_plugin_refusal;

LLMH_API llmh_status llmh_registry_create(llmh_registry **out);
/* Frees the registry; plugins still referenced stay loaded until released. */
LLMH_API void llmh_registry_free(llmh_registry *reg);
/* Add a search directory or a single .so file (searched before env/install). */
LLMH_API llmh_status llmh_registry_add_path(llmh_registry *reg, const char *path);
/* Discover plugins: added paths, then $LLMH_PLUGIN_PATH (':'-separated), then
 * the install dir (and <exe>/../lib/llmhost/plugins). Duplicate names of one
 * kind: the first found wins, later ones are refused. Idempotent. */
LLMH_API llmh_status llmh_registry_scan(llmh_registry *reg);
LLMH_API size_t llmh_registry_count(const llmh_registry *reg);
/* Valid until the registry is freed or rescanned after llmh_registry_add_path. */
LLMH_API const llmh_plugin_info *llmh_registry_info(const llmh_registry *reg, size_t i);
LLMH_API size_t llmh_registry_refused_count(const llmh_registry *reg);
LLMH_API const llmh_plugin_refusal *llmh_registry_refused(const llmh_registry *reg, size_t i);

/* Load (or reference again) plugin `name` of `kind`; for samplers `name` may
 * be any name in a plugin's `names` list. *out must be released. */
LLMH_API llmh_status llmh_registry_get(llmh_registry *reg, llmh_plugin_kind kind,
                                       const char *name, llmh_plugin **out);
/* Pick the best plugin of `kind` for "auto": highest probe/score. For FORMAT
 * uses probe_file(path); for TOKENIZER probe(meta). */
LLMH_API llmh_status llmh_registry_get_format_for(llmh_registry *reg, const char *path,
                                                  llmh_plugin **out);
LLMH_API llmh_status llmh_registry_get_tokenizer_for(llmh_registry *reg, const llmh_kv_list *meta,
                                                     llmh_plugin **out);
/* Load every plugin of `kind`, e.g. for a conformance suite. *out is an array
 * of n plugins (free with free() after releasing each). Fails when any
 * plugin of the kind fails init(). */
LLMH_API llmh_status llmh_registry_get_all(llmh_registry *reg, llmh_plugin_kind kind,
                                           llmh_plugin ***out, size_t *n);

LLMH_API void llmh_plugin_retain(llmh_plugin *p);
/* Drop a reference; the last one calls fini() and dlclose(). */
LLMH_API void llmh_plugin_release(llmh_plugin *p);
LLMH_API const llmh_plugin_desc *llmh_plugin_descriptor(const llmh_plugin *p);
LLMH_API const void *llmh_plugin_iface(const llmh_plugin *p);
LLMH_API void *llmh_plugin_state(const llmh_plugin *p);
LLMH_API const char *llmh_plugin_path(const llmh_plugin *p);
/* Number of plugins currently loaded (dlopen'ed) across all registries. */
LLMH_API size_t llmh_plugins_loaded(void);

/* Load one file and validate its descriptor, without printing. On success
 * *info_out's strings (and provides[]) point into `buf` (buf may be NULL only
 * when info_out is NULL; too small a buffer gives LLMH_ERR_INVALID_ARG). On
 * refusal returns an error whose message names the file and the reason, and
 * `buf` (when given) receives the reason. */
LLMH_API llmh_status llmh_plugin_check(const char *path, llmh_plugin_info *info_out,
                                       char *buf, size_t buf_size);

/* ======================================================================== */
/* Manifest (TOML)                                                           */
/* ======================================================================== */
typedef struct llmh_adapter_config {
    const char *name;
    const char *path;         /* absolute */
    const char *ns;           /* namespace or NULL */
    float scale;              /* default 1.0 */
} llmh_adapter_config;

/* The resolved manifest. Strings are owned by the manifest object. Paths are
 * absolute (resolved against the manifest file that set them). */
typedef struct llmh_config {
    const char *file;              /* the manifest's absolute path */
    struct {
        const char *path;          /* file or HF directory; with url and no path: its cache location */
        const char *format;        /* "auto" (default) or a format plugin name */
        int64_t context;           /* KV cache size in tokens (default 4096; a warning is logged past the training context) */
        const char *kv_type;       /* KV cache element type: "f16" (default, as llama.cpp) or "f32" */
        const char *adapter_type;  /* LoRA adapter storage: "auto" (default: the backend's choice), "f32", "f16", "bf16", "q8_0" */
        llmh_kv_list options;      /* every [model] key (for the format plugin) */
        /* Download (llmh-fetch.h): llmh_model_load fetches what is missing into path. */
        const char *url;           /* file URL, or the base URL of files; hf:// expanded; NULL when none */
        const char *sha256;        /* expected SHA-256 of url (lower-case hex), or NULL */
        int64_t size;              /* expected size of url in bytes, or -1 */
        const struct llmh_model_file {
            const char *name;      /* file name inside the directory model.path */
            const char *url;       /* where it is fetched from */
            const char *sha256;    /* lower-case hex, or NULL */
            int64_t size;          /* or -1 */
        } *files;                  /* [model] files: an HF directory fetched file by file */
        size_t n_files;
    } model;
    struct {
        const char *plugin;        /* default "cpu" */
        int32_t threads;           /* default 0 = backend default */
        int32_t device;            /* default -1 = best */
        llmh_kv_list options;      /* every [backend] key */
    } backend;
    struct {
        const char *plugin;        /* default "auto" */
        llmh_kv_list options;
    } tokenizer;
    struct {
        const char *const *chain;  /* default {"greedy"} */
        size_t n_chain;
        llmh_kv_list params;       /* every [sampler] key except chain */
    } sampler;
    struct {
        int32_t max_tokens;        /* default 256 (-1 = until EOS/context full) */
        const char *const *stop;   /* stop strings */
        size_t n_stop;
        const char *system;        /* chat system prompt or NULL */
        const char *chat_template; /* override template text or NULL */
    } generate;
    const llmh_adapter_config *adapters;
    size_t n_adapters;
    struct {
        const char *plugin;        /* default "static" */
        llmh_kv_list params;
    } router;
    struct {
        const char *const *paths;  /* plugin search paths (absolute) */
        size_t n_paths;
    } plugins;
} llmh_config;

typedef struct llmh_manifest llmh_manifest;

/* Parse a manifest and everything it includes. Errors name file:line:column
 * and the key ("qwen.toml:7:1: unknown key 'thread' in [backend]"). */
LLMH_API llmh_status llmh_manifest_load(const char *path, llmh_manifest **out);
/* Same from memory; `name` is used in messages and relative paths resolve
 * against `base_dir` (NULL = cwd). */
LLMH_API llmh_status llmh_manifest_parse(const char *text, size_t len, const char *name,
                                         const char *base_dir, llmh_manifest **out);
/* Apply one override "section.key=value" (value in TOML syntax), as on the
 * command line (--set backend.threads=4). */
LLMH_API llmh_status llmh_manifest_set(llmh_manifest *m, const char *assignment);
LLMH_API void llmh_manifest_free(llmh_manifest *m);
LLMH_API const llmh_config *llmh_manifest_config(const llmh_manifest *m);
/* Where a key was set: "section.key" -> file, line, column (1-based). Returns
 * 0 when unknown. Used to report plugin-specific key errors. */
LLMH_API int llmh_manifest_where(const llmh_manifest *m, const char *dotted_key,
                                 const char **file, int *line, int *col);
/* Write the resolved manifest as TOML (for --dry-run). */
LLMH_API void llmh_manifest_dump(const llmh_manifest *m, FILE *out);

/* ======================================================================== */
/* Model, session, generation                                                */
/* ======================================================================== */
typedef struct llmh_model llmh_model;
typedef struct llmh_session llmh_session;

typedef struct llmh_model_params {
    llmh_registry *registry;     /* borrowed; NULL = a private registry */
    const llmh_manifest *manifest; /* borrowed; the model keeps what it needs */
} llmh_model_params;

/* Open the model file with its format plugin, build the tokenizer, create
 * the backend and place the weights. */
LLMH_API llmh_status llmh_model_load(const llmh_model_params *params, llmh_model **out);
LLMH_API void llmh_model_free(llmh_model *model);

typedef struct llmh_model_desc {
    const char *arch;          /* "llama", "qwen2", "qwen3" */
    const char *name;          /* general.name or "" */
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    double rope_base, norm_eps;
    uint64_t n_params, weight_bytes;
    double load_seconds;
} llmh_model_desc;
LLMH_API const llmh_model_desc *llmh_model_describe(const llmh_model *model);
LLMH_API const llmh_tokenizer_iface *llmh_model_tokenizer(const llmh_model *model,
                                                          const llmh_tokenizer **tok);
/* Encode / decode through the model's tokenizer. encode() returns an
 * allocated array in *out (free with free()). */
LLMH_API llmh_status llmh_tokenize(const llmh_model *model, const char *text, size_t len,
                                   uint32_t flags, llmh_token **out, size_t *n);
/* Chat template text (from the manifest override or the model), or NULL. */
LLMH_API const char *llmh_model_chat_template(const llmh_model *model);

typedef struct llmh_session_params {
    int64_t n_ctx;             /* KV cache tokens; 0 = manifest [model] context */
    int32_t n_batch;           /* max tokens per compute graph; 0 = 512 */
    const char *kv_type;       /* "f16", "f32", or NULL = manifest [model] kv_type */
} llmh_session_params;

LLMH_API llmh_status llmh_session_create(llmh_model *model, const llmh_session_params *params,
                                         llmh_session **out);
LLMH_API void llmh_session_free(llmh_session *s);
/* Evaluate `n` tokens appended at the current position (batched prefill or
 * one-token decode). Afterwards llmh_session_logits() holds the logits of
 * the last token. Fails with LLMH_ERR_CONTEXT_FULL (nothing evaluated) when
 * the cache cannot hold them. */
LLMH_API llmh_status llmh_session_eval(llmh_session *s, const llmh_token *tokens, size_t n);
/* Logits of the last evaluated token: n_vocab floats, valid until the next eval. */
LLMH_API const float *llmh_session_logits(const llmh_session *s);
LLMH_API int64_t llmh_session_pos(const llmh_session *s);
/* Drop cached tokens from position `pos` on (0 = clear). */
LLMH_API llmh_status llmh_session_truncate(llmh_session *s, int64_t pos);

/* One session's part of a batched step: n_tokens new tokens appended to its
 * cache (1 for a decode step). */
typedef struct llmh_batch_item {
    llmh_session *session;
    const llmh_token *tokens;
    size_t n_tokens;
} llmh_batch_item;
/* Evaluate several sessions of the same model in one step: the weights are
 * read once for all of them (the sessions' adapter sets may differ). Each
 * item's session must appear once; afterwards each has its own logits, as if
 * llmh_session_eval() had been called per item. All-or-nothing per item:
 * a failure (context full, bad token) names the item and leaves every
 * session unchanged. Thread-safe against other calls on other sessions. */
LLMH_API llmh_status llmh_session_eval_batch(const llmh_batch_item *items, size_t n_items);

/* Registry the model was loaded with (borrowed). */
LLMH_API llmh_registry *llmh_model_registry(const llmh_model *model);
/* Decode tokens to text (exact bytes; may end in partial UTF-8). *out is
 * malloc'd and NUL-terminated. */
LLMH_API llmh_status llmh_detokenize(const llmh_model *model, const llmh_token *ids, size_t n,
                                     uint32_t flags, char **out, size_t *len);
/* True when `tok` ends generation (EOS or end-of-turn). */
LLMH_API bool llmh_token_is_eog(const llmh_model *model, llmh_token tok);

/* ======================================================================== */
/* Chat templates                                                            */
/* ======================================================================== */
typedef struct llmh_chat_message {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;
} llmh_chat_message;

/* Render a conversation with the model's chat template, executed by the
 * Jinja engine (llmh-template.h; that header also takes OpenAI-style JSON
 * messages with tools); the family renderers (ChatML/Qwen, Llama-3,
 * Llama-2) are used only when the template cannot be parsed. *out is
 * malloc'd. LLMH_ERR_UNSUPPORTED when the model has no template. */
LLMH_API llmh_status llmh_chat_render(const llmh_model *model, const llmh_chat_message *msgs, size_t n,
                                      bool add_generation_prompt, char **out);
/* The text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", "</s>"),
 * or NULL when the model has no known template. */
LLMH_API const char *llmh_chat_end_of_turn(const llmh_model *model);

/* ======================================================================== */
/* Sampler chain (the manifest's [sampler] chain of sampler plugins)         */
/* ======================================================================== */
typedef struct llmh_sampler_chain llmh_sampler_chain;

/* Build the chain from the manifest's [sampler] table, loading each sampler
 * plugin from the model's registry. */
LLMH_API llmh_status llmh_sampler_chain_create(llmh_model *model, const llmh_manifest *m,
                                               llmh_sampler_chain **out);
LLMH_API void llmh_sampler_chain_free(llmh_sampler_chain *c);
/* Run the chain over `logits` (n_vocab floats), write the chosen token and
 * tell every sampler (accept). */
LLMH_API llmh_status llmh_sampler_chain_sample(llmh_sampler_chain *c, const float *logits,
                                               llmh_token *out);
LLMH_API void llmh_sampler_chain_accept(llmh_sampler_chain *c, llmh_token tok);
LLMH_API void llmh_sampler_chain_reset(llmh_sampler_chain *c);

/* ======================================================================== */
/* Generation loop                                                           */
/* ======================================================================== */
/* Receives generated text as it becomes final: complete UTF-8 sequences,
 * with text that might start a stop string held back. Return false to stop. */
typedef bool (*llmh_text_fn)(const char *text, size_t len, void *user);

typedef struct llmh_generate_params {
    int32_t max_tokens;          /* < 0: until end of generation or context full */
    const char *const *stop;     /* stop strings (not emitted), may be NULL */
    size_t n_stop;
    bool ignore_eos;             /* keep going past EOS/EOT */
    llmh_text_fn on_text;        /* may be NULL */
    void *user;
} llmh_generate_params;

typedef enum llmh_finish_reason {
    LLMH_FINISH_LENGTH = 0,      /* max_tokens reached */
    LLMH_FINISH_EOG = 1,         /* the model ended its turn (EOS/EOT) */
    LLMH_FINISH_STOP = 2,        /* a stop string matched */
    LLMH_FINISH_CONTEXT = 3,     /* the KV cache is full */
    LLMH_FINISH_CANCELLED = 4    /* on_text returned false */
} llmh_finish_reason;

typedef struct llmh_generate_result {
    int64_t n_prompt;            /* tokens evaluated for the prompt */
    int64_t n_generated;         /* tokens sampled */
    double prompt_seconds;       /* prefill wall time */
    double gen_seconds;          /* decode wall time */
    llmh_finish_reason finish;
    llmh_token *tokens;          /* generated ids (malloc'd; caller frees) */
} llmh_generate_result;

/* Evaluate `prompt` (appended to the session) then sample until a stop
 * condition. */
LLMH_API llmh_status llmh_generate(llmh_session *s, llmh_sampler_chain *chain,
                                   const llmh_token *prompt, size_t n_prompt,
                                   const llmh_generate_params *params, llmh_generate_result *res);

/* For streaming generated text as llmh_generate does (a server stepping
 * sessions itself uses it too): buf[0..n) is the text generated and not yet
 * shown. Sets *stop_at to the offset of the earliest stop string in buf
 * (the output ends there; empty stop strings never match), else to
 * SIZE_MAX, and returns how many bytes at the end of buf to hold back
 * until more text comes: the longest proper prefix of a stop string, or
 * an incomplete UTF-8 sequence, whichever is longer. */
LLMH_API size_t llmh_text_holdback(const char *buf, size_t n, const char *const *stop, size_t n_stop, size_t *stop_at);

/* ======================================================================== */
/* Memory fabric: LoRA adapters (docs/memory-fabric.md)                      */
/* ======================================================================== */
/* Load a LoRA adapter into the model's adapter store under `name` (unique):
 * a GGUF-LoRA file (llama.cpp's converter layout) or a PEFT directory
 * (adapter_config.json + adapter_model.safetensors). Validated against the
 * base model (every target tensor exists, shapes agree); errors name the
 * adapter file and the tensor. `scale` is the user scale (effective scale
 * scale * alpha / rank); `ns` a namespace or NULL. Thread-safe. */
LLMH_API llmh_status llmh_adapter_load(llmh_model *model, const char *name, const char *path, float scale,
                                       const char *ns);
/* Remove `name` from the store. Sessions that use it keep it until they
 * select another set or are freed; it is freed when the last user lets go. */
LLMH_API llmh_status llmh_adapter_unload(llmh_model *model, const char *name);
/* Change the store scale of `name`. Sessions keep the scale they selected
 * the adapter with; new selections see the new scale. */
LLMH_API llmh_status llmh_adapter_set_scale(llmh_model *model, const char *name, float scale);

typedef struct llmh_adapter_info {
    const char *name;
    const char *path;
    const char *ns;           /* NULL when none */
    float scale;              /* store scale */
    float alpha;
    int32_t rank;             /* largest rank over its tensors */
    int32_t n_targets;        /* adapted projections (layers x q/k/v/o/gate/up/down) */
    int32_t users;            /* sessions using it now */
    uint64_t bytes;           /* its A and B as stored (adapter_type): what one decoded token reads */
} llmh_adapter_info;
/* Snapshot of the store: *out is one malloc'd block (strings inside it; free
 * with free()), *n entries, in load order. */
LLMH_API llmh_status llmh_adapter_list(llmh_model *model, llmh_adapter_info **out, size_t *n);

/* Select the session's active adapters through the model's router: `names`
 * with their `scales` (NULL = 1.0 each; they multiply the store scale), or
 * n = 0 for every adapter in the store at its store scale (the default for
 * new sessions). The session holds references to what it selected. */
LLMH_API llmh_status llmh_session_set_adapters(llmh_session *s, const char *const *names, const float *scales,
                                               size_t n);
/* Turn every adapter off for this session (the plain base model). */
LLMH_API void llmh_session_clear_adapters(llmh_session *s);

/* A request to the router: adapters by name (with scales) and/or by
 * namespace. Which adapters turn on, and how strongly, is the router
 * plugin's decision (static: the named ones; namespace: those registered
 * under the named namespaces; gated: per token). */
typedef struct llmh_adapter_request {
    const char *const *names;
    const float *scales;          /* NULL = 1.0 each */
    size_t n_names;
    const char *const *namespaces;
    size_t n_namespaces;
} llmh_adapter_request;
/* Route `req` (NULL or all-empty = every adapter in the store) and make the
 * result the session's adapter set (llmh_session_set_adapters is this with
 * names only). */
LLMH_API llmh_status llmh_session_select_adapters(llmh_session *s, const llmh_adapter_request *req);

#ifdef __cplusplus
}
#endif
#endif /* LLMH_H */

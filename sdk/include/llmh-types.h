/*
 * llmh-types.h — plain data types shared by the llmhost core and its plugins.
 *
 * Part of the llmhost SDK: the only headers a plugin may include. Compiles as
 * C99 and as C++. Every struct that crosses the plugin boundary starts with
 * `uint32_t struct_size` (set by whoever fills it) and only ever grows at the
 * end; readers check struct_size before touching a field added later.
 * Enum values are frozen once released: new values are appended.
 *
 * See docs/abi.md for the versioning policy and the changelog.
 */
#ifndef LLMH_TYPES_H
#define LLMH_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version of this SDK. A plugin built against (major, minor) loads into a
 * host with the same major and a minor >= the plugin's minor. */
#define LLMH_ABI_MAJOR 1
#define LLMH_ABI_MINOR 2

/* ------------------------------------------------------------------------ */
/* Status codes: 0 is success, negative values are errors.                    */
/* ------------------------------------------------------------------------ */
typedef int32_t llmh_status;
enum {
    LLMH_OK = 0,
    LLMH_ERR_INVALID_ARG = -1,   /* a caller passed a bad argument */
    LLMH_ERR_NO_MEMORY = -2,     /* an allocation failed */
    LLMH_ERR_IO = -3,            /* open/read/mmap failed */
    LLMH_ERR_FORMAT = -4,        /* a file is corrupt, truncated or not of the expected format */
    LLMH_ERR_UNSUPPORTED = -5,   /* valid request the implementation cannot serve (type, op, arch) */
    LLMH_ERR_NOT_FOUND = -6,     /* a named thing (key, tensor, plugin, file) does not exist */
    LLMH_ERR_ABI = -7,           /* plugin ABI mismatch or malformed descriptor */
    LLMH_ERR_CONFIG = -8,        /* manifest error: syntax, unknown key, wrong type */
    LLMH_ERR_BACKEND = -9,       /* a compute backend failed (driver error, device lost) */
    LLMH_ERR_CONTEXT_FULL = -10, /* the KV cache has no room for more tokens */
    LLMH_ERR_BUSY = -11,         /* resource in use (e.g. adapter still referenced) */
    LLMH_ERR_CANCELLED = -12,    /* the caller asked to stop */
    LLMH_ERR_INTERNAL = -13      /* a bug: please report */
};

/* ------------------------------------------------------------------------ */
/* Logging                                                                    */
/* ------------------------------------------------------------------------ */
typedef enum llmh_log_level {
    LLMH_LOG_DEBUG = 0,
    LLMH_LOG_INFO = 1,
    LLMH_LOG_WARN = 2,
    LLMH_LOG_ERROR = 3
} llmh_log_level;

/* ------------------------------------------------------------------------ */
/* Tensor element types. Numeric values equal GGUF's ggml_type ids so that a  */
/* GGUF tensor type maps 1:1. Block types store `block_size` elements in      */
/* `type_size` bytes (see llmh_dtype_block_size / llmh_dtype_type_size).       */
/* ------------------------------------------------------------------------ */
typedef enum llmh_dtype {
    LLMH_DTYPE_F32 = 0,
    LLMH_DTYPE_F16 = 1,
    LLMH_DTYPE_Q4_0 = 2,  /* 32 elems: f16 d, 16 bytes of nibbles  (18 B) */
    LLMH_DTYPE_Q4_1 = 3,  /* 32 elems: f16 d, f16 m, 16 B          (20 B) */
    LLMH_DTYPE_Q5_0 = 6,  /* 32 elems: f16 d, u32 qh, 16 B         (22 B) */
    LLMH_DTYPE_Q5_1 = 7,  /* 32 elems: f16 d, f16 m, u32 qh, 16 B  (24 B) */
    LLMH_DTYPE_Q8_0 = 8,  /* 32 elems: f16 d, 32 x int8            (34 B) */
    LLMH_DTYPE_Q8_1 = 9,  /* 32 elems: f16 d, f16 s, 32 x int8     (36 B) */
    LLMH_DTYPE_Q2_K = 10, /* 256 elems (84 B) */
    LLMH_DTYPE_Q3_K = 11, /* 256 elems (110 B) */
    LLMH_DTYPE_Q4_K = 12, /* 256 elems (144 B) */
    LLMH_DTYPE_Q5_K = 13, /* 256 elems (176 B) */
    LLMH_DTYPE_Q6_K = 14, /* 256 elems (210 B) */
    LLMH_DTYPE_Q8_K = 15, /* 256 elems: f32 d, 256 x int8, 16 x i16 sums (292 B) */
    LLMH_DTYPE_I8 = 24,
    LLMH_DTYPE_I16 = 25,
    LLMH_DTYPE_I32 = 26,
    LLMH_DTYPE_I64 = 27,
    LLMH_DTYPE_F64 = 28,
    LLMH_DTYPE_BF16 = 30,
    LLMH_DTYPE_COUNT = 31 /* one past the largest id; not a type */
} llmh_dtype;

/* Elements per block (1 for plain types), or 0 for an unknown/unsupported id. */
static inline int64_t llmh_dtype_block_size(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: case LLMH_DTYPE_F16: case LLMH_DTYPE_BF16:
    case LLMH_DTYPE_I8: case LLMH_DTYPE_I16: case LLMH_DTYPE_I32:
    case LLMH_DTYPE_I64: case LLMH_DTYPE_F64:
        return 1;
    case LLMH_DTYPE_Q4_0: case LLMH_DTYPE_Q4_1: case LLMH_DTYPE_Q5_0:
    case LLMH_DTYPE_Q5_1: case LLMH_DTYPE_Q8_0: case LLMH_DTYPE_Q8_1:
        return 32;
    case LLMH_DTYPE_Q2_K: case LLMH_DTYPE_Q3_K: case LLMH_DTYPE_Q4_K:
    case LLMH_DTYPE_Q5_K: case LLMH_DTYPE_Q6_K: case LLMH_DTYPE_Q8_K:
        return 256;
    default:
        return 0;
    }
}

/* Bytes per block, or 0 for an unknown/unsupported id. */
static inline size_t llmh_dtype_type_size(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: return 4;
    case LLMH_DTYPE_F16: return 2;
    case LLMH_DTYPE_BF16: return 2;
    case LLMH_DTYPE_I8: return 1;
    case LLMH_DTYPE_I16: return 2;
    case LLMH_DTYPE_I32: return 4;
    case LLMH_DTYPE_I64: return 8;
    case LLMH_DTYPE_F64: return 8;
    case LLMH_DTYPE_Q4_0: return 18;
    case LLMH_DTYPE_Q4_1: return 20;
    case LLMH_DTYPE_Q5_0: return 22;
    case LLMH_DTYPE_Q5_1: return 24;
    case LLMH_DTYPE_Q8_0: return 34;
    case LLMH_DTYPE_Q8_1: return 36;
    case LLMH_DTYPE_Q2_K: return 84;
    case LLMH_DTYPE_Q3_K: return 110;
    case LLMH_DTYPE_Q4_K: return 144;
    case LLMH_DTYPE_Q5_K: return 176;
    case LLMH_DTYPE_Q6_K: return 210;
    case LLMH_DTYPE_Q8_K: return 292;
    default: return 0;
    }
}

/* Short lower-case name ("f32", "q4_k", ...), or "unknown". Never NULL. */
static inline const char *llmh_dtype_name(llmh_dtype t) {
    switch (t) {
    case LLMH_DTYPE_F32: return "f32";
    case LLMH_DTYPE_F16: return "f16";
    case LLMH_DTYPE_BF16: return "bf16";
    case LLMH_DTYPE_I8: return "i8";
    case LLMH_DTYPE_I16: return "i16";
    case LLMH_DTYPE_I32: return "i32";
    case LLMH_DTYPE_I64: return "i64";
    case LLMH_DTYPE_F64: return "f64";
    case LLMH_DTYPE_Q4_0: return "q4_0";
    case LLMH_DTYPE_Q4_1: return "q4_1";
    case LLMH_DTYPE_Q5_0: return "q5_0";
    case LLMH_DTYPE_Q5_1: return "q5_1";
    case LLMH_DTYPE_Q8_0: return "q8_0";
    case LLMH_DTYPE_Q8_1: return "q8_1";
    case LLMH_DTYPE_Q2_K: return "q2_k";
    case LLMH_DTYPE_Q3_K: return "q3_k";
    case LLMH_DTYPE_Q4_K: return "q4_k";
    case LLMH_DTYPE_Q5_K: return "q5_k";
    case LLMH_DTYPE_Q6_K: return "q6_k";
    case LLMH_DTYPE_Q8_K: return "q8_k";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* Half-precision conversions (IEEE binary16 and bfloat16), exact and        */
/* round-to-nearest-even.                                                     */
/* ------------------------------------------------------------------------ */
static inline uint32_t llmh__f32_bits(float f) { union { float f; uint32_t u; } x; x.f = f; return x.u; }
static inline float llmh__bits_f32(uint32_t u) { union { float f; uint32_t u; } x; x.u = u; return x.f; }

static inline float llmh_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return llmh__bits_f32(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {
        if (man == 0) return llmh__bits_f32(sign);
        /* subnormal: man * 2^-24 */
        return (sign ? -1.0f : 1.0f) * (float)man * (1.0f / 16777216.0f);
    }
    return llmh__bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t llmh_fp32_to_fp16(float f) {
    uint32_t x = llmh__f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* value = ax as float; half subnormal unit is 2^-24 */
        float a = llmh__bits_f32(ax) * 16777216.0f; /* exact scaling */
        uint32_t m = (uint32_t)a;
        float rem = a - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1u))) m++;
        return (uint16_t)(sign | m);
    }
    {
        uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u); /* round to nearest even */
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
}

static inline float llmh_bf16_to_fp32(uint16_t h) { return llmh__bits_f32((uint32_t)h << 16); }

static inline uint16_t llmh_fp32_to_bf16(float f) {
    uint32_t x = llmh__f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ------------------------------------------------------------------------ */
/* Typed values and key/value lists: model metadata (GGUF KV, or HF          */
/* config.json mapped to GGUF keys) and plugin settings from the manifest.   */
/* ------------------------------------------------------------------------ */
typedef enum llmh_vtype {
    LLMH_V_U8 = 0, /* numeric ids equal GGUF's gguf_type */
    LLMH_V_I8 = 1,
    LLMH_V_U16 = 2,
    LLMH_V_I16 = 3,
    LLMH_V_U32 = 4,
    LLMH_V_I32 = 5,
    LLMH_V_F32 = 6,
    LLMH_V_BOOL = 7,
    LLMH_V_STRING = 8,
    LLMH_V_ARRAY = 9,
    LLMH_V_U64 = 10,
    LLMH_V_I64 = 11,
    LLMH_V_F64 = 12
} llmh_vtype;

typedef struct llmh_value llmh_value;

/* One value. Integers of every width are widened into u/i, floats into f.
 * Strings are NOT NUL-terminated (they may point into a mapped file) and may
 * contain NUL bytes: always use `len`. Arrays hold `n` items of `elem_type`;
 * `items` is an array of n llmh_value (nested arrays are ARRAY items). All
 * pointers are borrowed from the object that produced the value (a model file,
 * a manifest) and stay valid until that object is freed. */
struct llmh_value {
    llmh_vtype type;
    union {
        uint64_t u;  /* U8, U16, U32, U64 */
        int64_t i;   /* I8, I16, I32, I64 */
        double f;    /* F32, F64 */
        int b;       /* BOOL: 0 or 1 */
        struct {
            const char *ptr;
            uint64_t len;
        } s;         /* STRING */
        struct {
            llmh_vtype elem_type;
            uint64_t n;
            const llmh_value *items;
        } arr;       /* ARRAY */
    } v;
};

/* A named value. `key` is NUL-terminated and borrowed like the value. */
typedef struct llmh_kv {
    const char *key;
    llmh_value value;
} llmh_kv;

/* A borrowed list of key/values. */
typedef struct llmh_kv_list {
    const llmh_kv *items;
    size_t n;
} llmh_kv_list;

/* Linear search by key; NULL when absent (or list is NULL). */
static inline const llmh_value *llmh_kv_find(const llmh_kv_list *list, const char *key) {
    size_t i, j;
    if (!list || !key) return NULL;
    for (i = 0; i < list->n; i++) {
        const char *a = list->items[i].key;
        for (j = 0; a[j] && a[j] == key[j]; j++) {}
        if (a[j] == key[j]) return &list->items[i].value;
    }
    return NULL;
}

/* Numeric conversions. Return 1 and write *out when `v` is a number (or bool)
 * representable in the target, else 0. */
static inline int llmh_value_as_i64(const llmh_value *v, int64_t *out) {
    if (!v) return 0;
    switch (v->type) {
    case LLMH_V_U8: case LLMH_V_U16: case LLMH_V_U32: case LLMH_V_U64:
        if (v->v.u > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v->v.u; return 1;
    case LLMH_V_I8: case LLMH_V_I16: case LLMH_V_I32: case LLMH_V_I64:
        *out = v->v.i; return 1;
    case LLMH_V_BOOL: *out = v->v.b; return 1;
    case LLMH_V_F32: case LLMH_V_F64:
        if (v->v.f != v->v.f || v->v.f > 9.2e18 || v->v.f < -9.2e18) return 0;
        if ((double)(int64_t)v->v.f != v->v.f) return 0;
        *out = (int64_t)v->v.f; return 1;
    default: return 0;
    }
}

static inline int llmh_value_as_f64(const llmh_value *v, double *out) {
    if (!v) return 0;
    switch (v->type) {
    case LLMH_V_U8: case LLMH_V_U16: case LLMH_V_U32: case LLMH_V_U64:
        *out = (double)v->v.u; return 1;
    case LLMH_V_I8: case LLMH_V_I16: case LLMH_V_I32: case LLMH_V_I64:
        *out = (double)v->v.i; return 1;
    case LLMH_V_F32: case LLMH_V_F64: *out = v->v.f; return 1;
    case LLMH_V_BOOL: *out = v->v.b; return 1;
    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                    */
/* ------------------------------------------------------------------------ */
#define LLMH_MAX_DIMS 4

typedef struct llmh_buffer llmh_buffer; /* backend-defined; opaque to others */

/* A tensor: a typed, strided view of bytes in a backend buffer.
 * Shapes follow GGUF/ggml order: ne[0] is the innermost (contiguous) dimension.
 * A weight matrix of `rows` outputs by `cols` inputs has ne = {cols, rows}.
 * For block types, ne[0] is a multiple of the block size and nb[1] is the row
 * size in bytes; nb[0] is the type size of one block.
 * Unused trailing dims have ne = 1. */
typedef struct llmh_tensor {
    uint32_t struct_size;   /* sizeof(llmh_tensor) of the writer */
    llmh_dtype type;
    int32_t n_dims;         /* 1..LLMH_MAX_DIMS (informational) */
    int64_t ne[LLMH_MAX_DIMS]; /* elements per dimension */
    size_t nb[LLMH_MAX_DIMS];  /* stride in bytes per dimension */
    const char *name;       /* borrowed; may be NULL for intermediates */
    llmh_buffer *buffer;    /* buffer holding the bytes (borrowed) */
    size_t offset;          /* byte offset of element [0,0,0,0] in buffer */
    void *data;             /* host address of element 0 when the buffer is
                               host-visible (CPU backends), else NULL */
    void *extra;            /* backend-private per-tensor data (e.g. a repacked
                               weight), owned by the backend; NULL if none */
} llmh_tensor;

/* Describes one tensor of a model file (format plugins fill these). */
typedef struct llmh_tensor_info {
    uint32_t struct_size;
    const char *name;       /* canonical GGUF name, e.g. "blk.0.attn_q.weight" */
    llmh_dtype type;
    int32_t n_dims;
    int64_t ne[LLMH_MAX_DIMS]; /* unused dims are 1 */
    const void *data;       /* host bytes (mapped file or plugin-owned copy),
                               valid until the file is closed */
    uint64_t size;          /* bytes at data */
    uint64_t file_offset;   /* offset in its file (informational; 0 if copied) */
} llmh_tensor_info;

/* Token id and candidates, as used by samplers. */
typedef int32_t llmh_token;

typedef struct llmh_token_data {
    llmh_token id;
    float logit;
    float p;       /* probability, valid only when the array's `has_p` is set */
} llmh_token_data;

typedef struct llmh_token_array {
    llmh_token_data *data; /* borrowed, n entries */
    size_t n;
    int32_t selected;      /* index into data of the chosen token, or -1 */
    int32_t sorted;        /* nonzero when data is sorted by logit, descending */
    int32_t has_p;         /* nonzero when .p holds normalized probabilities */
} llmh_token_array;

#ifdef __cplusplus
}
#endif
#endif /* LLMH_TYPES_H */

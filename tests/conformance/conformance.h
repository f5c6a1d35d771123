/* conformance.h — shared pieces of the backend conformance suite: the
 * backend under test, tensors on it, and scalar reference helpers. */
#ifndef LLMH_CONFORMANCE_H
#define LLMH_CONFORMANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

/* One backend plugin found by the registry. */
typedef struct cf_backend {
    llmh_plugin *plugin;
    const char *name;
    const llmh_backend_iface *bi;
    void *state;
    llmh_backend *be;     /* NULL when it could not be created (skip_reason) */
    char skip_reason[512];
} cf_backend;

/* The backend of the suite being run. */
extern cf_backend *cf_cur;

/* A tensor on the backend under test, with its own buffer. Views may have
 * padded rows (pad bytes after each row). Values move through
 * buffer_write/buffer_read, so backends without host-visible memory work. */
typedef struct cf_tensor {
    llmh_tensor t;
    llmh_buffer *buf;
    size_t size;
} cf_tensor;

cf_tensor *cf_new(llmh_dtype type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, size_t row_pad);
void cf_free(cf_tensor *t);
/* Logical values [i3][i2][i1][i0] -> the tensor (converted to its float type). */
void cf_put(cf_tensor *t, const float *v);
void cf_put_i32(cf_tensor *t, const int32_t *v);
/* Raw bytes of contiguous rows (block types): row r gets src + r * row_bytes. */
void cf_put_rows(cf_tensor *t, const uint8_t *src);
void cf_get(cf_tensor *t, float *v);
int64_t cf_nel(const cf_tensor *t);

/* Run one node; returns the backend's status. */
llmh_status cf_run(llmh_op op, cf_tensor *dst, cf_tensor *s0, cf_tensor *s1, cf_tensor *s2, const int32_t *ip,
                   const float *fp);

/* Deterministic randoms. */
void cf_seed(uint64_t s);
float cf_randf(void); /* uniform [-1, 1) */
uint32_t cf_randu(void);

/* Random weight bytes of `type` for n elements (quantized from random
 * floats where llmh_quantize can, else random bytes with small scales). */
void cf_random_weights(llmh_dtype type, uint8_t *dst, int64_t n);

/* Compare; prints the worst element and returns true when every
 * |got - want| <= abs_tol + rel_tol * scale[i] (scale NULL: |want|). */
bool cf_close(const char *what, const float *got, const double *want, const double *scale, int64_t n,
              double abs_tol, double rel_tol);

bool cf_supports(llmh_op op, llmh_dtype t0, llmh_dtype t1);

#define CF_SKIP_IF_NO_BACKEND()                                                                    \
    do {                                                                                           \
        if (!cf_cur || !cf_cur->be) return;                                                        \
    } while (0)

/* Test bodies (conformance-*.c). */
void cf_test_info(void);
void cf_test_elementwise(void);
void cf_test_rms_softmax(void);
void cf_test_rope(void);
void cf_test_cpy(void);
void cf_test_get_rows(void);
void cf_test_mul_mat_float(void);
void cf_test_mul_mat_quant(void);
void cf_test_attention(void);
void cf_test_lora(void);
void cf_test_end_to_end(void);
void cf_test_refusal(void);

#endif

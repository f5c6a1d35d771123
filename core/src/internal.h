/* internal.h — declarations shared between core source files (not installed). */
#ifndef LLMH_INTERNAL_H
#define LLMH_INTERNAL_H

#include <stdarg.h>
#include <time.h>

#include "llmh.h"

void llmh__logv(llmh_log_level level, const char *component, const char *fmt, va_list ap);

/* Monotonic wall time in seconds (for load/prefill/decode timings). */
static inline double llmh__now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define LLMH_LOGD(...) llmh_log(LLMH_LOG_DEBUG, "core", __VA_ARGS__)
#define LLMH_LOGI(...) llmh_log(LLMH_LOG_INFO, "core", __VA_ARGS__)
#define LLMH_LOGW(...) llmh_log(LLMH_LOG_WARN, "core", __VA_ARGS__)
#define LLMH_LOGE(...) llmh_log(LLMH_LOG_ERROR, "core", __VA_ARGS__)

/* Set the error and return `st` (for `return llmh__fail(st, "...")`). */
llmh_status llmh__fail(llmh_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* [model] adapter_type, the one copy of its names (manifest validation and
 * the fabric's storage type, adapter.c): "auto" (F32), "f32", "f16",
 * "bf16" or "q8_0". 0 with *out set for one of them, -1 for anything else. */
#define LLMH__ADAPTER_TYPES "\"auto\", \"f32\", \"f16\", \"bf16\" or \"q8_0\""
int llmh__adapter_storage_type(const char *name, llmh_dtype *out);

#endif

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

#endif

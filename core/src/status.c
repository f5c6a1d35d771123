/* status.c — version, status strings and the thread-local last error. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "llmh.h"

const char *llmh_version(void) { return LLMH_VERSION_STRING; }

const char *llmh_status_str(llmh_status s) {
    switch (s) {
    case LLMH_OK: return "ok";
    case LLMH_ERR_INVALID_ARG: return "invalid argument";
    case LLMH_ERR_NO_MEMORY: return "out of memory";
    case LLMH_ERR_IO: return "I/O error";
    case LLMH_ERR_FORMAT: return "corrupt or unrecognized file";
    case LLMH_ERR_UNSUPPORTED: return "unsupported";
    case LLMH_ERR_NOT_FOUND: return "not found";
    case LLMH_ERR_ABI: return "plugin ABI mismatch";
    case LLMH_ERR_CONFIG: return "manifest error";
    case LLMH_ERR_BACKEND: return "backend failure";
    case LLMH_ERR_CONTEXT_FULL: return "context full";
    case LLMH_ERR_BUSY: return "busy";
    case LLMH_ERR_CANCELLED: return "cancelled";
    case LLMH_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

/* Big enough for a path plus a sentence; longer messages are truncated. */
static _Thread_local char last_error[2048];

const char *llmh_last_error(void) { return last_error; }

void llmh_clear_error(void) { last_error[0] = 0; }

void llmh_set_error(const char *fmt, ...) {
    char tmp[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may reference last_error itself */
    va_end(ap);
    memcpy(last_error, tmp, sizeof tmp);
}

/* log.c — the logging callback. The library never prints. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "llmh.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static llmh_log_fn log_fn;
static void *log_user;
static llmh_log_level log_min = LLMH_LOG_WARN;

void llmh_log_set(llmh_log_fn fn, void *user, llmh_log_level min_level) {
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = user;
    log_min = min_level;
    pthread_mutex_unlock(&log_lock);
}

void llmh__logv(llmh_log_level level, const char *component, const char *fmt, va_list ap) {
    pthread_mutex_lock(&log_lock);
    llmh_log_fn fn = log_fn;
    void *user = log_user;
    llmh_log_level min = log_min;
    pthread_mutex_unlock(&log_lock);
    if (!fn || level < min) return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fn(level, component ? component : "core", msg, user);
}

void llmh_log(llmh_log_level level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    llmh__logv(level, component, fmt, ap);
    va_end(ap);
}

/* cpu-threadpool.c — a persistent pool of worker threads.
 *
 * Threads are created once per backend instance. A dispatch bumps `epoch`;
 * workers wait for it by spinning briefly, then sleeping on a futex (Linux)
 * or yielding (elsewhere), so idle periods do not burn a core and wakes are
 * skipped when nobody sleeps.
 *
 * The caller (thread 0) always runs the task itself and never waits for a
 * worker to *start*: the task divides its work into pieces claimed from
 * atomic counters, so when the machine is oversubscribed and a worker is not
 * scheduled, the threads that are running do its share. A dispatch ends when
 * the caller's task returns and every worker that joined has left; a worker
 * that wakes after that sees the dispatch closed and goes back to sleep.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "cpu-internal.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if CPU_X86
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* About 0.2-0.5 ms of spinning before sleeping. */
#define SPIN_ITERS 8192

typedef struct worker {
    cpu_pool *pool;
    int ith;
    pthread_t tid;
} worker;

struct cpu_pool {
    int n;                 /* threads including the caller */
    worker *workers;       /* n - 1 */
    atomic_uint epoch;     /* bumped per dispatch */
    atomic_int stop;
    cpu_task_fn fn;
    void *arg;
    atomic_int closed;     /* 1 once the current dispatch is over */
    atomic_int active;     /* workers inside the current task */
    atomic_int sleepers;   /* threads inside futex wait */
};

static void wait_while_equal(cpu_pool *p, atomic_uint *addr, unsigned val) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(addr, memory_order_acquire) != val) return;
        CPU_RELAX();
    }
    while (atomic_load(addr) == val) {
#if defined(__linux__)
        atomic_fetch_add(&p->sleepers, 1);
        if (atomic_load(addr) == val)
            syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
        atomic_fetch_sub(&p->sleepers, 1);
#else
        (void)p;
        sched_yield();
#endif
    }
}

static void wake_all(cpu_pool *p, atomic_uint *addr) {
#if defined(__linux__)
    if (atomic_load(&p->sleepers) > 0)
        syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)p;
    (void)addr;
#endif
}

void cpu_pool_yield_wait(int *spins) {
    if (++*spins < SPIN_ITERS) {
        CPU_RELAX();
    } else {
        sched_yield();
    }
}

static void *worker_main(void *arg) {
    worker *w = (worker *)arg;
    cpu_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        wait_while_equal(p, &p->epoch, seen);
        seen = atomic_load(&p->epoch);
        if (atomic_load(&p->stop)) break;
        atomic_fetch_add(&p->active, 1);
        if (!atomic_load(&p->closed)) p->fn(p->arg, w->ith, p->n);
        atomic_fetch_sub(&p->active, 1);
    }
    return NULL;
}

cpu_pool *cpu_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->epoch, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->closed, 1);
    atomic_init(&p->active, 0);
    atomic_init(&p->sleepers, 0);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            worker *w = &p->workers[i - 1];
            w->pool = p;
            w->ith = i;
            if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
                p->n = i; /* threads started so far (plus caller) */
                cpu_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void cpu_pool_free(cpu_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->epoch, 1);
        atomic_fetch_add(&p->sleepers, 0);
#if defined(__linux__)
        syscall(SYS_futex, (unsigned *)&p->epoch, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#endif
        for (int i = 1; i < p->n; i++) pthread_join(p->workers[i - 1].tid, NULL);
    }
    free(p->workers);
    free(p);
}

int cpu_pool_size(const cpu_pool *p) { return p->n; }

void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *arg) {
    if (p->n <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->closed, 0);
    atomic_fetch_add(&p->epoch, 1);
    wake_all(p, &p->epoch);
    fn(arg, 0, p->n);
    atomic_store(&p->closed, 1);
    int spins = 0;
    while (atomic_load(&p->active) != 0) cpu_pool_yield_wait(&spins);
}

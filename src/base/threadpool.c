/* threadpool.c — fork-join pthread pool: a generation counter announces a job, workers spin
 * briefly and then sleep on a condition variable, the caller works as thread 0 and waits for a
 * countdown to reach zero. The short spin keeps the wake-up cost low when ops follow each other
 * closely (a forward pass is hundreds of short ops); the sleep keeps idle pools from burning a
 * core. All shared state is C11 atomics or guarded by the mutex (clean under TSan). */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/error.h"

/* Pause iterations before sleeping: ~10-40 us (a pause is 40-140 cycles depending on the core),
 * about the gap between two ops of a forward pass; short enough not to steal much from other
 * processes when the machine is oversubscribed. */
enum { SPIN_ITERS = 256 };

struct molmo_pool;

typedef struct worker {
    struct molmo_pool *pool;
    int ith;
    pthread_t tid;
} worker;

struct molmo_pool {
    int n;                      /* threads in a run, caller included */
    int n_started;              /* workers actually started (for cleanup after a failure) */
    worker *workers;            /* [n - 1] */
    unsigned char *scratch_mem; /* n * MOLMO_POOL_SCRATCH_BYTES + 64 (alignment slack) */
    float *scratch;             /* 64-byte aligned start of thread 0's workspace */
    pthread_mutex_t mu;
    pthread_cond_t cv_job;      /* workers wait here for a new generation */
    pthread_cond_t cv_done;     /* the caller waits here for pending == 0 */
    atomic_uint gen;            /* bumped once per run (and once at shutdown) */
    atomic_int pending;         /* workers that have not finished the current run */
    atomic_int stop;
    molmo_pool_fn fn;           /* written by the caller before gen is bumped (release) */
    void *arg;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until the generation differs from `seen`; returns the new one. */
static unsigned wait_job(molmo_pool *p, unsigned seen) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->cv_job, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *vw) {
    worker *w = vw;
    molmo_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        /* fn/arg were stored before the release increment of gen that we acquired, and the
         * caller does not store the next ones before this run's countdown reached zero. */
        p->fn(p->arg, w->ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void wait_done(molmo_pool *p) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void stop_workers(molmo_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].tid, NULL);
    p->n_started = 0;
}

molmo_status molmo_pool_create(int n_threads, molmo_pool **out, molmo_error *err) {
    molmo_status st = MOLMO_OK;
    size_t bytes;
    *out = NULL;
    if (n_threads <= 0) n_threads = molmo_cpu_physical_cores();
    if (n_threads > 1024)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "thread pool: %d threads is over the limit of 1024",
                         n_threads);
    molmo_pool *p = molmo_calloc(1, sizeof *p);
    if (!p) return molmo_err(err, MOLMO_ERR_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        molmo_free(p);
        return molmo_err(err, MOLMO_ERR_INTERNAL, "thread pool: cannot create a mutex");
    }
    pthread_cond_init(&p->cv_job, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (!molmo_mul_size((size_t)n_threads, MOLMO_POOL_SCRATCH_BYTES, &bytes) ||
        !(p->scratch_mem = molmo_malloc(bytes + 64))) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "thread pool: out of memory (%d x %u bytes)",
                       n_threads, MOLMO_POOL_SCRATCH_BYTES);
        goto fail;
    }
    p->scratch = (float *)(((uintptr_t)p->scratch_mem + 63) & ~(uintptr_t)63);
    if (n_threads > 1) {
        p->workers = molmo_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            st = molmo_err(err, MOLMO_ERR_NOMEM, "thread pool: out of memory");
            goto fail;
        }
    }
    for (int i = 0; i < n_threads - 1; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        w->ith = i + 1;
        int rc = pthread_create(&w->tid, NULL, worker_main, w);
        if (rc != 0) {
            st = molmo_err(err, MOLMO_ERR_INTERNAL, "thread pool: cannot start thread %d of %d: %s",
                           i + 2, n_threads, strerror(rc));
            goto fail;
        }
        p->n_started++;
    }
    *out = p;
    return MOLMO_OK;
fail:
    molmo_pool_free(p);
    return st;
}

void molmo_pool_free(molmo_pool *p) {
    if (!p) return;
    stop_workers(p);
    pthread_cond_destroy(&p->cv_job);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    molmo_free(p->workers);
    molmo_free(p->scratch_mem);
    molmo_free(p);
}

int molmo_pool_size(const molmo_pool *p) { return p ? p->n : 1; }

float *molmo_pool_scratch(molmo_pool *p, int ith) {
    if (!p || ith < 0 || ith >= p->n) return NULL;
    return p->scratch + (size_t)ith * (MOLMO_POOL_SCRATCH_BYTES / sizeof(float));
}

void molmo_pool_run(molmo_pool *p, molmo_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    wait_done(p);
}

void molmo_pool_range(int n, int ith, int nth, int *begin, int *end) {
    if (n <= 0 || nth <= 0 || ith < 0 || ith >= nth) {
        *begin = *end = n > 0 ? n : 0;
        return;
    }
    int base = n / nth, rem = n % nth;
    int b = ith * base + (ith < rem ? ith : rem);
    *begin = b;
    *end = b + base + (ith < rem ? 1 : 0);
}

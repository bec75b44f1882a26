/* threadpool.c — fork-join pthread pool: a generation counter announces a job, workers spin
 * for a while and then sleep on a condition variable, the caller works as thread 0 and waits for
 * a countdown to reach zero (spinning, then sleeping likewise).
 *
 * Why spin for up to ~0.2 ms: a decode step is hundreds of short ops (a MoE layer alone is ~30
 * matmuls of 1-2 MB of weights, ~50 us each), separated by short single-threaded steps. Waking
 * a sleeping thread costs a futex call and 10-100 us of scheduler latency on a VM, as much as
 * the op itself; a worker that is still spinning starts within a fraction of a microsecond.
 * After the spin, a thread sleeps, so an idle pool does not burn a core. A side only makes the
 * wake-up system call when the other side is known to sleep (a Dekker-style handshake on
 * sequentially consistent atomics: "I sleep" is published before the last look at the
 * condition, and the condition is published before the look at "who sleeps"). All shared state
 * is C11 atomics or guarded by the mutex (clean under TSan). */
#define _POSIX_C_SOURCE 200809L
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"
#include "base/error.h"

/* How long a thread spins before it sleeps (see the file comment). */
#define SPIN_MS 0.2

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
    unsigned char *shared_mem;  /* molmo_pool_shared: shared_bytes + 64 (alignment slack) */
    size_t shared_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv_job;      /* workers wait here for a new generation */
    pthread_cond_t cv_done;     /* the caller waits here for pending == 0 */
    atomic_uint gen;            /* bumped once per run (and once at shutdown) */
    atomic_int pending;         /* workers that have not finished the current run */
    atomic_int stop;
    atomic_int sleepers;        /* workers asleep (or about to sleep) on cv_job */
    atomic_int caller_asleep;   /* 1 while the caller sleeps (or is about to) on cv_done */
    molmo_pool_fn fn;           /* written by the caller before gen is bumped (release) */
    void *arg;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until done(p, v) or SPIN_MS passed; returns done's last answer. The clock is read
 * every 64 pauses only. */
static int spin_until(int (*done)(molmo_pool *, unsigned), molmo_pool *p, unsigned v) {
    const double t_end = molmo_now_ms() + SPIN_MS;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(p, v)) return 1;
            cpu_relax();
        }
        if (molmo_now_ms() > t_end) return done(p, v);
    }
}

static int gen_moved(molmo_pool *p, unsigned seen) { return atomic_load(&p->gen) != seen; }
static int all_done(molmo_pool *p, unsigned unused) {
    (void)unused;
    return atomic_load(&p->pending) == 0;
}

/* Waits until the generation differs from `seen`; returns the new one. */
static unsigned wait_job(molmo_pool *p, unsigned seen) {
    if (!spin_until(gen_moved, p, seen)) {
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1); /* seq_cst: before the look at gen below */
        while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->cv_job, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
    }
    return atomic_load_explicit(&p->gen, memory_order_acquire);
}

static void *worker_main(void *vw) {
    worker *w = vw;
    molmo_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        /* fn/arg were stored before the increment of gen that we observed, and the caller
         * does not store the next ones before this run's countdown reached zero. */
        p->fn(p->arg, w->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void wait_done(molmo_pool *p) {
    if (spin_until(all_done, p, 0)) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_asleep, 1); /* seq_cst: before the look at pending below */
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->cv_done, &p->mu);
    atomic_store(&p->caller_asleep, 0);
    pthread_mutex_unlock(&p->mu);
}

static void stop_workers(molmo_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
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
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_asleep, 0);
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
    molmo_free(p->shared_mem);
    molmo_free(p);
}

int molmo_pool_size(const molmo_pool *p) { return p ? p->n : 1; }

float *molmo_pool_scratch(molmo_pool *p, int ith) {
    if (!p || ith < 0 || ith >= p->n) return NULL;
    return p->scratch + (size_t)ith * (MOLMO_POOL_SCRATCH_BYTES / sizeof(float));
}

void *molmo_pool_shared(molmo_pool *p, size_t bytes) {
    if (!p || bytes > SIZE_MAX - 64) return NULL;
    if (bytes > p->shared_bytes) {
        /* free first: the old contents are not needed, and both at once would be the peak */
        molmo_free(p->shared_mem);
        p->shared_bytes = 0;
        if (!(p->shared_mem = molmo_malloc(bytes + 64))) return NULL;
        p->shared_bytes = bytes;
    }
    return (void *)(((uintptr_t)p->shared_mem + 63) & ~(uintptr_t)63);
}

void molmo_pool_run(molmo_pool *p, molmo_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/arg, before the look at sleepers */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
    }
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

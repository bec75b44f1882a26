/* threadpool.h — a fixed pool of pthreads that run one function on every thread (STYLE.md §5).
 *
 * One pool belongs to one context and is driven by one caller thread at a time. A call to
 * molmo_pool_run wakes the workers, runs fn(arg, 0, n) on the caller itself and fn(arg, i, n)
 * on worker i (1 <= i < n), and returns once all have finished: a fork-join barrier, no queue.
 * Work is split with molmo_pool_range, which depends only on (n, ith, nth), so which rows a
 * thread computes is deterministic; kernels are written so that the result of a row does not
 * depend on which thread computed it (1 thread vs N threads gives identical bits). */
#ifndef MOLMO_BASE_THREADPOOL_H
#define MOLMO_BASE_THREADPOOL_H

#include "molmo.h"

typedef struct molmo_pool molmo_pool;

/* Called on every thread of a run: ith in 0..nth-1, ith 0 is the caller's thread. */
typedef void (*molmo_pool_fn)(void *arg, int ith, int nth);

/* Creates a pool of n_threads threads in all, the caller's included (n_threads - 1 workers are
 * started). n_threads <= 0 means one per physical core of the affinity mask. *out owns the pool
 * (free with molmo_pool_free). MOLMO_ERR_NOMEM / MOLMO_ERR_INTERNAL (thread creation failed);
 * on failure *out is NULL and no thread is left running. */
molmo_status molmo_pool_create(int n_threads, molmo_pool **out, molmo_error *err);

/* Stops and joins the workers. NULL is a no-op. Must not race with molmo_pool_run. */
void molmo_pool_free(molmo_pool *p);

/* Threads taking part in a run (the caller's included); a NULL pool counts as 1. */
int molmo_pool_size(const molmo_pool *p);

/* Runs fn on every thread of the pool and returns when all calls returned. A NULL pool runs
 * fn(arg, 0, 1) inline. Not reentrant: fn must not call molmo_pool_run on the same pool, and
 * only one thread may drive a pool at a time. The run is a full memory barrier: what the caller
 * wrote before is visible to fn, and what fn wrote is visible to the caller afterwards. */
void molmo_pool_run(molmo_pool *p, molmo_pool_fn fn, void *arg);

/* Per-thread workspace owned by the pool: MOLMO_POOL_SCRATCH_BYTES, 64-byte aligned, for thread
 * ith (0 <= ith < size) of a run, valid until molmo_pool_free. Kernels use it for packed weight
 * panels so that they never allocate. A NULL pool has none (returns NULL). */
#define MOLMO_POOL_SCRATCH_BYTES (1024u * 1024u)
float *molmo_pool_scratch(molmo_pool *p, int ith);

/* A buffer shared by all threads of the pool, 64-byte aligned, of at least `bytes` bytes: the
 * op layer fills it in one run and reads it in the next (activations quantized once for every
 * thread of a matmul). Grown on demand and kept until molmo_pool_free; only the driving thread
 * may call this, between runs. NULL for a NULL pool or when the allocation fails (callers then
 * do without: nothing depends on it but speed). */
void *molmo_pool_shared(molmo_pool *p, size_t bytes);

/* Deterministic contiguous split of [0, n) into nth parts: part ith is [*begin, *end). Parts
 * differ in size by at most one, the larger ones first. */
void molmo_pool_range(int n, int ith, int nth, int *begin, int *end);

#endif

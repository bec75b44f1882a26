/* test_threadpool.c — the fork-join pool (base/threadpool.h) and CPU detection (base/cpu.h):
 * every thread index runs exactly once per run, runs are barriers (writes are visible after),
 * the NULL pool runs inline, the range split is a partition, creation failures clean up, and
 * the per-thread workspaces are distinct and aligned. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/threadpool.h"
#include "testutil.h"

enum { MAX_T = 8 };

typedef struct count_arg {
    atomic_int calls[MAX_T];
    atomic_int bad_nth;
    int expect_nth;
    long plain[MAX_T]; /* written without atomics by each thread; read by the caller after */
    int round;
} count_arg;

static void count_fn(void *p, int ith, int nth) {
    count_arg *a = p;
    if (nth != a->expect_nth || ith < 0 || ith >= nth) atomic_fetch_add(&a->bad_nth, 1);
    if (ith >= 0 && ith < MAX_T) {
        atomic_fetch_add(&a->calls[ith], 1);
        a->plain[ith] += a->round; /* visible to the caller once molmo_pool_run returned */
    }
}

static void test_runs(void **state) {
    (void)state;
    for (int n = 1; n <= MAX_T; n++) {
        molmo_pool *p = NULL;
        molmo_error err;
        assert_int_equal(molmo_pool_create(n, &p, &err), MOLMO_OK);
        assert_int_equal(molmo_pool_size(p), n);
        count_arg a;
        memset(&a, 0, sizeof a);
        a.expect_nth = n;
        const int rounds = n <= 2 ? 3000 : 300; /* more threads than cores: slow wake-ups */
        long want = 0;
        for (int r = 1; r <= rounds; r++) {
            a.round = r;
            want += r;
            molmo_pool_run(p, count_fn, &a);
            for (int i = 0; i < n; i++) /* the run is a barrier: every thread is done */
                if (a.plain[i] != want) fail_msg("pool %d: thread %d not done after round %d", n, i, r);
        }
        for (int i = 0; i < n; i++) assert_int_equal(atomic_load(&a.calls[i]), rounds);
        for (int i = n; i < MAX_T; i++) assert_int_equal(atomic_load(&a.calls[i]), 0);
        assert_int_equal(atomic_load(&a.bad_nth), 0);
        molmo_pool_free(p);
    }
}

static void test_null_pool(void **state) {
    (void)state;
    count_arg a;
    memset(&a, 0, sizeof a);
    a.expect_nth = 1;
    a.round = 1;
    assert_int_equal(molmo_pool_size(NULL), 1);
    molmo_pool_run(NULL, count_fn, &a);
    assert_int_equal(atomic_load(&a.calls[0]), 1);
    assert_int_equal(atomic_load(&a.bad_nth), 0);
    assert_null(molmo_pool_scratch(NULL, 0));
    molmo_pool_free(NULL);
}

/* Runs spaced out so that workers fall asleep on the condition variable in between. */
static void test_sleep_wake(void **state) {
    (void)state;
    molmo_pool *p;
    assert_int_equal(molmo_pool_create(3, &p, NULL), MOLMO_OK);
    count_arg a;
    memset(&a, 0, sizeof a);
    a.expect_nth = 3;
    a.round = 1;
    for (int r = 0; r < 5; r++) {
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        molmo_pool_run(p, count_fn, &a);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&a.calls[i]), 5);
    molmo_pool_free(p);
}

static void test_default_size_and_cpu(void **state) {
    (void)state;
    const molmo_cpu_features *f = molmo_cpu_get();
    assert_ptr_equal(f, molmo_cpu_get()); /* detected once, one immutable copy */
    assert_true(f->n_physical >= 1 && f->n_physical <= f->n_logical);
    assert_int_equal(molmo_cpu_physical_cores(), f->n_physical);
    if (f->avx512f) assert_true(f->avx2); /* every AVX-512 CPU has AVX2 */
    molmo_pool *p;
    assert_int_equal(molmo_pool_create(0, &p, NULL), MOLMO_OK);
    assert_int_equal(molmo_pool_size(p), f->n_physical);
    molmo_pool_free(p);
    assert_int_equal(molmo_pool_create(-3, &p, NULL), MOLMO_OK);
    assert_int_equal(molmo_pool_size(p), f->n_physical);
    molmo_pool_free(p);
    molmo_error err;
    assert_int_equal(molmo_pool_create(100000, &p, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(p);
    assert_non_null(strstr(err.msg, "100000"));
}

static void test_range(void **state) {
    (void)state;
    for (int n = 0; n <= 70; n++)
        for (int nth = 1; nth <= 9; nth++) {
            int prev_end = 0, min_sz = n + 1, max_sz = -1;
            for (int ith = 0; ith < nth; ith++) {
                int b, e, b2, e2;
                molmo_pool_range(n, ith, nth, &b, &e);
                molmo_pool_range(n, ith, nth, &b2, &e2);
                assert_true(b == b2 && e == e2);    /* deterministic */
                assert_int_equal(b, prev_end);      /* contiguous, in order */
                assert_true(e >= b);
                prev_end = e;
                min_sz = e - b < min_sz ? e - b : min_sz;
                max_sz = e - b > max_sz ? e - b : max_sz;
                if (ith > 0 && e - b > 0) { /* larger parts first */
                    int pb, pe;
                    molmo_pool_range(n, ith - 1, nth, &pb, &pe);
                    assert_true(pe - pb >= e - b);
                }
            }
            assert_int_equal(prev_end, n); /* covers [0, n) */
            assert_true(max_sz - min_sz <= 1);
        }
    int b, e;
    molmo_pool_range(10, 5, 3, &b, &e); /* out-of-range thread: empty */
    assert_int_equal(b, e);
}

/* Allocation failures at every step of creation: an error, NULL, nothing leaked (ASan). */
static void test_create_oom(void **state) {
    (void)state;
    for (long k = 0; k < 3; k++) {
        molmo_pool *p = (molmo_pool *)(uintptr_t)1;
        molmo_error err;
        molmo_alloc_fail_after(k);
        const molmo_status st = molmo_pool_create(4, &p, &err);
        molmo_alloc_fail_after(-1);
        assert_int_equal(st, MOLMO_ERR_NOMEM);
        assert_null(p);
        assert_non_null(strstr(err.msg, "thread pool"));
    }
    molmo_pool *p;
    molmo_alloc_fail_after(3); /* enough for all three allocations */
    assert_int_equal(molmo_pool_create(4, &p, NULL), MOLMO_OK);
    molmo_alloc_fail_after(-1);
    molmo_pool_free(p);
}

typedef struct ws_arg {
    molmo_pool *p;
    float *ws[MAX_T];
} ws_arg;

static void ws_fn(void *v, int ith, int nth) {
    ws_arg *a = v;
    (void)nth;
    a->ws[ith] = molmo_pool_scratch(a->p, ith);
    /* Each thread may write its whole workspace while the others write theirs. */
    memset(a->ws[ith], ith + 1, MOLMO_POOL_SCRATCH_BYTES);
}

static void test_scratch(void **state) {
    (void)state;
    ws_arg a = {0};
    assert_int_equal(molmo_pool_create(4, &a.p, NULL), MOLMO_OK);
    molmo_pool_run(a.p, ws_fn, &a);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(a.ws[i], molmo_pool_scratch(a.p, i));
        assert_int_equal((uintptr_t)a.ws[i] % 64, 0);
        const unsigned char *c = (const unsigned char *)a.ws[i];
        assert_true(c[0] == i + 1 && c[MOLMO_POOL_SCRATCH_BYTES - 1] == i + 1); /* no overlap */
    }
    assert_null(molmo_pool_scratch(a.p, 4));
    assert_null(molmo_pool_scratch(a.p, -1));
    molmo_pool_free(a.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs),       cmocka_unit_test(test_null_pool),
        cmocka_unit_test(test_sleep_wake), cmocka_unit_test(test_default_size_and_cpu),
        cmocka_unit_test(test_range),      cmocka_unit_test(test_create_oom),
        cmocka_unit_test(test_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_bigwrite.c — the 2 MiB-aligned buffered writer (src/io/bigwrite.c) behind `molmo
 * convert` and `molmo pull`: the file gets exactly the bytes put, and every write but a flush's
 * ends on an aligned file offset (that is what gives the page cache huge folios). Writes go
 * through a recorder that keeps an image of the file and can cut writes short, fail or be
 * interrupted; one case writes a real file. Also the reading side: the mapping's alignment. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/bigwrite.h"
#include "io/mapfile.h"
#include "testutil.h"

#define A MOLMO_BIGWRITE_ALIGN
#define IMAGE_BYTES ((size_t)64 << 20)
#define MAX_CALLS 4096

static struct recorder {
    unsigned char *image;     /* the file */
    uint64_t size;            /* its length */
    uint64_t off[MAX_CALLS];  /* where each write started */
    size_t len[MAX_CALLS];    /* what it wrote */
    int calls;
    size_t short_to;          /* > 0: a write takes at most this much */
    int fail_at, fail_errno;  /* the call (1-based) that fails, and how */
} rec;

static ssize_t recorder(int fd, const void *buf, size_t n, off_t off) {
    (void)fd;
    const int call = ++rec.calls;
    assert_true(call <= MAX_CALLS);
    if (call == rec.fail_at) {
        errno = rec.fail_errno;
        return -1;
    }
    if (rec.short_to && n > rec.short_to) n = rec.short_to;
    assert_true((uint64_t)off + n <= IMAGE_BYTES);
    memcpy(rec.image + off, buf, n);
    rec.off[call - 1] = (uint64_t)off;
    rec.len[call - 1] = n;
    if ((uint64_t)off + n > rec.size) rec.size = (uint64_t)off + n;
    return (ssize_t)n;
}

static void reset_recorder(void) {
    memset(rec.image, 0, IMAGE_BYTES);
    rec.size = 0;
    rec.calls = 0;
    rec.short_to = 0;
    rec.fail_at = 0;
}

static void fill_pattern(unsigned char *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (unsigned char)(seed >> 24);
    }
}

/* Puts `total` bytes of src in pieces of the given sizes (cycled), from file offset start. */
static void put_pieces(molmo_bigwrite *w, const unsigned char *src, size_t total,
                       const size_t *sizes, int n_sizes) {
    for (size_t done = 0, i = 0; done < total; i++) {
        size_t k = sizes[i % (size_t)n_sizes];
        k = k < total - done ? k : total - done;
        assert_int_equal(molmo_bigwrite_put(w, src + done, k), 0);
        done += k;
    }
}

/* Every write but the last (the flush) ends on a boundary; the writes cover [start, end)
 * in order, without gaps. */
static void assert_aligned_writes(uint64_t start, uint64_t end) {
    uint64_t at = start;
    for (int c = 0; c < rec.calls; c++) {
        assert_int_equal(rec.off[c], at);
        at += rec.len[c];
        if (c + 1 < rec.calls && !rec.short_to) assert_int_equal(at % A, 0);
    }
    assert_int_equal(at, end);
}

static void test_pieces_from_zero(void **state) {
    (void)state;
    static const size_t sizes[] = {1, 4096, 16384, 3 << 20, 77, 16 << 20, 65536, 1 << 20};
    const size_t total = (size_t)37 << 20 | 12345;
    unsigned char *src = malloc(total);
    fill_pattern(src, total, 1);
    reset_recorder();
    molmo_bigwrite w;
    assert_int_equal(molmo_bigwrite_init(&w, 3, 0, 0), 0);
    w.pw = recorder;
    put_pieces(&w, src, total, sizes, 8);
    assert_int_equal(molmo_bigwrite_end(&w), total);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    assert_int_equal(rec.size, total);
    assert_memory_equal(rec.image, src, total);
    assert_aligned_writes(0, total);
    assert_true(rec.calls <= 6); /* 8 MiB writes (one straight from the 16 MiB piece) */
    molmo_bigwrite_free(&w);
    free(src);
}

/* A resumed download starts at an odd offset: its first write ends on the first boundary it
 * can reach, the rest are aligned. */
static void test_resume_at_odd_offset(void **state) {
    (void)state;
    static const size_t sizes[] = {9 << 20, 16384, 1000, 2 << 20}; /* a long one first */
    const uint64_t start = 5 * A + 12345;
    const size_t total = (size_t)20 << 20;
    unsigned char *src = malloc(total);
    fill_pattern(src, total, 2);
    reset_recorder();
    molmo_bigwrite w;
    assert_int_equal(molmo_bigwrite_init(&w, 3, start, 4 * A), 0);
    w.pw = recorder;
    put_pieces(&w, src, total, sizes, 4);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    assert_memory_equal(rec.image + start, src, total);
    assert_aligned_writes(start, start + total);
    assert_true(rec.len[0] >= 3 * A); /* up to the last boundary within the buffer */
    molmo_bigwrite_free(&w);
    free(src);
}

/* Short writes and EINTR are continued; a failing write reports its errno, and the file then
 * holds a prefix of what was put. */
static void test_short_interrupted_failed(void **state) {
    (void)state;
    const size_t total = (size_t)11 << 20;
    unsigned char *src = malloc(total);
    fill_pattern(src, total, 3);
    static const size_t sizes[] = {300000};
    molmo_bigwrite w;

    reset_recorder();
    rec.short_to = 700000;
    assert_int_equal(molmo_bigwrite_init(&w, 3, 0, 0), 0);
    w.pw = recorder;
    put_pieces(&w, src, total, sizes, 1);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    assert_memory_equal(rec.image, src, total);
    assert_aligned_writes(0, total);

    reset_recorder();
    rec.fail_at = 1, rec.fail_errno = EINTR;
    molmo_bigwrite_reset(&w, 0);
    put_pieces(&w, src, total, sizes, 1);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    assert_memory_equal(rec.image, src, total);

    reset_recorder();
    rec.fail_at = 2, rec.fail_errno = ENOSPC;
    molmo_bigwrite_reset(&w, 0);
    int failed = 0;
    for (size_t done = 0; done < total && !failed; done += sizes[0]) {
        const size_t k = total - done < sizes[0] ? total - done : sizes[0];
        failed = molmo_bigwrite_put(&w, src + done, k) != 0;
    }
    if (!failed) failed = molmo_bigwrite_flush(&w) != 0;
    assert_true(failed);
    assert_int_equal(errno, ENOSPC);
    assert_memory_equal(rec.image, src, rec.size); /* a prefix */
    molmo_bigwrite_free(&w);
    free(src);
}

/* reset: a file truncated anew starts over at 0 and forgets what was held. */
static void test_reset_drops_held_bytes(void **state) {
    (void)state;
    unsigned char a[1000], b[3000];
    fill_pattern(a, sizeof a, 4);
    fill_pattern(b, sizeof b, 5);
    reset_recorder();
    molmo_bigwrite w;
    assert_int_equal(molmo_bigwrite_init(&w, 3, 0, 0), 0);
    w.pw = recorder;
    assert_int_equal(molmo_bigwrite_put(&w, a, sizeof a), 0);
    molmo_bigwrite_reset(&w, 0);
    assert_int_equal(molmo_bigwrite_put(&w, b, sizeof b), 0);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.size, sizeof b);
    assert_memory_equal(rec.image, b, sizeof b);
    molmo_bigwrite_free(&w);
}

/* Through the real pwrite into a file. */
static void test_real_file(void **state) {
    (void)state;
    char path[] = "/tmp/molmo_bigwrite_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const size_t total = (size_t)9 << 20 | 777;
    unsigned char *src = malloc(total), *back = malloc(total + 1);
    fill_pattern(src, total, 6);
    static const size_t sizes[] = {123457, 4 << 20};
    molmo_bigwrite w;
    assert_int_equal(molmo_bigwrite_init(&w, fd, 0, 0), 0);
    put_pieces(&w, src, total, sizes, 2);
    assert_int_equal(molmo_bigwrite_flush(&w), 0);
    molmo_bigwrite_free(&w);
    assert_int_equal(pread(fd, back, total + 1, 0), (ssize_t)total);
    assert_memory_equal(back, src, total);
    close(fd);
    unlink(path);
    free(src);
    free(back);
}

/* The reading side: a file of more than 2 MiB maps at a 2 MiB-aligned address (so the page
 * cache's 2 MiB folios can map as huge pages), with its bytes; the huge-page share is a share
 * or unknown; a small file maps anywhere. */
static void test_map_aligned(void **state) {
    (void)state;
    char path[] = "/tmp/molmo_bigmap_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    const size_t sizes[] = {(size_t)5 << 20 | 4321, 1000};
    for (int i = 0; i < 2; i++) {
        unsigned char *src = malloc(sizes[i]);
        fill_pattern(src, sizes[i], 7 + (uint32_t)i);
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(pwrite(fd, src, sizes[i], 0), (ssize_t)sizes[i]);
        molmo_mapfile m;
        molmo_error err;
        assert_int_equal(molmo_mapfile_open(&m, path, &err), MOLMO_OK);
        assert_int_equal(m.size, sizes[i]);
        if (sizes[i] >= A) assert_int_equal((uintptr_t)m.data % A, 0);
        assert_memory_equal(m.data, src, sizes[i]);
        const double share = molmo_mapfile_huge_share(&m);
        assert_true(share == -1 || (share >= 0 && share <= 1));
        molmo_mapfile_close(&m);
        free(src);
    }
    close(fd);
    unlink(path);
    /* fresh memory for huge pages: 2 MiB-aligned, zeros, writable */
    const size_t n = (size_t)5 << 20 | 1;
    unsigned char *h = molmo_huge_alloc(n);
    assert_non_null(h);
    assert_int_equal((uintptr_t)h % A, 0);
    assert_int_equal(h[0] | h[n / 2] | h[n - 1], 0);
    memset(h, 0xab, n);
    molmo_huge_free(h, n);
}

int main(void) {
    rec.image = malloc(IMAGE_BYTES);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_from_zero),
        cmocka_unit_test(test_resume_at_odd_offset),
        cmocka_unit_test(test_short_interrupted_failed),
        cmocka_unit_test(test_reset_drops_held_bytes),
        cmocka_unit_test(test_real_file),
        cmocka_unit_test(test_map_aligned),
    };
    const int r = cmocka_run_group_tests(tests, NULL, NULL);
    free(rec.image);
    return r;
}

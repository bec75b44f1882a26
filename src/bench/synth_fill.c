/* synth_fill.c — random weights for a generated bf16 checkpoint, written in place over the
 * sparse file molmo_synth_checkpoint made, on all threads (MolmoE-1B's 14 GB take about 20 s
 * here, mostly the disk).
 *
 * Each tensor's values come in pieces of 1 Mi values; piece (tensor i, chunk c) draws from its
 * own generator state (seed, i, c), so the bytes do not depend on which thread makes which
 * value. The threads take the file's 2 MiB blocks in turn and write each block at once.
 * Values are uniform in [-0.05, 0.05) like presets.c's, 16 bits of randomness each (4 values per
 * 64-bit draw: the generator is the cost, and timing needs no more resolution). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/fp16.h"
#include "base/threadpool.h"
#include "bench/synth.h"
#include "io/bigwrite.h"
#include "io/safetensors.h"

#define PIECE_VALUES ((uint64_t)1 << 20)
#define BLOCK_BYTES MOLMO_BIGWRITE_ALIGN

typedef struct piece_src {
    const char *name;     /* points into the open safetensors table */
    uint64_t file_off;    /* where the tensor's data starts in the file */
    uint64_t n;           /* values */
    float centre;         /* 1 for norm weights, else 0 */
} piece_src;

typedef struct fill_job {
    int fd;
    uint64_t seed;
    piece_src *t;          /* in file order */
    int n_tensors;
    uint64_t data_lo, data_hi; /* the file's bytes that hold tensor data */
    uint64_t first_block;  /* data_lo's block of the file's grid */
    uint64_t n_blocks;
    atomic_ullong next;    /* next block to take */
    atomic_ullong done_bytes;
    atomic_int stop;       /* 1: cancelled, 2: a write failed, 3: out of memory */
    atomic_int failed;     /* a tensor whose write failed */
    molmo_bench_progress_fn progress;
    void *user;
    uint64_t total_bytes;
    double t0;
} fill_job;

#define GOLDEN 0x9e3779b97f4a7c15ull

/* splitmix64's output for the state after one more step from s. */
static uint64_t splitmix_out(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Values [e0, e1) of tensor ti into out: value e is lane e % 4 (16 bits each) of draw
 * (e % PIECE_VALUES) / 4 of piece e / PIECE_VALUES's generator. A splitmix state only adds
 * GOLDEN per draw, so any draw is reached at once, and any run of values is the same bytes
 * whoever makes it. */
static void gen_values(const fill_job *j, int ti, uint64_t e0, uint64_t e1, uint16_t *out) {
    const piece_src *t = &j->t[ti];
    uint64_t r = 0, drawn = UINT64_MAX; /* the draw r holds: piece * PIECE_VALUES / 4 + q */
    for (uint64_t e = e0; e < e1; e++) {
        const uint64_t c = e / PIECE_VALUES, q = e % PIECE_VALUES / 4;
        if (c * (PIECE_VALUES / 4) + q != drawn) {
            const uint64_t s0 = j->seed ^ ((uint64_t)ti << 40) ^ (c * 0xd1b54a32d192ed03ull);
            r = splitmix_out(s0 + (q + 1) * GOLDEN);
            drawn = c * (PIECE_VALUES / 4) + q;
        }
        const uint64_t bits = (r >> (16 * (e % 4))) & 0xffff;
        out[e - e0] = molmo_f32_to_bf16(t->centre + ((float)bits / 65536.0f - 0.5f) * 0.1f);
    }
}

/* Writes [from, to) of the file from buf (which holds the block from block_off). */
static int write_run(fill_job *j, const uint16_t *buf, uint64_t block_off, uint64_t from,
                     uint64_t to, int ti) {
    if (to <= from) return 0;
    const size_t bytes = (size_t)(to - from);
    const unsigned char *p = (const unsigned char *)buf + (from - block_off);
    if (pwrite(j->fd, p, bytes, (off_t)from) != (ssize_t)bytes) {
        atomic_store(&j->failed, ti);
        return -1;
    }
    atomic_fetch_add(&j->done_bytes, bytes);
    return 0;
}

/* Block b of the file's 2 MiB grid: the values of every tensor that lies in it, then one
 * write per run of adjacent tensors (one in all, but at the ends of the data): whole aligned
 * blocks, so the page cache holds the checkpoint in 2 MiB folios (io/bigwrite.h). */
static int write_block(fill_job *j, uint64_t b, uint16_t *buf) {
    const uint64_t block_off = b * BLOCK_BYTES;
    const uint64_t lo = block_off > j->data_lo ? block_off : j->data_lo;
    const uint64_t hi = block_off + BLOCK_BYTES < j->data_hi ? block_off + BLOCK_BYTES : j->data_hi;
    int first = 0, last = j->n_tensors - 1;
    while (first < last) { /* the first tensor that ends after lo */
        const int mid = (first + last) / 2;
        if (j->t[mid].file_off + 2 * j->t[mid].n > lo) last = mid;
        else first = mid + 1;
    }
    uint64_t run_from = lo, run_to = lo;
    int run_t = first;
    for (int i = first; i < j->n_tensors && j->t[i].file_off < hi; i++) {
        const piece_src *t = &j->t[i];
        const uint64_t from = t->file_off > lo ? t->file_off : lo;
        const uint64_t end = t->file_off + 2 * t->n, to = end < hi ? end : hi;
        if (to <= from) continue;
        if (from != run_to) { /* a gap: what came before goes out now */
            if (write_run(j, buf, block_off, run_from, run_to, run_t) != 0) return -1;
            run_from = from, run_t = i;
        }
        gen_values(j, i, (from - t->file_off) / 2, (to - t->file_off) / 2,
                   buf + (from - block_off) / 2);
        run_to = to;
    }
    return write_run(j, buf, block_off, run_from, run_to, run_t);
}

/* One progress report; non-zero when the caller asks to stop. */
static int report(fill_job *j) {
    molmo_bench_progress pr = {"weights", NULL, atomic_load(&j->done_bytes), j->total_bytes,
                               (molmo_now_ms() - j->t0) * 1e-3};
    return j->progress(j->user, &pr);
}

static void fill_worker(void *arg, int ith, int nth) {
    fill_job *j = arg;
    (void)nth;
    uint16_t *buf = molmo_malloc(BLOCK_BYTES);
    if (!buf) {
        atomic_store(&j->stop, 3);
        return;
    }
    while (atomic_load(&j->stop) == 0) {
        const uint64_t k = atomic_fetch_add(&j->next, 1);
        if (k >= j->n_blocks) break;
        if (write_block(j, j->first_block + k, buf) != 0) atomic_store(&j->stop, 2);
        /* the caller's thread is the only one that reports */
        if (ith == 0 && j->progress && report(j)) atomic_store(&j->stop, 1);
    }
    molmo_free(buf);
}

static int by_offset(const void *a, const void *b) {
    const piece_src *x = a, *y = b;
    return x->file_off < y->file_off ? -1 : x->file_off > y->file_off;
}

/* Lists the tensors of the open file `st` in file order (writes then go front to back). */
static molmo_status list_tensors(const molmo_safetensors *st, const char *path, fill_job *j,
                                 molmo_error *err) {
    molmo_status s = MOLMO_OK;
    j->t = molmo_calloc(st->n_tensors ? (size_t)st->n_tensors : 1, sizeof *j->t);
    if (!j->t) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    if (!st->n_tensors) return MOLMO_OK;
    /* offsets are relative to the data buffer, which starts after the header */
    const uint64_t data_start =
        (uint64_t)((const unsigned char *)st->tensors[0].data - st->maps[0].data) -
        st->tensors[0].offset;
    for (int i = 0; i < st->n_tensors; i++) {
        const molmo_st_tensor *x = &st->tensors[i];
        if (x->dtype != MOLMO_DTYPE_BF16 || x->file_index != 0)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: '%s' is not a bf16 tensor of one file",
                             path, x->name);
        const char *dot = strrchr(x->name, '.');
        const int norm = x->n_dims == 1 && dot && !strcmp(dot, ".weight") &&
                         (strstr(x->name, "norm") || strstr(x->name, "ln"));
        j->t[i] = (piece_src){x->name, data_start + x->offset, x->n_elements, norm ? 1.0f : 0.0f};
        j->total_bytes += x->n_bytes;
    }
    j->n_tensors = st->n_tensors;
    qsort(j->t, (size_t)j->n_tensors, sizeof *j->t, by_offset);
    j->data_lo = UINT64_MAX;
    for (int i = 0; i < j->n_tensors; i++) {
        const uint64_t end = j->t[i].file_off + 2 * j->t[i].n;
        if (j->t[i].n && j->t[i].file_off < j->data_lo) j->data_lo = j->t[i].file_off;
        if (end > j->data_hi) j->data_hi = end;
    }
    if (j->data_lo < j->data_hi) {
        j->first_block = j->data_lo / BLOCK_BYTES;
        j->n_blocks = (j->data_hi + BLOCK_BYTES - 1) / BLOCK_BYTES - j->first_block;
    }
    return s;
}

molmo_status molmo_bench_fill_random(const char *path, uint64_t seed, int n_threads,
                                     molmo_bench_progress_fn progress, void *user,
                                     molmo_error *err) {
    fill_job j;
    memset(&j, 0, sizeof j);
    j.seed = seed;
    j.progress = progress;
    j.user = user;
    j.fd = -1;
    atomic_init(&j.next, 0);
    atomic_init(&j.done_bytes, 0);
    atomic_init(&j.stop, 0);
    atomic_init(&j.failed, 0);
    molmo_pool *pool = NULL;
    molmo_safetensors st; /* kept open: the tensor names of the messages point into it */
    molmo_status s = molmo_st_open(&st, path, err);
    if (s != MOLMO_OK) return s;
    s = list_tensors(&st, path, &j, err);
    if (s == MOLMO_OK && (j.fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
        s = molmo_err(err, MOLMO_ERR_IO, "%s: cannot open for writing", path);
    if (s == MOLMO_OK) s = molmo_pool_create(n_threads, &pool, err);
    if (s == MOLMO_OK) {
        j.t0 = molmo_now_ms();
        /* Reports at 0 before any write and at the end: the other threads may take every
         * block before the caller's thread takes one (a small file, a busy machine), and a
         * caller that cancels must be heard all the same. A stop asked at the end is moot. */
        if (progress && report(&j)) atomic_store(&j.stop, 1);
        else molmo_pool_run(pool, fill_worker, &j);
        if (progress && atomic_load(&j.stop) == 0) (void)report(&j);
        const int stop = atomic_load(&j.stop);
        if (stop == 1) s = molmo_err(err, MOLMO_ERR_CANCELLED, "%s: cancelled", path);
        else if (stop == 2)
            s = molmo_err(err, MOLMO_ERR_IO, "%s: writing '%s' failed (disk full?)", path,
                          j.t[atomic_load(&j.failed)].name);
        else if (stop == 3) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    }
    if (j.fd >= 0 && close(j.fd) != 0 && s == MOLMO_OK)
        s = molmo_err(err, MOLMO_ERR_IO, "%s: write failed", path);
    molmo_pool_free(pool);
    molmo_free(j.t);
    molmo_st_close(&st);
    return s;
}

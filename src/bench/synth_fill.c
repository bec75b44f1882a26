/* synth_fill.c — random weights for a generated bf16 checkpoint, written in place over the
 * sparse file molmo_synth_checkpoint made, on all threads (MolmoE-1B's 14 GB take about 20 s
 * here, mostly the disk).
 *
 * The work is cut into pieces of 1 Mi values; piece (tensor i, chunk c) draws from its own
 * generator state (seed, i, c), so the bytes do not depend on which thread writes which piece.
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
#include "io/safetensors.h"

#define PIECE_VALUES ((uint64_t)1 << 20)

typedef struct piece_src {
    const char *name;     /* points into the open safetensors table */
    uint64_t file_off;    /* where the tensor's data starts in the file */
    uint64_t n;           /* values */
    float centre;         /* 1 for norm weights, else 0 */
} piece_src;

typedef struct fill_job {
    int fd;
    uint64_t seed;
    piece_src *t;
    int n_tensors;
    uint64_t *first_piece; /* [n_tensors + 1]: prefix sums of pieces per tensor */
    atomic_ullong next;    /* next piece to take */
    atomic_ullong done_bytes;
    atomic_int stop;       /* 1: cancelled, 2: a write failed, 3: out of memory */
    atomic_int failed;     /* the tensor whose write failed */
    molmo_bench_progress_fn progress;
    void *user;
    uint64_t total_bytes;
    double t0;
} fill_job;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Writes piece p of the job (which tensor: a search over the prefix sums). */
static int write_piece(fill_job *j, uint64_t p, uint16_t *buf) {
    int lo = 0, hi = j->n_tensors - 1;
    while (lo < hi) { /* the last tensor whose first piece is <= p */
        int mid = (lo + hi + 1) / 2;
        if (j->first_piece[mid] <= p) lo = mid;
        else hi = mid - 1;
    }
    const piece_src *t = &j->t[lo];
    const uint64_t c = p - j->first_piece[lo], begin = c * PIECE_VALUES;
    const uint64_t n = t->n - begin < PIECE_VALUES ? t->n - begin : PIECE_VALUES;
    uint64_t state = j->seed ^ ((uint64_t)lo << 40) ^ (c * 0xd1b54a32d192ed03ull);
    for (uint64_t i = 0; i < n; i += 4) {
        uint64_t r = splitmix(&state);
        for (uint64_t k = 0; k < 4 && i + k < n; k++, r >>= 16) {
            const float v = t->centre + ((float)(r & 0xffff) / 65536.0f - 0.5f) * 0.1f;
            buf[i + k] = molmo_f32_to_bf16(v);
        }
    }
    const size_t bytes = (size_t)n * 2;
    if (pwrite(j->fd, buf, bytes, (off_t)(t->file_off + begin * 2)) != (ssize_t)bytes) {
        atomic_store(&j->failed, lo);
        return -1;
    }
    atomic_fetch_add(&j->done_bytes, bytes);
    return 0;
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
    uint16_t *buf = molmo_malloc(PIECE_VALUES * 2);
    if (!buf) {
        atomic_store(&j->stop, 3);
        return;
    }
    const uint64_t n_pieces = j->first_piece[j->n_tensors];
    while (atomic_load(&j->stop) == 0) {
        const uint64_t p = atomic_fetch_add(&j->next, 1);
        if (p >= n_pieces) break;
        if (write_piece(j, p, buf) != 0) atomic_store(&j->stop, 2);
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
    j->first_piece = molmo_calloc((size_t)st->n_tensors + 1, sizeof *j->first_piece);
    if (!j->t || !j->first_piece) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
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
    for (int i = 0; i < j->n_tensors; i++)
        j->first_piece[i + 1] = j->first_piece[i] + (j->t[i].n + PIECE_VALUES - 1) / PIECE_VALUES;
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
         * piece before the caller's thread takes one (a small file, a busy machine), and a
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
    molmo_free(j.first_piece);
    molmo_st_close(&st);
    return s;
}

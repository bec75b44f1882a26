/* repack.c — Q8_0 / Q4_0 matrices laid out for the kernels at load (repack.h).
 *
 * Why: a row is 34- or 18-byte blocks, so a decode GEMV reads 16 rows' blocks from 16 streams,
 * transposes them in registers and gathers their scales: MolmoE's q4_0 decode ran at 71-79% of
 * the read bandwidth. In the X16 layouts the same bytes lie as the kernels use them (two
 * sequential streams per 16 columns), as llama.cpp's CPU "repack" does for its own kernels.
 * Only a copy of the weights can be rewritten, so this runs with --no-mmap alone; the mapped
 * default keeps the file's layout (docs/design.md). */
#define _POSIX_C_SOURCE 200809L
#include "model/repack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/mapfile.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

#define WORKERS 4 /* like the readers of the copy: the layout runs at memory speed */

typedef struct repack_list {
    molmo_tensor **t; /* NULL while counting */
    int n;
    size_t max_group_bytes, bytes;
} repack_list;

static void collect(void *user, molmo_tensor *t) {
    repack_list *l = user;
    if ((t->dtype != MOLMO_DTYPE_Q4_0 && t->dtype != MOLMO_DTYPE_Q8_0) || t->n_dims != 2 ||
        t->shape[0] <= 0 || t->shape[0] % MOLMO_X16_ROWS != 0)
        return;
    const size_t rb = molmo_dtype_row_bytes(t->dtype, t->shape[1]);
    if (rb == 0) return;
    if (l->t) l->t[l->n] = t;
    l->n++;
    if (MOLMO_X16_ROWS * rb > l->max_group_bytes) l->max_group_bytes = MOLMO_X16_ROWS * rb;
    l->bytes += rb * (size_t)t->shape[0];
}

typedef struct repack_work {
    const repack_list *l;
    atomic_int next;
    atomic_int done;
} repack_work;

/* Takes matrices one at a time until none is left (or no buffer can be had). */
static void *repack_worker(void *arg) {
    repack_work *w = arg;
    void *tmp = molmo_malloc(w->l->max_group_bytes);
    if (!tmp) return NULL;
    for (;;) {
        const int i = atomic_fetch_add(&w->next, 1);
        if (i >= w->l->n) break;
        molmo_tensor *t = w->l->t[i];
        molmo_x16_pack(t->dtype, (void *)t->data, t->shape[0], t->shape[1], tmp);
        t->dtype = t->dtype == MOLMO_DTYPE_Q8_0 ? MOLMO_DTYPE_Q8_0_X16 : MOLMO_DTYPE_Q4_0_X16;
        atomic_fetch_add(&w->done, 1);
    }
    molmo_free(tmp);
    return NULL;
}

/* Every map writable (1), or back to read-only (0); returns 0 when all agreed. */
static int maps_writable(molmo_model *m, int on) {
    int bad = 0;
    for (int i = 0; i < m->st.n_files; i++) bad |= molmo_mapfile_set_writable(&m->st.maps[i], on) != 0;
    return bad ? -1 : 0;
}

int molmo_model_repack(molmo_model *m, molmo_log_fn log, void *log_user) {
    if (!molmo_kernels_x16()) return 0;
    repack_list l = {0};
    molmo_weights_each_matrix(&m->w, &m->cfg, collect, &l);
    if (l.n == 0) return 0;
    const double t0 = molmo_now_ms();
    l.t = molmo_calloc((size_t)l.n, sizeof *l.t);
    if (!l.t || maps_writable(m, 1) != 0) {
        molmo_log(log, log_user, MOLMO_LOG_WARN, "%s: q8_0 / q4_0 matrices kept in the file's layout "
                  "(%s)", m->path, l.t ? "the copy cannot be made writable" : "out of memory");
        maps_writable(m, 0);
        molmo_free(l.t);
        return 0;
    }
    l.n = 0;
    l.bytes = 0;
    molmo_weights_each_matrix(&m->w, &m->cfg, collect, &l);
    repack_work w = {.l = &l};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const int nw = cpus < 1 ? 1 : cpus > WORKERS ? WORKERS : (int)cpus;
    pthread_t tid[WORKERS];
    int started[WORKERS] = {0};
    for (int i = 1; i < nw; i++) started[i] = pthread_create(&tid[i], NULL, repack_worker, &w) == 0;
    repack_worker(&w);
    for (int i = 1; i < nw; i++)
        if (started[i]) pthread_join(tid[i], NULL);
    maps_writable(m, 0);
    const int done = atomic_load(&w.done);
    if (done < l.n)
        molmo_log(log, log_user, MOLMO_LOG_WARN, "%s: %d of %d q8_0 / q4_0 matrices kept in the file's "
                  "layout (out of memory)", m->path, l.n - done, l.n);
    molmo_log(log, log_user, MOLMO_LOG_INFO, "%s: %d q8_0 / q4_0 matrices (of %.2f GB) interleaved "
              "by 16 rows for the kernels in %.2f s", m->path, done, l.bytes / 1e9,
              (molmo_now_ms() - t0) / 1e3);
    molmo_free(l.t);
    return done;
}

/* ops.c — the op layer: picks the kernel table once (cpu features through pthread_once, capped
 * by MOLMO_KERNELS or overridden by force_reference) and splits each op over the thread pool.
 *
 * Threading rules (STYLE.md §5): work is divided over output rows, output columns or attention
 * items with molmo_pool_range, never over a reduction, and every kernel computes an element the
 * same way whatever range it gets, so results are bit-identical for any pool size. Ops too
 * small to repay waking the workers run on the caller's thread alone (same bits again). */
#include "kernels/ops.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/error.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

/* Below these sizes an op runs on one thread: a pool wake-up costs a few microseconds. */
#define MIN_PARALLEL_FLOPS (1 << 17)
#define MIN_PARALLEL_ELEMS (1 << 14)

/* ------------------------------------------------------------------ kernel table selection */

static const molmo_kernels *g_best = &molmo_kernels_ref_table;
static pthread_once_t g_best_once = PTHREAD_ONCE_INIT;
static atomic_int g_force_ref;
static atomic_int g_amx_off;
static atomic_int g_avx_vnni_off;
static int g_avx_vnni; /* AVX-VNNI for the AVX2 quantized kernels (set with g_best) */
static int g_amx; /* AMX allowed by the CPU and MOLMO_KERNELS (set with g_best) */
static int g_amx_bf16; /* AMX-BF16 likewise */
static int g_bf16_dot; /* AVX512-BF16 dot products for bf16 activations (set with g_best) */

#if defined(__x86_64__)
static int has_avx2(const molmo_cpu_features *f) { return f->avx2 && f->fma && f->f16c; }
static int has_avx512(const molmo_cpu_features *f) {
    return f->avx512f && f->avx512bw && f->avx512vl && f->f16c && f->fma;
}
#endif

/* MOLMO_KERNELS=ref|avx2|avx512|amx caps the choice (debugging, and running the AVX2 path on an
 * AVX-512 machine, or AVX-512 without AMX); unset or unknown means no cap. Read once, here. */
static void pick_best(void) {
    const char *cap = getenv("MOLMO_KERNELS");
    int level = 3;
    if (cap && strcmp(cap, "ref") == 0) level = 0;
    if (cap && strcmp(cap, "avx2") == 0) level = 1;
    if (cap && strcmp(cap, "avx512") == 0) level = 2;
    g_best = &molmo_kernels_ref_table;
#if defined(__x86_64__)
    const molmo_cpu_features *f = molmo_cpu_get();
    if (level >= 1 && has_avx2(f)) g_best = &molmo_kernels_avx2_table;
    if (level >= 2 && has_avx512(f)) g_best = &molmo_kernels_avx512_table;
    g_amx = level >= 3 && has_avx512(f) && f->avx512vnni && f->amx_int8;
    g_avx_vnni = level >= 1 && has_avx2(f) && f->avx_vnni;
    g_amx_bf16 = level >= 3 && has_avx512(f) && f->amx_bf16;
    /* AMD only: on a Xeon SPR VDPBF16PS ran at ~0.6x the FMA GEMM (221 vs 371 GFLOP/s), and
     * Intel CPUs with AVX512-BF16 and AMX take the AMX path anyway */
    g_bf16_dot = level >= 2 && has_avx512(f) && f->avx512bf16 && f->amd;
#else
    (void)level;
#endif
}

const molmo_kernels *molmo_kernels_get(void) {
    if (atomic_load_explicit(&g_force_ref, memory_order_relaxed)) return &molmo_kernels_ref_table;
    pthread_once(&g_best_once, pick_best);
    return g_best;
}

const molmo_kernels *molmo_kernels_ref(void) { return &molmo_kernels_ref_table; }

const molmo_kernels *molmo_kernels_avx2(void) {
#if defined(__x86_64__)
    return has_avx2(molmo_cpu_get()) ? &molmo_kernels_avx2_table : NULL;
#else
    return NULL;
#endif
}

const molmo_kernels *molmo_kernels_avx512(void) {
#if defined(__x86_64__)
    return has_avx512(molmo_cpu_get()) ? &molmo_kernels_avx512_table : NULL;
#else
    return NULL;
#endif
}

int molmo_kernels_amx(void) {
    pthread_once(&g_best_once, pick_best);
    return g_amx && !atomic_load_explicit(&g_amx_off, memory_order_relaxed);
}

int molmo_kernels_amx_bf16(void) {
    pthread_once(&g_best_once, pick_best);
    return g_amx_bf16 && !atomic_load_explicit(&g_amx_off, memory_order_relaxed);
}

int molmo_kernels_quant_bf16(void) {
#if defined(__x86_64__)
    return molmo_kernels_get() == &molmo_kernels_avx512_table && molmo_kernels_amx_bf16();
#else
    return 0;
#endif
}

int molmo_kernels_x16(void) {
    return molmo_kernels_get() != &molmo_kernels_ref_table;
}

int molmo_kernels_bf16_dot(void) {
    pthread_once(&g_best_once, pick_best);
    return g_bf16_dot;
}

int molmo_kernels_avx_vnni(void) {
    pthread_once(&g_best_once, pick_best);
    return g_avx_vnni && !atomic_load_explicit(&g_avx_vnni_off, memory_order_relaxed);
}

void molmo_kernels_allow_avx_vnni(int on) {
    atomic_store_explicit(&g_avx_vnni_off, on ? 0 : 1, memory_order_relaxed);
}

void molmo_kernels_allow_amx(int on) {
    atomic_store_explicit(&g_amx_off, on ? 0 : 1, memory_order_relaxed);
}

void molmo_kernels_force_reference(int on) {
    atomic_store_explicit(&g_force_ref, on ? 1 : 0, memory_order_relaxed);
}

const char *molmo_kernels_name(void) {
    const molmo_kernels *k = molmo_kernels_get();
    return k == &molmo_kernels_avx512_table && (molmo_kernels_amx() || molmo_kernels_amx_bf16())
               ? "avx512+amx"
               : k->name;
}

/* ------------------------------------------------------------------------------ matmul */

/* The output of each matmul is cut into tiles of mb rows x nb columns, numbered row-major;
 * the tiles of all the matmuls of a run are numbered one after the other, each thread takes a
 * contiguous run of them, and consecutive tiles of one tile-row go to the kernel as one call
 * so that it packs each weight panel once. */
typedef struct mm_plan {
    molmo_matmul_args a;
    int mb, nb, n_mt, n_nt;
} mm_plan;

/* At most this many matmuls per run (molmo_op_matmul_many splits longer lists). */
#define MM_MAX_JOBS 64

typedef struct mm_task {
    const molmo_kernels *k;
    molmo_pool *pool;
    int n;                     /* matmuls */
    int first[MM_MAX_JOBS + 1]; /* global index of each one's first tile; first[n] = total */
    double cost[MM_MAX_JOBS];   /* work of one tile of each (mb * nb * K) */
    mm_plan plan[MM_MAX_JOBS];
} mm_task;

/* Tiles [b, e) of one matmul. */
static void mm_tiles(const molmo_kernels *k, const mm_plan *t, int b, int e, float *ws) {
    while (b < e) {
        const int mi = b / t->n_nt, ni0 = b % t->n_nt;
        const int ni1 = e - mi * t->n_nt < t->n_nt ? e - mi * t->n_nt : t->n_nt;
        const int m0 = mi * t->mb, m1 = m0 + t->mb < t->a.M ? m0 + t->mb : t->a.M;
        const int n0 = ni0 * t->nb, n1 = ni1 * t->nb < t->a.N ? ni1 * t->nb : t->a.N;
        k->matmul(&t->a, m0, m1, n0, n1, ws, ws ? MOLMO_POOL_SCRATCH_BYTES / sizeof(float) : 0);
        b += ni1 - ni0;
    }
}

/* Global index of the tile where part k of nth begins, when the tiles are dealt out in
 * contiguous runs of about equal cost (tiles of different matmuls differ: MoE experts get
 * different numbers of rows). A tile of matmul j costs mb * nb * K. */
static int mm_boundary(const mm_task *t, int k, int nth) {
    if (k <= 0) return 0;
    if (k >= nth) return t->first[t->n];
    double total = 0;
    for (int j = 0; j < t->n; j++) total += (t->first[j + 1] - t->first[j]) * t->cost[j];
    double target = total * k / nth, cum = 0;
    for (int j = 0; j < t->n; j++) {
        const double c = (t->first[j + 1] - t->first[j]) * t->cost[j];
        if (target < cum + c) {
            const int i = (int)((target - cum) / t->cost[j] + 0.5);
            return t->first[j] + i;
        }
        cum += c;
    }
    return t->first[t->n];
}

static void mm_worker(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    float *ws = molmo_pool_scratch(t->pool, ith);
    int b = mm_boundary(t, ith, nth);
    const int e = mm_boundary(t, ith + 1, nth);
    for (int j = 0; j < t->n && b < e; j++) {
        const int j0 = t->first[j], j1 = t->first[j + 1];
        if (b >= j1) continue;
        const int te = e < j1 ? e : j1;
        mm_tiles(t->k, &t->plan[j], b - j0, te - j0, ws);
        b = te;
    }
}

/* Tiling of one matmul for a pool of nth threads. Column tiles of 64 (the AVX-512 panel width;
 * a multiple of the AVX2 one) or 16 for the GEMV shapes; row tiles (multiples of 6, the
 * register-tile height) only when there are too few column tiles to keep every thread busy.
 * Tiling never changes a result (kernels.h). Returns the bytes of x quantized once that the
 * kernel takes for it (matmul_xq_bytes; 0 unless want_xq). */
static size_t mm_plan_one(mm_plan *t, const molmo_kernels *k, const molmo_matmul_job *j, int nth,
                          int want_xq) {
    t->a = (molmo_matmul_args){.y = j->y, .ldy = j->ldy, .x = j->x, .ldx = j->ldx, .w = j->w,
                               .wt = j->wt, .bias = j->bias, .M = j->M, .N = j->N, .K = j->K,
                               .x_bf16 = j->x_bf16};
    int kind = MOLMO_XQ_NONE; /* 0 bytes: the kernel says NONE */
    const size_t xq = want_xq ? k->matmul_xq_bytes(&t->a, &kind) : 0;
    t->a.xq_kind = kind;
    const int M = j->M;
    t->nb = M <= MOLMO_GEMV_MAX_M ? 16 : 64;
    t->n_nt = (j->N + t->nb - 1) / t->nb;
    t->mb = M;
    if (M > MOLMO_GEMV_MAX_M && nth > 1 && t->n_nt < 4 * nth) {
        int n_mt = (4 * nth + t->n_nt - 1) / t->n_nt, max_mt = (M + 23) / 24;
        n_mt = n_mt < max_mt ? n_mt : max_mt;
        /* with x quantized once, a row tile also starts on a group of MOLMO_XQ_ROWS */
        _Static_assert(48 % 6 == 0 && 48 % MOLMO_XQ_ROWS == 0, "row tile unit");
        const int unit = xq ? 48 : 6;
        t->mb = ((M + n_mt - 1) / n_mt + unit - 1) / unit * unit;
    }
    t->n_mt = (M + t->mb - 1) / t->mb;
    return xq;
}

/* Activations quantized once for all threads (kernels.h, matmul_xq) and weights packed once
 * (matmul_wq): the groups of MOLMO_XQ_ROWS rows of every x and the panels of MOLMO_WQ_COLS
 * columns of every W that a run's matmuls take, numbered one buffer after the other and split
 * evenly over the threads. */
typedef struct xq_task {
    const molmo_kernels *k;
    const mm_task *mm;
    int n;
    int job[2 * MM_MAX_JOBS];       /* plan index of each buffer's matmul */
    int is_w[2 * MM_MAX_JOBS];      /* whether the buffer holds its packed W (else its x) */
    int first[2 * MM_MAX_JOBS + 1]; /* global index of each one's first group / panel */
} xq_task;

static void xq_worker(void *arg, int ith, int nth) {
    const xq_task *t = arg;
    int b, e;
    molmo_pool_range(t->first[t->n], ith, nth, &b, &e);
    for (int i = 0; i < t->n && b < e; i++) {
        if (b >= t->first[i + 1]) continue;
        const int te = e < t->first[i + 1] ? e : t->first[i + 1];
        const molmo_matmul_args *a = &t->mm->plan[t->job[i]].a;
        if (t->is_w[i])
            t->k->matmul_wq(a, b - t->first[i], te - t->first[i], (void *)a->wq);
        else
            t->k->matmul_xq(a, b - t->first[i], te - t->first[i], (void *)a->xq);
        b = te;
    }
}

/* The earlier matmul of the run whose quantized x matmul j can share (the same x and the same
 * kind of product: the ViT's q, k and v projections), or -1. */
static int mm_same_x(const mm_task *t, const size_t xq_bytes[], int j) {
    const molmo_matmul_args *b = &t->plan[j].a;
    for (int i = 0; i < j; i++) {
        const molmo_matmul_args *a = &t->plan[i].a;
        if (xq_bytes[i] && a->x == b->x && a->ldx == b->ldx && a->M == b->M && a->K == b->K &&
            a->wt == b->wt && a->x_bf16 == b->x_bf16 && a->xq_kind == b->xq_kind)
            return i;
    }
    return -1;
}

/* Most bytes of weights packed once in a run: beyond, a matmul's kernel packs for itself (a
 * 7B's bf16 prefill matrices would each take up to 136 MB). */
#define WQ_MAX_BYTES ((size_t)64 << 20)

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Quantizes the activations of the run's matmuls that take them (once per distinct x) and
 * packs the weights of those that take them, into the pool's shared buffer, and points their
 * args at it; without that buffer they quantize and pack for themselves. */
static void mm_prepare_once(molmo_pool *p, mm_task *t, const size_t xq_bytes[],
                            const size_t wq_bytes[]) {
    int same[MM_MAX_JOBS];
    size_t total = 0;
    for (int j = 0; j < t->n; j++) {
        same[j] = xq_bytes[j] ? mm_same_x(t, xq_bytes, j) : -1;
        if (same[j] < 0) total += round64(xq_bytes[j]);
        total += round64(wq_bytes[j]);
    }
    unsigned char *buf = total ? molmo_pool_shared(p, total) : NULL;
    if (!buf) return;
    xq_task q = {.k = t->k, .mm = t, .n = 0};
    q.first[0] = 0;
    for (int j = 0; j < t->n; j++) {
        molmo_matmul_args *a = &t->plan[j].a;
        if (wq_bytes[j]) {
            a->wq = buf;
            buf += round64(wq_bytes[j]);
            q.job[q.n] = j, q.is_w[q.n] = 1;
            q.first[q.n + 1] = q.first[q.n] + (a->N + MOLMO_WQ_COLS - 1) / MOLMO_WQ_COLS;
            q.n++;
        }
        if (!xq_bytes[j]) continue;
        if (same[j] >= 0) {
            a->xq = t->plan[same[j]].a.xq;
            continue;
        }
        a->xq = buf;
        buf += round64(xq_bytes[j]);
        q.job[q.n] = j, q.is_w[q.n] = 0;
        q.first[q.n + 1] = q.first[q.n] + (a->M + MOLMO_XQ_ROWS - 1) / MOLMO_XQ_ROWS;
        q.n++;
    }
    if (molmo_pool_size(p) == 1 || q.first[q.n] == 1)
        xq_worker(&q, 0, 1);
    else
        molmo_pool_run(p, xq_worker, &q);
}

void molmo_op_matmul_many(molmo_pool *p, const molmo_matmul_job *jobs, int n_jobs) {
    while (n_jobs > MM_MAX_JOBS) {
        molmo_op_matmul_many(p, jobs, MM_MAX_JOBS);
        jobs += MM_MAX_JOBS;
        n_jobs -= MM_MAX_JOBS;
    }
    mm_task t;
    t.k = molmo_kernels_get();
    t.pool = p;
    t.n = 0;
    t.first[0] = 0;
    double flops = 0;
    for (int i = 0; i < n_jobs; i++)
        flops += 2.0 * jobs[i].M * (double)jobs[i].N * (jobs[i].K > 0 ? jobs[i].K : 1);
    const int nth = flops < MIN_PARALLEL_FLOPS ? 1 : molmo_pool_size(p);
    /* Quantizing x once pays where several threads would each quantize all of its rows;
     * packing W once where a kernel would pack it again for each chunk of rows (the kernel
     * says where: a nonzero size), even on one thread */
    const int xq = nth > 1 && t.k->matmul_xq_bytes;
    size_t xq_bytes[MM_MAX_JOBS], wq_bytes[MM_MAX_JOBS], wq_total = 0;
    for (int i = 0; i < n_jobs; i++) {
        if (jobs[i].M <= 0 || jobs[i].N <= 0) continue;
        /* Block types: rows are whole blocks (the loader checks the shapes). */
        assert(molmo_dtype_block_size(jobs[i].wt) <= 1 ||
               jobs[i].K % molmo_dtype_block_size(jobs[i].wt) == 0);
        xq_bytes[t.n] = mm_plan_one(&t.plan[t.n], t.k, &jobs[i], nth, xq);
        wq_bytes[t.n] = t.k->matmul_wq_bytes ? t.k->matmul_wq_bytes(&t.plan[t.n].a) : 0;
        if (wq_total + wq_bytes[t.n] > WQ_MAX_BYTES) wq_bytes[t.n] = 0;
        wq_total += wq_bytes[t.n];
        t.first[t.n + 1] = t.first[t.n] + t.plan[t.n].n_mt * t.plan[t.n].n_nt;
        t.cost[t.n] = (double)(t.plan[t.n].mb < jobs[i].M ? t.plan[t.n].mb : jobs[i].M) *
                      t.plan[t.n].nb * (jobs[i].K > 0 ? jobs[i].K : 1);
        t.n++;
    }
    if (t.n == 0) return;
    if (xq || wq_total) mm_prepare_once(p, &t, xq_bytes, wq_bytes);
    if (nth == 1)
        mm_worker(&t, 0, 1);
    else
        molmo_pool_run(p, mm_worker, &t);
}

void molmo_op_matmul(molmo_pool *p, float *y, int ldy, const float *x, int ldx, const void *w,
                     molmo_dtype wt, const float *bias, int M, int N, int K) {
    const molmo_matmul_job j = {y, ldy, x, ldx, w, wt, bias, M, N, K, 0};
    molmo_op_matmul_many(p, &j, 1);
}

int molmo_op_bf16_rule(int bf16_act, molmo_dtype wt, int M) {
    if (!bf16_act) return 0;
    if (wt == MOLMO_DTYPE_BF16) return 1;
    /* quantized (Q8_0, Q4_0, Q4_K, Q6_K: the block types) in a GEMM on bf16 tiles */
    return molmo_dtype_block_size(wt) > 1 && M > MOLMO_GEMV_MAX_M && molmo_kernels_quant_bf16();
}

int molmo_op_bf16_input(molmo_pool *p, int bf16_act, molmo_dtype wt, float *x, int M, size_t n,
                        size_t ld) {
    if (!molmo_op_bf16_rule(bf16_act, wt, M)) return 0;
    molmo_op_round_bf16(p, x, M, n, ld);
    return 1;
}

void molmo_op_matmul_act(molmo_pool *p, int bf16_act, float *y, int ldy, float *x, int ldx,
                         const void *w, molmo_dtype wt, const float *bias, int M, int N, int K) {
    if (molmo_op_bf16_input(p, bf16_act, wt, x, M, (size_t)K, (size_t)ldx))
        molmo_op_matmul_bf16x(p, y, ldy, x, ldx, w, wt, bias, M, N, K);
    else
        molmo_op_matmul(p, y, ldy, x, ldx, w, wt, bias, M, N, K);
}

void molmo_op_matmul_bf16x(molmo_pool *p, float *y, int ldy, const float *x, int ldx,
                           const void *w, molmo_dtype wt, const float *bias, int M, int N, int K) {
    const molmo_matmul_job j = {y, ldy, x, ldx, w, wt, bias, M, N, K, 1};
    molmo_op_matmul_many(p, &j, 1);
}

/* -------------------------------------------------------------------------------- norms */

typedef struct norm_task {
    const molmo_kernels *k;
    float *y;
    const float *x, *w, *b;
    int M, N, rms;
    float eps;
} norm_task;

static void norm_worker(void *arg, int ith, int nth) {
    const norm_task *t = arg;
    int b, e;
    molmo_pool_range(t->M, ith, nth, &b, &e);
    for (int i = b; i < e; i++) {
        float *y = t->y + (size_t)i * (size_t)t->N;
        const float *x = t->x + (size_t)i * (size_t)t->N;
        if (t->rms)
            t->k->rmsnorm(y, x, t->w, t->N, t->eps);
        else
            t->k->layernorm(y, x, t->w, t->b, t->N, t->eps);
    }
}

static void run_norm(molmo_pool *p, norm_task *t) {
    if (t->M <= 0 || t->N <= 0) return;
    if ((double)t->M * t->N < MIN_PARALLEL_ELEMS || t->M == 1)
        norm_worker(t, 0, 1);
    else
        molmo_pool_run(p, norm_worker, t);
}

void molmo_op_layernorm(molmo_pool *p, float *y, const float *x, const float *w, const float *b,
                        int M, int N, float eps) {
    norm_task t = {molmo_kernels_get(), y, x, w, b, M, N, 0, eps};
    run_norm(p, &t);
}

void molmo_op_rmsnorm(molmo_pool *p, float *y, const float *x, const float *w, int M, int N,
                      float eps) {
    norm_task t = {molmo_kernels_get(), y, x, w, NULL, M, N, 1, eps};
    run_norm(p, &t);
}

/* ------------------------------------------------------------------ element-wise and rows */

void molmo_op_softmax_rows(float *x, int M, int N) {
    const molmo_kernels *k = molmo_kernels_get();
    for (int i = 0; i < M && N > 0; i++) k->softmax(x + (size_t)i * (size_t)N, N);
}

/* Element-wise ops on M rows of n (row stride ld): rows split over the threads, or for one row
 * pieces of whole 64-byte lines. */
typedef struct ew_task {
    const molmo_kernels *k;
    int op; /* 0: quick_gelu, 1: silu_mul, 2: round_bf16, 3: add (out += gate) */
    float *out;
    const float *gate, *up;
    size_t n, ld;
    int M;
} ew_task;

static void ew_piece(const ew_task *t, size_t off, size_t len) {
    if (t->op == 0)
        t->k->quick_gelu(t->out + off, len);
    else if (t->op == 2)
        t->k->round_bf16(t->out + off, len);
    else if (t->op == 3)
        t->k->add(t->out + off, t->gate + off, len);
    else
        t->k->silu_mul(t->out + off, t->gate + off, t->up + off, len);
}

static void ew_worker(void *arg, int ith, int nth) {
    const ew_task *t = arg;
    if (t->M > 1) {
        int b, e;
        molmo_pool_range(t->M, ith, nth, &b, &e);
        for (int i = b; i < e; i++) ew_piece(t, (size_t)i * t->ld, t->n);
        return;
    }
    const size_t lines = (t->n + 15) / 16;
    const size_t b = lines * (size_t)ith / (size_t)nth * 16;
    size_t e = lines * (size_t)(ith + 1) / (size_t)nth * 16;
    if (e > t->n) e = t->n;
    if (b < e) ew_piece(t, b, e - b);
}

static void run_elementwise(molmo_pool *p, ew_task *t) {
    if ((double)t->n * t->M < MIN_PARALLEL_ELEMS * 4)
        ew_worker(t, 0, 1);
    else
        molmo_pool_run(p, ew_worker, t);
}

void molmo_op_quick_gelu(molmo_pool *p, float *x, size_t n) {
    ew_task t = {molmo_kernels_get(), 0, x, NULL, NULL, n, n, 1};
    run_elementwise(p, &t);
}

void molmo_op_silu_mul(molmo_pool *p, float *out, const float *gate, const float *up, size_t n) {
    ew_task t = {molmo_kernels_get(), 1, out, gate, up, n, n, 1};
    run_elementwise(p, &t);
}

void molmo_op_silu_mul_rows(molmo_pool *p, float *out, const float *gate, const float *up,
                            int M, size_t n, size_t ld) {
    if (M <= 0) return;
    ew_task t = {molmo_kernels_get(), 1, out, gate, up, n, ld, M};
    run_elementwise(p, &t);
}

void molmo_op_round_bf16(molmo_pool *p, float *x, int M, size_t n, size_t ld) {
    if (M <= 0) return;
    ew_task t = {molmo_kernels_get(), 2, x, NULL, NULL, n, ld, M};
    run_elementwise(p, &t);
}

void molmo_op_add(molmo_pool *p, float *y, const float *x, size_t n) {
    ew_task t = {molmo_kernels_get(), 3, y, x, NULL, n, n, 1};
    run_elementwise(p, &t);
}

void molmo_op_scale_add(float *y, const float *x, float a, size_t n) {
    molmo_kernels_get()->scale_add(y, x, a, n);
}

/* ---------------------------------------------------------------------------- attention */

size_t molmo_op_attention_scratch(int n_kv, int n_threads) {
    if (n_threads < 1) n_threads = 1;
    if (n_kv < 1) n_kv = 1;
    /* + 16 floats: room to align the start to 64 bytes. */
    return (size_t)n_threads * MOLMO_ATTN_QB * molmo_attn_ld_scores(n_kv) + 16;
}

typedef struct attn_task {
    const molmo_kernels *k;
    molmo_pool *pool;
    molmo_attn_args a;
    float *scratch; /* 64-byte aligned */
    int n_items;
} attn_task;

static void attn_worker(void *arg, int ith, int nth) {
    const attn_task *t = arg;
    int b, e;
    molmo_pool_range(t->n_items, ith, nth, &b, &e);
    float *s = t->scratch + (size_t)ith * MOLMO_ATTN_QB * molmo_attn_ld_scores(t->a.n_kv);
    float *ws = molmo_pool_scratch(t->pool, ith);
    if (b < e)
        t->k->attention(&t->a, b, e, s, ws, ws ? MOLMO_POOL_SCRATCH_BYTES / sizeof(float) : 0);
}

void molmo_op_attention(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                        const float *k, int ldk, const float *v, int ldv, int n_q, int n_kv,
                        int n_heads, int n_kv_heads, int hd, float scale, int causal, int q_pos0,
                        float *scratch) {
    molmo_op_attention_ldh(p, out, ldo, q, ldq, k, ldk, v, ldv, MOLMO_DTYPE_F32, (size_t)hd, n_q,
                           n_kv, n_heads, n_kv_heads, hd, scale, causal, q_pos0, 0, scratch);
}

void molmo_op_attention_bf16(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                             const float *k, int ldk, const float *v, int ldv, int n_q, int n_kv,
                             int n_heads, int hd, float scale, float *scratch) {
    molmo_op_attention_ldh(p, out, ldo, q, ldq, k, ldk, v, ldv, MOLMO_DTYPE_F32, (size_t)hd, n_q,
                           n_kv, n_heads, n_heads, hd, scale, 0, 0, 1, scratch);
}

/* One attention problem over the pool (the items split by threads; never the result). */
void molmo_op_attention_ldh(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                            const void *k, int ldk, const void *v, int ldv, molmo_dtype kv_type,
                            size_t ldh, int n_q, int n_kv, int n_heads, int n_kv_heads, int hd,
                            float scale, int causal, int q_pos0, int bf16, float *scratch) {
    assert(kv_type == MOLMO_DTYPE_F32 || kv_type == MOLMO_DTYPE_F16);
    assert(n_kv_heads > 0 && n_heads % n_kv_heads == 0); /* the config loader checks */
    if (n_q <= 0 || n_heads <= 0 || hd <= 0) return;
    if (n_kv <= 0) { /* nothing to attend to: the empty weighted sum */
        for (int i = 0; i < n_q; i++)
            memset(out + (size_t)i * (size_t)ldo, 0, (size_t)n_heads * (size_t)hd * sizeof(float));
        return;
    }
    attn_task t = {.k = molmo_kernels_get(),
                   .pool = p,
                   .a = {.out = out, .ldo = ldo, .q = q, .k = k, .v = v, .kv_type = kv_type,
                         .ldq = ldq, .ldk = ldk, .ldv = ldv, .ldh = ldh, .n_q = n_q, .n_kv = n_kv,
                         .n_heads = n_heads, .n_kv_heads = n_kv_heads, .hd = hd, .scale = scale,
                         .causal = causal, .q_pos0 = q_pos0, .bf16 = bf16}};
    t.scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    t.n_items = n_heads * molmo_attn_qblocks(n_q);
    const double flops = 4.0 * n_q * (double)n_kv * hd * n_heads;
    if (flops < MIN_PARALLEL_FLOPS || t.n_items == 1)
        attn_worker(&t, 0, 1);
    else
        molmo_pool_run(p, attn_worker, &t);
}

/* --------------------------------------------------------------------------------- RoPE */

molmo_status molmo_rope_table(float **cos_out, float **sin_out, int n_pos, int hd, float theta,
                              molmo_error *err) {
    *cos_out = *sin_out = NULL;
    if (n_pos <= 0 || hd <= 0 || hd % 2 != 0 || !(theta > 0.0f) || isinf(theta))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "rope table: need n_pos > 0, an even head dim > 0 and a finite theta > 0 "
                         "(got n_pos %d, head dim %d, theta %g)", n_pos, hd, (double)theta);
    const int half = hd / 2;
    size_t n;
    if (!molmo_mul_size((size_t)n_pos, (size_t)half * sizeof(float), &n))
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "rope table: %d positions x %d is too large",
                         n_pos, half);
    float *c = molmo_malloc(n), *s = molmo_malloc(n);
    if (!c || !s) {
        molmo_free(c);
        molmo_free(s);
        return molmo_err(err, MOLMO_ERR_NOMEM, "rope table: out of memory (%zu bytes)", 2 * n);
    }
    /* HF: inv_freq = 1.0 / theta ** (arange(0, hd, 2, float32) / hd); freqs = pos * inv_freq;
     * sin/cos of freqs: every step in f32. */
    for (int i = 0; i < half; i++) {
        const float e = (float)(2 * i) / (float)hd;
        const float inv_freq = 1.0f / powf(theta, e);
        for (int pos = 0; pos < n_pos; pos++) {
            const float ang = (float)pos * inv_freq;
            c[(size_t)pos * (size_t)half + (size_t)i] = cosf(ang);
            s[(size_t)pos * (size_t)half + (size_t)i] = sinf(ang);
        }
    }
    *cos_out = c;
    *sin_out = s;
    return MOLMO_OK;
}

void molmo_op_rope(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                   const float *cos_t, const float *sin_t) {
    if (n_tok <= 0 || n_heads <= 0 || hd < 2) return;
    molmo_kernels_get()->rope(x, ldx, n_tok, n_heads, hd, pos, cos_t, sin_t);
}

/* ------------------------------------------------------------------------ conversions */

void molmo_op_gather_rows(float *out, const void *w, molmo_dtype wt, int K, const int *ids, int n) {
    const molmo_kernels *k = molmo_kernels_get();
    const size_t row = molmo_dtype_row_bytes(wt, K);
    for (int i = 0; i < n; i++)
        k->to_f32(out + (size_t)i * (size_t)K, (const char *)w + (size_t)ids[i] * row, wt, (size_t)K);
}

void molmo_op_to_f32(float *out, const void *w, molmo_dtype wt, size_t n) {
    molmo_kernels_get()->to_f32(out, w, wt, n);
}

void molmo_op_to_f16(uint16_t *out, const float *x, size_t n) {
    molmo_kernels_get()->to_f16(out, x, n);
}

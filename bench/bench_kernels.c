/* bench_kernels.c — GFLOP/s of the shipped matmul (f32 and bf16 weights) at the ViT shapes
 * (M=577 tokens: N=1024,K=1024 for q/k/v/o, N=4096,K=1024 for the MLP up-projection), on 1 and 2
 * threads, against two baselines measured in the same run: the peak of a pure FMA loop on the
 * same threads (what the core can do at best) and the plain-C reference kernel. Also the
 * attention and row ops at ViT sizes, and the quantized (Q8_0 / Q4_0) matmul: decode GEMV at
 * the Qwen2-7B MLP shapes in GB/s of weights against the machine's read bandwidth measured in
 * the same run, and GEMM at ViT / prefill shapes in GOP/s against the same run's VNNI peak.
 * Usage: bench_kernels [reps] [quant] (default 5 reps; "quant": only the quantized part). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/fp16.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------- FMA peak */

#define PEAK_ITERS 20000000L
#if defined(__x86_64__)
#include <immintrin.h>
/* 16 independent FMA chains (more than latency x ports = 8), written out one by one so the
 * compiler keeps them in registers: the core's f32 FMA peak. */
#define FMA16(F, acc, a, b)                                                                   \
    acc##0 = F(acc##0, a, b), acc##1 = F(acc##1, a, b), acc##2 = F(acc##2, a, b),             \
    acc##3 = F(acc##3, a, b), acc##4 = F(acc##4, a, b), acc##5 = F(acc##5, a, b),             \
    acc##6 = F(acc##6, a, b), acc##7 = F(acc##7, a, b), acc##8 = F(acc##8, a, b),             \
    acc##9 = F(acc##9, a, b), acc##a = F(acc##a, a, b), acc##b = F(acc##b, a, b),             \
    acc##c = F(acc##c, a, b), acc##d = F(acc##d, a, b), acc##e = F(acc##e, a, b),             \
    acc##f = F(acc##f, a, b)
#define SUM16(acc) (acc##0 + acc##1 + acc##2 + acc##3 + acc##4 + acc##5 + acc##6 + acc##7 + \
                    acc##8 + acc##9 + acc##a + acc##b + acc##c + acc##d + acc##e + acc##f)

__attribute__((target("avx512f,fma"))) static float fma_loop_avx512(long iters) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    /* distinct starting values, or the compiler merges identical chains */
#define S(i) _mm512_set1_ps((float)(i))
    __m512 c0 = S(0), c1 = S(1), c2 = S(2), c3 = S(3), c4 = S(4), c5 = S(5), c6 = S(6), c7 = S(7),
           c8 = S(8), c9 = S(9), ca = S(10), cb = S(11), cc = S(12), cd = S(13), ce = S(14), cf = S(15);
#undef S
    for (long it = 0; it < iters; it++) {
        FMA16(_mm512_fmadd_ps, c, a, b);
        __asm__ volatile("" ::: "memory"); /* keep the loop as written */
    }
    return _mm512_reduce_add_ps(SUM16(c));
}
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    /* distinct starting values, or the compiler merges identical chains */
#define S(i) _mm256_set1_ps((float)(i))
    __m256 c0 = S(0), c1 = S(1), c2 = S(2), c3 = S(3), c4 = S(4), c5 = S(5), c6 = S(6), c7 = S(7),
           c8 = S(8), c9 = S(9), ca = S(10), cb = S(11), cc = S(12), cd = S(13), ce = S(14), cf = S(15);
#undef S
    for (long it = 0; it < iters; it++) {
        FMA16(_mm256_fmadd_ps, c, a, b);
        __asm__ volatile("" ::: "memory");
    }
    float o[8];
    _mm256_storeu_ps(o, SUM16(c));
    return o[0] + o[7];
}
#endif

typedef struct peak_arg {
    int wide;          /* 1: AVX-512, 0: AVX2 */
    volatile float sink[64];
} peak_arg;

static void peak_worker(void *p, int ith, int nth) {
    peak_arg *a = p;
    (void)nth;
#if defined(__x86_64__)
    a->sink[ith] = a->wide ? fma_loop_avx512(PEAK_ITERS / 4) : fma_loop_avx2(PEAK_ITERS / 4);
#else
    a->sink[ith] = 0;
#endif
}

/* FLOP/s of the FMA loop on every thread of the pool at once. */
static double fma_peak(molmo_pool *pool, int wide) {
    peak_arg a = {.wide = wide};
    const double flop_per_thread = (double)(PEAK_ITERS / 4) * (wide ? 16 * 16 : 16 * 8) * 2;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        const double t0 = now_s();
        molmo_pool_run(pool, peak_worker, &a);
        const double f = flop_per_thread * molmo_pool_size(pool) / (now_s() - t0);
        best = f > best ? f : best;
    }
    return best;
}

/* ---------------------------------------------------------------------------- matmul */

static uint64_t g_rng = 88172645463325252ull;
static float urand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 40) / (double)(1ull << 23) - 1.0);
}
static float *frand(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) p[i] = urand();
    return p;
}

typedef struct timing {
    double best, mean;
} timing;

typedef struct mm_case {
    molmo_pool *pool;
    const molmo_kernels *k; /* NULL: the op layer (shipped kernels + threads) */
    float *y, *x;
    const void *w;
    molmo_dtype wt;
    int M, N, K;
} mm_case;

static void mm_once(const mm_case *c) {
    if (c->k) {
        const molmo_matmul_args a = {c->y, c->N, c->x, c->K, c->w, c->wt, NULL, c->M, c->N, c->K};
        c->k->matmul(&a, 0, c->M, 0, c->N, NULL, 0);
    } else {
        molmo_op_matmul(c->pool, c->y, c->N, c->x, c->K, c->w, c->wt, NULL, c->M, c->N, c->K);
    }
}

static timing time_mm(const mm_case *c, int reps) {
    timing t = {1e30, 0};
    mm_once(c); /* warm-up: page in, fill caches */
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        mm_once(c);
        const double dt = now_s() - t0;
        t.best = dt < t.best ? dt : t.best;
        t.mean += dt / reps;
    }
    return t;
}

static void bench_matmul(molmo_pool *pools[2], const double peak[2], int reps) {
    static const int shapes[][3] = {{577, 1024, 1024}, {577, 4096, 1024}};
    printf("\nmatmul y[M,N] = x[M,K] W[N,K]^T, kernels '%s' (GFLOP/s, best of %d; %% of FMA peak)\n",
           molmo_kernels_name(), reps);
    printf("%-16s %-5s %8s | %9s %9s %6s | %9s %9s %6s\n", "shape MxNxK", "W", "ref 1t",
           "1 thread", "ms", "%peak", "2 threads", "ms", "%peak");
    for (int s = 0; s < 2; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = frand((size_t)M * K), *wf = frand((size_t)N * K), *y = malloc((size_t)M * N * 4);
        uint16_t *wb = malloc((size_t)N * K * 2);
        for (size_t i = 0; i < (size_t)N * K; i++) wb[i] = molmo_f32_to_bf16(wf[i] * 0.03f);
        const double flop = 2.0 * M * N * K;
        for (int d = 0; d < 2; d++) {
            mm_case c = {NULL, NULL, y, x, d ? (const void *)wb : wf,
                         d ? MOLMO_DTYPE_BF16 : MOLMO_DTYPE_F32, M, N, K};
            double ref = 0;
            if (s == 0) { /* the reference is slow: time it once, on the small shape */
                c.k = molmo_kernels_ref();
                ref = flop / time_mm(&c, 1).best * 1e-9;
                c.k = NULL;
            }
            timing t[2];
            for (int p = 0; p < 2; p++) {
                c.pool = pools[p];
                t[p] = time_mm(&c, reps);
            }
            char rs[16] = "-";
            if (ref > 0) snprintf(rs, sizeof rs, "%.2f", ref);
            printf("%4dx%4dx%-6d %-5s %8s | %9.1f %9.2f %5.0f%% | %9.1f %9.2f %5.0f%%\n", M, N, K,
                   d ? "bf16" : "f32", rs, flop / t[0].best * 1e-9, t[0].best * 1e3,
                   100 * flop / t[0].best / peak[0], flop / t[1].best * 1e-9, t[1].best * 1e3,
                   100 * flop / t[1].best / peak[1]);
        }
        free(x);
        free(wf);
        free(wb);
        free(y);
    }
}

/* The kernel sets side by side on one thread (direct kernel calls, pool-sized workspace). */
static void bench_sets(int reps) {
    const molmo_kernels *sets[3] = {molmo_kernels_avx512(), molmo_kernels_avx2(), NULL};
    const int M = 577, N = 1024, K = 1024;
    float *x = frand((size_t)M * K), *w = frand((size_t)N * K), *y = malloc((size_t)M * N * 4);
    float *ws = aligned_alloc(64, MOLMO_POOL_SCRATCH_BYTES);
    printf("\nkernel sets, 1 thread, 577x1024x1024 f32 (GFLOP/s)\n");
    for (int i = 0; sets[i] || i == 0; i++) {
        if (!sets[i]) continue;
        double best = 1e30;
        const molmo_matmul_args a = {y, N, x, K, w, MOLMO_DTYPE_F32, NULL, M, N, K};
        for (int r = 0; r <= reps; r++) {
            const double t0 = now_s();
            sets[i]->matmul(&a, 0, M, 0, N, ws, MOLMO_POOL_SCRATCH_BYTES / sizeof(float));
            const double dt = now_s() - t0;
            best = r > 0 && dt < best ? dt : best;
        }
        printf("  %-7s %8.1f\n", sets[i]->name, 2.0 * M * N * K / best * 1e-9);
    }
    free(x);
    free(w);
    free(y);
    free(ws);
}

static void nop_fn(void *arg, int ith, int nth) {
    (void)arg;
    (void)ith;
    (void)nth;
}

/* Cost of one fork-join with an empty body, back to back (the gap between ops in a forward). */
static void bench_pool(molmo_pool *pool) {
    const int n = 20000;
    const double t0 = now_s();
    for (int i = 0; i < n; i++) molmo_pool_run(pool, nop_fn, NULL);
    printf("\npool: empty run on %d threads: %.2f us\n", molmo_pool_size(pool), (now_s() - t0) / n * 1e6);
}

/* ------------------------------------------------------------------ other ops (ViT sizes) */

static void bench_attention(molmo_pool *pools[2], int reps) {
    const int n = 577, H = 16, hd = 64, D = H * hd;
    float *q = frand((size_t)n * D), *k = frand((size_t)n * D), *v = frand((size_t)n * D);
    float *o = malloc((size_t)n * D * 4);
    float *sc = malloc(molmo_op_attention_scratch(n, 2) * sizeof(float));
    const double flop = 4.0 * n * n * D;
    printf("\nattention 577 tokens, 16 heads x 64 (GFLOP/s, ms)\n");
    for (int p = 0; p < 2; p++) {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            const double t0 = now_s();
            molmo_op_attention(pools[p], o, D, q, D, k, D, v, D, n, n, H, H, hd, 0.125f, 0, 0, sc);
            const double dt = now_s() - t0;
            best = dt < best ? dt : best;
        }
        printf("  %d thread%s %8.1f GFLOP/s %8.2f ms\n", p + 1, p ? "s" : " ", flop / best * 1e-9,
               best * 1e3);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(sc);
}

/* ------------------------------------------------------------------- quantized weights */

/* Bytes streamed per measurement: 4x the largest L3 met so far (260 MiB), so the GEMV and the
 * bandwidth loop read DRAM, as a decode step over all layers does. */
#define STREAM_BYTES ((size_t)1 << 30)

typedef struct bw_arg {
    const uint64_t *buf;
    size_t n;
    volatile uint64_t sink[64];
} bw_arg;

static void bw_worker(void *p, int ith, int nth) {
    bw_arg *a = p;
    const size_t per = a->n / (size_t)nth / 8 * 8, b = per * (size_t)ith;
    const size_t e = ith == nth - 1 ? a->n : b + per;
    uint64_t s[8] = {0};
    for (size_t i = b; i < e; i += 8)
        for (int k = 0; k < 8; k++) s[k] ^= a->buf[i + (size_t)k];
    a->sink[ith] = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
}

/* Read bandwidth (bytes/s) of the pool's threads together over a 1 GiB buffer. */
static double read_bandwidth(molmo_pool *pool, const uint64_t *buf) {
    bw_arg a = {.buf = buf, .n = STREAM_BYTES / 8};
    double best = 0;
    for (int r = 0; r < 4; r++) {
        const double t0 = now_s();
        molmo_pool_run(pool, bw_worker, &a);
        const double bw = (double)STREAM_BYTES / (now_s() - t0);
        best = bw > best ? bw : best;
    }
    return best;
}

#if defined(__x86_64__)
/* 16 independent vpdpbusd chains: the core's int8 dot-product peak (64 MACs per instruction). */
__attribute__((target("avx512f,avx512vnni"))) static int vnni_loop(long iters) {
    const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01ff01ff);
#define S(i) _mm512_set1_epi32(i)
    __m512i c0 = S(0), c1 = S(1), c2 = S(2), c3 = S(3), c4 = S(4), c5 = S(5), c6 = S(6), c7 = S(7),
            c8 = S(8), c9 = S(9), ca = S(10), cb = S(11), cc = S(12), cd = S(13), ce = S(14), cf = S(15);
#undef S
    for (long it = 0; it < iters; it++) {
        FMA16(_mm512_dpbusd_epi32, c, a, b);
        __asm__ volatile("" ::: "memory");
    }
    return _mm512_reduce_add_epi32(SUM16(c));
}
#endif

static void vnni_worker(void *p, int ith, int nth) {
    peak_arg *a = p;
    (void)nth;
#if defined(__x86_64__)
    a->sink[ith] = (float)vnni_loop(PEAK_ITERS / 4);
#else
    a->sink[ith] = 0;
#endif
}

/* int8 ops/s (2 per multiply-add) of the vpdpbusd loop on every thread of the pool. */
static double vnni_peak(molmo_pool *pool) {
    peak_arg a = {.wide = 1};
    const double ops_per_thread = (double)(PEAK_ITERS / 4) * 16 * 64 * 2;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        const double t0 = now_s();
        molmo_pool_run(pool, vnni_worker, &a);
        const double f = ops_per_thread * molmo_pool_size(pool) / (now_s() - t0);
        best = f > best ? f : best;
    }
    return best;
}

/* n copies of W [N, K] in dtype wt made from the f32 values wf (copies: distinct memory, so a
 * pass over them streams from DRAM). */
static void **make_copies(const float *wf, int N, int K, molmo_dtype wt, int n) {
    const size_t rb = wt == MOLMO_DTYPE_BF16 ? (size_t)K * 2 : molmo_dtype_row_bytes(wt, K);
    const size_t bytes = rb * (size_t)N;
    void **c = calloc((size_t)n, sizeof *c);
    uint8_t *first = malloc(bytes);
    if (!c || !first) exit(1);
    for (int j = 0; j < N; j++) {
        const float *src = wf + (size_t)j * K;
        uint8_t *dst = first + (size_t)j * rb;
        if (wt == MOLMO_DTYPE_BF16) {
            for (int k = 0; k < K; k++) ((uint16_t *)dst)[k] = molmo_f32_to_bf16(src[k]);
        } else if (molmo_quantize_row(wt, src, dst, K, NULL) != MOLMO_OK) {
            exit(1);
        }
    }
    c[0] = first;
    for (int i = 1; i < n; i++) {
        if (!(c[i] = malloc(bytes))) exit(1);
        memcpy(c[i], first, bytes);
    }
    return c;
}

/* Decode: y[1, N] = x W^T over enough copies of W to stream 1 GiB; ms per matrix and GB/s of
 * weights, against the read bandwidth of the same thread count. */
static void bench_qgemv(molmo_pool *pools[2], const double bw[2], int reps) {
    static const int shapes[][2] = {{3584, 18944}, {18944, 3584}}; /* Qwen2-7B MLP down, up */
    static const molmo_dtype types[] = {MOLMO_DTYPE_BF16, MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0};
    printf("\ndecode GEMV y[1,N] = x W^T, weights streamed from DRAM (best of %d passes over 1 GiB;"
           " %% of the read bandwidth of the same threads)\n", reps);
    printf("%-16s %-5s | %8s %8s %5s | %8s %8s %5s\n", "shape 1xNxK", "W", "1t ms", "GB/s",
           "%bw", "2t ms", "GB/s", "%bw");
    for (int s = 0; s < 2; s++) {
        const int N = shapes[s][0], K = shapes[s][1];
        float *wf = frand((size_t)N * K), *x = frand((size_t)K), *y = malloc((size_t)N * 4);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] *= 0.02f;
        for (int d = 0; d < 3; d++) {
            const molmo_dtype wt = types[d];
            const size_t bytes = (wt == MOLMO_DTYPE_BF16 ? (size_t)K * 2 : molmo_dtype_row_bytes(wt, K)) * (size_t)N;
            const int n = (int)((STREAM_BYTES + bytes - 1) / bytes);
            void **w = make_copies(wf, N, K, wt, n);
            double best[2] = {1e30, 1e30};
            for (int p = 0; p < 2; p++)
                for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
                    const double t0 = now_s();
                    for (int i = 0; i < n; i++)
                        molmo_op_matmul(pools[p], y, N, x, K, w[i], wt, NULL, 1, N, K);
                    const double dt = (now_s() - t0) / n;
                    if (r > 0 && dt < best[p]) best[p] = dt;
                }
            printf("1x%5dx%-8d %-5s | %8.2f %8.1f %4.0f%% | %8.2f %8.1f %4.0f%%\n", N, K,
                   molmo_dtype_name(wt), best[0] * 1e3, bytes / best[0] * 1e-9, 100 * bytes / best[0] / bw[0],
                   best[1] * 1e3, bytes / best[1] * 1e-9, 100 * bytes / best[1] / bw[1]);
            if (s == 0 && wt == MOLMO_DTYPE_Q8_0) { /* the plain-C reference, once */
                const molmo_matmul_args a = {y, N, x, K, w[0], wt, NULL, 1, N, K};
                const double t0 = now_s();
                molmo_kernels_ref()->matmul(&a, 0, 1, 0, N, NULL, 0);
                const double dt = now_s() - t0;
                printf("1x%5dx%-8d %-5s | %8.2f %8.1f  (ref kernel, 1 thread)\n", N, K, "q8_0", dt * 1e3,
                       bytes / dt * 1e-9);
            }
            for (int i = 0; i < n; i++) free(w[i]);
            free(w);
        }
        free(wf);
        free(x);
        free(y);
    }
}

/* Prefill / ViT: y[M, N] = x W^T, weights in cache; GOP/s (2 per multiply-add) against the
 * same run's VNNI peak, with f32 weights for comparison. */
static void bench_qgemm(molmo_pool *pools[2], const double vnni[2], int reps) {
    static const int shapes[][3] = {{577, 1024, 4096}, {740, 3584, 3584}};
    static const molmo_dtype types[] = {MOLMO_DTYPE_F32, MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0};
    printf("\nGEMM y[M,N] = x W^T (GOP/s, best of %d; %% of the vpdpbusd peak of the same threads)\n", reps);
    printf("%-16s %-5s | %9s %9s %6s | %9s %9s %6s\n", "shape MxNxK", "W", "1 thread", "ms", "%vnni",
           "2 threads", "ms", "%vnni");
    for (int s = 0; s < 2; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = frand((size_t)M * K), *wf = frand((size_t)N * K), *y = malloc((size_t)M * N * 4);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] *= 0.02f;
        const double flop = 2.0 * M * N * K;
        for (int d = 0; d < 3; d++) {
            void **w = types[d] == MOLMO_DTYPE_F32 ? NULL : make_copies(wf, N, K, types[d], 1);
            mm_case c = {NULL, NULL, y, x, w ? w[0] : wf, types[d], M, N, K};
            timing t[2];
            for (int p = 0; p < 2; p++) {
                c.pool = pools[p];
                t[p] = time_mm(&c, reps);
            }
            printf("%4dx%4dx%-6d %-5s | %9.1f %9.2f %5.0f%% | %9.1f %9.2f %5.0f%%\n", M, N, K,
                   molmo_dtype_name(types[d]), flop / t[0].best * 1e-9, t[0].best * 1e3,
                   100 * flop / t[0].best / vnni[0], flop / t[1].best * 1e-9, t[1].best * 1e3,
                   100 * flop / t[1].best / vnni[1]);
            if (w) {
                free(w[0]);
                free(w);
            }
        }
        free(x);
        free(wf);
        free(y);
    }
}

static void bench_quant(molmo_pool *pools[2], int reps) {
    const molmo_cpu_features *f = molmo_cpu_get();
    uint64_t *buf = malloc(STREAM_BYTES);
    if (!buf) exit(1);
    memset(buf, 1, STREAM_BYTES);
    double bw[2], vnni[2] = {1, 1};
    for (int p = 0; p < 2; p++) bw[p] = read_bandwidth(pools[p], buf);
    free(buf);
    if (f->avx512f && f->avx512vnni)
        for (int p = 0; p < 2; p++) vnni[p] = vnni_peak(pools[p]);
    printf("\nquantized weights, kernels '%s': read bandwidth 1 thread %.1f GB/s, 2 threads %.1f GB/s;"
           " vpdpbusd peak 1 thread %.0f GOP/s, 2 threads %.0f GOP/s\n", molmo_kernels_name(),
           bw[0] * 1e-9, bw[1] * 1e-9, vnni[0] * 1e-9, vnni[1] * 1e-9);
    bench_qgemv(pools, bw, reps);
    bench_qgemm(pools, vnni, reps);
}

int main(int argc, char **argv) {
    const int reps = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 5;
    const int only_quant = argc > 2 && strcmp(argv[2], "quant") == 0;
    const molmo_cpu_features *f = molmo_cpu_get();
    molmo_pool *pools[2];
    if (molmo_pool_create(1, &pools[0], NULL) != MOLMO_OK ||
        molmo_pool_create(2, &pools[1], NULL) != MOLMO_OK)
        return 1;
    const int wide = f->avx512f != 0;
    printf("cpu: %d physical cores, %d logical; avx2 %d fma %d f16c %d avx512f %d bw %d vl %d bf16 %d\n",
           f->n_physical, f->n_logical, f->avx2, f->fma, f->f16c, f->avx512f, f->avx512bw,
           f->avx512vl, f->avx512bf16);
    double peak[2] = {1, 1};
    if (f->avx2 && f->fma)
        for (int p = 0; p < 2; p++) peak[p] = fma_peak(pools[p], wide);
    printf("FMA peak (%s loop): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n",
           wide ? "AVX-512" : "AVX2", peak[0] * 1e-9, peak[1] * 1e-9);
    if (!only_quant) {
        bench_matmul(pools, peak, reps);
        bench_sets(reps);
        bench_attention(pools, reps);
        bench_pool(pools[1]);
    }
    bench_quant(pools, reps);
    molmo_pool_free(pools[0]);
    molmo_pool_free(pools[1]);
    return 0;
}

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
        const molmo_matmul_args a = {c->y, c->N, c->x, c->K, c->w, c->wt, NULL, c->M, c->N, c->K, 0, NULL, 0, NULL};
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
        const molmo_matmul_args a = {y, N, x, K, w, MOLMO_DTYPE_F32, NULL, M, N, K, 0, NULL, 0, NULL};
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

/* A baseline of the same run, measured by the library (molmo_bench_machine_measure, the loops
 * `molmo bench` reports): `what` = MOLMO_BENCH_FMA (f32 FLOP/s of the FMA peak loop),
 * MOLMO_BENCH_READ (bytes/s of the read loop over STREAM_BYTES) or MOLMO_BENCH_VNNI (int8 ops/s
 * of the vpdpbusd loop; 0 without VNNI), on `threads` threads together. */
static double baseline(int threads, unsigned what, const char **isa) {
    molmo_bench_machine_params p = molmo_bench_machine_default_params();
    molmo_bench_machine m;
    molmo_error err;
    p.n_threads = threads;
    p.what = what;
    p.read_bytes = STREAM_BYTES;
    if (molmo_bench_machine_measure(&p, &m, &err) != MOLMO_OK) {
        fprintf(stderr, "bench_kernels: %s\n", err.msg);
        exit(1);
    }
    if (isa) *isa = what == MOLMO_BENCH_FMA ? m.fma_isa : m.vnni_isa;
    return 1e9 * (what == MOLMO_BENCH_FMA ? m.fma_gflops
                  : what == MOLMO_BENCH_READ ? m.read_gbs
                                             : m.vnni_gops);
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
    static const molmo_dtype types[] = {MOLMO_DTYPE_BF16, MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0,
                                        MOLMO_DTYPE_Q6_K, MOLMO_DTYPE_Q4_K};
    printf("\ndecode GEMV y[1,N] = x W^T, weights streamed from DRAM (best of %d passes over 1 GiB;"
           " %% of the read bandwidth of the same threads)\n", reps);
    printf("%-16s %-5s | %8s %8s %5s | %8s %8s %5s\n", "shape 1xNxK", "W", "1t ms", "GB/s",
           "%bw", "2t ms", "GB/s", "%bw");
    for (int s = 0; s < 2; s++) {
        const int N = shapes[s][0], K = shapes[s][1];
        float *wf = frand((size_t)N * K), *x = frand((size_t)K), *y = malloc((size_t)N * 4);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] *= 0.02f;
        for (size_t d = 0; d < sizeof types / sizeof types[0]; d++) {
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
                const molmo_matmul_args a = {y, N, x, K, w[0], wt, NULL, 1, N, K, 0, NULL, 0, NULL};
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
    static const int shapes[][3] = {{577, 1024, 4096}, {740, 3584, 3584}, {128, 3584, 3584}};
    static const molmo_dtype types[] = {MOLMO_DTYPE_F32, MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0,
                                        MOLMO_DTYPE_Q6_K, MOLMO_DTYPE_Q4_K};
    printf("\nGEMM y[M,N] = x W^T (GOP/s, best of %d; %% of the vpdpbusd peak of the same threads)\n", reps);
    printf("%-16s %-5s | %9s %9s %6s | %9s %9s %6s\n", "shape MxNxK", "W", "1 thread", "ms", "%vnni",
           "2 threads", "ms", "%vnni");
    for (int s = 0; s < 3; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = frand((size_t)M * K), *wf = frand((size_t)N * K), *y = malloc((size_t)M * N * 4);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] *= 0.02f;
        const double flop = 2.0 * M * N * K;
        for (size_t d = 0; d < sizeof types / sizeof types[0]; d++) {
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
    double bw[2], vnni[2];
    for (int p = 0; p < 2; p++) {
        bw[p] = baseline(molmo_pool_size(pools[p]), MOLMO_BENCH_READ, NULL);
        vnni[p] = baseline(molmo_pool_size(pools[p]), MOLMO_BENCH_VNNI, NULL);
        if (vnni[p] <= 0) vnni[p] = 1; /* no VNNI: the percentages are meaningless */
    }
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
    printf("cpu: %d physical cores, %d logical; avx2 %d fma %d f16c %d avx512f %d bw %d vl %d bf16 %d\n",
           f->n_physical, f->n_logical, f->avx2, f->fma, f->f16c, f->avx512f, f->avx512bw,
           f->avx512vl, f->avx512bf16);
    double peak[2] = {1, 1};
    const char *isa = "none";
    for (int p = 0; p < 2; p++) peak[p] = baseline(p + 1, MOLMO_BENCH_FMA, &isa);
    for (int p = 0; p < 2; p++) peak[p] = peak[p] > 0 ? peak[p] : 1;
    printf("FMA peak (%s loop): 1 thread %.1f GFLOP/s, 2 threads %.1f GFLOP/s\n", isa,
           peak[0] * 1e-9, peak[1] * 1e-9);
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

/* test_kernels.c — the matmul kernels (AVX2, AVX-512: whichever this CPU runs) against the
 * plain-C reference and against double precision, the op layer's promise that 1 and N threads
 * give identical bits, and the dispatch (STYLE.md §7, §9). The other ops are tested in
 * test_kernels_ops.c; both share the tolerance table of kernel_check.h.
 *
 * Shapes: 1, 7, 16, 17, 4095, the model widths (588, 1024, 4096) and strided / unaligned
 * operands, in F32, F16 and BF16. `test_kernels --perf` prints GFLOP/s and GB/s of the shipped
 * kernels instead of testing. MOLMO_TEST_VERBOSE=1 prints every comparison. */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "base/fp16.h"
#include "kernel_check.h"
#include "base/cpu.h"
#include "kernels/ops.h"
#if defined(__x86_64__)
#include "kernels/x86/x86.h"
#endif

/* f32 -> f16, round to nearest even; magnitudes below the normal f16 range become zero (the
 * tests only need valid f16 weights; conversion of subnormals is tested in to_f32). */
static uint16_t to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u, m = u & 0x7fffffu;
    const int e = (int)((u >> 23) & 0xffu) - 127 + 15;
    if (e <= 0) return (uint16_t)sign;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    uint32_t h = sign | ((uint32_t)e << 10) | (m >> 13);
    const uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry bumps the exponent */
    return (uint16_t)h;
}

/* W [N, K] in the given dtype (rounded from f32 values) and its exact f32 copy. */
static void *make_w(molmo_dtype wt, size_t n, float scale, float **f32_out) {
    float *f = frand(n, scale);
    void *w = f;
    if (wt != MOLMO_DTYPE_F32) {
        uint16_t *h = malloc((n ? n : 1) * 2);
        assert_non_null(h);
        for (size_t i = 0; i < n; i++) {
            if (wt == MOLMO_DTYPE_BF16) {
                h[i] = molmo_f32_to_bf16(f[i]);
                f[i] = molmo_bf16_to_f32(h[i]);
            } else {
                h[i] = to_f16(f[i]);
                f[i] = molmo_f16_to_f32(h[i]);
            }
        }
        w = h;
    }
    *f32_out = f;
    return w;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------ matmul */

typedef struct mm_shape {
    int M, N, K, pad; /* pad: extra row stride on x and y, and a 1-float misalignment */
} mm_shape;

static const mm_shape MM_SHAPES[] = {
    {1, 1, 1, 0},     {1, 7, 16, 0},     {7, 17, 4095, 0},  {16, 16, 16, 0},  {17, 17, 17, 3},
    {5, 4095, 17, 0}, {4095, 1, 7, 1},   {4, 33, 1024, 2},  {5, 64, 128, 0},  {6, 64, 128, 0},
    {7, 65, 129, 5},  {13, 130, 257, 1}, {24, 64, 588, 0},  {33, 1024, 1024, 0}, {3, 1024, 4096, 0},
    {37, 200, 300, 7}, {2, 33, 4095, 0},
};

static const molmo_dtype DTYPES[] = {MOLMO_DTYPE_F32, MOLMO_DTYPE_F16, MOLMO_DTYPE_BF16};

/* Sentinel in the padding of y: no kernel may write outside [M, N]. */
#define SENTINEL 12345.0f

/* Copies the [M, N] block of y (row stride ldy) into out [M, N]; checks that the padding of
 * every row but the last still holds SENTINEL. */
static void unpad(float *out, const float *y, int M, int N, int ldy) {
    for (int i = 0; i < M; i++) {
        memcpy(out + (size_t)i * N, y + (size_t)i * ldy, (size_t)N * sizeof(float));
        for (int j = N; j < ldy && i < M - 1; j++) assert_true(y[(size_t)i * ldy + j] == SENTINEL);
    }
}

static void run_mm_case(const molmo_kernels *const *sets, int n_sets, const mm_shape *s,
                        molmo_dtype wt, int use_bias) {
    const int M = s->M, N = s->N, K = s->K, off = s->pad ? 1 : 0;
    const int ldx = K + s->pad, ldy = N + s->pad;
    const size_t ny = (size_t)M * ldy + off;
    float *xb = frand((size_t)M * ldx + off, 1.0f), *x = xb + off, *wf;
    void *w = make_w(wt, (size_t)N * K, 1.0f / sqrtf((float)K), &wf);
    float *bias = use_bias ? frand((size_t)N, 0.5f) : NULL;
    float *y0 = malloc(ny * sizeof(float)), *y1 = malloc(ny * sizeof(float));
    float *y2 = malloc(ny * sizeof(float));
    float *g = malloc((size_t)M * N * sizeof(float)), *r = malloc((size_t)M * N * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "%dx%dx%d %s%s%s", M, N, K, molmo_dtype_name(wt),
             use_bias ? " bias" : "", s->pad ? " strided" : "");
    for (size_t i = 0; i < ny; i++) y0[i] = SENTINEL;
    molmo_matmul_args a = {y0 + off, ldy, x, ldx, w, wt, bias, M, N, K, 0, NULL, 0, NULL};
    molmo_kernels_ref()->matmul(&a, 0, M, 0, N, NULL, 0);
    unpad(r, y0 + off, M, N, ldy);
    check_ref_exact(r, x, ldx, wf, bias, M, N, K, what);
    for (int si = 0; si < n_sets; si++) {
        for (size_t i = 0; i < ny; i++) y1[i] = SENTINEL;
        a.y = y1 + off;
        sets[si]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
        if (off) assert_true(y1[0] == SENTINEL);
        unpad(g, y1 + off, M, N, ldy);
        check(sets[si]->name, M <= 4 ? "matmul_gemv" : "matmul", g, r, (size_t)M * N, what);
        /* Other K blockings (a stack panel, a short workspace) give the same bits. */
        for (int v = 0; v < 2; v++) {
            memcpy(y2, y1, ny * sizeof(float));
            a.y = y2 + off;
            sets[si]->matmul(&a, 0, M, 0, N, v ? g_ws : NULL, v ? 160 * 64 : 0);
            assert_memory_equal(y1, y2, ny * sizeof(float));
        }
    }
    free(g);
    free(r);
    free(xb);
    free(wf);
    if (w != wf) free(w);
    free(bias);
    free(y0);
    free(y1);
    free(y2);
}

static void test_matmul_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    for (size_t i = 0; i < sizeof MM_SHAPES / sizeof MM_SHAPES[0]; i++)
        for (int d = 0; d < 3; d++) run_mm_case(sets, n_sets, &MM_SHAPES[i], DTYPES[d], (int)(i + d) % 2);
}

/* K = 0: y = bias (or 0) for every kernel set. */
/* f32 activations whose three bf16 parts are all nonzero, times BF16 weights, where every
 * partial sum is exact in f32: each x is 2^e (1 + 2^-9 + 2^-17) (parts 2^e, 2^(e-9),
 * 2^(e-17): the 2^-17 sits on a tie and rounds to even), each weight +-1, K = 32, e in -2..2
 * per row: every partial sum is m x with |m| <= 32, at most 24 bits. Every set and summation order gives
 * y = the exact sum; the AMX-BF16 GEMM only if it adds all three parts of x (with two, y
 * misses 2^-17 of each term: the tolerance of test_matmul_vs_ref lets that pass, NMSE 6.6e-12
 * against 1.1e-12 with three, session 13). */
static void test_matmul_bf16_three_parts(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    enum { M = 37, N = 48, K = 32 };
    float *x = malloc(sizeof(float) * M * K), *y = malloc(sizeof(float) * M * N);
    uint16_t *w = malloc(sizeof(uint16_t) * N * K);
    double *want = malloc(sizeof(double) * M * N);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            x[i * K + k] = ldexpf(1.0f + 0x1p-9f + 0x1p-17f, i % 5 - 2);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) w[j * K + k] = molmo_f32_to_bf16((j * 7 + k * 3) % 5 < 2 ? -1.0f : 1.0f);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)x[i * K + k] * molmo_bf16_to_f32(w[j * K + k]);
            want[i * N + j] = acc;
        }
    const molmo_kernels *all[3] = {molmo_kernels_ref()};
    for (int si = 0; si < n_sets; si++) all[1 + si] = sets[si];
    for (int si = 0; si < 1 + n_sets; si++) {
        const molmo_matmul_args a = {y, N, x, K, w, MOLMO_DTYPE_BF16, NULL, M, N, K, 0, NULL, 0, NULL};
        all[si]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
        for (int e = 0; e < M * N; e++)
            if ((double)y[e] != want[e])
                fail_msg("%s matmul bf16, three-part x: y[%d][%d] = %.9g, exact %.9g", all[si]->name,
                         e / N, e % N, (double)y[e], want[e]);
    }
    free(x);
    free(y);
    free(w);
    free(want);
}

/* x holding bf16 values (molmo_op_round_bf16) against BF16 weights: saying so (x_bf16, which
 * lets the AMX-BF16 GEMM take one pass instead of three) gives the same bits in every set, and
 * the reference's values to the usual tolerance; molmo_op_matmul_bf16x likewise on a pool. */
static void test_matmul_bf16_x(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    molmo_pool *pool;
    assert_int_equal(molmo_pool_create(2, &pool, NULL), MOLMO_OK);
    for (size_t si = 0; si < sizeof MM_SHAPES / sizeof MM_SHAPES[0]; si++) {
        const mm_shape *s = &MM_SHAPES[si];
        const int M = s->M, N = s->N, K = s->K, ldx = K + s->pad;
        float *x = frand((size_t)M * ldx, 2.0f), *wf;
        for (size_t i = 0; i < (size_t)M * ldx; i++) x[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[i]));
        void *w = make_w(MOLMO_DTYPE_BF16, (size_t)N * K, 1.0f / sqrtf((float)K), &wf);
        float *bias = frand((size_t)N, 0.5f);
        const size_t ny = (size_t)M * N;
        float *r = malloc(ny * 4), *g0 = malloc(ny * 4), *g1 = malloc(ny * 4);
        char what[96];
        snprintf(what, sizeof what, "%dx%dx%d bf16, bf16 x", M, N, K);
        molmo_matmul_args a = {r, N, x, ldx, w, MOLMO_DTYPE_BF16, bias, M, N, K, 0, NULL, 0, NULL};
        molmo_kernels_ref()->matmul(&a, 0, M, 0, N, NULL, 0);
        for (int k = 0; k < n_sets; k++) {
            a.y = g0;
            a.x_bf16 = 0;
            sets[k]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
            a.y = g1;
            a.x_bf16 = 1;
            sets[k]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
            if (memcmp(g0, g1, ny * 4) != 0)
                fail_msg("%s matmul %s: x_bf16 changes the result", sets[k]->name, what);
            check(sets[k]->name, M <= 4 ? "matmul_gemv" : "matmul", g1, r, ny, what);
        }
        molmo_op_matmul_bf16x(pool, g1, N, x, ldx, w, MOLMO_DTYPE_BF16, bias, M, N, K);
        molmo_op_matmul(pool, g0, N, x, ldx, w, MOLMO_DTYPE_BF16, bias, M, N, K);
        if (!molmo_kernels_bf16_dot()) assert_memory_equal(g0, g1, ny * 4);
#if defined(__x86_64__)
        /* The VDPBF16PS GEMM (AMD's path for this; run here on any AVX512-BF16 CPU): the
         * reference's values to the tolerance, and the same bits for any row/column split and
         * workspace (K blocks of 1024, 64 and 32 steps). */
        if (M > 4 && molmo_kernels_avx512() && molmo_cpu_get()->avx512bf16) {
            a.x_bf16 = 1;
            a.y = g0;
            assert_int_equal(molmo_k_matmul_bf16_dot(&a, 0, M, 0, N, g_ws, WS_FLOATS), 1);
            check("avx512", "matmul_bf16dot", g0, r, ny, what);
            static const size_t ws_sizes[2] = {(64 + 40) * 64 / 2, (64 + 40) * 32 / 2};
            for (int wi = 0; wi < 2; wi++) {
                a.y = g1;
                const int mh = M / 2, nh = N / 3;
                const size_t wsz = M - mh <= 40 ? ws_sizes[wi] : WS_FLOATS;
                assert_int_equal(molmo_k_matmul_bf16_dot(&a, 0, mh, 0, nh, g_ws, wsz), 1);
                assert_int_equal(molmo_k_matmul_bf16_dot(&a, 0, mh, nh, N, g_ws, wsz), 1);
                assert_int_equal(molmo_k_matmul_bf16_dot(&a, mh, M, 0, N, g_ws, wsz), 1);
                if (memcmp(g0, g1, ny * 4) != 0)
                    fail_msg("bf16dot matmul %s: the split changes the result", what);
            }
            assert_int_equal(molmo_k_matmul_bf16_dot(&a, 0, M, 0, N, g_ws, 100), 0); /* no room */
        }
#endif
        free(r);
        free(g0);
        free(g1);
        free(x);
        free(wf);
        free(w);
        free(bias);
    }
    molmo_pool_free(pool);
}

static void test_matmul_empty_k(void **state) {
    (void)state;
    const molmo_kernels *sets[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    const float bias[3] = {1.5f, -2.0f, 0.25f};
    for (int si = 0; si < 3; si++) {
        if (!sets[si]) continue;
        float y[6] = {9, 9, 9, 9, 9, 9}, x[1] = {0};
        float w[1] = {0};
        molmo_matmul_args a = {y, 3, x, 1, w, MOLMO_DTYPE_F32, bias, 2, 3, 0, 0, NULL, 0, NULL};
        sets[si]->matmul(&a, 0, 2, 0, 3, NULL, 0);
        for (int i = 0; i < 6; i++) assert_true(y[i] == bias[i % 3]);
    }
}

/* Column panels of at most 16 outputs (N's tail) run a one-vector register tile in the AVX-512
 * GEMM: the same FMA chains as the four-vector tile, so the same bits. Each case runs all
 * columns in one call, where a panel's 64 columns take the wide tile (a short last panel of
 * 17..63 columns too), and again 16 columns per call, where every column takes the narrow one;
 * with and without bias, and from a stack panel (128 steps of K per block: accumulating
 * blocks). */
static void test_matmul_narrow_panels(void **state) {
    (void)state;
    static const mm_shape shapes[] = {{13, 80, 64, 0}, {6, 577, 64, 1}, {25, 40, 300, 0}, {7, 33, 17, 2}};
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const mm_shape *s = &shapes[si];
        const int ldx = s->K + s->pad, ldy = s->N + s->pad;
        const size_t ny = (size_t)s->M * ldy;
        for (int d = 0; d < 2; d++) { /* F32, F16: the FMA GEMM on every x86 set */
            float *x = frand((size_t)s->M * ldx, 1.0f), *wf, *bias = frand((size_t)s->N, 1.0f);
            void *w = make_w(DTYPES[d], (size_t)s->N * s->K, 0.05f, &wf);
            float *y0 = calloc(ny, sizeof(float)), *y1 = calloc(ny, sizeof(float));
            assert_true(y0 && y1);
            for (int k = 0; k < n_sets; k++) {
                for (int v = 0; v < 2; v++) {
                    molmo_matmul_args a = {y0, ldy, x, ldx, w, DTYPES[d], v ? bias : NULL,
                                           s->M, s->N, s->K, 0, NULL, 0, NULL};
                    float *ws = v ? NULL : g_ws;
                    const size_t wsf = v ? 0 : WS_FLOATS;
                    sets[k]->matmul(&a, 0, s->M, 0, s->N, ws, wsf);
                    a.y = y1;
                    for (int j0 = 0; j0 < s->N; j0 += 16)
                        sets[k]->matmul(&a, 0, s->M, j0, j0 + 16 < s->N ? j0 + 16 : s->N, ws, wsf);
                    if (memcmp(y0, y1, ny * sizeof(float)) != 0)
                        fail_msg("%s matmul %dx%dx%d %s: 16-column panels change the bits",
                                 sets[k]->name, s->M, s->N, s->K, molmo_dtype_name(DTYPES[d]));
                }
            }
            free(x);
            free(wf);
            if (w != wf) free(w);
            free(bias);
            free(y0);
            free(y1);
        }
    }
}

/* Weights packed once for all threads (kernels.h, matmul_wq: the AMX-BF16 GEMM's panels) give
 * the bits of the kernel packing for itself: whole, in column cuts on panel boundaries, off
 * them (where the kernel packs for itself), filled in two halves as two threads would, with a
 * partial last panel and a K that is no multiple of 32, for f32 and bf16 activations. */
static void test_matmul_packed_weights(void **state) {
    (void)state;
    const molmo_kernels *k = molmo_kernels_avx512();
    if (!k || !k->matmul_wq_bytes || !molmo_kernels_amx_bf16()) {
        print_message("  (no AMX-BF16: nothing packs its weights once)\n");
        return;
    }
    static const mm_shape shapes[] = {{577, 200, 1100, 0}, {400, 96, 4096, 0}, {600, 64, 64, 0}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int xb = 0; xb < 2; xb++) {
            const int M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
            float *x = frand((size_t)M * K, 1.0f), *wf;
            if (xb)
                for (size_t i = 0; i < (size_t)M * K; i++) x[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[i]));
            void *w = make_w(MOLMO_DTYPE_BF16, (size_t)N * K, 0.05f, &wf);
            float *bias = frand((size_t)N, 1.0f);
            float *y0 = malloc((size_t)M * N * 4), *y1 = malloc((size_t)M * N * 4);
            molmo_matmul_args a = {y0, N, x, K, w, MOLMO_DTYPE_BF16, bias, M, N, K, xb, NULL, 0, NULL};
            const size_t bytes = k->matmul_wq_bytes(&a);
            if (K == 64) { /* one chunk of rows: packing once would only add a pass */
                assert_int_equal(bytes, 0);
            } else {
                assert_true(bytes > 0);
                unsigned char *wq = aligned_alloc(64, (bytes + 63) / 64 * 64);
                memset(wq, 0xff, bytes);
                const int panels = (N + MOLMO_WQ_COLS - 1) / MOLMO_WQ_COLS;
                k->matmul_wq(&a, panels / 2, panels, wq);
                k->matmul_wq(&a, 0, panels / 2, wq);
                k->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
                a.wq = wq;
                a.y = y1;
                static const int cuts[][2] = {{0, 0}, {0, 64}, {64, 96}, {96, 0}, {16, 0}, {0, 16}};
                for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
                    const int n0 = cuts[c][0], n1 = cuts[c][1] ? cuts[c][1] : N;
                    if (n1 > N || n0 >= n1) continue;
                    k->matmul(&a, 0, M, n0, n1, g_ws, WS_FLOATS);
                }
                if (memcmp(y0, y1, (size_t)M * N * 4) != 0)
                    fail_msg("%dx%dx%d bf16%s: weights packed once change the result", M, N, K,
                             xb ? ", bf16 x" : "");
                free(wq);
            }
            free(x);
            free(wf);
            free(w);
            free(bias);
            free(y0);
            free(y1);
        }
}

/* The op layer: 1, 2 and 3 threads give the same bits, equal to one kernel call over the whole
 * output; force_reference gives the reference bits. */
static void test_matmul_threads(void **state) {
    (void)state;
    static const mm_shape shapes[] = {{150, 256, 1100, 0}, {100, 64, 64, 0}, {3, 1000, 64, 0},
                                      {1, 4095, 17, 0},   {50, 300, 129, 3}, {9, 130, 70, 0}};
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int d = 0; d < 3; d++) {
            const mm_shape *s = &shapes[si];
            const int ldx = s->K + s->pad, ldy = s->N + s->pad;
            const size_t ny = (size_t)s->M * ldy;
            float *x = frand((size_t)s->M * ldx, 1.0f), *wf;
            void *w = make_w(DTYPES[d], (size_t)s->N * s->K, 0.05f, &wf);
            float *bias = frand((size_t)s->N, 1.0f);
            float *y[4];
            for (int i = 0; i < 4; i++) {
                y[i] = calloc(ny, sizeof(float));
                assert_non_null(y[i]);
            }
            for (int i = 0; i < 3; i++)
                molmo_op_matmul(pools[i], y[i], ldy, x, ldx, w, DTYPES[d], bias, s->M, s->N, s->K);
            molmo_matmul_args a = {y[3], ldy, x, ldx, w, DTYPES[d], bias, s->M, s->N, s->K, 0, NULL, 0, NULL};
            molmo_kernels_get()->matmul(&a, 0, s->M, 0, s->N, NULL, 0);
            for (int i = 1; i < 4; i++) assert_memory_equal(y[0], y[i], ny * sizeof(float));
            if ((double)s->M * s->N * s->K <= 4e6) { /* the reference is slow */
                molmo_kernels_force_reference(1);
                assert_string_equal(molmo_kernels_name(), "ref");
                molmo_op_matmul(pools[1], y[1], ldy, x, ldx, w, DTYPES[d], bias, s->M, s->N, s->K);
                molmo_kernels_force_reference(0);
                a.y = y[2];
                molmo_kernels_ref()->matmul(&a, 0, s->M, 0, s->N, NULL, 0);
                assert_memory_equal(y[1], y[2], ny * sizeof(float));
            }
            for (int i = 0; i < 4; i++) free(y[i]);
            free(x);
            free(wf);
            if (w != wf) free(w);
            free(bias);
        }
    }
    for (int i = 0; i < 3; i++) molmo_pool_free(pools[i]);
}

/* The dispatch: the best table is one the CPU supports, and force_reference switches to ref. */
static void test_dispatch(void **state) {
    (void)state;
    const char *best = molmo_kernels_name();
    const char *cap = getenv("MOLMO_KERNELS");
    if (!cap && molmo_kernels_avx512())
        assert_string_equal(best, molmo_kernels_amx() ? "avx512+amx" : "avx512");
    if (cap && strcmp(cap, "avx512") == 0 && molmo_kernels_avx512()) {
        assert_string_equal(best, "avx512");
        assert_false(molmo_kernels_amx());
    }
    if (molmo_kernels_amx()) { /* off and on again: the name follows */
        molmo_kernels_allow_amx(0);
        assert_string_equal(molmo_kernels_name(), "avx512");
        molmo_kernels_allow_amx(1);
    }
    if (!cap && !molmo_kernels_avx512() && molmo_kernels_avx2()) assert_string_equal(best, "avx2");
    if (cap && strcmp(cap, "avx2") == 0 && molmo_kernels_avx2()) assert_string_equal(best, "avx2");
    if (cap && strcmp(cap, "ref") == 0) assert_string_equal(best, "ref");
    molmo_kernels_force_reference(1);
    assert_string_equal(molmo_kernels_name(), "ref");
    assert_ptr_equal(molmo_kernels_get(), molmo_kernels_ref());
    molmo_kernels_force_reference(0);
    assert_string_equal(molmo_kernels_name(), best);
    /* Empty shapes are no-ops. */
    float y = 7.0f;
    molmo_op_matmul(NULL, &y, 1, &y, 1, &y, MOLMO_DTYPE_F32, NULL, 0, 1, 1);
    molmo_op_layernorm(NULL, &y, &y, NULL, NULL, 0, 1, 1e-5f);
    molmo_op_softmax_rows(&y, 1, 0);
    assert_true(y == 7.0f);
    molmo_op_softmax_rows(&y, 1, 1);
    assert_true(y == 1.0f);
}

/* ------------------------------------------------------------------------------ --perf */

static double best_of(int reps, void (*fn)(void *), void *arg) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        fn(arg);
        const double t = now_s() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct perf_mm {
    molmo_pool *pool;
    float *y, *x;
    void *w;
    molmo_dtype wt;
    int M, N, K;
} perf_mm;
static void perf_mm_fn(void *p) {
    perf_mm *a = p;
    molmo_op_matmul(a->pool, a->y, a->N, a->x, a->K, a->w, a->wt, NULL, a->M, a->N, a->K);
}

typedef struct perf_attn {
    molmo_pool *pool;
    float *o, *q, *k, *v, *scratch;
    int n, heads, hd;
} perf_attn;
static void perf_attn_fn(void *p) {
    perf_attn *a = p;
    const int D = a->heads * a->hd;
    molmo_op_attention(a->pool, a->o, D, a->q, D, a->k, D, a->v, D, a->n, a->n, a->heads, a->heads,
                       a->hd, 0.125f, 0, 0, a->scratch);
}

typedef struct perf_rows {
    molmo_pool *pool;
    float *x, *w, *b;
    int M, N, op;
} perf_rows;
static void perf_rows_fn(void *p) {
    perf_rows *a = p;
    const size_t n = (size_t)a->M * a->N;
    switch (a->op) {
    case 0: molmo_op_layernorm(a->pool, a->x, a->x, a->w, a->b, a->M, a->N, 1e-5f); break;
    case 1: molmo_op_rmsnorm(a->pool, a->x, a->x, a->w, a->M, a->N, 1e-5f); break;
    case 2: molmo_op_quick_gelu(NULL, a->x, n); break;
    case 3: molmo_op_silu_mul(NULL, a->x, a->x, a->b, n); break;
    default: molmo_op_softmax_rows(a->x, a->M, a->N); break;
    }
}

static int run_perf(void) {
    molmo_pool *pool;
    if (molmo_pool_create(0, &pool, NULL) != MOLMO_OK) return 1;
    printf("kernels: %s, %d threads\n", molmo_kernels_name(), molmo_pool_size(pool));
    static const int shapes[][3] = {{577, 1024, 1024}, {577, 4096, 1024}, {577, 1024, 4096}, {1, 4096, 1024}};
    for (size_t s = 0; s < 4; s++)
        for (int d = 0; d < 3; d += 2) {
            perf_mm a = {pool, NULL, NULL, NULL, DTYPES[d], shapes[s][0], shapes[s][1], shapes[s][2]};
            float *wf;
            a.x = frand((size_t)a.M * a.K, 1.0f);
            a.y = malloc((size_t)a.M * a.N * sizeof(float));
            a.w = make_w(a.wt, (size_t)a.N * a.K, 0.03f, &wf);
            const double t = best_of(5, perf_mm_fn, &a);
            printf("matmul %4dx%4dx%4d %-4s  %8.3f ms  %7.1f GFLOP/s  %6.1f GB/s (weights)\n", a.M,
                   a.N, a.K, molmo_dtype_name(a.wt), t * 1e3, 2.0 * a.M * a.N * a.K / t * 1e-9,
                   (double)a.N * a.K * (d ? 2 : 4) / t * 1e-9);
            free(a.x);
            free(a.y);
            free(wf);
            if (a.w != wf) free(a.w);
        }
    perf_attn at = {pool, NULL, NULL, NULL, NULL, NULL, 577, 16, 64};
    at.q = frand(577 * 1024, 1.0f);
    at.k = frand(577 * 1024, 1.0f);
    at.v = frand(577 * 1024, 1.0f);
    at.o = malloc(577 * 1024 * sizeof(float));
    at.scratch = malloc(molmo_op_attention_scratch(577, molmo_pool_size(pool)) * sizeof(float));
    double t = best_of(5, perf_attn_fn, &at);
    printf("attention 577x577 16x64       %8.3f ms  %7.1f GFLOP/s\n", t * 1e3,
           4.0 * 577 * 577 * 1024 / t * 1e-9);
    free(at.q);
    free(at.k);
    free(at.v);
    free(at.o);
    free(at.scratch);
    static const char *names[5] = {"layernorm", "rmsnorm", "quick_gelu", "silu_mul", "softmax"};
    for (int op = 0; op < 5; op++) {
        perf_rows r = {pool, frand(577 * 4096, 1.0f), frand(4096, 1.0f), frand(577 * 4096, 1.0f), 577, 4096, op};
        t = best_of(5, perf_rows_fn, &r);
        printf("%-10s 577x4096             %8.3f ms  %7.1f GB/s\n", names[op], t * 1e3,
               577.0 * 4096 * 4 * (op == 3 ? 3 : 2) / t * 1e-9);
        free(r.x);
        free(r.w);
        free(r.b);
    }
    molmo_pool_free(pool);
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--perf") == 0) return run_perf();
    kernel_check_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_matmul_vs_ref),
        cmocka_unit_test(test_matmul_empty_k),
        cmocka_unit_test(test_matmul_bf16_x),
        cmocka_unit_test(test_matmul_bf16_three_parts),
        cmocka_unit_test(test_matmul_narrow_panels),
        cmocka_unit_test(test_matmul_packed_weights),
        cmocka_unit_test(test_matmul_threads),
        cmocka_unit_test(test_print_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

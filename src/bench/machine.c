/* machine.c — the machine baselines every `molmo bench` figure is compared with, measured in the
 * same run on the same threads: memory read bandwidth (a buffer far larger than the caches,
 * streamed by all threads at once, as a decode step streams its weights) and the peaks of the
 * instructions the kernels are built from: f32 FMA (AVX-512, else AVX2), int8 vpdpbusd
 * (AVX512-VNNI, else AVX-VNNI) and vdpbf16ps (AVX512-BF16).
 *
 * Each peak loop runs 16 independent accumulator chains (14 in the 256-bit loops, which have
 * only 16 registers): more than latency x ports (4..5 x 2) of the cores we know. Every chain
 * starts from a different value, so the compiler cannot merge identical chains, and an empty
 * asm statement per iteration keeps the loop as written: its body is exactly 16 (14) of the
 * instruction measured (checked with objdump; see docs/bench.md). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/threadpool.h"
#include "io/mapfile.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "molmo.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define DEFAULT_READ_BYTES ((size_t)1 << 30)
#define DEFAULT_PEAK_ITERS 4000000L

molmo_bench_machine_params molmo_bench_machine_default_params(void) {
    molmo_bench_machine_params p;
    memset(&p, 0, sizeof p);
    p.what = MOLMO_BENCH_ALL;
    p.read_bytes = DEFAULT_READ_BYTES;
    p.reps = 3;
    p.peak_iters = DEFAULT_PEAK_ITERS;
    return p;
}

int molmo_bench_physical_cores(void) { return molmo_cpu_physical_cores(); }

/* ------------------------------------------------------------------------------ peak loops */

enum { LOOP_FMA512, LOOP_FMA256, LOOP_VNNI512, LOOP_VNNI256, LOOP_BF16_512, LOOP_COUNT };

/* Operations counted per instruction: FMA 2 per f32 lane; vpdpbusd 4 multiply-adds (8 ops) per
 * 32-bit lane; vdpbf16ps 2 multiply-adds (4 FLOP) per f32 lane. */
static const double loop_ops[LOOP_COUNT] = {32, 16, 128, 64, 64};
/* Instructions per iteration (the chains of each loop). */
static const double loop_chains[LOOP_COUNT] = {16, 14, 16, 14, 16};

#if defined(__x86_64__)
/* 14 chains: the VEX (256-bit) loops, which have 16 registers only (14 accumulators + the two
 * operands; with 16 chains they would spill), and still more than latency x ports needs. */
#define CHAIN14(F, a, b)                                                                        \
    c0 = F(c0, a, b), c1 = F(c1, a, b), c2 = F(c2, a, b), c3 = F(c3, a, b), c4 = F(c4, a, b),    \
    c5 = F(c5, a, b), c6 = F(c6, a, b), c7 = F(c7, a, b), c8 = F(c8, a, b), c9 = F(c9, a, b),    \
    ca = F(ca, a, b), cb = F(cb, a, b), cc = F(cc, a, b), cd = F(cd, a, b)
#define CHAIN16(F, a, b) CHAIN14(F, a, b), ce = F(ce, a, b), cf = F(cf, a, b)
#define SUM14 (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + ca + cb + cc + cd)
#define SUM16 (SUM14 + ce + cf)
/* Declares c0..cd (and ce, cf) of type T, each set to S(its index): distinct starting values. */
#define INIT14(T, S)                                                                            \
    T c0 = S(0), c1 = S(1), c2 = S(2), c3 = S(3), c4 = S(4), c5 = S(5), c6 = S(6), c7 = S(7),     \
      c8 = S(8), c9 = S(9), ca = S(10), cb = S(11), cc = S(12), cd = S(13)
#define INIT16(T, S) INIT14(T, S), ce = S(14), cf = S(15)
/* Keeps the loop body as written: the compiler may not move work across it. */
#define BARRIER() __asm__ volatile("" ::: "memory")

__attribute__((target("avx512f,fma"), noinline)) static double
fma512(long iters) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#define S(i) _mm512_set1_ps((float)(i))
    INIT16(__m512, S);
#undef S
    for (long it = 0; it < iters; it++) {
        CHAIN16(_mm512_fmadd_ps, a, b);
        BARRIER();
    }
    return _mm512_reduce_add_ps(SUM16);
}

__attribute__((target("avx2,fma"), noinline)) static double
fma256(long iters) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#define S(i) _mm256_set1_ps((float)(i))
    INIT14(__m256, S);
#undef S
    for (long it = 0; it < iters; it++) {
        CHAIN14(_mm256_fmadd_ps, a, b);
        BARRIER();
    }
    float o[8];
    _mm256_storeu_ps(o, SUM14);
    return o[0] + o[7];
}

/* vpdpbusd c += a (unsigned bytes) . b (signed bytes) as one asm instruction: through the
 * intrinsic, GCC 12 copies every accumulator to a fresh register and back each iteration
 * (30 extra moves in the loop), which would measure the front end instead. */
__attribute__((target("avx512f,avx512vnni"), always_inline)) static inline __m512i
dp512(__m512i c, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(c) : "v"(a), "v"(b));
    return c;
}

__attribute__((target("avx2,avxvnni"), always_inline)) static inline __m256i
dp256(__m256i c, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(c) : "x"(a), "x"(b));
    return c;
}

__attribute__((target("avx512f,avx512vnni"), noinline)) static double
vnni512(long iters) {
    const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01ff01ff);
#define S(i) _mm512_set1_epi32(i)
    INIT16(__m512i, S);
#undef S
    for (long it = 0; it < iters; it++) {
        CHAIN16(dp512, a, b);
        BARRIER();
    }
    return (double)_mm512_reduce_add_epi32(SUM16);
}

__attribute__((target("avx2,avxvnni"), noinline)) static double
vnni256(long iters) {
    const __m256i a = _mm256_set1_epi32(0x01010101), b = _mm256_set1_epi32(0x01ff01ff);
#define S(i) _mm256_set1_epi32(i)
    INIT14(__m256i, S);
#undef S
    for (long it = 0; it < iters; it++) {
        CHAIN14(dp256, a, b);
        BARRIER();
    }
    int o[8];
    _mm256_storeu_si256((__m256i *)o, SUM14);
    return (double)o[0] + o[7];
}

__attribute__((target("avx512f,avx512bf16"), noinline)) static double
bf16_512(long iters) {
    /* bf16 pairs (1.0, 1.0) times (2^-10, 2^-10): sums stay far from overflow and denormals */
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    const __m512bh b = (__m512bh)_mm512_set1_epi32(0x3a803a80);
#define S(i) _mm512_set1_ps((float)(i))
    INIT16(__m512, S);
#undef S
    for (long it = 0; it < iters; it++) {
        CHAIN16(_mm512_dpbf16_ps, a, b);
        BARRIER();
    }
    return _mm512_reduce_add_ps(SUM16);
}

static double run_loop(int which, long iters) {
    switch (which) {
    case LOOP_FMA512: return fma512(iters);
    case LOOP_FMA256: return fma256(iters);
    case LOOP_VNNI512: return vnni512(iters);
    case LOOP_VNNI256: return vnni256(iters);
    default: return bf16_512(iters);
    }
}
#else
static double run_loop(int which, long iters) {
    (void)which;
    (void)iters;
    return 0;
}
#endif

typedef struct peak_job {
    int which;
    long iters;
    double sink[256]; /* per thread: the chains' sum, so the loop has a use */
} peak_job;

static void peak_worker(void *arg, int ith, int nth) {
    peak_job *j = arg;
    (void)nth;
    double s = run_loop(j->which, j->iters);
    if (ith < 256) j->sink[ith] = s;
}

/* Operations per second of loop `which` on every thread of the pool at once, best of reps. */
static double peak(molmo_pool *pool, int which, long iters, int reps) {
    peak_job j = {.which = which, .iters = iters};
    const double ops = (double)iters * loop_chains[which] * loop_ops[which] * molmo_pool_size(pool);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = molmo_now_ms();
        molmo_pool_run(pool, peak_worker, &j);
        const double dt = (molmo_now_ms() - t0) * 1e-3;
        if (dt > 0 && ops / dt > best) best = ops / dt;
    }
    return best;
}

/* ------------------------------------------------------------------------- read bandwidth */

typedef struct read_job {
    uint64_t *buf;
    size_t n;             /* uint64 words (of each segment) */
    int nseg;             /* segments of n words, seg_stride words apart (0: one) */
    size_t seg_stride;
    uint64_t sink[256];
} read_job;

/* Each thread's contiguous part of the buffer: whole 64-byte lines, the rest to the last. */
static void part(size_t n, int ith, int nth, size_t *b, size_t *e) {
    const size_t per = n / (size_t)nth / 8 * 8;
    *b = per * (size_t)ith;
    *e = ith == nth - 1 ? n : *b + per;
}

static void fill_worker(void *arg, int ith, int nth) {
    read_job *j = arg;
    size_t b, e;
    part(j->n, ith, nth, &b, &e);
    for (size_t i = b; i < e; i++) j->buf[i] = i * 0x9e3779b97f4a7c15ull; /* first touch */
}

#if defined(__x86_64__)
/* Four independent XOR chains of 64-byte loads: enough loads in flight to saturate memory
 * while the ALU work stays negligible. */
__attribute__((target("avx512f"))) static uint64_t read512(const uint64_t *p, size_t n) {
    __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        x0 = _mm512_xor_si512(x0, _mm512_loadu_si512(p + i));
        x1 = _mm512_xor_si512(x1, _mm512_loadu_si512(p + i + 8));
        x2 = _mm512_xor_si512(x2, _mm512_loadu_si512(p + i + 16));
        x3 = _mm512_xor_si512(x3, _mm512_loadu_si512(p + i + 24));
    }
    uint64_t o[8], s = 0;
    _mm512_storeu_si512(o, _mm512_xor_si512(_mm512_xor_si512(x0, x1), _mm512_xor_si512(x2, x3)));
    for (int k = 0; k < 8; k++) s ^= o[k];
    for (; i < n; i++) s ^= p[i];
    return s;
}
#endif

/* The portable loop: 8 independent XOR chains the compiler vectorises for the target. */
static uint64_t read_plain(const uint64_t *p, size_t n) {
    uint64_t s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] ^= p[i + (size_t)k];
    for (; i < n; i++) s[0] ^= p[i];
    return s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
}

static void read_worker(void *arg, int ith, int nth) {
    read_job *j = arg;
    size_t b, e;
    part(j->n, ith, nth, &b, &e);
    uint64_t s = 0;
    for (int k = 0; k < (j->nseg > 0 ? j->nseg : 1); k++) {
        const uint64_t *p = j->buf + (size_t)k * j->seg_stride + b;
#if defined(__x86_64__)
        s ^= molmo_cpu_get()->avx512f ? read512(p, e - b) : read_plain(p, e - b);
#else
        s ^= read_plain(p, e - b);
#endif
    }
    if (ith < 256) j->sink[ith] = s;
}

/* Bytes per second of all the pool's threads reading j's buffer together, best of reps. */
static double read_rate(molmo_pool *pool, read_job *j, int reps) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = molmo_now_ms();
        molmo_pool_run(pool, read_worker, j);
        const double dt = (molmo_now_ms() - t0) * 1e-3;
        const double bytes = (double)(j->n * 8) * (j->nseg > 0 ? j->nseg : 1);
        if (dt > 0 && bytes / dt > best) best = bytes / dt;
    }
    return best;
}

/* The read rate over a fresh buffer of `bytes`, in transparent huge pages where the kernel
 * gives them (MADV_HUGEPAGE, as the --no-mmap copy of the weights): with the 4 KiB pages that
 * malloc's buffer got under THP's default "madvise" mode the loop read 5-10% slower than the
 * decode GEMVs did from the copy (2 SPR threads: 27.3-29.2 against 30.5-30.6 GB/s), which
 * put their ratios above 100%. */
static molmo_status read_bandwidth(molmo_pool *pool, size_t bytes, int reps, double *out,
                                   molmo_error *err) {
    read_job j = {.n = bytes / 8};
    j.buf = molmo_huge_alloc(j.n * 8);
    if (!j.buf)
        return molmo_err(err, MOLMO_ERR_NOMEM, "bandwidth buffer of %zu MiB: out of memory",
                         bytes >> 20);
    molmo_pool_run(pool, fill_worker, &j);
    *out = read_rate(pool, &j, reps);
    molmo_huge_free(j.buf, j.n * 8);
    return MOLMO_OK;
}

/* The read rate over the first `bytes` of m's largest weights file as it lies: the memory the
 * decoder streams. On some hosts the page cache's pages read markedly slower than fresh
 * memory (docs/bench.md, --no-mmap). The first pass also faults pages in; best of reps. */
static const molmo_mapfile *largest_file(const molmo_model *m) {
    const molmo_mapfile *big = NULL;
    for (int i = 0; i < m->st.n_files; i++)
        if (!big || m->st.maps[i].size > big->size) big = &m->st.maps[i];
    return big;
}

static double weights_bandwidth(molmo_pool *pool, const molmo_model *m, size_t bytes, int reps) {
    const molmo_mapfile *big = largest_file(m);
    if (!big || !big->data) return 0;
    if (bytes >= big->size) {
        read_job j = {.buf = (uint64_t *)(uintptr_t)big->data, .n = big->size / 8};
        return read_rate(pool, &j, reps + 1);
    }
    /* `bytes` in WEIGHTS_SEGMENTS page-aligned pieces spread evenly over the whole file, read
     * in one pass: the page cache's pages do not all read alike (a 7.7 GB GGUF on this VM, GiB
     * by GiB: 21-29 GB/s), and the decoder streams all of them, where the first `bytes` alone
     * may be the fastest part or the slowest. */
    enum { WEIGHTS_SEGMENTS = 16 };
    const size_t page = 4096, seg = bytes / WEIGHTS_SEGMENTS / page * page;
    if (seg == 0) return 0;
    const size_t stride = (big->size - seg) / (WEIGHTS_SEGMENTS - 1) / page * page;
    read_job j = {.buf = (uint64_t *)(uintptr_t)big->data, /* page-aligned; only read */
                  .n = seg / 8, .nseg = WEIGHTS_SEGMENTS, .seg_stride = stride / 8};
    return read_rate(pool, &j, reps + 1);
}

/* ----------------------------------------------------------------------------- the call */

/* "Intel(R) Xeon(R) Processor" from the CPUID brand string (leaves 0x80000002..4). */
static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
#if defined(__x86_64__)
    unsigned r[12];
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return;
    for (unsigned l = 0; l < 3; l++)
        __get_cpuid(0x80000002u + l, &r[4 * l], &r[4 * l + 1], &r[4 * l + 2], &r[4 * l + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = '\0';
    const char *p = s;
    while (*p == ' ') p++;
    if (*p) snprintf(out, cap, "%s", p);
#endif
}

static void describe(molmo_bench_machine *m) {
    const molmo_cpu_features *f = molmo_cpu_get();
    cpu_name(m->cpu, sizeof m->cpu);
    m->n_physical = f->n_physical;
    m->n_logical = f->n_logical;
    m->kernels = molmo_kernels_name();
    m->fma_isa = f->avx512f ? "avx512" : f->avx2 && f->fma ? "avx2" : "none";
    m->vnni_isa = f->avx512f && f->avx512vnni ? "avx512-vnni"
                  : f->avx_vnni                 ? "avx-vnni"
                                                : "none";
    m->bf16_isa = f->avx512f && f->avx512bf16 ? "avx512-bf16" : "none";
    m->quant_bf16 = molmo_kernels_quant_bf16();
}

static molmo_status check(const molmo_bench_machine_params *p, molmo_error *err) {
    if (p->what & ~(unsigned)MOLMO_BENCH_ALL)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: unknown measurement bits 0x%x",
                         p->what & ~(unsigned)MOLMO_BENCH_ALL);
    if (p->n_threads > 256)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: %d threads (at most 256)",
                         p->n_threads);
    if (p->reps < 1 || p->reps > 1000)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: reps must be 1..1000, got %d",
                         p->reps);
    if ((p->what & MOLMO_BENCH_READ) && p->read_bytes < ((size_t)1 << 20))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: read buffer of %zu bytes (at "
                         "least 1 MiB)", p->read_bytes);
    if (p->peak_iters < 1 || p->peak_iters > 1000000000L)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: peak_iters must be 1..1e9, got %ld",
                         p->peak_iters);
    return MOLMO_OK;
}

molmo_status molmo_bench_machine_measure(const molmo_bench_machine_params *params,
                                         molmo_bench_machine *out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: NULL result");
    memset(out, 0, sizeof *out);
    out->weights_huge_share = -1;
    molmo_bench_machine_params p = params ? *params : molmo_bench_machine_default_params();
    molmo_status s = check(&p, err);
    molmo_pool *pool = NULL;
    if (s == MOLMO_OK) s = molmo_pool_create(p.n_threads, &pool, err);
    if (s != MOLMO_OK) return s;
    const double t0 = molmo_now_ms();
    describe(out);
    out->n_threads = molmo_pool_size(pool);
    const molmo_cpu_features *f = molmo_cpu_get();
    if (p.what & MOLMO_BENCH_READ) {
        double bw = 0;
        s = read_bandwidth(pool, p.read_bytes, p.reps, &bw, err);
        out->read_gbs = bw * 1e-9;
        if (s == MOLMO_OK && p.model) {
            out->weights_read_gbs = weights_bandwidth(pool, p.model, p.read_bytes, p.reps) * 1e-9;
            const molmo_mapfile *big = largest_file(p.model);
            if (big) out->weights_huge_share = molmo_mapfile_huge_share(big);
        }
    }
    if (s == MOLMO_OK && (p.what & MOLMO_BENCH_FMA) && strcmp(out->fma_isa, "none"))
        out->fma_gflops = peak(pool, f->avx512f ? LOOP_FMA512 : LOOP_FMA256, p.peak_iters,
                               p.reps) * 1e-9;
    if (s == MOLMO_OK && (p.what & MOLMO_BENCH_VNNI) && strcmp(out->vnni_isa, "none"))
        out->vnni_gops = peak(pool, strcmp(out->vnni_isa, "avx512-vnni") ? LOOP_VNNI256
                                                                          : LOOP_VNNI512,
                              p.peak_iters, p.reps) * 1e-9;
    if (s == MOLMO_OK && (p.what & MOLMO_BENCH_BF16) && strcmp(out->bf16_isa, "none"))
        out->bf16_gflops = peak(pool, LOOP_BF16_512, p.peak_iters, p.reps) * 1e-9;
    out->elapsed_s = (molmo_now_ms() - t0) * 1e-3;
    molmo_pool_free(pool);
    return s;
}

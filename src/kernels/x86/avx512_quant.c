/* avx512_quant.c — y = x · W^T (+ b) for Q8_0 / Q4_0 weights with AVX-512 VNNI (vpdpbusd), and
 * their exact dequantization. The arithmetic is the specification in ref/ref_quant.c, bit for
 * bit: each block of 32 activations is quantized to int8 (molmo_quantize_act_block), each
 * block dot product is an exact int32, and each output takes one fused multiply-add per block
 * in block order. Read that file first.
 *
 * vpdpbusd multiplies unsigned by signed bytes. The weights are made unsigned while packing
 * (Q8_0: q + 128, i.e. q ^ 0x80; Q4_0: the nibble itself, 0..15), so
 *     sum_k (wq_k + c) * xq_k = isum + c * sum_k xq_k,   c = 128 (Q8_0) or 8 (Q4_0),
 * and the accumulator of each block starts at -c * sum_k xq_k, which the activation
 * quantization computes once per row and block: no extra instruction in the inner loop.
 *
 * Activations: for a chunk of rows and of kc blocks, int8 q[32 kc] | f32 dx[kc] | i32 corr[kc]
 * per row, in the workspace, quantized once per chunk and reused for every column of the call.
 * Weights: one block of 16 columns is loaded and transposed in registers into 8 vectors of 16
 * lanes x 4 bytes (lane = column, the 4 bytes = 4 consecutive k), so that one vpdpbusd with 4
 * broadcast bytes of x advances 16 outputs. Two paths, which give the same bits (the choice
 * may depend on anything):
 *   - GEMV, calls of at most 4 rows (decode): the transposed registers feed the dot products
 *     directly, one f32 accumulator per row and 16 columns; W is streamed once, 16 row
 *     streams at a time, with software prefetch MOLMO_GEMV_PF_BYTES ahead in each (x86.h);
 *     one row of x on Q4_0 rows takes gemv_q4_rows_1 instead (contiguous loads per row, the
 *     integer sums transposed, the next rows prefetched into L2);
 *   - GEMM: panels of NR = 48 columns x KP = 16 blocks (27 KiB, L1) are packed (per block,
 *     the 3 groups of 8 transposed vectors, then the 48 column scales as f32) and reused by
 *     every row of the chunk through a register tile of MR = 4 rows x 48 columns: 12 int32
 *     block accumulators (8 vpdpbusd each per block; 12 chains cover vpdpbusd's latency at
 *     two per cycle) and 12 f32 accumulators. 6 x 32 spills a register and 5 x 32 measured
 *     ~6% slower.
 * Weights in an X16 layout (quant.h: Q8_0_X16 / Q4_0_X16, laid out at load with --no-mmap)
 * hold those 8 vectors of each block of 16 columns as they are loaded, and the group's scales
 * side by side: the GEMV reads them as two sequential streams, the GEMM packs them without the
 * transpose (load_cols16_block); columns before the first whole group of a call (direct calls
 * only: the op layer's tiles start on groups) go through the specification.
 * Partial sums are stored in y between K chunks and reloaded exactly, so any tiling and any
 * thread split gives the same bits. CPUs with AVX-512 but no VNNI use the AVX2 kernel (same
 * bits). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/quant.h"
#include "kernels/ref/ref.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/avx512_qpack.h"
#include "kernels/x86/x86.h"

/* The file is compiled with the AVX-512 F/BW/VL/DQ flags of cmake/flags.cmake; VNNI is added
 * for the matmul functions below (up to the matching pop) and runs only after cpuid said the
 * CPU has it. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif

#define NV 3                        /* 16-column groups per panel */
#define NR (16 * NV)                /* columns per panel */
#define MR 4                        /* rows per register tile */
#define GEMV_ROWS 4                 /* calls with at most this many rows take the GEMV path */
#define KP 16 /* blocks per packed panel: 8 measured 5-10% slower (the f32 tile is stored
                 * and reloaded once per panel), 24 no faster, 32 (55 KiB, beyond L1) slower */
#define PB_BYTES (NV * 512 + NR * 4) /* one packed block of a panel */
#define XB_BYTES (32 + 4 + 4)       /* one quantized activation block: q, dx, corr */
#define STACK_BYTES (32 * 1024)     /* buffer without a pool workspace */
/* plan() needs room for one panel and MR rows of its blocks even in the stack buffer */
_Static_assert(KP * PB_BYTES + MR * KP * XB_BYTES <= STACK_BYTES, "stack buffer too small");

static inline int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------- activation quantization */

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc): the layout of the file
 * header, row stride kc * XB_BYTES. corr = -c * sum(q). */
static void quantize_rows(const float *x, size_t ldx, int rows, int kb0, int kc,
                          int c, uint8_t *xc) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx + (size_t)kb0 * MOLMO_QK;
        uint8_t *q = xc + (size_t)r * (size_t)kc * XB_BYTES;
        float *dx = (float *)(q + (size_t)kc * 32);
        int32_t *corr = (int32_t *)(dx + kc);
        for (int b = 0; b < kc; b++) {
            int32_t sum;
            dx[b] = quantize_block32(xr + 32 * b, q + 32 * b, &sum);
            corr[b] = -c * sum;
        }
    }
}

/* ---------------------------------------------------------------------------- weight packing */

/* Panel of columns j0 .. j0+nr-1 (nr <= NR), blocks kb .. kb+nbk-1, of W (type wt, nb blocks
 * a row) into pw. */
static void pack_panel(molmo_dtype wt, const uint8_t *w, size_t ldw, int nb, int j0, int nr,
                       int kb, int nbk, uint8_t *pw) {
    for (int b = 0; b < nbk; b++) {
        uint8_t *pb = pw + (size_t)b * PB_BYTES;
        for (int v = 0; v < NV; v++) {
            __m512i r[8];
            __m512 ds;
            load_cols16_block(wt, w, ldw, nb, j0 + 16 * v, nr - 16 * v, kb + b, r, &ds);
            for (int g = 0; g < 8; g++) _mm512_store_si512((__m512i *)(pb + 512 * v + 64 * g), r[g]);
            _mm512_store_ps((float *)(pb + NV * 512) + 16 * v, ds);
        }
    }
}

/* ------------------------------------------------------------------------------ register tile */

/* y[0:mr, 0:NR] (+)= the nbk blocks of the panel pw against rows of quantized activations:
 * row i's q at q + i*ldq (bytes, block 0 first), its dx at dx + i*ldq bytes, corr likewise. */
INLINE void tile(const int mr, int nbk, const uint8_t *q, const uint8_t *dx, const uint8_t *corr,
                 size_t ldq, const uint8_t *pw, float *y, size_t ldy, int accumulate,
                 const float *bias, const __mmask16 mk[NV]) {
    __m512 f[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++)
            f[i][v] = accumulate ? _mm512_maskz_loadu_ps(mk[v], y + i * ldy + 16 * v) : _mm512_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        const uint8_t *pb = pw + (size_t)b * PB_BYTES;
        __m512i s[MR][NV];
        for (int i = 0; i < mr; i++) {
            const __m512i c = _mm512_set1_epi32(load_i32(corr + i * ldq + 4 * b));
            for (int v = 0; v < NV; v++) s[i][v] = c;
        }
        for (int g = 0; g < 8; g++) {
            __m512i wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = _mm512_load_si512((const __m512i *)(pb + 512 * v + 64 * g));
            for (int i = 0; i < mr; i++) {
                const __m512i xb = _mm512_set1_epi32(load_i32(q + i * ldq + 32 * b + 4 * g));
                for (int v = 0; v < NV; v++) s[i][v] = _mm512_dpbusd_epi32(s[i][v], wv[v], xb);
            }
        }
        __m512 dw[NV];
        for (int v = 0; v < NV; v++) dw[v] = _mm512_load_ps((const float *)(pb + NV * 512) + 16 * v);
        for (int i = 0; i < mr; i++) {
            float dxi;
            memcpy(&dxi, dx + i * ldq + 4 * b, 4);
            const __m512 dxv = _mm512_set1_ps(dxi);
            for (int v = 0; v < NV; v++)
                f[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i][v]), _mm512_mul_ps(dxv, dw[v]), f[i][v]);
        }
    }
    if (bias)
        for (int v = 0; v < NV; v++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);
            for (int i = 0; i < mr; i++) f[i][v] = _mm512_add_ps(f[i][v], bv);
        }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(y + i * ldy + 16 * v, mk[v], f[i][v]);
}

static void tile_any(int mr, int nbk, const uint8_t *q, const uint8_t *dx, const uint8_t *corr,
                     size_t ldq, const uint8_t *pw, float *y, size_t ldy, int accumulate,
                     const float *bias, const __mmask16 mk[NV]) {
    switch (mr) {
    case 1: tile(1, nbk, q, dx, corr, ldq, pw, y, ldy, accumulate, bias, mk); break;
    case 2: tile(2, nbk, q, dx, corr, ldq, pw, y, ldy, accumulate, bias, mk); break;
    case 3: tile(3, nbk, q, dx, corr, ldq, pw, y, ldy, accumulate, bias, mk); break;
    default: tile(MR, nbk, q, dx, corr, ldq, pw, y, ldy, accumulate, bias, mk); break;
    }
}

/* -------------------------------------------------------------------------------------- GEMV */

/* f[0:mr] += one block of 16 columns (r: load16's vectors, dw: their scales) against block b
 * of mr rows of quantized activations (layout of tile()). */
INLINE void gemv_block(const int mr, const __m512i r[8], __m512 dw, int b, const uint8_t *q,
                       const uint8_t *dx, const uint8_t *corr, size_t ldq, __m512 f[]) {
    for (int i = 0; i < mr; i++) {
        /* two chains of 4 vpdpbusd (exact int32: the same sum in any order): one chain of 8
         * made a block's latency the GEMV's bound where its weights are few bytes (Q4_0) */
        __m512i s = _mm512_set1_epi32(load_i32(corr + i * ldq + 4 * b)), s2 = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) {
            s = _mm512_dpbusd_epi32(s, r[g], _mm512_set1_epi32(load_i32(q + i * ldq + 32 * b + 4 * g)));
            s2 = _mm512_dpbusd_epi32(s2, r[g + 4], _mm512_set1_epi32(load_i32(q + i * ldq + 32 * b + 4 * g + 16)));
        }
        s = _mm512_add_epi32(s, s2);
        float dxi;
        memcpy(&dxi, dx + i * ldq + 4 * b, 4);
        f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(_mm512_set1_ps(dxi), dw), f[i]);
    }
}

/* y[0:mr, 0:nc] (+)= blocks [kb0, kb0 + nbk) of 16 columns against mr rows of quantized
 * activations (their blocks from kb0 on; layout of tile()). The columns are rows of W (Q8_0 or
 * Q4_0: w their block kb0, next the next 16 columns' or NULL, nnext of them) or a group of an
 * X16 layout (w the group, nb blocks a row: two streams, scales and values, read in order). */
INLINE void gemv16(const int mr, const int q8, const int x16, int nc, const uint8_t *w, size_t ldw,
                   int nb, int kb0, int nbk, const uint8_t *next, int nnext, const uint8_t *q,
                   const uint8_t *dx, const uint8_t *corr, size_t ldq, float *y, size_t ldy,
                   int accumulate, const float *bias) {
    const __mmask16 m = avx512_tail(nc);
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const int ahead = (int)(MOLMO_GEMV_PF_BYTES / bb);
    __m512 f[GEMV_ROWS];
    for (int i = 0; i < mr; i++) f[i] = accumulate ? _mm512_maskz_loadu_ps(m, y + i * ldy) : _mm512_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        __m512i r[8];
        __m512 dw;
        if (x16) {
            molmo_x86_x16_prefetch(w, nb, q8 ? 8 : 4, kb0 + b);
            load16_x16(q8, w, nb, kb0 + b, r);
            dw = load_scales16_x16(w, kb0 + b);
        } else {
            const uint8_t *wb = w + (size_t)b * bb;
            molmo_x86_gemv_prefetch(w, nc, ldw, b, ahead, nbk, bb, next, nnext);
            if (nc == 16)
                load16(q8, wb, ldw, 16, r);
            else
                load16(q8, wb, ldw, nc, r);
            dw = load_scales16(wb, ldw, nc);
        }
        gemv_block(mr, r, dw, b, q, dx, corr, ldq, f);
    }
    for (int i = 0; i < mr; i++) {
        if (bias) f[i] = _mm512_add_ps(f[i], _mm512_maskz_loadu_ps(m, bias));
        _mm512_mask_storeu_ps(y + i * ldy, m, f[i]);
    }
}

/* ------------------------------------------------ GEMV, one row of x on Q4_0 rows (decode) */

/* vpermt2w's word indices that put the 16 value bytes of 4 consecutive Q4_0 blocks (72 bytes:
 * the first 64 in one vector, the last 8 in a second) one block per 128-bit lane: block j's
 * values are words 9j + 1 .. 9j + 8 (index 32 + i: word i of the second vector). */
static const uint16_t Q4_QUAD_WORDS[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                           13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                           25, 26, 28, 29, 30, 31, 32, 33, 34, 35};

/* The 4 blocks of one weight row at p against 4 blocks of x: lane j of the result holds 4
 * partial sums of block j (the first also init's lane j: the block's correction). xlo / xhi:
 * lane j holds values 0-15 / 16-31 of x's block j. */
INLINE __m512i q4_quad_dot(const uint8_t *p, __m512i idx, __m512i m4, __m512i xlo, __m512i xhi,
                           __m512i init) {
    const __m512i a = _mm512_loadu_si512(p);
    const __m512i b = _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(p + 64)));
    const __m512i v = _mm512_permutex2var_epi16(a, idx, b);
    const __m512i s = _mm512_dpbusd_epi32(init, _mm512_and_si512(v, m4), xlo);
    return _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), xhi);
}

/* Lane j of the result: the totals of lane j of s[0], s[1], s[2], s[3], in that order. */
INLINE __m512i lane_sums4(const __m512i s[4]) {
    const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
    const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

/* gemv16's result for one row of x on 16 full columns of Q4_0 rows, computed another way (the
 * same bits): the transposing loads of the row layout (16 row streams, 16 scales gathered)
 * made this GEMV ~2x slower per byte than on the X16 layout. Here each row's 4 next blocks
 * come in with one load and one vpermt2w, their 4 sums are taken side by side (a lane per
 * block), and the integer sums of 16 rows x 4 blocks are then transposed (24 shuffles) into
 * one vector of 16 columns per block for the same f32 steps, in block order. */
static void gemv_q4_rows_1(int nc, const uint8_t *w, size_t ldw, int nb, int kb0, int nbk,
                           const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,
                           const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,
                           const float *bias) {
    if (nc < 16 || nbk < 4) {
        gemv16(1, 0, 0, nc, w, ldw, nb, kb0, nbk, next, nnext, q, dx, corr, ldq, y, ldy, accumulate, bias);
        return;
    }
    const size_t bb = MOLMO_Q4_0_BYTES;
    const int nq = nbk / 4;
    const __m512i idx = _mm512_loadu_si512(Q4_QUAD_WORDS), m4 = _mm512_set1_epi8(0x0f);
    const __m512i lo = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), hi = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 f = accumulate ? _mm512_loadu_ps(y) : _mm512_setzero_ps();
    molmo_x86_group_pf pf; /* the next group's rows into L2 over this group's loads (x86.h) */
    molmo_x86_group_pf_init(&pf, w, ldw, bb, 16, nbk, 4, next, nnext);
    for (int qi = 0; qi < nq; qi++) {
        const int b0 = 4 * qi;
        molmo_x86_group_pf_step(&pf, b0);
        /* x's 4 blocks: values 0-15 of block j in lane j of xlo, 16-31 in xhi; the
         * corrections in dword 0 of each lane */
        const __m512i xa = _mm512_loadu_si512(q + 32 * b0), xb = _mm512_loadu_si512(q + 32 * b0 + 64);
        const __m512i xlo = _mm512_permutex2var_epi64(xa, lo, xb), xhi = _mm512_permutex2var_epi64(xa, hi, xb);
        const __m512i init = _mm512_maskz_permutexvar_epi32(
            0x1111, spread, _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(corr + 4 * b0))));
        __m512i u[4]; /* lane j of u[g]: rows 4g .. 4g+3, block b0 + j */
        for (int g = 0; g < 4; g++) {
            __m512i s[4];
            for (int r = 0; r < 4; r++) {
                molmo_x86_group_pf_row(&pf);
                s[r] = q4_quad_dot(w + (size_t)(4 * g + r) * ldw + (size_t)b0 * bb, idx, m4, xlo, xhi, init);
            }
            u[g] = lane_sums4(s);
        }
        const __m512i p0 = _mm512_shuffle_i32x4(u[0], u[1], 0x44), p1 = _mm512_shuffle_i32x4(u[0], u[1], 0xee);
        const __m512i p2 = _mm512_shuffle_i32x4(u[2], u[3], 0x44), p3 = _mm512_shuffle_i32x4(u[2], u[3], 0xee);
        const __m512i v[4] = {_mm512_shuffle_i32x4(p0, p2, 0x88), _mm512_shuffle_i32x4(p0, p2, 0xdd),
                              _mm512_shuffle_i32x4(p1, p3, 0x88), _mm512_shuffle_i32x4(p1, p3, 0xdd)};
        for (int j = 0; j < 4; j++) {
            const __m512 dw = load_scales16(w + (size_t)(b0 + j) * bb, ldw, 16);
            float dxi;
            memcpy(&dxi, dx + 4 * (b0 + j), 4);
            f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v[j]), _mm512_mul_ps(_mm512_set1_ps(dxi), dw), f);
        }
    }
    for (int b = 4 * nq; b < nbk; b++) { /* the last 1-3 blocks as gemv16 takes them */
        __m512i r[8];
        molmo_x86_group_pf_block(&pf, b);
        load16(0, w + (size_t)b * bb, ldw, 16, r);
        gemv_block(1, r, load_scales16(w + (size_t)b * bb, ldw, 16), b, q, dx, corr, ldq, &f);
    }
    if (bias) f = _mm512_add_ps(f, _mm512_loadu_ps(bias));
    _mm512_storeu_ps(y, f);
}

typedef void (*gemv_fn)(int nc, const uint8_t *w, size_t ldw, int nb, int kb0, int nbk,
                        const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,
                        const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,
                        const float *bias);
#define GEMV_FN(name, mr, q8, x16)                                                                \
    static void name(int nc, const uint8_t *w, size_t ldw, int nb, int kb0, int nbk,              \
                     const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,         \
                     const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,       \
                     const float *bias) {                                                         \
        gemv16(mr, q8, x16, nc, w, ldw, nb, kb0, nbk, next, nnext, q, dx, corr, ldq, y, ldy,      \
               accumulate, bias);                                                                 \
    }
GEMV_FN(gemv_q4_2, 2, 0, 0)
GEMV_FN(gemv_q4_3, 3, 0, 0)
GEMV_FN(gemv_q4_4, 4, 0, 0)
GEMV_FN(gemv_q8_1, 1, 1, 0)
GEMV_FN(gemv_q8_2, 2, 1, 0)
GEMV_FN(gemv_q8_3, 3, 1, 0)
GEMV_FN(gemv_q8_4, 4, 1, 0)
GEMV_FN(gemv_q4x16_1, 1, 0, 1)
GEMV_FN(gemv_q4x16_2, 2, 0, 1)
GEMV_FN(gemv_q4x16_3, 3, 0, 1)
GEMV_FN(gemv_q4x16_4, 4, 0, 1)
GEMV_FN(gemv_q8x16_1, 1, 1, 1)
GEMV_FN(gemv_q8x16_2, 2, 1, 1)
GEMV_FN(gemv_q8x16_3, 3, 1, 1)
GEMV_FN(gemv_q8x16_4, 4, 1, 1)

/* Rows [m0, m1) (at most GEMV_ROWS) against columns [n0, n1), in K chunks that fit buf. */
static void gemv(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, uint8_t *buf,
                 size_t bytes) {
    static const gemv_fn fns[2][2][GEMV_ROWS] = {
        {{gemv_q4_rows_1, gemv_q4_2, gemv_q4_3, gemv_q4_4}, {gemv_q8_1, gemv_q8_2, gemv_q8_3, gemv_q8_4}},
        {{gemv_q4x16_1, gemv_q4x16_2, gemv_q4x16_3, gemv_q4x16_4},
         {gemv_q8x16_1, gemv_q8x16_2, gemv_q8x16_3, gemv_q8x16_4}}};
    const int q8 = molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0, x16 = molmo_dtype_is_x16(a->wt);
    const int nb = a->K / MOLMO_QK, rows = m1 - m0;
    const gemv_fn fn = fns[x16][q8][rows - 1];
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const size_t fit = bytes / ((size_t)rows * XB_BYTES);
    const int kc = fit < (size_t)nb ? (int)fit : nb;
    for (int kb0 = 0; kb0 < nb; kb0 += kc) {
        const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
        const size_t ldq = (size_t)kcn * XB_BYTES;
        quantize_rows(a->x + (size_t)m0 * ldx, ldx, rows, kb0, kcn, q8 ? 128 : 8, buf);
        const int last = kb0 + kcn == nb;
        for (int j0 = n0; j0 < n1; j0 += 16) {
            const int nc = n1 - j0 < 16 ? n1 - j0 : 16;
            const uint8_t *w = x16 ? molmo_x16_group(a->w, a->wt, nb, j0)
                                   : (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)kb0 * bb;
            const int nnext = n1 - j0 - 16 < 16 ? n1 - j0 - 16 : 16;
            fn(nc, w, ldw, nb, kb0, kcn, nnext > 0 ? w + 16 * ldw : NULL, nnext, buf,
               buf + 32 * (size_t)kcn, buf + 36 * (size_t)kcn, ldq,
               a->y + (size_t)m0 * ldy + (size_t)j0, ldy, kb0 > 0, last && a->bias ? a->bias + j0 : NULL);
        }
    }
}

/* --------------------------------------------------------------- x quantized once (rows) */

/* MOLMO_XQ_ROWS_VNNI: quantize_rows over all of K, row r at r * nb * XB_BYTES. */
size_t molmo_k_matmul_q_rows_xq_bytes(const molmo_matmul_args *a) {
    return (size_t)a->M * (size_t)(a->K / MOLMO_QK) * XB_BYTES;
}

void molmo_k_matmul_q_rows_xq_avx512(const molmo_matmul_args *a, int g0, int g1, void *xq) {
    const int nb = a->K / MOLMO_QK, r0 = g0 * MOLMO_XQ_ROWS;
    const int r1 = g1 * MOLMO_XQ_ROWS < a->M ? g1 * MOLMO_XQ_ROWS : a->M;
    if (r0 >= r1) return;
    quantize_rows(a->x + (size_t)r0 * (size_t)a->ldx, (size_t)a->ldx, r1 - r0, 0, nb,
                  molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0 ? 128 : 8,
                  (uint8_t *)xq + (size_t)r0 * (size_t)nb * XB_BYTES);
}

/* ------------------------------------------------------------------------------------ driver */

/* Chunk sizes for `rows` rows in `bytes` of buffer: all K at once if it fits (decode), else as
 * many blocks as fit for all rows (at least one panel), else one panel's blocks for as many
 * rows as fit (a multiple of MR). */
static void plan(size_t bytes, int rows, int nb, int *kc, int *mc) {
    const size_t avail = bytes - (size_t)KP * PB_BYTES;
    const size_t per_block = (size_t)rows * XB_BYTES;
    *mc = rows;
    if (per_block * (size_t)nb <= avail) {
        *kc = nb;
    } else if (per_block * KP <= avail) {
        *kc = (int)(avail / per_block) / KP * KP; /* whole panels: no short tail panel */
    } else {
        *kc = KP;
        *mc = (int)(avail / ((size_t)KP * XB_BYTES)) / MR * MR;
    }
}

static void qmatmul(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                    size_t ws_floats) {
    _Alignas(64) uint8_t stack[STACK_BYTES];
    size_t bytes;
    uint8_t *buf = molmo_x86_work_buffer(ws, ws_floats, stack, sizeof stack, &bytes);
    if (molmo_dtype_is_x16(a->wt) && n0 % MOLMO_X16_ROWS) {
        /* columns up to the next group: the specification, which reads any column (the op
         * layer's tiles start on groups, so only direct calls come here) */
        const int h = (n0 / MOLMO_X16_ROWS + 1) * MOLMO_X16_ROWS;
        molmo_k_matmul_qdot_ref(a, m0, m1, n0, h < n1 ? h : n1);
        if (h >= n1) return;
        n0 = h;
    }
    if (m1 - m0 <= GEMV_ROWS) {
        gemv(a, m0, m1, n0, n1, buf, bytes);
        return;
    }
    if (molmo_kernels_amx() && molmo_k_matmul_q_amx(a, m0, m1, n0, n1, ws, ws_floats)) return;
    const int q8 = molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0, nb = a->K / MOLMO_QK;
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    /* x quantized once for all threads (kernels.h): read from there, in the chunks this
     * thread would have quantized itself */
    const uint8_t *xq = a->xq && a->xq_kind == MOLMO_XQ_ROWS_VNNI ? (const uint8_t *)a->xq : NULL;
    uint8_t *pw = buf, *xc = buf + (size_t)KP * PB_BYTES;
    int kc, mc;
    plan(bytes, m1 - m0, nb, &kc, &mc);
    for (int mb0 = m0; mb0 < m1; mb0 += mc) {
        const int mb1 = m1 - mb0 < mc ? m1 : mb0 + mc;
        for (int kb0 = 0; kb0 < nb; kb0 += kc) {
            const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
            /* the chunk's activation blocks: q, dx and corr of its first row, rows ldq apart */
            const uint8_t *cq, *cdx, *ccorr;
            size_t ldq;
            if (xq) {
                ldq = molmo_x86_xq_rows_chunk(xq, mb0, nb, kb0, &cq, &cdx, &ccorr);
            } else { /* the same layout, over the chunk's kcn blocks */
                quantize_rows(a->x + (size_t)mb0 * ldx, ldx, mb1 - mb0, kb0, kcn, q8 ? 128 : 8, xc);
                ldq = molmo_x86_xq_rows_chunk(xc, 0, kcn, 0, &cq, &cdx, &ccorr);
            }
            for (int j0 = n0; j0 < n1; j0 += NR) {
                const int nr = n1 - j0 < NR ? n1 - j0 : NR;
                __mmask16 mk[NV];
                for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
                /* the next column panel's rows into L2 over the register tiles of this one */
                const int steps = (kcn + KP - 1) / KP * ((mb1 - mb0 + MR - 1) / MR);
                molmo_x86_l2_ahead f;
                const int quota = molmo_x86_l2_next_panel(&f, a->w, ldw, j0, NR, n1, kcn == nb, steps);
                for (int pb0 = 0; pb0 < kcn; pb0 += KP) {
                    const int np = kcn - pb0 < KP ? kcn - pb0 : KP;
                    pack_panel(a->wt, a->w, ldw, nb, j0, nr, kb0 + pb0, np, pw);
                    const int first = kb0 + pb0 == 0, last = kb0 + pb0 + np == nb;
                    const float *bias = last && a->bias ? a->bias + j0 : NULL;
                    for (int i0 = mb0; i0 < mb1; i0 += MR) {
                        molmo_x86_l2_ahead_lines(&f, quota);
                        const size_t ro = (size_t)(i0 - mb0) * ldq;
                        tile_any(mb1 - i0 < MR ? mb1 - i0 : MR, np, cq + ro + 32 * pb0,
                                 cdx + ro + 4 * pb0, ccorr + ro + 4 * pb0, ldq, pw,
                                 a->y + (size_t)i0 * ldy + (size_t)j0, ldy, !first, bias, mk);
                    }
                }
            }
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

/* ------------------------------------------------------------------ entry points (no VNNI) */

void molmo_k_matmul_q_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats) {
    if (!molmo_cpu_get()->avx512vnni) {
        molmo_k_matmul_q_avx2(a, m0, m1, n0, n1, ws, ws_floats);
        return;
    }
    qmatmul(a, m0, m1, n0, n1, ws, ws_floats);
}

void molmo_k_dequant_avx512(float *out, const void *w, molmo_dtype wt, size_t n) {
    const uint8_t *p = w;
    const __m512i m4 = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
    for (size_t b = 0; b < n / MOLMO_QK; b++, out += MOLMO_QK) {
        uint16_t dh;
        __m512i q0, q1;
        if (wt == MOLMO_DTYPE_Q8_0) {
            const uint8_t *blk = p + b * MOLMO_Q8_0_BYTES;
            memcpy(&dh, blk, 2);
            q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
            q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)));
        } else {
            const uint8_t *blk = p + b * MOLMO_Q4_0_BYTES;
            memcpy(&dh, blk, 2);
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
            q0 = _mm512_sub_epi32(_mm512_and_si512(v, m4), eight);
            q1 = _mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight);
        }
        const __m512 d = _mm512_set1_ps(molmo_f16_to_f32(dh));
        _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d));
    }
}


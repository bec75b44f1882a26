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
 *     directly, one f32 accumulator per row and 16 columns; W is streamed once. No software
 *     prefetch: the hardware prefetchers follow the 16 row streams, and prefetching the next
 *     16 rows into L2 measured 15-25% slower (1 and 2 threads, SPR, weights in DRAM);
 *   - GEMM: panels of NR = 48 columns x KP = 16 blocks (27 KiB, L1) are packed (per block,
 *     the 3 groups of 8 transposed vectors, then the 48 column scales as f32) and reused by
 *     every row of the chunk through a register tile of MR = 4 rows x 48 columns: 12 int32
 *     block accumulators (8 vpdpbusd each per block; 12 chains cover vpdpbusd's latency at
 *     two per cycle) and 12 f32 accumulators. 6 x 32 spills a register and 5 x 32 measured
 *     ~6% slower.
 * Partial sums are stored in y between K chunks and reloaded exactly, so any tiling and any
 * thread split gives the same bits. CPUs with AVX-512 but no VNNI use the AVX2 kernel (same
 * bits). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/quant.h"
#include "kernels/x86/avx512_math.h"
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

#define INLINE static inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------- activation quantization */

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc): the layout of the file header, row
 * stride kc * XB_BYTES. corr = -c * sum(q). Same operations as molmo_quantize_act_block. */
static void quantize_rows(const float *x, size_t ldx, int rows, int kb0, int kc, int c,
                          uint8_t *xc) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx + (size_t)kb0 * MOLMO_QK;
        uint8_t *q = xc + (size_t)r * (size_t)kc * XB_BYTES;
        float *dx = (float *)(q + (size_t)kc * 32);
        int32_t *corr = (int32_t *)(dx + kc);
        for (int b = 0; b < kc; b++) {
            const __m512 v0 = _mm512_loadu_ps(xr + 32 * b), v1 = _mm512_loadu_ps(xr + 32 * b + 16);
            const __m512i a = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(v0), absmask),
                                               _mm512_and_si512(_mm512_castps_si512(v1), absmask));
            const uint32_t amax_bits = (uint32_t)_mm512_reduce_max_epu32(a);
            float amax;
            memcpy(&amax, &amax_bits, 4);
            const float d = amax / 127.0f;
            const float id = d > 0.0f ? 1.0f / d : 0.0f;
            int32_t sum = 0;
            if (amax_bits < 0x7f800000u && id > 0.0f && id <= 3.40282347e38f) {
                const __m512 iv = _mm512_set1_ps(id);
                const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, iv),
                                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, iv),
                                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(q0));
                _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
                sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            } else {
                memset(q + 32 * b, 0, 32);
            }
            dx[b] = d;
            corr[b] = -c * sum;
        }
    }
}

/* ---------------------------------------------------------------------------- weight packing */


/* The fp16 scales of nc (<= 16) blocks at w, w + ldw, ... as f32 (lanes >= nc: 0). */
INLINE __m512 load_scales16(const uint8_t *w, size_t ldw, int nc) {
    const __mmask16 m = avx512_tail(nc);
    if (ldw <= (size_t)INT32_MAX / 16) {
        const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32((int)ldw));
        /* 4 bytes at each address: the scale and the first 2 bytes of its block's values */
        const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, w, 1);
        return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    }
    uint16_t h[16] = {0};
    for (int c = 0; c < nc; c++) memcpy(&h[c], w + (size_t)c * ldw, 2);
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

/* One Q8_0 block of nc (<= 16, may be <= 0) columns as 8 transposed vectors of unsigned bytes
 * (q ^ 0x80 = q + 128); w points at the block of the first column, ldw is the row stride in
 * bytes. Columns >= nc are zero (never read). */
INLINE void load16_q8_0(const uint8_t *w, size_t ldw, int nc, __m512i r[8]) {
    for (int p = 0; p < 8; p++) {
        const __m256i lo = p < nc ? _mm256_loadu_si256((const __m256i *)(w + (size_t)p * ldw + 2))
                                  : _mm256_setzero_si256();
        const __m256i hi = p + 8 < nc ? _mm256_loadu_si256((const __m256i *)(w + (size_t)(p + 8) * ldw + 2))
                                      : _mm256_setzero_si256();
        r[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    avx512_transpose_8x16_epi32(r);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int g = 0; g < 8; g++) r[g] = _mm512_xor_si512(r[g], flip);
}

INLINE __m128i load_qs_q4_0(const uint8_t *w, size_t ldw, int c, int nc) {
    return c < nc ? _mm_loadu_si128((const __m128i *)(w + (size_t)c * ldw + 2)) : _mm_setzero_si128();
}

/* As load16_q8_0 for Q4_0 (the nibbles 0..15 themselves): v[p] holds the 16 packed bytes of
 * columns p, p+4, p+8, p+12 (one per 128-bit lane); a 4x4 dword transpose inside each lane
 * puts the columns in lane order, then low nibbles give values 0-15 (vectors 0-3) and high
 * nibbles values 16-31 (vectors 4-7); splitting after the transpose halves the shuffles. */
INLINE void load16_q4_0(const uint8_t *w, size_t ldw, int nc, __m512i r[8]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i v[4];
    for (int p = 0; p < 4; p++) {
        v[p] = _mm512_castsi128_si512(load_qs_q4_0(w, ldw, p, nc));
        v[p] = _mm512_inserti32x4(v[p], load_qs_q4_0(w, ldw, p + 4, nc), 1);
        v[p] = _mm512_inserti32x4(v[p], load_qs_q4_0(w, ldw, p + 8, nc), 2);
        v[p] = _mm512_inserti32x4(v[p], load_qs_q4_0(w, ldw, p + 12, nc), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
    const __m512i d[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                          _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_and_si512(d[k], m4);
        r[4 + k] = _mm512_and_si512(_mm512_srli_epi16(d[k], 4), m4);
    }
}

INLINE void load16(int q8, const uint8_t *w, size_t ldw, int nc, __m512i r[8]) {
    if (q8)
        load16_q8_0(w, ldw, nc, r);
    else
        load16_q4_0(w, ldw, nc, r);
}

/* Panel of columns j0 .. j0+nr-1 (nr <= NR), blocks kb .. kb+nbk-1, into pw. */
static void pack_panel(int q8, const uint8_t *w, size_t ldw, int j0, int nr, int kb, int nbk,
                       uint8_t *pw) {
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    for (int b = 0; b < nbk; b++) {
        uint8_t *pb = pw + (size_t)b * PB_BYTES;
        for (int v = 0; v < NV; v++) {
            const uint8_t *src = w + (size_t)(j0 + 16 * v) * ldw + (size_t)(kb + b) * bb;
            float *ds = (float *)(pb + NV * 512) + 16 * v;
            const int nc = nr - 16 * v;
            __m512i r[8];
            if (nc <= 0) src = w; /* not read */
            if (nc == 16) /* the common case, without the per-column tests */
                load16(q8, src, ldw, 16, r);
            else
                load16(q8, src, ldw, nc, r);
            for (int g = 0; g < 8; g++) _mm512_store_si512((__m512i *)(pb + 512 * v + 64 * g), r[g]);
            _mm512_store_ps(ds, nc > 0 ? load_scales16(src, ldw, nc) : _mm512_setzero_ps());
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

/* y[0:mr, 0:16] (+)= blocks [0, nbk) of 16 columns (w: their first block, nc valid columns)
 * against mr rows of quantized activations (layout of tile()). */
INLINE void gemv16(const int mr, const int q8, int nc, const uint8_t *w, size_t ldw, int nbk,
                   const uint8_t *q, const uint8_t *dx, const uint8_t *corr, size_t ldq, float *y,
                   size_t ldy, int accumulate, const float *bias) {
    const __mmask16 m = avx512_tail(nc);
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    __m512 f[GEMV_ROWS];
    for (int i = 0; i < mr; i++) f[i] = accumulate ? _mm512_maskz_loadu_ps(m, y + i * ldy) : _mm512_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        const uint8_t *wb = w + (size_t)b * bb;
        __m512i r[8];
        if (nc == 16)
            load16(q8, wb, ldw, 16, r);
        else
            load16(q8, wb, ldw, nc, r);
        const __m512 dw = load_scales16(wb, ldw, nc);
        for (int i = 0; i < mr; i++) {
            __m512i s = _mm512_set1_epi32(load_i32(corr + i * ldq + 4 * b));
            for (int g = 0; g < 8; g++)
                s = _mm512_dpbusd_epi32(s, r[g], _mm512_set1_epi32(load_i32(q + i * ldq + 32 * b + 4 * g)));
            float dxi;
            memcpy(&dxi, dx + i * ldq + 4 * b, 4);
            f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(_mm512_set1_ps(dxi), dw), f[i]);
        }
    }
    for (int i = 0; i < mr; i++) {
        if (bias) f[i] = _mm512_add_ps(f[i], _mm512_maskz_loadu_ps(m, bias));
        _mm512_mask_storeu_ps(y + i * ldy, m, f[i]);
    }
}

typedef void (*gemv_fn)(int nc, const uint8_t *w, size_t ldw, int nbk, const uint8_t *q,
                        const uint8_t *dx, const uint8_t *corr, size_t ldq, float *y, size_t ldy,
                        int accumulate, const float *bias);
#define GEMV_FN(name, mr, q8)                                                                     \
    static void name(int nc, const uint8_t *w, size_t ldw, int nbk, const uint8_t *q,             \
                     const uint8_t *dx, const uint8_t *corr, size_t ldq, float *y, size_t ldy,    \
                     int accumulate, const float *bias) {                                         \
        gemv16(mr, q8, nc, w, ldw, nbk, q, dx, corr, ldq, y, ldy, accumulate, bias);               \
    }
GEMV_FN(gemv_q4_1, 1, 0)
GEMV_FN(gemv_q4_2, 2, 0)
GEMV_FN(gemv_q4_3, 3, 0)
GEMV_FN(gemv_q4_4, 4, 0)
GEMV_FN(gemv_q8_1, 1, 1)
GEMV_FN(gemv_q8_2, 2, 1)
GEMV_FN(gemv_q8_3, 3, 1)
GEMV_FN(gemv_q8_4, 4, 1)

/* Rows [m0, m1) (at most GEMV_ROWS) against columns [n0, n1), in K chunks that fit buf. */
static void gemv(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, uint8_t *buf,
                 size_t bytes) {
    static const gemv_fn fns[2][GEMV_ROWS] = {{gemv_q4_1, gemv_q4_2, gemv_q4_3, gemv_q4_4},
                                              {gemv_q8_1, gemv_q8_2, gemv_q8_3, gemv_q8_4}};
    const int q8 = a->wt == MOLMO_DTYPE_Q8_0, nb = a->K / MOLMO_QK, rows = m1 - m0;
    const gemv_fn fn = fns[q8][rows - 1];
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
            const uint8_t *w = (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)kb0 * bb;
            fn(nc, w, ldw, kcn, buf, buf + 32 * (size_t)kcn, buf + 36 * (size_t)kcn, ldq,
               a->y + (size_t)m0 * ldy + (size_t)j0, ldy, kb0 > 0, last && a->bias ? a->bias + j0 : NULL);
        }
    }
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
    if (m1 - m0 <= GEMV_ROWS) {
        gemv(a, m0, m1, n0, n1, buf, bytes);
        return;
    }
    const int q8 = a->wt == MOLMO_DTYPE_Q8_0, nb = a->K / MOLMO_QK;
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    uint8_t *pw = buf, *xc = buf + (size_t)KP * PB_BYTES;
    int kc, mc;
    plan(bytes, m1 - m0, nb, &kc, &mc);
    for (int mb0 = m0; mb0 < m1; mb0 += mc) {
        const int mb1 = m1 - mb0 < mc ? m1 : mb0 + mc;
        for (int kb0 = 0; kb0 < nb; kb0 += kc) {
            const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
            const size_t ldq = (size_t)kcn * XB_BYTES;
            quantize_rows(a->x + (size_t)mb0 * ldx, ldx, mb1 - mb0, kb0, kcn, q8 ? 128 : 8, xc);
            for (int j0 = n0; j0 < n1; j0 += NR) {
                const int nr = n1 - j0 < NR ? n1 - j0 : NR;
                __mmask16 mk[NV];
                for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
                for (int pb0 = 0; pb0 < kcn; pb0 += KP) {
                    const int np = kcn - pb0 < KP ? kcn - pb0 : KP;
                    pack_panel(q8, a->w, ldw, j0, nr, kb0 + pb0, np, pw);
                    const int first = kb0 + pb0 == 0, last = kb0 + pb0 + np == nb;
                    const float *bias = last && a->bias ? a->bias + j0 : NULL;
                    for (int i0 = mb0; i0 < mb1; i0 += MR) {
                        const uint8_t *q = xc + (size_t)(i0 - mb0) * ldq;
                        tile_any(mb1 - i0 < MR ? mb1 - i0 : MR, np, q + 32 * pb0,
                                 q + 32 * (size_t)kcn + 4 * pb0, q + 36 * (size_t)kcn + 4 * pb0,
                                 ldq, pw, a->y + (size_t)i0 * ldy + (size_t)j0, ldy, !first, bias, mk);
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


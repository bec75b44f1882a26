/* avx512_bf16dot.c — y = x · W^T (+ b) for BF16 weights and an x that holds bf16 values
 * (x_bf16: the model's bf16 activations, molmo_op_round_bf16), with AVX512-BF16 VDPBF16PS, for
 * the GEMM shapes (more than 4 rows) on CPUs without AMX-BF16 (AMD Zen 4/5, where VDPBF16PS
 * does twice the multiply-adds of an f32 FMA per instruction).
 *
 * VDPBF16PS adds two products of bf16 pairs into each f32 lane, one after the other with
 * rounding to nearest even (denormal inputs and results flushed to zero); a product of two
 * bf16 values is exact in f32. So every output is an f32 chain over k in order, like the FMA
 * kernel's (avx512_gemm.c) but rounded after each pair of products' second: the f32 GEMM of
 * the same values to f32 accuracy, not the FMA kernel's bits (test_kernels holds it to the
 * same tolerance against the reference).
 *
 * Blocking as in avx512_gemm.c, on pairs of k: per K block of kc steps (kc even), x's rows of
 * the call are converted once into bf16 pairs (the upper halves of the f32 values: exact,
 * since they are bf16 values), then per panel of 64 columns W is packed as [kc/2][64] dwords
 * (one dword = the column's two bf16 of a k pair: a 16 x 16 dword transpose of its rows) and a
 * 6 x 64 register tile sweeps the rows: per k pair, six broadcast dwords of x and four panel
 * vectors feed 24 VDPBF16PS. Partial sums go through y between K blocks (an exact round trip),
 * so the blocking and the thread split never change a bit. Without the workspace for a K block
 * of at least 32 steps the caller falls back to the FMA kernel (returns 0). */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512bf16"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512bf16")
#endif

#define MR 6         /* rows of the register tile */
#define NV 4         /* zmm vectors per row of the tile */
#define NR (16 * NV) /* columns of a panel */
#define KC_MAX 1024  /* k per K block */
#define KC_MIN 32

#define INLINE static inline __attribute__((always_inline))

/* Rows [m0, m1) of x, k in [k0, k0 + kc) (kc even; zero beyond K), as bf16 pairs: row r's
 * pair p at xb[r * (kc / 2) + p], low half k0 + 2p, high half k0 + 2p + 1. */
static void convert_rows(const float *x, size_t ldx, int m0, int m1, int K, int k0, int kc,
                         uint32_t *xb) {
    const size_t np = (size_t)kc / 2;
    for (int r = m0; r < m1; r++) {
        const float *xr = x + (size_t)r * ldx;
        uint32_t *o = xb + (size_t)(r - m0) * np;
        for (int k = 0; k < kc; k += 32) {
            const int n = K - (k0 + k);
            const __m512 v0 = _mm512_maskz_loadu_ps(avx512_tail(n), xr + k0 + k);
            const __m512 v1 = _mm512_maskz_loadu_ps(avx512_tail(n - 16), xr + k0 + k + 16);
            /* exact: the values are bf16 already; element 2p, 2p + 1 -> dword p */
            const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            _mm512_mask_storeu_epi32(o + k / 2, avx512_tail((kc - k) / 2), h);
        }
    }
}

/* W columns [j0, j0 + nr) (zero beyond), k in [k0, k0 + kc) (zero beyond K), as [kc/2][NR]
 * dwords: per 16 columns and 32 k, a 16 x 16 dword transpose of the rows. */
static void pack_panel(const uint16_t *w, size_t ldw, int K, int j0, int nr, int k0, int kc,
                       uint32_t *pw) {
    for (int g = 0; g < NV; g++)
        for (int k = 0; k < kc; k += 32) {
            const int n = K - (k0 + k) < 32 ? K - (k0 + k) : 32;
            const __mmask32 mk = n >= 32 ? 0xffffffffu : n > 0 ? (1u << n) - 1u : 0;
            __m512 r[16];
            for (int c = 0; c < 16; c++) {
                const int j = 16 * g + c;
                r[c] = j < nr ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(
                                    mk, w + (size_t)(j0 + j) * ldw + (size_t)(k0 + k)))
                              : _mm512_setzero_ps();
            }
            avx512_transpose16_ps(r);
            const int pairs = (kc - k) / 2 < 16 ? (kc - k) / 2 : 16;
            for (int p = 0; p < pairs; p++)
                _mm512_store_ps((float *)(pw + (size_t)(k / 2 + p) * NR + 16 * g), r[p]);
        }
}

/* y[0:mr, 0:NR] (+)= x pairs [0:mr, 0:np] · panel (+ bias). */
INLINE void tile(const int mr, int np, const uint32_t *xb, size_t ldxb, const uint32_t *pw,
                 float *y, size_t ldy, int accumulate, const float *bias, const __mmask16 mk[NV]) {
    __m512 c[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++)
            c[i][v] = accumulate ? _mm512_maskz_loadu_ps(mk[v], y + (size_t)i * ldy + 16 * v)
                                 : _mm512_setzero_ps();
    for (int p = 0; p < np; p++) {
        __m512bh b[NV];
        for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_load_si512(pw + (size_t)p * NR + 16 * v);
        for (int i = 0; i < mr; i++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)xb[(size_t)i * ldxb + (size_t)p]);
            for (int v = 0; v < NV; v++) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, b[v]);
        }
    }
    if (bias)
        for (int v = 0; v < NV; v++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);
            for (int i = 0; i < mr; i++) c[i][v] = _mm512_add_ps(c[i][v], bv);
        }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(y + (size_t)i * ldy + 16 * v, mk[v], c[i][v]);
}

static void tile_any(int mr, int np, const uint32_t *xb, size_t ldxb, const uint32_t *pw, float *y,
                     size_t ldy, int accumulate, const float *bias, const __mmask16 mk[NV]) {
    switch (mr) {
    case 1: tile(1, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    case 2: tile(2, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    case 3: tile(3, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    case 4: tile(4, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    case 5: tile(5, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    default: tile(MR, np, xb, ldxb, pw, y, ldy, accumulate, bias, mk); break;
    }
}

int molmo_k_matmul_bf16_dot(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                            float *ws, size_t ws_floats) {
    const int K = a->K, rows = m1 - m0;
    if (!ws || rows <= 0) return 0;
    /* the panel and the converted rows of one K block: (NR + rows) * kc * 2 bytes */
    const size_t per_k = ((size_t)NR + (size_t)rows) * 2;
    size_t kc_fit = ws_floats * sizeof(float) / per_k;
    kc_fit = kc_fit < KC_MAX ? kc_fit & ~(size_t)31 : KC_MAX;
    if (kc_fit < KC_MIN) return 0;
    const int kblk = (int)kc_fit;
    uint32_t *pw = (uint32_t *)ws, *xb = pw + (size_t)kblk / 2 * NR;
    for (int k0 = 0; k0 < K; k0 += kblk) {
        const int kc = K - k0 < kblk ? (K - k0 + 1) & ~1 : kblk, np = kc / 2;
        const int last = k0 + kc >= K;
        convert_rows(a->x, (size_t)a->ldx, m0, m1, K, k0, kc, xb);
        for (int j0 = n0; j0 < n1; j0 += NR) {
            const int nr = n1 - j0 < NR ? n1 - j0 : NR;
            __mmask16 mk[NV];
            for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
            pack_panel((const uint16_t *)a->w, (size_t)K, K, j0, nr, k0, kc, pw);
            const float *b = last && a->bias ? a->bias + j0 : NULL;
            for (int i0 = m0; i0 < m1; i0 += MR) {
                const int mr = m1 - i0 < MR ? m1 - i0 : MR;
                tile_any(mr, np, xb + (size_t)(i0 - m0) * (size_t)np, (size_t)np, pw,
                         a->y + (size_t)i0 * (size_t)a->ldy + (size_t)j0, (size_t)a->ldy, k0 > 0,
                         b, mk);
            }
        }
    }
    return 1;
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

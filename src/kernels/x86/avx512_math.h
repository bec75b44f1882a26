/* avx512_math.h — inline helpers shared by the AVX-512 kernel files (include only from files
 * compiled with the AVX-512 flags): tail masks, weight loads of any dtype, exp, and the
 * exp-and-sum step of softmax. */
#ifndef MOLMO_KERNELS_AVX512_MATH_H
#define MOLMO_KERNELS_AVX512_MATH_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/x86/x86.h"
#include "molmo.h"

/* Mask of the first min(n, 16) lanes (n <= 0: none). */
static inline __mmask16 avx512_tail(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
static inline __mmask16 avx512_tail_z(size_t n) { return avx512_tail(n >= 16 ? 16 : (int)n); }

static inline __m256 avx512_hi256(__m512 v) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* 16 weights starting at element idx as f32; lanes outside m read 0 and touch no memory.
 * BF16 -> f32 is a 16-bit shift and F16 -> f32 (vcvtph2ps) is exact: no rounding here. */
static inline __m512 avx512_load_w16(const void *w, molmo_dtype wt, size_t idx, __mmask16 m) {
    if (wt == MOLMO_DTYPE_F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + idx));
    if (wt == MOLMO_DTYPE_BF16) {
        const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + idx);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(m, (const float *)w + idx);
}

/* exp(x) for 16 lanes: Cody-Waite reduction x = n ln2 + r (ln2 split in a 9-bit head and a
 * tail, so n*head is exact), the Cephes expf polynomial on |r| <= ln2/2 (about 1 ulp), and
 * vscalefps for 2^n, which rounds once and gives inf at the top. Inputs are clamped to
 * [-87.33, 88.8] (exp is inf beyond the top); below -87.33, where exp is under 1.19e-38 (the
 * smallest normal float is 1.18e-38), the result is 0: an FP operation whose result is a
 * denormal takes a microcode assist of ~100 cycles, and a softmax over scores spread wider
 * than 87 ran 13x slower (4.7 against 0.36 ns an element). Where these values go (1 + e in
 * sigmoid, a softmax whose sum is at least 1) they change nothing. NaN stays NaN (min/max
 * return their second operand when one is NaN, and the mask keeps unordered lanes).
 * avx2_exp gives the same bits. */
static inline __m512 avx512_exp_upto_88(__m512 x) {
    const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(MOLMO_X86_EXP_MIN), _CMP_NLT_UQ);
    x = _mm512_max_ps(_mm512_set1_ps(MOLMO_X86_EXP_MIN), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(normal, y, n);
}

/* avx512_exp_upto_88 is the exp of inputs at most 88.8 (or NaN), as a softmax's s - max s; the
 * clamp at the top first gives the same bits for any input (the compare at the bottom sees the
 * same answer for x and min(88.8, x), NaN included). */
static inline __m512 avx512_exp(__m512 x) {
    return avx512_exp_upto_88(_mm512_min_ps(_mm512_set1_ps(88.8f), x));
}

/* molmo_f32_to_bf16 on 16 lanes, kept as f32: u + 0x7fff + bit 16, low half cleared; NaN
 * lanes keep their top bits and get the quiet bit (0x40 of the bf16). */
static inline void avx512_round_bf16(float *x, size_t n) {
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u), quiet = _mm512_set1_epi32(0x400000);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        r = _mm512_mask_or_epi32(r, nan, u, quiet);
        _mm512_mask_storeu_ps(x + i, m, _mm512_castsi512_ps(_mm512_and_si512(r, hi)));
    }
}

/* Softmax numerator in place: x[i] = exp(s[i] - max s) with s = scale * x (scale == 1: x
 * itself); returns 1 / sum (sum in double, then rounded to f32 as in the reference). n >= 1.
 * The max runs on four chains (a max is exact in any order: the same bits as one chain, and a
 * NaN anywhere makes the whole row NaN either way), where one chain waited on its latency; the
 * masked tail is peeled off the exp loop. A 577-wide row: 0.43 -> 0.34 ns an element. */
static inline float avx512_exp_sub_max(float *x, int n, float scale) {
    /* scale * x is computed in both passes rather than stored by the first: the same product,
     * so the same bits, for one pass of stores less */
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        m0 = _mm512_max_ps(m0, _mm512_mul_ps(sc, _mm512_loadu_ps(x + i)));
        m1 = _mm512_max_ps(m1, _mm512_mul_ps(sc, _mm512_loadu_ps(x + i + 16)));
        m2 = _mm512_max_ps(m2, _mm512_mul_ps(sc, _mm512_loadu_ps(x + i + 32)));
        m3 = _mm512_max_ps(m3, _mm512_mul_ps(sc, _mm512_loadu_ps(x + i + 48)));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = avx512_tail(n - i);
        m0 = _mm512_mask_max_ps(m0, m, m0, _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m, x + i)));
    }
    const __m512 mv = _mm512_set1_ps(
        _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3))));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = avx512_exp_upto_88(_mm512_sub_ps(_mm512_mul_ps(sc, _mm512_loadu_ps(x + i)), mv));
        _mm512_storeu_ps(x + i, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(avx512_hi256(e)));
    }
    if (i < n) {
        const __mmask16 m = avx512_tail(n - i);
        const __m512 v = _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m, x + i));
        const __m512 e = _mm512_maskz_mov_ps(m, avx512_exp_upto_88(_mm512_sub_ps(v, mv)));
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(avx512_hi256(e)));
    }
    return 1.0f / (float)_mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

/* Shared by the quantized kernels (avx512_quant.c, avx512_kquant.c). */
/* r[p] holds dwords 0..7 of column p (lanes 0-7) and of column p + 8 (lanes 8-15); afterwards
 * r[g] holds dword g of columns 0..15 (lane = column). Three rounds of 8 two-source shuffles. */
static inline __attribute__((always_inline)) void avx512_transpose_8x16_epi32(__m512i r[8]) {
    __m512i t[8], u[8];
    for (int i = 0; i < 8; i += 4) {
        t[i + 0] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        t[i + 2] = _mm512_unpacklo_epi32(r[i + 2], r[i + 3]);
        t[i + 3] = _mm512_unpackhi_epi32(r[i + 2], r[i + 3]);
        u[i + 0] = _mm512_unpacklo_epi64(t[i + 0], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i + 0], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[k] (u[4+k]): per 128-bit lane L, dword k (L odd: 4+k) of columns 0-3 / 8-11 (4-7 /
     * 12-15); interleave the lanes of the two. */
    const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_permutex2var_epi64(u[k], lo, u[4 + k]);
        r[4 + k] = _mm512_permutex2var_epi64(u[k], hi, u[4 + k]);
    }
}

/* The 32 bytes at p, p + ldw, ... of nc (<= 16, may be <= 0) columns, transposed: r[t] =
 * dword t of each column (lane = column; lanes >= nc: 0); one line of f prefetched after each
 * of the 16 loads (the K-quant decode GEMVs' L2 prefetches, spread evenly over their loads: 10
 * lines between two loads ran 7-10% slower from DRAM, docs/kernels.md, K-quants). */
static inline __attribute__((always_inline)) void avx512_load_cols32x16_pf(
    const uint8_t *p, size_t ldw, int nc, __m512i r[8], molmo_x86_l2_ahead *f) {
    for (int c = 0; c < 8; c++) {
        const __m256i lo = c < nc ? _mm256_loadu_si256((const __m256i *)(p + (size_t)c * ldw))
                                  : _mm256_setzero_si256();
        molmo_x86_l2_ahead_lines(f, 1);
        const __m256i hi = c + 8 < nc ? _mm256_loadu_si256((const __m256i *)(p + (size_t)(c + 8) * ldw))
                                      : _mm256_setzero_si256();
        molmo_x86_l2_ahead_lines(f, 1);
        r[c] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    avx512_transpose_8x16_epi32(r);
}

/* avx512_load_cols32x16_pf without a prefetch. */
static inline __attribute__((always_inline)) void avx512_load_cols32x16(const uint8_t *p,
                                                                         size_t ldw, int nc,
                                                                         __m512i r[8]) {
    molmo_x86_l2_ahead none = {NULL, 0, 0};
    avx512_load_cols32x16_pf(p, ldw, nc, r, &none);
}

static inline __attribute__((always_inline)) __m128i avx512_load_col16(const uint8_t *p,
                                                                        size_t ldw, int c, int nc) {
    return c < nc ? _mm_loadu_si128((const __m128i *)(p + (size_t)c * ldw)) : _mm_setzero_si128();
}

/* The 16 bytes at p, p + ldw, ... of nc columns as 4 vectors: h[k] = dword k of each column.
 * v[q] holds columns q, q+4, q+8, q+12 (one per 128-bit lane); a 4x4 dword transpose inside
 * each lane puts the columns in lane order. */
static inline __attribute__((always_inline)) void avx512_load_cols16x16(const uint8_t *p,
                                                                         size_t ldw, int nc,
                                                                         __m512i h[4]) {
    __m512i v[4];
    for (int q = 0; q < 4; q++) {
        v[q] = _mm512_castsi128_si512(avx512_load_col16(p, ldw, q, nc));
        v[q] = _mm512_inserti32x4(v[q], avx512_load_col16(p, ldw, q + 4, nc), 1);
        v[q] = _mm512_inserti32x4(v[q], avx512_load_col16(p, ldw, q + 8, nc), 2);
        v[q] = _mm512_inserti32x4(v[q], avx512_load_col16(p, ldw, q + 12, nc), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
    h[0] = _mm512_unpacklo_epi64(t0, t2);
    h[1] = _mm512_unpackhi_epi64(t0, t2);
    h[2] = _mm512_unpacklo_epi64(t1, t3);
    h[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* In-register transpose of a 16x16 block of 32-bit lanes: r[i][j] -> r[j][i] (f32 GEMM panels,
 * bf16 pair tiles). */
static inline __attribute__((always_inline)) void avx512_transpose16_ps(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* u[i + c]: column c of each 4-column lane, rows i..i+3 */
        u[i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    for (int c = 0; c < 4; c++) {
        __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        __m512 b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
        __m512 e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 f = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(a, e, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(b, f, 0xdd);
    }
}

/* v0 | v1 (32 f32 values, 0-15 and 16-31) as np bf16 parts (np <= 3) in the order of one bf16
 * load (element 2i and 2i + 1 in dword i: 0-15 in the low half, 16-31 in the high half): part
 * 1 is the values rounded to bf16 (nearest even), each further part what is left, rounded
 * again. Each difference is exact in f32, so three parts leave |v - v1 - v2 - v3| <= 2^-27 |v|:
 * how the AMX-BF16 kernels take f32 operands to f32 accuracy (avx512_amx_bf16.c,
 * avx512_amx_attention.c; callers are compiled for AVX512-BF16). */
__attribute__((target("avx512bf16"))) static inline void avx512_bf16_parts(__m512 v0, __m512 v1,
                                                                           int np, __m512i out[]) {
    for (int part = 0; part < np; part++) {
        const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
        out[part] = h;
        if (part == np - 1) break;
        v0 = _mm512_sub_ps(v0, _mm512_castsi512_ps(_mm512_slli_epi32(
                                   _mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16)));
        v1 = _mm512_sub_ps(v1, _mm512_castsi512_ps(_mm512_slli_epi32(
                                   _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16)));
    }
}

#endif

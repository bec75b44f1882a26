/* avx2_math.h — inline helpers shared by the AVX2 kernel files (include only from files
 * compiled with -mavx2 -mfma -mf16c): tail masks, weight loads of any dtype, exp (bit-identical
 * to avx512_exp: same reduction and polynomial, 2^n applied in two exact steps), and the
 * exp-and-sum step of softmax. */
#ifndef MOLMO_KERNELS_AVX2_MATH_H
#define MOLMO_KERNELS_AVX2_MATH_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/x86/x86.h"
#include "molmo.h"

/* Lane mask (all ones / zero) of the first min(max(n, 0), 8) lanes. */
static inline __m256i avx2_mask(int n) {
    static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - n));
}
static inline int avx2_clamp8(size_t n) { return n >= 8 ? 8 : (int)n; }

static inline __m256 avx2_load(const float *p, int n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, avx2_mask(n));
}
static inline void avx2_store(float *p, int n, __m256 v) {
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, avx2_mask(n), v);
}

/* n (<= 8) weights from element idx as f32, lanes >= n zero; exact conversions only. */
static inline __m256 avx2_load_w8(const void *w, molmo_dtype wt, size_t idx, int n) {
    if (wt == MOLMO_DTYPE_F32) return avx2_load((const float *)w + idx, n);
    __m128i h;
    if (n >= 8) {
        h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + idx));
    } else {
        uint16_t tmp[8] = {0};
        memcpy(tmp, (const uint16_t *)w + idx, (size_t)(n > 0 ? n : 0) * sizeof(uint16_t));
        h = _mm_loadu_si128((const __m128i *)tmp);
    }
    if (wt == MOLMO_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* molmo_f32_to_bf16 on 8 lanes, kept as f32 (as avx512_ops.c; AVX2 has no unsigned compare:
 * |u| > inf as signed dwords, both non-negative). */
static inline void avx2_round_bf16(float *x, size_t n) {
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u), quiet = _mm256_set1_epi32(0x400000);
    for (size_t i = 0; i < n; i += 8) {
        const int c = avx2_clamp8(n - i);
        const __m256i u = _mm256_castps_si256(avx2_load(x + i, c));
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
        const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        const __m256i v = _mm256_blendv_epi8(r, _mm256_or_si256(u, quiet), nan);
        avx2_store(x + i, c, _mm256_castsi256_ps(_mm256_and_si256(v, hi)));
    }
}

/* Fixed-order horizontal sum. */
static inline float avx2_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline double avx2_hsum_pd(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* See avx512_exp (0 below -87.33, no denormal ever computed). 2^n for n in [-126, 128] is
 * applied as 2^(n>>1) * 2^(n - (n>>1)): the first product is exact (normal range), the second
 * rounds once, exactly like vscalefps. */
static inline __m256 avx2_exp(__m256 x) {
    const __m256 normal = _mm256_cmp_ps(x, _mm256_set1_ps(MOLMO_X86_EXP_MIN), _CMP_NLT_UQ);
    x = _mm256_min_ps(_mm256_set1_ps(88.8f), x);
    x = _mm256_max_ps(_mm256_set1_ps(MOLMO_X86_EXP_MIN), x);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i b = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, b), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, b), 23));
    return _mm256_and_ps(normal, _mm256_mul_ps(_mm256_mul_ps(y, s1), s2));
}

/* Sum of the first n lanes of v in double, into (s0, s1). */
static inline void avx2_acc_pd(__m256 v, __m256d *s0, __m256d *s1) {
    *s0 = _mm256_add_pd(*s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *s1 = _mm256_add_pd(*s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/* Softmax numerator in place: x[i] = exp(s[i] - max s) with s = scale * x (scale == 1: x
 * itself); returns 1 / sum (double sum). n >= 1. As avx512_exp_sub_max: scale * x in both
 * passes (the same product, so the same bits as storing it), the max on four chains (exact in
 * any order), the partial vector only at the end. */
static inline float avx2_exp_sub_max(float *x, int n, float scale) {
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm256_max_ps(m0, _mm256_mul_ps(sc, _mm256_loadu_ps(x + i)));
        m1 = _mm256_max_ps(m1, _mm256_mul_ps(sc, _mm256_loadu_ps(x + i + 8)));
        m2 = _mm256_max_ps(m2, _mm256_mul_ps(sc, _mm256_loadu_ps(x + i + 16)));
        m3 = _mm256_max_ps(m3, _mm256_mul_ps(sc, _mm256_loadu_ps(x + i + 24)));
    }
    for (; i < n; i += 8) {
        const int c = n - i < 8 ? n - i : 8;
        const __m256 v = _mm256_mul_ps(sc, avx2_load(x + i, c));
        m0 = _mm256_max_ps(m0, _mm256_blendv_ps(m0, v, _mm256_castsi256_ps(avx2_mask(c))));
    }
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const __m256 mv = _mm256_set1_ps(_mm_cvtss_f32(m4));
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = avx2_exp(_mm256_sub_ps(_mm256_mul_ps(sc, _mm256_loadu_ps(x + i)), mv));
        _mm256_storeu_ps(x + i, e);
        avx2_acc_pd(e, &s0, &s1);
    }
    if (i < n) {
        const int c = n - i;
        __m256 e = avx2_exp(_mm256_sub_ps(_mm256_mul_ps(sc, avx2_load(x + i, c)), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(avx2_mask(c)));
        avx2_store(x + i, c, e);
        avx2_acc_pd(e, &s0, &s1);
    }
    return 1.0f / (float)avx2_hsum_pd(_mm256_add_pd(s0, s1));
}

/* Shared by the quantized kernels (avx2_quant.c, avx2_kquant.c). */
/* 8x8 transpose of dwords: r[c] dword k -> r[k] dword c. */
static inline __attribute__((always_inline)) void avx2_transpose8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 4) {
        t[i + 0] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
        t[i + 2] = _mm256_unpacklo_epi32(r[i + 2], r[i + 3]);
        t[i + 3] = _mm256_unpackhi_epi32(r[i + 2], r[i + 3]);
        u[i + 0] = _mm256_unpacklo_epi64(t[i + 0], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i + 0], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
        r[4 + k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
    }
}

#endif

/* avx2_ops.c — AVX2 norms, softmax, activations, residual adds, RoPE and dtype conversion, and
 * the AVX2 kernel table. Same specification and same structure as avx512_ops.c (8 lanes, tails
 * through maskload/maskstore so every element goes through the same arithmetic). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kquant.h"
#include "kernels/x86/avx2_math.h"
#include "kernels/x86/x86.h"

/* (x - mean) in double for the valid lanes of an 8-float chunk, 0 elsewhere. */
static inline void centred_pd(__m256 v, int c, __m256d md, __m256d *d0, __m256d *d1) {
    const __m256i m = avx2_mask(c);
    const __m256d m0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)));
    const __m256d m1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1)));
    *d0 = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), md), m0);
    *d1 = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), md), m1);
}

static void layernorm_avx2(float *y, const float *x, const float *w, const float *b, int n,
                           float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) avx2_acc_pd(avx2_load(x + i, n - i), &s0, &s1);
    const double mean_d = avx2_hsum_pd(_mm256_add_pd(s0, s1)) / n;
    const __m256d md = _mm256_set1_pd(mean_d);
    s0 = _mm256_setzero_pd();
    s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        __m256d d0, d1;
        centred_pd(avx2_load(x + i, n - i), n - i, md, &d0, &d1);
        s0 = _mm256_fmadd_pd(d0, d0, s0);
        s1 = _mm256_fmadd_pd(d1, d1, s1);
    }
    const double var_d = avx2_hsum_pd(_mm256_add_pd(s0, s1)) / n;
    const __m256 mean = _mm256_set1_ps((float)mean_d);
    const __m256 rstd = _mm256_set1_ps(1.0f / sqrtf((float)var_d + eps));
    for (int i = 0; i < n; i += 8) {
        const int c = n - i;
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(avx2_load(x + i, c), mean), rstd);
        if (w) t = _mm256_mul_ps(t, avx2_load(w + i, c));
        if (b) t = _mm256_add_ps(t, avx2_load(b + i, c));
        avx2_store(y + i, c, t);
    }
}

static void rmsnorm_avx2(float *y, const float *x, const float *w, int n, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const __m256 v = avx2_load(x + i, n - i);
        const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_fmadd_pd(d0, d0, s0);
        s1 = _mm256_fmadd_pd(d1, d1, s1);
    }
    const double ss = avx2_hsum_pd(_mm256_add_pd(s0, s1));
    const __m256 r = _mm256_set1_ps(1.0f / sqrtf((float)(ss / n) + eps));
    for (int i = 0; i < n; i += 8) {
        const int c = n - i;
        __m256 t = _mm256_mul_ps(avx2_load(x + i, c), r);
        if (w) t = _mm256_mul_ps(t, avx2_load(w + i, c));
        avx2_store(y + i, c, t);
    }
}

static void softmax_avx2(float *x, int n) {
    if (n <= 0) return;
    const __m256 inv = _mm256_set1_ps(avx2_exp_sub_max(x, n, 1.0f));
    for (int i = 0; i < n; i += 8) avx2_store(x + i, n - i, _mm256_mul_ps(avx2_load(x + i, n - i), inv));
}

static void quick_gelu_avx2(float *x, size_t n) {
    const __m256 c = _mm256_set1_ps(1.702f), one = _mm256_set1_ps(1.0f);
    const __m256 neg = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += 8) {
        const int k = avx2_clamp8(n - i);
        const __m256 v = avx2_load(x + i, k);
        const __m256 e = avx2_exp(_mm256_xor_ps(_mm256_mul_ps(c, v), neg));
        avx2_store(x + i, k, _mm256_mul_ps(v, _mm256_div_ps(one, _mm256_add_ps(one, e))));
    }
}

static void silu_mul_avx2(float *out, const float *g, const float *u, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += 8) {
        const int k = avx2_clamp8(n - i);
        const __m256 gv = avx2_load(g + i, k);
        const __m256 e = avx2_exp(_mm256_xor_ps(gv, neg));
        const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        avx2_store(out + i, k, _mm256_mul_ps(s, avx2_load(u + i, k)));
    }
}

static void add_avx2(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const int k = avx2_clamp8(n - i);
        avx2_store(y + i, k, _mm256_add_ps(avx2_load(y + i, k), avx2_load(x + i, k)));
    }
}

static void scale_add_avx2(float *y, const float *x, float a, size_t n) {
    const __m256 av = _mm256_set1_ps(a);
    for (size_t i = 0; i < n; i += 8) {
        const int k = avx2_clamp8(n - i);
        const __m256 p = _mm256_mul_ps(av, avx2_load(x + i, k));
        avx2_store(y + i, k, _mm256_add_ps(avx2_load(y + i, k), p));
    }
}

static void rope_avx2(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                      const float *cos_t, const float *sin_t) {
    const int half = hd / 2;
    for (int t = 0; t < n_tok; t++) {
        const float *c = cos_t + (size_t)pos[t] * (size_t)half;
        const float *s = sin_t + (size_t)pos[t] * (size_t)half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)t * (size_t)ldx + (size_t)h * (size_t)hd;
            for (int i = 0; i < half; i += 8) {
                const int k = half - i;
                const __m256 a = avx2_load(v + i, k), b = avx2_load(v + half + i, k);
                const __m256 cv = avx2_load(c + i, k), sv = avx2_load(s + i, k);
                avx2_store(v + i, k, _mm256_sub_ps(_mm256_mul_ps(a, cv), _mm256_mul_ps(b, sv)));
                avx2_store(v + half + i, k, _mm256_add_ps(_mm256_mul_ps(b, cv), _mm256_mul_ps(a, sv)));
            }
        }
    }
}

static void to_f32_avx2(float *out, const void *w, molmo_dtype wt, size_t n) {
    if (wt == MOLMO_DTYPE_Q8_0 || wt == MOLMO_DTYPE_Q4_0) {
        molmo_k_dequant_avx2(out, w, wt, n);
        return;
    }
    if (molmo_dtype_is_kquant(wt)) { /* embedding rows only: the exact plain-C dequantizer */
        molmo_kdequantize_row(wt, w, out, (int64_t)n);
        return;
    }
    for (size_t i = 0; i < n; i += 8) {
        const int k = avx2_clamp8(n - i);
        avx2_store(out + i, k, avx2_load_w8(w, wt, i, k));
    }
}

static void to_f16_avx2(uint16_t *out, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) { /* tail through a buffer: F16C has no masked store */
        uint16_t h[8];
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(avx2_load(x + i, (int)(n - i)),
                                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        memcpy(out + i, h, (n - i) * sizeof(uint16_t));
    }
}

static void round_bf16_avx2(float *x, size_t n) { avx2_round_bf16(x, n); }

const molmo_kernels molmo_kernels_avx2_table = {
    .name = "avx2",
    .matmul = molmo_k_matmul_f32_avx2,
    .matmul_xq_bytes = molmo_k_matmul_xq_bytes_avx2,
    .matmul_xq = molmo_k_matmul_xq_avx2,
    .layernorm = layernorm_avx2,
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .quick_gelu = quick_gelu_avx2,
    .silu_mul = silu_mul_avx2,
    .add = add_avx2,
    .scale_add = scale_add_avx2,
    .attention = molmo_k_attention_f32_avx2,
    .rope = rope_avx2,
    .to_f32 = to_f32_avx2,
    .to_f16 = to_f16_avx2,
    .round_bf16 = round_bf16_avx2,
};

/* avx512_ops.c — AVX-512 norms, softmax, activations, residual adds, RoPE and dtype conversion,
 * and the AVX-512 kernel table.
 *
 * Each function follows its ref/ specification (ref/ref_ops.c) operation for operation; the only
 * differences are (a) the order of the double-precision sums inside the norms and softmax and
 * (b) exp, which is a Cephes-style polynomial here (<= 2 ulp) instead of libm's expf. Everything
 * else (RoPE, adds, the normalisation arithmetic) is bit-identical to the reference: no FMA
 * contraction where the specification rounds twice. Tails are handled with masked loads and
 * stores, so every element goes through the same arithmetic. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/kquant.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

static void layernorm_avx512(float *y, const float *x, const float *w, const float *b, int n,
                             float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(avx512_tail(n - i), x + i);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(avx512_hi256(v)));
    }
    const double mean_d = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / n;
    const __m512d md = _mm512_set1_pd(mean_d);
    s0 = _mm512_setzero_pd();
    s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512d d0 = _mm512_maskz_sub_pd((__mmask8)m, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), md);
        const __m512d d1 = _mm512_maskz_sub_pd((__mmask8)(m >> 8), _mm512_cvtps_pd(avx512_hi256(v)), md);
        s0 = _mm512_fmadd_pd(d0, d0, s0);
        s1 = _mm512_fmadd_pd(d1, d1, s1);
    }
    const double var_d = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / n;
    const __m512 mean = _mm512_set1_ps((float)mean_d);
    const __m512 rstd = _mm512_set1_ps(1.0f / sqrtf((float)var_d + eps));
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail(n - i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mean), rstd);
        if (w) t = _mm512_mul_ps(t, _mm512_maskz_loadu_ps(m, w + i));
        if (b) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, t);
    }
}

static void rmsnorm_avx512(float *y, const float *x, const float *w, int n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(avx512_tail(n - i), x + i);
        const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        const __m512d d1 = _mm512_cvtps_pd(avx512_hi256(v));
        s0 = _mm512_fmadd_pd(d0, d0, s0);
        s1 = _mm512_fmadd_pd(d1, d1, s1);
    }
    const double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    const __m512 r = _mm512_set1_ps(1.0f / sqrtf((float)(ss / n) + eps));
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail(n - i);
        __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r);
        if (w) t = _mm512_mul_ps(t, _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, t);
    }
}

static void softmax_avx512(float *x, int n) {
    if (n <= 0) return;
    const __m512 inv = _mm512_set1_ps(avx512_exp_sub_max(x, n, 1.0f));
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

static void quick_gelu_avx512(float *x, size_t n) {
    const __m512 c = _mm512_set1_ps(1.702f), one = _mm512_set1_ps(1.0f);
    const __m512 neg = _mm512_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 e = avx512_exp(_mm512_xor_ps(_mm512_mul_ps(c, v), neg));
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(v, _mm512_div_ps(one, _mm512_add_ps(one, e))));
    }
}

static void silu_mul_avx512(float *out, const float *g, const float *u, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), neg = _mm512_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = avx512_exp(_mm512_xor_ps(gv, neg));
        const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void add_avx512(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, s);
    }
}

static void scale_add_avx512(float *y, const float *x, float a, size_t n) {
    const __m512 av = _mm512_set1_ps(a);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m512 p = _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), p));
    }
}

static void rope_avx512(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                        const float *cos_t, const float *sin_t) {
    const int half = hd / 2;
    for (int t = 0; t < n_tok; t++) {
        const float *c = cos_t + (size_t)pos[t] * (size_t)half;
        const float *s = sin_t + (size_t)pos[t] * (size_t)half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)t * (size_t)ldx + (size_t)h * (size_t)hd;
            for (int i = 0; i < half; i += 16) {
                const __mmask16 m = avx512_tail(half - i);
                const __m512 a = _mm512_maskz_loadu_ps(m, v + i);
                const __m512 b = _mm512_maskz_loadu_ps(m, v + half + i);
                const __m512 cv = _mm512_maskz_loadu_ps(m, c + i);
                const __m512 sv = _mm512_maskz_loadu_ps(m, s + i);
                _mm512_mask_storeu_ps(v + i, m, _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
                _mm512_mask_storeu_ps(v + half + i, m,
                                      _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
            }
        }
    }
}

static void to_f32_avx512(float *out, const void *w, molmo_dtype wt, size_t n) {
    if (wt == MOLMO_DTYPE_Q8_0 || wt == MOLMO_DTYPE_Q4_0) {
        molmo_k_dequant_avx512(out, w, wt, n);
        return;
    }
    if (molmo_dtype_is_kquant(wt)) { /* embedding rows only: the exact plain-C dequantizer */
        molmo_kdequantize_row(wt, w, out, (int64_t)n);
        return;
    }
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        _mm512_mask_storeu_ps(out + i, m, avx512_load_w16(w, wt, i, m));
    }
}

static void to_f16_avx512(uint16_t *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = avx512_tail_z(n - i);
        const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(out + i, m, h);
    }
}

static void round_bf16_avx512(float *x, size_t n) { avx512_round_bf16(x, n); }

const molmo_kernels molmo_kernels_avx512_table = {
    .name = "avx512",
    .matmul = molmo_k_matmul_f32_avx512,
    .matmul_xq_bytes = molmo_k_matmul_xq_bytes_avx512,
    .matmul_xq = molmo_k_matmul_xq_avx512,
    .matmul_wq_bytes = molmo_k_matmul_wq_bytes_avx512,
    .matmul_wq = molmo_k_matmul_wq_avx512,
    .layernorm = layernorm_avx512,
    .rmsnorm = rmsnorm_avx512,
    .softmax = softmax_avx512,
    .quick_gelu = quick_gelu_avx512,
    .silu_mul = silu_mul_avx512,
    .add = add_avx512,
    .scale_add = scale_add_avx512,
    .attention = molmo_k_attention_f32_avx512,
    .rope = rope_avx512,
    .to_f32 = to_f32_avx512,
    .to_f16 = to_f16_avx512,
    .round_bf16 = round_bf16_avx512,
};

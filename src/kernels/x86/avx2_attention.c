/* avx2_attention.c — scaled-dot-product attention with grouped-query heads, AVX2. The same
 * algorithm as avx512_attention.c (read its header): GEMM path for n_q >= 16 through
 * attention_gemm.h with avx2_gemm.c; for decode, 8 keys per score block with a transposing 8-way horizontal sum and
 * P·V over groups of 2 rows x 32 columns. f16 K and V (an f16 KV cache) are converted to f32
 * exactly where they are loaded (F16C); with bf16 activations the weights are rounded to bf16
 * after their sum is taken. */
#include <immintrin.h>
#include <math.h>

#include "kernels/x86/attention_gemm.h"
#include "kernels/x86/avx2_math.h"
#include "kernels/x86/x86.h"

#define INLINE static inline __attribute__((always_inline))

/* Problems with at least this many query rows take the GEMM path (chosen per problem, never per
 * thread range, so the split cannot change a result). */
#define GEMM_MIN_Q 16

/* Lane i of the result = sum of the 8 lanes of v[i] (fixed pairwise order). */
INLINE __m256 reduce8(const __m256 v[8]) {
    __m256 a[4], b[2];
    for (int i = 0; i < 4; i++)
        a[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 2; i++) {
        const __m256d x = _mm256_castps_pd(a[2 * i]), y = _mm256_castps_pd(a[2 * i + 1]);
        b[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                             _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20),
                         _mm256_permute2f128_ps(b[0], b[1], 0x31));
}

/* s[j] = scale * (q · k_j) for j < len; k_j at element j*ldk of k (type kt). */
INLINE void scores_row(const float *q, molmo_dtype kt, const void *k, size_t ldk, int hd, int len,
                       float scale, float *s) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (int j = 0; j < len; j += 8) {
        const int nk = len - j < 8 ? len - j : 8;
        size_t kr[8];
        for (int t = 0; t < 8; t++) kr[t] = (size_t)(j + (t < nk ? t : nk - 1)) * ldk;
        __m256 acc[8];
        for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
            const int c = hd - d;
            const __m256 qv = avx2_load(q + d, c);
            for (int t = 0; t < 8; t++)
                acc[t] = _mm256_fmadd_ps(qv, avx2_load_w8(k, kt, kr[t] + (size_t)d, c), acc[t]);
        }
        avx2_store(s + j, nk, _mm256_mul_ps(sc, reduce8(acc)));
    }
}

INLINE void pv_rows(const int nr, const float *p, size_t ld, int jmax, molmo_dtype vt,
                    const void *v, size_t ldv, int hd, float *o, size_t ldo, const float *inv) {
    for (int d = 0; d < hd; d += 32) {
        int nc[4];
        for (int c = 0; c < 4; c++) nc[c] = hd - d - 8 * c;
        __m256 acc[2][4];
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
        for (int j = 0; j < jmax; j++) {
            const size_t vr = (size_t)j * ldv + (size_t)d;
            __m256 vv[4];
            for (int c = 0; c < 4; c++) vv[c] = avx2_load_w8(v, vt, vr + 8 * (size_t)c, nc[c]);
            for (int r = 0; r < nr; r++) {
                const __m256 pr = _mm256_broadcast_ss(p + r * ld + (size_t)j);
                for (int c = 0; c < 4; c++) acc[r][c] = _mm256_fmadd_ps(pr, vv[c], acc[r][c]);
            }
        }
        for (int r = 0; r < nr; r++) {
            const __m256 iv = _mm256_set1_ps(inv[r]);
            for (int c = 0; c < 4; c++)
                if (nc[c] > 0) avx2_store(o + r * ldo + d + 8 * c, nc[c], _mm256_mul_ps(acc[r][c], iv));
        }
    }
}


/* Few query rows (decode): dot products straight from K, see the file header. K and V of
 * type kt (a constant in each instance below). */
INLINE void item_dot_t(molmo_dtype kt, const molmo_attn_args *a, int h, int i0, int i1, float *S) {
    const size_t ld = molmo_attn_ld_scores(a->n_kv);
    const int hd = a->hd, g = h / (a->n_heads / a->n_kv_heads);
    const size_t es = molmo_attn_kv_bytes(kt);
    const void *k = (const char *)a->k + (size_t)g * a->ldh * es;
    const void *v = (const char *)a->v + (size_t)g * a->ldh * es;
    float inv[MOLMO_ATTN_QB];
    int len[MOLMO_ATTN_QB];
    for (int r = 0; r < i1 - i0; r++) {
        const float *q = a->q + (size_t)(i0 + r) * (size_t)a->ldq + (size_t)h * (size_t)hd;
        len[r] = molmo_attn_row_len(a, i0 + r);
        scores_row(q, kt, k, (size_t)a->ldk, hd, len[r], a->scale, S + r * ld);
        inv[r] = avx2_exp_sub_max(S + r * ld, len[r], 1.0f);
        if (a->bf16) avx2_round_bf16(S + r * ld, (size_t)len[r]);
    }
    for (int r0 = 0; r0 < i1 - i0; r0 += 2) {
        const int nr = i1 - i0 - r0 < 2 ? i1 - i0 - r0 : 2;
        int jmax = 0;
        for (int r = r0; r < r0 + nr; r++) jmax = len[r] > jmax ? len[r] : jmax;
        for (int r = r0; r < r0 + nr; r++)
            for (int j = len[r]; j < jmax; j++) S[r * ld + (size_t)j] = 0.0f;
        float *o = a->out + (size_t)(i0 + r0) * (size_t)a->ldo + (size_t)h * (size_t)hd;
        if (nr == 1)
            pv_rows(1, S + r0 * ld, ld, jmax, kt, v, (size_t)a->ldv, hd, o, (size_t)a->ldo, inv + r0);
        else
            pv_rows(2, S + r0 * ld, ld, jmax, kt, v, (size_t)a->ldv, hd, o, (size_t)a->ldo, inv + r0);
    }
}

static void item_dot(const molmo_attn_args *a, int h, int i0, int i1, float *S) {
    if (a->kv_type == MOLMO_DTYPE_F16)
        item_dot_t(MOLMO_DTYPE_F16, a, h, i0, i1, S);
    else
        item_dot_t(MOLMO_DTYPE_F32, a, h, i0, i1, S);
}

/* o[0..n) *= s */
static void scale_row(float *o, int n, float s) {
    const __m256 sv = _mm256_set1_ps(s);
    for (int d = 0; d < n; d += 8) avx2_store(o + d, n - d, _mm256_mul_ps(avx2_load(o + d, n - d), sv));
}

static const molmo_x86_attn_isa ISA = {
    molmo_k_gemm_f32_avx2, molmo_k_gemm_packed_floats_avx2, molmo_k_gemm_pack_avx2,
    molmo_k_gemm_packed_f32_avx2, avx2_exp_sub_max, avx2_round_bf16, scale_row, NULL, NULL, NULL};

void molmo_k_attention_f32_avx2(const molmo_attn_args *a, int it0, int it1, float *scratch,
                             float *ws, size_t ws_floats) {
    if (a->n_q >= GEMM_MIN_Q) {
        molmo_x86_attn_gemm_items(&ISA, a, it0, it1, scratch, ws, ws_floats);
        return;
    }
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        item_dot(a, h, i0, i1, scratch);
    }
}

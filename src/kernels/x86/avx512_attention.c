/* avx512_attention.c — scaled-dot-product attention with grouped-query heads, AVX-512.
 *
 * Same specification as ref/ref_attention.c. One work item is MOLMO_ATTN_QB query rows of one
 * head. Two paths, chosen from n_q alone:
 *   n_q >= 16 (ViT, prefill): S = q_block · K_g^T and O = P · V_g as register-tiled GEMMs
 *     over packed K/V panels (attention_gemm.h, with avx512_gemm.c), softmax in between;
 *   n_q < 16 (decode): per row, scores 16 keys at a time (16 accumulators over head-dim chunks,
 *     one transposing horizontal sum), then P·V for rows in groups of 4 against 64 columns.
 * Softmax: exp(s - max) in place in the scratch row, sum in double (avx512_math.h), and the
 * output is scaled by 1/sum at the end. Rows that see fewer keys (causal) are padded with
 * zero weights up to the longest row of their group, which leaves every FMA chain unchanged.
 * Items are fixed by (head, block), so the result never depends on the thread split.
 * K and V may be f16 (an f16 KV cache): each element is converted to f32 exactly where it is
 * loaded (vcvtph2ps), so the arithmetic is that of f32 K and V holding the same values.
 * With bf16 activations (a->bf16) the weights are rounded to bf16 in the scratch rows after
 * their sum is taken; where the CPU has AMX-BF16 the GEMM-path problems it can take (causal
 * or not) go to avx512_amx_attention.c instead. With f32 activations there, the GEMM path of
 * a problem that is not causal takes its scores from that file's tiles at f32 accuracy
 * (molmo_k_attn_scores_split) and keeps its softmax and P·V. */
#include <immintrin.h>
#include <math.h>

#include "kernels/x86/attention_gemm.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

#define INLINE static inline __attribute__((always_inline))

/* Problems with at least this many query rows take the GEMM path (chosen per problem, never per
 * thread range, so the split cannot change a result). */
#define GEMM_MIN_Q 16

/* Lane i of the result = sum of the 16 lanes of v[i] (fixed pairwise order). */
INLINE __m512 reduce16(const __m512 v[16]) {
    __m512 a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
        b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    const __m512 c0 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x88),
                                    _mm512_shuffle_f32x4(b[0], b[1], 0xdd));
    const __m512 c1 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x88),
                                    _mm512_shuffle_f32x4(b[2], b[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c0, c1, 0x88), _mm512_shuffle_f32x4(c0, c1, 0xdd));
}

/* s[j] = scale * (q · k_j) for j < len; k_j at element j*ldk of k (type kt). */
INLINE void scores_row(const float *q, molmo_dtype kt, const void *k, size_t ldk, int hd, int len,
                       float scale, float *s) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (int j = 0; j < len; j += 16) {
        const int nk = len - j < 16 ? len - j : 16;
        size_t kr[16];
        for (int t = 0; t < 16; t++) kr[t] = (size_t)(j + (t < nk ? t : nk - 1)) * ldk;
        __m512 acc[16];
        for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16) {
            const __mmask16 m = avx512_tail(hd - d);
            const __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            for (int t = 0; t < 16; t++)
                acc[t] = _mm512_fmadd_ps(qv, avx512_load_w16(k, kt, kr[t] + (size_t)d, m), acc[t]);
        }
        _mm512_mask_storeu_ps(s + j, avx512_tail(nk), _mm512_mul_ps(sc, reduce16(acc)));
    }
}

/* o[r, 0:hd] = (sum_j p[r, j] v_j) * inv[r] for nr rows, keys j < jmax; v_j at element j*ldv
 * of v (type vt). */
INLINE void pv_rows(const int nr, const float *p, size_t ld, int jmax, molmo_dtype vt,
                    const void *v, size_t ldv, int hd, float *o, size_t ldo, const float *inv) {
    for (int d = 0; d < hd; d += 64) {
        __mmask16 m[4];
        for (int c = 0; c < 4; c++) m[c] = avx512_tail(hd - d - 16 * c);
        __m512 acc[4][4];
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
        for (int j = 0; j < jmax; j++) {
            const size_t vr = (size_t)j * ldv + (size_t)d;
            __m512 vv[4];
            for (int c = 0; c < 4; c++) vv[c] = avx512_load_w16(v, vt, vr + 16 * (size_t)c, m[c]);
            for (int r = 0; r < nr; r++) {
                const __m512 pr = _mm512_set1_ps(p[r * ld + (size_t)j]);
                for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(pr, vv[c], acc[r][c]);
            }
        }
        for (int r = 0; r < nr; r++) {
            const __m512 iv = _mm512_set1_ps(inv[r]);
            for (int c = 0; c < 4; c++)
                _mm512_mask_storeu_ps(o + r * ldo + d + 16 * c, m[c], _mm512_mul_ps(acc[r][c], iv));
        }
    }
}

INLINE void pv_any(int nr, const float *p, size_t ld, int jmax, molmo_dtype vt, const void *v,
                   size_t ldv, int hd, float *o, size_t ldo, const float *inv) {
    switch (nr) {
    case 1: pv_rows(1, p, ld, jmax, vt, v, ldv, hd, o, ldo, inv); break;
    case 2: pv_rows(2, p, ld, jmax, vt, v, ldv, hd, o, ldo, inv); break;
    case 3: pv_rows(3, p, ld, jmax, vt, v, ldv, hd, o, ldo, inv); break;
    default: pv_rows(4, p, ld, jmax, vt, v, ldv, hd, o, ldo, inv); break;
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
        inv[r] = avx512_exp_sub_max(S + r * ld, len[r], 1.0f);
        if (a->bf16) avx512_round_bf16(S + r * ld, (size_t)len[r]);
    }
    for (int r0 = 0; r0 < i1 - i0; r0 += 4) {
        const int nr = i1 - i0 - r0 < 4 ? i1 - i0 - r0 : 4;
        int jmax = 0;
        for (int r = r0; r < r0 + nr; r++) jmax = len[r] > jmax ? len[r] : jmax;
        for (int r = r0; r < r0 + nr; r++)
            for (int j = len[r]; j < jmax; j++) S[r * ld + (size_t)j] = 0.0f;
        float *o = a->out + (size_t)(i0 + r0) * (size_t)a->ldo + (size_t)h * (size_t)hd;
        pv_any(nr, S + r0 * ld, ld, jmax, kt, v, (size_t)a->ldv, hd, o, (size_t)a->ldo, inv + r0);
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
    const __m512 sv = _mm512_set1_ps(s);
    for (int d = 0; d < n; d += 16) {
        const __mmask16 m = avx512_tail(n - d);
        _mm512_mask_storeu_ps(o + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + d), sv));
    }
}

/* S on the AMX-BF16 tiles for f32 activations where the CPU has them (and they are allowed):
 * not for bf16 activations, which the AMX kernel above takes whole where it can. */
static size_t split_k_bytes(const molmo_attn_args *a) {
    return !a->bf16 && molmo_kernels_amx_bf16() ? molmo_k_attn_split_k_bytes(a) : 0;
}

static const molmo_x86_attn_isa ISA = {
    molmo_k_gemm_f32_avx512, molmo_k_gemm_packed_floats_avx512, molmo_k_gemm_pack_avx512,
    molmo_k_gemm_packed_f32_avx512, avx512_exp_sub_max, avx512_round_bf16, scale_row,
    split_k_bytes, molmo_k_attn_split_k, molmo_k_attn_scores_split};

void molmo_k_attention_f32_avx512(const molmo_attn_args *a, int it0, int it1, float *scratch,
                               float *ws, size_t ws_floats) {
    if (a->n_q < GEMM_MIN_Q) {
        for (int it = it0; it < it1; it++) {
            int h, i0, i1;
            molmo_attn_item(a, it, &h, &i0, &i1);
            item_dot(a, h, i0, i1, scratch);
        }
    } else if (!(a->bf16 && molmo_kernels_amx_bf16() &&
                 molmo_k_attention_bf16_amx(a, it0, it1, scratch, ws, ws_floats))) {
        molmo_x86_attn_gemm_items(&ISA, a, it0, it1, scratch, ws, ws_floats);
    }
}

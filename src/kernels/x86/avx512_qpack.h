/* avx512_qpack.h — the parts of the AVX-512 Q8_0 / Q4_0 matmul shared by its VNNI kernel
 * (avx512_quant.c) and its AMX kernel (avx512_amx.c): the quantization of one block of 32
 * activations, and the load + register transpose of a block of 16 weight columns. Only
 * AVX-512 F/BW/VL/DQ instructions (no VNNI), so both files can include it under their own
 * target flags. See avx512_quant.c's header for the layouts. */
#ifndef MOLMO_KERNELS_X86_AVX512_QPACK_H
#define MOLMO_KERNELS_X86_AVX512_QPACK_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/x86/avx512_math.h"

#ifndef INLINE
#define INLINE static inline __attribute__((always_inline))
#endif
/* ------------------------------------------------------------------- activation quantization */

/* One block of 32 activations to int8 q[32] with molmo_quantize_act_block's operations;
 * returns the scale dx and stores sum(q) in *sum. */
INLINE float quantize_block32(const float *x, uint8_t *q, int32_t *sum) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512i a = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(v0), absmask),
                                       _mm512_and_si512(_mm512_castps_si512(v1), absmask));
    const uint32_t amax_bits = (uint32_t)_mm512_reduce_max_epu32(a);
    float amax;
    memcpy(&amax, &amax_bits, 4);
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    *sum = 0;
    if (amax_bits < 0x7f800000u && id > 0.0f && id <= 3.40282347e38f) {
        const __m512 iv = _mm512_set1_ps(id);
        const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, iv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, iv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
        *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    } else {
        memset(q, 0, 32);
    }
    return d;
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
    avx512_load_cols32x16(w + 2, ldw, nc, r);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int g = 0; g < 8; g++) r[g] = _mm512_xor_si512(r[g], flip);
}

/* As load16_q8_0 for Q4_0 (the nibbles 0..15 themselves): the 16 packed bytes of each column,
 * transposed into 4 vectors of dwords, then low nibbles give values 0-15 (vectors 0-3) and
 * high nibbles values 16-31 (vectors 4-7); splitting after the transpose halves the shuffles. */
INLINE void load16_q4_0(const uint8_t *w, size_t ldw, int nc, __m512i r[8]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i d[4];
    avx512_load_cols16x16(w + 2, ldw, nc, d);
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

/* Block b of the X16 group g (quant.h; type t, nb blocks a row) as load16 makes it from the
 * group's 16 rows: the same 8 vectors, loaded as they lie (Q8_0's already unsigned). */
INLINE void load16_x16(int q8, const uint8_t *g, int nb, int b, __m512i r[8]) {
    if (q8) {
        const uint8_t *v = g + 32 * (size_t)nb + 512 * (size_t)b;
        for (int k = 0; k < 8; k++) r[k] = _mm512_loadu_si512(v + 64 * k);
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const uint8_t *v = g + 32 * (size_t)nb + 256 * (size_t)b;
    for (int k = 0; k < 4; k++) {
        const __m512i d = _mm512_loadu_si512(v + 64 * k);
        r[k] = _mm512_and_si512(d, m4);
        r[4 + k] = _mm512_and_si512(_mm512_srli_epi16(d, 4), m4);
    }
}

/* The 16 scales of block b of the X16 group g as f32. */
INLINE __m512 load_scales16_x16(const uint8_t *g, int b) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + 32 * (size_t)b)));
}

/* For the GEMM packers: block kb of the 16 columns j0 .. j0+15 of W (nb blocks a row, row
 * stride ldw; Q8_0, Q4_0 or their X16 layouts with j0 a multiple of 16) as load16 makes it,
 * and their scales; columns >= nc are zero (nc <= 0: all). */
INLINE void load_cols16_block(molmo_dtype wt, const uint8_t *w, size_t ldw, int nb, int j0, int nc,
                              int kb, __m512i r[8], __m512 *scales) {
    const int q8 = molmo_dtype_stored(wt) == MOLMO_DTYPE_Q8_0;
    if (nc <= 0) {
        for (int g = 0; g < 8; g++) r[g] = _mm512_setzero_si512();
        *scales = _mm512_setzero_ps();
    } else if (molmo_dtype_is_x16(wt)) { /* the whole group lies there: mask the scales */
        const uint8_t *grp = molmo_x16_group(w, wt, nb, j0);
        load16_x16(q8, grp, nb, kb, r);
        *scales = _mm512_maskz_mov_ps(avx512_tail(nc), load_scales16_x16(grp, kb));
    } else {
        const int n16 = nc < 16 ? nc : 16;
        const uint8_t *src = w + (size_t)j0 * ldw + (size_t)kb * (q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES);
        if (n16 == 16) /* the common case, without the per-column tests */
            load16(q8, src, ldw, 16, r);
        else
            load16(q8, src, ldw, n16, r);
        *scales = load_scales16(src, ldw, n16);
    }
}

#endif

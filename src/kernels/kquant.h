/* kquant.h — the ggml "K-quant" super-block formats Q4_K and Q6_K (bit-compatible with
 * ggml-common.h's block_q4_K / block_q6_K, ggml type ids 12 and 14), their plain-C quantizers
 * and exact dequantizers, and the int8 quantization of activations that the K matmul kernels
 * use. A row of n values (n a multiple of 256) is n/256 blocks with no padding; fp16 fields are
 * IEEE binary16, little-endian. Value v (0..255) of a block:
 *
 *   Q4_K, 144 bytes: d fp16 | dmin fp16 | scales[12] | qs[128]
 *     sub-block j = v/32 has a 6-bit scale sc_j and a 6-bit min m_j packed in scales[12]
 *     (molmo_q4_k_scale_min, ggml's get_scale_min_k4); its 4-bit q is a nibble of
 *     qs[32*(v/64) + v%32], the low one when v%64 < 32, the high one otherwise;
 *     value = (d*sc_j)*q - (dmin*m_j)  (each product exact in f32, one rounding)
 *   Q6_K, 210 bytes: ql[128] | qh[64] | int8 scales[16] | d fp16
 *     with h = v/128, r = v%128, s = r/32, l = r%32: the low 4 bits of q are a nibble of
 *     ql[64h + 32*(s&1) + l] (the low one for s < 2), the high 2 bits are bits 2s..2s+1 of
 *     qh[32h + l]; value = d * scales[v/16] * (q - 32)  (exact in f32)
 *
 * Both dequantized forms are exactly ggml's dequantize_row_q4_K / dequantize_row_q6_K. */
#ifndef MOLMO_KERNELS_KQUANT_H
#define MOLMO_KERNELS_KQUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/fp16.h"
#include "kernels/kernels.h"
#include "molmo.h"

#define MOLMO_QK_K 256        /* values per Q4_K / Q6_K super-block */
#define MOLMO_Q4_K_BYTES 144  /* sizeof(block_q4_K) in ggml */
#define MOLMO_Q6_K_BYTES 210  /* sizeof(block_q6_K) in ggml */

/* 1 for Q4_K and Q6_K (256-value super-blocks), 0 otherwise. Not molmo_dtype_is_block, which
 * means "32-value blocks" (Q8_0, Q4_0) to its callers. */
static inline int molmo_dtype_is_kquant(molmo_dtype t) {
    return t == MOLMO_DTYPE_Q4_K || t == MOLMO_DTYPE_Q6_K;
}

/* Bytes of one super-block of t (a K-quant type). */
static inline size_t molmo_kquant_block_bytes(molmo_dtype t) {
    return t == MOLMO_DTYPE_Q4_K ? MOLMO_Q4_K_BYTES : MOLMO_Q6_K_BYTES;
}

/* The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes: j < 4 in the low 6
 * bits of bytes j and j+4; j >= 4 in the nibbles of byte j+4 plus the top 2 bits of bytes j-4
 * (scale) and j (min). */
static inline void molmo_q4_k_scale_min(const uint8_t *scales, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
        *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/* Value v (0..255) of one Q4_K block. */
static inline float molmo_q4_k_value(const uint8_t *blk, int v) {
    uint16_t dh, mh;
    memcpy(&dh, blk, 2);
    memcpy(&mh, blk + 2, 2);
    int sc, m;
    molmo_q4_k_scale_min(blk + 4, v / 32, &sc, &m);
    const uint8_t byte = blk[16 + 32 * (v / 64) + v % 32];
    const int q = v % 64 < 32 ? byte & 15 : byte >> 4;
    const float d1 = molmo_f16_to_f32(dh) * (float)sc;
    const float m1 = molmo_f16_to_f32(mh) * (float)m;
    const float dq = d1 * (float)q; /* exact: an fp16 times at most 10 bits */
    return dq - m1;
}

/* Value v (0..255) of one Q6_K block. */
static inline float molmo_q6_k_value(const uint8_t *blk, int v) {
    const int h = v / 128, r = v % 128, s = r / 32, l = r % 32;
    const uint8_t lo = blk[64 * h + 32 * (s & 1) + l];
    const int q = ((s < 2 ? lo & 15 : lo >> 4) | (((blk[128 + 32 * h + l] >> (2 * s)) & 3) << 4)) - 32;
    uint16_t dh;
    memcpy(&dh, blk + 208, 2);
    const float ds = molmo_f16_to_f32(dh) * (float)(int8_t)blk[192 + v / 16];
    return ds * (float)q; /* exact: an fp16 times at most 7 + 6 bits */
}

/* Quantizes x[0..n) (n a positive multiple of 256) into n/256 blocks of t (Q4_K or Q6_K) at out.
 * The scale search is ggml's idea (quantize_row_q4_K_ref / quantize_row_q6_K_ref), written
 * anew: Q4_K fits each 32-value sub-block with x ~ s*L - m, L in 0..15, trying 21 trial scales
 * and keeping the weighted least-squares fit of least weighted error (weights rms + |x|); Q6_K
 * fits each 16-value sub-block with x ~ s*L, L in -32..31, trying 19 trial scales and keeping
 * the one of least x^2-weighted error; the sub-block scales (and mins) are then quantized to
 * 6 (8) bits against an fp16 super-block scale, and every value is re-rounded against the
 * stored scales. Round trip (tests/unit/test_kernels_kquant.c): relative RMS error 0.055
 * (uniform) / 0.071 (Gaussian) for Q4_K, 0.013 / 0.018 for Q6_K; every value within 1 step of
 * its sub-block plus the rounding of the 6-bit (8-bit) sub-block scales (docs/kernels.md). A
 * block whose values are all below ~3e-5 (Q4_K) or ~1.2e-4 (Q6_K) underflows the fp16 block
 * scale and becomes zero, as in ggml. Speed: ~20 M values/s per core (vectorized searches).
 * Errors (MOLMO_ERR_INVALID_ARG, nothing useful written): t not a K type, n not a positive
 * multiple of 256, a value that is not finite, or a value beyond 2^21 = 2097152 in magnitude
 * (the super-block scales must fit fp16 with a margin). The message names the value or block. */
molmo_status molmo_kquantize_row(molmo_dtype t, const float *x, void *out, int64_t n,
                                 molmo_error *err);

/* out[0..n) = the n values of the blocks at in (t = Q4_K or Q6_K, n a multiple of 256), exactly
 * ggml's dequantized values. */
void molmo_kdequantize_row(molmo_dtype t, const void *in, float *out, int64_t n);

/* Activations of the K matmul kernels (ggml's q8_K idea): one block of 256 values as
 *   amax = max |x[k]| (compared as bit patterns, so NaN counts as the largest),
 *   d = amax / 127,  id = 1 / d,  q[k] = round_half_even(x[k] * id),
 * with q = 0 when amax is not finite (d is then inf or NaN and every output the block touches
 * becomes NaN) or when id is not finite (the block contributes exactly 0), as
 * molmo_quantize_act_block does per 32 values. bsum[j] = sum of q[16j .. 16j+15]. Returns d.
 * Every fast kernel reproduces this bit for bit. */
float molmo_quantize_act_kblock(const float *x, int8_t q[MOLMO_QK_K], int32_t bsum[16]);

/* The specification of the fast K matmul kernels (ref/ref_kquant.c): y[m0:m1, n0:n1] for
 * wt = Q4_K or Q6_K, K a multiple of 256. Written out there. */
void molmo_k_matmul_kdot_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1);

#endif

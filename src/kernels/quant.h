/* quant.h — the ggml block formats Q8_0 and Q4_0 (bit-compatible with ggml-common.h, so a GGUF
 * file written with them is readable by ggml's tools), their sizes, the plain-C quantizers and
 * dequantizers, and the int8 quantization of activations that the quantized matmul kernels
 * use. Byte layout of one block of 32 consecutive values of a row (little-endian):
 *
 *   Q8_0, 34 bytes: d (IEEE fp16) | qs[32] int8           value j = qs[j] * d
 *   Q4_0, 18 bytes: d (IEEE fp16) | qs[16] two nibbles    value j = ((qs[j] & 15) - 8) * d,
 *                                                          value j+16 = ((qs[j] >> 4) - 8) * d
 *
 * Blocks follow each other with no padding; a row of n values is n/32 blocks (n must be a
 * multiple of 32). The dequantized value is exact in f32 (an integer of at most 8 bits times an
 * fp16), so ref kernels and fast kernels agree bit for bit on it. */
#ifndef MOLMO_KERNELS_QUANT_H
#define MOLMO_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/fp16.h"
#include "molmo.h"

#define MOLMO_QK 32          /* values per Q8_0 / Q4_0 block */
#define MOLMO_Q8_0_BYTES 34  /* sizeof(block_q8_0) in ggml */
#define MOLMO_Q4_0_BYTES 18  /* sizeof(block_q4_0) in ggml */

/* Q8_0 and Q4_0 interleaved by 16 rows ("repacked"): in-memory layouts of a Q8_0 / Q4_0
 * matrix that the SIMD kernels (AVX-512, AVX2) read without a register transpose or a gather
 * (model/repack.c lays matrices out so with --no-mmap, where kernels.h's molmo_kernels_x16
 * says the table reads them). Never in a file, never in the public API; not values of molmo_dtype's list
 * (so no switch over it names them). Rows go by groups of MOLMO_X16_ROWS (N a multiple of 16);
 * group g, rows 16g .. 16g+15, fills the same 16 * nb * B bytes those rows did (nb = K / 32
 * blocks a row, B = 34 or 18 bytes a block), so the matrix keeps its size and every group
 * starts where its first row did:
 *   scales: nb x 16 fp16, block b of row 16g + c at            32 b + 2 c
 *   values: nb x V bytes, qs[4t .. 4t+3] of that block at      32 nb + V b + 64 t + 4 c
 * with V = 512 (Q8_0: t = 0..7, each byte stored + 128, i.e. ^ 0x80, the unsigned operand of
 * vpdpbusd) or 256 (Q4_0: t = 0..3, the nibble bytes as stored). That is, per block the
 * vectors (lane c = row, 4 consecutive bytes of qs) the kernels' transpose made from 16 rows,
 * and the scales of a group's blocks side by side. The values are the rows', so every product
 * gives the same bits as on the rows they came from. */
#define MOLMO_DTYPE_Q4_0_X16 ((molmo_dtype)32)
#define MOLMO_DTYPE_Q8_0_X16 ((molmo_dtype)33)
#define MOLMO_X16_ROWS 16

/* 1 for Q8_0_X16 and Q4_0_X16. */
static inline int molmo_dtype_is_x16(molmo_dtype t) {
    return t == MOLMO_DTYPE_Q4_0_X16 || t == MOLMO_DTYPE_Q8_0_X16;
}

/* The type the bytes of t were stored as: Q4_0 / Q8_0 for their X16 layouts, t otherwise. */
static inline molmo_dtype molmo_dtype_stored(molmo_dtype t) {
    return t == MOLMO_DTYPE_Q4_0_X16 ? MOLMO_DTYPE_Q4_0
           : t == MOLMO_DTYPE_Q8_0_X16 ? MOLMO_DTYPE_Q8_0
                                        : t;
}

/* 1 for the block types (Q8_0, Q4_0, and their X16 layouts), 0 otherwise. */
static inline int molmo_dtype_is_block(molmo_dtype t) {
    const molmo_dtype s = molmo_dtype_stored(t);
    return s == MOLMO_DTYPE_Q8_0 || s == MOLMO_DTYPE_Q4_0;
}

/* Values per block: 32 for Q8_0/Q4_0, 256 for Q4_K/Q6_K (kquant.h), 1 for F32/F16/BF16/I32,
 * 0 for anything else. */
int molmo_dtype_block_size(molmo_dtype t);

/* Bytes of n consecutive values of type t. n must be >= 0 and, for block types, a multiple
 * of the block size; returns 0 when it is not, for an unknown dtype, or when the size
 * overflows size_t. */
size_t molmo_dtype_row_bytes(molmo_dtype t, int64_t n);

/* f32 -> IEEE fp16, round to nearest even, as F16C's vcvtps2ph and ggml's GGML_FP32_TO_FP16:
 * subnormal results are kept, overflow gives +-inf, NaN stays NaN (quiet). */
uint16_t molmo_f32_to_f16(float f);

/* Value j (0..31) of one block. */
static inline float molmo_q8_0_value(const uint8_t *blk, int j) {
    uint16_t d;
    memcpy(&d, blk, 2);
    return (float)(int8_t)blk[2 + j] * molmo_f16_to_f32(d);
}
static inline float molmo_q4_0_value(const uint8_t *blk, int j) {
    uint16_t d;
    memcpy(&d, blk, 2);
    const int q = j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4;
    return (float)(q - 8) * molmo_f16_to_f32(d);
}

/* Bytes of one block of values of an X16 group: 512 (Q8_0_X16) or 256 (Q4_0_X16). */
static inline size_t molmo_x16_value_bytes(molmo_dtype t) {
    return t == MOLMO_DTYPE_Q8_0_X16 ? 512 : 256;
}

/* Group of 16 rows holding row j of an X16 matrix (type t) with nb blocks a row. */
static inline const uint8_t *molmo_x16_group(const void *w, molmo_dtype t, int nb, int64_t j) {
    const size_t bb = t == MOLMO_DTYPE_Q8_0_X16 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    return (const uint8_t *)w + (size_t)(j / MOLMO_X16_ROWS) * MOLMO_X16_ROWS * (size_t)nb * bb;
}

/* Block b of row j of an X16 matrix (type t, nb blocks a row) as the bytes of the Q8_0 (34) or
 * Q4_0 (18) block it was. */
static inline void molmo_x16_block(const void *w, molmo_dtype t, int nb, int64_t j, int b,
                                   uint8_t *out) {
    const uint8_t *g = molmo_x16_group(w, t, nb, j);
    const size_t c = (size_t)(j % MOLMO_X16_ROWS), vb = molmo_x16_value_bytes(t);
    memcpy(out, g + 32 * (size_t)b + 2 * c, 2);
    for (size_t k = 0; k < vb / 64; k++)
        memcpy(out + 2 + 4 * k, g + 32 * (size_t)nb + vb * (size_t)b + 64 * k + 4 * c, 4);
    if (t == MOLMO_DTYPE_Q8_0_X16)
        for (int k = 0; k < MOLMO_QK; k++) out[2 + k] ^= 0x80;
}

/* Rows [0, n_rows) of the Q8_0 or Q4_0 (t) matrix at w, K values a row (n_rows a multiple of
 * 16, K of 32), into its X16 layout in place, one group at a time through tmp (16 rows' bytes:
 * 16 * molmo_dtype_row_bytes(t, K)). Groups are independent: threads may take disjoint ranges
 * of rows. molmo_x16_unpack undoes it. */
void molmo_x16_pack(molmo_dtype t, void *w, int64_t n_rows, int64_t K, void *tmp);
void molmo_x16_unpack(molmo_dtype t, void *w, int64_t n_rows, int64_t K, void *tmp);

/* Quantizes x[0..n) into n/32 blocks of type t (Q8_0 or Q4_0) at out, with exactly the rounding
 * of ggml's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref: f32 scale
 * amax/127 resp. max/-8, values scaled by the f32 reciprocal, roundf resp. truncation of
 * x*id + 8.5 clamped to 15, scale stored as fp16 RNE), so files written here match ggml's.
 * Errors (MOLMO_ERR_INVALID_ARG, nothing useful written): t not a block type, n not a positive
 * multiple of 32, a value that is not finite, or a block whose scale overflows fp16 (|x| beyond
 * ~8.3e6 for Q8_0, ~5.2e5 for Q4_0). The message names the value's index.
 * Q4_K / Q6_K go to molmo_kquantize_row (kquant.h: n a multiple of 256, its own limits). */
molmo_status molmo_quantize_row(molmo_dtype t, const float *x, void *out, int64_t n,
                                molmo_error *err);

/* out[0..n) = the n values of the blocks at in (t = Q8_0 or Q4_0, n a multiple of 32; or Q4_K /
 * Q6_K, n a multiple of 256, through molmo_kdequantize_row), exact. */
void molmo_dequantize_row(molmo_dtype t, const void *in, float *out, int64_t n);

/* The activation side of the quantized matmul kernels (ggml's Q8_0 activation quantization,
 * with the scale kept in f32 and round-half-even, which the SIMD kernels do in one
 * instruction): for one block of 32 values,
 *   amax = max |x[j]| (compared as bit patterns, so NaN counts as the largest),
 *   d = amax / 127,  id = 1 / d,  q[j] = round_half_even(x[j] * id),
 * except that q = 0 when amax is not finite (d is then inf or NaN, so every output the block
 * touches becomes NaN, as it would in f32) or when id is not finite (d = 0 or subnormal: the
 * block contributes exactly 0). Returns d; *sum = sum of q[j]. Every fast kernel reproduces
 * this bit for bit. */
float molmo_quantize_act_block(const float *x, int8_t q[MOLMO_QK], int32_t *sum);

#endif

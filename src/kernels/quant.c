/* quant.c — sizes of every dtype, f32 -> fp16, and the plain-C quantizers of the ggml block
 * formats (quant.h). The weight quantizers follow ggml-quants.c's quantize_row_q8_0_ref and
 * quantize_row_q4_0_ref operation for operation (same f32 scale, same reciprocal, same
 * rounding), so a file written by `molmo convert` holds the bytes ggml would write for the same
 * f32 tensor. Each arithmetic step is its own statement: with -std=c11 GCC never contracts, and
 * clang only contracts within one expression, so no fused multiply-add changes a rounding. */
#include "kernels/quant.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>

#include "base/error.h"
#include "kernels/kquant.h"

int molmo_dtype_block_size(molmo_dtype t) {
    switch (t) {
    case MOLMO_DTYPE_F32:
    case MOLMO_DTYPE_F16:
    case MOLMO_DTYPE_BF16:
    case MOLMO_DTYPE_I32: return 1;
    case MOLMO_DTYPE_Q8_0:
    case MOLMO_DTYPE_Q4_0: return MOLMO_QK;
    case MOLMO_DTYPE_Q4_K:
    case MOLMO_DTYPE_Q6_K: return MOLMO_QK_K;
    default: return molmo_dtype_is_x16(t) ? MOLMO_QK : 0;
    }
}

size_t molmo_dtype_row_bytes(molmo_dtype t, int64_t n) {
    size_t unit; /* bytes per block */
    switch (t) {
    case MOLMO_DTYPE_F32:
    case MOLMO_DTYPE_I32: unit = 4; break;
    case MOLMO_DTYPE_F16:
    case MOLMO_DTYPE_BF16: unit = 2; break;
    case MOLMO_DTYPE_Q8_0: unit = MOLMO_Q8_0_BYTES; break;
    case MOLMO_DTYPE_Q4_0: unit = MOLMO_Q4_0_BYTES; break;
    case MOLMO_DTYPE_Q4_K: unit = MOLMO_Q4_K_BYTES; break;
    case MOLMO_DTYPE_Q6_K: unit = MOLMO_Q6_K_BYTES; break;
    default: /* the X16 layouts: the same bytes, by groups of 16 rows (quant.h) */
        if (!molmo_dtype_is_x16(t)) return 0;
        unit = t == MOLMO_DTYPE_Q8_0_X16 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    }
    const int bs = molmo_dtype_block_size(t);
    if (n < 0 || n % bs != 0) return 0;
    const uint64_t blocks = (uint64_t)(n / bs);
    if (blocks > SIZE_MAX / unit) return 0;
    return (size_t)blocks * unit;
}

/* One group of 16 rows (nb blocks each, of type t: Q8_0 or Q4_0) between the row layout at rows
 * and the X16 layout at g (quant.h); to_x16 says which way. Words of 4 bytes, the layout's
 * unit (a byte loop ran the 7.6 GB of MolmoE-1B q8_0 in 3 s). */
static void x16_group(molmo_dtype t, uint8_t *rows, uint8_t *g, size_t nb, int to_x16) {
    const int q8 = t == MOLMO_DTYPE_Q8_0;
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES, vb = q8 ? 512 : 256;
    const uint32_t flip = q8 ? 0x80808080u : 0; /* Q8_0 values stored unsigned */
    for (size_t c = 0; c < MOLMO_X16_ROWS; c++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = rows + (c * nb + b) * bb;
            uint8_t *sc = g + 32 * b + 2 * c, *qs = g + 32 * nb + vb * b + 4 * c;
            if (to_x16)
                memcpy(sc, blk, 2);
            else
                memcpy(blk, sc, 2);
            for (size_t k = 0; k < vb / 64; k++) {
                uint8_t *x = qs + 64 * k, *r = blk + 2 + 4 * k;
                uint32_t v;
                memcpy(&v, to_x16 ? r : x, 4);
                v ^= flip;
                memcpy(to_x16 ? x : r, &v, 4);
            }
        }
}

static void x16_convert(molmo_dtype t, void *w, int64_t n_rows, int64_t K, void *tmp, int to_x16) {
    const size_t nb = (size_t)K / MOLMO_QK;
    const size_t group = MOLMO_X16_ROWS * molmo_dtype_row_bytes(t, K);
    for (int64_t r = 0; r + MOLMO_X16_ROWS <= n_rows; r += MOLMO_X16_ROWS) {
        uint8_t *g = (uint8_t *)w + (size_t)(r / MOLMO_X16_ROWS) * group;
        memcpy(tmp, g, group);
        if (to_x16)
            x16_group(t, tmp, g, nb, 1);
        else
            x16_group(t, g, tmp, nb, 0);
    }
}

void molmo_x16_pack(molmo_dtype t, void *w, int64_t n_rows, int64_t K, void *tmp) {
    x16_convert(t, w, n_rows, K, tmp, 1);
}

void molmo_x16_unpack(molmo_dtype t, void *w, int64_t n_rows, int64_t K, void *tmp) {
    x16_convert(t, w, n_rows, K, tmp, 0);
}

uint16_t molmo_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quieted, top payload bits kept (as vcvtps2ph) */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    uint32_t h, rest, half;
    if (a >= 0x38800000u) { /* normal half: rebias the exponent (127 -> 15), drop 13 bits */
        h = (a - 0x38000000u) >> 13;
        rest = a & 0x1fffu;
        half = 0x1000u;
    } else { /* subnormal half (units of 2^-24) or zero */
        const int e = (int)(a >> 23);
        const int shift = 126 - e; /* value = m * 2^(e-150) = (m >> shift) * 2^-24 */
        if (shift > 24) return sign; /* below 2^-25: rounds to zero */
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        h = m >> shift;
        rest = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
    }
    if (rest > half || (rest == half && (h & 1u))) h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

/* One Q8_0 block, as quantize_row_q8_0_ref. Returns 0 when the scale overflows fp16. */
static int quantize_q8_0_block(const float *x, uint8_t *blk) {
    float amax = 0.0f;
    for (int j = 0; j < MOLMO_QK; j++) {
        const float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = molmo_f32_to_f16(d);
    if ((dh & 0x7fffu) >= 0x7c00u) return 0;
    memcpy(blk, &dh, 2);
    for (int j = 0; j < MOLMO_QK; j++) {
        const float x0 = x[j] * id;
        blk[2 + j] = (uint8_t)(int8_t)roundf(x0);
    }
    return 1;
}

/* One Q4_0 block, as quantize_row_q4_0_ref: the scale comes from the signed value of largest
 * magnitude (the first one on ties), so that value maps exactly to nibble 0. */
static int quantize_q4_0_block(const float *x, uint8_t *blk) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < MOLMO_QK; j++) {
        const float v = fabsf(x[j]);
        if (amax < v) {
            amax = v;
            max = x[j];
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = molmo_f32_to_f16(d);
    if ((dh & 0x7fffu) >= 0x7c00u) return 0;
    memcpy(blk, &dh, 2);
    for (int j = 0; j < MOLMO_QK / 2; j++) {
        const float x0 = x[j] * id;
        const float x1 = x[MOLMO_QK / 2 + j] * id;
        const float t0 = x0 + 8.5f;
        const float t1 = x1 + 8.5f;
        int q0 = (int)t0; /* t in [0.5, 16.5]: (int8_t) in ggml truncates the same way */
        int q1 = (int)t1;
        q0 = q0 < 15 ? q0 : 15;
        q1 = q1 < 15 ? q1 : 15;
        blk[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
    return 1;
}

molmo_status molmo_quantize_row(molmo_dtype t, const float *x, void *out, int64_t n,
                                molmo_error *err) {
    if (molmo_dtype_is_kquant(t)) return molmo_kquantize_row(t, x, out, n, err);
    if (!molmo_dtype_is_block(t))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "quantize: %s is not a block type",
                         molmo_dtype_name(t));
    if (n <= 0 || n % MOLMO_QK != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "quantize %s: a row of %" PRId64 " values is not a positive multiple of %d",
                         molmo_dtype_name(t), n, MOLMO_QK);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                             "quantize %s: value %" PRId64 " is %g (not finite)",
                             molmo_dtype_name(t), i, (double)x[i]);
    const size_t bb = t == MOLMO_DTYPE_Q8_0 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    uint8_t *o = out;
    for (int64_t b = 0; b < n / MOLMO_QK; b++) {
        const float *xb = x + b * MOLMO_QK;
        uint8_t *blk = o + (size_t)b * bb;
        const int ok = t == MOLMO_DTYPE_Q8_0 ? quantize_q8_0_block(xb, blk)
                                             : quantize_q4_0_block(xb, blk);
        if (!ok)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                             "quantize %s: the block of values %" PRId64 "..%" PRId64
                             " needs a scale beyond the fp16 range",
                             molmo_dtype_name(t), b * MOLMO_QK, b * MOLMO_QK + MOLMO_QK - 1);
    }
    return MOLMO_OK;
}

void molmo_dequantize_row(molmo_dtype t, const void *in, float *out, int64_t n) {
    if (molmo_dtype_is_kquant(t)) {
        molmo_kdequantize_row(t, in, out, n);
        return;
    }
    const uint8_t *p = in;
    const int q8 = t == MOLMO_DTYPE_Q8_0;
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    for (int64_t b = 0; b < n / MOLMO_QK; b++) {
        const uint8_t *blk = p + (size_t)b * bb;
        for (int j = 0; j < MOLMO_QK; j++)
            out[b * MOLMO_QK + j] = q8 ? molmo_q8_0_value(blk, j) : molmo_q4_0_value(blk, j);
    }
}

/* Round half to even of |v| < 2^23, whatever the floating-point environment's mode. */
static int round_half_even(float v) {
    const int t = (int)v;         /* toward zero */
    const float f = v - (float)t; /* the fraction of v: exact */
    if (f > 0.5f || (f == 0.5f && (t & 1))) return t + 1;
    if (f < -0.5f || (f == -0.5f && (t & 1))) return t - 1;
    return t;
}

float molmo_quantize_act_block(const float *x, int8_t q[MOLMO_QK], int32_t *sum) {
    uint32_t amax_bits = 0; /* |x| as bit patterns: the order of the values, NaN above inf */
    for (int j = 0; j < MOLMO_QK; j++) {
        uint32_t u;
        memcpy(&u, &x[j], sizeof u);
        u &= 0x7fffffffu;
        amax_bits = u > amax_bits ? u : amax_bits;
    }
    float amax;
    memcpy(&amax, &amax_bits, sizeof amax);
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    const int ok = amax_bits < 0x7f800000u && id > 0.0f && id <= FLT_MAX;
    int32_t s = 0;
    for (int j = 0; j < MOLMO_QK; j++) {
        const int v = ok ? round_half_even(x[j] * id) : 0;
        q[j] = (int8_t)v;
        s += v;
    }
    *sum = s;
    return d;
}

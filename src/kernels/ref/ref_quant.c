/* ref_quant.c — the specification of the fast quantized matmul kernels (x86/avx512_quant.c,
 * x86/avx2_quant.c). They do what ggml's CPU backend does for Q8_0/Q4_0 weights: quantize each
 * block of 32 activations to int8 with its own scale (molmo_quantize_act_block), take the
 * integer dot product with the weight block, and scale it once per block. Written out:
 *
 *   acc = 0
 *   for each block b = 0 .. K/32-1 in order:
 *       dx, xq[32] = quantize_act_block(x[32b .. 32b+31])
 *       isum = sum_k xq[k] * wq[k]                  (exact integer; wq = q or nibble - 8)
 *       acc  = fmaf((float)isum, dx * dw, acc)      (dx * dw rounded, then one fused step)
 *   y = acc + bias
 *
 * The fast kernels reproduce this bit for bit (an int32 holds any block sum: |isum| <=
 * 32*127*128; (float)isum is exact below 2^24), whatever their tiling and thread split. The
 * accuracy reference stays the f32 kernel of ref_matmul.c, which dequantizes W and keeps x.
 * Q8_0_X16 / Q4_0_X16 weights (quant.h) are the same blocks in another order. */
#include <math.h>
#include <stdint.h>

#include "kernels/quant.h"
#include "kernels/ref/ref.h"

/* GCC 12.2 with AVX-VNNI enabled (-march=native here) vectorizes these loops into vpdpbusd
 * with the weight bytes taken as unsigned: wrong sums (found by test_kernels_quant's check of
 * this specification against double precision). The reference must not depend on the
 * vectorizer, so it is off for this function. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VECTORIZE
#endif

/* Integer dot product of one quantized activation block with one weight block. */
NO_VECTORIZE static int32_t block_dot(molmo_dtype wt, const int8_t *xq, const uint8_t *blk) {
    int32_t s = 0;
    if (wt == MOLMO_DTYPE_Q8_0) {
        for (int k = 0; k < MOLMO_QK; k++) s += xq[k] * (int8_t)blk[2 + k];
    } else {
        for (int k = 0; k < MOLMO_QK / 2; k++) {
            s += xq[k] * ((blk[2 + k] & 15) - 8);
            s += xq[k + MOLMO_QK / 2] * ((blk[2 + k] >> 4) - 8);
        }
    }
    return s;
}

void molmo_k_matmul_qdot_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1) {
    const int nb = a->K / MOLMO_QK;
    const molmo_dtype st = molmo_dtype_stored(a->wt); /* the X16 layouts: their blocks' type */
    const size_t bb = st == MOLMO_DTYPE_Q8_0 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const size_t row_bytes = (size_t)nb * bb;
    for (int i = m0; i < m1; i++) {
        const float *x = a->x + (size_t)i * (size_t)a->ldx;
        float *y = a->y + (size_t)i * (size_t)a->ldy; /* holds acc until the bias is added */
        for (int j = n0; j < n1; j++) y[j] = 0.0f;
        for (int b = 0; b < nb; b++) {
            int8_t xq[MOLMO_QK];
            int32_t xsum;
            const float dx = molmo_quantize_act_block(x + (size_t)b * MOLMO_QK, xq, &xsum);
            for (int j = n0; j < n1; j++) {
                const uint8_t *blk = (const uint8_t *)a->w + (size_t)j * row_bytes + (size_t)b * bb;
                uint8_t x16[MOLMO_Q8_0_BYTES]; /* the same block out of an interleaved layout */
                if (st != a->wt) {
                    molmo_x16_block(a->w, a->wt, nb, j, b, x16);
                    blk = x16;
                }
                uint16_t dh;
                memcpy(&dh, blk, 2);
                const float scale = dx * molmo_f16_to_f32(dh);
                y[j] = fmaf((float)block_dot(st, xq, blk), scale, y[j]);
            }
        }
        if (a->bias)
            for (int j = n0; j < n1; j++) y[j] = y[j] + a->bias[j];
    }
}

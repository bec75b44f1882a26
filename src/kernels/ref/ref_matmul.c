/* ref_matmul.c — reference y = x · W^T + b (PyTorch F.linear) and dtype conversion.
 *
 * Specification: for each output element, acc = 0; acc += x[i,k] * w[j,k] for k = 0..K-1 in
 * order, each product and sum rounded to f32; then y = acc + bias[j]. Weights of F16/BF16 are
 * converted exactly to f32 first (base/fp16.h), and the values of Q8_0/Q4_0 (Q4_K/Q6_K) blocks
 * are dequantized exactly (quant.h: an integer times the fp16 scale), so every dtype follows the
 * same arithmetic: this is the accuracy reference of the quantized types too (the fast
 * quantized kernels also quantize x, see ref_quant.c). */
#include <stdint.h>

#include "base/fp16.h"
#include "kernels/kquant.h"
#include "kernels/quant.h"
#include "kernels/ref/ref.h"

/* Element i of w counted row-major over the whole matrix (rows are whole blocks, so element i
 * of a block type sits in block i / 32, of a K-quant type in block i / 256). */
static inline float load_w(const void *w, molmo_dtype wt, size_t i) {
    switch (wt) {
    case MOLMO_DTYPE_F16: return molmo_f16_to_f32(((const uint16_t *)w)[i]);
    case MOLMO_DTYPE_BF16: return molmo_bf16_to_f32(((const uint16_t *)w)[i]);
    case MOLMO_DTYPE_Q8_0:
        return molmo_q8_0_value((const uint8_t *)w + i / MOLMO_QK * MOLMO_Q8_0_BYTES,
                                (int)(i % MOLMO_QK));
    case MOLMO_DTYPE_Q4_0:
        return molmo_q4_0_value((const uint8_t *)w + i / MOLMO_QK * MOLMO_Q4_0_BYTES,
                                (int)(i % MOLMO_QK));
    case MOLMO_DTYPE_Q4_K:
        return molmo_q4_k_value((const uint8_t *)w + i / MOLMO_QK_K * MOLMO_Q4_K_BYTES,
                                (int)(i % MOLMO_QK_K));
    case MOLMO_DTYPE_Q6_K:
        return molmo_q6_k_value((const uint8_t *)w + i / MOLMO_QK_K * MOLMO_Q6_K_BYTES,
                                (int)(i % MOLMO_QK_K));
    default: return ((const float *)w)[i];
    }
}

void molmo_k_matmul_f32_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                            size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    const int K = a->K;
    for (int i = m0; i < m1; i++) {
        const float *x = a->x + (size_t)i * (size_t)a->ldx;
        float *y = a->y + (size_t)i * (size_t)a->ldy;
        for (int j = n0; j < n1; j++) {
            size_t row = (size_t)j * (size_t)K;
            float acc = 0.0f;
            if (molmo_dtype_is_x16(a->wt)) { /* rows are not contiguous: block by block */
                const molmo_dtype st = molmo_dtype_stored(a->wt);
                for (int b = 0; b < K / MOLMO_QK; b++) {
                    uint8_t blk[MOLMO_Q8_0_BYTES];
                    molmo_x16_block(a->w, a->wt, K / MOLMO_QK, j, b, blk);
                    for (int k = 0; k < MOLMO_QK; k++)
                        acc += x[MOLMO_QK * b + k] * load_w(blk, st, (size_t)k);
                }
            } else {
                for (int k = 0; k < K; k++) acc += x[k] * load_w(a->w, a->wt, row + (size_t)k);
            }
            y[j] = a->bias ? acc + a->bias[j] : acc;
        }
    }
}

void molmo_k_to_f32_ref(float *out, const void *w, molmo_dtype wt, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = load_w(w, wt, i);
}

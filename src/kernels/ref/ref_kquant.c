/* ref_kquant.c — the specification of the fast K-quant matmul kernels (x86/avx512_kquant.c,
 * x86/avx2_kquant.c), what ggml's CPU backend does for Q4_K/Q6_K weights: each block of 256
 * activations is quantized to int8 with its own scale (molmo_quantize_act_kblock), the weight
 * sub-block dot products are exact integers, scaled by the integer sub-block scales, and each
 * output takes one (Q6_K) or two (Q4_K) f32 fused multiply-adds per block. Written out:
 *
 *   acc = 0
 *   for each block b = 0 .. K/256-1 in order:
 *       dx, xq[256], bsum[16] = quantize_act_kblock(x[256b .. 256b+255])
 *       Q4_K: isum = sum_j sc_j * sum_{k in sub-block j} q_k * xq_k          (j = 0..7)
 *             imin = sum_j m_j * (bsum[2j] + bsum[2j+1])
 *             acc  = fmaf((float)isum, dx * d, acc)
 *             acc  = fmaf(-(float)imin, dx * dmin, acc)
 *       Q6_K: isum = sum_j sc_j * sum_{k in sub-block j} (q_k - 32) * xq_k   (j = 0..15)
 *             acc  = fmaf((float)isum, dx * d, acc)
 *   y = acc + bias
 *
 * (dx * d is rounded, then one fused step.) The integers are exact in int32: |isum| <= 8 * 63 *
 * 32 * 15 * 127 (Q4_K) and 16 * 128 * 16 * 32 * 127 (Q6_K), both below 2^31; (float)isum rounds
 * to nearest even beyond 2^24, which every implementation does alike. So the fast kernels
 * reproduce this bit for bit whatever their tiling and thread split. The accuracy reference stays
 * the f32 kernel of ref_matmul.c, which dequantizes W and keeps x. */
#include <math.h>
#include <stdint.h>

#include "kernels/kquant.h"
#include "kernels/ref/ref.h"

/* GCC 12.2 with AVX-VNNI enabled (-march=native) vectorizes uint8 x int8 dot loops into
 * vpdpbusd with the wrong signedness (see ref_quant.c); the specification must not depend on
 * the vectorizer. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VECTORIZE
#endif

/* isum and imin of one Q4_K block against one activation block. */
NO_VECTORIZE static void dot_q4_k(const uint8_t *blk, const int8_t *xq, const int32_t *bsum,
                                  int32_t *isum, int32_t *imin) {
    int32_t s = 0, m = 0;
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        molmo_q4_k_scale_min(blk + 4, j, &sc, &mn);
        const uint8_t *qs = blk + 16 + 32 * (j / 2);
        const int shift = 4 * (j % 2); /* even sub-blocks: low nibbles; odd: high */
        int32_t sub = 0;
        for (int l = 0; l < 32; l++) sub += ((qs[l] >> shift) & 15) * xq[32 * j + l];
        s += sc * sub;
        m += mn * (bsum[2 * j] + bsum[2 * j + 1]);
    }
    *isum = s;
    *imin = m;
}

/* isum of one Q6_K block against one activation block. */
NO_VECTORIZE static int32_t dot_q6_k(const uint8_t *blk, const int8_t *xq) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        int32_t sub = 0;
        for (int k = 16 * j; k < 16 * j + 16; k++) {
            const int h = k / 128, r = k % 128, qs = r / 32, l = r % 32;
            const uint8_t lo = blk[64 * h + 32 * (qs & 1) + l];
            const int q = (qs < 2 ? lo & 15 : lo >> 4) | (((blk[128 + 32 * h + l] >> (2 * qs)) & 3) << 4);
            sub += (q - 32) * xq[k];
        }
        s += (int8_t)blk[192 + j] * sub;
    }
    return s;
}

void molmo_k_matmul_kdot_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1) {
    const int nb = a->K / MOLMO_QK_K, q4 = a->wt == MOLMO_DTYPE_Q4_K;
    const size_t bb = molmo_kquant_block_bytes(a->wt);
    const size_t row_bytes = (size_t)nb * bb;
    for (int i = m0; i < m1; i++) {
        const float *x = a->x + (size_t)i * (size_t)a->ldx;
        float *y = a->y + (size_t)i * (size_t)a->ldy; /* holds acc until the bias is added */
        for (int j = n0; j < n1; j++) y[j] = 0.0f;
        for (int b = 0; b < nb; b++) {
            int8_t xq[MOLMO_QK_K];
            int32_t bsum[16];
            const float dx = molmo_quantize_act_kblock(x + (size_t)b * MOLMO_QK_K, xq, bsum);
            for (int j = n0; j < n1; j++) {
                const uint8_t *blk = (const uint8_t *)a->w + (size_t)j * row_bytes + (size_t)b * bb;
                uint16_t dh, mh;
                if (q4) {
                    int32_t isum, imin;
                    dot_q4_k(blk, xq, bsum, &isum, &imin);
                    memcpy(&dh, blk, 2);
                    memcpy(&mh, blk + 2, 2);
                    const float sd = dx * molmo_f16_to_f32(dh), sm = dx * molmo_f16_to_f32(mh);
                    y[j] = fmaf((float)isum, sd, y[j]);
                    y[j] = fmaf(-(float)imin, sm, y[j]);
                } else {
                    memcpy(&dh, blk + 208, 2);
                    const float sd = dx * molmo_f16_to_f32(dh);
                    y[j] = fmaf((float)dot_q6_k(blk, xq), sd, y[j]);
                }
            }
        }
        if (a->bias)
            for (int j = n0; j < n1; j++) y[j] = y[j] + a->bias[j];
    }
}

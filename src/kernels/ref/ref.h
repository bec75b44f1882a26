/* ref.h — the plain-C reference kernels (the specification every fast kernel is tested
 * against). Compiled with -ffp-contract=off: every product and sum is rounded as written. */
#ifndef MOLMO_KERNELS_REF_H
#define MOLMO_KERNELS_REF_H

#include "kernels/kernels.h"

void molmo_k_matmul_f32_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                            size_t ws_floats);
void molmo_k_to_f32_ref(float *out, const void *w, molmo_dtype wt, size_t n);
/* The specification of the fast Q8_0/Q4_0 matmul kernels, which quantize x to int8 blocks
 * (ref_quant.c): y[m0:m1, n0:n1] for wt = Q8_0 or Q4_0, K a multiple of 32. Not in the ref
 * table (whose matmul is the f32 accuracy reference); tests compare fast kernels with it. */
void molmo_k_matmul_qdot_ref(const molmo_matmul_args *a, int m0, int m1, int n0, int n1);
void molmo_k_attention_f32_ref(const molmo_attn_args *a, int it0, int it1, float *scratch,
                               float *ws, size_t ws_floats);

#endif

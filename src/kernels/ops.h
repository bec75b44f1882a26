/* ops.h — the op layer the model code calls (DESIGN.md decision 3): a short list of ops on
 * row-major f32 activations, with weights of any stored dtype. Each op runs the kernel table of
 * the machine (kernels.h: AVX-512, AVX2 or the plain-C reference) and, where it takes a pool,
 * splits its rows/columns over the pool's threads.
 *
 * Conventions for every op:
 *   - shapes in PyTorch order; `ld*` are row strides in elements (>= the row width);
 *   - pointers need no particular alignment; outputs must not overlap inputs unless stated;
 *   - callers check shapes: these are internal functions, arguments are preconditions;
 *   - results do not depend on the pool size (bit-identical for 1 and N threads), because work
 *     is split over output rows/columns only, never over a reduction;
 *   - no op allocates memory or touches global mutable state.
 * Numerics follow PyTorch fp32 (molmo-architecture.md §2.3, §2.4, §3, §10); docs/kernels.md
 * lists the tolerances of the fast kernels against the reference ones. */
#ifndef MOLMO_KERNELS_OPS_H
#define MOLMO_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "molmo.h"

/* y[M,N] (row stride ldy) = x[M,K] (row stride ldx) · W[N,K]^T (+ bias[N] if non-NULL).
 * W is contiguous [N,K] stored as F32, BF16 or F16 and converted exactly to f32 on the fly;
 * products are accumulated in f32 (fused multiply-add in the fast kernels), bias added last.
 * W may also be Q8_0 or Q4_0 (kernels/quant.h; K a multiple of 32, each row K/32 blocks): the
 * reference kernels dequantize it exactly and follow the f32 arithmetic; the fast kernels also
 * quantize each block of 32 values of x to int8 (as ggml does) and take integer dot products,
 * which is the specification molmo_k_matmul_qdot_ref (docs/kernels.md: the tolerance). */
void molmo_op_matmul(molmo_pool *p, float *y, int ldy, const float *x, int ldx, const void *w,
                     molmo_dtype wt, const float *bias, int M, int N, int K);

/* molmo_op_matmul for an x whose every value is a bf16 (molmo_op_round_bf16 made it so): the
 * same product, but a GEMM with BF16 weights may then take its bf16 dot products in one pass
 * (AMX-BF16) instead of splitting x exactly into three bf16 parts. Same values, to f32
 * accuracy, as molmo_op_matmul on the same x. With quantized weights (Q8_0, Q4_0, Q4_K, Q6_K)
 * and M > 4, where molmo_kernels_quant_bf16(), the product is x · bf16(W)^T instead: each
 * weight dequantized and rounded to bf16, f32 sums (the int8 kernels elsewhere). */
void molmo_op_matmul_bf16x(molmo_pool *p, float *y, int ldy, const float *x, int ldx,
                           const void *w, molmo_dtype wt, const float *bias, int M, int N, int K);

/* The rule of bf16 activations for the input of a matmul of M rows with weights wt: 1 when
 * bf16_act is on and the weights are BF16, or quantized in a GEMM (M > MOLMO_GEMV_MAX_M) that
 * the kernels run on bf16 tiles (molmo_kernels_quant_bf16: the weights rounded to bf16, instead
 * of x quantized to int8 per block); else 0 (x kept as it is). Callers that must not see their
 * input rounded (a residual stream) copy it where this is 1. */
int molmo_op_bf16_rule(int bf16_act, molmo_dtype wt, int M);

/* Under that rule, rounds x (M rows of n, stride ld; a temporary the caller lets change) to
 * bf16 in place and returns 1 (take the product with molmo_op_matmul_bf16x); else leaves x and
 * returns 0. */
int molmo_op_bf16_input(molmo_pool *p, int bf16_act, molmo_dtype wt, float *x, int M, size_t n,
                        size_t ld);

/* molmo_op_matmul under that rule: x rounded and molmo_op_matmul_bf16x, or molmo_op_matmul. */
void molmo_op_matmul_act(molmo_pool *p, int bf16_act, float *y, int ldy, float *x, int ldx,
                         const void *w, molmo_dtype wt, const float *bias, int M, int N, int K);

/* Several independent matmuls (each as molmo_op_matmul; they must not write each other's
 * inputs) in one parallel run: the output tiles of all of them are dealt out to the threads
 * together, so many small products (the experts of a MoE layer at decode) cost one wake-up of
 * the pool instead of one each. Each result is bit-identical to molmo_op_matmul's. */
typedef struct molmo_matmul_job {
    float *y;
    int ldy;
    const float *x;
    int ldx;
    const void *w;
    molmo_dtype wt;
    const float *bias;
    int M, N, K;
    int x_bf16; /* as molmo_op_matmul_bf16x */
} molmo_matmul_job;
void molmo_op_matmul_many(molmo_pool *p, const molmo_matmul_job *jobs, int n_jobs);

/* Per row of x[M,N]: y = (x - mean) * rsqrt(var + eps) * w + b, biased variance, statistics in
 * f32 or better. w and b are [N] (b may be NULL). In place allowed (y == x). */
void molmo_op_layernorm(molmo_pool *p, float *y, const float *x, const float *w, const float *b,
                        int M, int N, float eps);

/* Per row of x[M,N]: y = (x * rsqrt(mean(x^2) + eps)) * w, in exactly this order (fact sheet
 * §2.3: normalise in f32, then multiply by the weight). w may be NULL (no weight). In place ok. */
void molmo_op_rmsnorm(molmo_pool *p, float *y, const float *x, const float *w, int M, int N,
                      float eps);

/* In place, M rows of n (row stride ld): x = the f32 value of bf16(x), rounded to nearest even
 * (molmo_f32_to_bf16; NaN stays NaN): what PyTorch's autocast and llama.cpp feed a bf16 matmul. */
void molmo_op_round_bf16(molmo_pool *p, float *x, int M, size_t n, size_t ld);

/* In place, per row of x[M,N]: x = exp(x - max) * (1 / sum exp(x - max)). */
void molmo_op_softmax_rows(float *x, int M, int N);

/* In place: x = x * sigmoid(1.702 x), sigmoid(t) = 1 / (1 + exp(-t)) (CLIP QuickGELU). Long
 * arrays are cut into pieces for the pool's threads (element-wise: same bits). */
void molmo_op_quick_gelu(molmo_pool *p, float *x, size_t n);

/* out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). out may alias gate or up. Threads as
 * quick_gelu. */
void molmo_op_silu_mul(molmo_pool *p, float *out, const float *gate, const float *up, size_t n);

/* The same on M rows of n values each, row i at offset i * ld of out, gate and up. */
void molmo_op_silu_mul_rows(molmo_pool *p, float *out, const float *gate, const float *up,
                            int M, size_t n, size_t ld);

/* y += x (may alias), split over the pool's threads in whole 64-byte lines (the residual
 * adds of the ViT and of prefill). */
void molmo_op_add(molmo_pool *p, float *y, const float *x, size_t n);

/* y += a * x, product rounded before the sum (as PyTorch's y + a*x: no fused multiply-add). */
void molmo_op_scale_add(float *y, const float *x, float a, size_t n);

/* Floats of scratch that molmo_op_attention needs for n_kv keys on a pool of n_threads. */
size_t molmo_op_attention_scratch(int n_kv, int n_threads);

/* Multi-head attention with grouped-query heads: query head h uses kv head
 * h / (n_heads / n_kv_heads) (PyTorch repeat_interleave). n_heads % n_kv_heads == 0.
 * q: [n_q, ldq], head h at columns h*hd .. h*hd+hd-1; k: [n_kv, ldk], v: [n_kv, ldv] with kv
 * head g at columns g*hd..; out: [n_q, ldo], head h at columns h*hd (must not overlap q, k, v).
 * Scores are scale * (q·k) in f32, softmax in f32 (max-subtracted), out = (sum_j p_j v_j) / sum_j p_j.
 * causal: query i sits at absolute position q_pos0 + i and sees keys 0 .. q_pos0 + i (and at
 * most n_kv); non-causal: all n_kv keys. scratch: molmo_op_attention_scratch(n_kv,
 * molmo_pool_size(p)) floats, any alignment. */
void molmo_op_attention(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                        const float *k, int ldk, const float *v, int ldv, int n_q, int n_kv,
                        int n_heads, int n_kv_heads, int hd, float scale, int causal, int q_pos0,
                        float *scratch);
/* molmo_op_attention (no GQA, not causal; molmo_op_attention_ldh has both) with bf16
 * activations: q, k and v hold bf16 values
 * (the caller rounded them, molmo_op_round_bf16) and the softmax weights are rounded to bf16
 * before P·V, as a bf16 SDPA computes; scores, sums and outputs stay f32. On AMX-BF16 CPUs
 * the tiles run it. */
void molmo_op_attention_bf16(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                             const float *k, int ldk, const float *v, int ldv, int n_q, int n_kv,
                             int n_heads, int hd, float scale, float *scratch);

/* The same with K and V of type kv_type (MOLMO_DTYPE_F32, or MOLMO_DTYPE_F16: an f16 KV cache,
 * read as the f32 values it holds) and kv head g at element g*ldh of k (v likewise) instead of
 * g*hd: ldh = hd is molmo_op_attention; ldh = n_ctx*hd with ldk = ldv = hd is a head-major
 * cache, where each head's keys are one contiguous run (the decoder's KV cache). Strides in
 * elements. Same values for the same data. bf16: as molmo_op_attention_bf16 (q, k, v hold
 * bf16 values; the softmax weights are rounded to bf16 before P·V). */
void molmo_op_attention_ldh(molmo_pool *p, float *out, int ldo, const float *q, int ldq,
                            const void *k, int ldk, const void *v, int ldv, molmo_dtype kv_type,
                            size_t ldh, int n_q, int n_kv, int n_heads, int n_kv_heads, int hd,
                            float scale, int causal, int q_pos0, int bf16, float *scratch);

/* RoPE tables, "llama" half-split (fact sheet §2.4), all in f32 as HF computes them:
 * inv_freq[i] = 1 / theta^((2i)/hd), angle[p,i] = p * inv_freq[i], cos/sin of the angle.
 * *cos_out, *sin_out: [n_pos, hd/2], allocated with molmo_malloc, freed by the caller with
 * molmo_free. hd must be even and > 0, n_pos > 0: MOLMO_ERR_INVALID_ARG otherwise. */
molmo_status molmo_rope_table(float **cos_out, float **sin_out, int n_pos, int hd, float theta,
                              molmo_error *err);

/* In place on x[n_tok, ldx] holding n_heads heads of hd at columns h*hd: for token t with
 * position pos[t] (0 <= pos[t] < n_pos of the table) and i < hd/2:
 *   x'[i]        = x[i] * cos[i] - x[i + hd/2] * sin[i]
 *   x'[i + hd/2] = x[i + hd/2] * cos[i] + x[i] * sin[i]
 * (t' = t*cos + rotate_half(t)*sin, products rounded separately: bit-exact with PyTorch). */
void molmo_op_rope(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                   const float *cos_t, const float *sin_t);

/* Embedding lookup: out[i, :] = W[ids[i], :] as f32, W contiguous [*, K] of dtype wt (any
 * dtype; K a multiple of 32 for block types). ids must be valid rows (the caller checks them
 * against the table size). */
void molmo_op_gather_rows(float *out, const void *w, molmo_dtype wt, int K, const int *ids, int n);

/* out[0..n) = w[0..n) converted exactly to f32 (block types: n a multiple of 32, dequantized). */
void molmo_op_to_f32(float *out, const void *w, molmo_dtype wt, size_t n);

/* out[0..n) = x[0..n) as IEEE half, rounded to nearest even (molmo_f32_to_f16's bits). */
void molmo_op_to_f16(uint16_t *out, const float *x, size_t n);

/* Debug/test switch: 1 makes every op run the plain-C reference kernels (ref/), 0 restores the
 * fastest kernels of the machine. Atomic: may be flipped while other threads run ops (an op in
 * progress finishes on the table it started with). */
void molmo_kernels_force_reference(int on);
/* On by default where the CPU has usable AMX-INT8: off keeps the quantized GEMM on the VNNI
 * kernel (same bits; for tests and benchmarks that compare the two). Atomic. */
void molmo_kernels_allow_amx(int on);
/* On by default where the CPU has AVX-VNNI: off keeps the AVX2 quantized kernels on
 * vpmaddubsw (same bits; for tests and benchmarks). Atomic. */
void molmo_kernels_allow_avx_vnni(int on);

/* Name of the kernel set ops run on now: "avx512+amx" (AVX-512 with the AMX quantized GEMM),
 * "avx512", "avx2" or "ref". */
const char *molmo_kernels_name(void);

#endif

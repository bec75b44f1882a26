/* kernels.h — the kernel table (STYLE.md §7). ref/ holds the specification in plain C; x86/
 * holds AVX2+FMA+F16C and AVX-512 (F, BW, VL) versions compiled with their own target flags.
 * molmo_kernels_get() picks the best table the CPU supports, once (pthread_once), unless
 * molmo_kernels_force_reference(1) is on or the environment variable MOLMO_KERNELS caps it
 * ("ref", "avx2", "avx512", "amx": AVX-512 without or with AMX tiles; read once at the first
 * call).
 *
 * Kernels are pure functions over a range of the output (rows, columns, or attention items):
 * the op layer (ops.c) splits the work over threads, and every kernel computes each output
 * element the same way whatever range it was asked for, so 1 thread and N threads agree bit for
 * bit. Kernels never allocate: the GEMM packs weight panels into the calling thread's pool
 * workspace (or a small stack buffer without one), attention uses the caller's scratch. */
#ifndef MOLMO_KERNELS_KERNELS_H
#define MOLMO_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* Matmuls of at most this many rows (decode) take the kernels' dot-product (GEMV) paths; the
 * op layer tiles them by 16 columns. */
#define MOLMO_GEMV_MAX_M 4

/* One matmul problem: y[M,N] = x[M,K] · W[N,K]^T (+ bias[N]). */
typedef struct molmo_matmul_args {
    float *y;
    int ldy;
    const float *x;
    int ldx;
    const void *w;         /* [N, K] contiguous, dtype wt */
    molmo_dtype wt;
    const float *bias;     /* [N] or NULL */
    int M, N, K;
    int x_bf16;            /* every value of x is a bf16 (molmo_op_round_bf16): a BF16-weight
                              GEMM may take one bf16 pass instead of an exact split of x
                              (the same values). For quantized weights (Q8_0, Q4_0, Q4_K,
                              Q6_K) and M > 4 the AVX-512 table then multiplies by the weights
                              rounded to bf16 on AMX-BF16 tiles (molmo_kernels_quant_bf16);
                              other kernels ignore it */
    const void *xq;        /* x already quantized by the table's matmul_xq (all M rows), or
                              NULL: the kernel quantizes what it needs itself */
    int xq_kind;           /* the layout of xq (MOLMO_XQ_*), as matmul_xq_bytes said; a kernel
                              reads xq only in its own layout */
    const void *wq;        /* W packed once by the table's matmul_wq (every panel of
                              MOLMO_WQ_COLS columns, all of K), or NULL: the kernel packs what
                              it needs itself */
} molmo_matmul_args;

/* Weights are packed for matmul_wq in panels of this many columns. */
#define MOLMO_WQ_COLS 32

/* Activations are quantized for matmul_xq in groups of this many rows. */
#define MOLMO_XQ_ROWS 16
/* Layouts of x quantized once (matmul_xq_bytes): AMX tiles of 16 rows (avx512_amx.c); or per
 * row the Q8_0/Q4_0 activation blocks of the VNNI kernels, q[32 nb] | f32 dx[nb] | i32 corr[nb]
 * with corr = -c * sum(q), c = 128 (Q8_0) or 8 (Q4_0) (avx512_quant.c, and avx2_quant.c with
 * AVX-VNNI: the same bytes). */
enum { MOLMO_XQ_NONE = 0, MOLMO_XQ_AMX = 1, MOLMO_XQ_ROWS_VNNI = 2 };

/* Most queries handled together by one attention work item; the scratch holds this many score
 * rows per thread. Each item packs its head's K and V once for all of its rows, so bigger
 * blocks pay less packing: ViT attention (577 queries, 16 heads x 64, 2 threads) ran at 177
 * GFLOP/s with 48, 202 with 96, 220 with 144, 225 with 192 (session 4). */
#define MOLMO_ATTN_QB 144

/* One attention problem (see molmo_op_attention). Work item `it` is query block
 * it % n_qblocks of head it / n_qblocks, n_qblocks = ceil(n_q / MOLMO_ATTN_QB). */
typedef struct molmo_attn_args {
    float *out;
    int ldo;
    const float *q;
    const void *k, *v;     /* elements of kv_type                                          */
    molmo_dtype kv_type;   /* MOLMO_DTYPE_F32, or MOLMO_DTYPE_F16 (a half-precision KV cache:
                              each element is converted to f32 exactly where it is read)   */
    int ldq, ldk, ldv;     /* in elements                                                  */
    size_t ldh;            /* elements from kv head g to g + 1 in k and v (hd: side by side) */
    int n_q, n_kv, n_heads, n_kv_heads, hd;
    float scale;
    int causal, q_pos0;
    int bf16;              /* bf16 activations: q, k and v hold bf16 values (the caller rounded
                              them) and the softmax weights are rounded to bf16 before P·V (the
                              sum they are normalised by is taken before the rounding), as a
                              bf16 SDPA computes; then the AMX-BF16 tiles may run it */
} molmo_attn_args;

/* Keys that query row i of problem a sees: all n_kv, or causal up to its position
 * q_pos0 + i (and at most n_kv). */
static inline int molmo_attn_row_len(const molmo_attn_args *a, int i) {
    if (!a->causal) return a->n_kv;
    const long last = (long)a->q_pos0 + i + 1;
    return last < a->n_kv ? (int)last : a->n_kv;
}

/* Bytes per element of K and V. */
static inline size_t molmo_attn_kv_bytes(molmo_dtype kv_type) {
    return kv_type == MOLMO_DTYPE_F16 ? 2 : 4;
}

/* Query rows per work item: n_q split into ceil(n_q / MOLMO_ATTN_QB) near-equal blocks, rounded
 * up to a multiple of 6 (the f32 GEMM's register tile), at most MOLMO_ATTN_QB. The 577 ViT
 * queries make 4 blocks of 120 and one of 97: every block pays for packing the head's K and V
 * once, so no block should be a sliver (fixed 48-row blocks left one of 1 row). */
static inline int molmo_attn_qrows(int n_q) {
    const int nb = (n_q + MOLMO_ATTN_QB - 1) / MOLMO_ATTN_QB, rows = (n_q + nb - 1) / nb;
    return (rows + 5) / 6 * 6;
}

/* Query blocks per head (none empty). */
static inline int molmo_attn_qblocks(int n_q) {
    const int rows = molmo_attn_qrows(n_q);
    return (n_q + rows - 1) / rows;
}

/* Work item it of problem a: head *h, query rows [*i0, *i1). */
static inline void molmo_attn_item(const molmo_attn_args *a, int it, int *h, int *i0, int *i1) {
    const int rows = molmo_attn_qrows(a->n_q), nb = (a->n_q + rows - 1) / rows;
    *h = it / nb;
    *i0 = (it % nb) * rows;
    *i1 = *i0 + rows < a->n_q ? *i0 + rows : a->n_q;
}

/* Row stride of one score row in the attention scratch: n_kv rounded up to 16 floats. */
static inline size_t molmo_attn_ld_scores(int n_kv) { return ((size_t)n_kv + 15) & ~(size_t)15; }

typedef struct molmo_kernels {
    const char *name;  /* "ref", "avx2", "avx512" */
    /* y[m0:m1, n0:n1] of the problem a. Each element's value depends only on the problem, not
     * on the range or the workspace (the choice between GEMV and packed GEMM is made from a->M;
     * the K blocking does not change an element's FMA chain). ws: ws_floats floats of 64-byte
     * aligned workspace of the calling thread, or NULL. */
    void (*matmul)(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                   size_t ws_floats);
    /* Optional (NULL: never). A kernel that quantizes x for its products would do it again in
     * every thread that computes some columns of the same rows; instead the op layer may have
     * x quantized once: matmul_xq_bytes(a, &kind) is the size of that buffer for problem a (0:
     * the kernel quantizes nothing for it) and its layout (MOLMO_XQ_*), matmul_xq(a, g0, g1,
     * xq) with a->xq_kind = kind fills groups [g0, g1) of MOLMO_XQ_ROWS rows of it (threads
     * take disjoint groups), and matmul with a->xq = xq then reads x from it wherever m0 is a
     * multiple of MOLMO_XQ_ROWS (elsewhere, or where the kernel it takes wants another layout,
     * it quantizes itself). The same bits either way. */
    size_t (*matmul_xq_bytes)(const molmo_matmul_args *a, int *kind);
    void (*matmul_xq)(const molmo_matmul_args *a, int g0, int g1, void *xq);
    /* Optional (NULL: never). Likewise for the weights of a GEMM whose kernel packs its weight
     * panels again for every chunk of rows: matmul_wq_bytes(a) is the size of all panels
     * packed once for problem a (0: the kernel packs nothing for it), matmul_wq(a, p0, p1, wq)
     * fills panels [p0, p1) of MOLMO_WQ_COLS columns of it (threads take disjoint panels), and
     * matmul with a->wq = wq then reads them wherever n0 is a multiple of MOLMO_WQ_COLS. The
     * same bits either way. */
    size_t (*matmul_wq_bytes)(const molmo_matmul_args *a);
    void (*matmul_wq)(const molmo_matmul_args *a, int p0, int p1, void *wq);
    /* One row of n (ops.h semantics); y may equal x. */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int n, float eps);
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, float eps);
    void (*softmax)(float *x, int n);
    void (*quick_gelu)(float *x, size_t n);
    void (*silu_mul)(float *out, const float *gate, const float *up, size_t n);
    void (*add)(float *y, const float *x, size_t n);
    void (*scale_add)(float *y, const float *x, float a, size_t n);
    /* Work items [it0, it1) of the problem; scratch: MOLMO_ATTN_QB * molmo_attn_ld_scores(n_kv)
     * floats owned by the calling thread, 64-byte aligned; ws as for matmul (may be NULL). */
    void (*attention)(const molmo_attn_args *a, int it0, int it1, float *scratch, float *ws,
                      size_t ws_floats);
    void (*rope)(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                 const float *cos_t, const float *sin_t);
    /* out[0..n) = w[0..n) as f32 (exact; block types: n a multiple of 32). */
    void (*to_f32)(float *out, const void *w, molmo_dtype wt, size_t n);
    /* out[0..n) = x[0..n) as IEEE half, rounded to nearest even (vcvtps2ph's rounding: NaN
     * quieted, beyond the half range inf): molmo_f32_to_f16 for every element. */
    void (*to_f16)(uint16_t *out, const float *x, size_t n);
    /* In place: x[i] = the f32 value of bf16(x[i]) (molmo_f32_to_bf16: round to nearest even,
     * NaN stays NaN). */
    void (*round_bf16)(float *x, size_t n);
} molmo_kernels;

/* The table ops run on now (honours force_reference). Never NULL. */
const molmo_kernels *molmo_kernels_get(void);

/* Whether the AVX-512 quantized GEMM (Q8_0/Q4_0, calls of more than 4 rows) runs on AMX tiles:
 * the CPU and OS allow it (cpu.h), MOLMO_KERNELS does not cap the choice below "amx", and
 * molmo_kernels_allow_amx has not turned it off. Either way the bits are the same. */
int molmo_kernels_amx(void);
/* Whether the AVX2 quantized kernels (Q8_0/Q4_0) take their block sums with AVX-VNNI
 * (vpdpbusd on ymm; the CPU has it, MOLMO_KERNELS allows avx2, molmo_kernels_allow_avx_vnni has
 * not turned it off) instead of vpmaddubsw. The same bits either way. */
int molmo_kernels_avx_vnni(void);
/* The same for the BF16-weight GEMM on AMX-BF16 tiles (cpu.h amx_bf16), under the same switches.
 * Unlike the int8 one it changes the summation order: f32 accuracy, not the FMA kernel's bits. */
int molmo_kernels_amx_bf16(void);

/* Whether the table ops run on now multiplies quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) by bf16
 * activations (x_bf16, more than 4 rows) on AMX-BF16 tiles, each weight dequantized and
 * rounded to bf16: the
 * AVX-512 table where molmo_kernels_amx_bf16(). Elsewhere those products keep the int8 kernels
 * (x quantized per block of 32), so bf16 activations round their x only where this is 1. */
int molmo_kernels_quant_bf16(void);

/* Whether the AVX-512 table multiplies BF16 weights by bf16 activations (x_bf16) with
 * VDPBF16PS where AMX-BF16 does not run: an AMD CPU with AVX512-BF16 (Zen 4/5), MOLMO_KERNELS
 * allowing avx512. */
int molmo_kernels_bf16_dot(void);

/* Whether the table ops run on now reads Q8_0_X16 / Q4_0_X16 weights (quant.h) with its own
 * kernels: the AVX-512 and AVX2 tables. The reference table still multiplies them, block by
 * block (the same values, slower): a model lays its matrices out so only where this is 1. */
int molmo_kernels_x16(void);

/* Individual tables, for tests and benchmarks: NULL where the CPU (or the build) lacks the ISA. */
const molmo_kernels *molmo_kernels_ref(void);
const molmo_kernels *molmo_kernels_avx2(void);
const molmo_kernels *molmo_kernels_avx512(void);

/* Defined in ref/ and x86/: the tables themselves (x86 ones are usable only when cpu.h says so). */
extern const molmo_kernels molmo_kernels_ref_table;
extern const molmo_kernels molmo_kernels_avx2_table;
extern const molmo_kernels molmo_kernels_avx512_table;

#endif

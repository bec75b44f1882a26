/* x86.h — kernels shared between the files of one x86 ISA (declarations only; each ISA's
 * files are compiled with that ISA's flags, see cmake/flags.cmake). */
#ifndef MOLMO_KERNELS_X86_H
#define MOLMO_KERNELS_X86_H

#include <stddef.h>

#include "kernels/kernels.h"

/* The byte buffer a quantized kernel works in: the calling thread's pool workspace when there
 * is one of at least stack_bytes, else the caller's stack buffer; *bytes receives its size. */
static inline unsigned char *molmo_x86_work_buffer(float *ws, size_t ws_floats,
                                                   unsigned char *stack, size_t stack_bytes,
                                                   size_t *bytes) {
    if (ws && ws_floats * sizeof(float) >= stack_bytes) {
        *bytes = ws_floats * sizeof(float);
        return (unsigned char *)ws;
    }
    *bytes = stack_bytes;
    return stack;
}

/* The functions between MOLMO_X86_BEGIN_AVX_VNNI and MOLMO_X86_END_TARGET may use AVX-VNNI
 * (the VEX vpdpbusd/vpdpwssd on ymm); they run only after molmo_kernels_avx_vnni() said the CPU
 * has it. */
#if defined(__clang__)
#define MOLMO_X86_BEGIN_AVX_VNNI                                                                 \
    _Pragma("clang attribute push(__attribute__((target(\"avxvnni\"))), apply_to = function)")
#define MOLMO_X86_END_TARGET _Pragma("clang attribute pop")
#elif defined(__GNUC__)
#define MOLMO_X86_BEGIN_AVX_VNNI _Pragma("GCC push_options") _Pragma("GCC target(\"avxvnni\")")
#define MOLMO_X86_END_TARGET _Pragma("GCC pop_options")
#endif

/* avx512_exp and avx2_exp (same bits) return 0 below this, where exp is under 1.19e-38,
 * instead of computing a denormal: avx512_math.h says why. */
#define MOLMO_X86_EXP_MIN (-87.33f)

/* The AVX-512 decode GEMV reads one block of each of 16 weight rows at a time: 16 concurrent
 * streams, which the hardware prefetchers follow too late to keep DRAM busy (~65% of the read
 * loop's bandwidth on SPR). So it prefetches by hand the blocks MOLMO_GEMV_PF_BYTES ahead in
 * every row it streams, and near the end of a group of rows the first blocks of the next
 * group: 20-55% more GB/s on 1 and 2 threads (docs/kernels.md). 640 bytes (18 Q8_0 blocks)
 * ahead: MolmoE-1B q8_0 decode 15.3-15.5 -> 15.6-15.8 tok/s against 320 (interleaved, session
 * 8). The AVX2 GEMV (8 streams) uses it too since AVX-VNNI made its products cheap. */
#define MOLMO_GEMV_PF_BYTES 640

/* The GEMVs on the X16 layouts (quant.h: two sequential streams per 16 columns) prefetch this
 * far ahead in the value stream, and as many blocks ahead in the scale stream. 2 threads,
 * 1x1024x2048 over 256 cold matrices: AVX-512 1024-3072 bytes within 2-4% of each other, 1536
 * the best twice, 640 3% slower; AVX2 1536 against 640: q8_0 +7-9%, q4_0 +0-4%. */
#define MOLMO_GEMV_X16_PF_BYTES 1536

/* The GEMVs' prefetch in the X16 group g (nb blocks a row, vl lines of values a block: 4 for
 * Q4_0, 8 for Q8_0) while they read block b: the values' lines MOLMO_GEMV_X16_PF_BYTES ahead,
 * and every other block the scales' line as many blocks ahead (a line holds two blocks'). */
static inline void molmo_x86_x16_prefetch(const unsigned char *g, int nb, int vl, int b) {
    const unsigned char *v = g + 32 * (size_t)nb + 64 * (size_t)vl * (size_t)b;
    for (int l = 0; l < vl; l++) __builtin_prefetch(v + MOLMO_GEMV_X16_PF_BYTES + 64 * l, 0, 3);
    if (!(b & 1)) __builtin_prefetch(g + 32 * (size_t)b + MOLMO_GEMV_X16_PF_BYTES / (2 * vl), 0, 3);
}

/* Prefetch the blocks that the GEMV's row group w (nc rows, stride ldw, nbk blocks of bb
 * bytes) reads `ahead` blocks after block b, or those of the next group (next: its first
 * block, nnext rows; NULL when there is none) once past the end. Prefetches never fault, but
 * every address stays inside the rows the call reads. */
static inline void molmo_x86_gemv_prefetch(const unsigned char *w, int nc, size_t ldw, int b,
                                           int ahead, int nbk, size_t bb,
                                           const unsigned char *next, int nnext) {
    const unsigned char *p = w;
    int t = b + ahead, rows = nc;
    if (t >= nbk) {
        t -= nbk;
        if (!next || t >= nbk) return;
        p = next;
        rows = nnext;
    }
    p += (size_t)t * bb;
    for (int c = 0; c < rows; c++) __builtin_prefetch(p + (size_t)c * ldw, 0, 3);
}

/* A region of W prefetched into L2 a few lines at a time, spread over the work of the previous
 * panel or block (prefetcht1): issuing a panel's ~100-1600 lines at once would stall on the
 * fill buffers. Packing reads 16-48 rows of W at once, more streams than the hardware
 * prefetchers follow. */
typedef struct molmo_x86_l2_ahead {
    const unsigned char *p;
    size_t at, end; /* bytes done, bytes due */
} molmo_x86_l2_ahead;

static inline void molmo_x86_l2_ahead_lines(molmo_x86_l2_ahead *f, int n) {
    for (int i = 0; i < n && f->at < f->end; i++, f->at += 64)
        __builtin_prefetch(f->p + f->at, 0, 2); /* locality 2: prefetcht1 */
}

/* For the packed int8 GEMMs (VNNI, AMX) and the one-row Q4_0 GEMVs (their group of rows as the
 * panel, molmo_x86_group_pf): f becomes the rows of W (row stride ldw bytes) of the column
 * panel after the one at j0 (panels of `panel` columns, up to n1), when a K chunk spans all of
 * K so that those rows are contiguous; returns how many lines to prefetch at each of the
 * `steps` steps of this panel's work so they all arrive (0: nothing to prefetch). MoE
 * experts' weights come from DRAM: cold 94-row expert GEMMs ran 20-28% slower than warm ones
 * without it. */
static inline int molmo_x86_l2_next_panel(molmo_x86_l2_ahead *f, const void *w, size_t ldw,
                                          int j0, int panel, int n1, int whole_k, int steps) {
    const int nn = n1 - j0 - panel < panel ? n1 - j0 - panel : panel;
    *f = (molmo_x86_l2_ahead){w, 0, 0};
    if (nn <= 0 || !whole_k || steps <= 0) return 0;
    f->at = (size_t)(j0 + panel) * ldw;
    f->end = f->at + (size_t)nn * ldw;
    return (int)((f->end - f->at + 64 * (size_t)steps - 1) / (64 * (size_t)steps));
}

/* The prefetching of the one-row Q4_0 GEMVs (AVX-512: 16 rows, 4 blocks a step; AVX2: 8 rows,
 * 2 blocks), which load each row's blocks of a step in one run. With all of K in the call the
 * next group's rows are one run of memory and go into L2 line by line: at each step `per -
 * rows` lines, then one after each row's load (bursts measured slower). Otherwise each row's
 * lines MOLMO_GEMV_PF_BYTES ahead, at the step's first and last block (a step of 36-72 bytes
 * spans up to two lines). Per-row prefetches alone ran at 75% of the read bandwidth (1x1024x2048
 * Q4_0 over 256 cold matrices, 2 threads: 21.5-22.9 GB/s; the L2 way 30.3-31.1). */
typedef struct molmo_x86_group_pf {
    molmo_x86_l2_ahead l2;
    int per; /* L2 lines a step; 0: per-row prefetches */
    const unsigned char *w, *next;
    size_t ldw, bb;
    int rows, nnext, nbk, step, ahead;
} molmo_x86_group_pf;

/* The group: `rows` rows at w (stride ldw) of nbk blocks of bb bytes, taken `step` blocks at a
 * time; next: the following group's first block (w + rows ldw) with nnext rows, or NULL. */
static inline void molmo_x86_group_pf_init(molmo_x86_group_pf *p, const unsigned char *w,
                                           size_t ldw, size_t bb, int rows, int nbk, int step,
                                           const unsigned char *next, int nnext) {
    *p = (molmo_x86_group_pf){.w = w, .next = next, .ldw = ldw, .bb = bb, .rows = rows,
                              .nnext = nnext, .nbk = nbk, .step = step,
                              .ahead = (int)(MOLMO_GEMV_PF_BYTES / bb)};
    p->per = molmo_x86_l2_next_panel(&p->l2, w, ldw, 0, rows, next ? rows + nnext : rows,
                                     (size_t)nbk * bb == ldw, nbk / step);
}

/* At the start of the step whose first block is b0. */
static inline void molmo_x86_group_pf_step(molmo_x86_group_pf *p, int b0) {
    if (p->per) {
        molmo_x86_l2_ahead_lines(&p->l2, p->per - p->rows);
        return;
    }
    molmo_x86_gemv_prefetch(p->w, p->rows, p->ldw, b0, p->ahead, p->nbk, p->bb, p->next, p->nnext);
    molmo_x86_gemv_prefetch(p->w, p->rows, p->ldw, b0 + p->step - 1, p->ahead, p->nbk, p->bb,
                            p->next, p->nnext);
}

/* After each row's load of a step. */
static inline void molmo_x86_group_pf_row(molmo_x86_group_pf *p) {
    if (p->per) molmo_x86_l2_ahead_lines(&p->l2, 1);
}

/* Before block b taken alone (the blocks left over after the last whole step). */
static inline void molmo_x86_group_pf_block(const molmo_x86_group_pf *p, int b) {
    molmo_x86_gemv_prefetch(p->w, p->rows, p->ldw, b, p->ahead, p->nbk, p->bb, p->next, p->nnext);
}

/* A plain f32 GEMM used inside other kernels (attention): y[M,N] (ldy) = x[M,K] (ldx) · W^T,
 * W[j][k] = w[j*ldw + k], or w[k*ldw + j] when w_kmajor. Every element is one FMA chain over k
 * in order, as in the matmul kernels. K >= 1. */
typedef struct molmo_x86_gemm {
    float *y;
    size_t ldy;
    const float *x;
    size_t ldx;
    const void *w;
    molmo_dtype wt; /* F32 or F16 (an f16 KV cache); BF16 too unless w_kmajor */
    size_t ldw;
    int w_kmajor;
    int M, N, K;
} molmo_x86_gemm;

void molmo_k_gemm_f32_avx512(const molmo_x86_gemm *g, float *ws, size_t ws_floats);
/* The same GEMM in two steps, for a W used by several calls: pack all of W (g's w, wt, ldw,
 * w_kmajor, N and K; panels kp >= K steps apart) into molmo_k_gemm_packed_floats_avx512(N, kp)
 * floats at pw (64-byte aligned), then run any x against it (g's K <= the packed K, N <= the
 * packed N: leading columns and steps). Same bits as molmo_k_gemm_f32_avx512. */
size_t molmo_k_gemm_packed_floats_avx512(int N, int kp);
void molmo_k_gemm_pack_avx512(const molmo_x86_gemm *g, int kp, float *pw);
void molmo_k_gemm_packed_f32_avx512(const molmo_x86_gemm *g, const float *pw, int kp);
void molmo_k_gemm_f32_avx2(const molmo_x86_gemm *g, float *ws, size_t ws_floats);
size_t molmo_k_gemm_packed_floats_avx2(int N, int kp);
void molmo_k_gemm_pack_avx2(const molmo_x86_gemm *g, int kp, float *pw);
void molmo_k_gemm_packed_f32_avx2(const molmo_x86_gemm *g, const float *pw, int kp);

void molmo_k_matmul_f32_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                               float *ws, size_t ws_floats);
void molmo_k_attention_f32_avx512(const molmo_attn_args *a, int it0, int it1, float *scratch,
                                  float *ws, size_t ws_floats);

void molmo_k_matmul_f32_avx2(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats);

/* Q8_0 / Q4_0 weights (avx512_quant.c, avx2_quant.c): the arithmetic of
 * molmo_k_matmul_qdot_ref bit for bit. The AVX-512 one needs VNNI and hands over to the AVX2
 * one (same bits) when cpuid lacks it. */
void molmo_k_matmul_q_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats);
void molmo_k_matmul_q_avx2(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                           float *ws, size_t ws_floats);
/* The same on AMX tiles (avx512_amx.c), for calls of more than 4 rows, where molmo_kernels_amx()
 * is on; returns 0 without computing anything when ws is too small (the caller then runs the
 * VNNI kernel: same bits). */
int molmo_k_matmul_q_amx(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                         size_t ws_floats);
/* Its activations quantized once for all threads (kernels.h, matmul_xq): the buffer's size for
 * problem a, and groups [g0, g1) of 16 rows into it. */
size_t molmo_k_matmul_q_amx_xq_bytes(const molmo_matmul_args *a);
void molmo_k_matmul_q_amx_xq(const molmo_matmul_args *a, int g0, int g1, void *xq);
/* The AVX-512 table's matmul_xq_bytes and matmul_xq (avx512_gemm.c): the AMX ones where the
 * AVX-512 matmul would take the AMX int8 GEMM for a, the VNNI rows (below) where it would take
 * a VNNI GEMM, else 0 bytes. */
size_t molmo_k_matmul_xq_bytes_avx512(const molmo_matmul_args *a, int *kind);
void molmo_k_matmul_xq_avx512(const molmo_matmul_args *a, int g0, int g1, void *xq);
/* The AVX-512 table's matmul_wq_bytes and matmul_wq (avx512_gemm.c): the AMX-BF16 GEMM's
 * packed panels where the AVX-512 matmul would take that kernel for a, else 0 bytes. */
size_t molmo_k_matmul_wq_bytes_avx512(const molmo_matmul_args *a);
void molmo_k_matmul_wq_avx512(const molmo_matmul_args *a, int p0, int p1, void *wq);
/* MOLMO_XQ_ROWS_VNNI (kernels.h): its size for problem a, and groups [g0, g1) of
 * MOLMO_XQ_ROWS rows into it (avx512_quant.c; avx2_quant.c the same bytes with AVX2). */
size_t molmo_k_matmul_q_rows_xq_bytes(const molmo_matmul_args *a);
void molmo_k_matmul_q_rows_xq_avx512(const molmo_matmul_args *a, int g0, int g1, void *xq);
void molmo_k_matmul_q_rows_xq_avx2(const molmo_matmul_args *a, int g0, int g1, void *xq);
/* Rows from row0 of x quantized once in MOLMO_XQ_ROWS_VNNI (kernels.h; nb blocks of K per
 * row, 40 bytes each), K chunk from block kb0: *q, *dx and *corr of the first row; returns
 * the row stride. */
static inline size_t molmo_x86_xq_rows_chunk(const unsigned char *xq, int row0, int nb, int kb0,
                                             const unsigned char **q, const unsigned char **dx,
                                             const unsigned char **corr) {
    const size_t ldq = (size_t)nb * 40, row = (size_t)row0 * ldq;
    *q = xq + row + 32 * (size_t)kb0;
    *dx = xq + row + 32 * (size_t)nb + 4 * (size_t)kb0;
    *corr = *dx + 4 * (size_t)nb;
    return ldq;
}
/* The AVX2 table's matmul_xq_bytes and matmul_xq (avx2_quant.c): the VNNI rows where the AVX2
 * quantized GEMM runs on AVX-VNNI, else 0 bytes. */
size_t molmo_k_matmul_xq_bytes_avx2(const molmo_matmul_args *a, int *kind);
void molmo_k_matmul_xq_avx2(const molmo_matmul_args *a, int g0, int g1, void *xq);
/* Loads the AMX tile configuration (palette 1): tile t < n (<= 8) has rows[t] rows of colsb[t]
 * bytes, the others none (avx512_amx.c). Only where molmo_kernels_amx() or
 * molmo_kernels_amx_bf16() is on. */
void molmo_x86_amx_configure(int n, const unsigned char rows[], const unsigned short colsb[]);
/* The same with tiles 0 .. n-1 all 16 rows x 64 bytes (the bf16 GEMM and the bf16 attention). */
static inline void molmo_x86_amx_configure_full(int n) {
    static const unsigned char rows[8] = {16, 16, 16, 16, 16, 16, 16, 16};
    static const unsigned short colsb[8] = {64, 64, 64, 64, 64, 64, 64, 64};
    molmo_x86_amx_configure(n, rows, colsb);
}
/* Attention with bf16 activations (a->bf16) on AMX-BF16 tiles (avx512_amx_attention.c): work
 * items [it0, it1); returns 0 (nothing done) where it does not apply (causal, f16 K/V, hd not
 * a multiple of 32 up to 128, too little workspace), and the FMA kernel runs instead. */
int molmo_k_attention_bf16_amx(const molmo_attn_args *a, int it0, int it1, float *scratch,
                               float *ws, size_t ws_floats);
/* S = q · Kᵀ of f32 values on those tiles to f32 accuracy (avx512_amx_attention.c), for the
 * GEMM path of attention_gemm.h where not causal: the bytes of kv head g's K split into bf16
 * parts (0: not for this problem), the split itself into kb, and the scores of query rows
 * [i0, i1) of head h into S (rows ld floats apart, from row i0; it writes up to the next
 * multiple of 16 rows and of 16 keys) with qb as 2 * 3 * hd / 32 KiB of workspace. */
size_t molmo_k_attn_split_k_bytes(const molmo_attn_args *a);
void molmo_k_attn_split_k(const molmo_attn_args *a, int g, void *kb);
void molmo_k_attn_scores_split(const molmo_attn_args *a, int h, int i0, int i1, const void *kb,
                               float *S, size_t ld, void *qb);

/* BF16 weights and an x of bf16 values (x_bf16) with VDPBF16PS (avx512_bf16dot.c), for
 * problems of more than 4 rows on CPUs with AVX512-BF16: returns 0 (nothing done) when ws
 * cannot hold a K block of 32 steps, and the caller runs the FMA kernel. */
int molmo_k_matmul_bf16_dot(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                            float *ws, size_t ws_floats);

/* BF16 weights on AMX-BF16 tiles (avx512_amx_bf16.c), for problems of more than 4 rows, where
 * molmo_kernels_amx_bf16() is on: f32 accuracy (three bf16 parts of x), another summation order
 * than the FMA kernel; the bits depend on the problem only (ws may be anything). K >= 1.
 * Also quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) with x_bf16 set (bf16 activations,
 * molmo_op_bf16_rule): each weight dequantized and rounded to bf16, so the bits are those of
 * the BF16 weights molmo_f32_to_bf16(dequantized W). */
void molmo_k_matmul_bf16_amx(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats);
/* Its weight panels packed once for all threads (kernels.h, matmul_wq): the bytes for all of
 * problem a, and panels [p0, p1) into wq. */
size_t molmo_k_matmul_bf16_amx_wq_bytes(const molmo_matmul_args *a);
void molmo_k_matmul_bf16_amx_wq(const molmo_matmul_args *a, int p0, int p1, void *wq);
/* out[0..n) = the values of Q8_0 / Q4_0 blocks (n a multiple of 32), exact. */
void molmo_k_dequant_avx512(float *out, const void *w, molmo_dtype wt, size_t n);
void molmo_k_dequant_avx2(float *out, const void *w, molmo_dtype wt, size_t n);
/* Q4_K / Q6_K weights (avx512_kquant.c, avx2_kquant.c): the arithmetic of
 * molmo_k_matmul_kdot_ref bit for bit; the AVX-512 one needs VNNI as above. */
void molmo_k_matmul_k_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats);
void molmo_k_matmul_k_avx2(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                           float *ws, size_t ws_floats);
void molmo_k_attention_f32_avx2(const molmo_attn_args *a, int it0, int it1, float *scratch,
                                float *ws, size_t ws_floats);

#endif

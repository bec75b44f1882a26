/* avx512_gemm.c — y = x · W^T (+ b) with AVX-512F/BW/VL, weights F32/F16/BF16 converted to f32
 * exactly on the fly (BF16: a 16-bit shift; F16: vcvtph2ps), f32 accumulation with FMA.
 * Q8_0/Q4_0 weights go to avx512_quant.c (int8 dot products).
 *
 * Two paths, chosen from the problem's M only (so the thread split never changes a result):
 *   - M <= GEMV_MAX_M (decode): dot products straight from W, 16 lanes of partial sums per
 *     output then a fixed-order horizontal sum; memory-bound, W is read once per 4 rows.
 *   - otherwise a packed GEMM in the style of BLIS/GotoBLAS: for each block of up to 1024
 *     steps of K and each panel of NR = 64 output columns, the W panel is converted and
 *     transposed into the thread's pool workspace [kc][64] (a 256 KiB panel, L2-resident; without a
 *     pool, 128 steps in a 32 KiB stack buffer), then a 6x64 register tile (24 zmm
 *     accumulators) sweeps all rows of the range, six broadcasts of x and four loads of W per
 *     step of K. Every output element is one FMA chain over k = 0..K-1 in order (partial sums
 *     are stored in y between K blocks and reloaded exactly), so the value of an element does
 *     not depend on the tile, the panel or the thread that computed it. */
#include <immintrin.h>
#include <stdint.h>

#include "base/cpu.h"
#include "kernels/quant.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

#define MR 6             /* rows of the register tile */
#define NV 4             /* zmm vectors per row of the tile */
#define NR (16 * NV)     /* columns of a packed W panel */
#define KC_STACK 128     /* K block without a workspace: a 32 KiB panel on the stack */
#define KC_MAX 1024      /* K block with the pool's workspace: a 256 KiB panel (L2) */
#define GEMV_MAX_M MOLMO_GEMV_MAX_M

#define INLINE static inline __attribute__((always_inline))

/* pw[k][c] = W[j0 + c, k0 + k] for k < kc, c < NR, W[j][k] = w[j*ldw + k]; columns c >= nr are
 * zero. A transpose: 16x16 blocks through registers. */
INLINE void pack_panel(molmo_dtype wt, const void *w, size_t ldw, int j0, int nr, int k0, int kc,
                       float *pw) {
    for (int g = 0; g < NV; g++) {
        for (int kk = 0; kk < kc; kk += 16) {
            const int kn = kc - kk < 16 ? kc - kk : 16;
            const __mmask16 km = avx512_tail(kn);
            __m512 r[16];
            for (int t = 0; t < 16; t++) {
                const int c = g * 16 + t;
                r[t] = c < nr ? avx512_load_w16(w, wt, (size_t)(j0 + c) * ldw + (size_t)(k0 + kk), km)
                              : _mm512_setzero_ps();
            }
            avx512_transpose16_ps(r);
            for (int t = 0; t < kn; t++) _mm512_store_ps(pw + (size_t)(kk + t) * NR + g * 16, r[t]);
        }
    }
}

/* The same panel when W is stored k-major, W[j][k] = w[k*ldw + j] (f32 or f16): row copies. */
INLINE void pack_panel_kmajor(molmo_dtype wt, const void *w, size_t ldw, int j0, int k0, int kc,
                              const __mmask16 mk[NV], float *pw) {
    for (int k = 0; k < kc; k++)
        for (int v = 0; v < NV; v++)
            _mm512_store_ps(pw + (size_t)k * NR + 16 * v,
                            avx512_load_w16(w, wt, (size_t)(k0 + k) * ldw + (size_t)j0 + 16 * v, mk[v]));
}

/* The register tile: y[0:mr, 0:NR] (+)= x[0:mr, 0:kc] · pw[0:kc, 0:NR] (+ bias). */
INLINE void tile(const int mr, const int nv, int kc, const float *x, size_t ldx, const float *pw,
                 float *y, size_t ldy, int accumulate, const float *bias, const __mmask16 mk[NV]) {
    __m512 c[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++)
            c[i][v] = accumulate ? _mm512_maskz_loadu_ps(mk[v], y + i * ldy + 16 * v)
                                 : _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b[NV];
        for (int v = 0; v < nv; v++) b[v] = _mm512_load_ps(pw + (size_t)k * NR + 16 * v);
        for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(x[i * ldx + (size_t)k]);
            for (int v = 0; v < nv; v++) c[i][v] = _mm512_fmadd_ps(av, b[v], c[i][v]);
        }
    }
    if (bias)
        for (int v = 0; v < nv; v++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);
            for (int i = 0; i < mr; i++) c[i][v] = _mm512_add_ps(c[i][v], bv);
        }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) _mm512_mask_storeu_ps(y + i * ldy + 16 * v, mk[v], c[i][v]);
}

/* Not inlined into the dtype-specialised drivers: one copy of each tile shape. A panel of at
 * most 16 columns (N's tail: the 577th key of the ViT's attention scores) takes a one-vector
 * tile: the same FMA chains, so the same bits, at a quarter of the full tile's work. */
static void tile_any(int mr, int kc, const float *x, size_t ldx, const float *pw, float *y,
                     size_t ldy, int accumulate, const float *bias, const __mmask16 mk[NV]) {
    if (!mk[1]) {
        switch (mr) {
        case 1: tile(1, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        case 2: tile(2, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        case 3: tile(3, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        case 4: tile(4, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        case 5: tile(5, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        default: tile(MR, 1, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
        }
        return;
    }
    switch (mr) {
    case 1: tile(1, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    case 2: tile(2, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    case 3: tile(3, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    case 4: tile(4, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    case 5: tile(5, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    default: tile(MR, NV, kc, x, ldx, pw, y, ldy, accumulate, bias, mk); break;
    }
}

/* Where a GEMM packs its W panels: the caller's workspace when it holds at least a stack-sized
 * panel, else a stack buffer. Long K blocks pay: each block costs a load and store of the
 * register tile and a restart of its FMA chains; with kc = 1024 the GEMM runs ~15% faster than
 * with 128 (measured on SPR). */
static int panel_kc(float *ws, size_t ws_floats, float **pw) {
    if (!ws || ws_floats < (size_t)KC_STACK * NR) return KC_STACK;
    const size_t kc = ws_floats / NR < KC_MAX ? ws_floats / NR : KC_MAX;
    *pw = ws;
    return (int)kc & ~15;
}

/* y[m0:m1, n0:n1] = x · W^T (+ bias), W[j][k] = w[j*ldw + k] of dtype wt, or (kmajor, f32 or
 * f16) w[k*ldw + j]. */
INLINE void gemm_core(molmo_dtype wt, int kmajor, const void *w, size_t ldw, const float *x,
                      size_t ldx, float *y, size_t ldy, const float *bias, int K, int m0, int m1,
                      int n0, int n1, float *ws, size_t ws_floats) {
    _Alignas(64) float stack_pw[KC_STACK * NR];
    float *pw = stack_pw;
    const int kblk = panel_kc(ws, ws_floats, &pw);
    for (int k0 = 0; k0 < K; k0 += kblk) {
        const int kc = K - k0 < kblk ? K - k0 : kblk;
        const int last = k0 + kc == K;
        for (int j0 = n0; j0 < n1; j0 += NR) {
            const int nr = n1 - j0 < NR ? n1 - j0 : NR;
            __mmask16 mk[NV];
            for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
            if (kmajor)
                pack_panel_kmajor(wt, w, ldw, j0, k0, kc, mk, pw);
            else
                pack_panel(wt, w, ldw, j0, nr, k0, kc, pw);
            const float *b = last && bias ? bias + j0 : NULL;
            for (int i0 = m0; i0 < m1; i0 += MR) {
                const int mr = m1 - i0 < MR ? m1 - i0 : MR;
                tile_any(mr, kc, x + (size_t)i0 * ldx + (size_t)k0, ldx, pw,
                         y + (size_t)i0 * ldy + (size_t)j0, ldy, k0 > 0, b, mk);
            }
        }
    }
}

/* Pre-packed W (attention: one head's K or V packed once and used by every query block of the
 * head on this thread). All N columns and kp >= K steps of K: panel p (columns p*NR ..) is
 * pw[p*kp*NR + k*NR + c]. Same tiles, same FMA chains, so the same bits as the packing GEMM. */
size_t molmo_k_gemm_packed_floats_avx512(int N, int kp) {
    return (size_t)((N + NR - 1) / NR) * (size_t)kp * NR;
}

INLINE void pack_all_t(molmo_dtype wt, const molmo_x86_gemm *g, int kp, float *pw) {
    for (int j0 = 0, p = 0; j0 < g->N; j0 += NR, p++) {
        const int nr = g->N - j0 < NR ? g->N - j0 : NR;
        float *pp = pw + (size_t)p * (size_t)kp * NR;
        __mmask16 mk[NV];
        for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
        for (int k0 = 0; k0 < g->K; k0 += KC_MAX) {
            const int kc = g->K - k0 < KC_MAX ? g->K - k0 : KC_MAX;
            if (g->w_kmajor)
                pack_panel_kmajor(wt, g->w, g->ldw, j0, k0, kc, mk, pp + (size_t)k0 * NR);
            else
                pack_panel(wt, g->w, g->ldw, j0, nr, k0, kc, pp + (size_t)k0 * NR);
        }
    }
}

void molmo_k_gemm_pack_avx512(const molmo_x86_gemm *g, int kp, float *pw) {
    if (g->wt == MOLMO_DTYPE_F16)
        pack_all_t(MOLMO_DTYPE_F16, g, kp, pw);
    else
        pack_all_t(MOLMO_DTYPE_F32, g, kp, pw);
}

void molmo_k_gemm_packed_f32_avx512(const molmo_x86_gemm *g, const float *pw, int kp) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return;
    for (int k0 = 0; k0 < g->K; k0 += KC_MAX) {
        const int kc = g->K - k0 < KC_MAX ? g->K - k0 : KC_MAX;
        for (int j0 = 0, p = 0; j0 < g->N; j0 += NR, p++) {
            const int nr = g->N - j0 < NR ? g->N - j0 : NR;
            __mmask16 mk[NV];
            for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
            const float *pp = pw + ((size_t)p * (size_t)kp + (size_t)k0) * NR;
            for (int i0 = 0; i0 < g->M; i0 += MR) {
                const int mr = g->M - i0 < MR ? g->M - i0 : MR;
                tile_any(mr, kc, g->x + (size_t)i0 * g->ldx + (size_t)k0, g->ldx, pp,
                         g->y + (size_t)i0 * g->ldy + (size_t)j0, g->ldy, k0 > 0, NULL, mk);
            }
        }
    }
}

INLINE void gemm(molmo_dtype wt, const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                 float *ws, size_t ws_floats) {
    gemm_core(wt, 0, a->w, (size_t)a->K, a->x, (size_t)a->ldx, a->y, (size_t)a->ldy, a->bias,
              a->K, m0, m1, n0, n1, ws, ws_floats);
}

void molmo_k_gemm_f32_avx512(const molmo_x86_gemm *g, float *ws, size_t ws_floats) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return;
    if (g->wt == MOLMO_DTYPE_F16) /* an f16 KV cache: its own instance, f32 stays unbranched */
        gemm_core(MOLMO_DTYPE_F16, g->w_kmajor, g->w, g->ldw, g->x, g->ldx, g->y, g->ldy, NULL,
                  g->K, 0, g->M, 0, g->N, ws, ws_floats);
    else
        gemm_core(MOLMO_DTYPE_F32, g->w_kmajor, g->w, g->ldw, g->x, g->ldx, g->y, g->ldy, NULL,
                  g->K, 0, g->M, 0, g->N, ws, ws_floats);
}

/* Dot-product path: rows i0 .. i0+mr-1 against columns n0..n1, four columns at a time. */
INLINE void gemv(molmo_dtype wt, const int mr, const molmo_matmul_args *a, int i0, int n0, int n1) {
    const size_t K = (size_t)a->K;
    const float *x = a->x + (size_t)i0 * (size_t)a->ldx;
    for (int j = n0; j < n1; j += 4) {
        __m512 c[4][4];
        size_t row[4];
        for (int t = 0; t < 4; t++) row[t] = (size_t)(j + t < n1 ? j + t : n1 - 1) * K;
        for (int i = 0; i < mr; i++)
            for (int t = 0; t < 4; t++) c[i][t] = _mm512_setzero_ps();
        for (size_t k = 0; k < K; k += 16) {
            const __mmask16 km = avx512_tail((int)(K - k < 16 ? K - k : 16));
            __m512 xv[4];
            for (int i = 0; i < mr; i++) xv[i] = _mm512_maskz_loadu_ps(km, x + i * (size_t)a->ldx + k);
            for (int t = 0; t < 4; t++) {
                const __m512 wv = avx512_load_w16(a->w, wt, row[t] + k, km);
                for (int i = 0; i < mr; i++) c[i][t] = _mm512_fmadd_ps(xv[i], wv, c[i][t]);
            }
        }
        for (int i = 0; i < mr; i++) {
            float *y = a->y + (size_t)(i0 + i) * (size_t)a->ldy;
            for (int t = 0; t < 4 && j + t < n1; t++) {
                const float s = _mm512_reduce_add_ps(c[i][t]);
                y[j + t] = a->bias ? s + a->bias[j + t] : s;
            }
        }
    }
}

INLINE void gemv_rows(molmo_dtype wt, const molmo_matmul_args *a, int m0, int m1, int n0, int n1) {
    for (int i0 = m0; i0 < m1; i0 += 4) {
        switch (m1 - i0) {
        case 1: gemv(wt, 1, a, i0, n0, n1); break;
        case 2: gemv(wt, 2, a, i0, n0, n1); break;
        case 3: gemv(wt, 3, a, i0, n0, n1); break;
        default: gemv(wt, 4, a, i0, n0, n1); break;
        }
    }
}

static void gemm_f32(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    gemm(MOLMO_DTYPE_F32, a, m0, m1, n0, n1, ws, ws_floats);
}
static void gemm_f16(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    gemm(MOLMO_DTYPE_F16, a, m0, m1, n0, n1, ws, ws_floats);
}
static void gemm_bf16(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    gemm(MOLMO_DTYPE_BF16, a, m0, m1, n0, n1, ws, ws_floats);
}
static void gemv_f32(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    gemv_rows(MOLMO_DTYPE_F32, a, m0, m1, n0, n1);
}
static void gemv_f16(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    gemv_rows(MOLMO_DTYPE_F16, a, m0, m1, n0, n1);
}
static void gemv_bf16(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                     size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    gemv_rows(MOLMO_DTYPE_BF16, a, m0, m1, n0, n1);
}

/* Whether molmo_k_matmul_f32_avx512 runs problem a on the int8 AMX tiles (given enough
 * workspace): the one kernel of this table that takes x pre-quantized (matmul_xq). */
static int int8_amx(const molmo_matmul_args *a) {
    return a->M > GEMV_MAX_M && a->K > 0 &&
           molmo_dtype_is_block(a->wt) &&
           !(a->x_bf16 && molmo_kernels_amx_bf16()) && molmo_kernels_amx();
}

/* Whether it runs a on the AVX512-VNNI GEMM (avx512_quant.c), which reads the VNNI rows. Not
 * where quantized weights meet bf16 activations on AMX-BF16 tiles; CPUs without AVX512-VNNI
 * hand the product to the AVX2 kernel, which quantizes for itself here. */
static int int8_vnni_rows(const molmo_matmul_args *a) {
    return a->M > GEMV_MAX_M && a->K > 0 &&
           molmo_dtype_is_block(a->wt) &&
           !(a->x_bf16 && molmo_kernels_amx_bf16()) && molmo_cpu_get()->avx512vnni;
}

size_t molmo_k_matmul_xq_bytes_avx512(const molmo_matmul_args *a, int *kind) {
    if (int8_amx(a)) {
        *kind = MOLMO_XQ_AMX;
        return molmo_k_matmul_q_amx_xq_bytes(a);
    }
    if (int8_vnni_rows(a)) {
        *kind = MOLMO_XQ_ROWS_VNNI;
        return molmo_k_matmul_q_rows_xq_bytes(a);
    }
    *kind = MOLMO_XQ_NONE;
    return 0;
}

void molmo_k_matmul_xq_avx512(const molmo_matmul_args *a, int g0, int g1, void *xq) {
    if (a->xq_kind == MOLMO_XQ_AMX)
        molmo_k_matmul_q_amx_xq(a, g0, g1, xq);
    else if (a->xq_kind == MOLMO_XQ_ROWS_VNNI)
        molmo_k_matmul_q_rows_xq_avx512(a, g0, g1, xq);
}

/* Whether molmo_k_matmul_f32_avx512 runs problem a on the AMX-BF16 tiles (it asks this):
 * BF16 weights, or quantized ones with bf16 activations; the one kernel of this table that
 * takes its weights packed once (matmul_wq). */
static int bf16_amx(const molmo_matmul_args *a) {
    return a->M > GEMV_MAX_M && a->K > 0 && molmo_kernels_amx_bf16() &&
           (a->wt == MOLMO_DTYPE_BF16 || (a->x_bf16 && molmo_dtype_block_size(a->wt) > 1));
}

size_t molmo_k_matmul_wq_bytes_avx512(const molmo_matmul_args *a) {
    return bf16_amx(a) ? molmo_k_matmul_bf16_amx_wq_bytes(a) : 0;
}

void molmo_k_matmul_wq_avx512(const molmo_matmul_args *a, int p0, int p1, void *wq) {
    if (bf16_amx(a)) molmo_k_matmul_bf16_amx_wq(a, p0, p1, wq);
}

void molmo_k_matmul_f32_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                               float *ws, size_t ws_floats) {
    if (m0 >= m1 || n0 >= n1) return;
    if (a->K == 0) { /* an empty sum: y = bias (or 0), as torch.nn.functional.linear */
        for (int i = m0; i < m1; i++)
            for (int j = n0; j < n1; j++)
                a->y[(size_t)i * (size_t)a->ldy + (size_t)j] = a->bias ? a->bias[j] : 0.0f;
        return;
    }
    const int small = a->M <= GEMV_MAX_M;
    /* BF16 weights, or quantized ones with bf16 activations (molmo_op_bf16_rule) */
    if (bf16_amx(a)) {
        molmo_k_matmul_bf16_amx(a, m0, m1, n0, n1, ws, ws_floats);
        return;
    }
    switch (molmo_dtype_stored(a->wt)) { /* the X16 layouts go with the types they hold */
    case MOLMO_DTYPE_Q8_0:
    case MOLMO_DTYPE_Q4_0: molmo_k_matmul_q_avx512(a, m0, m1, n0, n1, ws, ws_floats); break;
    case MOLMO_DTYPE_Q4_K:
    case MOLMO_DTYPE_Q6_K: molmo_k_matmul_k_avx512(a, m0, m1, n0, n1, ws, ws_floats); break;
    case MOLMO_DTYPE_F16: (small ? gemv_f16 : gemm_f16)(a, m0, m1, n0, n1, ws, ws_floats); break;
    case MOLMO_DTYPE_BF16:
        if (!(!small && a->x_bf16 && molmo_kernels_bf16_dot() &&
              molmo_k_matmul_bf16_dot(a, m0, m1, n0, n1, ws, ws_floats)))
            (small ? gemv_bf16 : gemm_bf16)(a, m0, m1, n0, n1, ws, ws_floats);
        break;
    default: (small ? gemv_f32 : gemm_f32)(a, m0, m1, n0, n1, ws, ws_floats); break;
    }
}

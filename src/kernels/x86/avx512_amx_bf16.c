/* avx512_amx_bf16.c — y = x · W^T (+ b) for BF16 weights on AMX tiles (TDPBF16PS), for the
 * GEMM shapes (problems of more than 4 rows: the ViT and prefill of a bf16 model).
 *
 * The tiles multiply bf16 by bf16 and accumulate in f32. The weights are bf16 already; the f32
 * activations are split exactly enough into three bf16 parts, x = x1 + x2 + x3 + r with
 * x1 = bf16(x), x2 = bf16(x - x1), x3 = bf16(x - x1 - x2) (round to nearest even; each
 * difference is exact in f32), so |r| <= 2^-27 |x|, below f32's own rounding of x. Every
 * product of two bf16 values is exact in f32, so the three passes C += A1·B, C += A2·B,
 * C += A3·B compute the f32 GEMM to f32 accuracy: like the FMA GEMM of avx512_gemm.c, only in
 * another summation order (the tile unit adds pairs of products, then into C). So the results
 * are not the FMA kernel's bits; test_kernels holds them to the same tolerance against the
 * reference. TDPBF16PS treats denormal inputs as zero and flushes denormal sums: only terms
 * below 2^-126 are affected.
 *
 * When the caller says x holds bf16 values already (x_bf16: the bf16 activations of
 * molmo_op_round_bf16), x2 and x3 would be zero and their passes add exact zeros: the kernel
 * takes one pass, which gives the same bits as three (~1.5x the speed; 577x4096x1024 on 2
 * threads: 4.1 -> 2.8 ms).
 *
 * Bits never depend on the thread split or the workspace: each output's sum runs over the k
 * steps in order in an f32 tile, and between K blocks it rests in a buffer or in y as f32 (an
 * exact round trip), whatever the blocking; each output depends only on its own row and
 * column. Why: FMA does 32 f32 multiply-adds per cycle; a TDPBF16PS does 16 x 16 x 32 in ~16
 * cycles, so even three passes are ~5x that in the tile unit, and the kernel reaches ~2.5x
 * the FMA GEMM (docs/kernels.md, "AMX-BF16 for BF16 weights").
 *
 * Tiles: 0 one activation part (16 rows x 32 k as bf16, 64 bytes a row), 1-2 two weight tiles
 * (16 columns each, VNNI pair layout: row p holds k = 2p, 2p+1 of each column), 3-4 or 5-6 the
 * f32 sums of a 16 x 32 output block (alternating between row groups). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/threadpool.h"
#include "kernels/kquant.h"
#include "kernels/quant.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512bf16"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512bf16")
#endif

#define TR 16      /* rows of a tile */
#define KS 32      /* k per tile step */
#define NT 2       /* weight tiles per panel */
#define NC (16 * NT) /* columns per panel */
#define KC 8       /* k steps per K block (256 k): its weight panel (16 KiB) stays in L1 */
#define TILE 1024  /* bytes of one tile */

/* Rows [0, rows) of x (stride ldx), k in [k0, k0 + 32 ks) (zero beyond K), into groups of 16
 * rows (zero rows beyond `rows`): per group and step, the tiles of the np parts one after the
 * other (np KiB; np = 1 when x holds bf16 values: the first part is x itself). Group stride
 * ks * np KiB. */
static void split_rows(const float *x, size_t ldx, int rows, int K, int k0, int ks, int np,
                       uint8_t *out) {
    const int groups = (rows + TR - 1) / TR;
    for (int r = 0; r < groups * TR; r++) {
        uint8_t *g = out + (size_t)(r / TR) * ks * np * TILE + (size_t)(r % TR) * 64;
        const float *xr = x + (size_t)r * ldx;
        for (int s = 0; s < ks; s++) {
            uint8_t *t = g + (size_t)s * np * TILE;
            const int k = k0 + s * KS, n = K - k < KS ? K - k : KS;
            __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
            if (r < rows && n > 0) {
                v0 = _mm512_maskz_loadu_ps(avx512_tail(n), xr + k);
                v1 = _mm512_maskz_loadu_ps(avx512_tail(n - 16), xr + k + 16);
            }
            __m512i parts[3];
            avx512_bf16_parts(v0, v1, np, parts);
            for (int part = 0; part < np; part++)
                _mm512_storeu_si512((__m512i *)(t + (size_t)part * TILE), parts[part]);
        }
    }
}

/* The 32 weights of one Q8_0 / Q4_0 block as bf16, in the order of 32 bf16 weights loaded
 * from a row (k 0-15 in the low half, 16-31 in the high half): each weight dequantized as
 * quant.h's molmo_q8_0_value / molmo_q4_0_value (an integer times the fp16 scale: exact in f32)
 * and rounded to bf16 to nearest even, so the GEMM below computes with molmo_f32_to_bf16 of
 * the reference's weights. */
static __m512 dequant_block_bf16(int q8, const uint8_t *blk) {
    uint16_t dh;
    memcpy(&dh, blk, 2);
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
    __m128i lo, hi; /* the 32 signed integers: k 0-15, 16-31 */
    if (q8) {
        lo = _mm_loadu_si128((const __m128i *)(blk + 2));
        hi = _mm_loadu_si128((const __m128i *)(blk + 18));
    } else {
        const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 2)), m4 = _mm_set1_epi8(15),
                      eight = _mm_set1_epi8(8);
        lo = _mm_sub_epi8(_mm_and_si128(b, m4), eight);
        hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m4), eight);
    }
    const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d);
    const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d);
    return (__m512)_mm512_cvtne2ps_pbh(f1, f0);
}

/* Values 32 t .. 32 t + 31 (t = 0..7) of one Q4_K / Q6_K super-block as bf16, in the same
 * order: each dequantized as kquant.h's molmo_q4_k_value / molmo_q6_k_value (Q4_K: the exact
 * (d sc) q less dmin m, one rounding; Q6_K: (d scale) (q - 32), exact) and rounded to bf16 to
 * nearest even. */
static __m512 dequant_kstep_bf16(int q4k, const uint8_t *blk, int t) {
    __m256i q;       /* the 32 integers, as bytes: unsigned for Q4_K, signed for Q6_K */
    __m512 sc0, sc1; /* the scale of values 0-15 and 16-31 */
    __m512 mv = _mm512_setzero_ps(); /* Q4_K: dmin m */
    if (q4k) {
        uint16_t dh, mh;
        memcpy(&dh, blk, 2);
        memcpy(&mh, blk + 2, 2);
        int sc, m;
        molmo_q4_k_scale_min(blk + 4, t, &sc, &m);
        q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * (t / 2)));
        if (t & 1) q = _mm256_srli_epi16(q, 4);
        q = _mm256_and_si256(q, _mm256_set1_epi8(15));
        sc0 = sc1 = _mm512_set1_ps(_cvtsh_ss(dh) * (float)sc);
        mv = _mm512_set1_ps(_cvtsh_ss(mh) * (float)m);
    } else {
        const int h = t / 4, sb = t % 4;
        __m256i lo = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32 * (sb & 1)));
        if (sb >= 2) lo = _mm256_srli_epi16(lo, 4);
        lo = _mm256_and_si256(lo, _mm256_set1_epi8(15));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
        hi = _mm256_and_si256(_mm256_srli_epi16(hi, 2 * sb), _mm256_set1_epi8(3));
        q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
        uint16_t dh;
        memcpy(&dh, blk + 208, 2);
        const float d = _cvtsh_ss(dh);
        sc0 = _mm512_set1_ps(d * (float)(int8_t)blk[192 + 2 * t]);
        sc1 = _mm512_set1_ps(d * (float)(int8_t)blk[193 + 2 * t]);
    }
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    __m512 f0 = _mm512_cvtepi32_ps(q4k ? _mm512_cvtepu8_epi32(q0) : _mm512_cvtepi8_epi32(q0));
    __m512 f1 = _mm512_cvtepi32_ps(q4k ? _mm512_cvtepu8_epi32(q1) : _mm512_cvtepi8_epi32(q1));
    f0 = _mm512_mul_ps(f0, sc0); /* exact */
    f1 = _mm512_mul_ps(f1, sc1);
    if (q4k) { /* less dmin m: the one rounding (a contraction to fma rounds the same) */
        f0 = _mm512_sub_ps(f0, mv);
        f1 = _mm512_sub_ps(f1, mv);
    }
    return (__m512)_mm512_cvtne2ps_pbh(f1, f0);
}

/* Values k .. k + 31 (k a multiple of 32) of one quantized weight row as bf16: a Q8_0 / Q4_0
 * block or an eighth of a Q4_K / Q6_K super-block. */
static __m512 dequant_step_bf16(molmo_dtype wt, const uint8_t *row, int k) {
    const size_t b = (size_t)(k / MOLMO_QK); /* the Q8_0 / Q4_0 block */
    switch (wt) {
    case MOLMO_DTYPE_Q8_0: return dequant_block_bf16(1, row + b * MOLMO_Q8_0_BYTES);
    case MOLMO_DTYPE_Q4_0: return dequant_block_bf16(0, row + b * MOLMO_Q4_0_BYTES);
    case MOLMO_DTYPE_Q4_K:
        return dequant_kstep_bf16(1, row + (size_t)(k / MOLMO_QK_K) * MOLMO_Q4_K_BYTES,
                                  k % MOLMO_QK_K / KS);
    default:
        return dequant_kstep_bf16(0, row + (size_t)(k / MOLMO_QK_K) * MOLMO_Q6_K_BYTES,
                                  k % MOLMO_QK_K / KS);
    }
}

/* The weights of columns j0 .. j0 + 31 (zero beyond n1), k steps [s0, s0 + ks) (zero beyond K),
 * as bf16 weight tiles: per step, the tiles of columns 0-15 and 16-31. BF16 weights as stored,
 * quantized ones dequantized (their K is a multiple of 32: a step holds no values beyond K). A
 * tile row p is dword p (k = 2p, 2p+1) of each of its 16 columns: a 16 x 16 dword transpose. */
static void pack_panel(const molmo_matmul_args *a, size_t ldw, int j0, int n1, int k0, int ks,
                       uint8_t *pw) {
    const uint8_t *w = a->w;
    for (int s = 0; s < ks; s++)
        for (int h = 0; h < NT; h++) {
            const int k = k0 + s * KS, n = a->K - k < KS ? a->K - k : KS;
            __m512 r[16];
            if (a->wt == MOLMO_DTYPE_BF16) { /* k < K: n >= 1 */
                const __mmask32 m = (__mmask32)(n >= 32 ? 0xffffffffu : (1u << n) - 1u);
                for (int c = 0; c < 16; c++) {
                    const int j = j0 + 16 * h + c;
                    r[c] = j < n1 ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(
                                        m, (const uint16_t *)w + (size_t)j * (size_t)a->K + k))
                                  : _mm512_setzero_ps();
                }
            } else if (molmo_dtype_is_x16(a->wt)) { /* each column's block put together */
                const int q8 = a->wt == MOLMO_DTYPE_Q8_0_X16;
                for (int c = 0; c < 16; c++) {
                    const int j = j0 + 16 * h + c;
                    uint8_t blk[MOLMO_Q8_0_BYTES];
                    if (j < n1) molmo_x16_block(w, a->wt, a->K / MOLMO_QK, j, k / MOLMO_QK, blk);
                    r[c] = j < n1 ? dequant_block_bf16(q8, blk) : _mm512_setzero_ps();
                }
            } else {
                for (int c = 0; c < 16; c++) {
                    const int j = j0 + 16 * h + c;
                    r[c] = j < n1 ? dequant_step_bf16(a->wt, w + (size_t)j * ldw, k)
                                  : _mm512_setzero_ps();
                }
            }
            avx512_transpose16_ps(r);
            uint8_t *t = pw + ((size_t)s * NT + (size_t)h) * TILE;
            for (int p = 0; p < 16; p++) _mm512_store_ps((float *)(t + 64 * (size_t)p), r[p]);
        }
}

/* Where a group's sums start and end within a K block: from zero (the first block of K), from
 * y (the first block of a later K chunk), or from the group's slot in the sum buffer; to that
 * slot, or to y (+ bias) after the chunk's last block. f32 round trips are exact, so where the
 * sums rest between blocks never changes a bit. */
enum { FROM_ZERO, FROM_Y, FROM_BUF };

/* y rows [0, mr) x columns [0, nc) <-> one 1 KiB tile image (rows 64 bytes apart) */
static void y_to_tile(const float *y, size_t ldy, int mr, int nc, uint8_t *t) {
    const __mmask16 m = avx512_tail(nc);
    for (int i = 0; i < TR; i++)
        _mm512_store_ps((float *)(t + 64 * i),
                        i < mr ? _mm512_maskz_loadu_ps(m, y + (size_t)i * ldy) : _mm512_setzero_ps());
}

static void tile_to_y(const uint8_t *t, float *y, size_t ldy, int mr, int nc, const float *bias) {
    const __mmask16 m = avx512_tail(nc);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        __m512 v = _mm512_load_ps((const float *)(t + 64 * i));
        if (bias) v = _mm512_add_ps(v, b);
        _mm512_mask_storeu_ps(y + (size_t)i * ldy, m, v);
    }
}

/* One 16-row group against a panel of two 16-column tiles (weights in tiles 1, 2), ks steps:
 * per step the weight tiles are loaded once, each activation part once (tile 0) for both. The
 * sums live in tiles c0, c1; consecutive groups alternate between 3, 4 and 5, 6 so that a
 * group's first loads do not wait for the previous group's last products. cs: the group's two
 * tile images in the sum buffer (contiguous, L1/L2: storing tiles straight into rows of y,
 * ldy apart, and reloading them per K block ran at a third of the speed). */
#define GROUP_BODY(c0, c1)                                                                         \
    do {                                                                                           \
        if (from == FROM_ZERO) {                                                                   \
            _tile_zero(c0);                                                                        \
            _tile_zero(c1);                                                                        \
        } else {                                                                                   \
            if (from == FROM_Y) {                                                                  \
                y_to_tile(y, ldy, mr, nc[0], cs);                                                  \
                y_to_tile(y + 16, ldy, mr, nc[1], cs + TILE); /* nc[1] <= 0: zeros */              \
                __asm__ volatile("" ::: "memory");                                                 \
            }                                                                                      \
            _tile_loadd(c0, cs, 64);                                                               \
            _tile_loadd(c1, cs + TILE, 64);                                                        \
        }                                                                                          \
        for (int s = 0; s < ks; s++) {                                                             \
            const uint8_t *a = xg + (size_t)s * np * TILE, *b = pw + (size_t)s * NT * TILE;        \
            _tile_loadd(1, b, 64);                                                                 \
            _tile_loadd(2, b + TILE, 64);                                                          \
            for (int part = 0; part < np; part++) {                                                \
                _tile_loadd(0, a + (size_t)part * TILE, 64);                                       \
                _tile_dpbf16ps(c0, 0, 1);                                                          \
                _tile_dpbf16ps(c1, 0, 2);                                                          \
            }                                                                                      \
        }                                                                                          \
        _tile_stored(c0, cs, 64);                                                                  \
        _tile_stored(c1, cs + TILE, 64);                                                           \
        if (to_y) {                                                                                \
            tile_to_y(cs, y, ldy, mr, nc[0], bias);                                                \
            if (nc[1] > 0) tile_to_y(cs + TILE, y + 16, ldy, mr, nc[1], bias ? bias + 16 : NULL);  \
        }                                                                                          \
    } while (0)

static void group(const uint8_t *xg, int np, const uint8_t *pw, int ks, uint8_t *cs, float *y,
                  size_t ldy, int mr, const int nc[NT], int from, int to_y, const float *bias,
                  int odd) {
    if (odd)
        GROUP_BODY(5, 6);
    else
        GROUP_BODY(3, 4);
}

/* Workspace: the weight panel of one K block, then per group of a row chunk its two sum tiles
 * and its split activations for a K chunk (kcs steps); without a workspace, a stack buffer for
 * one group and one block. Every row chunk packs the weight panels again (quantized weights
 * with their dequantization), every K chunk after the first reads and writes y again: plan() picks
 * the number of row chunks whose estimated cost of the two is least. The estimates, from the
 * kernel's profile on one core: packing ~0.1 ns per bf16 weight, ~0.17 dequantizing Q8_0;
 * a round trip of y ~0.8 ns per element while a thread's y block stays within 8 MiB, ~3 ns
 * beyond (from DRAM; a K chunk that spans all of K also lets the next panel's weights be
 * prefetched). 2 threads, one-pass: 577x1024x4096 (Q8_0) 4.5 -> 3.1 ms, 740x3584x3584 10.4 ->
 * 9.1, 740x3584x18944 75-84 -> 63-77; 740x18944x3584 (a 28 MB y block) keeps whole K: 65-69 ms,
 * against 80 with 2 K chunks. The former rule (K as long as 8 row groups allow) is what plan()
 * gives for that shape. */
#define PANEL_BYTES ((size_t)KC * NT * TILE)
#define PACK_NS_BF16 0.1
#define PACK_NS_QUANT 0.17
#define Y_TRIP_NS 0.8
#define Y_TRIP_NS_DRAM 3.0
#define Y_CACHED_BYTES (8u << 20)
static size_t group_bytes(int kcs, int np) { return (size_t)NT * TILE + (size_t)kcs * np * TILE; }

static void plan(size_t bytes, int groups, int nks, int np, int cols, int quant, int *max_groups,
                 int *kcs) {
    const double y_ns = (double)groups * TR * cols * sizeof(float) > Y_CACHED_BYTES ? Y_TRIP_NS_DRAM
                                                                                   : Y_TRIP_NS;
    double best = -1;
    *max_groups = 1;
    *kcs = KC; /* what the stack buffer holds */
    for (int r = 1; r <= groups; r++) {
        const int gp = (groups + r - 1) / r;
        if (r > 1 && (groups + r - 2) / (r - 1) == gp) continue; /* the same chunks as r - 1 */
        if (bytes < PANEL_BYTES + (size_t)gp * group_bytes(KC, np)) continue;
        int ks = (int)(((bytes - PANEL_BYTES) / (size_t)gp - (size_t)NT * TILE) / ((size_t)np * TILE));
        ks = ks >= nks ? nks : ks / KC * KC;
        const int k_chunks = (nks + ks - 1) / ks;
        const double cost = r * (double)cols * nks * KS * (quant ? PACK_NS_QUANT : PACK_NS_BF16) +
                            (k_chunks - 1) * (double)groups * TR * cols * y_ns;
        if (best < 0 || cost < best) best = cost, *max_groups = gp, *kcs = ks;
    }
}

/* The weights packed once (kernels.h, matmul_wq): panel p (columns 32p .. 32p + 31) at
 * p * nks * PANEL_STEP bytes, its k steps one after the other, each as pack_panel lays out a
 * step. Packing every panel of all K once, instead of each chunk of rows packing the panels of
 * its K blocks again, takes the strided reads and the transposes out of the row chunks
 * (the bf16 ViT's four shapes on 2 threads: 17.3-18.7 -> 15.2-17.2 ms, measured with a
 * per-thread buffer in session 13). */
#define PANEL_STEP ((size_t)NT * TILE)
_Static_assert(NC == MOLMO_WQ_COLS, "packed panels are the kernel's panels");

size_t molmo_k_matmul_bf16_amx_wq_bytes(const molmo_matmul_args *a) {
    const int nks = (a->K + KS - 1) / KS, groups = (a->M + TR - 1) / TR, np = a->x_bf16 ? 1 : 3;
    int max_groups, kcs;
    /* only where a thread's rows come in more than one chunk (a pool thread's workspace):
     * packing once in one chunk is what the kernel does anyway */
    plan(MOLMO_POOL_SCRATCH_BYTES, groups, nks, np, a->N, a->wt != MOLMO_DTYPE_BF16, &max_groups,
         &kcs);
    if (max_groups >= groups) return 0;
    return (size_t)((a->N + NC - 1) / NC) * (size_t)nks * PANEL_STEP;
}

void molmo_k_matmul_bf16_amx_wq(const molmo_matmul_args *a, int p0, int p1, void *wq) {
    const int nks = (a->K + KS - 1) / KS;
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K);
    for (int p = p0; p < p1; p++)
        pack_panel(a, ldw, p * NC, a->N, 0, nks, (uint8_t *)wq + (size_t)p * nks * PANEL_STEP);
}

void molmo_k_matmul_bf16_amx(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats) {
    _Alignas(64) uint8_t stack[PANEL_BYTES + NT * TILE + KC * 3 * TILE];
    size_t bytes;
    uint8_t *pw = molmo_x86_work_buffer(ws, ws_floats, stack, sizeof stack, &bytes);
    const int K = a->K, nks = (K + KS - 1) / KS, np = a->x_bf16 ? 1 : 3;
    int max_groups, kcs;
    plan(bytes, (m1 - m0 + TR - 1) / TR, nks, np, n1 - n0, a->wt != MOLMO_DTYPE_BF16, &max_groups, &kcs);
    uint8_t *cs = pw + PANEL_BYTES, *xs = cs + (size_t)max_groups * NT * TILE;
    const size_t ldx = (size_t)a->ldx, ldy = (size_t)a->ldy, ldw = molmo_dtype_row_bytes(a->wt, K);
    /* the panels packed once, where this call's panels are theirs */
    const uint8_t *wq = a->wq && n0 % NC == 0 ? (const uint8_t *)a->wq : NULL;
    molmo_x86_amx_configure_full(7); /* their roles: the file header */
    for (int mb0 = m0; mb0 < m1; mb0 += max_groups * TR) {
        const int mb1 = m1 - mb0 < max_groups * TR ? m1 : mb0 + max_groups * TR;
        const int groups = (mb1 - mb0 + TR - 1) / TR;
        for (int c0 = 0; c0 < nks; c0 += kcs) {
            const int cn = nks - c0 < kcs ? nks - c0 : kcs, last_chunk = c0 + cn == nks;
            split_rows(a->x + (size_t)mb0 * ldx, ldx, mb1 - mb0, K, c0 * KS, cn, np, xs);
            for (int j0 = n0; j0 < n1; j0 += NC) {
                int nc[NT];
                for (int h = 0; h < NT; h++) nc[h] = n1 - j0 - 16 * h < 16 ? n1 - j0 - 16 * h : 16;
                const float *bias = last_chunk && a->bias ? a->bias + j0 : NULL;
                /* one pass: the next panel's weight rows into L2 over this panel's groups
                 * (577x4096x1024, 2 threads: 1570-1670 -> 1820-1845 GFLOP/s; with three
                 * passes it measured 3-10% slower, so not there) */
                molmo_x86_l2_ahead f;
                const int quota = molmo_x86_l2_next_panel(&f, a->w, ldw, j0, NC, n1,
                                                          !wq && np == 1 && cn == nks,
                                                          (cn + KC - 1) / KC * groups);
                const uint8_t *panel = wq ? wq + (size_t)(j0 / NC) * nks * PANEL_STEP : NULL;
                for (int b0 = 0; b0 < cn; b0 += KC) {
                    const int ks = cn - b0 < KC ? cn - b0 : KC;
                    const int from = b0 > 0 ? FROM_BUF : c0 > 0 ? FROM_Y : FROM_ZERO;
                    const int to_y = b0 + ks == cn;
                    const uint8_t *pb = panel ? panel + (size_t)(c0 + b0) * PANEL_STEP : pw;
                    if (!panel) pack_panel(a, ldw, j0, n1, (c0 + b0) * KS, ks, pw);
                    /* the tile loads read what these vector stores wrote; GCC's tileloadd asm
                     * does not say it reads memory */
                    __asm__ volatile("" ::: "memory");
                    for (int g = 0; g < groups; g++) {
                        const int i0 = mb0 + g * TR, mr = mb1 - i0 < TR ? mb1 - i0 : TR;
                        molmo_x86_l2_ahead_lines(&f, quota);
                        group(xs + ((size_t)g * cn + (size_t)b0) * np * TILE, np, pb, ks,
                              cs + (size_t)g * NT * TILE, a->y + (size_t)i0 * ldy + j0, ldy, mr, nc,
                              from, to_y, bias, g & 1);
                    }
                }
            }
        }
    }
    _tile_release();
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

/* avx512_amx.c — y = x · W^T (+ b) for Q8_0 / Q4_0 weights on AMX tiles (TDPBSSD), for the
 * GEMM shapes (calls of more than 4 rows: the ViT, prefill). The arithmetic is the
 * specification of ref/ref_quant.c bit for bit, as in avx512_quant.c (read both first):
 * activations are quantized per block of 32 with molmo_quantize_act_block's operations, each
 * block's dot products are exact int32 sums, and every output takes one fused multiply-add per
 * block, in block order:  acc = fma((float)isum, dx * dw, acc).
 *
 * The tiles compute the integer part: one TDPBSSD multiplies a 16-row x 32-byte tile of
 * quantized activations (one block of 16 rows, signed) by an 8-row x 64-byte tile of weights
 * (one block of 16 columns, signed, in the VNNI layout: row g holds k = 4g .. 4g+3 of each
 * column) into a 16 x 16 tile of int32 block sums. The tile is stored to a 1 KiB buffer and
 * AVX-512 applies the block's f32 step to 16 accumulators (one zmm per row, kept in registers
 * over a panel of blocks). For each 16 x 16 output tile the tiles first compute all blocks of
 * the panel (four sum tiles in turn, each stored two blocks after its product), then the
 * vectors apply them in block order.
 *
 * Why this shape (docs/kernels.md, "AMX tiles"): the exact per-block f32 step costs 3 vector
 * operations (convert, scale product, FMA) per 16 outputs and 32 k, ~21 cycles a block; the
 * tile unit runs its loads, product and 1 KiB store one after the other, ~25-32 cycles a
 * block. Interleaving the two (the next tile's products between this tile's vector steps)
 * measured 25-35% slower than this phase order, so a block costs about their sum, against
 * ~100 cycles in the VNNI tile. The weight panel (48 columns x 16 blocks, 27 KiB, signed:
 * Q8_0's bytes, Q4_0's nibbles - 8) is packed once per chunk of rows and reused by every
 * 16-row group of the chunk.
 *
 * Rows are processed in groups of 16; the quantized activations of the chunk are padded with
 * zero rows to a multiple of 16, whose sums are computed and dropped. With several threads the
 * op layer has x quantized once into a shared buffer (a->xq, kernels.h matmul_xq): every
 * thread computes some columns of all rows and would otherwise quantize all of x itself;
 * the chunks are then planned for L2 (plan_xq). Partial sums rest in a
 * contiguous accumulator buffer between the panels of a K chunk and in y between K chunks
 * (exact f32 round trips), so any tiling and thread split gives the same bits. The y lines an
 * output tile writes are prefetched for writing while its tiles work: y's rows are far apart
 * and its stores missed a line each (with the buffer and the prefetch, 577x4096x1024 on 2
 * threads 4.0 -> 3.5 ms, 577x1024x4096 5.0 -> 4.4; session 6). The caller (avx512_quant.c)
 * takes this path only where cpu.h says AMX-INT8 is usable; without enough workspace it
 * returns 0 and the VNNI kernel runs (same bits). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/avx512_qpack.h"
#include "kernels/x86/x86.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-int8"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-int8")
#endif

#define TR 16                      /* rows of a tile group */
#define NV 3                       /* 16-column groups per panel */
#define NR (16 * NV)               /* columns per panel */
#define KP 16                      /* blocks per panel */
#define GB_BYTES (512 + 64)        /* one block of 16 columns: weight tile, then 16 f32 scales */
#define PB_BYTES (NV * GB_BYTES)   /* one block of a panel */

void molmo_x86_amx_configure(int n, const uint8_t rows[], const uint16_t colsb[]) {
    struct { /* the LDTILECFG memory layout, palette 1 */
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < n && t < 8; t++) c.rows[t] = rows[t], c.colsb[t] = colsb[t];
    /* Not _tile_loadconfig: GCC 12's asm for it declares a read of 8 bytes only, so the stores
     * of the rows and widths above were dropped as dead (seen: SIGILL on the first tile op).
     * The "m" operand here is the whole 64-byte configuration. */
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

/* Tile numbers: A (activations) 0/1 and B (weights) 2/3, alternating per block so that a
 * block's loads do not wait for the previous block's product to release its tiles; C (sums)
 * 4-7 in turn, so that a block's sums are stored two blocks later, while the next products
 * run (tile_sums). A: 16 rows x one block of int8; B: 8 rows of 16 columns x 4 k; C: 16 x 16
 * int32. */
static void configure_tiles(void) {
    static const uint8_t rows[8] = {TR, TR, 8, 8, TR, TR, TR, TR};
    static const uint16_t colsb[8] = {32, 32, 64, 64, 64, 64, 64, 64};
    molmo_x86_amx_configure(8, rows, colsb);
}

/* Panel of columns j0 .. j0+nr-1, blocks kb .. kb+nbk-1, of W (type wt, nb blocks a row) into
 * pw: per block and 16-column group, the 8 transposed weight vectors made signed, then the 16
 * scales as f32 (columns beyond nr: zero weights and scales). Rows are loaded signed as they
 * are (not through load16, whose Q8_0 bytes come + 128: flipping back cost the ViT ~3%). */
static void pack_panel(molmo_dtype wt, const uint8_t *w, size_t ldw, int nb, int j0, int nr,
                       int kb, int nbk, uint8_t *pw) {
    const int q8 = molmo_dtype_stored(wt) == MOLMO_DTYPE_Q8_0, x16 = molmo_dtype_is_x16(wt);
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const __m512i eight = _mm512_set1_epi8(8), flip = _mm512_set1_epi8((char)0x80);
    for (int b = 0; b < nbk; b++) {
        for (int v = 0; v < NV; v++) {
            uint8_t *pg = pw + (size_t)b * PB_BYTES + (size_t)v * GB_BYTES;
            const int nc = nr - 16 * v;
            if (nc <= 0) {
                memset(pg, 0, GB_BYTES);
                continue;
            }
            const int n16 = nc < 16 ? nc : 16;
            __m512i r[8];
            __m512 ds;
            if (x16) { /* the whole group lies there: mask the scales */
                const uint8_t *g = molmo_x16_group(w, wt, nb, j0 + 16 * v);
                load16_x16(q8, g, nb, kb + b, r); /* Q8_0 + 128, Q4_0 nibbles: made signed */
                for (int k = 0; k < 8; k++)
                    r[k] = q8 ? _mm512_xor_si512(r[k], flip) : _mm512_sub_epi8(r[k], eight);
                ds = _mm512_maskz_mov_ps(avx512_tail(n16), load_scales16_x16(g, kb + b));
            } else {
                const uint8_t *src = w + (size_t)(j0 + 16 * v) * ldw + (size_t)(kb + b) * bb;
                if (q8) {
                    avx512_load_cols32x16(src + 2, ldw, n16, r); /* the signed bytes as stored */
                } else {
                    load16_q4_0(src, ldw, n16, r); /* nibbles 0..15, made signed: - 8 */
                    for (int k = 0; k < 8; k++) r[k] = _mm512_sub_epi8(r[k], eight);
                }
                ds = load_scales16(src, ldw, n16);
            }
            for (int k = 0; k < 8; k++) _mm512_store_si512((__m512i *)(pg + 64 * k), r[k]);
            _mm512_store_ps((float *)(pg + 512), ds);
        }
    }
}

/* Lane i of the result = the largest of the 16 lanes of v[i] (unsigned): a transposing tree
 * of 15 two-source steps instead of a reduction per vector. */
INLINE __m512i max16_epu32(const __m512i v[16]) {
    __m512i a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_max_epu32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)
        b[i] = _mm512_max_epu32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                                _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
    const __m512i c0 = _mm512_max_epu32(_mm512_shuffle_i32x4(b[0], b[1], 0x88),
                                        _mm512_shuffle_i32x4(b[0], b[1], 0xdd));
    const __m512i c1 = _mm512_max_epu32(_mm512_shuffle_i32x4(b[2], b[3], 0x88),
                                        _mm512_shuffle_i32x4(b[2], b[3], 0xdd));
    return _mm512_max_epu32(_mm512_shuffle_i32x4(c0, c1, 0x88), _mm512_shuffle_i32x4(c0, c1, 0xdd));
}

/* One block of 32 columns of 16 rows (x: the first row's block, rows ldx apart; rows >= nr
 * read as zero) with quantize_block32's operations, its scalar steps done for the 16 rows at
 * once: row r's int8 values to q + 32 r (one A tile), the 16 scales to dx. */
INLINE void quantize_tile(const float *x, size_t ldx, int nr, uint8_t *q, float *dx) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    __m512 v[TR][2];
    __m512i m[TR];
    for (int r = 0; r < TR; r++) {
        const __mmask16 mr = r < nr ? 0xffff : 0;
        v[r][0] = _mm512_maskz_loadu_ps(mr, x + (size_t)r * ldx);
        v[r][1] = _mm512_maskz_loadu_ps(mr, x + (size_t)r * ldx + 16);
        m[r] = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(v[r][0]), absmask),
                                _mm512_and_si512(_mm512_castps_si512(v[r][1]), absmask));
    }
    const __m512i amax_bits = max16_epu32(m);
    /* the scalar code's d = amax / 127, id = d > 0 ? 1 / d : 0, and its test of both; where
     * it fails the row's values are 0 (the zero rows of a short group included: d = 0) */
    const __m512 d = _mm512_div_ps(_mm512_castsi512_ps(amax_bits), _mm512_set1_ps(127.0f));
    const __mmask16 pos = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 id = _mm512_maskz_div_ps(pos, _mm512_set1_ps(1.0f), d);
    const __mmask16 ok = _mm512_cmplt_epu32_mask(amax_bits, _mm512_set1_epi32(0x7f800000)) &
                         _mm512_cmp_ps_mask(id, _mm512_setzero_ps(), _CMP_GT_OQ) &
                         _mm512_cmp_ps_mask(id, _mm512_set1_ps(3.40282347e38f), _CMP_LE_OQ);
    _mm512_storeu_ps(dx, d);
    for (int r = 0; r < TR; r++) {
        const __m512 iv = _mm512_permutexvar_ps(_mm512_set1_epi32(r), id);
        const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v[r][0], iv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v[r][1], iv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256i qr = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)),
                                                   _mm512_cvtepi32_epi8(q1), 1);
        _mm256_storeu_si256((__m256i *)(q + 32 * r), (ok >> r) & 1 ? qr : _mm256_setzero_si256());
    }
}

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc), quantized into groups of 16 rows
 * (the last group's rows beyond `rows` are zero): per group, kc tiles of 16 rows x 32 bytes
 * (512 B, contiguous, so a tile load reads 8 consecutive lines), then kc x 16 f32 scales dx
 * (one vector per block). Group stride kc * GQ_BYTES. */
#define GQ_BYTES (512 + 64)
static void quantize_groups(const float *x, size_t ldx, int rows, int kb0, int kc, uint8_t *xc) {
    const size_t gs = (size_t)kc * GQ_BYTES;
    for (int r0 = 0; r0 < rows; r0 += TR) {
        uint8_t *g = xc + (size_t)(r0 / TR) * gs;
        const float *xr = x + (size_t)r0 * ldx + (size_t)kb0 * MOLMO_QK;
        for (int b = 0; b < kc; b++)
            quantize_tile(xr + 32 * (size_t)b, ldx, rows - r0, g + 512 * (size_t)b,
                          (float *)(g + (size_t)kc * 512) + 16 * b);
    }
}

/* acc[i] = fma((float)sums[i][:], dx[i] * dw, acc[i]) for the 16 rows of one stored sum tile. */
INLINE void apply_block(__m512 acc[TR], const int32_t *sums, const float *dx, __m512 dw) {
#pragma GCC unroll 16
    for (int i = 0; i < TR; i++) {
        const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512((const __m512i *)(sums + 16 * i)));
        acc[i] = _mm512_fmadd_ps(s, _mm512_mul_ps(_mm512_set1_ps(dx[i]), dw), acc[i]);
    }
}

/* Block b's int32 sums of the 16-row group g (its first block of the panel) against column
 * group v of the panel pw, on tiles ta, tb, tc (literal numbers: a macro), left in tc. */
#define TILE_DP(ta, tb, tc, g, pw, v, b)                                                           \
    do {                                                                                           \
        _tile_loadd(ta, (g) + 512 * (size_t)(b), 32);                                              \
        _tile_loadd(tb, (pw) + (size_t)(b) * PB_BYTES + (size_t)(v) * GB_BYTES, 64);               \
        _tile_zero(tc);                                                                            \
        _tile_dpbssd(tc, ta, tb);                                                                  \
    } while (0)

/* Block j's sums, held in tile 4 + j % 4, into sums[j]. */
INLINE void tile_store(int j, int32_t (*sums)[TR * 16]) {
    switch (j & 3) {
    case 0: _tile_stored(4, sums[j], 64); break;
    case 1: _tile_stored(5, sums[j], 64); break;
    case 2: _tile_stored(6, sums[j], 64); break;
    default: _tile_stored(7, sums[j], 64); break;
    }
}

/* The nbk blocks' sums of group g against column group v of pw into sums[0 .. nbk). Each
 * block's product goes into the next of four sum tiles and is stored two blocks later: storing
 * it right after its product (two sum tiles) made the tile unit wait on each store, 7.8 against
 * 6.3 ns a block in L1 (one SPR core). */
INLINE void tile_sums(const uint8_t *g, const uint8_t *pw, int v, int nbk, int32_t (*sums)[TR * 16]) {
    for (int b = 0; b < nbk; b++) {
        switch (b & 3) {
        case 0: TILE_DP(0, 2, 4, g, pw, v, b); break;
        case 1: TILE_DP(1, 3, 5, g, pw, v, b); break;
        case 2: TILE_DP(0, 2, 6, g, pw, v, b); break;
        default: TILE_DP(1, 3, 7, g, pw, v, b); break;
        }
        if (b >= 2) tile_store(b - 2, sums);
    }
    for (int b = nbk >= 2 ? nbk - 2 : 0; b < nbk; b++) tile_store(b, sums);
}
#undef TILE_DP

/* Where a tile's accumulators start and end within a panel of blocks: from zero (the first
 * block of K), from y (the first panel of a later K chunk) or from its slot in the chunk's
 * accumulator buffer; to that slot, or to y (+ bias) after the chunk's last panel. The buffer
 * holds each 16 x 16 tile contiguously (1 KiB), where y's rows are ldy apart (16 pages per
 * tile for a 4096-wide y). f32 round trips are exact: the bits never change. */
enum { FROM_ZERO, FROM_Y, FROM_BUF };

/* Every 16 x 16 tile of a panel (nbk blocks, nr columns) for the row groups at xg (group
 * stride gs; dx at dx_off from a group's first panel block): per tile, the tiles compute the
 * block sums into sums, then the vectors apply them in block order with the 16 accumulators
 * in registers. y: the chunk's first row and the panel's first column; accs: the accumulator
 * slots of the chunk's tiles (NV per row group), or NULL (then from/to are y). */
static void panel(int nbk, const uint8_t *xg, size_t gs, size_t dx_off, const uint8_t *pw,
                  int32_t (*sums)[TR * 16], float *y, size_t ldy, float *accs, int rows, int nr,
                  int from, int to_y, const float *bias, molmo_x86_l2_ahead *f, int pf_quota) {
    for (int i0 = 0; i0 < rows; i0 += TR) {
        const uint8_t *g = xg + (size_t)(i0 / TR) * gs;
        const float *dx = (const float *)(g + dx_off);
        const int mr = rows - i0 < TR ? rows - i0 : TR;
        for (int v = 0; v < NV && 16 * v < nr; v++) {
            molmo_x86_l2_ahead_lines(f, pf_quota);
            float *yt = y + (size_t)i0 * ldy + 16 * (size_t)v;
            /* y's lines for writing (and reading), while the tiles work: the stores at the end
             * would otherwise miss one line per row (rows ldy apart), ~16% of the matmul */
            if (to_y || from == FROM_Y)
                for (int i = 0; i < mr; i++) __builtin_prefetch(yt + (size_t)i * ldy, 1, 3);
            tile_sums(g, pw, v, nbk, sums);
            const __mmask16 mk = avx512_tail(nr - 16 * v);
            float *slot = accs ? accs + ((size_t)(i0 / TR) * NV + (size_t)v) * TR * 16 : NULL;
            __m512 acc[TR];
#pragma GCC unroll 16
            for (int i = 0; i < TR; i++)
                acc[i] = from == FROM_BUF            ? _mm512_load_ps(slot + 16 * i)
                         : from == FROM_Y && i < mr ? _mm512_maskz_loadu_ps(mk, yt + (size_t)i * ldy)
                                                     : _mm512_setzero_ps();
            for (int b = 0; b < nbk; b++)
                apply_block(acc, sums[b], dx + 16 * b,
                            _mm512_load_ps((const float *)(pw + (size_t)b * PB_BYTES +
                                                           (size_t)v * GB_BYTES + 512)));
            if (!to_y) {
#pragma GCC unroll 16
                for (int i = 0; i < TR; i++) _mm512_store_ps(slot + 16 * i, acc[i]);
                continue;
            }
            const __m512 bv = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * v) : _mm512_setzero_ps();
            for (int i = 0; i < mr; i++)
                _mm512_mask_storeu_ps(yt + (size_t)i * ldy, mk, bias ? _mm512_add_ps(acc[i], bv) : acc[i]);
        }
    }
}

/* Chunks for `rows` rows (padded to 16) in `bytes` after the panel: all K at once if it fits,
 * else whole panels of blocks for all rows, else one panel's blocks for as many 16-row groups
 * as fit. Each group also keeps NV accumulator tiles (3 KiB, *acc = 1) unless even one group
 * does not fit with them (*acc = 0: accumulators through y). Returns 0 when not even one group
 * fits. */
#define ACC_BYTES ((size_t)NV * TR * 16 * sizeof(float))
static int plan(size_t bytes, int rows, int nb, int *kc, int *mc, int *acc) {
    if (bytes < (size_t)KP * PB_BYTES + KP * GQ_BYTES) return 0;
    const size_t avail = bytes - (size_t)KP * PB_BYTES;
    *acc = avail >= KP * GQ_BYTES + ACC_BYTES;
    const size_t fixed = *acc ? ACC_BYTES : 0; /* per group */
    const int groups = (rows + TR - 1) / TR;
    *mc = groups * TR;
    if ((size_t)groups * (fixed + (size_t)nb * GQ_BYTES) <= avail) {
        *kc = nb;
    } else if ((size_t)groups * (fixed + KP * GQ_BYTES) <= avail) {
        *kc = (int)((avail / (size_t)groups - fixed) / GQ_BYTES) / KP * KP;
    } else {
        *kc = KP;
        *mc = (int)(avail / (fixed + KP * GQ_BYTES)) * TR;
    }
    return 1;
}

/* Chunks when x is pre-quantized (a->xq): the workspace holds only the panel and the
 * accumulators, and the chunk's A tiles are read from xq, reused by every column panel: they
 * should stay in L2 (2 MiB a core on SPR). All K at once, in as few near-equal row chunks as
 * keep them within XQ_L2_BYTES: a new row chunk packs the weights again, a new K chunk makes a
 * round trip of y instead, which cost more (577x1024x4096 on 2 threads: 4.7 ms with 4 K
 * chunks of all rows, 4.5 all rows at once (2.7 MB of A), 4.0 two row chunks of 19 and 18
 * groups, 4.2 three of 13). Only where the row chunks would get thin (fewer than
 * XQ_MIN_GROUPS, a 7B's 18944-wide down projection) are all rows taken in K chunks that fit. */
#define XQ_L2_BYTES ((size_t)1536 * 1024)
#define XQ_MIN_GROUPS 8
static int plan_xq(size_t bytes, int rows, int nb, int *kc, int *mc, int *acc) {
    if (bytes < (size_t)KP * PB_BYTES + ACC_BYTES) return 0;
    const int groups = (rows + TR - 1) / TR;
    const int acc_groups = (int)((bytes - (size_t)KP * PB_BYTES) / ACC_BYTES); /* >= 1 */
    const size_t per_group = (size_t)nb * GQ_BYTES;
    const int chunks = (int)(((size_t)groups * per_group + XQ_L2_BYTES - 1) / XQ_L2_BYTES);
    int g = (groups + chunks - 1) / chunks;
    *kc = nb;
    if (g < XQ_MIN_GROUPS && chunks > 1) {
        g = groups;
        *kc = (int)(XQ_L2_BYTES / ((size_t)groups * GQ_BYTES)) / KP * KP;
        *kc = *kc < KP ? KP : *kc;
    }
    g = g < acc_groups ? g : acc_groups;
    *mc = g * TR;
    *acc = 1;
    return 1;
}

/* x pre-quantized for every thread (kernels.h, matmul_xq): all M rows in groups of 16 as
 * quantize_groups lays out one K chunk, with the chunk = all of K: group g at g * nb *
 * GQ_BYTES. */
size_t molmo_k_matmul_q_amx_xq_bytes(const molmo_matmul_args *a) {
    return (size_t)((a->M + TR - 1) / TR) * (size_t)(a->K / MOLMO_QK) * GQ_BYTES;
}

void molmo_k_matmul_q_amx_xq(const molmo_matmul_args *a, int g0, int g1, void *xq) {
    const int nb = a->K / MOLMO_QK, r0 = g0 * TR, r1 = g1 * TR < a->M ? g1 * TR : a->M;
    if (r0 >= r1) return;
    quantize_groups(a->x + (size_t)r0 * (size_t)a->ldx, (size_t)a->ldx, r1 - r0, 0, nb,
                    (uint8_t *)xq + (size_t)g0 * (size_t)nb * GQ_BYTES);
}

int molmo_k_matmul_q_amx(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                         float *ws, size_t ws_floats) {
    const int nb = a->K / MOLMO_QK;
    const uint8_t *xq =
        a->xq && a->xq_kind == MOLMO_XQ_AMX && m0 % TR == 0 ? (const uint8_t *)a->xq : NULL;
    int kc, mc, use_acc;
    if (!ws || !(xq ? plan_xq : plan)(ws_floats * sizeof(float), m1 - m0, nb, &kc, &mc, &use_acc))
        return 0;
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    uint8_t *pw = (uint8_t *)ws;
    float *accs = use_acc ? (float *)(pw + (size_t)KP * PB_BYTES) : NULL;
    uint8_t *xc = pw + (size_t)KP * PB_BYTES + (use_acc ? (size_t)(mc / TR) * ACC_BYTES : 0);
    _Alignas(64) int32_t sums[KP][TR * 16];
    configure_tiles();
    for (int mb0 = m0; mb0 < m1; mb0 += mc) {
        const int mb1 = m1 - mb0 < mc ? m1 : mb0 + mc, rows = mb1 - mb0;
        for (int kb0 = 0; kb0 < nb; kb0 += kc) {
            const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
            /* the chunk's A tiles: xg for group 0, block kb0; tiles per group nt (the scales
             * follow them), the chunk's first block among them ko, group stride gs */
            const uint8_t *xg;
            int nt, ko;
            if (xq) {
                nt = nb, ko = kb0;
                xg = xq + (size_t)(mb0 / TR) * (size_t)nb * GQ_BYTES + 512 * (size_t)kb0;
            } else {
                nt = kcn, ko = 0, xg = xc;
                quantize_groups(a->x + (size_t)mb0 * ldx, ldx, rows, kb0, kcn, xc);
            }
            const size_t gs = (size_t)nt * GQ_BYTES;
            /* the tile loads read what the vector stores of the quantization and the packing
             * wrote, and GCC's tile-load asm does not say that it reads memory: keep the
             * compiler from moving those stores past it */
            __asm__ volatile("" ::: "memory");
            for (int j0 = n0; j0 < n1; j0 += NR) {
                const int nr = n1 - j0 < NR ? n1 - j0 : NR;
                /* the next column panel's rows into L2 over the (row group, column group)
                 * steps of this one */
                const int steps = (kcn + KP - 1) / KP * ((rows + TR - 1) / TR) * NV;
                molmo_x86_l2_ahead f;
                const int quota = molmo_x86_l2_next_panel(&f, a->w, ldw, j0, NR, n1, kcn == nb, steps);
                for (int pb0 = 0; pb0 < kcn; pb0 += KP) {
                    const int np = kcn - pb0 < KP ? kcn - pb0 : KP;
                    pack_panel(a->wt, a->w, ldw, nb, j0, nr, kb0 + pb0, np, pw);
                    __asm__ volatile("" ::: "memory");
                    const int last = kb0 + pb0 + np == nb, to_y = !accs || pb0 + np == kcn;
                    const int from = kb0 + pb0 == 0 ? FROM_ZERO : accs && pb0 > 0 ? FROM_BUF : FROM_Y;
                    panel(np, xg + 512 * (size_t)pb0, gs,
                          512 * (size_t)(nt - ko - pb0) + 64 * (size_t)(ko + pb0), pw, sums,
                          a->y + (size_t)mb0 * ldy + (size_t)j0, ldy, accs, rows, nr, from, to_y,
                          last && a->bias ? a->bias + j0 : NULL, &f, quota);
                }
            }
        }
    }
    _tile_release();
    return 1;
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

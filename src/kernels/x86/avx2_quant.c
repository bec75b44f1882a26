/* avx2_quant.c — y = x · W^T (+ b) for Q8_0 / Q4_0 weights with AVX2, and their exact
 * dequantization: the arithmetic of ref/ref_quant.c bit for bit, with the design of
 * avx512_quant.c (read that file's header first: activation layout, transposed weight vectors,
 * GEMV and GEMM paths) sized for 16 ymm registers.
 *
 * Without VNNI, products go through vpmaddubsw (unsigned x signed bytes -> int16 pair sums,
 * saturating) and vpmaddwd against ones (-> int32), with operands that can never saturate:
 *   - Q4_0: nibble (0..15) x xq (|xq| <= 127): a pair sum is at most 3810 in magnitude, so the
 *     int16 sums of all 8 groups of 4 values of a block (<= 30480) stay exact and are widened
 *     once per block; the nibble offset is the -8 * sum(xq) correction of the activations;
 *   - Q8_0: |wq| x (xq with the sign of wq) (vpabsb / vpsignb): a pair sum is at most
 *     2 * 128 * 127 = 32512, widened per group of 4 values.
 * Where the CPU has AVX-VNNI (molmo_kernels_avx_vnni: Intel client CPUs from Alder Lake on,
 * which have no AVX-512), one vpdpbusd replaces those 3-5 instructions per 4 k and 8 columns:
 * the ViT ran 1.64-1.70 -> 0.92 s a crop on 2 SPR threads. The same bits either way. The GEMV
 * and the tile are written once (avx2_quant_body.h) and included once per kind of product.
 * Weights of 8 columns are transposed into 8 vectors of 8 lanes x 4 bytes (lane = column).
 * GEMV (calls of at most 2 rows) uses them straight from registers, with the software prefetch
 * of the AVX-512 GEMV (x86.h): once AVX-VNNI had made the products cheap, decode without it got
 * ~55% of the read bandwidth (MolmoE-1B q8_0 on 2 SPR threads: 10.4 -> 15.2-15.6 tok/s, 9.7 ->
 * 13.2 without AVX-VNNI; session 2 had measured no gain when the products were the bound);
 * one row of x on Q4_0 rows takes Q_GEMV_Q4_ROWS1 instead (as avx512_quant.c's
 * gemv_q4_rows_1);
 * GEMM packs panels of NR = 16 columns x KP = 32 blocks and runs a register tile of MR = 3
 * rows x 16 columns (6 block accumulators, 6 f32 accumulators; with VNNI, two sets of block
 * accumulators for even and odd k groups spilled, and 2 rows x 16 columns ran ~10% slower).
 * Weights in an X16 layout (quant.h, laid out at load with --no-mmap) are read as each half of
 * a group of 16 columns, the 32-byte halves of its 64-byte vectors (load8_x16): the GEMV takes
 * a block's two halves one after the other, so the group's lines are read once; columns
 * before the first whole group of a call (direct calls only) go through the specification. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/ref/ref.h"
#include "kernels/x86/avx2_math.h"
#include "kernels/x86/x86.h"

#define NV 2                        /* 8-column groups per panel */
#define NR (8 * NV)                 /* columns per panel */
#define MR 3                        /* rows per register tile */
#define GEMV_ROWS 2                 /* calls with at most this many rows take the GEMV path */
#define KP 32 /* blocks per packed panel (18 KiB): y is loaded and stored once per panel, and
               * its rows are ldy apart; against 8 blocks the ViT ran 1.09-1.14 -> 0.92 s a crop
               * with AVX-VNNI, 1.81-1.88 -> 1.64-1.70 without (2 threads, SPR); 64 no faster */
#define PB_BYTES (NV * 256 + NR * 4) /* one packed block of a panel */
#define XB_BYTES (32 + 4 + 4)       /* one quantized activation block: q, dx, corr */
#define STACK_BYTES (32 * 1024)     /* buffer without a pool workspace */
_Static_assert(KP * PB_BYTES + MR * KP * XB_BYTES <= STACK_BYTES, "stack buffer too small");

#define INLINE static inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------- activation quantization */

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc), row stride kc * XB_BYTES: int8
 * q[32 kc] | f32 dx[kc] | i32 corr[kc], corr = -c * sum(q). Same operations as
 * molmo_quantize_act_block. */
static void quantize_rows(const float *x, size_t ldx, int rows, int kb0, int kc, int c,
                          uint8_t *xc) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx + (size_t)kb0 * MOLMO_QK;
        uint8_t *q = xc + (size_t)r * (size_t)kc * XB_BYTES;
        float *dx = (float *)(q + (size_t)kc * 32);
        int32_t *corr = (int32_t *)(dx + kc);
        for (int b = 0; b < kc; b++) {
            __m256 v[4];
            __m256i a = _mm256_setzero_si256();
            for (int t = 0; t < 4; t++) {
                v[t] = _mm256_loadu_ps(xr + 32 * b + 8 * t);
                a = _mm256_max_epu32(a, _mm256_and_si256(_mm256_castps_si256(v[t]), absmask));
            }
            __m128i m = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
            m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1));
            const uint32_t amax_bits = (uint32_t)_mm_cvtsi128_si32(m);
            float amax;
            memcpy(&amax, &amax_bits, 4);
            const float d = amax / 127.0f;
            const float id = d > 0.0f ? 1.0f / d : 0.0f;
            int32_t sum = 0;
            if (amax_bits < 0x7f800000u && id > 0.0f && id <= 3.40282347e38f) {
                const __m256 iv = _mm256_set1_ps(id);
                __m256i qi[4];
                for (int t = 0; t < 4; t++)
                    qi[t] = _mm256_cvttps_epi32(_mm256_round_ps(_mm256_mul_ps(v[t], iv),
                                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                const __m256i s = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
                __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
                s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
                sum = _mm_cvtsi128_si32(s4);
                /* packs work per 128-bit lane: 0xd8 puts the quarters back in order */
                const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]), w23 = _mm256_packs_epi32(qi[2], qi[3]);
                const __m256i b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23),
                                                               _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256((__m256i *)(q + 32 * b), b8);
            } else {
                memset(q + 32 * b, 0, 32);
            }
            dx[b] = d;
            corr[b] = -c * sum;
        }
    }
}

/* ---------------------------------------------------------------------------- weight loading */


/* One block of nc (<= 8, may be <= 0) columns (w: the block of the first column, ldw: the row
 * stride in bytes) as 8 transposed vectors: Q8_0 the signed bytes q, Q4_0 the nibbles. Columns
 * >= nc are zero (never read). */
INLINE void load8(int q8, const uint8_t *w, size_t ldw, int nc, __m256i r[8]) {
    if (q8) {
        for (int c = 0; c < 8; c++)
            r[c] = c < nc ? _mm256_loadu_si256((const __m256i *)(w + (size_t)c * ldw + 2)) : _mm256_setzero_si256();
        avx2_transpose8_epi32(r);
        return;
    }
    __m256i v[4]; /* v[p]: the 16 packed bytes of columns p and p + 4 */
    for (int p = 0; p < 4; p++) {
        const __m128i lo = p < nc ? _mm_loadu_si128((const __m128i *)(w + (size_t)p * ldw + 2)) : _mm_setzero_si128();
        const __m128i hi = p + 4 < nc ? _mm_loadu_si128((const __m128i *)(w + (size_t)(p + 4) * ldw + 2))
                                      : _mm_setzero_si128();
        v[p] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    }
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    const __m256i d[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                          _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_and_si256(d[k], m4);                         /* values 4k .. 4k+3 */
        r[4 + k] = _mm256_and_si256(_mm256_srli_epi16(d[k], 4), m4); /* values 16+4k .. */
    }
}

/* The fp16 scales of nc (<= 8) blocks at w, w + ldw, ... as f32 (lanes >= nc: 0). */
INLINE __m256 load_scales8(const uint8_t *w, size_t ldw, int nc) {
    if (nc <= 0) return _mm256_setzero_ps();
    if (ldw <= (size_t)INT32_MAX / 8) {
        const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)ldw));
        /* 4 bytes at each address: the scale and the first 2 bytes of its block's values */
        const __m256i g = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)w, idx, avx2_mask(nc), 1);
        const __m256i lo16 = _mm256_shuffle_epi8(g, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                                                     0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
        return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(lo16, 0x08)));
    }
    uint16_t h[8] = {0};
    for (int c = 0; c < nc; c++) memcpy(&h[c], w + (size_t)c * ldw, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/* Block b of the 8 columns `half` (0: the first 8 of the group, 1: the next 8) of the X16
 * group g (quant.h; nb blocks a row) as load8 makes them from rows: Q8_0's signed bytes (stored
 * + 128: flipped back), Q4_0's nibbles. Each 64-byte vector of the layout holds both halves. */
INLINE void load8_x16(int q8, const uint8_t *g, int nb, int b, int half, __m256i r[8]) {
    if (q8) {
        const uint8_t *v = g + 32 * (size_t)nb + 512 * (size_t)b + 32 * (size_t)half;
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (int k = 0; k < 8; k++) r[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(v + 64 * k)), flip);
        return;
    }
    const uint8_t *v = g + 32 * (size_t)nb + 256 * (size_t)b + 32 * (size_t)half;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; k++) {
        const __m256i d = _mm256_loadu_si256((const __m256i *)(v + 64 * k));
        r[k] = _mm256_and_si256(d, m4);
        r[4 + k] = _mm256_and_si256(_mm256_srli_epi16(d, 4), m4);
    }
}

/* The 8 scales of load8_x16's columns as f32. */
INLINE __m256 load_scales8_x16(const uint8_t *g, int b, int half) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 32 * (size_t)b + 16 * (size_t)half)));
}

/* Panel of columns j0 .. j0+nr-1 (nr <= NR), blocks kb .. kb+nbk-1, of W (type wt: Q8_0, Q4_0,
 * or an X16 layout with j0 a multiple of 8; nb blocks a row) into pw: per block, per group of
 * 8 columns the 8 transposed vectors, then the NR scales. */
static void pack_panel(molmo_dtype wt, int vnni, const uint8_t *w, size_t ldw, int nb, int j0,
                       int nr, int kb, int nbk, uint8_t *pw) {
    const int q8 = molmo_dtype_stored(wt) == MOLMO_DTYPE_Q8_0, x16 = molmo_dtype_is_x16(wt);
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    /* for vpdpbusd, whose first factor is unsigned: Q8_0's q + 128 (the nibbles already are) */
    const __m256i flip = _mm256_set1_epi8(q8 && vnni ? (char)0x80 : 0);
    for (int b = 0; b < nbk; b++) {
        uint8_t *pb = pw + (size_t)b * PB_BYTES;
        for (int v = 0; v < NV; v++) {
            const int nc = nr - 8 * v, j = j0 + 8 * v;
            __m256i r[8];
            __m256 ds;
            if (x16 && nc > 0) { /* the whole half lies there: mask the scales */
                const uint8_t *g = molmo_x16_group(w, wt, nb, j);
                load8_x16(q8, g, nb, kb + b, j / 8 % 2, r);
                ds = _mm256_and_ps(load_scales8_x16(g, kb + b, j / 8 % 2),
                                   _mm256_castsi256_ps(avx2_mask(nc)));
            } else { /* rows, or no columns left (zeros; w not read) */
                const uint8_t *src = nc > 0 ? w + (size_t)j * ldw + (size_t)(kb + b) * bb : w;
                if (nc >= 8)
                    load8(q8, src, ldw, 8, r);
                else
                    load8(q8, src, ldw, nc, r);
                ds = load_scales8(src, ldw, nc);
            }
            for (int g = 0; g < 8; g++)
                _mm256_store_si256((__m256i *)(pb + 256 * v + 32 * g), _mm256_xor_si256(r[g], flip));
            _mm256_store_ps((float *)(pb + NV * 256) + 8 * v, ds);
        }
    }
}

/* -------------------------------------------------------- the block product, GEMV and tile */

/* Wrappers of the GEMV and the tile for each shape (not inlined into the drivers: one copy of
 * each), through function pointers. */
typedef void (*gemv_fn)(int nc, const uint8_t *w, size_t ldw, int x16, int nb, int kb0, int nbk,
                        const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,
                        const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,
                        const float *bias);
#define GEMV_FN(name, fn, mr, q8)                                                                 \
    static void name(int nc, const uint8_t *w, size_t ldw, int x16, int nb, int kb0, int nbk,     \
                     const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,         \
                     const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,       \
                     const float *bias) {                                                         \
        fn(mr, q8, nc, w, ldw, x16, nb, kb0, nbk, next, nnext, q, dx, corr, ldq, y, ldy,          \
           accumulate, bias);                                                                     \
    }
typedef void (*tile_fn)(int nbk, const uint8_t *q, const uint8_t *dx, const uint8_t *corr,
                        size_t ldq, const uint8_t *pw, float *y, size_t ldy, int accumulate,
                        const float *bias, const int nc[NV]);
#define TILE_FN(name, fn, mr, q8)                                                                 \
    static void name(int nbk, const uint8_t *q, const uint8_t *dx, const uint8_t *corr,           \
                     size_t ldq, const uint8_t *pw, float *y, size_t ldy, int accumulate,         \
                     const float *bias, const int nc[NV]) {                                       \
        fn(mr, q8, nbk, q, dx, corr, ldq, pw, y, ldy, accumulate, bias, nc);                      \
    }

/* Lane j (128 bits) of the result: the totals of lane j of s[0], s[1], s[2], s[3], in that
 * order (for the one-row Q4_0 GEMV). */
INLINE __m256i avx2_lane_sums4(const __m256i s[4]) {
    const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[0], s[1]), _mm256_unpackhi_epi32(s[0], s[1]));
    const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi32(s[2], s[3]), _mm256_unpackhi_epi32(s[2], s[3]));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(t01, t23), _mm256_unpackhi_epi64(t01, t23));
}

/* The one-row Q4_0 GEMV (Q_GEMV_Q4_ROWS1) where it applies: 8 whole columns of the row layout
 * and at least a pair of blocks; else Q_GEMV. */
#define GEMV_Q4_ROWS1_FN(name, rows1, fn)                                                          \
    static void name(int nc, const uint8_t *w, size_t ldw, int x16, int nb, int kb0, int nbk,     \
                     const uint8_t *next, int nnext, const uint8_t *q, const uint8_t *dx,         \
                     const uint8_t *corr, size_t ldq, float *y, size_t ldy, int accumulate,       \
                     const float *bias) {                                                         \
        if (!x16 && nc == 8 && nbk >= 2)                                                          \
            rows1(w, ldw, nbk, next, nnext, q, dx, corr, y, accumulate, bias);                    \
        else                                                                                      \
            fn(1, 0, nc, w, ldw, x16, nb, kb0, nbk, next, nnext, q, dx, corr, ldq, y, ldy,        \
               accumulate, bias);                                                                 \
    }

/* Without VNNI (see the file header): Q8_0 sums |wq| x (xq with the sign of wq) into int32 per
 * group of 4 values; Q4_0 keeps the block's int16 sums of nibble x xq and widens them once,
 * adding corr. */
#define Q_DOT block_dot
#define Q_GEMV gemv8
#define Q_GEMV_BLOCK gemv8_block
#define Q_GEMV_Q4_ROWS1 gemv8_q4_rows1
#define Q_TILE tile
#define Q_PREP(q8, r) ((void)0)
#define Q_INIT(q8, c) _mm256_setzero_si256()
#define Q_STEP(q8, s, w, xb)                                                                      \
    ((q8) ? _mm256_add_epi32((s), _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w),      \
                                                                         _mm256_sign_epi8((xb), (w))), \
                                                    _mm256_set1_epi16(1)))                        \
          : _mm256_add_epi16((s), _mm256_maddubs_epi16((w), (xb))))
#define Q_FINISH(q8, s, c) \
    ((q8) ? (s) : _mm256_add_epi32(_mm256_madd_epi16((s), _mm256_set1_epi16(1)), (c)))
#include "kernels/x86/avx2_quant_body.h"
GEMV_Q4_ROWS1_FN(gemv_q4_1, gemv8_q4_rows1, gemv8)
GEMV_FN(gemv_q4_2, gemv8, 2, 0)
GEMV_FN(gemv_q8_1, gemv8, 1, 1)
GEMV_FN(gemv_q8_2, gemv8, 2, 1)
TILE_FN(tile_q4_1, tile, 1, 0)
TILE_FN(tile_q4_2, tile, 2, 0)
TILE_FN(tile_q4_3, tile, 3, 0)
TILE_FN(tile_q8_1, tile, 1, 1)
TILE_FN(tile_q8_2, tile, 2, 1)
TILE_FN(tile_q8_3, tile, 3, 1)

/* With AVX-VNNI (Alder Lake and later client CPUs, which lack AVX-512) one vpdpbusd adds the
 * products of 4 k for 8 columns: the unsigned factor is the weight (Q8_0: q + 128, made so while
 * packing, or here after loading; Q4_0: the nibble), the signed one 4 broadcast bytes of x, and
 * each block's sums start at corr = -c * sum(xq) (c = 128 or 8), as in avx512_quant.c. An int32
 * sum is at most 32 * 255 * 128 in magnitude: exact, so the bits are those of vpmaddubsw above.
 * Only the functions up to MOLMO_X86_END_TARGET carry the avxvnni target (x86.h). */
MOLMO_X86_BEGIN_AVX_VNNI
#define Q_DOT block_dot_vnni
#define Q_GEMV gemv8_vnni
#define Q_GEMV_BLOCK gemv8_block_vnni
#define Q_GEMV_Q4_ROWS1 gemv8_q4_rows1_vnni
#define Q_TILE tile_vnni
#define Q_PREP(q8, r)                                                                             \
    do {                                                                                          \
        for (int g_ = 0; g_ < 8 && (q8); g_++) (r)[g_] = _mm256_xor_si256((r)[g_], _mm256_set1_epi8((char)0x80)); \
    } while (0)
#define Q_INIT(q8, c) (c)
#define Q_STEP(q8, s, w, xb) _mm256_dpbusd_avx_epi32((s), (w), (xb))
#define Q_FINISH(q8, s, c) (s)
#include "kernels/x86/avx2_quant_body.h"
GEMV_Q4_ROWS1_FN(gemv_vnni_q4_1, gemv8_q4_rows1_vnni, gemv8_vnni)
GEMV_FN(gemv_vnni_q4_2, gemv8_vnni, 2, 0)
GEMV_FN(gemv_vnni_q8_1, gemv8_vnni, 1, 1)
GEMV_FN(gemv_vnni_q8_2, gemv8_vnni, 2, 1)
TILE_FN(tile_vnni_q4_1, tile_vnni, 1, 0)
TILE_FN(tile_vnni_q4_2, tile_vnni, 2, 0)
TILE_FN(tile_vnni_q4_3, tile_vnni, 3, 0)
TILE_FN(tile_vnni_q8_1, tile_vnni, 1, 1)
TILE_FN(tile_vnni_q8_2, tile_vnni, 2, 1)
TILE_FN(tile_vnni_q8_3, tile_vnni, 3, 1)
MOLMO_X86_END_TARGET

/* The c of corr = -c * sum(xq): the offset that makes the unsigned factor of the products
 * (vpmaddubsw without VNNI: |wq| for Q8_0, no offset; Q4_0's nibbles wq + 8; vpdpbusd: Q8_0's
 * wq + 128 too). */
static int corr_c(int q8, int vnni) { return q8 ? (vnni ? 128 : 0) : 8; }

/* Rows [m0, m1) (at most GEMV_ROWS) against columns [n0, n1), in K chunks that fit buf. */
static void gemv(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, uint8_t *buf,
                 size_t bytes) {
    static const gemv_fn fns[2][2][GEMV_ROWS] = {
        {{gemv_q4_1, gemv_q4_2}, {gemv_q8_1, gemv_q8_2}},
        {{gemv_vnni_q4_1, gemv_vnni_q4_2}, {gemv_vnni_q8_1, gemv_vnni_q8_2}}};
    const int q8 = molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0, nb = a->K / MOLMO_QK;
    const int x16 = molmo_dtype_is_x16(a->wt), rows = m1 - m0, vnni = molmo_kernels_avx_vnni();
    const gemv_fn fn = fns[vnni][q8][rows - 1];
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const size_t fit = bytes / ((size_t)rows * XB_BYTES);
    const int kc = fit < (size_t)nb ? (int)fit : nb;
    for (int kb0 = 0; kb0 < nb; kb0 += kc) {
        const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
        const size_t ldq = (size_t)kcn * XB_BYTES;
        quantize_rows(a->x + (size_t)m0 * ldx, ldx, rows, kb0, kcn, corr_c(q8, vnni), buf);
        const int last = kb0 + kcn == nb;
        const int step = x16 ? 16 : 8; /* an X16 group at once: its lines are read once */
        for (int j0 = n0; j0 < n1; j0 += step) {
            const int nc = n1 - j0 < step ? n1 - j0 : step;
            const uint8_t *w = x16 ? molmo_x16_group(a->w, a->wt, nb, j0)
                                   : (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)kb0 * bb;
            const int nnext = n1 - j0 - 8 < 8 ? n1 - j0 - 8 : 8;
            fn(nc, w, ldw, x16, nb, kb0, kcn, nnext > 0 && !x16 ? w + 8 * ldw : NULL,
               nnext, buf, buf + 32 * (size_t)kcn, buf + 36 * (size_t)kcn, ldq,
               a->y + (size_t)m0 * ldy + (size_t)j0, ldy, kb0 > 0, last && a->bias ? a->bias + j0 : NULL);
        }
    }
}

/* x quantized once for all threads (kernels.h): the VNNI rows, where this GEMM runs on
 * AVX-VNNI (its corr offsets are then those of the AVX-512 kernel: the same bytes). */
size_t molmo_k_matmul_xq_bytes_avx2(const molmo_matmul_args *a, int *kind) {
    if (a->M > MOLMO_GEMV_MAX_M && a->K > 0 &&
        molmo_dtype_is_block(a->wt) && molmo_kernels_avx_vnni()) {
        *kind = MOLMO_XQ_ROWS_VNNI;
        return molmo_k_matmul_q_rows_xq_bytes(a);
    }
    *kind = MOLMO_XQ_NONE;
    return 0;
}

void molmo_k_matmul_q_rows_xq_avx2(const molmo_matmul_args *a, int g0, int g1, void *xq) {
    const int nb = a->K / MOLMO_QK, r0 = g0 * MOLMO_XQ_ROWS;
    const int r1 = g1 * MOLMO_XQ_ROWS < a->M ? g1 * MOLMO_XQ_ROWS : a->M;
    if (r0 >= r1) return;
    quantize_rows(a->x + (size_t)r0 * (size_t)a->ldx, (size_t)a->ldx, r1 - r0, 0, nb,
                  corr_c(molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0, 1),
                  (uint8_t *)xq + (size_t)r0 * (size_t)nb * XB_BYTES);
}

void molmo_k_matmul_xq_avx2(const molmo_matmul_args *a, int g0, int g1, void *xq) {
    if (a->xq_kind == MOLMO_XQ_ROWS_VNNI) molmo_k_matmul_q_rows_xq_avx2(a, g0, g1, xq);
}

/* Chunk sizes for `rows` rows in `bytes` of buffer: all K at once if it fits, else as many
 * whole panels of blocks as fit for all rows, else one panel's blocks for as many rows as fit
 * (a multiple of MR). */
static void plan(size_t bytes, int rows, int nb, int *kc, int *mc) {
    const size_t avail = bytes - (size_t)KP * PB_BYTES;
    const size_t per_block = (size_t)rows * XB_BYTES;
    *mc = rows;
    if (per_block * (size_t)nb <= avail) {
        *kc = nb;
    } else if (per_block * KP <= avail) {
        *kc = (int)(avail / per_block) / KP * KP;
    } else {
        *kc = KP;
        *mc = (int)(avail / ((size_t)KP * XB_BYTES)) / MR * MR;
    }
}

void molmo_k_matmul_q_avx2(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                           float *ws, size_t ws_floats) {
    static const tile_fn tiles[2][2][MR] = {
        {{tile_q4_1, tile_q4_2, tile_q4_3}, {tile_q8_1, tile_q8_2, tile_q8_3}},
        {{tile_vnni_q4_1, tile_vnni_q4_2, tile_vnni_q4_3}, {tile_vnni_q8_1, tile_vnni_q8_2, tile_vnni_q8_3}}};
    if (molmo_dtype_is_x16(a->wt) && n0 % MOLMO_X16_ROWS) {
        /* columns up to the next group: the specification, which reads any column (the op
         * layer's tiles start on groups, so only direct calls come here) */
        const int h = (n0 / MOLMO_X16_ROWS + 1) * MOLMO_X16_ROWS;
        molmo_k_matmul_qdot_ref(a, m0, m1, n0, h < n1 ? h : n1);
        if (h >= n1) return;
        n0 = h;
    }
    _Alignas(64) uint8_t stack[STACK_BYTES];
    size_t bytes;
    uint8_t *buf = molmo_x86_work_buffer(ws, ws_floats, stack, sizeof stack, &bytes);
    if (m1 - m0 <= GEMV_ROWS) {
        gemv(a, m0, m1, n0, n1, buf, bytes);
        return;
    }
    const int q8 = molmo_dtype_stored(a->wt) == MOLMO_DTYPE_Q8_0, nb = a->K / MOLMO_QK;
    const int vnni = molmo_kernels_avx_vnni();
    const tile_fn *tf = tiles[vnni][q8];
    /* x quantized once for all threads (kernels.h), in the corr offsets of vnni */
    const uint8_t *xq =
        vnni && a->xq && a->xq_kind == MOLMO_XQ_ROWS_VNNI ? (const uint8_t *)a->xq : NULL;
    const size_t ldw = molmo_dtype_row_bytes(a->wt, a->K), ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    uint8_t *pw = buf, *xc = buf + (size_t)KP * PB_BYTES;
    int kc, mc;
    plan(bytes, m1 - m0, nb, &kc, &mc);
    for (int mb0 = m0; mb0 < m1; mb0 += mc) {
        const int mb1 = m1 - mb0 < mc ? m1 : mb0 + mc;
        for (int kb0 = 0; kb0 < nb; kb0 += kc) {
            const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
            /* the chunk's activation blocks: q, dx and corr of its first row, rows ldq apart */
            const uint8_t *cq, *cdx, *ccorr;
            size_t ldq;
            if (xq) {
                ldq = molmo_x86_xq_rows_chunk(xq, mb0, nb, kb0, &cq, &cdx, &ccorr);
            } else { /* the same layout, over the chunk's kcn blocks */
                quantize_rows(a->x + (size_t)mb0 * ldx, ldx, mb1 - mb0, kb0, kcn, corr_c(q8, vnni), xc);
                ldq = molmo_x86_xq_rows_chunk(xc, 0, kcn, 0, &cq, &cdx, &ccorr);
            }
            for (int j0 = n0; j0 < n1; j0 += NR) {
                const int nr = n1 - j0 < NR ? n1 - j0 : NR;
                int nc[NV];
                for (int v = 0; v < NV; v++) nc[v] = nr - 8 * v < 0 ? 0 : nr - 8 * v > 8 ? 8 : nr - 8 * v;
                for (int pb0 = 0; pb0 < kcn; pb0 += KP) {
                    const int np = kcn - pb0 < KP ? kcn - pb0 : KP;
                    pack_panel(a->wt, vnni, a->w, ldw, nb, j0, nr, kb0 + pb0, np, pw);
                    const int first = kb0 + pb0 == 0, last = kb0 + pb0 + np == nb;
                    const float *bias = last && a->bias ? a->bias + j0 : NULL;
                    for (int i0 = mb0; i0 < mb1; i0 += MR) {
                        const int mr = mb1 - i0 < MR ? mb1 - i0 : MR;
                        const size_t ro = (size_t)(i0 - mb0) * ldq;
                        tf[mr - 1](np, cq + ro + 32 * pb0, cdx + ro + 4 * pb0,
                                          ccorr + ro + 4 * pb0, ldq, pw,
                                          a->y + (size_t)i0 * ldy + (size_t)j0, ldy, !first, bias, nc);
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------ dequantization */

void molmo_k_dequant_avx2(float *out, const void *w, molmo_dtype wt, size_t n) {
    const uint8_t *p = w;
    for (size_t b = 0; b < n / MOLMO_QK; b++, out += MOLMO_QK) {
        uint16_t dh;
        __m256i q[4];
        if (wt == MOLMO_DTYPE_Q8_0) {
            const uint8_t *blk = p + b * MOLMO_Q8_0_BYTES;
            memcpy(&dh, blk, 2);
            for (int t = 0; t < 4; t++) q[t] = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * t)));
        } else {
            const uint8_t *blk = p + b * MOLMO_Q4_0_BYTES;
            memcpy(&dh, blk, 2);
            const __m256i eight = _mm256_set1_epi32(8), m4 = _mm256_set1_epi32(15);
            for (int t = 0; t < 2; t++) {
                const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * t)));
                q[t] = _mm256_sub_epi32(_mm256_and_si256(v, m4), eight);
                q[2 + t] = _mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight);
            }
        }
        const __m256 d = _mm256_set1_ps(molmo_f16_to_f32(dh));
        for (int t = 0; t < 4; t++) _mm256_storeu_ps(out + 8 * t, _mm256_mul_ps(_mm256_cvtepi32_ps(q[t]), d));
    }
}

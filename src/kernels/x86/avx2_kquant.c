/* avx2_kquant.c — y = x · W^T (+ b) for Q4_K / Q6_K weights with AVX2: the arithmetic of
 * ref/ref_kquant.c bit for bit, with the design of avx512_kquant.c (read that file's header
 * first: activation blocks, weights unpacked into transposed vectors of 4 values per column,
 * one panel block reused by a register tile, y updated once per block) sized for 16 ymm
 * registers; decode (at most MR rows) unpacks each block in registers instead (KQ_GEMV).
 *
 * Products go through vpmaddubsw (unsigned weight byte x signed activation byte -> int16 pair
 * sums) and vpmaddwd against the sub-block scale repeated in both halves of each lane, which
 * folds the scale into the widening step: isum += sc * (pair sum), 3 instructions per 4 values
 * of 8 columns. Nothing saturates: a pair sum is at most 2 * 15 * 127 (Q4_K) or 2 * 63 * 127 =
 * 16002 (Q6_K) in magnitude. With AVX-VNNI (molmo_kernels_avx_vnni) the tile and the GEMV
 * instead sum each sub-block with vpdpbusd (4 products a lane, exact int32) and scale the sums
 * once with vpmulld, as the AVX-512 kernel does (avx2_kquant_tile.h, KQ_DPBUSD; same bits).
 * Q6_K's q - 32 offset is applied once per block from the 16-value activation sums:
 * isum -= 32 * sum_j sc_j bsum_j (vpmaddwd of scale pairs with sum pairs); Q4_K's min term
 * likewise (min pairs with 32-value sum pairs).
 * Activations per row and block (XB bytes): int8 q[256] | i32 bp[4] (int16 pairs of the 32-value
 * sums) | i32 bq[8] (int16 pairs of the 16-value sums) | f32 dx. Panel: NR = 16 columns of one
 * block; register tile MR = 3 rows x 16 columns (6 int32 accumulators, 12 with AVX-VNNI). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kquant.h"
#include "kernels/x86/avx2_math.h"
#include "kernels/x86/x86.h"

#define NV 2                 /* 8-column groups per panel */
#define NR (8 * NV)          /* columns per panel */
#define MR 3                 /* rows per register tile */
#define OFF_SC 2048          /* packed group: 64 value vectors, then (sc, sc) pairs per sub-block */
#define OFF_MP 2560          /* Q4_K: 4 min pairs; Q6_K: 8 scale pairs (sc_2p, sc_2p+1) */
#define OFF_D 2816           /* d as f32, then (Q4_K) dmin */
#define OFF_DMIN 2848
#define PV 2880              /* one packed group of 8 columns of one block */
#define SCB (PV - OFF_SC)    /* its scale region, and the offsets in it: */
#define R_SC 0
#define R_MP (OFF_MP - OFF_SC)
#define R_D (OFF_D - OFF_SC)
#define R_DMIN (OFF_DMIN - OFF_SC)
#define PB (NV * PV)         /* one packed block of a panel */
#define XB 320               /* one quantized activation block */
#define XB_BP 256
#define XB_BQ 272
#define XB_DX 304
#define STACK_BYTES (32 * 1024) /* buffer without a pool workspace */

#define INLINE static inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t pair16(int32_t lo, int32_t hi) {
    return (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
}

/* ------------------------------------------------------------------- activation quantization */

static int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc), into xc: row r's block b at
 * (r * kc + b) * XB. Same operations as molmo_quantize_act_kblock. */
static void quantize_rows(const float *x, size_t ldx, int rows, int kb0, int kc, uint8_t *xc) {
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < kc; b++) {
            const float *xb = x + (size_t)r * ldx + (size_t)(kb0 + b) * MOLMO_QK_K;
            uint8_t *o = xc + ((size_t)r * (size_t)kc + (size_t)b) * XB;
            __m256i a = _mm256_setzero_si256();
            for (int t = 0; t < 32; t++)
                a = _mm256_max_epu32(a, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(xb + 8 * t)), absmask));
            __m128i m = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
            m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1));
            const uint32_t amax_bits = (uint32_t)_mm_cvtsi128_si32(m);
            float amax;
            memcpy(&amax, &amax_bits, 4);
            const float d = amax / 127.0f;
            const float id = d > 0.0f ? 1.0f / d : 0.0f;
            int32_t bsum[16] = {0};
            if (amax_bits < 0x7f800000u && id > 0.0f && id <= 3.40282347e38f) {
                const __m256 iv = _mm256_set1_ps(id);
                for (int t = 0; t < 8; t++) { /* 32 values: sub-blocks 2t and 2t+1 */
                    __m256i qi[4];
                    for (int u = 0; u < 4; u++)
                        qi[u] = _mm256_cvttps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * t + 8 * u), iv),
                                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                    bsum[2 * t] = hsum_epi32(_mm256_add_epi32(qi[0], qi[1]));
                    bsum[2 * t + 1] = hsum_epi32(_mm256_add_epi32(qi[2], qi[3]));
                    /* packs work per 128-bit lane: the permutation puts the quarters in order */
                    const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]), w23 = _mm256_packs_epi32(qi[2], qi[3]);
                    const __m256i b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23),
                                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                    _mm256_storeu_si256((__m256i *)(o + 32 * t), b8);
                }
            } else {
                memset(o, 0, MOLMO_QK_K);
            }
            int32_t bp[4], bq[8];
            for (int p = 0; p < 4; p++)
                bp[p] = pair16(bsum[4 * p] + bsum[4 * p + 1], bsum[4 * p + 2] + bsum[4 * p + 3]);
            for (int p = 0; p < 8; p++) bq[p] = pair16(bsum[2 * p], bsum[2 * p + 1]);
            memcpy(o + XB_BP, bp, sizeof bp);
            memcpy(o + XB_BQ, bq, sizeof bq);
            memcpy(o + XB_DX, &d, 4);
        }
    }
}

/* ---------------------------------------------------------------------------- weight packing */

/* The scale of sub-block sb as int32 lanes, from the (sc, sc) int16 pairs of a scale region
 * (the low half, sign-extended: Q6_K's scales are signed): the multiplier of the vpdpbusd
 * sub-block sums (avx2_kquant_tile.h, KQ_DPBUSD). */
static inline __m256i kq_scale32(const uint8_t *scr, int sb) {
    const __m256i p = _mm256_load_si256((const __m256i *)(scr + R_SC + 32 * sb));
    return _mm256_srai_epi32(_mm256_slli_epi32(p, 16), 16);
}


/* The 32 bytes at p, p + ldw, ... of nc (<= 8) columns, transposed: r[t] = dword t of each
 * column (lanes >= nc: 0, never read); one line of f prefetched after each load (the decode
 * GEMV's prefetches spread evenly over its loads: in bursts of 8-16 they ran ~10% slower). */
INLINE void load32x8_pf(const uint8_t *p, size_t ldw, int nc, __m256i r[8], molmo_x86_l2_ahead *f) {
    for (int c = 0; c < 8; c++) {
        r[c] = c < nc ? _mm256_loadu_si256((const __m256i *)(p + (size_t)c * ldw)) : _mm256_setzero_si256();
        molmo_x86_l2_ahead_lines(f, 1);
    }
    avx2_transpose8_epi32(r);
}

/* load32x8_pf without a prefetch (the packers prefetch on their own). */
INLINE void load32x8(const uint8_t *p, size_t ldw, int nc, __m256i r[8]) {
    molmo_x86_l2_ahead none = {NULL, 0, 0};
    load32x8_pf(p, ldw, nc, r, &none);
}

INLINE __m128i load16(const uint8_t *p, size_t ldw, int c, int nc) {
    return c < nc ? _mm_loadu_si128((const __m128i *)(p + (size_t)c * ldw)) : _mm_setzero_si128();
}

/* The 16 bytes at p, p + ldw, ... of nc columns as 4 vectors: h[k] = dword k of each column
 * (v[q]: columns q and q + 4; a 4x4 dword transpose per 128-bit lane). */
INLINE void load_hdr(const uint8_t *p, size_t ldw, int nc, __m256i h[4]) {
    __m256i v[4];
    for (int q = 0; q < 4; q++)
        v[q] = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(p, ldw, q, nc)), load16(p, ldw, q + 4, nc), 1);
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    h[0] = _mm256_unpacklo_epi64(t0, t2);
    h[1] = _mm256_unpackhi_epi64(t0, t2);
    h[2] = _mm256_unpacklo_epi64(t1, t3);
    h[3] = _mm256_unpackhi_epi64(t1, t3);
}

INLINE void store(uint8_t *p, __m256i v) { _mm256_store_si256((__m256i *)p, v); }

/* A region prefetched into L2 while packing, a few lines between the loads (x86.h). */
typedef molmo_x86_l2_ahead pf;

#define PF_LINES 8 /* per call; a Q4_K (Q6_K) block calls 8 (12) times for ~36 (~53) lines */

INLINE void pf_lines(pf *f, int n) { molmo_x86_l2_ahead_lines(f, n); }

/* Byte b (0..3) of every dword, zero-extended; and the same value in both int16 halves. */
INLINE __m256i byte_of(__m256i v, int b) {
    return _mm256_and_si256(_mm256_srli_epi32(v, 8 * b), _mm256_set1_epi32(0xff));
}
INLINE __m256i twice16(__m256i v) { return _mm256_or_si256(v, _mm256_slli_epi32(v, 16)); }

/* The scale region of one Q4_K block of nc (<= 8) columns (at sc: a packed group's OFF_SC):
 * the (sc, sc) pairs per sub-block, the min pairs, d and dmin. */
INLINE void hdr8_q4_k(const uint8_t *w, size_t ldw, int nc, uint8_t *sc) {
    __m256i h[4]; /* d|dmin, scale bytes 0-3, 4-7, 8-11 (kquant.h: molmo_q4_k_scale_min) */
    load_hdr(w, ldw, nc, h);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m6 = _mm256_set1_epi8(0x3f), m30 = _mm256_set1_epi8(0x30);
    const __m256i sc_lo = _mm256_and_si256(h[1], m6), m_lo = _mm256_and_si256(h[2], m6);
    const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(h[3], m4), _mm256_and_si256(_mm256_srli_epi32(h[1], 2), m30));
    const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(h[3], 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi32(h[2], 2), m30));
    for (int j = 0; j < 4; j++) {
        store(sc + R_SC + 32 * j, twice16(byte_of(sc_lo, j)));
        store(sc + R_SC + 32 * (4 + j), twice16(byte_of(sc_hi, j)));
    }
    for (int p = 0; p < 2; p++) {
        store(sc + R_MP + 32 * p, _mm256_or_si256(byte_of(m_lo, 2 * p), _mm256_slli_epi32(byte_of(m_lo, 2 * p + 1), 16)));
        store(sc + R_MP + 32 * (2 + p),
              _mm256_or_si256(byte_of(m_hi, 2 * p), _mm256_slli_epi32(byte_of(m_hi, 2 * p + 1), 16)));
    }
    const __m256i lo16 = _mm256_set_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 13, 12, 9, 8, 5, 4, 1, 0,
                                         -1, -1, -1, -1, -1, -1, -1, -1, 13, 12, 9, 8, 5, 4, 1, 0);
    const __m256i dd = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(h[0], lo16), 0x08);
    const __m256i dm = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_srli_epi32(h[0], 16), lo16), 0x08);
    _mm256_store_ps((float *)(sc + R_D), _mm256_cvtph_ps(_mm256_castsi256_si128(dd)));
    _mm256_store_ps((float *)(sc + R_DMIN), _mm256_cvtph_ps(_mm256_castsi256_si128(dm)));
}

/* Value vector `high` (0: the low nibbles, 1: the high ones) of a transposed 32-byte Q4_K run:
 * 4 values 0..15 of each of 8 columns. */
INLINE __m256i q4_value(int high, __m256i r) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    return _mm256_and_si256(high ? _mm256_srli_epi16(r, 4) : r, m4);
}

/* One Q4_K block of nc (<= 8, may be <= 0) columns into the packed group out: the run of qs
 * bytes 32g .. 32g+31 gives groups 16g + t (low nibbles) and 16g + 8 + t (high). */
INLINE void pack8_q4_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out, pf *f) {
    for (int g = 0; g < 4; g++) {
        __m256i r[8];
        load32x8(w + 16 + 32 * g, ldw, nc, r);
        pf_lines(f, PF_LINES);
        for (int t = 0; t < 8; t++) {
            store(out + 32 * (16 * g + t), q4_value(0, r[t]));
            store(out + 32 * (16 * g + 8 + t), q4_value(1, r[t]));
        }
    }
    hdr8_q4_k(w, ldw, nc, out + OFF_SC);
}

/* The scale region of one Q6_K block of nc (<= 8) columns: the (sc, sc) pairs per sub-block,
 * the scale pairs (sc_2p, sc_2p+1) and d. */
INLINE void hdr8_q6_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out) {
    __m256i s[4]; /* int8 scales 4k .. 4k+3 */
    load_hdr(w + 192, ldw, nc, s);
    __m256i sc[16];
    for (int j = 0; j < 16; j++) {
        sc[j] = _mm256_srai_epi32(_mm256_slli_epi32(s[j / 4], 24 - 8 * (j % 4)), 24);
        store(out + R_SC + 32 * j, _mm256_or_si256(_mm256_and_si256(sc[j], _mm256_set1_epi32(0xffff)),
                                                     _mm256_slli_epi32(sc[j], 16)));
    }
    for (int p = 0; p < 8; p++)
        store(out + R_MP + 32 * p, _mm256_or_si256(_mm256_and_si256(sc[2 * p], _mm256_set1_epi32(0xffff)),
                                                     _mm256_slli_epi32(sc[2 * p + 1], 16)));
    uint16_t dh[8] = {0};
    for (int c = 0; c < nc && c < 8; c++) memcpy(&dh[c], w + (size_t)c * ldw + 208, 2);
    _mm256_store_ps((float *)(out + R_D), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh)));
}

/* Value vector k (0..3) of transposed Q6_K runs a (32 ql bytes) and h (32 qh bytes): 4 values
 * 0..63 of each of 8 columns, the 4 low bits from a's low (k even) or high (k odd) nibbles, the
 * 2 high bits from bits 2k, 2k+1 of h (bit layout: avx512_kquant.c). */
INLINE __m256i q6_value(int k, __m256i a, __m256i h) {
    const __m256i hi = k == 0 ? _mm256_slli_epi16(h, 4) : k == 1 ? h
                     : k == 2 ? _mm256_slli_epi16(h, 2) : _mm256_srli_epi16(h, 2);
    return _mm256_or_si256(q4_value(k & 1, a), _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
}

/* One Q6_K block of nc columns into the packed group out. Per half hf (values 128 hf ..): qh
 * run H, then ql runs p = 0, 1 (bytes 64 hf + 32 p), whose low and high nibbles give groups
 * 32 hf + 8 p + u and 32 hf + 8 p + 16 + u. */
INLINE void pack8_q6_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out, pf *f) {
    for (int hf = 0; hf < 2; hf++) {
        __m256i H[8], A[8];
        load32x8(w + 128 + 32 * hf, ldw, nc, H);
#pragma GCC unroll 2 /* p constant in q6_value: no selects at run time */
        for (int p = 0; p < 2; p++) {
            load32x8(w + 64 * hf + 32 * p, ldw, nc, A);
            pf_lines(f, p ? PF_LINES : 2 * PF_LINES);
            for (int u = 0; u < 8; u++) {
                store(out + 32 * (32 * hf + 8 * p + u), q6_value(2 * p, A[u], H[u]));
                store(out + 32 * (32 * hf + 8 * p + 16 + u), q6_value(2 * p + 1, A[u], H[u]));
            }
        }
    }
    hdr8_q6_k(w, ldw, nc, out + OFF_SC);
}

/* The block at w (the first column's) of columns 0 .. nr-1 into the panel pw, prefetching f's
 * lines due by the end of the block on the way. */
static void pack_block(int q6, const uint8_t *w, size_t ldw, int nr, uint8_t *pw, pf *f) {
    for (int v = 0; v < NV; v++) {
        const int nc = nr - 8 * v;
        const uint8_t *src = nc > 0 ? w + (size_t)(8 * v) * ldw : w; /* nc <= 0: not read */
        uint8_t *out = pw + (size_t)v * PV;
        if (nc >= 8) { /* the common case, without the per-column tests */
            if (q6)
                pack8_q6_k(src, ldw, 8, out, f);
            else
                pack8_q4_k(src, ldw, 8, out, f);
        } else {
            if (q6)
                pack8_q6_k(src, ldw, nc, out, f);
            else
                pack8_q4_k(src, ldw, nc, out, f);
        }
    }
    pf_lines(f, 1 << 20); /* what is left of this block's share */
}

/* ------------------------------------------------------------------------------ register tile */

/* Wrappers of a tile body (fn) for each shape: one copy of each, called through pointers. */
typedef void (*tile_fn)(const uint8_t *xa, size_t ldq, const uint8_t *pb, float *y, size_t ldy,
                        int first, const float *bias, const int nc[NV]);
#define TILE_FN(name, fn, mr, q6)                                                                  \
    static void name(const uint8_t *xa, size_t ldq, const uint8_t *pb, float *y, size_t ldy,       \
                     int first, const float *bias, const int nc[NV]) {                             \
        fn(mr, q6, xa, ldq, pb, y, ldy, first, bias, nc);                                          \
    }

/* The same for the decode GEMV; the common 8-column case without the per-column tests. */
typedef void (*gemv_fn)(int nc, const uint8_t *w, size_t ldw, size_t bb, int nbk, const uint8_t *xa,
                        size_t ldq, float *y, size_t ldy, int first, const float *bias, pf *f,
                        size_t next_bytes);
#define GEMV_FN(name, fn, mr, q6)                                                                  \
    static void name(int nc, const uint8_t *w, size_t ldw, size_t bb, int nbk, const uint8_t *xa,   \
                     size_t ldq, float *y, size_t ldy, int first, const float *bias, pf *f,        \
                     size_t next_bytes) {                                                          \
        if (nc == 8)                                                                               \
            fn(mr, q6, 8, w, ldw, bb, nbk, xa, ldq, y, ldy, first, bias, f, next_bytes);           \
        else                                                                                       \
            fn(mr, q6, nc, w, ldw, bb, nbk, xa, ldq, y, ldy, first, bias, f, next_bytes);          \
    }

#define KQ_TILE tile
#define KQ_GEMV gemv
#define KQ_MADD_ACC(acc, p, s) _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
#include "kernels/x86/avx2_kquant_tile.h"
TILE_FN(tile_q4_1, tile, 1, 0)
TILE_FN(tile_q4_2, tile, 2, 0)
TILE_FN(tile_q4_3, tile, 3, 0)
TILE_FN(tile_q6_1, tile, 1, 1)
TILE_FN(tile_q6_2, tile, 2, 1)
TILE_FN(tile_q6_3, tile, 3, 1)
GEMV_FN(gemv_q4_1, gemv, 1, 0)
GEMV_FN(gemv_q4_2, gemv, 2, 0)
GEMV_FN(gemv_q4_3, gemv, 3, 0)
GEMV_FN(gemv_q6_1, gemv, 1, 1)
GEMV_FN(gemv_q6_2, gemv, 2, 1)
GEMV_FN(gemv_q6_3, gemv, 3, 1)

/* The same tile and GEMV with vpdpwssd where the CPU has AVX-VNNI (molmo_kernels_avx_vnni;
 * only these functions carry the target). */
MOLMO_X86_BEGIN_AVX_VNNI
#define KQ_TILE tile_vnni
#define KQ_GEMV gemv_vnni
#define KQ_MADD_ACC(acc, p, s) _mm256_dpwssd_avx_epi32(acc, p, s)
#define KQ_DPBUSD
#include "kernels/x86/avx2_kquant_tile.h"
TILE_FN(tile_vnni_q4_1, tile_vnni, 1, 0)
TILE_FN(tile_vnni_q4_2, tile_vnni, 2, 0)
TILE_FN(tile_vnni_q4_3, tile_vnni, 3, 0)
TILE_FN(tile_vnni_q6_1, tile_vnni, 1, 1)
TILE_FN(tile_vnni_q6_2, tile_vnni, 2, 1)
TILE_FN(tile_vnni_q6_3, tile_vnni, 3, 1)
GEMV_FN(gemv_vnni_q4_1, gemv_vnni, 1, 0)
GEMV_FN(gemv_vnni_q4_2, gemv_vnni, 2, 0)
GEMV_FN(gemv_vnni_q4_3, gemv_vnni, 3, 0)
GEMV_FN(gemv_vnni_q6_1, gemv_vnni, 1, 1)
GEMV_FN(gemv_vnni_q6_2, gemv_vnni, 2, 1)
GEMV_FN(gemv_vnni_q6_3, gemv_vnni, 3, 1)
MOLMO_X86_END_TARGET

/* ------------------------------------------------------------------------------ decode (GEMV) */

/* Rows [m0, m1) (at most MR) against columns [n0, n1), 8 at a time, in K chunks that fit buf;
 * the next 8 rows of W (contiguous) are prefetched into L2 meanwhile. */
static void kgemv(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, uint8_t *buf,
                  size_t bytes) {
    static const gemv_fn fns[2][2][MR] = {
        {{gemv_q4_1, gemv_q4_2, gemv_q4_3}, {gemv_q6_1, gemv_q6_2, gemv_q6_3}},
        {{gemv_vnni_q4_1, gemv_vnni_q4_2, gemv_vnni_q4_3}, {gemv_vnni_q6_1, gemv_vnni_q6_2, gemv_vnni_q6_3}}};
    const int q6 = a->wt == MOLMO_DTYPE_Q6_K, nb = a->K / MOLMO_QK_K, rows = m1 - m0;
    const gemv_fn fn = fns[molmo_kernels_avx_vnni()][q6][rows - 1];
    const size_t bb = molmo_kquant_block_bytes(a->wt), ldw = (size_t)nb * bb;
    const size_t ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    const size_t fit = bytes / ((size_t)rows * XB);
    const int kc = fit < (size_t)nb ? (int)fit : nb;
    for (int kb0 = 0; kb0 < nb; kb0 += kc) {
        const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
        quantize_rows(a->x + (size_t)m0 * ldx, ldx, rows, kb0, kcn, buf);
        const int last = kb0 + kcn == nb;
        for (int j0 = n0; j0 < n1; j0 += 8) {
            const int nc = n1 - j0 < 8 ? n1 - j0 : 8;
            const int nn = n1 - j0 - 8 < 8 ? n1 - j0 - 8 : 8; /* the next 8 rows */
            const uint8_t *w = (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)kb0 * bb;
            const size_t next_bytes = nn > 0 ? (size_t)nn * ldw - (size_t)kb0 * bb : 0;
            pf f = {nn > 0 ? w + 8 * ldw : w, 0, 0};
            fn(nc, w, ldw, bb, kcn, buf, (size_t)kcn * XB, a->y + (size_t)m0 * ldy + (size_t)j0, ldy,
               kb0 == 0, last && a->bias ? a->bias + j0 : NULL, &f, next_bytes);
        }
    }
}

/* ------------------------------------------------------------------------------------ driver */

/* Chunk sizes (as avx512_kquant.c). */
static void plan(size_t avail, int rows, int nb, int *kc, int *mc) {
    const size_t per_block = (size_t)rows * XB;
    *mc = rows;
    if (per_block * (size_t)nb <= avail) {
        *kc = nb;
    } else if (per_block <= avail) {
        *kc = (int)(avail / per_block);
    } else {
        *kc = 1;
        *mc = (int)(avail / XB) / MR * MR;
    }
}

void molmo_k_matmul_k_avx2(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                           float *ws, size_t ws_floats) {
    static const tile_fn tiles[2][2][MR] = {
        {{tile_q4_1, tile_q4_2, tile_q4_3}, {tile_q6_1, tile_q6_2, tile_q6_3}},
        {{tile_vnni_q4_1, tile_vnni_q4_2, tile_vnni_q4_3}, {tile_vnni_q6_1, tile_vnni_q6_2, tile_vnni_q6_3}}};
    if (m0 >= m1 || n0 >= n1) return;
    _Alignas(64) uint8_t stack[STACK_BYTES];
    size_t bytes;
    uint8_t *buf = molmo_x86_work_buffer(ws, ws_floats, stack, sizeof stack, &bytes);
    if (m1 - m0 <= MR) {
        kgemv(a, m0, m1, n0, n1, buf, bytes);
        return;
    }
    const int q6 = a->wt == MOLMO_DTYPE_Q6_K, nb = a->K / MOLMO_QK_K, vnni = molmo_kernels_avx_vnni();
    const size_t bb = molmo_kquant_block_bytes(a->wt), ldw = (size_t)nb * bb;
    const size_t ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    uint8_t *pw = buf, *xc = buf + PB;
    int kc, mc;
    plan(bytes - PB, m1 - m0, nb, &kc, &mc);
    for (int mb0 = m0; mb0 < m1; mb0 += mc) {
        const int mb1 = m1 - mb0 < mc ? m1 : mb0 + mc;
        for (int kb0 = 0; kb0 < nb; kb0 += kc) {
            const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
            const size_t ldq = (size_t)kcn * XB;
            quantize_rows(a->x + (size_t)mb0 * ldx, ldx, mb1 - mb0, kb0, kcn, xc);
            for (int j0 = n0; j0 < n1; j0 += NR) {
                const int nr = n1 - j0 < NR ? n1 - j0 : NR;
                int nc[NV];
                for (int v = 0; v < NV; v++) nc[v] = nr - 8 * v < 0 ? 0 : nr - 8 * v > 8 ? 8 : nr - 8 * v;
                const int nn = n1 - j0 - NR < NR ? n1 - j0 - NR : NR;
                const uint8_t *next = (const uint8_t *)a->w + (size_t)(j0 + NR) * ldw + (size_t)kb0 * bb;
                const size_t next_bytes = nn > 0 ? (size_t)nn * ldw - (size_t)kb0 * bb : 0;
                pf f = {next, 0, 0};
                for (int b = kb0; b < kb0 + kcn; b++) {
                    f.end = next_bytes * (size_t)(b - kb0 + 1) / (size_t)kcn;
                    pack_block(q6, (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)b * bb, ldw, nr, pw, &f);
                    const float *bias = b == nb - 1 && a->bias ? a->bias + j0 : NULL;
                    for (int i0 = mb0; i0 < mb1; i0 += MR) {
                        const int mr = mb1 - i0 < MR ? mb1 - i0 : MR;
                        tiles[vnni][q6][mr - 1](xc + (size_t)(i0 - mb0) * ldq + (size_t)(b - kb0) * XB, ldq, pw,
                                          a->y + (size_t)i0 * ldy + (size_t)j0, ldy, b == 0, bias, nc);
                    }
                }
            }
        }
    }
}

/* avx512_kquant.c — y = x · W^T (+ b) for Q4_K / Q6_K weights with AVX-512 VNNI: the arithmetic
 * of ref/ref_kquant.c bit for bit (read that file first). Every integer step is exact, so the
 * order of the integer sums is free; the f32 steps are the specification's, per block in order.
 *
 * Activations: per row and block of 256, int8 q[256] | i32 bp[4] | i32 c16[16] | f32 dx (XB
 * bytes), quantized once per chunk of rows and blocks into the workspace. bp[p] holds the int16
 * pair (B_2p, B_2p+1) of the 32-value sums B_j (the Q4_K min term), c16[j] = -32 * (the sum of
 * sub-block j of 16): the start value of Q6_K's sub-block sums, which absorbs the q - 32 offset.
 *
 * Weights: one block of 16 columns is unpacked into 64 vectors of 16 lanes x 4 bytes (lane =
 * column, the 4 bytes = 4 consecutive values, unsigned: the nibble 0..15 or the 6-bit q 0..63),
 * in value order, so that one vpdpbusd with 4 broadcast bytes of x advances 16 outputs by 4
 * values; then the sub-block scales as int32 vectors, for Q4_K the sub-block mins as int16
 * pairs, and d (dmin) as f32. The raw 32-byte runs of 16 columns are transposed in registers
 * (8x16 dwords); the 16-byte block headers (Q4_K: d, dmin, 12 scale bytes; Q6_K: 16 scales)
 * by a 4x4 dword transpose per 128-bit lane, and the 6-bit scales decoded in all 16 lanes at
 * once. A panel is NR = 48 columns of one block (15.4 KiB, L1), reused by every row of the
 * chunk through a register tile of MR = 4 rows x 48 columns:
 *   per sub-block, 12 int32 accumulators s start at 0 (Q6_K: c16) and take 8 (Q6_K: 4)
 *   vpdpbusd each; then isum += s * sc (vpmulld). After the block (12 isum + 12 s = 24 zmm),
 *   Q4_K's imin is 4 vpdpwssd of the min pairs with bp, and y is loaded, takes the block's
 *   fused multiply-adds and is stored: the y round trip is exact and costs little per 256
 *   values, and it frees the registers that f32 accumulators would hold.
 * The panel path prefetches the next panel's rows (contiguous in memory) into L2 meanwhile,
 * since 48 interleaved row streams are more than the hardware prefetchers follow.
 * Decode (calls of at most 4 rows) skips the panel: each block of 16 columns is unpacked in
 * registers and fed to the dot products at once, the f32 accumulators stay in registers over
 * the blocks, and the next 16 rows of W are prefetched into L2 (the in-cache speed went from
 * ~16 to ~23 GB/s of Q4_K weights on one core). The choice of path, rows per tile, panel width
 * and chunking never changes a result. CPUs with AVX-512 but no VNNI use the AVX2 kernel (same
 * bits). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/kquant.h"
#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

/* The file is compiled with the AVX-512 F/BW/VL/DQ flags of cmake/flags.cmake; VNNI is added
 * for the matmul functions below and runs only after cpuid said the CPU has it. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif

#define NV 3                 /* 16-column groups per panel */
#define NR (16 * NV)         /* columns per panel */
#define MR 4                 /* rows per register tile */
#define OFF_SC 4096          /* packed group: 64 value vectors, then the scale region: */
#define R_SC 0               /*   the sub-block scales as int32 vectors (<= 16) */
#define R_MP 512             /*   Q4_K: 4 vectors of min pairs (after its 8 scale vectors) */
#define R_D 1024             /*   d as f32, then (Q4_K) dmin */
#define R_DMIN 1088
#define SCB 1152             /* bytes of the scale region */
#define PV (OFF_SC + SCB)    /* one packed group of 16 columns of one block */
#define PB (NV * PV)         /* one packed block of a panel */
#define XB 352               /* one quantized activation block */
#define XB_BP 256
#define XB_C16 272
#define XB_DX 336
#define STACK_BYTES (48 * 1024) /* buffer without a pool workspace */

#define INLINE static inline __attribute__((always_inline))

static inline int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------- activation quantization */

/* Rows [0, rows) of x (stride ldx), blocks [kb0, kb0 + kc), into xc: row r's block b at
 * (r * kc + b) * XB. Same operations as molmo_quantize_act_kblock. */
static void quantize_rows(const float *x, size_t ldx, int rows, int kb0, int kc, uint8_t *xc) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < kc; b++) {
            const float *xb = x + (size_t)r * ldx + (size_t)(kb0 + b) * MOLMO_QK_K;
            uint8_t *o = xc + ((size_t)r * (size_t)kc + (size_t)b) * XB;
            __m512i a = _mm512_setzero_si512();
            for (int t = 0; t < 16; t++)
                a = _mm512_max_epu32(a, _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(xb + 16 * t)), absmask));
            const uint32_t amax_bits = (uint32_t)_mm512_reduce_max_epu32(a);
            float amax;
            memcpy(&amax, &amax_bits, 4);
            const float d = amax / 127.0f;
            const float id = d > 0.0f ? 1.0f / d : 0.0f;
            int32_t bsum[16] = {0};
            if (amax_bits < 0x7f800000u && id > 0.0f && id <= 3.40282347e38f) {
                const __m512 iv = _mm512_set1_ps(id);
                for (int t = 0; t < 16; t++) { /* one vector = one 16-value sub-block */
                    const __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * t), iv),
                                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    _mm_storeu_si128((__m128i *)(o + 16 * t), _mm512_cvtepi32_epi8(q));
                    bsum[t] = _mm512_reduce_add_epi32(q);
                }
            } else {
                memset(o, 0, MOLMO_QK_K);
            }
            int32_t bp[4], c16[16];
            for (int p = 0; p < 4; p++) {
                const int32_t lo = bsum[4 * p] + bsum[4 * p + 1], hi = bsum[4 * p + 2] + bsum[4 * p + 3];
                bp[p] = (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
            }
            for (int j = 0; j < 16; j++) c16[j] = -32 * bsum[j];
            memcpy(o + XB_BP, bp, sizeof bp);
            memcpy(o + XB_C16, c16, sizeof c16);
            memcpy(o + XB_DX, &d, 4);
        }
    }
}

/* ---------------------------------------------------------------------------- weight packing */


INLINE void store(uint8_t *p, __m512i v) { _mm512_store_si512((__m512i *)p, v); }

/* Prefetching into L2 while packing (x86.h), a few lines between the loads of the pack: the
 * ~100 lines of a panel block issued at once would stall on the fill buffers. */
typedef molmo_x86_l2_ahead pf;

#define PF_LINES 12 /* per call; a Q4_K (Q6_K) block calls 12 (18) times for ~108 (~158) lines */

INLINE void pf_lines(pf *f, int n) { molmo_x86_l2_ahead_lines(f, n); }

/* Byte b (0..3) of every dword, zero-extended. */
INLINE __m512i byte_of(__m512i v, int b) {
    return _mm512_and_si512(_mm512_srli_epi32(v, 8 * b), _mm512_set1_epi32(0xff));
}

/* The scale region (R_*) of a Q4_K block of nc (<= 16, may be <= 0) columns (w: the block of
 * the first column): the 6-bit scales and mins decoded in all 16 lanes at once. */
INLINE void scales16_q4_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i h[4]; /* d|dmin, scale bytes 0-3, 4-7, 8-11 */
    avx512_load_cols16x16(w, ldw, nc, h);
    const __m512i m6 = _mm512_set1_epi8(0x3f), m30 = _mm512_set1_epi8(0x30);
    const __m512i sc_lo = _mm512_and_si512(h[1], m6), m_lo = _mm512_and_si512(h[2], m6);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(h[3], m4),
                                          _mm512_and_si512(_mm512_srli_epi32(h[1], 2), m30));
    const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(h[3], 4), m4),
                                         _mm512_and_si512(_mm512_srli_epi32(h[2], 2), m30));
    for (int j = 0; j < 4; j++) {
        store(out + R_SC + 64 * j, byte_of(sc_lo, j));
        store(out + R_SC + 64 * (4 + j), byte_of(sc_hi, j));
    }
    /* min pairs (m_2p, m_2p+1) as two int16 per dword */
    for (int p = 0; p < 2; p++) {
        const __m512i a = byte_of(m_lo, 2 * p), b = byte_of(m_lo, 2 * p + 1);
        const __m512i c = byte_of(m_hi, 2 * p), d = byte_of(m_hi, 2 * p + 1);
        store(out + R_MP + 64 * p, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
        store(out + R_MP + 64 * (2 + p), _mm512_or_si512(c, _mm512_slli_epi32(d, 16)));
    }
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h[0]));
    const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h[0], 16)));
    _mm512_store_ps((float *)(out + R_D), d);
    _mm512_store_ps((float *)(out + R_DMIN), dmin);
}

/* One Q4_K block of nc columns into the packed group out (layout of the file header). */
INLINE void pack16_q4_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out, pf *f) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int g = 0; g < 4; g++) { /* qs[32g .. 32g+31]: values 64g + (0..31) low, + 32 high */
        __m512i r[8];
        avx512_load_cols32x16(w + 16 + 32 * g, ldw, nc, r);
        pf_lines(f, PF_LINES);
        for (int t = 0; t < 8; t++) {
            store(out + 64 * (16 * g + t), _mm512_and_si512(r[t], m4));
            store(out + 64 * (16 * g + 8 + t), _mm512_and_si512(_mm512_srli_epi16(r[t], 4), m4));
        }
    }
    scales16_q4_k(w, ldw, nc, out + OFF_SC);
}

/* The scale region of a Q6_K block of nc columns: the int8 scales sign-extended, and d. */
INLINE void scales16_q6_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out) {
    __m512i s[4]; /* int8 scales 4k .. 4k+3 */
    avx512_load_cols16x16(w + 192, ldw, nc, s);
    for (int j = 0; j < 16; j++)
        store(out + R_SC + 64 * j, _mm512_srai_epi32(_mm512_slli_epi32(s[j / 4], 24 - 8 * (j % 4)), 24));
    uint16_t dh[16] = {0};
    for (int c = 0; c < nc && c < 16; c++) memcpy(&dh[c], w + (size_t)c * ldw + 208, 2);
    _mm512_store_ps((float *)(out + R_D), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
}

/* Value vector 8s + u of a Q6_K half block (0 <= s < 4): a is A_u (s even) or B_u (s odd). */
INLINE __m512i q6_vec(int s, __m512i a, __m512i h) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i lo = s < 2 ? _mm512_and_si512(a, m4) : _mm512_and_si512(_mm512_srli_epi16(a, 4), m4);
    const __m512i hb = s == 0 ? _mm512_slli_epi16(h, 4) : s == 1 ? _mm512_slli_epi16(h, 2)
                     : s == 2 ? h : _mm512_srli_epi16(h, 2);
    return _mm512_or_si512(lo, _mm512_and_si512(hb, m30));
}

/* One Q6_K block of nc columns into the packed group out. For half h of the block, with the
 * transposed dwords A_u of ql[64h..], B_u of ql[64h+32..] and H_u of qh[32h..] (u = 0..7), the
 * 6-bit values 128h + 32s + 4u + (0..3) are: s=0 A&15 | (H&3)<<4, s=1 B&15 | (H>>2&3)<<4,
 * s=2 A>>4 | (H>>4&3)<<4, s=3 B>>4 | (H>>6)<<4 (bytewise). */
INLINE void pack16_q6_k(const uint8_t *w, size_t ldw, int nc, uint8_t *out, pf *f) {
    for (int hf = 0; hf < 2; hf++) {
        __m512i H[8], A[8];
        avx512_load_cols32x16(w + 128 + 32 * hf, ldw, nc, H);
        avx512_load_cols32x16(w + 64 * hf, ldw, nc, A);
        pf_lines(f, 2 * PF_LINES);
        for (int u = 0; u < 8; u++) {
            store(out + 64 * (32 * hf + u), q6_vec(0, A[u], H[u]));
            store(out + 64 * (32 * hf + 16 + u), q6_vec(2, A[u], H[u]));
        }
        avx512_load_cols32x16(w + 64 * hf + 32, ldw, nc, A); /* B */
        pf_lines(f, PF_LINES);
        for (int u = 0; u < 8; u++) {
            store(out + 64 * (32 * hf + 8 + u), q6_vec(1, A[u], H[u]));
            store(out + 64 * (32 * hf + 24 + u), q6_vec(3, A[u], H[u]));
        }
    }
    scales16_q6_k(w, ldw, nc, out + OFF_SC);
}

/* The block at w (the first column's) of columns 0 .. nr-1 into the panel pw, prefetching f's
 * lines due by the end of the block on the way. */
static void pack_block(int q6, const uint8_t *w, size_t ldw, int nr, uint8_t *pw, pf *f) {
    for (int v = 0; v < NV; v++) {
        const int nc = nr - 16 * v;
        const uint8_t *src = nc > 0 ? w + (size_t)(16 * v) * ldw : w; /* nc <= 0: not read */
        uint8_t *out = pw + (size_t)v * PV;
        if (nc >= 16) { /* the common case, without the per-column tests */
            if (q6)
                pack16_q6_k(src, ldw, 16, out, f);
            else
                pack16_q4_k(src, ldw, 16, out, f);
        } else {
            if (q6)
                pack16_q6_k(src, ldw, nc, out, f);
            else
                pack16_q4_k(src, ldw, nc, out, f);
        }
    }
    pf_lines(f, 1 << 20); /* what is left of this block's share */
}

/* ------------------------------------------------------------------------------ register tile */

/* y[0:mr, 0:NR] of one block: the panel pb against mr rows of activation blocks (row i's at
 * xa + i * ldq). first: y starts at 0 (block 0), else it holds acc; bias: added after the
 * block (the last one), or NULL. */
INLINE void tile(const int mr, const int q6, const uint8_t *xa, size_t ldq, const uint8_t *pb,
                 float *y, size_t ldy, int first, const float *bias, const __mmask16 mk[NV]) {
    const int nsb = q6 ? 16 : 8, per = q6 ? 4 : 8; /* sub-blocks, vectors per sub-block */
    __m512i isum[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) isum[i][v] = _mm512_setzero_si512();
    for (int sb = 0; sb < nsb; sb++) {
        __m512i s[MR][NV];
        for (int i = 0; i < mr; i++) {
            const __m512i c = q6 ? _mm512_set1_epi32(load_i32(xa + i * ldq + XB_C16 + 4 * sb)) : _mm512_setzero_si512();
            for (int v = 0; v < NV; v++) s[i][v] = c;
        }
        for (int g = sb * per; g < sb * per + per; g++) {
            __m512i wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = _mm512_load_si512((const __m512i *)(pb + v * PV + 64 * g));
            for (int i = 0; i < mr; i++) {
                const __m512i xb = _mm512_set1_epi32(load_i32(xa + i * ldq + 4 * g));
                for (int v = 0; v < NV; v++) s[i][v] = _mm512_dpbusd_epi32(s[i][v], wv[v], xb);
            }
        }
        for (int v = 0; v < NV; v++) {
            const __m512i sc = _mm512_load_si512((const __m512i *)(pb + v * PV + OFF_SC + R_SC + 64 * sb));
            for (int i = 0; i < mr; i++) isum[i][v] = _mm512_add_epi32(isum[i][v], _mm512_mullo_epi32(s[i][v], sc));
        }
    }
    for (int i = 0; i < mr; i++) {
        float dxi;
        memcpy(&dxi, xa + i * ldq + XB_DX, 4);
        const __m512 dxv = _mm512_set1_ps(dxi);
        for (int v = 0; v < NV; v++) {
            float *yp = y + i * ldy + 16 * v;
            const __m512 d = _mm512_load_ps((const float *)(pb + v * PV + OFF_SC + R_D));
            __m512 f = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[v], yp);
            f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][v]), _mm512_mul_ps(dxv, d), f);
            if (!q6) {
                __m512i im = _mm512_setzero_si512();
                for (int p = 0; p < 4; p++)
                    im = _mm512_dpwssd_epi32(im, _mm512_load_si512((const __m512i *)(pb + v * PV + OFF_SC + R_MP + 64 * p)),
                                             _mm512_set1_epi32(load_i32(xa + i * ldq + XB_BP + 4 * p)));
                const __m512 dmin = _mm512_load_ps((const float *)(pb + v * PV + OFF_SC + R_DMIN));
                f = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(im), _mm512_mul_ps(dxv, dmin), f);
            }
            if (bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mk[v], bias + 16 * v));
            _mm512_mask_storeu_ps(yp, mk[v], f);
        }
    }
}

typedef void (*tile_fn)(const uint8_t *xa, size_t ldq, const uint8_t *pb, float *y, size_t ldy,
                        int first, const float *bias, const __mmask16 mk[NV]);
#define TILE_FN(name, mr, q6)                                                                      \
    static void name(const uint8_t *xa, size_t ldq, const uint8_t *pb, float *y, size_t ldy,       \
                     int first, const float *bias, const __mmask16 mk[NV]) {                       \
        tile(mr, q6, xa, ldq, pb, y, ldy, first, bias, mk);                                        \
    }
TILE_FN(tile_q4_1, 1, 0)
TILE_FN(tile_q4_2, 2, 0)
TILE_FN(tile_q4_3, 3, 0)
TILE_FN(tile_q4_4, 4, 0)
TILE_FN(tile_q6_1, 1, 1)
TILE_FN(tile_q6_2, 2, 1)
TILE_FN(tile_q6_3, 3, 1)
TILE_FN(tile_q6_4, 4, 1)

/* ---------------------------------------------------------------------------- decode (GEMV) */

/* s[i] += the values of vectors g0 .. g0+n-1 (v(g)) against row i's activation dwords. */
#define DOT_RUN(n, g0, VEC)                                                                        \
    for (int t_ = 0; t_ < (n); t_++) {                                                             \
        const __m512i v_ = (VEC);                                                                  \
        for (int i = 0; i < mr; i++)                                                               \
            s[i] = _mm512_dpbusd_epi32(s[i], v_, _mm512_set1_epi32(load_i32(xb + i * ldq + 4 * ((g0) + t_)))); \
    }

/* y[0:mr, 0:16] (mr <= 4) of the 16 columns at w (nc valid; rows ldw bytes apart) over the
 * nbk blocks of a K chunk, straight from registers: each block is unpacked as for a panel and
 * fed to the dot products at once, the f32 accumulators stay in registers across blocks
 * (first: they start at 0, else from y), bias is added at the end (or NULL). f: the next 16
 * rows to prefetch, next_bytes of them over the nbk blocks. Same operations as tile(). */
INLINE void gemv16(const int mr, const int q6, int nc, const uint8_t *w, size_t ldw, size_t bb, int nbk,
                   const uint8_t *xa, size_t ldq, float *y, size_t ldy, int first, const float *bias,
                   pf *f, size_t next_bytes) {
    _Alignas(64) uint8_t scb[SCB];
    const __mmask16 m = avx512_tail(nc);
    __m512 acc[MR];
    for (int i = 0; i < mr; i++) acc[i] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + i * ldy);
    for (int b = 0; b < nbk; b++) {
        const uint8_t *wb = w + (size_t)b * bb, *xb = xa + (size_t)b * XB;
        f->end = next_bytes * (size_t)(b + 1) / (size_t)nbk;
        __m512i isum[MR], s[MR];
        for (int i = 0; i < mr; i++) isum[i] = _mm512_setzero_si512();
        if (!q6) {
            const __m512i m4 = _mm512_set1_epi8(0x0f);
            scales16_q4_k(wb, ldw, nc, scb);
            for (int g = 0; g < 4; g++) {
                __m512i r[8];
                avx512_load_cols32x16_pf(wb + 16 + 32 * g, ldw, nc, r, f);
                for (int hh = 0; hh < 2; hh++) { /* sub-block 2g + hh: low, then high nibbles */
                    for (int i = 0; i < mr; i++) s[i] = _mm512_setzero_si512();
                    DOT_RUN(8, 16 * g + 8 * hh,
                            hh ? _mm512_and_si512(_mm512_srli_epi16(r[t_], 4), m4) : _mm512_and_si512(r[t_], m4))
                    const __m512i sc = _mm512_load_si512((const __m512i *)(scb + R_SC + 64 * (2 * g + hh)));
                    for (int i = 0; i < mr; i++) isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(s[i], sc));
                }
            }
        } else {
            scales16_q6_k(wb, ldw, nc, scb);
            for (int hf = 0; hf < 2; hf++) {
                __m512i H[8], A[8];
                avx512_load_cols32x16_pf(wb + 128 + 32 * hf, ldw, nc, H, f);
                avx512_load_cols32x16_pf(wb + 64 * hf, ldw, nc, A, f);
                for (int k = 0; k < 8; k++) { /* s = 0, 2 from A then s = 1, 3 from B; 4 u each */
                    if (k == 4) avx512_load_cols32x16_pf(wb + 64 * hf + 32, ldw, nc, A, f);
                    const int sk = k < 4 ? 2 * (k / 2) : 2 * ((k - 4) / 2) + 1, u0 = 4 * (k % 2);
                    const int j = 8 * hf + 2 * sk + u0 / 4; /* the sub-block */
                    for (int i = 0; i < mr; i++) s[i] = _mm512_set1_epi32(load_i32(xb + i * ldq + XB_C16 + 4 * j));
                    DOT_RUN(4, 32 * hf + 8 * sk + u0, q6_vec(sk, A[u0 + t_], H[u0 + t_]))
                    const __m512i sc = _mm512_load_si512((const __m512i *)(scb + R_SC + 64 * j));
                    for (int i = 0; i < mr; i++) isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(s[i], sc));
                }
            }
        }
        const __m512 d = _mm512_load_ps((const float *)(scb + R_D));
        for (int i = 0; i < mr; i++) {
            float dxi;
            memcpy(&dxi, xb + i * ldq + XB_DX, 4);
            const __m512 dxv = _mm512_set1_ps(dxi);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dxv, d), acc[i]);
            if (!q6) {
                __m512i im = _mm512_setzero_si512();
                for (int p = 0; p < 4; p++)
                    im = _mm512_dpwssd_epi32(im, _mm512_load_si512((const __m512i *)(scb + R_MP + 64 * p)),
                                             _mm512_set1_epi32(load_i32(xb + i * ldq + XB_BP + 4 * p)));
                const __m512 dmin = _mm512_load_ps((const float *)(scb + R_DMIN));
                acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(im), _mm512_mul_ps(dxv, dmin), acc[i]);
            }
        }
        pf_lines(f, 1 << 20); /* what is left of this block's share */
    }
    for (int i = 0; i < mr; i++) {
        if (bias) acc[i] = _mm512_add_ps(acc[i], _mm512_maskz_loadu_ps(m, bias));
        _mm512_mask_storeu_ps(y + i * ldy, m, acc[i]);
    }
}

typedef void (*gemv_fn)(int nc, const uint8_t *w, size_t ldw, size_t bb, int nbk, const uint8_t *xa,
                        size_t ldq, float *y, size_t ldy, int first, const float *bias, pf *f,
                        size_t next_bytes);
#define GEMV_FN(name, mr, q6)                                                                      \
    static void name(int nc, const uint8_t *w, size_t ldw, size_t bb, int nbk, const uint8_t *xa,   \
                     size_t ldq, float *y, size_t ldy, int first, const float *bias, pf *f,        \
                     size_t next_bytes) {                                                          \
        if (nc == 16) /* without the per-column tests */                                            \
            gemv16(mr, q6, 16, w, ldw, bb, nbk, xa, ldq, y, ldy, first, bias, f, next_bytes);      \
        else                                                                                       \
            gemv16(mr, q6, nc, w, ldw, bb, nbk, xa, ldq, y, ldy, first, bias, f, next_bytes);      \
    }
GEMV_FN(gemv_q4_1, 1, 0)
GEMV_FN(gemv_q4_2, 2, 0)
GEMV_FN(gemv_q4_3, 3, 0)
GEMV_FN(gemv_q4_4, 4, 0)
GEMV_FN(gemv_q6_1, 1, 1)
GEMV_FN(gemv_q6_2, 2, 1)
GEMV_FN(gemv_q6_3, 3, 1)
GEMV_FN(gemv_q6_4, 4, 1)

/* Rows [m0, m1) (at most MR) against columns [n0, n1), 16 at a time, in K chunks that fit buf;
 * the next 16 rows of W (contiguous) are prefetched into L2 meanwhile. */
static void kgemv(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, uint8_t *buf, size_t bytes) {
    static const gemv_fn fns[2][MR] = {{gemv_q4_1, gemv_q4_2, gemv_q4_3, gemv_q4_4},
                                       {gemv_q6_1, gemv_q6_2, gemv_q6_3, gemv_q6_4}};
    const int q6 = a->wt == MOLMO_DTYPE_Q6_K, nb = a->K / MOLMO_QK_K, rows = m1 - m0;
    const size_t bb = molmo_kquant_block_bytes(a->wt), ldw = (size_t)nb * bb;
    const size_t ldx = (size_t)a->ldx, ldy = (size_t)a->ldy;
    const size_t fit = bytes / ((size_t)rows * XB);
    const int kc = fit < (size_t)nb ? (int)fit : nb;
    for (int kb0 = 0; kb0 < nb; kb0 += kc) {
        const int kcn = nb - kb0 < kc ? nb - kb0 : kc;
        quantize_rows(a->x + (size_t)m0 * ldx, ldx, rows, kb0, kcn, buf);
        const int last = kb0 + kcn == nb;
        for (int j0 = n0; j0 < n1; j0 += 16) {
            const int nc = n1 - j0 < 16 ? n1 - j0 : 16;
            const int nn = n1 - j0 - 16 < 16 ? n1 - j0 - 16 : 16; /* the next 16 rows */
            const uint8_t *w = (const uint8_t *)a->w + (size_t)j0 * ldw + (size_t)kb0 * bb;
            const size_t next_bytes = nn > 0 ? (size_t)nn * ldw - (size_t)kb0 * bb : 0;
            pf f = {nn > 0 ? w + 16 * ldw : w, 0, 0};
            fns[q6][rows - 1](nc, w, ldw, bb, kcn, buf, (size_t)kcn * XB, a->y + (size_t)m0 * ldy + (size_t)j0,
                              ldy, kb0 == 0, last && a->bias ? a->bias + j0 : NULL, &f, next_bytes);
        }
    }
}

/* ------------------------------------------------------------------------------------ driver */

/* Chunk sizes for `rows` rows in `avail` bytes of activation buffer: all blocks if they fit,
 * else as many blocks as fit for all rows, else one block for as many rows as fit (a multiple
 * of MR). */
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

static void kmatmul(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                    size_t ws_floats) {
    static const tile_fn tiles[2][MR] = {{tile_q4_1, tile_q4_2, tile_q4_3, tile_q4_4},
                                         {tile_q6_1, tile_q6_2, tile_q6_3, tile_q6_4}};
    _Alignas(64) uint8_t stack[STACK_BYTES];
    size_t bytes;
    uint8_t *buf = molmo_x86_work_buffer(ws, ws_floats, stack, sizeof stack, &bytes);
    if (m1 - m0 <= MR) {
        kgemv(a, m0, m1, n0, n1, buf, bytes);
        return;
    }
    const int q6 = a->wt == MOLMO_DTYPE_Q6_K, nb = a->K / MOLMO_QK_K;
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
                __mmask16 mk[NV];
                for (int v = 0; v < NV; v++) mk[v] = avx512_tail(nr - 16 * v);
                /* the next panel's rows, from this chunk's first block on */
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
                        tiles[q6][mr - 1](xc + (size_t)(i0 - mb0) * ldq + (size_t)(b - kb0) * XB, ldq, pw,
                                          a->y + (size_t)i0 * ldy + (size_t)j0, ldy, b == 0, bias, mk);
                    }
                }
            }
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

void molmo_k_matmul_k_avx512(const molmo_matmul_args *a, int m0, int m1, int n0, int n1,
                             float *ws, size_t ws_floats) {
    if (m0 >= m1 || n0 >= n1) return;
    if (!molmo_cpu_get()->avx512vnni) {
        molmo_k_matmul_k_avx2(a, m0, m1, n0, n1, ws, ws_floats);
        return;
    }
    kmatmul(a, m0, m1, n0, n1, ws, ws_floats);
}

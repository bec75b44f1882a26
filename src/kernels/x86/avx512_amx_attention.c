/* avx512_amx_attention.c — attention with bf16 activations (molmo_attn_args.bf16: q, k and v
 * hold bf16 values, the softmax weights are rounded to bf16 before P·V) on AMX-BF16 tiles: the
 * ViT's attention and the language model's prefill under --bf16-activations. Causal or not,
 * K/V stored as f32 or f16 (the values are bf16 either way), hd a multiple of 32 up to 128;
 * anything else (or too little workspace for a kv head's K and V) returns 0 and the FMA kernel
 * runs the same specification.
 *
 * Per work item (a head and up to 144 query rows), per group of 16 rows:
 *   S = Q·Kᵀ: Q's rows as bf16 tiles (16 rows x 32 dims), K as pair-layout tiles (row p: dims
 *     2p, 2p+1 of 16 keys), one 16 x 16 f32 tile of scores per 16 keys (causal: up to the keys
 *     the group's last row sees), stored into the scratch rows; products of bf16 values are
 *     exact and the tile sums them in f32;
 *   softmax in f32 on each row over its own keys (the normaliser before rounding), the weights
 *     written straight into bf16 tiles (16 rows x 32 keys; round to nearest even: the rounding
 *     the specification asks for; zero beyond a row's keys);
 *   O = P·V: V as pair-layout tiles (row p: keys 2p, 2p+1 of 16 columns), up to four 16 x 16
 *     f32 tiles of outputs at a time, scaled by 1/sum on the way out.
 * K and V of a kv head are packed once per thread for all its items (as avx512_attention.c).
 * Scores and outputs are f32 sums in another order than the FMA kernel's (the tile adds pairs
 * of products): the same values to f32 accuracy, tested against the reference. TDPBF16PS
 * flushes denormals: weights below 2^-126 count as zero. V's pairs are built from the bits of
 * its values (the upper halves), exact for bf16 values; an f16 cache holds the decoder's bf16
 * values exactly except below 2^-14 in magnitude, where the truncation is below 2^-22. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/x86/avx512_math.h"
#include "kernels/x86/x86.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512bf16"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512bf16")
#endif

#define TILE 1024 /* bytes of a 16 x 64-byte tile */
#define HS_MAX 4  /* 32-dim steps of the head dimension: hd <= 128 */

/* Two f32 vectors of bf16 values as one vector of bf16 pairs, element 2i and 2i + 1 of lo|hi
 * (exact: the values are bf16 already, or rounded to nearest even where they are not). */
static inline __m512i pairs32(const float *p, int n) {
    const __m512 v0 = _mm512_maskz_loadu_ps(avx512_tail(n), p);
    const __m512 v1 = _mm512_maskz_loadu_ps(avx512_tail(n - 16), p + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
}

typedef struct geo {
    int hs;  /* 32-dim steps of hd */
    int ht;  /* 16-column tiles of hd */
    int nkt; /* 16-key tiles */
    int nks; /* 32-key steps */
} geo;

/* K of kv head g as tiles kb[((kt * hs + s) * np + part) KiB] for the first nkt key tiles:
 * row p holds bf16 part `part` of dims 32s + 2p, 2p + 1 of keys 16kt .. 16kt + 15 (zero beyond
 * n_kv). One part: the values rounded to bf16 (bf16 values already, with bf16 activations);
 * three: f32 values to f32 accuracy (avx512_bf16_parts). */
static void pack_k(const molmo_attn_args *a, int g, int hs, int nkt, int np, uint8_t *kb) {
    const void *k = (const char *)a->k + (size_t)g * a->ldh * molmo_attn_kv_bytes(a->kv_type);
    for (int kt = 0; kt < nkt; kt++)
        for (int s = 0; s < hs; s++) {
            __m512 r[3][16];
            for (int c = 0; c < 16; c++) {
                const int key = 16 * kt + c;
                __m512i pr[3];
                pr[0] = pr[1] = pr[2] = _mm512_setzero_si512();
                if (key < a->n_kv) {
                    const size_t idx = (size_t)key * (size_t)a->ldk + 32 * (size_t)s;
                    avx512_bf16_parts(avx512_load_w16(k, a->kv_type, idx, 0xffff),
                                      avx512_load_w16(k, a->kv_type, idx + 16, 0xffff), np, pr);
                }
                for (int part = 0; part < np; part++) r[part][c] = _mm512_castsi512_ps(pr[part]);
            }
            for (int part = 0; part < np; part++) {
                avx512_transpose16_ps(r[part]); /* r[p]: pair p of the 16 keys */
                uint8_t *t = kb + (((size_t)kt * hs + (size_t)s) * np + (size_t)part) * TILE;
                for (int p = 0; p < 16; p++) _mm512_store_ps((float *)(t + 64 * p), r[part][p]);
            }
        }
}

/* K of kv head g as pack_k's one-part tiles kb[(kt * hs + s) KiB]. V as tiles vb[(ks * ht +
 * t) KiB]: row p holds keys 32ks + 2p, 2p + 1 of columns 16t .. 16t + 15. */
static void pack_head(const molmo_attn_args *a, int g, const geo *G, uint8_t *kb, uint8_t *vb) {
    const size_t es = molmo_attn_kv_bytes(a->kv_type);
    const void *v = (const char *)a->v + (size_t)g * a->ldh * es;
    pack_k(a, g, G->hs, G->nkt, 1, kb);
    const __m512i hi16 = _mm512_set1_epi32((int)0xffff0000u);
    for (int ks = 0; ks < G->nks; ks++)
        for (int t = 0; t < G->ht; t++) {
            uint8_t *o = vb + ((size_t)ks * G->ht + (size_t)t) * TILE;
            for (int p = 0; p < 16; p++) {
                const int k0 = 32 * ks + 2 * p;
                const size_t r0 = (size_t)k0 * (size_t)a->ldv + 16 * (size_t)t;
                /* bf16 values: their upper halves are the bf16 (exact); keys beyond: zero */
                const __m512i lo = k0 < a->n_kv
                                       ? _mm512_castps_si512(avx512_load_w16(v, a->kv_type, r0, 0xffff))
                                       : _mm512_setzero_si512();
                const __m512i hi = k0 + 1 < a->n_kv
                                       ? _mm512_castps_si512(avx512_load_w16(
                                             v, a->kv_type, r0 + (size_t)a->ldv, 0xffff))
                                       : _mm512_setzero_si512();
                const __m512i d = _mm512_or_si512(_mm512_and_si512(hi, hi16), _mm512_srli_epi32(lo, 16));
                _mm512_store_si512((__m512i *)(o + 64 * p), d);
            }
        }
    __asm__ volatile("" ::: "memory"); /* the tile loads read these stores */
}

/* Scores of rows [i0, i0 + mr) of head h into S (rows ld floats apart), 16 keys per tile, for
 * the first nkt key tiles (those the group's rows see). */
static void scores(const molmo_attn_args *a, int h, int i0, int mr, const geo *G, int nkt,
                   const uint8_t *kb, uint8_t *qb, float *S, size_t ld) {
    for (int s = 0; s < G->hs; s++)
        for (int r = 0; r < 16; r++) {
            const float *q = a->q + (size_t)(i0 + r) * (size_t)a->ldq + (size_t)h * a->hd + 32 * s;
            _mm512_store_si512((__m512i *)(qb + (size_t)s * TILE + 64 * r),
                               r < mr ? pairs32(q, 32) : _mm512_setzero_si512());
        }
    __asm__ volatile("" ::: "memory"); /* the tile loads read these stores */
    _tile_loadd(0, qb, 64);
    if (G->hs > 1) _tile_loadd(1, qb + TILE, 64);
    if (G->hs > 2) _tile_loadd(2, qb + 2 * TILE, 64);
    if (G->hs > 3) _tile_loadd(3, qb + 3 * TILE, 64);
    for (int kt = 0; kt < nkt; kt++) {
        const uint8_t *kt0 = kb + (size_t)kt * G->hs * TILE;
        float *dst = S + 16 * (size_t)kt;
#define KEY_TILE(c)                                                                                \
    do {                                                                                           \
        _tile_zero(c);                                                                             \
        _tile_loadd(4, kt0, 64);                                                                   \
        _tile_dpbf16ps(c, 0, 4);                                                                   \
        if (G->hs > 1) {                                                                           \
            _tile_loadd(4, kt0 + TILE, 64);                                                        \
            _tile_dpbf16ps(c, 1, 4);                                                               \
        }                                                                                          \
        if (G->hs > 2) {                                                                           \
            _tile_loadd(4, kt0 + 2 * TILE, 64);                                                    \
            _tile_dpbf16ps(c, 2, 4);                                                               \
        }                                                                                          \
        if (G->hs > 3) {                                                                           \
            _tile_loadd(4, kt0 + 3 * TILE, 64);                                                    \
            _tile_dpbf16ps(c, 3, 4);                                                               \
        }                                                                                          \
        _tile_stored(c, dst, ld * sizeof(float));                                                  \
    } while (0)
        /* consecutive key tiles in alternate sum tiles, so that one's products need not wait
         * for the previous one's store (four alternating tiles measured the same) */
        if (kt & 1)
            KEY_TILE(6);
        else
            KEY_TILE(5);
#undef KEY_TILE
    }
    __asm__ volatile("" ::: "memory"); /* the vector loads of S read the tile stores */
}

/* One row of scores: p_j = exp(scale * s_j - max) written straight into the row's 64 bytes
 * of each weight tile (pb + ks KiB, rounded to bf16; zero beyond n), in one pass after the
 * max; returns 1 / sum p (the sum of the f32 values, in double as the reference, each pair of
 * vectors added in f32 first). */
static float softmax_row(const float *row, int n, float scale, uint8_t *pb, int nks) {
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_mul_ps(sc, _mm512_loadu_ps(row + i)));
    if (i < n) {
        const __mmask16 m = avx512_tail(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m, row + i)));
    }
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int ks = 0; ks < nks; ks++) {
        const int k = 32 * ks;
        const __mmask16 m0 = avx512_tail(n - k), m1 = avx512_tail(n - k - 16);
        const __m512 e0 = _mm512_maskz_mov_ps(
            m0, avx512_exp(_mm512_sub_ps(_mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m0, row + k)), mv)));
        const __m512 e1 = _mm512_maskz_mov_ps(
            m1, avx512_exp(_mm512_sub_ps(_mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m1, row + k + 16)), mv)));
        _mm512_store_si512((__m512i *)(pb + (size_t)ks * TILE), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        const __m512 e = _mm512_add_ps(e0, e1);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(avx512_hi256(e)));
    }
    return 1.0f / (float)_mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

/* Softmax of the mr rows (row r over its len[r] keys), as bf16 weight tiles pb[ks KiB] for
 * the first nks 32-key steps (16 rows x 32 keys; zero rows beyond mr and keys beyond a row's
 * length); inv[r] = 1 / sum. */
static void weights(const molmo_attn_args *a, int mr, const int len[16], int nks, const float *S,
                    size_t ld, uint8_t *pb, float inv[16]) {
    for (int r = 0; r < 16; r++) {
        if (r < mr) {
            inv[r] = softmax_row(S + (size_t)r * ld, len[r], a->scale, pb + 64 * r, nks);
        } else {
            for (int ks = 0; ks < nks; ks++)
                _mm512_store_si512((__m512i *)(pb + (size_t)ks * TILE + 64 * r), _mm512_setzero_si512());
        }
    }
    __asm__ volatile("" ::: "memory");
}

/* out rows [i0, i0 + mr) of head h = (P · V) * inv over the first nks 32-key steps, four
 * 16-column tiles at a time. */
static void outputs(const molmo_attn_args *a, int h, int i0, int mr, const geo *G, int nks,
                    const uint8_t *pb, const uint8_t *vb, const float inv[16], float *stage) {
    for (int t0 = 0; t0 < G->ht; t0 += 4) {
        const int nt = G->ht - t0 < 4 ? G->ht - t0 : 4;
        _tile_zero(2);
        _tile_zero(3);
        _tile_zero(4);
        _tile_zero(5);
        for (int ks = 0; ks < nks; ks++) {
            const uint8_t *v0 = vb + ((size_t)ks * G->ht + (size_t)t0) * TILE;
            _tile_loadd(0, pb + (size_t)ks * TILE, 64);
            _tile_loadd(1, v0, 64);
            _tile_dpbf16ps(2, 0, 1);
            if (nt > 1) {
                _tile_loadd(1, v0 + TILE, 64);
                _tile_dpbf16ps(3, 0, 1);
            }
            if (nt > 2) {
                _tile_loadd(1, v0 + 2 * TILE, 64);
                _tile_dpbf16ps(4, 0, 1);
            }
            if (nt > 3) {
                _tile_loadd(1, v0 + 3 * TILE, 64);
                _tile_dpbf16ps(5, 0, 1);
            }
        }
        _tile_stored(2, stage, 256);
        _tile_stored(3, stage + 16, 256);
        _tile_stored(4, stage + 32, 256);
        _tile_stored(5, stage + 48, 256);
        __asm__ volatile("" ::: "memory");
        for (int r = 0; r < mr; r++) {
            float *o = a->out + (size_t)(i0 + r) * (size_t)a->ldo + (size_t)h * a->hd + 16 * t0;
            const __m512 iv = _mm512_set1_ps(inv[r]);
            for (int t = 0; t < nt; t++)
                _mm512_storeu_ps(o + 16 * t, _mm512_mul_ps(_mm512_load_ps(stage + 64 * r + 16 * t), iv));
        }
    }
}

int molmo_k_attention_bf16_amx(const molmo_attn_args *a, int it0, int it1, float *scratch,
                               float *ws, size_t ws_floats) {
    if (!a->bf16 || a->hd % 32 != 0 || a->hd > 32 * HS_MAX || !ws ||
        (a->kv_type != MOLMO_DTYPE_F32 && a->kv_type != MOLMO_DTYPE_F16))
        return 0;
    const geo G = {a->hd / 32, a->hd / 16, (a->n_kv + 15) / 16, (a->n_kv + 31) / 32};
    const size_t kbytes = (size_t)G.nkt * G.hs * TILE, vbytes = (size_t)G.nks * G.ht * TILE;
    const size_t need = kbytes + vbytes + (size_t)HS_MAX * TILE + (size_t)G.nks * TILE +
                        16 * 64 * sizeof(float);
    if (need > ws_floats * sizeof(float)) return 0;
    uint8_t *kb = (uint8_t *)ws, *vb = kb + kbytes, *qb = vb + vbytes;
    uint8_t *pb = qb + (size_t)HS_MAX * TILE;
    float *stage = (float *)(pb + (size_t)G.nks * TILE); /* 16 rows x 64 outputs */
    const size_t ld = molmo_attn_ld_scores(a->n_kv);
    /* seven tiles of 16 x 64 bytes. Scores: 0-3 the Q steps, 4 a K tile, 5/6 the scores of
     * alternate key tiles. Outputs: 0 a P tile, 1 a V tile, 2-5 four output column tiles. */
    molmo_x86_amx_configure_full(7);
    int have = -1;
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        const int g = h / (a->n_heads / a->n_kv_heads);
        if (g != have) {
            pack_head(a, g, &G, kb, vb);
            have = g;
        }
        for (int r0 = i0; r0 < i1; r0 += 16) {
            const int mr = i1 - r0 < 16 ? i1 - r0 : 16;
            float inv[16];
            int len[16], lmax = 0;
            for (int r = 0; r < mr; r++) {
                len[r] = molmo_attn_row_len(a, r0 + r);
                lmax = len[r] > lmax ? len[r] : lmax;
            }
            /* causal: the keys the group's last row sees, no further */
            const int nkt = (lmax + 15) / 16, nks = (lmax + 31) / 32;
            scores(a, h, r0, mr, &G, nkt, kb, qb, scratch, ld);
            weights(a, mr, len, nks, scratch, ld, pb, inv);
            outputs(a, h, r0, mr, &G, nks, pb, vb, inv, stage);
        }
    }
    _tile_release();
    return 1;
}

/* ----------------------------------------------------------- f32 scores on the tiles */

/* Scores of f32 q and K (the FMA attention's S = q · Kᵀ, not causal) on AMX-BF16 tiles to f32
 * accuracy, for attention_gemm.h, which keeps the softmax and P·V of the FMA kernel. q and K
 * are split into three bf16 parts each and six of the nine products are taken (q1k1, q1k2,
 * q1k3, q2k1, q2k2, q3k1; the three left out are below 2^-24 of q·k), summed by the tile in
 * f32: the same values to f32 accuracy in another order than the FMA GEMM. ViT attention
 * (577 x 577, 16 heads of 64, 2 threads), thread-ms per layer: 4.4 for the FMA S, against
 * ~2.9 here (session 13; a version with P·V on the tiles too lost in the split of P what it
 * won). */

size_t molmo_k_attn_split_k_bytes(const molmo_attn_args *a) {
    if (a->causal || a->hd % 32 != 0 || a->hd > 32 * HS_MAX ||
        (a->kv_type != MOLMO_DTYPE_F32 && a->kv_type != MOLMO_DTYPE_F16))
        return 0;
    return (size_t)((a->n_kv + 15) / 16) * (size_t)(a->hd / 32) * 3 * TILE;
}

/* K of kv head g as pack_k's three-part tiles kb[((kt * hs + s) * 3 + part) KiB]. */
void molmo_k_attn_split_k(const molmo_attn_args *a, int g, void *kb) {
    pack_k(a, g, a->hd / 32, (a->n_kv + 15) / 16, 3, kb);
    __asm__ volatile("" ::: "memory"); /* the tile loads read these stores */
}

/* Rows [r0, r0 + 16 n) of head h's q (zero beyond i1) as tiles qb[((j * hs + s) * 3 + part)
 * KiB] for group j < n: row r holds part `part` of dims 32s .. 32s + 31 of its query. */
static void split_q(const molmo_attn_args *a, int h, int r0, int n, int i1, uint8_t *qb) {
    const int hs = a->hd / 32;
    for (int j = 0; j < n; j++)
        for (int s = 0; s < hs; s++)
            for (int r = 0; r < 16; r++) {
                const int i = r0 + 16 * j + r;
                __m512i pr[3];
                pr[0] = pr[1] = pr[2] = _mm512_setzero_si512();
                if (i < i1) {
                    const float *q = a->q + (size_t)i * (size_t)a->ldq + (size_t)h * a->hd + 32 * s;
                    avx512_bf16_parts(_mm512_loadu_ps(q), _mm512_loadu_ps(q + 16), 3, pr);
                }
                for (int part = 0; part < 3; part++)
                    _mm512_store_si512((__m512i *)(qb + (((size_t)j * hs + s) * 3 + part) * TILE +
                                                   64 * r),
                                       pr[part]);
            }
    __asm__ volatile("" ::: "memory"); /* the tile loads read these stores */
}

/* One 32-dim step of one group's scores in tile c: its three Q parts (one after the other in
 * tiles 0, 4, 7) against the key tile's three K parts in tiles 1-3. */
#define Q_STEP(c, q0)                                                                              \
    do {                                                                                           \
        _tile_loadd(0, q0, 64);                                                                    \
        _tile_dpbf16ps(c, 0, 1);                                                                   \
        _tile_dpbf16ps(c, 0, 2);                                                                   \
        _tile_dpbf16ps(c, 0, 3);                                                                   \
        _tile_loadd(4, (q0) + TILE, 64);                                                           \
        _tile_dpbf16ps(c, 4, 1);                                                                   \
        _tile_dpbf16ps(c, 4, 2);                                                                   \
        _tile_loadd(7, (q0) + 2 * TILE, 64);                                                       \
        _tile_dpbf16ps(c, 7, 1);                                                                   \
    } while (0)

void molmo_k_attn_scores_split(const molmo_attn_args *a, int h, int i0, int i1, const void *kbv,
                               float *S, size_t ld, void *qbv) {
    const uint8_t *kb = kbv;
    uint8_t *qb = qbv;
    const int hs = a->hd / 32, nkt = (a->n_kv + 15) / 16;
    /* tiles of 16 x 64 bytes: 0, 4, 7 a Q part, 1-3 the K parts of a key tile, 5 and 6 the
     * scores of two groups of rows, which share each K tile's loads */
    molmo_x86_amx_configure_full(8);
    for (int r0 = i0; r0 < i1; r0 += 32) {
        const int two = i1 - r0 > 16;
        split_q(a, h, r0, two ? 2 : 1, i1, qb);
        float *dst = S + (size_t)(r0 - i0) * ld;
        for (int kt = 0; kt < nkt; kt++) {
            _tile_zero(5);
            _tile_zero(6);
            for (int s = 0; s < hs; s++) {
                const uint8_t *k0 = kb + ((size_t)kt * hs + (size_t)s) * 3 * TILE;
                _tile_loadd(1, k0, 64);
                _tile_loadd(2, k0 + TILE, 64);
                _tile_loadd(3, k0 + 2 * TILE, 64);
                Q_STEP(5, qb + (size_t)s * 3 * TILE);
                if (two) Q_STEP(6, qb + ((size_t)hs + (size_t)s) * 3 * TILE);
            }
            _tile_stored(5, dst + 16 * (size_t)kt, ld * sizeof(float));
            if (two) _tile_stored(6, dst + 16 * ld + 16 * (size_t)kt, ld * sizeof(float));
        }
    }
    _tile_release();
    __asm__ volatile("" ::: "memory"); /* the vector loads of S read the tile stores */
}
#undef Q_STEP

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

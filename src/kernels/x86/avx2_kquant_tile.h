/* avx2_kquant_tile.h — the register tile and the decode GEMV of avx2_kquant.c, which includes
 * this file twice: KQ_TILE and KQ_GEMV name the functions and KQ_MADD_ACC(acc, p, s) adds the
 * int16 pair products p * s to the int32 lanes of acc: vpmaddwd and vpaddd with AVX2, one
 * vpdpwssd with AVX-VNNI (included under that target, with KQ_DPBUSD: then the value products
 * are summed per sub-block with vpdpbusd and scaled once). Exact int32 arithmetic either way:
 * the same bits. The file undefines its parameters at its end. Not a public header. */

#ifndef KQ_CAT
#define KQ_CAT2(a, b) a##b
#define KQ_CAT(a, b) KQ_CAT2(a, b)
#endif
#define KQ_STEP KQ_CAT(KQ_TILE, _f32_step)

/* The f32 steps of one block for one row and 8 columns, in the specification's order: isum
 * (Q6_K: less 32 x sum_j sc_j bsum_j) times dx·d into f, then Q4_K's min term
 * (sum_j m_j B_j) times dx·dmin out of it. xr: the row's activation block; scr: the 8
 * columns' scale region (R_* offsets). */
INLINE __m256 KQ_STEP(const int q6, const uint8_t *xr, const uint8_t *scr, __m256i isum, __m256 f) {
    float dxi;
    memcpy(&dxi, xr + XB_DX, 4);
    const __m256 dxv = _mm256_set1_ps(dxi);
    __m256i aux = _mm256_setzero_si256();
    for (int p = 0; p < (q6 ? 8 : 4); p++) /* Q6_K: scale pairs x 16-value sums; Q4_K: min pairs x 32-value sums */
        aux = KQ_MADD_ACC(aux, _mm256_load_si256((const __m256i *)(scr + R_MP + 32 * p)),
                          _mm256_set1_epi32(load_i32(xr + (q6 ? XB_BQ : XB_BP) + 4 * p)));
    if (q6) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(aux, 5));
    f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(scr + R_D))), f);
    if (!q6)
        f = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(aux), _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(scr + R_DMIN))), f);
    return f;
}

/* y[0:mr, 0:NR] of one block (as the AVX-512 tile): row i's activation block at xa + i * ldq. */
INLINE void KQ_TILE(const int mr, const int q6, const uint8_t *xa, size_t ldq, const uint8_t *pb,
                    float *y, size_t ldy, int first, const float *bias, const int nc[NV]) {
    const int nsb = q6 ? 16 : 8, per = q6 ? 4 : 8;
    __m256i acc[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_si256();
    for (int sb = 0; sb < nsb; sb++) {
#ifdef KQ_DPBUSD
        /* AVX-VNNI: the sub-block's sums on their own (vpdpbusd), then scaled once */
        __m256i sv[MR][NV];
        for (int i = 0; i < mr; i++)
            for (int v = 0; v < NV; v++) sv[i][v] = _mm256_setzero_si256();
        for (int g = sb * per; g < sb * per + per; g++) {
            __m256i wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = _mm256_load_si256((const __m256i *)(pb + v * PV + 32 * g));
            for (int i = 0; i < mr; i++) {
                const __m256i xb = _mm256_set1_epi32(load_i32(xa + i * ldq + 4 * g));
                for (int v = 0; v < NV; v++) sv[i][v] = _mm256_dpbusd_avx_epi32(sv[i][v], wv[v], xb);
            }
        }
        for (int v = 0; v < NV; v++) {
            const __m256i c_ = kq_scale32(pb + v * PV + OFF_SC, sb);
            for (int i = 0; i < mr; i++) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_mullo_epi32(sv[i][v], c_));
        }
#else
        __m256i scp[NV];
        for (int v = 0; v < NV; v++) scp[v] = _mm256_load_si256((const __m256i *)(pb + v * PV + OFF_SC + 32 * sb));
        for (int g = sb * per; g < sb * per + per; g++) {
            __m256i wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = _mm256_load_si256((const __m256i *)(pb + v * PV + 32 * g));
            for (int i = 0; i < mr; i++) {
                const __m256i xb = _mm256_set1_epi32(load_i32(xa + i * ldq + 4 * g));
                for (int v = 0; v < NV; v++)
                    acc[i][v] = KQ_MADD_ACC(acc[i][v], _mm256_maddubs_epi16(wv[v], xb), scp[v]);
            }
        }
#endif
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) {
            float *yp = y + i * ldy + 8 * v;
            __m256 f = first ? _mm256_setzero_ps() : avx2_load(yp, nc[v]);
            f = KQ_STEP(q6, xa + i * ldq, pb + v * PV + OFF_SC, acc[i][v], f);
            if (bias) f = _mm256_add_ps(f, avx2_load(bias + 8 * v, nc[v]));
            if (nc[v] > 0) avx2_store(yp, nc[v], f);
        }
}

/* The GEMV's products of value vector v (group gi of the block: 4 values of each of 8 columns)
 * with row i's activation dword gi, for sub-block sb. With AVX-VNNI (KQ_DPBUSD) they are summed
 * on their own in s[slot] with vpdpbusd (unsigned weight bytes x signed activation bytes, 4 a
 * lane) and KQ_SB_END scales the int32 sums once (vpmulld) into isum: 8 + 3 instructions for a
 * Q4_K sub-block of 8 columns where vpmaddubsw and vpdpwssd take 16. Without it the scale is
 * folded into the widening of the pair sums, straight into isum. Exact int32 either way: the
 * same bits. */
#ifdef KQ_DPBUSD
#define KQ_SB_ADD(slot, v, gi, sb)                                                                 \
    do {                                                                                           \
        const __m256i v_ = (v);                                                                    \
        for (int i = 0; i < mr; i++)                                                               \
            s[slot][i] = _mm256_dpbusd_avx_epi32(s[slot][i], v_,                                   \
                                                 _mm256_set1_epi32(load_i32(xb + i * ldq + 4 * (gi)))); \
    } while (0)
#define KQ_SB_END(slot, sb)                                                                        \
    do {                                                                                           \
        const __m256i c_ = kq_scale32(sc, (sb));                                                   \
        for (int i = 0; i < mr; i++) {                                                             \
            isum[i] = _mm256_add_epi32(isum[i], _mm256_mullo_epi32(s[slot][i], c_));               \
            s[slot][i] = _mm256_setzero_si256();                                                   \
        }                                                                                          \
    } while (0)
#else
#define KQ_SB_ADD(slot, v, gi, sb)                                                                 \
    do {                                                                                           \
        const __m256i v_ = (v);                                                                    \
        const __m256i p_ = _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (sb)));            \
        for (int i = 0; i < mr; i++)                                                               \
            isum[i] = KQ_MADD_ACC(isum[i], _mm256_maddubs_epi16(v_, _mm256_set1_epi32(load_i32(   \
                                               xb + i * ldq + 4 * (gi)))), p_);                    \
    } while (0)
#define KQ_SB_END(slot, sb) ((void)0)
#endif

/* Decode (mr <= MR rows): y[0:mr, 0:8] of the 8 columns at w (nc valid, rows ldw bytes apart)
 * over the nbk blocks of a K chunk, without the panel: each block's value vectors are made in
 * registers as pack8_* makes them and fed to the products at once, its scales go through a
 * small buffer, and the f32 accumulators stay in registers across the blocks (first: from 0,
 * else from y; bias added after the last). f: the next 8 rows, prefetched into L2 over the
 * blocks (next_bytes of them). Per output the same operations as KQ_TILE, in the same order
 * where it matters (the f32 steps): the same bits. */
INLINE void KQ_GEMV(const int mr, const int q6, int nc, const uint8_t *w, size_t ldw, size_t bb,
                    int nbk, const uint8_t *xa, size_t ldq, float *y, size_t ldy, int first,
                    const float *bias, pf *f, size_t next_bytes) {
    _Alignas(32) uint8_t sc[SCB];
    __m256 acc[MR];
    for (int i = 0; i < mr; i++) acc[i] = first ? _mm256_setzero_ps() : avx2_load(y + i * ldy, nc);
    for (int b = 0; b < nbk; b++) {
        const uint8_t *wb = w + (size_t)b * bb, *xb = xa + (size_t)b * XB;
        f->end = next_bytes * (size_t)(b + 1) / (size_t)nbk;
        __m256i isum[MR], s[2][MR]; /* s: the two sub-blocks being summed (KQ_DPBUSD) */
        for (int i = 0; i < mr; i++) isum[i] = s[0][i] = s[1][i] = _mm256_setzero_si256();
        (void)s;
        if (!q6) {
            hdr8_q4_k(wb, ldw, nc, sc);
            for (int g = 0; g < 4; g++) { /* as pack8_q4_k: sub-blocks 2g and 2g + 1 */
                __m256i r[8];
                load32x8_pf(wb + 16 + 32 * g, ldw, nc, r, f);
                for (int t = 0; t < 8; t++) {
                    KQ_SB_ADD(0, q4_value(0, r[t]), 16 * g + t, 2 * g);
                    KQ_SB_ADD(1, q4_value(1, r[t]), 16 * g + 8 + t, 2 * g + 1);
                }
                KQ_SB_END(0, 2 * g);
                KQ_SB_END(1, 2 * g + 1);
            }
        } else {
            hdr8_q6_k(wb, ldw, nc, sc);
            for (int hf = 0; hf < 2; hf++) { /* as pack8_q6_k */
                __m256i H[8], A[8];
                load32x8_pf(wb + 128 + 32 * hf, ldw, nc, H, f);
#pragma GCC unroll 2 /* p constant in q6_value: no selects at run time */
                for (int p = 0; p < 2; p++) {
                    load32x8_pf(wb + 64 * hf + 32 * p, ldw, nc, A, f);
                    for (int u = 0; u < 8; u++) {
                        const int g0 = 32 * hf + 8 * p + u, g1 = g0 + 16; /* sub-blocks g / 4 */
                        KQ_SB_ADD(0, q6_value(2 * p, A[u], H[u]), g0, g0 / 4);
                        KQ_SB_ADD(1, q6_value(2 * p + 1, A[u], H[u]), g1, g1 / 4);
                        if (u % 4 == 3) {
                            KQ_SB_END(0, g0 / 4);
                            KQ_SB_END(1, g1 / 4);
                        }
                    }
                }
            }
        }
        for (int i = 0; i < mr; i++) acc[i] = KQ_STEP(q6, xb + i * ldq, sc, isum[i], acc[i]);
        pf_lines(f, 1 << 20); /* what is left of this block's share */
    }
    for (int i = 0; i < mr; i++) {
        if (bias) acc[i] = _mm256_add_ps(acc[i], avx2_load(bias, nc));
        avx2_store(y + i * ldy, nc, acc[i]);
    }
}

#undef KQ_SB_ADD
#undef KQ_SB_END
#undef KQ_STEP
#undef KQ_DPBUSD
#undef KQ_TILE
#undef KQ_GEMV
#undef KQ_MADD_ACC

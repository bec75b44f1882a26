/* avx2_kquant_tile.h — the register tile and the decode GEMV of avx2_kquant.c, which includes
 * this file twice: KQ_TILE and KQ_GEMV name the functions and KQ_MADD_ACC(acc, p, s) adds the
 * int16 pair products p * s to the int32 lanes of acc: vpmaddwd and vpaddd with AVX2, one
 * vpdpwssd with AVX-VNNI (included under that target, with KQ_DPBUSD: then the value products
 * are summed per sub-block with vpdpbusd and scaled once). Exact int32 arithmetic either way:
 * the same bits. The file undefines its parameters at its end. Not a public header. */

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
            const __m256i p_ = _mm256_load_si256((const __m256i *)(pb + v * PV + OFF_SC + 32 * sb));
            const __m256i c_ = _mm256_srai_epi32(_mm256_slli_epi32(p_, 16), 16);
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
    for (int i = 0; i < mr; i++) {
        const uint8_t *xr = xa + i * ldq;
        float dxi;
        memcpy(&dxi, xr + XB_DX, 4);
        const __m256 dxv = _mm256_set1_ps(dxi);
        for (int v = 0; v < NV; v++) {
            const uint8_t *pv = pb + v * PV;
            __m256i isum = acc[i][v], aux = _mm256_setzero_si256();
            for (int p = 0; p < (q6 ? 8 : 4); p++) /* Q6_K: sum sc_j bsum_j; Q4_K: sum m_j B_j */
                aux = KQ_MADD_ACC(aux, _mm256_load_si256((const __m256i *)(pv + OFF_MP + 32 * p)),
                                  _mm256_set1_epi32(load_i32(xr + (q6 ? XB_BQ : XB_BP) + 4 * p)));
            if (q6) isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(aux, 5));
            float *yp = y + i * ldy + 8 * v;
            __m256 f = first ? _mm256_setzero_ps() : avx2_load(yp, nc[v]);
            f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(pv + OFF_D))), f);
            if (!q6)
                f = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(aux),
                                     _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(pv + OFF_DMIN))), f);
            if (bias) f = _mm256_add_ps(f, avx2_load(bias + 8 * v, nc[v]));
            if (nc[v] > 0) avx2_store(yp, nc[v], f);
        }
    }
}

/* isum[i] += the products of value vector v (4 values of each of 8 columns: group gi of the
 * block) with row i's activation dword gi, each pair sum times its sub-block scale scp. */
#define KQ_GEMV_STEP(v, gi, scp)                                                                   \
    do {                                                                                           \
        const __m256i v_ = (v);                                                                    \
        for (int i = 0; i < mr; i++)                                                               \
            isum[i] = KQ_MADD_ACC(isum[i], _mm256_maddubs_epi16(v_, _mm256_set1_epi32(load_i32(   \
                                               xb + i * ldq + 4 * (gi)))), (scp));                 \
    } while (0)

#ifdef KQ_DPBUSD
/* With AVX-VNNI the GEMV sums each sub-block's products on their own with vpdpbusd (unsigned
 * weight bytes x signed activation bytes, 4 a lane) and then scales the int32 sums once
 * (vpmulld): 8 + 3 instructions for a Q4_K sub-block of 8 columns where vpmaddubsw and
 * vpdpwssd take 16. Exact int32 either way: the same bits. s[i] += v x row i's dword gi. */
#define KQ_SB_STEP(s, v, gi)                                                                       \
    do {                                                                                           \
        const __m256i v_ = (v);                                                                    \
        for (int i = 0; i < mr; i++)                                                               \
            s[i] = _mm256_dpbusd_avx_epi32(s[i], v_, _mm256_set1_epi32(load_i32(xb + i * ldq + 4 * (gi)))); \
    } while (0)
/* isum[i] += s[i] * the scale of sub-block sb (the low int16 of its pair, sign-extended), and
 * s restarts at 0. */
#define KQ_SB_FLUSH(s, sb)                                                                         \
    do {                                                                                           \
        const __m256i p_ = _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (sb)));            \
        const __m256i c_ = _mm256_srai_epi32(_mm256_slli_epi32(p_, 16), 16);                       \
        for (int i = 0; i < mr; i++) {                                                             \
            isum[i] = _mm256_add_epi32(isum[i], _mm256_mullo_epi32(s[i], c_));                     \
            s[i] = _mm256_setzero_si256();                                                         \
        }                                                                                          \
    } while (0)
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
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[MR];
    for (int i = 0; i < mr; i++) acc[i] = first ? _mm256_setzero_ps() : avx2_load(y + i * ldy, nc);
    for (int b = 0; b < nbk; b++) {
        const uint8_t *wb = w + (size_t)b * bb, *xb = xa + (size_t)b * XB;
        f->end = next_bytes * (size_t)(b + 1) / (size_t)nbk;
        __m256i isum[MR];
        for (int i = 0; i < mr; i++) isum[i] = _mm256_setzero_si256();
        if (!q6) {
            hdr8_q4_k(wb, ldw, nc, sc);
            for (int g = 0; g < 4; g++) { /* sub-blocks 2g (low nibbles) and 2g + 1 (high) */
                __m256i r[8];
                load32x8(wb + 16 + 32 * g, ldw, nc, r);
                pf_lines(f, PF_LINES);
#ifdef KQ_DPBUSD
                __m256i sl[MR], sh[MR];
                for (int i = 0; i < mr; i++) sl[i] = sh[i] = _mm256_setzero_si256();
                for (int t = 0; t < 8; t++) {
                    KQ_SB_STEP(sl, _mm256_and_si256(r[t], m4), 16 * g + t);
                    KQ_SB_STEP(sh, _mm256_and_si256(_mm256_srli_epi16(r[t], 4), m4), 16 * g + 8 + t);
                }
                KQ_SB_FLUSH(sl, 2 * g);
                KQ_SB_FLUSH(sh, 2 * g + 1);
#else
                const __m256i sl = _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (2 * g)));
                const __m256i sh = _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (2 * g + 1)));
                for (int t = 0; t < 8; t++) {
                    KQ_GEMV_STEP(_mm256_and_si256(r[t], m4), 16 * g + t, sl);
                    KQ_GEMV_STEP(_mm256_and_si256(_mm256_srli_epi16(r[t], 4), m4), 16 * g + 8 + t, sh);
                }
#endif
            }
        } else {
            hdr8_q6_k(wb, ldw, nc, sc);
            for (int hf = 0; hf < 2; hf++) { /* values 128 hf ..: groups 32 hf + 0 .. 31 */
                __m256i H[8], A[8];
                load32x8(wb + 128 + 32 * hf, ldw, nc, H);
                load32x8(wb + 64 * hf, ldw, nc, A);
                pf_lines(f, 2 * PF_LINES);
#ifdef KQ_DPBUSD
                __m256i s0[MR], s1[MR]; /* the two sub-blocks being summed */
                for (int i = 0; i < mr; i++) s0[i] = s1[i] = _mm256_setzero_si256();
#endif
                for (int u = 0; u < 8; u++) { /* groups 32 hf + u and 32 hf + 16 + u */
                    const int g0 = 32 * hf + u, g1 = 32 * hf + 16 + u;
                    const __m256i v0 = _mm256_or_si256(_mm256_and_si256(A[u], m4),
                                                       _mm256_and_si256(_mm256_slli_epi16(H[u], 4), m30));
                    const __m256i v1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A[u], 4), m4),
                                                       _mm256_and_si256(H[u], m30));
#ifdef KQ_DPBUSD
                    KQ_SB_STEP(s0, v0, g0);
                    KQ_SB_STEP(s1, v1, g1);
                    if (u % 4 == 3) { /* sub-blocks g0 / 4 and g1 / 4 are complete */
                        KQ_SB_FLUSH(s0, g0 / 4);
                        KQ_SB_FLUSH(s1, g1 / 4);
                    }
#else
                    KQ_GEMV_STEP(v0, g0, _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (g0 / 4))));
                    KQ_GEMV_STEP(v1, g1, _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (g1 / 4))));
#endif
                }
                load32x8(wb + 64 * hf + 32, ldw, nc, A); /* B */
                pf_lines(f, PF_LINES);
                for (int u = 0; u < 8; u++) { /* groups 32 hf + 8 + u and 32 hf + 24 + u */
                    const int g0 = 32 * hf + 8 + u, g1 = 32 * hf + 24 + u;
                    const __m256i v0 = _mm256_or_si256(_mm256_and_si256(A[u], m4),
                                                       _mm256_and_si256(_mm256_slli_epi16(H[u], 2), m30));
                    const __m256i v1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A[u], 4), m4),
                                                       _mm256_and_si256(_mm256_srli_epi16(H[u], 2), m30));
#ifdef KQ_DPBUSD
                    KQ_SB_STEP(s0, v0, g0);
                    KQ_SB_STEP(s1, v1, g1);
                    if (u % 4 == 3) {
                        KQ_SB_FLUSH(s0, g0 / 4);
                        KQ_SB_FLUSH(s1, g1 / 4);
                    }
#else
                    KQ_GEMV_STEP(v0, g0, _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (g0 / 4))));
                    KQ_GEMV_STEP(v1, g1, _mm256_load_si256((const __m256i *)(sc + R_SC + 32 * (g1 / 4))));
#endif
                }
            }
        }
        for (int i = 0; i < mr; i++) { /* the block's f32 steps, as KQ_TILE's */
            const uint8_t *xr = xb + i * ldq;
            float dxi;
            memcpy(&dxi, xr + XB_DX, 4);
            const __m256 dxv = _mm256_set1_ps(dxi);
            __m256i aux = _mm256_setzero_si256();
            for (int p = 0; p < (q6 ? 8 : 4); p++)
                aux = KQ_MADD_ACC(aux, _mm256_load_si256((const __m256i *)(sc + R_MP + 32 * p)),
                                  _mm256_set1_epi32(load_i32(xr + (q6 ? XB_BQ : XB_BP) + 4 * p)));
            if (q6) isum[i] = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(aux, 5));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]),
                                     _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(sc + R_D))), acc[i]);
            if (!q6)
                acc[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(aux),
                                          _mm256_mul_ps(dxv, _mm256_load_ps((const float *)(sc + R_DMIN))),
                                          acc[i]);
        }
        pf_lines(f, 1 << 20); /* what is left of this block's share */
    }
    for (int i = 0; i < mr; i++) {
        if (bias) acc[i] = _mm256_add_ps(acc[i], avx2_load(bias, nc));
        avx2_store(y + i * ldy, nc, acc[i]);
    }
}

#undef KQ_GEMV_STEP
#ifdef KQ_DPBUSD
#undef KQ_SB_STEP
#undef KQ_SB_FLUSH
#undef KQ_DPBUSD
#endif
#undef KQ_TILE
#undef KQ_GEMV
#undef KQ_MADD_ACC

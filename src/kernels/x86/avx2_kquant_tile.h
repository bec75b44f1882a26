/* avx2_kquant_tile.h — the register tile of avx2_kquant.c, which includes this file twice:
 * KQ_TILE names the function and KQ_MADD_ACC(acc, p, s) adds the int16 pair products p * s to
 * the int32 lanes of acc: vpmaddwd and vpaddd with AVX2, one vpdpwssd with AVX-VNNI (included
 * under that target). Exact int32 arithmetic either way: the same bits. The file undefines both
 * at its end. Not a public header. */

/* y[0:mr, 0:NR] of one block (as the AVX-512 tile): row i's activation block at xa + i * ldq. */
INLINE void KQ_TILE(const int mr, const int q6, const uint8_t *xa, size_t ldq, const uint8_t *pb,
                    float *y, size_t ldy, int first, const float *bias, const int nc[NV]) {
    const int nsb = q6 ? 16 : 8, per = q6 ? 4 : 8;
    __m256i acc[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_si256();
    for (int sb = 0; sb < nsb; sb++) {
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

#undef KQ_TILE
#undef KQ_MADD_ACC

/* avx2_quant_body.h — the GEMV and the register tile of avx2_quant.c, which includes this file
 * twice: with vpmaddubsw (AVX2) and with vpdpbusd (AVX-VNNI, under that target). The including
 * file defines the names and the four steps of a block's int32 sums (s: one vector of 8
 * columns):
 *   Q_DOT, Q_GEMV_BLOCK, Q_GEMV, Q_GEMV_Q4_ROWS1, Q_TILE   the names of a block's dot
 *                            product, the GEMV's step, the GEMV, its one-row Q4_0 version,
 *                            and the tile;
 *   Q_PREP(q8, r)            the 8 weight vectors as loaded from W, made ready for Q_STEP;
 *   Q_INIT(q8, c)            the sums before the first product (c: corr broadcast);
 *   Q_STEP(q8, s, w, xb)     s plus the products of 4 k: weights w, activations xb (4 bytes
 *                            broadcast);
 *   Q_FINISH(q8, s, c)       the exact int32 block sums.
 * Exact integer arithmetic either way: the same bits. The file undefines them at its end. Not a
 * public header. */

/* Block sums of the 8 weight vectors r against the row's 32 quantized values q. */
INLINE __m256i Q_DOT(const int q8, const __m256i r[8], const uint8_t *q, int32_t corr) {
    (void)q8; /* the VNNI steps do not depend on it */
    const __m256i c = _mm256_set1_epi32(corr);
    __m256i s = Q_INIT(q8, c);
    for (int g = 0; g < 8; g++) s = Q_STEP(q8, s, r[g], _mm256_set1_epi32(load_i32(q + 4 * g)));
    return Q_FINISH(q8, s, c);
}

/* f[0:mr] += block b of the 8 columns in r (dw: their scales) against mr rows of quantized
 * activations (row i: q at q + i*ldq, dx at dx + i*ldq, corr likewise). */
INLINE void Q_GEMV_BLOCK(const int mr, const int q8, __m256i r[8], __m256 dw, int b,
                         const uint8_t *q, const uint8_t *dx, const uint8_t *corr, size_t ldq,
                         __m256 f[]) {
    Q_PREP(q8, r);
    for (int i = 0; i < mr; i++) {
        const __m256i s = Q_DOT(q8, r, q + i * ldq + 32 * b, load_i32(corr + i * ldq + 4 * b));
        float dxi;
        memcpy(&dxi, dx + i * ldq + 4 * b, 4);
        f[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(_mm256_set1_ps(dxi), dw), f[i]);
    }
}

/* y[0:mr, 0:nc] (+)= blocks [kb0, kb0 + nbk) of nc columns against mr rows of quantized
 * activations (their blocks from kb0 on; layout of Q_GEMV_BLOCK). The columns are rows of W
 * (x16 = 0, nc <= 8: w their block kb0; next, nnext: the following 8 rows, prefetched near
 * the end) or the X16 group w (x16 = 1, nc <= 16, nb blocks a row: two streams, scales and
 * values, read once in order; each block's two halves of 8 columns one after the other). */
INLINE void Q_GEMV(const int mr, const int q8, int nc, const uint8_t *w, size_t ldw, int x16,
                   int nb, int kb0, int nbk, const uint8_t *next, int nnext, const uint8_t *q,
                   const uint8_t *dx, const uint8_t *corr, size_t ldq, float *y, size_t ldy,
                   int accumulate, const float *bias) {
    const size_t bb = q8 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
    const int ahead = (int)(MOLMO_GEMV_PF_BYTES / bb);
    const int nh = x16 && nc > 8 ? 2 : 1, nc0 = nc < 8 ? nc : 8;
    __m256 f[2][GEMV_ROWS];
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < mr; i++)
            f[h][i] = accumulate ? avx2_load(y + i * ldy + 8 * h, h ? nc - 8 : nc0) : _mm256_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        __m256i r[8];
        if (x16) {
            molmo_x86_x16_prefetch(w, nb, q8 ? 8 : 4, kb0 + b);
            for (int h = 0; h < nh; h++) {
                load8_x16(q8, w, nb, kb0 + b, h, r);
                Q_GEMV_BLOCK(mr, q8, r, load_scales8_x16(w, kb0 + b, h), b, q, dx, corr, ldq, f[h]);
            }
        } else {
            const uint8_t *wb = w + (size_t)b * bb;
            molmo_x86_gemv_prefetch(w, nc, ldw, b, ahead, nbk, bb, next, nnext);
            if (nc == 8)
                load8(q8, wb, ldw, 8, r);
            else
                load8(q8, wb, ldw, nc, r);
            Q_GEMV_BLOCK(mr, q8, r, load_scales8(wb, ldw, nc), b, q, dx, corr, ldq, f[0]);
        }
    }
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < mr; i++) {
            const int n = h ? nc - 8 : nc0;
            if (bias) f[h][i] = _mm256_add_ps(f[h][i], avx2_load(bias + 8 * h, n));
            avx2_store(y + i * ldy + 8 * h, n, f[h][i]);
        }
}

/* Q_GEMV's result for one row of x on 8 full columns of Q4_0 rows, computed another way (the
 * same bits; avx512_quant.c's gemv_q4_rows_1 on 8 columns): each row's 2 next blocks come in as
 * one vector (a block's 16 value bytes per 128-bit lane), their sums are taken side by side,
 * and the integer sums of 8 rows x 2 blocks are transposed into one vector of 8 columns per
 * block for the same f32 steps, in block order. With all of K in the call the next 8 rows go
 * into L2 line by line over this group's loads, as on AVX-512. */
INLINE void Q_GEMV_Q4_ROWS1(const uint8_t *w, size_t ldw, int nbk, const uint8_t *next,
                            int nnext, const uint8_t *q, const uint8_t *dx, const uint8_t *corr,
                            float *y, int accumulate, const float *bias) {
    const size_t bb = MOLMO_Q4_0_BYTES;
    const int np = nbk / 2;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 f = accumulate ? _mm256_loadu_ps(y) : _mm256_setzero_ps();
    molmo_x86_group_pf pf; /* the next group's rows into L2 over this group's loads (x86.h) */
    molmo_x86_group_pf_init(&pf, w, ldw, bb, 8, nbk, 2, next, nnext);
    for (int pi = 0; pi < np; pi++) {
        const int b0 = 2 * pi;
        molmo_x86_group_pf_step(&pf, b0);
        /* x's 2 blocks: values 0-15 of block j in lane j of xlo, 16-31 in xhi; the
         * corrections in dword 0 of each lane */
        const __m256i xa = _mm256_loadu_si256((const __m256i *)(q + 32 * b0));
        const __m256i xb = _mm256_loadu_si256((const __m256i *)(q + 32 * b0 + 32));
        const __m256i xlo = _mm256_permute2x128_si256(xa, xb, 0x20), xhi = _mm256_permute2x128_si256(xa, xb, 0x31);
        const __m256i init = _mm256_setr_epi32(load_i32(corr + 4 * b0), 0, 0, 0, load_i32(corr + 4 * b0 + 4), 0, 0, 0);
        __m256i s[8];
        for (int r = 0; r < 8; r++) {
            molmo_x86_group_pf_row(&pf);
            const uint8_t *p = w + (size_t)r * ldw + (size_t)b0 * bb + 2;
            const __m256i v = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)), _mm_loadu_si128((const __m128i *)(p + bb)), 1);
            __m256i t = Q_INIT(0, init);
            t = Q_STEP(0, t, _mm256_and_si256(v, m4), xlo);
            t = Q_STEP(0, t, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), xhi);
            s[r] = Q_FINISH(0, t, init);
        }
        const __m256i u0 = avx2_lane_sums4(s), u1 = avx2_lane_sums4(s + 4); /* rows 0-3, 4-7 */
        const __m256i v[2] = {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31)};
        for (int j = 0; j < 2; j++) {
            const __m256 dw = load_scales8(w + (size_t)(b0 + j) * bb, ldw, 8);
            float dxi;
            memcpy(&dxi, dx + 4 * (b0 + j), 4);
            f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v[j]), _mm256_mul_ps(_mm256_set1_ps(dxi), dw), f);
        }
    }
    if (nbk & 1) { /* the last block as Q_GEMV takes it */
        __m256i r[8];
        const int b = nbk - 1;
        molmo_x86_group_pf_block(&pf, b);
        load8(0, w + (size_t)b * bb, ldw, 8, r);
        __m256 fa[1] = {f};
        Q_GEMV_BLOCK(1, 0, r, load_scales8(w + (size_t)b * bb, ldw, 8), b, q, dx, corr, 0, fa);
        f = fa[0];
    }
    if (bias) f = _mm256_add_ps(f, _mm256_loadu_ps(bias));
    _mm256_storeu_ps(y, f);
}

/* y[0:mr, 0:NR] (+)= the nbk blocks of the panel pw (pack_panel, for the same product) against
 * mr rows of quantized activations (layout of Q_GEMV). */
INLINE void Q_TILE(const int mr, const int q8, int nbk, const uint8_t *q, const uint8_t *dx,
                   const uint8_t *corr, size_t ldq, const uint8_t *pw, float *y, size_t ldy,
                   int accumulate, const float *bias, const int nc[NV]) {
    (void)q8; /* the VNNI steps do not depend on it */
    __m256 f[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++)
            f[i][v] = accumulate ? avx2_load(y + i * ldy + 8 * v, nc[v]) : _mm256_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        const uint8_t *pb = pw + (size_t)b * PB_BYTES;
        __m256i s[MR][NV], c[MR];
        for (int i = 0; i < mr; i++) {
            c[i] = _mm256_set1_epi32(load_i32(corr + i * ldq + 4 * b));
            for (int v = 0; v < NV; v++) s[i][v] = Q_INIT(q8, c[i]);
        }
        for (int g = 0; g < 8; g++) {
            __m256i wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = _mm256_load_si256((const __m256i *)(pb + 256 * v + 32 * g));
            for (int i = 0; i < mr; i++) {
                const __m256i xb = _mm256_set1_epi32(load_i32(q + i * ldq + 32 * b + 4 * g));
                for (int v = 0; v < NV; v++) s[i][v] = Q_STEP(q8, s[i][v], wv[v], xb);
            }
        }
        __m256 dw[NV];
        for (int v = 0; v < NV; v++) dw[v] = _mm256_load_ps((const float *)(pb + NV * 256) + 8 * v);
        for (int i = 0; i < mr; i++) {
            float dxi;
            memcpy(&dxi, dx + i * ldq + 4 * b, 4);
            const __m256 dxv = _mm256_set1_ps(dxi);
            for (int v = 0; v < NV; v++)
                f[i][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Q_FINISH(q8, s[i][v], c[i])),
                                          _mm256_mul_ps(dxv, dw[v]), f[i][v]);
        }
    }
    if (bias)
        for (int v = 0; v < NV; v++) {
            const __m256 bv = avx2_load(bias + 8 * v, nc[v]);
            for (int i = 0; i < mr; i++) f[i][v] = _mm256_add_ps(f[i][v], bv);
        }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++)
            if (nc[v] > 0) avx2_store(y + i * ldy + 8 * v, nc[v], f[i][v]);
}

#undef Q_DOT
#undef Q_GEMV
#undef Q_GEMV_BLOCK
#undef Q_GEMV_Q4_ROWS1
#undef Q_TILE
#undef Q_PREP
#undef Q_INIT
#undef Q_STEP
#undef Q_FINISH

/* kquant.c — the plain-C quantizers and dequantizers of the K-quant formats Q4_K and Q6_K, and
 * the int8 activation blocks of the K matmul kernels (kquant.h).
 *
 * The quantizers follow the scale searches of ggml-quants.c (make_qkx2_quants for Q4_K,
 * make_qx_quants with x^2 weights for Q6_K, then 6-/8-bit quantization of the sub-block scales
 * and a final re-rounding of every value against the scales actually stored), written here from
 * that description. They aim at a small weighted error, not at ggml's exact bytes: the format is
 * the contract, and any encoder's bytes decode the same way in ggml and here. Each arithmetic
 * step is its own statement, so the result does not depend on FMA contraction. */
#include "kernels/kquant.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>

#include "base/error.h"
#include "kernels/quant.h"

/* Largest |x| a K block accepts: its super-block scales then stay inside fp16's range with a
 * margin of 2 (Q4_K: dmin = max min / 63 <= 2^21 / 63 = 33289; Q6_K: d ~ amax / 4096), and the
 * x^2-weighted sums below stay finite in f32. */
#define KQ_MAX_ABS 2097152.0f

/* Round half to even of |v| < 2^22, whatever the floating-point environment's rounding mode
 * (callers clamp first). */
static int nearest_even(float v) {
    const int t = (int)v;         /* toward zero */
    const float f = v - (float)t; /* the fraction of v: exact */
    if (f > 0.5f || (f == 0.5f && (t & 1))) return t + 1;
    if (f < -0.5f || (f == -0.5f && (t & 1))) return t - 1;
    return t;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* nearest_even(clampf(v, lo, hi)) as a float, for |v| < 2^22 and integer bounds (rounding
 * then clamping is the same), without branches: the scale searches below run it ~40 times per
 * value, in loops the compiler vectorizes. */
static inline float level(float v, int lo, int hi) {
    const int t = (int)v;
    const float f = v - (float)t;
    const int odd = t & 1;
    int r = t + ((f > 0.5f) | ((f == 0.5f) & odd)) - ((f < -0.5f) | ((f == -0.5f) & odd));
    r = r < lo ? lo : r;
    r = r > hi ? hi : r;
    return (float)r;
}

/* The scale searches keep their sums in 8 lanes (LANES partial sums, added in a fixed order at
 * the end): the loops vectorize, and the result does not depend on whether they did. */
#define LANES 8

static float lanes_sum(const float p[LANES]) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* ------------------------------------------------------------------------------------ Q4_K */

/* sum w*L, sum w*L^2, sum w*L*x over 32 values for the levels L = level(iscale * (x - lo)),
 * written to La. */
static void level_sums(const float *x, const float *w, float iscale, float lo, int nmax,
                       float *La, float *sl, float *sl2, float *sxl) {
    float p0[LANES] = {0}, p1[LANES] = {0}, p2[LANES] = {0};
    for (int b = 0; b < 32; b += LANES)
        for (int l = 0; l < LANES; l++) {
            const float d = x[b + l] - lo;
            const float t = iscale * d;
            const float q = level(t, 0, nmax);
            const float wl = w[b + l] * q;
            const float wl2 = wl * q;
            const float wxl = wl * x[b + l];
            La[b + l] = q;
            p0[l] += wl;
            p1[l] += wl2;
            p2[l] += wxl;
        }
    *sl = lanes_sum(p0);
    *sl2 = lanes_sum(p1);
    *sxl = lanes_sum(p2);
}

/* sum w (s L + m - x)^2 from the sums (expanded; the candidates differ by far more than the
 * cancellation of this form). */
static float fit_err(float s, float m, float sl, float sl2, float sxl, float sw, float swx, float swx2) {
    const float a = s * s, b = 2.0f * s * m, c = m * m, s2 = 2.0f * s, m2 = 2.0f * m;
    const float t1 = a * sl2, t2 = b * sl, t3 = s2 * sxl, t4 = c * sw, t5 = m2 * swx;
    const float u = t1 + t2;
    const float v = u - t3;
    const float z = v + t4;
    const float r = z - t5;
    return r + swx2;
}

/* Fits 32 values x with weights w as x ~ scale * L - mn, L in 0..nmax, mn >= 0: for the plain
 * range fit and 21 trial scales around it, round x to L, solve the weighted least squares for
 * (scale, -mn) given L (mn clamped at 0), and keep the fit of least weighted squared error.
 * Returns scale (>= 0), *mn, and the levels in L. */
static float fit_scale_min(int nmax, const float *x, const float *w, uint8_t *L, float *mn) {
    float lo = x[0], hi = x[0], p0[LANES] = {0}, p1[LANES] = {0}, p2[LANES] = {0};
    for (int b = 0; b < 32; b += LANES)
        for (int l = 0; l < LANES; l++) {
            const float xv = x[b + l];
            lo = xv < lo ? xv : lo;
            hi = xv > hi ? xv : hi;
            const float wx = w[b + l] * xv;
            const float wx2 = wx * xv;
            p0[l] += w[b + l];
            p1[l] += wx;
            p2[l] += wx2;
        }
    const float sw = lanes_sum(p0), swx = lanes_sum(p1), swx2 = lanes_sum(p2);
    lo = lo > 0.0f ? 0.0f : lo; /* the min is stored as a non-negative offset below zero */
    if (hi == lo) {
        memset(L, 0, 32);
        *mn = -lo;
        return 0.0f;
    }
    const float range = hi - lo, fmax_ = (float)nmax;
    float Lb[32], La[32], sl, sl2, sxl;
    float best_scale = range / fmax_, best_lo = lo;
    level_sums(x, w, fmax_ / range, lo, nmax, Lb, &sl, &sl2, &sxl);
    float best_err = fit_err(best_scale, lo, sl, sl2, sxl, sw, swx, swx2);
    for (int step = 0; step <= 20; step++) {
        const float iscale = (fmax_ - 1.0f + 0.1f * (float)step) / range;
        level_sums(x, w, iscale, lo, nmax, La, &sl, &sl2, &sxl);
        const float a1 = sw * sl2, a2 = sl * sl;
        const float det = a1 - a2;
        if (!(det > 0.0f)) continue;
        const float b1 = sw * sxl, b2 = swx * sl, c1 = sl2 * swx, c2 = sl * sxl;
        float s = (b1 - b2) / det, m = (c1 - c2) / det;
        if (m > 0.0f) { /* the fit wants a positive offset: pin it at zero */
            m = 0.0f;
            s = sxl / sl2;
        }
        const float err = fit_err(s, m, sl, sl2, sxl, sw, swx, swx2);
        if (err < best_err) {
            best_err = err;
            best_scale = s;
            best_lo = m;
            memcpy(Lb, La, sizeof La);
        }
    }
    for (int i = 0; i < 32; i++) L[i] = (uint8_t)Lb[i];
    *mn = -best_lo;
    return best_scale;
}

/* Packs the 6-bit scales ls[8] and mins lm[8] into 12 bytes (the inverse of
 * molmo_q4_k_scale_min). */
static void pack_scales_q4_k(const uint8_t ls[8], const uint8_t lm[8], uint8_t out[12]) {
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4));
    }
}

/* One Q4_K block of x[256] into blk. Returns 0 when a super-block scale overflows fp16. */
static int quantize_q4_k_block(const float *x, uint8_t *blk) {
    float scales[8], mins[8], max_s = 0.0f, max_m = 0.0f;
    uint8_t L[MOLMO_QK_K];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float s2 = 0.0f, w[32];
        for (int i = 0; i < 32; i++) {
            const float x2 = xs[i] * xs[i];
            s2 += x2;
        }
        const float rms = sqrtf(s2 / 32.0f);
        for (int i = 0; i < 32; i++) w[i] = rms + fabsf(xs[i]);
        scales[j] = fit_scale_min(15, xs, w, L + 32 * j, &mins[j]);
        max_s = scales[j] > max_s ? scales[j] : max_s;
        max_m = mins[j] > max_m ? mins[j] : max_m;
    }
    const float inv_s = max_s > 0.0f ? 63.0f / max_s : 0.0f;
    const float inv_m = max_m > 0.0f ? 63.0f / max_m : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)nearest_even(clampf(inv_s * scales[j], 0.0f, 63.0f));
        lm[j] = (uint8_t)nearest_even(clampf(inv_m * mins[j], 0.0f, 63.0f));
    }
    const uint16_t dh = molmo_f32_to_f16(max_s / 63.0f), mh = molmo_f32_to_f16(max_m / 63.0f);
    if ((dh & 0x7fffu) >= 0x7c00u || (mh & 0x7fffu) >= 0x7c00u) return 0;
    memcpy(blk, &dh, 2);
    memcpy(blk + 2, &mh, 2);
    pack_scales_q4_k(ls, lm, blk + 4);
    /* re-round every value against the scale and min as stored */
    const float d = molmo_f16_to_f32(dh), dmin = molmo_f16_to_f32(mh);
    for (int j = 0; j < 8; j++) {
        const float step = d * (float)ls[j], off = dmin * (float)lm[j];
        for (int i = 0; i < 32; i++) {
            const float t = step > 0.0f ? (x[32 * j + i] + off) / step : 0.0f;
            L[32 * j + i] = (uint8_t)nearest_even(clampf(t, 0.0f, 15.0f));
        }
    }
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            blk[16 + 32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    return 1;
}

/* ------------------------------------------------------------------------------------ Q6_K */

/* Fits 16 values as x ~ scale * L, L in -32..31, weights x^2: the value of largest magnitude
 * maps to -32 at the plain scale; 18 trial scales around it; keep the one that maximises
 * (sum w x L)^2 / sum w L^2 (least weighted error at the optimal scale for those L). Returns
 * the scale (may be negative) and the levels L + 32 in Lq. */
static float fit_scale_sym(const float *x, uint8_t *Lq) {
    float amax = 0.0f, max = 0.0f, w[16], wx[16];
    for (int i = 0; i < 16; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
        w[i] = x[i] * x[i];
        wx[i] = w[i] * x[i];
    }
    if (amax < 1e-30f) { /* all (nearly) zero */
        memset(Lq, 32, 16);
        return 0.0f;
    }
    float best = -1.0f, best_scale = 0.0f, best_is = 0.0f;
    for (int k = 0; k < 19; k++) { /* the plain scale (step 0) first: it wins ties */
        const int step = k == 0 ? 0 : k <= 9 ? k - 10 : k - 9;
        const float is = -(32.0f + 0.1f * (float)step) / max;
        float p0[16], p1[16];
        for (int l = 0; l < 16; l++) {
            const float q = level(is * x[l], -32, 31);
            const float wq = w[l] * q;
            p0[l] = wx[l] * q;
            p1[l] = wq * q;
        }
        for (int l = 0; l < LANES; l++) { /* fold 16 into 8 lanes */
            p0[l] += p0[l + LANES];
            p1[l] += p1[l + LANES];
        }
        const float sxl = lanes_sum(p0), sl2 = lanes_sum(p1);
        const float sxl2 = sxl * sxl;
        const float merit = sl2 > 0.0f ? sxl2 / sl2 : 0.0f;
        if (sl2 > 0.0f && merit > best) {
            best = merit;
            best_scale = sxl / sl2;
            best_is = is;
        }
    }
    for (int i = 0; i < 16; i++) Lq[i] = (uint8_t)(level(best_is * x[i], -32, 31) + 32.0f);
    return best_scale;
}

/* One Q6_K block of x[256] into blk. Returns 0 when the super-block scale overflows fp16. */
static int quantize_q6_k_block(const float *x, uint8_t *blk) {
    float scales[16], max_scale = 0.0f, max_abs = 0.0f;
    uint8_t L[MOLMO_QK_K];
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_sym(x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > max_abs) {
            max_abs = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(blk, 0, MOLMO_Q6_K_BYTES);
    if (max_abs < 1e-30f) { /* all zero: d = 0 and every q = 32 (value 0) */
        memset(L, 32, sizeof L);
    } else {
        /* the sub-block scale of largest magnitude becomes -128 */
        const float iscale = -128.0f / max_scale;
        const uint16_t dh = molmo_f32_to_f16(1.0f / iscale);
        if ((dh & 0x7fffu) >= 0x7c00u) return 0;
        memcpy(blk + 208, &dh, 2);
        const float d = molmo_f16_to_f32(dh);
        for (int j = 0; j < 16; j++) {
            const int sc = nearest_even(clampf(iscale * scales[j], -128.0f, 127.0f));
            blk[192 + j] = (uint8_t)(int8_t)sc;
            const float step = d * (float)sc;
            for (int i = 0; i < 16; i++) { /* re-round against the stored scale */
                const float t = step != 0.0f ? x[16 * j + i] / step : 0.0f;
                L[16 * j + i] = (uint8_t)(nearest_even(clampf(t, -32.0f, 31.0f)) + 32);
            }
        }
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *q = L + 128 * h + l; /* q[0], q[32], q[64], q[96]: s = 0..3 */
            blk[64 * h + l] = (uint8_t)((q[0] & 15) | ((q[64] & 15) << 4));
            blk[64 * h + 32 + l] = (uint8_t)((q[32] & 15) | ((q[96] & 15) << 4));
            blk[128 + 32 * h + l] =
                (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
        }
    return 1;
}

/* ------------------------------------------------------------------------------- rows */

molmo_status molmo_kquantize_row(molmo_dtype t, const float *x, void *out, int64_t n,
                                 molmo_error *err) {
    if (!molmo_dtype_is_kquant(t))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "quantize: %s is not a K-quant type",
                         molmo_dtype_name(t));
    if (n <= 0 || n % MOLMO_QK_K != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "quantize %s: a row of %" PRId64 " values is not a positive multiple of %d",
                         molmo_dtype_name(t), n, MOLMO_QK_K);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                             "quantize %s: value %" PRId64 " is %g (not finite)",
                             molmo_dtype_name(t), i, (double)x[i]);
        if (fabsf(x[i]) > KQ_MAX_ABS)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                             "quantize %s: value %" PRId64 " is %g, beyond the %g that the "
                             "block scales of the format can hold",
                             molmo_dtype_name(t), i, (double)x[i], (double)KQ_MAX_ABS);
    }
    const size_t bb = molmo_kquant_block_bytes(t);
    uint8_t *o = out;
    for (int64_t b = 0; b < n / MOLMO_QK_K; b++) {
        const float *xb = x + b * MOLMO_QK_K;
        uint8_t *blk = o + (size_t)b * bb;
        const int ok = t == MOLMO_DTYPE_Q4_K ? quantize_q4_k_block(xb, blk) : quantize_q6_k_block(xb, blk);
        if (!ok) /* a backstop: KQ_MAX_ABS keeps the scales in range */
            return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                             "quantize %s: the block of values %" PRId64 "..%" PRId64
                             " needs a scale beyond the fp16 range",
                             molmo_dtype_name(t), b * MOLMO_QK_K, b * MOLMO_QK_K + MOLMO_QK_K - 1);
    }
    return MOLMO_OK;
}

void molmo_kdequantize_row(molmo_dtype t, const void *in, float *out, int64_t n) {
    const uint8_t *p = in;
    const size_t bb = molmo_kquant_block_bytes(t);
    for (int64_t b = 0; b < n / MOLMO_QK_K; b++) {
        const uint8_t *blk = p + (size_t)b * bb;
        float *o = out + b * MOLMO_QK_K;
        if (t == MOLMO_DTYPE_Q4_K)
            for (int v = 0; v < MOLMO_QK_K; v++) o[v] = molmo_q4_k_value(blk, v);
        else
            for (int v = 0; v < MOLMO_QK_K; v++) o[v] = molmo_q6_k_value(blk, v);
    }
}

/* ------------------------------------------------------------------------- activations */

float molmo_quantize_act_kblock(const float *x, int8_t q[MOLMO_QK_K], int32_t bsum[16]) {
    uint32_t amax_bits = 0; /* |x| as bit patterns: the order of the values, NaN above inf */
    for (int k = 0; k < MOLMO_QK_K; k++) {
        uint32_t u;
        memcpy(&u, &x[k], sizeof u);
        u &= 0x7fffffffu;
        amax_bits = u > amax_bits ? u : amax_bits;
    }
    float amax;
    memcpy(&amax, &amax_bits, sizeof amax);
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    const int ok = amax_bits < 0x7f800000u && id > 0.0f && id <= FLT_MAX;
    for (int j = 0; j < 16; j++) {
        int32_t s = 0;
        for (int k = 16 * j; k < 16 * j + 16; k++) {
            /* |x * id| <= 127.5 here, and RNE of it is what the SIMD kernels compute */
            const int v = ok ? nearest_even(x[k] * id) : 0;
            q[k] = (int8_t)v;
            s += v;
        }
        bsum[j] = s;
    }
    return d;
}

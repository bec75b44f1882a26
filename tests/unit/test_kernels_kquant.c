/* test_kernels_kquant.c — the K-quant formats Q4_K / Q6_K (kernels/kquant.h) and their matmul
 * kernels:
 *   - sizes and names; blocks packed by hand the way ggml's quantizers pack them (scale/min
 *     6-bit packing, nibble and 2-bit layouts of ggml-common.h) decode to d*sc*q - dmin*m and
 *     d*sc*(q-32), plus literal bytes worked out by hand;
 *   - round trip of the quantizers on uniform, Gaussian and awkward rows (error bounds in units
 *     of each sub-block's step, NMSE figures), bad input;
 *   - the activation block rule (256 values, per-16 sums);
 *   - matmul: the specification molmo_k_matmul_kdot_ref against its exact value in double and
 *     against the f32 reference on the dequantized W (rigorous bounds); every fast set against
 *     the specification, bit for bit, on odd shapes (M 1..7, 13, 64, 97; odd N; K 256..16384;
 *     output ranges split at odd places; pool workspace, stack, a 48 KiB workspace that forces
 *     K and row chunking; strided and misaligned operands; bias or not);
 *   - the op layer: 1, 2, 3 threads identical; force_reference = the ref table; non-finite x;
 *     to_f32 / gather_rows of K types.
 * MOLMO_TEST_VERBOSE=1 prints the figures; MOLMO_TEST_SEED=n draws other inputs. */
#include <float.h>

#include "base/fp16.h"
#include "io/gguf.h"
#include "kernel_check.h"
#include "kernels/kquant.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/ref/ref.h"

static const molmo_dtype KTYPES[2] = {MOLMO_DTYPE_Q4_K, MOLMO_DTYPE_Q6_K};

static int verbose(void) { return getenv("MOLMO_TEST_VERBOSE") != NULL; }

/* got and want are the same bits, NaN matching any NaN. */
static void assert_same_bits(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue;
        if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s: element %zu differs: %.9g vs %.9g", what, i, (double)got[i], (double)want[i]);
    }
}

static double gauss(void) { /* Box-Muller on urand */
    const double u1 = 0.5 * (urand() + 1.0) + 1e-12, u2 = 0.5 * (urand() + 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------------- sizes, blocks */

static void test_sizes(void **state) {
    (void)state;
    assert_int_equal(molmo_dtype_block_size(MOLMO_DTYPE_Q4_K), 256);
    assert_int_equal(molmo_dtype_block_size(MOLMO_DTYPE_Q6_K), 256);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_K, 256), 144);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q6_K, 256), 210);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_K, 3584), 14 * 144);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q6_K, 18944), 74 * 210);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_K, 288), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q6_K, -256), 0);
    assert_string_equal(molmo_dtype_name(MOLMO_DTYPE_Q4_K), "q4_k");
    assert_string_equal(molmo_dtype_name(MOLMO_DTYPE_Q6_K), "q6_k");
    /* "block" keeps meaning 32-value blocks (ops.c, the Q8_0/Q4_0 kernels) */
    assert_false(molmo_dtype_is_block(MOLMO_DTYPE_Q4_K) || molmo_dtype_is_block(MOLMO_DTYPE_Q6_K));
    assert_true(molmo_dtype_is_kquant(MOLMO_DTYPE_Q4_K) && molmo_dtype_is_kquant(MOLMO_DTYPE_Q6_K));
    assert_false(molmo_dtype_is_kquant(MOLMO_DTYPE_Q4_0));
    /* ggml's type ids (ggml.h: GGML_TYPE_Q4_K = 12, GGML_TYPE_Q6_K = 14) both ways */
    assert_int_equal(molmo_gguf_ggml_type(MOLMO_DTYPE_Q4_K), 12);
    assert_int_equal(molmo_gguf_ggml_type(MOLMO_DTYPE_Q6_K), 14);
    molmo_dtype t;
    assert_true(molmo_gguf_dtype_from_ggml(12, &t) && t == MOLMO_DTYPE_Q4_K);
    assert_true(molmo_gguf_dtype_from_ggml(14, &t) && t == MOLMO_DTYPE_Q6_K);
    assert_false(molmo_gguf_dtype_from_ggml(13, &t)); /* q5_K: not read */
}

/* A Q4_K block from its fields, packed as ggml's quantize_row_q4_K_ref packs them:
 * scales[j] = ls, scales[j+4] = lm (j < 4); scales[j+4] = ls & 15 | (lm & 15) << 4 with the top
 * two bits of ls in scales[j-4] bits 6-7 and of lm in scales[j] bits 6-7 (j >= 4); qs[32g + l]
 * = L[64g + l] | L[64g + 32 + l] << 4. */
static void make_q4_k(uint16_t d, uint16_t dmin, const int ls[8], const int lm[8], const int *L,
                      uint8_t *blk) {
    memset(blk, 0, MOLMO_Q4_K_BYTES);
    memcpy(blk, &d, 2);
    memcpy(blk + 2, &dmin, 2);
    uint8_t *sc = blk + 4;
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = (uint8_t)ls[j];
            sc[j + 4] = (uint8_t)lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 15) | ((lm[j] & 15) << 4));
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) blk[16 + 32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
}

/* A Q6_K block from its fields, packed as ggml's quantize_row_q6_K_ref packs L (0..63): per
 * half h, ql[l] = L[l] & 15 | (L[l+64] & 15) << 4, ql[l+32] = L[l+32] & 15 | (L[l+96] & 15) << 4,
 * qh[l] = the top two bits of L[l], L[l+32], L[l+64], L[l+96] at bits 0, 2, 4, 6. */
static void make_q6_k(uint16_t d, const int sc[16], const int *L, uint8_t *blk) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *q = L + 128 * h + l;
            blk[64 * h + l] = (uint8_t)((q[0] & 15) | ((q[64] & 15) << 4));
            blk[64 * h + 32 + l] = (uint8_t)((q[32] & 15) | ((q[96] & 15) << 4));
            blk[128 + 32 * h + l] = (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
        }
    for (int j = 0; j < 16; j++) blk[192 + j] = (uint8_t)(int8_t)sc[j];
    memcpy(blk + 208, &d, 2);
}

static void test_known_blocks(void **state) {
    (void)state;
    uint8_t blk[2 * MOLMO_Q6_K_BYTES];
    float y[512];
    int L[256];
    /* Q4_K: every 6-bit scale and min value occurs (sub-blocks 4..7 use the top bits) */
    for (int round = 0; round < 8; round++) {
        int ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            ls[j] = (j * 9 + round * 8 + 1) & 63;
            lm[j] = (63 - j * 7 - round * 8) & 63;
        }
        for (int v = 0; v < 256; v++) L[v] = (v * 7 + round) & 15;
        const uint16_t d = (uint16_t)(0x2000 + 37 * round), dmin = (uint16_t)(0x1c00 + 101 * round);
        make_q4_k(d, dmin, ls, lm, L, blk);
        molmo_kdequantize_row(MOLMO_DTYPE_Q4_K, blk, y, 256);
        for (int v = 0; v < 256; v++) {
            const double want = (double)molmo_f16_to_f32(d) * ls[v / 32] * L[v] -
                                (double)molmo_f16_to_f32(dmin) * lm[v / 32]; /* exact in double */
            if (y[v] != (float)want) fail_msg("q4_k round %d value %d: %.9g, want %.9g", round, v, (double)y[v], want);
            int s, m;
            molmo_q4_k_scale_min(blk + 4, v / 32, &s, &m);
            assert_true(s == ls[v / 32] && m == lm[v / 32]);
        }
    }
    /* literal: d = 1, dmin = 0.5, sub-block 5 scale 33 (0b100001) and min 18 (0b010010):
     * scales[9] = 0x21, scales[1] top bits 0b10, scales[5] top bits 0b01. Value 161 (sub-block
     * 5, second half of qs[32*2 + 1]'s high nibble = 0xa) = 33 * 10 - 0.5 * 18 = 321. */
    memset(blk, 0, MOLMO_Q4_K_BYTES);
    blk[1] = 0x3c, blk[3] = 0x38, blk[4 + 9] = 0x21, blk[4 + 1] = 0x80, blk[4 + 5] = 0x40;
    blk[16 + 64 + 1] = 0xa0;
    assert_true(molmo_q4_k_value(blk, 161) == 321.0f);
    assert_true(molmo_q4_k_value(blk, 160) == -9.0f); /* qs[64] high nibble 0: -dmin * 18 */
    /* Q6_K: every 6-bit q and signed scales of both signs, two blocks in a row */
    for (int round = 0; round < 2; round++) {
        int sc[16];
        for (int j = 0; j < 16; j++) sc[j] = round ? -128 + 17 * j : 127 - 13 * j;
        for (int v = 0; v < 256; v++) L[v] = (v * 5 + 3 * round) & 63;
        make_q6_k((uint16_t)(0x1a00 + 211 * round), sc, L, blk + round * MOLMO_Q6_K_BYTES);
        assert_int_equal(molmo_kquant_block_bytes(MOLMO_DTYPE_Q6_K), 210);
    }
    molmo_kdequantize_row(MOLMO_DTYPE_Q6_K, blk, y, 512);
    for (int v = 0; v < 512; v++) {
        const int round = v / 256, k = v % 256;
        const int s = round ? -128 + 17 * (k / 16) : 127 - 13 * (k / 16), q = (k * 5 + 3 * round) & 63;
        const double want = (double)molmo_f16_to_f32((uint16_t)(0x1a00 + 211 * round)) * s * (q - 32);
        if (y[v] != (float)want) fail_msg("q6_k value %d: %.9g, want %.9g", v, (double)y[v], want);
    }
    /* literal: d = 2, scales[11] = -3; value 176 = half 1, s = 1, l = 16: low nibble of
     * ql[64 + 32 + 16] = 5, qh[32 + 16] bits 2-3 = 0b11 -> q = 53 -> 2 * -3 * 21 = -126 */
    memset(blk, 0, MOLMO_Q6_K_BYTES);
    blk[208] = 0x00, blk[209] = 0x40, blk[192 + 11] = 0xfd;
    blk[64 + 32 + 16] = 0x05, blk[128 + 32 + 16] = 0x0c;
    assert_true(molmo_q6_k_value(blk, 176) == -126.0f);
}

/* ---------------------------------------------------------------------------- round trip */

typedef struct rt_stats {
    double se, sx, worst_units;
} rt_stats;

/* Quantizes x (n values), dequantizes, and checks every value. Inside the range of its levels a
 * value is off by at most half its sub-block's step (d*sc). Values the levels cannot reach are
 * clamped, and the bound comes from the 6-bit (Q6_K: 8-bit) rounding of the sub-block scales
 * against the block scale d:
 *   Q4_K: sc = round(63 s / max s) moves the step by <= d/2, so the top of 15 levels moves by
 *         <= 7.5 d; the min is stored to dmin/2: e <= step + 8 d + dmin;
 *   Q6_K: the fit maps the largest |x| to at most 32.9 levels of a scale s <= (|sc| + 1/2) d,
 *         the clamp is at 31..32 levels of d*sc: e <= 2.5 step + 17 d.
 * (A sub-block whose scale rounds to 0 is within the same bounds.) A block whose fp16 scale d
 * underflows to 0 (all |x| below ~3e-5 for Q4_K, ~1.2e-4 for Q6_K, the format's floor as in
 * ggml) becomes (nearly) zero: e <= 2 amax of the block. Returns the error sums and the worst
 * error in units of the sub-block's step. */
static rt_stats roundtrip(molmo_dtype t, const float *x, int64_t n, const char *what) {
    const size_t bb = molmo_kquant_block_bytes(t);
    uint8_t *q = malloc((size_t)(n / 256) * bb);
    float *y = malloc((size_t)n * sizeof(float));
    assert_true(q && y);
    molmo_error err = {0};
    if (molmo_quantize_row(t, x, q, n, &err) != MOLMO_OK) fail_msg("%s: %s", what, err.msg);
    molmo_dequantize_row(t, q, y, n);
    rt_stats s = {0, 0, 0};
    for (int64_t v = 0; v < n; v++) {
        const uint8_t *blk = q + (size_t)(v / 256) * bb;
        double step, bound;
        uint16_t dh, mh;
        if (t == MOLMO_DTYPE_Q4_K) {
            int sc, m;
            molmo_q4_k_scale_min(blk + 4, (int)(v % 256) / 32, &sc, &m);
            memcpy(&dh, blk, 2);
            memcpy(&mh, blk + 2, 2);
            step = molmo_f16_to_f32(dh) * sc;
            bound = step + 8 * molmo_f16_to_f32(dh) + molmo_f16_to_f32(mh);
        } else {
            memcpy(&dh, blk + 208, 2);
            step = fabs(molmo_f16_to_f32(dh) * (int8_t)blk[192 + (v % 256) / 16]);
            bound = 2.5 * step + 17 * fabs(molmo_f16_to_f32(dh));
        }
        const double e = fabs((double)x[v] - y[v]);
        bound += 0x1p-22 * fabs(x[v]) + 1e-38; /* the f32 rounding of the dequantized value */
        if ((dh & 0x7fff) == 0) { /* a flushed block */
            double amax = 0;
            for (int64_t k = v - v % 256; k < v - v % 256 + 256; k++) amax = fmax(amax, fabs(x[k]));
            bound = 2 * amax + 1e-38;
        }
        if (e > bound) fail_msg("%s %s value %lld: x %.9g -> %.9g, error %g > %g", what, molmo_dtype_name(t),
                                (long long)v, (double)x[v], (double)y[v], e, bound);
        if (step > 0) s.worst_units = fmax(s.worst_units, e / step);
        s.se += e * e;
        s.sx += (double)x[v] * x[v];
    }
    free(q);
    free(y);
    return s;
}

static void test_roundtrip(void **state) {
    (void)state;
    const int64_t n = 256 * 64;
    float *x = malloc((size_t)n * sizeof(float));
    assert_non_null(x);
    static const double max_nmse[2][2] = {{1.3e-2, 1.3e-2}, {8e-4, 8e-4}}; /* [type][dist] */
    for (int t = 0; t < 2; t++)
        for (int dist = 0; dist < 2; dist++) {
            for (int64_t i = 0; i < n; i++) x[i] = dist ? (float)(0.02 * gauss()) : urand() * 3.0f;
            const rt_stats s = roundtrip(KTYPES[t], x, n, dist ? "gaussian" : "uniform");
            const double nmse = s.se / s.sx;
            if (verbose())
                print_message("%s %s: NMSE %.3g (relative RMS %.3f), worst error %.2f steps\n",
                              molmo_dtype_name(KTYPES[t]), dist ? "gaussian" : "uniform", nmse, sqrt(nmse),
                              s.worst_units);
            if (!(nmse <= max_nmse[t][dist]))
                fail_msg("%s: NMSE %g > %g", molmo_dtype_name(KTYPES[t]), nmse, max_nmse[t][dist]);
        }
    /* awkward rows: zeros, a constant, one spike, all positive, tiny and huge (in range)
     * values, subnormals; each in its own block */
    for (int64_t i = 0; i < 256 * 8; i++) {
        const int b = (int)(i / 256), k = (int)(i % 256);
        x[i] = b == 0 ? 0.0f : b == 1 ? 0.75f : b == 2 ? (k == 77 ? -40.0f : 0.01f * urand())
             : b == 3 ? 1.0f + urand() * 0.5f : b == 4 ? 1e-20f * urand() : b == 5 ? 2e6f * urand()
             : b == 6 ? 1e-40f * (float)(k % 5) : (k % 32 == 0 ? 1.0f : 0.0f);
    }
    for (int t = 0; t < 2; t++) {
        roundtrip(KTYPES[t], x, 256 * 8, "awkward");
        uint8_t q[8 * MOLMO_Q4_K_BYTES + 8 * MOLMO_Q6_K_BYTES];
        float y[256];
        assert_int_equal(molmo_quantize_row(KTYPES[t], x, q, 256, NULL), MOLMO_OK);
        molmo_dequantize_row(KTYPES[t], q, y, 256);
        for (int k = 0; k < 256; k++) assert_true(y[k] == 0.0f); /* zeros stay exact */
    }
    free(x);
}

static void test_quant_errors(void **state) {
    (void)state;
    float x[512] = {0};
    uint8_t out[2 * MOLMO_Q6_K_BYTES];
    molmo_error err = {0};
    for (int t = 0; t < 2; t++) {
        assert_int_equal(molmo_quantize_row(KTYPES[t], x, out, 288, &err), MOLMO_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "288"));
        assert_int_equal(molmo_kquantize_row(KTYPES[t], x, out, 0, &err), MOLMO_ERR_INVALID_ARG);
        x[300] = INFINITY;
        assert_int_equal(molmo_quantize_row(KTYPES[t], x, out, 512, &err), MOLMO_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "value 300"));
        x[300] = 3e6f;
        assert_int_equal(molmo_quantize_row(KTYPES[t], x, out, 512, &err), MOLMO_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "value 300"));
        x[300] = -2e6f; /* the largest accepted magnitude is 2^21 */
        assert_int_equal(molmo_quantize_row(KTYPES[t], x, out, 512, &err), MOLMO_OK);
        x[300] = 0.0f;
    }
    assert_int_equal(molmo_kquantize_row(MOLMO_DTYPE_Q8_0, x, out, 256, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "q8_0"));
}

/* ---------------------------------------------------------------------------- activations */

static void test_act_kquant(void **state) {
    (void)state;
    float x[256] = {0};
    int8_t q[256];
    int32_t bs[16];
    /* amax 127: d = 1, q = round half to even; sums per 16 */
    x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[17] = -2.5f, x[18] = -0.5f, x[255] = -127.0f, x[100] = 1.5f;
    assert_true(molmo_quantize_act_kblock(x, q, bs) == 1.0f);
    assert_true(q[0] == 127 && q[1] == 2 && q[2] == 4 && q[17] == -2 && q[18] == 0 && q[255] == -127 && q[100] == 2);
    assert_int_equal(bs[0], 133);
    assert_int_equal(bs[1], -2);
    assert_int_equal(bs[6], 2);
    assert_int_equal(bs[15], -127);
    /* a general block: rne(x * (1 / (amax / 127))) and the 16 sums */
    for (int k = 0; k < 256; k++) x[k] = urand() * 0.3f;
    const float d = molmo_quantize_act_kblock(x, q, bs);
    float amax = 0;
    for (int k = 0; k < 256; k++) amax = fmaxf(amax, fabsf(x[k]));
    assert_true(d == amax / 127.0f);
    for (int j = 0; j < 16; j++) {
        int32_t s = 0;
        for (int k = 16 * j; k < 16 * j + 16; k++) {
            assert_int_equal(q[k], (int)nearbyintf(x[k] * (1.0f / d)));
            s += q[k];
        }
        assert_int_equal(bs[j], s);
    }
    /* zeros and subnormals contribute nothing; inf / NaN: a non-finite scale, q = 0 */
    memset(x, 0, sizeof x);
    assert_true(molmo_quantize_act_kblock(x, q, bs) == 0.0f);
    x[200] = 1e-44f;
    molmo_quantize_act_kblock(x, q, bs);
    for (int k = 0; k < 256; k++) assert_int_equal(q[k], 0);
    x[3] = -INFINITY;
    assert_true(isinf(molmo_quantize_act_kblock(x, q, bs)));
    x[9] = NAN;
    assert_true(isnan(molmo_quantize_act_kblock(x, q, bs)));
    for (int k = 0; k < 256; k++) assert_int_equal(q[k], 0);
    for (int j = 0; j < 16; j++) assert_int_equal(bs[j], 0);
}

/* ---------------------------------------------------------------------------- matmul */

/* W [N, K] of type t quantized from random f32 (Gaussian, std 1/sqrt(K), a little larger in a
 * few rows so the scales vary) at an offset of `off` bytes into *base, and its dequantized f32
 * copy *deq. */
static uint8_t *make_kw(molmo_dtype t, int N, int K, int off, void **base, float **deq) {
    const size_t rb = molmo_dtype_row_bytes(t, K);
    float *f = malloc((size_t)N * K * sizeof(float));
    uint8_t *b = malloc((size_t)N * rb + (size_t)off + 1);
    assert_true(f && b);
    for (size_t i = 0; i < (size_t)N * K; i++) f[i] = (float)(gauss() / sqrt((double)K)) * (i % 7 == 0 ? 3.0f : 1.0f);
    for (int j = 0; j < N; j++)
        assert_int_equal(molmo_quantize_row(t, f + (size_t)j * K, b + off + (size_t)j * rb, K, NULL), MOLMO_OK);
    molmo_dequantize_row(t, b + off, f, (int64_t)N * K);
    *base = b;
    *deq = f;
    return b + off;
}

/* The exact integer form of one block product, in double: dx*d*isum - dx*dmin*imin, and the
 * sum of the magnitudes of the (one or two) terms. */
static double block_exact(molmo_dtype t, const uint8_t *blk, const int8_t *xq, const int32_t *bs,
                          float dx, double *mag) {
    uint16_t dh, mh;
    double s = 0, m = 0;
    if (t == MOLMO_DTYPE_Q4_K) {
        memcpy(&dh, blk, 2);
        memcpy(&mh, blk + 2, 2);
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            molmo_q4_k_scale_min(blk + 4, j, &sc, &mn);
            for (int l = 0; l < 32; l++) {
                const uint8_t byte = blk[16 + 32 * (j / 2) + l];
                s += (double)sc * ((j % 2 ? byte >> 4 : byte & 15) * xq[32 * j + l]);
            }
            m += (double)mn * (bs[2 * j] + bs[2 * j + 1]);
        }
        const double a = (double)dx * molmo_f16_to_f32(dh) * s, b = (double)dx * molmo_f16_to_f32(mh) * m;
        *mag = fabs(a) + fabs(b);
        return a - b;
    }
    memcpy(&dh, blk + 208, 2);
    float w[256];
    molmo_kdequantize_row(t, blk, w, 256); /* exact: d * sc * (q - 32) */
    for (int k = 0; k < 256; k++) s += (double)w[k] * xq[k];
    const double a = (double)dx * s;
    *mag = fabs(a);
    return a;
}

/* The specification s [M, N] against (1) its exact value: per block the terms dx*d*isum (and
 * dx*dmin*imin) are computed with the scale product rounded, (float)isum rounded and one fma
 * each, so |s - bias - sum exact| <= (n_fma + 2) u sum |terms| (n_fma = nb or 2 nb; gamma
 * form); (2) the f32 reference r on the dequantized W: the activation quantization moves each
 * x by at most dx/2 (1 + 2^-10), and W's dequantized values differ from the exact integer form
 * by one rounding (Q4_K), so |s - r| <= sum_b dx_b/2 (1+2^-10) sum |w| + u sum |x||w| + the
 * rounding bounds of s and of r (gamma_K sum |x||w|). */
static void check_spec(molmo_dtype t, const float *s, const float *r, const float *x, int ldx,
                       const uint8_t *w, const float *wf, const float *bias, int M, int N, int K,
                       const char *what) {
    const int nb = K / 256, nf = (t == MOLMO_DTYPE_Q4_K ? 2 : 1) * nb + 2;
    const double g = nf * 0x1p-24 / (1 - nf * 0x1p-24), gK = (K + 1) * 0x1p-24 / (1 - (K + 1) * 0x1p-24);
    const size_t rb = molmo_dtype_row_bytes(t, K), bb = molmo_kquant_block_bytes(t);
    int8_t *xq = malloc((size_t)K);
    int32_t *bs = malloc((size_t)nb * 16 * sizeof(int32_t));
    float *dx = malloc((size_t)nb * sizeof(float));
    assert_true(xq && bs && dx);
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * ldx;
        for (int b = 0; b < nb; b++) dx[b] = molmo_quantize_act_kblock(xi + 256 * b, xq + 256 * b, bs + 16 * b);
        for (int j = 0; j < N; j++) {
            double e = 0, mag = 0, magx = 0, qerr = 0;
            for (int b = 0; b < nb; b++) {
                double mb;
                e += block_exact(t, w + (size_t)j * rb + (size_t)b * bb, xq + 256 * b, bs + 16 * b, dx[b], &mb);
                mag += mb;
            }
            for (int k = 0; k < K; k++) {
                const double wk = wf[(size_t)j * K + k];
                magx += fabs(xi[k] * wk);
                qerr += dx[k / 256] * 0.5 * (1 + 0x1p-10) * fabs(wk);
            }
            const double yb = bias ? bias[j] : 0.0, sv = s[(size_t)i * N + j], rv = r[(size_t)i * N + j];
            const double round_b = bias ? 0x1p-23 * (fabs(sv) + fabs(rv)) : 0;
            const double bs_ = g * mag + round_b + 1e-30;
            if (fabs(sv - yb - e) > bs_)
                fail_msg("spec %s (%d,%d): %.9g vs exact %.9g (bound %g)", what, i, j, sv - yb, e, bs_);
            const double br = qerr + g * mag + (gK + 0x1p-24) * magx + 2 * round_b + 1e-30;
            if (fabs(sv - rv) > br) fail_msg("spec vs ref %s (%d,%d): %.9g vs %.9g (bound %g)", what, i, j, sv, rv, br);
        }
    }
    free(xq);
    free(bs);
    free(dx);
}

#define SENTINEL 12345.0f

typedef void (*mm_fn)(const molmo_matmul_args *, int, int, int, int, float *, size_t);

static void spec_fn(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws, size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    molmo_k_matmul_kdot_ref(a, m0, m1, n0, n1);
}

/* fn over the output in pieces: rows cut at mcut[], columns at ncut[] (0-terminated lists of
 * cut points inside the range), into a sentinel-filled y; the [M, N] result goes to out. */
static void run_split(mm_fn fn, molmo_matmul_args a, float *ybuf, size_t ny, int off, float *ws,
                      size_t ws_floats, const int *mcut, const int *ncut, float *out) {
    for (size_t i = 0; i < ny; i++) ybuf[i] = SENTINEL;
    a.y = ybuf + off;
    int mc[8] = {0}, nc[8] = {0}, nm = 1, nn = 1;
    for (int i = 0; mcut && mcut[i]; i++)
        if (mcut[i] < a.M) mc[nm++] = mcut[i];
    for (int i = 0; ncut && ncut[i]; i++)
        if (ncut[i] < a.N) nc[nn++] = ncut[i];
    mc[nm] = a.M, nc[nn] = a.N;
    for (int p = 0; p < nm; p++)
        for (int q = 0; q < nn; q++) fn(&a, mc[p], mc[p + 1], nc[q], nc[q + 1], ws, ws_floats);
    if (off) assert_true(ybuf[0] == SENTINEL);
    for (int i = 0; i < a.M; i++) {
        memcpy(out + (size_t)i * a.N, a.y + (size_t)i * a.ldy, (size_t)a.N * sizeof(float));
        for (int j = a.N; j < a.ldy && i < a.M - 1; j++) assert_true(a.y[(size_t)i * a.ldy + j] == SENTINEL);
    }
}

typedef struct kshape {
    int M, N, K, pad; /* pad: extra row stride of x and y, and a 1-float / 1-byte misalignment */
} kshape;

static const kshape K_SHAPES[] = {
    {1, 1, 256, 0},   {1, 49, 2304, 1}, {2, 33, 512, 0},   {3, 17, 768, 2},   {4, 95, 1280, 0},
    {5, 7, 256, 1},   {6, 63, 1024, 0}, {7, 129, 512, 3},  {13, 31, 2304, 0}, {64, 97, 768, 1},
    {97, 53, 512, 0}, {1, 301, 256, 0}, {4, 3, 4096, 0},   {97, 1, 1792, 2},
    /* long K: the decode path splits K into chunks when the activations outgrow the buffer */
    {4, 9, 16384, 1},
};

static double g_se[3], g_sw[3]; /* per set: squared errors vs ref and squared ref values */

static void run_case(const molmo_kernels *const *sets, int n_sets, const kshape *s, molmo_dtype t,
                     int use_bias) {
    const int M = s->M, N = s->N, K = s->K, off = s->pad ? 1 : 0;
    const int ldx = K + s->pad, ldy = N + s->pad;
    const size_t ny = (size_t)M * ldy + off, nmn = (size_t)M * N;
    float *xb = frand((size_t)M * ldx + off, 1.0f), *x = xb + off, *wf;
    void *wbase;
    const uint8_t *w = make_kw(t, N, K, off, &wbase, &wf);
    float *bias = use_bias ? frand((size_t)N, 0.5f) : NULL;
    float *ybuf = malloc(ny * sizeof(float)), *r = malloc(nmn * 4), *sp = malloc(nmn * 4), *g = malloc(nmn * 4);
    assert_true(ybuf && r && sp && g);
    char what[96];
    snprintf(what, sizeof what, "%dx%dx%d %s%s%s", M, N, K, molmo_dtype_name(t), use_bias ? " bias" : "",
             s->pad ? " strided" : "");
    const molmo_matmul_args a = {NULL, ldy, x, ldx, w, t, bias, M, N, K, 0, NULL, 0, NULL};
    run_split(molmo_kernels_ref()->matmul, a, ybuf, ny, off, NULL, 0, NULL, NULL, r);
    run_split(spec_fn, a, ybuf, ny, off, NULL, 0, NULL, NULL, sp);
    if ((double)M * N * K <= 2e7) check_spec(t, sp, r, x, ldx, w, wf, bias, M, N, K, what);
    for (size_t i = 0; i < nmn; i++) {
        g_se[0] += ((double)sp[i] - r[i]) * ((double)sp[i] - r[i]);
        g_sw[0] += (double)r[i] * r[i];
    }
    static const int mcuts[] = {3, 1, 0}, ncuts[] = {5, 17, 50, 0};
    for (int si = 0; si < n_sets; si++) {
        mm_fn fn = sets[si]->matmul;
        run_split(fn, a, ybuf, ny, off, g_ws, WS_FLOATS, NULL, NULL, g); /* pool workspace */
        assert_same_bits(g, sp, nmn, what);
        for (size_t i = 0; i < nmn; i++) {
            g_se[1 + si] += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
            g_sw[1 + si] += (double)r[i] * r[i];
        }
        run_split(fn, a, ybuf, ny, off, NULL, 0, mcuts, ncuts, g); /* stack, odd ranges */
        assert_same_bits(g, sp, nmn, what);
        run_split(fn, a, ybuf, ny, off, g_ws, 12288, NULL, ncuts + 1, g); /* 48 KiB: chunked K / rows */
        assert_same_bits(g, sp, nmn, what);
    }
    if (verbose()) {
        const tu_cmp c = tu_compare_f32(sp, r, nmn);
        print_message("%s: spec vs f32 ref max_abs %.3g nmse %.3g\n", what, c.max_abs, c.nmse);
    }
    free(xb);
    free(wbase);
    free(wf);
    free(bias);
    free(ybuf);
    free(r);
    free(sp);
    free(g);
}

/* Tolerance of the K kernels against the f32 reference, over all cases together: the int8
 * activation quantization per 256 values moves x by up to amax/254 (RMS amax/127/sqrt(12)),
 * for x uniform in [-1, 1] NMSE = 3/(127^2 * 12) = 1.6e-5 on y, as for Q8_0/Q4_0 (whose amax is
 * per 32 values, hardly smaller for uniform x); bound 3e-5. Each case is also held to the
 * rigorous per-element bound of check_spec. */
#define K_NMSE_TOL 3e-5

static void test_kmatmul(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    /* where the CPU has AVX-VNNI, the AVX2 set runs every case with it and without it */
    const int passes = molmo_kernels_avx_vnni() ? 2 : 1;
    for (int pass = 0; pass < passes; pass++) {
        molmo_kernels_allow_avx_vnni(pass == 0);
        for (size_t i = 0; i < sizeof K_SHAPES / sizeof K_SHAPES[0]; i++)
            for (int t = 0; t < 2; t++)
                run_case(sets, n_sets, &K_SHAPES[i], KTYPES[t], (int)(i + t) % 2);
    }
    molmo_kernels_allow_avx_vnni(1);
    for (int si = 0; si <= n_sets; si++) {
        const double nmse = g_se[si] / g_sw[si];
        print_message("  K matmul [%s] vs f32 ref: NMSE over all cases %.3g (tol %.1g)\n",
                      si ? sets[si - 1]->name : "spec", nmse, K_NMSE_TOL);
        if (!(nmse <= K_NMSE_TOL)) fail_msg("K matmul: NMSE %g > %g", nmse, K_NMSE_TOL);
    }
    if (n_sets == 0) print_message("  no AVX2 / AVX-512 on this machine: only the specification ran\n");
}

/* Non-finite activations: the rows they touch become NaN in every set, as in the spec. */
static void test_kmatmul_nonfinite(void **state) {
    (void)state;
    const int M = 3, N = 20, K = 512;
    float *x = frand((size_t)M * K, 1.0f), *wf, y[60], sp[60];
    void *wbase;
    x[1 * K + 300] = INFINITY;
    x[2 * K + 7] = NAN;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    for (int t = 0; t < 2; t++) {
        const uint8_t *w = make_kw(KTYPES[t], N, K, 0, &wbase, &wf);
        molmo_matmul_args a = {sp, N, x, K, w, KTYPES[t], NULL, M, N, K, 0, NULL, 0, NULL};
        molmo_k_matmul_kdot_ref(&a, 0, M, 0, N);
        for (int j = 0; j < N; j++) assert_true(isfinite(sp[j]) && isnan(sp[N + j]) && isnan(sp[2 * N + j]));
        for (int si = 0; si < n_sets; si++) {
            a.y = y;
            sets[si]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
            assert_same_bits(y, sp, (size_t)M * N, "non-finite x");
        }
        free(wbase);
        free(wf);
    }
    free(x);
}

/* The op layer: 1, 2 and 3 threads and one direct kernel call give the same bits;
 * force_reference gives the ref table's bits. */
static void test_kmatmul_threads(void **state) {
    (void)state;
    static const kshape shapes[] = {{150, 256, 1024, 0}, {1, 1000, 512, 0}, {3, 999, 256, 0}, {50, 300, 768, 3}};
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 2; t++) {
            const kshape *s = &shapes[si];
            const int ldx = s->K + s->pad, ldy = s->N + s->pad;
            const size_t ny = (size_t)s->M * ldy;
            float *x = frand((size_t)s->M * ldx, 1.0f), *wf, *bias = frand((size_t)s->N, 1.0f);
            void *wbase;
            const uint8_t *w = make_kw(KTYPES[t], s->N, s->K, 0, &wbase, &wf);
            float *y[5];
            for (int i = 0; i < 5; i++) {
                y[i] = malloc(ny * sizeof(float));
                assert_non_null(y[i]);
                for (size_t e = 0; e < ny; e++) y[i][e] = SENTINEL;
            }
            for (int p = 0; p < 3; p++)
                molmo_op_matmul(pools[p], y[p], ldy, x, ldx, w, KTYPES[t], bias, s->M, s->N, s->K);
            const molmo_matmul_args a = {y[3], ldy, x, ldx, w, KTYPES[t], bias, s->M, s->N, s->K, 0, NULL, 0, NULL};
            molmo_kernels_get()->matmul(&a, 0, s->M, 0, s->N, g_ws, WS_FLOATS);
            for (int p = 1; p < 4; p++) assert_memory_equal(y[0], y[p], ny * sizeof(float));
            molmo_kernels_force_reference(1);
            molmo_op_matmul(pools[1], y[4], ldy, x, ldx, w, KTYPES[t], bias, s->M, s->N, s->K);
            molmo_kernels_force_reference(0);
            const molmo_matmul_args ar = {y[3], ldy, x, ldx, w, KTYPES[t], bias, s->M, s->N, s->K, 0, NULL, 0, NULL};
            molmo_kernels_ref()->matmul(&ar, 0, s->M, 0, s->N, NULL, 0);
            assert_memory_equal(y[3], y[4], ny * sizeof(float));
            for (int i = 0; i < 5; i++) free(y[i]);
            free(x);
            free(wf);
            free(wbase);
            free(bias);
        }
    for (int i = 0; i < 3; i++) molmo_pool_free(pools[i]);
}

/* to_f32 of every set and gather_rows: the dequantized values (misaligned table too). */
static void test_kquant_to_f32(void **state) {
    (void)state;
    const int rows = 5, K = 512;
    const molmo_kernels *sets[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    float *out = malloc((size_t)rows * K * 4), *got = malloc(3 * (size_t)K * 4);
    assert_true(out && got);
    for (int t = 0; t < 2; t++) {
        float *wf;
        void *wbase;
        const uint8_t *w = make_kw(KTYPES[t], rows, K, 3, &wbase, &wf);
        for (int si = 0; si < 3; si++) {
            if (!sets[si]) continue;
            sets[si]->to_f32(out, w, KTYPES[t], (size_t)rows * K);
            assert_same_bits(out, wf, (size_t)rows * K, "to_f32");
        }
        const int ids[3] = {4, 0, 4};
        molmo_op_gather_rows(got, w, KTYPES[t], K, ids, 3);
        for (int i = 0; i < 3; i++) assert_same_bits(got + i * K, wf + ids[i] * K, (size_t)K, "gather");
        free(wbase);
        free(wf);
    }
    free(out);
    free(got);
}

int main(int argc, char **argv) {
    kernel_check_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),           cmocka_unit_test(test_known_blocks),
        cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_quant_errors),
        cmocka_unit_test(test_act_kquant),      cmocka_unit_test(test_kmatmul),
        cmocka_unit_test(test_kmatmul_nonfinite), cmocka_unit_test(test_kmatmul_threads),
        cmocka_unit_test(test_kquant_to_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

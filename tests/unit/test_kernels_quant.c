/* test_kernels_quant.c — the Q8_0 / Q4_0 block formats (kernels/quant.h) and the quantized
 * matmul kernels:
 *   - f32 -> fp16 (RNE, subnormals, overflow, NaN) against every fp16 value, the rounding ties,
 *     and the CPU's own vcvtps2ph on random floats;
 *   - row sizes; quantizer output on hand-made blocks against bytes worked out by hand from
 *     ggml's definitions (the layout of block_q8_0 / block_q4_0 and the rounding of
 *     quantize_row_q8_0_ref / quantize_row_q4_0_ref), round-trip error bounds, bad input;
 *   - the activation quantization rule on known values and non-finite blocks;
 *   - matmul: the ref kernel (dequantize W, f32) against double precision and against the f32
 *     kernel on the dequantized W (identical bits); every fast set against the specification
 *     molmo_k_matmul_qdot_ref (identical bits, also with a stack panel, a short workspace and
 *     misaligned operands) and against the f32 reference (tolerance "matmul_q": the activation
 *     quantization); the specification against double precision;
 *   - bf16 activations (molmo_op_bf16_rule): where the GEMMs run on AMX-BF16 tiles, the bits
 *     of the BF16 weights molmo_f32_to_bf16(dequantized W);
 *   - the op layer: 1, 2, 3 threads identical; gather_rows / to_f32 of block types.
 * MOLMO_TEST_VERBOSE=1 prints every comparison; MOLMO_TEST_SEED=n draws other inputs. */
#include <float.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/fp16.h"
#include "kernel_check.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/ref/ref.h"
#include "kernels/x86/x86.h"

static const molmo_dtype QTYPES[] = {MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0};

/* got and want are the same bits, NaN matching any NaN. */
static void assert_same_bits(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue;
        if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s: element %zu differs: %.9g vs %.9g", what, i, (double)got[i], (double)want[i]);
    }
}

/* ------------------------------------------------------------------------------------ fp16 */

static uint32_t rand32(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t f16c_convert(float f) {
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}
#endif

static void test_f16_convert(void **state) {
    (void)state;
    /* every fp16 value converts back to itself; NaN stays NaN */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = molmo_f16_to_f32((uint16_t)h);
        const uint16_t back = molmo_f32_to_f16(f);
        if (isnan(f))
            assert_true((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu) != 0);
        else
            assert_int_equal(back, h);
    }
    /* halfway between consecutive positive finite halves: ties go to the even one */
    for (uint32_t h = 0; h < 0x7bff; h++) {
        const double mid = ((double)molmo_f16_to_f32((uint16_t)h) + molmo_f16_to_f32((uint16_t)(h + 1))) / 2;
        const uint16_t want = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        assert_int_equal(molmo_f32_to_f16((float)mid), want); /* mid is exact in f32 */
        assert_int_equal(molmo_f32_to_f16(-(float)mid), want | 0x8000u);
    }
    static const struct { float f; uint16_t h; } known[] = {
        {65504.0f, 0x7bff}, {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, {1e10f, 0x7c00},
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000},
        {0x1.000002p-25f, 0x0001}, {0x1.8p-24f, 0x0002}, {0x1p-14f, 0x0400}, {-0.0f, 0x8000},
        {1.0f, 0x3c00}, {0x1.ff8p-15f, 0x03ff}, {0x1.ffcp-15f, 0x0400}, {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (molmo_f32_to_f16(known[i].f) != known[i].h)
            fail_msg("f16(%a) = 0x%04x, want 0x%04x", (double)known[i].f,
                     molmo_f32_to_f16(known[i].f), known[i].h);
#if defined(__x86_64__)
    /* random bit patterns against the CPU's converter */
    if (molmo_cpu_get()->f16c) {
        for (int i = 0; i < 2000000; i++) {
            uint32_t u = rand32();
            if (i & 1) u = (u & 0x8fffffffu) | 0x30000000u; /* concentrate on the f16 range */
            float f;
            memcpy(&f, &u, 4);
            if (molmo_f32_to_f16(f) != f16c_convert(f))
                fail_msg("f16(0x%08x) = 0x%04x, vcvtps2ph says 0x%04x", u, molmo_f32_to_f16(f),
                         f16c_convert(f));
        }
    }
#endif
}

/* ---------------------------------------------------------------------------- sizes, blocks */

static void test_row_bytes(void **state) {
    (void)state;
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q8_0, 32), 34);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q8_0, 4096), 4352);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_0, 32), 18);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_0, 18944), 10656);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q8_0, 33), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_0, 16), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q4_0, -32), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_Q8_0, 0), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_F32, 7), 28);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_BF16, 7), 14);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_F16, 3), 6);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_COUNT, 32), 0);
    assert_int_equal(molmo_dtype_row_bytes(MOLMO_DTYPE_F32, INT64_MAX), 0); /* overflow */
    assert_int_equal(molmo_dtype_block_size(MOLMO_DTYPE_Q4_0), 32);
    assert_int_equal(molmo_dtype_block_size(MOLMO_DTYPE_BF16), 1);
    assert_string_equal(molmo_dtype_name(MOLMO_DTYPE_Q8_0), "q8_0");
    assert_string_equal(molmo_dtype_name(MOLMO_DTYPE_Q4_0), "q4_0");
}

/* Hand-made blocks. ggml: block_q8_0 = {ggml_half d; int8_t qs[32]}, block_q4_0 = {ggml_half d;
 * uint8_t qs[16]}, d little-endian; Q4_0 packs value j in the low nibble of qs[j] and value
 * j+16 in the high nibble. The expected bytes follow from the reference quantizers by hand. */
static void test_quant_known_blocks(void **state) {
    (void)state;
    float x[64];
    uint8_t out[68];
    /* Q8_0, block 0: amax 127 -> d = 1 (fp16 0x3c00), id = 1, q = roundf(x): halves away from
     * zero (2.5 -> 3, -2.5 -> -3, 0.5 -> 1), the rest 0. Block 1: amax 1 -> d = 1/127 ->
     * fp16 0x2008 (0.0078735), id = 127: 1 -> 127, -1 -> -127, 0.25 -> 31.75 -> 32. */
    memset(x, 0, sizeof x);
    const float b0[8] = {127, -127, 2.5f, -2.5f, 0.5f, -0.5f, 1.4999999f, -100.5f};
    memcpy(x, b0, sizeof b0);
    x[32] = 1.0f, x[33] = -1.0f, x[34] = 0.25f, x[35] = -0.25f;
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q8_0, x, out, 64, NULL), MOLMO_OK);
    static const uint8_t want8[14] = {0x00, 0x3c, 0x7f, 0x81, 0x03, 0xfd, 0x01, 0xff, 0x01, 0x9b,
                                      0x00, 0x00, 0x00, 0x00};
    assert_memory_equal(out, want8, sizeof want8);
    for (int j = 12; j < 34; j++) assert_int_equal(out[j], 0);
    static const uint8_t want8b[6] = {0x08, 0x20, 0x7f, 0x81, 0x20, 0xe0};
    assert_memory_equal(out + 34, want8b, sizeof want8b);
    float back[64];
    molmo_dequantize_row(MOLMO_DTYPE_Q8_0, out, back, 64);
    static const float deq8[8] = {127, -127, 3, -3, 1, -1, 1, -101};
    for (int j = 0; j < 8; j++) assert_true(back[j] == deq8[j]);
    assert_true(back[33] == -127 * 0x1.02p-7f); /* 0x2008 = 0.0078735 = 2^-7 * (1 + 8/1024) */
    /* Q4_0, block 0: the value of largest magnitude is -8 -> d = -8/-8 = 1 (0x3c00), id = 1,
     * nibble = min(15, (int)(x + 8.5)): x_j = j - 8 for j < 16 (nibbles 0..15), and the second
     * half x_{16+j} = 7 - j (nibbles 15..0): qs[j] = j | (15 - j) << 4.
     * Block 1: largest magnitude +8 -> d = -1 (0xbc00), id = -1: 8 -> 0.5 -> 0, -8 -> 16.5 ->
     * clamped 15, 0.4 -> 8.1 -> 8, 0.6 -> 7.9 -> 7, 0.5 -> 8.0 -> 8, -3 -> 11, rest 0 -> 8. */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8);
        x[16 + j] = (float)(7 - j);
    }
    for (int j = 32; j < 64; j++) x[j] = 0.0f;
    x[32] = 8.0f, x[33] = -8.0f, x[34] = 0.4f, x[35] = 0.6f, x[36] = 0.5f, x[48] = -3.0f;
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q4_0, x, out, 64, NULL), MOLMO_OK);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0x3c);
    for (int j = 0; j < 16; j++) assert_int_equal(out[2 + j], j | (15 - j) << 4);
    static const uint8_t want4b[8] = {0x00, 0xbc, 0xb0, 0x8f, 0x88, 0x87, 0x88, 0x88};
    assert_memory_equal(out + 18, want4b, sizeof want4b);
    for (int j = 6; j < 16; j++) assert_int_equal(out[20 + j], 0x88);
    /* All zeros: Q8_0 d = 0/127 = +0 (0x0000), q = 0; Q4_0 d = 0/-8 = -0 (0x8000, as ggml
     * writes it), nibble 8 (0 * 0 + 8.5 -> 8). */
    memset(x, 0, sizeof x);
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q8_0, x, out, 32, NULL), MOLMO_OK);
    for (int j = 0; j < 34; j++) assert_int_equal(out[j], 0);
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q4_0, x, out, 32, NULL), MOLMO_OK);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0x80);
    for (int j = 2; j < 18; j++) assert_int_equal(out[j], 0x88);
    /* dequantization of those bytes: 0 * -0 = -0 */
    molmo_dequantize_row(MOLMO_DTYPE_Q4_0, out, back, 32);
    for (int j = 0; j < 32; j++) assert_true(back[j] == 0.0f);
    /* Q4_0 block 0 above dequantizes to j - 8 and 7 - j */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8);
        x[16 + j] = (float)(7 - j);
    }
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q4_0, x, out, 32, NULL), MOLMO_OK);
    molmo_dequantize_row(MOLMO_DTYPE_Q4_0, out, back, 32);
    assert_memory_equal(back, x, 32 * sizeof(float));
}

/* Random rows: |x - dequant(quant(x))| <= d/2 (Q8_0), <= |d|/2 except the clamped +8|d| side
 * of Q4_0 (<= |d|), with d the block's fp16 scale (plus its own rounding, relative 2^-11). */
static void test_quant_roundtrip(void **state) {
    (void)state;
    const int64_t n = 32 * 257;
    float *x = frand((size_t)n, 3.0f), *y = malloc((size_t)n * 4);
    uint8_t *q = malloc(molmo_dtype_row_bytes(MOLMO_DTYPE_Q8_0, n));
    assert_non_null(y);
    assert_non_null(q);
    x[5] = 0.0f;
    for (int j = 32; j < 64; j++) x[j] = 1e-3f * (float)(j - 40); /* a small block */
    for (int t = 0; t < 2; t++) {
        const molmo_dtype qt = QTYPES[t];
        const size_t bb = t == 0 ? MOLMO_Q8_0_BYTES : MOLMO_Q4_0_BYTES;
        assert_int_equal(molmo_quantize_row(qt, x, q, n, NULL), MOLMO_OK);
        molmo_dequantize_row(qt, q, y, n);
        double worst_err = 0;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t dh;
            memcpy(&dh, q + (size_t)b * bb, 2);
            const double d = fabs(molmo_f16_to_f32(dh));
            double amax = 0;
            for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
            for (int j = 0; j < 32; j++) {
                const double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
                const double bound = (t == 0 ? 0.5 * d : d) + amax * 0x1p-10;
                if (e > bound) fail_msg("%s block %d value %d: error %g > %g", molmo_dtype_name(qt), (int)b, j, e, bound);
                worst_err = fmax(worst_err, e / (d > 0 ? d : 1));
            }
        }
        if (getenv("MOLMO_TEST_VERBOSE"))
            print_message("%s round trip: worst error %.3f scale units\n", molmo_dtype_name(qt), worst_err);
    }
    free(x);
    free(y);
    free(q);
}

static void test_quant_errors(void **state) {
    (void)state;
    float x[64] = {0};
    uint8_t out[68];
    molmo_error err = {0};
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q8_0, x, out, 33, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "33"));
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_F32, x, out, 32, &err), MOLMO_ERR_INVALID_ARG);
    x[40] = NAN;
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q4_0, x, out, 64, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "value 40"));
    x[40] = 1e10f;
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q8_0, x, out, 64, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "32..63"));
    x[40] = 8e6f; /* Q8_0: d = 63000 fits; Q4_0: d = 1e6 does not */
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q8_0, x, out, 64, NULL), MOLMO_OK);
    assert_int_equal(molmo_quantize_row(MOLMO_DTYPE_Q4_0, x, out, 64, NULL), MOLMO_ERR_INVALID_ARG);
}

static void test_act_quant(void **state) {
    (void)state;
    float x[32] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 1.5f, 126.5f, -127.0f};
    int8_t q[32];
    int32_t s;
    /* d = 1, id = 1: round half to even */
    assert_true(molmo_quantize_act_block(x, q, &s) == 1.0f);
    static const int8_t want[10] = {127, 2, 4, -2, -4, 0, 0, 2, 126, -127};
    assert_memory_equal(q, want, sizeof want);
    for (int j = 10; j < 32; j++) assert_int_equal(q[j], 0);
    assert_int_equal(s, 127 + 2 + 4 - 2 - 4 + 2 + 126 - 127);
    /* a general block equals rne(x * (1 / (amax / 127))) */
    for (int j = 0; j < 32; j++) x[j] = urand() * 0.37f;
    const float d = molmo_quantize_act_block(x, q, &s);
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    assert_true(d == amax / 127.0f);
    int32_t s2 = 0;
    for (int j = 0; j < 32; j++) {
        assert_int_equal(q[j], (int)nearbyintf(x[j] * (1.0f / d)));
        s2 += q[j];
    }
    assert_int_equal(s, s2);
    /* zeros and subnormals contribute nothing; inf / NaN give a non-finite scale and q = 0 */
    memset(x, 0, sizeof x);
    assert_true(molmo_quantize_act_block(x, q, &s) == 0.0f && s == 0);
    x[3] = 1e-44f;
    molmo_quantize_act_block(x, q, &s);
    for (int j = 0; j < 32; j++) assert_int_equal(q[j], 0);
    x[3] = -INFINITY;
    x[4] = 1.0f;
    assert_true(isinf(molmo_quantize_act_block(x, q, &s)) && s == 0);
    for (int j = 0; j < 32; j++) assert_int_equal(q[j], 0);
    x[5] = NAN;
    assert_true(isnan(molmo_quantize_act_block(x, q, &s)) && s == 0);
}

/* ------------------------------------------------------------------------------------ matmul */

/* W [N, K] of type qt quantized from random f32 (scale 1/sqrt(K)) at an offset of `off` bytes
 * into the returned buffer (*base: free it), and its dequantized f32 copy. */
static uint8_t *make_qw(molmo_dtype qt, int N, int K, int off, void **base, float **deq) {
    const size_t rb = molmo_dtype_row_bytes(qt, K);
    float *f = frand((size_t)N * K, 1.0f / sqrtf((float)K));
    uint8_t *b = malloc((size_t)N * rb + (size_t)off + 1);
    assert_non_null(b);
    for (int j = 0; j < N; j++)
        assert_int_equal(molmo_quantize_row(qt, f + (size_t)j * K, b + off + (size_t)j * rb, K, NULL), MOLMO_OK);
    molmo_dequantize_row(qt, b + off, f, (int64_t)N * K);
    *base = b;
    *deq = f;
    return b + off;
}

/* The specification against double precision, and against the f32 reference r. With the block
 * products p_b = dx_b dw_b isum_b, each step rounds the scale product and the fma once:
 * |s - sum p_b| <= (gamma_nb + u) sum |p_b| (+ the bias rounding). And the activation
 * quantization moves each x by at most d_b/2 (1 + 2^-10) (the rounding of x*id to an integer,
 * plus the roundings of d and 1/d), so |s - r| <= sum_b d_b/2 (1 + 2^-10) sum_{k in b} |w_k|
 * + the rounding bounds of s and of r (gamma_K sum |x||w|). */
static void check_spec_exact(const float *s, const float *r, const float *x, int ldx,
                             const float *wf, const float *bias, int M, int N, int K,
                             const char *what) {
    const int nb = K / 32;
    const double g = (nb + 1) * 0x1p-24 / (1 - (nb + 1) * 0x1p-24);
    const double gK = (K + 1) * 0x1p-24 / (1 - (K + 1) * 0x1p-24);
    float *xd = malloc((size_t)K * sizeof(float)), *dq = malloc((size_t)nb * sizeof(float));
    assert_true(xd && dq);
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * ldx;
        for (int b = 0; b < nb; b++) { /* the quantized activations, dequantized */
            int8_t q[32];
            int32_t sum;
            dq[b] = molmo_quantize_act_block(xi + 32 * b, q, &sum);
            for (int k = 0; k < 32; k++) xd[32 * b + k] = (float)q[k] * dq[b]; /* exact */
        }
        for (int j = 0; j < N; j++) {
            const float *wj = wf + (size_t)j * K;
            double e = 0, mag = 0, magx = 0, qerr = 0;
            for (int k = 0; k < K; k++) {
                e += (double)xd[k] * wj[k];
                mag += fabs((double)xd[k] * wj[k]);
                magx += fabs((double)xi[k] * wj[k]);
                qerr += dq[k / 32] * 0.5 * (1 + 0x1p-10) * fabs(wj[k]);
            }
            const double yb = bias ? bias[j] : 0.0, sv = s[(size_t)i * N + j];
            const double round_b = bias ? 0x1p-23 * (fabs(sv) + fabs(r[(size_t)i * N + j])) : 0;
            const double bs = g * mag + round_b + 1e-30;
            if (fabs(sv - yb - e) > bs)
                fail_msg("spec %s (%d,%d): %.9g vs exact %.9g (bound %g)", what, i, j, sv - yb, e, bs);
            const double br = qerr + g * mag + gK * magx + 2 * round_b + 1e-30;
            if (fabs(sv - r[(size_t)i * N + j]) > br)
                fail_msg("spec vs ref %s (%d,%d): %.9g vs %.9g (bound %g)", what, i, j, sv,
                         (double)r[(size_t)i * N + j], br);
        }
    }
    free(xd);
    free(dq);
}

/* Per kernel set: squared errors and squared values of the "matmul_q" comparisons summed over
 * all cases (the NMSE of a case with a few outputs is noise; the table's NMSE bound is checked
 * on the sum). The per-case check is the max abs of the table and the rigorous bound above. */
static double g_q_se[3], g_q_sw[3];

static void check_q(int slot, const char *set, const float *got, const float *want, size_t n,
                    const char *what) {
    const tol *t = tol_of("matmul_q");
    const tu_cmp c = tu_compare_f32(got, want, n);
    note_worst(set, "matmul_q", c.max_abs, n >= 4096 ? c.nmse : 0.0); /* small cases: noise */
    for (size_t i = 0; i < n; i++) {
        g_q_se[slot] += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        g_q_sw[slot] += (double)want[i] * want[i];
    }
    if (getenv("MOLMO_TEST_VERBOSE") || c.max_abs > t->max_abs)
        print_message("[%s] matmul_q %s: n=%zu max_abs=%.3g (tol %.1g) nmse=%.3g\n", set, what, n,
                      c.max_abs, t->max_abs, c.nmse);
    if (c.max_abs > t->max_abs)
        fail_msg("[%s] matmul_q %s: out of tolerance at %zu: got %.9g want %.9g (%s)", set, what,
                 c.worst, (double)got[c.worst], (double)want[c.worst], t->why);
}

typedef struct qshape {
    int M, N, K, pad; /* pad: extra row stride of x and y, 1-float / 1-byte misalignment */
} qshape;

static const qshape Q_SHAPES[] = {
    {1, 1, 32, 0},     {1, 7, 64, 0},      {1, 17, 4096, 1},  {1, 4095, 32, 0},  {2, 33, 4096, 0},
    {3, 1024, 1024, 0}, {4, 65, 1024, 2},  {5, 64, 128, 0},   {6, 64, 1024, 0},  {7, 17, 1024, 3},
    {7, 130, 64, 0},   {16, 16, 32, 0},    {17, 33, 64, 1},   {13, 130, 4096, 1}, {24, 64, 1024, 0},
    {37, 200, 512, 7}, {100, 96, 2048, 0}, {4095, 17, 64, 0}, {4095, 1, 32, 2},   {577, 48, 1024, 0},
    /* long K: the decode paths split K into chunks when the activations outgrow the buffer */
    {4, 17, 8192, 1},  {1, 9, 32768, 0},
    /* one row on whole groups (the AVX-512 Q4_0 GEMV's 4-block steps): 1-3 blocks left over,
     * x misaligned, K chunked */
    {1, 48, 224, 0},   {1, 33, 1056, 1},   {1, 32, 32768, 0},
};

#define SENTINEL 12345.0f

static void unpad(float *out, const float *y, int M, int N, int ldy) {
    for (int i = 0; i < M; i++) {
        memcpy(out + (size_t)i * N, y + (size_t)i * ldy, (size_t)N * sizeof(float));
        for (int j = N; j < ldy && i < M - 1; j++) assert_true(y[(size_t)i * ldy + j] == SENTINEL);
    }
}

/* One kernel call into a sentinel-filled y; returns the [M, N] result in out. */
static void run_kernel(void (*fn)(const molmo_matmul_args *, int, int, int, int, float *, size_t),
                       molmo_matmul_args a, float *ybuf, size_t ny, int off, float *ws,
                       size_t ws_floats, float *out) {
    for (size_t i = 0; i < ny; i++) ybuf[i] = SENTINEL;
    a.y = ybuf + off;
    fn(&a, 0, a.M, 0, a.N, ws, ws_floats);
    if (off) assert_true(ybuf[0] == SENTINEL);
    unpad(out, ybuf + off, a.M, a.N, a.ldy);
}

static void spec_fn(const molmo_matmul_args *a, int m0, int m1, int n0, int n1, float *ws,
                    size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    molmo_k_matmul_qdot_ref(a, m0, m1, n0, n1);
}

/* x quantized once in the VNNI rows layout (kernels.h, matmul_xq), where a set takes it for
 * problem a (AVX-512 with AMX off; AVX2 with AVX-VNNI): filled in two parts as two threads
 * would, then the whole problem with the pool workspace and without one, and in two row
 * ranges cut off a group (21): the specification's bits sp. */
static void check_rows_xq(const molmo_kernels *const *sets, int n_sets, molmo_matmul_args a,
                          float *ybuf, size_t ny, int off, const float *sp, float *g,
                          const char *what) {
    const size_t nmn = (size_t)a.M * a.N;
    molmo_kernels_allow_amx(0);
    for (int si = 0; si < n_sets; si++) {
        int kind = MOLMO_XQ_NONE;
        const size_t bytes = sets[si]->matmul_xq_bytes ? sets[si]->matmul_xq_bytes(&a, &kind) : 0;
        if (kind != MOLMO_XQ_ROWS_VNNI) continue;
        assert_int_equal(bytes, (size_t)a.M * (a.K / 32) * 40);
        const int groups = (a.M + MOLMO_XQ_ROWS - 1) / MOLMO_XQ_ROWS;
        molmo_matmul_args b = a;
        b.xq_kind = kind;
        void *xq = malloc(bytes);
        assert_non_null(xq);
        sets[si]->matmul_xq(&b, groups / 2, groups, xq);
        sets[si]->matmul_xq(&b, 0, groups / 2, xq);
        b.xq = xq;
        run_kernel(sets[si]->matmul, b, ybuf, ny, off, g_ws, WS_FLOATS, g);
        assert_same_bits(g, sp, nmn, what);
        run_kernel(sets[si]->matmul, b, ybuf, ny, off, NULL, 0, g);
        assert_same_bits(g, sp, nmn, what);
        const int cut = a.M > 21 ? 21 : a.M / 2;
        for (size_t i = 0; i < ny; i++) ybuf[i] = SENTINEL;
        b.y = ybuf + off;
        sets[si]->matmul(&b, 0, cut, 0, a.N, g_ws, WS_FLOATS);
        sets[si]->matmul(&b, cut, a.M, 0, a.N, g_ws, WS_FLOATS);
        unpad(g, ybuf + off, a.M, a.N, a.ldy);
        assert_same_bits(g, sp, nmn, what);
        free(xq);
    }
    molmo_kernels_allow_amx(1);
}

static void run_q_case(const molmo_kernels *const *sets, int n_sets, const qshape *s,
                       molmo_dtype qt, int use_bias) {
    const int M = s->M, N = s->N, K = s->K, off = s->pad ? 1 : 0;
    const int ldx = K + s->pad, ldy = N + s->pad;
    const size_t ny = (size_t)M * ldy + off, nmn = (size_t)M * N;
    float *xb = frand((size_t)M * ldx + off, 1.0f), *x = xb + off, *wf;
    void *wbase;
    const uint8_t *w = make_qw(qt, N, K, off, &wbase, &wf);
    float *bias = use_bias ? frand((size_t)N, 0.5f) : NULL;
    float *ybuf = malloc(ny * sizeof(float)), *r = malloc(nmn * 4), *r32 = malloc(nmn * 4);
    float *sp = malloc(nmn * 4), *g = malloc(nmn * 4);
    assert_true(ybuf && r && r32 && sp && g);
    char what[96];
    snprintf(what, sizeof what, "%dx%dx%d %s%s%s", M, N, K, molmo_dtype_name(qt),
             use_bias ? " bias" : "", s->pad ? " strided" : "");
    molmo_matmul_args a = {NULL, ldy, x, ldx, w, qt, bias, M, N, K, 0, NULL, 0, NULL};
    /* ref: exact against double, and the same bits as the f32 kernel on the dequantized W */
    run_kernel(molmo_kernels_ref()->matmul, a, ybuf, ny, off, NULL, 0, r);
    if ((double)M * N * K <= 5e7) check_ref_exact(r, x, ldx, wf, bias, M, N, K, what);
    molmo_matmul_args af = a;
    af.w = wf;
    af.wt = MOLMO_DTYPE_F32;
    run_kernel(molmo_kernels_ref()->matmul, af, ybuf, ny, off, NULL, 0, r32);
    assert_same_bits(r, r32, nmn, what);
    /* the specification of the fast kernels */
    run_kernel(spec_fn, a, ybuf, ny, off, NULL, 0, sp);
    if ((double)M * N * K <= 5e7) check_spec_exact(sp, r, x, ldx, wf, bias, M, N, K, what);
    check_q(0, "spec", sp, r, nmn, what);
    for (int si = 0; si < n_sets; si++) {
        /* pool workspace, stack panel, a short workspace: same bits as the specification */
        run_kernel(sets[si]->matmul, a, ybuf, ny, off, g_ws, WS_FLOATS, g);
        check(sets[si]->name, "matmul_qdot", g, sp, nmn, what);
        assert_same_bits(g, sp, nmn, what);
        check_q(1 + si, sets[si]->name, g, r, nmn, what);
        run_kernel(sets[si]->matmul, a, ybuf, ny, off, NULL, 0, g);
        assert_same_bits(g, sp, nmn, what);
        run_kernel(sets[si]->matmul, a, ybuf, ny, off, g_ws, 12 * 1024, g);
        assert_same_bits(g, sp, nmn, what);
    }
    if (M > 4) check_rows_xq(sets, n_sets, a, ybuf, ny, off, sp, g, what);
    free(xb);
    free(wbase);
    free(wf);
    free(bias);
    free(ybuf);
    free(r);
    free(r32);
    free(sp);
    free(g);
}

static void test_qmatmul_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    /* where the CPU has AVX-VNNI, the AVX2 set runs every case with it and without it */
    const int passes = molmo_kernels_avx_vnni() ? 2 : 1;
    for (int pass = 0; pass < passes; pass++) {
        molmo_kernels_allow_avx_vnni(pass == 0);
        for (size_t i = 0; i < sizeof Q_SHAPES / sizeof Q_SHAPES[0]; i++)
            for (int t = 0; t < 2; t++)
                run_q_case(sets, n_sets, &Q_SHAPES[i], QTYPES[t], (int)(i + t) % 2);
    }
    molmo_kernels_allow_avx_vnni(1);
    const tol *t = tol_of("matmul_q");
    for (int si = 0; si <= n_sets; si++) {
        const double nmse = g_q_se[si] / g_q_sw[si];
        print_message("  matmul_q [%s] NMSE over all cases %.3g (tol %.1g)\n",
                      si ? sets[si - 1]->name : "spec", nmse, t->nmse);
        if (!(nmse <= t->nmse)) fail_msg("matmul_q: NMSE %g over all cases > %g (%s)", nmse, t->nmse, t->why);
    }
}

#if defined(__x86_64__)
/* The AMX kernel reading x pre-quantized (kernels.h, matmul_xq; the buffer filled in two parts
 * as two threads would): whole, cut at a row group (32: xq used from both starts) and off one
 * (21: the second part quantizes for itself), with the pool workspace and the smallest one it
 * accepts with xq (panel + one group's accumulators): sp's bits. */
static void check_amx_xq(molmo_matmul_args *a, const float *sp, float *g, size_t nmn) {
    const int M = a->M, N = a->N, groups = (M + 15) / 16;
    void *xq = malloc(molmo_k_matmul_q_amx_xq_bytes(a));
    assert_non_null(xq);
    molmo_k_matmul_q_amx_xq(a, groups / 2, groups, xq);
    molmo_k_matmul_q_amx_xq(a, 0, groups / 2, xq);
    a->xq = xq;
    a->xq_kind = MOLMO_XQ_AMX;
    const size_t min_floats = (16 * 3 * 576 + 3 * 1024) / sizeof(float);
    const size_t own_min = (16 * 3 * 576 + 16 * 576) / sizeof(float);
    const size_t ws_sizes[2] = {WS_FLOATS, min_floats};
    const int cuts[3] = {M, 32, 21};
    for (int wi = 0; wi < 2; wi++)
        for (int ci = 0; ci < 3; ci++) {
            for (size_t e = 0; e < nmn; e++) g[e] = SENTINEL;
            a->y = g;
            const int mc = M > cuts[ci] ? cuts[ci] : M;
            assert_int_equal(molmo_k_matmul_q_amx(a, 0, mc, 0, N, g_ws, ws_sizes[wi]), 1);
            /* off a group, the kernel quantizes for itself: its own smallest workspace */
            const size_t ws2 = mc % 16 && ws_sizes[wi] < own_min ? own_min : ws_sizes[wi];
            if (mc < M) assert_int_equal(molmo_k_matmul_q_amx(a, mc, M, 0, N, g_ws, ws2), 1);
            for (int r = 0; r < M; r++)
                assert_memory_equal(g + (size_t)r * a->ldy, sp + (size_t)r * a->ldy, (size_t)N * 4);
        }
    assert_int_equal(molmo_k_matmul_q_amx(a, 0, M, 0, N, g_ws, min_floats - 16), 0);
    a->xq_kind = MOLMO_XQ_ROWS_VNNI; /* another layout: the kernel quantizes for itself */
    for (size_t e = 0; e < nmn; e++) g[e] = SENTINEL;
    a->y = g;
    assert_int_equal(molmo_k_matmul_q_amx(a, 0, M, 0, N, g_ws, WS_FLOATS), 1);
    for (int r = 0; r < M; r++)
        assert_memory_equal(g + (size_t)r * a->ldy, sp + (size_t)r * a->ldy, (size_t)N * 4);
    a->xq = NULL;
    a->xq_kind = MOLMO_XQ_NONE;
    free(xq);
}
#endif

/* The AMX kernel (x86/avx512_amx.c), where this machine has usable AMX-INT8: every GEMM shape
 * of Q_SHAPES (M > 4), whole and cut into sub-ranges that are not multiples of its 16-row
 * groups and 16-column tiles, with the pool workspace, the smallest workspace it accepts (one
 * 16-row group per chunk) and one it refuses (returns 0, y untouched): the specification's
 * bits every time. Skipped elsewhere (the VNNI kernel gives the same bits). */
static void test_qmatmul_amx(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (!molmo_kernels_amx()) {
        print_message("  AMX-INT8 not usable here (cpu.h amx_int8 = %d): skipped\n",
                      molmo_cpu_get()->amx_int8);
        skip();
    }
    /* panel (16 blocks x 48 columns x 576 B) + one group of 16 blocks (16 x 576 B) */
    const size_t min_floats = (16 * 3 * 576 + 16 * 576) / sizeof(float);
    /* and K split into chunks that each run several 16-block panels through the kernel's
     * accumulator buffer (K 8192 over 160 rows does not fit the pool workspace at once) */
    static const qshape extra[] = {{160, 40, 8192, 0},
                                   /* with xq: 2 row chunks of all K (37 groups x 128 blocks of
                                    * A tiles exceed its L2 budget), and K chunks where row
                                    * chunks would be thin (7 groups x 400 blocks) */
                                   {577, 40, 4096, 0}, {100, 24, 12800, 0}};
    const size_t n_shapes = sizeof Q_SHAPES / sizeof Q_SHAPES[0];
    int cases = 0;
    for (size_t i = 0; i < n_shapes + sizeof extra / sizeof extra[0]; i++)
        for (int t = 0; t < 2; t++) {
            const qshape *s = i < n_shapes ? &Q_SHAPES[i] : &extra[i - n_shapes];
            if (s->M <= 4) continue;
            const int M = s->M, N = s->N, K = s->K, ldx = K + s->pad, ldy = N + s->pad;
            const size_t nmn = (size_t)M * ldy;
            float *x = frand((size_t)M * ldx, 1.0f), *wf, *bias = t ? frand((size_t)N, 0.5f) : NULL;
            void *wbase;
            const uint8_t *w = make_qw(QTYPES[t], N, K, 0, &wbase, &wf);
            float *sp = malloc(nmn * 4), *g = malloc(nmn * 4);
            assert_true(sp && g);
            molmo_matmul_args a = {sp, ldy, x, ldx, w, QTYPES[t], bias, M, N, K, 0, NULL, 0, NULL};
            molmo_k_matmul_qdot_ref(&a, 0, M, 0, N);
            const size_t ws_sizes[2] = {WS_FLOATS, min_floats};
            for (int wi = 0; wi < 2; wi++) {
                for (size_t e = 0; e < nmn; e++) g[e] = SENTINEL;
                a.y = g;
                const int mc = M > 21 ? 21 : M, nc = N > 37 ? 37 : N; /* odd cuts */
                assert_int_equal(molmo_k_matmul_q_amx(&a, 0, mc, 0, nc, g_ws, ws_sizes[wi]), 1);
                if (nc < N) assert_int_equal(molmo_k_matmul_q_amx(&a, 0, mc, nc, N, g_ws, ws_sizes[wi]), 1);
                if (mc < M) assert_int_equal(molmo_k_matmul_q_amx(&a, mc, M, 0, N, g_ws, ws_sizes[wi]), 1);
                for (int r = 0; r < M; r++)
                    assert_memory_equal(g + (size_t)r * ldy, sp + (size_t)r * ldy, (size_t)N * 4);
            }
            for (size_t e = 0; e < nmn; e++) g[e] = SENTINEL;
            assert_int_equal(molmo_k_matmul_q_amx(&a, 0, M, 0, N, g_ws, min_floats - 16), 0);
            for (size_t e = 0; e < nmn; e++) assert_true(g[e] == SENTINEL);
            check_amx_xq(&a, sp, g, nmn);
            cases++;
            free(x);
            free(bias);
            free(wf);
            free(wbase);
            free(sp);
            free(g);
        }
    print_message("  AMX kernel: %d cases bit-identical to the specification\n", cases);
#else
    skip();
#endif
}

/* bf16 activations on Q8_0 / Q4_0 / Q4_K / Q6_K weights (molmo_op_bf16_rule). The rule: GEMMs only (M > 4),
 * and only where the kernels then run them on AMX-BF16 tiles (never on the reference set or with
 * AMX off, where the int8 kernels keep x as it is). There, the product of a bf16 x is the one
 * with the BF16 weights molmo_f32_to_bf16(dequantized W): the same bits as the AMX-BF16 GEMM on
 * those weights (whole and cut ranges, the pool workspace and none, 1-3 threads through the op
 * layer), and the f32 reference's values on them to the tolerance of that GEMM. */
static void test_qmatmul_bf16x(void **state) {
    (void)state;
    assert_int_equal(molmo_op_bf16_rule(0, MOLMO_DTYPE_Q8_0, 100), 0);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_BF16, 1), 1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_F32, 100), 0);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_F16, 100), 0);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q8_0, MOLMO_GEMV_MAX_M), 0);
    molmo_kernels_force_reference(1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q8_0, 100), 0);
    molmo_kernels_force_reference(0);
#if defined(__x86_64__)
    if (!molmo_kernels_quant_bf16()) {
        print_message("  AMX-BF16 not usable here (cpu.h amx_bf16 = %d): the int8 kernels keep "
                      "these products; skipped\n", molmo_cpu_get()->amx_bf16);
        skip();
    }
    molmo_kernels_allow_amx(0);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q4_0, 100), 0);
    molmo_kernels_allow_amx(1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q8_0, MOLMO_GEMV_MAX_M + 1), 1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q4_0, 577), 1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q4_K, 6), 1);
    assert_int_equal(molmo_op_bf16_rule(1, MOLMO_DTYPE_Q6_K, 6), 1);
    static const molmo_dtype types[4] = {MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0, MOLMO_DTYPE_Q4_K,
                                         MOLMO_DTYPE_Q6_K};
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    int cases = 0;
    for (size_t i = 0; i < sizeof Q_SHAPES / sizeof Q_SHAPES[0]; i++)
        for (int t = 0; t < 4; t++) {
            const qshape *s = &Q_SHAPES[i];
            if (s->M <= MOLMO_GEMV_MAX_M || (t >= 2 && s->K % 256 != 0)) continue;
            const int M = s->M, N = s->N, K = s->K, ldx = K + s->pad, ldy = N + s->pad;
            const size_t nmn = (size_t)M * ldy, nw = (size_t)N * K;
            float *x = frand((size_t)M * ldx, 1.0f), *wf, *bias = t % 2 ? frand((size_t)N, 0.5f) : NULL;
            for (size_t e = 0; e < (size_t)M * ldx; e++) x[e] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[e]));
            void *wbase;
            const uint8_t *w = make_qw(types[t], N, K, 0, &wbase, &wf);
            uint16_t *wb = malloc(nw * 2);
            float *want = malloc(nmn * 4), *got = malloc(nmn * 4), *r = malloc(nmn * 4);
            assert_true(wb && want && got && r);
            for (size_t e = 0; e < nw; e++) {
                wb[e] = molmo_f32_to_bf16(wf[e]);
                wf[e] = molmo_bf16_to_f32(wb[e]);
            }
            char what[96];
            snprintf(what, sizeof what, "%dx%dx%d %s, bf16 x", M, N, K, molmo_dtype_name(types[t]));
            for (size_t e = 0; e < nmn; e++) want[e] = SENTINEL;
            molmo_matmul_args ab = {want, ldy, x, ldx, wb, MOLMO_DTYPE_BF16, bias, M, N, K, 1, NULL, 0, NULL};
            molmo_k_matmul_bf16_amx(&ab, 0, M, 0, N, g_ws, WS_FLOATS);
            molmo_matmul_args a = ab;
            a.w = w;
            a.wt = types[t];
            for (int v = 0; v < 3; v++) {
                for (size_t e = 0; e < nmn; e++) got[e] = SENTINEL;
                a.y = got;
                if (v < 2) {
                    molmo_kernels_get()->matmul(&a, 0, M, 0, N, v ? NULL : g_ws, v ? 0 : WS_FLOATS);
                } else { /* odd cuts */
                    const int mc = M > 21 ? 21 : M, nc = N > 37 ? 37 : N;
                    molmo_k_matmul_bf16_amx(&a, 0, mc, 0, nc, g_ws, WS_FLOATS);
                    if (nc < N) molmo_k_matmul_bf16_amx(&a, 0, mc, nc, N, g_ws, WS_FLOATS);
                    if (mc < M) molmo_k_matmul_bf16_amx(&a, mc, M, 0, N, g_ws, WS_FLOATS);
                }
                for (int row = 0; row < M; row++)
                    assert_memory_equal(got + (size_t)row * ldy, want + (size_t)row * ldy, (size_t)N * 4);
            }
            for (int p = 0; p < 3; p++) {
                for (size_t e = 0; e < nmn; e++) got[e] = SENTINEL;
                molmo_op_matmul_bf16x(pools[p], got, ldy, x, ldx, w, types[t], bias, M, N, K);
                for (int row = 0; row < M; row++)
                    assert_memory_equal(got + (size_t)row * ldy, want + (size_t)row * ldy, (size_t)N * 4);
            }
            molmo_matmul_args af = {got, N, x, ldx, wf, MOLMO_DTYPE_F32, bias, M, N, K, 0, NULL, 0, NULL};
            molmo_kernels_ref()->matmul(&af, 0, M, 0, N, NULL, 0);
            unpad(r, want, M, N, ldy);
            check("avx512", "matmul", r, got, (size_t)M * N, what);
            cases++;
            free(x);
            free(bias);
            free(wf);
            free(wbase);
            free(wb);
            free(want);
            free(got);
            free(r);
        }
    for (int i = 0; i < 3; i++) molmo_pool_free(pools[i]);
    print_message("  quantized GEMMs on AMX-BF16: %d cases, the bits of the bf16 weights\n", cases);
#else
    skip();
#endif
}

/* Q8_0_X16 / Q4_0_X16 (quant.h): Q8_0 and Q4_0 weights interleaved by 16 rows give every
 * kernel the bits of the rows they came from. The layout round-trips and block (j, b) reads back as stored; then per
 * shape (N a multiple of 16; odd block counts too): the specification and the f32 reference on
 * the interleaved weights; every fast set (pool workspace, none, a short one; with and without
 * AVX-VNNI and AMX), also cut at rows and at columns off a group; the AMX kernel directly; x
 * quantized once (VNNI rows); the op layer on 1-3 threads; bf16 activations where AMX-BF16
 * runs. */
static void test_qmatmul_x16(void **state) {
    (void)state;
    static const qshape shapes[] = {
        {1, 16, 32, 0},    {1, 48, 64, 1},   {2, 32, 4096, 0}, {3, 1024, 1024, 0}, {4, 64, 1024, 2},
        {1, 32, 96, 0},    {3, 160, 1056, 0}, {4, 16, 8192, 1}, {1, 16, 32768, 0},  {5, 64, 128, 0},
        {7, 32, 1024, 3},  {16, 16, 32, 0},  {17, 48, 64, 1},  {9, 32, 96, 0},     {24, 64, 1024, 0},
        {37, 208, 512, 7}, {6, 160, 1056, 0}, {100, 96, 2048, 0}, {577, 48, 1024, 0},
    };
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    int cases = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 2; t++) {
            const molmo_dtype qt = QTYPES[t], xt = qt == MOLMO_DTYPE_Q8_0 ? MOLMO_DTYPE_Q8_0_X16 : MOLMO_DTYPE_Q4_0_X16;
            const qshape *s = &shapes[si];
            const int M = s->M, N = s->N, K = s->K, nb = K / 32, ldx = K + s->pad, ldy = N + s->pad;
            const size_t ny = (size_t)M * ldy, nmn = (size_t)M * N, rb = molmo_dtype_row_bytes(qt, K);
            float *x = frand((size_t)M * ldx, 1.0f), *wf, *bias = (si + t) % 2 ? frand((size_t)N, 0.5f) : NULL;
            void *wbase;
            const uint8_t *w = make_qw(qt, N, K, 0, &wbase, &wf);
            uint8_t *wx = malloc((size_t)N * rb), *back = malloc((size_t)N * rb), *tmp = malloc(16 * rb);
            float *ybuf = malloc(ny * 4), *sp = malloc(nmn * 4), *r = malloc(nmn * 4), *g = malloc(nmn * 4);
            assert_true(wx && back && tmp && ybuf && sp && r && g);
            assert_int_equal(molmo_dtype_row_bytes(xt, K), rb);
            memcpy(wx, w, (size_t)N * rb);
            molmo_x16_pack(qt, wx, N, K, tmp);
            if (N > 16) assert_true(memcmp(wx, w, (size_t)N * rb) != 0);
            for (int j = 0; j < N; j += 7)
                for (int b = 0; b < nb; b += 3) {
                    uint8_t blk[34];
                    const size_t bb = rb / (size_t)nb;
                    molmo_x16_block(wx, xt, nb, j, b, blk);
                    assert_memory_equal(blk, w + (size_t)j * rb + (size_t)b * bb, bb);
                }
            memcpy(back, wx, (size_t)N * rb);
            molmo_x16_unpack(qt, back, N, K, tmp);
            assert_memory_equal(back, w, (size_t)N * rb);
            char what[96];
            snprintf(what, sizeof what, "%dx%dx%d %s x16%s", M, N, K, molmo_dtype_name(qt), bias ? " bias" : "");
            molmo_matmul_args a = {NULL, ldy, x, ldx, w, qt, bias, M, N, K, 0, NULL, 0, NULL};
            molmo_matmul_args ax = a;
            ax.w = wx;
            ax.wt = xt;
            run_kernel(spec_fn, a, ybuf, ny, 0, NULL, 0, sp);
            run_kernel(spec_fn, ax, ybuf, ny, 0, NULL, 0, g);
            assert_same_bits(g, sp, nmn, what);
            run_kernel(molmo_kernels_ref()->matmul, a, ybuf, ny, 0, NULL, 0, r);
            run_kernel(molmo_kernels_ref()->matmul, ax, ybuf, ny, 0, NULL, 0, g);
            assert_same_bits(g, r, nmn, what);
            for (int set = 0; set < n_sets; set++)
                for (int pass = 0; pass < 2; pass++) { /* AVX2: AVX-VNNI on/off; AVX-512: AMX */
                    molmo_kernels_allow_avx_vnni(pass);
                    molmo_kernels_allow_amx(pass);
                    run_kernel(sets[set]->matmul, ax, ybuf, ny, 0, g_ws, WS_FLOATS, g);
                    assert_same_bits(g, sp, nmn, what);
                    run_kernel(sets[set]->matmul, ax, ybuf, ny, 0, NULL, 0, g);
                    assert_same_bits(g, sp, nmn, what);
                    run_kernel(sets[set]->matmul, ax, ybuf, ny, 0, g_ws, 12 * 1024, g);
                    assert_same_bits(g, sp, nmn, what);
                    /* cut at rows and at columns that are not on a group (5, 37) */
                    for (size_t e = 0; e < ny; e++) ybuf[e] = SENTINEL;
                    ax.y = ybuf;
                    const int mc = M > 21 ? 21 : (M + 1) / 2, c1 = N > 5 ? 5 : N, c2 = N > 37 ? 37 : N;
                    const int cols[4] = {0, c1, c2, N};
                    for (int c = 0; c < 3; c++) {
                        if (cols[c] == cols[c + 1]) continue;
                        sets[set]->matmul(&ax, 0, mc, cols[c], cols[c + 1], g_ws, WS_FLOATS);
                        if (mc < M) sets[set]->matmul(&ax, mc, M, cols[c], cols[c + 1], g_ws, WS_FLOATS);
                    }
                    unpad(g, ybuf, M, N, ldy);
                    assert_same_bits(g, sp, nmn, what);
                }
            molmo_kernels_allow_avx_vnni(1);
            molmo_kernels_allow_amx(1);
    #if defined(__x86_64__)
            if (M > 4 && molmo_kernels_amx()) {
                for (size_t e = 0; e < ny; e++) ybuf[e] = SENTINEL;
                ax.y = ybuf;
                assert_int_equal(molmo_k_matmul_q_amx(&ax, 0, M, 0, N, g_ws, WS_FLOATS), 1);
                unpad(g, ybuf, M, N, ldy);
                assert_same_bits(g, sp, nmn, what);
            }
    #endif
            if (M > 4) check_rows_xq(sets, n_sets, ax, ybuf, ny, 0, sp, g, what);
            for (int p = 0; p < 3; p++) {
                for (size_t e = 0; e < ny; e++) ybuf[e] = SENTINEL;
                molmo_op_matmul(pools[p], ybuf, ldy, x, ldx, wx, xt, bias, M, N, K);
                unpad(g, ybuf, M, N, ldy);
                if (molmo_op_bf16_rule(1, qt, M)) { /* bf16 x: the rows' bits too */
                    float *xb = malloc((size_t)M * ldx * 4), *want = malloc(ny * 4);
                    assert_true(xb && want);
                    for (size_t e = 0; e < (size_t)M * ldx; e++) xb[e] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[e]));
                    molmo_op_matmul_bf16x(pools[p], want, ldy, xb, ldx, w, qt, bias, M, N, K);
                    for (size_t e = 0; e < ny; e++) ybuf[e] = SENTINEL;
                    molmo_op_matmul_bf16x(pools[p], ybuf, ldy, xb, ldx, wx, xt, bias, M, N, K);
                    for (int row = 0; row < M; row++)
                        assert_memory_equal(ybuf + (size_t)row * ldy, want + (size_t)row * ldy, (size_t)N * 4);
                    free(xb);
                    free(want);
                }
                assert_same_bits(g, sp, nmn, what);
            }
            cases++;
            free(x);
            free(bias);
            free(wf);
            free(wbase);
            free(wx);
            free(back);
            free(tmp);
            free(ybuf);
            free(sp);
            free(r);
            free(g);
        }
    for (int i = 0; i < 3; i++) molmo_pool_free(pools[i]);
    print_message("  q8_0 / q4_0 interleaved by 16 rows: %d cases, the bits of the rows in every kernel\n", cases);
}

/* x [M, K] times Q8_0 and Q4_0 weights of N columns: every fast set gives the specification's
 * bits (NaN matching NaN); sp receives the specification's output of the last type, which
 * check_spec (or NULL) looks at for each type first. */
static void q_sets_same_bits(const float *x, int M, int N, int K, const char *what, float *sp,
                             void (*check_spec)(const float *sp, int N)) {
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    float *y = malloc(sizeof(float) * (size_t)M * N);
    assert_non_null(y);
    for (int t = 0; t < 2; t++) {
        float *wf;
        void *wbase;
        const uint8_t *w = make_qw(QTYPES[t], N, K, 0, &wbase, &wf);
        molmo_matmul_args a = {sp, N, x, K, w, QTYPES[t], NULL, M, N, K, 0, NULL, 0, NULL};
        molmo_k_matmul_qdot_ref(&a, 0, M, 0, N);
        if (check_spec) check_spec(sp, N);
        for (int si = 0; si < n_sets; si++)
            for (int vnni = 1; vnni >= 0; vnni--) { /* AVX2: with and without AVX-VNNI */
                molmo_kernels_allow_avx_vnni(vnni);
                a.y = y;
                sets[si]->matmul(&a, 0, M, 0, N, g_ws, WS_FLOATS);
                assert_same_bits(y, sp, (size_t)M * N, what);
            }
        molmo_kernels_allow_avx_vnni(1);
        free(wbase);
        free(wf);
    }
    free(y);
}

/* Row 0 of the 3 rows below is finite, rows 1 and 2 (an inf, a NaN in x) are NaN. */
static void check_nan_rows(const float *sp, int N) {
    for (int j = 0; j < N; j++) {
        assert_true(isfinite(sp[j]));
        assert_true(isnan(sp[N + j]) && isnan(sp[2 * N + j]));
    }
}

/* Non-finite activations: the block's outputs become NaN in every set, as in the spec; other
 * rows are untouched. Then the GEMM path (AMX: a tile of 16 rows x one block quantized at
 * once) on blocks whose scale is infinite, NaN, zero, or so small that 1 / scale overflows:
 * the specification's bits. */
static void test_qmatmul_nonfinite(void **state) {
    (void)state;
    const int M = 3, N = 20, K = 96;
    float *x = frand((size_t)M * K, 1.0f), sp[3 * 20];
    x[1 * K + 40] = INFINITY;
    x[2 * K + 70] = NAN;
    q_sets_same_bits(x, M, N, K, "non-finite x", sp, check_nan_rows);
    free(x);
    const int MG = 20, KG = 1024;
    float *xg = frand((size_t)MG * KG, 1.0f), *sg = malloc(sizeof(float) * MG * N);
    assert_non_null(sg);
    xg[1 * KG + 3 * 32 + 7] = INFINITY;
    xg[2 * KG + 17 * 32] = NAN;
    for (int k = 0; k < 32; k++) {
        xg[5 * KG + 20 * 32 + k] = 0.0f;
        xg[7 * KG + 5 * 32 + k] = 1e-40f * (float)(k - 16); /* denormal: 1 / d = inf */
        xg[9 * KG + k] = 1e-38f * (float)(k % 5);
        xg[11 * KG + 31 * 32 + k] = -3e38f;
    }
    q_sets_same_bits(xg, MG, N, KG, "special blocks, GEMM", sg, NULL);
    free(xg);
    free(sg);
}

/* The op layer: 1, 2 and 3 threads give the same bits as one kernel call, with or without
 * AMX; force_reference gives the reference bits. */
static void test_qmatmul_threads(void **state) {
    (void)state;
    static const qshape shapes[] = {{150, 256, 1088, 0}, {1, 4096, 256, 0}, {3, 1000, 64, 0},
                                    {50, 300, 128, 3},   {9, 130, 96, 0},   {4, 4095, 32, 0},
                                    {577, 96, 4096, 1}};
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 2; t++) {
            const qshape *s = &shapes[si];
            const int ldx = s->K + s->pad, ldy = s->N + s->pad;
            const size_t ny = (size_t)s->M * ldy;
            float *x = frand((size_t)s->M * ldx, 1.0f), *wf, *bias = frand((size_t)s->N, 1.0f);
            void *wbase;
            const uint8_t *w = make_qw(QTYPES[t], s->N, s->K, 0, &wbase, &wf);
            float *y[5];
            for (int i = 0; i < 5; i++) {
                y[i] = malloc(ny * sizeof(float));
                assert_non_null(y[i]);
                for (size_t e = 0; e < ny; e++) y[i][e] = SENTINEL;
            }
            for (int p = 0; p < 3; p++)
                molmo_op_matmul(pools[p], y[p], ldy, x, ldx, w, QTYPES[t], bias, s->M, s->N, s->K);
            const molmo_matmul_args a = {y[3], ldy, x, ldx, w, QTYPES[t], bias, s->M, s->N, s->K, 0, NULL, 0, NULL};
            molmo_kernels_get()->matmul(&a, 0, s->M, 0, s->N, g_ws, WS_FLOATS);
            for (int p = 1; p < 4; p++) assert_memory_equal(y[0], y[p], ny * sizeof(float));
            molmo_kernels_allow_amx(0); /* the VNNI kernel where AMX ran: same bits */
            molmo_op_matmul(pools[1], y[4], ldy, x, ldx, w, QTYPES[t], bias, s->M, s->N, s->K);
            molmo_kernels_allow_amx(1);
            assert_memory_equal(y[0], y[4], ny * sizeof(float));
            molmo_kernels_force_reference(1);
            molmo_op_matmul(pools[1], y[4], ldy, x, ldx, w, QTYPES[t], bias, s->M, s->N, s->K);
            molmo_kernels_force_reference(0);
            const molmo_matmul_args ar = {y[3], ldy, x, ldx, w, QTYPES[t], bias, s->M, s->N, s->K, 0, NULL, 0, NULL};
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

/* Several matmuls in one run (molmo_op_matmul_many, as the MoE experts and the ViT's q, k, v
 * projections): with 2 and 3 threads each distinct x is quantized once into the pool's shared
 * buffer, one after the other (kernels.h, matmul_xq; the last job shares the first one's); the
 * bits of 1 thread, which quantizes inside the kernel, and of 2 threads without that buffer
 * (its allocation failing). A GEMV job and a bf16-activation job (bf16 tiles where AMX-BF16
 * runs, else int8 as the others) sit between them. Everything again with AMX off: the VNNI
 * kernels with their own layout of the shared buffer (MOLMO_XQ_ROWS_VNNI). */
static void test_qmatmul_many(void **state) {
    (void)state;
    static const qshape shapes[] = {{40, 70, 1024, 0}, {3, 50, 256, 0}, {20, 33, 64, 2},
                                    {150, 64, 2048, 1}, {17, 16, 4096, 0}, {40, 20, 1024, 0}};
    enum { NJ = sizeof shapes / sizeof shapes[0] };
    molmo_matmul_job jobs[NJ];
    float *x[NJ], *wf[NJ], *y[8][NJ];
    void *wbase[NJ];
    for (int j = 0; j < NJ; j++) {
        const qshape *s = &shapes[j];
        const int ldx = s->K + s->pad, ldy = s->N + s->pad;
        /* the last job multiplies the first one's x (quantized once for both) */
        x[j] = j == NJ - 1 ? NULL : frand((size_t)s->M * ldx, 1.0f);
        if (j == 2) molmo_op_round_bf16(NULL, x[j], 1, (size_t)s->M * ldx, (size_t)s->M * ldx);
        const molmo_dtype wt = QTYPES[j == NJ - 1 ? 0 : j % 2];
        const uint8_t *w = make_qw(wt, s->N, s->K, 0, &wbase[j], &wf[j]);
        jobs[j] = (molmo_matmul_job){NULL, ldy, x[j] ? x[j] : x[0], ldx, w, wt, NULL,
                                     s->M, s->N, s->K, j == 2};
        for (int p = 0; p < 8; p++) {
            y[p][j] = malloc((size_t)s->M * ldy * sizeof(float));
            assert_non_null(y[p][j]);
            for (size_t e = 0; e < (size_t)s->M * ldy; e++) y[p][j][e] = SENTINEL;
        }
    }
    /* 1, 2, 3 threads; then 2 threads whose shared buffer cannot be allocated (the kernels
     * quantize for themselves); all again with AMX off (the VNNI kernels and their layout of
     * x quantized once) */
    for (int p = 0; p < 8; p++) {
        molmo_pool *pool;
        molmo_kernels_allow_amx(p < 4);
        assert_int_equal(molmo_pool_create(p % 4 < 3 ? p % 4 + 1 : 2, &pool, NULL), MOLMO_OK);
        for (int j = 0; j < NJ; j++) jobs[j].y = y[p][j];
        if (p % 4 == 3) molmo_alloc_fail_after(0);
        molmo_op_matmul_many(pool, jobs, NJ);
        molmo_alloc_fail_after(-1);
        molmo_pool_free(pool);
    }
    molmo_kernels_allow_amx(1);
    for (int j = 0; j < NJ; j++) {
        const size_t ny = (size_t)shapes[j].M * (size_t)jobs[j].ldy;
        for (int p = 1; p < 8; p++) /* job 2's bf16 x takes bf16 tiles on AMX-BF16 */
            assert_memory_equal(y[p < 4 || j != 2 ? 0 : 4][j], y[p][j], ny * sizeof(float));
        for (size_t e = 0; e < ny; e++) assert_true(y[0][j][e] != SENTINEL || e % jobs[j].ldy >= (size_t)shapes[j].N);
        for (int p = 0; p < 8; p++) free(y[p][j]);
        free(x[j]);
        free(wf[j]);
        free(wbase[j]);
    }
}

/* gather_rows and to_f32 of block types: every set gives the dequantized values (misaligned
 * table too). */
static void test_quant_gather_to_f32(void **state) {
    (void)state;
    const int rows = 9, K = 96;
    const molmo_kernels *sets[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int t = 0; t < 2; t++) {
        float *wf;
        void *wbase;
        const uint8_t *w = make_qw(QTYPES[t], rows, K, 3, &wbase, &wf);
        float out[9 * 96], got[4 * 96];
        for (int si = 0; si < 3; si++) {
            if (!sets[si]) continue;
            sets[si]->to_f32(out, w, QTYPES[t], (size_t)rows * K);
            assert_same_bits(out, wf, (size_t)rows * K, "to_f32");
        }
        const int ids[4] = {8, 0, 3, 3};
        molmo_op_gather_rows(got, w, QTYPES[t], K, ids, 4);
        for (int i = 0; i < 4; i++) assert_same_bits(got + i * K, wf + ids[i] * K, (size_t)K, "gather");
        free(wbase);
        free(wf);
    }
}

int main(int argc, char **argv) {
    kernel_check_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_convert),        cmocka_unit_test(test_row_bytes),
        cmocka_unit_test(test_quant_known_blocks), cmocka_unit_test(test_quant_roundtrip),
        cmocka_unit_test(test_quant_errors),       cmocka_unit_test(test_act_quant),
        cmocka_unit_test(test_qmatmul_vs_ref),     cmocka_unit_test(test_qmatmul_nonfinite),
        cmocka_unit_test(test_qmatmul_threads),    cmocka_unit_test(test_qmatmul_many),
        cmocka_unit_test(test_qmatmul_amx),        cmocka_unit_test(test_qmatmul_x16),
        cmocka_unit_test(test_qmatmul_bf16x),      cmocka_unit_test(test_quant_gather_to_f32),
        cmocka_unit_test(test_print_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

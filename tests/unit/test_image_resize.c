/* test_image_resize.c — the TF antialiased bilinear resize (resize.c, the fast path used by
 * preprocessing) against a plain double-precision statement of the same filter written here
 * from its definition (fact sheet §5.4: triangle widened by the downscale factor, half-pixel
 * centres, per-sample normalisation), plus hand-computed weights, exact identities, and
 * row-split invariance (what a thread pool relies on). Bit-exactness against TF itself is
 * checked through the goldens in test_image_preprocess.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/resize.h"
#include "testutil.h"

/* Weights of output o for in -> out, by definition, in double, except that the sample
 * position is TF's float32 (x + 0.5f) * float(1/scale), scale = float(out)/float(in): that
 * rounding is part of the definition and moves samples by up to 1.5e-5 px at 500 px, which
 * shows as ~1e-5 on steep edges; the rest (weights, normalisation, sums) is exact here. */
static void ref_weights(int in, int out, int o, double *w) {
    volatile float inv = (float)(1.0 / (double)((float)out / (float)in));
    volatile float sample = ((float)o + 0.5f) * inv;
    double scale = inv, ks = scale > 1 ? scale : 1, c = sample, sum = 0;
    for (int s = 0; s < in; s++) {
        double t = fabs(s + 0.5 - c) / ks;
        w[s] = t < 1 ? 1 - t : 0;
        sum += w[s];
    }
    for (int s = 0; s < in; s++) w[s] /= sum;
}

/* Reference resize of an RGB u8 image to [oh, ow, 3] doubles (vertical, then horizontal). */
static void ref_resize(const uint8_t *src, int ih, int iw, int oh, int ow, double *dst) {
    double *wy = malloc(sizeof(double) * (size_t)ih), *wx = malloc(sizeof(double) * (size_t)iw);
    double *mid = calloc((size_t)oh * (size_t)iw * 3, sizeof(double));
    for (int y = 0; y < oh; y++) {
        ref_weights(ih, oh, y, wy);
        for (int s = 0; s < ih; s++)
            if (wy[s] != 0)
                for (int i = 0; i < iw * 3; i++) mid[(size_t)y * iw * 3 + i] += wy[s] * src[(size_t)s * iw * 3 + i] / 255.0;
    }
    for (int x = 0; x < ow; x++) {
        ref_weights(iw, ow, x, wx);
        for (int y = 0; y < oh; y++)
            for (int c = 0; c < 3; c++) {
                double acc = 0;
                for (int s = 0; s < iw; s++) acc += wx[s] * mid[((size_t)y * iw + s) * 3 + c];
                dst[((size_t)y * ow + x) * 3 + c] = acc < 0 ? 0 : acc > 1 ? 1 : acc;
            }
    }
    free(wy);
    free(wx);
    free(mid);
}

static float *run(const uint8_t *src, int ih, int iw, int oh, int ow) {
    molmo_resize_plan p;
    molmo_error err = {0};
    if (molmo_resize_plan_init(&p, ih, iw, oh, ow, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    float *scratch = malloc(molmo_resize_scratch_floats(&p) * sizeof(float));
    float *dst = malloc((size_t)oh * ow * 3 * sizeof(float));
    molmo_resize_rows_u8(&p, src, (size_t)iw * 3, dst, 0, oh, scratch);
    free(scratch);
    molmo_resize_plan_free(&p);
    return dst;
}

static uint8_t *random_image(int h, int w, unsigned seed) {
    uint8_t *p = malloc((size_t)h * w * 3);
    for (size_t i = 0; i < (size_t)h * w * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

static void test_against_double_reference(void **state) {
    (void)state;
    static const int sz[][4] = {{1, 1, 336, 336}, {30, 50, 201, 336}, {7, 13, 3, 5},
                                {100, 37, 17, 80}, {512, 512, 336, 336}, {300, 451, 223, 336},
                                {1, 200, 1, 37},  {200, 1, 37, 1},   {97, 89, 97, 89},
                                {64, 48, 640, 9}};
    double worst = 0;
    for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
        int ih = sz[k][0], iw = sz[k][1], oh = sz[k][2], ow = sz[k][3];
        uint8_t *src = random_image(ih, iw, (unsigned)k + 1);
        float *got = run(src, ih, iw, oh, ow);
        double *want = malloc(sizeof(double) * (size_t)oh * ow * 3);
        ref_resize(src, ih, iw, oh, ow, want);
        for (size_t i = 0; i < (size_t)oh * ow * 3; i++) {
            double d = fabs(got[i] - want[i]);
            if (d > worst) worst = d;
            if (d > 1e-6) fail_msg("%dx%d -> %dx%d: element %zu got %.9g want %.9g", ih, iw, oh, ow, i, got[i], want[i]);
        }
        free(src);
        free(got);
        free(want);
    }
    print_message("TF resize vs double reference: max |diff| %.3g over 10 shapes (tolerance 1e-6)\n", worst);
}

/* 4 -> 2: sample 1.0, kernel 2 wide, raw weights 0.75, 0.75, 0.25 -> 3/7, 3/7, 1/7. */
static void test_hand_weights(void **state) {
    (void)state;
    molmo_resize_axis a;
    molmo_error err = {0};
    assert_int_equal(molmo_resize_axis_init(&a, 4, 2, &err), MOLMO_OK);
    assert_int_equal(a.span, 4); /* min(2*ceil(2)+1, 4) */
    assert_int_equal(a.start[0], 0);
    assert_int_equal(a.len[0], 3);
    assert_float_equal(a.w[0], 3.0 / 7, 1e-7);
    assert_float_equal(a.w[1], 3.0 / 7, 1e-7);
    assert_float_equal(a.w[2], 1.0 / 7, 1e-7);
    assert_int_equal(a.start[1], 1);
    assert_int_equal(a.len[1], 3);
    assert_float_equal(a.w[4], 1.0 / 7, 1e-7);
    molmo_resize_axis_free(&a);
    /* 2 -> 4 upscaling is plain half-pixel bilinear with edge clamping */
    uint8_t src[2 * 3] = {0, 0, 0, 255, 255, 255};
    float *o = run(src, 1, 2, 1, 4);
    assert_float_equal(o[0], 0.0, 0);
    assert_float_equal(o[3], 0.25, 1e-7);
    assert_float_equal(o[6], 0.75, 1e-7);
    assert_float_equal(o[9], 1.0, 0);
    free(o);
}

/* Same size is exactly the TF dtype conversion u8 * float32(1/255). */
static void test_identity_exact(void **state) {
    (void)state;
    uint8_t *src = random_image(23, 31, 9);
    float *o = run(src, 23, 31, 23, 31);
    for (int i = 0; i < 23 * 31 * 3; i++) assert_true(o[i] == (float)src[i] * (float)(1.0 / 255.0));
    free(src);
    free(o);
}

/* A constant image stays constant (weights sum to 1 within rounding). */
static void test_constant(void **state) {
    (void)state;
    uint8_t *src = malloc(300 * 451 * 3);
    memset(src, 200, 300 * 451 * 3);
    float *o = run(src, 300, 451, 57, 336);
    float want = 200.0f / 255.0f, worst = 0;
    for (int i = 0; i < 57 * 336 * 3; i++) worst = fmaxf(worst, fabsf(o[i] - want));
    print_message("constant image: max |out - c| = %.3g (float rounding of 11 + 3 taps)\n", worst);
    assert_true(worst <= 1e-6f);
    free(src);
    free(o);
}

/* Computing row ranges separately (as threads would) gives the same bytes. */
static void test_row_split(void **state) {
    (void)state;
    uint8_t *src = random_image(211, 97, 3);
    float *full = run(src, 211, 97, 64, 150);
    molmo_resize_plan p;
    molmo_error err = {0};
    assert_int_equal(molmo_resize_plan_init(&p, 211, 97, 64, 150, &err), MOLMO_OK);
    float *scratch = malloc(molmo_resize_scratch_floats(&p) * sizeof(float));
    float *parts = malloc(64 * 150 * 3 * sizeof(float));
    static const int cuts[] = {0, 1, 17, 18, 40, 64};
    for (int k = 0; k + 1 < 6; k++) molmo_resize_rows_u8(&p, src, 97 * 3, parts, cuts[k], cuts[k + 1], scratch);
    assert_memory_equal(full, parts, 64 * 150 * 3 * sizeof(float));
    free(scratch);
    free(parts);
    free(full);
    free(src);
    molmo_resize_plan_free(&p);
    assert_int_equal(molmo_resize_plan_init(&p, 0, 5, 4, 4, &err), MOLMO_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_double_reference),
        cmocka_unit_test(test_hand_weights),
        cmocka_unit_test(test_identity_exact),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_row_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

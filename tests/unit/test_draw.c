/* test_draw.c — annotated images (issue 7): markers land where the points are (centroid of the
 * fill colour within 0.25 px of the point, the pixel under the point exactly the fill), rings
 * contrast with light and dark backgrounds, edges are anti-aliased, numbers and labels are
 * real FreeType text beside the markers, nothing else changes; a missing font is a clear
 * error; PNG round trips exactly and JPEG closely; save/encode errors; allocation failures. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "image/draw.h"
#include "testutil.h"

static molmo_image *solid(int w, int h, uint8_t v) {
    uint8_t *px = malloc((size_t)w * h * 3);
    memset(px, v, (size_t)w * h * 3);
    molmo_image *img = NULL;
    assert_int_equal(molmo_image_from_rgb(px, w, h, 0, &img, NULL), MOLMO_OK);
    free(px);
    return img;
}

static molmo_point pt(double x, double y, int group, const char *alt, const char *label) {
    molmo_point p;
    memset(&p, 0, sizeof p);
    p.x = x;
    p.y = y;
    p.group = group;
    p.alt = alt;
    p.label = label;
    return p;
}

static const uint8_t *pixel(const molmo_image *img, int x, int y) {
    return molmo_image_pixels(img) + ((size_t)y * molmo_image_width(img) + x) * 3;
}

static int near(const uint8_t *a, const uint8_t *b, int tol) {
    for (int k = 0; k < 3; k++)
        if (abs(a[k] - b[k]) > tol) return 0;
    return 1;
}

static molmo_image *draw(const molmo_image *img, const molmo_point *p, int n,
                         const molmo_draw_params *dp) {
    molmo_image *out = NULL;
    molmo_error err = {0};
    molmo_status st = molmo_image_draw_points(img, p, n, dp, &out, &err);
    if (st != MOLMO_OK) fail_msg("draw: %s", err.msg);
    return out;
}

/* Centroid of the pixels within `r` of (x, y) that have exactly the fill colour, weighted by
 * how much of it they have (1 - distance to it / 255, clamped). */
static void fill_centroid(const molmo_image *img, double x, double y, double r,
                          const uint8_t fill[3], double *cx, double *cy) {
    double sw = 0, sx = 0, sy = 0;
    for (int j = (int)(y - r); j <= (int)(y + r); j++)
        for (int i = (int)(x - r); i <= (int)(x + r); i++) {
            if (i < 0 || j < 0 || i >= molmo_image_width(img) || j >= molmo_image_height(img))
                continue;
            if (near(pixel(img, i, j), fill, 0)) sw += 1, sx += i + 0.5, sy += j + 0.5;
        }
    assert_true(sw > 0);
    *cx = sx / sw;
    *cy = sy / sw;
}

static void test_markers_land_on_points(void **state) {
    molmo_image *img = solid(320, 200, 128);
    molmo_point p[3] = {pt(50.0, 60.0, 0, "", ""), pt(200.3, 30.7, 0, "", ""),
                        pt(280.25, 150.75, 1, "", "")};
    molmo_draw_params dp = molmo_draw_default_params();
    dp.numbers = 0;
    dp.labels = 0;
    molmo_image *out = draw(img, p, 3, &dp);
    molmo_marker_geom g = molmo_draw_marker_geom(320, 200, 0);
    assert_true(g.r_fill >= 4 && g.r_light > g.r_fill && g.r_dark > g.r_light);
    for (int i = 0; i < 3; i++) {
        const uint8_t *fill = molmo_draw_palette[p[i].group];
        /* the pixel under the point is pure fill */
        assert_true(near(pixel(out, (int)p[i].x, (int)p[i].y), fill, 0));
        double cx, cy;
        fill_centroid(out, p[i].x, p[i].y, g.r_dark + 2, fill, &cx, &cy);
        if (getenv("MOLMO_TEST_VERBOSE"))
            printf("marker %d: centroid error (%.4f, %.4f) px (tolerance 0.25)\n", i,
                   cx - p[i].x, cy - p[i].y);
        if (fabs(cx - p[i].x) > 0.25 || fabs(cy - p[i].y) > 0.25)
            fail_msg("marker %d: centroid (%.3f, %.3f), point (%.3f, %.3f)", i, cx, cy, p[i].x,
                     p[i].y);
        /* pixels fully inside the light ring are pure white; the dark ring is dark */
        const uint8_t white[3] = {255, 255, 255};
        int n_white = 0, darkest = 255;
        for (int j = (int)(p[i].y - g.r_dark - 1); j <= (int)(p[i].y + g.r_dark + 1); j++)
            for (int k = (int)(p[i].x - g.r_dark - 1); k <= (int)(p[i].x + g.r_dark + 1); k++) {
                double d = hypot(k + 0.5 - p[i].x, j + 0.5 - p[i].y);
                if (d >= g.r_fill + 0.5 && d <= g.r_light - 0.5) {
                    assert_true(near(pixel(out, k, j), white, 0));
                    n_white++;
                }
                if (d > g.r_light && d < g.r_dark && pixel(out, k, j)[0] < darkest)
                    darkest = pixel(out, k, j)[0];
            }
        assert_true(n_white >= 8);
        assert_true(darkest < 60);
    }
    /* anti-aliased: some edge pixels lie strictly between two layers */
    int partial = 0;
    for (int j = 40; j < 80; j++)
        for (int i = 30; i < 70; i++) {
            const uint8_t *q = pixel(out, i, j);
            if (q[0] != 128 && q[0] != 255 && q[0] != molmo_draw_palette[0][0] &&
                q[0] > MOLMO_DRAW_DARK + 20)
                partial++;
        }
    assert_true(partial >= 8);
    /* nothing changes away from the markers */
    size_t changed_far = 0;
    for (int j = 0; j < 200; j++)
        for (int i = 0; i < 320; i++) {
            int far = 1;
            for (int k = 0; k < 3; k++)
                if (hypot(i + 0.5 - p[k].x, j + 0.5 - p[k].y) < g.r_dark + 1.5) far = 0;
            if (far && !near(pixel(out, i, j), pixel(img, i, j), 0)) changed_far++;
        }
    assert_int_equal(changed_far, 0);
    /* the input is untouched */
    assert_int_equal(pixel(img, 50, 60)[0], 128);
    molmo_image_free(out);
    molmo_image_free(img);
}

/* On black and on white, the marker keeps a ring that contrasts with the background. */
static void test_contrast(void **state) {
    for (int bg = 0; bg <= 255; bg += 255) {
        molmo_image *img = solid(400, 300, (uint8_t)bg);
        molmo_point p = pt(200, 150, 0, "", "");
        molmo_image *out = draw(img, &p, 1, NULL);
        molmo_marker_geom g = molmo_draw_marker_geom(400, 300, 0);
        int best = 0;
        for (double r = 0; r < g.r_dark; r += 0.5) {
            const uint8_t *q = pixel(out, (int)(200 + r), 150);
            int d = abs(q[0] - bg) + abs(q[1] - bg) + abs(q[2] - bg);
            if (d > best) best = d;
        }
        if (best < 300) fail_msg("background %d: best contrast %d", bg, best);
        molmo_image_free(out);
        molmo_image_free(img);
    }
}

/* Pixels that differ between two images inside a box. */
static int diff_in(const molmo_image *a, const molmo_image *b, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int j = y0 < 0 ? 0 : y0; j < y1 && j < molmo_image_height(a); j++)
        for (int i = x0 < 0 ? 0 : x0; i < x1 && i < molmo_image_width(a); i++)
            if (!near(pixel(a, i, j), pixel(b, i, j), 0)) n++;
    return n;
}

static void test_numbers_and_labels(void **state) {
    if (access(MOLMO_DEFAULT_FONT, R_OK) != 0) skip();
    molmo_image *img = solid(480, 360, 90);
    molmo_point p[3] = {pt(100, 100, 0, "dogs", "dogs"), pt(300, 120, 0, "dogs", "dogs"),
                        pt(200, 260, 1, "", "a red ball")};
    molmo_draw_params plain = molmo_draw_default_params(), numbered = plain, labelled = plain;
    plain.numbers = 0;
    plain.labels = 0;
    numbered.labels = 0;
    labelled.numbers = 0;
    molmo_image *a = draw(img, p, 3, &plain), *b = draw(img, p, 3, &numbered),
                *c = draw(img, p, 3, &labelled);
    molmo_marker_geom g = molmo_draw_marker_geom(480, 360, 0);
    int px = molmo_draw_font_px(480, 360, 0);
    assert_int_equal(px, 13);
    for (int i = 0; i < 3; i++) {
        /* the number sits above and to the right of its marker */
        int x = (int)p[i].x, y = (int)p[i].y, R = (int)g.r_dark;
        int above_right = diff_in(a, b, x, y - R - 2 * px, x + R + 2 * px, y);
        int below_left = diff_in(a, b, x - R - 2 * px, y + R + 1, x - R, y + R + 2 * px);
        if (above_right < 10 || below_left != 0)
            fail_msg("number %d: %d pixels above right, %d below left", i + 1, above_right,
                     below_left);
    }
    /* glyph pixels are white (the text), and there is a dark halo around them */
    int white = 0, dark = 0;
    for (int j = 0; j < 360; j++)
        for (int i = 0; i < 480; i++) {
            if (near(pixel(a, i, j), pixel(b, i, j), 0)) continue;
            if (pixel(b, i, j)[0] >= 240 && pixel(b, i, j)[2] >= 240) white++;
            if (pixel(b, i, j)[0] <= 40) dark++;
        }
    assert_true(white >= 10 && dark >= 30);
    /* labels: one per group, right of the group's first point; the second "dogs" is not
     * labelled again */
    int l0 = diff_in(a, c, 110, 95, 200, 100 + 2 * px);
    int l_dup = diff_in(a, c, 310, 115, 400, 120 + 2 * px);
    int l1 = diff_in(a, c, 210, 255, 330, 260 + 2 * px);
    if (l0 < 30 || l1 < 60 || l_dup != 0) fail_msg("labels: %d, %d, repeated %d", l0, l1, l_dup);
    molmo_image_free(a);
    molmo_image_free(b);
    molmo_image_free(c);
    /* text near the edges stays inside the image */
    molmo_point edge[2] = {pt(478, 2, 0, "a long label at the edge", ""), pt(1, 358, 0, "", "")};
    molmo_image *e = draw(img, edge, 2, NULL);
    int inside = diff_in(img, e, 300, 0, 480, 60);
    assert_true(inside > 50);
    molmo_image_free(e);
    molmo_image_free(img);
}

static void test_font_errors(void **state) {
    molmo_image *img = solid(64, 48, 200), *out = NULL;
    molmo_point p[2] = {pt(10, 10, 0, "x", ""), pt(30, 30, 0, "", "")};
    molmo_draw_params dp = molmo_draw_default_params();
    dp.font_path = "/nonexistent/fonts/Missing.ttf";
    molmo_error err = {0};
    assert_int_equal(molmo_image_draw_points(img, p, 2, &dp, &out, &err), MOLMO_ERR_NOT_FOUND);
    assert_null(out);
    assert_non_null(strstr(err.msg, "/nonexistent/fonts/Missing.ttf"));
    assert_non_null(strstr(err.msg, "fonts-dejavu-core"));
    /* no text to draw: no font needed */
    dp.numbers = 0;
    dp.labels = 0;
    assert_int_equal(molmo_image_draw_points(img, p, 2, &dp, &out, &err), MOLMO_OK);
    molmo_image_free(out);
    /* a file that is not a font */
    char path[1024];
    dp = molmo_draw_default_params();
    dp.font_path = tu_data_path(path, sizeof path, "images/tiny_50x30.png");
    assert_int_equal(molmo_image_draw_points(img, p, 2, &dp, &out, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tiny_50x30.png"));
    /* bad arguments, odd points */
    assert_int_equal(molmo_image_draw_points(NULL, p, 2, NULL, &out, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_image_draw_points(img, NULL, 2, NULL, &out, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_image_draw_points(img, p, -1, NULL, &out, &err), MOLMO_ERR_INVALID_ARG);
    molmo_point odd[4] = {pt(NAN, 5, 0, "", ""), pt(1e300, -1e300, 0, "", ""),
                          pt(-30, -30, 0, "", ""), pt(5, INFINITY, 0, "", "")};
    dp.numbers = 0;
    dp.labels = 0;
    assert_int_equal(molmo_image_draw_points(img, odd, 4, &dp, &out, &err), MOLMO_OK);
    assert_memory_equal(molmo_image_pixels(out), molmo_image_pixels(img), 64 * 48 * 3);
    molmo_image_free(out);
    assert_int_equal(molmo_image_draw_points(img, NULL, 0, NULL, &out, &err), MOLMO_OK);
    assert_memory_equal(molmo_image_pixels(out), molmo_image_pixels(img), 64 * 48 * 3);
    molmo_image_free(out);
    molmo_image_free(img);
}

static void tmp_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/molmo_test_draw_%d_%s", MOLMO_BINARY_DIR, (int)getpid(), name);
}

static void test_save_round_trip(void **state) {
    char src[1024], png[1024], jpg[1024];
    molmo_image *img = NULL, *out = NULL, *back = NULL;
    assert_int_equal(molmo_image_load_file(tu_data_path(src, sizeof src, "images/astronaut.png"),
                                           NULL, &img, NULL),
                     MOLMO_OK);
    int w = molmo_image_width(img), h = molmo_image_height(img);
    molmo_point p[2] = {pt(w * 0.4, h * 0.3, 0, "helmet", "helmet"),
                        pt(w * 0.7, h * 0.8, 0, "", "")};
    molmo_draw_params dp = molmo_draw_default_params();
    if (access(MOLMO_DEFAULT_FONT, R_OK) != 0) dp.numbers = dp.labels = 0;
    out = draw(img, p, 2, &dp);
    tmp_path(png, sizeof png, "a.PNG");
    tmp_path(jpg, sizeof jpg, "a.jpeg");
    molmo_error err;
    assert_int_equal(molmo_image_save(out, png, 0, &err), MOLMO_OK);
    assert_int_equal(molmo_image_load_file(png, NULL, &back, NULL), MOLMO_OK);
    assert_int_equal(molmo_image_width(back), w);
    assert_memory_equal(molmo_image_pixels(back), molmo_image_pixels(out), (size_t)w * h * 3);
    molmo_image_free(back);
    assert_int_equal(molmo_image_save(out, jpg, 95, &err), MOLMO_OK);
    assert_int_equal(molmo_image_load_file(jpg, NULL, &back, NULL), MOLMO_OK);
    molmo_image_info info;
    molmo_image_get_info(back, &info);
    assert_int_equal(info.format, MOLMO_IMAGE_FORMAT_JPEG);
    double sum = 0;
    const uint8_t *a = molmo_image_pixels(out), *b = molmo_image_pixels(back);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += abs(a[i] - b[i]);
    double mae = sum / ((double)w * h * 3);
    if (getenv("MOLMO_TEST_VERBOSE")) printf("JPEG q95: mean abs error %.3f (tolerance 2)\n", mae);
    if (mae > 2.0) fail_msg("JPEG q95 mean abs error %.3f", mae);
    /* the marker keeps its colour through JPEG (4:4:4) */
    assert_true(near(pixel(back, (int)p[0].x, (int)p[0].y), molmo_draw_palette[0], 24));
    molmo_image_free(back);
    /* encode to memory decodes to the same pixels */
    void *data = NULL;
    size_t size = 0;
    assert_int_equal(molmo_image_encode(out, MOLMO_IMAGE_FORMAT_PNG, 0, &data, &size, NULL),
                     MOLMO_OK);
    assert_int_equal(molmo_image_load_memory(data, size, NULL, &back, NULL), MOLMO_OK);
    assert_memory_equal(molmo_image_pixels(back), molmo_image_pixels(out), (size_t)w * h * 3);
    molmo_image_free(back);
    molmo_image_encoded_free(data);
    remove(png);
    remove(jpg);
    molmo_image_free(out);
    molmo_image_free(img);
}

static void test_save_errors(void **state) {
    molmo_image *img = solid(8, 8, 1);
    molmo_error err;
    char path[1024];
    tmp_path(path, sizeof path, "x.bmp");
    assert_int_equal(molmo_image_save(img, path, 0, &err), MOLMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "x.bmp"));
    assert_int_equal(molmo_image_save(img, "noext", 0, &err), MOLMO_ERR_UNSUPPORTED);
    assert_int_equal(molmo_image_save(img, "/nonexistent/dir/out.png", 0, &err), MOLMO_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/out.png"));
    assert_int_equal(access("/nonexistent/dir/out.png", F_OK), -1);
    tmp_path(path, sizeof path, "q.jpg");
    assert_int_equal(molmo_image_save(img, path, 101, &err), MOLMO_ERR_INVALID_ARG);
    void *data = NULL;
    size_t size = 0;
    assert_int_equal(molmo_image_encode(img, MOLMO_IMAGE_FORMAT_WEBP, 0, &data, &size, &err),
                     MOLMO_ERR_UNSUPPORTED);
    assert_null(data);
    assert_int_equal(molmo_image_save(NULL, path, 0, &err), MOLMO_ERR_INVALID_ARG);
    molmo_image_encoded_free(NULL);
    molmo_image_free(img);
    /* wider than JPEG allows */
    img = solid(70000, 1, 3);
    tmp_path(path, sizeof path, "wide.jpg");
    assert_int_equal(molmo_image_save(img, path, 0, &err), MOLMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "65500"));
    molmo_image_free(img);
}

/* Every allocation failure inside drawing (FreeType included) and encoding gives
 * MOLMO_ERR_NOMEM; ASan checks that nothing leaks. */
static void test_oom(void **state) {
    if (access(MOLMO_DEFAULT_FONT, R_OK) != 0) skip();
    molmo_image *img = solid(96, 64, 60);
    molmo_point p[2] = {pt(20, 20, 0, "cat", ""), pt(60, 40, 1, "dog", "")};
    int done = 0, failures = 0;
    for (long n = 0; n < 5000 && !done; n++) {
        molmo_image *out = NULL;
        void *data = NULL;
        size_t size;
        molmo_error err = {0};
        molmo_alloc_fail_after(n);
        molmo_status st = molmo_image_draw_points(img, p, 2, NULL, &out, &err);
        if (st == MOLMO_OK)
            st = molmo_image_encode(out, n & 1 ? MOLMO_IMAGE_FORMAT_JPEG : MOLMO_IMAGE_FORMAT_PNG,
                                    0, &data, &size, &err);
        molmo_alloc_fail_after(-1);
        if (st == MOLMO_OK)
            done = 1;
        else if (st != MOLMO_ERR_NOMEM)
            fail_msg("allocation %ld failed: %s", n, err.msg);
        else
            failures++;
        molmo_image_encoded_free(data);
        molmo_image_free(out);
    }
    if (getenv("MOLMO_TEST_VERBOSE")) printf("draw+encode: %d allocation failures, all NOMEM\n", failures);
    assert_true(done && failures > 20);
    molmo_image_free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_markers_land_on_points),
        cmocka_unit_test(test_contrast),
        cmocka_unit_test(test_numbers_and_labels),
        cmocka_unit_test(test_font_errors),
        cmocka_unit_test(test_save_round_trip),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

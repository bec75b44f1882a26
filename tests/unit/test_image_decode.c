/* test_image_decode.c — decoding against the reference loader, byte for byte.
 *
 * tests/data/images-extra/expected.json holds, for every test image (the small generated
 * variants and the golden fixtures), the size and an FNV-1a hash of the pixels Pillow gives for
 * Image.open(f).convert("RGB"), with and without ImageOps.exif_transpose (make_images.py).
 * Also: alpha compositing, EXIF metadata, sniffing by content, caller pixels. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static molmo_image *load(const char *rel, molmo_image_exif exif, molmo_image_alpha alpha) {
    char path[1024];
    tu_data_path(path, sizeof path, rel);
    molmo_image_params p = molmo_image_default_params();
    p.exif = exif;
    p.alpha = alpha;
    molmo_image *img = NULL;
    molmo_error err = {0};
    if (molmo_image_load_file(path, &p, &img, &err) != MOLMO_OK) fail_msg("%s: %s", rel, err.msg);
    return img;
}

static void check_hash(const char *rel, molmo_image *img, json_t *e, const char *wk,
                       const char *hk, const char *fk) {
    int w = (int)json_integer_value(json_object_get(e, wk));
    int h = (int)json_integer_value(json_object_get(e, hk));
    const char *want = json_string_value(json_object_get(e, fk));
    char got[17];
    snprintf(got, sizeof got, "%016llx",
             (unsigned long long)fnv1a(molmo_image_pixels(img), (size_t)w * (size_t)h * 3));
    if (molmo_image_width(img) != w || molmo_image_height(img) != h || strcmp(got, want) != 0)
        fail_msg("%s (%s): got %dx%d %s, Pillow gives %dx%d %s", rel, fk, molmo_image_width(img),
                 molmo_image_height(img), got, w, h, want);
}

/* Every image decodes to Pillow's pixels, stored order and EXIF-transposed. */
static void test_matches_pillow(void **state) {
    (void)state;
    char path[1024];
    json_error_t je;
    json_t *all = json_load_file(tu_data_path(path, sizeof path, "images-extra/expected.json"), 0, &je);
    assert_non_null(all);
    const char *rel;
    json_t *e;
    int n = 0, n_exif = 0;
    json_object_foreach(all, rel, e) {
        molmo_image *raw = load(rel, MOLMO_IMAGE_EXIF_IGNORE, MOLMO_IMAGE_ALPHA_DROP);
        check_hash(rel, raw, e, "w", "h", "fnv");
        molmo_image *tr = load(rel, MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
        check_hash(rel, tr, e, "w_exif", "h_exif", "fnv_exif");
        molmo_image_info info;
        assert_int_equal(molmo_image_get_info(tr, &info), MOLMO_OK);
        n_exif += info.orientation_applied;
        molmo_image_free(raw);
        molmo_image_free(tr);
        n++;
    }
    print_message("%d images byte-identical to Pillow (%d with EXIF orientation applied)\n", n, n_exif);
    assert_true(n >= 40);
    assert_int_equal(n_exif, 9); /* exif_2..8.jpg, exif_6.png, exif_8.webp */
    json_decref(all);
}

static void test_info(void **state) {
    (void)state;
    static const struct {
        const char *rel;
        molmo_image_format fmt;
        int orientation, had_alpha;
    } cases[] = {
        {"images-extra/exif_6.jpg", MOLMO_IMAGE_FORMAT_JPEG, 6, 0},
        {"images-extra/exif_6.png", MOLMO_IMAGE_FORMAT_PNG, 6, 0},
        {"images-extra/exif_8.webp", MOLMO_IMAGE_FORMAT_WEBP, 8, 0},
        {"images-extra/cmyk.jpg", MOLMO_IMAGE_FORMAT_JPEG, 1, 0},
        {"images-extra/rgba.png", MOLMO_IMAGE_FORMAT_PNG, 1, 1},
        {"images-extra/rgba16.png", MOLMO_IMAGE_FORMAT_PNG, 1, 1},
        {"images-extra/gray_alpha.png", MOLMO_IMAGE_FORMAT_PNG, 1, 1},
        {"images-extra/palette_trns.png", MOLMO_IMAGE_FORMAT_PNG, 1, 1},
        {"images-extra/alpha.webp", MOLMO_IMAGE_FORMAT_WEBP, 1, 1},
        {"images-extra/lossy.webp", MOLMO_IMAGE_FORMAT_WEBP, 1, 0},
        {"images/rgba_160x100.png", MOLMO_IMAGE_FORMAT_PNG, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_image *img = load(cases[i].rel, MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
        molmo_image_info info;
        assert_int_equal(molmo_image_get_info(img, &info), MOLMO_OK);
        assert_int_equal(info.format, cases[i].fmt);
        assert_int_equal(info.exif_orientation, cases[i].orientation);
        assert_int_equal(info.had_alpha, cases[i].had_alpha);
        assert_int_equal(info.alpha_composited, 0);
        assert_int_equal(info.orientation_applied, cases[i].orientation != 1);
        assert_int_equal(info.width, cases[i].orientation >= 5 ? info.stored_height : info.stored_width);
        molmo_image_free(img);
    }
    assert_string_equal(molmo_image_format_name(MOLMO_IMAGE_FORMAT_WEBP), "webp");
    assert_string_equal(molmo_image_format_name(MOLMO_IMAGE_FORMAT_RAW), "raw");
}

/* Orientation 6 (rotate 90 degrees clockwise): the stored top-left (red marker) ends up at
 * the top-right, the stored bottom-left (blue) at the top-left. */
static void test_orientation_geometry(void **state) {
    (void)state;
    molmo_image *img = load("images-extra/exif_6.png", MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
    const uint8_t *p = molmo_image_pixels(img);
    int w = molmo_image_width(img);
    assert_int_equal(w, 30);
    const uint8_t *tl = p, *tr = p + (size_t)(w - 1) * 3;
    assert_true(tl[2] == 255 && tl[0] == 0 && tl[1] == 0);  /* blue  */
    assert_true(tr[0] == 255 && tr[1] == 0 && tr[2] == 0);  /* red   */
    molmo_image_free(img);
}

/* Compositing blends over the background with rounding; alpha = (x*6 + y) mod 256 there. */
static void test_alpha_composite(void **state) {
    (void)state;
    char path[1024];
    tu_data_path(path, sizeof path, "images-extra/rgba.png");
    molmo_image *drop = load("images-extra/rgba.png", MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
    static const uint8_t bgs[3][3] = {{255, 255, 255}, {0, 0, 0}, {10, 128, 250}};
    for (int b = 0; b < 3; b++) {
        molmo_image_params p = molmo_image_default_params();
        p.alpha = MOLMO_IMAGE_ALPHA_COMPOSITE;
        memcpy(p.background, bgs[b], 3);
        molmo_image *img = NULL;
        molmo_error err = {0};
        assert_int_equal(molmo_image_load_file(path, &p, &img, &err), MOLMO_OK);
        molmo_image_info info;
        molmo_image_get_info(img, &info);
        assert_int_equal(info.alpha_composited, 1);
        const uint8_t *c = molmo_image_pixels(drop), *o = molmo_image_pixels(img);
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 40; x++)
                for (int k = 0; k < 3; k++) {
                    unsigned a = (uint8_t)(x * 6 + y), s = c[(y * 40 + x) * 3 + k];
                    unsigned want = (s * a + bgs[b][k] * (255 - a) + 127) / 255;
                    assert_int_equal(o[(y * 40 + x) * 3 + k], want);
                }
        molmo_image_free(img);
    }
    molmo_image_free(drop);
    /* An opaque JPEG is untouched by compositing. */
    molmo_image *j1 = load("images-extra/rgb444.jpg", MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
    molmo_image *j2 = load("images-extra/rgb444.jpg", MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_COMPOSITE);
    assert_memory_equal(molmo_image_pixels(j1), molmo_image_pixels(j2), 40 * 30 * 3);
    molmo_image_free(j1);
    molmo_image_free(j2);
}

/* The format comes from the bytes: a PNG named .jpg, and the same bytes from memory. */
static void test_sniff_and_memory(void **state) {
    (void)state;
    char src[1024];
    tu_data_path(src, sizeof src, "images/tiny_50x30.png");
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char tmp[] = "/tmp/molmo_test_sniffXXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    FILE *g = fdopen(fd, "wb");
    assert_int_equal(fwrite(buf, 1, n, g), n);
    fclose(g);
    char renamed[64];
    snprintf(renamed, sizeof renamed, "%s.jpg", tmp);
    assert_int_equal(rename(tmp, renamed), 0);
    molmo_image *a = NULL, *b = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_image_load_file(renamed, NULL, &a, &err), MOLMO_OK);
    assert_int_equal(molmo_image_load_memory(buf, n, NULL, &b, &err), MOLMO_OK);
    remove(renamed);
    molmo_image_info info;
    molmo_image_get_info(a, &info);
    assert_int_equal(info.format, MOLMO_IMAGE_FORMAT_PNG);
    assert_int_equal(molmo_image_width(a), 50);
    assert_memory_equal(molmo_image_pixels(a), molmo_image_pixels(b), 50 * 30 * 3);
    molmo_image_free(a);
    molmo_image_free(b);
}

/* Grey input becomes R = G = B; caller pixels are copied row by row with their stride. */
static void test_gray_and_from_rgb(void **state) {
    (void)state;
    molmo_image *g = load("images/gray_120x200.png", MOLMO_IMAGE_EXIF_APPLY, MOLMO_IMAGE_ALPHA_DROP);
    const uint8_t *p = molmo_image_pixels(g);
    for (int i = 0; i < 120 * 200; i++) assert_true(p[3 * i] == p[3 * i + 1] && p[3 * i] == p[3 * i + 2]);
    molmo_image_free(g);
    uint8_t px[2 * 8];
    for (int i = 0; i < 16; i++) px[i] = (uint8_t)i;
    molmo_image *img = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_image_from_rgb(px, 2, 2, 8, &img, &err), MOLMO_OK);
    static const uint8_t want[12] = {0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13};
    assert_memory_equal(molmo_image_pixels(img), want, 12);
    molmo_image_free(img);
    assert_int_equal(molmo_image_from_rgb(px, 3, 2, 8, &img, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(img);
    assert_int_equal(molmo_image_from_rgb(px, 0, 2, 0, &img, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_image_from_rgb(NULL, 1, 1, 0, &img, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_image_from_rgb(px, 2000000, 1, 0, &img, &err), MOLMO_ERR_TOO_LARGE);
    molmo_image_free(NULL);
    assert_int_equal(molmo_image_width(NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pillow),   cmocka_unit_test(test_info),
        cmocka_unit_test(test_orientation_geometry), cmocka_unit_test(test_alpha_composite),
        cmocka_unit_test(test_sniff_and_memory), cmocka_unit_test(test_gray_and_from_rgb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

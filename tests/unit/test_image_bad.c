/* test_image_bad.c — hostile and boundary input (STYLE.md §9, issue #4 item 4): empty, missing,
 * unsupported, truncated and corrupted files of each format, decompression bombs and the pixel
 * limit, 1x1 / 1x10000 / 10000x1 images through preprocessing, allocation failures, and a
 * replay of the fuzz seed corpus. Every case must give a clear error or a correct result. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "image/preprocess.h"
#include "testutil.h"

static uint8_t *slurp(const char *rel, size_t *n) {
    char path[1024];
    tu_data_path(path, sizeof path, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Decodes; on success reads every pixel (so ASan sees them) and returns 1. On failure checks
 * the error is well-formed and returns 0. */
static int try_decode(const uint8_t *d, size_t n, const molmo_image_params *p, molmo_status *out_st) {
    molmo_image *img = NULL;
    molmo_error err = {0};
    molmo_status st = molmo_image_load_memory(d, n, p, &img, &err);
    if (out_st) *out_st = st;
    if (st != MOLMO_OK) {
        assert_null(img);
        assert_int_equal(err.code, st);
        assert_true(strlen(err.msg) > 5);
        assert_null(strchr(err.msg, '\n'));
        return 0;
    }
    unsigned sum = 0;
    const uint8_t *px = molmo_image_pixels(img);
    for (size_t i = 0; i < (size_t)molmo_image_width(img) * molmo_image_height(img) * 3; i++) sum += px[i];
    (void)sum;
    molmo_image_free(img);
    return 1;
}

static void test_empty_missing_unsupported(void **state) {
    (void)state;
    molmo_image *img = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_image_load_memory("", 0, NULL, &img, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(molmo_image_load_file("/nonexistent/x.jpg", NULL, &img, &err), MOLMO_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.jpg"));
    char tmp[] = "/tmp/molmo_emptyXXXXXX";
    FILE *f = fdopen(mkstemp(tmp), "w");
    fclose(f);
    assert_int_equal(molmo_image_load_file(tmp, NULL, &img, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, tmp)); /* the message names the file */
    remove(tmp);
    static const struct {
        const char *bytes;
        size_t n;
        const char *name;
    } other[] = {
        {"GIF89a\x01\x00\x01\x00", 10, "GIF"},
        {"BM\x3e\0\0\0\0\0", 8, "BMP"},
        {"II*\0\x08\0\0\0", 8, "TIFF"},
        {"\0\0\0\x1c" "ftypavif\0\0\0\0", 16, "AVIF"},
        {"\0\0\0\x18" "ftypheic\0\0\0\0", 16, "HEIF"},
        {"%PDF-1.7\n", 9, "PDF"},
        {"hello, world", 12, "not a JPEG, PNG or WebP"},
        {"\xff\xd8", 2, "not a JPEG"},      /* too short to be a JPEG */
        {"RIFF\0\0\0\0WAVE", 12, "not a JPEG"},
    };
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
        assert_int_equal(molmo_image_load_memory(other[k].bytes, other[k].n, NULL, &img, &err),
                         MOLMO_ERR_UNSUPPORTED);
        if (!strstr(err.msg, other[k].name)) fail_msg("%s: \"%s\"", other[k].name, err.msg);
    }
    assert_int_equal(molmo_image_load_memory(NULL, 5, NULL, &img, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_image_load_memory("x", 1, NULL, NULL, &err), MOLMO_ERR_INVALID_ARG);
}

static const char *const SMALL[] = {
    "images-extra/rgb420_37x23.jpg", "images-extra/progressive.jpg", "images-extra/cmyk.jpg",
    "images-extra/ycck.jpg",         "images-extra/exif_6.jpg",      "images-extra/interlaced.png",
    "images-extra/rgba16.png",       "images-extra/palette4.png",    "images-extra/exif_6.png",
    "images-extra/lossy.webp",       "images-extra/lossless.webp",   "images-extra/alpha.webp",
    "images-extra/animated.webp",    "images-extra/exif_8.webp",
};
#define N_SMALL (sizeof SMALL / sizeof SMALL[0])

/* Truncation at ~80 points per file: the first half of a file is never a whole image. */
static void test_truncated(void **state) {
    (void)state;
    int n_err = 0, n_ok = 0;
    for (size_t f = 0; f < N_SMALL; f++) {
        size_t n;
        uint8_t *d = slurp(SMALL[f], &n);
        for (size_t cut = 1; cut < n; cut += 1 + n / 80) {
            uint8_t *c = malloc(cut); /* exact-size copy: ASan catches reads past the end */
            memcpy(c, d, cut);
            molmo_status st;
            int ok = try_decode(c, cut, NULL, &st);
            if (ok && cut <= n / 2) fail_msg("%s cut at %zu of %zu decoded", SMALL[f], cut, n);
            if (!ok && st != MOLMO_ERR_FORMAT && st != MOLMO_ERR_UNSUPPORTED)
                fail_msg("%s cut at %zu: status %d", SMALL[f], cut, st);
            ok ? n_ok++ : n_err++;
            free(c);
        }
        free(d);
    }
    print_message("truncated files: %d clear errors, %d decoded (cut only in trailing chunks)\n", n_err, n_ok);
}

/* Random byte corruption: any outcome but a crash, a hang or a leak. */
static void test_corrupted(void **state) {
    (void)state;
    unsigned seed = 12345;
    int n_ok = 0, n_err = 0;
    for (size_t f = 0; f < N_SMALL; f++) {
        size_t n;
        uint8_t *d = slurp(SMALL[f], &n);
        uint8_t *c = malloc(n);
        for (int trial = 0; trial < 150; trial++) {
            memcpy(c, d, n);
            int flips = 1 + trial % 4;
            for (int k = 0; k < flips; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t pos = (seed >> 8) % n;
                seed = seed * 1103515245u + 12345u;
                c[pos] = (uint8_t)(seed >> 16);
            }
            try_decode(c, n, NULL, NULL) ? n_ok++ : n_err++;
        }
        free(c);
        free(d);
    }
    print_message("corrupted files: %d errors, %d decoded anyway (corrupt entropy data)\n", n_err, n_ok);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void expect(const uint8_t *d, size_t n, const molmo_image_params *p, molmo_status want,
                   const char *needle, const char *what) {
    molmo_image *img = NULL;
    molmo_error err = {0};
    molmo_status st = molmo_image_load_memory(d, n, p, &img, &err);
    if (st != want || (needle && !strstr(err.msg, needle)))
        fail_msg("%s: status %d \"%s\", want %d with \"%s\"", what, st, err.msg, want, needle ? needle : "");
    molmo_image_free(img);
}

/* Headers claiming huge sizes are refused before any pixel buffer exists. */
static void test_bombs_and_limits(void **state) {
    (void)state;
    size_t n;
    uint8_t *png = slurp("images-extra/interlaced.png", &n);
    be32(png + 16, 100000);
    be32(png + 20, 100000);
    be32(png + 29, crc32_png(png + 12, 17));
    expect(png, n, NULL, MOLMO_ERR_TOO_LARGE, "over the limit", "PNG 100000x100000");
    be32(png + 16, 2000000);
    be32(png + 20, 1);
    be32(png + 29, crc32_png(png + 12, 17));
    expect(png, n, NULL, MOLMO_ERR_TOO_LARGE, "pixel limit", "PNG 2000000x1");
    free(png);

    uint8_t *jpg = slurp("images-extra/rgb420_37x23.jpg", &n);
    for (size_t i = 2; i + 9 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
            jpg[i + 5] = jpg[i + 7] = 0xFD; /* 65000 x 65000 */
            jpg[i + 6] = jpg[i + 8] = 0xE8;
            break;
        }
    expect(jpg, n, NULL, MOLMO_ERR_TOO_LARGE, "over the limit", "JPEG 65000x65000");
    free(jpg);

    uint8_t *webp = slurp("images-extra/lossy.webp", &n);
    assert_memory_equal(webp + 12, "VP8 ", 4);
    webp[26] = webp[28] = 0xFF; /* 16383 x 16383 = 268 MP */
    webp[27] = webp[29] = 0x3F;
    expect(webp, n, NULL, MOLMO_ERR_TOO_LARGE, "over the limit", "WebP 16383x16383");
    free(webp);

    /* the configurable limit, exactly at and one below 40x30 = 1200 */
    molmo_image_params p = molmo_image_default_params();
    static const char *const fmts[] = {"images-extra/rgb444.jpg", "images-extra/rgba.png",
                                       "images-extra/lossless.webp", "images-extra/animated.webp"};
    for (int k = 0; k < 4; k++) {
        uint8_t *d = slurp(fmts[k], &n);
        p.max_pixels = 1199;
        expect(d, n, &p, MOLMO_ERR_TOO_LARGE, "1200 pixels", fmts[k]);
        p.max_pixels = 1200;
        expect(d, n, &p, MOLMO_OK, NULL, fmts[k]);
        free(d);
    }
}

static void preprocess_file(const char *rel, int want_nh, int want_nw, int want_gh, int want_gw) {
    char path[1024];
    molmo_image *img = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_image_load_file(tu_data_path(path, sizeof path, rel), NULL, &img, &err), MOLMO_OK);
    molmo_preproc_config c;
    molmo_preproc_config_default(&c);
    molmo_image_token_ids ids = {1, 2, 3, 4};
    molmo_preproc_result r;
    assert_int_equal(molmo_preprocess(img, &c, &ids, &r, &err), MOLMO_OK);
    assert_int_equal(r.rows * r.cols, 1);
    assert_int_equal(r.resized_h, want_nh);
    assert_int_equal(r.resized_w, want_nw);
    assert_int_equal(r.global_h, want_gh);
    assert_int_equal(r.global_w, want_gw);
    for (size_t k = 0; k < (size_t)r.n_crops * r.n_patches * r.d_patch; k++) assert_true(isfinite(r.images[k]));
    /* the one pixel (or column) sits in the middle of the crop; everything else is padding */
    const float pad0 = (0.0f - c.mean[0]) / c.std[0];
    size_t n_pad = 0;
    for (size_t k = 0; k < (size_t)r.n_patches * r.d_patch; k += 3) n_pad += r.images[k] == pad0;
    assert_true(n_pad >= (size_t)r.n_patches * 196 - (size_t)want_gh * want_gw);
    molmo_preproc_result_free(&r);
    molmo_image_free(img);
}

/* 1x1 upscales to the whole crop; 1x10000 / 10000x1 keep one pixel across (the reference's TF
 * resize would fail on its 0-pixel side). */
static void test_extreme_sizes(void **state) {
    (void)state;
    preprocess_file("images-extra/one_1x1.png", 336, 336, 336, 336);
    preprocess_file("images-extra/one_1x1.jpg", 336, 336, 336, 336);
    preprocess_file("images-extra/tall_1x10000.png", 336, 1, 336, 1);
    preprocess_file("images-extra/wide_10000x1.png", 1, 336, 1, 336);
}

/* Fail the n-th allocation for every n until the whole path succeeds: NOMEM or OK, no leak. */
static void test_allocation_failures(void **state) {
    (void)state;
    static const char *const files[] = {"images-extra/rgba.png", "images-extra/exif_6.jpg",
                                        "images-extra/alpha.webp"};
    for (int f = 0; f < 3; f++) {
        char path[1024];
        tu_data_path(path, sizeof path, files[f]);
        molmo_preproc_config c;
        molmo_preproc_config_default(&c);
        molmo_image_token_ids ids = {1, 2, 3, 4};
        molmo_image_params p = molmo_image_default_params();
        p.alpha = MOLMO_IMAGE_ALPHA_COMPOSITE;
        int n_nomem = 0;
        for (long k = 0;; k++) {
            molmo_error err = {0};
            molmo_image *img = NULL;
            molmo_preproc_result r;
            molmo_alloc_fail_after(k);
            molmo_status st = molmo_image_load_file(path, &p, &img, &err);
            if (st == MOLMO_OK) st = molmo_preprocess(img, &c, &ids, &r, &err);
            molmo_alloc_fail_after(-1);
            molmo_image_free(img);
            if (st == MOLMO_OK) {
                molmo_preproc_result_free(&r);
                break;
            }
            if (st != MOLMO_ERR_NOMEM) fail_msg("%s, allocation %ld failed: status %d \"%s\"", files[f], k, st, err.msg);
            n_nomem++;
            assert_true(k < 1000);
        }
        print_message("%s: %d injected allocation failures, each a clean MOLMO_ERR_NOMEM\n", files[f], n_nomem);
    }
}

/* The fuzz seeds (tests/fuzz-corpus/image_fuzz) through the fuzz target's path. */
static void test_fuzz_corpus_replay(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz-corpus/image_fuzz", MOLMO_SOURCE_DIR);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char rel[1100];
        snprintf(rel, sizeof rel, "../fuzz-corpus/image_fuzz/%s", de->d_name);
        size_t len;
        uint8_t *d = slurp(rel, &len);
        molmo_image_params p = molmo_image_default_params();
        p.max_pixels = 1u << 20;
        molmo_image *img = NULL;
        if (molmo_image_load_memory(d, len, &p, &img, NULL) == MOLMO_OK) {
            molmo_preproc_config c;
            molmo_preproc_config_default(&c);
            c.max_crops = 1 + (int)(len % 12);
            molmo_preproc_result r;
            molmo_image_token_ids ids = {1, 2, 3, 4};
            assert_int_equal(molmo_preprocess(img, &c, &ids, &r, NULL), MOLMO_OK);
            molmo_preproc_result_free(&r);
            molmo_image_free(img);
        }
        free(d);
        n++;
    }
    closedir(dp);
    print_message("replayed %d fuzz seeds\n", n);
    assert_true(n >= 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_missing_unsupported),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_bombs_and_limits),
        cmocka_unit_test(test_extreme_sizes),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_fuzz_corpus_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

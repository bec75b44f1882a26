/* test_image_tiling.c — the geometry of the multi-crop layout, independent of pixels:
 * select_tiling against a literal re-statement of the reference (the 35 candidates in the
 * fact sheet's sort order, float32 argmax/argmin) over a grid of sizes, the fact sheet's
 * worked examples, the float32 truncation, the token block and the feature positions (every
 * <im_patch> token receives exactly one feature, in the reference's order), masks, and the
 * preprocessor_config.json loader. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/preprocess.h"
#include "image/tiling.h"
#include "testutil.h"

static const molmo_tiling_geom G = {14, 24, 4, 4, 12, 12};

/* Fact sheet §5.2, step 2: candidates sorted by (i*j, i). */
static const int CAND[35][2] = {
    {1, 1}, {1, 2}, {2, 1}, {1, 3}, {3, 1}, {1, 4}, {2, 2}, {4, 1}, {1, 5}, {5, 1}, {1, 6}, {2, 3},
    {3, 2}, {6, 1}, {1, 7}, {7, 1}, {1, 8}, {2, 4}, {4, 2}, {8, 1}, {1, 9}, {3, 3}, {9, 1}, {1, 10},
    {2, 5}, {5, 2}, {10, 1}, {1, 11}, {11, 1}, {1, 12}, {2, 6}, {3, 4}, {4, 3}, {6, 2}, {12, 1}};

/* numpy's float32 semantics, stated directly: volatile stores force float32 rounding. */
static void ref_tiling(int h, int w, int *r, int *c) {
    volatile float s[35];
    int all_lt1 = 1;
    for (int k = 0; k < 35; k++) {
        volatile float fh = (float)h, fw = (float)w;
        volatile float a = fh == 0 ? INFINITY : (float)(224 * CAND[k][0]) / fh;
        volatile float b = fw == 0 ? INFINITY : (float)(224 * CAND[k][1]) / fw;
        s[k] = a < b ? a : b;
        if (!(s[k] < 1)) all_lt1 = 0;
    }
    int best = 0;
    for (int k = 1; k < 35; k++) {
        float sk = s[k], sb = s[best];
        if (all_lt1) {
            if (sk > sb) best = k;
        } else {
            float tk = sk < 1 ? 1e10f : sk, tb = sb < 1 ? 1e10f : sb;
            if (tk < tb) best = k;
        }
    }
    *r = CAND[best][0];
    *c = CAND[best][1];
}

static void test_select_tiling_matches_reference(void **state) {
    (void)state;
    int n = 0;
    for (int H = 1; H <= 3200; H += (H < 400 ? 7 : 61))
        for (int W = 1; W <= 3200; W += (W < 400 ? 11 : 53)) {
            int r, c, rr, rc;
            molmo_select_tiling(H - 112, W - 112, 224, 12, &r, &c);
            ref_tiling(H - 112, W - 112, &rr, &rc);
            if (r != rr || c != rc) fail_msg("%dx%d: got (%d,%d), reference (%d,%d)", W, H, r, c, rr, rc);
            n++;
        }
    /* boundaries: window exactly filled, zero and negative effective sizes */
    static const int edge[][2] = {{112, 112}, {336, 336}, {337, 336}, {560, 336}, {561, 336},
                                  {113, 100000}, {100000, 113}, {1, 1}, {1, 10000}, {10000, 1}};
    for (size_t k = 0; k < sizeof edge / sizeof edge[0]; k++) {
        int r, c, rr, rc;
        molmo_select_tiling(edge[k][1] - 112, edge[k][0] - 112, 224, 12, &r, &c);
        ref_tiling(edge[k][1] - 112, edge[k][0] - 112, &rr, &rc);
        assert_int_equal(r, rr);
        assert_int_equal(c, rc);
    }
    print_message("select_tiling agrees with the reference on %d sizes\n", n);
}

/* Fact sheet §5.8 table: W x H -> tiling, canvas, resized (pad), global, crops, tokens. */
static void test_fact_sheet_examples(void **state) {
    (void)state;
    static const int ex[][13] = {
        /* W, H, R, C, TH, TW, nh, nw, top, left, gh, gw, tokens */
        {336, 336, 1, 1, 336, 336, 336, 336, 0, 0, 336, 336, 316},
        {448, 448, 2, 2, 560, 560, 560, 560, 0, 0, 336, 336, 580},
        {536, 354, 2, 2, 560, 560, 369, 560, 95, 0, 221, 336, 580},
        {640, 480, 2, 3, 560, 784, 560, 746, 0, 19, 251, 336, 740},
        {1920, 1080, 3, 4, 784, 1008, 567, 1007, 108, 0, 189, 336, 1196},
        {1000, 3000, 6, 2, 1456, 560, 1456, 485, 0, 37, 336, 112, 1252},
        {100, 100, 1, 1, 336, 336, 336, 336, 0, 0, 336, 336, 316},
    };
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
        const int *e = ex[k];
        int r, c, nh, nw, gh, gw;
        molmo_select_tiling(e[1] - 112, e[0] - 112, 224, 12, &r, &c);
        assert_int_equal(r, e[2]);
        assert_int_equal(c, e[3]);
        int th = r * 224 + 112, tw = c * 224 + 112;
        assert_int_equal(th, e[4]);
        assert_int_equal(tw, e[5]);
        molmo_resized_size(e[1], e[0], th, tw, &nh, &nw);
        assert_int_equal(nh, e[6]);
        assert_int_equal(nw, e[7]);
        assert_int_equal((th - nh) / 2, e[8]);
        assert_int_equal((tw - nw) / 2, e[9]);
        molmo_resized_size(e[1], e[0], 336, 336, &gh, &gw);
        assert_int_equal(gh, e[10]);
        assert_int_equal(gw, e[11]);
        assert_int_equal(molmo_image_token_count(&G, r, c), e[12]);
    }
    /* The float32 product loses a pixel where exact arithmetic would not: 1080*(784/1080)
     * gives 784, but the width 1920*(1008/1920 -> min) truncates to 1007. */
    int nh, nw;
    molmo_resized_size(1080, 1920, 784, 1008, &nh, &nw);
    assert_int_equal(nh, 567);
    assert_int_equal(nw, 1007);
    /* Extreme aspect: the reference's 0-pixel side (a TF error) becomes 1. */
    molmo_resized_size(10000, 1, 336, 336, &nh, &nw);
    assert_int_equal(nh, 336);
    assert_int_equal(nw, 1);
}

/* Every tiling: token counts, the block layout, and feature positions. */
static void test_tokens_and_input_idx(void **state) {
    (void)state;
    static int32_t tokens[4096], idx[13 * 144];
    static int hit[4096];
    for (int k = 0; k < 35; k++) {
        int R = CAND[k][0], C = CAND[k][1];
        int n = molmo_image_token_count(&G, R, C);
        assert_int_equal(n, 160 + (8 * R + 4) * (8 * C + 5));
        molmo_image_tokens(&G, R, C, 1, 2, 3, 4, tokens);
        int n_patch = 0;
        for (int t = 0; t < n; t++) n_patch += tokens[t] == 3;
        assert_int_equal(n_patch, 144 + (8 * R + 4) * (8 * C + 4));
        assert_int_equal(tokens[0], 1);
        assert_int_equal(tokens[157], 2);
        assert_int_equal(tokens[158], 1);
        assert_int_equal(tokens[n - 1], 2);
        assert_int_equal(tokens[n - 2], 4); /* <im_col> ends the last row too */
        int used = molmo_image_input_idx(&G, R, C, idx);
        assert_int_equal(used, n_patch);
        memset(hit, 0, sizeof hit);
        const int Wp = 8 * C + 4;
        for (int crop = 0; crop < 1 + R * C; crop++)
            for (int p = 0; p < 144; p++) {
                int v = idx[crop * 144 + p];
                if (v == -100) continue;
                assert_true(v >= 0 && v < n);
                assert_int_equal(tokens[v], 3);
                hit[v]++;
                /* closed forms of fact sheet §5.7 */
                int py = p / 12, px = p % 12;
                if (crop == 0) {
                    assert_int_equal(v, 1 + 13 * py + px);
                } else {
                    int i = (crop - 1) / C, j = (crop - 1) % C;
                    assert_int_equal(v, 158 + 1 + (8 * i + py) * (Wp + 1) + 8 * j + px);
                    int row_lo = (i == 0) ? 0 : 2, row_hi = (R == 1) ? 12 : (i == 0) ? 10 : (i == R - 1) ? 12 : 10;
                    int col_lo = (j == 0) ? 0 : 2, col_hi = (C == 1) ? 12 : (j == 0) ? 10 : (j == C - 1) ? 12 : 10;
                    assert_true(py >= row_lo && py < row_hi && px >= col_lo && px < col_hi);
                }
            }
        for (int t = 0; t < n; t++) assert_int_equal(hit[t], tokens[t] == 3 ? 1 : 0);
    }
}

/* Masks: fractions k/196, the off-by-one -1 row, full patches inside the image. */
static void test_masks(void **state) {
    (void)state;
    static float m[13 * 576];
    /* 1920x1080: canvas 784x1008, image rows [108, 675), all columns but the last 1. */
    molmo_image_masks(&G, 3, 4, 108, 567, 0, 1007, m);
    for (int k = 0; k < 12 * 576; k++) {
        int count = (int)lroundf(m[k] * 196.0f);
        assert_true(count >= 0 && count <= 196);
        assert_true(m[k] == (float)count / 196.0f);
    }
    for (int k = 12 * 576; k < 13 * 576; k++) assert_true(m[k] == -1.0f);
    /* crop (0,0) patch (0,0): canvas rows 0..13 are padding */
    assert_true(m[0] == 0.0f);
    /* crop (0,0) patch (7,0): rows 98..111, 4 real rows (108..111), 14 columns */
    assert_true(m[7 * 24] == 56.0f / 196.0f);
    /* crop (1,1) patch (0,0): rows 224.., fully inside */
    assert_true(m[(1 * 4 + 1) * 576] == 1.0f);
    /* crop (0,3) patch (.,23): columns 1008-14..1007, one column missing -> 13/14 */
    assert_true(m[3 * 576 + 12 * 24 + 23] == 182.0f / 196.0f);
}

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/molmo_ppcfgXXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_config(void **state) {
    (void)state;
    molmo_preproc_config d, c;
    molmo_preproc_config_default(&d);
    molmo_error err = {0};
    char dir[1024];
    tu_data_path(dir, sizeof dir, "models/olmoe");
    assert_int_equal(molmo_preproc_config_load(dir, &c, &err), MOLMO_OK);
    assert_memory_equal(&c, &d, sizeof c); /* the real values are Molmo's defaults */
    assert_int_equal(molmo_preproc_config_load("/nonexistent/dir", &c, &err), MOLMO_OK);
    assert_memory_equal(&c, &d, sizeof c);
    assert_true(d.mean[0] == 0.48145466f && d.std[2] == 0.27577711f);

    char *p = write_tmp("{\"max_crops\": 6, \"image_mean\": [0.5, 0.5, 0.5]}");
    assert_int_equal(molmo_preproc_config_load(p, &c, &err), MOLMO_OK);
    remove(p);
    assert_int_equal(c.max_crops, 6);
    assert_true(c.mean[1] == 0.5f && c.std[1] == d.std[1]);

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"max_crops\": 0}", "max_crops"},
        {"{\"max_crops\": \"12\"}", "max_crops"},
        {"{\"overlap_margins\": [3, 4]}", "overlap_margins"},
        {"{\"overlap_margins\": [4]}", "overlap_margins"},
        {"{\"overlap_margins\": [12, 12]}", "overlap_margins"},
        {"{\"base_image_input_size\": [336, 224]}", "base_image_input_size"},
        {"{\"base_image_input_size\": [330, 330]}", "base_image_input_size"},
        {"{\"image_patch_size\": 16}", "base_image_input_size"},
        {"{\"image_token_length_w\": 24}", "image_token_length"},
        {"{\"image_std\": [0.2, 0, 0.2]}", "image_std"},
        {"{\"image_mean\": [0.2, \"x\", 0.2]}", "image_mean"},
        {"{\"do_normalize\": 1}", "do_normalize"},
        {"{\"max_crops\": 12,}", "invalid JSON"},
        {"[1, 2]", "not a JSON object"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        p = write_tmp(bad[k].json);
        molmo_status st = molmo_preproc_config_load(p, &c, &err);
        remove(p);
        if (st != MOLMO_ERR_FORMAT || !strstr(err.msg, bad[k].field) || !strstr(err.msg, "/tmp/molmo_ppcfg"))
            fail_msg("%s: status %d, message \"%s\"", bad[k].json, st, err.msg);
    }
    /* overrides are range-checked when used */
    c = d;
    c.max_crops = 65;
    assert_int_equal(molmo_preproc_config_check(&c, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "max_crops"));
    c.max_crops = 1;
    assert_int_equal(molmo_preproc_config_check(&c, &err), MOLMO_OK);
}

/* A max_crops override changes the tiling as the reference would; the result's geometry
 * agrees with the functions above. */
static void test_override_end_to_end(void **state) {
    (void)state;
    static uint8_t px[300 * 700 * 3];
    for (size_t k = 0; k < sizeof px; k++) px[k] = (uint8_t)(k * 7);
    molmo_image *img = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_image_from_rgb(px, 700, 300, 0, &img, &err), MOLMO_OK);
    molmo_preproc_config c;
    molmo_preproc_config_default(&c);
    for (int mc = 1; mc <= 12; mc += 5) {
        c.max_crops = mc;
        molmo_preproc_result r;
        assert_int_equal(molmo_preprocess(img, &c, NULL, &r, &err), MOLMO_OK);
        int er, ec;
        molmo_select_tiling(300 - 112, 700 - 112, 224, mc, &er, &ec);
        assert_int_equal(r.rows, er);
        assert_int_equal(r.cols, ec);
        assert_true(r.rows * r.cols <= mc);
        assert_null(r.tokens);
        assert_int_equal(r.n_tokens, molmo_image_token_count(&G, er, ec));
        molmo_preproc_result_free(&r);
    }
    molmo_image_free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_tiling_matches_reference),
        cmocka_unit_test(test_fact_sheet_examples),
        cmocka_unit_test(test_tokens_and_input_idx),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_override_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

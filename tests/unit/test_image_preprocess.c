/* test_image_preprocess.c — preprocessing against every image case of tests/data/golden.
 *
 * Exact: tiling, number of crops, number of image tokens and the token block itself (the
 * golden input_ids after BOS), image_masks (float equality) and image_input_idx (golden = ours
 * + 1 for BOS where >= 0, -100 elsewhere). `images` (where the golden includes it) within
 * 5e-4 absolute: the goldens used torchvision's resize and we use TensorFlow's, which the
 * fixtures README measures at up to 3.4e-4 apart (tests/data/README.md §4). We also check that
 * our difference equals the README's own TF-vs-torch figure for that case (to 2e-6), which
 * only an exact TF port achieves. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/preprocess.h"
#include "io/mapfile.h"
#include "testutil.h"

/* The goldens hold I32 tensors, so read them with this minimal safetensors reader. */
typedef struct golden {
    molmo_mapfile map;
    json_t *header;
    size_t data_off;
} golden;

static void golden_open(golden *g, const char *model, const char *case_name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s/%s.safetensors", MOLMO_TEST_DATA, model, case_name);
    molmo_error err = {0};
    if (molmo_mapfile_open(&g->map, path, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_true(g->map.size > 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | g->map.data[i];
    assert_true(n <= g->map.size - 8);
    json_error_t je;
    g->header = json_loadb((const char *)g->map.data + 8, (size_t)n, 0, &je);
    assert_non_null(g->header);
    g->data_off = 8 + (size_t)n;
}

/* Pointer to a tensor's data with its element count; fails on dtype or absence. */
static const void *golden_get(const golden *g, const char *name, const char *dtype, size_t *count) {
    json_t *t = json_object_get(g->header, name);
    if (!t) return NULL;
    assert_string_equal(json_string_value(json_object_get(t, "dtype")), dtype);
    json_t *shape = json_object_get(t, "shape"), *v;
    size_t i, n = 1;
    json_array_foreach(shape, i, v) n *= (size_t)json_integer_value(v);
    json_t *off = json_object_get(t, "data_offsets");
    size_t b = (size_t)json_integer_value(json_array_get(off, 0));
    size_t e = (size_t)json_integer_value(json_array_get(off, 1));
    assert_int_equal(e - b, n * 4);
    assert_true(g->data_off + e <= g->map.size);
    *count = n;
    return g->map.data + g->data_off + b;
}

static void golden_close(golden *g) {
    json_decref(g->header);
    molmo_mapfile_close(&g->map);
}

static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

static void run_case(const char *model, const char *case_name) {
    json_t *js = tu_golden_json(model, case_name);
    char path[1024], dir[1024];
    tu_data_path(path, sizeof path, json_string_value(json_object_get(js, "image")));
    snprintf(dir, sizeof dir, "%s/models/%s", MOLMO_TEST_DATA, model);
    molmo_error err = {0};
    molmo_image *img = NULL;
    if (molmo_image_load_file(path, NULL, &img, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_preproc_config cfg;
    if (molmo_preproc_config_load(dir, &cfg, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    json_t *ids_js = json_object_get(js, "image_token_ids");
    molmo_image_token_ids ids = {jint(ids_js, "<im_start>"), jint(ids_js, "<im_end>"),
                                 jint(ids_js, "<im_patch>"), jint(ids_js, "<im_col>")};
    molmo_preproc_result r;
    if (molmo_preprocess(img, &cfg, &ids, &r, &err) != MOLMO_OK) fail_msg("%s", err.msg);

    json_t *tiling = json_object_get(js, "tiling");
    assert_int_equal(r.rows, json_integer_value(json_array_get(tiling, 0)));
    assert_int_equal(r.cols, json_integer_value(json_array_get(tiling, 1)));
    assert_int_equal(r.n_crops, jint(js, "n_crops"));
    assert_int_equal(r.n_tokens, jint(js, "num_image_tokens"));
    assert_int_equal(r.n_features, jint(js, "num_patch_features_used"));
    json_t *input_ids = json_object_get(js, "input_ids");
    for (int k = 0; k < r.n_tokens; k++)
        assert_int_equal(r.tokens[k], json_integer_value(json_array_get(input_ids, (size_t)k + 1)));
    /* the golden resized sizes and paddings (fixture cross-check record) */
    json_t *cc = json_object_get(js, "preprocessing_crosscheck");
    json_t *hw = json_object_get(cc, "resized_hw_and_pad_top_left");
    json_t *ghw = json_object_get(cc, "global_resized_hw_and_pad_top_left");
    const int geo[8] = {r.resized_h, r.resized_w, r.pad_top, r.pad_left,
                        r.global_h, r.global_w, r.global_pad_top, r.global_pad_left};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(geo[k], json_integer_value(json_array_get(hw, (size_t)k)));
        assert_int_equal(geo[4 + k], json_integer_value(json_array_get(ghw, (size_t)k)));
    }

    golden g;
    golden_open(&g, model, case_name);
    size_t n;
    const float *masks = golden_get(&g, "image_masks", "F32", &n);
    assert_non_null(masks);
    assert_int_equal(n, (size_t)r.n_crops * (size_t)r.n_patches);
    assert_memory_equal(r.masks, masks, n * sizeof(float));
    const int32_t *idx = golden_get(&g, "image_input_idx", "I32", &n);
    assert_non_null(idx);
    assert_int_equal(n, (size_t)r.n_crops * (size_t)r.n_pooled);
    for (size_t k = 0; k < n; k++) assert_int_equal(idx[k], r.input_idx[k] >= 0 ? r.input_idx[k] + 1 : -100);

    const float *images = golden_get(&g, "images", "F32", &n);
    if (json_is_true(json_object_get(js, "images_tensor_included"))) {
        assert_non_null(images);
        assert_int_equal(n, (size_t)r.n_crops * (size_t)r.n_patches * (size_t)r.d_patch);
        char what[128];
        snprintf(what, sizeof what, "%s/%s images (TF resize vs golden torchvision)", model, case_name);
        tu_assert_close(r.images, images, n, 5e-4, 0, what);
        tu_cmp c = tu_compare_f32(r.images, images, n);
        double readme = json_real_value(json_object_get(cc, "images_max_abs_diff_tf_numpy_vs_torch"));
        print_message("%-26s tiling %dx%d, %2d crops, %4d tokens: images max|diff| %.6g "
                      "(fixture's TF port: %.6g), masks+idx exact\n",
                      case_name, r.rows, r.cols, r.n_crops, r.n_tokens, c.max_abs, readme);
        assert_true(fabs(c.max_abs - readme) <= 1e-7);
    } else {
        print_message("%-26s tiling %dx%d, %2d crops, %4d tokens: masks+idx+tokens exact "
                      "(golden has no images)\n",
                      case_name, r.rows, r.cols, r.n_crops, r.n_tokens);
    }
    golden_close(&g);
    molmo_preproc_result_free(&r);
    molmo_image_free(img);
    json_decref(js);
}

static void test_qwen2(void **state) {
    (void)state;
    run_case("qwen2", "tiny_50x30");
    run_case("qwen2", "astronaut_2x2");
    run_case("qwen2", "wide_1920x1080_12crops");
    run_case("qwen2", "multiturn_tiny");
    run_case("qwen2-bf16", "tiny_50x30");
}

static void test_olmo(void **state) {
    (void)state;
    run_case("olmo", "gray_120x200");
    run_case("olmo", "chelsea_1x2");
    run_case("olmo", "hubble_12crops");
}

static void test_olmoe(void **state) {
    (void)state;
    run_case("olmoe", "rgba_160x100");
    run_case("olmoe", "tall_200x900_4x1");
    run_case("olmoe", "tall_500x1500_12crops");
}

/* The resize split over a thread pool gives the same bytes as one thread. */
static void test_pool_identical(void **state) {
    char p[1024];
    molmo_error err = {0};
    molmo_image *img = NULL;
    assert_int_equal(molmo_image_load_file(tu_data_path(p, sizeof p, "images/wide_1920x1080.jpg"),
                                           NULL, &img, &err), MOLMO_OK);
    molmo_preproc_config cfg;
    molmo_preproc_config_default(&cfg);
    molmo_pool *pool = NULL;
    assert_int_equal(molmo_pool_create(2, &pool, &err), MOLMO_OK);
    molmo_preproc_result a, b;
    assert_int_equal(molmo_preprocess(img, &cfg, NULL, &a, &err), MOLMO_OK);
    assert_int_equal(molmo_preprocess_mt(img, &cfg, NULL, pool, &b, &err), MOLMO_OK);
    assert_int_equal(a.n_crops, b.n_crops);
    assert_memory_equal(a.images, b.images,
                        (size_t)a.n_crops * a.n_patches * a.d_patch * sizeof(float));
    molmo_preproc_result_free(&a);
    molmo_preproc_result_free(&b);
    molmo_pool_free(pool);
    molmo_image_free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_olmo),
        cmocka_unit_test(test_olmoe),
        cmocka_unit_test(test_pool_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

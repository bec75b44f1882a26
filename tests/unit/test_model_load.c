/* test_model_load.c — loading the fixture checkpoints, the real-shape presets (sparse files),
 * sharded checkpoints and Hugging Face cache resolution. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "model/model.h"
#include "model/presets.h"
#include "testutil.h"

static char tmpdir[512];

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp-model-load-XXXXXX", MOLMO_BINARY_DIR);
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static long long fixture_n_params(const char *model) {
    char p[1024], rel[256];
    snprintf(rel, sizeof rel, "models/%s/fixture.json", model);
    json_error_t je;
    json_t *j = json_load_file(tu_data_path(p, sizeof p, rel), 0, &je);
    assert_non_null(j);
    long long n = json_integer_value(json_object_get(j, "n_params"));
    json_decref(j);
    return n;
}

static void load_fixture(const char *model, molmo_family fam, int experts, molmo_dtype dt) {
    char p[1024], rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    molmo_error err = {0};
    molmo_model *m = NULL;
    assert_int_equal(molmo_model_load(tu_data_path(p, sizeof p, rel), NULL, &m, &err), MOLMO_OK);
    molmo_model_info i;
    assert_int_equal(molmo_model_get_info(m, &i), MOLMO_OK);
    assert_int_equal(i.family, fam);
    assert_int_equal(i.n_experts, experts);
    assert_int_equal(i.d_model, 64);
    assert_int_equal(i.n_layers, 3);
    assert_int_equal(i.vit_n_layers, 10);
    assert_int_equal(i.vit_layer_a, 8); /* vit_layers [-2, -9] of 10 blocks */
    assert_int_equal(i.vit_layer_b, 1);
    assert_int_equal((long long)i.n_params_total, fixture_n_params(model));
    assert_int_equal(i.n_params_vision, 409472);
    assert_int_equal(i.n_tensors_by_dtype[dt], (uint64_t)i.n_tensors);
    assert_true(i.has_tokenizer && i.has_preprocessor_config && i.has_generation_config);
    molmo_model_free(m);
}

static void test_fixtures(void **state) {
    load_fixture("qwen2", MOLMO_FAMILY_QWEN2, 0, MOLMO_DTYPE_F32);
    load_fixture("qwen2-bf16", MOLMO_FAMILY_QWEN2, 0, MOLMO_DTYPE_BF16);
    load_fixture("olmo", MOLMO_FAMILY_OLMO, 0, MOLMO_DTYPE_F32);
    load_fixture("olmoe", MOLMO_FAMILY_MOLMOE, 8, MOLMO_DTYPE_F32);
}

/* The four released architectures at full size, as sparse files: the parameter counts must be
 * those of the fact sheet §9.4 (7B-D's total matches the hub index metadata, 8,021,025,280). */
static void test_real_shapes(void **state) {
    int n;
    const molmo_preset *ps = molmo_presets(&n);
    for (int k = 0; k < n; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", tmpdir, ps[k].name);
        assert_int_equal(mkdir(dir, 0755), 0);
        molmo_error err = {0};
        molmo_status s = molmo_synth_checkpoint(dir, ps[k].config_json, MOLMO_DTYPE_F32, 0, 0, &err);
        if (s != MOLMO_OK) fail_msg("%s: %s", ps[k].name, err.msg);
        molmo_model *m = NULL;
        s = molmo_model_load(dir, NULL, &m, &err);
        if (s != MOLMO_OK) fail_msg("%s: %s", ps[k].name, err.msg);
        molmo_model_info i;
        molmo_model_get_info(m, &i);
        print_message("%-11s %-20s llm %llu vision %llu connector %llu total %llu\n", ps[k].name,
                      i.family_name, (unsigned long long)i.n_params_llm,
                      (unsigned long long)i.n_params_vision,
                      (unsigned long long)i.n_params_connector,
                      (unsigned long long)i.n_params_total);
        assert_int_equal(i.n_params_llm, ps[k].n_params_llm);
        assert_int_equal(i.n_params_vision, ps[k].n_params_vision);
        assert_int_equal(i.n_params_connector, ps[k].n_params_connector);
        assert_int_equal(i.weight_bytes, 4 * i.n_params_total);
        if (!strcmp(ps[k].name, "molmo-7b-d")) assert_int_equal(i.n_params_total, 8021025280ull);
        molmo_model_free(m);
        char f[1100];
        snprintf(f, sizeof f, "%s/model.safetensors", dir);
        unlink(f);
    }
}

/* Splits the qwen2 fixture into two shards with an index; the result must load identically,
 * and an index that lies about a tensor's shard must be rejected. */
static void write_shards(const char *dir, const char *lie) {
    char p[1024];
    molmo_safetensors st;
    molmo_error err = {0};
    assert_int_equal(molmo_st_open(&st, tu_data_path(p, sizeof p, "models/qwen2"), &err), MOLMO_OK);
    molmo_st_entry *e = calloc((size_t)st.n_tensors, sizeof *e);
    json_t *wm = json_object();
    int half = st.n_tensors / 2;
    for (int i = 0; i < st.n_tensors; i++) {
        const molmo_st_tensor *t = &st.tensors[i];
        e[i].name = t->name;
        e[i].dtype = t->dtype;
        e[i].n_dims = t->n_dims;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        e[i].data = t->data;
        const char *shard = i < half ? "model-00001-of-00002.safetensors"
                                     : "model-00002-of-00002.safetensors";
        if (lie && !strcmp(lie, t->name)) shard = "model-00001-of-00002.safetensors";
        json_object_set_new(wm, t->name, json_string(shard));
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    assert_int_equal(molmo_st_write(path, e, half, &err), MOLMO_OK);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    assert_int_equal(molmo_st_write(path, e + half, st.n_tensors - half, &err), MOLMO_OK);
    json_t *idx = json_pack("{s:{s:i},s:o}", "metadata", "total_size", 0, "weight_map", wm);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    assert_int_equal(json_dump_file(idx, path, 0), 0);
    json_decref(idx);
    snprintf(path, sizeof path, "cp '%s/models/qwen2/config.json' '%s/'", MOLMO_TEST_DATA, dir);
    assert_int_equal(system(path), 0);
    free(e);
    molmo_st_close(&st);
}

static void test_sharded(void **state) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_shards(dir, NULL);
    molmo_error err = {0};
    molmo_model *m = NULL;
    if (molmo_model_load(dir, NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_model_info i;
    molmo_model_get_info(m, &i);
    assert_int_equal(i.n_files, 2);
    assert_int_equal((long long)i.n_params_total, fixture_n_params("qwen2"));
    molmo_model_free(m);

    snprintf(dir, sizeof dir, "%s/sharded-lie", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_shards(dir, "model.vision_backbone.pad_embed");
    assert_int_equal(molmo_model_load(dir, NULL, &m, &err), MOLMO_ERR_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err.msg, "model.vision_backbone.pad_embed"));
    assert_non_null(strstr(err.msg, "model-00001-of-00002.safetensors"));
}

/* A repo id resolves through $HF_HUB_CACHE/models--ORG--NAME/refs/main -> snapshots/<commit>. */
static void test_hf_cache(void **state) {
    char root[1024], path[2048], p[1024];
    snprintf(root, sizeof root, "%s/hub", tmpdir);
    snprintf(path, sizeof path, "mkdir -p '%s/models--test-org--tiny.qwen2/refs' "
             "'%s/models--test-org--tiny.qwen2/snapshots' && printf 'abc123\\n' > "
             "'%s/models--test-org--tiny.qwen2/refs/main' && ln -s '%s' "
             "'%s/models--test-org--tiny.qwen2/snapshots/abc123'",
             root, root, root, tu_data_path(p, sizeof p, "models/qwen2"), root);
    assert_int_equal(system(path), 0);
    setenv("HF_HUB_CACHE", root, 1);
    molmo_error err = {0};
    molmo_model *m = NULL;
    if (molmo_model_load("test-org/tiny.qwen2", NULL, &m, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    assert_non_null(strstr(m->path, "snapshots/abc123"));
    molmo_model_free(m);
    /* an explicit revision naming the snapshot */
    assert_int_equal(molmo_model_load("test-org/tiny.qwen2@abc123", NULL, &m, &err), MOLMO_OK);
    molmo_model_free(m);
    /* missing repo and missing revision: NOT_FOUND naming what was looked for */
    assert_int_equal(molmo_model_load("test-org/absent", NULL, &m, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "test-org/absent"));
    assert_non_null(strstr(err.msg, "models--test-org--absent"));
    assert_int_equal(molmo_model_load("test-org/tiny.qwen2@v9", NULL, &m, &err),
                     MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "v9"));
    /* not a path and not a repo id */
    assert_int_equal(molmo_model_load("../../etc", NULL, &m, &err), MOLMO_ERR_NOT_FOUND);
    assert_int_equal(molmo_model_load("a/b/c", NULL, &m, &err), MOLMO_ERR_NOT_FOUND);
    unsetenv("HF_HUB_CACHE");
}

/* Out-of-memory injection: every allocation of a load may fail; the result is NOMEM (or OK
 * once the countdown passes the last allocation), never a crash or a leak (ASan build). */
static void test_oom(void **state) {
    char p[1024];
    tu_data_path(p, sizeof p, "models/olmoe");
    int saw_ok = 0;
    for (long n = 0; n < 5000 && !saw_ok; n++) {
        molmo_error err = {0};
        molmo_model *m = NULL;
        molmo_alloc_fail_after(n);
        molmo_status s = molmo_model_load(p, NULL, &m, &err);
        molmo_alloc_fail_after(-1);
        if (s == MOLMO_OK) {
            saw_ok = 1;
            molmo_model_free(m);
        } else {
            assert_int_equal(s, MOLMO_ERR_NOMEM);
            assert_null(m);
        }
    }
    assert_true(saw_ok);
}

static void test_bad_args(void **state) {
    molmo_error err = {0};
    molmo_model *m = (molmo_model *)&err;
    assert_int_equal(molmo_model_load(NULL, NULL, &m, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(m);
    assert_int_equal(molmo_model_load("x", NULL, NULL, &err), MOLMO_ERR_INVALID_ARG);
    molmo_model_free(NULL);
    assert_int_equal(molmo_model_load("/nonexistent/dir", NULL, &m, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    char p[1024];
    /* a directory without config.json */
    assert_int_equal(molmo_model_load(tu_data_path(p, sizeof p, "images"), NULL, &m, &err),
                     MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "config.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),  cmocka_unit_test(test_real_shapes),
        cmocka_unit_test(test_sharded),   cmocka_unit_test(test_hf_cache),
        cmocka_unit_test(test_oom),       cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

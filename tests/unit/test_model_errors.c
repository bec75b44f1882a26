/* test_model_errors.c — a corpus of broken model files and configs: each must give a clear
 * error naming the file/tensor/key, never a crash, never a leak (run under the ASan build). */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/mapfile.h"
#include "model/model.h"
#include "testutil.h"

static char tmpdir[512];
static molmo_mapfile fixture; /* qwen2 model.safetensors */
static uint64_t fixture_hlen;

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp-model-errors-XXXXXX", MOLMO_BINARY_DIR);
    if (!mkdtemp(tmpdir)) return -1;
    char p[1024];
    if (molmo_mapfile_open(&fixture, tu_data_path(p, sizeof p, "models/qwen2/model.safetensors"),
                           NULL) != MOLMO_OK)
        return -1;
    for (int i = 7; i >= 0; i--) fixture_hlen = (fixture_hlen << 8) | fixture.data[i];
    return 0;
}

static int teardown(void **state) {
    molmo_mapfile_close(&fixture);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A case directory: the qwen2 fixture's config.json and tokenizer files, plus a model file. */
static void make_case(const char *name, char *dir, size_t cap) {
    snprintf(dir, cap, "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s/models/qwen2/config.json' '%s/'", MOLMO_TEST_DATA, dir);
    assert_int_equal(system(cmd), 0);
}

static void write_bytes(const char *dir, const char *file, const void *a, size_t na,
                        const void *b, size_t nb) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_true(fwrite(a, 1, na, f) == na);
    if (nb) assert_true(fwrite(b, 1, nb, f) == nb);
    fclose(f);
}

/* Writes model.safetensors with the fixture's data buffer and a rewritten header. */
static void write_header(const char *dir, const char *json_text) {
    size_t len = strlen(json_text);
    unsigned char *buf = malloc(8 + len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 8, json_text, len);
    const unsigned char *data = fixture.data + 8 + fixture_hlen;
    write_bytes(dir, "model.safetensors", buf, 8 + len, data, fixture.size - 8 - fixture_hlen);
    free(buf);
}

static json_t *fixture_header(void) {
    json_t *h = json_loadb((const char *)fixture.data + 8, fixture_hlen, 0, NULL);
    assert_non_null(h);
    return h;
}

static void write_mutated(const char *dir, json_t *h) {
    char *s = json_dumps(h, JSON_COMPACT);
    write_header(dir, s);
    free(s);
    json_decref(h);
}

static void expect_load(const char *dir, molmo_status want, const char *s1, const char *s2) {
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_status s = molmo_model_load(dir, NULL, &m, &err);
    if (s != want || (s1 && !strstr(err.msg, s1)) || (s2 && !strstr(err.msg, s2)))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\" / \"%s\"", dir, molmo_status_str(s),
                 err.msg, molmo_status_str(want), s1 ? s1 : "", s2 ? s2 : "");
    assert_null(m);
    print_message("  %-28s -> %s\n", strrchr(dir, '/') + 1, err.msg);
}

#define T_ATT "model.transformer.blocks.0.att_proj.weight"
#define T_POOL "model.vision_backbone.image_pooling_2d.wq.weight"

static void test_truncated_and_lengths(void **state) {
    char d[1024];
    make_case("truncated-header", d, sizeof d);
    write_bytes(d, "model.safetensors", fixture.data, 1000, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "model.safetensors", "runs past the end");

    make_case("truncated-data", d, sizeof d);
    write_bytes(d, "model.safetensors", fixture.data, 8 + fixture_hlen + 100, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "model.safetensors", "outside the 100-byte data buffer");

    make_case("too-short", d, sizeof d);
    write_bytes(d, "model.safetensors", "\x10\0\0", 3, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "too short", NULL);

    make_case("empty", d, sizeof d);
    write_bytes(d, "model.safetensors", "", 0, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "too short", NULL);

    make_case("huge-header-length", d, sizeof d);
    unsigned char b[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}'};
    write_bytes(d, "model.safetensors", b, sizeof b, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "header length", "not sane");

    make_case("no-weights", d, sizeof d);
    expect_load(d, MOLMO_ERR_NOT_FOUND, "no model.safetensors", NULL);
}

static void test_bad_json(void **state) {
    char d[1024];
    make_case("bad-json", d, sizeof d);
    write_header(d, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]");
    expect_load(d, MOLMO_ERR_FORMAT, "not valid JSON", NULL);

    make_case("json-array", d, sizeof d);
    write_header(d, "[1, 2, 3]");
    expect_load(d, MOLMO_ERR_FORMAT, "not a JSON object", NULL);

    make_case("duplicate-key", d, sizeof d);
    write_header(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}");
    expect_load(d, MOLMO_ERR_FORMAT, "not valid JSON", "duplicate");

    make_case("entry-not-object", d, sizeof d);
    write_header(d, "{\"a\": 5}");
    expect_load(d, MOLMO_ERR_FORMAT, "tensor 'a' is not a JSON object", NULL);

    make_case("negative-shape", d, sizeof d);
    write_header(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}");
    expect_load(d, MOLMO_ERR_FORMAT, "'a'", "shape[0]");

    make_case("string-offsets", d, sizeof d);
    write_header(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}");
    expect_load(d, MOLMO_ERR_FORMAT, "'a'", "data_offsets");

    make_case("shape-overflow", d, sizeof d);
    write_header(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                    "\"data_offsets\":[0,4]}}");
    expect_load(d, MOLMO_ERR_FORMAT, "'a'", "overflows");
}

static void set_entry(json_t *h, const char *name, const char *key, json_t *v) {
    json_t *e = json_object_get(h, name);
    assert_non_null(e);
    json_object_set_new(e, key, v);
}

static void test_offsets_dtypes_shapes(void **state) {
    char d[1024];
    json_t *h;

    make_case("offset-out-of-range", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "data_offsets", json_pack("[I,I]", (json_int_t)0, (json_int_t)1 << 40));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, T_ATT, "outside");

    make_case("offsets-reversed", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "data_offsets", json_pack("[i,i]", 100, 50));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, T_ATT, "outside");

    make_case("overlap", d, sizeof d);
    h = fixture_header();
    json_t *src = json_object_get(json_object_get(h, T_POOL), "data_offsets");
    json_t *other = json_object_get(h, "model.vision_backbone.image_pooling_2d.wk.weight");
    json_object_set(other, "data_offsets", src);
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, "overlap", "image_pooling_2d");

    make_case("dtype-i64", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "dtype", json_string("I64"));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_UNSUPPORTED, T_ATT, "dtype I64");

    make_case("dtype-i32-weight", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "dtype", json_string("I32"));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_UNSUPPORTED, T_ATT, "dtype I32");

    make_case("dtype-unknown", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "dtype", json_string("Q7"));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, T_ATT, "unknown dtype");

    make_case("bytes-vs-shape", d, sizeof d);
    h = fixture_header();
    set_entry(h, T_ATT, "shape", json_pack("[i,i]", 128, 65));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, T_ATT, "need");

    make_case("missing-tensor", d, sizeof d);
    h = fixture_header();
    json_object_del(h, "model.transformer.blocks.2.ff_out.weight");
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_NOT_FOUND, "model.transformer.blocks.2.ff_out.weight", "missing");

    make_case("wrong-shape", d, sizeof d); /* same byte count, transposed */
    h = fixture_header();
    set_entry(h, T_POOL, "shape", json_pack("[i,i]", 128, 64));
    write_mutated(d, h);
    expect_load(d, MOLMO_ERR_FORMAT, T_POOL, "shape [128, 64], expected [64, 128]");
}

static void write_config(const char *dir, const char *key, json_t *value) {
    char p[1200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    assert_non_null(c);
    if (value)
        json_object_set_new(c, key, value);
    else
        json_object_del(c, key);
    assert_int_equal(json_dump_file(c, p, 0), 0);
    json_decref(c);
    snprintf(p, sizeof p, "ln -s '%s/models/qwen2/model.safetensors' '%s/'", MOLMO_TEST_DATA, dir);
    assert_int_equal(system(p), 0);
}

static void config_case(const char *name, const char *key, json_t *value, molmo_status want,
                        const char *s1, const char *s2) {
    char d[1024];
    make_case(name, d, sizeof d);
    write_config(d, key, value);
    expect_load(d, want, s1, s2);
}

static void test_configs(void **state) {
    config_case("cfg-no-width", "hidden_size", NULL, MOLMO_ERR_FORMAT, "config.json",
                "not a Molmo config");
    config_case("cfg-zero-layers", "num_hidden_layers", json_integer(0), MOLMO_ERR_FORMAT,
                "num_hidden_layers", "outside");
    config_case("cfg-1e9-layers", "num_hidden_layers", json_integer(1000000000), MOLMO_ERR_FORMAT,
                "num_hidden_layers", "outside");
    config_case("cfg-heads", "num_attention_heads", json_integer(5), MOLMO_ERR_FORMAT,
                "5 heads do not divide the width 64", NULL);
    config_case("cfg-kv-heads", "num_key_value_heads", json_integer(3), MOLMO_ERR_FORMAT,
                "3 KV heads", NULL);
    config_case("cfg-odd-ff", "intermediate_size", json_integer(191), MOLMO_ERR_FORMAT,
                "intermediate_size", "not even");
    config_case("cfg-string", "hidden_size", json_string("64"), MOLMO_ERR_FORMAT, "hidden_size",
                "not an integer");
    config_case("cfg-vocab", "vocab_size", json_integer(5000), MOLMO_ERR_FORMAT, "vocab_size",
                "embedding_size");
    config_case("cfg-norm", "layer_norm_type", json_string("layer"), MOLMO_ERR_UNSUPPORTED,
                "layer_norm_type", NULL);
    config_case("cfg-tied", "weight_tying", json_true(), MOLMO_ERR_UNSUPPORTED, "weight_tying",
                NULL);
    config_case("cfg-eps", "layer_norm_eps", json_real(-1), MOLMO_ERR_FORMAT, "layer_norm_eps",
                NULL);
    config_case("cfg-vit-layers", "vit_layers", json_pack("[i,i]", -2, -99), MOLMO_ERR_FORMAT,
                "vit_layers", NULL);
    config_case("cfg-vision", "vision_backbone", json_pack("{s:i}", "image_num_heads", 3),
                MOLMO_ERR_FORMAT, "vision", "heads");
    /* a dimension that passes the config but disagrees with the weights */
    config_case("cfg-width-vs-weights", "hidden_size", json_integer(128), MOLMO_ERR_FORMAT,
                "model.transformer.wte.embedding", "expected [1024, 128]");

    char d[1024];
    make_case("cfg-bad-json", d, sizeof d);
    write_bytes(d, "config.json", "{\"hidden_size\": 64,", 19, NULL, 0);
    expect_load(d, MOLMO_ERR_FORMAT, "config.json:1", "invalid JSON");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_and_lengths),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_offsets_dtypes_shapes),
        cmocka_unit_test(test_configs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_hub_parse.c — the parsers behind molmo_pull (src/io/hub_meta.c): what the hub answers
 * is untrusted, and names and ETags from it become paths in the cache. Each rule is checked on
 * the values the real hub sends and on hostile ones. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "io/hub.h"
#include "testutil.h"

#define SHA256 "403450e234d65943a7dcf7e05a771ce3c92faa84dd07db4ac20f592037a1e4bd"
#define SHA1 "d7edf6bd2a681fb0175f7735299831ee1b22b812"
#define COMMIT "2439f60ef33a0d46d85da5001d52aeda5b00ce9f"

static void test_etag(void **state) {
    char out[MOLMO_HUB_ETAG_MAX];
    static const struct { const char *in, *want; } ok[] = {
        {"\"" SHA256 "\"", SHA256}, {"W/\"" SHA1 "\"", SHA1}, {SHA1, SHA1},
        {"  \"abc-1_2.x\"  ", "abc-1_2.x"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(molmo_hub_normalize_etag(ok[i].in, strlen(ok[i].in), out, sizeof out), 1);
        assert_string_equal(out, ok[i].want);
    }
    static const char *const bad[] = {"", "\"\"", "\"../x\"", "\".hidden\"", "a/b", "a b",
                                      "\"a\\\\b\"", "W/", "\"a\0b\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(molmo_hub_normalize_etag(bad[i], strlen(bad[i]), out, sizeof out), 0);
        assert_string_equal(out, "");
    }
    char longv[300];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(molmo_hub_normalize_etag(longv, strlen(longv), out, sizeof out), 0);
}

static void test_names(void **state) {
    static const char *const good[] = {"config.json", ".gitattributes", "onnx/model.onnx", "a..b",
                                       "sub/dir/x y.bin", "model-00001-of-00007.safetensors"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(molmo_hub_valid_filename(good[i]), 1);
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a/",
                                      ".", "..", "x\\y", "a\nb", "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (molmo_hub_valid_filename(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
    char longn[1100];
    memset(longn, 'a', sizeof longn - 1);
    longn[sizeof longn - 1] = '\0';
    assert_int_equal(molmo_hub_valid_filename(longn), 0);
    assert_int_equal(molmo_hub_valid_revision("main"), 1);
    assert_int_equal(molmo_hub_valid_revision("refs/pr/1"), 1);
    assert_int_equal(molmo_hub_valid_revision(COMMIT), 1);
    assert_int_equal(molmo_hub_valid_revision(".."), 0);
    assert_int_equal(molmo_hub_valid_revision("a/../../b"), 0);
    assert_int_equal(molmo_hub_valid_revision("/abs"), 0);
    assert_int_equal(molmo_hub_is_hex(SHA1, 40), 1);
    assert_int_equal(molmo_hub_is_hex("ABCDEF", 6), 0); /* the hub writes lowercase */
}

static void test_globs(void **state) {
    const char *json[] = {"*.json"};
    assert_int_equal(molmo_hub_glob_match(json, 1, "config.json"), 1);
    assert_int_equal(molmo_hub_glob_match(json, 1, "sub/x.json"), 1); /* '*' matches '/' */
    assert_int_equal(molmo_hub_glob_match(json, 1, "model.safetensors"), 0);
    const char *dir[] = {"sub/"};
    assert_int_equal(molmo_hub_glob_match(dir, 1, "sub/a"), 1);
    assert_int_equal(molmo_hub_glob_match(dir, 1, "sub/a/b"), 1);
    assert_int_equal(molmo_hub_glob_match(dir, 1, "sub"), 0);
    assert_int_equal(molmo_hub_glob_match(dir, 1, "subx/a"), 0);
    const char *two[] = {"model-0000[12]-*", "tokenizer*"};
    assert_int_equal(molmo_hub_glob_match(two, 2, "model-00002-of-00007.safetensors"), 1);
    assert_int_equal(molmo_hub_glob_match(two, 2, "model-00003-of-00007.safetensors"), 0);
    assert_int_equal(molmo_hub_glob_match(two, 2, "tokenizer_config.json"), 1);
    assert_int_equal(molmo_hub_glob_match(NULL, 0, "anything"), 1);
}

static void feed(molmo_hub_headers *h, const char *text) {
    while (*text) {
        size_t n = strcspn(text, "\n");
        molmo_hub_headers_feed(h, text, n + (text[n] == '\n'));
        text += n + (text[n] == '\n');
    }
}

/* A HEAD of an LFS file as the hub answers it, then what a CDN redirect chain looks like. */
static void test_headers(void **state) {
    molmo_hub_headers h;
    molmo_hub_headers_reset(&h);
    feed(&h, "HTTP/1.1 302 Found\r\nX-Repo-Commit: " COMMIT "\r\nETag: \"" SHA256 "\"\r\n"
             "X-Linked-Etag: \"" SHA256 "\"\r\nx-linked-size: 4265984\r\nContent-Length: 0\r\n"
             "Location: https://cdn-lfs.hf.co/repos/x?sig=1\r\n\r\n");
    assert_int_equal(h.status, 302);
    assert_string_equal(h.commit, COMMIT);
    assert_string_equal(h.etag, SHA256);
    assert_string_equal(h.linked_etag, SHA256);
    assert_int_equal(h.linked_size, 4265984);
    assert_int_equal(h.content_length, 0);
    assert_string_equal(h.location, "https://cdn-lfs.hf.co/repos/x?sig=1");
    assert_int_equal(h.bad, 0);
    /* the next response of a chain forgets the previous one */
    feed(&h, "HTTP/2 206\r\ncontent-range: bytes 100-199/200\r\nRetry-After: 7\r\n\r\n");
    assert_int_equal(h.status, 206);
    assert_int_equal(h.range_start, 100);
    assert_int_equal(h.range_total, 200);
    assert_int_equal(h.linked_size, -1);
    assert_string_equal(h.location, "");
    assert_int_equal(h.retry_after_s, 7);
    feed(&h, "HTTP/1.1 401 Unauthorized\r\nX-Error-Code: GatedRepo\r\n"
             "X-Error-Message: Access \x01restricted\r\n");
    assert_string_equal(h.error_code, "GatedRepo");
    assert_string_equal(h.error_message, "Access ?restricted");
    static const char *const bad[] = {
        "X-Linked-Size: -5", "Content-Length: 12x", "X-Repo-Commit: " SHA1 "zz",
        "ETag: \"../../etc\"", "Content-Range: bytes x-1/2", "Content-Length: 99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        molmo_hub_headers_reset(&h);
        feed(&h, "HTTP/1.1 200 OK\r\n");
        feed(&h, bad[i]);
        if (!h.bad) fail_msg("accepted \"%s\"", bad[i]);
    }
    molmo_hub_headers_reset(&h);
    feed(&h, "HTTP/1.1 200 OK\r\nContent-Range: bytes 0-9/*\r\n");
    assert_int_equal(h.bad, 0);
    assert_int_equal(h.range_total, -1);
}

static const char listing[] =
    "{\"_id\":\"x\",\"id\":\"allenai/MolmoE-1B-0924\",\"sha\":\"" COMMIT "\",\"siblings\":["
    "{\"rfilename\":\"model.safetensors\",\"blobId\":\"" SHA1 "\",\"size\":4265984,"
    "\"lfs\":{\"sha256\":\"" SHA256 "\",\"size\":4265984,\"pointerSize\":134}},"
    "{\"rfilename\":\"config.json\",\"blobId\":\"" SHA1 "\",\"size\":3535},"
    "{\"rfilename\":\"sub/a.txt\"}]}";

static void test_listing(void **state) {
    molmo_hub_listing l;
    molmo_error err;
    if (molmo_hub_parse_listing(listing, strlen(listing), "t", &l, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(l.commit, COMMIT);
    assert_int_equal(l.n_files, 3); /* sorted by name */
    assert_string_equal(l.files[0].name, "config.json");
    assert_int_equal(l.files[0].size, 3535);
    assert_string_equal(l.files[0].lfs_sha256, "");
    assert_string_equal(l.files[1].name, "model.safetensors");
    assert_string_equal(l.files[1].lfs_sha256, SHA256);
    assert_string_equal(l.files[2].name, "sub/a.txt");
    assert_int_equal(l.files[2].size, -1);
    assert_string_equal(l.files[2].blob_id, "");
    molmo_hub_listing_clear(&l);
    molmo_hub_listing_clear(NULL);
}

/* Each malformed listing is MOLMO_ERR_FORMAT naming the field. */
static void test_listing_errors(void **state) {
    static const struct { const char *json, *msg; } cases[] = {
        {"not json", "invalid JSON"},
        {"[]", "not a JSON object"},
        {"{\"siblings\":[]}", "\"sha\""},
        {"{\"sha\":\"" "2439F60EF33A0D46D85DA5001D52AEDA5B00CE9F" "\",\"siblings\":[]}", "\"sha\""},
        {"{\"sha\":\"" COMMIT "\"}", "\"siblings\""},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[1]}", "siblings[0] is not an object"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{}]}", "siblings[0].rfilename is missing"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"../../.bashrc\"}]}",
         "not a safe relative path"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"/etc/x\"}]}", "safe relative"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\"},{\"rfilename\":\"a\"}]}",
         "listed twice"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\",\"size\":-1}]}",
         "siblings[0].size"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\",\"blobId\":\"xyz\"}]}",
         "siblings[0].blobId"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\",\"lfs\":{\"sha256\":\"1\","
         "\"size\":1}}]}", "siblings[0].lfs.sha256"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\",\"lfs\":{\"sha256\":\""
         SHA256 "\"}}]}", "siblings[0].lfs.size"},
        {"{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":\"a\",\"size\":5,\"lfs\":{"
         "\"sha256\":\"" SHA256 "\",\"size\":6}}]}", "lfs.size 6"},
        {"{\"sha\":\"" COMMIT "\",\"sha\":\"" COMMIT "\",\"siblings\":[]}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_hub_listing l;
        molmo_error err;
        molmo_status s = molmo_hub_parse_listing(cases[i].json, strlen(cases[i].json), "L", &l,
                                                 &err);
        if (s != MOLMO_ERR_FORMAT) fail_msg("case %zu: status %d", i, (int)s);
        if (!strstr(err.msg, cases[i].msg) || strncmp(err.msg, "L: ", 3))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        assert_int_equal(l.n_files, 0);
        assert_null(l.files);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag),    cmocka_unit_test(test_names),
        cmocka_unit_test(test_globs),   cmocka_unit_test(test_headers),
        cmocka_unit_test(test_listing), cmocka_unit_test(test_listing_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

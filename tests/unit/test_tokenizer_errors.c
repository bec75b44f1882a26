/* test_tokenizer_errors.c — bad input never crashes and always says what is wrong:
 *   - malformed or unsupported tokenizer.json / tokenizer_config.json: the status and a message
 *     naming the field (one mutation of a small valid file per case);
 *   - a truncated real tokenizer.json on disk: the file name and line:column;
 *   - invalid UTF-8 in text to encode: the documented behaviour (U+FFFD per maximal invalid
 *     subsequence, then tokenize);
 *   - out-of-memory at every allocation of load, encode, decode, streaming and prompt building:
 *     MOLMO_ERR_NOMEM (or success), never a crash or a leak (the ASan build checks leaks).
 * (The fuzz seeds in tests/fuzz-corpus/tokenizer_fuzz/ are replayed by replay_tokenizer_fuzz.) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "io/mapfile.h"
#include "testutil.h"
#include "text/tokenizer.h"

/* A small valid tokenizer.json; each case below replaces one substring of it. */
static const char base[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":7,"
    "\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true}],\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
    "\"pattern\":{\"Regex\":\" ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,"
    "\"use_regex\":false}]},\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120ab\":4,\"c\":5,\"\\u010a\":6},"
    "\"merges\":[\"a b\",\"\\u0120 ab\"]}}";

static molmo_status load_variant(const char *from, const char *to, molmo_error *err) {
    char buf[4096];
    const char *at = strstr(base, from);
    if (!at) fail_msg("test bug: \"%s\" is not in the base file", from);
    int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    molmo_tokenizer *tok = NULL;
    molmo_status st = molmo_tokenizer_load_from_memory(buf, (size_t)n, NULL, 0, &tok, err);
    if (st == MOLMO_OK) assert_non_null(tok);
    else assert_null(tok);
    molmo_tokenizer_free(tok);
    return st;
}

static void test_malformed_tokenizer_json(void **state) {
    (void)state;
    static const struct {
        const char *from, *to;
        molmo_status st;
        const char *msg;
    } cases[] = {
        {"{\"version\"", "[\"version\"", MOLMO_ERR_FORMAT, "invalid JSON"},
        {"\"model\":{", "\"modell\":{", MOLMO_ERR_FORMAT, "\"model\" is missing"},
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", MOLMO_ERR_UNSUPPORTED,
         "model type \"WordPiece\""},
        {"\"merges\":[", "\"merges_\":[", MOLMO_ERR_FORMAT, "model.merges is missing"},
        {"\"a b\"", "\"a b c\"", MOLMO_ERR_FORMAT, "model.merges[0] \"a b c\" is not two tokens"},
        {"\"a b\"", "\"a x\"", MOLMO_ERR_FORMAT, "model.merges[0] uses \"x\""},
        {"\"a b\"", "\"b a\"", MOLMO_ERR_FORMAT, "makes a token that is not in model.vocab"},
        {"\"a b\"", "[\"a\"]", MOLMO_ERR_FORMAT, "model.merges[0] is an array"},
        {"\"a\":0", "\"a\":\"0\"", MOLMO_ERR_FORMAT, "model.vocab[\"a\"] is not an id"},
        {"\"a\":0", "\"a\":2000000", MOLMO_ERR_FORMAT, "model.vocab[\"a\"] is not an id"},
        {"\"vocab\":{", "\"vocab\":[],\"x\":{", MOLMO_ERR_FORMAT, "model.vocab is an array"},
        {"\"dropout\":null", "\"dropout\":0.1", MOLMO_ERR_UNSUPPORTED, "dropout"},
        {"\"byte_fallback\":false", "\"byte_fallback\":true", MOLMO_ERR_UNSUPPORTED,
         "byte_fallback"},
        {"\"unk_token\":null", "\"continuing_subword_prefix\":\"##\"", MOLMO_ERR_UNSUPPORTED,
         "continuing_subword_prefix"},
        {" ?\\\\p{L}+", "(", MOLMO_ERR_FORMAT, "Split pre-tokenizer: bad regex"},
        {" ?\\\\p{L}+", "\\\\w+", MOLMO_ERR_UNSUPPORTED, "Split pre-tokenizer: regex uses \\w"},
        {"\"Isolated\"", "\"Sideways\"", MOLMO_ERR_FORMAT, "no valid \"behavior\""},
        {"{\"Regex\":", "{\"Regexp\":", MOLMO_ERR_FORMAT, "pattern is neither"},
        {"{\"type\":\"NFC\"}", "{\"type\":\"NFKC\"}", MOLMO_ERR_UNSUPPORTED,
         "normalizer \"NFKC\""},
        {"{\"type\":\"Split\"", "{\"type\":\"Whitespace\"", MOLMO_ERR_UNSUPPORTED,
         "pre-tokenizer \"Whitespace\""},
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\"", "{\"type\":\"Split\",\"add_prefix_space\"",
         MOLMO_ERR_FORMAT, "Split pre-tokenizer has no valid"},
        {"\"pre_tokenizer\":{", "\"pre_tokenizer\":null,\"x\":{", MOLMO_ERR_UNSUPPORTED,
         "does not end with ByteLevel"},
        {"\"decoder\":{\"type\":\"ByteLevel\"}", "\"decoder\":{\"type\":\"WordPiece\"}",
         MOLMO_ERR_UNSUPPORTED, "decoder is not ByteLevel"},
        {"\"lstrip\":false", "\"lstrip\":true", MOLMO_ERR_UNSUPPORTED,
         "added_tokens[0] (\"<|endoftext|>\") uses lstrip"},
        {",\"special\":true", "", MOLMO_ERR_FORMAT, "\"special\" is missing"},
        {"{\"id\":7,", "{\"id\":-7,", MOLMO_ERR_FORMAT, "has no valid \"id\""},
        {"\"content\":\"<|endoftext|>\"", "\"content\":5", MOLMO_ERR_FORMAT,
         "added_tokens[0].content is a number"},
        {"\"1.0\"", "\"2.0\"", MOLMO_ERR_UNSUPPORTED, "version"},
        {"\"truncation\":null", "\"truncation\":{}", MOLMO_ERR_UNSUPPORTED, "\"truncation\""},
        {"\"use_regex\":false}]}", "\"use_regex\":false},{\"type\":\"Split\"}]}",
         MOLMO_ERR_UNSUPPORTED, "after ByteLevel"},
        {"\"added_tokens\":[", "\"added_tokens\":{\"x\":[", MOLMO_ERR_FORMAT, "invalid JSON"},
    };
    molmo_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_status st = load_variant(cases[i].from, cases[i].to, &err);
        if (st != cases[i].st || !strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: got %s \"%s\", want %s containing \"%s\"", i,
                     molmo_status_str(st), st ? err.msg : "", molmo_status_str(cases[i].st),
                     cases[i].msg);
        assert_non_null(strstr(err.msg, "tokenizer.json"));
    }
    assert_int_equal(load_variant("\"version\"", "\"version\"", &err), MOLMO_OK);
    print_message("%zu malformed or unsupported tokenizer.json variants rejected with their "
                  "field named\n", sizeof cases / sizeof cases[0]);
}

static void test_bad_config(void **state) {
    (void)state;
    static const struct {
        const char *config;
        molmo_status st;
        const char *msg;
    } cases[] = {{"{\"eos_token\": \"<|nope|>\"}", MOLMO_ERR_FORMAT, "eos_token \"<|nope|>\""},
                 {"{\"eos_token\": 5}", MOLMO_ERR_FORMAT, "\"eos_token\" is a number"},
                 {"{\"pad_token\": {\"content\": 1}}", MOLMO_ERR_FORMAT, "\"pad_token\""},
                 {"{\"eos_token\": ", MOLMO_ERR_FORMAT, "tokenizer_config.json:1:15"},
                 {"[]", MOLMO_ERR_FORMAT, "top level is not an object"},
                 {"{\"eos_token\": {\"content\": \"<|endoftext|>\"}, \"clean_up_tokenization_"
                  "spaces\": true}", MOLMO_OK, ""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_tokenizer *tok = NULL;
        molmo_error err = {0};
        molmo_status st = molmo_tokenizer_load_from_memory(base, strlen(base), cases[i].config,
                                                           strlen(cases[i].config), &tok, &err);
        if (st != cases[i].st || !strstr(err.msg, cases[i].msg))
            fail_msg("config case %zu: got %s \"%s\"", i, molmo_status_str(st), err.msg);
        if (st == MOLMO_OK) {
            molmo_tokenizer_info info;
            molmo_tokenizer_get_info(tok, &info);
            assert_int_equal(info.eos_id, 7);
            assert_int_equal(info.clean_up_spaces, 1);
        }
        molmo_tokenizer_free(tok);
    }
}

static void test_truncated_file(void **state) {
    (void)state;
    char path[1024], tmp[] = "/tmp/molmo_tok_trunc_XXXXXX", file[1100];
    assert_non_null(mkdtemp(tmp));
    FILE *in = fopen(tu_data_path(path, sizeof path, "tokenizers/qwen2-molmo/tokenizer.json"),
                     "rb");
    snprintf(file, sizeof file, "%s/tokenizer.json", tmp);
    FILE *out = fopen(file, "wb");
    char buf[5000];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    assert_int_equal(molmo_tokenizer_load(tmp, &tok, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, file));
    assert_non_null(strstr(err.msg, ": invalid JSON: "));
    print_message("truncated file: %s\n", err.msg);
    unlink(file);
    rmdir(tmp);
}

/* ---- BPE options the fixtures do not use -- */

static void encode_variant(const char *from, const char *to, const char *text, int32_t *ids,
                           size_t *n) {
    char buf[4096];
    const char *at = strstr(base, from);
    assert_non_null(at);
    int len = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, to,
                       at + strlen(from));
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    if (molmo_tokenizer_load_from_memory(buf, (size_t)len, NULL, 0, &tok, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(molmo_tokenizer_encode(tok, text, strlen(text), ids, 16, n, &err), MOLMO_OK);
    molmo_tokenizer_free(tok);
}

static void test_model_options(void **state) {
    (void)state;
    int32_t ids[16];
    size_t n;
    /* "ba" is a vocabulary entry no merge builds: only ignore_merges gives it whole */
    encode_variant("\"c\":5", "\"c\":5,\"ba\":8", "ba", ids, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 0);
    encode_variant("\"c\":5", "\"c\":5,\"ba\":8},\"ignore_merges\":true,\"x\":{\"y\":0",
                   "ba", ids, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 8);
    /* bytes without a token: dropped without unk_token (as the reference), else unk, fused
     * into one with fuse_unk */
    encode_variant("\"unk_token\":null", "\"unk_token\":null", "bzza", ids, &n);
    assert_int_equal(n, 2); /* b, a (no "b a" merge) */
    encode_variant("\"unk_token\":null", "\"unk_token\":\"c\"", "bzza", ids, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 5);
    encode_variant("\"unk_token\":null", "\"unk_token\":\"c\",\"fuse_unk\":true", "bzza", ids,
                   &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 5);
}

/* ---- invalid UTF-8 in the text -- */

static void test_invalid_utf8_text(void **state) {
    (void)state;
    char path[1024];
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    assert_int_equal(molmo_tokenizer_load(tu_data_path(path, sizeof path, "tokenizers/qwen2-molmo"),
                                          &tok, &err), MOLMO_OK);
    static const struct {
        const char *bad, *same_as;
    } cases[] = {{"caf\xC3 ok", "caf\xEF\xBF\xBD ok"},
                 {"x\xFF\xFEy", "x\xEF\xBF\xBD\xEF\xBF\xBDy"},
                 {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
                 {"end\xF0\x9F\x98", "end\xEF\xBF\xBD"},
                 {"\xC0\xAFpath", "\xEF\xBF\xBD\xEF\xBF\xBDpath"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t a[64], b[64];
        size_t na, nb;
        assert_int_equal(molmo_tokenizer_encode(tok, cases[i].bad, strlen(cases[i].bad), a, 64,
                                                &na, &err), MOLMO_OK);
        assert_int_equal(molmo_tokenizer_encode(tok, cases[i].same_as, strlen(cases[i].same_as),
                                                b, 64, &nb, &err), MOLMO_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
        char out[128];
        size_t len;
        assert_int_equal(molmo_tokenizer_decode(tok, a, na, 0, out, sizeof out, &len, &err),
                         MOLMO_OK);
        assert_int_equal(len, strlen(cases[i].same_as));
        assert_memory_equal(out, cases[i].same_as, len);
    }
    molmo_tokenizer_free(tok);
}

/* ---- out of memory -- */

/* Runs fn with the n-th allocation failing, for n = 0, 1, ... until it succeeds; each run must
 * return MOLMO_OK or MOLMO_ERR_NOMEM. Returns the number of failure points tried. */
static long oom_sweep(molmo_status (*fn)(void *), void *user, const char *what) {
    for (long n = 0;; n++) {
        molmo_alloc_fail_after(n);
        molmo_status st = fn(user);
        molmo_alloc_fail_after(-1);
        if (st == MOLMO_OK) return n;
        if (st != MOLMO_ERR_NOMEM)
            fail_msg("%s: allocation %ld failing gave %s", what, n, molmo_status_str(st));
        if (n > 100000) fail_msg("%s never succeeds", what);
    }
}

typedef struct oom_ctx {
    const char *json, *config;
    size_t json_n, config_n;
    const molmo_tokenizer *tok;
} oom_ctx;

static molmo_status oom_load(void *u) {
    oom_ctx *c = u;
    molmo_tokenizer *tok = NULL;
    molmo_status st =
        molmo_tokenizer_load_from_memory(c->json, c->json_n, c->config, c->config_n, &tok, NULL);
    molmo_tokenizer_free(tok);
    return st;
}

static const char oom_text[] = "Hello, world! It's 2024.\n\n  caf\xC3\xA9 e\xCC\x81 \xE4\xB8\xAD "
                               "<|endoftext|> \xF0\x9F\x98\x80 aaaaaaaaaaaaaaaaaaaaaaaa\xFF";

static molmo_status oom_encode_decode(void *u) {
    oom_ctx *c = u;
    molmo_tok_ids ids = {0};
    molmo_tok_bytes out = {0};
    molmo_detokenizer *d = NULL;
    molmo_status st = molmo_tok_encode_ex(c->tok, oom_text, sizeof oom_text - 1, 0, &ids, NULL,
                                          NULL, NULL);
    if (st == MOLMO_OK)
        st = molmo_tok_decode_append(c->tok, ids.v, ids.n, MOLMO_DECODE_CLEANUP, &out, NULL);
    if (st == MOLMO_OK) st = molmo_detokenizer_create(c->tok, MOLMO_DECODE_CLEANUP, &d, NULL);
    for (size_t i = 0; st == MOLMO_OK && i <= ids.n; i++) {
        const char *t;
        size_t len;
        st = i < ids.n ? molmo_detokenizer_push(d, ids.v[i], &t, &len, NULL)
                       : molmo_detokenizer_flush(d, &t, &len, NULL);
    }
    const char *msgs[] = {"q1", "a1", "q2"};
    if (st == MOLMO_OK) st = molmo_tok_prompt_append(c->tok, msgs, NULL, 3, &ids, NULL);
    molmo_detokenizer_free(d);
    molmo_tok_ids_free(&ids);
    molmo_tok_bytes_free(&out);
    return st;
}

static void test_out_of_memory(void **state) {
    (void)state;
    char path[1024];
    oom_ctx c = {0};
    char *json = NULL, *config = NULL;
    molmo_error err;
    assert_int_equal(molmo_read_file(tu_data_path(path, sizeof path,
                                                  "models/olmoe/tokenizer.json"), 1 << 20, &json,
                                     &c.json_n, &err), MOLMO_OK);
    assert_int_equal(molmo_read_file(tu_data_path(path, sizeof path,
                                                  "models/olmoe/tokenizer_config.json"), 1 << 20,
                                     &config, &c.config_n, &err), MOLMO_OK);
    c.json = json;
    c.config = config;
    long n_load = oom_sweep(oom_load, &c, "load");
    molmo_tokenizer *tok = NULL;
    assert_int_equal(molmo_tokenizer_load_from_memory(json, c.json_n, config, c.config_n, &tok,
                                                      &err), MOLMO_OK);
    c.tok = tok;
    long n_use = oom_sweep(oom_encode_decode, &c, "encode/decode/stream/prompt");
    print_message("out of memory at each of %ld allocations of load and %ld of "
                  "encode/decode/stream/prompt: NOMEM every time, no crash\n", n_load, n_use);
    assert_true(n_load > 10 && n_use > 10);
    molmo_tokenizer_free(tok);
    molmo_free(json);
    molmo_free(config);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_tokenizer_json),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_model_options),
        cmocka_unit_test(test_invalid_utf8_text),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_tokenizer_prompt.c — Molmo prompts and the public tokenizer API:
 *   - every golden (tests/data/golden/<model>/<case>.json): input_ids = [EOS] + image tokens +
 *     molmo_tokenizer_encode_prompt(messages) (text-only cases: exactly [EOS] + text ids; the
 *     image block must consist of exactly num_image_tokens image-token ids); the image-token
 *     and EOS ids the lead needs come out of the lookups; generated_ids decode to
 *     generated_text (skip special, config clean-up) in batch and streaming;
 *   - the buffer protocol of encode/decode/prompt, info and lookups of the real tokenizers,
 *     loading by directory, by file, by Hugging Face repo id, and the errors for bad calls. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static molmo_tokenizer *load(const char *rel) {
    char path[1024];
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    if (molmo_tokenizer_load(tu_data_path(path, sizeof path, rel), &tok, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    return tok;
}

static int32_t id_of(const molmo_tokenizer *tok, const char *s) {
    return molmo_tokenizer_token_to_id(tok, s, strlen(s));
}

/* Decodes ids with flags, batch and streaming; both must equal want. */
static void check_decoded(const molmo_tokenizer *tok, const int32_t *ids, size_t n,
                          unsigned flags, const char *want, size_t want_n, const char *what) {
    char out[4096];
    size_t len;
    molmo_error err;
    assert_int_equal(molmo_tokenizer_decode(tok, ids, n, flags, out, sizeof out, &len, &err),
                     MOLMO_OK);
    if (len != want_n || memcmp(out, want, len) != 0)
        fail_msg("%s: decoded \"%.*s\", want \"%.*s\"", what, (int)len, out, (int)want_n, want);
    molmo_detokenizer *d;
    assert_int_equal(molmo_detokenizer_create(tok, flags, &d, &err), MOLMO_OK);
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t tl;
        assert_int_equal(i < n ? molmo_detokenizer_push(d, ids[i], &t, &tl, &err)
                               : molmo_detokenizer_flush(d, &t, &tl, &err),
                         MOLMO_OK);
        assert_true(k + tl <= sizeof out);
        memcpy(out + k, t, tl);
        k += tl;
    }
    molmo_detokenizer_free(d);
    if (k != want_n || memcmp(out, want, k) != 0) fail_msg("%s: streaming differs", what);
}

static void check_golden(const char *model, const char *case_name, size_t *n_text_only) {
    json_t *g = tu_golden_json(model, case_name);
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    molmo_tokenizer *tok = load(rel);
    molmo_tokenizer_info info;
    assert_int_equal(molmo_tokenizer_get_info(tok, &info), MOLMO_OK);

    json_t *msgs = json_object_get(g, "messages"), *want = json_object_get(g, "input_ids");
    size_t n_msgs = json_array_size(msgs), L = json_array_size(want);
    const char *m[16];
    size_t lens[16];
    assert_true(n_msgs >= 1 && n_msgs <= 16);
    for (size_t i = 0; i < n_msgs; i++) {
        m[i] = json_string_value(json_array_get(msgs, i));
        lens[i] = json_string_length(json_array_get(msgs, i));
    }
    int32_t ids[4096];
    size_t n;
    molmo_error err;
    assert_int_equal(molmo_tokenizer_encode_prompt(tok, m, lens, n_msgs, ids, 4096, &n, &err),
                     MOLMO_OK);

    /* BOS = EOS first, then image tokens, then our text ids */
    assert_int_equal(info.eos_id, json_integer_value(json_object_get(g, "eos_token_id")));
    assert_int_equal(info.eos_id, json_integer_value(json_object_get(g, "bos_token_id")));
    assert_int_equal(json_integer_value(json_array_get(want, 0)), info.eos_id);
    assert_true(n + 1 <= L);
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, L - n + i)) != ids[i])
            fail_msg("%s/%s: text id %zu is %d, golden %lld", model, case_name, i, ids[i],
                     json_integer_value(json_array_get(want, L - n + i)));
    json_t *img = json_object_get(g, "image_token_ids");
    const char *key;
    json_t *v;
    json_object_foreach(img, key, v) assert_int_equal(id_of(tok, key), json_integer_value(v));
    json_t *nimg = json_object_get(g, "num_image_tokens");
    size_t n_image = L - n - 1;
    if (json_is_null(json_object_get(g, "image"))) {
        assert_int_equal(n_image, 0); /* text only: exactly [EOS] + text */
        (*n_text_only)++;
    } else {
        assert_int_equal(n_image, json_integer_value(nimg));
        for (size_t i = 1; i < L - n; i++) {
            int32_t t = (int32_t)json_integer_value(json_array_get(want, i));
            assert_true(t == id_of(tok, "<im_start>") || t == id_of(tok, "<im_end>") ||
                        t == id_of(tok, "<im_patch>") || t == id_of(tok, "<im_col>"));
        }
    }
    /* the generated tokens decode to the recorded texts */
    json_t *gen = json_object_get(g, "generated_ids");
    int32_t gids[512];
    size_t ng = json_array_size(gen);
    assert_true(ng <= 512);
    for (size_t i = 0; i < ng; i++) gids[i] = (int32_t)json_integer_value(json_array_get(gen, i));
    json_t *t1 = json_object_get(g, "generated_text");
    json_t *t2 = json_object_get(g, "generated_text_with_special_tokens");
    check_decoded(tok, gids, ng, MOLMO_DECODE_SKIP_SPECIAL, json_string_value(t1),
                  json_string_length(t1), "generated_text");
    check_decoded(tok, gids, ng, 0, json_string_value(t2), json_string_length(t2),
                  "generated_text_with_special_tokens");
    molmo_tokenizer_free(tok);
    json_decref(g);
}

static void test_goldens(void **state) {
    (void)state;
    char dir[1024];
    DIR *models = opendir(tu_data_path(dir, sizeof dir, "golden"));
    assert_non_null(models);
    struct dirent *e;
    size_t count = 0, text_only = 0;
    while ((e = readdir(models))) {
        if (e->d_name[0] == '.') continue;
        char sub[1200];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *cases = opendir(sub);
        struct dirent *c;
        while (cases && (c = readdir(cases))) {
            size_t nl = strlen(c->d_name);
            if (nl < 6 || strcmp(c->d_name + nl - 5, ".json") != 0) continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(nl - 5), c->d_name);
            check_golden(e->d_name, name, &text_only);
            count++;
        }
        if (cases) closedir(cases);
    }
    closedir(models);
    print_message("%zu golden prompts reproduced (%zu text-only, whole input_ids)\n", count,
                  text_only);
    assert_int_equal(count, 14);
    assert_int_equal(text_only, 3);
}

/* ---- the real tokenizers' special ids ------------------------------------------------------ */

static void test_info_and_lookups(void **state) {
    (void)state;
    static const struct {
        const char *dir;
        int32_t n_vocab, n_added, eos, pad, im_start, image, the;
        int cleanup;
    } want[] = {{"tokenizers/qwen2-molmo", 152069, 426, 151643, 151643, 152064, 152068, 279, 0},
                {"tokenizers/molmoe-1b", 50285, 33, 50279, 1, 50280, 50284, 253, 1},
                {"tokenizers/dolma2-like", 100283, 27, 100257, 100277, 100278, 100282, 279, 0},
                {"tokenizers/gpt2", 50257, 1, 50256, -1, -1, -1, 262, 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        molmo_tokenizer *tok = load(want[i].dir);
        molmo_tokenizer_info info;
        assert_int_equal(molmo_tokenizer_get_info(tok, &info), MOLMO_OK);
        assert_int_equal(info.n_vocab, want[i].n_vocab);
        assert_int_equal(info.n_added, want[i].n_added);
        assert_int_equal(info.eos_id, want[i].eos);
        assert_int_equal(info.pad_id, want[i].pad);
        assert_int_equal(info.clean_up_spaces, want[i].cleanup);
        assert_non_null(strstr(info.path, "tokenizer.json"));
        assert_int_equal(id_of(tok, "<im_start>"), want[i].im_start);
        assert_int_equal(id_of(tok, "<|image|>"), want[i].image);
        if (want[i].im_start >= 0) {
            size_t len;
            const char *s = molmo_tokenizer_id_to_token(tok, want[i].im_start + 2, &len);
            assert_int_equal(len, 10);
            assert_memory_equal(s, "<im_patch>", 10);
            assert_true(molmo_tokenizer_is_special(tok, want[i].im_start + 2));
        }
        assert_int_equal(id_of(tok, "\xC4\xA0the"), want[i].the); /* "Ġthe" */
        assert_null(molmo_tokenizer_id_to_token(tok, -1, NULL));
        assert_null(molmo_tokenizer_id_to_token(tok, info.n_vocab, NULL));
        assert_false(molmo_tokenizer_is_special(tok, 0));
        molmo_tokenizer_free(tok);
    }
}

/* ---- buffer protocol ------------------------------------------------------------------------ */

static void test_buffers(void **state) {
    (void)state;
    molmo_tokenizer *tok = load("tokenizers/gpt2");
    molmo_error err;
    size_t n;
    int32_t ids[64];
    static const char text[] = "Hello world, it's a test.";
    assert_int_equal(molmo_tokenizer_encode(tok, text, strlen(text), NULL, 0, &n, &err),
                     MOLMO_OK);
    assert_int_equal(n, 8);
    assert_int_equal(molmo_tokenizer_encode(tok, text, strlen(text), ids, 3, &n, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(n, 8);
    assert_non_null(strstr(err.msg, "holds 3 ids, 8 needed"));
    assert_int_equal(molmo_tokenizer_encode(tok, text, strlen(text), ids, 8, &n, &err), MOLMO_OK);
    assert_int_equal(ids[0], 15496); /* "Hello" */
    char out[64];
    size_t len;
    assert_int_equal(molmo_tokenizer_decode(tok, ids, n, 0, NULL, 0, &len, &err), MOLMO_OK);
    assert_int_equal(len, strlen(text));
    assert_int_equal(molmo_tokenizer_decode(tok, ids, n, 0, out, len, &len, &err),
                     MOLMO_ERR_INVALID_ARG); /* no room for the NUL */
    assert_int_equal(molmo_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len, &err),
                     MOLMO_OK);
    assert_string_equal(out, text);
    /* ids without a token are dropped, as the reference does */
    int32_t odd[] = {-5, 15496, 999999, 995};
    assert_int_equal(molmo_tokenizer_decode(tok, odd, 4, 0, out, sizeof out, &len, &err),
                     MOLMO_OK);
    assert_string_equal(out, "Hello world");
    /* bad calls */
    assert_int_equal(molmo_tokenizer_encode(NULL, text, 1, ids, 8, &n, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_tokenizer_encode(tok, NULL, 1, ids, 8, &n, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_tokenizer_encode(tok, "", 0, NULL, 0, &n, &err), MOLMO_OK);
    assert_int_equal(n, 0);
    assert_int_equal(molmo_tokenizer_encode_prompt(tok, NULL, NULL, 0, ids, 8, &n, &err),
                     MOLMO_ERR_INVALID_ARG);
    const char *two[] = {"q", "a"};
    assert_int_equal(molmo_tokenizer_encode_prompt(tok, two, NULL, 2, ids, 64, &n, &err),
                     MOLMO_OK);
    assert_int_equal(ids[n - 1], 50256); /* EOS after the assistant turn */
    assert_int_equal(molmo_tokenizer_encode_prompt(tok, two, NULL, 2, ids, 2, &n, &err),
                     MOLMO_ERR_INVALID_ARG);
    molmo_tokenizer_free(NULL);
    molmo_detokenizer_free(NULL);
    molmo_tokenizer_free(tok);
}

/* ---- where tokenizers come from -------------------------------------------------------------- */

static void test_load_paths(void **state) {
    (void)state;
    char path[1024], tmp[] = "/tmp/molmo_tok_hub_XXXXXX", p2[2048];
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    /* a tokenizer.json file, a directory, a model directory */
    tu_data_path(path, sizeof path, "tokenizers/gpt2/tokenizer.json");
    assert_int_equal(molmo_tokenizer_load(path, &tok, &err), MOLMO_OK);
    molmo_tokenizer_info info;
    molmo_tokenizer_get_info(tok, &info);
    assert_int_equal(info.eos_id, 50256); /* the config beside the file was read */
    molmo_tokenizer_free(tok);
    tu_data_path(path, sizeof path, "models/olmoe");
    assert_int_equal(molmo_tokenizer_load(path, &tok, &err), MOLMO_OK);
    molmo_tokenizer_free(tok);
    /* no tokenizer.json */
    tu_data_path(path, sizeof path, "images");
    assert_int_equal(molmo_tokenizer_load(path, &tok, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no tokenizer.json"));
    assert_null(tok);
    assert_int_equal(molmo_tokenizer_load("/nonexistent/x", &tok, &err), MOLMO_ERR_NOT_FOUND);
    /* a Hugging Face repo id, resolved in $HF_HUB_CACHE */
    assert_non_null(mkdtemp(tmp));
    snprintf(p2, sizeof p2, "%s/models--acme--tiny", tmp);
    mkdir(p2, 0700);
    snprintf(p2, sizeof p2, "%s/models--acme--tiny/refs", tmp);
    mkdir(p2, 0700);
    snprintf(p2, sizeof p2, "%s/models--acme--tiny/refs/main", tmp);
    FILE *f = fopen(p2, "w");
    fputs("abc123\n", f);
    fclose(f);
    snprintf(p2, sizeof p2, "%s/models--acme--tiny/snapshots", tmp);
    mkdir(p2, 0700);
    snprintf(p2, sizeof p2, "%s/models--acme--tiny/snapshots/abc123", tmp);
    tu_data_path(path, sizeof path, "models/qwen2");
    assert_int_equal(symlink(path, p2), 0);
    setenv("HF_HUB_CACHE", tmp, 1);
    assert_int_equal(molmo_tokenizer_load("acme/tiny", &tok, &err), MOLMO_OK);
    molmo_tokenizer_get_info(tok, &info);
    assert_int_equal(info.eos_id, 956);
    molmo_tokenizer_free(tok);
    unlink(p2);
    unsetenv("HF_HUB_CACHE");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_info_and_lookups),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_load_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

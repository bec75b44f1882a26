/* test_tokenizer.c — every case of every tokenizer fixture (tests/data/tokenizers/NAME/):
 *   cases.jsonl         ids, token strings, pre-tokenizer pieces, decoded text (plain, skipping
 *                       special tokens, with clean-up) — fast path and reference path;
 *   decode_cases.jsonl  decoded text for id lists that build and break UTF-8 sequences;
 * and the streaming detokenizer on all of them (pieces must concatenate to the batch decode and
 * never split a UTF-8 character). Expected values come from Hugging Face `tokenizers` 0.23.2.
 * Every mismatch is counted and the first few are printed; the test fails on any. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "text/tokenizer.h"

typedef struct lines {
    json_t **v;
    size_t n;
} lines;

static lines read_jsonl(const char *rel) {
    char path[1024];
    tu_data_path(path, sizeof path, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    lines L = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
        if (!j) fail_msg("%s: %s", path, je.text);
        L.v = realloc(L.v, (L.n + 1) * sizeof *L.v);
        L.v[L.n++] = j;
    }
    free(line);
    fclose(f);
    return L;
}

static void free_lines(lines *L) {
    for (size_t i = 0; i < L->n; i++) json_decref(L->v[i]);
    free(L->v);
}

/* Prints a string with escapes, for failure messages. */
static void show(const char *label, const char *s, size_t n) {
    char buf[400];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < sizeof buf; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02X", c);
        else buf[k++] = (char)c;
    }
    buf[k] = '\0';
    print_message("    %s: \"%s\"%s\n", label, buf, k + 8 >= sizeof buf ? "..." : "");
}

static void show_ids(const char *label, const int32_t *v, size_t n) {
    char buf[400];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 16 < sizeof buf; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%d", i ? "," : "", v[i]);
    print_message("    %s: [%s]\n", label, buf);
}

static int ids_match(json_t *arr, const int32_t *v, size_t n) {
    if (json_array_size(arr) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, i)) != v[i]) return 0;
    return 1;
}

static void json_ids(json_t *arr, molmo_tok_ids *out) {
    out->n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++)
        molmo_tok_ids_push(out, (int32_t)json_integer_value(json_array_get(arr, i)));
}

static int str_match(json_t *s, const char *p, size_t n) {
    return json_is_string(s) && json_string_length(s) == n &&
           memcmp(json_string_value(s), p, n) == 0;
}

/* ---- pieces as the reference shows them (byte-level alphabet; added tokens literally) ---- */

typedef struct piece_log {
    molmo_tok_bytes all; /* pieces, each followed by a 0x01 separator */
    size_t count;
} piece_log;

static void on_piece(void *user, const char *s, size_t n, int32_t added_id) {
    piece_log *pl = user;
    if (added_id >= 0) {
        molmo_tok_bytes_append(&pl->all, s, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            char c[2];
            molmo_tok_bytes_append(&pl->all, c, molmo_tok_byte_char((unsigned char)s[i], c));
        }
    }
    molmo_tok_bytes_append(&pl->all, "\x01", 1);
    pl->count++;
}

static int pieces_match(json_t *arr, const piece_log *pl) {
    if (json_array_size(arr) != pl->count) return 0;
    const char *p = pl->all.p;
    for (size_t i = 0; i < pl->count; i++) {
        const char *end = memchr(p, 1, pl->all.n - (size_t)(p - pl->all.p));
        if (!str_match(json_array_get(arr, i), p, (size_t)(end - p))) return 0;
        p = end + 1;
    }
    return 1;
}

/* ---- streaming ------------------------------------------------------------------------------ */

/* Streams ids through a detokenizer; returns 1 when every chunk is whole UTF-8 and the chunks
 * concatenate to the batch decode. */
static int stream_ok(const molmo_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                     const char *want, size_t want_n) {
    molmo_detokenizer *d = NULL;
    molmo_error err;
    assert_int_equal(molmo_detokenizer_create(tok, flags, &d, &err), MOLMO_OK);
    molmo_tok_bytes got = {0};
    int ok = 1;
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t len;
        molmo_status st = i < n ? molmo_detokenizer_push(d, ids[i], &t, &len, &err)
                                : molmo_detokenizer_flush(d, &t, &len, &err);
        assert_int_equal(st, MOLMO_OK);
        if (molmo_tok_utf8_valid_prefix(t, len) != len) ok = 0;
        molmo_tok_bytes_append(&got, t, len);
    }
    if (got.n != want_n || memcmp(got.p ? got.p : "", want, want_n) != 0) ok = 0;
    molmo_tok_bytes_free(&got);
    molmo_detokenizer_free(d);
    return ok;
}

/* ---- checks -- */

typedef struct tally {
    size_t cases, ids, ref_ids, tokens, pieces, decoded, skip, cleanup, stream;
    int shown;
} tally;

static void miss(tally *t, size_t *counter, const char *what, json_t *c) {
    (*counter)++;
    if (t->shown++ < 6) {
        json_t *text = json_object_get(c, "text");
        print_message("  mismatch (%s):\n", what);
        if (text) show("text", json_string_value(text), json_string_length(text));
        else show("note", json_string_value(json_object_get(c, "note")),
                  json_string_length(json_object_get(c, "note")));
    }
}

static void check_decode(const molmo_tokenizer *tok, json_t *c, const int32_t *ids, size_t n,
                         tally *t) {
    static const struct {
        const char *key;
        unsigned flags;
    } modes[] = {{"decoded", MOLMO_DECODE_NO_CLEANUP},
                 {"decoded_skip_special", MOLMO_DECODE_SKIP_SPECIAL | MOLMO_DECODE_NO_CLEANUP},
                 {"decoded_cleanup", MOLMO_DECODE_CLEANUP}};
    size_t *counters[] = {&t->decoded, &t->skip, &t->cleanup};
    for (int m = 0; m < 3; m++) {
        json_t *want = json_object_get(c, modes[m].key);
        if (!want) continue;
        molmo_tok_bytes out = {0};
        molmo_error err;
        assert_int_equal(molmo_tok_decode_append(tok, ids, n, modes[m].flags, &out, &err),
                         MOLMO_OK);
        if (!str_match(want, out.p, out.n)) {
            miss(t, counters[m], modes[m].key, c);
            if (t->shown <= 6) show("got", out.p, out.n);
        }
        if (!stream_ok(tok, ids, n, modes[m].flags, json_string_value(want),
                       json_string_length(want)))
            miss(t, &t->stream, modes[m].key, c);
        molmo_tok_bytes_free(&out);
    }
}

static void check_case(const molmo_tokenizer *tok, json_t *c, tally *t) {
    json_t *text = json_object_get(c, "text");
    const char *s = json_string_value(text);
    size_t n = json_string_length(text);
    molmo_tok_ids ids = {0}, ref = {0};
    piece_log pl = {0};
    molmo_error err;
    t->cases++;
    assert_int_equal(molmo_tok_encode_ex(tok, s, n, 0, &ids, on_piece, &pl, &err), MOLMO_OK);
    assert_int_equal(molmo_tok_encode_ex(tok, s, n, MOLMO_TOK_ENC_REFERENCE, &ref, NULL, NULL,
                                         &err), MOLMO_OK);
    json_t *want = json_object_get(c, "ids");
    if (!ids_match(want, ids.v, ids.n)) {
        miss(t, &t->ids, "ids", c);
        if (t->shown <= 6) show_ids("got", ids.v, ids.n);
    }
    if (!ids_match(want, ref.v, ref.n)) miss(t, &t->ref_ids, "reference-path ids", c);
    json_t *toks = json_object_get(c, "tokens");
    int tok_ok = json_array_size(toks) == ids.n;
    for (size_t i = 0; tok_ok && i < ids.n; i++) {
        size_t len;
        const char *ts = molmo_tokenizer_id_to_token(tok, ids.v[i], &len);
        tok_ok = ts && str_match(json_array_get(toks, i), ts, len);
    }
    if (!tok_ok) miss(t, &t->tokens, "tokens", c);
    if (!pieces_match(json_object_get(c, "pieces"), &pl)) miss(t, &t->pieces, "pieces", c);
    /* Decode the expected ids, so a decode bug is not hidden behind an encode bug. */
    json_ids(want, &ref);
    check_decode(tok, c, ref.v, ref.n, t);
    molmo_tok_ids_free(&ids);
    molmo_tok_ids_free(&ref);
    molmo_tok_bytes_free(&pl.all);
}

static double now_ms(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void run_fixture(const char *dir) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tokenizers/%s", dir);
    tu_data_path(path, sizeof path, rel);
    molmo_tokenizer *tok = NULL;
    molmo_error err = {0};
    double t0 = now_ms();
    if (molmo_tokenizer_load(path, &tok, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    double load_ms = now_ms() - t0;
    tally t = {0};
    snprintf(rel, sizeof rel, "tokenizers/%s/cases.jsonl", dir);
    lines L = read_jsonl(rel);
    for (size_t i = 0; i < L.n; i++) check_case(tok, L.v[i], &t);
    free_lines(&L);
    snprintf(rel, sizeof rel, "tokenizers/%s/decode_cases.jsonl", dir);
    lines D = read_jsonl(rel);
    molmo_tok_ids ids = {0};
    for (size_t i = 0; i < D.n; i++) {
        json_ids(json_object_get(D.v[i], "ids"), &ids);
        check_decode(tok, D.v[i], ids.v, ids.n, &t);
    }
    molmo_tok_ids_free(&ids);
    print_message("%s: loaded in %.0f ms; %zu encode cases, %zu decode cases; mismatches: ids %zu, "
                  "reference ids %zu, tokens %zu, pieces %zu, decoded %zu, skip-special %zu, "
                  "cleanup %zu, streaming %zu\n",
                  dir, load_ms, t.cases, D.n, t.ids, t.ref_ids, t.tokens, t.pieces, t.decoded,
                  t.skip, t.cleanup, t.stream);
    free_lines(&D);
    molmo_tokenizer_free(tok);
    assert_true(t.cases > 300);
    assert_int_equal(t.ids + t.ref_ids + t.tokens + t.pieces + t.decoded + t.skip + t.cleanup +
                         t.stream,
                     0);
}

static void test_qwen2(void **state) {
    (void)state;
    run_fixture("qwen2-molmo");
}
static void test_qwen2_array_merges(void **state) {
    (void)state;
    run_fixture("qwen2-molmo-arraymerges");
}
static void test_gpt2(void **state) {
    (void)state;
    run_fixture("gpt2");
}
static void test_molmoe(void **state) {
    (void)state;
    run_fixture("molmoe-1b");
}
static void test_dolma2(void **state) {
    (void)state;
    run_fixture("dolma2-like");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen2),  cmocka_unit_test(test_qwen2_array_merges),
        cmocka_unit_test(test_gpt2),   cmocka_unit_test(test_molmoe),
        cmocka_unit_test(test_dolma2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

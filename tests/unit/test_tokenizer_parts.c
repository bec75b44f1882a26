/* test_tokenizer_parts.c — each fast part of the tokenizer against its reference, and the small
 * parts on their own:
 *   - the hand-written regex scanners vs PCRE2 (every fixture text + 30000 random strings per
 *     pattern), and their \p{L} / \p{N} table vs PCRE2 for every code point;
 *   - the NFC quick path vs utf8proc on everything (random strings of tricky characters);
 *   - BPE (array, heap, cache) vs the literal quadratic rule (random pieces up to 700 bytes);
 *   - lossy UTF-8 decoding (maximal subparts), the JSON reader, the regex translation,
 *     clean-up patterns, and the streaming clean-up on random token sequences;
 *   - one tokenizer used by 4 threads at once gives the single-thread ids and text. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "testutil.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"
#include "text/tokenizer_regex.h"
#include "text/tokenizer_scan.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static size_t put_cp(char *o, uint32_t cp) {
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
}

/* A random string over `alpha` (code points), up to max_chars characters. */
static size_t random_text(char *out, const uint32_t *alpha, size_t n_alpha, size_t max_chars) {
    size_t k = 0, len = rnd((uint32_t)max_chars + 1);
    for (size_t i = 0; i < len; i++) k += put_cp(out + k, alpha[rnd((uint32_t)n_alpha)]);
    return k;
}

static molmo_tokenizer *load_fixture(const char *dir) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tokenizers/%s", dir);
    molmo_tokenizer *tok = NULL;
    molmo_error err;
    if (molmo_tokenizer_load(tu_data_path(path, sizeof path, rel), &tok, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    return tok;
}

/* ---- scanners vs PCRE2 ------------------------------------------------------------------- */

static const char *const patterns[3] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};

/* 1 when the scanner and PCRE2 split s identically; prints the first difference. */
static int same_matches(const molmo_tok_regex *re, const molmo_tok_regex_scratch *sc,
                        const char *s, size_t n) {
    molmo_tok_match_iter a, b;
    molmo_tok_match_begin(&a, sc, s, n, 0);
    molmo_tok_match_begin(&b, sc, s, n, 1);
    for (;;) {
        size_t as = 0, ae = 0, bs = 0, be = 0;
        int ra = molmo_tok_match_next(re, &a, &as, &ae, NULL);
        int rb = molmo_tok_match_next(re, &b, &bs, &be, NULL);
        if (ra != rb || as != bs || ae != be) {
            print_message("scanner [%zu,%zu) vs PCRE2 [%zu,%zu) in a %zu-byte text\n", as, ae, bs,
                          be, n);
            return 0;
        }
        if (ra != 1) return 1;
    }
}

static void test_scanners_vs_pcre2(void **state) {
    (void)state;
    static const uint32_t alpha[] = {
        ' ', ' ', ' ', '\t', '\n', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2003, 0x2028,
        0x202F, 0x3000, 0x180E, 0x200B, 0xFEFF, 0x1C, 'a', 'b', 'e', 'l', 'm', 'n', 'r', 's', 't',
        'v', 'd', 'S', 'T', 'R', 'E', 'L', 'M', 'D', 'V', 0x17F, 0xE9, 0x301, 0x4E2D, 0xAC00,
        0x3042, 0x5D0, 0x1F600, '0', '7', 0x663, 0xB2, 0x2167, 0xBD, '\'', '\'', '.', ',', '!',
        '(', '-', '_', 0x2019, 0xFF0C, 0x3002, 0xE000, 0xFFFE, 0x10FFFF, 0x378, 0};
    molmo_tok_regex_scratch sc;
    molmo_error err;
    assert_int_equal(molmo_tok_regex_scratch_init(&sc, &err), MOLMO_OK);
    char buf[512];
    size_t fixture_texts = 0;
    for (int p = 0; p < 3; p++) {
        molmo_tok_regex *re = NULL;
        assert_int_equal(molmo_tok_regex_compile(patterns[p], strlen(patterns[p]), 0, "t", &re,
                                                 &err), MOLMO_OK);
        assert_int_equal(molmo_tok_regex_fast_kind(re), p + 1);
        for (int i = 0; i < 30000; i++) {
            size_t n = random_text(buf, alpha, sizeof alpha / sizeof alpha[0], 40);
            if (!same_matches(re, &sc, buf, n)) fail_msg("pattern %d, random text %d", p, i);
        }
        /* every text of every fixture */
        static const char *const dirs[] = {"gpt2", "qwen2-molmo", "dolma2-like", "molmoe-1b"};
        for (int d = 0; d < 4; d++) {
            char rel[256], path[1024];
            snprintf(rel, sizeof rel, "tokenizers/%s/cases.jsonl", dirs[d]);
            FILE *f = fopen(tu_data_path(path, sizeof path, rel), "rb");
            assert_non_null(f);
            char *line = NULL;
            size_t cap = 0;
            ssize_t got;
            while ((got = getline(&line, &cap, f)) > 0) {
                json_t *j = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, NULL);
                json_t *t = json_object_get(j, "text");
                if (!same_matches(re, &sc, json_string_value(t), json_string_length(t)))
                    fail_msg("pattern %d, fixture text of %s", p, dirs[d]);
                fixture_texts++;
                json_decref(j);
            }
            free(line);
            fclose(f);
        }
        molmo_tok_regex_free(re);
    }
    print_message("scanners == PCRE2 on 3 x 30000 random texts and %zu fixture texts\n",
                  fixture_texts);
    molmo_tok_regex_scratch_free(&sc);
}

static void test_scanner_classes_vs_pcre2(void **state) {
    (void)state;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *rl = pcre2_compile((PCRE2_SPTR) "^\\p{L}$", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    pcre2_code *rn = pcre2_compile((PCRE2_SPTR) "^\\p{N}$", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    assert_non_null(rl);
    assert_non_null(rn);
    pcre2_jit_compile(rl, PCRE2_JIT_COMPLETE);
    pcre2_jit_compile(rn, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    size_t bad = 0, letters = 0, numbers = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char u[4];
        size_t n = put_cp(u, cp);
        int l = pcre2_match(rl, (PCRE2_SPTR)u, n, 0, 0, md, NULL) >= 0;
        int num = pcre2_match(rn, (PCRE2_SPTR)u, n, 0, 0, md, NULL) >= 0;
        int want = l ? 1 : num ? 2 : 0, got = molmo_tok_scan_class(cp);
        if (got == 4) got = 0; /* White_Space is neither */
        letters += l;
        numbers += num;
        if (got != want && bad++ < 5)
            print_message("U+%04X: scanner %d, PCRE2 %d\n", cp, got, want);
    }
    print_message("\\p{L} %zu and \\p{N} %zu code points; %zu differ\n", letters, numbers, bad);
    assert_int_equal(bad, 0);
    /* White_Space as Oniguruma has it: not U+180E, U+200B, U+FEFF, U+001C..U+001F */
    static const uint32_t ws[] = {9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, 0x2000, 0x2005,
                                  0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        assert_int_equal(molmo_tok_scan_class(ws[i]), 4);
    static const uint32_t not_ws[] = {0x180E, 0x200B, 0xFEFF, 0x1C, 0x1F, 0x2060};
    for (size_t i = 0; i < sizeof not_ws / sizeof not_ws[0]; i++)
        assert_int_not_equal(molmo_tok_scan_class(not_ws[i]), 4);
    pcre2_match_data_free(md);
    pcre2_code_free(rl);
    pcre2_code_free(rn);
}

/* ---- NFC ------------------------------------------------------------------------------------ */

static void test_nfc_quick_path(void **state) {
    (void)state;
    static const uint32_t alpha[] = {
        'a', 'e', 'A', 'o', ' ', 0, 0xE9, 0xC5, 0x212B, 0x2126, 0x301, 0x300, 0x327, 0x308,
        0x323, 0x302, 0x334, 0x1DCE, 0x958, 0x93C, 0x915, 0xF900, 0x2F800, 0x1100, 0x1161,
        0x11A8, 0xAC00, 0xAC01, 0x3099, 0x304B, 0x09C7, 0x09BE, 0x0B47, 0x0B3E, 0x1F600, 0x4E2D,
        0x5D0, 0x5B8, 0x5B4, 0x0F71, 0x0F72, 0x0F80, 0x1E9B, 0x1E0A, 0x3E0, 0x1D15E, 0x1D165};
    molmo_tok_bytes a = {0}, b = {0};
    molmo_tok_nfc_scratch sc = {0};
    char buf[256];
    size_t changed = 0;
    for (int i = 0; i < 40000; i++) {
        size_t n = random_text(buf, alpha, sizeof alpha / sizeof alpha[0], 24);
        a.n = b.n = 0;
        assert_int_equal(molmo_tok_nfc(buf, n, &a, &sc), 0);
        assert_int_equal(molmo_tok_nfc_reference(buf, n, &b, &sc), 0);
        if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0)
            fail_msg("NFC quick path differs (case %d)", i);
        changed += a.n != n || memcmp(a.p, buf, n) != 0;
    }
    print_message("NFC quick path == utf8proc on 40000 random texts (%zu changed by NFC)\n",
                  changed);
    assert_true(changed > 10000); /* the alphabet really exercises composition */
    molmo_tok_bytes_free(&a);
    molmo_tok_bytes_free(&b);
    molmo_tok_nfc_scratch_free(&sc);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

static void test_utf8_lossy(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"abc", "abc"},
        {"\xE2\x82\xAC", "\xE2\x82\xAC"},
        {"\xE2\x82", "\xEF\xBF\xBD"},                            /* truncated: one U+FFFD   */
        {"A\xF0\x9F\x98", "A\xEF\xBF\xBD"},
        {"\x80", "\xEF\xBF\xBD"},                                /* lone continuation       */
        {"\xC0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},                /* overlong: two           */
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate: three        */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > 10FFFF */
        {"\xE2\x82x", "\xEF\xBF\xBDx"},                          /* cut by an ASCII byte    */
        {"\xF0\x9F\x98\x80\xFF", "\xF0\x9F\x98\x80\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        molmo_tok_bytes o = {0};
        size_t used;
        assert_int_equal(molmo_tok_utf8_lossy(v[i].in, strlen(v[i].in), 1, &o, &used), 0);
        assert_int_equal(used, strlen(v[i].in));
        assert_int_equal(o.n, strlen(v[i].out));
        assert_memory_equal(o.p, v[i].out, o.n);
        molmo_tok_bytes_free(&o);
    }
    /* Not final: a valid but incomplete tail waits; an invalid one does not. */
    molmo_tok_bytes o = {0};
    size_t used;
    assert_int_equal(molmo_tok_utf8_lossy("ab\xF0\x9F\x98", 5, 0, &o, &used), 0);
    assert_int_equal(used, 2);
    assert_int_equal(o.n, 2);
    o.n = 0;
    assert_int_equal(molmo_tok_utf8_lossy("ab\xF0\x28", 4, 0, &o, &used), 0);
    assert_int_equal(used, 4);
    assert_int_equal(molmo_tok_utf8_valid_prefix("ab\xF0\x9F\x98\x80z\xC3", 8), 7);
    molmo_tok_bytes_free(&o);
}

/* ---- BPE ------------------------------------------------------------------------------------ */

static void test_bpe_vs_reference(void **state) {
    (void)state;
    molmo_tokenizer *tok = load_fixture("gpt2");
    molmo_tok_bpe_state *st = molmo_tok_bpe_state_new();
    molmo_tok_ids a = {0}, b = {0};
    static const char alpha[] = "aeinorst tth\xC3\xA9\xE4\xB8\xAD.";
    char buf[800];
    size_t heap_cases = 0;
    for (int i = 0; i < 6000; i++) {
        size_t n = i < 3000 ? rnd(12) + 1 : rnd(700) + 1;
        for (size_t k = 0; k < n; k++) buf[k] = alpha[rnd(sizeof alpha - 1)];
        heap_cases += n > 64;
        a.n = b.n = 0;
        for (int twice = 0; twice < 2; twice++) { /* the second run comes from the cache */
            a.n = 0;
            assert_int_equal(molmo_tok_bpe(tok, st, buf, n, &a), 0);
        }
        assert_int_equal(molmo_tok_bpe_reference(tok, buf, n, &b), 0);
        if (a.n != b.n || memcmp(a.v, b.v, a.n * sizeof *a.v) != 0)
            fail_msg("BPE differs from the reference on a %zu-byte piece (case %d)", n, i);
    }
    /* a long run of one character stays fast (heap, not quadratic) */
    memset(buf, ' ', sizeof buf);
    a.n = b.n = 0;
    assert_int_equal(molmo_tok_bpe(tok, st, buf, sizeof buf, &a), 0);
    assert_int_equal(molmo_tok_bpe_reference(tok, buf, sizeof buf, &b), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.v, b.v, a.n * sizeof *a.v);
    print_message("BPE == reference on 6000 random pieces (%zu over 64 bytes: heap path)\n",
                  heap_cases);
    molmo_tok_ids_free(&a);
    molmo_tok_ids_free(&b);
    molmo_tok_bpe_state_free(st);
    molmo_tokenizer_free(tok);
}

/* ---- JSON reader ---------------------------------------------------------------------------- */

static molmo_status parse(const char *s, molmo_tj_doc *d, molmo_error *err) {
    return molmo_tj_parse(d, s, strlen(s), "x.json", err);
}

static void test_json_reader(void **state) {
    (void)state;
    molmo_tj_doc d;
    molmo_error err;
    assert_int_equal(parse("{\"a\": [1, -2.5e3, \"x\\u00e9\\ud83d\\ude00\\u0000y\", true, null],"
                           " \"b\": {}}", &d, &err), MOLMO_OK);
    uint32_t a = molmo_tj_get(&d, 0, "a");
    assert_int_equal(d.nodes[a].len, 5);
    int64_t i;
    double r;
    assert_true(molmo_tj_int(&d, molmo_tj_at(&d, a, 0), 0, 10, &i) && i == 1);
    assert_false(molmo_tj_int(&d, molmo_tj_at(&d, a, 1), -10000, 10000, &i));
    assert_true(molmo_tj_real(&d, molmo_tj_at(&d, a, 1), &r) && r == -2500.0);
    uint32_t s = molmo_tj_at(&d, a, 2);
    assert_int_equal(d.nodes[s].len, 9); /* x, é (2), U+1F600 (4), NUL, y */
    assert_memory_equal(molmo_tj_str(&d, s), "x\xC3\xA9\xF0\x9F\x98\x80\0y", 9);
    assert_true(molmo_tj_is(&d, molmo_tj_get(&d, 0, "b"), MOLMO_TJ_OBJ));
    assert_int_equal(molmo_tj_get(&d, 0, "c"), MOLMO_TJ_NONE);
    molmo_tj_free(&d);
    static const char *const bad[] = {
        "", "{", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "\"\\ud800\"", "\"\\udc00x\"", "\"a\x01\"",
        "\"\xC3\x28\"", "01", "1.", "-", "[1e]", "nul", "{} x", "\"\\q\"", "\xEF\xBB\xBF{}",
        /* one string (the parentheses say so): nesting deeper than the parser allows */
        ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[")};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(parse(bad[k], &d, &err), MOLMO_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "x.json:"));
    }
    assert_int_equal(parse("{\n  \"a\": tru\n}", &d, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "x.json:2:8: invalid JSON"));
}

/* ---- regex translation -------------------------------------------------------------------- */

static void test_regex_translation(void **state) {
    (void)state;
    static const char *const unsupported[] = {"\\w+", "a\\b", "\\h", "\\d", "[a[b]]",
                                              "[a-z&&[^aeiou]]", "(?y:a)", "[\\S]"};
    molmo_tok_regex *re = NULL;
    molmo_error err;
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        assert_int_equal(molmo_tok_regex_compile(unsupported[i], strlen(unsupported[i]), 0,
                                                 "ctx", &re, &err), MOLMO_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "ctx: regex uses"));
    }
    assert_int_equal(molmo_tok_regex_compile("(a", 2, 0, "ctx", &re, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad regex"));
    /* \uHHHH, {,n}, (?m) = dot-all, \s without U+180E, literal strings */
    static const struct {
        const char *pat;
        int literal;
        const char *text;
        size_t want_end;
    } ok[] = {{"\\u00e9+", 0, "\xC3\xA9\xC3\xA9x", 4}, {"a{,2}", 0, "aaa", 2},
              {"(?m:a.b)", 0, "a\nb", 3},             {"\\s+", 0, " \xE1\xA0\x8E", 1},
              {"a.b", 1, "a.b", 3},                   {"^b", 0, "a\nb", 3}};
    molmo_tok_regex_scratch sc;
    assert_int_equal(molmo_tok_regex_scratch_init(&sc, &err), MOLMO_OK);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(molmo_tok_regex_compile(ok[i].pat, strlen(ok[i].pat), ok[i].literal,
                                                 "ctx", &re, &err), MOLMO_OK);
        molmo_tok_match_iter it;
        size_t ms, me;
        molmo_tok_match_begin(&it, &sc, ok[i].text, strlen(ok[i].text), 1);
        assert_int_equal(molmo_tok_match_next(re, &it, &ms, &me, &err), 1);
        assert_int_equal(me, ok[i].want_end);
        molmo_tok_regex_free(re);
    }
    /* an empty match right after a match is skipped (Oniguruma find_iter) */
    assert_int_equal(molmo_tok_regex_compile("a*", 2, 0, "ctx", &re, &err), MOLMO_OK);
    molmo_tok_match_iter it;
    size_t ms, me, got[8][2], k = 0;
    molmo_tok_match_begin(&it, &sc, "baab", 4, 1);
    while (k < 8 && molmo_tok_match_next(re, &it, &ms, &me, &err) == 1) {
        got[k][0] = ms;
        got[k++][1] = me;
    }
    /* [0,0), [1,3), then [3,3) is skipped (it touches [1,3)), then [4,4) */
    assert_int_equal(k, 3);
    assert_int_equal(got[0][0], 0);
    assert_int_equal(got[0][1], 0);
    assert_int_equal(got[1][0], 1);
    assert_int_equal(got[1][1], 3);
    assert_int_equal(got[2][0], 4);
    assert_int_equal(got[2][1], 4);
    molmo_tok_regex_free(re);
    molmo_tok_regex_scratch_free(&sc);
}

/* ---- clean-up -- */

static void check_cleanup(const char *in, const char *want) {
    char buf[128];
    size_t n = strlen(in);
    memcpy(buf, in, n);
    molmo_tok_cleanup(buf, &n);
    if (n != strlen(want) || memcmp(buf, want, n) != 0)
        fail_msg("cleanup(\"%s\") = \"%.*s\", want \"%s\"", in, (int)n, buf, want);
}

static void test_cleanup(void **state) {
    (void)state;
    check_cleanup("a . b ? c ! d , e", "a. b? c! d, e");
    check_cleanup("it ' s", "it's");
    check_cleanup("do n't", "don't");
    check_cleanup("I 'm he 's we 've they 're", "I'm he's we've they're");
    check_cleanup("x  .", "x .");     /* one pass per pattern, as str.replace */
    check_cleanup("a ' .", "a '.");   /* " ." first, then " ' " no longer matches */
    check_cleanup("a '  .", "a'.");   /* " ." leaves " ' " */
    check_cleanup("no change", "no change");
}

/* Random token sequences rich in the clean-up characters: streaming == batch, with clean-up. */
static void test_streaming_cleanup_random(void **state) {
    (void)state;
    molmo_tokenizer *tok = load_fixture("gpt2");
    static const char *const toks[] = {"Ġ", "'", "Ġ'", "n", "Ġn", "'t", "t", "Ġ.", ".", ",",
                                       "Ġ,", "s", "'s", "Ġdo", "v", "e", "'ve", "r", "'re",
                                       "'m", "m", "!", "?", "Ġ?", "Ġ!", "ä", "¸", "Ń", "Ã",
                                       "<|endoftext|>", "x", "Ġx", "Ċ"};
    int32_t ids[64], pool[64];
    size_t n_pool = 0;
    for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
        int32_t id = molmo_tokenizer_token_to_id(tok, toks[k], strlen(toks[k]));
        if (id >= 0) pool[n_pool++] = id;
    }
    assert_true(n_pool >= 30);
    for (int i = 0; i < 5000; i++) {
        size_t n = rnd(40);
        for (size_t k = 0; k < n; k++) ids[k] = pool[rnd((uint32_t)n_pool)];
        for (unsigned mode = 0; mode < 2; mode++) {
            unsigned flags = mode ? MOLMO_DECODE_CLEANUP | MOLMO_DECODE_SKIP_SPECIAL
                                  : MOLMO_DECODE_CLEANUP;
            molmo_tok_bytes whole = {0}, got = {0};
            molmo_detokenizer *d = NULL;
            assert_int_equal(molmo_tok_decode_append(tok, ids, n, flags, &whole, NULL), MOLMO_OK);
            assert_int_equal(molmo_detokenizer_create(tok, flags, &d, NULL), MOLMO_OK);
            for (size_t k = 0; k <= n; k++) {
                const char *t;
                size_t len;
                if (k < n) molmo_detokenizer_push(d, ids[k], &t, &len, NULL);
                else molmo_detokenizer_flush(d, &t, &len, NULL);
                assert_int_equal(molmo_tok_utf8_valid_prefix(t, len), len);
                molmo_tok_bytes_append(&got, t, len);
            }
            if (got.n != whole.n || memcmp(got.p, whole.p, got.n) != 0)
                fail_msg("streaming clean-up differs from batch (case %d)", i);
            molmo_detokenizer_free(d);
            molmo_tok_bytes_free(&whole);
            molmo_tok_bytes_free(&got);
        }
    }
    molmo_tokenizer_free(tok);
}

/* ---- one tokenizer, several threads ---------------------------------------------------------- */

typedef struct thread_job {
    const molmo_tokenizer *tok;
    const char *text;
    size_t n;
    molmo_tok_ids ids;
    molmo_tok_bytes dec;
    int ok;
} thread_job;

static void *thread_run(void *arg) {
    thread_job *j = arg;
    j->ok = 1;
    for (int r = 0; r < 5 && j->ok; r++) {
        j->ids.n = j->dec.n = 0;
        j->ok = molmo_tok_encode_ex(j->tok, j->text, j->n, 0, &j->ids, NULL, NULL, NULL) ==
                    MOLMO_OK &&
                molmo_tok_decode_append(j->tok, j->ids.v, j->ids.n, 0, &j->dec, NULL) == MOLMO_OK;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    molmo_tokenizer *tok = load_fixture("qwen2-molmo");
    char text[20000];
    size_t n = 0;
    static const uint32_t alpha[] = {'a', 'b', ' ', ' ', '\n', '1', 0xE9, 0x301, 0x4E2D, '\'', 's',
                                     '.', 0x1F600};
    while (n + 200 < sizeof text) n += random_text(text + n, alpha, 13, 40);
    thread_job one = {.tok = tok, .text = text, .n = n};
    thread_run(&one);
    assert_true(one.ok);
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){.tok = tok, .text = text, .n = n};
        assert_int_equal(pthread_create(&th[i], NULL, thread_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
        assert_int_equal(jobs[i].ids.n, one.ids.n);
        assert_memory_equal(jobs[i].ids.v, one.ids.v, one.ids.n * sizeof *one.ids.v);
        assert_int_equal(jobs[i].dec.n, one.dec.n);
        assert_memory_equal(jobs[i].dec.p, one.dec.p, one.dec.n);
        molmo_tok_ids_free(&jobs[i].ids);
        molmo_tok_bytes_free(&jobs[i].dec);
    }
    molmo_tok_ids_free(&one.ids);
    molmo_tok_bytes_free(&one.dec);
    molmo_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanners_vs_pcre2),
        cmocka_unit_test(test_scanner_classes_vs_pcre2),
        cmocka_unit_test(test_nfc_quick_path),
        cmocka_unit_test(test_utf8_lossy),
        cmocka_unit_test(test_bpe_vs_reference),
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_regex_translation),
        cmocka_unit_test(test_cleanup),
        cmocka_unit_test(test_streaming_cleanup_random),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

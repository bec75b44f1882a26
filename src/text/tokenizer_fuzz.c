/* tokenizer_fuzz.c — libFuzzer target for the tokenizer (seeds: tests/fuzz-corpus/tokenizer_fuzz/,
 * replayed by the test suite through tests/tools/fuzz_replay_main.c).
 *
 * The first input byte picks what to exercise:
 *   0  the rest is a tokenizer.json: load it; when it loads, encode/decode/stream a sample text
 *   1  the rest is a tokenizer_config.json for a small built-in tokenizer
 *   2  the rest is text: encode it with a built-in tokenizer (the second byte picks one of four
 *      pipelines) and check invariants, trapping when one fails:
 *        - the fast path (scanners, NFC quick path, BPE heap + cache) gives the ids of the
 *          reference path (PCRE2, utf8proc on everything, quadratic BPE);
 *        - decode(encode(text)) is the text (after U+FFFD repair and NFC) for pipelines that
 *          drop nothing and add nothing (the built-in added tokens avoid texts made only of
 *          byte-level alphabet characters: the reference decodes those through the byte map,
 *          so an added "Å" decodes to the lone byte C5, i.e. U+FFFD);
 *        - the streaming detokenizer adds up to the batch decode, in whole UTF-8 characters
 *   3  the rest is a list of ids (little-endian int32) to decode, batch and streaming
 * Any other outcome than MOLMO_OK or a clean error status is a bug (ASan/UBSan report it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "text/tokenizer.h"

/* ---- a small built-in byte-level tokenizer ------------------------------------------------ */

static const char *const merges[][2] = {
    {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"e", "r"}, {"o", "n"},
    {"Ġ", "Ġ"}, {"ĠĠ", "ĠĠ"}, {"1", "2"}, {"12", "3"}, {"'", "s"}, {"Ġ", "w"}, {"o", "r"},
    {"Ġw", "or"}, {"l", "d"}, {"Ġwor", "ld"}, {"ä", "¸"}, {"ä¸", "Ń"}, {"Ċ", "Ċ"}, {"a", "a"},
    {"aa", "aa"}, {"aaaa", "aaaa"}, {"Ã", "©"}};

static const char *const pretok[4] = {
    /* 0: Qwen2 */
    "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
    "[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|"
    "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+"
    "[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+"
    "(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}",
    /* 1: GPT-2 / NeoX */
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
    "\"trim_offsets\":true,\"use_regex\":true}",
    /* 2: cl100k (dolma2) */
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
    "\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?"
    "\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+"
    "(?!\\\\S)|\\\\s+\"},\"behavior\":\"Removed\",\"invert\":true},{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}",
    /* 3: the other Split behaviours, a literal pattern, and a prefix space */
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
    "{\"String\":\"x\"},\"behavior\":\"MergedWithNext\",\"invert\":false},{\"type\":\"Split\","
    "\"pattern\":{\"Regex\":\"\\\\p{N}+|[.]\"},\"behavior\":\"Contiguous\",\"invert\":false},"
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a(?=b)\"},\"behavior\":\"MergedWithPrevious\","
    "\"invert\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}]}"};

static int add(molmo_tok_bytes *b, const char *s) {
    return molmo_tok_bytes_append(b, s, strlen(s));
}

/* tokenizer.json text of the built-in tokenizer with pipeline `variant`. */
static int mini_json(int variant, molmo_tok_bytes *b) {
    char tmp[128];
    int rc = add(b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    static const char *const added[][3] = {{"<|endoftext|>", "false", "true"},
                                           {"<im_patch>", "false", "true"},
                                           {"||EMAIL||", "true", "false"},
                                           {"  ", "true", "false"},
                                           {"\\u2126", "true", "false"}}; /* NFC: U+03A9 */
    int n_vocab = 256 + (int)(sizeof merges / sizeof merges[0]);
    for (int i = 0; i < 5; i++) {
        snprintf(tmp, sizeof tmp, "%s{\"id\":%d,\"content\":\"", i ? "," : "", n_vocab + i);
        rc |= add(b, tmp) | add(b, added[i][0]);
        rc |= add(b, "\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":");
        rc |= add(b, added[i][1]) | add(b, ",\"special\":") | add(b, added[i][2]) | add(b, "}");
    }
    rc |= add(b, "],") | add(b, pretok[variant]);
    rc |= add(b, ",\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":"
                 "{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"vocab\":{");
    for (int c = 0; c < 256; c++) {
        char ch[3] = {0};
        molmo_tok_byte_char((unsigned char)c, ch);
        snprintf(tmp, sizeof tmp, "%s\"%s%s\":%d", c ? "," : "",
                 ch[0] == '"' || ch[0] == '\\' ? "\\" : "", ch, c);
        rc |= add(b, tmp);
    }
    for (int m = 0; m < n_vocab - 256; m++) {
        snprintf(tmp, sizeof tmp, ",\"%s%s\":%d", merges[m][0], merges[m][1], 256 + m);
        rc |= add(b, tmp);
    }
    rc |= add(b, "},\"merges\":[");
    for (int m = 0; m < n_vocab - 256; m++) {
        snprintf(tmp, sizeof tmp, "%s\"%s %s\"", m ? "," : "", merges[m][0], merges[m][1]);
        rc |= add(b, tmp);
    }
    return rc | add(b, "]}}");
}

static molmo_tokenizer *mini(int variant, const char *config, size_t config_len) {
    molmo_tok_bytes b = {0};
    molmo_tokenizer *tok = NULL;
    if (mini_json(variant, &b) == 0)
        molmo_tokenizer_load_from_memory(b.p, b.n, config, config_len, &tok, NULL);
    molmo_tok_bytes_free(&b);
    return tok;
}

/* ---- checks -------------------------------------------------------------------------------- */

/* Streams ids through a detokenizer and checks the pieces against the batch decode. */
static void check_stream(const molmo_tokenizer *tok, const int32_t *ids, size_t n,
                         unsigned flags) {
    molmo_tok_bytes whole = {0}, streamed = {0};
    molmo_detokenizer *d = NULL;
    if (molmo_tok_decode_append(tok, ids, n, flags, &whole, NULL) != MOLMO_OK ||
        molmo_detokenizer_create(tok, flags, &d, NULL) != MOLMO_OK)
        goto done;
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t len;
        molmo_status st = i < n ? molmo_detokenizer_push(d, ids[i], &t, &len, NULL)
                                : molmo_detokenizer_flush(d, &t, &len, NULL);
        if (st != MOLMO_OK) goto done;
        if (molmo_tok_utf8_valid_prefix(t, len) != len) __builtin_trap();
        if (molmo_tok_bytes_append(&streamed, t, len) != 0) goto done;
    }
    if (streamed.n != whole.n || (whole.n && memcmp(streamed.p, whole.p, whole.n) != 0))
        __builtin_trap();
done:
    molmo_detokenizer_free(d);
    molmo_tok_bytes_free(&whole);
    molmo_tok_bytes_free(&streamed);
}

static void check_text(const molmo_tokenizer *tok, const char *s, size_t n, int roundtrip) {
    molmo_tok_ids fast = {0}, ref = {0};
    molmo_tok_bytes dec = {0}, want = {0}, fixed = {0};
    molmo_tok_nfc_scratch sc = {0};
    if (molmo_tok_encode_ex(tok, s, n, 0, &fast, NULL, NULL, NULL) != MOLMO_OK ||
        molmo_tok_encode_ex(tok, s, n, MOLMO_TOK_ENC_REFERENCE, &ref, NULL, NULL, NULL) !=
            MOLMO_OK)
        goto done;
    if (fast.n != ref.n || (fast.n && memcmp(fast.v, ref.v, fast.n * sizeof *fast.v) != 0))
        __builtin_trap();
    if (roundtrip && molmo_tok_utf8_lossy(s, n, 1, &fixed, NULL) == 0 &&
        (tok->nfc ? molmo_tok_nfc_reference(fixed.p ? fixed.p : "", fixed.n, &want, &sc)
                  : molmo_tok_bytes_append(&want, fixed.p, fixed.n)) == 0 &&
        molmo_tok_decode_append(tok, fast.v, fast.n, MOLMO_DECODE_NO_CLEANUP, &dec, NULL) ==
            MOLMO_OK &&
        (dec.n != want.n || (dec.n && memcmp(dec.p, want.p, dec.n) != 0)))
        __builtin_trap();
    check_stream(tok, fast.v, fast.n, MOLMO_DECODE_CLEANUP);
    check_stream(tok, fast.v, fast.n, MOLMO_DECODE_SKIP_SPECIAL | MOLMO_DECODE_NO_CLEANUP);
done:
    molmo_tok_ids_free(&fast);
    molmo_tok_ids_free(&ref);
    molmo_tok_bytes_free(&dec);
    molmo_tok_bytes_free(&want);
    molmo_tok_bytes_free(&fixed);
    molmo_tok_nfc_scratch_free(&sc);
}

static void exercise(const molmo_tokenizer *tok) {
    static const char sample[] = "Hello, world! It's 2024: 12345 apples\n\n  caf\xC3\xA9 e\xCC\x81 "
                                 "\xE4\xB8\xAD\xE6\x96\x87<|endoftext|>  x";
    check_text(tok, sample, sizeof sample - 1, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    molmo_tokenizer *tok = NULL;
    switch (data[0] % 4) {
    case 0:
        if (molmo_tokenizer_load_from_memory(rest, n, NULL, 0, &tok, NULL) == MOLMO_OK)
            exercise(tok);
        break;
    case 1:
        tok = mini(0, rest, n);
        if (tok) exercise(tok);
        break;
    case 2:
        if (n < 1) return 0;
        tok = mini(rest[0] & 3, NULL, 0);
        if (tok) check_text(tok, rest + 1, n - 1, (rest[0] & 3) != 3);
        break;
    default: {
        tok = mini(0, NULL, 0);
        size_t k = n / 4;
        int32_t *ids = molmo_malloc((k ? k : 1) * sizeof *ids);
        if (tok && ids) {
            for (size_t i = 0; i < k; i++) {
                uint32_t v;
                memcpy(&v, rest + 4 * i, 4);
                /* mostly valid ids, sometimes anything */
                ids[i] = (v >> 31) ? (int32_t)v : (int32_t)(v % 300);
            }
            check_stream(tok, ids, k, MOLMO_DECODE_NO_CLEANUP);
            check_stream(tok, ids, k, MOLMO_DECODE_CLEANUP | MOLMO_DECODE_SKIP_SPECIAL);
        }
        molmo_free(ids);
    }
    }
    molmo_tokenizer_free(tok);
    return 0;
}

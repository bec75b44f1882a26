/* tokenizer_scan.h — hand-written matchers for the three pre-tokenizer regexes of the Molmo
 * tokenizers (GPT-2/NeoX, Qwen2, cl100k/dolma2). They return exactly the matches PCRE2 returns
 * for the same pattern (tests/unit/test_tokenizer_unicode.c compares them on every fixture text
 * and on random strings); PCRE2 stays the reference and runs every other pattern. */
#ifndef MOLMO_TEXT_TOKENIZER_SCAN_H
#define MOLMO_TEXT_TOKENIZER_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum {
    MOLMO_TOK_SCAN_NONE = 0,
    MOLMO_TOK_SCAN_GPT2,   /* 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    MOLMO_TOK_SCAN_QWEN2,  /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+... */
    MOLMO_TOK_SCAN_CL100K  /* the same with \p{N}{1,3} */
};

/* Which scanner implements `pattern` (compared byte for byte), or MOLMO_TOK_SCAN_NONE. */
int molmo_tok_scan_kind(const char *pattern, size_t len);

/* Leftmost match of scanner `kind` in s[0..len) starting at or after `from` (s is valid
 * UTF-8): 1 with [*ms, *me) set, or 0 when there is none. */
int molmo_tok_scan_next(int kind, const char *s, size_t len, size_t from, size_t *ms,
                        size_t *me);

/* Class the scanners give a code point: 1 letter (\p{L}), 2 number (\p{N}), 4 White_Space,
 * 0 anything else. Exposed for the exhaustive test against PCRE2. */
int molmo_tok_scan_class(uint32_t cp);

#endif

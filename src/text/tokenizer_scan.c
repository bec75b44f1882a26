/* tokenizer_scan.c — hand-written matchers for the pre-tokenizer regexes of the Molmo tokenizers
 * (see tokenizer_scan.h), about 5x faster than PCRE2's JIT on them because they skip the
 * per-call setup and the alternation backtracking.
 *
 * Each function is the regex worked out alternative by alternative, in order (leftmost-first,
 * greedy, with the backtracking the engine would do written out). Every character matches some
 * alternative of these patterns, so the leftmost match always starts at the search position.
 * Character classes are PCRE2's with UTF+UCP: \p{L} and \p{N} from tokenizer_ucd.c (Unicode
 * 14), \s the explicit White_Space class that tokenizer_regex.c also gives PCRE2, and the
 * caseless contractions fold s/S/U+017F (long s), the only non-ASCII letter that folds to one
 * of s t r e v m l d. */
#include "text/tokenizer_scan.h"

#include <stdint.h>
#include <string.h>

extern const uint32_t molmo_tok_ucd_ranges[][2];
extern const unsigned molmo_tok_ucd_n_ranges;

/* the patterns, byte for byte as tokenizer.json writes them */
static const char gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char qwen2_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char cl100k_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int molmo_tok_scan_kind(const char *pattern, size_t len) {
    if (len == sizeof gpt2_re - 1 && !memcmp(pattern, gpt2_re, len)) return MOLMO_TOK_SCAN_GPT2;
    if (len == sizeof qwen2_re - 1 && !memcmp(pattern, qwen2_re, len))
        return MOLMO_TOK_SCAN_QWEN2;
    if (len == sizeof cl100k_re - 1 && !memcmp(pattern, cl100k_re, len))
        return MOLMO_TOK_SCAN_CL100K;
    return MOLMO_TOK_SCAN_NONE;
}

/* ---- character classes ------------------------------------------------------------------ */

enum { O = 0, L = 1, N = 2, W = 4 }; /* other, letter, number, White_Space */

static const uint8_t ascii[128] = {
    ['\t'] = W, ['\n'] = W, ['\v'] = W, ['\f'] = W, ['\r'] = W, [' '] = W,
    ['0'] = N, ['1'] = N, ['2'] = N, ['3'] = N, ['4'] = N,
    ['5'] = N, ['6'] = N, ['7'] = N, ['8'] = N, ['9'] = N,
    ['A'] = L, ['B'] = L, ['C'] = L, ['D'] = L, ['E'] = L, ['F'] = L, ['G'] = L, ['H'] = L,
    ['I'] = L, ['J'] = L, ['K'] = L, ['L'] = L, ['M'] = L, ['N'] = L, ['O'] = L, ['P'] = L,
    ['Q'] = L, ['R'] = L, ['S'] = L, ['T'] = L, ['U'] = L, ['V'] = L, ['W'] = L, ['X'] = L,
    ['Y'] = L, ['Z'] = L,
    ['a'] = L, ['b'] = L, ['c'] = L, ['d'] = L, ['e'] = L, ['f'] = L, ['g'] = L, ['h'] = L,
    ['i'] = L, ['j'] = L, ['k'] = L, ['l'] = L, ['m'] = L, ['n'] = L, ['o'] = L, ['p'] = L,
    ['q'] = L, ['r'] = L, ['s'] = L, ['t'] = L, ['u'] = L, ['v'] = L, ['w'] = L, ['x'] = L,
    ['y'] = L, ['z'] = L,
};

static int cls_slow(uint32_t cp) {
    if (cp >= 0x4E00 && cp <= 0x9FFF) return L; /* CJK Unified Ideographs */
    if (cp >= 0xAC00 && cp <= 0xD7A3) return L; /* Hangul syllables */
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return W;
    unsigned lo = 0, hi = molmo_tok_ucd_n_ranges;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cp < molmo_tok_ucd_ranges[mid][0]) hi = mid;
        else if (cp > molmo_tok_ucd_ranges[mid][1] >> 2) lo = mid + 1;
        else return (int)(molmo_tok_ucd_ranges[mid][1] & 3);
    }
    return O;
}

int molmo_tok_scan_class(uint32_t cp) { return cp < 0x80 ? ascii[cp] : cls_slow(cp); }

/* Class of the character at s[i] (i < n, valid UTF-8); *len = its byte length. */
static inline int cls_at(const unsigned char *s, size_t i, size_t *len) {
    unsigned char c = s[i];
    if (c < 0x80) {
        *len = 1;
        return ascii[c];
    }
    uint32_t cp;
    if (c < 0xE0) {
        *len = 2;
        cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    } else if (c < 0xF0) {
        *len = 3;
        cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    } else {
        *len = 4;
        cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
             ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    }
    return cls_slow(cp);
}

/* End of the run of characters of class `want` starting at i. */
static size_t run(const unsigned char *s, size_t n, size_t i, int want) {
    size_t len;
    while (i < n && cls_at(s, i, &len) == want) i += len;
    return i;
}

/* ---- shared alternatives ---------------------------------------------------------------- */

/* Contractions after the apostrophe at s[i]: 's 't 'm 'd (2 chars), 're 've 'll (3). With
 * `fold`, ASCII letters match either case and s also matches U+017F (UTF-8 C5 BF). Returns the
 * match end, or 0. */
static size_t contraction(const unsigned char *s, size_t n, size_t i, int fold) {
    if (i + 1 >= n) return 0;
    unsigned c = s[i + 1], d = i + 2 < n ? s[i + 2] : 0;
    if (fold) {
        if (c == 0xC5 && d == 0xBF) return i + 3; /* 'ſ */
        if (c >= 'A' && c <= 'Z') c += 32;
        if (d >= 'A' && d <= 'Z') d += 32;
    }
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a whitespace character; j = end of the whitespace run. */
static size_t spaces(const unsigned char *s, size_t n, size_t i, size_t j) {
    if (j == n) return j;
    /* (?!\S) fails at j; backtracking one character leaves whitespace next. */
    size_t k = j - 1;
    while ((s[k] & 0xC0) == 0x80) k--;
    return k > i ? k : j;
}

/* ---- GPT-2 / NeoX --------------------------------------------------------------------------- */

static size_t gpt2_at(const unsigned char *s, size_t n, size_t i) {
    size_t len, len2, e;
    if (s[i] == '\'' && (e = contraction(s, n, i, 0))) return e;
    int c = cls_at(s, i, &len);
    if (s[i] == ' ' && i + 1 < n) {
        int c2 = cls_at(s, i + 1, &len2);
        if (c2 != W) return run(s, n, i + 1, c2); /*  ?\p{L}+,  ?\p{N}+,  ?[^\s\p{L}\p{N}]+ */
    }
    if (c != W) return run(s, n, i, c);
    return spaces(s, n, i, run(s, n, i, W));
}

/* ---- Qwen2 and cl100k --------------------------------------------------------------------- */

static size_t newline_run(const unsigned char *s, size_t n, size_t i) {
    while (i < n && (s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

static size_t qwen_at(const unsigned char *s, size_t n, size_t i, int max_digits) {
    size_t len, len2, e;
    if (s[i] == '\'' && (e = contraction(s, n, i, 1))) return e;
    int c = cls_at(s, i, &len);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c == L) return run(s, n, i, L);
    if (c != N && s[i] != '\r' && s[i] != '\n' && i + len < n &&
        cls_at(s, i + len, &len2) == L)
        return run(s, n, i + len, L);
    /* \p{N} or \p{N}{1,3} */
    if (c == N) {
        e = i + len;
        for (int k = 1; k < max_digits && e < n && cls_at(s, e, &len2) == N; k++) e += len2;
        return e;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c == O) return newline_run(s, n, run(s, n, i, O));
    if (s[i] == ' ' && i + 1 < n && cls_at(s, i + 1, &len2) == O)
        return newline_run(s, n, run(s, n, i + 1, O));
    /* \s*[\r\n]+ : through the last \r or \n of the whitespace run */
    size_t j = run(s, n, i, W), last = 0;
    for (size_t k = i; k < j; k++)
        if (s[k] == '\r' || s[k] == '\n') last = k + 1;
    if (last) return last;
    return spaces(s, n, i, j);
}

int molmo_tok_scan_next(int kind, const char *str, size_t len, size_t from, size_t *ms,
                        size_t *me) {
    const unsigned char *s = (const unsigned char *)str;
    if (from >= len) return 0;
    *ms = from;
    switch (kind) {
    case MOLMO_TOK_SCAN_GPT2: *me = gpt2_at(s, len, from); return 1;
    case MOLMO_TOK_SCAN_QWEN2: *me = qwen_at(s, len, from, 1); return 1;
    case MOLMO_TOK_SCAN_CL100K: *me = qwen_at(s, len, from, 3); return 1;
    default: return 0;
    }
}

/* points_count.c — numbers and count statements of pointing answers.
 *
 * Coordinates are read as Python's float() reads the official regex's match, correctly
 * rounded and without the C locale (a program that set LC_NUMERIC to "de_DE" must not read
 * "61.5" as 61). The count rules follow the official PointCountEval (olmo/eval/evaluators.py):
 * the last word as an integer or a number word zero..twenty, then "a total of N"; on top of
 * them "there are N" and the "none" answers the training data uses ("There are none.") and
 * the pointing prompts ask for ("This isn't in the image."): the official evaluator's none
 * rule is written as ".*\bnone\b.*" in a non-raw string, so "\b" is a backspace there and it
 * never matches; we count those answers as 0 (docs/points.md). */
#define _GNU_SOURCE /* strtod_l, newlocale: locale-independent fallback for long numbers */
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/points.h"

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_alnum(int c) { return is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

/* Exactly representable powers of ten (Clinger's fast path: m < 2^53 and k <= 22 gives a
 * correctly rounded m / 10^k with one IEEE division). */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Long inputs: strtod in the "C" locale on a NUL-terminated copy (at most 4096 bytes). */
static int slow_number(const char *s, size_t n, double *out) {
    char buf[MOLMO_POINTS_MAX_STRING + 1];
    if (n > MOLMO_POINTS_MAX_STRING) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c) return 0;
    *out = strtod_l(buf, NULL, c);
    freelocale(c);
    return 1;
}

int molmo_points_number(const char *s, size_t n, double *out) {
    size_t i = 0, e = n;
    while (i < e && is_space((unsigned char)s[i])) i++;
    while (e > i && is_space((unsigned char)s[e - 1])) e--;
    const char *t = s + i;
    size_t len = e - i, k = 0;
    int neg = 0;
    if (k < len && (t[k] == '+' || t[k] == '-')) neg = t[k++] == '-';
    uint64_t m = 0;
    int sig = 0, frac = 0, digits = 0, dot = 0;
    for (; k < len; k++) {
        int c = (unsigned char)t[k];
        if (c == '.' && !dot) {
            dot = 1;
            continue;
        }
        if (!is_digit(c)) return 0;
        digits++;
        if (dot) frac++;
        if (m == 0 && c == '0') continue; /* leading zeros are not significant */
        if (sig < 19) m = m * 10 + (uint64_t)(c - '0');
        sig++;
    }
    if (!digits) return 0;
    double v;
    if (sig <= 15 && frac <= 22 && m < (1ull << 53))
        v = (double)m / pow10_exact[frac];
    else if (!slow_number(t, len, &v))
        return 0;
    if (v < 0) v = -v; /* slow_number saw the sign too */
    *out = neg ? -v : v;
    return 1;
}

/* zero..twenty, as the official WORD_TO_NUM; -1 otherwise. Case-insensitive. */
static int word_number(const char *w, size_t n) {
    static const char *const words[] = {
        "zero",     "one",     "two",     "three",     "four",     "five",     "six",
        "seven",    "eight",   "nine",    "ten",       "eleven",   "twelve",   "thirteen",
        "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"};
    for (int v = 0; v <= 20; v++) {
        size_t len = strlen(words[v]);
        if (len != n) continue;
        size_t k = 0;
        while (k < n && (w[k] | 32) == words[v][k]) k++;
        if (k == n) return v;
    }
    return -1;
}

/* An integer of 1..9 digits or a number word in w[0..n); -1 otherwise. */
static int count_word(const char *w, size_t n) {
    if (n >= 1 && n <= 9) {
        int v = 0;
        size_t k = 0;
        while (k < n && is_digit((unsigned char)w[k])) v = v * 10 + (w[k++] - '0');
        if (k == n) return v;
    }
    return word_number(w, n);
}

/* Case-insensitive: does text[at..) start with the lowercase ASCII `pat`? */
static int starts_with(const char *text, size_t len, size_t at, const char *pat) {
    size_t n = strlen(pat);
    if (at > len || len - at < n) return 0;
    for (size_t k = 0; k < n; k++) {
        int c = (unsigned char)text[at + k];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != pat[k]) return 0;
    }
    return 1;
}

/* Last "PREFIX N" with N a count word right after the prefix and spaces; -1 when none. */
static int last_phrase_count(const char *t, size_t len, const char *prefix) {
    int found = -1;
    size_t pn = strlen(prefix);
    for (size_t at = 0; at + pn <= len; at++) {
        if (!starts_with(t, len, at, prefix)) continue;
        if (at > 0 && is_alnum((unsigned char)t[at - 1])) continue;
        size_t s = at + pn, e;
        if (s >= len || !is_space((unsigned char)t[s])) continue;
        while (s < len && is_space((unsigned char)t[s])) s++;
        e = s;
        while (e < len && is_alnum((unsigned char)t[e])) e++;
        int v = count_word(t + s, e - s);
        if (v >= 0) found = v;
    }
    return found;
}

static int has_none_phrase(const char *t, size_t len) {
    static const char *const phrases[] = {"none", "not in the image", "n't in the image",
                                          "there are no ", "there is no "};
    for (size_t at = 0; at < len; at++)
        for (size_t k = 0; k < sizeof phrases / sizeof *phrases; k++) {
            size_t n = strlen(phrases[k]);
            if (!starts_with(t, len, at, phrases[k])) continue;
            if (k == 0 && ((at > 0 && is_alnum((unsigned char)t[at - 1])) ||
                           (at + n < len && is_alnum((unsigned char)t[at + n]))))
                continue; /* "none" as a word only */
            return 1;
        }
    return 0;
}

/* Rule 1: the last word, after dropping trailing spaces and dots. */
static int last_word_count(const char *t, size_t len, size_t tail_from) {
    size_t e = len;
    while (e > 0 && (is_space((unsigned char)t[e - 1]) || t[e - 1] == '.')) e--;
    size_t s = e;
    while (s > 0 && !is_space((unsigned char)t[s - 1])) s--;
    if (s == e || s < tail_from) return -1;
    return count_word(t + s, e - s);
}

void molmo_points_count_statement(const char *text, size_t len, size_t tail_from, int *count,
                                  molmo_count_kind *kind, int *none_phrase) {
    int v;
    *none_phrase = has_none_phrase(text, len);
    *count = -1;
    *kind = MOLMO_COUNT_UNSTATED;
    if ((v = last_word_count(text, len, tail_from)) >= 0)
        *kind = MOLMO_COUNT_LAST_WORD;
    else if ((v = last_phrase_count(text, len, "a total of")) >= 0)
        *kind = MOLMO_COUNT_TOTAL;
    else if ((v = last_phrase_count(text, len, "there are")) >= 0 ||
             (v = last_phrase_count(text, len, "there is")) >= 0)
        *kind = MOLMO_COUNT_THERE_ARE;
    else if (*none_phrase)
        *kind = MOLMO_COUNT_NONE, v = 0;
    *count = v;
}

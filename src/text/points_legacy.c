/* points_legacy.c — the legacy point forms the official parser (olmo/util.py extract_points)
 * also accepts: Click(x, y), (x, y) with decimal points, and p=ddd,ddd / N=ddd,ddd in tenths
 * of a percent. They are matched at their last byte inside a window of the most recent text
 * bytes outside elements (MOLMO_POINTS_LEGACY_WINDOW), so each byte costs O(window) at most
 * and the streamed and whole-text results agree. Differences from the official regexes,
 * all deliberate (docs/points.md): spaces are allowed around the numbers, any number of
 * fraction digits is accepted, a Click( match is not counted a second time as a (x, y) match,
 * and the second ddd of the p-form must not be followed by another digit. */
#include <string.h>

#include "text/points_impl.h"

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Records the match win[start..end) as its own group with one point. */
static void take(molmo_points_parser *p, molmo_point_source src, int start, int end, double x,
                 double y) {
    molmo_pp_group g;
    g.source = src;
    g.offset = p->win_start + (size_t)start;
    g.length = (size_t)(end - start);
    g.truncated = 0;
    g.alt = g.label = "";
    if (molmo_pp_point(p, &g, 0, x, y)) p->n_groups++;
    p->win_len = 0; /* a match is never part of a later one */
}

/* Reads digits[.digits] at s[*i..n); has_dot reports a '.' followed by a digit. Returns the
 * end of the number, or -1 when there is no digit. */
static int scan_number(const char *s, int i, int n, int *has_dot) {
    int start = i, digits = 0;
    *has_dot = 0;
    while (i < n && is_digit((unsigned char)s[i])) i++, digits++;
    if (digits && i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
        *has_dot = 1;
        i++;
        while (i < n && is_digit((unsigned char)s[i])) i++;
    }
    return digits && i > start ? i : -1;
}

/* The window ends with ')': Click(x, y) or (x, y). */
static void try_paren(molmo_points_parser *p) {
    const char *w = p->win;
    int n = p->win_len, open = n - 2;
    while (open >= 0 && w[open] != '(') open--;
    if (open < 0) return;
    int i = open + 1, dot_a, dot_b, comma = 0;
    while (i < n && is_space((unsigned char)w[i])) i++;
    int a0 = i, a1 = scan_number(w, i, n, &dot_a);
    if (a1 < 0) return;
    i = a1;
    while (i < n && is_space((unsigned char)w[i])) i++;
    if (i < n && w[i] == ',') comma = 1, i++;
    while (i < n && is_space((unsigned char)w[i])) i++;
    int b0 = i, b1 = scan_number(w, i, n, &dot_b);
    if (b1 < 0) return;
    i = b1;
    while (i < n && is_space((unsigned char)w[i])) i++;
    if (i != n - 1) return; /* something else before the ')' */
    static const char click[] = "click";
    int click_at = open - 5, is_click = click_at >= 0 && comma;
    for (int k = 0; is_click && k < 5; k++) is_click = (w[click_at + k] | 32) == click[k];
    if (!is_click && !(dot_a && dot_b)) return;
    double x, y;
    if (!molmo_points_number(w + a0, (size_t)(a1 - a0), &x) ||
        !molmo_points_number(w + b0, (size_t)(b1 - b0), &y))
        return;
    if (is_click) take(p, MOLMO_POINT_SRC_CLICK, click_at, n, x, y);
    else take(p, MOLMO_POINT_SRC_PAREN, open, n, x, y);
}

/* Exactly three digits ending at s[end-1] (not preceded by a digit); returns their value. */
static int three_digits(const char *s, int end) {
    if (end < 3) return -1;
    for (int k = end - 3; k < end; k++)
        if (!is_digit((unsigned char)s[k])) return -1;
    if (end > 3 && is_digit((unsigned char)s[end - 4])) return -1;
    return (s[end - 3] - '0') * 100 + (s[end - 2] - '0') * 10 + (s[end - 1] - '0');
}

/* The window ends with a digit and the text goes on with a non-digit (or ends):
 * (p|digits) spaces '=' spaces ddd spaces ',' spaces ddd. */
static void try_p3(molmo_points_parser *p) {
    const char *w = p->win;
    int i = p->win_len;
    if (i == 0 || !is_digit((unsigned char)w[i - 1])) return;
    int yv = three_digits(w, i);
    if (yv < 0) return;
    i -= 3;
    while (i > 0 && is_space((unsigned char)w[i - 1])) i--;
    if (i == 0 || w[i - 1] != ',') return;
    i--;
    while (i > 0 && is_space((unsigned char)w[i - 1])) i--;
    int xv = three_digits(w, i);
    if (xv < 0) return;
    i -= 3;
    while (i > 0 && is_space((unsigned char)w[i - 1])) i--;
    if (i == 0 || w[i - 1] != '=') return;
    i--;
    while (i > 0 && is_space((unsigned char)w[i - 1])) i--;
    if (i == 0) return;
    if (w[i - 1] == 'p') i--;
    else if (is_digit((unsigned char)w[i - 1]))
        while (i > 0 && is_digit((unsigned char)w[i - 1])) i--;
    else
        return;
    take(p, MOLMO_POINT_SRC_P3, i, p->win_len, xv / 10.0, yv / 10.0);
}

void molmo_pp_legacy_byte(molmo_points_parser *p, char c, size_t off) {
    if (!is_digit((unsigned char)c)) try_p3(p);
    if (p->win_len == MOLMO_POINTS_LEGACY_WINDOW) {
        const int drop = MOLMO_POINTS_LEGACY_WINDOW / 2;
        memmove(p->win, p->win + drop, (size_t)(p->win_len - drop));
        p->win_len -= drop;
        p->win_start += (size_t)drop;
    }
    if (p->win_len == 0) p->win_start = off;
    p->win[p->win_len++] = c;
    if (c == ')') try_paren(p);
}

void molmo_pp_legacy_flush(molmo_points_parser *p) {
    try_p3(p);
    p->win_len = 0;
}

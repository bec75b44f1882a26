/* test_points.c — the point/count parser (issue 7): a table of real-looking Molmo answers (the
 * fact sheet §8 formats, PixMo pointing/counting/point-explanation styles, malformed and cut-off
 * variants) with their expected structured output; the same table streamed in every piece
 * size gives the same result; points are reported as soon as their tag closes; hostile
 * inputs (10^5 points, 1 MB of "<points x1=") stay linear; allocation failures; numbers and
 * count statements on their own. */
#define _POSIX_C_SOURCE 200809L
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "testutil.h"
#include "text/points.h"

#define W 640
#define H 480

typedef struct exp_pt {
    double xp, yp;
    int index;
    const char *alt, *label;
    molmo_point_source src;
    int truncated;
} exp_pt;

typedef struct pcase {
    const char *name, *text;
    int n;
    exp_pt pts[4];
    int count;
    molmo_count_kind kind;
    int none;
    int n_rej;
    molmo_point_reject_reason rej0;
} pcase;

#define P MOLMO_POINT_SRC_POINT
#define PS MOLMO_POINT_SRC_POINTS
#define NOCOUNT -1, MOLMO_COUNT_UNSTATED
#define NO_PTS {{0, 0, 0, "", "", P, 0}}

static const pcase cases[] = {
    {"one point", "<point x=\"61.5\" y=\"40.6\" alt=\"dog\">dog</point>", 1,
     {{61.5, 40.6, 0, "dog", "dog", P, 0}}, NOCOUNT, 0, 0, 0},
    {"many points",
     "<points x1=\"10.2\" y1=\"20.0\" x2=\"55.0\" y2=\"21.3\" x3=\"80.1\" y3=\"75.5\" "
     "alt=\"red apples\">red apples</points>",
     3,
     {{10.2, 20.0, 1, "red apples", "red apples", PS, 0},
      {55.0, 21.3, 2, "red apples", "red apples", PS, 0},
      {80.1, 75.5, 3, "red apples", "red apples", PS, 0}},
     NOCOUNT, 0, 0, 0},
    {"none", "There are none.", 0, NO_PTS, 0, MOLMO_COUNT_NONE, 1, 0, 0},
    {"not in image", "This isn't in the image.", 0, NO_PTS, 0, MOLMO_COUNT_NONE, 1, 0, 0},
    {"counting",
     "Counting the <points x1=\"12.0\" y1=\"30.5\" x2=\"48.2\" y2=\"33.0\" x3=\"77.7\" "
     "y3=\"29.9\" alt=\"people\">people</points> shows a total of 3.",
     3,
     {{12.0, 30.5, 1, "people", "people", PS, 0},
      {48.2, 33.0, 2, "people", "people", PS, 0},
      {77.7, 29.9, 3, "people", "people", PS, 0}},
     3, MOLMO_COUNT_LAST_WORD, 0, 0, 0},
    {"counting one",
     "Counting the <point x=\"50.0\" y=\"50.0\" alt=\"cat\">cat</point> shows a total of 1.", 1,
     {{50.0, 50.0, 0, "cat", "cat", P, 0}}, 1, MOLMO_COUNT_LAST_WORD, 0, 0, 0},
    {"count disagrees",
     "Counting the <points x1=\"10.0\" y1=\"10.0\" x2=\"20.0\" y2=\"20.0\" alt=\"cups\">cups"
     "</points> shows a total of 3.",
     2,
     {{10.0, 10.0, 1, "cups", "cups", PS, 0}, {20.0, 20.0, 2, "cups", "cups", PS, 0}}, 3,
     MOLMO_COUNT_LAST_WORD, 0, 0, 0},
    {"explanation inline",
     "The <point x=\"20.0\" y=\"30.0\" alt=\"red car on the left\">red car</point> is parked "
     "next to <points x1=\"60.0\" y1=\"40.0\" x2=\"70.0\" y2=\"45.0\" alt=\"trees\">two "
     "trees</points>.",
     3,
     {{20.0, 30.0, 0, "red car on the left", "red car", P, 0},
      {60.0, 40.0, 1, "trees", "two trees", PS, 0},
      {70.0, 45.0, 2, "trees", "two trees", PS, 0}},
     NOCOUNT, 0, 0, 0},
    {"any order", "<point alt=\"dog\" y=\"40.6\" x=\"61.5\">dog</point>", 1,
     {{61.5, 40.6, 0, "dog", "dog", P, 0}}, NOCOUNT, 0, 0, 0},
    {"quotes and spaces", "<point x = '61.5'  y= \" 40.6\" alt='a dog' > a dog </point >", 1,
     {{61.5, 40.6, 0, "a dog", "a dog", P, 0}}, NOCOUNT, 0, 0, 0},
    {"bare values", "<point x=61.5 y=40.6 alt=dog>dog</point>", 1,
     {{61.5, 40.6, 0, "dog", "dog", P, 0}}, NOCOUNT, 0, 0, 0},
    {"uppercase", "<POINT X=\"1.5\" Y=\"2.5\" ALT=\"A\">A</POINT>", 1,
     {{1.5, 2.5, 0, "A", "A", P, 0}}, NOCOUNT, 0, 0, 0},
    {"cut in attribute", "Counting the <points x1=\"10.0\" y1=\"20.0\" x2=\"30.0\" y2=\"4", 1,
     {{10.0, 20.0, 1, "", "", PS, 1}}, NOCOUNT, 0, 1, MOLMO_POINT_REJECT_UNPAIRED},
    {"cut in inner text", "<point x=\"10.0\" y=\"20.0\" alt=\"dog\">do", 1,
     {{10.0, 20.0, 0, "dog", "do", P, 1}}, NOCOUNT, 0, 0, 0},
    {"cut in name", "Counting the <poi", 0, NO_PTS, NOCOUNT, 0, 0, 0},
    {"cut in closing tag", "<point x=\"1.0\" y=\"2.0\">a</poi", 1,
     {{1.0, 2.0, 0, "", "a", P, 1}}, NOCOUNT, 0, 0, 0},
    {"over 100", "<point x=\"100.5\" y=\"50.0\" alt=\"x\">x</point>", 0, NO_PTS, NOCOUNT, 0, 1,
     MOLMO_POINT_REJECT_RANGE},
    {"exactly 0 and 100", "<point x=\"100.0\" y=\"0.0\">corner</point>", 1,
     {{100.0, 0.0, 0, "", "corner", P, 0}}, NOCOUNT, 0, 0, 0},
    {"negative", "<point x=\"-5.0\" y=\"50.0\">x</point>", 0, NO_PTS, NOCOUNT, 0, 1,
     MOLMO_POINT_REJECT_RANGE},
    {"not a number", "<point x=\"abc\" y=\"50\">x</point>", 0, NO_PTS, NOCOUNT, 0, 1,
     MOLMO_POINT_REJECT_NUMBER},
    {"exponent", "<point x=\"5e1\" y=\"50\">x</point>", 0, NO_PTS, NOCOUNT, 0, 1,
     MOLMO_POINT_REJECT_NUMBER},
    {"duplicate and unpaired", "<points x1=\"1\" y1=\"2\" x1=\"3\" y2=\"4\">a</points>", 1,
     {{1.0, 2.0, 1, "", "a", PS, 0}}, NOCOUNT, 0, 2, MOLMO_POINT_REJECT_DUPLICATE},
    {"empty tag", "<point alt=\"dog\">dog</point>", 0, NO_PTS, NOCOUNT, 0, 1,
     MOLMO_POINT_REJECT_EMPTY},
    {"click", "Click(45.3, 67.8)", 1, {{45.3, 67.8, 0, "", "", MOLMO_POINT_SRC_CLICK, 0}},
     NOCOUNT, 0, 0, 0},
    {"paren", "The object is at (45.3, 67.8).", 1,
     {{45.3, 67.8, 0, "", "", MOLMO_POINT_SRC_PAREN, 0}}, NOCOUNT, 0, 0, 0},
    {"paren without dots", "See items (1, 2) and (3 4).", 0, NO_PTS, NOCOUNT, 0, 0, 0},
    {"p3", "p=453,678", 1, {{45.3, 67.8, 0, "", "", MOLMO_POINT_SRC_P3, 0}}, NOCOUNT, 0, 0, 0},
    {"p3 numbered", "1 = 100 , 205 and 2=999,000x", 2,
     {{10.0, 20.5, 0, "", "", MOLMO_POINT_SRC_P3, 0},
      {99.9, 0.0, 0, "", "", MOLMO_POINT_SRC_P3, 0}},
     NOCOUNT, 0, 0, 0},
    {"legacy over 100", "Click(150.0, 20.0)", 0, NO_PTS, NOCOUNT, 0, 1, MOLMO_POINT_REJECT_RANGE},
    {"implicit close", "<point x=\"1.0\" y=\"2.0\">a<point x=\"3.0\" y=\"4.0\">b</point>", 2,
     {{1.0, 2.0, 0, "", "a", P, 1}, {3.0, 4.0, 0, "", "b", P, 0}}, NOCOUNT, 0, 0, 0},
    {"self-closing", "<point x=\"5\" y=\"6\"/> and <point x=\"7\" y=\"8\" />", 2,
     {{5.0, 6.0, 0, "", "", P, 0}, {7.0, 8.0, 0, "", "", P, 0}}, NOCOUNT, 0, 0, 0},
    {"not our tags", "<pointer x=\"1\" y=\"2\">a</pointer> a < b, x=1 <p>", 0, NO_PTS, NOCOUNT, 0,
     0, 0},
    {"gt in quoted alt", "<point x=\"1\" y=\"2\" alt=\"a>b\">c</point>", 1,
     {{1.0, 2.0, 0, "a>b", "c", P, 0}}, NOCOUNT, 0, 0, 0},
    {"unterminated quote", "<point x=\"1\" y=\"2\" alt=\"dog><point x=\"3\" y=\"4\">c</point>", 2,
     {{1.0, 2.0, 0, "", "", P, 1}, {3.0, 4.0, 0, "", "c", P, 0}}, NOCOUNT, 0, 0, 0},
    {"utf-8 label", "<point x=\"33.3\" y=\"66.6\" alt=\"\xe7\x8c\xab\">\xe7\x8c\xab</point>", 1,
     {{33.3, 66.6, 0, "\xe7\x8c\xab", "\xe7\x8c\xab", P, 0}}, NOCOUNT, 0, 0, 0},
    {"number word", "I count five.", 0, NO_PTS, 5, MOLMO_COUNT_LAST_WORD, 0, 0, 0},
    {"there are", "There are 3 dogs in the image.", 0, NO_PTS, 3, MOLMO_COUNT_THERE_ARE, 0, 0, 0},
    {"total of word", "That makes a total of twelve cars in all", 0, NO_PTS, 12, MOLMO_COUNT_TOTAL,
     0, 0, 0},
    {"number inside label", "<point x=\"1\" y=\"2\" alt=\"sign\">Exit 2</point>", 1,
     {{1.0, 2.0, 0, "sign", "Exit 2", P, 0}}, NOCOUNT, 0, 0, 0},
    {"none word inside", "Nonexistent items: 4 apples.", 0, NO_PTS, NOCOUNT, 0, 0, 0},
};
static const int n_cases = (int)(sizeof cases / sizeof cases[0]);

static void check_case(const pcase *c, const molmo_points *r) {
    if (r->n_points != c->n)
        fail_msg("%s: %d points, expected %d", c->name, r->n_points, c->n);
    for (int i = 0; i < c->n; i++) {
        const molmo_point *p = &r->points[i];
        const exp_pt *e = &c->pts[i];
        if (p->x_pct != e->xp || p->y_pct != e->yp || p->index != e->index ||
            strcmp(p->alt, e->alt) || strcmp(p->label, e->label) || p->source != e->src ||
            p->truncated != e->truncated)
            fail_msg("%s: point %d is (%g, %g) #%d alt '%s' label '%s' src %d trunc %d", c->name,
                     i, p->x_pct, p->y_pct, p->index, p->alt, p->label, p->source, p->truncated);
        /* the official conversion, bit for bit */
        assert_true(p->x == e->xp / 100.0 * W && p->y == e->yp / 100.0 * H);
    }
    if (r->count != c->count || r->count_kind != c->kind || r->none != c->none)
        fail_msg("%s: count %d kind %s none %d, expected %d %s %d", c->name, r->count,
                 molmo_count_kind_name(r->count_kind), r->none, c->count,
                 molmo_count_kind_name(c->kind), c->none);
    if (r->n_rejected != c->n_rej || (c->n_rej && r->rejected[0].reason != c->rej0))
        fail_msg("%s: %d rejected (first %s), expected %d (%s)", c->name, r->n_rejected,
                 r->n_rejected ? molmo_point_reject_name(r->rejected[0].reason) : "-", c->n_rej,
                 molmo_point_reject_name(c->rej0));
    assert_int_equal(r->image_width, W);
    assert_int_equal(r->plain_text[r->plain_len], '\0');
}

static void test_table(void **state) {
    for (int i = 0; i < n_cases; i++) {
        molmo_points *r = NULL;
        molmo_error err;
        assert_int_equal(molmo_points_parse(cases[i].text, strlen(cases[i].text), W, H, &r, &err),
                         MOLMO_OK);
        check_case(&cases[i], r);
        molmo_points_free(r);
    }
}

/* Details the table does not show: groups, spans, plain text, reject values. */
static void test_details(void **state) {
    const char *t = cases[7].text; /* explanation inline */
    molmo_points *r = NULL;
    assert_int_equal(molmo_points_parse(t, strlen(t), W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_groups, 2);
    assert_int_equal(r->points[0].group, 0);
    assert_int_equal(r->points[2].group, 1);
    assert_int_equal(r->points[0].offset, 4);
    assert_true(strncmp(t + r->points[0].offset + r->points[0].length - 8, "</point>", 8) == 0);
    assert_string_equal(r->plain_text, "The red car is parked next to two trees.");
    molmo_points_free(r);

    t = "<points x1=\"120\" y1=\"5\" x2=\"3\">a</points>";
    assert_int_equal(molmo_points_parse(t, strlen(t), W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_rejected, 2);
    assert_int_equal(r->rejected[0].reason, MOLMO_POINT_REJECT_RANGE);
    assert_true(r->rejected[0].x_pct == 120 && r->rejected[0].y_pct == 5);
    assert_int_equal(r->rejected[1].reason, MOLMO_POINT_REJECT_UNPAIRED);
    assert_int_equal(r->rejected[1].index, 2);
    assert_true(r->rejected[1].x_pct == 3 && isnan(r->rejected[1].y_pct));
    molmo_points_free(r);

    /* empty text, NULs in the text */
    assert_int_equal(molmo_points_parse("", 0, 1, 1, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, 0);
    assert_string_equal(r->plain_text, "");
    molmo_points_free(r);
    static const char nul[] = "a\0<point x=\"1\" y=\"2\">\0</point>";
    assert_int_equal(molmo_points_parse(nul, sizeof nul - 1, W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, 1);
    assert_int_equal(r->plain_len, 3);
    molmo_points_free(r);
}

static void same_result(const molmo_points *a, const molmo_points *b, const char *what) {
    if (a->n_points != b->n_points || a->n_rejected != b->n_rejected || a->count != b->count ||
        a->count_kind != b->count_kind || a->none != b->none || a->n_groups != b->n_groups ||
        a->plain_len != b->plain_len || memcmp(a->plain_text, b->plain_text, a->plain_len))
        fail_msg("%s: streamed result differs (%d/%d points, %d/%d rejected)", what, a->n_points,
                 b->n_points, a->n_rejected, b->n_rejected);
    for (int i = 0; i < a->n_points; i++) {
        const molmo_point *p = &a->points[i], *q = &b->points[i];
        if (p->x != q->x || p->y != q->y || p->index != q->index || p->group != q->group ||
            p->source != q->source || p->offset != q->offset || p->length != q->length ||
            p->truncated != q->truncated || strcmp(p->alt, q->alt) || strcmp(p->label, q->label))
            fail_msg("%s: streamed point %d differs", what, i);
    }
    for (int i = 0; i < a->n_rejected_kept; i++)
        if (a->rejected[i].reason != b->rejected[i].reason ||
            a->rejected[i].offset != b->rejected[i].offset)
            fail_msg("%s: streamed reject %d differs", what, i);
}

/* Feeds `t` in pieces of `step` bytes (0: pseudo-random 1..9); returns the result and checks
 * that the points reported along the way are exactly the result's points, in order. */
static molmo_points *stream(const char *t, size_t n, size_t step, unsigned seed) {
    molmo_points_parser *p = NULL;
    assert_int_equal(molmo_points_parser_create(W, H, &p, NULL), MOLMO_OK);
    double *xs = malloc(sizeof(double) * (n + 1));
    int seen = 0;
    for (size_t at = 0; at < n;) {
        size_t k = step ? step : 1 + (seed = seed * 1103515245u + 12345u) % 9;
        if (k > n - at) k = n - at;
        const molmo_point *np;
        int nn;
        assert_int_equal(molmo_points_parser_feed(p, t + at, k, &np, &nn, NULL), MOLMO_OK);
        for (int i = 0; i < nn; i++) xs[seen++] = np[i].x;
        at += k;
    }
    const molmo_point *np;
    int nn;
    molmo_points *r = NULL;
    assert_int_equal(molmo_points_parser_finish(p, &np, &nn, &r, NULL), MOLMO_OK);
    for (int i = 0; i < nn; i++) xs[seen++] = np[i].x;
    assert_int_equal(seen, r->n_points);
    for (int i = 0; i < seen; i++) assert_true(xs[i] == r->points[i].x);
    free(xs);
    molmo_points_parser_free(p);
    return r;
}

static void test_stream_equals_whole(void **state) {
    for (int i = 0; i < n_cases; i++) {
        const char *t = cases[i].text;
        molmo_points *whole = NULL;
        assert_int_equal(molmo_points_parse(t, strlen(t), W, H, &whole, NULL), MOLMO_OK);
        for (size_t step = 0; step <= 8; step++) {
            molmo_points *s = stream(t, strlen(t), step, (unsigned)(i * 31 + step));
            same_result(s, whole, cases[i].name);
            molmo_points_free(s);
        }
        molmo_points_free(whole);
    }
}

/* A point is reported by the feed that completes it, not later. */
static void test_stream_timing(void **state) {
    molmo_points_parser *p = NULL;
    const molmo_point *np;
    int n;
    molmo_points *r = NULL;
    assert_int_equal(molmo_points_parser_create(100, 200, &p, NULL), MOLMO_OK);
    static const struct { const char *piece; int n_new; } steps[] = {
        {"Counting the <points x1=\"10.0\" y1=\"20.0\"", 0}, {" x2=\"30.0\" y2=\"40.0\"", 0},
        {" alt=\"dogs\">dogs", 0}, {"</points", 0}, {">", 2}, {" and Click(1.0, 2.0", 0},
        {")", 1}, {" p=100,20", 0}, {"0", 0}, {" ", 1}, {"shows a total of 3", 0}};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        assert_int_equal(molmo_points_parser_feed(p, steps[i].piece, strlen(steps[i].piece), &np,
                                                  &n, NULL),
                         MOLMO_OK);
        if (n != steps[i].n_new) fail_msg("piece %zu ('%s'): %d new points", i, steps[i].piece, n);
    }
    assert_int_equal(molmo_points_parser_finish(p, &np, &n, &r, NULL), MOLMO_OK);
    assert_int_equal(n, 0);
    assert_int_equal(r->n_points, 4);
    assert_true(r->points[1].x == 30.0 && r->points[1].y == 80.0);
    assert_int_equal(r->count, 3);
    assert_int_equal(r->count_kind, MOLMO_COUNT_LAST_WORD);
    molmo_points_free(r);
    /* after finish the parser starts over */
    assert_int_equal(molmo_points_parser_feed(p, "<point x=\"5\" y=\"5\">", 19, &np, &n, NULL),
                     MOLMO_OK);
    assert_int_equal(n, 0);
    assert_int_equal(molmo_points_parser_finish(p, &np, &n, &r, NULL), MOLMO_OK);
    assert_int_equal(n, 1);
    assert_int_equal(np[0].truncated, 1);
    assert_int_equal(np[0].offset, 0);
    molmo_points_free(r);
    molmo_points_parser_free(p);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_hostile_many_points(void **state) {
    const int n = 100000;
    size_t cap = (size_t)n * 40 + 64, len = 0;
    char *t = malloc(cap);
    len += (size_t)sprintf(t + len, "<points");
    for (int i = 1; i <= n; i++)
        len += (size_t)sprintf(t + len, " x%d=\"%d.%d\" y%d=\"%d.5\"", i, i % 100, i % 10, i,
                               (i * 7) % 100);
    len += (size_t)sprintf(t + len, " alt=\"grains\">grains</points>");
    double t0 = seconds();
    molmo_points *r = NULL;
    assert_int_equal(molmo_points_parse(t, len, W, H, &r, NULL), MOLMO_OK);
    double dt = seconds() - t0;
    assert_int_equal(r->n_points, n);
    assert_int_equal(r->n_groups, 1);
    for (int i = 1; i <= n; i += 997) {
        const molmo_point *p = &r->points[i - 1];
        assert_int_equal(p->index, i);
        char num[32];
        snprintf(num, sizeof num, "%d.%d", i % 100, i % 10);
        assert_true(p->x_pct == strtod(num, NULL));
        assert_true(p->y_pct == (i * 7) % 100 + 0.5);
        assert_string_equal(p->label, "grains");
    }
    /* the same streamed in 3-byte pieces */
    molmo_points *s = stream(t, len, 3, 0);
    same_result(s, r, "10^5 points");
    molmo_points_free(s);
    molmo_points_free(r);
    if (getenv("MOLMO_TEST_VERBOSE")) printf("10^5 points: %.1f ms (limit 2000)\n", dt * 1e3);
    if (dt > 2.0) fail_msg("10^5 points took %.2f s", dt);

    /* 10^5 separate tags in reverse index order, and one tag with indices shuffled */
    len = 0;
    for (int i = 0; i < n; i++) len += (size_t)sprintf(t + len, "<point x=\"1\" y=\"2\">p</point>");
    assert_int_equal(molmo_points_parse(t, len, W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, n);
    assert_int_equal(r->n_groups, n);
    assert_int_equal(r->points[n - 1].group, n - 1);
    molmo_points_free(r);
    len = (size_t)sprintf(t, "<points");
    for (int i = 1000; i >= 1; i--)
        len += (size_t)sprintf(t + len, " y%d=\"%d\" x%d=\"1\"", i, i % 100, i);
    len += (size_t)sprintf(t + len, ">");
    assert_int_equal(molmo_points_parse(t, len, W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, 1000);
    assert_int_equal(r->points[0].index, 1);
    assert_true(r->points[41].y_pct == 42);
    molmo_points_free(r);
    free(t);
}

static void test_hostile_megabyte(void **state) {
    const size_t mb = 1 << 20;
    char *t = malloc(mb + 16);
    const char *unit = "<points x1=";
    size_t ul = strlen(unit), len = 0, tags = 0;
    while (len + ul <= mb) memcpy(t + len, unit, ul), len += ul, tags++;
    double t0 = seconds();
    molmo_points *r = NULL;
    assert_int_equal(molmo_points_parse(t, len, W, H, &r, NULL), MOLMO_OK);
    double dt = seconds() - t0;
    assert_int_equal(r->n_points, 0);
    assert_int_equal(r->n_rejected, (int)tags); /* each: x1 without y1 */
    assert_int_equal(r->n_rejected_kept, MOLMO_POINTS_MAX_REJECTS);
    molmo_points *s = stream(t, len, 0, 7);
    same_result(s, r, "1 MB of <points x1=");
    molmo_points_free(s);
    molmo_points_free(r);
    if (getenv("MOLMO_TEST_VERBOSE")) printf("1 MB of <points x1=: %.1f ms, %zu tags\n", dt * 1e3, tags);
    if (dt > 2.0) fail_msg("1 MB took %.2f s", dt);

    /* an unterminated quoted value and an endless inner text: capped, still linear */
    memcpy(t, "<point x=\"1\" y=\"2\" alt=\"", 24);
    memset(t + 24, 'a', mb - 24);
    assert_int_equal(molmo_points_parse(t, mb, W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, 1);
    assert_string_equal(r->points[0].alt, "");
    molmo_points_free(r);
    memcpy(t, "<point x=\"1\" y=\"2\">\xe7\x8c\xab", 22);
    for (size_t i = 22; i + 3 <= mb; i += 3) memcpy(t + i, "\xe7\x8c\xab", 3);
    assert_int_equal(molmo_points_parse(t, mb - (mb - 19) % 3, W, H, &r, NULL), MOLMO_OK);
    assert_int_equal(r->n_points, 1);
    size_t ll = strlen(r->points[0].label);
    assert_true(ll <= MOLMO_POINTS_MAX_STRING && ll > MOLMO_POINTS_MAX_STRING - 4 && ll % 3 == 0);
    assert_true(r->points[0].truncated);
    molmo_points_free(r);
    /* random bytes never crash and stream the same */
    unsigned seed = 1;
    for (size_t i = 0; i < 200000; i++) {
        static const char alphabet[] = "<>/=\"' pointsxy12.0,()Click\n\x80";
        seed = seed * 1103515245u + 12345u;
        t[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
    }
    assert_int_equal(molmo_points_parse(t, 200000, W, H, &r, NULL), MOLMO_OK);
    s = stream(t, 200000, 0, 3);
    same_result(s, r, "random bytes");
    molmo_points_free(s);
    molmo_points_free(r);
    free(t);
}

static void test_errors(void **state) {
    molmo_points *r = (molmo_points *)1;
    molmo_error err;
    assert_int_equal(molmo_points_parse("x", 1, 0, 10, &r, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(r);
    assert_non_null(strstr(err.msg, "0x10"));
    assert_int_equal(molmo_points_parse("x", 1, 10, 1000001, &r, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_points_parse(NULL, 1, 10, 10, &r, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_points_parse(NULL, 0, 10, 10, &r, &err), MOLMO_OK);
    molmo_points_free(r);
    assert_int_equal(molmo_points_parse("x", 1, 10, 10, NULL, &err), MOLMO_ERR_INVALID_ARG);
    molmo_points_parser *p = NULL;
    assert_int_equal(molmo_points_parser_create(-1, 5, &p, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(p);
    assert_int_equal(molmo_points_parser_feed(NULL, "x", 1, NULL, NULL, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_points_parser_finish(NULL, NULL, NULL, &r, &err), MOLMO_ERR_INVALID_ARG);
    molmo_points_free(NULL);
    molmo_points_parser_free(NULL);
    assert_string_equal(molmo_point_source_name(MOLMO_POINT_SRC_P3), "p3");
    assert_string_equal(molmo_point_reject_name(MOLMO_POINT_REJECT_EMPTY), "empty");
    assert_string_equal(molmo_count_kind_name(MOLMO_COUNT_THERE_ARE), "there_are");
    assert_string_equal(molmo_count_kind_name((molmo_count_kind)99), "unknown");
}

/* Every allocation failure gives MOLMO_ERR_NOMEM (never a crash or a wrong result); ASan
 * checks that nothing leaks. */
static void test_oom(void **state) {
    const char *t = cases[7].text;
    molmo_points *want = NULL;
    assert_int_equal(molmo_points_parse(t, strlen(t), W, H, &want, NULL), MOLMO_OK);
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        molmo_points *r = NULL;
        molmo_error err;
        molmo_alloc_fail_after(n);
        molmo_status st = molmo_points_parse(t, strlen(t), W, H, &r, &err);
        molmo_alloc_fail_after(-1);
        if (st == MOLMO_OK) {
            same_result(r, want, "after allocation failures");
            if (getenv("MOLMO_TEST_VERBOSE")) printf("parse: %ld allocation failures, all NOMEM\n", n);
            ok = 1;
        } else {
            assert_int_equal(st, MOLMO_ERR_NOMEM);
            assert_null(r);
        }
        molmo_points_free(r);
    }
    assert_true(ok);
    molmo_points_free(want);
}

static void test_numbers(void **state) {
    static const struct { const char *s; int ok; double v; } nums[] = {
        {"61.5", 1, 61.5}, {" 7 ", 1, 7},   {"+3.25", 1, 3.25}, {"-0.5", 1, -0.5},
        {"5.", 1, 5},      {".5", 1, 0.5},  {"0000100.0", 1, 100}, {"1e5", 0, 0},
        {"", 0, 0},        {".", 0, 0},     {"1.2.3", 0, 0},   {"12a", 0, 0},
        {"0x10", 0, 0},    {"inf", 0, 0},   {"nan", 0, 0},     {"- 1", 0, 0},
        {"61.50000000000000000000001", 1, 61.5},
        {"0.1000000000000000055511151231257827", 1, 0.1},
        {"99.99999999999999999999", 1, 100.0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        double v = -1;
        int ok = molmo_points_number(nums[i].s, strlen(nums[i].s), &v);
        if (ok != nums[i].ok || (ok && v != nums[i].v))
            fail_msg("'%s': ok %d value %.17g", nums[i].s, ok, v);
    }
    /* the decimal point is '.' whatever the C locale says */
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
        double v = 0;
        assert_true(molmo_points_number("61.50000000000000000000001", 26, &v) && v == 61.5);
        assert_true(molmo_points_number("61.5", 4, &v) && v == 61.5);
        setlocale(LC_NUMERIC, "C");
    }
}

static void test_count_rules(void **state) {
    static const struct {
        const char *s;
        size_t tail;
        int count;
        molmo_count_kind k;
        int none;
    } c[] = {
        {"3", 0, 3, MOLMO_COUNT_LAST_WORD, 0},
        {"The answer is 3 .. ", 0, 3, MOLMO_COUNT_LAST_WORD, 0},
        {"Exit 2", 6, -1, MOLMO_COUNT_UNSTATED, 0}, /* inside a label */
        {"shows a total of 4 dogs", 0, 4, MOLMO_COUNT_TOTAL, 0},
        {"a total of 4, then a total of 5 again", 0, 5, MOLMO_COUNT_TOTAL, 0},
        {"A TOTAL OF Seven birds", 0, 7, MOLMO_COUNT_TOTAL, 0},
        {"there is one cat here", 0, 1, MOLMO_COUNT_THERE_ARE, 0},
        {"There are no dogs here", 0, 0, MOLMO_COUNT_NONE, 1},
        {"None", 0, 0, MOLMO_COUNT_NONE, 1},
        {"nonetheless it is 1234567890", 0, -1, MOLMO_COUNT_UNSTATED, 0},
        {"twenty-one", 0, -1, MOLMO_COUNT_UNSTATED, 0},
        {"twenty", 0, 20, MOLMO_COUNT_LAST_WORD, 0},
        {"None of them, a total of 2", 0, 2, MOLMO_COUNT_LAST_WORD, 1},
        {"", 0, -1, MOLMO_COUNT_UNSTATED, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int count, none;
        molmo_count_kind k;
        molmo_points_count_statement(c[i].s, strlen(c[i].s), c[i].tail, &count, &k, &none);
        if (count != c[i].count || k != c[i].k || none != c[i].none)
            fail_msg("'%s': count %d kind %s none %d", c[i].s, count, molmo_count_kind_name(k),
                     none);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),          cmocka_unit_test(test_details),
        cmocka_unit_test(test_stream_equals_whole), cmocka_unit_test(test_stream_timing),
        cmocka_unit_test(test_hostile_many_points), cmocka_unit_test(test_hostile_megabyte),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_oom),
        cmocka_unit_test(test_numbers),        cmocka_unit_test(test_count_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

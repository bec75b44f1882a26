/* points.c — the point/count answer parser (fact sheet §8; the official olmo/util.py
 * extract_points and DataFormatter.points_to_text; rules in docs/points.md).
 *
 * One byte-at-a-time state machine serves both the whole-text call and the incremental
 * parser, so a streamed answer gives exactly what the whole text gives, whatever the pieces
 * were, and every input costs time and memory linear in its length: nothing is ever
 * re-scanned (1 MB of "<points x1=" is one pass). Markup:
 *   TEXT --'<'--> LT (up to 3 spaces, a name of at most 8 letters) --point|points--> ATTRS
 *   ATTRS: name[=value] pairs, values "…", '…' or bare; '>' opens the element (INNER), '/>'
 *   closes it at once, '<' abandons the tag (the complete attributes are kept)
 *   INNER --'</point>' or '</points>'--> element done; '<point' ends it implicitly
 * Legacy forms are matched in a small window of the text outside elements (points_legacy.c
 * has the rules; count statements are in points_count.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/points.h"
#include "text/points_impl.h"

/* ---- small growable buffers (a failed allocation sets the parser's sticky oom flag) ----- */

int molmo_pp_reserve(molmo_points_parser *p, void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap : 16, bytes;
    while (n < need) {
        if (n > SIZE_MAX / 2) return p->oom = 1, 0;
        n *= 2;
    }
    if (!molmo_mul_size(n, elem, &bytes)) return p->oom = 1, 0;
    void *q = molmo_realloc(*arr, bytes);
    if (!q) return p->oom = 1, 0;
    *arr = q;
    *cap = n;
    return 1;
}

static void sbuf_push(molmo_points_parser *p, molmo_pp_sbuf *b, char c) {
    if (b->n + 2 > b->cap && !molmo_pp_reserve(p, (void **)&b->p, &b->cap, b->n + 2, 1)) return;
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
}

/* Appends to a capped buffer (alt, inner text): bytes past the cap are dropped. */
static void capped_push(molmo_points_parser *p, molmo_pp_sbuf *b, char c) {
    if (b->n < MOLMO_POINTS_MAX_STRING) sbuf_push(p, b, c);
}

/* ---- string storage: chunks never move, so the strings points refer to stay put --------- */

const char *molmo_pp_store(molmo_points_parser *p, const char *s, size_t n) {
    if (n == 0) return "";
    molmo_pp_chunk *c = p->strings;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > 8192 ? n + 1 : 8192;
        c = molmo_malloc(sizeof *c + cap);
        if (!c) return p->oom = 1, "";
        c->next = p->strings;
        c->used = 0;
        c->cap = cap;
        p->strings = c;
    }
    char *d = c->data + c->used;
    memcpy(d, s, n);
    d[n] = '\0';
    c->used += n + 1;
    return d;
}

void molmo_pp_free_chunks(molmo_pp_chunk *c) {
    while (c) {
        molmo_pp_chunk *next = c->next;
        molmo_free(c);
        c = next;
    }
}

/* ---- results ----------------------------------------------------------------------------- */

void molmo_pp_reject(molmo_points_parser *p, molmo_point_reject_reason why, molmo_point_source src,
                     int index, double x, double y, size_t offset) {
    if (p->n_rejected < INT32_MAX) p->n_rejected++;
    if (p->n_rej >= MOLMO_POINTS_MAX_REJECTS) return;
    if (!molmo_pp_reserve(p, (void **)&p->rej, &p->cap_rej, p->n_rej + 1, sizeof *p->rej)) return;
    molmo_point_reject *r = &p->rej[p->n_rej++];
    r->reason = why;
    r->source = src;
    r->index = index;
    r->x_pct = x;
    r->y_pct = y;
    r->offset = offset;
}

/* Adds a point after the range check the official parser makes (a value above 100 drops the
 * point; negative values, which its regexes cannot match, are dropped too). Returns 1 when
 * a point was added. */
int molmo_pp_point(molmo_points_parser *p, const molmo_pp_group *g, int index, double x_pct,
                   double y_pct) {
    if (!(x_pct >= 0 && x_pct <= 100 && y_pct >= 0 && y_pct <= 100)) {
        molmo_pp_reject(p, MOLMO_POINT_REJECT_RANGE, g->source, index, x_pct, y_pct, g->offset);
        return 0;
    }
    if (p->n_pts >= INT32_MAX - 1) return p->oom = 1, 0;
    if (!molmo_pp_reserve(p, (void **)&p->pts, &p->cap_pts, p->n_pts + 1, sizeof *p->pts)) return 0;
    molmo_point *q = &p->pts[p->n_pts++];
    q->x_pct = x_pct;
    q->y_pct = y_pct;
    /* the official order of operations: point / 100 * [W, H] */
    q->x = x_pct / 100.0 * (double)p->width;
    q->y = y_pct / 100.0 * (double)p->height;
    q->index = index;
    q->group = p->n_groups;
    q->source = g->source;
    q->alt = g->alt;
    q->label = g->label;
    q->offset = g->offset;
    q->length = g->length;
    q->truncated = g->truncated;
    return 1;
}

/* ---- tags -------------------------------------------------------------------------------- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_alpha(int c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_name(int c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == ':'; }

/* Stores a finished attribute: alt, or a coordinate x, y, xN, yN. Others are ignored. */
static void end_attr(molmo_points_parser *p) {
    const char *a = p->aname;
    size_t n = p->aname_len;
    if (n == 3 && !memcmp(a, "alt", 3)) {
        p->alt.n = 0;
        for (size_t i = 0; i < p->val.n; i++) capped_push(p, &p->alt, p->val.p[i]);
        p->has_alt = 1;
    } else if (n >= 1 && n <= 10 && (a[0] == 'x' || a[0] == 'y') && !p->aname_over) {
        int index = 0;
        for (size_t i = 1; i < n; i++) {
            if (!is_digit(a[i])) return;
            index = index * 10 + (a[i] - '0');
        }
        molmo_pp_coord c;
        c.index = index;
        c.axis = a[0] == 'y';
        c.ok = !p->val_over && molmo_points_number(p->val.p ? p->val.p : "", p->val.n, &c.v);
        if (!c.ok) c.v = NAN;
        c.seq = p->n_coords;
        if (molmo_pp_reserve(p, (void **)&p->coords, &p->cap_coords, p->n_coords + 1,
                             sizeof *p->coords))
            p->coords[p->n_coords++] = c;
    }
}

static void start_value(molmo_points_parser *p) {
    p->val.n = 0;
    p->val_over = 0;
    if (p->val.p) p->val.p[0] = '\0';
}

static void value_byte(molmo_points_parser *p, char c) {
    if (p->val.n < MOLMO_POINTS_MAX_STRING)
        sbuf_push(p, &p->val, c);
    else
        p->val_over = 1;
}

/* Opens a <point>/<points> tag whose '<' was at `start`. */
static void open_tag(molmo_points_parser *p, size_t start, int multi) {
    molmo_pp_legacy_flush(p);
    p->tag_src = multi ? MOLMO_POINT_SRC_POINTS : MOLMO_POINT_SRC_POINT;
    p->tag_start = start;
    p->n_coords = 0;
    p->alt.n = 0;
    p->has_alt = 0;
    p->inner.n = 0;
}

/* Trims ASCII spaces and cuts a capped buffer back to a whole UTF-8 character. */
static const char *store_trimmed(molmo_points_parser *p, const molmo_pp_sbuf *b, int capped) {
    size_t s = 0, e = b->n;
    if (e == 0) return "";
    if (capped && e >= MOLMO_POINTS_MAX_STRING) {
        /* drop a last character the cap cut in two */
        size_t k = e;
        while (k > 0 && e - k < 3 && ((unsigned char)b->p[k - 1] & 0xC0) == 0x80) k--;
        unsigned lead = k > 0 ? (unsigned char)b->p[k - 1] : 0;
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (k > 0 && lead >= 0xC0 && e - k < need) e = k - 1;
    }
    while (s < e && is_space((unsigned char)b->p[s])) s++;
    while (e > s && is_space((unsigned char)b->p[e - 1])) e--;
    return e > s ? molmo_pp_store(p, b->p + s, e - s) : "";
}

static int coord_cmp(const void *a, const void *b) {
    const molmo_pp_coord *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    if (x->axis != y->axis) return x->axis < y->axis ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Pairs xN with yN in index order; duplicates, unpaired values and non-numbers are rejected. */
static void pair_coords(molmo_points_parser *p, const molmo_pp_group *g) {
    molmo_pp_coord *c = p->coords;
    size_t n = p->n_coords;
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++) sorted = coord_cmp(&c[i - 1], &c[i]) <= 0;
    if (!sorted) qsort(c, n, sizeof *c, coord_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && c[j].index == c[i].index) j++;
        const molmo_pp_coord *x = NULL, *y = NULL;
        for (size_t k = i; k < j; k++) {
            const molmo_pp_coord **slot = c[k].axis ? &y : &x;
            if (!*slot)
                *slot = &c[k];
            else
                molmo_pp_reject(p, MOLMO_POINT_REJECT_DUPLICATE, g->source, c[k].index,
                                c[k].axis ? NAN : c[k].v, c[k].axis ? c[k].v : NAN, g->offset);
        }
        if (!x || !y)
            molmo_pp_reject(p, MOLMO_POINT_REJECT_UNPAIRED, g->source, c[i].index, x ? x->v : NAN,
                            y ? y->v : NAN, g->offset);
        else if (!x->ok || !y->ok)
            molmo_pp_reject(p, MOLMO_POINT_REJECT_NUMBER, g->source, c[i].index, x->v, y->v,
                            g->offset);
        else
            molmo_pp_point(p, g, c[i].index, x->v, y->v);
        i = j;
    }
}

/* Ends the open tag or element at absolute offset `end`: its points become results. */
static void close_tag(molmo_points_parser *p, size_t end, int truncated) {
    molmo_pp_group g;
    g.source = p->tag_src;
    g.offset = p->tag_start;
    g.length = end - p->tag_start;
    g.truncated = truncated;
    g.alt = p->has_alt ? store_trimmed(p, &p->alt, 1) : "";
    g.label = store_trimmed(p, &p->inner, 1);
    size_t before = p->n_pts;
    if (p->n_coords == 0)
        molmo_pp_reject(p, MOLMO_POINT_REJECT_EMPTY, g.source, 0, NAN, NAN, g.offset);
    else
        pair_coords(p, &g);
    if (p->n_pts > before) p->n_groups++;
    p->in_elem = 0;
    p->n_coords = 0;
    p->plain_tail = p->plain.n;
}

/* ---- the byte machine -------------------------------------------------------------------- */

/* A byte of answer text (outside markup, or an element's inner text). */
static void text_byte(molmo_points_parser *p, char c, size_t off) {
    sbuf_push(p, &p->plain, c);
    if (p->in_elem)
        capped_push(p, &p->inner, c);
    else
        molmo_pp_legacy_byte(p, c, off);
}

/* '<' seen at `off`: start reading a possible tag name. */
static void start_lt(molmo_points_parser *p, size_t off) {
    p->state = PS_LT;
    p->lt_start = off;
    p->lt_len = 0;
    p->lt_buf[p->lt_len++] = '<';
    p->lt_name_len = 0;
}

/* The bytes after '<' were not our markup: they are text after all. */
static void replay_lt(molmo_points_parser *p) {
    p->state = p->in_elem ? PS_INNER : PS_TEXT;
    for (int i = 0; i < p->lt_len; i++) text_byte(p, p->lt_buf[i], p->lt_start + (size_t)i);
}

static int name_is(const molmo_points_parser *p, const char *s) {
    size_t n = strlen(s);
    return (size_t)p->lt_name_len == n && !memcmp(p->lt_name, s, n);
}

/* PS_LT: '<', up to 3 spaces, then a name. Returns 1 when `c` was consumed. */
static int lt_byte(molmo_points_parser *p, char c, size_t off) {
    int u = (unsigned char)c;
    if (p->lt_name_len == 0 && is_space(u) && p->lt_len < 4) {
        p->lt_buf[p->lt_len++] = c;
        return 1;
    }
    if ((is_alpha(u) || (u == '/' && p->lt_name_len == 0)) && p->lt_name_len < 8) {
        p->lt_buf[p->lt_len++] = c;
        p->lt_name[p->lt_name_len++] = (char)lower(u);
        return 1;
    }
    int ends = is_space(u) || u == '>' || u == '/';
    if (ends && (name_is(p, "point") || name_is(p, "points"))) {
        if (p->in_elem) close_tag(p, p->lt_start, 1);
        open_tag(p, p->lt_start, name_is(p, "points"));
        p->state = PS_ATTRS;
        return 0; /* the terminator is handled by PS_ATTRS */
    }
    if ((is_space(u) || u == '>') && p->in_elem &&
        (name_is(p, "/point") || name_is(p, "/points"))) {
        p->state = PS_CLOSE;
        return 0;
    }
    replay_lt(p);
    return 0;
}

/* PS_ATTRS and the attribute states. Returns 1 when `c` was consumed. */
static int attr_byte(molmo_points_parser *p, char c, size_t off) {
    int u = (unsigned char)c;
    switch (p->state) {
    case PS_ATTRS:
        if (is_space(u)) return 1;
        if (u == '>') {
            p->state = PS_INNER;
            p->in_elem = 1;
            return 1;
        }
        if (u == '/') return p->state = PS_SLASH, 1;
        if (u == '<') return close_tag(p, off, 1), p->state = PS_TEXT, 0;
        p->aname_len = p->aname_over = 0;
        p->state = PS_ANAME;
        return 0;
    case PS_SLASH:
        if (u == '>') return close_tag(p, off + 1, 0), p->state = PS_TEXT, 1;
        p->state = PS_ATTRS;
        return 0;
    case PS_ANAME:
        if (is_name(u)) {
            if (p->aname_len < sizeof p->aname)
                p->aname[p->aname_len++] = (char)lower(u);
            else
                p->aname_over = 1;
            return 1;
        }
        if (u == '=') return start_value(p), p->state = PS_AEQ, 1;
        if (is_space(u)) return p->state = PS_AFTER_NAME, 1;
        start_value(p); /* an attribute without a value */
        end_attr(p);
        p->state = PS_ATTRS;
        return u == '<' || u == '>' || u == '/' ? 0 : 1;
    case PS_AFTER_NAME:
        if (is_space(u)) return 1;
        if (u == '=') return start_value(p), p->state = PS_AEQ, 1;
        start_value(p);
        end_attr(p);
        p->state = PS_ATTRS;
        return 0;
    case PS_AEQ:
        if (is_space(u)) return 1;
        if (u == '"' || u == '\'') return p->quote = c, p->state = PS_AVAL_Q, 1;
        if (u == '>' || u == '<') return end_attr(p), p->state = PS_ATTRS, 0;
        p->state = PS_AVAL_U;
        return 0;
    case PS_AVAL_Q:
        if (c == p->quote) return end_attr(p), p->state = PS_ATTRS, 1;
        /* a '<' cannot be inside a value: an unterminated quote ends the tag here */
        if (u == '<') return close_tag(p, off, 1), p->state = PS_TEXT, 0;
        value_byte(p, c);
        return 1;
    case PS_AVAL_U:
        if (is_space(u) || u == '>' || u == '<') return end_attr(p), p->state = PS_ATTRS, 0;
        value_byte(p, c);
        return 1;
    default: return 0;
    }
}

/* One byte of input at absolute offset `off`; loops until a state consumes it. */
static void step(molmo_points_parser *p, char c, size_t off) {
    for (int guard = 0; guard < 8 && !p->oom; guard++) {
        switch (p->state) {
        case PS_TEXT:
        case PS_INNER:
            if (c == '<')
                start_lt(p, off);
            else
                text_byte(p, c, off);
            return;
        case PS_LT:
            if (lt_byte(p, c, off)) return;
            break;
        case PS_CLOSE:
            if (c == '>') {
                close_tag(p, off + 1, 0);
                p->state = PS_TEXT;
                return;
            }
            if (is_space((unsigned char)c)) return;
            p->state = PS_INNER; /* "</point x": not a closing tag after all */
            replay_lt(p);
            break;
        default:
            if (attr_byte(p, c, off)) return;
            break;
        }
    }
}

/* ---- public entry points ----------------------------------------------------------------- */

static void parser_reset(molmo_points_parser *p) {
    int w = p->width, h = p->height;
    memset(p, 0, sizeof *p);
    p->width = w;
    p->height = h;
    p->state = PS_TEXT;
}

static molmo_status check_size(int w, int h, molmo_error *err) {
    if (w < 1 || h < 1 || w > 1000000 || h > 1000000)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "points: image size %dx%d is outside 1..1000000 per side", w, h);
    return MOLMO_OK;
}

molmo_status molmo_points_parser_create(int image_width, int image_height,
                                        molmo_points_parser **out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "points: out is NULL");
    *out = NULL;
    molmo_status st = check_size(image_width, image_height, err);
    if (st != MOLMO_OK) return st;
    molmo_points_parser *p = molmo_calloc(1, sizeof *p);
    if (!p) return molmo_err(err, MOLMO_ERR_NOMEM, "points: out of memory");
    p->width = image_width;
    p->height = image_height;
    parser_reset(p);
    *out = p;
    return MOLMO_OK;
}

static void parser_release(molmo_points_parser *p) {
    molmo_free(p->pts);
    molmo_free(p->rej);
    molmo_free(p->coords);
    molmo_free(p->plain.p);
    molmo_free(p->val.p);
    molmo_free(p->alt.p);
    molmo_free(p->inner.p);
    molmo_pp_free_chunks(p->strings);
}

void molmo_points_parser_free(molmo_points_parser *p) {
    if (!p) return;
    parser_release(p);
    molmo_free(p);
}

molmo_status molmo_points_parser_feed(molmo_points_parser *p, const char *text, size_t len,
                                      const molmo_point **new_points, int *n_new,
                                      molmo_error *err) {
    if (new_points) *new_points = NULL;
    if (n_new) *n_new = 0;
    if (!p || (!text && len)) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "points: NULL argument");
    if (p->oom) return molmo_err(err, MOLMO_ERR_NOMEM, "points: out of memory (earlier feed)");
    size_t first = p->n_pts;
    for (size_t i = 0; i < len && !p->oom; i++) step(p, text[i], p->pos++);
    if (p->oom) return molmo_err(err, MOLMO_ERR_NOMEM, "points: out of memory");
    if (new_points && p->n_pts > first) *new_points = p->pts + first;
    if (n_new) *n_new = (int)(p->n_pts - first);
    return MOLMO_OK;
}

/* Completes whatever the end of the text cut off. */
static void finish_state(molmo_points_parser *p) {
    switch (p->state) {
    case PS_TEXT: break;
    case PS_INNER: close_tag(p, p->pos, 1); break;
    case PS_LT:
        if (p->in_elem)
            close_tag(p, p->pos, 1);
        else
            replay_lt(p);
        break;
    default: /* inside the tag: a value still being read is incomplete and dropped */
        if (p->state == PS_ANAME || p->state == PS_AFTER_NAME) {
            start_value(p);
            end_attr(p);
        }
        close_tag(p, p->pos, 1);
        break;
    }
    p->state = PS_TEXT;
    molmo_pp_legacy_flush(p);
}

molmo_status molmo_points_parser_finish(molmo_points_parser *p, const molmo_point **new_points,
                                        int *n_new, molmo_points **out, molmo_error *err) {
    if (new_points) *new_points = NULL;
    if (n_new) *n_new = 0;
    if (out) *out = NULL;
    if (!p || !out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "points: NULL argument");
    if (p->oom) return molmo_err(err, MOLMO_ERR_NOMEM, "points: out of memory (earlier feed)");
    size_t first = p->n_pts;
    finish_state(p);
    molmo_pp_result *r = p->oom ? NULL : molmo_calloc(1, sizeof *r);
    if (!r || (!p->plain.p && !molmo_pp_reserve(p, (void **)&p->plain.p, &p->plain.cap, 1, 1))) {
        molmo_free(r);
        p->oom = 1;
        return molmo_err(err, MOLMO_ERR_NOMEM, "points: out of memory");
    }
    if (p->plain.n == 0) p->plain.p[0] = '\0';
    molmo_points *o = &r->pub;
    o->points = p->pts;
    o->n_points = (int)p->n_pts;
    o->n_groups = p->n_groups;
    o->rejected = p->rej;
    o->n_rejected_kept = (int)p->n_rej;
    o->n_rejected = p->n_rejected;
    o->plain_text = p->plain.p;
    o->plain_len = p->plain.n;
    o->image_width = p->width;
    o->image_height = p->height;
    int none_phrase = 0;
    molmo_points_count_statement(p->plain.p, p->plain.n, p->plain_tail, &o->count, &o->count_kind,
                                 &none_phrase);
    o->none = none_phrase && o->n_points == 0;
    r->strings = p->strings;
    p->pts = NULL;
    p->rej = NULL;
    p->plain.p = NULL;
    p->strings = NULL;
    molmo_free(p->coords);
    molmo_free(p->val.p);
    molmo_free(p->alt.p);
    molmo_free(p->inner.p);
    parser_reset(p);
    if (new_points && o->n_points > (int)first) *new_points = o->points + first;
    if (n_new) *n_new = o->n_points - (int)first;
    *out = o;
    return MOLMO_OK;
}

void molmo_points_free(molmo_points *pts) {
    if (!pts) return;
    molmo_pp_result *r = (molmo_pp_result *)pts; /* pub is the first member */
    molmo_free(pts->points);
    molmo_free(pts->rejected);
    molmo_free((void *)pts->plain_text);
    molmo_pp_free_chunks(r->strings);
    molmo_free(r);
}

molmo_status molmo_points_parse(const char *text, size_t len, int image_width, int image_height,
                                molmo_points **out, molmo_error *err) {
    if (out) *out = NULL;
    if (!out || (!text && len))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_points_parse: NULL argument");
    molmo_points_parser *p = NULL;
    molmo_status st = molmo_points_parser_create(image_width, image_height, &p, err);
    if (st == MOLMO_OK) st = molmo_points_parser_feed(p, text, len, NULL, NULL, err);
    if (st == MOLMO_OK) st = molmo_points_parser_finish(p, NULL, NULL, out, err);
    molmo_points_parser_free(p);
    return st;
}

const char *molmo_point_source_name(molmo_point_source s) {
    switch (s) {
    case MOLMO_POINT_SRC_POINT: return "point";
    case MOLMO_POINT_SRC_POINTS: return "points";
    case MOLMO_POINT_SRC_CLICK: return "click";
    case MOLMO_POINT_SRC_PAREN: return "paren";
    case MOLMO_POINT_SRC_P3: return "p3";
    }
    return "unknown";
}

const char *molmo_point_reject_name(molmo_point_reject_reason r) {
    switch (r) {
    case MOLMO_POINT_REJECT_RANGE: return "range";
    case MOLMO_POINT_REJECT_NUMBER: return "number";
    case MOLMO_POINT_REJECT_UNPAIRED: return "unpaired";
    case MOLMO_POINT_REJECT_DUPLICATE: return "duplicate";
    case MOLMO_POINT_REJECT_EMPTY: return "empty";
    }
    return "unknown";
}

const char *molmo_count_kind_name(molmo_count_kind k) {
    switch (k) {
    case MOLMO_COUNT_UNSTATED: return "unstated";
    case MOLMO_COUNT_LAST_WORD: return "last_word";
    case MOLMO_COUNT_TOTAL: return "total";
    case MOLMO_COUNT_THERE_ARE: return "there_are";
    case MOLMO_COUNT_NONE: return "none";
    }
    return "unknown";
}

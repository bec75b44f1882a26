/* points_impl.h — the parser object shared by points.c (the markup state machine),
 * points_legacy.c (Click(x, y), (x, y), p=ddd,ddd) and points_count.c (count statements,
 * numbers). Not for other modules: they use the public API in molmo.h. */
#ifndef MOLMO_TEXT_POINTS_IMPL_H
#define MOLMO_TEXT_POINTS_IMPL_H

#include <stddef.h>

#include "molmo.h"
#include "text/points.h"

typedef enum molmo_pp_state {
    PS_TEXT = 0,     /* answer text outside markup                                      */
    PS_LT,           /* after '<': spaces and a name, not yet known to be ours          */
    PS_ATTRS,        /* inside <point ...>, between attributes                          */
    PS_SLASH,        /* '/' inside the tag: "/>" closes the element                     */
    PS_ANAME,        /* an attribute name                                               */
    PS_AFTER_NAME,   /* spaces after a name, before '=' (or the next attribute)         */
    PS_AEQ,          /* after '=', before the value                                     */
    PS_AVAL_Q,       /* a quoted value                                                  */
    PS_AVAL_U,       /* a bare value                                                    */
    PS_INNER,        /* the element's inner text                                        */
    PS_CLOSE         /* "</point" read, waiting for '>'                                 */
} molmo_pp_state;

typedef struct molmo_pp_sbuf {
    char *p;         /* NUL-terminated when non-NULL */
    size_t n, cap;
} molmo_pp_sbuf;

/* Strings that points refer to live in chunks that never move. */
typedef struct molmo_pp_chunk {
    struct molmo_pp_chunk *next;
    size_t used, cap;
    char data[];
} molmo_pp_chunk;

/* One coordinate attribute of the open tag. */
typedef struct molmo_pp_coord {
    int index;       /* N of xN/yN, 0 for x/y */
    int axis;        /* 0 = x, 1 = y */
    int ok;          /* the value is a number */
    double v;
    size_t seq;      /* order of appearance (ties in sorting) */
} molmo_pp_coord;

/* What the points of one tag or legacy match share. */
typedef struct molmo_pp_group {
    molmo_point_source source;
    size_t offset, length;
    int truncated;
    const char *alt, *label;
} molmo_pp_group;

struct molmo_points_parser {
    int width, height;
    molmo_pp_state state;
    int oom;                     /* an allocation failed: sticky, the parser is unusable */
    size_t pos;                  /* absolute offset of the next byte */

    /* '<' and what follows until we know whether it is our markup */
    size_t lt_start;
    char lt_buf[16];
    int lt_len;
    char lt_name[8];
    int lt_name_len;

    /* the open tag/element */
    int in_elem;                 /* inside an element's inner text (legacy forms are off) */
    molmo_point_source tag_src;
    size_t tag_start;
    char aname[24];
    size_t aname_len;
    int aname_over;
    char quote;
    molmo_pp_sbuf val, alt, inner;
    int val_over, has_alt;
    molmo_pp_coord *coords;
    size_t n_coords, cap_coords;

    /* results so far */
    molmo_point *pts;
    size_t n_pts, cap_pts;
    molmo_point_reject *rej;
    size_t n_rej, cap_rej;
    int n_rejected;
    int n_groups;
    molmo_pp_chunk *strings;
    molmo_pp_sbuf plain;         /* text with markup replaced by inner text */
    size_t plain_tail;           /* plain.n after the last element: where the last word may start */

    /* the last bytes of text outside elements, for the legacy forms */
    char win[MOLMO_POINTS_LEGACY_WINDOW];
    int win_len;
    size_t win_start;            /* absolute offset of win[0] */
};

/* The result object: the public struct first, then what it owns besides its arrays. */
typedef struct molmo_pp_result {
    molmo_points pub;
    molmo_pp_chunk *strings;
} molmo_pp_result;

/* Grows *arr to hold `need` elements of `elem` bytes (doubling); 0 and p->oom = 1 on failure. */
int molmo_pp_reserve(molmo_points_parser *p, void **arr, size_t *cap, size_t need, size_t elem);
/* Copies s[0..n) into the parser's string chunks; "" for n = 0 (and on failure, with oom). */
const char *molmo_pp_store(molmo_points_parser *p, const char *s, size_t n);
void molmo_pp_free_chunks(molmo_pp_chunk *c);
/* Records a rejected value (kept up to MOLMO_POINTS_MAX_REJECTS, all counted). */
void molmo_pp_reject(molmo_points_parser *p, molmo_point_reject_reason why,
                     molmo_point_source src, int index, double x, double y, size_t offset);
/* Range-checks and appends a point of group g (group number p->n_groups); 1 when added. */
int molmo_pp_point(molmo_points_parser *p, const molmo_pp_group *g, int index, double x_pct,
                   double y_pct);

/* A byte of text outside elements at absolute offset `off` (legacy forms end here). */
void molmo_pp_legacy_byte(molmo_points_parser *p, char c, size_t off);
/* The text run ends (markup or end of text): a p=ddd,ddd at its end is taken; window cleared. */
void molmo_pp_legacy_flush(molmo_points_parser *p);

#endif

/* points.h — internals of the point/count answer parser (points.c, points_count.c): limits and
 * the helpers the tests reach directly. The public API is the "points" section of molmo.h. */
#ifndef MOLMO_TEXT_POINTS_H
#define MOLMO_TEXT_POINTS_H

#include <stddef.h>

#include "molmo.h"

/* Rejected values kept in molmo_points.rejected; all are counted in n_rejected. A hostile
 * answer (1 MB of "<points x1=") has ~10^5 of them and nobody reads past the first screen. */
#define MOLMO_POINTS_MAX_REJECTS 1024

/* Bytes of an attribute value or an inner text that are kept (cut at a UTF-8 character
 * boundary). Labels are short phrases; the cap bounds memory per tag, not per answer. */
#define MOLMO_POINTS_MAX_STRING 4096

/* Legacy forms (Click(x, y), (x, y), p=ddd,ddd) longer than this many bytes are not
 * recognised: the official forms are at most ~30 bytes, and a bounded window keeps the
 * incremental parser linear. */
#define MOLMO_POINTS_LEGACY_WINDOW 64

/* Parses a coordinate as the reference's float() would: ASCII spaces around it, an optional
 * sign, digits with an optional fraction (at least one digit), no exponent; correctly rounded
 * and independent of the C locale. Returns 1 and sets *out, or 0 when it is not a number. */
int molmo_points_number(const char *s, size_t n, double *out);

/* A count statement in `text` (the answer with point markup replaced by the inner text).
 * Rules, in order (the official PointCountEval's, see docs/points.md):
 *   1. the last word, ignoring trailing spaces and dots, is an integer or a number word
 *      (zero..twenty), and it lies at or after `tail_from` (not inside a point's label);
 *   2. "a total of N" (last occurrence; N digits or a number word);
 *   3. "there are N" / "there is N" (last occurrence);
 *   4. a "none" phrase ("none", "not in the image", "n't in the image", "there are no",
 *      "there is no"): count 0.
 * Sets *count (-1 when no rule applies), *kind, and *none_phrase (1 when a rule-4 phrase
 * occurs anywhere, whichever rule gave the count). */
void molmo_points_count_statement(const char *text, size_t len, size_t tail_from, int *count,
                                  molmo_count_kind *kind, int *none_phrase);

#endif

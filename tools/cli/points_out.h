/* points_out.h — what `molmo point`, `count` and `points` share: the JSON object of a parsed
 * answer, the text lines, and --draw (implemented in cmd_points.c; schema in docs/points.md). */
#ifndef MOLMO_CLI_POINTS_OUT_H
#define MOLMO_CLI_POINTS_OUT_H

#include <jansson.h>
#include <stdio.h>

#include "cli.h"

/* {"points":[…], "count", "stated_count", "count_source", "n_points", "agree", "none",
 *  "rejected":[…], "n_rejected", "text", "image":{"width","height"}}; NULL when out of memory. */
json_t *cli_points_json(const molmo_points *pts, const char *text, size_t len);

/* Prints a JSON object on one line (reals with 10 significant digits) and frees it. */
void cli_print_json(json_t *o);

/* "3  x=393.6 y=130.0  (61.5%, 40.6%)  dog" — `number` is 1-based. */
void cli_print_point_line(FILE *f, int number, const molmo_point *p);

/* The label a point is shown with: alt, else the inner text. */
const char *cli_point_label(const molmo_point *p);

/* --draw options shared by the commands. */
typedef struct cli_draw_opts {
    const char *out;             /* NULL: no drawing */
    const char *font;            /* NULL: $MOLMO_FONT, else the library default */
    int no_labels, no_numbers;
    int quality;                 /* JPEG quality, 0 = default */
} cli_draw_opts;

/* getopt_long entries for the options above (codes 'D', 'F', 'B', 'N', 'Q'). */
#define CLI_DRAW_LONG_OPTIONS                                                                   \
    {"draw", required_argument, 0, 'D'}, {"font", required_argument, 0, 'F'},                  \
        {"no-labels", no_argument, 0, 'B'}, {"no-numbers", no_argument, 0, 'N'},               \
        {"quality", required_argument, 0, 'Q'}

#define CLI_DRAW_HELP                                                                           \
    "      --draw OUT          write the image with the points marked (OUT.png or OUT.jpg)\n"   \
    "      --font FILE         font for numbers and labels (default $MOLMO_FONT, else\n"        \
    "                          " MOLMO_DEFAULT_FONT ")\n"                                        \
    "      --no-labels         do not write the labels on the image\n"                          \
    "      --no-numbers        do not number the markers\n"                                     \
    "      --quality Q         JPEG quality for --draw, 1..100 (default 90)\n"

/* Handles a CLI_DRAW_LONG_OPTIONS code: 1 handled, 0 not ours, -1 bad value (printed). */
int cli_draw_option(cli_draw_opts *d, int c, const char *arg);

/* Draws the points onto `img` and writes d->out; prints a one-line error and returns 1 on
 * failure, 0 on success. */
int cli_draw_points(const molmo_image *img, const molmo_points *pts, const cli_draw_opts *d);

#endif

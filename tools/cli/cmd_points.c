/* cmd_points.c — `molmo points`: parse a pointing/counting answer produced elsewhere (stdin)
 * into the JSON `molmo point --json` prints, optionally drawing it; and the output helpers
 * the point/count verbs share (points_out.h). */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "points_out.h"

/* Answers are model output: a few KB. 64 MB leaves room for hostile tests, not for mistakes
 * like piping an image in. */
#define MAX_STDIN (64u << 20)

const char *cli_point_label(const molmo_point *p) {
    return p->alt && *p->alt ? p->alt : p->label ? p->label : "";
}

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid (overlongs, surrogates and
 * values above U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80                 ? 1
                 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len == 0 || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (len == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))) return 0;
    if (len == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))) return 0;
    return len;
}

/* A JSON string of s[0..n): answers from stdin may be any bytes, and JSON must be UTF-8, so
 * each invalid byte becomes U+FFFD (the text is only copied when it needs it). */
static json_t *utf8_json(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *buf = malloc(n * 3 + 1);
    if (!buf) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (k)
            memcpy(buf + o, s + i, k), o += k, i += k;
        else
            memcpy(buf + o, "\xEF\xBF\xBD", 3), o += 3, i++;
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

static json_t *str_json(const char *s) { return utf8_json(s, strlen(s)); }

static json_t *point_json(const molmo_point *p) {
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:i,s:s,s:I,s:b}", "x", json_real(p->x), "y",
                     json_real(p->y), "x_pct", json_real(p->x_pct), "y_pct", json_real(p->y_pct),
                     "label", str_json(cli_point_label(p)), "alt", str_json(p->alt), "inner",
                     str_json(p->label), "index", p->index, "group", p->group, "source",
                     molmo_point_source_name(p->source), "offset", (json_int_t)p->offset,
                     "truncated", p->truncated);
}

static json_t *reject_json(const molmo_point_reject *r) {
    return json_pack("{s:s,s:s,s:i,s:o,s:o,s:I}", "reason", molmo_point_reject_name(r->reason),
                     "source", molmo_point_source_name(r->source), "index", r->index, "x_pct",
                     real_or_null(r->x_pct), "y_pct", real_or_null(r->y_pct), "offset",
                     (json_int_t)r->offset);
}

json_t *cli_points_json(const molmo_points *pts, const char *text, size_t len) {
    json_t *points = json_array(), *rejected = json_array();
    for (int i = 0; points && i < pts->n_points; i++)
        json_array_append_new(points, point_json(&pts->points[i]));
    for (int i = 0; rejected && i < pts->n_rejected_kept; i++)
        json_array_append_new(rejected, reject_json(&pts->rejected[i]));
    int stated = pts->count >= 0;
    json_t *o =
        json_pack("{s:o,s:i,s:o,s:s,s:i,s:b,s:b,s:o,s:i,s:o,s:{s:i,s:i}}", "points", points,
                  "count", stated ? pts->count : pts->n_points, "stated_count",
                  stated ? json_integer(pts->count) : json_null(), "count_source",
                  stated ? molmo_count_kind_name(pts->count_kind) : "points", "n_points",
                  pts->n_points, "agree", !stated || pts->count == pts->n_points, "none", pts->none,
                  "rejected", rejected, "n_rejected", pts->n_rejected, "text", utf8_json(text, len),
                  "image", "width", pts->image_width, "height", pts->image_height);
    return o;
}

void cli_print_json(json_t *o) {
    char *s =
        o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    if (s)
        puts(s);
    else
        fputs("{\"error\":\"out of memory\"}\n", stdout);
    free(s);
    json_decref(o);
}

void cli_print_point_line(FILE *f, int number, const molmo_point *p) {
    fprintf(f, "%d  x=%.1f y=%.1f  (%.1f%%, %.1f%%)%s%s%s\n", number, p->x, p->y, p->x_pct,
            p->y_pct, *cli_point_label(p) ? "  " : "", cli_point_label(p),
            p->truncated ? "  [tag cut off]" : "");
}

int cli_draw_option(cli_draw_opts *d, int c, const char *arg) {
    long v;
    switch (c) {
    case 'D': {
        /* checked now, not after a minute of generation; molmo_image_save has the same rule */
        const char *dot = strrchr(arg, '.');
        if (!dot ||
            (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg")))
            return fprintf(stderr, "molmo: --draw %s: use a .png, .jpg or .jpeg file name\n", arg),
                   -1;
        d->out = arg;
        return 1;
    }
    case 'F': d->font = arg; return 1;
    case 'B': d->no_labels = 1; return 1;
    case 'N': d->no_numbers = 1; return 1;
    case 'Q':
        if (!cli_parse_int("--quality", arg, 1, 100, &v)) return -1;
        d->quality = (int)v;
        return 1;
    default: return 0;
    }
}

int cli_draw_points(const molmo_image *img, const molmo_points *pts, const cli_draw_opts *d) {
    molmo_draw_params dp = molmo_draw_default_params();
    dp.font_path = d->font ? d->font : getenv("MOLMO_FONT");
    if (dp.font_path && !*dp.font_path) dp.font_path = NULL;
    dp.labels = !d->no_labels;
    if (d->no_numbers) dp.numbers = 0;
    molmo_error err = {0};
    molmo_image *out = NULL;
    molmo_status st = molmo_image_draw_points(img, pts->points, pts->n_points, &dp, &out, &err);
    if (st == MOLMO_OK) st = molmo_image_save(out, d->out, d->quality, &err);
    molmo_image_free(out);
    return st == MOLMO_OK ? 0 : cli_fail(&err, "--draw");
}

static void usage(FILE *f) {
    fprintf(f, "usage: molmo points (--width W --height H | -i IMAGE) [--draw OUT] < ANSWER\n"
               "\n"
               "Reads a Molmo answer on stdin (from molmo run, the Python model, a log...) and\n"
               "prints its points, count and rejected values as one JSON object (the format of\n"
               "molmo point --json; docs/points.md). Pixel coordinates use W x H, or the size of\n"
               "IMAGE as the user sees it (EXIF orientation applied).\n"
               "\n"
               "  -W, --width W           image width in pixels\n"
               "  -H, --height H          image height in pixels\n"
               "  -i, --image FILE        take the size from this image (needed for "
               "--draw)\n" CLI_DRAW_HELP "  -h, --help              this help\n");
}

typedef struct points_opts {
    long width, height;
    const char *image;
    cli_draw_opts draw;
} points_opts;

static int parse_args(int argc, char **argv, points_opts *o) {
    static const struct option opts[] = {
        {"width", required_argument, 0, 'W'}, {"height", required_argument, 0, 'H'},
        {"image", required_argument, 0, 'i'}, CLI_DRAW_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "W:H:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'W':
            if (!cli_parse_int("--width", optarg, 1, 1000000, &o->width)) return 2;
            break;
        case 'H':
            if (!cli_parse_int("--height", optarg, 1, 1000000, &o->height)) return 2;
            break;
        case 'i': o->image = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            if ((r = cli_draw_option(&o->draw, c, optarg)) < 0) return 2;
            if (r == 0) return usage(stderr), 2;
        }
    }
    if (optind != argc || (!o->image && (!o->width || !o->height)) ||
        (o->image && (o->width || o->height)) || (o->draw.out && !o->image)) {
        fprintf(stderr, "molmo points: need --width W --height H, or -i IMAGE (required for "
                        "--draw); see molmo points --help\n");
        return 2;
    }
    return -1;
}

/* Reads all of stdin; NULL (message printed) on error or over MAX_STDIN. */
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (n < cap) break;
        if (cap >= MAX_STDIN) {
            fprintf(stderr, "molmo points: the answer on stdin is over %u MB\n", MAX_STDIN >> 20);
            free(buf);
            return NULL;
        }
        char *b = realloc(buf, cap * 2);
        if (!b) free(buf);
        buf = b;
        cap *= 2;
    }
    if (!buf)
        fprintf(stderr, "molmo points: out of memory\n");
    else if (ferror(stdin))
        fprintf(stderr, "molmo points: cannot read stdin\n"), free(buf), buf = NULL;
    *len = n;
    return buf;
}

int cmd_points(int argc, char **argv) {
    points_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    molmo_error err = {0};
    molmo_image *img = NULL;
    molmo_points *pts = NULL;
    size_t len = 0;
    char *text = NULL;
    rc = 1;
    if (o.image) {
        if (molmo_image_load_file(o.image, NULL, &img, &err) != MOLMO_OK) goto fail;
        o.width = molmo_image_width(img);
        o.height = molmo_image_height(img);
    }
    if (!(text = read_stdin(&len))) goto done;
    if (molmo_points_parse(text, len, (int)o.width, (int)o.height, &pts, &err) != MOLMO_OK)
        goto fail;
    if (o.draw.out && cli_draw_points(img, pts, &o.draw)) goto done;
    cli_print_json(cli_points_json(pts, text, len));
    rc = 0;
    goto done;
fail:
    rc = cli_fail(&err, NULL);
done:
    molmo_points_free(pts);
    molmo_image_free(img);
    free(text);
    return rc;
}

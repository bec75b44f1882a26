/* bench_points.c — the point parser and annotated images (issue 7): parse throughput on a
 * typical counting answer, 10^5 points and 1 MB of hostile "<points x1=", streaming in
 * token-sized pieces against the whole text (the baseline, same run), drawing 20 labelled
 * points on a 1920x1080 image, PNG and JPEG encoding. 5 repetitions, mean ± sd. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "molmo.h"

#define REPS 5

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct stat5 {
    double v[REPS];
} stat5;

static void report(const char *what, const stat5 *s, double scale, const char *unit) {
    double m = 0, sd = 0;
    for (int i = 0; i < REPS; i++) m += s->v[i] / REPS;
    for (int i = 0; i < REPS; i++) sd += (s->v[i] - m) * (s->v[i] - m) / (REPS - 1);
    printf("| %-44s | %10.3f ± %-8.3f %s |\n", what, m * scale, sqrt(sd) * scale, unit);
}

static double parse_whole(const char *t, size_t n, int iters) {
    double t0 = now_s();
    for (int k = 0; k < iters; k++) {
        molmo_points *r = NULL;
        if (molmo_points_parse(t, n, 1920, 1080, &r, NULL) != MOLMO_OK) exit(1);
        molmo_points_free(r);
    }
    return (now_s() - t0) / iters;
}

/* Pieces of 4 bytes, about one token of pointing output. */
static double parse_stream(const char *t, size_t n, int iters) {
    double t0 = now_s();
    for (int k = 0; k < iters; k++) {
        molmo_points_parser *p = NULL;
        molmo_points *r = NULL;
        molmo_points_parser_create(1920, 1080, &p, NULL);
        for (size_t at = 0; at < n; at += 4)
            molmo_points_parser_feed(p, t + at, n - at < 4 ? n - at : 4, NULL, NULL, NULL);
        if (molmo_points_parser_finish(p, NULL, NULL, &r, NULL) != MOLMO_OK) exit(1);
        molmo_points_free(r);
        molmo_points_parser_free(p);
    }
    return (now_s() - t0) / iters;
}

static char *many_points(int n, size_t *len) {
    char *t = malloc((size_t)n * 40 + 64);
    size_t k = (size_t)sprintf(t, "Counting the <points");
    for (int i = 1; i <= n; i++)
        k += (size_t)sprintf(t + k, " x%d=\"%d.%d\" y%d=\"%d.5\"", i, i % 100, i % 10, i, i % 97);
    k += (size_t)sprintf(t + k, " alt=\"dots\">dots</points> shows a total of %d.", n);
    *len = k;
    return t;
}

static void bench_parser(void) {
    stat5 s;
    size_t n10, n5, nh;
    char *ten = many_points(10, &n10), *big = many_points(100000, &n5);
    char *hostile = malloc(1 << 20);
    for (nh = 0; nh + 11 <= (1 << 20); nh += 11) memcpy(hostile + nh, "<points x1=", 11);
    for (int r = 0; r < REPS; r++) s.v[r] = parse_whole(ten, n10, 20000);
    report("parse: 10-point counting answer (us)", &s, 1e6, "us");
    for (int r = 0; r < REPS; r++) s.v[r] = parse_stream(ten, n10, 20000);
    report("  streamed in 4-byte pieces (us)", &s, 1e6, "us");
    for (int r = 0; r < REPS; r++) s.v[r] = parse_whole(big, n5, 3);
    report("parse: 10^5 points, whole (ms)", &s, 1e3, "ms");
    printf("|   = %.1f MB/s over %.2f MB |\n", n5 / 1e6 / s.v[REPS - 1], n5 / 1e6);
    for (int r = 0; r < REPS; r++) s.v[r] = parse_stream(big, n5, 3);
    report("  streamed in 4-byte pieces (ms)", &s, 1e3, "ms");
    for (int r = 0; r < REPS; r++) s.v[r] = parse_whole(hostile, nh, 3);
    report("parse: 1 MB of \"<points x1=\" (ms)", &s, 1e3, "ms");
    free(ten);
    free(big);
    free(hostile);
}

static void bench_draw(void) {
    const int w = 1920, h = 1080;
    uint8_t *px = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (uint8_t)(i * 2654435761u >> 24);
    molmo_image *img = NULL;
    molmo_image_from_rgb(px, w, h, 0, &img, NULL);
    free(px);
    molmo_point pts[20];
    memset(pts, 0, sizeof pts);
    for (int i = 0; i < 20; i++) {
        pts[i].x = 50 + i * 90.5;
        pts[i].y = 100 + (i * 37) % 900;
        pts[i].group = i / 5;
        pts[i].alt = i % 5 == 0 ? "a labelled group of things" : "";
        pts[i].label = "";
    }
    molmo_draw_params dp = molmo_draw_default_params();
    if (access(MOLMO_DEFAULT_FONT, R_OK) != 0) dp.numbers = dp.labels = 0;
    stat5 s, sp, sj;
    molmo_image *out = NULL;
    for (int r = 0; r < REPS; r++) {
        molmo_image_free(out);
        double t0 = now_s();
        if (molmo_image_draw_points(img, pts, 20, &dp, &out, NULL) != MOLMO_OK) exit(1);
        s.v[r] = now_s() - t0;
        void *d = NULL;
        size_t n = 0;
        t0 = now_s();
        molmo_image_encode(out, MOLMO_IMAGE_FORMAT_PNG, 0, &d, &n, NULL);
        sp.v[r] = now_s() - t0;
        molmo_image_encoded_free(d);
        t0 = now_s();
        molmo_image_encode(out, MOLMO_IMAGE_FORMAT_JPEG, 90, &d, &n, NULL);
        sj.v[r] = now_s() - t0;
        molmo_image_encoded_free(d);
    }
    report("draw 20 points + 4 labels + numbers, 1080p (ms)", &s, 1e3, "ms");
    report("encode PNG 1080p (noise) (ms)", &sp, 1e3, "ms");
    report("encode JPEG q90 4:4:4 1080p (noise) (ms)", &sj, 1e3, "ms");
    molmo_image_free(out);
    molmo_image_free(img);
}

int main(void) {
    printf("molmo %s — bench_points (%d repetitions, mean ± sd)\n\n", molmo_version(), REPS);
    bench_parser();
    bench_draw();
    return 0;
}

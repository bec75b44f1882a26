/* points_fuzz.c — libFuzzer target for the point/count parser: any bytes are parsed whole
 * (image size taken from the input) and streamed in pieces whose sizes come from the input;
 * the two results must be identical (the incremental parser's contract), every point must be
 * inside 0..100 % with pixels inside the image, and every string NUL-terminated. Points are
 * then drawn (markers only, so no font file is needed) onto a small image. A violated
 * invariant aborts, which libFuzzer reports as a crash. Seeds: tests/fuzz-corpus/points_fuzz/.
 * Build with -DMOLMO_FUZZ=ON (clang). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "molmo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

static void same(const molmo_points *a, const molmo_points *b) {
    check(a->n_points == b->n_points && a->n_rejected == b->n_rejected &&
          a->n_rejected_kept == b->n_rejected_kept && a->count == b->count &&
          a->count_kind == b->count_kind && a->none == b->none && a->n_groups == b->n_groups &&
          a->plain_len == b->plain_len && !memcmp(a->plain_text, b->plain_text, a->plain_len));
    for (int i = 0; i < a->n_points; i++) {
        const molmo_point *p = &a->points[i], *q = &b->points[i];
        check(p->x == q->x && p->y == q->y && p->index == q->index && p->group == q->group &&
              p->offset == q->offset && p->length == q->length && p->truncated == q->truncated &&
              !strcmp(p->alt, q->alt) && !strcmp(p->label, q->label));
        check(p->x_pct >= 0 && p->x_pct <= 100 && p->y_pct >= 0 && p->y_pct <= 100);
        check(p->x >= 0 && p->x <= a->image_width && p->y >= 0 && p->y <= a->image_height);
        check(p->group >= 0 && p->group < a->n_groups);
    }
    for (int i = 0; i < a->n_rejected_kept; i++)
        check(a->rejected[i].reason == b->rejected[i].reason &&
              a->rejected[i].offset == b->rejected[i].offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int w = 1 + (size > 0 ? data[0] : 0) * 7, h = 1 + (size > 1 ? data[1] : 0) * 5;
    const char *text = (const char *)data;
    molmo_points *whole = NULL, *streamed = NULL;
    molmo_points_parser *p = NULL;
    if (molmo_points_parse(text, size, w, h, &whole, NULL) != MOLMO_OK) return 0;
    if (molmo_points_parser_create(w, h, &p, NULL) != MOLMO_OK) goto done;
    for (size_t at = 0, k = 0; at < size; at += k) {
        k = 1 + (data[at] % 13);
        if (k > size - at) k = size - at;
        int n_new = 0;
        const molmo_point *np = NULL;
        if (molmo_points_parser_feed(p, text + at, k, &np, &n_new, NULL) != MOLMO_OK) goto done;
        check(n_new >= 0 && (n_new == 0 || np != NULL));
    }
    if (molmo_points_parser_finish(p, NULL, NULL, &streamed, NULL) != MOLMO_OK) goto done;
    same(whole, streamed);
    molmo_image *img = NULL, *out = NULL;
    uint8_t px[32 * 24 * 3] = {0};
    molmo_draw_params dp = molmo_draw_default_params();
    dp.numbers = 0;
    dp.labels = 0;
    if (molmo_image_from_rgb(px, 32, 24, 0, &img, NULL) == MOLMO_OK)
        molmo_image_draw_points(img, whole->points, whole->n_points, &dp, &out, NULL);
    molmo_image_free(out);
    molmo_image_free(img);
done:
    molmo_points_free(whole);
    molmo_points_free(streamed);
    molmo_points_parser_free(p);
    return 0;
}

/* bench_image.c — decode and preprocessing times for phone-like JPEGs (640x480, 1920x1080,
 * 4032x3024; synthetic photo-like content encoded at quality 90, 4:2:0), and a measurement of
 * libjpeg's scaled decoding as a shortcut: how far its 1/2 and 1/4 downscale moves the resized
 * canvas compared with full decoding + TF resize (the library does not use it; see
 * docs/images.md). Prints a markdown table, mean +- sd over --reps runs (default 7).
 *   bench_image [--reps N] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

#include "image/image.h"
#include "image/preprocess.h"
#include "image/resize.h"
#include "molmo.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Smooth shading, edges and fine texture: compresses and decodes like a photo. */
static uint8_t *synth(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    unsigned s = 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            s = s * 1664525u + 1013904223u;
            int noise = (int)(s >> 28) - 8;
            double u = (double)x / w, v = (double)y / h;
            int edge = ((x / 97 + y / 61) & 1) * 40;
            int r = (int)(180 * u + 40 * sin(v * 9)) + edge + noise;
            int g = (int)(120 + 80 * sin(u * 7 + v * 3)) + noise;
            int b = (int)(200 * v) + edge / 2 + noise;
            uint8_t *q = p + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            q[1] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
            q[2] = (uint8_t)(b < 0 ? 0 : b > 255 ? 255 : b);
        }
    return p;
}

static unsigned char *encode_jpeg(const uint8_t *px, int w, int h, unsigned long *n) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

typedef struct stat { double sum, sq; int n; } stat;
static void add(stat *s, double v) { s->sum += v, s->sq += v * v, s->n++; }
static double mean(const stat *s) { return s->sum / s->n; }
static double sd(const stat *s) {
    double m = mean(s), v = s->sq / s->n - m * m;
    return s->n > 1 && v > 0 ? sqrt(v * s->n / (s->n - 1)) : 0;
}

/* Resizes an RGB image to [nh, nw] with the library's TF resize. */
static float *resize(const uint8_t *px, int h, int w, int nh, int nw) {
    molmo_resize_plan p;
    if (molmo_resize_plan_init(&p, h, w, nh, nw, NULL) != MOLMO_OK) exit(1);
    float *scratch = malloc(molmo_resize_scratch_floats(&p) * sizeof(float));
    float *o = malloc((size_t)nh * nw * 3 * sizeof(float));
    molmo_resize_rows_u8(&p, px, (size_t)w * 3, o, 0, nh, scratch);
    free(scratch);
    molmo_resize_plan_free(&p);
    return o;
}

/* Max |difference| on the high-res canvas, in normalised units (/ the smallest CLIP std),
 * between full decode + resize and scaled decode + resize to the same size. */
static double scaled_error(const unsigned char *jpg, size_t n, const molmo_image *full,
                           const molmo_preproc_result *r, int denom, double *t_dec) {
    molmo_decode_opts o = {MOLMO_IMAGE_DEFAULT_MAX_PIXELS, 0};
    molmo_decoded d;
    double t0 = now();
    if (molmo_decode_jpeg_scaled(jpg, n, &o, denom, &d, NULL) != MOLMO_OK) exit(1);
    *t_dec = now() - t0;
    float *a = resize(molmo_image_pixels(full), molmo_image_height(full), molmo_image_width(full),
                      r->resized_h, r->resized_w);
    float *b = resize(d.pixels, d.height, d.width, r->resized_h, r->resized_w);
    double worst = 0;
    for (size_t i = 0; i < (size_t)r->resized_h * r->resized_w * 3; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    free(a);
    free(b);
    free(d.pixels);
    return worst / 0.26130258;
}

int main(int argc, char **argv) {
    int reps = 7;
    if (argc == 3 && strcmp(argv[1], "--reps") == 0) reps = atoi(argv[2]);
    if (reps < 1) reps = 1;
    static const int sizes[3][2] = {{640, 480}, {1920, 1080}, {4032, 3024}};
    molmo_preproc_config cfg;
    molmo_preproc_config_default(&cfg);
    molmo_image_token_ids ids = {1, 2, 3, 4};
    printf("| image | JPEG KB | tiling | crops | decode ms | preprocess ms | total ms | "
           "decode 1/2 ms (max err) | decode 1/4 ms (max err) |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 3; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        uint8_t *px = synth(w, h);
        unsigned long n = 0;
        unsigned char *jpg = encode_jpeg(px, w, h, &n);
        free(px);
        stat dec = {0}, pre = {0};
        molmo_image *img = NULL;
        molmo_preproc_result r;
        for (int i = 0; i < reps; i++) {
            double t0 = now();
            if (molmo_image_load_memory(jpg, n, NULL, &img, NULL) != MOLMO_OK) return 1;
            double t1 = now();
            if (molmo_preprocess(img, &cfg, &ids, &r, NULL) != MOLMO_OK) return 1;
            double t2 = now();
            add(&dec, (t1 - t0) * 1e3);
            add(&pre, (t2 - t1) * 1e3);
            if (i + 1 < reps) {
                molmo_preproc_result_free(&r);
                molmo_image_free(img);
            }
        }
        double td2, td4;
        double e2 = scaled_error(jpg, n, img, &r, 2, &td2);
        double e4 = scaled_error(jpg, n, img, &r, 4, &td4);
        printf("| %dx%d | %lu | %dx%d | %d | %.1f ± %.1f | %.1f ± %.1f | %.1f | %.1f (%.3f) | %.1f (%.3f) |\n",
               w, h, n / 1024, r.rows, r.cols, r.n_crops, mean(&dec), sd(&dec), mean(&pre), sd(&pre),
               mean(&dec) + mean(&pre), td2 * 1e3, e2, td4 * 1e3, e4);
        molmo_preproc_result_free(&r);
        molmo_image_free(img);
        free(jpg);
    }
    printf("\n%d repetitions, 1 thread. Max err: largest change of a normalised canvas value that "
           "scaled decoding would cause (the golden tolerance is 5e-4).\n", reps);
    return 0;
}

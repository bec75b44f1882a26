/* image.h — the decoded image object and the contract between image.c and the per-format
 * decoders (decode_jpeg.c, decode_png.c, decode_webp.c). */
#ifndef MOLMO_IMAGE_IMAGE_H
#define MOLMO_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* Default decompression-bomb limit (pixels) and the hard limit on either side. A side of at
 * most 1,000,000 keeps every size exact in float32 (< 2^24), which the preprocessing relies
 * on, and keeps width*3 far inside int. */
#define MOLMO_IMAGE_DEFAULT_MAX_PIXELS 100000000ull
#define MOLMO_IMAGE_MAX_SIDE 1000000

struct molmo_image {
    int width, height;         /* as the user sees it */
    uint8_t *rgb;              /* [height, width, 3] */
    molmo_image_info info;
};

/* What a decoder hands back: pixels in stored order, 3 (RGB) or 4 (RGBA, non-premultiplied)
 * channels, and the EXIF orientation it found (1 when none). */
typedef struct molmo_decoded {
    int width, height;
    int channels;              /* 3 or 4 */
    uint8_t *pixels;           /* [height, width, channels], molmo_malloc'd */
    int orientation;           /* 1..8 */
    int had_alpha;             /* the file carries transparency (alpha channel or tRNS) */
} molmo_decoded;

/* Options the decoders need: the size limit and whether alpha must be kept for compositing. */
typedef struct molmo_decode_opts {
    uint64_t max_pixels;
    int want_alpha;            /* 0: a decoder may return RGB only */
} molmo_decode_opts;

/* Checks width x height against the hard side limit and opts->max_pixels; `what` labels the
 * error (e.g. "PNG"). Returns MOLMO_ERR_FORMAT for a zero side, MOLMO_ERR_TOO_LARGE above a
 * limit. Decoders call it after reading the header and before allocating pixels. */
molmo_status molmo_image_check_size(uint64_t width, uint64_t height,
                                    const molmo_decode_opts *opts, const char *what,
                                    molmo_error *err);

/* Allocates [height, width, channels] bytes after the size check has passed. */
uint8_t *molmo_image_alloc_pixels(int width, int height, int channels);

/* The decoders. On success `out` owns its pixels; on failure out->pixels is NULL. Every error
 * is MOLMO_ERR_FORMAT (corrupt/truncated), _UNSUPPORTED, _TOO_LARGE or _NOMEM with a message
 * starting with the format name. */
molmo_status molmo_decode_jpeg(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                               molmo_decoded *out, molmo_error *err);
/* JPEG with libjpeg's DCT-domain downscaling by 1/scale_denom (1, 2, 4 or 8). Not used by the
 * library (it is not exact enough, see docs/images.md); the benchmark measures it. */
molmo_status molmo_decode_jpeg_scaled(const uint8_t *data, size_t size,
                                      const molmo_decode_opts *opts, int scale_denom,
                                      molmo_decoded *out, molmo_error *err);
molmo_status molmo_decode_png(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                              molmo_decoded *out, molmo_error *err);
molmo_status molmo_decode_webp(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                               molmo_decoded *out, molmo_error *err);

/* Recognises a container from its first bytes. Returns the format, or RAW when unknown; for
 * known-but-unsupported formats *unsupported_name is set ("GIF", "BMP", ...), else NULL. */
molmo_image_format molmo_image_sniff(const uint8_t *data, size_t size,
                                     const char **unsupported_name);

#endif

/* image.c — the public image API: format sniffing, the decompression-bomb limit, alpha policy
 * (drop like Pillow's convert("RGB"), or composite), EXIF orientation, accessors.
 * The per-format work is in decode_{jpeg,png,webp}.c; the decisions are in docs/images.md. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/exif.h"
#include "image/image.h"
#include "io/mapfile.h"

molmo_image_params molmo_image_default_params(void) {
    molmo_image_params p;
    memset(&p, 0, sizeof p);
    p.max_pixels = MOLMO_IMAGE_DEFAULT_MAX_PIXELS;
    p.exif = MOLMO_IMAGE_EXIF_APPLY;
    p.alpha = MOLMO_IMAGE_ALPHA_DROP;
    p.background[0] = p.background[1] = p.background[2] = 255;
    return p;
}

const char *molmo_image_format_name(molmo_image_format format) {
    switch (format) {
    case MOLMO_IMAGE_FORMAT_RAW: return "raw";
    case MOLMO_IMAGE_FORMAT_JPEG: return "jpeg";
    case MOLMO_IMAGE_FORMAT_PNG: return "png";
    case MOLMO_IMAGE_FORMAT_WEBP: return "webp";
    }
    return "unknown";
}

molmo_image_format molmo_image_sniff(const uint8_t *d, size_t n, const char **unsupported) {
    *unsupported = NULL;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return MOLMO_IMAGE_FORMAT_JPEG;
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return MOLMO_IMAGE_FORMAT_PNG;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return MOLMO_IMAGE_FORMAT_WEBP;
    /* Formats people do send; named so the message says what to convert from. */
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) *unsupported = "GIF";
    else if (n >= 2 && memcmp(d, "BM", 2) == 0) *unsupported = "BMP";
    else if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) *unsupported = "TIFF";
    else if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0)
        *unsupported = (memcmp(d + 8, "avi", 3) == 0) ? "AVIF" : "HEIF/HEIC (or another ISO-BMFF file)";
    else if (n >= 4 && memcmp(d, "\0\0\1\0", 4) == 0) *unsupported = "ICO";
    else if (n >= 4 && memcmp(d, "8BPS", 4) == 0) *unsupported = "PSD";
    else if (n >= 4 && memcmp(d, "%PDF", 4) == 0) *unsupported = "PDF";
    else if (n >= 2 && d[0] == 0xFF && d[1] == 0x0A) *unsupported = "JPEG XL";
    else if (n >= 12 && memcmp(d, "\0\0\0\x0CJXL \r\n\x87\n", 12) == 0) *unsupported = "JPEG XL";
    else if (n >= 12 && memcmp(d, "\0\0\0\x0CjP  \r\n\x87\n", 12) == 0) *unsupported = "JPEG 2000";
    else if (n >= 5 && memcmp(d, "<?xml", 5) == 0) *unsupported = "XML/SVG";
    else if (n >= 4 && memcmp(d, "<svg", 4) == 0) *unsupported = "SVG";
    return MOLMO_IMAGE_FORMAT_RAW;
}

molmo_status molmo_image_check_size(uint64_t width, uint64_t height,
                                    const molmo_decode_opts *opts, const char *what,
                                    molmo_error *err) {
    if (width == 0 || height == 0)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: image has zero size (%llux%llu)", what,
                         (unsigned long long)width, (unsigned long long)height);
    if (width > MOLMO_IMAGE_MAX_SIDE || height > MOLMO_IMAGE_MAX_SIDE)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE,
                         "%s: %llux%llu pixels: a side is over the %d-pixel limit", what,
                         (unsigned long long)width, (unsigned long long)height,
                         MOLMO_IMAGE_MAX_SIDE);
    if (width * height > opts->max_pixels)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE,
                         "%s: %llux%llu = %llu pixels is over the limit of %llu "
                         "(molmo_image_params.max_pixels)",
                         what, (unsigned long long)width, (unsigned long long)height,
                         (unsigned long long)(width * height),
                         (unsigned long long)opts->max_pixels);
    return MOLMO_OK;
}

uint8_t *molmo_image_alloc_pixels(int width, int height, int channels) {
    size_t n;
    if (width <= 0 || height <= 0 || channels <= 0) return NULL;
    if (!molmo_mul_size((size_t)width, (size_t)height, &n)) return NULL;
    if (!molmo_mul_size(n, (size_t)channels, &n)) return NULL;
    return molmo_malloc(n);
}

/* RGBA -> RGB in place, either dropping alpha (Pillow's convert("RGB") keeps the stored colour
 * whatever the alpha) or blending over the background with rounding. */
static void flatten_alpha(uint8_t *px, size_t n_pixels, int composite, const uint8_t bg[3]) {
    for (size_t i = 0; i < n_pixels; i++) {
        const uint8_t *s = px + 4 * i;
        uint8_t *d = px + 3 * i;
        if (!composite) {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
            continue;
        }
        unsigned a = s[3];
        uint8_t c[3] = {s[0], s[1], s[2]};
        for (int k = 0; k < 3; k++) d[k] = (uint8_t)((c[k] * a + bg[k] * (255u - a) + 127u) / 255u);
    }
}

static molmo_status decode_any(const uint8_t *data, size_t size, const molmo_image_params *p,
                               molmo_decoded *dec, molmo_image_format *fmt, molmo_error *err) {
    molmo_decode_opts opts = {p->max_pixels ? p->max_pixels : MOLMO_IMAGE_DEFAULT_MAX_PIXELS,
                              p->alpha == MOLMO_IMAGE_ALPHA_COMPOSITE};
    if (size == 0) return molmo_err(err, MOLMO_ERR_FORMAT, "empty input (0 bytes)");
    const char *other;
    *fmt = molmo_image_sniff(data, size, &other);
    switch (*fmt) {
    case MOLMO_IMAGE_FORMAT_JPEG: return molmo_decode_jpeg(data, size, &opts, dec, err);
    case MOLMO_IMAGE_FORMAT_PNG: return molmo_decode_png(data, size, &opts, dec, err);
    case MOLMO_IMAGE_FORMAT_WEBP: return molmo_decode_webp(data, size, &opts, dec, err);
    case MOLMO_IMAGE_FORMAT_RAW: break;
    }
    if (other)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "%s images are not supported (JPEG, PNG and WebP are)", other);
    return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                     "not a JPEG, PNG or WebP image (first bytes %02x %02x %02x %02x)", data[0],
                     size > 1 ? data[1] : 0, size > 2 ? data[2] : 0, size > 3 ? data[3] : 0);
}

/* Turns decoder output into the final image: alpha policy, then orientation. Takes ownership
 * of dec->pixels. */
static molmo_status finish(molmo_decoded *dec, molmo_image_format fmt,
                           const molmo_image_params *p, molmo_image **out, molmo_error *err) {
    molmo_image *img = molmo_calloc(1, sizeof *img);
    if (!img) goto nomem;
    size_t n_px = (size_t)dec->width * (size_t)dec->height;
    int composite = p->alpha == MOLMO_IMAGE_ALPHA_COMPOSITE && dec->channels == 4 && dec->had_alpha;
    img->info.format = fmt;
    img->info.stored_width = dec->width;
    img->info.stored_height = dec->height;
    img->info.exif_orientation = dec->orientation;
    img->info.had_alpha = dec->had_alpha;
    img->info.alpha_composited = composite;
    if (dec->channels == 4) flatten_alpha(dec->pixels, n_px, composite, p->background);
    int o = p->exif == MOLMO_IMAGE_EXIF_APPLY ? dec->orientation : 1;
    molmo_exif_oriented_size(o, dec->width, dec->height, &img->width, &img->height);
    if (o != 1) {
        img->rgb = molmo_image_alloc_pixels(img->width, img->height, 3);
        if (!img->rgb) goto nomem;
        molmo_exif_apply(o, dec->pixels, dec->width, dec->height, 3, img->rgb);
        molmo_free(dec->pixels);
    } else {
        /* Shrink an RGBA buffer that now holds RGB; a failed shrink keeps the larger block. */
        uint8_t *shrunk = dec->channels == 4 ? molmo_realloc(dec->pixels, n_px * 3) : NULL;
        img->rgb = shrunk ? shrunk : dec->pixels;
    }
    dec->pixels = NULL;
    img->info.width = img->width;
    img->info.height = img->height;
    img->info.orientation_applied = o != 1;
    *out = img;
    return MOLMO_OK;
nomem:
    molmo_free(img);
    molmo_free(dec->pixels);
    dec->pixels = NULL;
    return molmo_err(err, MOLMO_ERR_NOMEM, "cannot allocate a %dx%d image", dec->width,
                     dec->height);
}

molmo_status molmo_image_load_memory(const void *data, size_t size,
                                     const molmo_image_params *params, molmo_image **out,
                                     molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_load_memory: out is NULL");
    *out = NULL;
    if (!data && size) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_load_memory: data is NULL");
    molmo_image_params p = params ? *params : molmo_image_default_params();
    molmo_decoded dec = {0};
    molmo_image_format fmt = MOLMO_IMAGE_FORMAT_RAW;
    molmo_status st = decode_any(data, size, &p, &dec, &fmt, err);
    if (st != MOLMO_OK) return st;
    return finish(&dec, fmt, &p, out, err);
}

molmo_status molmo_image_load_file(const char *path, const molmo_image_params *params,
                                   molmo_image **out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_load_file: out is NULL");
    *out = NULL;
    if (!path) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_load_file: path is NULL");
    molmo_mapfile m;
    molmo_status st = molmo_mapfile_open(&m, path, err);
    if (st != MOLMO_OK) return st;
    st = molmo_image_load_memory(m.data, m.size, params, out, err);
    molmo_mapfile_close(&m);
    if (st != MOLMO_OK) molmo_err_prefix(err, "%s", path);
    return st;
}

molmo_status molmo_image_from_rgb(const uint8_t *rgb, int width, int height, size_t stride,
                                  molmo_image **out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_from_rgb: out is NULL");
    *out = NULL;
    if (!rgb) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_from_rgb: rgb is NULL");
    if (width <= 0 || height <= 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_from_rgb: size %dx%d", width,
                         height);
    molmo_decode_opts opts = {MOLMO_IMAGE_DEFAULT_MAX_PIXELS, 0};
    molmo_status st = molmo_image_check_size((uint64_t)width, (uint64_t)height, &opts,
                                             "molmo_image_from_rgb", err);
    if (st != MOLMO_OK) return st;
    size_t row = (size_t)width * 3;
    if (stride == 0) stride = row;
    if (stride < row)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "molmo_image_from_rgb: stride %zu is below width*3 = %zu", stride, row);
    molmo_image *img = molmo_calloc(1, sizeof *img);
    uint8_t *px = molmo_image_alloc_pixels(width, height, 3);
    if (!img || !px) {
        molmo_free(img);
        molmo_free(px);
        return molmo_err(err, MOLMO_ERR_NOMEM, "cannot allocate a %dx%d image", width, height);
    }
    for (int y = 0; y < height; y++) memcpy(px + (size_t)y * row, rgb + (size_t)y * stride, row);
    img->width = img->info.width = img->info.stored_width = width;
    img->height = img->info.height = img->info.stored_height = height;
    img->rgb = px;
    img->info.format = MOLMO_IMAGE_FORMAT_RAW;
    img->info.exif_orientation = 1;
    *out = img;
    return MOLMO_OK;
}

void molmo_image_free(molmo_image *img) {
    if (!img) return;
    molmo_free(img->rgb);
    molmo_free(img);
}

int molmo_image_width(const molmo_image *img) { return img ? img->width : 0; }
int molmo_image_height(const molmo_image *img) { return img ? img->height : 0; }
const uint8_t *molmo_image_pixels(const molmo_image *img) { return img ? img->rgb : NULL; }

molmo_status molmo_image_get_info(const molmo_image *img, molmo_image_info *out) {
    if (!img || !out) return MOLMO_ERR_INVALID_ARG;
    *out = img->info;
    return MOLMO_OK;
}

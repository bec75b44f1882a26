/* decode_png.c — PNG through libspng. Every colour type and bit depth, palette and Adam7
 * interlacing; 16-bit samples keep their high byte and low bit depths are scaled to 0..255,
 * as Pillow does. Gamma, sRGB and ICC chunks are ignored (Pillow ignores them too).
 * Transparency (alpha channel or tRNS) is only decoded when the caller composites; otherwise
 * the stored colour is used, which is what convert("RGB") keeps. EXIF orientation comes from
 * the eXIf chunk. libspng's allocations go through molmo_malloc. */
#include <string.h>

#include <spng.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/exif.h"
#include "image/image.h"

/* A PNG chunk over 64 MB (text, ICC, unknown) or 128 MB of cached metadata is not an image
 * anyone sends to a model; libspng would otherwise buffer up to 2 GB per chunk. */
#define MAX_CHUNK (64u << 20)
#define MAX_CHUNK_CACHE (128u << 20)

/* libspng (and zlib inside it) allocate through these. zlib reports a failed allocation in
 * the middle of a stream as a stream error, so a per-thread flag tells the two apart. */
static _Thread_local int alloc_failed;

static void *note(void *p) {
    if (!p) alloc_failed = 1;
    return p;
}
static void *a_malloc(size_t n) { return note(molmo_malloc(n)); }
static void *a_realloc(void *p, size_t n) { return note(molmo_realloc(p, n)); }
static void *a_calloc(size_t n, size_t s) { return note(molmo_calloc(n, s)); }
static void a_free(void *p) { molmo_free(p); }

static molmo_status spng_fail(int rc, const char *stage, molmo_error *err) {
    if (alloc_failed) return molmo_err(err, MOLMO_ERR_NOMEM, "PNG: %s: out of memory", stage);
    molmo_status code = rc == SPNG_EMEM ? MOLMO_ERR_NOMEM : MOLMO_ERR_FORMAT;
    const char *why = rc == SPNG_EOF ? "truncated file (unexpected end of data)" : spng_strerror(rc);
    return molmo_err(err, code, "PNG: %s: %s", stage, why);
}

static int has_trns(spng_ctx *ctx) {
    struct spng_trns t;
    return spng_get_trns(ctx, &t) == 0;
}

/* Sets limits, reads IHDR and applies the size limits before anything is allocated. */
static molmo_status read_header(spng_ctx *ctx, const uint8_t *data, size_t size,
                                const molmo_decode_opts *opts, struct spng_ihdr *ihdr,
                                molmo_error *err) {
    int rc = spng_set_png_buffer(ctx, data, size);
    if (!rc) rc = spng_set_image_limits(ctx, MOLMO_IMAGE_MAX_SIDE, MOLMO_IMAGE_MAX_SIDE);
    if (!rc) rc = spng_set_chunk_limits(ctx, MAX_CHUNK, MAX_CHUNK_CACHE);
    if (rc) return spng_fail(rc, "setup", err);
    rc = spng_get_ihdr(ctx, ihdr);
    if (rc == SPNG_EUSER_WIDTH || rc == SPNG_EUSER_HEIGHT)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "PNG: header: a side is over the %d-pixel limit",
                         MOLMO_IMAGE_MAX_SIDE);
    if (rc) return spng_fail(rc, "header", err);
    return molmo_image_check_size(ihdr->width, ihdr->height, opts, "PNG", err);
}

molmo_status molmo_decode_png(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                              molmo_decoded *out, molmo_error *err) {
    struct spng_alloc alloc = {a_malloc, a_realloc, a_calloc, a_free};
    memset(out, 0, sizeof *out);
    uint8_t *px = NULL;
    molmo_status st = MOLMO_OK;
    alloc_failed = 0;
    spng_ctx *ctx = spng_ctx_new2(&alloc, 0);
    if (!ctx) return molmo_err(err, MOLMO_ERR_NOMEM, "PNG: cannot create a decoder");
    struct spng_ihdr ihdr;
    st = read_header(ctx, data, size, opts, &ihdr, err);
    if (st != MOLMO_OK) goto fail;
    int had_alpha = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
                    ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA || has_trns(ctx);
    int alpha = opts->want_alpha && had_alpha;
    int fmt = alpha ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
    int channels = alpha ? 4 : 3;
    px = molmo_image_alloc_pixels((int)ihdr.width, (int)ihdr.height, channels);
    if (!px) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "PNG: cannot allocate %ux%u pixels", ihdr.width,
                       ihdr.height);
        goto fail;
    }
    size_t need = 0;
    int rc = spng_decoded_image_size(ctx, fmt, &need);
    if (!rc && need != (size_t)ihdr.width * ihdr.height * (size_t)channels) rc = SPNG_EINTERNAL;
    if (!rc) rc = spng_decode_image(ctx, px, need, fmt, alpha ? SPNG_DECODE_TRNS : 0);
    if (rc) {
        st = spng_fail(rc, "image data", err);
        goto fail;
    }
    struct spng_exif exif;
    out->orientation = 1;
    if (spng_get_exif(ctx, &exif) == 0)
        out->orientation = molmo_exif_orientation((const uint8_t *)exif.data, exif.length);
    spng_ctx_free(ctx);
    out->width = (int)ihdr.width;
    out->height = (int)ihdr.height;
    out->channels = channels;
    out->had_alpha = had_alpha;
    out->pixels = px;
    return MOLMO_OK;
fail:
    spng_ctx_free(ctx);
    molmo_free(px);
    return st;
}

/* encode.c — writing images: PNG through libspng, JPEG through libjpeg-turbo (4:4:4, so the
 * small coloured markers of annotated images keep their colour), into memory or a file. All
 * buffers come from molmo_malloc: libspng gets our allocator, and libjpeg writes through a
 * destination manager that grows a molmo_realloc'd buffer (its own jpeg_mem_dest would use
 * malloc behind our back). libjpeg errors longjmp to the caller's setjmp. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <spng.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/image.h"

/* ---- PNG ----------------------------------------------------------------------------------- */

static void *a_malloc(size_t n) { return molmo_malloc(n); }
static void *a_realloc(void *p, size_t n) { return molmo_realloc(p, n); }
static void *a_calloc(size_t n, size_t s) { return molmo_calloc(n, s); }
static void a_free(void *p) { molmo_free(p); }

static molmo_status encode_png(const molmo_image *img, void **data, size_t *size,
                               molmo_error *err) {
    struct spng_alloc alloc = {a_malloc, a_realloc, a_calloc, a_free};
    spng_ctx *ctx = spng_ctx_new2(&alloc, SPNG_CTX_ENCODER);
    if (!ctx) return molmo_err(err, MOLMO_ERR_NOMEM, "PNG encode: out of memory");
    struct spng_ihdr ihdr;
    memset(&ihdr, 0, sizeof ihdr);
    ihdr.width = (uint32_t)img->width;
    ihdr.height = (uint32_t)img->height;
    ihdr.bit_depth = 8;
    ihdr.color_type = SPNG_COLOR_TYPE_TRUECOLOR;
    size_t len = (size_t)img->width * (size_t)img->height * 3;
    int rc = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!rc) rc = spng_set_ihdr(ctx, &ihdr);
    if (!rc) rc = spng_encode_image(ctx, img->rgb, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    void *buf = rc ? NULL : spng_get_png_buffer(ctx, size, &rc);
    spng_ctx_free(ctx);
    if (!buf) {
        molmo_status code = rc == SPNG_EMEM || rc == 0 ? MOLMO_ERR_NOMEM : MOLMO_ERR_INTERNAL;
        return molmo_err(err, code, "PNG encode: %s", rc ? spng_strerror(rc) : "out of memory");
    }
    *data = buf;
    return MOLMO_OK;
}

/* ---- JPEG ---------------------------------------------------------------------------------- */

typedef struct jdest {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
} jdest;

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int nomem;
} jerr;

static void on_error(j_common_ptr c) {
    jerr *e = (jerr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}
static void on_output(j_common_ptr c) { (void)c; }

static void dest_init(j_compress_ptr c) {
    jdest *d = (jdest *)c->dest;
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

/* libjpeg filled the whole buffer: double it. */
static boolean dest_empty(j_compress_ptr c) {
    jdest *d = (jdest *)c->dest;
    size_t cap = d->cap * 2;
    unsigned char *b = cap > d->cap ? molmo_realloc(d->buf, cap) : NULL;
    if (!b) {
        ((jerr *)c->err)->nomem = 1;
        ERREXIT(c, JERR_OUT_OF_MEMORY);
    }
    d->pub.next_output_byte = b + d->cap;
    d->pub.free_in_buffer = cap - d->cap;
    d->buf = b;
    d->cap = cap;
    return TRUE;
}
static void dest_term(j_compress_ptr c) { (void)c; }

/* The libjpeg calls, apart so that nothing the caller keeps is modified after setjmp. */
static int jpeg_run(struct jpeg_compress_struct *c, jerr *e, jdest *d, const molmo_image *img,
                    int quality) {
    if (setjmp(e->jb)) return 0;
    jpeg_create_compress(c);
    c->dest = &d->pub;
    c->image_width = (JDIMENSION)img->width;
    c->image_height = (JDIMENSION)img->height;
    c->input_components = 3;
    c->in_color_space = JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, quality, TRUE);
    for (int k = 0; k < 3; k++) c->comp_info[k].h_samp_factor = c->comp_info[k].v_samp_factor = 1;
    jpeg_start_compress(c, TRUE);
    size_t stride = (size_t)img->width * 3;
    while (c->next_scanline < c->image_height) {
        JSAMPROW row = (JSAMPROW)(img->rgb + (size_t)c->next_scanline * stride);
        jpeg_write_scanlines(c, &row, 1);
    }
    jpeg_finish_compress(c);
    return 1;
}

static molmo_status encode_jpeg(const molmo_image *img, int quality, void **data, size_t *size,
                                molmo_error *err) {
    struct jpeg_compress_struct c;
    jerr e;
    jdest d;
    memset(&c, 0, sizeof c);
    memset(&e, 0, sizeof e);
    memset(&d, 0, sizeof d);
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.output_message = on_output;
    d.cap = 65536;
    d.buf = molmo_malloc(d.cap);
    if (!d.buf) return molmo_err(err, MOLMO_ERR_NOMEM, "JPEG encode: out of memory");
    d.pub.init_destination = dest_init;
    d.pub.empty_output_buffer = dest_empty;
    d.pub.term_destination = dest_term;
    int ok = jpeg_run(&c, &e, &d, img, quality);
    size_t used = d.cap - d.pub.free_in_buffer;
    jpeg_destroy_compress(&c);
    if (!ok) {
        molmo_free(d.buf);
        if (e.nomem || strstr(e.msg, "memory"))
            return molmo_err(err, MOLMO_ERR_NOMEM, "JPEG encode: out of memory");
        return molmo_err(err, MOLMO_ERR_INTERNAL, "JPEG encode: %s", e.msg);
    }
    *data = d.buf;
    *size = used;
    return MOLMO_OK;
}

/* ---- public -------------------------------------------------------------------------------- */

molmo_status molmo_image_encode(const molmo_image *image, molmo_image_format format, int quality,
                                void **data, size_t *size, molmo_error *err) {
    if (data) *data = NULL;
    if (size) *size = 0;
    if (!image || !data || !size)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_encode: NULL argument");
    if (quality < 0 || quality > 100)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "JPEG quality %d is outside 1..100", quality);
    if (format == MOLMO_IMAGE_FORMAT_PNG) return encode_png(image, data, size, err);
    if (format == MOLMO_IMAGE_FORMAT_JPEG &&
        (image->width > JPEG_MAX_DIMENSION || image->height > JPEG_MAX_DIMENSION))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "JPEG encode: %dx%d is over JPEG's limit of %d pixels per side (use PNG)",
                         image->width, image->height, (int)JPEG_MAX_DIMENSION);
    if (format == MOLMO_IMAGE_FORMAT_JPEG)
        return encode_jpeg(image, quality ? quality : 90, data, size, err);
    return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "cannot encode %s images (PNG and JPEG only)",
                     molmo_image_format_name(format));
}

void molmo_image_encoded_free(void *data) { molmo_free(data); }

/* The format an output file name asks for: .png, .jpg or .jpeg in any case. */
static int format_of(const char *path, molmo_image_format *f) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    char ext[8] = {0};
    size_t n = strlen(dot + 1);
    if (n == 0 || n >= sizeof ext) return 0;
    for (size_t i = 0; i < n && i < sizeof ext - 1; i++) {
        char c = dot[1 + i];
        ext[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (!strcmp(ext, "png")) return *f = MOLMO_IMAGE_FORMAT_PNG, 1;
    if (!strcmp(ext, "jpg") || !strcmp(ext, "jpeg")) return *f = MOLMO_IMAGE_FORMAT_JPEG, 1;
    return 0;
}

molmo_status molmo_image_save(const molmo_image *image, const char *path, int quality,
                              molmo_error *err) {
    if (!image || !path)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_save: NULL argument");
    molmo_image_format fmt;
    if (!format_of(path, &fmt))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "%s: unknown output format (use a .png, .jpg or .jpeg name)", path);
    void *data = NULL;
    size_t size = 0;
    molmo_status st = molmo_image_encode(image, fmt, quality, &data, &size, err);
    if (st != MOLMO_OK) return st;
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        molmo_free(data);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    size_t wrote = fwrite(data, 1, size, f);
    int e = wrote == size ? 0 : errno;
    if (fclose(f) != 0 && !e) e = errno;
    molmo_free(data);
    if (wrote != size || e) {
        remove(path);
        return molmo_err(err, MOLMO_ERR_IO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return MOLMO_OK;
}

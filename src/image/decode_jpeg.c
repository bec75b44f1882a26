/* decode_jpeg.c — JPEG through libjpeg-turbo with the settings Pillow uses (accurate integer
 * IDCT, fancy upsampling, libjpeg's own colour conversion), so the pixels are byte-identical
 * to Image.open(f).convert("RGB") on the same libjpeg-turbo. CMYK and YCCK are read as
 * Pillow reads them: Adobe-inverted ("CMYK;I") and converted with Pillow's cmyk2rgb.
 * libjpeg reports errors through a longjmp from its error manager; truncation (a warning in
 * libjpeg, which then invents an EOI) is an error here as it is in Pillow. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/exif.h"
#include "image/image.h"

/* Real photos have at most a few dozen scans; a hostile progressive file can have many
 * thousands, each costing a pass over the whole coefficient buffer. */
#define MAX_SCANS 1000

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    molmo_status code;
} jerr;

static void on_error(j_common_ptr c) {
    jerr *e = (jerr *)c->err;
    c->err->format_message(c, e->msg);
    e->code = MOLMO_ERR_FORMAT;
    longjmp(e->jb, 1);
}

/* Warnings (corrupt entropy data, extraneous bytes) are ignored as Pillow ignores them, except
 * premature end of file, after which libjpeg would fill the rest of the image with grey. */
static void on_message(j_common_ptr c, int level) {
    jerr *e = (jerr *)c->err;
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof e->msg, "truncated file (premature end of JPEG data)");
        e->code = MOLMO_ERR_FORMAT;
        longjmp(e->jb, 1);
    }
}

static void on_output(j_common_ptr c) { (void)c; }

static void on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > MAX_SCANS) {
        jerr *e = (jerr *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d scans (refused as hostile)", MAX_SCANS);
        e->code = MOLMO_ERR_FORMAT;
        longjmp(e->jb, 1);
    }
}

/* Orientation from the first APP1 "Exif" segment, as Pillow's getexif() reads it. */
static int find_orientation(j_decompress_ptr d) {
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0)
            return molmo_exif_orientation(m->data, m->data_length);
    return 1;
}

/* Pillow's "CMYK;I" unpacking (invert) followed by its cmyk2rgb: with k the stored byte,
 * out = k - round255((255 - c) * k), where round255(t) = ((t + 128) >> 8 + t + 128) >> 8. */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int width) {
    for (int x = 0; x < width; x++, in += 4, out += 3) {
        int nk = in[3];
        for (int k = 0; k < 3; k++) {
            int t = (255 - in[k]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            out[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static void set_output_space(j_decompress_ptr d) {
    if (d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK)
        d->out_color_space = JCS_CMYK;
    else
        d->out_color_space = JCS_RGB; /* grey is replicated, YCbCr converted by libjpeg */
}

/* Reads every scanline into px [h, w, 3]; CMYK rows go through row4 [w, 4] first. Returns 0, or
 * the row where libjpeg stopped delivering (libjpeg errors longjmp out of here instead). */
static int read_rows(j_decompress_ptr d, uint8_t *px, uint8_t *row4, int w, int cmyk) {
    while (d->output_scanline < d->output_height) {
        uint8_t *dst = px + (size_t)d->output_scanline * (size_t)w * 3;
        JSAMPROW row = cmyk ? row4 : dst;
        if (jpeg_read_scanlines(d, &row, 1) != 1) return (int)d->output_scanline + 1;
        if (cmyk) cmyk_row_to_rgb(row4, dst, w);
    }
    return 0;
}

molmo_status molmo_decode_jpeg_scaled(const uint8_t *data, size_t size,
                                      const molmo_decode_opts *opts, int scale_denom,
                                      molmo_decoded *out, molmo_error *err) {
    struct jpeg_decompress_struct d;
    struct jpeg_progress_mgr progress;
    jerr e;
    uint8_t *volatile px = NULL;
    uint8_t *volatile row4 = NULL;
    memset(out, 0, sizeof *out);
    memset(&e, 0, sizeof e);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.emit_message = on_message;
    e.pub.output_message = on_output;
    e.code = MOLMO_OK;
    if (setjmp(e.jb)) goto fail;
    jpeg_create_decompress(&d);
    progress.progress_monitor = on_progress;
    d.progress = &progress;
    jpeg_mem_src(&d, data, (unsigned long)size);
    jpeg_save_markers(&d, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&d, TRUE);
    molmo_status st = molmo_image_check_size(d.image_width, d.image_height, opts, "JPEG", err);
    if (st != MOLMO_OK) {
        jpeg_destroy_decompress(&d);
        return st;
    }
    out->orientation = find_orientation(&d);
    set_output_space(&d);
    d.dct_method = JDCT_ISLOW;
    d.do_fancy_upsampling = TRUE;
    d.scale_num = 1;
    d.scale_denom = (unsigned)(scale_denom > 0 ? scale_denom : 1);
    jpeg_start_decompress(&d);
    int w = (int)d.output_width, h = (int)d.output_height;
    int cmyk = d.out_color_space == JCS_CMYK;
    px = molmo_image_alloc_pixels(w, h, 3);
    if (cmyk) row4 = molmo_image_alloc_pixels(w, 1, 4);
    if (!px || (cmyk && !row4)) {
        snprintf(e.msg, sizeof e.msg, "cannot allocate %dx%d pixels", w, h);
        e.code = MOLMO_ERR_NOMEM;
        goto fail;
    }
    int stopped = read_rows(&d, px, row4, w, cmyk);
    if (stopped) {
        snprintf(e.msg, sizeof e.msg, "decoder stopped at row %d", stopped - 1);
        e.code = MOLMO_ERR_FORMAT;
        goto fail;
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    molmo_free(row4);
    out->width = w;
    out->height = h;
    out->channels = 3;
    out->pixels = px;
    return MOLMO_OK;
fail:
    jpeg_destroy_decompress(&d);
    molmo_free(px);
    molmo_free(row4);
    return molmo_err(err, e.code ? e.code : MOLMO_ERR_FORMAT, "JPEG: %s", e.msg);
}

molmo_status molmo_decode_jpeg(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                               molmo_decoded *out, molmo_error *err) {
    return molmo_decode_jpeg_scaled(data, size, opts, 1, out, err);
}

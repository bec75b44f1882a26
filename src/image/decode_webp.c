/* decode_webp.c — WebP through libwebp: lossy, lossless, alpha; an animation gives its first
 * frame as composed on the canvas by WebPAnimDecoder (Pillow decodes every WebP that way, and
 * a still image's single frame equals a plain decode). EXIF orientation comes from the EXIF
 * chunk (VP8X files). */
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/exif.h"
#include "image/image.h"

static const char *vp8_status(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated file (not enough data)";
    }
    return "unknown error";
}

static molmo_status vp8_fail(VP8StatusCode s, const char *stage, molmo_error *err) {
    molmo_status code = s == VP8_STATUS_OUT_OF_MEMORY        ? MOLMO_ERR_NOMEM
                        : s == VP8_STATUS_UNSUPPORTED_FEATURE ? MOLMO_ERR_UNSUPPORTED
                                                              : MOLMO_ERR_FORMAT;
    return molmo_err(err, code, "WebP: %s: %s", stage, vp8_status(s));
}

static int find_orientation(const uint8_t *data, size_t size) {
    WebPData wd = {data, size};
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx) return 1;
    int o = 1;
    WebPChunkIterator it;
    if (WebPDemuxGetChunk(dmx, "EXIF", 1, &it)) {
        o = molmo_exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dmx);
    return o;
}

/* First frame of an animation, RGBA, into px [h, w, 4]. */
static molmo_status decode_first_frame(const uint8_t *data, size_t size, uint8_t *px, int w,
                                       int h, molmo_error *err) {
    WebPAnimDecoderOptions o;
    if (!WebPAnimDecoderOptionsInit(&o))
        return molmo_err(err, MOLMO_ERR_INTERNAL, "WebP: libwebp version mismatch");
    o.color_mode = MODE_RGBA;
    o.use_threads = 0;
    WebPData wd = {data, size};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &o);
    if (!dec) return molmo_err(err, MOLMO_ERR_FORMAT, "WebP: corrupt or truncated animation");
    WebPAnimInfo info;
    uint8_t *frame = NULL;
    int ts = 0;
    molmo_status st = MOLMO_OK;
    if (!WebPAnimDecoderGetInfo(dec, &info) || (int)info.canvas_width != w ||
        (int)info.canvas_height != h)
        st = molmo_err(err, MOLMO_ERR_FORMAT, "WebP: animation canvas disagrees with its header");
    else if (!WebPAnimDecoderGetNext(dec, &frame, &ts) || !frame)
        st = molmo_err(err, MOLMO_ERR_FORMAT, "WebP: cannot decode the first frame (corrupt or truncated)");
    else
        memcpy(px, frame, (size_t)w * (size_t)h * 4);
    WebPAnimDecoderDelete(dec);
    return st;
}

static molmo_status decode_still(const uint8_t *data, size_t size, uint8_t *px, int w, int h,
                                 int channels, molmo_error *err) {
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return molmo_err(err, MOLMO_ERR_INTERNAL, "WebP: libwebp version mismatch");
    cfg.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = w * channels;
    cfg.output.u.RGBA.size = (size_t)w * (size_t)h * (size_t)channels;
    VP8StatusCode s = WebPDecode(data, size, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    return s == VP8_STATUS_OK ? MOLMO_OK : vp8_fail(s, "image data", err);
}

molmo_status molmo_decode_webp(const uint8_t *data, size_t size, const molmo_decode_opts *opts,
                               molmo_decoded *out, molmo_error *err) {
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures f;
    VP8StatusCode s = WebPGetFeatures(data, size, &f);
    if (s != VP8_STATUS_OK) return vp8_fail(s, "header", err);
    molmo_status st = molmo_image_check_size((uint64_t)(f.width > 0 ? f.width : 0),
                                             (uint64_t)(f.height > 0 ? f.height : 0), opts,
                                             "WebP", err);
    if (st != MOLMO_OK) return st;
    /* An animation frame is composed on an RGBA canvas; keep it RGBA and let the caller's
     * alpha policy flatten it, as for a still image with alpha. */
    int channels = (f.has_animation || (opts->want_alpha && f.has_alpha)) ? 4 : 3;
    uint8_t *px = molmo_image_alloc_pixels(f.width, f.height, channels);
    if (!px)
        return molmo_err(err, MOLMO_ERR_NOMEM, "WebP: cannot allocate %dx%d pixels", f.width,
                         f.height);
    st = f.has_animation ? decode_first_frame(data, size, px, f.width, f.height, err)
                         : decode_still(data, size, px, f.width, f.height, channels, err);
    if (st != MOLMO_OK) {
        molmo_free(px);
        return st;
    }
    out->width = f.width;
    out->height = f.height;
    out->channels = channels;
    out->had_alpha = f.has_alpha;
    out->pixels = px;
    out->orientation = find_orientation(data, size);
    return MOLMO_OK;
}

/* exif.c — EXIF Orientation: a bounds-checked read of one tag from IFD0, and the eight pixel
 * transforms of Pillow's ImageOps.exif_transpose (docs/images.md explains why it is applied). */
#include "image/exif.h"

#include <string.h>

static unsigned rd16(const uint8_t *p, int le) {
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Value of a count-1 integer entry (BYTE, SHORT, LONG and their signed forms: Pillow accepts
 * any of them), or -1. A count other than 1 gives Pillow a tuple, which it ignores. */
static long entry_int(const uint8_t *e, int le) {
    unsigned type = rd16(e + 2, le);
    if (rd32(e + 4, le) != 1) return -1;
    switch (type) {
    case 1: return e[8];                        /* BYTE   */
    case 6: return (int8_t)e[8];                /* SBYTE  */
    case 3: return (long)rd16(e + 8, le);       /* SHORT  */
    case 8: return (int16_t)rd16(e + 8, le);    /* SSHORT */
    case 4: return (long)rd32(e + 8, le);       /* LONG   */
    case 9: return (int32_t)rd32(e + 8, le);    /* SLONG  */
    default: return -1;
    }
}

int molmo_exif_orientation(const uint8_t *data, size_t size) {
    if (!data) return 1;
    if (size >= 6 && memcmp(data, "Exif\0\0", 6) == 0) {
        data += 6;
        size -= 6;
    }
    if (size < 8) return 1;
    int le;
    if (memcmp(data, "II*\0", 4) == 0) le = 1;
    else if (memcmp(data, "MM\0*", 4) == 0) le = 0;
    else return 1;
    uint32_t ifd = rd32(data + 4, le);
    if (ifd > size || size - ifd < 2) return 1;
    unsigned n = rd16(data + ifd, le);
    const uint8_t *e = data + ifd + 2;
    size_t avail = (size - ifd - 2) / 12;
    if (n > avail) n = (unsigned)avail;  /* read the entries that are there, like Pillow */
    for (unsigned i = 0; i < n; i++, e += 12) {
        if (rd16(e, le) != 0x0112) continue;
        long v = entry_int(e, le);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

void molmo_exif_oriented_size(int orientation, int width, int height, int *out_w, int *out_h) {
    int swap = orientation >= 5 && orientation <= 8;
    *out_w = swap ? height : width;
    *out_h = swap ? width : height;
}

/* Source coordinates of output pixel (x, y) for each orientation; w, h = source size. */
static void source_xy(int o, int x, int y, int w, int h, int *sx, int *sy) {
    switch (o) {
    case 2: *sx = w - 1 - x; *sy = y; break;             /* mirror left-right     */
    case 3: *sx = w - 1 - x; *sy = h - 1 - y; break;     /* rotate 180            */
    case 4: *sx = x; *sy = h - 1 - y; break;             /* flip top-bottom       */
    case 5: *sx = y; *sy = x; break;                     /* transpose             */
    case 6: *sx = y; *sy = h - 1 - x; break;             /* rotate 90 clockwise   */
    case 7: *sx = w - 1 - y; *sy = h - 1 - x; break;     /* transverse            */
    case 8: *sx = w - 1 - y; *sy = x; break;             /* rotate 90 anticlockwise */
    default: *sx = x; *sy = y; break;
    }
}

void molmo_exif_apply(int orientation, const uint8_t *src, int width, int height, int ch,
                      uint8_t *dst) {
    int ow, oh;
    molmo_exif_oriented_size(orientation, width, height, &ow, &oh);
    size_t src_row = (size_t)width * (size_t)ch;
    for (int y = 0; y < oh; y++) {
        uint8_t *d = dst + (size_t)y * (size_t)ow * (size_t)ch;
        for (int x = 0; x < ow; x++, d += ch) {
            int sx, sy;
            source_xy(orientation, x, y, width, height, &sx, &sy);
            memcpy(d, src + (size_t)sy * src_row + (size_t)sx * (size_t)ch, (size_t)ch);
        }
    }
}

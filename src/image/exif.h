/* exif.h — the EXIF Orientation tag: finding it in a TIFF/EXIF blob and applying it to pixels
 * exactly as Pillow's ImageOps.exif_transpose does. */
#ifndef MOLMO_IMAGE_EXIF_H
#define MOLMO_IMAGE_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* Reads the Orientation tag (0x0112) of IFD0 from an EXIF payload: an optional "Exif\0\0"
 * prefix, then a TIFF header ("II*\0" or "MM\0*"). Returns 1..8, or 1 when the blob is
 * malformed, the tag is absent, not a single integer, or out of range. Never reads outside
 * data[size]. */
int molmo_exif_orientation(const uint8_t *data, size_t size);

/* Output size for an orientation: 5..8 swap width and height. */
void molmo_exif_oriented_size(int orientation, int width, int height, int *out_w, int *out_h);

/* Writes src [height, width, ch] transformed for `orientation` into dst (sized by
 * molmo_exif_oriented_size). Orientation 2 mirrors, 3 rotates 180 degrees, 4 flips, 5
 * transposes, 6 rotates 90 degrees clockwise, 7 transverses, 8 rotates 90 counter-clockwise
 * (Pillow's FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE,
 * ROTATE_90). 1 (or anything else) copies. */
void molmo_exif_apply(int orientation, const uint8_t *src, int width, int height, int ch,
                      uint8_t *dst);

#endif

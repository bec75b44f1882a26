/* draw.h — internals of annotated images: marker geometry and colours (draw.c), text masks
 * rendered with FreeType (draw_text.c). The public API is the "points" section of molmo.h;
 * tests include this header to know where the pixels must land. */
#ifndef MOLMO_IMAGE_DRAW_H
#define MOLMO_IMAGE_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* Group colours, cycled: saturated and mutually distinct, each readable between the white
 * and the dark ring of the marker. */
#define MOLMO_DRAW_N_COLORS 8
extern const uint8_t molmo_draw_palette[MOLMO_DRAW_N_COLORS][3];

/* Ring colours around the fill, and the halo behind text. */
#define MOLMO_DRAW_LIGHT 255
#define MOLMO_DRAW_DARK 16

/* Radii of a marker's three discs, from the centre outwards (pixels). */
typedef struct molmo_marker_geom {
    float r_fill, r_light, r_dark;
} molmo_marker_geom;

/* The marker for an image of w x h with the requested fill radius (<= 0: automatic). */
molmo_marker_geom molmo_draw_marker_geom(int w, int h, float radius);

/* Text height in pixels for an image of w x h (requested <= 0: automatic). */
int molmo_draw_font_px(int w, int h, float requested);

/* An 8-bit coverage mask [h, w]; `baseline` is the row of the text's baseline. */
typedef struct molmo_text_mask {
    uint8_t *a;
    int w, h, baseline;
} molmo_text_mask;

void molmo_text_mask_free(molmo_text_mask *m);

/* A font face and the FreeType library instance that owns it (allocations through
 * molmo_malloc, so OOM injection reaches FreeType too). */
typedef struct molmo_font molmo_font;

/* Opens a font file. MOLMO_ERR_NOT_FOUND when it does not exist, MOLMO_ERR_FORMAT when
 * FreeType cannot use it; the message names the path. */
molmo_status molmo_font_open(const char *path, molmo_font **out, molmo_error *err);
void molmo_font_close(molmo_font *f);

/* Renders UTF-8 text (invalid bytes become U+FFFD) at `px` pixels per em into a fresh mask
 * with `pad` empty pixels on every side, glyphs anti-aliased and kerned. */
molmo_status molmo_font_render(molmo_font *f, int px, const char *text, size_t len, int pad,
                               molmo_text_mask *out, molmo_error *err);

#endif

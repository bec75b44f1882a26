/* draw.c — annotated images (issue 7): points drawn onto a copy of the image as anti-aliased
 * markers, numbered when several, with each group's label beside its first marker.
 *
 * A marker is three concentric discs: the group's colour inside a white ring inside a dark
 * ring, so it stands out on light, dark and busy images alike. Edges are anti-aliased by
 * coverage: a pixel whose centre lies at distance d from the point gets min(1, max(0,
 * r + 0.5 - d)) of a disc of radius r. Coordinates are continuous (pixel (i, j) covers
 * [i, i+1) x [j, j+1)), as the points' pixel coordinates are. Text is FreeType's (draw_text.c),
 * white over a dark halo grown from the glyphs' own coverage. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/draw.h"
#include "image/image.h"

const uint8_t molmo_draw_palette[MOLMO_DRAW_N_COLORS][3] = {
    {255, 32, 96},  {0, 200, 255}, {255, 200, 0}, {64, 220, 64},
    {190, 90, 255}, {255, 120, 0}, {0, 230, 170}, {255, 80, 200},
};

/* Labels longer than this many characters are cut and end with an ellipsis. */
#define LABEL_MAX_CHARS 40

molmo_draw_params molmo_draw_default_params(void) {
    molmo_draw_params p;
    memset(&p, 0, sizeof p);
    p.numbers = -1;
    p.labels = 1;
    return p;
}

molmo_marker_geom molmo_draw_marker_geom(int w, int h, float radius) {
    float side = (float)(w < h ? w : h);
    float r = radius > 0 ? radius : side * 0.012f;
    if (r < 4) r = radius > 0 ? r : 4;
    if (r > 4096) r = 4096;
    molmo_marker_geom g;
    g.r_fill = r;
    g.r_light = r + (r * 0.35f > 1.5f ? r * 0.35f : 1.5f);
    g.r_dark = g.r_light + (r * 0.2f > 1.0f ? r * 0.2f : 1.0f);
    return g;
}

int molmo_draw_font_px(int w, int h, float requested) {
    float side = (float)(w < h ? w : h);
    float px = requested > 0 ? requested : side * 0.035f;
    if (requested <= 0) px = px < 12 ? 12 : px > 96 ? 96 : px;
    if (px < 4) px = 4;
    if (px > 512) px = 512;
    return (int)lrintf(px);
}

/* dst += (c - dst) * a, rounded; a in [0, 1]. */
static void blend(uint8_t *dst, const uint8_t c[3], float a) {
    if (a <= 0) return;
    if (a > 1) a = 1;
    for (int k = 0; k < 3; k++)
        dst[k] = (uint8_t)lrintf((float)dst[k] + ((float)c[k] - (float)dst[k]) * a);
}

static float coverage(float r, float d) {
    float c = r + 0.5f - d;
    return c <= 0 ? 0 : c >= 1 ? 1 : c;
}

static void draw_marker(molmo_image *img, double cx, double cy, const molmo_marker_geom *g,
                        const uint8_t fill[3]) {
    static const uint8_t light[3] = {MOLMO_DRAW_LIGHT, MOLMO_DRAW_LIGHT, MOLMO_DRAW_LIGHT};
    static const uint8_t dark[3] = {MOLMO_DRAW_DARK, MOLMO_DRAW_DARK, MOLMO_DRAW_DARK};
    double R = g->r_dark + 1.0;
    if (!isfinite(cx) || !isfinite(cy) || cx < -R || cy < -R || cx > img->width + R ||
        cy > img->height + R)
        return;
    int x0 = (int)floor(cx - R), x1 = (int)ceil(cx + R), y0 = (int)floor(cy - R),
        y1 = (int)ceil(cy + R);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width) x1 = img->width;
    if (y1 > img->height) y1 = img->height;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            float d = (float)hypot(x + 0.5 - cx, y + 0.5 - cy);
            uint8_t *px = img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
            blend(px, dark, 0.9f * coverage(g->r_dark, d));
            blend(px, light, coverage(g->r_light, d));
            blend(px, fill, coverage(g->r_fill, d));
        }
}

/* Grows the mask by `k` pixels (square max filter): the halo behind the text. */
static uint8_t *dilate(const molmo_text_mask *m, int k) {
    size_t n = (size_t)m->w * (size_t)m->h;
    uint8_t *tmp = molmo_malloc(n), *out = molmo_malloc(n);
    if (!tmp || !out) {
        molmo_free(tmp);
        molmo_free(out);
        return NULL;
    }
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            uint8_t v = 0;
            for (int i = x - k; i <= x + k; i++)
                if (i >= 0 && i < m->w && m->a[(size_t)y * m->w + i] > v)
                    v = m->a[(size_t)y * m->w + i];
            tmp[(size_t)y * m->w + x] = v;
        }
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            uint8_t v = 0;
            for (int j = y - k; j <= y + k; j++)
                if (j >= 0 && j < m->h && tmp[(size_t)j * m->w + x] > v)
                    v = tmp[(size_t)j * m->w + x];
            out[(size_t)y * m->w + x] = v;
        }
    molmo_free(tmp);
    return out;
}

/* Composites a text mask with its halo, top-left at (ox, oy), clipped to the image. */
static molmo_status draw_mask(molmo_image *img, const molmo_text_mask *m, int ox, int oy, int halo,
                              molmo_error *err) {
    static const uint8_t light[3] = {MOLMO_DRAW_LIGHT, MOLMO_DRAW_LIGHT, MOLMO_DRAW_LIGHT};
    static const uint8_t dark[3] = {MOLMO_DRAW_DARK, MOLMO_DRAW_DARK, MOLMO_DRAW_DARK};
    uint8_t *h = dilate(m, halo);
    if (!h) return molmo_err(err, MOLMO_ERR_NOMEM, "draw: out of memory");
    for (int y = 0; y < m->h; y++) {
        int iy = oy + y;
        if (iy < 0 || iy >= img->height) continue;
        for (int x = 0; x < m->w; x++) {
            int ix = ox + x;
            if (ix < 0 || ix >= img->width) continue;
            size_t k = (size_t)y * m->w + x;
            uint8_t *px = img->rgb + ((size_t)iy * (size_t)img->width + (size_t)ix) * 3;
            blend(px, dark, 0.85f * h[k] / 255.0f);
            blend(px, light, m->a[k] / 255.0f);
        }
    }
    molmo_free(h);
    return MOLMO_OK;
}

/* Places a w x h box near (cx, cy) at distance `gap`: preferred to the right (dy_sign < 0:
 * above the centre line, > 0: below it), flipped to the left / the other side when it would
 * leave the image, then clamped inside. */
static void place(const molmo_image *img, double cx, double cy, double gap, int w, int h,
                  int dy_sign, int *ox, int *oy) {
    double x = cx + gap, y = dy_sign < 0 ? cy - gap * 0.7 - h : cy + gap * 0.2;
    if (x + w > img->width) x = cx - gap - w;
    if (dy_sign < 0 && y < 0) y = cy + gap * 0.7;
    if (dy_sign > 0 && y + h > img->height) y = cy - gap * 0.2 - h;
    if (x + w > img->width) x = img->width - w;
    if (y + h > img->height) y = img->height - h;
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    *ox = (int)lrint(x);
    *oy = (int)lrint(y);
}

/* Renders `text` and draws it next to the marker at (cx, cy). */
static molmo_status draw_text(molmo_image *img, molmo_font *font, int px, const char *text,
                              double cx, double cy, double gap, int dy_sign, molmo_error *err) {
    if (!isfinite(cx) || !isfinite(cy) || fabs(cx) > 1e7 || fabs(cy) > 1e7) return MOLMO_OK;
    int halo = px / 10 > 1 ? px / 10 : 1;
    molmo_text_mask m;
    molmo_status st = molmo_font_render(font, px, text, strlen(text), halo, &m, err);
    if (st != MOLMO_OK) return st;
    int ox, oy;
    place(img, cx, cy, gap, m.w, m.h, dy_sign, &ox, &oy);
    st = draw_mask(img, &m, ox, oy, halo, err);
    molmo_text_mask_free(&m);
    return st;
}

/* The label of a point: its alt, else its inner text, cut to LABEL_MAX_CHARS characters. */
static void label_text(const molmo_point *p, char *out, size_t cap) {
    const char *s = p->alt && *p->alt ? p->alt : p->label ? p->label : "";
    size_t i = 0, o = 0;
    int chars = 0;
    while (s[i] && chars < LABEL_MAX_CHARS && o + 8 < cap) {
        out[o++] = s[i++];
        while (s[i] && ((unsigned char)s[i] & 0xC0) == 0x80 && o + 4 < cap) out[o++] = s[i++];
        chars++;
    }
    if (s[i]) memcpy(out + o, "\xE2\x80\xA6", 3), o += 3; /* U+2026 */
    out[o] = '\0';
}

/* Whether point i is the first of its group (labels go there). */
static int first_of_group(const molmo_point *pts, int i) {
    for (int j = 0; j < i; j++)
        if (pts[j].group == pts[i].group) return 0;
    return 1;
}

static molmo_status draw_texts(molmo_image *img, const molmo_point *pts, int n, int numbers,
                               int labels, const molmo_draw_params *p, const molmo_marker_geom *g,
                               molmo_error *err) {
    molmo_font *font = NULL;
    const char *path = p->font_path ? p->font_path : MOLMO_DEFAULT_FONT;
    molmo_status st = molmo_font_open(path, &font, err);
    int px = molmo_draw_font_px(img->width, img->height, p->font_size);
    int num_px = px * 4 / 5 > 4 ? px * 4 / 5 : 4;
    for (int i = 0; st == MOLMO_OK && numbers && i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        st = draw_text(img, font, num_px, num, pts[i].x, pts[i].y, g->r_dark * 0.75, -1, err);
    }
    for (int i = 0; st == MOLMO_OK && labels && i < n; i++) {
        char text[LABEL_MAX_CHARS * 4 + 8];
        label_text(&pts[i], text, sizeof text);
        if (text[0] && first_of_group(pts, i))
            st = draw_text(img, font, px, text, pts[i].x, pts[i].y, g->r_dark + px * 0.25, 1, err);
    }
    molmo_font_close(font);
    return st;
}

/* Whether any point has a label to write. */
static int any_label(const molmo_point *pts, int n) {
    for (int i = 0; i < n; i++)
        if ((pts[i].alt && *pts[i].alt) || (pts[i].label && *pts[i].label)) return 1;
    return 0;
}

molmo_status molmo_image_draw_points(const molmo_image *image, const molmo_point *points,
                                     int n_points, const molmo_draw_params *params,
                                     molmo_image **out, molmo_error *err) {
    if (out) *out = NULL;
    if (!image || !out || n_points < 0 || (n_points > 0 && !points))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_image_draw_points: bad argument");
    molmo_draw_params p = params ? *params : molmo_draw_default_params();
    molmo_image *img = NULL;
    molmo_status st = molmo_image_from_rgb(image->rgb, image->width, image->height, 0, &img, err);
    if (st != MOLMO_OK) return st;
    molmo_marker_geom g = molmo_draw_marker_geom(img->width, img->height, p.marker_radius);
    for (int i = 0; i < n_points; i++) {
        unsigned grp = (unsigned)points[i].group;
        draw_marker(img, points[i].x, points[i].y, &g,
                    molmo_draw_palette[grp % MOLMO_DRAW_N_COLORS]);
    }
    int numbers = p.numbers > 0 || (p.numbers < 0 && n_points > 1);
    int labels = p.labels && any_label(points, n_points);
    if (n_points > 0 && (numbers || labels))
        st = draw_texts(img, points, n_points, numbers, labels, &p, &g, err);
    if (st != MOLMO_OK) {
        molmo_image_free(img);
        return st;
    }
    *out = img;
    return MOLMO_OK;
}

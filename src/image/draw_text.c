/* draw_text.c — labels and numbers for annotated images: UTF-8 text rendered into an 8-bit
 * coverage mask with FreeType (anti-aliased, kerned), no hand-drawn glyphs. Each font gets its
 * own FT_Library whose memory goes through molmo_malloc: no global FreeType state and OOM
 * injection reaches inside FreeType. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_MODULE_H

#include "base/alloc.h"
#include "base/error.h"
#include "image/draw.h"

struct molmo_font {
    struct FT_MemoryRec_ mem;
    FT_Library lib;
    FT_Face face;
};

static void *ft_alloc(FT_Memory m, long size) { return molmo_malloc(size > 0 ? (size_t)size : 1); }
static void ft_free(FT_Memory m, void *block) { molmo_free(block); }
static void *ft_realloc(FT_Memory m, long cur, long size, void *block) {
    return molmo_realloc(block, size > 0 ? (size_t)size : 1);
}

void molmo_font_close(molmo_font *f) {
    if (!f) return;
    if (f->face) FT_Done_Face(f->face);
    if (f->lib) FT_Done_Library(f->lib);
    molmo_free(f);
}

molmo_status molmo_font_open(const char *path, molmo_font **out, molmo_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return molmo_err(err, MOLMO_ERR_NOT_FOUND,
                         "font '%s': %s (install fonts-dejavu-core or give another font file)",
                         path, strerror(errno));
    molmo_font *f = molmo_calloc(1, sizeof *f);
    if (!f) return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
    f->mem.alloc = ft_alloc;
    f->mem.free = ft_free;
    f->mem.realloc = ft_realloc;
    FT_Error e = FT_New_Library(&f->mem, &f->lib);
    if (e) {
        f->lib = NULL;
        molmo_font_close(f);
        return molmo_err(err, e == FT_Err_Out_Of_Memory ? MOLMO_ERR_NOMEM : MOLMO_ERR_INTERNAL,
                         "font: FreeType could not start (error %d)", e);
    }
    FT_Add_Default_Modules(f->lib);
    e = FT_New_Face(f->lib, path, 0, &f->face);
    if (e) {
        f->face = NULL;
        molmo_font_close(f);
        if (e == FT_Err_Out_Of_Memory)
            return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "font '%s' is not a font FreeType can read (error %d)", path, e);
    }
    if (!FT_IS_SCALABLE(f->face)) {
        molmo_font_close(f);
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "font '%s' is not scalable (need TrueType/OpenType)", path);
    }
    *out = f;
    return MOLMO_OK;
}

void molmo_text_mask_free(molmo_text_mask *m) {
    if (!m) return;
    molmo_free(m->a);
    memset(m, 0, sizeof *m);
}

/* Next code point of UTF-8 s[*i..n); malformed sequences give U+FFFD and advance one byte. */
static uint32_t next_cp(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 1) return (*i)++, c;
    if (len == 0 || k + (size_t)len > n) return (*i)++, 0xFFFD;
    uint32_t cp = c & (0x7Fu >> len);
    for (int j = 1; j < len; j++) {
        if ((u[k + j] & 0xC0) != 0x80) return (*i)++, 0xFFFD;
        cp = (cp << 6) | (u[k + j] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (*i)++, 0xFFFD;
    *i = k + (size_t)len;
    return cp;
}

/* floor(v / 64) for 26.6 values of either sign. */
static int px_floor(FT_Pos v) { return (int)(v >= 0 ? v / 64 : -((-v + 63) / 64)); }

/* Pen positions (26.6) of each glyph and the ink extent; returns the number of glyphs, or
 * -1 when FreeType ran out of memory (other glyph errors skip the glyph). */
static int layout(FT_Face face, const char *text, size_t len, FT_UInt *glyph, FT_Pos *pen, int cap,
                  FT_Pos *x_min, FT_Pos *x_max) {
    FT_Pos x = 0;
    FT_UInt prev = 0;
    int n = 0;
    *x_min = 0;
    *x_max = 0;
    for (size_t i = 0; i < len && n < cap;) {
        FT_UInt g = FT_Get_Char_Index(face, next_cp(text, len, &i));
        if (prev && g && FT_HAS_KERNING(face)) {
            FT_Vector k;
            if (!FT_Get_Kerning(face, prev, g, FT_KERNING_DEFAULT, &k)) x += k.x;
        }
        FT_Error e = FT_Load_Glyph(face, g, FT_LOAD_DEFAULT);
        if (e == FT_Err_Out_Of_Memory) return -1;
        if (e) continue;
        FT_Glyph_Metrics *m = &face->glyph->metrics;
        if (x + m->horiBearingX < *x_min) *x_min = x + m->horiBearingX;
        if (x + m->horiBearingX + m->width > *x_max) *x_max = x + m->horiBearingX + m->width;
        glyph[n] = g;
        pen[n++] = x;
        x += face->glyph->advance.x;
        prev = g;
    }
    if (x > *x_max) *x_max = x;
    return n;
}

/* Max-composites a rendered glyph bitmap into the mask at (ox, oy) (its top-left). */
static void blit(molmo_text_mask *m, const FT_Bitmap *b, int ox, int oy) {
    if (b->pixel_mode != FT_PIXEL_MODE_GRAY) return;
    for (unsigned r = 0; r < b->rows; r++) {
        int y = oy + (int)r;
        if (y < 0 || y >= m->h) continue;
        const unsigned char *src = b->buffer + (ptrdiff_t)r * b->pitch;
        for (unsigned c = 0; c < b->width; c++) {
            int x = ox + (int)c;
            if (x < 0 || x >= m->w) continue;
            uint8_t *d = &m->a[(size_t)y * (size_t)m->w + (size_t)x];
            if (src[c] > *d) *d = src[c];
        }
    }
}

#define MAX_GLYPHS 256

molmo_status molmo_font_render(molmo_font *f, int px, const char *text, size_t len, int pad,
                               molmo_text_mask *out, molmo_error *err) {
    memset(out, 0, sizeof *out);
    if (px < 1 || px > 1024 || pad < 0 || pad > 256)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "font: size %d px / pad %d out of range", px,
                         pad);
    FT_Face face = f->face;
    FT_Error e = FT_Set_Pixel_Sizes(face, 0, (FT_UInt)px);
    if (e == FT_Err_Out_Of_Memory) return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
    if (e) return molmo_err(err, MOLMO_ERR_FORMAT, "font: cannot use a size of %d px", px);
    FT_UInt glyph[MAX_GLYPHS];
    FT_Pos pen[MAX_GLYPHS], x_min, x_max;
    int n = layout(face, text, len, glyph, pen, MAX_GLYPHS, &x_min, &x_max);
    if (n < 0) return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
    int asc = -px_floor(-face->size->metrics.ascender);
    int desc = -px_floor(face->size->metrics.descender);
    int ink_w = -px_floor(-(x_max - x_min));
    out->w = ink_w + 2 * pad + 2;
    out->h = asc + desc + 2 * pad;
    out->baseline = pad + asc;
    out->a = molmo_calloc((size_t)out->w * (size_t)out->h, 1);
    if (!out->a) {
        memset(out, 0, sizeof *out);
        return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
    }
    int x0 = pad + 1 - px_floor(x_min);
    for (int i = 0; i < n; i++) {
        e = FT_Load_Glyph(face, glyph[i], FT_LOAD_RENDER);
        if (e == FT_Err_Out_Of_Memory) {
            molmo_text_mask_free(out);
            return molmo_err(err, MOLMO_ERR_NOMEM, "font: out of memory");
        }
        if (e) continue;
        FT_GlyphSlot s = face->glyph;
        blit(out, &s->bitmap, x0 + px_floor(pen[i]) + s->bitmap_left,
             out->baseline - s->bitmap_top);
    }
    return MOLMO_OK;
}

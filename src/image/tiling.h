/* tiling.h — the integer and float32 geometry of Molmo's multi-crop layout (fact sheet
 * §5.2-5.8): crop-grid choice, resized sizes, patch masks, the image token block and the
 * position of every pooled feature in it. No pixels here; preprocess.c uses these. */
#ifndef MOLMO_IMAGE_TILING_H
#define MOLMO_IMAGE_TILING_H

#include <stdint.h>

/* Crop geometry in patches (defaults in brackets, from preprocessor_config.json). */
typedef struct molmo_tiling_geom {
    int patch_px;          /* image_patch_size [14]                                         */
    int crop_patches;      /* base_image_input_size / patch [24]                            */
    int margin_lo;         /* overlap_margins[0] [4]: dropped at the left/top of inner crops */
    int margin_hi;         /* overlap_margins[1] [4]: dropped at the right/bottom            */
    int pooled;            /* image_token_length_w/h [12] = crop_patches / 2 (2x2 pooling)  */
    int max_crops;         /* [12]                                                           */
} molmo_tiling_geom;

/* Derived sizes: crop 336 px, usable window 16 patches = 224 px, total margin 112 px. */
static inline int molmo_geom_crop_px(const molmo_tiling_geom *g) { return g->crop_patches * g->patch_px; }
static inline int molmo_geom_window_patches(const molmo_tiling_geom *g) {
    return g->crop_patches - g->margin_lo - g->margin_hi;
}
static inline int molmo_geom_window_px(const molmo_tiling_geom *g) {
    return molmo_geom_window_patches(g) * g->patch_px;
}
static inline int molmo_geom_margin_px(const molmo_tiling_geom *g) {
    return (g->margin_lo + g->margin_hi) * g->patch_px;
}

/* select_tiling (§5.2) on h = H - margin_px, w = W - margin_px (may be <= 0): candidates
 * (i, j) with i*j <= max_crops sorted by (i*j, i); s = min(window*i/h, window*j/w) in float32
 * with IEEE division by zero; if every s < 1 take the largest s, else the smallest s >= 1,
 * first in sort order on ties. */
void molmo_select_tiling(int h, int w, int window_px, int max_crops, int *rows, int *cols);

/* resize_and_pad's size (§5.3): s = min(float(tw)/float(w), float(th)/float(h)) in float32,
 * out = trunc(float(in) * s). Where that truncates to 0 (a side 336x longer than the other),
 * the reference fails inside TF's resize; we keep 1 pixel instead. */
void molmo_resized_size(int in_h, int in_w, int target_h, int target_w, int *out_h, int *out_w);

/* Pooled rows (or columns) kept by crop `i` of `n` along one axis: [*first, *first+*count)
 * of its pooled grid; they land at global pooled offset *offset. */
void molmo_pooled_window(const molmo_tiling_geom *g, int i, int n, int *first, int *count,
                         int *offset);

/* High-res pooled grid: (8R+4) x (8C+4) for the defaults. */
int molmo_highres_pooled_rows(const molmo_tiling_geom *g, int rows);

/* Image tokens for a tiling: global block 2 + P*(P+1), high-res block 2 + Hp*(Wp+1)
 * (160 + (8R+4)(8C+5) for the defaults). */
int molmo_image_token_count(const molmo_tiling_geom *g, int rows, int cols);

/* Writes the token block (§5.8): <im_start> (<im_patch>xP <im_col>)xP <im_end>, then
 * <im_start> (<im_patch>xWp <im_col>)xHp <im_end>. tokens has molmo_image_token_count
 * entries. */
void molmo_image_tokens(const molmo_tiling_geom *g, int rows, int cols, int32_t im_start,
                        int32_t im_end, int32_t im_patch, int32_t im_col, int32_t *tokens);

/* image_input_idx (§5.7) [1 + rows*cols, P*P]: position of each pooled feature relative to the
 * first image token (<im_start> = 0), -100 where the feature is dropped. Returns the number of
 * entries >= 0 (= number of <im_patch> tokens). */
int molmo_image_input_idx(const molmo_tiling_geom *g, int rows, int cols, int32_t *idx);

/* image_masks (§5.6) [1 + rows*cols, crop_patches^2]: entry k < rows*cols is the fraction of
 * real pixels in each patch of high-res crop k (canvas rows [pad_top, pad_top+nh), columns
 * [pad_left, pad_left+nw) are real), as float32 count/patch_px^2; the last entry is all -1.
 * This is the released models' off-by-one: do not shift it. */
void molmo_image_masks(const molmo_tiling_geom *g, int rows, int cols, int pad_top, int nh,
                       int pad_left, int nw, float *masks);

#endif

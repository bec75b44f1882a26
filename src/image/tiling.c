/* tiling.c — Molmo's crop-grid choice and token layout, from the HF
 * image_preprocessing_molmo.py (select_tiling, resize_and_pad's size, image_to_patches_and_grids)
 * and the closed forms of fact sheet §5.2-5.8. Float32 steps are written so that every
 * operation rounds to float32 exactly as numpy's float32 arithmetic does. */
#include "image/tiling.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* IEEE float32 division with the signed infinity numpy gives for x / 0 (x != 0); spelled out so
 * no sanitizer or compiler flag can turn it into a trap. */
static float fdiv(float a, float b) {
    if (b == 0.0f) return (a > 0) == !signbit(b) ? INFINITY : -INFINITY;
    return a / b;
}

void molmo_select_tiling(int h, int w, int window_px, int max_crops, int *rows, int *cols) {
    /* Candidates sorted by (i*j, i): enumerate products in increasing order, then i. */
    int best_i = 1, best_j = 1, any_ge1 = 0;
    float best = 0.0f;
    int first = 1;
    for (int pass = 0; pass < 2; pass++) {
        first = 1;
        for (int prod = 1; prod <= max_crops; prod++) {
            for (int i = 1; i <= prod; i++) {
                if (prod % i) continue;
                int j = prod / i;
                float s_h = fdiv((float)(window_px * i), (float)h);
                float s_w = fdiv((float)(window_px * j), (float)w);
                float s = s_h < s_w ? s_h : s_w;
                if (pass == 0) {
                    if (s >= 1.0f) any_ge1 = 1;
                    /* all < 1: np.argmax, first maximum */
                    if (first || s > best) {
                        best = s;
                        best_i = i;
                        best_j = j;
                    }
                } else {
                    /* np.where(s < 1, 10e9 (as float32), s) then np.argmin, first minimum */
                    float t = s < 1.0f ? 1e10f : s;
                    if (first || t < best) {
                        best = t;
                        best_i = i;
                        best_j = j;
                    }
                }
                first = 0;
            }
        }
        if (pass == 0 && !any_ge1) break;
    }
    *rows = best_i;
    *cols = best_j;
}

void molmo_resized_size(int in_h, int in_w, int target_h, int target_w, int *out_h, int *out_w) {
    const float sy = (float)target_h / (float)in_h;
    const float sx = (float)target_w / (float)in_w;
    const float s = sx < sy ? sx : sy; /* min(); which of two equal values is moot */
    const float fh = (float)in_h * s;
    const float fw = (float)in_w * s;
    int h = (int)fh, w = (int)fw;
    if (h > target_h) h = target_h; /* unreachable with float32 rounding; keeps the pad >= 0 */
    if (w > target_w) w = target_w;
    *out_h = h < 1 ? 1 : h;
    *out_w = w < 1 ? 1 : w;
}

void molmo_pooled_window(const molmo_tiling_geom *g, int i, int n, int *first, int *count,
                         int *offset) {
    const int window = molmo_geom_window_patches(g);
    /* Patches kept by crop i: the usable window, plus the outer margin at either end. */
    int kept = window + (i == 0 ? g->margin_lo : 0) + (i == n - 1 ? g->margin_hi : 0);
    *count = (kept + 1) / 2;
    *first = i == 0 ? 0 : g->margin_lo / 2;
    /* Crop 0 contributes (window + margin_lo)/2 pooled cells, every later one window/2. */
    *offset = i == 0 ? 0 : (window + g->margin_lo) / 2 + (i - 1) * (window / 2);
}

int molmo_highres_pooled_rows(const molmo_tiling_geom *g, int rows) {
    const int patches = rows * molmo_geom_window_patches(g) + g->margin_lo + g->margin_hi;
    return (patches + 1) / 2;
}

int molmo_image_token_count(const molmo_tiling_geom *g, int rows, int cols) {
    const int hp = molmo_highres_pooled_rows(g, rows), wp = molmo_highres_pooled_rows(g, cols);
    return 2 + g->pooled * (g->pooled + 1) + 2 + hp * (wp + 1);
}

static int32_t *block(int32_t *t, int n_rows, int n_cols, int32_t start, int32_t end,
                      int32_t patch, int32_t col) {
    *t++ = start;
    for (int r = 0; r < n_rows; r++) {
        for (int c = 0; c < n_cols; c++) *t++ = patch;
        *t++ = col;
    }
    *t++ = end;
    return t;
}

void molmo_image_tokens(const molmo_tiling_geom *g, int rows, int cols, int32_t im_start,
                        int32_t im_end, int32_t im_patch, int32_t im_col, int32_t *tokens) {
    const int hp = molmo_highres_pooled_rows(g, rows), wp = molmo_highres_pooled_rows(g, cols);
    int32_t *t = block(tokens, g->pooled, g->pooled, im_start, im_end, im_patch, im_col);
    block(t, hp, wp, im_start, im_end, im_patch, im_col);
}

int molmo_image_input_idx(const molmo_tiling_geom *g, int rows, int cols, int32_t *idx) {
    const int p = g->pooled, n_pooled = p * p;
    const int wp = molmo_highres_pooled_rows(g, cols);
    const int global_len = 2 + p * (p + 1);
    int used = 0;
    /* Global view: every pooled cell (r, c) is the c-th patch of token row r. */
    for (int r = 0; r < p; r++)
        for (int c = 0; c < p; c++, used++) idx[r * p + c] = 1 + r * (p + 1) + c;
    for (int i = 0; i < rows; i++) {
        int y_first, y_count, y_off;
        molmo_pooled_window(g, i, rows, &y_first, &y_count, &y_off);
        for (int j = 0; j < cols; j++) {
            int x_first, x_count, x_off;
            molmo_pooled_window(g, j, cols, &x_first, &x_count, &x_off);
            int32_t *out = idx + (size_t)(1 + i * cols + j) * (size_t)n_pooled;
            for (int py = 0; py < p; py++) {
                for (int px = 0; px < p; px++) {
                    int keep = py >= y_first && py < y_first + y_count && px >= x_first &&
                               px < x_first + x_count;
                    if (!keep) {
                        out[py * p + px] = -100;
                        continue;
                    }
                    int gr = y_off + py - y_first, gc = x_off + px - x_first;
                    out[py * p + px] = global_len + 1 + gr * (wp + 1) + gc;
                    used++;
                }
            }
        }
    }
    return used;
}

/* Number of positions of [a, a+len) inside [lo, hi). */
static int overlap(int a, int len, int lo, int hi) {
    int s = a > lo ? a : lo, e = a + len < hi ? a + len : hi;
    return e > s ? e - s : 0;
}

void molmo_image_masks(const molmo_tiling_geom *g, int rows, int cols, int pad_top, int nh,
                       int pad_left, int nw, float *masks) {
    const int cp = g->crop_patches, ps = g->patch_px, n_patches = cp * cp;
    const int window_px = molmo_geom_window_px(g);
    const float area = (float)(ps * ps);
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            float *m = masks + (size_t)(i * cols + j) * (size_t)n_patches;
            for (int py = 0; py < cp; py++) {
                int ry = overlap(i * window_px + py * ps, ps, pad_top, pad_top + nh);
                for (int px = 0; px < cp; px++) {
                    int rx = overlap(j * window_px + px * ps, ps, pad_left, pad_left + nw);
                    m[py * cp + px] = (float)(ry * rx) / area; /* numpy float32 mean */
                }
            }
        }
    }
    float *last = masks + (size_t)rows * (size_t)cols * (size_t)n_patches;
    for (int k = 0; k < n_patches; k++) last[k] = -1.0f;
}

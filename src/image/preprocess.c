/* preprocess.c — Molmo's multi-crop preprocessing (HF image_preprocessing_molmo.py,
 * image_to_patches_and_grids with resize_and_pad; fact sheet §5): choose the tiling, resize
 * twice with TF's antialiased bilinear (resize.c), pad with 0 before normalising, cut the
 * global view and the high-res crops into (dy, dx, c)-flattened patches, and derive masks,
 * feature positions and the token block (tiling.c). */
#include "image/preprocess.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "image/image.h"
#include "image/resize.h"
#include "image/tiling.h"
#include "io/jsonutil.h"
#include "io/path.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

void molmo_preproc_config_default(molmo_preproc_config *c) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memset(c, 0, sizeof *c);
    c->max_crops = 12;
    c->margin_lo = c->margin_hi = 4;
    c->crop_size = 336;
    c->patch_size = 14;
    c->tokens_h = c->tokens_w = 12;
    c->padding_mask = 1;
    c->do_normalize = 1;
    memcpy(c->mean, mean, sizeof mean);
    memcpy(c->std, std, sizeof std);
}

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) return molmo_err(err, MOLMO_ERR_INVALID_ARG, __VA_ARGS__);               \
    } while (0)

molmo_status molmo_preproc_config_check(const molmo_preproc_config *c, molmo_error *err) {
    CHECK(c->max_crops >= 1 && c->max_crops <= 64, "max_crops = %d is outside [1, 64]", c->max_crops);
    CHECK(c->patch_size >= 1 && c->patch_size <= 64, "image_patch_size = %d is outside [1, 64]",
          c->patch_size);
    CHECK(c->crop_size >= c->patch_size && c->crop_size <= 4096 && c->crop_size % c->patch_size == 0,
          "base_image_input_size = %d is not a multiple of image_patch_size %d in [%d, 4096]",
          c->crop_size, c->patch_size, c->patch_size);
    int cp = c->crop_size / c->patch_size;
    CHECK(cp % 2 == 0, "base_image_input_size / image_patch_size = %d must be even (2x2 pooling)", cp);
    CHECK(c->tokens_h == cp / 2 && c->tokens_w == cp / 2,
          "image_token_length_h/w = %d/%d must be %d (2x2 pooling of %d patches)", c->tokens_h,
          c->tokens_w, cp / 2, cp);
    CHECK(c->margin_lo >= 0 && c->margin_hi >= 0 && c->margin_lo % 2 == 0 && c->margin_hi % 2 == 0,
          "overlap_margins = [%d, %d] must be even and >= 0", c->margin_lo, c->margin_hi);
    CHECK(c->margin_lo + c->margin_hi <= cp - 2,
          "overlap_margins = [%d, %d] leave no usable window in a %d-patch crop", c->margin_lo,
          c->margin_hi, cp);
    for (int k = 0; k < 3; k++) {
        CHECK(c->mean[k] >= -10.0f && c->mean[k] <= 10.0f, "image_mean[%d] = %g is outside [-10, 10]",
              k, (double)c->mean[k]);
        CHECK(c->std[k] >= 1e-6f && c->std[k] <= 100.0f, "image_std[%d] = %g is outside [1e-6, 100]",
              k, (double)c->std[k]);
    }
    return MOLMO_OK;
}

/* obj[key] as an array of exactly n integers in [lo, hi]; absent keeps *out. */
static molmo_status json_ints(json_t *obj, const char *key, int n, int lo, int hi, int *out,
                              const char *ctx, molmo_error *err) {
    json_t *a = json_object_get(obj, key);
    if (!a || json_is_null(a)) return MOLMO_OK;
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not an array of %d integers", ctx, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\"[%d] is not an integer in [%d, %d]",
                             ctx, key, i, lo, hi);
        out[i] = (int)json_integer_value(v);
    }
    return MOLMO_OK;
}

/* obj[key] as an array of 3 numbers in [lo, hi], stored as float32 (numpy's cast). */
static molmo_status json_floats3(json_t *obj, const char *key, double lo, double hi, float *out,
                                 const char *ctx, molmo_error *err) {
    json_t *a = json_object_get(obj, key);
    if (!a || json_is_null(a)) return MOLMO_OK;
    if (!json_is_array(a) || json_array_size(a) != 3)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not an array of 3 numbers", ctx, key);
    for (int i = 0; i < 3; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        double x = json_is_number(v) ? json_number_value(v) : lo - 1;
        if (!(x >= lo && x <= hi))
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\"[%d] is not a number in [%g, %g]",
                             ctx, key, i, lo, hi);
        out[i] = (float)x;
    }
    return MOLMO_OK;
}

static molmo_status parse_config(json_t *root, const char *ctx, molmo_preproc_config *c,
                                 molmo_error *err) {
    long long v;
    int pair[2], b;
    molmo_status st = molmo_json_int(root, "max_crops", 1, 64, 0, c->max_crops, &v, ctx, err);
    if (st) return st;
    c->max_crops = (int)v;
    if ((st = molmo_json_int(root, "image_patch_size", 1, 64, 0, c->patch_size, &v, ctx, err))) return st;
    c->patch_size = (int)v;
    if ((st = molmo_json_int(root, "image_token_length_h", 1, 2048, 0, c->tokens_h, &v, ctx, err))) return st;
    c->tokens_h = (int)v;
    if ((st = molmo_json_int(root, "image_token_length_w", 1, 2048, 0, c->tokens_w, &v, ctx, err))) return st;
    c->tokens_w = (int)v;
    pair[0] = c->margin_lo;
    pair[1] = c->margin_hi;
    if ((st = json_ints(root, "overlap_margins", 2, 0, 1024, pair, ctx, err))) return st;
    c->margin_lo = pair[0];
    c->margin_hi = pair[1];
    pair[0] = pair[1] = c->crop_size;
    if ((st = json_ints(root, "base_image_input_size", 2, 1, 4096, pair, ctx, err))) return st;
    if (pair[0] != pair[1])
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"base_image_input_size\" [%d, %d] is not square",
                         ctx, pair[0], pair[1]);
    c->crop_size = pair[0];
    if ((st = molmo_json_bool(root, "image_padding_mask", 0, c->padding_mask, &b, ctx, err))) return st;
    c->padding_mask = b;
    if ((st = molmo_json_bool(root, "do_normalize", 0, c->do_normalize, &b, ctx, err))) return st;
    c->do_normalize = b;
    if ((st = json_floats3(root, "image_mean", -10, 10, c->mean, ctx, err))) return st;
    if ((st = json_floats3(root, "image_std", 1e-6, 100, c->std, ctx, err))) return st;
    return MOLMO_OK;
}

/* Parses a loaded preprocessor_config.json (takes the reference to root) into *cfg, which
 * holds the defaults; *cfg is only changed on success. */
static molmo_status parse_checked(json_t *root, const char *ctx, molmo_preproc_config *cfg,
                                  molmo_error *err) {
    molmo_preproc_config c = *cfg;
    molmo_status st = parse_config(root, ctx, &c, err);
    json_decref(root);
    if (st != MOLMO_OK) return st;
    st = molmo_preproc_config_check(&c, err);
    if (st != MOLMO_OK) {
        /* a range error in a file is a format error of that file */
        molmo_err_prefix(err, "%s", ctx);
        if (err) err->code = MOLMO_ERR_FORMAT;
        return MOLMO_ERR_FORMAT;
    }
    *cfg = c;
    return MOLMO_OK;
}

molmo_status molmo_preproc_config_load(const char *path, molmo_preproc_config *cfg,
                                       molmo_error *err) {
    char file[4096];
    molmo_preproc_config_default(cfg);
    if (!path) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "preprocessor config: path is NULL");
    if (molmo_path_is_dir(path)) {
        if (molmo_path_join(file, sizeof file, path, "preprocessor_config.json") != 0)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", path);
    } else if (snprintf(file, sizeof file, "%s", path) >= (int)sizeof file) {
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", path);
    }
    if (!molmo_path_exists(file)) return MOLMO_OK; /* Molmo's defaults, as the HF processor */
    json_t *root = NULL;
    molmo_status st = molmo_json_load_file(file, 1u << 20, &root, err);
    if (st != MOLMO_OK) return st;
    return parse_checked(root, file, cfg, err);
}

molmo_status molmo_preproc_config_parse(const char *json, size_t len, const char *name,
                                        molmo_preproc_config *cfg, molmo_error *err) {
    molmo_preproc_config_default(cfg);
    if (!json || !name) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "preprocessor config: NULL");
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)",
                         name, je.text, je.line, je.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: not a JSON object", name);
    }
    return parse_checked(root, name, cfg, err);
}

/* Normalisation constants: HF's normalize_image subtracts then divides in float32; padding is
 * 0 in [0, 1] space, so it normalises to -mean/std (-1.79, -1.75, -1.48 for CLIP). */
typedef struct norm {
    float mean[3], std[3], pad[3];
    int on;
} norm;

static void norm_init(norm *n, const molmo_preproc_config *c) {
    n->on = c->do_normalize;
    for (int k = 0; k < 3; k++) {
        n->mean[k] = c->mean[k];
        n->std[k] = c->std[k];
        n->pad[k] = n->on ? (0.0f - c->mean[k]) / c->std[k] : 0.0f;
    }
}

/* Normalises resized pixels in place: each value once, although crops overlap. */
static void normalize(float *v, size_t n_px, const norm *n) {
    if (!n->on) return;
    const float m0 = n->mean[0], m1 = n->mean[1], m2 = n->mean[2];
    const float s0 = n->std[0], s1 = n->std[1], s2 = n->std[2];
    for (size_t i = 0; i < n_px; i++, v += 3) {
        v[0] = (v[0] - m0) / s0;
        v[1] = (v[1] - m1) / s1;
        v[2] = (v[2] - m2) / s2;
    }
}

static void fill_pad(float *d, int n_px, const norm *n) {
    for (int k = 0; k < n_px; k++, d += 3) {
        d[0] = n->pad[0];
        d[1] = n->pad[1];
        d[2] = n->pad[2];
    }
}

/* Writes one crop [n_patches, d_patch]: canvas pixels [y0, y0+crop) x [x0, x0+crop), where the
 * normalised resized image img [nh, nw, 3] sits at (top, left) and everything else is
 * padding. Patch (py, px) is row py*cp+px; inside it values go (dy, dx, channel), so each
 * patch row is one run of ps pixels copied from the image row. */
static void write_crop(const float *img, int nh, int nw, int top, int left, int y0, int x0,
                       int cp, int ps, const norm *n, float *dst) {
    const size_t d_patch = (size_t)ps * (size_t)ps * 3;
    for (int py = 0; py < cp; py++) {
        for (int dy = 0; dy < ps; dy++) {
            const int ry = y0 + py * ps + dy - top;
            const float *row = ry >= 0 && ry < nh ? img + (size_t)ry * (size_t)nw * 3 : NULL;
            for (int px = 0; px < cp; px++) {
                float *d = dst + (size_t)(py * cp + px) * d_patch + (size_t)dy * (size_t)ps * 3;
                const int rx0 = x0 + px * ps - left;
                /* real pixels of this run: dx in [a, b) */
                int a = rx0 < 0 ? -rx0 : 0, b = nw - rx0 < ps ? nw - rx0 : ps;
                if (!row || b <= a) {
                    fill_pad(d, ps, n);
                    continue;
                }
                fill_pad(d, a, n);
                memcpy(d + 3 * a, row + (size_t)(rx0 + a) * 3, (size_t)(b - a) * 3 * sizeof *d);
                fill_pad(d + 3 * b, ps - b, n);
            }
        }
    }
}

/* One thread's share of a resize: a contiguous range of output rows. */
typedef struct resize_job {
    const molmo_resize_plan *plan;
    const molmo_image *img;
    float *dst, *scratch;
    size_t scratch_n;
    int nh;
} resize_job;

static void resize_part(void *arg, int ith, int nth) {
    resize_job *j = arg;
    int y0, y1;
    molmo_pool_range(j->nh, ith, nth, &y0, &y1);
    if (y0 < y1)
        molmo_resize_rows_u8(j->plan, j->img->rgb, (size_t)j->img->width * 3, j->dst, y0, y1,
                             j->scratch + (size_t)ith * j->scratch_n);
}

/* TF-resizes the whole image to [nh, nw, 3] floats in [0, 1], rows split over the pool (any
 * split gives the same bytes: rows are independent). */
static molmo_status resize_image(const molmo_image *img, int nh, int nw, molmo_pool *pool,
                                 float **out, molmo_error *err) {
    molmo_resize_plan plan;
    float *scratch = NULL, *dst = NULL;
    *out = NULL;
    molmo_status st = molmo_resize_plan_init(&plan, img->height, img->width, nh, nw, err);
    if (st != MOLMO_OK) return st;
    size_t per = molmo_resize_scratch_floats(&plan);
    scratch = molmo_malloc((size_t)molmo_pool_size(pool) * per * sizeof *scratch);
    dst = molmo_malloc((size_t)nh * (size_t)nw * 3 * sizeof *dst);
    if (!scratch || !dst) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "preprocess: cannot allocate a %dx%d resize", nh, nw);
        goto fail;
    }
    resize_job job = {&plan, img, dst, scratch, per, nh};
    molmo_pool_run(pool, resize_part, &job);
    molmo_free(scratch);
    molmo_resize_plan_free(&plan);
    *out = dst;
    return MOLMO_OK;
fail:
    molmo_free(scratch);
    molmo_free(dst);
    molmo_resize_plan_free(&plan);
    return st;
}

/* Decides the layout (tiling, canvas, resized sizes, paddings) and sizes the result. */
static void plan_layout(const molmo_image *img, const molmo_preproc_config *c,
                        const molmo_tiling_geom *g, molmo_preproc_result *r) {
    const int margin = molmo_geom_margin_px(g), window = molmo_geom_window_px(g);
    r->image_w = img->width;
    r->image_h = img->height;
    molmo_select_tiling(img->height - margin, img->width - margin, window, c->max_crops, &r->rows,
                        &r->cols);
    r->canvas_h = r->rows * window + margin;
    r->canvas_w = r->cols * window + margin;
    molmo_resized_size(img->height, img->width, r->canvas_h, r->canvas_w, &r->resized_h,
                       &r->resized_w);
    r->pad_top = (r->canvas_h - r->resized_h) / 2;
    r->pad_left = (r->canvas_w - r->resized_w) / 2;
    molmo_resized_size(img->height, img->width, c->crop_size, c->crop_size, &r->global_h,
                       &r->global_w);
    r->global_pad_top = (c->crop_size - r->global_h) / 2;
    r->global_pad_left = (c->crop_size - r->global_w) / 2;
    r->n_crops = 1 + r->rows * r->cols;
    r->n_patches = g->crop_patches * g->crop_patches;
    r->d_patch = c->patch_size * c->patch_size * 3;
    r->n_pooled = c->tokens_h * c->tokens_w;
    r->n_tokens = molmo_image_token_count(g, r->rows, r->cols);
}

molmo_status molmo_preprocess(const molmo_image *img, const molmo_preproc_config *cfg,
                              const molmo_image_token_ids *ids, molmo_preproc_result *out,
                              molmo_error *err) {
    return molmo_preprocess_mt(img, cfg, ids, NULL, out, err);
}

molmo_status molmo_preprocess_mt(const molmo_image *img, const molmo_preproc_config *cfg,
                                 const molmo_image_token_ids *ids, molmo_pool *pool,
                                 molmo_preproc_result *out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_preprocess: out is NULL");
    memset(out, 0, sizeof *out);
    if (!img || !cfg) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_preprocess: NULL argument");
    molmo_status st = molmo_preproc_config_check(cfg, err);
    if (st != MOLMO_OK) return st;
    const molmo_tiling_geom g = {cfg->patch_size, cfg->crop_size / cfg->patch_size, cfg->margin_lo,
                                 cfg->margin_hi, cfg->tokens_h, cfg->max_crops};
    molmo_preproc_result *r = out;
    plan_layout(img, cfg, &g, r);
    const size_t crop_floats = (size_t)r->n_patches * (size_t)r->d_patch;
    float *canvas = NULL, *global = NULL;
    r->images = molmo_malloc((size_t)r->n_crops * crop_floats * sizeof *r->images);
    r->input_idx = molmo_malloc((size_t)r->n_crops * (size_t)r->n_pooled * sizeof *r->input_idx);
    if (cfg->padding_mask)
        r->masks = molmo_malloc((size_t)r->n_crops * (size_t)r->n_patches * sizeof *r->masks);
    if (ids) r->tokens = molmo_malloc((size_t)r->n_tokens * sizeof *r->tokens);
    if (!r->images || !r->input_idx || (cfg->padding_mask && !r->masks) || (ids && !r->tokens)) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "preprocess: cannot allocate %d crops", r->n_crops);
        goto fail;
    }
    norm n;
    norm_init(&n, cfg);
    const int window = molmo_geom_window_px(&g);
    if ((st = resize_image(img, r->resized_h, r->resized_w, pool, &canvas, err)) != MOLMO_OK)
        goto fail;
    normalize(canvas, (size_t)r->resized_h * (size_t)r->resized_w, &n);
    for (int i = 0; i < r->rows; i++)
        for (int j = 0; j < r->cols; j++)
            write_crop(canvas, r->resized_h, r->resized_w, r->pad_top, r->pad_left, i * window,
                       j * window, g.crop_patches, g.patch_px, &n,
                       r->images + (size_t)(1 + i * r->cols + j) * crop_floats);
    molmo_free(canvas);
    canvas = NULL;
    if ((st = resize_image(img, r->global_h, r->global_w, pool, &global, err)) != MOLMO_OK)
        goto fail;
    normalize(global, (size_t)r->global_h * (size_t)r->global_w, &n);
    write_crop(global, r->global_h, r->global_w, r->global_pad_top, r->global_pad_left, 0, 0,
               g.crop_patches, g.patch_px, &n, r->images);
    molmo_free(global);
    if (r->masks)
        molmo_image_masks(&g, r->rows, r->cols, r->pad_top, r->resized_h, r->pad_left,
                          r->resized_w, r->masks);
    r->n_features = molmo_image_input_idx(&g, r->rows, r->cols, r->input_idx);
    if (ids)
        molmo_image_tokens(&g, r->rows, r->cols, ids->im_start, ids->im_end, ids->im_patch,
                           ids->im_col, r->tokens);
    return MOLMO_OK;
fail:
    molmo_free(canvas);
    molmo_preproc_result_free(r);
    return st;
}

void molmo_preproc_result_free(molmo_preproc_result *r) {
    if (!r) return;
    molmo_free(r->images);
    molmo_free(r->masks);
    molmo_free(r->input_idx);
    molmo_free(r->tokens);
    memset(r, 0, sizeof *r);
}

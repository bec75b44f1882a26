/* preprocess.h — Molmo's image preprocessing (fact sheet §5): a decoded image becomes the
 * global view plus up to max_crops overlapping high-res crops, cut into patches, with the
 * patch masks, the position of every pooled feature and the image token block.
 *
 * Usage (the lead's prompt builder adds BOS: position 0 of the block is at input_ids[1]):
 *     molmo_preproc_config cfg;
 *     molmo_preproc_config_load(model_dir, &cfg, &err);   // missing file -> Molmo defaults
 *     cfg.max_crops = 6;                                  // optional override
 *     molmo_image_token_ids ids = {im_start, im_end, im_patch, im_col};
 *     molmo_preproc_result r;
 *     molmo_preprocess(img, &cfg, &ids, &r, &err);
 *     ... r.images, r.masks, r.input_idx, r.tokens ...
 *     molmo_preproc_result_free(&r);
 */
#ifndef MOLMO_IMAGE_PREPROCESS_H
#define MOLMO_IMAGE_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "molmo.h"

/* preprocessor_config.json, normalised. Defaults (Molmo 0924) in brackets. */
typedef struct molmo_preproc_config {
    int max_crops;           /* [12]        high-res crops at most; overridable, 1..64       */
    int margin_lo, margin_hi;/* [4, 4]      overlap_margins, in patches, each even           */
    int crop_size;           /* [336]       base_image_input_size (square), pixels           */
    int patch_size;          /* [14]        image_patch_size                                 */
    int tokens_h, tokens_w;  /* [12, 12]    image_token_length_h/w = crop patches / 2        */
    int padding_mask;        /* [1]         image_padding_mask: produce `masks`              */
    int do_normalize;        /* [1]         CLIP-normalise                                   */
    float mean[3];           /* [0.48145466, 0.4578275, 0.40821073]                          */
    float std[3];            /* [0.26862954, 0.26130258, 0.27577711]                         */
} molmo_preproc_config;

/* Fills Molmo's defaults (the values of every released preprocessor_config.json). */
void molmo_preproc_config_default(molmo_preproc_config *cfg);

/* Reads `path` (a preprocessor_config.json, or a model directory holding one). A missing file
 * gives the defaults and MOLMO_OK; a malformed or out-of-range field is MOLMO_ERR_FORMAT with
 * the file and field named. Keys it does not use are ignored. */
molmo_status molmo_preproc_config_load(const char *path, molmo_preproc_config *cfg,
                                       molmo_error *err);

/* The same from a preprocessor_config.json text in memory (json[0..len), e.g. embedded in a
 * GGUF file); `name` labels errors. */
molmo_status molmo_preproc_config_parse(const char *json, size_t len, const char *name,
                                        molmo_preproc_config *cfg, molmo_error *err);

/* Range-checks a config (e.g. after an override). MOLMO_ERR_INVALID_ARG names the field. */
molmo_status molmo_preproc_config_check(const molmo_preproc_config *cfg, molmo_error *err);

/* The four special tokens of the image block (from the tokenizer). */
typedef struct molmo_image_token_ids {
    int32_t im_start, im_end, im_patch, im_col;
} molmo_image_token_ids;

typedef struct molmo_preproc_result {
    int rows, cols;          /* tiling                                                       */
    int n_crops;             /* 1 + rows*cols (global view first)                            */
    int n_patches;           /* per crop: (crop_size/patch_size)^2 = 576                     */
    int d_patch;             /* patch_size^2 * 3 = 588                                       */
    int n_pooled;            /* per crop: tokens_h * tokens_w = 144                          */
    float *images;           /* [n_crops, n_patches, d_patch]; patch (py, px) at row
                                py*24+px, values in (dy, dx, channel) order, normalised,
                                padding = normalised 0                                       */
    float *masks;            /* [n_crops, n_patches] fraction of real pixels per patch, with
                                the released models' off-by-one (§5.6); NULL when the config
                                has image_padding_mask false                                 */
    int32_t *input_idx;      /* [n_crops, n_pooled] position of each pooled feature relative
                                to the first image token (<im_start> = 0), -100 = unused     */
    int n_features;          /* entries of input_idx >= 0 (= <im_patch> tokens)             */
    int32_t *tokens;         /* [n_tokens] the image token block; NULL when ids was NULL     */
    int n_tokens;
    /* Geometry, to map model coordinates back onto the image. */
    int image_w, image_h;    /* input size                                                   */
    int canvas_h, canvas_w;  /* high-res canvas: rows*224+112 x cols*224+112                 */
    int resized_h, resized_w, pad_top, pad_left;  /* image inside the canvas               */
    int global_h, global_w, global_pad_top, global_pad_left; /* inside the 336 global view */
} molmo_preproc_result;

/*
 * Preprocesses `img` (as decoded: 8-bit RGB as the user sees it). `ids` may be NULL (no token
 * block). On success `out` owns its arrays (molmo_preproc_result_free); on failure it is
 * zeroed. Errors: MOLMO_ERR_INVALID_ARG (bad config), MOLMO_ERR_NOMEM.
 * Deterministic; uses no threads of its own (the resize is split by rows, see resize.h).
 */
molmo_status molmo_preprocess(const molmo_image *img, const molmo_preproc_config *cfg,
                              const molmo_image_token_ids *ids, molmo_preproc_result *out,
                              molmo_error *err);

/* The same with the resizes split over `pool` by rows (NULL: the calling thread only). The
 * result does not depend on the pool size. */
molmo_status molmo_preprocess_mt(const molmo_image *img, const molmo_preproc_config *cfg,
                                 const molmo_image_token_ids *ids, molmo_pool *pool,
                                 molmo_preproc_result *out, molmo_error *err);

void molmo_preproc_result_free(molmo_preproc_result *r);

#endif

/* context.h — per-conversation state: thread pool, vision workspace, decoder (KV cache), the
 * cached image features of the last image and the token ids whose keys/values are cached. */
#ifndef MOLMO_MODEL_CONTEXT_H
#define MOLMO_MODEL_CONTEXT_H

#include "base/threadpool.h"
#include "image/preprocess.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/vision.h"

/* The last image this context encoded: reused when the same pixels come with the same
 * max_crops (a second question about a picture does not run the vision encoder again). */
typedef struct molmo_image_cache {
    int valid;
    unsigned char key[32];        /* SHA-256 of width, height, max_crops and the pixels */
    molmo_preproc_result pre;     /* crops, masks, feature positions, token block */
    float *features;              /* [n_crops, n_pooled, d_model] */
} molmo_image_cache;

struct molmo_context {
    const molmo_model *model;
    molmo_context_params params;
    molmo_pool *pool;
    molmo_vision *vision;
    molmo_decoder *dec;
    float *logits;                /* [embedding_size] */
    long n_vision_crops;          /* crops encoded so far (tests check the cache with it) */
    molmo_image_cache img;
    int32_t *prompt;              /* [n_ctx] the prompt being run */
    int n_prompt;
    int32_t *cached;              /* [n_ctx] ids whose keys/values the decoder holds */
    int n_cached;
    int cached_image_valid;       /* the cached ids include image features of ... */
    unsigned char cached_image_key[32]; /* ... this image */
};

/* Frees the cached image (features and preprocessing). */
void molmo_context_drop_image(molmo_context *c);

#endif

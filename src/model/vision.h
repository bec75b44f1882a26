/* vision.h — the image half of Molmo: CLIP ViT (fact sheet §3) and the connector (§4: pad
 * embeddings, 2x2 mean-query attention pooling, SwiGLU projector), one crop at a time.
 *
 * A molmo_vision holds the workspace for one crop, sized once from the config (no allocation
 * per crop); it belongs to one context and is used by one thread at a time (the ops inside run
 * on the context's pool). */
#ifndef MOLMO_MODEL_VISION_H
#define MOLMO_MODEL_VISION_H

#include "base/threadpool.h"
#include "model/model.h"

typedef struct molmo_vision molmo_vision;

/* Named intermediate tensors go to the trace callback when it is set (see molmo.h). */
/* n_threads: the size of the pool that will run it (sizes the attention scratch). */
molmo_status molmo_vision_create(const molmo_model *m, int n_threads, molmo_vision **out,
                                 molmo_error *err);
void molmo_vision_free(molmo_vision *v);
/* bf16 activations (molmo_context_params.bf16_activations): the inputs of the matmuls with
 * BF16 weights are rounded to bf16 first (the patch embedding keeps its f32 pixels), and the
 * ViT's attention runs on bf16 q, k, v and softmax weights (molmo_op_attention_bf16) whatever
 * the weight type (the decoder's likewise, decoder.h). */
void molmo_vision_set_bf16_activations(molmo_vision *v, int on);

/*
 * Encodes one crop. patches: [n_patches, patch*patch*3] CLIP-normalised pixels (one row per
 * 14x14 patch, (dy, dx, c) order); mask: [n_patches] fraction of real pixels (−1 / 0 / (0,1] as
 * the preprocessor produced them). out: [n_pooled, d_model] connector output for this crop.
 * `crop` only labels trace names. `features_out` (may be NULL): [n_patches, 2W] ViT features
 * before the pad embeddings (what the goldens call vit_features).
 */
void molmo_vision_encode_crop(molmo_vision *v, molmo_pool *pool, const float *patches,
                              const float *mask, int crop, float *out, float *features_out,
                              molmo_trace_fn trace, void *trace_user);

#endif

/* context.h — per-conversation state: thread pool, workspaces (and later the KV cache). */
#ifndef MOLMO_MODEL_CONTEXT_H
#define MOLMO_MODEL_CONTEXT_H

#include "base/threadpool.h"
#include "model/model.h"
#include "model/vision.h"

struct molmo_context {
    const molmo_model *model;
    molmo_context_params params;
    molmo_pool *pool;
    molmo_vision *vision;
    long n_vision_crops; /* crops encoded so far (tests check the image-feature cache with it) */
};

#endif

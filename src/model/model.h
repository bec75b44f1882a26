/* model.h — the loaded model: config, mapped weights and the files around them.
 * Immutable after molmo_model_load; shared read-only by every context. */
#ifndef MOLMO_MODEL_MODEL_H
#define MOLMO_MODEL_MODEL_H

#include "image/preprocess.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "molmo.h"

struct molmo_model {
    char *path;               /* resolved model directory */
    molmo_config cfg;
    molmo_safetensors st;
    molmo_weights w;
    int has_tokenizer, has_preprocessor_config, has_generation_config;
    uint64_t weight_bytes;
    /* text and image front ends (present when the directory has tokenizer.json) */
    molmo_tokenizer *tok;
    int32_t eos_id;                  /* also the BOS (Qwen2/OLMo tokenizers have none) */
    molmo_image_token_ids image_ids; /* <im_start>, <im_end>, <im_patch>, <im_col> */
    molmo_preproc_config pp;         /* preprocessor_config.json or Molmo's defaults */
};

#endif

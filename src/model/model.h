/* model.h — the loaded model: config, mapped weights and the files around them.
 * Immutable after molmo_model_load; shared read-only by every context. */
#ifndef MOLMO_MODEL_MODEL_H
#define MOLMO_MODEL_MODEL_H

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
};

#endif

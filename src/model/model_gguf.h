/* model_gguf.h — loading a model from one GGUF file written by molmo_convert (model_gguf.c),
 * and the step both loaders share (model.c). */
#ifndef MOLMO_MODEL_MODEL_GGUF_H
#define MOLMO_MODEL_MODEL_GGUF_H

#include "model/model.h"

/* Fills *m (whose path is the GGUF file) from the file: config from the embedded config.json,
 * weights from its tensor table (the mapping stays open in m->st), tokenizer and preprocessor
 * config from the embedded texts. On failure the caller frees m. */
molmo_status molmo_model_load_gguf(molmo_model *m, const molmo_model_params *p,
                                   molmo_error *err);

/* With m->tok loaded: looks up EOS (= BOS) and the image tokens, and checks EOS is a row of the
 * embedding. Errors name m->path. */
molmo_status molmo_model_bind_tokenizer(molmo_model *m, molmo_error *err);

#endif

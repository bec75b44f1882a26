/* generate.h — the two halves of molmo_generate shared by generate.c and decode.c. */
#ifndef MOLMO_MODEL_GENERATE_H
#define MOLMO_MODEL_GENERATE_H

#include "model/context.h"

/* Runs the prompt in c->prompt (reusing the cached prefix); leaves the last logits in
 * c->logits and records prompt/cached/prefill figures in g. */
molmo_status molmo_generate_prefill(molmo_context *c, int with_image, molmo_generation *g,
                                    molmo_error *err);

/* Prefill, then the decode loop: sampling, EOS, stop strings, streaming, log-probs. */
molmo_status molmo_generate_run(molmo_context *c, int with_image,
                                const molmo_generate_params *p, molmo_generation *g,
                                molmo_error *err);

#endif

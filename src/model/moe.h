/* moe.h — OLMoE mixture-of-experts feed-forward (fact sheet §2.5): router softmax over all
 * experts in f32, top-k, weights NOT renormalised, experts run on the batch of tokens routed to
 * them (not token by token), outputs added in expert order as the reference's index_add_. */
#ifndef MOLMO_MODEL_MOE_H
#define MOLMO_MODEL_MOE_H

#include "base/threadpool.h"
#include "model/model.h"

typedef struct molmo_moe molmo_moe;

molmo_status molmo_moe_create(const molmo_model *m, int n_batch, molmo_moe **out,
                              molmo_error *err);
void molmo_moe_free(molmo_moe *moe);
/* bf16 activations for BF16 experts: their inputs are rounded to bf16 (the router stays f32). */
void molmo_moe_set_bf16_activations(molmo_moe *moe, int on);

/* out[n, d] = MoE(in[n, d]) for layer L (n <= n_batch). Traces "llm.block{i}.topk_ids" and
 * "llm.block{i}.topk_weights" [n, k] when trace is set. */
void molmo_moe_forward(molmo_moe *moe, molmo_pool *pool, const molmo_llm_layer *L,
                       const float *in, int n, float *out, int layer, molmo_trace_fn trace,
                       void *trace_user);

#endif

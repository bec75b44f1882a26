/* decoder.h — the language model: one decoder for Qwen2 (7B-D, 72B), OLMo with norm-after and
 * QK-norm (7B-O) and OLMoE's mixture of experts (MolmoE-1B), driven by the config's flags
 * (fact sheet §2.2–2.6), with its KV cache.
 *
 * A molmo_decoder holds the KV cache (allocated once at n_ctx positions, as lazily committed
 * memory: pages become resident only as positions fill) and a workspace for n_batch tokens;
 * longer prompts run in chunks of n_batch. One thread drives it at a time. */
#ifndef MOLMO_MODEL_DECODER_H
#define MOLMO_MODEL_DECODER_H

#include "base/threadpool.h"
#include "model/model.h"

typedef struct molmo_decoder molmo_decoder;

/* n_ctx <= 0: the model's max_position_embeddings. n_batch <= 0: 1024. n_threads: the size of
 * the pool that will run forward (molmo_pool_size), which sizes the attention scratch.
 * kv_type: MOLMO_DTYPE_F32 (the reference's values) or MOLMO_DTYPE_F16 (keys and values rounded
 * to half as they enter the cache); anything else is MOLMO_ERR_INVALID_ARG. */
molmo_status molmo_decoder_create(const molmo_model *m, int n_ctx, int n_batch, int n_threads,
                                  molmo_dtype kv_type, molmo_decoder **out, molmo_error *err);
void molmo_decoder_free(molmo_decoder *d);

int molmo_decoder_n_ctx(const molmo_decoder *d);
/* bf16 activations (molmo_context_params.bf16_activations): the inputs of the matmuls with
 * BF16 weights are rounded to bf16 first (the MoE router stays f32), and q, k, v after RoPE
 * (so the KV cache holds bf16 values) with attention's softmax weights rounded too. */
void molmo_decoder_set_bf16_activations(molmo_decoder *d, int on);
/* Positions already in the KV cache. */
int molmo_decoder_n_past(const molmo_decoder *d);
/* Forgets every position from n_keep on (0 <= n_keep <= n_past). */
void molmo_decoder_truncate(molmo_decoder *d, int n_keep);

/* out[n, d_model] = embedding rows of ids (wte.embedding ++ wte.new_embedding). An id outside
 * [0, embedding_size + n_new_embeddings) is MOLMO_ERR_INVALID_ARG naming it. */
molmo_status molmo_decoder_embed(const molmo_model *m, const int *ids, int n, float *out,
                                 molmo_error *err);

/*
 * Runs n input embeddings [n, d_model] at positions n_past .. n_past+n-1, appends their keys and
 * values to the cache and writes the logits of the LAST position to logits [embedding_size]
 * (may be NULL). MOLMO_ERR_TOO_LARGE when the positions do not fit n_ctx (nothing is changed).
 * Trace names (see molmo.h): "llm.block{i}.last" [1, d] residual after block i at the last
 * position (traced for the last chunk only), "llm.hidden" [1, d] after ln_f, "llm.logits"
 * [1, E]; MoE layers also "llm.block{i}.topk_ids" / "llm.block{i}.topk_weights" [chunk, k] per
 * chunk of n_batch tokens (ids as exact floats).
 */
molmo_status molmo_decoder_forward(molmo_decoder *d, molmo_pool *pool, const float *embeds, int n,
                                   float *logits, molmo_trace_fn trace, void *trace_user,
                                   molmo_error *err);

#endif

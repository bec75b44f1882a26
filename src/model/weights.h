/* weights.h — every tensor of a Molmo checkpoint, bound by role to its stored bytes.
 *
 * Both naming schemes (HF `model.transformer.blocks.{i}.att_proj.weight` of 7B-D/7B-O/72B and
 * MolmoE's `...blocks.{i}.attn.att_proj.weight`, `...mlp.experts.{e}.gate_proj.weight`,
 * top-level `lm_head.weight`) map into this one structure. Tensors stay in their stored dtype
 * and point into the mapped files. Shapes in comments are PyTorch order. */
#ifndef MOLMO_MODEL_WEIGHTS_H
#define MOLMO_MODEL_WEIGHTS_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/config.h"

/* A read-only view of one stored tensor; data == NULL for an absent optional tensor.
 * Vectors (norm weights, biases) and the small embedding tables (class, positional, pad) are
 * always F32 after binding (converted once at load when stored otherwise). */
typedef struct molmo_tensor {
    const void *data;
    molmo_dtype dtype;
    int n_dims;
    int64_t shape[4];
    const char *name; /* points into the safetensors table */
} molmo_tensor;

typedef struct molmo_expert {
    molmo_tensor gate, up; /* [d_ff, d_model] */
    molmo_tensor down;     /* [d_model, d_ff] */
} molmo_expert;

typedef struct molmo_llm_layer {
    molmo_tensor attn_norm;     /* [d] */
    molmo_tensor att_proj;      /* [d + 2*kv*hd, d]: rows q, k, v */
    molmo_tensor att_proj_bias; /* [d + 2*kv*hd] (qkv_bias only) */
    molmo_tensor q_norm;        /* [d] (qk_norm only) */
    molmo_tensor k_norm;        /* [kv*hd] (qk_norm only) */
    molmo_tensor attn_out;      /* [d, d] */
    molmo_tensor ff_norm;       /* [d] */
    molmo_tensor ff_proj;       /* [2*d_ff, d]: rows 0..d_ff-1 up, d_ff..2*d_ff-1 gate (dense) */
    molmo_tensor ff_out;        /* [d, d_ff] (dense) */
    molmo_tensor router;        /* [n_experts, d] (MoE) */
    molmo_expert *experts;      /* [n_experts] (MoE) */
} molmo_llm_layer;

typedef struct molmo_vit_layer {
    molmo_tensor ln1_w, ln1_b;  /* attention_norm [W] */
    molmo_tensor wq, bq, wk, bk, wv, bv, wo, bo; /* [W, W], [W] */
    molmo_tensor ln2_w, ln2_b;  /* ffn_norm [W] */
    molmo_tensor w1, b1;        /* [F, W], [F] */
    molmo_tensor w2, b2;        /* [W, F], [W] */
} molmo_vit_layer;

typedef struct molmo_weights {
    /* language model */
    molmo_tensor wte;           /* [embedding_size, d] */
    molmo_tensor wte_new;       /* [n_new_embeddings, d] */
    molmo_tensor ln_f;          /* [d] */
    molmo_tensor lm_head;       /* [embedding_size, d] */
    molmo_llm_layer *layers;    /* [n_layers] */

    /* vision tower */
    molmo_tensor class_emb;     /* [W] */
    molmo_tensor pos_emb;       /* [n_pos, W] */
    molmo_tensor patch_emb;     /* [W, patch*patch*3] */
    molmo_tensor pre_ln_w, pre_ln_b; /* [W] */
    molmo_vit_layer *vit;       /* [vit_n_layers] */

    /* connector */
    molmo_tensor pad_embed;     /* [2, 2W] */
    molmo_tensor pool_wq, pool_bq, pool_wk, pool_bk, pool_wv, pool_bv; /* [W, 2W], [W] */
    molmo_tensor pool_wo, pool_bo;  /* [W, W], [W] */
    molmo_tensor proj_w1, proj_w3;  /* [H, W] */
    molmo_tensor proj_w2;           /* [d, H] */

    /* parameter counts (elements) by part */
    uint64_t n_params_vision, n_params_connector, n_params_llm;
    int n_unused;               /* tensors in the files that no role uses */
    float *f32_store;           /* owned f32 copies of small tensors stored as bf16/f16 */
} molmo_weights;

/* Binds every tensor the configuration needs, checking presence and exact shape. Errors name
 * the tensor and, for a wrong shape, both shapes. On failure the struct is freed. */
molmo_status molmo_weights_bind(molmo_weights *w, const molmo_config *cfg,
                                const molmo_safetensors *st, molmo_error *err);
/* Lists every tensor the configuration needs, in binding order (used to generate checkpoints of
 * the real shapes for benchmarks and tests, and by converters). */
typedef void (*molmo_weights_visit_fn)(void *user, const char *name, int n_dims,
                                       const int64_t *shape);
molmo_status molmo_weights_enumerate(const molmo_config *cfg, molmo_weights_visit_fn visit,
                                     void *user, molmo_error *err);

/* Calls fn for every tensor used only as the weights of matmuls (the projections of the LLM,
 * the ViT and the connector, the experts, the head; not the embeddings, which are read by
 * rows, nor the patch embedding or the router): those a loader may lay out for the kernels
 * (model/repack.c). Each tensor once, absent ones not at all. */
typedef void (*molmo_weights_matrix_fn)(void *user, molmo_tensor *t);
void molmo_weights_each_matrix(molmo_weights *w, const molmo_config *cfg,
                               molmo_weights_matrix_fn fn, void *user);

void molmo_weights_free(molmo_weights *w, const molmo_config *cfg);

#endif

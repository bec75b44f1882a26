/* config.h — one normalised model configuration, read from either config.json style.
 *
 * The HF style (Molmo-7B-D / 7B-O / 72B: hidden_size, num_attention_heads, ...) has no vision
 * settings, so the CLIP ViT-L/14-336 constants of the fact sheet §3 are used; the OLMo style
 * (MolmoE-1B: d_model, n_heads, block_type, vision_backbone, ...) carries everything. */
#ifndef MOLMO_MODEL_CONFIG_H
#define MOLMO_MODEL_CONFIG_H

#include "molmo.h"

typedef struct molmo_config {
    molmo_family family;
    int olmo_style;          /* 1: OLMo-style keys (MolmoE-1B), 0: HF style */

    /* language model */
    int d_model, n_layers, n_heads, n_kv_heads, head_dim;
    int d_ff;                /* SwiGLU hidden (per expert for MoE) = fused rows / 2 */
    int n_experts, top_k;    /* 0/0 for dense */
    int vocab_size, embedding_size, n_new_embeddings;
    int max_position_embeddings;
    float rope_theta, norm_eps;
    int qkv_bias, qk_norm, norm_after;

    /* vision tower (CLIP ViT) */
    int vit_d_model, vit_n_layers, vit_n_heads, vit_head_dim, vit_d_ff, vit_n_pos;
    int patch_size, image_size;
    float vit_norm_eps;
    int vit_layers[2];       /* 0-based block indices whose outputs are concatenated, in order */

    /* connector */
    int pool_h, pool_w;
    int projector_hidden;    /* SwiGLU projector hidden = the LLM's MLP hidden */
} molmo_config;

/* Parses config.json at `path` into *cfg, validating every value (ranges, divisibility,
 * supported modes). Errors name the file and the key. */
molmo_status molmo_config_load(const char *path, molmo_config *cfg, molmo_error *err);

/* Same from an in-memory JSON text (used by the fuzzer and tests); `name` labels errors. */
molmo_status molmo_config_parse(const char *json, size_t len, const char *name, molmo_config *cfg,
                                molmo_error *err);

#endif

/* config.c — reads both config.json styles of the Molmo 0924 checkpoints into molmo_config.
 *
 * HF style: keys of config_molmo.py (hidden_size, num_attention_heads, intermediate_size = fused
 * up+gate rows, ...); vision settings hard-coded in modeling_molmo.py, so fact sheet §3's CLIP
 * ViT-L/14-336 constants apply unless a `vision_backbone` object is present.
 * OLMo style: MolmoE-1B's training config (d_model, n_heads, mlp_ratio, block_type "moe", ...).
 * Every value is range-checked: a config is input like any other file. */
#include "model/config.h"

#include <jansson.h>
#include <string.h>

#include "base/error.h"
#include "io/jsonutil.h"

/* Upper bounds well above the largest released model (72B: d 8192, 80 layers, 64 heads). */
#define MAX_WIDTH 65536
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_POS (1 << 22)

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        molmo_status s_ = (expr);                                                                  \
        if (s_ != MOLMO_OK) return s_;                                                             \
    } while (0)

static molmo_status get_int(json_t *o, const char *key, long long lo, long long hi, int required,
                            long long def, int *out, const char *ctx, molmo_error *err) {
    long long v;
    TRY(molmo_json_int(o, key, lo, hi, required, def, &v, ctx, err));
    *out = (int)v;
    return MOLMO_OK;
}

static molmo_status get_float(json_t *o, const char *key, double lo, double hi, int required,
                              double def, float *out, const char *ctx, molmo_error *err) {
    double v;
    TRY(molmo_json_real(o, key, lo, hi, required, def, &v, ctx, err));
    *out = (float)v;
    return MOLMO_OK;
}

/* A string option that must equal `want` when present (modes this engine implements). */
static molmo_status expect_str(json_t *o, const char *key, const char *want, const char *ctx,
                               molmo_error *err) {
    const char *v;
    TRY(molmo_json_str(o, key, &v, ctx, err));
    if (v && strcmp(v, want) != 0)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"%s\" = \"%.60s\" is not supported "
                         "(only \"%s\")", ctx, key, v, want);
    return MOLMO_OK;
}

static molmo_status parse_hf_style(json_t *o, molmo_config *c, const char *ctx, molmo_error *err) {
    TRY(get_int(o, "hidden_size", 1, MAX_WIDTH, 1, 0, &c->d_model, ctx, err));
    TRY(get_int(o, "num_hidden_layers", 1, MAX_LAYERS, 1, 0, &c->n_layers, ctx, err));
    TRY(get_int(o, "num_attention_heads", 1, MAX_HEADS, 1, 0, &c->n_heads, ctx, err));
    TRY(get_int(o, "num_key_value_heads", 1, MAX_HEADS, 0, c->n_heads, &c->n_kv_heads, ctx, err));
    int fused;
    TRY(get_int(o, "intermediate_size", 2, 1 << 22, 1, 0, &fused, ctx, err));
    if (fused % 2)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"intermediate_size\" = %d is not even "
                         "(it holds the fused up+gate rows)", ctx, fused);
    c->d_ff = fused / 2;
    TRY(molmo_json_bool(o, "qkv_bias", 0, 0, &c->qkv_bias, ctx, err));
    TRY(molmo_json_bool(o, "norm_after", 0, 0, &c->norm_after, ctx, err));
    TRY(molmo_json_bool(o, "attention_layer_norm", 0, 0, &c->qk_norm, ctx, err));
    c->n_new_embeddings = 128; /* hard-coded additional_vocab_size in modeling_molmo.py */
    return MOLMO_OK;
}

static molmo_status parse_olmo_style(json_t *o, molmo_config *c, const char *ctx,
                                     molmo_error *err) {
    TRY(get_int(o, "d_model", 1, MAX_WIDTH, 1, 0, &c->d_model, ctx, err));
    TRY(get_int(o, "n_layers", 1, MAX_LAYERS, 1, 0, &c->n_layers, ctx, err));
    TRY(get_int(o, "n_heads", 1, MAX_HEADS, 1, 0, &c->n_heads, ctx, err));
    TRY(get_int(o, "n_kv_heads", 1, MAX_HEADS, 0, c->n_heads, &c->n_kv_heads, ctx, err));
    int ratio, fused;
    TRY(get_int(o, "mlp_ratio", 1, 64, 0, 4, &ratio, ctx, err));
    TRY(get_int(o, "mlp_hidden_size", 2, 1 << 22, 0, (long long)ratio * c->d_model, &fused, ctx,
                err));
    if (fused % 2)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: fused MLP hidden %d is not even", ctx, fused);
    c->d_ff = fused / 2;
    TRY(molmo_json_bool(o, "qkv_bias", 0, 0, &c->qkv_bias, ctx, err));
    TRY(molmo_json_bool(o, "norm_after", 0, 0, &c->norm_after, ctx, err));
    TRY(molmo_json_bool(o, "attention_layer_norm", 0, 0, &c->qk_norm, ctx, err));
    TRY(get_int(o, "additional_vocab_size", 0, 1 << 16, 0, 128, &c->n_new_embeddings, ctx, err));
    const char *block;
    TRY(molmo_json_str(o, "block_type", &block, ctx, err));
    if (block && !strcmp(block, "moe")) {
        TRY(get_int(o, "moe_num_experts", 1, 1024, 1, 0, &c->n_experts, ctx, err));
        TRY(get_int(o, "moe_top_k", 1, c->n_experts, 1, 0, &c->top_k, ctx, err));
        int shared;
        TRY(molmo_json_bool(o, "moe_shared_expert", 0, 0, &shared, ctx, err));
        if (shared)
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"moe_shared_expert\" is not "
                             "supported", ctx);
    } else if (block && strcmp(block, "sequential") != 0) {
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"block_type\" = \"%.40s\" is not "
                         "supported (sequential or moe)", ctx, block);
    }
    TRY(expect_str(o, "activation_type", "swiglu", ctx, err));
    TRY(expect_str(o, "rope_impl", "llama", ctx, err));
    TRY(expect_str(o, "image_pooling_2d", "attention-meanq", ctx, err));
    TRY(expect_str(o, "image_padding_embed", "pad_and_partial_pad", ctx, err));
    TRY(expect_str(o, "image_projector", "mlp", ctx, err));
    TRY(get_int(o, "image_pooling_h", 1, 16, 0, 2, &c->pool_h, ctx, err));
    TRY(get_int(o, "image_pooling_w", 1, 16, 0, 2, &c->pool_w, ctx, err));
    return MOLMO_OK;
}

/* vision_backbone (OLMo style, and the fixtures' HF-style configs) or the CLIP constants. */
static molmo_status parse_vision(json_t *root, molmo_config *c, const char *ctx,
                                 molmo_error *err) {
    json_t *v = json_object_get(root, "vision_backbone");
    if (v && !json_is_null(v) && !json_is_object(v))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"vision_backbone\" is not an object", ctx);
    if (!json_is_object(v)) v = NULL;
    char vctx[300];
    snprintf(vctx, sizeof vctx, "%s: vision_backbone", ctx);
    json_t *empty = json_object();
    if (!empty) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", ctx);
    json_t *o = v ? v : empty;
    molmo_status s;
#define VTRY(expr)                                                                                 \
    if ((s = (expr)) != MOLMO_OK) goto done
    VTRY(get_int(o, "image_emb_dim", 1, MAX_WIDTH, 0, 1024, &c->vit_d_model, vctx, err));
    VTRY(get_int(o, "image_num_layers", 1, MAX_LAYERS, 0, 23, &c->vit_n_layers, vctx, err));
    VTRY(get_int(o, "image_num_heads", 1, MAX_HEADS, 0, 16, &c->vit_n_heads, vctx, err));
    VTRY(get_int(o, "image_head_dim", 1, MAX_WIDTH, 0, 64, &c->vit_head_dim, vctx, err));
    VTRY(get_int(o, "image_mlp_dim", 1, 1 << 20, 0, 4096, &c->vit_d_ff, vctx, err));
    VTRY(get_int(o, "image_num_pos", 2, 1 << 20, 0, 577, &c->vit_n_pos, vctx, err));
    VTRY(get_int(o, "image_patch_size", 1, 1024, 0, 14, &c->patch_size, vctx, err));
    VTRY(get_float(o, "image_norm_eps", 0, 1, 0, 1e-5, &c->vit_norm_eps, vctx, err));
    VTRY(expect_str(o, "image_mlp_activations", "quick_gelu", vctx, err));
    json_t *sz = json_object_get(o, "image_default_input_size");
    c->image_size = 336;
    if (sz && !json_is_null(sz)) {
        json_t *h = json_array_get(sz, 0), *w = json_array_get(sz, 1);
        if (!json_is_integer(h) || !json_is_integer(w) || json_integer_value(h) !=
            json_integer_value(w) || json_integer_value(h) < 1 || json_integer_value(h) > 8192) {
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"image_default_input_size\" must be "
                          "[n, n] with 1 <= n <= 8192", vctx);
            goto done;
        }
        c->image_size = (int)json_integer_value(h);
    }
#undef VTRY
    s = MOLMO_OK;
done:
    json_decref(empty);
    return s;
}

/* vit_layers (default [-2, -9]) -> 0-based block indices. */
static molmo_status parse_vit_layers(json_t *root, molmo_config *c, const char *ctx,
                                     molmo_error *err) {
    long long idx[2] = {-2, -9};
    json_t *a = json_object_get(root, "vit_layers");
    if (a && !json_is_null(a)) {
        if (!json_is_array(a) || json_array_size(a) != 2)
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"vit_layers\" must list exactly "
                             "two layers", ctx);
        for (int i = 0; i < 2; i++) {
            json_t *x = json_array_get(a, (size_t)i);
            if (!json_is_integer(x))
                return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"vit_layers\"[%d] is not an integer",
                                 ctx, i);
            idx[i] = json_integer_value(x);
        }
    }
    for (int i = 0; i < 2; i++) {
        long long b = idx[i] < 0 ? c->vit_n_layers + idx[i] : idx[i];
        if (b < 0 || b >= c->vit_n_layers)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"vit_layers\"[%d] = %lld is outside a "
                             "%d-block ViT", ctx, i, idx[i], c->vit_n_layers);
        c->vit_layers[i] = (int)b;
    }
    return MOLMO_OK;
}

/* Relations between values that the ranges alone do not catch. */
static molmo_status check_consistency(molmo_config *c, const char *ctx, molmo_error *err) {
    if (c->d_model % c->n_heads)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: %d heads do not divide the width %d", ctx,
                         c->n_heads, c->d_model);
    c->head_dim = c->d_model / c->n_heads;
    if (c->head_dim % 2)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: head dim %d is odd (RoPE rotates halves)",
                         ctx, c->head_dim);
    if (c->n_heads % c->n_kv_heads)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: %d KV heads do not divide %d heads", ctx,
                         c->n_kv_heads, c->n_heads);
    if (c->vocab_size > c->embedding_size)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: vocab_size %d exceeds embedding_size %d", ctx,
                         c->vocab_size, c->embedding_size);
    if (c->vit_n_heads * c->vit_head_dim != c->vit_d_model)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: vision %d heads x %d != width %d", ctx,
                         c->vit_n_heads, c->vit_head_dim, c->vit_d_model);
    int grid = c->image_size / c->patch_size;
    if (c->image_size % c->patch_size || grid * grid + 1 != c->vit_n_pos)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: vision input %d / patch %d does not give "
                         "%d positions", ctx, c->image_size, c->patch_size, c->vit_n_pos - 1);
    if (grid % c->pool_h || grid % c->pool_w)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: pooling %dx%d does not tile the %dx%d patch "
                         "grid", ctx, c->pool_h, c->pool_w, grid, grid);
    return MOLMO_OK;
}

static molmo_status parse_common(json_t *root, molmo_config *c, const char *ctx,
                                 molmo_error *err) {
    TRY(get_int(root, "vocab_size", 1, MAX_VOCAB, 1, 0, &c->vocab_size, ctx, err));
    TRY(get_int(root, "embedding_size", 1, MAX_VOCAB, 0, c->vocab_size, &c->embedding_size, ctx,
                err));
    TRY(get_int(root, "max_position_embeddings", 1, MAX_POS, 0, 4096,
                &c->max_position_embeddings, ctx, err));
    TRY(get_float(root, "rope_theta", 1.0, 1e12, 0, 10000.0, &c->rope_theta, ctx, err));
    TRY(get_float(root, "layer_norm_eps", 1e-12, 1.0, 0, 1e-5, &c->norm_eps, ctx, err));
    TRY(expect_str(root, "layer_norm_type", "rms", ctx, err));
    int tied;
    TRY(molmo_json_bool(root, "weight_tying", 0, 0, &tied, ctx, err));
    if (tied)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"weight_tying\": true is not "
                         "supported (all Molmo 0924 models have an untied head)", ctx);
    json_t *clip = json_object_get(root, "clip_qkv");
    if (clip && !json_is_null(clip))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"clip_qkv\" is not supported", ctx);
    return MOLMO_OK;
}

static molmo_family derive_family(const molmo_config *c) {
    if (c->n_experts > 0) return MOLMO_FAMILY_MOLMOE;
    if (c->norm_after || c->qk_norm) return MOLMO_FAMILY_OLMO;
    return MOLMO_FAMILY_QWEN2;
}

static molmo_status parse_root(json_t *root, const char *ctx, molmo_config *c, molmo_error *err) {
    memset(c, 0, sizeof *c);
    c->pool_h = c->pool_w = 2;
    c->olmo_style = json_object_get(root, "d_model") != NULL;
    if (!c->olmo_style && !json_object_get(root, "hidden_size"))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: neither \"hidden_size\" (HF style) nor "
                         "\"d_model\" (OLMo style): not a Molmo config", ctx);
    TRY(c->olmo_style ? parse_olmo_style(root, c, ctx, err) : parse_hf_style(root, c, ctx, err));
    TRY(parse_common(root, c, ctx, err));
    TRY(parse_vision(root, c, ctx, err));
    TRY(parse_vit_layers(root, c, ctx, err));
    TRY(check_consistency(c, ctx, err));
    c->projector_hidden = c->d_ff;
    c->family = derive_family(c);
    return MOLMO_OK;
}

molmo_status molmo_config_parse(const char *json, size_t len, const char *name, molmo_config *cfg,
                                molmo_error *err) {
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", name, je.line,
                         je.column, je.text);
    molmo_status s = json_is_object(root)
                         ? parse_root(root, name, cfg, err)
                         : molmo_err(err, MOLMO_ERR_FORMAT, "%s: not a JSON object", name);
    json_decref(root);
    return s;
}

molmo_status molmo_config_load(const char *path, molmo_config *cfg, molmo_error *err) {
    json_t *root;
    TRY(molmo_json_load_file(path, 1u << 20, &root, err));
    molmo_status s = parse_root(root, path, cfg, err);
    json_decref(root);
    return s;
}

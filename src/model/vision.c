/* vision.c — CLIP ViT + Molmo connector for one crop (fact sheet §3, §4; HF modeling_molmo.py
 * VisionTransformer, OLMoPretrainedVisionBackbone.forward).
 *
 * Per crop: patch embedding (no bias) → prepend class token → + positional embedding → pre-LN →
 * ViT blocks (x += attn(LN1 x); x += MLP(LN2 x), QuickGELU) → concat(block a, block b) without
 * CLS → + pad embeddings chosen by the patch mask → 2x2 attention pooling with the window mean
 * as query → SwiGLU projector w2(silu(w1 z) * w3 z). Blocks after the deeper of the two feature
 * layers are never run: their output is unused (block 22 of 23 in the released models). */
#include "model/vision.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/error.h"
#include "kernels/ops.h"

struct molmo_vision {
    const molmo_model *m;
    int n_tok, n_patch, grid, W, F, n_heads, hd, patch_dim;
    int pool_grid, n_pooled, H, d;
    int last_block; /* deepest block whose output is needed */
    int bf16x;      /* bf16 activations (molmo_vision_set_bf16_activations) */
    /* workspace, one block: */
    float *x;      /* [n_tok, W] residual stream */
    float *h;      /* [n_tok, W] normed input */
    float *qkv;    /* [3, n_tok, W] */
    float *att;    /* [n_tok, W] attention output */
    float *mlp;    /* [n_tok, F] */
    float *feat;   /* [n_patch, 2W] */
    float *keys;   /* [n_patch, 2W] features in window order */
    float *pq;     /* [n_pooled, 2W] window means */
    float *pooled; /* [n_pooled, W] */
    float *proj;   /* [2, n_pooled, H] */
    float *scratch;
    size_t scratch_n;
    molmo_arena ws; /* holds every buffer above */
};

static const float *f32(const molmo_tensor *t) { return t->data; }

void molmo_vision_set_bf16_activations(molmo_vision *v, int on) { v->bf16x = on != 0; }

/* y[M, N] = x[M, K] · wᵀ (+ b). x is a temporary that nothing reads afterwards unrounded, so
 * bf16 activations may round it in place (molmo_op_matmul_act). */
static void mm(molmo_vision *v, molmo_pool *pool, float *y, int ldy, float *x, int ldx,
               const molmo_tensor *w, const float *b, int M, int N, int K) {
    molmo_op_matmul_act(pool, v->bf16x, y, ldy, x, ldx, w->data, w->dtype, b, M, N, K);
}

molmo_status molmo_vision_create(const molmo_model *m, int n_threads, molmo_vision **out,
                                 molmo_error *err) {
    const molmo_config *c = &m->cfg;
    molmo_vision *v = molmo_calloc(1, sizeof *v);
    if (!v) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    v->m = m;
    v->grid = c->image_size / c->patch_size;
    v->n_patch = v->grid * v->grid;
    v->n_tok = v->n_patch + 1;
    v->W = c->vit_d_model;
    v->F = c->vit_d_ff;
    v->n_heads = c->vit_n_heads;
    v->hd = c->vit_head_dim;
    v->patch_dim = c->patch_size * c->patch_size * 3;
    v->pool_grid = v->grid / c->pool_h;
    v->n_pooled = (v->grid / c->pool_h) * (v->grid / c->pool_w);
    v->H = c->projector_hidden;
    v->d = c->d_model;
    v->last_block = c->vit_layers[0] > c->vit_layers[1] ? c->vit_layers[0] : c->vit_layers[1];
    v->scratch_n = molmo_op_attention_scratch(v->n_tok, n_threads > 0 ? n_threads : 1);
    size_t T = (size_t)v->n_tok, W = (size_t)v->W, P = (size_t)v->n_patch, Q = (size_t)v->n_pooled;
    size_t counts[] = {T * W, T * W, 3 * T * W, T * W, T * (size_t)v->F, P * 2 * W, P * 2 * W,
                       Q * 2 * W, Q * W, 2 * Q * (size_t)v->H, v->scratch_n};
    float **slots[] = {&v->x, &v->h, &v->qkv, &v->att, &v->mlp, &v->feat, &v->keys,
                       &v->pq, &v->pooled, &v->proj, &v->scratch};
    if (molmo_arena_carve_f32(&v->ws, counts, slots, (int)(sizeof slots / sizeof slots[0])) != 0) {
        molmo_free(v);
        return molmo_err(err, MOLMO_ERR_NOMEM, "vision workspace: out of memory");
    }
    *out = v;
    return MOLMO_OK;
}

void molmo_vision_free(molmo_vision *v) {
    if (!v) return;
    molmo_arena_release(&v->ws);
    molmo_free(v);
}

static void trace2(molmo_trace_fn fn, void *user, const float *data, int64_t rows, int64_t cols,
                   const char *fmt, int a, int b) {
    if (!fn) return;
    char name[96];
    snprintf(name, sizeof name, fmt, a, b);
    int64_t shape[2] = {rows, cols};
    fn(user, name, data, 2, shape);
}

/* x = [class; patches · patch_embᵀ] + positional embedding, then pre-LN (in place). */
static void embed(molmo_vision *v, molmo_pool *pool, const float *patches) {
    const molmo_weights *w = &v->m->w;
    int W = v->W;
    molmo_op_matmul(pool, v->x + W, W, patches, v->patch_dim, w->patch_emb.data,
                    w->patch_emb.dtype, NULL, v->n_patch, W, v->patch_dim);
    memcpy(v->x, f32(&w->class_emb), (size_t)W * sizeof(float));
    molmo_op_add(pool, v->x, f32(&w->pos_emb), (size_t)v->n_tok * (size_t)W);
    molmo_op_layernorm(pool, v->x, v->x, f32(&w->pre_ln_w), f32(&w->pre_ln_b), v->n_tok, W,
                       v->m->cfg.vit_norm_eps);
}

static void vit_block(molmo_vision *v, molmo_pool *pool, const molmo_vit_layer *L) {
    int T = v->n_tok, W = v->W;
    float eps = v->m->cfg.vit_norm_eps;
    float *q = v->qkv, *k = v->qkv + (size_t)T * W, *vv = v->qkv + 2 * (size_t)T * W;
    molmo_op_layernorm(pool, v->h, v->x, f32(&L->ln1_w), f32(&L->ln1_b), T, W, eps);
    /* q, k, v: one dtype */
    const int r = molmo_op_bf16_input(pool, v->bf16x, L->wq.dtype, v->h, T, (size_t)W, (size_t)W);
    const molmo_matmul_job qkv[3] = {
        {q, W, v->h, W, L->wq.data, L->wq.dtype, f32(&L->bq), T, W, W, r},
        {k, W, v->h, W, L->wk.data, L->wk.dtype, f32(&L->bk), T, W, W, r},
        {vv, W, v->h, W, L->wv.data, L->wv.dtype, f32(&L->bv), T, W, W, r}};
    molmo_op_matmul_many(pool, qkv, 3); /* one run: three products share the pool's wake-up */
    if (v->bf16x) { /* bf16 activations: the attention's inputs too, whatever the weights */
        molmo_op_round_bf16(pool, v->qkv, 3 * T, (size_t)W, (size_t)W);
        molmo_op_attention_bf16(pool, v->att, W, q, W, k, W, vv, W, T, T, v->n_heads, v->hd,
                                1.0f / sqrtf((float)v->hd), v->scratch);
    } else {
        molmo_op_attention(pool, v->att, W, q, W, k, W, vv, W, T, T, v->n_heads, v->n_heads,
                           v->hd, 1.0f / sqrtf((float)v->hd), 0, 0, v->scratch);
    }
    mm(v, pool, v->h, W, v->att, W, &L->wo, f32(&L->bo), T, W, W);
    molmo_op_add(pool, v->x, v->h, (size_t)T * W);
    molmo_op_layernorm(pool, v->h, v->x, f32(&L->ln2_w), f32(&L->ln2_b), T, W, eps);
    mm(v, pool, v->mlp, v->F, v->h, W, &L->w1, f32(&L->b1), T, v->F, W);
    molmo_op_quick_gelu(pool, v->mlp, (size_t)T * v->F);
    mm(v, pool, v->h, W, v->mlp, v->F, &L->w2, f32(&L->b2), T, W, v->F);
    molmo_op_add(pool, v->x, v->h, (size_t)T * W);
}

/* Copies block output rows 1.. (CLS dropped) into feature columns [col, col + W). */
static void keep_features(molmo_vision *v, int col) {
    for (int p = 0; p < v->n_patch; p++)
        memcpy(v->feat + (size_t)p * 2 * v->W + col, v->x + (size_t)(p + 1) * v->W,
               (size_t)v->W * sizeof(float));
}

/* pad_and_partial_pad: mask 0 → + pad_embed[0]; mask < 1 and != 0 (−1 included) → + pad[1]. */
static void add_pad_embeds(molmo_vision *v, const float *mask) {
    const float *pad = f32(&v->m->w.pad_embed);
    size_t D = 2 * (size_t)v->W;
    for (int p = 0; p < v->n_patch; p++) {
        if (mask[p] == 0.0f)
            molmo_op_add(NULL, v->feat + p * D, pad, D);
        else if (mask[p] < 1.0f)
            molmo_op_add(NULL, v->feat + p * D, pad + D, D);
    }
}

/* Gathers each 2x2 window's patches (key order (2r,2c), (2r,2c+1), (2r+1,2c), (2r+1,2c+1)) into
 * `keys` and their mean (the query input) into `pq`. */
static void gather_windows(molmo_vision *v) {
    size_t D = 2 * (size_t)v->W;
    int G = v->grid, PG = v->pool_grid;
    for (int r = 0; r < PG; r++)
        for (int c = 0; c < PG; c++) {
            int win = r * PG + c;
            int src[4] = {2 * r * G + 2 * c, 2 * r * G + 2 * c + 1, (2 * r + 1) * G + 2 * c,
                          (2 * r + 1) * G + 2 * c + 1};
            float *mean = v->pq + win * D;
            for (int j = 0; j < 4; j++)
                memcpy(v->keys + (size_t)(4 * win + j) * D, v->feat + (size_t)src[j] * D,
                       D * sizeof(float));
            for (size_t e = 0; e < D; e++) {
                const float *kk = v->keys + (size_t)4 * win * D + e;
                mean[e] = (((kk[0] + kk[D]) + kk[2 * D]) + kk[3 * D]) / 4.0f;
            }
        }
}

/* Mean-query attention over each window's 4 keys, per head; result [n_pooled, W] in v->att. */
static void pool_attention(molmo_vision *v, const float *Q, const float *K, const float *V) {
    int W = v->W, hd = v->hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int win = 0; win < v->n_pooled; win++)
        for (int h = 0; h < v->n_heads; h++) {
            const float *q = Q + (size_t)win * W + h * hd;
            float s[4], mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < 4; j++) {
                const float *k = K + (size_t)(4 * win + j) * W + h * hd;
                float dot = 0.0f;
                for (int e = 0; e < hd; e++) dot += q[e] * k[e];
                s[j] = dot * scale;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < 4; j++) sum += (s[j] = expf(s[j] - mx));
            float *o = v->att + (size_t)win * W + h * hd;
            for (int e = 0; e < hd; e++) o[e] = 0.0f;
            for (int j = 0; j < 4; j++) {
                const float *vv = V + (size_t)(4 * win + j) * W + h * hd;
                float p = s[j] / sum;
                for (int e = 0; e < hd; e++) o[e] += p * vv[e];
            }
        }
}

static void connector(molmo_vision *v, molmo_pool *pool, const float *mask, float *out) {
    const molmo_weights *w = &v->m->w;
    int W = v->W, Wi = 2 * v->W, Q = v->n_pooled, P = v->n_patch, H = v->H;
    add_pad_embeds(v, mask);
    gather_windows(v);
    float *q = v->qkv, *k = v->qkv + (size_t)Q * W, *vv = k + (size_t)P * W;
    mm(v, pool, q, W, v->pq, Wi, &w->pool_wq, f32(&w->pool_bq), Q, W, Wi);
    mm(v, pool, k, W, v->keys, Wi, &w->pool_wk, f32(&w->pool_bk), P, W, Wi);
    mm(v, pool, vv, W, v->keys, Wi, &w->pool_wv, f32(&w->pool_bv), P, W, Wi);
    pool_attention(v, q, k, vv);
    mm(v, pool, v->pooled, W, v->att, W, &w->pool_wo, f32(&w->pool_bo), Q, W, W);
    float *a = v->proj, *b = v->proj + (size_t)Q * H;
    mm(v, pool, a, H, v->pooled, W, &w->proj_w1, NULL, Q, H, W);
    mm(v, pool, b, H, v->pooled, W, &w->proj_w3, NULL, Q, H, W);
    molmo_op_silu_mul(pool, a, a, b, (size_t)Q * H);
    mm(v, pool, out, v->d, a, H, &w->proj_w2, NULL, Q, v->d, H);
}

void molmo_vision_encode_crop(molmo_vision *v, molmo_pool *pool, const float *patches,
                              const float *mask, int crop, float *out, float *features_out,
                              molmo_trace_fn trace, void *tu) {
    const molmo_config *c = &v->m->cfg;
    embed(v, pool, patches);
    trace2(trace, tu, v->x, v->n_tok, v->W, "vit.crop%d.embed", crop, 0);
    for (int i = 0; i <= v->last_block; i++) {
        vit_block(v, pool, &v->m->w.vit[i]);
        trace2(trace, tu, v->x, v->n_tok, v->W, "vit.crop%d.block%d", crop, i);
        if (i == c->vit_layers[0]) keep_features(v, 0);
        if (i == c->vit_layers[1]) keep_features(v, v->W);
    }
    trace2(trace, tu, v->feat, v->n_patch, 2 * v->W, "vit.crop%d.features", crop, 0);
    if (features_out)
        memcpy(features_out, v->feat, (size_t)v->n_patch * 2 * v->W * sizeof(float));
    connector(v, pool, mask, out);
    trace2(trace, tu, v->pooled, v->n_pooled, v->W, "connector.crop%d.pooled", crop, 0);
    trace2(trace, tu, out, v->n_pooled, v->d, "connector.crop%d.projected", crop, 0);
}

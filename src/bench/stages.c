/* stages.c — what the pipeline stages cost (FLOPs and bytes counted from the config and the
 * stored types) and how long they take: vision per crop, prefill of an image prompt, decode
 * steps. Timed through the shipped paths (molmo_encode_crops, molmo_generate, the decoder's
 * forward), so the figures are those of `molmo run`; only the decode loop is the benchmark's
 * own, because it must neither sample nor stop at EOS (a fixed number of steps). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "kernels/quant.h"
#include "model/context.h"
#include "model/decoder.h"
#include "model/sample.h"

/* ---------------------------------------------------------------------------------- costs */

static uint64_t tbytes(const molmo_tensor *t) {
    if (!t->data || t->n_dims < 1) return 0;
    uint64_t rows = 1;
    for (int d = 0; d < t->n_dims - 1; d++) rows *= (uint64_t)t->shape[d];
    return rows * molmo_dtype_row_bytes(t->dtype, t->shape[t->n_dims - 1]);
}

/* Bytes of the language-model layer tensors one token reads (MoE: k experts of the layer). */
static uint64_t layer_bytes(const molmo_llm_layer *L, const molmo_config *c, int all_experts) {
    uint64_t b = tbytes(&L->attn_norm) + tbytes(&L->att_proj) + tbytes(&L->att_proj_bias) +
                 tbytes(&L->q_norm) + tbytes(&L->k_norm) + tbytes(&L->attn_out) +
                 tbytes(&L->ff_norm) + tbytes(&L->ff_proj) + tbytes(&L->ff_out) +
                 tbytes(&L->router);
    const int n = all_experts ? c->n_experts : c->top_k;
    for (int e = 0; L->experts && e < n; e++) /* experts share shapes and types */
        b += tbytes(&L->experts[e].gate) + tbytes(&L->experts[e].up) +
             tbytes(&L->experts[e].down);
    return b;
}

/* The stored type of the first layer's matrices that hold the most bytes: the experts of a MoE
 * model, the MLP of a dense one (a Q4_K_M-like file keeps attention in q6_k: it is still a
 * q4_k model). */
static molmo_dtype main_llm_type(const molmo_llm_layer *L, const molmo_config *c) {
    uint64_t bytes[MOLMO_DTYPE_COUNT] = {0};
    const molmo_tensor *dense[] = {&L->att_proj, &L->attn_out, &L->ff_proj, &L->ff_out};
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
        bytes[molmo_dtype_stored(dense[i]->dtype)] += tbytes(dense[i]);
    if (L->experts) { /* experts share shapes and types */
        const molmo_expert *e = &L->experts[0];
        bytes[molmo_dtype_stored(e->gate.dtype)] += tbytes(&e->gate) * (uint64_t)c->n_experts;
        bytes[molmo_dtype_stored(e->up.dtype)] += tbytes(&e->up) * (uint64_t)c->n_experts;
        bytes[molmo_dtype_stored(e->down.dtype)] += tbytes(&e->down) * (uint64_t)c->n_experts;
    }
    int best = (int)molmo_dtype_stored(L->att_proj.dtype);
    for (int d = 0; d < MOLMO_DTYPE_COUNT; d++)
        if (bytes[d] > bytes[best]) best = d;
    return (molmo_dtype)best;
}

static uint64_t vision_bytes(const molmo_weights *w, const molmo_config *c) {
    const molmo_tensor *top[] = {&w->class_emb, &w->pos_emb,  &w->patch_emb, &w->pre_ln_w,
                                 &w->pre_ln_b,  &w->pad_embed, &w->pool_wq,  &w->pool_bq,
                                 &w->pool_wk,   &w->pool_bk,  &w->pool_wv,   &w->pool_bv,
                                 &w->pool_wo,   &w->pool_bo,  &w->proj_w1,   &w->proj_w3,
                                 &w->proj_w2};
    uint64_t b = 0;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) b += tbytes(top[i]);
    for (int i = 0; i < c->vit_n_layers; i++) {
        const molmo_vit_layer *L = &w->vit[i];
        const molmo_tensor *t[] = {&L->ln1_w, &L->ln1_b, &L->wq, &L->bq, &L->wk, &L->bk,
                                   &L->wv,    &L->bv,    &L->wo, &L->bo, &L->ln2_w, &L->ln2_b,
                                   &L->w1,    &L->b1,    &L->w2, &L->b2};
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) b += tbytes(t[k]);
    }
    return b;
}

/* FLOPs of one crop (2 per multiply-add; the matrix products and attention, the elementwise
 * work is negligible next to them). Shapes: fact sheet §3, §4; vision.c runs the blocks up to
 * the deeper feature layer only. */
static double vision_flop(const molmo_config *c) {
    const double P = (double)(c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    const double T = P + 1, W = c->vit_d_model, F = c->vit_d_ff;
    const double Q = P / (c->pool_h * c->pool_w), H = c->projector_hidden, d = c->d_model;
    const double pd = (double)c->patch_size * c->patch_size * 3;
    const int blocks = 1 + (c->vit_layers[0] > c->vit_layers[1] ? c->vit_layers[0]
                                                                 : c->vit_layers[1]);
    const double block = 4 * 2 * T * W * W + 2 * 2 * T * W * F + 2 * 2 * T * T * W;
    const double pool = 2 * Q * 2 * W * W + 2 * 2 * P * 2 * W * W + 2 * 2 * Q * 4 * W +
                        2 * Q * W * W;
    const double proj = 2 * 2 * Q * W * H + 2 * Q * H * d;
    return 2 * P * pd * W + blocks * block + pool + proj;
}

/* Matrix FLOPs of one token through one layer (MoE: router and the top-k experts). */
static double token_layer_flop(const molmo_config *c) {
    const double D = c->d_model, K = (double)c->n_kv_heads * c->head_dim, F = c->d_ff;
    double f = 2 * D * (D + 2 * K) + 2 * D * D;
    if (c->n_experts) f += 2 * D * c->n_experts + c->top_k * 3 * 2 * D * F;
    else f += 3 * 2 * D * F;
    return f;
}

molmo_status molmo_bench_costs_get(const molmo_model *m, int n_prompt, molmo_bench_costs *out,
                                   molmo_error *err) {
    if (!m || !out || n_prompt < 1)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench costs: NULL model/result or "
                         "n_prompt < 1");
    const molmo_config *c = &m->cfg;
    const molmo_weights *w = &m->w;
    memset(out, 0, sizeof *out);
    const double n = n_prompt, D = c->d_model, L = c->n_layers;
    const double head = 2 * D * c->embedding_size;
    /* causal attention from position 0: query i scores i keys and mixes i values */
    out->prefill_flop = n * L * token_layer_flop(c) + L * 2 * n * (n + 1) * D + head;
    out->decode_flop = L * (token_layer_flop(c) + 2 * 2 * (n + 1) * D) + head;
    out->vision_flop_per_crop = vision_flop(c);
    uint64_t dec = tbytes(&w->ln_f) + tbytes(&w->lm_head), all = dec;
    if (c->embedding_size > 0) dec += tbytes(&w->wte) / (uint64_t)c->embedding_size;
    all += tbytes(&w->wte) + tbytes(&w->wte_new);
    for (int i = 0; i < c->n_layers; i++) {
        dec += layer_bytes(&w->layers[i], c, 0);
        all += layer_bytes(&w->layers[i], c, 1);
    }
    out->decode_bytes = dec;
    out->llm_bytes = all;
    out->vision_bytes = vision_bytes(w, c);
    out->vision_type = molmo_dtype_stored(w->vit[0].w1.dtype);
    out->llm_type = main_llm_type(&w->layers[0], c);
    return MOLMO_OK;
}

/* ------------------------------------------------------------------------------- timing */

static void stat_of(const double *t, int n, molmo_bench_stat *s) {
    double mean = 0, var = 0, best = INFINITY;
    for (int i = 0; i < n; i++) {
        mean += t[i] / n;
        best = t[i] < best ? t[i] : best;
    }
    for (int i = 0; i < n; i++) var += (t[i] - mean) * (t[i] - mean);
    s->mean_s = mean;
    s->sd_s = n > 1 ? sqrt(var / (n - 1)) : 0;
    s->best_s = best;
    s->reps = n;
}

static molmo_status check_reps(int reps, molmo_error *err) {
    if (reps < 1 || reps > 1000)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench: reps must be 1..1000, got %d", reps);
    return MOLMO_OK;
}

molmo_status molmo_bench_vision(molmo_context *ctx, int reps, molmo_bench_stat *per_crop,
                                molmo_error *err) {
    if (!ctx || !per_crop) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench vision: NULL");
    molmo_status s = check_reps(reps, err);
    if (s != MOLMO_OK) return s;
    const molmo_crop_geometry g = molmo_model_crop_geometry(ctx->model);
    const size_t n_img = (size_t)g.n_patches * (size_t)g.patch_dim;
    float *img = molmo_malloc(n_img * sizeof(float));
    float *mask = molmo_malloc((size_t)g.n_patches * sizeof(float));
    float *feat = molmo_malloc((size_t)g.n_pooled * (size_t)g.d_model * sizeof(float));
    double *t = molmo_malloc((size_t)reps * sizeof(double));
    if (!img || !mask || !feat || !t) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    uint32_t x = 12345u;
    for (size_t i = 0; s == MOLMO_OK && i < n_img; i++) { /* CLIP-normalised range, about */
        x = x * 1664525u + 1013904223u;
        img[i] = (float)(x >> 8) / 16777216.0f * 3.8f - 1.8f;
    }
    for (int i = 0; s == MOLMO_OK && i < g.n_patches; i++) mask[i] = 1.0f;
    if (s == MOLMO_OK) s = molmo_encode_crops(ctx, img, mask, 1, feat, err); /* warm-up */
    for (int r = 0; s == MOLMO_OK && r < reps; r++) {
        const double t0 = molmo_now_ms();
        s = molmo_encode_crops(ctx, img, mask, 1, feat, err);
        t[r] = (molmo_now_ms() - t0) * 1e-3;
    }
    if (s == MOLMO_OK) stat_of(t, reps, per_crop);
    molmo_free(img);
    molmo_free(mask);
    molmo_free(feat);
    molmo_free(t);
    return s;
}

/* Empties the KV cache but keeps the image features: the next molmo_generate runs the whole
 * prompt again without running the vision encoder. */
static void forget_kv(molmo_context *c) {
    c->n_cached = 0;
    c->cached_image_valid = 0;
    molmo_decoder_truncate(c->dec, 0);
}

molmo_status molmo_bench_prefill(molmo_context *ctx, const molmo_image *image,
                                 const char *prompt, int max_crops, int reps,
                                 molmo_bench_prefill_result *out, molmo_error *err) {
    if (!ctx || !prompt || !out)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench prefill: NULL argument");
    molmo_status s = check_reps(reps, err);
    if (s != MOLMO_OK) return s;
    memset(out, 0, sizeof *out);
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = 0;
    gp.max_crops = max_crops;
    const molmo_message msg = {"user", prompt};
    molmo_generation *g = NULL;
    double *t = molmo_malloc((size_t)reps * sizeof(double));
    if (!t) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    forget_kv(ctx);
    s = molmo_generate(ctx, image, &msg, 1, &gp, &g, err); /* image features; warm-up */
    if (s == MOLMO_OK) {
        out->image_s = g->image_ms * 1e-3;
        out->n_prompt = g->prompt_tokens;
        out->n_crops = g->n_crops;
    }
    molmo_generation_free(g);
    for (int r = 0; s == MOLMO_OK && r < reps; r++) {
        forget_kv(ctx);
        g = NULL;
        s = molmo_generate(ctx, image, &msg, 1, &gp, &g, err);
        if (s == MOLMO_OK && g->n_prefilled != out->n_prompt)
            s = molmo_err(err, MOLMO_ERR_INTERNAL, "bench prefill: ran %d of %d prompt tokens",
                          g->n_prefilled, out->n_prompt);
        if (s == MOLMO_OK) t[r] = g->prefill_ms * 1e-3;
        molmo_generation_free(g);
    }
    if (s == MOLMO_OK) stat_of(t, reps, &out->time);
    molmo_free(t);
    return s;
}

/* One decode step: feeds *tok at the next position and replaces it with the greedy next one. */
static molmo_status step(molmo_context *c, int32_t *tok, float *x, molmo_error *err) {
    molmo_status s = molmo_decoder_embed(c->model, tok, 1, x, err);
    if (s == MOLMO_OK) s = molmo_decoder_forward(c->dec, c->pool, x, 1, c->logits, NULL, NULL, err);
    if (s == MOLMO_OK) *tok = molmo_argmax(c->logits, c->model->cfg.embedding_size);
    return s;
}

/* With an empty KV cache, runs BOS so that there are logits to start from. */
static molmo_status ensure_start(molmo_context *c, float *x, molmo_error *err) {
    if (molmo_decoder_n_past(c->dec) > 0) return MOLMO_OK;
    int32_t bos = c->model->eos_id >= 0 ? c->model->eos_id : 0;
    molmo_status s = step(c, &bos, x, err);
    c->n_cached = 0; /* the prompt cache bookkeeping never matches this BOS-only state */
    c->cached_image_valid = 0;
    return s;
}

molmo_status molmo_bench_decode(molmo_context *ctx, int n_tokens, int reps,
                                molmo_bench_stat *per_token, molmo_error *err) {
    if (!ctx || !per_token) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench decode: NULL");
    molmo_status s = check_reps(reps, err);
    if (s != MOLMO_OK) return s;
    const size_t E = (size_t)ctx->model->cfg.embedding_size;
    float *x = molmo_malloc((size_t)ctx->model->cfg.d_model * sizeof(float));
    float *saved = molmo_malloc(E * sizeof(float));
    double *t = molmo_malloc((size_t)reps * sizeof(double));
    if (!x || !saved || !t) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    if (s == MOLMO_OK) s = ensure_start(ctx, x, err);
    const int start = molmo_decoder_n_past(ctx->dec);
    if (s == MOLMO_OK && (n_tokens < 1 || n_tokens > molmo_decoder_n_ctx(ctx->dec) - start))
        s = molmo_err(err, n_tokens < 1 ? MOLMO_ERR_INVALID_ARG : MOLMO_ERR_TOO_LARGE,
                      "bench decode: %d steps after %d positions (the context holds %d)",
                      n_tokens, start, molmo_decoder_n_ctx(ctx->dec));
    if (x && saved && t) memcpy(saved, ctx->logits, E * sizeof(float));
    const int32_t first = s == MOLMO_OK ? molmo_argmax(saved, (int)E) : 0;
    for (int r = 0; s == MOLMO_OK && r < reps; r++) {
        molmo_decoder_truncate(ctx->dec, start);
        int32_t tok = first;
        const double t0 = molmo_now_ms();
        for (int i = 0; s == MOLMO_OK && i < n_tokens; i++) s = step(ctx, &tok, x, err);
        t[r] = (molmo_now_ms() - t0) * 1e-3 / n_tokens;
    }
    if (s == MOLMO_OK) stat_of(t, reps, per_token);
    if (x && saved && t) { /* the context as it was */
        molmo_decoder_truncate(ctx->dec, start);
        memcpy(ctx->logits, saved, E * sizeof(float));
    }
    molmo_free(x);
    molmo_free(saved);
    molmo_free(t);
    return s;
}

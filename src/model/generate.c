/* generate.c — molmo_generate: prompt building, image features (cached per context), prefill
 * (reusing the KV cache for the prefix shared with the previous call), and the decode loop
 * with sampling, stop strings and streaming (fact sheet §5.8, §7, §11). */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "model/context.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/sample.h"
#include "kernels/ops.h"

molmo_generate_params molmo_generate_default_params(void) {
    molmo_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_new_tokens = 200;
    p.top_p = 1.0f;
    return p;
}

void molmo_generation_free(molmo_generation *g) {
    if (!g) return;
    molmo_free(g->text);
    molmo_free(g->tokens);
    molmo_free(g->chosen);
    molmo_free(g->top);
    molmo_free(g);
}

static molmo_status check_messages(const molmo_message *msgs, int n, molmo_error *err) {
    if (!msgs || n < 1) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "no messages");
    for (int i = 0; i < n; i++) {
        const char *want = i % 2 ? "assistant" : "user";
        if (!msgs[i].role || !msgs[i].content || strcmp(msgs[i].role, want) != 0)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "message %d: expected role \"%s\" with "
                             "content (turns alternate user/assistant, starting with user)", i,
                             want);
    }
    if (n % 2 == 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "the last message must be the user's");
    return MOLMO_OK;
}

/* SHA-256 of the pixels and the crop setting: equal keys mean equal image features. */
static molmo_status image_key(const molmo_image *img, int max_crops, unsigned char key[32],
                              molmo_error *err) {
    int wh[3] = {molmo_image_width(img), molmo_image_height(img), max_crops};
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 32;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, wh, sizeof wh) &&
             EVP_DigestUpdate(c, molmo_image_pixels(img), (size_t)wh[0] * (size_t)wh[1] * 3) &&
             EVP_DigestFinal_ex(c, key, &n);
    EVP_MD_CTX_free(c);
    /* a key that could not be computed must never match the cache */
    return ok ? MOLMO_OK : molmo_err(err, MOLMO_ERR_NOMEM, "image cache key: SHA-256 failed");
}

/* Preprocesses and encodes `img` unless the context already holds its features. */
static molmo_status image_features(molmo_context *c, const molmo_image *img, int max_crops,
                                   int *cached, molmo_error *err) {
    const molmo_model *m = c->model;
    molmo_preproc_config pp = m->pp;
    if (max_crops > 0) pp.max_crops = max_crops;
    unsigned char key[32];
    molmo_status s = image_key(img, pp.max_crops, key, err);
    if (s != MOLMO_OK) return s;
    if (c->img.valid && !memcmp(key, c->img.key, 32)) {
        *cached = 1;
        return MOLMO_OK;
    }
    molmo_context_drop_image(c);
    s = molmo_preproc_config_check(&pp, err);
    if (s == MOLMO_OK) s = molmo_preprocess_mt(img, &pp, &m->image_ids, c->pool, &c->img.pre, err);
    if (s != MOLMO_OK) return s;
    molmo_crop_geometry g = molmo_model_crop_geometry(m);
    if (c->img.pre.n_patches != g.n_patches || c->img.pre.n_pooled != g.n_pooled ||
        !c->img.pre.masks) {
        molmo_context_drop_image(c);
        return molmo_err(err, MOLMO_ERR_FORMAT, "preprocessor_config.json does not match the "
                         "vision tower (%d patches / %d pooled per crop expected)", g.n_patches,
                         g.n_pooled);
    }
    size_t nf = (size_t)c->img.pre.n_crops * g.n_pooled * g.d_model;
    c->img.features = molmo_malloc(nf * sizeof(float));
    if (!c->img.features) {
        molmo_context_drop_image(c);
        return molmo_err(err, MOLMO_ERR_NOMEM, "image features: out of memory");
    }
    s = molmo_encode_crops(c, c->img.pre.images, c->img.pre.masks, c->img.pre.n_crops,
                           c->img.features, err);
    if (s != MOLMO_OK) {
        molmo_context_drop_image(c);
        return s;
    }
    memcpy(c->img.key, key, 32);
    c->img.valid = 1;
    *cached = 0;
    return MOLMO_OK;
}

/* [BOS] + image block + text ids into c->prompt. */
static molmo_status build_prompt(molmo_context *c, int with_image, const molmo_message *msgs,
                                 int n, molmo_error *err) {
    const molmo_model *m = c->model;
    const char *texts[64];
    size_t lens[64];
    if (n > 64) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "more than 64 messages");
    for (int i = 0; i < n; i++) {
        texts[i] = msgs[i].content;
        lens[i] = strlen(msgs[i].content);
    }
    size_t n_text = 0;
    molmo_status s = molmo_tokenizer_encode_prompt(m->tok, texts, lens, (size_t)n, NULL, 0,
                                                   &n_text, err);
    if (s != MOLMO_OK && s != MOLMO_ERR_TOO_LARGE && s != MOLMO_ERR_INVALID_ARG) return s;
    size_t n_img = with_image ? (size_t)c->img.pre.n_tokens : 0;
    size_t total = 1 + n_img + n_text;
    if (total > (size_t)molmo_decoder_n_ctx(c->dec))
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "the prompt has %zu tokens; the context holds "
                         "%d", total, molmo_decoder_n_ctx(c->dec));
    c->prompt[0] = m->eos_id;
    if (n_img) memcpy(c->prompt + 1, c->img.pre.tokens, n_img * sizeof(int32_t));
    size_t got = 0;
    s = molmo_tokenizer_encode_prompt(m->tok, texts, lens, (size_t)n, c->prompt + 1 + n_img,
                                      n_text, &got, err);
    if (s != MOLMO_OK) return s;
    c->n_prompt = (int)(1 + n_img + got);
    return MOLMO_OK;
}

/* Length of the prompt prefix already in the KV cache (same image, same tokens); at least the
 * last prompt token is always run again, to get its logits. */
static int reusable_prefix(const molmo_context *c, int with_image) {
    int n = 0, lim = c->n_cached < c->n_prompt - 1 ? c->n_cached : c->n_prompt - 1;
    if (c->cached_image_valid != with_image ||
        (with_image && memcmp(c->cached_image_key, c->img.key, 32) != 0))
        return 0;
    while (n < lim && c->cached[n] == c->prompt[n]) n++;
    return n;
}

/* Embeds prompt[from..n_prompt) with the image features added at their positions. */
static molmo_status embed_prompt(molmo_context *c, int with_image, int from, float *x,
                                 molmo_error *err) {
    const molmo_model *m = c->model;
    int D = m->cfg.d_model;
    molmo_status s = molmo_decoder_embed(m, c->prompt + from, c->n_prompt - from, x, err);
    if (s != MOLMO_OK || !with_image) return s;
    const molmo_preproc_result *r = &c->img.pre;
    for (int i = 0; i < r->n_crops * r->n_pooled; i++) {
        int pos = r->input_idx[i] + 1 - from; /* +1: BOS precedes the image block */
        if (r->input_idx[i] < 0 || pos < 0) continue;
        molmo_op_add(NULL, x + (size_t)pos * D, c->img.features + (size_t)i * D, (size_t)D);
    }
    return MOLMO_OK;
}

molmo_status molmo_generate(molmo_context *c, const molmo_image *image,
                            const molmo_message *msgs, int n_msgs,
                            const molmo_generate_params *params, molmo_generation **out,
                            molmo_error *err) {
    if (!c || !out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_generate: NULL argument");
    *out = NULL;
    const molmo_model *m = c->model;
    if (!m->tok)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s has no tokenizer.json", m->path);
    molmo_generate_params p = params ? *params : molmo_generate_default_params();
    molmo_status s = check_messages(msgs, n_msgs, err);
    if (s == MOLMO_OK && (p.top_logprobs < 0 || p.top_logprobs > 20 || p.max_new_tokens < 0))
        s = molmo_err(err, MOLMO_ERR_INVALID_ARG, "top_logprobs must be 0..20 and "
                      "max_new_tokens >= 0");
    if (s != MOLMO_OK) return s;
    molmo_generation *g = molmo_calloc(1, sizeof *g);
    if (!g) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    double t0 = molmo_now_ms();
    if (image) {
        s = image_features(c, image, p.max_crops, &g->image_cached, err);
        g->has_image = s == MOLMO_OK;
    }
    g->image_ms = molmo_now_ms() - t0;
    if (s == MOLMO_OK) s = build_prompt(c, image != NULL, msgs, n_msgs, err);
    if (s == MOLMO_OK) s = molmo_generate_run(c, image != NULL, &p, g, err);
    if (s != MOLMO_OK) {
        molmo_generation_free(g);
        return s;
    }
    if (image) {
        g->image_width = molmo_image_width(image);
        g->image_height = molmo_image_height(image);
        g->tiling_rows = c->img.pre.rows;
        g->tiling_cols = c->img.pre.cols;
        g->n_crops = c->img.pre.n_crops;
    }
    *out = g;
    return MOLMO_OK;
}

molmo_status molmo_generate_prefill(molmo_context *c, int with_image, molmo_generation *g,
                                    molmo_error *err) {
    int keep = reusable_prefix(c, with_image);
    molmo_decoder_truncate(c->dec, keep);
    c->n_cached = keep; /* until the prefill succeeds, only the prefix is valid */
    int n = c->n_prompt - keep;
    float *x = molmo_malloc((size_t)n * c->model->cfg.d_model * sizeof(float));
    if (!x) return molmo_err(err, MOLMO_ERR_NOMEM, "prompt embeddings: out of memory");
    molmo_status s = embed_prompt(c, with_image, keep, x, err);
    double t0 = molmo_now_ms();
    if (s == MOLMO_OK)
        s = molmo_decoder_forward(c->dec, c->pool, x, n, c->logits, c->params.trace,
                                  c->params.trace_user, err);
    g->prefill_ms = molmo_now_ms() - t0;
    molmo_free(x);
    if (s != MOLMO_OK) {
        molmo_decoder_truncate(c->dec, keep);
        return s;
    }
    g->prompt_tokens = c->n_prompt;
    g->cached_tokens = keep;
    g->n_prefilled = n;
    memcpy(c->cached, c->prompt, (size_t)c->n_prompt * sizeof(int32_t));
    c->n_cached = c->n_prompt;
    c->cached_image_valid = with_image;
    if (with_image) memcpy(c->cached_image_key, c->img.key, 32);
    return MOLMO_OK;
}

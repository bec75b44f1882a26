/* golden_diff.c — runs a model on a golden case and reports, stage by stage, how far each
 * traced tensor is from the golden one, and the first stage that diverges.
 *
 *   golden_diff MODEL_DIR GOLDEN.safetensors [TOLERANCE]
 *
 * Stages, in pipeline order: vit_features and image_features of every crop (from the golden
 * `images`/`image_masks`, when the golden includes them), inputs_embeds (golden input_ids plus
 * this run's image features), block_outputs_last per layer, prefill_hidden, prefill_logits.
 * Exit status 0 when every stage is within TOLERANCE (default 1e-4, absolute), 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "io/safetensors.h"
#include "model/context.h"
#include "model/decoder.h"

typedef struct run {
    const molmo_safetensors *g;
    double tol;
    int n_stages, first_bad;
    char first_name[96];
    size_t d;
} run;

static void stage(run *r, const char *name, const float *got, const float *want, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= mx)) mx = e; /* NaN counts as divergence */
    }
    int bad = !(mx <= r->tol);
    printf("%-28s n=%-8zu max_abs=%.3g%s\n", name, n, mx, bad ? "  <-- diverges" : "");
    if (bad && !r->first_bad) {
        r->first_bad = 1;
        snprintf(r->first_name, sizeof r->first_name, "%s", name);
    }
    r->n_stages++;
}

static void on_trace(void *user, const char *name, const float *data, int n_dims,
                     const int64_t *shape) {
    run *r = user;
    int k;
    char tail[32], label[96];
    const molmo_st_tensor *t;
    if (sscanf(name, "vit.crop%d.%31s", &k, tail) == 2 && !strcmp(tail, "features") &&
        (t = molmo_st_find(r->g, "vit_features"))) {
        size_t per = (size_t)t->shape[1] * (size_t)t->shape[2];
        snprintf(label, sizeof label, "vit_features[crop %d]", k);
        stage(r, label, data, (const float *)t->data + k * per, per);
    } else if (sscanf(name, "connector.crop%d.%31s", &k, tail) == 2 &&
               !strcmp(tail, "projected") && (t = molmo_st_find(r->g, "image_features"))) {
        size_t per = (size_t)t->shape[1] * (size_t)t->shape[2];
        snprintf(label, sizeof label, "image_features[crop %d]", k);
        stage(r, label, data, (const float *)t->data + k * per, per);
    } else if (sscanf(name, "llm.block%d.%31s", &k, tail) == 2 && !strcmp(tail, "last") &&
               (t = molmo_st_find(r->g, "block_outputs_last"))) {
        snprintf(label, sizeof label, "block_outputs_last[%d]", k);
        stage(r, label, data, (const float *)t->data + k * r->d, r->d);
    } else if (!strcmp(name, "llm.hidden") && (t = molmo_st_find(r->g, "prefill_hidden"))) {
        stage(r, "prefill_hidden", data, t->data, r->d);
    } else if (!strcmp(name, "llm.logits") && (t = molmo_st_find(r->g, "prefill_logits"))) {
        stage(r, "prefill_logits", data, t->data, (size_t)t->shape[0]);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR GOLDEN.safetensors [TOLERANCE]\n", argv[0]);
        return 2;
    }
    molmo_error err;
    molmo_model *m = NULL;
    molmo_safetensors g;
    if (molmo_model_load(argv[1], NULL, &m, &err) != MOLMO_OK ||
        molmo_st_open(&g, argv[2], &err) != MOLMO_OK) {
        fprintf(stderr, "golden_diff: %s\n", err.msg);
        return 2;
    }
    run r = {.g = &g, .tol = argc > 3 ? atof(argv[3]) : 1e-4, .d = (size_t)m->cfg.d_model};
    molmo_context_params cp = molmo_context_default_params();
    cp.trace = on_trace;
    cp.trace_user = &r;
    molmo_context *ctx = NULL;
    if (molmo_context_create(m, &cp, &ctx, &err) != MOLMO_OK) return 2;
    const molmo_st_tensor *ids = molmo_st_find(&g, "input_ids"), *img = molmo_st_find(&g, "images"),
                          *masks = molmo_st_find(&g, "image_masks"),
                          *idx = molmo_st_find(&g, "image_input_idx");
    if (!ids) return fprintf(stderr, "golden_diff: no input_ids\n"), 2;
    int L = (int)ids->shape[0], D = m->cfg.d_model, n_crops = img ? (int)img->shape[0] : 0;
    molmo_crop_geometry geo = molmo_model_crop_geometry(m);
    float *feat = n_crops ? calloc((size_t)n_crops * geo.n_pooled * D, sizeof(float)) : NULL;
    if (n_crops && (img->shape[1] != geo.n_patches || img->shape[2] != geo.patch_dim ||
                    molmo_encode_crops(ctx, img->data, masks->data, n_crops, feat, &err) != MOLMO_OK))
        return fprintf(stderr, "golden_diff: cannot run the vision stage\n"), 2;
    float *x = calloc((size_t)L * D, sizeof(float));
    if (molmo_decoder_embed(m, ids->data, L, x, &err) != MOLMO_OK) {
        fprintf(stderr, "golden_diff: %s\n", err.msg);
        return 1;
    }
    for (int64_t i = 0; feat && idx && i < idx->shape[0] * idx->shape[1]; i++) {
        int pos = ((const int *)idx->data)[i];
        for (int e = 0; pos >= 0 && pos < L && e < D; e++) x[(size_t)pos * D + e] += feat[i * D + e];
    }
    const molmo_st_tensor *emb = molmo_st_find(&g, "inputs_embeds");
    if (feat && emb) stage(&r, "inputs_embeds", x, emb->data, (size_t)L * D);
    float *logits = calloc((size_t)m->cfg.embedding_size, sizeof(float));
    if (molmo_decoder_forward(ctx->dec, ctx->pool, x, L, logits, on_trace, &r, &err) != MOLMO_OK) {
        fprintf(stderr, "golden_diff: %s\n", err.msg);
        return 1;
    }
    if (r.first_bad)
        printf("FIRST DIVERGENCE: %s (tolerance %g, %d stages compared)\n", r.first_name, r.tol,
               r.n_stages);
    else
        printf("all %d stages within %g\n", r.n_stages, r.tol);
    free(x);
    free(feat);
    free(logits);
    molmo_context_free(ctx);
    molmo_st_close(&g);
    molmo_model_free(m);
    return r.first_bad ? 1 : 0;
}

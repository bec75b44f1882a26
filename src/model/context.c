/* context.c — molmo_context: the pool and workspaces one conversation runs on. */
#include "model/context.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/mapfile.h"

/* A context is for inference, which will touch every weight (MoE prefill reaches every
 * expert). First touches of a mapped file fault in one page (or one 64 KiB fault-around) at a
 * time: ~1 s for MolmoE-1B's 7.7 GB GGUF from a warm page cache, paid in the middle of the
 * first image and prompt; one madvise populates the same pages in ~0.16 s. Only when the
 * weights take at most half of the RAM (bigger models would evict one another's pages) and
 * MOLMO_PREFAULT is not 0. */
static void prefault_weights(const molmo_model *m) {
    const char *env = getenv("MOLMO_PREFAULT");
    if (env && !strcmp(env, "0")) return;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t total = 0;
    for (int i = 0; i < m->st.n_files; i++) total += m->st.maps[i].size;
    if (pages <= 0 || page <= 0 || total > (size_t)pages / 2 * (size_t)page) return;
    for (int i = 0; i < m->st.n_files; i++) molmo_mapfile_prefault(&m->st.maps[i]);
}

molmo_context_params molmo_context_default_params(void) {
    molmo_context_params p;
    memset(&p, 0, sizeof p);
    return p;
}

molmo_crop_geometry molmo_model_crop_geometry(const molmo_model *m) {
    molmo_crop_geometry g = {0, 0, 0, 0};
    if (!m) return g;
    const molmo_config *c = &m->cfg;
    int grid = c->image_size / c->patch_size;
    g.n_patches = grid * grid;
    g.patch_dim = c->patch_size * c->patch_size * 3;
    g.n_pooled = (grid / c->pool_h) * (grid / c->pool_w);
    g.d_model = c->d_model;
    return g;
}

molmo_status molmo_context_create(const molmo_model *model, const molmo_context_params *params,
                                  molmo_context **out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_context_create: out is NULL");
    *out = NULL;
    if (!model) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_context_create: no model");
    molmo_context *c = molmo_calloc(1, sizeof *c);
    if (!c) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    c->model = model;
    c->params = params ? *params : molmo_context_default_params();
    molmo_status s = molmo_pool_create(c->params.n_threads, &c->pool, err);
    int nth = c->pool ? molmo_pool_size(c->pool) : 1;
    if (s == MOLMO_OK) s = molmo_vision_create(model, nth, &c->vision, err);
    if (s == MOLMO_OK) molmo_vision_set_bf16_activations(c->vision, c->params.bf16_activations);
    if (s == MOLMO_OK)
        s = molmo_decoder_create(model, c->params.n_ctx, c->params.n_batch, nth,
                                 c->params.kv_type, &c->dec, err);
    if (s == MOLMO_OK) molmo_decoder_set_bf16_activations(c->dec, c->params.bf16_activations);
    if (s == MOLMO_OK) {
        size_t n_ctx = (size_t)molmo_decoder_n_ctx(c->dec);
        c->logits = molmo_calloc((size_t)model->cfg.embedding_size, sizeof(float));
        c->prompt = molmo_calloc(n_ctx, sizeof(int32_t));
        c->cached = molmo_calloc(n_ctx, sizeof(int32_t));
        if (!c->logits || !c->prompt || !c->cached)
            s = molmo_err(err, MOLMO_ERR_NOMEM, "context: out of memory");
    }
    if (s != MOLMO_OK) {
        molmo_context_free(c);
        return s;
    }
    prefault_weights(model);
    *out = c;
    return MOLMO_OK;
}

void molmo_context_drop_image(molmo_context *c) {
    molmo_preproc_result_free(&c->img.pre);
    molmo_free(c->img.features);
    memset(&c->img, 0, sizeof c->img);
}

void molmo_context_free(molmo_context *c) {
    if (!c) return;
    molmo_context_drop_image(c);
    molmo_decoder_free(c->dec);
    molmo_free(c->logits);
    molmo_free(c->prompt);
    molmo_free(c->cached);
    molmo_vision_free(c->vision);
    molmo_pool_free(c->pool);
    molmo_free(c);
}

molmo_status molmo_encode_crops(molmo_context *c, const float *images, const float *masks,
                                int n_crops, float *features_out, molmo_error *err) {
    if (!c || !images || !masks || !features_out || n_crops < 1)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_encode_crops: bad arguments");
    molmo_crop_geometry g = molmo_model_crop_geometry(c->model);
    for (int k = 0; k < n_crops; k++) {
        molmo_vision_encode_crop(c->vision, c->pool,
                                 images + (size_t)k * g.n_patches * g.patch_dim,
                                 masks + (size_t)k * g.n_patches, k,
                                 features_out + (size_t)k * g.n_pooled * g.d_model, NULL,
                                 c->params.trace, c->params.trace_user);
        c->n_vision_crops++;
    }
    return MOLMO_OK;
}

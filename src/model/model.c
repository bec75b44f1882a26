/* model.c — molmo_model_load: resolve, read config.json, map weights, bind and check them; a
 * GGUF file goes to model_gguf.c. */
#define _POSIX_C_SOURCE 200809L
#include "model/model.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/path.h"
#include "kernels/quant.h"
#include "model/arch.h"
#include "model/model_gguf.h"
#include "model/repack.h"

molmo_model_params molmo_model_default_params(void) {
    molmo_model_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static int file_in(const char *dir, const char *name) {
    char p[4096];
    return molmo_path_join(p, sizeof p, dir, name) == 0 && molmo_path_exists(p);
}

/* The ids the prompt needs: EOS (also used as BOS, fact sheet §6) and the image tokens, looked
 * up by their strings in the checkpoint's own tokenizer. */
molmo_status molmo_model_bind_tokenizer(molmo_model *m, molmo_error *err) {
    molmo_tokenizer_info ti;
    molmo_tokenizer_get_info(m->tok, &ti);
    m->eos_id = ti.eos_id;
    static const char *const names[4] = {"<im_start>", "<im_end>", "<im_patch>", "<im_col>"};
    int32_t *dst[4] = {&m->image_ids.im_start, &m->image_ids.im_end, &m->image_ids.im_patch,
                       &m->image_ids.im_col};
    for (int i = 0; i < 4; i++) {
        *dst[i] = molmo_tokenizer_token_to_id(m->tok, names[i], strlen(names[i]));
        if (*dst[i] < 0)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tokenizer.json has no %s token",
                             m->path, names[i]);
    }
    int n_rows = m->cfg.embedding_size + m->cfg.n_new_embeddings;
    if (m->eos_id < 0 || m->eos_id >= n_rows)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tokenizer_config.json gives no usable "
                         "eos_token (id %d)", m->path, m->eos_id);
    return MOLMO_OK;
}

static molmo_status load_dir(molmo_model *m, const molmo_model_params *p, molmo_error *err) {
    char cfg_path[4096];
    if (molmo_path_join(cfg_path, sizeof cfg_path, m->path, "config.json") != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", m->path);
    if (!molmo_path_exists(cfg_path))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: no config.json (not a model directory)",
                         m->path);
    molmo_status s = molmo_config_load(cfg_path, &m->cfg, err);
    if (s != MOLMO_OK) return s;
    s = molmo_st_open(&m->st, m->path, err);
    if (s != MOLMO_OK) return s;
    s = molmo_weights_bind(&m->w, &m->cfg, &m->st, err);
    if (s != MOLMO_OK) {
        molmo_err_prefix(err, "%s", m->path);
        return s;
    }
    for (int i = 0; i < m->st.n_tensors; i++) m->weight_bytes += m->st.tensors[i].n_bytes;
    if (m->w.n_unused)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN, "%s: %d tensors in the files are not used",
                  m->path, m->w.n_unused);
    s = molmo_preproc_config_load(m->path, &m->pp, err);
    if (s != MOLMO_OK) return s;
    m->has_tokenizer = file_in(m->path, "tokenizer.json");
    if (m->has_tokenizer && ((s = molmo_tokenizer_load(m->path, &m->tok, err)) != MOLMO_OK ||
                             (s = molmo_model_bind_tokenizer(m, err)) != MOLMO_OK))
        return s;
    m->has_preprocessor_config = file_in(m->path, "preprocessor_config.json");
    m->has_generation_config = file_in(m->path, "generation_config.json");
    if (!m->has_tokenizer)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN, "%s: no tokenizer.json", m->path);
    if (!m->has_preprocessor_config)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN,
                  "%s: no preprocessor_config.json (using Molmo's defaults)", m->path);
    return MOLMO_OK;
}

molmo_status molmo_model_load(const char *path_or_repo, const molmo_model_params *params,
                              molmo_model **out, molmo_error *err) {
    if (!out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_model_load: out is NULL");
    *out = NULL;
    if (!path_or_repo)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "molmo_model_load: path is NULL");
    molmo_model_params defaults = molmo_model_default_params();
    const molmo_model_params *p = params ? params : &defaults;

    char dir[4096];
    molmo_status s = molmo_resolve_model_path(path_or_repo, dir, sizeof dir, err);
    if (s != MOLMO_OK) return s;
    molmo_model *m = molmo_calloc(1, sizeof *m);
    if (!m) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    m->path = molmo_strdup(dir);
    if (!m->path) {
        molmo_free(m);
        return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    }
    if (molmo_path_is_dir(dir)) {
        s = load_dir(m, p, err);
    } else if (molmo_gguf_file_sniff(dir)) { /* by its magic, whatever its name */
        s = molmo_model_load_gguf(m, p, err);
    } else {
        s = molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: a model is a directory with config.json "
                      "and safetensors files, or a GGUF file (molmo convert)", dir);
    }
    /* --no-mmap: each mapping becomes a private copy at the same address, so every tensor
     * pointer bound above stays valid */
    for (int i = 0; s == MOLMO_OK && p->no_mmap && i < m->st.n_files; i++)
        s = molmo_mapfile_to_ram(&m->st.maps[i], m->st.paths[i], err);
    /* and, in that copy, Q8_0 / Q4_0 matrices laid out for the kernels (the same products) */
    if (s == MOLMO_OK && p->no_mmap && !p->no_repack) molmo_model_repack(m, p->log, p->log_user);
    if (s != MOLMO_OK) {
        molmo_model_free(m);
        return s;
    }
    molmo_log(p->log, p->log_user, MOLMO_LOG_INFO, "%s: %s, %d tensors in %d file(s)", m->path,
              molmo_family_name(m->cfg.family), m->st.n_tensors, m->st.n_files);
    *out = m;
    return MOLMO_OK;
}

void molmo_model_free(molmo_model *m) {
    if (!m) return;
    molmo_tokenizer_free(m->tok);
    molmo_weights_free(&m->w, &m->cfg);
    molmo_st_close(&m->st);
    molmo_free(m->path);
    molmo_free(m);
}

const molmo_tokenizer *molmo_model_tokenizer(const molmo_model *m) { return m ? m->tok : NULL; }

const char *molmo_model_file(const molmo_model *m, int i) {
    if (!m || i < 0 || i >= m->st.n_files) return NULL;
    return m->st.paths[i];
}

/* Activations of one 12-crop image prompt: the ViT's per-crop buffers (13 crops of 577 tokens
 * at the vision width, ~8 live tensors) plus the LLM's prompt buffers (~1300 tokens, ~6 live
 * tensors of the MLP width). An estimate for planning, not a bound. */
static uint64_t activation_estimate(const molmo_config *c) {
    uint64_t vit = 13ull * 577 * (uint64_t)(c->vit_d_ff + 8 * c->vit_d_model) * 4;
    uint64_t llm = 1300ull * (uint64_t)(2 * c->d_ff + 6 * c->d_model) * 4;
    uint64_t logits = (uint64_t)c->embedding_size * 4;
    return vit + llm + logits;
}

static void count_interleaved(void *user, molmo_tensor *t) {
    *(int *)user += molmo_dtype_is_x16(t->dtype);
}

molmo_status molmo_model_get_info(const molmo_model *m, molmo_model_info *o) {
    if (!m || !o) return MOLMO_ERR_INVALID_ARG;
    const molmo_config *c = &m->cfg;
    memset(o, 0, sizeof *o);
    o->family = c->family;
    o->family_name = molmo_family_name(c->family);
    o->path = m->path;
    o->d_model = c->d_model;
    o->n_layers = c->n_layers;
    o->n_heads = c->n_heads;
    o->n_kv_heads = c->n_kv_heads;
    o->head_dim = c->head_dim;
    o->d_ff = c->d_ff;
    o->n_experts = c->n_experts;
    o->n_experts_used = c->top_k;
    o->vocab_size = c->vocab_size;
    o->embedding_size = c->embedding_size;
    o->n_new_embeddings = c->n_new_embeddings;
    o->max_position_embeddings = c->max_position_embeddings;
    o->rope_theta = c->rope_theta;
    o->norm_eps = c->norm_eps;
    o->qkv_bias = c->qkv_bias;
    o->qk_norm = c->qk_norm;
    o->norm_after = c->norm_after;
    o->vit_d_model = c->vit_d_model;
    o->vit_n_layers = c->vit_n_layers;
    o->vit_n_heads = c->vit_n_heads;
    o->vit_head_dim = c->vit_head_dim;
    o->vit_d_ff = c->vit_d_ff;
    o->vit_layer_a = c->vit_layers[0];
    o->vit_layer_b = c->vit_layers[1];
    o->image_size = c->image_size;
    o->patch_size = c->patch_size;
    o->n_params_vision = m->w.n_params_vision;
    o->n_params_connector = m->w.n_params_connector;
    o->n_params_llm = m->w.n_params_llm;
    o->n_params_total = o->n_params_vision + o->n_params_connector + o->n_params_llm;
    o->weight_bytes = m->weight_bytes;
    o->n_tensors = m->st.n_tensors;
    for (int i = 0; i < m->st.n_tensors; i++) o->n_tensors_by_dtype[m->st.tensors[i].dtype]++;
    o->n_files = m->st.n_files;
    molmo_weights_each_matrix((molmo_weights *)&m->w, c, count_interleaved, &o->n_matrices_interleaved);
    o->kv_cache_bytes_per_token = 2ull * (uint64_t)c->n_layers * (uint64_t)c->n_kv_heads *
                                  (uint64_t)c->head_dim * sizeof(float);
    o->memory_estimate_bytes = m->weight_bytes +
                               o->kv_cache_bytes_per_token * (uint64_t)c->max_position_embeddings +
                               activation_estimate(c);
    o->has_tokenizer = m->has_tokenizer;
    o->has_preprocessor_config = m->has_preprocessor_config;
    o->has_generation_config = m->has_generation_config;
    return MOLMO_OK;
}

/* model_gguf.c — a model from one GGUF file written by molmo_convert (docs/gguf.md).
 *
 * Nothing is copied: the GGUF tensor table is a molmo_safetensors table over the file's
 * mapping, which the model keeps (m->st) and binds with the same molmo_weights_bind as a
 * safetensors checkpoint. The config comes from the embedded config.json text through the same
 * parser as a directory's (the normalised molmo.* keys are for tools and are not trusted), and
 * the tokenizer and preprocessor config from their embedded texts. */
#define _POSIX_C_SOURCE 200809L
#include "model/model_gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "io/gguf.h"
#include "kernels/quant.h"
#include "model/convert.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A GGUF of another architecture (a llama.cpp model) or of a newer molmo layout is refused by
 * name rather than failing later on a missing key. */
static molmo_status check_kind(const molmo_gguf *g, molmo_error *err) {
    const char *arch;
    size_t len;
    molmo_status st = molmo_gguf_get_str(g, "general.architecture", &arch, &len, err);
    if (st != MOLMO_OK) return st;
    if (len != 5 || memcmp(arch, "molmo", 5) != 0)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "%s: general.architecture is \"%.*s\", not \"molmo\" (only files written "
                         "by molmo convert are models here)",
                         g->fname, (int)(len < 40 ? len : 40), arch);
    int64_t v;
    if ((st = molmo_gguf_get_int(g, MOLMO_KEY_FORMAT_VERSION, &v, err)) != MOLMO_OK) return st;
    if (v < 1 || v > MOLMO_GGUF_FORMAT_VERSION)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "%s: %s = %lld; this molmo reads version %d (a newer molmo wrote it?)",
                         g->fname, MOLMO_KEY_FORMAT_VERSION, (long long)v,
                         MOLMO_GGUF_FORMAT_VERSION);
    return MOLMO_OK;
}

/* Back to the Hugging Face names the binder looks up (convert.h: the abbreviated ViT prefix). */
static molmo_status expand_names(molmo_gguf *g, molmo_error *err) {
    for (int i = 0; i < g->st.n_tensors; i++) {
        molmo_st_tensor *t = &g->st.tensors[i];
        if (strncmp(t->name, MOLMO_GGUF_VIT_PREFIX, strlen(MOLMO_GGUF_VIT_PREFIX)) != 0) continue;
        size_t cap = strlen(t->name) + strlen(MOLMO_GGUF_VIT_PREFIX_HF) + 1;
        char *hf = molmo_malloc(cap);
        if (!hf) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", g->fname);
        molmo_gguf_name_to_hf(t->name, hf, cap);
        molmo_free(t->name);
        t->name = hf;
    }
    return molmo_gguf_sort_tensors(g, err);
}

/* The binder reads vectors and the class/positional/pad tables element by element as
 * f32/f16/bf16, and the kernels read f32/f16/bf16 matrices as arrays of their element type:
 * refuse what they cannot take instead of misreading it. */
static molmo_status check_tensors(const molmo_gguf *g, molmo_error *err) {
    for (int i = 0; i < g->st.n_tensors; i++) {
        const molmo_st_tensor *t = &g->st.tensors[i];
        int is_block = molmo_dtype_block_size(t->dtype) > 1;
        int small = t->n_dims == 1 || ends_with(t->name, "image_vit.class_embedding") ||
                    ends_with(t->name, "image_vit.positional_embedding") ||
                    ends_with(t->name, ".pad_embed");
        if (small && is_block)
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                             "%s: tensor '%s' is %s; vectors and the class/positional/pad "
                             "embeddings must be f32, f16 or bf16",
                             g->fname, t->name, molmo_dtype_name(t->dtype));
        size_t esz = is_block ? 1 : molmo_dtype_size(t->dtype);
        if (esz > 1 && (uintptr_t)t->data % esz != 0)
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: tensor '%s' is not aligned to its %zu-byte elements (file "
                             "alignment %u)",
                             g->fname, t->name, esz, g->alignment);
    }
    return MOLMO_OK;
}

/* A key that must hold a string when present; *s = NULL when absent. */
static molmo_status opt_str(const molmo_gguf *g, const char *key, const char **s, size_t *len,
                            molmo_error *err) {
    *s = NULL;
    *len = 0;
    if (!molmo_gguf_find(g, key)) return MOLMO_OK;
    return molmo_gguf_get_str(g, key, s, len, err);
}

static molmo_status load_config(molmo_model *m, const molmo_gguf *g, molmo_error *err) {
    const char *s;
    size_t len;
    molmo_status st = molmo_gguf_get_str(g, MOLMO_KEY_CONFIG_JSON, &s, &len, err);
    if (st != MOLMO_OK) return st;
    char ctx[512];
    snprintf(ctx, sizeof ctx, "%s: %s", m->path, MOLMO_KEY_CONFIG_JSON);
    return molmo_config_parse(s, len, ctx, &m->cfg, err);
}

/* Tokenizer and preprocessor config from their texts (absent texts: as a directory without
 * the files: no tokenizer, Molmo's preprocessing defaults). */
static molmo_status load_front_ends(molmo_model *m, const molmo_gguf *g, molmo_error *err) {
    const char *pp, *tok, *tcfg;
    size_t pp_len, tok_len, tcfg_len;
    molmo_status st = opt_str(g, MOLMO_KEY_PREPROCESSOR_CONFIG_JSON, &pp, &pp_len, err);
    if (st == MOLMO_OK) st = opt_str(g, MOLMO_KEY_TOKENIZER_JSON, &tok, &tok_len, err);
    if (st == MOLMO_OK) st = opt_str(g, MOLMO_KEY_TOKENIZER_CONFIG_JSON, &tcfg, &tcfg_len, err);
    if (st != MOLMO_OK) return st;
    char ctx[512];
    if (pp) {
        snprintf(ctx, sizeof ctx, "%s: %s", m->path, MOLMO_KEY_PREPROCESSOR_CONFIG_JSON);
        if ((st = molmo_preproc_config_parse(pp, pp_len, ctx, &m->pp, err)) != MOLMO_OK) return st;
    } else {
        molmo_preproc_config_default(&m->pp);
    }
    m->has_preprocessor_config = pp != NULL;
    m->has_tokenizer = tok != NULL;
    m->has_generation_config = molmo_gguf_find(g, MOLMO_KEY_GENERATION_CONFIG_JSON) != NULL;
    if (!tok) return MOLMO_OK;
    st = molmo_tokenizer_load_from_memory(tok, tok_len, tcfg, tcfg_len, &m->tok, err);
    if (st != MOLMO_OK) {
        molmo_err_prefix(err, "%s: %s", m->path, MOLMO_KEY_TOKENIZER_JSON);
        return st;
    }
    return molmo_model_bind_tokenizer(m, err);
}

molmo_status molmo_model_load_gguf(molmo_model *m, const molmo_model_params *p,
                                   molmo_error *err) {
    molmo_gguf g;
    molmo_status st = molmo_gguf_open(&g, m->path, err);
    if (st != MOLMO_OK) return st;
    if ((st = check_kind(&g, err)) != MOLMO_OK) goto done;
    if ((st = expand_names(&g, err)) != MOLMO_OK) goto done;
    if ((st = load_config(m, &g, err)) != MOLMO_OK) goto done;
    if ((st = check_tensors(&g, err)) != MOLMO_OK) goto done;
    m->st = g.st; /* the model owns the mapping from here on; g keeps only its metadata, */
    memset(&g.st, 0, sizeof g.st); /* whose pointers into the mapping stay valid */
    st = molmo_weights_bind(&m->w, &m->cfg, &m->st, err);
    if (st != MOLMO_OK) {
        molmo_err_prefix(err, "%s", m->path);
        goto done;
    }
    for (int i = 0; i < m->st.n_tensors; i++) m->weight_bytes += m->st.tensors[i].n_bytes;
    if (m->w.n_unused)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN, "%s: %d tensors in the file are not used",
                  m->path, m->w.n_unused);
    if ((st = load_front_ends(m, &g, err)) != MOLMO_OK) goto done;
    if (!m->has_tokenizer)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN, "%s: no %s", m->path,
                  MOLMO_KEY_TOKENIZER_JSON);
done:
    molmo_gguf_close(&g);
    return st;
}

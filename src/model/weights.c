/* weights.c — binds checkpoint tensors to roles, checking presence and exact shapes
 * (fact sheet §9.3; names from the traits table in arch.c). */
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fp16.h"
#include "model/arch.h"

typedef struct binder {
    const molmo_safetensors *st; /* NULL: enumerate mode, report names and shapes to `visit` */
    molmo_weights_visit_fn visit;
    void *visit_user;
    unsigned char *used; /* [n_tensors]: which file tensors got a role */
    molmo_tensor **small; /* vectors (norms, biases) to hold as f32 */
    int n_small, cap_small;
    molmo_error *err;
    molmo_status status;
} binder;

static void remember_small(binder *b, molmo_tensor *t) {
    if (b->n_small == b->cap_small) {
        int cap = b->cap_small ? 2 * b->cap_small : 256;
        molmo_tensor **p = molmo_realloc(b->small, (size_t)cap * sizeof *p);
        if (!p) {
            b->status = molmo_err(b->err, MOLMO_ERR_NOMEM, "out of memory");
            return;
        }
        b->small = p;
        b->cap_small = cap;
    }
    b->small[b->n_small++] = t;
}

/* Formats `pattern` with up to two indices, finds the tensor and checks its shape against the
 * n_dims values that follow. `optional`: absence leaves *t zeroed. */
static void bind(binder *b, molmo_tensor *t, int optional, const char *pattern, int i, int e,
                 int n_dims, ...) {
    if (b->status != MOLMO_OK) return;
    char name[256];
    snprintf(name, sizeof name, pattern, i, e);
    memset(t, 0, sizeof *t);
    int64_t want[4];
    va_list ap;
    va_start(ap, n_dims);
    for (int d = 0; d < n_dims; d++) want[d] = va_arg(ap, int64_t);
    va_end(ap);
    if (!b->st) {
        if (!optional) b->visit(b->visit_user, name, n_dims, want);
        return;
    }
    const molmo_st_tensor *st = molmo_st_find(b->st, name);
    if (!st) {
        if (!optional)
            b->status = molmo_err(b->err, MOLMO_ERR_NOT_FOUND, "tensor '%s' is missing", name);
        return;
    }
    if (st->dtype == MOLMO_DTYPE_I32) {
        b->status = molmo_err(b->err, MOLMO_ERR_UNSUPPORTED,
                              "tensor '%s' has dtype I32; weights must be F32, F16 or BF16", name);
        return;
    }
    int ok = st->n_dims == n_dims;
    for (int d = 0; ok && d < n_dims; d++) ok = st->shape[d] == want[d];
    if (!ok) {
        char have_s[96] = "", want_s[96] = "";
        for (int d = 0; d < st->n_dims && d < 4; d++)
            snprintf(have_s + strlen(have_s), sizeof have_s - strlen(have_s), "%s%lld",
                     d ? ", " : "", (long long)st->shape[d]);
        for (int d = 0; d < n_dims; d++)
            snprintf(want_s + strlen(want_s), sizeof want_s - strlen(want_s), "%s%lld",
                     d ? ", " : "", (long long)want[d]);
        b->status = molmo_err(b->err, MOLMO_ERR_FORMAT,
                              "tensor '%s' has shape [%s], expected [%s]", name, have_s, want_s);
        return;
    }
    t->data = st->data;
    t->dtype = st->dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->shape[d] = want[d];
    t->name = st->name;
    b->used[st - b->st->tensors] = 1;
    if (n_dims == 1) remember_small(b, t);
}

#define V1(a) 1, (int64_t)(a)
#define V2(a, b) 2, (int64_t)(a), (int64_t)(b)

static void bind_llm_layer(binder *b, molmo_llm_layer *L, const molmo_config *c,
                           const molmo_name_table *n, int i) {
    int64_t d = c->d_model, kv = (int64_t)c->n_kv_heads * c->head_dim, f = c->d_ff;
    bind(b, &L->attn_norm, 0, n->attn_norm, i, 0, V1(d));
    bind(b, &L->att_proj, 0, n->att_proj, i, 0, V2(d + 2 * kv, d));
    bind(b, &L->att_proj_bias, !c->qkv_bias, n->att_proj_bias, i, 0, V1(d + 2 * kv));
    if (c->qk_norm) {
        bind(b, &L->q_norm, 0, n->q_norm, i, 0, V1(d));
        bind(b, &L->k_norm, 0, n->k_norm, i, 0, V1(kv));
    }
    bind(b, &L->attn_out, 0, n->attn_out, i, 0, V2(d, d));
    bind(b, &L->ff_norm, 0, n->ff_norm, i, 0, V1(d));
    if (c->n_experts == 0) {
        bind(b, &L->ff_proj, 0, n->ff_proj, i, 0, V2(2 * f, d));
        bind(b, &L->ff_out, 0, n->ff_out, i, 0, V2(d, f));
        return;
    }
    bind(b, &L->router, 0, n->router, i, 0, V2(c->n_experts, d));
    for (int e = 0; e < c->n_experts; e++) {
        bind(b, &L->experts[e].gate, 0, n->exp_gate, i, e, V2(f, d));
        bind(b, &L->experts[e].up, 0, n->exp_up, i, e, V2(f, d));
        bind(b, &L->experts[e].down, 0, n->exp_down, i, e, V2(d, f));
    }
}

#define VIT "model.vision_backbone.image_vit."
#define RES VIT "transformer.resblocks.%d."

static void bind_vit_layer(binder *b, molmo_vit_layer *L, const molmo_config *c, int i) {
    int64_t W = c->vit_d_model, F = c->vit_d_ff;
    bind(b, &L->ln1_w, 0, RES "attention_norm.weight", i, 0, V1(W));
    bind(b, &L->ln1_b, 0, RES "attention_norm.bias", i, 0, V1(W));
    bind(b, &L->wq, 0, RES "attention.wq.weight", i, 0, V2(W, W));
    bind(b, &L->bq, 0, RES "attention.wq.bias", i, 0, V1(W));
    bind(b, &L->wk, 0, RES "attention.wk.weight", i, 0, V2(W, W));
    bind(b, &L->bk, 0, RES "attention.wk.bias", i, 0, V1(W));
    bind(b, &L->wv, 0, RES "attention.wv.weight", i, 0, V2(W, W));
    bind(b, &L->bv, 0, RES "attention.wv.bias", i, 0, V1(W));
    bind(b, &L->wo, 0, RES "attention.wo.weight", i, 0, V2(W, W));
    bind(b, &L->bo, 0, RES "attention.wo.bias", i, 0, V1(W));
    bind(b, &L->ln2_w, 0, RES "ffn_norm.weight", i, 0, V1(W));
    bind(b, &L->ln2_b, 0, RES "ffn_norm.bias", i, 0, V1(W));
    bind(b, &L->w1, 0, RES "feed_forward.w1.weight", i, 0, V2(F, W));
    bind(b, &L->b1, 0, RES "feed_forward.w1.bias", i, 0, V1(F));
    bind(b, &L->w2, 0, RES "feed_forward.w2.weight", i, 0, V2(W, F));
    bind(b, &L->b2, 0, RES "feed_forward.w2.bias", i, 0, V1(W));
}

#define VB "model.vision_backbone."

static void bind_vision(binder *b, molmo_weights *w, const molmo_config *c) {
    int64_t W = c->vit_d_model, H = c->projector_hidden, P = c->patch_size;
    bind(b, &w->class_emb, 0, VIT "class_embedding", 0, 0, V1(W));
    bind(b, &w->pos_emb, 0, VIT "positional_embedding", 0, 0, V2(c->vit_n_pos, W));
    bind(b, &w->patch_emb, 0, VIT "patch_embedding.weight", 0, 0, V2(W, P * P * 3));
    bind(b, &w->pre_ln_w, 0, VIT "pre_ln.weight", 0, 0, V1(W));
    bind(b, &w->pre_ln_b, 0, VIT "pre_ln.bias", 0, 0, V1(W));
    for (int i = 0; i < c->vit_n_layers; i++) bind_vit_layer(b, &w->vit[i], c, i);
    bind(b, &w->pad_embed, 0, VB "pad_embed", 0, 0, V2(2, 2 * W));
    bind(b, &w->pool_wq, 0, VB "image_pooling_2d.wq.weight", 0, 0, V2(W, 2 * W));
    bind(b, &w->pool_bq, 0, VB "image_pooling_2d.wq.bias", 0, 0, V1(W));
    bind(b, &w->pool_wk, 0, VB "image_pooling_2d.wk.weight", 0, 0, V2(W, 2 * W));
    bind(b, &w->pool_bk, 0, VB "image_pooling_2d.wk.bias", 0, 0, V1(W));
    bind(b, &w->pool_wv, 0, VB "image_pooling_2d.wv.weight", 0, 0, V2(W, 2 * W));
    bind(b, &w->pool_bv, 0, VB "image_pooling_2d.wv.bias", 0, 0, V1(W));
    bind(b, &w->pool_wo, 0, VB "image_pooling_2d.wo.weight", 0, 0, V2(W, W));
    bind(b, &w->pool_bo, 0, VB "image_pooling_2d.wo.bias", 0, 0, V1(W));
    bind(b, &w->proj_w1, 0, VB "image_projector.w1.weight", 0, 0, V2(H, W));
    bind(b, &w->proj_w3, 0, VB "image_projector.w3.weight", 0, 0, V2(H, W));
    bind(b, &w->proj_w2, 0, VB "image_projector.w2.weight", 0, 0, V2(c->d_model, H));
}

/* Parameter counts by part, over the tensors that were bound. */
static void count_params(molmo_weights *w, const molmo_safetensors *st, const unsigned char *used) {
    for (int i = 0; i < st->n_tensors; i++) {
        if (!used[i]) {
            w->n_unused++;
            continue;
        }
        const molmo_st_tensor *t = &st->tensors[i];
        if (!strncmp(t->name, VIT, strlen(VIT)))
            w->n_params_vision += t->n_elements;
        else if (!strncmp(t->name, VB, strlen(VB)))
            w->n_params_connector += t->n_elements;
        else
            w->n_params_llm += t->n_elements;
    }
}

static molmo_status alloc_layers(molmo_weights *w, const molmo_config *c, molmo_error *err) {
    w->layers = molmo_calloc((size_t)c->n_layers, sizeof *w->layers);
    w->vit = molmo_calloc((size_t)c->vit_n_layers, sizeof *w->vit);
    if (!w->layers || !w->vit) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    for (int i = 0; c->n_experts && i < c->n_layers; i++) {
        w->layers[i].experts = molmo_calloc((size_t)c->n_experts, sizeof(molmo_expert));
        if (!w->layers[i].experts) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    }
    return MOLMO_OK;
}

/* Binds (or, in enumerate mode, lists) every tensor of the configuration. */
static void bind_all(binder *b, molmo_weights *w, const molmo_config *c) {
    const molmo_name_table *n = molmo_arch(c->family)->names;
    int64_t d = c->d_model;
    bind(b, &w->wte, 0, n->wte, 0, 0, V2(c->embedding_size, d));
    bind(b, &w->wte_new, 0, n->wte_new, 0, 0, V2(c->n_new_embeddings, d));
    for (int i = 0; i < c->n_layers; i++) bind_llm_layer(b, &w->layers[i], c, n, i);
    bind(b, &w->ln_f, 0, n->ln_f, 0, 0, V1(d));
    bind(b, &w->lm_head, 0, n->lm_head, 0, 0, V2(c->embedding_size, d));
    bind_vision(b, w, c);
}

static float small_value(const molmo_tensor *t, size_t i) {
    const unsigned char *p = t->data;
    uint16_t h;
    float f;
    switch (t->dtype) {
    case MOLMO_DTYPE_F32: memcpy(&f, p + 4 * i, 4); return f;
    case MOLMO_DTYPE_BF16: memcpy(&h, p + 2 * i, 2); return molmo_bf16_to_f32(h);
    default: memcpy(&h, p + 2 * i, 2); return molmo_f16_to_f32(h);
    }
}

static size_t n_elems(const molmo_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Norm weights, biases and the small embedding tables are read as f32 arrays by the model
 * code. Where a checkpoint stores them as bf16/f16 (or a file misaligns them), they get an
 * exact f32 copy here, once at load: a few MB at most, while the large matrices stay in their
 * stored dtype. */
static molmo_status small_to_f32(binder *b, molmo_weights *w) {
    remember_small(b, &w->class_emb);
    remember_small(b, &w->pos_emb);
    remember_small(b, &w->pad_embed);
    if (b->status != MOLMO_OK) return b->status;
    size_t total = 0;
    for (int i = 0; i < b->n_small; i++) {
        molmo_tensor *t = b->small[i];
        if (t->data && (t->dtype != MOLMO_DTYPE_F32 || (uintptr_t)t->data % 4)) total += n_elems(t);
    }
    if (total == 0) return MOLMO_OK;
    w->f32_store = molmo_calloc(total, sizeof(float));
    if (!w->f32_store) return molmo_err(b->err, MOLMO_ERR_NOMEM, "out of memory");
    float *dst = w->f32_store;
    for (int i = 0; i < b->n_small; i++) {
        molmo_tensor *t = b->small[i];
        if (!t->data || (t->dtype == MOLMO_DTYPE_F32 && (uintptr_t)t->data % 4 == 0)) continue;
        size_t n = n_elems(t);
        for (size_t k = 0; k < n; k++) dst[k] = small_value(t, k);
        t->data = dst;
        t->dtype = MOLMO_DTYPE_F32;
        dst += n;
    }
    return MOLMO_OK;
}

molmo_status molmo_weights_bind(molmo_weights *w, const molmo_config *c,
                                const molmo_safetensors *st, molmo_error *err) {
    memset(w, 0, sizeof *w);
    binder b = {.st = st, .err = err, .status = MOLMO_OK};
    b.used = molmo_calloc(st->n_tensors ? (size_t)st->n_tensors : 1, 1);
    if (!b.used) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    b.status = alloc_layers(w, c, err);
    if (b.status == MOLMO_OK) bind_all(&b, w, c);
    if (b.status == MOLMO_OK) count_params(w, st, b.used);
    if (b.status == MOLMO_OK) b.status = small_to_f32(&b, w);
    molmo_free(b.used);
    molmo_free(b.small);
    if (b.status != MOLMO_OK) molmo_weights_free(w, c);
    return b.status;
}

molmo_status molmo_weights_enumerate(const molmo_config *c, molmo_weights_visit_fn visit,
                                     void *user, molmo_error *err) {
    molmo_weights w;
    memset(&w, 0, sizeof w);
    binder b = {.visit = visit, .visit_user = user, .err = err, .status = MOLMO_OK};
    b.status = alloc_layers(&w, c, err);
    if (b.status == MOLMO_OK) bind_all(&b, &w, c);
    molmo_free(b.small);
    molmo_weights_free(&w, c);
    return b.status;
}

void molmo_weights_each_matrix(molmo_weights *w, const molmo_config *c,
                               molmo_weights_matrix_fn fn, void *user) {
    molmo_tensor *one[] = {&w->lm_head, &w->pool_wq, &w->pool_wk, &w->pool_wv, &w->pool_wo,
                           &w->proj_w1, &w->proj_w2, &w->proj_w3};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        if (one[i]->data) fn(user, one[i]);
    for (int i = 0; w->layers && i < c->n_layers; i++) {
        molmo_llm_layer *L = &w->layers[i];
        molmo_tensor *t[] = {&L->att_proj, &L->attn_out, &L->ff_proj, &L->ff_out};
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
            if (t[k]->data) fn(user, t[k]);
        for (int e = 0; L->experts && e < c->n_experts; e++) {
            molmo_expert *x = &L->experts[e];
            molmo_tensor *et[] = {&x->gate, &x->up, &x->down};
            for (size_t k = 0; k < 3; k++)
                if (et[k]->data) fn(user, et[k]);
        }
    }
    for (int i = 0; w->vit && i < c->vit_n_layers; i++) {
        molmo_vit_layer *L = &w->vit[i];
        molmo_tensor *t[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w2};
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
            if (t[k]->data) fn(user, t[k]);
    }
}

void molmo_weights_free(molmo_weights *w, const molmo_config *c) {
    if (w->layers)
        for (int i = 0; i < c->n_layers; i++) molmo_free(w->layers[i].experts);
    molmo_free(w->layers);
    molmo_free(w->vit);
    molmo_free(w->f32_store);
    memset(w, 0, sizeof *w);
}

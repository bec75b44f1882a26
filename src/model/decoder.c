/* decoder.c — one decoder block implementation for every Molmo LLM (fact sheet §2.2), reading
 * top to bottom; it branches only where the config says the architectures differ:
 *   pre-norm (MolmoE, 7B-D, 72B) or norm-after (7B-O), fused QKV with optional bias, QK-norm
 *   over the whole projection before RoPE, GQA, half-split RoPE, dense SwiGLU
 *   (silu(second half) * first half of ff_proj) or MoE (moe.c).
 * Mirrors HF modeling_molmo.py MolmoSequentialBlock / modeling_molmoe.py. */
#define _DEFAULT_SOURCE
#include "model/decoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/moe.h"

struct molmo_decoder {
    const molmo_model *m;
    int n_ctx, n_batch, n_past;
    int n_threads;             /* of the pool that will run it: sizes the attention scratch */
    int d, kvd, qkvd, ff;      /* widths: model, kv (n_kv*hd), fused qkv, fused ff_proj */
    void *kv;                  /* [n_layers][2][n_kv_heads][n_ctx][hd] of kv_type, anonymous
                                  mapping */
    size_t kv_bytes;
    molmo_dtype kv_type;       /* F32 (the official model's values) or F16 (half the memory and
                                  the decode attention's reads; K and V rounded to half) */
    int bf16x;                 /* bf16 activations (molmo_decoder_set_bf16_activations) */
    float *rope_cos, *rope_sin; /* [n_ctx, hd/2] */
    int *pos;                  /* [n_batch] */
    float *x, *h, *qkv, *att, *ffb; /* workspace for n_batch tokens */
    float *scratch;
    molmo_arena ws;            /* holds the workspace buffers above */
    molmo_moe *moe;
};

static const float *f32(const molmo_tensor *t) { return t->data; }

/* Element size of the cache. */
static size_t kv_es(const molmo_decoder *d) { return molmo_dtype_size(d->kv_type); }

/* The K (which 0) or V (1) cache of a layer. */
static char *kv_at(const molmo_decoder *d, int layer, int which) {
    return (char *)d->kv +
           ((size_t)layer * 2 + (size_t)which) * (size_t)d->n_ctx * (size_t)d->kvd * kv_es(d);
}

/* hd values of a K or V row into the cache (converted to half for an f16 cache). */
static void kv_store(const molmo_decoder *d, char *dst, const float *src, int hd) {
    if (d->kv_type == MOLMO_DTYPE_F16)
        molmo_op_to_f16((uint16_t *)dst, src, (size_t)hd);
    else
        memcpy(dst, src, (size_t)hd * sizeof(float));
}

static molmo_status alloc_workspace(molmo_decoder *d, molmo_error *err) {
    const molmo_config *c = &d->m->cfg;
    size_t B = (size_t)d->n_batch;
    size_t ffw = c->n_experts ? 0 : (size_t)d->ff;
    size_t counts[] = {B * d->d, B * d->d, B * d->qkvd, B * d->d, B * ffw,
                       molmo_op_attention_scratch(d->n_ctx, d->n_threads)};
    float **slots[] = {&d->x, &d->h, &d->qkv, &d->att, &d->ffb, &d->scratch};
    d->pos = molmo_calloc(B, sizeof(int));
    if (!d->pos ||
        molmo_arena_carve_f32(&d->ws, counts, slots, (int)(sizeof slots / sizeof slots[0])) != 0)
        return molmo_err(err, MOLMO_ERR_NOMEM, "decoder workspace: out of memory");
    return MOLMO_OK;
}

molmo_status molmo_decoder_create(const molmo_model *m, int n_ctx, int n_batch, int n_threads,
                                  molmo_dtype kv_type, molmo_decoder **out, molmo_error *err) {
    const molmo_config *c = &m->cfg;
    *out = NULL;
    if (kv_type != MOLMO_DTYPE_F32 && kv_type != MOLMO_DTYPE_F16)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "kv_type %s: the KV cache holds f32 or f16",
                         molmo_dtype_name(kv_type));
    molmo_decoder *d = molmo_calloc(1, sizeof *d);
    if (!d) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    d->m = m;
    d->kv_type = kv_type;
    d->n_ctx = n_ctx > 0 ? n_ctx : c->max_position_embeddings;
    d->n_batch = n_batch > 0 ? n_batch : 1024;
    d->n_threads = n_threads > 0 ? n_threads : 1;
    if (d->n_batch > d->n_ctx) d->n_batch = d->n_ctx;
    d->d = c->d_model;
    d->kvd = c->n_kv_heads * c->head_dim;
    d->qkvd = d->d + 2 * d->kvd;
    d->ff = 2 * c->d_ff;
    molmo_status s = MOLMO_OK;
    if (d->n_ctx > c->max_position_embeddings)
        s = molmo_err(err, MOLMO_ERR_INVALID_ARG, "context of %d tokens exceeds the model's %d "
                      "positions", d->n_ctx, c->max_position_embeddings);
    /* The KV cache is mapped, not calloc'd: untouched positions cost no memory. */
    d->kv_bytes = (size_t)c->n_layers * 2 * (size_t)d->n_ctx * (size_t)d->kvd * kv_es(d);
    if (s == MOLMO_OK) {
        void *p = mmap(NULL, d->kv_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
                       MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            s = molmo_err(err, MOLMO_ERR_NOMEM, "KV cache of %zu MiB cannot be mapped",
                          d->kv_bytes >> 20);
        else
            d->kv = p;
    }
    if (s == MOLMO_OK)
        s = molmo_rope_table(&d->rope_cos, &d->rope_sin, d->n_ctx, c->head_dim, c->rope_theta,
                             err);
    if (s == MOLMO_OK) s = alloc_workspace(d, err);
    if (s == MOLMO_OK && c->n_experts) s = molmo_moe_create(m, d->n_batch, &d->moe, err);
    if (s != MOLMO_OK) {
        molmo_decoder_free(d);
        return s;
    }
    *out = d;
    return MOLMO_OK;
}

void molmo_decoder_free(molmo_decoder *d) {
    if (!d) return;
    if (d->kv) munmap(d->kv, d->kv_bytes);
    molmo_moe_free(d->moe);
    molmo_free(d->rope_cos);
    molmo_free(d->rope_sin);
    molmo_arena_release(&d->ws);
    molmo_free(d->pos);
    molmo_free(d);
}

int molmo_decoder_n_ctx(const molmo_decoder *d) { return d->n_ctx; }

void molmo_decoder_set_bf16_activations(molmo_decoder *d, int on) {
    d->bf16x = on != 0;
    if (d->moe) molmo_moe_set_bf16_activations(d->moe, on);
}

/* y[n, N] = x[n, K] · wᵀ (+ b). With bf16 activations x may first be rounded to bf16 in place
 * (molmo_op_bf16_rule): callers pass temporaries (normed rows, attention output, the gated
 * hidden rows), or copy the residual stream into d->h first (norm-after layers, see below). */
static void mm(molmo_decoder *d, molmo_pool *pool, float *y, int ldy, float *x, int ldx,
               const molmo_tensor *w, const float *b, int n, int N, int K) {
    molmo_op_matmul_act(pool, d->bf16x, y, ldy, x, ldx, w->data, w->dtype, b, n, N, K);
}

/* The input of a sub-layer whose first matmul has weights of type wt: the normed rows in d->h,
 * or for a norm-after layer the residual stream itself, which bf16 activations must not round:
 * where the rule would round it, a copy in d->h (free until the sub-layer's output projection
 * writes it). */
static float *sublayer_input(molmo_decoder *d, int n, molmo_dtype wt) {
    if (!d->m->cfg.norm_after) return d->h;
    if (!molmo_op_bf16_rule(d->bf16x, wt, n)) return d->x;
    memcpy(d->h, d->x, (size_t)n * (size_t)d->d * sizeof(float));
    return d->h;
}

int molmo_decoder_n_past(const molmo_decoder *d) { return d->n_past; }

void molmo_decoder_truncate(molmo_decoder *d, int n_keep) {
    if (n_keep >= 0 && n_keep <= d->n_past) d->n_past = n_keep;
}

molmo_status molmo_decoder_embed(const molmo_model *m, const int *ids, int n, float *out,
                                 molmo_error *err) {
    const molmo_config *c = &m->cfg;
    const molmo_weights *w = &m->w;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        float *row = out + (size_t)i * c->d_model;
        if (id >= 0 && id < c->embedding_size)
            molmo_op_gather_rows(row, w->wte.data, w->wte.dtype, c->d_model, &id, 1);
        else if (id >= c->embedding_size && id < c->embedding_size + c->n_new_embeddings) {
            int r = id - c->embedding_size;
            molmo_op_gather_rows(row, w->wte_new.data, w->wte_new.dtype, c->d_model, &r, 1);
        } else
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "token id %d at position %d is outside "
                             "the %d embedding rows", id, i,
                             c->embedding_size + c->n_new_embeddings);
    }
    return MOLMO_OK;
}

static void trace_row(molmo_trace_fn fn, void *user, const float *data, int64_t rows,
                      int64_t cols, const char *fmt, int i) {
    if (!fn) return;
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    int64_t shape[2] = {rows, cols};
    fn(user, name, data, 2, shape);
}

/* What follows the QKV projection for tokens [t0, t1) of the chunk: QK norm, RoPE, and the
 * copy of K and V into the cache. Per token, so threads split the tokens (same bits). */
typedef struct qkv_task {
    molmo_decoder *d;
    const molmo_llm_layer *L;
    int layer, n;
} qkv_task;

static void qkv_tokens(const qkv_task *w, int t0, int t1) {
    molmo_decoder *d = w->d;
    const molmo_config *c = &d->m->cfg;
    const int D = d->d, K = d->kvd, Q = d->qkvd, hd = c->head_dim, n = t1 - t0;
    float *q = d->qkv + (size_t)t0 * Q, *k = q + D, *v = q + D + K;
    if (c->qk_norm) { /* over the whole projection, not per head (fact sheet §2.2 step 3) */
        for (int t = 0; t < n; t++) {
            molmo_op_rmsnorm(NULL, q + (size_t)t * Q, q + (size_t)t * Q, f32(&w->L->q_norm), 1, D,
                             c->norm_eps);
            molmo_op_rmsnorm(NULL, k + (size_t)t * Q, k + (size_t)t * Q, f32(&w->L->k_norm), 1, K,
                             c->norm_eps);
        }
    }
    molmo_op_rope(q, Q, n, c->n_heads, hd, d->pos + t0, d->rope_cos, d->rope_sin);
    molmo_op_rope(k, Q, n, c->n_kv_heads, hd, d->pos + t0, d->rope_cos, d->rope_sin);
    if (d->bf16x) /* bf16 activations: q, k, v as bf16 values, in the cache too */
        molmo_op_round_bf16(NULL, q, n, (size_t)Q, (size_t)Q);
    char *kc = kv_at(d, w->layer, 0), *vc = kv_at(d, w->layer, 1);
    const size_t es = kv_es(d);
    /* Head-major: each kv head's keys are one contiguous run that decode attention streams
     * (rows of all heads side by side put every key of a head on its own page, 4-8 KiB apart,
     * which the hardware prefetchers do not follow). */
    for (int g = 0; g < c->n_kv_heads; g++) {
        const size_t head = (size_t)g * (size_t)d->n_ctx * (size_t)hd;
        for (int t = 0; t < n; t++) {
            const size_t src = (size_t)t * Q + (size_t)g * hd;
            const size_t dst = head + (size_t)d->pos[t0 + t] * hd;
            kv_store(d, kc + dst * es, k + src, hd);
            kv_store(d, vc + dst * es, v + src, hd);
        }
    }
}

static void qkv_worker(void *arg, int ith, int nth) {
    const qkv_task *w = arg;
    int t0, t1;
    molmo_pool_range(w->n, ith, nth, &t0, &t1);
    if (t0 < t1) qkv_tokens(w, t0, t1);
}

/* Attention sub-layer for n tokens at positions d->pos: returns its output in d->h. */
static void attention(molmo_decoder *d, molmo_pool *pool, const molmo_llm_layer *L, int layer,
                      int n) {
    const molmo_config *c = &d->m->cfg;
    int D = d->d, Q = d->qkvd, hd = c->head_dim;
    if (!c->norm_after) molmo_op_rmsnorm(pool, d->h, d->x, f32(&L->attn_norm), n, D, c->norm_eps);
    mm(d, pool, d->qkv, Q, sublayer_input(d, n, L->att_proj.dtype), D, &L->att_proj,
       c->qkv_bias ? f32(&L->att_proj_bias) : NULL, n, Q, D);
    const qkv_task w = {d, L, layer, n};
    if (n < 16) /* decode: not worth waking the pool */
        qkv_tokens(&w, 0, n);
    else
        molmo_pool_run(pool, qkv_worker, (void *)&w);
    molmo_op_attention_ldh(pool, d->att, D, d->qkv, Q, kv_at(d, layer, 0), hd, kv_at(d, layer, 1),
                           hd, d->kv_type, (size_t)d->n_ctx * hd, n, d->pos[0] + n, c->n_heads,
                           c->n_kv_heads, hd, 1.0f / sqrtf((float)hd), 1, d->pos[0], d->bf16x,
                           d->scratch);
    mm(d, pool, d->h, D, d->att, D, &L->attn_out, NULL, n, D, D);
    if (c->norm_after) molmo_op_rmsnorm(pool, d->h, d->h, f32(&L->attn_norm), n, D, c->norm_eps);
}

/* Feed-forward sub-layer (dense SwiGLU or MoE): returns its output in d->h. */
static void feed_forward(molmo_decoder *d, molmo_pool *pool, const molmo_llm_layer *L, int layer,
                         int n, molmo_trace_fn trace, void *tu) {
    const molmo_config *c = &d->m->cfg;
    int D = d->d, F = c->d_ff;
    if (!c->norm_after) molmo_op_rmsnorm(pool, d->h, d->x, f32(&L->ff_norm), n, D, c->norm_eps);
    if (c->n_experts) { /* the router reads the input unrounded; moe.c rounds its own copy */
        molmo_moe_forward(d->moe, pool, L, c->norm_after ? d->x : d->h, n, d->att, layer, trace,
                          tu);
        memcpy(d->h, d->att, (size_t)n * D * sizeof(float));
    } else {
        mm(d, pool, d->ffb, 2 * F, sublayer_input(d, n, L->ff_proj.dtype), D, &L->ff_proj, NULL,
           n, 2 * F, D);
        /* rows: [up | gate] -> silu(gate) * up, in place */
        molmo_op_silu_mul_rows(pool, d->ffb, d->ffb + F, d->ffb, n, (size_t)F, 2 * (size_t)F);
        mm(d, pool, d->h, D, d->ffb, 2 * F, &L->ff_out, NULL, n, D, F);
    }
    if (c->norm_after) molmo_op_rmsnorm(pool, d->h, d->h, f32(&L->ff_norm), n, D, c->norm_eps);
}

/* One chunk of at most n_batch tokens. */
static void forward_chunk(molmo_decoder *d, molmo_pool *pool, const float *embeds, int n,
                          int last_chunk, molmo_trace_fn trace, void *tu) {
    const molmo_config *c = &d->m->cfg;
    int D = d->d;
    memcpy(d->x, embeds, (size_t)n * D * sizeof(float));
    for (int t = 0; t < n; t++) d->pos[t] = d->n_past + t;
    for (int i = 0; i < c->n_layers; i++) {
        const molmo_llm_layer *L = &d->m->w.layers[i];
        attention(d, pool, L, i, n);
        molmo_op_add(pool, d->x, d->h, (size_t)n * D);
        feed_forward(d, pool, L, i, n, trace, tu);
        molmo_op_add(pool, d->x, d->h, (size_t)n * D);
        if (last_chunk)
            trace_row(trace, tu, d->x + (size_t)(n - 1) * D, 1, D, "llm.block%d.last", i);
    }
    d->n_past += n;
}

molmo_status molmo_decoder_forward(molmo_decoder *d, molmo_pool *pool, const float *embeds, int n,
                                   float *logits, molmo_trace_fn trace, void *tu,
                                   molmo_error *err) {
    if (n <= 0) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "decoder: no tokens");
    if (n > d->n_ctx - d->n_past)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%d tokens do not fit the context: %d of %d "
                         "positions are used", n, d->n_past, d->n_ctx);
    const molmo_config *c = &d->m->cfg;
    int D = d->d;
    for (int done = 0; done < n;) {
        int chunk = n - done < d->n_batch ? n - done : d->n_batch;
        forward_chunk(d, pool, embeds + (size_t)done * D, chunk, done + chunk == n, trace, tu);
        done += chunk;
    }
    /* final norm and head on the last position only */
    int last = (n - 1) % d->n_batch;
    float *hid = d->h;
    molmo_op_rmsnorm(NULL, hid, d->x + (size_t)last * D, f32(&d->m->w.ln_f), 1, D, c->norm_eps);
    trace_row(trace, tu, hid, 1, D, "llm.hidden", 0); /* the format ignores the index */
    if (logits) {
        mm(d, pool, logits, c->embedding_size, hid, D, &d->m->w.lm_head, NULL, 1,
           c->embedding_size, D);
        trace_row(trace, tu, logits, 1, c->embedding_size, "llm.logits", 0);
    }
    return MOLMO_OK;
}

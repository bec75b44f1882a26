/* moe.c — see moe.h. Mirrors modeling_molmoe.py MolmoeSparseMoeBlock. */
#include "model/moe.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/error.h"
#include "kernels/ops.h"

struct molmo_moe {
    const molmo_model *m;
    int n_batch, E, k, D, F;
    float *probs;  /* [B, E] router probabilities */
    int *top_ids;  /* [B, k] */
    float *top_w;  /* [B, k] */
    float *ids_f;  /* [B, k] ids as floats, for the trace */
    int *rows;     /* [B] tokens routed to the current expert */
    float *row_w;  /* [B] their weights */
    float *xb, *g, *u, *y; /* [B, D], [B, F], [B, F], [B, D] */
    molmo_arena ws;        /* holds the float buffers above */
};

molmo_status molmo_moe_create(const molmo_model *m, int n_batch, molmo_moe **out,
                              molmo_error *err) {
    const molmo_config *c = &m->cfg;
    *out = NULL;
    molmo_moe *e = molmo_calloc(1, sizeof *e);
    if (!e) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    e->m = m;
    e->n_batch = n_batch;
    e->E = c->n_experts;
    e->k = c->top_k;
    e->D = c->d_model;
    e->F = c->d_ff;
    size_t B = (size_t)n_batch;
    size_t counts[] = {B * e->E, B * e->k, B * e->k, B, B * e->D, B * e->D, B * e->F, B * e->F};
    float **slots[] = {&e->probs, &e->top_w, &e->ids_f, &e->row_w, &e->xb, &e->y, &e->g, &e->u};
    e->top_ids = molmo_calloc(B * e->k, sizeof(int));
    e->rows = molmo_calloc(B, sizeof(int));
    if (!e->top_ids || !e->rows ||
        molmo_arena_carve_f32(&e->ws, counts, slots, (int)(sizeof slots / sizeof slots[0])) != 0) {
        molmo_moe_free(e);
        return molmo_err(err, MOLMO_ERR_NOMEM, "MoE workspace: out of memory");
    }
    *out = e;
    return MOLMO_OK;
}

void molmo_moe_free(molmo_moe *e) {
    if (!e) return;
    molmo_arena_release(&e->ws);
    molmo_free(e->top_ids);
    molmo_free(e->rows);
    molmo_free(e);
}

/* The k largest probabilities of one token, descending; ties keep the lower expert first. */
static void top_k(const float *p, int E, int k, int *ids, float *w) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j && !taken; i++) taken = ids[i] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        ids[j] = best;
        w[j] = p[best];
    }
}

static void trace_topk(molmo_moe *e, molmo_trace_fn trace, void *tu, int n, int layer) {
    if (!trace) return;
    for (int i = 0; i < n * e->k; i++) e->ids_f[i] = (float)e->top_ids[i];
    char name[64];
    int64_t shape[2] = {n, e->k};
    snprintf(name, sizeof name, "llm.block%d.topk_ids", layer);
    trace(tu, name, e->ids_f, 2, shape);
    snprintf(name, sizeof name, "llm.block%d.topk_weights", layer);
    trace(tu, name, e->top_w, 2, shape);
}

/* Runs expert x on the tokens routed to it and adds weight * output into out. */
static void run_expert(molmo_moe *e, molmo_pool *pool, const molmo_expert *x, const float *in,
                       int n_rows, float *out) {
    int D = e->D, F = e->F;
    for (int r = 0; r < n_rows; r++)
        memcpy(e->xb + (size_t)r * D, in + (size_t)e->rows[r] * D, (size_t)D * sizeof(float));
    molmo_op_matmul(pool, e->g, F, e->xb, D, x->gate.data, x->gate.dtype, NULL, n_rows, F, D);
    molmo_op_matmul(pool, e->u, F, e->xb, D, x->up.data, x->up.dtype, NULL, n_rows, F, D);
    molmo_op_silu_mul(e->g, e->g, e->u, (size_t)n_rows * F);
    molmo_op_matmul(pool, e->y, D, e->g, F, x->down.data, x->down.dtype, NULL, n_rows, D, F);
    for (int r = 0; r < n_rows; r++)
        molmo_op_scale_add(out + (size_t)e->rows[r] * D, e->y + (size_t)r * D, e->row_w[r],
                           (size_t)D);
}

void molmo_moe_forward(molmo_moe *e, molmo_pool *pool, const molmo_llm_layer *L, const float *in,
                       int n, float *out, int layer, molmo_trace_fn trace, void *tu) {
    int E = e->E, k = e->k;
    molmo_op_matmul(pool, e->probs, E, in, e->D, L->router.data, L->router.dtype, NULL, n, E,
                    e->D);
    molmo_op_softmax_rows(e->probs, n, E);
    for (int t = 0; t < n; t++)
        top_k(e->probs + (size_t)t * E, E, k, e->top_ids + (size_t)t * k, e->top_w + (size_t)t * k);
    trace_topk(e, trace, tu, n, layer);
    memset(out, 0, (size_t)n * e->D * sizeof(float));
    for (int x = 0; x < E; x++) {
        int n_rows = 0;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
                if (e->top_ids[t * k + j] == x) {
                    e->rows[n_rows] = t;
                    e->row_w[n_rows++] = e->top_w[t * k + j];
                }
        if (n_rows) run_expert(e, pool, &L->experts[x], in, n_rows, out);
    }
}

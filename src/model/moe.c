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
    int bf16x;     /* bf16 activations (molmo_moe_set_bf16_activations; molmo_op_bf16_rule) */
    float *probs;  /* [B, E] router probabilities */
    int *top_ids;  /* [B, k] */
    float *top_w;  /* [B, k] */
    float *ids_f;  /* [B, k] ids as floats, for the trace */
    int *start;    /* [E + 1] where each expert's entries begin in rows/row_w */
    int *rows;     /* [B * k] the tokens routed to each expert, by expert, tokens ascending */
    float *row_w;  /* [B * k] their weights */
    float *xb, *g, *u, *y; /* [B, D], [B, F], [B, F], [B, D]: one group of experts' rows */
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
    size_t counts[] = {B * e->E, B * e->k, B * e->k, B * e->k, B * e->D, B * e->D, B * e->F, B * e->F};
    float **slots[] = {&e->probs, &e->top_w, &e->ids_f, &e->row_w, &e->xb, &e->y, &e->g, &e->u};
    e->top_ids = molmo_calloc(B * e->k, sizeof(int));
    e->rows = molmo_calloc(B * e->k, sizeof(int));
    e->start = molmo_calloc((size_t)e->E + 1, sizeof(int));
    if (!e->top_ids || !e->rows || !e->start ||
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
    molmo_free(e->start);
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

/* Sorts the n x k routing choices by expert (counting sort; tokens stay ascending within an
 * expert, the order in which the reference's index_add_ sees them). */
static void sort_by_expert(molmo_moe *e, int n) {
    const int E = e->E, k = e->k;
    memset(e->start, 0, (size_t)(E + 1) * sizeof(int));
    for (int i = 0; i < n * k; i++) e->start[e->top_ids[i] + 1]++;
    for (int x = 0; x < E; x++) e->start[x + 1] += e->start[x];
    /* start[x] serves as expert x's write cursor, then is shifted back to its beginning */
    for (int t = 0; t < n; t++)
        for (int j = 0; j < k; j++) {
            const int x = e->top_ids[t * k + j];
            e->rows[e->start[x]] = t;
            e->row_w[e->start[x]++] = e->top_w[t * k + j];
        }
    for (int x = E; x > 0; x--) e->start[x] = e->start[x - 1];
    e->start[0] = 0;
}

/* The row copies around a group of experts, on all threads: gather the group's input rows
 * into xb (entries split over the threads), and add weight * output into out (tokens split
 * over the threads: a thread adds all of its tokens' entries, in entry order, so each token
 * still receives its experts in expert order, like the one-thread loop). */
typedef struct rows_task {
    molmo_moe *e;
    const float *in;
    float *out;
    int base, n_rows, n_tok;
} rows_task;

static void gather_worker(void *arg, int ith, int nth) {
    const rows_task *t = arg;
    const size_t D = (size_t)t->e->D;
    int r0, r1;
    molmo_pool_range(t->n_rows, ith, nth, &r0, &r1);
    for (int r = r0; r < r1; r++)
        memcpy(t->e->xb + (size_t)r * D, t->in + (size_t)t->e->rows[t->base + r] * D,
               D * sizeof(float));
}

static void scatter_worker(void *arg, int ith, int nth) {
    const rows_task *t = arg;
    const size_t D = (size_t)t->e->D;
    int t0, t1;
    molmo_pool_range(t->n_tok, ith, nth, &t0, &t1);
    for (int r = 0; r < t->n_rows; r++) {
        const int tok = t->e->rows[t->base + r];
        if (tok >= t0 && tok < t1)
            molmo_op_scale_add(t->out + (size_t)tok * D, t->e->y + (size_t)r * D,
                               t->e->row_w[t->base + r], D);
    }
}

/* Pool runs for the copies only when there is enough to copy. */
static void run_rows(molmo_pool *pool, molmo_pool_fn fn, rows_task *t) {
    if ((size_t)t->n_rows * (size_t)t->e->D >= 65536)
        molmo_pool_run(pool, fn, t);
    else
        fn(t, 0, 1);
}

/* At most this many experts run together (the job lists below are on the stack). */
#define GROUP_MAX 32

/* bf16 activations: rounds the rows of buf (width floats each; row r is entry base + r) that
 * belong to the experts of [x0, x1) whose products take bf16 inputs (round[x - x0]), a run of
 * consecutive such experts at a time (experts without rows do not break a run). */
static void round_expert_rows(molmo_pool *pool, const molmo_moe *e, const unsigned char *round,
                              int x0, int x1, int base, float *buf, int width) {
    for (int x = x0; x < x1;) {
        if (!round[x - x0]) {
            x++;
            continue;
        }
        int end = x;
        while (end < x1 && (round[end - x0] || e->start[end + 1] == e->start[end])) end++;
        const int r0 = e->start[x] - base, r1 = e->start[end] - base;
        molmo_op_round_bf16(pool, buf + (size_t)r0 * width, r1 - r0, (size_t)width, (size_t)width);
        x = end;
    }
}

/* Experts [x0, x1) (x1 - x0 <= GROUP_MAX), whose entries together fit the workspace: gate and
 * up of all of them in one parallel run, then all downs, then weight * output added into out
 * in expert order. Row r of xb/g/u/y is entry base + r. */
static void run_experts(molmo_moe *e, molmo_pool *pool, const molmo_llm_layer *L, const float *in,
                        int n_tok, int x0, int x1, float *out) {
    const int D = e->D, F = e->F, base = e->start[x0], n_rows = e->start[x1] - base;
    molmo_matmul_job up[2 * GROUP_MAX], down[GROUP_MAX];
    unsigned char round[GROUP_MAX];
    int n_up = 0, n_down = 0, any = 0;
    rows_task rt = {e, in, out, base, n_rows, n_tok};
    run_rows(pool, gather_worker, &rt);
    /* bf16 activations: the gathered rows and the gated hidden rows are temporaries; whether an
     * expert's products take them rounded depends on its dtype and, quantized, its rows */
    for (int x = x0; x < x1; x++) {
        const int m = e->start[x + 1] - e->start[x];
        round[x - x0] = m > 0 && molmo_op_bf16_rule(e->bf16x, L->experts[x].gate.dtype, m);
        any |= round[x - x0];
    }
    if (any) round_expert_rows(pool, e, round, x0, x1, base, e->xb, D);
    for (int x = x0; x < x1; x++) {
        const size_t off = (size_t)(e->start[x] - base);
        const int m = e->start[x + 1] - e->start[x], r = round[x - x0];
        const molmo_expert *ex = &L->experts[x];
        if (m == 0) continue;
        up[n_up++] = (molmo_matmul_job){e->g + off * F, F, e->xb + off * D, D, ex->gate.data,
                                        ex->gate.dtype, NULL, m, F, D, r};
        up[n_up++] = (molmo_matmul_job){e->u + off * F, F, e->xb + off * D, D, ex->up.data,
                                        ex->up.dtype, NULL, m, F, D, r};
        down[n_down++] = (molmo_matmul_job){e->y + off * D, D, e->g + off * F, F, ex->down.data,
                                            ex->down.dtype, NULL, m, D, F, r};
    }
    molmo_op_matmul_many(pool, up, n_up);
    molmo_op_silu_mul(pool, e->g, e->g, e->u, (size_t)n_rows * F);
    if (any) round_expert_rows(pool, e, round, x0, x1, base, e->g, F);
    molmo_op_matmul_many(pool, down, n_down);
    run_rows(pool, scatter_worker, &rt);
}

void molmo_moe_set_bf16_activations(molmo_moe *e, int on) { e->bf16x = on != 0; }

void molmo_moe_forward(molmo_moe *e, molmo_pool *pool, const molmo_llm_layer *L, const float *in,
                       int n, float *out, int layer, molmo_trace_fn trace, void *tu) {
    int E = e->E, k = e->k;
    molmo_op_matmul(pool, e->probs, E, in, e->D, L->router.data, L->router.dtype, NULL, n, E,
                    e->D);
    molmo_op_softmax_rows(e->probs, n, E);
    for (int t = 0; t < n; t++)
        top_k(e->probs + (size_t)t * E, E, k, e->top_ids + (size_t)t * k, e->top_w + (size_t)t * k);
    trace_topk(e, trace, tu, n, layer);
    sort_by_expert(e, n);
    memset(out, 0, (size_t)n * e->D * sizeof(float));
    /* Groups of consecutive experts whose rows fit the workspace (an expert alone always fits:
     * a token picks an expert at most once, so it has at most n <= n_batch rows). */
    for (int x0 = 0; x0 < E;) {
        int x1 = x0 + 1;
        while (x1 < E && x1 - x0 < GROUP_MAX && e->start[x1 + 1] - e->start[x0] <= e->n_batch) x1++;
        if (e->start[x1] > e->start[x0]) run_experts(e, pool, L, in, n, x0, x1, out);
        x0 = x1;
    }
}

/* decode.c — the decode loop of molmo_generate: one token at a time from the KV cache, greedy
 * or sampled, stopping on EOS, stop strings, max_new_tokens or the caller's callback, with
 * streamed text that never splits a UTF-8 character or shows text a stop string takes back. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "model/generate.h"
#include "model/sample.h"

typedef struct answer {
    char *p;
    size_t n, cap;
    size_t skip;      /* 1 when the answer's leading space is dropped (fact sheet §7.1) */
    size_t emitted;   /* bytes already given to the callback */
    int started;
} answer;

static int append(answer *a, const char *s, size_t n) {
    if (a->n + n + 1 > a->cap) {
        size_t cap = (a->n + n + 1) * 2;
        char *p = molmo_realloc(a->p, cap);
        if (!p) return -1;
        a->p = p;
        a->cap = cap;
    }
    memcpy(a->p + a->n, s, n);
    a->n += n;
    a->p[a->n] = '\0';
    if (!a->started && a->n > 0) {
        a->started = 1;
        a->skip = a->emitted = a->p[0] == ' ';
    }
    return 0;
}

/* Cuts the answer at the first stop string; returns 1 when one was found. */
static int cut_at_stop(answer *a, const molmo_generate_params *p) {
    size_t best = a->n + 1;
    for (int i = 0; i < p->n_stop; i++) {
        const char *s = p->stop[i];
        size_t sl = strlen(s);
        if (!sl || a->n - a->skip < sl) continue;
        for (size_t at = a->skip; at + sl <= a->n && at < best; at++)
            if (!memcmp(a->p + at, s, sl)) best = at;
    }
    if (best > a->n) return 0;
    a->n = best;
    a->p[a->n] = '\0';
    return 1;
}

/* Bytes at the end that could still be the start of a stop string. */
static size_t held_back(const answer *a, const molmo_generate_params *p) {
    size_t hold = 0;
    for (int i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > hold; k--)
            if (k <= a->n - a->emitted && !memcmp(a->p + a->n - k, p->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Gives the callback what is final; returns non-zero when it asks to stop. */
static int emit(answer *a, const molmo_generate_params *p, int32_t token, int final) {
    size_t end = final ? a->n : a->n - held_back(a, p);
    if (end <= a->emitted) return 0;
    int stop = p->on_token ? p->on_token(p->user, token, a->p + a->emitted, end - a->emitted) : 0;
    a->emitted = end;
    return stop;
}

static molmo_status alloc_result(molmo_generation *g, const molmo_generate_params *p) {
    size_t n = (size_t)p->max_new_tokens + 1;
    g->tokens = molmo_calloc(n, sizeof *g->tokens);
    g->chosen = molmo_calloc(n, sizeof *g->chosen);
    g->top = molmo_calloc(n * (size_t)(p->top_logprobs > 0 ? p->top_logprobs : 1), sizeof *g->top);
    g->top_logprobs = p->top_logprobs;
    return g->tokens && g->chosen && g->top ? MOLMO_OK : MOLMO_ERR_NOMEM;
}

static void record_logprobs(molmo_context *c, molmo_generation *g, int32_t tok) {
    int K = g->top_logprobs, E = c->model->cfg.embedding_size;
    if (K <= 0) return;
    int ids[20];
    float lps[20];
    double lp = molmo_logprob_topk(c->logits, E, tok, K, ids, lps);
    g->chosen[g->n_tokens] = (molmo_token_logprob){tok, (float)lp};
    for (int k = 0; k < K; k++) g->top[(size_t)g->n_tokens * K + k] = (molmo_token_logprob){ids[k], lps[k]};
}

/* Feeds the token just generated so the next logits can be computed. */
static molmo_status feed(molmo_context *c, int32_t tok, float *x, molmo_error *err) {
    molmo_status s = molmo_decoder_embed(c->model, &tok, 1, x, err);
    if (s == MOLMO_OK)
        s = molmo_decoder_forward(c->dec, c->pool, x, 1, c->logits, NULL, NULL, err);
    if (s == MOLMO_OK) c->cached[c->n_cached++] = tok;
    return s;
}

typedef struct loop_state {
    molmo_sampler smp;
    molmo_detokenizer *detok;
    float *x;
    answer ans;
} loop_state;

static molmo_status loop(molmo_context *c, const molmo_generate_params *p, molmo_generation *g,
                         loop_state *st, molmo_error *err) {
    g->stop = MOLMO_STOP_LENGTH;
    for (int i = 0; i < p->max_new_tokens; i++) {
        int32_t tok = molmo_sample(&st->smp, c->logits);
        if (tok == c->model->eos_id) {
            g->stop = MOLMO_STOP_EOS;
            break;
        }
        record_logprobs(c, g, tok);
        g->tokens[g->n_tokens++] = tok;
        const char *piece;
        size_t len;
        molmo_status s = molmo_detokenizer_push(st->detok, tok, &piece, &len, err);
        if (s != MOLMO_OK) return s;
        if (append(&st->ans, piece, len) != 0) return molmo_err(err, MOLMO_ERR_NOMEM, "answer");
        if (cut_at_stop(&st->ans, p)) {
            g->stop = MOLMO_STOP_STRING;
            emit(&st->ans, p, tok, 1);
            return MOLMO_OK;
        }
        if (emit(&st->ans, p, tok, 0)) {
            g->stop = MOLMO_STOP_CANCELLED;
            return MOLMO_OK;
        }
        if (i + 1 == p->max_new_tokens) break;
        if ((s = feed(c, tok, st->x, err)) != MOLMO_OK) return s;
    }
    const char *rest;
    size_t len;
    molmo_status s = molmo_detokenizer_flush(st->detok, &rest, &len, err);
    if (s != MOLMO_OK) return s;
    if (append(&st->ans, rest, len) != 0) return molmo_err(err, MOLMO_ERR_NOMEM, "answer");
    if (cut_at_stop(&st->ans, p)) g->stop = MOLMO_STOP_STRING;
    emit(&st->ans, p, g->n_tokens ? g->tokens[g->n_tokens - 1] : -1, 1);
    return MOLMO_OK;
}

molmo_status molmo_generate_run(molmo_context *c, int with_image, const molmo_generate_params *p,
                                molmo_generation *g, molmo_error *err) {
    const molmo_model *m = c->model;
    if (c->n_prompt + p->max_new_tokens > molmo_decoder_n_ctx(c->dec))
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "prompt (%d tokens) + up to %d new tokens do "
                         "not fit the %d-token context", c->n_prompt, p->max_new_tokens,
                         molmo_decoder_n_ctx(c->dec));
    loop_state st;
    memset(&st, 0, sizeof st);
    molmo_status s = alloc_result(g, p);
    if (s != MOLMO_OK) return molmo_err(err, s, "generation: out of memory");
    if (molmo_sampler_init(&st.smp, m->cfg.embedding_size, p->temperature, p->top_k, p->top_p,
                           p->seed) != 0 ||
        !(st.x = molmo_malloc((size_t)m->cfg.d_model * sizeof(float))))
        s = molmo_err(err, MOLMO_ERR_NOMEM, "generation: out of memory");
    if (s == MOLMO_OK) s = molmo_detokenizer_create(m->tok, MOLMO_DECODE_SKIP_SPECIAL, &st.detok, err);
    if (s == MOLMO_OK) s = molmo_generate_prefill(c, with_image, g, err);
    double t0 = molmo_now_ms();
    if (s == MOLMO_OK) s = loop(c, p, g, &st, err);
    g->decode_ms = molmo_now_ms() - t0;
    if (s == MOLMO_OK) {
        size_t n = st.ans.n - st.ans.skip;
        g->text = molmo_strndup(st.ans.p ? st.ans.p + st.ans.skip : "", st.ans.p ? n : 0);
        g->text_len = st.ans.p ? n : 0;
        if (!g->text) s = molmo_err(err, MOLMO_ERR_NOMEM, "answer: out of memory");
    }
    molmo_free(st.ans.p);
    molmo_free(st.x);
    molmo_detokenizer_free(st.detok);
    molmo_sampler_free(&st.smp);
    return s;
}

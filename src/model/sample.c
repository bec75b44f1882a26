/* sample.c — see sample.h. The filters follow Hugging Face's logits warpers in their order:
 * temperature, then top-k, then top-p (nucleus: the smallest set of most likely tokens whose
 * probability reaches top_p, at least one token). */
#include "model/sample.h"

#include <math.h>
#include <stdlib.h>

#include "base/alloc.h"

int molmo_sampler_init(molmo_sampler *s, int n_vocab, float temperature, int top_k, float top_p,
                       uint64_t seed) {
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->state = seed ^ 0x6a09e667f3bcc909ull;
    s->n_vocab = n_vocab;
    s->cand = molmo_calloc((size_t)n_vocab, sizeof *s->cand);
    return s->cand ? 0 : -1;
}

void molmo_sampler_free(molmo_sampler *s) {
    molmo_free(s->cand);
    s->cand = NULL;
}

int molmo_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* splitmix64: a uniform double in [0, 1). */
static double next_uniform(uint64_t *st) {
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Descending probability, lower id first on ties. */
static int cand_cmp(const void *a, const void *b) {
    const molmo_cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

/* Moves the `keep` best candidates to the front, sorted. */
static void select_best(molmo_cand *c, int n, int keep) {
    if (keep > 64) {
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        return;
    }
    for (int j = 0; j < keep; j++) { /* partial selection sort: O(n * keep) */
        int b = j;
        for (int i = j + 1; i < n; i++)
            if (cand_cmp(&c[i], &c[b]) < 0) b = i;
        molmo_cand t = c[j];
        c[j] = c[b];
        c[b] = t;
    }
}

int molmo_sample(molmo_sampler *s, const float *logits) {
    int n = s->n_vocab;
    if (s->temperature <= 0.0f) return molmo_argmax(logits, n);
    float mx = logits[molmo_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        s->cand[i].p = expf((logits[i] - mx) / s->temperature);
        s->cand[i].id = i;
        sum += s->cand[i].p;
    }
    int keep = (s->top_k > 0 && s->top_k < n) ? s->top_k : n;
    select_best(s->cand, n, keep);
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        double cum = 0;
        for (int j = 0; j < keep; j++) {
            cum += s->cand[j].p / sum;
            if (cum >= s->top_p) {
                keep = j + 1;
                break;
            }
        }
    }
    double total = 0;
    for (int j = 0; j < keep; j++) total += s->cand[j].p;
    double r = next_uniform(&s->state) * total, acc = 0;
    for (int j = 0; j < keep; j++) {
        acc += s->cand[j].p;
        if (r < acc) return s->cand[j].id;
    }
    return s->cand[keep - 1].id;
}

double molmo_logprob_topk(const float *logits, int n, int id, int k, int *ids, float *lps) {
    double mx = logits[molmo_argmax(logits, n)], sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int j = 0; j < k; j++) {
        int b = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int t = 0; t < j && !taken; t++) taken = ids[t] == i;
            if (!taken && (b < 0 || logits[i] > logits[b])) b = i;
        }
        ids[j] = b;
        lps[j] = (float)((double)logits[b] - lse);
    }
    return (double)logits[id] - lse;
}

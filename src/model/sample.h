/* sample.h — choosing the next token from logits: greedy (the model card's default),
 * or temperature / top-k / top-p sampling from a seeded generator (same seed, same tokens). */
#ifndef MOLMO_MODEL_SAMPLE_H
#define MOLMO_MODEL_SAMPLE_H

#include <stdint.h>

struct molmo_cand;

typedef struct molmo_sampler {
    float temperature; /* <= 0: greedy */
    int top_k;         /* <= 0: all */
    float top_p;       /* >= 1 or <= 0: all */
    uint64_t state;    /* generator state, from the seed */
    int n_vocab;
    struct molmo_cand *cand; /* [n_vocab] scratch: candidates */
} molmo_sampler;

typedef struct molmo_cand {
    float p;
    int id;
} molmo_cand;

/* 0 on success, -1 when scratch cannot be allocated. */
int molmo_sampler_init(molmo_sampler *s, int n_vocab, float temperature, int top_k, float top_p,
                       uint64_t seed);
void molmo_sampler_free(molmo_sampler *s);

/* Greedy: the highest logit, the lowest id on ties (as torch.argmax). */
int molmo_argmax(const float *logits, int n);

/* Next token id from logits[n_vocab] (not modified). */
int molmo_sample(molmo_sampler *s, const float *logits);

/* log-softmax of logits at `id` and the k best (id, logprob) pairs, descending (ties: lower id
 * first). Computed in double. ids/lps have room for k. */
double molmo_logprob_topk(const float *logits, int n, int id, int k, int *ids, float *lps);

#endif

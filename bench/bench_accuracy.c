/* bench_accuracy.c — how far each weight type moves a real-shaped model's next-token
 * distributions from a reference (issue #8, item 3: "on real-shaped random models against f32").
 *
 * Every model (REF: the reference, a checkpoint directory or GGUF run with the default f32
 * activations; then MODEL ...) gets the same image and prompt, then the tokens of a fixed
 * answer (--text; or, with --text "", the reference's own greedy tokens) fed back one at a time
 * (teacher forcing), so all of them are measured on the same prefixes. A random-weight model
 * answers by repeating one token; a fixed text gives each step its own context. Per step:
 * whether the argmax agrees, KL(ref || model) of the full distribution, and the largest
 * log-prob error on the reference's top 5. One model is in memory at a time (a 7B's f32
 * reference and its copies would not fit together); the reference's logits are kept (steps x
 * vocabulary floats).
 *
 * Random weights are not trained ones: their distributions are flat (the reference's mean top-1
 * probability and top-1/top-2 gap are printed with the table, to say how close its calls are).
 *
 * usage: bench_accuracy REF MODEL... [--image FILE] [--prompt TEXT] [--text TEXT] [--steps N]
 *                       [--crops N] [--threads N] [--bf16-activations] [--kv-type f32|f16] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/sample.h"
#include "molmo.h"

typedef struct opts {
    const char *ref, *models[16];
    int n_models, steps, crops, threads, bf16_act;
    molmo_dtype kv_type;
    const char *image, *prompt, *text;
} opts;

typedef struct agreement {
    int n, top1;
    double kl_sum, kl_max, dlp_max;
} agreement;

static void log_softmax(const float *x, int n, double *out) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    const double ls = log(s) + mx;
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - ls;
}

/* The first steps - 1 ids of o->text into ids (fed back from step 1 on); -1 with err set when
 * the text gives fewer. */
static int text_ids(const molmo_model *m, const opts *o, int *ids, molmo_error *err) {
    const molmo_tokenizer *tok = molmo_model_tokenizer(m);
    const size_t len = strlen(o->text);
    size_t n = 0;
    if (molmo_tokenizer_encode(tok, o->text, len, NULL, 0, &n, err) != MOLMO_OK) return -1;
    if ((int)n + 1 < o->steps) {
        snprintf(err->msg, sizeof err->msg, "--text gives %zu tokens: fewer than --steps - 1", n);
        return -1;
    }
    int32_t *t = malloc(n * sizeof(int32_t));
    if (!t) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    const int rc = molmo_tokenizer_encode(tok, o->text, len, t, n, &n, err) == MOLMO_OK ? 0 : -1;
    for (int s = 0; rc == 0 && s + 1 < o->steps; s++) ids[s] = t[s];
    ids[o->steps - 1] = 0; /* never fed */
    free(t);
    return rc;
}

/* The model at path's logits for n_steps steps into logits [n_steps, E]: step 0 after the
 * prompt, step s after feeding ids[s-1]; with ids == NULL the model's own argmax is fed and
 * written to own_ids. */
static int run_model(const opts *o, const char *path, const molmo_image *img, const int *ids,
                     int *own_ids, float **logits, int *E_out, int *prompt_tokens) {
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_model_params mp = molmo_model_default_params();
    if (molmo_model_load(path, &mp, &m, &err) != MOLMO_OK) {
        fprintf(stderr, "bench_accuracy: %s\n", err.msg);
        return -1;
    }
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = o->threads;
    cp.bf16_activations = ids ? o->bf16_act : 0; /* the reference keeps the default numerics */
    cp.kv_type = ids ? o->kv_type : MOLMO_DTYPE_F32;
    molmo_context *ctx = NULL;
    int rc = -1;
    float *x = NULL;
    if (molmo_context_create(m, &cp, &ctx, &err) != MOLMO_OK) goto out;
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = 1; /* the prefill; its sampled token is not fed */
    gp.max_crops = o->crops;
    molmo_message msg = {"user", o->prompt};
    molmo_generation *g = NULL;
    if (molmo_generate(ctx, img, &msg, 1, &gp, &g, &err) != MOLMO_OK) goto out;
    *prompt_tokens = g->prompt_tokens;
    molmo_generation_free(g);
    const int E = m->cfg.embedding_size;
    *E_out = E;
    if (!ids && o->text && *o->text && text_ids(m, o, own_ids, &err)) goto out;
    *logits = malloc((size_t)o->steps * (size_t)E * sizeof(float));
    x = malloc((size_t)m->cfg.d_model * sizeof(float));
    if (!*logits || !x) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto out;
    }
    for (int s = 0; s < o->steps; s++) {
        if (s > 0) {
            int id = ids ? ids[s - 1] : own_ids[s - 1];
            if (molmo_decoder_embed(m, &id, 1, x, &err) != MOLMO_OK ||
                molmo_decoder_forward(ctx->dec, ctx->pool, x, 1, ctx->logits, NULL, NULL,
                                      &err) != MOLMO_OK)
                goto out;
        }
        memcpy(*logits + (size_t)s * (size_t)E, ctx->logits, (size_t)E * sizeof(float));
        if (!ids && !(o->text && *o->text)) own_ids[s] = molmo_argmax(ctx->logits, E);
    }
    rc = 0;
out:
    if (rc) {
        fprintf(stderr, "bench_accuracy: %s: %s\n", path, err.msg);
        free(*logits);
        *logits = NULL;
    }
    free(x);
    molmo_context_free(ctx);
    molmo_model_free(m);
    return rc;
}

/* n doubles, or the program ends saying why (a measuring tool, not the library). */
static double *doubles(int n) {
    double *p = malloc((size_t)n * sizeof(double));
    if (!p) {
        fprintf(stderr, "bench_accuracy: out of memory\n");
        exit(1);
    }
    return p;
}

static agreement compare(const float *ref, const float *t, int steps, int E) {
    agreement a = {0};
    double *p = doubles(E), *q = doubles(E);
    for (int s = 0; s < steps; s++) {
        const float *x = ref + (size_t)s * (size_t)E, *y = t + (size_t)s * (size_t)E;
        log_softmax(x, E, p);
        log_softmax(y, E, q);
        double kl = 0;
        for (int i = 0; i < E; i++) kl += exp(p[i]) * (p[i] - q[i]);
        a.kl_sum += kl;
        a.kl_max = fmax(a.kl_max, kl);
        a.top1 += molmo_argmax(x, E) == molmo_argmax(y, E);
        int top[5], nt = 0; /* the reference's 5 most likely ids, by insertion */
        for (int i = 0; i < E; i++) {
            int j = nt < 5 ? nt++ : 5;
            while (j > 0 && p[i] > p[top[j - 1]]) {
                if (j < 5) top[j] = top[j - 1];
                j--;
            }
            if (j < 5) top[j] = i;
        }
        for (int k = 0; k < nt; k++) a.dlp_max = fmax(a.dlp_max, fabs(p[top[k]] - q[top[k]]));
        a.n++;
    }
    free(p);
    free(q);
    return a;
}

/* The reference's mean top-1 probability and mean top-1/top-2 log-prob gap. */
static void peakedness(const float *ref, int steps, int E, double *p1, double *gap) {
    double *p = doubles(E);
    *p1 = *gap = 0;
    for (int s = 0; s < steps; s++) {
        log_softmax(ref + (size_t)s * (size_t)E, E, p);
        int b = molmo_argmax(ref + (size_t)s * (size_t)E, E), c = b ? 0 : 1;
        for (int i = 0; i < E; i++)
            if (i != b && p[i] > p[c]) c = i;
        *p1 += exp(p[b]) / steps;
        *gap += (p[b] - p[c]) / steps;
    }
    free(p);
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.steps = 32, .crops = 12, .threads = 0, .kv_type = MOLMO_DTYPE_F32,
                .prompt = "Describe this image.",
                .text = " The image shows a wide view of a busy street at dusk, with cars, buses"
                        " and people walking past the lit windows of old stone buildings."};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--image") && v) o->image = argv[++i];
        else if (!strcmp(a, "--prompt") && v) o->prompt = argv[++i];
        else if (!strcmp(a, "--text") && v) o->text = argv[++i];
        else if (!strcmp(a, "--steps") && v) o->steps = atoi(argv[++i]);
        else if (!strcmp(a, "--crops") && v) o->crops = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--bf16-activations")) o->bf16_act = 1;
        else if (!strcmp(a, "--kv-type") && v && (!strcmp(v, "f16") || !strcmp(v, "f32")))
            o->kv_type = !strcmp(argv[++i], "f16") ? MOLMO_DTYPE_F16 : MOLMO_DTYPE_F32;
        else if (a[0] == '-') return -1;
        else if (!o->ref) o->ref = a;
        else if (o->n_models < 16) o->models[o->n_models++] = a;
        else return -1;
    }
    return o->ref && o->n_models > 0 && o->steps > 0 && o->crops > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    opts o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_accuracy REF MODEL... [--image FILE] [--prompt TEXT] [--text TEXT]\n"
                        "                      [--steps N] [--crops N] [--threads N]\n"
                        "                      [--bf16-activations] [--kv-type f32|f16]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/images/wide_1920x1080.jpg", MOLMO_SOURCE_DIR);
    molmo_image *img = NULL;
    molmo_error err = {0};
    if (molmo_image_load_file(o.image ? o.image : path, NULL, &img, &err) != MOLMO_OK) {
        fprintf(stderr, "bench_accuracy: %s\n", err.msg);
        return 1;
    }
    int *ids = malloc((size_t)o.steps * sizeof(int)), E = 0, E2 = 0, np = 0, np2 = 0, rc = 1;
    float *ref = NULL, *t = NULL;
    if (!ids || run_model(&o, o.ref, img, NULL, ids, &ref, &E, &np)) goto out;
    double p1, gap;
    peakedness(ref, o.steps, E, &p1, &gap);
    int distinct = 0;
    for (int s = 0; s < o.steps; s++) {
        int seen = 0;
        for (int u = 0; u < s; u++) seen |= ids[u] == ids[s];
        distinct += !seen;
    }
    printf("reference %s: %d prompt tokens, %d steps (%d distinct tokens fed), mean top-1\n"
           "probability %.3g, mean top-1/top-2 gap %.3g nats\n\n",
           o.ref, np, o.steps, distinct, p1, gap);
    printf("| model | top-1 agreement | mean KL | max KL | max \\|Δ logprob\\| (ref top-5) |\n");
    printf("|---|---|---|---|---|\n");
    for (int k = 0; k < o.n_models; k++) {
        if (run_model(&o, o.models[k], img, ids, NULL, &t, &E2, &np2)) goto out;
        if (E2 != E) {
            fprintf(stderr, "bench_accuracy: %s: vocabulary %d, the reference's %d\n",
                    o.models[k], E2, E);
            goto out;
        }
        const agreement a = compare(ref, t, o.steps, E);
        printf("| %s | %d/%d | %.3g | %.3g | %.3g |\n", o.models[k], a.top1, a.n, a.kl_sum / a.n,
               a.kl_max, a.dlp_max);
        fflush(stdout);
        free(t);
        t = NULL;
    }
    rc = 0;
out:
    free(t);
    free(ref);
    free(ids);
    molmo_image_free(img);
    return rc;
}

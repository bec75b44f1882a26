/* test_gguf_convert.c — molmo_convert and loading GGUF models, through the public API:
 *   - the per-tensor type policy and the tensor names in the file (every released model's names
 *     fit ggml's 64-byte limit and map back);
 *   - f32 GGUFs of the fixtures give bit-identical logits at every golden step (teacher-forced)
 *     of every golden case, and the same greedy tokens, as the safetensors checkpoints;
 *     qwen2-bf16 -> bf16 likewise;
 *   - f16 / bf16 / q8_0 / q4_0: greedy tokens against the goldens, golden top-5 log-probs, and
 *     top-1 agreement and mean KL of the next-token distributions against the f32 model (the
 *     figures of docs/gguf.md; print with MOLMO_TEST_VERBOSE=1);
 *   - files that are not molmo GGUFs or whose metadata or tensors are wrong: clear errors. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/mapfile.h"
#include "kernels/quant.h"
#include "model/context.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/presets.h"
#include "model/repack.h"
#include "model/weights.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "base/fp16.h"
#include "testutil.h"

static char tmpdir[256];

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/molmo_test_gguf_convert_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static void free_references(void);

static int teardown(void **state) {
    free_references();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *model_dir(char *out, size_t cap, const char *model) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", model);
    return tu_data_path(out, cap, rel);
}

/* Converts fixture `model` to `type`; returns the path (static per call site: copy it). */
static void convert_vt(const char *model, molmo_dtype type, molmo_dtype vtype, char *out,
                       size_t cap) {
    char src[1024];
    snprintf(out, cap, "%s/%s-%s%s%s.gguf", tmpdir, model, molmo_dtype_name(type),
             vtype == MOLMO_DTYPE_COUNT ? "" : "-vit-",
             vtype == MOLMO_DTYPE_COUNT ? "" : molmo_dtype_name(vtype));
    if (access(out, F_OK) == 0) return;
    molmo_convert_params p = molmo_convert_default_params();
    p.type = type;
    p.vision_type = vtype;
    molmo_error err = {0};
    if (molmo_convert(model_dir(src, sizeof src, model), out, &p, &err) != MOLMO_OK)
        fail_msg("convert %s to %s: %s", model, molmo_dtype_name(type), err.msg);
}

static void convert(const char *model, molmo_dtype type, char *out, size_t cap) {
    convert_vt(model, type, MOLMO_DTYPE_COUNT, out, cap);
}

/* ---- running a golden case, keeping the logits of every step ---------------------------- */

typedef struct run {
    float *logits;       /* [n_steps, E]: next-token logits at every golden step, teacher-forced
                            with the golden ids (step 0: after the prompt) */
    int n_steps, E;
} run;

typedef struct golden_input {
    json_t *j;
    molmo_image *img;
    molmo_message msgs[16];
    int n_msgs;
} golden_input;

static void golden_input_open(golden_input *in, const char *model, const char *case_name) {
    memset(in, 0, sizeof *in);
    in->j = tu_golden_json(model, case_name);
    const char *image = json_string_value(json_object_get(in->j, "image"));
    char p[1024];
    molmo_error err = {0};
    if (image && molmo_image_load_file(tu_data_path(p, sizeof p, image), NULL, &in->img, &err))
        fail_msg("%s", err.msg);
    json_t *msgs = json_object_get(in->j, "messages");
    in->n_msgs = (int)json_array_size(msgs);
    for (int i = 0; i < in->n_msgs; i++) {
        in->msgs[i].role = i % 2 ? "assistant" : "user";
        in->msgs[i].content = json_string_value(json_array_get(msgs, (size_t)i));
    }
}

static int g_bf16_act; /* contexts with bf16 activations (type_check.bf16_act) */
static int g_no_mmap;  /* models loaded with molmo_model_params.no_mmap */
static int g_no_repack; /* and no_repack */
static int g_n_x16;    /* matrices the last run_case's model had in an X16 layout */

static void count_x16(void *user, molmo_tensor *t) {
    (void)user;
    g_n_x16 += molmo_dtype_is_x16(t->dtype);
}

static molmo_context *new_context(const molmo_model *m) {
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = 2;
    cp.bf16_activations = g_bf16_act;
    molmo_context *ctx = NULL;
    molmo_error err = {0};
    if (molmo_context_create(m, &cp, &ctx, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    return ctx;
}

static molmo_generation *generate(molmo_context *ctx, const golden_input *in, int max_new) {
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = max_new;
    molmo_generation *g = NULL;
    molmo_error err = {0};
    if (molmo_generate(ctx, in->img, in->msgs, in->n_msgs, &gp, &g, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    return g;
}

/* Prefill once (through molmo_generate), then feed the golden ids one by one through the
 * decoder (teacher forcing), so every model is measured on the same prefixes whatever it would
 * have generated itself. */
static void teacher_forced(const molmo_model *m, const golden_input *in, run *r) {
    molmo_context *ctx = new_context(m);
    molmo_generation *g = generate(ctx, in, 1); /* prefill; the sampled token is not fed */
    molmo_generation_free(g);
    json_t *ids = json_object_get(in->j, "generated_ids");
    r->n_steps = (int)json_array_size(ids);
    r->E = m->cfg.embedding_size;
    r->logits = malloc((size_t)r->n_steps * (size_t)r->E * sizeof(float));
    float *x = malloc((size_t)m->cfg.d_model * sizeof(float));
    assert_true(r->logits && x);
    molmo_error err = {0};
    for (int s = 0; s < r->n_steps; s++) {
        if (s > 0) {
            int id = (int)json_integer_value(json_array_get(ids, (size_t)s - 1));
            assert_int_equal(molmo_decoder_embed(m, &id, 1, x, &err), MOLMO_OK);
            assert_int_equal(molmo_decoder_forward(ctx->dec, ctx->pool, x, 1, ctx->logits, NULL,
                                                   NULL, &err), MOLMO_OK);
        }
        memcpy(r->logits + (size_t)s * (size_t)r->E, ctx->logits, (size_t)r->E * sizeof(float));
    }
    free(x);
    molmo_context_free(ctx);
}

/* The teacher-forced logits of a golden case. */
static void run_case(const char *path, const char *golden_model, const char *case_name, run *r) {
    memset(r, 0, sizeof *r);
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_model_params mp = molmo_model_default_params();
    mp.no_mmap = g_no_mmap;
    mp.no_repack = g_no_repack;
    if (molmo_model_load(path, &mp, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    g_n_x16 = 0;
    molmo_weights_each_matrix(&m->w, &m->cfg, count_x16, NULL);
    golden_input in;
    golden_input_open(&in, golden_model, case_name);
    teacher_forced(m, &in, r);
    molmo_image_free(in.img);
    json_decref(in.j);
    molmo_model_free(m);
}

/* The safetensors checkpoint's run of golden case i, computed once. */
static run ref_runs[32];
static int ref_done[32];

static const run *reference(int i) {
    assert_true(i < 32);
    if (!ref_done[i]) {
        char dir[1024];
        run_case(model_dir(dir, sizeof dir, tu_golden_cases[i].model), tu_golden_cases[i].model,
                 tu_golden_cases[i].name, &ref_runs[i]);
        ref_done[i] = 1;
    }
    return &ref_runs[i];
}

static void free_references(void) {
    for (int i = 0; i < 32; i++) free(ref_runs[i].logits);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

/* Greedy decoding reproduces the golden ids (EOS included) exactly when, fed the golden prefix,
 * the model's argmax is the golden id at every step: by induction over the steps. */
static int golden_tokens_equal(const char *model, const char *case_name, const run *r) {
    json_t *j = tu_golden_json(model, case_name);
    json_t *ids = json_object_get(j, "generated_ids");
    int ok = (int)json_array_size(ids) == r->n_steps;
    for (int s = 0; ok && s < r->n_steps; s++)
        ok = argmax(r->logits + (size_t)s * (size_t)r->E, r->E) ==
             json_integer_value(json_array_get(ids, (size_t)s));
    json_decref(j);
    return ok;
}

static void log_softmax(const float *x, int n, double *out) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - log(s);
}

/* Largest |log-prob difference| at the golden top-5 ids of every step both runs share. */
static double golden_logprob_err(const char *model, const char *case_name, const run *r) {
    json_t *j = tu_golden_json(model, case_name);
    json_t *steps = json_object_get(j, "steps");
    double *lp = malloc((size_t)r->E * sizeof *lp), worst = 0;
    for (int s = 0; s < r->n_steps && s < (int)json_array_size(steps); s++) {
        log_softmax(r->logits + (size_t)s * (size_t)r->E, r->E, lp);
        json_t *top5 = json_object_get(json_array_get(steps, (size_t)s), "top5");
        for (size_t k = 0; k < json_array_size(top5); k++) {
            json_t *e = json_array_get(top5, k);
            int id = (int)json_integer_value(json_array_get(e, 0));
            worst = fmax(worst, fabs(lp[id] - json_real_value(json_array_get(e, 1))));
        }
    }
    free(lp);
    json_decref(j);
    return worst;
}

/* Top-1 agreement and KL(p_ref || p_test) over the teacher-forced steps. */
typedef struct agree {
    int steps, top1;
    double kl_sum, kl_max;
} agree;

static void compare_dist(const run *ref, const run *t, agree *a) {
    double *p = malloc((size_t)ref->E * sizeof *p), *q = malloc((size_t)ref->E * sizeof *q);
    for (int s = 0; s < ref->n_steps && s < t->n_steps; s++) {
        const float *x = ref->logits + (size_t)s * (size_t)ref->E;
        const float *y = t->logits + (size_t)s * (size_t)ref->E;
        log_softmax(x, ref->E, p);
        log_softmax(y, ref->E, q);
        double kl = 0;
        for (int i = 0; i < ref->E; i++) kl += exp(p[i]) * (p[i] - q[i]);
        a->steps++;
        a->top1 += argmax(x, ref->E) == argmax(y, ref->E);
        a->kl_sum += kl;
        a->kl_max = fmax(a->kl_max, kl);
    }
    free(p);
    free(q);
}

/* ---- policy and names -------------------------------------------------------------------- */

static void test_policy(void **state) {
    const molmo_dtype F32 = MOLMO_DTYPE_F32, F16 = MOLMO_DTYPE_F16, BF16 = MOLMO_DTYPE_BF16,
                      Q8 = MOLMO_DTYPE_Q8_0, Q4 = MOLMO_DTYPE_Q4_0;
    const int64_t vec[1] = {4096}, mat[2] = {4096, 4096}, patch[2] = {1024, 588};
    const int64_t pos[2] = {577, 1024}, pad[2] = {2, 2048}, router[2] = {64, 2048};
    struct {
        const char *name;
        int nd;
        const int64_t *shape;
        molmo_dtype type, vtype, want;
    } cases[] = {
        {"model.transformer.blocks.0.attn_norm.weight", 1, vec, Q4, Q8, F32},
        {"model.transformer.blocks.0.att_proj.bias", 1, vec, BF16, BF16, F32},
        {"model.transformer.blocks.0.att_proj.weight", 2, mat, Q4, Q8, Q4},
        {"model.transformer.blocks.3.mlp.gate.weight", 2, router, Q8, Q8, F32},
        {"model.transformer.blocks.3.mlp.experts.5.up_proj.weight", 2, mat, Q4, Q8, Q4},
        {"model.transformer.wte.embedding", 2, mat, Q4, Q8, Q8},
        {"model.transformer.wte.new_embedding", 2, mat, BF16, BF16, BF16},
        {"model.transformer.ff_out.weight", 2, mat, Q4, Q8, Q8},
        {"lm_head.weight", 2, mat, Q4, Q4, Q8},
        {"lm_head.weight", 2, mat, F16, F16, F16},
        {"model.vision_backbone.image_vit.positional_embedding", 2, pos, Q8, Q8, F32},
        {"model.vision_backbone.image_vit.class_embedding", 1, vec, Q8, Q8, F32},
        {"model.vision_backbone.pad_embed", 2, pad, Q4, Q8, F32},
        {"model.vision_backbone.image_vit.patch_embedding.weight", 2, patch, Q8, Q8, F16},
        {"model.vision_backbone.image_vit.patch_embedding.weight", 2, patch, BF16, BF16, BF16},
        {"model.vision_backbone.image_vit.transformer.resblocks.0.attention.wq.weight", 2, mat,
         Q4, Q8, Q8},
        {"model.vision_backbone.image_projector.w2.weight", 2, mat, Q4, F16, F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_dtype got = molmo_convert_policy(cases[i].name, cases[i].nd, cases[i].shape,
                                               cases[i].type, cases[i].vtype);
        if (got != cases[i].want)
            fail_msg("%s (%s/%s): %s, want %s", cases[i].name, molmo_dtype_name(cases[i].type),
                     molmo_dtype_name(cases[i].vtype), molmo_dtype_name(got),
                     molmo_dtype_name(cases[i].want));
    }
}

typedef struct names_seen {
    int n, longest;
} names_seen;

static void check_name(void *user, const char *name, int n_dims, const int64_t *shape) {
    names_seen *s = user;
    char short_name[256], back[256];
    if (molmo_gguf_name_from_hf(name, short_name, sizeof short_name) != 0)
        fail_msg("'%s' does not fit %d bytes", name, MOLMO_GGUF_MAX_NAME);
    assert_int_equal(molmo_gguf_name_to_hf(short_name, back, sizeof back), 0);
    assert_string_equal(back, name);
    s->n++;
    if ((int)strlen(short_name) > s->longest) s->longest = (int)strlen(short_name);
}

/* Every tensor name of every released model fits ggml's GGML_MAX_NAME in the file. */
static void test_names_fit_ggml(void **state) {
    int n_presets;
    const molmo_preset *ps = molmo_presets(&n_presets);
    for (int i = 0; i < n_presets; i++) {
        molmo_config c;
        molmo_error err = {0};
        assert_int_equal(molmo_config_parse(ps[i].config_json, strlen(ps[i].config_json),
                                            ps[i].name, &c, &err), MOLMO_OK);
        names_seen s = {0};
        assert_int_equal(molmo_weights_enumerate(&c, check_name, &s, &err), MOLMO_OK);
        print_message("%s: %d tensors, longest name in the file %d bytes\n", ps[i].name, s.n,
                      s.longest);
        assert_true(s.n > 100 && s.longest <= MOLMO_GGUF_MAX_NAME);
    }
}

/* ---- f32 and bf16: bit-identical to the safetensors checkpoints ------------------------- */

static void check_identical(const char *model, molmo_dtype type) {
    char dir[1024], gguf[1024];
    convert(model, type, gguf, sizeof gguf);
    model_dir(dir, sizeof dir, model);
    molmo_error err = {0};
    molmo_model *a = NULL, *b = NULL;
    assert_int_equal(molmo_model_load(dir, NULL, &a, &err), MOLMO_OK);
    if (molmo_model_load(gguf, NULL, &b, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_model_info ia, ib;
    molmo_model_get_info(a, &ia);
    molmo_model_get_info(b, &ib);
    assert_int_equal(ib.n_files, 1);
    assert_string_equal(molmo_model_file(b, 0), gguf);
    assert_true(ia.n_params_total == ib.n_params_total && ia.n_params_llm == ib.n_params_llm &&
                ia.n_params_vision == ib.n_params_vision);
    assert_int_equal(ia.n_tensors, ib.n_tensors);
    assert_true(ib.has_tokenizer && ib.has_preprocessor_config && ib.has_generation_config);
    assert_int_equal(ia.d_model, ib.d_model);
    assert_int_equal(ia.vit_layer_a, ib.vit_layer_a);
    molmo_model_free(a);
    molmo_model_free(b);
    int n_cases = 0, n_steps = 0;
    for (int i = 0; i < tu_n_golden_cases; i++) {
        if (strcmp(tu_golden_cases[i].model, model) != 0) continue;
        /* one 12-crop case (a 1216-token prompt: chunked prefill) is enough for the time */
        if (strstr(tu_golden_cases[i].name, "12crops") && strcmp(model, "qwen2") != 0 &&
            !getenv("MOLMO_GGUF_ALL_CASES"))
            continue;
        /* logits identical at every golden step imply the same greedy answer, which
         * test_generate checks against the goldens for the checkpoint */
        const run *xp = reference(i);
        const run x = *xp;
        run y;
        run_case(gguf, model, tu_golden_cases[i].name, &y);
        assert_int_equal(x.n_steps, y.n_steps);
        assert_true(x.n_steps >= 1 && x.E == y.E);
        if (memcmp(x.logits, y.logits, (size_t)x.n_steps * (size_t)x.E * sizeof(float)) != 0)
            fail_msg("%s/%s: the %s GGUF's logits differ from the checkpoint's", model,
                     tu_golden_cases[i].name, molmo_dtype_name(type));
        n_cases++;
        n_steps += x.n_steps;
        free(y.logits);
    }
    print_message("%s -> %s GGUF: %d golden cases, %d steps of logits bit-identical\n", model,
                  molmo_dtype_name(type), n_cases, n_steps);
    assert_true(n_cases >= 2);
}

static void test_f32_bit_identical(void **state) {
    check_identical("qwen2", MOLMO_DTYPE_F32);
    check_identical("olmo", MOLMO_DTYPE_F32);
    check_identical("olmoe", MOLMO_DTYPE_F32);
    check_identical("qwen2-bf16", MOLMO_DTYPE_BF16); /* bf16 stays bf16: the same bytes */
}

/* ---- other types: accuracy against the goldens and the f32 model ------------------------- */

/* What each conversion must keep. tokens: greedy tokens identical to the goldens in every case;
 * logprob: bound on the golden top-5 log-probs; top1/kl: bounds on the top-1 agreement and mean
 * KL against the f32 checkpoint over the teacher-forced golden steps. The fixtures are 64 wide
 * with random weights and top-1/top-2 gaps down to 0.013 (README §3): rounding every weight to
 * bf16 (2^-9 relative) or to 32-value blocks of 8 bits (q8_0: amax/254) moves their log-probs by
 * 0.04 resp. 0.3 (measured), enough to flip the closest steps, so for those types the bounds are
 * on the distributions, set about 4x above the measured figures (docs/gguf.md). A wrong encoding
 * (scale, nibble order, layout) gives a top-1 agreement near 1/1000 and a KL of several nats. */
typedef struct type_check {
    const char *model;
    molmo_dtype type;
    int tokens;
    double logprob, top1, kl;
    int bf16_act; /* run with molmo_context_params.bf16_activations */
} type_check;

/* The cases of the type checks: per model the golden case with the fewest crops and one with
 * several turns (or none) — a fast test under the sanitizers. docs/gguf.md's table has all 14
 * cases: MOLMO_GGUF_ALL_CASES=1. */
static int quick_case(const char *name) {
    static const char *const quick[] = {"tiny_50x30", "multiturn_tiny", "gray_120x200",
                                        "text_only", "rgba_160x100", "multiturn_text_only"};
    if (getenv("MOLMO_GGUF_ALL_CASES")) return 1;
    for (size_t i = 0; i < sizeof quick / sizeof quick[0]; i++)
        if (!strcmp(name, quick[i])) return 1;
    return 0;
}

static void check_type(const type_check *tc) {
    char gguf[1024];
    convert(tc->model, tc->type, gguf, sizeof gguf);
    agree a = {0};
    double lp_err = 0;
    int cases = 0, same_tokens = 0;
    for (int i = 0; i < tu_n_golden_cases; i++) {
        const char *name = tu_golden_cases[i].name;
        if (strcmp(tu_golden_cases[i].model, tc->model) != 0 || !quick_case(name)) continue;
        const run *ref = reference(i);
        run t;
        g_bf16_act = tc->bf16_act;
        run_case(gguf, tc->model, name, &t);
        g_bf16_act = 0;
        int same = golden_tokens_equal(tc->model, name, &t);
        if (tc->tokens && !same)
            fail_msg("%s/%s as %s: greedy tokens differ from the golden", tc->model, name,
                     molmo_dtype_name(tc->type));
        lp_err = fmax(lp_err, golden_logprob_err(tc->model, name, &t));
        compare_dist(ref, &t, &a);
        cases++;
        same_tokens += same;
        free(t.logits);
    }
    double top1 = (double)a.top1 / a.steps, kl = a.kl_sum / a.steps;
    print_message("| %-10s | %-4s%s | %d/%d | %d/%d (%.1f%%) | %.2e | %.2e | %.2e |\n", tc->model,
                  molmo_dtype_name(tc->type), tc->bf16_act ? " + bf16 act" : "", same_tokens, cases, a.top1, a.steps, 100 * top1,
                  kl, a.kl_max, lp_err);
    if (tc->logprob > 0 && !(lp_err <= tc->logprob))
        fail_msg("%s as %s: golden log-probs off by %.3g (> %.3g)", tc->model,
                 molmo_dtype_name(tc->type), lp_err, tc->logprob);
    if (!(top1 >= tc->top1) || !(kl <= tc->kl))
        fail_msg("%s as %s: top-1 agreement %.3f (>= %.3f wanted), mean KL %.3g (<= %.3g)",
                 tc->model, molmo_dtype_name(tc->type), top1, tc->top1, kl, tc->kl);
}

static void test_quantized_types(void **state) {
    static const type_check checks[] = {
        {"qwen2", MOLMO_DTYPE_F16, 1, 1e-2, 1.0, 1e-5, 0},
        {"qwen2-bf16", MOLMO_DTYPE_BF16, 1, 1e-2, 1.0, 0, 0},
        {"qwen2", MOLMO_DTYPE_BF16, 0, 0, 0.95, 5e-4, 0},
        {"qwen2", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 5e-3, 0},
        {"olmo", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 1e-2, 0},
        {"olmoe", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 5e-3, 0},
        {"qwen2", MOLMO_DTYPE_Q4_0, 0, 0, 0.6, 0.4, 0},
        {"olmo", MOLMO_DTYPE_Q4_0, 0, 0, 0.4, 1.0, 0},
        {"olmoe", MOLMO_DTYPE_Q4_0, 0, 0, 0.6, 0.5, 0},
        /* bf16 activations for the bf16 matmuls (top-1: the fixtures' close calls flip 1-2 of
         * 32 steps depending on the kernel set; AVX2 and AVX-512 without AMX measured too) */
        {"qwen2-bf16", MOLMO_DTYPE_BF16, 0, 0, 0.9, 2e-4, 1},
        {"qwen2", MOLMO_DTYPE_BF16, 0, 0, 0.9, 5e-4, 1},
        {"olmo", MOLMO_DTYPE_BF16, 0, 0, 0.85, 1.5e-3, 1},
        {"olmoe", MOLMO_DTYPE_BF16, 0, 0, 0.9, 4e-4, 1},
        /* q8_0 / q4_0: the attention, and where the CPU has AMX-BF16 the matmuls of more than
         * 4 rows, which then take the weights rounded to bf16 (molmo_op_bf16_rule) */
        {"qwen2", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 5e-3, 1},
        {"olmo", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 1e-2, 1},
        {"olmoe", MOLMO_DTYPE_Q8_0, 0, 0, 0.9, 5e-3, 1},
        {"olmoe", MOLMO_DTYPE_Q4_0, 0, 0, 0.6, 0.5, 1},
    };
    print_message("kernels: %s\n| model | type | golden tokens | top-1 agreement | mean KL | "
                  "max KL | max golden top-5 |d logprob| |\n", molmo_kernels_name());
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) check_type(&checks[i]);
}

/* bf16 activations round the inputs of matmuls, never the residual stream. olmo is a
 * norm-after model: its sub-layers read the residual stream itself, so the decoder hands the
 * matmul a copy wherever molmo_op_bf16_rule rounds (BF16 weights; quantized ones in GEMMs on
 * AMX-BF16 CPUs). The probe: embeddings already rounded to bf16 give the first matmuls the same
 * input as unrounded ones, and differ only in what the residual stream carries, so the
 * prefill's logits must differ. Had the matmul rounded the stream in place, they would be the
 * same bits. */
static void prefill_logits(const char *path, const float *embeds, int n, float *out, int E) {
    molmo_error err = {0};
    molmo_model *m = NULL;
    if (molmo_model_load(path, NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    g_bf16_act = 1;
    molmo_context *ctx = new_context(m);
    g_bf16_act = 0;
    assert_int_equal(m->cfg.embedding_size, E);
    if (molmo_decoder_forward(ctx->dec, ctx->pool, embeds, n, ctx->logits, NULL, NULL, &err) !=
        MOLMO_OK)
        fail_msg("%s", err.msg);
    memcpy(out, ctx->logits, (size_t)E * sizeof(float));
    molmo_context_free(ctx);
    molmo_model_free(m);
}

static void test_bf16_act_keeps_residual(void **state) {
    (void)state;
    static const molmo_dtype types[2] = {MOLMO_DTYPE_BF16, MOLMO_DTYPE_Q8_0};
    molmo_model *m = tu_load_model("olmo");
    assert_true(m->cfg.norm_after);
    const int n = 24, D = m->cfg.d_model, E = m->cfg.embedding_size;
    molmo_model_free(m);
    float *x = malloc((size_t)n * D * sizeof(float)), *xr = malloc((size_t)n * D * sizeof(float));
    float *a = malloc((size_t)E * sizeof(float)), *b = malloc((size_t)E * sizeof(float));
    assert_true(x && xr && a && b);
    srand(7);
    for (int i = 0; i < n * D; i++) {
        x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        xr[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[i]));
    }
    for (int t = 0; t < 2; t++) {
        char gguf[1024];
        convert("olmo", types[t], gguf, sizeof gguf);
        prefill_logits(gguf, x, n, a, E);
        prefill_logits(gguf, xr, n, b, E);
        if (memcmp(a, b, (size_t)E * sizeof(float)) == 0)
            fail_msg("olmo as %s with bf16 activations: rounding the embeddings changes nothing, "
                     "so the residual stream was rounded", molmo_dtype_name(types[t]));
    }
    free(x);
    free(xr);
    free(a);
    free(b);
}

/* A q8_0 / q4_0 model and the f32 model of its dequantized weights (converting the GGUF back
 * to f32 is exact) compute the same logits on the reference kernels, which dequantize block
 * values exactly and then follow the f32 arithmetic: every quantized tensor reaches the model
 * intact, and re-encoding a GGUF works. */
static void test_dequantized_equivalence(void **state) {
    static const molmo_dtype types[2] = {MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0};
    molmo_kernels_force_reference(1);
    for (int k = 0; k < 2; k++) {
        char q[1024], f[1200];
        convert("olmoe", types[k], q, sizeof q);
        snprintf(f, sizeof f, "%s.f32.gguf", q);
        molmo_convert_params p = molmo_convert_default_params();
        p.type = MOLMO_DTYPE_F32;
        molmo_error err = {0};
        if (molmo_convert(q, f, &p, &err) != MOLMO_OK) fail_msg("%s", err.msg);
        run a, b;
        run_case(q, "olmoe", "multiturn_text_only", &a); /* no image: ref kernels are slow */
        run_case(f, "olmoe", "multiturn_text_only", &b);
        assert_int_equal(a.n_steps, b.n_steps);
        if (memcmp(a.logits, b.logits, (size_t)a.n_steps * (size_t)a.E * sizeof(float)) != 0)
            fail_msg("%s: logits differ from its dequantized f32 model",
                     molmo_dtype_name(types[k]));
        free(a.logits);
        free(b.logits);
    }
    molmo_kernels_force_reference(0);
}

/* ---- the API: progress, cancellation, arguments, general.name ------------------------- */

typedef struct progress_log {
    int calls, cancel_at, last_index, n_tensors;
    uint64_t last_done, total;
    int monotonic;
} progress_log;

static int on_progress(void *user, const molmo_convert_progress *p) {
    progress_log *l = user;
    l->calls++;
    l->monotonic &= p->bytes_done >= l->last_done && p->tensor_index >= l->last_index &&
                    p->bytes_done <= p->bytes_total && p->tensor != NULL;
    l->last_done = p->bytes_done;
    l->last_index = p->tensor_index;
    l->n_tensors = p->n_tensors;
    l->total = p->bytes_total;
    return l->calls == l->cancel_at;
}

static void test_convert_api(void **state) {
    char dir[1024], out[1024], part[1100];
    model_dir(dir, sizeof dir, "olmoe");
    snprintf(out, sizeof out, "%s/api.gguf", tmpdir);
    snprintf(part, sizeof part, "%s.part", out);
    molmo_convert_params p = molmo_convert_default_params();
    assert_int_equal(p.type, MOLMO_DTYPE_BF16);
    molmo_error err = {0};
    p.type = MOLMO_DTYPE_I32;
    assert_int_equal(molmo_convert(dir, out, &p, &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "i32"));
    p.type = MOLMO_DTYPE_Q8_0;
    p.vision_type = MOLMO_DTYPE_I32;
    assert_int_equal(molmo_convert(dir, out, &p, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_convert(NULL, out, NULL, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_convert(dir, NULL, NULL, &err), MOLMO_ERR_INVALID_ARG);
    /* cancelled on the third chunk: no file, no .part */
    p.vision_type = MOLMO_DTYPE_COUNT;
    progress_log l = {.cancel_at = 3, .monotonic = 1};
    p.progress = on_progress;
    p.progress_user = &l;
    assert_int_equal(molmo_convert(dir, out, &p, &err), MOLMO_ERR_CANCELLED);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(access(part, F_OK), -1);
    /* a full run: progress grows to the total over every tensor; defaults name the file */
    progress_log full = {.monotonic = 1};
    p.progress_user = &full;
    assert_int_equal(molmo_convert(dir, out, &p, &err), MOLMO_OK);
    assert_true(full.monotonic);
    assert_true(full.last_done == full.total && full.total > 0);
    assert_int_equal(full.last_index, full.n_tensors - 1);
    molmo_gguf g;
    assert_int_equal(molmo_gguf_open(&g, out, &err), MOLMO_OK);
    assert_int_equal(g.st.n_tensors, full.n_tensors);
    const char *s;
    size_t len;
    assert_int_equal(molmo_gguf_get_str(&g, "general.name", &s, &len, &err), MOLMO_OK);
    assert_true(len == 5 && !memcmp(s, "olmoe", 5));
    assert_int_equal(molmo_gguf_get_str(&g, "molmo.family", &s, &len, &err), MOLMO_OK);
    assert_true(len == 6 && !memcmp(s, "molmoe", 6));
    int64_t v;
    assert_int_equal(molmo_gguf_get_int(&g, "molmo.n_experts", &v, &err), MOLMO_OK);
    assert_int_equal(v, 8);
    assert_int_equal(molmo_gguf_get_int(&g, "general.file_type", &v, &err), MOLMO_OK);
    assert_int_equal(v, 7);
    uint64_t data = 0;
    for (int i = 0; i < g.st.n_tensors; i++) data += g.st.tensors[i].n_bytes;
    assert_true(data == full.total);
    molmo_gguf_close(&g);
    /* --name */
    p.progress = NULL;
    p.name = "my model";
    assert_int_equal(molmo_convert(dir, out, &p, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_open(&g, out, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_get_str(&g, "general.name", &s, &len, &err), MOLMO_OK);
    assert_true(len == 8 && !memcmp(s, "my model", 8));
    molmo_gguf_close(&g);
}

/* ---- files that are not (good) molmo GGUFs --------------------------------------------- */

/* A copy of GGUF `src` with one change: key `key` dropped (value NULL) or set to the string
 * `value`; tensor `tensor` (its name in the file) dropped (requant 0) or stored as q8_0. */
typedef struct edit {
    const char *key, *value, *tensor;
    int requant;
} edit;

typedef struct copy_src {
    const molmo_st_tensor *t[1024];
    molmo_dtype out[1024];
} copy_src;

static molmo_status copy_fill(void *user, int i, int64_t row0, int64_t n_rows, void *dst,
                              molmo_error *err) {
    copy_src *c = user;
    const molmo_st_tensor *t = c->t[i];
    int64_t k = t->shape[t->n_dims - 1];
    size_t in_rb = molmo_dtype_row_bytes(t->dtype, k), out_rb = molmo_dtype_row_bytes(c->out[i], k);
    const unsigned char *src = (const unsigned char *)t->data + (size_t)row0 * in_rb;
    if (c->out[i] == t->dtype) {
        memcpy(dst, src, (size_t)n_rows * in_rb);
        return MOLMO_OK;
    }
    assert_int_equal(t->dtype, MOLMO_DTYPE_F32);
    for (int64_t r = 0; r < n_rows; r++) {
        float row[4096];
        memcpy(row, src + (size_t)r * in_rb, in_rb);
        unsigned char *o = (unsigned char *)dst + r * out_rb;
        molmo_status st = molmo_quantize_row(c->out[i], row, o, k, err);
        if (st != MOLMO_OK) return st;
    }
    return MOLMO_OK;
}

static void copy_kv(molmo_gguf_writer *w, const molmo_gguf_kv *kv) {
    molmo_error err = {0};
    molmo_status st;
    if (kv->type == MOLMO_GGUF_STRING) {
        const char *v;
        uint64_t len;
        molmo_gguf_kv_str(kv, 0, &v, &len);
        st = molmo_gguf_add_str(w, kv->key, v, (size_t)len, &err);
    } else if (kv->type == MOLMO_GGUF_ARRAY) {
        assert_int_not_equal(kv->elem_type, MOLMO_GGUF_STRING); /* molmo writes none */
        st = molmo_gguf_add_array(w, kv->key, kv->elem_type, kv->data, kv->n, &err);
    } else {
        st = molmo_gguf_add_scalar(w, kv->key, kv->type, kv->data, &err);
    }
    if (st != MOLMO_OK) fail_msg("%s", err.msg);
}

static void rewrite(const char *src, const char *dst, const edit *e) {
    molmo_gguf g;
    molmo_error err = {0};
    if (molmo_gguf_open(&g, src, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_gguf_writer *w = NULL;
    assert_int_equal(molmo_gguf_writer_create(&w, &err), MOLMO_OK);
    for (int i = 0; i < g.n_kv; i++) {
        if (e->key && !strcmp(g.kv[i].key, e->key)) continue;
        copy_kv(w, &g.kv[i]);
    }
    if (e->key && e->value)
        assert_int_equal(molmo_gguf_add_str(w, e->key, e->value, strlen(e->value), &err), MOLMO_OK);
    static copy_src c;
    int n = 0;
    for (int i = 0; i < g.st.n_tensors; i++) {
        const molmo_st_tensor *t = &g.st.tensors[i];
        int hit = e->tensor && !strcmp(t->name, e->tensor);
        if (hit && !e->requant) continue;
        assert_true(n < 1024);
        c.t[n] = t;
        c.out[n] = hit ? MOLMO_DTYPE_Q8_0 : t->dtype;
        assert_int_equal(molmo_gguf_add_tensor(w, t->name, c.out[n], t->n_dims, t->shape, &err),
                         MOLMO_OK);
        n++;
    }
    if (molmo_gguf_writer_write(w, dst, copy_fill, &c, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_gguf_writer_free(w);
    molmo_gguf_close(&g);
}

static void expect_load(const char *path, molmo_status code, const char *needle, const char *what) {
    molmo_model *m = NULL;
    molmo_error err = {0};
    molmo_status st = molmo_model_load(path, NULL, &m, &err);
    if (st != code || !strstr(err.msg, needle) || (code != MOLMO_OK && m))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\"", what, molmo_status_str(st), err.msg,
                 molmo_status_str(code), needle);
    if (getenv("MOLMO_TEST_VERBOSE")) print_message("%s: %s\n", what, err.msg);
    molmo_model_free(m);
}

/* A write that fails (here a file-size limit standing in for a full disk) is an I/O error
 * naming the file, and leaves neither the GGUF nor its .part behind. */
static void test_convert_disk_full(void **state) {
    (void)state;
    char dir[1024], out[1024], part[1100];
    model_dir(dir, sizeof dir, "olmoe");
    snprintf(out, sizeof out, "%s/full.gguf", tmpdir);
    snprintf(part, sizeof part, "%s.part", out);
    molmo_convert_params p = molmo_convert_default_params();
    p.type = MOLMO_DTYPE_Q8_0;
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 256 * 1024; /* the GGUF is larger: its 2 MiB-aligned writes fail */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of the signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    molmo_error err = {0};
    const molmo_status st = molmo_convert(dir, out, &p, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    if (st != MOLMO_ERR_IO || !strstr(err.msg, part) || !strstr(err.msg, "cannot write"))
        fail_msg("got %s \"%s\"", molmo_status_str(st), err.msg);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(access(part, F_OK), -1);
}

static void test_load_errors(void **state) {
    char good[1024], bad[1200];
    convert("qwen2", MOLMO_DTYPE_F32, good, sizeof good);
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir);
    static const struct {
        edit e;
        molmo_status code;
        const char *needle;
    } cases[] = {
        {{"general.architecture", "llama", NULL, 0}, MOLMO_ERR_UNSUPPORTED, "\"llama\""},
        {{"general.architecture", NULL, NULL, 0}, MOLMO_ERR_NOT_FOUND, "general.architecture"},
        {{"molmo.format_version", NULL, NULL, 0}, MOLMO_ERR_NOT_FOUND, "molmo.format_version"},
        {{"molmo.config_json", NULL, NULL, 0}, MOLMO_ERR_NOT_FOUND, "'molmo.config_json'"},
        {{"molmo.config_json", "{\"d_model\": 64", NULL, 0}, MOLMO_ERR_FORMAT,
         "molmo.config_json"},
        {{"molmo.config_json", "{\"hidden_size\": 32, \"num_hidden_layers\": 3, "
                               "\"num_attention_heads\": 4, \"intermediate_size\": 192, "
                               "\"vocab_size\": 1024, \"embedding_size\": 1024}",
          NULL, 0}, MOLMO_ERR_FORMAT, "shape"},
        {{"molmo.tokenizer_json", "[]", NULL, 0}, MOLMO_ERR_FORMAT, "molmo.tokenizer_json"},
        {{"molmo.preprocessor_config_json", "{\"max_crops\": -3}", NULL, 0}, MOLMO_ERR_FORMAT,
         "molmo.preprocessor_config_json"},
        {{NULL, NULL, "model.transformer.ln_f.weight", 0}, MOLMO_ERR_NOT_FOUND,
         "'model.transformer.ln_f.weight' is missing"},
        {{NULL, NULL, "model.transformer.ln_f.weight", 1}, MOLMO_ERR_UNSUPPORTED,
         "'model.transformer.ln_f.weight' is q8_0"},
        {{NULL, NULL, "model.vision_backbone.pad_embed", 1}, MOLMO_ERR_UNSUPPORTED,
         "'model.vision_backbone.pad_embed' is q8_0"},
        {{NULL, NULL, "vit.blk.3.attention.wq.weight", 0}, MOLMO_ERR_NOT_FOUND,
         "'model.vision_backbone.image_vit.transformer.resblocks.3.attention.wq.weight'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(good, bad, &cases[i].e);
        char what[64];
        snprintf(what, sizeof what, "case %zu", i);
        expect_load(bad, cases[i].code, cases[i].needle, what);
        expect_load(bad, cases[i].code, "bad.gguf", what); /* the file is named too */
    }
    /* without the optional texts a GGUF still loads, like a directory without the files */
    edit no_tok = {"molmo.tokenizer_json", NULL, NULL, 0};
    rewrite(good, bad, &no_tok);
    molmo_model *m = NULL;
    molmo_error err = {0};
    assert_int_equal(molmo_model_load(bad, NULL, &m, &err), MOLMO_OK);
    molmo_model_info info;
    molmo_model_get_info(m, &info);
    assert_false(info.has_tokenizer);
    assert_null(molmo_model_tokenizer(m));
    molmo_model_free(m);
    /* a truncated file, and a file that is neither a directory nor a GGUF */
    FILE *in = fopen(good, "rb"), *out = fopen(bad, "wb");
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, out);
    fclose(in);
    fclose(out);
    expect_load(bad, MOLMO_ERR_FORMAT, "bad.gguf", "truncated");
    char png[1024];
    expect_load(tu_data_path(png, sizeof png, "images/tiny_50x30.png"), MOLMO_ERR_INVALID_ARG,
                "GGUF", "a PNG");
}

/* ---- --no-mmap: the weights copied into the process's memory -------------------------------- */

/* The same logits, bit for bit, from a model read into memory as from its mapping: a GGUF
 * (q8_0) and a safetensors checkpoint. */
static void test_no_mmap_identical(void **state) {
    (void)state;
    static const char *const models[] = {"olmoe", "qwen2"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        if (k == 0)
            convert(models[k], MOLMO_DTYPE_Q8_0, path, sizeof path);
        else
            model_dir(path, sizeof path, models[k]);
        int done = 0;
        for (int i = 0; i < tu_n_golden_cases && !done; i++) {
            if (strcmp(tu_golden_cases[i].model, models[k]) || !quick_case(tu_golden_cases[i].name))
                continue;
            run a, b;
            run_case(path, models[k], tu_golden_cases[i].name, &a);
            g_no_mmap = 1;
            run_case(path, models[k], tu_golden_cases[i].name, &b);
            g_no_mmap = 0;
            assert_true(a.n_steps >= 1 && a.n_steps == b.n_steps && a.E == b.E);
            if (memcmp(a.logits, b.logits, (size_t)a.n_steps * (size_t)a.E * sizeof(float)))
                fail_msg("%s/%s: --no-mmap changed the logits", models[k], tu_golden_cases[i].name);
            free(a.logits);
            free(b.logits);
            done = 1;
        }
        assert_true(done);
    }
}

/* The teacher-forced logits of golden case `name`'s text alone (the image left out: the
 * reference kernels are slow on the ViT, and the layouts' products are compared one by one in
 * test_kernels_quant) on the reference kernels, forced after a load with or without no_mmap
 * (the layouts are chosen at load). */
static void ref_text_only(const char *path, const char *model, const char *name, int no_mmap,
                          run *r) {
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_model_params mp = molmo_model_default_params();
    mp.no_mmap = no_mmap;
    assert_int_equal(molmo_model_load(path, &mp, &m, &err), MOLMO_OK);
    golden_input in;
    golden_input_open(&in, model, name);
    molmo_image_free(in.img);
    in.img = NULL;
    molmo_kernels_force_reference(1);
    teacher_forced(m, &in, r);
    molmo_kernels_force_reference(0);
    json_decref(in.j);
    molmo_model_free(m);
}

/* --no-mmap lays q8_0 and q4_0 matrices out as Q8_0_X16 / Q4_0_X16 (model/repack.c) where the
 * kernels read those layouts: every matrix of the language model, the head and the vision
 * tower (all have multiples of 16 rows here); the logits keep their bits against the mapped
 * file and against --no-repack, and the reference kernels (forced after the load) read the
 * layouts too (on the case's text). q4_0 with a q4_0 vision tower, and q8_0. */
static void test_repack(void **state) {
    (void)state;
    static const char *const models[] = {"olmoe", "qwen2"};
    static const molmo_dtype types[] = {MOLMO_DTYPE_Q4_0, MOLMO_DTYPE_Q8_0};
    for (int k = 0; k < 4; k++) {
        char path[1024];
        const molmo_dtype t = types[k / 2];
        convert_vt(models[k % 2], t, t, path, sizeof path);
        int done = 0;
        for (int i = 0; i < tu_n_golden_cases && !done; i++) {
            if (strcmp(tu_golden_cases[i].model, models[k % 2]) || !quick_case(tu_golden_cases[i].name))
                continue;
            const char *name = tu_golden_cases[i].name;
            run mapped, x16, rows, ref_mapped, ref_x16;
            run_case(path, models[k % 2], name, &mapped);
            assert_int_equal(g_n_x16, 0);
            g_no_mmap = 1;
            run_case(path, models[k % 2], name, &x16);
            const int n_x16 = g_n_x16;
            g_no_repack = 1;
            run_case(path, models[k % 2], name, &rows);
            assert_int_equal(g_n_x16, 0);
            g_no_repack = 0;
            g_no_mmap = 0;
            print_message("  %s %s --no-mmap: %d matrices interleaved by 16 rows\n", models[k % 2],
                          molmo_dtype_name(t), n_x16);
            if (molmo_kernels_x16()) {
                /* ViT: 6 a layer; connector: 4 + 3; LLM: attention 2 a layer, and the dense
                 * MLP's 2 or the experts' 3 each; the head (q8_0) */
                assert_true(n_x16 >= 7 + 6 + 4 * 3 + 1);
            } else {
                assert_int_equal(n_x16, 0);
            }
            const size_t bytes = (size_t)mapped.n_steps * (size_t)mapped.E * sizeof(float);
            assert_true(mapped.n_steps >= 1 && x16.n_steps == mapped.n_steps && rows.n_steps == mapped.n_steps);
            if (memcmp(mapped.logits, x16.logits, bytes) || memcmp(mapped.logits, rows.logits, bytes))
                fail_msg("%s/%s: the %s layout changed the logits", models[k % 2], name, molmo_dtype_name(t));
            ref_text_only(path, models[k % 2], name, 0, &ref_mapped);
            ref_text_only(path, models[k % 2], name, 1, &ref_x16);
            assert_int_equal(ref_x16.n_steps, ref_mapped.n_steps);
            if (memcmp(ref_mapped.logits, ref_x16.logits, bytes))
                fail_msg("%s/%s: the reference kernels read the %s layout wrong", models[k % 2], name,
                         molmo_dtype_name(t));
            free(mapped.logits);
            free(x16.logits);
            free(rows.logits);
            free(ref_mapped.logits);
            free(ref_x16.logits);
            done = 1;
        }
        assert_true(done);
    }
}

/* A q8_0 / q4_0 matrix of n rows and k columns in a heap buffer: arbitrary bytes (laid out,
 * never multiplied). */
static molmo_tensor fake_matrix(molmo_dtype t, int64_t n, int64_t k) {
    const size_t bytes = molmo_dtype_row_bytes(t, k) * (size_t)n;
    uint8_t *b = malloc(bytes);
    assert_non_null(b);
    for (size_t i = 0; i < bytes; i++) b[i] = (uint8_t)(i * 2654435761u >> 11);
    return (molmo_tensor){.data = b, .dtype = t, .n_dims = 2, .shape = {n, k}};
}

/* Which matrices molmo_model_repack lays out, on a hand-made model: q8_0 and q4_0 matrices with
 * a multiple of 16 rows, each exactly as molmo_x16_pack lays it out; not a matrix of 40 rows,
 * an f32 one, the embeddings (read by rows) or the router; nothing on the reference kernels. */
static void test_repack_rules(void **state) {
    (void)state;
    molmo_model m;
    memset(&m, 0, sizeof m);
    m.path = "hand-made";
    m.cfg.n_layers = 1;
    molmo_llm_layer L;
    memset(&L, 0, sizeof L);
    m.w.layers = &L;
    L.att_proj = fake_matrix(MOLMO_DTYPE_Q4_0, 48, 64);
    L.attn_out = fake_matrix(MOLMO_DTYPE_Q8_0, 40, 64);  /* 40 rows: kept */
    L.ff_proj = fake_matrix(MOLMO_DTYPE_Q8_0, 32, 96);
    L.router = fake_matrix(MOLMO_DTYPE_Q8_0, 16, 64);    /* not a role of the layouts */
    m.w.wte = fake_matrix(MOLMO_DTYPE_Q4_0, 32, 64);     /* embeddings: read by rows */
    m.w.lm_head = fake_matrix(MOLMO_DTYPE_Q4_0, 16, 96);
    L.ff_out = (molmo_tensor){.data = calloc(16 * 64, 4), .dtype = MOLMO_DTYPE_F32, .n_dims = 2,
                              .shape = {16, 64}};
    molmo_tensor *all[] = {&L.att_proj, &L.attn_out, &L.ff_proj, &L.router, &m.w.wte,
                           &m.w.lm_head, &L.ff_out};
    const int laid[] = {1, 0, 1, 0, 0, 1, 0};
    enum { N_ALL = sizeof all / sizeof all[0] };
    uint8_t *want[N_ALL];
    for (int i = 0; i < N_ALL; i++) { /* what each should hold afterwards */
        const molmo_tensor *t = all[i];
        const size_t bytes = molmo_dtype_row_bytes(t->dtype, t->shape[1]) * (size_t)t->shape[0];
        want[i] = malloc(bytes);
        assert_non_null(want[i]);
        memcpy(want[i], t->data, bytes);
        if (laid[i] && molmo_kernels_x16()) {
            void *tmp = malloc(16 * molmo_dtype_row_bytes(t->dtype, t->shape[1]));
            molmo_x16_pack(t->dtype, want[i], t->shape[0], t->shape[1], tmp);
            free(tmp);
        }
    }
    const molmo_dtype before[N_ALL] = {all[0]->dtype, all[1]->dtype, all[2]->dtype, all[3]->dtype,
                                       all[4]->dtype, all[5]->dtype, all[6]->dtype};
    for (int ref = 1; ref >= 0; ref--) { /* the reference kernels first: nothing */
        molmo_kernels_force_reference(ref);
        const int n = molmo_model_repack(&m, NULL, NULL);
        molmo_kernels_force_reference(0);
        if (ref) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_int_equal(n, molmo_kernels_x16() ? 3 : 0);
    }
    for (int i = 0; i < N_ALL; i++) {
        const molmo_tensor *t = all[i];
        const molmo_dtype st = molmo_dtype_stored(t->dtype);
        assert_int_equal(st, before[i]);
        assert_int_equal(molmo_dtype_is_x16(t->dtype), laid[i] && molmo_kernels_x16());
        assert_memory_equal(t->data, want[i], molmo_dtype_row_bytes(st, t->shape[1]) * (size_t)t->shape[0]);
        free((void *)t->data);
        free(want[i]);
    }
}

/* molmo_mapfile_to_ram: the same bytes at the same address, no longer backed by the file (it
 * can be cut short and the copy still reads); a file that changed size is refused by name. */
static void test_mapfile_to_ram(void **state) {
    (void)state;
    char path[] = "/tmp/molmo_to_ram_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    enum { N = 3 * 1024 * 1024 + 77 }; /* more than a huge page, not a multiple of a page */
    unsigned char *want = malloc(N);
    assert_non_null(want);
    for (size_t i = 0; i < N; i++) want[i] = (unsigned char)(i * 2654435761u >> 13);
    assert_int_equal(write(fd, want, N), N);
    molmo_mapfile m;
    molmo_error err = {0};
    assert_int_equal(molmo_mapfile_open(&m, path, &err), MOLMO_OK);
    const unsigned char *at = m.data;
    assert_int_equal(molmo_mapfile_to_ram(&m, path, &err), MOLMO_OK);
    assert_ptr_equal(m.data, at);
    assert_int_equal(m.size, N);
    assert_int_equal(ftruncate(fd, 0), 0); /* a mapping would now fault (SIGBUS) */
    assert_memory_equal(m.data, want, N);
    molmo_mapfile_close(&m);

    assert_int_equal(write(fd, want, 4096), 4096); /* at offset N: a sparse file of N + 4096 */
    assert_int_equal(molmo_mapfile_open(&m, path, &err), MOLMO_OK);
    at = m.data;
    assert_int_equal(ftruncate(fd, 100), 0);
    assert_int_equal(molmo_mapfile_to_ram(&m, path, &err), MOLMO_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "changed size"));
    assert_ptr_equal(m.data, at); /* still the mapping, closed as one */
    assert_int_equal(m.size, N + 4096);
    molmo_mapfile_close(&m);

    /* more than the memory available (a sparse file of 1 TiB): refused before any allocation,
     * by name, the mapping kept. Only where the kernel reports MemAvailable: elsewhere the check
     * cannot run and the copy would be attempted. */
    FILE *mi = fopen("/proc/meminfo", "r");
    if (mi && ftruncate(fd, (off_t)1 << 40) == 0) {
        fclose(mi);
        mi = NULL;
        assert_int_equal(molmo_mapfile_open(&m, path, &err), MOLMO_OK);
        at = m.data;
        assert_int_equal(molmo_mapfile_to_ram(&m, path, &err), MOLMO_ERR_NOMEM);
        assert_non_null(strstr(err.msg, path));
        assert_non_null(strstr(err.msg, "memory available"));
        assert_ptr_equal(m.data, at);
        molmo_mapfile_close(&m);
    }
    if (mi) fclose(mi);
    close(fd);
    unlink(path);
    free(want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_names_fit_ggml),
        cmocka_unit_test(test_f32_bit_identical),
        cmocka_unit_test(test_quantized_types),
        cmocka_unit_test(test_bf16_act_keeps_residual),
        cmocka_unit_test(test_dequantized_equivalence),
        cmocka_unit_test(test_convert_api),
        cmocka_unit_test(test_convert_disk_full),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_no_mmap_identical),
        cmocka_unit_test(test_repack),
        cmocka_unit_test(test_repack_rules),
        cmocka_unit_test(test_mapfile_to_ram),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_bench.c — the measuring side of `molmo bench` (include/molmo.h, section bench): machine
 * baselines (positive and finite where the CPU has the instructions, zero where not asked,
 * bad arguments refused), costs against counts derived by hand from the fixture's config,
 * the stage timers on the olmoe fixture (and that they leave the context as they found it),
 * the generated tokenizer, the random weights (the same bytes for any thread count) and the
 * reuse rules of molmo_bench_model_create on a sparse full-size MolmoE-1B. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/synth.h"
#include "model/context.h"
#include "model/decoder.h"
#include "model/presets.h"
#include "testutil.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/molmo_test_bench_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static molmo_bench_machine_params small_params(int threads) {
    molmo_bench_machine_params p = molmo_bench_machine_default_params();
    p.n_threads = threads;
    p.read_bytes = 8u << 20;
    p.peak_iters = 20000;
    p.reps = 2;
    return p;
}

static void test_machine_measures(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        molmo_bench_machine_params p = small_params(t);
        molmo_bench_machine m;
        molmo_error err;
        assert_int_equal(molmo_bench_machine_measure(&p, &m, &err), MOLMO_OK);
        assert_int_equal(m.n_threads, t);
        assert_true(m.n_physical >= 1 && m.n_logical >= m.n_physical);
        assert_true(m.cpu[0] != '\0' && m.kernels && m.fma_isa && m.vnni_isa && m.bf16_isa);
        assert_true(isfinite(m.read_gbs) && m.read_gbs > 0.1);
        const double got[3] = {m.fma_gflops, m.vnni_gops, m.bf16_gflops};
        const char *isa[3] = {m.fma_isa, m.vnni_isa, m.bf16_isa};
        for (int i = 0; i < 3; i++) {
            assert_true(isfinite(got[i]));
            if (strcmp(isa[i], "none")) assert_true(got[i] > 1.0); /* GFLOP/s */
            else assert_true(got[i] == 0);
        }
        if (getenv("MOLMO_TEST_VERBOSE"))
            printf("%d threads: read %.1f GB/s, FMA %.0f, VNNI %.0f, BF16 %.0f\n", t, m.read_gbs,
                   m.fma_gflops, m.vnni_gops, m.bf16_gflops);
    }
}

static void test_machine_only_what_asked(void **state) {
    (void)state;
    molmo_bench_machine_params p = small_params(1);
    molmo_bench_machine m;
    p.what = MOLMO_BENCH_FMA;
    assert_int_equal(molmo_bench_machine_measure(&p, &m, NULL), MOLMO_OK);
    assert_true(m.read_gbs == 0 && m.vnni_gops == 0 && m.bf16_gflops == 0);
    assert_true(strcmp(m.fma_isa, "none") == 0 || m.fma_gflops > 0);
    p.what = 0; /* only the description */
    assert_int_equal(molmo_bench_machine_measure(&p, &m, NULL), MOLMO_OK);
    assert_true(m.fma_gflops == 0 && m.cpu[0] && m.n_threads == 1);
}

static void test_machine_bad_args(void **state) {
    (void)state;
    molmo_bench_machine m;
    molmo_error err;
    struct {
        molmo_bench_machine_params p;
        const char *msg;
    } bad[5];
    for (int i = 0; i < 5; i++) bad[i].p = small_params(1);
    bad[0].p.reps = 0, bad[0].msg = "reps";
    bad[1].p.read_bytes = 1000, bad[1].msg = "1 MiB";
    bad[2].p.what = 64, bad[2].msg = "unknown";
    bad[3].p.n_threads = 300, bad[3].msg = "threads";
    bad[4].p.peak_iters = 0, bad[4].msg = "peak_iters";
    for (int i = 0; i < 5; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(molmo_bench_machine_measure(&bad[i].p, &m, &err), MOLMO_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, bad[i].msg));
    }
    assert_int_equal(molmo_bench_machine_measure(NULL, NULL, &err), MOLMO_ERR_INVALID_ARG);
}

static molmo_model *load_fixture(const char *name) {
    char path[1024], rel[64];
    snprintf(rel, sizeof rel, "models/%s", name);
    molmo_model *m = NULL;
    molmo_error err;
    if (molmo_model_load(tu_data_path(path, sizeof path, rel), NULL, &m, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    return m;
}

/* With a model, the read loop also streams its weights where they lie (a fixture's file is
 * smaller than read_bytes: all of it); without one, or without MOLMO_BENCH_READ, it does not. */
static void test_machine_weights_read(void **state) {
    (void)state;
    molmo_model *model = load_fixture("olmoe");
    molmo_bench_machine_params p = small_params(2);
    molmo_bench_machine m;
    p.model = model;
    assert_int_equal(molmo_bench_machine_measure(&p, &m, NULL), MOLMO_OK);
    assert_true(isfinite(m.weights_read_gbs) && m.weights_read_gbs > 0.1);
    p.what = MOLMO_BENCH_FMA;
    assert_int_equal(molmo_bench_machine_measure(&p, &m, NULL), MOLMO_OK);
    assert_true(m.weights_read_gbs == 0);
    p = small_params(1);
    assert_int_equal(molmo_bench_machine_measure(&p, &m, NULL), MOLMO_OK);
    assert_true(m.weights_read_gbs == 0 && m.read_gbs > 0);
    molmo_model_free(model);
}

/* The olmoe fixture (tests/data/README.md): d 64, 3 layers, 4 heads (MHA), 8 experts top-2,
 * expert hidden 96, embedding 768 (+128 new); ViT width 64, MLP 128, 10 blocks with features
 * of blocks 8 and 1 (so 9 run); projector hidden 96; all f32. */
static void test_costs_by_hand(void **state) {
    (void)state;
    molmo_model *m = load_fixture("olmoe");
    molmo_bench_costs c;
    assert_int_equal(molmo_bench_costs_get(m, 100, &c, NULL), MOLMO_OK);
    const double D = 64, F = 96, L = 3, E = 768, n = 100;
    /* att_proj 192x64, attn_out 64x64, router 8x64, 2 experts x 3 matrices 96x64 */
    const double tok_layer = 2 * (192 * D + D * D + 8 * D + 2 * 3 * F * D);
    assert_true(fabs(c.prefill_flop - (n * L * tok_layer + L * 2 * n * (n + 1) * D + 2 * D * E)) <
                1);
    assert_true(fabs(c.decode_flop - (L * (tok_layer + 4 * (n + 1) * D) + 2 * D * E)) < 1);
    /* per layer: 4 norm vectors of 64, the matrices above; then ln_f, lm_head, one wte row */
    const uint64_t layer = 4 * (4 * 64 + 192 * 64 + 64 * 64 + 8 * 64 + 2 * 3 * 96 * 64);
    assert_int_equal(c.decode_bytes, 3 * layer + 4 * (64 + 768 * 64 + 64));
    /* ViT: 577 tokens, 9 blocks; connector: pooling 144 windows of 4, projector 64->96->64 */
    const double T = 577, P = 576, W = 64, Fv = 128, Q = 144;
    const double block = 8 * T * W * W + 4 * T * W * Fv + 4 * T * T * W;
    const double conn = 2 * Q * 2 * W * W + 4 * P * 2 * W * W + 16 * Q * W + 2 * Q * W * W +
                        4 * Q * W * 96 + 2 * Q * 96 * D;
    assert_true(fabs(c.vision_flop_per_crop - (2 * P * 588 * W + 9 * block + conn)) < 1);
    assert_int_equal(c.llm_type, MOLMO_DTYPE_F32);
    assert_int_equal(c.vision_type, MOLMO_DTYPE_F32);
    molmo_model_info info;
    molmo_model_get_info(m, &info);
    assert_int_equal(c.llm_bytes + c.vision_bytes, info.weight_bytes);
    molmo_error err;
    assert_int_equal(molmo_bench_costs_get(m, 0, &c, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_bench_costs_get(NULL, 5, &c, &err), MOLMO_ERR_INVALID_ARG);
    molmo_model_free(m);
}

static molmo_image *test_image(void) {
    static unsigned char rgb[96 * 64 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (unsigned char)(i * 2654435761u >> 24);
    molmo_image *img = NULL;
    assert_int_equal(molmo_image_from_rgb(rgb, 96, 64, 0, &img, NULL), MOLMO_OK);
    return img;
}

static void assert_stat(const molmo_bench_stat *s, int reps) {
    assert_int_equal(s->reps, reps);
    assert_true(isfinite(s->mean_s) && s->mean_s > 0 && s->best_s > 0 && s->best_s <= s->mean_s);
    assert_true(isfinite(s->sd_s) && s->sd_s >= 0);
}

/* Vision, prefill and decode on the fixture; afterwards the context answers exactly as a
 * fresh one does (the decode steps were cut back off the KV cache). */
static void test_stages_on_fixture(void **state) {
    (void)state;
    molmo_model *m = load_fixture("olmoe");
    molmo_image *img = test_image();
    molmo_context *ctx = NULL, *fresh = NULL;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = 2;
    assert_int_equal(molmo_context_create(m, &cp, &ctx, NULL), MOLMO_OK);
    assert_int_equal(molmo_context_create(m, &cp, &fresh, NULL), MOLMO_OK);
    molmo_bench_stat st;
    molmo_error err;
    assert_int_equal(molmo_bench_vision(ctx, 3, &st, &err), MOLMO_OK);
    assert_stat(&st, 3);
    molmo_bench_prefill_result pr;
    assert_int_equal(molmo_bench_prefill(ctx, img, "Describe this image.", 0, 2, &pr, &err),
                     MOLMO_OK);
    assert_stat(&pr.time, 2);
    assert_true(pr.n_crops >= 1 && pr.n_prompt > pr.n_crops * 144 / 4 && pr.image_s > 0);
    assert_int_equal(molmo_decoder_n_past(ctx->dec), pr.n_prompt);
    assert_int_equal(molmo_bench_decode(ctx, 5, 2, &st, &err), MOLMO_OK);
    assert_stat(&st, 2);
    assert_int_equal(molmo_decoder_n_past(ctx->dec), pr.n_prompt);
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = 6;
    const molmo_message msg = {"user", "Describe this image."};
    molmo_generation *a = NULL, *b = NULL;
    assert_int_equal(molmo_generate(ctx, img, &msg, 1, &gp, &a, &err), MOLMO_OK);
    assert_int_equal(molmo_generate(fresh, img, &msg, 1, &gp, &b, &err), MOLMO_OK);
    assert_int_equal(a->cached_tokens, pr.n_prompt - 1); /* the prompt was still cached */
    assert_int_equal(a->n_tokens, b->n_tokens);
    assert_memory_equal(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t));
    molmo_generation_free(a);
    molmo_generation_free(b);
    molmo_context_free(fresh);
    molmo_context_free(ctx);
    molmo_image_free(img);
    molmo_model_free(m);
}

static void test_stage_bad_args(void **state) {
    (void)state;
    molmo_model *m = load_fixture("qwen2");
    molmo_context *ctx = NULL;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_ctx = 64;
    assert_int_equal(molmo_context_create(m, &cp, &ctx, NULL), MOLMO_OK);
    molmo_bench_stat st;
    molmo_bench_prefill_result pr;
    molmo_error err;
    assert_int_equal(molmo_bench_vision(ctx, 0, &st, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_bench_vision(NULL, 1, &st, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_bench_prefill(ctx, NULL, NULL, 0, 1, &pr, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_bench_decode(ctx, 0, 1, &st, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_bench_decode(ctx, 4, 1001, &st, &err), MOLMO_ERR_INVALID_ARG);
    /* an empty cache starts from BOS: 63 steps fit a 64-position context, 64 do not */
    assert_int_equal(molmo_bench_decode(ctx, 64, 1, &st, &err), MOLMO_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "64"));
    assert_int_equal(molmo_bench_decode(ctx, 63, 1, &st, &err), MOLMO_OK);
    assert_int_equal(molmo_decoder_n_past(ctx->dec), 1);
    molmo_context_free(ctx);
    molmo_model_free(m);
}

/* The generated tokenizer: special ids where the model has them, whole-word tokens. */
static void test_text_files(void **state) {
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/text", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const molmo_bench_text_ids ids = {50279, 50280};
    molmo_error err;
    assert_int_equal(molmo_bench_write_text_files(dir, &ids, &err), MOLMO_OK);
    molmo_tokenizer *tok = NULL;
    if (molmo_tokenizer_load(dir, &tok, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_tokenizer_info ti;
    molmo_tokenizer_get_info(tok, &ti);
    assert_int_equal(ti.eos_id, 50279);
    static const char *const names[] = {"<im_start>", "<im_end>", "<im_patch>", "<im_col>",
                                        "<|image|>"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(molmo_tokenizer_token_to_id(tok, names[i], strlen(names[i])),
                         50280 + i);
    const char *text = " User: Describe this image. Assistant:";
    int32_t out[64];
    size_t n = 0;
    assert_int_equal(molmo_tokenizer_encode(tok, text, strlen(text), out, 64, &n, &err),
                     MOLMO_OK);
    assert_int_equal(n, 8); /* " User" ":" " Describe" " this" " image" "." " Assistant" ":" */
    char back[128];
    size_t len = 0;
    assert_int_equal(molmo_tokenizer_decode(tok, out, n, 0, back, sizeof back, &len, &err),
                     MOLMO_OK);
    assert_string_equal(back, text);
    molmo_tokenizer_free(tok);
}

static int cancel_at_once(void *user, const molmo_bench_progress *p) {
    (void)user;
    assert_string_equal(p->phase, "weights");
    return 1;
}

typedef struct fill_reports {
    int n;
    uint64_t first, last, total;
    int backwards; /* a report with fewer bytes than the one before */
} fill_reports;

static int record_report(void *user, const molmo_bench_progress *p) {
    fill_reports *r = user;
    assert_string_equal(p->phase, "weights");
    if (r->n == 0) r->first = p->bytes_done;
    else if (p->bytes_done < r->last) r->backwards = 1;
    r->last = p->bytes_done;
    r->total = p->bytes_total;
    r->n++;
    return 0;
}

static void read_file(const char *path, unsigned char **data, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*n);
    assert_int_equal(fread(*data, 1, *n, f), *n);
    fclose(f);
}

/* Random weights: the same bytes whatever the thread count, another seed other bytes, values
 * in range (norm weights around 1), and a cancelled fill reports it. */
static void test_fill_random(void **state) {
    (void)state;
    char cfg_path[1024], dir[300], st_path[400];
    unsigned char *cfg, *a, *b;
    size_t n_cfg, na, nb;
    read_file(tu_data_path(cfg_path, sizeof cfg_path, "models/qwen2/config.json"), &cfg, &n_cfg);
    cfg = realloc(cfg, n_cfg + 3);
    cfg[n_cfg] = '\0';
    /* MLP matrices of 1.28 M values: tensors of two generator pieces, in a file of eight
     * 2 MiB blocks (16.6 MB) that the threads share */
    char *mlp = strstr((char *)cfg, "\"intermediate_size\": 192");
    assert_non_null(mlp);
    memmove(mlp + 26, mlp + 24, strlen(mlp + 24) + 1);
    memcpy(mlp, "\"intermediate_size\": 20000", 26);
    snprintf(dir, sizeof dir, "%s/fill", tmpdir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    molmo_error err;
    unsigned char *files[3];
    size_t sizes[3];
    const struct { uint64_t seed; int threads; } runs[3] = {{7, 1}, {7, 3}, {8, 2}};
    for (int r = 0; r < 3; r++) {
        assert_int_equal(molmo_synth_checkpoint(dir, (char *)cfg, MOLMO_DTYPE_BF16, 0, 0, &err),
                         MOLMO_OK);
        /* reports from 0 to every byte, whichever thread wrote what */
        fill_reports rep = {0};
        assert_int_equal(molmo_bench_fill_random(st_path, runs[r].seed, runs[r].threads,
                                                 r ? record_report : NULL, &rep, &err),
                         MOLMO_OK);
        read_file(st_path, &files[r], &sizes[r]);
        if (r) {
            assert_true(rep.n >= 2);
            assert_int_equal(rep.first, 0);
            assert_int_equal(rep.last, rep.total);
            assert_false(rep.backwards);
        }
    }
    a = files[0], na = sizes[0], b = files[1], nb = sizes[1];
    /* the bytes of seed 7 are those every earlier version wrote (FNV-1a of the file): cached
     * bench models stay what they were */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < na; i++) h = (h ^ a[i]) * 0x100000001b3ull;
    assert_int_equal(na, 16618976);
    assert_int_equal(h, 0xd7d69f3a495476ebull);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(sizes[2], na);
    assert_true(memcmp(files[2], a, na) != 0);
    /* every tensor in range: load it and look at two */
    molmo_safetensors st;
    assert_int_equal(molmo_st_open(&st, st_path, &err), MOLMO_OK);
    int checked = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const molmo_st_tensor *t = &st.tensors[i];
        const char *dot = strrchr(t->name, '.');
        const int norm = t->n_dims == 1 && !strcmp(dot, ".weight") &&
                         (strstr(t->name, "norm") || strstr(t->name, "ln")); /* LayerNorm/RMSNorm */
        const float centre = norm ? 1.0f : 0.0f;
        double sum = 0;
        for (uint64_t k = 0; k < t->n_elements; k++) {
            uint32_t bits = (uint32_t)((const uint16_t *)t->data)[k] << 16;
            float v;
            memcpy(&v, &bits, 4);
            /* the range, widened by bf16's rounding: half an ulp, 2^-9 relative */
            if (!(fabsf(v - centre) <= 0.05f + (fabsf(centre) + 0.05f) / 512))
                fail_msg("%s[%llu] = %g", t->name, (unsigned long long)k, (double)v);
            sum += v - centre;
        }
        if (t->n_elements >= 4096) assert_true(fabs(sum / (double)t->n_elements) < 0.005);
        checked++;
    }
    assert_true(checked > 100);
    molmo_st_close(&st);
    assert_int_equal(molmo_bench_fill_random(st_path, 7, 2, cancel_at_once, NULL, &err),
                     MOLMO_ERR_CANCELLED);
    for (int r = 0; r < 3; r++) free(files[r]);
    free(cfg);
}

static void test_model_create_args(void **state) {
    (void)state;
    char out[4096];
    molmo_error err;
    molmo_bench_model_params p = molmo_bench_model_default_params();
    assert_int_equal(molmo_bench_model_create("molmo-13b", tmpdir, &p, out, sizeof out, NULL,
                                              &err), MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "molmo-13b"));
    assert_non_null(strstr(err.msg, "molmoe-1b"));
    p.type = MOLMO_DTYPE_I32;
    assert_int_equal(molmo_bench_model_create("molmoe-1b", tmpdir, &p, out, sizeof out, NULL,
                                              &err), MOLMO_ERR_INVALID_ARG);
    p = molmo_bench_model_default_params();
    char file[300];
    snprintf(file, sizeof file, "%s/plain-file", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    assert_int_equal(molmo_bench_model_create("molmoe-1b", file, &p, out, sizeof out, NULL,
                                              &err), MOLMO_ERR_IO);
    assert_non_null(strstr(err.msg, "plain-file"));
    const char *repo = NULL;
    assert_string_equal(molmo_bench_preset(0, &repo), "molmoe-1b");
    assert_string_equal(repo, "allenai/MolmoE-1B-0924");
    assert_null(molmo_bench_preset(4, NULL));
    assert_null(molmo_bench_preset(-1, NULL));
}

/* Sparse zeros (no disk, instant): generated once, then reused; a changed record makes it
 * generate again; bf16 means the checkpoint itself, which loads with the real special ids. */
static void test_model_create_reuse(void **state) {
    (void)state;
    char out[4096], dir[300];
    snprintf(dir, sizeof dir, "%s/models", tmpdir);
    molmo_error err;
    molmo_bench_model_params p = molmo_bench_model_default_params();
    p.weights = MOLMO_BENCH_WEIGHTS_ZEROS;
    p.type = MOLMO_DTYPE_BF16;
    int reused = -1;
    if (molmo_bench_model_create("molmoe-1b", dir, &p, out, sizeof out, &reused, &err) !=
        MOLMO_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(reused, 0);
    char want[400];
    snprintf(want, sizeof want, "%s/molmoe-1b-zeros", dir);
    assert_string_equal(out, want);
    assert_int_equal(molmo_bench_model_create("molmoe-1b", dir, &p, out, sizeof out, &reused,
                                              &err), MOLMO_OK);
    assert_int_equal(reused, 1);
    p.seed = 2; /* another seed: the record no longer matches */
    assert_int_equal(molmo_bench_model_create("molmoe-1b", dir, &p, out, sizeof out, &reused,
                                              &err), MOLMO_OK);
    assert_int_equal(reused, 0);
    char small[8];
    assert_int_equal(molmo_bench_model_create("molmoe-1b", dir, &p, small, sizeof small, NULL,
                                              &err), MOLMO_ERR_INVALID_ARG);
    molmo_model *m = NULL;
    if (molmo_model_load(out, NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_model_info info;
    molmo_model_get_info(m, &info);
    assert_int_equal(info.n_experts, 64);
    assert_int_equal(info.d_model, 2048);
    const molmo_tokenizer *tok = molmo_model_tokenizer(m);
    assert_int_equal(molmo_tokenizer_token_to_id(tok, "<im_patch>", 10), 50282);
    molmo_bench_costs c;
    assert_int_equal(molmo_bench_costs_get(m, 760, &c, &err), MOLMO_OK);
    /* MolmoE-1B reads ~1.18 B parameters per token (16 x (16.8 M attention + 8 of 64 experts
     * x 6.3 M) + the 103 M LM head), 2 bytes each in bf16 */
    assert_true(c.decode_bytes > 2.30e9 && c.decode_bytes < 2.42e9);
    molmo_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_machine_measures),   cmocka_unit_test(test_machine_only_what_asked),
        cmocka_unit_test(test_machine_weights_read),
        cmocka_unit_test(test_machine_bad_args),   cmocka_unit_test(test_costs_by_hand),
        cmocka_unit_test(test_stages_on_fixture),  cmocka_unit_test(test_stage_bad_args),
        cmocka_unit_test(test_text_files),         cmocka_unit_test(test_fill_random),
        cmocka_unit_test(test_model_create_args),  cmocka_unit_test(test_model_create_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

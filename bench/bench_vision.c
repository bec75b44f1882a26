/* bench_vision.c — one 336x336 crop through the full-size ViT-L/14-336 (23 blocks, of which the
 * 22 that feed the features run) plus the connector, with random weights of the real shapes
 * (generated locally, no download), f32 and bf16 weights, and q8_0 / q4_0 (the f32 checkpoint
 * converted to a GGUF with that vision type: int8 VNNI dot products), 1 and 2 threads. Reports seconds
 * per crop, GFLOP/s, and the ratio to this machine's peak measured in the same run (an
 * AVX-512 FMA loop on every thread).
 *
 * The LLM side of the generated checkpoint is a single small layer with MolmoE-1B's width
 * (d_model 2048, projector hidden 1024), so the connector is exactly MolmoE-1B's.
 *
 * usage: bench_vision [--reps N] [--dir TMPDIR] [--types f32,bf16,q8_0,q4_0] [--threads N] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "model/presets.h"
#include "molmo.h"

static const char *config_json =
    "{\"architectures\":[\"MolmoForCausalLM\"],\"model_type\":\"molmo\",\"hidden_size\":2048,"
    "\"num_attention_heads\":16,\"num_key_value_heads\":16,\"num_hidden_layers\":1,"
    "\"intermediate_size\":2048,\"qkv_bias\":false,\"norm_after\":false,"
    "\"attention_layer_norm\":false,\"layer_norm_eps\":1e-05,\"rope_theta\":10000.0,"
    "\"vocab_size\":1024,\"embedding_size\":1024,\"max_position_embeddings\":4096,"
    "\"layer_norm_type\":\"rms\",\"weight_tying\":false}";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* FLOPs of one crop: patch embedding, the blocks that run, pooling, projector. */
static double crop_flops(const molmo_model_info *i) {
    double T = 577, W = i->vit_d_model, F = i->vit_d_ff, P = 576, Q = 144, H = 1024, d = i->d_model;
    int blocks = (i->vit_layer_a > i->vit_layer_b ? i->vit_layer_a : i->vit_layer_b) + 1;
    double block = 2 * T * W * W * 4 + 2 * T * W * F * 2 + 2 * 2 * T * T * W;
    double conn = 2 * Q * 2 * W * W + 2 * 2 * P * 2 * W * W + 2 * Q * W * W + 2 * Q * W * H * 2 +
                  2 * Q * H * d;
    return 2 * P * 588 * W + blocks * block + conn;
}

/* The f32 FMA peak of `threads` threads (the library's loop, molmo bench's baseline). */
static double measure_peak(int threads) {
    molmo_bench_machine_params p = molmo_bench_machine_default_params();
    p.n_threads = threads;
    p.what = MOLMO_BENCH_FMA;
    molmo_bench_machine mb;
    molmo_error err;
    if (molmo_bench_machine_measure(&p, &mb, &err) != MOLMO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    return mb.fma_gflops;
}

static int run(const char *model_path, const char *label, int threads, int reps, double peak) {
    molmo_error err;
    molmo_model *m = NULL;
    if (molmo_model_load(model_path, NULL, &m, &err) != MOLMO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    molmo_model_info info;
    molmo_model_get_info(m, &info);
    molmo_crop_geometry g = molmo_model_crop_geometry(m);
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = threads;
    molmo_context *ctx = NULL;
    if (molmo_context_create(m, &cp, &ctx, &err) != MOLMO_OK) return 1;
    float *img = malloc((size_t)g.n_patches * g.patch_dim * sizeof(float));
    float *mask = malloc((size_t)g.n_patches * sizeof(float));
    float *out = malloc((size_t)g.n_pooled * g.d_model * sizeof(float));
    for (int i = 0; i < g.n_patches * g.patch_dim; i++) img[i] = (float)((i * 7919) % 1000) / 500 - 1;
    for (int i = 0; i < g.n_patches; i++) mask[i] = 1.0f;
    molmo_encode_crops(ctx, img, mask, 1, out, &err); /* warm-up: page in the weights */
    double t[32], mean = 0, sd = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        molmo_encode_crops(ctx, img, mask, 1, out, &err);
        t[r] = now_s() - t0;
        mean += t[r] / reps;
    }
    for (int r = 0; r < reps; r++) sd += (t[r] - mean) * (t[r] - mean);
    sd = reps > 1 ? sqrt(sd / (reps - 1)) : 0;
    double gf = crop_flops(&info) / mean / 1e9;
    printf("| %-5s | %d | %7.3f ± %.3f s | %7.1f | %5.1f%% of %.0f |\n", label, threads, mean, sd,
           gf, 100 * gf / peak, peak);
    free(img);
    free(mask);
    free(out);
    molmo_context_free(ctx);
    molmo_model_free(m);
    return 0;
}

/* The checkpoint (or GGUF) of weight type `name` in dir; path receives what to load. */
static int prepare(const char *dir, const char *name, char *path, size_t cap) {
    molmo_error err;
    const int block = !strcmp(name, "q8_0") || !strcmp(name, "q4_0");
    molmo_dtype st = !strcmp(name, "bf16") ? MOLMO_DTYPE_BF16 : MOLMO_DTYPE_F32;
    if (!block && strcmp(name, "f32") && strcmp(name, "bf16")) {
        fprintf(stderr, "unknown type %s (f32, bf16, q8_0, q4_0)\n", name);
        return -1;
    }
    if (molmo_synth_checkpoint(dir, config_json, st, 1, 1234, &err) != MOLMO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(path, cap, "%s", dir);
    if (!block) return 0;
    molmo_convert_params cp = molmo_convert_default_params();
    cp.type = cp.vision_type = !strcmp(name, "q8_0") ? MOLMO_DTYPE_Q8_0 : MOLMO_DTYPE_Q4_0;
    snprintf(path, cap, "%s/vision-%s.gguf", dir, name);
    if (molmo_convert(dir, path, &cp, &err) != MOLMO_OK) {
        fprintf(stderr, "convert: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int reps = 3, threads = 0;
    const char *base = "/tmp";
    char types[256] = "f32,bf16,q8_0,q4_0";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) base = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) snprintf(types, sizeof types, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    }
    if (reps < 1 || reps > 32) return 2;
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/molmo-bench-vision-XXXXXX", base);
    if (!mkdtemp(dir)) return 1;
    printf("molmo %s — ViT-L/14-336 + connector, one crop, kernels: %s\n", molmo_version(),
           molmo_kernels_name());
    double peak1 = measure_peak(1), peak2 = measure_peak(2);
    printf("measured f32 FMA peak: %.0f GFLOP/s (1 thread), %.0f GFLOP/s (2 threads)\n\n", peak1,
           peak2);
    printf("| wts   | thr | time per crop    | GFLOP/s | of FMA peak |\n");
    printf("|-------|-----|------------------|---------|---------|\n");
    int rc = 0;
    for (char *tok = strtok(types, ","); tok && rc == 0; tok = strtok(NULL, ",")) {
        if (prepare(dir, tok, path, sizeof path) != 0) {
            rc = 1;
            break;
        }
        for (int th = 1; th <= 2; th++)
            if (threads == 0 || threads == th)
                rc |= run(path, tok, th, reps, th == 1 ? peak1 : peak2);
        if (strcmp(path, dir)) unlink(path);
    }
    char f[1100];
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    unlink(f);
    snprintf(f, sizeof f, "%s/config.json", dir);
    unlink(f);
    rmdir(dir);
    return rc;
}

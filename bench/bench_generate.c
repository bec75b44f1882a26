/* bench_generate.c — an answer about a 640x480 image (7 crops, 740 image tokens) on the
 * full-size shapes of a released model, weights generated locally (no download), bf16:
 * time to first token, prefill tok/s, decode tok/s and peak RSS, at 1 and 2 threads.
 *
 * The checkpoint is written as a sparse file of zeros: timing does not depend on the values
 * (dense kernels; MoE still routes every token to top-k experts), and it costs no disk. The
 * tokenizer is the fixture's (the text part is a few tokens; the vocabulary size is the
 * model's for the LM head).
 *
 * With --type q8_0|q4_0|f16|f32 the checkpoint is converted to a GGUF of that type first
 * (molmo_convert; the vision tower per its default policy, or --vision-type). --keep DIR keeps
 * the generated files in DIR and reuses them on the next run (conversion takes a minute).
 *
 * usage: bench_generate [--model molmoe-1b|molmo-7b-d|molmo-7b-o|molmo-72b] [--threads N]
 *                       [--tokens N] [--type T] [--vision-type T] [--keep DIR]
 *                       [--fixtures tests/data] [--dir TMPDIR] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "model/presets.h"
#include "molmo.h"

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b) fclose(b);
    return rc;
}

/* The fixture tokenizer matching the family's token layout (image tokens at vocab_size). */
static const char *fixture_for(const char *preset) {
    if (!strcmp(preset, "molmoe-1b")) return "olmoe";
    if (!strcmp(preset, "molmo-7b-o")) return "olmo";
    return "qwen2";
}

static int run(const char *model_path, int threads, int n_tokens, const molmo_image *img) {
    molmo_error err;
    molmo_model *m = NULL;
    molmo_context *ctx = NULL;
    molmo_generation *g = NULL;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = threads;
    cp.n_ctx = 2048;
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = n_tokens;
    molmo_message msg = {"user", "Describe this image."};
    int rc = 1;
    if (molmo_model_load(model_path, NULL, &m, &err) != MOLMO_OK ||
        molmo_context_create(m, &cp, &ctx, &err) != MOLMO_OK ||
        molmo_generate(ctx, img, &msg, 1, &gp, &g, &err) != MOLMO_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        goto done;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int decoded = g->n_tokens > 1 ? g->n_tokens - 1 : 0;
    printf("| %d | %d | %8.2f s | %6.2f s | %7.1f | %7.2f | %6.1f GiB |\n", threads,
           g->prompt_tokens, (g->image_ms + g->prefill_ms) / 1e3, g->image_ms / 1e3,
           g->n_prefilled / (g->prefill_ms / 1e3), decoded / (g->decode_ms / 1e3),
           ru.ru_maxrss / (1024.0 * 1024.0));
    fflush(stdout);
    rc = 0;
done:
    molmo_generation_free(g);
    molmo_context_free(ctx);
    molmo_model_free(m);
    return rc;
}

static molmo_dtype type_by_name(const char *s) {
    for (int d = 0; d < MOLMO_DTYPE_COUNT; d++)
        if (!strcmp(s, molmo_dtype_name((molmo_dtype)d))) return (molmo_dtype)d;
    return MOLMO_DTYPE_COUNT;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* dir/ gets the sparse bf16 checkpoint and the fixture tokenizer files, unless they are there. */
static int make_checkpoint(const char *dir, const molmo_preset *ps, const char *fixtures) {
    char from[2048], to[2048];
    molmo_error err;
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    if (!file_exists(to) &&
        molmo_synth_checkpoint(dir, ps->config_json, MOLMO_DTYPE_BF16, 0, 0, &err) != MOLMO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "preprocessor_config.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/models/%s/%s", fixtures, fixture_for(ps->name), files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (copy_file(from, to) != 0) {
            fprintf(stderr, "cannot copy %s\n", from);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *preset_name = "molmoe-1b", *fixtures = MOLMO_SOURCE_DIR "/tests/data",
               *base = "/tmp", *keep = NULL, *type_name = "bf16", *vtype_name = NULL;
    int threads = 0, n_tokens = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) preset_name = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) n_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--fixtures")) fixtures = argv[i + 1];
        else if (!strcmp(argv[i], "--dir")) base = argv[i + 1];
        else if (!strcmp(argv[i], "--keep")) keep = argv[i + 1];
        else if (!strcmp(argv[i], "--type")) type_name = argv[i + 1];
        else if (!strcmp(argv[i], "--vision-type")) vtype_name = argv[i + 1];
    }
    const molmo_preset *ps = molmo_preset_find(preset_name);
    const molmo_dtype type = type_by_name(type_name);
    const molmo_dtype vtype = vtype_name ? type_by_name(vtype_name) : MOLMO_DTYPE_COUNT;
    if (!ps || n_tokens < 2 || type == MOLMO_DTYPE_COUNT ||
        (vtype_name && vtype == MOLMO_DTYPE_COUNT)) {
        fprintf(stderr, "usage: %s [--model NAME] [--threads N] [--tokens N>=2] [--type T] "
                        "[--vision-type T] [--keep DIR]\n", argv[0]);
        return 2;
    }
    char dir[1024], model_path[2048], to[2048];
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0755);
    } else {
        snprintf(dir, sizeof dir, "%s/molmo-bench-gen-XXXXXX", base);
        if (!mkdtemp(dir)) return 1;
    }
    if (make_checkpoint(dir, ps, fixtures) != 0) return 1;
    snprintf(model_path, sizeof model_path, "%s", dir);
    molmo_error err;
    if (type != MOLMO_DTYPE_BF16 || vtype_name) {
        snprintf(model_path, sizeof model_path, "%s/model-%s-%s.gguf", dir, type_name,
                 vtype_name ? vtype_name : "default");
        molmo_convert_params cp = molmo_convert_default_params();
        cp.type = type;
        cp.vision_type = vtype;
        if (!file_exists(model_path) && molmo_convert(dir, model_path, &cp, &err) != MOLMO_OK) {
            fprintf(stderr, "convert: %s\n", err.msg);
            return 1;
        }
    }
    /* a 640x480 photo-sized input: tiling (2,3), 7 crops, 740 image tokens */
    unsigned char *rgb = malloc(640 * 480 * 3);
    for (int i = 0; rgb && i < 640 * 480 * 3; i++) rgb[i] = (unsigned char)((i * 2654435761u) >> 24);
    molmo_image *img = NULL;
    if (!rgb || molmo_image_from_rgb(rgb, 640, 480, 0, &img, &err) != MOLMO_OK) return 1;
    free(rgb);
    printf("molmo %s — %s (%s shapes, %s weights, vision %s), 640x480 image, %d new tokens, "
           "kernels %s\n\n", molmo_version(), ps->name, ps->repo, type_name,
           vtype_name ? vtype_name : "default", n_tokens, molmo_kernels_name());
    printf("| thr | prompt | TTFT | vision | prefill tok/s | decode tok/s | peak RSS |\n");
    printf("|-----|--------|------|--------|---------------|--------------|----------|\n");
    int rc = 0;
    for (int t = 1; t <= 2; t++)
        if (threads == 0 || threads == t) rc |= run(model_path, t, n_tokens, img);
    molmo_image_free(img);
    if (!keep) {
        static const char *const clean[] = {"model.safetensors", "config.json", "tokenizer.json",
                                            "tokenizer_config.json", "preprocessor_config.json"};
        for (int i = 0; i < 5; i++) {
            snprintf(to, sizeof to, "%s/%s", dir, clean[i]);
            unlink(to);
        }
        if (strcmp(model_path, dir)) unlink(model_path);
        rmdir(dir);
    }
    return rc;
}

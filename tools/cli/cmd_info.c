/* cmd_info.c — `molmo info MODEL [--json]`: what a checkpoint is and what it will cost. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo info MODEL [--json]\n"
            "\n"
            "Loads MODEL (directory or Hugging Face repo id), checks every tensor's presence and\n"
            "shape, and prints its family, dimensions, parameter counts (vision / connector /\n"
            "LLM), stored dtypes, files and the memory it will need.\n"
            "\n"
            "  --json     one JSON object instead of text\n"
            "  -h, --help this help\n");
}

/* "1.23 GiB", "4.0 MiB", "512 KiB": sizes in the unit that keeps them readable. */
static const char *human(uint64_t b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
    return buf;
}

static void print_text(const molmo_model *m, const molmo_model_info *i) {
    printf("model       %s\n", i->path);
    printf("family      %s\n", i->family_name);
    printf("llm         d_model %d, %d layers, %d heads (%d kv) x %d, ", i->d_model, i->n_layers,
           i->n_heads, i->n_kv_heads, i->head_dim);
    if (i->n_experts)
        printf("MoE %d experts top-%d x %d hidden\n", i->n_experts, i->n_experts_used, i->d_ff);
    else
        printf("SwiGLU hidden %d\n", i->d_ff);
    printf("            vocab %d (embedding rows %d + %d new), context %d, rope theta %g, "
           "eps %g\n",
           i->vocab_size, i->embedding_size, i->n_new_embeddings, i->max_position_embeddings,
           (double)i->rope_theta, (double)i->norm_eps);
    printf("            qkv bias %s, qk-norm %s, norm %s\n", i->qkv_bias ? "yes" : "no",
           i->qk_norm ? "yes" : "no", i->norm_after ? "after" : "before");
    printf("vision      ViT width %d, %d blocks, %d heads x %d, MLP %d, %dpx / %dpx patches, "
           "features of blocks %d and %d\n",
           i->vit_d_model, i->vit_n_layers, i->vit_n_heads, i->vit_head_dim, i->vit_d_ff,
           i->image_size, i->patch_size, i->vit_layer_a, i->vit_layer_b);
    printf("parameters  %" PRIu64 " total: vision %" PRIu64 ", connector %" PRIu64
           ", llm %" PRIu64 "\n",
           i->n_params_total, i->n_params_vision, i->n_params_connector, i->n_params_llm);
    printf("tensors     %d:", i->n_tensors);
    for (int d = 0; d < MOLMO_DTYPE_COUNT; d++)
        if (i->n_tensors_by_dtype[d])
            printf(" %" PRIu64 " %s", i->n_tensors_by_dtype[d], molmo_dtype_name((molmo_dtype)d));
    char b1[32], b2[32], b3[32], b4[32];
    printf(", %s as stored\n", human(i->weight_bytes, b1, sizeof b1));
    for (int f = 0; f < i->n_files; f++) printf("file        %s\n", molmo_model_file(m, f));
    printf("other files tokenizer.json %s, preprocessor_config.json %s, generation_config.json "
           "%s\n",
           i->has_tokenizer ? "yes" : "MISSING", i->has_preprocessor_config ? "yes" : "missing",
           i->has_generation_config ? "yes" : "missing");
    printf("memory      ~%s: weights %s (mapped) + f32 KV cache %s at %d tokens (%s/token) + "
           "activations\n",
           human(i->memory_estimate_bytes, b1, sizeof b1), human(i->weight_bytes, b2, sizeof b2),
           human(i->kv_cache_bytes_per_token * (uint64_t)i->max_position_embeddings, b3,
                 sizeof b3),
           i->max_position_embeddings, human(i->kv_cache_bytes_per_token, b4, sizeof b4));
    printf("            (half the KV cache with --kv-type f16: %s/token)\n",
           human(i->kv_cache_bytes_per_token / 2, b4, sizeof b4));
}

/* JSON string escaping for paths (the only free text printed). */
static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const molmo_model *m, const molmo_model_info *i) {
    printf("{\"path\":");
    json_str(i->path);
    printf(",\"family\":\"%s\",\"llm\":{\"d_model\":%d,\"n_layers\":%d,\"n_heads\":%d,"
           "\"n_kv_heads\":%d,\"head_dim\":%d,\"d_ff\":%d,\"n_experts\":%d,\"n_experts_used\":%d,"
           "\"vocab_size\":%d,\"embedding_size\":%d,\"n_new_embeddings\":%d,"
           "\"max_position_embeddings\":%d,\"rope_theta\":%g,\"norm_eps\":%g,\"qkv_bias\":%s,"
           "\"qk_norm\":%s,\"norm_after\":%s},",
           i->family_name, i->d_model, i->n_layers, i->n_heads, i->n_kv_heads, i->head_dim,
           i->d_ff, i->n_experts, i->n_experts_used, i->vocab_size, i->embedding_size,
           i->n_new_embeddings, i->max_position_embeddings, (double)i->rope_theta,
           (double)i->norm_eps, i->qkv_bias ? "true" : "false", i->qk_norm ? "true" : "false",
           i->norm_after ? "true" : "false");
    printf("\"vision\":{\"d_model\":%d,\"n_layers\":%d,\"n_heads\":%d,\"head_dim\":%d,\"d_ff\":%d,"
           "\"image_size\":%d,\"patch_size\":%d,\"feature_layers\":[%d,%d]},",
           i->vit_d_model, i->vit_n_layers, i->vit_n_heads, i->vit_head_dim, i->vit_d_ff,
           i->image_size, i->patch_size, i->vit_layer_a, i->vit_layer_b);
    printf("\"params\":{\"vision\":%" PRIu64 ",\"connector\":%" PRIu64 ",\"llm\":%" PRIu64
           ",\"total\":%" PRIu64 "},",
           i->n_params_vision, i->n_params_connector, i->n_params_llm, i->n_params_total);
    printf("\"tensors\":{\"count\":%d", i->n_tensors);
    for (int d = 0; d < MOLMO_DTYPE_COUNT; d++)
        printf(",\"%s\":%" PRIu64, molmo_dtype_name((molmo_dtype)d), i->n_tensors_by_dtype[d]);
    printf("},\"weight_bytes\":%" PRIu64 ",\"files\":[", i->weight_bytes);
    for (int f = 0; f < i->n_files; f++) {
        if (f) putchar(',');
        json_str(molmo_model_file(m, f));
    }
    printf("],\"has_tokenizer\":%s,\"has_preprocessor_config\":%s,\"has_generation_config\":%s,",
           i->has_tokenizer ? "true" : "false", i->has_preprocessor_config ? "true" : "false",
           i->has_generation_config ? "true" : "false");
    printf("\"kv_cache_bytes_per_token\":%" PRIu64 ",\"memory_estimate_bytes\":%" PRIu64 "}\n",
           i->kv_cache_bytes_per_token, i->memory_estimate_bytes);
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') json = 1;
        else if (c == 'h') return usage(stdout), 0;
        else return usage(stderr), 2;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_model_params mp = molmo_model_default_params();
    if (molmo_model_load(argv[optind], &mp, &m, &err) != MOLMO_OK) return cli_fail(&err, NULL);
    molmo_model_info info;
    molmo_model_get_info(m, &info);
    if (json)
        print_json(m, &info);
    else
        print_text(m, &info);
    molmo_model_free(m);
    return 0;
}

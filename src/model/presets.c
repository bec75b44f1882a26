/* presets.c — real-shape configs of the released models and a checkpoint generator. */
#define _POSIX_C_SOURCE 200809L
#include "model/presets.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fp16.h"
#include "io/path.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

#define HF_COMMON                                                                                  \
    "\"architectures\":[\"MolmoForCausalLM\"],\"model_type\":\"molmo\",\"clip_qkv\":null,"        \
    "\"layer_norm_type\":\"rms\",\"max_position_embeddings\":4096,\"tie_word_embeddings\":false,"  \
    "\"weight_tying\":false,\"use_position_ids\":true,\"torch_dtype\":\"float32\","

static const molmo_preset presets[] = {
    {"molmoe-1b", "allenai/MolmoE-1B-0924",
     "{\"architectures\":[\"OLMoForCausalLM\"],\"model_type\":\"molmo\",\"d_model\":2048,"
     "\"n_heads\":16,\"n_kv_heads\":null,\"n_layers\":16,\"mlp_ratio\":1,\"mlp_hidden_size\":null,"
     "\"block_type\":\"moe\",\"moe_num_experts\":64,\"moe_top_k\":8,\"moe_shared_expert\":false,"
     "\"attention_layer_norm\":true,\"qkv_bias\":false,\"norm_after\":false,"
     "\"layer_norm_type\":\"rms\",\"layer_norm_eps\":1e-05,\"rope_theta\":10000.0,"
     "\"rope_impl\":\"llama\",\"activation_type\":\"swiglu\",\"vocab_size\":50280,"
     "\"embedding_size\":50304,\"additional_vocab_size\":128,\"max_position_embeddings\":32768,"
     "\"weight_tying\":false,\"clip_qkv\":null,\"vit_layers\":[-2,-9],"
     "\"image_pooling_2d\":\"attention-meanq\",\"image_padding_embed\":\"pad_and_partial_pad\","
     "\"image_projector\":\"mlp\",\"image_pooling_h\":2,\"image_pooling_w\":2,"
     "\"vision_backbone\":{\"image_default_input_size\":[336,336],\"image_emb_dim\":1024,"
     "\"image_head_dim\":64,\"image_mlp_activations\":\"quick_gelu\",\"image_mlp_dim\":4096,"
     "\"image_norm_eps\":1e-05,\"image_num_heads\":16,\"image_num_key_value_heads\":16,"
     "\"image_num_layers\":23,\"image_num_pos\":577,\"image_patch_size\":14}}",
     6919424000ull, 290909184ull, 11542528ull},
    {"molmo-7b-o", "allenai/Molmo-7B-O-0924",
     "{" HF_COMMON "\"hidden_size\":4096,\"num_attention_heads\":32,\"num_key_value_heads\":null,"
     "\"num_hidden_layers\":32,\"intermediate_size\":22016,\"qkv_bias\":false,"
     "\"norm_after\":true,\"attention_layer_norm\":true,\"layer_norm_eps\":1e-06,"
     "\"rope_theta\":500000.0,\"vocab_size\":100278,\"embedding_size\":100352}",
     7299141632ull, 290909184ull, 74981376ull},
    {"molmo-7b-d", "allenai/Molmo-7B-D-0924",
     "{" HF_COMMON "\"hidden_size\":3584,\"num_attention_heads\":28,\"num_key_value_heads\":4,"
     "\"num_hidden_layers\":28,\"intermediate_size\":37888,\"qkv_bias\":true,"
     "\"norm_after\":false,\"attention_layer_norm\":false,\"layer_norm_eps\":1e-06,"
     "\"rope_theta\":1000000.0,\"vocab_size\":152064,\"embedding_size\":152064}",
     7616075264ull, 290909184ull, 114040832ull},
    {"molmo-72b", "allenai/Molmo-72B-0924",
     "{" HF_COMMON "\"hidden_size\":8192,\"num_attention_heads\":64,\"num_key_value_heads\":8,"
     "\"num_hidden_layers\":80,\"intermediate_size\":59136,\"qkv_bias\":true,"
     "\"norm_after\":false,\"attention_layer_norm\":false,\"layer_norm_eps\":1e-05,"
     "\"rope_theta\":1000000.0,\"vocab_size\":152064,\"embedding_size\":152064}",
     72707252224ull, 290909184ull, 310124544ull},
};

const molmo_preset *molmo_presets(int *count) {
    if (count) *count = (int)(sizeof presets / sizeof presets[0]);
    return presets;
}

const molmo_preset *molmo_preset_find(const char *name) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}

typedef struct entry_list {
    molmo_st_entry *e;
    int n, cap;
    char **names;
    molmo_dtype dtype;
    int failed;
} entry_list;

static void collect(void *user, const char *name, int n_dims, const int64_t *shape) {
    entry_list *l = user;
    if (l->failed) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        molmo_st_entry *e = molmo_realloc(l->e, (size_t)cap * sizeof *e);
        char **nm = molmo_realloc(l->names, (size_t)cap * sizeof *nm);
        if (e) l->e = e;
        if (nm) l->names = nm;
        if (!e || !nm) {
            l->failed = 1;
            return;
        }
        l->cap = cap;
    }
    molmo_st_entry *e = &l->e[l->n];
    memset(e, 0, sizeof *e);
    l->names[l->n] = molmo_strdup(name);
    if (!l->names[l->n]) {
        l->failed = 1;
        return;
    }
    e->name = l->names[l->n];
    e->dtype = l->dtype;
    e->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) e->shape[d] = shape[d];
    l->n++;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fills one tensor's bytes in 1 MiB chunks through pwrite (never the whole tensor in memory). */
static int fill_tensor(int fd, uint64_t off, const molmo_st_entry *e, uint64_t *seed,
                       unsigned char *buf, size_t cap) {
    uint64_t count = 1;
    for (int d = 0; d < e->n_dims; d++) count *= (uint64_t)e->shape[d];
    size_t esz = molmo_dtype_size(e->dtype);
    float centre = (e->n_dims == 1 && strstr(e->name, "norm")) ? 1.0f : 0.0f;
    while (count) {
        size_t n = cap / esz < count ? cap / esz : (size_t)count;
        for (size_t i = 0; i < n; i++) {
            float v = centre + ((float)(splitmix(seed) >> 40) / 16777216.0f - 0.5f) * 0.1f;
            if (e->dtype == MOLMO_DTYPE_F32) memcpy(buf + 4 * i, &v, 4);
            else {
                uint16_t h = molmo_f32_to_bf16(v); /* f16 fixtures are made from bf16 bits */
                memcpy(buf + 2 * i, &h, 2);
            }
        }
        if (pwrite(fd, buf, n * esz, (off_t)off) != (ssize_t)(n * esz)) return -1;
        off += n * esz;
        count -= n;
    }
    return 0;
}

static molmo_status fill_random(const char *path, const entry_list *l, uint64_t seed,
                                molmo_error *err) {
    molmo_safetensors st;
    molmo_status s = molmo_st_open(&st, path, err);
    if (s != MOLMO_OK) return s;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t cap = 1u << 20;
    unsigned char *buf = molmo_malloc(cap);
    if (fd < 0 || !buf) s = molmo_err(err, MOLMO_ERR_IO, "%s: cannot open for writing", path);
    uint64_t data_start = (uint64_t)((const unsigned char *)st.tensors[0].data - st.maps[0].data) -
                          st.tensors[0].offset;
    for (int i = 0; s == MOLMO_OK && i < l->n; i++) {
        const molmo_st_tensor *t = molmo_st_find(&st, l->e[i].name);
        if (fill_tensor(fd, data_start + t->offset, &l->e[i], &seed, buf, cap) != 0)
            s = molmo_err(err, MOLMO_ERR_IO, "%s: write of '%s' failed", path, t->name);
    }
    if (fd >= 0) close(fd);
    molmo_free(buf);
    molmo_st_close(&st);
    return s;
}

molmo_status molmo_synth_checkpoint(const char *dir, const char *config_json, molmo_dtype dtype,
                                    int random, uint64_t seed, molmo_error *err) {
    molmo_config cfg;
    molmo_status s = molmo_config_parse(config_json, strlen(config_json), "preset", &cfg, err);
    if (s != MOLMO_OK) return s;
    char path[4096];
    if (molmo_path_join(path, sizeof path, dir, "config.json") != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(config_json, f) < 0 || fclose(f) != 0)
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write", path);
    entry_list l = {.dtype = dtype};
    s = molmo_weights_enumerate(&cfg, collect, &l, err);
    if (s == MOLMO_OK && l.failed) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    molmo_path_join(path, sizeof path, dir, "model.safetensors");
    if (s == MOLMO_OK) s = molmo_st_write(path, l.e, l.n, err);
    if (s == MOLMO_OK && random) s = fill_random(path, &l, seed, err);
    for (int i = 0; i < l.n; i++) molmo_free(l.names[i]);
    molmo_free(l.names);
    molmo_free(l.e);
    return s;
}

/* convert.c — molmo_convert: a checkpoint (or a GGUF file) into one GGUF file, and the tensor
 * names in such files (convert.h).
 *
 * The model is loaded first (so only a checkpoint that loads and binds is converted), then the
 * tensors the architecture uses are written in binding order (language model, then vision) with
 * the per-tensor type policy of molmo.h's convert section, each row converted through f32
 * (exact for every source type) and encoded with the quantizers of kernels/quant.h (Q8_0/Q4_0:
 * bit-for-bit ggml's) and kernels/kquant.h (Q4_K/Q6_K: ggml's format, our own scale search).
 * The metadata carries the normalised config and the checkpoint's JSON texts,
 * which is all the loader (model_gguf.c) needs. */
#define _DEFAULT_SOURCE /* madvise */
#define _POSIX_C_SOURCE 200809L
#include "model/convert.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fp16.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/path.h"
#include "kernels/kquant.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "model/weights.h"

molmo_convert_params molmo_convert_default_params(void) {
    molmo_convert_params p;
    memset(&p, 0, sizeof p);
    p.type = MOLMO_DTYPE_BF16;
    p.vision_type = MOLMO_DTYPE_COUNT;
    return p;
}

static int is_weight_type(molmo_dtype t) {
    return t == MOLMO_DTYPE_F32 || t == MOLMO_DTYPE_F16 || t == MOLMO_DTYPE_BF16 ||
           t == MOLMO_DTYPE_Q8_0 || t == MOLMO_DTYPE_Q4_0 || t == MOLMO_DTYPE_Q4_K ||
           t == MOLMO_DTYPE_Q6_K;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* t, or what a row of k values can hold: a K-quant row that is not whole 256-value blocks
 * falls back to q8_0 when it is whole 32-value blocks; a block-type row that is not whole
 * blocks at all is f16. */
static molmo_dtype fit_rows(molmo_dtype t, int64_t k) {
    const int bs = molmo_dtype_block_size(t);
    if (bs <= 1 || k % bs == 0) return t;
    if (molmo_dtype_is_kquant(t) && k % MOLMO_QK == 0) return MOLMO_DTYPE_Q8_0;
    return MOLMO_DTYPE_F16;
}

/* Names from arch.c's tables: both naming schemes share the embeddings; the LM head is
 * model.transformer.ff_out (HF) or lm_head (MolmoE); the router is MolmoE's mlp.gate;
 * attention is (attn.)att_proj (Q, K and V fused) and (attn.)attn_out. */
molmo_dtype molmo_convert_policy(const char *name, int n_dims, const int64_t *shape,
                                 molmo_dtype type, molmo_dtype vision_type) {
    if (n_dims < 2) return MOLMO_DTYPE_F32; /* norms, biases, class embedding */
    if (ends_with(name, "image_vit.positional_embedding") || ends_with(name, ".pad_embed") ||
        ends_with(name, ".mlp.gate.weight"))
        return MOLMO_DTYPE_F32; /* read as f32 tables, or too small and too decisive to round */
    molmo_dtype t = type;
    if (!strncmp(name, "model.vision_backbone.", 22)) {
        t = vision_type;
    } else if (!strcmp(name, "model.transformer.wte.embedding") ||
               !strcmp(name, "model.transformer.wte.new_embedding") ||
               !strcmp(name, "model.transformer.ff_out.weight") ||
               !strcmp(name, "lm_head.weight")) {
        if (t == MOLMO_DTYPE_Q4_0) t = MOLMO_DTYPE_Q8_0;
        if (t == MOLMO_DTYPE_Q4_K) t = MOLMO_DTYPE_Q6_K;
    } else if (t == MOLMO_DTYPE_Q4_K &&
               (ends_with(name, ".att_proj.weight") || ends_with(name, ".attn_out.weight"))) {
        t = MOLMO_DTYPE_Q6_K; /* llama.cpp's Q4_K_M idea: V (fused here) and the output in 6 bits */
    }
    return fit_rows(t, shape[n_dims - 1]);
}

int molmo_gguf_name_from_hf(const char *hf, char *out, size_t cap) {
    const size_t k = strlen(MOLMO_GGUF_VIT_PREFIX_HF);
    int n = strncmp(hf, MOLMO_GGUF_VIT_PREFIX_HF, k)
                ? snprintf(out, cap, "%s", hf)
                : snprintf(out, cap, "%s%s", MOLMO_GGUF_VIT_PREFIX, hf + k);
    return n < 0 || (size_t)n >= cap || n > MOLMO_GGUF_MAX_NAME ? -1 : 0;
}

int molmo_gguf_name_to_hf(const char *name, char *out, size_t cap) {
    const size_t k = strlen(MOLMO_GGUF_VIT_PREFIX);
    int n = strncmp(name, MOLMO_GGUF_VIT_PREFIX, k)
                ? snprintf(out, cap, "%s", name)
                : snprintf(out, cap, "%s%s", MOLMO_GGUF_VIT_PREFIX_HF, name + k);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- the texts around the weights ------------------------------------------------------- */

enum { TXT_CONFIG, TXT_TOKENIZER, TXT_TOKENIZER_CONFIG, TXT_PREPROCESSOR, TXT_GENERATION, N_TXT };

static const struct {
    const char *file, *key;
    size_t max_bytes;
} text_files[N_TXT] = {
    {"config.json", MOLMO_KEY_CONFIG_JSON, 16u << 20},
    {"tokenizer.json", MOLMO_KEY_TOKENIZER_JSON, 256u << 20},
    {"tokenizer_config.json", MOLMO_KEY_TOKENIZER_CONFIG_JSON, 16u << 20},
    {"preprocessor_config.json", MOLMO_KEY_PREPROCESSOR_CONFIG_JSON, 16u << 20},
    {"generation_config.json", MOLMO_KEY_GENERATION_CONFIG_JSON, 16u << 20},
};

typedef struct texts {
    char *s[N_TXT]; /* NULL when the checkpoint has no such file */
    size_t len[N_TXT];
} texts;

static void texts_free(texts *t) {
    for (int i = 0; i < N_TXT; i++) molmo_free(t->s[i]);
    memset(t, 0, sizeof *t);
}

static molmo_status texts_from_dir(const char *dir, texts *t, molmo_error *err) {
    for (int i = 0; i < N_TXT; i++) {
        char p[4096];
        if (molmo_path_join(p, sizeof p, dir, text_files[i].file) != 0)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
        if (!molmo_path_exists(p)) continue;
        molmo_status st = molmo_read_file(p, text_files[i].max_bytes, &t->s[i], &t->len[i], err);
        if (st != MOLMO_OK) return st;
    }
    return MOLMO_OK;
}

static molmo_status texts_from_gguf(const char *path, texts *t, molmo_error *err) {
    molmo_gguf g;
    molmo_status st = molmo_gguf_open(&g, path, err);
    for (int i = 0; i < N_TXT && st == MOLMO_OK; i++) {
        const char *s;
        size_t len;
        if (!molmo_gguf_find(&g, text_files[i].key)) continue;
        st = molmo_gguf_get_str(&g, text_files[i].key, &s, &len, err);
        if (st == MOLMO_OK && !(t->s[i] = molmo_strndup(s, len)))
            st = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
        t->len[i] = len;
    }
    molmo_gguf_close(&g);
    return st;
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* Every field of molmo_config, as molmo.<field>. */
static const struct {
    const char *key;
    size_t offset;
    char kind; /* i: int -> i32, b: int -> bool, f: float -> f32 */
} config_keys[] = {
#define F(kind, field) {"molmo." #field, offsetof(molmo_config, field), kind}
    F('b', olmo_style),   F('i', d_model),        F('i', n_layers),
    F('i', n_heads),      F('i', n_kv_heads),     F('i', head_dim),
    F('i', d_ff),         F('i', n_experts),      F('i', top_k),
    F('i', vocab_size),   F('i', embedding_size), F('i', n_new_embeddings),
    F('i', max_position_embeddings), F('f', rope_theta), F('f', norm_eps),
    F('b', qkv_bias),     F('b', qk_norm),        F('b', norm_after),
    F('i', vit_d_model),  F('i', vit_n_layers),   F('i', vit_n_heads),
    F('i', vit_head_dim), F('i', vit_d_ff),       F('i', vit_n_pos),
    F('i', patch_size),   F('i', image_size),     F('f', vit_norm_eps),
    F('i', pool_h),       F('i', pool_w),         F('i', projector_hidden),
#undef F
};

static molmo_status add_config(molmo_gguf_writer *w, const molmo_config *c, molmo_error *err) {
    static const char *const family[MOLMO_FAMILY_COUNT] = {"molmoe", "olmo", "qwen2"};
    molmo_status st = molmo_gguf_add_str(w, "molmo.family", family[c->family],
                                         strlen(family[c->family]), err);
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0] && st == MOLMO_OK; i++) {
        const void *p = (const char *)c + config_keys[i].offset;
        int v;
        float f;
        memcpy(&v, p, sizeof v);
        memcpy(&f, p, sizeof f);
        const char *key = config_keys[i].key;
        if (config_keys[i].kind == 'i') st = molmo_gguf_add_i32(w, key, v, err);
        else if (config_keys[i].kind == 'b') st = molmo_gguf_add_bool(w, key, v, err);
        else st = molmo_gguf_add_f32(w, key, f, err);
    }
    int32_t layers[2] = {c->vit_layers[0], c->vit_layers[1]};
    if (st == MOLMO_OK)
        st = molmo_gguf_add_array(w, "molmo.vit_layers", MOLMO_GGUF_I32, layers, 2, err);
    return st;
}

/* llama.cpp's llama_ftype of a file whose main type is t (general.file_type). */
static uint32_t file_type(molmo_dtype t) {
    switch (t) {
    case MOLMO_DTYPE_F16: return 1;
    case MOLMO_DTYPE_Q4_0: return 2;
    case MOLMO_DTYPE_Q8_0: return 7;
    case MOLMO_DTYPE_BF16: return 32;
    case MOLMO_DTYPE_Q4_K: return 15; /* LLAMA_FTYPE_MOSTLY_Q4_K_M: the mix of the policy */
    case MOLMO_DTYPE_Q6_K: return 18;
    default: return 0;
    }
}

static molmo_status add_metadata(molmo_gguf_writer *w, const molmo_config *c, const texts *tx,
                                 const char *name, molmo_dtype type, molmo_dtype vtype,
                                 int quantized, molmo_error *err) {
    const char *tn = molmo_dtype_name(type), *vn = molmo_dtype_name(vtype);
    molmo_status st = molmo_gguf_add_str(w, "general.architecture", "molmo", 5, err);
    if (st == MOLMO_OK) st = molmo_gguf_add_str(w, "general.name", name, strlen(name), err);
    if (st == MOLMO_OK) st = molmo_gguf_set_alignment(w, MOLMO_GGUF_DEFAULT_ALIGNMENT, err);
    if (st == MOLMO_OK) st = molmo_gguf_add_u32(w, "general.file_type", file_type(type), err);
    if (st == MOLMO_OK && quantized) /* ggml's GGML_QNT_VERSION, which its tools look for */
        st = molmo_gguf_add_u32(w, "general.quantization_version", 2, err);
    if (st == MOLMO_OK)
        st = molmo_gguf_add_u32(w, MOLMO_KEY_FORMAT_VERSION, MOLMO_GGUF_FORMAT_VERSION, err);
    if (st == MOLMO_OK) st = molmo_gguf_add_str(w, "molmo.type", tn, strlen(tn), err);
    if (st == MOLMO_OK) st = molmo_gguf_add_str(w, "molmo.vision_type", vn, strlen(vn), err);
    if (st == MOLMO_OK) st = add_config(w, c, err);
    for (int i = 0; i < N_TXT && st == MOLMO_OK; i++)
        if (tx->s[i]) st = molmo_gguf_add_str(w, text_files[i].key, tx->s[i], tx->len[i], err);
    return st;
}

/* "ORG/NAME[@REV]" -> NAME; a Hugging Face cache snapshot -> NAME of models--ORG--NAME; else
 * the last path component without ".gguf". */
static void derive_name(const char *spec, const char *resolved, char *out, size_t cap) {
    const char *s = resolved, *e;
    if (!molmo_path_exists(spec) && strchr(spec, '/')) {
        s = strrchr(spec, '/') + 1;
        e = strchr(s, '@');
        e = e ? e : s + strlen(s);
    } else {
        const char *m = strstr(resolved, "/models--");
        for (const char *n = m; n; n = strstr(n + 1, "/models--")) m = n;
        if (m) {
            e = strchr(m + 1, '/');
            e = e ? e : m + strlen(m);
            for (s = m + 9; strstr(s, "--") && strstr(s, "--") < e;) s = strstr(s, "--") + 2;
        } else {
            e = resolved + strlen(resolved);
            while (e > resolved && e[-1] == '/') e--;
            s = e;
            while (s > resolved && s[-1] != '/') s--;
            if (e - s > 5 && !strncmp(e - 5, ".gguf", 5)) e -= 5;
        }
    }
    snprintf(out, cap, "%.*s", (int)(e - s), s);
    if (!out[0]) snprintf(out, cap, "molmo");
}

/* ---- tensor data ------------------------------------------------------------------------- */

typedef struct conv {
    const molmo_st_tensor **src; /* [n] in writing order */
    molmo_dtype *out;            /* [n] stored types */
    int n, cap;
    float *rows;                 /* [nth, row_cap]: one f32 row per thread */
    int64_t row_cap;
    molmo_pool *pool;            /* rows of a chunk are encoded in parallel */
    int nth;
    molmo_status *th_st;         /* [nth] per thread, for the chunk being encoded */
    molmo_error *th_err;         /* [nth] */
    /* the chunk being encoded */
    const molmo_st_tensor *t;
    molmo_dtype t_out;
    const unsigned char *c_src;
    unsigned char *c_dst;
    int64_t row0;
    int n_rows;
    uint64_t done, total;
    struct timespec t0;
    const molmo_convert_params *p;
    molmo_status status;         /* of collecting the list */
    molmo_error *err;
    const molmo_safetensors *st;
} conv;

static void row_to_f32(const molmo_st_tensor *t, const unsigned char *p, int64_t k, float *out) {
    uint16_t h;
    switch (t->dtype) {
    case MOLMO_DTYPE_F32: memcpy(out, p, (size_t)k * 4); break;
    case MOLMO_DTYPE_BF16:
        for (int64_t i = 0; i < k; i++) memcpy(&h, p + 2 * i, 2), out[i] = molmo_bf16_to_f32(h);
        break;
    case MOLMO_DTYPE_F16:
        for (int64_t i = 0; i < k; i++) memcpy(&h, p + 2 * i, 2), out[i] = molmo_f16_to_f32(h);
        break;
    default: molmo_dequantize_row(t->dtype, p, out, k); break;
    }
}

static molmo_status encode_row(const float *x, int64_t k, molmo_dtype t, unsigned char *dst,
                               const char *name, int64_t row, molmo_error *err) {
    uint16_t h;
    switch (t) {
    case MOLMO_DTYPE_F32: memcpy(dst, x, (size_t)k * 4); return MOLMO_OK;
    case MOLMO_DTYPE_BF16:
        for (int64_t i = 0; i < k; i++) h = molmo_f32_to_bf16(x[i]), memcpy(dst + 2 * i, &h, 2);
        return MOLMO_OK;
    case MOLMO_DTYPE_F16:
        for (int64_t i = 0; i < k; i++) {
            h = molmo_f32_to_f16(x[i]);
            if (isfinite(x[i]) && (h & 0x7c00u) == 0x7c00u)
                return molmo_err(err, MOLMO_ERR_FORMAT,
                                 "tensor '%s': value %g (row %lld) is beyond f16's range; "
                                 "convert to bf16 instead",
                                 name, (double)x[i], (long long)row);
            memcpy(dst + 2 * i, &h, 2);
        }
        return MOLMO_OK;
    default: {
        molmo_status st = molmo_quantize_row(t, x, dst, k, err);
        if (st != MOLMO_OK) molmo_err_prefix(err, "tensor '%s' row %lld", name, (long long)row);
        return st;
    }
    }
}

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* The source is read once, front to back: asking the kernel to read each chunk ahead turns
 * millions of 4 KB page faults into a few large reads (MolmoE-1B's 29 GB: 72 s of system time
 * became 9 s). Advice only: a failure changes nothing. */
static void advise_read(const void *p, size_t n) {
    const uintptr_t page = 4096, a = (uintptr_t)p & ~(page - 1);
    madvise((void *)a, n + ((uintptr_t)p - a), MADV_WILLNEED);
}

/* molmo_pool_fn: thread ith encodes its share of the chunk's rows (molmo_pool_range: the
 * bytes do not depend on the thread count). */
static void encode_rows(void *arg, int ith, int nth) {
    conv *cv = arg;
    const molmo_st_tensor *t = cv->t;
    const int64_t k = t->shape[t->n_dims - 1];
    const size_t in_rb = molmo_dtype_row_bytes(t->dtype, k);
    const size_t out_rb = molmo_dtype_row_bytes(cv->t_out, k);
    float *row = cv->rows + (size_t)ith * (size_t)cv->row_cap;
    int b, e;
    molmo_pool_range(cv->n_rows, ith, nth, &b, &e);
    cv->th_st[ith] = MOLMO_OK;
    for (int r = b; r < e && cv->th_st[ith] == MOLMO_OK; r++) {
        row_to_f32(t, cv->c_src + (size_t)r * in_rb, k, row);
        cv->th_st[ith] = encode_row(row, k, cv->t_out, cv->c_dst + (size_t)r * out_rb, t->name,
                                    cv->row0 + r, &cv->th_err[ith]);
    }
}

/* molmo_gguf_fill_fn: rows [row0, row0+n_rows) of tensor i in its stored type. */
static molmo_status fill(void *user, int i, int64_t row0, int64_t n_rows, void *dst,
                         molmo_error *err) {
    conv *cv = user;
    const molmo_st_tensor *t = cv->src[i];
    const molmo_dtype out = cv->out[i];
    const int64_t k = t->shape[t->n_dims - 1];
    const size_t in_rb = molmo_dtype_row_bytes(t->dtype, k), out_rb = molmo_dtype_row_bytes(out, k);
    const unsigned char *src = (const unsigned char *)t->data + (size_t)row0 * in_rb;
    advise_read(src, (size_t)n_rows * in_rb);
    if (t->dtype == out) {
        memcpy(dst, src, (size_t)n_rows * in_rb); /* bit for bit, NaN payloads included */
    } else {
        /* a chunk is at most 16 MB of whole rows: n_rows fits an int */
        cv->t = t, cv->t_out = out, cv->c_src = src, cv->c_dst = dst, cv->row0 = row0;
        cv->n_rows = (int)n_rows;
        molmo_pool_run(cv->pool, encode_rows, cv);
        for (int ith = 0; ith < molmo_pool_size(cv->pool); ith++) /* the first failing row */
            if (cv->th_st[ith] != MOLMO_OK) {
                if (err) *err = cv->th_err[ith];
                return cv->th_st[ith];
            }
    }
    cv->done += (uint64_t)n_rows * out_rb;
    if (cv->p->progress) {
        molmo_convert_progress pr = {.tensor_index = i, .n_tensors = cv->n, .tensor = t->name,
                                     .dtype = out, .bytes_done = cv->done,
                                     .bytes_total = cv->total, .elapsed_s = seconds_since(&cv->t0)};
        if (cv->p->progress(cv->p->progress_user, &pr))
            return molmo_err(err, MOLMO_ERR_CANCELLED, "conversion cancelled");
    }
    return MOLMO_OK;
}

/* ---- the tensor list --------------------------------------------------------------------- */

/* molmo_weights_visit_fn: every tensor the architecture needs, in binding order. */
static void collect(void *user, const char *name, int n_dims, const int64_t *shape) {
    conv *cv = user;
    if (cv->status != MOLMO_OK) return;
    if (cv->n == cv->cap) {
        int cap = cv->cap ? 2 * cv->cap : 512;
        const molmo_st_tensor **s = molmo_realloc(cv->src, (size_t)cap * sizeof *s);
        if (s) cv->src = s;
        molmo_dtype *o = s ? molmo_realloc(cv->out, (size_t)cap * sizeof *o) : NULL;
        if (!o) {
            cv->status = molmo_err(cv->err, MOLMO_ERR_NOMEM, "out of memory");
            return;
        }
        cv->out = o;
        cv->cap = cap;
    }
    const molmo_st_tensor *t = molmo_st_find(cv->st, name);
    if (!t) { /* cannot happen after a successful bind; kept as a check */
        cv->status = molmo_err(cv->err, MOLMO_ERR_INTERNAL, "tensor '%s' vanished", name);
        return;
    }
    cv->src[cv->n++] = t;
    (void)n_dims;
    (void)shape;
}

static molmo_status plan(conv *cv, const molmo_model *m, molmo_gguf_writer *w, molmo_dtype type,
                         molmo_dtype vtype, molmo_error *err) {
    cv->st = &m->st;
    molmo_status st = molmo_weights_enumerate(&m->cfg, collect, cv, err);
    if (st == MOLMO_OK) st = cv->status;
    for (int i = 0; i < cv->n && st == MOLMO_OK; i++) {
        const molmo_st_tensor *t = cv->src[i];
        cv->out[i] = molmo_convert_policy(t->name, t->n_dims, t->shape, type, vtype);
        char name[256];
        if (molmo_gguf_name_from_hf(t->name, name, sizeof name) != 0) {
            st = molmo_err(err, MOLMO_ERR_UNSUPPORTED, "tensor '%s': its name is longer than "
                           "GGUF tools accept (%d bytes)", t->name, MOLMO_GGUF_MAX_NAME);
            break;
        }
        st = molmo_gguf_add_tensor(w, name, cv->out[i], t->n_dims, t->shape, err);
        int64_t k = t->shape[t->n_dims - 1];
        cv->total += molmo_dtype_row_bytes(cv->out[i], k) * (t->n_elements / (uint64_t)(k ? k : 1));
        if (k > cv->row_cap) cv->row_cap = k;
    }
    if (st == MOLMO_OK) st = molmo_pool_create(cv->p->n_threads, &cv->pool, err);
    if (st != MOLMO_OK) return st;
    cv->nth = molmo_pool_size(cv->pool);
    if (!cv->row_cap) cv->row_cap = 1;
    cv->rows = molmo_calloc((size_t)cv->nth * (size_t)cv->row_cap, sizeof(float));
    cv->th_st = molmo_calloc((size_t)cv->nth, sizeof *cv->th_st);
    cv->th_err = molmo_calloc((size_t)cv->nth, sizeof *cv->th_err);
    if (!cv->rows || !cv->th_st || !cv->th_err)
        st = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    return st;
}

static molmo_status check_params(const molmo_convert_params *p, molmo_dtype *vtype,
                                 molmo_error *err) {
    if (!is_weight_type(p->type))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "convert: type %s is not f32, f16, bf16, "
                         "q8_0, q4_0, q6_k or q4_k", molmo_dtype_name(p->type));
    *vtype = p->vision_type;
    if (*vtype == MOLMO_DTYPE_COUNT) /* 4-bit vision costs more accuracy than its bytes save */
        *vtype = p->type == MOLMO_DTYPE_Q4_0 || p->type == MOLMO_DTYPE_Q4_K ? MOLMO_DTYPE_Q8_0 : p->type;
    if (!is_weight_type(*vtype))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "convert: vision type %s is not f32, f16, "
                         "bf16, q8_0, q4_0, q6_k or q4_k", molmo_dtype_name(*vtype));
    return MOLMO_OK;
}

molmo_status molmo_convert(const char *model, const char *out_path,
                           const molmo_convert_params *params, molmo_error *err) {
    molmo_convert_params defaults = molmo_convert_default_params();
    const molmo_convert_params *p = params ? params : &defaults;
    if (!model || !out_path) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "convert: NULL path");
    molmo_dtype vtype = MOLMO_DTYPE_COUNT;
    molmo_status st = check_params(p, &vtype, err);
    if (st != MOLMO_OK) return st;
    conv cv = {.p = p, .err = err, .status = MOLMO_OK};
    clock_gettime(CLOCK_MONOTONIC, &cv.t0);
    texts tx = {0};
    molmo_gguf_writer *w = NULL;
    molmo_model *m = NULL;
    molmo_model_params mp = molmo_model_default_params();
    char name[256];
    int quantized = 0;
    mp.log = p->log;
    mp.log_user = p->log_user;
    if ((st = molmo_model_load(model, &mp, &m, err)) != MOLMO_OK) goto done;
    st = molmo_path_is_dir(m->path) ? texts_from_dir(m->path, &tx, err)
                                    : texts_from_gguf(m->path, &tx, err);
    if (st == MOLMO_OK) st = molmo_gguf_writer_create(&w, err);
    derive_name(model, m->path, name, sizeof name);
    if (st == MOLMO_OK) st = plan(&cv, m, w, p->type, vtype, err);
    for (int i = 0; i < cv.n; i++) quantized |= molmo_dtype_block_size(cv.out[i]) > 1;
    if (st == MOLMO_OK)
        st = add_metadata(w, &m->cfg, &tx, p->name ? p->name : name, p->type, vtype, quantized,
                          err);
    if (st == MOLMO_OK && m->w.n_unused)
        molmo_log(p->log, p->log_user, MOLMO_LOG_WARN,
                  "%s: %d tensors of the checkpoint are not used by the model and not written",
                  m->path, m->w.n_unused);
    if (st == MOLMO_OK) st = molmo_gguf_writer_write(w, out_path, fill, &cv, err);
    if (st == MOLMO_OK)
        molmo_log(p->log, p->log_user, MOLMO_LOG_INFO, "%s: %d tensors, %llu bytes in %.1f s",
                  out_path, cv.n, (unsigned long long)molmo_gguf_writer_size(w),
                  seconds_since(&cv.t0));
done:
    molmo_free(cv.src);
    molmo_free(cv.out);
    molmo_free(cv.rows);
    molmo_free(cv.th_st);
    molmo_free(cv.th_err);
    molmo_pool_free(cv.pool);
    molmo_gguf_writer_free(w);
    texts_free(&tx);
    molmo_model_free(m);
    return st;
}

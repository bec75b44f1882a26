/* test_gguf_kquant.c — `molmo convert` with q4_k / q6_k, loading such GGUFs and running them:
 *   - the per-tensor policy for q4_k / q6_k (embeddings, head and attention in q6_k for q4_k;
 *     rows that are not whole 256-value blocks fall back to q8_0, else f16);
 *   - the fixtures (tests/data/models) are 64 wide, so every matrix falls back: the q4_k and q6_k
 *     files hold exactly the q8_0 file's tensors (byte for byte), name no K type, and give the
 *     q8_0 file's logits;
 *   - a synthetic checkpoint of the Qwen2 layout with 256-wide rows (molmo_synth_checkpoint,
 *     random weights) converted to q8_0 / q4_0 / q6_k / q4_k: the K types really are in the
 *     file, its logits are finite and close to the f32 checkpoint's (top-1 agreement and mean
 *     KL over a teacher-forced prompt + decode, printed), 1 and 2
 *     threads agree bit for bit, and on the reference kernels a q4_k model equals the f32 GGUF
 *     of its dequantized weights bit for bit (every K tensor reaches the model intact). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "io/gguf.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "model/model.h"
#include "model/presets.h"
#include "testutil.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/molmo_test_gguf_kquant_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Converts `src` to `type` as tmpdir/<tag>-<type>.gguf (once) into out. */
static void convert(const char *src, const char *tag, molmo_dtype type, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s-%s.gguf", tmpdir, tag, molmo_dtype_name(type));
    if (access(out, F_OK) == 0) return;
    molmo_convert_params p = molmo_convert_default_params();
    p.type = type;
    p.n_threads = 2;
    molmo_error err = {0};
    if (molmo_convert(src, out, &p, &err) != MOLMO_OK)
        fail_msg("convert %s to %s: %s", src, molmo_dtype_name(type), err.msg);
}

/* ---- policy ------------------------------------------------------------------------------ */

static void test_policy_kquant(void **state) {
    (void)state;
    const molmo_dtype F16 = MOLMO_DTYPE_F16, F32 = MOLMO_DTYPE_F32, Q8 = MOLMO_DTYPE_Q8_0,
                      Q4K = MOLMO_DTYPE_Q4_K, Q6K = MOLMO_DTYPE_Q6_K;
    const int64_t vec[1] = {3584}, mat[2] = {18944, 3584}, narrow[2] = {64, 96}, odd[2] = {64, 600},
                  patch[2] = {1024, 588};
    struct {
        const char *name;
        int nd;
        const int64_t *shape;
        molmo_dtype type, vtype, want;
    } cases[] = {
        {"model.transformer.blocks.0.attn_norm.weight", 1, vec, Q4K, Q8, F32},
        {"model.transformer.blocks.0.att_proj.weight", 2, mat, Q4K, Q8, Q6K},
        {"model.transformer.blocks.3.attn.att_proj.weight", 2, mat, Q4K, Q8, Q6K}, /* MolmoE */
        {"model.transformer.blocks.0.attn_out.weight", 2, mat, Q4K, Q8, Q6K},
        {"model.transformer.blocks.0.attn_out.weight", 2, mat, Q6K, Q6K, Q6K},
        {"model.transformer.blocks.0.ff_proj.weight", 2, mat, Q4K, Q8, Q4K},
        {"model.transformer.blocks.0.ff_out.weight", 2, mat, Q4K, Q8, Q4K},
        {"model.transformer.blocks.3.mlp.experts.5.down_proj.weight", 2, mat, Q4K, Q8, Q4K},
        {"model.transformer.blocks.3.mlp.gate.weight", 2, mat, Q4K, Q8, F32},
        {"model.transformer.wte.embedding", 2, mat, Q4K, Q8, Q6K},
        {"model.transformer.wte.new_embedding", 2, mat, Q6K, Q6K, Q6K},
        {"model.transformer.ff_out.weight", 2, mat, Q4K, Q8, Q6K},
        {"lm_head.weight", 2, mat, Q4K, Q8, Q6K},
        {"model.transformer.blocks.0.ff_proj.weight", 2, narrow, Q4K, Q8, Q8}, /* 96: 32-blocks */
        {"model.transformer.blocks.0.att_proj.weight", 2, narrow, Q4K, Q8, Q8},
        {"model.transformer.blocks.0.ff_proj.weight", 2, odd, Q6K, Q6K, F16}, /* 600: neither */
        {"model.vision_backbone.image_vit.transformer.resblocks.0.attention.wq.weight", 2, mat,
         Q4K, Q8, Q8},
        {"model.vision_backbone.image_vit.transformer.resblocks.0.attention.wq.weight", 2, mat,
         Q6K, Q4K, Q4K},
        {"model.vision_backbone.image_vit.patch_embedding.weight", 2, patch, Q4K, Q6K, F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        molmo_dtype got = molmo_convert_policy(cases[i].name, cases[i].nd, cases[i].shape,
                                               cases[i].type, cases[i].vtype);
        if (got != cases[i].want)
            fail_msg("%s (%s/%s): %s, want %s", cases[i].name, molmo_dtype_name(cases[i].type),
                     molmo_dtype_name(cases[i].vtype), molmo_dtype_name(got), molmo_dtype_name(cases[i].want));
    }
    /* the default vision type: q8_0 under q4_k, q6_k under q6_k (molmo.vision_type below) */
}

/* ---- running a model on token ids ------------------------------------------------------- */

typedef struct run {
    float *logits; /* [n_steps, E]: after the prompt, then after each fed id */
    int n_steps, E;
} run;

/* Loads `path`, feeds ids[0 .. n_prompt) as one prefill (the GEMM paths) and then ids[n_prompt
 * .. n_prompt + n_steps - 2] one by one (the decode paths), keeping every step's logits. */
static void run_ids_act(const char *path, int n_threads, int bf16_act, const int *ids, int n_prompt,
                        int n_steps, run *r) {
    molmo_error err = {0};
    molmo_model *m = NULL;
    molmo_pool *pool = NULL;
    molmo_decoder *d = NULL;
    if (molmo_model_load(path, NULL, &m, &err) != MOLMO_OK) fail_msg("%s: %s", path, err.msg);
    assert_int_equal(molmo_pool_create(n_threads, &pool, &err), MOLMO_OK);
    assert_int_equal(molmo_decoder_create(m, 256, 0, n_threads, MOLMO_DTYPE_F32, &d, &err), MOLMO_OK);
    molmo_decoder_set_bf16_activations(d, bf16_act);
    const int D = m->cfg.d_model;
    r->E = m->cfg.embedding_size;
    r->n_steps = n_steps;
    r->logits = malloc((size_t)n_steps * (size_t)r->E * sizeof(float));
    float *x = malloc((size_t)n_prompt * (size_t)D * sizeof(float));
    assert_true(r->logits && x);
    assert_int_equal(molmo_decoder_embed(m, ids, n_prompt, x, &err), MOLMO_OK);
    if (molmo_decoder_forward(d, pool, x, n_prompt, r->logits, NULL, NULL, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    for (int s = 1; s < n_steps; s++) {
        assert_int_equal(molmo_decoder_embed(m, &ids[n_prompt + s - 1], 1, x, &err), MOLMO_OK);
        if (molmo_decoder_forward(d, pool, x, 1, r->logits + (size_t)s * (size_t)r->E, NULL, NULL, &err) != MOLMO_OK)
            fail_msg("%s", err.msg);
    }
    free(x);
    molmo_decoder_free(d);
    molmo_pool_free(pool);
    molmo_model_free(m);
}

static void run_ids(const char *path, int n_threads, const int *ids, int n_prompt, int n_steps, run *r) {
    run_ids_act(path, n_threads, 0, ids, n_prompt, n_steps, r);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

static void log_softmax(const float *x, int n, double *out) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - log(s);
}

typedef struct agree {
    int steps, top1;
    double kl_mean, kl_max;
} agree;

/* Top-1 agreement and KL(p_ref || p_test) over the steps; every test logit must be finite. */
static agree compare(const run *ref, const run *t) {
    agree a = {0, 0, 0, 0};
    double *p = malloc((size_t)ref->E * sizeof *p), *q = malloc((size_t)ref->E * sizeof *q);
    assert_true(p && q && ref->E == t->E && ref->n_steps == t->n_steps);
    for (int s = 0; s < ref->n_steps; s++) {
        const float *x = ref->logits + (size_t)s * (size_t)ref->E, *y = t->logits + (size_t)s * (size_t)ref->E;
        for (int i = 0; i < ref->E; i++)
            if (!isfinite(y[i])) fail_msg("step %d logit %d is %g", s, i, (double)y[i]);
        log_softmax(x, ref->E, p);
        log_softmax(y, ref->E, q);
        double kl = 0;
        for (int i = 0; i < ref->E; i++) kl += exp(p[i]) * (p[i] - q[i]);
        a.steps++;
        a.top1 += argmax(x, ref->E) == argmax(y, ref->E);
        a.kl_mean += kl / ref->n_steps;
        a.kl_max = fmax(a.kl_max, kl);
    }
    free(p);
    free(q);
    return a;
}

static void random_ids(int *ids, int n, int vocab, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int)((seed >> 8) % (unsigned)vocab);
    }
}

/* ---- the fixtures: everything falls back ----------------------------------------------- */

static void expect_str(const molmo_gguf *g, const char *key, const char *want) {
    const char *s;
    size_t len;
    molmo_error err = {0};
    assert_int_equal(molmo_gguf_get_str(g, key, &s, &len, &err), MOLMO_OK);
    if (len != strlen(want) || memcmp(s, want, len) != 0) fail_msg("%s = '%.*s', want '%s'", key, (int)len, s, want);
}

static void check_fixture(const char *model) {
    char dir[1024], q8[1024], kq[2][1024];
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", model);
    tu_data_path(dir, sizeof dir, rel);
    convert(dir, model, MOLMO_DTYPE_Q8_0, q8, sizeof q8);
    const molmo_dtype types[2] = {MOLMO_DTYPE_Q4_K, MOLMO_DTYPE_Q6_K};
    molmo_error err = {0};
    molmo_gguf g8, gk;
    assert_int_equal(molmo_gguf_open(&g8, q8, &err), MOLMO_OK);
    for (int t = 0; t < 2; t++) {
        convert(dir, model, types[t], kq[t], sizeof kq[t]);
        if (molmo_gguf_open(&gk, kq[t], &err) != MOLMO_OK) fail_msg("%s", err.msg);
        assert_int_equal(gk.st.n_tensors, g8.st.n_tensors);
        int n_q8 = 0, n_f16 = 0, n_f32 = 0;
        for (int i = 0; i < gk.st.n_tensors; i++) {
            const molmo_st_tensor *a = &gk.st.tensors[i], *b = &g8.st.tensors[i];
            assert_string_equal(a->name, b->name);
            assert_int_equal(a->dtype, b->dtype); /* no K type: no row is whole 256-blocks */
            assert_true(a->n_bytes == b->n_bytes && memcmp(a->data, b->data, a->n_bytes) == 0);
            n_q8 += a->dtype == MOLMO_DTYPE_Q8_0;
            n_f16 += a->dtype == MOLMO_DTYPE_F16;
            n_f32 += a->dtype == MOLMO_DTYPE_F32;
        }
        assert_int_equal(n_q8 + n_f16 + n_f32, gk.st.n_tensors);
        expect_str(&gk, "molmo.type", molmo_dtype_name(types[t]));
        expect_str(&gk, "molmo.vision_type", t == 0 ? "q8_0" : "q6_k");
        int64_t ft;
        assert_int_equal(molmo_gguf_get_int(&gk, "general.file_type", &ft, &err), MOLMO_OK);
        assert_int_equal(ft, t == 0 ? 15 : 18);
        print_message("%s as %s: all %d matrices fell back to q8_0 (%d) or f16 (%d: the patch "
                      "embedding); %d f32 tensors; tensor bytes identical to the q8_0 file\n",
                      model, molmo_dtype_name(types[t]), n_q8 + n_f16, n_q8, n_f16, n_f32);
        molmo_gguf_close(&gk);
    }
    molmo_gguf_close(&g8);
    /* and so the logits are the q8_0 file's, here against the f32 checkpoint */
    int ids[40];
    random_ids(ids, 40, 700, 7u);
    run ref, r8, rk;
    run_ids(dir, 2, ids, 24, 16, &ref);
    run_ids(q8, 2, ids, 24, 16, &r8);
    run_ids(kq[0], 2, ids, 24, 16, &rk);
    assert_memory_equal(r8.logits, rk.logits, (size_t)r8.n_steps * (size_t)r8.E * sizeof(float));
    const agree a = compare(&ref, &rk);
    print_message("%s as q4_k (= q8_0): top-1 %d/%d, mean KL %.2e, max KL %.2e vs f32\n", model, a.top1,
                  a.steps, a.kl_mean, a.kl_max);
    free(ref.logits);
    free(r8.logits);
    free(rk.logits);
}

static void test_fixtures_fall_back(void **state) {
    (void)state;
    check_fixture("qwen2");
    check_fixture("olmoe");
}

/* ---- a synthetic 256-wide model --------------------------------------------------------- */

/* Qwen2 layout (qkv bias, GQA), every width a multiple of 256 except the patch embedding (588)
 * and the fused QKV (256 + 2 * 128 = 512 rows of 256: fine). Two ViT layers. */
static const char SYNTH_CONFIG[] =
    "{\"architectures\":[\"MolmoForCausalLM\"],\"model_type\":\"molmo\",\"hidden_size\":256,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"num_hidden_layers\":2,"
    "\"intermediate_size\":1024,\"qkv_bias\":true,\"norm_after\":false,"
    "\"attention_layer_norm\":false,\"layer_norm_eps\":1e-06,\"layer_norm_type\":\"rms\","
    "\"rope_theta\":1000000.0,\"vocab_size\":1024,\"embedding_size\":1024,"
    "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false,\"weight_tying\":false,"
    "\"use_position_ids\":true,\"clip_qkv\":null,\"torch_dtype\":\"float32\",\"vit_layers\":[-1,-2],"
    "\"vision_backbone\":{\"image_default_input_size\":[336,336],\"image_emb_dim\":256,"
    "\"image_head_dim\":64,\"image_mlp_activations\":\"quick_gelu\",\"image_mlp_dim\":512,"
    "\"image_norm_eps\":1e-05,\"image_num_heads\":4,\"image_num_key_value_heads\":4,"
    "\"image_num_layers\":2,\"image_num_pos\":577,\"image_patch_size\":14}}";

/* Multiplies tensor `name` of the f32 checkpoint image buf (the bytes of `file`) by k. */
static void scale_tensor(const char *file, unsigned char *buf, const char *name, float k) {
    molmo_safetensors st;
    molmo_error err = {0};
    if (molmo_st_open(&st, file, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    const molmo_st_tensor *t = molmo_st_find(&st, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, MOLMO_DTYPE_F32);
    float *v = (float *)(buf + ((const unsigned char *)t->data - st.maps[0].data));
    for (uint64_t i = 0; i < t->n_elements; i++) v[i] *= k;
    molmo_st_close(&st);
}

/* The generator draws every weight uniformly in [-0.05, 0.05) (norm weights around 1, but
 * ln_f's name has no "norm"): its next-token distributions are nearly flat (logit std ~0.02,
 * KL of any quantization ~1e-7, argmax decided by noise). Scaling the token embedding by 10,
 * ln_f by 20 and the LM head by 15 gives logits of std ~4, on which agreement and KL mean
 * something. */
static void synth_dir(char *dir, size_t cap) {
    snprintf(dir, cap, "%s/synth", tmpdir);
    if (access(dir, F_OK) == 0) return;
    assert_int_equal(mkdir(dir, 0755), 0);
    molmo_error err = {0};
    if (molmo_synth_checkpoint(dir, SYNTH_CONFIG, MOLMO_DTYPE_F32, 1, 1234, &err) != MOLMO_OK)
        fail_msg("synth: %s", err.msg);
    char file[700];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size);
    assert_true(buf && fread(buf, 1, size, f) == size);
    fclose(f);
    scale_tensor(file, buf, "model.transformer.wte.embedding", 10.0f);
    scale_tensor(file, buf, "model.transformer.ln_f.weight", 20.0f);
    scale_tensor(file, buf, "model.transformer.ff_out.weight", 15.0f);
    f = fopen(file, "wb");
    assert_true(f && fwrite(buf, 1, size, f) == size);
    fclose(f);
    free(buf);
}

/* Counts of each stored type in a GGUF. */
static void count_types(const char *path, int n[MOLMO_DTYPE_COUNT]) {
    memset(n, 0, MOLMO_DTYPE_COUNT * sizeof n[0]);
    molmo_gguf g;
    molmo_error err = {0};
    if (molmo_gguf_open(&g, path, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    for (int i = 0; i < g.st.n_tensors; i++) n[g.st.tensors[i].dtype]++;
    molmo_gguf_close(&g);
}

static void test_synthetic_model(void **state) {
    (void)state;
    char dir[512], path[4][1024];
    synth_dir(dir, sizeof dir);
    static const molmo_dtype types[4] = {MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0, MOLMO_DTYPE_Q6_K, MOLMO_DTYPE_Q4_K};
    /* measured (docs/gguf.md; over 4 prompts mean KL q8_0 4.1-5.5e-4, q4_0 1.2-1.4e-2, q6_k
     * 2.7-3.3e-3, q4_k 7.5-9.4e-3; top-1 >= 21/24 for all but q8_0, 24/24): bounds ~2.5x */
    static const double min_top1[4] = {0.9, 0.75, 0.8, 0.75}, max_kl[4] = {2e-3, 4e-2, 1e-2, 2.5e-2};
    int ids[64];
    double kl[4];
    random_ids(ids, 64, 1024, 99u);
    run ref;
    run_ids(dir, 2, ids, 40, 24, &ref);
    print_message("synthetic 256-wide Qwen2-like model, 40-token prefill + 23 decode steps, vs f32:\n");
    for (int t = 0; t < 4; t++) {
        convert(dir, "synth", types[t], path[t], sizeof path[t]);
        int n[MOLMO_DTYPE_COUNT];
        count_types(path[t], n);
        if (types[t] == MOLMO_DTYPE_Q4_K) { /* head, embeddings, attention: q6_k; MLP: q4_k */
            assert_int_equal(n[MOLMO_DTYPE_Q4_K], 2 * 2);
            assert_int_equal(n[MOLMO_DTYPE_Q6_K], 2 + 1 + 2 * 2);
        }
        if (types[t] == MOLMO_DTYPE_Q6_K) assert_true(n[MOLMO_DTYPE_Q6_K] > 20 && n[MOLMO_DTYPE_Q4_K] == 0);
        run r;
        run_ids(path[t], 2, ids, 40, 24, &r);
        const agree a = compare(&ref, &r);
        const double top1 = (double)a.top1 / a.steps;
        print_message("  %-4s (%2d q4_k, %2d q6_k, %2d q8_0, %2d f16 tensors): top-1 %d/%d, mean KL %.2e, "
                      "max KL %.2e\n", molmo_dtype_name(types[t]), n[MOLMO_DTYPE_Q4_K], n[MOLMO_DTYPE_Q6_K],
                      n[MOLMO_DTYPE_Q8_0], n[MOLMO_DTYPE_F16], a.top1, a.steps, a.kl_mean, a.kl_max);
        if (!(top1 >= min_top1[t]) || !(a.kl_mean <= max_kl[t]))
            fail_msg("%s: top-1 %.3f (>= %.2f wanted), mean KL %.3g (<= %.3g)", molmo_dtype_name(types[t]), top1,
                     min_top1[t], a.kl_mean, max_kl[t]);
        kl[t] = a.kl_mean;
        /* bf16 activations: the prefill's GEMMs of every type on bf16 tiles where the CPU has
         * AMX-BF16 (molmo_op_bf16_rule), the attention on bf16 values; decode's GEMVs keep
         * int8. The same distance from f32 as without (docs/gguf.md) */
        run rb;
        run_ids_act(path[t], 2, 1, ids, 40, 24, &rb);
        const agree ab = compare(&ref, &rb);
        print_message("  %-4s + bf16 activations: top-1 %d/%d, mean KL %.2e, max KL %.2e\n",
                      molmo_dtype_name(types[t]), ab.top1, ab.steps, ab.kl_mean, ab.kl_max);
        if (!((double)ab.top1 / ab.steps >= min_top1[t]) || !(ab.kl_mean <= max_kl[t]))
            fail_msg("%s + bf16 activations: top-1 %d/%d (>= %.2f wanted), mean KL %.3g (<= %.3g)",
                     molmo_dtype_name(types[t]), ab.top1, ab.steps, min_top1[t], ab.kl_mean, max_kl[t]);
        free(rb.logits);
        if (molmo_dtype_block_size(types[t]) == 256) { /* 1 thread = 2 threads, bit for bit */
            run r1;
            run_ids(path[t], 1, ids, 40, 24, &r1);
            assert_memory_equal(r1.logits, r.logits, (size_t)r.n_steps * (size_t)r.E * sizeof(float));
            free(r1.logits);
        }
        free(r.logits);
    }
    /* the order the bits promise: q8_0 < q6_k < the q4_k mix < q4_0 */
    if (!(kl[0] < kl[2] && kl[2] < kl[3] && kl[3] < kl[1]))
        fail_msg("mean KL q8_0 %.3g, q6_k %.3g, q4_k %.3g, q4_0 %.3g: not in that order", kl[0], kl[2], kl[3], kl[1]);
    free(ref.logits);
}

/* On the reference kernels (dequantize, then f32 arithmetic) a q4_k model and the f32 GGUF of
 * its weights (re-encoding a GGUF dequantizes exactly) give the same bits. */
static void test_dequantized_equivalence_kquant(void **state) {
    (void)state;
    char dir[512], q[1024], f[1100];
    synth_dir(dir, sizeof dir);
    convert(dir, "synth", MOLMO_DTYPE_Q4_K, q, sizeof q);
    snprintf(f, sizeof f, "%s.f32.gguf", q);
    molmo_convert_params p = molmo_convert_default_params();
    p.type = MOLMO_DTYPE_F32;
    molmo_error err = {0};
    if (molmo_convert(q, f, &p, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    int ids[24];
    random_ids(ids, 24, 1024, 5u);
    molmo_kernels_force_reference(1);
    run a, b;
    run_ids(q, 1, ids, 12, 8, &a);
    run_ids(f, 1, ids, 12, 8, &b);
    molmo_kernels_force_reference(0);
    assert_memory_equal(a.logits, b.logits, (size_t)a.n_steps * (size_t)a.E * sizeof(float));
    free(a.logits);
    free(b.logits);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_kquant),
        cmocka_unit_test(test_fixtures_fall_back),
        cmocka_unit_test(test_synthetic_model),
        cmocka_unit_test(test_dequantized_equivalence_kquant),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

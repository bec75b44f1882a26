/* ref_ops.c — reference norms, softmax, activations, residual adds and RoPE, plus the ref
 * kernel table. Each function is the specification its fast versions are tested against:
 *   layernorm  CLIP/ViT LayerNorm (fact sheet §3): statistics summed in double, then
 *              y = ((x - mean) * rstd) * w + b with rstd = 1 / sqrtf(var + eps)   (f32)
 *   rmsnorm    RMSLayerNorm (§2.3): ms summed in double, y = (x * (1 / sqrtf(ms + eps))) * w
 *   softmax    exp(x - max) * (1 / sum), sum in double
 *   quick_gelu x * (1 / (1 + expf(-(1.702 * x))))   (PyTorch sigmoid = reciprocal of 1+exp(-t))
 *   silu_mul   (g / (1 + expf(-g))) * u             (PyTorch silu = x / (1 + exp(-x)))
 *   rope       t*cos + rotate_half(t)*sin           (§2.4, products rounded separately)
 * Double sums are the spec because they are within one rounding of the exact statistic, which
 * PyTorch's cascaded f32 sums also approximate closely. */
#include <math.h>

#include "base/fp16.h"
#include "kernels/quant.h"
#include "kernels/ref/ref.h"

static void layernorm_ref(float *y, const float *x, const float *w, const float *b, int n,
                          float eps) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    const double mean_d = s / n;
    double v = 0.0;
    for (int i = 0; i < n; i++) v += (x[i] - mean_d) * (x[i] - mean_d);
    const float mean = (float)mean_d;
    const float rstd = 1.0f / sqrtf((float)(v / n) + eps);
    for (int i = 0; i < n; i++) {
        float t = (x[i] - mean) * rstd;
        if (w) t = t * w[i];
        if (b) t = t + b[i];
        y[i] = t;
    }
}

static void rmsnorm_ref(float *y, const float *x, const float *w, int n, float eps) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    const float r = 1.0f / sqrtf((float)(s / n) + eps);
    for (int i = 0; i < n; i++) y[i] = w ? (x[i] * r) * w[i] : x[i] * r;
}

static void softmax_ref(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    const float inv = 1.0f / (float)s;
    for (int i = 0; i < n; i++) x[i] = x[i] * inv;
}

static void quick_gelu_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] * (1.0f / (1.0f + expf(-(1.702f * x[i]))));
}

static void silu_mul_ref(float *out, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

static void add_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] + x[i];
}

static void scale_add_ref(float *y, const float *x, float a, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] + a * x[i];
}

static void rope_ref(float *x, int ldx, int n_tok, int n_heads, int hd, const int *pos,
                     const float *cos_t, const float *sin_t) {
    const int half = hd / 2;
    for (int t = 0; t < n_tok; t++) {
        const float *c = cos_t + (size_t)pos[t] * (size_t)half;
        const float *s = sin_t + (size_t)pos[t] * (size_t)half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)t * (size_t)ldx + (size_t)h * (size_t)hd;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

static void to_f16_ref(uint16_t *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = molmo_f32_to_f16(x[i]);
}

static void round_bf16_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[i]));
}

const molmo_kernels molmo_kernels_ref_table = {
    .name = "ref",
    .matmul = molmo_k_matmul_f32_ref,
    .layernorm = layernorm_ref,
    .rmsnorm = rmsnorm_ref,
    .softmax = softmax_ref,
    .quick_gelu = quick_gelu_ref,
    .silu_mul = silu_mul_ref,
    .add = add_ref,
    .scale_add = scale_add_ref,
    .attention = molmo_k_attention_f32_ref,
    .rope = rope_ref,
    .to_f32 = molmo_k_to_f32_ref,
    .to_f16 = to_f16_ref,
    .round_bf16 = round_bf16_ref,
};

/* ref_attention.c — reference scaled-dot-product attention with grouped-query heads (the
 * "math" form of PyTorch's F.scaled_dot_product_attention; molmo-architecture.md §2.2 step 7,
 * §3 attention). Per query row: s_j = scale * (q · k_j) with the dot product summed in order in
 * f32; p_j = expf(s_j - max_j s_j); out = (sum_j p_j v_j, in order, f32) * (1 / sum_j p_j), the
 * normaliser summed in double. Causal rows see keys 0 .. q_pos0 + i only. K and V may be f16
 * (an f16 KV cache), read as the f32 values they hold. With bf16 set, P is rounded to bf16
 * after the sum is taken (kernels.h). */
#include <math.h>

#include "base/fp16.h"
#include "kernels/ref/ref.h"

/* Element i of K or V as f32 (exact for f16). */
static float kv_at(const void *p, molmo_dtype t, size_t i) {
    return t == MOLMO_DTYPE_F16 ? molmo_f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}


static void one_row(const molmo_attn_args *a, int h, int i, float *s) {
    const int hd = a->hd, group = a->n_heads / a->n_kv_heads, g = h / group;
    const float *q = a->q + (size_t)i * (size_t)a->ldq + (size_t)h * (size_t)hd;
    float *o = a->out + (size_t)i * (size_t)a->ldo + (size_t)h * (size_t)hd;
    const int len = molmo_attn_row_len(a, i);
    float mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        const size_t k = (size_t)j * (size_t)a->ldk + (size_t)g * a->ldh;
        float dot = 0.0f;
        for (int d = 0; d < hd; d++) dot += q[d] * kv_at(a->k, a->kv_type, k + (size_t)d);
        s[j] = a->scale * dot;
        if (s[j] > mx) mx = s[j];
    }
    double sum = 0.0;
    for (int j = 0; j < len; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    if (a->bf16) /* bf16 activations: P rounded, its normaliser not */
        for (int j = 0; j < len; j++) s[j] = molmo_bf16_to_f32(molmo_f32_to_bf16(s[j]));
    const float inv = 1.0f / (float)sum;
    for (int d = 0; d < hd; d++) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++)
            acc += s[j] * kv_at(a->v, a->kv_type,
                                (size_t)j * (size_t)a->ldv + (size_t)g * a->ldh + (size_t)d);
        o[d] = acc * inv;
    }
}

void molmo_k_attention_f32_ref(const molmo_attn_args *a, int it0, int it1, float *scratch,
                               float *ws, size_t ws_floats) {
    (void)ws;
    (void)ws_floats;
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        for (int i = i0; i < i1; i++) one_row(a, h, i, scratch);
    }
}

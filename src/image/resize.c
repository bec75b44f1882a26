/* resize.c — TF ScaleAndTranslate (triangle kernel, antialias, translation 0) for 8-bit RGB
 * input, mirroring tensorflow/core/kernels/image/scale_and_translate_op.cc (fact sheet §5.4):
 * the same float32 operations in the same order, so the output is bit-identical to TF's CPU
 * kernel built without FMA contraction. Contraction is disabled here for that reason. */
#include "image/resize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* TF's TriangleKernelFunc. */
static float triangle(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Taps of output sample x (TF's ComputeSpansCore body). */
static void one_span(molmo_resize_axis *a, int x, float inv_scale, float kernel_scale,
                     float one_over_kernel_scale) {
    float *w = a->w + (size_t)x * (size_t)a->span;
    const float col_f = (float)x + 0.5f;
    const float sample_f = col_f * inv_scale + (-inv_scale * 0.0f);
    a->start[x] = 0;
    a->len[x] = 0;
    if (sample_f < 0 || sample_f > (float)a->n_in) return; /* outside: an empty span, as TF */
    int64_t start = (int64_t)ceilf(sample_f - 1.0f * kernel_scale - 0.5f);
    int64_t end = (int64_t)floorf(sample_f + 1.0f * kernel_scale - 0.5f);
    start = clamp64(start, 0, a->n_in - 1);
    end = clamp64(end, 0, a->n_in - 1) + 1;
    int n = (int)(end - start);
    if (n > a->span) n = a->span; /* TF CHECKs this; it cannot happen for in-range sizes */
    float total = 0.0f;
    for (int k = 0; k < n; k++) {
        float pos = (float)(start + k) + 0.5f - sample_f;
        w[k] = triangle(pos * one_over_kernel_scale);
        total += w[k];
    }
    a->start[x] = (int32_t)start;
    if (fabsf(total) >= 1000.0f * FLT_MIN) {
        const float inv_total = 1.0f / total;
        for (int k = 0; k < n; k++) w[k] = w[k] * inv_total;
        a->len[x] = n;
    } else {
        for (int k = 0; k < n; k++) w[k] = 0.0f; /* TF keeps zero weights: the sample is 0 */
    }
}

/* The same taps transposed to [span, n_out] with every unused tap given weight 0 and a valid
 * source index, so the horizontal pass can run tap-major over a whole row: adding 0 * (finite
 * value) = +0 leaves each sum bit-identical to TF's per-sample loop. */
static void transpose_taps(molmo_resize_axis *a) {
    for (int k = 0; k < a->span; k++)
        for (int x = 0; x < a->n_out; x++) {
            int used = k < a->len[x];
            int src = a->start[x] + k;
            a->wt[(size_t)k * (size_t)a->n_out + (size_t)x] = used ? a->w[(size_t)x * (size_t)a->span + (size_t)k] : 0.0f;
            a->it[(size_t)k * (size_t)a->n_out + (size_t)x] = 3 * (src < a->n_in ? src : a->n_in - 1);
        }
}

molmo_status molmo_resize_axis_init(molmo_resize_axis *a, int n_in, int n_out, molmo_error *err) {
    memset(a, 0, sizeof *a);
    if (n_in < 1 || n_out < 1)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "resize: sizes %d -> %d", n_in, n_out);
    a->n_in = n_in;
    a->n_out = n_out;
    const float scale = (float)n_out / (float)n_in;
    const float inv_scale = (float)(1.0 / (double)scale);
    const float kernel_scale = inv_scale > 1.0f ? inv_scale : 1.0f;
    /* kernel_scale <= n_in (out >= 1), so the int conversion cannot overflow */
    const int span = 2 * (int)ceilf(1.0f * kernel_scale) + 1;
    a->span = span < n_in ? span : n_in;
    a->start = molmo_calloc((size_t)n_out, sizeof *a->start);
    a->len = molmo_calloc((size_t)n_out, sizeof *a->len);
    a->w = molmo_calloc((size_t)n_out * (size_t)a->span, sizeof *a->w);
    a->wt = molmo_calloc((size_t)n_out * (size_t)a->span, sizeof *a->wt);
    a->it = molmo_calloc((size_t)n_out * (size_t)a->span, sizeof *a->it);
    if (!a->start || !a->len || !a->w || !a->wt || !a->it) {
        molmo_resize_axis_free(a);
        return molmo_err(err, MOLMO_ERR_NOMEM, "resize: cannot allocate weights for %d -> %d",
                         n_in, n_out);
    }
    const float one_over_kernel_scale = 1.0f / kernel_scale;
    for (int x = 0; x < n_out; x++) one_span(a, x, inv_scale, kernel_scale, one_over_kernel_scale);
    transpose_taps(a);
    return MOLMO_OK;
}

void molmo_resize_axis_free(molmo_resize_axis *a) {
    if (!a) return;
    molmo_free(a->start);
    molmo_free(a->len);
    molmo_free(a->w);
    molmo_free(a->wt);
    molmo_free(a->it);
    memset(a, 0, sizeof *a);
}

molmo_status molmo_resize_plan_init(molmo_resize_plan *p, int in_h, int in_w, int out_h,
                                    int out_w, molmo_error *err) {
    memset(p, 0, sizeof *p);
    molmo_status st = molmo_resize_axis_init(&p->y, in_h, out_h, err);
    if (st == MOLMO_OK) st = molmo_resize_axis_init(&p->x, in_w, out_w, err);
    if (st != MOLMO_OK) molmo_resize_plan_free(p);
    return st;
}

void molmo_resize_plan_free(molmo_resize_plan *p) {
    if (!p) return;
    molmo_resize_axis_free(&p->y);
    molmo_resize_axis_free(&p->x);
}

size_t molmo_resize_scratch_floats(const molmo_resize_plan *p) { return (size_t)p->x.n_in * 3; }

/* Vertical pass for one output row (TF GatherRows): acc = sum_k w_k * (b_k * (1/255)), terms
 * added in source-row order starting from 0. The inner loop is over the row, so it vectorises
 * without changing any rounding. */
static void gather_row(const molmo_resize_axis *ay, int y, const uint8_t *src, size_t stride,
                       int n, float *acc) {
    const float to_unit = (float)(1.0 / 255.0);
    const float *w = ay->w + (size_t)y * (size_t)ay->span;
    for (int i = 0; i < n; i++) acc[i] = 0.0f;
    for (int k = 0; k < ay->len[y]; k++) {
        const uint8_t *row = src + (size_t)(ay->start[y] + k) * stride;
        const float wk = w[k];
        for (int i = 0; i < n; i++) {
            const float v = (float)row[i] * to_unit;
            const float t = wk * v;
            acc[i] = acc[i] + t;
        }
    }
}

/* Horizontal pass for one row (TF GatherColumns): out[x] = sum_k w_k * in[start+k], from 0 in
 * tap order, then tf.clip_by_value to [0, 1]. Run tap-major over the row (transposed tables)
 * so the sums of different pixels proceed in parallel instead of as one dependent chain. */
static void gather_columns(const molmo_resize_axis *ax, const float *in, float *out) {
    const int n = ax->n_out;
    for (int i = 0; i < 3 * n; i++) out[i] = 0.0f;
    for (int k = 0; k < ax->span; k++) {
        const float *wt = ax->wt + (size_t)k * (size_t)n;
        const int32_t *it = ax->it + (size_t)k * (size_t)n;
        for (int x = 0; x < n; x++) {
            const float wk = wt[x];
            const float *s = in + it[x];
            const float tr = wk * s[0], tg = wk * s[1], tb = wk * s[2];
            out[3 * x + 0] = out[3 * x + 0] + tr;
            out[3 * x + 1] = out[3 * x + 1] + tg;
            out[3 * x + 2] = out[3 * x + 2] + tb;
        }
    }
    for (int i = 0; i < 3 * n; i++) {
        const float v = out[i] < 1.0f ? out[i] : 1.0f;
        out[i] = v > 0.0f ? v : 0.0f;
    }
}

void molmo_resize_rows_u8(const molmo_resize_plan *p, const uint8_t *src, size_t src_stride,
                          float *dst, int y0, int y1, float *scratch) {
    const int n = p->x.n_in * 3;
    for (int y = y0; y < y1; y++) {
        gather_row(&p->y, y, src, src_stride, n, scratch);
        gather_columns(&p->x, scratch, dst + (size_t)y * (size_t)p->x.n_out * 3);
    }
}

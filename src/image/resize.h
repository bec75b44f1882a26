/* resize.h — TensorFlow's antialiased bilinear resize (tf.image.resize(..., BILINEAR,
 * antialias=True), i.e. ScaleAndTranslate with the triangle kernel), bit-exact on the CPU
 * (fact sheet §5.4). Separable: a vertical pass, then a horizontal pass, float accumulation in
 * source order, weights normalised per output sample.
 *
 * The work is split by output rows so a thread pool can run disjoint row ranges; any split
 * gives identical bytes because every output row is computed independently. */
#ifndef MOLMO_IMAGE_RESIZE_H
#define MOLMO_IMAGE_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* The taps of one axis: output sample i reads inputs start[i] .. start[i]+len[i]-1 with
 * weights w[i*span .. i*span+len[i]-1]. */
typedef struct molmo_resize_axis {
    int n_in, n_out;
    int span;            /* taps reserved per output sample (TF's span_size) */
    int32_t *start;      /* [n_out] */
    int32_t *len;        /* [n_out] */
    float *w;            /* [n_out, span] */
    float *wt;           /* [span, n_out] the same weights transposed, 0 beyond len[i]       */
    int32_t *it;         /* [span, n_out] 3 * source index, clamped to a valid pixel         */
} molmo_resize_axis;

/* Computes TF's spans and normalised weights for n_in -> n_out (both >= 1). */
molmo_status molmo_resize_axis_init(molmo_resize_axis *a, int n_in, int n_out, molmo_error *err);
void molmo_resize_axis_free(molmo_resize_axis *a);

typedef struct molmo_resize_plan {
    molmo_resize_axis y, x;
} molmo_resize_plan;

/* Plans a resize of an [in_h, in_w] image to [out_h, out_w]. On failure the plan is empty. */
molmo_status molmo_resize_plan_init(molmo_resize_plan *p, int in_h, int in_w, int out_h,
                                    int out_w, molmo_error *err);
void molmo_resize_plan_free(molmo_resize_plan *p);

/* Number of floats of scratch a caller provides per concurrent call: in_w * 3. */
size_t molmo_resize_scratch_floats(const molmo_resize_plan *p);

/*
 * Computes output rows [y0, y1) of the resize of an 8-bit RGB image.
 *   src     [in_h, in_w, 3] bytes, rows `src_stride` bytes apart; each byte becomes
 *           float(b) * float32(1/255) first, as tf.image.convert_image_dtype does;
 *   dst     [out_h, out_w, 3] floats (rows y0..y1-1 are written), clipped to [0, 1];
 *   scratch molmo_resize_scratch_floats(p) floats, private to this call.
 * Pure function of its inputs: safe to call concurrently on disjoint row ranges.
 */
void molmo_resize_rows_u8(const molmo_resize_plan *p, const uint8_t *src, size_t src_stride,
                          float *dst, int y0, int y1, float *scratch);

#endif

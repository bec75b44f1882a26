/* testutil.h — helpers shared by the tests: data paths, golden tensors, float comparison. */
#ifndef MOLMO_TESTUTIL_H
#define MOLMO_TESTUTIL_H

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three headers above first. */
#include <cmocka.h>

#include "io/safetensors.h"
#include "molmo.h"

/* Absolute path of a file under tests/data (static buffer per call site is not shared: the
 * result is written to out[cap]). */
const char *tu_data_path(char *out, size_t cap, const char *rel);

/* Loads the fixture model tests/data/models/<name> (free with molmo_model_free); fails the test
 * with the loader's message when it cannot. */
molmo_model *tu_load_model(const char *name);

/* Opens tests/data/golden/<model>/<case>.safetensors; fails the test when it cannot. */
void tu_golden_open(molmo_safetensors *st, const char *model, const char *case_name);
/* Returns the named golden tensor; fails the test when it is absent. */
const molmo_st_tensor *tu_golden_tensor(const molmo_safetensors *st, const char *name);

/* Result of comparing two float arrays. */
typedef struct tu_cmp {
    double max_abs;    /* max |a-b| */
    double max_rel;    /* max |a-b| / max(|b|, 1e-6) over elements where |b| > 1e-3 */
    double nmse;       /* sum (a-b)^2 / sum b^2 */
    size_t worst;      /* index of max_abs */
} tu_cmp;
tu_cmp tu_compare_f32(const float *got, const float *want, size_t n);

/* Asserts every |got-want| <= atol + rtol*|want| and prints the figures on failure
 * (and, when MOLMO_TEST_VERBOSE is set, on success too). */
void tu_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what);

/* Reads a golden JSON file tests/data/golden/<model>/<case>.json (jansson json_t*, caller
 * decrefs). Returned as void* to keep jansson out of this header. */
void *tu_golden_json(const char *model, const char *case_name);

/* Every golden case of tests/data/golden (fixtures README §3). */
typedef struct tu_golden_case {
    const char *model, *name;
    int has_image;        /* the case has an image (else text-only) */
    int images_included;  /* its safetensors holds the preprocessed `images` */
} tu_golden_case;
extern const tu_golden_case tu_golden_cases[];
extern const int tu_n_golden_cases;

#endif

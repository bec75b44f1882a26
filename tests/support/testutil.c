/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const tu_golden_case tu_golden_cases[] = {
    {"qwen2", "tiny_50x30", 1, 1},
    {"qwen2", "astronaut_2x2", 1, 1},
    {"qwen2", "wide_1920x1080_12crops", 1, 0},
    {"qwen2", "multiturn_tiny", 1, 0},
    {"olmo", "gray_120x200", 1, 1},
    {"olmo", "chelsea_1x2", 1, 1},
    {"olmo", "hubble_12crops", 1, 0},
    {"olmo", "text_only", 0, 0},
    {"olmoe", "rgba_160x100", 1, 1},
    {"olmoe", "tall_200x900_4x1", 1, 1},
    {"olmoe", "tall_500x1500_12crops", 1, 0},
    {"olmoe", "multiturn_text_only", 0, 0},
    {"qwen2-bf16", "tiny_50x30", 1, 0},
    {"qwen2-bf16", "multiturn_text_only", 0, 0},
};
const int tu_n_golden_cases = (int)(sizeof tu_golden_cases / sizeof tu_golden_cases[0]);

const char *tu_data_path(char *out, size_t cap, const char *rel) {
    snprintf(out, cap, "%s/%s", MOLMO_TEST_DATA, rel);
    return out;
}

molmo_model *tu_load_model(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", MOLMO_TEST_DATA, name);
    molmo_error err = {0};
    molmo_model *m = NULL;
    if (molmo_model_load(path, NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    return m;
}

void tu_golden_open(molmo_safetensors *st, const char *model, const char *case_name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s/%s.safetensors", MOLMO_TEST_DATA, model, case_name);
    molmo_error err = {0};
    if (molmo_st_open(st, path, &err) != MOLMO_OK) fail_msg("%s", err.msg);
}

const molmo_st_tensor *tu_golden_tensor(const molmo_safetensors *st, const char *name) {
    const molmo_st_tensor *t = molmo_st_find(st, name);
    if (!t) fail_msg("golden tensor '%s' missing", name);
    return t;
}

tu_cmp tu_compare_f32(const float *got, const float *want, size_t n) {
    tu_cmp c = {0};
    double se = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i])) d = INFINITY;
        if (d > c.max_abs) {
            c.max_abs = d;
            c.worst = i;
        }
        if (fabs(want[i]) > 1e-3 && d / fabs(want[i]) > c.max_rel) c.max_rel = d / fabs(want[i]);
        se += d * d;
        sw += (double)want[i] * want[i];
    }
    c.nmse = sw > 0 ? se / sw : se;
    return c;
}

void tu_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what) {
    tu_cmp c = tu_compare_f32(got, want, n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) {
            if (!bad) first = i;
            bad++;
        }
    }
    if (bad || getenv("MOLMO_TEST_VERBOSE"))
        print_message("%s: n=%zu max_abs=%.3g max_rel=%.3g nmse=%.3g (atol %.1g rtol %.1g)%s\n",
                      what, n, c.max_abs, c.max_rel, c.nmse, atol, rtol, bad ? " FAIL" : "");
    if (bad)
        fail_msg("%s: %zu of %zu elements out of tolerance; first at %zu: got %.9g want %.9g",
                 what, bad, n, first, (double)got[first], (double)want[first]);
}

void *tu_golden_json(const char *model, const char *case_name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s/%s.json", MOLMO_TEST_DATA, model, case_name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("%s: %s", path, je.text);
    return j;
}

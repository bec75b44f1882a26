/* test_sample.c — greedy, temperature, top-k, top-p and seeds. */
#include <math.h>
#include <string.h>

#include "model/sample.h"
#include "testutil.h"

static void test_greedy_and_ties(void **state) {
    float l[6] = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f, 1.9f};
    assert_int_equal(molmo_argmax(l, 6), 1); /* first of the tied maxima, as torch.argmax */
    molmo_sampler s;
    assert_int_equal(molmo_sampler_init(&s, 6, 0.0f, 0, 1.0f, 1), 0);
    assert_int_equal(molmo_sample(&s, l), 1);
    molmo_sampler_free(&s);
}

static void test_top_k_one_is_greedy(void **state) {
    float l[5] = {0.0f, 3.0f, 1.0f, 2.9f, -4.0f};
    molmo_sampler s;
    assert_int_equal(molmo_sampler_init(&s, 5, 1.5f, 1, 1.0f, 42), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(molmo_sample(&s, l), 1);
    molmo_sampler_free(&s);
}

/* top_p keeps the smallest head of the distribution reaching p: here ids 1 and 3 only. */
static void test_top_p_support(void **state) {
    float l[5] = {-5.0f, 3.0f, -5.0f, 2.9f, -5.0f};
    molmo_sampler s;
    assert_int_equal(molmo_sampler_init(&s, 5, 1.0f, 0, 0.9f, 7), 0);
    int seen[5] = {0};
    for (int i = 0; i < 2000; i++) seen[molmo_sample(&s, l)]++;
    assert_int_equal(seen[0] + seen[2] + seen[4], 0);
    assert_true(seen[1] > 800 && seen[3] > 700); /* ~52% / 48% */
    molmo_sampler_free(&s);
}

/* Frequencies follow softmax(l / T); the same seed gives the same sequence. */
static void test_distribution_and_seed(void **state) {
    float l[3] = {0.0f, 1.0f, 2.0f};
    molmo_sampler a, b;
    assert_int_equal(molmo_sampler_init(&a, 3, 1.0f, 0, 1.0f, 123), 0);
    assert_int_equal(molmo_sampler_init(&b, 3, 1.0f, 0, 1.0f, 123), 0);
    int cnt[3] = {0};
    const int N = 30000;
    for (int i = 0; i < N; i++) {
        int x = molmo_sample(&a, l);
        assert_int_equal(x, molmo_sample(&b, l));
        cnt[x]++;
    }
    double z = 1 + exp(1) + exp(2);
    for (int i = 0; i < 3; i++) assert_true(fabs(cnt[i] / (double)N - exp(i) / z) < 0.015);
    molmo_sampler_free(&a);
    molmo_sampler_free(&b);
}

static void test_logprobs(void **state) {
    float l[4] = {1.0f, 3.0f, 2.0f, 3.0f};
    int ids[3];
    float lps[3];
    double lp = molmo_logprob_topk(l, 4, 2, 3, ids, lps);
    double lse = log(exp(1) + 2 * exp(3) + exp(2));
    assert_true(fabs(lp - (2 - lse)) < 1e-9);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 2);
    assert_true(fabsf(lps[0] - (float)(3 - lse)) < 1e-6f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_and_ties),   cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_p_support),     cmocka_unit_test(test_distribution_and_seed),
        cmocka_unit_test(test_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

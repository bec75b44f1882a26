/* test_generate.c — end to end through the public API: image file + messages -> the engine's own
 * decoding, preprocessing, tokenizer, vision, decoder and greedy loop must give every golden
 * case's generated tokens and text exactly. Also: the image-feature cache, KV-prefix reuse,
 * streaming, stop strings, cancellation, sampling determinism and bad arguments. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "testutil.h"

typedef struct golden_run {
    molmo_model *m;
    molmo_context *ctx;
    molmo_image *img;
    molmo_message msgs[16];
    int n_msgs;
    json_t *j;
} golden_run;

static void open_case(golden_run *r, const char *model, const char *case_name) {
    char p[1024], rel[256];
    molmo_error err = {0};
    memset(r, 0, sizeof *r);
    snprintf(rel, sizeof rel, "models/%s", model);
    if (molmo_model_load(tu_data_path(p, sizeof p, rel), NULL, &r->m, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = 2;
    assert_int_equal(molmo_context_create(r->m, &cp, &r->ctx, &err), MOLMO_OK);
    r->j = tu_golden_json(model, case_name);
    const char *image = json_string_value(json_object_get(r->j, "image"));
    if (image) {
        if (molmo_image_load_file(tu_data_path(p, sizeof p, image), NULL, &r->img, &err) !=
            MOLMO_OK)
            fail_msg("%s", err.msg);
    }
    json_t *msgs = json_object_get(r->j, "messages");
    r->n_msgs = (int)json_array_size(msgs);
    for (int i = 0; i < r->n_msgs; i++) {
        r->msgs[i].role = i % 2 ? "assistant" : "user";
        r->msgs[i].content = json_string_value(json_array_get(msgs, (size_t)i));
    }
}

static void close_case(golden_run *r) {
    molmo_image_free(r->img);
    molmo_context_free(r->ctx);
    molmo_model_free(r->m);
    json_decref(r->j);
}

static molmo_generation *generate(golden_run *r, molmo_generate_params *p) {
    molmo_error err = {0};
    molmo_generation *g = NULL;
    if (molmo_generate(r->ctx, r->img, r->msgs, r->n_msgs, p, &g, &err) != MOLMO_OK)
        fail_msg("%s", err.msg);
    return g;
}

static void check_golden(const char *model, const char *case_name) {
    golden_run r;
    open_case(&r, model, case_name);
    molmo_generate_params p = molmo_generate_default_params();
    p.max_new_tokens = (int)json_integer_value(json_object_get(r.j, "max_new_tokens"));
    molmo_generation *g = generate(&r, &p);
    json_t *ids = json_object_get(r.j, "generated_ids");
    int eos = json_is_true(json_object_get(r.j, "stopped_at_eos"));
    int want_n = (int)json_array_size(ids) - eos;
    assert_int_equal(g->prompt_tokens, json_integer_value(json_object_get(r.j, "prompt_length")));
    if (g->n_tokens != want_n) fail_msg("%s/%s: %d tokens, want %d", model, case_name, g->n_tokens, want_n);
    for (int i = 0; i < want_n; i++)
        if (g->tokens[i] != json_integer_value(json_array_get(ids, (size_t)i)))
            fail_msg("%s/%s: token %d is %d, want %lld", model, case_name, i, g->tokens[i],
                     json_integer_value(json_array_get(ids, (size_t)i)));
    assert_int_equal(g->stop, eos ? MOLMO_STOP_EOS : MOLMO_STOP_LENGTH);
    const char *want_text = json_string_value(json_object_get(r.j, "generated_text"));
    const char *want = want_text[0] == ' ' ? want_text + 1 : want_text;
    if (strcmp(g->text, want) != 0)
        fail_msg("%s/%s: text \"%s\", want \"%s\"", model, case_name, g->text, want);
    if (r.img) {
        json_t *tl = json_object_get(r.j, "tiling");
        assert_int_equal(g->tiling_rows, json_integer_value(json_array_get(tl, 0)));
        assert_int_equal(g->tiling_cols, json_integer_value(json_array_get(tl, 1)));
        assert_int_equal(g->n_crops, json_integer_value(json_object_get(r.j, "n_crops")));
    }
    print_message("%s/%s: %d prompt tokens, %d tokens \"%s\" (image %.0f ms, prefill %.0f ms)\n",
                  model, case_name, g->prompt_tokens, g->n_tokens, g->text, g->image_ms,
                  g->prefill_ms);
    molmo_generation_free(g);
    close_case(&r);
}

static void test_golden_generation(void **state) {
    for (int i = 0; i < tu_n_golden_cases; i++)
        check_golden(tu_golden_cases[i].model, tu_golden_cases[i].name);
}

typedef struct stream {
    char buf[4096];
    size_t n;
    int calls, cancel_after;
} stream;

static int on_token(void *user, int32_t tok, const char *text, size_t len) {
    stream *s = user;
    memcpy(s->buf + s->n, text, len);
    s->n += len;
    s->buf[s->n] = '\0';
    return ++s->calls == s->cancel_after;
}

/* Same image twice: the second call reuses the features (no vision run) and the prompt's KV. */
static void test_caches_and_streaming(void **state) {
    golden_run r;
    open_case(&r, "qwen2", "astronaut_2x2");
    molmo_generate_params p = molmo_generate_default_params();
    p.max_new_tokens = 12;
    stream st = {0};
    p.on_token = on_token;
    p.user = &st;
    molmo_generation *a = generate(&r, &p);
    long crops = r.ctx->n_vision_crops;
    assert_int_equal(crops, 5);
    assert_int_equal(a->image_cached, 0);
    assert_string_equal(st.buf, a->text); /* the stream adds up to the answer */

    r.msgs[0].content = "What is in the picture?";
    molmo_generation *b = generate(&r, &p);
    assert_int_equal(r.ctx->n_vision_crops, crops); /* vision encoder not run again */
    assert_int_equal(b->image_cached, 1);
    assert_true(b->cached_tokens > 500); /* BOS + image block reused from the KV cache */
    assert_int_equal(b->n_prefilled, b->prompt_tokens - b->cached_tokens);

    /* the same question again gives the same answer from the cached prefix */
    r.msgs[0].content = json_string_value(json_array_get(json_object_get(r.j, "messages"), 0));
    molmo_generation *c = generate(&r, &p);
    assert_int_equal(c->n_tokens, a->n_tokens);
    assert_memory_equal(c->tokens, a->tokens, (size_t)a->n_tokens * sizeof(int32_t));
    assert_int_equal(c->cached_tokens, b->cached_tokens); /* shares BOS + image + " User:" */
    molmo_generation *e = generate(&r, &p); /* the very same prompt: all but its last token */
    assert_int_equal(e->cached_tokens, e->prompt_tokens - 1);
    assert_memory_equal(e->tokens, a->tokens, (size_t)a->n_tokens * sizeof(int32_t));
    molmo_generation_free(e);

    /* a different max_crops is a different image encoding */
    p.max_crops = 1;
    molmo_generation *d = generate(&r, &p);
    assert_int_equal(d->image_cached, 0);
    assert_int_equal(d->n_crops, 2);
    molmo_generation_free(a);
    molmo_generation_free(b);
    molmo_generation_free(c);
    molmo_generation_free(d);
    close_case(&r);
}

static void test_stop_cancel_sampling(void **state) {
    golden_run r;
    open_case(&r, "olmoe", "multiturn_text_only");
    molmo_generate_params p = molmo_generate_default_params();
    p.max_new_tokens = 24;
    molmo_generation *full = generate(&r, &p);
    assert_true(full->text_len > 6);
    /* a stop string taken from the middle of the greedy answer */
    char stop[4];
    memcpy(stop, full->text + 4, 3);
    stop[3] = '\0';
    const char *stops[1] = {stop};
    p.stop = stops;
    p.n_stop = 1;
    stream st = {0};
    p.on_token = on_token;
    p.user = &st;
    molmo_generation *cut = generate(&r, &p);
    assert_int_equal(cut->stop, MOLMO_STOP_STRING);
    assert_null(strstr(cut->text, stop));
    assert_int_equal(strncmp(cut->text, full->text, cut->text_len), 0);
    assert_string_equal(st.buf, cut->text); /* nothing of the stop string was streamed */

    stream st2 = {.cancel_after = 2};
    p.n_stop = 0;
    p.user = &st2;
    molmo_generation *cancel = generate(&r, &p);
    assert_int_equal(cancel->stop, MOLMO_STOP_CANCELLED);

    p.on_token = NULL;
    p.temperature = 0.8f;
    p.top_p = 0.9f;
    p.seed = 7;
    p.top_logprobs = 3;
    molmo_generation *s1 = generate(&r, &p), *s2 = generate(&r, &p);
    assert_int_equal(s1->n_tokens, s2->n_tokens);
    assert_memory_equal(s1->tokens, s2->tokens, (size_t)s1->n_tokens * sizeof(int32_t));
    assert_true(s1->chosen[0].logprob <= 0 && s1->top[0].logprob >= s1->top[1].logprob);
    molmo_generation_free(full);
    molmo_generation_free(cut);
    molmo_generation_free(cancel);
    molmo_generation_free(s1);
    molmo_generation_free(s2);
    close_case(&r);
}

static void test_bad_arguments(void **state) {
    golden_run r;
    open_case(&r, "olmo", "text_only");
    molmo_error err = {0};
    molmo_generation *g = NULL;
    molmo_message two[2] = {{"user", "hi"}, {"assistant", "hello"}};
    assert_int_equal(molmo_generate(r.ctx, NULL, two, 2, NULL, &g, &err), MOLMO_ERR_INVALID_ARG);
    molmo_message bad[1] = {{"system", "x"}};
    assert_int_equal(molmo_generate(r.ctx, NULL, bad, 1, NULL, &g, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(g);
    /* a prompt longer than the context */
    molmo_context *small = NULL;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_ctx = 16;
    assert_int_equal(molmo_context_create(r.m, &cp, &small, &err), MOLMO_OK);
    molmo_message one[1] = {{"user", "a long question that needs more than sixteen tokens to say"}};
    assert_int_equal(molmo_generate(small, NULL, one, 1, NULL, &g, &err), MOLMO_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "context"));
    molmo_context_free(small);
    close_case(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_generation),
        cmocka_unit_test(test_caches_and_streaming),
        cmocka_unit_test(test_stop_cancel_sampling),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

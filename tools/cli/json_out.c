/* json_out.c — the JSON object `molmo run --json` (and the verbs built on it) print. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static const char *stop_name(molmo_stop_reason r) {
    switch (r) {
    case MOLMO_STOP_EOS: return "eos";
    case MOLMO_STOP_LENGTH: return "length";
    case MOLMO_STOP_STRING: return "stop";
    default: return "cancelled";
    }
}

/* The text of one token as decoding it alone gives (U+FFFD for part of a character). */
static json_t *token_text(const molmo_model *m, int32_t id) {
    char buf[256];
    size_t n = 0;
    const molmo_tokenizer *tok = molmo_model_tokenizer(m);
    if (!tok || molmo_tokenizer_decode(tok, &id, 1, MOLMO_DECODE_NO_CLEANUP, buf, sizeof buf, &n,
                                       NULL) != MOLMO_OK)
        n = 0;
    return json_stringn_nocheck(buf, n);
}

static json_t *top_logprobs(const molmo_model *m, const molmo_generation *g) {
    json_t *all = json_array();
    for (int t = 0; t < g->n_tokens; t++) {
        json_t *row = json_array();
        for (int k = 0; k < g->top_logprobs; k++) {
            const molmo_token_logprob *e = &g->top[(size_t)t * g->top_logprobs + k];
            json_array_append_new(row, json_pack("{s:i,s:o,s:f}", "id", e->id, "token",
                                                 token_text(m, e->id), "logprob",
                                                 (double)e->logprob));
        }
        json_array_append_new(all, row);
    }
    return all;
}

static json_t *cli_generation_json(const molmo_model *m, const molmo_generation *g,
                                   double load_ms) {
    json_t *tokens = json_array();
    for (int i = 0; i < g->n_tokens; i++) json_array_append_new(tokens, json_integer(g->tokens[i]));
    json_t *image = json_null();
    if (g->has_image)
        image = json_pack("{s:i,s:i,s:[i,i],s:i,s:b}", "width", g->image_width, "height",
                          g->image_height, "tiling", g->tiling_rows, g->tiling_cols, "crops",
                          g->n_crops, "cached", g->image_cached);
    double pre_s = g->prefill_ms / 1e3, dec_s = g->decode_ms / 1e3;
    json_t *timings = json_pack(
        "{s:f,s:f,s:f,s:f,s:f,s:f}", "load_ms", load_ms, "image_ms", g->image_ms, "prefill_ms",
        g->prefill_ms, "decode_ms", g->decode_ms, "prefill_tok_s",
        pre_s > 0 ? g->n_prefilled / pre_s : 0.0, "decode_tok_s",
        dec_s > 0 ? (g->n_tokens > 1 ? g->n_tokens - 1 : 0) / dec_s : 0.0);
    json_t *o = json_pack("{s:s%,s:o,s:s,s:i,s:i,s:o,s:o}", "text", g->text, g->text_len,
                          "tokens", tokens, "stop", stop_name(g->stop), "prompt_tokens",
                          g->prompt_tokens, "cached_tokens", g->cached_tokens, "image", image,
                          "timings", timings);
    if (o && g->top_logprobs > 0) json_object_set_new(o, "top_logprobs", top_logprobs(m, g));
    return o;
}

void cli_print_generation_json(const molmo_model *m, const molmo_generation *g, double load_ms) {
    json_t *o = cli_generation_json(m, g, load_ms);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s) puts(s);
    else fputs("{\"error\":\"out of memory\"}\n", stdout);
    free(s);
    json_decref(o);
}

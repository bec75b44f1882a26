/* cmd_run.c — `molmo run`: ask a question (about an image), print the answer as it is made. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo run -m MODEL [-i IMAGE] (-p PROMPT | --messages FILE) [options]\n"
            "\n"
            "Answers PROMPT (about IMAGE when given), printing the answer as it is generated.\n"
            "\n"
            "  -m, --model MODEL       checkpoint directory or Hugging Face repo id\n"
            "  -i, --image FILE        JPEG, PNG or WebP image (EXIF orientation applied)\n"
            "  -p, --prompt TEXT       the question\n"
            "      --messages FILE     JSON array of {\"role\",\"content\"} turns (user, assistant,\n"
            "                          ..., user), OpenAI style; the image goes with the first turn\n"
            "  -n, --max-tokens N      at most N new tokens (default 200)\n"
            "      --temperature T     0 = greedy, the model card's decoding (default 0)\n"
            "      --top-k K           sample from the K most likely tokens (default: all)\n"
            "      --top-p P           nucleus sampling (default 1 = off)\n"
            "      --seed S            sampling seed (default 0)\n"
            "      --stop TEXT         stop before TEXT (repeatable)\n"
            "      --max-crops N       high-res crops per image, 1..64 (default: the model's 12)\n"
            "      --threads N         threads (default: physical cores)\n"
            "      --ctx N             context length (default: the model's maximum)\n"
            "      --top-logprobs K    record the K best alternatives per token (0..20; --json)\n"
            "      --json              print one JSON object instead of streaming text:\n"
            "                          text, tokens, stop, prompt_tokens, image, top_logprobs,\n"
            "                          timings\n"
            "  -h, --help              this help\n");
}

typedef struct run_opts {
    const char *model, *image, *prompt, *messages;
    int json, threads, n_ctx;
    const char *stops[16];
    molmo_generate_params gp;
} run_opts;

static int parse_float(const char *opt, const char *s, float lo, float hi, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "molmo: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_args(int argc, char **argv, run_opts *o) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"image", required_argument, 0, 'i'},
        {"prompt", required_argument, 0, 'p'},    {"messages", required_argument, 0, 'M'},
        {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 'T'},
        {"top-k", required_argument, 0, 'K'},     {"top-p", required_argument, 0, 'P'},
        {"seed", required_argument, 0, 'S'},      {"stop", required_argument, 0, 's'},
        {"max-crops", required_argument, 0, 'C'}, {"threads", required_argument, 0, 't'},
        {"ctx", required_argument, 0, 'c'},       {"top-logprobs", required_argument, 0, 'L'},
        {"json", no_argument, 0, 'j'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->image = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'M': o->messages = optarg; break;
        case 'j': o->json = 1; break;
        case 'n': if (!cli_parse_int("--max-tokens", optarg, 0, 1 << 20, &v)) return 2;
                  o->gp.max_new_tokens = (int)v; break;
        case 'T': if (!parse_float("--temperature", optarg, 0, 100, &o->gp.temperature)) return 2;
                  break;
        case 'K': if (!cli_parse_int("--top-k", optarg, 0, 1 << 24, &v)) return 2;
                  o->gp.top_k = (int)v; break;
        case 'P': if (!parse_float("--top-p", optarg, 0, 1, &o->gp.top_p)) return 2; break;
        case 'S': if (!cli_parse_int("--seed", optarg, 0, 0x7fffffffL, &v)) return 2;
                  o->gp.seed = (uint64_t)v; break;
        case 's': if (o->gp.n_stop == 16) return fprintf(stderr, "molmo: at most 16 --stop\n"), 2;
                  o->stops[o->gp.n_stop++] = optarg; break;
        case 'C': if (!cli_parse_int("--max-crops", optarg, 1, 64, &v)) return 2;
                  o->gp.max_crops = (int)v; break;
        case 't': if (!cli_parse_int("--threads", optarg, 1, 1024, &v)) return 2;
                  o->threads = (int)v; break;
        case 'c': if (!cli_parse_int("--ctx", optarg, 16, 1 << 22, &v)) return 2;
                  o->n_ctx = (int)v; break;
        case 'L': if (!cli_parse_int("--top-logprobs", optarg, 0, 20, &v)) return 2;
                  o->gp.top_logprobs = (int)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    o->gp.stop = o->stops;
    if (optind != argc || !o->model || (!o->prompt == !o->messages)) {
        fprintf(stderr, "molmo run: need -m MODEL and exactly one of -p PROMPT / --messages "
                        "FILE (see molmo run --help)\n");
        return 2;
    }
    return -1;
}

/* --messages FILE: [{"role": "user", "content": "..."}, ...]; strings stay owned by *root. */
static int load_messages(const char *path, json_t **root, molmo_message **msgs, int *n) {
    json_error_t je;
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!*root) {
        fprintf(stderr, "molmo: %s:%d:%d: %s\n", path, je.line, je.column, je.text);
        return 0;
    }
    if (!json_is_array(*root) || json_array_size(*root) == 0 || json_array_size(*root) > 64) {
        fprintf(stderr, "molmo: %s: expected a JSON array of 1 to 64 messages\n", path);
        return 0;
    }
    *n = (int)json_array_size(*root);
    *msgs = calloc((size_t)*n, sizeof **msgs);
    for (int i = 0; *msgs && i < *n; i++) {
        json_t *m = json_array_get(*root, (size_t)i);
        (*msgs)[i].role = json_string_value(json_object_get(m, "role"));
        (*msgs)[i].content = json_string_value(json_object_get(m, "content"));
        if (!(*msgs)[i].role || !(*msgs)[i].content) {
            fprintf(stderr, "molmo: %s: message %d needs string \"role\" and \"content\"\n", path,
                    i);
            return 0;
        }
    }
    return *msgs != NULL;
}

static int print_piece(void *user, int32_t token, const char *text, size_t len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    memset(&o, 0, sizeof o);
    o.gp = molmo_generate_default_params();
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    molmo_error err = {0};
    molmo_model *model = NULL;
    molmo_context *ctx = NULL;
    molmo_image *img = NULL;
    molmo_generation *g = NULL;
    json_t *mroot = NULL;
    molmo_message one = {"user", o.prompt}, *msgs = &one;
    int n_msgs = 1;
    rc = 1;
    if (o.messages && !load_messages(o.messages, &mroot, &msgs, &n_msgs)) goto done;
    double t0 = now_ms();
    molmo_model_params mp = molmo_model_default_params();
    if (molmo_model_load(o.model, &mp, &model, &err) != MOLMO_OK) goto fail;
    double load_ms = now_ms() - t0;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = o.threads;
    cp.n_ctx = o.n_ctx;
    if (molmo_context_create(model, &cp, &ctx, &err) != MOLMO_OK) goto fail;
    if (o.image && molmo_image_load_file(o.image, NULL, &img, &err) != MOLMO_OK) goto fail;
    if (!o.json) o.gp.on_token = print_piece;
    if (molmo_generate(ctx, img, msgs, n_msgs, &o.gp, &g, &err) != MOLMO_OK) goto fail;
    if (o.json)
        cli_print_generation_json(model, g, load_ms);
    else
        putchar('\n');
    rc = 0;
    goto done;
fail:
    rc = cli_fail(&err, NULL);
done:
    molmo_generation_free(g);
    molmo_image_free(img);
    molmo_context_free(ctx);
    molmo_model_free(model);
    if (msgs != &one) free(msgs);
    json_decref(mroot);
    return rc;
}

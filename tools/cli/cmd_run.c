/* cmd_run.c — `molmo run`: ask a question (about an image), print the answer as it is made. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

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
            CLI_GEN_HELP
            "      --top-logprobs K    record the K best alternatives per token (0..20; --json)\n"
            "      --json              print one JSON object instead of streaming text:\n"
            "                          text, tokens, stop, prompt_tokens, image, top_logprobs,\n"
            "                          timings\n"
            "  -h, --help              this help\n");
}

typedef struct run_opts {
    const char *prompt, *messages;
    int json;
    cli_gen_opts g;              /* model, image, sampling, threads, ... (session.h) */
} run_opts;

static int parse_args(int argc, char **argv, run_opts *o) {
    static const struct option opts[] = {
        CLI_GEN_LONG_OPTIONS,
        {"prompt", required_argument, 0, 'p'},    {"messages", required_argument, 0, 'M'},
        {"json", no_argument, 0, 'j'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': o->prompt = optarg; break;
        case 'M': o->messages = optarg; break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            if ((r = cli_gen_option(&o->g, c, optarg)) < 0) return 2;
            if (r == 0) return usage(stderr), 2;
        }
    }
    if (optind != argc || !o->g.model || (!o->prompt == !o->messages)) {
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

int cmd_run(int argc, char **argv) {
    run_opts o;
    memset(&o, 0, sizeof o);
    cli_gen_opts_init(&o.g);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    molmo_error err = {0};
    cli_session s = {0};
    molmo_generation *g = NULL;
    json_t *mroot = NULL;
    molmo_message one = {"user", o.prompt}, *msgs = &one;
    int n_msgs = 1;
    rc = 1;
    if (o.messages && !load_messages(o.messages, &mroot, &msgs, &n_msgs)) goto done;
    if ((rc = cli_session_pull(&o.g)) != 0) goto done;
    rc = 1;
    if (cli_session_open(&s, &o.g, &err) != MOLMO_OK) goto fail;
    if (!o.json) o.g.gp.on_token = print_piece;
    if (molmo_generate(s.ctx, s.image, msgs, n_msgs, &o.g.gp, &g, &err) != MOLMO_OK) goto fail;
    if (o.json)
        cli_print_generation_json(s.model, g, s.load_ms);
    else
        putchar('\n');
    rc = 0;
    goto done;
fail:
    rc = cli_fail(&err, NULL);
done:
    molmo_generation_free(g);
    cli_session_close(&s);
    if (msgs != &one) free(msgs);
    json_decref(mroot);
    return rc;
}

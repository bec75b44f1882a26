/* cmd_point.c — `molmo point`, `molmo count` and `molmo caption`: the prompts Molmo was
 * trained with for its demo tasks (olmo/data/data_formatter.py GENERAL_PROMPTS_V1: the
 * "pointing", "point_count" and "long_caption" styles; fact sheet §7.2), the answer parsed
 * into points as it streams (molmo_points_parser) and, with --draw, an annotated image. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "points_out.h"
#include "session.h"

/* The templates: the first (and plainest) of each style's training prompts. */
#define POINT_TEMPLATE "Point to %s"
#define COUNT_TEMPLATE "How many %s are there?"
#define CAPTION_PROMPT "Describe this image."

/* Pointing answers are long (a <points> tag spends ~14 tokens per point) and captions are
 * paragraphs: the official evaluator's default of 448 new tokens fits both. */
#define VERB_MAX_TOKENS 448

typedef enum verb { VERB_POINT, VERB_COUNT, VERB_CAPTION } verb;

static const char *const verb_name[] = {"point", "count", "caption"};

static void usage(FILE *f, verb v) {
    if (v == VERB_POINT)
        fprintf(f, "usage: molmo point -m MODEL -i IMAGE (WHAT | -p PROMPT) [options]\n\n"
                   "Asks the model to point at WHAT with the prompt \"" POINT_TEMPLATE "\"\n"
                   "(the pointing prompt Molmo was trained with) and prints one line per point\n"
                   "as it arrives: pixel coordinates in IMAGE as you see it (EXIF orientation\n"
                   "applied), percentages and label.\n\n", "WHAT");
    else if (v == VERB_COUNT)
        fprintf(f, "usage: molmo count -m MODEL -i IMAGE (WHAT | -p PROMPT) [options]\n\n"
                   "Asks \"" COUNT_TEMPLATE "\" (Molmo's counting prompt; the model counts by\n"
                   "pointing) and reports the count the model states with the points it used,\n"
                   "saying so when the two disagree.\n\n", "WHAT");
    else
        fprintf(f, "usage: molmo caption -m MODEL -i IMAGE [-p PROMPT] [options]\n\n"
                   "Asks for a long caption with \"" CAPTION_PROMPT "\" (Molmo's long_caption\n"
                   "style) and prints it as it is generated.\n\n");
    fprintf(f, "  -m, --model MODEL       checkpoint directory or Hugging Face repo id\n"
               "  -i, --image FILE        JPEG, PNG or WebP image\n"
               "  -p, --prompt TEXT       use TEXT instead of the template\n"
               "      --json              print one JSON object at the end instead of lines\n%s"
               "%s  (-n defaults to %d here)\n  -h, --help              this help\n",
            v == VERB_CAPTION ? "" : CLI_DRAW_HELP, CLI_GEN_HELP, VERB_MAX_TOKENS);
}

typedef struct verb_opts {
    verb v;
    const char *what, *prompt;
    int json;
    cli_gen_opts g;
    cli_draw_opts draw;
} verb_opts;

static int parse_args(int argc, char **argv, verb_opts *o) {
    static const struct option opts[] = {CLI_GEN_LONG_OPTIONS, CLI_DRAW_LONG_OPTIONS,
                                         {"prompt", required_argument, 0, 'p'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:p:n:h", opts, NULL)) != -1) {
        if (c == 'p') o->prompt = optarg;
        else if (c == 'j') o->json = 1;
        else if (c == 'h') return usage(stdout, o->v), 0;
        else if ((r = cli_gen_option(&o->g, c, optarg)) < 0) return 2;
        else if (r == 0 && o->v != VERB_CAPTION && (r = cli_draw_option(&o->draw, c, optarg)) < 0)
            return 2;
        else if (r == 0) return usage(stderr, o->v), 2;
    }
    if (optind < argc) o->what = argv[optind++];
    int need_what = o->v != VERB_CAPTION && !o->prompt;
    if (optind != argc || !o->g.model || !o->g.image || (need_what && !o->what) ||
        (o->v == VERB_CAPTION && o->what) || (o->what && !*o->what)) {
        fprintf(stderr, "molmo %s: need -m MODEL, -i IMAGE and %s (see molmo %s --help)\n",
                verb_name[o->v], o->v == VERB_CAPTION ? "no other argument" : "WHAT or -p PROMPT",
                verb_name[o->v]);
        return 2;
    }
    return -1;
}

/* The prompt: -p as given, else the verb's template around WHAT (malloc'd). */
static char *make_prompt(const verb_opts *o) {
    const char *fmt = o->v == VERB_POINT ? POINT_TEMPLATE : COUNT_TEMPLATE;
    if (o->prompt || o->v == VERB_CAPTION) return strdup(o->prompt ? o->prompt : CAPTION_PROMPT);
    size_t n = strlen(fmt) + strlen(o->what) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, o->what);
    return s;
}

/* Streaming: text mode prints each point the moment its tag closes (captions stream text). */
typedef struct stream_state {
    molmo_points_parser *parser;
    int printed, live;
    molmo_status st;
    molmo_error err;
} stream_state;

static int on_piece(void *user, int32_t token, const char *text, size_t len) {
    stream_state *s = user;
    if (!s->parser) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        return 0;
    }
    const molmo_point *np;
    int n;
    s->st = molmo_points_parser_feed(s->parser, text, len, &np, &n, &s->err);
    for (int i = 0; s->live && i < n; i++) cli_print_point_line(stdout, ++s->printed, &np[i]);
    if (s->live && n) fflush(stdout);
    return s->st != MOLMO_OK;
}

/* The lines after the points in text mode. */
static void print_summary(const verb_opts *o, const molmo_points *pts, const char *text) {
    if (pts->n_points == 0) printf("no points in the answer: %s\n", text);
    else printf("%d point%s\n", pts->n_points, pts->n_points == 1 ? "" : "s");
    if (pts->n_rejected)
        printf("rejected: %d value%s (first: %s)\n", pts->n_rejected,
               pts->n_rejected == 1 ? "" : "s", molmo_point_reject_name(pts->rejected[0].reason));
    if (o->v != VERB_COUNT) return;
    if (pts->count < 0)
        printf("count: %d (from the points; the model states no count)\n", pts->n_points);
    else if (pts->count == pts->n_points)
        printf("count: %d\n", pts->count);
    else
        printf("count: %d (the model says %d but points at %d)\n", pts->count, pts->count,
               pts->n_points);
}

/* JSON: the points object plus the prompt and the generation's own fields. */
static void print_json(const molmo_generation *g, const molmo_points *pts, const char *prompt) {
    static const char *const stops[] = {"eos", "length", "stop", "cancelled"};
    json_t *j = cli_points_json(pts, g->text, g->text_len);
    if (j) {
        json_object_set_new(j, "prompt", json_string(prompt));
        json_object_set_new(j, "n_tokens", json_integer(g->n_tokens));
        json_object_set_new(j, "stop", json_string(stops[(unsigned)g->stop & 3]));
    }
    cli_print_json(j);
}

static int run_verb(verb v, int argc, char **argv) {
    verb_opts o;
    memset(&o, 0, sizeof o);
    o.v = v;
    cli_gen_opts_init(&o.g);
    o.g.gp.max_new_tokens = VERB_MAX_TOKENS;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    molmo_error err = {0};
    cli_session s = {0};
    molmo_generation *g = NULL;
    molmo_points *pts = NULL;
    stream_state ss = {0};
    char *prompt = make_prompt(&o);
    rc = 1;
    if (!prompt) return cli_fail(NULL, "out of memory");
    if ((rc = cli_session_pull(&o.g)) != 0) goto done;
    rc = 1;
    if (cli_session_open(&s, &o.g, &err) != MOLMO_OK) goto fail;
    if (v != VERB_CAPTION &&
        molmo_points_parser_create(molmo_image_width(s.image), molmo_image_height(s.image),
                                   &ss.parser, &err) != MOLMO_OK)
        goto fail;
    ss.live = !o.json;
    if (!o.json || ss.parser) {
        o.g.gp.on_token = on_piece;
        o.g.gp.user = &ss;
    }
    molmo_message msg = {"user", prompt};
    if (molmo_generate(s.ctx, s.image, &msg, 1, &o.g.gp, &g, &err) != MOLMO_OK) goto fail;
    if (ss.st != MOLMO_OK) {
        err = ss.err;
        goto fail;
    }
    if (v == VERB_CAPTION) {
        if (o.json) cli_print_generation_json(s.model, g, s.load_ms);
        else putchar('\n');
        rc = 0;
        goto done;
    }
    const molmo_point *np;
    int n;
    if (molmo_points_parser_finish(ss.parser, &np, &n, &pts, &err) != MOLMO_OK) goto fail;
    for (int i = 0; ss.live && i < n; i++) cli_print_point_line(stdout, ++ss.printed, &np[i]);
    if (o.draw.out && cli_draw_points(s.image, pts, &o.draw)) goto done;
    if (o.json) {
        /* the JSON's offsets refer to "text": parse exactly that */
        molmo_points_free(pts);
        pts = NULL;
        if (molmo_points_parse(g->text, g->text_len, molmo_image_width(s.image),
                               molmo_image_height(s.image), &pts, &err) != MOLMO_OK)
            goto fail;
        print_json(g, pts, prompt);
    } else {
        print_summary(&o, pts, g->text);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail(&err, NULL);
done:
    molmo_points_free(pts);
    molmo_points_parser_free(ss.parser);
    molmo_generation_free(g);
    cli_session_close(&s);
    free(prompt);
    return rc;
}

int cmd_point(int argc, char **argv) { return run_verb(VERB_POINT, argc, argv); }
int cmd_count(int argc, char **argv) { return run_verb(VERB_COUNT, argc, argv); }
int cmd_caption(int argc, char **argv) { return run_verb(VERB_CAPTION, argc, argv); }

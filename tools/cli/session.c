/* session.c — the generation options and the model/context/image set-up shared by
 * `molmo run`, `point`, `count` and `caption` (session.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "session.h"

void cli_gen_opts_init(cli_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->gp = molmo_generate_default_params();
    o->gp.stop = o->stops;
}

int cli_parse_float(const char *opt, const char *s, float lo, float hi, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "molmo: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_gen_option(cli_gen_opts *o, int c, const char *arg) {
    long v;
    switch (c) {
    case 'm': o->model = arg; return 1;
    case 'i': o->image = arg; return 1;
    case 'n': if (!cli_parse_int("--max-tokens", arg, 0, 1 << 20, &v)) return -1;
              o->gp.max_new_tokens = (int)v; return 1;
    case 'T': return cli_parse_float("--temperature", arg, 0, 100, &o->gp.temperature) ? 1 : -1;
    case 'K': if (!cli_parse_int("--top-k", arg, 0, 1 << 24, &v)) return -1;
              o->gp.top_k = (int)v; return 1;
    case 'P': return cli_parse_float("--top-p", arg, 0, 1, &o->gp.top_p) ? 1 : -1;
    case 'S': if (!cli_parse_int("--seed", arg, 0, 0x7fffffffL, &v)) return -1;
              o->gp.seed = (uint64_t)v; return 1;
    case 's': if (o->gp.n_stop == 16) return fprintf(stderr, "molmo: at most 16 --stop\n"), -1;
              o->stops[o->gp.n_stop++] = arg; return 1;
    case 'C': if (!cli_parse_int("--max-crops", arg, 1, 64, &v)) return -1;
              o->gp.max_crops = (int)v; return 1;
    case 't': if (!cli_parse_int("--threads", arg, 1, 1024, &v)) return -1;
              o->threads = (int)v; return 1;
    case 'c': if (!cli_parse_int("--ctx", arg, 16, 1 << 22, &v)) return -1;
              o->n_ctx = (int)v; return 1;
    case 'L': if (!cli_parse_int("--top-logprobs", arg, 0, 20, &v)) return -1;
              o->gp.top_logprobs = (int)v; return 1;
    case 'U': o->pull = 1; return 1;
    case 'k': return cli_parse_kv_type(arg, &o->kv_type) ? 1 : -1;
    case 'A': o->bf16_act = 1; return 1;
    case CLI_OPT_NO_MMAP: o->no_mmap = 1; return 1;
    case CLI_OPT_NO_REPACK: o->no_repack = 1; return 1;
    default: return 0;
    }
}

int cli_parse_kv_type(const char *s, molmo_dtype *out) {
    if (!strcmp(s, "f32") || !strcmp(s, "f16")) {
        *out = !strcmp(s, "f16") ? MOLMO_DTYPE_F16 : MOLMO_DTYPE_F32;
        return 1;
    }
    fprintf(stderr, "molmo: --kv-type expects f32 or f16, got '%s'\n", s);
    return 0;
}

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int cli_session_pull(const cli_gen_opts *o) {
    return o->pull ? cli_pull_if_missing(o->model) : 0;
}

int cli_gguf_path(const char *model, const char *type, char *out, size_t cap) {
    const char *slash = strchr(model, '/');
    if (!slash || strchr(slash + 1, '/') || model[0] == '.' || model[0] == '/') return -1;
    struct stat st;
    if (stat(model, &st) == 0) return -1; /* a local path, not a repo id */
    char dir[2048];
    const char *v;
    if ((v = getenv("MOLMO_GGUF_DIR")) && *v) snprintf(dir, sizeof dir, "%s", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v) snprintf(dir, sizeof dir, "%s/molmo", v);
    else if ((v = getenv("HOME")) && *v) snprintf(dir, sizeof dir, "%s/.cache/molmo", v);
    else return -1;
    int n = snprintf(out, cap, "%s/%.*s_%s.%s.gguf", dir, (int)(slash - model), model, slash + 1,
                     type);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

const char *cli_prefer_gguf(const char *model, char *buf, size_t cap) {
    static const char *const types[] = {"bf16", "q8_0", "f16", "q4_0", "f32"};
    struct stat st;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (cli_gguf_path(model, types[i], buf, cap) == 0 && stat(buf, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            fprintf(stderr, "molmo: using the converted %s for %s\n", buf, model);
            return buf;
        }
    return model;
}

molmo_status cli_session_open(cli_session *s, const cli_gen_opts *o, molmo_error *err) {
    memset(s, 0, sizeof *s);
    /* the image first: a wrong path should not wait for a model to load */
    molmo_status st = MOLMO_OK;
    if (o->image) st = molmo_image_load_file(o->image, NULL, &s->image, err);
    double t0 = cli_now_ms();
    molmo_model_params mp = molmo_model_default_params();
    mp.no_mmap = o->no_mmap;
    mp.no_repack = o->no_repack;
    char gguf[4096];
    const char *model = cli_prefer_gguf(o->model, gguf, sizeof gguf);
    if (st == MOLMO_OK) st = molmo_model_load(model, &mp, &s->model, err);
    s->load_ms = cli_now_ms() - t0;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = o->threads;
    cp.n_ctx = o->n_ctx;
    cp.kv_type = o->kv_type;
    cp.bf16_activations = o->bf16_act;
    if (st == MOLMO_OK) st = molmo_context_create(s->model, &cp, &s->ctx, err);
    if (st != MOLMO_OK) cli_session_close(s);
    return st;
}

void cli_session_close(cli_session *s) {
    molmo_image_free(s->image);
    molmo_context_free(s->ctx);
    molmo_model_free(s->model);
    memset(s, 0, sizeof *s);
}

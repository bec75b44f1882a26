/* cmd_bench.c — `molmo bench`: this machine's baselines and molmo.c's speed on the real shapes
 * of a released model (weights generated locally, kept in --dir and reused), with every figure
 * set against a baseline measured in the same run and threads, and the targets of issue #8
 * beside it. Stages: machine (read bandwidth, FMA / VNNI / BF16 peaks), vision (per crop),
 * prefill (the image prompt), decode (per token), e2e (load + image + prompt + N tokens). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_report.h"
#include "session.h"

enum { ST_MACHINE = 1, ST_VISION = 2, ST_PREFILL = 4, ST_DECODE = 8, ST_E2E = 16, ST_ALL = 31 };
static const char *const stage_names[] = {"machine", "vision", "prefill", "decode", "e2e"};

typedef struct bench_opts {
    const char *model;
    int is_preset, type_set;
    molmo_bench_model_params mp;
    int threads[BENCH_MAX_THREADS], n_threads;
    unsigned stages;
    int tokens, crops, width, height, reps, json, quiet;
    molmo_dtype kv_type;         /* --kv-type: the contexts' KV cache */
    int bf16_act;                /* --bf16-activations */
    int no_mmap;                 /* --no-mmap: the weights read into the process's memory */
    int no_repack;               /* --no-repack: the file's layout kept there */
    long read_mib;
    char dir[4096];
    const char *prompt;
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo bench [--model NAME|MODEL] [--type T] [--vision-type T]\n"
            "                   [--threads N[,N...]] [--stages LIST] [--tokens N] [--crops N]\n"
            "                   [--image WxH] [--reps N] [--dir DIR] [--weights random|zeros]\n"
            "                   [--kv-type f32|f16] [--bf16-activations] [--no-mmap]\n"
            "                   [--no-repack] [--read-mib N]\n"
            "                   [--json] [-q]\n"
            "\n"
            "Measures this machine (memory read bandwidth; f32 FMA, int8 VNNI and bf16 peaks)\n"
            "and molmo.c on the full-size shapes of a released model, with weights generated\n"
            "locally (no download), and sets each figure against the baseline of the same run\n"
            "and threads, with the targets of issue #8 and pass/miss beside them. Each row\n"
            "also gives the stage's peak resident memory (mapped weights included) and its\n"
            "private memory; the header names the build (git commit, compiler). The read\n"
            "bandwidth of the weights comes with the share of them mapped with 2 MiB pages\n"
            "(a file cached in small pages maps with 4 KiB ones: a line under the table says\n"
            "how to read it back in huge pages).\n"
            "\n"
            "  -m, --model NAME|MODEL  molmoe-1b (default), molmo-7b-o, molmo-7b-d, molmo-72b:\n"
            "                          generated in --dir on first use (random weights: ~40 s\n"
            "                          and 14 GB for molmoe-1b, then its GGUF), reused later;\n"
            "                          or a model directory / GGUF file, used as it is\n"
            "  -t, --type T            language model weights, as `molmo convert` writes them\n"
            "                          (default q8_0; bf16: the generated checkpoint itself)\n"
            "      --vision-type T     vision tower (default: convert's for T)\n"
            "      --threads N[,N...]  thread counts to run, e.g. 1,2 (default: physical cores)\n"
            "      --stages LIST       machine,vision,prefill,decode,e2e (default: all)\n"
            "  -n, --tokens N          new tokens for decode and e2e (default 64)\n"
            "      --crops N           max crops of the image, 1..64 (default: the model's 12;\n"
            "                          a 640x480 image gives 7 crops, ~740 image tokens)\n"
            "      --image WxH         size of the synthetic test image (default 640x480)\n"
            "      --reps N            repetitions per figure (default 3)\n"
            "      --dir DIR           where generated models live (default\n"
            "                          $XDG_CACHE_HOME/molmo/bench or ~/.cache/molmo/bench)\n"
            "      --weights W         random (default: MoE routing spreads like a trained\n"
            "                          model's) or zeros (a sparse file: no disk, no wait)\n"
            "      --kv-type T         KV cache f32 (default) or f16; decode's traffic counts\n"
            "                          the weights it reads and the cache at its positions\n"
            "      --bf16-activations  bf16 inputs for the bf16-weight matmuls and attention, and\n"
            "                          quantized GEMMs on bf16 tiles on AMX-BF16 CPUs (molmo\n"
            "                          run's option)\n"
            "      --no-mmap           the weights read into the process's memory, not mapped\n"
            "                          (molmo run's option; the load and e2e times include\n"
            "                          the read; e2e loads a second copy beside the bench's\n"
            "                          own, so it needs twice the model's size in RAM); q8_0\n"
            "                          and q4_0 matrices interleaved by 16 rows there\n"
            "      --no-repack         with --no-mmap: the file's layout kept\n"
            "      --read-mib N        buffer of the bandwidth loop in MiB (default 1024; huge\n"
            "                          pages), and as much of the weights file, in 16 pieces\n"
            "                          spread over it\n"
            "      --json              one JSON object instead of the markdown table\n"
            "  -q, --quiet             no progress on stderr\n"
            "  -h, --help              this help\n"
            "\n"
            "Targets (issue #8), judged at all physical cores: MolmoE-1B q8_0 decode >= 33\n"
            "tok/s, prefill >= 150 tok/s, e2e <= 12 s; Molmo-7B-D q8_0 decode >= 5.4 tok/s\n"
            "(q4_0 >= 10), prefill >= 35 tok/s; ViT per crop <= 0.6 s bf16, <= 0.4 s int8.\n");
}

/* ------------------------------------------------------------------------------ options */

/* Any weight type by name (molmo convert says which it can write). */
static int parse_type(const char *opt, const char *s, molmo_dtype *out) {
    char names[160] = "";
    for (int d = 0; d < MOLMO_DTYPE_COUNT; d++) {
        if (d == MOLMO_DTYPE_I32) continue;
        if (!strcmp(s, molmo_dtype_name((molmo_dtype)d))) return *out = (molmo_dtype)d, 1;
        const size_t n = strlen(names);
        snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "",
                 molmo_dtype_name((molmo_dtype)d));
    }
    fprintf(stderr, "molmo: %s expects one of %s; got '%s'\n", opt, names, s);
    return 0;
}

static int parse_threads(const char *s, bench_opts *o) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    o->n_threads = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long v;
        if (o->n_threads == BENCH_MAX_THREADS) {
            fprintf(stderr, "molmo: --threads lists at most %d counts\n", BENCH_MAX_THREADS);
            return 0;
        }
        if (!cli_parse_int("--threads", t, 1, 1024, &v)) return 0;
        o->threads[o->n_threads++] = (int)v;
    }
    if (o->n_threads == 0) fprintf(stderr, "molmo: --threads expects N or N,N,...\n");
    return o->n_threads > 0;
}

static int parse_stages(const char *s, unsigned *out) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *out = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned bit = !strcmp(t, "all") ? ST_ALL : 0;
        for (int i = 0; i < 5 && !bit; i++)
            if (!strcmp(t, stage_names[i])) bit = 1u << i;
        if (!bit) {
            fprintf(stderr, "molmo: unknown stage '%s' (machine, vision, prefill, decode, e2e, "
                    "all)\n", t);
            return 0;
        }
        *out |= bit;
    }
    if (!*out) fprintf(stderr, "molmo: --stages expects a list such as machine,decode\n");
    return *out != 0;
}

static int parse_size(const char *s, int *w, int *h) {
    char *end;
    long a = strtol(s, &end, 10), b = *end == 'x' ? strtol(end + 1, &end, 10) : 0;
    if (*end || a < 1 || b < 1 || a > 10000 || b > 10000) {
        fprintf(stderr, "molmo: --image expects WxH (1..10000 each), got '%s'\n", s);
        return 0;
    }
    *w = (int)a;
    *h = (int)b;
    return 1;
}

static int is_preset(const char *s) {
    for (int i = 0; molmo_bench_preset(i, NULL); i++)
        if (!strcmp(s, molmo_bench_preset(i, NULL))) return 1;
    return 0;
}

static void default_dir(char *out, size_t cap) {
    const char *v;
    if ((v = getenv("XDG_CACHE_HOME")) && *v) snprintf(out, cap, "%s/molmo/bench", v);
    else if ((v = getenv("HOME")) && *v) snprintf(out, cap, "%s/.cache/molmo/bench", v);
    else snprintf(out, cap, "molmo-bench");
}

/* Handles one option; returns 1, or 0 after printing why the value is bad. */
static int take_option(bench_opts *o, int c, const char *arg) {
    long v;
    switch (c) {
    case 'm': o->model = arg; return 1;
    case 't': o->type_set = 1; return parse_type("--type", arg, &o->mp.type);
    case 'V': o->type_set = 1; return parse_type("--vision-type", arg, &o->mp.vision_type);
    case 'T': return parse_threads(arg, o);
    case 'S': return parse_stages(arg, &o->stages);
    case 'n': return cli_parse_int("--tokens", arg, 1, 100000, &v) && (o->tokens = (int)v, 1);
    case 'C': return cli_parse_int("--crops", arg, 1, 64, &v) && (o->crops = (int)v, 1);
    case 'I': return parse_size(arg, &o->width, &o->height);
    case 'R': return cli_parse_int("--reps", arg, 1, 1000, &v) && (o->reps = (int)v, 1);
    case 'D': snprintf(o->dir, sizeof o->dir, "%s", arg); return 1;
    case 'B': return cli_parse_int("--read-mib", arg, 1, 1 << 20, &o->read_mib);
    case 'W':
        o->type_set = 1;
        if (!strcmp(arg, "random")) o->mp.weights = MOLMO_BENCH_WEIGHTS_RANDOM;
        else if (!strcmp(arg, "zeros")) o->mp.weights = MOLMO_BENCH_WEIGHTS_ZEROS;
        else return fprintf(stderr, "molmo: --weights expects random or zeros\n"), 0;
        return 1;
    case 'k': return cli_parse_kv_type(arg, &o->kv_type);
    case 'A': o->bf16_act = 1; return 1;
    case 'M': o->no_mmap = 1; return 1;
    case 'X': o->no_repack = 1; return 1;
    case 'j': o->json = 1; return 1;
    case 'q': o->quiet = 1; return 1;
    default: return 0;
    }
}

/* 0: go on; otherwise the exit status. */
static int parse_args(int argc, char **argv, bench_opts *o) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"type", required_argument, 0, 't'},
        {"vision-type", required_argument, 0, 'V'}, {"threads", required_argument, 0, 'T'},
        {"stages", required_argument, 0, 'S'},  {"tokens", required_argument, 0, 'n'},
        {"crops", required_argument, 0, 'C'},   {"image", required_argument, 0, 'I'},
        {"reps", required_argument, 0, 'R'},    {"dir", required_argument, 0, 'D'},
        {"read-mib", required_argument, 0, 'B'}, {"weights", required_argument, 0, 'W'},
        {"kv-type", required_argument, 0, 'k'}, {"bf16-activations", no_argument, 0, 'A'},
        {"no-mmap", no_argument, 0, 'M'},       {"no-repack", no_argument, 0, 'X'},
        {"json", no_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:n:qh", opts, NULL)) != -1) {
        if (c == 'h') return usage(stdout), -1;
        if (c == '?' || !take_option(o, c, optarg)) return c == '?' ? (usage(stderr), 2) : 2;
    }
    if (optind != argc) {
        fprintf(stderr, "molmo: bench takes no positional argument ('%s'); see --help\n",
                argv[optind]);
        return 2;
    }
    o->is_preset = is_preset(o->model);
    if (!o->is_preset && o->type_set) {
        fprintf(stderr, "molmo: --type, --vision-type and --weights apply to generated models "
                "(--model molmoe-1b|molmo-7b-o|molmo-7b-d|molmo-72b); '%s' is used as it is\n",
                o->model);
        return 2;
    }
    if (!o->is_preset && !strchr(o->model, '/') && access(o->model, F_OK) != 0) {
        fprintf(stderr, "molmo: unknown model '%s': expected molmoe-1b, molmo-7b-o, "
                "molmo-7b-d, molmo-72b, or a model directory or GGUF file\n", o->model);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------- the model */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    if (interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupted = 1;
}

typedef struct progress_ui {
    int tty, quiet, last_decile, shown;
    const char *phase;
} progress_ui;

static int on_progress(void *user, const molmo_bench_progress *p) {
    progress_ui *u = user;
    const double f = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    if (!u->phase || strcmp(u->phase, p->phase)) u->phase = p->phase, u->last_decile = -1;
    if (u->quiet) return interrupted != 0;
    if (u->tty) {
        fprintf(stderr, "\r%s: %3.0f%%  %.2f of %.2f GB  %.0f s\033[K", p->phase, 100 * f,
                (double)p->bytes_done * 1e-9, (double)p->bytes_total * 1e-9, p->elapsed_s);
        u->shown = 1;
    } else if ((int)(10 * f) > u->last_decile) {
        u->last_decile = (int)(10 * f);
        fprintf(stderr, "%s: %3d%%  %.2f of %.2f GB  %.0f s\n", p->phase, u->last_decile * 10,
                (double)p->bytes_done * 1e-9, (double)p->bytes_total * 1e-9, p->elapsed_s);
    }
    return interrupted != 0;
}

static void on_log(molmo_log_level level, const char *msg, void *user) {
    progress_ui *u = user;
    if (u->quiet && level < MOLMO_LOG_WARN) return;
    if (u->shown) fputs("\r\033[K", stderr), u->shown = 0;
    fprintf(stderr, "bench: %s\n", msg);
}

static int mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        const int bad = mkdir(path, 0755) != 0 && errno != EEXIST;
        *p = '/';
        if (bad) return -1;
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Generates or reuses the preset's model; writes the path to load. 0 or the exit status. */
static int prepare_model(bench_opts *o, char *path, size_t cap) {
    if (!o->is_preset) {
        snprintf(path, cap, "%s", o->model);
        return 0;
    }
    if (mkdir_p(o->dir) != 0) {
        fprintf(stderr, "molmo: cannot create %s: %s\n", o->dir, strerror(errno));
        return 1;
    }
    progress_ui u = {.tty = isatty(STDERR_FILENO), .quiet = o->quiet, .last_decile = -1};
    o->mp.progress = on_progress;
    o->mp.progress_user = &u;
    o->mp.log = on_log;
    o->mp.log_user = &u;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    molmo_error err;
    molmo_status s = molmo_bench_model_create(o->model, o->dir, &o->mp, path, cap, NULL, &err);
    sigaction(SIGINT, &old, NULL);
    if (u.shown) fputs("\r\033[K", stderr);
    if (s == MOLMO_ERR_CANCELLED) return fprintf(stderr, "molmo: interrupted\n"), 130;
    return s == MOLMO_OK ? 0 : cli_fail(&err, NULL);
}

/* ------------------------------------------------------------------------- the run */

typedef struct bench_run {
    const bench_opts *o;
    bench_report *r;
    molmo_model *model;
    molmo_model_info info;
    molmo_bench_costs costs;
    const char *preset;          /* the released model the loaded one has the shapes of */
    void *jpeg;                  /* the test image, encoded as a photo would be */
    size_t jpeg_size;
    molmo_image *image;
} bench_run;

/* Which released model has these shapes (a model from disk is judged like its preset). */
static const char *identify(const molmo_model_info *i) {
    static const struct { const char *name; molmo_family f; int d, layers; } known[] = {
        {"molmoe-1b", MOLMO_FAMILY_MOLMOE, 2048, 16}, {"molmo-7b-o", MOLMO_FAMILY_OLMO, 4096, 32},
        {"molmo-7b-d", MOLMO_FAMILY_QWEN2, 3584, 28}, {"molmo-72b", MOLMO_FAMILY_QWEN2, 8192, 80}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (i->family == known[k].f && i->d_model == known[k].d && i->n_layers == known[k].layers)
            return known[k].name;
    return NULL;
}

/* The targets for (stage, the model's preset, its language-model type). */
static void judge(const bench_run *b, bench_row *w) {
    static const struct { const char *preset, *stage; molmo_dtype type; double v; int max; } t[] = {
        {"molmoe-1b", "decode", MOLMO_DTYPE_Q8_0, 33, 0},
        {"molmoe-1b", "prefill", MOLMO_DTYPE_Q8_0, 150, 0},
        {"molmoe-1b", "e2e", MOLMO_DTYPE_Q8_0, 12, 1},
        {"molmo-7b-d", "decode", MOLMO_DTYPE_Q8_0, 5.4, 0},
        {"molmo-7b-d", "decode", MOLMO_DTYPE_Q4_0, 10, 0},
        {"molmo-7b-d", "prefill", MOLMO_DTYPE_Q8_0, 35, 0}};
    if (!strcmp(w->stage, "vision")) {
        const molmo_dtype v = b->costs.vision_type;
        if (v == MOLMO_DTYPE_BF16) bench_judge(w, 0.6, 1, "bf16 ViT");
        else if (v == MOLMO_DTYPE_Q8_0 || v == MOLMO_DTYPE_Q4_0) bench_judge(w, 0.4, 1, "int8 ViT");
        return;
    }
    for (size_t k = 0; b->preset && k < sizeof t / sizeof t[0]; k++)
        if (!strcmp(t[k].preset, b->preset) && !strcmp(t[k].stage, w->stage) &&
            t[k].type == b->costs.llm_type) {
            char note[24];
            snprintf(note, sizeof note, "%s %s", b->preset, molmo_dtype_name(t[k].type));
            bench_judge(w, t[k].v, t[k].max, note);
        }
}

/* "bench: decode, 2 threads" on stderr (unless -q), so a long run shows where it is. */
static void status(const bench_opts *o, const char *what, int threads) {
    if (!o->quiet)
        fprintf(stderr, "bench: %s, %d thread%s\n", what, threads, threads == 1 ? "" : "s");
}

/* A photo-like test image (smooth gradients plus noise), kept as JPEG bytes so that e2e
 * decodes a file as a user's run does. */
static molmo_status make_image(bench_run *b, molmo_error *err) {
    const int w = b->o->width, h = b->o->height;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    if (!rgb) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return err->code = MOLMO_ERR_NOMEM;
    }
    uint32_t x = 2463534242u;
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++)
            for (int c = 0; c < 3; c++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                const int v = (i * 255 / w + y * 255 / h * (c + 1) / 3 + (int)(x & 31)) & 255;
                rgb[((size_t)y * w + i) * 3 + c] = (unsigned char)v;
            }
    molmo_image *raw = NULL;
    molmo_status s = molmo_image_from_rgb(rgb, w, h, 0, &raw, err);
    free(rgb);
    if (s == MOLMO_OK)
        s = molmo_image_encode(raw, MOLMO_IMAGE_FORMAT_JPEG, 90, &b->jpeg, &b->jpeg_size, err);
    molmo_image_free(raw);
    if (s == MOLMO_OK) s = molmo_image_load_memory(b->jpeg, b->jpeg_size, NULL, &b->image, err);
    return s;
}

static void machine_rows(bench_run *b, const molmo_bench_machine *m) {
    const struct { const char *what, *isa, *unit; double v; } rows[] = {
        {"memory read bandwidth", NULL, "GB/s", m->read_gbs},
        {"f32 FMA peak", m->fma_isa, "GFLOP/s", m->fma_gflops},
        {"int8 vpdpbusd peak", m->vnni_isa, "GOP/s", m->vnni_gops},
        {"bf16 vdpbf16ps peak", m->bf16_isa, "GFLOP/s", m->bf16_gflops}};
    for (int i = 0; i < 4; i++) {
        bench_row *w = bench_add_row(b->r, "machine", m->n_threads);
        if (!w) return;
        if (i == 0)
            snprintf(w->measure, sizeof w->measure, "%s (%ld MiB)", rows[i].what,
                     b->o->read_mib);
        else
            snprintf(w->measure, sizeof w->measure, "%s (%s)", rows[i].what, rows[i].isa);
        w->value = rows[i].v;
        w->unit = rows[i].unit;
    }
    if (m->weights_read_gbs <= 0) return; /* the model's weights where they lie */
    bench_row *w = bench_add_row(b->r, "machine", m->n_threads);
    if (!w) return;
    char huge[48] = "";
    if (m->weights_huge_share >= 0)
        snprintf(huge, sizeof huge, ", %.0f%% in 2 MiB pages", 100 * m->weights_huge_share);
    snprintf(w->measure, sizeof w->measure,
             "read bandwidth of the weights (%s, %ld MiB spread over it%s)",
             b->o->no_mmap ? "in process memory" : "mapped file", b->o->read_mib, huge);
    w->value = m->weights_read_gbs;
    w->unit = "GB/s";
}

/* Baselines at `threads`: all of them for the machine stage, else what the ratios need. */
static int measure_machine(bench_run *b, int threads) {
    const bench_opts *o = b->o;
    molmo_bench_machine_params p = molmo_bench_machine_default_params();
    p.n_threads = threads;
    p.read_bytes = (size_t)o->read_mib << 20;
    p.what = 0;
    if (o->stages & (ST_MACHINE | ST_DECODE)) p.what |= MOLMO_BENCH_READ;
    p.model = b->model; /* the weights' own pages: decode's other baseline */
    if (o->stages & (ST_MACHINE | ST_VISION | ST_PREFILL))
        p.what |= MOLMO_BENCH_FMA | MOLMO_BENCH_VNNI | MOLMO_BENCH_BF16;
    molmo_bench_machine *m = &b->r->machine[b->r->n_machine];
    molmo_error err;
    status(o, "machine baselines", threads);
    if (molmo_bench_machine_measure(&p, m, &err) != MOLMO_OK) return cli_fail(&err, NULL);
    b->r->n_machine++;
    if (o->stages & ST_MACHINE) machine_rows(b, m);
    return 0;
}

/* Percent of a baseline (0 when it was not measured). */
static double pct(double v, double base) { return base > 0 ? 100.0 * v / base : 0; }

/* The peak of the instructions that weights of type t are multiplied with (GFLOP/s or GOP/s):
 * vpdpbusd for the int8 block types, FMA for the float types (the shipped kernels widen bf16
 * and f16 to f32). With AMX, the int8 and bf16 GEMMs run on the tile unit, whose peak the bench
 * does not measure: no bound then (0), rather than one the kernels exceed. */
static double compute_peak(molmo_dtype t, const molmo_bench_machine *m) {
    const int int8 = t == MOLMO_DTYPE_Q8_0 || t == MOLMO_DTYPE_Q4_0;
    if ((int8 || t == MOLMO_DTYPE_BF16) && strstr(m->kernels, "amx")) return 0;
    return int8 ? m->vnni_gops : m->fma_gflops;
}

/* ", bf16 activations" with --bf16-activations: it changes every stage that runs the model
 * (attention, whatever the weights' type). */
static const char *act_note(const bench_run *b) {
    return b->o->bf16_act ? ", bf16 activations" : "";
}

static int stage_vision(bench_run *b, molmo_context *ctx, const molmo_bench_machine *m) {
    molmo_bench_stat st;
    molmo_error err;
    status(b->o, "vision", m->n_threads);
    if (molmo_bench_vision(ctx, b->o->reps, &st, &err) != MOLMO_OK)
        return cli_fail(&err, "vision");
    bench_row *w = bench_add_row(b->r, "vision", m->n_threads);
    if (!w) return 0;
    snprintf(w->measure, sizeof w->measure, "ViT + connector, per crop (%s%s)",
             molmo_dtype_name(b->costs.vision_type), act_note(b));
    w->value = st.mean_s;
    w->sd = st.sd_s;
    w->unit = "s";
    w->rate = b->costs.vision_flop_per_crop / st.mean_s * 1e-9;
    w->rate_unit = "GFLOP/s";
    w->pct_fma = pct(w->rate, m->fma_gflops);
    w->pct_vnni = pct(w->rate, m->vnni_gops);
    if (b->costs.vision_type == MOLMO_DTYPE_BF16) w->pct_bf16 = pct(w->rate, m->bf16_gflops);
    const double peak = compute_peak(b->costs.vision_type, m);
    w->bound = peak > 0 ? b->costs.vision_flop_per_crop / (peak * 1e9) : 0;
    judge(b, w);
    return 0;
}

/* A rate n / t with the standard deviation carried over from t (first order). */
static void as_rate(bench_row *w, double n, const molmo_bench_stat *st, const char *unit) {
    w->value = n / st->mean_s;
    w->sd = n * st->sd_s / (st->mean_s * st->mean_s);
    w->unit = unit;
}

static int stage_prefill(bench_run *b, molmo_context *ctx, const molmo_bench_machine *m) {
    molmo_bench_prefill_result pr;
    molmo_error err;
    status(b->o, "prefill", m->n_threads);
    if (molmo_bench_prefill(ctx, b->image, b->o->prompt, b->o->crops, b->o->reps, &pr, &err) !=
        MOLMO_OK)
        return cli_fail(&err, "prefill");
    b->r->n_prompt = pr.n_prompt;
    b->r->n_crops = pr.n_crops;
    if (molmo_bench_costs_get(b->model, pr.n_prompt, &b->costs, &err) != MOLMO_OK)
        return cli_fail(&err, NULL);
    bench_row *w = bench_add_row(b->r, "prefill", m->n_threads);
    if (!w) return 0;
    snprintf(w->measure, sizeof w->measure, "%d-token image prompt (%s%s)", pr.n_prompt,
             molmo_dtype_name(b->costs.llm_type), act_note(b));
    as_rate(w, pr.n_prompt, &pr.time, "tok/s");
    w->rate = b->costs.prefill_flop / pr.time.mean_s * 1e-9;
    w->rate_unit = "GOP/s";
    w->pct_fma = pct(w->rate, m->fma_gflops);
    w->pct_vnni = pct(w->rate, m->vnni_gops);
    if (b->costs.llm_type == MOLMO_DTYPE_BF16) w->pct_bf16 = pct(w->rate, m->bf16_gflops);
    const double peak = compute_peak(b->costs.llm_type, m);
    w->bound = peak > 0 ? pr.n_prompt / (b->costs.prefill_flop / (peak * 1e9)) : 0;
    judge(b, w);
    return 0;
}

/* Puts the image prompt in the KV cache when the prefill stage did not (decode starts there). */
static int ensure_prompt(bench_run *b, molmo_context *ctx) {
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = 0;
    gp.max_crops = b->o->crops;
    const molmo_message msg = {"user", b->o->prompt};
    molmo_generation *g = NULL;
    molmo_error err;
    if (molmo_generate(ctx, b->image, &msg, 1, &gp, &g, &err) != MOLMO_OK)
        return cli_fail(&err, "prompt");
    b->r->n_prompt = g->prompt_tokens;
    b->r->n_crops = g->n_crops;
    molmo_generation_free(g);
    return molmo_bench_costs_get(b->model, b->r->n_prompt, &b->costs, &err) == MOLMO_OK
               ? 0
               : cli_fail(&err, NULL);
}

/* Bytes of keys and values one position holds in the KV cache, all layers. */
static double kv_bytes_per_position(const bench_run *b) {
    const double f32 = (double)b->info.kv_cache_bytes_per_token;
    return b->o->kv_type == MOLMO_DTYPE_F16 ? f32 / 2 : f32;
}

static int stage_decode(bench_run *b, molmo_context *ctx, const molmo_bench_machine *m) {
    molmo_bench_stat st;
    molmo_error err;
    status(b->o, "decode", m->n_threads);
    if (molmo_bench_decode(ctx, b->o->tokens, b->o->reps, &st, &err) != MOLMO_OK)
        return cli_fail(&err, "decode");
    bench_row *w = bench_add_row(b->r, "decode", m->n_threads);
    if (!w) return 0;
    /* A step reads the weights it uses and the cache's keys and values of every earlier
     * position: on average, those of the middle step of the run. */
    const double kv = kv_bytes_per_position(b) * (b->r->n_prompt + (b->o->tokens + 1) / 2.0);
    const double bytes = (double)b->costs.decode_bytes + kv;
    snprintf(w->measure, sizeof w->measure, "%d tokens after %d (%s; %.2f GB weights + %.2f GB "
             "%s KV per token)", b->o->tokens, b->r->n_prompt,
             molmo_dtype_name(b->costs.llm_type), (double)b->costs.decode_bytes * 1e-9, kv * 1e-9,
             molmo_dtype_name(b->o->kv_type));
    as_rate(w, 1.0, &st, "tok/s");
    w->rate = bytes / st.mean_s * 1e-9;
    w->rate_unit = "GB/s";
    w->pct_read = pct(w->rate, m->read_gbs);
    w->pct_wread = pct(w->rate, m->weights_read_gbs);
    w->bound = m->read_gbs * 1e9 / bytes; /* tok/s at 100% of it */
    judge(b, w);
    return 0;
}

/* One end-to-end run: load (warm page cache), context, decode the JPEG, answer. */
static int e2e_once(bench_run *b, int threads, double *t, double part[4], int *n_tok) {
    molmo_error err;
    molmo_model *m = NULL;
    molmo_context *ctx = NULL;
    molmo_image *img = NULL;
    molmo_generation *g = NULL;
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = threads;
    cp.kv_type = b->o->kv_type;
    cp.bf16_activations = b->o->bf16_act;
    molmo_generate_params gp = molmo_generate_default_params();
    gp.max_new_tokens = b->o->tokens;
    gp.max_crops = b->o->crops;
    const molmo_message msg = {"user", b->o->prompt};
    const double t0 = cli_now_ms();
    molmo_model_params mp = molmo_model_default_params();
    mp.no_mmap = b->o->no_mmap;
    mp.no_repack = b->o->no_repack;
    molmo_status s = molmo_model_load(b->r->model_path, &mp, &m, &err);
    if (s == MOLMO_OK) s = molmo_context_create(m, &cp, &ctx, &err);
    const double t_load = cli_now_ms() - t0; /* the model and a context (which prefaults) */
    if (s == MOLMO_OK) s = molmo_image_load_memory(b->jpeg, b->jpeg_size, NULL, &img, &err);
    if (s == MOLMO_OK) s = molmo_generate(ctx, img, &msg, 1, &gp, &g, &err);
    *t = (cli_now_ms() - t0) * 1e-3;
    if (s == MOLMO_OK) {
        const double p[4] = {t_load, g->image_ms, g->prefill_ms, g->decode_ms};
        for (int i = 0; i < 4; i++) part[i] += p[i] * 1e-3;
        *n_tok = g->n_tokens;
    }
    molmo_generation_free(g);
    molmo_image_free(img);
    molmo_context_free(ctx);
    molmo_model_free(m);
    return s == MOLMO_OK ? 0 : cli_fail(&err, "e2e");
}

static int stage_e2e(bench_run *b, int threads) {
    const int reps = b->o->reps;
    double t[1000], part[4] = {0}, mean = 0, var = 0;
    int n_tok = 0;
    status(b->o, "end to end", threads);
    for (int r = 0; r < reps; r++) {
        int rc = e2e_once(b, threads, &t[r], part, &n_tok);
        if (rc) return rc;
        mean += t[r] / reps;
    }
    for (int r = 0; r < reps; r++) var += (t[r] - mean) * (t[r] - mean);
    bench_row *w = bench_add_row(b->r, "e2e", threads);
    if (!w) return 0;
    snprintf(w->measure, sizeof w->measure, "load + image + prompt + %d tokens%s", n_tok,
             n_tok < b->o->tokens ? " (EOS)" : "");
    w->value = mean;
    w->sd = reps > 1 ? sqrt(var / (reps - 1)) : 0;
    w->unit = "s";
    snprintf(w->rate_note, sizeof w->rate_note, "load %.2f, image %.2f, prefill %.2f, decode "
             "%.2f s", part[0] / reps, part[1] / reps, part[2] / reps, part[3] / reps);
    judge(b, w);
    return 0;
}

/* The stages at one thread count, on one context. */
static int run_threads(bench_run *b, int threads) {
    const bench_opts *o = b->o;
    int first = b->r->n_rows;
    bench_mem_begin();
    int rc = measure_machine(b, threads);
    bench_mem_end(b->r, first);
    if (rc || !(o->stages & (ST_VISION | ST_PREFILL | ST_DECODE | ST_E2E))) return rc;
    const molmo_bench_machine *m = &b->r->machine[b->r->n_machine - 1];
    molmo_context_params cp = molmo_context_default_params();
    cp.n_threads = threads;
    cp.kv_type = o->kv_type;
    cp.bf16_activations = o->bf16_act;
    molmo_context *ctx = NULL;
    molmo_error err;
    if (molmo_context_create(b->model, &cp, &ctx, &err) != MOLMO_OK) return cli_fail(&err, NULL);
    /* each stage's memory: reset before it, read after it (the context stays: its KV cache
     * and workspaces count in every stage that uses them) */
#define STAGE(call)                                                                           \
    do {                                                                                      \
        first = b->r->n_rows;                                                                 \
        bench_mem_begin();                                                                    \
        rc = (call);                                                                          \
        bench_mem_end(b->r, first);                                                           \
    } while (0)
    if (o->stages & ST_VISION) STAGE(stage_vision(b, ctx, m));
    if (!rc && (o->stages & ST_PREFILL)) STAGE(stage_prefill(b, ctx, m));
    else if (!rc && (o->stages & ST_DECODE)) rc = ensure_prompt(b, ctx);
    if (!rc && (o->stages & ST_DECODE)) STAGE(stage_decode(b, ctx, m));
    molmo_context_free(ctx);
    if (!rc && (o->stages & ST_E2E)) STAGE(stage_e2e(b, threads));
#undef STAGE
    return rc;
}

static const char *type_label(molmo_dtype t) { return molmo_dtype_name(t); }

/* Loads the model and fills the report's description of it. */
static int open_model(bench_run *b, const char *path) {
    molmo_error err;
    molmo_model_params mp = molmo_model_default_params();
    mp.no_mmap = b->o->no_mmap;
    mp.no_repack = b->o->no_repack;
    if (molmo_model_load(path, &mp, &b->model, &err) != MOLMO_OK) return cli_fail(&err, NULL);
    molmo_model_get_info(b->model, &b->info);
    if (molmo_bench_costs_get(b->model, 1, &b->costs, &err) != MOLMO_OK)
        return cli_fail(&err, NULL);
    b->preset = identify(&b->info);
    b->r->llm_type = type_label(b->costs.llm_type);
    b->r->vision_type = type_label(b->costs.vision_type);
    b->r->kv_type = molmo_dtype_name(b->o->kv_type);
    b->r->bf16_act = b->o->bf16_act;
    b->r->no_mmap = b->o->no_mmap;
    b->r->model_gb = (double)b->info.weight_bytes * 1e-9;
    b->r->n_interleaved = b->info.n_matrices_interleaved;
    if (!b->info.has_tokenizer && (b->o->stages & ~(unsigned)(ST_MACHINE | ST_VISION))) {
        fprintf(stderr, "molmo: %s has no tokenizer.json: only the machine and vision stages "
                "can run\n", path);
        return 1;
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static bench_report report; /* ~30 KB: off the stack; one bench per process */
    bench_opts o = {.model = "molmoe-1b", .stages = ST_ALL, .tokens = 64, .width = 640,
                    .height = 480, .reps = 3, .read_mib = 1024,
                    .prompt = "Describe this image."};
    o.mp = molmo_bench_model_default_params();
    default_dir(o.dir, sizeof o.dir);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (o.n_threads == 0) o.threads[o.n_threads++] = molmo_bench_physical_cores();
    char path[4096], label[160];
    bench_run b = {.o = &o, .r = &report};
    memset(&report, 0, sizeof report);
    if ((rc = prepare_model(&o, path, sizeof path)) != 0) return rc;
    const char *repo = "", *r = NULL, *name;
    for (int i = 0; (name = molmo_bench_preset(i, &r)) != NULL; i++)
        if (!strcmp(name, o.model)) repo = r;
    snprintf(label, sizeof label, o.is_preset ? "%s (%s shapes)" : "%s", o.model,
             o.is_preset ? repo : "");
    report.model_label = label;
    report.model_path = path;
    report.weights = o.is_preset ? molmo_bench_weights_name(o.mp.weights) : NULL;
    report.image_w = o.width;
    report.image_h = o.height;
    report.tokens = o.tokens;
    report.reps = o.reps;
    report.prompt = o.prompt;
    rc = open_model(&b, path);
    molmo_error err;
    if (!rc && (o.stages & ~(unsigned)ST_MACHINE) && make_image(&b, &err) != MOLMO_OK)
        rc = cli_fail(&err, "test image");
    for (int i = 0; !rc && i < o.n_threads; i++) rc = run_threads(&b, o.threads[i]);
    if (!rc) o.json ? bench_print_json(&report) : bench_print_markdown(&report);
    molmo_image_free(b.image);
    molmo_image_encoded_free(b.jpeg);
    molmo_model_free(b.model);
    return rc;
}

/* synth.c — molmo_bench_model_create: a full-size checkpoint of a released model's shapes with
 * generated weights and text files, and optionally its GGUF, kept in a directory and reused by
 * later runs while it is valid.
 *
 * Validity: the checkpoint's molmo-bench.json is written last and records what was generated
 * (preset, weights, seed) and the size of model.safetensors, so an interrupted or different
 * generation is never taken for a finished one. A GGUF is complete when it exists (molmo_convert
 * renames it into place at the end); it is reused when it is newer than the checkpoint's record
 * and loads. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "bench/synth.h"
#include "io/path.h"
#include "kernels/quant.h"
#include "model/config.h"
#include "model/convert.h"
#include "model/presets.h"
#include "model/weights.h"

#define MARKER "molmo-bench.json"
#define MARKER_VERSION 1

/* EOS ids of the released tokenizers (fact sheet §6); image tokens start at vocab_size. */
static int eos_of(const char *preset) {
    if (!strcmp(preset, "molmoe-1b")) return 50279;
    if (!strcmp(preset, "molmo-7b-o")) return 100257;
    return 151643; /* Qwen2: 7B-D, 72B */
}

const char *molmo_bench_preset(int i, const char **repo) {
    int n = 0;
    const molmo_preset *p = molmo_presets(&n);
    if (i < 0 || i >= n) return NULL;
    if (repo) *repo = p[i].repo;
    return p[i].name;
}

const char *molmo_bench_weights_name(molmo_bench_weights w) {
    return w == MOLMO_BENCH_WEIGHTS_ZEROS ? "zeros" : "random";
}

molmo_bench_model_params molmo_bench_model_default_params(void) {
    molmo_bench_model_params p;
    memset(&p, 0, sizeof p);
    p.type = MOLMO_DTYPE_Q8_0;
    p.vision_type = MOLMO_DTYPE_COUNT;
    p.weights = MOLMO_BENCH_WEIGHTS_RANDOM;
    p.seed = 1;
    return p;
}

/* ------------------------------------------------------------------------------ sizes */

typedef struct size_sum {
    uint64_t bf16, gguf;       /* bytes of the checkpoint's tensors / of the GGUF's */
    molmo_dtype type, vision_type;
} size_sum;

static void add_size(void *user, const char *name, int n_dims, const int64_t *shape) {
    size_sum *z = user;
    uint64_t n = 1;
    for (int d = 0; d < n_dims; d++) n *= (uint64_t)shape[d];
    z->bf16 += 2 * n;
    if (z->type == MOLMO_DTYPE_COUNT) return;
    molmo_dtype t = molmo_convert_policy(name, n_dims, shape, z->type, z->vision_type);
    const int64_t cols = n_dims ? shape[n_dims - 1] : 1;
    z->gguf += (uint64_t)molmo_dtype_row_bytes(t, cols) * (n / (uint64_t)cols) + 32;
}

/* Bytes the preset's checkpoint (bf16) and GGUF (type/vision_type resolved; COUNT: none)
 * will take. */
static molmo_status sizes(const molmo_preset *ps, molmo_dtype type, molmo_dtype vtype,
                          size_sum *z, molmo_error *err) {
    molmo_config cfg;
    molmo_status s =
        molmo_config_parse(ps->config_json, strlen(ps->config_json), ps->name, &cfg, err);
    memset(z, 0, sizeof *z);
    z->type = type;
    z->vision_type = vtype;
    if (s == MOLMO_OK) s = molmo_weights_enumerate(&cfg, add_size, z, err);
    return s;
}

/* Fails with a clear message when `dir` has less than `need` bytes free (+ 1% and 64 MiB
 * headroom); `reclaim` bytes of files about to be replaced count as free. */
static molmo_status check_space(const char *dir, uint64_t need, uint64_t reclaim,
                                molmo_error *err) {
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return MOLMO_OK; /* unknown: let the writes tell */
    const uint64_t avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize + reclaim;
    const uint64_t want = need + need / 100 + (64u << 20);
    if (avail >= want) return MOLMO_OK;
    return molmo_err(err, MOLMO_ERR_IO, "not enough disk space in %s: %.1f GB needed, %.1f GB "
                     "free", dir, (double)want * 1e-9, (double)avail * 1e-9);
}

/* Allocated bytes of `path` (0 when absent): what replacing it gives back. */
static uint64_t allocated(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
}

/* ------------------------------------------------------------------------- the checkpoint */

typedef struct ctx {
    const molmo_preset *ps;
    const molmo_bench_model_params *p;
    char ckpt[4096];           /* dir/<preset>-<weights> */
    char marker[4096];
} ctx;

static void marker_text(const ctx *c, uint64_t st_bytes, char *out, size_t cap) {
    snprintf(out, cap, "{\"generator\": \"molmo bench\", \"version\": %d, \"preset\": \"%s\", "
             "\"weights\": \"%s\", \"seed\": %" PRIu64 ", \"safetensors_bytes\": %" PRIu64 "}\n",
             MARKER_VERSION, c->ps->name, molmo_bench_weights_name(c->p->weights), c->p->seed,
             st_bytes);
}

static int file_equals(const char *path, const char *text) {
    char buf[8192];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n == strlen(text) && !memcmp(buf, text, n);
}

static int in_ckpt_exists(const ctx *c, const char *name) {
    char p[4096];
    return molmo_path_join(p, sizeof p, c->ckpt, name) == 0 && molmo_path_exists(p);
}

/* 1 when the checkpoint is complete and was generated with these settings. */
static int checkpoint_valid(const ctx *c) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                        "preprocessor_config.json"};
    char path[4096], text[512];
    struct stat st;
    if (molmo_path_join(path, sizeof path, c->ckpt, "model.safetensors") != 0 ||
        stat(path, &st) != 0)
        return 0;
    marker_text(c, (uint64_t)st.st_size, text, sizeof text);
    if (!file_equals(c->marker, text)) return 0;
    if (molmo_path_join(path, sizeof path, c->ckpt, "config.json") != 0 ||
        !file_equals(path, c->ps->config_json))
        return 0;
    for (int i = 0; i < 3; i++)
        if (!in_ckpt_exists(c, files[i])) return 0;
    return 1;
}

static molmo_status write_marker(const ctx *c, molmo_error *err) {
    char path[4096], text[512];
    struct stat st;
    if (molmo_path_join(path, sizeof path, c->ckpt, "model.safetensors") != 0 ||
        stat(path, &st) != 0)
        return molmo_err(err, MOLMO_ERR_IO, "%s: missing after writing", path);
    marker_text(c, (uint64_t)st.st_size, text, sizeof text);
    FILE *f = fopen(c->marker, "w");
    if (!f || fputs(text, f) < 0) {
        if (f) fclose(f);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write", c->marker);
    }
    return fclose(f) == 0 ? MOLMO_OK : molmo_err(err, MOLMO_ERR_IO, "%s: cannot write",
                                                  c->marker);
}

static molmo_status make_checkpoint(const ctx *c, molmo_error *err) {
    const molmo_bench_model_params *p = c->p;
    char st_path[4096];
    size_sum z;
    molmo_path_join(st_path, sizeof st_path, c->ckpt, "model.safetensors");
    unlink(c->marker); /* from here on the directory is not valid until the end */
    if (mkdir(c->ckpt, 0755) != 0 && errno != EEXIST)
        return molmo_err(err, MOLMO_ERR_IO, "cannot create %s: %s", c->ckpt, strerror(errno));
    molmo_status s = sizes(c->ps, MOLMO_DTYPE_COUNT, MOLMO_DTYPE_COUNT, &z, err);
    if (s == MOLMO_OK && p->weights == MOLMO_BENCH_WEIGHTS_RANDOM)
        s = check_space(c->ckpt, z.bf16, allocated(st_path), err);
    if (s == MOLMO_OK)
        molmo_log(p->log, p->log_user, MOLMO_LOG_INFO, "writing %s (%s weights, %.1f GB)",
                  c->ckpt, molmo_bench_weights_name(p->weights), (double)z.bf16 * 1e-9);
    if (s == MOLMO_OK)
        s = molmo_synth_checkpoint(c->ckpt, c->ps->config_json, MOLMO_DTYPE_BF16, 0, 0, err);
    if (s == MOLMO_OK && p->weights == MOLMO_BENCH_WEIGHTS_RANDOM)
        s = molmo_bench_fill_random(st_path, p->seed, p->n_threads, p->progress,
                                    p->progress_user, err);
    if (s == MOLMO_OK) {
        molmo_config cfg;
        s = molmo_config_parse(c->ps->config_json, strlen(c->ps->config_json), c->ps->name, &cfg,
                               err);
        molmo_bench_text_ids ids = {eos_of(c->ps->name), cfg.vocab_size};
        if (s == MOLMO_OK) s = molmo_bench_write_text_files(c->ckpt, &ids, err);
    }
    return s == MOLMO_OK ? write_marker(c, err) : s;
}

/* ------------------------------------------------------------------------------- the GGUF */

typedef struct conv_ui {
    const molmo_bench_model_params *p;
} conv_ui;

static int on_convert(void *user, const molmo_convert_progress *cp) {
    const conv_ui *u = user;
    molmo_bench_progress pr = {"convert", cp->tensor, cp->bytes_done, cp->bytes_total,
                               cp->elapsed_s};
    return u->p->progress(u->p->progress_user, &pr);
}

/* 1 when `gguf` is complete, newer than the checkpoint's record and loads. */
static int gguf_valid(const ctx *c, const char *gguf) {
    struct stat g, m;
    if (stat(gguf, &g) != 0 || stat(c->marker, &m) != 0) return 0;
    if (g.st_mtim.tv_sec < m.st_mtim.tv_sec ||
        (g.st_mtim.tv_sec == m.st_mtim.tv_sec && g.st_mtim.tv_nsec < m.st_mtim.tv_nsec))
        return 0;
    molmo_model *model = NULL;
    if (molmo_model_load(gguf, NULL, &model, NULL) != MOLMO_OK) return 0;
    molmo_model_free(model);
    return 1;
}

static molmo_status make_gguf(const ctx *c, const char *gguf, molmo_dtype vt, molmo_error *err) {
    const molmo_bench_model_params *p = c->p;
    size_sum z;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", gguf);
    *strrchr(dir, '/') = '\0';
    /* the estimate takes a default vision tower as `type` (q8_0 for 4-bit types): within
     * 0.2 GB */
    const int four_bit = p->type == MOLMO_DTYPE_Q4_0 || p->type == MOLMO_DTYPE_Q4_K;
    const molmo_dtype est_vt = vt != MOLMO_DTYPE_COUNT ? vt : four_bit ? MOLMO_DTYPE_Q8_0 : p->type;
    molmo_status s = sizes(c->ps, p->type, est_vt, &z, err);
    if (s == MOLMO_OK) s = check_space(dir, z.gguf, allocated(gguf), err);
    if (s != MOLMO_OK) return s;
    molmo_log(p->log, p->log_user, MOLMO_LOG_INFO, "converting to %s (%.1f GB)", gguf,
              (double)z.gguf * 1e-9);
    char name[128];
    snprintf(name, sizeof name, "molmo-bench %s %s seed %" PRIu64, c->ps->name,
             molmo_bench_weights_name(p->weights), p->seed);
    conv_ui u = {p};
    molmo_convert_params cp = molmo_convert_default_params();
    cp.type = p->type;
    cp.vision_type = p->vision_type;
    cp.name = name;
    cp.n_threads = p->n_threads;
    cp.progress = p->progress ? on_convert : NULL;
    cp.progress_user = &u;
    cp.log = p->log;
    cp.log_user = p->log_user;
    return molmo_convert(c->ckpt, gguf, &cp, err);
}

/* ----------------------------------------------------------------------------- the call */

/* A weight type (molmo_convert checks which it writes, and says so). */
static int convertible(molmo_dtype t) {
    return (int)t >= 0 && t < MOLMO_DTYPE_COUNT && t != MOLMO_DTYPE_I32;
}

static molmo_status check_args(const char *preset, const char *dir,
                               const molmo_bench_model_params *p, char *out,
                               const molmo_preset **ps, molmo_error *err) {
    if (!preset || !dir || !out)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench model: NULL argument");
    if (!(*ps = molmo_preset_find(preset)))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "unknown model '%s' (known: molmoe-1b, "
                         "molmo-7b-o, molmo-7b-d, molmo-72b)", preset);
    if (!convertible(p->type) || (p->vision_type != MOLMO_DTYPE_COUNT &&
                                  !convertible(p->vision_type)))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench model: %s is not a weight type",
                         convertible(p->type) ? "the vision type" : "the type");
    if (p->weights != MOLMO_BENCH_WEIGHTS_RANDOM && p->weights != MOLMO_BENCH_WEIGHTS_ZEROS)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench model: unknown weights kind %d",
                         (int)p->weights);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return molmo_err(err, MOLMO_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    if (!molmo_path_is_dir(dir))
        return molmo_err(err, MOLMO_ERR_IO, "%s is not a directory", dir);
    return MOLMO_OK;
}

molmo_status molmo_bench_model_create(const char *preset, const char *dir,
                                      const molmo_bench_model_params *params, char *out,
                                      size_t cap, int *reused, molmo_error *err) {
    molmo_bench_model_params p = params ? *params : molmo_bench_model_default_params();
    ctx c = {.p = &p};
    molmo_status s = check_args(preset, dir, &p, out, &c.ps, err);
    if (s != MOLMO_OK) return s;
    if (reused) *reused = 1;
    if (snprintf(c.ckpt, sizeof c.ckpt, "%s/%s-%s", dir, preset,
                 molmo_bench_weights_name(p.weights)) >= (int)sizeof c.ckpt ||
        molmo_path_join(c.marker, sizeof c.marker, c.ckpt, MARKER) != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
    if (!checkpoint_valid(&c)) {
        if (reused) *reused = 0;
        if ((s = make_checkpoint(&c, err)) != MOLMO_OK) return s;
    } else {
        molmo_log(p.log, p.log_user, MOLMO_LOG_INFO, "reusing %s", c.ckpt);
    }
    /* named by what was asked: COUNT is molmo_convert's default vision type for `type` */
    const molmo_dtype vt = p.vision_type;
    char gguf[4096];
    if (p.type == MOLMO_DTYPE_BF16 && (vt == MOLMO_DTYPE_COUNT || vt == MOLMO_DTYPE_BF16)) {
        snprintf(gguf, sizeof gguf, "%s", c.ckpt); /* the checkpoint itself */
    } else {
        int n = vt == MOLMO_DTYPE_COUNT ? snprintf(gguf, sizeof gguf, "%s.%s.gguf", c.ckpt,
                                                   molmo_dtype_name(p.type))
                                        : snprintf(gguf, sizeof gguf, "%s.%s.vision-%s.gguf",
                                                   c.ckpt, molmo_dtype_name(p.type),
                                                   molmo_dtype_name(vt));
        if (n >= (int)sizeof gguf) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "path too long");
        if (!gguf_valid(&c, gguf)) {
            if (reused) *reused = 0;
            if ((s = make_gguf(&c, gguf, vt, err)) != MOLMO_OK) return s;
        } else {
            molmo_log(p.log, p.log_user, MOLMO_LOG_INFO, "reusing %s", gguf);
        }
    }
    if (strlen(gguf) + 1 > cap)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "bench model: path needs %zu bytes, the "
                         "buffer has %zu", strlen(gguf) + 1, cap);
    memcpy(out, gguf, strlen(gguf) + 1);
    return MOLMO_OK;
}

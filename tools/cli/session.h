/* session.h — what the generating commands (run, point, count, caption) share: the generation
 * options and their help text, and loading model + context + image before molmo_generate. */
#ifndef MOLMO_CLI_SESSION_H
#define MOLMO_CLI_SESSION_H

#include <getopt.h>

#include "cli.h"

typedef struct cli_gen_opts {
    const char *model, *image;
    int threads, n_ctx;
    molmo_dtype kv_type;         /* --kv-type (default f32) */
    int bf16_act;                /* --bf16-activations */
    int no_mmap;                 /* --no-mmap: weights read into the process's memory */
    int no_repack;               /* --no-repack: the file's layout kept there */
    int pull;                    /* --pull: download MODEL first when it is not cached */
    const char *stops[16];
    molmo_generate_params gp;
} cli_gen_opts;

/* A code outside the letters that the commands' own options use. */
#define CLI_OPT_NO_MMAP 0x100
#define CLI_OPT_NO_REPACK 0x101

/* getopt_long entries of the generation options (codes are the letters handled by
 * cli_gen_option); -m/--model and -i/--image are included. */
#define CLI_GEN_LONG_OPTIONS                                                                    \
    {"model", required_argument, 0, 'm'}, {"image", required_argument, 0, 'i'},                \
        {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 'T'}, \
        {"top-k", required_argument, 0, 'K'}, {"top-p", required_argument, 0, 'P'},            \
        {"seed", required_argument, 0, 'S'}, {"stop", required_argument, 0, 's'},              \
        {"max-crops", required_argument, 0, 'C'}, {"threads", required_argument, 0, 't'},      \
        {"ctx", required_argument, 0, 'c'}, {"top-logprobs", required_argument, 0, 'L'},        \
        {"pull", no_argument, 0, 'U'}, {"kv-type", required_argument, 0, 'k'},                 \
        {"bf16-activations", no_argument, 0, 'A'}, {"no-mmap", no_argument, 0, CLI_OPT_NO_MMAP}, \
        {"no-repack", no_argument, 0, CLI_OPT_NO_REPACK}

/* Help lines of the options above except -m, -i and --top-logprobs (commands word those). */
#define CLI_GEN_HELP                                                                            \
    "  -n, --max-tokens N      at most N new tokens (default 200)\n"                            \
    "      --temperature T     0 = greedy, the model card's decoding (default 0)\n"             \
    "      --top-k K           sample from the K most likely tokens (default: all)\n"           \
    "      --top-p P           nucleus sampling (default 1 = off)\n"                            \
    "      --seed S            sampling seed (default 0)\n"                                     \
    "      --stop TEXT         stop before TEXT (repeatable)\n"                                 \
    "      --max-crops N       high-res crops per image, 1..64 (default: the model's 12)\n"     \
    "      --threads N         threads (default: physical cores)\n"                             \
    "      --ctx N             context length (default: the model's maximum)\n"                \
    "      --kv-type T         KV cache f32 (default: the official model's values) or f16\n"   \
    "                          (half the cache memory and decode attention reads; logits\n"    \
    "                          move by ~1e-3 in log-probability, docs/gguf.md)\n"              \
    "      --bf16-activations  round the inputs of bf16-weight matmuls and of attention to\n"  \
    "                          bf16, as PyTorch's bf16 autocast and llama.cpp do; on\n"       \
    "                          AMX-BF16 CPUs also quantized GEMMs (ViT, prefill) run in\n"   \
    "                          bf16 with the weights rounded to bf16: faster there; logits\n" \
    "                          move (docs/gguf.md)\n"                                          \
    "      --no-mmap           read the weights into this process's memory instead of\n"     \
    "                          mapping the file: costs their size in RAM and a read at\n"    \
    "                          load; where the page cache reads slowly (some VMs) decode\n"  \
    "                          is 10-30 percent faster (docs/bench.md); q8_0 and q4_0\n"    \
    "                          matrices are then interleaved by 16 rows for the SIMD\n"     \
    "                          kernels (same results; prefill up to ~20 percent and q8_0\n" \
    "                          decode faster, q4_0 decode about even)\n"                    \
    "      --no-repack         with --no-mmap: keep the file's layout\n"                     \
    "      --pull              download MODEL (a repo id) first when it is not cached\n"

void cli_gen_opts_init(cli_gen_opts *o);

/* Handles option `c` of CLI_GEN_LONG_OPTIONS. Returns 1 when handled, 0 when `c` is not a
 * generation option, -1 when the value is bad (a one-line message was printed). */
int cli_gen_option(cli_gen_opts *o, int c, const char *arg);

/* Parses a --kv-type value (f32, f16); prints an error and returns 0 when invalid. */
int cli_parse_kv_type(const char *s, molmo_dtype *out);

/* Parses a float option value in [lo, hi]; prints an error and returns 0 when invalid. */
int cli_parse_float(const char *opt, const char *s, float lo, float hi, float *out);

typedef struct cli_session {
    molmo_model *model;
    molmo_context *ctx;
    molmo_image *image;          /* NULL without -i */
    double load_ms;              /* model load time */
} cli_session;

/* Where `molmo convert REPO` puts its output when no -o is given, and where the generating
 * commands look for it: $MOLMO_GGUF_DIR (default $XDG_CACHE_HOME/molmo or ~/.cache/molmo)
 * /ORG_NAME.TYPE.gguf. Writes the path into out[cap]; returns 0, or -1 when `model` is not a
 * repo id or the path does not fit. */
int cli_gguf_path(const char *model, const char *type, char *out, size_t cap);

/* The model the generating commands load: a converted GGUF of the repo id when one exists
 * (bf16, then q8_0, f16, q4_0, f32 — the choice is printed on stderr), else `model`. */
const char *cli_prefer_gguf(const char *model, char *buf, size_t cap);

/* With --pull, downloads o->model when it is a repo id missing from the cache (progress and
 * errors go to stderr). Returns 0 to go on, else the exit status. */
int cli_session_pull(const cli_gen_opts *o);

/* Loads the model, creates the context and decodes the image (when o->image is set).
 * On failure err says why and everything already made is freed. */
molmo_status cli_session_open(cli_session *s, const cli_gen_opts *o, molmo_error *err);
void cli_session_close(cli_session *s);

/* Monotonic milliseconds. */
double cli_now_ms(void);

#endif

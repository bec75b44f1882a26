/* cmd_convert.c — `molmo convert MODEL -o OUT.gguf --type T`: a checkpoint into one GGUF file
 * (molmo_convert), with a progress bar on a terminal and plain lines otherwise (logs, CI). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo convert MODEL -o OUT.gguf [--type T] [--vision-type T] [--name NAME]\n"
            "                     [--threads N] [-q]\n"
            "\n"
            "Writes MODEL (checkpoint directory, Hugging Face repo id, or a GGUF file) as one\n"
            "GGUF file that every command accepts in place of MODEL and that loads without\n"
            "copying: weights in the chosen type, with the config, tokenizer and preprocessor\n"
            "config embedded. Types: f32, f16, bf16, q8_0, q4_0, q6_k, q4_k (ggml's block\n"
            "formats).\n"
            "\n"
            "  -o, --output FILE     the GGUF file to write; for a repo id the default is\n"
            "                        $MOLMO_GGUF_DIR (~/.cache/molmo)/ORG_NAME.TYPE.gguf, where\n"
            "                        run/point/count/caption find and prefer it\n"
            "  -t, --type T          language model matrices (default bf16); the token\n"
            "                        embedding and LM head get q8_0 when T is q4_0; with q4_k\n"
            "                        they and the attention matrices get q6_k\n"
            "      --vision-type T   vision tower and connector (default: T, but q8_0 for\n"
            "                        q4_0 and q4_k)\n"
            "      --name NAME       general.name (default: the repo or directory name)\n"
            "      --threads N       threads encoding rows (default: one per physical core;\n"
            "                        the file is the same for any N)\n"
            "  -q, --quiet           no progress output\n"
            "  -h, --help            this help\n"
            "\n"
            "Norms, biases, the class/positional/pad embeddings and the MoE router stay f32;\n"
            "the ViT patch embedding (588 wide, not whole 32-value blocks) is f16 when T is a\n"
            "block type; q6_k/q4_k rows that are not whole 256-value blocks are q8_0. See\n"
            "docs/gguf.md.\n");
}

static int parse_type(const char *opt, const char *s, molmo_dtype *out) {
    static const molmo_dtype types[] = {MOLMO_DTYPE_F32, MOLMO_DTYPE_F16, MOLMO_DTYPE_BF16,
                                        MOLMO_DTYPE_Q8_0, MOLMO_DTYPE_Q4_0, MOLMO_DTYPE_Q6_K,
                                        MOLMO_DTYPE_Q4_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(s, molmo_dtype_name(types[i]))) return *out = types[i], 1;
    fprintf(stderr, "molmo: %s expects f32, f16, bf16, q8_0, q4_0, q6_k or q4_k, got '%s'\n",
            opt, s);
    return 0;
}

/* Decimal units, as molmo pull shows sizes. */
static const char *human(double b, char *buf, size_t cap) {
    static const char *const u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000.0 && i < 4) b /= 1000.0, i++;
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

typedef struct ui {
    int tty, quiet, bar_shown;
    int last_tensor;               /* index of the tensor counted last (-1: none)             */
    int last_decile;               /* plain mode: the last 10% step printed                  */
    int n_by_type[MOLMO_DTYPE_COUNT];
    uint64_t total;
    double elapsed_s;
} ui;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    if (interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupted = 1;
}

static void draw_bar(ui *u, const molmo_convert_progress *p) {
    char a[32], b[32], r[32];
    double f = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    int w = 24, fill = (int)(f * w + 0.5);
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    size_t n = strlen(p->tensor);
    double rate = p->elapsed_s > 0 ? (double)p->bytes_done / p->elapsed_s : 0;
    fprintf(stderr, "\r[%s] %3.0f%%  %s / %s  %s/s  [%d/%d] %-5s %-40.40s\033[K", bar, f * 100,
            human((double)p->bytes_done, a, sizeof a), human((double)p->bytes_total, b, sizeof b),
            human(rate, r, sizeof r), p->tensor_index + 1, p->n_tensors,
            molmo_dtype_name(p->dtype), n > 40 ? p->tensor + n - 40 : p->tensor);
    fflush(stderr);
    u->bar_shown = 1;
}

static int on_progress(void *user, const molmo_convert_progress *p) {
    ui *u = user;
    if (p->tensor_index != u->last_tensor) {
        u->n_by_type[p->dtype]++;
        u->last_tensor = p->tensor_index;
    }
    u->total = p->bytes_total;
    u->elapsed_s = p->elapsed_s;
    if (!u->quiet && u->tty) {
        draw_bar(u, p);
    } else if (!u->quiet) {
        int decile = p->bytes_total ? (int)(10 * p->bytes_done / p->bytes_total) : 10;
        if (decile > u->last_decile) {
            char a[32], b[32];
            fprintf(stderr, "convert: %3d%%  %s of %s, tensor %d/%d (%s)\n", decile * 10,
                    human((double)p->bytes_done, a, sizeof a),
                    human((double)p->bytes_total, b, sizeof b), p->tensor_index + 1,
                    p->n_tensors, p->tensor);
            u->last_decile = decile;
        }
    }
    return interrupted != 0;
}

static void on_log(molmo_log_level level, const char *msg, void *user) {
    ui *u = user;
    if (level < MOLMO_LOG_WARN || u->quiet) return;
    if (u->bar_shown) fputs("\r\033[K", stderr), u->bar_shown = 0;
    fprintf(stderr, "molmo: %s\n", msg);
}

static int convert(const char *model, const char *out, molmo_convert_params *cp, int quiet) {
    ui u = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .last_tensor = -1};
    cp->progress = on_progress;
    cp->progress_user = &u;
    cp->log = on_log;
    cp->log_user = &u;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    molmo_error err;
    molmo_status s = molmo_convert(model, out, cp, &err);
    sigaction(SIGINT, &old, NULL);
    if (u.bar_shown) fputs("\r\033[K", stderr);
    if (s == MOLMO_ERR_CANCELLED) {
        fprintf(stderr, "molmo: interrupted; nothing was written\n");
        return 130;
    }
    if (s != MOLMO_OK) return cli_fail(&err, NULL);
    if (!quiet) {
        char a[32];
        fprintf(stderr, "wrote %s: tensor data %s in %.1f s;", out,
                human((double)u.total, a, sizeof a), u.elapsed_s);
        for (int d = 0; d < MOLMO_DTYPE_COUNT; d++)
            if (u.n_by_type[d])
                fprintf(stderr, " %d %s", u.n_by_type[d], molmo_dtype_name((molmo_dtype)d));
        fputc('\n', stderr);
    }
    return 0;
}

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"type", required_argument, 0, 't'},
        {"vision-type", required_argument, 0, 'V'}, {"name", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 'T'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    molmo_convert_params cp = molmo_convert_default_params();
    const char *out = NULL;
    int quiet = 0, c;
    long n;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't':
            if (!parse_type("--type", optarg, &cp.type)) return 2;
            break;
        case 'V':
            if (!parse_type("--vision-type", optarg, &cp.vision_type)) return 2;
            break;
        case 'n': cp.name = optarg; break;
        case 'T':
            if (!cli_parse_int("--threads", optarg, 1, 1024, &n)) return 2;
            cp.n_threads = (int)n;
            break;
        case 'q': quiet = 1; break;
        case 'h': return usage(stdout), 0;
        default: return usage(stderr), 2;
        }
    }
    char def[4096];
    if (optind == argc - 1 && !out &&
        cli_gguf_path(argv[optind], molmo_dtype_name(cp.type), def, sizeof def) == 0) {
        char *slash = strrchr(def, '/');
        *slash = '\0';
        if (mkdir(def, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "molmo: cannot create %s: %s\n", def, strerror(errno));
            return 1;
        }
        *slash = '/';
        out = def;
    }
    if (optind != argc - 1 || !out) {
        if (!out && optind == argc - 1) fprintf(stderr, "molmo: convert needs -o OUT.gguf\n");
        else usage(stderr);
        return 2;
    }
    return convert(argv[optind], out, &cp, quiet);
}

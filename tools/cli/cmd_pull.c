/* cmd_pull.c — `molmo pull REPO_ID`: download a model from the Hugging Face hub into the
 * Hugging Face cache (molmo_pull), with a progress bar on a terminal and plain lines otherwise
 * (logs, CI). The snapshot directory goes to stdout, everything else to stderr, so
 * `dir=$(molmo pull ORG/NAME)` works. Also `molmo run --pull` (cli_pull_if_missing). */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo pull REPO_ID [--revision REV] [--include GLOB ...] [--offline]\n"
            "                  [--endpoint URL] [--cache-dir DIR] [--retries N] [-q]\n"
            "\n"
            "Downloads a model repository (e.g. allenai/MolmoE-1B-0924) from the Hugging Face\n"
            "hub into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or\n"
            "~/.cache/huggingface/hub), in the layout Python's huggingface_hub uses: files\n"
            "either of them downloaded are reused by the other. Interrupted downloads resume\n"
            "where they stopped (run the same command again); every file's SHA-256 (git SHA-1\n"
            "for small files) is checked before it enters the cache. Prints the snapshot\n"
            "directory on stdout.\n"
            "\n"
            "  -r, --revision REV    branch, tag or commit (default: main, or REPO_ID@REV)\n"
            "  -I, --include GLOB    only files matching GLOB; repeatable; '*' matches '/' too\n"
            "                        (e.g. --include '*.json' --include 'tokenizer*')\n"
            "      --offline         never use the network: resolve from the cache only\n"
            "                        (also HF_HUB_OFFLINE=1)\n"
            "      --endpoint URL    hub address (default: $HF_ENDPOINT or\n"
            "                        https://huggingface.co)\n"
            "      --cache-dir DIR   cache directory (default: as above)\n"
            "      --retries N       retries after a network error (default 5)\n"
            "  -q, --quiet           no progress output\n"
            "  -h, --help            this help\n"
            "\n"
            "Gated or private repositories need a token: $HF_TOKEN, or the token file that\n"
            "`huggingface-cli login` writes ($HF_HOME/token).\n");
}

/* ---- progress display ----------------------------------------------------------------------- */

typedef struct ui {
    int tty, quiet;
    double last_line;   /* elapsed_s of the last plain progress line                           */
    int bar_shown;
} ui;

/* Decimal units, as the hub shows sizes. */
static const char *human(double b, char *buf, size_t cap) {
    static const char *const u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000.0 && i < 4) b /= 1000.0, i++;
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

static const char *duration(double s, char *buf, size_t cap) {
    if (s < 0 || s > 99 * 3600) return snprintf(buf, cap, "--:--"), buf;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static void clear_bar(ui *u) {
    if (u->bar_shown) fputs("\r\033[K", stderr);
    u->bar_shown = 0;
}

/* One redrawn line: file, its percentage, the whole pull's bytes, rate and ETA. */
static void draw_bar(ui *u, const molmo_pull_progress *p) {
    char a[32], b[32], r[32], eta[32];
    double f = p->total ? (double)p->bytes / (double)p->total : 1.0;
    int w = 24, fill = (int)(f * w + 0.5);
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    const char *name = p->file ? p->file : "";
    size_t n = strlen(name);
    fprintf(stderr, "\r[%d/%d] %-28.28s [%s] %3.0f%%  %s / %s  %s/s  ETA %s\033[K",
            p->file_index + 1, p->n_to_download, n > 28 ? name + n - 28 : name, bar, f * 100,
            human((double)p->bytes, a, sizeof a), human((double)p->total, b, sizeof b),
            human(p->rate, r, sizeof r), duration(p->eta_s, eta, sizeof eta));
    fflush(stderr);
    u->bar_shown = 1;
}

static void plain_bytes(ui *u, const molmo_pull_progress *p) {
    char a[32], b[32], r[32], eta[32];
    if (p->elapsed_s - u->last_line < 10.0) return;
    u->last_line = p->elapsed_s;
    fprintf(stderr, "  %3.0f%% of %s; all: %s of %s, %s/s, ETA %s\n",
            p->file_size ? 100.0 * (double)p->file_bytes / (double)p->file_size : 100.0, p->file,
            human((double)p->bytes, a, sizeof a), human((double)p->total, b, sizeof b),
            human(p->rate, r, sizeof r), duration(p->eta_s, eta, sizeof eta));
}

static void on_start(const molmo_pull_progress *p) {
    char t[32];
    fprintf(stderr, "%s: commit %s, %d file%s, %d to download (%s)\n", p->repo, p->commit,
            p->n_files, p->n_files == 1 ? "" : "s", p->n_to_download,
            human((double)p->total, t, sizeof t));
}

static int on_progress(void *user, const molmo_pull_progress *p) {
    ui *u = user;
    char a[32], b[32];
    if (u->quiet) return 0;
    switch (p->event) {
    case MOLMO_PULL_EVENT_START: on_start(p); break;
    case MOLMO_PULL_EVENT_FILE_CACHED:
        if (!u->tty) fprintf(stderr, "  cached    %s\n", p->file);
        break;
    case MOLMO_PULL_EVENT_FILE_START:
        clear_bar(u);
        if (p->file_bytes)
            fprintf(stderr, "  resume    %s at %s of %s\n", p->file,
                    human((double)p->file_bytes, a, sizeof a),
                    human((double)p->file_size, b, sizeof b));
        else if (!u->tty)
            fprintf(stderr, "  download  %s (%s)\n", p->file,
                    human((double)p->file_size, a, sizeof a));
        u->last_line = p->elapsed_s;
        if (u->tty) draw_bar(u, p);
        break;
    case MOLMO_PULL_EVENT_BYTES:
        if (u->tty) draw_bar(u, p);
        else plain_bytes(u, p);
        break;
    case MOLMO_PULL_EVENT_FILE_DONE:
        clear_bar(u);
        fprintf(stderr, "  verified  %s (%s)\n", p->file, human((double)p->file_size, a, sizeof a));
        break;
    case MOLMO_PULL_EVENT_RETRY:
        clear_bar(u);
        fprintf(stderr, "  retry     %s (in %.1f s)\n", p->message, p->retry_in_s);
        break;
    case MOLMO_PULL_EVENT_DONE:
        clear_bar(u);
        fprintf(stderr, "done: %s downloaded in %s\n", human((double)p->received, a, sizeof a),
                duration(p->elapsed_s, b, sizeof b));
        break;
    }
    return 0;
}

/* ---- Ctrl-C: stop cleanly (the partial file stays for the next run); twice: now ---------- */

static volatile int interrupted;

static void on_sigint(int sig) {
    if (interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupted = 1;
}

static int pull(const char *repo_id, molmo_pull_params *pp, int quiet, int print_dir) {
    ui u = {.tty = isatty(STDERR_FILENO), .quiet = quiet};
    pp->progress = on_progress;
    pp->progress_user = &u;
    pp->cancel = &interrupted;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    char dir[4096];
    molmo_error err;
    molmo_status s = molmo_pull(repo_id, pp, dir, sizeof dir, &err);
    sigaction(SIGINT, &old, NULL);
    clear_bar(&u);
    if (s == MOLMO_ERR_CANCELLED) {
        fprintf(stderr, "molmo: interrupted; run the same command again to resume\n");
        return 130;
    }
    if (s != MOLMO_OK) return cli_fail(&err, NULL);
    if (print_dir) printf("%s\n", dir);
    return 0;
}

int cli_pull_if_missing(const char *model) {
    char dir[4096];
    molmo_error err;
    if (molmo_resolve_model_path(model, dir, sizeof dir, &err) == MOLMO_OK ||
        err.code != MOLMO_ERR_NOT_FOUND)
        return 0; /* present, or a problem that loading will report */
    fprintf(stderr, "molmo: %s is not in the Hugging Face cache; pulling it (--pull)\n", model);
    molmo_pull_params pp = molmo_pull_default_params();
    return pull(model, &pp, 0, 0); /* the snapshot path is not part of run's output */
}

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {
        {"revision", required_argument, 0, 'r'}, {"include", required_argument, 0, 'I'},
        {"offline", no_argument, 0, 'o'},        {"endpoint", required_argument, 0, 'e'},
        {"cache-dir", required_argument, 0, 'c'}, {"retries", required_argument, 0, 'R'},
        {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    molmo_pull_params pp = molmo_pull_default_params();
    const char *include[64];
    int quiet = 0, c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:I:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'r': pp.revision = optarg; break;
        case 'I':
            if (pp.n_include == 64) return fprintf(stderr, "molmo: at most 64 --include\n"), 2;
            include[pp.n_include++] = optarg;
            break;
        case 'o': pp.offline = 1; break;
        case 'e': pp.endpoint = optarg; break;
        case 'c': pp.cache_dir = optarg; break;
        case 'R': if (!cli_parse_int("--retries", optarg, 0, 100, &v)) return 2;
                  pp.max_retries = (int)v; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "molmo pull: need exactly one REPO_ID, e.g. molmo pull "
                        "allenai/MolmoE-1B-0924 (see molmo pull --help)\n");
        return 2;
    }
    pp.include = include;
    return pull(argv[optind], &pp, quiet, 1);
}

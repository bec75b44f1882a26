/* bench_tokenizer.c — tokenizer load time and single-thread encode throughput, with the Hugging
 * Face `tokenizers` library (Rust, through its Node binding: bench/node/) measured in the same
 * run on the same input as the baseline, and its ids compared with ours.
 *
 * usage: bench_tokenizer [--tokenizer PATH] [--text FILE] [--size BYTES] [--reps N] [--no-node]
 *                        [--save-text FILE]
 *   PATH   tokenizer directory or file (default: tests/data/tokenizers/qwen2-molmo, the 7 MB
 *          Qwen2 tokenizer.json of Molmo-7B-D)
 *   FILE   text to encode (default: a generated mix of English prose, C code and CJK, 1 MiB)
 * The baseline needs `npm install` in bench/node once; without it the bench says so and runs
 * the C side only. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "molmo.h"
#include "text/tokenizer.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* ---- the generated text: deterministic, so runs and machines compare ---------------------- */

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}
/* Zipf-like pick in [0, n): small indexes much more often. */
static uint32_t zipf(uint32_t n) {
    double u = (rnd(1u << 30) + 1.0) / (double)(1u << 30);
    return (uint32_t)(pow((double)n, u) - 1.0) % n;
}

static const char *const words[] = {
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or",
    "had", "by", "not", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all",
    "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do",
    "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would",
    "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look",
    "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people", "my",
    "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now",
    "find", "image", "model", "picture", "shows", "left", "right", "small", "large", "red",
    "blue", "green", "person", "standing", "table", "window", "street", "building", "tree",
    "don't", "it's", "we're", "they've", "I'll", "can't", "network", "training", "language",
    "vision", "token", "encoder", "decoder", "attention", "layer", "weights", "research"};
static const char *const syll[] = {"ka", "ti", "ro", "men", "sa", "lu", "ver", "on", "da", "pi",
                                   "gra", "sto", "ne", "qui", "tha", "bel", "mor", "ix", "ul",
                                   "zen", "pra", "dor", "ce", "fy"};
#define N_WORDS (sizeof words / sizeof words[0])
#define N_RARE 6000

static void put(molmo_tok_bytes *b, const char *s) { molmo_tok_bytes_append(b, s, strlen(s)); }

static void rare_word(molmo_tok_bytes *b, uint32_t k) {
    uint64_t save = rng;
    rng = 0x9E3779B97F4A7C15ull * (k + 1);
    int n = 2 + (int)rnd(3);
    for (int i = 0; i < n; i++) put(b, syll[rnd(sizeof syll / sizeof syll[0])]);
    rng = save;
}

static void english(molmo_tok_bytes *b) {
    int sentences = 2 + (int)rnd(5);
    for (int s = 0; s < sentences; s++) {
        int n = 5 + (int)rnd(16);
        for (int i = 0; i < n; i++) {
            if (i) put(b, rnd(12) ? " " : ", ");
            size_t mark = b->n;
            if (rnd(5) == 0) rare_word(b, zipf(N_RARE));
            else if (rnd(25) == 0) {
                char num[16];
                snprintf(num, sizeof num, "%u", rnd(100000));
                put(b, num);
            } else put(b, words[zipf(N_WORDS)]);
            if (i == 0 && b->p[mark] >= 'a' && b->p[mark] <= 'z') b->p[mark] -= 32;
        }
        put(b, rnd(8) ? ". " : rnd(2) ? "? " : "! ");
    }
}

static const char *code_word(void) {
    const char *w;
    do w = words[zipf(N_WORDS)];
    while (strchr(w, '\'') || w[0] < 'a');
    return w;
}

static void ident(molmo_tok_bytes *b) {
    put(b, code_word());
    if (rnd(2)) {
        put(b, "_");
        put(b, code_word());
    }
}

static void code(molmo_tok_bytes *b) {
    int lines = 3 + (int)rnd(10), depth = 1;
    put(b, "static int ");
    ident(b);
    put(b, "(const char *buf, size_t len) {\n");
    for (int l = 0; l < lines; l++) {
        for (int d = 0; d < depth; d++) put(b, "    ");
        char num[32];
        switch (rnd(6)) {
        case 0: put(b, "for (size_t i = 0; i < len; i++) {\n"); depth++; continue;
        case 1: put(b, "if ("); ident(b); put(b, " == NULL) return -1;\n"); break;
        case 2:
            ident(b);
            snprintf(num, sizeof num, " = %u * ", rnd(4096));
            put(b, num);
            ident(b);
            put(b, "(buf[i], 0x");
            snprintf(num, sizeof num, "%X);\n", rnd(65536));
            put(b, num);
            break;
        case 3: put(b, "// "); english(b); put(b, "\n"); break;
        case 4: put(b, "result += "); ident(b); put(b, "[i] >> 2;\n"); break;
        default:
            if (depth > 1) {
                depth--;
                b->n -= 4;
                put(b, "}\n");
            } else {
                put(b, "return 0;\n");
            }
        }
    }
    while (depth-- > 1) put(b, "    }\n");
    put(b, "}\n");
}

static void cjk(molmo_tok_bytes *b) {
    int n = 8 + (int)rnd(40);
    for (int i = 0; i < n; i++) {
        uint32_t cp = rnd(6) == 0 ? 0x3042 + 2 * rnd(40) : 0x4E00 + zipf(3500);
        char u[3] = {(char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)),
                     (char)(0x80 | (cp & 0x3F))};
        molmo_tok_bytes_append(b, u, 3);
        if (rnd(12) == 0) put(b, "，");
    }
    put(b, "。");
}

static void make_text(molmo_tok_bytes *b, size_t size) {
    while (b->n < size) {
        uint32_t r = rnd(10);
        if (r < 5) english(b);
        else if (r < 8) code(b);
        else cjk(b);
        put(b, "\n\n");
    }
    while (b->n > size && (b->p[size] & 0xC0) == 0x80) size--; /* whole characters */
    b->n = size;
}

/* ---- the Node baseline ---------------------------------------------------------------------- */

typedef struct baseline {
    int ran;
    double load_ms[32], encode_ms[32], chunks_ms[32];
    int n_load, n_encode, n_chunks;
} baseline;

static int parse_list(const char *json, const char *key, double *v, int cap) {
    const char *p = strstr(json, key);
    if (!p || !(p = strchr(p, '['))) return 0;
    int n = 0;
    for (p++; *p && *p != ']' && n < cap;) {
        char *end;
        v[n++] = strtod(p, &end);
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

static int run_node(const char *root, const char *tok_json, const char *text_path, int reps,
                    const char *ids_path, baseline *bl) {
    char dir[4096], cmd[16384], line[8192];
    snprintf(dir, sizeof dir, "%s/bench/node/node_modules/tokenizers", root);
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("baseline    skipped: %s is missing (run `npm install` in %s/bench/node)\n", dir,
               root);
        return 0;
    }
    snprintf(cmd, sizeof cmd, "node '%s/bench/node/baseline.js' '%s' '%s' %d '%s'", root, tok_json,
             text_path, reps, ids_path);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    line[0] = '\0';
    while (fgets(line, sizeof line, p) && line[0] != '{') {}
    int rc = pclose(p);
    if (rc != 0 || line[0] != '{') {
        printf("baseline    failed: `%s` exited with %d\n", cmd, rc);
        return 0;
    }
    bl->n_load = parse_list(line, "\"load_ms\"", bl->load_ms, 32);
    bl->n_encode = parse_list(line, "\"encode_ms\"", bl->encode_ms, 32);
    bl->n_chunks = parse_list(line, "\"chunks_ms\"", bl->chunks_ms, 32);
    bl->ran = bl->n_load > 0 && bl->n_encode > 0 && bl->n_chunks > 0;
    return bl->ran;
}

/* Compares the baseline's ids (int32 LE file) with ours; returns the index of the first
 * difference, or -1 when identical. */
static long compare_ids(const char *path, const int32_t *ids, size_t n, size_t *their_n) {
    FILE *f = fopen(path, "rb");
    *their_n = 0;
    if (!f) return 0;
    long first = -1;
    int32_t v;
    size_t i = 0;
    while (fread(&v, 4, 1, f) == 1) {
        if (first < 0 && (i >= n || ids[i] != v)) first = (long)i;
        i++;
    }
    fclose(f);
    *their_n = i;
    if (first < 0 && i != n) first = (long)(i < n ? i : n);
    return first;
}

/* ---- main -- */

static void repo_root(char *out, size_t cap) {
    snprintf(out, cap, "%s", __FILE__); /* <root>/bench/bench_tokenizer.c */
    for (int k = 0; k < 2; k++) {
        char *s = strrchr(out, '/');
        if (s) *s = '\0';
        else snprintf(out, cap, ".");
    }
}

typedef struct opts {
    char root[4096], tokenizer[4096];
    const char *text_file, *save_text;
    size_t size;
    int reps, node;
} opts;

static int parse_args(int argc, char **argv, opts *o) {
    repo_root(o->root, sizeof o->root);
    snprintf(o->tokenizer, sizeof o->tokenizer, "%s/tests/data/tokenizers/qwen2-molmo", o->root);
    o->text_file = o->save_text = NULL;
    o->size = 1 << 20;
    o->reps = 5;
    o->node = 1;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--tokenizer") && more)
            snprintf(o->tokenizer, sizeof o->tokenizer, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--text") && more) o->text_file = argv[++i];
        else if (!strcmp(argv[i], "--size") && more) o->size = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && more) o->reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-node")) o->node = 0;
        else if (!strcmp(argv[i], "--save-text") && more) o->save_text = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--tokenizer PATH] [--text FILE] [--size BYTES] "
                            "[--reps N] [--no-node] [--save-text FILE]\n", argv[0]);
            return 0;
        }
    }
    if (o->reps < 1 || o->reps > 32) o->reps = 5;
    return 1;
}

static int get_text(const opts *o, molmo_tok_bytes *text) {
    if (!o->text_file) {
        make_text(text, o->size);
    } else {
        FILE *f = fopen(o->text_file, "rb");
        if (!f) return fprintf(stderr, "bench_tokenizer: cannot open %s\n", o->text_file), 0;
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) molmo_tok_bytes_append(text, buf, got);
        fclose(f);
    }
    if (o->save_text) {
        FILE *f = fopen(o->save_text, "wb");
        if (!f || fwrite(text->p, 1, text->n, f) != text->n)
            fprintf(stderr, "bench_tokenizer: cannot write %s\n", o->save_text);
        if (f) fclose(f);
    }
    return 1;
}

/* What the C side measured. */
typedef struct results {
    double load_ms[32], enc_ms[32], par_ms[32], ref_ms, dec_ms;
    molmo_tok_ids ids, par, ref;
    molmo_tok_bytes dec;
    size_t n_par;
} results;

/* Paragraphs: cut after every run of two or more newlines (baseline.js cuts the same way). */
static size_t paragraphs(const molmo_tok_bytes *t, size_t *cuts) {
    size_t n = 0;
    cuts[n++] = 0;
    for (size_t i = 2; i < t->n; i++)
        if (t->p[i - 1] == '\n' && t->p[i - 2] == '\n' && t->p[i] != '\n') cuts[n++] = i;
    cuts[n] = t->n;
    return n;
}

static void measure(const opts *o, const molmo_tokenizer *tok, const molmo_tok_bytes *text,
                    results *r) {
    molmo_error err;
    size_t *cuts = malloc((text->n / 2 + 2) * sizeof *cuts);
    r->n_par = paragraphs(text, cuts);
    for (int k = 0; k < o->reps; k++) {
        r->ids.n = 0;
        double t0 = now_ms();
        molmo_tok_encode_ex(tok, text->p, text->n, 0, &r->ids, NULL, NULL, &err);
        r->enc_ms[k] = now_ms() - t0;
    }
    for (int k = 0; k < o->reps; k++) {
        r->par.n = 0;
        double t0 = now_ms();
        for (size_t c = 0; c < r->n_par; c++)
            molmo_tok_encode_ex(tok, text->p + cuts[c], cuts[c + 1] - cuts[c], 0, &r->par, NULL,
                                NULL, &err);
        r->par_ms[k] = now_ms() - t0;
    }
    double t0 = now_ms();
    molmo_tok_encode_ex(tok, text->p, text->n, MOLMO_TOK_ENC_REFERENCE, &r->ref, NULL, NULL, &err);
    r->ref_ms = now_ms() - t0;
    t0 = now_ms();
    molmo_tok_decode_append(tok, r->ids.v, r->ids.n, MOLMO_DECODE_NO_CLEANUP, &r->dec, &err);
    r->dec_ms = now_ms() - t0;
    free(cuts);
}

/* "mean ± sd unit" of n timings of `mb` megabytes (unit MB/s) or of milliseconds (mb = 0). */
static void cell(char *out, size_t cap, const double *ms, int n, double mb) {
    double v[32], mean, sd;
    for (int i = 0; i < n; i++) v[i] = mb > 0 ? mb / (ms[i] / 1e3) : ms[i];
    stats(v, n, &mean, &sd);
    snprintf(out, cap, mb > 0 ? "%8.2f ± %-5.2f MB/s" : "%8.1f ± %-5.1f ms", mean, sd);
}

/* Runs the baseline and fills its three cells and a note on the ids; 0 when it did not run. */
static int baseline_cells(const opts *o, const char *tok_json, const molmo_tok_bytes *text,
                          const results *r, char cells[3][64], char *note, size_t note_cap) {
    char text_path[] = "/tmp/molmo_bench_text_XXXXXX", ids_path[] = "/tmp/molmo_bench_ids_XXXXXX";
    int fd = mkstemp(text_path), fd2 = mkstemp(ids_path), ran = 0;
    baseline bl = {0};
    double mb = (double)text->n / 1e6;
    if (fd >= 0 && fd2 >= 0 && write(fd, text->p, text->n) == (ssize_t)text->n &&
        run_node(o->root, tok_json, text_path, o->reps, ids_path, &bl)) {
        cell(cells[0], 64, bl.load_ms, bl.n_load, 0);
        cell(cells[1], 64, bl.encode_ms, bl.n_encode, mb);
        cell(cells[2], 64, bl.chunks_ms, bl.n_chunks, mb);
        molmo_tok_ids both = {0};
        molmo_tok_ids_reserve(&both, r->ids.n + r->par.n);
        memcpy(both.v, r->ids.v, r->ids.n * 4);
        memcpy(both.v + r->ids.n, r->par.v, r->par.n * 4);
        size_t their_n;
        long diff = compare_ids(ids_path, both.v, r->ids.n + r->par.n, &their_n);
        if (diff < 0)
            snprintf(note, note_cap, "ids identical to the baseline's (%zu whole text + %zu by "
                     "paragraph)", r->ids.n, r->par.n);
        else
            snprintf(note, note_cap, "ids DIFFER from the baseline's at index %ld (%zu vs %zu "
                     "ids)", diff, r->ids.n + r->par.n, their_n);
        molmo_tok_ids_free(&both);
        ran = 1;
    }
    if (fd >= 0) close(fd), unlink(text_path);
    if (fd2 >= 0) close(fd2), unlink(ids_path);
    return ran;
}

static void report(const opts *o, const molmo_tokenizer_info *info, const molmo_tok_bytes *text,
                   const results *r) {
    struct stat st;
    double mb = (double)text->n / 1e6;
    stat(info->path, &st);
    printf("tokenizer   %s (%.1f MB, %d ids, %d merges)\n", info->path, st.st_size / 1e6,
           info->n_vocab, info->n_merges);
    printf("text        %s, %zu bytes, %zu paragraphs, %zu ids (%.2f bytes/id)\n",
           o->text_file ? o->text_file : "generated English/C/CJK mix", text->n, r->n_par,
           r->ids.n, (double)text->n / (double)(r->ids.n ? r->ids.n : 1));
    printf("reference path ids %s the fast path's; decode(encode(text)) %s the text\n",
           r->ref.n == r->ids.n && !memcmp(r->ref.v, r->ids.v, r->ids.n * 4) ? "equal"
                                                                          : "DIFFER from",
           r->dec.n == text->n && !memcmp(r->dec.p, text->p, text->n) ? "equals"
                                                                      : "differs from");
    char bl[3][64] = {"n/a", "n/a", "n/a"}, note[160] = "", c[64];
    if (o->node) baseline_cells(o, info->path, text, r, bl, note, sizeof note);
    printf("\n| %-44s | %-22s | %-24s |\n", "single thread, mean ± sd over runs", "molmo.c",
           "HF tokenizers (baseline)");
    printf("|----------------------------------------------|------------------------|"
           "--------------------------|\n");
    cell(c, sizeof c, r->load_ms, o->reps, 0);
    printf("| %-44s | %-22s | %-24s |\n", "load tokenizer.json (+ tokenizer_config.json)", c,
           bl[0]);
    cell(c, sizeof c, r->enc_ms, o->reps, mb);
    printf("| %-44s | %-22s | %-24s |\n", "encode the text as one string", c, bl[1]);
    cell(c, sizeof c, r->par_ms, o->reps, mb);
    printf("| %-44s | %-22s | %-24s |\n", "encode paragraph by paragraph (1 call each)", c,
           bl[2]);
    cell(c, sizeof c, &r->ref_ms, 1, mb);
    printf("| %-44s | %-22s | %-24s |\n", "encode, reference path (PCRE2, no BPE cache)", c, "");
    snprintf(c, sizeof c, "%8.1f MB/s", r->dec.n / 1e6 / (r->dec_ms / 1e3));
    printf("| %-44s | %-22s | %-24s |\n", "decode (MB of text out)", c, "");
    if (note[0]) printf("\n%s\n", note);
}

int main(int argc, char **argv) {
    static opts o;
    if (!parse_args(argc, argv, &o)) return 2;
    static results r;
    molmo_error err = {0};
    molmo_tokenizer *tok = NULL;
    for (int k = 0; k < o.reps; k++) {
        molmo_tokenizer_free(tok);
        tok = NULL;
        double t0 = now_ms();
        if (molmo_tokenizer_load(o.tokenizer, &tok, &err) != MOLMO_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        r.load_ms[k] = now_ms() - t0;
    }
    molmo_tokenizer_info info;
    molmo_tokenizer_get_info(tok, &info);
    molmo_tok_bytes text = {0};
    if (!get_text(&o, &text)) return 1;
    measure(&o, tok, &text, &r);
    report(&o, &info, &text, &r);
    molmo_tok_bytes_free(&r.dec);
    molmo_tok_ids_free(&r.ref);
    molmo_tok_ids_free(&r.ids);
    molmo_tok_ids_free(&r.par);
    molmo_tok_bytes_free(&text);
    molmo_tokenizer_free(tok);
    return 0;
}

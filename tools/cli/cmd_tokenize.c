/* cmd_tokenize.c — `molmo tokenize -m PATH [--json] [--decode] [--prompt] [TEXT | -]`: what a
 * tokenizer makes of a text (ids and token strings), or of a list of ids (--decode). For users
 * debugging a prompt and for comparing with another runtime token by token. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: molmo tokenize -m PATH [--json] [--prompt] [TEXT | -]\n"
            "       molmo tokenize -m PATH --decode [--skip-special] [--json] [IDS | -]\n"
            "\n"
            "Tokenizes TEXT (or standard input with '-', read verbatim: every byte and newline\n"
            "kept) the way Molmo does (no special tokens added) and prints one line per token:\n"
            "id and token string. PATH is a model directory or Hugging Face repo id, a\n"
            "tokenizer.json, or a directory holding one.\n"
            "\n"
            "  -m, --model PATH    the tokenizer (required)\n"
            "  --json              print {\"ids\":[...],\"tokens\":[...]}\n"
            "                      (with --decode: {\"text\":...})\n"
            "  --prompt            tokenize TEXT as a Molmo user turn: \" User: TEXT Assistant:\"\n"
            "  --decode            the input is token ids (separated by spaces, commas or\n"
            "                      brackets); print the text they decode to\n"
            "  --skip-special      with --decode: drop special tokens (<|endoftext|>, ...)\n"
            "  -h, --help          this help\n"
            "\n"
            "Invalid UTF-8 in the text is replaced by U+FFFD (one per invalid sequence) first.\n");
}

/* Reads all of stdin; returns NULL (message printed) on failure. */
static char *read_stdin(size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    if (!buf || ferror(stdin)) {
        fprintf(stderr, "molmo: cannot read standard input\n");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* s[0..n) as a JSON string (the texts are valid UTF-8: decode output, token strings). */
static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int print_tokens(const molmo_tokenizer *tok, const int32_t *ids, size_t n, int json) {
    if (json) fputs("{\"ids\":[", stdout);
    for (size_t i = 0; json && i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    if (json) fputs("],\"tokens\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = molmo_tokenizer_id_to_token(tok, ids[i], &len);
        if (json) {
            if (i) putchar(',');
            json_string(t ? t : "", t ? len : 0);
        } else {
            printf("%8d  ", ids[i]);
            json_string(t ? t : "", t ? len : 0);
            putchar('\n');
        }
    }
    if (json) fputs("]}\n", stdout);
    else printf("%zu tokens\n", n);
    return 0;
}

/* "1, 2 3" or "[1,2,3]" -> ids. Returns the count, or -1 (message printed). */
static long parse_ids(const char *s, size_t len, int32_t **out) {
    size_t cap = len / 2 + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' || c == '[' || c == ']') {
            i++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(s + i, &end, 10);
        if (end == s + i || errno || v < INT32_MIN || v > INT32_MAX) {
            fprintf(stderr, "molmo: --decode expects integer token ids, got '%.20s'\n", s + i);
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        i = (size_t)(end - s);
    }
    *out = ids;
    return (long)n;
}

static int run_decode(const molmo_tokenizer *tok, const char *in, size_t len, unsigned flags,
                      int json) {
    int32_t *ids = NULL;
    long n = parse_ids(in, len, &ids);
    if (n < 0) return 1;
    molmo_error err;
    size_t out_len;
    int rc = 1;
    char *text = NULL;
    if (molmo_tokenizer_decode(tok, ids, (size_t)n, flags, NULL, 0, &out_len, &err) != MOLMO_OK) {
        cli_fail(&err, NULL);
    } else if (!(text = malloc(out_len + 1))) {
        cli_fail(NULL, "out of memory");
    } else if (molmo_tokenizer_decode(tok, ids, (size_t)n, flags, text, out_len + 1, &out_len,
                                      &err) != MOLMO_OK) {
        cli_fail(&err, NULL);
    } else {
        if (json) {
            fputs("{\"text\":", stdout);
            json_string(text, out_len);
            fputs("}\n", stdout);
        } else {
            fwrite(text, 1, out_len, stdout);
            putchar('\n');
        }
        rc = 0;
    }
    free(text);
    free(ids);
    return rc;
}

static int run_encode(const molmo_tokenizer *tok, const char *in, size_t len, int prompt,
                      int json) {
    molmo_error err;
    size_t n = 0;
    molmo_status st = prompt ? molmo_tokenizer_encode_prompt(tok, &in, &len, 1, NULL, 0, &n, &err)
                             : molmo_tokenizer_encode(tok, in, len, NULL, 0, &n, &err);
    int32_t *ids = st == MOLMO_OK ? malloc((n ? n : 1) * sizeof *ids) : NULL;
    if (st == MOLMO_OK && !ids) return cli_fail(NULL, "out of memory");
    if (st == MOLMO_OK)
        st = prompt ? molmo_tokenizer_encode_prompt(tok, &in, &len, 1, ids, n, &n, &err)
                    : molmo_tokenizer_encode(tok, in, len, ids, n, &n, &err);
    int rc = st == MOLMO_OK ? print_tokens(tok, ids, n, json) : cli_fail(&err, NULL);
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL;
    int json = 0, decode = 0, prompt = 0;
    unsigned flags = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
        {"decode", no_argument, 0, 'd'},      {"skip-special", no_argument, 0, 's'},
        {"prompt", no_argument, 0, 'p'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'd') decode = 1;
        else if (c == 's') flags |= MOLMO_DECODE_SKIP_SPECIAL;
        else if (c == 'p') prompt = 1;
        else if (c == 'h') return usage(stdout), 0;
        else return usage(stderr), 2;
    }
    if (!model || optind != argc - 1 || (decode && prompt)) {
        usage(stderr);
        return 2;
    }
    char *input = NULL;
    size_t len;
    if (!strcmp(argv[optind], "-")) {
        if (!(input = read_stdin(&len))) return 1;
    } else {
        len = strlen(argv[optind]);
    }
    molmo_error err;
    molmo_tokenizer *tok = NULL;
    int rc;
    if (molmo_tokenizer_load(model, &tok, &err) != MOLMO_OK) {
        rc = cli_fail(&err, NULL);
    } else {
        const char *in = input ? input : argv[optind];
        rc = decode ? run_decode(tok, in, len, flags, json)
                    : run_encode(tok, in, len, prompt, json);
    }
    molmo_tokenizer_free(tok);
    free(input);
    return rc;
}

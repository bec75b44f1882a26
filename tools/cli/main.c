/* main.c — `molmo` command dispatcher: `molmo <command> [options]`. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One line per command; `molmo --help` prints them in this order. */
static const cli_command commands[] = {
    {"run", "answer a prompt about an image (or none), streaming the answer", cmd_run},
    {"point", "point at things in an image (pixel coordinates, --draw)", cmd_point},
    {"count", "count things in an image by pointing; the stated count and the points", cmd_count},
    {"caption", "describe an image in detail (Molmo's long caption)", cmd_caption},
    {"points", "parse a pointing/counting answer from stdin into JSON points", cmd_points},
    {"info", "show a model's family, dimensions, parameters, files and memory", cmd_info},
    {"tokenize", "show the token ids and strings of a text (or decode ids)", cmd_tokenize},
    {"pull", "download a model from the Hugging Face hub into the cache (resumable)", cmd_pull},
    {"convert", "write a model as one GGUF file (f32, f16, bf16, q8_0, q4_0, q6_k, q4_k)", cmd_convert},
    {"bench", "measure this machine and molmo.c on the released models' shapes", cmd_bench},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f,
            "molmo %s — Molmo vision-language models in C\n"
            "\n"
            "usage: molmo <command> [options]\n"
            "       molmo <command> --help     options of one command\n"
            "       molmo --version\n"
            "\n"
            "commands:\n",
            molmo_version());
    for (int i = 0; i < n_commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "MODEL arguments are a checkpoint directory (config.json + *.safetensors), a GGUF\n"
            "file written by `molmo convert`, or a Hugging Face repo id such as\n"
            "allenai/MolmoE-1B-0924, looked up in the Hugging Face cache ($HF_HUB_CACHE,\n"
            "$HF_HOME/hub or ~/.cache/huggingface/hub); `molmo pull` downloads one there,\n"
            "--pull on the generating commands does it on demand, and a GGUF converted from\n"
            "that repo into ~/.cache/molmo ($MOLMO_GGUF_DIR) is used instead when present.\n"
            "\n"
            "Kernels are picked at run time: AVX-512 (int8 and bf16-weight GEMMs on AMX tiles\n"
            "where the CPU has them), AVX2 (int8 products on AVX-VNNI where the CPU has it),\n"
            "or plain C; the SIMD ones compute quantized matmuls to the same bits, float ones\n"
            "to f32 accuracy. MOLMO_KERNELS=ref|avx2|avx512|amx caps the choice, MOLMO_AMX=0\n"
            "turns AMX off, MOLMO_AVX_VNNI=0 AVX-VNNI.\n"
            "Weights are memory-mapped; commands that run the model map all their pages up\n"
            "front when the model takes at most half of the RAM (MOLMO_PREFAULT=0: on first use).\n"
            "--no-mmap (generating commands, bench) reads them into the process's memory\n"
            "instead: their size in RAM, a faster decode where the page cache reads slowly;\n"
            "there q8_0 and q4_0 matrices are also interleaved by 16 rows for the SIMD\n"
            "kernels (same results, faster q8_0 decode and prefill; --no-repack keeps the\n"
            "file's layout).\n"
            "Numerics are the official fp32 model's by default; two options of the generating\n"
            "commands and bench trade a little of that for speed and memory, with their\n"
            "accuracy measured in docs/gguf.md: --kv-type f16 (half the KV cache) and\n"
            "--bf16-activations (bf16 inputs for bf16 matmuls and attention; on AMX-BF16\n"
            "CPUs quantized GEMMs too, with the weights rounded to bf16).\n");
}

int cli_fail(const molmo_error *err, const char *fmt, ...) {
    fputs("molmo: ", stderr);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (err) fputs(": ", stderr);
    }
    if (err) fputs(err->msg, stderr);
    fputc('\n', stderr);
    return 1;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "molmo: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("molmo %s\n", molmo_version());
        return 0;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "molmo: unknown command '%s' (see molmo --help)\n", cmd);
    return 2;
}

/* cli.h — the `molmo` program: one function per command, shared option helpers.
 * Commands use only include/molmo.h (STYLE.md §1). */
#ifndef MOLMO_CLI_H
#define MOLMO_CLI_H

#include "molmo.h"

/* A command gets argv with argv[0] = the command name; returns the process exit status. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    const char *summary;
    cli_cmd_fn run;
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_point(int argc, char **argv);
int cmd_count(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_points(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* `molmo run --pull`: pulls MODEL (a repo id) when it is not in the cache; 0 when it is there
 * now (or is no repo id at all: loading reports that), else the exit status (cmd_pull.c). */
int cli_pull_if_missing(const char *model);

/* Prints the result of a generation as one JSON line (molmo run --json's format). */
void cli_print_generation_json(const molmo_model *m, const molmo_generation *g, double load_ms);

/* Prints "molmo: <msg>" (or the error's message) to stderr and returns 1. */
int cli_fail(const molmo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a non-negative integer option value; returns 0 and prints an error when invalid. */
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);

#endif

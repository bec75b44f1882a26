/* bench_report.h — the figures `molmo bench` collects and how they are printed (a markdown
 * table with the targets of issue #8 beside them, or one JSON object). */
#ifndef MOLMO_CLI_BENCH_REPORT_H
#define MOLMO_CLI_BENCH_REPORT_H

#include "molmo.h"

#define BENCH_MAX_THREADS 16
#define BENCH_MAX_ROWS 96

/* One line of the table. Numbers are 0 where they do not apply. */
typedef struct bench_row {
    const char *stage;           /* "machine", "vision", "prefill", "decode", "e2e"          */
    int threads;
    char measure[96];            /* what was measured, in words                            */
    double value, sd;            /* the figure and its standard deviation                  */
    const char *unit;            /* "s", "tok/s", "GB/s", "GFLOP/s", "GOP/s"               */
    double rate;                 /* the work rate behind it (GFLOP/s, GOP/s, GB/s)         */
    const char *rate_unit;
    char rate_note[96];          /* e2e: the time per part                                 */
    double pct_fma, pct_vnni, pct_bf16, pct_read; /* % of the same run's baselines          */
    double pct_wread;            /* % of the read bandwidth of the weights' own pages       */
    double bound;                /* the best `value` those baselines allow (in `unit`): the
                                    instruction peak for the weight type, or the read
                                    bandwidth for decode; 0: none                           */
    double target;               /* 0: no target for this model/type                        */
    int target_max;              /* 1: value <= target passes; 0: value >= target           */
    char target_note[24];        /* "q8_0", "int8 ViT", ...                                 */
    const char *verdict;         /* "pass", "miss", "n/a" (not at all cores) or ""          */
    double peak_rss_mib;         /* resident memory high-water mark during the stage (MiB;
                                    counts the mapped weights it touched), 0: unknown       */
    double private_mib;          /* anonymous (private) resident memory at its end (MiB)    */
} bench_row;

typedef struct bench_report {
    const char *model_label;     /* "molmoe-1b (allenai/MolmoE-1B-0924 shapes)" or the path */
    const char *model_path;
    const char *weights;         /* "random", "zeros" or NULL (a model from disk)           */
    const char *llm_type, *vision_type;
    const char *kv_type;         /* the KV cache's type ("f32", "f16")                      */
    int bf16_act;                /* bf16 activations for the bf16-weight matmuls            */
    int no_mmap;                 /* weights read into the process's memory (--no-mmap)      */
    int n_interleaved;           /* q8_0 / q4_0 matrices interleaved by 16 rows there       */
    double model_gb;             /* weights as stored                                       */
    int image_w, image_h, n_crops, n_prompt, tokens, reps;
    const char *prompt;
    molmo_bench_machine machine[BENCH_MAX_THREADS]; /* per thread count, in order          */
    int n_machine;
    bench_row rows[BENCH_MAX_ROWS];
    int n_rows;
} bench_report;

/* The build that ran: "commit 2ad7c13d1e0f (gcc 12.2.0, optimized)". */
const char *bench_build(void);

/* Resident memory per stage: bench_mem_begin() before it (resets the kernel's high-water
 * mark where Linux allows), bench_mem_end() after it sets rows [first, n_rows). */
void bench_mem_begin(void);
void bench_mem_end(bench_report *r, int first);

/* A new row of the report (zeroed), or NULL when the table is full. */
bench_row *bench_add_row(bench_report *r, const char *stage, int threads);

/* Sets the row's target and verdict: judged only when the row ran on all physical cores. */
void bench_judge(bench_row *row, double target, int target_max, const char *note);

void bench_print_markdown(const bench_report *r);
void bench_print_json(const bench_report *r);

#endif

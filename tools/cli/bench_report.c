/* bench_report.c — printing what `molmo bench` measured: a markdown table (figure ± sd, the
 * work rate, the ratios to the same run's baselines, the target and pass/miss), or
 * one JSON object with the same numbers for scripts. */
#include "bench_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "molmo_git_commit.h" /* generated at every build (cmake/git_commit.cmake) */

const char *bench_build(void) {
    static char s[160];
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown compiler";
#endif
#if defined(__OPTIMIZE__)
    const char *opt = "optimized";
#else
    const char *opt = "not optimized";
#endif
#if defined(__SANITIZE_ADDRESS__)
    const char *san = ", ASan";
#else
    const char *san = "";
#endif
    snprintf(s, sizeof s, "commit %s (%s, %s%s)", MOLMO_GIT_COMMIT, cc, opt, san);
    return s;
}

/* kB of one "Name:   N kB" line of /proc/self/status, or -1. */
static double status_kb(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    const size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':') {
            kb = strtod(line + n + 1, NULL);
            break;
        }
    fclose(f);
    return kb;
}

void bench_mem_begin(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": reset VmHWM to the current RSS */
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

void bench_mem_end(bench_report *r, int first) {
    const double peak = status_kb("VmHWM"), anon = status_kb("RssAnon");
    for (int i = first; i < r->n_rows; i++) {
        r->rows[i].peak_rss_mib = peak > 0 ? peak / 1024 : 0;
        r->rows[i].private_mib = anon > 0 ? anon / 1024 : 0;
    }
}

bench_row *bench_add_row(bench_report *r, const char *stage, int threads) {
    if (r->n_rows >= BENCH_MAX_ROWS) return NULL;
    bench_row *w = &r->rows[r->n_rows++];
    memset(w, 0, sizeof *w);
    w->stage = stage;
    w->threads = threads;
    w->verdict = "";
    return w;
}

void bench_judge(bench_row *w, double target, int target_max, const char *note) {
    w->target = target;
    w->target_max = target_max;
    snprintf(w->target_note, sizeof w->target_note, "%s", note);
    if (w->threads != molmo_bench_physical_cores()) w->verdict = "n/a";
    else if (target_max ? w->value <= target : w->value >= target) w->verdict = "pass";
    else w->verdict = "miss";
}

/* A figure with as many decimals as keep three significant digits or so. */
static void fmt_num(char *out, size_t cap, double v) {
    const double a = v < 0 ? -v : v;
    snprintf(out, cap, a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f", v);
}

static void fmt_mib(char *out, size_t cap, double mib) {
    if (mib >= 1024) snprintf(out, cap, "%.2f GiB", mib / 1024);
    else snprintf(out, cap, "%.0f MiB", mib);
}

static void cell_value(const bench_row *w, char *out, size_t cap) {
    char v[32], s[32];
    fmt_num(v, sizeof v, w->value);
    if (w->sd > 0) {
        fmt_num(s, sizeof s, w->sd);
        snprintf(out, cap, "%s ± %s %s", v, s, w->unit);
    } else {
        snprintf(out, cap, "%s %s", v, w->unit);
    }
}

static void cell_rate(const bench_row *w, char *out, size_t cap) {
    char v[32];
    out[0] = '\0';
    if (w->rate_note[0]) snprintf(out, cap, "%s", w->rate_note);
    else if (w->rate > 0) {
        fmt_num(v, sizeof v, w->rate);
        snprintf(out, cap, "%s %s", v, w->rate_unit);
    }
}

static void append(char *out, size_t cap, const char *label, double pct) {
    if (pct <= 0) return;
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "%s%.0f%% of %s", n ? ", " : "", pct, label);
}

static void cell_ratio(const bench_row *w, char *out, size_t cap) {
    out[0] = '\0';
    append(out, cap, "FMA peak", w->pct_fma);
    append(out, cap, "VNNI peak", w->pct_vnni);
    append(out, cap, "BF16 peak", w->pct_bf16);
    append(out, cap, "read bw", w->pct_read);
    append(out, cap, "the weights' read bw", w->pct_wread);
    if (w->bound > 0) {
        char v[32];
        const size_t n = strlen(out);
        fmt_num(v, sizeof v, w->bound);
        snprintf(out + n, cap - n, "; bound %s %s", v, w->unit);
    }
}

static void cell_target(const bench_row *w, char *out, size_t cap) {
    char v[32];
    out[0] = '\0';
    if (w->target <= 0) return;
    fmt_num(v, sizeof v, w->target);
    snprintf(out, cap, "%s %s %s (%s)", w->target_max ? "≤" : "≥", v, w->unit, w->target_note);
}

static void print_header(const bench_report *r) {
    const molmo_bench_machine *m = r->n_machine ? &r->machine[0] : NULL;
    printf("# molmo bench (molmo %s)\n\n", molmo_version());
    printf("- build: %s\n", bench_build());
    printf("- model: %s", r->model_label);
    if (r->weights) printf(", %s weights (generated)", r->weights);
    printf("; language model %s, vision %s; %.2f GB as stored\n", r->llm_type, r->vision_type,
           r->model_gb);
    printf("- file: %s%s", r->model_path,
           r->no_mmap ? " (read into the process's memory: --no-mmap" : " (mapped)");
    if (r->no_mmap && r->n_interleaved)
        printf("; %d q8_0 / q4_0 matrices interleaved by 16 rows for the kernels", r->n_interleaved);
    printf("%s\n", r->no_mmap ? ")" : "");
    if (m)
        printf("- machine: %s, %d physical cores (%d logical), kernels %s; FMA %s, VNNI %s, "
               "BF16 %s\n", m->cpu, m->n_physical, m->n_logical, m->kernels, m->fma_isa,
               m->vnni_isa, m->bf16_isa);
    if (r->n_prompt)
        printf("- input: %dx%d image (%d crops), \"%s\": %d prompt tokens; %d new tokens; "
               "%s KV cache%s\n", r->image_w, r->image_h, r->n_crops, r->prompt, r->n_prompt,
               r->tokens, r->kv_type ? r->kv_type : "f32",
               !r->bf16_act ? ""
               : !m ? "; bf16 activations"
               : m->quant_bf16
                   ? "; bf16 activations (bf16 matmuls, attention; quantized GEMMs on AMX-BF16 "
                     "tiles, weights rounded to bf16)"
                   : "; bf16 activations (bf16 matmuls, attention; quantized GEMMs keep int8)");
    printf("- %d repetition%s per figure (mean ± standard deviation); ratios are to the "
           "baselines of the same run and threads; targets (issue #8) are judged at all "
           "physical cores; memory: the stage's peak resident set (mapped weights it touched "
           "included) and the private memory at its end\n\n", r->reps, r->reps == 1 ? "" : "s");
}

/* Mapped weights that read well below fresh memory: where the page cache holds most of the
 * file in small pages (written in small pieces), evicting it once lets the next run map it
 * with huge pages; otherwise (some VMs' page cache) --no-mmap helps decode. Said below the
 * table. */
static void print_mmap_hint(const bench_report *r) {
    if (r->no_mmap) return;
    for (int i = 0; i < r->n_machine; i++) {
        const molmo_bench_machine *m = &r->machine[i];
        if (!(m->weights_read_gbs > 0 && m->weights_read_gbs < 0.85 * m->read_gbs)) continue;
        printf("\nThe mapped weights read at %.0f%% of fresh memory's bandwidth (%d threads)",
               100 * m->weights_read_gbs / m->read_gbs, m->n_threads);
        struct stat st;
        const int dir = stat(r->model_path, &st) == 0 && S_ISDIR(st.st_mode);
        if (m->weights_huge_share >= 0 && m->weights_huge_share < 0.5)
            printf(", and only %.0f%% of them are in 2 MiB pages: the page cache keeps a file "
                   "written in small pieces (by another tool, or an older molmo) in small "
                   "pages. Drop it from the cache once (`dd if=%s iflag=nocache count=0`%s): "
                   "the next run reads it back in huge pages, which may read faster.\n",
                   100 * m->weights_huge_share, dir ? "FILE" : r->model_path,
                   dir ? " for each weights FILE of the directory" : "");
        else
            printf(": --no-mmap (weights in the process's memory) may decode faster here.\n");
        return;
    }
}

void bench_print_markdown(const bench_report *r) {
    print_header(r);
    printf("| stage | threads | measure | figure | rate | vs baseline | target | | memory |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        char v[64], rate[128], ratio[160], target[64], mem[64] = "";
        cell_value(w, v, sizeof v);
        cell_rate(w, rate, sizeof rate);
        cell_ratio(w, ratio, sizeof ratio);
        cell_target(w, target, sizeof target);
        if (w->peak_rss_mib > 0) {
            char pk[24], pv[24];
            fmt_mib(pk, sizeof pk, w->peak_rss_mib);
            fmt_mib(pv, sizeof pv, w->private_mib);
            snprintf(mem, sizeof mem, "peak %s, private %s", pk, pv);
        }
        printf("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", w->stage, w->threads,
               w->measure, v, rate, ratio, target, w->verdict, mem);
    }
    print_mmap_hint(r);
    fflush(stdout);
}

/* JSON string (the texts here are ASCII or UTF-8 without control characters, but the path and
 * CPU name come from outside: escape what JSON requires). */
static void js(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void print_machine_json(const molmo_bench_machine *m) {
    printf("{\"threads\":%d,\"read_gbs\":%.3f,\"weights_read_gbs\":%.3f,", m->n_threads,
           m->read_gbs, m->weights_read_gbs);
    if (m->weights_huge_share >= 0) printf("\"weights_huge_share\":%.3f,", m->weights_huge_share);
    else printf("\"weights_huge_share\":null,");
    printf("\"fma_gflops\":%.2f,\"vnni_gops\":%.2f,\"bf16_gflops\":%.2f,\"fma_isa\":",
           m->fma_gflops, m->vnni_gops, m->bf16_gflops);
    js(m->fma_isa);
    printf(",\"vnni_isa\":");
    js(m->vnni_isa);
    printf(",\"bf16_isa\":");
    js(m->bf16_isa);
    printf(",\"quant_bf16\":%s}", m->quant_bf16 ? "true" : "false");
}

static void print_row_json(const bench_row *w) {
    printf("{\"stage\":");
    js(w->stage);
    printf(",\"threads\":%d,\"measure\":", w->threads);
    js(w->measure);
    printf(",\"value\":%.6g,\"sd\":%.6g,\"unit\":", w->value, w->sd);
    js(w->unit);
    printf(",\"rate\":%.6g,\"rate_unit\":", w->rate);
    js(w->rate_unit ? w->rate_unit : "");
    printf(",\"note\":");
    js(w->rate_note);
    printf(",\"pct_fma\":%.2f,\"pct_vnni\":%.2f,\"pct_bf16\":%.2f,\"pct_read_bw\":%.2f,"
           "\"pct_weights_read_bw\":%.2f,\"bound\":%.6g,\"peak_rss_mib\":%.1f,"
           "\"private_mib\":%.1f", w->pct_fma, w->pct_vnni, w->pct_bf16, w->pct_read,
           w->pct_wread, w->bound, w->peak_rss_mib, w->private_mib);
    if (w->target > 0) {
        printf(",\"target\":{\"value\":%g,\"op\":\"%s\",\"note\":", w->target,
               w->target_max ? "<=" : ">=");
        js(w->target_note);
        printf("},\"verdict\":");
        js(w->verdict);
    }
    printf("}");
}

void bench_print_json(const bench_report *r) {
    const molmo_bench_machine *m = r->n_machine ? &r->machine[0] : NULL;
    printf("{\"molmo\":");
    js(molmo_version());
    printf(",\"build\":");
    js(bench_build());
    printf(",\"model\":{\"name\":");
    js(r->model_label);
    printf(",\"path\":");
    js(r->model_path);
    printf(",\"weights\":");
    if (r->weights) js(r->weights);
    else printf("null");
    printf(",\"llm_type\":");
    js(r->llm_type);
    printf(",\"vision_type\":");
    js(r->vision_type);
    printf(",\"gb\":%.3f},\"kv_type\":", r->model_gb);
    js(r->kv_type ? r->kv_type : "f32");
    printf(",\"bf16_activations\":%s,\"no_mmap\":%s,\"interleaved_matrices\":%d,\"cpu\":",
           r->bf16_act ? "true" : "false", r->no_mmap ? "true" : "false", r->n_interleaved);
    js(m ? m->cpu : "");
    printf(",\"physical_cores\":%d,\"kernels\":", molmo_bench_physical_cores());
    js(m ? m->kernels : "");
    printf(",\"image\":[%d,%d],\"crops\":%d,\"prompt_tokens\":%d,\"new_tokens\":%d,"
           "\"reps\":%d,\"machine\":[", r->image_w, r->image_h, r->n_crops, r->n_prompt,
           r->tokens, r->reps);
    for (int i = 0; i < r->n_machine; i++) {
        if (i) putchar(',');
        print_machine_json(&r->machine[i]);
    }
    printf("],\"rows\":[");
    for (int i = 0; i < r->n_rows; i++) {
        if (i) putchar(',');
        print_row_json(&r->rows[i]);
    }
    printf("]}\n");
    fflush(stdout);
}

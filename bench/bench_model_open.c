/* bench_model_open.c — how long opening a model takes and how much memory it makes resident.
 *
 * Opening maps rather than copies, so the time is header parsing + binding and the resident
 * growth is near zero whatever the checkpoint size. Measured on: the fixture models, the four
 * released architectures at full size (sparse files of the real shapes, 29–293 GB), and a dense
 * 2 GiB file, against the baseline of reading that same file into memory in the same run.
 *
 * usage: bench_model_open [FIXTURE_MODELS_DIR] [--reps N] [--dense-mib N] */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "model/presets.h"
#include "molmo.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

typedef struct stats {
    double mean, sd;
} stats;

static stats summarize(const double *v, int n) {
    stats s = {0, 0};
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    return s;
}

/* Loads `path` reps times; prints mean ± sd of the open time and the resident growth. */
static int bench_load(const char *label, const char *path, int reps) {
    double t[64], rss_growth = 0;
    molmo_model_info info;
    for (int r = 0; r < reps && r < 64; r++) {
        molmo_error err;
        molmo_model *m = NULL;
        double r0 = rss_mib(), t0 = now_ms();
        if (molmo_model_load(path, NULL, &m, &err) != MOLMO_OK) {
            fprintf(stderr, "%s: %s\n", label, err.msg);
            return 1;
        }
        t[r] = now_ms() - t0;
        rss_growth = rss_mib() - r0;
        molmo_model_get_info(m, &info);
        molmo_model_free(m);
    }
    stats s = summarize(t, reps);
    printf("| %-22s | %10.2f GB | %8.2f ± %5.2f ms | %+8.1f MiB |\n", label,
           (double)info.weight_bytes / 1e9, s.mean, s.sd, rss_growth);
    return 0;
}

/* A dense file of `mib` MiB written with real bytes (not sparse), opened by mapping vs read. */
static int bench_dense(const char *dir, int mib, int reps) {
    char path[1024];
    snprintf(path, sizeof path, "%s/dense.safetensors", dir);
    size_t n = (size_t)mib << 20;
    float *buf = malloc(n);
    if (!buf) return 1;
    for (size_t i = 0; i < n / 4; i++) buf[i] = (float)(i % 977) * 1e-3f;
    molmo_st_entry e = {.name = "w", .dtype = MOLMO_DTYPE_F32, .n_dims = 2,
                        .shape = {(int64_t)(n / 4 / 1024), 1024}, .data = buf};
    molmo_error err;
    if (molmo_st_write(path, &e, 1, &err) != MOLMO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(buf);
        return 1;
    }
    free(buf);
    double tm[64], tr[64], rss_map = 0, rss_read = 0;
    for (int r = 0; r < reps && r < 64; r++) {
        molmo_safetensors st;
        double r0 = rss_mib(), t0 = now_ms();
        if (molmo_st_open(&st, path, &err) != MOLMO_OK) return 1;
        tm[r] = now_ms() - t0;
        rss_map = rss_mib() - r0;
        molmo_st_close(&st);

        r0 = rss_mib();
        t0 = now_ms();
        int fd = open(path, O_RDONLY);
        struct stat sb;
        fstat(fd, &sb);
        char *copy = malloc((size_t)sb.st_size);
        size_t got = 0;
        while (copy && got < (size_t)sb.st_size) {
            ssize_t k = read(fd, copy + got, (size_t)sb.st_size - got);
            if (k <= 0) break;
            got += (size_t)k;
        }
        close(fd);
        tr[r] = now_ms() - t0;
        rss_read = rss_mib() - r0;
        free(copy);
    }
    stats sm = summarize(tm, reps), sr = summarize(tr, reps);
    printf("| %-22s | %10.2f GB | %8.2f ± %5.2f ms | %+8.1f MiB |\n", "dense file, mmap",
           (double)n / 1e9, sm.mean, sm.sd, rss_map);
    printf("| %-22s | %10.2f GB | %8.2f ± %5.2f ms | %+8.1f MiB |\n", "baseline: read() copy",
           (double)n / 1e9, sr.mean, sr.sd, rss_read);
    printf("\nopen by mapping is %.0fx faster than reading the file (warm page cache) and keeps "
           "%.1f MiB resident instead of %.1f MiB\n",
           sr.mean / (sm.mean > 1e-3 ? sm.mean : 1e-3), rss_map, rss_read);
    unlink(path);
    return 0;
}

int main(int argc, char **argv) {
    const char *fixtures = NULL;
    int reps = 5, dense_mib = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dense-mib") && i + 1 < argc) dense_mib = atoi(argv[++i]);
        else fixtures = argv[i];
    }
    if (reps < 1 || reps > 64 || dense_mib < 1) return 2;
    char dir[] = "/tmp/molmo-bench-open-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("molmo %s — model open time and resident memory, %d repetitions\n\n", molmo_version(),
           reps);
    printf("| %-22s | %13s | %19s | %12s |\n", "model", "weights", "open (mean ± sd)",
           "RSS growth");
    printf("|------------------------|---------------|---------------------|--------------|\n");
    int rc = 0;
    static const char *const fx[] = {"qwen2", "qwen2-bf16", "olmo", "olmoe"};
    for (int i = 0; fixtures && i < 4; i++) {
        char p[2048], label[64];
        snprintf(p, sizeof p, "%s/%s", fixtures, fx[i]);
        snprintf(label, sizeof label, "fixture %s", fx[i]);
        rc |= bench_load(label, p, reps);
    }
    int n;
    const molmo_preset *ps = molmo_presets(&n);
    for (int k = 0; k < n; k++) {
        char sub[1100];
        snprintf(sub, sizeof sub, "%s/%s", dir, ps[k].name);
        mkdir(sub, 0755);
        molmo_error err;
        if (molmo_synth_checkpoint(sub, ps[k].config_json, MOLMO_DTYPE_F32, 0, 0, &err) != MOLMO_OK) {
            fprintf(stderr, "%s\n", err.msg);
            rc = 1;
            continue;
        }
        char label[64];
        snprintf(label, sizeof label, "%s (sparse)", ps[k].name);
        rc |= bench_load(label, sub, reps);
        char f[1200];
        snprintf(f, sizeof f, "%s/model.safetensors", sub);
        unlink(f);
        snprintf(f, sizeof f, "%s/config.json", sub);
        unlink(f);
        rmdir(sub);
    }
    rc |= bench_dense(dir, dense_mib, reps);
    rmdir(dir);
    return rc;
}

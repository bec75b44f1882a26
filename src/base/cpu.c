/* cpu.c — x86 feature flags (cpuid through __builtin_cpu_supports, plus <cpuid.h> for the bits
 * clang's builtin does not name) and the physical core count from sysfs topology, detected once
 * through pthread_once so the result is an immutable value shared by every thread. */
#define _GNU_SOURCE
#include "base/cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

static molmo_cpu_features g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
/* F16C is CPUID.1:ECX[29]; it needs the same OS (YMM state) support as AVX2, which
 * __builtin_cpu_supports("avx2") already checked through XGETBV. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1u;
}

/* AMX-TILE is CPUID.(7,0):EDX[24], AMX-INT8 EDX[25]. The tile state must be enabled by the
 * OS in XCR0 (bits 17 TILECFG, 18 TILEDATA), and Linux hands the 8 KiB TILEDATA state to a
 * process only after it asks (arch_prctl ARCH_REQ_XCOMP_PERM, kernel 5.16+; it refuses, for
 * instance, when a thread's alternate signal stack is too small for the larger frame). Any
 * refusal leaves AMX off: the VNNI kernels compute the same bits. MOLMO_AMX=0 turns it off. */
/* Returns the AMX feature bits usable (1: AMX-INT8, 2: AMX-BF16), 0 without tiles. AMX-BF16 is
 * EDX[22]. */
static int amx_usable(void) {
#if defined(__linux__) && defined(__x86_64__)
    const char *env = getenv("MOLMO_AMX");
    if (env && strcmp(env, "0") == 0) return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int kinds = (int)((d >> 25) & 1u) | (int)(((d >> 22) & 1u) << 1);
    if (!((d >> 24) & 1u) || !kinds) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & (3u << 17)) != (3u << 17)) return 0;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? kinds : 0;
#else
    return 0;
#endif
}

static void detect_isa(molmo_cpu_features *f) {
    __builtin_cpu_init();
    f->avx2 = __builtin_cpu_supports("avx2") != 0;
    f->fma = __builtin_cpu_supports("fma") != 0;
    f->f16c = f->avx2 && has_f16c();
    f->avx512f = __builtin_cpu_supports("avx512f") != 0;
    f->avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    f->avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    f->avx512dq = __builtin_cpu_supports("avx512dq") != 0;
    f->avx512vnni = __builtin_cpu_supports("avx512vnni") != 0;
    /* AVX512_BF16 is CPUID.(7,1):EAX[5], usable only where AVX-512 state is enabled; AVX-VNNI
     * is EAX[4] (its YMM state is enabled with AVX2). MOLMO_AVX_VNNI=0 turns it off. */
    unsigned a, b, c, d;
    const int leaf71 = __get_cpuid_count(7, 1, &a, &b, &c, &d);
    const char *no_vnni = getenv("MOLMO_AVX_VNNI");
    f->avx_vnni = f->avx2 && leaf71 && ((a >> 4) & 1u) && !(no_vnni && strcmp(no_vnni, "0") == 0);
    if (f->avx512f && leaf71) f->avx512bf16 = (a >> 5) & 1u;
    const int amx = f->avx512f ? amx_usable() : 0;
    f->amx_int8 = amx & 1;
    f->amx_bf16 = (amx >> 1) & f->avx512bf16;
    unsigned v[4];
    f->amd = __get_cpuid(0, &v[0], &v[1], &v[2], &v[3]) && v[1] == 0x68747541u /* "Auth" */ &&
             v[3] == 0x69746e65u /* "enti" */ && v[2] == 0x444d4163u /* "cAMD" */;
}
#else
static void detect_isa(molmo_cpu_features *f) { (void)f; }
#endif

/* Counts distinct (package, core) pairs among the CPUs in our affinity mask, so SMT siblings
 * count once: GEMM throughput scales with cores, not hardware threads. */
static int count_physical(const cpu_set_t *set, int n_logical) {
    enum { MAX_CORES = 1024 };
    long keys[MAX_CORES];
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < MAX_CORES; cpu++) {
        if (!CPU_ISSET(cpu, set)) continue;
        char path[128];
        long pkg = 0, core = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *fp = fopen(path, "r");
        if (!fp) return n_logical;
        if (fscanf(fp, "%ld", &core) != 1) core = -1;
        fclose(fp);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 cpu);
        fp = fopen(path, "r");
        if (fp) {
            if (fscanf(fp, "%ld", &pkg) != 1) pkg = 0;
            fclose(fp);
        }
        if (core < 0) return n_logical;
        long key = pkg * 1000000L + core;
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = keys[i] == key;
        if (!seen) keys[n++] = key;
    }
    return n > 0 ? n : n_logical;
}

static void detect(void) {
    memset(&g_cpu, 0, sizeof g_cpu);
    detect_isa(&g_cpu);
    cpu_set_t set;
    CPU_ZERO(&set);
    int n_logical = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n_logical = CPU_COUNT(&set);
    if (n_logical <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        g_cpu.n_logical = n > 0 ? (int)n : 1;
        g_cpu.n_physical = g_cpu.n_logical;
        return;
    }
    g_cpu.n_logical = n_logical;
    g_cpu.n_physical = count_physical(&set, n_logical);
}

const molmo_cpu_features *molmo_cpu_get(void) {
    pthread_once(&g_cpu_once, detect);
    return &g_cpu;
}

int molmo_cpu_physical_cores(void) { return molmo_cpu_get()->n_physical; }

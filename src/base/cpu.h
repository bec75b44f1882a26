/* cpu.h — CPU feature detection and core counting, done once per process (STYLE.md §5).
 *
 * The kernels are chosen at run time from these flags, so a portable build (x86-64-v2) still
 * uses AVX-512 where the machine has it and never executes an instruction the CPU lacks. */
#ifndef MOLMO_BASE_CPU_H
#define MOLMO_BASE_CPU_H

typedef struct molmo_cpu_features {
    int avx2, fma, f16c;                       /* the AVX2 kernel set needs all three      */
    int avx_vnni; /* AVX-VNNI (VEX vpdpbusd on ymm: Alder Lake and later client CPUs without
                   * AVX-512): the AVX2 quantized kernels use it where present */
    int avx512f, avx512bw, avx512vl, avx512dq; /* the AVX-512 kernel set needs f, bw, vl   */
    int avx512bf16;                            /* the AMX-BF16 GEMM's conversions need it   */
    int avx512vnni;                            /* the quantized AVX-512 kernels need it    */
    int amx_int8;  /* AMX-TILE + AMX-INT8 usable: cpuid, the OS's XCR0 tile state and the
                    * process's permission for it (Linux arch_prctl, requested here) */
    int amx_bf16;  /* AMX-BF16 usable the same way (and AVX512-BF16 for the conversions) */
    int amd;       /* an AMD CPU: VDPBF16PS runs at twice the FMA rate (Zen 4/5); on Intel
                    * Xeons it measured at half (the bf16-activation GEMM picks by this) */
    int n_logical;                             /* CPUs this process may run on             */
    int n_physical;                            /* distinct cores among them (SMT siblings once) */
} molmo_cpu_features;

/* The features of the machine, detected on first use (pthread_once); never NULL, immutable. */
const molmo_cpu_features *molmo_cpu_get(void);

/* Number of physical cores this process may run on (>= 1): the default thread count. */
int molmo_cpu_physical_cores(void);

#endif

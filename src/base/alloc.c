/* alloc.c — malloc wrapper with a per-thread failure-injection counter for OOM tests. */
#include "base/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Per-thread test state: not shared mutable state between threads (STYLE.md §5). */
static _Thread_local long fail_after = -1;
static _Thread_local long n_allocs = 0;

static int should_fail(void) {
    n_allocs++;
    if (fail_after < 0) return 0;
    if (fail_after == 0) return 1;
    fail_after--;
    return 0;
}

void *molmo_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *molmo_calloc(size_t count, size_t size) {
    size_t total;
    if (!molmo_mul_size(count, size, &total)) return NULL;
    if (should_fail()) return NULL;
    return calloc(total ? total : 1, 1);
}

void *molmo_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void molmo_free(void *p) { free(p); }

char *molmo_strndup(const char *s, size_t n) {
    char *d = molmo_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *molmo_strdup(const char *s) { return molmo_strndup(s, strlen(s)); }

int molmo_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void molmo_alloc_fail_after(long n) { fail_after = n; }
long molmo_alloc_count(void) { return n_allocs; }
void molmo_alloc_reset_count(void) { n_allocs = 0; }

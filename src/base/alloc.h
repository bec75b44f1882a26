/* alloc.h — the one allocation wrapper of the library (STYLE.md §4).
 *
 * Every heap allocation goes through these so tests can inject failures: after
 * molmo_alloc_fail_after(n), the (n+1)-th allocation on this thread returns NULL. */
#ifndef MOLMO_BASE_ALLOC_H
#define MOLMO_BASE_ALLOC_H

#include <stddef.h>

void *molmo_malloc(size_t n);
void *molmo_calloc(size_t count, size_t size);   /* overflow-checked */
void *molmo_realloc(void *p, size_t n);
void molmo_free(void *p);
char *molmo_strdup(const char *s);
char *molmo_strndup(const char *s, size_t n);

/* Overflow-checked a*b; returns 0 and leaves *out untouched on overflow. */
int molmo_mul_size(size_t a, size_t b, size_t *out);

/* Test hook: fail allocations after `n` more succeed on the calling thread; n < 0 disables. */
void molmo_alloc_fail_after(long n);
/* Number of allocations made on this thread since the last molmo_alloc_reset_count(). */
long molmo_alloc_count(void);
void molmo_alloc_reset_count(void);

#endif

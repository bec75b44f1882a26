/* arena.h — bump allocator with 64-byte alignment and mark/reset (STYLE.md §4).
 * Sizes are computed first, then one block is allocated per lifetime. */
#ifndef MOLMO_BASE_ARENA_H
#define MOLMO_BASE_ARENA_H

#include <stddef.h>

typedef struct molmo_arena {
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t high_water;
} molmo_arena;

/* Allocates `cap` bytes of zeroed backing store. Returns 0 on success, -1 on allocation
 * failure. */
int molmo_arena_init(molmo_arena *a, size_t cap);
void molmo_arena_release(molmo_arena *a);
/* 64-byte aligned block, or NULL when the arena is exhausted (never grows). */
void *molmo_arena_alloc(molmo_arena *a, size_t n);
size_t molmo_arena_mark(const molmo_arena *a);

/* Sizes first, then one allocation (STYLE.md §4): makes `a` exactly large enough for n float
 * workspaces of counts[i] floats, each 64-byte aligned, and points *slots[i] at them in order.
 * 0 on success, -1 on allocation failure (then nothing is allocated). */
int molmo_arena_carve_f32(molmo_arena *a, const size_t *counts, float **const *slots, int n);
void molmo_arena_reset(molmo_arena *a, size_t mark);

#endif

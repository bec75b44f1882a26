/* arena.c — bump allocator; see arena.h. */
#include "base/arena.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define ARENA_ALIGN 64

int molmo_arena_init(molmo_arena *a, size_t cap) {
    a->used = 0;
    a->high_water = 0;
    a->cap = (cap + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    a->base = NULL;
    if (a->cap == 0) return 0;
    /* aligned_alloc bypasses molmo_malloc: count it there so OOM injection still applies. */
    void *probe = molmo_malloc(1);
    if (!probe) return -1;
    molmo_free(probe);
    a->base = aligned_alloc(ARENA_ALIGN, a->cap);
    if (!a->base) return -1;
    memset(a->base, 0, a->cap);
    return 0;
}

int molmo_arena_carve_f32(molmo_arena *a, const size_t *counts, float **const *slots, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (counts[i] * sizeof(float) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (molmo_arena_init(a, total) != 0) return -1;
    for (int i = 0; i < n; i++) *slots[i] = molmo_arena_alloc(a, counts[i] * sizeof(float));
    return 0;
}

void molmo_arena_release(molmo_arena *a) {
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *molmo_arena_alloc(molmo_arena *a, size_t n) {
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (start > a->cap || n > a->cap - start) return NULL;
    a->used = start + n;
    if (a->used > a->high_water) a->high_water = a->used;
    return a->base + start;
}

size_t molmo_arena_mark(const molmo_arena *a) { return a->used; }

void molmo_arena_reset(molmo_arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}

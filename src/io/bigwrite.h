/* bigwrite.h — buffered writes of a large file that reach it in pieces aligned to 2 MiB of
 * the file.
 *
 * Why: Linux (6.x; ext4 and xfs with large folios) gives a buffered write page-cache folios as
 * large as the write's length and file offset allow. A model written in 2 MiB-aligned pieces
 * stays in the page cache in 2 MiB folios, which a mapping of it (io/mapfile.c) maps with huge
 * pages; written in curl's or stdio's small pieces it stays in small folios until evicted
 * (a GGUF copied in 16 KiB writes: 5% of it in huge pages, in 8 MiB writes: 98%). What huge
 * pages are worth depends on the host (docs/bench.md, session 12): on this project's VM, the same
 * page cache mapped with 4 KiB pages instead decoded MolmoE-1B q8_0 at 13.8-16.1 against
 * 17.7-18.2 tok/s; across page caches of different memory the gain was within the VM's noise
 * for decode and ~5% for the ViT. The cost is one copy of what is written. */
#ifndef MOLMO_IO_BIGWRITE_H
#define MOLMO_IO_BIGWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOLMO_BIGWRITE_ALIGN ((uint64_t)2 << 20)

typedef ssize_t (*molmo_pwrite_fn)(int fd, const void *buf, size_t n, off_t off);

typedef struct molmo_bigwrite {
    int fd;
    uint64_t pos;        /* the file offset of buf[0]                                    */
    unsigned char *buf;  /* cap bytes                                                    */
    size_t n, cap;       /* bytes held; capacity, a multiple of MOLMO_BIGWRITE_ALIGN     */
    molmo_pwrite_fn pw;  /* pwrite; tests put a recorder here                            */
} molmo_bigwrite;

/* A writer of fd from file offset pos, with a buffer of cap bytes (0: 8 MiB; rounded up to
 * the alignment, at least twice it). Returns 0, or -1 when out of memory. */
int molmo_bigwrite_init(molmo_bigwrite *w, int fd, uint64_t pos, size_t cap);

/* Appends n bytes. Returns 0, or -1 with errno when a write failed (what the file then holds
 * is a prefix of what was put). */
int molmo_bigwrite_put(molmo_bigwrite *w, const void *p, size_t n);

/* Writes what the buffer holds. Returns 0 or -1 with errno. */
int molmo_bigwrite_flush(molmo_bigwrite *w);

/* Drops what the buffer holds and goes on from file offset pos (a file truncated anew). */
void molmo_bigwrite_reset(molmo_bigwrite *w, uint64_t pos);

/* The file offset after everything put so far. */
static inline uint64_t molmo_bigwrite_end(const molmo_bigwrite *w) { return w->pos + w->n; }

/* Frees the buffer; does not flush. */
void molmo_bigwrite_free(molmo_bigwrite *w);

#endif

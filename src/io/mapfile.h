/* mapfile.h — read-only memory mapping of a whole file (weights are never copied). */
#ifndef MOLMO_IO_MAPFILE_H
#define MOLMO_IO_MAPFILE_H

#include <stddef.h>

#include "molmo.h"

typedef struct molmo_mapfile {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
} molmo_mapfile;

/* Maps `path` read-only. Errors name the file. An empty file maps to {NULL, 0}. */
molmo_status molmo_mapfile_open(molmo_mapfile *m, const char *path, molmo_error *err);
void molmo_mapfile_close(molmo_mapfile *m);

/* Enters every page of m into the process's page tables now, reading from disk what the page
 * cache lacks (madvise MADV_POPULATE_READ, Linux >= 5.14). Best effort: where the kernel
 * refuses, nothing happens and pages fault in on first use as before. */
void molmo_mapfile_prefault(const molmo_mapfile *m);

/* The share (0..1) of m's resident bytes that the kernel maps with 2 MiB pages (file pages:
 * FilePmdMapped; a --no-mmap copy: AnonHugePages; /proc/self/smaps), or -1 where it cannot
 * tell (not Linux, nothing resident). A file written in small pieces stays in the page cache
 * in small folios and maps with 4 KiB pages, which read slower (io/bigwrite.h). */
double molmo_mapfile_huge_share(const molmo_mapfile *m);

/* Moves the bytes of m into anonymous memory at the same address (so every pointer into the
 * mapping stays valid): a private copy, advised for transparent huge pages, read-only like the
 * mapping it replaces, freed by molmo_mapfile_close as before. For `--no-mmap`: on some hosts
 * the page cache's memory reads markedly slower than the process's own (docs/bench.md).
 * Errors (m unchanged): MOLMO_ERR_NOMEM when the copy would not fit the memory the kernel
 * reports available (MemAvailable) or cannot be allocated, MOLMO_ERR_IO when the kernel refuses
 * the move; the messages name `path`. */
molmo_status molmo_mapfile_to_ram(molmo_mapfile *m, const char *path, molmo_error *err);

/* Lets the process write to (on = 1) or only read (on = 0) a copy made by molmo_mapfile_to_ram,
 * for a loader that lays its bytes out anew (model/repack.c). Returns 0, or -1 when the kernel
 * refuses (errno set). Never for a mapping of the file itself. */
int molmo_mapfile_set_writable(const molmo_mapfile *m, int on);

/* n bytes of fresh memory (zeros) at a 2 MiB-aligned address, advised for transparent huge
 * pages, so that every page of it can be huge (as molmo_mapfile_to_ram's copy); NULL when
 * refused. Freed by molmo_huge_free with the same n. */
void *molmo_huge_alloc(size_t n);
void molmo_huge_free(void *p, size_t n);

/* Reads a whole (small) file into a NUL-terminated heap buffer; refuses files > max_bytes. */
molmo_status molmo_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                             molmo_error *err);

#endif

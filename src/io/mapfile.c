/* mapfile.c — mmap wrapper and whole-file reads with size limits. */
#define _POSIX_C_SOURCE 200809L
#define _GNU_SOURCE /* madvise, mremap */
#include "io/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"

/* Opens a regular file read-only; *fd and *st on success. */
static molmo_status open_regular(const char *path, int *fd, struct stat *st, molmo_error *err) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        return molmo_err(err, MOLMO_ERR_IO, "%s: not a regular file", path);
    }
    return MOLMO_OK;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older headers lack the name */
#endif

void molmo_mapfile_prefault(const molmo_mapfile *m) {
    if (m->data && m->size) (void)madvise((void *)m->data, m->size, MADV_POPULATE_READ);
}

#define HUGE_BYTES ((size_t)2 << 20) /* a transparent huge page on x86-64 */

/* n bytes (whole pages) of fresh anonymous mapping with protection prot, at an address
 * congruent to `phase` modulo HUGE_BYTES: a request 2 MiB longer, its slack given back.
 * MAP_FAILED when refused. */
static unsigned char *map_at_phase(size_t n, uintptr_t phase, int prot) {
    const long pg = sysconf(_SC_PAGESIZE);
    const size_t page = pg > 0 ? (size_t)pg : 4096;
    n = (n + page - 1) / page * page; /* whole pages: what munmap and mremap take */
    const size_t span = n + HUGE_BYTES;
    unsigned char *r = mmap(NULL, span, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return r;
    /* both addresses are page-aligned, so head is a whole number of pages */
    const size_t head = (phase + HUGE_BYTES - (uintptr_t)r % HUGE_BYTES) % HUGE_BYTES;
    if (head) munmap(r, head);
    if (span - head > n) munmap(r + head + n, span - head - n);
    return r + head;
}

/* Maps n bytes of fd read-only at an address that is a multiple of 2 MiB, like the file
 * offsets of the page cache's 2 MiB folios: only then can the kernel map those folios with huge
 * pages. The same page cache mapped 4 KiB off (so with 4 KiB pages): MolmoE-1B q8_0 decode
 * 13.8-16.1 against 17.7-18.2 tok/s, prefill 272-275 against 368. Recent kernels align large
 * file mappings themselves; this makes it so everywhere: the file mapped over a reservation
 * at that address (MAP_FIXED inside our own reservation). */
static void *map_huge_aligned(int fd, size_t n) {
    unsigned char *r = n >= HUGE_BYTES ? map_at_phase(n, 0, PROT_NONE) : MAP_FAILED;
    if (r == MAP_FAILED) return mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    void *p = mmap(r, n, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        const int e = errno;
        munmap(r, n);
        errno = e;
    }
    return p;
}

void *molmo_huge_alloc(size_t n) {
    void *p = map_at_phase(n ? n : 1, 0, PROT_READ | PROT_WRITE);
    if (p == MAP_FAILED) return NULL;
    (void)madvise(p, n, MADV_HUGEPAGE); /* advice: without it, 4 KiB pages (THP "madvise") */
    return p;
}

void molmo_huge_free(void *p, size_t n) {
    if (p) munmap(p, n ? n : 1);
}

molmo_status molmo_mapfile_open(molmo_mapfile *m, const char *path, molmo_error *err) {
    m->data = NULL;
    m->size = 0;
    int fd;
    struct stat st;
    molmo_status s = open_regular(path, &fd, &st, err);
    if (s != MOLMO_OK) return s;
    if (st.st_size == 0) {
        close(fd);
        return MOLMO_OK;
    }
    void *p = map_huge_aligned(fd, (size_t)st.st_size);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    /* Best effort: where the page cache lacks the file, the faults then read it in 2 MiB folios
     * (Linux 6.x, ext4 / xfs); without the advice, pages touched out of order (threads,
     * tensors) came in small folios: 15-27% against 97-98% of a MolmoE-1B GGUF in huge pages
     * after `molmo bench` from a cold cache. */
    (void)madvise(p, (size_t)st.st_size, MADV_HUGEPAGE);
    m->data = p;
    m->size = (size_t)st.st_size;
    return MOLMO_OK;
}

double molmo_mapfile_huge_share(const molmo_mapfile *m) {
    if (!m->data || !m->size) return -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    const uintptr_t lo = (uintptr_t)m->data, hi = lo + m->size;
    char line[512];
    int inside = 0; /* the lines that follow belong to a mapping that overlaps m */
    unsigned long long rss = 0, huge = 0, kb;
    while (fgets(line, sizeof line, f)) {
        unsigned long long a, b;
        if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a < hi && b > lo;
            continue;
        }
        if (!inside) continue;
        if (sscanf(line, "Rss: %llu kB", &kb) == 1) rss += kb;
        else if (sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1) huge += kb;
        else if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) huge += kb;
    }
    fclose(f);
    return rss ? (double)huge / (double)rss : -1;
}

/* MemAvailable of /proc/meminfo in bytes, or 0 where it cannot be read. */
static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

/* n bytes of anonymous memory whose address is congruent to `like` modulo HUGE_BYTES, so that
 * the move to `like` keeps its huge pages whole; MAP_FAILED when refused. */
static void *anon_like(const void *like, size_t n) {
    return map_at_phase(n, (uintptr_t)like % HUGE_BYTES, PROT_READ | PROT_WRITE);
}

/* One reader's part of a file: bytes [from, to) into buf + from; at its end, where it failed
 * (failed_at) and errno (e, 0 for an early end of file), or failed_at = SIZE_MAX. */
typedef struct read_part {
    int fd;
    uint8_t *buf;
    size_t from, to, failed_at;
    int e;
} read_part;

static void *read_part_run(void *arg) {
    read_part *r = arg;
    r->failed_at = SIZE_MAX;
    for (size_t at = r->from; at < r->to;) {
        const size_t want = r->to - at < ((size_t)1 << 26) ? r->to - at : ((size_t)1 << 26);
        const ssize_t k = pread(r->fd, r->buf + at, want, (off_t)at);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            r->failed_at = at, r->e = k < 0 ? errno : 0;
            break;
        }
        at += (size_t)k;
    }
    return NULL;
}

/* Readers of a copy: the page faults of the fresh memory and the copies out of the page cache
 * run on several cores (a 7.7 GB file from a warm cache: ~4-5 s with one, ~1.7-2.7 with two). */
#define READERS 4

/* The n bytes of the file at path into buf; the file must still have exactly n bytes. */
static molmo_status read_all(const char *path, size_t n, void *buf, molmo_error *err) {
    int fd;
    struct stat st;
    molmo_status s = open_regular(path, &fd, &st, err);
    if (s != MOLMO_OK) return s;
    if ((uint64_t)st.st_size != n) {
        close(fd);
        return molmo_err(err, MOLMO_ERR_IO, "%s: changed size while loading (%zu -> %lld bytes)",
                         path, n, (long long)st.st_size);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nr = cpus < 1 ? 1 : cpus > READERS ? READERS : (int)cpus;
    if (n < ((size_t)1 << 20)) nr = 1; /* tiny files: one read */
    read_part parts[READERS];
    pthread_t tid[READERS];
    int started[READERS] = {0};
    for (int i = 0; i < nr; i++) {
        parts[i] = (read_part){fd, buf, n / (size_t)nr * (size_t)i & ~(size_t)4095,
                               i == nr - 1 ? n : n / (size_t)nr * (size_t)(i + 1) & ~(size_t)4095,
                               SIZE_MAX, 0};
        /* part 0 runs on this thread; a reader that cannot start is read here too */
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, read_part_run, &parts[i]) == 0;
    }
    read_part_run(&parts[0]);
    for (int i = 1; i < nr; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            read_part_run(&parts[i]);
    }
    close(fd);
    for (int i = 0; i < nr; i++)
        if (parts[i].failed_at != SIZE_MAX)
            return molmo_err(err, MOLMO_ERR_IO, "%s: read failed at byte %zu: %s", path,
                             parts[i].failed_at,
                             parts[i].e ? strerror(parts[i].e) : "unexpected end of file");
    return MOLMO_OK;
}

molmo_status molmo_mapfile_to_ram(molmo_mapfile *m, const char *path, molmo_error *err) {
    if (!m->data || !m->size) return MOLMO_OK;
    const uint64_t avail = mem_available();
    if (avail && m->size > avail)
        return molmo_err(err, MOLMO_ERR_NOMEM,
                         "%s: %.2f GB do not fit the %.2f GB of memory available (--no-mmap: "
                         "leave it out to map the file instead)",
                         path, m->size / 1e9, avail / 1e9);
    void *r = anon_like(m->data, m->size);
    if (r == MAP_FAILED)
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: cannot allocate %zu bytes to hold it in memory: %s",
                         path, m->size, strerror(errno));
    (void)madvise(r, m->size, MADV_HUGEPAGE); /* best effort: fewer TLB misses */
    /* read(), not a copy from the mapping: a disk error or a file cut short meanwhile is then an
     * error here, not a SIGBUS */
    molmo_status s = read_all(path, m->size, r, err);
    if (s != MOLMO_OK) {
        munmap(r, m->size);
        return s;
    }
    (void)mprotect(r, m->size, PROT_READ); /* stray writes fault, as in the mapping */
    void *p = mremap(r, m->size, m->size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)m->data);
    if (p == MAP_FAILED) {
        const int e = errno;
        munmap(r, m->size);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot move its copy in place: %s", path, strerror(e));
    }
    return MOLMO_OK;
}

int molmo_mapfile_set_writable(const molmo_mapfile *m, int on) {
    if (!m->data || !m->size) return 0;
    return mprotect((void *)m->data, m->size, on ? PROT_READ | PROT_WRITE : PROT_READ);
}

void molmo_mapfile_close(molmo_mapfile *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

molmo_status molmo_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                             molmo_error *err) {
    *out = NULL;
    int fd;
    struct stat st;
    molmo_status s = open_regular(path, &fd, &st, err);
    if (s != MOLMO_OK) return s;
    if ((unsigned long long)st.st_size > max_bytes) {
        close(fd);
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: %lld bytes is over the %zu-byte limit",
                         path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = molmo_malloc(n + 1);
    if (!buf) {
        close(fd);
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            molmo_free(buf);
            return molmo_err(err, MOLMO_ERR_IO, "%s: read failed: %s", path,
                             r == 0 ? "file shrank" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = n;
    return MOLMO_OK;
}

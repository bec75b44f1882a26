/* mapfile.c — mmap wrapper and whole-file reads with size limits. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "io/mapfile.h"

#include <errno.h>
#include <fcntl.h>
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
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return MOLMO_OK;
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

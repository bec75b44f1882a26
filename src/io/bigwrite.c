/* bigwrite.c — see bigwrite.h. Every write but a flush's ends on an aligned file offset: the
 * first fills the buffer up to the last boundary it can reach, the later ones start on one. */
#define _POSIX_C_SOURCE 200809L
#include "io/bigwrite.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"

int molmo_bigwrite_init(molmo_bigwrite *w, int fd, uint64_t pos, size_t cap) {
    const size_t a = (size_t)MOLMO_BIGWRITE_ALIGN;
    cap = cap ? (cap + a - 1) / a * a : 4 * a;
    cap = cap < 2 * a ? 2 * a : cap;
    *w = (molmo_bigwrite){.fd = fd, .pos = pos, .cap = cap, .pw = pwrite};
    w->buf = molmo_malloc(cap);
    return w->buf ? 0 : -1;
}

/* All n bytes of p at file offset off. */
static int write_at(const molmo_bigwrite *w, const unsigned char *p, size_t n, uint64_t off) {
    while (n) {
        const ssize_t k = w->pw(w->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k, n -= (size_t)k, off += (uint64_t)k;
    }
    return 0;
}

int molmo_bigwrite_flush(molmo_bigwrite *w) {
    if (w->n && write_at(w, w->buf, w->n, w->pos) != 0) return -1;
    w->pos += w->n;
    w->n = 0;
    return 0;
}

/* How many bytes the buffer takes before its write: up to the last aligned offset within
 * cap bytes of pos (cap once pos is aligned). */
static size_t fill_limit(const molmo_bigwrite *w) {
    const uint64_t end = (w->pos + w->cap) / MOLMO_BIGWRITE_ALIGN * MOLMO_BIGWRITE_ALIGN;
    return (size_t)(end - w->pos);
}

int molmo_bigwrite_put(molmo_bigwrite *w, const void *p, size_t n) {
    const unsigned char *src = p;
    while (n) {
        /* long runs from an aligned, empty buffer go straight to the file (no copy) */
        if (w->n == 0 && w->pos % MOLMO_BIGWRITE_ALIGN == 0 && n >= w->cap) {
            const size_t k = n / MOLMO_BIGWRITE_ALIGN * MOLMO_BIGWRITE_ALIGN;
            if (write_at(w, src, k, w->pos) != 0) return -1;
            w->pos += k, src += k, n -= k;
            continue;
        }
        const size_t room = fill_limit(w) - w->n, k = n < room ? n : room;
        memcpy(w->buf + w->n, src, k);
        w->n += k, src += k, n -= k;
        if (w->n == fill_limit(w) && molmo_bigwrite_flush(w) != 0) return -1;
    }
    return 0;
}

void molmo_bigwrite_reset(molmo_bigwrite *w, uint64_t pos) {
    w->pos = pos;
    w->n = 0;
}

void molmo_bigwrite_free(molmo_bigwrite *w) {
    molmo_free(w->buf);
    w->buf = NULL;
}

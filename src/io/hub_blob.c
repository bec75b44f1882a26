/* hub_blob.c — one file of a pull, the way huggingface_hub's hf_hub_download stores it: under
 * the lock <cache>/.locks/models--ORG--NAME/<etag>.lock (flock, the lock Python's filelock
 * takes, so a Python download of the same blob and ours never write the same file), bytes go
 * to blobs/<etag>.incomplete, resumed with an HTTP range after a failure or in a later run.
 * The digest runs while the bytes arrive (the kept prefix is hashed again on resume), and only
 * a file of the right size and digest is renamed to blobs/<etag>: SHA-256 for LFS files (the
 * ETag the hub gives them), the git blob SHA-1 for the others. Also the progress reports and
 * the retry back-off that the rest of the pull shares. */
#define _DEFAULT_SOURCE /* flock, fdatasync */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "io/bigwrite.h"
#include "io/hub.h"

double molmo_hub_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cancelled(const molmo_hub_pull *pl) { return pl->p->cancel && *pl->p->cancel; }

/* Rate: an exponential average of half-second samples, so the ETA follows the link's speed
 * without jumping at every packet. */
static void update_rate(molmo_hub_pull *pl, double now) {
    molmo_pull_progress *p = &pl->prog;
    double dt = now - pl->t_rate;
    if (dt >= 0.5) {
        double inst = (double)(p->received - pl->rx_rate) / dt;
        p->rate = p->rate > 0 ? 0.7 * p->rate + 0.3 * inst : inst;
        pl->t_rate = now;
        pl->rx_rate = p->received;
    }
    p->eta_s = p->rate > 0 && p->total >= p->bytes ? (double)(p->total - p->bytes) / p->rate : -1;
    p->elapsed_s = now - pl->t0;
}

molmo_status molmo_hub_report(molmo_hub_pull *pl, molmo_pull_event ev, int force,
                              molmo_error *err) {
    if (cancelled(pl)) return molmo_err(err, MOLMO_ERR_CANCELLED, "cancelled");
    double now = molmo_hub_now();
    if (ev == MOLMO_PULL_EVENT_BYTES && !force && now - pl->t_report < 0.1) return MOLMO_OK;
    update_rate(pl, now);
    if (ev == MOLMO_PULL_EVENT_BYTES) pl->t_report = now;
    if (!pl->p->progress) return MOLMO_OK;
    pl->prog.event = ev;
    if (pl->p->progress(pl->p->progress_user, &pl->prog) != 0)
        return molmo_err(err, MOLMO_ERR_CANCELLED, "cancelled by the progress callback");
    return MOLMO_OK;
}

molmo_status molmo_hub_backoff(molmo_hub_pull *pl, int attempt, long retry_after_s,
                               const char *why, molmo_error *err) {
    double d = (pl->p->retry_delay_ms > 0 ? pl->p->retry_delay_ms : 0) / 1000.0;
    for (int i = 1; i < attempt && d < 30.0; i++) d *= 2.0;
    if (d > 30.0) d = 30.0;
    if (retry_after_s > 0 && (double)retry_after_s > d)
        d = retry_after_s > 60 ? 60.0 : (double)retry_after_s;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", why);
    molmo_log(pl->p->log, pl->p->log_user, MOLMO_LOG_WARN,
              "%s; retry %d of %d in %.1f s", msg, attempt, pl->p->max_retries, d);
    pl->prog.retry_in_s = d;
    pl->prog.message = msg;
    molmo_status s = molmo_hub_report(pl, MOLMO_PULL_EVENT_RETRY, 1, err);
    pl->prog.message = NULL;
    double until = molmo_hub_now() + d;
    while (s == MOLMO_OK && molmo_hub_now() < until) {
        if (cancelled(pl)) return molmo_err(err, MOLMO_ERR_CANCELLED, "cancelled");
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return s;
}

/* ---- the lock ---------------------------------------------------------------------------- */

/* Blocks until no other process (ours or huggingface_hub) downloads this blob. Filesystems
 * without flock (some network mounts) get a warning and no lock, as Python's WeakFileLock. */
static molmo_status take_lock(molmo_hub_pull *pl, const char *path, const char *name, int *out,
                              molmo_error *err) {
    *out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int said = 0;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            molmo_log(pl->p->log, pl->p->log_user, MOLMO_LOG_WARN,
                      "%s: cannot lock (%s); downloading without the lock", path,
                      strerror(errno));
            break;
        }
        if (!said++)
            molmo_log(pl->p->log, pl->p->log_user, MOLMO_LOG_INFO,
                      "%s: waiting for another download of it to finish (%s)", name, path);
        if (cancelled(pl)) {
            close(fd);
            return molmo_err(err, MOLMO_ERR_CANCELLED, "cancelled");
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    *out = fd;
    return MOLMO_OK;
}

/* ---- one download ------------------------------------------------------------------------ */

typedef struct blob_dl {
    molmo_hub_pull *pl;
    const molmo_hub_target *t;
    int fd;                 /* blobs/<etag>.incomplete                                        */
    uint64_t have;          /* its length (with what w holds); every byte of it is in md      */
    molmo_bigwrite w;       /* writes in 2 MiB-aligned pieces: the mapped model then reads
                               from huge pages (io/bigwrite.h)                                */
    EVP_MD_CTX *md;
    int seen;               /* the current response's first body byte was checked            */
    molmo_error *err;
} blob_dl;

/* Starts the digest: SHA-256 of the content for LFS files, else git's blob SHA-1, which
 * hashes "blob <size>\0" before the content. */
static int md_start(blob_dl *d) {
    if (!EVP_DigestInit_ex(d->md, d->t->lfs ? EVP_sha256() : EVP_sha1(), NULL)) return 0;
    if (d->t->lfs) return 1;
    char hdr[40];
    int n = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)d->t->size);
    return EVP_DigestUpdate(d->md, hdr, (size_t)n + 1);
}

static molmo_status restart(blob_dl *d, const char *inc) {
    molmo_bigwrite_reset(&d->w, 0);
    if (ftruncate(d->fd, 0) != 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot truncate: %s", inc, strerror(errno));
    if (!md_start(d)) return molmo_err(d->err, MOLMO_ERR_INTERNAL, "OpenSSL digest init failed");
    d->pl->prog.bytes -= d->have;
    d->pl->prog.file_bytes = 0;
    d->have = 0;
    return MOLMO_OK;
}

/* The prefix kept from an earlier try is hashed again: the digest covers the whole file. */
static molmo_status hash_prefix(blob_dl *d, const char *inc) {
    static const size_t chunk = 1 << 20;
    unsigned char *buf = molmo_malloc(chunk);
    if (!buf) return molmo_err(d->err, MOLMO_ERR_NOMEM, "out of memory");
    molmo_status s = MOLMO_OK;
    for (uint64_t off = 0; off < d->have && s == MOLMO_OK;) {
        size_t want = d->have - off < chunk ? (size_t)(d->have - off) : chunk;
        ssize_t n = pread(d->fd, buf, want, (off_t)off);
        if (n <= 0)
            s = molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot read: %s", inc,
                          n < 0 ? strerror(errno) : "unexpected end");
        else if (!EVP_DigestUpdate(d->md, buf, (size_t)n))
            s = molmo_err(d->err, MOLMO_ERR_INTERNAL, "OpenSSL digest failed");
        else if (cancelled(d->pl))
            s = molmo_err(d->err, MOLMO_ERR_CANCELLED, "cancelled");
        off += n > 0 ? (uint64_t)n : 0;
    }
    molmo_free(buf);
    return s;
}

/* First body byte of a response: a 206 must start where we are; a 200 is the whole file (a
 * server that ignores Range), so a kept prefix is dropped. */
static molmo_status check_start(blob_dl *d, const molmo_hub_headers *h) {
    const molmo_hub_target *t = d->t;
    if (h->status == 206) {
        if (h->range_start != (int64_t)d->have)
            return molmo_err(d->err, MOLMO_ERR_FORMAT,
                             "%s: asked for bytes from %llu, the server sent them from %lld",
                             t->name, (unsigned long long)d->have, (long long)h->range_start);
        if (h->range_total >= 0 && (uint64_t)h->range_total != t->size)
            return molmo_err(d->err, MOLMO_ERR_FORMAT,
                             "%s: the server says %lld bytes, the hub listed %llu", t->name,
                             (long long)h->range_total, (unsigned long long)t->size);
        return MOLMO_OK;
    }
    if (d->have > 0) {
        molmo_status s = restart(d, t->name);
        if (s != MOLMO_OK) return s;
    }
    if (h->content_length >= 0 && (uint64_t)h->content_length != t->size)
        return molmo_err(d->err, MOLMO_ERR_FORMAT,
                         "%s: the server sends %lld bytes, the hub listed %llu", t->name,
                         (long long)h->content_length, (unsigned long long)t->size);
    return MOLMO_OK;
}

static molmo_status sink(void *user, const molmo_hub_headers *h, const void *data, size_t n) {
    blob_dl *d = user;
    molmo_status s;
    if (!d->seen) {
        d->seen = 1;
        if ((s = check_start(d, h)) != MOLMO_OK) return s;
    }
    if (n > d->t->size - d->have)
        return molmo_err(d->err, MOLMO_ERR_FORMAT, "%s: the server sent more than the %llu "
                         "bytes the hub listed", d->t->name, (unsigned long long)d->t->size);
    if (molmo_bigwrite_put(&d->w, data, n) != 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot write to the cache: %s", d->t->name,
                         strerror(errno));
    if (!EVP_DigestUpdate(d->md, data, n))
        return molmo_err(d->err, MOLMO_ERR_INTERNAL, "OpenSSL digest failed");
    d->have += n;
    d->pl->prog.file_bytes = d->have;
    d->pl->prog.bytes += n;
    d->pl->prog.received += n;
    return molmo_hub_report(d->pl, MOLMO_PULL_EVENT_BYTES, 0, d->err);
}

/* One GET of the rest of the file. *progress: bytes arrived (a retry then starts afresh). */
static molmo_status one_try(blob_dl *d, const char *inc, int *transient, long *retry_after,
                            int *progress) {
    molmo_hub_pull *pl = d->pl;
    molmo_hub_request rq = {.url = d->t->url, .follow = 1, .range_from = d->have,
                            .sink = sink, .sink_user = d};
    molmo_hub_response rs;
    memset(&rs, 0, sizeof rs);
    d->seen = 0;
    molmo_status s = molmo_hub_http_perform(pl->http, &rq, &rs, d->err);
    if (s == MOLMO_ERR_NETWORK) molmo_err_prefix(d->err, "%s", d->t->name);
    *progress = rs.n_sunk > 0;
    *transient = s == MOLMO_ERR_NETWORK && rs.transient;
    *retry_after = rs.h.retry_after_s;
    /* what arrived goes to the file whatever happens next: a later run resumes from it (wrong
     * bytes, MOLMO_ERR_FORMAT, are deleted anyway) */
    if (molmo_bigwrite_flush(&d->w) != 0 && s != MOLMO_ERR_FORMAT) {
        s = molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot write to the cache: %s", d->t->name,
                      strerror(errno));
        *transient = 0;
    } else if (s == MOLMO_OK && rs.h.status == 416 && d->have > 0) {
        /* the server cannot serve our range: the kept prefix is not of this file */
        s = restart(d, inc);
        if (s == MOLMO_OK)
            s = molmo_err(d->err, MOLMO_ERR_NETWORK, "%s: range not satisfiable", d->t->name);
        *transient = s == MOLMO_ERR_NETWORK;
    } else if (s == MOLMO_OK && rs.h.status != 200 && rs.h.status != 206) {
        s = molmo_hub_http_error(pl, &rs, d->t->name, d->err);
        *transient = rs.transient;
    } else if (s == MOLMO_OK && d->have < d->t->size) {
        s = molmo_err(d->err, MOLMO_ERR_NETWORK, "%s: the connection ended after %llu of %llu "
                      "bytes", d->t->name, (unsigned long long)d->have,
                      (unsigned long long)d->t->size);
        *transient = 1;
    }
    molmo_hub_response_clear(&rs);
    return s;
}

static molmo_status download(blob_dl *d, const char *inc) {
    int attempt = 0;
    while (d->have < d->t->size) {
        int transient, progress;
        long retry_after;
        molmo_status s = one_try(d, inc, &transient, &retry_after, &progress);
        if (s == MOLMO_OK) continue;
        if (progress) attempt = 0; /* a link that moves data is not failing: start the count over */
        if (!transient || ++attempt > d->pl->p->max_retries) return s;
        s = molmo_hub_backoff(d->pl, attempt, retry_after, d->err->msg, d->err);
        if (s != MOLMO_OK) return s;
    }
    return MOLMO_OK;
}

static molmo_status verify(blob_dl *d) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_DigestFinal_ex(d->md, md, &len))
        return molmo_err(d->err, MOLMO_ERR_INTERNAL, "OpenSSL digest failed");
    for (unsigned i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * len] = '\0';
    if (strcmp(hex, d->t->digest) == 0) return MOLMO_OK;
    return molmo_err(d->err, MOLMO_ERR_FORMAT,
                     "%s: %s mismatch (expected %.16s..., got %.16s...): the download is "
                     "corrupt and was deleted; pull again", d->t->name,
                     d->t->lfs ? "SHA-256" : "git SHA-1", d->t->digest, hex);
}

/* Opens (or creates) the .incomplete file and hashes what it already holds. */
static molmo_status open_partial(blob_dl *d, const char *inc) {
    d->fd = open(inc, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->fd < 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot create: %s", inc, strerror(errno));
    struct stat st;
    if (fstat(d->fd, &st) != 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot stat: %s", inc, strerror(errno));
    d->have = (uint64_t)st.st_size;
    if (molmo_bigwrite_init(&d->w, d->fd, d->have, 0) != 0)
        return molmo_err(d->err, MOLMO_ERR_NOMEM, "%s: out of memory", inc);
    d->md = EVP_MD_CTX_new();
    if (!d->md || !md_start(d)) return molmo_err(d->err, MOLMO_ERR_NOMEM, "OpenSSL: out of memory");
    if (d->have > d->t->size) { /* not a prefix of this file */
        d->pl->prog.bytes += d->have; /* restart() takes it off again */
        return restart(d, inc);
    }
    return hash_prefix(d, inc);
}

static molmo_status finish(blob_dl *d, const char *inc, const char *blob) {
    molmo_status s = verify(d);
    if (s != MOLMO_OK) return s;
    if (fdatasync(d->fd) != 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot sync: %s", inc, strerror(errno));
    if (rename(inc, blob) != 0)
        return molmo_err(d->err, MOLMO_ERR_IO, "%s: cannot rename into blobs/: %s", inc,
                         strerror(errno));
    return MOLMO_OK;
}

static int blob_complete(const char *blob, uint64_t size) {
    struct stat st;
    return stat(blob, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

molmo_status molmo_hub_fetch_blob(molmo_hub_pull *pl, const molmo_hub_target *t,
                                  molmo_error *err) {
    char blob[4608], inc[4640], lock[4608];
    snprintf(blob, sizeof blob, "%s/blobs/%s", pl->repo_dir, t->etag);
    snprintf(inc, sizeof inc, "%s.incomplete", blob);
    snprintf(lock, sizeof lock, "%s/%s.lock", pl->lock_dir, t->etag);
    blob_dl d = {.pl = pl, .t = t, .fd = -1, .err = err};
    int lock_fd = -1;
    molmo_status s = take_lock(pl, lock, t->name, &lock_fd, err);
    if (s != MOLMO_OK) return s;
    if (blob_complete(blob, t->size)) goto done; /* another process finished it meanwhile */
    if ((s = open_partial(&d, inc)) != MOLMO_OK) goto done;
    pl->prog.file_bytes = d.have;
    pl->prog.bytes += d.have;
    if (d.have > 0)
        molmo_log(pl->p->log, pl->p->log_user, MOLMO_LOG_INFO, "%s: resuming at byte %llu of %llu",
                  t->name, (unsigned long long)d.have, (unsigned long long)t->size);
    if ((s = molmo_hub_report(pl, MOLMO_PULL_EVENT_FILE_START, 1, err)) != MOLMO_OK) goto done;
    pl->t_report = 0; /* the first bytes of every file are reported at once */
    if ((s = download(&d, inc)) == MOLMO_OK) s = finish(&d, inc, blob);
    if (s == MOLMO_ERR_FORMAT) unlink(inc); /* wrong bytes: never resume from them */
done:
    if (d.fd >= 0) close(d.fd);
    EVP_MD_CTX_free(d.md);
    molmo_bigwrite_free(&d.w);
    if (lock_fd >= 0) close(lock_fd); /* releases the flock */
    return s;
}

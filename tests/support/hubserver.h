/* hubserver.h — a fake Hugging Face hub for molmo_pull's tests, on libmicrohttpd, listening on
 * 127.0.0.1 with an ephemeral port inside the test process (no network, no Python). It speaks
 * the hub's public conventions:
 *   GET  /api/models/{org}/{name}/revision/{rev}[?blobs=True]   commit + siblings (rfilename,
 *        size, blobId, lfs {sha256, size, pointerSize}); 404 RepoNotFound / RevisionNotFound
 *   HEAD|GET /{org}/{name}/resolve/{rev}/{file}   ETag (git blob SHA-1), X-Repo-Commit, Range;
 *        LFS files (*.safetensors): 302 to http://localhost:PORT/cdn/{sha256} with
 *        X-Linked-Etag, X-Linked-Size — another host, as the real CDN, which answers 400 when
 *        an Authorization header reaches it (as a signed S3 URL does)
 *   GET  /cdn/{sha256}   the LFS object, with Range (206, Content-Range; 416 past the end)
 * and can be told to cut a transfer mid-file, serve a corrupted byte, answer an error status
 * (e.g. 503), or demand a token (401 GatedRepo without one). */
#ifndef MOLMO_TEST_HUBSERVER_H
#define MOLMO_TEST_HUBSERVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tu_hub tu_hub;

/* Starts the server; fails the test when it cannot. */
tu_hub *tu_hub_start(void);
void tu_hub_stop(tu_hub *h);
/* "http://127.0.0.1:PORT" */
const char *tu_hub_url(const tu_hub *h);

/* Adds commit `sha` (40 hex digits) of `repo` holding every regular file of `dir`; `branch`
 * (may be NULL) then names it. */
void tu_hub_add_commit(tu_hub *h, const char *repo, const char *sha, const char *branch,
                       const char *dir);
/* Adds or replaces one file of commit `sha`. */
void tu_hub_put_file(tu_hub *h, const char *sha, const char *name, const void *data, size_t n);

/* Requests for `repo` need "Authorization: Bearer <token>" (NULL: open again). */
void tu_hub_require_token(tu_hub *h, const char *repo, const char *token);
/* The next `times` GETs of file `name` (resolve or CDN) close the connection after the byte
 * at absolute offset `after` - 1. */
void tu_hub_cut(tu_hub *h, const char *name, uint64_t after, int times);
/* File `name` is served with its middle byte flipped (its digest headers stay right). */
void tu_hub_corrupt(tu_hub *h, const char *name, int on);
/* The next `times` requests of any kind answer `status` with no body. */
void tu_hub_fail(tu_hub *h, int status, int times);
/* Forgets every cut, corruption and failure set above. */
void tu_hub_reset_faults(tu_hub *h);

typedef struct tu_hub_stats {
    int api, head, get, cdn;   /* requests by kind (get: GET of a resolve URL)               */
    uint64_t body_bytes;       /* file bytes sent by GETs (resolve and CDN)                  */
    char cdn_range[64];        /* Range header of the last CDN GET ("" when none)            */
    int auth_to_cdn;           /* CDN requests carrying an Authorization header (must be 0)  */
    int failed;                /* answers from tu_hub_fail                                   */
} tu_hub_stats;

tu_hub_stats tu_hub_get_stats(tu_hub *h);
void tu_hub_reset_stats(tu_hub *h);

#endif

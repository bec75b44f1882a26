/* hub.h — internals of molmo_pull (issue 9): downloading a model repository from the Hugging
 * Face hub into the standard cache, the way huggingface_hub's snapshot_download does.
 *
 *   hub_meta.c  parsing what the hub answers: the revision listing (JSON), response headers,
 *               ETags, file names, revisions and --include globs (pure functions, fuzzed)
 *   hub_http.c  libcurl: one handle per pull, the token only for the endpoint's own host,
 *               headers parsed as they arrive, bodies to memory or to a sink
 *   hub_blob.c  one file: lock, resume into blobs/<etag>.incomplete, SHA-256 / git-SHA-1
 *               verification, rename into blobs/, retries with back-off, progress
 *   hub.c       molmo_pull itself: parameters, offline mode, listing, plan, snapshot links,
 *               refs
 */
#ifndef MOLMO_IO_HUB_H
#define MOLMO_IO_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* ---- hub_meta.c: parsing ------------------------------------------------------------------ */

#define MOLMO_HUB_ETAG_MAX 128
#define MOLMO_HUB_LOCATION_MAX 8192
#define MOLMO_HUB_MAX_FILES 100000

/* One entry of the revision listing ("siblings"). */
typedef struct molmo_hub_file {
    char *name;            /* repo-relative path, checked by molmo_hub_valid_filename        */
    int64_t size;          /* bytes (the LFS object's size for LFS files); -1 when not given */
    char blob_id[41];      /* git blob SHA-1, lowercase hex, or ""                            */
    char lfs_sha256[65];   /* SHA-256 of the content for LFS files, or ""                     */
} molmo_hub_file;

/* GET /api/models/{repo}/revision/{rev}?blobs=True, parsed. */
typedef struct molmo_hub_listing {
    char commit[41];       /* "sha": the commit the revision resolved to                      */
    molmo_hub_file *files; /* [n_files]                                                       */
    int n_files;
} molmo_hub_listing;

/* Parses the revision listing json[len] (untrusted). `ctx` names it in errors. On failure
 * *out is empty (nothing to clear). MOLMO_ERR_FORMAT names the field at fault. */
molmo_status molmo_hub_parse_listing(const char *json, size_t len, const char *ctx,
                                     molmo_hub_listing *out, molmo_error *err);
void molmo_hub_listing_clear(molmo_hub_listing *l);

/* The response headers the hub protocol uses, of the latest response seen. */
typedef struct molmo_hub_headers {
    long status;                          /* 0 before a status line was seen                 */
    char etag[MOLMO_HUB_ETAG_MAX];        /* normalised (no W/, no quotes), "" when absent   */
    char linked_etag[MOLMO_HUB_ETAG_MAX]; /* X-Linked-Etag: the LFS object's SHA-256         */
    int64_t linked_size;                  /* X-Linked-Size, -1 when absent                   */
    int64_t content_length;               /* -1 when absent                                  */
    int64_t range_start;                  /* Content-Range: bytes START-END/TOTAL, -1 absent */
    int64_t range_total;                  /* -1 when absent or "*"                           */
    char commit[41];                      /* X-Repo-Commit                                   */
    char location[MOLMO_HUB_LOCATION_MAX];
    char error_code[64];                  /* X-Error-Code ("RepoNotFound", "GatedRepo", ...) */
    char error_message[160];              /* X-Error-Message, printable ASCII only           */
    char content_encoding[32];
    long retry_after_s;                   /* Retry-After in seconds, -1 when absent          */
    int bad;                              /* a protocol header was present but malformed     */
} molmo_hub_headers;

void molmo_hub_headers_reset(molmo_hub_headers *h);
/* Feeds one raw header line (CRLF optional). A status line ("HTTP/...") starts a new response:
 * everything from the previous one (a redirect) is forgotten. */
void molmo_hub_headers_feed(molmo_hub_headers *h, const char *line, size_t len);

/* ETag header value -> a file name: strips W/ and quotes; 1 when the result is non-empty, made
 * of [A-Za-z0-9._-], does not start with '.' and fits out[cap]; else 0 and out = "". */
int molmo_hub_normalize_etag(const char *raw, size_t len, char *out, size_t cap);
/* 1 when s[0..n) are n lowercase hex digits. */
int molmo_hub_is_hex(const char *s, size_t n);
/* 1 when a repo file name from the hub is safe to use under snapshots/<commit>/: relative,
 * components neither empty nor "." nor "..", no backslash or control character, at most
 * 1024 bytes. */
int molmo_hub_valid_filename(const char *name);
/* 1 when a revision (branch, tag, commit, "refs/pr/1") is safe as a path under refs/. */
int molmo_hub_valid_revision(const char *rev);
/* 1 when `name` matches one of globs[0..n) (fnmatch without FNM_PATHNAME, as huggingface_hub's
 * allow_patterns: '*' also matches '/'; "dir/" means everything below dir); n == 0 matches
 * everything. */
int molmo_hub_glob_match(const char *const *globs, int n, const char *name);

/* ---- hub_http.c: libcurl ------------------------------------------------------------------- */

typedef struct molmo_hub_http molmo_hub_http;

/* Receives the body of a 2xx response as it arrives. Returning non-OK aborts the transfer and
 * molmo_hub_http_perform returns that status (err filled by the sink). */
typedef molmo_status (*molmo_hub_sink_fn)(void *user, const molmo_hub_headers *h,
                                          const void *data, size_t n);

typedef struct molmo_hub_request {
    const char *url;
    int head;              /* HEAD instead of GET                                            */
    int follow;            /* follow redirects (the token is never sent to another host)     */
    uint64_t range_from;   /* > 0: Range: bytes=range_from-                                   */
    size_t max_body;       /* bodies kept in memory are cut here (then MOLMO_ERR_TOO_LARGE)   */
    molmo_hub_sink_fn sink;/* when set, 2xx bodies go here instead of memory                 */
    void *sink_user;
} molmo_hub_request;

typedef struct molmo_hub_response {
    molmo_hub_headers h;
    char *body;            /* NUL-terminated (non-2xx bodies, or all when no sink); owned     */
    size_t body_len;
    uint64_t n_sunk;       /* bytes handed to the sink                                        */
    int transient;         /* on MOLMO_ERR_NETWORK: retrying may succeed                      */
} molmo_hub_response;

/* One connection cache per pull. `endpoint` decides which host gets the token (NULL/"" = no
 * token). `cancel` (optional) aborts a transfer within about a second of becoming non-zero. */
molmo_status molmo_hub_http_create(const char *endpoint, const char *token, int timeout_s,
                                   const volatile int *cancel, molmo_hub_http **out,
                                   molmo_error *err);
void molmo_hub_http_free(molmo_hub_http *h);

/* Performs one request. MOLMO_OK when a response arrived, whatever its status (rs->h.status);
 * MOLMO_ERR_NETWORK for transport failures (rs->transient says whether a retry may help; the
 * message names the host, not the URL: callers prefix what they asked for);
 * MOLMO_ERR_CANCELLED; or what the sink returned. Clear rs with molmo_hub_response_clear. */
molmo_status molmo_hub_http_perform(molmo_hub_http *h, const molmo_hub_request *rq,
                                    molmo_hub_response *rs, molmo_error *err);
void molmo_hub_response_clear(molmo_hub_response *rs);

/* 1 when url has the same scheme://host:port as the endpoint the handle was made for. */
int molmo_hub_http_same_origin(const molmo_hub_http *h, const char *url);
/* curl_easy_escape of s[0..n) into a molmo_malloc'ed string (NULL: out of memory). */
char *molmo_hub_http_escape(molmo_hub_http *h, const char *s, size_t n);

/* ---- hub_blob.c and hub.c: one pull ----------------------------------------------------- */

/* The state of one molmo_pull (hub.c makes it; hub_blob.c downloads through it). */
typedef struct molmo_hub_pull {
    const molmo_pull_params *p;
    molmo_hub_http *http;
    char repo[256], revision[256], commit[41];
    char endpoint[1024];
    char repo_dir[4096];     /* <cache>/models--ORG--NAME                                      */
    char lock_dir[4096];     /* <cache>/.locks/models--ORG--NAME (shared with huggingface_hub) */
    int have_token;
    molmo_pull_progress prog;/* what the progress callback sees                               */
    double t0, t_report, t_rate;  /* monotonic seconds: start, last BYTES report, rate sample */
    uint64_t rx_rate;        /* prog.received at t_rate                                       */
} molmo_hub_pull;

/* A file to download and what it must be. */
typedef struct molmo_hub_target {
    const char *name;                 /* repo-relative path (points into the listing)        */
    char etag[MOLMO_HUB_ETAG_MAX];    /* its blob name in blobs/                             */
    int lfs;                          /* 1: digest is the SHA-256 of the content;            */
                                      /* 0: the git blob SHA-1 ("blob <size>\0" + content)   */
    char digest[65];                  /* expected digest, lowercase hex                      */
    uint64_t size;
    char *url;                        /* where to GET it (resolve URL or CDN location); owned */
} molmo_hub_target;

/* Downloads t into blobs/<etag> (resuming blobs/<etag>.incomplete, under the lock that
 * huggingface_hub uses), verifies size and digest, renames it into place. Nothing is renamed
 * unless verified; a mismatch deletes the partial file (MOLMO_ERR_FORMAT). */
molmo_status molmo_hub_fetch_blob(molmo_hub_pull *pl, const molmo_hub_target *t,
                                  molmo_error *err);

/* Waits the back-off before retry `attempt` (1-based): retry_delay_ms * 2^(attempt-1), at
 * most 30 s, at least Retry-After; reports MOLMO_PULL_EVENT_RETRY. MOLMO_ERR_CANCELLED when
 * cancelled meanwhile. */
molmo_status molmo_hub_backoff(molmo_hub_pull *pl, int attempt, long retry_after_s,
                               const char *why, molmo_error *err);

/* Sends pl->prog with `ev` to the progress callback (BYTES events at most every 100 ms unless
 * `force`), after updating rate/ETA. MOLMO_ERR_CANCELLED when the callback asks to stop or
 * the cancel flag is set. */
molmo_status molmo_hub_report(molmo_hub_pull *pl, molmo_pull_event ev, int force,
                              molmo_error *err);

/* An HTTP error status -> molmo_status and a message for the user (401 -> token advice,
 * 404 -> repo/revision/file not found); sets rs->transient for 408, 429 and 5xx. `what` names
 * the request. */
molmo_status molmo_hub_http_error(const molmo_hub_pull *pl, molmo_hub_response *rs,
                                  const char *what, molmo_error *err);

/* Monotonic seconds. */
double molmo_hub_now(void);

#endif

/* hub.c — molmo_pull: a model repository from the Hugging Face hub into the standard cache.
 * Mirrors huggingface_hub's snapshot_download: one listing call
 * (GET /api/models/{repo}/revision/{rev}?blobs=True: the commit and every file with its size,
 * git blob id and LFS SHA-256), then for each file not already in the snapshot a HEAD of
 * /{repo}/resolve/{commit}/{file} (its ETag, X-Linked-Etag, X-Linked-Size and, for LFS files,
 * the CDN location; relative redirects of renamed repos are followed, the CDN one is not) and
 * the verified download of hub_blob.c. Files resolve by commit, never by branch, so a branch
 * that moves during a pull cannot mix two commits. refs/<revision> is written last. */
#define _POSIX_C_SOURCE 200809L
#include "io/hub.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "io/hfcache.h"
#include "io/path.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define MAX_LISTING_BYTES ((size_t)64 << 20)

molmo_pull_params molmo_pull_default_params(void) {
    molmo_pull_params p;
    memset(&p, 0, sizeof p);
    p.offline = molmo_hf_offline_env();
    p.max_retries = 5;
    p.retry_delay_ms = 1000;
    p.timeout_s = 30;
    return p;
}

/* ---- HTTP errors ---------------------------------------------------------------------------- */

/* The hub's error bodies are {"error": "..."}; X-Error-Message carries the same. */
static void error_text(const molmo_hub_response *rs, char *out, size_t cap) {
    out[0] = '\0';
    if (rs->h.error_message[0]) {
        snprintf(out, cap, ": %s", rs->h.error_message);
        return;
    }
    json_t *j = rs->body ? json_loadb(rs->body, rs->body_len, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    if (e) snprintf(out, cap, ": %.120s", e);
    json_decref(j);
}

molmo_status molmo_hub_http_error(const molmo_hub_pull *pl, molmo_hub_response *rs,
                                  const char *what, molmo_error *err) {
    long st = rs->h.status;
    const char *code = rs->h.error_code;
    char msg[200];
    error_text(rs, msg, sizeof msg);
    rs->transient = st == 408 || st == 429 || st >= 500;
    if (rs->transient)
        return molmo_err(err, MOLMO_ERR_NETWORK, "%s: the hub answered HTTP %ld%s", what, st, msg);
    if (!strcmp(code, "GatedRepo"))
        return molmo_err(err, MOLMO_ERR_NETWORK, "%s is gated (HTTP %ld): accept its terms at "
                         "%s/%s, then %s", pl->repo, st, pl->endpoint, pl->repo, pl->have_token ?
                         "use a token of that account (HF_TOKEN)" : "set HF_TOKEN to a token of "
                         "that account (or log in: huggingface-cli login)");
    if (!strcmp(code, "RepoNotFound") || (st == 404 && !code[0] && !strcmp(what, pl->repo)))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "repository %s not found on %s (HTTP %ld)%s",
                         pl->repo, pl->endpoint, st, pl->have_token ? "" :
                         "; a private or gated one needs a token: set HF_TOKEN");
    if (!strcmp(code, "RevisionNotFound"))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s has no revision \"%s\" (HTTP %ld)",
                         pl->repo, pl->revision, st);
    if (st == 404 || !strcmp(code, "EntryNotFound"))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: not found in %s at %s (HTTP %ld)", what,
                         pl->repo, pl->commit, st);
    if (st == 401)
        return molmo_err(err, MOLMO_ERR_NETWORK, pl->have_token ?
                         "%s: the hub refused the token (HTTP 401%s); check HF_TOKEN or the "
                         "token file" : "%s: HTTP 401%s: the repository is private or gated; "
                         "set HF_TOKEN (or log in: huggingface-cli login)", what, msg);
    if (st == 403)
        return molmo_err(err, MOLMO_ERR_NETWORK, "%s: HTTP 403 forbidden%s; the token lacks "
                         "access to %s", what, msg, pl->repo);
    return molmo_err(err, MOLMO_ERR_NETWORK, "%s: unexpected HTTP %ld from the hub%s", what, st,
                     msg);
}

/* Performs rq, retrying transport failures, 408, 429 and 5xx with back-off. MOLMO_OK only for
 * answers below 400 (the caller looks at redirects itself). */
static molmo_status perform_retry(molmo_hub_pull *pl, const molmo_hub_request *rq,
                                  molmo_hub_response *rs, const char *what, molmo_error *err) {
    for (int attempt = 0;;) {
        molmo_status s = molmo_hub_http_perform(pl->http, rq, rs, err);
        if (s == MOLMO_ERR_NETWORK) molmo_err_prefix(err, "%s", what);
        else if (s == MOLMO_OK && rs->h.status >= 400) s = molmo_hub_http_error(pl, rs, what, err);
        if (s == MOLMO_OK) return MOLMO_OK;
        if (!rs->transient || ++attempt > pl->p->max_retries) return s;
        if ((s = molmo_hub_backoff(pl, attempt, rs->h.retry_after_s, err->msg, err)) != MOLMO_OK)
            return s;
    }
}

/* ---- setup ---------------------------------------------------------------------------------- */

static molmo_status setup_paths(molmo_hub_pull *pl, molmo_error *err) {
    char root[2048], folder[512];
    const char *dir = pl->p->cache_dir;
    if (dir && *dir) {
        if (strlen(dir) >= sizeof root)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "cache directory path too long");
        snprintf(root, sizeof root, "%s", dir);
    } else if (molmo_hf_cache_root(root, sizeof root) != 0) {
        return molmo_err(err, MOLMO_ERR_IO, "no Hugging Face cache directory: set HF_HUB_CACHE "
                         "(or HF_HOME, or HOME)");
    }
    molmo_hf_repo_folder(pl->repo, folder, sizeof folder);
    if (molmo_hf_repo_dir(root, pl->repo, pl->repo_dir, sizeof pl->repo_dir) != 0 ||
        (size_t)snprintf(pl->lock_dir, sizeof pl->lock_dir, "%s/.locks/%s", root, folder) >=
            sizeof pl->lock_dir)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: cache path too long", root);
    return MOLMO_OK;
}

static molmo_status setup_endpoint(molmo_hub_pull *pl, molmo_error *err) {
    const char *e = pl->p->endpoint;
    if (!e || !*e) e = getenv("HF_ENDPOINT");
    if (!e || !*e) e = DEFAULT_ENDPOINT;
    size_t n = strlen(e);
    while (n > 0 && e[n - 1] == '/') n--; /* as huggingface_hub: ENDPOINT.rstrip("/") */
    if (n >= sizeof pl->endpoint || (strncmp(e, "http://", 7) && strncmp(e, "https://", 8)))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "endpoint \"%.100s\" is not an http:// or https:// URL", e);
    memcpy(pl->endpoint, e, n);
    pl->endpoint[n] = '\0';
    return MOLMO_OK;
}

static molmo_status setup(molmo_hub_pull *pl, const char *repo_id, molmo_error *err) {
    char rev[256];
    if (!repo_id || !molmo_hf_parse_repo_id(repo_id, pl->repo, sizeof pl->repo, rev, sizeof rev))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "\"%.100s\" is not a Hugging Face repo id "
                         "(ORG/NAME or ORG/NAME@REVISION)", repo_id ? repo_id : "(null)");
    const char *r = pl->p->revision && *pl->p->revision ? pl->p->revision : rev;
    if (!molmo_hub_valid_revision(r) || strlen(r) >= sizeof pl->revision)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "\"%.100s\" is not a valid revision", r);
    snprintf(pl->revision, sizeof pl->revision, "%s", r);
    for (int i = 0; i < pl->p->n_include; i++)
        if (!pl->p->include || !pl->p->include[i])
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "include pattern %d is NULL", i);
    pl->prog.repo = pl->repo;
    pl->prog.commit = pl->commit;
    pl->prog.file_index = -1;
    pl->prog.eta_s = -1;
    pl->t0 = pl->t_rate = molmo_hub_now();
    molmo_status s = setup_paths(pl, err);
    return s == MOLMO_OK && !pl->p->offline ? setup_endpoint(pl, err) : s;
}

/* ---- offline -------------------------------------------------------------------------------- */

/* Walks a cached snapshot: every link must reach its blob (an interrupted Python download can
 * leave a dangling one), and every include glob must match some file. */
static molmo_status walk_snapshot(molmo_hub_pull *pl, const char *dir, const char *rel,
                                  int depth, int *matched, int *n_files, molmo_error *err) {
    DIR *d = opendir(dir);
    if (!d) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot read: %s", dir, strerror(errno));
    molmo_status s = MOLMO_OK;
    struct dirent *e;
    char path[4096], name[2048];
    while (s == MOLMO_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            s = molmo_err(err, MOLMO_ERR_NOT_FOUND, "offline: %s@%s: %s in the cached snapshot "
                          "points to a missing blob (an interrupted download?); pull it again "
                          "with network access", pl->repo, pl->revision, name);
        else if (S_ISDIR(st.st_mode) && depth < 16)
            s = walk_snapshot(pl, path, name, depth + 1, matched, n_files, err);
        else if (S_ISREG(st.st_mode)) {
            (*n_files)++;
            for (int i = 0; i < pl->p->n_include; i++)
                matched[i] |= molmo_hub_glob_match(&pl->p->include[i], 1, name);
        }
    }
    closedir(d);
    return s;
}

static molmo_status pull_offline(molmo_hub_pull *pl, char *snap, size_t cap, molmo_error *err) {
    char commit[128];
    if (molmo_hf_read_ref(pl->repo_dir, pl->revision, commit, sizeof commit) != 0 ||
        (size_t)snprintf(snap, cap, "%s/snapshots/%s", pl->repo_dir, commit) >= cap ||
        !molmo_path_is_dir(snap))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "offline mode (--offline or HF_HUB_OFFLINE): "
                         "%s revision %s is not in the cache (%s); pull it once with network "
                         "access", pl->repo, pl->revision, pl->repo_dir);
    int n = pl->p->n_include, n_files = 0;
    int *matched = molmo_calloc(n > 0 ? (size_t)n : 1, sizeof *matched);
    if (!matched) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    molmo_status s = walk_snapshot(pl, snap, "", 0, matched, &n_files, err);
    for (int i = 0; s == MOLMO_OK && i < n; i++)
        if (!matched[i])
            s = molmo_err(err, MOLMO_ERR_NOT_FOUND, "offline: no file matching \"%s\" in the "
                          "cached snapshot of %s@%s", pl->p->include[i], pl->repo, pl->revision);
    if (s == MOLMO_OK && n_files == 0)
        s = molmo_err(err, MOLMO_ERR_NOT_FOUND, "offline: the cached snapshot %s is empty", snap);
    molmo_free(matched);
    return s;
}

/* ---- online: listing and per-file metadata ------------------------------------------------ */

static molmo_status fetch_listing(molmo_hub_pull *pl, molmo_hub_listing *out, molmo_error *err) {
    char *rev = molmo_hub_http_escape(pl->http, pl->revision, strlen(pl->revision));
    size_t cap = strlen(pl->endpoint) + strlen(pl->repo) + (rev ? strlen(rev) : 0) + 64;
    char *url = rev ? molmo_malloc(cap) : NULL;
    molmo_hub_response rs;
    memset(&rs, 0, sizeof rs);
    molmo_status s;
    if (!url) {
        s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(url, cap, "%s/api/models/%s/revision/%s?blobs=True", pl->endpoint, pl->repo, rev);
    molmo_hub_request rq = {.url = url, .follow = 1, .max_body = MAX_LISTING_BYTES};
    s = perform_retry(pl, &rq, &rs, pl->repo, err);
    if (s == MOLMO_OK && rs.h.status != 200)
        s = molmo_err(err, MOLMO_ERR_NETWORK, "%s: unexpected HTTP %ld", url, rs.h.status);
    if (s == MOLMO_OK) {
        char ctx[600];
        snprintf(ctx, sizeof ctx, "hub listing of %s@%s", pl->repo, pl->revision);
        s = molmo_hub_parse_listing(rs.body ? rs.body : "", rs.body_len, ctx, out, err);
    }
done:
    molmo_hub_response_clear(&rs);
    molmo_free(url);
    molmo_free(rev);
    return s;
}

/* {endpoint}/{repo}/resolve/{commit}/{file, each component escaped}. */
static char *resolve_url(molmo_hub_pull *pl, const char *name) {
    size_t cap = strlen(pl->endpoint) + strlen(pl->repo) + 64 + 3 * strlen(name) + 1;
    char *url = molmo_malloc(cap);
    if (!url) return NULL;
    size_t k = (size_t)snprintf(url, cap, "%s/%s/resolve/%s", pl->endpoint, pl->repo, pl->commit);
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        char *e = molmo_hub_http_escape(pl->http, p, n);
        if (!e) {
            molmo_free(url);
            return NULL;
        }
        k += (size_t)snprintf(url + k, cap - k, "/%s", e);
        molmo_free(e);
        p += n + (p[n] == '/');
    }
    return url;
}

/* "scheme://host[:port]" + an absolute path from a relative redirect (a renamed repo). */
static char *join_origin(const char *url, const char *path) {
    const char *host = strstr(url, "://");
    size_t n = host ? (size_t)(host + 3 - url) + strcspn(host + 3, "/?#") : 0;
    char *out = molmo_malloc(n + strlen(path) + 1);
    if (out) memcpy(out, url, n), strcpy(out + n, path);
    return out;
}

/* What the HEAD answer and the listing say about a file must agree; together they give the
 * blob name (X-Linked-Etag for LFS files, else the ETag: huggingface_hub's choice), the digest
 * to check and the size. */
static molmo_status target_from_headers(molmo_hub_pull *pl, const molmo_hub_file *f,
                                        const molmo_hub_headers *h, molmo_hub_target *t,
                                        molmo_error *err) {
    if (h->bad)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: malformed hub headers (ETag, size or "
                         "commit)", f->name);
    if (h->commit[0] && strcmp(h->commit, pl->commit))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: the hub answered for commit %s, the listing "
                         "said %s", f->name, h->commit, pl->commit);
    const char *etag = h->linked_etag[0] ? h->linked_etag : h->etag;
    t->lfs = h->linked_etag[0] || f->lfs_sha256[0];
    const char *digest = t->lfs ? (f->lfs_sha256[0] ? f->lfs_sha256 : etag)
                                : (strlen(h->etag) == 40 && molmo_hub_is_hex(h->etag, 40)
                                       ? h->etag : f->blob_id);
    size_t dlen = t->lfs ? 64 : 40;
    if (strlen(digest) != dlen || !molmo_hub_is_hex(digest, dlen))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: the hub gave no %s to verify it with",
                         f->name, t->lfs ? "SHA-256 (X-Linked-Etag)" : "git blob id (ETag)");
    if ((t->lfs && h->linked_etag[0] && f->lfs_sha256[0] && strcmp(h->linked_etag, digest)) ||
        (!t->lfs && f->blob_id[0] && strcmp(f->blob_id, digest)))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: the ETag and the listing disagree (%s vs "
                         "%s)", f->name, etag, t->lfs ? f->lfs_sha256 : f->blob_id);
    memcpy(t->digest, digest, dlen + 1);
    snprintf(t->etag, sizeof t->etag, "%s", etag[0] ? etag : digest);
    int64_t size = h->linked_size >= 0 ? h->linked_size
                   : (!t->lfs && h->status / 100 == 2) ? h->content_length : f->size;
    if (size < 0 || (f->size >= 0 && size != f->size))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: size %lld from the hub, %lld in the listing",
                         f->name, (long long)size, (long long)f->size);
    t->size = (uint64_t)size;
    return MOLMO_OK;
}

/* HEAD {endpoint}/{repo}/resolve/{commit}/{file}: follows relative redirects (renamed repos),
 * stops at an absolute one (the CDN), which becomes the download URL. */
static molmo_status file_meta(molmo_hub_pull *pl, const molmo_hub_file *f, molmo_hub_target *t,
                              molmo_error *err) {
    char *url = resolve_url(pl, f->name);
    molmo_hub_response rs;
    memset(&rs, 0, sizeof rs);
    molmo_status s = url ? MOLMO_OK : molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    for (int hop = 0; s == MOLMO_OK; hop++) {
        molmo_hub_request rq = {.url = url, .head = 1, .max_body = 4096};
        if ((s = perform_retry(pl, &rq, &rs, f->name, err)) != MOLMO_OK) break;
        const char *loc = rs.h.location;
        if (rs.h.status / 100 != 3) break;
        if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8)) {
            molmo_free(url);
            url = molmo_strdup(loc);
            if (!url) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
            break;
        }
        if (loc[0] != '/' || hop >= 5) {
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: HTTP %ld with an unusable Location \"%.80s\"",
                          f->name, rs.h.status, loc);
            break;
        }
        char *next = join_origin(url, loc);
        molmo_free(url);
        url = next;
        if (!url) s = molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    }
    t->name = f->name;
    if (s == MOLMO_OK) s = target_from_headers(pl, f, &rs.h, t, err);
    molmo_hub_response_clear(&rs);
    if (s != MOLMO_OK) molmo_free(url);
    else t->url = url;
    return s;
}

/* ---- online: the plan ------------------------------------------------------------------------ */

enum { IN_SNAPSHOT, IN_BLOBS, TO_FETCH };

typedef struct plan_item {
    const molmo_hub_file *f;
    int state;
    molmo_hub_target t;
} plan_item;

typedef struct plan {
    plan_item *items;
    int n, n_fetch;
    uint64_t total, need;  /* bytes to fetch; bytes still missing on disk (resumes counted) */
} plan;

static int regular_size(const char *path, int64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    *size = (int64_t)st.st_size;
    return 1;
}

/* Where a file stands: linked in this snapshot already, its blob present (another snapshot or
 * a Python download), or to be fetched. A size that disagrees with the listing is refetched. */
static int cached_state(molmo_hub_pull *pl, const molmo_hub_file *f, molmo_hub_target *t) {
    char path[8192];
    int64_t sz;
    snprintf(path, sizeof path, "%s/snapshots/%s/%s", pl->repo_dir, pl->commit, f->name);
    if (regular_size(path, &sz) && (f->size < 0 || sz == f->size)) return IN_SNAPSHOT;
    const char *etag = f->lfs_sha256[0] ? f->lfs_sha256 : f->blob_id;
    snprintf(path, sizeof path, "%s/blobs/%s", pl->repo_dir, etag);
    if (etag[0] && f->size >= 0 && regular_size(path, &sz) && sz == f->size) {
        snprintf(t->etag, sizeof t->etag, "%s", etag);
        return IN_BLOBS;
    }
    return TO_FETCH;
}

static molmo_status make_plan(molmo_hub_pull *pl, const molmo_hub_listing *l, plan *pn,
                              molmo_error *err) {
    pn->items = molmo_calloc(l->n_files ? (size_t)l->n_files : 1, sizeof *pn->items);
    if (!pn->items) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n_files; i++) {
        if (!molmo_hub_glob_match(pl->p->include, pl->p->n_include, l->files[i].name)) continue;
        plan_item *it = &pn->items[pn->n++];
        it->f = &l->files[i];
        it->t.name = it->f->name;
        it->state = cached_state(pl, it->f, &it->t);
        if (it->state != TO_FETCH) continue;
        molmo_status s = file_meta(pl, it->f, &it->t, err);
        if (s != MOLMO_OK) return s;
        char inc[8192];
        int64_t have = 0;
        snprintf(inc, sizeof inc, "%s/blobs/%s", pl->repo_dir, it->t.etag);
        if (regular_size(inc, &have) && (uint64_t)have == it->t.size) {
            it->state = IN_BLOBS; /* known under the HEAD's ETag */
            continue;
        }
        strcat(inc, ".incomplete");
        if (!regular_size(inc, &have) || (uint64_t)have > it->t.size) have = 0;
        pn->n_fetch++;
        pn->total += it->t.size;
        pn->need += it->t.size - (uint64_t)have;
    }
    if (pn->n == 0)
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s@%s: %s", pl->repo, pl->revision,
                         l->n_files ? "no file matches the include patterns"
                                    : "the repository has no files");
    return MOLMO_OK;
}

static void plan_free(plan *pn) {
    for (int i = 0; pn->items && i < pn->n; i++) molmo_free(pn->items[i].t.url);
    molmo_free(pn->items);
}

/* Fails before the first byte rather than at 90% of a 30 GB download. */
static molmo_status check_space(molmo_hub_pull *pl, const plan *pn, molmo_error *err) {
    char blobs[4200];
    struct statvfs vs;
    snprintf(blobs, sizeof blobs, "%s/blobs", pl->repo_dir);
    if (statvfs(blobs, &vs) != 0) return MOLMO_OK; /* unknown: let the writes tell */
    uint64_t avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
    if (pn->need <= avail) return MOLMO_OK;
    return molmo_err(err, MOLMO_ERR_IO, "not enough disk space for %s: %.2f GB more are needed, "
                     "%.2f GB are free in %s (set HF_HUB_CACHE to a larger disk)", pl->repo,
                     (double)pn->need / 1e9, (double)avail / 1e9, blobs);
}

static molmo_status make_dirs(molmo_hub_pull *pl, molmo_error *err) {
    char dir[4200];
    const char *sub[] = {"blobs", "snapshots", "refs"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s", pl->repo_dir, sub[i]);
        if (molmo_hf_mkdirs(dir) != 0)
            return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    }
    if (molmo_hf_mkdirs(pl->lock_dir) != 0)
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create: %s", pl->lock_dir,
                         strerror(errno));
    return MOLMO_OK;
}

/* Links what is cached, then downloads the rest in listing order. */
static molmo_status run_plan(molmo_hub_pull *pl, plan *pn, molmo_error *err) {
    molmo_status s = MOLMO_OK;
    for (int i = 0; s == MOLMO_OK && i < pn->n; i++) {
        plan_item *it = &pn->items[i];
        if (it->state == TO_FETCH) continue;
        if (it->state == IN_BLOBS)
            s = molmo_hf_link_blob(pl->repo_dir, pl->commit, it->f->name, it->t.etag, err);
        pl->prog.file = it->f->name;
        if (s == MOLMO_OK) s = molmo_hub_report(pl, MOLMO_PULL_EVENT_FILE_CACHED, 1, err);
    }
    uint64_t done = 0;
    for (int i = 0; s == MOLMO_OK && i < pn->n; i++) {
        plan_item *it = &pn->items[i];
        if (it->state != TO_FETCH) continue;
        molmo_pull_progress *p = &pl->prog;
        p->file = it->f->name;
        p->file_index++;
        p->file_size = it->t.size;
        p->file_bytes = 0;
        p->bytes = done;
        s = molmo_hub_fetch_blob(pl, &it->t, err);
        if (s == MOLMO_OK)
            s = molmo_hf_link_blob(pl->repo_dir, pl->commit, it->f->name, it->t.etag, err);
        done += it->t.size;
        p->bytes = done;
        p->file_bytes = it->t.size;
        if (s == MOLMO_OK) s = molmo_hub_report(pl, MOLMO_PULL_EVENT_FILE_DONE, 1, err);
    }
    return s;
}

static molmo_status pull_online(molmo_hub_pull *pl, const char *token, molmo_error *err) {
    molmo_hub_listing l;
    plan pn;
    memset(&l, 0, sizeof l);
    memset(&pn, 0, sizeof pn);
    molmo_status s = molmo_hub_http_create(pl->endpoint, token, pl->p->timeout_s, pl->p->cancel,
                                           &pl->http, err);
    if (s == MOLMO_OK) s = fetch_listing(pl, &l, err);
    if (s != MOLMO_OK) goto done;
    memcpy(pl->commit, l.commit, sizeof pl->commit);
    if ((s = make_dirs(pl, err)) != MOLMO_OK || (s = make_plan(pl, &l, &pn, err)) != MOLMO_OK ||
        (s = check_space(pl, &pn, err)) != MOLMO_OK)
        goto done;
    molmo_log(pl->p->log, pl->p->log_user, MOLMO_LOG_INFO,
              "%s@%s is commit %s: %d files, %d to download (%llu bytes)", pl->repo,
              pl->revision, pl->commit, pn.n, pn.n_fetch, (unsigned long long)pn.total);
    pl->prog.n_files = pn.n;
    pl->prog.n_to_download = pn.n_fetch;
    pl->prog.total = pn.total;
    if ((s = molmo_hub_report(pl, MOLMO_PULL_EVENT_START, 1, err)) != MOLMO_OK) goto done;
    if ((s = run_plan(pl, &pn, err)) != MOLMO_OK) goto done;
    /* last: a ref names a snapshot only once every file of it is linked */
    if (strcmp(pl->revision, pl->commit) != 0)
        s = molmo_hf_write_ref(pl->repo_dir, pl->revision, pl->commit, err);
    pl->prog.file = NULL;
    if (s == MOLMO_OK) s = molmo_hub_report(pl, MOLMO_PULL_EVENT_DONE, 1, err);
done:
    plan_free(&pn);
    molmo_hub_listing_clear(&l);
    return s;
}

molmo_status molmo_pull(const char *repo_id, const molmo_pull_params *params,
                        char *out_snapshot_dir, size_t cap, molmo_error *err) {
    molmo_error e;
    molmo_err_clear(&e);
    molmo_pull_params defaults = molmo_pull_default_params();
    char token[1024] = "", snap[4200];
    molmo_hub_pull *pl = molmo_calloc(1, sizeof *pl);
    molmo_status s;
    if (!pl) {
        s = molmo_err(&e, MOLMO_ERR_NOMEM, "out of memory");
        goto done;
    }
    pl->p = params ? params : &defaults;
    if ((s = setup(pl, repo_id, &e)) != MOLMO_OK) goto done;
    if (pl->p->offline) {
        s = pull_offline(pl, snap, sizeof snap, &e);
    } else {
        if (pl->p->token) snprintf(token, sizeof token, "%s", pl->p->token);
        else molmo_hf_token(token, sizeof token);
        pl->have_token = token[0] != '\0';
        s = pull_online(pl, token, &e);
        snprintf(snap, sizeof snap, "%s/snapshots/%s", pl->repo_dir, pl->commit);
    }
    if (s == MOLMO_OK && out_snapshot_dir && (cap == 0 || strlen(snap) >= cap))
        s = molmo_err(&e, MOLMO_ERR_INVALID_ARG, "%s: snapshot path does not fit %zu bytes", snap,
                      cap);
    if (s == MOLMO_OK && out_snapshot_dir) memcpy(out_snapshot_dir, snap, strlen(snap) + 1);
done:
    memset(token, 0, sizeof token);
    if (pl) molmo_hub_http_free(pl->http);
    molmo_free(pl);
    if (err) *err = e;
    return s;
}

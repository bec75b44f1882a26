/* hubserver.c — see hubserver.h: a fake Hugging Face hub on libmicrohttpd for the pull tests.
 * Digests are computed here with OpenSSL (the tests check them independently with Python). */
#define _POSIX_C_SOURCE 200809L
#include "hubserver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "testutil.h"

enum { MAX_COMMITS = 8, MAX_FILES = 32, MAX_BRANCHES = 8, MAX_GATES = 4 };

typedef struct hfile {
    char name[256];
    unsigned char *data;
    size_t size;
    int lfs;
    char sha256[65], gitsha1[41];
} hfile;

typedef struct hcommit {
    char repo[128], sha[41];
    hfile files[MAX_FILES];
    int n_files;
} hcommit;

struct tu_hub {
    struct MHD_Daemon *d;
    char url[64];
    int port;
    pthread_mutex_t mu;
    hcommit commits[MAX_COMMITS];
    int n_commits;
    struct { char repo[128], name[64]; int commit; } branches[MAX_BRANCHES];
    int n_branches;
    struct { char repo[128], token[128]; } gates[MAX_GATES];
    int n_gates;
    char cut_name[256];
    uint64_t cut_after;
    int cut_times;
    char corrupt[4][256];
    int fail_status, fail_times;
    tu_hub_stats st;
};

/* ---- digests ----------------------------------------------------------------------------- */

static void hex_digest(const EVP_MD *md, const void *pre, size_t npre, const void *data,
                       size_t n, char *out) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_non_null(c);
    EVP_DigestInit_ex(c, md, NULL);
    if (npre) EVP_DigestUpdate(c, pre, npre);
    EVP_DigestUpdate(c, data, n);
    EVP_DigestFinal_ex(c, d, &len);
    EVP_MD_CTX_free(c);
    for (unsigned i = 0; i < len; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void set_file(hfile *f, const char *name, const void *data, size_t n) {
    snprintf(f->name, sizeof f->name, "%s", name);
    free(f->data);
    f->data = malloc(n ? n : 1);
    assert_non_null(f->data);
    memcpy(f->data, data, n);
    f->size = n;
    size_t len = strlen(name);
    f->lfs = len > 12 && !strcmp(name + len - 12, ".safetensors");
    char pre[64];
    int np = snprintf(pre, sizeof pre, "blob %zu", n) + 1; /* git hashes the NUL too */
    hex_digest(EVP_sha1(), pre, (size_t)np, data, n, f->gitsha1);
    hex_digest(EVP_sha256(), NULL, 0, data, n, f->sha256);
}

/* ---- setup -------------------------------------------------------------------------------- */

static hcommit *find_commit(tu_hub *h, const char *sha) {
    for (int i = 0; i < h->n_commits; i++)
        if (!strcmp(h->commits[i].sha, sha)) return &h->commits[i];
    return NULL;
}

void tu_hub_put_file(tu_hub *h, const char *sha, const char *name, const void *data, size_t n) {
    pthread_mutex_lock(&h->mu);
    hcommit *c = find_commit(h, sha);
    assert_non_null(c);
    hfile *f = NULL;
    for (int i = 0; i < c->n_files && !f; i++)
        if (!strcmp(c->files[i].name, name)) f = &c->files[i];
    if (!f) {
        assert_true(c->n_files < MAX_FILES);
        f = &c->files[c->n_files++];
    }
    set_file(f, name, data, n);
    pthread_mutex_unlock(&h->mu);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

void tu_hub_add_commit(tu_hub *h, const char *repo, const char *sha, const char *branch,
                       const char *dir) {
    pthread_mutex_lock(&h->mu);
    assert_true(h->n_commits < MAX_COMMITS && strlen(sha) == 40);
    hcommit *c = &h->commits[h->n_commits++];
    snprintf(c->repo, sizeof c->repo, "%s", repo);
    snprintf(c->sha, sizeof c->sha, "%s", sha);
    if (branch) {
        assert_true(h->n_branches < MAX_BRANCHES);
        snprintf(h->branches[h->n_branches].repo, 128, "%s", repo);
        snprintf(h->branches[h->n_branches].name, 64, "%s", branch);
        h->branches[h->n_branches++].commit = h->n_commits - 1;
    }
    pthread_mutex_unlock(&h->mu);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *e;
    char path[2048];
    while ((e = readdir(dp))) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t n;
        unsigned char *data = read_all(path, &n);
        tu_hub_put_file(h, sha, e->d_name, data, n);
        free(data);
    }
    closedir(dp);
}

void tu_hub_require_token(tu_hub *h, const char *repo, const char *token) {
    pthread_mutex_lock(&h->mu);
    int i = 0;
    while (i < h->n_gates && strcmp(h->gates[i].repo, repo)) i++;
    if (i == h->n_gates) {
        assert_true(h->n_gates < MAX_GATES);
        h->n_gates++;
    }
    snprintf(h->gates[i].repo, 128, "%s", repo);
    snprintf(h->gates[i].token, 128, "%s", token ? token : "");
    pthread_mutex_unlock(&h->mu);
}

void tu_hub_cut(tu_hub *h, const char *name, uint64_t after, int times) {
    pthread_mutex_lock(&h->mu);
    snprintf(h->cut_name, sizeof h->cut_name, "%s", name);
    h->cut_after = after;
    h->cut_times = times;
    pthread_mutex_unlock(&h->mu);
}

void tu_hub_corrupt(tu_hub *h, const char *name, int on) {
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < 4; i++) {
        if (on && !h->corrupt[i][0]) {
            snprintf(h->corrupt[i], 256, "%s", name);
            break;
        }
        if (!on && !strcmp(h->corrupt[i], name)) h->corrupt[i][0] = '\0';
    }
    pthread_mutex_unlock(&h->mu);
}

void tu_hub_fail(tu_hub *h, int status, int times) {
    pthread_mutex_lock(&h->mu);
    h->fail_status = status;
    h->fail_times = times;
    pthread_mutex_unlock(&h->mu);
}

void tu_hub_reset_faults(tu_hub *h) {
    pthread_mutex_lock(&h->mu);
    h->cut_times = h->fail_times = 0;
    memset(h->corrupt, 0, sizeof h->corrupt);
    pthread_mutex_unlock(&h->mu);
}

tu_hub_stats tu_hub_get_stats(tu_hub *h) {
    pthread_mutex_lock(&h->mu);
    tu_hub_stats s = h->st;
    pthread_mutex_unlock(&h->mu);
    return s;
}

void tu_hub_reset_stats(tu_hub *h) {
    pthread_mutex_lock(&h->mu);
    memset(&h->st, 0, sizeof h->st);
    pthread_mutex_unlock(&h->mu);
}

const char *tu_hub_url(const tu_hub *h) { return h->url; }

/* ---- serving a file body (with Range, cuts and corruption) ---------------------------------- */

typedef struct body {
    tu_hub *h;
    const hfile *f;
    uint64_t from;        /* absolute offset of the first byte served */
    uint64_t cut;         /* absolute offset to close the connection at (UINT64_MAX: never) */
    int corrupt;
} body;

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max) {
    body *b = cls;
    uint64_t at = b->from + pos;
    if (at >= b->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = b->f->size - at < max ? (size_t)(b->f->size - at) : max;
    if (b->cut - at < n) n = (size_t)(b->cut - at);
    if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    memcpy(buf, b->f->data + at, n);
    uint64_t mid = b->f->size / 2;
    if (b->corrupt && mid >= at && mid < at + n) buf[mid - at] ^= 0x5a;
    pthread_mutex_lock(&b->h->mu);
    b->h->st.body_bytes += n;
    pthread_mutex_unlock(&b->h->mu);
    return (ssize_t)n;
}

static void free_body(void *cls) { free(cls); }

static enum MHD_Result queue(struct MHD_Connection *c, unsigned code, struct MHD_Response *r) {
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result simple(struct MHD_Connection *c, unsigned code, const char *err_code,
                              const char *msg) {
    char js[512];
    snprintf(js, sizeof js, "{\"error\": \"%s\"}", msg ? msg : "error");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(js), js, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (err_code) MHD_add_response_header(r, "X-Error-Code", err_code);
    if (msg) MHD_add_response_header(r, "X-Error-Message", msg);
    return queue(c, code, r);
}

/* "bytes=N-" or "bytes=N-M" (only the start matters here). */
static int range_start(const char *v, uint64_t *from) {
    if (!v) return 0;
    if (strncmp(v, "bytes=", 6)) return -1;
    char *end;
    unsigned long long x = strtoull(v + 6, &end, 10);
    if (end == v + 6 || *end != '-') return -1;
    *from = x;
    return 1;
}

/* The body of file f (whole or from a Range), under the configured faults. */
static enum MHD_Result serve_file(tu_hub *h, struct MHD_Connection *c, const hfile *f,
                                  int head, const char *etag, const char *commit) {
    const char *rv = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    uint64_t from = 0;
    int ranged = range_start(rv, &from);
    if (ranged < 0) return simple(c, 400, NULL, "bad Range");
    if (ranged && from >= f->size) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%zu", f->size);
        MHD_add_response_header(r, "Content-Range", cr);
        return queue(c, 416, r);
    }
    body *b = calloc(1, sizeof *b);
    b->h = h;
    b->f = f;
    b->from = from;
    b->cut = UINT64_MAX;
    pthread_mutex_lock(&h->mu);
    if (!head) {
        if (!commit) snprintf(h->st.cdn_range, sizeof h->st.cdn_range, "%s", rv ? rv : "");
        if (h->cut_times > 0 && !strcmp(h->cut_name, f->name)) {
            b->cut = h->cut_after;
            h->cut_times--;
        }
    }
    for (int i = 0; i < 4; i++) b->corrupt |= h->corrupt[i][0] && !strcmp(h->corrupt[i], f->name);
    pthread_mutex_unlock(&h->mu);
    struct MHD_Response *r =
        MHD_create_response_from_callback(f->size - from, 64 * 1024, read_body, b, free_body);
    char v[128];
    snprintf(v, sizeof v, "\"%s\"", etag);
    MHD_add_response_header(r, "ETag", v);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (commit) MHD_add_response_header(r, "X-Repo-Commit", commit);
    if (ranged) {
        snprintf(v, sizeof v, "bytes %llu-%zu/%zu", (unsigned long long)from, f->size - 1,
                 f->size);
        MHD_add_response_header(r, "Content-Range", v);
    }
    return queue(c, ranged ? 206 : 200, r);
}

/* ---- routes ------------------------------------------------------------------------------- */

/* 0: allowed; else the answer was queued into *res. Mirrors the hub: a gated repo answers 401
 * GatedRepo without a token and 401 "Invalid credentials" with a wrong one. */
static int gate(tu_hub *h, struct MHD_Connection *c, const char *repo, enum MHD_Result *res) {
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    for (int i = 0; i < h->n_gates; i++) {
        if (strcmp(h->gates[i].repo, repo) || !h->gates[i].token[0]) continue;
        char want[160];
        snprintf(want, sizeof want, "Bearer %s", h->gates[i].token);
        if (auth && !strcmp(auth, want)) return 0;
        *res = auth ? simple(c, 401, NULL, "Invalid credentials in Authorization header")
                    : simple(c, 401, "GatedRepo", "Access to this model is restricted. You must "
                                                  "be authenticated to access it.");
        return 1;
    }
    return 0;
}

/* The commit `rev` (a branch of repo, or a commit sha) names; NULL when none. */
static hcommit *find_rev(tu_hub *h, const char *repo, const char *rev) {
    for (int i = 0; i < h->n_branches; i++)
        if (!strcmp(h->branches[i].repo, repo) && !strcmp(h->branches[i].name, rev))
            return &h->commits[h->branches[i].commit];
    hcommit *c = find_commit(h, rev);
    return c && !strcmp(c->repo, repo) ? c : NULL;
}

static int repo_exists(tu_hub *h, const char *repo) {
    for (int i = 0; i < h->n_commits; i++)
        if (!strcmp(h->commits[i].repo, repo)) return 1;
    return 0;
}

/* Splits "/org/name/<verb>/rev/rest" (verb "resolve" or "revision" after "api/models"). */
static int split(const char *path, const char *verb, char *repo, char *rev, const char **rest) {
    const char *s1 = strchr(path + 1, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    size_t vl = strlen(verb);
    if (!s2 || strncmp(s2 + 1, verb, vl) || s2[1 + vl] != '/') return 0;
    snprintf(repo, 128, "%.*s", (int)(s2 - path - 1), path + 1);
    const char *r = s2 + 2 + vl;
    const char *s3 = strchr(r, '/');
    snprintf(rev, 128, "%.*s", (int)(s3 ? (size_t)(s3 - r) : strlen(r)), r);
    *rest = s3 ? s3 + 1 : "";
    return 1;
}

static enum MHD_Result api(tu_hub *h, struct MHD_Connection *c, const char *path) {
    char repo[128], rev[128];
    const char *rest;
    enum MHD_Result res;
    if (!split(path, "revision", repo, rev, &rest) || *rest)
        return simple(c, 404, NULL, "no such route");
    h->st.api++;
    if (gate(h, c, repo, &res)) return res;
    if (!repo_exists(h, repo)) return simple(c, 404, "RepoNotFound", "Repository not found");
    hcommit *cm = find_rev(h, repo, rev);
    if (!cm) return simple(c, 404, "RevisionNotFound", "Invalid rev id");
    int blobs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blobs") != NULL;
    json_t *sib = json_array();
    for (int i = 0; i < cm->n_files; i++) {
        const hfile *f = &cm->files[i];
        json_t *o = json_pack("{s:s}", "rfilename", f->name);
        if (blobs) {
            json_object_set_new(o, "blobId", json_string(f->gitsha1));
            json_object_set_new(o, "size", json_integer((json_int_t)f->size));
            if (f->lfs)
                json_object_set_new(o, "lfs", json_pack("{s:s,s:I,s:i}", "sha256", f->sha256,
                                                        "size", (json_int_t)f->size,
                                                        "pointerSize", 134));
        }
        json_array_append_new(sib, o);
    }
    json_t *root = json_pack("{s:s,s:s,s:o}", "id", repo, "sha", cm->sha, "siblings", sib);
    char *js = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(js), js, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    return queue(c, 200, r);
}

static enum MHD_Result resolve(tu_hub *h, struct MHD_Connection *c, const char *path, int head) {
    char repo[128], rev[128], v[256];
    const char *name;
    enum MHD_Result res;
    if (!split(path, "resolve", repo, rev, &name)) return simple(c, 404, NULL, "no such route");
    if (head) h->st.head++;
    else h->st.get++;
    if (gate(h, c, repo, &res)) return res;
    if (!repo_exists(h, repo)) return simple(c, 404, "RepoNotFound", "Repository not found");
    hcommit *cm = find_rev(h, repo, rev);
    if (!cm) return simple(c, 404, "RevisionNotFound", "Invalid rev id");
    const hfile *f = NULL;
    for (int i = 0; i < cm->n_files && !f; i++)
        if (!strcmp(cm->files[i].name, name)) f = &cm->files[i];
    if (!f) return simple(c, 404, "EntryNotFound", "Entry not found");
    if (!f->lfs) return serve_file(h, c, f, head, f->gitsha1, cm->sha);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    snprintf(v, sizeof v, "http://localhost:%d/cdn/%s", h->port, f->sha256);
    MHD_add_response_header(r, "Location", v);
    snprintf(v, sizeof v, "\"%s\"", f->sha256);
    MHD_add_response_header(r, "ETag", v);
    MHD_add_response_header(r, "X-Linked-Etag", v);
    snprintf(v, sizeof v, "%zu", f->size);
    MHD_add_response_header(r, "X-Linked-Size", v);
    MHD_add_response_header(r, "X-Repo-Commit", cm->sha);
    return queue(c, 302, r);
}

static enum MHD_Result cdn(tu_hub *h, struct MHD_Connection *c, const char *path, int head) {
    const char *sha = path + 5; /* "/cdn/" */
    h->st.cdn++;
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) {
        h->st.auth_to_cdn++;
        return simple(c, 400, NULL, "Only one auth mechanism allowed");
    }
    for (int i = 0; i < h->n_commits; i++)
        for (int j = 0; j < h->commits[i].n_files; j++)
            if (!strcmp(h->commits[i].files[j].sha256, sha))
                return serve_file(h, c, &h->commits[i].files[j], head, sha, NULL);
    return simple(c, 404, NULL, "NoSuchKey");
}

static enum MHD_Result route(tu_hub *h, struct MHD_Connection *c, const char *url,
                             const char *method) {
    int head = !strcmp(method, "HEAD");
    if (!head && strcmp(method, "GET")) return simple(c, 405, NULL, "method not allowed");
    if (h->fail_times > 0) {
        h->fail_times--;
        h->st.failed++;
        return simple(c, (unsigned)h->fail_status, NULL, "injected failure");
    }
    if (!strncmp(url, "/api/models/", 12)) return api(h, c, url + 11);
    if (!strncmp(url, "/cdn/", 5)) return cdn(h, c, url, head);
    return resolve(h, c, url, head);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req) {
    static int first;
    if (*req == NULL) { /* headers are in; answer on the next call */
        *req = &first;
        return MHD_YES;
    }
    tu_hub *h = cls;
    pthread_mutex_lock(&h->mu);
    enum MHD_Result r = route(h, c, url, method);
    pthread_mutex_unlock(&h->mu);
    return r;
}

tu_hub *tu_hub_start(void) {
    tu_hub *h = calloc(1, sizeof *h);
    assert_non_null(h);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE); /* bodies count bytes mid-route */
    pthread_mutex_init(&h->mu, &a);
    pthread_mutexattr_destroy(&a);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                            handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!h->d) fail_msg("cannot start the test hub on 127.0.0.1");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    assert_true(h->port > 0);
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", h->port);
    return h;
}

void tu_hub_stop(tu_hub *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    for (int i = 0; i < h->n_commits; i++)
        for (int j = 0; j < h->commits[i].n_files; j++) free(h->commits[i].files[j].data);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

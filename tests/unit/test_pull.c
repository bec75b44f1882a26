/* test_pull.c — molmo_pull against a fake hub on 127.0.0.1 (tests/support/hubserver.c), issue
 * 9 item 4: a full pull, a resumed pull after the connection is cut mid-file, a corrupted file
 * (digest mismatch -> error, nothing linked), a 404 repo, a 401 without token, a revision by
 * branch and by commit, a second pull that downloads nothing, offline mode, and loading the
 * pulled model by repo id. Blob names and digests are checked against Python's hashlib, the
 * cache layout against what huggingface_hub writes (relative links ../../blobs/<etag>, refs
 * without newline). No test touches the network. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hubserver.h"
#include "testutil.h"

#define REPO "test-org/tiny-molmoe"
#define GATED "test-org/gated"
#define COMMIT_A "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
#define COMMIT_B "b2c3d4e5f60718293a4b5c6d7e8f9012345678a1"
#define COMMIT_G "c3d4e5f60718293a4b5c6d7e8f9012345678a1b2"
#define N_FILES 10 /* files of tests/data/models/olmoe */

static tu_hub *hub;
static char tmpdir[512], fixture[1024];
static int case_no;

static void load_etags(void);

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp-pull-XXXXXX", MOLMO_BINARY_DIR);
    if (!mkdtemp(tmpdir)) return -1;
    tu_data_path(fixture, sizeof fixture, "models/olmoe");
    load_etags();
    hub = tu_hub_start();
    tu_hub_add_commit(hub, REPO, COMMIT_A, "main", fixture);
    tu_hub_add_commit(hub, REPO, COMMIT_B, "v1", fixture);
    static const char gen[] = "{\"eos_token_id\": 756, \"pad_token_id\": 1, \"v\": 1}\n";
    tu_hub_put_file(hub, COMMIT_B, "generation_config.json", gen, sizeof gen - 1);
    tu_hub_add_commit(hub, GATED, COMMIT_G, "main", fixture);
    tu_hub_require_token(hub, GATED, "hf_secret");
    /* never the user's own token or settings */
    setenv("HF_TOKEN_PATH", "/nonexistent/molmo-test-token", 1);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("TRANSFORMERS_OFFLINE");
    unsetenv("HF_ENDPOINT");
    return 0;
}

static int teardown(void **state) {
    tu_hub_stop(hub);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh cache root for each test, also set as $HF_HUB_CACHE. */
static const char *fresh_cache(char *out, size_t cap) {
    snprintf(out, cap, "%s/hub%d", tmpdir, ++case_no);
    setenv("HF_HUB_CACHE", out, 1);
    tu_hub_reset_stats(hub);
    tu_hub_reset_faults(hub); /* a failed test must not leave its faults to the next */
    return out;
}

/* ---- progress recording ------------------------------------------------------------------- */

typedef struct rec {
    int n[MOLMO_PULL_EVENT_DONE + 1];
    int n_files, n_to_download;
    uint64_t bytes, total, received;
    const char *cancel_in; /* stop at the first bytes of this file */
} rec;

static int on_progress(void *user, const molmo_pull_progress *p) {
    rec *r = user;
    r->n[p->event]++;
    if (p->event == MOLMO_PULL_EVENT_START) {
        r->n_files = p->n_files;
        r->n_to_download = p->n_to_download;
        assert_true(!strcmp(p->repo, REPO) || !strcmp(p->repo, GATED));
        assert_int_equal(strlen(p->commit), 40);
    }
    if (p->event == MOLMO_PULL_EVENT_RETRY) assert_non_null(p->message);
    assert_true(p->bytes <= p->total || p->total == 0);
    r->bytes = p->bytes;
    r->total = p->total;
    r->received = p->received;
    return r->cancel_in && p->event == MOLMO_PULL_EVENT_BYTES && !strcmp(p->file, r->cancel_in);
}

static molmo_pull_params params(rec *r) {
    memset(r, 0, sizeof *r);
    molmo_pull_params p = molmo_pull_default_params();
    p.endpoint = tu_hub_url(hub);
    p.retry_delay_ms = 1;
    p.timeout_s = 10;
    p.progress = on_progress;
    p.progress_user = r;
    return p;
}

static molmo_status pull(const char *repo, const molmo_pull_params *p, char *dir,
                         molmo_error *err) {
    return molmo_pull(repo, p, dir, 4096, err);
}

/* ---- cache inspection ---------------------------------------------------------------------- */

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void read_text(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* The blob name huggingface_hub gives each fixture file: SHA-256 for LFS (*.safetensors here),
 * else the git blob SHA-1, computed once by Python's hashlib (independent of the code under
 * test). */
static struct { char name[64], etag[80]; } etags[N_FILES];

static void load_etags(void) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && python3 -c 'import hashlib,os\n"
             "for n in sorted(os.listdir(\".\")):\n"
             "    d = open(n, \"rb\").read()\n"
             "    print(n, hashlib.sha256(d).hexdigest() if n.endswith(\".safetensors\") "
             "else hashlib.sha1(b\"blob %%d\\0\" %% len(d) + d).hexdigest())'",
             fixture);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = 0;
    while (n < N_FILES && fscanf(p, "%63s %79s", etags[n].name, etags[n].etag) == 2) n++;
    assert_int_equal(pclose(p), 0);
    assert_int_equal(n, N_FILES);
}

static void expected_etag(const char *name, char *out) {
    for (int i = 0; i < N_FILES; i++)
        if (!strcmp(etags[i].name, name)) {
            strcpy(out, etags[i].etag);
            return;
        }
    fail_msg("no fixture file %s", name);
}

static int same_bytes(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) { /* both files advance every step; equal only if they end together */
        const int ca = getc(fa), cb = getc(fb);
        if (ca == EOF && cb == EOF) break;
        same = ca == cb;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Every fixture file is in snapshots/<commit> as ../../blobs/<etag> with the fixture's bytes. */
static void check_snapshot(const char *root, const char *commit, int skip_generation_config) {
    DIR *d = opendir(fixture);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    char ptr[4096], want[200], got[200], etag[80], src[2048];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        n++;
        snprintf(ptr, sizeof ptr, "%s/models--test-org--tiny-molmoe/snapshots/%s/%s", root,
                 commit, e->d_name);
        if (!is_link(ptr)) fail_msg("%s is not a symlink", ptr);
        ssize_t k = readlink(ptr, got, sizeof got - 1);
        assert_true(k > 0);
        got[k] = '\0';
        if (skip_generation_config && !strcmp(e->d_name, "generation_config.json")) continue;
        expected_etag(e->d_name, etag);
        snprintf(want, sizeof want, "../../blobs/%s", etag);
        assert_string_equal(got, want);
        snprintf(src, sizeof src, "%s/%s", fixture, e->d_name);
        if (!same_bytes(ptr, src)) fail_msg("%s differs from %s", ptr, src);
    }
    closedir(d);
    assert_int_equal(n, N_FILES);
}

static int count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += e->d_name[0] != '.' && l > sl && !strcmp(e->d_name + l - sl, suffix);
    }
    closedir(d);
    return n;
}

static uint64_t fixture_total(void) {
    DIR *d = opendir(fixture);
    struct dirent *e;
    char p[2048];
    uint64_t t = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", fixture, e->d_name),
                                 t += (uint64_t)file_size(p);
    closedir(d);
    return t;
}

/* ---- the cases of issue 9 item 4 ------------------------------------------------------------ */

/* A full pull: every file linked as huggingface_hub links it, refs/main written, the LFS file
 * fetched from the "CDN" host without the token, progress reported consistently. */
static void test_full_pull(void **state) {
    char root[1024], dir[4096], want[2048], ref[128];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    snprintf(want, sizeof want, "%s/models--test-org--tiny-molmoe/snapshots/%s", root, COMMIT_A);
    assert_string_equal(dir, want);
    check_snapshot(root, COMMIT_A, 0);
    snprintf(want, sizeof want, "%s/models--test-org--tiny-molmoe/refs/main", root);
    read_text(want, ref, sizeof ref);
    assert_string_equal(ref, COMMIT_A); /* no newline, as huggingface_hub writes it */
    snprintf(want, sizeof want, "%s/models--test-org--tiny-molmoe/blobs", root);
    assert_int_equal(count_suffix(want, ".incomplete"), 0);
    snprintf(want, sizeof want, "%s/.locks/models--test-org--tiny-molmoe", root);
    assert_int_equal(count_suffix(want, ".lock"), N_FILES);
    tu_hub_stats st = tu_hub_get_stats(hub);
    assert_int_equal(st.api, 1);
    assert_int_equal(st.head, N_FILES);
    assert_int_equal(st.get, N_FILES - 1); /* the LFS file comes from the CDN */
    assert_int_equal(st.cdn, 1);
    assert_int_equal(st.auth_to_cdn, 0);
    assert_int_equal(st.body_bytes, fixture_total());
    assert_int_equal(r.n[MOLMO_PULL_EVENT_START], 1);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_START], N_FILES);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_DONE], N_FILES);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_CACHED], 0);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_DONE], 1);
    assert_int_equal(r.n_files, N_FILES);
    assert_int_equal(r.n_to_download, N_FILES);
    assert_int_equal(r.total, fixture_total());
    assert_int_equal(r.bytes, r.total);
    assert_int_equal(r.received, r.total);
    /* a NULL err and NULL out are fine too */
    assert_int_equal(molmo_pull(REPO, &p, NULL, 0, NULL), MOLMO_OK);
}

/* The connection is cut 1 MiB into the LFS file: with no retries the pull fails, keeps the
 * partial blob (nothing linked for it, no ref), and the next pull resumes it with a Range. With
 * retries, one call recovers by itself (also from a 503). */
static void test_resume_after_cut(void **state) {
    char root[1024], dir[4096], path[4200], inc[4300], etag[80];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    expected_etag("model.safetensors", etag);
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    long size = file_size(path);
    tu_hub_cut(hub, "model.safetensors", 1 << 20, 1);
    molmo_pull_params p = params(&r);
    p.max_retries = 0;
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "model.safetensors"));
    snprintf(inc, sizeof inc, "%s/models--test-org--tiny-molmoe/blobs/%s.incomplete", root, etag);
    long have = file_size(inc);
    assert_true(have > 0 && have <= (1 << 20) && have < size);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/snapshots/%s/model.safetensors",
             root, COMMIT_A);
    assert_false(is_link(path));
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/refs/main", root);
    assert_int_equal(file_size(path), -1);
    /* the next run resumes where the file stopped */
    tu_hub_reset_stats(hub);
    p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    tu_hub_stats st = tu_hub_get_stats(hub);
    char want[64];
    snprintf(want, sizeof want, "bytes=%ld-", have);
    assert_int_equal(st.cdn, 1);
    assert_string_equal(st.cdn_range, want);
    check_snapshot(root, COMMIT_A, 0);
    assert_int_equal(file_size(inc), -1);
    /* one call, a cut and a 503: retried with back-off, resumed, verified */
    fresh_cache(root, sizeof root);
    tu_hub_cut(hub, "model.safetensors", 3 << 20, 1);
    p = params(&r);
    tu_hub_fail(hub, 503, 1);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    st = tu_hub_get_stats(hub);
    assert_int_equal(st.failed, 1);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_RETRY], 2);
    assert_true(strncmp(st.cdn_range, "bytes=", 6) == 0);
    assert_int_equal(st.body_bytes, fixture_total()); /* nothing fetched twice */
    check_snapshot(root, COMMIT_A, 0);
}

/* A corrupted download fails its digest: MOLMO_ERR_FORMAT, the partial file is deleted, nothing
 * is linked for it and no ref is written; once the server is right, the pull succeeds. */
static void test_corrupt(void **state) {
    char root[1024], dir[4096], path[4200];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    tu_hub_corrupt(hub, "model.safetensors", 1);
    molmo_pull_params p = params(&r);
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_FORMAT);
    tu_hub_corrupt(hub, "model.safetensors", 0);
    assert_non_null(strstr(err.msg, "model.safetensors"));
    assert_non_null(strstr(err.msg, "SHA-256 mismatch"));
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/snapshots/%s/model.safetensors",
             root, COMMIT_A);
    assert_false(is_link(path));
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/blobs", root);
    assert_int_equal(count_suffix(path, ".incomplete"), 0);
    assert_int_equal(count_suffix(path, ".safetensors"), 0);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/refs/main", root);
    assert_int_equal(file_size(path), -1);
    /* a small (git) file: its blob SHA-1 is checked the same way */
    fresh_cache(root, sizeof root);
    tu_hub_corrupt(hub, "config.json", 1);
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_FORMAT);
    tu_hub_corrupt(hub, "config.json", 0);
    assert_non_null(strstr(err.msg, "config.json: git SHA-1 mismatch"));
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/snapshots/%s/config.json", root,
             COMMIT_A);
    assert_false(is_link(path));
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    check_snapshot(root, COMMIT_A, 0);
}

/* A missing repo and a missing revision: NOT_FOUND naming them; nothing created. */
static void test_404(void **state) {
    char root[1024], dir[4096], path[4200];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    assert_int_equal(pull("test-org/nope", &p, dir, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "test-org/nope"));
    assert_non_null(strstr(err.msg, "not found"));
    snprintf(path, sizeof path, "%s/models--test-org--nope", root);
    assert_int_equal(file_size(path), -1);
    p.revision = "no-such-branch";
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no revision \"no-such-branch\""));
    assert_int_equal(tu_hub_get_stats(hub).head, 0);
    /* not a repo id at all, an unsafe revision: refused before any request */
    tu_hub_reset_stats(hub);
    p.revision = NULL;
    assert_int_equal(pull("../etc", &p, dir, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(pull(REPO "@../../x", &p, dir, &err), MOLMO_ERR_INVALID_ARG);
    p.revision = "a/../b";
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(tu_hub_get_stats(hub).api, 0);
}

/* A gated repo: 401 without a token (the message says to set HF_TOKEN), 401 with a wrong one;
 * the token from the params, from $HF_TOKEN and from the token file all work; the CDN never
 * sees it. */
static void test_401_token(void **state) {
    char root[1024], dir[4096], path[4200];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    assert_int_equal(pull(GATED, &p, dir, &err), MOLMO_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "HF_TOKEN"));
    assert_non_null(strstr(err.msg, "gated"));
    p.token = "hf_wrong";
    assert_int_equal(pull(GATED, &p, dir, &err), MOLMO_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "refused the token"));
    p.token = "hf_secret";
    if (pull(GATED, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(tu_hub_get_stats(hub).auth_to_cdn, 0);
    assert_int_equal(tu_hub_get_stats(hub).cdn, 1);
    /* $HF_TOKEN */
    fresh_cache(root, sizeof root);
    p.token = NULL;
    setenv("HF_TOKEN", "hf_secret", 1);
    molmo_status s = pull(GATED, &p, dir, &err);
    unsetenv("HF_TOKEN");
    if (s != MOLMO_OK) fail_msg("%s", err.msg);
    /* the token file ($HF_TOKEN_PATH, as `huggingface-cli login` writes it) */
    fresh_cache(root, sizeof root);
    snprintf(path, sizeof path, "%s/token", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("hf_secret\n", f);
    fclose(f);
    setenv("HF_TOKEN_PATH", path, 1);
    s = pull(GATED, &p, dir, &err);
    setenv("HF_TOKEN_PATH", "/nonexistent/molmo-test-token", 1);
    if (s != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(tu_hub_get_stats(hub).auth_to_cdn, 0);
}

/* A revision by branch ("v1": one file differs) reuses every blob it shares with main and
 * writes refs/v1; a revision by commit writes no ref. */
static void test_revision(void **state) {
    char root[1024], dir[4096], path[4200], ref[128], a[200], b[200];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    tu_hub_reset_stats(hub);
    p.revision = "v1";
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_non_null(strstr(dir, "/snapshots/" COMMIT_B));
    tu_hub_stats st = tu_hub_get_stats(hub);
    assert_int_equal(st.head, 1); /* only generation_config.json is new */
    assert_int_equal(st.get, 1);
    assert_int_equal(st.cdn, 0);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_CACHED], N_FILES - 1);
    check_snapshot(root, COMMIT_B, 1);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/refs/v1", root);
    read_text(path, ref, sizeof ref);
    assert_string_equal(ref, COMMIT_B);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/snapshots/%s/model.safetensors",
             root, COMMIT_A);
    a[readlink(path, a, sizeof a - 1)] = '\0';
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/snapshots/%s/model.safetensors",
             root, COMMIT_B);
    b[readlink(path, b, sizeof b - 1)] = '\0';
    assert_string_equal(a, b);
    /* by commit, in a fresh cache, as "ORG/NAME@COMMIT" */
    fresh_cache(root, sizeof root);
    p.revision = NULL;
    if (pull(REPO "@" COMMIT_A, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    check_snapshot(root, COMMIT_A, 0);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/refs", root);
    assert_int_equal(count_suffix(path, ""), 0);
}

/* The second pull of a complete snapshot sends one request (the listing) and no file bytes. */
static void test_second_pull(void **state) {
    char root[1024], dir[4096], dir2[4096];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    tu_hub_reset_stats(hub);
    p = params(&r);
    if (pull(REPO, &p, dir2, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_string_equal(dir, dir2);
    tu_hub_stats st = tu_hub_get_stats(hub);
    assert_int_equal(st.api, 1);
    assert_int_equal(st.head + st.get + st.cdn, 0);
    assert_int_equal(st.body_bytes, 0);
    assert_int_equal(r.n_to_download, 0);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_CACHED], N_FILES);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_START], 0);
    assert_int_equal(r.received, 0);
}

/* Offline: resolves from the cache without a single request (even with an endpoint nobody
 * listens on), from the params or $HF_HUB_OFFLINE; fails clearly when the repo is not cached,
 * a blob is missing, or an include glob matches nothing. */
static void test_offline(void **state) {
    char root[1024], dir[4096], dir2[4096], path[4200], etag[80];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    tu_hub_reset_stats(hub);
    p.offline = 1;
    p.endpoint = "http://127.0.0.1:9"; /* discard port: a request would fail */
    if (pull(REPO, &p, dir2, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_string_equal(dir, dir2);
    setenv("HF_HUB_OFFLINE", "1", 1);
    molmo_pull_params q = molmo_pull_default_params();
    unsetenv("HF_HUB_OFFLINE");
    assert_int_equal(q.offline, 1);
    if (pull(REPO, &q, dir2, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    const char *globs[] = {"*.json", "model.safetensors"};
    p.include = globs;
    p.n_include = 2;
    if (pull(REPO, &p, dir2, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    globs[1] = "*.gguf";
    assert_int_equal(pull(REPO, &p, dir2, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "*.gguf"));
    p.n_include = 0;
    assert_int_equal(pull("test-org/absent", &p, dir2, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "offline"));
    p.revision = "v1";
    assert_int_equal(pull(REPO, &p, dir2, &err), MOLMO_ERR_NOT_FOUND);
    p.revision = NULL;
    expected_etag("tokenizer.json", etag);
    snprintf(path, sizeof path, "%s/models--test-org--tiny-molmoe/blobs/%s", root, etag);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(pull(REPO, &p, dir2, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    tu_hub_stats st = tu_hub_get_stats(hub);
    assert_int_equal(st.api + st.head + st.get + st.cdn, 0);
    /* online again, the missing blob is fetched back (and nothing else) */
    p.offline = 0;
    p.endpoint = tu_hub_url(hub);
    if (pull(REPO, &p, dir2, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(tu_hub_get_stats(hub).get, 1);
    check_snapshot(root, COMMIT_A, 0);
}

/* The pulled model loads by repo id (and by "@v1"); a missing one names the pull command. */
static void test_load_by_repo_id(void **state) {
    char root[1024], dir[4096];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    p.revision = "v1";
    if (molmo_pull(REPO, &p, NULL, 0, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_model *m = NULL;
    if (molmo_model_load(REPO, NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    molmo_model_info info;
    assert_int_equal(molmo_model_get_info(m, &info), MOLMO_OK);
    assert_string_equal(info.path, dir);
    assert_int_equal(info.family, MOLMO_FAMILY_MOLMOE);
    assert_int_equal(info.n_layers, 3);
    molmo_model_free(m);
    if (molmo_model_load(REPO "@v1", NULL, &m, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_non_null(strstr(molmo_model_get_info(m, &info) == MOLMO_OK ? info.path : "",
                           COMMIT_B));
    molmo_model_free(m);
    assert_int_equal(molmo_model_load("test-org/absent", NULL, &m, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "molmo pull test-org/absent`"));
    assert_int_equal(molmo_model_load("test-org/absent@v2", NULL, &m, &err),
                     MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "molmo pull test-org/absent --revision v2`"));
}

/* ---- beyond the list: include globs, cancelling, Python's leftovers ---------------------- */

/* --include: only matching files are fetched and linked; a glob matching nothing is an error. */
static void test_include(void **state) {
    char root[1024], dir[4096], path[4200];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    const char *globs[] = {"*.json"};
    p.include = globs;
    p.n_include = 1;
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(r.n_files, N_FILES - 1);
    assert_int_equal(tu_hub_get_stats(hub).cdn, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_false(is_link(path));
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_true(is_link(path));
    globs[0] = "*.gguf";
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no file matches"));
}

/* The progress callback stops the pull: MOLMO_ERR_CANCELLED, the partial file is kept and the
 * next pull resumes it. Also a .incomplete longer than the file (not ours) is thrown away. */
static void test_cancel(void **state) {
    char root[1024], dir[4096], inc[4300], etag[80];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    molmo_pull_params p = params(&r);
    r.cancel_in = "model.safetensors";
    assert_int_equal(pull(REPO, &p, dir, &err), MOLMO_ERR_CANCELLED);
    expected_etag("model.safetensors", etag);
    snprintf(inc, sizeof inc, "%s/models--test-org--tiny-molmoe/blobs/%s.incomplete", root, etag);
    long have = file_size(inc);
    assert_true(have > 0);
    tu_hub_reset_stats(hub);
    p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    char want[64];
    snprintf(want, sizeof want, "bytes=%ld-", have);
    assert_string_equal(tu_hub_get_stats(hub).cdn_range, want);
    check_snapshot(root, COMMIT_A, 0);
    /* an oversized leftover: truncated and downloaded whole */
    fresh_cache(root, sizeof root);
    char blobs[4200], cmd[4400];
    snprintf(blobs, sizeof blobs, "%s/models--test-org--tiny-molmoe/blobs", root);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && head -c 5000000 /dev/zero > '%s/%s.incomplete'",
             blobs, blobs, etag);
    assert_int_equal(system(cmd), 0);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    check_snapshot(root, COMMIT_A, 0);
}

/* Blobs that another tool (Python) already stored are linked, not downloaded again. */
static void test_reuse_python_blobs(void **state) {
    char root[1024], dir[4096], blobs[4200], cmd[8000], etag[80];
    rec r;
    molmo_error err;
    fresh_cache(root, sizeof root);
    snprintf(blobs, sizeof blobs, "%s/models--test-org--tiny-molmoe/blobs", root);
    expected_etag("model.safetensors", etag);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/model.safetensors' '%s/%s'", blobs,
             fixture, blobs, etag);
    assert_int_equal(system(cmd), 0);
    molmo_pull_params p = params(&r);
    if (pull(REPO, &p, dir, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    tu_hub_stats st = tu_hub_get_stats(hub);
    assert_int_equal(st.cdn, 0);
    assert_int_equal(st.head, N_FILES - 1);
    assert_int_equal(r.n[MOLMO_PULL_EVENT_FILE_CACHED], 1);
    check_snapshot(root, COMMIT_A, 0);
}

typedef struct racer {
    molmo_pull_params p;
    rec r;
    molmo_status s;
    molmo_error err;
    char dir[4096];
} racer;

static void *race(void *arg) {
    racer *x = arg;
    x->s = molmo_pull(REPO, &x->p, x->dir, sizeof x->dir, &x->err);
    return NULL;
}

/* Four pulls of one repo into one cache at once: the blob locks keep them from writing the same
 * file; every pull succeeds with the same, complete snapshot. */
static void test_concurrent(void **state) {
    char root[1024];
    racer x[4];
    pthread_t t[4];
    fresh_cache(root, sizeof root);
    for (int i = 0; i < 4; i++) {
        x[i].p = params(&x[i].r);
        assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
    }
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        if (x[i].s != MOLMO_OK) fail_msg("pull %d: %s", i, x[i].err.msg);
        assert_string_equal(x[i].dir, x[0].dir);
    }
    check_snapshot(root, COMMIT_A, 0);
    char blobs[1100];
    snprintf(blobs, sizeof blobs, "%s/models--test-org--tiny-molmoe/blobs", root);
    assert_int_equal(count_suffix(blobs, ".incomplete"), 0);
    assert_true(tu_hub_get_stats(hub).cdn <= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_pull),    cmocka_unit_test(test_resume_after_cut),
        cmocka_unit_test(test_corrupt),      cmocka_unit_test(test_404),
        cmocka_unit_test(test_401_token),    cmocka_unit_test(test_revision),
        cmocka_unit_test(test_second_pull),  cmocka_unit_test(test_offline),
        cmocka_unit_test(test_load_by_repo_id), cmocka_unit_test(test_include),
        cmocka_unit_test(test_cancel),       cmocka_unit_test(test_reuse_python_blobs),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

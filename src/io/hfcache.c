/* hfcache.c — the Hugging Face cache layout: resolving "ORG/NAME[@REV]" to a snapshot
 * directory, and writing refs and snapshot links the way huggingface_hub does (molmo_pull). */
#define _POSIX_C_SOURCE 200809L
#include "io/hfcache.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "io/path.h"

int molmo_hf_cache_root(char *out, size_t cap) {
    const char *v;
    int n;
    if ((v = getenv("HF_HUB_CACHE")) && *v)
        n = snprintf(out, cap, "%s", v);
    else if ((v = getenv("HUGGINGFACE_HUB_CACHE")) && *v)
        n = snprintf(out, cap, "%s", v);
    else if ((v = getenv("HF_HOME")) && *v)
        n = snprintf(out, cap, "%s/hub", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v)
        n = snprintf(out, cap, "%s/huggingface/hub", v);
    else if ((v = getenv("HOME")) && *v)
        n = snprintf(out, cap, "%s/.cache/huggingface/hub", v);
    else
        return -1;
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int valid_part(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.') return 0;
        if (ch == '.' && i + 1 < n && s[i + 1] == '.') return 0;
    }
    return 1;
}

int molmo_hf_parse_repo_id(const char *s, char *repo, size_t rcap, char *rev, size_t vcap) {
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/')) return 0;
    const char *at = strchr(slash + 1, '@');
    size_t name_len = at ? (size_t)(at - slash - 1) : strlen(slash + 1);
    if (!valid_part(s, (size_t)(slash - s)) || !valid_part(slash + 1, name_len)) return 0;
    const char *r = at ? at + 1 : "main";
    if (!*r || strlen(r) >= vcap || strstr(r, "..") || strchr(r, '/')) return 0;
    size_t repo_len = (size_t)(slash - s) + 1 + name_len;
    if (repo_len >= rcap) return 0;
    memcpy(repo, s, repo_len);
    repo[repo_len] = '\0';
    snprintf(rev, vcap, "%s", r);
    return 1;
}

int molmo_hf_repo_folder(const char *repo, char *out, size_t cap) {
    const char *slash = strchr(repo, '/');
    if (!slash) return -1;
    int n = snprintf(out, cap, "models--%.*s--%s", (int)(slash - repo), repo, slash + 1);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int molmo_hf_repo_dir(const char *root, const char *repo, char *out, size_t cap) {
    char folder[512];
    if (molmo_hf_repo_folder(repo, folder, sizeof folder) != 0) return -1;
    int n = snprintf(out, cap, "%s/%s", root, folder);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* refs/<rev> holds a commit hash; a revision that is itself a snapshot name is used directly. */
int molmo_hf_read_ref(const char *repo_dir, const char *rev, char *commit, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[128] = "";
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
        if (n == 0 || n >= cap || !molmo_path_is_plain_name(buf)) return -1;
        memcpy(commit, buf, n + 1);
        return 0;
    }
    snprintf(path, sizeof path, "%s/snapshots/%s", repo_dir, rev);
    if (strlen(rev) < cap && molmo_path_is_dir(path)) {
        snprintf(commit, cap, "%s", rev);
        return 0;
    }
    return -1;
}

molmo_status molmo_resolve_model_path(const char *spec, char *out, size_t cap, molmo_error *err) {
    if (!spec || !out || cap == 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "model path: NULL argument");
    if (molmo_path_exists(spec)) {
        if (strlen(spec) >= cap)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", spec);
        snprintf(out, cap, "%s", spec);
        return MOLMO_OK;
    }
    char repo[256], rev[128], root[2048], folder[512], repo_dir[4096], commit[128];
    if (!molmo_hf_parse_repo_id(spec, repo, sizeof repo, rev, sizeof rev))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND,
                         "%s: no such file or directory (and not a Hugging Face repo id)", spec);
    if (molmo_hf_cache_root(root, sizeof root) != 0)
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: no Hugging Face cache directory (set "
                         "HF_HUB_CACHE or HOME)", spec);
    molmo_hf_repo_folder(repo, folder, sizeof folder);
    snprintf(repo_dir, sizeof repo_dir, "%s/%s", root, folder);
    if (molmo_hf_read_ref(repo_dir, rev, commit, sizeof commit) != 0)
        return molmo_err(err, MOLMO_ERR_NOT_FOUND,
                         "%s is not in the Hugging Face cache; download it with `molmo pull "
                         "%s%s%s` (revision %s, looked for %s)",
                         repo, repo, strcmp(rev, "main") ? " --revision " : "",
                         strcmp(rev, "main") ? rev : "", rev, repo_dir);
    int n = snprintf(out, cap, "%s/snapshots/%s", repo_dir, commit);
    if (n < 0 || (size_t)n >= cap)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: resolved path too long", spec);
    if (!molmo_path_is_dir(out))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: refs/%s names snapshot %s, which is "
                         "missing from %s", repo, rev, commit, repo_dir);
    return MOLMO_OK;
}

/* ---- writing the cache (molmo_pull) -------------------------------------------------------- */

int molmo_hf_mkdirs(const char *dir) {
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
        path[i] = c;
    }
    if (!molmo_path_is_dir(dir)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* mkdir -p of the directory part of `path`. */
static int mkdirs_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof dir) return slash ? -1 : 0;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    return dir[0] ? molmo_hf_mkdirs(dir) : 0;
}

/* "<path>.<pid>.<n>.tmp", unique among the threads and processes writing at once: the address
 * of the caller's buffer differs between live threads (each has its own stack). */
static void unique_tmp(char *tmp, size_t cap, const char *path) {
    snprintf(tmp, cap, "%s.%ld.%lx.tmp", path, (long)getpid(), (unsigned long)(uintptr_t)tmp);
}

molmo_status molmo_hf_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                molmo_error *err) {
    char path[4096], tmp[4200], old[128] = "";
    int n = snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    if (n < 0 || (size_t)n >= sizeof path)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s/refs/%s: path too long", repo_dir, rev);
    FILE *f = fopen(path, "r");
    if (f) { /* unchanged: leave it (the cache may be read-only for us, as for Python) */
        size_t r = fread(old, 1, sizeof old - 1, f);
        fclose(f);
        old[r] = '\0';
        if (strcmp(old, commit) == 0) return MOLMO_OK;
    }
    if (mkdirs_parent(path) != 0)
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create its directory: %s", path,
                         strerror(errno));
    unique_tmp(tmp, sizeof tmp, path);
    f = fopen(tmp, "w");
    if (!f) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fputs(commit, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return MOLMO_OK;
}

molmo_status molmo_hf_link_blob(const char *repo_dir, const char *commit, const char *file,
                                const char *etag, molmo_error *err) {
    char ptr[4096], tmp[4200], target[4096], cur[4096];
    int n = snprintf(ptr, sizeof ptr, "%s/snapshots/%s/%s", repo_dir, commit, file);
    if (n < 0 || (size_t)n >= sizeof ptr)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: snapshot path too long", file);
    /* from snapshots/<commit>/<dirs...>/ up to the repo folder: 2 + one per directory */
    size_t k = 0;
    int ups = 2;
    for (const char *c = file; *c; c++) ups += *c == '/';
    for (int i = 0; i < ups && k + 3 < sizeof target; i++) memcpy(target + k, "../", 3), k += 3;
    n = snprintf(target + k, sizeof target - k, "blobs/%s", etag);
    if (n < 0 || (size_t)n >= sizeof target - k)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: link target too long", file);
    ssize_t len = readlink(ptr, cur, sizeof cur - 1);
    if (len >= 0 && (cur[len] = '\0', strcmp(cur, target) == 0)) return MOLMO_OK;
    if (mkdirs_parent(ptr) != 0)
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create its directory: %s", ptr,
                         strerror(errno));
    unique_tmp(tmp, sizeof tmp, ptr);
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, ptr) != 0) {
        int e = errno;
        unlink(tmp);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot link to %s: %s", ptr, target,
                         strerror(e));
    }
    return MOLMO_OK;
}

/* ---- token and offline mode ---------------------------------------------------------------- */

static int token_path(char *out, size_t cap) {
    const char *v;
    int n;
    if ((v = getenv("HF_TOKEN_PATH")) && *v)
        n = snprintf(out, cap, "%s", v);
    else if ((v = getenv("HF_HOME")) && *v)
        n = snprintf(out, cap, "%s/token", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v)
        n = snprintf(out, cap, "%s/huggingface/token", v);
    else if ((v = getenv("HOME")) && *v)
        n = snprintf(out, cap, "%s/.cache/huggingface/token", v);
    else
        return -1;
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* Copies s without surrounding whitespace; 1 when something is left and it fits. */
static int trimmed(const char *s, char *out, size_t cap) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= cap) return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

int molmo_hf_token(char *out, size_t cap) {
    const char *v = getenv("HF_TOKEN");
    if (!v || !*v) v = getenv("HUGGING_FACE_HUB_TOKEN");
    if (v && *v) return trimmed(v, out, cap);
    char path[4096], line[1024];
    if (token_path(path, sizeof path) != 0) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    return ok && trimmed(line, out, cap);
}

int molmo_hf_offline_env(void) {
    const char *v = getenv("HF_HUB_OFFLINE");
    if (!v || !*v) v = getenv("TRANSFORMERS_OFFLINE");
    if (!v) return 0;
    return !strcasecmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "true");
}

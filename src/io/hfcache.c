/* hfcache.c — resolving "ORG/NAME[@REV]" to a snapshot directory of the Hugging Face cache. */
#define _POSIX_C_SOURCE 200809L
#include "io/hfcache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/path.h"

int molmo_hf_cache_root(char *out, size_t cap) {
    const char *v;
    int n;
    if ((v = getenv("HF_HUB_CACHE")) && *v)
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

/* refs/<rev> holds a commit hash; a revision that is itself a snapshot name is used directly. */
static int read_ref(const char *repo_dir, const char *rev, char *commit, size_t cap) {
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
    if (read_ref(repo_dir, rev, commit, sizeof commit) != 0)
        return molmo_err(err, MOLMO_ERR_NOT_FOUND,
                         "%s is not in the Hugging Face cache (looked for %s, revision %s); "
                         "download it first (e.g. huggingface-cli download %s) or pass a "
                         "directory",
                         repo, repo_dir, rev, repo);
    int n = snprintf(out, cap, "%s/snapshots/%s", repo_dir, commit);
    if (n < 0 || (size_t)n >= cap)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: resolved path too long", spec);
    if (!molmo_path_is_dir(out))
        return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: refs/%s names snapshot %s, which is "
                         "missing from %s", repo, rev, commit, repo_dir);
    return MOLMO_OK;
}

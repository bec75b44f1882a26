/* hfcache.h — the Hugging Face hub cache layout (shared with Python's huggingface_hub):
 *   <root>/models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>} */
#ifndef MOLMO_IO_HFCACHE_H
#define MOLMO_IO_HFCACHE_H

#include <stddef.h>

#include "molmo.h"

/* The cache root: $HF_HUB_CACHE, else (older name) $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub,
 * else $XDG_CACHE_HOME/huggingface/hub, else $HOME/.cache/huggingface/hub. Returns 0, or -1
 * when no root can be formed/fits. */
int molmo_hf_cache_root(char *out, size_t cap);

/* 1 when `s` looks like "ORG/NAME" or "ORG/NAME@REV" (hub naming rules: letters, digits, '-',
 * '_', '.'; no "..", no leading/trailing separator). Splits into repo[rcap] and rev[vcap]
 * (rev = "main" when absent). */
int molmo_hf_parse_repo_id(const char *s, char *repo, size_t rcap, char *rev, size_t vcap);

/* The cache folder name of a repo: "models--ORG--NAME". */
int molmo_hf_repo_folder(const char *repo, char *out, size_t cap);

/* <root>/models--ORG--NAME into out[cap]; 0, or -1 when it does not fit. */
int molmo_hf_repo_dir(const char *root, const char *repo, char *out, size_t cap);

/* The commit that <repo_dir>/refs/<rev> names (huggingface_hub writes it without a newline;
 * trailing whitespace is ignored), or `rev` itself when snapshots/<rev> exists. 0 or -1. */
int molmo_hf_read_ref(const char *repo_dir, const char *rev, char *commit, size_t cap);

/* Records refs/<rev> = commit (no newline, as huggingface_hub) through a temporary file and a
 * rename, so readers never see half a ref; `rev` may contain '/' ("refs/pr/1"). Nothing is
 * written when the ref already says so. */
molmo_status molmo_hf_write_ref(const char *repo_dir, const char *rev, const char *commit,
                                molmo_error *err);

/* Makes snapshots/<commit>/<file> a relative symlink to ../../blobs/<etag> (one more "../"
 * per directory in `file`), replacing any other link there atomically. */
molmo_status molmo_hf_link_blob(const char *repo_dir, const char *commit, const char *file,
                                const char *etag, molmo_error *err);

/* mkdir -p: 0, or -1 with errno set. */
int molmo_hf_mkdirs(const char *dir);

/* The user's hub token, as huggingface_hub finds it: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else
 * the first line of the token file ($HF_TOKEN_PATH, else $HF_HOME/token, else
 * $XDG_CACHE_HOME/huggingface/token, else ~/.cache/huggingface/token). 1 when found. */
int molmo_hf_token(char *out, size_t cap);

/* 1 when $HF_HUB_OFFLINE (or the older $TRANSFORMERS_OFFLINE) is 1, ON, YES or TRUE. */
int molmo_hf_offline_env(void);

#endif

/* hfcache.h — the Hugging Face hub cache layout (shared with Python's huggingface_hub):
 *   <root>/models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>} */
#ifndef MOLMO_IO_HFCACHE_H
#define MOLMO_IO_HFCACHE_H

#include <stddef.h>

#include "molmo.h"

/* The cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 * else $HOME/.cache/huggingface/hub. Returns 0, or -1 when no root can be formed/fits. */
int molmo_hf_cache_root(char *out, size_t cap);

/* 1 when `s` looks like "ORG/NAME" or "ORG/NAME@REV" (hub naming rules: letters, digits, '-',
 * '_', '.'; no "..", no leading/trailing separator). Splits into repo[rcap] and rev[vcap]
 * (rev = "main" when absent). */
int molmo_hf_parse_repo_id(const char *s, char *repo, size_t rcap, char *rev, size_t vcap);

/* The cache folder name of a repo: "models--ORG--NAME". */
int molmo_hf_repo_folder(const char *repo, char *out, size_t cap);

#endif

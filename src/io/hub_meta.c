/* hub_meta.c — parsing what the Hugging Face hub answers: the revision listing of
 * GET /api/models/{repo}/revision/{rev}?blobs=True (commit "sha", "siblings" with "rfilename",
 * "size", "blobId", "lfs": {"sha256", "size"}), the response headers of the resolve endpoint
 * (ETag, X-Linked-Etag, X-Linked-Size, X-Repo-Commit, Location, X-Error-Code, ...), and the
 * names that end up as paths in the cache. Everything here is untrusted input: a name or ETag
 * becomes a file name, so each is checked before use (hub_fuzz.c fuzzes this file). */
#define _POSIX_C_SOURCE 200809L
#include "io/hub.h"

#include <ctype.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/error.h"

int molmo_hub_is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int hex_string(const char *s, size_t n) { return strlen(s) == n && molmo_hub_is_hex(s, n); }

int molmo_hub_normalize_etag(const char *raw, size_t len, char *out, size_t cap) {
    out[0] = '\0';
    while (len > 0 && (raw[0] == ' ' || raw[0] == '\t')) raw++, len--;
    while (len > 0 && (raw[len - 1] == ' ' || raw[len - 1] == '\t')) len--;
    if (len >= 2 && raw[0] == 'W' && raw[1] == '/') raw += 2, len -= 2;
    if (len >= 2 && raw[0] == '"' && raw[len - 1] == '"') raw++, len -= 2;
    if (len == 0 || len >= cap || raw[0] == '.') return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.') return 0;
    }
    memcpy(out, raw, len);
    out[len] = '\0';
    return 1;
}

/* One path component: not empty, not "." or "..", no control character or backslash. */
static int valid_component(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return 0;
    }
    return 1;
}

static int valid_path(const char *name, size_t max_len) {
    size_t len = strlen(name);
    if (len == 0 || len > max_len) return 0;
    const char *p = name;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_component(p, n)) return 0;
        if (!slash) return 1;
        p = slash + 1;
    }
}

int molmo_hub_valid_filename(const char *name) { return valid_path(name, 1024); }

int molmo_hub_valid_revision(const char *rev) { return valid_path(rev, 200); }

int molmo_hub_glob_match(const char *const *globs, int n, const char *name) {
    if (!globs || n <= 0) return 1;
    for (int i = 0; i < n; i++) {
        const char *g = globs[i];
        if (!g || !*g) continue;
        size_t len = strlen(g);
        if (g[len - 1] == '/') {
            /* "dir/" means everything under dir ("dir/" + "*"), as huggingface_hub reads it */
            char buf[1100];
            if (len + 2 > sizeof buf) continue;
            memcpy(buf, g, len);
            buf[len] = '*';
            buf[len + 1] = '\0';
            if (fnmatch(buf, name, 0) == 0) return 1;
        } else if (fnmatch(g, name, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- the revision listing --------------------------------------------------------------- */

void molmo_hub_listing_clear(molmo_hub_listing *l) {
    if (!l) return;
    for (int i = 0; i < l->n_files; i++) molmo_free(l->files[i].name);
    molmo_free(l->files);
    memset(l, 0, sizeof *l);
}

/* A JSON size: a non-negative integer below 2^53 (what a JSON number holds exactly). */
static int json_size(json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > ((json_int_t)1 << 53)) return 0;
    *out = (int64_t)x;
    return 1;
}

static molmo_status parse_lfs(json_t *lfs, molmo_hub_file *f, const char *ctx, int i,
                              molmo_error *err) {
    if (!lfs || json_is_null(lfs)) return MOLMO_OK;
    if (!json_is_object(lfs))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: siblings[%d].lfs is not an object", ctx, i);
    const char *sha = json_string_value(json_object_get(lfs, "sha256"));
    if (!sha || !hex_string(sha, 64))
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: siblings[%d].lfs.sha256 is not 64 lowercase hex digits", ctx, i);
    memcpy(f->lfs_sha256, sha, 65);
    int64_t size;
    if (!json_size(json_object_get(lfs, "size"), &size))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: siblings[%d].lfs.size is not a size", ctx,
                         i);
    if (f->size >= 0 && f->size != size)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: siblings[%d] (%s) has size %lld but lfs.size %lld", ctx, i,
                         f->name, (long long)f->size, (long long)size);
    f->size = size;
    return MOLMO_OK;
}

static molmo_status parse_sibling(json_t *s, molmo_hub_file *f, const char *ctx, int i,
                                  molmo_error *err) {
    f->size = -1;
    if (!json_is_object(s))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: siblings[%d] is not an object", ctx, i);
    const char *name = json_string_value(json_object_get(s, "rfilename"));
    if (!name)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: siblings[%d].rfilename is missing", ctx, i);
    if (!molmo_hub_valid_filename(name))
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: siblings[%d].rfilename \"%.80s\" is not a safe relative path", ctx,
                         i, name);
    f->name = molmo_strdup(name);
    if (!f->name) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    json_t *size = json_object_get(s, "size");
    if (size && !json_is_null(size) && !json_size(size, &f->size))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: siblings[%d].size is not a size", ctx, i);
    json_t *blob = json_object_get(s, "blobId");
    if (blob && !json_is_null(blob)) {
        const char *b = json_string_value(blob);
        if (!b || !hex_string(b, 40))
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: siblings[%d].blobId is not 40 lowercase hex digits", ctx, i);
        memcpy(f->blob_id, b, 41);
    }
    return parse_lfs(json_object_get(s, "lfs"), f, ctx, i, err);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const molmo_hub_file *)a)->name, ((const molmo_hub_file *)b)->name);
}

static molmo_status parse_siblings(json_t *sib, const char *ctx, molmo_hub_listing *out,
                                   molmo_error *err) {
    if (!json_is_array(sib))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"siblings\" (the file list) is missing",
                         ctx);
    size_t n = json_array_size(sib);
    if (n > MOLMO_HUB_MAX_FILES)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: %zu files (at most %d)", ctx, n,
                         MOLMO_HUB_MAX_FILES);
    out->files = molmo_calloc(n ? n : 1, sizeof *out->files);
    if (!out->files) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        out->n_files = (int)i + 1;
        molmo_status s = parse_sibling(json_array_get(sib, i), &out->files[i], ctx, (int)i, err);
        if (s != MOLMO_OK) return s;
    }
    qsort(out->files, n, sizeof *out->files, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(out->files[i - 1].name, out->files[i].name) == 0)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: file \"%.80s\" is listed twice", ctx,
                             out->files[i].name);
    return MOLMO_OK;
}

molmo_status molmo_hub_parse_listing(const char *json, size_t len, const char *ctx,
                                     molmo_hub_listing *out, molmo_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    molmo_status s;
    if (!root) return molmo_err(err, MOLMO_ERR_FORMAT, "%s: invalid JSON: %s", ctx, je.text);
    if (!json_is_object(root)) {
        s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: not a JSON object", ctx);
        goto fail;
    }
    const char *sha = json_string_value(json_object_get(root, "sha"));
    if (!sha || !hex_string(sha, 40)) {
        s = molmo_err(err, MOLMO_ERR_FORMAT,
                      "%s: \"sha\" (the commit) is not 40 lowercase hex digits", ctx);
        goto fail;
    }
    memcpy(out->commit, sha, 41);
    s = parse_siblings(json_object_get(root, "siblings"), ctx, out, err);
    if (s != MOLMO_OK) goto fail;
    json_decref(root);
    return MOLMO_OK;
fail:
    json_decref(root);
    molmo_hub_listing_clear(out);
    return s;
}

/* ---- response headers ------------------------------------------------------------------- */

void molmo_hub_headers_reset(molmo_hub_headers *h) {
    memset(h, 0, sizeof *h);
    h->linked_size = h->content_length = h->range_start = h->range_total = -1;
    h->retry_after_s = -1;
}

/* Strict decimal: digits only, no sign, no overflow past 2^62. */
static int parse_u64(const char *s, size_t n, int64_t *out) {
    if (n == 0 || n > 18) return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Copies a value keeping printable ASCII only (it ends up in one-line messages). */
static void copy_printable(char *dst, size_t cap, const char *v, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        dst[k++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    dst[k] = '\0';
}

/* "bytes START-END/TOTAL" (TOTAL may be "*"). */
static void parse_content_range(molmo_hub_headers *h, const char *v, size_t n) {
    const char *dash = memchr(v, '-', n), *slash = memchr(v, '/', n);
    if (n < 7 || strncasecmp(v, "bytes ", 6) != 0 || !dash || !slash || slash < dash ||
        !parse_u64(v + 6, (size_t)(dash - v - 6), &h->range_start)) {
        h->range_start = -1;
        h->bad = 1;
        return;
    }
    size_t tn = n - (size_t)(slash + 1 - v);
    if (!(tn == 1 && slash[1] == '*') && !parse_u64(slash + 1, tn, &h->range_total)) h->bad = 1;
}

static void parse_status(molmo_hub_headers *h, const char *line, size_t len) {
    molmo_hub_headers_reset(h);
    const char *sp = memchr(line, ' ', len);
    int64_t code = 0;
    if (!sp || len - (size_t)(sp + 1 - line) < 3 || !parse_u64(sp + 1, 3, &code)) {
        h->bad = 1;
        return;
    }
    h->status = (long)code;
}

static void set_etag(molmo_hub_headers *h, char *dst, const char *v, size_t n) {
    if (!molmo_hub_normalize_etag(v, n, dst, MOLMO_HUB_ETAG_MAX)) h->bad = 1;
}

static void set_field(molmo_hub_headers *h, const char *name, size_t nn, const char *v,
                      size_t n) {
#define IS(s) (nn == sizeof(s) - 1 && strncasecmp(name, s, nn) == 0)
    int64_t x;
    if (IS("etag")) set_etag(h, h->etag, v, n);
    else if (IS("x-linked-etag")) set_etag(h, h->linked_etag, v, n);
    else if (IS("x-linked-size")) h->bad |= !parse_u64(v, n, &h->linked_size);
    else if (IS("content-length")) h->bad |= !parse_u64(v, n, &h->content_length);
    else if (IS("content-range")) parse_content_range(h, v, n);
    else if (IS("x-repo-commit")) {
        if (n == 40 && molmo_hub_is_hex(v, 40)) memcpy(h->commit, v, 40), h->commit[40] = '\0';
        else h->bad = 1;
    } else if (IS("location")) {
        if (n >= sizeof h->location) h->bad = 1;
        else copy_printable(h->location, sizeof h->location, v, n);
    } else if (IS("x-error-code")) copy_printable(h->error_code, sizeof h->error_code, v, n);
    else if (IS("x-error-message"))
        copy_printable(h->error_message, sizeof h->error_message, v, n);
    else if (IS("content-encoding"))
        copy_printable(h->content_encoding, sizeof h->content_encoding, v, n);
    else if (IS("retry-after") && parse_u64(v, n, &x)) h->retry_after_s = x > 3600 ? 3600 : (long)x;
#undef IS
}

void molmo_hub_headers_feed(molmo_hub_headers *h, const char *line, size_t len) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        parse_status(h, line, len);
        return;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line) return; /* blank line ending the headers, or junk */
    size_t nn = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t n = len - nn - 1;
    while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    set_field(h, line, nn, v, n);
}

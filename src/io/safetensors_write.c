/* safetensors_write.c — a small .safetensors writer (tests, benchmarks, tensor dumps). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/safetensors.h"

static const char *st_dtype_name(molmo_dtype t) {
    switch (t) {
    case MOLMO_DTYPE_F32: return "F32";
    case MOLMO_DTYPE_F16: return "F16";
    case MOLMO_DTYPE_BF16: return "BF16";
    default: return "I32";
    }
}

static json_t *build_header(const molmo_st_entry *e, int n, uint64_t *total) {
    json_t *root = json_object();
    json_t *meta = json_pack("{s:s}", "format", "pt");
    if (!root || !meta || json_object_set_new(root, "__metadata__", meta)) goto fail;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        uint64_t count = 1;
        for (int d = 0; d < e[i].n_dims; d++) {
            json_array_append_new(shape, json_integer(e[i].shape[d]));
            count *= (uint64_t)e[i].shape[d];
        }
        uint64_t bytes = count * molmo_dtype_size(e[i].dtype);
        json_t *t = json_pack("{s:s,s:o,s:[I,I]}", "dtype", st_dtype_name(e[i].dtype), "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
        if (!t || json_object_set_new(root, e[i].name, t)) goto fail;
        off += bytes;
    }
    *total = off;
    return root;
fail:
    json_decref(root);
    return NULL;
}

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

molmo_status molmo_st_write(const char *path, const molmo_st_entry *e, int n, molmo_error *err) {
    uint64_t total = 0;
    json_t *root = build_header(e, n, &total);
    if (!root) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: cannot build header", path);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: cannot build header", path);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    molmo_status s = MOLMO_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(text);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    unsigned char hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if (write_all(fd, hl, 8) || write_all(fd, text, len) || write_all(fd, spaces, padded - len))
        s = molmo_err(err, MOLMO_ERR_IO, "%s: write failed", path);
    uint64_t base = 8 + padded;
    for (int i = 0; s == MOLMO_OK && i < n; i++) {
        uint64_t count = 1;
        for (int d = 0; d < e[i].n_dims; d++) count *= (uint64_t)e[i].shape[d];
        uint64_t bytes = count * molmo_dtype_size(e[i].dtype);
        if (e[i].data && (lseek(fd, (off_t)base, SEEK_SET) < 0 || write_all(fd, e[i].data, bytes)))
            s = molmo_err(err, MOLMO_ERR_IO, "%s: write of '%s' failed", path, e[i].name);
        base += bytes;
    }
    if (s == MOLMO_OK && ftruncate(fd, (off_t)(8 + padded + total)) != 0)
        s = molmo_err(err, MOLMO_ERR_IO, "%s: cannot size to %llu bytes: %s", path,
                      (unsigned long long)(8 + padded + total), strerror(errno));
    if (close(fd) != 0 && s == MOLMO_OK) s = molmo_err(err, MOLMO_ERR_IO, "%s: close failed", path);
    free(text);
    return s;
}

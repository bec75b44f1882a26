/* gguf_write.c — the GGUF writer: metadata serialised as it is added, tensor data streamed from a
 * callback in bounded chunks (a 7B model converts without holding a tensor in memory), laid out
 * exactly as ggml's gguf_write_to_file does: tensors back to back in the order added, each
 * starting at a multiple of the alignment and followed by zero padding up to the next one (the
 * last one too), because ggml's reader refuses any other placement. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/bigwrite.h"
#include "io/gguf.h"
#include "kernels/quant.h"

#define CHUNK_BYTES (16u << 20)

typedef struct wtensor {
    char *name;
    molmo_dtype dtype;
    int n_dims;
    int64_t shape[MOLMO_GGUF_MAX_DIMS]; /* PyTorch order */
    uint64_t n_bytes, row_bytes, n_rows;
} wtensor;

struct molmo_gguf_writer {
    unsigned char *kv;   /* serialised key-value pairs */
    size_t kv_len, kv_cap;
    char **keys;         /* [n_kv] for the duplicate check */
    uint64_t n_kv;
    wtensor *t;
    int n_t, cap_t;
    uint32_t alignment;
};

molmo_status molmo_gguf_writer_create(molmo_gguf_writer **out, molmo_error *err) {
    *out = molmo_calloc(1, sizeof **out);
    if (!*out) return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
    (*out)->alignment = MOLMO_GGUF_DEFAULT_ALIGNMENT;
    return MOLMO_OK;
}

void molmo_gguf_writer_free(molmo_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) molmo_free(w->keys[i]);
    for (int i = 0; i < w->n_t; i++) molmo_free(w->t[i].name);
    molmo_free(w->keys);
    molmo_free(w->t);
    molmo_free(w->kv);
    molmo_free(w);
}

/* ---- metadata ---------------------------------------------------------------------------- */

static int put(molmo_gguf_writer *w, const void *p, size_t n) {
    if (n > SIZE_MAX - w->kv_len) return 0;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap = cap > SIZE_MAX / 2 ? w->kv_len + n : cap * 2;
        unsigned char *b = molmo_realloc(w->kv, cap);
        if (!b) return 0;
        w->kv = b;
        w->kv_cap = cap;
    }
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 1;
}

static int put32(molmo_gguf_writer *w, uint32_t v) { return put(w, &v, 4); }
static int put64(molmo_gguf_writer *w, uint64_t v) { return put(w, &v, 8); }
static int put_str(molmo_gguf_writer *w, const char *s, size_t len) {
    return put64(w, len) && put(w, s, len);
}

/* Checks the key and appends it with its type; the caller appends the value and calls end_kv,
 * which rolls the buffer back to *mark when that failed. */
static molmo_status begin_kv(molmo_gguf_writer *w, const char *key, uint32_t type,
                             size_t *mark, molmo_error *err) {
    if (!key || !*key)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: empty metadata key");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: key '%s' given twice", key);
    char **keys = molmo_realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    if (!keys) return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
    w->keys = keys;
    *mark = w->kv_len;
    if (!put_str(w, key, strlen(key)) || !put32(w, type)) {
        w->kv_len = *mark;
        return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
    }
    return MOLMO_OK;
}

static molmo_status end_kv(molmo_gguf_writer *w, const char *key, int ok, size_t mark,
                           molmo_error *err) {
    char *k = ok ? molmo_strdup(key) : NULL;
    if (!k) {
        w->kv_len = mark;
        return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->keys[w->n_kv++] = k;
    return MOLMO_OK;
}

molmo_status molmo_gguf_add_scalar(molmo_gguf_writer *w, const char *key, molmo_gguf_type type,
                                   const void *value, molmo_error *err) {
    size_t esz = molmo_gguf_type_size(type), mark;
    if (esz == 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: key '%s': type %u is not a "
                         "fixed-size scalar type", key ? key : "", (unsigned)type);
    molmo_status st = begin_kv(w, key, (uint32_t)type, &mark, err);
    if (st != MOLMO_OK) return st;
    return end_kv(w, key, put(w, value, esz), mark, err);
}

molmo_status molmo_gguf_add_u32(molmo_gguf_writer *w, const char *key, uint32_t v,
                                molmo_error *err) {
    return molmo_gguf_add_scalar(w, key, MOLMO_GGUF_U32, &v, err);
}

molmo_status molmo_gguf_add_i32(molmo_gguf_writer *w, const char *key, int32_t v,
                                molmo_error *err) {
    return molmo_gguf_add_scalar(w, key, MOLMO_GGUF_I32, &v, err);
}

molmo_status molmo_gguf_add_f32(molmo_gguf_writer *w, const char *key, float v,
                                molmo_error *err) {
    return molmo_gguf_add_scalar(w, key, MOLMO_GGUF_F32, &v, err);
}

molmo_status molmo_gguf_add_bool(molmo_gguf_writer *w, const char *key, int v, molmo_error *err) {
    uint8_t b = v != 0;
    return molmo_gguf_add_scalar(w, key, MOLMO_GGUF_BOOL, &b, err);
}

molmo_status molmo_gguf_add_str(molmo_gguf_writer *w, const char *key, const char *s,
                                size_t len, molmo_error *err) {
    size_t mark;
    if (!s && len)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string",
                         key ? key : "");
    molmo_status st = begin_kv(w, key, MOLMO_GGUF_STRING, &mark, err);
    if (st != MOLMO_OK) return st;
    return end_kv(w, key, put_str(w, s, len), mark, err);
}

molmo_status molmo_gguf_add_array(molmo_gguf_writer *w, const char *key,
                                  molmo_gguf_type elem_type, const void *values, uint64_t n,
                                  molmo_error *err) {
    size_t esz = molmo_gguf_type_size(elem_type), mark;
    if (esz == 0 || (n && !values) || n > SIZE_MAX / esz)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "gguf writer: key '%s': not an array of fixed-size values",
                         key ? key : "");
    molmo_status st = begin_kv(w, key, MOLMO_GGUF_ARRAY, &mark, err);
    if (st != MOLMO_OK) return st;
    int ok = put32(w, (uint32_t)elem_type) && put64(w, n) && put(w, values, (size_t)(n * esz));
    return end_kv(w, key, ok, mark, err);
}

molmo_status molmo_gguf_add_str_array(molmo_gguf_writer *w, const char *key,
                                      const char *const *strs, const size_t *lens, uint64_t n,
                                      molmo_error *err) {
    size_t mark;
    if (n && !strs)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: key '%s': NULL strings",
                         key ? key : "");
    molmo_status st = begin_kv(w, key, MOLMO_GGUF_ARRAY, &mark, err);
    if (st != MOLMO_OK) return st;
    int ok = put32(w, MOLMO_GGUF_STRING) && put64(w, n);
    for (uint64_t i = 0; ok && i < n; i++)
        ok = put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
    return end_kv(w, key, ok, mark, err);
}

molmo_status molmo_gguf_set_alignment(molmo_gguf_writer *w, uint32_t alignment,
                                      molmo_error *err) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "gguf writer: alignment %u is not a power of two", alignment);
    molmo_status st = molmo_gguf_add_u32(w, "general.alignment", alignment, err);
    if (st == MOLMO_OK) w->alignment = alignment;
    return st;
}

/* ---- tensors ----------------------------------------------------------------------------- */

molmo_status molmo_gguf_add_tensor(molmo_gguf_writer *w, const char *name, molmo_dtype dtype,
                                   int n_dims, const int64_t *shape, molmo_error *err) {
    if (!name || !*name)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: empty tensor name");
    if (molmo_gguf_ggml_type(dtype) < 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: tensor '%s': dtype %s has no "
                         "ggml type", name, molmo_dtype_name(dtype));
    if (n_dims < 1 || n_dims > MOLMO_GGUF_MAX_DIMS)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: tensor '%s' has %d dims",
                         name, n_dims);
    uint64_t n_rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: tensor '%s': negative "
                             "dimension", name);
        if (d < n_dims - 1) n_rows *= (uint64_t)shape[d];
    }
    const int64_t ne0 = shape[n_dims - 1];
    size_t rb = molmo_dtype_row_bytes(dtype, ne0);
    if (ne0 && !rb)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "gguf writer: tensor '%s': rows of %lld values are not whole %s blocks",
                         name, (long long)ne0, molmo_dtype_name(dtype));
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: tensor '%s' given twice",
                             name);
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 256;
        wtensor *t = molmo_realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = molmo_strdup(name);
    if (!t->name) return molmo_err(err, MOLMO_ERR_NOMEM, "gguf writer: out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
    t->row_bytes = rb;
    t->n_rows = n_rows;
    t->n_bytes = rb * n_rows;
    w->n_t++;
    return MOLMO_OK;
}

static uint64_t pad_to(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

/* Bytes of the tensor infos. */
static uint64_t infos_bytes(const molmo_gguf_writer *w) {
    uint64_t n = 0;
    for (int i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return n;
}

uint64_t molmo_gguf_writer_size(const molmo_gguf_writer *w) {
    uint64_t n = pad_to(24 + w->kv_len + infos_bytes(w), w->alignment);
    for (int i = 0; i < w->n_t; i++) n += pad_to(w->t[i].n_bytes, w->alignment);
    return n;
}

/* ---- the file ---------------------------------------------------------------------------- */

/* Written in 2 MiB-aligned pieces (io/bigwrite.h): the new file then sits in the page cache
 * in huge folios, which a mapping of it maps with huge pages. */
typedef struct out_file {
    molmo_bigwrite bw;
    const char *path;
    molmo_error *err;
} out_file;

static molmo_status wr(out_file *o, const void *p, size_t n) {
    if (molmo_bigwrite_put(&o->bw, p, n) == 0) return MOLMO_OK;
    return molmo_err(o->err, MOLMO_ERR_IO, "%s: cannot write: %s", o->path, strerror(errno));
}

static molmo_status wr_zeros(out_file *o, uint64_t n) {
    static const unsigned char zeros[256];
    molmo_status st = MOLMO_OK;
    while (n && st == MOLMO_OK) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        st = wr(o, zeros, k);
        n -= k;
    }
    return st;
}

static molmo_status wr_header(out_file *o, const molmo_gguf_writer *w) {
    uint32_t v = MOLMO_GGUF_VERSION;
    uint64_t nt = (uint64_t)w->n_t, nkv = w->n_kv, offset = 0;
    molmo_status st = wr(o, MOLMO_GGUF_MAGIC, 4);
    if (st == MOLMO_OK) st = wr(o, &v, 4);
    if (st == MOLMO_OK) st = wr(o, &nt, 8);
    if (st == MOLMO_OK) st = wr(o, &nkv, 8);
    if (st == MOLMO_OK) st = wr(o, w->kv, w->kv_len);
    for (int i = 0; i < w->n_t && st == MOLMO_OK; i++) {
        const wtensor *t = &w->t[i];
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, gt = (uint32_t)molmo_gguf_ggml_type(t->dtype);
        st = wr(o, &len, 8);
        if (st == MOLMO_OK) st = wr(o, t->name, (size_t)len);
        if (st == MOLMO_OK) st = wr(o, &nd, 4);
        for (int d = t->n_dims - 1; d >= 0 && st == MOLMO_OK; d--) { /* ggml order */
            uint64_t ne = (uint64_t)t->shape[d];
            st = wr(o, &ne, 8);
        }
        if (st == MOLMO_OK) st = wr(o, &gt, 4);
        if (st == MOLMO_OK) st = wr(o, &offset, 8);
        offset += pad_to(t->n_bytes, w->alignment);
    }
    uint64_t head = 24 + w->kv_len + infos_bytes(w);
    if (st == MOLMO_OK) st = wr_zeros(o, pad_to(head, w->alignment) - head);
    return st;
}

/* One tensor's data in chunks of whole rows, then its padding. */
static molmo_status wr_tensor(out_file *o, const molmo_gguf_writer *w, int i, unsigned char *buf,
                              uint64_t buf_rows_bytes, molmo_gguf_fill_fn fill, void *user) {
    const wtensor *t = &w->t[i];
    molmo_status st = MOLMO_OK;
    if (t->n_bytes) {
        uint64_t per = buf_rows_bytes / t->row_bytes; /* >= 1 by construction */
        for (uint64_t r = 0; r < t->n_rows && st == MOLMO_OK; r += per) {
            uint64_t n = t->n_rows - r < per ? t->n_rows - r : per;
            st = fill(user, i, (int64_t)r, (int64_t)n, buf, o->err);
            if (st == MOLMO_OK) st = wr(o, buf, (size_t)(n * t->row_bytes));
        }
    }
    if (st == MOLMO_OK) st = wr_zeros(o, pad_to(t->n_bytes, w->alignment) - t->n_bytes);
    return st;
}

static molmo_status wr_all(out_file *o, const molmo_gguf_writer *w, molmo_gguf_fill_fn fill,
                           void *user) {
    uint64_t cap = 0; /* the chunk buffer: 16 MB of whole rows, or one row if longer */
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (!t->n_bytes) continue;
        uint64_t c = t->row_bytes >= CHUNK_BYTES ? t->row_bytes
                                                 : CHUNK_BYTES / t->row_bytes * t->row_bytes;
        if (c > t->n_bytes) c = t->n_bytes;
        if (c > cap) cap = c;
    }
    if (cap > SIZE_MAX)
        return molmo_err(o->err, MOLMO_ERR_TOO_LARGE, "%s: a tensor row is too large", o->path);
    unsigned char *buf = molmo_malloc(cap ? (size_t)cap : 1);
    if (!buf) return molmo_err(o->err, MOLMO_ERR_NOMEM, "%s: out of memory", o->path);
    molmo_status st = wr_header(o, w);
    for (int i = 0; i < w->n_t && st == MOLMO_OK; i++) {
        uint64_t rows_bytes = w->t[i].row_bytes >= CHUNK_BYTES ? w->t[i].row_bytes : cap;
        st = wr_tensor(o, w, i, buf, rows_bytes, fill, user);
    }
    molmo_free(buf);
    return st;
}

molmo_status molmo_gguf_writer_write(molmo_gguf_writer *w, const char *path,
                                     molmo_gguf_fill_fn fill, void *user, molmo_error *err) {
    if (!w || !path || (!fill && w->n_t))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "gguf writer: NULL argument");
    char part[4096];
    if (snprintf(part, sizeof part, "%s.part", path) >= (int)sizeof part)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", path);
    out_file o = {.path = part, .err = err};
    const int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create: %s", part, strerror(errno));
    molmo_status st = MOLMO_OK;
    if (molmo_bigwrite_init(&o.bw, fd, 0, 0) != 0)
        st = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", part);
    if (st == MOLMO_OK) st = wr_all(&o, w, fill, user);
    if (st == MOLMO_OK && (molmo_bigwrite_flush(&o.bw) != 0 || fsync(fd) != 0))
        st = molmo_err(err, MOLMO_ERR_IO, "%s: cannot write: %s", part, strerror(errno));
    molmo_bigwrite_free(&o.bw);
    if (close(fd) != 0 && st == MOLMO_OK)
        st = molmo_err(err, MOLMO_ERR_IO, "%s: cannot write: %s", part, strerror(errno));
    if (st == MOLMO_OK && rename(part, path) != 0)
        st = molmo_err(err, MOLMO_ERR_IO, "%s: cannot rename to %s: %s", part, path,
                       strerror(errno));
    if (st != MOLMO_OK) unlink(part);
    return st;
}

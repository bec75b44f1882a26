/* gguf.c — the GGUF reader: every length, count, type, dim and offset of the file is checked
 * against the file before a tensor is handed out (the container of ggml's docs/gguf.md, checks
 * as in ggml's gguf.cpp plus bounds, overlap and NUL checks of our own; the writer is in
 * gguf_write.c). Integers are read little-endian with memcpy: no alignment is assumed. */
#define _POSIX_C_SOURCE 200809L
#include "io/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/mapfile.h"
#include "kernels/quant.h"

/* Smallest encodings, used to refuse up front, with a clear message, counts that the remaining
 * bytes cannot hold (the arrays themselves grow only with the entries actually read):
 * a key-value pair is a 1-byte key (8 + 1), a type (4) and a u8 (1); a tensor info is a
 * 1-byte name (8 + 1), n_dims (4), one dim (8), a type (4) and an offset (8). */
#define MIN_KV_BYTES 14u
#define MIN_TENSOR_INFO_BYTES 33u

size_t molmo_gguf_type_size(molmo_gguf_type t) {
    switch (t) {
    case MOLMO_GGUF_U8:
    case MOLMO_GGUF_I8:
    case MOLMO_GGUF_BOOL: return 1;
    case MOLMO_GGUF_U16:
    case MOLMO_GGUF_I16: return 2;
    case MOLMO_GGUF_U32:
    case MOLMO_GGUF_I32:
    case MOLMO_GGUF_F32: return 4;
    case MOLMO_GGUF_U64:
    case MOLMO_GGUF_I64:
    case MOLMO_GGUF_F64: return 8;
    default: return 0;
    }
}

int molmo_gguf_ggml_type(molmo_dtype t) {
    switch (t) {
    case MOLMO_DTYPE_F32: return MOLMO_GGML_F32;
    case MOLMO_DTYPE_F16: return MOLMO_GGML_F16;
    case MOLMO_DTYPE_BF16: return MOLMO_GGML_BF16;
    case MOLMO_DTYPE_Q8_0: return MOLMO_GGML_Q8_0;
    case MOLMO_DTYPE_Q4_0: return MOLMO_GGML_Q4_0;
    case MOLMO_DTYPE_Q4_K: return MOLMO_GGML_Q4_K;
    case MOLMO_DTYPE_Q6_K: return MOLMO_GGML_Q6_K;
    default: return -1;
    }
}

int molmo_gguf_dtype_from_ggml(uint32_t ggml_type, molmo_dtype *out) {
    switch (ggml_type) {
    case MOLMO_GGML_F32: return *out = MOLMO_DTYPE_F32, 1;
    case MOLMO_GGML_F16: return *out = MOLMO_DTYPE_F16, 1;
    case MOLMO_GGML_BF16: return *out = MOLMO_DTYPE_BF16, 1;
    case MOLMO_GGML_Q8_0: return *out = MOLMO_DTYPE_Q8_0, 1;
    case MOLMO_GGML_Q4_0: return *out = MOLMO_DTYPE_Q4_0, 1;
    case MOLMO_GGML_Q4_K: return *out = MOLMO_DTYPE_Q4_K, 1;
    case MOLMO_GGML_Q6_K: return *out = MOLMO_DTYPE_Q6_K, 1;
    default: return 0;
    }
}

/* Names of the other ggml types a file may legitimately hold (ggml.h, 2025), so a refusal can
 * say what the file has. NULL entries are ids ggml retired or never used. */
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "f32",    "f16",     "q4_0",    "q4_1",  "q4_2",    "q4_3",   "q5_0",  "q5_1",
        "q8_0",   "q8_1",    "q2_K",    "q3_K",  "q4_K",    "q5_K",   "q6_K",  "q8_K",
        "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl",  "iq3_s",  "iq2_s", "iq4_xs",
        "i8",     "i16",     "i32",     "i64",   "f64",     "iq1_m",  "bf16",  "q4_0_4_4",
        "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8",
        "mxfp4"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

int molmo_gguf_sniff(const void *data, size_t size) {
    return size >= 4 && memcmp(data, MOLMO_GGUF_MAGIC, 4) == 0;
}

int molmo_gguf_file_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char magic[4];
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return molmo_gguf_sniff(magic, n);
}

/* ---- cursor over the header ------------------------------------------------------------- */

typedef struct cursor {
    const unsigned char *base;
    size_t size, pos;
    const char *fname;
    molmo_error *err;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

/* MOLMO_OK when n more bytes are there, else a truncation error naming `what`. */
static molmo_status need(cursor *c, uint64_t n, const char *what) {
    if (n <= left(c)) return MOLMO_OK;
    return molmo_err(c->err, MOLMO_ERR_FORMAT,
                     "%s: the file ends at byte %zu, inside %s (truncated?)", c->fname, c->size,
                     what);
}

static uint32_t get32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static molmo_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    molmo_status s = need(c, 4, what);
    if (s == MOLMO_OK) *v = get32(c->base + c->pos), c->pos += 4;
    return s;
}

static molmo_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    molmo_status s = need(c, 8, what);
    if (s == MOLMO_OK) *v = get64(c->base + c->pos), c->pos += 8;
    return s;
}

/* A string: u64 length + bytes. *s points into the image. */
static molmo_status rd_str(cursor *c, const unsigned char **s, uint64_t *len, const char *what) {
    molmo_status st = rd_u64(c, len, what);
    if (st != MOLMO_OK) return st;
    if (*len > left(c))
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: %s has length %llu, but only %zu bytes follow", c->fname, what,
                         (unsigned long long)*len, left(c));
    *s = c->base + c->pos;
    c->pos += (size_t)*len;
    return MOLMO_OK;
}

/* A key or tensor name as a heap C string: non-empty, no NUL byte. */
static molmo_status rd_name(cursor *c, char **out, const char *what, uint64_t index) {
    const unsigned char *s = NULL;
    uint64_t len = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s %llu", what, (unsigned long long)index);
    molmo_status st = rd_str(c, &s, &len, buf);
    if (st != MOLMO_OK) return st;
    if (len == 0 || memchr(s, 0, (size_t)len))
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: %s is %s", c->fname, buf,
                         len ? "not a string (it holds a NUL byte)" : "empty");
    *out = molmo_strndup((const char *)s, (size_t)len);
    if (!*out) return molmo_err(c->err, MOLMO_ERR_NOMEM, "%s: out of memory", c->fname);
    return MOLMO_OK;
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* The n values of one type at the cursor: checks their bytes (and bools, strings) and skips. */
static molmo_status rd_values(cursor *c, molmo_gguf_kv *kv) {
    molmo_gguf_type t = kv->elem_type;
    const size_t start = c->pos;
    if (t == MOLMO_GGUF_STRING) {
        if (kv->n > left(c) / 8)
            return molmo_err(c->err, MOLMO_ERR_FORMAT,
                             "%s: key '%.100s' holds %llu strings, more than the %zu bytes left "
                             "can encode",
                             c->fname, kv->key, (unsigned long long)kv->n, left(c));
        for (uint64_t i = 0; i < kv->n; i++) {
            const unsigned char *s;
            uint64_t len;
            char what[160];
            snprintf(what, sizeof what, "string %llu of key '%.100s'", (unsigned long long)i,
                     kv->key);
            molmo_status st = rd_str(c, &s, &len, what);
            if (st != MOLMO_OK) return st;
        }
    } else {
        size_t esz = molmo_gguf_type_size(t);
        if (esz == 0)
            return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: key '%.100s' has unknown value type %u",
                             c->fname, kv->key, (unsigned)t);
        if (kv->n > left(c) / esz)
            return molmo_err(c->err, MOLMO_ERR_FORMAT,
                             "%s: key '%.100s' holds %llu values of %zu bytes, but only %zu bytes "
                             "follow",
                             c->fname, kv->key, (unsigned long long)kv->n, esz, left(c));
        if (t == MOLMO_GGUF_BOOL)
            for (uint64_t i = 0; i < kv->n; i++)
                if (c->base[c->pos + i] > 1)
                    return molmo_err(c->err, MOLMO_ERR_FORMAT,
                                     "%s: key '%.100s': bool value %u is neither 0 nor 1", c->fname,
                                     kv->key, c->base[c->pos + i]);
        c->pos += (size_t)(kv->n * esz);
    }
    kv->data = c->base + start;
    kv->n_bytes = c->pos - start;
    return MOLMO_OK;
}

static molmo_status rd_kv(cursor *c, molmo_gguf_kv *kv, uint64_t index) {
    molmo_status st = rd_name(c, &kv->key, "metadata key", index);
    if (st != MOLMO_OK) return st;
    char what[160];
    snprintf(what, sizeof what, "the type of key '%.100s'", kv->key);
    uint32_t t;
    if ((st = rd_u32(c, &t, what)) != MOLMO_OK) return st;
    kv->type = kv->elem_type = (molmo_gguf_type)t;
    kv->n = 1;
    if (t == MOLMO_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        snprintf(what, sizeof what, "the array header of key '%.100s'", kv->key);
        if ((st = rd_u32(c, &et, what)) != MOLMO_OK || (st = rd_u64(c, &n, what)) != MOLMO_OK)
            return st;
        if (et == MOLMO_GGUF_ARRAY)
            return molmo_err(c->err, MOLMO_ERR_UNSUPPORTED,
                             "%s: key '%.100s' is an array of arrays (not supported)", c->fname,
                             kv->key);
        kv->elem_type = (molmo_gguf_type)et;
        kv->n = n;
    }
    if (kv->elem_type >= MOLMO_GGUF_TYPE_COUNT)
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: key '%.100s' has unknown value type %u",
                         c->fname, kv->key, (unsigned)kv->elem_type);
    return rd_values(c, kv);
}

static int cmp_kv_ptr(const void *a, const void *b) {
    return strcmp((*(const molmo_gguf_kv *const *)a)->key, (*(const molmo_gguf_kv *const *)b)->key);
}

/* Keys must be unique (a reader could otherwise see either value). */
static molmo_status check_unique_keys(molmo_gguf *g, molmo_error *err) {
    if (g->n_kv < 2) return MOLMO_OK;
    const molmo_gguf_kv **order = molmo_calloc((size_t)g->n_kv, sizeof *order);
    if (!order) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", g->fname);
    for (int i = 0; i < g->n_kv; i++) order[i] = &g->kv[i];
    qsort(order, (size_t)g->n_kv, sizeof *order, cmp_kv_ptr);
    molmo_status s = MOLMO_OK;
    for (int i = 1; i < g->n_kv && s == MOLMO_OK; i++)
        if (!strcmp(order[i - 1]->key, order[i]->key))
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: metadata key '%.100s' appears twice",
                          g->fname, order[i]->key);
    molmo_free(order);
    return s;
}

static molmo_status read_alignment(molmo_gguf *g, molmo_error *err) {
    g->alignment = MOLMO_GGUF_DEFAULT_ALIGNMENT;
    const molmo_gguf_kv *kv = molmo_gguf_find(g, "general.alignment");
    if (!kv) return MOLMO_OK;
    if (kv->type != MOLMO_GGUF_U32)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: key 'general.alignment' must be a u32 (it has type %u)", g->fname,
                         (unsigned)kv->type);
    uint32_t a = get32(kv->data);
    if (a == 0 || (a & (a - 1)) != 0)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: key 'general.alignment' = %u is not a power of two", g->fname, a);
    g->alignment = a;
    return MOLMO_OK;
}

/* ---- tensor infos ------------------------------------------------------------------------ */

static molmo_status rd_dims(cursor *c, molmo_st_tensor *t) {
    char what[160];
    snprintf(what, sizeof what, "the shape of tensor '%.100s'", t->name);
    uint32_t nd;
    molmo_status st = rd_u32(c, &nd, what);
    if (st != MOLMO_OK) return st;
    if (nd < 1 || nd > MOLMO_GGUF_MAX_DIMS)
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: tensor '%.100s' has %u dimensions (GGUF allows 1 to %d)", c->fname,
                         t->name, nd, MOLMO_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n = 1;
    for (uint32_t j = 0; j < nd; j++) {
        uint64_t ne;
        if ((st = rd_u64(c, &ne, what)) != MOLMO_OK) return st;
        if (ne > (uint64_t)INT64_MAX || (ne != 0 && n > (uint64_t)INT64_MAX / ne))
            return molmo_err(c->err, MOLMO_ERR_FORMAT,
                             "%s: tensor '%.100s': the element count overflows (dimension %u is "
                             "%llu)",
                             c->fname, t->name, j, (unsigned long long)ne);
        n *= ne;
        t->shape[nd - 1 - j] = (int64_t)ne; /* ggml's ne[0] is PyTorch's last dim */
    }
    t->n_elements = n;
    return MOLMO_OK;
}

/* Type, block divisibility of the rows, byte size. */
static molmo_status rd_type(cursor *c, molmo_st_tensor *t) {
    char what[160];
    snprintf(what, sizeof what, "the type of tensor '%.100s'", t->name);
    uint32_t gt;
    molmo_status st = rd_u32(c, &gt, what);
    if (st != MOLMO_OK) return st;
    if (!molmo_gguf_dtype_from_ggml(gt, &t->dtype)) {
        const char *name = ggml_type_name(gt);
        if (name)
            return molmo_err(c->err, MOLMO_ERR_UNSUPPORTED,
                             "%s: tensor '%.100s' has ggml type %u (%s); molmo reads f32, f16, "
                             "bf16, q8_0, q4_0, q4_K and q6_K",
                             c->fname, t->name, gt, name);
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: tensor '%.100s' has unknown ggml type %u",
                         c->fname, t->name, gt);
    }
    const int64_t ne0 = t->shape[t->n_dims - 1];
    const int bs = molmo_dtype_block_size(t->dtype);
    if (ne0 % bs != 0)
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: tensor '%.100s' (%s) has rows of %lld values, not a whole number of "
                         "%d-value blocks",
                         c->fname, t->name, molmo_dtype_name(t->dtype), (long long)ne0, bs);
    if (ne0 == 0) {
        t->n_bytes = 0;
        return MOLMO_OK;
    }
    const uint64_t rows = t->n_elements / (uint64_t)ne0;
    const size_t rb = molmo_dtype_row_bytes(t->dtype, ne0);
    if (rb == 0 || rows > UINT64_MAX / rb)
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: tensor '%.100s': the byte size overflows",
                         c->fname, t->name);
    t->n_bytes = rows * rb;
    return MOLMO_OK;
}

static molmo_status rd_tensor_info(cursor *c, molmo_st_tensor *t, uint64_t index) {
    memset(t, 0, sizeof *t);
    molmo_status st = rd_name(c, &t->name, "tensor name", index);
    if (st == MOLMO_OK) st = rd_dims(c, t);
    if (st == MOLMO_OK) st = rd_type(c, t);
    char what[160];
    snprintf(what, sizeof what, "the offset of tensor '%.100s'", t->name ? t->name : "?");
    if (st == MOLMO_OK) st = rd_u64(c, &t->offset, what);
    return st;
}

static int cmp_offset(const void *a, const void *b) {
    const molmo_st_tensor *x = *(const molmo_st_tensor *const *)a;
    const molmo_st_tensor *y = *(const molmo_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Offsets aligned and inside the data section; no two tensors share a byte. */
static molmo_status place_tensors(molmo_gguf *g, const unsigned char *base, size_t size,
                                  molmo_error *err) {
    const uint64_t data_size = size - g->data_offset;
    molmo_st_tensor *ts = g->st.tensors;
    for (int i = 0; i < g->st.n_tensors; i++) {
        molmo_st_tensor *t = &ts[i];
        if (t->offset % g->alignment)
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: tensor '%.100s': offset %llu is not a multiple of the "
                             "alignment %u",
                             g->fname, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: tensor '%.100s': its %llu bytes at offset %llu run past the end "
                             "of the %llu-byte data section (truncated?)",
                             g->fname, t->name, (unsigned long long)t->n_bytes,
                             (unsigned long long)t->offset, (unsigned long long)data_size);
        t->data = base + g->data_offset + t->offset;
    }
    if (g->st.n_tensors < 2) return MOLMO_OK;
    molmo_st_tensor **order = molmo_calloc((size_t)g->st.n_tensors, sizeof *order);
    if (!order) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", g->fname);
    for (int i = 0; i < g->st.n_tensors; i++) order[i] = &ts[i];
    qsort(order, (size_t)g->st.n_tensors, sizeof *order, cmp_offset);
    molmo_status s = MOLMO_OK;
    const molmo_st_tensor *prev = NULL;
    for (int i = 0; i < g->st.n_tensors && s == MOLMO_OK; i++) {
        const molmo_st_tensor *t = order[i];
        if (t->n_bytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->n_bytes)
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensors '%.100s' and '%.100s' overlap",
                          g->fname, prev->name, t->name);
        prev = t;
    }
    molmo_free(order);
    return s;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const molmo_st_tensor *)a)->name, ((const molmo_st_tensor *)b)->name);
}

molmo_status molmo_gguf_sort_tensors(molmo_gguf *g, molmo_error *err) {
    if (g->st.n_tensors < 2) return MOLMO_OK; /* and qsort never sees a NULL array */
    qsort(g->st.tensors, (size_t)g->st.n_tensors, sizeof *g->st.tensors, cmp_name);
    for (int i = 1; i < g->st.n_tensors; i++)
        if (!strcmp(g->st.tensors[i - 1].name, g->st.tensors[i].name))
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%.100s' appears twice", g->fname,
                             g->st.tensors[i].name);
    return MOLMO_OK;
}

/* ---- whole file -------------------------------------------------------------------------- */

static molmo_status rd_header(cursor *c, molmo_gguf *g, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size < 4 || memcmp(c->base, MOLMO_GGUF_MAGIC, 4) != 0)
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)",
                         c->fname);
    c->pos = 4;
    molmo_status st = rd_u32(c, &g->version, "the header");
    if (st == MOLMO_OK) st = rd_u64(c, n_tensors, "the header");
    if (st == MOLMO_OK) st = rd_u64(c, n_kv, "the header");
    if (st != MOLMO_OK) return st;
    if (g->version == 1 || (g->version & 0xffffu) == 0)
        return molmo_err(c->err, MOLMO_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (%s)",
                         c->fname, g->version,
                         g->version == 1 ? "v1 predates 64-bit counts: convert it again"
                                         : "a big-endian file?");
    if (g->version != 2 && g->version != 3)
        return molmo_err(c->err, MOLMO_ERR_FORMAT, "%s: unknown GGUF version %u", c->fname,
                         g->version);
    if (*n_kv > left(c) / MIN_KV_BYTES || *n_kv > INT32_MAX)
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: the header claims %llu metadata entries; the %zu bytes that "
                         "follow cannot hold them",
                         c->fname, (unsigned long long)*n_kv, left(c));
    if (*n_tensors > left(c) / MIN_TENSOR_INFO_BYTES || *n_tensors > INT32_MAX)
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: the header claims %llu tensors; the %zu bytes that follow cannot "
                         "hold them",
                         c->fname, (unsigned long long)*n_tensors, left(c));
    return MOLMO_OK;
}

/* Makes room for entry i of an array that grows by doubling: memory follows the entries the
 * file really holds, never the count its header claims. New entries are zeroed. */
static int grow(void **arr, uint64_t i, size_t elem) {
    if (i & (i - 1)) return 1; /* capacity is the next power of two above i */
    uint64_t cap = i ? 2 * i : 1;
    void *p = molmo_realloc(*arr, (size_t)cap * elem);
    if (!p) return 0;
    memset((char *)p + (size_t)i * elem, 0, (size_t)(cap - i) * elem);
    *arr = p;
    return 1;
}

static molmo_status parse_all(cursor *c, molmo_gguf *g) {
    uint64_t n_tensors = 0, n_kv = 0;
    molmo_status st = rd_header(c, g, &n_tensors, &n_kv);
    if (st != MOLMO_OK) return st;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (!grow((void **)&g->kv, i, sizeof *g->kv))
            return molmo_err(c->err, MOLMO_ERR_NOMEM, "%s: out of memory", c->fname);
        g->n_kv++; /* the entry owns its key even when it failed */
        if ((st = rd_kv(c, &g->kv[i], i)) != MOLMO_OK) return st;
    }
    if ((st = check_unique_keys(g, c->err)) != MOLMO_OK) return st;
    if ((st = read_alignment(g, c->err)) != MOLMO_OK) return st;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!grow((void **)&g->st.tensors, i, sizeof *g->st.tensors))
            return molmo_err(c->err, MOLMO_ERR_NOMEM, "%s: out of memory", c->fname);
        g->st.n_tensors++;
        if ((st = rd_tensor_info(c, &g->st.tensors[i], i)) != MOLMO_OK) return st;
    }
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    g->data_offset = c->pos + pad;
    if (n_tensors > 0 && pad > left(c))
        return molmo_err(c->err, MOLMO_ERR_FORMAT,
                         "%s: the file ends at byte %zu, before its data section (truncated?)",
                         c->fname, c->size);
    if (n_tensors == 0) return MOLMO_OK;
    if ((st = place_tensors(g, c->base, c->size, c->err)) != MOLMO_OK) return st;
    return molmo_gguf_sort_tensors(g, c->err);
}

static void free_kv(molmo_gguf *g) {
    for (int i = 0; i < g->n_kv; i++) molmo_free(g->kv[i].key);
    molmo_free(g->kv);
    g->kv = NULL;
    g->n_kv = 0;
}

molmo_status molmo_gguf_parse(const unsigned char *data, size_t size, const char *fname,
                              molmo_gguf *g, molmo_error *err) {
    memset(g, 0, sizeof *g);
    g->fname = fname;
    cursor c = {.base = data, .size = data ? size : 0, .fname = fname, .err = err};
    molmo_status st = parse_all(&c, g);
    if (st != MOLMO_OK) molmo_gguf_close(g);
    return st;
}

molmo_status molmo_gguf_open(molmo_gguf *g, const char *path, molmo_error *err) {
    memset(g, 0, sizeof *g);
    molmo_mapfile map;
    molmo_status st = molmo_mapfile_open(&map, path, err);
    if (st != MOLMO_OK) return st;
    char *p = molmo_strdup(path);
    char **paths = molmo_calloc(1, sizeof *paths);
    molmo_mapfile *maps = molmo_calloc(1, sizeof *maps);
    if (!p || !paths || !maps) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    st = molmo_gguf_parse(map.data, map.size, p, g, err);
    if (st != MOLMO_OK) goto fail;
    paths[0] = p;
    maps[0] = map;
    g->st.paths = paths;
    g->st.maps = maps;
    g->st.n_files = 1;
    return MOLMO_OK;
fail:
    molmo_free(p);
    molmo_free(paths);
    molmo_free(maps);
    molmo_mapfile_close(&map);
    return st;
}

void molmo_gguf_close(molmo_gguf *g) {
    free_kv(g);
    molmo_st_close(&g->st); /* names, the tensor array, and the mapping when opened from a file */
    memset(g, 0, sizeof *g);
}

/* ---- metadata access --------------------------------------------------------------------- */

const molmo_gguf_kv *molmo_gguf_find(const molmo_gguf *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

int molmo_gguf_kv_int(const molmo_gguf_kv *kv, uint64_t i, int64_t *out) {
    if (i >= kv->n) return 0;
    const size_t esz = molmo_gguf_type_size(kv->elem_type);
    const unsigned char *p = kv->data + i * esz;
    uint64_t u;
    switch (kv->elem_type) {
    case MOLMO_GGUF_U8:
    case MOLMO_GGUF_BOOL: *out = p[0]; return 1;
    case MOLMO_GGUF_I8: *out = (int8_t)p[0]; return 1;
    case MOLMO_GGUF_U16: *out = (uint16_t)(p[0] | p[1] << 8); return 1;
    case MOLMO_GGUF_I16: *out = (int16_t)(uint16_t)(p[0] | p[1] << 8); return 1;
    case MOLMO_GGUF_U32: *out = get32(p); return 1;
    case MOLMO_GGUF_I32: *out = (int32_t)get32(p); return 1;
    case MOLMO_GGUF_I64: *out = (int64_t)get64(p); return 1;
    case MOLMO_GGUF_U64:
        u = get64(p);
        if (u > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)u;
        return 1;
    default: return 0;
    }
}

int molmo_gguf_kv_float(const molmo_gguf_kv *kv, uint64_t i, double *out) {
    if (i >= kv->n) return 0;
    if (kv->elem_type == MOLMO_GGUF_F32) {
        float f;
        memcpy(&f, kv->data + 4 * i, 4);
        *out = f;
        return 1;
    }
    if (kv->elem_type == MOLMO_GGUF_F64) {
        memcpy(out, kv->data + 8 * i, 8);
        return 1;
    }
    return 0;
}

int molmo_gguf_kv_str(const molmo_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len) {
    if (i >= kv->n || kv->elem_type != MOLMO_GGUF_STRING) return 0;
    const unsigned char *p = kv->data; /* validated by rd_values: every length fits */
    for (uint64_t j = 0; j < i; j++) p += 8 + get64(p);
    *len = get64(p);
    *s = (const char *)p + 8;
    return 1;
}

static molmo_status find_scalar(const molmo_gguf *g, const char *key, const molmo_gguf_kv **kv,
                                molmo_error *err) {
    *kv = molmo_gguf_find(g, key);
    if (!*kv) return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: no key '%.100s'", g->fname, key);
    if ((*kv)->type == MOLMO_GGUF_ARRAY)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: key '%.100s' is an array, not a single value",
                         g->fname, key);
    return MOLMO_OK;
}

molmo_status molmo_gguf_get_int(const molmo_gguf *g, const char *key, int64_t *out,
                                molmo_error *err) {
    const molmo_gguf_kv *kv;
    molmo_status st = find_scalar(g, key, &kv, err);
    if (st == MOLMO_OK && (kv->type == MOLMO_GGUF_BOOL || !molmo_gguf_kv_int(kv, 0, out)))
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: key '%.100s' is not an integer (type %u)",
                       g->fname, key, (unsigned)kv->type);
    return st;
}

molmo_status molmo_gguf_get_float(const molmo_gguf *g, const char *key, double *out,
                                  molmo_error *err) {
    const molmo_gguf_kv *kv;
    molmo_status st = find_scalar(g, key, &kv, err);
    if (st == MOLMO_OK && !molmo_gguf_kv_float(kv, 0, out))
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: key '%.100s' is not a float (type %u)", g->fname,
                       key, (unsigned)kv->type);
    return st;
}

molmo_status molmo_gguf_get_bool(const molmo_gguf *g, const char *key, int *out,
                                 molmo_error *err) {
    const molmo_gguf_kv *kv;
    molmo_status st = find_scalar(g, key, &kv, err);
    if (st == MOLMO_OK && kv->type != MOLMO_GGUF_BOOL)
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: key '%.100s' is not a bool (type %u)", g->fname,
                       key, (unsigned)kv->type);
    if (st == MOLMO_OK) *out = kv->data[0];
    return st;
}

molmo_status molmo_gguf_get_str(const molmo_gguf *g, const char *key, const char **s,
                                size_t *len, molmo_error *err) {
    const molmo_gguf_kv *kv;
    molmo_status st = find_scalar(g, key, &kv, err);
    uint64_t n = 0;
    if (st == MOLMO_OK && !molmo_gguf_kv_str(kv, 0, s, &n))
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: key '%.100s' is not a string (type %u)",
                       g->fname, key, (unsigned)kv->type);
    if (st == MOLMO_OK) *len = (size_t)n;
    return st;
}

/* gguf.h — GGUF (v2/v3) files: a validated, zero-copy reader and a streaming writer.
 *
 * Layout (all integers little-endian; ggml's docs/gguf.md):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x      { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   zero padding to `general.alignment` (u32, a power of two; 32 when absent)
 *   data section: tensor bytes at `offset` (a multiple of the alignment) from its start
 * where string = u64 length + bytes (no NUL), and an array value = u32 element type + u64 count +
 * elements. ne[0] is the innermost (contiguous) dimension: the reverse of PyTorch's shape.
 *
 * The reader maps the file and checks everything before it hands out a tensor: counts against
 * the bytes left, string and array lengths, known value and tensor types, dims and their product,
 * row lengths that are whole blocks, offsets aligned and inside the data section, no overlaps, no
 * duplicate keys or names. The result is a molmo_safetensors tensor table (PyTorch-order shapes,
 * sorted by name, data pointers into the mapping), so the weight binder takes either format.
 * The writer produces exactly the layout ggml's own writer does (tensors packed in the order they
 * were added, each padded to the alignment), which ggml's stricter reader requires. */
#ifndef MOLMO_IO_GGUF_H
#define MOLMO_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "molmo.h"

#define MOLMO_GGUF_MAGIC "GGUF"
#define MOLMO_GGUF_VERSION 3
#define MOLMO_GGUF_DEFAULT_ALIGNMENT 32
#define MOLMO_GGUF_MAX_DIMS 4 /* GGML_MAX_DIMS */

/* Metadata value types (gguf_type). */
typedef enum molmo_gguf_type {
    MOLMO_GGUF_U8 = 0,
    MOLMO_GGUF_I8 = 1,
    MOLMO_GGUF_U16 = 2,
    MOLMO_GGUF_I16 = 3,
    MOLMO_GGUF_U32 = 4,
    MOLMO_GGUF_I32 = 5,
    MOLMO_GGUF_F32 = 6,
    MOLMO_GGUF_BOOL = 7,
    MOLMO_GGUF_STRING = 8,
    MOLMO_GGUF_ARRAY = 9,
    MOLMO_GGUF_U64 = 10,
    MOLMO_GGUF_I64 = 11,
    MOLMO_GGUF_F64 = 12,
    MOLMO_GGUF_TYPE_COUNT
} molmo_gguf_type;

/* ggml tensor type ids of the dtypes molmo reads and writes (ggml.h's enum ggml_type). */
#define MOLMO_GGML_F32 0
#define MOLMO_GGML_F16 1
#define MOLMO_GGML_Q4_0 2
#define MOLMO_GGML_Q8_0 8
#define MOLMO_GGML_Q4_K 12
#define MOLMO_GGML_Q6_K 14
#define MOLMO_GGML_BF16 30

/* One metadata entry. Scalars: n = 1. Arrays: type = MOLMO_GGUF_ARRAY, elem_type and n give the
 * elements. `data` points into the mapping at the first value byte (for strings: at the u64
 * length of the first string); n_bytes spans all of the value. */
typedef struct molmo_gguf_kv {
    char *key;                    /* NUL-terminated copy */
    molmo_gguf_type type;
    molmo_gguf_type elem_type;    /* arrays only; == type for scalars */
    uint64_t n;
    const unsigned char *data;
    uint64_t n_bytes;
} molmo_gguf_kv;

typedef struct molmo_gguf {
    molmo_safetensors st;         /* paths[0] / maps[0]: the file; tensors sorted by name */
    molmo_gguf_kv *kv;            /* [n_kv] in file order */
    int n_kv;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;         /* start of the data section in the file */
    const char *fname;            /* labels errors (= st.paths[0] once opened) */
} molmo_gguf;

/* Validates a GGUF image held in memory (data[size]) and fills *g (tensor table and metadata,
 * pointing into `data`; g->st gets no file). `fname` labels errors and must outlive *g. On failure
 * *g is left empty. Used by molmo_gguf_open and the fuzzer. */
molmo_status molmo_gguf_parse(const unsigned char *data, size_t size, const char *fname,
                              molmo_gguf *g, molmo_error *err);

/* Maps `path` and validates it. On failure *g is left empty. */
molmo_status molmo_gguf_open(molmo_gguf *g, const char *path, molmo_error *err);

/* Frees everything (and unmaps the file). Safe on an empty or closed struct. */
void molmo_gguf_close(molmo_gguf *g);

/* 1 when data[0..size) starts with the GGUF magic. */
int molmo_gguf_sniff(const void *data, size_t size);
/* 1 when the regular file at `path` starts with the GGUF magic (0 when it cannot be read). */
int molmo_gguf_file_sniff(const char *path);

/* Sorts the tensor table by name and checks that names are unique (after a caller renamed
 * tensors: each name is a molmo_malloc'd string the table owns). */
molmo_status molmo_gguf_sort_tensors(molmo_gguf *g, molmo_error *err);

/* The entry for `key`, or NULL. Linear in n_kv (files carry tens of keys). */
const molmo_gguf_kv *molmo_gguf_find(const molmo_gguf *g, const char *key);

/* Typed reads; each names the file and the key in its error. MOLMO_ERR_NOT_FOUND when absent,
 * MOLMO_ERR_FORMAT when the type does not fit. get_int accepts every integer type (and checks
 * the value fits int64); get_float accepts F32 and F64; get_str returns a pointer into the
 * mapping (not NUL-terminated) and its length. */
molmo_status molmo_gguf_get_int(const molmo_gguf *g, const char *key, int64_t *out,
                                molmo_error *err);
molmo_status molmo_gguf_get_float(const molmo_gguf *g, const char *key, double *out,
                                  molmo_error *err);
molmo_status molmo_gguf_get_bool(const molmo_gguf *g, const char *key, int *out,
                                 molmo_error *err);
molmo_status molmo_gguf_get_str(const molmo_gguf *g, const char *key, const char **s,
                                size_t *len, molmo_error *err);

/* Element i (< kv->n) of an array (or the scalar when i == 0): as int64 (integer and bool
 * types), as double (float types), or as a string (string type; linear in i). Return 0 when the
 * type does not fit, 1 otherwise. */
int molmo_gguf_kv_int(const molmo_gguf_kv *kv, uint64_t i, int64_t *out);
int molmo_gguf_kv_float(const molmo_gguf_kv *kv, uint64_t i, double *out);
int molmo_gguf_kv_str(const molmo_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);

/* Size in bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
size_t molmo_gguf_type_size(molmo_gguf_type t);

/* ggml type id of a dtype (-1 when it has none) and back (1 when known to molmo). */
int molmo_gguf_ggml_type(molmo_dtype t);
int molmo_gguf_dtype_from_ggml(uint32_t ggml_type, molmo_dtype *out);

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct molmo_gguf_writer molmo_gguf_writer;

/* Produces rows [row0, row0 + n_rows) of tensor `index` (in the order added) into dst, in the
 * tensor's stored type: a row is the innermost dimension (the last PyTorch dim), so dst receives
 * n_rows * row_bytes bytes. Return MOLMO_OK or an error (which stops the write). */
typedef molmo_status (*molmo_gguf_fill_fn)(void *user, int index, int64_t row0, int64_t n_rows,
                                           void *dst, molmo_error *err);

molmo_status molmo_gguf_writer_create(molmo_gguf_writer **out, molmo_error *err);
void molmo_gguf_writer_free(molmo_gguf_writer *w);

/* Metadata, written in the order added. Keys are non-empty, hold no NUL byte and are given once
 * (MOLMO_ERR_INVALID_ARG otherwise); string values are any bytes. add_scalar and add_array take
 * fixed-size values of their type as laid out in the file (little-endian). */
molmo_status molmo_gguf_add_scalar(molmo_gguf_writer *w, const char *key, molmo_gguf_type type,
                                   const void *value, molmo_error *err);
molmo_status molmo_gguf_add_u32(molmo_gguf_writer *w, const char *key, uint32_t v,
                                molmo_error *err);
molmo_status molmo_gguf_add_i32(molmo_gguf_writer *w, const char *key, int32_t v,
                                molmo_error *err);
molmo_status molmo_gguf_add_f32(molmo_gguf_writer *w, const char *key, float v,
                                molmo_error *err);
molmo_status molmo_gguf_add_bool(molmo_gguf_writer *w, const char *key, int v, molmo_error *err);
molmo_status molmo_gguf_add_str(molmo_gguf_writer *w, const char *key, const char *s,
                                size_t len, molmo_error *err);
molmo_status molmo_gguf_add_array(molmo_gguf_writer *w, const char *key,
                                  molmo_gguf_type elem_type, const void *values, uint64_t n,
                                  molmo_error *err);
/* lens may be NULL (NUL-terminated strings). */
molmo_status molmo_gguf_add_str_array(molmo_gguf_writer *w, const char *key,
                                      const char *const *strs, const size_t *lens, uint64_t n,
                                      molmo_error *err);

/* Sets general.alignment (a power of two, default 32); written as a u32 key when called. */
molmo_status molmo_gguf_set_alignment(molmo_gguf_writer *w, uint32_t alignment,
                                      molmo_error *err);

/* Declares a tensor (shape in PyTorch order, 1..4 dims, the last a whole number of blocks of
 * `dtype`). Names must be unique and non-empty. */
molmo_status molmo_gguf_add_tensor(molmo_gguf_writer *w, const char *name, molmo_dtype dtype,
                                   int n_dims, const int64_t *shape, molmo_error *err);

/* Bytes the file will have (header, metadata, tensor infos, padded data). */
uint64_t molmo_gguf_writer_size(const molmo_gguf_writer *w);

/* Writes the file: header, metadata and tensor infos, then each tensor's data from `fill` in
 * chunks of at most ~16 MB (at least one row), padded to the alignment. The file is written as
 * `path`.part and renamed to `path` when complete; on any error the partial file is removed. */
molmo_status molmo_gguf_writer_write(molmo_gguf_writer *w, const char *path,
                                     molmo_gguf_fill_fn fill, void *user, molmo_error *err);

#endif

/* safetensors.h — validated, zero-copy access to .safetensors files (single and sharded).
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data buffer; offsets are relative to the buffer. Everything in the header is checked
 * against the file before any tensor is handed out. */
#ifndef MOLMO_IO_SAFETENSORS_H
#define MOLMO_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/mapfile.h"
#include "molmo.h"

#define MOLMO_ST_MAX_DIMS 8
/* Same limit as the reference implementation: a header over 100 MB is treated as hostile. */
#define MOLMO_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct molmo_st_tensor {
    char *name;
    molmo_dtype dtype;
    int n_dims;
    int64_t shape[MOLMO_ST_MAX_DIMS]; /* PyTorch order */
    uint64_t n_elements;
    uint64_t offset;                  /* within the file's data buffer */
    uint64_t n_bytes;
    const void *data;                 /* points into the mapping (or the parsed buffer) */
    int file_index;
} molmo_st_tensor;

typedef struct molmo_safetensors {
    char **paths;            /* [n_files]: file paths */
    molmo_mapfile *maps;     /* [n_files]  */
    int n_files;
    molmo_st_tensor *tensors; /* [n_tensors], sorted by name */
    int n_tensors;
} molmo_safetensors;

/* Byte size of one element of a supported dtype. */
size_t molmo_dtype_size(molmo_dtype dtype);

/*
 * Parses and validates a safetensors image held in memory (data[size]); appends its tensors to
 * (*tensors, *n_tensors) (a molmo_realloc'd array) with data pointers into `data` and the given
 * file_index. `fname` only labels errors. Does not sort. Used by the file loader and the fuzzer.
 */
molmo_status molmo_st_parse(const unsigned char *data, size_t size, const char *fname,
                            int file_index, molmo_st_tensor **tensors, int *n_tensors,
                            molmo_error *err);

/* Opens one .safetensors file, or a model directory (model.safetensors.index.json with its
 * shards, else model.safetensors). On failure *st is left empty. */
molmo_status molmo_st_open(molmo_safetensors *st, const char *path, molmo_error *err);

void molmo_st_close(molmo_safetensors *st);

/* Binary search by name; NULL when absent. */
const molmo_st_tensor *molmo_st_find(const molmo_safetensors *st, const char *name);

/* One tensor to write. data == NULL leaves the bytes as a hole in a sparse file (benchmarks and
 * tests make multi-GB checkpoints of the real shapes this way without touching the disk). */
typedef struct molmo_st_entry {
    const char *name;
    molmo_dtype dtype;
    int n_dims;
    int64_t shape[MOLMO_ST_MAX_DIMS];
    const void *data;
} molmo_st_entry;

/* Writes a .safetensors file: header padded to 8 bytes (as the reference writer does), tensors
 * laid out back to back in the given order, {"format":"pt"} metadata. */
molmo_status molmo_st_write(const char *path, const molmo_st_entry *entries, int n,
                            molmo_error *err);

#endif

/* safetensors.c — header validation and zero-copy tensor views for .safetensors files.
 *
 * Mirrors the checks of the reference `safetensors` crate (header length, JSON, dtype, shape ×
 * dtype size = byte span, offsets inside the buffer, no overlaps) and adds sharded directories
 * through model.safetensors.index.json, as written by Hugging Face's save_pretrained. */
#define _POSIX_C_SOURCE 200809L
#include "io/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/jsonutil.h"
#include "io/path.h"

size_t molmo_dtype_size(molmo_dtype dtype) {
    switch (dtype) {
    case MOLMO_DTYPE_F32: return 4;
    case MOLMO_DTYPE_F16: return 2;
    case MOLMO_DTYPE_BF16: return 2;
    case MOLMO_DTYPE_I32: return 4;
    default: return 0;
    }
}

const char *molmo_dtype_name(molmo_dtype dtype) {
    switch (dtype) {
    case MOLMO_DTYPE_F32: return "f32";
    case MOLMO_DTYPE_F16: return "f16";
    case MOLMO_DTYPE_BF16: return "bf16";
    case MOLMO_DTYPE_I32: return "i32";
    case MOLMO_DTYPE_Q8_0: return "q8_0";
    case MOLMO_DTYPE_Q4_0: return "q4_0";
    case MOLMO_DTYPE_Q4_K: return "q4_k";
    case MOLMO_DTYPE_Q6_K: return "q6_k";
    default: return "unknown";
    }
}

/* Returns 1 and sets *out for a supported dtype, 0 for a known-but-unsupported one, -1 for a
 * name the format does not define. */
static int parse_dtype(const char *s, molmo_dtype *out) {
    if (!strcmp(s, "F32")) return *out = MOLMO_DTYPE_F32, 1;
    if (!strcmp(s, "F16")) return *out = MOLMO_DTYPE_F16, 1;
    if (!strcmp(s, "BF16")) return *out = MOLMO_DTYPE_BF16, 1;
    if (!strcmp(s, "I32")) return *out = MOLMO_DTYPE_I32, 1;
    static const char *const known[] = {"F64", "I64", "I16", "I8", "U8", "U16", "U32",
                                        "U64", "BOOL", "F8_E4M3", "F8_E5M2", "F4", "F6_E2M3",
                                        "F6_E3M2", "F8_E8M0", "C64"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(s, known[i])) return 0;
    return -1;
}

static molmo_status parse_shape(json_t *shape, molmo_st_tensor *t, const char *fname,
                                molmo_error *err) {
    if (!json_is_array(shape))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array",
                         fname, t->name);
    size_t nd = json_array_size(shape);
    if (nd > MOLMO_ST_MAX_DIMS)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' has %zu dimensions (max %d)",
                         fname, t->name, nd, MOLMO_ST_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: tensor '%s': shape[%zu] is not a non-negative integer", fname,
                             t->name, i);
        uint64_t v = (uint64_t)json_integer_value(d);
        if (v != 0 && n > UINT64_MAX / v)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s': shape overflows", fname,
                             t->name);
        n *= v;
        t->shape[i] = (int64_t)v;
    }
    t->n_elements = n;
    return MOLMO_OK;
}

static molmo_status parse_entry(const char *name, json_t *v, const char *fname, uint64_t buf_size,
                                molmo_st_tensor *t, molmo_error *err) {
    memset(t, 0, sizeof *t);
    t->name = molmo_strdup(name);
    if (!t->name) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", fname);
    if (!json_is_object(v))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", fname, name);
    json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' has no \"dtype\" string", fname,
                         name);
    int r = parse_dtype(json_string_value(dt), &t->dtype);
    if (r == 0)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED,
                         "%s: tensor '%s' has dtype %s; supported: F32, F16, BF16 (I32 for indices)", fname, name,
                         json_string_value(dt));
    if (r < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' has unknown dtype \"%.40s\"",
                         fname, name, json_string_value(dt));
    molmo_status s = parse_shape(json_object_get(v, "shape"), t, fname, err);
    if (s != MOLMO_OK) return s;

    json_t *off = json_object_get(v, "data_offsets");
    json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: tensor '%s': \"data_offsets\" must be [begin, end] integers", fname,
                         name);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (begin > end || end > buf_size)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] outside the %llu-byte data "
                         "buffer",
                         fname, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)buf_size);
    uint64_t esz = molmo_dtype_size(t->dtype);
    if (t->n_elements > UINT64_MAX / esz || t->n_elements * esz != end - begin)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: tensor '%s' spans %llu bytes, but its shape and dtype need %llu",
                         fname, name, (unsigned long long)(end - begin),
                         (unsigned long long)(t->n_elements * esz));
    t->offset = begin;
    t->n_bytes = end - begin;
    return MOLMO_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const molmo_st_tensor *x = *(const molmo_st_tensor *const *)a;
    const molmo_st_tensor *y = *(const molmo_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* No two tensors of one file may share bytes (zero-size tensors share nothing). */
static molmo_status check_overlaps(molmo_st_tensor *ts, int n, const char *fname,
                                   molmo_error *err) {
    if (n < 2) return MOLMO_OK;
    molmo_st_tensor **order = molmo_calloc((size_t)n, sizeof *order);
    if (!order) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", fname);
    for (int i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, (size_t)n, sizeof *order, cmp_offset);
    molmo_status s = MOLMO_OK;
    const molmo_st_tensor *prev = NULL;
    for (int i = 0; i < n; i++) {
        const molmo_st_tensor *t = order[i];
        if (t->n_bytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->n_bytes) {
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", fname,
                          prev->name, t->name);
            break;
        }
        prev = t;
    }
    molmo_free(order);
    return s;
}

static void free_tensors(molmo_st_tensor *ts, int n) {
    for (int i = 0; i < n; i++) molmo_free(ts[i].name);
    molmo_free(ts);
}

static molmo_status read_header(const unsigned char *data, size_t size, const char *fname,
                                json_t **root, uint64_t *hlen, molmo_error *err) {
    if (size < 8)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file",
                         fname, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n < 2 || n > MOLMO_ST_MAX_HEADER)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: header length %llu is not sane", fname,
                         (unsigned long long)n);
    if (n > size - 8)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the %zu-byte file "
                         "(truncated?)",
                         fname, (unsigned long long)n, size);
    json_error_t je;
    *root = json_loadb((const char *)data + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!*root)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: header is not valid JSON: %s (offset %d)",
                         fname, je.text, je.position);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: header is not a JSON object", fname);
    }
    *hlen = n;
    return MOLMO_OK;
}

molmo_status molmo_st_parse(const unsigned char *data, size_t size, const char *fname,
                            int file_index, molmo_st_tensor **tensors, int *n_tensors,
                            molmo_error *err) {
    json_t *root = NULL;
    uint64_t hlen = 0;
    molmo_status s = read_header(data, size, fname, &root, &hlen, err);
    if (s != MOLMO_OK) return s;
    const unsigned char *buf = data + 8 + hlen;
    uint64_t buf_size = size - 8 - hlen;

    size_t n_new = json_object_size(root);
    molmo_st_tensor *ts = molmo_calloc(n_new ? n_new : 1, sizeof *ts);
    int n = 0;
    if (!ts) {
        s = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", fname);
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"__metadata__\" is not an object", fname);
                goto fail;
            }
            continue;
        }
        s = parse_entry(key, v, fname, buf_size, &ts[n], err);
        n++; /* the entry owns its name even when it failed */
        if (s != MOLMO_OK) goto fail;
        ts[n - 1].data = buf + ts[n - 1].offset;
        ts[n - 1].file_index = file_index;
    }
    s = check_overlaps(ts, n, fname, err);
    if (s != MOLMO_OK) goto fail;

    molmo_st_tensor *all = molmo_realloc(*tensors, ((size_t)*n_tensors + (size_t)n) * sizeof *all);
    if (!all) {
        s = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", fname);
        goto fail;
    }
    memcpy(all + *n_tensors, ts, (size_t)n * sizeof *ts);
    *tensors = all;
    *n_tensors += n;
    molmo_free(ts);
    json_decref(root);
    return MOLMO_OK;
fail:
    free_tensors(ts, n);
    json_decref(root);
    return s;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const molmo_st_tensor *)a)->name, ((const molmo_st_tensor *)b)->name);
}

const molmo_st_tensor *molmo_st_find(const molmo_safetensors *st, const char *name) {
    if (!st->tensors) return NULL;
    molmo_st_tensor key;
    key.name = (char *)name;
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, cmp_name);
}

static molmo_status add_file(molmo_safetensors *st, const char *path, molmo_error *err) {
    char **paths = molmo_realloc(st->paths, (size_t)(st->n_files + 1) * sizeof *paths);
    if (!paths) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", path);
    st->paths = paths;
    molmo_mapfile *maps = molmo_realloc(st->maps, (size_t)(st->n_files + 1) * sizeof *maps);
    if (!maps) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", path);
    st->maps = maps;
    st->paths[st->n_files] = molmo_strdup(path);
    if (!st->paths[st->n_files]) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", path);
    molmo_status s = molmo_mapfile_open(&st->maps[st->n_files], path, err);
    if (s != MOLMO_OK) {
        molmo_free(st->paths[st->n_files]);
        return s;
    }
    st->n_files++;
    int fi = st->n_files - 1;
    return molmo_st_parse(st->maps[fi].data, st->maps[fi].size, path, fi, &st->tensors,
                          &st->n_tensors, err);
}

/* Opens every shard named by the index's weight_map and checks each listed tensor is in the
 * shard the index names. */
static molmo_status open_index(molmo_safetensors *st, const char *dir, const char *index_path,
                               molmo_error *err) {
    json_t *root = NULL;
    molmo_status s = molmo_json_load_file(index_path, 64u << 20, &root, err);
    if (s != MOLMO_OK) return s;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        const char *file = json_string_value(v);
        if (!file || !molmo_path_is_plain_name(file)) {
            s = molmo_err(err, MOLMO_ERR_FORMAT,
                          "%s: weight_map[\"%s\"] is not a file name in the model directory",
                          index_path, key);
            goto done;
        }
        char path[4096];
        if (molmo_path_join(path, sizeof path, dir, file) != 0) {
            s = molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < st->n_files && !seen; i++) seen = !strcmp(st->paths[i], path);
        if (!seen && (s = add_file(st, path, err)) != MOLMO_OK) goto done;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_name);
    json_object_foreach(wm, key, v) {
        const molmo_st_tensor *t = molmo_st_find(st, key);
        const char *want = json_string_value(v);
        if (!t) {
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' is listed for %s but not in it",
                          index_path, key, want);
            goto done;
        }
        const char *have = strrchr(st->paths[t->file_index], '/');
        have = have ? have + 1 : st->paths[t->file_index];
        if (strcmp(have, want) != 0) {
            s = molmo_err(err, MOLMO_ERR_FORMAT, "%s: tensor '%s' is listed for %s but found in %s",
                          index_path, key, want, have);
            goto done;
        }
    }
done:
    json_decref(root);
    return s;
}

static molmo_status check_unique(const molmo_safetensors *st, molmo_error *err) {
    for (int i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
            return molmo_err(err, MOLMO_ERR_FORMAT, "tensor '%s' appears in both %s and %s",
                             st->tensors[i].name, st->paths[st->tensors[i - 1].file_index],
                             st->paths[st->tensors[i].file_index]);
    return MOLMO_OK;
}

molmo_status molmo_st_open(molmo_safetensors *st, const char *path, molmo_error *err) {
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0) return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: no such file", path);
    molmo_status s;
    char buf[4096];
    if (!S_ISDIR(sb.st_mode)) {
        s = add_file(st, path, err);
    } else if (molmo_path_join(buf, sizeof buf, path, "model.safetensors.index.json") == 0 &&
               molmo_path_exists(buf)) {
        s = open_index(st, path, buf, err);
    } else if (molmo_path_join(buf, sizeof buf, path, "model.safetensors") == 0 &&
               molmo_path_exists(buf)) {
        s = add_file(st, buf, err);
    } else {
        molmo_path_join(buf, sizeof buf, path, "pytorch_model.bin");
        s = molmo_err(err, MOLMO_ERR_NOT_FOUND,
                      "%s: no model.safetensors or model.safetensors.index.json%s", path,
                      molmo_path_exists(buf) ? " (pytorch_model.bin is not supported: use a "
                                               "safetensors revision of the model)"
                                             : "");
    }
    if (s == MOLMO_OK) {
        qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_name);
        s = check_unique(st, err);
    }
    if (s != MOLMO_OK) molmo_st_close(st);
    return s;
}

void molmo_st_close(molmo_safetensors *st) {
    free_tensors(st->tensors, st->n_tensors);
    for (int i = 0; i < st->n_files; i++) {
        molmo_mapfile_close(&st->maps[i]);
        molmo_free(st->paths[i]);
    }
    molmo_free(st->maps);
    molmo_free(st->paths);
    memset(st, 0, sizeof *st);
}

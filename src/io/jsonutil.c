/* jsonutil.c — see jsonutil.h. */
#include "io/jsonutil.h"

#include <math.h>

#include "base/error.h"

molmo_status molmo_json_load_file(const char *path, size_t max_bytes, json_t **out,
                                  molmo_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return molmo_err(err, MOLMO_ERR_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < 0 || (size_t)ftell(f) > max_bytes) {
        fclose(f);
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: unreadable or over %zu bytes", path,
                         max_bytes);
    }
    rewind(f);
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, je.line,
                         je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = root;
    return MOLMO_OK;
}

static int absent(json_t *v) { return v == NULL || json_is_null(v); }

molmo_status molmo_json_int(json_t *obj, const char *key, long long lo, long long hi,
                            int required, long long def, long long *out, const char *ctx,
                            molmo_error *err) {
    json_t *v = json_object_get(obj, key);
    if (absent(v)) {
        if (required) return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is missing", ctx, key);
        *out = def;
        return MOLMO_OK;
    }
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v);
    } else {
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not an integer", ctx, key);
    }
    if (x < lo || x > hi)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" = %lld is outside [%lld, %lld]", ctx,
                         key, x, lo, hi);
    *out = x;
    return MOLMO_OK;
}

molmo_status molmo_json_real(json_t *obj, const char *key, double lo, double hi, int required,
                             double def, double *out, const char *ctx, molmo_error *err) {
    json_t *v = json_object_get(obj, key);
    if (absent(v)) {
        if (required) return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is missing", ctx, key);
        *out = def;
        return MOLMO_OK;
    }
    if (!json_is_number(v))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not a number", ctx, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" = %g is outside [%g, %g]", ctx, key, x,
                         lo, hi);
    *out = x;
    return MOLMO_OK;
}

molmo_status molmo_json_bool(json_t *obj, const char *key, int required, int def, int *out,
                             const char *ctx, molmo_error *err) {
    json_t *v = json_object_get(obj, key);
    if (absent(v)) {
        if (required) return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is missing", ctx, key);
        *out = def;
        return MOLMO_OK;
    }
    if (!json_is_boolean(v))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not true/false", ctx, key);
    *out = json_is_true(v);
    return MOLMO_OK;
}

molmo_status molmo_json_str(json_t *obj, const char *key, const char **out, const char *ctx,
                            molmo_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (absent(v)) return MOLMO_OK;
    if (!json_is_string(v))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is not a string", ctx, key);
    *out = json_string_value(v);
    return MOLMO_OK;
}

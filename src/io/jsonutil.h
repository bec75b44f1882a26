/* jsonutil.h — typed, range-checked reads from jansson objects with errors naming the field. */
#ifndef MOLMO_IO_JSONUTIL_H
#define MOLMO_IO_JSONUTIL_H

#include <jansson.h>

#include "molmo.h"

/* Loads a JSON file (at most max_bytes) that must hold an object. Errors name the file and the
 * line/column. */
molmo_status molmo_json_load_file(const char *path, size_t max_bytes, json_t **out,
                                  molmo_error *err);

/* Reads obj[key] as an integer in [lo, hi]. When the key is absent or null: *out = def and
 * MOLMO_OK if `required` is 0, else an error. `ctx` (usually the file name) prefixes errors. */
molmo_status molmo_json_int(json_t *obj, const char *key, long long lo, long long hi,
                            int required, long long def, long long *out, const char *ctx,
                            molmo_error *err);
/* Same for a real number (integers accepted). */
molmo_status molmo_json_real(json_t *obj, const char *key, double lo, double hi, int required,
                             double def, double *out, const char *ctx, molmo_error *err);
/* Same for a boolean. */
molmo_status molmo_json_bool(json_t *obj, const char *key, int required, int def, int *out,
                             const char *ctx, molmo_error *err);
/* obj[key] as a string or NULL when absent/null; a non-string value is an error. */
molmo_status molmo_json_str(json_t *obj, const char *key, const char **out, const char *ctx,
                            molmo_error *err);

#endif

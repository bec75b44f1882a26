/* error.h — filling molmo_error: one place formats messages so every path reads the same. */
#ifndef MOLMO_BASE_ERROR_H
#define MOLMO_BASE_ERROR_H

#include "molmo.h"

/* Sets err (when non-NULL) to `code` and a printf-style message, truncated to one line of at
 * most 255 bytes. Returns `code` so callers can write `return molmo_err(err, ...)`. */
molmo_status molmo_err(molmo_error *err, molmo_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an already-set message (e.g. the file name a parser did not know). */
void molmo_err_prefix(molmo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err to MOLMO_OK with an empty message. */
void molmo_err_clear(molmo_error *err);

#endif

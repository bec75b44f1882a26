/* error.c — status names and molmo_error formatting. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *molmo_status_str(molmo_status status) {
    switch (status) {
    case MOLMO_OK: return "ok";
    case MOLMO_ERR_INVALID_ARG: return "invalid argument";
    case MOLMO_ERR_IO: return "i/o error";
    case MOLMO_ERR_FORMAT: return "format error";
    case MOLMO_ERR_UNSUPPORTED: return "unsupported";
    case MOLMO_ERR_NOT_FOUND: return "not found";
    case MOLMO_ERR_NOMEM: return "out of memory";
    case MOLMO_ERR_TOO_LARGE: return "too large";
    case MOLMO_ERR_CANCELLED: return "cancelled";
    case MOLMO_ERR_NETWORK: return "network error";
    case MOLMO_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

/* Keeps messages on one line: a newline inside a file name must not forge a second line. */
static void one_line(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

molmo_status molmo_err(molmo_error *err, molmo_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return code;
}

void molmo_err_prefix(molmo_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[sizeof err->msg];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    one_line(err->msg);
}

void molmo_err_clear(molmo_error *err) {
    if (!err) return;
    err->code = MOLMO_OK;
    err->msg[0] = '\0';
}

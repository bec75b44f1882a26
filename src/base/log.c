/* log.c — formats a message and hands it to the caller's log callback, if any. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

void molmo_log(molmo_log_fn fn, void *user, molmo_log_level level, const char *fmt, ...) {
    if (!fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(level, buf, user);
}

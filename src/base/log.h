/* log.h — library logging goes only to the caller's callback (the library never prints). */
#ifndef MOLMO_BASE_LOG_H
#define MOLMO_BASE_LOG_H

#include "molmo.h"

void molmo_log(molmo_log_fn fn, void *user, molmo_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

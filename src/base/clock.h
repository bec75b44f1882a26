/* clock.h — monotonic wall time for the timings the library reports. */
#ifndef MOLMO_BASE_CLOCK_H
#define MOLMO_BASE_CLOCK_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (needs _POSIX_C_SOURCE >= 199309L in the including file). */
static inline double molmo_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif

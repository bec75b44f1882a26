/* api.c — library-wide public entry points that belong to no module. */
#include "molmo.h"

const char *molmo_version(void) { return "0.1.0"; }

/* path.h — small path helpers (join, existence, plain-name check). */
#ifndef MOLMO_IO_PATH_H
#define MOLMO_IO_PATH_H

#include <stddef.h>

/* Writes dir + "/" + name into out[cap]; returns 0, or -1 when it does not fit. */
int molmo_path_join(char *out, size_t cap, const char *dir, const char *name);
int molmo_path_exists(const char *path);
int molmo_path_is_dir(const char *path);
/* 1 when `name` is a single path component that stays inside its directory (no '/', not "..",
 * not empty). Used for file names read from model files. */
int molmo_path_is_plain_name(const char *name);

#endif

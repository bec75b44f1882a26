/* path.c — path helpers. */
#define _POSIX_C_SOURCE 200809L
#include "io/path.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int molmo_path_join(char *out, size_t cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    const char *sep = (dl > 0 && dir[dl - 1] == '/') ? "" : "/";
    int n = snprintf(out, cap, "%s%s%s", dir, sep, name);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int molmo_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int molmo_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int molmo_path_is_plain_name(const char *name) {
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

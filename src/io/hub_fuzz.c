/* hub_fuzz.c — libFuzzer target: what the hub answers is untrusted. The input is split at the
 * first NUL: before it, HTTP header lines (fed to the header parser, whose ETag and file name
 * outputs must come out safe to use as paths); after it, a revision listing (JSON). Any input
 * must give MOLMO_OK or an error, never a crash, a leak or an unsafe name. */
#include <stdint.h>
#include <string.h>

#include "io/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s) {
    /* a validated name never climbs out of its directory */
    if (s[0] == '/' || strstr(s, "/../") || !strncmp(s, "../", 3) || !strcmp(s, "..") ||
        strchr(s, '\\'))
        __builtin_trap();
}

static void headers(const char *p, size_t n) {
    molmo_hub_headers h;
    molmo_hub_headers_reset(&h);
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) + 1 : n;
        molmo_hub_headers_feed(&h, p, len);
        p += len;
        n -= len;
    }
    if (h.etag[0] && (h.etag[0] == '.' || strchr(h.etag, '/'))) __builtin_trap();
    if (h.linked_etag[0] && (h.linked_etag[0] == '.' || strchr(h.linked_etag, '/')))
        __builtin_trap();
    if (h.range_start < -1 || h.content_length < -1) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    const char *nul = memchr(p, '\0', size);
    size_t hn = nul ? (size_t)(nul - p) : size;
    headers(p, hn);
    if (!nul) return 0;
    molmo_hub_listing l;
    molmo_error err;
    if (molmo_hub_parse_listing(nul + 1, size - hn - 1, "fuzz", &l, &err) == MOLMO_OK) {
        for (int i = 0; i < l.n_files; i++) {
            check_name(l.files[i].name);
            if (!molmo_hub_valid_filename(l.files[i].name)) __builtin_trap();
        }
        molmo_hub_listing_clear(&l);
    }
    return 0;
}

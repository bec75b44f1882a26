/* safetensors_fuzz.c — libFuzzer target: header validation of arbitrary bytes as a
 * .safetensors image. Any input must give MOLMO_OK or an error, never a crash or a leak. */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    molmo_st_tensor *ts = NULL;
    int n = 0;
    molmo_error err;
    if (molmo_st_parse(data, size, "fuzz", 0, &ts, &n, &err) == MOLMO_OK) {
        /* every handed-out view must lie inside the input */
        for (int i = 0; i < n; i++) {
            const uint8_t *p = ts[i].data;
            if (p < data || p + ts[i].n_bytes > data + size) __builtin_trap();
        }
    }
    for (int i = 0; i < n; i++) molmo_free(ts[i].name);
    molmo_free(ts);
    return 0;
}

/* gguf_fuzz.c — libFuzzer target: GGUF header validation of arbitrary bytes. Any input must give
 * MOLMO_OK or an error, never a crash, a leak or an out-of-bounds view; on success every
 * metadata value is read back through the typed accessors. */
#include <stdint.h>
#include <string.h>

#include "io/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink; /* keeps the reads of touch_kv from being optimised away */

static void touch_kv(const molmo_gguf_kv *kv) {
    int64_t i64;
    double f;
    const char *s;
    uint64_t len;
    for (uint64_t i = 0; i < kv->n && i < 64; i++) {
        if (molmo_gguf_kv_str(kv, i, &s, &len) && len) sink += (unsigned char)s[len - 1];
        if (molmo_gguf_kv_int(kv, i, &i64)) sink += (uint64_t)i64;
        if (molmo_gguf_kv_float(kv, i, &f)) sink += f == f;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    molmo_gguf g;
    molmo_error err;
    if (molmo_gguf_parse(data, size, "fuzz", &g, &err) != MOLMO_OK) return 0;
    for (int i = 0; i < g.st.n_tensors; i++) {
        const uint8_t *p = g.st.tensors[i].data;
        if (p < data || p + g.st.tensors[i].n_bytes > data + size) __builtin_trap();
    }
    for (int i = 0; i < g.n_kv; i++) {
        const molmo_gguf_kv *kv = &g.kv[i];
        if (kv->data < data || kv->data + kv->n_bytes > data + size) __builtin_trap();
        touch_kv(kv);
    }
    molmo_gguf_close(&g);
    return 0;
}

/* config_fuzz.c — libFuzzer target: config.json parsing (both styles) of arbitrary bytes. */
#include <stdint.h>

#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    molmo_config cfg;
    molmo_error err;
    if (molmo_config_parse((const char *)data, size, "fuzz", &cfg, &err) == MOLMO_OK) {
        /* a config that parses must be internally consistent */
        if (cfg.d_model % cfg.n_heads || cfg.n_heads % cfg.n_kv_heads) __builtin_trap();
        if (cfg.vit_layers[0] < 0 || cfg.vit_layers[0] >= cfg.vit_n_layers) __builtin_trap();
    }
    return 0;
}

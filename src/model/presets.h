/* presets.h — the config.json of each released Molmo 0924 checkpoint (fact sheet §2.1, §9.2),
 * used to generate checkpoints of the real shapes for benchmarks and tests (no download). */
#ifndef MOLMO_MODEL_PRESETS_H
#define MOLMO_MODEL_PRESETS_H

#include <stdint.h>

#include "molmo.h"

typedef struct molmo_preset {
    const char *name;        /* "molmoe-1b", "molmo-7b-o", "molmo-7b-d", "molmo-72b" */
    const char *repo;        /* "allenai/MolmoE-1B-0924", ... */
    const char *config_json; /* a config.json in the style the hub ships for that model */
    uint64_t n_params_llm, n_params_vision, n_params_connector; /* fact sheet §9.4 */
} molmo_preset;

/* NULL-terminated table of presets; molmo_preset_find returns NULL for an unknown name. */
const molmo_preset *molmo_presets(int *count);
const molmo_preset *molmo_preset_find(const char *name);

/*
 * Writes dir/config.json and dir/model.safetensors for `config_json`, every tensor of the
 * architecture with its real shape, stored as `dtype`. random == 0 leaves the data as a sparse
 * hole (zeros; costs no disk), random != 0 fills it with uniform values in [-0.05, 0.05) from
 * `seed` (norm weights near 1 so activations stay finite). The directory must exist.
 */
molmo_status molmo_synth_checkpoint(const char *dir, const char *config_json, molmo_dtype dtype,
                                    int random, uint64_t seed, molmo_error *err);

#endif

/* image_fuzz.c — libFuzzer target for the decode-and-preprocess entry points: any bytes go
 * through molmo_image_load_memory (all three decoders, EXIF, alpha compositing chosen by the
 * input's length) and, when they decode, through molmo_preprocess with a max_crops taken from
 * the input. The pixel limit is lowered to 1 MP so each run stays fast; seeds live in
 * tests/fuzz-corpus/image_fuzz/. Build with -DMOLMO_FUZZ=ON (clang). */
#include <stddef.h>
#include <stdint.h>

#include "image/preprocess.h"
#include "molmo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    molmo_image_params p = molmo_image_default_params();
    p.max_pixels = 1u << 20;
    if (size & 1) p.alpha = MOLMO_IMAGE_ALPHA_COMPOSITE;
    if (size & 2) p.exif = MOLMO_IMAGE_EXIF_IGNORE;
    molmo_image *img = NULL;
    molmo_error err;
    if (molmo_image_load_memory(data, size, &p, &img, &err) != MOLMO_OK) return 0;
    molmo_preproc_config cfg;
    molmo_preproc_config_default(&cfg);
    cfg.max_crops = 1 + (int)(size % 12);
    molmo_image_token_ids ids = {1, 2, 3, 4};
    molmo_preproc_result r;
    if (molmo_preprocess(img, &cfg, &ids, &r, &err) == MOLMO_OK) molmo_preproc_result_free(&r);
    molmo_image_free(img);
    return 0;
}

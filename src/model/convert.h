/* convert.h — internals of molmo_convert (include/molmo.h, section convert) shared with the GGUF
 * loader and the tests: the metadata keys and the per-tensor type policy. */
#ifndef MOLMO_MODEL_CONVERT_H
#define MOLMO_MODEL_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

/* Layout version of the molmo.* metadata; a loader refuses files with a newer one. */
#define MOLMO_GGUF_FORMAT_VERSION 1

#define MOLMO_KEY_FORMAT_VERSION "molmo.format_version"
#define MOLMO_KEY_CONFIG_JSON "molmo.config_json"
#define MOLMO_KEY_TOKENIZER_JSON "molmo.tokenizer_json"
#define MOLMO_KEY_TOKENIZER_CONFIG_JSON "molmo.tokenizer_config_json"
#define MOLMO_KEY_PREPROCESSOR_CONFIG_JSON "molmo.preprocessor_config_json"
#define MOLMO_KEY_GENERATION_CONFIG_JSON "molmo.generation_config_json"

/* Tensor names in the file are the Hugging Face names, except that the ViT block prefix is
 * abbreviated: ggml's reader refuses names of 64 bytes or more (GGML_MAX_NAME), and the ViT's
 * ("model.vision_backbone.image_vit.transformer.resblocks.22.feed_forward.w1.weight", 77) are
 * the only ones of the released models that long. The loader expands them back. */
#define MOLMO_GGUF_VIT_PREFIX_HF "model.vision_backbone.image_vit.transformer.resblocks."
#define MOLMO_GGUF_VIT_PREFIX "vit.blk."
#define MOLMO_GGUF_MAX_NAME 63

/* Writes the file name of Hugging Face tensor name `hf` into out[cap]; -1 when it is longer than
 * MOLMO_GGUF_MAX_NAME bytes (or cap is too small). */
int molmo_gguf_name_from_hf(const char *hf, char *out, size_t cap);
/* The reverse: the Hugging Face name of a name in the file; -1 when cap is too small. */
int molmo_gguf_name_to_hf(const char *name, char *out, size_t cap);

/* The stored type of one tensor (PyTorch shape) when converting with `type` for the language
 * model and `vision_type` (already resolved, never MOLMO_DTYPE_COUNT) for the vision tower. */
molmo_dtype molmo_convert_policy(const char *name, int n_dims, const int64_t *shape,
                                 molmo_dtype type, molmo_dtype vision_type);

#endif

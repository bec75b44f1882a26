/*
 * molmo.h — the public interface of libmolmo, a C implementation of the Molmo (0924) family of
 * vision-language models (MolmoE-1B, Molmo-7B-O, Molmo-7B-D, Molmo-72B).
 *
 * WHAT IT IS
 *   libmolmo loads the official Hugging Face checkpoints (safetensors, as published) and runs
 *   them on the CPU. It answers, captions, points and counts. This header is the only one a
 *   program needs; the `molmo` command-line tool is built on it and nothing else.
 *
 * USAGE
 *     molmo_error err;
 *     molmo_model_params mp = molmo_model_default_params();
 *     molmo_model *model = NULL;
 *     if (molmo_model_load("allenai/MolmoE-1B-0924", &mp, &model, &err) != MOLMO_OK) {
 *         fprintf(stderr, "molmo: %s\n", err.msg);
 *         return 1;
 *     }
 *     molmo_model_info info;
 *     molmo_model_get_info(model, &info);
 *     printf("%s, %d layers\n", info.family_name, info.n_layers);
 *     molmo_model_free(model);
 *
 * THREAD SAFETY
 *   A loaded molmo_model is immutable and may be shared by any number of threads. Objects that
 *   carry per-use state (contexts, tokenizers' streaming decoders) are for one thread at a time.
 *   The library keeps no mutable global state; CPU features are detected once (pthread_once).
 *
 * OWNERSHIP
 *   Every `*_load`/`*_create` has a matching `*_free`; `*_free(NULL)` is a no-op. Pointers the
 *   library returns into an object (names, info strings) stay valid until that object is freed.
 *   Text output goes into caller buffers; when a buffer is too small the call says how much is
 *   needed.
 *
 * ERRORS
 *   Every fallible call returns a molmo_status. When the caller passes a molmo_error, it is
 *   filled with the code and a one-line message that names the file, tensor or field at fault.
 *   The library never prints, never exits and never aborts on bad input: model files, images,
 *   prompts and JSON are treated as untrusted.
 *
 * LIMITS (and why)
 *   - Weights: F32, F16 and BF16 safetensors as published, or a GGUF file written by
 *     molmo_convert (F32, F16, BF16, Q8_0, Q4_0, Q6_K, Q4_K). Other types are rejected by name.
 *   - safetensors headers are limited to 100 MB (the format's own reference limit).
 */
#ifndef MOLMO_H
#define MOLMO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MOLMO_BUILDING_LIBRARY)
#define MOLMO_API __attribute__((visibility("default")))
#else
#define MOLMO_API
#endif

/* ============================================================================================
 * Status codes and errors
 * ========================================================================================== */

typedef enum molmo_status {
    MOLMO_OK = 0,
    MOLMO_ERR_INVALID_ARG,  /* a caller passed a NULL/out-of-range argument                 */
    MOLMO_ERR_IO,           /* a file could not be opened, read, mapped or written          */
    MOLMO_ERR_FORMAT,       /* input data is malformed (model file, JSON, image, ...)       */
    MOLMO_ERR_UNSUPPORTED,  /* well-formed but not supported (dtype, tokenizer model, ...)  */
    MOLMO_ERR_NOT_FOUND,    /* a model, file, tensor or key does not exist                  */
    MOLMO_ERR_NOMEM,        /* an allocation failed                                         */
    MOLMO_ERR_TOO_LARGE,    /* input exceeds a documented limit (pixels, context length)    */
    MOLMO_ERR_CANCELLED,    /* a progress/abort callback asked to stop                      */
    MOLMO_ERR_NETWORK,      /* a download failed                                            */
    MOLMO_ERR_INTERNAL      /* a bug: an invariant did not hold                             */
} molmo_status;

/* Error details. `msg` is NUL-terminated and at most one line. */
typedef struct molmo_error {
    molmo_status code;
    char msg[256];
} molmo_error;

/* Static name of a status code ("ok", "format error", ...). Never NULL. */
MOLMO_API const char *molmo_status_str(molmo_status status);

/* Library version string, e.g. "0.1.0". */
MOLMO_API const char *molmo_version(void);

/* Log levels for the optional log callback in the params structs. */
typedef enum molmo_log_level {
    MOLMO_LOG_DEBUG = 0,
    MOLMO_LOG_INFO,
    MOLMO_LOG_WARN,
    MOLMO_LOG_ERROR
} molmo_log_level;

/* Called from the thread that made the call; `msg` is valid only during the call. */
typedef void (*molmo_log_fn)(molmo_log_level level, const char *msg, void *user);

/* ============================================================================================
 * Model files and Hugging Face cache resolution
 * ========================================================================================== */

/*
 * Turns a model argument into a local directory or file path.
 *   - an existing directory or file is returned as is;
 *   - "ORG/NAME" (optionally "ORG/NAME@REVISION") is looked up in the Hugging Face cache:
 *     $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, in
 *     models--ORG--NAME/snapshots/<commit>/ where <commit> is read from refs/<REVISION or main>
 *     (or REVISION itself when it names a snapshot).
 * Writes a NUL-terminated path into out[cap]. MOLMO_ERR_NOT_FOUND when nothing matches (the
 * message says where it looked), MOLMO_ERR_INVALID_ARG when `cap` is too small.
 */
MOLMO_API molmo_status molmo_resolve_model_path(const char *spec, char *out, size_t cap,
                                                molmo_error *err);

/* ============================================================================================
 * Models
 * ========================================================================================== */

typedef struct molmo_model molmo_model;

/* Which released architecture a checkpoint follows; derived from config.json, never from the
 * directory name. */
typedef enum molmo_family {
    MOLMO_FAMILY_MOLMOE = 0,  /* MolmoE-1B: OLMoE LLM, MoE FFN, QK-norm, pre-norm          */
    MOLMO_FAMILY_OLMO,        /* Molmo-7B-O: OLMo LLM, norm_after, QK-norm, dense SwiGLU   */
    MOLMO_FAMILY_QWEN2,       /* Molmo-7B-D / 72B: Qwen2 LLM, qkv bias, GQA, dense SwiGLU  */
    MOLMO_FAMILY_COUNT
} molmo_family;

/* Storage types of weight tensors. */
typedef enum molmo_dtype {
    MOLMO_DTYPE_F32 = 0,
    MOLMO_DTYPE_F16,
    MOLMO_DTYPE_BF16,
    MOLMO_DTYPE_I32,    /* index tensors in golden/trace files; never a weight            */
    /* ggml block formats (GGUF files only; rows are whole blocks of 32 values):             */
    MOLMO_DTYPE_Q8_0,   /* 34-byte blocks: fp16 scale d, 32 int8 q; x = q * d             */
    MOLMO_DTYPE_Q4_0,   /* 18-byte blocks: fp16 scale d, 32 nibbles q; x = (q - 8) * d     */
    /* ggml K-quant super-blocks (GGUF files only; rows are whole blocks of 256 values):    */
    MOLMO_DTYPE_Q4_K,   /* 144 bytes: fp16 d, dmin, 6-bit scales/mins of 8 sub-blocks, nibbles */
    MOLMO_DTYPE_Q6_K,   /* 210 bytes: 6-bit q of 16 sub-blocks with int8 scales, fp16 d    */
    MOLMO_DTYPE_COUNT
} molmo_dtype;

/* Static lowercase name of a dtype ("f32", "f16", "bf16", "i32", "q8_0", "q4_0", "q4_k",
 * "q6_k"). */
MOLMO_API const char *molmo_dtype_name(molmo_dtype dtype);

typedef struct molmo_model_params {
    molmo_log_fn log;          /* optional; NULL = silent                                  */
    void *log_user;
    int no_mmap;               /* nonzero: read the weights into the process's own memory
                                * (anonymous, transparent huge pages where the kernel gives
                                * them) instead of mapping the files; costs their size in RAM
                                * and a read at load. On some hosts (VMs) the page cache reads
                                * slower than the process's memory and decode gains 10-30%
                                * (docs/bench.md). Refused with MOLMO_ERR_NOMEM where the
                                * files exceed the memory the kernel reports available.
                                * In that copy, Q8_0 and Q4_0 matrices are laid out anew
                                * for the SIMD kernels (interleaved by 16 rows, as llama.cpp's
                                * CPU repack): the same results, faster Q8_0 decode and
                                * faster prefill (Q4_0 decode: about even, docs/bench.md). */
    int no_repack;             /* nonzero (with no_mmap): keep the file's layout            */
} molmo_model_params;

MOLMO_API molmo_model_params molmo_model_default_params(void);

/*
 * Loads a model from a checkpoint directory, a GGUF file written by molmo_convert (recognised
 * by its magic), or a Hugging Face repo id (see molmo_resolve_model_path). Reads config.json
 * (both the HF and the OLMo style; embedded in a GGUF), maps the weights without copying,
 * validates every header against its file and checks that every tensor the architecture needs
 * is present with its exact shape.
 * On success *out owns the model; free it with molmo_model_free. On failure *out is NULL.
 */
MOLMO_API molmo_status molmo_model_load(const char *path_or_repo, const molmo_model_params *params,
                                        molmo_model **out, molmo_error *err);

MOLMO_API void molmo_model_free(molmo_model *model);

/* A summary of a loaded model. Strings point into the model (valid until molmo_model_free). */
typedef struct molmo_model_info {
    molmo_family family;
    const char *family_name;       /* "MolmoE-1B-like", "Molmo-7B-O-like", "Molmo-7B-D/72B-like" */
    const char *path;              /* resolved directory, or the GGUF file                   */

    /* language model */
    int d_model, n_layers, n_heads, n_kv_heads, head_dim;
    int d_ff;                      /* MLP hidden per expert (dense: the SwiGLU hidden)       */
    int n_experts, n_experts_used; /* 0 / 0 for dense models                                 */
    int vocab_size, embedding_size, n_new_embeddings;
    int max_position_embeddings;
    float rope_theta, norm_eps;
    int qkv_bias, qk_norm, norm_after;

    /* vision tower */
    int vit_d_model, vit_n_layers, vit_n_heads, vit_head_dim, vit_d_ff;
    int vit_layer_a, vit_layer_b;  /* the two ViT block outputs concatenated (0-based)       */
    int image_size, patch_size;

    /* parameters (elements) and bytes */
    uint64_t n_params_vision, n_params_connector, n_params_llm, n_params_total;
    uint64_t weight_bytes;         /* bytes of all tensors as stored                         */
    int n_tensors;
    uint64_t n_tensors_by_dtype[MOLMO_DTYPE_COUNT];
    int n_files;                   /* number of safetensors shards                           */
    int n_matrices_interleaved;    /* Q8_0 / Q4_0 matrices laid out anew for the kernels at
                                      load (no_mmap without no_repack; AVX2 or AVX-512)     */
    uint64_t kv_cache_bytes_per_token; /* f32 K+V for all layers                            */
    uint64_t memory_estimate_bytes; /* weights (mapped) + KV cache at the default context  */
                                    /* + activations for a 12-crop image prompt             */
    int has_tokenizer, has_preprocessor_config, has_generation_config;
} molmo_model_info;

MOLMO_API molmo_status molmo_model_get_info(const molmo_model *model, molmo_model_info *out);

/* Name of the i-th safetensors file of the model (0 <= i < info.n_files), or NULL. */
MOLMO_API const char *molmo_model_file(const molmo_model *model, int i);

/* Static name of a family ("MolmoE-1B-like", ...). */
MOLMO_API const char *molmo_family_name(molmo_family family);

/* --- section: tokenizer (issue 3) --- */

/*
 * Hugging Face tokenizer.json byte-level BPE (the Qwen2, dolma2/cl100k and GPT-NeoX tokenizers
 * of the Molmo checkpoints), exact to the reference Rust `tokenizers` library: added tokens,
 * NFC, Split/ByteLevel pre-tokenizers, BPE, ByteLevel decoder, clean_up_tokenization_spaces.
 * Text is encoded the way Molmo does it: add_special_tokens=False (no post-processor tokens).
 *
 * A loaded tokenizer is immutable: any number of threads may encode/decode with it at once.
 * A molmo_detokenizer (streaming decode) is for one thread at a time.
 *
 * Invalid UTF-8 in text to encode: each maximal invalid subsequence is replaced by U+FFFD
 * before tokenizing (what Python's bytes.decode("utf-8", "replace") gives the reference).
 * Unsupported tokenizer.json features (other model types, normalizers, pre-tokenizers,
 * decoders, lstrip/rstrip/single_word added tokens) are refused with MOLMO_ERR_UNSUPPORTED.
 */
typedef struct molmo_tokenizer molmo_tokenizer;

/* Loads a tokenizer. `path` is a model directory or Hugging Face repo id (see
 * molmo_resolve_model_path), a directory holding tokenizer.json, or a tokenizer.json file.
 * tokenizer_config.json beside it, when present, supplies eos/bos/pad tokens and
 * clean_up_tokenization_spaces. *out owns the tokenizer (molmo_tokenizer_free). */
MOLMO_API molmo_status molmo_tokenizer_load(const char *path, molmo_tokenizer **out,
                                            molmo_error *err);
/* The same from memory; config_json may be NULL. Neither buffer is kept. */
MOLMO_API molmo_status molmo_tokenizer_load_from_memory(const char *tokenizer_json,
                                                        size_t json_len, const char *config_json,
                                                        size_t config_len, molmo_tokenizer **out,
                                                        molmo_error *err);
MOLMO_API void molmo_tokenizer_free(molmo_tokenizer *tok);

typedef struct molmo_tokenizer_info {
    int32_t n_vocab;      /* highest token id + 1 (BPE vocabulary and added tokens)          */
    int32_t n_added;      /* entries of "added_tokens"                                      */
    int32_t n_merges;     /* distinct BPE merges                                            */
    int32_t eos_id;       /* tokenizer_config.json "eos_token", -1 when absent (Molmo uses it */
    int32_t bos_id;       /*   as BOS as well); "bos_token", "pad_token": -1 when absent      */
    int32_t pad_id;
    int clean_up_spaces;  /* "clean_up_tokenization_spaces" (false when absent)              */
    const char *path;     /* the tokenizer.json read ("" when loaded from memory)            */
} molmo_tokenizer_info;

MOLMO_API molmo_status molmo_tokenizer_get_info(const molmo_tokenizer *tok,
                                                molmo_tokenizer_info *out);

/* Id of a token string: added tokens (e.g. "<im_patch>", "<|endoftext|>") first, then the BPE
 * vocabulary (byte-level spelling, e.g. "Ġthe"). -1 when there is none. */
MOLMO_API int32_t molmo_tokenizer_token_to_id(const molmo_tokenizer *tok, const char *token,
                                              size_t len);
/* The token string of an id (byte-level spelling for BPE tokens, the literal text for added
 * tokens) and its length in *len; NULL for ids without one. Valid until molmo_tokenizer_free. */
MOLMO_API const char *molmo_tokenizer_id_to_token(const molmo_tokenizer *tok, int32_t id,
                                                  size_t *len);
/* 1 when decoding with MOLMO_DECODE_SKIP_SPECIAL drops this id. */
MOLMO_API int molmo_tokenizer_is_special(const molmo_tokenizer *tok, int32_t id);

/* Encodes text[0..len) (NULs allowed) into ids[0..cap). *n_ids receives the number of ids the
 * text needs. ids = NULL with cap = 0 only counts (MOLMO_OK). When cap is too small the first
 * cap ids are written and MOLMO_ERR_INVALID_ARG is returned. */
MOLMO_API molmo_status molmo_tokenizer_encode(const molmo_tokenizer *tok, const char *text,
                                              size_t len, int32_t *ids, size_t cap,
                                              size_t *n_ids, molmo_error *err);

/* Decode flags. Without CLEANUP/NO_CLEANUP, tokenizer_config.json decides
 * (clean_up_tokenization_spaces), as transformers' tokenizer.decode does. */
#define MOLMO_DECODE_SKIP_SPECIAL 1u /* drop special added tokens (skip_special_tokens=True) */
#define MOLMO_DECODE_CLEANUP 2u      /* " ." -> "." etc. (clean_up_tokenization_spaces=True) */
#define MOLMO_DECODE_NO_CLEANUP 4u

/* Decodes ids into out[0..cap) as UTF-8 (invalid byte sequences become U+FFFD, as in the
 * reference); ids without a token are skipped, as the reference does. *out_len receives the
 * text length; the text is NUL-terminated when cap > *out_len (it may itself contain NULs).
 * out = NULL with cap = 0 only measures (MOLMO_OK); a short buffer gives MOLMO_ERR_INVALID_ARG. */
MOLMO_API molmo_status molmo_tokenizer_decode(const molmo_tokenizer *tok, const int32_t *ids,
                                              size_t n_ids, unsigned flags, char *out,
                                              size_t cap, size_t *out_len, molmo_error *err);

/* Streaming decode for token-by-token output: each push returns the text that has become
 * final, never a partial UTF-8 character; the concatenation of all pushes and the final flush
 * equals molmo_tokenizer_decode of all ids with the same flags (cleanup included). */
typedef struct molmo_detokenizer molmo_detokenizer;

MOLMO_API molmo_status molmo_detokenizer_create(const molmo_tokenizer *tok, unsigned flags,
                                                molmo_detokenizer **out, molmo_error *err);
/* Adds one id. *text and *len receive the new final text (possibly empty), valid until the next
 * call on this detokenizer. */
MOLMO_API molmo_status molmo_detokenizer_push(molmo_detokenizer *d, int32_t id,
                                              const char **text, size_t *len, molmo_error *err);
/* Ends the stream: returns what was held back (an incomplete character becomes U+FFFD) and
 * resets the detokenizer for a new stream. */
MOLMO_API molmo_status molmo_detokenizer_flush(molmo_detokenizer *d, const char **text,
                                               size_t *len, molmo_error *err);
/* Forgets held-back text and starts a new stream. */
MOLMO_API void molmo_detokenizer_reset(molmo_detokenizer *d);
MOLMO_API void molmo_detokenizer_free(molmo_detokenizer *d);

/* The text part of a Molmo prompt: messages alternate user, assistant, user, ... (n_messages >=
 * 1); each is tokenized separately with a leading space, user messages as
 * " User: {msg} Assistant:", and the EOS id follows every assistant message:
 *   tok(" User: q1 Assistant:") tok(" a1") EOS tok(" User: q2 Assistant:")
 * BOS (= EOS for Molmo) and image tokens are not included. lens may be NULL (NUL-terminated
 * messages). Buffer protocol as in molmo_tokenizer_encode. Needs an eos_token when a message
 * after the first is given. */
MOLMO_API molmo_status molmo_tokenizer_encode_prompt(const molmo_tokenizer *tok,
                                                     const char *const *messages,
                                                     const size_t *lens, size_t n_messages,
                                                     int32_t *ids, size_t cap, size_t *n_ids,
                                                     molmo_error *err);

/* --- section: images (issue 4) --- */

/*
 * Decoded images: 8-bit RGB, row-major [height, width, 3], as the user sees the picture (EXIF
 * orientation applied by default), so points the model returns refer to what is on screen.
 * JPEG (libjpeg-turbo; grey, YCbCr, CMYK/YCCK, progressive), PNG (libspng; every colour type and
 * bit depth, palette, interlaced) and WebP (libwebp; lossy, lossless, alpha, first frame of an
 * animation) are recognised from their first bytes, never from the file name. Pixels equal what
 * the reference loader (Pillow: Image.open(f).convert("RGB")) produces, with two documented
 * exceptions (docs/images.md): 16-bit grey PNGs keep their high byte (Pillow clips them to
 * white), and XMP-only orientation tags are ignored.
 * A molmo_image is immutable once made and may be read from any number of threads.
 */
typedef struct molmo_image molmo_image;

typedef enum molmo_image_format {
    MOLMO_IMAGE_FORMAT_RAW = 0,  /* made from caller pixels (molmo_image_from_rgb)           */
    MOLMO_IMAGE_FORMAT_JPEG,
    MOLMO_IMAGE_FORMAT_PNG,
    MOLMO_IMAGE_FORMAT_WEBP
} molmo_image_format;

typedef enum molmo_image_exif {
    MOLMO_IMAGE_EXIF_APPLY = 0,  /* rotate/flip as the EXIF Orientation tag says (default; the
                                    training loader's ImageOps.exif_transpose)                */
    MOLMO_IMAGE_EXIF_IGNORE      /* keep the stored pixel order (the HF processor's view)     */
} molmo_image_exif;

typedef enum molmo_image_alpha {
    MOLMO_IMAGE_ALPHA_DROP = 0,  /* discard alpha, keep the stored colour (Pillow's
                                    convert("RGB"), what the released models saw; default)    */
    MOLMO_IMAGE_ALPHA_COMPOSITE  /* blend over `background`: c*a/255 + bg*(1-a/255), rounded  */
} molmo_image_alpha;

typedef struct molmo_image_params {
    uint64_t max_pixels;         /* width*height above this is refused with
                                    MOLMO_ERR_TOO_LARGE before any pixel buffer is allocated
                                    (decompression bombs); 0 = the default, 100,000,000       */
    molmo_image_exif exif;
    molmo_image_alpha alpha;
    uint8_t background[3];       /* compositing colour, default white                         */
} molmo_image_params;

/* Defaults: 100 MP limit, EXIF applied, alpha dropped, white background. */
MOLMO_API molmo_image_params molmo_image_default_params(void);

/*
 * Decodes an image file. `params` may be NULL (defaults). On success *out owns the image (free
 * with molmo_image_free); on failure *out is NULL and err names the file and the problem:
 * MOLMO_ERR_IO (cannot read), MOLMO_ERR_FORMAT (empty, truncated or corrupt data),
 * MOLMO_ERR_UNSUPPORTED (GIF, BMP, TIFF, HEIC, AVIF, ... or an unknown signature),
 * MOLMO_ERR_TOO_LARGE (over max_pixels, or a side over 1,000,000 px), MOLMO_ERR_NOMEM.
 * Thread-safe: no shared state.
 */
MOLMO_API molmo_status molmo_image_load_file(const char *path, const molmo_image_params *params,
                                             molmo_image **out, molmo_error *err);

/* Same from bytes in memory (data[size], only read during the call). */
MOLMO_API molmo_status molmo_image_load_memory(const void *data, size_t size,
                                               const molmo_image_params *params,
                                               molmo_image **out, molmo_error *err);

/* Makes an image from caller pixels: `rgb` holds `height` rows of width*3 bytes, `stride`
 * bytes apart (0 = width*3); copied. Sizes must be >= 1 and within the default limits. */
MOLMO_API molmo_status molmo_image_from_rgb(const uint8_t *rgb, int width, int height,
                                            size_t stride, molmo_image **out, molmo_error *err);

MOLMO_API void molmo_image_free(molmo_image *img);

/* Size as the user sees it (after EXIF orientation). */
MOLMO_API int molmo_image_width(const molmo_image *img);
MOLMO_API int molmo_image_height(const molmo_image *img);
/* [height, width, 3] RGB bytes, rows packed (stride width*3); valid until molmo_image_free. */
MOLMO_API const uint8_t *molmo_image_pixels(const molmo_image *img);

/* Where the pixels came from. */
typedef struct molmo_image_info {
    int width, height;           /* as returned by molmo_image_width/height                   */
    int stored_width, stored_height; /* before EXIF orientation                               */
    molmo_image_format format;
    int exif_orientation;        /* 1..8 as found in the file (1 when absent or invalid)       */
    int orientation_applied;     /* 1 when the pixels were rotated/flipped for it             */
    int had_alpha;               /* 1 when the file carried transparency                       */
    int alpha_composited;        /* 1 when it was blended over the background                  */
} molmo_image_info;

MOLMO_API molmo_status molmo_image_get_info(const molmo_image *img, molmo_image_info *out);

/* Static lowercase name of a format ("raw", "jpeg", "png", "webp"). Never NULL. */
MOLMO_API const char *molmo_image_format_name(molmo_image_format format);

/* --- section: vision and language model (issues 5, 6) --- */

/*
 * Stage trace, for debugging parity with the reference: when set in the context params, the
 * library calls it with named intermediate tensors as they are produced (f32, row-major,
 * shape in PyTorch order; `data` valid only during the call). Names:
 *   "vit.crop{k}.embed"       [577, W]  patch + class + positional embedding, after pre-LN
 *   "vit.crop{k}.block{i}"    [577, W]  residual stream after ViT block i
 *   "vit.crop{k}.features"    [576, 2W] concat of the two configured block outputs, CLS dropped
 *   "connector.crop{k}.pooled"    [144, W]  after 2x2 attention pooling
 *   "connector.crop{k}.projected" [144, d]  after the SwiGLU projector (image features)
 */
typedef void (*molmo_trace_fn)(void *user, const char *name, const float *data, int n_dims,
                               const int64_t *shape);

/* An inference context: thread pool, workspaces, KV cache. One per conversation; the model is
 * shared read-only between contexts. A context is used by one thread at a time. */
typedef struct molmo_context molmo_context;

typedef struct molmo_context_params {
    int n_threads;             /* <= 0: one per physical core                              */
    int n_ctx;                 /* KV cache positions; <= 0: the model's max_position_embeddings
                                  (memory is committed only as positions fill)              */
    int n_batch;               /* prompt tokens per forward chunk; <= 0: 1024               */
    molmo_trace_fn trace;      /* optional stage trace                                     */
    void *trace_user;
    molmo_dtype kv_type;       /* KV cache: MOLMO_DTYPE_F32 (default: the official model's
                                  values) or MOLMO_DTYPE_F16 (half the cache memory and the
                                  decode attention's reads; keys and values rounded to half:
                                  logits move slightly, docs/gguf.md). Other types:
                                  MOLMO_ERR_INVALID_ARG                                     */
    int bf16_activations;      /* nonzero: the inputs of every matmul with BF16 weights, and
                                  every attention (q, k, v, the softmax weights), are
                                  rounded to bf16 first (round to nearest even), as PyTorch's
                                  bf16 autocast (the model card's recipe) and llama.cpp do;
                                  products and sums stay f32. On AMX-BF16 CPUs the GEMMs then
                                  take one tile pass instead of three, attention runs on
                                  tiles, and quantized matmuls of more than 4 rows (ViT,
                                  prefill) multiply the bf16 inputs by the weights rounded
                                  to bf16 instead of quantizing the inputs to int8
                                  (MolmoE-1B ViT: bf16 ~1.45x, q8_0 ~1.35x faster);
                                  logits move (docs/gguf.md). Default 0: f32
                                  activations, the official fp32 model's values             */
} molmo_context_params;

MOLMO_API molmo_context_params molmo_context_default_params(void);

/* Creates a context over `model` (which must outlive it). */
MOLMO_API molmo_status molmo_context_create(const molmo_model *model,
                                            const molmo_context_params *params,
                                            molmo_context **out, molmo_error *err);
MOLMO_API void molmo_context_free(molmo_context *ctx);

/* Geometry of one crop for this model: patches per crop (576 for ViT-L/14-336), values per
 * patch (588), pooled features per crop (144), LLM width (d_model). */
typedef struct molmo_crop_geometry {
    int n_patches, patch_dim, n_pooled, d_model;
} molmo_crop_geometry;
MOLMO_API molmo_crop_geometry molmo_model_crop_geometry(const molmo_model *model);

/*
 * Runs the vision encoder and connector on preprocessed crops:
 *   images [n_crops, n_patches, patch_dim] CLIP-normalised patches (crop 0 = global view),
 *   masks  [n_crops, n_patches] per-patch fraction of real pixels (the preprocessor's output),
 *   features_out [n_crops, n_pooled, d_model] (caller-allocated) image features.
 * Crops run one after another, each on all the context's threads.
 */
MOLMO_API molmo_status molmo_encode_crops(molmo_context *ctx, const float *images,
                                          const float *masks, int n_crops, float *features_out,
                                          molmo_error *err);

/* ---- generation ---------------------------------------------------------------------------- */

/* One turn of a conversation. role: "user" or "assistant"; turns alternate, starting and
 * ending with "user". */
typedef struct molmo_message {
    const char *role;
    const char *content;
} molmo_message;

typedef enum molmo_stop_reason {
    MOLMO_STOP_EOS = 0,    /* the model produced its end-of-sequence token                   */
    MOLMO_STOP_LENGTH,     /* max_new_tokens reached                                         */
    MOLMO_STOP_STRING,     /* one of the stop strings appeared (it is not part of the text)  */
    MOLMO_STOP_CANCELLED   /* the token callback returned non-zero                           */
} molmo_stop_reason;

/* Receives each piece of answer text as soon as it is final: whole UTF-8 characters only, and
 * never text that a stop string could still claim. `token` is the id that completed the
 * piece. Return non-zero to stop generating (MOLMO_STOP_CANCELLED). */
typedef int (*molmo_token_fn)(void *user, int32_t token, const char *text, size_t len);

typedef struct molmo_generate_params {
    int max_new_tokens;        /* [200] the model card's default                            */
    float temperature;         /* [0] 0 = greedy (the model card's decoding)                 */
    int top_k;                 /* [0] 0 = no top-k filter                                   */
    float top_p;               /* [1] 1 = no nucleus filter                                 */
    uint64_t seed;             /* [0] sampling seed: same seed, same answer                 */
    const char *const *stop;   /* [NULL] stop strings                                       */
    int n_stop;
    int top_logprobs;          /* [0] 0..20 alternatives recorded per generated token       */
    int max_crops;             /* [0] 0 = preprocessor_config.json's max_crops (12)         */
    molmo_token_fn on_token;   /* optional streaming callback                               */
    void *user;
} molmo_generate_params;

MOLMO_API molmo_generate_params molmo_generate_default_params(void);

typedef struct molmo_token_logprob {
    int32_t id;
    float logprob;
} molmo_token_logprob;

/* The result of molmo_generate; free with molmo_generation_free. */
typedef struct molmo_generation {
    char *text;                /* the answer, NUL-terminated UTF-8, leading space removed    */
    size_t text_len;
    int32_t *tokens;           /* generated ids, without the final EOS                       */
    int n_tokens;
    molmo_stop_reason stop;
    int prompt_tokens;         /* BOS + image tokens + text                                  */
    int cached_tokens;         /* prompt tokens reused from the previous call's KV cache     */
    int has_image;
    int image_width, image_height, tiling_rows, tiling_cols, n_crops;
    int image_cached;          /* 1 when the image features came from the context's cache   */
    int top_logprobs;          /* K: alternatives per token                                  */
    molmo_token_logprob *chosen;   /* [n_tokens] log-prob of each token (when top_logprobs > 0) */
    molmo_token_logprob *top;      /* [n_tokens * K] the K best alternatives per token       */
    double image_ms, prefill_ms, decode_ms;
    int n_prefilled;           /* prompt tokens actually run (prompt - cached)              */
} molmo_generation;

/*
 * Answers a conversation about an image (or none: image may be NULL). Builds the prompt as the
 * reference does ([BOS=EOS] + image tokens + " User: ... Assistant:" per turn, each message
 * tokenized separately, EOS after each assistant turn), runs the vision encoder (skipped when
 * the same image with the same max_crops was encoded by the previous call on this context),
 * prefills (reusing the KV cache for the prompt prefix shared with the previous call), then
 * decodes until EOS, a stop string, max_new_tokens or the callback says stop.
 * Errors: MOLMO_ERR_INVALID_ARG (messages), MOLMO_ERR_TOO_LARGE (prompt + answer do not fit
 * the context), MOLMO_ERR_UNSUPPORTED (model without tokenizer), MOLMO_ERR_NOMEM.
 */
MOLMO_API molmo_status molmo_generate(molmo_context *ctx, const molmo_image *image,
                                      const molmo_message *messages, int n_messages,
                                      const molmo_generate_params *params,
                                      molmo_generation **out, molmo_error *err);
MOLMO_API void molmo_generation_free(molmo_generation *g);

/* The model's tokenizer (owned by the model; NULL when the model has no tokenizer.json). */
MOLMO_API const molmo_tokenizer *molmo_model_tokenizer(const molmo_model *model);

/* --- section: hub (issue 9) --- */

/*
 * Downloading a model repository from the Hugging Face hub into the standard Hugging Face cache,
 * in the layout Python's huggingface_hub uses, so each reuses what the other downloaded:
 *   <cache>/models--ORG--NAME/blobs/<etag>               contents; <etag> is the SHA-256 of
 *                                                         LFS files, the git blob SHA-1 of others
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<file>  relative symlinks ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<revision>            the commit a branch or tag named
 * (<cache> as in molmo_resolve_model_path). The protocol is the hub's public HTTP API:
 *   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=True   commit and file list
 *   HEAD/GET {endpoint}/{repo}/resolve/{commit}/{file}           ETag, X-Linked-Etag, size, a
 *                                                                redirect to the CDN for LFS
 * Downloads go to blobs/<etag>.incomplete (under .locks/models--ORG--NAME/<etag>.lock, the lock
 * huggingface_hub takes) and are resumed with HTTP ranges after a failure or an interruption.
 * Every file's size and digest (SHA-256 for LFS files, git SHA-1 for the others) is checked
 * before it is renamed into blobs/ and linked: nothing unverified enters a snapshot. A file
 * that fails its check is deleted. refs/<revision> is written last, once every file is linked.
 * Transport errors, timeouts, 408, 429 and 5xx answers are retried with exponential back-off.
 * The token goes only to the endpoint's own host (never to the CDN the hub redirects to).
 */

/* What a progress report is about. */
typedef enum molmo_pull_event {
    MOLMO_PULL_EVENT_START = 0,  /* the file list is known: n_files, n_to_download, total     */
    MOLMO_PULL_EVENT_FILE_CACHED,/* `file` was already in the cache: linked, nothing fetched */
    MOLMO_PULL_EVENT_FILE_START, /* downloading `file` begins (file_bytes > 0: resumed)       */
    MOLMO_PULL_EVENT_BYTES,      /* more of `file` arrived (at most about 10 reports a second) */
    MOLMO_PULL_EVENT_FILE_DONE,  /* `file` is complete, verified and linked                   */
    MOLMO_PULL_EVENT_RETRY,      /* a transient error (`message`): retrying in `retry_in_s`    */
    MOLMO_PULL_EVENT_DONE        /* every file is in the snapshot                             */
} molmo_pull_event;

typedef struct molmo_pull_progress {
    molmo_pull_event event;
    const char *repo;            /* "ORG/NAME"                                                */
    const char *commit;          /* the commit being pulled ("" before START)                 */
    const char *file;            /* the file concerned; NULL for START and DONE               */
    int n_files;                 /* files in the pull (after the include globs)               */
    int n_to_download;           /* of those, the ones not already in the cache               */
    int file_index;              /* 0-based among the n_to_download (-1: none yet)            */
    uint64_t file_bytes;         /* bytes of `file` on disk so far (a resumed part included)  */
    uint64_t file_size;
    uint64_t bytes;              /* the same over all the files to download                   */
    uint64_t total;
    uint64_t received;           /* bytes received from the network during this call          */
    double rate;                 /* bytes per second over the last seconds (0: not yet known) */
    double eta_s;                /* seconds left at that rate (< 0: unknown)                  */
    double elapsed_s;            /* since the call began                                      */
    double retry_in_s;           /* RETRY: the back-off before the next try                   */
    const char *message;         /* RETRY: what went wrong; otherwise NULL                    */
} molmo_pull_progress;

/* Called from the pulling thread; `p` is valid only during the call. Return non-zero to stop
 * (molmo_pull then returns MOLMO_ERR_CANCELLED; a partial file is kept and resumed later). */
typedef int (*molmo_pull_progress_fn)(void *user, const molmo_pull_progress *p);

typedef struct molmo_pull_params {
    const char *endpoint;        /* NULL: $HF_ENDPOINT, else https://huggingface.co          */
    const char *token;           /* NULL: $HF_TOKEN, else the token file ($HF_TOKEN_PATH, else
                                    $HF_HOME/token, else ~/.cache/huggingface/token);
                                    "": none                                                  */
    const char *revision;        /* branch, tag or commit; NULL: the "@REV" of the repo id,
                                    else "main"                                               */
    const char *const *include;  /* glob patterns (fnmatch; '*' matches '/' too, as in
                                    huggingface_hub's allow_patterns); NULL: every file       */
    int n_include;
    int offline;                 /* 1: never use the network; resolve from the cache or fail
                                    with MOLMO_ERR_NOT_FOUND. Default: $HF_HUB_OFFLINE
                                    (1/ON/YES/TRUE)                                           */
    const char *cache_dir;       /* NULL: the standard cache (see molmo_resolve_model_path)   */
    int max_retries;             /* [5] retries per request after a transient error           */
    int retry_delay_ms;          /* [1000] first back-off; doubles each retry, at most 30 s   */
    int timeout_s;               /* [30] to connect, and the longest stall of a transfer      */
    molmo_pull_progress_fn progress; /* optional                                              */
    void *progress_user;
    const volatile int *cancel;  /* optional: stop (MOLMO_ERR_CANCELLED) once *cancel != 0;
                                    may be set from a signal handler                          */
    molmo_log_fn log;            /* optional                                                  */
    void *log_user;
} molmo_pull_params;

/* Defaults as described above; reads $HF_HUB_OFFLINE (other variables are read by molmo_pull
 * when their field is NULL). */
MOLMO_API molmo_pull_params molmo_pull_default_params(void);

/*
 * Makes `repo_id` ("ORG/NAME" or "ORG/NAME@REV") available in the cache and writes its snapshot
 * directory (NUL-terminated) into out_snapshot_dir[cap] (may be NULL). Files already in the
 * cache are linked, not downloaded: a second pull of the same revision sends one request.
 * `params` may be NULL (defaults). Blocks until done; any number of pulls may run at once in
 * different threads or processes (the blob locks keep them from writing the same file).
 * Errors: MOLMO_ERR_NOT_FOUND (repository, revision or matching files do not exist; offline
 * and not cached), MOLMO_ERR_NETWORK (the hub could not be reached, refused the request or the
 * token: the message says what to do), MOLMO_ERR_FORMAT (a digest or size mismatch, or a
 * malformed answer), MOLMO_ERR_IO (the cache cannot be written, or the disk is too small),
 * MOLMO_ERR_CANCELLED, MOLMO_ERR_INVALID_ARG (repo id, revision, cap), MOLMO_ERR_NOMEM.
 */
MOLMO_API molmo_status molmo_pull(const char *repo_id, const molmo_pull_params *params,
                                  char *out_snapshot_dir, size_t cap, molmo_error *err);

/* --- section: points (issue 7) --- */

/*
 * Pointing and counting answers (docs/points.md). Molmo answers "where?" with coordinates in
 * percent of the image (0..100, x of the width, y of the height):
 *     <point x="61.5" y="40.6" alt="dog">dog</point>
 *     <points x1="10.2" y1="20.0" x2="55.0" y2="21.3" alt="dogs">dogs</points>
 *     Counting the <points ...>dogs</points> shows a total of 2.      There are none.
 * The parser finds every point with its percent and pixel coordinates, the tag's alt and inner
 * text, and the count statement, and tolerates what models really emit: several tags, points
 * inline in prose, attributes in any order, single, double or no quotes, stray spaces, tags cut
 * off by the end of a generation, and the legacy forms Click(x, y), (x, y) and p=ddd,ddd.
 * Values outside 0..100 are rejected, as the official parser (olmo/util.py extract_points)
 * rejects them, and reported in `rejected`.
 *
 * Pixel coordinates: x = x_pct / 100 * width, y = y_pct / 100 * height (the official
 * conversion), with the image as the user sees it (EXIF orientation applied, see the images
 * section), in continuous coordinates: pixel (i, j) covers [i, i+1) x [j, j+1).
 *
 * Parsers and results are plain data: no shared state; one thread at a time per object.
 */

/* Which markup a point came from. */
typedef enum molmo_point_source {
    MOLMO_POINT_SRC_POINT = 0,   /* <point x="" y="" ...>                                   */
    MOLMO_POINT_SRC_POINTS,      /* <points x1="" y1="" x2="" y2="" ...>                    */
    MOLMO_POINT_SRC_CLICK,       /* legacy Click(x, y)                                      */
    MOLMO_POINT_SRC_PAREN,       /* legacy (x, y), both with a decimal point                */
    MOLMO_POINT_SRC_P3           /* legacy p=ddd,ddd / N=ddd,ddd: tenths of a percent       */
} molmo_point_source;

typedef struct molmo_point {
    double x, y;                 /* pixels: x_pct / 100 * width, y_pct / 100 * height       */
    double x_pct, y_pct;         /* as written, 0..100                                      */
    int index;                   /* the N of xN/yN; 0 for x/y and the legacy forms          */
    int group;                   /* 0-based number of the tag (or legacy match) it came from,
                                    counting those that gave at least one point             */
    molmo_point_source source;
    const char *alt;             /* the tag's alt attribute ("" when none)                  */
    const char *label;           /* the tag's inner text, spaces trimmed ("" when none)      */
    size_t offset, length;       /* byte span of the whole tag (or match) in the text       */
    int truncated;               /* the tag was not closed (a cut-off generation)           */
} molmo_point;

/* Why a value was not made into a point. */
typedef enum molmo_point_reject_reason {
    MOLMO_POINT_REJECT_RANGE = 0, /* outside 0..100 (the official parser drops these)       */
    MOLMO_POINT_REJECT_NUMBER,   /* a coordinate that is not a number ("abc", "5e3", "")    */
    MOLMO_POINT_REJECT_UNPAIRED, /* an x without its y or a y without its x (also a value
                                    cut off by the end of the text)                         */
    MOLMO_POINT_REJECT_DUPLICATE, /* the same coordinate twice in one tag                   */
    MOLMO_POINT_REJECT_EMPTY     /* a <point>/<points> tag without any coordinate           */
} molmo_point_reject_reason;

typedef struct molmo_point_reject {
    molmo_point_reject_reason reason;
    molmo_point_source source;
    int index;                   /* as in molmo_point                                       */
    double x_pct, y_pct;         /* NAN where missing or not a number                       */
    size_t offset;               /* byte offset of the tag (or match) in the text           */
} molmo_point_reject;

/* Where molmo_points.count came from (rules in docs/points.md, after the official
 * PointCountEval). */
typedef enum molmo_count_kind {
    MOLMO_COUNT_UNSTATED = 0,    /* the text states no count (count = -1)                   */
    MOLMO_COUNT_LAST_WORD,       /* the answer ends with a number: "... 3." / "... three."  */
    MOLMO_COUNT_TOTAL,           /* "... shows a total of N."                               */
    MOLMO_COUNT_THERE_ARE,       /* "There are N ..."                                       */
    MOLMO_COUNT_NONE             /* "There are none." / "This isn't in the image.": 0       */
} molmo_count_kind;

/* A parsed answer. Everything it points to is owned by it: free with molmo_points_free. */
typedef struct molmo_points {
    molmo_point *points;         /* [n_points] in text order                                */
    int n_points;
    int n_groups;                /* tags/matches that gave points                           */
    molmo_point_reject *rejected; /* [n_rejected_kept]: the first 1024 rejected values     */
    int n_rejected_kept;
    int n_rejected;              /* all rejected values                                     */
    int count;                   /* the count the text states, -1 when it states none       */
    molmo_count_kind count_kind;
    int none;                    /* 1: the answer says nothing is there and has no points   */
    const char *plain_text;      /* the answer with point markup replaced by inner text,
                                    NUL-terminated ("Counting the dogs shows a total of 2.") */
    size_t plain_len;
    int image_width, image_height;
} molmo_points;

/*
 * Parses a whole answer text[0..len) (NULs allowed, any bytes) for an image of
 * image_width x image_height pixels (1..1,000,000 each). *out owns the result
 * (molmo_points_free). Errors: MOLMO_ERR_INVALID_ARG (NULL text with len > 0, bad size),
 * MOLMO_ERR_NOMEM. Malformed markup is never an error: it is skipped or reported in
 * `rejected`. Time and memory are linear in len.
 */
MOLMO_API molmo_status molmo_points_parse(const char *text, size_t len, int image_width,
                                          int image_height, molmo_points **out,
                                          molmo_error *err);
MOLMO_API void molmo_points_free(molmo_points *pts);

/* Static lowercase names: "point", "points", "click", "paren", "p3" / "range", "number",
 * "unpaired", "duplicate", "empty" / "unstated", "last_word", "total", "there_are",
 * "none". Never NULL. */
MOLMO_API const char *molmo_point_source_name(molmo_point_source s);
MOLMO_API const char *molmo_point_reject_name(molmo_point_reject_reason r);
MOLMO_API const char *molmo_count_kind_name(molmo_count_kind k);

/*
 * Incremental parsing of a streamed answer (e.g. from molmo_generate's on_token callback):
 * feed the text in pieces of any size; each call reports the points completed by that piece
 * (a tag's points when its closing tag arrives, or the next tag starts; a legacy form when
 * it ends). The final result equals molmo_points_parse of the concatenated text, whatever
 * the pieces were.
 */
typedef struct molmo_points_parser molmo_points_parser;

MOLMO_API molmo_status molmo_points_parser_create(int image_width, int image_height,
                                                  molmo_points_parser **out, molmo_error *err);
/* *new_points / *n_new (either may be NULL) receive the points completed by this piece,
 * valid until the next call on this parser; their strings stay valid until the result of
 * molmo_points_parser_finish is freed. After an error the parser can only be freed. */
MOLMO_API molmo_status molmo_points_parser_feed(molmo_points_parser *p, const char *text,
                                                size_t len, const molmo_point **new_points,
                                                int *n_new, molmo_error *err);
/* Ends the text: completes what the end cuts off (marked truncated), reports it through
 * new_points/n_new (into *out's array) and hands the whole result to *out
 * (molmo_points_free). The parser is then ready for a new text. */
MOLMO_API molmo_status molmo_points_parser_finish(molmo_points_parser *p,
                                                  const molmo_point **new_points, int *n_new,
                                                  molmo_points **out, molmo_error *err);
MOLMO_API void molmo_points_parser_free(molmo_points_parser *p);

/* ---- annotated images ---------------------------------------------------------------------- */

/* The font used for labels and numbers unless molmo_draw_params.font_path says otherwise
 * (Debian/Ubuntu package fonts-dejavu-core). */
#define MOLMO_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

typedef struct molmo_draw_params {
    const char *font_path;       /* [NULL] TrueType/OpenType font; NULL = MOLMO_DEFAULT_FONT.
                                    Only opened when numbers or labels are drawn            */
    float marker_radius;         /* [0] radius of the marker's fill in pixels; <= 0: 1.2 % of
                                    the shorter side, at least 4                            */
    float font_size;             /* [0] text height in pixels; <= 0: 3.5 % of the shorter
                                    side, 12..96                                            */
    int numbers;                 /* [-1] number the markers 1..n in array order: 1 always,
                                    0 never, -1 when there is more than one point           */
    int labels;                  /* [1] write each group's label (alt, else the inner text)
                                    beside its first marker                                 */
} molmo_draw_params;

MOLMO_API molmo_draw_params molmo_draw_default_params(void);

/*
 * Draws points[0..n_points) onto a copy of `image`: each point is an anti-aliased disc in its
 * group's colour with a white ring and a dark outer ring (readable on light and dark images),
 * numbered when several, and each group's label is written beside its first point with
 * FreeType, white on a dark halo. Only x, y, group, alt and label of the points are read;
 * points outside the image are clipped. `params` may be NULL (defaults). *out owns the new
 * image (molmo_image_free). Errors: MOLMO_ERR_NOT_FOUND / MOLMO_ERR_FORMAT (the font file is
 * missing / unusable; the message names it), MOLMO_ERR_INVALID_ARG, MOLMO_ERR_NOMEM.
 */
MOLMO_API molmo_status molmo_image_draw_points(const molmo_image *image,
                                               const molmo_point *points, int n_points,
                                               const molmo_draw_params *params,
                                               molmo_image **out, molmo_error *err);

/*
 * Encodes an image as PNG (libspng, lossless) or JPEG (libjpeg-turbo, 4:2:0, `quality`
 * 1..100, 0 = 90; ignored for PNG). *data receives the bytes (free with
 * molmo_image_encoded_free), *size their number. MOLMO_ERR_UNSUPPORTED for other formats.
 */
MOLMO_API molmo_status molmo_image_encode(const molmo_image *image, molmo_image_format format,
                                          int quality, void **data, size_t *size,
                                          molmo_error *err);
MOLMO_API void molmo_image_encoded_free(void *data);

/* Writes an image to `path`, PNG or JPEG as the extension says (.png, .jpg, .jpeg; any case).
 * MOLMO_ERR_UNSUPPORTED for another extension, MOLMO_ERR_IO when the file cannot be written
 * (the message names the path). */
MOLMO_API molmo_status molmo_image_save(const molmo_image *image, const char *path,
                                        int quality, molmo_error *err);

/* --- section: convert (issue 8) --- */

/*
 * Converting a checkpoint into one GGUF file (docs/gguf.md): the standard GGUF v3 container
 * (ggml's block formats, so GGUF tools can inspect it), the original Hugging Face tensor names,
 * the normalised config under `molmo.*`, and the texts of config.json, tokenizer.json,
 * tokenizer_config.json, preprocessor_config.json and generation_config.json embedded
 * (`molmo.config_json`, ...). molmo_model_load (and so every command taking a model) accepts
 * such a file in place of a directory: it is recognised by its magic, mapped and used without
 * copying.
 *
 * Per-tensor policy: 1-D tensors (norms, biases), the class/positional/pad embeddings and the
 * MoE router stay f32; the token embedding and the LM head take `type`, but q8_0 when `type`
 * is q4_0 and q6_k when it is q4_k; the vision tower and connector (model.vision_backbone.*)
 * take `vision_type`; with q4_k the attention matrices (fused QKV, output) are q6_k (llama.cpp's
 * "Q4_K_M" idea); every other matrix takes `type`. A matrix whose rows are not whole blocks is
 * stored as q8_0 instead of q4_k/q6_k when its rows are whole 32-value blocks, else as f16 (the
 * ViT patch embedding, 588 wide).
 */
typedef struct molmo_convert_progress {
    int tensor_index;            /* 0-based index of the tensor being written                */
    int n_tensors;
    const char *tensor;          /* its name                                                 */
    molmo_dtype dtype;           /* its type in the file                                     */
    uint64_t bytes_done;         /* tensor bytes written so far (over all tensors)           */
    uint64_t bytes_total;
    double elapsed_s;
} molmo_convert_progress;

/* Called from the converting thread after each chunk (at most 16 MB) of output; `p` is valid
 * only during the call. Return non-zero to stop (molmo_convert returns MOLMO_ERR_CANCELLED and
 * leaves no output file). */
typedef int (*molmo_convert_progress_fn)(void *user, const molmo_convert_progress *p);

typedef struct molmo_convert_params {
    molmo_dtype type;            /* [MOLMO_DTYPE_BF16] f32, f16, bf16, q8_0, q4_0, q6_k, q4_k */
    molmo_dtype vision_type;     /* [MOLMO_DTYPE_COUNT] the vision tower's type;
                                    MOLMO_DTYPE_COUNT: `type`, but q8_0 when that is q4_0 or
                                    q4_k                                                       */
    const char *name;            /* [NULL] general.name; NULL: the model's repo or directory
                                    name                                                      */
    int n_threads;               /* [0] threads encoding rows; <= 0: one per physical core.
                                    The file is the same for any number                       */
    molmo_convert_progress_fn progress; /* optional                                           */
    void *progress_user;
    molmo_log_fn log;            /* optional                                                  */
    void *log_user;
} molmo_convert_params;

MOLMO_API molmo_convert_params molmo_convert_default_params(void);

/*
 * Loads `model` (anything molmo_model_load accepts: a checkpoint directory, a repo id in the
 * Hugging Face cache, or a GGUF file, which is then re-encoded) and writes `out_path` as one
 * GGUF file. The file appears only when complete (it is written as out_path.part and renamed).
 * `params` may be NULL (defaults). Errors: those of molmo_model_load, MOLMO_ERR_INVALID_ARG (a
 * type that is not one of the seven), MOLMO_ERR_IO (the output cannot be written; the message
 * names it), MOLMO_ERR_FORMAT (a value that does not fit the chosen type: inf/NaN, or beyond
 * f16's range; the message names the tensor), MOLMO_ERR_CANCELLED, MOLMO_ERR_NOMEM.
 * Memory: the source stays mapped; output goes through one 16 MB buffer.
 */
MOLMO_API molmo_status molmo_convert(const char *model, const char *out_path,
                                     const molmo_convert_params *params, molmo_error *err);

/* --- section: bench (issue 8) --- */

/*
 * Measuring this machine and the library on the real shapes of the released models, with
 * weights generated locally (no download); the `molmo bench` command is built on these calls
 * (docs/bench.md). Each speed is meant to be read against a baseline measured in the same run,
 * on the same threads: compute-bound stages (vision, prefill) against the peak of the
 * instructions the kernels use, decode against the memory read bandwidth.
 *
 * Timings are wall-clock, so other work on the machine lowers them: compare figures of one
 * run. None of these calls prints; the measuring ones are for one thread at a time (they
 * start their own threads or use the context's).
 */

/* Bits of molmo_bench_machine_params.what. */
#define MOLMO_BENCH_READ 1u      /* memory read bandwidth                                    */
#define MOLMO_BENCH_FMA 2u       /* f32 FMA peak (AVX-512, else AVX2)                        */
#define MOLMO_BENCH_VNNI 4u      /* int8 vpdpbusd peak (AVX512-VNNI, else AVX-VNNI)          */
#define MOLMO_BENCH_BF16 8u      /* vdpbf16ps peak (AVX512-BF16)                             */
#define MOLMO_BENCH_ALL 15u

typedef struct molmo_bench_machine_params {
    int n_threads;               /* [0] threads measuring together; <= 0: one per physical
                                    core (at most 256)                                        */
    unsigned what;               /* [MOLMO_BENCH_ALL] which baselines                         */
    size_t read_bytes;           /* [1 GiB] buffer the read loop streams (>= 1 MiB); it must
                                    be several times the last-level cache to measure memory  */
    int reps;                    /* [3] best of `reps` passes (1..1000)                       */
    long peak_iters;             /* [4,000,000] iterations of each peak loop per thread, 16
                                    instructions each (1..1e9)                                */
    const molmo_model *model;    /* [NULL] with MOLMO_BENCH_READ: also stream the first
                                    read_bytes of this model's largest weights file where it
                                    lies (the page cache's pages, or the process's copy with
                                    no_mmap): weights_read_gbs                                */
} molmo_bench_machine_params;

MOLMO_API molmo_bench_machine_params molmo_bench_machine_default_params(void);

typedef struct molmo_bench_machine {
    char cpu[64];                /* the CPUID brand string ("unknown CPU" elsewhere)          */
    int n_physical, n_logical;   /* cores this process may run on                             */
    const char *kernels;         /* the kernel set in use: "avx512", "avx2" or "ref"          */
    int n_threads;               /* threads that measured                                     */
    double read_gbs;             /* GB/s (1e9 bytes) read by all threads together             */
    double weights_read_gbs;     /* the same over params->model's weights in place; 0 without */
    double fma_gflops;           /* f32 FMA: 2 FLOP per lane                                  */
    double vnni_gops;            /* vpdpbusd: 2 ops per int8 multiply-add                     */
    double bf16_gflops;          /* vdpbf16ps: 2 FLOP per bf16 product                        */
    const char *fma_isa;         /* "avx512", "avx2" or "none" (static strings)               */
    const char *vnni_isa;        /* "avx512-vnni", "avx-vnni" or "none"                       */
    const char *bf16_isa;        /* "avx512-bf16" or "none"                                   */
    int quant_bf16;              /* 1: with bf16_activations, quantized GEMMs run on AMX-BF16
                                    tiles (weights rounded to bf16); 0: they keep int8        */
    double elapsed_s;            /* time the measurement took                                 */
    double weights_huge_share;   /* after weights_read_gbs: the share of params->model's largest
                                    file, of what of it is resident, that the kernel maps with
                                    2 MiB pages (0..1), or -1 where unknown or not measured. A
                                    file written in small pieces sits in the page cache in
                                    small pages until evicted, and maps with 4 KiB pages      */
} molmo_bench_machine;

/*
 * Measures the baselines `params->what` asks for (params may be NULL: defaults) on a pool of
 * n_threads threads. A baseline the CPU lacks the instructions for, or that was not asked
 * for, is 0; the description fields (cpu ... kernels, the *_isa names) are always filled.
 * Errors: MOLMO_ERR_INVALID_ARG (a field out of range, out NULL), MOLMO_ERR_NOMEM (the read
 * buffer), MOLMO_ERR_INTERNAL (threads could not be started).
 */
MOLMO_API molmo_status molmo_bench_machine_measure(const molmo_bench_machine_params *params,
                                                   molmo_bench_machine *out, molmo_error *err);

/* Physical cores this process may run on (>= 1): the default thread count everywhere. */
MOLMO_API int molmo_bench_physical_cores(void);

/* ---- synthetic models ---------------------------------------------------------------------- */

/* Names of the released models whose shapes can be generated: i = 0, 1, ... gives
 * "molmoe-1b", "molmo-7b-o", "molmo-7b-d", "molmo-72b", then NULL. *repo (may be NULL)
 * receives the Hugging Face repo id ("allenai/MolmoE-1B-0924", ...). */
MOLMO_API const char *molmo_bench_preset(int i, const char **repo);

typedef enum molmo_bench_weights {
    MOLMO_BENCH_WEIGHTS_RANDOM = 0, /* uniform in [-0.05, 0.05) (norm weights around 1) from
                                       the seed, so MoE routing spreads over the experts as
                                       with a trained model; writes every byte             */
    MOLMO_BENCH_WEIGHTS_ZEROS       /* a sparse file of zeros: instant and without disk use,
                                       but every MoE token ties and picks experts 0..k-1     */
} molmo_bench_weights;

/* Static name: "random" or "zeros". */
MOLMO_API const char *molmo_bench_weights_name(molmo_bench_weights w);

typedef struct molmo_bench_progress {
    const char *phase;           /* "weights": writing the checkpoint; "convert": the GGUF   */
    const char *tensor;          /* convert: the tensor being written; otherwise NULL         */
    uint64_t bytes_done, bytes_total;
    double elapsed_s;            /* since the phase began                                     */
} molmo_bench_progress;

/* Called from the calling thread, at most every 16 MB or so; return non-zero to stop
 * (MOLMO_ERR_CANCELLED; nothing incomplete is left that a later call could take as valid). */
typedef int (*molmo_bench_progress_fn)(void *user, const molmo_bench_progress *p);

typedef struct molmo_bench_model_params {
    molmo_dtype type;            /* [MOLMO_DTYPE_Q8_0] the language model's matrices, as in
                                    molmo_convert_params. MOLMO_DTYPE_BF16 with vision_type
                                    COUNT or BF16: the bf16 checkpoint itself, no GGUF      */
    molmo_dtype vision_type;     /* [MOLMO_DTYPE_COUNT] as molmo_convert_params.vision_type   */
    molmo_bench_weights weights; /* [MOLMO_BENCH_WEIGHTS_RANDOM]                              */
    uint64_t seed;               /* [1] random weights: the same seed gives the same bytes,
                                    for any number of threads                                 */
    int n_threads;               /* [0] threads generating and converting; <= 0: physical
                                    cores                                                     */
    molmo_bench_progress_fn progress; /* optional                                             */
    void *progress_user;
    molmo_log_fn log;            /* optional: what is reused or generated, and why            */
    void *log_user;
} molmo_bench_model_params;

MOLMO_API molmo_bench_model_params molmo_bench_model_default_params(void);

/*
 * Makes the full-size model `preset` (a name from molmo_bench_preset) available under `dir`
 * (created if missing; its parent must exist) and writes the path to load into out[cap]:
 *   dir/<preset>-<weights>/            the checkpoint as the hub lays it out: config.json,
 *                                      model.safetensors (bf16), and a generated byte-level
 *                                      BPE tokenizer (tokenizer.json, tokenizer_config.json)
 *                                      with the model's real EOS and image-token ids, and the
 *                                      released preprocessor_config.json; molmo-bench.json
 *                                      (written last) records what was generated
 *   dir/<preset>-<weights>.<type>[.vision-<vt>].gguf   molmo_convert of it, when asked for
 *                                      (.vision-<vt> when vision_type is given)
 * What is already there and valid (same preset, weights and seed; complete; loads) is reused;
 * anything else is generated again. *reused (may be NULL) is set to 1 when nothing had to be
 * written. Before writing, the free space of `dir` is checked against what will be written.
 * Errors: MOLMO_ERR_INVALID_ARG (an unknown preset, the message lists the known ones; not a
 * weight type; out too small), MOLMO_ERR_IO (cannot create or write; "not enough disk space
 * in DIR: X GB needed, Y GB free"), MOLMO_ERR_CANCELLED, MOLMO_ERR_NOMEM, and those of
 * molmo_convert.
 */
MOLMO_API molmo_status molmo_bench_model_create(const char *preset, const char *dir,
                                                const molmo_bench_model_params *params,
                                                char *out, size_t cap, int *reused,
                                                molmo_error *err);

/* ---- stages -------------------------------------------------------------------------------- */

/* What a model costs, counted from its configuration and the stored types of its tensors. */
typedef struct molmo_bench_costs {
    double vision_flop_per_crop; /* patch embedding, the ViT blocks that run (up to the deeper
                                    feature layer), attention included, and the connector
                                    (pooling and projector): 2 per multiply-add              */
    double prefill_flop;         /* the language model on n_prompt tokens from position 0:
                                    every matrix (MoE: router + top-k experts per token),
                                    causal attention, and the LM head on the last position    */
    double decode_flop;          /* one more token at position n_prompt                       */
    uint64_t decode_bytes;       /* weight bytes that decode step reads: every language-model
                                    matrix and vector except the token embedding (one row),
                                    for MoE only the top-k experts of each layer; KV cache not
                                    included                                                  */
    uint64_t vision_bytes, llm_bytes; /* all weights of each side as stored                   */
    molmo_dtype vision_type;     /* stored type of the ViT's MLP matrices                     */
    molmo_dtype llm_type;        /* stored type of the language model's matrices that hold the
                                    most bytes (MoE: the experts; dense: the MLP)             */
} molmo_bench_costs;

/* Fills *out for a prompt of n_prompt tokens (>= 1). MOLMO_ERR_INVALID_ARG for NULL or
 * n_prompt < 1. */
MOLMO_API molmo_status molmo_bench_costs_get(const molmo_model *model, int n_prompt,
                                             molmo_bench_costs *out, molmo_error *err);

/* Times of one stage over its repetitions. */
typedef struct molmo_bench_stat {
    double mean_s, sd_s;         /* sd: sample standard deviation (0 for one repetition)      */
    double best_s;
    int reps;
} molmo_bench_stat;

/*
 * Vision: one crop of fixed pseudo-random pixels (all real, mask 1) through molmo_encode_crops,
 * once to warm up, then `reps` timed runs (1..1000). *per_crop: seconds per crop.
 */
MOLMO_API molmo_status molmo_bench_vision(molmo_context *ctx, int reps,
                                          molmo_bench_stat *per_crop, molmo_error *err);

typedef struct molmo_bench_prefill_result {
    molmo_bench_stat time;       /* seconds to run the whole prompt                           */
    int n_prompt;                /* its tokens: BOS + image tokens + text                     */
    int n_crops;
    double image_s;              /* preprocessing + vision of the first call (not in `time`)  */
} molmo_bench_prefill_result;

/*
 * Prefill: molmo_generate(image, one user message `prompt`, no new tokens, max_crops as in
 * molmo_generate_params; 0 = the model's) once, which encodes the image and keeps its
 * features, then `reps` times (1..1000) the KV cache is emptied and the whole prompt runs
 * again. The context is left with the prompt in its KV cache (ready for molmo_bench_decode).
 */
MOLMO_API molmo_status molmo_bench_prefill(molmo_context *ctx, const molmo_image *image,
                                           const char *prompt, int max_crops, int reps,
                                           molmo_bench_prefill_result *out, molmo_error *err);

/*
 * Decode: `n_tokens` (1..n_ctx) steps after what the context's KV cache holds (a prompt run
 * by molmo_generate or molmo_bench_prefill; an empty cache starts from BOS), each feeding the
 * greedy token back, without stopping at EOS; `reps` times (1..1000) from the same position.
 * *per_token: seconds per step. The KV cache is cut back to where it was afterwards.
 * MOLMO_ERR_TOO_LARGE when the steps do not fit the context.
 */
MOLMO_API molmo_status molmo_bench_decode(molmo_context *ctx, int n_tokens, int reps,
                                          molmo_bench_stat *per_token, molmo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MOLMO_H */

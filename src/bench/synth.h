/* synth.h — internals of the benchmark models (include/molmo.h, section bench) shared by
 * synth.c, synth_fill.c and synth_text.c. */
#ifndef MOLMO_BENCH_SYNTH_H
#define MOLMO_BENCH_SYNTH_H

#include <stdint.h>

#include "molmo.h"

/* Where the generated tokenizer puts its special tokens (fact sheet §6). */
typedef struct molmo_bench_text_ids {
    int eos;          /* <|endoftext|>, also the BOS                                      */
    int image_start;  /* <im_start>; <im_end>, <im_patch>, <im_col>, <|image|> follow      */
} molmo_bench_text_ids;

/* Writes dir/tokenizer.json (byte-level BPE with the ids above), dir/tokenizer_config.json and
 * dir/preprocessor_config.json (the released values). Errors name the file. */
molmo_status molmo_bench_write_text_files(const char *dir, const molmo_bench_text_ids *ids,
                                          molmo_error *err);

/* Overwrites every tensor of the bf16 safetensors file `path` with uniform values in
 * [-0.05, 0.05) (1-D norm weights: 1 +- 0.05) from `seed`; the bytes depend only on the seed,
 * not on n_threads (<= 0: physical cores). Reports phase "weights" through `progress` (may be
 * NULL) from the calling thread: once before any write (0 bytes), as it goes, and once at the
 * end (every byte); MOLMO_ERR_CANCELLED when it asks to stop, MOLMO_ERR_IO
 * naming the file when a write fails (a full disk). */
molmo_status molmo_bench_fill_random(const char *path, uint64_t seed, int n_threads,
                                     molmo_bench_progress_fn progress, void *user,
                                     molmo_error *err);

#endif

/* synth_text.c — the text files of a generated benchmark checkpoint: a small byte-level BPE
 * tokenizer.json with the model's real special-token ids, tokenizer_config.json and the
 * released preprocessor_config.json.
 *
 * Why generate a tokenizer rather than copy one: the library must not depend on the source tree
 * (the fixtures) or on a download, and timing only needs (a) the EOS and image-token ids where
 * the model has them (fact sheet §6: image tokens start at vocab_size; EOS per family), so
 * the prompt hits the embedding rows the real one does, and (b) about as many text tokens as
 * the real tokenizer gives: the 256 byte symbols plus whole-word merges for the words of the
 * prompts `molmo bench` uses (" User: Describe this image. Assistant:" is 9 tokens, as with
 * the released tokenizers). Generated ids without a vocabulary entry decode to nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "bench/synth.h"
#include "io/path.h"

/* Words that get whole-word merges (as the pre-tokenizer splits them, with their space). */
static const char *const words[] = {" User", " Assistant", " Describe", " this", " image",
                                    " What", " is", " in", " the", " picture"};
enum { MAX_SYMS = 256 + 128 };

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100 upwards, in byte order. */
static unsigned byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (unsigned)b;
    int n = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) n++;
    return 256u + (unsigned)n;
}

/* The symbol of byte b as a JSON string body (UTF-8, '"' and '\' escaped) appended to s. */
static void put_byte(char *s, size_t cap, int b) {
    unsigned c = byte_char(b);
    size_t n = strlen(s);
    if (n + 4 >= cap) return;
    if (c == '"' || c == '\\') {
        s[n++] = '\\';
        s[n++] = (char)c;
    } else if (c < 0x80) {
        s[n++] = (char)c;
    } else {
        s[n++] = (char)(0xc0 | (c >> 6));
        s[n++] = (char)(0x80 | (c & 0x3f));
    }
    s[n] = '\0';
}

/* The symbol of the first `len` bytes of `w`. */
static void put_prefix(char *s, size_t cap, const char *w, size_t len) {
    s[0] = '\0';
    for (size_t i = 0; i < len; i++) put_byte(s, cap, (unsigned char)w[i]);
}

typedef struct vocab {
    char sym[MAX_SYMS][48];
    int n;
} vocab;

static int vocab_find(const vocab *v, const char *s) {
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->sym[i], s)) return i;
    return -1;
}

/* Vocabulary (bytes, then every prefix of every word) and the merges that build the words. */
static void write_model(FILE *f, vocab *v) {
    for (int b = 0; b < 256; b++) {
        v->sym[v->n][0] = '\0';
        put_byte(v->sym[v->n++], sizeof v->sym[0], b);
    }
    fputs("\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
          "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
          "\"byte_fallback\":false,\"merges\":[", f);
    int first = 1;
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t len = strlen(words[w]);
        for (size_t k = 2; k <= len && v->n < MAX_SYMS; k++) {
            char whole[48], left[48], right[48];
            put_prefix(whole, sizeof whole, words[w], k);
            if (vocab_find(v, whole) >= 0) continue;
            put_prefix(left, sizeof left, words[w], k - 1);
            put_prefix(right, sizeof right, words[w] + k - 1, 1);
            fprintf(f, "%s\"%s %s\"", first ? "" : ",", left, right);
            first = 0;
            snprintf(v->sym[v->n++], sizeof v->sym[0], "%s", whole);
        }
    }
    fputs("],\"vocab\":{", f);
    for (int i = 0; i < v->n; i++) fprintf(f, "%s\"%s\":%d", i ? "," : "", v->sym[i], i);
    fputs("}}}\n", f);
}

static void added(FILE *f, int id, const char *content, int last) {
    fprintf(f, "{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
            "\"rstrip\":false,\"normalized\":false,\"special\":true}%s", id, content,
            last ? "" : ",");
}

static molmo_status write_tokenizer(const char *path, const molmo_bench_text_ids *ids,
                                    molmo_error *err) {
    static const char *const image[5] = {"<im_start>", "<im_end>", "<im_patch>", "<im_col>",
                                         "<|image|>"};
    vocab *v = molmo_calloc(1, sizeof *v); /* 18 KB: kept off the stack */
    if (!v) return molmo_err(err, MOLMO_ERR_NOMEM, "tokenizer: out of memory");
    FILE *f = fopen(path, "w");
    if (!f) {
        molmo_free(v);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot create", path);
    }
    fputs("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[", f);
    added(f, ids->eos, "<|endoftext|>", 0);
    for (int i = 0; i < 5; i++) added(f, ids->image_start + i, image[i], i == 4);
    fputs("],\"normalizer\":{\"type\":\"NFC\"},"
          "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
          "\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":null,"
          "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
          "\"trim_offsets\":true,\"use_regex\":true},", f);
    write_model(f, v);
    molmo_free(v);
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) return molmo_err(err, MOLMO_ERR_IO, "%s: write failed", path);
    return MOLMO_OK;
}

static const char preprocessor_config[] =
    "{\"base_image_input_size\":[336,336],\"do_normalize\":true,"
    "\"image_mean\":[0.48145466,0.4578275,0.40821073],\"image_padding_mask\":true,"
    "\"image_patch_size\":14,\"image_processor_type\":\"MolmoImageProcessor\","
    "\"image_std\":[0.26862954,0.26130258,0.27577711],\"image_token_length_h\":12,"
    "\"image_token_length_w\":12,\"max_crops\":12,\"overlap_margins\":[4,4],"
    "\"processor_class\":\"MolmoProcessor\"}\n";

static const char tokenizer_config[] =
    "{\"eos_token\":\"<|endoftext|>\",\"clean_up_tokenization_spaces\":false,"
    "\"add_bos_token\":false,\"add_eos_token\":false}\n";

static molmo_status write_text(const char *dir, const char *name, const char *text,
                               molmo_error *err) {
    char path[4096];
    if (molmo_path_join(path, sizeof path, dir, name) != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        if (f) fclose(f);
        return molmo_err(err, MOLMO_ERR_IO, "%s: cannot write", path);
    }
    return fclose(f) == 0 ? MOLMO_OK : molmo_err(err, MOLMO_ERR_IO, "%s: cannot write", path);
}

molmo_status molmo_bench_write_text_files(const char *dir, const molmo_bench_text_ids *ids,
                                          molmo_error *err) {
    char path[4096];
    if (molmo_path_join(path, sizeof path, dir, "tokenizer.json") != 0)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
    molmo_status s = write_tokenizer(path, ids, err);
    if (s == MOLMO_OK) s = write_text(dir, "tokenizer_config.json", tokenizer_config, err);
    if (s == MOLMO_OK) s = write_text(dir, "preprocessor_config.json", preprocessor_config, err);
    return s;
}

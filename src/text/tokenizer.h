/* tokenizer.h — internals of the tokenizer module (src/text/tokenizer_*.c): the loaded
 * tokenizer, growable buffers, and the steps of the Hugging Face `tokenizers` pipeline
 * (added-token split -> NFC -> pre-tokenizers -> byte-level BPE; ByteLevel decoder).
 *
 * Data flow of encode (tokenizer_encode.c), mirroring `TokenizerImpl::encode_single_sequence`:
 *   text (UTF-8; invalid bytes replaced by U+FFFD first)
 *   -> split on added tokens with normalized=false, leftmost-longest, on the raw text
 *   -> each remaining segment: NFC, then split on added tokens with normalized=true
 *   -> each remaining segment: pre-tokenizers in order (Split regex, ByteLevel regex)
 *   -> each piece: byte-level BPE over its UTF-8 bytes (byte b is the symbol byte_id[b])
 * The byte-level alphabet (Ġ for space, ...) never has to be materialised: BPE symbols are ids
 * and the alphabet appears only in token strings (id -> token). */
#ifndef MOLMO_TEXT_TOKENIZER_H
#define MOLMO_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"
#include "text/tokenizer_regex.h"

/* ---- growable buffers (molmo_malloc based; 0 = ok, -1 = out of memory) ------------------- */
typedef struct molmo_tok_bytes {
    char *p;
    size_t n, cap;
} molmo_tok_bytes;

typedef struct molmo_tok_ids {
    int32_t *v;
    size_t n, cap;
} molmo_tok_ids;

int molmo_tok_bytes_reserve(molmo_tok_bytes *b, size_t extra);
int molmo_tok_bytes_append(molmo_tok_bytes *b, const void *s, size_t n);
void molmo_tok_bytes_free(molmo_tok_bytes *b);
int molmo_tok_ids_reserve(molmo_tok_ids *v, size_t extra);
int molmo_tok_ids_push(molmo_tok_ids *v, int32_t id);
void molmo_tok_ids_free(molmo_tok_ids *v);

/* ---- the loaded tokenizer ------------------------------------------------------------------ */
typedef struct molmo_tok_span {
    uint32_t off, len;
} molmo_tok_span;

#define MOLMO_TOK_NO_SPAN UINT32_MAX /* .len of an id without a string */

enum molmo_tok_pre_kind { MOLMO_TOK_PRE_SPLIT = 0, MOLMO_TOK_PRE_BYTELEVEL };

/* tokenizers' SplitDelimiterBehavior */
enum molmo_tok_behavior {
    MOLMO_TOK_REMOVED = 0,
    MOLMO_TOK_ISOLATED,
    MOLMO_TOK_MERGED_WITH_PREVIOUS,
    MOLMO_TOK_MERGED_WITH_NEXT,
    MOLMO_TOK_CONTIGUOUS
};

typedef struct molmo_tok_pretok {
    int kind;             /* molmo_tok_pre_kind */
    int behavior;         /* Split: molmo_tok_behavior; ByteLevel's regex split is Isolated */
    int invert;           /* Split */
    int add_prefix_space; /* ByteLevel */
    molmo_tok_regex *re;  /* Split pattern; ByteLevel: GPT-2 regex or NULL (use_regex false) */
} molmo_tok_pretok;

#define MOLMO_TOK_MAX_PRETOK 8

typedef struct molmo_tok_added {
    molmo_tok_span content; /* in pool */
    molmo_tok_span match;   /* what is matched: content, or NFC(content) when normalized */
    int32_t id;
    uint8_t special, normalized;
} molmo_tok_added;

/* Byte trie of added-token strings for leftmost-longest matching. Children of a node form a
 * linked list (added vocabularies are small: 1 to a few hundred strings). */
typedef struct molmo_tok_trie_node {
    int32_t child, sibling;
    int32_t added; /* index into tok->added of the string ending here, or -1 */
    uint8_t byte;
} molmo_tok_trie_node;

typedef struct molmo_tok_trie {
    molmo_tok_trie_node *nodes; /* nodes[0] is the root */
    uint32_t n, cap;
    uint8_t first[256];         /* 1 when some string starts with this byte */
} molmo_tok_trie;

/* Open-addressing hash slots of the vocabulary (string -> id). */
typedef struct molmo_tok_vslot {
    uint32_t hash;
    int32_t id; /* -1 = empty */
    molmo_tok_span key;
} molmo_tok_vslot;

/* Ids are below 2^20 - 1 and ranks below 2^24, so a merge is one 64-bit slot:
 * left << 44 | right << 24 | rank (all ones = empty). Eight bytes a slot keep the 151k Qwen2
 * merges in 2 MB: the BPE loop's lookups are mostly cache misses, and this halves them. */
#define MOLMO_TOK_MAX_VOCAB ((1 << 20) - 1)
#define MOLMO_TOK_MAX_MERGES ((1 << 24) - 1)
#define MOLMO_TOK_MERGE_EMPTY UINT64_MAX

struct molmo_tokenizer {
    char *path;                   /* tokenizer.json it came from ("" from memory) */
    char *pool;                   /* token strings, decoded bytes, added-token strings */
    size_t n_pool, cap_pool;

    int32_t n_vocab;              /* highest id + 1 */
    molmo_tok_span *tok_str;      /* [n_vocab] id -> token string */
    molmo_tok_span *tok_bytes;    /* [n_vocab] id -> the bytes the ByteLevel decoder gives */
    uint8_t *tok_flags;           /* [n_vocab] MOLMO_TOK_F_* */

    molmo_tok_vslot *vocab;       /* model vocabulary, string -> id */
    uint32_t vocab_mask;
    uint32_t max_key_len;         /* longest vocabulary string, in bytes */
    uint64_t *merges;             /* packed slots, see MOLMO_TOK_MERGE_EMPTY */
    uint32_t merges_mask, n_merges;
    int32_t *merge_new_id;        /* [rank] -> the merged token */
    int32_t byte_id[256];         /* vocabulary id of each byte's byte-level character, or -1 */
    uint32_t *byte_pair_rank;     /* [a << 8 | b] rank of merging byte_id[a], byte_id[b] (or
                                     UINT32_MAX): half of BPE's pair lookups, from 256 KB that
                                     stay in cache instead of the merge table */
    int ignore_merges;
    int32_t unk_id;               /* -1: characters without a token are dropped (reference) */
    int fuse_unk;

    molmo_tok_added *added;
    uint32_t n_added;
    molmo_tok_trie trie_raw;      /* added tokens with normalized=false */
    molmo_tok_trie trie_norm;     /* added tokens with normalized=true */

    int nfc;                      /* normalizer: 0 none, 1 NFC */
    molmo_tok_pretok pre[MOLMO_TOK_MAX_PRETOK];
    int n_pre;

    /* tokenizer_config.json */
    int32_t eos_id, bos_id, pad_id;
    int cleanup;                  /* clean_up_tokenization_spaces */
};

#define MOLMO_TOK_F_ADDED 1
#define MOLMO_TOK_F_SPECIAL 2

/* ---- loading (tokenizer_load.c, tokenizer_vocab.c) ----------------------------------------- */

/* UTF-8 of the byte-level character of byte b (GPT-2 bytes_to_unicode: '!'..'~', U+00A1..U+00AC
 * and U+00AE..U+00FF stand for themselves, the other 68 bytes for U+0100..U+0143). Returns 1
 * or 2, the number of bytes written. */
size_t molmo_tok_byte_char(unsigned char b, char out[2]);
/* The byte a byte-level character stands for, or -1 when cp is not in the alphabet. */
int molmo_tok_char_byte(int32_t cp);

/* Hash of a byte string (the vocabulary and the per-call piece cache use it). */
uint32_t molmo_tok_hash(const void *s, size_t n);
/* Model-vocabulary id of a token string, or -1. */
int32_t molmo_tok_vocab_find(const molmo_tokenizer *tok, const char *s, size_t n);
/* Model-vocabulary id of the token whose byte-level spelling encodes the raw bytes s, or -1. */
int32_t molmo_tok_vocab_find_bytes(const molmo_tokenizer *tok, const char *s, size_t n);
/* Rank and result of merging (left, right), or 0 when no such merge exists. */
int molmo_tok_merge_find(const molmo_tokenizer *tok, int32_t left, int32_t right, uint32_t *rank,
                         int32_t *new_id);
/* Fills tok->byte_pair_rank once vocabulary and merges are loaded. 0 ok, -1 out of memory. */
int molmo_tok_build_byte_pairs(molmo_tokenizer *tok);
/* Hash-table slot of a pair key (left << 20 | right). */
static inline uint32_t molmo_tok_pair_slot(uint64_t key40, uint32_t mask) {
    return (uint32_t)((key40 * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

/* Builds the "model" section (BPE vocab and merges) from a parsed tokenizer.json. */
struct molmo_tj_doc;
molmo_status molmo_tok_load_model(molmo_tokenizer *tok, const struct molmo_tj_doc *doc,
                                  uint32_t model, const char *name, molmo_error *err);
/* Appends bytes to the pool; returns the span, or len = MOLMO_TOK_NO_SPAN when out of memory. */
molmo_tok_span molmo_tok_pool_add(molmo_tokenizer *tok, const void *s, size_t n);

/* Builds a trie over the added tokens selected by `normalized`. 0 ok, -1 out of memory. */
int molmo_tok_trie_build(molmo_tok_trie *t, const molmo_tokenizer *tok, int normalized);
void molmo_tok_trie_free(molmo_tok_trie *t);
/* Longest added-token string of the trie that starts at s[0] (n bytes available): returns its
 * length and sets *added (index into tok->added), or 0 when none does. */
size_t molmo_tok_trie_longest(const molmo_tok_trie *t, const char *s, size_t n, int32_t *added);

/* ---- UTF-8 and NFC (tokenizer_unicode.c) ----------------------------------------------------- */

/* Length of the longest valid UTF-8 prefix of s. */
size_t molmo_tok_utf8_valid_prefix(const char *s, size_t n);
/* Appends s with every maximal invalid subsequence replaced by U+FFFD (Rust from_utf8_lossy,
 * WHATWG). With final = 0 an incomplete but so far valid sequence at the end is not consumed:
 * *consumed says how much was. 0 ok, -1 out of memory. */
int molmo_tok_utf8_lossy(const char *s, size_t n, int final, molmo_tok_bytes *out,
                         size_t *consumed);

typedef struct molmo_tok_nfc_scratch {
    int32_t *u;
    size_t cap;
} molmo_tok_nfc_scratch;
/* Appends NFC(s) (s valid UTF-8). Runs utf8proc only on the stretches around characters that
 * NFC can change; everything else is copied (see the proof sketch in tokenizer_unicode.c).
 * 0 ok, -1 out of memory. */
int molmo_tok_nfc(const char *s, size_t n, molmo_tok_bytes *out, molmo_tok_nfc_scratch *sc);
/* The same through utf8proc over the whole string: the reference the fast path is tested with. */
int molmo_tok_nfc_reference(const char *s, size_t n, molmo_tok_bytes *out,
                            molmo_tok_nfc_scratch *sc);
void molmo_tok_nfc_scratch_free(molmo_tok_nfc_scratch *sc);

/* ---- BPE (tokenizer_bpe.c) ------------------------------------------------------------------- */

/* Per-call BPE state: symbol arrays, a merge heap and the cache of pieces already encoded. */
typedef struct molmo_tok_bpe_state molmo_tok_bpe_state;
molmo_tok_bpe_state *molmo_tok_bpe_state_new(void);
void molmo_tok_bpe_state_free(molmo_tok_bpe_state *st);
/* Appends the BPE tokens of one piece (raw UTF-8 bytes) to out. 0 ok, -1 out of memory. */
int molmo_tok_bpe(const molmo_tokenizer *tok, molmo_tok_bpe_state *st, const char *piece,
                  size_t n, molmo_tok_ids *out);
/* The same without the cache and with the plain quadratic merge loop: the reference the heap
 * and the cache are tested against. */
int molmo_tok_bpe_reference(const molmo_tokenizer *tok, const char *piece, size_t n,
                            molmo_tok_ids *out);

/* ---- encode (tokenizer_encode.c) ------------------------------------------------------------- */

/* Called for every piece that reaches the model (raw bytes) and for every added token
 * (added_id >= 0, s = the matched text). For tests and debugging. */
typedef void (*molmo_tok_piece_fn)(void *user, const char *s, size_t n, int32_t added_id);

#define MOLMO_TOK_ENC_REFERENCE 1 /* PCRE2 for every regex, reference NFC and BPE */

molmo_status molmo_tok_encode_ex(const molmo_tokenizer *tok, const char *text, size_t len,
                                 unsigned flags, molmo_tok_ids *out, molmo_tok_piece_fn fn,
                                 void *user, molmo_error *err);

/* ---- decode (tokenizer_decode.c) ------------------------------------------------------------- */

/* Appends decode(ids) to out: token bytes concatenated (special tokens dropped with
 * MOLMO_DECODE_SKIP_SPECIAL, unknown ids dropped as the reference does), then UTF-8 decoded
 * lossily, then cleaned up when asked (or when the config says so and flags leave it). */
molmo_status molmo_tok_decode_append(const molmo_tokenizer *tok, const int32_t *ids, size_t n,
                                     unsigned flags, molmo_tok_bytes *out, molmo_error *err);
/* transformers' clean_up_tokenization, in place on s[0..*n) (it only deletes spaces). */
void molmo_tok_cleanup(char *s, size_t *n);

/* ---- prompt (tokenizer_prompt.c) ------------------------------------------------------------- */

/* Appends the text part of a Molmo prompt (see molmo_tokenizer_encode_prompt). */
molmo_status molmo_tok_prompt_append(const molmo_tokenizer *tok, const char *const *messages,
                                     const size_t *lens, size_t n_messages, molmo_tok_ids *out,
                                     molmo_error *err);

#endif

/* tokenizer_regex.h — the regexes of Split pre-tokenizers and of ByteLevel(use_regex), with the
 * match semantics of the reference (Hugging Face tokenizers runs them with Oniguruma, Ruby
 * syntax; here they run on PCRE2 with UTF + UCP + JIT after a small syntax translation). */
#ifndef MOLMO_TEXT_TOKENIZER_REGEX_H
#define MOLMO_TEXT_TOKENIZER_REGEX_H

#include <stddef.h>

#include "molmo.h"

typedef struct molmo_tok_regex molmo_tok_regex;

/* The regex ByteLevel uses when `use_regex` is true (GPT-2's, built into the reference). */
extern const char molmo_tok_gpt2_pattern[];

/* Compiles an Oniguruma-syntax pattern (or, with `literal`, a plain string to split on).
 * Constructs whose meaning differs between the two engines are translated (\s, \S, \v, \uXXXX,
 * {,n}, (?m)) or refused with MOLMO_ERR_UNSUPPORTED naming them (\w, \b, \h, class
 * intersection, ...). `ctx` prefixes messages (e.g. "tokenizer.json: pre_tokenizer"). */
molmo_status molmo_tok_regex_compile(const char *pattern, size_t len, int literal,
                                     const char *ctx, molmo_tok_regex **out, molmo_error *err);
void molmo_tok_regex_free(molmo_tok_regex *re);

/* Iteration state of one search over one subject (Oniguruma find_iter rules: an empty match
 * right where the previous match ended is skipped by advancing one character). */
typedef struct molmo_tok_match_iter {
    const char *s;
    size_t len;
    size_t pos;       /* where the next search starts */
    size_t last_end;  /* end of the last reported match, or SIZE_MAX */
    void *md;         /* PCRE2 match data, owned by the caller's scratch (see below) */
    int force_ref;    /* 1: always use PCRE2, never the hand-written scanner */
} molmo_tok_match_iter;

/* Per-thread scratch for matching: PCRE2 match data (allocated through molmo_malloc). */
typedef struct molmo_tok_regex_scratch {
    void *md;
} molmo_tok_regex_scratch;
molmo_status molmo_tok_regex_scratch_init(molmo_tok_regex_scratch *sc, molmo_error *err);
void molmo_tok_regex_scratch_free(molmo_tok_regex_scratch *sc);

/* Starts iterating the matches of `re` over s[0..len) (valid UTF-8, checked by the caller). */
void molmo_tok_match_begin(molmo_tok_match_iter *it, const molmo_tok_regex_scratch *sc,
                           const char *s, size_t len, int force_ref);
/* Next match: 1 and [*ms, *me) set; 0 when there is none; on an engine error (match or heap
 * limit) -status (a negative molmo_status), with err filled. */
int molmo_tok_match_next(const molmo_tok_regex *re, molmo_tok_match_iter *it, size_t *ms,
                         size_t *me, molmo_error *err);

/* Which hand-written scanner (tokenizer_scan.c) replaces PCRE2 for this pattern: 0 = none. */
int molmo_tok_regex_fast_kind(const molmo_tok_regex *re);

#endif

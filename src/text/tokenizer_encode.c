/* tokenizer_encode.c — text -> ids: the encode pipeline of tokenizer.h and the public
 * molmo_tokenizer_encode.
 *
 * Mirrors TokenizerImpl::encode_single_sequence with add_special_tokens=False:
 *   AddedVocabulary::extract_and_normalize   added tokens (raw, then NFC + normalized ones)
 *   PreTokenizer::pre_tokenize               Split / ByteLevel, in order, on every piece
 *   Model::tokenize                          BPE on every piece
 * Pre-tokenizer steps run depth-first (each piece of step k goes through steps k+1.. and BPE
 * before the next piece), so no piece list is ever materialised for the whole text; the ids
 * come out in the reference's order. */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/tokenizer.h"

typedef struct seg {
    size_t start, end;
    int is_match;
} seg;

typedef struct level {
    molmo_tok_bytes prefixed; /* " " + piece (ByteLevel add_prefix_space) */
    seg *segs;
    size_t n_segs, cap_segs;
} level;

typedef struct enc {
    const molmo_tokenizer *tok;
    unsigned flags;
    molmo_tok_ids *out;
    molmo_tok_piece_fn fn;
    void *user;
    molmo_error *err;
    molmo_tok_bpe_state *bpe;
    molmo_tok_regex_scratch rx;
    molmo_tok_bytes norm;
    molmo_tok_nfc_scratch nfc;
    level lv[MOLMO_TOK_MAX_PRETOK];
} enc;

static molmo_status nomem(enc *e) {
    return molmo_err(e->err, MOLMO_ERR_NOMEM, "tokenizer: out of memory while encoding");
}

static molmo_status model(enc *e, const char *s, size_t n) {
    if (e->fn) e->fn(e->user, s, n, -1);
    int rc = (e->flags & MOLMO_TOK_ENC_REFERENCE)
                 ? molmo_tok_bpe_reference(e->tok, s, n, e->out)
                 : molmo_tok_bpe(e->tok, e->bpe, s, n, e->out);
    return rc == 0 ? MOLMO_OK : nomem(e);
}

static int push_seg(level *l, size_t start, size_t end, int is_match) {
    if (l->n_segs == l->cap_segs) {
        size_t cap = l->cap_segs ? l->cap_segs * 2 : 64;
        seg *s = molmo_realloc(l->segs, cap * sizeof *s);
        if (!s) return -1;
        l->segs = s;
        l->cap_segs = cap;
    }
    l->segs[l->n_segs++] = (seg){start, end, is_match};
    return 0;
}

/* Pattern::find_matches: the whole string as alternating non-match / match segments. */
static molmo_status find_matches(enc *e, level *l, const molmo_tok_regex *re, const char *s,
                                 size_t n, int invert) {
    molmo_tok_match_iter it;
    size_t prev = 0, ms, me;
    int r;
    l->n_segs = 0;
    molmo_tok_match_begin(&it, &e->rx, s, n, (e->flags & MOLMO_TOK_ENC_REFERENCE) != 0);
    while ((r = molmo_tok_match_next(re, &it, &ms, &me, e->err)) == 1) {
        if (prev != ms && push_seg(l, prev, ms, invert) != 0) return nomem(e);
        if (push_seg(l, ms, me, !invert) != 0) return nomem(e);
        prev = me;
    }
    if (r < 0) return (molmo_status)-r;
    if (prev != n && push_seg(l, prev, n, invert) != 0) return nomem(e);
    return MOLMO_OK;
}

/* NormalizedString::split: turns (segment, is_match) into kept pieces, in place. After this,
 * is_match = 1 marks a piece to drop (Removed). */
static void apply_behavior(level *l, int behavior) {
    seg *s = l->segs;
    size_t n = l->n_segs, k = 0;
    int prev_match = 0;
    switch (behavior) {
    case MOLMO_TOK_ISOLATED:
        for (size_t i = 0; i < n; i++) s[i].is_match = 0;
        return;
    case MOLMO_TOK_REMOVED: return;
    case MOLMO_TOK_CONTIGUOUS:
    case MOLMO_TOK_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            int merge = behavior == MOLMO_TOK_CONTIGUOUS ? s[i].is_match == prev_match
                                                         : s[i].is_match && !prev_match;
            prev_match = s[i].is_match;
            if (merge && k > 0) {
                s[k - 1].end = s[i].end;
            } else {
                s[k] = s[i];
                s[k++].is_match = 0;
            }
        }
        l->n_segs = k;
        return;
    case MOLMO_TOK_MERGED_WITH_NEXT:
        /* Folded from the right: a match absorbs into the non-match piece that follows it. */
        k = n;
        for (size_t i = n; i-- > 0;) {
            int merge = s[i].is_match && !prev_match;
            prev_match = s[i].is_match;
            if (merge && k < n) {
                s[k].start = s[i].start;
            } else {
                s[--k] = s[i];
                s[k].is_match = 0;
            }
        }
        memmove(s, s + k, (n - k) * sizeof *s);
        l->n_segs = n - k;
        return;
    }
}

static molmo_status pretok(enc *e, int depth, const char *s, size_t n);

/* Isolated and Removed keep or drop each segment on its own, so pieces can go down the
 * pipeline as the matches come, without a segment list. (The PCRE2 match data is shared with
 * deeper levels; each match's offsets are copied out before going deeper.) */
static molmo_status split_streaming(enc *e, int depth, const molmo_tok_pretok *p, const char *s,
                                    size_t n) {
    int removed = p->behavior == MOLMO_TOK_REMOVED;
    int keep_gap = !(removed && p->invert), keep_match = !(removed && !p->invert);
    molmo_tok_match_iter it;
    size_t prev = 0, ms, me;
    int r;
    molmo_status st = MOLMO_OK;
    molmo_tok_match_begin(&it, &e->rx, s, n, (e->flags & MOLMO_TOK_ENC_REFERENCE) != 0);
    while (st == MOLMO_OK && (r = molmo_tok_match_next(p->re, &it, &ms, &me, e->err)) == 1) {
        if (keep_gap && ms > prev) st = pretok(e, depth + 1, s + prev, ms - prev);
        if (st == MOLMO_OK && keep_match) st = pretok(e, depth + 1, s + ms, me - ms);
        prev = me;
    }
    if (st != MOLMO_OK) return st;
    if (r < 0) return (molmo_status)-r;
    return keep_gap && prev < n ? pretok(e, depth + 1, s + prev, n - prev) : MOLMO_OK;
}

/* One pre-tokenizer step on one piece; every resulting non-empty piece goes one level down. */
static molmo_status pretok_step(enc *e, int depth, const char *s, size_t n) {
    const molmo_tok_pretok *p = &e->tok->pre[depth];
    level *l = &e->lv[depth];
    if (p->kind == MOLMO_TOK_PRE_BYTELEVEL && p->add_prefix_space && s[0] != ' ') {
        l->prefixed.n = 0;
        if (molmo_tok_bytes_append(&l->prefixed, " ", 1) != 0 ||
            molmo_tok_bytes_append(&l->prefixed, s, n) != 0)
            return nomem(e);
        s = l->prefixed.p;
        n = l->prefixed.n;
    }
    if (!p->re) return pretok(e, depth + 1, s, n);
    if (p->behavior == MOLMO_TOK_ISOLATED || p->behavior == MOLMO_TOK_REMOVED)
        return split_streaming(e, depth, p, s, n);
    molmo_status st = find_matches(e, l, p->re, s, n, p->invert);
    if (st != MOLMO_OK) return st;
    apply_behavior(l, p->behavior);
    /* Deeper levels use their own scratch, so l->segs stays valid through the recursion. */
    for (size_t i = 0; i < l->n_segs; i++) {
        if (l->segs[i].is_match || l->segs[i].end == l->segs[i].start) continue;
        st = pretok(e, depth + 1, s + l->segs[i].start, l->segs[i].end - l->segs[i].start);
        if (st != MOLMO_OK) return st;
    }
    return MOLMO_OK;
}

static molmo_status pretok(enc *e, int depth, const char *s, size_t n) {
    if (n == 0) return MOLMO_OK; /* PreTokenizedString::split drops empty pieces */
    if (depth == e->tok->n_pre) return model(e, s, n);
    return pretok_step(e, depth, s, n);
}

/* AddedVocabulary::find_matches: leftmost-longest added tokens of trie t in s; the text between
 * goes to `next` (NFC stage or pre-tokenizers). */
static molmo_status split_added(enc *e, const molmo_tok_trie *t, const char *s, size_t n,
                                molmo_status (*next)(enc *, const char *, size_t)) {
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t->first[(unsigned char)s[i]]) continue;
        int32_t a;
        size_t m = molmo_tok_trie_longest(t, s + i, n - i, &a);
        if (!m) continue;
        molmo_status st = next(e, s + done, i - done);
        if (st != MOLMO_OK) return st;
        const molmo_tok_added *ad = &e->tok->added[a];
        if (e->fn) e->fn(e->user, s + i, m, ad->id);
        if (molmo_tok_ids_push(e->out, ad->id) != 0) return nomem(e);
        i += m - 1;
        done = i + 1;
    }
    return next(e, s + done, n - done);
}

static molmo_status after_norm_split(enc *e, const char *s, size_t n) {
    return pretok(e, 0, s, n);
}

/* A segment between raw added tokens: normalize, then split on normalized added tokens. */
static molmo_status segment(enc *e, const char *s, size_t n) {
    if (n == 0) return MOLMO_OK;
    if (e->tok->nfc) {
        e->norm.n = 0;
        int rc = (e->flags & MOLMO_TOK_ENC_REFERENCE) ? molmo_tok_nfc_reference(s, n, &e->norm,
                                                                                &e->nfc)
                                                      : molmo_tok_nfc(s, n, &e->norm, &e->nfc);
        if (rc != 0) return nomem(e);
        s = e->norm.p;
        n = e->norm.n;
    }
    return split_added(e, &e->tok->trie_norm, s, n, after_norm_split);
}

static void enc_free(enc *e) {
    molmo_tok_bpe_state_free(e->bpe);
    molmo_tok_regex_scratch_free(&e->rx);
    molmo_tok_bytes_free(&e->norm);
    molmo_tok_nfc_scratch_free(&e->nfc);
    for (int i = 0; i < MOLMO_TOK_MAX_PRETOK; i++) {
        molmo_tok_bytes_free(&e->lv[i].prefixed);
        molmo_free(e->lv[i].segs);
    }
}

molmo_status molmo_tok_encode_ex(const molmo_tokenizer *tok, const char *text, size_t len,
                                 unsigned flags, molmo_tok_ids *out, molmo_tok_piece_fn fn,
                                 void *user, molmo_error *err) {
    if (!tok || !out || (!text && len))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer encode: NULL argument");
    enc e = {.tok = tok, .flags = flags, .out = out, .fn = fn, .user = user, .err = err};
    molmo_tok_bytes fixed = {0};
    molmo_status st = MOLMO_OK;
    e.bpe = molmo_tok_bpe_state_new();
    if (!e.bpe || molmo_tok_regex_scratch_init(&e.rx, err) != MOLMO_OK) {
        st = nomem(&e);
        goto done;
    }
    /* Invalid UTF-8: one U+FFFD per maximal invalid subsequence, then tokenize (documented in
     * molmo.h; the reference only ever sees valid Unicode strings). */
    if (molmo_tok_utf8_valid_prefix(text, len) != len) {
        if (molmo_tok_utf8_lossy(text, len, 1, &fixed, NULL) != 0) {
            st = nomem(&e);
            goto done;
        }
        text = fixed.p;
        len = fixed.n;
    }
    st = split_added(&e, &tok->trie_raw, text, len, segment);
done:
    molmo_tok_bytes_free(&fixed);
    enc_free(&e);
    return st;
}

molmo_status molmo_tokenizer_encode(const molmo_tokenizer *tok, const char *text, size_t len,
                                    int32_t *ids, size_t cap, size_t *n_ids, molmo_error *err) {
    if (n_ids) *n_ids = 0;
    if (!n_ids || (!ids && cap))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer encode: NULL argument");
    molmo_tok_ids v = {0};
    molmo_status st = molmo_tok_encode_ex(tok, text, len, 0, &v, NULL, NULL, err);
    if (st == MOLMO_OK) {
        *n_ids = v.n;
        if (ids) memcpy(ids, v.v, (v.n < cap ? v.n : cap) * sizeof *ids);
        if (ids && v.n > cap)
            st = molmo_err(err, MOLMO_ERR_INVALID_ARG,
                           "tokenizer encode: output buffer holds %zu ids, %zu needed", cap, v.n);
    }
    molmo_tok_ids_free(&v);
    return st;
}

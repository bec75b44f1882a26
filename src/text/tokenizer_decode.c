/* tokenizer_decode.c — ids -> text: ByteLevel decoding, clean_up_tokenization_spaces, and the
 * streaming detokenizer.
 *
 * Mirrors TokenizerImpl::decode (ids without a token are dropped; with skip_special_tokens the
 * ids whose string is a special added token are dropped before decoding, so bytes on both sides
 * can join into one character) + ByteLevel::decode_chain (bytes of all tokens, then
 * from_utf8_lossy) + transformers' clean_up_tokenization (ten str.replace calls in order). */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/tokenizer.h"

static int want_cleanup(const molmo_tokenizer *tok, unsigned flags) {
    if (flags & MOLMO_DECODE_CLEANUP) return 1;
    if (flags & MOLMO_DECODE_NO_CLEANUP) return 0;
    return tok->cleanup;
}

/* The bytes of an id, or NULL when decoding drops it. */
static const char *id_bytes(const molmo_tokenizer *tok, int32_t id, unsigned flags, size_t *n) {
    if (id < 0 || id >= tok->n_vocab || tok->tok_bytes[id].len == MOLMO_TOK_NO_SPAN) return NULL;
    if ((flags & MOLMO_DECODE_SKIP_SPECIAL) && (tok->tok_flags[id] & MOLMO_TOK_F_SPECIAL))
        return NULL;
    *n = tok->tok_bytes[id].len;
    return tok->pool + tok->tok_bytes[id].off;
}

/* Python str.replace(from, to) in place; `to` is never longer than `from`. */
static size_t replace_all(char *s, size_t n, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;
    while (r < n) {
        if (s[r] == from[0] && r + fl <= n && memcmp(s + r, from, fl) == 0) {
            memcpy(s + w, to, tl);
            w += tl;
            r += fl;
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}

void molmo_tok_cleanup(char *s, size_t *n) {
    static const char *const pairs[][2] = {
        {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    if (!memchr(s, ' ', *n)) return;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        *n = replace_all(s, *n, pairs[i][0], pairs[i][1]);
}

molmo_status molmo_tok_decode_append(const molmo_tokenizer *tok, const int32_t *ids, size_t n,
                                     unsigned flags, molmo_tok_bytes *out, molmo_error *err) {
    if (!tok || !out || (!ids && n))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer decode: NULL argument");
    molmo_tok_bytes raw = {0};
    size_t start = out->n;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *b = id_bytes(tok, ids[i], flags, &k);
        if (b && molmo_tok_bytes_append(&raw, b, k) != 0) goto nomem;
    }
    if (molmo_tok_utf8_lossy(raw.p ? raw.p : "", raw.n, 1, out, NULL) != 0 ||
        molmo_tok_bytes_reserve(out, 0) != 0)
        goto nomem;
    if (want_cleanup(tok, flags)) {
        size_t m = out->n - start;
        molmo_tok_cleanup(out->p + start, &m);
        out->n = start + m;
    }
    out->p[out->n] = '\0';
    molmo_tok_bytes_free(&raw);
    return MOLMO_OK;
nomem:
    molmo_tok_bytes_free(&raw);
    return molmo_err(err, MOLMO_ERR_NOMEM, "tokenizer decode: out of memory");
}

molmo_status molmo_tokenizer_decode(const molmo_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                    unsigned flags, char *out, size_t cap, size_t *out_len,
                                    molmo_error *err) {
    if (out_len) *out_len = 0;
    if (!out_len || (!out && cap))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer decode: NULL argument");
    molmo_tok_bytes b = {0};
    molmo_status st = molmo_tok_decode_append(tok, ids, n_ids, flags, &b, err);
    if (st == MOLMO_OK) {
        *out_len = b.n;
        if (out && cap > b.n) {
            memcpy(out, b.p, b.n + 1);
        } else if (out) {
            memcpy(out, b.p, cap);
            st = molmo_err(err, MOLMO_ERR_INVALID_ARG,
                           "tokenizer decode: output buffer holds %zu bytes, %zu needed", cap,
                           b.n + 1);
        }
    }
    molmo_tok_bytes_free(&b);
    return st;
}

/* ---- streaming --------------------------------------------------------------------------------
 *
 * UTF-8: bytes of an incomplete character wait in `pend` until it completes or turns out
 * invalid; the lossy decoder's choices depend only on bytes already seen, so the pieces add up
 * to the whole-text result.
 *
 * Cleanup: every replaced pattern starts with a space, and only spaces are ever deleted. A
 * match that straddles a cut position c starts before c and contains the character just
 * before c, so the text before c followed by that character is a proper prefix of a pattern:
 * " ", " '", " n", " n'", " 'v", " 'r". Those end in ' ', '\'', 'n', 'v' or 'r'. Cutting after
 * any other (never deleted) character therefore splits the text where no match, at any of the
 * ten stages, can cross, and cleanup(text) = cleanup(before) + cleanup(after). */

struct molmo_detokenizer {
    const molmo_tokenizer *tok;
    unsigned flags;
    int cleanup;
    molmo_tok_bytes pend; /* raw bytes of an incomplete character */
    molmo_tok_bytes text; /* decoded text held back for cleanup */
    molmo_tok_bytes out;  /* what the last call returned */
};

molmo_status molmo_detokenizer_create(const molmo_tokenizer *tok, unsigned flags,
                                      molmo_detokenizer **out, molmo_error *err) {
    if (!tok || !out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "detokenizer: NULL argument");
    *out = molmo_calloc(1, sizeof **out);
    if (!*out) return molmo_err(err, MOLMO_ERR_NOMEM, "detokenizer: out of memory");
    (*out)->tok = tok;
    (*out)->flags = flags;
    (*out)->cleanup = want_cleanup(tok, flags);
    return MOLMO_OK;
}

static int unsafe_end(char c) {
    return c == ' ' || c == '\'' || c == 'n' || c == 'v' || c == 'r';
}

/* Moves the final part of d->text to d->out (everything when `all`). 0 ok, -1 out of memory. */
static int release(molmo_detokenizer *d, int all) {
    const char *s = d->text.p;
    size_t n = d->text.n, c = n;
    if (d->cleanup && !all)
        while (c > 0 && (unsafe_end(s[c - 1]) || (c < n && (s[c] & 0xC0) == 0x80))) c--;
    d->out.n = 0;
    if (molmo_tok_bytes_append(&d->out, s, c) != 0) return -1;
    if (d->cleanup) {
        molmo_tok_cleanup(d->out.p, &d->out.n);
        d->out.p[d->out.n] = '\0';
    }
    memmove(d->text.p, d->text.p + c, n - c);
    d->text.n = n - c;
    return 0;
}

molmo_status molmo_detokenizer_push(molmo_detokenizer *d, int32_t id, const char **text,
                                    size_t *len, molmo_error *err) {
    if (!d || !text || !len)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "detokenizer: NULL argument");
    *text = "";
    *len = 0;
    size_t k, used;
    const char *b = id_bytes(d->tok, id, d->flags, &k);
    if (!b) return MOLMO_OK;
    if (molmo_tok_bytes_append(&d->pend, b, k) != 0 ||
        molmo_tok_utf8_lossy(d->pend.p, d->pend.n, 0, &d->text, &used) != 0 ||
        molmo_tok_bytes_reserve(&d->text, 0) != 0)
        goto nomem;
    memmove(d->pend.p, d->pend.p + used, d->pend.n - used);
    d->pend.n -= used;
    if (release(d, 0) != 0) goto nomem;
    *text = d->out.p;
    *len = d->out.n;
    return MOLMO_OK;
nomem:
    return molmo_err(err, MOLMO_ERR_NOMEM, "detokenizer: out of memory");
}

molmo_status molmo_detokenizer_flush(molmo_detokenizer *d, const char **text, size_t *len,
                                     molmo_error *err) {
    if (!d || !text || !len)
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "detokenizer: NULL argument");
    *text = "";
    *len = 0;
    if (molmo_tok_utf8_lossy(d->pend.p ? d->pend.p : "", d->pend.n, 1, &d->text, NULL) != 0 ||
        molmo_tok_bytes_reserve(&d->text, 0) != 0 || release(d, 1) != 0)
        return molmo_err(err, MOLMO_ERR_NOMEM, "detokenizer: out of memory");
    d->pend.n = 0;
    *text = d->out.p;
    *len = d->out.n;
    return MOLMO_OK;
}

void molmo_detokenizer_reset(molmo_detokenizer *d) {
    if (!d) return;
    d->pend.n = d->text.n = d->out.n = 0;
}

void molmo_detokenizer_free(molmo_detokenizer *d) {
    if (!d) return;
    molmo_tok_bytes_free(&d->pend);
    molmo_tok_bytes_free(&d->text);
    molmo_tok_bytes_free(&d->out);
    molmo_free(d);
}

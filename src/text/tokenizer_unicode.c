/* tokenizer_unicode.c — growable buffers, UTF-8 validation and lossy decoding, and the NFC
 * normalizer of the tokenizer.
 *
 * Lossy decoding follows Rust's String::from_utf8_lossy (what the ByteLevel decoder calls):
 * each maximal invalid subsequence — the longest prefix of a well-formed sequence, or one byte —
 * becomes one U+FFFD (Unicode §3.9 "substitution of maximal subparts", as in WHATWG).
 *
 * NFC runs on each text segment between added tokens (tokenizers' NFC normalizer, which uses
 * the unicode-normalization crate). utf8proc does the work; it gets explicit lengths because
 * texts may contain U+0000 (utf8proc_NFC would stop there). */
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "base/alloc.h"
#include "text/tokenizer.h"

/* ---- buffers --------------------------------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return -1;
        c *= 2;
    }
    void *q = molmo_realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int molmo_tok_bytes_reserve(molmo_tok_bytes *b, size_t extra) {
    if (extra > SIZE_MAX - b->n - 1) return -1;
    return grow((void **)&b->p, &b->cap, b->n + extra + 1, 1);
}

int molmo_tok_bytes_append(molmo_tok_bytes *b, const void *s, size_t n) {
    if (molmo_tok_bytes_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0'; /* reserve keeps one spare byte: output is always NUL-terminated */
    return 0;
}

void molmo_tok_bytes_free(molmo_tok_bytes *b) {
    molmo_free(b->p);
    memset(b, 0, sizeof *b);
}

int molmo_tok_ids_reserve(molmo_tok_ids *v, size_t extra) {
    if (extra > SIZE_MAX / sizeof(int32_t) - v->n) return -1;
    return grow((void **)&v->v, &v->cap, v->n + extra, sizeof(int32_t));
}

int molmo_tok_ids_push(molmo_tok_ids *v, int32_t id) {
    if (v->n == v->cap && molmo_tok_ids_reserve(v, 1) != 0) return -1;
    v->v[v->n++] = id;
    return 0;
}

void molmo_tok_ids_free(molmo_tok_ids *v) {
    molmo_free(v->v);
    memset(v, 0, sizeof *v);
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Examines the sequence at s[0] (avail >= 1 bytes). Returns its length when well-formed;
 * otherwise 0 and *bad = length of the maximal valid prefix (>= 1), or *bad = 0 when the
 * sequence is a valid prefix cut off by the end of the input. */
static size_t seq(const unsigned char *s, size_t avail, size_t *bad) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    else return 0;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    else if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    for (size_t k = 1; k < need; k++) {
        if (k >= avail) {
            *bad = 0;
            return 0;
        }
        unsigned char x = s[k];
        if (k == 1 ? (x < lo || x > hi) : ((x & 0xC0) != 0x80)) {
            *bad = k;
            return 0;
        }
    }
    return need;
}

size_t molmo_tok_utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate; test 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad, k = seq(u + i, n - i, &bad);
        if (!k) return i;
        i += k;
    }
    return n;
}

int molmo_tok_utf8_lossy(const char *s, size_t n, int final, molmo_tok_bytes *out,
                         size_t *consumed) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    if (consumed) *consumed = 0;
    while (i < n) {
        size_t ok = molmo_tok_utf8_valid_prefix(s + i, n - i);
        if (molmo_tok_bytes_append(out, s + i, ok) != 0) return -1;
        i += ok;
        if (i >= n) break;
        size_t bad;
        seq(u + i, n - i, &bad);
        if (bad == 0) { /* a valid prefix cut off by the end */
            if (!final) break;
            bad = n - i;
        }
        if (molmo_tok_bytes_append(out, fffd, 3) != 0) return -1;
        i += bad;
    }
    if (consumed) *consumed = i;
    return 0;
}

/* ---- NFC ------------------------------------------------------------------------------------- */

/* Decodes the (valid) UTF-8 character at s; sets *len. */
static int32_t decode(const unsigned char *s, size_t *len) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((c & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *len = 3;
        return ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* A character is "stable" when NFC leaves it alone and nothing before it can interact with it
 * or with what follows: combining class 0, no canonical decomposition, and not the second
 * element of any composition (utf8proc marks those with comb_index >= 0x8000; Hangul jamo
 * compose algorithmically and are excluded by range). Then NFC(a + b) = NFC(a) + NFC(b) when
 * b starts with a stable character (it blocks reordering and composition across it), and a run
 * of stable characters is its own NFC — so only the stretches from the last stable character
 * before an unstable one to the next stable one need utf8proc. Everything below U+0300 is
 * stable (the first character with NFC_Quick_Check != Yes or ccc != 0 is U+0300). */
static int stable(int32_t cp) {
    if (cp < 0x300) return 1;
    if (cp >= 0x1100 && cp <= 0x11FF) return 0;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    if (p->combining_class != 0) return 0;
    if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return 0; /* canonical */
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return 0;
    return 1;
}

/* Appends NFC(s[0..n)) computed by utf8proc into our own buffers (molmo_malloc). */
static int nfc_utf8proc(const char *s, size_t n, molmo_tok_bytes *out, molmo_tok_nfc_scratch *sc) {
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    utf8proc_ssize_t need = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                                               NULL, 0, opt);
    if (need < 0) return -1; /* only on invalid UTF-8, which callers never pass */
    /* reencode writes UTF-8 over the code point buffer: 4 bytes per code point is enough. */
    if ((size_t)need + 1 > sc->cap) {
        size_t cap = (size_t)need + 1 + (size_t)need / 2;
        int32_t *u = molmo_realloc(sc->u, cap * sizeof *u);
        if (!u) return -1;
        sc->u = u;
        sc->cap = cap;
    }
    utf8proc_ssize_t got = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                                              sc->u, need, opt);
    if (got != need) return -1;
    utf8proc_ssize_t bytes = utf8proc_reencode(sc->u, got, opt);
    if (bytes < 0) return -1;
    return molmo_tok_bytes_append(out, sc->u, (size_t)bytes);
}

int molmo_tok_nfc_reference(const char *s, size_t n, molmo_tok_bytes *out,
                            molmo_tok_nfc_scratch *sc) {
    return nfc_utf8proc(s, n, out, sc);
}

int molmo_tok_nfc(const char *s, size_t n, molmo_tok_bytes *out, molmo_tok_nfc_scratch *sc) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, done = 0, last_stable = 0, len;
    if (molmo_tok_bytes_reserve(out, n) != 0) return -1;
    while (i < n) {
        if (u[i] < 0x80) {
            last_stable = i++;
            continue;
        }
        int32_t cp = decode(u + i, &len);
        if (stable(cp)) {
            last_stable = i;
            i += len;
            continue;
        }
        size_t j = i + len;
        while (j < n && !stable(decode(u + j, &len))) j += len;
        if (molmo_tok_bytes_append(out, s + done, last_stable - done) != 0) return -1;
        if (nfc_utf8proc(s + last_stable, j - last_stable, out, sc) != 0) return -1;
        done = last_stable = i = j;
    }
    return molmo_tok_bytes_append(out, s + done, n - done);
}

void molmo_tok_nfc_scratch_free(molmo_tok_nfc_scratch *sc) {
    molmo_free(sc->u);
    sc->u = NULL;
    sc->cap = 0;
}

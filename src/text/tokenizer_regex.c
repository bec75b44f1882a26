/* tokenizer_regex.c — Oniguruma-syntax regexes of tokenizer.json, run on PCRE2.
 *
 * Mirrors tokenizers' `SysRegex` (onig crate, Ruby syntax) and `onig::FindMatches`. PCRE2 is
 * compiled with UTF + UCP (\p{L}, \p{N}, caseless matching by Unicode simple case folding) and
 * JIT. The translation only touches what the two engines read differently:
 *   \s, \S   Oniguruma's \s is Unicode White_Space; PCRE2 10.42's UCP \s also takes U+180E, which
 *            splits "x \u180ey" differently (tests/data/tokenizers/README.md, trap 4), so \s is
 *            written out as the explicit White_Space class;
 *   \v       vertical tab in Ruby, a class of vertical spaces in PCRE2 -> \x0B;
 *   \uHHHH   Ruby only -> \x{HHHH};  {,n}  Ruby's {0,n} (PCRE2 10.42 reads it literally);
 *   (?m)     Ruby's dot-all -> (?s);  ^ $  always line anchors in Ruby -> PCRE2_MULTILINE.
 * Constructs that differ and are not needed by any known tokenizer (\w \W \b \B \h \H \d \D \X,
 * nested classes, class intersection) are refused rather than silently run differently. */
#include "text/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/tokenizer_scan.h"

const char molmo_tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space (Oniguruma's \s), as the members of a character class. */
static const char ws_members[] = "\\t\\n\\x0B\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}"
                                 "\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
                                 "\\x{3000}";

#define MAX_PATTERN 65536

struct molmo_tok_regex {
    pcre2_code *code;
    int jit;       /* 1 when JIT compilation succeeded */
    int fast_kind; /* MOLMO_TOK_SCAN_* of tokenizer_scan.h, 0 = PCRE2 only */
};

static void *gc_malloc(PCRE2_SIZE n, void *u) {
    (void)u;
    return molmo_malloc(n);
}
static void gc_free(void *p, void *u) {
    (void)u;
    molmo_free(p);
}

typedef struct outbuf {
    char *p;
    size_t n, cap;
    int nomem;
} outbuf;

static void put(outbuf *o, const char *s, size_t n) {
    if (o->nomem) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n + 1) cap *= 2;
        char *q = molmo_realloc(o->p, cap);
        if (!q) {
            o->nomem = 1;
            return;
        }
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}
static void puts_(outbuf *o, const char *s) { put(o, s, strlen(s)); }

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Translates one escape at pat[*i] == '\\'. Returns NULL or the name of what is unsupported. */
static const char *escape(const char *pat, size_t len, size_t *i, int in_class, outbuf *o) {
    if (*i + 1 >= len) return "a trailing backslash";
    char c = pat[*i + 1];
    *i += 2;
    switch (c) {
    case 's':
        if (in_class) {
            puts_(o, ws_members);
        } else {
            puts_(o, "[");
            puts_(o, ws_members);
            puts_(o, "]");
        }
        return NULL;
    case 'S':
        if (in_class) return "\\S inside a character class";
        puts_(o, "[^");
        puts_(o, ws_members);
        puts_(o, "]");
        return NULL;
    case 'v': puts_(o, "\\x0B"); return NULL;
    case 'u':
        if (*i + 4 > len || !is_hex(pat[*i]) || !is_hex(pat[*i + 1]) || !is_hex(pat[*i + 2]) ||
            !is_hex(pat[*i + 3]))
            return "\\u without four hex digits";
        puts_(o, "\\x{");
        put(o, pat + *i, 4);
        puts_(o, "}");
        *i += 4;
        return NULL;
    case 'p':
    case 'P': {
        /* \p{...} is read the same way by both engines; copy through the closing brace. */
        const char *close = *i < len && pat[*i] == '{' ? memchr(pat + *i, '}', len - *i) : NULL;
        if (!close) return "\\p without {...}";
        put(o, pat + *i - 2, (size_t)(close - (pat + *i)) + 3);
        *i = (size_t)(close - pat) + 1;
        return NULL;
    }
    case 'w': return "\\w (Oniguruma and PCRE2 disagree on word characters)";
    case 'W': return "\\W (Oniguruma and PCRE2 disagree on word characters)";
    case 'b': return "\\b (Oniguruma and PCRE2 disagree on word boundaries)";
    case 'B': return "\\B (Oniguruma and PCRE2 disagree on word boundaries)";
    case 'h': return "\\h (a hex digit in Oniguruma, horizontal space in PCRE2)";
    case 'H': return "\\H (a non-hex digit in Oniguruma, non-horizontal space in PCRE2)";
    case 'd': return "\\d (ASCII or Unicode digits depending on the Oniguruma build)";
    case 'D': return "\\D (ASCII or Unicode digits depending on the Oniguruma build)";
    default: break;
    }
    /* Escapes both engines read alike: punctuation, \n \r \t \f \a \e, \x, octal/back
     * references, \A \z \Z \G \k \K. */
    if (strchr("nrtfaexAzZGkK0123456789", c) || !((c >= 'a' && c <= 'z') ||
                                                   (c >= 'A' && c <= 'Z'))) {
        char two[2] = {'\\', c};
        put(o, two, 2);
        return NULL;
    }
    return "an escape PCRE2 and Oniguruma may read differently";
}

/* Translates "(?" groups; returns NULL or what is unsupported. */
static const char *group(const char *pat, size_t len, size_t *i, outbuf *o) {
    size_t j = *i + 2;
    if (j >= len) return "an unterminated group";
    char c = pat[j];
    if (c == ':' || c == '=' || c == '!' || c == '>' || c == '#' || c == '<' || c == '\'') {
        put(o, pat + *i, 3); /* (?<= (?<! (?<name> continue as ordinary text */
        *i += 3;
        return NULL;
    }
    /* Inline options: letters i, m, x and '-', ended by ':' or ')'. */
    puts_(o, "(?");
    for (; j < len && pat[j] != ':' && pat[j] != ')'; j++) {
        if (pat[j] == 'i' || pat[j] == 'x' || pat[j] == '-') put(o, pat + j, 1);
        else if (pat[j] == 'm') puts_(o, "s");
        else return "an inline option other than i, m, x";
    }
    if (j >= len) return "an unterminated group";
    *i = j;
    return NULL;
}

/* Oniguruma (Ruby syntax) -> PCRE2 pattern text. */
static molmo_status translate(const char *pat, size_t len, outbuf *o, const char *ctx,
                              molmo_error *err) {
    int in_class = 0;
    size_t class_start = 0;
    size_t i = 0;
    while (i < len) {
        char c = pat[i];
        const char *bad = NULL;
        if (c == '\\') {
            bad = escape(pat, len, &i, in_class, o);
        } else if (in_class) {
            if (c == ']' && i > class_start) in_class = 0;
            else if (c == '[') bad = "a nested character class";
            else if (c == '&' && i + 1 < len && pat[i + 1] == '&') bad = "class intersection &&";
            if (!bad) put(o, pat + i++, 1);
        } else if (c == '[') {
            in_class = 1;
            put(o, pat + i++, 1);
            if (i < len && pat[i] == '^') put(o, pat + i++, 1);
            class_start = i; /* a ']' right here is a literal in both engines */
        } else if (c == '(' && i + 1 < len && pat[i + 1] == '?') {
            bad = group(pat, len, &i, o);
        } else if (c == '{' && i + 1 < len && pat[i + 1] == ',') {
            size_t j = i + 2;
            while (j < len && pat[j] >= '0' && pat[j] <= '9') j++;
            if (j > i + 2 && j < len && pat[j] == '}') {
                puts_(o, "{0");
                i++;
            } else {
                put(o, pat + i++, 1);
            }
        } else {
            put(o, pat + i++, 1);
        }
        if (bad)
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: regex uses %s", ctx, bad);
    }
    if (in_class) return molmo_err(err, MOLMO_ERR_FORMAT, "%s: regex has an unclosed '['", ctx);
    if (o->nomem) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", ctx);
    return MOLMO_OK;
}

static molmo_status compile_pcre2(const char *text, size_t len, uint32_t opts, const char *ctx,
                                  pcre2_code **out, molmo_error *err) {
    molmo_status st = MOLMO_OK;
    pcre2_general_context *gc = pcre2_general_context_create(gc_malloc, gc_free, NULL);
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    if (!cc) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", ctx);
        goto done;
    }
    /* Ruby's '.' and '$' know only \n as a newline. */
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int ec;
    PCRE2_SIZE eo;
    *out = pcre2_compile((PCRE2_SPTR)text, len, opts, &ec, &eo, cc);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        st = molmo_err(err, ec == PCRE2_ERROR_HEAP_FAILED ? MOLMO_ERR_NOMEM : MOLMO_ERR_FORMAT,
                       "%s: bad regex (at offset %zu of the translated pattern): %s", ctx,
                       (size_t)eo, (const char *)msg);
    }
done:
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(gc);
    return st;
}

molmo_status molmo_tok_regex_compile(const char *pattern, size_t len, int literal,
                                     const char *ctx, molmo_tok_regex **out, molmo_error *err) {
    *out = NULL;
    if (len > MAX_PATTERN)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: regex of %zu bytes is over %d", ctx, len,
                         MAX_PATTERN);
    outbuf o = {0};
    molmo_status st;
    molmo_tok_regex *re = molmo_calloc(1, sizeof *re);
    if (!re) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", ctx);
    if (literal) {
        st = compile_pcre2(pattern, len, PCRE2_UTF | PCRE2_LITERAL, ctx, &re->code, err);
    } else {
        st = translate(pattern, len, &o, ctx, err);
        if (st == MOLMO_OK)
            st = compile_pcre2(o.p ? o.p : "", o.n,
                               PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C,
                               ctx, &re->code, err);
    }
    if (st != MOLMO_OK) goto fail;
    /* JIT is an optimisation: when it fails (no executable memory) the interpreter runs. */
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    re->fast_kind = literal ? 0 : molmo_tok_scan_kind(pattern, len);
    molmo_free(o.p);
    *out = re;
    return MOLMO_OK;
fail:
    molmo_free(o.p);
    molmo_tok_regex_free(re);
    return st;
}

void molmo_tok_regex_free(molmo_tok_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    molmo_free(re);
}

int molmo_tok_regex_fast_kind(const molmo_tok_regex *re) { return re->fast_kind; }

molmo_status molmo_tok_regex_scratch_init(molmo_tok_regex_scratch *sc, molmo_error *err) {
    sc->md = NULL;
    pcre2_general_context *gc = pcre2_general_context_create(gc_malloc, gc_free, NULL);
    if (gc) sc->md = pcre2_match_data_create(1, gc); /* only the whole match is needed */
    pcre2_general_context_free(gc);
    if (!sc->md) return molmo_err(err, MOLMO_ERR_NOMEM, "regex: out of memory");
    return MOLMO_OK;
}

void molmo_tok_regex_scratch_free(molmo_tok_regex_scratch *sc) {
    if (!sc) return;
    pcre2_match_data_free(sc->md);
    sc->md = NULL;
}

void molmo_tok_match_begin(molmo_tok_match_iter *it, const molmo_tok_regex_scratch *sc,
                           const char *s, size_t len, int force_ref) {
    it->s = s;
    it->len = len;
    it->pos = 0;
    it->last_end = SIZE_MAX;
    it->md = sc->md;
    it->force_ref = force_ref;
}

/* Leftmost match starting at or after `from`: 1, 0 (none) or negative (engine error). */
static int search(const molmo_tok_regex *re, molmo_tok_match_iter *it, size_t from, size_t *ms,
                  size_t *me, molmo_error *err) {
    if (re->fast_kind && !it->force_ref)
        return molmo_tok_scan_next(re->fast_kind, it->s, it->len, from, ms, me);
    pcre2_match_data *md = it->md;
    int rc;
    if (re->jit)
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)it->s, it->len, from, 0, md, NULL);
    else
        rc = pcre2_match(re->code, (PCRE2_SPTR)it->s, it->len, from, PCRE2_NO_UTF_CHECK, md,
                         NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its frames on the heap */
        rc = pcre2_match(re->code, (PCRE2_SPTR)it->s, it->len, from,
                         PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        molmo_status code = rc == PCRE2_ERROR_NOMEMORY ? MOLMO_ERR_NOMEM : MOLMO_ERR_TOO_LARGE;
        molmo_err(err, code, "pre-tokenizer regex failed on a %zu-byte piece: %s", it->len,
                  (const char *)msg);
        return -(int)code;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* Byte length of the UTF-8 character at s[i] (the subject is valid UTF-8). */
static size_t char_len(const char *s, size_t i) {
    unsigned char c = (unsigned char)s[i];
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

int molmo_tok_match_next(const molmo_tok_regex *re, molmo_tok_match_iter *it, size_t *ms,
                         size_t *me, molmo_error *err) {
    for (;;) {
        if (it->pos > it->len) return 0;
        int r = search(re, it, it->pos, ms, me, err);
        if (r <= 0) return r;
        if (*ms == *me && *me == it->last_end) {
            /* onig::FindMatches: no empty match right after the previous one. */
            it->pos += it->pos < it->len ? char_len(it->s, it->pos) : 1;
            continue;
        }
        it->pos = *me;
        it->last_end = *me;
        return 1;
    }
}

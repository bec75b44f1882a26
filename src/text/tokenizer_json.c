/* tokenizer_json.c — the strict one-pass JSON reader of tokenizer_json.h.
 *
 * Recursive descent with a depth limit (tokenizer.json nests 6 deep; 128 is plenty and keeps a
 * hostile file from exhausting the stack). Strings are decoded into doc->str as they are read;
 * the input is never modified, so it can be a read-only mapping. */
#include <utf8proc.h>

#include "text/tokenizer_json.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define MAX_DEPTH 128

typedef struct parser {
    molmo_tj_doc *doc;
    const unsigned char *s;
    size_t len, pos;
    const char *name;
    molmo_error *err;
    int nomem;
} parser;

/* Reports "name:line:col: what" for the current position. Line and column are counted only
 * here, so the hot path pays nothing for them. */
static molmo_status fail(parser *p, const char *what) {
    if (p->nomem) return molmo_err(p->err, MOLMO_ERR_NOMEM, "%s: out of memory", p->name);
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else if ((p->s[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return molmo_err(p->err, MOLMO_ERR_FORMAT, "%s:%zu:%zu: invalid JSON: %s", p->name, line, col,
                     what);
}

static uint32_t new_node(parser *p, molmo_tj_type t) {
    molmo_tj_doc *d = p->doc;
    if (d->n_nodes == d->cap_nodes) {
        uint32_t cap = d->cap_nodes ? d->cap_nodes * 2 : 1024;
        if (cap <= d->cap_nodes) {
            p->nomem = 1;
            return MOLMO_TJ_NONE;
        }
        molmo_tj_node *n = molmo_realloc(d->nodes, (size_t)cap * sizeof *n);
        if (!n) {
            p->nomem = 1;
            return MOLMO_TJ_NONE;
        }
        d->nodes = n;
        d->cap_nodes = cap;
    }
    uint32_t i = d->n_nodes++;
    d->nodes[i] = (molmo_tj_node){.type = (uint32_t)t, .off = 0, .len = 0, .end = i + 1};
    return i;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        p->pos++;
    }
}

/* Length of the valid UTF-8 sequence starting at s[0] (Unicode Table 3-7), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return 0;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}


/* Decodes one escape after the backslash at p->pos into o; returns bytes written, 0 on error. */
static size_t escape(parser *p, char *o) {
    const unsigned char *s = p->s;
    unsigned char c = s[p->pos++];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        *o = to[hit - from];
        return 1;
    }
    if (c != 'u') return 0;
    unsigned cp, lo;
    if (p->pos + 4 > p->len || !hex4(s + p->pos, &cp)) return 0;
    p->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* lone trailing surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->pos + 6 > p->len || s[p->pos] != '\\' || s[p->pos + 1] != 'u' ||
            !hex4(s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return 0; /* lone leading surrogate */
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    /* callers pass scalar values only (surrogates are paired or rejected above) */
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
}

/* Reads a string starting after its opening quote into doc->str. */
static molmo_status read_string(parser *p, uint32_t node) {
    molmo_tj_doc *d = p->doc;
    /* A decoded string is never longer than its source text (escapes shrink), so reserving the
     * rest of the input bounds the writes; the string buffer grows geometrically. */
    size_t need = d->n_str + (p->len - p->pos) + 1;
    if (need > d->cap_str) {
        size_t cap = d->cap_str ? d->cap_str : 4096;
        while (cap < need) cap *= 2;
        char *n = molmo_realloc(d->str, cap);
        if (!n) {
            p->nomem = 1;
            return fail(p, "");
        }
        d->str = n;
        d->cap_str = cap;
    }
    char *o = d->str + d->n_str;
    size_t start = d->n_str, w = 0;
    const unsigned char *s = p->s;
    for (;;) {
        if (p->pos >= p->len) return fail(p, "unterminated string");
        unsigned char c = s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len) return fail(p, "unterminated string");
            size_t k = escape(p, o + w);
            if (!k) return fail(p, "bad escape in string (or a lone UTF-16 surrogate)");
            w += k;
        } else if (c < 0x20) {
            return fail(p, "control character in string (must be escaped)");
        } else if (c < 0x80) {
            o[w++] = (char)c;
            p->pos++;
        } else {
            size_t k = utf8_seq(s + p->pos, p->len - p->pos);
            if (!k) return fail(p, "invalid UTF-8 in string");
            memcpy(o + w, s + p->pos, k);
            w += k;
            p->pos += k;
        }
    }
    o[w] = '\0';
    if (start > UINT32_MAX || w > UINT32_MAX) return fail(p, "string too long");
    d->nodes[node].off = (uint32_t)start;
    d->nodes[node].len = (uint32_t)w;
    d->n_str += w + 1;
    return MOLMO_OK;
}

static molmo_status read_number(parser *p, uint32_t node) {
    const unsigned char *s = p->s;
    size_t b = p->pos, i = p->pos;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
    if (s[i] == '0') {
        i++;
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i - b > 64) return fail(p, "number literal too long");
    p->doc->nodes[node].off = (uint32_t)b;
    p->doc->nodes[node].len = (uint32_t)(i - b);
    p->pos = i;
    return MOLMO_OK;
}

static molmo_status read_value(parser *p, int depth);

/* Arrays and objects: children are appended after the container node. */
static molmo_status read_container(parser *p, int depth, int is_obj) {
    uint32_t node = new_node(p, is_obj ? MOLMO_TJ_OBJ : MOLMO_TJ_ARR);
    if (node == MOLMO_TJ_NONE) return fail(p, "");
    if (depth > MAX_DEPTH) return fail(p, "nested too deeply");
    p->pos++; /* '[' or '{' */
    uint32_t count = 0;
    char close = is_obj ? '}' : ']';
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->doc->nodes[node].end = p->doc->n_nodes;
        return MOLMO_OK;
    }
    for (;;) {
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a key string");
            uint32_t k = new_node(p, MOLMO_TJ_STR);
            if (k == MOLMO_TJ_NONE) return fail(p, "");
            p->pos++;
            molmo_status st = read_string(p, k);
            if (st != MOLMO_OK) return st;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
            p->pos++;
        }
        molmo_status st = read_value(p, depth + 1);
        if (st != MOLMO_OK) return st;
        if (count == UINT32_MAX) return fail(p, "too many elements");
        count++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->doc->nodes[node].len = count;
    p->doc->nodes[node].end = p->doc->n_nodes;
    return MOLMO_OK;
}

static molmo_status read_literal(parser *p, const char *word, molmo_tj_type t) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return fail(p, "bad literal");
    if (new_node(p, t) == MOLMO_TJ_NONE) return fail(p, "");
    p->pos += n;
    return MOLMO_OK;
}

static molmo_status read_value(parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of input");
    unsigned char c = p->s[p->pos];
    uint32_t node;
    switch (c) {
    case '{': return read_container(p, depth, 1);
    case '[': return read_container(p, depth, 0);
    case '"':
        node = new_node(p, MOLMO_TJ_STR);
        if (node == MOLMO_TJ_NONE) return fail(p, "");
        p->pos++;
        return read_string(p, node);
    case 't': return read_literal(p, "true", MOLMO_TJ_TRUE);
    case 'f': return read_literal(p, "false", MOLMO_TJ_FALSE);
    case 'n': return read_literal(p, "null", MOLMO_TJ_NULL);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            node = new_node(p, MOLMO_TJ_NUM);
            if (node == MOLMO_TJ_NONE) return fail(p, "");
            return read_number(p, node);
        }
        return fail(p, "unexpected character");
    }
}

molmo_status molmo_tj_parse(molmo_tj_doc *doc, const char *text, size_t len, const char *name,
                            molmo_error *err) {
    memset(doc, 0, sizeof *doc);
    if (!text && len) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: NULL text", name);
    if (len > MOLMO_TJ_MAX_BYTES)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: %zu bytes is over the %zu-byte limit",
                         name, len, MOLMO_TJ_MAX_BYTES);
    doc->text = text;
    parser p = {.doc = doc, .s = (const unsigned char *)text, .len = len, .name = name,
                .err = err};
    /* A UTF-8 byte order mark is not JSON; serde_json refuses it too. */
    molmo_status st = read_value(&p, 0);
    if (st == MOLMO_OK) {
        skip_ws(&p);
        if (p.pos != p.len) st = fail(&p, "trailing characters after the top-level value");
    }
    if (st != MOLMO_OK) molmo_tj_free(doc);
    return st;
}

void molmo_tj_free(molmo_tj_doc *doc) {
    if (!doc) return;
    molmo_free(doc->nodes);
    molmo_free(doc->str);
    memset(doc, 0, sizeof *doc);
}

uint32_t molmo_tj_get(const molmo_tj_doc *doc, uint32_t obj, const char *key) {
    if (!molmo_tj_is(doc, obj, MOLMO_TJ_OBJ)) return MOLMO_TJ_NONE;
    size_t klen = strlen(key);
    uint32_t k = obj + 1;
    for (uint32_t i = 0; i < doc->nodes[obj].len; i++) {
        uint32_t v = k + 1;
        if (doc->nodes[k].len == klen && memcmp(doc->str + doc->nodes[k].off, key, klen) == 0)
            return v;
        k = doc->nodes[v].end;
    }
    return MOLMO_TJ_NONE;
}

uint32_t molmo_tj_at(const molmo_tj_doc *doc, uint32_t arr, uint32_t i) {
    if (!molmo_tj_is(doc, arr, MOLMO_TJ_ARR) || i >= doc->nodes[arr].len) return MOLMO_TJ_NONE;
    uint32_t k = arr + 1;
    while (i--) k = doc->nodes[k].end;
    return k;
}

int molmo_tj_str_eq(const molmo_tj_doc *doc, uint32_t i, const char *s) {
    if (!molmo_tj_is(doc, i, MOLMO_TJ_STR)) return 0;
    size_t n = strlen(s);
    return doc->nodes[i].len == n && memcmp(doc->str + doc->nodes[i].off, s, n) == 0;
}

int molmo_tj_int(const molmo_tj_doc *doc, uint32_t i, int64_t lo, int64_t hi, int64_t *out) {
    if (!molmo_tj_is(doc, i, MOLMO_TJ_NUM)) return 0;
    const char *s = doc->text + doc->nodes[i].off;
    uint32_t n = doc->nodes[i].len, k = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        k = 1;
    }
    int64_t v = 0;
    for (; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return 0; /* fraction or exponent */
        if (v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (s[k] - '0');
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int molmo_tj_bool(const molmo_tj_doc *doc, uint32_t obj, const char *key, int def) {
    uint32_t v = molmo_tj_get(doc, obj, key);
    if (molmo_tj_is(doc, v, MOLMO_TJ_TRUE)) return 1;
    if (molmo_tj_is(doc, v, MOLMO_TJ_FALSE)) return 0;
    return def;
}

int molmo_tj_real(const molmo_tj_doc *doc, uint32_t i, double *out) {
    if (!molmo_tj_is(doc, i, MOLMO_TJ_NUM)) return 0;
    char buf[72];
    uint32_t n = doc->nodes[i].len; /* <= 64, checked by read_number */
    memcpy(buf, doc->text + doc->nodes[i].off, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return 1;
}

const char *molmo_tj_type_name(const molmo_tj_doc *doc, uint32_t i) {
    if (i == MOLMO_TJ_NONE) return "absent";
    switch ((molmo_tj_type)doc->nodes[i].type) {
    case MOLMO_TJ_NULL: return "null";
    case MOLMO_TJ_FALSE:
    case MOLMO_TJ_TRUE: return "a boolean";
    case MOLMO_TJ_NUM: return "a number";
    case MOLMO_TJ_STR: return "a string";
    case MOLMO_TJ_ARR: return "an array";
    case MOLMO_TJ_OBJ: return "an object";
    }
    return "?";
}

/* tokenizer_json.h — a small, strict JSON reader for tokenizer.json and tokenizer_config.json.
 *
 * Why not jansson: it takes ~325 ms (plus ~45 ms to free) on the 7 MB Qwen2 tokenizer.json, most
 * of it allocating one object per string; the load budget is well under 200 ms. This reader
 * makes one pass into a flat node array (16 bytes a value) and one buffer of decoded strings.
 *
 * Strict RFC 8259: no comments, no trailing commas, no NaN, no lone surrogates in \u escapes,
 * raw strings must be valid UTF-8 (serde_json, which the reference uses, refuses the same).
 * Strings may hold U+0000 (\u0000): they are (offset, length) pairs, and each decoded string is
 * also NUL-terminated in the string buffer for convenience. */
#ifndef MOLMO_TEXT_TOKENIZER_JSON_H
#define MOLMO_TEXT_TOKENIZER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "molmo.h"

typedef enum molmo_tj_type {
    MOLMO_TJ_NULL = 0,
    MOLMO_TJ_FALSE,
    MOLMO_TJ_TRUE,
    MOLMO_TJ_NUM,
    MOLMO_TJ_STR,
    MOLMO_TJ_ARR,
    MOLMO_TJ_OBJ
} molmo_tj_type;

/* One JSON value. Values are stored in document order; an object's members are stored as a key
 * (a MOLMO_TJ_STR node) followed by its value. */
typedef struct molmo_tj_node {
    uint32_t type; /* molmo_tj_type */
    uint32_t off;  /* STR: offset of the decoded text in doc->str; NUM: offset of the literal in
                      the input text */
    uint32_t len;  /* STR: decoded bytes; NUM: literal length; ARR: elements; OBJ: members */
    uint32_t end;  /* index of the first node after this value (and its children) */
} molmo_tj_node;

#define MOLMO_TJ_NONE UINT32_MAX

typedef struct molmo_tj_doc {
    const char *text;      /* the input (not owned), for number literals */
    molmo_tj_node *nodes;  /* nodes[0] is the root */
    uint32_t n_nodes, cap_nodes;
    char *str;             /* decoded strings, each followed by a NUL */
    size_t n_str, cap_str;
} molmo_tj_doc;

/* Largest input accepted (offsets are 32-bit); the largest known tokenizer.json is ~30 MB. */
#define MOLMO_TJ_MAX_BYTES ((size_t)512 << 20)

/* Parses text[0..len). `name` (a file name) prefixes error messages, which carry line:column.
 * On failure the document is left empty (molmo_tj_free is still safe). */
molmo_status molmo_tj_parse(molmo_tj_doc *doc, const char *text, size_t len, const char *name,
                            molmo_error *err);
void molmo_tj_free(molmo_tj_doc *doc);

/* Value of member `key` of object node `obj`, or MOLMO_TJ_NONE when absent or `obj` is not an
 * object. A key given twice: the first one counts. */
uint32_t molmo_tj_get(const molmo_tj_doc *doc, uint32_t obj, const char *key);
/* Index of the i-th element of an array, walking from the first (O(i)); MOLMO_TJ_NONE when out
 * of range. Loops over all elements should step with `nodes[k].end` instead. */
uint32_t molmo_tj_at(const molmo_tj_doc *doc, uint32_t arr, uint32_t i);

static inline const molmo_tj_node *molmo_tj_node_at(const molmo_tj_doc *doc, uint32_t i) {
    return &doc->nodes[i];
}
/* The decoded bytes of a string node (NUL-terminated; may contain NULs: use the length). */
static inline const char *molmo_tj_str(const molmo_tj_doc *doc, uint32_t i) {
    return doc->str + doc->nodes[i].off;
}
/* 1 when node i exists and has type t. */
static inline int molmo_tj_is(const molmo_tj_doc *doc, uint32_t i, molmo_tj_type t) {
    return i != MOLMO_TJ_NONE && doc->nodes[i].type == (uint32_t)t;
}
/* 1 when node i is a string equal to the NUL-terminated s. */
int molmo_tj_str_eq(const molmo_tj_doc *doc, uint32_t i, const char *s);
/* Integer value of a number node when it is an integer literal in [lo, hi] (no fraction or
 * exponent, as serde requires for integer fields); returns 0 otherwise. */
int molmo_tj_int(const molmo_tj_doc *doc, uint32_t i, int64_t lo, int64_t hi, int64_t *out);
/* obj[key] as a boolean: 1 or 0, or `def` when absent or not a boolean. */
int molmo_tj_bool(const molmo_tj_doc *doc, uint32_t obj, const char *key, int def);
/* Number value of a number node (any JSON number); returns 0 when i is not a number. */
int molmo_tj_real(const molmo_tj_doc *doc, uint32_t i, double *out);
/* Static name of a node's type for messages ("string", "object", ...; "absent" for NONE). */
const char *molmo_tj_type_name(const molmo_tj_doc *doc, uint32_t i);

#endif

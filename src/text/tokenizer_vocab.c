/* tokenizer_vocab.c — the "model" section of tokenizer.json (byte-level BPE vocabulary and
 * merges), the byte-level alphabet, the string pool, and the added-token trie.
 *
 * Mirrors tokenizers' BPE deserializer (models/bpe/serialization.rs) and BpeBuilder::build:
 * merges come as "a b" strings (split at the single space; lines starting with "#version" are
 * skipped) or as ["a", "b"] pairs; both parts and their concatenation must be in the vocabulary
 * (MergeTokenOutOfVocabulary); rank = position in the list, a repeated pair keeps the last rank
 * (the reference collects into a hash map). */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

/* Ids must be below MOLMO_TOK_MAX_VOCAB (~1M; the largest real vocabularies hold ~256k
 * entries), which also bounds the per-id tables a hostile file can make us allocate. */
#define MAX_VOCAB MOLMO_TOK_MAX_VOCAB

/* ---- byte-level alphabet ------------------------------------------------------------------- */

static uint32_t byte_cp(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 0x100 + b;          /* 0x00..0x20 -> U+0100..U+0120 */
    if (b <= 0xA0) return 0x121 + (b - 0x7F); /* 0x7F..0xA0 -> U+0121..U+0142 */
    return 0x143;                             /* 0xAD */
}

size_t molmo_tok_byte_char(unsigned char b, char out[2]) {
    uint32_t cp = byte_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int molmo_tok_char_byte(int32_t cp) {
    if (cp < 0 || cp > 0x143) return -1;
    if (cp < 0x100) return byte_cp((unsigned)cp) == (uint32_t)cp ? cp : -1;
    if (cp <= 0x120) return cp - 0x100;
    if (cp <= 0x142) return cp - 0x121 + 0x7F;
    return 0xAD;
}

/* ---- pool ---------------------------------------------------------------------------------- */

molmo_tok_span molmo_tok_pool_add(molmo_tokenizer *tok, const void *s, size_t n) {
    molmo_tok_span sp = {0, MOLMO_TOK_NO_SPAN};
    if (tok->n_pool + n + 1 > tok->cap_pool) {
        size_t cap = tok->cap_pool ? tok->cap_pool : 65536;
        while (cap < tok->n_pool + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return sp;
        char *p = molmo_realloc(tok->pool, cap);
        if (!p) return sp;
        tok->pool = p;
        tok->cap_pool = cap;
    }
    memcpy(tok->pool + tok->n_pool, s, n);
    tok->pool[tok->n_pool + n] = '\0';
    sp.off = (uint32_t)tok->n_pool;
    sp.len = (uint32_t)n;
    tok->n_pool += n + 1;
    return sp;
}

int32_t molmo_tok_vocab_find_bytes(const molmo_tokenizer *tok, const char *s, size_t n) {
    if (n == 0) return molmo_tok_vocab_find(tok, "", 0);
    /* A spelling longer than every vocabulary string cannot be found: no need to build it. */
    if (n > tok->max_key_len) return -1;
    char stack[1024];
    char *buf = 2 * n <= sizeof stack ? stack : molmo_malloc(2 * n);
    if (!buf) return -1; /* only for vocabularies with strings over 512 bytes */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += molmo_tok_byte_char((unsigned char)s[i], buf + k);
    int32_t id = molmo_tok_vocab_find(tok, buf, k);
    if (buf != stack) molmo_free(buf);
    return id;
}

/* ---- vocabulary ---------------------------------------------------------------------------- */

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

static molmo_status load_vocab(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t vocab,
                               const char *name, molmo_error *err) {
    if (!molmo_tj_is(doc, vocab, MOLMO_TJ_OBJ))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: model.vocab is %s, expected an object",
                         name, molmo_tj_type_name(doc, vocab));
    uint32_t n = doc->nodes[vocab].len;
    if (n > MAX_VOCAB)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: model.vocab has %u entries (limit %d)",
                         name, n, MAX_VOCAB);
    uint32_t cap = pow2_at_least(n * 2 + 2);
    tok->vocab = molmo_malloc((size_t)cap * sizeof *tok->vocab);
    if (!tok->vocab) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    for (uint32_t i = 0; i < cap; i++) tok->vocab[i].id = -1;
    tok->vocab_mask = cap - 1;
    uint32_t k = vocab + 1;
    for (uint32_t i = 0; i < n; i++, k = doc->nodes[k + 1].end) {
        int64_t id;
        const char *key = molmo_tj_str(doc, k);
        uint32_t klen = doc->nodes[k].len;
        if (!molmo_tj_int(doc, k + 1, 0, MAX_VOCAB - 1, &id))
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: model.vocab[\"%.40s\"] is not an id in [0, %d]", name, key,
                             MAX_VOCAB - 1);
        if (klen > tok->max_key_len) tok->max_key_len = klen;
        molmo_tok_span sp = molmo_tok_pool_add(tok, key, klen);
        if (sp.len == MOLMO_TOK_NO_SPAN)
            return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
        uint32_t h = molmo_tok_hash(key, klen), j = h & tok->vocab_mask;
        /* A key given twice: the later id wins, as in the reference's hash map. */
        while (tok->vocab[j].id >= 0 &&
               !(tok->vocab[j].hash == h && tok->vocab[j].key.len == klen &&
                 memcmp(tok->pool + tok->vocab[j].key.off, key, klen) == 0))
            j = (j + 1) & tok->vocab_mask;
        tok->vocab[j] = (molmo_tok_vslot){.hash = h, .id = (int32_t)id, .key = sp};
        if ((int32_t)id >= tok->n_vocab) tok->n_vocab = (int32_t)id + 1;
    }
    return MOLMO_OK;
}

/* ---- merges -------------------------------------------------------------------------------- */

static molmo_status add_merge(molmo_tokenizer *tok, const char *a, size_t na, const char *b,
                              size_t nb, uint32_t rank, const char *name, molmo_error *err) {
    int32_t ia = molmo_tok_vocab_find(tok, a, na), ib = molmo_tok_vocab_find(tok, b, nb);
    if (ia < 0 || ib < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: model.merges[%u] uses \"%.*s\", which is not in model.vocab", name,
                         rank, (int)(ia < 0 ? (na > 60 ? 60 : na) : (nb > 60 ? 60 : nb)),
                         ia < 0 ? a : b);
    char stack[512];
    char *cat = na + nb <= sizeof stack ? stack : molmo_malloc(na + nb);
    if (!cat) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t id = molmo_tok_vocab_find(tok, cat, na + nb);
    if (cat != stack) molmo_free(cat);
    if (id < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT,
                         "%s: model.merges[%u] (\"%.*s\" + \"%.*s\") makes a token that is not in "
                         "model.vocab",
                         name, rank, (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b);
    uint64_t key = (uint64_t)(uint32_t)ia << 20 | (uint32_t)ib;
    uint32_t j = molmo_tok_pair_slot(key, tok->merges_mask);
    while (tok->merges[j] != MOLMO_TOK_MERGE_EMPTY && tok->merges[j] >> 24 != key)
        j = (j + 1) & tok->merges_mask;
    if (tok->merges[j] == MOLMO_TOK_MERGE_EMPTY) tok->n_merges++;
    tok->merges[j] = key << 24 | rank;
    tok->merge_new_id[rank] = id;
    return MOLMO_OK;
}

/* One element of model.merges: "a b" or ["a", "b"]. */
static molmo_status load_merge(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t m,
                               uint32_t *rank, const char *name, molmo_error *err) {
    if (molmo_tj_is(doc, m, MOLMO_TJ_STR)) {
        const char *s = molmo_tj_str(doc, m);
        size_t n = doc->nodes[m].len;
        if (n >= 8 && memcmp(s, "#version", 8) == 0) return MOLMO_OK; /* merges.txt header */
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1))
            return molmo_err(err, MOLMO_ERR_FORMAT,
                             "%s: model.merges[%u] \"%.60s\" is not two tokens separated by one "
                             "space",
                             name, *rank, s);
        molmo_status st = add_merge(tok, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp - s) - 1,
                                    *rank, name, err);
        (*rank)++;
        return st;
    }
    if (molmo_tj_is(doc, m, MOLMO_TJ_ARR) && doc->nodes[m].len == 2 &&
        molmo_tj_is(doc, m + 1, MOLMO_TJ_STR) && molmo_tj_is(doc, m + 2, MOLMO_TJ_STR)) {
        molmo_status st = add_merge(tok, molmo_tj_str(doc, m + 1), doc->nodes[m + 1].len,
                                    molmo_tj_str(doc, m + 2), doc->nodes[m + 2].len, *rank, name,
                                    err);
        (*rank)++;
        return st;
    }
    return molmo_err(err, MOLMO_ERR_FORMAT,
                     "%s: model.merges[%u] is %s, expected \"a b\" or [\"a\", \"b\"]", name,
                     *rank, molmo_tj_type_name(doc, m));
}

static molmo_status load_merges(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t merges,
                                const char *name, molmo_error *err) {
    if (merges == MOLMO_TJ_NONE)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: model.merges is missing", name);
    if (!molmo_tj_is(doc, merges, MOLMO_TJ_ARR))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: model.merges is %s, expected an array",
                         name, molmo_tj_type_name(doc, merges));
    uint32_t n = doc->nodes[merges].len;
    if (n > MOLMO_TOK_MAX_MERGES)
        return molmo_err(err, MOLMO_ERR_TOO_LARGE, "%s: model.merges has %u entries (limit %d)",
                         name, n, MOLMO_TOK_MAX_MERGES);
    /* load factor 0.5-0.6: 151387 merges -> 262144 slots */
    uint32_t cap = pow2_at_least(n + n / 2 + 2);
    tok->merges = molmo_malloc((size_t)cap * sizeof *tok->merges);
    tok->merge_new_id = molmo_malloc((n ? n : 1) * sizeof *tok->merge_new_id);
    if (!tok->merges || !tok->merge_new_id)
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    for (uint32_t i = 0; i < cap; i++) tok->merges[i] = MOLMO_TOK_MERGE_EMPTY;
    tok->merges_mask = cap - 1;
    uint32_t rank = 0;
    for (uint32_t i = 0, m = merges + 1; i < n; i++, m = doc->nodes[m].end) {
        molmo_status st = load_merge(tok, doc, m, &rank, name, err);
        if (st != MOLMO_OK) return st;
    }
    return MOLMO_OK;
}

/* ---- the model section --------------------------------------------------------------------- */

/* A string option that only the empty string or null may take here. */
static molmo_status check_empty(const molmo_tj_doc *doc, uint32_t model, const char *key,
                                const char *name, molmo_error *err) {
    uint32_t v = molmo_tj_get(doc, model, key);
    if (v == MOLMO_TJ_NONE || molmo_tj_is(doc, v, MOLMO_TJ_NULL) || molmo_tj_str_eq(doc, v, ""))
        return MOLMO_OK;
    return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: model.%s is set; not supported with "
                     "byte-level BPE", name, key);
}

static molmo_status check_options(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t model,
                                  const char *name, molmo_error *err) {
    uint32_t type = molmo_tj_get(doc, model, "type");
    if (type != MOLMO_TJ_NONE && !molmo_tj_str_eq(doc, type, "BPE"))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: model type \"%.40s\" is not supported "
                         "(only BPE)", name,
                         molmo_tj_is(doc, type, MOLMO_TJ_STR) ? molmo_tj_str(doc, type) : "?");
    uint32_t drop = molmo_tj_get(doc, model, "dropout");
    double d = 0;
    if (drop != MOLMO_TJ_NONE && !molmo_tj_is(doc, drop, MOLMO_TJ_NULL) &&
        !(molmo_tj_real(doc, drop, &d) && d == 0.0))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", name);
    molmo_status st = check_empty(doc, model, "continuing_subword_prefix", name, err);
    if (st == MOLMO_OK) st = check_empty(doc, model, "end_of_word_suffix", name, err);
    if (st != MOLMO_OK) return st;
    if (molmo_tj_bool(doc, model, "byte_fallback", 0))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: model.byte_fallback is not supported "
                         "(byte-level BPE has a token for every byte)", name);
    tok->ignore_merges = molmo_tj_bool(doc, model, "ignore_merges", 0);
    tok->fuse_unk = molmo_tj_bool(doc, model, "fuse_unk", 0);
    return MOLMO_OK;
}

molmo_status molmo_tok_load_model(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t model,
                                  const char *name, molmo_error *err) {
    if (!molmo_tj_is(doc, model, MOLMO_TJ_OBJ))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"model\" is %s, expected an object", name,
                         molmo_tj_type_name(doc, model));
    molmo_status st = check_options(tok, doc, model, name, err);
    if (st == MOLMO_OK) st = load_vocab(tok, doc, molmo_tj_get(doc, model, "vocab"), name, err);
    if (st == MOLMO_OK) st = load_merges(tok, doc, molmo_tj_get(doc, model, "merges"), name, err);
    if (st != MOLMO_OK) return st;
    uint32_t unk = molmo_tj_get(doc, model, "unk_token");
    tok->unk_id = -1;
    if (molmo_tj_is(doc, unk, MOLMO_TJ_STR))
        tok->unk_id = molmo_tok_vocab_find(tok, molmo_tj_str(doc, unk), doc->nodes[unk].len);
    for (int b = 0; b < 256; b++) {
        char c[2];
        size_t n = molmo_tok_byte_char((unsigned char)b, c);
        tok->byte_id[b] = molmo_tok_vocab_find(tok, c, n);
    }
    if (molmo_tok_build_byte_pairs(tok) != 0)
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    return MOLMO_OK;
}

/* ---- added-token trie ------------------------------------------------------------------------ */

static int32_t trie_node(molmo_tok_trie *t, uint8_t byte) {
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        molmo_tok_trie_node *n = molmo_realloc(t->nodes, (size_t)cap * sizeof *n);
        if (!n) return -1;
        t->nodes = n;
        t->cap = cap;
    }
    t->nodes[t->n] = (molmo_tok_trie_node){.child = -1, .sibling = -1, .added = -1, .byte = byte};
    return (int32_t)t->n++;
}

int molmo_tok_trie_build(molmo_tok_trie *t, const molmo_tokenizer *tok, int normalized) {
    memset(t, 0, sizeof *t);
    if (trie_node(t, 0) < 0) return -1;
    for (uint32_t a = 0; a < tok->n_added; a++) {
        const molmo_tok_added *ad = &tok->added[a];
        if (ad->normalized != normalized || ad->match.len == 0) continue;
        const unsigned char *s = (const unsigned char *)tok->pool + ad->match.off;
        int32_t node = 0;
        for (uint32_t i = 0; i < ad->match.len; i++) {
            int32_t c = t->nodes[node].child;
            while (c >= 0 && t->nodes[c].byte != s[i]) c = t->nodes[c].sibling;
            if (c < 0) {
                c = trie_node(t, s[i]);
                if (c < 0) return -1;
                t->nodes[c].sibling = t->nodes[node].child;
                t->nodes[node].child = c;
            }
            node = c;
        }
        t->nodes[node].added = (int32_t)a; /* the same string twice: the later entry wins */
        t->first[s[0]] = 1;
    }
    return 0;
}

void molmo_tok_trie_free(molmo_tok_trie *t) {
    molmo_free(t->nodes);
    memset(t, 0, sizeof *t);
}

size_t molmo_tok_trie_longest(const molmo_tok_trie *t, const char *s, size_t n, int32_t *added) {
    const unsigned char *u = (const unsigned char *)s;
    size_t best = 0;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->nodes[node].child;
        while (c >= 0 && t->nodes[c].byte != u[i]) c = t->nodes[c].sibling;
        if (c < 0) break;
        node = c;
        if (t->nodes[c].added >= 0) {
            best = i + 1;
            *added = t->nodes[c].added;
        }
    }
    return best;
}

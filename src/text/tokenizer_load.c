/* tokenizer_load.c — building a molmo_tokenizer from tokenizer.json (+ tokenizer_config.json),
 * and the public load/free/lookup functions.
 *
 * Mirrors tokenizers' TokenizerImpl deserializer (tokenizer/serialization.rs): version "1.0",
 * "model", "added_tokens" (every AddedToken field is required there too), "normalizer",
 * "pre_tokenizer", "decoder". What is accepted is what the Molmo tokenizers use; anything else
 * is refused with MOLMO_ERR_UNSUPPORTED naming it, never ignored into wrong ids:
 *   normalizer     null, NFC, or a Sequence of those
 *   pre_tokenizer  Split (Regex or String pattern, any behavior, invert) and ByteLevel, alone or
 *                  in a Sequence, ByteLevel last (BPE then works on the text's UTF-8 bytes)
 *   model          BPE without dropout, byte_fallback, or subword prefix/suffix
 *   decoder        ByteLevel
 *   added tokens   lstrip, rstrip and single_word must be false
 * post_processor is not read: Molmo encodes with add_special_tokens=False, where it adds nothing.
 * Added tokens keep the id written in the file (the reference re-derives the same ids for
 * well-formed files). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/mapfile.h"
#include "io/path.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

#define MAX_CONFIG_BYTES ((size_t)16 << 20)

/* ---- normalizer ------------------------------------------------------------------------------ */

static molmo_status load_normalizer(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t n,
                                    const char *name, molmo_error *err) {
    if (n == MOLMO_TJ_NONE || molmo_tj_is(doc, n, MOLMO_TJ_NULL)) return MOLMO_OK;
    uint32_t type = molmo_tj_get(doc, n, "type");
    if (molmo_tj_str_eq(doc, type, "NFC")) {
        tok->nfc = 1;
        return MOLMO_OK;
    }
    if (molmo_tj_str_eq(doc, type, "Sequence")) {
        uint32_t list = molmo_tj_get(doc, n, "normalizers");
        if (!molmo_tj_is(doc, list, MOLMO_TJ_ARR))
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: normalizer Sequence has no "
                             "\"normalizers\" array", name);
        for (uint32_t i = 0, k = list + 1; i < doc->nodes[list].len; i++, k = doc->nodes[k].end) {
            molmo_status st = load_normalizer(tok, doc, k, name, err);
            if (st != MOLMO_OK) return st;
        }
        return MOLMO_OK;
    }
    return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: normalizer \"%.40s\" is not supported "
                     "(only NFC)", name,
                     molmo_tj_is(doc, type, MOLMO_TJ_STR) ? molmo_tj_str(doc, type) : "?");
}

/* ---- pre-tokenizers -------------------------------------------------------------------------- */

static molmo_status load_split(molmo_tok_pretok *p, const molmo_tj_doc *doc, uint32_t n,
                               const char *name, molmo_error *err) {
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
    uint32_t b = molmo_tj_get(doc, n, "behavior");
    p->behavior = -1;
    for (int i = 0; i < 5; i++)
        if (molmo_tj_str_eq(doc, b, behaviors[i])) p->behavior = i;
    if (p->behavior < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: Split pre-tokenizer has no valid "
                         "\"behavior\"", name);
    p->invert = molmo_tj_bool(doc, n, "invert", 0);
    uint32_t pat = molmo_tj_get(doc, n, "pattern");
    uint32_t re = molmo_tj_get(doc, pat, "Regex"), lit = molmo_tj_get(doc, pat, "String");
    uint32_t s = molmo_tj_is(doc, re, MOLMO_TJ_STR) ? re : lit;
    if (!molmo_tj_is(doc, s, MOLMO_TJ_STR))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: Split pre-tokenizer pattern is neither "
                         "{\"Regex\": ...} nor {\"String\": ...}", name);
    char ctx[300];
    snprintf(ctx, sizeof ctx, "%s: Split pre-tokenizer", name);
    return molmo_tok_regex_compile(molmo_tj_str(doc, s), doc->nodes[s].len, s == lit, ctx,
                                   &p->re, err);
}

static molmo_status load_pretok(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t n,
                                const char *name, molmo_error *err) {
    uint32_t type = molmo_tj_get(doc, n, "type");
    if (molmo_tj_str_eq(doc, type, "Sequence")) {
        uint32_t list = molmo_tj_get(doc, n, "pretokenizers");
        if (!molmo_tj_is(doc, list, MOLMO_TJ_ARR))
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: pre_tokenizer Sequence has no "
                             "\"pretokenizers\" array", name);
        for (uint32_t i = 0, k = list + 1; i < doc->nodes[list].len; i++, k = doc->nodes[k].end) {
            molmo_status st = load_pretok(tok, doc, k, name, err);
            if (st != MOLMO_OK) return st;
        }
        return MOLMO_OK;
    }
    if (tok->n_pre == MOLMO_TOK_MAX_PRETOK)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizers", name,
                         MOLMO_TOK_MAX_PRETOK);
    if (tok->n_pre > 0 && tok->pre[tok->n_pre - 1].kind == MOLMO_TOK_PRE_BYTELEVEL)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: a pre-tokenizer after ByteLevel is not "
                         "supported", name);
    molmo_tok_pretok *p = &tok->pre[tok->n_pre++];
    memset(p, 0, sizeof *p);
    if (molmo_tj_str_eq(doc, type, "Split")) {
        p->kind = MOLMO_TOK_PRE_SPLIT;
        return load_split(p, doc, n, name, err);
    }
    if (molmo_tj_str_eq(doc, type, "ByteLevel")) {
        p->kind = MOLMO_TOK_PRE_BYTELEVEL;
        p->behavior = MOLMO_TOK_ISOLATED;
        p->add_prefix_space = molmo_tj_bool(doc, n, "add_prefix_space", 1);
        if (!molmo_tj_bool(doc, n, "use_regex", 1)) return MOLMO_OK;
        char ctx[300];
        snprintf(ctx, sizeof ctx, "%s: ByteLevel pre-tokenizer", name);
        return molmo_tok_regex_compile(molmo_tok_gpt2_pattern, strlen(molmo_tok_gpt2_pattern), 0,
                                       ctx, &p->re, err);
    }
    tok->n_pre--;
    return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%.40s\" is not supported "
                     "(only Split and ByteLevel)", name,
                     molmo_tj_is(doc, type, MOLMO_TJ_STR) ? molmo_tj_str(doc, type) : "?");
}

static molmo_status load_pipeline(molmo_tokenizer *tok, const molmo_tj_doc *doc,
                                  const char *name, molmo_error *err) {
    uint32_t v = molmo_tj_get(doc, 0, "version");
    if (v != MOLMO_TJ_NONE && !molmo_tj_str_eq(doc, v, "1.0"))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: tokenizer.json version is not \"1.0\"",
                         name);
    static const char *const unread[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++) {
        uint32_t t = molmo_tj_get(doc, 0, unread[i]);
        if (t != MOLMO_TJ_NONE && !molmo_tj_is(doc, t, MOLMO_TJ_NULL))
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: \"%s\" is set; not supported", name,
                             unread[i]);
    }
    molmo_status st = load_normalizer(tok, doc, molmo_tj_get(doc, 0, "normalizer"), name, err);
    if (st != MOLMO_OK) return st;
    uint32_t pre = molmo_tj_get(doc, 0, "pre_tokenizer");
    if (pre != MOLMO_TJ_NONE && !molmo_tj_is(doc, pre, MOLMO_TJ_NULL)) {
        st = load_pretok(tok, doc, pre, name, err);
        if (st != MOLMO_OK) return st;
    }
    if (tok->n_pre == 0 || tok->pre[tok->n_pre - 1].kind != MOLMO_TOK_PRE_BYTELEVEL)
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: pre_tokenizer does not end with "
                         "ByteLevel; only byte-level BPE tokenizers are supported", name);
    uint32_t dec = molmo_tj_get(doc, 0, "decoder");
    if (!molmo_tj_str_eq(doc, molmo_tj_get(doc, dec, "type"), "ByteLevel"))
        return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: decoder is not ByteLevel; only "
                         "byte-level BPE tokenizers are supported", name);
    return MOLMO_OK;
}

/* ---- added tokens ---------------------------------------------------------------------------- */

static molmo_status load_added_one(molmo_tokenizer *tok, const molmo_tj_doc *doc, uint32_t a,
                                   uint32_t i, const char *name, molmo_error *err) {
    static const char *const flags[] = {"single_word", "lstrip", "rstrip", "normalized",
                                        "special"};
    int f[5];
    uint32_t c = molmo_tj_get(doc, a, "content");
    int64_t id;
    if (!molmo_tj_is(doc, c, MOLMO_TJ_STR))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: added_tokens[%u].content is %s, expected a "
                         "string", name, i, molmo_tj_type_name(doc, c));
    if (!molmo_tj_int(doc, molmo_tj_get(doc, a, "id"), 0, MOLMO_TOK_MAX_VOCAB - 1, &id))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: added_tokens[%u] (\"%.40s\") has no valid "
                         "\"id\"", name, i, molmo_tj_str(doc, c));
    for (int k = 0; k < 5; k++) {
        f[k] = molmo_tj_bool(doc, a, flags[k], -1);
        if (f[k] < 0)
            return molmo_err(err, MOLMO_ERR_FORMAT, "%s: added_tokens[%u] (\"%.40s\"): \"%s\" is "
                             "missing or not a boolean", name, i, molmo_tj_str(doc, c), flags[k]);
        if (k < 3 && f[k])
            return molmo_err(err, MOLMO_ERR_UNSUPPORTED, "%s: added_tokens[%u] (\"%.40s\") uses "
                             "%s, which is not supported", name, i, molmo_tj_str(doc, c),
                             flags[k]);
    }
    molmo_tok_added *ad = &tok->added[tok->n_added];
    ad->id = (int32_t)id;
    ad->normalized = (uint8_t)f[3];
    ad->special = (uint8_t)f[4];
    ad->content = molmo_tok_pool_add(tok, molmo_tj_str(doc, c), doc->nodes[c].len);
    if (ad->content.len == MOLMO_TOK_NO_SPAN)
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    ad->match = ad->content;
    if (ad->content.len == 0) return MOLMO_OK; /* the reference ignores empty tokens */
    if (id >= tok->n_vocab) tok->n_vocab = (int32_t)id + 1;
    tok->n_added++;
    return MOLMO_OK;
}

/* NFC form of normalized added tokens: they are matched on normalized text. */
static molmo_status normalize_added(molmo_tokenizer *tok, const char *name, molmo_error *err) {
    molmo_tok_bytes b = {0};
    molmo_tok_nfc_scratch sc = {0};
    molmo_status st = MOLMO_OK;
    for (uint32_t i = 0; i < tok->n_added && tok->nfc; i++) {
        molmo_tok_added *ad = &tok->added[i];
        if (!ad->normalized) continue;
        b.n = 0;
        if (molmo_tok_nfc(tok->pool + ad->content.off, ad->content.len, &b, &sc) != 0 ||
            (ad->match = molmo_tok_pool_add(tok, b.p, b.n)).len == MOLMO_TOK_NO_SPAN) {
            st = molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
            break;
        }
    }
    molmo_tok_bytes_free(&b);
    molmo_tok_nfc_scratch_free(&sc);
    return st;
}

static molmo_status load_added(molmo_tokenizer *tok, const molmo_tj_doc *doc, const char *name,
                               molmo_error *err) {
    uint32_t list = molmo_tj_get(doc, 0, "added_tokens");
    if (list == MOLMO_TJ_NONE || molmo_tj_is(doc, list, MOLMO_TJ_NULL)) return MOLMO_OK;
    if (!molmo_tj_is(doc, list, MOLMO_TJ_ARR))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"added_tokens\" is %s, expected an array",
                         name, molmo_tj_type_name(doc, list));
    uint32_t n = doc->nodes[list].len;
    tok->added = molmo_calloc(n ? n : 1, sizeof *tok->added);
    if (!tok->added) return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    for (uint32_t i = 0, a = list + 1; i < n; i++, a = doc->nodes[a].end) {
        molmo_status st = load_added_one(tok, doc, a, i, name, err);
        if (st != MOLMO_OK) return st;
    }
    return normalize_added(tok, name, err);
}

/* ---- id tables ----------------------------------------------------------------------------- */

/* What the ByteLevel decoder makes of a token: the bytes of its characters when all of them are
 * in the byte-level alphabet, otherwise the token's own UTF-8 (pre_tokenizers/byte_level.rs). */
static molmo_tok_span decoded_bytes(molmo_tokenizer *tok, molmo_tok_span s, char *tmp) {
    const unsigned char *u = (const unsigned char *)tok->pool + s.off;
    size_t k = 0;
    for (uint32_t i = 0; i < s.len;) {
        int32_t cp;
        if (u[i] < 0x80) {
            cp = u[i++];
        } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < s.len) {
            cp = ((u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
            i += 2;
        } else {
            return s; /* 3- and 4-byte characters are never in the alphabet */
        }
        int b = molmo_tok_char_byte(cp);
        if (b < 0) return s;
        tmp[k++] = (char)b;
    }
    return molmo_tok_pool_add(tok, tmp, k);
}

static molmo_status build_tables(molmo_tokenizer *tok, const char *name, molmo_error *err) {
    size_t nv = (size_t)tok->n_vocab;
    tok->tok_str = molmo_malloc((nv ? nv : 1) * sizeof *tok->tok_str);
    tok->tok_bytes = molmo_malloc((nv ? nv : 1) * sizeof *tok->tok_bytes);
    tok->tok_flags = molmo_calloc(nv ? nv : 1, 1);
    char *tmp = NULL;
    if (!tok->tok_str || !tok->tok_bytes || !tok->tok_flags) goto nomem;
    for (size_t i = 0; i < nv; i++) tok->tok_str[i] = tok->tok_bytes[i] = (molmo_tok_span){0,
                                                                         MOLMO_TOK_NO_SPAN};
    for (uint32_t i = 0; i <= tok->vocab_mask; i++)
        if (tok->vocab[i].id >= 0) tok->tok_str[tok->vocab[i].id] = tok->vocab[i].key;
    for (uint32_t i = 0; i < tok->n_added; i++) {
        const molmo_tok_added *ad = &tok->added[i];
        /* An added token decodes to its normalized form (AddedVocabulary::simple_id_to_token) */
        tok->tok_str[ad->id] = ad->match;
        tok->tok_flags[ad->id] |= MOLMO_TOK_F_ADDED;
    }
    /* skip_special_tokens drops every id whose string is a special token's content. */
    for (uint32_t i = 0; i < tok->n_added; i++) {
        const molmo_tok_added *ad = &tok->added[i];
        if (!ad->special) continue;
        tok->tok_flags[ad->id] |= MOLMO_TOK_F_SPECIAL;
        int32_t v = molmo_tok_vocab_find(tok, tok->pool + ad->content.off, ad->content.len);
        if (v >= 0 && tok->tok_str[v].len == ad->content.len &&
            memcmp(tok->pool + tok->tok_str[v].off, tok->pool + ad->content.off,
                   ad->content.len) == 0)
            tok->tok_flags[v] |= MOLMO_TOK_F_SPECIAL;
    }
    uint32_t max_len = 0;
    for (size_t i = 0; i < nv; i++)
        if (tok->tok_str[i].len != MOLMO_TOK_NO_SPAN && tok->tok_str[i].len > max_len)
            max_len = tok->tok_str[i].len;
    tmp = molmo_malloc(max_len + 1);
    if (!tmp) goto nomem;
    for (size_t i = 0; i < nv; i++) {
        if (tok->tok_str[i].len == MOLMO_TOK_NO_SPAN) continue;
        tok->tok_bytes[i] = decoded_bytes(tok, tok->tok_str[i], tmp);
        if (tok->tok_bytes[i].len == MOLMO_TOK_NO_SPAN) goto nomem;
    }
    molmo_free(tmp);
    if (molmo_tok_trie_build(&tok->trie_raw, tok, 0) != 0 ||
        molmo_tok_trie_build(&tok->trie_norm, tok, 1) != 0)
        return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
    return MOLMO_OK;
nomem:
    molmo_free(tmp);
    return molmo_err(err, MOLMO_ERR_NOMEM, "%s: out of memory", name);
}

/* ---- tokenizer_config.json ------------------------------------------------------------------- */

/* "eos_token": "<|endoftext|>" or {"content": "<|endoftext|>", ...} or null. */
static molmo_status config_token(molmo_tokenizer *tok, const molmo_tj_doc *doc, const char *key,
                                 int32_t *out, const char *name, molmo_error *err) {
    *out = -1;
    uint32_t v = molmo_tj_get(doc, 0, key);
    if (molmo_tj_is(doc, v, MOLMO_TJ_OBJ)) v = molmo_tj_get(doc, v, "content");
    if (v == MOLMO_TJ_NONE || molmo_tj_is(doc, v, MOLMO_TJ_NULL)) return MOLMO_OK;
    if (!molmo_tj_is(doc, v, MOLMO_TJ_STR))
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"%s\" is %s, expected a string", name, key,
                         molmo_tj_type_name(doc, v));
    *out = molmo_tokenizer_token_to_id(tok, molmo_tj_str(doc, v), doc->nodes[v].len);
    if (*out < 0)
        return molmo_err(err, MOLMO_ERR_FORMAT, "%s: %s \"%.60s\" is not a token of the "
                         "tokenizer", name, key, molmo_tj_str(doc, v));
    return MOLMO_OK;
}

static molmo_status load_config(molmo_tokenizer *tok, const char *text, size_t len,
                                const char *name, molmo_error *err) {
    molmo_tj_doc doc;
    molmo_status st = molmo_tj_parse(&doc, text, len, name, err);
    if (st != MOLMO_OK) return st;
    if (!molmo_tj_is(&doc, 0, MOLMO_TJ_OBJ)) {
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: top level is not an object", name);
        goto done;
    }
    st = config_token(tok, &doc, "eos_token", &tok->eos_id, name, err);
    if (st == MOLMO_OK) st = config_token(tok, &doc, "bos_token", &tok->bos_id, name, err);
    if (st == MOLMO_OK) st = config_token(tok, &doc, "pad_token", &tok->pad_id, name, err);
    /* transformers' default when the key is absent is False (since 4.45). */
    tok->cleanup = molmo_tj_bool(&doc, 0, "clean_up_tokenization_spaces", 0);
done:
    molmo_tj_free(&doc);
    return st;
}

/* ---- building ------------------------------------------------------------------------------ */

static molmo_status build(molmo_tokenizer *tok, const char *json, size_t len, const char *name,
                          molmo_error *err) {
    molmo_tj_doc doc;
    molmo_status st = molmo_tj_parse(&doc, json, len, name, err);
    if (st != MOLMO_OK) return st;
    if (!molmo_tj_is(&doc, 0, MOLMO_TJ_OBJ)) {
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: top level is not an object", name);
        goto done;
    }
    uint32_t model = molmo_tj_get(&doc, 0, "model");
    if (model == MOLMO_TJ_NONE) {
        st = molmo_err(err, MOLMO_ERR_FORMAT, "%s: \"model\" is missing", name);
        goto done;
    }
    st = load_pipeline(tok, &doc, name, err);
    if (st == MOLMO_OK) st = molmo_tok_load_model(tok, &doc, model, name, err);
    if (st == MOLMO_OK) st = load_added(tok, &doc, name, err);
    if (st == MOLMO_OK) st = build_tables(tok, name, err);
done:
    molmo_tj_free(&doc);
    return st;
}

molmo_status molmo_tokenizer_load_from_memory(const char *tokenizer_json, size_t json_len,
                                              const char *config_json, size_t config_len,
                                              molmo_tokenizer **out, molmo_error *err) {
    if (!out || (!tokenizer_json && json_len))
        return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    molmo_tokenizer *tok = molmo_calloc(1, sizeof *tok);
    if (!tok) return molmo_err(err, MOLMO_ERR_NOMEM, "tokenizer: out of memory");
    tok->eos_id = tok->bos_id = tok->pad_id = tok->unk_id = -1;
    tok->path = molmo_strdup("");
    molmo_status st = tok->path ? MOLMO_OK : molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    if (st == MOLMO_OK) st = build(tok, tokenizer_json, json_len, "tokenizer.json", err);
    if (st == MOLMO_OK && config_json)
        st = load_config(tok, config_json, config_len, "tokenizer_config.json", err);
    if (st != MOLMO_OK) {
        molmo_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return MOLMO_OK;
}

/* PATH -> tokenizer.json and (when present) the tokenizer_config.json beside it. */
static molmo_status find_files(const char *spec, char *json, char *config, size_t cap,
                               molmo_error *err) {
    char dir[4096];
    molmo_status st = molmo_resolve_model_path(spec, dir, sizeof dir, err);
    if (st != MOLMO_OK) return st;
    if (molmo_path_is_dir(dir)) {
        if (molmo_path_join(json, cap, dir, "tokenizer.json") != 0)
            return molmo_err(err, MOLMO_ERR_INVALID_ARG, "%s: path too long", dir);
        if (!molmo_path_exists(json))
            return molmo_err(err, MOLMO_ERR_NOT_FOUND, "%s: no tokenizer.json in this directory",
                             dir);
    } else {
        snprintf(json, cap, "%s", dir);
        char *slash = strrchr(dir, '/');
        if (slash) slash[1] = '\0';
        else snprintf(dir, sizeof dir, ".");
    }
    if (molmo_path_join(config, cap, dir, "tokenizer_config.json") != 0 ||
        !molmo_path_exists(config))
        config[0] = '\0';
    return MOLMO_OK;
}

molmo_status molmo_tokenizer_load(const char *path, molmo_tokenizer **out, molmo_error *err) {
    if (!path || !out) return molmo_err(err, MOLMO_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    char json[4096], config[4096];
    molmo_status st = find_files(path, json, config, sizeof json, err);
    if (st != MOLMO_OK) return st;
    molmo_mapfile m = {0};
    char *cfg = NULL;
    size_t cfg_len = 0;
    molmo_tokenizer *tok = molmo_calloc(1, sizeof *tok);
    if (!tok) return molmo_err(err, MOLMO_ERR_NOMEM, "tokenizer: out of memory");
    tok->eos_id = tok->bos_id = tok->pad_id = tok->unk_id = -1;
    tok->path = molmo_strdup(json);
    if (!tok->path) {
        st = molmo_err(err, MOLMO_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    st = molmo_mapfile_open(&m, json, err);
    if (st == MOLMO_OK) st = build(tok, (const char *)m.data, m.size, json, err);
    molmo_mapfile_close(&m);
    if (st == MOLMO_OK && config[0]) {
        st = molmo_read_file(config, MAX_CONFIG_BYTES, &cfg, &cfg_len, err);
        if (st == MOLMO_OK) st = load_config(tok, cfg, cfg_len, config, err);
        molmo_free(cfg);
    }
    if (st != MOLMO_OK) goto fail;
    *out = tok;
    return MOLMO_OK;
fail:
    molmo_tokenizer_free(tok);
    return st;
}

void molmo_tokenizer_free(molmo_tokenizer *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_pre; i++) molmo_tok_regex_free(tok->pre[i].re);
    molmo_tok_trie_free(&tok->trie_raw);
    molmo_tok_trie_free(&tok->trie_norm);
    molmo_free(tok->added);
    molmo_free(tok->vocab);
    molmo_free(tok->merges);
    molmo_free(tok->merge_new_id);
    molmo_free(tok->byte_pair_rank);
    molmo_free(tok->tok_str);
    molmo_free(tok->tok_bytes);
    molmo_free(tok->tok_flags);
    molmo_free(tok->pool);
    molmo_free(tok->path);
    molmo_free(tok);
}

/* ---- lookups ------------------------------------------------------------------------------- */

molmo_status molmo_tokenizer_get_info(const molmo_tokenizer *tok, molmo_tokenizer_info *out) {
    if (!tok || !out) return MOLMO_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    out->n_vocab = tok->n_vocab;
    out->n_added = (int32_t)tok->n_added;
    out->n_merges = (int32_t)tok->n_merges;
    out->eos_id = tok->eos_id;
    out->bos_id = tok->bos_id;
    out->pad_id = tok->pad_id;
    out->clean_up_spaces = tok->cleanup;
    out->path = tok->path;
    return MOLMO_OK;
}

int32_t molmo_tokenizer_token_to_id(const molmo_tokenizer *tok, const char *token, size_t len) {
    if (!tok || (!token && len)) return -1;
    /* Added tokens first (AddedVocabulary::token_to_id), the later of two equal ones. */
    for (uint32_t i = tok->n_added; i-- > 0;) {
        const molmo_tok_added *ad = &tok->added[i];
        if (ad->content.len == len && memcmp(tok->pool + ad->content.off, token, len) == 0)
            return ad->id;
    }
    return molmo_tok_vocab_find(tok, token, len);
}

const char *molmo_tokenizer_id_to_token(const molmo_tokenizer *tok, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab || tok->tok_str[id].len == MOLMO_TOK_NO_SPAN)
        return NULL;
    if (len) *len = tok->tok_str[id].len;
    return tok->pool + tok->tok_str[id].off;
}

int molmo_tokenizer_is_special(const molmo_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab && (tok->tok_flags[id] & MOLMO_TOK_F_SPECIAL);
}

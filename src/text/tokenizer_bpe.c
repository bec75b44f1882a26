/* tokenizer_bpe.c — byte-level BPE: vocabulary and merge hash tables, the merge loop, and the
 * per-call cache of pieces already encoded.
 *
 * Mirrors tokenizers' `BPE::merge_word` + `Word::merge_all`: start from one symbol per byte
 * (its byte-level character's vocabulary id), then repeatedly apply the merge of lowest rank,
 * the leftmost one among equal ranks, until no adjacent pair has a merge. The reference uses a
 * heap of (rank, position) entries and discards stale ones; that is the same order as this
 * simple rule, which molmo_tok_bpe_reference implements literally (and the tests compare).
 * Short pieces (almost all) use an array with the ranks of adjacent pairs cached; pieces over
 * SMALL_MAX symbols use a heap and a linked list so that a 100 kB run of one character stays
 * O(n log n). */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "text/tokenizer.h"

#define SMALL_MAX 64
#define CACHE_MAX_PIECE 64     /* longer pieces are rare and not worth keeping */
#define CACHE_MAX_ENTRIES (1u << 18)

/* Folds s[0..n), n < 8, into one word: the first and last four bytes (overlapping), or three
 * single bytes when n < 4 (the wyhash trick: no byte loop). */
static inline uint64_t head8(const unsigned char *s, size_t n) {
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return (uint64_t)a | (uint64_t)b << 32;
    }
    if (n == 0) return 0;
    return (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16;
}

uint32_t molmo_tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    h = (h ^ head8(s + i, n - i)) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h >> 32);
}

int32_t molmo_tok_vocab_find(const molmo_tokenizer *tok, const char *s, size_t n) {
    if (!tok->vocab) return -1;
    uint32_t h = molmo_tok_hash(s, n);
    for (uint32_t i = h & tok->vocab_mask;; i = (i + 1) & tok->vocab_mask) {
        const molmo_tok_vslot *v = &tok->vocab[i];
        if (v->id < 0) return -1;
        if (v->hash == h && v->key.len == n && memcmp(tok->pool + v->key.off, s, n) == 0)
            return v->id;
    }
}

/* Rank of merging (left, right), or UINT32_MAX when there is no such merge. */
static inline uint32_t merge_rank(const molmo_tokenizer *tok, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 20 | (uint32_t)right;
    for (uint32_t i = molmo_tok_pair_slot(key, tok->merges_mask);; i = (i + 1) & tok->merges_mask) {
        uint64_t m = tok->merges[i];
        if (m >> 24 == key) return (uint32_t)(m & 0xFFFFFF);
        if (m == MOLMO_TOK_MERGE_EMPTY) return UINT32_MAX;
    }
}

int molmo_tok_build_byte_pairs(molmo_tokenizer *tok) {
    tok->byte_pair_rank = molmo_malloc(65536 * sizeof *tok->byte_pair_rank);
    if (!tok->byte_pair_rank) return -1;
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++)
            tok->byte_pair_rank[a << 8 | b] =
                tok->merges && tok->byte_id[a] >= 0 && tok->byte_id[b] >= 0
                    ? merge_rank(tok, tok->byte_id[a], tok->byte_id[b])
                    : UINT32_MAX;
    return 0;
}

int molmo_tok_merge_find(const molmo_tokenizer *tok, int32_t left, int32_t right, uint32_t *rank,
                         int32_t *new_id) {
    if (!tok->merges) return 0;
    uint32_t r = merge_rank(tok, left, right);
    if (r == UINT32_MAX) return 0;
    *rank = r;
    *new_id = tok->merge_new_id[r];
    return 1;
}

/* ---- the initial symbols ----------------------------------------------------------------- */

/* One symbol per byte; bytes without a token become unk (fused when fuse_unk) or vanish, as in
 * BPE::merge_word. Returns the number of symbols written to sym (capacity >= n). */
static size_t initial_symbols(const molmo_tokenizer *tok, const unsigned char *s, size_t n,
                              int32_t *sym) {
    size_t k = 0;
    int prev_unk = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id >= 0) {
            sym[k++] = id;
            prev_unk = 0;
        } else if (tok->unk_id >= 0) {
            if (!(prev_unk && tok->fuse_unk)) sym[k++] = tok->unk_id;
            prev_unk = 1;
        }
    }
    return k;
}

/* ---- reference: the rule, literally -------------------------------------------------------- */

int molmo_tok_bpe_reference(const molmo_tokenizer *tok, const char *piece, size_t n,
                            molmo_tok_ids *out) {
    int32_t *sym = molmo_malloc((n ? n : 1) * sizeof *sym);
    if (!sym) return -1;
    size_t k = initial_symbols(tok, (const unsigned char *)piece, n, sym);
    for (;;) {
        uint32_t best = UINT32_MAX, r;
        int32_t best_id = -1, nid;
        size_t at = 0;
        for (size_t i = 0; i + 1 < k; i++)
            if (molmo_tok_merge_find(tok, sym[i], sym[i + 1], &r, &nid) && r < best) {
                best = r;
                best_id = nid;
                at = i;
            }
        if (best_id < 0) break;
        sym[at] = best_id;
        memmove(sym + at + 1, sym + at + 2, (k - at - 2) * sizeof *sym);
        k--;
    }
    int rc = molmo_tok_ids_reserve(out, k);
    if (rc == 0) {
        memcpy(out->v + out->n, sym, k * sizeof *sym);
        out->n += k;
    }
    molmo_free(sym);
    return rc;
}

/* ---- state ----------------------------------------------------------------------------------- */

typedef struct hnode {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int32_t alive;
} hnode;

typedef struct hent {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
} hent;

typedef struct cslot {
    uint64_t head;          /* the key's first 8 bytes, zero-padded: most keys fit whole */
    uint32_t hash, key_len; /* key_len == UINT32_MAX: empty */
    uint32_t key_off;       /* the whole key in st->keys (compared only when longer than 8) */
    uint32_t ids_off, ids_n;
} cslot;

struct molmo_tok_bpe_state {
    int32_t *sym;
    uint32_t *rank;
    size_t cap;
    hnode *hs;
    size_t hs_cap;
    hent *heap;
    size_t heap_n, heap_cap;
    cslot *slots;
    uint32_t mask, used;
    molmo_tok_bytes keys;
    molmo_tok_ids vals;
};

molmo_tok_bpe_state *molmo_tok_bpe_state_new(void) {
    return molmo_calloc(1, sizeof(molmo_tok_bpe_state));
}

void molmo_tok_bpe_state_free(molmo_tok_bpe_state *st) {
    if (!st) return;
    molmo_free(st->sym);
    molmo_free(st->rank);
    molmo_free(st->hs);
    molmo_free(st->heap);
    molmo_free(st->slots);
    molmo_tok_bytes_free(&st->keys);
    molmo_tok_ids_free(&st->vals);
    molmo_free(st);
}

static int reserve_symbols(molmo_tok_bpe_state *st, size_t n) {
    if (n <= st->cap) return 0;
    size_t cap = n < 256 ? 256 : n;
    int32_t *s = molmo_realloc(st->sym, cap * sizeof *s);
    if (!s) return -1;
    st->sym = s;
    uint32_t *r = molmo_realloc(st->rank, cap * sizeof *r);
    if (!r) return -1;
    st->rank = r;
    st->cap = cap;
    return 0;
}

/* ---- short pieces: array with cached pair ranks -------------------------------------------- */

static uint32_t rank_of(const molmo_tokenizer *tok, int32_t a, int32_t b) {
    return tok->merges ? merge_rank(tok, a, b) : UINT32_MAX;
}

/* rank[0..k-1) must hold the ranks of the initial pairs. */
static size_t merge_small(const molmo_tokenizer *tok, int32_t *sym, uint32_t *rank, size_t k) {
    while (k > 1) {
        size_t at = 0;
        for (size_t i = 1; i + 1 < k; i++)
            if (rank[i] < rank[at]) at = i;
        if (rank[at] == UINT32_MAX) break;
        sym[at] = tok->merge_new_id[rank[at]];
        memmove(sym + at + 1, sym + at + 2, (k - at - 2) * sizeof *sym);
        memmove(rank + at + 1, rank + at + 2, (k - at - 2) * sizeof *rank);
        k--;
        if (at > 0) rank[at - 1] = rank_of(tok, sym[at - 1], sym[at]);
        if (at + 1 < k) rank[at] = rank_of(tok, sym[at], sym[at + 1]);
    }
    return k;
}

/* ---- long pieces: heap of (rank, position) ------------------------------------------------- */

static int hless(const hent *a, const hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(molmo_tok_bpe_state *st, hent e) {
    if (st->heap_n == st->heap_cap) {
        size_t cap = st->heap_cap ? st->heap_cap * 2 : 256;
        hent *h = molmo_realloc(st->heap, cap * sizeof *h);
        if (!h) return -1;
        st->heap = h;
        st->heap_cap = cap;
    }
    size_t i = st->heap_n++;
    while (i > 0 && hless(&e, &st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = e;
    return 0;
}

static hent heap_pop(molmo_tok_bpe_state *st) {
    hent top = st->heap[0], last = st->heap[--st->heap_n];
    size_t i = 0, n = st->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hless(&st->heap[c + 1], &st->heap[c])) c++;
        if (!hless(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int push_pair(molmo_tok_bpe_state *st, const molmo_tokenizer *tok, int32_t pos) {
    uint32_t r;
    int32_t nid;
    int32_t next = st->hs[pos].next;
    if (next < 0 || !molmo_tok_merge_find(tok, st->hs[pos].id, st->hs[next].id, &r, &nid))
        return 0;
    return heap_push(st, (hent){.rank = r, .pos = (uint32_t)pos, .new_id = nid});
}

static int merge_heap(molmo_tok_bpe_state *st, const molmo_tokenizer *tok, int32_t *sym,
                      size_t *k) {
    size_t n = *k;
    if (n > st->hs_cap) {
        hnode *h = molmo_realloc(st->hs, n * sizeof *h);
        if (!h) return -1;
        st->hs = h;
        st->hs_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        st->hs[i] = (hnode){sym[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    st->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (push_pair(st, tok, (int32_t)i) != 0) return -1;
    while (st->heap_n) {
        hent e = heap_pop(st);
        hnode *a = &st->hs[e.pos];
        if (!a->alive || a->next < 0) continue;
        uint32_t r;
        int32_t nid;
        /* A stale entry: the pair at this position changed since it was queued. */
        if (!molmo_tok_merge_find(tok, a->id, st->hs[a->next].id, &r, &nid) || nid != e.new_id)
            continue;
        hnode *b = &st->hs[a->next];
        a->id = e.new_id;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0) st->hs[b->next].prev = (int32_t)e.pos;
        if (a->prev >= 0 && push_pair(st, tok, a->prev) != 0) return -1;
        if (push_pair(st, tok, (int32_t)e.pos) != 0) return -1;
    }
    size_t m = 0;
    for (int32_t i = 0; i >= 0; i = st->hs[i].next) sym[m++] = st->hs[i].id;
    *k = m;
    return 0;
}

/* ---- cache --------------------------------------------------------------------------------- */

/* Equal (length, key_head) means equal keys for keys of at most 8 bytes: head8 covers every
 * byte of a short key. (A variable-length memcpy into a word would stall store forwarding on
 * every lookup.) */
static inline uint64_t key_head(const char *s, size_t n) {
    if (n < 8) return head8((const unsigned char *)s, n);
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static cslot *cache_find(molmo_tok_bpe_state *st, const char *s, size_t n, uint32_t h,
                         uint64_t head) {
    if (!st->slots) return NULL;
    for (uint32_t i = h & st->mask;; i = (i + 1) & st->mask) {
        cslot *c = &st->slots[i];
        if (c->key_len == UINT32_MAX) return c;
        if (c->hash == h && c->key_len == n && c->head == head &&
            (n <= 8 || memcmp(st->keys.p + c->key_off + 8, s + 8, n - 8) == 0))
            return c;
    }
}

static int cache_grow(molmo_tok_bpe_state *st) {
    uint32_t cap = st->slots ? (st->mask + 1) * 2 : 256;
    cslot *ns = molmo_malloc((size_t)cap * sizeof *ns);
    if (!ns) return -1;
    for (uint32_t i = 0; i < cap; i++) ns[i].key_len = UINT32_MAX;
    for (uint32_t i = 0; st->slots && i <= st->mask; i++) {
        if (st->slots[i].key_len == UINT32_MAX) continue;
        uint32_t j = st->slots[i].hash & (cap - 1);
        while (ns[j].key_len != UINT32_MAX) j = (j + 1) & (cap - 1);
        ns[j] = st->slots[i];
    }
    molmo_free(st->slots);
    st->slots = ns;
    st->mask = cap - 1;
    return 0;
}

/* Remembers piece -> the last k ids of out. Failing to cache is not an error. */
static void cache_put(molmo_tok_bpe_state *st, const char *s, size_t n, uint32_t h,
                      uint64_t head, const int32_t *ids, size_t k) {
    if (st->used >= CACHE_MAX_ENTRIES) return;
    if ((!st->slots || (st->used + 1) * 4 > (st->mask + 1) * 3) && cache_grow(st) != 0) return;
    if (st->keys.n + n > UINT32_MAX || st->vals.n + k > UINT32_MAX) return;
    cslot *c = cache_find(st, s, n, h, head);
    size_t key_off = st->keys.n, ids_off = st->vals.n;
    if (molmo_tok_bytes_append(&st->keys, s, n) != 0 || molmo_tok_ids_reserve(&st->vals, k) != 0)
        return;
    memcpy(st->vals.v + ids_off, ids, k * sizeof *ids);
    st->vals.n += k;
    *c = (cslot){.head = head, .hash = h, .key_len = (uint32_t)n, .key_off = (uint32_t)key_off,
                 .ids_off = (uint32_t)ids_off, .ids_n = (uint32_t)k};
    st->used++;
}

/* ---- entry point --------------------------------------------------------------------------- */

int molmo_tok_bpe(const molmo_tokenizer *tok, molmo_tok_bpe_state *st, const char *piece,
                  size_t n, molmo_tok_ids *out) {
    if (n == 0) return 0;
    if (tok->ignore_merges) {
        int32_t id = molmo_tok_vocab_find_bytes(tok, piece, n);
        if (id >= 0) return molmo_tok_ids_push(out, id);
    }
    if (n == 1 && tok->byte_id[(unsigned char)piece[0]] >= 0)
        return molmo_tok_ids_push(out, tok->byte_id[(unsigned char)piece[0]]);
    uint32_t h = 0;
    uint64_t head = 0;
    if (n <= CACHE_MAX_PIECE) {
        h = molmo_tok_hash(piece, n);
        head = key_head(piece, n);
        cslot *c = cache_find(st, piece, n, h, head);
        if (c && c->key_len != UINT32_MAX) {
            if (molmo_tok_ids_reserve(out, c->ids_n) != 0) return -1;
            memcpy(out->v + out->n, st->vals.v + c->ids_off, c->ids_n * sizeof(int32_t));
            out->n += c->ids_n;
            return 0;
        }
    }
    if (reserve_symbols(st, n) != 0) return -1;
    const unsigned char *u = (const unsigned char *)piece;
    size_t k = initial_symbols(tok, u, n, st->sym);
    if (k <= SMALL_MAX) {
        /* one symbol per byte: the initial pair ranks come from the byte-pair table */
        for (size_t i = 0; i + 1 < k; i++)
            st->rank[i] = k == n ? tok->byte_pair_rank[u[i] << 8 | u[i + 1]]
                                 : rank_of(tok, st->sym[i], st->sym[i + 1]);
        k = merge_small(tok, st->sym, st->rank, k);
    } else if (merge_heap(st, tok, st->sym, &k) != 0) {
        return -1;
    }
    if (molmo_tok_ids_reserve(out, k) != 0) return -1;
    memcpy(out->v + out->n, st->sym, k * sizeof(int32_t));
    out->n += k;
    if (n <= CACHE_MAX_PIECE) cache_put(st, piece, n, h, head, st->sym, k);
    return 0;
}

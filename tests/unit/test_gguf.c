/* test_gguf.c — the GGUF container (src/io/gguf*.c): a write/read round trip of every metadata
 * type and every tensor type (with a tensor large enough to take several write chunks), the
 * exact placement ggml's reader demands, writer argument errors, and hostile files: every
 * truncation of a valid file, huge counts and lengths, bad types, bad dims, misaligned,
 * out-of-range and overlapping offsets, duplicates. Each must be a clear error that names the
 * file and the key or tensor, never a crash; allocation failures must give MOLMO_ERR_NOMEM. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "io/gguf.h"
#include "kernels/quant.h"
#include "testutil.h"

static char tmpdir[256];

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/molmo_test_gguf_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- round trip ------------------------------------------------------------------------- */

/* The byte of tensor `index`, row r, byte j: what fill writes and the reader must return. */
static unsigned char pattern(int index, int64_t r, size_t j) {
    return (unsigned char)(index * 31 + r * 7 + (int64_t)j * 13);
}

typedef struct fill_log {
    int64_t next_row[16]; /* rows must come in order, without gaps */
    int calls[16];
    size_t row_bytes[16];
} fill_log;

static molmo_status fill(void *user, int index, int64_t row0, int64_t n_rows, void *dst,
                         molmo_error *err) {
    fill_log *l = user;
    assert_int_equal(row0, l->next_row[index]);
    l->next_row[index] += n_rows;
    l->calls[index]++;
    unsigned char *d = dst;
    for (int64_t r = 0; r < n_rows; r++)
        for (size_t j = 0; j < l->row_bytes[index]; j++)
            *d++ = pattern(index, row0 + r, j);
    return MOLMO_OK;
}

typedef struct tdef {
    const char *name;
    molmo_dtype dtype;
    int n_dims;
    int64_t shape[4];
} tdef;

static const tdef tensors[] = {
    {"w.f32", MOLMO_DTYPE_F32, 2, {3, 5}},
    {"w.f16", MOLMO_DTYPE_F16, 1, {7}},
    {"a.bf16", MOLMO_DTYPE_BF16, 3, {2, 3, 4}},
    {"w.q8_0", MOLMO_DTYPE_Q8_0, 2, {2, 64}},
    {"w.q4_0", MOLMO_DTYPE_Q4_0, 4, {1, 1, 3, 32}},
    {"empty", MOLMO_DTYPE_F32, 2, {0, 4}},
    {"big", MOLMO_DTYPE_F32, 2, {4200, 1024}}, /* 17.2 MB: two 16 MB chunks */
    {"z.last", MOLMO_DTYPE_F16, 1, {1}},
    {"w.q4_k", MOLMO_DTYPE_Q4_K, 2, {3, 512}},
    {"w.q6_k", MOLMO_DTYPE_Q6_K, 1, {256}},
};
enum { N_T = sizeof tensors / sizeof tensors[0] };

static void add_metadata(molmo_gguf_writer *w) {
    molmo_error err;
    uint8_t u8 = 250;
    int8_t i8 = -100;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    uint64_t u64 = 0xfedcba9876543210ull;
    int64_t i64 = -1234567890123ll;
    double f64 = -2.5e300;
    assert_int_equal(molmo_gguf_add_scalar(w, "t.u8", MOLMO_GGUF_U8, &u8, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.i8", MOLMO_GGUF_I8, &i8, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.u16", MOLMO_GGUF_U16, &u16, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.i16", MOLMO_GGUF_I16, &i16, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_u32(w, "t.u32", 4000000000u, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_i32(w, "t.i32", -2000000000, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_f32(w, "t.f32", 0.1f, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_bool(w, "t.bool", 1, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.u64", MOLMO_GGUF_U64, &u64, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.i64", MOLMO_GGUF_I64, &i64, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_scalar(w, "t.f64", MOLMO_GGUF_F64, &f64, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_str(w, "t.str", "a\0b\xff", 4, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_str(w, "t.empty_str", "", 0, &err), MOLMO_OK);
    const int16_t ai16[3] = {-1, 2, -3};
    const float af32[2] = {1.5f, -0.25f};
    const uint8_t abool[3] = {1, 0, 1};
    assert_int_equal(molmo_gguf_add_array(w, "a.i16", MOLMO_GGUF_I16, ai16, 3, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_array(w, "a.f32", MOLMO_GGUF_F32, af32, 2, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_array(w, "a.bool", MOLMO_GGUF_BOOL, abool, 3, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_array(w, "a.empty", MOLMO_GGUF_U64, NULL, 0, &err), MOLMO_OK);
    const char *strs[3] = {"x", "", "long string"};
    assert_int_equal(molmo_gguf_add_str_array(w, "a.str", strs, NULL, 3, &err), MOLMO_OK);
}

static void check_metadata(const molmo_gguf *g) {
    molmo_error err;
    int64_t v;
    double f;
    int b;
    const char *s;
    size_t len;
    static const struct { const char *key; int64_t want; } ints[] = {
        {"t.u8", 250},       {"t.i8", -100},          {"t.u16", 65000},
        {"t.i16", -32000},   {"t.u32", 4000000000ll}, {"t.i32", -2000000000},
        {"t.i64", -1234567890123ll}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        assert_int_equal(molmo_gguf_get_int(g, ints[i].key, &v, &err), MOLMO_OK);
        assert_true(v == ints[i].want);
    }
    /* a u64 above INT64_MAX does not fit the int64 accessor: refused, not wrapped */
    assert_int_equal(molmo_gguf_get_int(g, "t.u64", &v, &err), MOLMO_ERR_FORMAT);
    const molmo_gguf_kv *kv = molmo_gguf_find(g, "t.u64");
    assert_non_null(kv);
    uint64_t u64;
    memcpy(&u64, kv->data, 8);
    assert_true(u64 == 0xfedcba9876543210ull);
    assert_int_equal(molmo_gguf_get_float(g, "t.f32", &f, &err), MOLMO_OK);
    assert_true(f == (double)0.1f);
    assert_int_equal(molmo_gguf_get_float(g, "t.f64", &f, &err), MOLMO_OK);
    assert_true(f == -2.5e300);
    assert_int_equal(molmo_gguf_get_bool(g, "t.bool", &b, &err), MOLMO_OK);
    assert_int_equal(b, 1);
    assert_int_equal(molmo_gguf_get_str(g, "t.str", &s, &len, &err), MOLMO_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(s, "a\0b\xff", 4);
    assert_int_equal(molmo_gguf_get_str(g, "t.empty_str", &s, &len, &err), MOLMO_OK);
    assert_int_equal(len, 0);
    kv = molmo_gguf_find(g, "a.i16");
    assert_true(kv && kv->type == MOLMO_GGUF_ARRAY && kv->elem_type == MOLMO_GGUF_I16 &&
                kv->n == 3);
    assert_true(molmo_gguf_kv_int(kv, 2, &v) && v == -3);
    assert_false(molmo_gguf_kv_int(kv, 3, &v));
    kv = molmo_gguf_find(g, "a.f32");
    assert_true(molmo_gguf_kv_float(kv, 1, &f) && f == -0.25);
    kv = molmo_gguf_find(g, "a.bool");
    assert_true(molmo_gguf_kv_int(kv, 1, &v) && v == 0);
    kv = molmo_gguf_find(g, "a.empty");
    assert_true(kv && kv->n == 0 && kv->elem_type == MOLMO_GGUF_U64);
    kv = molmo_gguf_find(g, "a.str");
    uint64_t l64;
    assert_true(molmo_gguf_kv_str(kv, 2, &s, &l64) && l64 == 11 && !memcmp(s, "long string", 11));
    assert_true(molmo_gguf_kv_str(kv, 1, &s, &l64) && l64 == 0);
    /* typed reads name the file and the key */
    assert_int_equal(molmo_gguf_get_str(g, "t.u8", &s, &len, &err), MOLMO_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'t.u8'"));
    assert_non_null(strstr(err.msg, "rt.gguf"));
    assert_int_equal(molmo_gguf_get_int(g, "a.i16", &v, &err), MOLMO_ERR_FORMAT);
    assert_int_equal(molmo_gguf_get_int(g, "nope", &v, &err), MOLMO_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    assert_int_equal(molmo_gguf_get_bool(g, "t.u8", &b, &err), MOLMO_ERR_FORMAT);
}

static void check_tensors(const molmo_gguf *g) {
    assert_int_equal(g->st.n_tensors, N_T);
    for (int i = 1; i < g->st.n_tensors; i++) /* sorted by name */
        assert_true(strcmp(g->st.tensors[i - 1].name, g->st.tensors[i].name) < 0);
    const unsigned char *base = g->st.maps[0].data;
    uint64_t expect_offset = 0; /* ggml's placement: packed in the order added, padded */
    for (int i = 0; i < N_T; i++) {
        const molmo_st_tensor *t = molmo_st_find(&g->st, tensors[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, tensors[i].dtype);
        assert_int_equal(t->n_dims, tensors[i].n_dims);
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            assert_int_equal(t->shape[d], tensors[i].shape[d]); /* PyTorch order */
            n *= (uint64_t)t->shape[d];
        }
        assert_true(t->n_elements == n);
        const int64_t k = tensors[i].shape[tensors[i].n_dims - 1];
        const size_t rb = molmo_dtype_row_bytes(t->dtype, k);
        assert_true(t->n_bytes == (k ? n / (uint64_t)k * rb : 0));
        const unsigned char *p = t->data;
        assert_true((uint64_t)(p - base) == g->data_offset + expect_offset);
        assert_int_equal((uintptr_t)p % 32, 0);
        expect_offset += (t->n_bytes + 31) / 32 * 32;
        for (uint64_t b = 0; b < t->n_bytes; b++)
            if (p[b] != pattern(i, (int64_t)(b / rb), b % rb))
                fail_msg("tensor %s byte %llu differs", t->name, (unsigned long long)b);
    }
    assert_true(g->data_offset + expect_offset == g->st.maps[0].size);
}

static void test_roundtrip(void **state) {
    molmo_error err;
    molmo_gguf_writer *w = NULL;
    assert_int_equal(molmo_gguf_writer_create(&w, &err), MOLMO_OK);
    add_metadata(w);
    fill_log log;
    memset(&log, 0, sizeof log);
    for (int i = 0; i < N_T; i++) {
        assert_int_equal(molmo_gguf_add_tensor(w, tensors[i].name, tensors[i].dtype,
                                               tensors[i].n_dims, tensors[i].shape, &err),
                         MOLMO_OK);
        log.row_bytes[i] =
            molmo_dtype_row_bytes(tensors[i].dtype, tensors[i].shape[tensors[i].n_dims - 1]);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/rt.gguf", tmpdir);
    assert_int_equal(molmo_gguf_writer_write(w, path, fill, &log, &err), MOLMO_OK);
    assert_int_equal(log.calls[6], 2); /* the 17 MB tensor came in two chunks */
    assert_int_equal(log.next_row[6], 4200);
    assert_int_equal(log.calls[5], 0); /* nothing to fill for an empty tensor */
    uint64_t size = molmo_gguf_writer_size(w);
    molmo_gguf_writer_free(w);

    molmo_gguf g;
    if (molmo_gguf_open(&g, path, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.alignment, 32);
    assert_true(g.st.maps[0].size == size);
    assert_int_equal(g.n_kv, 18);
    check_metadata(&g);
    check_tensors(&g);
    molmo_gguf_close(&g);
    molmo_gguf_close(&g); /* closing twice is harmless */
    char part[600];
    snprintf(part, sizeof part, "%s.part", path);
    assert_int_equal(access(part, F_OK), -1); /* renamed into place */
}

static molmo_status fill_zero(void *user, int index, int64_t row0, int64_t n_rows, void *dst,
                              molmo_error *err) {
    (void)user, (void)index, (void)row0, (void)n_rows, (void)dst;
    return MOLMO_OK;
}

static molmo_status fill_fail(void *user, int index, int64_t row0, int64_t n_rows, void *dst,
                              molmo_error *err) {
    return index == 1 ? molmo_err(err, MOLMO_ERR_FORMAT, "no data for tensor %d", index)
                      : fill_zero(user, index, row0, n_rows, dst, err);
}

/* A custom alignment moves every offset to its multiples; writer arguments are checked; a
 * failing fill leaves no file behind. */
static void test_writer_alignment_and_errors(void **state) {
    molmo_error err;
    molmo_gguf_writer *w = NULL;
    assert_int_equal(molmo_gguf_writer_create(&w, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_set_alignment(w, 3, &err), MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_gguf_set_alignment(w, 256, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_set_alignment(w, 256, &err), MOLMO_ERR_INVALID_ARG); /* twice */
    assert_int_equal(molmo_gguf_add_u32(w, "", 1, &err), MOLMO_ERR_INVALID_ARG);
    const int64_t s1[1] = {33}, s2[2] = {3, 64}, s5[5] = {1, 1, 1, 1, 32};
    assert_int_equal(molmo_gguf_add_tensor(w, "q", MOLMO_DTYPE_Q8_0, 1, s1, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "'q'"));
    assert_int_equal(molmo_gguf_add_tensor(w, "x", MOLMO_DTYPE_F32, 5, s5, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_gguf_add_tensor(w, "i", MOLMO_DTYPE_I32, 1, s1, &err),
                     MOLMO_ERR_INVALID_ARG);
    assert_int_equal(molmo_gguf_add_tensor(w, "a", MOLMO_DTYPE_F32, 1, s1, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_tensor(w, "b", MOLMO_DTYPE_Q4_0, 2, s2, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_add_tensor(w, "a", MOLMO_DTYPE_F32, 1, s1, &err),
                     MOLMO_ERR_INVALID_ARG);
    char path[512], part[600];
    snprintf(path, sizeof path, "%s/al.gguf", tmpdir);
    snprintf(part, sizeof part, "%s.part", path);
    assert_int_equal(molmo_gguf_writer_write(w, path, fill_fail, NULL, &err), MOLMO_ERR_FORMAT);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(part, F_OK), -1);
    assert_int_equal(molmo_gguf_writer_write(w, path, fill_zero, NULL, &err), MOLMO_OK);
    molmo_gguf_writer_free(w);
    molmo_gguf g;
    if (molmo_gguf_open(&g, path, &err) != MOLMO_OK) fail_msg("%s", err.msg);
    assert_int_equal(g.alignment, 256);
    assert_int_equal(g.data_offset % 256, 0);
    const molmo_st_tensor *b = molmo_st_find(&g.st, "b");
    assert_int_equal(b->offset, 256); /* 132 bytes of "a", padded */
    assert_int_equal(b->n_bytes, 3 * 2 * 18);
    molmo_gguf_close(&g);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", tmpdir);
    assert_int_equal(molmo_gguf_writer_create(&w, &err), MOLMO_OK);
    assert_int_equal(molmo_gguf_writer_write(w, bad, fill_zero, NULL, &err), MOLMO_ERR_IO);
    assert_non_null(strstr(err.msg, "x.gguf.part"));
    molmo_gguf_writer_free(w);
}

/* ---- hostile files ----------------------------------------------------------------------- */

typedef struct bb {
    unsigned char buf[4096];
    size_t n;
} bb;

static void put(bb *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof b->buf);
    memcpy(b->buf + b->n, p, n);
    b->n += n;
}
static void u32(bb *b, uint32_t v) { put(b, &v, 4); }
static void u64(bb *b, uint64_t v) { put(b, &v, 8); }
static void str(bb *b, const char *s) { u64(b, strlen(s)), put(b, s, strlen(s)); }
static void header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, version), u64(b, n_tensors), u64(b, n_kv);
}
static void kv_u32(bb *b, const char *k, uint32_t v) {
    str(b, k), u32(b, MOLMO_GGUF_U32), u32(b, v);
}
/* A tensor info with one or two dims (ne0 innermost). */
static void tinfo(bb *b, const char *name, int nd, uint64_t ne0, uint64_t ne1, uint32_t type,
                  uint64_t offset) {
    str(b, name), u32(b, (uint32_t)nd), u64(b, ne0);
    if (nd > 1) u64(b, ne1);
    u32(b, type), u64(b, offset);
}
static void pad(bb *b, size_t a) {
    while (b->n % a) b->buf[b->n++] = 0;
}
static void zeros(bb *b, size_t n) {
    memset(b->buf + b->n, 0, n);
    b->n += n;
}

/* Parses b and expects `code` with a message naming the file and holding `needle`. */
static void expect(const bb *b, molmo_status code, const char *needle, const char *what) {
    molmo_gguf g;
    molmo_error err = {0};
    molmo_status st = molmo_gguf_parse(b->buf, b->n, "hostile.gguf", &g, &err);
    if (st != code || !strstr(err.msg, "hostile.gguf") || !strstr(err.msg, needle))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\"", what, molmo_status_str(st), err.msg,
                 molmo_status_str(code), needle);
    assert_int_equal(g.st.n_tensors, 0); /* left empty */
    assert_null(g.kv);
}

/* A small valid file: two keys, an f32 [2, 8] and a q8_0 [32] tensor. */
static void valid(bb *b) {
    header(b, 3, 2, 2);
    kv_u32(b, "general.alignment", 32);
    str(b, "name"), u32(b, MOLMO_GGUF_STRING), str(b, "tiny");
    tinfo(b, "w", 2, 8, 2, MOLMO_GGML_F32, 0);
    tinfo(b, "q", 1, 32, 0, MOLMO_GGML_Q8_0, 64);
    pad(b, 32);
    for (int i = 0; i < 16; i++) {
        float f = (float)i;
        put(b, &f, 4);
    }
    zeros(b, 34);
    pad(b, 32);
}

static void test_truncations(void **state) {
    bb b;
    valid(&b);
    molmo_gguf g;
    molmo_error err;
    assert_int_equal(molmo_gguf_parse(b.buf, b.n, "hostile.gguf", &g, &err), MOLMO_OK);
    assert_int_equal(g.st.n_tensors, 2);
    molmo_gguf_close(&g);
    /* every prefix that cuts into the last tensor's bytes or anything before them fails;
     * only the trailing padding of the last tensor may be missing (ggml writes it, the data do
     * not need it) */
    size_t end_of_data = b.n - 30; /* q8_0 block ends 30 bytes before the padded end */
    for (size_t n = 0; n < end_of_data; n++) {
        molmo_status st = molmo_gguf_parse(b.buf, n, "hostile.gguf", &g, &err);
        if (st != MOLMO_ERR_FORMAT || !strstr(err.msg, "hostile.gguf"))
            fail_msg("prefix of %zu bytes: %s \"%s\"", n, molmo_status_str(st), err.msg);
    }
    assert_int_equal(molmo_gguf_parse(b.buf, end_of_data, "hostile.gguf", &g, &err), MOLMO_OK);
    molmo_gguf_close(&g);
    assert_int_equal(molmo_gguf_parse(NULL, 0, "hostile.gguf", &g, &err), MOLMO_ERR_FORMAT);
}

static void test_hostile_header_and_metadata(void **state) {
    bb b;
    valid(&b);
    memcpy(b.buf, "GGUG", 4);
    expect(&b, MOLMO_ERR_FORMAT, "not a GGUF file", "magic");
    header(&b, 1, 0, 0);
    expect(&b, MOLMO_ERR_UNSUPPORTED, "version 1", "v1");
    header(&b, 3u << 24, 0, 0);
    expect(&b, MOLMO_ERR_UNSUPPORTED, "big-endian", "byte-swapped version");
    header(&b, 7, 0, 0);
    expect(&b, MOLMO_ERR_FORMAT, "version 7", "future version");
    header(&b, 3, 0, 1ull << 62);
    expect(&b, MOLMO_ERR_FORMAT, "metadata entries", "huge n_kv");
    header(&b, 3, 1ull << 62, 0);
    expect(&b, MOLMO_ERR_FORMAT, "tensors", "huge n_tensors");
    header(&b, 3, 0, 1);
    u64(&b, 1ull << 63), put(&b, "abc", 3), zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "metadata key 0 has length", "huge key length");
    header(&b, 3, 0, 1);
    str(&b, "k"), u32(&b, MOLMO_GGUF_STRING), u64(&b, 1ull << 40), zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "key 'k'", "huge string value");
    header(&b, 3, 0, 1);
    str(&b, "arr"), u32(&b, MOLMO_GGUF_ARRAY), u32(&b, MOLMO_GGUF_U64), u64(&b, 1ull << 61);
    zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "key 'arr' holds", "huge array");
    header(&b, 3, 0, 1);
    str(&b, "arr"), u32(&b, MOLMO_GGUF_ARRAY), u32(&b, MOLMO_GGUF_STRING), u64(&b, 1ull << 61);
    zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "key 'arr' holds", "huge string array");
    header(&b, 3, 0, 1);
    str(&b, "arr"), u32(&b, MOLMO_GGUF_ARRAY), u32(&b, MOLMO_GGUF_ARRAY), u64(&b, 1), zeros(&b, 16);
    expect(&b, MOLMO_ERR_UNSUPPORTED, "array of arrays", "nested array");
    header(&b, 3, 0, 1);
    str(&b, "k"), u32(&b, 13), zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "key 'k' has unknown value type 13", "unknown value type");
    header(&b, 3, 0, 1);
    str(&b, "b"), u32(&b, MOLMO_GGUF_BOOL), put(&b, "\x02", 1), zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "neither 0 nor 1", "bool 2");
    header(&b, 3, 0, 2);
    kv_u32(&b, "dup", 1), kv_u32(&b, "dup", 2);
    expect(&b, MOLMO_ERR_FORMAT, "'dup' appears twice", "duplicate key");
    header(&b, 3, 0, 1);
    kv_u32(&b, "", 1);
    expect(&b, MOLMO_ERR_FORMAT, "metadata key 0 is empty", "empty key");
    header(&b, 3, 0, 1);
    u64(&b, 3), put(&b, "a\0b", 3), u32(&b, MOLMO_GGUF_U8), zeros(&b, 16);
    expect(&b, MOLMO_ERR_FORMAT, "NUL", "key with NUL");
    header(&b, 3, 0, 1);
    str(&b, "general.alignment"), u32(&b, MOLMO_GGUF_U64), u64(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "must be a u32", "alignment type");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 24);
    expect(&b, MOLMO_ERR_FORMAT, "not a power of two", "alignment 24");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect(&b, MOLMO_ERR_FORMAT, "not a power of two", "alignment 0");
}

static void test_hostile_tensors(void **state) {
    bb b;
    header(&b, 3, 1, 0);
    str(&b, "t"), u32(&b, 0), u32(&b, 0), u64(&b, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't' has 0 dimensions", "0 dims");
    header(&b, 3, 1, 0);
    str(&b, "t"), u32(&b, 5), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't' has 5 dimensions", "5 dims");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, 1ull << 40, 1ull << 40, MOLMO_GGML_F32, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't': the element count overflows", "dims product");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 1ull << 63, 0, MOLMO_GGML_F32, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "overflows", "dim above INT64_MAX");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, (1ull << 62) + 32, 0, MOLMO_GGML_F32, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "byte size overflows", "bytes overflow");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 32, 0, 99, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't' has unknown ggml type 99", "unknown type");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 256, 0, 13, 0), zeros(&b, 32);
    expect(&b, MOLMO_ERR_UNSUPPORTED, "ggml type 13 (q5_K)", "q5_K");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, 33, 2, MOLMO_GGML_Q8_0, 0), pad(&b, 32), zeros(&b, 96);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't' (q8_0) has rows of 33 values", "block divisibility");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 4, 0, MOLMO_GGML_F32, 4), pad(&b, 32), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "offset 4 is not a multiple of the alignment 32", "misaligned");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 16, 0, MOLMO_GGML_F32, 32), pad(&b, 32), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 't': its 64 bytes at offset 32 run past", "past end");
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 1, 16, 0, MOLMO_GGML_F32, UINT64_MAX - 31), pad(&b, 32), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "run past the end", "offset wraps");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, 16, 0, MOLMO_GGML_F32, 0), tinfo(&b, "b", 1, 8, 0, MOLMO_GGML_F32, 32);
    pad(&b, 32), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "tensors 'a' and 'b' overlap", "overlap");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, 8, 0, MOLMO_GGML_F32, 0), tinfo(&b, "a", 1, 8, 0, MOLMO_GGML_F32, 32);
    pad(&b, 32), zeros(&b, 64);
    expect(&b, MOLMO_ERR_FORMAT, "tensor 'a' appears twice", "duplicate name");
    header(&b, 3, 1, 0);
    tinfo(&b, "a", 1, 8, 0, MOLMO_GGML_F32, 0);
    expect(&b, MOLMO_ERR_FORMAT, "before its data section", "no data section");
    header(&b, 3, 1, 0);
    str(&b, ""), zeros(&b, 32);
    expect(&b, MOLMO_ERR_FORMAT, "tensor name 0 is empty", "empty name");
}

/* Every allocation of a parse can fail: MOLMO_ERR_NOMEM, nothing leaked (ASan checks). */
static void test_parse_oom(void **state) {
    bb b;
    valid(&b);
    molmo_gguf g;
    molmo_error err;
    int saw_ok = 0;
    for (long n = 0; n < 64 && !saw_ok; n++) {
        molmo_alloc_fail_after(n);
        molmo_status st = molmo_gguf_parse(b.buf, b.n, "hostile.gguf", &g, &err);
        molmo_alloc_fail_after(-1);
        if (st == MOLMO_OK) {
            saw_ok = 1;
            molmo_gguf_close(&g);
        } else {
            assert_int_equal(st, MOLMO_ERR_NOMEM);
        }
    }
    assert_true(saw_ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_alignment_and_errors),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_hostile_header_and_metadata),
        cmocka_unit_test(test_hostile_tensors),
        cmocka_unit_test(test_parse_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

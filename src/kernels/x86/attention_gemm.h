/* attention_gemm.h — the GEMM path of the x86 attention kernels (problems of 16 query rows or
 * more: the ViT, prefill), written once for avx2_attention.c and avx512_attention.c. Each of
 * them includes it and passes a constant table of its own GEMM and vector functions, so the
 * code is compiled with that file's ISA flags.
 *
 * Per work item (a head and a block of query rows): S = q_block · K_g^T and O = P · V_g as
 * two register-tiled GEMMs, the softmax in between (exp(s - max) in place in the scratch rows,
 * the sum in double; with bf16 activations the weights are then rounded to bf16), and O scaled
 * by 1/sum at the end. Rows that see fewer keys (causal) get zero weights up to the longest row
 * of the block, which leaves every FMA chain unchanged. K and V are packed into contiguous
 * panels (which also avoids the cache-set conflicts of a 4 KiB row stride): each thread packs
 * a kv head once into its pool workspace for all the query blocks of that head it runs (and
 * the other heads of a GQA group), or, without room for a head's panels, each block packs
 * what it uses inside the GEMMs; the bits are the same either way. */
#ifndef MOLMO_KERNELS_X86_ATTENTION_GEMM_H
#define MOLMO_KERNELS_X86_ATTENTION_GEMM_H

#include "kernels/x86/x86.h"

typedef struct molmo_x86_attn_isa {
    void (*gemm)(const molmo_x86_gemm *g, float *ws, size_t ws_floats);
    size_t (*packed_floats)(int N, int kp);
    void (*pack)(const molmo_x86_gemm *g, int kp, float *pw);
    void (*packed)(const molmo_x86_gemm *g, const float *pw, int kp);
    float (*exp_sub_max)(float *x, int n, float scale); /* returns 1 / sum */
    void (*round_bf16)(float *x, size_t n);
    void (*scale)(float *x, int n, float s);           /* x[0..n) *= s */
    /* S on AMX-BF16 tiles (x86.h, molmo_k_attn_split_k_bytes ...), or NULL: the bytes of a
     * kv head's split K for a (0: not for a), the split, and S of a block of rows */
    size_t (*split_k_bytes)(const molmo_attn_args *a);
    void (*split_k)(const molmo_attn_args *a, int g, void *kb);
    void (*scores_split)(const molmo_attn_args *a, int h, int i0, int i1, const void *kb,
                         float *S, size_t ld, void *qb);
} molmo_x86_attn_isa;

/* One item; pk/pv: the head's packed K and V (molmo_x86_attn_pack_head), or NULL to pack
 * inside the GEMMs with workspace ws; or kb: the head's split K (I->split_k, with pv) and qb
 * its workspace, for S on the tiles. */
static void molmo_x86_attn_item_gemm(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                     int h, int i0, int i1, float *S, const float *pk,
                                     const float *pv, const void *kb, void *qb, float *ws,
                                     size_t ws_floats) {
    const size_t ld = molmo_attn_ld_scores(a->n_kv);
    const int hd = a->hd, g = h / (a->n_heads / a->n_kv_heads), nr = i1 - i0;
    float inv[MOLMO_ATTN_QB];
    int len[MOLMO_ATTN_QB], lmax = 0;
    for (int r = 0; r < nr; r++) {
        len[r] = molmo_attn_row_len(a, i0 + r);
        lmax = len[r] > lmax ? len[r] : lmax;
    }
    const size_t es = molmo_attn_kv_bytes(a->kv_type);
    const molmo_x86_gemm sc = {S, ld, a->q + (size_t)i0 * (size_t)a->ldq + (size_t)h * (size_t)hd,
                               (size_t)a->ldq, (const char *)a->k + (size_t)g * a->ldh * es,
                               a->kv_type, (size_t)a->ldk, 0, nr, lmax, hd};
    if (kb)
        I->scores_split(a, h, i0, i1, kb, S, ld, qb);
    else if (pk)
        I->packed(&sc, pk, hd);
    else
        I->gemm(&sc, ws, ws_floats);
    for (int r = 0; r < nr; r++) {
        inv[r] = I->exp_sub_max(S + r * ld, len[r], a->scale);
        if (a->bf16) I->round_bf16(S + r * ld, (size_t)len[r]);
        for (int j = len[r]; j < lmax; j++) S[r * ld + (size_t)j] = 0.0f;
    }
    float *o = a->out + (size_t)i0 * (size_t)a->ldo + (size_t)h * (size_t)hd;
    const molmo_x86_gemm pvg = {o, (size_t)a->ldo, S, ld,
                                (const char *)a->v + (size_t)g * a->ldh * es, a->kv_type,
                                (size_t)a->ldv, 1, nr, hd, lmax};
    if (pv)
        I->packed(&pvg, pv, a->n_kv);
    else
        I->gemm(&pvg, ws, ws_floats);
    for (int r = 0; r < nr; r++) I->scale(o + (size_t)r * (size_t)a->ldo, hd, inv[r]);
}

/* Floats that molmo_x86_attn_pack_head needs: every key of a kv head as K^T panels, every
 * value as V panels. */
static size_t molmo_x86_attn_head_floats(const molmo_x86_attn_isa *I, const molmo_attn_args *a) {
    return I->packed_floats(a->n_kv, a->hd) + I->packed_floats(a->hd, a->n_kv);
}

/* Packs kv head g's K (all n_kv keys) into pk and its V after them; returns where V starts.
 * (ViT-shaped attention on AVX-512, 2 threads: 5.25 -> 4.63 ms per layer against packing per
 * block; AVX2 9.74 -> 9.04.) */
static float *molmo_x86_attn_pack_head(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                       int g, float *pk) {
    const size_t es = molmo_attn_kv_bytes(a->kv_type);
    const molmo_x86_gemm k = {NULL, 0, NULL, 0, (const char *)a->k + (size_t)g * a->ldh * es,
                              a->kv_type, (size_t)a->ldk, 0, 0, a->n_kv, a->hd};
    const molmo_x86_gemm v = {NULL, 0, NULL, 0, (const char *)a->v + (size_t)g * a->ldh * es,
                              a->kv_type, (size_t)a->ldv, 1, 0, a->hd, a->n_kv};
    float *pv = pk + I->packed_floats(a->n_kv, a->hd);
    I->pack(&k, a->hd, pk);
    I->pack(&v, a->n_kv, pv);
    return pv;
}

/* Work items [it0, it1) with S on the tiles: the workspace holds a kv head's split K, the
 * query workspace and its packed V. Returns 0 (nothing done) where that does not apply or fit. */
static int molmo_x86_attn_split_items(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                      int it0, int it1, float *scratch, float *ws,
                                      size_t ws_floats) {
    const size_t kbytes = I->split_k_bytes ? I->split_k_bytes(a) : 0;
    const size_t qbytes = (size_t)2 * 3 * (size_t)(a->hd / 32) * 1024;
    if (!kbytes || !ws ||
        (kbytes + qbytes) / sizeof(float) + I->packed_floats(a->hd, a->n_kv) > ws_floats)
        return 0;
    unsigned char *kb = (unsigned char *)ws, *qb = kb + kbytes;
    float *pv = (float *)(qb + qbytes);
    const size_t es = molmo_attn_kv_bytes(a->kv_type);
    int have = -1; /* the kv head whose K and V are in ws */
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        const int g = h / (a->n_heads / a->n_kv_heads);
        if (g != have) {
            const char *vg = (const char *)a->v + (size_t)g * a->ldh * es;
            const molmo_x86_gemm v = {NULL, 0, NULL, 0, vg, a->kv_type, (size_t)a->ldv, 1, 0,
                                      a->hd, a->n_kv};
            I->split_k(a, g, kb);
            I->pack(&v, a->n_kv, pv);
            have = g;
        }
        molmo_x86_attn_item_gemm(I, a, h, i0, i1, scratch, NULL, pv, kb, qb, NULL, 0);
    }
    return 1;
}

/* Work items [it0, it1) on the GEMM path. */
static void molmo_x86_attn_gemm_items(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                      int it0, int it1, float *scratch, float *ws,
                                      size_t ws_floats) {
    if (molmo_x86_attn_split_items(I, a, it0, it1, scratch, ws, ws_floats)) return;
    const int packed = ws && molmo_x86_attn_head_floats(I, a) <= ws_floats;
    int have = -1; /* the kv head whose panels are in ws */
    float *pv = NULL;
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        const int g = h / (a->n_heads / a->n_kv_heads);
        if (packed) {
            if (g != have) pv = molmo_x86_attn_pack_head(I, a, g, ws), have = g;
            molmo_x86_attn_item_gemm(I, a, h, i0, i1, scratch, ws, pv, NULL, NULL, NULL, 0);
        } else {
            molmo_x86_attn_item_gemm(I, a, h, i0, i1, scratch, NULL, NULL, NULL, NULL, ws,
                                     ws_floats);
        }
    }
}

#endif

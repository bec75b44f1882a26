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

/* Where a thread keeps a kv head for all the items of it that it runs (packed once per head):
 * its K split into bf16 parts for S on the tiles (kb, with qb the tiles' query room), or its K
 * as GEMM panels (pk); and its V as GEMM panels (pv). pv NULL: no room, each item packs what
 * it uses inside its GEMMs. */
typedef struct molmo_x86_attn_head {
    unsigned char *kb, *qb;
    float *pk, *pv;
} molmo_x86_attn_head;

/* One item, with the head kept in H (its pv set), or packing inside the GEMMs with workspace
 * ws. */
static void molmo_x86_attn_item_gemm(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                     int h, int i0, int i1, float *S, const molmo_x86_attn_head *H,
                                     float *ws, size_t ws_floats) {
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
    if (H->kb)
        I->scores_split(a, h, i0, i1, H->kb, S, ld, H->qb);
    else if (H->pk)
        I->packed(&sc, H->pk, hd);
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
    if (H->pv)
        I->packed(&pvg, H->pv, a->n_kv);
    else
        I->gemm(&pvg, ws, ws_floats);
    for (int r = 0; r < nr; r++) I->scale(o + (size_t)r * (size_t)a->ldo, hd, inv[r]);
}

/* The head's place in the workspace, by what fits: split K (where the table has the tiles and
 * they take a), the tiles' query room and V panels; else K and V panels (ViT-shaped attention
 * on AVX-512, 2 threads: 5.25 -> 4.63 ms per layer against packing per block; AVX2 9.74 ->
 * 9.04); else nothing. */
static molmo_x86_attn_head molmo_x86_attn_head_place(const molmo_x86_attn_isa *I,
                                                     const molmo_attn_args *a, float *ws,
                                                     size_t ws_floats) {
    molmo_x86_attn_head H = {NULL, NULL, NULL, NULL};
    const size_t kbytes = I->split_k_bytes ? I->split_k_bytes(a) : 0;
    const size_t qbytes = (size_t)2 * 3 * (size_t)(a->hd / 32) * 1024;
    const size_t kfloats = I->packed_floats(a->n_kv, a->hd);
    const size_t vfloats = I->packed_floats(a->hd, a->n_kv);
    if (!ws) return H;
    if (kbytes && (kbytes + qbytes) / sizeof(float) + vfloats <= ws_floats) {
        H.kb = (unsigned char *)ws;
        H.qb = H.kb + kbytes;
        H.pv = (float *)(H.qb + qbytes);
    } else if (kfloats + vfloats <= ws_floats) {
        H.pk = ws;
        H.pv = ws + kfloats;
    }
    return H;
}

/* Packs kv head g (all n_kv keys) into its place H. */
static void molmo_x86_attn_pack_head(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                     int g, const molmo_x86_attn_head *H) {
    const size_t es = molmo_attn_kv_bytes(a->kv_type);
    const molmo_x86_gemm k = {NULL, 0, NULL, 0, (const char *)a->k + (size_t)g * a->ldh * es,
                              a->kv_type, (size_t)a->ldk, 0, 0, a->n_kv, a->hd};
    const molmo_x86_gemm v = {NULL, 0, NULL, 0, (const char *)a->v + (size_t)g * a->ldh * es,
                              a->kv_type, (size_t)a->ldv, 1, 0, a->hd, a->n_kv};
    if (H->kb)
        I->split_k(a, g, H->kb);
    else
        I->pack(&k, a->hd, H->pk);
    I->pack(&v, a->n_kv, H->pv);
}

/* Work items [it0, it1) on the GEMM path. */
static void molmo_x86_attn_gemm_items(const molmo_x86_attn_isa *I, const molmo_attn_args *a,
                                      int it0, int it1, float *scratch, float *ws,
                                      size_t ws_floats) {
    const molmo_x86_attn_head H = molmo_x86_attn_head_place(I, a, ws, ws_floats);
    int have = -1; /* the kv head in H */
    for (int it = it0; it < it1; it++) {
        int h, i0, i1;
        molmo_attn_item(a, it, &h, &i0, &i1);
        const int g = h / (a->n_heads / a->n_kv_heads);
        if (H.pv && g != have) molmo_x86_attn_pack_head(I, a, g, &H), have = g;
        molmo_x86_attn_item_gemm(I, a, h, i0, i1, scratch, &H, H.pv ? NULL : ws,
                                 H.pv ? 0 : ws_floats);
    }
}

#endif

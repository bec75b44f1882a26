/* test_kernels_ops.c — every non-matmul kernel (norms, softmax, activations, adds, attention,
 * RoPE, dtype conversion) of the fast sets this CPU runs against the plain-C reference, the
 * references against double precision, and 1 vs N threads for the threaded ops. Shapes: 1, 7,
 * 16, 17, 4095 and the model widths; attention with GQA, causal offsets (KV cache), decode over
 * 4095 keys, odd head sizes and strided rows; molmo_op_matmul_many against single matmuls.
 * Tolerances: kernel_check.h. */
#define _POSIX_C_SOURCE 200809L
#include "base/alloc.h"
#include "base/fp16.h"
#include "kernel_check.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#if defined(__x86_64__)
#include "kernels/x86/x86.h"
#endif

/* ------------------------------------------------------------------------------- norms */

static const int ROW_NS[] = {1, 7, 16, 17, 64, 1024, 4095};

/* Three rows: centred noise, noise on a large offset (cancellation), and a constant row. */
static float *norm_input(int N) {
    float *x = frand((size_t)3 * N, 2.0f);
    for (int j = 0; j < N; j++) {
        x[N + j] = 50.0f + x[N + j];
        x[2 * N + j] = -3.0f;
    }
    return x;
}

static void test_norms_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    const molmo_kernels *ref = molmo_kernels_ref();
    for (size_t ni = 0; ni < sizeof ROW_NS / sizeof ROW_NS[0]; ni++) {
        const int N = ROW_NS[ni];
        float *x = norm_input(N), *w = frand((size_t)N, 1.5f), *b = frand((size_t)N, 1.0f);
        float *r = malloc(3 * (size_t)N * sizeof(float)), *g = malloc(3 * (size_t)N * sizeof(float));
        for (int variant = 0; variant < 4; variant++) {
            const float *wv = variant == 3 ? NULL : w, *bv = variant >= 2 ? NULL : b;
            const int rms = variant % 2;
            char what[64];
            snprintf(what, sizeof what, "N=%d%s%s", N, wv ? " w" : "", !rms && bv ? " b" : "");
            for (int i = 0; i < 3; i++) {
                if (rms) ref->rmsnorm(r + (size_t)i * N, x + (size_t)i * N, wv, N, 1e-6f);
                else ref->layernorm(r + (size_t)i * N, x + (size_t)i * N, wv, bv, N, 1e-5f);
            }
            for (int si = 0; si < n_sets; si++) {
                memcpy(g, x, 3 * (size_t)N * sizeof(float)); /* in place */
                for (int i = 0; i < 3; i++) {
                    if (rms) sets[si]->rmsnorm(g + (size_t)i * N, g + (size_t)i * N, wv, N, 1e-6f);
                    else sets[si]->layernorm(g + (size_t)i * N, g + (size_t)i * N, wv, bv, N, 1e-5f);
                }
                check(sets[si]->name, rms ? "rmsnorm" : "layernorm", g, r, 3 * (size_t)N, what);
            }
            /* The reference against double precision: the mean is rounded to f32 before the
             * subtraction (as PyTorch does), which costs up to u*|mean|*rstd absolute. */
            for (int i = 0; i < 3; i++) {
                const float *xi = x + (size_t)i * N;
                double mean = 0, var = 0;
                for (int j = 0; j < N; j++) mean += xi[j];
                mean = rms ? 0 : mean / N;
                for (int j = 0; j < N; j++) var += (xi[j] - mean) * (xi[j] - mean);
                const double rstd = 1.0 / sqrt(var / N + (rms ? 1e-6 : 1e-5));
                for (int j = 0; j < N; j++) {
                    const double wj = wv ? wv[j] : 1.0, bj = !rms && bv ? bv[j] : 0.0;
                    const double e = (xi[j] - mean) * rstd * wj + bj;
                    const double bound = 0x1p-24 * (8 * fabs((xi[j] - mean) * rstd * wj) +
                                                    2 * fabs(mean) * rstd * fabs(wj) + 2 * fabs(bj)) + 1e-30;
                    if (fabs(r[(size_t)i * N + j] - e) > bound)
                        fail_msg("ref %s %s row %d col %d: %.9g vs exact %.9g", rms ? "rmsnorm" : "layernorm",
                                 what, i, j, (double)r[(size_t)i * N + j], e);
                }
            }
        }
        free(x);
        free(w);
        free(b);
        free(r);
        free(g);
    }
}

/* ------------------------------------------------------------- softmax and activations */

static void test_softmax_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    for (size_t ni = 0; ni < sizeof ROW_NS / sizeof ROW_NS[0]; ni++) {
        const int N = ROW_NS[ni];
        float *x = frand((size_t)3 * N, 10.0f);
        for (int j = 0; j < N; j++) x[N + j] *= 8.0f; /* spread 160: most terms underflow */
        for (int j = 0; j < N; j++) x[2 * N + j] = 7.0f;
        float *r = malloc(3 * (size_t)N * sizeof(float)), *g = malloc(3 * (size_t)N * sizeof(float));
        memcpy(r, x, 3 * (size_t)N * sizeof(float));
        for (int i = 0; i < 3; i++) molmo_kernels_ref()->softmax(r + (size_t)i * N, N);
        char what[32];
        snprintf(what, sizeof what, "N=%d", N);
        for (int si = 0; si < n_sets; si++) {
            memcpy(g, x, 3 * (size_t)N * sizeof(float));
            for (int i = 0; i < 3; i++) sets[si]->softmax(g + (size_t)i * N, N);
            check(sets[si]->name, "softmax", g, r, 3 * (size_t)N, what);
        }
        for (int i = 0; i < 3; i++) { /* reference vs double */
            const float *xi = x + (size_t)i * N;
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < N; j++) mx = xi[j] > mx ? xi[j] : mx;
            for (int j = 0; j < N; j++) s += exp(xi[j] - mx);
            for (int j = 0; j < N; j++) {
                const double e = exp(xi[j] - mx) / s;
                /* + 2 subnormal steps: exp and the 1/sum product may both land below 2^-126 */
                const double bound = 0x1p-24 * e * (fabs(xi[j] - mx) + 6) + 2 * 0x1p-149;
                if (fabs(r[(size_t)i * N + j] - e) > bound)
                    fail_msg("ref softmax %s row %d col %d: %.9g vs exact %.9g", what, i, j,
                             (double)r[(size_t)i * N + j], e);
            }
        }
        free(x);
        free(r);
        free(g);
    }
}

/* One peak 100 above the rest of its row, at columns that the fast sets' max takes on each
 * of its chains (and the tail): a max that missed it would overflow exp to inf. */
static void test_softmax_peak(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets), N = 200;
    static const int cols[] = {0, 5, 16, 29, 32, 47, 48, 63, 64, 127, 190, 199};
    float x[200], r[200], g[200];
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        for (int j = 0; j < N; j++) x[j] = -50.0f + 0.01f * (float)j;
        x[cols[c]] = 50.0f;
        memcpy(r, x, sizeof x);
        molmo_kernels_ref()->softmax(r, N);
        char what[32];
        snprintf(what, sizeof what, "peak at %d", cols[c]);
        for (int si = 0; si < n_sets; si++) {
            memcpy(g, x, sizeof x);
            sets[si]->softmax(g, N);
            check(sets[si]->name, "softmax", g, r, (size_t)N, what);
        }
    }
}

static const size_t EW_NS[] = {1, 7, 16, 17, 4095};

static double qgelu_exact(double x) { return x / (1 + exp(-1.702 * x)); }
static double silu_exact(double g) { return g / (1 + exp(-g)); }

static void test_elementwise_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    const molmo_kernels *ref = molmo_kernels_ref();
    for (size_t ni = 0; ni < sizeof EW_NS / sizeof EW_NS[0]; ni++) {
        const size_t n = EW_NS[ni];
        float *x = frand(n, 20.0f), *u = frand(n, 2.0f), *y = frand(n, 3.0f);
        float *r = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
        char what[32];
        snprintf(what, sizeof what, "n=%zu", n);
        for (int op = 0; op < 4; op++) {
            static const char *names[4] = {"quick_gelu", "silu_mul", "add", "scale_add"};
            const molmo_kernels *all[3] = {ref, n_sets > 0 ? sets[0] : NULL, n_sets > 1 ? sets[1] : NULL};
            for (int si = 0; si < 3 && all[si]; si++) {
                float *o = si == 0 ? r : g;
                const molmo_kernels *k = all[si];
                switch (op) {
                case 0: memcpy(o, x, n * sizeof(float)); k->quick_gelu(o, n); break;
                case 1: k->silu_mul(o, x, u, n); break;
                case 2: memcpy(o, y, n * sizeof(float)); k->add(o, x, n); break;
                default: memcpy(o, y, n * sizeof(float)); k->scale_add(o, x, -0.37f, n); break;
                }
                if (si > 0) check(k->name, names[op], g, r, n, what);
            }
            for (size_t i = 0; i < n && op < 2; i++) { /* reference vs double: a few ulp */
                /* quick_gelu rounds its exp argument 1.702x first: relative error |1.702x|*u. */
                const double e = op == 0 ? qgelu_exact(x[i]) : silu_exact(x[i]) * u[i];
                const double arg = op == 0 ? fabs(1.702 * x[i]) : 0.0;
                if (fabs(r[i] - e) > 0x1p-24 * (12 + 2 * arg) * fabs(e) + 1e-40)
                    fail_msg("ref %s x=%.9g: %.9g vs exact %.9g", names[op], (double)x[i], (double)r[i], e);
            }
        }
        free(x);
        free(u);
        free(y);
        free(r);
        free(g);
    }
}

/* Saturation of exp at both ends: finite inputs never give NaN, and the tails are right (the
 * softmax's included). */
static void test_activation_extremes(void **state) {
    (void)state;
    static const float xs[] = {-1e30f, -1000.0f, -104.5f, -103.9f, -90.0f, -88.0f, -87.0f, -20.0f,
                               -0.0f,  0.0f,     1e-30f,  20.0f,   50.0f,  88.0f,  88.8f,  90.0f,
                               1000.0f, 1e30f};
    const size_t n = sizeof xs / sizeof xs[0];
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int si = 0; si < 3; si++) {
        if (!all[si]) continue;
        float q[sizeof xs / sizeof xs[0]], s[sizeof xs / sizeof xs[0]], one[sizeof xs / sizeof xs[0]];
        memcpy(q, xs, sizeof q);
        for (size_t i = 0; i < n; i++) one[i] = 1.0f;
        all[si]->quick_gelu(q, n);
        all[si]->silu_mul(s, xs, one, n);
        for (size_t i = 0; i < n; i++) {
            const double eq = qgelu_exact(xs[i]), es = silu_exact(xs[i]);
            if (isnan(q[i]) || isnan(s[i]) || fabs(q[i] - eq) > 1e-6 * fabs(eq) + 1e-37 ||
                fabs(s[i] - es) > 1e-6 * fabs(es) + 1e-37)
                fail_msg("[%s] x=%g: quick_gelu %.9g (exact %.9g), silu %.9g (exact %.9g)",
                         all[si]->name, (double)xs[i], (double)q[i], eq, (double)s[i], es);
        }
        /* a softmax row spread over the bottom of the float range: the fast sets' exp is 0
         * below -87.33 (no denormal is computed, avx512_math.h), which is within 1.2e-38 of
         * the true weights there; the others keep the reference's relative accuracy */
        static const float row[] = {0.0f, -20.0f, -87.0f, -87.3f, -87.34f, -90.0f, -150.0f,
                                    -1e30f, 3.0f, -INFINITY};
        enum { NR = sizeof row / sizeof row[0] };
        float p[NR];
        memcpy(p, row, sizeof p);
        all[si]->softmax(p, NR);
        double sum = 0;
        for (size_t i = 0; i < NR; i++) sum += exp((double)row[i] - 3.0);
        for (size_t i = 0; i < NR; i++) {
            const double e = exp((double)row[i] - 3.0) / sum;
            const int flushed = si > 0 && row[i] - 3.0f < -87.33f;
            if (flushed ? p[i] != 0.0f : fabs(p[i] - e) > 1e-6 * e + 0x1p-149)
                fail_msg("[%s] softmax of %g (max 3): %.9g, exact %.9g", all[si]->name,
                         (double)row[i], (double)p[i], e);
        }
    }
}

/* --------------------------------------------------------------------------- attention */

typedef struct attn_case {
    int n_q, n_kv, n_heads, n_kv_heads, hd, causal, q_pos0, pad;
} attn_case;

static const attn_case ATTN_CASES[] = {
    {1, 1, 1, 1, 64, 0, 0, 0},      {7, 7, 2, 1, 64, 1, 0, 0},      {17, 17, 4, 2, 128, 1, 0, 3},
    {145, 145, 16, 16, 64, 0, 0, 0}, {1, 100, 4, 2, 128, 1, 99, 0},  {5, 30, 4, 1, 128, 1, 25, 1},
    {16, 16, 2, 2, 16, 0, 0, 0},    {9, 20, 3, 3, 17, 0, 0, 2},     {20, 33, 2, 1, 80, 1, 13, 0},
    {1, 4095, 2, 1, 64, 1, 4094, 0}, {4, 4, 16, 16, 64, 0, 0, 0},
    /* shapes of the AMX-BF16 path for bf16 activations (hd % 32 == 0): the ViT's 577 x 64,
     * hd 96 strided, hd 128 with GQA (two passes of output tiles), 33 keys, and a causal chunk
     * after 20 cached positions (prefill) */
    {577, 577, 2, 2, 64, 0, 0, 0},  {40, 33, 3, 3, 96, 0, 0, 1},  {20, 300, 2, 1, 128, 0, 0, 0},
    {45, 65, 4, 2, 64, 1, 20, 0},
};

/* Keys/values (of type kt) in rows of ldk (kv head g at column g*hd) when ldh == 0, else
 * head-major: head g at element g*ldh, rows of hd. */
static size_t g_attn_ws = WS_FLOATS; /* workspace the attention runs get */
static int g_attn_bf16;               /* the attention runs' bf16 flag */

static void attn_run_kv(const molmo_kernels *k, const attn_case *c, float *out, const float *q,
                        const void *kk, const void *v, molmo_dtype kt, size_t ldh, float *scratch) {
    const int ldq = c->n_heads * c->hd + c->pad;
    const int ldk = ldh ? c->hd : c->n_kv_heads * c->hd + c->pad;
    const molmo_attn_args a = {.out = out, .ldo = c->n_heads * c->hd, .q = q, .k = kk, .v = v,
                               .kv_type = kt, .bf16 = g_attn_bf16, .ldq = ldq, .ldk = ldk, .ldv = ldk,
                               .ldh = ldh ? ldh : (size_t)c->hd, .n_q = c->n_q, .n_kv = c->n_kv,
                               .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .hd = c->hd,
                               .scale = 1.0f / sqrtf((float)c->hd), .causal = c->causal,
                               .q_pos0 = c->q_pos0};
    const int n_items = c->n_heads * molmo_attn_qblocks(c->n_q);
    k->attention(&a, 0, n_items, scratch, g_attn_ws ? g_ws : NULL, g_attn_ws);
}

static void attn_run_ldh(const molmo_kernels *k, const attn_case *c, float *out, const float *q,
                         const float *kk, const float *v, size_t ldh, float *scratch) {
    attn_run_kv(k, c, out, q, kk, v, MOLMO_DTYPE_F32, ldh, scratch);
}

/* x as IEEE half (h) and as the f32 values of those halves (r), n elements. */
static void to_half(const float *x, size_t n, uint16_t *h, float *r) {
    for (size_t i = 0; i < n; i++) {
        h[i] = molmo_f32_to_f16(x[i]);
        r[i] = molmo_f16_to_f32(h[i]);
    }
}

static void attn_run(const molmo_kernels *k, const attn_case *c, float *out, const float *q,
                     const float *kk, const float *v, float *scratch) {
    attn_run_ldh(k, c, out, q, kk, v, 0, scratch);
}

/* x (n_kv rows of ldk, head g at column g*hd) as a head-major cache of n_ctx >= n_kv positions
 * per head (the rest NaN, never read): head g at g*n_ctx*hd. */
static float *head_major(const attn_case *c, const float *x, int n_ctx) {
    const int ldk = c->n_kv_heads * c->hd + c->pad;
    const size_t n = (size_t)c->n_kv_heads * n_ctx * c->hd;
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    for (int g = 0; g < c->n_kv_heads; g++)
        for (int j = 0; j < c->n_kv; j++)
            memcpy(h + ((size_t)g * n_ctx + j) * c->hd, x + (size_t)j * ldk + (size_t)g * c->hd,
                   (size_t)c->hd * sizeof(float));
    return h;
}

/* Exact (double) attention of query row i, head h, column d. */
static double attn_exact(const attn_case *c, const float *q, const float *k, const float *v, int i,
                         int h, int d) {
    const int ldq = c->n_heads * c->hd + c->pad, ldk = c->n_kv_heads * c->hd + c->pad;
    const int g = h / (c->n_heads / c->n_kv_heads);
    int len = c->causal ? c->q_pos0 + i + 1 : c->n_kv;
    len = len < c->n_kv ? len : c->n_kv;
    double mx = -INFINITY, s = 0, o = 0;
    double *sc = malloc((size_t)len * sizeof(double));
    for (int j = 0; j < len; j++) {
        double dot = 0;
        for (int t = 0; t < c->hd; t++)
            dot += (double)q[(size_t)i * ldq + h * c->hd + t] * k[(size_t)j * ldk + g * c->hd + t];
        sc[j] = dot / sqrt((double)c->hd);
        mx = sc[j] > mx ? sc[j] : mx;
    }
    for (int j = 0; j < len; j++) {
        const double p = exp(sc[j] - mx);
        s += p;
        o += p * v[(size_t)j * ldk + g * c->hd + d];
    }
    free(sc);
    return o / s;
}

static void test_attention_vs_ref(void **state) {
    (void)state;
    const molmo_kernels *sets[2];
    const int n_sets = fast_sets(sets);
    for (size_t ci = 0; ci < sizeof ATTN_CASES / sizeof ATTN_CASES[0]; ci++) {
        const attn_case *c = &ATTN_CASES[ci];
        const int ldq = c->n_heads * c->hd + c->pad, ldk = c->n_kv_heads * c->hd + c->pad;
        const size_t n_out = (size_t)c->n_q * c->n_heads * c->hd;
        /* |q|,|k| <= 1.5: scores up to ~hd * 2.25 / sqrt(hd) in the worst case, ~2 typical. */
        float *q = frand((size_t)c->n_q * ldq, 1.5f), *k = frand((size_t)c->n_kv * ldk, 1.5f);
        float *v = frand((size_t)c->n_kv * ldk, 1.0f);
        float *r = malloc(n_out * sizeof(float)), *g = malloc(n_out * sizeof(float));
        float *hm_ws = malloc(n_out * sizeof(float));
        float *scratch = aligned_alloc(64, (molmo_op_attention_scratch(c->n_kv, 1) * 4 + 63) / 64 * 64);
        attn_run(molmo_kernels_ref(), c, r, q, k, v, scratch);
        char what[96];
        snprintf(what, sizeof what, "q%d kv%d h%d/%d hd%d%s pos0 %d%s", c->n_q, c->n_kv, c->n_heads,
                 c->n_kv_heads, c->hd, c->causal ? " causal" : "", c->q_pos0, c->pad ? " strided" : "");
        for (int si = 0; si < n_sets; si++) {
            attn_run(sets[si], c, g, q, k, v, scratch);
            check(sets[si]->name, "attention", g, r, n_out, what);
        }
        /* Less workspace gives the same bits in the FMA kernels: a head's K and V packed once
         * for all its query blocks (room for them), packed per block inside the GEMMs (48 KiB),
         * or in a stack panel (none). On AMX-BF16 CPUs a non-causal problem with hd % 32 == 0
         * takes its scores from the tiles where a head's split K and packed V fit the
         * workspace, and from the FMA GEMM where they do not: both within the tolerance above
         * (checked here too), not the same bits, so the bits are compared with the tiles off. */
        static const size_t ws_sizes[2] = {12 * 1024, 0};
        for (int wi = 0; wi < 2; wi++)
            for (int si = 0; si < n_sets; si++) {
                g_attn_ws = ws_sizes[wi];
                attn_run(sets[si], c, g, q, k, v, scratch);
                check(sets[si]->name, "attention", g, r, n_out, what);
                molmo_kernels_allow_amx(0);
                attn_run(sets[si], c, hm_ws, q, k, v, scratch);
                g_attn_ws = WS_FLOATS;
                attn_run(sets[si], c, g, q, k, v, scratch);
                molmo_kernels_allow_amx(1);
                if (memcmp(g, hm_ws, n_out * sizeof(float)) != 0)
                    fail_msg("%s attention %s: %zu floats of workspace change the result",
                             sets[si]->name, what, ws_sizes[wi]);
            }
        attn_run(molmo_kernels_ref(), c, r, q, k, v, scratch);
        /* A head-major cache (the decoder's) gives the same bits as rows, in every set. */
        const int n_ctx = c->n_kv + 7;
        float *kh = head_major(c, k, n_ctx), *vh = head_major(c, v, n_ctx);
        float *hm = malloc(n_out * sizeof(float));
        const molmo_kernels *all[3] = {molmo_kernels_ref()};
        for (int si = 0; si < n_sets; si++) all[1 + si] = sets[si];
        for (int si = 0; si < 1 + n_sets; si++) {
            attn_run(all[si], c, g, q, k, v, scratch);
            attn_run_ldh(all[si], c, hm, q, kh, vh, (size_t)n_ctx * c->hd, scratch);
            if (memcmp(g, hm, n_out * sizeof(float)) != 0)
                fail_msg("%s attention %s: head-major cache differs from rows", all[si]->name, what);
        }
        /* An f16 cache gives the bits of an f32 cache holding the same (rounded) values, in every
         * set and both paths (GEMM for n_q >= 16, dot products below). */
        const size_t n_kvh = (size_t)c->n_kv_heads * n_ctx * c->hd;
        uint16_t *kh16 = malloc(n_kvh * 2), *vh16 = malloc(n_kvh * 2);
        float *kr = malloc(n_kvh * sizeof(float)), *vr = malloc(n_kvh * sizeof(float));
        float *h16 = malloc(n_out * sizeof(float));
        to_half(kh, n_kvh, kh16, kr);
        to_half(vh, n_kvh, vh16, vr);
        for (int si = 0; si < 1 + n_sets; si++) {
            attn_run_ldh(all[si], c, hm, q, kr, vr, (size_t)n_ctx * c->hd, scratch);
            attn_run_kv(all[si], c, h16, q, kh16, vh16, MOLMO_DTYPE_F16, (size_t)n_ctx * c->hd,
                        scratch);
            if (memcmp(h16, hm, n_out * sizeof(float)) != 0)
                fail_msg("%s attention %s: f16 cache differs from f32 of the same values",
                         all[si]->name, what);
        }
        /* and with bf16 activations (q, k, v bf16 values, which f16 holds exactly here) */
        {
            const size_t nq = (size_t)c->n_q * ldq;
            float *q16 = malloc(nq * 4);
            for (size_t i = 0; i < nq; i++) q16[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(q[i]));
            for (size_t i = 0; i < n_kvh; i++) {
                kr[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(kh[i]));
                vr[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(vh[i]));
                kh16[i] = molmo_f32_to_f16(kr[i]);
                vh16[i] = molmo_f32_to_f16(vr[i]);
                if (!isnan(kr[i])) assert_true(molmo_f16_to_f32(kh16[i]) == kr[i]);
            }
            g_attn_bf16 = 1;
            for (int si = 0; si < 1 + n_sets; si++) {
                attn_run_ldh(all[si], c, hm, q16, kr, vr, (size_t)n_ctx * c->hd, scratch);
                attn_run_kv(all[si], c, h16, q16, kh16, vh16, MOLMO_DTYPE_F16,
                            (size_t)n_ctx * c->hd, scratch);
                if (memcmp(h16, hm, n_out * sizeof(float)) != 0)
                    fail_msg("%s bf16 attention %s: f16 cache differs from f32 of the same values",
                             all[si]->name, what);
            }
            g_attn_bf16 = 0;
            free(q16);
        }
        free(kh16);
        free(vh16);
        free(kr);
        free(vr);
        free(h16);
        free(kh);
        free(vh);
        free(hm);
        /* bf16 activations (q, k, v rounded; P rounded before P·V): every set (AVX-512 on AMX
         * tiles where the CPU has AMX-BF16) against the reference of the same specification. */
        {
            const size_t nq = (size_t)c->n_q * ldq, nk = (size_t)c->n_kv * ldk;
            float *q16 = malloc(nq * 4), *k16 = malloc(nk * 4), *v16 = malloc(nk * 4);
            for (size_t i = 0; i < nq; i++) q16[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(q[i]));
            for (size_t i = 0; i < nk; i++) k16[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(k[i]));
            for (size_t i = 0; i < nk; i++) v16[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(v[i]));
            g_attn_bf16 = 1;
            attn_run(molmo_kernels_ref(), c, r, q16, k16, v16, scratch);
            for (int si = 0; si < n_sets; si++) {
                attn_run(sets[si], c, g, q16, k16, v16, scratch);
                check(sets[si]->name, "attention_bf16", g, r, n_out, what);
            }
            g_attn_bf16 = 0;
            attn_run(molmo_kernels_ref(), c, r, q, k, v, scratch);
            free(q16);
            free(k16);
            free(v16);
        }
        /* Reference vs double on a sample of outputs (outputs are averages of |v| <= 1). */
        for (int i = 0; i < c->n_q; i += 1 + c->n_q / 5)
            for (int h = 0; h < c->n_heads; h += 1 + c->n_heads / 3)
                for (int d = 0; d < c->hd; d += 1 + c->hd / 4) {
                    const double e = attn_exact(c, q, k, v, i, h, d);
                    const float got = r[((size_t)i * c->n_heads + h) * c->hd + d];
                    if (fabs(got - e) > 2e-6)
                        fail_msg("ref attention %s (%d,%d,%d): %.9g vs exact %.9g", what, i, h, d,
                                 (double)got, e);
                }
        free(q);
        free(k);
        free(v);
        free(r);
        free(g);
        free(hm_ws);
        free(scratch);
    }
}

/* The scores of the f32 attention on AMX-BF16 tiles (x86.h, molmo_k_attn_scores_split) take
 * the six products of the bf16 parts of q and K that matter: with values whose partial sums are
 * all exact in f32 the scores must be the exact sums. Three cases: q = 2^e (1 + 2^-9 + 2^-17)
 * (three nonzero parts; e per row) against K = +-1 (q1k1, q2k1, q3k1), q = +-2^e against K =
 * +-(1 + 2^-9 + 2^-17) (q1k2, q1k3), and 2^e (1 + 2^-9) against +-(1 + 2^-9) (q2k2), with 32,
 * 32 and 16 nonzero products per score. The attention tolerance would let a missing 2^-16
 * product pass (session 13 measured it for P·V). Two heads on one kv head (GQA), 37 rows
 * (pairs of 16-row groups and a lone one), 40 keys (a partial key tile), blocks from row 0 and
 * row 5. */
static void test_attention_split_scores(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (!molmo_kernels_avx512() || !molmo_kernels_amx_bf16()) {
        print_message("  (no AMX-BF16: no scores on the tiles)\n");
        return;
    }
    enum { NQ = 37, NKV = 40, H = 2, HD = 64 };
    static const float qv[3] = {1.0f + 0x1p-9f + 0x1p-17f, 1.0f, 1.0f + 0x1p-9f};
    static const float kv[3] = {1.0f, 1.0f + 0x1p-9f + 0x1p-17f, 1.0f + 0x1p-9f};
    float *q = malloc(sizeof(float) * NQ * H * HD), *k = malloc(sizeof(float) * NKV * HD);
    void *qb = aligned_alloc(64, 2 * 3 * (HD / 32) * 1024);
    const size_t ld = molmo_attn_ld_scores(NKV);
    float *S = malloc(sizeof(float) * 48 * ld);
    for (int c = 0; c < 3; c++) {
        const int every = c == 2 ? 4 : 2; /* one dim in `every` of a query is nonzero */
        for (int i = 0; i < NQ; i++)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < HD; d++)
                    q[(i * H + h) * HD + d] =
                        (d + i + h) % every ? 0.0f : ldexpf((d % 3 ? qv[c] : -qv[c]), (i + h) % 5 - 2);
        for (int j = 0; j < NKV; j++)
            for (int d = 0; d < HD; d++) k[j * HD + d] = (j * 7 + d * 3) % 5 < 2 ? -kv[c] : kv[c];
        const molmo_attn_args a = {.q = q, .k = k, .v = k, .kv_type = MOLMO_DTYPE_F32,
                                   .ldq = H * HD, .ldk = HD, .ldv = HD, .ldh = HD, .n_q = NQ,
                                   .n_kv = NKV, .n_heads = H, .n_kv_heads = 1, .hd = HD,
                                   .scale = 1.0f};
        const size_t kbytes = molmo_k_attn_split_k_bytes(&a);
        assert_true(kbytes > 0);
        void *kb = aligned_alloc(64, kbytes);
        molmo_k_attn_split_k(&a, 0, kb);
        for (int h = 0; h < H; h++)
            for (int i0 = 0; i0 <= 5; i0 += 5) {
                molmo_k_attn_scores_split(&a, h, i0, NQ, kb, S, ld, qb);
                for (int i = i0; i < NQ; i++)
                    for (int j = 0; j < NKV; j++) {
                        double e = 0;
                        for (int d = 0; d < HD; d++)
                            e += (double)q[(i * H + h) * HD + d] * k[j * HD + d];
                        const float got = S[(size_t)(i - i0) * ld + j];
                        if ((double)got != e)
                            fail_msg("split scores, case %d, head %d, rows from %d: S[%d][%d] = "
                                     "%.9g, exact %.9g", c, h, i0, i, j, (double)got, e);
                    }
            }
        free(kb);
    }
    free(q);
    free(k);
    free(qb);
    free(S);
#endif
}

static void test_attention_threads(void **state) {
    (void)state;
    static const attn_case cases[] = {{145, 145, 16, 16, 64, 0, 0, 0}, {37, 60, 4, 2, 128, 1, 23, 0},
                                      {1, 300, 7, 1, 128, 1, 299, 0}};
    molmo_pool *pools[3];
    for (int i = 0; i < 3; i++) assert_int_equal(molmo_pool_create(i + 1, &pools[i], NULL), MOLMO_OK);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const attn_case *c = &cases[ci];
        const int D = c->n_heads * c->hd, Dk = c->n_kv_heads * c->hd;
        const size_t n_out = (size_t)c->n_q * D;
        float *q = frand((size_t)c->n_q * D, 1.0f), *k = frand((size_t)c->n_kv * Dk, 1.0f);
        float *v = frand((size_t)c->n_kv * Dk, 1.0f);
        float *scratch = malloc(molmo_op_attention_scratch(c->n_kv, 3) * sizeof(float));
        float *o[3];
        for (int i = 0; i < 3; i++) {
            o[i] = malloc(n_out * sizeof(float));
            molmo_op_attention(pools[i], o[i], D, q, D, k, Dk, v, Dk, c->n_q, c->n_kv, c->n_heads,
                               c->n_kv_heads, c->hd, 0.125f, c->causal, c->q_pos0, scratch);
        }
        for (int i = 1; i < 3; i++) assert_memory_equal(o[0], o[i], n_out * sizeof(float));
        if (!c->causal && c->n_heads == c->n_kv_heads) { /* bf16 activations likewise */
            for (int i = 0; i < 3; i++)
                molmo_op_attention_bf16(pools[i], o[i], D, q, D, k, Dk, v, Dk, c->n_q, c->n_kv,
                                        c->n_heads, c->hd, 0.125f, scratch);
            for (int i = 1; i < 3; i++) assert_memory_equal(o[0], o[i], n_out * sizeof(float));
        }
        for (int i = 0; i < 3; i++) free(o[i]);
        free(q);
        free(k);
        free(v);
        free(scratch);
    }
    /* Norms through the pool too. */
    float *x = norm_input(1024), *w = frand(1024, 1.0f), *b = frand(1024, 1.0f);
    float *y[3];
    for (int i = 0; i < 3; i++) {
        y[i] = malloc(3 * 1024 * sizeof(float));
        molmo_op_layernorm(pools[i], y[i], x, w, b, 3, 1024, 1e-5f);
        molmo_op_rmsnorm(pools[i], y[i], y[i], w, 3, 1024, 1e-6f);
    }
    for (int i = 1; i < 3; i++) assert_memory_equal(y[0], y[i], 3 * 1024 * sizeof(float));
    for (int i = 0; i < 3; i++) {
        free(y[i]);
        molmo_pool_free(pools[i]);
    }
    free(x);
    free(w);
    free(b);
}

/* ---------------------------------------------------------- several matmuls in one run */

/* molmo_op_matmul_many gives each product the bits molmo_op_matmul gives it alone, for any
 * pool size: GEMV and GEMM shapes and unequal row counts mixed (the tiles are dealt out by
 * cost), f32 and q8_0 weights, more jobs than one run takes (70 > 64). The threaded
 * element-wise ops likewise equal their one-thread results. */
static void test_matmul_many(void **state) {
    (void)state;
    enum { NJ = 70, K = 96 };
    molmo_matmul_job jobs[NJ];
    float *ref[NJ];
    void *w[NJ];
    float *x = frand((size_t)40 * K, 1.0f);
    for (int i = 0; i < NJ; i++) {
        const int M = 1 + (i * 7) % 40, N = 16 + (i * 13) % 90;
        const molmo_dtype wt = i % 3 ? MOLMO_DTYPE_F32 : MOLMO_DTYPE_Q8_0;
        float *wf = frand((size_t)N * K, 0.1f);
        if (wt == MOLMO_DTYPE_Q8_0) {
            w[i] = malloc(molmo_dtype_row_bytes(wt, K) * (size_t)N);
            for (int j = 0; j < N; j++)
                assert_int_equal(molmo_quantize_row(wt, wf + (size_t)j * K,
                                                    (char *)w[i] + molmo_dtype_row_bytes(wt, K) * (size_t)j,
                                                    K, NULL), MOLMO_OK);
            free(wf);
        } else {
            w[i] = wf;
        }
        jobs[i] = (molmo_matmul_job){malloc((size_t)M * N * sizeof(float)), N, x, K, w[i], wt,
                                     NULL, M, N, K, 0};
        ref[i] = malloc((size_t)M * N * sizeof(float));
        molmo_op_matmul(NULL, ref[i], N, x, K, w[i], wt, NULL, M, N, K);
    }
    for (int nth = 1; nth <= 3; nth++) {
        molmo_pool *pool;
        assert_int_equal(molmo_pool_create(nth, &pool, NULL), MOLMO_OK);
        for (int i = 0; i < NJ; i++) memset(jobs[i].y, 0xff, (size_t)jobs[i].M * jobs[i].N * 4);
        molmo_op_matmul_many(pool, jobs, NJ);
        for (int i = 0; i < NJ; i++)
            assert_memory_equal(jobs[i].y, ref[i], (size_t)jobs[i].M * jobs[i].N * sizeof(float));
        /* element-wise: one long row (pieces of lines) and many rows */
        enum { R = 40, C = 3000 };
        float *g = frand((size_t)R * 2 * C, 4.0f), *a = malloc((size_t)R * 2 * C * 4);
        float *b = malloc((size_t)R * 2 * C * 4);
        memcpy(a, g, (size_t)R * 2 * C * 4);
        memcpy(b, g, (size_t)R * 2 * C * 4);
        molmo_op_quick_gelu(NULL, a, (size_t)R * 2 * C);
        molmo_op_quick_gelu(pool, b, (size_t)R * 2 * C);
        assert_memory_equal(a, b, (size_t)R * 2 * C * 4);
        memcpy(a, g, (size_t)R * 2 * C * 4);
        memcpy(b, g, (size_t)R * 2 * C * 4);
        for (int r = 0; r < R; r++)
            molmo_op_silu_mul(NULL, a + (size_t)r * 2 * C, a + (size_t)r * 2 * C + C,
                              a + (size_t)r * 2 * C, C);
        molmo_op_silu_mul_rows(pool, b, b + C, b, R, C, 2 * (size_t)C);
        assert_memory_equal(a, b, (size_t)R * 2 * C * 4);
        free(g);
        free(a);
        free(b);
        molmo_pool_free(pool);
    }
    for (int i = 0; i < NJ; i++) {
        free(jobs[i].y);
        free(ref[i]);
        free(w[i]);
    }
    free(x);
}

/* -------------------------------------------------------------------------------- RoPE */

static void test_rope(void **state) {
    (void)state;
    float *cs, *sn;
    molmo_error err;
    assert_int_equal(molmo_rope_table(&cs, &sn, 4096, 128, 1000000.0f, &err), MOLMO_OK);
    /* The table against the same f32 pipeline evaluated with double sin/cos (1 ulp: libm),
     * and inv_freq against its closed form (f32 pow within 2 ulp). */
    for (int i = 0; i < 64; i++) {
        const float e = (float)(2 * i) / 128.0f, inv = 1.0f / powf(1000000.0f, e);
        assert_true(fabs(inv - 1.0 / pow(1e6, 2.0 * i / 128.0)) <= 3 * 0x1p-24 * inv);
        for (int p = 0; p < 4096; p += 97) {
            const float ang = (float)p * inv;
            assert_true(fabs(cs[(size_t)p * 64 + i] - cos((double)ang)) <= 0x1p-24 * 2);
            assert_true(fabs(sn[(size_t)p * 64 + i] - sin((double)ang)) <= 0x1p-24 * 2);
        }
    }
    assert_true(cs[0] == 1.0f && sn[0] == 0.0f);
    static const int hds[] = {2, 16, 34, 64, 128};
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        const int hd = hds[hi], n_tok = 19, n_heads = 3, ldx = n_heads * hd + 5;
        float *c2, *s2;
        assert_int_equal(molmo_rope_table(&c2, &s2, 300, hd, 10000.0f, NULL), MOLMO_OK);
        int pos[19];
        for (int t = 0; t < n_tok; t++) pos[t] = (t * 37) % 300;
        float *x = frand((size_t)n_tok * ldx, 2.0f), *r = malloc((size_t)n_tok * ldx * sizeof(float));
        memcpy(r, x, (size_t)n_tok * ldx * sizeof(float));
        all[0]->rope(r, ldx, n_tok, n_heads, hd, pos, c2, s2);
        for (int t = 0; t < n_tok; t++) /* a rotation keeps every pair's norm; padding untouched */
            for (int h = 0; h < n_heads; h++)
                for (int i = 0; i < hd / 2; i++) {
                    const float *a0 = x + (size_t)t * ldx + h * hd, *a1 = r + (size_t)t * ldx + h * hd;
                    const double n0 = hypot(a0[i], a0[i + hd / 2]), n1 = hypot(a1[i], a1[i + hd / 2]);
                    assert_true(fabs(n0 - n1) <= 1e-6 * (n0 + 1));
                }
        for (int si = 1; si < 3; si++) {
            if (!all[si]) continue;
            float *g = malloc((size_t)n_tok * ldx * sizeof(float));
            memcpy(g, x, (size_t)n_tok * ldx * sizeof(float));
            all[si]->rope(g, ldx, n_tok, n_heads, hd, pos, c2, s2);
            char what[32];
            snprintf(what, sizeof what, "hd=%d strided", hd);
            check(all[si]->name, "rope", g, r, (size_t)n_tok * ldx, what);
            free(g);
        }
        free(x);
        free(r);
        molmo_free(c2);
        molmo_free(s2);
    }
    molmo_free(cs);
    molmo_free(sn);
    assert_int_equal(molmo_rope_table(&cs, &sn, 10, 7, 10000.0f, &err), MOLMO_ERR_INVALID_ARG);
    assert_null(cs);
    assert_non_null(strstr(err.msg, "head dim 7"));
    molmo_alloc_fail_after(1);
    assert_int_equal(molmo_rope_table(&cs, &sn, 10, 8, 10000.0f, &err), MOLMO_ERR_NOMEM);
    molmo_alloc_fail_after(-1);
    assert_null(cs);
    assert_null(sn);
}

/* ------------------------------------------------------------------------ conversions */

static void test_to_f32_and_gather(void **state) {
    (void)state;
    enum { N = 4095 };
    uint16_t *h = malloc(N * 2);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)(i * 16 + (i % 16)); /* every exponent */
    static const uint16_t specials[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x8001, 0x7c00, 0xfc00,
                                        0x7e00, 0x7c01, 0x3c00, 0x7bff, 0x7f80, 0xff80, 0x7fc0};
    memcpy(h, specials, sizeof specials);
    float *r = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float));
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int d = 1; d < 3; d++) {
        const molmo_dtype wt = d == 1 ? MOLMO_DTYPE_F16 : MOLMO_DTYPE_BF16;
        for (size_t n = 1; n <= N; n = n * 4 + 1) {
            all[0]->to_f32(r, h, wt, n);
            for (size_t i = 0; i < n; i++) {
                const float e = wt == MOLMO_DTYPE_F16 ? molmo_f16_to_f32(h[i]) : molmo_bf16_to_f32(h[i]);
                assert_true(memcmp(&e, &r[i], 4) == 0);
            }
            for (int si = 1; si < 3; si++) {
                if (!all[si]) continue;
                all[si]->to_f32(g, h, wt, n);
                check(all[si]->name, "to_f32", g, r, n, molmo_dtype_name(wt));
            }
        }
    }
    /* F16 spot values: the smallest subnormal, the largest normal. */
    all[0]->to_f32(r, h, MOLMO_DTYPE_F16, 11);
    assert_true(r[2] == 0x1p-24f && r[10] == 65504.0f && isinf(r[5]) && isnan(r[7]));
    /* gather: rows 3, 0, 2 of a [4, 5] bf16 table */
    const int ids[3] = {3, 0, 2};
    molmo_op_gather_rows(g, h, MOLMO_DTYPE_BF16, 5, ids, 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            const float e = molmo_bf16_to_f32(h[ids[i] * 5 + j]);
            assert_true(memcmp(&e, &g[i * 5 + j], 4) == 0 || (isnan(e) && isnan(g[i * 5 + j])));
        }
    float wf[6] = {1, 2, 3, 4, 5, 6};
    molmo_op_gather_rows(g, wf, MOLMO_DTYPE_F32, 2, ids + 1, 1);
    assert_true(g[0] == 1 && g[1] == 2);
    free(h);
    free(r);
    free(g);
}

/* bf16 activations round the softmax weights (after their sum is taken): with two keys whose
 * scores differ by -1.1015625, p1 = exp(-1.1015625) = 0.33237 rounds to the bf16 0.33203125
 * (far from a tie), so every output is 0.33203125 / (1 + p1) = 0.24921, against 0.24945
 * unrounded. Every set, on 16 query rows of one head of 64 (the AMX tiles where they run). */
static void test_attention_bf16_rounding(void **state) {
    (void)state;
    enum { NQ = 16, HD = 64 };
    float *q = calloc(NQ * HD, 4), *k = calloc(2 * HD, 4), *v = calloc(2 * HD, 4);
    float *o = malloc(NQ * HD * 4);
    for (int i = 0; i < NQ; i++) q[i * HD] = 1.0f;
    k[HD] = -8.8125f; /* a bf16; score scale 1/8 */
    for (int d = 0; d < HD; d++) v[HD + d] = 1.0f;
    const float p1 = expf(-1.1015625f);
    const double want = (double)molmo_bf16_to_f32(molmo_f32_to_bf16(p1)) / (1.0 + p1);
    const double unrounded = p1 / (1.0 + p1);
    assert_true(fabs(want - unrounded) > 2e-4); /* the test can tell them apart */
    float *scratch = aligned_alloc(64, (molmo_op_attention_scratch(2, 1) * 4 + 63) / 64 * 64);
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int si = 0; si < 3; si++) {
        if (!all[si]) continue;
        const molmo_attn_args a = {.out = o, .ldo = HD, .q = q, .k = k, .v = v,
                                   .kv_type = MOLMO_DTYPE_F32, .ldq = HD, .ldk = HD, .ldv = HD,
                                   .ldh = HD, .n_q = NQ, .n_kv = 2, .n_heads = 1,
                                   .n_kv_heads = 1, .hd = HD, .scale = 0.125f, .bf16 = 1};
        all[si]->attention(&a, 0, molmo_attn_qblocks(NQ), scratch, g_ws, WS_FLOATS);
        for (int i = 0; i < NQ * HD; i++)
            if (fabs(o[i] - want) > 1e-6)
                fail_msg("%s bf16 attention: output %d is %.8f, want %.8f (unrounded %.8f)",
                         all[si]->name, i, (double)o[i], want, unrounded);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(scratch);
}

/* n inputs for the conversion tests: the given special bit patterns first, then both signs
 * of every f32 exponent with varied mantissas. */
static float *conversion_inputs(int n, const uint32_t *specials, size_t n_specials) {
    float *x = malloc((size_t)n * sizeof(float));
    assert_non_null(x);
    for (int i = 0; i < n; i++) {
        const uint32_t u = i < (int)n_specials
                               ? specials[i]
                               : ((uint32_t)(i % 2) << 31) | ((uint32_t)(i % 256) << 23) |
                                     ((uint32_t)i * 2654435761u >> 9);
        memcpy(&x[i], &u, 4);
    }
    return x;
}

/* to_f16 of every set is molmo_f32_to_f16 bit for bit: signed zeros, f32 subnormals, half
 * subnormals and the underflow edge, ties (to even), the overflow edge (65519.99 -> 65504,
 * 65520 -> inf), infinities and NaN payloads, then every f32 exponent; lengths with tails. */
static void test_to_f16(void **state) {
    (void)state;
    enum { N = 1027 };
    static const uint32_t specials[] = {
        0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x33000000, 0x33000001, 0xb3800000,
        0x33c00000, 0x38800000, 0x387fc000, 0x387fe000, 0x3f801000, 0x3f803000, 0x3f800fff,
        0x477fefff, 0x477ff000, 0xc77fe000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
        0xffc01234, 0x7f7fffff, 0x3f800000, 0x47800000, 0x4f000000};
    float *x = conversion_inputs(N, specials, sizeof specials / sizeof specials[0]);
    uint16_t *r = malloc(N * 2), *g = malloc(N * 2);
    for (int i = 0; i < N; i++) r[i] = molmo_f32_to_f16(x[i]);
    assert_int_equal(r[14], 0x7bff); /* 65519.99 */
    assert_int_equal(r[15], 0x7c00); /* 65520 */
    assert_int_equal(r[11], 0x3c00); /* 1 + 2^-11: a tie, to even */
    assert_int_equal(r[12], 0x3c02); /* 1 + 3 * 2^-11: a tie, to even (up) */
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int si = 0; si < 3; si++) {
        if (!all[si]) continue;
        for (size_t n = 1; n <= N; n = n * 3 + 2) {
            memset(g, 0xa5, N * 2);
            all[si]->to_f16(g, x, n);
            for (size_t i = 0; i < n; i++)
                if (g[i] != r[i])
                    fail_msg("%s to_f16 (n %zu) element %zu: 0x%08x -> 0x%04x, want 0x%04x",
                             all[si]->name, n, i, (unsigned)((const uint32_t *)(const void *)x)[i],
                             g[i], r[i]);
            for (size_t i = n; i < N; i++) assert_int_equal(g[i], 0xa5a5); /* nothing beyond n */
        }
    }
    free(x);
    free(r);
    free(g);
}

/* round_bf16 of every set is molmo_f32_to_bf16 (kept as f32) bit for bit: ties to even, the
 * carry into the exponent, the largest finite values (rounding to inf), infinities, NaN
 * payloads (quieted), subnormals, signed zeros; every exponent; lengths with tails. Also
 * through molmo_op_round_bf16 on strided rows and a pool. */
static void test_round_bf16(void **state) {
    (void)state;
    enum { N = 1027 };
    static const uint32_t specials[] = {0x3f808000, 0x3f818000, 0x3f807fff, 0x3f7f8000, 0x7f7fffff,
                                        0xff7f8000, 0x7f800000, 0xff800000, 0x7fc00001, 0x7f800001,
                                        0xff812345, 0x00000001, 0x80008000, 0x00000000, 0x80000000};
    float *x = conversion_inputs(N, specials, sizeof specials / sizeof specials[0]);
    float *r = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) r[i] = molmo_bf16_to_f32(molmo_f32_to_bf16(x[i]));
    assert_true(r[0] == 1.0f && r[1] == 0x1.04p0f && isinf(r[4]) && isnan(r[8]) && isnan(r[9]));
    const molmo_kernels *all[3] = {molmo_kernels_ref(), molmo_kernels_avx2(), molmo_kernels_avx512()};
    for (int si = 0; si < 3; si++) {
        if (!all[si]) continue;
        for (size_t n = 1; n <= N; n = n * 3 + 2) {
            memcpy(g, x, N * sizeof(float));
            all[si]->round_bf16(g, n);
            if (memcmp(g, r, n * sizeof(float)) != 0)
                fail_msg("%s round_bf16 (n %zu) differs from molmo_f32_to_bf16", all[si]->name, n);
            assert_memory_equal(g + n, x + n, (N - n) * sizeof(float)); /* nothing beyond n */
        }
    }
    molmo_pool *pool;
    assert_int_equal(molmo_pool_create(2, &pool, NULL), MOLMO_OK);
    float *big = malloc(300 * 1000 * sizeof(float));
    for (int i = 0; i < 300 * 1000; i++) big[i] = x[i % N];
    molmo_op_round_bf16(pool, big, 300, 999, 1000); /* rows of 999, stride 1000 */
    for (int i = 0; i < 300 * 1000; i++) {
        const float want = i % 1000 < 999 ? r[i % N] : x[i % N];
        assert_true(memcmp(&big[i], &want, 4) == 0);
    }
    molmo_pool_free(pool);
    free(big);
    free(x);
    free(r);
    free(g);
}

int main(int argc, char **argv) {
    kernel_check_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norms_vs_ref),
        cmocka_unit_test(test_softmax_vs_ref),
        cmocka_unit_test(test_softmax_peak),
        cmocka_unit_test(test_elementwise_vs_ref),
        cmocka_unit_test(test_activation_extremes),
        cmocka_unit_test(test_attention_vs_ref),
        cmocka_unit_test(test_attention_split_scores),
        cmocka_unit_test(test_attention_threads),
        cmocka_unit_test(test_matmul_many),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_to_f32_and_gather),
        cmocka_unit_test(test_to_f16),
        cmocka_unit_test(test_attention_bf16_rounding),
        cmocka_unit_test(test_round_bf16),
        cmocka_unit_test(test_print_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

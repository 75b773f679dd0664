/* vkl_op_matmul_fused (the decode matvec with RMSNorm on its input, SiLU-gate and residual add on its output)
 * against a CPU reference: the separate ops' maths in double over the same dequantized weights.
 *
 * Every type (F32, F16, Q8_0 and Q4_0 on many shapes, the others of the type table on fewer), every fusion the
 * decode graph uses (norm; norm + glu with SiLU or GELU-tanh; accumulate) and the others the kernel
 * allows (glu alone; norm + accumulate), 1..8 columns, with the subgroup and the shared-memory reductions.
 * The device is reported as a GPU (fusion lives in the GPU matvec; as a CPU device nothing must be recorded
 * and *fused must be false). y is poisoned with NaN around its view; with accumulate, y starts from random
 * values, which the result must include. The row-chunking path (a norm-fused matvec split over several
 * dispatches) runs with a lowered binding range, where a GLU weight, which must be bound whole, is refused
 * (not fused, nothing recorded). Workgroups of 1, 5 and 16 rows (VKLLM_MATVEC) run too, and a shape over shared
 * memory (reduced to one that fits).
 *
 * Tolerance (relative L2 against the double reference; the reference dequantizes the same blocks, so only
 * f32 rounding differs): 1e-4 for F32, 1e-3 for every other type. F32 is looser than vkl_op_matmul's 1e-5
 * because some cases have one or two outputs: a dot product that nearly cancels turns the f32 rounding of
 * the normalised x into a larger relative error of that output, and SiLU-gate multiplies two of them
 * (seen: 1.7e-5 for glu, K = 32, M = 1). A wrong or missing term gives errors of order 1e-1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "matmul_case.h"
#include "ref/ref_matmul.h"
#include "ref/ref_ops.h"
#include "util.h"

#define GUARD_FLOATS 64u
#define EPS 1e-5f

static const uint32_t TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

static double tolerance(uint32_t type) { return type == GGML_TYPE_F32 ? 1e-4 : 1e-3; }

typedef struct fusion_case {
    const char *name;
    bool norm, glu, accumulate, gelu;
} fusion_case;

static const fusion_case FUSIONS[] = {
    {"norm", true, false, false, false},          /* Wqkv and the output projection */
    {"norm+glu", true, true, false, false},       /* W_gate;W_up */
    {"accumulate", false, false, true, false},    /* Wo and W_down */
    {"glu", false, true, false, false},
    {"norm+accumulate", true, false, true, false},
    {"norm+geglu", true, true, false, true},      /* Gemma's W_gate;W_up */
};
#define N_FUSIONS (sizeof FUSIONS / sizeof FUSIONS[0])

/* y = reference of the fused op for N columns: weight wd (Mw rows of K, dequantized), output M rows.
 * *gate_up_l2 = L2 norm of gate * up over the outputs (GLU). */
static void reference(const fusion_case *fc, const float *wd, const float *x, const float *g, const float *y0,
                      float *y, uint32_t K, uint32_t M, uint32_t N, double *gate_up_l2)
{
    *gate_up_l2 = 0;
    const uint32_t Mw = fc->glu ? 2 * M : M;
    float *xn = malloc((size_t)K * N * sizeof(float));
    float *full = malloc((size_t)Mw * N * sizeof(float));
    if (!xn || !full) {
        free(xn);
        free(full);
        CHECK(0, "reference: out of host memory");
        return;
    }
    for (uint32_t c = 0; c < N; c++) {
        const float *xc = x + (size_t)c * K;
        double ss = 0;
        for (uint32_t k = 0; k < K; k++)
            ss += (double)xc[k] * xc[k];
        const double s = fc->norm ? 1.0 / sqrt(ss / K + EPS) : 1.0;
        for (uint32_t k = 0; k < K; k++)
            xn[(size_t)c * K + k] = fc->norm ? (float)(xc[k] * s * g[k]) : xc[k];
    }
    ref_matmul_f32(wd, xn, full, K, Mw, N);
    for (uint32_t c = 0; c < N; c++) {
        for (uint32_t r = 0; r < M; r++) {
            double v = full[(size_t)c * Mw + r];
            if (fc->glu)
                *gate_up_l2 += v * v * full[(size_t)c * Mw + M + r] * full[(size_t)c * Mw + M + r];
            if (fc->glu && fc->gelu) {
                float gated;
                ref_gelu_mul(&full[(size_t)c * Mw + r], &full[(size_t)c * Mw + M + r], &gated, 1);
                v = gated;
            } else if (fc->glu) {
                v = v / (1.0 + exp(-v)) * full[(size_t)c * Mw + M + r];
            }
            if (fc->accumulate)
                v += y0[(size_t)c * M + r];
            y[(size_t)c * M + r] = (float)v;
        }
    }
    *gate_up_l2 = sqrt(*gate_up_l2);
    free(xn);
    free(full);
}

/* One fused matvec on random data. expect_fused: whether the op must fuse (else it must record nothing). */
static void run_case(vkr_device *dev, test_rng *rng, const fusion_case *fc, uint32_t type, uint32_t K, uint32_t M,
                     uint32_t N, bool expect_fused, const char *label)
{
    const uint32_t Mw = fc->glu ? 2 * M : M;
    float *wf = malloc((size_t)K * Mw * sizeof(float));
    void *wq = malloc(ref_tensor_bytes(type, K, Mw));
    float *wd = malloc((size_t)K * Mw * sizeof(float));
    float *x = malloc((size_t)K * N * sizeof(float));
    float *gv = malloc((size_t)K * sizeof(float));
    float *y0 = malloc((size_t)M * N * sizeof(float));
    float *yref = malloc((size_t)M * N * sizeof(float));
    uint64_t align = dev->info.features.min_storage_buffer_offset_alignment;
    if (align < 16)
        align = 16;
    const uint64_t xoff = align, yoff = 2 * align;
    const uint64_t ybytes = yoff + (uint64_t)M * N * 4 + GUARD_FLOATS * 4;
    float *yall = malloc(ybytes);
    vk_tensor w, norm;
    memset(&w, 0, sizeof w);
    memset(&norm, 0, sizeof norm);
    vkr_buffer *xb = NULL, *yb = NULL;
    vkr_graph *g = NULL;
    const int fails_before = test_failures;
    double err = 0;

    CHECK(wf && wq && wd && x && gv && y0 && yref && yall, "%s: out of host memory", label);
    if (!(wf && wq && wd && x && gv && y0 && yref && yall))
        goto done;
    rng_fill(rng, wf, (size_t)K * Mw, -1.0f, 1.0f);
    /* Residual-stream-like x (not unit scale) so the norm matters; g around 1. */
    rng_fill(rng, x, (size_t)K * N, -3.0f, 3.0f);
    rng_fill(rng, gv, K, 0.5f, 1.5f);
    rng_fill(rng, y0, (size_t)M * N, -1.0f, 1.0f);
    ref_encode(type, wf, K, Mw, wq);
    ref_decode(type, wq, K, Mw, wd);
    double gate_up_l2;
    reference(fc, wd, x, gv, y0, yref, K, M, N, &gate_up_l2);

    vkllm_status st = vkl_tensor_upload(dev, type, K, Mw, wq, &w);
    if (st == VKLLM_OK)
        st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, 1, gv, &norm);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, xoff + (uint64_t)K * N * 4, VKR_MEMORY_DEVICE, &xb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, ybytes, VKR_MEMORY_DEVICE, &yb);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, xb, xoff, x, (size_t)K * N * 4);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, yb, 0, ybytes, OPT_POISON);
    if (st == VKLLM_OK && fc->accumulate)
        st = vkr_buffer_upload(dev, yb, yoff, y0, (size_t)M * N * 4);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    CHECK(st == VKLLM_OK, "%s: setup: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;

    vk_matmul_fusion f = {.norm = fc->norm ? &norm : NULL, .eps = EPS, .glu = fc->glu, .accumulate = fc->accumulate,
                          .gelu = fc->gelu};
    bool fused = true;
    st = vkl_op_matmul_fused(g, &w, vk_view_of(xb, xoff), vk_view_of(yb, yoff), N, &f, &fused);
    CHECK(st == VKLLM_OK, "%s: op_matmul_fused: %s", label, vkr_last_error());
    CHECK(fused == expect_fused, "%s: fused %d, expected %d", label, fused, expect_fused);
    if (!fused) {
        CHECK(vkr_graph_size(g) == 0, "%s: not fused, yet %u dispatches recorded", label, vkr_graph_size(g));
        goto done;
    }
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, yb, 0, yall, ybytes);
    CHECK(st == VKLLM_OK, "%s: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;

    const float *y = yall + yoff / 4;
    long bad = first_nonfinite(y, (size_t)M * N);
    CHECK(bad < 0, "%s: y[%ld] is not finite (unwritten?)", label, bad);
    err = rel_l2(y, yref, (size_t)M * N);
    /* GELU of a strongly negative gate is ~0 and f32's tanh rounds 1 + tanh to 0 there: relative to outputs
     * that all nearly vanish (few outputs), measure the error against 1 % of |gate * up| instead. */
    double yref_l2 = 0, diff_l2 = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        yref_l2 += (double)yref[i] * yref[i];
        diff_l2 += ((double)y[i] - yref[i]) * ((double)y[i] - yref[i]);
    }
    if (fc->gelu && sqrt(yref_l2) < 0.01 * gate_up_l2)
        err = sqrt(diff_l2) / (0.01 * gate_up_l2);
    CHECK(err < tolerance(type), "%s: relative L2 error %.3g over %.0e", label, err, tolerance(type));
    const size_t outside = opt_count_outside_host(yall, ybytes, yoff, (size_t)M * N * 4);
    CHECK(outside == 0, "%s: %zu words around y written (before its view or past its end)", label, outside);
done:
    if (test_failures != fails_before)
        fprintf(stderr, "  (%s: K=%u M=%u N=%u, err %.3g)\n", label, K, M, N, err);
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, xb, yb);
    vkl_tensor_free(dev, &w);
    vkl_tensor_free(dev, &norm);
    free(wf);
    free(wq);
    free(wd);
    free(x);
    free(gv);
    free(y0);
    free(yref);
    free(yall);
}

/* ---- The Q;K;V epilogue: norm + matvec + rope + KV-cache store ---- */

typedef struct qkv_shape {
    uint32_t n_heads, n_kv, head_dim, n_rot, n_ctx, n_cols;
    bool ff;   /* rope frequency divisors (Llama 3) */
} qkv_shape;

/* Halves of f16 caches as the reference writes them: poison words, then rows positions[c] stored. */
static void cache_ref(const float *kv_rows, uint32_t kv_dim, const uint32_t *pos, uint32_t n_cols, uint32_t n_ctx,
                      uint16_t *kc, uint16_t *vc)
{
    for (size_t i = 0; i < (size_t)n_ctx * kv_dim; i++)
        kc[i] = vc[i] = i % 2 ? OPT_POISON >> 16 : OPT_POISON & 0xffffu;
    ref_kv_store(kv_rows, kv_rows + (size_t)n_cols * kv_dim, kc, vc, pos, n_cols, kv_dim, n_ctx);
}

/* Relative L2 of the written halves of a cache (entries the reference left as poison must still be poison:
 * *stray counts those that are not). */
static double cache_err(const uint16_t *got, const uint16_t *ref, size_t n, size_t *stray)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const bool written = ref[i] != (i % 2 ? OPT_POISON >> 16 : (OPT_POISON & 0xffffu));
        if (!written) {
            *stray += got[i] != ref[i];
            continue;
        }
        const double a = ref_f16_value(got[i]), b = ref_f16_value(ref[i]);
        num += (a - b) * (a - b);
        den += b * b;
    }
    return isfinite(num) ? sqrt(num) / (den > 0 ? sqrt(den) : 1e-30) : INFINITY;
}

/* vkl_op_matmul_fused with the Q;K;V epilogue on random data against ref: norm, matmul, ref_rope of Q and K,
 * ref_kv_store. split: as two weights, Q (rows [0, q)) and K;V (rows [q, q + 2kv), row0 != 0), else one. */
static void run_qkv_case(vkr_device *dev, test_rng *rng, uint32_t type, const qkv_shape *sh, bool split,
                         const char *label)
{
    const uint32_t K = 256, N = sh->n_cols, hd = sh->head_dim;
    const uint32_t q_rows = sh->n_heads * hd, kv = sh->n_kv * hd, rows = q_rows + 2 * kv;
    const size_t cache = (size_t)sh->n_ctx * kv;
    float *wf = malloc((size_t)K * rows * 4), *wd = malloc((size_t)K * rows * 4);
    void *wq = malloc(ref_tensor_bytes(type, K, rows));
    float *x = malloc((size_t)K * N * 4), *xn = malloc((size_t)K * N * 4), *gv = malloc(K * 4);
    float *full = malloc((size_t)rows * N * 4), *qref = malloc((size_t)q_rows * N * 4);
    float *kvref = malloc((size_t)2 * kv * N * 4), *yall = malloc((size_t)rows * N * 4 + 64);
    float ff[128];
    uint16_t *kc_ref = malloc(cache * 2), *vc_ref = malloc(cache * 2), *kc = malloc(cache * 2), *vc = malloc(cache * 2);
    uint32_t pos[8];
    vk_tensor w[2], norm;
    memset(w, 0, sizeof w);
    memset(&norm, 0, sizeof norm);
    vkr_buffer *xb = NULL, *yb = NULL, *kcb = NULL, *vcb = NULL, *pb = NULL, *fb = NULL;
    vkr_graph *g = NULL;
    const int fails_before = test_failures;
    CHECK(wf && wd && wq && x && xn && gv && full && qref && kvref && yall && kc_ref && vc_ref && kc && vc && N <= 8,
          "%s: out of host memory", label);
    if (!(wf && wd && wq && x && xn && gv && full && qref && kvref && yall && kc_ref && vc_ref && kc && vc && N <= 8))
        goto done;
    rng_fill(rng, wf, (size_t)K * rows, -1.0f, 1.0f);
    rng_fill(rng, x, (size_t)K * N, -3.0f, 3.0f);
    rng_fill(rng, gv, K, 0.5f, 1.5f);
    for (uint32_t i = 0; i < sh->n_rot / 2; i++)
        ff[i] = rng_uniform(rng, 1.0f, 8.0f);
    uint32_t max_pos = 0;
    for (uint32_t c = 0; c < N; c++) { /* distinct, out of order */
        pos[c] = (uint32_t)(((uint64_t)c * 7919u + 13u + rng_u32(rng) % 64u) % sh->n_ctx);
        for (uint32_t j = 0; j < c; j++)
            if (pos[j] == pos[c])
                pos[c] = (pos[c] + 1) % sh->n_ctx, j = (uint32_t)-1;
        max_pos = pos[c] > max_pos ? pos[c] : max_pos;
    }
    ref_encode(type, wf, K, rows, wq);
    ref_decode(type, wq, K, rows, wd);
    for (uint32_t c = 0; c < N; c++) {
        double ss = 0;
        for (uint32_t k = 0; k < K; k++)
            ss += (double)x[c * K + k] * x[c * K + k];
        for (uint32_t k = 0; k < K; k++)
            xn[c * K + k] = (float)(x[c * K + k] / sqrt(ss / K + EPS) * gv[k]);
    }
    ref_matmul_f32(wd, xn, full, K, rows, N);
    for (uint32_t c = 0; c < N; c++) {
        memcpy(qref + (size_t)c * q_rows, full + (size_t)c * rows, q_rows * 4);
        memcpy(kvref + (size_t)c * kv, full + (size_t)c * rows + q_rows, kv * 4);            /* K rows */
        memcpy(kvref + (size_t)(N + c) * kv, full + (size_t)c * rows + q_rows + kv, kv * 4); /* V rows */
    }
    const float theta = 10000.0f;
    ref_rope(qref, pos, N, sh->n_heads, hd, sh->n_rot, theta, false, sh->ff ? ff : NULL);
    ref_rope(kvref, pos, N, sh->n_kv, hd, sh->n_rot, theta, false, sh->ff ? ff : NULL);
    cache_ref(kvref, kv, pos, N, sh->n_ctx, kc_ref, vc_ref);

    const size_t ybytes = (size_t)rows * N * 4 + 64;
    const uint32_t parts = split ? 2 : 1, part_rows[2] = {split ? q_rows : rows, 2 * kv};
    vkllm_status st = VKLLM_OK;
    for (uint32_t p = 0; p < parts && st == VKLLM_OK; p++)
        st = vkl_tensor_upload(dev, type, K, part_rows[p],
                              (const uint8_t *)wq + (p ? ref_tensor_bytes(type, K, q_rows) : 0), &w[p]);
    if (st == VKLLM_OK)
        st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, 1, gv, &norm);
    xb = opt_buffer(dev, (size_t)K * N * 4), yb = opt_buffer(dev, ybytes), kcb = opt_buffer(dev, cache * 2);
    vcb = opt_buffer(dev, cache * 2), pb = opt_buffer(dev, N * 4), fb = opt_buffer(dev, 512);
    bool ok = st == VKLLM_OK && xb && yb && kcb && vcb && pb && fb && opt_upload(dev, xb, 0, x, (size_t)K * N * 4) &&
              opt_upload(dev, pb, 0, pos, N * 4) && opt_upload(dev, fb, 0, ff, 256) &&
              vkr_graph_create(dev, &g) == VKLLM_OK;
    CHECK(ok, "%s: setup: %s", label, vkr_last_error());
    if (!ok)
        goto done;
    const vk_tensor fft = opt_f32_tensor(fb, 0, sh->n_rot / 2);
    const vk_rope_params rp = {.n_rows = N, .n_heads = sh->n_kv, .head_dim = hd, .n_rot = sh->n_rot,
                               .theta_base = theta, .mode = VK_ROPE_INTERLEAVED, .freq_factors = sh->ff ? &fft : NULL};
    const vk_attention_params ap = {.n_rows = N, .n_heads = sh->n_heads, .n_kv_heads = sh->n_kv, .head_dim = hd,
                                    .n_ctx = sh->n_ctx, .scale = 1.0f};
    /* split: the K;V part's y (never written) after Q's N * q_rows floats */
    for (uint32_t p = 0; p < parts; p++) {
        const vk_qkv_store qs = {.rope = &rp, .attn = &ap, .k_cache = vk_view_of(kcb, 0),
                                 .v_cache = vk_view_of(vcb, 0), .positions = vk_view_of(pb, 0), .row0 = p ? q_rows : 0};
        const vk_matmul_fusion f = {.norm = &norm, .eps = EPS, .qkv = &qs};
        bool fused = false;
        st = vkl_op_matmul_fused(g, &w[p], vk_view_of(xb, 0), vk_view_of(yb, p ? (size_t)q_rows * N * 4 : 0), N, &f,
                             &fused);
        CHECK(st == VKLLM_OK && fused, "%s: op_matmul_fused: fused %d, %s", label, fused, vkr_last_error());
    }
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    ok = st == VKLLM_OK && opt_download(dev, yb, 0, yall, ybytes) && opt_download(dev, kcb, 0, kc, cache * 2) &&
         opt_download(dev, vcb, 0, vc, cache * 2);
    CHECK(ok, "%s: run: %s", label, vkr_last_error());
    if (!ok)
        goto done;
    /* Q: column c at c * (rows of y per column); then Q's rotation error grows with the position, as in
     * test_op_rope (4e-7 per position) */
    const uint32_t y_cols = split ? q_rows : rows;
    for (uint32_t c = 0; c < N; c++)
        memcpy(xn + (size_t)c * q_rows, yall + (size_t)c * y_cols, q_rows * 4);   /* xn: the got Q */
    const double tol = tolerance(type) + 4e-7 * max_pos;
    double e = rel_l2(xn, qref, (size_t)q_rows * N);
    CHECK(e < tol, "%s: Q rel L2 %.3g over %.3g", label, e, tol);
    /* The K and V rows of y and the words after y: never written (poison). */
    const size_t y_used = split ? (size_t)q_rows * N * 4 : 0;
    size_t y_stray = split ? opt_count_outside_host(yall, ybytes, 0, y_used) : 0;
    for (uint32_t c = 0; !split && c < N; c++)
        for (uint32_t r = q_rows; r < rows; r++)
            y_stray += ((const uint32_t *)yall)[(size_t)c * rows + r] != OPT_POISON;
    CHECK(y_stray == 0, "%s: %zu words of y outside Q written", label, y_stray);
    /* The caches pass through f16 (rel L2 ~3e-4) */
    size_t stray = 0;
    const double ek = cache_err(kc, kc_ref, cache, &stray), ev = cache_err(vc, vc_ref, cache, &stray);
    CHECK(ek < tol + 1e-3 && ev < tol + 1e-3, "%s: K cache rel L2 %.3g, V %.3g over %.3g", label, ek, ev, tol + 1e-3);
    CHECK(stray == 0, "%s: %zu cache halves written outside the positions' rows", label, stray);
done:
    if (test_failures != fails_before)
        fprintf(stderr, "  (%s: heads %u/%u dim %u rot %u ctx %u cols %u ff %d)\n", label, sh->n_heads, sh->n_kv, hd,
                sh->n_rot, sh->n_ctx, N, sh->ff);
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, xb, yb, kcb, vcb, pb, fb);
    vkl_tensor_free(dev, &w[0]);
    vkl_tensor_free(dev, &w[1]);
    vkl_tensor_free(dev, &norm);
    free(wf), free(wd), free(wq), free(x), free(xn), free(gv), free(full), free(qref), free(kvref), free(yall);
    free(kc_ref), free(vc_ref), free(kc), free(vc);
}

static const qkv_shape QKV_SHAPES[] = {
    {8, 2, 8, 8, 64, 1, false},       /* stories260K's heads, one token */
    {4, 2, 64, 64, 300, 1, true},     /* Llama 3 style with frequency divisors */
    {6, 3, 32, 16, 100, 3, false},    /* partial rotation, 3 columns */
    {4, 4, 16, 16, 40, 8, true},      /* 8 columns */
};
#define N_QKV_SHAPES (sizeof QKV_SHAPES / sizeof QKV_SHAPES[0])

/* The Q;K;V epilogue over the main types x shapes, whole and split, and the other types on one shape. */
static void qkv_cases(vkr_device *dev, test_rng *rng, const char *variant)
{
    char label[128];
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++)
        for (size_t si = 0; si < N_QKV_SHAPES; si++)
            for (int split = 0; split < 2; split++) {
                snprintf(label, sizeof label, "%s qkv %s shape %zu%s", variant, vkl_ggml_type_name(TYPES[ti]), si,
                         split ? " split" : "");
                run_qkv_case(dev, rng, TYPES[ti], &QKV_SHAPES[si], split, label);
            }
    uint32_t types[32];
    const uint32_t nt = matmul_case_other_types(types, 32);
    for (uint32_t ti = 0; ti < nt; ti++) {
        snprintf(label, sizeof label, "%s qkv %s", variant, vkl_ggml_type_name(types[ti]));
        run_qkv_case(dev, rng, types[ti], &QKV_SHAPES[2], false, label);
    }
}

/* What the epilogue does not do is not fused (nothing recorded): NeoX pairs, mscale, a ring cache; bad rows
 * are an error. */
static void qkv_refusals(vkr_device *dev)
{
    float wf[32 * 12] = {0};
    vk_tensor w, norm;
    vkr_buffer *b = opt_buffer(dev, 1 << 16);
    vkr_graph *g = NULL;
    if (!b || vkl_tensor_upload(dev, GGML_TYPE_F32, 32, 12, wf, &w) != VKLLM_OK) {
        CHECK(false, "qkv refusals: setup: %s", vkr_last_error());
        return;
    }
    if (vkl_tensor_upload(dev, GGML_TYPE_F32, 32, 1, wf, &norm) == VKLLM_OK && vkr_graph_create(dev, &g) == VKLLM_OK) {
        const vk_view vw = vk_view_of(b, 0);
        for (int i = 0; i < 4; i++) {
            vk_rope_params rp = {.n_rows = 1, .n_heads = 1, .head_dim = 4, .n_rot = 4, .theta_base = 1e4f};
            vk_attention_params ap = {.n_rows = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 4, .n_ctx = 16};
            vk_qkv_store qs = {.rope = &rp, .attn = &ap, .k_cache = vw, .v_cache = vw, .positions = vw};
            rp.mode = i == 0 ? VK_ROPE_NEOX : VK_ROPE_INTERLEAVED;
            rp.mscale = i == 1 ? 2.0f : 0.0f;
            ap.ring = i == 2, ap.window = i == 2 ? 8 : 0;
            qs.row0 = i == 3 ? 1 : 0;
            const vk_matmul_fusion f = {.norm = &norm, .eps = EPS, .qkv = &qs};
            bool fused = true;
            vkllm_status st = vkl_op_matmul_fused(g, &w, vw, vk_view_of(b, 4096), 1, &f, &fused);
            CHECK(i < 3 ? st == VKLLM_OK : st == VKLLM_ERR_INVALID_ARGUMENT, "qkv refusal %d: status %d", i, st);
            CHECK(!fused && vkr_graph_size(g) == 0, "qkv refusal %d: fused %d, %u dispatches", i, fused,
                  vkr_graph_size(g));
        }
    }
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, b);
    vkl_tensor_free(dev, &w);
    vkl_tensor_free(dev, &norm);
}

/* Every fusion x type x shape x column count, on the device's own reduction path. */
static void shapes(vkr_device *dev, test_rng *rng, const char *variant)
{
    static const uint32_t km_all[][2] = {{32, 1}, {96, 7}, {2048, 33}, {64, 100}};
    static const uint32_t km_float[][2] = {{7, 5}, {100, 9}};   /* rows not in whole 16-byte units */
    static const uint32_t ncols[] = {1, 3, 8};
    char label[128];
    for (size_t fi = 0; fi < N_FUSIONS; fi++) {
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            const uint32_t type = TYPES[ti];
            const bool is_float = type == GGML_TYPE_F32 || type == GGML_TYPE_F16;
            for (size_t ni = 0; ni < sizeof ncols / sizeof ncols[0]; ni++) {
                for (size_t i = 0; i < 4 + (is_float ? 2 : 0); i++) {
                    const uint32_t K = i < 4 ? km_all[i][0] : km_float[i - 4][0];
                    const uint32_t M = i < 4 ? km_all[i][1] : km_float[i - 4][1];
                    snprintf(label, sizeof label, "%s %s %s K=%u M=%u N=%u", variant, FUSIONS[fi].name,
                             vkl_ggml_type_name(type), K, M, ncols[ni]);
                    run_case(dev, rng, &FUSIONS[fi], type, K, M, ncols[ni], true, label);
                }
            }
        }
    }
}

/* The other types of the type table (tests/matmul_case.c) on fewer shapes: every fusion, rows of 1 and 8 blocks of
 * 256, 1 and 3 columns, and a norm-fused matvec split into row chunks. */
static void other_types(vkr_device *dev, test_rng *rng, const char *variant)
{
    uint32_t types[32];
    const uint32_t nt = matmul_case_other_types(types, 32);
    char label[128];
    for (uint32_t ti = 0; ti < nt; ti++) {
        const char *tn = vkl_ggml_type_name(types[ti]);
        for (size_t fi = 0; fi < N_FUSIONS; fi++) {
            snprintf(label, sizeof label, "%s %s %s K=256 M=33 N=1", variant, FUSIONS[fi].name, tn);
            run_case(dev, rng, &FUSIONS[fi], types[ti], 256, 33, 1, true, label);
            snprintf(label, sizeof label, "%s %s %s K=2048 M=7 N=3", variant, FUSIONS[fi].name, tn);
            run_case(dev, rng, &FUSIONS[fi], types[ti], 2048, 7, 3, true, label);
        }
        vkr_features saved = dev->info.features;
        dev->info.features.max_storage_buffer_range = matmul_case_small_range(types[ti]);
        if (dev->info.features.min_storage_buffer_offset_alignment < 256)
            dev->info.features.min_storage_buffer_offset_alignment = 256;
        snprintf(label, sizeof label, "%s small-range norm %s", variant, tn);
        run_case(dev, rng, &FUSIONS[0], types[ti], 256, 300, 1, true, label);
        dev->info.features = saved;
    }
}

/* A binding range of a few KiB: norm-fused and accumulating matvecs split into row chunks; a GLU weight
 * (bound whole) and more than 8 columns are not fused. */
static void limits(vkr_device *dev, test_rng *rng)
{
    vkr_features saved = dev->info.features;
    dev->info.features.max_storage_buffer_range = 4096 + 512;
    if (dev->info.features.min_storage_buffer_offset_alignment < 256)
        dev->info.features.min_storage_buffer_offset_alignment = 256;
    char label[128];
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        snprintf(label, sizeof label, "small-range norm %s", vkl_ggml_type_name(TYPES[ti]));
        run_case(dev, rng, &FUSIONS[0], TYPES[ti], 64, 300, 1, true, label);
        snprintf(label, sizeof label, "small-range accumulate %s", vkl_ggml_type_name(TYPES[ti]));
        run_case(dev, rng, &FUSIONS[2], TYPES[ti], 64, 301, 2, true, label);
        snprintf(label, sizeof label, "small-range norm+glu %s (refused)", vkl_ggml_type_name(TYPES[ti]));
        run_case(dev, rng, &FUSIONS[1], TYPES[ti], 64, 300, 1, false, label);
    }
    dev->info.features = saved;
    run_case(dev, rng, &FUSIONS[0], GGML_TYPE_Q4_0, 64, 10, 9, false, "9 columns (refused)");
}

int main(void)
{
    test_device td;
    test_rng rng;
    if (!test_op_begin(&td, &rng))
        return 1;
    vkr_device *dev = td.dev;
    const VkPhysicalDeviceType real_type = dev->info.type;
    const vkr_features saved = dev->info.features;

    /* The CPU-device kernel does not fuse: nothing is recorded. */
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (dev->info.features.subgroup_shuffle)
        run_case(dev, &rng, &FUSIONS[0], GGML_TYPE_Q4_0, 64, 10, 1, false, "cpu device (not fused)");

    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    if (saved.subgroup_arithmetic) {
        shapes(dev, &rng, "subgroup");
        other_types(dev, &rng, "subgroup");
        qkv_cases(dev, &rng, "subgroup");
    }
    dev->info.features.subgroup_arithmetic = false;
    shapes(dev, &rng, "shared-memory");
    if (!saved.subgroup_arithmetic)
        other_types(dev, &rng, "shared-memory");
    qkv_cases(dev, &rng, "shared-memory");
    qkv_refusals(dev);
    dev->info.features.subgroup_size = 128;   /* a larger workgroup, as for wide subgroups */
    for (size_t fi = 0; fi < N_FUSIONS; fi++)
        run_case(dev, &rng, &FUSIONS[fi], GGML_TYPE_Q4_0, 2048, 37, 2, true, "shared-memory wg-for-128");
    dev->info.features = saved;
    /* Other workgroup shapes (VKLLM_MATVEC=ROWSxWG, as when tuning a GPU): 1, 5 and 16 rows. */
    static const char *shapes_env[] = {"1x32", "5x64", "16x128"};
    for (size_t si = 0; si < 3; si++) {
        setenv("VKLLM_MATVEC", shapes_env[si], 1);
        char label[64];
        for (size_t fi = 0; fi < N_FUSIONS; fi++) {
            for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
                snprintf(label, sizeof label, "matvec %s %s", shapes_env[si], FUSIONS[fi].name);
                run_case(dev, &rng, &FUSIONS[fi], TYPES[ti], 256, 37, fi == 0 ? 3 : 1, true, label);
            }
        }
        snprintf(label, sizeof label, "matvec %s qkv", shapes_env[si]);   /* odd rows: rounded up to pairs */
        run_qkv_case(dev, &rng, GGML_TYPE_Q4_0, &QKV_SHAPES[2], false, label);
    }
    /* A shape whose reduction array overflows shared memory (16 rows x 256 invocations x 3 columns, the GLU's
     * doubled rows, against 16 KiB): a smaller shape is taken, and the results are still right. */
    setenv("VKLLM_MATVEC", "16x256", 1);
    dev->info.features.max_compute_shared_memory = 16384;
    for (size_t fi = 0; fi < N_FUSIONS; fi++)
        run_case(dev, &rng, &FUSIONS[fi], GGML_TYPE_Q8_0, 512, 70, 3, true, "matvec 16x256 over shared memory");
    run_qkv_case(dev, &rng, GGML_TYPE_Q4_0, &QKV_SHAPES[2], false, "matvec 16x256 qkv over shared memory");
    dev->info.features = saved;
    unsetenv("VKLLM_MATVEC");
    limits(dev, &rng);

    /* Bad arguments: y += W x over x itself is refused with a message and nothing recorded. */
    vk_tensor w;
    float wf[32 * 2] = {0};
    vkr_buffer *b = NULL;
    vkr_graph *g = NULL;
    if (vkl_tensor_upload(dev, GGML_TYPE_F32, 32, 2, wf, &w) == VKLLM_OK) {
        if (vkr_buffer_create(dev, 256, VKR_MEMORY_DEVICE, &b) == VKLLM_OK && vkr_graph_create(dev, &g) == VKLLM_OK) {
            vk_matmul_fusion f = {.accumulate = true};
            bool fused = true;
            vkllm_status st = vkl_op_matmul_fused(g, &w, vk_view_of(b, 0), vk_view_of(b, 64), 1, &f, &fused);
            CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && *vkr_last_error() && !fused, "overlapping y: status %d", st);
            CHECK(vkr_graph_size(g) == 0, "a refused op added dispatches");
        }
        vkr_graph_destroy(g);
        vkr_buffer_destroy(dev, b);
        vkl_tensor_free(dev, &w);
    }

    dev->info.type = real_type;
    test_device_close(&td);
    if (test_failures)
        fprintf(stderr, "seed was %llu\n", (unsigned long long)test_seed());
    return test_finish("op_matmul_fused");
}

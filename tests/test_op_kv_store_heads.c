/* vkl_op_rope_kv_store_heads against a CPU reference built from ref_rmsnorm, ref_rope and ref_kv_store: per head,
 * x + bias, RMSNorm times a weight, rope (interleaved or NeoX, partial, frequency factors, cos/sin times
 * mscale), Q in place and K/V into the f16 caches at positions out of order. Poisoned caches catch rows
 * written at the wrong place; a guard after Q catches writes past it. Tolerances: Q rel L2 < 1e-5 + 4e-7 *
 * max position (as test_op_rope.c), the caches rel L2 < 1e-3 (f16's precision). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "ref/ref_ops.h"
#include "util.h"

typedef struct heads_case {
    uint32_t n_heads, n_kv_heads, head_dim, n_rot, n_ctx, n_rows;
    bool neox, bias, norm, freq_factors, with_q;
    float mscale;
    bool ring;              /* the cache is a ring of n_ctx rows: positions 1000.. go to rows p % n_ctx */
} heads_case;

/* x[r][h][:] = rmsnorm(x[r][h][:] + bias[h][:]) * w (each step when given). */
static void ref_prep(float *x, const float *bias, const float *w, uint32_t n_rows, uint32_t n_heads, uint32_t hd,
                     float eps)
{
    for (uint32_t r = 0; r < n_rows; r++)
        for (uint32_t h = 0; h < n_heads; h++) {
            float *head = x + ((size_t)r * n_heads + h) * hd;
            for (uint32_t i = 0; bias && i < hd; i++)
                head[i] += bias[(size_t)h * hd + i];
            if (w)
                ref_rmsnorm(head, w, head, 1, hd, eps);
        }
}

/* The rotated dims [0, n_rot) of every head times m (ref_rope then the scale). */
static void ref_scale_rotated(float *x, uint32_t n, uint32_t hd, uint32_t n_rot, float m)
{
    for (uint32_t h = 0; h < n; h++)
        for (uint32_t i = 0; i < n_rot; i++)
            x[(size_t)h * hd + i] *= m;
}

static void run_case(vkr_device *dev, test_rng *rng, const heads_case *c)
{
    const uint32_t hd = c->head_dim, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    const size_t nq = (size_t)c->n_rows * q_dim, nkv = (size_t)c->n_rows * kv_dim, cache = (size_t)c->n_ctx * kv_dim;
    const size_t guard = 16, n_aux = q_dim + 2 * (size_t)kv_dim + 2 * hd;
    const float eps = 1e-6f, theta = 10000.0f;
    float *q = malloc((nq + guard) * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *aux = malloc(n_aux * 4);
    float *q_ref = malloc(nq * 4), *k_ref = malloc(nkv * 4), *v_ref = malloc(nkv * 4), *q_got = malloc((nq + guard) * 4);
    float *ff = malloc(hd * 4);
    uint16_t *kref = malloc(cache * 2), *vref = malloc(cache * 2), *kgot = malloc(cache * 2), *vgot = malloc(cache * 2);
    uint32_t *pos = malloc((size_t)c->n_rows * 4);
    uint32_t *rows = malloc((size_t)c->n_rows * 4);   /* the cache row of each position */
    for (uint32_t r = 0; r < c->n_rows; r++) {
        pos[r] = c->ring ? 1000 + r : (uint32_t)(((uint64_t)r * 7919u + 13u) % c->n_ctx);   /* distinct rows */
        rows[r] = pos[r] % c->n_ctx;
    }
    for (size_t i = 0; i < nq + guard; i++)
        q[i] = rng_normal(rng);
    for (size_t i = 0; i < nkv; i++) {
        k[i] = rng_normal(rng);
        v[i] = rng_normal(rng);
    }
    /* aux: biases (q, k, v) then norm weights (q, k), packed as the op reads them */
    size_t at = 0;
    for (size_t i = 0; c->bias && i < q_dim + 2 * (size_t)kv_dim; i++)
        aux[at++] = rng_uniform(rng, -0.5f, 0.5f);
    const float *bq = c->bias ? aux : NULL, *bk = c->bias ? aux + q_dim : NULL, *bv = c->bias ? aux + q_dim + kv_dim : NULL;
    const float *wq = c->norm ? aux + at : NULL, *wk = c->norm ? aux + at + hd : NULL;
    for (size_t i = 0; c->norm && i < 2 * (size_t)hd; i++)
        aux[at++] = rng_uniform(rng, 0.5f, 1.5f);
    for (uint32_t i = 0; i < c->n_rot / 2; i++)
        ff[i] = rng_uniform(rng, 1.0f, 8.0f);

    memcpy(q_ref, q, nq * 4);
    memcpy(k_ref, k, nkv * 4);
    memcpy(v_ref, v, nkv * 4);
    ref_prep(q_ref, bq, wq, c->n_rows, c->n_heads, hd, eps);
    ref_prep(k_ref, bk, wk, c->n_rows, c->n_kv_heads, hd, eps);
    ref_prep(v_ref, bv, NULL, c->n_rows, c->n_kv_heads, hd, eps);
    ref_rope(q_ref, pos, c->n_rows, c->n_heads, hd, c->n_rot, theta, c->neox, c->freq_factors ? ff : NULL);
    ref_rope(k_ref, pos, c->n_rows, c->n_kv_heads, hd, c->n_rot, theta, c->neox, c->freq_factors ? ff : NULL);
    ref_scale_rotated(q_ref, c->n_rows * c->n_heads, hd, c->n_rot, c->mscale);
    ref_scale_rotated(k_ref, c->n_rows * c->n_kv_heads, hd, c->n_rot, c->mscale);
    const uint16_t poison[2] = {OPT_POISON & 0xffffu, OPT_POISON >> 16};
    for (size_t i = 0; i < cache; i++)
        kref[i] = vref[i] = poison[i % 2];
    ref_kv_store(k_ref, v_ref, kref, vref, rows, c->n_rows, kv_dim, c->n_ctx);

    vkr_buffer *qb = opt_buffer(dev, (nq + guard) * 4), *kb = opt_buffer(dev, nkv * 4), *vb = opt_buffer(dev, nkv * 4);
    vkr_buffer *kcb = opt_buffer(dev, cache * 2), *vcb = opt_buffer(dev, cache * 2);
    vkr_buffer *pb = opt_buffer(dev, (size_t)c->n_rows * 4), *ab = opt_buffer(dev, n_aux * 4 + 16);
    vkr_buffer *fb = opt_buffer(dev, hd * 4 + 16);
    vkr_graph *g = NULL;
    vk_tensor aux_t = opt_f32_tensor(ab, 0, at ? at : 1), ff_t = opt_f32_tensor(fb, 0, c->n_rot / 2);
    const vk_rope_params rp = {.n_rows = c->n_rows, .n_heads = c->n_kv_heads, .head_dim = hd, .n_rot = c->n_rot,
                               .theta_base = theta, .mode = c->neox ? VK_ROPE_NEOX : VK_ROPE_INTERLEAVED,
                               .freq_factors = c->freq_factors ? &ff_t : NULL, .mscale = c->mscale};
    const vk_head_prep prep = {.aux = &aux_t, .bias = c->bias, .norm = c->norm, .eps = eps};
    const vk_attention_params ap = {.n_rows = c->n_rows, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads,
                                    .head_dim = hd, .n_ctx = c->n_ctx, .scale = 1.0f, .window = c->ring ? 1 : 0,
                                    .ring = c->ring};
    bool ok = qb && kb && vb && kcb && vcb && pb && ab && fb && opt_upload(dev, qb, 0, q, (nq + guard) * 4) &&
              opt_upload(dev, kb, 0, k, nkv * 4) && opt_upload(dev, vb, 0, v, nkv * 4) &&
              opt_upload(dev, pb, 0, pos, (size_t)c->n_rows * 4) && opt_upload(dev, ab, 0, aux, n_aux * 4) &&
              opt_upload(dev, fb, 0, ff, hd * 4) && vkr_graph_create(dev, &g) == VKLLM_OK;
    vkllm_status st = ok ? vkl_op_rope_kv_store_heads(g, vk_view_of(c->with_q ? qb : NULL, 0), vk_view_of(kb, 0),
                                                  vk_view_of(vb, 0), vk_view_of(kcb, 0), vk_view_of(vcb, 0),
                                                  vk_view_of(pb, 0), &rp, &prep, &ap)
                         : VKLLM_ERR_INVALID_ARGUMENT;
    char what[160];
    snprintf(what, sizeof what, "heads %u/%u x %u rot %u rows %u neox %d bias %d norm %d ff %d q %d mscale %g ring %d",
             c->n_heads, c->n_kv_heads, hd, c->n_rot, c->n_rows, c->neox, c->bias, c->norm, c->freq_factors, c->with_q,
             (double)c->mscale, c->ring);
    if (test_op_run(g, st, what) && opt_download(dev, kcb, 0, kgot, cache * 2) &&
        opt_download(dev, vcb, 0, vgot, cache * 2) && opt_download(dev, qb, 0, q_got, (nq + guard) * 4)) {
        uint32_t max_pos = 0;
        for (uint32_t r = 0; r < c->n_rows; r++)
            max_pos = pos[r] > max_pos ? pos[r] : max_pos;
        const double q_tol = 1e-5 + 4e-7 * max_pos;
        double qe = rel_l2(q_got, c->with_q ? q_ref : q, nq);
        CHECK(c->with_q ? qe < q_tol : qe == 0.0, "%s: Q rel L2 %.3g (tol %.3g)", what, qe, q_tol);
        CHECK(memcmp(q_got + nq, q + nq, guard * 4) == 0, "%s: written past the end of Q", what);
        float *ga = malloc(cache * 4 * 2), *ra = malloc(cache * 4 * 2);
        size_t poison_bad = 0;
        for (size_t i = 0; i < cache; i++) {
            bool written = kref[i] != poison[i % 2];
            if (!written)
                poison_bad += kgot[i] != kref[i] || vgot[i] != vref[i];
            ga[i] = written ? ref_f16_value(kgot[i]) : 0;
            ra[i] = written ? ref_f16_value(kref[i]) : 0;
            ga[cache + i] = written ? ref_f16_value(vgot[i]) : 0;
            ra[cache + i] = written ? ref_f16_value(vref[i]) : 0;
        }
        double ke = rel_l2(ga, ra, cache), ve = rel_l2(ga + cache, ra + cache, cache);
        CHECK(ke < 1e-3 && ve < 1e-3, "%s: cache rel L2 K %.3g V %.3g", what, ke, ve);
        CHECK(poison_bad == 0, "%s: %zu halves written outside the given positions", what, poison_bad);
        free(ga);
        free(ra);
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, qb, kb, vb, kcb, vcb, pb, ab, fb);
    free(q), free(k), free(v), free(aux), free(q_ref), free(k_ref), free(v_ref), free(q_got), free(ff);
    free(kref), free(vref), free(kgot), free(vgot), free(pos), free(rows);
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    static const heads_case cases[] = {
        /* heads, kv heads, head_dim, n_rot, n_ctx, rows, neox, bias, norm, ff, with Q, mscale, ring */
        {14, 2, 64, 64, 300, 37, true, true, false, false, true, 1.0f, false},    /* Qwen2.5 prompt: biases */
        {14, 2, 64, 64, 300, 1, true, true, false, true, true, 1.139f, false},    /* Qwen2.5 decode, YaRN-like */
        {16, 8, 128, 128, 500, 9, true, false, true, false, true, 1.0f, false},   /* Qwen3: Q/K norms */
        {4, 1, 256, 256, 100, 5, true, false, true, false, true, 1.0f, false},    /* Gemma 3: head_dim 256 */
        {8, 4, 32, 24, 64, 7, true, false, false, true, true, 1.2f, false},       /* Phi-4-mini: partial, LongRoPE */
        {8, 4, 32, 24, 64, 7, false, true, true, true, true, 1.0f, false},        /* interleaved with all of it */
        {6, 3, 48, 48, 64, 3, true, true, true, false, false, 1.0f, false},       /* K and V only */
        {2, 2, 2, 2, 16, 16, true, false, true, false, true, 1.0f, false},        /* head_dim 2 */
        {4, 1, 64, 64, 24, 9, true, false, true, false, true, 1.0f, true},     /* Gemma 3 local layer, ring */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(td.dev, &rng, &cases[i]);
    vkr_graph *g;
    if (vkr_graph_create(td.dev, &g) == VKLLM_OK) {
        vkr_buffer *b = opt_buffer(td.dev, 1 << 16);
        vk_tensor t = opt_f32_tensor(b, 0, 4);
        vk_rope_params rp = {.n_rows = 1, .n_heads = 1, .head_dim = 8, .n_rot = 10, .theta_base = 1e4f,
                             .mode = VK_ROPE_NEOX, .mscale = 1.0f};
        vk_head_prep prep = {.aux = &t, .bias = true, .norm = false, .eps = 1e-6f};
        vk_attention_params ap = {.n_rows = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 8, .n_ctx = 16, .scale = 1};
        vk_view vw = vk_view_of(b, 0);
        CHECK(vkl_op_rope_kv_store_heads(g, vw, vw, vw, vw, vw, vw, &rp, &prep, &ap) == VKLLM_ERR_INVALID_ARGUMENT,
              "n_rot > head_dim must be refused");
        rp.n_rot = 8;
        CHECK(vkl_op_rope_kv_store_heads(g, vw, vw, vw, vw, vw, vw, &rp, &prep, &ap) == VKLLM_ERR_INVALID_ARGUMENT,
              "an aux vector shorter than the biases must be refused");
        CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
        vkr_buffer_destroy(td.dev, b);
        vkr_graph_destroy(g);
    }
    test_device_close(&td);
    return test_finish("op_kv_store_heads");
}

/* vkl_op_rope_kv_store: rotating K on its way into the f16 cache equals vkl_op_rope followed by vkl_op_kv_store
 * (CPU reference: ref_rope then ref_kv_store), with and without frequency factors, positions out of
 * order, and n_rot < head_dim. Poisoned caches catch rows written at the wrong place or not at all.
 * With q given (group > 0: group query heads per kv head), Q must come out as vkl_op_rope leaves it
 * (tolerance as tests/test_op_rope.c: rel L2 < 1e-5 + 4e-7 * max position), and a guard after it untouched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "ref/ref_ops.h"
#include "util.h"

static void run_case(vkr_device *dev, test_rng *rng, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_rot,
                     uint32_t n_ctx, uint32_t n_rows, bool freq_factors, uint32_t group)
{
    const uint32_t kv_dim = n_kv_heads * head_dim, n_heads = n_kv_heads * (group ? group : 1);
    const size_t act = (size_t)n_rows * kv_dim, cache = (size_t)n_ctx * kv_dim;
    const size_t q_n = (size_t)n_rows * n_heads * head_dim, q_guard = 16;
    float *q = malloc((q_n + q_guard) * 4), *q_rot = malloc(q_n * 4), *q_got = malloc((q_n + q_guard) * 4);
    float *k = malloc(act * 4), *v = malloc(act * 4), *k_rot = malloc(act * 4), *ff = malloc(head_dim * 2 + 4);
    uint16_t *kref = malloc(cache * 2), *vref = malloc(cache * 2), *kgot = malloc(cache * 2), *vgot = malloc(cache * 2);
    uint32_t *pos = malloc((size_t)n_rows * 4);
    for (uint32_t r = 0; r < n_rows; r++) /* distinct, out of order */
        pos[r] = (uint32_t)(((uint64_t)r * 7919u + 13u) % n_ctx);
    for (size_t i = 0; i < act; i++) {
        k[i] = rng_normal(rng);
        v[i] = rng_normal(rng);
    }
    for (uint32_t i = 0; i < n_rot / 2; i++)
        ff[i] = rng_uniform(rng, 1.0f, 8.0f);
    for (size_t i = 0; i < q_n + q_guard; i++)
        q[i] = rng_normal(rng);
    const float theta = 10000.0f;
    memcpy(k_rot, k, act * 4);
    ref_rope(k_rot, pos, n_rows, n_kv_heads, head_dim, n_rot, theta, false, freq_factors ? ff : NULL);
    memcpy(q_rot, q, q_n * 4);
    ref_rope(q_rot, pos, n_rows, n_heads, head_dim, n_rot, theta, false, freq_factors ? ff : NULL);
    /* The caches are poisoned as 32-bit words: halves alternate low, high. */
    const uint16_t poison[2] = {OPT_POISON & 0xffffu, OPT_POISON >> 16};
    for (size_t i = 0; i < cache; i++)
        kref[i] = vref[i] = poison[i % 2];
    ref_kv_store(k_rot, v, kref, vref, pos, n_rows, kv_dim, n_ctx);

    vkr_buffer *kb = opt_buffer(dev, act * 4), *vb = opt_buffer(dev, act * 4), *pb = opt_buffer(dev, n_rows * 4u);
    vkr_buffer *kcb = opt_buffer(dev, cache * 2), *vcb = opt_buffer(dev, cache * 2), *fb = opt_buffer(dev, 4096);
    vkr_buffer *qb = opt_buffer(dev, (q_n + q_guard) * 4);
    vkr_graph *g = NULL;
    vk_tensor fft = opt_f32_tensor(fb, 0, n_rot / 2);
    vk_rope_params rp = {.n_rows = n_rows, .n_heads = n_kv_heads, .head_dim = head_dim, .n_rot = n_rot,
                         .theta_base = theta, .mode = VK_ROPE_INTERLEAVED, .freq_factors = freq_factors ? &fft : NULL};
    vk_attention_params ap = {.n_rows = n_rows, .n_heads = n_heads, .n_kv_heads = n_kv_heads,
                              .head_dim = head_dim, .n_ctx = n_ctx, .scale = 1.0f};
    bool ok = kb && vb && pb && kcb && vcb && fb && qb && opt_upload(dev, kb, 0, k, act * 4) &&
              opt_upload(dev, qb, 0, q, (q_n + q_guard) * 4) &&
              opt_upload(dev, vb, 0, v, act * 4) && opt_upload(dev, pb, 0, pos, n_rows * 4u) &&
              opt_upload(dev, fb, 0, ff, (n_rot / 2) * 4u) && vkr_graph_create(dev, &g) == VKLLM_OK;
    vkllm_status st = ok ? vkl_op_rope_kv_store(g, vk_view_of(group ? qb : NULL, 0), vk_view_of(kb, 0), vk_view_of(vb, 0),
                                            vk_view_of(kcb, 0),
                                            vk_view_of(vcb, 0), vk_view_of(pb, 0), &rp, &ap)
                         : VKLLM_ERR_INVALID_ARGUMENT;
    CHECK(st == VKLLM_OK, "op_rope_kv_store setup: %s", vkr_last_error());
    if (st == VKLLM_OK && (st = vkr_graph_run(g)) == VKLLM_OK && opt_download(dev, kcb, 0, kgot, cache * 2) &&
        opt_download(dev, vcb, 0, vgot, cache * 2) && opt_download(dev, qb, 0, q_got, (q_n + q_guard) * 4)) {
        /* Q: rotated as vkl_op_rope would (group > 0), else untouched; the guard after it untouched either way */
        uint32_t max_pos = 0;
        for (uint32_t r = 0; r < n_rows; r++)
            max_pos = pos[r] > max_pos ? pos[r] : max_pos;
        const double q_tol = 1e-5 + 4e-7 * max_pos;
        double qe = rel_l2(q_got, group ? q_rot : q, q_n);
        CHECK(group ? qe < q_tol : qe == 0.0, "rope_kv_store group %u: Q rel L2 %.3g (tol %.3g)", group, qe, q_tol);
        CHECK(memcmp(q_got + q_n, q + q_n, q_guard * 4) == 0, "rope_kv_store: written past the end of Q");
        /* Written rows must match; unwritten rows must still hold the poison. */
        float *a = malloc(cache * 4), *b = malloc(cache * 4);
        size_t poison_bad = 0;
        for (size_t i = 0; i < cache; i++) {
            bool written = kref[i] != poison[i % 2];
            if (!written) {
                poison_bad += kgot[i] != kref[i] || vgot[i] != vref[i];
                a[i] = b[i] = 0;
            } else {
                a[i] = ref_f16_value(kgot[i]);
                b[i] = ref_f16_value(kref[i]);
            }
        }
        /* K passes through f16 after a rotation the GPU computes in f32: rel L2 < 1e-3 (f16's precision). */
        double e = rel_l2(a, b, cache);
        CHECK(e < 1e-3, "rope_kv_store %ux%u rot %u ff %d: K cache rel L2 %.3g", n_kv_heads, head_dim, n_rot,
              freq_factors, e);
        CHECK(poison_bad == 0, "rope_kv_store: %zu halves written outside the given positions", poison_bad);
        size_t v_bad = 0;
        for (size_t i = 0; i < cache; i++)
            v_bad += vgot[i] != vref[i] && abs((int)vgot[i] - (int)vref[i]) > 1;
        CHECK(v_bad == 0, "rope_kv_store: %zu V halves off by more than 1 ulp (V is not rotated)", v_bad);
        free(a);
        free(b);
    } else {
        CHECK(false, "rope_kv_store run: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, kb, vb, pb, kcb, vcb, fb, qb);
    free(q), free(q_rot), free(q_got);
    free(k), free(v), free(k_rot), free(ff), free(kref), free(vref), free(kgot), free(vgot), free(pos);
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    /* kv heads, head_dim, n_rot, n_ctx, rows, frequency factors, query heads per kv head (0: no Q) */
    run_case(td.dev, &rng, 2, 8, 8, 64, 5, false, 0);      /* stories260K-like heads */
    run_case(td.dev, &rng, 2, 8, 8, 64, 5, false, 1);
    run_case(td.dev, &rng, 4, 64, 64, 300, 37, true, 0);   /* Llama 3 style with frequency factors */
    run_case(td.dev, &rng, 4, 64, 64, 300, 37, true, 4);
    run_case(td.dev, &rng, 3, 32, 16, 100, 1, false, 0);   /* decode: one row; partial rotation */
    run_case(td.dev, &rng, 3, 32, 16, 100, 1, false, 3);
    run_case(td.dev, &rng, 1, 128, 128, 2000, 9, true, 0);
    run_case(td.dev, &rng, 8, 128, 128, 2000, 1, true, 4); /* Llama 3 8B decode */
    /* NeoX pairs are not the packed pairs: refused. */
    vkr_graph *g;
    if (vkr_graph_create(td.dev, &g) == VKLLM_OK) {
        vkr_buffer *b = opt_buffer(td.dev, 1 << 16);
        vk_rope_params rp = {.n_rows = 1, .n_heads = 1, .head_dim = 8, .n_rot = 8, .theta_base = 1e4f, .mode = VK_ROPE_NEOX};
        vk_attention_params ap = {.n_rows = 1, .n_heads = 1, .n_kv_heads = 1,
                                  .head_dim = 8, .n_ctx = 16, .scale = 1.0f};
        vk_view vw = vk_view_of(b, 0);
        CHECK(vkl_op_rope_kv_store(g, vw, vw, vw, vw, vw, vw, &rp, &ap) == VKLLM_ERR_INVALID_ARGUMENT,
              "NeoX must be refused");
        vkr_buffer_destroy(td.dev, b);
        vkr_graph_destroy(g);
    }
    test_device_close(&td);
    return test_finish("op_rope_kv_store");
}

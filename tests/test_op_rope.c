/* vkl_op_rope against ref_rope (angles and rotation in double) on seeded random data: interleaved and NeoX
 * pairs, partial rotation (dims >= n_rot must come back bit-identical), Llama 3.1 freq_factors, positions
 * that do not start at 0 and are not in order, row/head counts whose pair count is no multiple of the
 * workgroup size, views at aligned and unaligned offsets, and a recorded graph replayed with new positions.
 * The op is in place; words around x must keep their poison.
 * Tolerance: relative L2 < 1e-5 + 4e-7 * max_position. The angle pos * base^(-2i/n_rot) is formed in f32
 * on the GPU, so its absolute error grows with the position (a few ulps of pos, ~pos * 2^-22 rad); the
 * second term allows exactly that and nothing more (at position 4096: 1.6e-3). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"
#include "util.h"

typedef struct rope_case {
    uint32_t n_rows, n_heads, head_dim, n_rot;
    float base;
    vk_rope_mode mode;
    bool ff;
    uint32_t pos0, pos_spread;   /* positions: pos0 + random in [0, pos_spread) (0: pos0 + r) */
} rope_case;

static void run_case(vkr_device *dev, test_rng *rng, const rope_case *c, size_t x_off, size_t p_off, size_t f_off,
                     bool replay)
{
    const size_t n = (size_t)c->n_rows * c->n_heads * c->head_dim;
    float *x = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    float *ff = malloc((c->n_rot / 2 + 1) * 4);
    uint32_t *pos = malloc((size_t)c->n_rows * 4);
    rng_fill(rng, x, n, -3.0f, 3.0f);
    for (uint32_t i = 0; i < c->n_rot / 2; i++)
        ff[i] = rng_uniform(rng, 1.0f, 8.0f);

    vkr_buffer *xb = opt_buffer(dev, x_off + n * 4 + 64);
    vkr_buffer *pb = opt_buffer(dev, p_off + (size_t)c->n_rows * 4 + 16);
    vkr_buffer *fb = opt_buffer(dev, f_off + (size_t)(c->n_rot / 2 + 1) * 4 + 16);
    vkr_graph *g = NULL;
    vk_tensor ft = opt_f32_tensor(fb, f_off, c->n_rot / 2);
    vk_rope_params p = {c->n_rows, c->n_heads, c->head_dim, c->n_rot, c->base, c->mode, c->ff ? &ft : NULL, 1.0f};
    bool ok = xb && pb && fb && opt_upload(dev, fb, f_off, ff, (size_t)(c->n_rot / 2) * 4) &&
              vkr_graph_create(dev, &g) == VKLLM_OK;
    if (ok) {
        vkllm_status st = vkl_op_rope(g, vk_view_of(xb, x_off), vk_view_of(pb, p_off), &p);
        CHECK(st == VKLLM_OK, "op_rope: %s", vkr_last_error());
        ok = st == VKLLM_OK;
    } else {
        CHECK(false, "rope: setup failed: %s", vkr_last_error());
    }
    /* Run twice when replaying: the second run reuses the recording with new positions and new x. */
    for (int run = 0; ok && run < (replay ? 2 : 1); run++) {
        uint32_t max_pos = 0;
        for (uint32_t r = 0; r < c->n_rows; r++) {
            pos[r] = c->pos0 + run * 7 + (c->pos_spread ? rng_u32(rng) % c->pos_spread : r);
            max_pos = pos[r] > max_pos ? pos[r] : max_pos;
        }
        if (run)
            rng_fill(rng, x, n, -3.0f, 3.0f);
        memcpy(ref, x, n * 4);
        ref_rope(ref, pos, c->n_rows, c->n_heads, c->head_dim, c->n_rot, c->base, c->mode == VK_ROPE_NEOX,
                 c->ff ? ff : NULL);
        if (!opt_poison(dev, xb) || !opt_upload(dev, xb, x_off, x, n * 4) ||
            !opt_upload(dev, pb, p_off, pos, (size_t)c->n_rows * 4))
            break;
        vkllm_status st = vkr_graph_run(g);
        CHECK(st == VKLLM_OK, "graph run: %s", vkr_last_error());
        if (st != VKLLM_OK || !opt_download(dev, xb, x_off, got, n * 4))
            break;
        const double tol = 1e-5 + 4e-7 * max_pos;
        double e = rel_l2(got, ref, n);
        if (getenv("VKLLM_TEST_VERBOSE"))
            fprintf(stderr, "rope max pos %u: rel L2 %.3g (tol %.3g)\n", max_pos, e, tol);
        CHECK(e < tol, "rope %ux%ux%u rot %u %s%s max pos %u offs %zu/%zu run %d: rel L2 %.3g > %.3g", c->n_rows,
              c->n_heads, c->head_dim, c->n_rot, c->mode == VK_ROPE_NEOX ? "neox" : "interleaved",
              c->ff ? " ff" : "", max_pos, x_off, p_off, run, e, tol);
        if (e >= tol)
            opt_report_mismatches("x", got, ref, n, 1e-5, 1e-3);
        size_t pass_bad = 0;
        for (size_t rh = 0; rh < (size_t)c->n_rows * c->n_heads; rh++)
            for (uint32_t d = c->n_rot; d < c->head_dim; d++)
                pass_bad += memcmp(&got[rh * c->head_dim + d], &x[rh * c->head_dim + d], 4) != 0;
        CHECK(pass_bad == 0, "rope: %zu pass-through elements changed", pass_bad);
        size_t outside = opt_count_outside(dev, xb, x_off, n * 4);
        CHECK(outside == 0, "rope: %zu words written outside x", outside);
    }
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, xb);
    vkr_buffer_destroy(dev, pb);
    vkr_buffer_destroy(dev, fb);
    free(x);
    free(ref);
    free(got);
    free(ff);
    free(pos);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 4096 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_view v = vk_view_of(b, 0);
    vk_tensor ff = opt_f32_tensor(b, 0, 4);
    vk_rope_params p = {1, 2, 16, 16, 10000.0f, VK_ROPE_INTERLEAVED, NULL, 1.0f};
    p.n_rot = 18;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "n_rot > head_dim");
    p.n_rot = 7;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "odd n_rot");
    p.n_rot = 16;
    p.mode = (vk_rope_mode)1;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_UNSUPPORTED, "unknown mode");
    p.mode = VK_ROPE_NEOX;
    p.theta_base = 0.0f;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "theta_base 0");
    p.theta_base = 10000.0f;
    p.freq_factors = &ff;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "4 freq factors for n_rot 16");
    p.freq_factors = NULL;
    p.n_rows = 1000;
    CHECK(vkl_op_rope(g, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "x past the end of its buffer");
    CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
    CHECK(vkl_op_rope(g, v, v, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL params");
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    vkr_device *dev = td.dev;
    const size_t a1 = opt_aligned(dev, 1), a3 = opt_aligned(dev, 3);
    static const rope_case cases[] = {
        {1, 1, 2, 2, 10000.0f, VK_ROPE_INTERLEAVED, false, 0, 0},
        {5, 4, 64, 64, 10000.0f, VK_ROPE_INTERLEAVED, false, 3, 0},
        {7, 3, 128, 128, 500000.0f, VK_ROPE_NEOX, false, 100, 0},
        {3, 2, 96, 64, 10000.0f, VK_ROPE_INTERLEAVED, false, 0, 40},
        {4, 5, 80, 48, 10000.0f, VK_ROPE_NEOX, false, 17, 30},
        {9, 8, 128, 128, 500000.0f, VK_ROPE_INTERLEAVED, true, 0, 200},
        {6, 3, 64, 32, 500000.0f, VK_ROPE_NEOX, true, 50, 0},
        {33, 3, 6, 6, 10000.0f, VK_ROPE_INTERLEAVED, false, 1, 60},
        {2, 32, 128, 128, 10000.0f, VK_ROPE_INTERLEAVED, false, 4000, 1000},
        {3, 4, 64, 64, 1000000.0f, VK_ROPE_NEOX, false, 30000, 3000},
        {1, 6, 100, 0, 10000.0f, VK_ROPE_NEOX, false, 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(dev, &rng, &cases[i], 0, 0, 0, false);
        run_case(dev, &rng, &cases[i], a1, a3, a1, i % 3 == 0);
    }
    run_case(dev, &rng, &cases[5], 4, 8, 12, true);   /* unaligned (4-byte) offsets */
    test_op_errors(dev, 4096, argument_errors);
    test_device_close(&td);
    return test_finish("op_rope");
}

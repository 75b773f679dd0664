/* vkl_op_softmax against ref_softmax (double) on seeded random rows: widths below, at and past the workgroup
 * size, scales that make rows peaked and flat, causal masking with offsets 0, mid-row and past the row
 * (nothing masked), views at aligned and unaligned offsets, in place (out == x). Masked columns must be
 * exactly 0, unmasked ones sum to 1. Outputs are poisoned (NaN) first; words outside the output keep
 * their poison. Tolerance: relative L2 < 1e-5 per case (f32 exp and sums). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"
#include "util.h"

typedef struct sm_case {
    uint32_t n_rows, n_cols;
    float scale;
    bool causal;
    uint32_t offset;
} sm_case;

static void run_case(vkr_device *dev, test_rng *rng, const sm_case *c, size_t x_off, size_t o_off, bool in_place)
{
    const size_t n = (size_t)c->n_rows * c->n_cols;
    float *x = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal(rng) * 4.0f;
    ref_softmax(x, ref, c->n_rows, c->n_cols, c->scale, c->causal, c->offset);

    vkr_buffer *xb = opt_buffer(dev, x_off + n * 4 + 64);
    vkr_buffer *ob = in_place ? xb : opt_buffer(dev, o_off + n * 4 + 64);
    if (in_place)
        o_off = x_off;
    vkr_graph *g = NULL;
    if (xb && ob && opt_upload(dev, xb, x_off, x, n * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_softmax(g, vk_view_of(xb, x_off), vk_view_of(ob, o_off), c->n_rows, c->n_cols, c->scale,
                                     c->causal, c->offset);
        if (test_op_run(g, st, "op_softmax") && opt_download(dev, ob, o_off, got, n * 4)) {
            double e = rel_l2(got, ref, n);
            if (getenv("VKLLM_TEST_VERBOSE"))
                fprintf(stderr, "softmax %ux%u: rel L2 %.3g\n", c->n_rows, c->n_cols, e);
            CHECK(e < 1e-5,
                  "softmax %ux%u scale %g causal %d offset %u offs %zu/%zu%s: rel L2 %.3g (first non-finite %ld)",
                  c->n_rows, c->n_cols, (double)c->scale, c->causal, c->offset, x_off, o_off,
                  in_place ? " in place" : "", e, first_nonfinite(got, n));
            if (e >= 1e-5)
                opt_report_mismatches("out", got, ref, n, 1e-7, 1e-4);
            size_t masked_bad = 0, sum_bad = 0;
            for (uint32_t r = 0; r < c->n_rows; r++) {
                double sum = 0;
                for (uint32_t col = 0; col < c->n_cols; col++) {
                    float v = got[(size_t)r * c->n_cols + col];
                    if (c->causal && (uint64_t)col > (uint64_t)c->offset + r)
                        masked_bad += v != 0.0f;
                    else
                        sum += v;
                }
                sum_bad += !(fabs(sum - 1.0) < 1e-5);
            }
            CHECK(masked_bad == 0, "softmax: %zu masked columns are not 0", masked_bad);
            CHECK(sum_bad == 0, "softmax: %zu rows do not sum to 1", sum_bad);
            size_t outside = opt_count_outside(dev, ob, o_off, n * 4);
            CHECK(outside == 0, "softmax: %zu words written outside the output", outside);
        }
    } else {
        CHECK(false, "softmax: setup failed: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    if (ob != xb)
        vkr_buffer_destroy(dev, ob);
    vkr_buffer_destroy(dev, xb);
    free(x);
    free(ref);
    free(got);
}

static void run_all(vkr_device *dev, test_rng *rng)
{
    const size_t a1 = opt_aligned(dev, 1), a2 = opt_aligned(dev, 2);
    static const sm_case cases[] = {
        {1, 1, 1.0f, false, 0},      {3, 17, 1.0f, false, 0},     {5, 100, 0.125f, true, 0},
        {4, 1000, 0.5f, true, 500},  {2, 4099, 2.0f, true, 4090}, {7, 64, 1.0f, true, 0},
        {6, 255, 0.01f, false, 0},   {3, 257, 3.0f, true, 1000},  {64, 64, 0.125f, true, 0},
        {1, 8192, 1.0f, false, 0},   {9, 33, -1.0f, true, 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(dev, rng, &cases[i], 0, 0, false);
        run_case(dev, rng, &cases[i], a1, a2, false);
    }
    run_case(dev, rng, &cases[3], 12, 4, false);   /* unaligned (4-byte) offsets */
    run_case(dev, rng, &cases[4], a1, 0, true);
    run_case(dev, rng, &cases[1], 8, 0, true);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 4096 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_view v = vk_view_of(b, 0);
    CHECK(vkl_op_softmax(g, v, v, 1, 0, 1.0f, false, 0) == VKLLM_ERR_INVALID_ARGUMENT, "0 columns");
    CHECK(vkl_op_softmax(g, v, v, 2, 1000, 1.0f, false, 0) == VKLLM_ERR_INVALID_ARGUMENT, "past the buffer's end");
    CHECK(vkl_op_softmax(g, v, v, 1, 10, INFINITY, false, 0) == VKLLM_ERR_INVALID_ARGUMENT, "infinite scale");
    CHECK(vkl_op_softmax(g, vk_view_of(b, 2), v, 1, 10, 1.0f, false, 0) == VKLLM_ERR_INVALID_ARGUMENT,
          "offset not a multiple of 4");
    CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
}

int main(void)
{
    return test_reduction_op_main("op_softmax", run_all, argument_errors);
}

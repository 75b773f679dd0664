/* vkl_op_rmsnorm against ref_rmsnorm (double sums) on seeded random rows: sizes below, at and past the
 * workgroup size, rows whose mean square is comparable to eps, views at aligned and unaligned (4-byte)
 * offsets, in place (out == x); and vkl_op_rmsnorm_add (out += the same), out holding random values first. Outputs are poisoned (NaN) first and words outside the output range must
 * keep the poison. Tolerance: relative L2 < 1e-5 per case (f32 arithmetic, one reduction). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"
#include "util.h"

static void run_case(vkr_device *dev, test_rng *rng, uint32_t n_rows, uint32_t dim, float eps, size_t x_off,
                     size_t o_off, size_t w_off, bool in_place, bool add)
{
    const size_t n = (size_t)n_rows * dim;
    float *x = malloc(n * 4), *w = malloc((size_t)dim * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
    float *out0 = malloc(n * 4);
    rng_fill(rng, out0, n, -3.0f, 3.0f);
    for (uint32_t r = 0; r < n_rows; r++) {
        float s = r % 3 == 2 ? 1e-3f : rng_uniform(rng, 0.1f, 10.0f);   /* some rows near eps */
        for (uint32_t i = 0; i < dim; i++)
            x[(size_t)r * dim + i] = rng_normal(rng) * s;
    }
    rng_fill(rng, w, dim, -2.0f, 2.0f);
    ref_rmsnorm(x, w, ref, n_rows, dim, eps);
    /* rmsnorm_add's error is measured against the size of what it adds, |norm| + |out0| per value, not against
     * the sum, which cancels to near zero when the two are opposite (a 1x1 case failed on that alone) */
    double scale2 = 0;
    for (size_t i = 0; add && i < n; i++) {
        double m = fabs((double)ref[i]) + fabs((double)out0[i]);
        scale2 += m * m;
        ref[i] = (float)((double)ref[i] + out0[i]);
    }

    vkr_buffer *xb = opt_buffer(dev, x_off + n * 4 + 64);
    vkr_buffer *wb = opt_buffer(dev, w_off + (size_t)dim * 4 + 16);
    vkr_buffer *ob = in_place ? xb : opt_buffer(dev, o_off + n * 4 + 64);
    if (in_place)
        o_off = x_off;
    vkr_graph *g = NULL;
    if (xb && wb && ob && opt_upload(dev, xb, x_off, x, n * 4) && opt_upload(dev, wb, w_off, w, (size_t)dim * 4) &&
        (!add || opt_upload(dev, ob, o_off, out0, n * 4)) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vk_tensor wt = opt_f32_tensor(wb, w_off, dim);
        vk_view xv = vk_view_of(xb, x_off), ov = vk_view_of(ob, o_off);
        vkllm_status st = add ? vkl_op_rmsnorm_add(g, xv, &wt, ov, n_rows, dim, eps)
                              : vkl_op_rmsnorm(g, xv, &wt, ov, n_rows, dim, eps);
        if (test_op_run(g, st, add ? "op_rmsnorm_add" : "op_rmsnorm") && opt_download(dev, ob, o_off, got, n * 4)) {
            double e = rel_l2(got, ref, n);
            if (add && isfinite(e)) {   /* the same L2 of the difference, over the operands' size */
                double d2 = 0;
                for (size_t i = 0; i < n; i++)
                    d2 += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
                e = sqrt(d2) / sqrt(scale2 > 1e-30 ? scale2 : 1e-30);
            }
            CHECK(e < 1e-5, "rmsnorm%s %ux%u eps %g offs %zu/%zu%s: rel L2 %.3g (first non-finite %ld)",
                  add ? "_add" : "", n_rows, dim, (double)eps, x_off, o_off, in_place ? " in place" : "", e,
                  first_nonfinite(got, n));
            if (e >= 1e-5)
                opt_report_mismatches("out", got, ref, n, 1e-6, 1e-4);
            size_t outside = opt_count_outside(dev, ob, o_off, n * 4);
            CHECK(outside == 0, "rmsnorm %ux%u: %zu words written outside the output", n_rows, dim, outside);
        }
    } else {
        CHECK(false, "rmsnorm %ux%u: setup failed: %s", n_rows, dim, vkr_last_error());
    }
    vkr_graph_destroy(g);
    if (ob != xb)
        vkr_buffer_destroy(dev, ob);
    vkr_buffer_destroy(dev, xb);
    vkr_buffer_destroy(dev, wb);
    free(x);
    free(w);
    free(ref);
    free(got);
    free(out0);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 4096 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_tensor w = opt_f32_tensor(b, 0, 64);
    vk_view v = vk_view_of(b, 0);
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 1, 0, 1e-5f) == VKLLM_ERR_INVALID_ARGUMENT, "dim 0 must be rejected");
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 1, 128, 1e-5f) == VKLLM_ERR_INVALID_ARGUMENT, "weight of 64 for dim 128");
    CHECK(vkl_op_rmsnorm(g, v, NULL, v, 1, 64, 1e-5f) == VKLLM_ERR_INVALID_ARGUMENT, "NULL weight");
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 100, 64, 1e-5f) == VKLLM_ERR_INVALID_ARGUMENT, "x past the buffer's end");
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 1, 64, NAN) == VKLLM_ERR_INVALID_ARGUMENT, "NaN eps");
    w.type = GGML_TYPE_F16;
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 1, 64, 1e-5f) == VKLLM_ERR_UNSUPPORTED, "f16 weight");
    CHECK(strlen(vkr_last_error()) > 0, "no message stored");
    CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
    w.type = GGML_TYPE_F32;
    CHECK(vkl_op_rmsnorm(g, v, &w, v, 0, 64, 1e-5f) == VKLLM_OK && vkr_graph_size(g) == 0, "0 rows is a no-op");
}

static void run_all(vkr_device *dev, test_rng *rng)
{
    const size_t a1 = opt_aligned(dev, 1), a2 = opt_aligned(dev, 2);
    static const struct { uint32_t rows, dim; } shapes[] = {
        {1, 1}, {3, 7}, {5, 64}, {2, 255}, {4, 256}, {3, 257}, {4, 1000}, {1, 4096}, {7, 4097}, {33, 2048},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        float eps = s % 2 ? 1e-5f : 1e-6f;
        run_case(dev, rng, shapes[s].rows, shapes[s].dim, eps, 0, 0, 0, false, false);
        run_case(dev, rng, shapes[s].rows, shapes[s].dim, eps, a1, a2, a1, false, false);
        run_case(dev, rng, shapes[s].rows, shapes[s].dim, eps, a2, a1, 0, false, true);
    }
    /* Unaligned (4-byte) offsets, and in place. */
    run_case(dev, rng, 3, 100, 1e-5f, 12, 20, 4, false, false);
    run_case(dev, rng, 6, 513, 1e-5f, a1, 0, 0, true, false);
    run_case(dev, rng, 2, 77, 1e-5f, 8, 0, 0, true, false);
    run_case(dev, rng, 3, 100, 1e-5f, 12, 20, 4, false, true);   /* rmsnorm_add at unaligned offsets */
}

int main(void)
{
    return test_reduction_op_main("op_rmsnorm", run_all, argument_errors);
}

/* vkl_op_silu_mul, vkl_op_gelu_mul and vkl_op_add against ref_silu_mul / ref_gelu_mul / ref_add, and vkl_op_scale and
 * vkl_op_softcap against x * a and a * tanh(x / a), on seeded random data: lengths 1, around the
 * workgroup size and large, inputs spanning large |x| (exp overflow in silu), views at aligned and
 * unaligned offsets, and out aliasing an input. Outputs are poisoned (NaN) first; words outside the
 * output keep their poison.
 * Tolerances: add is one correctly rounded f32 operation, so it must match the reference exactly;
 * silu_mul, gelu_mul, softcap: relative L2 < 1e-5 (f32 exp/tanh and division) or, for outputs all near 0,
 * no element off by more than 1e-6; and no non-finite value;
 * scale is one f32 multiplication: exact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"
#include "util.h"

enum { OP_SILU_MUL, OP_GELU_MUL, OP_ADD };

/* alias: 0 = separate output, 1 = out is a, 2 = out is b. */
static void run_case(vkr_device *dev, test_rng *rng, int op, uint32_t n, size_t a_off, size_t b_off, size_t o_off,
                     int alias)
{
    const char *name = op == OP_ADD ? "add" : op == OP_GELU_MUL ? "gelu_mul" : "silu_mul";
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4),
          *got = malloc((size_t)n * 4);
    for (uint32_t i = 0; i < n; i++) {
        a[i] = rng_normal(rng) * (i % 7 == 0 ? 30.0f : 3.0f);
        b[i] = rng_normal(rng) * 2.0f;
    }
    if (op == OP_ADD)
        ref_add(a, b, ref, n);
    else if (op == OP_GELU_MUL)
        ref_gelu_mul(a, b, ref, n);
    else
        ref_silu_mul(a, b, ref, n);

    vkr_buffer *ab = opt_buffer(dev, a_off + (size_t)n * 4 + 64);
    vkr_buffer *bb = opt_buffer(dev, b_off + (size_t)n * 4 + 64);
    vkr_buffer *ob = alias == 1 ? ab : alias == 2 ? bb : opt_buffer(dev, o_off + (size_t)n * 4 + 64);
    if (alias)
        o_off = alias == 1 ? a_off : b_off;
    vkr_graph *g = NULL;
    if (ab && bb && ob && opt_upload(dev, ab, a_off, a, (size_t)n * 4) &&
        opt_upload(dev, bb, b_off, b, (size_t)n * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vk_view av = vk_view_of(ab, a_off), bv = vk_view_of(bb, b_off), ov = vk_view_of(ob, o_off);
        vkllm_status st = op == OP_ADD        ? vkl_op_add(g, av, bv, ov, n)
                          : op == OP_GELU_MUL ? vkl_op_gelu_mul(g, av, bv, ov, n)
                                              : vkl_op_silu_mul(g, av, bv, ov, n);
        if (test_op_run(g, st, name) &&
            opt_download(dev, ob, o_off, got, (size_t)n * 4)) {
            double e = rel_l2(got, ref, n);
            long nf = first_nonfinite(got, n);
            if (op == OP_ADD) {
                size_t bad = opt_report_mismatches("out", got, ref, n, 0.0, 0.0);
                CHECK(bad == 0, "add n=%u offs %zu/%zu/%zu alias %d: %zu elements differ", n, a_off, b_off, o_off,
                      alias, bad);
            } else {
                /* Outputs near 0 (GELU's 1 + tanh is exactly 0 in f32 below about -9, where the double reference
                 * keeps ~1e-30) make a short output's relative error meaningless: an absolute 1e-6 also passes. */
                double worst_abs = 0;
                for (uint32_t i = 0; i < n; i++)
                    worst_abs = fmax(worst_abs, fabs((double)got[i] - ref[i]));
                bool close = e < 1e-5 || worst_abs <= 1e-6;
                CHECK(close && nf < 0, "%s n=%u offs %zu/%zu/%zu alias %d: rel L2 %.3g, max abs %.3g, first non-finite "
                      "%ld", name, n, a_off, b_off, o_off, alias, e, worst_abs, nf);
                if (!close)
                    opt_report_mismatches("out", got, ref, n, 1e-6, 1e-4);
            }
            if (getenv("VKLLM_TEST_VERBOSE"))
                fprintf(stderr, "%s n=%u: rel L2 %.3g\n", name, n, e);
            size_t outside = opt_count_outside(dev, ob, o_off, (size_t)n * 4);
            CHECK(outside == 0, "%s: %zu words written outside the output", name, outside);
        }
    } else {
        CHECK(false, "%s: setup failed: %s", name, vkr_last_error());
    }
    vkr_graph_destroy(g);
    if (ob != ab && ob != bb)
        vkr_buffer_destroy(dev, ob);
    vkr_buffer_destroy(dev, ab);
    vkr_buffer_destroy(dev, bb);
    free(a);
    free(b);
    free(ref);
    free(got);
}

/* vkl_op_scale (softcap false) or vkl_op_softcap in place on n floats at offset off, against x * a / a tanh(x / a). */
static void run_in_place(vkr_device *dev, test_rng *rng, bool softcap, uint32_t n, size_t off, float a)
{
    const char *name = softcap ? "softcap" : "scale";
    float *x = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    for (uint32_t i = 0; i < n; i++) {
        x[i] = rng_normal(rng) * (i % 7 == 0 ? 1000.0f : 10.0f);   /* some far past the cap */
        ref[i] = softcap ? (float)(a * tanh((double)x[i] / a)) : x[i] * a;
    }
    vkr_buffer *b = opt_buffer(dev, off + (size_t)n * 4 + 64);
    vkr_graph *g = NULL;
    if (b && opt_upload(dev, b, off, x, (size_t)n * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vk_view v = vk_view_of(b, off);
        vkllm_status st = softcap ? vkl_op_softcap(g, v, n, a) : vkl_op_scale(g, v, n, a);
        if (test_op_run(g, st, name) && opt_download(dev, b, off, got, (size_t)n * 4)) {
            double e = rel_l2(got, ref, n);
            size_t bad = softcap ? 0 : opt_report_mismatches("out", got, ref, n, 0.0, 0.0);
            CHECK(softcap ? e < 1e-5 && first_nonfinite(got, n) < 0 : bad == 0, "%s n=%u off %zu a %g: rel L2 %.3g, "
                  "%zu differ", name, n, off, (double)a, e, bad);
            size_t outside = opt_count_outside(dev, b, off, (size_t)n * 4);
            CHECK(outside == 0, "%s: %zu words written outside x", name, outside);
        }
    } else {
        CHECK(false, "%s: setup failed: %s", name, vkr_last_error());
    }
    vkr_graph_destroy(g);
    if (b)
        vkr_buffer_destroy(dev, b);
    free(x);
    free(ref);
    free(got);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 1024 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_view v = vk_view_of(b, 0);
    CHECK(vkl_op_add(g, v, v, v, 257) == VKLLM_ERR_INVALID_ARGUMENT, "add past the end of the buffer");
    CHECK(vkl_op_silu_mul(g, v, vk_view_of(b, 6), v, 4) == VKLLM_ERR_INVALID_ARGUMENT, "misaligned view");
    CHECK(vkl_op_add(g, v, v, vk_view_of(NULL, 0), 4) == VKLLM_ERR_INVALID_ARGUMENT, "NULL buffer");
    CHECK(vkl_op_add(g, v, v, v, 0) == VKLLM_OK, "n = 0 is a no-op");
    CHECK(vkl_op_softcap(g, v, 4, 0.0f) == VKLLM_ERR_INVALID_ARGUMENT, "softcap 0");
    CHECK(vkl_op_scale(g, v, 4, NAN) == VKLLM_ERR_INVALID_ARGUMENT, "NaN scale");
    CHECK(vkl_op_scale(g, v, 257, 2.0f) == VKLLM_ERR_INVALID_ARGUMENT, "scale past the end of the buffer");
    CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    vkr_device *dev = td.dev;
    const size_t a1 = opt_aligned(dev, 1), a2 = opt_aligned(dev, 2), a3 = opt_aligned(dev, 3);
    static const uint32_t sizes[] = {1, 3, 255, 256, 257, 1000, 4096, 100003, 1u << 20};
    for (int op = OP_SILU_MUL; op <= OP_ADD; op++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            run_case(dev, &rng, op, sizes[i], 0, 0, 0, 0);
            run_case(dev, &rng, op, sizes[i], a1, a3, a2, 0);
        }
        run_case(dev, &rng, op, 777, 4, 8, 12, 0);   /* unaligned (4-byte) offsets */
        run_case(dev, &rng, op, 5000, a1, 0, 0, 1);  /* out = a */
        run_case(dev, &rng, op, 333, 0, a2, 0, 2);   /* out = b */
    }
    for (int softcap = 0; softcap < 2; softcap++) {
        run_in_place(dev, &rng, softcap, 1, 0, 30.0f);
        run_in_place(dev, &rng, softcap, 100003, a1, softcap ? 30.0f : 48.0f);   /* Gemma's final cap; sqrt(2304) */
        run_in_place(dev, &rng, softcap, 777, 4, softcap ? 1.5f : 0.25f);
    }
    test_op_errors(dev, 1024, argument_errors);
    test_device_close(&td);
    return test_finish("op_elementwise");
}

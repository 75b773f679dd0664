/* vkl_op_to_f16 (shaders/convert_f16.comp: the cooperative-matrix matmul's f16 copy of x) against the CPU's
 * f32 -> f16 conversion, bit for bit: every half must be the round-to-nearest-even result (vkl_fp32_to_fp16)
 * or, where the device rounds toward zero (Vulkan allows either), the half below it in magnitude. Inputs: seeded
 * random values over the f16 range and beyond (overflow: infinity, or the largest half toward zero), around
 * the subnormal range, exact halves and halfway points, signed zeros; K across multiples of 8 (the padding
 * halves up to K rounded to 8 must be +0), x at aligned and unaligned (4-byte) offsets. The output buffer is
 * poisoned first (a word never written keeps a NaN half) and words outside the output must keep the poison. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"
#include "host/ops/ops.h"
#include "ref/ref_ops.h"
#include "util.h"

/* A random input: mostly normal-range values, some extreme ones. */
static float random_input(test_rng *rng)
{
    const float sign = rng_u32(rng) & 1 ? -1.0f : 1.0f;
    switch (rng_u32(rng) % 8) {
    case 0: return sign * rng_uniform(rng, 0.0f, 1e-4f);           /* subnormal halves and below */
    case 1: return sign * rng_uniform(rng, 6e4f, 7e4f);            /* around the largest half, overflow */
    case 2: return sign * vkl_fp16_to_fp32((uint16_t)(rng_u32(rng) % 0x7c00));   /* exactly a half */
    case 3: {                                                       /* halfway between two halves */
        const uint16_t h = (uint16_t)(rng_u32(rng) % 0x7bff);
        return sign * (float)(((double)vkl_fp16_to_fp32(h) + vkl_fp16_to_fp32((uint16_t)(h + 1))) / 2);
    }
    case 4: return sign * 0.0f;
    default: return rng_normal(rng) * 10.0f;
    }
}

/* Whether half `got` is an allowed conversion of x. */
static bool allowed(float x, uint16_t got)
{
    const uint16_t rte = vkl_fp32_to_fp16(x);
    if (got == rte)
        return true;
    /* toward zero: one step below the nearest one in magnitude, where that one is above |x| */
    return (rte & 0x7fff) != 0 && got == rte - 1 && fabsf(vkl_fp16_to_fp32(rte)) > fabsf(x);
}

static void run_case(vkr_device *dev, test_rng *rng, uint32_t K, uint32_t n_cols, size_t x_off, size_t o_off)
{
    const uint32_t K16 = (K + 7) / 8 * 8;
    const size_t nx = (size_t)K * n_cols, nh = (size_t)K16 * n_cols;
    float *x = malloc(nx * 4);
    uint16_t *got = malloc(nh * 2);
    for (size_t i = 0; i < nx; i++)
        x[i] = random_input(rng);
    vkr_buffer *xb = opt_buffer(dev, x_off + nx * 4 + 64);
    vkr_buffer *ob = opt_buffer(dev, o_off + nh * 2 + 64);
    vkr_graph *g = NULL;
    if (x && got && xb && ob && opt_upload(dev, xb, x_off, x, nx * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_to_f16(g, vk_view_of(xb, x_off), vk_view_of(ob, o_off), K, n_cols);
        if (test_op_run(g, st, "op_to_f16") && opt_download(dev, ob, o_off, got, nh * 2)) {
            size_t bad = 0;
            for (uint32_t c = 0; c < n_cols; c++)
                for (uint32_t k = 0; k < K16; k++) {
                    const uint16_t h = got[(size_t)c * K16 + k];
                    const float v = k < K ? x[(size_t)c * K + k] : 0.0f;
                    if (!(k < K ? allowed(v, h) : h == 0) && bad++ < 5)
                        fprintf(stderr, "  col %u k %u: x %.9g gave half 0x%04x, nearest 0x%04x\n", c, k, (double)v, h,
                                vkl_fp32_to_fp16(v));
                }
            CHECK(bad == 0, "to_f16 K=%u n=%u offs %zu/%zu: %zu wrong halves", K, n_cols, x_off, o_off, bad);
            const size_t outside = opt_count_outside(dev, ob, o_off, nh * 2);
            CHECK(outside == 0, "to_f16 K=%u n=%u: %zu words written outside the output", K, n_cols, outside);
        }
    } else {
        CHECK(false, "to_f16 K=%u n=%u: setup failed: %s", K, n_cols, vkr_last_error());
    }
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, xb);
    vkr_buffer_destroy(dev, ob);
    free(x);
    free(got);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 4096 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_view v = vk_view_of(b, 0);
    CHECK(vkl_op_to_f16(g, v, vk_view_of(b, 8), 8, 1) == VKLLM_ERR_INVALID_ARGUMENT, "out offset 8");
    CHECK(vkl_op_to_f16(g, vk_view_of(b, 2), v, 8, 1) == VKLLM_ERR_INVALID_ARGUMENT, "x offset 2");
    CHECK(vkl_op_to_f16(g, v, v, 1024, 2) == VKLLM_ERR_INVALID_ARGUMENT, "x past the buffer's end");
    CHECK(vkl_op_to_f16(g, v, vk_view_of(b, 4096), 8, 1) == VKLLM_ERR_INVALID_ARGUMENT, "out past the buffer's end");
    CHECK(vkl_op_to_f16(NULL, v, v, 8, 1) == VKLLM_ERR_INVALID_ARGUMENT, "no graph");
    CHECK(strlen(vkr_last_error()) > 0, "no message stored");
    CHECK(vkl_op_to_f16(g, v, v, 0, 1) == VKLLM_OK && vkl_op_to_f16(g, v, v, 8, 0) == VKLLM_OK, "empty is a no-op");
    CHECK(vkr_graph_size(g) == 0, "failed or empty calls added %u dispatches", vkr_graph_size(g));
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    const size_t a1 = opt_aligned(td.dev, 1);
    static const uint32_t shapes[][2] = {{1, 1}, {7, 3}, {8, 2}, {9, 5}, {64, 4}, {100, 7}, {513, 3}, {4096, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        run_case(td.dev, &rng, shapes[s][0], shapes[s][1], 0, 0);
        run_case(td.dev, &rng, shapes[s][0], shapes[s][1], 12, a1 + 16);
    }
    /* More columns than the device takes per dispatch (column chunks). */
    vkr_features saved = td.dev->info.features;
    td.dev->info.features.max_workgroup_count[1] = 3;
    run_case(td.dev, &rng, 40, 10, 4, 16);
    td.dev->info.features = saved;
    test_op_errors(td.dev, 4096, argument_errors);
    test_device_close(&td);
    return test_finish("op_to_f16");
}

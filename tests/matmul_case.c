#include "matmul_case.h"

#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "ref/ref_matmul.h"
#include "ref/ref_ops.h"

#define GUARD_FLOATS 64u

double matmul_case_run(vkr_device *dev, test_rng *rng, const matmul_case *c)
{
    const uint32_t K = c->K, M = c->M, N = c->N, Mt = c->view_r0 ? c->view_r0 + M + 2 : M;   /* rows uploaded */
    float *wf = malloc((size_t)K * Mt * sizeof(float));
    void *wq = malloc(ref_tensor_bytes(c->type, K, Mt));
    float *wd = malloc((size_t)K * Mt * sizeof(float));
    float *x = malloc((size_t)K * N * sizeof(float));
    float *yref = malloc((size_t)M * N * sizeof(float));
    const uint64_t align = dev->info.features.min_storage_buffer_offset_alignment ?
                           dev->info.features.min_storage_buffer_offset_alignment : 4;
    const uint64_t xoff = align + c->x_extra, yoff = 2 * align;   /* views at non-zero offsets */
    const uint64_t ybytes = yoff + (uint64_t)M * N * 4 + GUARD_FLOATS * 4;
    float *yall = malloc(ybytes);
    vk_tensor t;
    memset(&t, 0, sizeof t);
    vkr_buffer *xb = NULL, *yb = NULL;
    vkr_graph *g = NULL;
    const int fails_before = test_failures;
    double err = -1;

    CHECK(wf && wq && wd && x && yref && yall, "%s: out of host memory", c->label);
    if (!(wf && wq && wd && x && yref && yall))
        goto done;
    rng_fill(rng, wf, (size_t)K * Mt, -1.0f, 1.0f);
    rng_fill(rng, x, (size_t)K * N, -1.0f, 1.0f);
    ref_encode(c->type, wf, K, Mt, wq);
    ref_decode(c->type, wq, K, Mt, wd);
    ref_matmul_f32(wd + (size_t)c->view_r0 * K, x, yref, K, M, N);

    vkllm_status st = vkl_tensor_upload(dev, c->type, K, Mt, wq, &t);
    CHECK(st == VKLLM_OK, "%s: vk_tensor_upload: %s", c->label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;
    vk_tensor view = t;   /* rows [view_r0, view_r0 + M), as host/ops/tensor.c makes for stacked weights */
    view.ne[1] = M;
    view.qs_offset += (VkDeviceSize)c->view_r0 * t.row_qs_bytes;
    if (t.row_d_bytes)
        view.d_offset += (VkDeviceSize)c->view_r0 * t.row_d_bytes;
    st = vkr_buffer_create(dev, xoff + (uint64_t)K * N * 4, VKR_MEMORY_DEVICE, &xb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, ybytes, VKR_MEMORY_DEVICE, &yb);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, xb, xoff, x, (size_t)K * N * 4);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, yb, 0, ybytes, OPT_POISON);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    if (st == VKLLM_OK)
        st = vkl_op_matmul(g, &view, vk_view_of(xb, xoff), vk_view_of(yb, yoff), N);
    CHECK(st == VKLLM_OK, "%s: op_matmul: %s", c->label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;
    /* Every dispatch is the expected kernel, but for the cooperative-matrix kernel's conversion of x to f16 */
    const bool coopmat = c->kernel && !strcmp(c->kernel, "matmul_coopmat");
    uint32_t n_kernel = 0;
    for (uint32_t i = 0; c->kernel && i < vkr_graph_size(g); i++) {
        const char *name = vkr_graph_dispatch_name(g, i);
        n_kernel += name && !strcmp(name, c->kernel);
        CHECK(name && (!strcmp(name, c->kernel) || (coopmat && !strcmp(name, "convert_f16"))),
              "%s: dispatch %u is '%s', not %s", c->label, i, name ? name : "(null)", c->kernel);
    }
    CHECK(!c->kernel || n_kernel > 0, "%s: no %s dispatch", c->label, c->kernel);
    st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, yb, 0, yall, ybytes);
    CHECK(st == VKLLM_OK, "%s: %s", c->label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;

    const float *y = yall + yoff / 4;
    long bad = first_nonfinite(y, (size_t)M * N);
    CHECK(bad < 0, "%s: y[%ld] (col %ld, row %ld) is not finite (unwritten?)", c->label, bad,
          bad < 0 ? 0 : bad / (long)M, bad < 0 ? 0 : bad % (long)M);
    err = rel_l2(y, yref, (size_t)M * N);
    CHECK(err < c->tol, "%s: relative L2 error %.3g over %.0e", c->label, err, c->tol);
    const size_t outside = opt_count_outside_host(yall, ybytes, yoff, (size_t)M * N * 4);
    CHECK(outside == 0, "%s: %zu words around y written (before its view or past its end)", c->label, outside);
done:
    if (test_failures != fails_before)
        fprintf(stderr, "  (%s: K=%u M=%u N=%u view_r0=%u x_extra=%u, err %.3g)\n", c->label, K, M, N, c->view_r0,
                c->x_extra, err);
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, xb, yb);
    vkl_tensor_free(dev, &t);
    free(wf);
    free(wq);
    free(wd);
    free(x);
    free(yref);
    free(yall);
    return err;
}

vkllm_status matmul_case_poisoned_run(vkr_device *dev, vkr_graph *g, const vk_tensor *t, vkr_buffer *xb,
                                      vkr_buffer *yb, uint64_t y_bytes, uint32_t n, float *y)
{
    vkr_graph_clear(g);
    vkllm_status st = vkr_buffer_fill(dev, yb, 0, y_bytes, OPT_POISON);
    if (st == VKLLM_OK)
        st = vkl_op_matmul(g, t, vk_view_of(xb, 0), vk_view_of(yb, 0), n);
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, yb, 0, y, (size_t)t->ne[1] * n * 4);
    return st;
}

uint32_t matmul_case_other_types(uint32_t *out, uint32_t max)
{
    uint32_t n = 0;
    for (size_t i = 0; i < vkl_ggml_type_count() && n < max; i++) {
        const ggml_type_info *t = vkl_ggml_type_at(i);
        if (t->kernels && t->id != GGML_TYPE_F32 && t->id != GGML_TYPE_F16 && t->id != GGML_TYPE_Q8_0 &&
            t->id != GGML_TYPE_Q4_0)
            out[n++] = t->id;
    }
    return n;
}

uint64_t matmul_case_small_range(uint32_t type)
{
    uint32_t grid_bytes;
    vkl_ggml_type_grid(type, &grid_bytes);
    return grid_bytes + 512 > 4096 + 512 ? grid_bytes + 512 : 4096 + 512;
}

void matmul_case_print_worst(const double worst[MATMUL_CASE_TYPE_IDS], double tolerance)
{
    fprintf(stderr, "worst relative L2 error:");
    for (uint32_t t = 0; t < MATMUL_CASE_TYPE_IDS; t++)
        if (worst[t] >= 0)
            fprintf(stderr, " %s %.2g", vkl_ggml_type_name(t) ? vkl_ggml_type_name(t) : "?", worst[t]);
    if (tolerance > 0)
        fprintf(stderr, " (tolerance %.0e)", tolerance);
    fprintf(stderr, "\n");
}

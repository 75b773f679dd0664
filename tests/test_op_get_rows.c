/* vkl_op_get_rows against the CPU reference (tests/ref/ref_matmul.c): rows of tables of every type
 * gathered by ids from a uint32 buffer and dequantized to f32. Outputs are poisoned with NaN before each
 * run, with a guard region after the output that must stay poisoned. Ids include repeats, the first and
 * the last row, and one id past the end (its output row must be zeros). Tables that are split into
 * several dispatches: with lowered device limits (binding range, alignment, workgroup counts) and with a
 * real F32 table over 128 MiB.
 *
 * Tolerance: every element of F32, BF16, Q8_0 and Q4_0 tables must equal the reference exactly (dequantization
 * is exact in f32); F16 elements may differ by up to 6.2e-5 (a device may flush f16 subnormals to zero); the
 * other types by up to 1e-6 of the largest magnitude (the kernel's a * q + b may round differently from the
 * reference's order of operations; a wrong quant or scale is off by a whole quantization step). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "matmul_case.h"
#include "ref/ref_matmul.h"
#include "util.h"

#define POISON 0x7fc00000u
#define GUARD_FLOATS 64u

static const uint32_t TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

static uint64_t dev_align(const vkr_device *dev)
{
    uint64_t a = dev->info.features.min_storage_buffer_offset_alignment;
    return a ? a : 4;
}

/* Gathers n rows of the (already uploaded) table t with GGUF data `table` and checks them. */
static void check_gather(vkr_device *dev, test_rng *rng, const vk_tensor *t, const void *table, uint32_t n,
                         bool invalid_id, bool expect_split, const char *label)
{
    const uint32_t K = (uint32_t)t->ne[0], M = (uint32_t)t->ne[1];
    const uint64_t align = dev_align(dev);
    const uint64_t ioff = align, ooff = 3 * align;
    const uint64_t obytes = ooff + (uint64_t)n * K * 4 + GUARD_FLOATS * 4;
    uint32_t *ids = malloc((size_t)n * 4);
    float *ref = malloc((size_t)n * K * 4);
    float *oall = malloc(obytes);
    vkr_buffer *ib = NULL, *ob = NULL;
    vkr_graph *g = NULL;
    CHECK(ids && ref && oall, "%s: out of host memory", label);
    if (!(ids && ref && oall))
        goto done;
    for (uint32_t i = 0; i < n; i++)
        ids[i] = rng_u32(rng) % M;
    ids[0] = M - 1;
    if (n > 1)
        ids[n - 1] = 0;
    if (n > 3)
        ids[2] = ids[1];
    if (invalid_id && n > 2)
        ids[n / 2] = M + (rng_u32(rng) % 1000);
    ref_get_rows(t->type, table, K, M, ids, n, ref);

    vkllm_status st = vkr_buffer_create(dev, ioff + (uint64_t)n * 4, VKR_MEMORY_DEVICE, &ib);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, obytes, VKR_MEMORY_DEVICE, &ob);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, ib, ioff, ids, (size_t)n * 4);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, ob, 0, obytes, POISON);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    if (st == VKLLM_OK)
        st = vkl_op_get_rows(g, t, vk_view_of(ib, ioff), vk_view_of(ob, ooff), n);
    if (st == VKLLM_OK && expect_split)
        CHECK(vkr_graph_size(g) > 1, "%s: expected a split dispatch, got %u", label, vkr_graph_size(g));
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, ob, 0, oall, obytes);
    CHECK(st == VKLLM_OK, "%s: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;

    const float *out = oall + ooff / 4;
    long bad = first_nonfinite(out, (size_t)n * K);
    CHECK(bad < 0, "%s: out[%ld] (id index %ld) is not finite (unwritten?)", label, bad, bad < 0 ? 0 : bad / (long)K);
    /* f16 subnormals (|x| < 6.1e-5) may be flushed by the device's unpackHalf2x16; types whose value is a * q + b
     * with a product a * q that is not exact in f32 may round differently from the reference's order. */
    float amax = 0.0f;
    for (uint64_t i = 0; i < (uint64_t)n * K; i++)
        amax = fmaxf(amax, fabsf(ref[i]));
    const bool exact = t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_BF16 || t->type == GGML_TYPE_Q8_0 ||
                       t->type == GGML_TYPE_Q4_0;
    const float tol = t->type == GGML_TYPE_F16 ? 6.2e-5f : exact ? 0.0f : 1e-6f * amax;
    for (uint64_t i = 0; i < (uint64_t)n * K; i++) {
        if (!(fabsf(out[i] - ref[i]) <= tol)) {
            CHECK(0, "%s: out[%llu] = %g, expected %g (id %u, element %llu)", label, (unsigned long long)i,
                  out[i], ref[i], ids[i / K], (unsigned long long)(i % K));
            break;
        }
    }
    uint32_t word;
    for (uint64_t i = 0; i < ooff / 4; i++) {
        memcpy(&word, &oall[i], 4);
        if (word != POISON) {
            CHECK(0, "%s: written before the output view (float %llu)", label, (unsigned long long)i);
            break;
        }
    }
    for (uint64_t i = 0; i < GUARD_FLOATS; i++) {
        memcpy(&word, &out[(uint64_t)n * K + i], 4);
        if (word != POISON) {
            CHECK(0, "%s: written past the output (float %llu)", label, (unsigned long long)i);
            break;
        }
    }
done:
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, ib, ob);
    free(ids);
    free(ref);
    free(oall);
}

static void run_case(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, uint32_t n,
                     const char *what)
{
    char label[128];
    snprintf(label, sizeof label, "%s%s K=%u M=%u n=%u", what, vkl_ggml_type_name(type), K, M, n);
    float *wf = malloc((size_t)K * M * 4);
    void *wq = malloc(ref_tensor_bytes(type, K, M));
    vk_tensor t;
    memset(&t, 0, sizeof t);
    CHECK(wf && wq, "%s: out of host memory", label);
    if (wf && wq) {
        rng_fill(rng, wf, (size_t)K * M, -2.0f, 2.0f);
        ref_encode(type, wf, K, M, wq);
        vkllm_status st = vkl_tensor_upload(dev, type, K, M, wq, &t);
        CHECK(st == VKLLM_OK, "%s: upload: %s", label, vkr_last_error());
        if (st == VKLLM_OK)
            check_gather(dev, rng, &t, wq, n, true, false, label);
    }
    vkl_tensor_free(dev, &t);
    free(wf);
    free(wq);
}

static void shapes(vkr_device *dev, test_rng *rng)
{
    static const uint32_t all[][3] = {{32, 1, 1}, {96, 7, 5}, {4096, 100, 17}, {64, 257, 64}, {32, 3, 130}};
    static const uint32_t flt[][3] = {{1, 9, 4}, {7, 100, 3}, {33, 5, 9}, {100, 40, 33}};
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            run_case(dev, rng, TYPES[ti], all[i][0], all[i][1], all[i][2], "");
        if (TYPES[ti] == GGML_TYPE_F32 || TYPES[ti] == GGML_TYPE_F16)
            for (size_t i = 0; i < sizeof flt / sizeof flt[0]; i++)
                run_case(dev, rng, TYPES[ti], flt[i][0], flt[i][1], flt[i][2], "");
    }
}

/* The other types of the type table (tests/matmul_case.c): rows of 1, 2 and 8 blocks of 256, with split dispatches
 * (a small binding range, few workgroups); BF16 also with a row length that is not a multiple of 8. */
static void other_types(vkr_device *dev, test_rng *rng)
{
    uint32_t types[32];
    const uint32_t nt = matmul_case_other_types(types, 32);
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    for (uint32_t ti = 0; ti < nt; ti++) {
        run_case(dev, rng, types[ti], 256, 7, 5, "");
        run_case(dev, rng, types[ti], 512, 100, 17, "");
        run_case(dev, rng, types[ti], 2048, 3, 2, "");
        if (vkl_ggml_block_size(types[ti]) == 1)
            run_case(dev, rng, types[ti], 7, 100, 3, "");
        ft->max_storage_buffer_range = matmul_case_small_range(types[ti]);
        if (ft->min_storage_buffer_offset_alignment < 256)
            ft->min_storage_buffer_offset_alignment = 256;
        run_case(dev, rng, types[ti], 256, 300, 20, "small-range ");
        *ft = saved;
        ft->max_workgroup_count[0] = 2;
        ft->max_workgroup_count[1] = 3;
        run_case(dev, rng, types[ti], vkl_ggml_block_size(types[ti]) == 1 ? 64 : 256, 20, 10, "few-groups ");
        *ft = saved;
    }
}

static void lowered_limits(vkr_device *dev, test_rng *rng)
{
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    ft->max_storage_buffer_range = 4096 + 512;
    if (ft->min_storage_buffer_offset_alignment < 256)
        ft->min_storage_buffer_offset_alignment = 256;
    static const uint32_t c1[][4] = {
        {0, 100, 300, 20}, {0, 7, 1000, 9}, {0, 64, 50, 40},
        {1, 100, 300, 20}, {1, 33, 301, 9}, {1, 96, 200, 30},
        {2, 96, 300, 20}, {2, 32, 1000, 9}, {2, 64, 301, 60},
        {3, 96, 300, 20}, {3, 32, 3001, 9}, {3, 96, 130, 50},
    };
    for (size_t i = 0; i < sizeof c1 / sizeof c1[0]; i++)
        run_case(dev, rng, TYPES[c1[i][0]], c1[i][1], c1[i][2], c1[i][3], "small-range ");
    *ft = saved;

    ft->max_workgroup_count[0] = 2;
    ft->max_workgroup_count[1] = 3;
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++)
        run_case(dev, rng, TYPES[ti], 64, 20, 10, "few-groups ");
    *ft = saved;
}

/* An F32 table over 128 MiB (over maxStorageBufferRange on lavapipe): several dispatches by table rows. */
static void big_table(vkr_device *dev, test_rng *rng)
{
    const uint32_t K = 4096, M = 8500;
    float *w = malloc((size_t)K * M * 4);
    vk_tensor t;
    memset(&t, 0, sizeof t);
    CHECK(w != NULL, "big table: out of host memory");
    if (!w)
        return;
    rng_fill(rng, w, (size_t)K * M, -1.0f, 1.0f);
    vkllm_status st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, M, w, &t);
    CHECK(st == VKLLM_OK, "big table: upload: %s", vkr_last_error());
    if (st == VKLLM_OK)
        check_gather(dev, rng, &t, w, 12, false, (uint64_t)K * M * 4 > dev->info.features.max_storage_buffer_range,
                     "big table f32 K=4096 M=8500");
    vkl_tensor_free(dev, &t);
    free(w);
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;

    shapes(td.dev, &rng);
    lowered_limits(td.dev, &rng);
    other_types(td.dev, &rng);
    big_table(td.dev, &rng);

    /* n == 0 adds nothing; a table that is not on the device is refused. */
    vkr_graph *g = NULL;
    if (vkr_graph_create(td.dev, &g) == VKLLM_OK) {
        vk_tensor none;
        memset(&none, 0, sizeof none);
        vkllm_status st = vkl_op_get_rows(g, &none, vk_view_of(NULL, 0), vk_view_of(NULL, 0), 1);
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && *vkr_last_error(), "missing table: status %d", st);
        CHECK(vkr_graph_size(g) == 0, "a refused op added dispatches");
        vkr_graph_destroy(g);
    }

    test_device_close(&td);
    if (test_failures)
        fprintf(stderr, "seed was %llu\n", (unsigned long long)test_seed());
    return test_finish("op_get_rows");
}

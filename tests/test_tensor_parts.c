/* Tensors larger than maxMemoryAllocationSize: uploaded as row parts, each in its own buffer, and still
 * multiplied (vkl_op_matmul, vkl_op_matmul_fused) and gathered (vkl_op_get_rows) as one tensor. The device's limit is
 * lowered to a few KiB so small tensors take the path (lowering a limit is always safe).
 *
 * Checked against the CPU references of tests/ref/ref_matmul.c over the same GGUF blocks, with both kernel
 * families (the device reported as a CPU and as a GPU), 1, 3 and 20 columns, stacked sources that straddle
 * parts, ids in every part and invalid ids (zero rows). Outputs are poisoned first. Tolerances as in
 * test_op_matmul: F32 1e-5, the others 1e-3 relative L2; get_rows is exact (as floats) for F32, F16, BF16, Q8_0 and
 * Q4_0, within 1e-6 of the largest magnitude for the other types (as in test_op_get_rows). Every type of the
 * type table runs (the others than F32/F16/Q8_0/Q4_0 on one shape). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "matmul_case.h"
#include "ref/ref_matmul.h"
#include "ref/ref_ops.h"
#include "util.h"

#define LIMIT (24u * 1024u)   /* bytes: the lowered maxMemoryAllocationSize */

static const uint32_t TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

static double tolerance(uint32_t type) { return type == GGML_TYPE_F32 ? 1e-5 : 1e-3; }

/* Runs ops over a weight of M rows uploaded from two stacked sources (M1 + (M - M1) rows). */
static void run_case(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, const char *family)
{
    char label[128];
    snprintf(label, sizeof label, "%s %s K=%u M=%u", family, vkl_ggml_type_name(type), K, M);
    enum { N_MAX = 20, N_IDS = 9 };
    const uint32_t M1 = M / 3;
    const size_t row_bytes = ref_tensor_bytes(type, K, 1);
    float *wf = malloc((size_t)K * M * 4), *wd = malloc((size_t)K * M * 4), *x = malloc((size_t)K * N_MAX * 4);
    float *yref = malloc((size_t)M * N_MAX * 4), *y = malloc((size_t)M * N_MAX * 4);
    float *rows_ref = malloc((size_t)K * N_IDS * 4), *rows = malloc((size_t)K * N_IDS * 4);
    uint8_t *wq = malloc(ref_tensor_bytes(type, K, M));
    vk_tensor t;
    memset(&t, 0, sizeof t);
    vkr_buffer *xb = NULL, *yb = NULL, *ib = NULL, *ob = NULL;
    vkr_graph *g = NULL;
    CHECK(wf && wd && x && yref && y && rows_ref && rows && wq, "%s: out of host memory", label);
    if (!(wf && wd && x && yref && y && rows_ref && rows && wq))
        goto done;
    rng_fill(rng, wf, (size_t)K * M, -1.0f, 1.0f);
    rng_fill(rng, x, (size_t)K * N_MAX, -1.0f, 1.0f);
    ref_encode(type, wf, K, M, wq);
    ref_decode(type, wq, K, M, wd);

    const uint64_t ne1[2] = {M1, M - M1};
    const void *data[2] = {wq, wq + (size_t)M1 * row_bytes};
    /* Only the upload sees the lowered limit (the test's own buffers are larger). */
    const uint64_t real_limit = dev->info.features.max_memory_allocation_size;
    dev->info.features.max_memory_allocation_size = LIMIT;
    vkllm_status st = vkl_tensor_upload_stacked(dev, type, K, 2, ne1, data, &t);
    dev->info.features.max_memory_allocation_size = real_limit;
    CHECK(st == VKLLM_OK, "%s: upload: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;
    CHECK(t.n_parts > 1 && t.buffer == NULL, "%s: expected parts, got %u", label, t.n_parts);
    uint64_t rows_total = 0;
    for (uint32_t p = 0; p < t.n_parts; p++) {
        CHECK(t.parts[p].buffer && t.parts[p].buffer->size <= LIMIT, "%s: part %u over the limit", label, p);
        CHECK(p + 1 == t.n_parts || t.parts[p].ne[1] == t.part_rows, "%s: part %u has %llu rows", label, p,
              (unsigned long long)t.parts[p].ne[1]);
        rows_total += t.parts[p].ne[1];
    }
    CHECK(rows_total == M, "%s: parts hold %llu rows", label, (unsigned long long)rows_total);
    vk_tensor view;
    CHECK(!vkl_tensor_rows(&t, 0, 1, &view), "%s: a view of a tensor in parts", label);

    st = vkr_buffer_create(dev, (uint64_t)K * N_MAX * 4, VKR_MEMORY_DEVICE, &xb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (uint64_t)M * N_MAX * 4, VKR_MEMORY_DEVICE, &yb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, N_IDS * 4, VKR_MEMORY_DEVICE, &ib);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (uint64_t)K * N_IDS * 4, VKR_MEMORY_DEVICE, &ob);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, xb, 0, x, (size_t)K * N_MAX * 4);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    CHECK(st == VKLLM_OK, "%s: setup: %s", label, vkr_last_error());
    if (st != VKLLM_OK)
        goto done;

    static const uint32_t ncols[] = {1, 3, 20};
    for (size_t i = 0; i < sizeof ncols / sizeof ncols[0]; i++) {
        const uint32_t N = ncols[i];
        ref_matmul_f32(wd, x, yref, K, M, N);
        st = matmul_case_poisoned_run(dev, g, &t, xb, yb, (uint64_t)M * N_MAX * 4, N, y);
        CHECK(st == VKLLM_OK, "%s N=%u: %s", label, N, vkr_last_error());
        if (st != VKLLM_OK)
            continue;
        long bad = first_nonfinite(y, (size_t)M * N);
        CHECK(bad < 0, "%s N=%u: y[%ld] not finite (unwritten?)", label, N, bad);
        double err = rel_l2(y, yref, (size_t)M * N);
        CHECK(err < tolerance(type), "%s N=%u: relative L2 error %.3g", label, N, err);
    }

    /* A fused matvec (norm) goes part by part; GLU needs the whole weight and is not fused. */
    {
        float gv[512];
        for (uint32_t k = 0; k < K; k++)
            gv[k] = 1.0f;   /* the fused maths itself is test_op_matmul_fused's; here: rows land in place */
        vk_tensor norm;
        bool fused = false;
        st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, 1, gv, &norm);
        if (st == VKLLM_OK) {
            vkr_graph_clear(g);
            vk_matmul_fusion glu = {.glu = true};
            st = vkl_op_matmul_fused(g, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), 1, &glu, &fused);
            CHECK(st == VKLLM_OK && !fused && vkr_graph_size(g) == 0, "%s: GLU over parts: status %d, fused %d",
                  label, st, fused);
            vk_matmul_fusion f = {.norm = &norm, .eps = 0.0f};
            st = vkl_op_matmul_fused(g, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), 1, &f, &fused);
            if (st == VKLLM_OK && fused) {
                /* rmsnorm(x) with g = 1 and eps = 0 is x / rms(x): the product scales by the same factor */
                double ss = 0;
                for (uint32_t k = 0; k < K; k++)
                    ss += (double)x[k] * x[k];
                const double s = 1.0 / sqrt(ss / K);
                ref_matmul_f32(wd, x, yref, K, M, 1);
                for (uint32_t r = 0; r < M; r++)
                    yref[r] = (float)(yref[r] * s);
                st = vkr_buffer_fill(dev, yb, 0, (uint64_t)M * N_MAX * 4, OPT_POISON);
                if (st == VKLLM_OK)
                    st = vkr_graph_run(g);
                if (st == VKLLM_OK)
                    st = vkr_buffer_download(dev, yb, 0, y, (size_t)M * 4);
                CHECK(st == VKLLM_OK, "%s fused: %s", label, vkr_last_error());
                double err = st == VKLLM_OK ? rel_l2(y, yref, M) : 1.0;
                CHECK(err < tolerance(type), "%s fused norm: relative L2 error %.3g", label, err);
            } else {
                CHECK(st == VKLLM_OK, "%s fused: %s", label, vkr_last_error());
            }
            vkl_tensor_free(dev, &norm);
        }
    }

    /* get_rows: ids in the first, a middle and the last part, an invalid id, a repeat. */
    uint32_t ids[N_IDS] = {0, M - 1, (uint32_t)t.part_rows, (uint32_t)t.part_rows - 1, M / 2, M, 7, M - 1, M1};
    ref_get_rows(type, wq, K, M, ids, N_IDS, rows_ref);
    vkr_graph_clear(g);
    st = vkr_buffer_upload(dev, ib, 0, ids, sizeof ids);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, ob, 0, (uint64_t)K * N_IDS * 4, OPT_POISON);
    if (st == VKLLM_OK)
        st = vkl_op_get_rows(g, &t, vk_view_of(ib, 0), vk_view_of(ob, 0), N_IDS);
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, ob, 0, rows, (size_t)K * N_IDS * 4);
    CHECK(st == VKLLM_OK, "%s get_rows: %s", label, vkr_last_error());
    /* Equal as floats for the types whose dequantization is exact in f32 (a zero's sign may differ: q * d - 8d),
     * else within 1e-6 of the largest magnitude (as in test_op_get_rows). */
    float amax = 0.0f;
    for (size_t i = 0; i < (size_t)K * N_IDS; i++)
        amax = fmaxf(amax, fabsf(rows_ref[i]));
    const bool exact = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
                       type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0;
    const float tol = exact ? 0.0f : 1e-6f * amax;
    for (size_t i = 0; st == VKLLM_OK && i < (size_t)K * N_IDS; i++) {
        if (!(fabsf(rows[i] - rows_ref[i]) <= tol)) {
            CHECK(0, "%s get_rows: row %zu (id %u) element %zu is %g, expected %g", label, i / K, ids[i / K], i % K,
                  rows[i], rows_ref[i]);
            break;
        }
    }
done:
    if (g)
        vkr_graph_destroy(g);
    vkr_buffer *bufs[] = {xb, yb, ib, ob};
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            vkr_buffer_destroy(dev, bufs[i]);
    vkl_tensor_free(dev, &t);
    CHECK(t.parts == NULL && t.n_parts == 0, "vk_tensor_free left parts");
    free(wf), free(wd), free(x), free(yref), free(y), free(rows_ref), free(rows), free(wq);
}

/* The device layout of every type (host/ops/tensor.h): blocks of random bytes, two sources stacked, uploaded and
 * read back. Each block's quants range must sit in the quants region and the rest of the block, in order and
 * zero-padded, in the meta region, block r * blocks_per_row + b at the same index in both; decoding the
 * regions (ref_decode_device) must give what dequantizing the GGUF rows gives. Q4_0/Q8_0's layout is checked
 * byte by byte against its old definition too (32/16 quant bytes, then one f16 per block). */
static void test_layout(vkr_device *dev, test_rng *rng)
{
    enum { ROWS = 3 };
    for (size_t ti = 0; ti < vkl_ggml_type_count(); ti++) {
        const ggml_type_info *ty = vkl_ggml_type_at(ti);
        const uint32_t K = ty->block > 1 ? 2 * ty->block : 64;   /* two blocks per row */
        const uint64_t bpr = K / ty->block, row_bytes = vkl_ggml_row_bytes(ty->id, K);
        const uint64_t n_blocks = bpr * ROWS;
        uint8_t *src = malloc((size_t)(row_bytes * ROWS));
        uint8_t *got = NULL;
        float *want = malloc((size_t)K * ROWS * 4), *dec = malloc((size_t)K * ROWS * 4);
        vk_tensor t;
        memset(&t, 0, sizeof t);
        if (!src || !want || !dec) {
            CHECK(false, "out of host memory");
            goto next;
        }
        for (uint64_t i = 0; i < row_bytes * ROWS; i++)
            src[i] = (uint8_t)rng_u32(rng);
        if (ty->id == GGML_TYPE_F32) /* keep the floats finite so that decoded values compare with == */
            for (uint64_t i = 3; i < row_bytes * ROWS; i += 4)
                src[i] &= 0x3f;
        const uint64_t ne1[2] = {1, ROWS - 1};
        const void *data[2] = {src, src + row_bytes};
        vkllm_status st = vkl_tensor_upload_stacked(dev, ty->id, K, 2, ne1, data, &t);
        CHECK(st == VKLLM_OK, "layout %s: upload: %s", ty->name, vkr_last_error());
        if (st != VKLLM_OK)
            goto next;
        CHECK(t.row_qs_bytes == bpr * ty->qs_bytes && t.row_d_bytes == bpr * ty->meta_bytes,
              "layout %s: row bytes %llu %llu", ty->name, (unsigned long long)t.row_qs_bytes,
              (unsigned long long)t.row_d_bytes);
        const uint64_t qs_total = n_blocks * ty->qs_bytes, meta_total = n_blocks * ty->meta_bytes;
        const uint64_t size = (ty->meta_bytes ? t.d_offset + meta_total : qs_total);
        got = malloc((size_t)size);
        if (!got || vkr_buffer_download(dev, t.buffer, 0, got, (size_t)size) != VKLLM_OK) {
            CHECK(false, "layout %s: read back: %s", ty->name, vkr_last_error());
            goto next;
        }
        const uint8_t *qs = got + t.qs_offset, *meta = got + t.d_offset;
        int bad = 0;
        for (uint64_t b = 0; b < n_blocks && bad < 3; b++) {
            const uint8_t *blk = src + b * ty->block_bytes;   /* rows are whole blocks: block b of the stack */
            const uint8_t *m = meta + b * ty->meta_bytes;
            const uint32_t tail = ty->block_bytes - ty->qs_start - ty->qs_bytes;
            bool ok = memcmp(qs + b * ty->qs_bytes, blk + ty->qs_start, ty->qs_bytes) == 0;
            if (ty->meta_bytes) {
                ok = ok && memcmp(m, blk, ty->qs_start) == 0 &&
                     memcmp(m + ty->qs_start, blk + ty->qs_start + ty->qs_bytes, tail) == 0;
                for (uint32_t i = ty->qs_start + tail; i < ty->meta_bytes; i++)
                    ok = ok && m[i] == 0;
            }
            if (ty->id == GGML_TYPE_Q4_0 || ty->id == GGML_TYPE_Q8_0) /* the layout the existing kernels read */
                ok = ok && m[0] == blk[0] && m[1] == blk[1] && ty->meta_bytes == 2 &&
                     memcmp(qs + b * (ty->block_bytes - 2), blk + 2, ty->block_bytes - 2) == 0;
            if (!ok && bad++ < 3)
                CHECK(false, "layout %s: block %llu is not where it belongs", ty->name, (unsigned long long)b);
        }
        ref_decode(ty->id, src, K, ROWS, want);
        ref_decode_device(ty->id, qs, meta, ty->meta_bytes ? n_blocks : (uint64_t)K * ROWS, dec);
        CHECK(memcmp(want, dec, (size_t)K * ROWS * 4) == 0, "layout %s: ref_decode_device differs from the GGUF rows",
              ty->name);
    next:
        vkl_tensor_free(dev, &t);
        free(src), free(got), free(want), free(dec);
    }
}

int main(void)
{
    test_device td;
    test_rng rng;
    if (!test_op_begin(&td, &rng))
        return 1;
    vkr_device *dev = td.dev;
    const vkr_features saved = dev->info.features;
    const VkPhysicalDeviceType real_type = dev->info.type;
    test_layout(dev, &rng);

    static const struct { const char *name; VkPhysicalDeviceType type; } families[] = {
        {"cpu-kernels", VK_PHYSICAL_DEVICE_TYPE_CPU},
        {"gpu-kernels", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU},
    };
    for (size_t f = 0; f < 2; f++) {
        dev->info.type = families[f].type;
        for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
            run_case(dev, &rng, TYPES[i], 64, 700, families[f].name);   /* parts of 256 rows where they fit */
            run_case(dev, &rng, TYPES[i], 256, 200, families[f].name);  /* parts of fewer rows */
        }
        uint32_t others[32];
        const uint32_t n_others = matmul_case_other_types(others, 32);
        for (uint32_t i = 0; i < n_others; i++)
            run_case(dev, &rng, others[i], 256, 600, families[f].name);   /* K-quant rows are short: more rows */
    }
    dev->info.type = real_type;

    /* One row over the limit: refused with a message. */
    dev->info.features.max_memory_allocation_size = LIMIT;
    float row[8192];
    memset(row, 0, sizeof row);
    vk_tensor t;
    vkllm_status st = vkl_tensor_upload(dev, GGML_TYPE_F32, 8192, 1, row, &t);
    CHECK(st == VKLLM_ERR_UNSUPPORTED && *vkr_last_error(), "a row over the limit: status %d", st);

    dev->info.features = saved;
    test_device_close(&td);
    if (test_failures)
        fprintf(stderr, "seed was %llu\n", (unsigned long long)test_seed());
    return test_finish("tensor_parts");
}

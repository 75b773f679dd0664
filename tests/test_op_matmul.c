/* vkl_op_matmul against a CPU reference that dequantizes the very same GGUF blocks (tests/ref/ref_matmul.c).
 *
 * Every type of the type table, every kernel family (F32, F16, Q8_0 and Q4_0 on many shapes, the others on
 * fewer: other_types): the CPU-device kernel (shaders/mm_cpu.comp, every
 * column count; its 64-bit-load variant for one Q8_0/Q4_0 column) and the GPU kernels (matvec for
 * n_cols == 1, multi-column matvec for n_cols <= 8, tiled matmul beyond). The family follows the device type,
 * so each suite runs three times: with the device reported as a CPU, as a CPU without shaderInt64 (the CPU
 * kernel's 32-bit variant only) and as a GPU (every kernel family is valid on any device). Shapes that are not
 * multiples of the workgroup/tile sizes, x/y at non-zero offsets, weights that are row-range views of a
 * larger tensor (as stacked Wq;Wk;Wv are) at 16-byte aligned and at unaligned offsets. Outputs are
 * poisoned with NaN before each run and a guard region around y must stay poisoned, so unwritten or stray
 * elements fail. Splitting is exercised twice: with a real weight larger than 128 MiB (over lavapipe's
 * maxStorageBufferRange), and with artificially lowered device limits (binding range, offset alignment,
 * workgroup counts) on small shapes.
 *
 * Tolerances (relative L2 error against the double-precision reference):
 *   F32: 1e-5;  every other type: 1e-3 (the reference dequantizes the same blocks, so only f32 rounding
 *   of the GPU's accumulation differs). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "ref/ref_matmul.h"
#include "ref/ref_ops.h"
#include "matmul_case.h"
#include "util.h"

static double worst_err[MATMUL_CASE_TYPE_IDS];   /* by type (-1: not run), printed at the end */

static double tolerance(uint32_t type) { return type == GGML_TYPE_F32 ? 1e-5 : 1e-3; }

/* One vkl_op_matmul on random data, checked (tests/matmul_case.c). With view_r0 > 0 the weight is a view of rows
 * [view_r0, view_r0 + M) of a larger uploaded tensor. x starts x_extra bytes (a multiple of 16) past the
 * device's offset alignment. Returns false on a failure (already counted). */
static bool run_case_at(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, uint32_t N,
                        uint32_t view_r0, uint32_t x_extra, const char *label)
{
    const int fails_before = test_failures;
    const matmul_case c = {.type = type, .K = K, .M = M, .N = N, .view_r0 = view_r0, .x_extra = x_extra,
                           .tol = tolerance(type), .label = label};
    const double err = matmul_case_run(dev, rng, &c);
    if (err > worst_err[type])
        worst_err[type] = err;
    return test_failures == fails_before;
}

static bool run_case_view(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, uint32_t N,
                          uint32_t view_r0, const char *label)
{
    return run_case_at(dev, rng, type, K, M, N, view_r0, 0, label);
}

static bool run_case(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, uint32_t N,
                     const char *label)
{
    return run_case_view(dev, rng, type, K, M, N, 0, label);
}

static const uint32_t TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

/* The kernel families: vkl_op_matmul picks them by device type (see host/ops/ops_matmul.c). The CPU kernel runs twice:
 * with the device's shaderInt64 (its 64-bit-load variant where that applies) and with int64 reported absent
 * (the 32-bit variant everywhere). */
typedef struct family {
    const char *name;
    VkPhysicalDeviceType type;
    bool no_int64;
} family;
static const family FAMILIES[] = {
    {"cpu-kernels", VK_PHYSICAL_DEVICE_TYPE_CPU, false},
    {"cpu-kernels-32bit", VK_PHYSICAL_DEVICE_TYPE_CPU, true},
    {"gpu-kernels", VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, false},
};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

static void shapes(vkr_device *dev, test_rng *rng, const family *fam)
{
    /* (K, M) pairs: K = 32/96/4096 for every type, K not a multiple of 4/8 for F32/F16. */
    static const uint32_t km_all[][2] = {{32, 1}, {96, 7}, {4096, 33}, {64, 100}, {32, 257}, {4096, 70}};
    static const uint32_t km_float[][2] = {{1, 5}, {7, 100}, {33, 9}, {100, 257}, {1000, 3}};
    /* 1: matvec; 2, 3, 5, 8: multi-column matvec / CPU tiles of exactly n columns; 9, 17, 64: tiles */
    static const uint32_t ncols[] = {1, 2, 3, 5, 8, 9, 17, 64};
    char label[96];
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        uint32_t type = TYPES[ti];
        for (size_t ni = 0; ni < sizeof ncols / sizeof ncols[0]; ni++) {
            uint32_t N = ncols[ni];
            for (size_t i = 0; i < sizeof km_all / sizeof km_all[0]; i++) {
                uint32_t K = km_all[i][0], M = km_all[i][1];
                if (N >= 9 && K == 4096 && M > 40)
                    continue;   /* keep lavapipe time down */
                snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u", fam->name, vkl_ggml_type_name(type), K, M, N);
                run_case(dev, rng, type, K, M, N, label);
            }
            if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16) {
                for (size_t i = 0; i < sizeof km_float / sizeof km_float[0]; i++) {
                    uint32_t K = km_float[i][0], M = km_float[i][1];
                    snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u", fam->name, vkl_ggml_type_name(type), K, M,
                             N);
                    run_case(dev, rng, type, K, M, N, label);
                }
            }
        }
    }
}

/* Weights that are row-range views of a larger tensor (stacked Wq;Wk;Wv, W_gate;W_up): the first row of the
 * view at 16-byte aligned quants/scales offsets (the stacking layout), and at offsets that are not (scales
 * offsets of 2 mod 4, F32/F16 rows not in whole 16-byte units). */
static void weight_views(vkr_device *dev, test_rng *rng, const family *fam)
{
    static const uint32_t cases[][4] = {
        /* type index, K, M, first row */
        {3, 2048, 40, 8}, {3, 2048, 37, 24}, {3, 96, 50, 1}, {3, 96, 50, 3}, {3, 32, 70, 5},
        {2, 2048, 40, 8}, {2, 96, 50, 1}, {2, 96, 50, 3},
        {1, 64, 30, 2}, {1, 100, 30, 1}, {1, 7, 30, 3},
        {0, 64, 30, 4}, {0, 100, 30, 1}, {0, 7, 30, 3},
    };
    static const uint32_t ncols[] = {1, 3, 8, 20};
    char label[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t ni = 0; ni < sizeof ncols / sizeof ncols[0]; ni++) {
            uint32_t type = TYPES[cases[i][0]];
            snprintf(label, sizeof label, "%s view %s K=%u M=%u rows from %u N=%u", fam->name,
                     vkl_ggml_type_name(type), cases[i][1], cases[i][2], cases[i][3], ncols[ni]);
            run_case_view(dev, rng, type, cases[i][1], cases[i][2], ncols[ni], cases[i][3], label);
        }
    }
}

/* The same kernels with the device's limits lowered, so small shapes take the splitting paths:
 * several row chunks (with offsets that are not multiples of the alignment), several column chunks,
 * and workgroup-count limits. Lowering limits is always safe for the real device. */
static void lowered_limits(vkr_device *dev, test_rng *rng, const family *fam)
{
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    char label[128];

    /* 1: tiny binding range, large alignment */
    ft->max_storage_buffer_range = 4096 + 512;
    if (ft->min_storage_buffer_offset_alignment < 256)
        ft->min_storage_buffer_offset_alignment = 256;
    static const uint32_t c1[][4] = {
        /* type index, K, M, N */
        {0, 100, 300, 1}, {0, 100, 300, 7}, {0, 7, 1000, 1}, {0, 96, 301, 40}, {0, 96, 30, 4},
        {1, 100, 300, 1}, {1, 104, 300, 1}, {1, 33, 301, 6}, {1, 96, 200, 70}, {1, 96, 301, 3},
        {2, 96, 300, 1}, {2, 64, 301, 9}, {2, 32, 1000, 1}, {2, 96, 130, 45}, {2, 64, 301, 5},
        {3, 96, 300, 1}, {3, 64, 301, 9}, {3, 32, 3001, 1}, {3, 96, 130, 45}, {3, 64, 301, 4},
        {3, 32, 3001, 8},
    };
    for (size_t i = 0; i < sizeof c1 / sizeof c1[0]; i++) {
        uint32_t type = TYPES[c1[i][0]];
        snprintf(label, sizeof label, "%s small-range %s K=%u M=%u N=%u", fam->name, vkl_ggml_type_name(type),
                 c1[i][1], c1[i][2], c1[i][3]);
        run_case(dev, rng, type, c1[i][1], c1[i][2], c1[i][3], label);
    }
    *ft = saved;

    /* 2: few workgroups per dispatch */
    ft->max_workgroup_count[0] = 3;
    ft->max_workgroup_count[1] = 2;
    static const uint32_t c2[][4] = {
        {0, 64, 100, 1}, {1, 40, 50, 1}, {2, 64, 33, 1}, {3, 96, 100, 1}, {3, 96, 300, 1},
        {0, 64, 300, 70}, {1, 40, 200, 65}, {2, 64, 200, 100}, {3, 96, 400, 70}, {3, 96, 1000, 5},
        {3, 64, 300, 30},
    };
    for (size_t i = 0; i < sizeof c2 / sizeof c2[0]; i++) {
        uint32_t type = TYPES[c2[i][0]];
        snprintf(label, sizeof label, "%s few-groups %s K=%u M=%u N=%u", fam->name, vkl_ggml_type_name(type),
                 c2[i][1], c2[i][2], c2[i][3]);
        run_case(dev, rng, type, c2[i][1], c2[i][2], c2[i][3], label);
    }
    *ft = saved;
}

/* The CPU kernel's 64-bit-load variants (one column, Q8_0/Q4_0, and tiles of several columns, Q4_0; K a multiple of
 * 128: cpu_i64_applies in host/ops/ops_matmul.c) at their edges: one and several groups of four blocks, row counts
 * that are not multiples of
 * a workgroup's rows, x bound with a residual of 32 bytes (taken) and of 16 (the 32-bit variant), and row chunks
 * bound at non-zero residuals that are multiples of 32 (quants) and 8 (scales) bytes, and a narrower workgroup.
 * With int64 reported absent the same cases check the 32-bit variant. */
static void cpu_int64_edges(vkr_device *dev, test_rng *rng, const family *fam)
{
    static const uint32_t km[][2] = {{128, 1}, {128, 9}, {384, 100}, {256, 257}, {2048, 3}, {8192, 70}};
    char label[128];
    for (uint32_t ti = 2; ti < 4; ti++) {
        const uint32_t type = TYPES[ti];
        for (size_t i = 0; i < sizeof km / sizeof km[0]; i++) {
            snprintf(label, sizeof label, "%s edges %s K=%u M=%u N=1", fam->name, vkl_ggml_type_name(type), km[i][0],
                     km[i][1]);
            run_case(dev, rng, type, km[i][0], km[i][1], 1, label);
        }
        /* Tiles of several columns (Q4_0: the 64-bit-load tiles; Q8_0: the 32-bit ones, MC_BLOCK): a tile of 2, of
         * 8 with 3 columns past N, and a full tile of 8 next to a tile of 1 column. */
        static const uint32_t ncols[] = {2, 5, 9};
        for (size_t ni = 0; ni < sizeof ncols / sizeof ncols[0]; ni++)
            for (size_t i = 0; i < 3; i++) {
                snprintf(label, sizeof label, "%s edges %s K=%u M=%u N=%u", fam->name, vkl_ggml_type_name(type),
                         km[i][0] * 2, km[i][1], ncols[ni]);
                run_case(dev, rng, type, km[i][0] * 2, km[i][1], ncols[ni], label);
            }
    }
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    if (ft->min_storage_buffer_offset_alignment < 128)
        ft->min_storage_buffer_offset_alignment = 128;
    for (uint32_t ti = 2; ti < 4; ti++) {
        const uint32_t type = TYPES[ti];
        for (uint32_t x_extra = 16; x_extra <= 32; x_extra += 16) {
            snprintf(label, sizeof label, "%s edges %s x at +%u K=256 M=40 N=1", fam->name, vkl_ggml_type_name(type),
                     x_extra);
            run_case_at(dev, rng, type, 256, 40, 1, 0, x_extra, label);
        }
        /* Row chunks of 64 rows of a view from row 3: quants (64-byte rows for Q4_0) and scales bound at
         * residuals of 64 and 24 bytes below 128-byte aligned binding offsets. */
        ft->max_storage_buffer_range = 4096 + 512;
        snprintf(label, sizeof label, "%s edges small-range %s K=128 M=1000 N=1", fam->name, vkl_ggml_type_name(type));
        run_case_view(dev, rng, type, 128, 1000, 1, 3, label);
        snprintf(label, sizeof label, "%s edges small-range %s K=128 M=1000 N=6", fam->name, vkl_ggml_type_name(type));
        run_case_view(dev, rng, type, 128, 1000, 6, 3, label);
        ft->max_storage_buffer_range = saved.max_storage_buffer_range;
    }
    *ft = saved;
    /* A workgroup of 4 (the subgroup of a 128-bit llvmpipe): x takes two rounds of loads. */
    if (ft->subgroup_size >= 4) {
        ft->subgroup_size = 4;
        for (uint32_t ti = 2; ti < 4; ti++) {
            snprintf(label, sizeof label, "%s edges wg-4 %s K=384 M=77 N=1", fam->name, vkl_ggml_type_name(TYPES[ti]));
            run_case(dev, rng, TYPES[ti], 384, 77, 1, label);
            snprintf(label, sizeof label, "%s edges wg-4 %s K=256 M=77 N=7", fam->name, vkl_ggml_type_name(TYPES[ti]));
            run_case(dev, rng, TYPES[ti], 256, 77, 7, label);
        }
        *ft = saved;
    }
}

/* The other types of the type table (BF16, Q4_1, Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS) on fewer shapes than
 * the four above (every type is its own set of pipelines, which lavapipe compiles slowly), all through the same
 * dequant.glsl interface: rows of 1 to 8 blocks of 256, row counts across workgroup edges, 1 to 17 columns (CPU
 * tiles of 1, 2, 4 and 8 columns; GPU matvec, multi-column matvec and tiled matmul), weight views at unaligned
 * rows, and weights split into row chunks (quants and meta regions bound at non-zero residuals). */
static void other_types(vkr_device *dev, test_rng *rng, const family *fam)
{
    static const uint32_t cases[][4] = {
        /* K, M, N, first row of a view (0: none) */
        {256, 1, 1, 0}, {512, 33, 1, 0}, {2048, 9, 1, 0}, {256, 70, 2, 0}, {512, 7, 3, 0},
        {256, 40, 8, 0}, {512, 33, 17, 0}, {256, 30, 5, 3}, {512, 20, 1, 1},
    };
    /* BF16 also with rows that are not whole 16-byte units (the GPU kernels' element-wise path) */
    static const uint32_t km_float[][3] = {{7, 30, 1}, {100, 9, 9}};
    uint32_t types[32];
    const uint32_t nt = matmul_case_other_types(types, 32);
    char label[128];
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    for (uint32_t ti = 0; ti < nt; ti++) {
        const uint32_t type = types[ti];
        const char *tn = vkl_ggml_type_name(type);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u view from %u", fam->name, tn, cases[i][0],
                     cases[i][1], cases[i][2], cases[i][3]);
            run_case_view(dev, rng, type, cases[i][0], cases[i][1], cases[i][2], cases[i][3], label);
        }
        if (vkl_ggml_block_size(type) == 1)
            for (size_t i = 0; i < sizeof km_float / sizeof km_float[0]; i++) {
                snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u", fam->name, tn, km_float[i][0], km_float[i][1],
                         km_float[i][2]);
                run_case(dev, rng, type, km_float[i][0], km_float[i][1], km_float[i][2], label);
            }
        ft->max_storage_buffer_range = matmul_case_small_range(type);
        if (ft->min_storage_buffer_offset_alignment < 256)
            ft->min_storage_buffer_offset_alignment = 256;
        snprintf(label, sizeof label, "%s small-range %s K=256 M=300 N=1 view from 1", fam->name, tn);
        run_case_view(dev, rng, type, 256, 300, 1, 1, label);
        snprintf(label, sizeof label, "%s small-range %s K=512 M=301 N=9", fam->name, tn);
        run_case(dev, rng, type, 512, 301, 9, label);
        *ft = saved;
    }
}

/* The GPU matvec reductions not taken by default on this device: the shared-memory fallback (as on a device
 * without subgroup arithmetic), and a larger workgroup (as chosen for a device with wide subgroups); for one
 * and for several columns. (The caller sets the device type to a GPU.) */
static void reduction_variants(vkr_device *dev, test_rng *rng)
{
    vkr_features saved = dev->info.features;
    static const struct { bool subgroups; uint32_t subgroup_size; } v[] = {{false, 0}, {false, 128}, {true, 128}};
    char label[96];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (v[i].subgroups && !saved.subgroup_arithmetic)
            continue;
        dev->info.features.subgroup_arithmetic = v[i].subgroups;
        if (v[i].subgroup_size)
            dev->info.features.subgroup_size = v[i].subgroup_size;
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            snprintf(label, sizeof label, "%s wg-for-%u %s", v[i].subgroups ? "subgroup" : "shared-memory",
                     dev->info.features.subgroup_size, vkl_ggml_type_name(TYPES[ti]));
            run_case(dev, rng, TYPES[ti], 4096, 37, 1, label);
            run_case(dev, rng, TYPES[ti], 96, 5, 1, label);
            run_case(dev, rng, TYPES[ti], 1024, 37, 4, label);
            run_case(dev, rng, TYPES[ti], 96, 5, 8, label);
        }
        dev->info.features = saved;
    }
}

/* Every tile of the tiled GPU matmul (VKLLM_MATMUL_TILE; by default the small shapes of these tests all get the
 * smallest one) for every weight type: rows and columns that are not multiples of any tile edge, more than 64
 * columns (the 128-column tile), F32/F16 rows that are not whole K steps. A tile name that is not valid falls
 * back to the default choice. The IQ grid types on two tiles only (128x128 and 64x32): the tile loader does not
 * depend on the type, their dequantization is what differs, and each tile is a pipeline lavapipe builds slowly.
 * (The caller sets the device type to a GPU.) */
static void matmul_tiles(vkr_device *dev, test_rng *rng)
{
    static const char *tiles[] = {"128x128", "128x64", "64x64", "64x32", "96x64"};
    char label[96];
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        setenv("VKLLM_MATMUL_TILE", tiles[i], 1);
        for (size_t ti = 0; ti < vkl_ggml_type_count(); ti++) {
            const ggml_type_info *ty = vkl_ggml_type_at(ti);
            uint32_t grid_bytes;
            if (!ty->kernels || (i > 0 && i != 3 && vkl_ggml_type_grid(ty->id, &grid_bytes)))
                continue;
            const uint32_t K = ty->block == 1 ? (ty->id == GGML_TYPE_F16 ? 33 : 100) : 2 * ty->block;
            snprintf(label, sizeof label, "tile %s %s K=%u M=130 N=70", tiles[i], ty->name, K);
            run_case(dev, rng, ty->id, K, 130, 70, label);
        }
    }
    unsetenv("VKLLM_MATMUL_TILE");
}

/* A real F32 weight over 128 MiB (and over maxStorageBufferRange where that is 128 MiB): matvec and a
 * small matmul. The reference uses the floats directly (F32 encoding is the identity). */
static void big_weight(vkr_device *dev, test_rng *rng)
{
    const uint32_t K = 4096, M = 8500, N = 3;
    const uint64_t wbytes = (uint64_t)K * M * 4;
    fprintf(stderr, "big weight: %llu bytes, maxStorageBufferRange %llu\n", (unsigned long long)wbytes,
            (unsigned long long)dev->info.features.max_storage_buffer_range);
    float *w = malloc(wbytes);
    float *x = malloc((size_t)K * N * 4);
    float *yref = malloc((size_t)M * N * 4);
    float *y = malloc((size_t)M * N * 4);
    vk_tensor t;
    memset(&t, 0, sizeof t);
    vkr_buffer *xb = NULL, *yb = NULL;
    vkr_graph *g = NULL;
    CHECK(w && x && yref && y, "big weight: out of host memory");
    if (!(w && x && yref && y))
        goto done;
    rng_fill(rng, w, (size_t)K * M, -1.0f, 1.0f);
    rng_fill(rng, x, (size_t)K * N, -1.0f, 1.0f);
    ref_matmul_f32(w, x, yref, K, M, N);

    vkllm_status st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, M, w, &t);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (uint64_t)K * N * 4, VKR_MEMORY_DEVICE, &xb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (uint64_t)M * N * 4, VKR_MEMORY_DEVICE, &yb);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, xb, 0, x, (size_t)K * N * 4);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    CHECK(st == VKLLM_OK, "big weight: setup: %s", vkr_last_error());
    if (st != VKLLM_OK)
        goto done;
    for (uint32_t n = 1; n <= N; n += N - 1) {   /* n = 1 (matvec), then n = N (matmul) */
        st = matmul_case_poisoned_run(dev, g, &t, xb, yb, (uint64_t)M * N * 4, n, y);
        CHECK(st == VKLLM_OK, "big weight n=%u: %s", n, vkr_last_error());
        if (st != VKLLM_OK)
            break;
        if (wbytes > dev->info.features.max_storage_buffer_range)
            CHECK(vkr_graph_size(g) > 1, "big weight n=%u: expected a split dispatch, got %u", n, vkr_graph_size(g));
        long bad = first_nonfinite(y, (size_t)M * n);
        CHECK(bad < 0, "big weight n=%u: y[%ld] not finite", n, bad);
        double err = rel_l2(y, yref, (size_t)M * n);
        CHECK(err < 1e-5, "big weight n=%u: relative L2 error %.3g", n, err);
    }
done:
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, xb, yb);
    vkl_tensor_free(dev, &t);
    free(w);
    free(x);
    free(yref);
    free(y);
}

/* Bad arguments are refused with a status and a message, and nothing is added to the graph. */
static void bad_arguments(vkr_device *dev)
{
    float wf[64 * 4] = {0};
    vk_tensor t;
    vkllm_status st = vkl_tensor_upload(dev, GGML_TYPE_TQ1_0 /* not in the type table */, 256, 2, wf, &t);
    CHECK(st == VKLLM_ERR_UNSUPPORTED, "upload of an unsupported type: status %d", st);
    CHECK(t.buffer == NULL, "failed upload left a buffer");
    st = vkl_tensor_upload(dev, GGML_TYPE_Q8_0, 48, 2, wf, &t);
    CHECK(st != VKLLM_OK && *vkr_last_error(), "upload of a Q8_0 row of 48: status %d", st);
    st = vkl_tensor_upload(dev, GGML_TYPE_F32, 64, 4, wf, &t);
    CHECK(st == VKLLM_OK, "upload: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    vkr_buffer *b = NULL;
    vkr_graph *g = NULL;
    if (vkr_buffer_create(dev, 64 * 4, VKR_MEMORY_DEVICE, &b) == VKLLM_OK && vkr_graph_create(dev, &g) == VKLLM_OK) {
        st = vkl_op_matmul(g, &t, vk_view_of(b, 0), vk_view_of(b, 0), 2);   /* x needs 512 bytes */
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && *vkr_last_error(), "x too small: status %d", st);
        CHECK(vkr_graph_size(g) == 0, "a refused op added dispatches");
        /* A weight of a type the kernels do not run (here a type outside the table, as a tensor that did not come
         * from vkl_tensor_upload could be): refused by name. */
        vk_tensor unknown = t;
        unknown.type = GGML_TYPE_TQ1_0;
        st = vkl_op_matmul(g, &unknown, vk_view_of(b, 0), vk_view_of(b, 0), 1);
        CHECK(st == VKLLM_ERR_UNSUPPORTED && strstr(vkr_last_error(), "no kernel for weight type tq1_0"),
              "a type without kernels: status %d (%s)", st, vkr_last_error());
        CHECK(vkr_graph_size(g) == 0, "a refused op added dispatches");
        /* A type the table reads but no kernel runs yet (none at present): uploads, and vkl_op_matmul refuses it
         * by name. */
        for (size_t i = 0; i < vkl_ggml_type_count(); i++) {
            const ggml_type_info *ty = vkl_ggml_type_at(i);
            if (ty->kernels)
                continue;
            vk_tensor q;
            uint8_t raw[2 * 256] = {0};   /* one row of 256 elements of any type fits */
            st = vkl_tensor_upload(dev, ty->id, 256, 1, raw, &q);
            CHECK(st == VKLLM_OK, "upload %s: %s", ty->name, vkr_last_error());
            if (st != VKLLM_OK)
                continue;
            st = vkl_op_matmul(g, &q, vk_view_of(b, 0), vk_view_of(b, 0), 1);
            CHECK(st == VKLLM_ERR_UNSUPPORTED && strstr(vkr_last_error(), "no kernel for weight type") &&
                  strstr(vkr_last_error(), ty->name), "%s without kernels: status %d (%s)", ty->name, st,
                  vkr_last_error());
            CHECK(vkr_graph_size(g) == 0, "a refused op added dispatches");
            vkl_tensor_free(dev, &q);
        }
    }
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, b);
    vkl_tensor_free(dev, &t);
    CHECK(t.buffer == NULL, "vk_tensor_free left a buffer");
}

int main(void)
{
    test_device td;
    test_rng rng;
    if (!test_op_begin(&td, &rng))
        return 1;
    for (uint32_t t = 0; t < MATMUL_CASE_TYPE_IDS; t++)
        worst_err[t] = -1;
    fprintf(stderr, "subgroup arithmetic: %s, subgroup size %u\n",
            td.dev->info.features.subgroup_arithmetic ? "yes" : "no", td.dev->info.features.subgroup_size);

    const VkPhysicalDeviceType real_type = td.dev->info.type;
    const bool real_int64 = td.dev->info.features.int64;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        td.dev->info.type = FAMILIES[f].type;
        td.dev->info.features.int64 = real_int64 && !FAMILIES[f].no_int64;
        shapes(td.dev, &rng, &FAMILIES[f]);
        weight_views(td.dev, &rng, &FAMILIES[f]);
        lowered_limits(td.dev, &rng, &FAMILIES[f]);
        if (!FAMILIES[f].no_int64)   /* the other types have no 64-bit variant */
            other_types(td.dev, &rng, &FAMILIES[f]);
        if (FAMILIES[f].type == VK_PHYSICAL_DEVICE_TYPE_CPU)
            cpu_int64_edges(td.dev, &rng, &FAMILIES[f]);
        else {
            reduction_variants(td.dev, &rng);
            matmul_tiles(td.dev, &rng);
        }
    }
    td.dev->info.type = real_type;
    td.dev->info.features.int64 = real_int64;
    /* Over 256K blocks: host/ops/tensor.c repacks and uploads quantized weights in several chunks. */
    run_case(td.dev, &rng, GGML_TYPE_Q8_0, 4096, 2100, 1, "multi-chunk upload q8_0");
    run_case(td.dev, &rng, GGML_TYPE_Q4_0, 4096, 2100, 2, "multi-chunk upload q4_0");
    big_weight(td.dev, &rng);
    bad_arguments(td.dev);
    matmul_case_print_worst(worst_err, 0);

    test_device_close(&td);
    if (test_failures)
        fprintf(stderr, "seed was %llu\n", (unsigned long long)test_seed());
    return test_finish("op_matmul");
}

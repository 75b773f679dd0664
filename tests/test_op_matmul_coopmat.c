/* The cooperative-matrix prompt matmul (shaders/matmul_coopmat.comp, experimental) against the CPU reference
 * (tests/ref/ref_matmul.c), in each SPIR-V form the device has, each on its own device: VKLLM_COOPMAT=khr (the
 * module rewritten by shaders/tools/spirv_coopmat_khr.c) and VKLLM_COOPMAT=nv (glslang's), set by the test
 * itself. With the validation layer, except for the KHR form under a layer older than VK_KHR_cooperative_matrix
 * (Debian 12's 1.3.239), which would report the extension's structures and SPIR-V as errors. Exits 77
 * (skipped, never passed) when neither form is usable: lavapipe, GPUs without the 16x16x16 f16 -> f32
 * subgroup shape, the Vulkan memory model or shaderFloat16.
 *
 * Every weight type (F32, F16, Q8_0 and Q4_0 on many shapes, the others of the type table on a few); shapes with
 * partial tiles in both directions (rows and columns not multiples of 16 or of
 * the 64 x 64 workgroup tile, fewer than 16), every workgroup tile (VKLLM_COOPMAT_TILE), K not a multiple of 32 or 16 for F32/F16, x/y at non-zero
 * offsets, weights that are row-range views of a larger tensor, and lowered device limits (several row and
 * column chunks, few workgroups). Outputs are poisoned with NaN first and a guard region after y must stay
 * poisoned. Every dispatch of the op must be the cooperative-matrix kernel (a silent fallback fails), after x's
 * conversion to f16. The default choice: vkl_coopmat_decide for every input, the self-check passing on the
 * device and failing with a subgroup size the dispatch does not run with, the first prompt matmul running it
 * and then recording the cooperative-matrix kernel, and the tiled kernel after a failed check.
 *
 * Tolerance: relative L2 error 2e-3 against the double-precision reference on the same dequantized weights.
 * The kernel rounds both inputs to f16 (unit roundoff 2^-11 = 4.9e-4 per element, about 3e-4 relative L2 for
 * a dot product of independent terms; the emulated kernel measures 2.4e-4 to 3.8e-4 on lavapipe, and the
 * worst errors are printed) and accumulates in f32; the tiled f32 kernel is held to 1e-3 / 1e-5 by
 * test_op_matmul. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "matmul_case.h"
#include "util.h"

#define TOLERANCE 2e-3

static double worst_err[MATMUL_CASE_TYPE_IDS];   /* by type (-1: not run) */

/* One vkl_op_matmul on random data, checked (tests/matmul_case.c), that must run the cooperative-matrix kernel;
 * with view_r0 > 0 the weight is rows [view_r0, view_r0 + M) of a larger tensor. */
static void run_case(vkr_device *dev, test_rng *rng, uint32_t type, uint32_t K, uint32_t M, uint32_t N,
                     uint32_t view_r0, const char *label)
{
    const matmul_case c = {.type = type, .K = K, .M = M, .N = N, .view_r0 = view_r0, .tol = TOLERANCE,
                           .kernel = "matmul_coopmat", .label = label};
    const double err = matmul_case_run(dev, rng, &c);
    if (err > worst_err[type])
        worst_err[type] = err;
}

static const uint32_t TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

static void suite(vkr_device *dev, test_rng *rng, const char *form)
{
    /* (K, M): K = 32/64/96/4096 for every type; M below, at and across tile edges. */
    static const uint32_t km_all[][2] = {{32, 1}, {64, 16}, {96, 17}, {32, 64}, {64, 65}, {96, 257}, {4096, 70}};
    static const uint32_t km_float[][2] = {{1, 5}, {7, 100}, {16, 33}, {33, 9}, {100, 130}, {1000, 3}};
    /* N > 8 (smaller N takes the matvec); across 16 and the 64-column tile */
    static const uint32_t ncols[] = {9, 16, 17, 64, 65, 130};
    char label[128];
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        const uint32_t type = TYPES[ti];
        for (size_t ni = 0; ni < sizeof ncols / sizeof ncols[0]; ni++) {
            const uint32_t N = ncols[ni];
            for (size_t i = 0; i < sizeof km_all / sizeof km_all[0]; i++) {
                snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u", form, vkl_ggml_type_name(type), km_all[i][0],
                         km_all[i][1], N);
                run_case(dev, rng, type, km_all[i][0], km_all[i][1], N, 0, label);
            }
            if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16)
                for (size_t i = 0; i < sizeof km_float / sizeof km_float[0]; i++) {
                    snprintf(label, sizeof label, "%s %s K=%u M=%u N=%u", form, vkl_ggml_type_name(type),
                             km_float[i][0], km_float[i][1], N);
                    run_case(dev, rng, type, km_float[i][0], km_float[i][1], N, 0, label);
                }
        }
        /* A prompt-sized product (pp512 of a 2048-wide layer; smaller when emulated, which is slow) and a weight
         * view at an unaligned row. */
        snprintf(label, sizeof label, "%s %s pp512", form, vkl_ggml_type_name(type));
#ifdef COOPMAT_EMULATED
        run_case(dev, rng, type, 512, 128, 512, 0, label);
#else
        run_case(dev, rng, type, 2048, 256, 512, 0, label);
#endif
        snprintf(label, sizeof label, "%s %s view", form, vkl_ggml_type_name(type));
        run_case(dev, rng, type, 96, 50, 20, 3, label);
    }

    /* The other types of the type table on a few shapes: K steps of 32 and 64 elements in the units' order,
     * partial tiles, a weight view, row chunks. */
    uint32_t types[32];
    const uint32_t nt = matmul_case_other_types(types, 32);
    for (uint32_t ti = 0; ti < nt; ti++) {
        const char *tn = vkl_ggml_type_name(types[ti]);
        snprintf(label, sizeof label, "%s %s K=256 M=65 N=17", form, tn);
        run_case(dev, rng, types[ti], 256, 65, 17, 0, label);
        snprintf(label, sizeof label, "%s %s K=512 M=17 N=70", form, tn);
        run_case(dev, rng, types[ti], 512, 17, 70, 0, label);
        snprintf(label, sizeof label, "%s %s view", form, tn);
        run_case(dev, rng, types[ti], 256, 50, 20, 3, label);
    }

    /* Every tile (VKLLM_COOPMAT_TILE; the emulation's shared memory holds only the two smaller ones on lavapipe,
     * the others fall back to the default choice there): partial tiles in both directions, more than 64
     * columns, a K step of 64 elements (q6_K), K not a multiple of 16 (F16). */
    static const char *tiles[] = {"128x128", "128x64", "64x64", "64x32"};
    static const uint32_t tc[][4] = {{GGML_TYPE_Q4_0, 96, 257, 130}, {GGML_TYPE_F16, 33, 130, 70},
                                     {GGML_TYPE_Q6_K, 256, 130, 70}, {GGML_TYPE_F32, 100, 40, 9}};
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        setenv("VKLLM_COOPMAT_TILE", tiles[i], 1);
        for (size_t j = 0; j < sizeof tc / sizeof tc[0]; j++) {
            snprintf(label, sizeof label, "%s tile %s %s K=%u M=%u N=%u", form, tiles[i], vkl_ggml_type_name(tc[j][0]),
                     tc[j][1], tc[j][2], tc[j][3]);
            run_case(dev, rng, tc[j][0], tc[j][1], tc[j][2], tc[j][3], 0, label);
        }
    }
    unsetenv("VKLLM_COOPMAT_TILE");

    /* Lowered limits: row and column chunks with offsets that are not multiples of the alignment, few groups. */
    vkr_features saved = dev->info.features;
    vkr_features *ft = &dev->info.features;
    ft->max_storage_buffer_range = 4096 + 512;
    if (ft->min_storage_buffer_offset_alignment < 256)
        ft->min_storage_buffer_offset_alignment = 256;
    static const uint32_t c1[][4] = {{0, 96, 301, 40}, {1, 96, 200, 70}, {2, 96, 130, 45}, {3, 64, 301, 9}};
    for (size_t i = 0; i < sizeof c1 / sizeof c1[0]; i++) {
        snprintf(label, sizeof label, "%s small-range %s K=%u M=%u N=%u", form, vkl_ggml_type_name(TYPES[c1[i][0]]),
                 c1[i][1], c1[i][2], c1[i][3]);
        run_case(dev, rng, TYPES[c1[i][0]], c1[i][1], c1[i][2], c1[i][3], 0, label);
    }
    for (uint32_t ti = 0; ti < nt; ti++) {
        ft->max_storage_buffer_range = matmul_case_small_range(types[ti]);
        snprintf(label, sizeof label, "%s small-range %s K=256 M=200 N=20", form, vkl_ggml_type_name(types[ti]));
        run_case(dev, rng, types[ti], 256, 200, 20, 0, label);
    }
    *ft = saved;
    ft->max_workgroup_count[0] = 3;
    ft->max_workgroup_count[1] = 2;
    static const uint32_t c2[][4] = {{0, 64, 300, 170}, {3, 96, 1000, 200}};
    for (size_t i = 0; i < sizeof c2 / sizeof c2[0]; i++) {
        snprintf(label, sizeof label, "%s few-groups %s K=%u M=%u N=%u", form, vkl_ggml_type_name(TYPES[c2[i][0]]),
                 c2[i][1], c2[i][2], c2[i][3]);
        run_case(dev, rng, TYPES[c2[i][0]], c2[i][1], c2[i][2], c2[i][3], 0, label);
    }
    *ft = saved;
}

/* Under AMD's vendor id the kernel runs only with a subgroup size of 32 (RDNA3's matrix instructions are wave32,
 * while the drivers default to 64), required through subgroup size control; where 32 is not possible vkl_op_matmul
 * records the tiled matmul instead. Checked on this device's subgroup sizes reported under AMD's id: which
 * kernel the graph holds. (Results of both kernels are checked by the suite.) */
static void amd_wave32(vkr_device *dev)
{
    const uint32_t vendor = dev->info.vendor_id;
    const vkr_features *ft = &dev->info.features;
    const bool wave32 = ft->subgroup_size == 32 || (ft->subgroup_size_control && ft->min_subgroup_size <= 32 &&
                                                    ft->max_subgroup_size >= 32);
    dev->info.vendor_id = 0x1002;
    enum { K = 64, M = 8, N = 16 };
    static float w[K * M];
    vk_tensor t;
    vkr_buffer *xb = NULL, *yb = NULL;
    vkr_graph *g = NULL;
    vkllm_status st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, M, w, &t);
    if (st == VKLLM_OK && (st = vkr_buffer_create(dev, K * N * 4, VKR_MEMORY_DEVICE, &xb)) == VKLLM_OK &&
        (st = vkr_buffer_create(dev, M * N * 4, VKR_MEMORY_DEVICE, &yb)) == VKLLM_OK &&
        (st = vkr_graph_create(dev, &g)) == VKLLM_OK)
        st = vkl_op_matmul(g, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), N);
    CHECK(st == VKLLM_OK, "amd wave32: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        /* the last dispatch: the cooperative-matrix kernel follows x's conversion to f16 */
        const char *name = vkr_graph_size(g) ? vkr_graph_dispatch_name(g, vkr_graph_size(g) - 1) : "(none)";
        const char *want = wave32 ? "matmul_coopmat" : "matmul";
        CHECK(!strcmp(name, want), "amd wave32: subgroup sizes %u..%u: recorded %s, expected %s",
              ft->min_subgroup_size, ft->max_subgroup_size, name, want);
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, xb, yb);
    vkl_tensor_free(dev, &t);   /* zeroed by a failed upload */
    dev->info.vendor_id = vendor;
}

/* The validation layer's specVersion, 0 without one. */
static uint32_t validation_layer_version(void)
{
    uint32_t n = 0, version = 0;
    if (volkInitialize() != VK_SUCCESS || vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (props && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(props[i].layerName, "VK_LAYER_KHRONOS_validation"))
                version = props[i].specVersion;
    free(props);
    return version;
}

/* The choice between the cooperative-matrix and the tiled kernel (vkl_coopmat_decide) for every input. */
static void decide_table(void)
{
    for (int usable = 0; usable < 2; usable++)
        for (int forced = 0; forced < 2; forced++)
            for (int check = -1; check <= 1; check++) {
                const vkl_coopmat_choice want = !usable                     ? VKL_COOPMAT_TILED
                                                : forced || check == 1      ? VKL_COOPMAT_USE
                                                : check == -1               ? VKL_COOPMAT_TILED
                                                                            : VKL_COOPMAT_RUN_CHECK;
                CHECK(vkl_coopmat_decide(usable, forced, check) == want,
                      "coopmat decide(usable %d, forced %d, check %d) = %d, expected %d", usable, forced, check,
                      vkl_coopmat_decide(usable, forced, check), want);
            }
}

/* The default choice (as with VKLLM_COOPMAT unset) on this device: the self-check passes, so the first prompt
 * matmul runs it and records the cooperative-matrix kernel; after a failed check the tiled kernel. And the
 * self-check fails where the kernel cannot be right: a subgroup size that is not the one the dispatch runs with
 * (the kernel then writes NaN). */
static void default_choice(vkr_device *dev, test_rng *rng, const char *form)
{
    char label[96];
    bool pass = false;
    double err = 0;
    vkllm_status st = vkl_coopmat_self_check(dev, &pass, &err);
    CHECK(st == VKLLM_OK && pass, "%s self-check: status %d, pass %d, error %.3g (%s)", form, st, pass, err,
          vkr_last_error());
    fprintf(stderr, "%s self-check: relative error %.3g\n", form, err);

    dev->coopmat_auto = true;
    atomic_store(&dev->coopmat_check, 0);
    snprintf(label, sizeof label, "%s default q4_0 K=256 M=100 N=40 (self-check first)", form);
    matmul_case c = {.type = GGML_TYPE_Q4_0, .K = 256, .M = 100, .N = 40, .tol = TOLERANCE,
                     .kernel = "matmul_coopmat", .label = label};
    matmul_case_run(dev, rng, &c);
    CHECK(atomic_load(&dev->coopmat_check) == 1, "%s: the self-check did not pass (state %d)", form,
          atomic_load(&dev->coopmat_check));
    atomic_store(&dev->coopmat_check, -1);
    snprintf(label, sizeof label, "%s default after a failed self-check q4_0 K=256 M=100 N=40", form);
    c.kernel = "matmul";
    c.tol = 1e-3;
    matmul_case_run(dev, rng, &c);
    dev->coopmat_auto = false;
    atomic_store(&dev->coopmat_check, 0);

    vkr_features *ft = &dev->info.features;
    const vkr_features saved = *ft;
    if (ft->min_subgroup_size == ft->max_subgroup_size && ft->subgroup_size * 8 <= ft->max_workgroup_invocations) {
        ft->subgroup_size *= 2;   /* the pipeline is made for twice the subgroups it gets */
        ft->min_subgroup_size = ft->max_subgroup_size = ft->subgroup_size;
        st = vkl_coopmat_self_check(dev, &pass, &err);
        CHECK(st == VKLLM_OK && !pass, "%s self-check with a wrong subgroup size: status %d, pass %d (%s)", form, st,
              pass, vkr_last_error());
        *ft = saved;
    }
}

/* A device with VKLLM_COOPMAT=form: with the validation layer (test_device_open), or without it when the layer
 * predates the extension (it would report the extension's structures and SPIR-V as errors). */
static bool open_device(test_device *td, const char *form, bool validation)
{
    setenv("VKLLM_COOPMAT", form, 1);
    if (validation)
        return test_device_open(td);
    memset(td, 0, sizeof *td);
    const char *env = getenv("VKLLM_VALIDATION");
    char saved[32] = "";
    if (env)
        snprintf(saved, sizeof saved, "%s", env);
    unsetenv("VKLLM_VALIDATION");
    vkr_instance_options io = {0};
    vkllm_status st = vkr_instance_create(&io, &td->inst);
    if (st == VKLLM_OK) {
        vkr_device_options dopts = {0};
        st = vkr_device_create(td->inst, &dopts, &td->dev);
        if (st != VKLLM_OK) {
            vkr_instance_destroy(td->inst);
            td->inst = NULL;
        }
    }
    if (env)
        setenv("VKLLM_VALIDATION", saved, 1);
    CHECK(st == VKLLM_OK, "%s: cannot create a device: %s", form, vkr_last_error());
    return st == VKLLM_OK;
}

/* Runs the suite on a device opened for `form` (khr, nv, emulate) where that form is enabled there. Returns
 * whether it ran. */
static bool run_form(const char *form, test_rng *rng)
{
    bool validation = true;
    if (!strcmp(form, "khr")) {
        const uint32_t v = validation_layer_version();
        if (v < VK_MAKE_API_VERSION(0, 1, 3, 255)) {
            fprintf(stderr, "khr: the validation layer (%u.%u.%u) predates VK_KHR_cooperative_matrix: run without it\n",
                    VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
            validation = false;
        }
    }
    test_device td;
    if (!open_device(&td, form, validation)) {
        CHECK(0, "%s: no device", form);
        return false;
    }
    vkr_features *ft = &td.dev->info.features;
    const bool on = !strcmp(form, "khr") ? ft->coopmat_khr_f16 : !strcmp(form, "nv") ? ft->coopmat_nv_f16
                                                                                     : ft->coopmat_emulated;
    fprintf(stderr, "%s: %s; cooperative matrix enabled: KHR %s, NV %s, emulated %s; subgroup size %u (min %u, "
                    "max %u)%s\n",
            form, td.dev->info.name, ft->coopmat_khr_f16 ? "yes" : "no", ft->coopmat_nv_f16 ? "yes" : "no",
            ft->coopmat_emulated ? "yes" : "no", ft->subgroup_size, ft->min_subgroup_size, ft->max_subgroup_size,
            validation ? "" : "; no validation layer");
    if (on) {
        const VkPhysicalDeviceType real_type = td.dev->info.type;
        td.dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;   /* the GPU kernel choice, even on a CPU device */
        suite(td.dev, rng, form);
        amd_wave32(td.dev);
        default_choice(td.dev, rng, form);
        td.dev->info.type = real_type;
    } else {
        fprintf(stderr, "%s: not usable on this device (see 'vkllm devices')\n", form);
    }
    test_device_close(&td);
    return on;
}

/* test_op_matmul_coopmat_emu.c includes this file with COOPMAT_EMULATED: the same suite on the emulated kernel
 * (VKLLM_COOPMAT=emulate), which runs on lavapipe. */
int main(void)
{
    test_rng rng;
    rng_init(&rng, test_seed());
    for (uint32_t t = 0; t < MATMUL_CASE_TYPE_IDS; t++)
        worst_err[t] = -1;
    decide_table();
#ifdef COOPMAT_EMULATED
    const char *const test_name = "op_matmul_coopmat_emu";
    const bool ran = run_form("emulate", &rng);
#else
    const char *const test_name = "op_matmul_coopmat";
    bool ran = run_form("khr", &rng);
    ran = run_form("nv", &rng) || ran;
#endif
    matmul_case_print_worst(worst_err, TOLERANCE);
    if (test_failures)
        fprintf(stderr, "seed was %llu\n", (unsigned long long)test_seed());
    if (!ran && !test_failures) {
        fprintf(stderr, "SKIP: no usable cooperative matrix on this device\n");
        return TEST_SKIP;
    }
    return test_finish(test_name);
}

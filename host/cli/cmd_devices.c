/* `vkllm devices`: every Vulkan device with its type, driver, memory heaps, and the features and limits
 * the kernels depend on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "runtime/device.h"

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

static void print_size(const char *label, uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        printf("    %-30s %.2f GiB\n", label, bytes / 1073741824.0);
    else
        printf("    %-30s %.1f MiB\n", label, bytes / 1048576.0);
}

static void print_device(const vkr_device_info *d, bool is_default)
{
    char driver_version[64];
    vkr_driver_version_string(d, driver_version, sizeof driver_version);
    printf("device %u: %s%s\n", d->index, d->name, is_default ? "  (default)" : "");
    printf("    %-30s %s\n", "type", vkr_device_type_name(d->type));
    printf("    %-30s %s %s (version %s)\n", "driver", d->driver_name, d->driver_info, driver_version);
    printf("    %-30s %u.%u.%u\n", "Vulkan API", VK_API_VERSION_MAJOR(d->api_version),
           VK_API_VERSION_MINOR(d->api_version), VK_API_VERSION_PATCH(d->api_version));
    printf("    %-30s 0x%04x / 0x%04x\n", "vendor / device id", d->vendor_id, d->device_id);
    for (uint32_t i = 0; i < d->n_heaps; i++) {
        const vkr_heap_info *h = &d->heaps[i];
        printf("    heap %u%-24s %.2f GiB%s", i, "", h->size / 1073741824.0, h->device_local ? " device-local" : "");
        if (h->budget)
            printf(", budget %.2f GiB, used %.2f GiB", h->budget / 1073741824.0, h->usage / 1073741824.0);
        printf("\n");
    }
    const vkr_features *f = &d->features;
    printf("    %-30s %s\n", "fp16 arithmetic", yes_no(f->fp16));
    printf("    %-30s %s\n", "int8 arithmetic", yes_no(f->int8));
    printf("    %-30s %s\n", "int64 arithmetic", yes_no(f->int64));
    printf("    %-30s %s / %s\n", "16-bit / 8-bit storage", yes_no(f->storage16), yes_no(f->storage8));
    printf("    %-30s %s\n", "integer dot product", yes_no(f->integer_dot_product));
    printf("    %-30s %u (min %u, max %u)\n", "subgroup size", f->subgroup_size, f->min_subgroup_size,
           f->max_subgroup_size);
    printf("    %-30s %s\n", "subgroup size control", yes_no(f->subgroup_size_control));
    printf("    %-30s %s\n", "subgroup arithmetic", yes_no(f->subgroup_arithmetic));
    printf("    %-30s KHR %s, NV %s\n", "cooperative matrix", yes_no(f->coopmat_khr), yes_no(f->coopmat_nv));
    /* The one shape shaders/matmul_coopmat.comp uses; the kernel also needs Vulkan 1.3, fp16 arithmetic and the
     * Vulkan memory model; the prompt matmul uses it once its self-check passed (VKLLM_COOPMAT=1: always, =0: never). */
    bool cm_usable = (f->coopmat_khr_f16 || f->coopmat_nv_f16) && f->fp16 && f->vulkan_memory_model &&
                     d->api_version >= VK_API_VERSION_1_3;
    printf("    %-30s KHR %s, NV %s; Vulkan memory model %s -> %s\n", "  16x16x16 f16->f32 subgroup",
           yes_no(f->coopmat_khr_f16), yes_no(f->coopmat_nv_f16), yes_no(f->vulkan_memory_model),
           cm_usable ? "usable (after a self-check; VKLLM_COOPMAT=0 off)" : "not usable");
    printf("    %-30s %s\n", "memory budget", yes_no(f->memory_budget));
    print_size("maxStorageBufferRange", f->max_storage_buffer_range);
    print_size("maxMemoryAllocationSize", f->max_memory_allocation_size);
    printf("    %-30s %u KiB\n", "maxComputeSharedMemorySize", f->max_compute_shared_memory / 1024);
    printf("    %-30s %u\n", "maxComputeWorkGroupInvocations", f->max_workgroup_invocations);
    printf("    %-30s %s, period %.3g ns\n", "timestamps", yes_no(f->timestamps), f->timestamp_period_ns);
    printf("    %-30s %s\n", "timeline semaphore", yes_no(f->timeline_semaphore));   /* vkllm_context_timeline */
}

int cmd_devices(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: vkllm devices\n\nLists every Vulkan device. Choose one for other commands with\n"
                   "--device N (index or name substring) or VKLLM_DEVICE.\n");
            return 0;
        }
        fprintf(stderr, "vkllm devices: unknown option '%s'\n", argv[i]);
        return 1;
    }
    vkr_instance *inst;
    vkr_instance_options opts = {0};
    if (vkr_instance_create(&opts, &inst) != VKLLM_OK) {
        fprintf(stderr, "vkllm: %s\n", vkr_last_error());
        return 1;
    }
    vkr_device_info *infos;
    uint32_t n;
    uint32_t def = 0;
    if (vkr_enumerate_devices(inst, &infos, &n) != VKLLM_OK) {
        fprintf(stderr, "vkllm: %s\n", vkr_last_error());
        vkr_instance_destroy(inst);
        return 1;
    }
    /* The list never depends on the selection: a VKLLM_DEVICE that matches nothing only leaves the default
     * unmarked, with a note. */
    if (vkr_select_device(inst, NULL, &def) != VKLLM_OK) {
        fprintf(stderr, "vkllm devices: note: VKLLM_DEVICE: %s\n", vkr_last_error());
        def = UINT32_MAX;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            printf("\n");
        print_device(&infos[i], i == def);
    }
    free(infos);
    vkr_instance_destroy(inst);
    return 0;
}

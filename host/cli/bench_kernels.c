/* `vkllm bench --kernels`: the device's read bandwidth, then y = W x (vkl_op_matmul, one column) for each
 * weight type at Llama shapes: GPU time per call, GB/s of the weight's GGUF bytes, % of the read bandwidth. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/cli/cmd_bench.h"
#include "host/format/quant.h"

#define KERNEL_QUICK_BW_BYTES (32ull << 20)
#define KERNEL_FLUSH_MAX (256ull << 20)

static const column kernel_cols[] = {
    {"device", "device", K_STR, IN_DATA, 0},
    {"driver", "driver", K_STR, IN_DATA, 0},
    {"test", "test", K_STR, IN_BOTH, 0},
    {"type", "type", K_STR, IN_BOTH, 0},
    {"shape", "M x K", K_STR, IN_MD, 1},
    {"m", "M", K_NUM, IN_DATA, 1},
    {"k", "K", K_NUM, IN_DATA, 1},
    {"bytes", "bytes", K_NUM, IN_DATA, 1},
    {"mib", "MiB", K_NUM, IN_BOTH, 1},
    {"runs", "runs", K_NUM, IN_DATA, 1},
    {"timer", "timer", K_STR, IN_DATA, 0},
    {"us", "us/call", K_NUM, IN_BOTH, 1},
    {"min_us", "min us", K_NUM, IN_DATA, 1},
    {"gbs", "GB/s", K_NUM, IN_BOTH, 1},
    {"bw_pct", "% read bw", K_NUM, IN_BOTH, 1},
    {"skipped", "skipped", K_STR, IN_DATA, 0},
};

int bench_kernels(vkr_device *dev, uint32_t reps, const kernel_opts *ko, out_format fmt)
{
    const bool quick = ko->quick;
    char driver[600], api[32];
    bench_device_strings(dev, driver, sizeof driver, api, sizeof api);
    table t = TABLE_INIT(kernel_cols);
    uint64_t bytes = vkl_bench_read_buffer_size(dev);
    if (quick && bytes > KERNEL_QUICK_BW_BYTES)
        bytes = KERNEL_QUICK_BW_BYTES;
    bench_bandwidth bw;
    vkr_buffer *flush = NULL;
    if (!bench_measure_bandwidth(dev, bytes, reps, &bw, &flush))
        return 1;
    /* The read buffer then serves to flush the caches between matvec calls; a smaller one does for that. */
    if (bytes > KERNEL_FLUSH_MAX) {
        vkr_buffer_destroy(dev, flush);
        flush = NULL;
        if (vkl_bench_random_buffer(dev, KERNEL_FLUSH_MAX, 2, &flush) != VKLLM_OK) {
            bench_fail();
            return 1;
        }
    }
    const char *timer = bw.gpu_timer ? "gpu" : "wall";
    table_add_row(&t);
    table_set(&t, "device", "%s", dev->info.name);
    table_set(&t, "driver", "%s", driver);
    table_set(&t, "test", "read");
    table_set(&t, "bytes", "%" PRIu64, bw.bytes);
    table_num(&t, "mib", bw.bytes / MIB, 1);
    table_set(&t, "runs", "%u", bw.runs);
    table_set(&t, "timer", "%s", timer);
    table_num(&t, "us", bw.best_ns / 1e3, 1);
    table_num(&t, "min_us", bw.best_ns / 1e3, 1);
    table_num(&t, "gbs", bw.gbps, 2);
    table_num(&t, "bw_pct", 100.0, 1);

    static const uint32_t llama_shapes[4][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    static const uint32_t quick_shapes[4][2] = {{1024, 1024}, {3584, 1024}, {1024, 3584}, {32064, 1024}};
    const uint32_t(*shapes)[2] = ko->n_shapes ? ko->shapes : quick ? quick_shapes : llama_shapes;
    const uint32_t n_shapes = ko->n_shapes ? ko->n_shapes : 4;
    const uint32_t *types = ko->types, n_types = ko->n_types;   /* cmd_bench fills in the default */
    char notes[64][256];
    int n_notes = 0;
    int rc = 0;
    for (uint32_t ti = 0; ti < n_types && rc == 0; ti++) {
        for (uint32_t si = 0; si < n_shapes; si++) {
            uint32_t m = shapes[si][0], k = shapes[si][1];
            if (isatty(STDERR_FILENO)) {
                fprintf(stderr, "\rmatvec %s %u x %u ...      ", vkl_ggml_type_name(types[ti]), m, k);
                fflush(stderr);
            }
            bench_matvec_result res;
            if (vkl_bench_matvec(dev, types[ti], m, k, reps, flush, &res) != VKLLM_OK) {
                if (isatty(STDERR_FILENO))
                    fprintf(stderr, "\n");
                bench_fail();
                rc = 1;
                break;
            }
            table_add_row(&t);
            table_set(&t, "device", "%s", dev->info.name);
            table_set(&t, "driver", "%s", driver);
            table_set(&t, "test", "matvec");
            table_set(&t, "type", "%s", vkl_ggml_type_name(types[ti]));
            table_set(&t, "shape", "%u x %u", m, k);
            table_set(&t, "m", "%u", m);
            table_set(&t, "k", "%u", k);
            table_set(&t, "bytes", "%" PRIu64, res.weight_bytes);
            table_num(&t, "mib", res.weight_bytes / MIB, 1);
            if (res.skipped) {
                table_set(&t, "us", "skipped");   /* markdown only: the JSON number stays null */
                table_set(&t, "skipped", "%s", res.reason);
                if (n_notes < 64)
                    snprintf(notes[n_notes++], sizeof notes[0], "skipped %s %u x %u: %s", vkl_ggml_type_name(types[ti]),
                             m, k, res.reason);
                continue;
            }
            double gbs = res.weight_bytes / res.median_ns;
            table_set(&t, "runs", "%u", reps);
            table_set(&t, "timer", "%s", timer);
            table_num(&t, "us", res.median_ns / 1e3, 1);
            table_num(&t, "min_us", res.min_ns / 1e3, 1);
            table_num(&t, "gbs", gbs, 2);
            table_num(&t, "bw_pct", 100.0 * gbs / bw.gbps, 1);
        }
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r%40s\r", "");
    double flush_mib = flush->size / MIB;
    vkr_buffer_destroy(dev, flush);
    if (rc == 0 && t.oom) {
        bench_error("out of host memory");
        rc = 1;
    }
    if (rc == 0) {
        if (fmt != OUT_MD)   /* "skipped" in the time column is for the markdown table only */
            table_clear_value(&t, "us", "skipped");
        if (fmt == OUT_MD)
            printf("device: %s (%s), driver: %s, Vulkan %s; timer: %s; matvec: median of %u, caches flushed "
                   "(%.0f MiB read) before each call\n\n",
                   dev->info.name, vkr_device_type_name(dev->info.type), driver, api,
                   bw.gpu_timer ? "GPU timestamps" : "fence wall time", reps, flush_mib);
        table_print(&t, fmt);
        if (fmt == OUT_MD)
            for (int i = 0; i < n_notes; i++)
                printf("%s%s\n", i ? "" : "\n", notes[i]);
    }
    table_free(&t);
    return rc;
}

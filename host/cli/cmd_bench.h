/* `vkllm bench`, shared between its files: the options (parsed in cmd_bench.c), the model benchmark
 * (bench_model.c), the kernel benchmark (bench_kernels.c) and what both need. Results go through
 * bench_table.h. */
#ifndef VKLLM_CLI_CMD_BENCH_H
#define VKLLM_CLI_CMD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/tools/bench.h"
#include "host/cli/bench_table.h"
#include "host/cli/common.h"
#include "runtime/device.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)
#define MAX_TESTS 32
#define TG_WARMUP_MAX 32u   /* tokens in a tg test's warm-up run, at most */

typedef struct kernel_opts {
    uint32_t shapes[MAX_TESTS][2], n_shapes;   /* M x K; 0: the defaults */
    uint32_t types[MAX_TESTS], n_types;         /* 0: every type the kernels run (host/format/quant.c's table) */
    bool quick;
} kernel_opts;

typedef struct model_opts {
    cli_model_opts mo;
    uint32_t pp[MAX_TESTS], n_pp, tg[MAX_TESTS], n_tg;
    uint32_t par[MAX_TESTS], n_par;   /* --parallel: sequences decoding together (tgN xP rows) */
    uint32_t reps;
    const char *synth_preset;
    uint32_t synth_type;
    bool profile;
} model_opts;

/* Each returns the exit status, having printed the results on stdout or one error line on stderr. */
int bench_kernels(vkr_device *dev, uint32_t reps, const kernel_opts *ko, out_format fmt);
int bench_model(vkr_device *dev, const model_opts *o, out_format fmt);

/* Prints "vkllm bench: <message>" on stderr. */
void bench_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Prints the library's last error as bench_error does; returns false. */
bool bench_fail(void);

/* The driver ("name info", or its version) and the Vulkan version ("1.3.230") for the result rows. */
void bench_device_strings(const vkr_device *dev, char *driver, size_t driver_len, char *api, size_t api_len);
/* The read bandwidth over a fresh random buffer of `bytes`, the best of `runs`; the buffer is kept in *keep
 * (if not NULL) for the caller to destroy. Prints the error and returns false. */
bool bench_measure_bandwidth(vkr_device *dev, uint64_t bytes, uint32_t runs, bench_bandwidth *bw, vkr_buffer **keep);

#endif

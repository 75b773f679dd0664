/* Measurements behind `vkllm bench`: the device's read bandwidth (shaders/read_bandwidth.comp), the time of one
 * matrix-vector product (vkl_op_matmul with n_cols = 1) for a weight type and shape, and the weight bytes a
 * Llama decode step reads. Timing uses GPU timestamps when the queue has them, else the fence wall time of
 * the submit (which then also counts the submission overhead). */
#ifndef VKLLM_BENCH_H
#define VKLLM_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "host/format/gguf.h"
#include "runtime/memory.h"

/* The read buffer the device comfortably allows: min(1 GiB, maxStorageBufferRange, maxMemoryAllocationSize,
 * a quarter of the largest device-local heap, a quarter of the device's memory limit), rounded down to
 * whole MiB (to 16 bytes below 1 MiB). 0 if the device allows nothing useful. */
uint64_t vkl_bench_read_buffer_size(const vkr_device *dev);

/* A device-local buffer of `bytes` (a multiple of 16) filled with pseudo-random bytes: data that no
 * memory-compression scheme can shrink and, on a CPU device, pages that really exist. */
vkllm_status vkl_bench_random_buffer(vkr_device *dev, uint64_t bytes, uint64_t seed, vkr_buffer **out);

typedef struct bench_bandwidth {
    uint64_t bytes;        /* read per run */
    double best_ns;        /* fastest run */
    double gbps;           /* bytes / best_ns (10^9 bytes per second) */
    uint32_t runs;         /* timed runs per configuration (plus one warm-up each) */
    bool gpu_timer;        /* GPU timestamps; else fence wall time */
} bench_bandwidth;

/* Reads all of `buf` (size a multiple of 16, at most maxStorageBufferRange) with the read kernel, in a few
 * workgroup configurations, `runs` times each after a warm-up; reports the best run. */
vkllm_status vkl_bench_read_bandwidth(vkr_device *dev, vkr_buffer *buf, uint32_t runs, bench_bandwidth *out);

typedef struct bench_matvec_result {
    uint64_t weight_bytes; /* size of the weight in GGUF (e.g. Q4_0: 18 bytes per 32 weights) */
    bool skipped;          /* the shape does not fit the device (or the host); `reason` says why */
    char reason[200];
    double median_ns;      /* GPU time per call, median of the runs */
    double min_ns;
    bool gpu_timer;
} bench_matvec_result;

/* Times y = W x for an M x K weight (M rows of K) of `type` (F32, F16, Q8_0, Q4_0): one warm-up call, then
 * `runs` timed calls. When `flush` is given, all of it is read (in its own submit, not timed) before each
 * timed call, so the weight comes from memory rather than a cache, as in a decode step where every weight is
 * read once. The weight holds one random row (quantized with vkl_quantize_row, so f16 scales are finite;
 * random blocks with a set scale for the IQ grid types, which have no quantizer), repeated. A shape the device cannot hold is reported as skipped with VKLLM_OK. */
vkllm_status vkl_bench_matvec(vkr_device *dev, uint32_t type, uint32_t m, uint32_t k, uint32_t runs, vkr_buffer *flush,
                          bench_matvec_result *out);

/* Weight bytes one decode step of a Llama GGUF reads: every tensor (layers, norms, output matrix) except the
 * token embedding, of which one row is read, unless it doubles as the output matrix (no output.weight). The
 * KV cache is not counted. */
uint64_t vkl_bench_gguf_bytes_per_token(const gguf_file *f);

#endif

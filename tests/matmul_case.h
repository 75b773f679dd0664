/* One vkl_op_matmul on random data, checked against the CPU reference over the very same GGUF blocks
 * (tests/ref/ref_matmul.c, in double). Shared by the matmul kernel tests. */
#ifndef VKLLM_MATMUL_CASE_H
#define VKLLM_MATMUL_CASE_H

#include "host/ops/tensor.h"
#include "util.h"

typedef struct matmul_case {
    uint32_t type, K, M, N;    /* weight type, row length, rows, columns of x */
    uint32_t view_r0;          /* > 0: the weight is rows [view_r0, view_r0 + M) of a larger tensor (two more
                                * rows follow), as the stacked Wq;Wk;Wv are */
    uint32_t x_extra;          /* bytes (a multiple of 16) between x and the device-aligned offset it follows */
    double tol;                /* relative L2 error allowed */
    const char *kernel;        /* NULL, or the name every recorded dispatch must have */
    const char *label;
} matmul_case;

/* y is poisoned with NaN beforehand, at an offset and with guards after it: every element must be written
 * and finite, the relative L2 error below c->tol, and nothing outside y written. Failures are CHECKed and
 * the case printed. Returns the relative L2 error, or -1 if the op did not run. */
double matmul_case_run(vkr_device *dev, test_rng *rng, const matmul_case *c);

/* A matmul re-run on buffers a test keeps: clears g, poisons y_bytes of yb, records vkl_op_matmul(t, xb, yb, n),
 * runs it and downloads the t->ne[1] x n result into y. */
vkllm_status matmul_case_poisoned_run(vkr_device *dev, vkr_graph *g, const vk_tensor *t, vkr_buffer *xb,
                                      vkr_buffer *yb, uint64_t y_bytes, uint32_t n, float *y);

/* Above every type id (for arrays indexed by type). */
#define MATMUL_CASE_TYPE_IDS 64u

/* The weight types the kernels run (host/format/quant.c's table) other than F32, F16, Q8_0 and Q4_0, which the kernel
 * tests cover with their full sets of shapes: written to out (at most max), their count returned. */
uint32_t matmul_case_other_types(uint32_t *out, uint32_t max);

/* A lowered maxStorageBufferRange that splits the other types' small test weights into row chunks: 4608 bytes, or
 * for the IQ grid types their grid (bound whole, up to 8 KiB; a real device's range, at least 2^27, holds it)
 * plus 512. */
uint64_t matmul_case_small_range(uint32_t type);

/* Prints "worst relative L2 error: TYPE ERR, ..." for every type with an entry in worst[] (-1: none). */
void matmul_case_print_worst(const double worst[MATMUL_CASE_TYPE_IDS], double tolerance);

#endif

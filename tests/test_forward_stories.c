/* The real model: stories260K's logits on the GPU match the CPU reference forward pass, for a batched
 * prompt (split over several batches) and for decode steps; once with the kernels this device picks, once
 * with those a GPU picks (VKLLM_DEBUG_AS_GPU: the fused matvecs, multi-column matvec for batches of 4). */
#include <stdlib.h>

#include "forward_check.h"
#include "util.h"

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    /* F32 weights; both sides round K/V through f16, but a last-bit difference from f32-vs-double
     * summation can flip one rounding, which moves logits by up to ~1e-4 (seen: 6e-5). 1e-3 relative
     * still catches any wrong index or missing term (those give errors of order 1). */
    forward_check(path, test_seed(), 37, 12, 16, 1e-3);
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    forward_check(path, test_seed() + 1, 37, 12, 4, 1e-3);
    unsetenv("VKLLM_DEBUG_AS_GPU");
    return test_finish("forward_stories");
}

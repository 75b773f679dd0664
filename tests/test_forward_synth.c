/* Synthetic Llama models of every weight type (and the tied-embedding + rope_freqs variant Llama 3.2
 * uses): GPU logits match the CPU reference, which dequantizes the same blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "forward_check.h"
#include "host/quant.h"
#include "host/synth.h"
#include "util.h"

static void run_case(const char *label, const synth_hparams *hp, uint32_t type, uint64_t seed, double tol)
{
    forward_check_synth(label, hp, type, seed, 21, tol);
}

int main(void)
{
    uint64_t seed = test_seed();
    const synth_hparams *tiny = synth_preset("tiny");
    CHECK(tiny != NULL, "no tiny preset");
    if (!tiny)
        return test_finish("forward_synth");
    /* Both sides use identical dequantized weights; quantized types differ from F32 only in the GPU's
     * dot-product order over blocks, so one tolerance serves all: 1e-3 relative (f16 K/V rounding can
     * flip on a last-bit difference, which moves logits by ~1e-4). */
    const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        run_case("tiny", tiny, types[i], seed + i, 1e-3);
    synth_hparams tied = *tiny;
    tied.tied_embeddings = true;
    tied.rope_freqs = true;
    tied.rope_theta = 500000.0f;
    run_case("tied-rope-freqs", &tied, GGML_TYPE_Q4_0, seed + 10, 1e-3);
    /* Decode with split attention (flash decoding), which GPUs use at long contexts: forced here. */
    setenv("VKLLM_ATTN_SPLIT", "3", 1);
    run_case("split-attention", tiny, GGML_TYPE_Q8_0, seed + 20, 1e-3);
    unsetenv("VKLLM_ATTN_SPLIT");
    /* The kernels a GPU runs (matvec with its fusions, tiled matmul, split attention from 512 on), on this
     * device whatever its type. */
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        run_case("gpu-kernels", tiny, types[i], seed + 30 + i, 1e-3);
    run_case("gpu-kernels-tied-rope-freqs", &tied, GGML_TYPE_Q4_0, seed + 40, 1e-3);
    unsetenv("VKLLM_DEBUG_AS_GPU");
    /* Weights over maxMemoryAllocationSize (lowered to 48 KiB): uploaded in parts; the stacked Wqkv and
     * W_gate;W_up cannot be views then, so the layers run the separate matmuls. */
    setenv("VKLLM_DEBUG_MAX_ALLOCATION", "49152", 1);
    run_case("parts", tiny, GGML_TYPE_F32, seed + 50, 1e-3);
    run_case("parts-tied", &tied, GGML_TYPE_Q8_0, seed + 51, 1e-3);
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    run_case("parts-gpu-kernels", tiny, GGML_TYPE_F16, seed + 52, 1e-3);
    unsetenv("VKLLM_DEBUG_AS_GPU");
    unsetenv("VKLLM_DEBUG_MAX_ALLOCATION");
    return test_finish("forward_synth");
}

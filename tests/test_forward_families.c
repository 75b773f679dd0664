/* Every supported family against the CPU reference forward pass (tests/ref/ref_llama.c), on both kernel
 * paths (the CPU-device kernels, and the kernels a GPU runs via VKLLM_DEBUG_AS_GPU=1): a tiny synthetic model
 * per family with all its features on (biases, Q/K norms, post-norms, GeGLU, soft-caps, a sliding window of 8
 * positions under a 27-token test, local/global rope bases, linear/YaRN/LongRoPE scaling, partial rotary,
 * fused tensors), then one- or two-layer slices of the real shapes (Qwen2.5-0.5B, Qwen3-0.6B, Gemma-3-1B,
 * Phi-3.5-mini: their head dimensions, GQA ratios and widths) with a small vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "forward_check.h"
#include "host/ggml_types.h"
#include "host/synth.h"
#include "util.h"

int main(void)
{
    uint64_t seed = test_seed();
    const char *tiny[] = {"qwen2-tiny", "qwen3-tiny", "gemma2-tiny", "gemma3-tiny", "phi3-tiny", "llama-variant-tiny"};
    /* Both sides use identical dequantized weights; tolerance as test_forward_synth: 1e-3 relative (f16 K/V
     * rounding can flip on a last-bit difference). */
    for (int gpu = 0; gpu < 2; gpu++) {
        if (gpu)
            setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
            const synth_hparams *hp = synth_preset(tiny[i]);
            CHECK(hp != NULL, "no preset %s", tiny[i]);
            if (!hp)
                continue;
            char label[64];
            snprintf(label, sizeof label, "%s%s", tiny[i], gpu ? "-gpu" : "");
            forward_check_synth(label, hp, gpu ? GGML_TYPE_Q8_0 : GGML_TYPE_F32, seed + 10 * i + gpu, 21, 1e-3);
        }
    }
    /* Real shapes, one layer (two for Gemma 3: both local, as its first five are) and a 512-token vocabulary
     * so the reference stays fast; both kernel paths, Q8_0 weights. */
    const char *real[] = {"qwen2.5-0.5b", "qwen3-0.6b", "gemma3-1b", "phi3.5-mini"};
    for (int gpu = 0; gpu < 2; gpu++) {
        if (gpu)
            setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
            const synth_hparams *p = synth_preset(real[i]);
            CHECK(p != NULL, "no preset %s", real[i]);
            if (!p)
                continue;
            synth_hparams hp = *p;
            hp.n_layer = strcmp(real[i], "gemma3-1b") ? 1 : 2;
            hp.n_vocab = 512;
            char label[64];
            snprintf(label, sizeof label, "%s-slice%s", real[i], gpu ? "-gpu" : "");
            forward_check_synth(label, &hp, GGML_TYPE_Q8_0, seed + 200 + 10 * i + gpu, 12, 1e-3);
        }
    }
    unsetenv("VKLLM_DEBUG_AS_GPU");
    /* Decode with split attention (flash decoding) over a window and soft-caps. */
    setenv("VKLLM_ATTN_SPLIT", "3", 1);
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    forward_check_synth("gemma2-split", synth_preset("gemma2-tiny"), GGML_TYPE_F16, seed + 100, 21, 1e-3);
    unsetenv("VKLLM_ATTN_SPLIT");
    unsetenv("VKLLM_DEBUG_AS_GPU");
    return test_finish("forward_families");
}

/* Every supported family against the CPU reference forward pass (tests/ref/ref_llama.c), on both kernel
 * paths (the CPU-device kernels, and the kernels a GPU runs via VKLLM_DEBUG_AS_GPU=1): a tiny synthetic model
 * per family with all its features on (biases, Q/K norms, post-norms, GeGLU, soft-caps, a sliding window of 8
 * positions under a 27-token test, local/global rope bases, linear/YaRN/LongRoPE scaling, partial rotary,
 * fused tensors), then one- or two-layer slices of the real shapes (Qwen2.5-0.5B, Qwen3-0.6B, Gemma-2-2B,
 * Gemma-3-1B, Phi-3.5-mini: their head dimensions, GQA ratios and widths) with a small vocabulary; and
 * truncation on the ring caches of sliding-window layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward_check.h"
#include "host/format/ggml_types.h"
#include "host/tools/synth.h"
#include "util.h"
#include "vkllm.h"

/* A context whose sliding-window layers keep a ring of window + n_batch - 1 rows (gemma2-tiny: 8 + 8 - 1 of
 * 64 positions): continuing within n_batch positions of the end after a truncation gives the logits the first
 * pass gave there; going back further is refused with a message; truncating to 0 starts afresh. */
static void ring_truncation(uint64_t seed)
{
    char path[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/families-ring-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    synth_options o = {.preset = "gemma2-tiny", .type = GGML_TYPE_F32, .path = path, .seed = seed};
    vkllm_model *m = NULL;
    vkllm_context *c = NULL;
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 64;
    cp.n_batch = 8;
    bool ok = vkl_synth_write(&o) == VKLLM_OK && vkllm_model_load(path, NULL, &m) == VKLLM_OK &&
              vkllm_context_create(m, &cp, &c) == VKLLM_OK;
    CHECK(ok, "ring: setup: %s", vkllm_last_error());
    if (ok) {
        enum { N = 40 };
        const uint32_t nv = vkllm_model_n_vocab(m);
        int32_t tokens[N];
        test_rng rng;
        rng_init(&rng, seed);
        for (int i = 0; i < N; i++)
            tokens[i] = (int32_t)(rng_u32(&rng) % nv);
        float *all = malloc((size_t)N * nv * sizeof *all);
        const float *logits = NULL;
        CHECK(vkllm_decode_all(c, tokens, N, all) == VKLLM_OK, "ring: prompt: %s", vkllm_last_error());
        CHECK(vkllm_context_truncate(c, 35) == VKLLM_OK && vkllm_decode(c, &tokens[35], 1, &logits) == VKLLM_OK,
              "ring: continuing at 35 of 40: %s", vkllm_last_error());
        double e = logits ? rel_l2(logits, all + (size_t)35 * nv, nv) : 1.0;
        CHECK(e < 1e-3, "ring: position 35 again differs from the first pass: rel L2 %.3g", e);
        vkllm_status st = vkllm_context_truncate(c, 10);
        st = st == VKLLM_OK ? vkllm_decode(c, &tokens[10], 1, &logits) : st;
        CHECK(st == VKLLM_ERR_UNSUPPORTED && strstr(vkllm_last_error(), "keep only the last 15 positions"),
              "ring: continuing at 10 after 36 must be refused: %d %s", st, vkllm_last_error());
        CHECK(vkllm_context_truncate(c, 0) == VKLLM_OK && vkllm_decode(c, tokens, 1, &logits) == VKLLM_OK,
              "ring: starting again at 0: %s", vkllm_last_error());
        e = logits ? rel_l2(logits, all, nv) : 1.0;
        CHECK(e < 1e-3, "ring: position 0 again differs from the first pass: rel L2 %.3g", e);
        free(all);
    }
    vkllm_context_free(c);
    vkllm_model_free(m);
    remove(path);
}

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
            const synth_hparams *hp = vkl_synth_preset(tiny[i]);
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
    const char *real[] = {"qwen2.5-0.5b", "qwen3-0.6b", "gemma2-2b", "gemma3-1b", "phi3.5-mini"};
    for (int gpu = 0; gpu < 2; gpu++) {
        if (gpu)
            setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
            const synth_hparams *p = vkl_synth_preset(real[i]);
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
    forward_check_synth("gemma2-split", vkl_synth_preset("gemma2-tiny"), GGML_TYPE_F16, seed + 100, 21, 1e-3);
    unsetenv("VKLLM_ATTN_SPLIT");
    unsetenv("VKLLM_DEBUG_AS_GPU");
    ring_truncation(seed + 300);
    return test_finish("forward_families");
}

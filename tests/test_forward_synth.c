/* Synthetic Llama models of every weight type (and the tied-embedding + rope_freqs variant Llama 3.2
 * uses): GPU logits match the CPU reference, which dequantizes the same blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "forward_check.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"
#include "util.h"

static void run_case_mixed(const char *label, const synth_hparams *hp, uint32_t type, const synth_override *ov,
                           uint32_t n_ov, uint64_t seed, double tol)
{
    char path[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/forward-%s-%s-%d.gguf", tmp && *tmp ? tmp : "/tmp", label, vkl_ggml_type_name(type),
             (int)getpid());
    synth_options o = {.hp = hp, .type = type, .overrides = ov, .n_overrides = n_ov, .path = path, .seed = seed};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s %s: %s", label, vkl_ggml_type_name(type), vkr_last_error());
    gguf_file *f = NULL;
    if (st == VKLLM_OK && n_ov && vkl_gguf_open(path, &f) == VKLLM_OK) {
        for (uint32_t k = 0; k < n_ov; k++) {   /* each override took: layer 0's tensor, or token_embd */
            char name[64];
            snprintf(name, sizeof name, "blk.0.%s", ov[k].name_part);
            const gguf_tensor *t = vkl_gguf_find_tensor(f, name);
            if (!t)
                t = vkl_gguf_find_tensor(f, "token_embd.weight");
            CHECK(t && t->type == ov[k].type, "%s: %s is not %s", label, ov[k].name_part, vkl_ggml_type_name(ov[k].type));
        }
        vkl_gguf_close(f);
    }
    if (st == VKLLM_OK)
        forward_check(path, seed, 21, 6, 8, tol);
    remove(path);
}

static void run_case(const char *label, const synth_hparams *hp, uint32_t type, uint64_t seed, double tol)
{
    run_case_mixed(label, hp, type, NULL, 0, seed, tol);
}

int main(void)
{
    uint64_t seed = test_seed();
    const synth_hparams *tiny = vkl_synth_preset("tiny");
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
    /* The kernels a GPU runs (matvec with its fusions, tiled matmul, split attention from 64 positions on), on this
     * device whatever its type. */
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        run_case("gpu-kernels", tiny, types[i], seed + 30 + i, 1e-3);
    run_case("gpu-kernels-tied-rope-freqs", &tied, GGML_TYPE_Q4_0, seed + 40, 1e-3);
    unsetenv("VKLLM_DEBUG_AS_GPU");
    /* Mixed types, as llama.cpp's mixes make them (attn_v and ffn_down in a larger type): Wq;Wk;Wv cannot be
     * stacked then and the layers run the separate matmuls; the embedding table has its own type. */
    static const synth_override mix[] = {
        {"attn_v.weight", GGML_TYPE_Q8_0}, {"ffn_down.weight", GGML_TYPE_F16}, {"token_embd", GGML_TYPE_Q8_0},
        {"ffn_up.weight", GGML_TYPE_F32},
    };
    run_case_mixed("mixed", tiny, GGML_TYPE_Q4_0, mix, 4, seed + 45, 1e-3);
    setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
    run_case_mixed("mixed-gpu-kernels", tiny, GGML_TYPE_Q4_0, mix, 4, seed + 46, 1e-3);
    unsetenv("VKLLM_DEBUG_AS_GPU");
    /* Every other type of the type table on the tiny256 preset (widths that are multiples of 256, so the K-quants
     * and IQ4_XS apply to every matrix), with this device's kernels and with a GPU's; and a Q4_K_M-like mix
     * (Q4_K with attn_v, ffn_down and the embedding table in Q6_K). Of the IQ grid types (random blocks: synth has
     * no quantizer for them) one per grid family, IQ2_XXS, IQ3_S and IQ1_M: the op tests check every type's
     * kernels, and each type's forward pass costs lavapipe about a minute of pipeline compiles under load. */
    const synth_hparams *tiny256 = vkl_synth_preset("tiny256");
    CHECK(tiny256 != NULL, "no tiny256 preset");
    for (size_t i = 0; tiny256 && i < vkl_ggml_type_count(); i++) {
        const ggml_type_info *t = vkl_ggml_type_at(i);
        bool covered = false;
        for (size_t j = 0; j < sizeof types / sizeof types[0]; j++)
            covered = covered || types[j] == t->id;
        uint32_t grid_bytes;
        const bool grid = vkl_ggml_type_grid(t->id, &grid_bytes) != NULL;
        if (!t->kernels || covered ||
            (grid && t->id != GGML_TYPE_IQ2_XXS && t->id != GGML_TYPE_IQ3_S && t->id != GGML_TYPE_IQ1_M))
            continue;
        run_case("tiny256", tiny256, t->id, seed + 60 + i, 1e-3);
        setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        run_case("tiny256-gpu-kernels", tiny256, t->id, seed + 80 + i, 1e-3);
        unsetenv("VKLLM_DEBUG_AS_GPU");
    }
    static const synth_override k_mix[] = {
        {"attn_v.weight", GGML_TYPE_Q6_K}, {"ffn_down.weight", GGML_TYPE_Q6_K}, {"token_embd", GGML_TYPE_Q6_K},
    };
    if (tiny256) {
        run_case_mixed("q4_K_M-like", tiny256, GGML_TYPE_Q4_K, k_mix, 3, seed + 100, 1e-3);
        setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        run_case_mixed("q4_K_M-like-gpu-kernels", tiny256, GGML_TYPE_Q4_K, k_mix, 3, seed + 101, 1e-3);
        unsetenv("VKLLM_DEBUG_AS_GPU");
    }
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

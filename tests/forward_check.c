#include "forward_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <unistd.h>

#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"
#include "ref/ref_llama.h"
#include "util.h"
#include "vkllm.h"

bool forward_check(const char *path, uint64_t seed, uint32_t n_prompt, uint32_t n_decode, uint32_t n_batch, double tol)
{
    int failures_before = test_failures;
    gguf_file *f = NULL;
    ref_llama *ref = NULL;
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    float *gpu = NULL, *cpu = NULL;
    int32_t *tokens = NULL;
    uint32_t n = n_prompt + n_decode;

    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "%s: gguf_open: %s", path, vkr_last_error());
    if (st == VKLLM_OK) {
        st = ref_llama_load(f, &ref);
        CHECK(st == VKLLM_OK, "%s: ref_llama_load: %s", path, vkr_last_error());
    }
    if (st == VKLLM_OK) {
        st = vkllm_model_load(path, NULL, &model);
        CHECK(st == VKLLM_OK, "%s: vkllm_model_load: %s", path, vkllm_last_error());
    }
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = n + 8;
    cp.n_batch = n_batch;
    if (st == VKLLM_OK) {
        st = vkllm_context_create(model, &cp, &ctx);
        CHECK(st == VKLLM_OK, "%s: vkllm_context_create: %s", path, vkllm_last_error());
    }
    if (st != VKLLM_OK)
        goto out;
    ref_llama_set_n_ctx(ref, cp.n_ctx);

    uint32_t n_vocab = vkllm_model_n_vocab(model);
    gpu = malloc((size_t)n * n_vocab * sizeof *gpu);
    cpu = malloc((size_t)n * n_vocab * sizeof *cpu);
    tokens = malloc(n * sizeof *tokens);
    test_rng rng;
    rng_init(&rng, seed);
    for (uint32_t i = 0; i < n; i++)
        tokens[i] = (int32_t)(rng_u32(&rng) % n_vocab);
    if (vkllm_token_bos(model) >= 0)
        tokens[0] = vkllm_token_bos(model);
    for (size_t i = 0; i < (size_t)n * n_vocab; i++)
        gpu[i] = NAN; /* a row the GPU fails to produce shows as non-finite */

    /* GPU: the prompt in batches (matmul kernels), all rows of logits; then decode one token at a time
     * (the recorded matvec graph, replayed), keeping each step's logits. */
    st = vkllm_decode_all(ctx, tokens, n_prompt, gpu);
    CHECK(st == VKLLM_OK, "%s: decode_all: %s", path, vkllm_last_error());
    for (uint32_t i = n_prompt; i < n && st == VKLLM_OK; i++) {
        const float *logits;
        st = vkllm_decode(ctx, &tokens[i], 1, &logits);
        CHECK(st == VKLLM_OK, "%s: decode: %s", path, vkllm_last_error());
        if (st == VKLLM_OK)
            memcpy(gpu + (size_t)i * n_vocab, logits, n_vocab * sizeof *gpu);
    }
    /* CPU reference: all tokens at once. */
    st = ref_llama_forward(ref, tokens, n, 0, cpu);
    CHECK(st == VKLLM_OK, "%s: ref forward: %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        goto out;
    double worst = 0;
    for (uint32_t i = 0; i < n; i++) {
        double e = rel_l2(gpu + (size_t)i * n_vocab, cpu + (size_t)i * n_vocab, n_vocab);
        if (e > worst)
            worst = e;
        CHECK(e < tol, "%s: position %u (%s) logits differ from the CPU reference: rel L2 %.3g >= %.3g", path, i,
              i < n_prompt ? "batched prompt" : "decode", e, tol);
    }
    fprintf(stderr, "%s: %u positions, worst relative L2 error %.3g (tolerance %.3g)\n", path, n, worst, tol);
out:
    free(gpu);
    free(cpu);
    free(tokens);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    ref_llama_free(ref);
    vkl_gguf_close(f);
    return test_failures == failures_before;
}

bool forward_check_synth(const char *label, const synth_hparams *hp, uint32_t type, uint64_t seed, uint32_t n_prompt,
                         double tol)
{
    char path[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/forward-%s-%s-%d.gguf", tmp && *tmp ? tmp : "/tmp", label, vkl_ggml_type_name(type),
             (int)getpid());
    synth_options o = {.hp = hp, .type = type, .path = path, .seed = seed};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s %s: %s", label, vkl_ggml_type_name(type), vkr_last_error());
    bool ok = st == VKLLM_OK && forward_check(path, seed, n_prompt, 6, 8, tol);
    remove(path);
    return ok;
}

/* tests/pad_model.c: stories260K (width 64) zero-padded to width 256 computes the same function. The CPU
 * reference forward pass on both models must give identical logits (the padding argument in pad_model.h
 * makes every extra term an exact zero and the RMSNorm rescaling a power of two), and every matrix row of
 * the padded model must be a multiple of 256 wide, so that the K-quants apply without fallbacks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/gguf.h"
#include "pad_model.h"
#include "ref/ref_llama.h"
#include "util.h"

enum { N_TOKENS = 40 };

int main(void)
{
    const char *shared = test_shared_path("models/stories260K.gguf");
    if (!shared) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    char model[4096], path[4096];
    snprintf(model, sizeof model, "%s", shared);
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/pad_model-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());

    CHECK(pad_model_write(model, path, 256) == VKLLM_OK, "pad_model_write: %s", vkr_last_error());
    CHECK(pad_model_write(model, path, 100) != VKLLM_OK, "width 100 (not a multiple of the head size) accepted");
    gguf_file *fa = NULL, *fb = NULL;
    ref_llama *a = NULL, *b = NULL;
    if (vkl_gguf_open(model, &fa) != VKLLM_OK || ref_llama_load(fa, &a) != VKLLM_OK || vkl_gguf_open(path, &fb) != VKLLM_OK ||
        ref_llama_load(fb, &b) != VKLLM_OK) {
        fprintf(stderr, "FAIL: loading: %s\n", vkr_last_error());
        return 1;
    }
    const ref_llama_hparams *ha = ref_llama_get_hparams(a), *hb = ref_llama_get_hparams(b);
    CHECK(hb->n_embd == 256 && hb->n_ff == 256 && hb->n_head == 32 && hb->n_head_kv == 16 && hb->head_dim == 8,
          "padded hyper-parameters: embd %u ff %u heads %u/%u head_dim %u", hb->n_embd, hb->n_ff, hb->n_head,
          hb->n_head_kv, hb->head_dim);
    CHECK(hb->rms_eps == ha->rms_eps / 4, "epsilon %g, want %g", hb->rms_eps, ha->rms_eps / 4);
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(fb); i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(fb, i);
        CHECK(t->n_dims < 2 || t->ne[0] % 256 == 0, "%s: rows of %llu", t->name, (unsigned long long)t->ne[0]);
    }

    /* A token sequence long enough for attention over many positions. */
    int32_t tokens[N_TOKENS];
    test_rng rng;
    rng_init(&rng, test_seed());
    tokens[0] = 1;
    for (int i = 1; i < N_TOKENS; i++)
        tokens[i] = (int32_t)(rng_u32(&rng) % ha->n_vocab);
    size_t n = (size_t)N_TOKENS * ha->n_vocab;
    float *la = malloc(n * sizeof *la), *lb = malloc(n * sizeof *lb);
    CHECK(ref_llama_forward(a, tokens, N_TOKENS, 0, la) == VKLLM_OK, "forward: %s", vkr_last_error());
    CHECK(ref_llama_forward(b, tokens, N_TOKENS, 0, lb) == VKLLM_OK, "forward (padded): %s", vkr_last_error());
    size_t differ = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        differ += la[i] != lb[i];
        max_diff = fmax(max_diff, fabs((double)la[i] - lb[i]));
    }
    fprintf(stderr, "padded vs original logits: %zu of %zu differ, largest difference %g\n", differ, n, max_diff);
    CHECK(differ == 0, "the padded model's logits are not the original's");

    free(la);
    free(lb);
    ref_llama_free(a);
    ref_llama_free(b);
    vkl_gguf_close(fa);
    vkl_gguf_close(fb);
    remove(path);
    return test_finish("pad_model");
}

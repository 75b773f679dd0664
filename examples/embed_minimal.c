/* The smallest complete program on vkllm's C API (README: Library): load a GGUF model, read a prompt,
 * sample a continuation and print it as it comes.
 *
 *     embed_minimal MODEL.gguf ["PROMPT" [N_TOKENS]]
 *
 * Build against an installed vkllm with CMake (find_package(vkllm CONFIG), target vkllm::vkllm) or
 * pkg-config (cc embed_minimal.c $(pkg-config --cflags --libs vkllm)); README: Embedding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vkllm.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [\"PROMPT\" [N_TOKENS]]\n", argv[0]);
        return 1;
    }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    int n_predict = argc > 3 ? atoi(argv[3]) : 32;

    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_sampler *sampler = NULL;
    vkllm_detokenizer *detok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const float *logits;
    int ok = 0;

    /* NULL parameters: the defaults (best device, full context, temperature 0.8). */
    if (vkllm_model_load(argv[1], NULL, &model) != VKLLM_OK || vkllm_context_create(model, NULL, &ctx) != VKLLM_OK ||
        vkllm_sampler_create(model, NULL, &sampler) != VKLLM_OK || vkllm_detokenizer_create(model, &detok) != VKLLM_OK ||
        vkllm_tokenize(model, prompt, strlen(prompt), true, false, &ids, &n_ids) != VKLLM_OK ||
        vkllm_decode(ctx, ids, n_ids, &logits) != VKLLM_OK)   /* the whole prompt at once */
        goto done;

    const char *text;
    size_t len;
    for (size_t i = 0; i < n_ids; i++) {   /* echo the prompt through the detokenizer, BOS included */
        vkllm_sampler_accept(sampler, ids[i]);
        if (vkllm_detokenizer_push(detok, ids[i], &text, &len) != VKLLM_OK)
            goto done;
        fwrite(text, 1, len, stdout);
    }
    for (int i = 0; i < n_predict; i++) {
        int32_t next = vkllm_sampler_sample(sampler, logits);
        if (vkllm_token_is_eog(model, next))
            break;
        if (vkllm_detokenizer_push(detok, next, &text, &len) != VKLLM_OK)
            goto done;
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (vkllm_decode(ctx, &next, 1, &logits) != VKLLM_OK)   /* one token: replays the decode graph */
            goto done;
    }
    vkllm_detokenizer_flush(detok, &text, &len);
    fwrite(text, 1, len, stdout);
    putchar('\n');
    ok = 1;

done:
    if (!ok)
        fprintf(stderr, "embed_minimal: %s\n", vkllm_last_error());
    /* Everything made from the model goes before the model. */
    vkllm_free(ids);
    vkllm_detokenizer_free(detok);
    vkllm_sampler_free(sampler);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return ok ? 0 : 1;
}

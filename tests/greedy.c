/* See greedy.h. */
#include "greedy.h"

#include <stdio.h>
#include <string.h>

vkllm_status greedy_story(vkllm_model *m, uint32_t n_batch, size_t n_tokens, char *out, size_t cap)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 64;
    cp.n_batch = n_batch;
    vkllm_context *c = NULL;
    int32_t *prompt = NULL, ids[64];
    size_t n = 0;
    char *text = NULL;
    size_t len = 0;
    const float *logits = NULL;
    const char *p = "Once upon a time";
    if (n_tokens > 64)
        n_tokens = 64;
    vkllm_status st = vkllm_context_create(m, &cp, &c);
    if (st == VKLLM_OK)
        st = vkllm_tokenize(m, p, strlen(p), true, false, &prompt, &n);
    if (st == VKLLM_OK)
        st = vkllm_decode(c, prompt, n, &logits);
    if (st == VKLLM_OK)
        memcpy(ids, prompt, n * sizeof *ids);
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    while (st == VKLLM_OK && n < n_tokens) {
        int32_t best = 0;
        for (uint32_t i = 1; i < n_vocab; i++)
            if (logits[i] > logits[best])
                best = (int32_t)i;
        ids[n] = best;
        st = vkllm_decode(c, &ids[n++], 1, &logits);
    }
    if (st == VKLLM_OK)
        st = vkllm_detokenize(m, ids, n, &text, &len);
    if (st == VKLLM_OK)
        snprintf(out, cap, "%s", text);
    vkllm_free(text);
    vkllm_free(prompt);
    vkllm_context_free(c);
    return st;
}

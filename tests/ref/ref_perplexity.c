/* Perplexity from the CPU reference forward pass (see ref_perplexity.h). */
#include "ref/ref_perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ref_perplexity(ref_llama *m, const int32_t *ids, size_t n_ids, uint32_t n_ctx, int32_t bos, size_t *count)
{
    uint32_t n_vocab = ref_llama_n_vocab(m);
    int32_t *tokens = malloc(n_ctx * sizeof *tokens);
    float *logits = malloc((size_t)n_ctx * n_vocab * sizeof *logits);
    double total = 0;
    bool ok = tokens && logits;
    *count = 0;
    for (size_t w = 0; ok && w < n_ids / n_ctx; w++) {
        const int32_t *window = ids + w * n_ctx;
        memcpy(tokens, window, n_ctx * sizeof *tokens);
        tokens[0] = bos;
        ok = ref_llama_forward(m, tokens, n_ctx, 0, logits) == VKLLM_OK;
        for (uint32_t j = n_ctx / 2; ok && j + 1 < n_ctx; j++) {
            const float *l = logits + (size_t)j * n_vocab;
            double mx = l[0], sum = 0;
            for (uint32_t v = 1; v < n_vocab; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (uint32_t v = 0; v < n_vocab; v++)
                sum += exp(l[v] - mx);
            total += log(sum) - (l[window[j + 1]] - mx);
            (*count)++;
        }
    }
    free(tokens);
    free(logits);
    return ok && *count ? exp(total / (double)*count) : -1.0;
}

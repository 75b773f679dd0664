/* Perplexity from the CPU reference forward pass, scored the way `vkllm perplexity` scores it: the token
 * stream is cut into windows of n_ctx tokens, each window's first token is replaced by BOS, and the
 * second half of each window is scored (each token predicted from at least n_ctx/2 before it). */
#ifndef VKLLM_REF_PERPLEXITY_H
#define VKLLM_REF_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

#include "ref/ref_llama.h"

/* exp(mean negative log-likelihood) over the scored tokens of the n_ids / n_ctx whole windows; writes the
 * number of scored tokens to *count. Returns a negative value (message via vkr_last_error) on failure. */
double ref_perplexity(ref_llama *m, const int32_t *ids, size_t n_ids, uint32_t n_ctx, int32_t bos, size_t *count);

#endif

/* Error-minimising quantizers: for `vkllm quantize`, where quality matters more than speed (the simple
 * round-to-nearest vkl_quantize_row in host/format/quant.h is for synthetic test data).
 *
 * Every (sub-)block's scale (and, for the affine types, its offset) is chosen by a search that minimises
 * the block's squared error sum (x_i - dequant_i)^2 with uniform weights: the tests and the perplexity
 * round trips measure exactly that, and without activation statistics (an importance matrix) there is
 * no better-founded weighting of one weight against another. The super-block formats then quantize their
 * sub-block scales and mins against a super-block scale and re-pick each sub-block's integer scale (and
 * min) among its rounded value's neighbours, re-rounding the quants for each choice. */
#ifndef VKLLM_QUANTIZE_H
#define VKLLM_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

/* True for the types vkl_quantize_row_search writes: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS. */
bool vkl_quantize_search_supported(uint32_t type);

/* Quantizes n floats (a multiple of the type's block size) into GGUF layout. Finite input gives finite
 * dequantized output (scales are clamped to the f16 range); thread-safe. */
void vkl_quantize_row_search(uint32_t type, const float *src, void *dst, uint64_t n);

#endif

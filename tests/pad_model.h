/* Zero-padding a Llama model to a wider one with exactly the same function (test helper).
 *
 * The embedding width d grows to D and the FFN width to D; heads keep their size and their number grows
 * with the width (the GQA ratio is kept, so original head h still reads KV head h / ratio). The new rows
 * and columns of every matrix are zero, so the new embedding dimensions stay zero through the residual
 * stream, the new heads and FFN units output zero and their outputs are multiplied by zero columns.
 * RMSNorm averages over D instead of d: with the new components zero, mean_D(x^2) = (d/D) mean_d(x^2),
 * so with eps' = eps d/D the normaliser 1/sqrt(mean_D + eps') is sqrt(D/d) times the original one, and
 * norm weights g' = g sqrt(d/D) undo that (for d = 64, D = 256: eps/4 and g/2, both exact in binary).
 * The result is a wider model whose rows are a multiple of 256 (every K-quant applies) and whose logits
 * equal the original's. */
#ifndef VKLLM_TEST_PAD_MODEL_H
#define VKLLM_TEST_PAD_MODEL_H

#include <stdint.h>

#include "runtime/error.h"

/* Reads an F32 llama GGUF at in_path and writes the model padded to width `width` (a multiple of the head
 * size, at least the embedding and FFN widths) at out_path. */
vkllm_status pad_model_write(const char *in_path, const char *out_path, uint32_t width);

#endif

/* Shared by the forward-pass tests: runs a GGUF model through vkllm's public API (batched prompt, then
 * token-by-token decode replays) and through the CPU reference (tests/ref/ref_llama.c), and compares the
 * logits of every position. */
#ifndef VKLLM_FORWARD_CHECK_H
#define VKLLM_FORWARD_CHECK_H

#include <stdbool.h>
#include <stdint.h>

/* Returns false (after CHECK failures) if any row differs by more than `tol` (relative L2). */
bool forward_check(const char *path, uint64_t seed, uint32_t n_prompt, uint32_t n_decode, uint32_t n_batch, double tol);

#endif

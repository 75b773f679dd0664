/* Shared by the forward-pass tests: runs a GGUF model through vkllm's public API (batched prompt, then
 * token-by-token decode replays) and through the CPU reference (tests/ref/ref_llama.c), and compares the
 * logits of every position. */
#ifndef VKLLM_FORWARD_CHECK_H
#define VKLLM_FORWARD_CHECK_H

#include <stdbool.h>
#include <stdint.h>

/* Returns false (after CHECK failures) if any row differs by more than `tol` (relative L2). */
bool forward_check(const char *path, uint64_t seed, uint32_t n_prompt, uint32_t n_decode, uint32_t n_batch, double tol);

struct synth_hparams;
/* Writes a synthetic model (host/tools/synth.h) of `type` weights to $VKLLM_TEST_TMP (or /tmp), runs forward_check on
 * it (n_prompt prompt tokens in batches of 8, then 6 decode steps) and removes it. */
bool forward_check_synth(const char *label, const struct synth_hparams *hp, uint32_t type, uint64_t seed,
                         uint32_t n_prompt, double tol);

#endif

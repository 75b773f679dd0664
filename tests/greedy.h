/* The stories260K greedy story through the public API: the text every embedding test compares. */
#ifndef VKLLM_TEST_GREEDY_H
#define VKLLM_TEST_GREEDY_H

#include <stddef.h>

#include "vkllm.h"

/* Its start (tests/cli_run.sh's golden text). */
#define GREEDY_STORY_START "Once upon a time, there was a little girl named Lily"

/* Greedy continuation of "Once upon a time" to n_tokens tokens (at most 64) on a fresh context with
 * n_batch (0: the default); the text into out (truncated to cap). */
vkllm_status greedy_story(vkllm_model *m, uint32_t n_batch, size_t n_tokens, char *out, size_t cap);

#endif

/* Token sampler: picks the next token from a row of logits.
 *
 * Order of operations (as llama.cpp's default chain):
 *   repetition penalty -> (greedy if temperature <= 0) -> top-k -> top-p -> min-p -> temperature -> softmax
 *   -> draw with the sampler's own PRNG.
 * top-p and min-p look at the probabilities before temperature is applied. Everything is preallocated in
 * vkl_sampler_create: sampling allocates nothing. A sampler is not thread-safe (one per generation stream);
 * for a given seed, params and sequence of logits/accepted tokens it is fully reproducible. */
#ifndef VKLLM_SAMPLER_H
#define VKLLM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct sampler_params {
    float temperature;     /* <= 0: greedy (argmax, after the repetition penalty) */
    int32_t top_k;         /* keep the k most likely tokens; <= 0 (or >= n_vocab): off */
    float top_p;           /* keep the smallest set of most likely tokens with probability >= top_p; >= 1: off */
    float min_p;           /* keep tokens with probability >= min_p * that of the most likely; <= 0: off */
    float repeat_penalty;  /* tokens among the last repeat_last_n accepted ones: a positive logit is divided by
                              it, a negative one multiplied (once per distinct token); 1: off */
    int32_t repeat_last_n; /* history length the penalty looks at; 0: off */
    uint64_t seed;         /* PRNG seed (every value, 0 included, is a valid seed) */
} sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1.0 (off), repeat_last_n 64, seed 0. */
sampler_params vkl_sampler_default_params(void);

typedef struct sampler sampler;

/* params NULL: the defaults. VKLLM_ERR_INVALID_ARGUMENT for n_vocab <= 0, NaN parameters,
 * repeat_penalty <= 0 or not finite, repeat_last_n < 0 or > 1<<20. */
vkllm_status vkl_sampler_create(const sampler_params *params, int32_t n_vocab, sampler **out);
void vkl_sampler_free(sampler *s);

/* Picks a token from logits[0..n_vocab). The array may be modified (the penalty is applied in place).
 * NaN logits count as -inf; if every logit is -inf/NaN, returns the lowest id. Among equal maxima greedy picks
 * the lowest id. Returns -1 only for NULL arguments (message stored). */
int32_t vkl_sampler_sample(sampler *s, float *logits);

/* Records a token in the history used by the repetition penalty (ids out of range are ignored). Call it for
 * the prompt's tokens too if they should be penalized. */
void vkl_sampler_accept(sampler *s, int32_t id);

/* Forgets the history and restarts the PRNG from params.seed (the next samples repeat a fresh sampler's). */
void vkl_sampler_reset(sampler *s);

#endif

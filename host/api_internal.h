/* What tests and the tool may ask of a public model object beyond include/vkllm.h. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "host/model/llama.h"
#include "runtime/device.h"
#include "vkllm.h"

/* The device the model runs on (features chosen, memory use). */
vkr_device *vkl_api_model_device(const vkllm_model *m);

/* What host/state.c needs of a context. */
llama_context *vkl_api_context_llama(vkllm_context *c);
const llama_model *vkl_api_context_model(const vkllm_context *c);
vkllm_status vkl_api_context_check_idle(const vkllm_context *c);   /* VKLLM_ERR_BUSY with a decode in flight */
void vkl_api_context_set_position(vkllm_context *c, uint32_t pos);

/* What host/api_batch.c needs: the sequences' next positions and gaps (n_seq entries each), the rows'
 * positions of sequences with a gap (n_seq x n_ctx; NULL with one sequence), its per-context state (freed
 * with the context by vkl_api_batch_free) and the abort callback's answer. */
struct api_batch;
uint32_t vkl_api_context_n_seq(const vkllm_context *c);
uint32_t *vkl_api_context_seq_pos(vkllm_context *c);
uint32_t *vkl_api_context_seq_gap(vkllm_context *c);
uint32_t *vkl_api_context_row_pos(vkllm_context *c);
struct api_batch **vkl_api_context_batch(vkllm_context *c);
bool vkl_api_context_aborted(const vkllm_context *c);
void vkl_api_batch_free(struct api_batch *b);
/* Drops the positions >= pos of sequence s (host only: later rows are overwritten before they are read). */
void vkl_api_seq_keep_below(vkllm_context *c, uint32_t s, uint32_t pos);
/* Sequence s lacks positions before its last (vkllm_seq_rm of a middle range). */
bool vkl_api_seq_has_gap(vkllm_context *c, uint32_t s);

#endif

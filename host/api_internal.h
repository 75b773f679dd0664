/* What tests and the tool may ask of a public model object beyond include/vkllm.h. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "host/llama.h"
#include "runtime/device.h"
#include "vkllm.h"

/* The device the model runs on (features chosen, memory use). */
vkr_device *api_model_device(const vkllm_model *m);

/* What host/state.c needs of a context. */
llama_context *api_context_llama(vkllm_context *c);
const llama_model *api_context_model(const vkllm_context *c);
vkllm_status api_context_check_idle(const vkllm_context *c);   /* VKLLM_ERR_BUSY with a decode in flight */
void api_context_set_position(vkllm_context *c, uint32_t pos);

#endif

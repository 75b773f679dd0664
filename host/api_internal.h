/* What tests and the tool may ask of a public model object beyond include/vkllm.h. */
#ifndef VKLLM_API_INTERNAL_H
#define VKLLM_API_INTERNAL_H

#include "runtime/device.h"
#include "vkllm.h"

/* The device the model runs on (features chosen, memory use). */
vkr_device *api_model_device(const vkllm_model *m);

#endif

/* CPU-side number formats: f16 conversion, dequantization of GGUF blocks, quantization (for synth),
 * and the device layout of quantized weights (see vk_tensor in host/tensor.h). */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/ggml_types.h"

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);   /* round to nearest even, handles inf/nan/subnormals */

/* Name ("f32", "f16", "q4_0", "q8_0") or NULL for a type we do not support. */
const char *ggml_type_name(uint32_t type);
/* Name of any type GGUF defines ("q4_K", "bf16", ...), supported or not, for messages; NULL if unknown. */
const char *ggml_type_label(uint32_t type);
/* Parses a name as above; returns false if unknown. */
bool ggml_type_from_name(const char *name, uint32_t *type);
/* Elements per block (1 for f32/f16) and bytes per block; 0 for unsupported types. */
uint32_t ggml_block_size(uint32_t type);
uint32_t ggml_block_bytes(uint32_t type);
/* Bytes of a row of n elements (n must be a multiple of the block size), 0 if not representable. */
uint64_t ggml_row_bytes(uint32_t type, uint64_t n);

/* Dequantizes n elements (multiple of the block size) from GGUF layout into f32. */
void dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);
/* Quantizes n floats into GGUF layout, as ggml's reference quantizers do
 * (Q8_0: d = amax/127, q = round(x/d); Q4_0: d = max/-8 of the signed max-magnitude value, q = min(15, (int)(x/d + 8.5))). */
void quantize_row(uint32_t type, const float *src, void *dst, uint64_t n);

#endif

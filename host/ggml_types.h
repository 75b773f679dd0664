/* Tensor element types, numbered as GGUF/ggml number them. */
#ifndef VKLLM_GGML_TYPES_H
#define VKLLM_GGML_TYPES_H

#include <stdint.h>

enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q8_0 = 8,
};

#define QK4_0 32   /* Q4_0 block: f16 d, 16 bytes of nibbles; value = (q - 8) * d; low nibbles are elements 0..15 */
#define QK8_0 32   /* Q8_0 block: f16 d, 32 int8; value = q * d */

#endif

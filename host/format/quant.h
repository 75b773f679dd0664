/* CPU-side number formats: f16/bf16 conversion, the weight-type table (names, block sizes, device layout),
 * dequantization of GGUF blocks, and simple round-to-nearest quantizers (for synth and tests). */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/format/ggml_types.h"

float vkl_fp16_to_fp32(uint16_t h);
uint16_t vkl_fp32_to_fp16(float f);   /* round to nearest even, handles inf/nan/subnormals */
float vkl_bf16_to_fp32(uint16_t h);   /* bf16 is the top 16 bits of an f32 */
uint16_t vkl_fp32_to_bf16(float f);   /* round to nearest even; NaN stays NaN */

/* One weight type vkllm reads. Device layout (host/ops/tensor.h): bytes [qs_start, qs_start + qs_bytes) of each
 * GGUF block go to the quants region; the other bytes of the block, in order (those before the range, then
 * those after), zero-padded to meta_bytes, go to the meta region. meta_bytes is 2 where the rest is exactly
 * one f16 scale, else the rest rounded up to a multiple of 4. F32/F16/BF16 (block 1, meta_bytes 0) are
 * stored as they are. */
typedef struct ggml_type_info {
    uint32_t id;              /* GGML_TYPE_* */
    const char *name;         /* as GGUF labels it: "q4_K", "iq4_xs", "bf16" */
    uint32_t block;           /* elements per block (1 for f32/f16/bf16) */
    uint32_t block_bytes;     /* GGUF bytes per block */
    bool kernels;             /* vkllm's device kernels (matmul, get_rows) run it */
    uint32_t qs_start, qs_bytes, meta_bytes;
    /* For rows that are not a multiple of `block` (256-element types), the 32-element type current llama-quantize
     * uses instead (q2_K, q3_K -> q4_0; iq4_xs and the IQ grid types -> iq4_nl; q4_K -> q5_0; q5_K -> q5_1;
     * q6_K -> q8_0); else the
     * type. The one rule for synth and quantize. */
    uint32_t fallback;
    uint32_t file_type;       /* general.file_type of a file of mostly this type (LLAMA_FTYPE_*, the _S mix for
                               * K-quants) */
} ggml_type_info;

/* The lattice grid of an IQ grid type (IQ2_XXS .. IQ1_M: shaders/iq_grids.glsl, also what vkl_dequantize_row
 * reads), which its kernels read from one more storage buffer binding after their others (shaders/dequant.glsl's
 * DQ_GRID_BINDING; the device's copy: vkr_constant_buffer). NULL (and *bytes 0) for the other types. */
const uint32_t *vkl_ggml_type_grid(uint32_t type, uint32_t *bytes);

/* IQ4_NL's 16 non-linear levels (x = d * level[nibble]); IQ4_XS uses them too (a property of the format). */
extern const int8_t vkl_iq4_levels[16];

/* The table entry of a type, or NULL for a type vkllm does not read. */
const ggml_type_info *vkl_ggml_type_get(uint32_t type);
/* The table in order, for listing or iterating: entries 0 .. vkl_ggml_type_count() - 1. */
size_t vkl_ggml_type_count(void);
const ggml_type_info *vkl_ggml_type_at(size_t i);

/* Name of a general.file_type value as llama.cpp calls its mixes ("Q4_K_M" for 15, "F16" for 1), NULL if unknown. */
const char *vkl_ggml_file_type_name(uint32_t file_type);

/* Writes the table's names, "f32, f16, bf16, q4_0, ...", into buf (truncated to size; for usage messages). */
void vkl_ggml_type_list_names(char *buf, size_t size);

/* Name as in the table ("q4_K") or NULL for a type we do not read. */
const char *vkl_ggml_type_name(uint32_t type);
/* Name of any type GGUF defines ("q4_K", "bf16", ...), read or not, for messages; NULL if unknown. */
const char *vkl_ggml_type_label(uint32_t type);
/* Parses a table name, case-insensitively ("q4_K" or "q4_k"); returns false if unknown. */
bool vkl_ggml_type_from_name(const char *name, uint32_t *type);
/* Elements per block (1 for f32/f16/bf16) and bytes per block; 0 for types we do not read. */
uint32_t vkl_ggml_block_size(uint32_t type);
uint32_t vkl_ggml_block_bytes(uint32_t type);
/* Bytes of a row of n elements (n must be a multiple of the block size), 0 if not representable. */
uint64_t vkl_ggml_row_bytes(uint32_t type, uint64_t n);

/* Dequantizes n elements (multiple of the block size) from GGUF layout into f32. */
void vkl_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);
/* Whether vkl_quantize_row writes the type: all but the IQ grid types (IQ2_XXS .. IQ1_M), which vkllm reads only. */
bool vkl_ggml_type_can_quantize(uint32_t type);
/* For synth and tests, a block of a type without a quantizer made from random bytes: sets the block scale (the
 * f16 d; IQ1_M's is spread over its sub-block scales) so that the values' root mean square is about rms (f16
 * rounding), every other field as it is. Any bytes are a valid block once the scale is finite. */
void vkl_ggml_block_set_rms(uint32_t type, uint8_t *block, float rms);
/* Quantizes n floats into GGUF layout with round-to-nearest and one scale choice per (sub)block (not the
 * error-minimising search): the value of largest magnitude maps to the end of the signed range
 * (Q8_0: d = amax/127; Q4_0: d = max/-8, q = min(15, (int)(x/d + 8.5))), min/max for the types with
 * a minimum; K-quant sub-block scales are then quantized against the largest one. A type without a quantizer
 * (vkl_ggml_type_can_quantize) gets zeros. */
void vkl_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n);

#endif

/* CPU references for vkl_op_matmul and vkl_op_get_rows: the weights are dequantized from the very same GGUF
 * blocks that are uploaded (host/format/quant.h vkl_dequantize_row), dot products are accumulated in double. */
#ifndef VKLLM_REF_MATMUL_H
#define VKLLM_REF_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of ne1 rows of ne0 elements of `type` in GGUF layout (0 if unsupported/not representable). */
size_t ref_tensor_bytes(uint32_t type, uint64_t ne0, uint64_t ne1);

/* Encodes ne1 rows of ne0 floats into GGUF layout (F32 copy, F16 round-to-nearest-even, quantized types with
 * the reference quantizers, host/format/quant.h vkl_quantize_row; the IQ grid types, which have none, with blocks that
 * depend on the source but do not approximate it: only their block's largest magnitude follows the source's).
 * dst must hold ref_tensor_bytes(type, ne0, ne1). */
void ref_encode(uint32_t type, const float *src, uint64_t ne0, uint64_t ne1, void *dst);

/* Decodes ne1 GGUF rows of ne0 elements into floats. */
void ref_decode(uint32_t type, const void *src, uint64_t ne0, uint64_t ne1, float *dst);

/* The inverse of the upload's repacking (host/ops/tensor.h): rebuilds n_blocks GGUF blocks of `type` from the
 * device layout's quants region qs and meta region meta (n_blocks * meta_bytes bytes; unused for F32/F16/BF16,
 * whose n_blocks "blocks" are single elements) and dequantizes them into dst. */
void ref_decode_device(uint32_t type, const void *qs, const void *meta, uint64_t n_blocks, float *dst);

/* y[n][m] = sum_k w[m][k] * x[n][k] (w: M rows of K floats, x: N rows of K floats), in double. */
void ref_matmul_f32(const float *w, const float *x, float *y, uint64_t K, uint64_t M, uint64_t N);

/* out[i][:] = row ids[i] of the decoded table (M rows of K), zeros for ids >= M. */
void ref_get_rows(uint32_t type, const void *table, uint64_t K, uint64_t M, const uint32_t *ids, uint64_t n,
                  float *out);

#endif

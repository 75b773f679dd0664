/* CPU references for the kernels of host/ops/ops_misc.c and host/ops/ops_attention.c (sums in double), and the
 * small device helpers their tests share (buffers with poisoned outputs, views, one-graph runs). */
#ifndef VKLLM_REF_OPS_H
#define VKLLM_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/ops/ops.h"

/* ---- References ---- */

/* out[r][i] = x[r][i] / sqrt(mean(x[r]^2) + eps) * w[i]. */
void ref_rmsnorm(const float *x, const float *w, float *out, uint32_t n_rows, uint32_t dim, float eps);

/* In place on x[n_rows][n_heads][head_dim]: pair i < n_rot/2 ((2i, 2i+1), or (i, i + n_rot/2) when neox)
 * turns by positions[r] * theta_base^(-2i/n_rot) / freq_factors[i] (freq_factors may be NULL). */
void ref_rope(float *x, const uint32_t *positions, uint32_t n_rows, uint32_t n_heads, uint32_t head_dim,
              uint32_t n_rot, float theta_base, bool neox, const float *freq_factors);

/* out[r][c] = softmax_c(x[r][c] * scale); when causal, columns c > causal_offset + r are 0. */
void ref_softmax(const float *x, float *out, uint32_t n_rows, uint32_t n_cols, float scale, bool causal,
                 uint32_t causal_offset);

void ref_silu_mul(const float *gate, const float *up, float *out, size_t n);
/* out = gelu(gate) * up, GELU in its tanh approximation. */
void ref_gelu_mul(const float *gate, const float *up, float *out, size_t n);
void ref_add(const float *a, const float *b, float *out, size_t n);

/* f16 round to nearest even (host/format/quant.h's conversion). */
uint16_t ref_f16_bits(float x);
float ref_f16_value(uint16_t h);

/* Caches of f16 bits [n_ctx][kv_dim]: row positions[r] = f16(k[r]), f16(v[r]); positions >= n_ctx skipped. */
void ref_kv_store(const float *k, const float *v, uint16_t *k_cache, uint16_t *v_cache, const uint32_t *positions,
                  uint32_t n_rows, uint32_t kv_dim, uint32_t n_ctx);

/* out[r][h][:] = sum_{j <= min(positions[r], n_ctx-1)} softmax_j(cap(scale * q[r][h] . K[j][h/group])) V[j][h/group],
 * with K, V the f16 caches above; window > 0: only the last `window` of those j; cap(s) = softcap * tanh(s /
 * softcap), or s when softcap is 0. */
void ref_attention(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, const uint32_t *positions,
                   float *out, uint32_t n_rows, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                   uint32_t n_ctx, float scale, uint32_t window, float softcap);

/* ---- Device helpers for the op tests (failures are counted with CHECK and reported) ---- */

#define OPT_POISON 0x7fc00000u   /* a NaN: any element a kernel fails to write fails the comparison */

/* A device-local buffer of `bytes`, filled with OPT_POISON; NULL on failure. */
vkr_buffer *opt_buffer(vkr_device *dev, size_t bytes);
bool opt_upload(vkr_device *dev, vkr_buffer *buf, size_t offset, const void *src, size_t bytes);
bool opt_download(vkr_device *dev, vkr_buffer *buf, size_t offset, void *dst, size_t bytes);
bool opt_poison(vkr_device *dev, vkr_buffer *buf);
/* Number of 32-bit words in [0, offset) and [offset + bytes, size) of buf that are not OPT_POISON
 * (writes outside a kernel's output range). */
size_t opt_count_outside(vkr_device *dev, vkr_buffer *buf, size_t offset, size_t bytes);
/* The same over a whole buffer already downloaded: `all` holds `size` bytes. */
size_t opt_count_outside_host(const void *all, size_t size, size_t offset, size_t bytes);

/* An f32 vk_tensor view of n floats at `offset` of buf (not owned: do not vkl_tensor_free it). */
vk_tensor opt_f32_tensor(vkr_buffer *buf, size_t offset, uint64_t n);

/* A byte offset that is a multiple of the device's storage-buffer offset alignment (k alignments). */
size_t opt_aligned(const vkr_device *dev, uint32_t k);

/* Prints the first few mismatches (|a - ref| > atol + rtol*|ref|), returns how many there are. */
size_t opt_report_mismatches(const char *what, const float *a, const float *ref, size_t n, double atol,
                             double rtol);

#endif

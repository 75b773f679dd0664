/* The LLM kernels, as graph dispatches: each op_* appends one or more dispatches to a vkr_graph.
 * Activations are f32 arrays in device buffers, addressed by (buffer, byte offset) views; the offset
 * must be a multiple of 4 (ops bind at the device's minStorageBufferOffsetAlignment below it and pass
 * the remainder to the shader). Values that change between
 * replays of a recorded graph (token positions) are read from buffers, so decode can be replayed. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include "runtime/graph.h"
#include "host/ops/tensor.h"

typedef struct vk_view {
    vkr_buffer *buf;
    VkDeviceSize offset;      /* bytes */
} vk_view;

static inline vk_view vk_view_of(vkr_buffer *buf, VkDeviceSize offset)
{
    vk_view v = {buf, offset};
    return v;
}

/* Y[n][m] = sum_k W[m][k] * X[n][k] for n < n_cols: X is n_cols rows of K = W->ne[0] floats, Y is
 * n_cols rows of M = W->ne[1] floats. n_cols == 1 uses the matvec kernel (decode), more the matmul kernel. */
vkllm_status vkl_op_matmul(vkr_graph *g, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols);

/* out = x as f16 (round to nearest or toward zero, as the device converts; beyond the f16 range: infinities or
 * the largest half): n_cols columns of K floats to columns of K rounded up to 8 halves, the padding halves zero
 * (the cooperative-matrix matmul's input, converted once per product). out's offset is a multiple of 16. */
vkllm_status vkl_op_to_f16(vkr_graph *g, vk_view x, vk_view out, uint32_t K, uint32_t n_cols);

/* The prompt matmul's kernel on a device whose cooperative matrices are usable (enabled, with a subgroup size the
 * kernel can run with): with VKLLM_COOPMAT set (forced) or once the device's self-check passed (check > 0), the
 * cooperative-matrix kernel; after it failed (check < 0), the tiled one; before it ran, run it first. */
typedef enum vkl_coopmat_choice { VKL_COOPMAT_TILED, VKL_COOPMAT_USE, VKL_COOPMAT_RUN_CHECK } vkl_coopmat_choice;
vkl_coopmat_choice vkl_coopmat_decide(bool usable, bool forced, int check);
/* The self-check (vkl_op_matmul runs it once per device, dev->coopmat_check): a small seeded F32 matmul on the
 * cooperative-matrix kernel against the tiled kernel; *pass when all finite and the relative L2 difference
 * (*rel_err) is within the kernel's tolerance. An error status when it could not run. */
vkllm_status vkl_coopmat_self_check(vkr_device *dev, bool *pass, double *rel_err);

/* Whether vkl_op_matmul, vkl_op_matmul_fused and vkl_op_get_rows have kernels for a weight type (GGML_TYPE_*). */
bool vkl_op_weight_type_supported(uint32_t type);

/* What a matvec can do besides y = W x in the same dispatch (see shaders/matvec.comp); each fusion removes a
 * dispatch and a barrier from a decode step. */
typedef struct vk_matmul_fusion {
    const vk_tensor *norm;    /* x -> rmsnorm(x) * norm (f32, K elements) with `eps`: the matmul of vkl_op_rmsnorm's
                               * output, without writing it */
    float eps;
    bool glu;                 /* W holds 2M rows, [gate; up]: y (M rows per column) = silu(W_gate x) * (W_up x),
                               * as vkl_op_silu_mul on the stacked output */
    bool gelu;                /* with glu: GELU-tanh instead of SiLU, as vkl_op_gelu_mul */
    bool accumulate;          /* y += W x (the residual add; y must not overlap x) */
    const struct vk_qkv_store *qkv;   /* the Q;K;V epilogue: rope and the KV-cache store (below; not with glu or
                                       * accumulate) */
} vk_matmul_fusion;

/* vkl_op_matmul with fusions. Where this device's kernel for n_cols columns cannot fuse (CPU devices, more
 * columns than the matvec takes, a GLU weight larger than one binding, a Q;K;V epilogue it cannot do), nothing
 * is recorded and *fused is false: the caller then runs the separate ops. */
vkllm_status vkl_op_matmul_fused(vkr_graph *g, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols,
                             const vk_matmul_fusion *f, bool *fused);

/* out[i][:] = dequantized row ids[i] of `table`, for i < n (ids are uint32 in a buffer). */
vkllm_status vkl_op_get_rows(vkr_graph *g, const vk_tensor *table, vk_view ids, vk_view out, uint32_t n);

/* out[r][:] = x[r][:] / sqrt(mean(x[r]^2) + eps) * weight[:] (weight: f32 tensor of dim elements). */
vkllm_status vkl_op_rmsnorm(vkr_graph *g, vk_view x, const vk_tensor *weight, vk_view out, uint32_t n_rows,
                        uint32_t dim, float eps);

typedef enum vk_rope_mode {
    VK_ROPE_INTERLEAVED = 0,   /* pairs (2i, 2i+1): Llama GGUF weights */
    VK_ROPE_NEOX = 2,          /* pairs (i, i + n_rot/2) */
} vk_rope_mode;

typedef struct vk_rope_params {
    uint32_t n_rows;          /* tokens */
    uint32_t n_heads;
    uint32_t head_dim;        /* row stride of a head, in floats */
    uint32_t n_rot;           /* rotated dims (<= head_dim); the rest pass through */
    float theta_base;         /* e.g. 10000 or 500000 */
    vk_rope_mode mode;
    const vk_tensor *freq_factors;  /* optional f32[n_rot/2] (Llama 3.1 rope_freqs): theta_i /= factor_i */
    float mscale;             /* vkl_op_rope_kv_store_heads: cos and sin times this (YaRN, LongRoPE); 0 is taken as 1 */
} vk_rope_params;

/* In place on x: n_rows x n_heads x head_dim floats; row r is at position positions[r] (uint32 buffer). */
vkllm_status vkl_op_rope(vkr_graph *g, vk_view x, vk_view positions, const vk_rope_params *p);

/* out[r][c] = softmax over c of (x[r][c] * scale), with c > positions_offset + r masked out when causal. */
vkllm_status vkl_op_softmax(vkr_graph *g, vk_view x, vk_view out, uint32_t n_rows, uint32_t n_cols, float scale,
                        bool causal, uint32_t causal_offset);

/* out[r][:] += x[r][:] / sqrt(mean(x[r]^2) + eps) * weight[:] (out must not overlap x): a block's output,
 * normed, added to the residual stream (Gemma's post-attention and post-FFN norms). */
vkllm_status vkl_op_rmsnorm_add(vkr_graph *g, vk_view x, const vk_tensor *weight, vk_view out, uint32_t n_rows,
                            uint32_t dim, float eps);

/* out[i] = silu(gate[i]) * up[i] for i < n. */
vkllm_status vkl_op_silu_mul(vkr_graph *g, vk_view gate, vk_view up, vk_view out, uint32_t n);

/* out[i] = gelu(gate[i]) * up[i] for i < n, GELU in its tanh approximation. */
vkllm_status vkl_op_gelu_mul(vkr_graph *g, vk_view gate, vk_view up, vk_view out, uint32_t n);

/* In place on x[0..n): x * a. */
vkllm_status vkl_op_scale(vkr_graph *g, vk_view x, uint32_t n, float a);

/* In place on x[0..n): cap * tanh(x / cap) (logit soft-capping; cap > 0). */
vkllm_status vkl_op_softcap(vkr_graph *g, vk_view x, uint32_t n, float cap);

/* out[i] = a[i] + b[i] for i < n (out may alias a). */
vkllm_status vkl_op_add(vkr_graph *g, vk_view a, vk_view b, vk_view out, uint32_t n);

/* KV cache: f16, [n_ctx][n_kv_heads * head_dim] per layer for K and for V. */
typedef struct vk_attention_params {
    uint32_t n_rows;          /* query rows (tokens) */
    uint32_t n_heads;         /* query heads */
    uint32_t n_kv_heads;      /* grouped-query: head h uses kv head h / (n_heads / n_kv_heads) */
    uint32_t head_dim;
    uint32_t n_ctx;           /* cache rows */
    float scale;              /* usually 1/sqrt(head_dim) */
    /* Flash decoding (vkl_op_attention only): with n_split > 1, each (row, head) is spread over n_split
     * workgroups that each take a part of the cache rows, then merged; scratch must hold
     * n_rows * n_heads * n_split * (head_dim + 2) floats. Worth it for few rows over long contexts.
     * A part takes at least split_min_rows cache rows (0: ATTN_SPLIT_MIN_ROWS), so a short cache uses
     * fewer parts: one graph recorded with n_split parts serves every decode position. */
    uint32_t n_split;
    uint32_t split_min_rows;
    vk_view scratch;
    uint32_t window;          /* > 0: row r sees only cache rows > positions[r] - window (sliding window) */
    float softcap;            /* > 0: scores s -> softcap * tanh(s / softcap) */
    /* The cache is a ring of n_ctx rows, position p in row p % n_ctx (a sliding-window layer's cache sized to
     * window + the rows of a batch - 1); needs 0 < window <= n_ctx; stored by vkl_op_rope_kv_store_heads only.
     * With row_base too, one ring of ring_rows rows per sequence (n_ctx a multiple of ring_rows): sequence
     * base[r] / seq_rows (the bases are those of caches of seq_rows rows per sequence) keeps position p in
     * row sequence * ring_rows + p % ring_rows; its rows must equal its positions (no removed positions). */
    bool ring;
    uint32_t ring_rows, seq_rows;
    /* Several sequences in one cache: `positions` holds n_rows positions, then n_rows base
     * rows, then n_rows rows within the sequences (seq_row[r] == positions[r] unless positions were removed
     * before it); row r's K/V go to cache row base[r] + seq_row[r], and its attention sees cache rows
     * base[r] .. base[r] + seq_row[r] only (its own sequence's), rope turning by positions[r]. */
    bool row_base;
} vk_attention_params;

/* Writes k/v rows (f32, n_rows x n_kv_heads*head_dim) into cache row positions[r], converted to f16. */
vkllm_status vkl_op_kv_store(vkr_graph *g, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                         vk_view positions, const vk_attention_params *p);

/* The same, rotating K first (rope->mode must be VK_ROPE_INTERLEAVED, rope->n_heads == n_kv_heads): equal
 * to vkl_op_rope on k followed by vkl_op_kv_store, in one dispatch that leaves k itself unchanged. If q.buf is set,
 * q (n_rows x n_heads*head_dim) is also rotated in place, as vkl_op_rope with the same parameters over the
 * p->n_heads query heads would: the whole of a decode step's rope in one dispatch. */
vkllm_status vkl_op_rope_kv_store(vkr_graph *g, vk_view q, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                              vk_view positions, const vk_rope_params *rope, const vk_attention_params *p);

/* The Q;K;V epilogue of vkl_op_matmul_fused: W's rows are rows [row0, row0 + M) of the stacked projection Q;K;V
 * (attn->n_heads * head_dim rows of Q, then n_kv_heads * head_dim of K and of V), column c is the token at
 * positions[c]. Q rows are rotated and written to y (y spans M rows per column as usual; the K and V rows of
 * y are left unwritten), K rows rotated and V rows stored into the caches: vkl_op_matmul followed by
 * vkl_op_rope_kv_store, in one dispatch. Fuses interleaved rope with mscale 1 into a cache that is not a ring;
 * otherwise nothing is recorded (*fused false). row0 and M must be even. */
typedef struct vk_qkv_store {
    const vk_rope_params *rope;
    const vk_attention_params *attn;
    vk_view k_cache, v_cache, positions;
    uint32_t row0;
} vk_qkv_store;

/* What vkl_op_rope_kv_store_heads does to each head before its rope, from one f32 vector `aux`:
 * with bias, aux starts with the biases of Q (n_heads*head_dim), K and V (n_kv_heads*head_dim each); with
 * norm, it then holds the per-head RMSNorm weights of Q and of K (head_dim each). */
typedef struct vk_head_prep {
    const vk_tensor *aux;
    bool bias, norm;
    float eps;
} vk_head_prep;

/* vkl_op_rope_kv_store for any rope (interleaved or NeoX, mscale, partial) and Q/K/V biases and Q/K norms, in one
 * dispatch of a workgroup per (row, head): x = rope(norm(x + bias)) for Q in place (if q.buf is set) and K
 * into the cache, v + bias into the cache. rope->n_heads is ignored (the heads of p are used). */
vkllm_status vkl_op_rope_kv_store_heads(vkr_graph *g, vk_view q, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                                    vk_view positions, const vk_rope_params *rope, const vk_head_prep *prep,
                                    const vk_attention_params *p);

/* out[r][h][:] = sum_j softmax_j(scale * q[r][h]·K[j][kvh]) V[j][kvh] over cache rows j <= positions[r]
 * (causal by position). q, out: f32 n_rows x n_heads*head_dim. */
vkllm_status vkl_op_attention(vkr_graph *g, vk_view q, vk_view k_cache, vk_view v_cache, vk_view positions,
                          vk_view out, const vk_attention_params *p);

/* The fewest cache rows a part of split attention takes by default (below that the merge costs more). */
#define ATTN_SPLIT_MIN_ROWS 64

/* Flash decoding for decode steps of p->n_rows query rows over p's heads and p->n_ctx cache rows on dev: sets
 * p->n_split (1: none; parts sized to give the device's estimated compute units a few workgroups each) and
 * p->split_min_rows, and returns the first position worth recording a split graph for. VKLLM_ATTN_SPLIT=0/1
 * forces it off/on (measurements); =N >= 2 forces N parts of any size from position 0 (tests). */
uint32_t vkl_op_attention_split_plan(const vkr_device *dev, vk_attention_params *p);

#endif

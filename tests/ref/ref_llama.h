/* A CPU reference forward pass for GGUF models of every family host/model/arch.h describes (Llama, Qwen2/3,
 * Gemma 2/3, Phi-3), written to be read top to bottom. The family description says which pieces a layer has;
 * the arithmetic of each piece is written here independently of the device code.
 * Every weight is dequantized to f32 at load time; sums are accumulated in double. The KV cache holds
 * values rounded through f16, as the GPU's KV cache does, so GPU results can be compared to it closely.
 * Slow and simple on purpose: for tiny models (stories260K, synthetic test models), not for 1B shapes. */
#ifndef VKLLM_REF_LLAMA_H
#define VKLLM_REF_LLAMA_H

#include <stdint.h>

#include "host/model/arch.h"
#include "host/format/gguf.h"

typedef struct ref_llama_hparams {
    uint32_t n_vocab;         /* token_embd.weight ne[1] */
    uint32_t n_embd;          /* llama.embedding_length */
    uint32_t n_layer;         /* llama.block_count */
    uint32_t n_head;          /* llama.attention.head_count */
    uint32_t n_head_kv;       /* llama.attention.head_count_kv (default n_head) */
    uint32_t head_dim;        /* llama.attention.key_length (default n_embd / n_head) */
    uint32_t n_ff;            /* llama.feed_forward_length */
    uint32_t n_rot;           /* llama.rope.dimension_count (default head_dim) */
    uint32_t n_ctx_train;     /* llama.context_length (0 if absent; informational, not enforced) */
    float rope_base;          /* llama.rope.freq_base (default 10000) */
    float rms_eps;            /* llama.attention.layer_norm_rms_epsilon (default 1e-5) */
    int has_rope_freqs;       /* rope_freqs.weight present: theta_i is divided by it */
    int tied_output;          /* no output.weight: logits use token_embd.weight */
    arch_hparams arch;        /* the whole description: family, rope scaling, window, soft-caps, ... */
} ref_llama_hparams;

typedef struct ref_llama ref_llama;

/* Reads the hyper-parameters and dequantizes all weights. `f` is only used during the call.
 * Fails with VKLLM_ERR_UNSUPPORTED (an unsupported architecture, tensor type we cannot dequantize)
 * or VKLLM_ERR_FORMAT (missing key or tensor, wrong shape), message stored via vkr_error. */
vkllm_status ref_llama_load(const gguf_file *f, ref_llama **out);
void ref_llama_free(ref_llama *m);

const ref_llama_hparams *ref_llama_get_hparams(const ref_llama *m);

/* The context length the model is run with: LongRoPE files take their long factors past the original context
 * (the default, 0, takes the short ones). */
void ref_llama_set_n_ctx(ref_llama *m, uint32_t n_ctx);
uint32_t ref_llama_n_vocab(const ref_llama *m);

/* Runs tokens[0..n_tokens) at positions start_pos, start_pos+1, ... and writes n_tokens rows of n_vocab
 * logits (row t is the prediction after token t). The KV cache keeps rows 0..start_pos+n_tokens-1;
 * start_pos may be anything up to the number of positions already cached (a smaller value rewinds).
 * The cache grows as needed. Fails with VKLLM_ERR_INVALID_ARGUMENT for a token id out of range or a
 * gap in positions, VKLLM_ERR_OUT_OF_HOST_MEMORY if the cache cannot grow. */
vkllm_status ref_llama_forward(ref_llama *m, const int32_t *tokens, uint32_t n_tokens, uint32_t start_pos,
                               float *logits);

/* Removes cached positions [p0, p1) (p1 <= the positions cached): later tokens attend to the others only,
 * whose K/V stay as computed (a sequence's middle range removed, as llama.cpp's llama_memory_seq_rm and
 * vkllm_seq_rm do); decoding continues after the last cached position. A forward pass over a removed
 * position fills it again. */
vkllm_status ref_llama_remove(ref_llama *m, uint32_t p0, uint32_t p1);

#endif

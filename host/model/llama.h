/* The model on the device, for every family host/model/arch.h describes (Llama, Qwen2/3, Gemma 2/3, Phi-3):
 * hyper-parameters from the GGUF keys, weights uploaded once, and a context (KV cache, activations, recorded
 * graphs) that evaluates batches of tokens. */
#ifndef VKLLM_LLAMA_H
#define VKLLM_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "host/model/arch.h"
#include "host/format/gguf.h"
#include "host/ops/ops.h"

typedef arch_hparams llama_hparams;

/* Reads and checks the hyper-parameters (any supported family; tensor shapes are checked at load). */
vkllm_status vkl_llama_read_hparams(const gguf_file *f, llama_hparams *hp);

typedef struct llama_layer {
    vk_tensor attn_norm, wq, wk, wv, wo;
    vk_tensor ffn_norm, w_gate, w_up, w_down;
    vk_tensor post_attn_norm, post_ffn_norm;   /* families with post_norms */
    vk_tensor head_aux;        /* Q/K/V biases and Q/K norm weights, one f32 vector (see vk_head_prep) */
    /* Where the types allow, Wq;Wk;Wv and W_gate;W_up are uploaded stacked, so that decode computes
     * each group with one matvec; wq/wk/wv and w_gate/w_up are then views into them. */
    vk_tensor wqkv, w_gate_up;
    bool fused_qkv, fused_gate_up;
} llama_layer;

typedef struct llama_model {
    vkr_device *dev;
    llama_hparams hp;
    vk_tensor tok_embd, output_norm, output;
    bool output_tied;              /* no output.weight: the embedding table doubles as the output matrix */
    /* Rope of the global and the local layers: per-pair frequency divisors (rope_freqs, LongRoPE, linear and
     * YaRN scaling folded into one table) and the cos/sin scale. rope_long: LongRoPE's long factors, taken by
     * contexts longer than rope.scaling.original_context_length. */
    struct llama_rope {
        float theta_base, mscale;
        bool has_div;
        vk_tensor div;
    } rope_global, rope_long, rope_local;
    bool heads_kernel;             /* Q/K/V need more than interleaved rope: vkl_op_rope_kv_store_heads */
    llama_layer *layers;
    uint32_t weight_type;          /* type of most 2-D weights, for descriptions */
    uint64_t weight_bytes;         /* bytes of all weights in the file */
} llama_model;

/* Returns false to cancel the load (VKLLM_ERR_CANCELLED). */
typedef bool (*llama_progress_fn)(uint64_t done, uint64_t total, void *user);

/* Uploads every weight into device-local memory; on failure frees what it took. */
vkllm_status vkl_llama_model_load(vkr_device *dev, const gguf_file *f, llama_progress_fn progress, void *user,
                              llama_model **out);
void vkl_llama_model_free(llama_model *m);

typedef struct llama_context llama_context;

/* n_ctx: KV-cache rows (positions); n_batch: most tokens evaluated in one graph. */
vkllm_status vkl_llama_context_create(llama_model *m, uint32_t n_ctx, uint32_t n_batch, llama_context **out);
/* The same holding n_seq (1..LLAMA_MAX_SEQ) sequences of n_ctx positions each: sequence s owns cache rows
 * [s * n_ctx, (s + 1) * n_ctx) of every layer, or in the sliding-window layers that keep rings (window +
 * n_batch - 1 < n_ctx) the ring [s * rows, (s + 1) * rows) (vkl_llama_context_cache_rows). */
#define LLAMA_MAX_SEQ 256
vkllm_status vkl_llama_context_create_seq(llama_model *m, uint32_t n_ctx, uint32_t n_batch, uint32_t n_seq,
                                      llama_context **out);
void vkl_llama_context_free(llama_context *c);
uint32_t vkl_llama_context_n_ctx(const llama_context *c);   /* positions per sequence */
uint32_t vkl_llama_context_n_seq(const llama_context *c);
uint32_t vkl_llama_context_n_batch(const llama_context *c);

/* Evaluates tokens at positions pos0.. (any count: split into batches of n_batch), filling the KV cache.
 * Logits: if all_logits, n x n_vocab floats into `logits` (may be NULL to skip); else the last token's
 * n_vocab floats. A single token replays the prerecorded decode graph: one submit, no allocation. */
vkllm_status vkl_llama_eval(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits,
                        float *logits);

/* One step of several sequences, waited for: token i at position pos[i] of sequence seq[i], all n
 * (1..llama_context_seq_batch_max) in one submission, weights read once. The caller keeps each sequence's
 * positions in order (a token sees its sequence's cache rows up to its own position, which earlier steps
 * or earlier tokens of this batch filled). logits (may be NULL) receives the n_vocab floats of each token
 * with want[i] set, in batch order. With rings, each sequence's tokens hold consecutive positions that
 * continue as vkl_llama_context_can_continue allows. Single-sequence calls (vkl_llama_eval) work on
 * sequence 0. */
vkllm_status vkl_llama_eval_seqs(llama_context *c, const int32_t *tokens, const uint32_t *pos, const uint32_t *seq,
                             const int8_t *want, uint32_t n, float *logits);
/* The same with each token's cache row within its sequence given apart from its position (row[i] <= pos[i]):
 * a sequence some of whose positions were removed (vkl_llama_context_copy_rows closed the gap) holds
 * position pos[i] in row row[i], and token i sees the rows 0 .. row[i] of its sequence. Needs n_seq > 1. */
vkllm_status vkl_llama_eval_seq_rows(llama_context *c, const int32_t *tokens, const uint32_t *pos, const uint32_t *seq,
                                     const uint32_t *row, const int8_t *want, uint32_t n, float *logits);
uint32_t vkl_llama_context_seq_batch_max(const llama_context *c);
/* Copies the K/V of cache rows [src_row, src_row + rows) of sequence src to rows [dst_row, dst_row + rows) of
 * sequence dst, in every layer (device-side; waits). The ranges may overlap (rows moved down within a
 * sequence to close a gap). With rings: only from row 0 to row 0 of another sequence, whose ring then
 * becomes a copy of src's whole ring (and its end src's). */
vkllm_status vkl_llama_context_copy_rows(llama_context *c, uint32_t src, uint32_t src_row, uint32_t dst,
                                        uint32_t dst_row, uint32_t rows);

/* The same in steps, without waiting: vkl_llama_eval_submit submits n (1..n_batch) tokens at pos0, the last
 * token's logits wanted; vkl_llama_eval_poll waits at most timeout_ns (0: looks, UINT64_MAX: until done) and
 * tells whether the submission finished (nothing in flight: done). One submission at a time. */
vkllm_status vkl_llama_eval_submit(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0);
vkllm_status vkl_llama_eval_poll(llama_context *c, uint64_t timeout_ns, bool *done);

/* The last token's logits from the last vkl_llama_eval without all_logits: n_vocab floats in host-visible
 * memory the GPU wrote (no copy), valid until the next vkl_llama_eval. */
const float *vkl_llama_context_logits(const llama_context *c);

/* GPU time of the last evaluation's dispatches when timing is enabled (0 otherwise). */
void vkl_llama_context_set_timing(llama_context *c, bool on);
double vkl_llama_context_last_gpu_ns(const llama_context *c);
void vkl_llama_context_reset_gpu_ns(llama_context *c);
/* The GPU time of the last completed evaluation's longest submission (timing on), in nanoseconds. */
double vkl_llama_context_last_submit_gpu_ns(const llama_context *c);
/* Single-token evaluations split into submissions of whole layers, each as many as fit target_ns by their
 * measured GPU time (timing on; vkr_graph_set_split); 0: one submission. vkl_llama_eval_poll completes one
 * submission at a time (then submits the next), vkl_llama_eval all in turn. */
void vkl_llama_context_set_split(llama_context *c, double target_ns);
/* Asked between those submissions (abort(user); NULL: never): true ends the evaluation with
 * VKLLM_ERR_CANCELLED once the submission in flight completed, the token's later layers not run (its cache
 * rows are overwritten when the same position is evaluated again). */
void vkl_llama_context_set_abort(llama_context *c, bool (*abort)(void *user), void *user);
/* The value of the device's timeline semaphore that the context's last submission signals (0: none). */
uint64_t vkl_llama_context_timeline_value(const llama_context *c);
/* The single-token (decode) graph the last single-token evaluation ran (with or without split attention), for
 * per-dispatch timings (vkr_graph_dispatch_ns/name) after an evaluation with timing on; empty until the first
 * single-token evaluation. */
const vkr_graph *vkl_llama_context_decode_graph(const llama_context *c);

/* State save/restore (host/state.c). Rows of layer l's K/V cache per sequence: position p of sequence 0 is in
 * row p % rows (n_ctx, or a ring for sliding-window layers holding the last `rows` positions evaluated). */
uint32_t vkl_llama_context_cache_rows(const llama_context *c, uint32_t l);
/* The rows of each sequence's ring in the sliding-window layers (0: no rings, they keep n_ctx rows). */
uint32_t vkl_llama_context_ring_rows(const llama_context *c);
/* Bytes of the K and V caches of every layer. */
uint64_t vkl_llama_context_kv_bytes(const llama_context *c);
/* Layer l's K and V cache rows [row0, row0 + rows), f16 [rows][n_head_kv * head_dim] each: downloaded into k
 * and v, or uploaded from them. */
vkllm_status vkl_llama_context_kv_rows(llama_context *c, uint32_t l, uint32_t row0, uint32_t rows, void *k, void *v,
                                   bool upload);
/* One past the last position of sequence 0 evaluated (with a ring: where the ring's last write ended). */
uint32_t vkl_llama_context_end(const llama_context *c);
/* Whether an evaluation of sequence seq may continue at pos: false where the sliding-window layers' ring no
 * longer holds the positions before it (a ring continues at 0 or within n_batch positions of its end). */
bool vkl_llama_context_can_continue(const llama_context *c, uint32_t seq, uint32_t pos);
/* After the cache rows are uploaded: the evaluated end and the last token's logits (n_vocab floats). */
void vkl_llama_context_restore(llama_context *c, uint32_t end, const void *logits);

#endif

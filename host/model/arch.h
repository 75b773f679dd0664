/* Model architectures as data. A family (general.architecture: llama, qwen2, qwen3, gemma2, gemma3, phi3)
 * is one row of flags saying which blocks its layers use; a file adds the numbers (arch_hparams). The
 * device graph (host/model/llama.c), the CPU reference (tests/ref/ref_llama.c) and the synthetic model writer
 * (host/tools/synth.c) are all driven by this one description, so a new family is a new row here.
 * Key and tensor names are those llama.cpp's converter writes ("<arch>.attention.key_length",
 * "blk.N.attn_q.bias", ...). */
#ifndef VKLLM_ARCH_H
#define VKLLM_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "host/format/gguf.h"

typedef enum arch_act {
    ARCH_ACT_SILU,          /* SwiGLU: silu(gate) * up */
    ARCH_ACT_GELU_TANH,     /* GeGLU with the tanh approximation of GELU */
} arch_act;

typedef struct arch_family {
    const char *name;       /* general.architecture, also the prefix of the family's keys */
    bool rope_neox;         /* rope pairs (i, i + n_rot/2); else (2i, 2i+1) as Llama GGUF weights are permuted */
    bool qkv_bias;          /* blk.N.attn_{q,k,v}.bias */
    bool qk_norm;           /* blk.N.attn_{q,k}_norm.weight: per-head RMSNorm of Q and K before rope */
    bool post_norms;        /* blk.N.post_attention_norm / post_ffw_norm: RMSNorm of each block's output before
                             * its residual add */
    bool embd_scale;        /* token embeddings times sqrt(n_embd) */
    bool fused_gate_up;     /* blk.N.ffn_up.weight holds W_gate;W_up (2 n_ff rows), no ffn_gate */
    arch_act act;
    uint32_t swa_pattern;   /* 0: no sliding window; p: layer il is local (windowed) unless il % p == p - 1 */
    uint32_t swa_default;   /* window when the file has no attention.sliding_window key */
    float swa_rope_base;    /* rope base of the local layers (0: the global base, and its scaling) */
    float attn_softcap_default, final_softcap_default;   /* when the file has no *_logit_softcapping key */
    uint32_t wide_scale_layers;   /* a member with this many layers scales scores by 1/sqrt(n_embd/n_head),
                                   * not 1/sqrt(head_dim) (Gemma 27B's query_pre_attn_scalar) */
} arch_family;

typedef enum arch_rope_scaling {
    ARCH_ROPE_NONE,
    ARCH_ROPE_LINEAR,       /* positions / factor */
    ARCH_ROPE_YARN,         /* YaRN: interpolation ramp between beta_fast and beta_slow rotations, and mscale */
} arch_rope_scaling;

typedef struct arch_hparams {
    const arch_family *fam;
    uint32_t n_vocab;       /* token_embd.weight rows */
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff;
    uint32_t head_dim;      /* attention.key_length (= value_length), default n_embd / n_head */
    uint32_t n_rot;         /* rope.dimension_count, default head_dim: dims from n_rot on are not rotated */
    uint32_t n_ctx_train;
    float rope_theta, rms_eps;
    /* Rope of the global layers. rope_freqs.weight (Llama 3.1) and LongRoPE's rope_factors_{short,long}.weight
     * divide the frequencies further; those are tensors, found by name. */
    arch_rope_scaling rope_scaling;
    float rope_factor;      /* rope.scaling.factor */
    uint32_t rope_orig_ctx; /* rope.scaling.original_context_length (YaRN; LongRoPE picks long factors past it) */
    float rope_attn_factor; /* rope.scaling.attn_factor: cos and sin are multiplied by it (1 when absent) */
    float yarn_beta_fast, yarn_beta_slow;
    float attn_softcap;     /* scores -> c * tanh(scores / c); 0: none */
    float final_softcap;    /* logits likewise */
    uint32_t swa_window;    /* local layers see the last swa_window positions; 0: no local layers */
    float attn_scale;       /* score scale */
    bool qkv_fused;         /* the file has blk.N.attn_qkv.weight (Wq;Wk;Wv) instead of three tensors */
    bool rope_longrope;     /* the file has rope_factors_short.weight and rope_factors_long.weight */
} arch_hparams;

/* The family named `name` (len bytes), or NULL. */
const arch_family *vkl_arch_family_find(const char *name, uint64_t len);
/* "llama, qwen2, ..." for messages. */
const char *vkl_arch_supported_names(void);

/* Reads and checks a file's hyper-parameters. An unknown architecture is VKLLM_ERR_UNSUPPORTED with a
 * message listing the supported ones. */
vkllm_status vkl_arch_read_hparams(const gguf_file *f, arch_hparams *hp);

/* Layer il attends only to the last swa_window positions (and takes the local rope base). */
bool vkl_arch_layer_is_local(const arch_hparams *hp, uint32_t il);

/* The tensors of a layer, in file order. Vectors have ne1 == 0. Fused files (qkv_fused, fused_gate_up)
 * name one tensor for several roles; the loaders split it by rows. */
typedef enum arch_tensor_role {
    ARCH_T_ATTN_NORM, ARCH_T_Q, ARCH_T_K, ARCH_T_V, ARCH_T_QKV, ARCH_T_Q_BIAS, ARCH_T_K_BIAS, ARCH_T_V_BIAS,
    ARCH_T_Q_NORM, ARCH_T_K_NORM, ARCH_T_WO, ARCH_T_POST_ATTN_NORM, ARCH_T_FFN_NORM, ARCH_T_GATE, ARCH_T_UP,
    ARCH_T_DOWN, ARCH_T_POST_FFN_NORM, ARCH_T_COUNT
} arch_tensor_role;

typedef struct arch_tensor_desc {
    bool present;           /* this family/file has it */
    char name[64];          /* "blk.N.attn_q.bias" */
    uint64_t ne0, ne1;      /* ne1 == 0: a vector of ne0 */
    bool is_norm;           /* an RMSNorm weight (f32) */
} arch_tensor_desc;

void vkl_arch_layer_tensors(const arch_hparams *hp, uint32_t il, arch_tensor_desc out[ARCH_T_COUNT]);

/* Rows of the attention projections: n_head * head_dim for Q, n_head_kv * head_dim for K and V. */
static inline uint32_t arch_q_dim(const arch_hparams *hp) { return hp->n_head * hp->head_dim; }
static inline uint32_t arch_kv_dim(const arch_hparams *hp) { return hp->n_head_kv * hp->head_dim; }

#endif

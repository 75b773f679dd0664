/* Synthetic models of every supported family (host/model/arch.h): a GGUF file with the keys and tensor names of a
 * real GGUF of that family, random weights scaled so a forward pass gives finite, varied logits, and a
 * synthetic SentencePiece ("llama") vocabulary. Deterministic for a given seed. Written by streaming: memory
 * use stays small even for the 8B preset. */
#ifndef VKLLM_SYNTH_H
#define VKLLM_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct synth_hparams {
    const char *preset;        /* preset name ("tiny", ...) */
    const char *model_name;    /* general.name */
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_theta;          /* <arch>.rope.freq_base */
    float rms_eps;             /* <arch>.attention.layer_norm_rms_epsilon */
    bool tied_embeddings;      /* true: no output.weight (the output projection is token_embd.weight) */
    bool rope_freqs;           /* write rope_freqs.weight: n_rot/2 Llama-3.1-style frequency factors */
    /* Other families and their features (zero: llama, and the key not written). */
    const char *arch;          /* general.architecture; NULL: "llama" */
    uint32_t head_dim;         /* attention.key_length/value_length; 0: n_embd / n_head, keys not written */
    uint32_t n_rot;            /* rope.dimension_count; 0: head_dim */
    const char *rope_scaling;  /* rope.scaling.type ("linear", "yarn") with factor and original context */
    float rope_factor;
    uint32_t rope_orig_ctx;
    float rope_attn_factor;    /* rope.scaling.attn_factor; 0: not written */
    bool longrope;             /* rope_factors_short/long.weight (Phi-3) */
    bool qkv_fused;            /* one attn_qkv.weight instead of attn_q/k/v */
    uint32_t sliding_window;   /* attention.sliding_window (families with local layers) */
    float attn_softcap, final_softcap;   /* attn_logit_softcapping, final_logit_softcapping; 0: not written */
} synth_hparams;

/* The presets (vkl_synth_preset_names()); NULL if the name is unknown. */
const synth_hparams *vkl_synth_preset(const char *name);
/* "tiny, tiny256, llama3.2-1b, ..." (for usage messages). */
const char *vkl_synth_preset_names(void);
/* The small test preset of a family ("qwen3" -> "qwen3-tiny", "llama" -> "tiny"); NULL if none. */
const synth_hparams *vkl_synth_family_preset(const char *arch);
/* Number of weights (elements of all tensors) a model with these hyper-parameters has. */
uint64_t vkl_synth_n_params(const synth_hparams *hp);

/* Another type for the weights whose name contains `name_part` (e.g. "attn_v.weight", "token_embd"), for
 * files that mix types as llama.cpp's Q4_K_M and others do. */
typedef struct synth_override {
    const char *name_part;
    uint32_t type;
} synth_override;

typedef struct synth_options {
    const char *preset;        /* preset name; ignored when hp is set */
    const synth_hparams *hp;   /* custom hyper-parameters, or NULL to use `preset` */
    uint32_t type;             /* GGML_TYPE_*, any of the type table's: type of every 2-D weight (rows that are not
                                * whole blocks take the type's fallback, ggml_type_info in host/format/quant.h) */
    const synth_override *overrides;   /* optional, n_overrides of them; the last that matches a weight wins */
    uint32_t n_overrides;
    const char *path;          /* output file (replaced if it exists; removed again on failure) */
    uint64_t seed;
    /* Optional: called after each chunk of tensor data with the bytes written so far and the total. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} synth_options;

/* Writes the model. Fails with VKLLM_ERR_INVALID_ARGUMENT for an unknown preset/type or inconsistent
 * hyper-parameters, VKLLM_ERR_IO when the file cannot be written. */
vkllm_status vkl_synth_write(const synth_options *o);

#endif

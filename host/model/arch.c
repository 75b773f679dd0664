/* The supported families (host/model/arch.h): one row each, and the reader of the hyper-parameters they share. */
#include "host/model/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/error.h"

static const arch_family families[] = {
    /* Llama 2/3.x, Mistral, SmolLM, TinyLlama: the plain pre-norm SwiGLU block. */
    {.name = "llama"},
    /* Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen: biases on Q, K and V. */
    {.name = "qwen2", .rope_neox = true, .qkv_bias = true},
    /* Qwen3 (dense): per-head RMSNorm of Q and K. */
    {.name = "qwen3", .rope_neox = true, .qk_norm = true},
    /* Gemma 2: GeGLU, norms after each block too, soft-capping, every other layer local. */
    {.name = "gemma2", .rope_neox = true, .post_norms = true, .embd_scale = true, .act = ARCH_ACT_GELU_TANH,
     .swa_pattern = 2, .swa_default = 4096, .attn_softcap_default = 50.0f, .final_softcap_default = 30.0f,
     .wide_scale_layers = 46},
    /* Gemma 3 (text): Q/K norms, five local layers (rope base 10000) to one global. */
    {.name = "gemma3", .rope_neox = true, .qk_norm = true, .post_norms = true, .embd_scale = true,
     .act = ARCH_ACT_GELU_TANH, .swa_pattern = 6, .swa_rope_base = 10000.0f, .wide_scale_layers = 62},
    /* Phi-3, Phi-3.5-mini, Phi-4-mini: fused attn_qkv and gate+up, LongRoPE factors. Its attention.sliding_window
     * key is ignored, as llama.cpp does (Phi SWA is disabled there). */
    {.name = "phi3", .rope_neox = true, .fused_gate_up = true},
};

#define N_FAMILIES (sizeof families / sizeof families[0])

const arch_family *vkl_arch_family_find(const char *name, uint64_t len)
{
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strlen(families[i].name) == len && memcmp(families[i].name, name, len) == 0)
            return &families[i];
    return NULL;
}

const char *vkl_arch_supported_names(void) { return "llama, qwen2, qwen3, gemma2, gemma3, phi3"; }

/* ---- keys ---- */

typedef struct key_reader {
    const gguf_file *f;
    const char *prefix;
    char key[128];
} key_reader;

static const char *key_of(key_reader *r, const char *suffix)
{
    snprintf(r->key, sizeof r->key, "%s.%s", r->prefix, suffix);
    return r->key;
}

static vkllm_status req_u32(key_reader *r, const char *suffix, uint32_t *v)
{
    const char *key = key_of(r, suffix);
    if (!vkl_gguf_get_u32(r->f, key, v))
        return vkr_error(VKLLM_ERR_FORMAT, "missing or invalid key %s", key);
    if (*v == 0)
        return vkr_error(VKLLM_ERR_FORMAT, "key %s is 0", key);
    return VKLLM_OK;
}

/* An optional key: absent leaves *v; present but not a fitting number is an error (a per-layer array,
 * say, must not silently become the default). */
static vkllm_status opt_u32(key_reader *r, const char *suffix, uint32_t *v)
{
    const char *key = key_of(r, suffix);
    if (vkl_gguf_find_key(r->f, key) < 0 || vkl_gguf_get_u32(r->f, key, v))
        return VKLLM_OK;
    return vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s is not an unsigned 32-bit value", key);
}

static vkllm_status opt_f32(key_reader *r, const char *suffix, float *v)
{
    const char *key = key_of(r, suffix);
    if (vkl_gguf_find_key(r->f, key) < 0 || vkl_gguf_get_f32(r->f, key, v))
        return VKLLM_OK;
    return vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s is not a float value", key);
}

static vkllm_status read_rope_scaling(key_reader *r, arch_hparams *hp)
{
    hp->rope_scaling = ARCH_ROPE_NONE;
    hp->rope_factor = 1.0f;
    hp->rope_attn_factor = 1.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->rope_orig_ctx = hp->n_ctx_train;
    const char *type;
    uint64_t len = 0;
    const char *key = key_of(r, "rope.scaling.type");
    if (vkl_gguf_get_str(r->f, key, &type, &len)) {
        if (len == 6 && !memcmp(type, "linear", 6))
            hp->rope_scaling = ARCH_ROPE_LINEAR;
        else if (len == 4 && !memcmp(type, "yarn", 4))
            hp->rope_scaling = ARCH_ROPE_YARN;
        else if (!(len == 4 && !memcmp(type, "none", 4)))
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s '%.*s' is not supported (none, linear, yarn)", key,
                             (int)(len > 32 ? 32 : len), type);
    }
    vkllm_status st;
    float scale_linear = 0.0f;   /* the older key for linear scaling */
    if ((st = opt_f32(r, "rope.scale_linear", &scale_linear)) != VKLLM_OK)
        return st;
    if (scale_linear > 0.0f && hp->rope_scaling == ARCH_ROPE_NONE) {
        hp->rope_scaling = ARCH_ROPE_LINEAR;
        hp->rope_factor = scale_linear;
    }
    if ((st = opt_f32(r, "rope.scaling.factor", &hp->rope_factor)) != VKLLM_OK ||
        (st = opt_u32(r, "rope.scaling.original_context_length", &hp->rope_orig_ctx)) != VKLLM_OK ||
        (st = opt_f32(r, "rope.scaling.attn_factor", &hp->rope_attn_factor)) != VKLLM_OK ||
        (st = opt_f32(r, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast)) != VKLLM_OK ||
        (st = opt_f32(r, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow)) != VKLLM_OK)
        return st;
    if (hp->rope_scaling == ARCH_ROPE_NONE)
        hp->rope_factor = 1.0f;
    if (!(hp->rope_factor >= 1.0f) || !isfinite(hp->rope_factor) || !(hp->rope_attn_factor > 0.0f) ||
        !isfinite(hp->rope_attn_factor) || hp->rope_orig_ctx == 0 || !(hp->yarn_beta_fast > hp->yarn_beta_slow) ||
        !(hp->yarn_beta_slow > 0.0f))
        return vkr_error(VKLLM_ERR_FORMAT, "%s.rope.scaling: factor %g, attn_factor %g, original context %u or "
                         "beta %g/%g out of range", r->prefix, (double)hp->rope_factor, (double)hp->rope_attn_factor,
                         hp->rope_orig_ctx, (double)hp->yarn_beta_fast, (double)hp->yarn_beta_slow);
    return VKLLM_OK;
}

vkllm_status vkl_arch_read_hparams(const gguf_file *f, arch_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    const char *arch;
    uint64_t arch_len;
    if (!vkl_gguf_get_str(f, "general.architecture", &arch, &arch_len))
        return vkr_error(VKLLM_ERR_FORMAT, "missing key general.architecture");
    hp->fam = vkl_arch_family_find(arch, arch_len);
    if (!hp->fam)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (vkllm runs %s)",
                         (int)(arch_len > 64 ? 64 : arch_len), arch, vkl_arch_supported_names());
    const arch_family *fam = hp->fam;
    key_reader r = {.f = f, .prefix = fam->name};
    vkllm_status st;
    if ((st = req_u32(&r, "embedding_length", &hp->n_embd)) || (st = req_u32(&r, "block_count", &hp->n_layer)) ||
        (st = req_u32(&r, "attention.head_count", &hp->n_head)) ||
        (st = req_u32(&r, "feed_forward_length", &hp->n_ff)))
        return st;
    hp->n_head_kv = hp->n_head;
    if ((st = opt_u32(&r, "attention.head_count_kv", &hp->n_head_kv)))
        return st;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv)
        return vkr_error(VKLLM_ERR_FORMAT, "head_count %u is not a multiple of head_count_kv %u", hp->n_head,
                         hp->n_head_kv);
    if (vkl_gguf_find_key(f, key_of(&r, "attention.key_length")) < 0 && hp->n_embd % hp->n_head)
        return vkr_error(VKLLM_ERR_FORMAT, "embedding_length %u is not a multiple of head_count %u", hp->n_embd,
                         hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = opt_u32(&r, "attention.key_length", &hp->head_dim)))
        return st;
    uint32_t value_length = hp->head_dim;
    if ((st = opt_u32(&r, "attention.value_length", &value_length)))
        return st;
    if (value_length != hp->head_dim)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s.attention.value_length %u differs from key_length %u",
                         fam->name, value_length, hp->head_dim);
    if (hp->head_dim == 0 || hp->head_dim % 2 || hp->head_dim > 256)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "head dimension %u is not supported (even, at most 256)", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((st = opt_u32(&r, "rope.dimension_count", &hp->n_rot)))
        return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return vkr_error(VKLLM_ERR_FORMAT, "rope.dimension_count %u does not fit head dimension %u", hp->n_rot,
                         hp->head_dim);
    hp->n_ctx_train = 2048;
    hp->rope_theta = 10000.0f;
    hp->rms_eps = 1e-5f;
    if ((st = opt_u32(&r, "context_length", &hp->n_ctx_train)) || (st = opt_f32(&r, "rope.freq_base", &hp->rope_theta)) ||
        (st = opt_f32(&r, "attention.layer_norm_rms_epsilon", &hp->rms_eps)))
        return st;
    if (!(hp->rope_theta > 0) || !isfinite(hp->rope_theta) || !(hp->rms_eps > 0) || !isfinite(hp->rms_eps))
        return vkr_error(VKLLM_ERR_FORMAT, "rope.freq_base and layer_norm_rms_epsilon must be positive");
    if ((st = read_rope_scaling(&r, hp)))
        return st;

    hp->attn_softcap = fam->attn_softcap_default;
    hp->final_softcap = fam->final_softcap_default;
    hp->swa_window = fam->swa_pattern ? fam->swa_default : 0;
    if ((st = opt_f32(&r, "attn_logit_softcapping", &hp->attn_softcap)) ||
        (st = opt_f32(&r, "final_logit_softcapping", &hp->final_softcap)))
        return st;
    if (fam->swa_pattern && (st = opt_u32(&r, "attention.sliding_window", &hp->swa_window)))
        return st;
    if (!(hp->attn_softcap >= 0) || !isfinite(hp->attn_softcap) || !(hp->final_softcap >= 0) ||
        !isfinite(hp->final_softcap))
        return vkr_error(VKLLM_ERR_FORMAT, "%s: soft-capping values must be non-negative", fam->name);
    uint32_t scale_dim = fam->wide_scale_layers && hp->n_layer == fam->wide_scale_layers ? hp->n_embd / hp->n_head
                                                                                          : hp->head_dim;
    hp->attn_scale = 1.0f / sqrtf((float)scale_dim);

    const gguf_tensor *emb = vkl_gguf_find_tensor(f, "token_embd.weight");
    if (!emb)
        return vkr_error(VKLLM_ERR_FORMAT, "missing tensor token_embd.weight");
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 24))
        return vkr_error(VKLLM_ERR_FORMAT, "token_embd.weight: implausible vocabulary size %llu",
                         (unsigned long long)emb->ne[1]);
    hp->n_vocab = (uint32_t)emb->ne[1];
    hp->qkv_fused = vkl_gguf_find_tensor(f, "blk.0.attn_qkv.weight") != NULL;
    bool has_short = vkl_gguf_find_tensor(f, "rope_factors_short.weight") != NULL;
    bool has_long = vkl_gguf_find_tensor(f, "rope_factors_long.weight") != NULL;
    if (has_short != has_long)
        return vkr_error(VKLLM_ERR_FORMAT, "missing tensor %s (LongRoPE needs both factor tables)",
                         has_short ? "rope_factors_long.weight" : "rope_factors_short.weight");
    hp->rope_longrope = has_long;
    return VKLLM_OK;
}

bool vkl_arch_layer_is_local(const arch_hparams *hp, uint32_t il)
{
    const uint32_t p = hp->fam->swa_pattern;
    return p && hp->swa_window && il % p != p - 1;
}

static void set_t(arch_tensor_desc *d, uint32_t il, const char *suffix, uint64_t ne0, uint64_t ne1, bool is_norm)
{
    d->present = true;
    snprintf(d->name, sizeof d->name, "blk.%u.%s", il, suffix);
    d->ne0 = ne0;
    d->ne1 = ne1;
    d->is_norm = is_norm;
}

void vkl_arch_layer_tensors(const arch_hparams *hp, uint32_t il, arch_tensor_desc out[ARCH_T_COUNT])
{
    const arch_family *fam = hp->fam;
    const uint64_t E = hp->n_embd, F = hp->n_ff, Q = arch_q_dim(hp), KV = arch_kv_dim(hp), D = hp->head_dim;
    memset(out, 0, sizeof *out * ARCH_T_COUNT);
    set_t(&out[ARCH_T_ATTN_NORM], il, "attn_norm.weight", E, 0, true);
    if (hp->qkv_fused) {
        set_t(&out[ARCH_T_QKV], il, "attn_qkv.weight", E, Q + 2 * KV, false);
    } else {
        set_t(&out[ARCH_T_Q], il, "attn_q.weight", E, Q, false);
        set_t(&out[ARCH_T_K], il, "attn_k.weight", E, KV, false);
        set_t(&out[ARCH_T_V], il, "attn_v.weight", E, KV, false);
    }
    if (fam->qkv_bias) {
        set_t(&out[ARCH_T_Q_BIAS], il, "attn_q.bias", Q, 0, false);
        set_t(&out[ARCH_T_K_BIAS], il, "attn_k.bias", KV, 0, false);
        set_t(&out[ARCH_T_V_BIAS], il, "attn_v.bias", KV, 0, false);
    }
    if (fam->qk_norm) {
        set_t(&out[ARCH_T_Q_NORM], il, "attn_q_norm.weight", D, 0, true);
        set_t(&out[ARCH_T_K_NORM], il, "attn_k_norm.weight", D, 0, true);
    }
    set_t(&out[ARCH_T_WO], il, "attn_output.weight", Q, E, false);
    if (fam->post_norms)
        set_t(&out[ARCH_T_POST_ATTN_NORM], il, "post_attention_norm.weight", E, 0, true);
    set_t(&out[ARCH_T_FFN_NORM], il, "ffn_norm.weight", E, 0, true);
    if (fam->fused_gate_up) {
        set_t(&out[ARCH_T_UP], il, "ffn_up.weight", E, 2 * F, false);
    } else {
        set_t(&out[ARCH_T_GATE], il, "ffn_gate.weight", E, F, false);
        set_t(&out[ARCH_T_UP], il, "ffn_up.weight", E, F, false);
    }
    set_t(&out[ARCH_T_DOWN], il, "ffn_down.weight", F, E, false);
    if (fam->post_norms)
        set_t(&out[ARCH_T_POST_FFN_NORM], il, "post_ffw_norm.weight", E, 0, true);
}

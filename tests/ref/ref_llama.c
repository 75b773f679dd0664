/* CPU reference forward pass for every supported family. See ref_llama.h.
 *
 * The model, per token x (a row of n_embd floats); [brackets] are the pieces a family's description
 * (host/model/arch.h) switches on:
 *
 *   x = token_embd[token]                            [* sqrt(n_embd): Gemma]
 *   for each layer:
 *       h = rmsnorm(x) * attn_norm
 *       q = Wq h, k = Wk h, v = Wv h                  [+ biases: Qwen2] (q: n_head heads, k/v: n_head_kv heads)
 *       [each head of q and k: rmsnorm(head) * q_norm / k_norm: Qwen3, Gemma 3]
 *       rope(q), rope(k) at the token's position      (pairs (2i, 2i+1), or (i, i + n_rot/2) for NeoX families;
 *                                                      frequencies divided by rope_freqs / LongRoPE factors /
 *                                                      linear or YaRN scaling, cos and sin times mscale)
 *       cache[pos] = f16(k), f16(v)
 *       a = per head: softmax(cap(q . K[j] * scale)) V[j] over the positions j the layer sees: 0..pos, or the
 *           last sliding_window of them on local layers; cap(s) = c tanh(s / c) with Gemma 2's soft-cap c
 *       o = Wo a                                      [rmsnorm(o) * post_attention_norm: Gemma]
 *       x = x + o
 *       h = rmsnorm(x) * ffn_norm
 *       f = Wdown (act(Wgate h) * Wup h)              (act: SiLU, or GELU-tanh for Gemma)
 *                                                     [rmsnorm(f) * post_ffw_norm: Gemma]
 *       x = x + f
 *   logits = Wout (rmsnorm(x) * output_norm)          (Wout = output.weight, or token_embd.weight)
 *                                                     [c tanh(logits / c): Gemma 2's final soft-cap]
 *
 * Weights are stored as GGUF lays them out: a tensor with ne = {K, M} is M rows of K floats, and a
 * projection computes y[m] = sum_k W[m][k] x[k]. Fused tensors (attn_qkv; Phi-3's ffn_up holding gate and
 * up) are loaded whole and their parts point into them. */
#include "ref/ref_llama.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"

typedef struct ref_layer {
    float *tensors[ARCH_T_COUNT];   /* every tensor of the layer as loaded (fused ones whole), for freeing */
    float *bq, *bk, *bv;      /* biases or NULL */
    float *q_norm, *k_norm;   /* [head_dim] or NULL */
    float *post_attn_norm, *post_ffn_norm;   /* [n_embd] or NULL */
    float *attn_norm;         /* [n_embd] */
    float *wq;                /* [n_head * head_dim][n_embd] */
    float *wk;                /* [n_head_kv * head_dim][n_embd] */
    float *wv;                /* [n_head_kv * head_dim][n_embd] */
    float *wo;                /* [n_embd][n_head * head_dim] */
    float *ffn_norm;          /* [n_embd] */
    float *w_gate;            /* [n_ff][n_embd] */
    float *w_up;              /* [n_ff][n_embd] */
    float *w_down;            /* [n_embd][n_ff] */
    float *k_cache;           /* [cache_rows][n_head_kv * head_dim], values rounded through f16 */
    float *v_cache;
} ref_layer;

struct ref_llama {
    ref_llama_hparams hp;
    float *tok_embd;          /* [n_vocab][n_embd] */
    float *output_norm;       /* [n_embd] */
    float *output;            /* [n_vocab][n_embd]; points at tok_embd when tied */
    float *rope_freqs;        /* [n_rot / 2] or NULL: rope_freqs.weight, or LongRoPE's short factors */
    float *rope_long;         /* LongRoPE's long factors or NULL */
    uint32_t n_ctx;           /* ref_llama_set_n_ctx */
    ref_layer *layers;
    uint32_t cache_rows;      /* allocated rows of each cache */
    uint32_t n_cached;        /* positions 0..n_cached-1 hold valid K/V */
    uint8_t *removed;         /* [cache_rows]: position removed by ref_llama_remove, attended by nobody */
};

/* ------------------------------------------------------------------------------------------------ */
/* Loading                                                                                          */
/* ------------------------------------------------------------------------------------------------ */

/* Dequantizes tensor `name` into a new f32 array after checking its shape is exactly {ne0, ne1}
 * (ne1 = 1 for a vector). Returns NULL when optional and absent. */
static vkllm_status load_tensor(const gguf_file *f, const char *name, uint64_t ne0, uint64_t ne1, bool optional,
                                float **out)
{
    *out = NULL;
    const gguf_tensor *t = vkl_gguf_find_tensor(f, name);
    if (t == NULL) {
        if (optional)
            return VKLLM_OK;
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s is missing", name);
    }
    bool shape_ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok) {
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
                         name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)ne0,
                         (unsigned long long)ne1);
    }
    const char *type_name = vkl_ggml_type_name(t->type);
    if (type_name == NULL || t->data == NULL) {
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s has type %u, which the reference cannot dequantize",
                         name, t->type);
    }
    uint64_t row_bytes = vkl_ggml_row_bytes(t->type, ne0);
    if (row_bytes == 0) {
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: row of %llu elements is not a whole number of %s blocks",
                         name, (unsigned long long)ne0, type_name);
    }
    if (ne1 > t->nbytes / row_bytes) {
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: %llu bytes of data, too few for its shape", name,
                         (unsigned long long)t->nbytes);
    }
    uint64_t n = ne0 * ne1;   /* both come from a validated file and are <= the data size */
    if (n > SIZE_MAX / sizeof(float)) {
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor %s is too large", name);
    }
    float *data = malloc((size_t)n * sizeof(float));
    if (data == NULL) {
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor %s: cannot allocate %llu floats", name,
                         (unsigned long long)n);
    }
    vkl_dequantize_row(t->type, t->data, data, n);
    *out = data;
    return VKLLM_OK;
}

static vkllm_status read_hparams(const gguf_file *f, ref_llama_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    vkllm_status st = vkl_arch_read_hparams(f, &hp->arch);
    if (st != VKLLM_OK)
        return st;
    const arch_hparams *a = &hp->arch;
    hp->n_vocab = a->n_vocab;
    hp->n_embd = a->n_embd;
    hp->n_layer = a->n_layer;
    hp->n_head = a->n_head;
    hp->n_head_kv = a->n_head_kv;
    hp->head_dim = a->head_dim;
    hp->n_ff = a->n_ff;
    hp->n_rot = a->n_rot;
    hp->n_ctx_train = a->n_ctx_train;
    hp->rope_base = a->rope_theta;
    hp->rms_eps = a->rms_eps;
    return VKLLM_OK;
}

static vkllm_status load_layer(const gguf_file *f, const ref_llama_hparams *hp, uint32_t il, ref_layer *l)
{
    arch_tensor_desc td[ARCH_T_COUNT];
    vkl_arch_layer_tensors(&hp->arch, il, td);
    for (int r = 0; r < ARCH_T_COUNT; r++) {
        if (!td[r].present)
            continue;
        vkllm_status st = load_tensor(f, td[r].name, td[r].ne0, td[r].ne1 ? td[r].ne1 : 1, false, &l->tensors[r]);
        if (st != VKLLM_OK)
            return st;
    }
    const size_t E = hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)hp->n_head_kv * hp->head_dim;
    float **t = l->tensors;
    l->attn_norm = t[ARCH_T_ATTN_NORM];
    l->wq = t[ARCH_T_QKV] ? t[ARCH_T_QKV] : t[ARCH_T_Q];
    l->wk = t[ARCH_T_QKV] ? t[ARCH_T_QKV] + Q * E : t[ARCH_T_K];
    l->wv = t[ARCH_T_QKV] ? t[ARCH_T_QKV] + (Q + KV) * E : t[ARCH_T_V];
    l->bq = t[ARCH_T_Q_BIAS], l->bk = t[ARCH_T_K_BIAS], l->bv = t[ARCH_T_V_BIAS];
    l->q_norm = t[ARCH_T_Q_NORM], l->k_norm = t[ARCH_T_K_NORM];
    l->wo = t[ARCH_T_WO];
    l->post_attn_norm = t[ARCH_T_POST_ATTN_NORM];
    l->ffn_norm = t[ARCH_T_FFN_NORM];
    l->w_gate = t[ARCH_T_GATE] ? t[ARCH_T_GATE] : t[ARCH_T_UP];   /* fused: gate rows, then up rows */
    l->w_up = t[ARCH_T_GATE] ? t[ARCH_T_UP] : t[ARCH_T_UP] + (size_t)hp->n_ff * E;
    l->w_down = t[ARCH_T_DOWN];
    l->post_ffn_norm = t[ARCH_T_POST_FFN_NORM];
    return VKLLM_OK;
}

vkllm_status ref_llama_load(const gguf_file *f, ref_llama **out)
{
    if (f == NULL || out == NULL) {
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "ref_llama_load: NULL argument");
    }
    *out = NULL;
    ref_llama *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "ref_llama_load: out of memory");
    }
    vkllm_status st = read_hparams(f, &m->hp);
    if (st != VKLLM_OK)
        goto fail;
    ref_llama_hparams *hp = &m->hp;

    st = load_tensor(f, "token_embd.weight", hp->n_embd, hp->n_vocab, false, &m->tok_embd);
    if (st != VKLLM_OK)
        goto fail;
    st = load_tensor(f, "output_norm.weight", hp->n_embd, 1, false, &m->output_norm);
    if (st != VKLLM_OK)
        goto fail;
    st = load_tensor(f, "output.weight", hp->n_embd, hp->n_vocab, true, &m->output);
    if (st != VKLLM_OK)
        goto fail;
    hp->tied_output = m->output == NULL;
    st = load_tensor(f, hp->arch.rope_longrope ? "rope_factors_short.weight" : "rope_freqs.weight", hp->n_rot / 2, 1,
                     true, &m->rope_freqs);
    if (st == VKLLM_OK)
        st = load_tensor(f, "rope_factors_long.weight", hp->n_rot / 2, 1, true, &m->rope_long);
    if (st != VKLLM_OK)
        goto fail;
    hp->has_rope_freqs = m->rope_freqs != NULL;

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (m->layers == NULL) {
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "ref_llama_load: cannot allocate %u layers", hp->n_layer);
        goto fail;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        st = load_layer(f, hp, il, &m->layers[il]);
        if (st != VKLLM_OK)
            goto fail;
    }
    *out = m;
    return VKLLM_OK;

fail:
    ref_llama_free(m);
    return st;
}

void ref_llama_free(ref_llama *m)
{
    if (m == NULL)
        return;
    if (m->layers != NULL) {
        for (uint32_t il = 0; il < m->hp.n_layer; il++) {
            ref_layer *l = &m->layers[il];
            for (int r = 0; r < ARCH_T_COUNT; r++)
                free(l->tensors[r]);
            free(l->k_cache), free(l->v_cache);
        }
        free(m->layers);
    }
    free(m->tok_embd);
    free(m->output_norm);
    free(m->output);          /* NULL when tied */
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->removed);
    free(m);
}

const ref_llama_hparams *ref_llama_get_hparams(const ref_llama *m) { return &m->hp; }

uint32_t ref_llama_n_vocab(const ref_llama *m) { return m->hp.n_vocab; }

void ref_llama_set_n_ctx(ref_llama *m, uint32_t n_ctx) { m->n_ctx = n_ctx; }

/* ------------------------------------------------------------------------------------------------ */
/* The building blocks                                                                              */
/* ------------------------------------------------------------------------------------------------ */

/* y[m] = sum_k W[m][k] x[k], W is rows x cols. */
static void matvec(const float *w, const float *x, float *y, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        double sum = 0.0;
        for (uint32_t k = 0; k < cols; k++)
            sum += (double)wr[k] * (double)x[k];
        y[r] = (float)sum;
    }
}

/* out = x / sqrt(mean(x^2) + eps) * weight */
static void rmsnorm(const float *x, const float *weight, float *out, uint32_t n, float eps)
{
    double sum_sq = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum_sq += (double)x[i] * (double)x[i];
    double inv_rms = 1.0 / sqrt(sum_sq / n + (double)eps);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)((double)x[i] * inv_rms * (double)weight[i]);
}

#define REF_PI 3.14159265358979323846

/* The rope of one layer. */
typedef struct ref_rope {
    double base;
    const float *factors;     /* divide pair i's frequency by factors[i]; NULL: none */
    arch_rope_scaling scaling;
    double factor;            /* linear: positions / factor; YaRN: the interpolation factor */
    double mscale;            /* cos and sin are multiplied by it */
    bool neox;
} ref_rope;

/* YaRN (ggml's convention): pair i keeps its frequency when it turns more than beta_fast times over the
 * original context, is divided by the factor when it turns fewer than beta_slow times, a linear blend of the
 * two between those pair indices (rounded outwards). Returns the weight of the original frequency. */
static double yarn_original_weight(const arch_hparams *a, uint32_t i)
{
    /* pair index at which the rotation count over the original context equals `turns` */
    double first_fast = floor(a->n_rot * log(a->rope_orig_ctx / (2.0 * REF_PI * a->yarn_beta_fast)) /
                              (2.0 * log(a->rope_theta)));
    double last_slow = ceil(a->n_rot * log(a->rope_orig_ctx / (2.0 * REF_PI * a->yarn_beta_slow)) /
                            (2.0 * log(a->rope_theta)));
    first_fast = fmax(first_fast, 0.0);
    last_slow = fmin(last_slow, a->n_rot - 1.0);
    double t = (i - first_fast) / fmax(last_slow - first_fast, 0.001);
    return 1.0 - fmin(fmax(t, 0.0), 1.0);
}

/* Rotates pair i < n_rot/2 of each of n_heads heads by pos * base^(-2i/n_rot), adjusted by the scaling.
 * Dimensions from n_rot on are kept. */
static void rope(float *v, uint32_t n_heads, const ref_llama_hparams *hp, const ref_rope *r, uint32_t pos)
{
    const uint32_t half = hp->n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *head = v + (size_t)h * hp->head_dim;
        for (uint32_t i = 0; i < half; i++) {
            double theta = (double)pos * pow(r->base, -2.0 * i / hp->n_rot);
            if (r->factors != NULL)
                theta /= (double)r->factors[i];
            if (r->scaling == ARCH_ROPE_LINEAR)
                theta /= r->factor;
            if (r->scaling == ARCH_ROPE_YARN) {
                double w = yarn_original_weight(&hp->arch, i);
                theta = w * theta + (1.0 - w) * theta / r->factor;
            }
            double c = cos(theta) * r->mscale, s = sin(theta) * r->mscale;
            float *x0 = r->neox ? &head[i] : &head[2 * i];
            float *x1 = r->neox ? &head[i + half] : &head[2 * i + 1];
            double a = *x0, b = *x1;
            *x0 = (float)(a * c - b * s);
            *x1 = (float)(a * s + b * c);
        }
    }
}

/* The rope of layer il: local layers of families with their own local base are not scaled. */
static ref_rope layer_rope(const ref_llama *m, uint32_t il)
{
    const arch_hparams *a = &m->hp.arch;
    ref_rope r = {.base = a->rope_theta, .factors = m->rope_freqs, .scaling = a->rope_scaling,
                  .factor = a->rope_factor, .mscale = a->rope_attn_factor, .neox = a->fam->rope_neox};
    if (m->rope_long && m->n_ctx > a->rope_orig_ctx)
        r.factors = m->rope_long;
    if (r.scaling == ARCH_ROPE_YARN)
        r.mscale *= 1.0 + 0.1 * log(r.factor);
    if (vkl_arch_layer_is_local(a, il) && a->fam->swa_rope_base > 0) {
        r.base = a->fam->swa_rope_base;
        r.factors = NULL;
        r.scaling = ARCH_ROPE_NONE;
        r.mscale = 1.0;
    }
    return r;
}

/* x += bias when there is one. */
static void add_bias(float *x, const float *bias, uint32_t n)
{
    for (uint32_t i = 0; bias && i < n; i++)
        x[i] += bias[i];
}

/* The value the GPU's f16 KV cache would hold. */
static float round_f16(float x) { return vkl_fp16_to_fp32(vkl_fp32_to_fp16(x)); }

static double silu(double x) { return x / (1.0 + exp(-x)); }

static double gelu_tanh(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / REF_PI) * (x + 0.044715 * x * x * x))); }

/* c * tanh(x / c), or x when c is 0. */
static double softcap(double x, double c) { return c > 0 ? c * tanh(x / c) : x; }

/* out (n_head * head_dim) = attention of the query q at position pos over cache rows first..pos, except the
 * removed ones. */
static void attention(const ref_llama_hparams *hp, const ref_layer *l, const float *q, uint32_t first, uint32_t pos,
                      const uint8_t *removed, float *out, double *scores)
{
    const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;
    const uint32_t group = hp->n_head / hp->n_head_kv;   /* query heads per kv head */
    const double scale = hp->arch.attn_scale;

    for (uint32_t h = 0; h < hp->n_head; h++) {
        const float *qh = q + (size_t)h * hp->head_dim;
        const uint32_t kvh = h / group;

        /* scores over the positions this token may see (the causal mask: j <= pos; the window: j >= first) */
        double max_score = -INFINITY;
        for (uint32_t j = first; j <= pos; j++) {
            if (removed[j])
                continue;
            const float *kj = l->k_cache + (size_t)j * kv_dim + (size_t)kvh * hp->head_dim;
            double dot = 0.0;
            for (uint32_t d = 0; d < hp->head_dim; d++)
                dot += (double)qh[d] * (double)kj[d];
            scores[j] = softcap(dot * scale, hp->arch.attn_softcap);
            if (scores[j] > max_score)
                max_score = scores[j];
        }
        /* softmax */
        double sum = 0.0;
        for (uint32_t j = first; j <= pos; j++) {
            if (removed[j])
                continue;
            scores[j] = exp(scores[j] - max_score);
            sum += scores[j];
        }
        /* weighted sum of the values */
        float *oh = out + (size_t)h * hp->head_dim;
        for (uint32_t d = 0; d < hp->head_dim; d++) {
            double acc = 0.0;
            for (uint32_t j = first; j <= pos; j++)
                acc += removed[j] ? 0.0 : scores[j] * (double)l->v_cache[(size_t)j * kv_dim + (size_t)kvh * hp->head_dim + d];
            oh[d] = (float)(acc / sum);
        }
    }
}

/* Makes room in every layer's cache for `rows` positions. */
static vkllm_status grow_cache(ref_llama *m, uint32_t rows)
{
    if (rows <= m->cache_rows)
        return VKLLM_OK;
    uint32_t new_rows = m->cache_rows ? m->cache_rows : 64;
    while (new_rows < rows)
        new_rows = new_rows > UINT32_MAX / 2 ? rows : new_rows * 2;
    const size_t kv_dim = (size_t)m->hp.n_head_kv * m->hp.head_dim;
    if (new_rows > SIZE_MAX / sizeof(float) / kv_dim) {
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "KV cache of %u rows is too large", new_rows);
    }
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        ref_layer *l = &m->layers[il];
        float *k = realloc(l->k_cache, (size_t)new_rows * kv_dim * sizeof(float));
        if (k == NULL)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "cannot grow the KV cache to %u rows", new_rows);
        l->k_cache = k;
        float *v = realloc(l->v_cache, (size_t)new_rows * kv_dim * sizeof(float));
        if (v == NULL)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "cannot grow the KV cache to %u rows", new_rows);
        l->v_cache = v;
    }
    uint8_t *removed = realloc(m->removed, new_rows);
    if (removed == NULL)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "cannot grow the KV cache to %u rows", new_rows);
    memset(removed + m->cache_rows, 0, new_rows - m->cache_rows);
    m->removed = removed;
    /* Only now, when every layer has the rows, does the cache count them. */
    m->cache_rows = new_rows;
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* The forward pass                                                                                 */
/* ------------------------------------------------------------------------------------------------ */

vkllm_status ref_llama_forward(ref_llama *m, const int32_t *tokens, uint32_t n_tokens, uint32_t start_pos,
                               float *logits)
{
    if (m == NULL || tokens == NULL || logits == NULL || n_tokens == 0) {
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "ref_llama_forward: NULL argument or no tokens");
    }
    const ref_llama_hparams *hp = &m->hp;
    if (start_pos > m->n_cached) {
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "start position %u leaves a gap: only %u positions are cached",
                         start_pos, m->n_cached);
    }
    if (n_tokens > UINT32_MAX - start_pos) {
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "positions overflow");
    }
    for (uint32_t t = 0; t < n_tokens; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab) {
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %d at index %u is outside the vocabulary of %u",
                             tokens[t], t, hp->n_vocab);
        }
    }
    vkllm_status st = grow_cache(m, start_pos + n_tokens);
    if (st != VKLLM_OK)
        return st;

    memset(m->removed + start_pos, 0, n_tokens);   /* written again: attended again */
    const uint32_t n_embd = hp->n_embd;
    const uint32_t q_dim = hp->n_head * hp->head_dim;
    const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;

    /* Scratch: the residual stream of every token, and one token's intermediate values. */
    float *x = malloc((size_t)n_tokens * n_embd * sizeof(float));
    float *h = malloc((size_t)n_embd * sizeof(float));
    float *q = malloc((size_t)n_tokens * q_dim * sizeof(float));
    float *att = malloc((size_t)q_dim * sizeof(float));
    float *proj = malloc((size_t)n_embd * sizeof(float));
    float *gate = malloc((size_t)hp->n_ff * sizeof(float));
    float *up = malloc((size_t)hp->n_ff * sizeof(float));
    double *scores = malloc(((size_t)start_pos + n_tokens) * sizeof(double));
    if (!x || !h || !q || !att || !proj || !gate || !up || !scores) {
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "ref_llama_forward: out of memory for %u tokens", n_tokens);
        goto done;
    }

    /* 1. Embedding: each token's row of token_embd (Gemma scales it by sqrt(n_embd)). */
    const arch_family *fam = hp->arch.fam;
    for (uint32_t t = 0; t < n_tokens; t++) {
        float *xt = x + (size_t)t * n_embd;
        memcpy(xt, m->tok_embd + (size_t)tokens[t] * n_embd, n_embd * sizeof(float));
        for (uint32_t i = 0; i < n_embd && fam->embd_scale; i++)
            xt[i] = (float)((double)xt[i] * sqrt((double)n_embd));
    }

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const ref_layer *l = &m->layers[il];
        const ref_rope rp = layer_rope(m, il);
        const uint32_t window = vkl_arch_layer_is_local(&hp->arch, il) ? hp->arch.swa_window : 0;

        /* 2. Attention inputs for every token of the batch: Q kept aside, K and V into the cache. Doing
         *    all tokens before any attention lets token t see tokens t' < t of the same batch. */
        for (uint32_t t = 0; t < n_tokens; t++) {
            const uint32_t pos = start_pos + t;
            float *qt = q + (size_t)t * q_dim;
            float *kt = l->k_cache + (size_t)pos * kv_dim;
            float *vt = l->v_cache + (size_t)pos * kv_dim;

            rmsnorm(x + (size_t)t * n_embd, l->attn_norm, h, n_embd, hp->rms_eps);
            matvec(l->wq, h, qt, q_dim, n_embd);
            matvec(l->wk, h, kt, kv_dim, n_embd);
            matvec(l->wv, h, vt, kv_dim, n_embd);
            add_bias(qt, l->bq, q_dim);
            add_bias(kt, l->bk, kv_dim);
            add_bias(vt, l->bv, kv_dim);
            for (uint32_t hh = 0; hh < hp->n_head && l->q_norm; hh++) {
                float *head = qt + (size_t)hh * hp->head_dim;
                rmsnorm(head, l->q_norm, head, hp->head_dim, hp->rms_eps);
            }
            for (uint32_t hh = 0; hh < hp->n_head_kv && l->k_norm; hh++) {
                float *head = kt + (size_t)hh * hp->head_dim;
                rmsnorm(head, l->k_norm, head, hp->head_dim, hp->rms_eps);
            }
            rope(qt, hp->n_head, hp, &rp, pos);
            rope(kt, hp->n_head_kv, hp, &rp, pos);
            for (uint32_t i = 0; i < kv_dim; i++) {
                kt[i] = round_f16(kt[i]);
                vt[i] = round_f16(vt[i]);
            }
        }

        for (uint32_t t = 0; t < n_tokens; t++) {
            float *xt = x + (size_t)t * n_embd;
            const uint32_t pos = start_pos + t;

            /* 3. Causal grouped-query attention (over the window on local layers), output projection,
             *    [post-norm,] residual. */
            attention(hp, l, q + (size_t)t * q_dim, window && pos >= window ? pos - window + 1 : 0, pos, m->removed, att,
                      scores);
            matvec(l->wo, att, proj, n_embd, q_dim);
            if (l->post_attn_norm)
                rmsnorm(proj, l->post_attn_norm, proj, n_embd, hp->rms_eps);
            for (uint32_t i = 0; i < n_embd; i++)
                xt[i] += proj[i];

            /* 4. Gated feed-forward (SiLU or GELU), [post-norm,] residual. */
            rmsnorm(xt, l->ffn_norm, h, n_embd, hp->rms_eps);
            matvec(l->w_gate, h, gate, hp->n_ff, n_embd);
            matvec(l->w_up, h, up, hp->n_ff, n_embd);
            for (uint32_t i = 0; i < hp->n_ff; i++) {
                double g = gate[i];
                gate[i] = (float)((fam->act == ARCH_ACT_GELU_TANH ? gelu_tanh(g) : silu(g)) * (double)up[i]);
            }
            matvec(l->w_down, gate, proj, n_embd, hp->n_ff);
            if (l->post_ffn_norm)
                rmsnorm(proj, l->post_ffn_norm, proj, n_embd, hp->rms_eps);
            for (uint32_t i = 0; i < n_embd; i++)
                xt[i] += proj[i];
        }
    }

    /* 5. Final norm and the output projection, for every token [, soft-capped]. */
    const float *w_out = hp->tied_output ? m->tok_embd : m->output;
    for (uint32_t t = 0; t < n_tokens; t++) {
        float *lt = logits + (size_t)t * hp->n_vocab;
        rmsnorm(x + (size_t)t * n_embd, m->output_norm, h, n_embd, hp->rms_eps);
        matvec(w_out, h, lt, hp->n_vocab, n_embd);
        for (uint32_t i = 0; i < hp->n_vocab && hp->arch.final_softcap > 0; i++)
            lt[i] = (float)softcap(lt[i], hp->arch.final_softcap);
    }
    m->n_cached = start_pos + n_tokens;
    st = VKLLM_OK;

done:
    free(x), free(h), free(q), free(att), free(proj), free(gate), free(up), free(scores);
    return st;
}

vkllm_status ref_llama_remove(ref_llama *m, uint32_t p0, uint32_t p1)
{
    if (m == NULL || p0 > p1 || p1 > m->n_cached)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "ref_llama_remove: positions [%u, %u) of %u", p0, p1,
                         m ? m->n_cached : 0);
    if (p1 > p0)
        memset(m->removed + p0, 1, p1 - p0);
    return VKLLM_OK;
}

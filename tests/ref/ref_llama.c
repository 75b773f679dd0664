/* CPU reference forward pass for Llama-architecture GGUF models. See ref_llama.h.
 *
 * The model, per token x (a row of n_embd floats):
 *
 *   x = token_embd[token]
 *   for each layer:
 *       h = rmsnorm(x) * attn_norm
 *       q = Wq h, k = Wk h, v = Wv h                 (q: n_head heads, k/v: n_head_kv heads of head_dim)
 *       rope(q), rope(k) at the token's position      (interleaved pairs (2i, 2i+1))
 *       cache[pos] = f16(k), f16(v)
 *       a = per head: softmax(q . K[0..pos] / sqrt(head_dim)) V[0..pos]   (query head h reads kv head
 *                                                                          h / (n_head / n_head_kv))
 *       x = x + Wo a
 *       h = rmsnorm(x) * ffn_norm
 *       x = x + Wdown (silu(Wgate h) * Wup h)
 *   logits = Wout (rmsnorm(x) * output_norm)          (Wout = output.weight, or token_embd.weight)
 *
 * Weights are stored as GGUF lays them out: a tensor with ne = {K, M} is M rows of K floats, and a
 * projection computes y[m] = sum_k W[m][k] x[k]. */
#include "ref/ref_llama.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/quant.h"

typedef struct ref_layer {
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
    float *rope_freqs;        /* [n_rot / 2] or NULL */
    ref_layer *layers;
    uint32_t cache_rows;      /* allocated rows of each cache */
    uint32_t n_cached;        /* positions 0..n_cached-1 hold valid K/V */
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
    const gguf_tensor *t = gguf_find_tensor(f, name);
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
    const char *type_name = ggml_type_name(t->type);
    if (type_name == NULL || t->data == NULL) {
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s has type %u, which the reference cannot dequantize",
                         name, t->type);
    }
    uint64_t row_bytes = ggml_row_bytes(t->type, ne0);
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
    dequantize_row(t->type, t->data, data, n);
    *out = data;
    return VKLLM_OK;
}

/* An optional key: absent gives `def`; present but not a fitting number is an error (a per-layer array
 * of head counts, say, must not silently become the default). */
static vkllm_status opt_u32(const gguf_file *f, const char *key, uint32_t def, uint32_t *out)
{
    *out = def;
    if (gguf_find_key(f, key) < 0 || gguf_get_u32(f, key, out))
        return VKLLM_OK;
    return vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s is not an unsigned 32-bit value", key);
}

static vkllm_status opt_f32(const gguf_file *f, const char *key, float def, float *out)
{
    *out = def;
    if (gguf_find_key(f, key) < 0 || gguf_get_f32(f, key, out))
        return VKLLM_OK;
    return vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s is not a float value", key);
}

static vkllm_status read_hparams(const gguf_file *f, ref_llama_hparams *hp)
{
    const char *arch;
    uint64_t arch_len;
    if (!gguf_get_str(f, "general.architecture", &arch, &arch_len)) {
        return vkr_error(VKLLM_ERR_FORMAT, "key general.architecture is missing");
    }
    if (arch_len != 5 || memcmp(arch, "llama", 5) != 0) {
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "architecture \"%.*s\" is not llama", (int)(arch_len > 64 ? 64 : arch_len),
                         arch);
    }

    memset(hp, 0, sizeof *hp);
    static const struct { const char *key; size_t offset; } required[] = {
        {"llama.embedding_length", offsetof(ref_llama_hparams, n_embd)},
        {"llama.block_count", offsetof(ref_llama_hparams, n_layer)},
        {"llama.attention.head_count", offsetof(ref_llama_hparams, n_head)},
        {"llama.feed_forward_length", offsetof(ref_llama_hparams, n_ff)},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        uint32_t *dst = (uint32_t *)((char *)hp + required[i].offset);
        if (!gguf_get_u32(f, required[i].key, dst)) {
            return vkr_error(VKLLM_ERR_FORMAT, "key %s is missing or not an unsigned 32-bit value", required[i].key);
        }
        if (*dst == 0) {
            return vkr_error(VKLLM_ERR_FORMAT, "key %s is 0", required[i].key);
        }
    }

    vkllm_status st = opt_u32(f, "llama.attention.head_count_kv", hp->n_head, &hp->n_head_kv);
    if (st != VKLLM_OK)
        return st;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0) {
        return vkr_error(VKLLM_ERR_FORMAT, "head_count %u is not a multiple of head_count_kv %u", hp->n_head,
                         hp->n_head_kv);
    }

    if (gguf_find_key(f, "llama.attention.key_length") >= 0) {
        st = opt_u32(f, "llama.attention.key_length", 0, &hp->head_dim);
        if (st != VKLLM_OK)
            return st;
    } else {
        if (hp->n_embd % hp->n_head != 0) {
            return vkr_error(VKLLM_ERR_FORMAT, "embedding_length %u is not a multiple of head_count %u",
                             hp->n_embd, hp->n_head);
        }
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    uint32_t value_length;
    st = opt_u32(f, "llama.attention.value_length", hp->head_dim, &value_length);
    if (st != VKLLM_OK)
        return st;
    if (value_length != hp->head_dim) {
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "value_length %u differs from key_length %u", value_length,
                         hp->head_dim);
    }
    if (hp->head_dim == 0 || (uint64_t)hp->n_head * hp->head_dim > INT32_MAX) {
        return vkr_error(VKLLM_ERR_FORMAT, "head dimension %u is out of range", hp->head_dim);
    }

    st = opt_u32(f, "llama.rope.dimension_count", hp->head_dim, &hp->n_rot);
    if (st != VKLLM_OK)
        return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
        return vkr_error(VKLLM_ERR_FORMAT, "rope.dimension_count %u must be even and at most the head dimension %u",
                         hp->n_rot, hp->head_dim);
    }

    st = opt_f32(f, "llama.rope.freq_base", 10000.0f, &hp->rope_base);
    if (st == VKLLM_OK)
        st = opt_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps);
    if (st != VKLLM_OK)
        return st;
    if (!(hp->rope_base > 0.0f) || !isfinite(hp->rope_base) || !(hp->rms_eps >= 0.0f) || !isfinite(hp->rms_eps)) {
        return vkr_error(VKLLM_ERR_FORMAT, "rope.freq_base %g or layer_norm_rms_epsilon %g is out of range",
                         hp->rope_base, hp->rms_eps);
    }
    st = opt_u32(f, "llama.context_length", 0, &hp->n_ctx_train);
    if (st != VKLLM_OK)
        return st;

    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    if (embd == NULL) {
        return vkr_error(VKLLM_ERR_FORMAT, "tensor token_embd.weight is missing");
    }
    if (embd->ne[1] == 0 || embd->ne[1] > INT32_MAX) {
        return vkr_error(VKLLM_ERR_FORMAT, "token_embd.weight has %llu rows", (unsigned long long)embd->ne[1]);
    }
    hp->n_vocab = (uint32_t)embd->ne[1];
    return VKLLM_OK;
}

static vkllm_status load_layer(const gguf_file *f, const ref_llama_hparams *hp, uint32_t il, ref_layer *l)
{
    const uint64_t n_embd = hp->n_embd;
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    const struct { const char *suffix; uint64_t ne0, ne1; float **dst; } tensors[] = {
        {"attn_norm.weight", n_embd, 1, &l->attn_norm},
        {"attn_q.weight", n_embd, q_dim, &l->wq},
        {"attn_k.weight", n_embd, kv_dim, &l->wk},
        {"attn_v.weight", n_embd, kv_dim, &l->wv},
        {"attn_output.weight", q_dim, n_embd, &l->wo},
        {"ffn_norm.weight", n_embd, 1, &l->ffn_norm},
        {"ffn_gate.weight", n_embd, hp->n_ff, &l->w_gate},
        {"ffn_up.weight", n_embd, hp->n_ff, &l->w_up},
        {"ffn_down.weight", hp->n_ff, n_embd, &l->w_down},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", il, tensors[i].suffix);
        vkllm_status st = load_tensor(f, name, tensors[i].ne0, tensors[i].ne1, false, tensors[i].dst);
        if (st != VKLLM_OK)
            return st;
    }
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
    st = load_tensor(f, "rope_freqs.weight", hp->n_rot / 2, 1, true, &m->rope_freqs);
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
            free(l->attn_norm), free(l->wq), free(l->wk), free(l->wv), free(l->wo);
            free(l->ffn_norm), free(l->w_gate), free(l->w_up), free(l->w_down);
            free(l->k_cache), free(l->v_cache);
        }
        free(m->layers);
    }
    free(m->tok_embd);
    free(m->output_norm);
    free(m->output);          /* NULL when tied */
    free(m->rope_freqs);
    free(m);
}

const ref_llama_hparams *ref_llama_get_hparams(const ref_llama *m) { return &m->hp; }

uint32_t ref_llama_n_vocab(const ref_llama *m) { return m->hp.n_vocab; }

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

/* Rotates the pairs (v[2i], v[2i+1]) for 2i < n_rot of each of n_heads heads by the angle
 * pos * base^(-2i/n_rot) (divided by freq_factors[i] when given). Dimensions from n_rot on are kept. */
static void rope(float *v, uint32_t n_heads, const ref_llama_hparams *hp, const float *freq_factors, uint32_t pos)
{
    for (uint32_t h = 0; h < n_heads; h++) {
        float *head = v + (size_t)h * hp->head_dim;
        for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
            double theta = (double)pos * pow((double)hp->rope_base, -2.0 * i / hp->n_rot);
            if (freq_factors != NULL)
                theta /= (double)freq_factors[i];
            double c = cos(theta), s = sin(theta);
            double x0 = head[2 * i], x1 = head[2 * i + 1];
            head[2 * i] = (float)(x0 * c - x1 * s);
            head[2 * i + 1] = (float)(x0 * s + x1 * c);
        }
    }
}

/* The value the GPU's f16 KV cache would hold. */
static float round_f16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* out (n_head * head_dim) = attention of the query q at position pos over cache rows 0..pos. */
static void attention(const ref_llama_hparams *hp, const ref_layer *l, const float *q, uint32_t pos, float *out,
                      double *scores)
{
    const uint32_t kv_dim = hp->n_head_kv * hp->head_dim;
    const uint32_t group = hp->n_head / hp->n_head_kv;   /* query heads per kv head */
    const double scale = 1.0 / sqrt((double)hp->head_dim);

    for (uint32_t h = 0; h < hp->n_head; h++) {
        const float *qh = q + (size_t)h * hp->head_dim;
        const uint32_t kvh = h / group;

        /* scores over the positions this token may see (the causal mask: j <= pos) */
        double max_score = -INFINITY;
        for (uint32_t j = 0; j <= pos; j++) {
            const float *kj = l->k_cache + (size_t)j * kv_dim + (size_t)kvh * hp->head_dim;
            double dot = 0.0;
            for (uint32_t d = 0; d < hp->head_dim; d++)
                dot += (double)qh[d] * (double)kj[d];
            scores[j] = dot * scale;
            if (scores[j] > max_score)
                max_score = scores[j];
        }
        /* softmax */
        double sum = 0.0;
        for (uint32_t j = 0; j <= pos; j++) {
            scores[j] = exp(scores[j] - max_score);
            sum += scores[j];
        }
        /* weighted sum of the values */
        float *oh = out + (size_t)h * hp->head_dim;
        for (uint32_t d = 0; d < hp->head_dim; d++) {
            double acc = 0.0;
            for (uint32_t j = 0; j <= pos; j++)
                acc += scores[j] * (double)l->v_cache[(size_t)j * kv_dim + (size_t)kvh * hp->head_dim + d];
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

    /* 1. Embedding: each token's row of token_embd. */
    for (uint32_t t = 0; t < n_tokens; t++)
        memcpy(x + (size_t)t * n_embd, m->tok_embd + (size_t)tokens[t] * n_embd, n_embd * sizeof(float));

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const ref_layer *l = &m->layers[il];

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
            rope(qt, hp->n_head, hp, m->rope_freqs, pos);
            rope(kt, hp->n_head_kv, hp, m->rope_freqs, pos);
            for (uint32_t i = 0; i < kv_dim; i++) {
                kt[i] = round_f16(kt[i]);
                vt[i] = round_f16(vt[i]);
            }
        }

        for (uint32_t t = 0; t < n_tokens; t++) {
            float *xt = x + (size_t)t * n_embd;

            /* 3. Causal grouped-query attention, output projection, residual. */
            attention(hp, l, q + (size_t)t * q_dim, start_pos + t, att, scores);
            matvec(l->wo, att, proj, n_embd, q_dim);
            for (uint32_t i = 0; i < n_embd; i++)
                xt[i] += proj[i];

            /* 4. SwiGLU feed-forward, residual. */
            rmsnorm(xt, l->ffn_norm, h, n_embd, hp->rms_eps);
            matvec(l->w_gate, h, gate, hp->n_ff, n_embd);
            matvec(l->w_up, h, up, hp->n_ff, n_embd);
            for (uint32_t i = 0; i < hp->n_ff; i++)
                gate[i] = (float)(silu(gate[i]) * (double)up[i]);
            matvec(l->w_down, gate, proj, n_embd, hp->n_ff);
            for (uint32_t i = 0; i < n_embd; i++)
                xt[i] += proj[i];
        }
    }

    /* 5. Final norm and the output projection, for every token. */
    const float *w_out = hp->tied_output ? m->tok_embd : m->output;
    for (uint32_t t = 0; t < n_tokens; t++) {
        rmsnorm(x + (size_t)t * n_embd, m->output_norm, h, n_embd, hp->rms_eps);
        matvec(w_out, h, logits + (size_t)t * hp->n_vocab, hp->n_vocab, n_embd);
    }
    m->n_cached = start_pos + n_tokens;
    st = VKLLM_OK;

done:
    free(x), free(h), free(q), free(att), free(proj), free(gate), free(up), free(scores);
    return st;
}

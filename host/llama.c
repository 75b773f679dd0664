/* The Llama forward pass as a graph of device ops, read top to bottom in build_graph(). */
#include "host/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/quant.h"
#include "runtime/log.h"

/* ---- Hyper-parameters ---- */

static vkllm_status require_u32(const gguf_file *f, const char *key, uint32_t *v)
{
    if (!gguf_get_u32(f, key, v))
        return vkr_error(VKLLM_ERR_FORMAT, "missing or invalid key %s", key);
    if (*v == 0)
        return vkr_error(VKLLM_ERR_FORMAT, "key %s is 0", key);
    return VKLLM_OK;
}

vkllm_status llama_read_hparams(const gguf_file *f, llama_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    const char *arch;
    uint64_t arch_len;
    if (!gguf_get_str(f, "general.architecture", &arch, &arch_len))
        return vkr_error(VKLLM_ERR_FORMAT, "missing key general.architecture");
    if (arch_len != 5 || memcmp(arch, "llama", 5) != 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (vkllm runs 'llama')",
                         (int)(arch_len > 64 ? 64 : arch_len), arch);
    vkllm_status st;
    if ((st = require_u32(f, "llama.embedding_length", &hp->n_embd)) ||
        (st = require_u32(f, "llama.block_count", &hp->n_layer)) ||
        (st = require_u32(f, "llama.attention.head_count", &hp->n_head)) ||
        (st = require_u32(f, "llama.feed_forward_length", &hp->n_ff)))
        return st;
    hp->n_head_kv = hp->n_head;
    if (gguf_find_key(f, "llama.attention.head_count_kv") >= 0 &&
        (st = require_u32(f, "llama.attention.head_count_kv", &hp->n_head_kv)))
        return st;
    if (hp->n_head % hp->n_head_kv)
        return vkr_error(VKLLM_ERR_FORMAT, "head_count %u is not a multiple of head_count_kv %u", hp->n_head,
                         hp->n_head_kv);
    if (hp->n_embd % hp->n_head)
        return vkr_error(VKLLM_ERR_FORMAT, "embedding_length %u is not a multiple of head_count %u", hp->n_embd,
                         hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim % 2 || hp->head_dim > 256)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "head dimension %u is not supported (even, at most 256)", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (gguf_find_key(f, "llama.rope.dimension_count") >= 0 &&
        (st = require_u32(f, "llama.rope.dimension_count", &hp->n_rot)))
        return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return vkr_error(VKLLM_ERR_FORMAT, "rope.dimension_count %u does not fit head dimension %u", hp->n_rot,
                         hp->head_dim);
    hp->n_ctx_train = 2048;
    gguf_get_u32(f, "llama.context_length", &hp->n_ctx_train);
    hp->rope_theta = 10000.0f;
    gguf_get_f32(f, "llama.rope.freq_base", &hp->rope_theta);
    hp->rms_eps = 1e-5f;
    gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps);
    if (!(hp->rope_theta > 0) || !(hp->rms_eps > 0))
        return vkr_error(VKLLM_ERR_FORMAT, "rope.freq_base and layer_norm_rms_epsilon must be positive");
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb)
        return vkr_error(VKLLM_ERR_FORMAT, "missing tensor token_embd.weight");
    if (emb->ne[1] == 0 || emb->ne[1] > (1u << 24))
        return vkr_error(VKLLM_ERR_FORMAT, "token_embd.weight: implausible vocabulary size %llu",
                         (unsigned long long)emb->ne[1]);
    hp->n_vocab = (uint32_t)emb->ne[1];
    return VKLLM_OK;
}

/* ---- Weights ---- */

typedef struct loader {
    vkr_device *dev;
    const gguf_file *f;
    llama_progress_fn progress;
    void *user;
    uint64_t done, total;
} loader;

/* Finds a tensor and checks its type and shape: [ne0, ne1] (ne1 == 0: a vector of ne0). */
static vkllm_status find_tensor(loader *ld, const char *name, uint64_t ne0, uint64_t ne1, const gguf_tensor **out)
{
    const gguf_tensor *t = gguf_find_tensor(ld->f, name);
    if (!t)
        return vkr_error(VKLLM_ERR_FORMAT, "missing tensor %s", name);
    if (!ggml_type_get(t->type) || !op_weight_type_supported(t->type))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s has type %s (%u), %s", name,
                         ggml_type_label(t->type) ? ggml_type_label(t->type) : "unknown", t->type,
                         ggml_type_get(t->type) ? "which vkllm has no kernels for yet" : "which vkllm does not read");
    uint64_t want_ne1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want_ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s has shape [%llu, %llu, %llu, %llu]; expected [%llu, %llu]", name,
                         (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                         (unsigned long long)t->ne[3], (unsigned long long)ne0, (unsigned long long)want_ne1);
    if (!t->data)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor %s has no data", name);
    *out = t;
    return VKLLM_OK;
}

static void advance(loader *ld, uint64_t bytes)
{
    ld->done += bytes;
    if (ld->progress)
        ld->progress(ld->done, ld->total, ld->user);
}

static vkllm_status load_tensor(loader *ld, const char *name, uint64_t ne0, uint64_t ne1, vk_tensor *out)
{
    const gguf_tensor *t = NULL;
    vkllm_status st = find_tensor(ld, name, ne0, ne1, &t); /* its messages name the tensor already */
    if (st != VKLLM_OK)
        return st;
    st = vk_tensor_upload(ld->dev, t->type, ne0, t->ne[1], t->data, out);
    if (st != VKLLM_OK)
        return vkr_error(st, "tensor %s: %s", name, vkr_last_error());
    advance(ld, t->nbytes);
    return VKLLM_OK;
}

/* Loads n weights that multiply the same input as one stacked tensor with views when their types match
 * and the views line up; otherwise as separate tensors. *fused says which. */
static vkllm_status load_group(loader *ld, uint32_t n, const char *const *names, uint64_t ne0, const uint64_t *ne1,
                               vk_tensor *stacked, vk_tensor *const *parts, bool *fused)
{
    const gguf_tensor *t[4];
    const void *data[4];
    uint64_t bytes = 0;
    *fused = false;
    for (uint32_t i = 0; i < n; i++) {
        vkllm_status st = find_tensor(ld, names[i], ne0, ne1[i], &t[i]);
        if (st != VKLLM_OK)
            return st;
        data[i] = t[i]->data;
        bytes += t[i]->nbytes;
        if (t[i]->type != t[0]->type)
            goto separate;
    }
    vkllm_status st = vk_tensor_upload_stacked(ld->dev, t[0]->type, ne0, n, ne1, data, stacked);
    if (st != VKLLM_OK)
        return vkr_error(st, "tensor %s: %s", names[0], vkr_last_error());
    uint64_t row = 0;
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; row += ne1[i], i++)
        ok = vk_tensor_rows(stacked, row, ne1[i], parts[i]);
    if (ok) {
        *fused = true;
        advance(ld, bytes);
        return VKLLM_OK;
    }
    vk_tensor_free(ld->dev, stacked);
separate:
    for (uint32_t i = 0; i < n; i++) {
        vkllm_status st = load_tensor(ld, names[i], ne0, ne1[i], parts[i]);
        if (st != VKLLM_OK)
            return st;
    }
    return VKLLM_OK;
}

vkllm_status llama_model_load(vkr_device *dev, const gguf_file *f, llama_progress_fn progress, void *user,
                              llama_model **out)
{
    *out = NULL;
    llama_model *m = calloc(1, sizeof *m);
    if (!m)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->dev = dev;
    vkllm_status st = llama_read_hparams(f, &m->hp);
    const llama_hparams *hp = &m->hp;
    if (st == VKLLM_OK && !(m->layers = calloc(hp->n_layer, sizeof *m->layers)))
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st != VKLLM_OK) {
        free(m);
        return st;
    }
    loader ld = {dev, f, progress, user, 0, 0};
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++)
        ld.total += gguf_tensor_at(f, i)->nbytes;
    m->weight_bytes = ld.total;

    uint32_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    st = load_tensor(&ld, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd);
    if (st == VKLLM_OK)
        st = load_tensor(&ld, "output_norm.weight", hp->n_embd, 0, &m->output_norm);
    if (st == VKLLM_OK) {
        m->output_tied = gguf_find_tensor(f, "output.weight") == NULL;
        if (!m->output_tied)
            st = load_tensor(&ld, "output.weight", hp->n_embd, hp->n_vocab, &m->output);
    }
    if (st == VKLLM_OK && gguf_find_tensor(f, "rope_freqs.weight")) {
        m->has_rope_freqs = true;
        st = load_tensor(&ld, "rope_freqs.weight", hp->n_rot / 2, 0, &m->rope_freqs);
        if (st == VKLLM_OK && m->rope_freqs.type != GGML_TYPE_F32)
            st = vkr_error(VKLLM_ERR_UNSUPPORTED, "rope_freqs.weight must be f32");
    }
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        llama_layer *L = &m->layers[l];
        char name[4][96];
        const char *names[4] = {name[0], name[1], name[2], name[3]};
#define NAME(i, s) snprintf(name[i], sizeof name[i], "blk.%u." s ".weight", l)
        NAME(0, "attn_q"), NAME(1, "attn_k"), NAME(2, "attn_v");
        const uint64_t qkv_rows[3] = {q_dim, kv_dim, kv_dim};
        vk_tensor *qkv[3] = {&L->wq, &L->wk, &L->wv};
        st = load_group(&ld, 3, names, hp->n_embd, qkv_rows, &L->wqkv, qkv, &L->fused_qkv);
        NAME(0, "ffn_gate"), NAME(1, "ffn_up");
        const uint64_t ffn_rows[2] = {hp->n_ff, hp->n_ff};
        vk_tensor *gate_up[2] = {&L->w_gate, &L->w_up};
        if (st == VKLLM_OK)
            st = load_group(&ld, 2, names, hp->n_embd, ffn_rows, &L->w_gate_up, gate_up, &L->fused_gate_up);
        NAME(0, "attn_norm"), NAME(1, "attn_output"), NAME(2, "ffn_norm"), NAME(3, "ffn_down");
#undef NAME
        if (st == VKLLM_OK)
            st = load_tensor(&ld, names[0], hp->n_embd, 0, &L->attn_norm);
        if (st == VKLLM_OK)
            st = load_tensor(&ld, names[1], q_dim, hp->n_embd, &L->wo);
        if (st == VKLLM_OK)
            st = load_tensor(&ld, names[2], hp->n_embd, 0, &L->ffn_norm);
        if (st == VKLLM_OK)
            st = load_tensor(&ld, names[3], hp->n_ff, hp->n_embd, &L->w_down);
        if (st == VKLLM_OK && (L->attn_norm.type != GGML_TYPE_F32 || L->ffn_norm.type != GGML_TYPE_F32))
            st = vkr_error(VKLLM_ERR_UNSUPPORTED, "blk.%u: norm weights must be f32", l);
    }
    if (st == VKLLM_OK && m->output_norm.type != GGML_TYPE_F32)
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "output_norm.weight must be f32");
    if (st != VKLLM_OK) {
        llama_model_free(m);
        return st;
    }
    m->weight_type = m->layers[0].wq.type;
    *out = m;
    return VKLLM_OK;
}

void llama_model_free(llama_model *m)
{
    if (!m)
        return;
    vkr_device *dev = m->dev;
    vk_tensor_free(dev, &m->tok_embd);
    vk_tensor_free(dev, &m->output_norm);
    vk_tensor_free(dev, &m->output);
    vk_tensor_free(dev, &m->rope_freqs);
    if (m->layers) {
        for (uint32_t l = 0; l < m->hp.n_layer; l++) {
            llama_layer *L = &m->layers[l];
            vk_tensor *ts[] = {&L->attn_norm, &L->wq,     &L->wk,     &L->wv,        &L->wo,  &L->ffn_norm,
                               &L->w_gate,    &L->w_up,   &L->w_down, &L->w_gate_up, &L->wqkv};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
                vk_tensor_free(dev, ts[i]);
        }
        free(m->layers);
    }
    free(m);
}

/* ---- Context: KV cache, activations, graphs ---- */

/* Decode positions from which attention is split over the cache (flash decoding); below it one
 * workgroup per head is enough and the merge would cost more than it saves. */
#define ATTN_SPLIT_FROM 512

struct llama_context {
    llama_model *m;
    uint32_t n_ctx, n_batch;
    vkr_buffer **k_cache, **v_cache;   /* per layer, f16 [n_ctx][kv_dim] */
    vkr_buffer *ids, *pos;             /* host-visible, n_batch uint32: rewritten before each submit */
    vkr_buffer *x, *xb, *attn, *proj;
    vkr_buffer *qkv;                   /* n x [q] then n x [k] then n x [v]: for one token, Wqkv's output */
    vkr_buffer *ffn;                   /* n x [gate] then n x [up]: for one token, W_gate_up's output */
    vkr_buffer *logits;                /* host-visible, one row: the last token's logits */
    vkr_buffer *logits_all;            /* device, rows_all_logits rows (perplexity) */
    uint32_t rows_all_logits;
    vkr_graph *decode;                 /* n = 1, recorded once, replayed per token */
    vkr_graph *decode_long;            /* the same with split attention, for positions >= ATTN_SPLIT_FROM */
    uint32_t attn_split;               /* parts per (row, head) in decode_long; 1: never split */
    uint32_t attn_split_from;          /* first position decoded with decode_long */
    vkr_buffer *attn_scratch;
    vkr_graph *batch;                  /* the last batch shape, kept for reuse */
    uint32_t batch_n;
    bool batch_all_logits;
    bool timing;
    bool profile;                      /* VKLLM_PROFILE=1: per-op GPU times on stderr after each batch */
    double last_gpu_ns;
};

uint32_t llama_context_n_ctx(const llama_context *c) { return c->n_ctx; }
const float *llama_context_logits(const llama_context *c) { return c->logits->mapped; }
void llama_context_set_timing(llama_context *c, bool on)
{
    if (c->timing == on)
        return;
    c->timing = on;
    /* Recorded graphs carry (or lack) their timestamp queries: record them again. */
    vkr_graph_clear(c->decode);
    vkr_graph_clear(c->decode_long);
    vkr_graph_clear(c->batch);
}
double llama_context_last_gpu_ns(const llama_context *c) { return c->last_gpu_ns; }
const vkr_graph *llama_context_decode_graph(const llama_context *c) { return c->decode; }

static vkllm_status make_buffer(vkr_device *dev, uint64_t bytes, vkr_memory_kind kind, vkr_buffer **out)
{
    return vkr_buffer_create(dev, bytes, kind, out);
}

vkllm_status llama_context_create(llama_model *m, uint32_t n_ctx, uint32_t n_batch, llama_context **out)
{
    *out = NULL;
    if (n_ctx == 0 || n_batch == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "context and batch sizes must be at least 1");
    llama_context *c = calloc(1, sizeof *c);
    if (!c)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    const llama_hparams *hp = &m->hp;
    vkr_device *dev = m->dev;
    c->m = m;
    c->n_ctx = n_ctx;
    const char *profile = getenv("VKLLM_PROFILE");
    c->profile = c->timing = profile && *profile && strcmp(profile, "0") != 0;
    c->n_batch = n_batch < n_ctx ? n_batch : n_ctx;
    uint64_t nb = c->n_batch;
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t range = dev->info.features.max_storage_buffer_range;
    c->rows_all_logits = (uint32_t)(range / ((uint64_t)hp->n_vocab * 4));
    if (c->rows_all_logits > c->n_batch)
        c->rows_all_logits = c->n_batch;

    vkllm_status st = VKLLM_OK;
    /* Each layer's K and V caches are bound whole by the kernels: refuse a context the device cannot bind,
     * here with a clear message rather than at the first decode. */
    uint64_t kv_bytes = (uint64_t)n_ctx * kv_dim * 2;
    if (kv_bytes > range) {
        free(c);
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "a context of %u positions needs a %.1f MiB K/V cache per layer, more than this device "
                         "can bind (maxStorageBufferRange %.1f MiB): use at most %llu positions",
                         n_ctx, kv_bytes / 1048576.0, range / 1048576.0, (unsigned long long)(range / (kv_dim * 2)));
    }
    c->k_cache = calloc(hp->n_layer, sizeof *c->k_cache);
    c->v_cache = calloc(hp->n_layer, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache)
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        st = make_buffer(dev, (uint64_t)n_ctx * kv_dim * 2, VKR_MEMORY_DEVICE, &c->k_cache[l]);
        if (st == VKLLM_OK)
            st = make_buffer(dev, (uint64_t)n_ctx * kv_dim * 2, VKR_MEMORY_DEVICE, &c->v_cache[l]);
    }
    struct {
        vkr_buffer **b;
        uint64_t bytes;
        vkr_memory_kind kind;
    } bufs[] = {
        {&c->ids, nb * 4, VKR_MEMORY_HOST},
        {&c->pos, nb * 4, VKR_MEMORY_HOST},
        {&c->x, nb * hp->n_embd * 4, VKR_MEMORY_DEVICE},
        {&c->xb, nb * hp->n_embd * 4, VKR_MEMORY_DEVICE},
        {&c->qkv, nb * (q_dim + 2 * kv_dim) * 4, VKR_MEMORY_DEVICE},
        {&c->attn, nb * q_dim * 4, VKR_MEMORY_DEVICE},
        {&c->proj, nb * hp->n_embd * 4, VKR_MEMORY_DEVICE},
        {&c->ffn, nb * 2 * hp->n_ff * 4, VKR_MEMORY_DEVICE},
        {&c->logits, (uint64_t)hp->n_vocab * 4, VKR_MEMORY_HOST},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0] && st == VKLLM_OK; i++)
        st = make_buffer(dev, bufs[i].bytes, bufs[i].kind, bufs[i].b);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->decode);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->decode_long);
    /* Flash decoding: one token has only n_head (row, head) pairs of attention work, too few to fill a
     * GPU once the context is long; split each over enough parts for ~256 workgroups. A CPU device has
     * few cores and no use for it. */
    c->attn_split = 1;
    c->attn_split_from = ATTN_SPLIT_FROM;
    const char *force = getenv("VKLLM_ATTN_SPLIT"); /* tests: split from position 0 into this many parts */
    if (force && atoi(force) > 1) {
        c->attn_split = (uint32_t)(atoi(force) > 64 ? 64 : atoi(force));
        c->attn_split_from = 0;
    } else if (dev->info.type != VK_PHYSICAL_DEVICE_TYPE_CPU && n_ctx > ATTN_SPLIT_FROM) {
        c->attn_split = (256 + hp->n_head - 1) / hp->n_head;
        c->attn_split = c->attn_split < 2 ? 2 : c->attn_split > 32 ? 32 : c->attn_split;
    }
    if (c->attn_split > 1) {
        if (st == VKLLM_OK)
            st = make_buffer(dev, (uint64_t)hp->n_head * c->attn_split * (hp->head_dim + 2) * 4, VKR_MEMORY_DEVICE,
                             &c->attn_scratch);
    }
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->batch);
    if (st != VKLLM_OK) {
        llama_context_free(c);
        return st;
    }
    *out = c;
    return VKLLM_OK;
}

void llama_context_free(llama_context *c)
{
    if (!c)
        return;
    vkr_device *dev = c->m->dev;
    vkr_graph_destroy(c->decode);
    vkr_graph_destroy(c->decode_long);
    vkr_graph_destroy(c->batch);
    for (uint32_t l = 0; l < c->m->hp.n_layer; l++) {
        if (c->k_cache)
            vkr_buffer_destroy(dev, c->k_cache[l]);
        if (c->v_cache)
            vkr_buffer_destroy(dev, c->v_cache[l]);
    }
    free(c->k_cache);
    free(c->v_cache);
    vkr_buffer *bufs[] = {c->ids, c->pos, c->x, c->xb, c->qkv, c->attn, c->proj, c->ffn, c->logits, c->logits_all,
                          c->attn_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        vkr_buffer_destroy(dev, bufs[i]);
    free(c);
}

/* out[i] = W[i] · (rmsnorm(x) * norm) for i < n_w: fused matvecs where the device's kernel can (few columns,
 * GPUs), else RMSNorm once into c->xb and the matmuls. */
static vkllm_status norm_matmuls(vkr_graph *g, const llama_context *c, vk_view x, const vk_tensor *norm,
                                 uint32_t n_w, const vk_tensor *const *w, const vk_view *out, uint32_t n)
{
    const llama_hparams *hp = &c->m->hp;
    const vk_matmul_fusion f = {.norm = norm, .eps = hp->rms_eps};
    const vk_view xb = vk_view_of(c->xb, 0);
    bool normed = false;   /* xb holds rmsnorm(x) * norm */
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n_w && st == VKLLM_OK; i++) {
        bool fused = false;
        st = op_matmul_fused(g, w[i], x, out[i], n, &f, &fused);
        if (st != VKLLM_OK || fused)
            continue;
        if (!normed)
            st = op_rmsnorm(g, x, norm, xb, n, hp->n_embd, hp->rms_eps);
        normed = true;
        if (st == VKLLM_OK)
            st = op_matmul(g, w[i], xb, out[i], n);
    }
    return st;
}

/* x += W · a: one fused matvec, else the matmul into c->proj and an add. */
static vkllm_status matmul_add(vkr_graph *g, const llama_context *c, const vk_tensor *w, vk_view a, vk_view x,
                               uint32_t n)
{
    const vk_matmul_fusion f = {.accumulate = true};
    bool fused = false;
    vkllm_status st = op_matmul_fused(g, w, a, x, n, &f, &fused);
    if (st != VKLLM_OK || fused)
        return st;
    vk_view proj = vk_view_of(c->proj, 0);
    st = op_matmul(g, w, a, proj, n);
    return st != VKLLM_OK ? st : op_add(g, x, proj, x, n * c->m->hp.n_embd);
}

/* out = silu(W_gate · n(x)) * (W_up · n(x)) with n(x) = rmsnorm(x) * L->ffn_norm: one fused matvec over the
 * stacked W_gate;W_up where the kernel can, else norm_matmuls and silu_mul. out holds n * n_ff
 * floats, followed by room for as many more (the up half). */
static vkllm_status ffn_gate_up(vkr_graph *g, const llama_context *c, const llama_layer *L, vk_view x, vk_view out,
                                uint32_t n)
{
    const llama_hparams *hp = &c->m->hp;
    vkllm_status st = VKLLM_OK;
    if (L->fused_gate_up) {
        const vk_matmul_fusion f = {.norm = &L->ffn_norm, .eps = hp->rms_eps, .glu = true};
        bool fused = false;
        st = op_matmul_fused(g, &L->w_gate_up, x, out, n, &f, &fused);
        if (st != VKLLM_OK || fused)
            return st;
    }
    const vk_view up = vk_view_of(out.buf, out.offset + (uint64_t)n * hp->n_ff * 4);
    if (n == 1 && L->fused_gate_up) { /* one token: gate and up are consecutive, as W_gate;W_up's rows are */
        const vk_tensor *w = &L->w_gate_up;
        st = norm_matmuls(g, c, x, &L->ffn_norm, 1, &w, &out, 1);
    } else {
        const vk_tensor *w[2] = {&L->w_gate, &L->w_up};
        const vk_view outs[2] = {out, up};
        st = norm_matmuls(g, c, x, &L->ffn_norm, 2, w, outs, n);
    }
    if (!st) st = op_silu_mul(g, out, up, out, n * hp->n_ff);
    return st;
}

/* Records the forward pass of n tokens (ids and positions read from c->ids / c->pos) into g. */
/* split: parts of split attention (flash decoding), 1 for none. */
static vkllm_status build_graph(llama_context *c, vkr_graph *g, uint32_t n, bool all_logits, uint32_t split)
{
    const llama_model *m = c->m;
    const llama_hparams *hp = &m->hp;
    const uint64_t row = (uint64_t)hp->n_embd * 4;
    vk_view ids = vk_view_of(c->ids, 0), pos = vk_view_of(c->pos, 0);
    vk_view x = vk_view_of(c->x, 0);
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    vk_view q = vk_view_of(c->qkv, 0), k = vk_view_of(c->qkv, n * q_dim * 4);
    vk_view v = vk_view_of(c->qkv, n * (q_dim + kv_dim) * 4);
    vk_view ffn = vk_view_of(c->ffn, 0);
    vk_view attn = vk_view_of(c->attn, 0);
    /* rope of K (over the kv heads); Q is turned with the same parameters by the same dispatch */
    const vk_rope_params rk = {
        .n_rows = n, .n_heads = hp->n_head_kv, .head_dim = hp->head_dim, .n_rot = hp->n_rot,
        .theta_base = hp->rope_theta, .mode = VK_ROPE_INTERLEAVED,
        .freq_factors = m->has_rope_freqs ? &m->rope_freqs : NULL,
    };
    vk_attention_params ap = {
        .n_rows = n, .n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv, .head_dim = hp->head_dim,
        .n_ctx = c->n_ctx, .scale = 1.0f / sqrtf((float)hp->head_dim),
        .n_split = split, .scratch = vk_view_of(c->attn_scratch, 0),
    };
    vkllm_status st = op_get_rows(g, &m->tok_embd, ids, x, n);
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        const llama_layer *L = &m->layers[l];
        vk_view kc = vk_view_of(c->k_cache[l], 0), vc = vk_view_of(c->v_cache[l], 0);
        /* attention block: x += Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)) */
        if (n == 1 && L->fused_qkv) { /* one token: q, k, v are consecutive, as Wqkv's rows are */
            const vk_tensor *w = &L->wqkv;
            if (!st) st = norm_matmuls(g, c, x, &L->attn_norm, 1, &w, &q, 1);
        } else {
            const vk_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
            const vk_view out[3] = {q, k, v};
            if (!st) st = norm_matmuls(g, c, x, &L->attn_norm, 3, w, out, n);
        }
        /* q is turned in place, k on its way into the cache: one dispatch */
        if (!st) st = op_rope_kv_store(g, q, k, v, kc, vc, pos, &rk, &ap);
        if (!st) st = op_attention(g, q, kc, vc, pos, attn, &ap);
        if (!st) st = matmul_add(g, c, &L->wo, attn, x, n);
        /* feed-forward block: x += W_down · (silu(W_gate·n(x)) * (W_up·n(x))) */
        if (!st) st = ffn_gate_up(g, c, L, x, ffn, n);
        if (!st) st = matmul_add(g, c, &L->w_down, ffn, x, n);
    }
    const vk_tensor *out_w = m->output_tied ? &m->tok_embd : &m->output;
    if (st == VKLLM_OK && all_logits) {
        const vk_view logits = vk_view_of(c->logits_all, 0);
        st = norm_matmuls(g, c, x, &m->output_norm, 1, &out_w, &logits, n);
    } else if (st == VKLLM_OK) {
        /* Only the last token's logits are needed to continue the text. */
        const vk_view last = vk_view_of(c->x, (uint64_t)(n - 1) * row), logits = vk_view_of(c->logits, 0);
        st = norm_matmuls(g, c, last, &m->output_norm, 1, &out_w, &logits, 1);
    }
    if (st == VKLLM_OK)
        st = vkr_graph_record(g, c->timing);
    return st;
}

/* Sums GPU time per dispatch name and logs the table (info level), most expensive first. */
static void print_profile(const vkr_graph *g, uint32_t n_tokens)
{
    enum { MAX_NAMES = 64 };
    const char *names[MAX_NAMES];
    double ns[MAX_NAMES];
    uint32_t count[MAX_NAMES], n_names = 0;
    double total = 0;
    for (uint32_t i = 0; i < vkr_graph_size(g); i++) {
        const char *name = vkr_graph_dispatch_name(g, i);
        uint32_t j = 0;
        while (j < n_names && strcmp(names[j], name) != 0)
            j++;
        if (j == n_names) {
            if (n_names == MAX_NAMES)
                continue;
            names[j] = name;
            ns[j] = 0;
            count[j] = 0;
            n_names++;
        }
        ns[j] += vkr_graph_dispatch_ns(g, i);
        count[j]++;
        total += vkr_graph_dispatch_ns(g, i);
    }
    vkr_log(VKLLM_LOG_INFO, "profile: %u token(s), %u dispatches, %u barriers, GPU %.3f ms", n_tokens,
            vkr_graph_size(g), vkr_graph_barrier_count(g), total / 1e6);
    for (uint32_t k = 0; k < n_names; k++) {
        uint32_t best = k;
        for (uint32_t j = k + 1; j < n_names; j++)
            if (ns[j] > ns[best])
                best = j;
        const char *tn = names[k];
        double tt = ns[k];
        uint32_t tc = count[k];
        names[k] = names[best], ns[k] = ns[best], count[k] = count[best];
        names[best] = tn, ns[best] = tt, count[best] = tc;
        vkr_log(VKLLM_LOG_INFO, "  %-24s %5u x  %9.3f ms  %5.1f%%", names[k], count[k], ns[k] / 1e6,
                total > 0 ? 100.0 * ns[k] / total : 0.0);
    }
}

static double graph_gpu_ns(const vkr_graph *g)
{
    double t = 0;
    for (uint32_t i = 0; i < vkr_graph_size(g); i++)
        t += vkr_graph_dispatch_ns(g, i);
    return t;
}

/* One batch of n <= n_batch tokens. */
static vkllm_status eval_batch(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits,
                               float *logits)
{
    const llama_hparams *hp = &c->m->hp;
    uint32_t *ids = c->ids->mapped, *pos = c->pos->mapped;
    for (uint32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %u)", tokens[i],
                             hp->n_vocab);
        ids[i] = (uint32_t)tokens[i];
        pos[i] = pos0 + i;
    }
    vkr_graph *g;
    vkllm_status st = VKLLM_OK;
    if (n == 1 && !all_logits) {
        bool split = c->attn_split > 1 && pos0 >= c->attn_split_from;
        g = split ? c->decode_long : c->decode;
        if (vkr_graph_size(g) == 0)
            st = build_graph(c, g, 1, false, split ? c->attn_split : 1);
    } else {
        g = c->batch;
        if (vkr_graph_size(g) == 0 || c->batch_n != n || c->batch_all_logits != all_logits) {
            vkr_graph_clear(g);
            c->batch_n = n;
            c->batch_all_logits = all_logits;
            st = build_graph(c, g, n, all_logits, 1);
            if (st != VKLLM_OK)
                vkr_graph_clear(g);
        }
    }
    if (st == VKLLM_OK)
        st = vkr_graph_submit(g);
    if (st == VKLLM_OK)
        st = vkr_graph_wait(g);
    if (st != VKLLM_OK)
        return st;
    c->last_gpu_ns += c->timing ? graph_gpu_ns(g) : 0.0;
    if (c->profile)
        print_profile(g, n);
    if (!logits)
        return VKLLM_OK;
    if (all_logits)
        return vkr_buffer_download(c->m->dev, c->logits_all, 0, logits, (size_t)n * hp->n_vocab * 4);
    memcpy(logits, c->logits->mapped, (size_t)hp->n_vocab * 4);
    return VKLLM_OK;
}

vkllm_status llama_eval(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits,
                        float *logits)
{
    if (n == 0 || !tokens)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    if (pos0 > c->n_ctx || n > c->n_ctx - pos0)
        return vkr_error(VKLLM_ERR_CONTEXT_FULL, "%u tokens at position %u do not fit the context of %u", n, pos0,
                         c->n_ctx);
    /* All ids first: a bad one late in a long prompt must not cost the batches before it. */
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->m->hp.n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %u: id %d is out of range (vocabulary of %u)", i,
                             tokens[i], c->m->hp.n_vocab);
    uint32_t step = c->n_batch;
    if (all_logits) {
        if (c->rows_all_logits == 0)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "one row of logits exceeds the device's maxStorageBufferRange");
        if (!c->logits_all) {
            vkllm_status st = vkr_buffer_create(c->m->dev, (uint64_t)c->rows_all_logits * c->m->hp.n_vocab * 4,
                                                VKR_MEMORY_DEVICE, &c->logits_all);
            if (st != VKLLM_OK)
                return st;
        }
        step = c->rows_all_logits;
    }
    c->last_gpu_ns = 0;
    for (uint32_t done = 0; done < n;) {
        uint32_t b = n - done < step ? n - done : step;
        bool last = done + b == n;
        float *out = logits && all_logits ? logits + (size_t)done * c->m->hp.n_vocab : (last ? logits : NULL);
        vkllm_status st = eval_batch(c, tokens + done, b, pos0 + done, all_logits, out);
        if (st != VKLLM_OK)
            return st;
        done += b;
    }
    return VKLLM_OK;
}

/* The forward pass of every family host/model/arch.h describes, as a graph of device ops, read top to bottom in
 * build_graph(): the Llama block, with the family's extra pieces (biases, Q/K norms, post-norms, GeGLU,
 * sliding windows, soft-caps) switched on by its description. */
#include "host/model/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"
#include "runtime/log.h"

/* ---- Hyper-parameters ---- */

vkllm_status vkl_llama_read_hparams(const gguf_file *f, llama_hparams *hp) { return vkl_arch_read_hparams(f, hp); }

/* ---- Weights ---- */

typedef struct loader {
    vkr_device *dev;
    const gguf_file *f;
    llama_progress_fn progress;
    void *user;
    uint64_t done, total;
    uint32_t n_rot_half;      /* rope frequency tables' length */
} loader;

/* Finds a tensor and checks its type and shape: [ne0, ne1] (ne1 == 0: a vector of ne0). */
static vkllm_status find_tensor(loader *ld, const char *name, uint64_t ne0, uint64_t ne1, const gguf_tensor **out)
{
    const gguf_tensor *t = vkl_gguf_find_tensor(ld->f, name);
    if (!t)
        return vkr_error(VKLLM_ERR_FORMAT, "missing tensor %s", name);
    if (!vkl_ggml_type_get(t->type) || !vkl_op_weight_type_supported(t->type))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s has type %s (%u), %s", name,
                         vkl_ggml_type_label(t->type) ? vkl_ggml_type_label(t->type) : "unknown", t->type,
                         vkl_ggml_type_get(t->type) ? "which vkllm has no kernels for yet" : "which vkllm does not read");
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

static vkllm_status advance(loader *ld, uint64_t bytes)
{
    ld->done += bytes;
    if (ld->progress && !ld->progress(ld->done, ld->total, ld->user))
        return vkr_error(VKLLM_ERR_CANCELLED, "loading cancelled by the progress callback");
    return VKLLM_OK;
}

static vkllm_status load_tensor(loader *ld, const char *name, uint64_t ne0, uint64_t ne1, vk_tensor *out)
{
    const gguf_tensor *t = NULL;
    vkllm_status st = find_tensor(ld, name, ne0, ne1, &t); /* its messages name the tensor already */
    if (st != VKLLM_OK)
        return st;
    void *data = NULL;   /* read, not mapped: a file truncated meanwhile is an error, not a SIGBUS */
    if ((st = vkl_gguf_tensor_load(ld->f, t, &data)) != VKLLM_OK)
        return st;
    st = vkl_tensor_upload(ld->dev, t->type, ne0, t->ne[1], data, out);
    free(data);
    if (st != VKLLM_OK)
        return vkr_error(st, "tensor %s: %s", name, vkr_last_error());
    return advance(ld, t->nbytes);
}

/* Rows [row0, row0 + rows) of a file tensor: a whole tensor, or one of the weights a fused tensor
 * (attn_qkv, Phi-3's gate+up ffn_up) holds. */
typedef struct weight_part {
    const gguf_tensor *t;
    const char *name;
    uint64_t row0, rows;
} weight_part;

/* Reads the group's rows from the file (read, not mapped: a file truncated meanwhile is an error, not a SIGBUS):
 * one buffer per distinct tensor (a fused tensor's parts share one) in bufs[], which the caller frees (NULL
 * entries included) also on failure; data[i] = part i's first row. */
static vkllm_status read_parts(loader *ld, uint32_t n, const weight_part *parts, void **bufs, const void **data)
{
    for (uint32_t i = 0; i < n; i++)
        bufs[i] = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *base = NULL;
        for (uint32_t j = 0; j < i && !base; j++)
            if (parts[j].t == parts[i].t)
                base = (const uint8_t *)data[j] - parts[j].row0 * vkl_ggml_row_bytes(parts[j].t->type, parts[j].t->ne[0]);
        if (!base) {
            vkllm_status st = vkl_gguf_tensor_load(ld->f, parts[i].t, &bufs[i]);
            if (st != VKLLM_OK)
                return st;
            base = bufs[i];
        }
        data[i] = base + parts[i].row0 * vkl_ggml_row_bytes(parts[i].t->type, parts[i].t->ne[0]);
    }
    return VKLLM_OK;
}

static uint64_t part_bytes(const weight_part *p) { return p->rows * vkl_ggml_row_bytes(p->t->type, p->t->ne[0]); }

/* Finds the weights of a group: n tensors `names` of ne1[i] rows, or (fused_name set) one tensor of their
 * rows together, split into n parts. */
static vkllm_status find_parts(loader *ld, uint32_t n, const char *fused_name, const char *const *names,
                               uint64_t ne0, const uint64_t *ne1, weight_part *parts)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += ne1[i];
    const gguf_tensor *fused = NULL;
    vkllm_status st;
    if (fused_name && (st = find_tensor(ld, fused_name, ne0, total, &fused)) != VKLLM_OK)
        return st;
    uint64_t row = 0;
    for (uint32_t i = 0; i < n; i++) {
        parts[i] = (weight_part){fused, fused_name ? fused_name : names[i], fused ? row : 0, ne1[i]};
        if (!fused && (st = find_tensor(ld, names[i], ne0, ne1[i], &parts[i].t)) != VKLLM_OK)
            return st;
        row += ne1[i];
    }
    return VKLLM_OK;
}

/* Loads n weights that multiply the same input as one stacked tensor with views when their types match
 * and the views line up; otherwise as separate tensors. *fused says which. */
static vkllm_status load_group(loader *ld, uint32_t n, const weight_part *parts, uint64_t ne0, vk_tensor *stacked,
                               vk_tensor *const *outs, bool *fused)
{
    void *bufs[4];
    const void *data[4];
    uint64_t rows[4], bytes = 0;
    bool same_type = true;
    *fused = false;
    vkllm_status st = read_parts(ld, n, parts, bufs, data);
    for (uint32_t i = 0; i < n; i++) {
        rows[i] = parts[i].rows;
        bytes += part_bytes(&parts[i]);
        same_type = same_type && parts[i].t->type == parts[0].t->type;
    }
    if (st == VKLLM_OK && same_type) {
        st = vkl_tensor_upload_stacked(ld->dev, parts[0].t->type, ne0, n, rows, data, stacked);
        if (st != VKLLM_OK)
            vkr_error(st, "tensor %s: %s", parts[0].name, vkr_last_error());
        uint64_t row = 0;
        bool ok = st == VKLLM_OK;
        for (uint32_t i = 0; i < n && ok; row += rows[i], i++)
            ok = vkl_tensor_rows(stacked, row, rows[i], outs[i]);
        if (ok) {
            *fused = true;
            st = advance(ld, bytes);
            goto out;
        }
        if (st == VKLLM_OK)
            vkl_tensor_free(ld->dev, stacked);
    }
    for (uint32_t i = 0; i < n && st == VKLLM_OK; i++) {
        st = vkl_tensor_upload(ld->dev, parts[i].t->type, ne0, rows[i], data[i], outs[i]);
        if (st != VKLLM_OK)
            vkr_error(st, "tensor %s: %s", parts[i].name, vkr_last_error());
        else
            st = advance(ld, part_bytes(&parts[i]));
    }
out:
    for (uint32_t i = 0; i < n; i++)
        free(bufs[i]);
    return st;
}

/* A file vector (ne0 floats of any float type) appended to a host array: the pieces of a layer's head_aux. */
static vkllm_status read_vector(loader *ld, const arch_tensor_desc *d, float *dst)
{
    const gguf_tensor *t = NULL;
    vkllm_status st = find_tensor(ld, d->name, d->ne0, 0, &t);
    if (st == VKLLM_OK && t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16)
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s must be f32 or f16", d->name);
    if (st != VKLLM_OK)
        return st;
    void *data = NULL;   /* read, not mapped, as in load_tensor */
    if ((st = vkl_gguf_tensor_load(ld->f, t, &data)) != VKLLM_OK)
        return st;
    vkl_dequantize_row(t->type, data, dst, d->ne0);
    free(data);
    return advance(ld, t->nbytes);
}

/* Q/K/V biases and Q/K norm weights of a layer into one device vector (vk_head_prep's layout). */
static vkllm_status load_head_aux(loader *ld, const arch_tensor_desc *td, vk_tensor *out)
{
    const arch_tensor_role roles[] = {ARCH_T_Q_BIAS, ARCH_T_K_BIAS, ARCH_T_V_BIAS, ARCH_T_Q_NORM, ARCH_T_K_NORM};
    uint64_t n = 0;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        n += td[roles[i]].present ? td[roles[i]].ne0 : 0;
    if (n == 0)
        return VKLLM_OK;
    float *aux = malloc(n * sizeof *aux);
    if (!aux)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkllm_status st = VKLLM_OK;
    uint64_t at = 0;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0] && st == VKLLM_OK; i++) {
        if (!td[roles[i]].present)
            continue;
        st = read_vector(ld, &td[roles[i]], aux + at);
        at += td[roles[i]].ne0;
    }
    if (st == VKLLM_OK)
        st = vkl_tensor_upload(ld->dev, GGML_TYPE_F32, n, 1, aux, out);
    free(aux);
    return st;
}

/* YaRN's blend for rope pair i (ggml's rope_yarn convention): 1 keeps the original frequency (pairs that turn
 * more than beta_fast times over the original context), 0 interpolates it by 1/factor (fewer than
 * beta_slow turns), linear in between. */
static double yarn_keep(const llama_hparams *hp, uint32_t i)
{
    const double n = hp->n_rot, base = hp->rope_theta, ctx = hp->rope_orig_ctx;
    const double two_pi = 6.283185307179586;
    double lo = floor(n * log(ctx / (hp->yarn_beta_fast * two_pi)) / (2.0 * log(base)));
    double hi = ceil(n * log(ctx / (hp->yarn_beta_slow * two_pi)) / (2.0 * log(base)));
    lo = lo < 0 ? 0 : lo;
    hi = hi > n - 1 ? n - 1 : hi;
    double y = ((double)i - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
    y = y < 0 ? 0 : y > 1 ? 1 : y;
    return 1.0 - y;
}

/* One rope configuration: the base, the cos/sin scale and, when not all 1, the per-pair divisors of the
 * frequencies: a file table (rope_freqs, a LongRoPE table; NULL for none) times the scaling's own. Local
 * layers with their own base (Gemma 3) are not scaled. */
static vkllm_status make_rope(loader *ld, const llama_hparams *hp, bool local, const gguf_tensor *table,
                              struct llama_rope *r)
{
    const uint32_t n = hp->n_rot / 2;
    float div[128];
    if (table && table->type != GGML_TYPE_F32)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s must be f32", table->name);
    r->theta_base = local ? hp->fam->swa_rope_base : hp->rope_theta;
    r->mscale = local ? 1.0f : hp->rope_attn_factor;
    if (!local && hp->rope_scaling == ARCH_ROPE_YARN)
        r->mscale *= 1.0f + 0.1f * logf(hp->rope_factor);
    void *tab = NULL;   /* read, not mapped, as in load_tensor */
    vkllm_status st = table ? vkl_gguf_tensor_load(ld->f, table, &tab) : VKLLM_OK;
    if (st != VKLLM_OK)
        return st;
    bool any = false;
    for (uint32_t i = 0; i < n; i++) {
        double d = tab ? ((const float *)tab)[i] : 1.0;
        if (!local && hp->rope_scaling == ARCH_ROPE_LINEAR)
            d *= hp->rope_factor;
        if (!local && hp->rope_scaling == ARCH_ROPE_YARN) {
            const double keep = yarn_keep(hp, i);
            d /= keep + (1.0 - keep) / hp->rope_factor;
        }
        div[i] = (float)d;
        any = any || div[i] != 1.0f;
    }
    free(tab);
    r->has_div = any;
    if (!any || n == 0)
        return VKLLM_OK;
    st = vkl_tensor_upload(ld->dev, GGML_TYPE_F32, n, 1, div, &r->div);
    if (st == VKLLM_OK && table)
        st = advance(ld, table->nbytes);
    return st;
}

/* The file's frequency table named `name` (n_rot/2 floats), if it has one. */
static vkllm_status find_rope_table(loader *ld, const char *name, const gguf_tensor **out)
{
    *out = NULL;
    if (!vkl_gguf_find_tensor(ld->f, name))
        return VKLLM_OK;
    return find_tensor(ld, name, ld->n_rot_half, 0, out);
}

static vkllm_status load_ropes(loader *ld, llama_model *m)
{
    const llama_hparams *hp = &m->hp;
    const gguf_tensor *freqs, *longrope_short, *longrope_long;
    vkllm_status st;
    if ((st = find_rope_table(ld, "rope_freqs.weight", &freqs)) != VKLLM_OK ||
        (st = find_rope_table(ld, "rope_factors_short.weight", &longrope_short)) != VKLLM_OK ||
        (st = find_rope_table(ld, "rope_factors_long.weight", &longrope_long)) != VKLLM_OK)
        return st;
    if (freqs && longrope_short)
        return vkr_error(VKLLM_ERR_FORMAT, "rope_freqs.weight and LongRoPE factors in one file");
    st = make_rope(ld, hp, false, longrope_short ? longrope_short : freqs, &m->rope_global);
    if (st == VKLLM_OK && longrope_long)
        st = make_rope(ld, hp, false, longrope_long, &m->rope_long);
    if (st == VKLLM_OK && hp->fam->swa_rope_base > 0)
        st = make_rope(ld, hp, true, NULL, &m->rope_local);
    return st;
}

/* A norm weight: f32, one per element of the row it scales. */
static vkllm_status load_norm(loader *ld, const arch_tensor_desc *d, vk_tensor *out)
{
    vkllm_status st = load_tensor(ld, d->name, d->ne0, 0, out);
    if (st == VKLLM_OK && out->type != GGML_TYPE_F32)
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s: norm weights must be f32", d->name);
    return st;
}

static vkllm_status load_layer(loader *ld, const llama_hparams *hp, uint32_t l, llama_layer *L)
{
    arch_tensor_desc td[ARCH_T_COUNT];
    vkl_arch_layer_tensors(hp, l, td);
    const uint64_t E = hp->n_embd, F = hp->n_ff;
    weight_part parts[3];
    const uint64_t qkv_rows[3] = {arch_q_dim(hp), arch_kv_dim(hp), arch_kv_dim(hp)};
    const char *qkv_names[3] = {td[ARCH_T_Q].name, td[ARCH_T_K].name, td[ARCH_T_V].name};
    vk_tensor *qkv[3] = {&L->wq, &L->wk, &L->wv};
    vkllm_status st = find_parts(ld, 3, td[ARCH_T_QKV].present ? td[ARCH_T_QKV].name : NULL, qkv_names, E, qkv_rows,
                                 parts);
    if (st == VKLLM_OK)
        st = load_group(ld, 3, parts, E, &L->wqkv, qkv, &L->fused_qkv);
    const uint64_t ffn_rows[2] = {F, F};
    const char *ffn_names[2] = {td[ARCH_T_GATE].name, td[ARCH_T_UP].name};
    vk_tensor *gate_up[2] = {&L->w_gate, &L->w_up};
    if (st == VKLLM_OK)
        st = find_parts(ld, 2, hp->fam->fused_gate_up ? td[ARCH_T_UP].name : NULL, ffn_names, E, ffn_rows, parts);
    if (st == VKLLM_OK)
        st = load_group(ld, 2, parts, E, &L->w_gate_up, gate_up, &L->fused_gate_up);
    if (st == VKLLM_OK)
        st = load_norm(ld, &td[ARCH_T_ATTN_NORM], &L->attn_norm);
    if (st == VKLLM_OK)
        st = load_tensor(ld, td[ARCH_T_WO].name, td[ARCH_T_WO].ne0, E, &L->wo);
    if (st == VKLLM_OK)
        st = load_norm(ld, &td[ARCH_T_FFN_NORM], &L->ffn_norm);
    if (st == VKLLM_OK)
        st = load_tensor(ld, td[ARCH_T_DOWN].name, F, E, &L->w_down);
    if (st == VKLLM_OK && hp->fam->post_norms)
        st = load_norm(ld, &td[ARCH_T_POST_ATTN_NORM], &L->post_attn_norm);
    if (st == VKLLM_OK && hp->fam->post_norms)
        st = load_norm(ld, &td[ARCH_T_POST_FFN_NORM], &L->post_ffn_norm);
    if (st == VKLLM_OK)
        st = load_head_aux(ld, td, &L->head_aux);
    return st;
}

vkllm_status vkl_llama_model_load(vkr_device *dev, const gguf_file *f, llama_progress_fn progress, void *user,
                              llama_model **out)
{
    *out = NULL;
    llama_model *m = calloc(1, sizeof *m);
    if (!m)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->dev = dev;
    vkllm_status st = vkl_llama_read_hparams(f, &m->hp);
    const llama_hparams *hp = &m->hp;
    if (st == VKLLM_OK && !(m->layers = calloc(hp->n_layer, sizeof *m->layers)))
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st != VKLLM_OK) {
        free(m);
        return st;
    }
    loader ld = {dev, f, progress, user, 0, 0, hp->n_rot / 2};
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        ld.total += vkl_gguf_tensor_at(f, i)->nbytes;
    m->weight_bytes = ld.total;

    st = load_tensor(&ld, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd);
    if (st == VKLLM_OK) {
        const arch_tensor_desc norm = {.present = true, .name = "output_norm.weight", .ne0 = hp->n_embd};
        st = load_norm(&ld, &norm, &m->output_norm);
    }
    if (st == VKLLM_OK) {
        m->output_tied = vkl_gguf_find_tensor(f, "output.weight") == NULL;
        if (!m->output_tied)
            st = load_tensor(&ld, "output.weight", hp->n_embd, hp->n_vocab, &m->output);
    }
    if (st == VKLLM_OK)
        st = load_ropes(&ld, m);
    const arch_family *fam = hp->fam;
    m->heads_kernel = fam->rope_neox || fam->qkv_bias || fam->qk_norm || m->rope_global.mscale != 1.0f ||
                      (hp->rope_longrope && m->rope_long.mscale != 1.0f);
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++)
        st = load_layer(&ld, hp, l, &m->layers[l]);
    if (st != VKLLM_OK) {
        vkl_llama_model_free(m);
        return st;
    }
    m->weight_type = m->layers[0].wq.type;
    *out = m;
    return VKLLM_OK;
}

void vkl_llama_model_free(llama_model *m)
{
    if (!m)
        return;
    vkr_device *dev = m->dev;
    vkl_tensor_free(dev, &m->tok_embd);
    vkl_tensor_free(dev, &m->output_norm);
    vkl_tensor_free(dev, &m->output);
    vkl_tensor_free(dev, &m->rope_global.div);
    vkl_tensor_free(dev, &m->rope_long.div);
    vkl_tensor_free(dev, &m->rope_local.div);
    if (m->layers) {
        for (uint32_t l = 0; l < m->hp.n_layer; l++) {
            llama_layer *L = &m->layers[l];
            vk_tensor *ts[] = {&L->attn_norm, &L->wq,     &L->wk,     &L->wv,        &L->wo,   &L->ffn_norm,
                               &L->w_gate,    &L->w_up,   &L->w_down, &L->w_gate_up, &L->wqkv, &L->post_attn_norm,
                               &L->post_ffn_norm, &L->head_aux};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
                vkl_tensor_free(dev, ts[i]);
        }
        free(m->layers);
    }
    free(m);
}

/* ---- Context: KV cache, activations, graphs ---- */

struct llama_context {
    llama_model *m;
    uint32_t n_ctx, n_batch;           /* n_ctx: positions of each sequence */
    /* Sequences: sequence s owns cache rows [s * n_ctx, (s + 1) * n_ctx) of every layer (a ring layer: its
     * ring, below). With n_seq > 1 the graphs read each token's first row and its row within the sequence from
     * c->pos (vkl_op_attention's row_base): the row is the position unless positions before it were removed. */
    uint32_t n_seq;
    vkr_buffer **k_cache, **v_cache;   /* per layer, f16 [n_seq * layer_seq_rows][kv_dim] */
    vkr_buffer *ids;                   /* host-visible, n_batch uint32: rewritten before each submit */
    vkr_buffer *pos;                   /* host-visible: n positions, then (n_seq > 1) n base rows, n rows */
    vkr_buffer *out_rows;              /* host-visible, n_batch uint32: the tokens whose logits vkl_llama_eval_seqs wants */
    vkr_buffer *ids_dev, *pos_dev;     /* device-local copies made at the start of each submission (discrete
                                        * GPUs; NULL elsewhere: the kernels read ids and pos) */
    vkr_buffer *x, *xb, *attn, *proj;
    vkr_buffer *qkv;                   /* n x [q] then n x [k] then n x [v]: for one token, Wqkv's output */
    vkr_buffer *ffn;                   /* n x [gate] then n x [up]: for one token, W_gate_up's output */
    vkr_buffer *logits;                /* host-visible, one row: the last token's logits */
    vkr_buffer *logits_all;            /* device, rows_all_logits rows (perplexity) */
    uint32_t rows_all_logits;
    vkr_graph *decode;                 /* n = 1, recorded once, replayed per token */
    vkr_graph *decode_long;            /* the same with split attention, for positions >= attn_split_from */
    uint32_t attn_split;               /* parts per (row, head) in decode_long; 1: never split */
    uint32_t attn_split_min;           /* the fewest cache rows a part takes */
    uint32_t attn_split_from;          /* first position decoded with decode_long */
    const vkr_graph *decode_last;      /* decode or decode_long: the one the last decode step ran */
    vkr_buffer *attn_scratch;
    vkr_graph *batch;                  /* the last batch shape, kept for reuse */
    uint32_t batch_n, batch_n_gather;
    bool batch_all_logits;
    bool timing;
    bool profile;                      /* VKLLM_PROFILE=1: per-op GPU times on stderr after each batch */
    double last_gpu_ns;
    double last_submit_gpu_ns;         /* the last completed submission's GPU time (timing on) */
    vkr_graph *in_flight;              /* submitted, not yet completed by vkl_llama_eval_poll */
    uint32_t in_flight_n;
    const struct llama_rope *rope_global;   /* LongRoPE: the long factors when n_ctx exceeds the original context */
    /* Sliding-window layers keep a ring of ring_rows = window + n_batch - 1 rows per sequence when that is less
     * than n_ctx (0: they keep n_ctx rows): position p of sequence s in row s * ring_rows + p % ring_rows. A ring
     * holds positions [end - ring_rows, end), so an evaluation of its sequence may only start at 0 or within
     * n_batch positions of `end`. */
    uint32_t ring_rows;
    uint32_t *end;                     /* per sequence, one past the last position evaluated */
};

/* Whether layer l keeps rings. */
static bool layer_is_ring(const llama_context *c, uint32_t l)
{
    return c->ring_rows && vkl_arch_layer_is_local(&c->m->hp, l);
}

/* Cache rows of layer l per sequence: ring_rows for the sliding-window layers when there are rings, else
 * n_ctx; the layer's cache holds n_seq times as many. */
static uint32_t layer_seq_rows(const llama_context *c, uint32_t l)
{
    return layer_is_ring(c, l) ? c->ring_rows : c->n_ctx;
}

static uint32_t layer_cache_rows(const llama_context *c, uint32_t l) { return c->n_seq * layer_seq_rows(c, l); }

uint64_t vkl_llama_context_kv_bytes(const llama_context *c)
{
    const uint64_t row = (uint64_t)arch_kv_dim(&c->m->hp) * 2;
    uint64_t bytes = 0;
    for (uint32_t l = 0; l < c->m->hp.n_layer; l++)
        bytes += 2 * layer_cache_rows(c, l) * row;
    return bytes;
}

uint32_t vkl_llama_context_n_ctx(const llama_context *c) { return c->n_ctx; }
uint32_t vkl_llama_context_n_seq(const llama_context *c) { return c->n_seq; }
uint32_t vkl_llama_context_n_batch(const llama_context *c) { return c->n_batch; }
const float *vkl_llama_context_logits(const llama_context *c) { return c->logits->mapped; }
void vkl_llama_context_set_timing(llama_context *c, bool on)
{
    if (c->timing == on)
        return;
    c->timing = on;
    /* Recorded graphs carry (or lack) their timestamp queries: record them again. */
    vkr_graph_clear(c->decode);
    vkr_graph_clear(c->decode_long);
    vkr_graph_clear(c->batch);
}
double vkl_llama_context_last_gpu_ns(const llama_context *c) { return c->last_gpu_ns; }
void vkl_llama_context_reset_gpu_ns(llama_context *c) { c->last_gpu_ns = 0; }
double vkl_llama_context_last_submit_gpu_ns(const llama_context *c) { return c->last_submit_gpu_ns; }
const vkr_graph *vkl_llama_context_decode_graph(const llama_context *c)
{
    return c->decode_last ? c->decode_last : c->decode;
}
uint64_t vkl_llama_context_timeline_value(const llama_context *c)
{
    uint64_t a = vkr_graph_last_signal(c->decode), b = vkr_graph_last_signal(c->decode_long);
    uint64_t v = vkr_graph_last_signal(c->batch), ab = a > b ? a : b;
    return ab > v ? ab : v;
}
void vkl_llama_context_set_split(llama_context *c, double target_ns)
{
    vkr_graph_set_split(c->decode, target_ns);
    vkr_graph_set_split(c->decode_long, target_ns);
}
void vkl_llama_context_set_abort(llama_context *c, bool (*abort)(void *user), void *user)
{
    vkr_graph_set_stop(c->decode, abort, user);
    vkr_graph_set_stop(c->decode_long, abort, user);
}
uint32_t vkl_llama_context_cache_rows(const llama_context *c, uint32_t l) { return layer_seq_rows(c, l); }
uint32_t vkl_llama_context_end(const llama_context *c) { return c->end[0]; }
uint32_t vkl_llama_context_ring_rows(const llama_context *c) { return c->ring_rows; }

vkllm_status vkl_llama_context_kv_rows(llama_context *c, uint32_t l, uint32_t row0, uint32_t rows, void *k, void *v,
                                   bool upload)
{
    const arch_hparams *hp = &c->m->hp;
    size_t row_bytes = (size_t)hp->n_head_kv * hp->head_dim * 2, bytes = rows * row_bytes;
    if (l >= hp->n_layer || row0 > layer_cache_rows(c, l) || rows > layer_cache_rows(c, l) - row0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "layer %u rows [%u, +%u): out of the cache", l, row0, rows);
    if (bytes == 0)
        return VKLLM_OK;
    vkr_device *dev = c->m->dev;
    uint64_t at = row0 * row_bytes;
    vkllm_status st = upload ? vkr_buffer_upload(dev, c->k_cache[l], at, k, bytes)
                             : vkr_buffer_download(dev, c->k_cache[l], at, k, bytes);
    if (st == VKLLM_OK)
        st = upload ? vkr_buffer_upload(dev, c->v_cache[l], at, v, bytes)
                    : vkr_buffer_download(dev, c->v_cache[l], at, v, bytes);
    return st;
}

void vkl_llama_context_restore(llama_context *c, uint32_t end, const void *logits)
{
    c->end[0] = end;
    memcpy(c->logits->mapped, logits, (size_t)c->m->hp.n_vocab * sizeof(float));
}

static vkllm_status make_buffer(vkr_device *dev, uint64_t bytes, vkr_memory_kind kind, vkr_buffer **out)
{
    return vkr_buffer_create(dev, bytes, kind, out);
}

/* Whether the host-visible buffers the host writes token ids and positions into are in system memory, far
 * from the kernels (a discrete GPU reads them over PCIe, every layer): not so on integrated GPUs and CPU
 * devices, whose memory is the host's. */
static bool inputs_in_system_memory(const vkr_device *dev)
{
    return dev->info.type != VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU && dev->info.type != VK_PHYSICAL_DEVICE_TYPE_CPU;
}

/* The token ids and positions the kernels read: the device-local copies where there are (stage_inputs). */
static vk_view ids_view(const llama_context *c) { return vk_view_of(c->ids_dev ? c->ids_dev : c->ids, 0); }
static vk_view pos_view(const llama_context *c) { return vk_view_of(c->pos_dev ? c->pos_dev : c->pos, 0); }

/* Words per token in c->pos: its position, and with several sequences its first cache row and its row
 * within the sequence (vk_attention_params.row_base). */
static uint32_t pos_words(uint32_t n_seq) { return n_seq > 1 ? 3 : 1; }

/* The first ops of a submission of n tokens: its ids and positions copied into device-local memory, once. */
static vkllm_status stage_inputs(vkr_graph *g, const llama_context *c, uint32_t n)
{
    if (!c->ids_dev)
        return VKLLM_OK;
    vkllm_status st = vkr_graph_add_copy(g, c->ids, 0, c->ids_dev, 0, (uint64_t)n * 4);
    const uint64_t pos_bytes = (uint64_t)n * 4 * pos_words(c->n_seq);
    return st != VKLLM_OK ? st : vkr_graph_add_copy(g, c->pos, 0, c->pos_dev, 0, pos_bytes);
}

vkllm_status vkl_llama_context_create(llama_model *m, uint32_t n_ctx, uint32_t n_batch, llama_context **out)
{
    return vkl_llama_context_create_seq(m, n_ctx, n_batch, 1, out);
}

vkllm_status vkl_llama_context_create_seq(llama_model *m, uint32_t n_ctx, uint32_t n_batch, uint32_t n_seq,
                                      llama_context **out)
{
    *out = NULL;
    if (n_ctx == 0 || n_batch == 0 || n_seq == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "context, batch and sequence counts must be at least 1");
    if (n_seq > LLAMA_MAX_SEQ)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%u sequences: a context holds at most %u", n_seq, LLAMA_MAX_SEQ);
    llama_context *c = calloc(1, sizeof *c);
    if (!c)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    const llama_hparams *hp = &m->hp;
    vkr_device *dev = m->dev;
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_seq = n_seq;
    c->rope_global = hp->rope_longrope && n_ctx > hp->rope_orig_ctx ? &m->rope_long : &m->rope_global;
    const char *profile = getenv("VKLLM_PROFILE");
    c->profile = c->timing = profile && *profile && strcmp(profile, "0") != 0;
    /* A batch holds at most every position of every sequence. */
    c->n_batch = (uint64_t)n_batch < (uint64_t)n_ctx * n_seq ? n_batch : n_ctx * n_seq;
    if (hp->swa_window && (uint64_t)hp->swa_window + c->n_batch - 1 < n_ctx)
        c->ring_rows = hp->swa_window + c->n_batch - 1;
    uint64_t nb = c->n_batch;
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    if (c->ring_rows && n_seq > 1) {
        uint32_t n_local = 0;
        for (uint32_t l = 0; l < hp->n_layer; l++)
            n_local += vkl_arch_layer_is_local(hp, l);
        const double saved = (double)n_local * n_seq * ((double)n_ctx - c->ring_rows) * kv_dim * 2 * 2;
        vkr_log(VKLLM_LOG_INFO,
                "%u sequences: the %u sliding-window layers keep a ring of %u rows per sequence, not %u: K/V cache "
                "%.1f MiB (%.1f MiB less than full caches)", n_seq, n_local, c->ring_rows, n_ctx,
                vkl_llama_context_kv_bytes(c) / 1048576.0, saved / 1048576.0);
    }
    uint64_t range = dev->info.features.max_storage_buffer_range;
    c->rows_all_logits = (uint32_t)(range / ((uint64_t)hp->n_vocab * 4));
    if (c->rows_all_logits > c->n_batch)
        c->rows_all_logits = c->n_batch;

    vkllm_status st = VKLLM_OK;
    /* Each layer's K and V caches are bound whole by the kernels: refuse a context the device cannot bind,
     * here with a clear message rather than at the first decode. */
    uint64_t kv_bytes = (uint64_t)n_seq * n_ctx * kv_dim * 2;
    if (kv_bytes > range) {
        free(c);
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "a context of %u x %u positions needs a %.1f MiB K/V cache per layer, more than this device "
                         "can bind (maxStorageBufferRange %.1f MiB): use at most %llu positions in all",
                         n_seq, n_ctx, kv_bytes / 1048576.0, range / 1048576.0,
                         (unsigned long long)(range / (kv_dim * 2)));
    }
    c->end = calloc(n_seq, sizeof *c->end);
    c->k_cache = calloc(hp->n_layer, sizeof *c->k_cache);
    c->v_cache = calloc(hp->n_layer, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache || !c->end)
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        const uint64_t bytes = (uint64_t)layer_cache_rows(c, l) * kv_dim * 2;
        st = make_buffer(dev, bytes, VKR_MEMORY_DEVICE, &c->k_cache[l]);
        if (st == VKLLM_OK)
            st = make_buffer(dev, bytes, VKR_MEMORY_DEVICE, &c->v_cache[l]);
    }
    struct {
        vkr_buffer **b;
        uint64_t bytes;
        vkr_memory_kind kind;
    } bufs[] = {
        {&c->ids, nb * 4, VKR_MEMORY_HOST},
        {&c->pos, nb * 4 * pos_words(n_seq), VKR_MEMORY_HOST},
        {&c->out_rows, nb * 4, VKR_MEMORY_HOST},
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
    if (st == VKLLM_OK && inputs_in_system_memory(dev))
        st = make_buffer(dev, nb * 4, VKR_MEMORY_DEVICE, &c->ids_dev);
    if (st == VKLLM_OK && c->ids_dev)
        st = make_buffer(dev, nb * 4 * pos_words(n_seq), VKR_MEMORY_DEVICE, &c->pos_dev);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->decode);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->decode_long);
    /* Flash decoding: one token has too little attention work per head to fill a GPU; host/ops/ops_attention.c
     * plans the split. */
    vk_attention_params plan = {.n_rows = 1, .n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv,
                                .head_dim = hp->head_dim, .n_ctx = n_ctx};
    c->attn_split_from = vkl_op_attention_split_plan(dev, &plan);
    c->attn_split = plan.n_split;
    c->attn_split_min = plan.split_min_rows;
    if (c->attn_split > 1) {
        if (st == VKLLM_OK)
            st = make_buffer(dev, (uint64_t)hp->n_head * c->attn_split * (hp->head_dim + 2) * 4, VKR_MEMORY_DEVICE,
                             &c->attn_scratch);
    }
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &c->batch);
    if (st != VKLLM_OK) {
        vkl_llama_context_free(c);
        return st;
    }
    *out = c;
    return VKLLM_OK;
}

void vkl_llama_context_free(llama_context *c)
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
    free(c->end);
    vkr_buffer *bufs[] = {c->ids, c->pos, c->out_rows, c->x, c->xb, c->qkv, c->attn, c->proj, c->ffn, c->logits,
                          c->logits_all, c->attn_scratch, c->ids_dev, c->pos_dev};
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
        st = vkl_op_matmul_fused(g, w[i], x, out[i], n, &f, &fused);
        if (st != VKLLM_OK || fused)
            continue;
        if (!normed)
            st = vkl_op_rmsnorm(g, x, norm, xb, n, hp->n_embd, hp->rms_eps);
        normed = true;
        if (st == VKLLM_OK)
            st = vkl_op_matmul(g, w[i], xb, out[i], n);
    }
    return st;
}

/* x += W · a: one fused matvec, else the matmul into c->proj and an add. */
static vkllm_status matmul_add(vkr_graph *g, const llama_context *c, const vk_tensor *w, vk_view a, vk_view x,
                               uint32_t n)
{
    const vk_matmul_fusion f = {.accumulate = true};
    bool fused = false;
    vkllm_status st = vkl_op_matmul_fused(g, w, a, x, n, &f, &fused);
    if (st != VKLLM_OK || fused)
        return st;
    vk_view proj = vk_view_of(c->proj, 0);
    st = vkl_op_matmul(g, w, a, proj, n);
    return st != VKLLM_OK ? st : vkl_op_add(g, x, proj, x, n * c->m->hp.n_embd);
}

/* out = act(W_gate · n(x)) * (W_up · n(x)) with n(x) = rmsnorm(x) * L->ffn_norm and act SiLU or GELU: one
 * fused matvec over the stacked W_gate;W_up where the kernel can, else norm_matmuls and silu_mul/gelu_mul. out holds n * n_ff floats, followed by room for as many more (the up half). */
static vkllm_status ffn_gate_up(vkr_graph *g, const llama_context *c, const llama_layer *L, vk_view x, vk_view out,
                                uint32_t n)
{
    const llama_hparams *hp = &c->m->hp;
    const bool gelu = hp->fam->act == ARCH_ACT_GELU_TANH;
    vkllm_status st = VKLLM_OK;
    if (L->fused_gate_up) {
        const vk_matmul_fusion f = {.norm = &L->ffn_norm, .eps = hp->rms_eps, .glu = true, .gelu = gelu};
        bool fused = false;
        st = vkl_op_matmul_fused(g, &L->w_gate_up, x, out, n, &f, &fused);
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
    if (!st) st = gelu ? vkl_op_gelu_mul(g, out, up, out, n * hp->n_ff) : vkl_op_silu_mul(g, out, up, out, n * hp->n_ff);
    return st;
}

/* x += W · a, or with a post-norm (Gemma) x += rmsnorm(W · a) * post_norm. */
static vkllm_status block_output(vkr_graph *g, const llama_context *c, const vk_tensor *w, const vk_tensor *post_norm,
                                 vk_view a, vk_view x, uint32_t n)
{
    if (!post_norm->buffer && !post_norm->n_parts)
        return matmul_add(g, c, w, a, x, n);
    const llama_hparams *hp = &c->m->hp;
    const vk_view proj = vk_view_of(c->proj, 0);
    vkllm_status st = vkl_op_matmul(g, w, a, proj, n);
    return st != VKLLM_OK ? st : vkl_op_rmsnorm_add(g, proj, post_norm, x, n, hp->n_embd, hp->rms_eps);
}

/* The rope of layer l's K heads for n_rows tokens. */
static vk_rope_params layer_rope(const llama_context *c, uint32_t l, uint32_t n_rows)
{
    const llama_model *m = c->m;
    const llama_hparams *hp = &m->hp;
    const bool local_base = vkl_arch_layer_is_local(hp, l) && hp->fam->swa_rope_base > 0;
    const struct llama_rope *r = local_base ? &m->rope_local : c->rope_global;
    const vk_rope_params rk = {
        .n_rows = n_rows, .n_heads = hp->n_head_kv, .head_dim = hp->head_dim, .n_rot = hp->n_rot,
        .theta_base = r->theta_base, .mode = hp->fam->rope_neox ? VK_ROPE_NEOX : VK_ROPE_INTERLEAVED,
        .freq_factors = r->has_div ? &r->div : NULL, .mscale = r->mscale,
    };
    return rk;
}

/* One token's q, k, v = Wqkv · n(x), with rope and the K/V cache store in the matvec's epilogue (the plain
 * Llama rope: no biases, Q/K norms or NeoX pairs) where the kernel can. *done false: nothing was recorded. */
static vkllm_status qkv_matvec_to_cache(vkr_graph *g, const llama_context *c, const llama_layer *L, uint32_t l,
                                        vk_view x, vk_view q, const vk_attention_params *ap, bool *done)
{
    *done = false;
    if (c->m->heads_kernel)
        return VKLLM_OK;
    const vk_rope_params rk = layer_rope(c, l, 1);
    const vk_qkv_store qs = {.rope = &rk, .attn = ap, .k_cache = vk_view_of(c->k_cache[l], 0),
                             .v_cache = vk_view_of(c->v_cache[l], 0), .positions = pos_view(c)};
    const vk_matmul_fusion f = {.norm = &L->attn_norm, .eps = c->m->hp.rms_eps, .qkv = &qs};
    return vkl_op_matmul_fused(g, &L->wqkv, x, q, 1, &f, done);
}

/* Q, K, V in c->qkv to the cache: rope of Q and K (with the family's biases and Q/K norms first), K and V
 * stored, in one dispatch. */
static vkllm_status qkv_to_cache(vkr_graph *g, const llama_context *c, const llama_layer *L, uint32_t l,
                                 vk_view q, vk_view k, vk_view v, const vk_attention_params *ap)
{
    const llama_model *m = c->m;
    const llama_hparams *hp = &m->hp;
    const vk_rope_params rk = layer_rope(c, l, ap->n_rows);
    vk_view kc = vk_view_of(c->k_cache[l], 0), vc = vk_view_of(c->v_cache[l], 0);
    vk_view pos = pos_view(c);
    if (!m->heads_kernel)
        return vkl_op_rope_kv_store(g, q, k, v, kc, vc, pos, &rk, ap);
    const vk_head_prep prep = {
        .aux = &L->head_aux, .bias = hp->fam->qkv_bias, .norm = hp->fam->qk_norm, .eps = hp->rms_eps,
    };
    return vkl_op_rope_kv_store_heads(g, q, k, v, kc, vc, pos, &rk, &prep, ap);
}

/* Records the forward pass of n tokens (ids and positions written to c->ids / c->pos) into g. Logits: of the
 * n_gather tokens c->out_rows names (n_gather > 0) into c->logits_all, or of every token (all_logits) there,
 * else of the last token into c->logits. split: parts of split attention (flash decoding), 1 for none. */
static vkllm_status build_graph(llama_context *c, vkr_graph *g, uint32_t n, bool all_logits, uint32_t n_gather,
                                uint32_t split)
{
    const llama_model *m = c->m;
    const llama_hparams *hp = &m->hp;
    const uint64_t row = (uint64_t)hp->n_embd * 4;
    vk_view ids = ids_view(c), pos = pos_view(c);
    vk_view x = vk_view_of(c->x, 0);
    const uint64_t q_dim = arch_q_dim(hp), kv_dim = arch_kv_dim(hp);
    vk_view q = vk_view_of(c->qkv, 0), k = vk_view_of(c->qkv, n * q_dim * 4);
    vk_view v = vk_view_of(c->qkv, n * (q_dim + kv_dim) * 4);
    vk_view ffn = vk_view_of(c->ffn, 0);
    vk_view attn = vk_view_of(c->attn, 0);
    vk_attention_params ap = {
        .n_rows = n, .n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv, .head_dim = hp->head_dim,
        .n_ctx = c->n_ctx, .scale = hp->attn_scale, .softcap = hp->attn_softcap,
        .n_split = split, .split_min_rows = c->attn_split_min, .scratch = vk_view_of(c->attn_scratch, 0),
    };
    vkllm_status st = stage_inputs(g, c, n);
    if (!st) st = vkl_op_get_rows(g, &m->tok_embd, ids, x, n);
    if (!st && hp->fam->embd_scale)
        st = vkl_op_scale(g, x, n * hp->n_embd, sqrtf((float)hp->n_embd));
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        const llama_layer *L = &m->layers[l];
        vk_view kc = vk_view_of(c->k_cache[l], 0), vc = vk_view_of(c->v_cache[l], 0);
        ap.window = vkl_arch_layer_is_local(hp, l) ? hp->swa_window : 0;
        ap.n_ctx = layer_cache_rows(c, l);
        ap.ring = layer_is_ring(c, l);
        ap.ring_rows = c->ring_rows;
        ap.seq_rows = c->n_ctx;   /* the full layers' rows per sequence, as write_inputs' base rows count */
        ap.row_base = c->n_seq > 1;
        /* attention block: x += Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)) */
        bool stored = false;   /* by the matvec's epilogue */
        if (n == 1 && L->fused_qkv) { /* one token: q, k, v are consecutive, as Wqkv's rows are */
            const vk_tensor *w = &L->wqkv;
            if (!st) st = qkv_matvec_to_cache(g, c, L, l, x, q, &ap, &stored);
            if (!st && !stored) st = norm_matmuls(g, c, x, &L->attn_norm, 1, &w, &q, 1);
        } else {
            const vk_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
            const vk_view out[3] = {q, k, v};
            if (!st) st = norm_matmuls(g, c, x, &L->attn_norm, 3, w, out, n);
        }
        /* q is turned in place, k on its way into the cache: one dispatch */
        if (!st && !stored) st = qkv_to_cache(g, c, L, l, q, k, v, &ap);
        if (!st) st = vkl_op_attention(g, q, kc, vc, pos, attn, &ap);
        if (!st) st = block_output(g, c, &L->wo, &L->post_attn_norm, attn, x, n);
        /* feed-forward block: x += W_down · (act(W_gate·n(x)) * (W_up·n(x))) */
        if (!st) st = ffn_gate_up(g, c, L, x, ffn, n);
        if (!st) st = block_output(g, c, &L->w_down, &L->post_ffn_norm, ffn, x, n);
        if (!st) st = vkr_graph_mark_segment(g);   /* a split decode submits groups of layers */
    }
    const vk_tensor *out_w = m->output_tied ? &m->tok_embd : &m->output;
    if (st == VKLLM_OK && n_gather) {
        /* The wanted rows of x gathered into proj (free by now), then only their logits. */
        const vk_tensor rows = {.type = GGML_TYPE_F32, .ne = {hp->n_embd, n}, .buffer = c->x, .row_qs_bytes = row,
                                .is_view = true};
        const vk_view gathered = vk_view_of(c->proj, 0), logits = vk_view_of(c->logits_all, 0);
        st = vkl_op_get_rows(g, &rows, vk_view_of(c->out_rows, 0), gathered, n_gather);
        if (!st) st = norm_matmuls(g, c, gathered, &m->output_norm, 1, &out_w, &logits, n_gather);
        if (!st && hp->final_softcap > 0)
            st = vkl_op_softcap(g, logits, n_gather * hp->n_vocab, hp->final_softcap);
    } else if (st == VKLLM_OK && all_logits) {
        const vk_view logits = vk_view_of(c->logits_all, 0);
        st = norm_matmuls(g, c, x, &m->output_norm, 1, &out_w, &logits, n);
        if (!st && hp->final_softcap > 0)
            st = vkl_op_softcap(g, logits, n * hp->n_vocab, hp->final_softcap);
    } else if (st == VKLLM_OK) {
        /* Only the last token's logits are needed to continue the text. */
        const vk_view last = vk_view_of(c->x, (uint64_t)(n - 1) * row), logits = vk_view_of(c->logits, 0);
        st = norm_matmuls(g, c, last, &m->output_norm, 1, &out_w, &logits, 1);
        if (!st && hp->final_softcap > 0)
            st = vkl_op_softcap(g, logits, hp->n_vocab, hp->final_softcap);
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
    const uint32_t copies = vkr_graph_copy_count(g), dispatches = vkr_graph_size(g) - copies;
    const uint32_t barriers = vkr_graph_barrier_count(g);
    vkr_log(VKLLM_LOG_INFO,
            "profile: %u token(s) in one submission: %u dispatches, %u copies, %u barriers (per token: %.1f "
            "dispatches, %.1f barriers), GPU %.3f ms",
            n_tokens, dispatches, copies, barriers, (double)dispatches / n_tokens, (double)barriers / n_tokens,
            total / 1e6);
    vkr_log(VKLLM_LOG_INFO, "profile: the timestamp after every dispatch serializes them: each time is the op "
                            "alone, and the sum is more than an untimed run takes");
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

/* Writes the ids and positions of n <= n_batch tokens, records their graph if needed and submits it
 * without waiting (vkl_llama_eval_poll completes it). */
/* Whether an evaluation of sequence seq may start at pos0: with rings (sliding-window layers), only at 0 or
 * within n_batch positions of the end of what was evaluated (c->end[seq], advanced by every submission). */
static bool ring_allows(const llama_context *c, uint32_t seq, uint32_t pos0)
{
    return !c->ring_rows || pos0 == 0 || pos0 + c->n_batch >= c->end[seq];
}

static vkllm_status ring_error(const llama_context *c, uint32_t seq, uint32_t pos0)
{
    return vkr_error(VKLLM_ERR_UNSUPPORTED,
                     "the sliding-window layers keep only the last %u positions of sequence %u: continue it at 0 or "
                     "at %u or later, not at %u", c->ring_rows, seq, c->end[seq] - c->n_batch, pos0);
}

bool vkl_llama_context_can_continue(const llama_context *c, uint32_t seq, uint32_t pos)
{
    return ring_allows(c, seq, pos);
}

/* Writes the graph inputs of n tokens: ids, positions (pos NULL: pos0, pos0 + 1, ...) and with several
 * sequences each token's first cache row (seq NULL: sequence 0) and its row within the sequence (row NULL:
 * its position). The caller checked positions, sequences and rows. */
static vkllm_status write_inputs(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0,
                                 const uint32_t *pos, const uint32_t *seq, const uint32_t *row)
{
    const llama_hparams *hp = &c->m->hp;
    uint32_t *ids = c->ids->mapped, *at = c->pos->mapped;
    for (uint32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %u)", tokens[i],
                             hp->n_vocab);
        ids[i] = (uint32_t)tokens[i];
        at[i] = pos ? pos[i] : pos0 + i;
        if (c->n_seq > 1) {
            at[n + i] = (seq ? seq[i] : 0) * c->n_ctx;
            at[2 * n + i] = row ? row[i] : at[i];
        }
    }
    return VKLLM_OK;
}

/* Records the graph for n tokens (the inputs written) if needed and submits it without waiting
 * (vkl_llama_eval_poll completes it); each sequence's end then follows its last token in the batch. pos0: the
 * first token's position, which picks split attention for one token. */
static vkllm_status submit_graph(llama_context *c, uint32_t n, uint32_t pos0, bool all_logits, uint32_t n_gather)
{
    vkr_graph *g;
    vkllm_status st = VKLLM_OK;
    if (n == 1 && !all_logits && !n_gather) {
        bool split = c->attn_split > 1 && pos0 >= c->attn_split_from;
        g = split ? c->decode_long : c->decode;
        c->decode_last = g;
        if (vkr_graph_size(g) == 0)
            st = build_graph(c, g, 1, false, 0, split ? c->attn_split : 1);
    } else {
        g = c->batch;
        if (vkr_graph_size(g) == 0 || c->batch_n != n || c->batch_all_logits != all_logits ||
            c->batch_n_gather != n_gather) {
            vkr_graph_clear(g);
            c->batch_n = n;
            c->batch_all_logits = all_logits;
            c->batch_n_gather = n_gather;
            st = build_graph(c, g, n, all_logits, n_gather, 1);
            if (st != VKLLM_OK)
                vkr_graph_clear(g);
        }
    }
    if (st == VKLLM_OK)
        st = vkr_graph_submit(g);
    if (st == VKLLM_OK) {
        c->in_flight = g;
        c->in_flight_n = n;
        const uint32_t *at = c->pos->mapped;   /* write_inputs' positions and base rows */
        for (uint32_t i = 0; i < n; i++)
            c->end[c->n_seq > 1 ? at[n + i] / c->n_ctx : 0] = at[i] + 1;
    }
    return st;
}

static vkllm_status submit_batch(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits)
{
    vkllm_status st = write_inputs(c, tokens, n, pos0, NULL, NULL, NULL);
    return st != VKLLM_OK ? st : submit_graph(c, n, pos0, all_logits, 0);
}

vkllm_status vkl_llama_eval_poll(llama_context *c, uint64_t timeout_ns, bool *done)
{
    *done = true;
    vkr_graph *g = c->in_flight;
    if (!g)
        return VKLLM_OK;
    vkllm_status st = timeout_ns == UINT64_MAX ? vkr_graph_wait(g) : vkr_graph_poll(g, timeout_ns, done);
    if (st == VKLLM_OK && !*done)
        return VKLLM_OK;
    c->in_flight = NULL;
    if (st != VKLLM_OK)
        return st;
    c->last_submit_gpu_ns = c->timing ? vkr_graph_longest_submit_ns(g) : 0.0;
    c->last_gpu_ns += c->timing ? graph_gpu_ns(g) : 0.0;
    if (c->profile)
        print_profile(g, c->in_flight_n);
    return VKLLM_OK;
}

vkllm_status vkl_llama_eval_submit(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0)
{
    if (c->in_flight)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "an evaluation is already in flight");
    if (n == 0 || !tokens || n > c->n_batch)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%u tokens: a submission takes 1 to %u", n, c->n_batch);
    if (pos0 > c->n_ctx || n > c->n_ctx - pos0)
        return vkr_error(VKLLM_ERR_CONTEXT_FULL, "%u tokens at position %u do not fit the context of %u", n, pos0,
                         c->n_ctx);
    if (!ring_allows(c, 0, pos0))
        return ring_error(c, 0, pos0);
    return submit_batch(c, tokens, n, pos0, false);
}

/* The device buffer for every row's logits, made at first use. */
static vkllm_status need_logits_all(llama_context *c)
{
    if (c->rows_all_logits == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "one row of logits exceeds the device's maxStorageBufferRange");
    if (c->logits_all)
        return VKLLM_OK;
    return vkr_buffer_create(c->m->dev, (uint64_t)c->rows_all_logits * c->m->hp.n_vocab * 4, VKR_MEMORY_DEVICE,
                             &c->logits_all);
}

/* One batch of n <= n_batch tokens, waited for. */
static vkllm_status eval_batch(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits,
                               float *logits)
{
    const llama_hparams *hp = &c->m->hp;
    bool done;
    vkllm_status st = submit_batch(c, tokens, n, pos0, all_logits);
    if (st == VKLLM_OK)
        st = vkl_llama_eval_poll(c, UINT64_MAX, &done);
    if (st != VKLLM_OK)
        return st;
    if (!logits)
        return VKLLM_OK;
    if (all_logits)
        return vkr_buffer_download(c->m->dev, c->logits_all, 0, logits, (size_t)n * hp->n_vocab * 4);
    memcpy(logits, c->logits->mapped, (size_t)hp->n_vocab * 4);
    return VKLLM_OK;
}

vkllm_status vkl_llama_eval(llama_context *c, const int32_t *tokens, uint32_t n, uint32_t pos0, bool all_logits,
                        float *logits)
{
    if (n == 0 || !tokens)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    if (pos0 > c->n_ctx || n > c->n_ctx - pos0)
        return vkr_error(VKLLM_ERR_CONTEXT_FULL, "%u tokens at position %u do not fit the context of %u", n, pos0,
                         c->n_ctx);
    if (!ring_allows(c, 0, pos0))
        return ring_error(c, 0, pos0);
    /* All ids first: a bad one late in a long prompt must not cost the batches before it. */
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->m->hp.n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %u: id %d is out of range (vocabulary of %u)", i,
                             tokens[i], c->m->hp.n_vocab);
    uint32_t step = c->n_batch;
    if (all_logits) {
        vkllm_status st = need_logits_all(c);
        if (st != VKLLM_OK)
            return st;
        step = c->rows_all_logits;
    }
    if (c->in_flight)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "an evaluation is already in flight");
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

uint32_t vkl_llama_context_seq_batch_max(const llama_context *c)
{
    return c->rows_all_logits && c->rows_all_logits < c->n_batch ? c->rows_all_logits : c->n_batch;
}

vkllm_status vkl_llama_eval_seqs(llama_context *c, const int32_t *tokens, const uint32_t *pos, const uint32_t *seq,
                             const int8_t *want, uint32_t n, float *logits)
{
    return vkl_llama_eval_seq_rows(c, tokens, pos, seq, NULL, want, n, logits);
}

vkllm_status vkl_llama_eval_seq_rows(llama_context *c, const int32_t *tokens, const uint32_t *pos, const uint32_t *seq,
                                     const uint32_t *row, const int8_t *want, uint32_t n, float *logits)
{
    if (c->in_flight)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "an evaluation is already in flight");
    if (n == 0 || n > vkl_llama_context_seq_batch_max(c) || !tokens || !pos || !seq || !want)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%u tokens: a batch takes 1 to %u", n,
                         vkl_llama_context_seq_batch_max(c));
    uint32_t n_want = 0, *rows = c->out_rows->mapped;
    uint32_t seq_next[LLAMA_MAX_SEQ];   /* where each sequence continues in this batch (UINT32_MAX: not yet) */
    for (uint32_t s = 0; s < c->n_seq; s++)
        seq_next[s] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        /* one sequence or rings: every row is its position (no row_base, or rings indexed by position) */
        const bool row_is_pos = c->n_seq == 1 || c->ring_rows;
        if (seq[i] >= c->n_seq || pos[i] >= c->n_ctx || (row && (row[i] > pos[i] || (row_is_pos && row[i] != pos[i]))))
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %u: sequence %u position %u (row %u) is outside %u x %u",
                             i, seq[i], pos[i], row ? row[i] : pos[i], c->n_seq, c->n_ctx);
        /* Rings take each sequence's positions consecutively, continuing where its ring allows; they move its
         * end. */
        uint32_t *next = &seq_next[seq[i]];
        if (c->ring_rows && *next != UINT32_MAX && pos[i] != *next)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "the sliding-window layers keep rings: a sequence's positions in "
                             "a batch must be consecutive (token %u at %u, not %u)", i, pos[i], *next);
        if (*next == UINT32_MAX && !ring_allows(c, seq[i], pos[i]))
            return ring_error(c, seq[i], pos[i]);
        *next = pos[i] + 1;
        if (want[i])
            rows[n_want++] = i;
    }
    /* One wanted row, the last: the single logits row of the decode graph (or of a prompt); otherwise the
     * wanted rows gathered, and only their logits computed. */
    const bool gather = n_want > 1 || (n_want == 1 && !want[n - 1]);
    vkllm_status st = gather ? need_logits_all(c) : VKLLM_OK;
    if (st == VKLLM_OK)
        st = write_inputs(c, tokens, n, 0, pos, seq, row);
    if (st == VKLLM_OK)
        st = submit_graph(c, n, pos[0], false, gather ? n_want : 0);
    bool done;
    if (st == VKLLM_OK)
        st = vkl_llama_eval_poll(c, UINT64_MAX, &done);
    if (st != VKLLM_OK || !logits || n_want == 0)
        return st;
    if (!gather) {
        memcpy(logits, c->logits->mapped, (size_t)c->m->hp.n_vocab * 4);
        return VKLLM_OK;
    }
    return vkr_buffer_download(c->m->dev, c->logits_all, 0, logits, (size_t)n_want * c->m->hp.n_vocab * 4);
}

vkllm_status vkl_llama_context_copy_rows(llama_context *c, uint32_t src, uint32_t src_row, uint32_t dst,
                                        uint32_t dst_row, uint32_t rows)
{
    const llama_hparams *hp = &c->m->hp;
    if (src >= c->n_seq || dst >= c->n_seq || src_row > c->n_ctx || rows > c->n_ctx - src_row ||
        dst_row > c->n_ctx || rows > c->n_ctx - dst_row)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "copy of %u rows from row %u of sequence %u to row %u of %u: "
                         "outside %u x %u", rows, src_row, src, dst_row, dst, c->n_seq, c->n_ctx);
    if (c->in_flight)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "an evaluation is already in flight");
    if (c->ring_rows && (src_row || dst_row || src == dst))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "the sliding-window layers keep rings: rows cannot move, a sequence "
                         "is copied from its first position only");
    if (rows == 0 || (src == dst && src_row == dst_row))
        return VKLLM_OK;
    const uint64_t row = (uint64_t)hp->n_head_kv * hp->head_dim * 2, bytes = rows * row;
    const uint64_t from = ((uint64_t)src * c->n_ctx + src_row) * row, to = ((uint64_t)dst * c->n_ctx + dst_row) * row;
    /* A ring's live rows (all of them once it wrapped) go whole: dst continues where src's ring allows. */
    const uint64_t ring_bytes = (uint64_t)(c->end[src] < c->ring_rows ? c->end[src] : c->ring_rows) * row;
    const uint64_t ring_from = (uint64_t)src * c->ring_rows * row, ring_to = (uint64_t)dst * c->ring_rows * row;
    /* Overlapping ranges (rows moved down within a sequence by less than their count) go through a
     * temporary buffer: one copy command must not read what it writes. */
    const bool overlap = from < to + bytes && to < from + bytes;
    vkr_buffer *tmp = NULL;
    vkllm_status st = overlap ? make_buffer(c->m->dev, bytes, VKR_MEMORY_DEVICE, &tmp) : VKLLM_OK;
    for (uint32_t l = 0; l < hp->n_layer && st == VKLLM_OK; l++) {
        vkr_buffer *caches[2] = {c->k_cache[l], c->v_cache[l]};
        for (int i = 0; i < 2 && st == VKLLM_OK; i++) {
            if (layer_is_ring(c, l)) {
                st = ring_bytes ? vkr_buffer_copy(c->m->dev, caches[i], ring_from, caches[i], ring_to, ring_bytes)
                                : VKLLM_OK;
                continue;
            }
            if (!tmp) {
                st = vkr_buffer_copy(c->m->dev, caches[i], from, caches[i], to, bytes);
                continue;
            }
            st = vkr_buffer_copy(c->m->dev, caches[i], from, tmp, 0, bytes);
            if (st == VKLLM_OK)
                st = vkr_buffer_copy(c->m->dev, tmp, 0, caches[i], to, bytes);
        }
    }
    if (tmp)
        vkr_buffer_destroy(c->m->dev, tmp);
    if (st == VKLLM_OK)
        c->end[dst] = c->end[src];
    return st;
}

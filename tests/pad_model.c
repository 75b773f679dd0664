/* Zero-padding a Llama model to a wider one with the same function (see pad_model.h). */
#include "pad_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/gguf_copy.h"

typedef struct pad_dims {
    uint64_t from[4], to[4];   /* widths that grow: embedding, FFN, all heads, KV heads */
} pad_dims;

static uint64_t padded(const pad_dims *p, uint64_t n)
{
    for (int i = 0; i < 4; i++)
        if (n == p->from[i])
            return p->to[i];
    return n;
}

static vkllm_status write_padded(const gguf_file *f, gguf_writer *w, const pad_dims *pd, float norm_scale,
                                 const char *const *keys, const uint32_t *values, float eps)
{
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; i < vkl_gguf_n_kv(f) && st == VKLLM_OK; i++) {
        const char *key = vkl_gguf_kv_key(f, i);
        bool replaced = !strcmp(key, "general.alignment") || !strcmp(key, "llama.attention.layer_norm_rms_epsilon");
        for (int k = 0; keys[k]; k++)
            replaced |= !strcmp(key, keys[k]);
        if (!replaced)
            st = vkl_gguf_copy_kv(f, i, w);
    }
    for (int k = 0; keys[k] && st == VKLLM_OK; k++)
        st = vkl_gguf_writer_kv_u32(w, keys[k], values[k]);
    if (st == VKLLM_OK)
        st = vkl_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", eps);
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f) && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        if (t->type != GGML_TYPE_F32)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "pad_model: tensor %s is not f32", t->name);
        uint64_t ne[GGUF_MAX_DIMS] = {padded(pd, t->ne[0]), t->n_dims > 1 ? padded(pd, t->ne[1]) : 1, 1, 1};
        st = vkl_gguf_writer_tensor_info(w, t->name, GGML_TYPE_F32, t->n_dims, ne);
    }
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f) && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        uint64_t n0 = t->ne[0], n1 = t->n_elements / n0, p0 = padded(pd, n0);
        uint64_t p1 = t->n_dims > 1 ? padded(pd, t->ne[1]) : 1;
        bool is_norm = t->n_dims == 1 && strstr(t->name, "norm") != NULL;
        float *row = malloc((size_t)p0 * sizeof *row);
        if (!row)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint64_t r = 0; r < p1 && st == VKLLM_OK; r++) {
            memset(row, 0, (size_t)p0 * sizeof *row);
            if (r < n1) {
                memcpy(row, (const float *)t->data + r * n0, (size_t)n0 * sizeof *row);
                for (uint64_t c = 0; is_norm && c < n0; c++)
                    row[c] *= norm_scale;
            }
            st = vkl_gguf_writer_tensor_data(w, row, (size_t)p0 * sizeof *row);
        }
        free(row);
    }
    return st;
}

vkllm_status pad_model_write(const char *in_path, const char *out_path, uint32_t width)
{
    gguf_file *f;
    vkllm_status st = vkl_gguf_open(in_path, &f);
    if (st != VKLLM_OK)
        return st;
    uint32_t d = 0, ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab;
    float eps = 1e-5f;
    vkl_gguf_get_u32(f, "llama.embedding_length", &d);
    vkl_gguf_get_u32(f, "llama.feed_forward_length", &ff);
    vkl_gguf_get_u32(f, "llama.attention.head_count", &n_head);
    if (!vkl_gguf_get_u32(f, "llama.attention.head_count_kv", &n_head_kv))
        n_head_kv = n_head;
    if (!vkl_gguf_get_u32(f, "llama.attention.key_length", &head_dim) && n_head)
        head_dim = d / n_head;
    vkl_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps);
    const gguf_tensor *embd = vkl_gguf_find_tensor(f, "token_embd.weight");
    n_vocab = embd && embd->n_dims == 2 ? (uint32_t)embd->ne[1] : 0;
    uint32_t n_head2 = head_dim ? width / head_dim : 0;
    if (!d || !ff || !n_head || !n_head_kv || !head_dim || width % head_dim || width < d || width < ff ||
        n_head % n_head_kv || (uint64_t)n_head2 * n_head_kv % n_head || n_vocab == d || n_vocab == ff ||
        n_vocab == head_dim * n_head_kv || d != n_head * head_dim) {
        vkl_gguf_close(f);
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "pad_model: %s cannot be padded to width %u", in_path, width);
    }
    uint32_t n_head_kv2 = n_head2 * n_head_kv / n_head;
    pad_dims pd = {{d, ff, (uint64_t)n_head * head_dim, (uint64_t)n_head_kv * head_dim},
                   {width, width, (uint64_t)n_head2 * head_dim, (uint64_t)n_head_kv2 * head_dim}};
    static const char *const keys[] = {"llama.embedding_length", "llama.feed_forward_length",
                                       "llama.attention.head_count", "llama.attention.head_count_kv", NULL};
    const uint32_t values[] = {width, width, n_head2, n_head_kv2};
    gguf_writer *w;
    st = vkl_gguf_writer_open(out_path, &w);
    if (st == VKLLM_OK) {
        st = write_padded(f, w, &pd, (float)sqrt((double)d / width), keys, values, eps * (float)d / (float)width);
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_close(w);
        else
            vkl_gguf_writer_abort(w);
    }
    vkl_gguf_close(f);
    return st;
}

/* The public C API (include/vkllm.h): a thin layer over the GGUF reader, tokenizer, model and sampler. */
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/chat_template.h"
#include "host/gguf.h"
#include "host/llama.h"
#include "host/quant.h"
#include "host/sampler.h"
#include "host/tokenizer.h"
#include "runtime/log.h"

struct vkllm_model {
    vkr_instance *instance;     /* NULL when running on the application's device */
    vkr_device *dev;
    llama_model *llama;
    tokenizer *tok;
    char description[256];
    char *chat_template;        /* tokenizer.chat_template, NUL-terminated; NULL if the file has none */
    vkllm_progress_fn progress;
    void *progress_user;
};

struct vkllm_context {
    vkllm_model *model;
    llama_context *llama;
    uint32_t pos;
};

struct vkllm_sampler {
    sampler *s;
    bool plain_greedy;          /* greedy without a penalty: argmax of the logits as they are */
    float *scratch;
    uint32_t n_vocab;
};

struct vkllm_detokenizer {
    tokenizer_stream *s;
};

const char *vkllm_last_error(void) { return vkr_last_error(); }
void vkllm_free(void *p) { free(p); }
void vkllm_log_set(vkllm_log_fn fn, void *user) { vkr_log_set(fn, user); }

void vkllm_model_default_params(vkllm_model_params *p) { memset(p, 0, sizeof *p); }

static void load_progress(uint64_t done, uint64_t total, void *user)
{
    vkllm_model *m = user;
    if (m->progress)
        m->progress(total ? (float)((double)done / (double)total) : 1.0f, m->progress_user);
}

static vkllm_status open_device(vkllm_model *m, const vkllm_model_params *p)
{
    if (p->vk_device || p->vk_instance || p->vk_physical_device || p->vk_queue)
        return vkr_device_create_external((VkInstance)p->vk_instance, (VkPhysicalDevice)p->vk_physical_device,
                                          (VkDevice)p->vk_device, (VkQueue)p->vk_queue, p->vk_queue_family, &m->dev);
    vkr_instance_options io = {.validation = p->validation};
    vkllm_status st = vkr_instance_create(&io, &m->instance);
    if (st != VKLLM_OK)
        return st;
    vkr_device_options dopts = {.selector = p->device, .memory_limit = p->memory_limit};
    return vkr_device_create(m->instance, &dopts, &m->dev);
}

static vkllm_status copy_chat_template(const gguf_file *f, char **out)
{
    const char *s;
    uint64_t len;
    if (!gguf_get_str(f, "tokenizer.chat_template", &s, &len))
        return VKLLM_OK; /* none (or not a string): the application picks a format */
    *out = malloc((size_t)len + 1);
    if (!*out)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (len)
        memcpy(*out, s, (size_t)len);
    (*out)[len] = '\0';
    return VKLLM_OK;
}

vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out)
{
    *out = NULL;
    vkllm_model_params defaults;
    if (!p) {
        vkllm_model_default_params(&defaults);
        p = &defaults;
    }
    vkllm_model *m = calloc(1, sizeof *m);
    if (!m)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->progress = p->progress;
    m->progress_user = p->progress_user;
    gguf_file *f = NULL;
    vkllm_status st = gguf_open(path, &f);
    llama_hparams hp;
    /* Check what we can on the CPU before touching the GPU. */
    if (st == VKLLM_OK)
        st = llama_read_hparams(f, &hp);
    if (st == VKLLM_OK)
        st = tokenizer_load(f, &m->tok);
    if (st == VKLLM_OK && tokenizer_n_vocab(m->tok) != (int32_t)hp.n_vocab)
        st = vkr_error(VKLLM_ERR_FORMAT, "the vocabulary has %d tokens but token_embd.weight has %u rows",
                       tokenizer_n_vocab(m->tok), hp.n_vocab);
    if (st == VKLLM_OK)
        st = copy_chat_template(f, &m->chat_template);
    if (st == VKLLM_OK)
        st = open_device(m, p);
    if (st == VKLLM_OK)
        st = llama_model_load(m->dev, f, load_progress, m, &m->llama);
    gguf_close(f);
    if (st != VKLLM_OK) {
        vkllm_model_free(m);
        return st;
    }
    const llama_hparams *h = &m->llama->hp;
    snprintf(m->description, sizeof m->description, "%s %u layers, %u embd, %u heads (%u kv), %s, %.2f GiB",
             h->fam->name, h->n_layer, h->n_embd, h->n_head, h->n_head_kv,
             ggml_type_name(m->llama->weight_type) ? ggml_type_name(m->llama->weight_type) : "?",
             m->llama->weight_bytes / 1073741824.0);
    *out = m;
    return VKLLM_OK;
}

void vkllm_model_free(vkllm_model *m)
{
    if (!m)
        return;
    llama_model_free(m->llama);
    tokenizer_free(m->tok);
    free(m->chat_template);
    vkr_device_destroy(m->dev);
    vkr_instance_destroy(m->instance);
    free(m);
}

const char *vkllm_model_description(const vkllm_model *m) { return m->description; }
const char *vkllm_model_device_name(const vkllm_model *m) { return m->dev->info.name; }
uint32_t vkllm_model_n_vocab(const vkllm_model *m) { return m->llama->hp.n_vocab; }
uint32_t vkllm_model_n_ctx_train(const vkllm_model *m) { return m->llama->hp.n_ctx_train; }
uint64_t vkllm_model_weight_bytes(const vkllm_model *m) { return m->llama->weight_bytes; }

int32_t vkllm_token_bos(const vkllm_model *m) { return tokenizer_bos(m->tok); }
int32_t vkllm_token_eos(const vkllm_model *m) { return tokenizer_eos(m->tok); }
bool vkllm_token_is_eog(const vkllm_model *m, int32_t id) { return tokenizer_is_eog(m->tok, id); }

vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special, bool parse_special,
                            int32_t **ids, size_t *n_ids)
{
    return tokenizer_encode(m->tok, text, len, add_special, parse_special, ids, n_ids);
}

vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n_ids, char **text, size_t *len)
{
    return tokenizer_decode(m->tok, ids, n_ids, false, text, len);
}

vkllm_status vkllm_detokenizer_create(const vkllm_model *m, vkllm_detokenizer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkllm_status st = tokenizer_stream_create(m->tok, false, &(*out)->s);
    if (st != VKLLM_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

void vkllm_detokenizer_free(vkllm_detokenizer *d)
{
    if (!d)
        return;
    tokenizer_stream_free(d->s);
    free(d);
}

vkllm_status vkllm_detokenizer_push(vkllm_detokenizer *d, int32_t id, const char **text, size_t *len)
{
    return tokenizer_stream_push(d->s, id, text, len);
}

void vkllm_detokenizer_flush(vkllm_detokenizer *d, const char **text, size_t *len)
{
    tokenizer_stream_flush(d->s, text, len);
}

/* ---- Chat ---- */

const char *vkllm_model_chat_template(const vkllm_model *m) { return m->chat_template; }

const char *vkllm_chat_template_detect(const char *jinja)
{
    return jinja ? chat_template_name(chat_template_detect(jinja, strlen(jinja))) : NULL;
}

const char *vkllm_chat_template_names(void) { return chat_template_names(); }

static vkllm_status chat_kind(const char *name, chat_template_kind *k)
{
    int v = chat_template_from_name(name);
    if (v < 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "unknown chat template '%s' (known: %s)", name ? name : "(null)",
                         chat_template_names());
    *k = (chat_template_kind)v;
    return VKLLM_OK;
}

vkllm_status vkllm_chat_format(const char *name, const vkllm_chat_message *msgs, size_t n, size_t from,
                               bool add_assistant, char **text, size_t *len)
{
    chat_template_kind k = CHAT_TEMPLATE_DEFAULT;
    vkllm_status st = chat_kind(name, &k);
    return st == VKLLM_OK ? chat_format(k, msgs, n, from, add_assistant, text, len) : st;
}

vkllm_status vkllm_chat_tokenize(const vkllm_model *m, const char *name, const vkllm_chat_message *msgs, size_t n,
                                 size_t from, bool add_assistant, int32_t **ids, size_t *n_ids)
{
    chat_template_kind k = CHAT_TEMPLATE_DEFAULT;
    vkllm_status st = chat_kind(name, &k);
    return st == VKLLM_OK ? chat_tokenize(m->tok, k, msgs, n, from, add_assistant, ids, n_ids) : st;
}

/* ---- Contexts ---- */

void vkllm_context_default_params(vkllm_context_params *p) { memset(p, 0, sizeof *p); }

vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out)
{
    *out = NULL;
    uint32_t n_ctx = p ? p->n_ctx : 0, n_batch = p ? p->n_batch : 0;
    if (n_ctx == 0)
        n_ctx = m->llama->hp.n_ctx_train < 4096 ? m->llama->hp.n_ctx_train : 4096;
    if (n_batch == 0)
        n_batch = 512;
    vkllm_context *c = calloc(1, sizeof *c);
    if (!c)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    c->model = m;
    vkllm_status st = llama_context_create(m->llama, n_ctx, n_batch, &c->llama);
    if (st != VKLLM_OK) {
        vkllm_context_free(c);
        return st;
    }
    *out = c;
    return VKLLM_OK;
}

void vkllm_context_free(vkllm_context *c)
{
    if (!c)
        return;
    llama_context_free(c->llama);
    free(c);
}

uint32_t vkllm_context_n_ctx(const vkllm_context *c) { return llama_context_n_ctx(c->llama); }
uint32_t vkllm_context_position(const vkllm_context *c) { return c->pos; }

vkllm_status vkllm_context_truncate(vkllm_context *c, uint32_t pos)
{
    if (pos > c->pos)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "cannot truncate to %u: only %u tokens in the context", pos, c->pos);
    c->pos = pos;   /* later positions are overwritten before they are read */
    return VKLLM_OK;
}

static vkllm_status check_fits(const vkllm_context *c, size_t n)
{
    uint32_t n_ctx = llama_context_n_ctx(c->llama);
    if (n == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no tokens to decode");
    if (n > n_ctx - c->pos)
        return vkr_error(VKLLM_ERR_CONTEXT_FULL, "%zu tokens do not fit: %u of the context's %u positions are used", n,
                         c->pos, n_ctx);
    return VKLLM_OK;
}

vkllm_status vkllm_decode(vkllm_context *c, const int32_t *tokens, size_t n, const float **logits)
{
    vkllm_status st = check_fits(c, n);
    if (st == VKLLM_OK)
        st = llama_eval(c->llama, tokens, (uint32_t)n, c->pos, false, NULL);
    if (st != VKLLM_OK)
        return st;
    c->pos += (uint32_t)n;
    if (logits) /* read straight from the memory the GPU wrote: no copy per token */
        *logits = llama_context_logits(c->llama);
    return VKLLM_OK;
}

vkllm_status vkllm_decode_all(vkllm_context *c, const int32_t *tokens, size_t n, float *logits)
{
    vkllm_status st = check_fits(c, n);
    if (st == VKLLM_OK)
        st = llama_eval(c->llama, tokens, (uint32_t)n, c->pos, true, logits);
    if (st == VKLLM_OK)
        c->pos += (uint32_t)n;
    return st;
}

void vkllm_context_set_timing(vkllm_context *c, bool on) { llama_context_set_timing(c->llama, on); }
double vkllm_context_last_gpu_ns(const vkllm_context *c) { return llama_context_last_gpu_ns(c->llama); }

/* ---- Sampling ---- */

void vkllm_sampler_default_params(vkllm_sampler_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

vkllm_status vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_sampler **out)
{
    *out = NULL;
    vkllm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    s->n_vocab = m->llama->hp.n_vocab;
    s->plain_greedy = p->temperature <= 0 && (p->repeat_penalty == 1.0f || p->repeat_last_n == 0);
    s->scratch = malloc((size_t)s->n_vocab * sizeof(float));
    sampler_params sp = {
        .temperature = p->temperature,
        .top_k = p->top_k,
        .top_p = p->top_p,
        .min_p = p->min_p,
        .repeat_penalty = p->repeat_penalty,
        .repeat_last_n = p->repeat_last_n,
        .seed = p->seed,
    };
    vkllm_status st = s->scratch ? sampler_create(&sp, (int32_t)s->n_vocab, &s->s)
                                 : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st != VKLLM_OK) {
        vkllm_sampler_free(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}

void vkllm_sampler_free(vkllm_sampler *s)
{
    if (!s)
        return;
    sampler_free(s->s);
    free(s->scratch);
    free(s);
}

int32_t vkllm_sampler_sample(vkllm_sampler *s, const float *logits)
{
    int32_t id = 0;
    if (s->plain_greedy) { /* no copy of the vocabulary's logits; NaN never wins, as in the sampler */
        float best = -INFINITY;
        for (uint32_t i = 0; i < s->n_vocab; i++)
            if (logits[i] > best)
                best = logits[i], id = (int32_t)i;
        sampler_accept(s->s, id);
        return id;
    }
    memcpy(s->scratch, logits, (size_t)s->n_vocab * sizeof(float));
    id = sampler_sample(s->s, s->scratch);
    sampler_accept(s->s, id);
    return id;
}

void vkllm_sampler_accept(vkllm_sampler *s, int32_t id) { sampler_accept(s->s, id); }
void vkllm_sampler_reset(vkllm_sampler *s) { sampler_reset(s->s); }

/* The public C API (include/vkllm.h): a thin layer over the GGUF reader, tokenizer, model and sampler. */
#include "vkllm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/api_internal.h"
#include "host/text/chat_template.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "host/format/quant.h"
#include "host/sampler.h"
#include "host/text/tokenizer.h"
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
    vkllm_context_params params;   /* as created, the zeros that choose resolved (context_params) */
    uint32_t *seq_pos;          /* per sequence, its next position (after its last); vkllm_decode appends to 0 */
    /* Per sequence, the positions before seq_pos that it holds no row for (vkllm_seq_rm of a middle range):
     * its cache rows are seq_pos - seq_gap. With a gap, row_pos (n_seq x n_ctx, n_seq > 1 only) holds each
     * row's position; without one, row r holds position r. host/api_batch.c keeps both. */
    uint32_t *seq_gap, *row_pos;
    struct api_batch *batch;    /* vkllm_decode_batch's logits (host/api_batch.c) */
    uint32_t budget_us;         /* max_gpu_us_per_submit; 0: none (or no timestamps) */
    double us_per_token;        /* learned GPU time per token of the last prompt chunk; 0: not measured */
    uint32_t chunk_ok;          /* the largest chunk measured within the budget */
    double last_submit_us, max_submit_us;
    /* a decode in flight (vkllm_decode_submit): the tokens, those in the context, the batch submitted */
    bool in_flight;
    int32_t *queue;
    size_t queue_cap, queue_n, queue_done;
    uint32_t chunk_n;
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

/* ---- Parameter structs (include/vkllm.h: sized by the caller) ---- */

/* Writes the library's defaults `d` (full = its sizeof) into the caller's struct of `size` bytes. */
static void params_default(void *p, size_t size, void *d, size_t full)
{
    *(uint32_t *)d = (uint32_t)size;
    memcpy(p, d, size < full ? size : full);
    if (size > full)
        memset((char *)p + full, 0, size - full);   /* fields of a newer header: zero is their default */
}

/* Reads the caller's struct p over the defaults in `out` (full bytes): NULL p gives the defaults. `what`
 * names the struct without "_params" ("vkllm_model"). */
static vkllm_status params_read(const void *p, void *out, size_t full, const char *what)
{
    if (!p)
        return VKLLM_OK;
    uint32_t size;
    memcpy(&size, p, sizeof size);
    if (size < 2 * sizeof(uint32_t) || size > (1u << 16))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s_params.size is %u: initialize it with %s_default_params", what,
                         size, what);
    for (size_t i = full; i < size; i++)
        if (((const unsigned char *)p)[i])
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s_params sets fields this vkllm (%s) does not know: the header is newer "
                             "than the library", what, VKLLM_VERSION_STRING);
    memcpy(out, p, size < full ? size : full);
    *(uint32_t *)out = (uint32_t)full;
    return VKLLM_OK;
}

void vkllm_model_default_params_sized(vkllm_model_params *p, size_t size)
{
    vkllm_model_params d = {0};
    params_default(p, size, &d, sizeof d);
}

static bool load_progress(uint64_t done, uint64_t total, void *user)
{
    vkllm_model *m = user;
    return !m->progress || m->progress(total ? (float)((double)done / (double)total) : 1.0f, m->progress_user);
}

static vkllm_status open_device(vkllm_model *m, const vkllm_model_params *p)
{
    if (p->vk_device || p->vk_instance || p->vk_physical_device || p->vk_queue) {
        vkr_external_device ext = {
            .instance = (VkInstance)p->vk_instance,
            .physical = (VkPhysicalDevice)p->vk_physical_device,
            .device = (VkDevice)p->vk_device,
            .queue = (VkQueue)p->vk_queue,
            .queue_family = p->vk_queue_family,
            .enabled_features = p->vk_enabled_features,
            .enabled_extensions = p->vk_enabled_extensions,
            .n_enabled_extensions = p->vk_n_enabled_extensions,
            .memory_limit = p->memory_limit,
            .queue_lock = p->vk_queue_lock,
            .queue_unlock = p->vk_queue_unlock,
            .queue_lock_user = p->vk_queue_lock_user,
        };
        return vkr_device_create_external(&ext, &m->dev);
    }
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
    if (!vkl_gguf_get_str(f, "tokenizer.chat_template", &s, &len))
        return VKLLM_OK; /* none (or not a string): the application picks a format */
    *out = malloc((size_t)len + 1);
    if (!*out)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (len)
        memcpy(*out, s, (size_t)len);
    (*out)[len] = '\0';
    return VKLLM_OK;
}

/* The load from an opened GGUF file (a path or a buffer); f is closed here. */
static vkllm_status model_load(gguf_file *f, vkllm_status opened, const vkllm_model_params *p, vkllm_model **out)
{
    vkllm_model_params params;
    vkllm_model_default_params(&params);
    vkllm_status st = opened;
    if (st == VKLLM_OK)
        st = params_read(p, &params, sizeof params, "vkllm_model");
    p = &params;
    vkllm_model *m = st == VKLLM_OK ? calloc(1, sizeof *m) : NULL;
    if (st == VKLLM_OK && !m)
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st != VKLLM_OK) {
        vkl_gguf_close(f);
        free(m);
        return st;
    }
    m->progress = p->progress;
    m->progress_user = p->progress_user;
    llama_hparams hp;
    /* Check what we can on the CPU before touching the GPU. */
    st = vkl_llama_read_hparams(f, &hp);
    if (st == VKLLM_OK)
        st = vkl_tokenizer_load(f, &m->tok);
    if (st == VKLLM_OK && vkl_tokenizer_n_vocab(m->tok) != (int32_t)hp.n_vocab)
        st = vkr_error(VKLLM_ERR_FORMAT, "the vocabulary has %d tokens but token_embd.weight has %u rows",
                       vkl_tokenizer_n_vocab(m->tok), hp.n_vocab);
    if (st == VKLLM_OK)
        st = copy_chat_template(f, &m->chat_template);
    if (st == VKLLM_OK)
        st = open_device(m, p);
    if (st == VKLLM_OK)
        st = vkl_llama_model_load(m->dev, f, load_progress, m, &m->llama);
    vkl_gguf_close(f);
    if (st != VKLLM_OK) {
        vkllm_model_free(m);
        return st;
    }
    const llama_hparams *h = &m->llama->hp;
    snprintf(m->description, sizeof m->description, "%s %u layers, %u embd, %u heads (%u kv), %s, %.2f GiB",
             h->fam->name, h->n_layer, h->n_embd, h->n_head, h->n_head_kv,
             vkl_ggml_type_name(m->llama->weight_type) ? vkl_ggml_type_name(m->llama->weight_type) : "?",
             m->llama->weight_bytes / 1073741824.0);
    *out = m;
    return VKLLM_OK;
}

vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out)
{
    *out = NULL;
    if (!path)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_model_load: NULL path");
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);
    return model_load(f, st, p, out);
}

vkllm_status vkllm_model_load_from_memory(const void *data, size_t size, const vkllm_model_params *p,
                                          vkllm_model **out)
{
    *out = NULL;
    if (!data && size)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_model_load_from_memory: NULL data");
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open_memory(data, size, &f);
    return model_load(f, st, p, out);
}

void vkllm_model_free(vkllm_model *m)
{
    if (!m)
        return;
    vkl_llama_model_free(m->llama);
    vkl_tokenizer_free(m->tok);
    free(m->chat_template);
    vkr_device_destroy(m->dev);
    vkr_instance_destroy(m->instance);
    free(m);
}

vkr_device *vkl_api_model_device(const vkllm_model *m) { return m->dev; }

const char *vkllm_model_description(const vkllm_model *m) { return m->description; }
const char *vkllm_model_device_name(const vkllm_model *m) { return m->dev->info.name; }
uint32_t vkllm_model_n_vocab(const vkllm_model *m) { return m->llama->hp.n_vocab; }
uint32_t vkllm_model_n_ctx_train(const vkllm_model *m) { return m->llama->hp.n_ctx_train; }
uint64_t vkllm_model_weight_bytes(const vkllm_model *m) { return m->llama->weight_bytes; }

int32_t vkllm_token_bos(const vkllm_model *m) { return vkl_tokenizer_bos(m->tok); }
int32_t vkllm_token_eos(const vkllm_model *m) { return vkl_tokenizer_eos(m->tok); }
bool vkllm_token_is_eog(const vkllm_model *m, int32_t id) { return vkl_tokenizer_is_eog(m->tok, id); }

vkllm_status vkllm_token_piece(const vkllm_model *m, int32_t id, char *buf, size_t cap, size_t *len)
{
    if (!m || !len || (!buf && cap))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_token_piece: NULL argument");
    int32_t n = vkl_tokenizer_token_to_piece(m->tok, id, NULL, 0);
    if (n == TOKENIZER_BAD_ID)
        return VKLLM_ERR_INVALID_ARGUMENT;   /* the message is stored */
    *len = (size_t)(n < 0 ? -n : n);
    if (*len && *len <= cap)
        vkl_tokenizer_token_to_piece(m->tok, id, buf, cap);
    return VKLLM_OK;
}

vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special, bool parse_special,
                            int32_t **ids, size_t *n_ids)
{
    return vkl_tokenizer_encode(m->tok, text, len, add_special, parse_special, ids, n_ids);
}

vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n_ids, char **text, size_t *len)
{
    return vkl_tokenizer_decode(m->tok, ids, n_ids, false, text, len);
}

vkllm_status vkllm_detokenizer_create(const vkllm_model *m, vkllm_detokenizer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkllm_status st = vkl_tokenizer_stream_create(m->tok, false, &(*out)->s);
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
    vkl_tokenizer_stream_free(d->s);
    free(d);
}

vkllm_status vkllm_detokenizer_push(vkllm_detokenizer *d, int32_t id, const char **text, size_t *len)
{
    return vkl_tokenizer_stream_push(d->s, id, text, len);
}

void vkllm_detokenizer_flush(vkllm_detokenizer *d, const char **text, size_t *len)
{
    vkl_tokenizer_stream_flush(d->s, text, len);
}

/* ---- Chat ---- */

const char *vkllm_model_chat_template(const vkllm_model *m) { return m->chat_template; }

const char *vkllm_chat_template_detect(const char *jinja)
{
    return jinja ? vkl_chat_template_name(vkl_chat_template_detect(jinja, strlen(jinja))) : NULL;
}

const char *vkllm_chat_template_names(void) { return vkl_chat_template_names(); }

static vkllm_status chat_kind(const char *name, chat_template_kind *k)
{
    int v = vkl_chat_template_from_name(name);
    if (v < 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "unknown chat template '%s' (known: %s)", name ? name : "(null)",
                         vkl_chat_template_names());
    *k = (chat_template_kind)v;
    return VKLLM_OK;
}

vkllm_status vkllm_chat_format(const char *name, const vkllm_chat_message *msgs, size_t n, size_t from,
                               bool add_assistant, char **text, size_t *len)
{
    chat_template_kind k = CHAT_TEMPLATE_DEFAULT;
    vkllm_status st = chat_kind(name, &k);
    return st == VKLLM_OK ? vkl_chat_format(k, msgs, n, from, add_assistant, text, len) : st;
}

vkllm_status vkllm_chat_tokenize(const vkllm_model *m, const char *name, const vkllm_chat_message *msgs, size_t n,
                                 size_t from, bool add_assistant, int32_t **ids, size_t *n_ids)
{
    chat_template_kind k = CHAT_TEMPLATE_DEFAULT;
    vkllm_status st = chat_kind(name, &k);
    return st == VKLLM_OK ? vkl_chat_tokenize(m->tok, k, msgs, n, from, add_assistant, ids, n_ids) : st;
}

/* ---- Contexts ---- */

void vkllm_context_default_params_sized(vkllm_context_params *p, size_t size)
{
    vkllm_context_params d = {0};
    params_default(p, size, &d, sizeof d);
}

/* The caller's parameters (NULL: the defaults) over the defaults, with the zeros that choose resolved. */
static vkllm_status context_params(const vkllm_model *m, const vkllm_context_params *p, vkllm_context_params *out)
{
    vkllm_context_default_params(out);
    vkllm_status st = params_read(p, out, sizeof *out, "vkllm_context");
    if (st != VKLLM_OK)
        return st;
    if (out->n_ctx == 0)
        out->n_ctx = m->llama->hp.n_ctx_train < 4096 ? m->llama->hp.n_ctx_train : 4096;
    if (out->n_batch == 0)
        out->n_batch = 512;
    if (out->n_seq == 0)
        out->n_seq = 1;
    return VKLLM_OK;
}

vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out)
{
    *out = NULL;
    vkllm_context_params params;
    vkllm_status st = context_params(m, p, &params);
    if (st != VKLLM_OK)
        return st;
    p = &params;
    const uint32_t n_ctx = p->n_ctx, n_seq = p->n_seq;
    vkllm_context *c = calloc(1, sizeof *c);
    if (!c)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    c->model = m;
    c->params = params;
    c->seq_pos = calloc(n_seq, sizeof *c->seq_pos);
    c->seq_gap = calloc(n_seq, sizeof *c->seq_gap);
    c->row_pos = n_seq > 1 ? calloc((size_t)n_seq * n_ctx, sizeof *c->row_pos) : NULL;
    if (!c->seq_pos || !c->seq_gap || (n_seq > 1 && !c->row_pos))
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    else
        st = vkl_llama_context_create_seq(m->llama, n_ctx, p->n_batch, n_seq, &c->llama);
    if (st != VKLLM_OK) {
        vkllm_context_free(c);
        return st;
    }
    if (p->max_gpu_us_per_submit && !m->dev->info.features.timestamps)
        vkr_log(VKLLM_LOG_WARNING, "max_gpu_us_per_submit is ignored: the device has no timestamp queries to measure it");
    else if (p->max_gpu_us_per_submit) {
        c->budget_us = p->max_gpu_us_per_submit;
        vkl_llama_context_set_timing(c->llama, true);
        vkl_llama_context_set_split(c->llama, 0.75e3 * c->budget_us);   /* a token over the budget: layer groups */
        vkl_llama_context_set_abort(c->llama, c->params.abort, c->params.abort_user);    /* asked between them too */
    }
    uint32_t trained = m->llama->hp.n_ctx_train;
    if (trained && n_ctx > trained)   /* vkllm applies no RoPE scaling */
        vkr_log(VKLLM_LOG_WARNING, "a context of %u positions exceeds the %u the model was trained on, and vkllm applies no "
                "RoPE scaling: expect degraded output past position %u", n_ctx, trained, trained);
    *out = c;
    return VKLLM_OK;
}

void vkllm_context_free(vkllm_context *c)
{
    if (!c)
        return;
    vkl_llama_context_free(c->llama);   /* waits for a submission in flight */
    vkl_api_batch_free(c->batch);
    free(c->seq_pos);
    free(c->seq_gap);
    free(c->row_pos);
    free(c->queue);
    free(c);
}

uint32_t vkllm_context_n_ctx(const vkllm_context *c) { return vkl_llama_context_n_ctx(c->llama); }
uint32_t vkllm_context_position(const vkllm_context *c) { return c->seq_pos[0]; }

static vkllm_status check_idle(const vkllm_context *c)
{
    if (c->in_flight)
        return vkr_error(VKLLM_ERR_BUSY, "a decode is in flight: complete it with vkllm_decode_poll or vkllm_decode_wait "
                         "first");
    return VKLLM_OK;
}

/* For host/state.c: the context's model and runtime context, the idle check, and the position after a load. */
llama_context *vkl_api_context_llama(vkllm_context *c) { return c->llama; }
const llama_model *vkl_api_context_model(const vkllm_context *c) { return c->model->llama; }
vkllm_status vkl_api_context_check_idle(const vkllm_context *c) { return check_idle(c); }
void vkl_api_context_set_position(vkllm_context *c, uint32_t pos)
{
    c->seq_pos[0] = pos;
    c->seq_gap[0] = 0;
}

/* For host/api_batch.c. */
uint32_t vkl_api_context_n_seq(const vkllm_context *c) { return c->params.n_seq; }
uint32_t *vkl_api_context_seq_pos(vkllm_context *c) { return c->seq_pos; }
uint32_t *vkl_api_context_seq_gap(vkllm_context *c) { return c->seq_gap; }
uint32_t *vkl_api_context_row_pos(vkllm_context *c) { return c->row_pos; }
struct api_batch **vkl_api_context_batch(vkllm_context *c) { return &c->batch; }
bool vkl_api_context_aborted(const vkllm_context *c) { return c->params.abort && c->params.abort(c->params.abort_user); }

vkllm_status vkllm_context_truncate(vkllm_context *c, uint32_t pos)
{
    if (check_idle(c) != VKLLM_OK)
        return VKLLM_ERR_BUSY;
    if (pos > c->seq_pos[0])
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "cannot truncate to %u: only %u tokens in the context", pos,
                         c->seq_pos[0]);
    vkl_api_seq_keep_below(c, 0, pos);   /* later positions are overwritten before they are read */
    return VKLLM_OK;
}

static vkllm_status check_fits(const vkllm_context *c, size_t n)
{
    uint32_t n_ctx = vkl_llama_context_n_ctx(c->llama);
    if (n == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no tokens to decode");
    if (c->seq_gap[0])   /* vkl_llama_eval puts position p in row p */
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "sequence 0 lacks positions removed from its middle (vkllm_seq_rm): "
                         "continue it with vkllm_decode_batch");
    if (n > n_ctx - c->seq_pos[0])
        return vkr_error(VKLLM_ERR_CONTEXT_FULL, "%zu tokens do not fit: %u of the context's %u positions are used", n,
                         c->seq_pos[0], n_ctx);
    return VKLLM_OK;
}

static vkllm_status check_ids(const vkllm_context *c, const int32_t *tokens, size_t n)
{
    uint32_t n_vocab = c->model->llama->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %zu: id %d is out of range (vocabulary of %u)", i,
                             tokens[i], n_vocab);
    return VKLLM_OK;
}

/* What a decode checks before it moves anything: no decode in flight, room for the n tokens, valid ids. */
static vkllm_status check_decode(const vkllm_context *c, const int32_t *tokens, size_t n)
{
    vkllm_status st = check_idle(c);
    if (st == VKLLM_OK)
        st = check_fits(c, n);
    if (st == VKLLM_OK && !tokens)
        st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no tokens to decode");
    if (st == VKLLM_OK)
        st = check_ids(c, tokens, n);
    return st;
}

/* How many of the `left` tokens the next submission takes: n_batch, or with a frame budget a chunk that
 * the learned GPU time per token puts at 3/4 of the budget, at most twice the largest chunk measured
 * within it (one token at first), rounded down to a power of two so that few graph shapes get recorded. */
static uint32_t next_chunk(const vkllm_context *c, size_t left)
{
    uint32_t k = c->params.n_batch;
    if (c->budget_us) {
        double fit = c->us_per_token > 0 ? 0.75 * c->budget_us / c->us_per_token : 1.0;
        double grow = c->chunk_ok ? 2.0 * c->chunk_ok : 1.0;
        double want = fit < grow ? fit : grow;
        uint32_t p = 1;
        while (p * 2.0 <= want && p * 2 <= c->params.n_batch)
            p *= 2;
        k = p;
    }
    return left < k ? (uint32_t)left : k;
}

/* After an evaluation of k tokens that took total_ns of GPU time: its longest submission (one unless a
 * token was split into layer groups), and what the chunk sizes learn from it. */
static void note_submission(vkllm_context *c, uint32_t k, double total_ns)
{
    c->last_submit_us = vkl_llama_context_last_submit_gpu_ns(c->llama) / 1e3;
    if (c->last_submit_us > c->max_submit_us)
        c->max_submit_us = c->last_submit_us;
    if (!c->budget_us || c->last_submit_us <= 0)
        return;
    c->us_per_token = total_ns / 1e3 / k;
    if (c->last_submit_us <= c->budget_us)
        c->chunk_ok = k > c->chunk_ok ? k : c->chunk_ok;
    else
        c->chunk_ok = k / 2 < c->chunk_ok ? k / 2 : c->chunk_ok;
}

/* The abort callback stopped the decode after `done` of its n tokens: between two submissions, or (in_token:
 * the evaluation's VKLLM_ERR_CANCELLED) between the layer groups of the next token, which is not kept. */
static vkllm_status aborted(size_t done, size_t n, bool in_token)
{
    return vkr_error(VKLLM_ERR_CANCELLED, "decode aborted by the callback after %zu of %zu tokens%s", done, n,
                     in_token ? " (between the layer groups of the next, which is not kept)" : "");
}

/* Evaluates the tokens with every logit row into all_logits (NULL: none), in chunks (one submission each) as
 * vkllm_decode_submit sizes them, asking the abort callback between them; an abort leaves the chunks done
 * in the context. All ids are checked first (as vkl_llama_eval does) so that a bad one moves nothing. */
static vkllm_status eval_all(vkllm_context *c, const int32_t *tokens, size_t n, float *all_logits)
{
    vkllm_status st = check_decode(c, tokens, n);
    uint32_t n_vocab = c->model->llama->hp.n_vocab;
    for (size_t done = 0; st == VKLLM_OK && done < n;) {
        if (done && vkl_api_context_aborted(c))
            return aborted(done, n, false);
        uint32_t k = next_chunk(c, n - done);
        st = vkl_llama_eval(c->llama, tokens + done, k, c->seq_pos[0], all_logits != NULL,
                        all_logits ? all_logits + done * n_vocab : NULL);
        if (st == VKLLM_OK) {
            note_submission(c, k, vkl_llama_context_last_gpu_ns(c->llama));   /* vkl_llama_eval counts from 0 */
            c->seq_pos[0] += k;
            done += k;
        } else if (st == VKLLM_ERR_CANCELLED)
            st = aborted(done, n, true);
    }
    return st;
}

/* Submits the next chunk of the decode in flight; an error ends it. */
static vkllm_status submit_next(vkllm_context *c)
{
    uint32_t k = next_chunk(c, c->queue_n - c->queue_done);
    vkllm_status st = vkl_llama_eval_submit(c->llama, c->queue + c->queue_done, k, c->seq_pos[0]);
    c->in_flight = st == VKLLM_OK;
    c->chunk_n = k;
    return st;
}

vkllm_status vkllm_decode_submit(vkllm_context *c, const int32_t *tokens, size_t n)
{
    vkllm_status st = check_decode(c, tokens, n);
    if (st != VKLLM_OK)
        return st;
    if (n > c->queue_cap) {
        int32_t *q = realloc(c->queue, n * sizeof *q);
        if (!q)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        c->queue = q;
        c->queue_cap = n;
    }
    memcpy(c->queue, tokens, n * sizeof *tokens);
    c->queue_n = n;
    c->queue_done = 0;
    vkl_llama_context_reset_gpu_ns(c->llama);
    return submit_next(c);
}

/* Waits at most timeout_ns for the submission in flight; if it finished, submits the next chunk (after
 * asking the abort callback) or ends the decode (*finished). *progressed: a submission finished. */
static vkllm_status step(vkllm_context *c, uint64_t timeout_ns, bool *progressed, bool *finished)
{
    *finished = false;
    double before = vkl_llama_context_last_gpu_ns(c->llama);
    vkllm_status st = vkl_llama_eval_poll(c->llama, timeout_ns, progressed);
    if (st != VKLLM_OK || !*progressed) {
        c->in_flight = st == VKLLM_OK;
        return st == VKLLM_ERR_CANCELLED ? aborted(c->queue_done, c->queue_n, true) : st;
    }
    note_submission(c, c->chunk_n, vkl_llama_context_last_gpu_ns(c->llama) - before);
    c->seq_pos[0] += c->chunk_n;
    c->queue_done += c->chunk_n;
    c->in_flight = false;
    if (c->queue_done == c->queue_n) {
        *finished = true;
        return VKLLM_OK;
    }
    if (vkl_api_context_aborted(c))
        return aborted(c->queue_done, c->queue_n, false);
    return submit_next(c);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

vkllm_status vkllm_decode_wait(vkllm_context *c, uint64_t timeout_ns, const float **logits)
{
    if (!c->in_flight)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no decode in flight: call vkllm_decode_submit first");
    double deadline = now_ns() + (double)timeout_ns;
    for (;;) {
        uint64_t left = timeout_ns;
        if (timeout_ns != UINT64_MAX) {
            double d = deadline - now_ns();
            left = d > 0 ? (uint64_t)d : 0;
        }
        bool progressed, finished;
        vkllm_status st = step(c, left, &progressed, &finished);
        if (st != VKLLM_OK)
            return st;
        if (finished) {
            if (logits) /* read straight from the memory the GPU wrote: no copy per token */
                *logits = vkl_llama_context_logits(c->llama);
            return VKLLM_OK;
        }
        /* not progressed: the time ran out, or a split token's layer group finished and the next is submitted */
        if (left == 0)
            return VKLLM_NOT_READY;
    }
}

vkllm_status vkllm_decode_poll(vkllm_context *c, const float **logits) { return vkllm_decode_wait(c, 0, logits); }

vkllm_status vkllm_decode(vkllm_context *c, const int32_t *tokens, size_t n, const float **logits)
{
    vkllm_status st = vkllm_decode_submit(c, tokens, n);
    return st == VKLLM_OK ? vkllm_decode_wait(c, UINT64_MAX, logits) : st;
}

vkllm_status vkllm_decode_all(vkllm_context *c, const int32_t *tokens, size_t n, float *logits)
{
    return eval_all(c, tokens, n, logits);
}

vkllm_status vkllm_context_timeline(const vkllm_context *c, void *semaphore, uint64_t *value)
{
    if (!c || !semaphore || !value)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_context_timeline: context, semaphore or value is NULL");
    const vkr_device *dev = c->model->dev;
    if (!dev->timeline)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "no timeline semaphore: the device lacks Vulkan 1.2's timelineSemaphore%s",
                         dev->owns_device ? "" : ", or vk_enabled_features does not say the application enabled it");
    memcpy(semaphore, &dev->timeline, sizeof dev->timeline);
    *value = vkl_llama_context_timeline_value(c->llama);
    return VKLLM_OK;
}

double vkllm_context_last_submit_gpu_us(const vkllm_context *c) { return c->last_submit_us; }
double vkllm_context_max_submit_gpu_us(const vkllm_context *c) { return c->max_submit_us; }

void vkllm_context_set_timing(vkllm_context *c, bool on)
{
    if (!c->in_flight)   /* re-recording would wait for the submission in flight */
        vkl_llama_context_set_timing(c->llama, on || c->budget_us);
}
double vkllm_context_last_gpu_ns(const vkllm_context *c) { return vkl_llama_context_last_gpu_ns(c->llama); }

/* ---- Sampling ---- */

void vkllm_sampler_default_params_sized(vkllm_sampler_params *p, size_t size)
{
    vkllm_sampler_params d = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    params_default(p, size, &d, sizeof d);
}

vkllm_status vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_sampler **out)
{
    *out = NULL;
    vkllm_sampler_params params;
    vkllm_sampler_default_params(&params);
    vkllm_status st = params_read(p, &params, sizeof params, "vkllm_sampler");
    if (st != VKLLM_OK)
        return st;
    p = &params;
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
    st = s->scratch ? vkl_sampler_create(&sp, (int32_t)s->n_vocab, &s->s)
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
    vkl_sampler_free(s->s);
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
        vkl_sampler_accept(s->s, id);
        return id;
    }
    memcpy(s->scratch, logits, (size_t)s->n_vocab * sizeof(float));
    id = vkl_sampler_sample(s->s, s->scratch);
    vkl_sampler_accept(s->s, id);
    return id;
}

void vkllm_sampler_accept(vkllm_sampler *s, int32_t id) { vkl_sampler_accept(s->s, id); }
void vkllm_sampler_reset(vkllm_sampler *s) { vkl_sampler_reset(s->s); }

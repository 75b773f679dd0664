/* vkllm: run Llama-family GGUF models on any Vulkan GPU.
 *
 * Every fallible call returns a vkllm_status; on failure vkllm_last_error() holds a one-line message
 * for the calling thread. The library never exits or aborts the process.
 *
 *     vkllm_model *model;
 *     vkllm_model_params mp;
 *     vkllm_model_default_params(&mp);
 *     if (vkllm_model_load("model.gguf", &mp, &model) != VKLLM_OK)
 *         fprintf(stderr, "%s\n", vkllm_last_error());
 *     vkllm_context *ctx;
 *     vkllm_context_params cp;
 *     vkllm_context_default_params(&cp);
 *     vkllm_context_create(model, &cp, &ctx);
 *     int32_t *ids; size_t n;
 *     vkllm_tokenize(model, "Once upon a time", 16, true, false, &ids, &n);
 *     const float *logits;
 *     vkllm_decode(ctx, ids, n, &logits);        // prompt: batched
 *     ... pick a token with a vkllm_sampler, then vkllm_decode(ctx, &token, 1, &logits) ...
 */
#ifndef VKLLM_H
#define VKLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm_log.h"
#include "vkllm_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the last failing call on this thread. */
const char *vkllm_last_error(void);
/* Frees memory the library returned (token arrays, decoded text). */
void vkllm_free(void *p);

/* ---- Log messages ----
 *
 * The library never writes to stdout. Its own diagnostics (e.g. an unknown tokenizer.ggml.pre, Vulkan
 * validation messages) go to one process-wide callback, by default a writer of
 * "vkllm: <level>: <message>\n" to stderr. Errors that fail a call are not logged: they are in the
 * returned status and vkllm_last_error().
 *
 * vkllm_log_set(fn, user) installs fn (called with user); fn NULL restores the default. It may be called
 * at any time from any thread; the callback can be called from any thread that uses the library, several
 * at once, and must not assume it runs on the thread that installed it. A message being delivered while
 * vkllm_log_set runs may still reach the previous callback, so keep the previous `user` alive until the
 * calls that could log have returned (simplest: set the callback before loading a model). */
void vkllm_log_set(vkllm_log_fn fn, void *user);

/* ---- Models ---- */

typedef struct vkllm_model vkllm_model;

typedef void (*vkllm_progress_fn)(float fraction, void *user);

typedef struct vkllm_model_params {
    const char *device;           /* NULL: $VKLLM_DEVICE or the best device; else an index or a name substring */
    bool validation;              /* enable the Vulkan validation layer */
    uint64_t memory_limit;        /* refuse device allocations beyond this many bytes (0: no limit) */
    vkllm_progress_fn progress;   /* called while weights upload */
    void *progress_user;
    /* Embedding: run on the application's own Vulkan device. All four handles set (VkInstance,
     * VkPhysicalDevice, VkDevice, VkQueue, passed as pointers) and the queue family index; the queue must
     * support compute. The application keeps ownership and must not use the queue concurrently. */
    void *vk_instance, *vk_physical_device, *vk_device, *vk_queue;
    uint32_t vk_queue_family;
} vkllm_model_params;

void vkllm_model_default_params(vkllm_model_params *p);
vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out);
void vkllm_model_free(vkllm_model *m);

/* A one-line description: architecture, size, weight type, device. */
const char *vkllm_model_description(const vkllm_model *m);
const char *vkllm_model_device_name(const vkllm_model *m);
uint32_t vkllm_model_n_vocab(const vkllm_model *m);
uint32_t vkllm_model_n_ctx_train(const vkllm_model *m);
uint64_t vkllm_model_weight_bytes(const vkllm_model *m);

/* ---- Tokens ---- */

int32_t vkllm_token_bos(const vkllm_model *m);   /* -1 if none */
int32_t vkllm_token_eos(const vkllm_model *m);
bool vkllm_token_is_eog(const vkllm_model *m, int32_t id);   /* end of generation (EOS, EOT, ...) */

/* add_special: BOS/EOS as the model's metadata says; parse_special: "<s>"-style text becomes control
 * tokens. *ids is freed with vkllm_free. */
vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special,
                            bool parse_special, int32_t **ids, size_t *n_ids);
/* Whole-sequence detokenization; *text is NUL-terminated, freed with vkllm_free. */
vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n_ids, char **text, size_t *len);

/* Streaming detokenizer (holds back incomplete UTF-8 sequences). Feed it the prompt's tokens too, BOS
 * included, and the text comes out as tokenize() read it: SentencePiece's leading space is dropped at
 * the start of the text and after control and user-defined tokens. */
typedef struct vkllm_detokenizer vkllm_detokenizer;
vkllm_status vkllm_detokenizer_create(const vkllm_model *m, vkllm_detokenizer **out);
void vkllm_detokenizer_free(vkllm_detokenizer *d);
/* *text is valid until the next call; may be empty. */
vkllm_status vkllm_detokenizer_push(vkllm_detokenizer *d, int32_t id, const char **text, size_t *len);
void vkllm_detokenizer_flush(vkllm_detokenizer *d, const char **text, size_t *len);

/* ---- Chat: formatting a conversation the way a chat model was trained ----
 *
 * Built-in formats, by name: "llama3", "llama2", "chatml" (Qwen2 and many fine-tunes), "mistral"
 * (Mistral-instruct) and "zephyr". A model's own template (GGUF tokenizer.chat_template, a Jinja program)
 * is not run: vkllm_chat_template_detect recognises which of these formats it implements. Message contents
 * are inserted verbatim. A conversation kept in a context grows turn by turn:
 *
 *     msgs = {system, user}: vkllm_chat_tokenize(m, name, msgs, 2, 0, true, ...), decode, generate the
 *     reply until an end-of-generation token (not decoded); then msgs += {assistant reply, next user}:
 *     vkllm_chat_tokenize(m, name, msgs, 4, 3, true, ...) gives just the tokens to decode next. */

typedef struct vkllm_chat_message {
    const char *role;      /* "system", "user" or "assistant" */
    const char *content;   /* NUL-terminated */
} vkllm_chat_message;

/* Used by applications when a model has no template they recognise (the `vkllm chat` default). */
#define VKLLM_CHAT_TEMPLATE_DEFAULT "chatml"

/* The model's tokenizer.chat_template (NUL-terminated), or NULL if it has none. Valid while m lives. */
const char *vkllm_model_chat_template(const vkllm_model *m);
/* The built-in format a Jinja chat template implements, recognised by its distinctive markers
 * ("<|start_header_id|>", "<|im_start|>", "[INST]" with or without "<<SYS>>", "<|user|>"), or NULL
 * (unrecognised, or jinja is NULL). Returns a static string. */
const char *vkllm_chat_template_detect(const char *jinja);
/* "llama3, llama2, chatml, mistral, zephyr" (for messages). */
const char *vkllm_chat_template_names(void);

/* Formats messages[from..n) with the built-in template `name`, followed by the prompt that opens the
 * assistant's reply if add_assistant. Messages before `from` are context and not written, except the
 * markup that closes message from-1: the text starts right after that message's content, which is what a
 * context holding a just-generated reply (message from-1) has not seen yet. from = 0: the whole text.
 * *text is NUL-terminated, freed with vkllm_free. VKLLM_ERR_INVALID_ARGUMENT for an unknown name or role
 * (roles are "system", "user", "assistant"), a NULL content or from > n. */
vkllm_status vkllm_chat_format(const char *name, const vkllm_chat_message *msgs, size_t n, size_t from,
                               bool add_assistant, char **text, size_t *len);
/* The same text as the model's tokens: the template's markup with its special tokens recognised, the
 * contents as plain text (parse_special off), so a message cannot inject control tokens. At from = 0 the
 * model's BOS is prepended if its metadata asks for one and the template did not write it. *ids is freed
 * with vkllm_free. */
vkllm_status vkllm_chat_tokenize(const vkllm_model *m, const char *name, const vkllm_chat_message *msgs, size_t n,
                                 size_t from, bool add_assistant, int32_t **ids, size_t *n_ids);

/* ---- Contexts: a KV cache and the recorded work to fill it ---- */

typedef struct vkllm_context vkllm_context;

typedef struct vkllm_context_params {
    uint32_t n_ctx;      /* positions; 0: the smaller of the model's context and 4096 */
    uint32_t n_batch;    /* most prompt tokens per graph; 0: 512 */
} vkllm_context_params;

void vkllm_context_default_params(vkllm_context_params *p);
vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out);
void vkllm_context_free(vkllm_context *c);
uint32_t vkllm_context_n_ctx(const vkllm_context *c);
/* Tokens in the KV cache so far. */
uint32_t vkllm_context_position(const vkllm_context *c);
/* Forgets everything from position `pos` on (0: a fresh conversation). Models with sliding-window layers
 * (Gemma 2/3) keep only window + n_batch - 1 positions in those layers when that is less than n_ctx: the next
 * decode after a truncation must then start at 0 or within n_batch positions of the old end, else it fails
 * with VKLLM_ERR_UNSUPPORTED. */
vkllm_status vkllm_context_truncate(vkllm_context *c, uint32_t pos);

/* Appends tokens at the current position and returns the last token's logits (n_vocab floats, valid
 * until the next call). VKLLM_ERR_CONTEXT_FULL if they do not fit, leaving the context unchanged. */
vkllm_status vkllm_decode(vkllm_context *c, const int32_t *tokens, size_t n, const float **logits);
/* Same, writing every token's logits (n x n_vocab floats) into `logits` (perplexity, scoring). */
vkllm_status vkllm_decode_all(vkllm_context *c, const int32_t *tokens, size_t n, float *logits);
/* GPU time of the last decode call in nanoseconds, when enabled with vkllm_context_set_timing. */
void vkllm_context_set_timing(vkllm_context *c, bool on);
double vkllm_context_last_gpu_ns(const vkllm_context *c);

/* ---- Sampling ---- */

typedef struct vkllm_sampler vkllm_sampler;

typedef struct vkllm_sampler_params {
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    int32_t repeat_last_n;  /* tokens of history the penalty looks at */
    uint64_t seed;
} vkllm_sampler_params;

void vkllm_sampler_default_params(vkllm_sampler_params *p);
vkllm_status vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_sampler **out);
void vkllm_sampler_free(vkllm_sampler *s);
/* Picks a token from logits (copied; the input is not modified) and remembers it for the penalty. */
int32_t vkllm_sampler_sample(vkllm_sampler *s, const float *logits);
/* Adds prompt tokens to the penalty's history without sampling. */
void vkllm_sampler_accept(vkllm_sampler *s, int32_t id);
/* Forgets the history and restarts the random sequence from the seed (a new conversation). */
void vkllm_sampler_reset(vkllm_sampler *s);

#ifdef __cplusplus
}
#endif

#endif

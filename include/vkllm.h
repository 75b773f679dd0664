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
#include "vkllm_version.h"   /* VKLLM_VERSION_MAJOR, _MINOR, _PATCH, VKLLM_VERSION_STRING */

/* Marks the exported API. The library is built with hidden visibility, so only these functions leave
 * libvkllm.so, and its static archive keeps every other symbol local (README: Embedding). On Windows,
 * VKLLM_BUILD is defined while building the DLL and VKLLM_STATIC by users of the static library. */
#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(VKLLM_STATIC)
#    define VKLLM_API
#  elif defined(VKLLM_BUILD)
#    define VKLLM_API __declspec(dllexport)
#  else
#    define VKLLM_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define VKLLM_API __attribute__((visibility("default")))
#else
#  define VKLLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, "MAJOR.MINOR.PATCH": compare with VKLLM_VERSION_STRING to detect a header that
 * does not match the library loaded at run time. */
VKLLM_API const char *vkllm_version(void);

/* The message of the last failing call on this thread. */
VKLLM_API const char *vkllm_last_error(void);
/* Frees memory the library returned (token arrays, decoded text). */
VKLLM_API void vkllm_free(void *p);

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
VKLLM_API void vkllm_log_set(vkllm_log_fn fn, void *user);

/* ---- Parameter structs ----
 *
 * vkllm_model_params, vkllm_context_params and vkllm_sampler_params grow over versions without breaking
 * programs built against an older header: each starts with `size`, the struct's size as the caller's
 * header declares it, written by its *_default_params macro (which passes sizeof to the *_sized function;
 * always initialize with it, then set fields). New fields are only ever appended, and their zero value
 * keeps the earlier behaviour. The library reads only the first `size` bytes (fields it knows that the
 * caller's header lacks keep their defaults); a struct from a newer header than the library is accepted
 * if every field the library does not know is zero, else refused with VKLLM_ERR_UNSUPPORTED. A size too
 * small to be a params struct (e.g. 0: not initialized) is VKLLM_ERR_INVALID_ARGUMENT. */

/* ---- Models ----
 *
 * Everything made from a model (contexts, samplers, detokenizers) is freed before the model:
 * vkllm_model_free releases the device they use. Every *_free accepts NULL. The *_params pointers of
 * vkllm_model_load, vkllm_context_create and vkllm_sampler_create may be NULL: the defaults.
 *
 * Threads. A model is read-only once loaded: its calls (tokenize, detokenize, token queries, chat
 * formatting) may run on any number of threads at once, and so may vkllm_context_create. Each context,
 * sampler and detokenizer is used by one thread at a time (the application locks if it hands one between
 * threads); different contexts of one model run concurrently on different threads, their submissions to
 * the model's single queue serialized inside vkllm. Freeing is not concurrent with any other use of the
 * object freed (vkllm_model_free: with any use of the model or what was made from it). Load and free models
 * on one thread at a time (they set up process-wide Vulkan entry points). Callbacks (progress, abort,
 * queue lock) run on the thread of the call that triggers them. */

typedef struct vkllm_model vkllm_model;

/* Called while weights upload, with the fraction done (0..1), on the loading thread. Return false to
 * cancel: the load then fails with VKLLM_ERR_CANCELLED, everything it made freed. */
typedef bool (*vkllm_progress_fn)(float fraction, void *user);
/* The application's lock of its own queue (see vk_queue_lock). */
typedef void (*vkllm_queue_lock_fn)(void *user);

typedef struct vkllm_model_params {
    uint32_t size;                /* sizeof the struct as the caller knows it: see "Parameter structs" */
    const char *device;           /* NULL: $VKLLM_DEVICE or the best device; else an index or a name substring */
    bool validation;              /* enable the Vulkan validation layer */
    uint64_t memory_limit;        /* refuse device allocations beyond this many bytes (0: no limit); also on
                                   * the application's device */
    vkllm_progress_fn progress;   /* NULL: none */
    void *progress_user;
    /* Embedding: run on the application's own Vulkan device. All four handles set (VkInstance,
     * VkPhysicalDevice, VkDevice, VkQueue, passed as pointers) and the queue family index. Checked at load:
     * the instance was created with apiVersion >= 1.2 and the device supports 1.2, the queue family exists
     * and has compute (else VKLLM_ERR_UNSUPPORTED / VKLLM_ERR_INVALID_ARGUMENT). The application keeps
     * ownership; vkllm_model_free waits only for vkllm's own work (its fences), never for the whole device. */
    void *vk_instance, *vk_physical_device, *vk_device, *vk_queue;
    uint32_t vk_queue_family;
    /* What the application enabled at vkCreateDevice, so that vkllm's faster kernels may run: a
     * const VkPhysicalDeviceFeatures2 * (its pNext chain with VkPhysicalDeviceVulkan11/12/13Features or the
     * 16-bit storage, float16/int8, subgroup size control and integer dot product structs) and its
     * enabled extension names (VK_EXT_memory_budget; before 1.3 VK_EXT_subgroup_size_control and
     * VK_KHR_shader_integer_dot_product). NULL/0: only the baseline kernels (fp16, int8, int16, int64,
     * 8/16-bit storage and subgroup size control off), which are much slower. Read during the load only. */
    const void *vk_enabled_features;
    const char *const *vk_enabled_extensions;
    uint32_t vk_n_enabled_extensions;
    /* Sharing the queue: Vulkan requires every vkQueueSubmit on a queue to be externally synchronized. When
     * the application also submits to vk_queue from other threads, it passes its queue lock here: vkllm
     * calls vk_queue_lock(vk_queue_lock_user) before and vk_queue_unlock after each of its submissions
     * (never around a wait; possibly from any thread that calls vkllm). Both or neither. Without them the
     * application must not use the queue while a vkllm call runs. */
    vkllm_queue_lock_fn vk_queue_lock, vk_queue_unlock;
    void *vk_queue_lock_user;
} vkllm_model_params;

VKLLM_API void vkllm_model_default_params_sized(vkllm_model_params *p, size_t size);
#define vkllm_model_default_params(p) vkllm_model_default_params_sized((p), sizeof *(p))
VKLLM_API vkllm_status vkllm_model_load(const char *path, const vkllm_model_params *p, vkllm_model **out);
/* The same from a GGUF image in memory (a packed game archive): checked as a file is, never read past
 * size; the buffer is read during the call only and may be freed after it returns. */
VKLLM_API vkllm_status vkllm_model_load_from_memory(const void *data, size_t size, const vkllm_model_params *p,
                                                    vkllm_model **out);
VKLLM_API void vkllm_model_free(vkllm_model *m);

/* A one-line description: architecture, size, weight type, device. */
VKLLM_API const char *vkllm_model_description(const vkllm_model *m);
VKLLM_API const char *vkllm_model_device_name(const vkllm_model *m);
VKLLM_API uint32_t vkllm_model_n_vocab(const vkllm_model *m);
VKLLM_API uint32_t vkllm_model_n_ctx_train(const vkllm_model *m);
VKLLM_API uint64_t vkllm_model_weight_bytes(const vkllm_model *m);

/* ---- Tokens ---- */

VKLLM_API int32_t vkllm_token_bos(const vkllm_model *m);   /* -1 if none */
VKLLM_API int32_t vkllm_token_eos(const vkllm_model *m);
VKLLM_API bool vkllm_token_is_eog(const vkllm_model *m, int32_t id);   /* end of generation (EOS, EOT, ...) */
/* A token's own bytes, as a grammar or a token mask matches them: SentencePiece's "▁" is a space (kept
 * at the start, where the detokenizer drops it), a byte token is its byte, a byte-level BPE token its
 * bytes (a piece may be part of a UTF-8 sequence), a control or unknown token nothing. *len is the
 * piece's length; the bytes (no NUL) are written to buf only if it fits in cap (cap 0: just measure). */
VKLLM_API vkllm_status vkllm_token_piece(const vkllm_model *m, int32_t id, char *buf, size_t cap, size_t *len);

/* add_special: BOS/EOS as the model's metadata says; parse_special: "<s>"-style text becomes control
 * tokens. *ids is freed with vkllm_free. */
VKLLM_API vkllm_status vkllm_tokenize(const vkllm_model *m, const char *text, size_t len, bool add_special,
                                      bool parse_special, int32_t **ids, size_t *n_ids);
/* Whole-sequence detokenization; *text is NUL-terminated, freed with vkllm_free. */
VKLLM_API vkllm_status vkllm_detokenize(const vkllm_model *m, const int32_t *ids, size_t n_ids, char **text, size_t *len);

/* Streaming detokenizer (holds back incomplete UTF-8 sequences). Feed it the prompt's tokens too, BOS
 * included, and the text comes out as tokenize() read it: SentencePiece's leading space is dropped at
 * the start of the text and after control and user-defined tokens. */
typedef struct vkllm_detokenizer vkllm_detokenizer;
VKLLM_API vkllm_status vkllm_detokenizer_create(const vkllm_model *m, vkllm_detokenizer **out);
VKLLM_API void vkllm_detokenizer_free(vkllm_detokenizer *d);
/* *text is valid until the next call; may be empty. */
VKLLM_API vkllm_status vkllm_detokenizer_push(vkllm_detokenizer *d, int32_t id, const char **text, size_t *len);
VKLLM_API void vkllm_detokenizer_flush(vkllm_detokenizer *d, const char **text, size_t *len);

/* ---- Chat: formatting a conversation the way a chat model was trained ----
 *
 * Built-in formats, by name: "llama3", "llama2", "chatml" (many fine-tunes), "mistral" (Mistral-instruct
 * v1-v3), "zephyr", "gemma" (Gemma 2/3), "phi3" (Phi-3/3.5), "phi4" (Phi-4-mini), "qwen1.5", "qwen2",
 * "qwen2.5" (ChatML with their default system prompts), "qwen3" and "qwen3-nothink" (thinking on/off),
 * "mistral-v7" (Mistral Small 3.x, Devstral, Ministral), "mistral-tekken" (Mistral Nemo) and "deepseek-r1"
 * (R1 and its distills). A model's own template (GGUF tokenizer.chat_template, a Jinja program) is not run:
 * vkllm_chat_template_detect recognises which of these formats it implements, and recognises none for a
 * template that only resembles one. Message contents are
 * inserted verbatim, except where the template trims them (gemma) or drops earlier replies' reasoning (qwen3,
 * deepseek-r1). A conversation kept in a context grows turn by turn:
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
VKLLM_API const char *vkllm_model_chat_template(const vkllm_model *m);
/* The built-in format a Jinja chat template implements, recognised by its distinctive markers
 * ("<|start_header_id|>", "<|im_start|>" and the default system prompt, "<start_of_turn>", ...), or NULL
 * (unrecognised, or jinja is NULL). Returns a static string. */
VKLLM_API const char *vkllm_chat_template_detect(const char *jinja);
/* "llama3, llama2, chatml, ..." (every name, for messages). */
VKLLM_API const char *vkllm_chat_template_names(void);

/* Formats messages[from..n) with the built-in template `name`, followed by the prompt that opens the
 * assistant's reply if add_assistant. Messages before `from` are context and not written, except the
 * markup that closes message from-1: the text starts right after that message's content, which is what a
 * context holding a just-generated reply (message from-1) has not seen yet. from = 0: the whole text.
 * *text is NUL-terminated, freed with vkllm_free. VKLLM_ERR_INVALID_ARGUMENT for an unknown name or role
 * (roles are "system", "user", "assistant"), a NULL content or from > n. */
VKLLM_API vkllm_status vkllm_chat_format(const char *name, const vkllm_chat_message *msgs, size_t n, size_t from,
                                         bool add_assistant, char **text, size_t *len);
/* The same text as the model's tokens: the template's markup with its special tokens recognised, the
 * contents as plain text (parse_special off), so a message cannot inject control tokens. At from = 0 the
 * model's BOS is prepended if its metadata asks for one and the template did not write it. *ids is freed
 * with vkllm_free. */
VKLLM_API vkllm_status vkllm_chat_tokenize(const vkllm_model *m, const char *name, const vkllm_chat_message *msgs, size_t n,
                                           size_t from, bool add_assistant, int32_t **ids, size_t *n_ids);

/* ---- Contexts: a KV cache and the recorded work to fill it ---- */

typedef struct vkllm_context vkllm_context;

/* Asked between the submissions of a prompt (batches of n_batch, or chunks sized by the frame budget), and
 * between those of a token that the frame budget splits into layer groups; true stops the decode. */
typedef bool (*vkllm_abort_fn)(void *user);

typedef struct vkllm_context_params {
    uint32_t size;       /* sizeof, written by vkllm_context_default_params */
    uint32_t n_ctx;      /* positions; 0: the smaller of the model's context and 4096 */
    uint32_t n_batch;    /* most prompt tokens per graph (one queue submission); 0: 512 */
    /* NULL: none. When abort(abort_user) returns true, vkllm_decode/vkllm_decode_all (and the poll or wait
     * of a submitted decode) return VKLLM_ERR_CANCELLED; the batches already done stay in the context (vkllm_context_position says how
     * many tokens), which remains usable. A token stopped between its layer groups is not kept: decoding it
     * again gives the logits it would have given. */
    vkllm_abort_fn abort;
    void *abort_user;
    /* Frame budget (0: none): the most GPU time, in microseconds, that one of vkllm's queue submissions
     * may take, so that a renderer sharing the GPU keeps its frame rate. Prompts are then submitted in
     * chunks sized from the GPU time per token measured with timestamp queries as the context runs
     * (starting with one token, at most doubling per submission, aiming at 3/4 of the budget). A token
     * longer than that is split into several submissions of consecutive layers, grouped by each layer's
     * GPU time measured in the previous token (every layer alone at first, aiming at 3/4 of the budget);
     * vkllm_decode_poll completes one of them and submits the next, so the application's own submissions
     * run in between. One layer (or the output projection) longer than the budget is still one
     * submission. Needs timestamp support (else ignored, with a warning). */
    uint32_t max_gpu_us_per_submit;
    /* Sequences the context holds (0: 1), each with n_ctx positions of its own KV cache (memory grows with
     * n_seq * n_ctx): see "Several sequences" below. */
    uint32_t n_seq;
} vkllm_context_params;

VKLLM_API void vkllm_context_default_params_sized(vkllm_context_params *p, size_t size);
#define vkllm_context_default_params(p) vkllm_context_default_params_sized((p), sizeof *(p))
VKLLM_API vkllm_status vkllm_context_create(vkllm_model *m, const vkllm_context_params *p, vkllm_context **out);
VKLLM_API void vkllm_context_free(vkllm_context *c);
VKLLM_API uint32_t vkllm_context_n_ctx(const vkllm_context *c);
/* Tokens in the KV cache so far. */
VKLLM_API uint32_t vkllm_context_position(const vkllm_context *c);
/* Forgets everything from position `pos` on (0: a fresh conversation). Models with sliding-window layers
 * (Gemma 2/3) keep only window + n_batch - 1 positions in those layers when that is less than n_ctx: the next
 * decode after a truncation must then start at 0 or within n_batch positions of the old end, else it fails
 * with VKLLM_ERR_UNSUPPORTED. */
VKLLM_API vkllm_status vkllm_context_truncate(vkllm_context *c, uint32_t pos);

/* Saving a sequence (savegames, cached system prompts): the context's position, its KV cache rows and its
 * last logits, with the model's identity, so that after vkllm_state_load (into a context of the same model
 * with at least as many positions) the next decode continues exactly as if never saved. vkllm_state_size
 * gives the bytes vkllm_state_save writes (VKLLM_ERR_INVALID_ARGUMENT when cap is smaller). A state of
 * another model, of more positions than the context, or truncated or corrupted, is refused with
 * VKLLM_ERR_INVALID_ARGUMENT and the context left as it was (a failed upload leaves it empty). Sliding-window
 * layers that keep a ring buffer (Gemma 2/3 with n_ctx > window + n_batch - 1) save only the positions their
 * ring holds: such a state loads into a context with a ring too (any n_batch), else it is refused; a ring
 * context truncated further back than its ring keeps (see vkllm_context_truncate) cannot be saved
 * (VKLLM_ERR_UNSUPPORTED). The _file variants write atomically (a temporary file renamed). All return
 * VKLLM_ERR_BUSY while a decode is in flight. */
VKLLM_API vkllm_status vkllm_state_size(vkllm_context *c, size_t *bytes);
VKLLM_API vkllm_status vkllm_state_save(vkllm_context *c, void *buf, size_t cap, size_t *written);
VKLLM_API vkllm_status vkllm_state_load(vkllm_context *c, const void *buf, size_t size);
VKLLM_API vkllm_status vkllm_state_save_file(vkllm_context *c, const char *path);
VKLLM_API vkllm_status vkllm_state_load_file(vkllm_context *c, const char *path);

/* Appends tokens at the current position and returns the last token's logits (n_vocab floats, valid
 * until the next call). VKLLM_ERR_CONTEXT_FULL if they do not fit, leaving the context unchanged. */
VKLLM_API vkllm_status vkllm_decode(vkllm_context *c, const int32_t *tokens, size_t n, const float **logits);
/* Same, writing every token's logits (n x n_vocab floats) into `logits` (perplexity, scoring). */
VKLLM_API vkllm_status vkllm_decode_all(vkllm_context *c, const int32_t *tokens, size_t n, float *logits);

/* The same as vkllm_decode without blocking (game loops): vkllm_decode_submit checks the tokens (the
 * errors of vkllm_decode), copies them and submits the first batch, then returns. Each later
 * vkllm_decode_poll or vkllm_decode_wait completes what the GPU finished and submits the next batch
 * (n_batch tokens, or budget-sized chunks, or a token's next group of layers), asking the abort callback
 * before each, so no call blocks for more than recording one submission (or its timeout). They return VKLLM_NOT_READY while work
 * remains, and VKLLM_OK with the last token's logits (as vkllm_decode gives them) when all tokens are in
 * the context; an error or an abort ends the decode, the completed batches staying in the context.
 * vkllm_decode_wait waits at most timeout_ns (UINT64_MAX: until done). While a decode is in flight,
 * vkllm_decode_submit, vkllm_decode, vkllm_decode_all, vkllm_context_truncate and vkllm_state_* return VKLLM_ERR_BUSY
 * (vkllm_context_free waits for it); poll or wait with nothing in flight is VKLLM_ERR_INVALID_ARGUMENT. */
VKLLM_API vkllm_status vkllm_decode_submit(vkllm_context *c, const int32_t *tokens, size_t n);
VKLLM_API vkllm_status vkllm_decode_poll(vkllm_context *c, const float **logits);
VKLLM_API vkllm_status vkllm_decode_wait(vkllm_context *c, uint64_t timeout_ns, const float **logits);
/* Ordering the application's own GPU work after vkllm's, without waiting on the host: where the device has
 * Vulkan 1.2's timelineSemaphore (on the application's device: where vk_enabled_features says it enabled
 * it), every vkllm submission signals one timeline semaphore of the model with increasing values.
 * vkllm_context_timeline writes that VkSemaphore into *(VkSemaphore *)semaphore and into *value the value
 * it reaches when all that this context has submitted so far is complete (0 before its first submission):
 * the application waits for it in its own submissions (VkTimelineSemaphoreSubmitInfo) or with
 * vkWaitSemaphores. After vkllm_decode returns, or vkllm_decode_poll/_wait return VKLLM_OK, that is the whole
 * step; while a step in several submissions (prompt chunks, layer groups) is in flight, those submitted so
 * far (the next poll submits more: waiting for a value not yet submitted on the same queue would deadlock).
 * The semaphore belongs to the model: never signal or destroy it, and let the waits on it complete before
 * vkllm_model_free. VKLLM_ERR_UNSUPPORTED without the feature; the poll and wait calls always work. */
VKLLM_API vkllm_status vkllm_context_timeline(const vkllm_context *c, void *semaphore, uint64_t *value);
/* With a frame budget (or timing on): the GPU time in microseconds of the longest submission of the last
 * completed step (a prompt chunk or a token, one submission unless the budget split it into layer groups),
 * and the longest one since the context was created (0 without timestamps). */
VKLLM_API double vkllm_context_last_submit_gpu_us(const vkllm_context *c);
VKLLM_API double vkllm_context_max_submit_gpu_us(const vkllm_context *c);
/* GPU time of the last decode call in nanoseconds, when enabled with vkllm_context_set_timing (a frame
 * budget keeps it on; ignored while a decode is in flight). */
VKLLM_API void vkllm_context_set_timing(vkllm_context *c, bool on);
VKLLM_API double vkllm_context_last_gpu_ns(const vkllm_context *c);

/* ---- Several sequences in one context (servers, parallel generations) ----
 *
 * A context made with n_seq > 1 holds sequences 0 .. n_seq - 1, each with its own n_ctx positions of KV
 * cache. vkllm_decode_batch evaluates tokens of any of them together, prompt chunks next to single
 * generated tokens, as one pass over the weights (per step, the weights are read once for all the tokens):
 *
 *     int32_t tok[2] = {a, b}, pos[2] = {vkllm_seq_pos(c, 0), vkllm_seq_pos(c, 1)}, seq[2] = {0, 1};
 *     int8_t want[2] = {1, 1};
 *     vkllm_batch b = {2, tok, pos, seq, want};
 *     vkllm_decode_batch(c, &b);   // then vkllm_get_logits_ith(c, 0) and (c, 1)
 *
 * Rules, checked before anything runs (VKLLM_ERR_INVALID_ARGUMENT, or VKLLM_ERR_CONTEXT_FULL past n_ctx,
 * with a message naming the token): 1 <= n_tokens; token, pos and seq_id not NULL; every seq_id in
 * [0, n_seq) and token id in the vocabulary; a sequence's first token in the batch at a position p >= 0:
 * p == vkllm_seq_pos(seq) continues it, p < vkllm_seq_pos(seq) overwrites its tail from p on (the positions
 * from p on are dropped), p > vkllm_seq_pos(seq) leaves the positions in between empty (a gap, as
 * vkllm_seq_rm of a middle range leaves; refused where that refuses gaps); its following tokens at p + 1,
 * p + 2, ... in batch order (so no duplicates), all below n_ctx.
 * Tokens of different sequences may interleave in any order. logits NULL: only the last token's logits;
 * else logits[i] != 0 asks for token i's. A batch of more than n_batch tokens runs as several submissions
 * in order (the abort callback asked between them; the finished ones stay in the context, as
 * vkllm_seq_pos tells). Sliding-window models (Gemma 2/3) with n_ctx > window + n_batch - 1: each sequence
 * keeps a ring buffer of window + n_batch - 1 rows in the window layers (an info line states the memory), so
 * a sequence continues at 0 or within n_batch of the end of what it evaluated, vkllm_seq_rm may cut it back
 * by at most n_batch positions (or to 0), and vkllm_seq_cp copies from position 0 up to at most n_batch
 * before the source's end; otherwise VKLLM_ERR_UNSUPPORTED, nothing changed.
 *
 * vkllm_decode, vkllm_decode_all, vkllm_decode_submit, vkllm_context_position, vkllm_context_truncate and
 * the vkllm_state_* calls work on sequence 0; vkllm_decode* and vkllm_state_size/save refuse a sequence 0
 * with a gap (VKLLM_ERR_UNSUPPORTED: continue it with vkllm_decode_batch). While a decode is in flight,
 * these calls return VKLLM_ERR_BUSY. */

typedef struct vkllm_batch {
    uint32_t n_tokens;
    const int32_t *token;
    const int32_t *pos;       /* position of token i in its sequence */
    const int32_t *seq_id;    /* its sequence, 0 .. n_seq - 1 */
    const int8_t *logits;     /* NULL: the last token's only; else nonzero where token i's logits are wanted */
} vkllm_batch;

VKLLM_API uint32_t vkllm_context_n_seq(const vkllm_context *c);
VKLLM_API vkllm_status vkllm_decode_batch(vkllm_context *c, const vkllm_batch *batch);
/* Token i's logits from the last successful vkllm_decode_batch (n_vocab floats, valid until the next
 * decode call), or NULL (with vkllm_last_error set) if i is outside the batch or its logits were not asked for. */
VKLLM_API const float *vkllm_get_logits_ith(vkllm_context *c, int32_t i);
/* The next position of sequence seq: one after its last (the tokens it holds, unless positions were removed
 * from its middle); 0 for an empty sequence or a seq_id outside [0, n_seq). */
VKLLM_API uint32_t vkllm_seq_pos(const vkllm_context *c, int32_t seq_id);
/* Removes positions [p0, p1) of sequence seq_id (-1: every sequence); p0 < 0 means 0, p1 < 0 the end.
 * A tail (p1 < 0 or past the last position): the sequence then continues right after its last remaining
 * position; a prefix kept this way is reused as it is (multi-turn chat: remove the tail that differs,
 * decode the rest). A range in the middle: the remaining positions keep their positions (no shift: their
 * K/V stay as computed, with the removed tokens then visible to them), the gap stays empty, and the next
 * token goes after the last position as before; later tokens attend to the remaining ones only. The later
 * cache rows move down on the device (a copy of them in every layer). Refused for a middle range
 * (VKLLM_ERR_INVALID_ARGUMENT, nothing changed) in a context of one sequence (n_seq 1: position p is
 * cache row p) or of a model with sliding-window layers (Gemma 2/3: the window counts rows). Also
 * VKLLM_ERR_INVALID_ARGUMENT, nothing changed: p0 > p1 >= 0, p0 or p1 past n_ctx, seq_id outside
 * -1 .. n_seq - 1. Positions the sequence does not hold are skipped. */
VKLLM_API vkllm_status vkllm_seq_rm(vkllm_context *c, int32_t seq_id, int32_t p0, int32_t p1);
/* Copies the positions in [p0, p1) that sequence src holds to sequence dst (a shared system prompt computed
 * once), on the device: p0 < 0 means 0, p1 < 0 src's end, p1 <= vkllm_seq_pos(src). dst then holds exactly
 * those, at the same positions (what it held is dropped; p0 > 0 leaves dst empty below p0) and continues
 * after the last. (0, -1) copies the whole sequence. src == dst: nothing happens. Sliding-window models'
 * rings: see the rules above. */
VKLLM_API vkllm_status vkllm_seq_cp(vkllm_context *c, int32_t src, int32_t dst, int32_t p0, int32_t p1);
/* Empties sequence seq_id (-1: every sequence). */
VKLLM_API vkllm_status vkllm_seq_clear(vkllm_context *c, int32_t seq_id);

/* ---- Sampling ---- */

typedef struct vkllm_sampler vkllm_sampler;

typedef struct vkllm_sampler_params {
    uint32_t size;          /* sizeof, written by vkllm_sampler_default_params */
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    int32_t repeat_last_n;  /* tokens of history the penalty looks at */
    uint64_t seed;
} vkllm_sampler_params;

VKLLM_API void vkllm_sampler_default_params_sized(vkllm_sampler_params *p, size_t size);
#define vkllm_sampler_default_params(p) vkllm_sampler_default_params_sized((p), sizeof *(p))
VKLLM_API vkllm_status vkllm_sampler_create(const vkllm_model *m, const vkllm_sampler_params *p, vkllm_sampler **out);
VKLLM_API void vkllm_sampler_free(vkllm_sampler *s);
/* Picks a token from logits (copied; the input is not modified) and remembers it for the penalty. */
VKLLM_API int32_t vkllm_sampler_sample(vkllm_sampler *s, const float *logits);
/* Adds prompt tokens to the penalty's history without sampling. */
VKLLM_API void vkllm_sampler_accept(vkllm_sampler *s, int32_t id);
/* Forgets the history and restarts the random sequence from the seed (a new conversation). */
VKLLM_API void vkllm_sampler_reset(vkllm_sampler *s);

#ifdef __cplusplus
}
#endif

#endif

/* The server's generation backend behind a small interface: submit a job (prompt tokens and sampling),
 * read its text as it is generated, cancel it. The HTTP side knows only this, so a batched scheduler
 * (many sequences in one context, one pass over the weights per step) can replace this implementation.
 *
 * This one runs up to n_slots jobs as the n_slots sequences of one context, from one generation thread that
 * gives each busy slot one step per round and decodes the round's tokens of all slots as one batch (one pass
 * over the weights). Jobs beyond the slots wait in a bounded FIFO queue. Each slot keeps the tokens in its
 * sequence's KV cache; a new job goes to the free slot whose cache shares the longest prefix with its
 * prompt, drops the rest of that cache (vkllm_seq_rm) and decodes only the rest of the prompt. */
#ifndef VKLLM_SERVE_SCHEDULER_H
#define VKLLM_SERVE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/serve/request.h"
#include "vkllm.h"

typedef struct sched sched;
typedef struct sched_job sched_job;

typedef struct sched_params {
    uint32_t n_slots;       /* sequences generating at once (of one context) */
    uint32_t n_ctx;         /* positions per slot */
    uint32_t n_batch;       /* prompt tokens per slot per round */
    uint32_t max_queue;     /* jobs waiting for a slot before submit says SCHED_QUEUE_FULL */
    uint32_t debug_step_delay_ms;   /* tests: a pause per round, to hold slots busy */
} sched_params;

typedef enum sched_result { SCHED_OK = 0, SCHED_QUEUE_FULL, SCHED_SHUT_DOWN, SCHED_NO_MEMORY } sched_result;

/* What a job generates from; copied by sched_submit. */
typedef struct sched_job_params {
    const int32_t *prompt;
    size_t n_prompt;        /* 1 .. n_ctx - 1 */
    int64_t max_tokens;     /* -1: until the context is full */
    vkllm_sampler_params sampling;
    float presence_penalty, frequency_penalty;   /* OpenAI's, over the generated tokens */
    const char *const *stop;   /* stop strings (not part of the output) */
    size_t n_stop;
} sched_job_params;

typedef enum sched_finish { SCHED_RUNNING = 0, SCHED_FINISH_STOP, SCHED_FINISH_LENGTH, SCHED_FINISH_CANCELLED,
                            SCHED_FINISH_ERROR } sched_finish;

/* A snapshot of a job's progress. */
typedef struct sched_progress {
    size_t text_len;        /* bytes of final text so far (text never changes once reported) */
    sched_finish finish;
    size_t n_prompt, n_generated;
} sched_progress;

vkllm_status sched_create(vkllm_model *model, const sched_params *p, sched **out);
/* Cancels every job, stops the thread, frees the contexts. Jobs still referenced stay valid until
 * released. */
void sched_free(sched *s);
/* Stops taking jobs and cancels the running and waiting ones (their readers see SCHED_FINISH_CANCELLED). */
void sched_shutdown(sched *s);

sched_result sched_submit(sched *s, const sched_job_params *p, sched_job **out);
/* Waits up to timeout_ms for text past `seen` bytes or the end, then reports the progress. */
void sched_job_wait(sched_job *j, size_t seen, int timeout_ms, sched_progress *out);
/* Copies text[from..to) (to <= a reported text_len). */
void sched_job_text(sched_job *j, size_t from, size_t to, char *dst);
/* The error message of a SCHED_FINISH_ERROR job. */
const char *sched_job_error(sched_job *j);
/* Asks for the job to end; its slot is free after the generation thread's current step. */
void sched_job_cancel(sched_job *j);
/* Drops the caller's reference (cancelling the job if it is still running). */
void sched_job_release(sched_job *j);

typedef struct sched_stats {
    uint32_t n_slots, slots_busy, queue_depth, n_ctx;
    uint64_t kv_tokens;              /* positions in use over all slots */
    uint64_t jobs_done, prompt_tokens, prompt_tokens_reused, generated_tokens;
    double busy_seconds;             /* generation thread time spent on jobs */
} sched_stats;
void sched_get_stats(sched *s, sched_stats *out);

#endif

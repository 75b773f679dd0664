/* The batched scheduler (see scheduler.h): one context of n sequences, one generation thread. Per round each
 * busy slot (sequence) either takes up to n_batch more prompt tokens or samples one token from the last
 * round's logits, and all of them are decoded together in one vkllm_decode_batch (the weights read once per
 * round, not once per slot), so a long prompt does not stall the other slots' streams for long. A job's text
 * is released to its reader only when no stop string can still match across it. */
#include "host/serve/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sched_job {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int refs;                 /* the submitter's and, until it finishes, the scheduler's */
    bool cancelled;
    /* Parameters (owned copies). */
    int32_t *prompt;
    size_t n_prompt;
    int64_t max_tokens;
    vkllm_sampler_params sampling;
    float presence_penalty, frequency_penalty;
    char *stop[SERVE_MAX_STOP];
    size_t n_stop;
    /* Output, under lock. */
    char *text;
    size_t text_len, text_cap;
    sched_finish finish;
    size_t n_generated;
    char error[256];
    sched_job *next;          /* in the waiting queue */
};

typedef struct slot {
    int32_t seq;              /* its sequence in the context */
    int32_t *cache;           /* the tokens in its KV cache (n_ctx); past n_cache, those of the round's batch */
    size_t n_cache;
    uint64_t last_used;       /* round of its last job's end, for picking among equal prefixes */
    /* The job being generated, and its private state (generation thread only). */
    sched_job *job;
    size_t prompt_done;       /* prompt tokens in the cache */
    int32_t row;              /* the last batch's token whose logits are its next token's (-1: none) */
    uint32_t pending;         /* tokens in this round's batch */
    int32_t pending_row;      /* the one of them whose logits it wants (-1: none) */
    const float *logits;      /* of the last decoded token */
    vkllm_sampler *sampler;
    vkllm_detokenizer *detok;
    char *gen;                /* the generated text; [0, committed) has been released to the job */
    size_t gen_len, gen_cap, committed;
    int32_t *generated;       /* generated token ids (n_ctx), for the presence/frequency penalty */
    size_t n_generated;
    int32_t *counts;          /* n_vocab: occurrences among `generated` */
    float *penalized;         /* n_vocab: logits after the penalties */
    bool finished;
} slot;

struct sched {
    vkllm_model *model;
    sched_params p;
    uint32_t n_vocab;
    vkllm_context *ctx;       /* n_slots sequences */
    slot *slots;
    /* The round's batch: up to n_batch tokens per slot. */
    int32_t *b_tok, *b_pos, *b_seq;
    int8_t *b_want;
    uint32_t b_n;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;     /* the queue, the flags and the statistics */
    pthread_cond_t work;
    sched_job *queue_head, *queue_tail;
    uint32_t queue_len, busy;
    bool stopping, shut_down;
    uint64_t round;
    sched_stats stats;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- Jobs ---- */

static void job_free(sched_job *j)
{
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->changed);
    free(j->prompt);
    for (size_t i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    free(j->text);
    free(j);
}

static void job_unref(sched_job *j)
{
    pthread_mutex_lock(&j->lock);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->lock);
    if (last)
        job_free(j);
}

/* Makes room for `need` bytes in a growing buffer. */
static bool reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return false;
    *buf = b;
    *cap = c;
    return true;
}

/* Appends released text (generation thread). False when out of memory. */
static bool job_append(sched_job *j, const char *s, size_t n)
{
    if (n == 0)
        return true;
    pthread_mutex_lock(&j->lock);
    bool ok = reserve(&j->text, &j->text_cap, j->text_len + n);
    if (ok) {
        memcpy(j->text + j->text_len, s, n);
        j->text_len += n;
        pthread_cond_broadcast(&j->changed);
    }
    pthread_mutex_unlock(&j->lock);
    return ok;
}

static void job_finish(sched_job *j, sched_finish how, size_t n_generated, const char *error)
{
    pthread_mutex_lock(&j->lock);
    j->finish = how;
    j->n_generated = n_generated;
    if (error)
        snprintf(j->error, sizeof j->error, "%s", error);
    pthread_cond_broadcast(&j->changed);
    pthread_mutex_unlock(&j->lock);
}

static bool job_cancelled(sched_job *j)
{
    pthread_mutex_lock(&j->lock);
    bool c = j->cancelled;
    pthread_mutex_unlock(&j->lock);
    return c;
}

void sched_job_wait(sched_job *j, size_t seen, int timeout_ms, sched_progress *out)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->lock);
    while (j->text_len <= seen && j->finish == SCHED_RUNNING)
        if (pthread_cond_timedwait(&j->changed, &j->lock, &until) != 0)
            break;
    out->text_len = j->text_len;
    out->finish = j->finish;
    out->n_prompt = j->n_prompt;
    out->n_generated = j->n_generated;
    pthread_mutex_unlock(&j->lock);
}

void sched_job_text(sched_job *j, size_t from, size_t to, char *dst)
{
    pthread_mutex_lock(&j->lock);
    if (to > j->text_len)
        to = j->text_len;
    if (from < to)
        memcpy(dst, j->text + from, to - from);
    pthread_mutex_unlock(&j->lock);
}

const char *sched_job_error(sched_job *j) { return j->error; }

void sched_job_cancel(sched_job *j)
{
    pthread_mutex_lock(&j->lock);
    j->cancelled = true;
    pthread_mutex_unlock(&j->lock);
}

void sched_job_release(sched_job *j)
{
    sched_job_cancel(j);
    job_unref(j);
}

/* ---- Slots (generation thread) ---- */

static void slot_end_job(slot *sl)
{
    vkllm_sampler_free(sl->sampler);
    vkllm_detokenizer_free(sl->detok);
    sl->sampler = NULL;
    sl->detok = NULL;
    for (size_t i = 0; i < sl->n_generated; i++)
        sl->counts[sl->generated[i]] = 0;
    sl->n_generated = 0;
    sl->gen_len = sl->committed = 0;
    sl->finished = true;
}

static void slot_fail(sched *s, slot *sl, const char *why)
{
    job_finish(sl->job, SCHED_FINISH_ERROR, sl->n_generated, why);
    slot_end_job(sl);
    /* The cache may be half-written: start the next job from scratch. */
    vkllm_seq_rm(s->ctx, sl->seq, 0, -1);
    sl->n_cache = 0;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

/* Starts job j on slot sl whose cache shares `common` tokens with its prompt (on failure the job is
 * finished with the error). */
static void slot_start(sched *s, slot *sl, sched_job *j, size_t common)
{
    if (common >= j->n_prompt)
        common = j->n_prompt - 1;   /* the last prompt token is decoded again for its logits */
    sl->job = j;
    sl->finished = false;
    sl->gen_len = sl->committed = sl->n_generated = 0;
    sl->row = -1;
    if (vkllm_seq_rm(s->ctx, sl->seq, (int32_t)common, -1) != VKLLM_OK) {   /* the reused prefix stays */
        common = 0;
        vkllm_seq_rm(s->ctx, sl->seq, 0, -1);
    }
    sl->n_cache = common;
    sl->prompt_done = common;
    s->stats.prompt_tokens_reused += common;
    if (vkllm_sampler_create(s->model, &j->sampling, &sl->sampler) != VKLLM_OK ||
        vkllm_detokenizer_create(s->model, &sl->detok) != VKLLM_OK) {
        slot_fail(s, sl, vkllm_last_error());
        return;
    }
    size_t history = j->sampling.repeat_last_n > 0 ? (size_t)j->sampling.repeat_last_n : 0;
    for (size_t i = j->n_prompt > history ? j->n_prompt - history : 0; i < j->n_prompt; i++)
        vkllm_sampler_accept(sl->sampler, j->prompt[i]);
    /* The detokenizer sees the prompt so the reply's first piece comes out as it would after it. */
    for (size_t i = 0; i < j->n_prompt; i++) {
        const char *t;
        size_t n;
        vkllm_detokenizer_push(sl->detok, j->prompt[i], &t, &n);
    }
    const char *t;
    size_t n;
    vkllm_detokenizer_flush(sl->detok, &t, &n);
}

static bool gen_append(slot *sl, const char *t, size_t n)
{
    if (!reserve(&sl->gen, &sl->gen_cap, sl->gen_len + n))
        return false;
    memcpy(sl->gen + sl->gen_len, t, n);
    sl->gen_len += n;
    return true;
}

/* Looks for a stop string in the text not yet released: cuts the text there and returns true. Else
 * releases all but the longest tail that could still begin a stop string. */
static bool release_text(slot *sl, bool final)
{
    sched_job *j = sl->job;
    for (size_t k = 0; k < j->n_stop; k++) {
        size_t ls = strlen(j->stop[k]);
        for (size_t p = sl->committed; p + ls <= sl->gen_len; p++)
            if (!memcmp(sl->gen + p, j->stop[k], ls)) {
                sl->gen_len = p;
                job_append(j, sl->gen + sl->committed, p - sl->committed);
                sl->committed = p;
                return true;
            }
    }
    size_t hold = 0;
    for (size_t k = 0; k < j->n_stop && !final; k++) {
        size_t ls = strlen(j->stop[k]);
        for (size_t h = ls - 1; h > hold; h--)
            if (h <= sl->gen_len - sl->committed && !memcmp(sl->gen + sl->gen_len - h, j->stop[k], h)) {
                hold = h;
                break;
            }
    }
    size_t upto = sl->gen_len - hold;
    job_append(j, sl->gen + sl->committed, upto - sl->committed);
    sl->committed = upto;
    return false;
}

static void slot_finish(slot *sl, sched_finish how)
{
    const char *t;
    size_t n;
    vkllm_detokenizer_flush(sl->detok, &t, &n);
    if (how != SCHED_FINISH_CANCELLED) {
        if (gen_append(sl, t, n) && release_text(sl, true))
            how = SCHED_FINISH_STOP;
    }
    job_finish(sl->job, how, sl->n_generated, NULL);
    slot_end_job(sl);
}

static int32_t sample(slot *sl, uint32_t n_vocab)
{
    sched_job *j = sl->job;
    if (j->presence_penalty == 0 && j->frequency_penalty == 0)
        return vkllm_sampler_sample(sl->sampler, sl->logits);
    memcpy(sl->penalized, sl->logits, n_vocab * sizeof(float));
    for (size_t i = 0; i < sl->n_generated; i++) {
        int32_t id = sl->generated[i];
        if (sl->counts[id] > 0) {   /* each distinct token once: its count is cleared after use */
            sl->penalized[id] -= (float)sl->counts[id] * j->frequency_penalty + j->presence_penalty;
            sl->counts[id] = -sl->counts[id];
        }
    }
    for (size_t i = 0; i < sl->n_generated; i++)
        if (sl->counts[sl->generated[i]] < 0)
            sl->counts[sl->generated[i]] = -sl->counts[sl->generated[i]];
    return vkllm_sampler_sample(sl->sampler, sl->penalized);
}

/* Adds a token of slot sl (its sequence, at its next position) to the round's batch. */
static void batch_add(sched *s, slot *sl, int32_t id, bool want)
{
    const uint32_t i = s->b_n++;
    s->b_tok[i] = id;
    s->b_pos[i] = (int32_t)(sl->n_cache + sl->pending);
    s->b_seq[i] = sl->seq;
    s->b_want[i] = want;
    sl->cache[sl->n_cache + sl->pending++] = id;
    if (want)
        sl->pending_row = (int32_t)i;
}

/* A busy slot's part of a round: a chunk of its prompt, or one token sampled from the last batch's logits,
 * into the batch; or the end of its job. */
static void slot_step(sched *s, slot *sl)
{
    sched_job *j = sl->job;
    sl->pending = 0;
    sl->pending_row = -1;
    if (job_cancelled(j)) {
        slot_finish(sl, SCHED_FINISH_CANCELLED);
        return;
    }
    if (sl->prompt_done < j->n_prompt) {
        size_t n = j->n_prompt - sl->prompt_done;
        if (n > s->p.n_batch)
            n = s->p.n_batch;
        for (size_t i = 0; i < n; i++)   /* the logits of the prompt's last token only */
            batch_add(s, sl, j->prompt[sl->prompt_done + i], sl->prompt_done + i + 1 == j->n_prompt);
        return;
    }
    sl->logits = vkllm_get_logits_ith(s->ctx, sl->row);
    if (!sl->logits) {
        slot_fail(s, sl, vkllm_last_error());
        return;
    }
    int32_t id = sample(sl, s->n_vocab);
    if (vkllm_token_is_eog(s->model, id)) {
        slot_finish(sl, SCHED_FINISH_STOP);
        return;
    }
    sl->generated[sl->n_generated++] = id;
    sl->counts[id]++;
    const char *t;
    size_t n;
    if (vkllm_detokenizer_push(sl->detok, id, &t, &n) != VKLLM_OK || !gen_append(sl, t, n)) {
        slot_fail(s, sl, "out of host memory");
        return;
    }
    if (release_text(sl, false)) {
        slot_finish(sl, SCHED_FINISH_STOP);
        return;
    }
    if ((j->max_tokens >= 0 && sl->n_generated >= (uint64_t)j->max_tokens) || sl->n_cache >= s->p.n_ctx) {
        slot_finish(sl, SCHED_FINISH_LENGTH);
        return;
    }
    batch_add(s, sl, id, true);
}

/* One round: every busy slot's step, then their tokens decoded as one batch; on failure each slot in the
 * batch ends with the error. */
static void run_round(sched *s)
{
    s->b_n = 0;
    for (uint32_t i = 0; i < s->p.n_slots; i++)
        if (s->slots[i].job && !s->slots[i].finished)
            slot_step(s, &s->slots[i]);
    if (s->b_n == 0)
        return;
    const vkllm_batch b = {s->b_n, s->b_tok, s->b_pos, s->b_seq, s->b_want};
    char why[256] = "";
    if (vkllm_decode_batch(s->ctx, &b) != VKLLM_OK)
        snprintf(why, sizeof why, "%s", vkllm_last_error());
    for (uint32_t i = 0; i < s->p.n_slots; i++) {
        slot *sl = &s->slots[i];
        if (!sl->pending)
            continue;
        if (why[0]) {
            slot_fail(s, sl, why);
            continue;
        }
        sl->n_cache += sl->pending;
        if (sl->prompt_done < sl->job->n_prompt)
            sl->prompt_done += sl->pending;
        sl->row = sl->pending_row;
        sl->pending = 0;
    }
}

/* ---- The generation thread ---- */

/* Gives waiting jobs free slots, oldest job first, each the free slot sharing the longest prefix with its
 * prompt (equal: the least recently used). Called with s->lock held. */
static void assign_jobs(sched *s)
{
    while (s->queue_head && s->busy < s->p.n_slots) {
        sched_job *j = s->queue_head;
        s->queue_head = j->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        s->queue_len--;
        if (job_cancelled(j)) {
            job_finish(j, SCHED_FINISH_CANCELLED, 0, NULL);
            job_unref(j);
            continue;
        }
        slot *best = NULL, *lru = NULL;
        size_t best_common = 0, lru_common = 0;
        for (uint32_t i = 0; i < s->p.n_slots; i++) {
            slot *sl = &s->slots[i];
            if (sl->job)
                continue;
            size_t c = common_prefix(sl->cache, sl->n_cache, j->prompt, j->n_prompt);
            if (!best || c > best_common || (c == best_common && sl->last_used < best->last_used)) {
                best = sl;
                best_common = c;
            }
            if (!lru || sl->last_used < lru->last_used) {
                lru = sl;
                lru_common = c;
            }
        }
        /* A prefix of under a tenth of the prompt (a BOS, a shared first word) is not worth evicting a
         * conversation that may come back: take the least recently used slot instead. */
        if (best_common * 10 < j->n_prompt) {
            best = lru;
            best_common = lru_common;
        }
        s->busy++;
        s->stats.prompt_tokens += j->n_prompt;
        slot_start(s, best, j, best_common);
    }
}

static void *generation_thread(void *arg)
{
    sched *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        assign_jobs(s);
        if (s->busy == 0) {
            pthread_cond_wait(&s->work, &s->lock);
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        double t0 = now_s();
        run_round(s);
        if (s->p.debug_step_delay_ms)
            nanosleep(&(struct timespec){s->p.debug_step_delay_ms / 1000,
                                         (long)(s->p.debug_step_delay_ms % 1000) * 1000000L},
                      NULL);
        double dt = now_s() - t0;
        pthread_mutex_lock(&s->lock);
        s->round++;
        s->stats.busy_seconds += dt;
        s->stats.kv_tokens = 0;
        for (uint32_t i = 0; i < s->p.n_slots; i++) {
            slot *sl = &s->slots[i];
            s->stats.kv_tokens += sl->n_cache;
            if (sl->job && sl->finished) {
                s->stats.generated_tokens += sl->job->n_generated;
                s->stats.jobs_done++;
                job_unref(sl->job);
                sl->job = NULL;
                sl->last_used = s->round;
                s->busy--;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- The interface ---- */

vkllm_status sched_create(vkllm_model *model, const sched_params *p, sched **out)
{
    *out = NULL;
    sched *s = calloc(1, sizeof *s);
    if (!s)
        return VKLLM_ERR_OUT_OF_HOST_MEMORY;
    s->model = model;
    s->p = *p;
    s->n_vocab = vkllm_model_n_vocab(model);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    s->slots = calloc(p->n_slots, sizeof *s->slots);
    vkllm_status st = s->slots ? VKLLM_OK : VKLLM_ERR_OUT_OF_HOST_MEMORY;
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = p->n_ctx;
    cp.n_batch = p->n_batch;
    cp.n_seq = p->n_slots;
    if (st == VKLLM_OK)
        st = vkllm_context_create(model, &cp, &s->ctx);
    if (st == VKLLM_OK)   /* 0 means the default: from now on the real values */
        s->p.n_ctx = vkllm_context_n_ctx(s->ctx);
    if (s->p.n_batch == 0)
        s->p.n_batch = 512;
    const size_t cap = (size_t)p->n_slots * s->p.n_batch;
    if (st == VKLLM_OK) {
        s->b_tok = malloc(cap * sizeof *s->b_tok);
        s->b_pos = malloc(cap * sizeof *s->b_pos);
        s->b_seq = malloc(cap * sizeof *s->b_seq);
        s->b_want = malloc(cap * sizeof *s->b_want);
        if (!s->b_tok || !s->b_pos || !s->b_seq || !s->b_want)
            st = VKLLM_ERR_OUT_OF_HOST_MEMORY;
    }
    for (uint32_t i = 0; st == VKLLM_OK && i < p->n_slots; i++) {
        slot *sl = &s->slots[i];
        sl->seq = (int32_t)i;
        sl->row = -1;
        sl->cache = malloc(s->p.n_ctx * sizeof *sl->cache);
        sl->generated = malloc(s->p.n_ctx * sizeof *sl->generated);
        sl->counts = calloc(s->n_vocab, sizeof *sl->counts);
        sl->penalized = malloc(s->n_vocab * sizeof *sl->penalized);
        if (!sl->cache || !sl->generated || !sl->counts || !sl->penalized)
            st = VKLLM_ERR_OUT_OF_HOST_MEMORY;
    }
    s->stats.n_slots = p->n_slots;
    s->stats.n_ctx = s->p.n_ctx;
    if (st == VKLLM_OK) {
        if (pthread_create(&s->thread, NULL, generation_thread, s) != 0)
            st = VKLLM_ERR_OUT_OF_HOST_MEMORY;
        else
            s->thread_started = true;
    }
    if (st != VKLLM_OK) {
        sched_free(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}

void sched_shutdown(sched *s)
{
    pthread_mutex_lock(&s->lock);
    s->shut_down = true;
    for (sched_job *j = s->queue_head; j; j = j->next)
        sched_job_cancel(j);
    for (uint32_t i = 0; i < s->p.n_slots; i++)
        if (s->slots[i].job)
            sched_job_cancel(s->slots[i].job);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
}

void sched_free(sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    while (s->queue_head) {
        sched_job *j = s->queue_head;
        s->queue_head = j->next;
        job_finish(j, SCHED_FINISH_CANCELLED, 0, NULL);
        job_unref(j);
    }
    for (uint32_t i = 0; s->slots && i < s->p.n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->job) {
            if (!sl->finished)
                slot_finish(sl, SCHED_FINISH_CANCELLED);
            job_unref(sl->job);
        }
        free(sl->cache);
        free(sl->generated);
        free(sl->counts);
        free(sl->penalized);
        free(sl->gen);
    }
    free(s->slots);
    vkllm_context_free(s->ctx);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    free(s);
}

sched_result sched_submit(sched *s, const sched_job_params *p, sched_job **out)
{
    *out = NULL;
    if (p->n_prompt == 0 || p->n_prompt >= s->p.n_ctx || p->n_stop > SERVE_MAX_STOP)
        return SCHED_NO_MEMORY;   /* the caller checks these; never reached from the server */
    sched_job *j = calloc(1, sizeof *j);
    if (!j)
        return SCHED_NO_MEMORY;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->changed, NULL);
    j->refs = 2;
    j->prompt = malloc(p->n_prompt * sizeof *j->prompt);
    bool ok = j->prompt != NULL;
    for (size_t i = 0; ok && i < p->n_stop; i++)
        ok = (j->stop[j->n_stop++] = strdup(p->stop[i])) != NULL;
    if (!ok) {
        job_free(j);
        return SCHED_NO_MEMORY;
    }
    memcpy(j->prompt, p->prompt, p->n_prompt * sizeof *j->prompt);
    j->n_prompt = p->n_prompt;
    j->max_tokens = p->max_tokens;
    j->sampling = p->sampling;
    j->presence_penalty = p->presence_penalty;
    j->frequency_penalty = p->frequency_penalty;

    pthread_mutex_lock(&s->lock);
    sched_result r = SCHED_OK;
    if (s->shut_down || s->stopping)
        r = SCHED_SHUT_DOWN;
    else if (s->queue_len >= s->p.max_queue + (s->p.n_slots - s->busy))
        r = SCHED_QUEUE_FULL;
    if (r == SCHED_OK) {
        if (s->queue_tail)
            s->queue_tail->next = j;
        else
            s->queue_head = j;
        s->queue_tail = j;
        s->queue_len++;
        pthread_cond_broadcast(&s->work);
    }
    pthread_mutex_unlock(&s->lock);
    if (r != SCHED_OK) {
        job_free(j);
        return r;
    }
    *out = j;
    return SCHED_OK;
}

void sched_get_stats(sched *s, sched_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    out->slots_busy = s->busy;
    out->queue_depth = s->queue_len;
    pthread_mutex_unlock(&s->lock);
}

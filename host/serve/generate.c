/* The endpoints that use the model: chat and text completions (a job on the scheduler, answered whole or
 * streamed as server-sent events in OpenAI's chunk format), /tokenize and /detokenize. */
#include "host/serve/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_SLICE_MS 100   /* how often a waiting request looks for a closed client or a stopping server */

typedef struct generation {
    serve_server *srv;
    struct MHD_Connection *conn;
    sched_job *job;
    bool chat, include_usage;
    char id[40];
    json_int_t created;
    /* Streaming state. */
    size_t seen;              /* bytes of the job's text already sent */
    int phase;                /* 0: the role chunk is next, 1: text, 2: all sent */
    char *out;                /* the event being sent */
    size_t out_len, out_pos;
    char *text;               /* scratch for the job's text */
} generation;

static const char *finish_name(sched_finish f) { return f == SCHED_FINISH_LENGTH ? "length" : "stop"; }

static json_t *usage(const sched_progress *p)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)p->n_prompt, "completion_tokens",
                     (json_int_t)p->n_generated, "total_tokens", (json_int_t)(p->n_prompt + p->n_generated));
}

/* One choice: a chat message / delta or a completion text; text NULL: an empty delta. */
static json_t *choice(const generation *g, bool stream, json_t *text, const char *finish)
{
    json_t *c = json_pack("{s:i, s:s?}", "index", 0, "finish_reason", finish);
    if (!c) {
        json_decref(text);
        return NULL;
    }
    if (!finish)
        json_object_set_new(c, "finish_reason", json_null());
    if (g->chat) {
        json_t *m = json_object();
        if (!stream || g->phase == 0)
            json_object_set_new(m, "role", json_string("assistant"));
        if (text)
            json_object_set_new(m, "content", text);
        json_object_set_new(c, stream ? "delta" : "message", m);
    } else {
        json_object_set_new(c, "text", text ? text : json_string(""));
        json_object_set_new(c, "logprobs", json_null());
    }
    return c;
}

static json_t *envelope(const generation *g, bool stream, json_t *choices)
{
    const char *object = g->chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", g->id, "object", object, "created", g->created, "model",
                     g->srv->cfg->model_name, "choices", choices);
}

/* Copies the job's text[from..to) into g->text. */
static json_t *job_text(generation *g, size_t from, size_t to)
{
    char *t = realloc(g->text, to - from + 1);
    if (!t)
        return NULL;
    g->text = t;
    sched_job_text(g->job, from, to, t);
    return serve_json_text(t, to - from);
}

static bool out_append(generation *g, const char *s, size_t n)
{
    char *o = realloc(g->out, g->out_len + n);
    if (!o)
        return false;
    g->out = o;
    memcpy(o + g->out_len, s, n);
    g->out_len += n;
    return true;
}

/* Appends the event "data: JSON\n\n" to the pending output (takes the reference to event). */
static bool emit(generation *g, json_t *event)
{
    char *s = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(event);
    bool ok = s && out_append(g, "data: ", 6) && out_append(g, s, strlen(s)) && out_append(g, "\n\n", 2);
    free(s);
    return ok;
}

/* Produces the next events into g->out. Returns false when the stream is to be cut (client gone, server
 * stopping, out of memory). */
static bool next_events(generation *g)
{
    if (g->phase == 0) {
        if (g->chat && !emit(g, envelope(g, true, json_pack("[o]", choice(g, true, json_string(""), NULL)))))
            return false;
        g->phase = 1;
        return true;
    }
    sched_progress p;
    sched_job_wait(g->job, g->seen, WAIT_SLICE_MS, &p);
    if (p.text_len > g->seen) {
        json_t *t = job_text(g, g->seen, p.text_len);
        g->seen = p.text_len;
        return t && emit(g, envelope(g, true, json_pack("[o]", choice(g, true, t, NULL))));
    }
    if (p.finish == SCHED_RUNNING) {
        if (atomic_load(&g->srv->stopping) || serve_peer_closed(g->conn))
            return false;
        return true;   /* nothing yet: wait again */
    }
    if (p.finish == SCHED_FINISH_CANCELLED)
        return false;
    if (p.finish == SCHED_FINISH_ERROR) {
        serve_error e;
        serve_fail(&e, 500, NULL, "generation failed: %s", sched_job_error(g->job));
        json_t *err = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", e.message, "type", e.type, "param",
                                "code");
        if (!emit(g, err))
            return false;
    } else {
        if (!emit(g, envelope(g, true, json_pack("[o]", choice(g, true, NULL, finish_name(p.finish))))))
            return false;
        if (g->include_usage) {
            json_t *u = envelope(g, true, json_array());
            if (!u)
                return false;
            json_object_set_new(u, "usage", usage(&p));
            if (!emit(g, u))
                return false;
        }
    }
    if (!out_append(g, "data: [DONE]\n\n", 14))
        return false;
    g->phase = 2;
    return true;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    generation *g = cls;
    while (g->out_pos == g->out_len) {
        g->out_pos = g->out_len = 0;
        if (g->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!next_events(g)) {
            sched_job_cancel(g->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = g->out_len - g->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, g->out + g->out_pos, n);
    g->out_pos += n;
    return (ssize_t)n;
}

static void generation_free(void *cls)
{
    generation *g = cls;
    if (g->job)
        sched_job_release(g->job);
    free(g->out);
    free(g->text);
    free(g);
}

/* A whole (non-streamed) answer: waits for the job, giving up if the client leaves. */
static enum MHD_Result answer_whole(generation *g)
{
    sched_progress p;
    for (;;) {
        sched_job_wait(g->job, SIZE_MAX, WAIT_SLICE_MS, &p);
        if (p.finish != SCHED_RUNNING)
            break;
        if (atomic_load(&g->srv->stopping) || serve_peer_closed(g->conn)) {
            generation_free(g);
            return MHD_NO;
        }
    }
    enum MHD_Result r;
    if (p.finish == SCHED_FINISH_ERROR || p.finish == SCHED_FINISH_CANCELLED) {
        serve_error e;
        serve_fail(&e, p.finish == SCHED_FINISH_ERROR ? 500 : 503, NULL, "generation %s%s",
                   p.finish == SCHED_FINISH_ERROR ? "failed: " : "cancelled: the server is stopping",
                   p.finish == SCHED_FINISH_ERROR ? sched_job_error(g->job) : "");
        r = serve_respond_error(g->conn, &e);
    } else {
        json_t *text = job_text(g, 0, p.text_len);
        json_t *body = text ? envelope(g, false, json_pack("[o]", choice(g, false, text, finish_name(p.finish))))
                            : NULL;
        if (body)
            json_object_set_new(body, "usage", usage(&p));
        r = serve_respond_json(g->conn, 200, body);
    }
    generation_free(g);
    return r;
}

static enum MHD_Result answer_stream(generation *g)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, g,
                                                                  generation_free);
    if (!resp) {
        generation_free(g);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");   /* nginx: pass events on at once */
    enum MHD_Result r = MHD_queue_response(g->conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
}

/* The prompt's tokens: the chat template over the messages, or the completion prompt as text. */
static bool prompt_tokens(serve_server *srv, const serve_request *r, int32_t **ids, size_t *n, serve_error *e)
{
    vkllm_status st;
    if (r->endpoint == SERVE_CHAT)
        st = vkllm_chat_tokenize(srv->model, srv->cfg->chat_template, r->messages, r->n_messages, 0, true, ids, n);
    else
        st = vkllm_tokenize(srv->model, r->prompt, strlen(r->prompt), true, false, ids, n);
    if (st != VKLLM_OK)
        return serve_fail(e, st == VKLLM_ERR_INVALID_ARGUMENT ? 400 : 500, NULL, "%s", vkllm_last_error());
    if (*n == 0 || *n >= srv->n_ctx) {
        const char *param = r->endpoint == SERVE_CHAT ? "messages" : "prompt";
        if (*n)
            serve_fail(e, 400, param, "the prompt is %zu tokens; the context holds %u", *n, srv->n_ctx);
        else
            serve_fail(e, 400, param, "the prompt is empty");
        vkllm_free(*ids);
        return false;
    }
    return true;
}

enum MHD_Result serve_generate(serve_server *srv, struct MHD_Connection *c, serve_request *r)
{
    serve_error e;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!prompt_tokens(srv, r, &ids, &n_ids, &e))
        return serve_respond_error(c, &e);
    sched_job_params jp = {.prompt = ids, .n_prompt = n_ids, .max_tokens = r->max_tokens,
                           .presence_penalty = r->presence_penalty, .frequency_penalty = r->frequency_penalty,
                           .stop = (const char *const *)r->stop, .n_stop = r->n_stop};
    jp.sampling = r->sampling;
    uint64_t id = atomic_fetch_add(&srv->next_id, 1);
    if (!r->seed_given)
        jp.sampling.seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ id;

    generation *g = calloc(1, sizeof *g);
    if (!g) {
        vkllm_free(ids);
        return MHD_NO;
    }
    sched_result sr = sched_submit(srv->sched, &jp, &g->job);
    vkllm_free(ids);
    if (sr != SCHED_OK) {
        free(g);
        if (sr == SCHED_NO_MEMORY)
            return MHD_NO;
        atomic_fetch_add(&srv->rejected, 1);
        serve_fail(&e, 503, NULL, sr == SCHED_QUEUE_FULL ? "the server is busy (queue full); retry later"
                                                         : "the server is stopping");
        return serve_respond_error(c, &e);
    }
    g->srv = srv;
    g->conn = c;
    g->chat = r->endpoint == SERVE_CHAT;
    g->include_usage = r->include_usage;
    g->created = (json_int_t)time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%llu", g->chat ? "chatcmpl" : "cmpl", (unsigned long long)id);
    return r->stream ? answer_stream(g) : answer_whole(g);
}

enum MHD_Result serve_tokenize(serve_server *srv, struct MHD_Connection *c, const serve_request *r)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (vkllm_tokenize(srv->model, r->prompt, strlen(r->prompt), r->add_special, false, &ids, &n) != VKLLM_OK) {
        serve_error e;
        serve_fail(&e, 400, "content", "%s", vkllm_last_error());
        return serve_respond_error(c, &e);
    }
    json_t *tokens = json_array();
    for (size_t i = 0; tokens && i < n; i++) {
        json_t *item = json_integer(ids[i]);
        if (r->with_pieces) {
            char *piece = NULL;
            size_t len = 0;
            json_t *p = vkllm_detokenize(srv->model, &ids[i], 1, &piece, &len) == VKLLM_OK ? serve_json_text(piece, len)
                                                                                         : json_string("");
            vkllm_free(piece);
            item = json_pack("{s:o, s:o}", "id", item, "piece", p);
        }
        if (json_array_append_new(tokens, item) != 0) {
            json_decref(tokens);
            tokens = NULL;
        }
    }
    vkllm_free(ids);
    return serve_respond_json(c, 200, tokens ? json_pack("{s:o}", "tokens", tokens) : NULL);
}

enum MHD_Result serve_detokenize(serve_server *srv, struct MHD_Connection *c, const serve_request *r)
{
    serve_error e;
    uint32_t n_vocab = vkllm_model_n_vocab(srv->model);
    for (size_t i = 0; i < r->n_tokens; i++)
        if ((uint32_t)r->tokens[i] >= n_vocab) {
            serve_fail(&e, 400, "tokens", "token id %d is out of range (the vocabulary has %u)", r->tokens[i], n_vocab);
            return serve_respond_error(c, &e);
        }
    char *text = NULL;
    size_t len = 0;
    if (vkllm_detokenize(srv->model, r->tokens, r->n_tokens, &text, &len) != VKLLM_OK) {
        serve_fail(&e, 400, "tokens", "%s", vkllm_last_error());
        return serve_respond_error(c, &e);
    }
    json_t *body = json_pack("{s:o}", "content", serve_json_text(text, len));
    vkllm_free(text);
    return serve_respond_json(c, 200, body);
}

/* The server's request parser: a JSON body (untrusted bytes) to a validated request, or an OpenAI-style
 * error (HTTP status, type, message, offending parameter). Knows nothing of HTTP or the model, so the
 * fuzz target (fuzz/fuzz_serve_request.c) runs it alone. */
#ifndef VKLLM_SERVE_REQUEST_H
#define VKLLM_SERVE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"

/* Limits on what a request may contain (beyond them: 400, never a crash). */
#define SERVE_MAX_JSON_DEPTH 32
#define SERVE_MAX_MESSAGES 1024
#define SERVE_MAX_STOP 4           /* as OpenAI */
#define SERVE_MAX_STOP_LEN 256     /* bytes per stop string */
#define SERVE_MAX_DETOKENIZE 1000000

typedef enum serve_endpoint {
    SERVE_CHAT = 0,    /* POST /v1/chat/completions */
    SERVE_COMPLETION,  /* POST /v1/completions */
    SERVE_TOKENIZE,    /* POST /tokenize */
    SERVE_DETOKENIZE,  /* POST /detokenize */
} serve_endpoint;

typedef struct serve_error {
    int status;            /* HTTP status: 400, 413, ... */
    const char *type;      /* "invalid_request_error", ... (static) */
    const char *param;     /* the offending field, or NULL (static) */
    char message[256];
} serve_error;

/* A parsed request; every string is owned (freed by serve_request_free) and NUL-terminated, valid UTF-8
 * without NUL bytes inside. */
typedef struct serve_request {
    serve_endpoint endpoint;
    /* Generation (chat, completion). */
    vkllm_chat_message *messages;   /* chat: role is a static string, content owned */
    size_t n_messages;
    char *prompt;                   /* completion; tokenize: "content" */
    int64_t max_tokens;             /* -1: until the context is full */
    vkllm_sampler_params sampling;  /* the library's defaults with what the request sets; seed only if seed_given */
    float presence_penalty, frequency_penalty;
    bool seed_given;
    char *stop[SERVE_MAX_STOP];
    size_t n_stop;
    bool stream, include_usage;
    /* Tokenize / detokenize. */
    bool add_special, with_pieces;
    int32_t *tokens;
    size_t n_tokens;
} serve_request;

/* Parses body[0..len). Returns true with *out filled (free it with serve_request_free), or false with
 * *err set and *out empty. */
bool serve_request_parse(serve_endpoint endpoint, const char *body, size_t len, serve_request *out, serve_error *err);
void serve_request_free(serve_request *r);

/* Sets *err (message formatted like printf). Returns false, for `return serve_fail(...)`. */
bool serve_fail(serve_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

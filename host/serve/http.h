/* What the server's HTTP layer (http.c) and its endpoint handlers (generate.c) share. */
#ifndef VKLLM_SERVE_HTTP_H
#define VKLLM_SERVE_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "host/serve/request.h"
#include "host/serve/scheduler.h"
#include "host/serve/server.h"

typedef struct serve_server {
    vkllm_model *model;
    const serve_config *cfg;
    sched *sched;
    uint32_t n_ctx;
    atomic_bool stopping;
    atomic_uint_fast64_t requests, rejected, next_id;
} serve_server;

/* Queue a response (these return MHD_NO only when the connection is to be dropped). */
enum MHD_Result serve_respond_json(struct MHD_Connection *c, unsigned status, json_t *body);   /* takes body */
enum MHD_Result serve_respond_error(struct MHD_Connection *c, const serve_error *e);
enum MHD_Result serve_respond_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                                   const char *text);

/* Whether the client has closed its end of the connection (checked while a request waits or streams). */
bool serve_peer_closed(struct MHD_Connection *c);

/* A JSON string of s[0..len): invalid UTF-8 bytes become U+FFFD (a model may emit any byte sequence). */
json_t *serve_json_text(const char *s, size_t len);

/* The endpoints that take a parsed body (generate.c). */
enum MHD_Result serve_generate(serve_server *srv, struct MHD_Connection *c, serve_request *r);
enum MHD_Result serve_tokenize(serve_server *srv, struct MHD_Connection *c, const serve_request *r);
enum MHD_Result serve_detokenize(serve_server *srv, struct MHD_Connection *c, const serve_request *r);

#endif

/* The HTTP layer: libmicrohttpd (Debian's libmicrohttpd) in thread-per-connection mode, so a handler may
 * wait for its generation and a streaming response's reader may block. Here: binding, limits (body size,
 * header memory, idle time, connections), the API key, routing, and the small endpoints (/health,
 * /metrics, /v1/models). */
#include "host/serve/http.h"

#include "host/text/unicode.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_CONNECTIONS 512
#define HEADER_MEMORY (64 * 1024)   /* request line + headers per connection */

/* ---- Responses ---- */

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *content_type, char *text,
                             const char *retry_after)
{
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", content_type);
    if (retry_after)
        MHD_add_response_header(resp, "Retry-After", retry_after);
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result serve_respond_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return queue(c, status, "application/json", text, NULL);
}

static json_t *error_object(const serve_error *e)
{
    return json_pack("{s:{s:s, s:s, s:s?, s:n}}", "error", "message", e->message, "type", e->type, "param", e->param,
                     "code");
}

enum MHD_Result serve_respond_error(struct MHD_Connection *c, const serve_error *e)
{
    json_t *body = error_object(e);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return queue(c, (unsigned)e->status, "application/json", text, e->status == 503 ? "1" : NULL);
}

enum MHD_Result serve_respond_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                                   const char *text)
{
    return queue(c, status, content_type, strdup(text), NULL);
}

static enum MHD_Result respond_fail(struct MHD_Connection *c, int status, const char *param, const char *msg)
{
    serve_error e;
    serve_fail(&e, status, param, "%s", msg);
    return serve_respond_error(c, &e);
}

bool serve_peer_closed(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

json_t *serve_json_text(const char *s, size_t len)
{
    char *clean = malloc(3 * len + 1);   /* each byte at worst becomes the 3-byte U+FFFD */
    if (!clean)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = vkl_unicode_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (cp == UNICODE_INVALID) {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(clean + o, s + i, n);
            o += n;
        }
        i += n;
    }
    json_t *j = json_stringn(clean, o);
    free(clean);
    return j;
}

/* ---- Small endpoints ---- */

static enum MHD_Result handle_models(serve_server *srv, struct MHD_Connection *c)
{
    json_t *body = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:I, s:I, s:s}}]}", "object", "list", "data", "id",
                             srv->cfg->model_name, "object", "model", "created", (json_int_t)time(NULL), "owned_by",
                             "vkllm", "meta", "n_ctx", (json_int_t)srv->n_ctx, "n_vocab",
                             (json_int_t)vkllm_model_n_vocab(srv->model), "description",
                             vkllm_model_description(srv->model));
    return serve_respond_json(c, 200, body);
}

static enum MHD_Result handle_metrics(serve_server *srv, struct MHD_Connection *c)
{
    sched_stats st;
    sched_get_stats(srv->sched, &st);
    double kv_total = (double)st.n_slots * st.n_ctx;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return MHD_NO;
#define METRIC(name, type, help, fmt, value) \
    fprintf(f, "# HELP vkllm_" name " " help "\n# TYPE vkllm_" name " " type "\nvkllm_" name " " fmt "\n", value)
    METRIC("requests_total", "counter", "HTTP requests received.", "%llu", (unsigned long long)srv->requests);
    METRIC("requests_rejected_total", "counter", "Requests refused with 503 (queue full or stopping).", "%llu",
           (unsigned long long)srv->rejected);
    METRIC("completions_total", "counter", "Generations finished (any reason).", "%llu",
           (unsigned long long)st.jobs_done);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens of started generations.", "%llu",
           (unsigned long long)st.prompt_tokens);
    METRIC("prompt_tokens_reused_total", "counter", "Prompt tokens found in a slot's KV cache (not decoded).",
           "%llu", (unsigned long long)st.prompt_tokens_reused);
    METRIC("generated_tokens_total", "counter", "Tokens generated by finished generations.", "%llu",
           (unsigned long long)st.generated_tokens);
    METRIC("generation_tokens_per_second", "gauge", "Generated tokens per second of generation-thread time.", "%.3f",
           st.busy_seconds > 0 ? (double)st.generated_tokens / st.busy_seconds : 0.0);
    METRIC("queue_depth", "gauge", "Requests waiting for a slot.", "%u", st.queue_depth);
    METRIC("slots_busy", "gauge", "Slots generating.", "%u", st.slots_busy);
    METRIC("slots_total", "gauge", "Slots (--parallel).", "%u", st.n_slots);
    METRIC("kv_cache_tokens", "gauge", "Positions held in the slots' KV caches.", "%llu",
           (unsigned long long)st.kv_tokens);
    METRIC("kv_cache_usage_ratio", "gauge", "KV cache positions in use over all slots.", "%.6f",
           kv_total > 0 ? (double)st.kv_tokens / kv_total : 0.0);
#undef METRIC
    if (fclose(f) != 0) {
        free(text);
        return MHD_NO;
    }
    enum MHD_Result r = serve_respond_text(c, 200, "text/plain; version=0.0.4", text);
    free(text);
    return r;
}

/* ---- Requests ---- */

typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool refused;            /* a response was queued before the body was read */
} conn_state;

/* Compares the Authorization header with "Bearer KEY" in time that depends only on the header's length. */
static bool authorized(const serve_server *srv, struct MHD_Connection *c)
{
    const char *key = srv->cfg->api_key;
    if (!key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return false;
    h += 7;
    size_t lh = strlen(h), lk = strlen(key);
    unsigned char diff = (unsigned char)(lh != lk);
    for (size_t i = 0; i < lh; i++)
        diff |= (unsigned char)(h[i] ^ key[i % lk]);
    return diff == 0;
}

typedef enum route { ROUTE_NONE, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_MODELS, ROUTE_BODY } route;

static route find_route(const char *url, serve_endpoint *ep)
{
    static const struct {
        const char *path;
        route r;
        serve_endpoint ep;
    } routes[] = {
        {"/health", ROUTE_HEALTH, 0},
        {"/metrics", ROUTE_METRICS, 0},
        {"/v1/models", ROUTE_MODELS, 0},
        {"/models", ROUTE_MODELS, 0},
        {"/v1/chat/completions", ROUTE_BODY, SERVE_CHAT},
        {"/chat/completions", ROUTE_BODY, SERVE_CHAT},
        {"/v1/completions", ROUTE_BODY, SERVE_COMPLETION},
        {"/completions", ROUTE_BODY, SERVE_COMPLETION},
        {"/tokenize", ROUTE_BODY, SERVE_TOKENIZE},
        {"/detokenize", ROUTE_BODY, SERVE_DETOKENIZE},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) {
            *ep = routes[i].ep;
            return routes[i].r;
        }
    return ROUTE_NONE;
}

static enum MHD_Result handle_body(serve_server *srv, struct MHD_Connection *c, serve_endpoint ep, const conn_state *s)
{
    serve_request r;
    serve_error e;
    if (!serve_request_parse(ep, s->body ? s->body : "", s->len, &r, &e))
        return serve_respond_error(c, &e);
    enum MHD_Result res;
    if (ep == SERVE_TOKENIZE)
        res = serve_tokenize(srv, c, &r);
    else if (ep == SERVE_DETOKENIZE)
        res = serve_detokenize(srv, c, &r);
    else
        res = serve_generate(srv, c, &r);
    serve_request_free(&r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    serve_server *srv = cls;
    conn_state *s = *con_cls;
    serve_endpoint ep = SERVE_CHAT;
    route rt = find_route(url, &ep);
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (!s) {   /* the headers: everything that can be refused before the body is read */
        atomic_fetch_add(&srv->requests, 1);
        if (!(s = calloc(1, sizeof *s)))
            return MHD_NO;
        *con_cls = s;
        s->refused = true;
        if (rt == ROUTE_NONE)
            return respond_fail(c, 404, NULL, "unknown path");
        if ((rt == ROUTE_BODY && !post) || (rt != ROUTE_BODY && !get))
            return respond_fail(c, 405, NULL, rt == ROUTE_BODY ? "use POST" : "use GET");
        if (rt != ROUTE_HEALTH && !authorized(srv, c))
            return respond_fail(c, 401, NULL, "missing or wrong API key (Authorization: Bearer KEY)");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->cfg->max_body)
            return respond_fail(c, 413, NULL, "the request body is too large");
        s->refused = false;
        return MHD_YES;
    }
    if (s->refused) {   /* the rest of a refused request's body is read and dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (s->len + *upload_size > srv->cfg->max_body) {
            *upload_size = 0;
            s->refused = true;
            return respond_fail(c, 413, NULL, "the request body is too large");
        }
        if (s->len + *upload_size > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + *upload_size)
                cap *= 2;
            char *b = realloc(s->body, cap);
            if (!b)
                return MHD_NO;
            s->body = b;
            s->cap = cap;
        }
        memcpy(s->body + s->len, upload, *upload_size);
        s->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    switch (rt) {
    case ROUTE_HEALTH:
        return serve_respond_json(c, 200, json_pack("{s:s}", "status", "ok"));
    case ROUTE_METRICS:
        return handle_metrics(srv, c);
    case ROUTE_MODELS:
        return handle_models(srv, c);
    default:
        return handle_body(srv, c, ep, s);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    conn_state *s = *con_cls;
    if (s) {
        free(s->body);
        free(s);
        *con_cls = NULL;
    }
}

/* ---- Start and stop ---- */

int serve_run(vkllm_model *model, const serve_config *cfg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%u", cfg->port);
    int gai = getaddrinfo(cfg->host, port_text, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "vkllm serve: cannot use --host '%s': %s\n", cfg->host, gai_strerror(gai));
        return 1;
    }

    serve_server srv = {.model = model, .cfg = cfg};
    sched_params sp = {.n_slots = cfg->parallel, .n_ctx = cfg->n_ctx, .n_batch = cfg->n_batch,
                       .max_queue = cfg->max_queue, .debug_step_delay_ms = cfg->debug_step_delay_ms};
    /* Every thread started from here on (the scheduler's, the HTTP ones) inherits a mask without SIGINT
     * and SIGTERM, so only sigwait below receives them. */
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
    signal(SIGPIPE, SIG_IGN);

    if (sched_create(model, &sp, &srv.sched) != VKLLM_OK) {
        fprintf(stderr, "vkllm serve: %s\n", vkllm_last_error());
        freeaddrinfo(ai);
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        return 1;
    }
    sched_stats st;
    sched_get_stats(srv.sched, &st);
    srv.n_ctx = st.n_ctx;

    /* No MHD_USE_ERROR_LOG: clients must not be able to fill stderr with their errors. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, &srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    int status = 0;
    if (!d) {
        fprintf(stderr, "vkllm serve: cannot listen on %s port %u: %s\n", cfg->host, cfg->port,
                errno ? strerror(errno) : "libmicrohttpd refused to start");
        status = 1;
    } else {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        bool v6 = strchr(cfg->host, ':') != NULL;   /* an IPv6 address goes in brackets in a URL */
        fprintf(stderr, "vkllm serve: listening on http://%s%s%s:%u (model %s, %u slots of %u positions)\n",
                v6 ? "[" : "", cfg->host, v6 ? "]" : "", di ? di->port : cfg->port, cfg->model_name, cfg->parallel,
                srv.n_ctx);
        int sig = 0;
        sigwait(&stop_signals, &sig);
        fprintf(stderr, "vkllm serve: stopping (signal %d)\n", sig);
        /* Running and waiting requests end (their readers see the cancellation), then the threads. */
        atomic_store(&srv.stopping, true);
        sched_shutdown(srv.sched);
        MHD_stop_daemon(d);
    }
    sched_free(srv.sched);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return status;
}

/* `vkllm serve`: an OpenAI-compatible HTTP server (libmicrohttpd) in front of the scheduler. Part of the
 * command-line tool, not of libvkllm. */
#ifndef VKLLM_SERVE_SERVER_H
#define VKLLM_SERVE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"

typedef struct serve_config {
    const char *host;            /* address to bind (default 127.0.0.1) */
    uint16_t port;               /* 0: any free port (printed) */
    uint32_t parallel;           /* slots: requests generating at once */
    uint32_t n_ctx, n_batch;     /* per slot (0: the library's defaults) */
    uint32_t max_queue;          /* requests waiting for a slot before 503 */
    const char *api_key;         /* NULL: no authentication */
    const char *chat_template;   /* a built-in format name */
    const char *model_name;      /* the id /v1/models reports */
    unsigned idle_timeout_s;     /* a connection with no traffic for this long is closed */
    size_t max_body;             /* request body limit in bytes */
    uint32_t debug_step_delay_ms;   /* tests ($VKLLM_DEBUG_SERVE_STEP_MS): slow generation down */
} serve_config;

/* Serves until SIGINT or SIGTERM, then stops cleanly. Returns the exit status (messages on stderr). */
int serve_run(vkllm_model *model, const serve_config *c);

#endif

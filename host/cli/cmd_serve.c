/* `vkllm serve`: options, model loading, then the server (host/serve/). */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"
#include "host/serve/server.h"

static const char *cmd = "serve";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm serve -m MODEL [options]\n\n"
            "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions (both with\n"
            "\"stream\": true as server-sent events), /tokenize, /detokenize; GET /v1/models, /health,\n"
            "/metrics (Prometheus). Runs until SIGINT/SIGTERM. Up to --parallel requests generate at once,\n"
            "each in its own context of -c positions; more wait in a queue of --queue, beyond which the\n"
            "answer is 503. A request whose prompt starts like a free slot's previous conversation reuses\n"
            "that slot's KV cache and decodes only the rest.\n\n"
            "%s"
            "  --host ADDR           address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "  --port N              TCP port (default 8080; 0: any free port, printed at start)\n"
            "  -np, --parallel N     requests generating at once (default 1)\n"
            "  --queue N             requests waiting for a slot before 503 (default 64)\n"
            "  --api-key KEY         require \"Authorization: Bearer KEY\" (all but /health)\n"
            "  --api-key-file FILE   the same, the key read from FILE (first line)\n"
            "  --chat-template NAME  chat format: llama3, llama2, chatml, mistral, zephyr (default: the model's)\n"
            "  --alias NAME          the model id reported by /v1/models (default: the file name)\n"
            "  --timeout S           close connections idle for S seconds (default 60)\n"
            "  --max-body MIB        largest request body (default 4)\n",
            cli_model_options_help);
}

/* The key from a file: its first line, without surrounding white space. */
static char *read_key_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (!cli_read_file(cmd, path, 64 * 1024, "more than an API key file holds", &data, &len))
        return NULL;
    size_t start = 0, end = 0;
    while (start < len && isspace((unsigned char)data[start]))
        start++;
    end = start;
    while (end < len && data[end] != '\n' && data[end] != '\r' && data[end] != '\0')
        end++;
    while (end > start && isspace((unsigned char)data[end - 1]))
        end--;
    if (end == start) {
        fprintf(stderr, "vkllm %s: the API key file %s is empty\n", cmd, path);
        free(data);
        return NULL;
    }
    memmove(data, data + start, end - start);
    data[end - start] = '\0';
    return data;
}

int cmd_serve(int argc, char **argv)
{
    cli_model_opts mo = {0};
    serve_config cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 1, .max_queue = 64, .idle_timeout_s = 60,
                        .max_body = 4u << 20};
    const char *key = NULL, *key_file = NULL, *asked_template = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        bool ok = true;
        int64_t v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (cli_model_option(&mo, argc, argv, &i, &ok)) {
        } else if (!strcmp(a, "--host")) {
            ok = (cfg.host = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--port")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 0, 65535, &v);
            cfg.port = (uint16_t)v;
        } else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 1, 256, &v);
            cfg.parallel = (uint32_t)v;
        } else if (!strcmp(a, "--queue")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 0, 100000, &v);
            cfg.max_queue = (uint32_t)v;
        } else if (!strcmp(a, "--api-key")) {
            ok = (key = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--api-key-file")) {
            ok = (key_file = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--chat-template")) {
            ok = (asked_template = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--alias")) {
            ok = (cfg.model_name = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--timeout")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 1, 86400, &v);
            cfg.idle_timeout_s = (unsigned)v;
        } else if (!strcmp(a, "--max-body")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 1, 1024, &v);
            cfg.max_body = (size_t)v << 20;
        } else {
            fprintf(stderr, "vkllm %s: unknown option '%s' (try --help)\n", cmd, a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (key && key_file) {
        fprintf(stderr, "vkllm %s: give --api-key or --api-key-file, not both\n", cmd);
        return 1;
    }
    if (key && !*key) {
        fprintf(stderr, "vkllm %s: --api-key is empty\n", cmd);
        return 1;
    }
    if (asked_template && !cli_check_chat_template(cmd, asked_template))
        return 1;
    if (!mo.model) {
        fprintf(stderr, "vkllm %s: no model given (-m FILE)\n", cmd);
        return 1;
    }
    char *file_key = key_file ? read_key_file(key_file) : NULL;
    if (key_file && !file_key)
        return 1;
    cfg.api_key = file_key ? file_key : key;
    const char *debug_delay = getenv("VKLLM_DEBUG_SERVE_STEP_MS");
    if (debug_delay)
        cfg.debug_step_delay_ms = (uint32_t)strtoul(debug_delay, NULL, 10);
    if (!cfg.model_name) {
        const char *slash = strrchr(mo.model, '/');
        cfg.model_name = slash ? slash + 1 : mo.model;
    }
    cfg.n_ctx = mo.n_ctx;
    cfg.n_batch = mo.n_batch;

    vkllm_model *model = NULL;
    int rc = 1;
    if (cli_load_model(cmd, &mo, &model)) {
        cfg.chat_template = cli_chat_template(cmd, model, asked_template);
        if (cfg.chat_template)
            rc = serve_run(model, &cfg);
    }
    vkllm_model_free(model);
    free(file_key);
    return rc;
}

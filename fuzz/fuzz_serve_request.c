/* Fuzz target: the server's request parser (host/serve/request.h) and its JSON text encoder.
 *
 * Input: byte 0 picks the endpoint (chat, completion, tokenize, detokenize); the rest is the request
 * body. Checked: no crash/leak; a refused body gets a 4xx/5xx status and a message; an accepted one
 * has the fields its endpoint needs, in range. The whole input also goes through serve_json_text
 * (model output to a JSON string), which must always succeed. */
#include <string.h>

#include "fuzz.h"
#include "host/serve/http.h"
#include "host/serve/request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_accepted(const serve_request *r)
{
    FUZZ_ASSERT(r->n_stop <= SERVE_MAX_STOP);
    for (size_t i = 0; i < r->n_stop; i++)
        FUZZ_ASSERT(r->stop[i] && *r->stop[i] && strlen(r->stop[i]) <= SERVE_MAX_STOP_LEN);
    switch (r->endpoint) {
    case SERVE_CHAT:
        FUZZ_ASSERT(r->n_messages >= 1 && r->n_messages <= SERVE_MAX_MESSAGES);
        for (size_t i = 0; i < r->n_messages; i++)
            FUZZ_ASSERT(r->messages[i].role && r->messages[i].content);
        break;
    case SERVE_COMPLETION:
    case SERVE_TOKENIZE:
        FUZZ_ASSERT(r->prompt != NULL);
        break;
    case SERVE_DETOKENIZE:
        FUZZ_ASSERT(r->tokens != NULL && r->n_tokens <= SERVE_MAX_DETOKENIZE);
        for (size_t i = 0; i < r->n_tokens; i++)
            FUZZ_ASSERT(r->tokens[i] >= 0);
        break;
    }
    if (r->endpoint == SERVE_CHAT || r->endpoint == SERVE_COMPLETION) {
        FUZZ_ASSERT(r->max_tokens == -1 || r->max_tokens >= 1);
        const vkllm_sampler_params *sp = &r->sampling;
        FUZZ_ASSERT(sp->temperature >= 0 && sp->temperature <= 2);
        FUZZ_ASSERT(sp->top_p > 0 && sp->top_p <= 1 && sp->top_k >= 0);
        FUZZ_ASSERT(sp->min_p >= 0 && sp->min_p <= 1 && sp->repeat_penalty > 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *text = serve_json_text((const char *)data, size);
    FUZZ_ASSERT(text != NULL);
    json_decref(text);
    if (size < 1)
        return 0;
    serve_endpoint ep = (serve_endpoint)(data[0] % 4);
    serve_request r;
    serve_error e;
    if (serve_request_parse(ep, (const char *)data + 1, size - 1, &r, &e)) {
        FUZZ_ASSERT(r.endpoint == ep);
        check_accepted(&r);
        serve_request_free(&r);
    } else {
        FUZZ_ASSERT(e.status >= 400 && e.status < 600 && e.message[0] && e.type);
    }
    return 0;
}

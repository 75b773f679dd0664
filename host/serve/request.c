/* Request bodies: JSON (jansson, Debian's libjansson) to a checked serve_request. Everything a client may
 * send wrongly (types, ranges, unsupported features) gets a 400 naming the field; fields we do not know
 * are ignored, as OpenAI clients send many optional ones. */
#include "host/serve/request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool serve_fail(serve_error *err, int status, const char *param, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error";
    err->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* The deepest nesting of arrays/objects, counted on the raw bytes (strings skipped) so that a deeply
 * nested body is refused before the parser recurses into it. */
static size_t json_depth(const char *s, size_t len)
{
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

static char *dup_string(const json_t *v)
{
    size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, json_string_value(v), n);
        s[n] = '\0';
    }
    return s;
}

/* A JSON string without NUL bytes (jansson already refuses invalid UTF-8 and, without JSON_ALLOW_NUL,
 * "\u0000"), copied; false with *err on a wrong type. */
static bool get_string(const json_t *v, const char *param, char **out, serve_error *err)
{
    if (!json_is_string(v))
        return serve_fail(err, 400, param, "'%s' must be a string", param);
    *out = dup_string(v);
    if (!*out)
        return serve_fail(err, 500, NULL, "out of memory");
    return true;
}

static bool get_number(const json_t *obj, const char *key, double lo, double hi, float *out, serve_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return serve_fail(err, 400, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return serve_fail(err, 400, key, "'%s' must be between %g and %g", key, lo, hi);
    *out = (float)d;
    return true;
}

static bool get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, serve_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v))
        return serve_fail(err, 400, key, "'%s' must be an integer", key);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return serve_fail(err, 400, key, "'%s' must be between %lld and %lld", key, (long long)lo, (long long)hi);
    *out = i;
    return true;
}

static bool get_bool(const json_t *obj, const char *key, bool *out, serve_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return serve_fail(err, 400, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

/* Features we do not implement: absent, null, or the one value that means "off", else 400. */
static bool refuse_unsupported(const json_t *obj, serve_error *err)
{
    static const char *const absent[] = {"tools", "functions", "suffix", "top_logprobs", "audio", "prediction"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        const json_t *v = json_object_get(obj, absent[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0) &&
            !(json_is_integer(v) && json_integer_value(v) == 0))
            return serve_fail(err, 400, absent[i], "'%s' is not supported", absent[i]);
    }
    static const char *const one[] = {"n", "best_of"};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        const json_t *v = json_object_get(obj, one[i]);
        if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
            return serve_fail(err, 400, one[i], "only '%s' = 1 is supported", one[i]);
    }
    static const char *const off[] = {"echo", "logprobs", "parallel_tool_calls"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        const json_t *v = json_object_get(obj, off[i]);
        if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_integer(v) && json_integer_value(v) == 0))
            return serve_fail(err, 400, off[i], "'%s' is not supported", off[i]);
    }
    const json_t *tc = json_object_get(obj, "tool_choice");
    if (tc && !json_is_null(tc) && !(json_is_string(tc) && !strcmp(json_string_value(tc), "none")))
        return serve_fail(err, 400, "tool_choice", "'tool_choice' is not supported");
    const json_t *rf = json_object_get(obj, "response_format");
    if (rf && !json_is_null(rf)) {
        const json_t *type = json_object_get(rf, "type");
        if (!json_is_object(rf) || !json_is_string(type) || strcmp(json_string_value(type), "text"))
            return serve_fail(err, 400, "response_format", "only 'response_format' {\"type\": \"text\"} is supported");
    }
    const json_t *lb = json_object_get(obj, "logit_bias");
    if (lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0))
        return serve_fail(err, 400, "logit_bias", "'logit_bias' is not supported");
    const json_t *model = json_object_get(obj, "model");
    if (model && !json_is_null(model) && !json_is_string(model))
        return serve_fail(err, 400, "model", "'model' must be a string");
    return true;
}

static bool parse_stop(const json_t *obj, serve_request *r, serve_error *err)
{
    const json_t *v = json_object_get(obj, "stop");
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) && !json_is_array(v))
        return serve_fail(err, 400, "stop", "'stop' must be a string or an array of strings");
    size_t n = json_is_string(v) ? 1 : json_array_size(v);
    if (n > SERVE_MAX_STOP)
        return serve_fail(err, 400, "stop", "'stop' has at most %d strings", SERVE_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s))
            return serve_fail(err, 400, "stop", "'stop' must be a string or an array of strings");
        if (json_string_length(s) > SERVE_MAX_STOP_LEN)
            return serve_fail(err, 400, "stop", "a 'stop' string is longer than %d bytes", SERVE_MAX_STOP_LEN);
        if (json_string_length(s) == 0)
            continue;
        if (!(r->stop[r->n_stop] = dup_string(s)))
            return serve_fail(err, 500, NULL, "out of memory");
        r->n_stop++;
    }
    return true;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts (joined), or null. */
static bool parse_content(const json_t *v, char **out, serve_error *err)
{
    if (!v || json_is_null(v)) {
        *out = calloc(1, 1);
        return *out ? true : serve_fail(err, 500, NULL, "out of memory");
    }
    if (json_is_string(v))
        return get_string(v, "messages", out, err);
    if (!json_is_array(v))
        return serve_fail(err, 400, "messages", "a message's 'content' must be a string or an array of text parts");
    size_t total = 0, i;
    const json_t *part;
    json_array_foreach(v, i, part) {
        const json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text))
            return serve_fail(err, 400, "messages", "only text content parts are supported");
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s)
        return serve_fail(err, 500, NULL, "out of memory");
    total = 0;
    json_array_foreach(v, i, part) {
        const json_t *text = json_object_get(part, "text");
        memcpy(s + total, json_string_value(text), json_string_length(text));
        total += json_string_length(text);
    }
    s[total] = '\0';
    *out = s;
    return true;
}

static bool parse_messages(const json_t *obj, serve_request *r, serve_error *err)
{
    const json_t *v = json_object_get(obj, "messages");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return serve_fail(err, 400, "messages", "'messages' must be a non-empty array");
    if (json_array_size(v) > SERVE_MAX_MESSAGES)
        return serve_fail(err, 400, "messages", "at most %d messages", SERVE_MAX_MESSAGES);
    r->messages = calloc(json_array_size(v), sizeof *r->messages);
    if (!r->messages)
        return serve_fail(err, 500, NULL, "out of memory");
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m) {
        const json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            return serve_fail(err, 400, "messages", "every message needs a 'role' string");
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "system") || !strcmp(rs, "developer"))
            r->messages[i].role = "system";
        else if (!strcmp(rs, "user"))
            r->messages[i].role = "user";
        else if (!strcmp(rs, "assistant"))
            r->messages[i].role = "assistant";
        else
            return serve_fail(err, 400, "messages", "unsupported message role (use system, user or assistant)");
        char *content = NULL;
        if (!parse_content(json_object_get(m, "content"), &content, err))
            return false;
        r->messages[i].content = content;
        r->n_messages = i + 1;
    }
    return true;
}

static bool parse_generation(const json_t *obj, serve_request *r, serve_error *err)
{
    if (!refuse_unsupported(obj, err))
        return false;
    if (r->endpoint == SERVE_CHAT) {
        if (!parse_messages(obj, r, err))
            return false;
    } else {
        const json_t *p = json_object_get(obj, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (!json_is_string(p))
            return serve_fail(err, 400, "prompt", "'prompt' must be a string (or an array of one string)");
        if (!get_string(p, "prompt", &r->prompt, err))
            return false;
    }
    vkllm_sampler_params *sp = &r->sampling;
    vkllm_sampler_default_params(sp);
    r->max_tokens = r->endpoint == SERVE_CHAT ? -1 : 16;   /* as OpenAI */

    int64_t top_k = sp->top_k, seed = 0;
    bool seed_given = json_object_get(obj, "seed") && !json_is_null(json_object_get(obj, "seed"));
    if (!get_int(obj, "max_tokens", 1, INT64_MAX, &r->max_tokens, err) ||
        !get_int(obj, "max_completion_tokens", 1, INT64_MAX, &r->max_tokens, err) ||
        !get_number(obj, "temperature", 0, 2, &sp->temperature, err) ||
        !get_number(obj, "top_p", 0, 1, &sp->top_p, err) || !get_int(obj, "top_k", 0, INT32_MAX, &top_k, err) ||
        !get_number(obj, "min_p", 0, 1, &sp->min_p, err) ||
        !get_number(obj, "presence_penalty", -2, 2, &r->presence_penalty, err) ||
        !get_number(obj, "frequency_penalty", -2, 2, &r->frequency_penalty, err) ||
        !get_number(obj, "repeat_penalty", 0.01, 10, &sp->repeat_penalty, err) ||
        !get_int(obj, "seed", INT64_MIN, INT64_MAX, &seed, err) || !get_bool(obj, "stream", &r->stream, err) ||
        !parse_stop(obj, r, err))
        return false;
    if (sp->top_p == 0)
        return serve_fail(err, 400, "top_p", "'top_p' must be greater than 0");
    sp->top_k = (int32_t)top_k;
    r->seed_given = seed_given;
    sp->seed = (uint64_t)seed;
    const json_t *so = json_object_get(obj, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return serve_fail(err, 400, "stream_options", "'stream_options' must be an object");
        if (!get_bool(so, "include_usage", &r->include_usage, err))
            return false;
    }
    return true;
}

static bool parse_tokenize(const json_t *obj, serve_request *r, serve_error *err)
{
    const json_t *c = json_object_get(obj, "content");
    if (!c)
        return serve_fail(err, 400, "content", "'content' is required");
    return get_string(c, "content", &r->prompt, err) && get_bool(obj, "add_special", &r->add_special, err) &&
           get_bool(obj, "with_pieces", &r->with_pieces, err);
}

static bool parse_detokenize(const json_t *obj, serve_request *r, serve_error *err)
{
    const json_t *t = json_object_get(obj, "tokens");
    if (!json_is_array(t))
        return serve_fail(err, 400, "tokens", "'tokens' must be an array of token ids");
    size_t n = json_array_size(t);
    if (n > SERVE_MAX_DETOKENIZE)
        return serve_fail(err, 400, "tokens", "at most %d tokens", SERVE_MAX_DETOKENIZE);
    r->tokens = malloc((n ? n : 1) * sizeof *r->tokens);
    if (!r->tokens)
        return serve_fail(err, 500, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(t, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return serve_fail(err, 400, "tokens", "'tokens' must be an array of token ids");
        r->tokens[i] = (int32_t)json_integer_value(v);
    }
    r->n_tokens = n;
    return true;
}

bool serve_request_parse(serve_endpoint endpoint, const char *body, size_t len, serve_request *out, serve_error *err)
{
    memset(out, 0, sizeof *out);
    out->endpoint = endpoint;
    if (json_depth(body, len) > SERVE_MAX_JSON_DEPTH)
        return serve_fail(err, 400, NULL, "the JSON body nests deeper than %d levels", SERVE_MAX_JSON_DEPTH);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return serve_fail(err, 400, NULL, "invalid JSON body: %s (at byte %d)", jerr.text, jerr.position);
    bool ok;
    if (!json_is_object(root))
        ok = serve_fail(err, 400, NULL, "the body must be a JSON object");
    else if (endpoint == SERVE_TOKENIZE)
        ok = parse_tokenize(root, out, err);
    else if (endpoint == SERVE_DETOKENIZE)
        ok = parse_detokenize(root, out, err);
    else
        ok = parse_generation(root, out, err);
    json_decref(root);
    if (!ok)
        serve_request_free(out);
    return ok;
}

void serve_request_free(serve_request *r)
{
    for (size_t i = 0; i < r->n_messages; i++)
        free((char *)r->messages[i].content);
    free(r->messages);
    free(r->prompt);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->tokens);
    serve_endpoint e = r->endpoint;
    memset(r, 0, sizeof *r);
    r->endpoint = e;
}

/* `vkllm chat`: a conversation in the terminal. Each turn decodes only its own tokens: the KV cache keeps
 * the conversation so far (vkllm_chat_tokenize from the first message not yet in the context). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm chat -m MODEL [options]\n\n"
            "A conversation with a chat model. Reads one message per line from stdin (the prompt \"> \" is\n"
            "shown when stdin is a terminal) and streams each reply to stdout, up to the model's\n"
            "end-of-generation token. Only the new turn is processed each time: the context keeps the\n"
            "conversation. End of input (Ctrl-D) ends the chat. A line that is exactly one of these is a\n"
            "command:\n"
            "  /reset                forget the conversation (the system prompt stays)\n"
            "  /exit                 end the chat\n"
            "  /help                 list the commands\n\n"
            "Chat format: the one the model's tokenizer.chat_template implements (recognised, not run), or\n"
            "--chat-template. A template that is not recognised is an error (name the format with\n"
            "--chat-template); a model without a template gets " VKLLM_CHAT_TEMPLATE_DEFAULT ", with a warning.\n\n"
            "When the context fills: a reply that reaches the end of the context is cut short. Before each\n"
            "turn, if the conversation would leave less than a quarter of the context (-c) free for the\n"
            "reply, the oldest exchanges are forgotten until what is left fills at most half of the context\n"
            "(the system prompt is kept), with a note on stderr, and the rest is processed again; so this\n"
            "happens once every few turns, not at every turn. A message that does not fit even alone is\n"
            "refused with a note and the chat goes on; a system prompt that does not fit is an error.\n\n"
            "%s"
            "  --system TEXT         system prompt\n"
            "  --chat-template NAME  chat format: llama3, llama2, chatml, mistral, zephyr, gemma, phi3,\n"
            "                        phi4, qwen1.5, qwen2, qwen2.5, qwen3, qwen3-nothink, mistral-v7,\n"
            "                        mistral-tekken, deepseek-r1\n"
            "  -n, --n-predict N     most tokens per reply (default -1: until end of generation)\n"
            "%s"
            "  --timings             after each reply, print its token counts, speed and the context use to\n"
            "                        stderr\n",
            cli_model_options_help, cli_sampling_options_help);
}

static const char *cmd = "chat";

/* The conversation: roles are static strings, contents owned. */
typedef struct conversation {
    vkllm_chat_message *v;
    size_t n, cap;
} conversation;

static bool conv_push(conversation *c, const char *role, const char *content, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        vkllm_chat_message *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return false;
        c->v = v;
        c->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s)
        return false;
    memcpy(s, content, len);
    s[len] = '\0';
    c->v[c->n++] = (vkllm_chat_message){role, s};
    return true;
}

/* Removes messages [first, first + count). */
static void conv_drop(conversation *c, size_t first, size_t count)
{
    if (count == 0)
        return;
    for (size_t i = first; i < first + count; i++)
        free((char *)c->v[i].content);
    memmove(c->v + first, c->v + first + count, (c->n - first - count) * sizeof *c->v);
    c->n -= count;
}

typedef struct chat {
    vkllm_model *model;
    vkllm_context *ctx;
    vkllm_sampler *sampler;
    const char *tmpl;
    conversation conv;
    size_t n_done;       /* the context holds the text up to the end of message n_done-1's content */
    bool has_system;     /* conv.v[0] is the system prompt */
    int64_t n_predict;
    bool timings;
    const float *last_logits;  /* of the turn's last token (valid until the next decode) */
    size_t last_prompt;  /* tokens decoded for the last turn */
    double last_prompt_ms;
} chat;

static void out_of_memory(void) { fprintf(stderr, "vkllm %s: out of host memory\n", cmd); }

static bool decode_prompt(chat *c, const int32_t *ids, size_t n)
{
    const float *logits;
    double t0 = cli_now_ms();
    if (vkllm_decode(c->ctx, ids, n, &logits) != VKLLM_OK) {
        cli_error(cmd);
        return false;
    }
    c->last_prompt_ms = cli_now_ms() - t0;
    c->last_prompt = n;
    c->last_logits = logits;
    for (size_t i = 0; i < n; i++)
        vkllm_sampler_accept(c->sampler, ids[i]);
    return true;
}

/* Processes the new turn (the user message just added at the end). Returns 1 when its tokens are in the
 * context, 0 when the message was refused (removed again, the context unchanged), -1 on a fatal error. */
static int feed_turn(chat *c)
{
    uint32_t n_ctx = vkllm_context_n_ctx(c->ctx), pos = vkllm_context_position(c->ctx);
    uint32_t reserve = n_ctx / 4;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (vkllm_chat_tokenize(c->model, c->tmpl, c->conv.v, c->conv.n, c->n_done, true, &ids, &n_ids) != VKLLM_OK) {
        cli_error(cmd);
        conv_drop(&c->conv, c->conv.n - 1, 1);
        return 0;
    }
    if ((uint64_t)pos + n_ids + reserve <= n_ctx || (c->n_done == 0 && pos == 0 && n_ids < n_ctx)) {
        bool ok = decode_prompt(c, ids, n_ids);
        vkllm_free(ids);
        if (ok)
            c->n_done = c->conv.n;
        return ok ? 1 : -1;
    }
    vkllm_free(ids);

    /* Not enough room: forget the oldest exchanges (whole messages up to the next user message) until the
     * conversation, processed again from the start, fills at most half of the context, so that the next
     * turns fit without processing it all again each time. */
    size_t first = c->has_system ? 1 : 0, drop = 0, last = c->conv.n - 1;
    vkllm_chat_message *view = malloc(c->conv.n * sizeof *view);
    if (!view) {
        out_of_memory();
        return -1;
    }
    for (;;) {
        size_t nv = 0;
        if (c->has_system)
            view[nv++] = c->conv.v[0];
        for (size_t i = first + drop; i < c->conv.n; i++)
            view[nv++] = c->conv.v[i];
        if (vkllm_chat_tokenize(c->model, c->tmpl, view, nv, 0, true, &ids, &n_ids) != VKLLM_OK) {
            cli_error(cmd);
            free(view);
            conv_drop(&c->conv, last, 1);
            return 0;
        }
        if (n_ids <= n_ctx / 2)
            break;
        if (first + drop == last) {
            if (n_ids < n_ctx)
                break; /* the new message alone: it fits, with less room for the reply */
            fprintf(stderr,
                    "vkllm %s: the message does not fit the context: %zu token%s%s, the context holds %u (raise -c); "
                    "message ignored\n",
                    cmd, n_ids, cli_plural(n_ids), c->has_system ? " with the system prompt" : "", n_ctx);
            vkllm_free(ids);
            free(view);
            conv_drop(&c->conv, last, 1);
            return 0;
        }
        vkllm_free(ids);
        do
            drop++;
        while (first + drop < last && strcmp(c->conv.v[first + drop].role, "user") != 0);
    }
    free(view);
    if (drop)
        fprintf(stderr, "vkllm %s: context full (%u token%s): forgot the %zu oldest message%s\n", cmd, n_ctx,
                cli_plural(n_ctx), drop, cli_plural(drop));
    conv_drop(&c->conv, first, drop);
    bool ok = vkllm_context_truncate(c->ctx, 0) == VKLLM_OK;
    if (!ok)
        cli_error(cmd);
    ok = ok && decode_prompt(c, ids, n_ids);
    vkllm_free(ids);
    if (!ok)
        return -1;
    c->n_done = c->conv.n;
    return 1;
}

/* A growing byte buffer for the reply's text. */
typedef struct text_buf {
    char *s;
    size_t n, cap;
    bool oom;
} text_buf;

static void buf_add(text_buf *b, const char *s, size_t n)
{
    if (b->oom || !n)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
}

/* Prints and keeps a piece of the reply, leaving out whitespace before its first visible character. False
 * (message printed) when stdout cannot be written. */
static bool reply_text(text_buf *b, const char *s, size_t n)
{
    if (b->n == 0)
        while (n && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
    if (!n)
        return true;
    buf_add(b, s, n);
    return cli_write_out(cmd, s, n);
}

/* Generates the reply and adds it to the conversation. Returns false on a fatal error. */
static bool reply(chat *c)
{
    vkllm_detokenizer *detok = NULL;
    if (vkllm_detokenizer_create(c->model, &detok) != VKLLM_OK) {
        cli_error(cmd);
        return false;
    }
    uint32_t n_ctx = vkllm_context_n_ctx(c->ctx);
    const float *logits = c->last_logits;
    text_buf b = {0};
    int64_t generated = 0;
    bool cut = false, ok = true;
    const char *text;
    size_t len;
    double t0 = cli_now_ms();
    while (c->n_predict < 0 || generated < c->n_predict) {
        int32_t id = vkllm_sampler_sample(c->sampler, logits);
        if (vkllm_token_is_eog(c->model, id))
            break;
        if (vkllm_context_position(c->ctx) >= n_ctx) {
            cut = true; /* no room to keep this token: the reply ends before it */
            break;
        }
        /* Every shown token is decoded, so the context holds exactly the reply's text. */
        if (vkllm_decode(c->ctx, &id, 1, &logits) != VKLLM_OK ||
            vkllm_detokenizer_push(detok, id, &text, &len) != VKLLM_OK) {
            cli_error(cmd);
            ok = false;
            break;
        }
        generated++;
        if (!reply_text(&b, text, len)) {
            ok = false;   /* stop at the first failed write */
            break;
        }
    }
    double gen_ms = cli_now_ms() - t0;
    if (ok) {
        vkllm_detokenizer_flush(detok, &text, &len);
        ok = reply_text(&b, text, len) && cli_write_out(cmd, "\n", 1);
    }
    vkllm_detokenizer_free(detok);
    if (!ok) {
        free(b.s);
        return false;
    }
    if (cut)
        fprintf(stderr, "vkllm %s: the context is full (%u token%s): the reply was cut short\n", cmd, n_ctx,
                cli_plural(n_ctx));
    if (c->timings)
        fprintf(stderr, "[prompt %zu token%s, %.1f tok/s | reply %lld token%s, %.1f tok/s | context %u/%u]\n",
                c->last_prompt, cli_plural(c->last_prompt),
                c->last_prompt_ms > 0 ? c->last_prompt / (c->last_prompt_ms / 1e3) : 0.0, (long long)generated,
                cli_plural((uint64_t)generated), gen_ms > 0 ? generated / (gen_ms / 1e3) : 0.0,
                vkllm_context_position(c->ctx), n_ctx);
    while (b.n && isspace((unsigned char)b.s[b.n - 1]))
        b.n--;
    bool pushed = !b.oom && conv_push(&c->conv, "assistant", b.s ? b.s : "", b.n);
    free(b.s);
    if (!pushed) {
        out_of_memory();
        return false;
    }
    c->n_done = c->conv.n; /* the context holds the reply up to its end; the markup that closes it comes
                              with the next turn */
    return true;
}

static void trim_newline(char *s, size_t *n)
{
    while (*n && (s[*n - 1] == '\n' || s[*n - 1] == '\r'))
        s[--*n] = '\0';
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

int cmd_chat(int argc, char **argv)
{
    cli_model_opts mo = {0};
    const char *system = NULL, *asked = NULL;
    chat c = {.n_predict = -1};
    cli_sampling_opts so;
    cli_sampling_init(&so);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        bool ok = true;
        if (cli_model_option(&mo, argc, argv, &i, &ok) || cli_sampling_option(&so, argc, argv, &i, &ok)) {
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--system")) {
            ok = (system = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "--chat-template")) {
            ok = (asked = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, -1, INT32_MAX, &c.n_predict);
        } else if (!strcmp(a, "--timings")) {
            c.timings = true;
        } else {
            fprintf(stderr, "vkllm %s: unknown option '%s' (try --help)\n", cmd, a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (asked && !cli_check_chat_template(cmd, asked))   /* before the (slow) load */
        return 1;
    cli_sampling_finish(&so);

    int rc = 1;
    char *line = NULL;
    size_t line_cap = 0;
    if (!cli_load(cmd, &mo, &c.model, &c.ctx, NULL))
        goto out;
    if (vkllm_sampler_create(c.model, &so.params, &c.sampler) != VKLLM_OK) {
        cli_error(cmd);
        goto out;
    }
    if (!(c.tmpl = cli_chat_template(cmd, c.model, asked)))
        goto out;
    uint32_t n_ctx = vkllm_context_n_ctx(c.ctx);
    if (system) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (!conv_push(&c.conv, "system", system, strlen(system))) {
            out_of_memory();
            goto out;
        }
        c.has_system = true;
        if (vkllm_chat_tokenize(c.model, c.tmpl, c.conv.v, 1, 0, false, &ids, &n_ids) != VKLLM_OK) {
            cli_error(cmd);
            goto out;
        }
        vkllm_free(ids);
        if (n_ids >= n_ctx) {
            fprintf(stderr,
                    "vkllm %s: the system prompt has %zu token%s: it leaves no room in the context of %u (raise -c)\n",
                    cmd, n_ids, cli_plural(n_ids), n_ctx);
            goto out;
        }
    }
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "vkllm %s: %s format, context %u; /help for commands, Ctrl-D to quit\n", cmd, c.tmpl, n_ctx);
    for (;;) {
        if (tty) {
            printf("> ");
            fflush(stdout);
        }
        errno = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0 && ferror(stdin)) {   /* a read error (chat < directory) is not the end of the input */
            fprintf(stderr, "vkllm %s: cannot read standard input: %s\n", cmd, errno ? strerror(errno) : "read error");
            goto out;
        }
        if (got < 0) {
            if (tty)
                printf("\n");
            break;
        }
        size_t n = strlen(line); /* a NUL typed into the line ends it */
        trim_newline(line, &n);
        if (!strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/help")) {
            fprintf(stderr, "/reset: forget the conversation; /exit: end the chat; Ctrl-D: end the chat\n");
            continue;
        }
        if (!strcmp(line, "/reset")) {
            conv_drop(&c.conv, c.has_system ? 1 : 0, c.conv.n - (c.has_system ? 1 : 0));
            c.n_done = 0;
            vkllm_sampler_reset(c.sampler);
            if (vkllm_context_truncate(c.ctx, 0) != VKLLM_OK) {
                cli_error(cmd);
                goto out;
            }
            fprintf(stderr, "vkllm %s: conversation reset\n", cmd);
            continue;
        }
        if (blank(line))
            continue;
        if (!conv_push(&c.conv, "user", line, n)) {
            out_of_memory();
            goto out;
        }
        int fed = feed_turn(&c);
        if (fed < 0)
            goto out;
        if (fed == 0)
            continue;
        if (!reply(&c))
            goto out;
    }
    rc = 0;
out:
    free(line);
    if (c.conv.n)
        conv_drop(&c.conv, 0, c.conv.n);
    free(c.conv.v);
    vkllm_sampler_free(c.sampler);
    vkllm_context_free(c.ctx);
    vkllm_model_free(c.model);
    return rc;
}

/* `vkllm run`: generate text from a prompt, streaming tokens as they come. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm run -m MODEL [-p PROMPT | -f FILE] [options]\n\n"
            "Generates text. With no prompt it starts from BOS alone. Stops at end of generation\n"
            "or after -n tokens, then prints one timing line to stderr.\n\n"
            "%s"
            "  -p, --prompt TEXT     the prompt\n"
            "  -f, --file FILE       read the prompt from a file\n"
            "  -n, --n-predict N     tokens to generate (default 256; -1: until the context is full)\n"
            "%s"
            "  --special             parse control tokens written in the prompt (e.g. <s>)\n",
            cli_model_options_help, cli_sampling_options_help);
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    cli_model_opts mo = {0};
    const char *prompt = NULL, *prompt_file = NULL;
    int64_t n_predict = 256;
    bool special = false;
    cli_sampling_opts so;
    cli_sampling_init(&so);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        bool ok = true;
        if (cli_model_option(&mo, argc, argv, &i, &ok) || cli_sampling_option(&so, argc, argv, &i, &ok)) {
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            ok = (prompt = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            ok = (prompt_file = cli_value(cmd, argc, argv, &i)) != NULL;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, -1, INT32_MAX, &n_predict);
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else {
            fprintf(stderr, "vkllm run: unknown option '%s' (try --help)\n", a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (prompt && prompt_file) {
        fprintf(stderr, "vkllm run: give the prompt with -p or -f, not both\n");
        return 1;
    }
    cli_sampling_finish(&so);

    char *file_text = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    if (prompt_file) {
        /* No token is longer than MAX_TOKEN_BYTES bytes of text, so a longer file cannot fit the context: it is
         * refused before it is read to the end (/dev/zero) or tokenized at length. Without -c the context is at
         * most 4096. */
        enum { MAX_TOKEN_BYTES = 256 };
        uint64_t n_ctx = mo.n_ctx ? mo.n_ctx : 4096;
        char note[160];
        snprintf(note, sizeof note, "more than a context of %llu tokens can hold (raise -c)", (unsigned long long)n_ctx);
        if (!cli_read_file(cmd, prompt_file, n_ctx * MAX_TOKEN_BYTES, note, &file_text, &prompt_len))
            return 1;
        prompt = file_text;
    }

    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_sampler *sampler = NULL;
    vkllm_detokenizer *detok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = 1;
    double load_ms = 0;
    if (!cli_load(cmd, &mo, &model, &ctx, &load_ms))
        goto out;
    if (vkllm_tokenize(model, prompt ? prompt : "", prompt_len, true, special, &ids, &n_ids) != VKLLM_OK ||
        vkllm_sampler_create(model, &so.params, &sampler) != VKLLM_OK || vkllm_detokenizer_create(model, &detok) != VKLLM_OK) {
        cli_error(cmd);
        goto out;
    }
    if (n_ids == 0) { /* no BOS in this vocabulary and no prompt: nothing to condition on */
        fprintf(stderr, "vkllm run: the prompt is empty and the model has no BOS token\n");
        goto out;
    }
    if (n_ids > vkllm_context_n_ctx(ctx)) {
        fprintf(stderr, "vkllm run: the prompt has %zu tokens, more than the context of %u (raise -c)\n", n_ids,
                vkllm_context_n_ctx(ctx));
        goto out;
    }

    const char *text;
    size_t len;
    for (size_t i = 0; i < n_ids; i++) {
        if (vkllm_detokenizer_push(detok, ids[i], &text, &len) != VKLLM_OK) {
            cli_error(cmd);
            goto out;
        }
        if (!cli_write_out(cmd, text, len))
            goto out;
        vkllm_sampler_accept(sampler, ids[i]);
    }

    const float *logits;
    double t0 = cli_now_ms();
    if (vkllm_decode(ctx, ids, n_ids, &logits) != VKLLM_OK) {
        cli_error(cmd);
        goto out;
    }
    double prompt_ms = cli_now_ms() - t0;
    int64_t generated = 0;
    t0 = cli_now_ms();
    while (n_predict < 0 || generated < n_predict) {
        int32_t id = vkllm_sampler_sample(sampler, logits);
        if (vkllm_token_is_eog(model, id))
            break;
        generated++;
        if (vkllm_detokenizer_push(detok, id, &text, &len) != VKLLM_OK) {
            cli_error(cmd);
            goto out;
        }
        if (!cli_write_out(cmd, text, len))
            goto out;   /* stop at the first failed write, not at the end of the context */
        if (vkllm_context_position(ctx) >= vkllm_context_n_ctx(ctx)) {
            if (n_predict >= 0)
                fprintf(stderr, "\nvkllm run: context full (%u token%s); stopping\n", vkllm_context_n_ctx(ctx),
                        cli_plural(vkllm_context_n_ctx(ctx)));
            break;
        }
        if (generated == n_predict)
            break; /* the last token needs no forward pass */
        if (vkllm_decode(ctx, &id, 1, &logits) != VKLLM_OK) {
            cli_error(cmd);
            goto out;
        }
    }
    double gen_ms = cli_now_ms() - t0;
    vkllm_detokenizer_flush(detok, &text, &len);
    if (!cli_write_out(cmd, text, len) || !cli_write_out(cmd, "\n", 1))
        goto out;
    fprintf(stderr, "load %.0f ms | prompt %zu token%s, %.1f tok/s | generated %lld token%s, %.1f tok/s\n", load_ms,
            n_ids, cli_plural(n_ids), prompt_ms > 0 ? n_ids / (prompt_ms / 1e3) : 0.0, (long long)generated,
            cli_plural((uint64_t)generated), gen_ms > 0 && generated > 1 ? (generated - 1) / (gen_ms / 1e3) : 0.0);
    rc = 0;
out:
    vkllm_free(ids);
    vkllm_detokenizer_free(detok);
    vkllm_sampler_free(sampler);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    free(file_text);
    return rc;
}

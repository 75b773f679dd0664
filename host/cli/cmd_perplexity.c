/* `vkllm perplexity`: perplexity over a text file in windows of n_ctx tokens, scoring the second half of
 * each window (every token there has at least n_ctx/2 tokens of context), as llama.cpp's tool does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm perplexity -m MODEL -f TEXT [options]\n\n"
            "Splits the text into windows of -c tokens (each starting with BOS), scores the second half\n"
            "of every window and prints PPL = exp(mean negative log-likelihood). Needs at least 2 x c tokens.\n\n"
            "%s"
            "  -f, --file FILE       the text\n",
            cli_model_options_help);
}

/* -log softmax(logits)[target], in double. */
static double nll(const float *logits, uint32_t n_vocab, int32_t target)
{
    float mx = logits[0];
    for (uint32_t i = 1; i < n_vocab; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (uint32_t i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

int cmd_perplexity(int argc, char **argv)
{
    const char *cmd = "perplexity";
    cli_model_opts mo = {0};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        bool ok = true;
        if (cli_model_option(&mo, argc, argv, &i, &ok)) {
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) {
            ok = (path = cli_value(cmd, argc, argv, &i)) != NULL;
        } else {
            fprintf(stderr, "vkllm perplexity: unknown option '%s' (try --help)\n", argv[i]);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (!path) {
        fprintf(stderr, "vkllm perplexity: no text given (-f FILE)\n");
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    if (!cli_read_file(cmd, path, CLI_MAX_TEXT_FILE, "more than vkllm reads as a text", &text, &len))
        return 1;
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n_ids = 0;
    int rc = 1;
    if (!cli_load(cmd, &mo, &model, &ctx, NULL))
        goto out;
    if (vkllm_tokenize(model, text, len, true, false, &ids, &n_ids) != VKLLM_OK) {
        cli_error(cmd);
        goto out;
    }
    uint32_t n_ctx = vkllm_context_n_ctx(ctx), n_vocab = vkllm_model_n_vocab(model);
    if (n_ctx < 4) {
        fprintf(stderr, "vkllm perplexity: the context (-c %u) must be at least 4 tokens\n", n_ctx);
        goto out;
    }
    if (n_ids < 2 * (size_t)n_ctx) {
        fprintf(stderr, "vkllm perplexity: the text has %zu token%s; %u are needed for a context of %u\n", n_ids,
                cli_plural(n_ids), 2 * n_ctx, n_ctx);
        goto out;
    }
    logits = malloc((size_t)n_ctx * n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "vkllm perplexity: out of host memory\n");
        goto out;
    }
    size_t n_chunks = n_ids / n_ctx;
    uint32_t first = n_ctx / 2;
    double total = 0;
    size_t count = 0;
    double t0 = cli_now_ms();
    int32_t bos = vkllm_token_bos(model);
    for (size_t c = 0; c < n_chunks; c++) {
        int32_t *window = ids + c * n_ctx;
        int32_t saved = window[0];
        if (bos >= 0)
            window[0] = bos;
        vkllm_status st = vkllm_context_truncate(ctx, 0);
        if (st == VKLLM_OK)
            st = vkllm_decode_all(ctx, window, n_ctx, logits);
        window[0] = saved;
        if (st != VKLLM_OK) {
            cli_error(cmd);
            goto out;
        }
        for (uint32_t j = first; j + 1 < n_ctx; j++) {
            total += nll(logits + (size_t)j * n_vocab, n_vocab, window[j + 1]);
            count++;
        }
        printf("[%zu]%.4f%s", c + 1, exp(total / count), c + 1 < n_chunks ? "," : "\n");
        if (!cli_flush_out(cmd))
            goto out;
    }
    double secs = (cli_now_ms() - t0) / 1e3;
    fprintf(stderr, "%zu chunks of %u tokens in %.2f s (%.1f tok/s)\n", n_chunks, n_ctx, secs,
            secs > 0 ? n_chunks * n_ctx / secs : 0.0);
    printf("PPL = %.4f\n", exp(total / count));
    rc = 0;
out:
    free(logits);
    vkllm_free(ids);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    free(text);
    return rc;
}

/* `vkllm perplexity` on stories260K agrees with a perplexity computed from the CPU reference forward pass
 * over the same windows (BOS first, second half of each window scored). */
#include <math.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/gguf.h"
#include "host/text/tokenizer.h"
#include "ref/ref_llama.h"
#include "ref/ref_perplexity.h"
#include "util.h"

static const char *text =
    "Once upon a time, there was a little boy named Tim. Tim had a big red ball. He liked to play with his ball "
    "in the park every day. One day, Tim saw a girl named Sue. Sue was sad because she did not have a ball. "
    "Tim wanted to help Sue, so he gave her his ball. Sue was very happy and said, \"Thank you, Tim!\" They "
    "played together all day long. The sun was warm and the sky was blue. When it was time to go home, Sue "
    "gave the ball back to Tim. They were best friends from that day on. The next morning, Tim and Sue met at "
    "the park again. They saw a small dog under a tree. The dog was lost and hungry. Tim shared his bread with "
    "the dog, and Sue gave it some water. The dog wagged its tail and licked their hands.\n";

int main(void)
{
    const char *model = test_shared_path("models/stories260K.gguf");
    if (!model) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", model);
    const char *tmp = getenv("VKLLM_TEST_TMP");
    char text_path[4096];
    snprintf(text_path, sizeof text_path, "%s/perplexity-%d.txt", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    FILE *f = fopen(text_path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "FAIL: cannot write %s\n", text_path);
        return 1;
    }

    /* CPU reference. */
    const uint32_t n_ctx = 64;
    gguf_file *g;
    tokenizer *tok;
    ref_llama *ref;
    if (vkl_gguf_open(model_path, &g) != VKLLM_OK || vkl_tokenizer_load(g, &tok) != VKLLM_OK || ref_llama_load(g, &ref) != VKLLM_OK) {
        fprintf(stderr, "FAIL: loading %s: %s\n", model_path, vkr_last_error());
        return 1;
    }
    int32_t *ids;
    size_t n_ids;
    CHECK(vkl_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n_ids) == VKLLM_OK, "encode");
    CHECK(n_ids >= 2 * n_ctx, "the text is too short: %zu tokens", n_ids);
    size_t count = 0;
    double ref_ppl = ref_perplexity(ref, ids, n_ids, n_ctx, vkl_tokenizer_bos(tok), &count);
    CHECK(ref_ppl > 0, "ref forward: %s", vkr_last_error());

    /* The command. */
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "'%s' perplexity -m '%s' -f '%s' -c %u -b 24 2>&1", getenv("VKLLM_BIN"), model_path,
             text_path, n_ctx);
    FILE *p = popen(cmd, "r");
    double ppl = -1;
    char line[4096];
    while (p && fgets(line, sizeof line, p)) {
        if (!strncmp(line, "PPL = ", 6))
            ppl = strtod(line + 6, NULL);
        else
            fputs(line, stderr);
    }
    int rc = p ? pclose(p) : -1;
    CHECK(rc == 0, "vkllm perplexity exited with %d", rc);
    fprintf(stderr, "PPL: vkllm %.6f, CPU reference %.6f over %zu scored tokens\n", ppl, ref_ppl, count);
    CHECK(ppl > 1 && fabs(ppl - ref_ppl) / ref_ppl < 1e-3, "perplexity %.6f differs from the reference %.6f", ppl,
          ref_ppl);

    free(ids);
    vkl_tokenizer_free(tok);
    ref_llama_free(ref);
    vkl_gguf_close(g);
    remove(text_path);
    return test_finish("perplexity");
}

/* Quantize round trips on a trained model: stories260K zero-padded to width 256 (tests/pad_model.c: the
 * same function, and rows a multiple of 256 so every K-quant applies instead of its fallbacks) is quantized
 * to each file type with vkl_quantize_model, and the quantized model's perplexity on a short story, from
 * `vkllm perplexity` (the device kernels), must stay within a per-type bound of the F32 model's. Files of
 * types the device has no kernels for, or every file when there is no device, are scored with the CPU
 * reference forward pass on the dequantized weights instead (said in the output). The reference also
 * scores the original and padded F32 models (equal: the padding keeps the function) and the Q4_K_M file,
 * which the device must match within 1e-3, as in test_perplexity. A broken quantizer, layout or kernel
 * gives perplexities far above the F32 model's (a uniform guess scores 512 here). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/format/quantize_model.h"
#include "host/text/tokenizer.h"
#include "pad_model.h"
#include "ref/ref_llama.h"
#include "ref/ref_perplexity.h"
#include "util.h"

static const char story[] =
    "Once upon a time, in a small town, there lived a girl named Mia. Mia had a little cat called Tom. Tom "
    "liked to sleep in the sun and play with a red ball. One day, Mia and Tom went to the park. The sky was "
    "blue and the birds were singing. Mia saw a big tree with a swing. She ran to the swing and said, \"Look, "
    "Tom! Let's play!\" Tom jumped on her lap and they went up and down. Then Mia saw a boy who was sad. His "
    "name was Ben. Ben had lost his toy car. Mia wanted to help him. She looked under the bench and behind the "
    "tree. Tom found the car in the grass! Ben was very happy. He said, \"Thank you, Mia and Tom!\" They all "
    "played together until the sun went down. When it was time to go home, Mia hugged Ben and waved goodbye. "
    "That night, Mia told her mom about her new friend. Her mom smiled and said, \"It is good to help "
    "others.\" Mia went to bed with Tom and dreamed of the park.\n";

enum { N_CTX = 64 };

/* Bound on PPL(quantized) / PPL(F32) - 1 per file type. Measured (the quantizers are deterministic):
 * F16 +0.02%, BF16 -0.17%, Q8_0 +0.40%, Q6_K +1.3%, Q5_K_M +0.8%, Q5_K_S 0.0%, Q5_1 +0.6%, Q5_0 +2.8%,
 * Q4_K_M +1.7%, Q4_K_S +3.5%, Q4_1 +3.6%, Q4_0 +10.3%, IQ4_NL +7.8%, IQ4_XS +6.4%, Q3_K_L +22%, Q3_K_M
 * +27%, Q3_K_S +31%, Q2_K +250% (a 2-bit token embedding on a model of width 64 is that bad: llama.cpp's
 * own llama-quantize gives +416% on this model, and +15%, +0.2%, +1.3%, +5.7% for Q4_0, Q8_0, Q4_K_M,
 * IQ4_XS). The bounds are about twice the measurement, tight enough to catch a broken type: a wrong
 * block layout or kernel gives perplexities of tens to hundreds (a uniform guess scores 512). With about
 * 300 scored tokens the differences are noisy, which is why some types come out below F32. */
typedef struct roundtrip_case {
    const char *ftype;
    double bound;
} roundtrip_case;

static const roundtrip_case cases[] = {
    {"F32", 0.0},     {"F16", 0.002},   {"BF16", 0.01},   {"Q8_0", 0.01},   {"Q6_K", 0.03},   {"Q5_K_M", 0.04},
    {"Q5_K_S", 0.04}, {"Q5_1", 0.04},   {"Q5_0", 0.06},   {"Q4_K_M", 0.08}, {"Q4_K_S", 0.08}, {"Q4_1", 0.08},
    {"Q4_0", 0.18},   {"IQ4_NL", 0.15}, {"IQ4_XS", 0.15}, {"Q3_K_L", 0.40}, {"Q3_K_M", 0.45}, {"Q3_K_S", 0.50},
    {"Q2_K", 4.0},
};

/* `vkllm perplexity` on the file, or -1 if the command fails. */
static double device_perplexity(const char *model, const char *text_path)
{
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "'%s' perplexity -m '%s' -f '%s' -c %d 2>&1", getenv("VKLLM_BIN"), model, text_path,
             N_CTX);
    FILE *p = popen(cmd, "r");
    double ppl = -1;
    char line[4096];
    while (p && fgets(line, sizeof line, p)) {
        if (!strncmp(line, "PPL = ", 6))
            ppl = strtod(line + 6, NULL);
    }
    return p && pclose(p) == 0 ? ppl : -1;
}

/* True if the device kernels run every tensor type of the file. */
static bool device_runs(const gguf_file *f)
{
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++) {
        const ggml_type_info *t = vkl_ggml_type_get(vkl_gguf_tensor_at(f, i)->type);
        if (!t || !t->kernels)
            return false;
    }
    return true;
}

/* Reference perplexity of the model in `path`. */
static double ref_model_perplexity(const char *path, const int32_t *ids, size_t n_ids, int32_t bos)
{
    gguf_file *f;
    ref_llama *m;
    if (vkl_gguf_open(path, &f) != VKLLM_OK)
        return -1;
    double ppl = -1;
    size_t count;
    if (ref_llama_load(f, &m) == VKLLM_OK) {
        ppl = ref_perplexity(m, ids, n_ids, N_CTX, bos, &count);
        ref_llama_free(m);
    }
    vkl_gguf_close(f);
    return ppl;
}

int main(void)
{
    const char *shared = test_shared_path("models/stories260K.gguf");
    if (!shared) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    const char *tmp = getenv("VKLLM_TEST_TMP");
    char original[4096], padded[4200], out[4300], text_path[4300];
    snprintf(original, sizeof original, "%s", shared);
    snprintf(padded, sizeof padded, "%.4000s/roundtrip-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(out, sizeof out, "%s.q.gguf", padded);
    snprintf(text_path, sizeof text_path, "%s.txt", padded);
    FILE *tf = fopen(text_path, "w");
    if (!tf || fputs(story, tf) < 0 || fclose(tf) != 0 || pad_model_write(original, padded, 256) != VKLLM_OK) {
        fprintf(stderr, "FAIL: writing %s or %s: %s\n", text_path, padded, vkr_last_error());
        return 1;
    }

    gguf_file *f;
    tokenizer *tok;
    int32_t *ids;
    size_t n_ids;
    if (vkl_gguf_open(padded, &f) != VKLLM_OK || vkl_tokenizer_load(f, &tok) != VKLLM_OK ||
        vkl_tokenizer_encode(tok, story, strlen(story), true, false, &ids, &n_ids) != VKLLM_OK) {
        fprintf(stderr, "FAIL: tokenizing: %s\n", vkr_last_error());
        return 1;
    }
    vkl_gguf_close(f);
    int32_t bos = vkl_tokenizer_bos(tok);
    CHECK(n_ids >= 4 * N_CTX, "the story is only %zu tokens", n_ids);

    double ppl_original = ref_model_perplexity(original, ids, n_ids, bos);
    double ppl_f32 = ref_model_perplexity(padded, ids, n_ids, bos);
    fprintf(stderr, "%zu tokens; reference perplexity: original %.4f, padded to 256 %.4f\n", n_ids, ppl_original,
            ppl_f32);
    CHECK(ppl_f32 > 1 && ppl_f32 == ppl_original, "the padded model's perplexity differs from the original's");
    CHECK(ppl_f32 < 20, "stories260K's perplexity %.2f is not that of a trained model", ppl_f32);
    double dev_f32 = device_perplexity(padded, text_path);
    if (dev_f32 > 0) {
        fprintf(stderr, "F32 on the device: %.4f\n", dev_f32);
        CHECK(fabs(dev_f32 - ppl_f32) / ppl_f32 < 1e-3, "vkllm perplexity %.6f, reference %.6f", dev_f32, ppl_f32);
    } else {
        fprintf(stderr, "note: vkllm perplexity does not run here (no device?): the CPU reference scores every file\n");
    }

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const roundtrip_case *c = &cases[i];
        quantize_params p = {.ftype = vkl_quantize_ftype_find(c->ftype), .n_threads = 2,
                             .output_tensor_type = QUANTIZE_TYPE_AUTO, .token_embedding_type = QUANTIZE_TYPE_AUTO};
        gguf_file *f;
        if (vkl_quantize_model(padded, out, &p) != VKLLM_OK || vkl_gguf_open(out, &f) != VKLLM_OK) {
            CHECK(0, "%s: quantize: %s", c->ftype, vkr_last_error());
            continue;
        }
        const gguf_tensor *q = vkl_gguf_find_tensor(f, "blk.0.attn_q.weight");
        CHECK(q && q->type == p.ftype->type, "%s: attn_q is %s, not the file type's own (a fallback?)", c->ftype,
              q ? vkl_ggml_type_label(q->type) : "missing");
        bool on_device = dev_f32 > 0 && device_runs(f);
        vkl_gguf_close(f);
        double ppl = on_device ? device_perplexity(out, text_path) : ref_model_perplexity(out, ids, n_ids, bos);
        double base = on_device ? dev_f32 : ppl_f32, rise = ppl / base - 1;
        fprintf(stderr, "%-7s perplexity %.4f (%+.2f%%, bound +%.1f%%) by %s\n", c->ftype, ppl, 100 * rise,
                100 * c->bound, on_device ? "vkllm perplexity" : "the CPU reference");
        CHECK(ppl > 1 && rise <= c->bound, "%s: perplexity %.4f is %.2f%% above F32's %.4f (bound %.1f%%)", c->ftype,
              ppl, 100 * rise, base, 100 * c->bound);
        if (on_device && !strcmp(c->ftype, "Q4_K_M")) {
            double ref = ref_model_perplexity(out, ids, n_ids, bos);
            CHECK(fabs(ppl - ref) / ref < 1e-3, "Q4_K_M: vkllm perplexity %.6f, reference %.6f", ppl, ref);
        }
    }
    free(ids);
    vkl_tokenizer_free(tok);
    remove(out);
    remove(padded);
    remove(text_path);
    return test_finish("quantize_roundtrip");
}

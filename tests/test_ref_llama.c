/* The CPU reference forward pass (tests/ref/ref_llama.c) on the real tiny model stories260K:
 * greedy decoding from BOS must write the model's known story opening, and a prompt processed as one
 * batch (or as several) must give the same logits as the same prompt one token at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "ref/ref_llama.h"
#include "util.h"

/* The known greedy output of stories260K from BOS (a property of the model, not of this code). */
static const char EXPECTED[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

enum { MAX_GEN = 64, MAX_TEXT = 4096 };

/* Appends the text of token `id` to text (a minimal SentencePiece decoder, just for this test: byte
 * tokens <0xNN> are that byte, U+2581 "▁" is a space; the real tokenizer lives in host/tokenizer*). */
static void append_piece(const gguf_file *f, int32_t id, char *text, size_t *len)
{
    const char *s;
    uint64_t n;
    if (!vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)id, &s, &n))
        return;
    unsigned byte;
    char hex[7] = {0};
    if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
        memcpy(hex, s, 6);
        if (sscanf(hex, "<0x%2x>", &byte) == 1) {
            if (*len + 1 < MAX_TEXT)
                text[(*len)++] = (char)byte;
            text[*len] = '\0';
            return;
        }
    }
    for (uint64_t i = 0; i < n && *len + 1 < MAX_TEXT; i++) {
        if (i + 2 < n && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            text[(*len)++] = ' ';
            i += 2;
        } else {
            text[(*len)++] = s[i];
        }
    }
    text[*len] = '\0';
}

/* Largest |a - b| over the row, relative to the row's largest |b|. */
static double row_rel_diff(const float *a, const float *b, uint32_t n)
{
    double diff = 0, scale = 0;
    for (uint32_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return isfinite(diff) ? diff / fmax(scale, 1e-30) : INFINITY;
}

static void test_greedy_story(const gguf_file *f, ref_llama *m, int32_t bos, int32_t *ids, uint32_t *n_ids)
{
    const uint32_t n_vocab = ref_llama_n_vocab(m);
    float *logits = malloc(n_vocab * sizeof(float));
    char text[MAX_TEXT] = {0};
    size_t len = 0;
    int32_t eos = -1;
    vkl_gguf_get_i32(f, "tokenizer.ggml.eos_token_id", &eos);

    ids[0] = bos;
    uint32_t n = 1;
    while (n < MAX_GEN) {
        vkllm_status st = ref_llama_forward(m, &ids[n - 1], 1, n - 1, logits);
        CHECK(st == VKLLM_OK, "forward at position %u: %s", n - 1, vkr_last_error());
        if (st != VKLLM_OK)
            break;
        CHECK(first_nonfinite(logits, n_vocab) < 0, "non-finite logit at position %u", n - 1);
        int32_t next = test_argmax(logits, n_vocab);
        ids[n++] = next;
        if (next == eos)
            break;
        append_piece(f, next, text, &len);
    }
    *n_ids = n;
    /* SentencePiece marks the start of the text with a space; a decoder drops that one. */
    const char *story = text[0] == ' ' ? text + 1 : text;
    fprintf(stderr, "greedy from BOS (%u tokens): \"%s\"\n", n - 1, story);
    CHECK(strncmp(story, EXPECTED, strlen(EXPECTED)) == 0, "the story does not start with \"%s\"", EXPECTED);
    free(logits);
}

/* The same prompt one token at a time, as one batch, and as uneven batches: same logits. */
static void test_batch_matches_sequential(ref_llama *m, const int32_t *ids, uint32_t n)
{
    const uint32_t n_vocab = ref_llama_n_vocab(m);
    float *seq = malloc((size_t)n * n_vocab * sizeof(float));
    float *bat = malloc((size_t)n * n_vocab * sizeof(float));

    for (uint32_t t = 0; t < n; t++)
        CHECK(ref_llama_forward(m, &ids[t], 1, t, seq + (size_t)t * n_vocab) == VKLLM_OK, "sequential %u", t);

    /* one batch, rewinding the cache to position 0 */
    CHECK(ref_llama_forward(m, ids, n, 0, bat) == VKLLM_OK, "batch: %s", vkr_last_error());
    double worst = 0;
    for (uint32_t t = 0; t < n; t++)
        worst = fmax(worst, row_rel_diff(bat + (size_t)t * n_vocab, seq + (size_t)t * n_vocab, n_vocab));
    fprintf(stderr, "one batch of %u vs one at a time: max relative difference %.3g\n", n, worst);
    CHECK(worst <= 1e-5, "one batch differs from one token at a time: %.3g", worst);

    /* uneven batches: 1, 4, then the rest */
    const uint32_t cuts[] = {0, 1, 5, n};
    for (int c = 0; c < 3; c++)
        CHECK(ref_llama_forward(m, ids + cuts[c], cuts[c + 1] - cuts[c], cuts[c], bat + (size_t)cuts[c] * n_vocab) ==
                  VKLLM_OK, "batch %d: %s", c, vkr_last_error());
    worst = 0;
    for (uint32_t t = 0; t < n; t++)
        worst = fmax(worst, row_rel_diff(bat + (size_t)t * n_vocab, seq + (size_t)t * n_vocab, n_vocab));
    fprintf(stderr, "batches of 1, 4, %u vs one at a time: max relative difference %.3g\n", n - 5, worst);
    CHECK(worst <= 1e-5, "split batches differ from one token at a time: %.3g", worst);

    /* rewinding: re-running the last token at its position reproduces its logits */
    CHECK(ref_llama_forward(m, &ids[n - 1], 1, n - 1, bat) == VKLLM_OK, "rewind: %s", vkr_last_error());
    CHECK(row_rel_diff(bat, seq + (size_t)(n - 1) * n_vocab, n_vocab) <= 1e-5, "rewound token differs");

    free(seq);
    free(bat);
}

static void test_bad_arguments(ref_llama *m)
{
    const uint32_t n_vocab = ref_llama_n_vocab(m);
    float *logits = malloc(2 * n_vocab * sizeof(float));
    int32_t bad[2] = {1, (int32_t)n_vocab};
    vkr_clear_error();
    CHECK(ref_llama_forward(m, bad, 2, 0, logits) == VKLLM_ERR_INVALID_ARGUMENT && vkr_last_error()[0],
          "token id n_vocab is rejected with a message");
    bad[1] = -1;
    CHECK(ref_llama_forward(m, bad, 2, 0, logits) == VKLLM_ERR_INVALID_ARGUMENT, "token id -1 is rejected");
    CHECK(ref_llama_forward(m, bad, 1, 0, logits) == VKLLM_OK, "a valid token at position 0");
    CHECK(ref_llama_forward(m, bad, 1, 5, logits) == VKLLM_ERR_INVALID_ARGUMENT, "a gap in positions is rejected");
    CHECK(ref_llama_forward(m, bad, 0, 0, logits) == VKLLM_ERR_INVALID_ARGUMENT, "zero tokens is rejected");
    free(logits);
}

/* ---- Variants of stories260K written with gguf_writer, for what the file itself does not exercise:
 * quantized weights, a tied output projection, rope_freqs, rope.dimension_count < head_dim. Each is
 * checked by an equivalence that must hold whatever the weights are. ---- */

typedef struct variant {
    uint32_t wtype;             /* type of the 2-D weights (those whose rows fit the type's blocks) */
    bool store_dequantized;     /* store F32 holding dequantize(quantize(w, wtype)) instead */
    bool tied;                  /* no output.weight */
    bool output_from_embd;      /* output.weight := token_embd.weight */
    uint32_t n_rot;
    float rope_base;
    const float *rope_freqs;    /* n_rot / 2 factors, or NULL */
    const char *arch;           /* general.architecture, NULL for "llama" */
    const char *drop;           /* name of a tensor to leave out, or NULL */
} variant;

static vkllm_status write_tensor(gguf_writer *w, const gguf_tensor *t, const variant *v)
{
    uint64_t n = t->n_elements;
    float *x = malloc(n * sizeof(float));
    void *q = malloc(n * sizeof(float) + 64);
    vkllm_status st = VKLLM_ERR_OUT_OF_HOST_MEMORY;
    if (x && q) {
        vkl_dequantize_row(t->type, t->data, x, n);
        bool convert = t->n_dims == 2 && t->ne[0] % vkl_ggml_block_size(v->wtype) == 0;
        if (convert && v->store_dequantized) {
            vkl_quantize_row(v->wtype, x, q, n);
            vkl_dequantize_row(v->wtype, q, x, n);
            convert = false;
        }
        if (convert) {
            vkl_quantize_row(v->wtype, x, q, n);
            st = vkl_gguf_writer_tensor_data(w, q, (size_t)vkl_ggml_row_bytes(v->wtype, n));
        } else {
            st = vkl_gguf_writer_tensor_data(w, x, (size_t)n * sizeof(float));
        }
    }
    free(x);
    free(q);
    return st;
}

static bool write_variant(const gguf_file *f, const ref_llama_hparams *hp, const variant *v, const char *path)
{
    gguf_writer *w = NULL;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    CHECK(st == VKLLM_OK, "gguf_writer_open(%s): %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        return false;
#define W(call)                                                            \
    do {                                                                   \
        if (st == VKLLM_OK) {                                              \
            st = (call);                                                   \
            CHECK(st == VKLLM_OK, "%s: %s", #call, vkr_last_error());      \
        }                                                                  \
    } while (0)
    W(vkl_gguf_writer_kv_str(w, "general.architecture", v->arch ? v->arch : "llama"));
    W(vkl_gguf_writer_kv_u32(w, "llama.embedding_length", hp->n_embd));
    W(vkl_gguf_writer_kv_u32(w, "llama.block_count", hp->n_layer));
    W(vkl_gguf_writer_kv_u32(w, "llama.attention.head_count", hp->n_head));
    W(vkl_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", hp->n_head_kv));
    W(vkl_gguf_writer_kv_u32(w, "llama.feed_forward_length", hp->n_ff));
    W(vkl_gguf_writer_kv_u32(w, "llama.rope.dimension_count", v->n_rot));
    W(vkl_gguf_writer_kv_f32(w, "llama.rope.freq_base", v->rope_base));
    W(vkl_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_eps));

    /* tensor infos, then data, in the same order */
    const gguf_tensor *embd = vkl_gguf_find_tensor(f, "token_embd.weight");
    uint64_t nt = vkl_gguf_n_tensors(f);
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t i = 0; i < nt && st == VKLLM_OK; i++) {
            const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
            bool is_output = strcmp(t->name, "output.weight") == 0;
            if ((is_output && v->tied) || (v->drop && strcmp(t->name, v->drop) == 0))
                continue;
            if (is_output && v->output_from_embd)
                t = embd;
            bool convert = t->n_dims == 2 && t->ne[0] % vkl_ggml_block_size(v->wtype) == 0 && !v->store_dequantized;
            uint32_t type = convert ? v->wtype : GGML_TYPE_F32;
            if (pass == 0)
                W(vkl_gguf_writer_tensor_info(w, is_output ? "output.weight" : t->name, type, t->n_dims, t->ne));
            else
                W(write_tensor(w, t, v));
        }
        if (v->rope_freqs != NULL) {
            uint64_t ne[1] = {v->n_rot / 2};
            if (pass == 0)
                W(vkl_gguf_writer_tensor_info(w, "rope_freqs.weight", GGML_TYPE_F32, 1, ne));
            else
                W(vkl_gguf_writer_tensor_data(w, v->rope_freqs, ne[0] * sizeof(float)));
        }
    }
#undef W
    vkllm_status cst = vkl_gguf_writer_close(w);
    CHECK(cst == VKLLM_OK, "gguf_writer_close(%s): %s", path, vkr_last_error());
    return st == VKLLM_OK && cst == VKLLM_OK;
}

/* Writes the variant, loads it into the reference and runs the prompt as one batch. */
static bool run_variant(const gguf_file *f, const ref_llama_hparams *hp, const variant *v, int index,
                        const int32_t *ids, uint32_t n, float *logits)
{
    char path[4096];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/ref_llama_variant_%d.gguf", dir && *dir ? dir : "/tmp", index);
    if (!write_variant(f, hp, v, path))
        return false;
    gguf_file *vf = NULL;
    ref_llama *vm = NULL;
    vkllm_status st = vkl_gguf_open(path, &vf);
    CHECK(st == VKLLM_OK, "variant %d: gguf_open: %s", index, vkr_last_error());
    if (st == VKLLM_OK) {
        st = ref_llama_load(vf, &vm);
        CHECK(st == VKLLM_OK, "variant %d: ref_llama_load: %s", index, vkr_last_error());
    }
    if (st == VKLLM_OK) {
        const ref_llama_hparams *vh = ref_llama_get_hparams(vm);
        CHECK(vh->tied_output == v->tied && vh->has_rope_freqs == (v->rope_freqs != NULL) && vh->n_rot == v->n_rot,
              "variant %d: hyper-parameters read back wrong", index);
        st = ref_llama_forward(vm, ids, n, 0, logits);
        CHECK(st == VKLLM_OK, "variant %d: forward: %s", index, vkr_last_error());
    }
    ref_llama_free(vm);
    if (vf)
        vkl_gguf_close(vf);
    remove(path);
    return st == VKLLM_OK;
}

/* Writes the variant and expects ref_llama_load to fail with `want` and a message containing `needle`. */
static void load_variant_fails(const gguf_file *f, const ref_llama_hparams *hp, const variant *v, int index,
                               vkllm_status want, const char *needle)
{
    char path[4096];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/ref_llama_variant_%d.gguf", dir && *dir ? dir : "/tmp", index);
    if (!write_variant(f, hp, v, path))
        return;
    gguf_file *vf = NULL;
    ref_llama *vm = NULL;
    vkllm_status st = vkl_gguf_open(path, &vf);
    CHECK(st == VKLLM_OK, "variant %d: gguf_open: %s", index, vkr_last_error());
    if (st == VKLLM_OK) {
        vkr_clear_error();
        st = ref_llama_load(vf, &vm);
        CHECK(st == want && vm == NULL, "variant %d: ref_llama_load gave %d, want %d", index, (int)st, (int)want);
        CHECK(strstr(vkr_last_error(), needle) != NULL, "variant %d: message \"%s\" does not mention %s", index,
              vkr_last_error(), needle);
        vkl_gguf_close(vf);
    }
    ref_llama_free(vm);
    remove(path);
}

static double max_row_diff(const float *a, const float *b, uint32_t n_rows, uint32_t n_vocab)
{
    double worst = 0;
    for (uint32_t t = 0; t < n_rows; t++)
        worst = fmax(worst, row_rel_diff(a + (size_t)t * n_vocab, b + (size_t)t * n_vocab, n_vocab));
    return worst;
}

static void test_variants(const gguf_file *f, const ref_llama_hparams *hp, const int32_t *ids, uint32_t n)
{
    const uint32_t nv = hp->n_vocab;
    float *a = malloc((size_t)n * nv * sizeof(float));
    float *b = malloc((size_t)n * nv * sizeof(float));
    const variant base = {GGML_TYPE_F32, false, false, false, hp->n_rot, hp->rope_base, NULL, NULL, NULL};
    int index = 0;

    /* 1. Quantized weights give exactly the logits of F32 weights holding the dequantized values. */
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_F16};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        variant vq = base, vd = base;
        vq.wtype = vd.wtype = types[i];
        vd.store_dequantized = true;
        if (run_variant(f, hp, &vq, index++, ids, n, a) && run_variant(f, hp, &vd, index++, ids, n, b)) {
            double d = max_row_diff(a, b, n, nv);
            CHECK(d == 0, "%s weights differ from their dequantized f32 values: %.3g", vkl_ggml_type_name(types[i]), d);
        }
    }

    /* 2. Without output.weight the output projection is token_embd.weight. */
    {
        variant vt = base, ve = base;
        vt.tied = true;
        ve.output_from_embd = true;
        if (run_variant(f, hp, &vt, index++, ids, n, a) && run_variant(f, hp, &ve, index++, ids, n, b))
            CHECK(max_row_diff(a, b, n, nv) == 0, "tied output differs from output.weight = token_embd.weight");
    }

    /* 3. rope_freqs f_i = c^(-2i/n_rot) with base B is the same rotation as no factors and base B/c. */
    if (hp->n_rot >= 4 && hp->n_rot <= 256) {
        float factors[128];
        const double c = 0.1;
        for (uint32_t i = 0; i < hp->n_rot / 2; i++)
            factors[i] = (float)pow(c, -2.0 * i / hp->n_rot);
        variant vf = base, vb = base;
        vf.rope_freqs = factors;
        vb.rope_base = (float)(hp->rope_base / c);
        if (run_variant(f, hp, &vf, index++, ids, n, a) && run_variant(f, hp, &vb, index++, ids, n, b)) {
            double d = max_row_diff(a, b, n, nv);
            fprintf(stderr, "rope_freqs c^(-2i/n) vs base B/c: max relative difference %.3g\n", d);
            CHECK(d <= 1e-4, "rope_freqs c^(-2i/n) differs from base B/c: %.3g", d);
        }
        /* ... and the factors do change the result (they are not ignored) */
        if (run_variant(f, hp, &base, index++, ids, n, b))
            CHECK(max_row_diff(a, b, n, nv) > 1e-3, "rope_freqs made no difference");
    }

    /* 4. rope.dimension_count r < head_dim (last dims not rotated) equals rotating all head_dim dims
     *    with factors that give pair i < r/2 the frequency B^(-2i/r) and the others angle ~0. */
    if (hp->head_dim >= 4 && hp->head_dim % 4 == 0 && hp->n_rot == hp->head_dim && hp->head_dim <= 256) {
        float factors[128];
        const uint32_t r = hp->head_dim / 2;
        for (uint32_t i = 0; i < hp->head_dim / 2; i++)
            factors[i] = i < r / 2 ? (float)pow(hp->rope_base, 2.0 * i / r - 2.0 * i / hp->head_dim) : 1e30f;
        variant vp = base, vf = base;
        vp.n_rot = r;
        vf.rope_freqs = factors;
        if (run_variant(f, hp, &vp, index++, ids, n, a) && run_variant(f, hp, &vf, index++, ids, n, b)) {
            double d = max_row_diff(a, b, n, nv);
            fprintf(stderr, "partial rotation vs equivalent full rotation: max relative difference %.3g\n", d);
            CHECK(d <= 1e-4, "partial rotation (n_rot %u) differs from the equivalent full rotation: %.3g", r, d);
        }
    }

    /* 5. Files the reference must refuse, with a message. */
    {
        variant va = base, vd = base;
        va.arch = "gpt2";
        vd.drop = "blk.1.ffn_up.weight";
        load_variant_fails(f, hp, &va, index++, VKLLM_ERR_UNSUPPORTED, "gpt2");
        load_variant_fails(f, hp, &vd, index++, VKLLM_ERR_FORMAT, "blk.1.ffn_up.weight");
    }
    free(a);
    free(b);
}

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (path == NULL) {
        fprintf(stderr, "skipped: models/stories260K.gguf not found under the shared data\n");
        return TEST_SKIP;
    }
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "gguf_open(%s): %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        return test_finish("ref_llama");

    ref_llama *m = NULL;
    st = ref_llama_load(f, &m);
    CHECK(st == VKLLM_OK, "ref_llama_load: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        const ref_llama_hparams *hp = ref_llama_get_hparams(m);
        fprintf(stderr,
                "stories260K: n_vocab %u n_embd %u n_layer %u n_head %u n_head_kv %u head_dim %u n_ff %u n_rot %u "
                "rope_base %g eps %g tied %d\n",
                hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_rot,
                hp->rope_base, hp->rms_eps, hp->tied_output);
        CHECK(hp->n_vocab == 512, "n_vocab %u", hp->n_vocab);

        uint32_t bos = 0;
        CHECK(vkl_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos) && bos < hp->n_vocab, "bos_token_id");
        int32_t ids[MAX_GEN];
        uint32_t n_ids = 0;
        test_greedy_story(f, m, (int32_t)bos, ids, &n_ids);
        if (n_ids >= 12)
            test_batch_matches_sequential(m, ids, 12);
        else
            CHECK(false, "greedy decoding stopped after %u tokens", n_ids);
        test_bad_arguments(m);
        if (n_ids >= 12)
            test_variants(f, hp, ids, 12);
        ref_llama_free(m);
    }
    vkl_gguf_close(f);
    return test_finish("ref_llama");
}

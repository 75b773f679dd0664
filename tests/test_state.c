/* Sequence state save/restore (include/vkllm.h: vkllm_state_*), on a synthetic "tiny" model (Q8_0, seeded) and
 * on stories260K when present:
 * - decode a prompt, save (to memory and to a file), decode N greedy tokens; a new context (holding other
 *   tokens first) that loads the state decodes the same N tokens with bit-identical logits, from memory
 *   and from the file;
 * - refused with VKLLM_ERR_INVALID_ARGUMENT and the context unchanged: truncated buffers, seeded byte flips
 *   anywhere, a state of more positions than the context, a state of another model (qwen2-tiny);
 * - VKLLM_ERR_BUSY while a decode is in flight; VKLLM_ERR_UNSUPPORTED for a ring-buffer context (gemma2-tiny
 *   with a window of 8). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/ggml_types.h"
#include "host/synth.h"
#include "runtime/error.h"
#include "util.h"
#include "vkllm.h"

#define N_PROMPT 20
#define N_GEN 8
#define N_CTX 64

static vkllm_context *new_context(vkllm_model *m, uint32_t n_ctx)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = n_ctx;
    cp.n_batch = 16;
    vkllm_context *c = NULL;
    CHECK(vkllm_context_create(m, &cp, &c) == VKLLM_OK, "context: %s", vkllm_last_error());
    return c;
}

/* N_GEN greedy steps from `first`: the ids and every step's logits (N_GEN x n_vocab) into out. */
static void generate(vkllm_context *c, int32_t first, uint32_t n_vocab, int32_t *ids, float *out)
{
    int32_t t = first;
    for (int i = 0; i < N_GEN; i++) {
        const float *logits = NULL;
        vkllm_status st = vkllm_decode(c, &t, 1, &logits);
        CHECK(st == VKLLM_OK && logits, "step %d: %s", i, vkllm_last_error());
        if (st != VKLLM_OK || !logits)
            return;
        memcpy(out + (size_t)i * n_vocab, logits, n_vocab * sizeof *logits);
        ids[i] = t = test_argmax(logits, n_vocab);
    }
}

/* A context holding other tokens loads the state (from buf, or from path when buf is NULL) and continues. */
static void check_continues(vkllm_model *m, const void *buf, size_t size, const char *path, int32_t first,
                            const int32_t *ref_ids, const float *ref, const char *name)
{
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    vkllm_context *c = new_context(m, N_CTX);
    float *got = calloc((size_t)N_GEN * n_vocab, sizeof *got);
    int32_t ids[N_GEN] = {0};
    const float *logits;
    if (c && got) {
        int32_t other[5] = {5, 6, 7, 8, 9};
        CHECK(vkllm_decode(c, other, 5, &logits) == VKLLM_OK, "other tokens: %s", vkllm_last_error());
        vkllm_status st = buf ? vkllm_state_load(c, buf, size) : vkllm_state_load_file(c, path);
        CHECK(st == VKLLM_OK, "%s: load %s: %s", name, buf ? "buffer" : "file", vkllm_last_error());
        CHECK(vkllm_context_position(c) == N_PROMPT, "position %u after load", vkllm_context_position(c));
        generate(c, first, n_vocab, ids, got);
        CHECK(memcmp(ids, ref_ids, sizeof ids) == 0, "%s: the tokens after a load differ", name);
        CHECK(memcmp(got, ref, (size_t)N_GEN * n_vocab * sizeof *got) == 0, "%s: logits after a load differ", name);
    }
    free(got);
    vkllm_context_free(c);
}

/* Bad states: each refused with VKLLM_ERR_INVALID_ARGUMENT, the context's position and cache unchanged. */
static void check_refusals(vkllm_model *m, const unsigned char *state, size_t size, const int32_t *prompt,
                           uint64_t seed)
{
    vkllm_context *c = new_context(m, N_CTX), *small = new_context(m, N_PROMPT - 1);
    unsigned char *bad = malloc(size);
    if (!c || !small || !bad)
        goto done;
    const float *logits;
    CHECK(vkllm_decode(c, prompt, 3, &logits) == VKLLM_OK, "decode: %s", vkllm_last_error());
    size_t cuts[] = {0, 10, 87, 88, 89, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        CHECK(vkllm_state_load(c, state, cuts[i]) == VKLLM_ERR_INVALID_ARGUMENT, "truncated to %zu accepted", cuts[i]);
    test_rng rng;
    rng_init(&rng, seed);
    for (int i = 0; i < 12; i++) {   /* a flipped byte: in the header for the first few, anywhere after */
        memcpy(bad, state, size);
        size_t at = rng_u32(&rng) % (i < 4 ? 88 : size);
        bad[at] ^= (unsigned char)(1u << (i % 8));
        vkllm_status st = vkllm_state_load(c, bad, size);
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "byte %zu flipped: status %d", at, (int)st);
    }
    printf("last refusal: %s\n", vkllm_last_error());
    CHECK(vkllm_context_position(c) == 3, "position %u after refusals", vkllm_context_position(c));
    CHECK(vkllm_state_load(small, state, size) == VKLLM_ERR_INVALID_ARGUMENT, "a state longer than the context");
    CHECK(strstr(vkllm_last_error(), "positions") != NULL, "message: %s", vkllm_last_error());
    size_t need = 0;
    CHECK(vkllm_state_size(c, &need) == VKLLM_OK && need < size, "size %zu", need);
    CHECK(vkllm_state_save(c, bad, need - 1, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "save into a short buffer");
    /* in flight */
    CHECK(vkllm_decode_submit(c, prompt, 2) == VKLLM_OK, "submit: %s", vkllm_last_error());
    CHECK(vkllm_state_size(c, &need) == VKLLM_ERR_BUSY, "size in flight");
    CHECK(vkllm_state_save(c, bad, size, NULL) == VKLLM_ERR_BUSY, "save in flight");
    CHECK(vkllm_state_load(c, state, size) == VKLLM_ERR_BUSY, "load in flight");
    CHECK(vkllm_decode_wait(c, UINT64_MAX, &logits) == VKLLM_OK, "wait: %s", vkllm_last_error());
done:
    free(bad);
    vkllm_context_free(small);
    vkllm_context_free(c);
}

/* Saves after the prompt and checks everything above; the state (malloc'ed) is returned for the
 * other-model check. */
static unsigned char *test_model(const char *path, const char *name, size_t *state_size)
{
    unsigned char *state = NULL;
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        CHECK(false, "load %s: %s", path, vkllm_last_error());
        return NULL;
    }
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    int32_t prompt[N_PROMPT], ref_ids[N_GEN];
    for (int i = 0; i < N_PROMPT; i++)   /* seeded ids past the first few (control tokens) */
        prompt[i] = (int32_t)(3 + (uint32_t)(i * 2654435761u) % (n_vocab - 3));
    float *ref = calloc((size_t)N_GEN * n_vocab, sizeof *ref);
    vkllm_context *c = new_context(m, N_CTX);
    const float *logits = NULL;
    char file[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(file, sizeof file, "%s/state-%s-%d.bin", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    size_t size = 0, written = 0;
    if (!ref || !c || vkllm_decode(c, prompt, N_PROMPT, &logits) != VKLLM_OK) {
        CHECK(false, "%s: prompt: %s", name, vkllm_last_error());
        goto done;
    }
    int32_t first = test_argmax(logits, n_vocab);
    CHECK(vkllm_state_size(c, &size) == VKLLM_OK && size > 88, "size: %s", vkllm_last_error());
    state = malloc(size);
    CHECK(state && vkllm_state_save(c, state, size, &written) == VKLLM_OK && written == size, "%s: save: %s", name,
          vkllm_last_error());
    CHECK(vkllm_state_save_file(c, file) == VKLLM_OK, "%s: save file: %s", name, vkllm_last_error());
    generate(c, first, n_vocab, ref_ids, ref);
    printf("%s: state of %zu bytes\n", name, size);
    check_continues(m, state, size, NULL, first, ref_ids, ref, name);
    check_continues(m, NULL, 0, file, first, ref_ids, ref, name);
    check_refusals(m, state, size, prompt, 0x5eed0000u + n_vocab);
    *state_size = size;
done:
    remove(file);
    free(ref);
    vkllm_context_free(c);
    vkllm_model_free(m);
    return state;
}

static void write_synth(const char *preset, char *path, size_t len)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, len, "%s/state-%s-%d.gguf", tmp && *tmp ? tmp : "/tmp", preset, (int)getpid());
    synth_options o = {.preset = preset, .type = GGML_TYPE_Q8_0, .path = path, .seed = 11};
    vkllm_status st = synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s: %s", preset, vkr_last_error());
}

/* A state of another model, and a context with a ring buffer. */
static void test_other_models(const char *qwen_path, const char *gemma_path, const unsigned char *state, size_t size)
{
    vkllm_model *m = NULL;
    if (vkllm_model_load(qwen_path, NULL, &m) == VKLLM_OK) {
        vkllm_context *c = new_context(m, N_CTX);
        CHECK(c && vkllm_state_load(c, state, size) == VKLLM_ERR_INVALID_ARGUMENT, "a state of another model");
        CHECK(strstr(vkllm_last_error(), "another model") != NULL, "message: %s", vkllm_last_error());
        vkllm_context_free(c);
        vkllm_model_free(m);
    } else
        CHECK(false, "load %s: %s", qwen_path, vkllm_last_error());
    if (vkllm_model_load(gemma_path, NULL, &m) == VKLLM_OK) {
        vkllm_context *c = new_context(m, N_CTX);   /* window 8 + 16 - 1 < 64: a ring */
        size_t n = 0;
        CHECK(c && vkllm_state_size(c, &n) == VKLLM_ERR_UNSUPPORTED, "ring context");
        CHECK(c && vkllm_state_load(c, state, size) == VKLLM_ERR_UNSUPPORTED, "ring context");
        vkllm_context_free(c);
        vkllm_model_free(m);
    } else
        CHECK(false, "load %s: %s", gemma_path, vkllm_last_error());
}

int main(void)
{
    char tiny[512], qwen[512], gemma[512];
    write_synth("tiny", tiny, sizeof tiny);
    write_synth("qwen2-tiny", qwen, sizeof qwen);
    write_synth("gemma2-tiny", gemma, sizeof gemma);
    size_t size = 0;
    unsigned char *state = test_model(tiny, "tiny", &size);
    if (state)
        test_other_models(qwen, gemma, state, size);
    free(state);
    remove(tiny);
    remove(qwen);
    remove(gemma);
    const char *stories = test_shared_path("models/stories260K.gguf");
    if (stories) {
        char path[1024];
        snprintf(path, sizeof path, "%s", stories);
        free(test_model(path, "stories260K", &size));
    } else
        printf("stories260K not found: only the synthetic models\n");
    return test_finish("state");
}

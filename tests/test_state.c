/* Sequence state save/restore (include/vkllm.h: vkllm_state_*), on synthetic models (Q8_0, seeded: tiny, and
 * gemma2-tiny and gemma3-tiny with a window of 8, whose sliding-window layers keep a ring of 8 + 16 - 1 = 23
 * rows, with a prompt of 40 so that the ring has wrapped) and on stories260K when present:
 * - decode a prompt, save (to memory and to a file), decode N greedy tokens; a new context (holding other
 *   tokens first) that loads the state decodes the same N tokens with bit-identical logits, from memory
 *   and from the file;
 * - refused with VKLLM_ERR_INVALID_ARGUMENT and the context unchanged: truncated buffers, seeded byte flips
 *   anywhere, a state of more positions than the context, a state of another model (qwen2-tiny);
 * - VKLLM_ERR_BUSY while a decode is in flight;
 * - rings: contexts with a smaller or larger ring (n_batch 8, 32) continue bit-identically; one without a
 *   ring refuses the state (it holds only the ring's positions); after a truncation within n_batch the state
 *   continues as the truncated context does, after one further back saving is VKLLM_ERR_UNSUPPORTED. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/tools/synth.h"
#include "runtime/error.h"
#include "util.h"
#include "vkllm.h"

#define N_PROMPT 20   /* 40 on the ring models */
#define N_PROMPT_RING 40
#define N_GEN 8
#define N_CTX 64

static vkllm_context *new_context_batch(vkllm_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    vkllm_context *c = NULL;
    CHECK(vkllm_context_create(m, &cp, &c) == VKLLM_OK, "context: %s", vkllm_last_error());
    return c;
}

static vkllm_context *new_context(vkllm_model *m, uint32_t n_ctx) { return new_context_batch(m, n_ctx, 16); }

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
static void check_continues(vkllm_model *m, uint32_t n_batch, const void *buf, size_t size, const char *path,
                            uint32_t pos, int32_t first, const int32_t *ref_ids, const float *ref, const char *name)
{
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    vkllm_context *c = new_context_batch(m, N_CTX, n_batch);
    float *got = calloc((size_t)N_GEN * n_vocab, sizeof *got);
    int32_t ids[N_GEN] = {0};
    const float *logits;
    if (c && got) {
        int32_t other[5] = {5, 6, 7, 8, 9};
        CHECK(vkllm_decode(c, other, 5, &logits) == VKLLM_OK, "other tokens: %s", vkllm_last_error());
        vkllm_status st = buf ? vkllm_state_load(c, buf, size) : vkllm_state_load_file(c, path);
        CHECK(st == VKLLM_OK, "%s: load %s: %s", name, buf ? "buffer" : "file", vkllm_last_error());
        CHECK(vkllm_context_position(c) == pos, "position %u after load", vkllm_context_position(c));
        generate(c, first, n_vocab, ids, got);
        CHECK(memcmp(ids, ref_ids, sizeof ids) == 0, "%s: the tokens after a load differ", name);
        CHECK(memcmp(got, ref, (size_t)N_GEN * n_vocab * sizeof *got) == 0, "%s: logits after a load differ", name);
    }
    free(got);
    vkllm_context_free(c);
}

/* Bad states: each refused with VKLLM_ERR_INVALID_ARGUMENT, the context's position and cache unchanged. */
static void check_refusals(vkllm_model *m, const unsigned char *state, size_t size, const int32_t *prompt,
                           uint32_t n_prompt, uint64_t seed)
{
    vkllm_context *c = new_context(m, N_CTX), *small = new_context(m, n_prompt - 1);
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

/* Ring contexts (sliding-window layers keeping window + n_batch - 1 rows), after the prompt of n tokens in c
 * (saved as `state`): smaller and larger rings, no ring, and saves after truncations. */
static void check_rings(vkllm_model *m, vkllm_context *c, const unsigned char *state, size_t size, uint32_t n,
                        int32_t first, const int32_t *ref_ids, const float *ref, const char *name)
{
    check_continues(m, 8, state, size, NULL, n, first, ref_ids, ref, name);    /* a ring of 15 */
    check_continues(m, 32, state, size, NULL, n, first, ref_ids, ref, name);   /* 39, holding 23 */
    vkllm_context *flat = new_context_batch(m, n + 8, n + 8);
    CHECK(flat && vkllm_state_load(flat, state, size) == VKLLM_ERR_INVALID_ARGUMENT, "%s: into no ring", name);
    CHECK(strstr(vkllm_last_error(), "last 23 of 40") != NULL, "message: %s", vkllm_last_error());
    vkllm_context_free(flat);

    /* c holds the prompt and N_GEN tokens: truncated by 10 (< n_batch) it still holds the window. */
    uint32_t n_vocab = vkllm_model_n_vocab(m), end = n + N_GEN, back = end - 10;
    float *want = calloc((size_t)N_GEN * n_vocab, sizeof *want);
    int32_t want_ids[N_GEN], t = 3;
    size_t bytes = 0;
    unsigned char *saved = NULL;
    if (!want || vkllm_context_truncate(c, back) != VKLLM_OK) {
        CHECK(false, "%s: truncate: %s", name, vkllm_last_error());
        goto done;
    }
    CHECK(vkllm_state_size(c, &bytes) == VKLLM_OK && (saved = malloc(bytes)), "%s: size: %s", name,
          vkllm_last_error());
    if (!saved)
        goto done;
    CHECK(vkllm_state_save(c, saved, bytes, NULL) == VKLLM_OK, "%s: save truncated: %s", name, vkllm_last_error());
    /* held: 23 - 10 = 13 positions; the continuation's logits as the truncated context gives them */
    generate(c, t, n_vocab, want_ids, want);
    check_continues(m, 16, saved, bytes, NULL, back, t, want_ids, want, name);
    /* c wrote up to back + N_GEN: at back - 12 its ring holds 23 - 20 = 3 positions, fewer than window - 1 */
    CHECK(vkllm_context_truncate(c, back - 12) == VKLLM_OK, "truncate: %s", vkllm_last_error());
    CHECK(vkllm_state_size(c, &bytes) == VKLLM_ERR_UNSUPPORTED, "%s: saved after truncating too far", name);
    printf("%s: %s\n", name, vkllm_last_error());
done:
    free(saved);
    free(want);
}

/* Saves after a prompt of n_prompt tokens and checks everything above; the state (malloc'ed) is returned
 * for the other-model check. */
static unsigned char *test_model(const char *path, const char *name, uint32_t n_prompt, size_t *state_size)
{
    unsigned char *state = NULL;
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        CHECK(false, "load %s: %s", path, vkllm_last_error());
        return NULL;
    }
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    int32_t prompt[N_PROMPT_RING], ref_ids[N_GEN];
    for (uint32_t i = 0; i < n_prompt; i++)   /* seeded ids past the first few (control tokens) */
        prompt[i] = (int32_t)(3 + (uint32_t)(i * 2654435761u) % (n_vocab - 3));
    float *ref = calloc((size_t)N_GEN * n_vocab, sizeof *ref);
    vkllm_context *c = new_context(m, N_CTX);
    const float *logits = NULL;
    char file[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(file, sizeof file, "%s/state-%s-%d.bin", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    size_t size = 0, written = 0;
    if (!ref || !c || vkllm_decode(c, prompt, n_prompt, &logits) != VKLLM_OK) {
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
    check_continues(m, 16, state, size, NULL, n_prompt, first, ref_ids, ref, name);
    check_continues(m, 16, NULL, 0, file, n_prompt, first, ref_ids, ref, name);
    check_refusals(m, state, size, prompt, n_prompt, 0x5eed0000u + n_vocab);
    if (n_prompt == N_PROMPT_RING)
        check_rings(m, c, state, size, n_prompt, first, ref_ids, ref, name);
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
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s: %s", preset, vkr_last_error());
}

/* A state of another model. */
static void test_other_model(const char *qwen_path, const unsigned char *state, size_t size)
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
}

int main(void)
{
    const char *presets[] = {"tiny", "qwen2-tiny", "gemma2-tiny", "gemma3-tiny"};
    char paths[4][512];
    for (int i = 0; i < 4; i++)
        write_synth(presets[i], paths[i], sizeof paths[i]);
    size_t size = 0;
    unsigned char *state = test_model(paths[0], "tiny", N_PROMPT, &size);
    if (state)
        test_other_model(paths[1], state, size);
    free(state);
    for (int i = 2; i < 4; i++)
        free(test_model(paths[i], presets[i], N_PROMPT_RING, &size));
    for (int i = 0; i < 4; i++)
        remove(paths[i]);
    const char *stories = test_shared_path("models/stories260K.gguf");
    if (stories) {
        char path[1024];
        snprintf(path, sizeof path, "%s", stories);
        free(test_model(path, "stories260K", N_PROMPT, &size));
    } else
        printf("stories260K not found: only the synthetic models\n");
    return test_finish("state");
}

/* Loading from memory and stopping early (include/vkllm.h):
 * - vkllm_model_load_from_memory on stories260K read into a buffer, freed right after the load: the greedy
 *   story; then the same image truncated at many lengths and with seeded random bytes changed in its
 *   metadata: every load returns (an error or a model), never reads outside the buffer (ASan build);
 * - a progress callback returning false at 50 %: VKLLM_ERR_CANCELLED, no model, no callback after it, all
 *   memory freed (the ASan build's leak check), and the next load works;
 * - an abort callback: a prompt decoded in batches of 2 stops after the second with VKLLM_ERR_CANCELLED,
 *   the context keeps those 4 tokens and, given the rest, continues the story exactly. */
#include <stdlib.h>
#include <string.h>

#include "greedy.h"
#include "util.h"

#define N_TOKENS 30

static char golden[1024];

static void test_from_memory(const char *path)
{
    size_t size = 0;
    char *image = test_read_file(path, &size);
    CHECK(image != NULL, "read %s", path);
    if (!image)
        return;
    vkllm_model *m = NULL;
    vkllm_status st = vkllm_model_load_from_memory(image, size, NULL, &m);
    CHECK(st == VKLLM_OK, "load from memory: %s", vkllm_last_error());
    char *copy = malloc(size);
    if (copy)
        memcpy(copy, image, size);
    memset(image, 0xA5, size);   /* the model must not need the buffer any more */
    if (st == VKLLM_OK) {
        st = greedy_story(m, 0, N_TOKENS, golden, sizeof golden);
        CHECK(st == VKLLM_OK && !strncmp(golden, GREEDY_STORY_START, strlen(GREEDY_STORY_START)),
              "story from the in-memory model: '%s' %s", golden, st == VKLLM_OK ? "" : vkllm_last_error());
        printf("from memory: %s\n", golden);
    }
    vkllm_model_free(m);
    free(image);

    CHECK(vkllm_model_load_from_memory(NULL, 10, NULL, &m) == VKLLM_ERR_INVALID_ARGUMENT && !m, "NULL data");
    if (!copy)
        return;
    /* Corrupted images: each is an exact-size heap copy, so ASan sees any read past its end. */
    test_rng rng;
    rng_init(&rng, test_seed());
    size_t meta = size < 16384 ? size : 16384;   /* the header, keys and tensor infos are at the start */
    int loaded = 0, refused = 0;
    for (int i = 0; i < 48; i++) {
        size_t n = i < 24 ? (size_t)((double)size * i / 24.0) + (i & 1) * 7 : size;
        char *bad = malloc(n ? n : 1);
        if (!bad)
            break;
        memcpy(bad, copy, n);
        if (i >= 24)
            for (int k = 0; k < 4; k++)
                bad[rng_u32(&rng) % meta] ^= (char)(1u << (rng_u32(&rng) % 8));
        st = vkllm_model_load_from_memory(bad, n, NULL, &m);
        CHECK((st == VKLLM_OK) == (m != NULL), "case %d: status %d but model %p", i, st, (void *)m);
        CHECK(st != VKLLM_OK || i >= 24, "truncated to %zu of %zu bytes yet loaded", n, size);
        CHECK(st == VKLLM_OK || vkllm_last_error()[0], "case %d: an error without a message", i);
        if (st == VKLLM_OK)
            loaded++;
        else
            refused++;
        vkllm_model_free(m);
        m = NULL;
        free(bad);
    }
    printf("corrupted images: %d refused, %d loaded (changes the checks cannot see)\n", refused, loaded);
    free(copy);
}

typedef struct cancel_at {
    float at;
    int calls, calls_after_cancel;
    bool cancelled;
} cancel_at;

static bool cancel_progress(float fraction, void *user)
{
    cancel_at *c = user;
    c->calls++;
    if (c->cancelled)
        c->calls_after_cancel++;
    c->cancelled = fraction >= c->at;
    return !c->cancelled;
}

static void test_cancel(const char *path)
{
    cancel_at c = {.at = 0.5f};
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    mp.progress = cancel_progress;
    mp.progress_user = &c;
    vkllm_model *m = NULL;
    vkllm_status st = vkllm_model_load(path, &mp, &m);
    CHECK(st == VKLLM_ERR_CANCELLED && !m, "cancelled load: status %d (%s)", st, vkllm_last_error());
    CHECK(c.cancelled && c.calls > 1 && c.calls_after_cancel == 0, "progress: %d calls, %d after the cancel", c.calls,
          c.calls_after_cancel);
    printf("cancelled after %d progress calls: %s\n", c.calls, vkllm_last_error());
    vkllm_model_free(m);
    st = vkllm_model_load(path, NULL, &m);
    CHECK(st == VKLLM_OK, "load after a cancelled one: %s", vkllm_last_error());
    vkllm_model_free(m);
}

static void test_abort(const char *path)
{
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        CHECK(false, "load: %s", vkllm_last_error());
        return;
    }
    test_call_counter asked = {.true_at = 2};
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 64;
    cp.n_batch = 2;
    cp.abort = test_count_call;
    cp.abort_user = &asked;
    vkllm_context *c = NULL;
    int32_t *prompt = NULL, ids[N_TOKENS];
    size_t n = 0;
    const float *logits = NULL;
    const char *p = "Once upon a time";
    vkllm_status st = vkllm_context_create(m, &cp, &c);
    if (st == VKLLM_OK)
        st = vkllm_tokenize(m, p, strlen(p), true, false, &prompt, &n);
    CHECK(st == VKLLM_OK && n > 4, "context and prompt: %s", vkllm_last_error());
    if (st == VKLLM_OK && n > 4) {
        st = vkllm_decode(c, prompt, n, &logits);
        CHECK(st == VKLLM_ERR_CANCELLED && asked.calls == 2, "aborted decode: status %d, asked %u", st, asked.calls);
        CHECK(vkllm_context_position(c) == 4, "position %u after the abort, not 4", vkllm_context_position(c));
        /* The context goes on from there: the rest of the prompt, then the story. */
        st = vkllm_decode(c, prompt + 4, n - 4, &logits);
        CHECK(st == VKLLM_OK, "the rest of the prompt: %s", vkllm_last_error());
        memcpy(ids, prompt, n * sizeof *ids);
        while (st == VKLLM_OK && n < N_TOKENS) {
            ids[n] = test_argmax(logits, vkllm_model_n_vocab(m));
            st = vkllm_decode(c, &ids[n++], 1, &logits);
        }
        char *text = NULL;
        size_t len;
        if (st == VKLLM_OK)
            st = vkllm_detokenize(m, ids, n, &text, &len);
        CHECK(st == VKLLM_OK && text && !strcmp(text, golden), "after the abort: '%s', not '%s'", text ? text : "",
              golden);
        vkllm_free(text);
    }
    vkllm_free(prompt);
    vkllm_context_free(c);
    vkllm_model_free(m);
}

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    char model[1024];
    snprintf(model, sizeof model, "%s", path);
    test_from_memory(model);
    test_cancel(model);
    test_abort(model);
    return test_finish("load_memory");
}

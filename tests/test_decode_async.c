/* Non-blocking decoding and the frame budget (include/vkllm.h: vkllm_decode_submit/_poll/_wait,
 * max_gpu_us_per_submit), on a synthetic "tiny" model (Q8_0, seeded) and on stories260K when present:
 * - a prompt of 3 batches and greedy steps through submit + poll, and through submit + wait with a short
 *   timeout, give bit for bit the logits of vkllm_decode at every step (same batches, same graphs);
 * - misuse: poll/wait with nothing submitted is VKLLM_ERR_INVALID_ARGUMENT, a second submit, vkllm_decode,
 *   vkllm_decode_all or a truncate while one is in flight VKLLM_ERR_BUSY, a bad id or an overflowing prompt
 *   leaves nothing in flight; freeing a context with a decode in flight waits for it (ASan build);
 * - with a budget: the prompt goes in several chunks that grow past one token, and the greedy text matches
 *   vkllm_decode's; chunks whose measured GPU time (read after each poll that completes one) was over the
 *   budget are reported, not asserted (lavapipe's timestamps count preemption by other processes). The
 *   budget is 8 times the slowest single-token step measured first (at least 20 ms): lavapipe's times vary
 *   with the machine's load;
 * - with a budget of an eighth of the fastest token (tiny with 8 layers: a layer or two per submission, and
 *   still a split should the machine's load drop eightfold after the measurement): every token is split into
 *   submissions of layer groups (its longest submission shorter than its GPU time), and blocking, polled and waited
 *   decoding give bit for bit the logits of an unsplit context fed the same single tokens (the prompt goes
 *   one token at a time under that budget). Whether each submission kept within the budget is for
 *   examples/frame_loop.c's test (tests/embed/frame_loop.sh) to check on a larger model: on lavapipe a
 *   tiny model's layer takes less than the jitter of its timestamps;
 * - under that budget, the abort callback is asked once between every two layer groups of a token (no more:
 *   its count matches the submissions), and one answering true after a token's first group stops the
 *   blocking, polled and waited decode (and vkllm_decode_all) with VKLLM_ERR_CANCELLED, the position unchanged and nothing in
 *   flight; the same token decoded again, and the next, give the unsplit context's logits bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/api_internal.h"
#include "host/format/ggml_types.h"
#include "host/tools/synth.h"
#include "runtime/error.h"
#include "util.h"
#include "vkllm.h"

#define N_PROMPT 40
#define N_GEN 12
#define N_BATCH 16

/* A context with the frame budget and (ac not NULL) the abort callback counting into ac. */
static vkllm_context *new_context_abort(vkllm_model *m, uint32_t budget_us, test_call_counter *ac)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 128;
    cp.n_batch = N_BATCH;
    cp.max_gpu_us_per_submit = budget_us;
    cp.abort = ac ? test_count_call : NULL;
    cp.abort_user = ac;
    vkllm_context *c = NULL;
    vkllm_status st = vkllm_context_create(m, &cp, &c);
    CHECK(st == VKLLM_OK, "context: %s", vkllm_last_error());
    return c;
}

static vkllm_context *new_context(vkllm_model *m, uint32_t budget_us) { return new_context_abort(m, budget_us, NULL); }

enum mode { BLOCKING, POLL, WAIT, ALL };   /* ALL: vkllm_decode_all without logits (test_split_abort) */

static int over_budget;   /* prompt chunks measured over the budget */
static int split_steps;   /* single-token steps whose longest submission was shorter than the step */

/* Completes the decode in flight by polling (or waiting 1 ms at a time); chunk GPU times are checked
 * against budget_us (0: not checked) as each completes; *chunks counts the chunks. */
static vkllm_status finish(vkllm_context *c, enum mode mode, uint32_t budget_us, int *chunks, const float **logits)
{
    vkllm_status st;
    uint32_t pos = vkllm_context_position(c);
    for (;;) {
        st = mode == POLL ? vkllm_decode_poll(c, logits) : vkllm_decode_wait(c, 1000000, logits);
        if (vkllm_context_position(c) != pos) {   /* a poll completes at most one chunk */
            double us = vkllm_context_last_submit_gpu_us(c);
            if (budget_us && !(us > 0 && us <= budget_us)) {
                printf("chunk of %u tokens took %.0f us, budget %u us\n", vkllm_context_position(c) - pos, us, budget_us);
                over_budget++;
            }
            pos = vkllm_context_position(c);
            (*chunks)++;
        }
        if (st != VKLLM_NOT_READY)
            return st;
    }
}

/* Prompt then greedy steps; every step's logits into out ((1 + N_GEN) x n_vocab), the ids into ids. */
static void run(vkllm_model *m, enum mode mode, uint32_t budget_us, const int32_t *prompt, float *out, int32_t *ids,
                int *chunks)
{
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    vkllm_context *c = new_context(m, budget_us);
    const float *logits = NULL;
    vkllm_status st = c ? VKLLM_OK : VKLLM_ERR_INVALID_ARGUMENT;
    *chunks = 0;
    for (int step = 0; st == VKLLM_OK && step <= N_GEN; step++) {
        const int32_t *t = step ? &ids[step - 1] : prompt;
        size_t n = step ? 1 : N_PROMPT;
        if (mode == BLOCKING) {
            st = vkllm_decode(c, t, n, &logits);
            (*chunks)++;
        } else {
            st = vkllm_decode_submit(c, t, n);
            if (st == VKLLM_OK)
                st = finish(c, mode, step ? 0 : budget_us, chunks, &logits);
        }
        CHECK(st == VKLLM_OK && logits, "mode %d step %d: %s", (int)mode, step, vkllm_last_error());
        if (st != VKLLM_OK || !logits)
            break;
        memcpy(out + (size_t)step * n_vocab, logits, n_vocab * sizeof *logits);
        ids[step] = test_argmax(logits, n_vocab);
        if (budget_us && step)
            split_steps += vkllm_context_last_submit_gpu_us(c) * 1e3 < vkllm_context_last_gpu_ns(c);
    }
    if (budget_us)   /* the single-token steps included: not bound by the budget */
        printf("longest submission %.0f us\n", vkllm_context_max_submit_gpu_us(c));
    vkllm_context_free(c);
}

static void test_same_logits(vkllm_model *m, const int32_t *prompt, const char *name)
{
    size_t n = (size_t)(1 + N_GEN) * vkllm_model_n_vocab(m);
    float *ref = calloc(n, sizeof *ref), *got = calloc(n, sizeof *got);
    int32_t ref_ids[N_GEN + 1], got_ids[N_GEN + 1];
    int chunks;
    if (!ref || !got) {
        CHECK(false, "out of memory");
        free(ref);
        free(got);
        return;
    }
    run(m, BLOCKING, 0, prompt, ref, ref_ids, &chunks);
    for (int mode = POLL; mode <= WAIT; mode++) {
        memset(got, 0xA5, n * sizeof *got);
        run(m, (enum mode)mode, 0, prompt, got, got_ids, &chunks);
        CHECK(!memcmp(ref, got, n * sizeof *got), "%s: %s logits differ from vkllm_decode's", name,
              mode == POLL ? "polled" : "waited");
        CHECK(mode == WAIT || chunks == 3 + N_GEN, "%s: %d submissions, not %d", name, chunks, 3 + N_GEN);
    }
    free(ref);
    free(got);
}

static void test_misuse(vkllm_model *m, const int32_t *prompt)
{
    vkllm_context *c = new_context(m, 0);
    if (!c)
        return;
    const float *logits = NULL;
    CHECK(vkllm_decode_poll(c, &logits) == VKLLM_ERR_INVALID_ARGUMENT, "poll with nothing submitted");
    CHECK(vkllm_decode_wait(c, 0, &logits) == VKLLM_ERR_INVALID_ARGUMENT, "wait with nothing submitted");
    int32_t bad[2] = {prompt[0], -3};
    CHECK(vkllm_decode_submit(c, bad, 2) == VKLLM_ERR_INVALID_ARGUMENT, "bad id submitted");
    CHECK(vkllm_decode_submit(c, prompt, 129) == VKLLM_ERR_CONTEXT_FULL, "prompt longer than the context");
    CHECK(vkllm_decode_submit(c, prompt, 0) == VKLLM_ERR_INVALID_ARGUMENT, "no tokens submitted");
    CHECK(vkllm_decode_poll(c, &logits) == VKLLM_ERR_INVALID_ARGUMENT, "poll after refused submits");
    CHECK(vkllm_decode_submit(c, prompt, N_PROMPT) == VKLLM_OK, "submit: %s", vkllm_last_error());
    float all[4];
    CHECK(vkllm_decode_submit(c, prompt, 1) == VKLLM_ERR_BUSY, "second submit in flight");
    CHECK(vkllm_decode(c, prompt, 1, &logits) == VKLLM_ERR_BUSY, "vkllm_decode in flight");
    CHECK(vkllm_decode_all(c, prompt, 1, all) == VKLLM_ERR_BUSY, "vkllm_decode_all in flight");
    CHECK(vkllm_context_truncate(c, 0) == VKLLM_ERR_BUSY, "truncate in flight");
    CHECK(strstr(vkllm_last_error(), "in flight") != NULL, "message: %s", vkllm_last_error());
    CHECK(vkllm_decode_wait(c, UINT64_MAX, &logits) == VKLLM_OK && logits, "wait: %s", vkllm_last_error());
    CHECK(vkllm_context_position(c) == N_PROMPT, "position %u", vkllm_context_position(c));
    CHECK(vkllm_decode_poll(c, &logits) == VKLLM_ERR_INVALID_ARGUMENT, "poll after completion");
    /* freed with a decode in flight */
    CHECK(vkllm_decode_submit(c, prompt, N_PROMPT) == VKLLM_OK, "submit: %s", vkllm_last_error());
    vkllm_context_free(c);
}

/* The slowest (or fastest) of a few single-token steps, in microseconds, after a first one (lavapipe
 * compiles a pipeline at its first dispatch, inside the measured time). */
static double single_token_us(vkllm_model *m, const int32_t *prompt, bool fastest)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 128;
    vkllm_context *c = NULL;
    double worst = 0;
    if (vkllm_context_create(m, &cp, &c) != VKLLM_OK)
        return 0;
    vkllm_context_set_timing(c, true);
    for (int i = 0; i < 8; i++) {
        const float *logits;
        if (vkllm_decode(c, &prompt[i], 1, &logits) != VKLLM_OK)
            break;
        double us = vkllm_context_last_gpu_ns(c) / 1e3;
        if (i == 1 || (i > 1 && (fastest ? us < worst : us > worst)))
            worst = us;
    }
    vkllm_context_free(c);
    return worst;
}

static void test_budget(vkllm_model *m, const int32_t *prompt, const char *name)
{
    double one = single_token_us(m, prompt, false);
    uint32_t budget = (uint32_t)fmax(20000.0, 8 * one);
    size_t n = (size_t)(1 + N_GEN) * vkllm_model_n_vocab(m);
    float *ref = calloc(n, sizeof *ref), *got = calloc(n, sizeof *got);
    int32_t ref_ids[N_GEN + 1], got_ids[N_GEN + 1];
    int chunks = 0;
    if (ref && got) {
        run(m, BLOCKING, 0, prompt, ref, ref_ids, &chunks);
        /* Chunks measured over the budget are reported, not asserted: lavapipe's timestamps count the time
         * the OS preempted its threads, so on a busy machine any chunk can overrun (two tries were not enough
         * under a load of 15). What is asserted is timing-free: the prompt went in several chunks with the
         * same tokens and logits. */
        over_budget = 0;
        run(m, POLL, budget, prompt, got, got_ids, &chunks);
        if (over_budget)
            printf("%s: %d prompt chunks measured over the budget of %u us (reported, not asserted)\n", name,
                   over_budget, budget);
        chunks -= N_GEN;
        printf("%s: one token %.0f us, budget %u us: the %d-token prompt in %d chunks\n", name, one, budget, N_PROMPT,
               chunks);
        CHECK(chunks > 1 && chunks < N_PROMPT, "%s: %d chunks: the chunk size did not adapt", name, chunks);
        CHECK(!memcmp(ref_ids, got_ids, sizeof ref_ids), "%s: greedy tokens differ with the budget", name);
        CHECK(rel_l2(got, ref, n) < 1e-3, "%s: logits differ with the budget by %g", name, rel_l2(got, ref, n));
    }
    free(ref);
    free(got);
}

/* Greedy decoding in a context without a budget, the prompt one token at a time: the logits of its last
 * token and of every step into out, the ids into ids. */
static void run_token_by_token(vkllm_model *m, const int32_t *prompt, float *out, int32_t *ids)
{
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    vkllm_context *c = new_context(m, 0);
    const float *logits = NULL;
    vkllm_status st = c ? VKLLM_OK : VKLLM_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < N_PROMPT + N_GEN && st == VKLLM_OK; i++) {
        int step = i - N_PROMPT + 1;
        st = vkllm_decode(c, step > 0 ? &ids[step - 1] : &prompt[i], 1, &logits);
        if (st == VKLLM_OK && step >= 0) {
            memcpy(out + (size_t)step * n_vocab, logits, n_vocab * sizeof *logits);
            ids[step] = test_argmax(logits, n_vocab);
        }
    }
    CHECK(st == VKLLM_OK, "token by token: %s", vkllm_last_error());
    vkllm_context_free(c);
}

/* Decodes one token by `mode`, the callback stopping it at its call abort_at (0: never); the submissions of
 * its split graph into *submits. */
static vkllm_status decode_counted(vkllm_context *c, enum mode mode, int32_t token, test_call_counter *ac,
                                   uint32_t abort_at, uint32_t *submits, const float **logits)
{
    *ac = (test_call_counter){.true_at = abort_at};
    vkllm_status st;
    int chunks = 0;
    if (mode == BLOCKING)
        st = vkllm_decode(c, &token, 1, logits);
    else if (mode == ALL) {   /* one token without logits: the (split) decode graph; its logits read where it wrote */
        st = vkllm_decode_all(c, &token, 1, NULL);
        *logits = vkl_llama_context_logits(vkl_api_context_llama(c));
    } else if ((st = vkllm_decode_submit(c, &token, 1)) == VKLLM_OK)
        st = finish(c, mode, 0, &chunks, logits);
    *submits = vkr_graph_run_submits(vkl_llama_context_decode_graph(vkl_api_context_llama(c)));
    return st;
}

/* Under the budget that splits every token: the last prompt token aborted after its first layer group, then
 * decoded again and followed by the first greedy token, against ref (run_token_by_token's rows 0 and 1). */
static void test_split_abort(vkllm_model *m, const int32_t *prompt, uint32_t budget, const float *ref,
                             const int32_t *ref_ids, const char *name)
{
    const uint32_t n_vocab = vkllm_model_n_vocab(m);
    for (int mode = BLOCKING; mode <= ALL; mode++) {
        test_call_counter ac = {0};
        vkllm_context *c = new_context_abort(m, budget, &ac);
        if (!c)
            return;
        const float *logits = NULL;
        vkllm_status st = vkllm_decode(c, prompt, N_PROMPT - 1, &logits);
        CHECK(st == VKLLM_OK, "%s: prompt: %s", name, vkllm_last_error());
        uint32_t submits = 0;
        st = decode_counted(c, (enum mode)mode, prompt[N_PROMPT - 1], &ac, 1, &submits, &logits);
        CHECK(st == VKLLM_ERR_CANCELLED, "%s: mode %d: aborted after the first group: %s", name, mode,
              st ? vkllm_last_error() : "not cancelled");
        CHECK(ac.calls == 1 && submits == 1, "%s: mode %d: abort asked %u times, %u submissions", name, mode, ac.calls,
              submits);
        CHECK(vkllm_context_position(c) == N_PROMPT - 1, "%s: mode %d: position %u after the abort", name, mode,
              vkllm_context_position(c));
        CHECK(vkllm_decode_poll(c, &logits) == VKLLM_ERR_INVALID_ARGUMENT, "%s: mode %d: in flight after the abort",
              name, mode);
        for (int step = 0; step < 2; step++) {
            int32_t token = step ? ref_ids[0] : prompt[N_PROMPT - 1];
            st = decode_counted(c, (enum mode)mode, token, &ac, 0, &submits, &logits);
            CHECK(st == VKLLM_OK && logits, "%s: mode %d: after the abort, step %d: %s", name, mode, step,
                  vkllm_last_error());
            if (st != VKLLM_OK || !logits)
                break;
            CHECK(!memcmp(logits, ref + (size_t)step * n_vocab, n_vocab * sizeof *logits),
                  "%s: mode %d: step %d's logits after the abort differ from the unsplit ones", name, mode, step);
            CHECK(submits > 1 && ac.calls == submits - 1, "%s: mode %d: abort asked %u times for %u layer groups", name,
                  mode, ac.calls, submits);
        }
        vkllm_context_free(c);
    }
}

static void test_split(vkllm_model *m, const int32_t *prompt, const char *name)
{
    double one = single_token_us(m, prompt, true);
    uint32_t budget = (uint32_t)(one / 8);
    size_t n = (size_t)(1 + N_GEN) * vkllm_model_n_vocab(m);
    float *ref = calloc(n, sizeof *ref), *got = calloc(n, sizeof *got);
    int32_t ref_ids[N_GEN + 1], got_ids[N_GEN + 1];
    int chunks;
    if (ref && got && budget > 0) {
        run_token_by_token(m, prompt, ref, ref_ids);
        for (int mode = BLOCKING; mode <= WAIT; mode++) {
            memset(got, 0xA5, n * sizeof *got);
            split_steps = 0;
            run(m, (enum mode)mode, budget, prompt, got, got_ids, &chunks);
            CHECK(!memcmp(ref, got, n * sizeof *got), "%s: split (mode %d): logits differ from the unsplit ones", name,
                  mode);
            CHECK(split_steps == N_GEN, "%s: mode %d: %d of %d tokens split under a budget of 1/8 token", name,
                  mode, split_steps, N_GEN);
        }
        test_split_abort(m, prompt, budget, ref, ref_ids, name);
        printf("%s: one token %.0f us, budget %u us: split\n", name, one, budget);
    } else
        CHECK(false, "%s: out of memory or no token time (%.0f us)", name, one);
    free(ref);
    free(got);
}

static void test_model(const char *path, const char *name)
{
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        CHECK(false, "load %s: %s", path, vkllm_last_error());
        return;
    }
    int32_t prompt[129];
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    for (int i = 0; i < 129; i++)   /* seeded ids past the first few (control tokens) */
        prompt[i] = (int32_t)(3 + (uint32_t)(i * 2654435761u) % (n_vocab - 3));
    test_same_logits(m, prompt, name);
    test_misuse(m, prompt);
    test_budget(m, prompt, name);
    vkllm_model_free(m);
}

int main(void)
{
    char synth_path[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(synth_path, sizeof synth_path, "%s/decode-async-tiny-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q8_0, .path = synth_path, .seed = 11};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    if (st == VKLLM_OK)
        test_model(synth_path, "tiny");
    /* 8 layers, so that half a token's time holds several */
    synth_hparams deep = *vkl_synth_preset("tiny");
    deep.n_layer = 8;
    o.hp = &deep;
    st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    vkllm_model *m = NULL;
    if (st == VKLLM_OK && vkllm_model_load(synth_path, NULL, &m) == VKLLM_OK) {
        int32_t prompt[N_PROMPT];
        for (int i = 0; i < N_PROMPT; i++)
            prompt[i] = (int32_t)(3 + (uint32_t)(i * 2654435761u) % (vkllm_model_n_vocab(m) - 3));
        test_split(m, prompt, "tiny, 8 layers");
    } else
        CHECK(false, "load: %s", vkllm_last_error());
    vkllm_model_free(m);
    remove(synth_path);
    const char *stories = test_shared_path("models/stories260K.gguf");
    if (stories) {
        char path[1024];
        snprintf(path, sizeof path, "%s", stories);
        test_model(path, "stories260K");
    } else
        printf("stories260K not found: only the synthetic model\n");
    return test_finish("decode_async");
}

/* Several sequences in one context (include/vkllm.h: vkllm_decode_batch, vkllm_seq_*), on synthetic tiny models
 * (Llama Q8_0, Qwen2 with its bias/NeoX kernel) and stories260K when present, each on both kernel paths (the
 * CPU-device kernels, and the GPU kernels via VKLLM_DEBUG_AS_GPU=1: fused matvecs, tiled attention):
 * - batches mixing sequences (prompt chunks next to single decode tokens, interleaved, one batch over n_batch)
 *   give every token the logits of running its sequence alone in a one-sequence context (relative L2 <= TOL:
 *   the same kernels, but other column counts take other matmul paths and summation orders);
 * - on sliding-window models (gemma2, gemma3) the same with sequences longer than the window: every sequence
 *   keeps a ring of window + n_batch - 1 rows in the window layers (the K/V bytes of N_SEQ sequences are
 *   N_SEQ times one sequence's, less than full caches), one sequence alone too, which takes batches in order
 *   (check_ring); sequences at very different positions (one past several windows and its ring's wrap, one
 *   new) next to each other, vkllm_seq_rm and vkllm_seq_cp of rings (a tail within a batch and the live
 *   range; further back refused) and a saved state of sequence 0 loaded into a context of one sequence and
 *   into one of N_SEQ (check_far);
 * - vkllm_seq_cp of a prompt and continuing equals recomputing the whole sequence, the source left intact;
 *   vkllm_seq_rm of a tail and decoding other tokens equals a fresh sequence of those tokens;
 * - vkllm_seq_rm of a middle range (A B C D E less [1, 3)) keeps the other positions: on a one-layer model,
 *   whose K/V rows depend only on their own token and position, the next tokens' logits equal bit for bit
 *   those of a sequence that got A, D, E at positions 0, 3, 4 (a batch may leave a gap); a tail overwritten
 *   after the gap, a range copied with vkllm_seq_cp and a removal whose rows overlap their new place too;
 *   on every model the logits after the removal match the CPU reference forward pass with the same
 *   positions removed (ref_llama_remove; relative L2 <= REF_TOL, the forward tests' tolerance);
 * - bad arguments are refused with an error code and the context's positions unchanged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/api_internal.h"
#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/tools/synth.h"
#include "ref/ref_llama.h"
#include "runtime/error.h"
#include "util.h"
#include "vkllm.h"

#define TOL 2e-3
#define REF_TOL 1e-3   /* against the CPU reference, as test_forward_synth */
#define N_SEQ 4
#define N_CTX 48
#define N_BATCH 16
#define SEQ_LEN 24   /* tokens of each test sequence */
#define LONG_LEN (N_CTX - 2)   /* tokens of the long sequences of check_far */
#define N_IDS (N_SEQ + 6)

typedef struct model_case {
    vkllm_model *m;
    uint32_t n_vocab;
    /* seeded token ids of the sequences, three for cp/rm, and three LONG_LEN long (sliding-window models) */
    int32_t ids[N_IDS][LONG_LEN];
    float *ref[N_IDS];                 /* each sequence alone: SEQ_LEN (LONG_LEN) x n_vocab logits */
    const char *name;
    const char *path;                  /* its file, for the CPU reference */
} model_case;

static vkllm_context *new_context(vkllm_model *m, uint32_t n_seq)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = N_CTX;
    cp.n_batch = N_BATCH;
    cp.n_seq = n_seq;
    vkllm_context *c = NULL;
    CHECK(vkllm_context_create(m, &cp, &c) == VKLLM_OK, "context of %u sequences: %s", n_seq, vkllm_last_error());
    return c;
}

/* Every position's logits of ids[0..n) run alone. */
static float *run_alone(model_case *mc, const int32_t *ids, uint32_t n)
{
    vkllm_context *c = new_context(mc->m, 1);
    float *out = calloc((size_t)n * mc->n_vocab, sizeof *out);
    if (!c || !out || vkllm_decode_all(c, ids, n, out) != VKLLM_OK) {
        CHECK(false, "%s: reference: %s", mc->name, vkllm_last_error());
        free(out);
        out = NULL;
    }
    vkllm_context_free(c);
    return out;
}

/* One batch: token i is sequence seq[i]'s token at position pos[i] (from mc->ids[seq[i]]), logits wanted for
 * every token, or with sparse for every third; each compared with ref (the rows of sequence ref_seq[i], or
 * seq[i] when ref_seq is NULL). */
static void batch_step_sparse(model_case *mc, vkllm_context *c, uint32_t n, const int32_t *seq, const int32_t *pos,
                              const int32_t *ref_seq, bool sparse, const char *what)
{
    int32_t tok[64];
    int8_t want[64];
    for (uint32_t i = 0; i < n; i++) {
        const int32_t rs = ref_seq ? ref_seq[i] : seq[i];
        tok[i] = mc->ids[rs][pos[i]];
        want[i] = !sparse || i % 3 == 1;
    }
    vkllm_batch b = {n, tok, pos, seq, want};
    vkllm_status st = vkllm_decode_batch(c, &b);
    CHECK(st == VKLLM_OK, "%s: %s: %s", mc->name, what, vkllm_last_error());
    if (st != VKLLM_OK)
        return;
    double worst = 0;
    for (uint32_t i = 0; i < n; i++) {
        const int32_t rs = ref_seq ? ref_seq[i] : seq[i];
        const float *got = vkllm_get_logits_ith(c, (int32_t)i);
        if (!want[i]) {
            CHECK(got == NULL, "%s: %s: token %u has logits it did not ask for", mc->name, what, i);
            continue;
        }
        CHECK(got != NULL, "%s: %s: token %u has no logits: %s", mc->name, what, i, vkllm_last_error());
        if (!got || !mc->ref[rs])
            continue;
        double e = rel_l2(got, mc->ref[rs] + (size_t)pos[i] * mc->n_vocab, mc->n_vocab);
        CHECK(e <= TOL, "%s: %s: token %u (sequence %d position %d): relative L2 %.3g > %g", mc->name, what, i, seq[i],
              pos[i], e, TOL);
        worst = e > worst ? e : worst;
    }
    printf("%s: %s: %u tokens, worst relative L2 %.2e\n", mc->name, what, n, worst);
}

static void batch_step(model_case *mc, vkllm_context *c, uint32_t n, const int32_t *seq, const int32_t *pos,
                       const int32_t *ref_seq, const char *what)
{
    batch_step_sparse(mc, c, n, seq, pos, ref_seq, false, what);
}

/* Sequences 0..3: prompts of 13, 5, 9 and 1 tokens in chunks next to each other, then decode steps of one
 * token per sequence in shuffled order, then a batch of 20 (over n_batch: two submissions). */
static void check_mixed(model_case *mc)
{
    vkllm_context *c = new_context(mc->m, N_SEQ);
    if (!c)
        return;
    int32_t seq[64], pos[64];
    uint32_t n = 0;
    /* step 1: sequence 0 tokens 0..7, sequence 1 all 5, sequence 2 tokens 0..2 */
    for (int p = 0; p < 8; p++, n++)
        seq[n] = 0, pos[n] = p;
    for (int p = 0; p < 5; p++, n++)
        seq[n] = 1, pos[n] = p;
    for (int p = 0; p < 3; p++, n++)
        seq[n] = 2, pos[n] = p;
    batch_step(mc, c, n, seq, pos, NULL, "prompt chunks");
    /* step 2: sequence 2 tokens 3..8 first, then sequence 0 tokens 8..12, sequence 3 token 0, sequence 1 token 5 */
    n = 0;
    for (int p = 3; p < 9; p++, n++)
        seq[n] = 2, pos[n] = p;
    for (int p = 8; p < 13; p++, n++)
        seq[n] = 0, pos[n] = p;
    seq[n] = 3, pos[n++] = 0;
    seq[n] = 1, pos[n++] = 5;
    batch_step_sparse(mc, c, n, seq, pos, NULL, true, "chunks next to a decode token, every third token's logits");
    CHECK(vkllm_seq_pos(c, 0) == 13 && vkllm_seq_pos(c, 1) == 6 && vkllm_seq_pos(c, 2) == 9 &&
          vkllm_seq_pos(c, 3) == 1, "positions %u %u %u %u", vkllm_seq_pos(c, 0), vkllm_seq_pos(c, 1),
          vkllm_seq_pos(c, 2), vkllm_seq_pos(c, 3));
    /* three decode steps, one token of each sequence, in shuffled order */
    static const int32_t order[3][N_SEQ] = {{3, 1, 0, 2}, {0, 1, 2, 3}, {2, 3, 1, 0}};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N_SEQ; i++) {
            seq[i] = order[s][i];
            pos[i] = (int32_t)vkllm_seq_pos(c, order[s][i]);
        }
        batch_step(mc, c, N_SEQ, seq, pos, NULL, "decode step");
    }
    /* 20 tokens: sequence 3 up to 14 and sequence 1 up to 19 */
    n = 0;
    for (int32_t p = (int32_t)vkllm_seq_pos(c, 3); p < 14; p++, n++)
        seq[n] = 3, pos[n] = p;
    for (int32_t p = (int32_t)vkllm_seq_pos(c, 1); p < 19; p++, n++)
        seq[n] = 1, pos[n] = p;
    CHECK(n == 20, "batch of %u", n);
    batch_step(mc, c, n, seq, pos, NULL, "a batch over n_batch");
    vkllm_context_free(c);
}

/* Sequence 0 holds P, the first 10 tokens of ids[4] (ids[5] and ids[6] share them); copied to sequences 1 and 3,
 * which continue as ids[4] and ids[5] while sequence 0 continues too; then sequence 3 loses its tail from 6 and
 * continues as ids[6], which differs from there. */
static void check_cp_rm(model_case *mc)
{
    vkllm_context *c = new_context(mc->m, N_SEQ);
    if (!c)
        return;
    int32_t seq[16], pos[16], ref[16];
    for (int p = 0; p < 10; p++)
        seq[p] = 0, pos[p] = p, ref[p] = 4;
    batch_step(mc, c, 10, seq, pos, ref, "shared prompt");
    CHECK(vkllm_seq_cp(c, 0, 1, 0, -1) == VKLLM_OK && vkllm_seq_cp(c, 0, 3, -1, 10) == VKLLM_OK, "seq_cp: %s",
          vkllm_last_error());
    CHECK(vkllm_seq_pos(c, 1) == 10 && vkllm_seq_pos(c, 3) == 10, "positions after seq_cp");
    uint32_t n = 0;
    for (int p = 10; p < 14; p++, n++)
        seq[n] = 1, pos[n] = p, ref[n] = 4;
    for (int p = 10; p < 13; p++, n++)
        seq[n] = 3, pos[n] = p, ref[n] = 5;
    seq[n] = 0, pos[n] = 10, ref[n++] = 4;
    batch_step(mc, c, n, seq, pos, ref, "continuing copies");
    CHECK(vkllm_seq_rm(c, 3, 6, -1) == VKLLM_OK && vkllm_seq_pos(c, 3) == 6, "seq_rm: %s", vkllm_last_error());
    n = 0;
    for (int p = 6; p < 12; p++, n++)
        seq[n] = 3, pos[n] = p, ref[n] = 6;
    batch_step(mc, c, n, seq, pos, ref, "after seq_rm of a tail");
    /* one token alone: the prerecorded one-token graph, reading its sequence's rows */
    seq[0] = 1, pos[0] = 14, ref[0] = 4;
    batch_step(mc, c, 1, seq, pos, ref, "one token of sequence 1");
    vkllm_context_free(c);
}

/* One token of sequence s at position p, its logits into out (n_vocab floats). */
static bool decode_one(model_case *mc, vkllm_context *c, int32_t s, int32_t p, int32_t token, float *out)
{
    vkllm_batch b = {1, &token, &p, &s, NULL};
    vkllm_status st = vkllm_decode_batch(c, &b);
    CHECK(st == VKLLM_OK, "%s: token at %d of sequence %d: %s", mc->name, p, s, vkllm_last_error());
    const float *l = st == VKLLM_OK ? vkllm_get_logits_ith(c, 0) : NULL;
    if (l)
        memcpy(out, l, mc->n_vocab * sizeof *out);
    return l != NULL;
}

/* Token tok[i] of sequence s at position at[i] for i < n, one at a time (the same one-token graph as the other
 * path: bit-exact comparisons); the last token's logits into out. */
static bool decode_each(model_case *mc, vkllm_context *c, int32_t s, const int32_t *at, const int32_t *tok, int n,
                        float *out)
{
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        ok = decode_one(mc, c, s, at[i], tok[i], out);
    return ok;
}

/* Largest |a - b| over the logits (0: identical); NAN anywhere gives NAN. */
static double max_diff(const float *a, const float *b, uint32_t n)
{
    double worst = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

/* The CPU reference of A B C D E (ids) less positions [r0, r1), then F and G: their logits into fg (2 x nv). */
static bool ref_rm_middle(const model_case *mc, const int32_t *ids, int32_t r0, int32_t r1, float *fg)
{
    gguf_file *f = NULL;
    ref_llama *ref = NULL;
    float *five = malloc((size_t)5 * mc->n_vocab * sizeof *five);
    bool ok = five && vkl_gguf_open(mc->path, &f) == VKLLM_OK && ref_llama_load(f, &ref) == VKLLM_OK;
    if (ok)
        ref_llama_set_n_ctx(ref, N_CTX);
    ok = ok && ref_llama_forward(ref, ids, 5, 0, five) == VKLLM_OK &&
         ref_llama_remove(ref, (uint32_t)r0, (uint32_t)r1) == VKLLM_OK &&
         ref_llama_forward(ref, ids + 5, 2, 5, fg) == VKLLM_OK;
    CHECK(ok, "%s: CPU reference: %s", mc->name, vkr_last_error());
    ref_llama_free(ref);
    vkl_gguf_close(f);
    free(five);
    return ok;
}

/* Sequence 1 gets A B C D E (ids[6]), loses [r0, r1), and continues with F G; sequence 2 gets the same
 * positions' tokens with the gap from the start. exact: a one-layer model, where both must agree bit for
 * bit (with more layers, D's and E's rows remember B and C: they differ). Sequence 1's F and G are compared
 * with the CPU reference of the same removal on every model. Then E is overwritten after the gap, and the kept part of sequence 1 from position r1 on is
 * copied to sequence 3, compared with sequence 0 getting those positions alone. */
static void check_rm_middle(model_case *mc, int32_t r0, int32_t r1, bool exact)
{
    vkllm_context *c = new_context(mc->m, N_SEQ);
    const uint32_t nv = mc->n_vocab;
    float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b), *ref = malloc(2 * nv * sizeof *ref);
    const int32_t *ids = mc->ids[6];
    if (!c || !a || !b || !ref || !ref_rm_middle(mc, ids, r0, r1, ref)) {
        CHECK(false, "%s: setup", mc->name);
        free(a), free(b), free(ref), vkllm_context_free(c);
        return;
    }
    int32_t all[5] = {0, 1, 2, 3, 4}, kept[5], kept_tok[5], n_kept = 0;
    for (int32_t p = 0; p < 5; p++)
        if (p < r0 || p >= r1)
            kept[n_kept] = p, kept_tok[n_kept++] = ids[p];
    char what[64];
    snprintf(what, sizeof what, "seq_rm [%d, %d) of 5", r0, r1);
    bool ok = decode_each(mc, c, 1, all, ids, 5, a);
    ok = ok && vkllm_seq_rm(c, 1, r0, r1) == VKLLM_OK;
    CHECK(ok && vkllm_seq_pos(c, 1) == 5, "%s: %s: %s (next position %u)", mc->name, what, vkllm_last_error(),
          vkllm_seq_pos(c, 1));
    ok = ok && decode_each(mc, c, 2, kept, kept_tok, n_kept, b);
    for (int32_t p = 5; p < 7 && ok; p++) {   /* F and G after the gap */
        ok = decode_one(mc, c, 1, p, ids[p], a) && decode_one(mc, c, 2, p, ids[p], b);
        const double d = ok ? max_diff(a, b, nv) : NAN, e = ok ? rel_l2(a, ref + (size_t)(p - 5) * nv, nv) : NAN;
        CHECK(ok && (exact ? d == 0 : d == d), "%s: %s: token at %d: max |diff| %.3g from the reference", mc->name,
              what, p, d);
        CHECK(e <= REF_TOL, "%s: %s: token at %d: relative L2 %.3g from the CPU reference", mc->name, what, p, e);
        printf("%s: %s, token at %d: relative L2 %.2e from the CPU reference; max |diff| %.3g from A..E less the "
               "range decoded with the gap%s\n", mc->name, what, p, e, d, exact ? "" : " (not compared: several layers)");
    }
    CHECK(vkllm_seq_pos(c, 1) == 7 && vkllm_seq_pos(c, 2) == 7, "%s: %s: next positions %u %u", mc->name, what,
          vkllm_seq_pos(c, 1), vkllm_seq_pos(c, 2));
    /* E again at 4 (the tail overwritten after the gap), in both */
    if (ok && decode_one(mc, c, 1, 4, ids[4], a) && decode_one(mc, c, 2, 4, ids[4], b))
        CHECK(!exact || max_diff(a, b, nv) == 0, "%s: %s: E overwritten: max |diff| %.3g", mc->name, what,
              max_diff(a, b, nv));
    CHECK(vkllm_seq_pos(c, 1) == 5, "%s: %s: after overwriting E, next position %u", mc->name, what,
          vkllm_seq_pos(c, 1));
    /* positions r1 .. 4 of sequence 1 copied to sequence 3, which continues at 5 as sequence 0 does with only
     * those positions (a gap from 0) */
    ok = ok && vkllm_seq_cp(c, 1, 3, r1, -1) == VKLLM_OK;
    CHECK(ok && vkllm_seq_pos(c, 3) == 5, "%s: seq_cp [%d, end): %s (next position %u)", mc->name, r1,
          vkllm_last_error(), vkllm_seq_pos(c, 3));
    ok = ok && decode_each(mc, c, 0, kept + r0, kept_tok + r0, n_kept - r0, b) && decode_one(mc, c, 3, 5, ids[5], a) &&
         decode_one(mc, c, 0, 5, ids[5], b);
    if (ok)
        CHECK(!exact || max_diff(a, b, nv) == 0, "%s: seq_cp [%d, end): max |diff| %.3g", mc->name, r1,
              max_diff(a, b, nv));
    /* sequence 0 now starts at r1: the calls that put position p in row p refuse it */
    size_t bytes;
    CHECK(vkllm_decode(c, ids, 1, NULL) == VKLLM_ERR_UNSUPPORTED && vkllm_state_size(c, &bytes) == VKLLM_ERR_UNSUPPORTED,
          "%s: vkllm_decode or vkllm_state_size of sequence 0 with a gap", mc->name);
    CHECK(vkllm_context_truncate(c, 4) == VKLLM_OK && vkllm_seq_pos(c, 0) == 4, "%s: truncate after a gap: %u",
          mc->name, vkllm_seq_pos(c, 0));
    free(a);
    free(b);
    free(ref);
    vkllm_context_free(c);
}

/* A sliding-window model's one-sequence context keeps a ring (window 8 + 16 - 1 < N_CTX): vkllm_decode_batch
 * takes its tokens in order, vkllm_seq_rm refuses to cut back past what the ring still holds, and its state
 * saved after batches loads into another ring context that continues from it. */
static void check_ring(model_case *mc)
{
    vkllm_context *c = new_context(mc->m, 1);
    if (!c)
        return;
    int32_t seq[SEQ_LEN] = {0}, pos[SEQ_LEN];
    for (int p = 0; p < SEQ_LEN; p++)
        pos[p] = p;
    batch_step(mc, c, N_BATCH, seq, pos, NULL, "ring: a prompt chunk");
    batch_step(mc, c, SEQ_LEN - N_BATCH, seq, pos + N_BATCH, NULL, "ring: the next chunk, past the window");
    int32_t gap[2] = {SEQ_LEN, SEQ_LEN + 2}, tok[2] = {5, 5};
    vkllm_batch b = {2, tok, gap, seq, NULL};
    CHECK(vkllm_decode_batch(c, &b) == VKLLM_ERR_INVALID_ARGUMENT, "ring: positions with a gap");
    CHECK(vkllm_seq_rm(c, 0, 2, -1) == VKLLM_ERR_UNSUPPORTED && vkllm_seq_pos(c, 0) == SEQ_LEN,
          "ring: seq_rm back past the ring's reach");
    printf("ring: %s\n", vkllm_last_error());
    /* The state saved after batches loads into another ring context, which continues from it. */
    size_t size = 0, written = 0;
    void *state = NULL;
    vkllm_context *c2 = new_context(mc->m, 1);
    CHECK(vkllm_state_size(c, &size) == VKLLM_OK && (state = malloc(size)) &&
          vkllm_state_save(c, state, size, &written) == VKLLM_OK && c2 &&
          vkllm_state_load(c2, state, written) == VKLLM_OK && vkllm_seq_pos(c2, 0) == SEQ_LEN,
          "ring: state after batches: %s", vkllm_last_error());
    if (c2 && vkllm_seq_pos(c2, 0) == SEQ_LEN) {
        CHECK(vkllm_seq_rm(c2, 0, SEQ_LEN - 4, -1) == VKLLM_OK, "ring: seq_rm after a load: %s", vkllm_last_error());
        batch_step(mc, c2, 4, seq, pos + SEQ_LEN - 4, NULL, "ring: the tail again after a state load");
    }
    free(state);
    vkllm_context_free(c2);
    CHECK(vkllm_seq_rm(c, 0, SEQ_LEN - 4, -1) == VKLLM_OK, "ring: seq_rm of a short tail: %s", vkllm_last_error());
    batch_step(mc, c, 4, seq, pos + SEQ_LEN - 4, NULL, "ring: the tail again");
    CHECK(vkllm_seq_clear(c, 0) == VKLLM_OK, "ring: seq_clear: %s", vkllm_last_error());
    batch_step(mc, c, 3, seq, pos, NULL, "ring: from 0 again");
    vkllm_context_free(c);
}

/* The K/V bytes of a context of n_seq sequences. */
static uint64_t kv_bytes(vkllm_context *c) { return vkl_llama_context_kv_bytes(vkl_api_context_llama(c)); }

/* Sequences at very different positions in one context of rings (ids and references N_SEQ + 3 .. + 5, LONG_LEN
 * tokens): sequence 0 goes past several windows and its ring's wrap while sequence 2 starts and sequence 1
 * starts later, then decode steps of all three; seq_rm and seq_cp of rings; the state of sequence 0 loaded
 * into a context of one sequence and into one of N_SEQ. */
static void check_far(model_case *mc)
{
    vkllm_context *c = new_context(mc->m, N_SEQ), *one = new_context(mc->m, 1);
    if (!c || !one) {
        vkllm_context_free(c);
        vkllm_context_free(one);
        return;
    }
    /* each sequence's ring is one sequence's: N_SEQ of them, well below full caches of N_CTX rows */
    const llama_hparams *hp = &vkl_api_context_model(c)->hp;
    const uint64_t full = (uint64_t)hp->n_layer * N_SEQ * N_CTX * arch_kv_dim(hp) * 2 * 2;
    CHECK(kv_bytes(c) == N_SEQ * kv_bytes(one) && kv_bytes(c) < full, "%s: K/V bytes %llu of %u sequences, "
          "%llu of one, %llu with full caches", mc->name, (unsigned long long)kv_bytes(c), N_SEQ,
          (unsigned long long)kv_bytes(one), (unsigned long long)full);
    printf("%s: K/V cache of %u sequences %llu bytes (full caches: %llu)\n", mc->name, N_SEQ,
           (unsigned long long)kv_bytes(c), (unsigned long long)full);
    const int32_t L = N_SEQ + 3;   /* the long ids */
    int32_t seq[N_BATCH], pos[N_BATCH], ref[N_BATCH];
    uint32_t n = 0;
    for (int p = 0; p < N_BATCH; p++, n++)
        seq[n] = 0, pos[n] = p, ref[n] = L;
    batch_step(mc, c, n, seq, pos, ref, "rings: a prompt chunk");
    /* sequence 0 in two chunks of 12 past its ring's wrap (23 rows), sequence 2 starting next to it, then 1 */
    for (int chunk = 0; chunk < 2; chunk++) {
        n = 0;
        for (int p = N_BATCH + 12 * chunk; p < N_BATCH + 12 * (chunk + 1); p++, n++)
            seq[n] = 0, pos[n] = p, ref[n] = L;
        for (int p = 3 * chunk; p < 3 * chunk + 3; p++, n++)
            seq[n] = 2, pos[n] = p, ref[n] = L + 2;
        if (chunk)
            seq[n] = 1, pos[n] = 0, ref[n++] = L + 1;
        batch_step(mc, c, n, seq, pos, ref, chunk ? "rings: far, new and near" : "rings: past the wrap");
    }
    while (vkllm_seq_pos(c, 0) < LONG_LEN) {   /* decode steps of the three */
        for (int s = 0; s < 3; s++)
            seq[s] = s, pos[s] = (int32_t)vkllm_seq_pos(c, s), ref[s] = L + s;
        batch_step(mc, c, 3, seq, pos, ref, "rings: decode step at very different positions");
    }
    /* seq_rm: a tail within a batch, not further back (nothing changed); the tail again */
    CHECK(vkllm_seq_rm(c, 0, LONG_LEN - N_BATCH - 2, -1) == VKLLM_ERR_UNSUPPORTED &&
          vkllm_seq_rm(c, -1, 3, -1) == VKLLM_ERR_UNSUPPORTED && vkllm_seq_pos(c, 0) == LONG_LEN &&
          vkllm_seq_pos(c, 2) > 3, "%s: rings: seq_rm further back than the ring keeps", mc->name);
    printf("%s: rings: %s\n", mc->name, vkllm_last_error());
    /* overwriting further back than the ring keeps, in a batch's second chunk: refused before the first runs */
    int32_t tok[N_BATCH + 1] = {0}, bseq[N_BATCH + 1], bpos[N_BATCH + 1];
    const uint32_t pos2 = vkllm_seq_pos(c, 2);
    for (int i = 0; i < N_BATCH; i++)
        bseq[i] = 2, bpos[i] = (int32_t)pos2 + i, tok[i] = 5;
    bseq[N_BATCH] = 0, bpos[N_BATCH] = 3, tok[N_BATCH] = 5;
    vkllm_batch far_back = {N_BATCH + 1, tok, bpos, bseq, NULL};
    CHECK(vkllm_decode_batch(c, &far_back) == VKLLM_ERR_UNSUPPORTED && vkllm_seq_pos(c, 2) == pos2 &&
          vkllm_seq_pos(c, 0) == LONG_LEN, "%s: rings: a batch overwriting further back than the ring keeps",
          mc->name);
    printf("%s: rings: %s\n", mc->name, vkllm_last_error());
    CHECK(vkllm_seq_rm(c, 0, LONG_LEN - 5, -1) == VKLLM_OK, "%s: rings: seq_rm of a tail: %s", mc->name,
          vkllm_last_error());
    n = 0;
    for (int p = LONG_LEN - 5; p < LONG_LEN; p++, n++)
        seq[n] = 0, pos[n] = p, ref[n] = L;
    seq[n] = 1, pos[n] = (int32_t)vkllm_seq_pos(c, 1), ref[n++] = L + 1;
    batch_step(mc, c, n, seq, pos, ref, "rings: a tail again after seq_rm, next to another sequence");
    /* seq_cp: the live range from 0 (not from later, nor ending further back than the ring keeps) */
    CHECK(vkllm_seq_cp(c, 0, 3, 2, -1) == VKLLM_ERR_UNSUPPORTED && vkllm_seq_cp(c, 0, 3, 0, 9) == VKLLM_ERR_UNSUPPORTED,
          "%s: rings: seq_cp from 2, or up to 9", mc->name);
    printf("%s: rings: %s\n", mc->name, vkllm_last_error());
    CHECK(vkllm_seq_cp(c, 0, 3, 0, LONG_LEN - 3) == VKLLM_OK && vkllm_seq_pos(c, 3) == LONG_LEN - 3,
          "%s: rings: seq_cp: %s", mc->name, vkllm_last_error());
    n = 0;
    for (int p = LONG_LEN - 3; p < LONG_LEN; p++, n++)
        seq[n] = 3, pos[n] = p, ref[n] = L;
    seq[n] = 0, pos[n] = LONG_LEN - 1, ref[n++] = L;   /* the source, overwriting its last position */
    batch_step(mc, c, n, seq, pos, ref, "rings: a copied ring continued, its source too");
    /* the state of sequence 0 (its ring wrapped) into a context of one sequence, which continues from it */
    size_t size = 0, written = 0;
    void *state = NULL;
    CHECK(vkllm_state_size(c, &size) == VKLLM_OK && (state = malloc(size)) &&
          vkllm_state_save(c, state, size, &written) == VKLLM_OK && vkllm_state_load(one, state, written) == VKLLM_OK &&
          vkllm_seq_pos(one, 0) == LONG_LEN, "%s: rings: state of sequence 0: %s", mc->name, vkllm_last_error());
    if (vkllm_seq_pos(one, 0) == LONG_LEN && vkllm_seq_rm(one, 0, LONG_LEN - 2, -1) == VKLLM_OK) {
        seq[0] = 0, seq[1] = 0, pos[0] = LONG_LEN - 2, pos[1] = LONG_LEN - 1, ref[0] = ref[1] = L;
        batch_step(mc, one, 2, seq, pos, ref, "rings: sequence 0's state continued alone");
    }
    /* and into another context of N_SEQ sequences, next to a new sequence */
    vkllm_context *many = new_context(mc->m, N_SEQ);
    CHECK(many && state && vkllm_state_load(many, state, written) == VKLLM_OK && vkllm_seq_pos(many, 0) == LONG_LEN,
          "%s: rings: state of sequence 0 into %u sequences: %s", mc->name, N_SEQ, vkllm_last_error());
    if (many && vkllm_seq_pos(many, 0) == LONG_LEN) {
        seq[0] = 1, seq[1] = 0, pos[0] = 0, pos[1] = LONG_LEN - 1, ref[0] = L + 1, ref[1] = L;
        batch_step(mc, many, 2, seq, pos, ref, "rings: sequence 0's state continued next to a new sequence");
    }
    vkllm_context_free(many);
    free(state);
    /* seq_clear, and the sequence from 0 again next to one far on */
    CHECK(vkllm_seq_clear(c, 0) == VKLLM_OK && vkllm_seq_pos(c, 0) == 0, "%s: rings: seq_clear", mc->name);
    n = 0;
    for (int p = 0; p < 4; p++, n++)
        seq[n] = 0, pos[n] = p, ref[n] = L + 2;
    seq[n] = 3, pos[n] = LONG_LEN - 1, ref[n++] = L;   /* its last position again */
    batch_step(mc, c, n, seq, pos, ref, "rings: a cleared sequence from 0 next to a copied one");
    vkllm_context_free(one);
    vkllm_context_free(c);
}

/* Refusals, each leaving the positions as they were. */
static void check_errors(model_case *mc)
{
    vkllm_context *c = new_context(mc->m, N_SEQ);
    if (!c)
        return;
    int32_t tok[N_CTX + 8] = {0}, pos[N_CTX + 8] = {0}, seq[N_CTX + 8] = {0};
    for (int i = 0; i < N_CTX + 8; i++)
        tok[i] = mc->ids[0][i % SEQ_LEN], pos[i] = i;
    vkllm_batch b = {3, tok, pos, seq, NULL};
    CHECK(vkllm_decode_batch(c, &b) == VKLLM_OK, "3 tokens: %s", vkllm_last_error());
    CHECK(vkllm_get_logits_ith(c, 2) != NULL && vkllm_get_logits_ith(c, 1) == NULL &&
          vkllm_get_logits_ith(c, 3) == NULL && vkllm_get_logits_ith(c, -1) == NULL,
          "logits NULL: only the last token's");
    struct {
        const char *what;
        int32_t s0, p0, s1, p1;   /* a two-token batch */
        int32_t t1;
        vkllm_status want;
    } bad[] = {
        {"sequence -1", -1, 0, 1, 0, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"sequence n_seq", 1, 0, N_SEQ, 0, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"negative position", 1, -1, 1, 0, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"a duplicate", 0, 3, 0, 3, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"positions out of order", 0, 2, 0, 1, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"not consecutive", 1, 0, 1, 2, 5, VKLLM_ERR_INVALID_ARGUMENT},
        {"token id n_vocab", 1, 0, 1, 1, (int32_t)mc->n_vocab, VKLLM_ERR_INVALID_ARGUMENT},
        {"token id -1", 1, 0, 1, 1, -1, VKLLM_ERR_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t t2[2] = {5, bad[i].t1}, p2[2] = {bad[i].p0, bad[i].p1}, s2[2] = {bad[i].s0, bad[i].s1};
        vkllm_batch bb = {2, t2, p2, s2, NULL};
        vkllm_status st = vkllm_decode_batch(c, &bb);
        CHECK(st == bad[i].want, "%s: status %d, not %d", bad[i].what, (int)st, (int)bad[i].want);
        if (i == 4)
            printf("refusal: %s\n", vkllm_last_error());
    }
    vkllm_batch full = {N_CTX - 2, tok, pos + 3, seq, NULL};   /* sequence 0, positions 3 .. N_CTX */
    CHECK(vkllm_decode_batch(c, &full) == VKLLM_ERR_CONTEXT_FULL, "past n_ctx");
    vkllm_batch empty = {0, tok, pos, seq, NULL}, no_pos = {1, tok, NULL, seq, NULL};
    CHECK(vkllm_decode_batch(c, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL batch");
    CHECK(vkllm_decode_batch(c, &empty) == VKLLM_ERR_INVALID_ARGUMENT, "empty batch");
    CHECK(vkllm_decode_batch(c, &no_pos) == VKLLM_ERR_INVALID_ARGUMENT, "pos NULL");
    CHECK(vkllm_seq_pos(c, 0) == 3 && vkllm_seq_pos(c, 1) == 0 && vkllm_seq_pos(c, 2) == 0, "positions changed");
    CHECK(vkllm_get_logits_ith(c, 2) != NULL, "a refused batch kept the last logits");
    /* sequence operations */
    CHECK(vkllm_seq_rm(c, N_SEQ, 0, -1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm of sequence n_seq");
    CHECK(vkllm_seq_rm(c, -2, 0, -1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm of sequence -2");
    CHECK(vkllm_seq_rm(c, 0, 2, 1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm of [2, 1)");
    printf("refusal: %s\n", vkllm_last_error());
    CHECK(vkllm_seq_rm(c, -1, 1, N_CTX + 1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm past n_ctx");
    CHECK(vkllm_seq_rm(c, 0, N_CTX + 1, -1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm from past n_ctx");
    CHECK(vkllm_seq_cp(c, 0, 1, 2, 1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_cp of [2, 1)");
    CHECK(vkllm_seq_cp(c, 0, 1, 0, 4) == VKLLM_ERR_INVALID_ARGUMENT, "seq_cp past the source's end");
    CHECK(vkllm_seq_cp(c, 0, -1, 0, -1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_cp to sequence -1");
    CHECK(vkllm_seq_cp(c, N_SEQ, 0, 0, -1) == VKLLM_ERR_INVALID_ARGUMENT, "seq_cp from sequence n_seq");
    CHECK(vkllm_seq_pos(c, 0) == 3 && vkllm_seq_pos(c, 1) == 0, "positions changed by refused sequence operations");
    /* in flight */
    CHECK(vkllm_decode_submit(c, tok, 2) == VKLLM_OK, "submit: %s", vkllm_last_error());
    CHECK(vkllm_decode_batch(c, &b) == VKLLM_ERR_BUSY, "batch in flight");
    CHECK(vkllm_seq_rm(c, 0, 0, -1) == VKLLM_ERR_BUSY, "seq_rm in flight");
    CHECK(vkllm_seq_cp(c, 0, 1, 0, -1) == VKLLM_ERR_BUSY, "seq_cp in flight");
    const float *logits;
    CHECK(vkllm_decode_wait(c, UINT64_MAX, &logits) == VKLLM_OK, "wait: %s", vkllm_last_error());
    CHECK(vkllm_seq_pos(c, 0) == 5, "vkllm_decode appends to sequence 0: %u", vkllm_seq_pos(c, 0));
    CHECK(vkllm_seq_clear(c, -1) == VKLLM_OK && vkllm_seq_pos(c, 0) == 0, "seq_clear");
    vkllm_context_free(c);
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_seq = 100000;
    CHECK(vkllm_context_create(mc->m, &cp, &c) == VKLLM_ERR_INVALID_ARGUMENT, "100000 sequences");
    /* one sequence: position p is cache row p, so no gaps */
    if (!(c = new_context(mc->m, 1)))
        return;
    CHECK(vkllm_decode_batch(c, &b) == VKLLM_OK, "3 tokens: %s", vkllm_last_error());
    vkllm_batch gap = {1, tok, pos + 4, seq, NULL};
    CHECK(vkllm_decode_batch(c, &gap) == VKLLM_ERR_INVALID_ARGUMENT, "a gap in a one-sequence context");
    CHECK(vkllm_seq_rm(c, 0, 1, 2) == VKLLM_ERR_INVALID_ARGUMENT, "seq_rm of a middle range, one sequence");
    printf("refusal: %s\n", vkllm_last_error());
    CHECK(vkllm_seq_pos(c, 0) == 3 && vkllm_seq_rm(c, 0, 1, -1) == VKLLM_OK && vkllm_seq_pos(c, 0) == 1,
          "seq_rm of a tail, one sequence");
    vkllm_context_free(c);
}

/* A synthetic model of the preset (hp NULL) or of hp, named `name` in the file name. */
static void write_synth_hp(const char *name, const synth_hparams *hp, char *path, size_t len)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, len, "%s/batch-%s-%d.gguf", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    synth_options o = {.preset = name, .hp = hp, .type = GGML_TYPE_Q8_0, .path = path, .seed = 7};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth %s: %s", name, vkr_last_error());
}

static void write_synth(const char *preset, char *path, size_t len) { write_synth_hp(preset, NULL, path, len); }

/* mc cleared and its model loaded from path (false, with a failed check, if it does not load). */
static bool load_case(model_case *mc, const char *path, const char *name)
{
    memset(mc, 0, sizeof *mc);
    mc->name = name;
    mc->path = path;
    if (vkllm_model_load(path, NULL, &mc->m) != VKLLM_OK) {
        CHECK(false, "load %s: %s", path, vkllm_last_error());
        return false;
    }
    mc->n_vocab = vkllm_model_n_vocab(mc->m);
    return true;
}

/* The one-layer model: every K/V row depends only on its token and position, so a removal in the middle
 * must give exactly what decoding with the gap gives (check_rm_middle), on both kernel paths. */
static void test_one_layer(const char *path, bool gpu)
{
    model_case mc;
    if (!load_case(&mc, path, gpu ? "tiny, one layer (GPU kernels)" : "tiny, one layer"))
        return;
    test_rng rng;
    rng_init(&rng, 99);
    for (int p = 0; p < SEQ_LEN; p++)
        mc.ids[6][p] = (int32_t)(3 + rng_u32(&rng) % (mc.n_vocab - 3));
    check_rm_middle(&mc, 1, 3, true);   /* two rows moved by two: one copy */
    check_rm_middle(&mc, 1, 2, true);   /* three rows moved by one: through a temporary buffer */
    check_rm_middle(&mc, 0, 2, true);   /* the first positions */
    vkllm_model_free(mc.m);
}

static void test_model(const char *path, const char *name, uint64_t seed, bool errors, bool ring)
{
    model_case mc;
    if (!load_case(&mc, path, name))
        return;
    test_rng rng;
    rng_init(&rng, seed);
    for (int s = 0; s < N_IDS; s++)
        for (int p = 0; p < LONG_LEN; p++)   /* past the first few ids (control tokens) */
            mc.ids[s][p] = s > 4 && s < 7 && p < (s == 5 ? 10 : 6) ? mc.ids[4][p]
                                                                  : (int32_t)(3 + rng_u32(&rng) % (mc.n_vocab - 3));
    for (int s = 0; s < (ring ? N_IDS : N_SEQ + 3); s++)
        mc.ref[s] = run_alone(&mc, mc.ids[s], s < N_SEQ + 3 ? SEQ_LEN : LONG_LEN);
    check_mixed(&mc);
    check_cp_rm(&mc);
    if (ring) {   /* a middle range is refused on sliding-window models (check_errors' gemma2 case) */
        check_ring(&mc);
        check_far(&mc);
    } else {
        check_rm_middle(&mc, 1, 3, false);
    }
    if (errors)
        check_errors(&mc);
    for (int s = 0; s < N_IDS; s++)
        free(mc.ref[s]);
    vkllm_model_free(mc.m);
}

int main(void)
{
    uint64_t seed = test_seed();
    char tiny[512], qwen[512], gemma2[512], gemma3[512], one[512];
    write_synth("tiny", tiny, sizeof tiny);
    synth_hparams one_layer = *vkl_synth_preset("tiny");
    one_layer.n_layer = 1;
    write_synth_hp("tiny-1layer", &one_layer, one, sizeof one);
    write_synth("qwen2-tiny", qwen, sizeof qwen);
    write_synth("gemma2-tiny", gemma2, sizeof gemma2);
    write_synth("gemma3-tiny", gemma3, sizeof gemma3);
    const char *stories = test_shared_path("models/stories260K.gguf");
    char stories_path[1024] = "";
    if (stories)
        snprintf(stories_path, sizeof stories_path, "%s", stories);
    else
        printf("stories260K not found: only the synthetic models\n");
    for (int gpu = 0; gpu < 2; gpu++) {   /* the CPU-device kernels, then the GPU kernels */
        if (gpu)
            setenv("VKLLM_DEBUG_AS_GPU", "1", 1);
        printf("-- %s kernels\n", gpu ? "GPU" : "CPU-device");
        test_one_layer(one, gpu);
        test_model(tiny, gpu ? "tiny (GPU kernels)" : "tiny", seed, !gpu, false);
        test_model(qwen, gpu ? "qwen2-tiny (GPU kernels)" : "qwen2-tiny", seed + 1, false, false);
        /* Sliding window 8: sequences of SEQ_LEN and LONG_LEN keep rings (window 8 + 16 - 1 < N_CTX), alone
         * and several in one context. */
        test_model(gemma2, gpu ? "gemma2-tiny (GPU kernels)" : "gemma2-tiny", seed + 3, false, true);
        test_model(gemma3, gpu ? "gemma3-tiny (GPU kernels)" : "gemma3-tiny", seed + 4, false, true);
        if (*stories_path)
            test_model(stories_path, gpu ? "stories260K (GPU kernels)" : "stories260K", seed + 2, false, false);
    }
    unsetenv("VKLLM_DEBUG_AS_GPU");
    vkllm_model *m = NULL;
    if (vkllm_model_load(gemma2, NULL, &m) == VKLLM_OK) {
        vkllm_context *c = NULL;
        vkllm_context_params cp;
        vkllm_context_default_params(&cp);
        cp.n_batch = N_BATCH;
        cp.n_seq = 2;
        cp.n_ctx = N_BATCH;   /* within window + n_batch - 1: full caches, but the window counts rows */
        if (vkllm_context_create(m, &cp, &c) == VKLLM_OK) {
            const int32_t tok[5] = {5, 6, 7, 8, 9}, pos[5] = {0, 1, 2, 3, 4}, seq[5] = {0};
            vkllm_batch b = {5, tok, pos, seq, NULL};
            CHECK(vkllm_decode_batch(c, &b) == VKLLM_OK, "gemma2: 5 tokens: %s", vkllm_last_error());
            CHECK(vkllm_seq_rm(c, 0, 1, 3) == VKLLM_ERR_INVALID_ARGUMENT && vkllm_seq_pos(c, 0) == 5,
                  "gemma2: seq_rm of a middle range");
            printf("window: %s\n", vkllm_last_error());
            vkllm_context_free(c);
        } else
            CHECK(false, "gemma2, two sequences of %u: %s", cp.n_ctx, vkllm_last_error());
        vkllm_model_free(m);
    } else
        CHECK(false, "load %s: %s", gemma2, vkllm_last_error());
    remove(tiny);
    remove(qwen);
    remove(gemma2);
    remove(gemma3);
    remove(one);
    return test_finish("batch");
}

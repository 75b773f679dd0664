/* Several sequences in one context (include/vkllm.h): vkllm_decode_batch's checks and chunks, its logits,
 * and the sequence operations. The sequences' positions live in the context (vkl_api_context_seq_pos); the
 * device work is vkl_llama_eval_seqs and vkl_llama_context_seq_copy (host/model/llama.c). */
#include <stdlib.h>
#include <string.h>

#include "host/api_internal.h"
#include "runtime/log.h"

/* The last batch's logits: rows of the tokens that asked for them, and each token's row (-1: none). */
struct api_batch {
    float *logits;
    size_t logits_cap;          /* floats */
    int32_t *row;
    uint32_t *pos, *seq;        /* the batch as vkl_llama_eval_seqs takes it */
    int8_t *want;
    uint32_t n, cap;            /* tokens of the last batch; entries allocated */
};

void vkl_api_batch_free(struct api_batch *b)
{
    if (!b)
        return;
    free(b->logits);
    free(b->row);
    free(b->pos);
    free(b->seq);
    free(b->want);
    free(b);
}

/* Room for n tokens and n_rows logit rows. */
static vkllm_status batch_reserve(vkllm_context *c, uint32_t n, size_t n_floats, struct api_batch **out)
{
    struct api_batch **slot = vkl_api_context_batch(c);
    if (!*slot && !(*slot = calloc(1, sizeof **slot)))
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    struct api_batch *b = *slot;
    *out = b;
    if (n > b->cap) {
        int32_t *row = realloc(b->row, n * sizeof *row);
        if (row)
            b->row = row;
        uint32_t *pos = realloc(b->pos, n * sizeof *pos);
        if (pos)
            b->pos = pos;
        uint32_t *seq = realloc(b->seq, n * sizeof *seq);
        if (seq)
            b->seq = seq;
        int8_t *want = realloc(b->want, n * sizeof *want);
        if (want)
            b->want = want;
        if (!row || !pos || !seq || !want)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        b->cap = n;
    }
    if (n_floats > b->logits_cap) {
        float *l = realloc(b->logits, n_floats * sizeof *l);
        if (!l)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        b->logits = l;
        b->logits_cap = n_floats;
    }
    return VKLLM_OK;
}

/* The rules of include/vkllm.h, before anything runs. next[s]: where sequence s continues, as the batch
 * goes (starts as its position; UINT32_MAX while the batch has not touched it). */
static vkllm_status check_batch(vkllm_context *c, const vkllm_batch *b, uint32_t *next, uint32_t *n_want)
{
    const uint32_t n_seq = vkl_api_context_n_seq(c), n_ctx = vkl_llama_context_n_ctx(vkl_api_context_llama(c));
    const uint32_t n_vocab = vkl_api_context_model(c)->hp.n_vocab;
    const uint32_t *seq_pos = vkl_api_context_seq_pos(c);
    if (!b || b->n_tokens == 0 || !b->token || !b->pos || !b->seq_id)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_decode_batch: an empty batch, or token/pos/seq_id NULL");
    for (uint32_t s = 0; s < n_seq; s++)
        next[s] = UINT32_MAX;
    *n_want = 0;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        const int32_t s = b->seq_id[i], p = b->pos[i];
        if (s < 0 || (uint32_t)s >= n_seq)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "batch token %u: sequence %d is outside 0..%u", i, s,
                             n_seq - 1);
        if (b->token[i] < 0 || (uint32_t)b->token[i] >= n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "batch token %u: id %d is out of range (vocabulary of %u)", i,
                             b->token[i], n_vocab);
        if (next[s] == UINT32_MAX) {
            if (p < 0 || (uint32_t)p > seq_pos[s])
                return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                                 "batch token %u: position %d of sequence %d, which holds %u: a sequence continues at "
                                 "its end or earlier", i, p, s, seq_pos[s]);
        } else if (p < 0 || (uint32_t)p != next[s]) {
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                             "batch token %u: position %d of sequence %d, where its previous token in the batch puts "
                             "the next at %u (positions of a sequence go up by one in batch order)", i, p, s, next[s]);
        }
        if ((uint32_t)p >= n_ctx)
            return vkr_error(VKLLM_ERR_CONTEXT_FULL,
                             "batch token %u: position %d of sequence %d is past the context of %u", i, p, s, n_ctx);
        next[s] = (uint32_t)p + 1;
        *n_want += b->logits ? b->logits[i] != 0 : i + 1 == b->n_tokens;
    }
    return VKLLM_OK;
}

uint32_t vkllm_context_n_seq(const vkllm_context *c) { return vkl_api_context_n_seq(c); }

vkllm_status vkllm_decode_batch(vkllm_context *c, const vkllm_batch *batch)
{
    vkllm_status st = vkl_api_context_check_idle(c);
    if (st != VKLLM_OK)
        return st;
    const uint32_t n_seq = vkl_api_context_n_seq(c);
    uint32_t *next = malloc(n_seq * sizeof *next), n_want = 0;
    if (!next)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    st = check_batch(c, batch, next, &n_want);
    free(next);
    const size_t n_vocab = vkl_api_context_model(c)->hp.n_vocab;
    struct api_batch *b = NULL;
    if (st == VKLLM_OK)
        st = batch_reserve(c, batch->n_tokens, n_want * n_vocab, &b);
    if (st != VKLLM_OK)
        return st;
    const uint32_t n = batch->n_tokens;
    b->n = 0;   /* no logits until the whole batch is done */
    int32_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        b->pos[i] = (uint32_t)batch->pos[i];
        b->seq[i] = (uint32_t)batch->seq_id[i];
        b->want[i] = batch->logits ? batch->logits[i] != 0 : i + 1 == n;
        b->row[i] = b->want[i] ? rows++ : -1;
    }
    llama_context *lc = vkl_api_context_llama(c);
    uint32_t *seq_pos = vkl_api_context_seq_pos(c);
    const uint32_t step = vkl_llama_context_seq_batch_max(lc);
    size_t rows_done = 0;   /* logit rows written by the chunks before */
    for (uint32_t done = 0; done < n;) {
        if (done && vkl_api_context_aborted(c))
            return vkr_error(VKLLM_ERR_CANCELLED, "batch aborted by the callback after %u of %u tokens", done, n);
        const uint32_t k = n - done < step ? n - done : step;
        st = vkl_llama_eval_seqs(lc, batch->token + done, b->pos + done, b->seq + done, b->want + done, k,
                             b->logits ? b->logits + rows_done * n_vocab : NULL);
        if (st != VKLLM_OK)
            return st;
        for (uint32_t i = done; i < done + k; i++) {   /* a sequence ends at its last token's position */
            seq_pos[b->seq[i]] = b->pos[i] + 1;
            rows_done += b->want[i] != 0;
        }
        done += k;
    }
    b->n = n;
    return VKLLM_OK;
}

const float *vkllm_get_logits_ith(vkllm_context *c, int32_t i)
{
    struct api_batch *b = *vkl_api_context_batch(c);
    if (!b || i < 0 || (uint32_t)i >= b->n) {
        vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_get_logits_ith: token %d is outside the last batch (%u tokens)", i,
                  b ? b->n : 0);
        return NULL;
    }
    if (b->row[i] < 0) {
        vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_get_logits_ith: token %d's logits were not asked for", i);
        return NULL;
    }
    return b->logits + (size_t)b->row[i] * vkl_api_context_model(c)->hp.n_vocab;
}

uint32_t vkllm_seq_pos(const vkllm_context *c, int32_t seq_id)
{
    if (seq_id < 0 || (uint32_t)seq_id >= vkl_api_context_n_seq(c))
        return 0;
    return vkl_api_context_seq_pos((vkllm_context *)c)[seq_id];
}

/* A sequence argument: seq_id in [0, n_seq), or -1 where all_ok. */
static vkllm_status check_seq(const vkllm_context *c, int32_t seq_id, bool all_ok, const char *what)
{
    if ((seq_id == -1 && all_ok) || (seq_id >= 0 && (uint32_t)seq_id < vkl_api_context_n_seq(c)))
        return VKLLM_OK;
    return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: sequence %d is outside 0..%u%s", what, seq_id,
                     vkl_api_context_n_seq(c) - 1, all_ok ? " (or -1: all)" : "");
}

vkllm_status vkllm_seq_rm(vkllm_context *c, int32_t seq_id, int32_t p0, int32_t p1)
{
    vkllm_status st = vkl_api_context_check_idle(c);
    if (st == VKLLM_OK)
        st = check_seq(c, seq_id, true, "vkllm_seq_rm");
    if (st != VKLLM_OK)
        return st;
    uint32_t *seq_pos = vkl_api_context_seq_pos(c);
    const uint32_t from = p0 < 0 ? 0 : (uint32_t)p0;
    const uint32_t s0 = seq_id < 0 ? 0 : (uint32_t)seq_id, s1 = seq_id < 0 ? vkl_api_context_n_seq(c) : s0 + 1;
    for (uint32_t s = s0; s < s1; s++)   /* check all before changing any */
        if (p1 >= 0 && (uint32_t)p1 < seq_pos[s] && from < (uint32_t)p1)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                             "vkllm_seq_rm: positions [%u, %d) of sequence %u, which holds %u: only a tail can be "
                             "removed (p1 < 0 or p1 >= its length)", from, p1, s, seq_pos[s]);
    /* A ring keeps only the last positions: a sequence cut back further could not continue. */
    if (from && from < seq_pos[s0] && !vkl_llama_context_can_continue(vkl_api_context_llama(c), from))
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "vkllm_seq_rm: the sliding-window layers keep only the last positions: a sequence can be cut "
                         "back to 0 or by at most the batch size, not to %u", from);
    for (uint32_t s = s0; s < s1; s++)   /* later positions are overwritten before they are read */
        if (from < seq_pos[s])
            seq_pos[s] = from;
    return VKLLM_OK;
}

vkllm_status vkllm_seq_clear(vkllm_context *c, int32_t seq_id) { return vkllm_seq_rm(c, seq_id, 0, -1); }

vkllm_status vkllm_seq_cp(vkllm_context *c, int32_t src, int32_t dst, int32_t p0, int32_t p1)
{
    vkllm_status st = vkl_api_context_check_idle(c);
    if (st == VKLLM_OK)
        st = check_seq(c, src, false, "vkllm_seq_cp (source)");
    if (st == VKLLM_OK)
        st = check_seq(c, dst, false, "vkllm_seq_cp (destination)");
    if (st != VKLLM_OK)
        return st;
    uint32_t *seq_pos = vkl_api_context_seq_pos(c);
    if (p0 > 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_seq_cp: copies only prefixes: p0 must be 0, not %d", p0);
    if (p1 >= 0 && (uint32_t)p1 > seq_pos[src])
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_seq_cp: positions [0, %d) of sequence %d, which holds %u",
                         p1, src, seq_pos[src]);
    const uint32_t rows = p1 < 0 ? seq_pos[src] : (uint32_t)p1;
    if (src == dst)
        return VKLLM_OK;
    seq_pos[dst] = 0;   /* a failed copy leaves dst empty, never half-copied */
    st = vkl_llama_context_seq_copy(vkl_api_context_llama(c), (uint32_t)src, (uint32_t)dst, rows);
    if (st == VKLLM_OK)
        seq_pos[dst] = rows;
    return st;
}

/* Several sequences in one context (include/vkllm.h): vkllm_decode_batch's checks and chunks, its logits,
 * and the sequence operations. The sequences' positions live in the context (vkl_api_context_seq_pos, _gap,
 * _row_pos); the device work is vkl_llama_eval_seq_rows and vkl_llama_context_copy_rows (host/model/llama.c).
 * Sequence s holds cache rows 0 .. rows - 1 of its range, in order of position; removing positions from its
 * middle moves the later rows down (their K/V keep the rope of their positions), so that a token always
 * attends to the rows 0 .. its own of its sequence. */
#include <stdlib.h>
#include <string.h>

#include "host/api_internal.h"
#include "runtime/log.h"

/* The last batch: the logits of the tokens that asked for them and each token's logit row (-1: none), and the
 * batch as vkl_llama_eval_seq_rows takes it (with each token's cache row within its sequence). */
struct api_batch {
    float *logits;
    size_t logits_cap;          /* floats */
    int32_t *logit_row;
    uint32_t *pos, *seq, *seq_row;   /* the batch as vkl_llama_eval_seq_rows takes it */
    int8_t *want;
    uint32_t n, cap;            /* tokens of the last batch; entries allocated */
};

void vkl_api_batch_free(struct api_batch *b)
{
    if (!b)
        return;
    free(b->logits);
    free(b->logit_row);
    free(b->pos);
    free(b->seq);
    free(b->seq_row);
    free(b->want);
    free(b);
}

/* `old` reallocated to n entries of `size` bytes; on failure `old` itself (freed with the rest later) and
 * *ok cleared. */
static void *grow(void *old, size_t n, size_t size, bool *ok)
{
    void *p = realloc(old, n * size);
    *ok = *ok && p;
    return p ? p : old;
}

/* Room for n tokens and n_floats logits. A failure leaves the capacities as they were: every array keeps at
 * least them. */
static vkllm_status batch_reserve(vkllm_context *c, uint32_t n, size_t n_floats, struct api_batch **out)
{
    struct api_batch **slot = vkl_api_context_batch(c);
    if (!*slot && !(*slot = calloc(1, sizeof **slot)))
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    struct api_batch *b = *slot;
    *out = b;
    bool ok = true;
    if (n > b->cap) {
        b->logit_row = grow(b->logit_row, n, sizeof *b->logit_row, &ok);
        b->pos = grow(b->pos, n, sizeof *b->pos, &ok);
        b->seq = grow(b->seq, n, sizeof *b->seq, &ok);
        b->seq_row = grow(b->seq_row, n, sizeof *b->seq_row, &ok);
        b->want = grow(b->want, n, sizeof *b->want, &ok);
        b->cap = ok ? n : b->cap;
    }
    if (ok && n_floats > b->logits_cap) {
        b->logits = grow(b->logits, n_floats, sizeof *b->logits, &ok);
        b->logits_cap = ok ? n_floats : b->logits_cap;
    }
    return ok ? VKLLM_OK : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
}

/* ---- Rows and positions of each sequence ---- */

typedef struct seq_table {
    uint32_t n_ctx;
    uint32_t *pos, *gap, *row_pos;   /* as in the context (host/api.c) */
} seq_table;

static seq_table seq_table_of(vkllm_context *c)
{
    return (seq_table){vkl_llama_context_n_ctx(vkl_api_context_llama(c)), vkl_api_context_seq_pos(c),
                       vkl_api_context_seq_gap(c), vkl_api_context_row_pos(c)};
}

static uint32_t seq_rows(const seq_table *t, uint32_t s) { return t->pos[s] - t->gap[s]; }

static uint32_t row_position(const seq_table *t, uint32_t s, uint32_t r)
{
    return t->gap[s] ? t->row_pos[(size_t)s * t->n_ctx + r] : r;
}

/* The rows of sequence s holding positions below p. */
static uint32_t rows_below(const seq_table *t, uint32_t s, uint32_t p)
{
    uint32_t lo = 0, hi = seq_rows(t, s);
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (row_position(t, s, mid) < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Keeps the first `rows` rows of sequence s: it continues after the last one's position. */
static void keep_rows(const seq_table *t, uint32_t s, uint32_t rows)
{
    const uint32_t next = rows ? row_position(t, s, rows - 1) + 1 : 0;
    t->gap[s] = next - rows;
    t->pos[s] = next;
}

/* Row r of sequence s now holds position p (the rows before it kept). */
static void set_row(const seq_table *t, uint32_t s, uint32_t r, uint32_t p)
{
    uint32_t *rp = t->row_pos ? t->row_pos + (size_t)s * t->n_ctx : NULL;
    if (rp && t->gap[s] == 0 && p != r)   /* the rows before r leave their implicit positions: write them */
        for (uint32_t i = 0; i < r; i++)
            rp[i] = i;
    if (rp)
        rp[r] = p;
    t->pos[s] = p + 1;
    t->gap[s] = p - r;
}

void vkl_api_seq_keep_below(vkllm_context *c, uint32_t s, uint32_t pos)
{
    const seq_table t = seq_table_of(c);
    keep_rows(&t, s, rows_below(&t, s, pos));
}

bool vkl_api_seq_has_gap(vkllm_context *c, uint32_t s) { return vkl_api_context_seq_gap(c)[s] != 0; }

/* Why the context cannot hold a sequence with positions missing before its last (NULL: it can). */
static const char *gaps_refused(vkllm_context *c)
{
    if (vkl_api_context_n_seq(c) == 1)
        return "a context of one sequence keeps position p in cache row p (create it with n_seq >= 2)";
    if (vkl_api_context_model(c)->hp.swa_window)
        return "the model's sliding-window layers count their window in cache rows, not positions";
    return NULL;
}

/* The rules of include/vkllm.h, before anything runs. next[s]: where sequence s continues, as the batch
 * goes (UINT32_MAX while the batch has not touched it). */
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
            const char *no_gap = p >= 0 && (uint32_t)p > seq_pos[s] ? gaps_refused(c) : NULL;
            if (p < 0 || no_gap)
                return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                                 "batch token %u: position %d of sequence %d, which continues at %u: a sequence "
                                 "continues at its end or earlier%s%s", i, p, s, seq_pos[s], no_gap ? ": " : "",
                                 no_gap ? no_gap : "");
            /* a ring keeps only its sequence's last positions: checked before any chunk runs */
            if (!vkl_llama_context_can_continue(vkl_api_context_llama(c), (uint32_t)s, (uint32_t)p))
                return vkr_error(VKLLM_ERR_UNSUPPORTED, "batch token %u: position %d of sequence %d, which continues "
                                 "at %u: the sliding-window layers keep only its last positions (overwrite at most "
                                 "the batch size back)", i, p, s, seq_pos[s]);
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
    const size_t n_vocab = vkl_api_context_model(c)->hp.n_vocab;
    struct api_batch *b = NULL;
    if (st == VKLLM_OK)
        st = batch_reserve(c, batch->n_tokens, n_want * n_vocab, &b);
    if (st != VKLLM_OK) {
        free(next);
        return st;
    }
    const uint32_t n = batch->n_tokens;
    const seq_table t = seq_table_of(c);
    b->n = 0;   /* no logits until the whole batch is done */
    int32_t rows = 0;
    for (uint32_t s = 0; s < n_seq; s++)
        next[s] = UINT32_MAX;   /* now the next cache row of each sequence */
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t s = (uint32_t)batch->seq_id[i], p = (uint32_t)batch->pos[i];
        /* a sequence's first token keeps the rows before its position (all of them after a gap) */
        b->seq_row[i] = next[s] != UINT32_MAX ? next[s] : p <= t.pos[s] ? rows_below(&t, s, p) : seq_rows(&t, s);
        next[s] = b->seq_row[i] + 1;
        b->pos[i] = p;
        b->seq[i] = s;
        b->want[i] = batch->logits ? batch->logits[i] != 0 : i + 1 == n;
        b->logit_row[i] = b->want[i] ? rows++ : -1;
    }
    free(next);
    llama_context *lc = vkl_api_context_llama(c);
    const uint32_t step = vkl_llama_context_seq_batch_max(lc);
    size_t rows_done = 0;   /* logit rows written by the chunks before */
    for (uint32_t done = 0; done < n;) {
        if (done && vkl_api_context_aborted(c))
            return vkr_error(VKLLM_ERR_CANCELLED, "batch aborted by the callback after %u of %u tokens", done, n);
        const uint32_t k = n - done < step ? n - done : step;
        st = vkl_llama_eval_seq_rows(lc, batch->token + done, b->pos + done, b->seq + done, b->seq_row + done,
                                     b->want + done, k, b->logits ? b->logits + rows_done * n_vocab : NULL);
        if (st != VKLLM_OK)
            return st;
        for (uint32_t i = done; i < done + k; i++) {   /* a sequence ends at its last token */
            set_row(&t, b->seq[i], b->seq_row[i], b->pos[i]);
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
    if (b->logit_row[i] < 0) {
        vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_get_logits_ith: token %d's logits were not asked for", i);
        return NULL;
    }
    return b->logits + (size_t)b->logit_row[i] * vkl_api_context_model(c)->hp.n_vocab;
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

/* A range of positions [p0, p1) (p0 < 0: 0, p1 < 0: the end) as [*from, *to) (*to UINT32_MAX: the end). */
static vkllm_status check_range(const vkllm_context *c, int32_t p0, int32_t p1, const char *what, uint32_t *from,
                                uint32_t *to)
{
    const uint32_t n_ctx = vkl_llama_context_n_ctx(vkl_api_context_llama((vkllm_context *)c));
    *from = p0 < 0 ? 0 : (uint32_t)p0;
    *to = p1 < 0 ? UINT32_MAX : (uint32_t)p1;
    if (*from > n_ctx || (p1 >= 0 && *to > n_ctx))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: positions [%d, %d) are past the context of %u", what, p0, p1,
                         n_ctx);
    if (*from > *to)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: positions [%d, %d) end before they start", what, p0, p1);
    return VKLLM_OK;
}

/* Removes rows [r0, r1) of sequence s, moving the rows after them down on the device. A failed move leaves
 * the sequence with its rows before r0 only (the move writes nothing below r0). */
static vkllm_status remove_rows(vkllm_context *c, const seq_table *t, uint32_t s, uint32_t r0, uint32_t r1)
{
    const uint32_t rows = seq_rows(t, s);
    if (r0 >= r1)
        return VKLLM_OK;
    if (r1 == rows) {   /* a tail: later positions are overwritten before they are read */
        keep_rows(t, s, r0);
        return VKLLM_OK;
    }
    vkllm_status st = vkl_llama_context_copy_rows(vkl_api_context_llama(c), s, r1, s, r0, rows - r1);
    if (st != VKLLM_OK) {
        keep_rows(t, s, r0);
        return st;
    }
    uint32_t *rp = t->row_pos + (size_t)s * t->n_ctx;
    if (t->gap[s] == 0)   /* the positions were implicit until now */
        for (uint32_t r = 0; r < rows; r++)
            rp[r] = r;
    memmove(rp + r0, rp + r1, (size_t)(rows - r1) * sizeof *rp);
    t->gap[s] += r1 - r0;   /* the last position stays */
    return VKLLM_OK;
}

vkllm_status vkllm_seq_rm(vkllm_context *c, int32_t seq_id, int32_t p0, int32_t p1)
{
    uint32_t from, to;
    vkllm_status st = vkl_api_context_check_idle(c);
    if (st == VKLLM_OK)
        st = check_seq(c, seq_id, true, "vkllm_seq_rm");
    if (st == VKLLM_OK)
        st = check_range(c, p0, p1, "vkllm_seq_rm", &from, &to);
    if (st != VKLLM_OK)
        return st;
    const seq_table t = seq_table_of(c);
    const uint32_t s0 = seq_id < 0 ? 0 : (uint32_t)seq_id, s1 = seq_id < 0 ? vkl_api_context_n_seq(c) : s0 + 1;
    for (uint32_t s = s0; s < s1; s++) {   /* check all before changing any */
        const uint32_t r0 = rows_below(&t, s, from), r1 = rows_below(&t, s, to);
        const char *no_gap = r0 < r1 && r1 < seq_rows(&t, s) ? gaps_refused(c) : NULL;
        if (no_gap)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_seq_rm: positions [%u, %d) of sequence %u, which "
                             "continues at %u: only a tail can be removed here: %s", from, p1, s, t.pos[s], no_gap);
    }
    /* A ring keeps only its sequence's last positions: a sequence cut back further could not continue. */
    for (uint32_t s = s0; s < s1; s++)
        if (from && from < t.pos[s] && !vkl_llama_context_can_continue(vkl_api_context_llama(c), s, from))
            return vkr_error(VKLLM_ERR_UNSUPPORTED,
                             "vkllm_seq_rm: the sliding-window layers keep only the last positions: sequence %u can be "
                             "cut back to 0 or by at most the batch size, not to %u", s, from);
    for (uint32_t s = s0; s < s1 && st == VKLLM_OK; s++)
        st = remove_rows(c, &t, s, rows_below(&t, s, from), rows_below(&t, s, to));
    return st;
}

vkllm_status vkllm_seq_clear(vkllm_context *c, int32_t seq_id) { return vkllm_seq_rm(c, seq_id, 0, -1); }

vkllm_status vkllm_seq_cp(vkllm_context *c, int32_t src, int32_t dst, int32_t p0, int32_t p1)
{
    uint32_t from, to;
    vkllm_status st = vkl_api_context_check_idle(c);
    if (st == VKLLM_OK)
        st = check_seq(c, src, false, "vkllm_seq_cp (source)");
    if (st == VKLLM_OK)
        st = check_seq(c, dst, false, "vkllm_seq_cp (destination)");
    if (st == VKLLM_OK)
        st = check_range(c, p0, p1, "vkllm_seq_cp", &from, &to);
    if (st != VKLLM_OK)
        return st;
    const seq_table t = seq_table_of(c);
    const uint32_t s = (uint32_t)src, d = (uint32_t)dst;
    if (p1 >= 0 && to > t.pos[s])
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vkllm_seq_cp: positions [%u, %d) of sequence %d, which "
                         "continues at %u", from, p1, src, t.pos[s]);
    if (s == d)
        return VKLLM_OK;
    /* Rings hold positions at fixed rows: a copy starts at 0 and ends where its source's ring lets dst go on. */
    llama_context *lc = vkl_api_context_llama(c);
    const uint32_t end = to < t.pos[s] ? to : t.pos[s];
    if (vkl_llama_context_ring_rows(lc) && from && from < end)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "vkllm_seq_cp: the sliding-window layers keep rings: copy positions "
                         "from 0, not from %u", from);
    if (from < end && !vkl_llama_context_can_continue(lc, s, end))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "vkllm_seq_cp: the sliding-window layers keep only the last "
                         "positions of sequence %d: copy up to its end or at most the batch size less, not to %u",
                         src, end);
    const uint32_t r0 = rows_below(&t, s, from), n = rows_below(&t, s, to) - r0;
    keep_rows(&t, d, 0);   /* a failed copy leaves dst empty, never half-copied */
    st = vkl_llama_context_copy_rows(lc, s, r0, d, 0, n);
    for (uint32_t r = 0; r < n && st == VKLLM_OK; r++)   /* dst's rows keep src's positions */
        set_row(&t, d, r, row_position(&t, s, r0 + r));
    return st;
}

/* Token sampler: see host/sampler.h. */
#include "host/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLER_MAX_HISTORY (1 << 20)
#define TOP_K_HEAP_MAX 4096       /* top-k up to this size: one pass with a heap, else quickselect */
#define TOP_P_SORT_MAX 2048       /* top-p over up to this many candidates: sort them all */
#define TOP_P_BUCKETS 1024        /* else a histogram of logits over [max - TOP_P_RANGE, max] (last: the rest) */
#define TOP_P_RANGE 24.0f

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct sampler {
    sampler_params p;
    int32_t n_vocab;
    cand *c;             /* [n_vocab] candidates */
    uint32_t *stamp;     /* [n_vocab] penalty bookkeeping: stamp[id] == gen once penalized this call */
    uint32_t gen;
    int32_t *hist;       /* ring of the last repeat_last_n accepted tokens */
    int32_t hist_n, hist_pos;
    uint64_t rng[4];     /* xoshiro256** */
    double mass[TOP_P_BUCKETS]; /* top-p histogram */
};

sampler_params vkl_sampler_default_params(void)
{
    sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
    return p;
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(sampler *s)
{
    uint64_t *r = s->rng;
    uint64_t out = rotl(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

/* Uniform in [0, 1). */
static double rng_uniform01(sampler *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

static void rng_seed(sampler *s, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
}

/* ---------------------------------------------------------------- create / free */

vkllm_status vkl_sampler_create(const sampler_params *params, int32_t n_vocab, sampler **out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler_create: out is NULL");
    *out = NULL;
    sampler_params p = params ? *params : vkl_sampler_default_params();
    if (n_vocab <= 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler: vocabulary size %d is not positive", n_vocab);
    if (isnan(p.temperature) || isnan(p.top_p) || isnan(p.min_p))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler: temperature, top_p and min_p must be numbers");
    if (!(p.repeat_penalty > 0.0f) || !isfinite(p.repeat_penalty))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler: repeat_penalty %g must be positive and finite",
                         (double)p.repeat_penalty);
    if (p.repeat_last_n < 0 || p.repeat_last_n > SAMPLER_MAX_HISTORY)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler: repeat_last_n %d is outside 0..%d", p.repeat_last_n,
                         SAMPLER_MAX_HISTORY);

    sampler *s = calloc(1, sizeof *s);
    if (!s)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "sampler: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->stamp = calloc((size_t)n_vocab, sizeof *s->stamp);
    s->hist = malloc((size_t)(p.repeat_last_n > 0 ? p.repeat_last_n : 1) * sizeof *s->hist);
    if (!s->c || !s->stamp || !s->hist) {
        vkl_sampler_free(s);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "sampler: out of memory for a vocabulary of %d", n_vocab);
    }
    vkl_sampler_reset(s);
    *out = s;
    return VKLLM_OK;
}

void vkl_sampler_free(sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->stamp);
    free(s->hist);
    free(s);
}

void vkl_sampler_reset(sampler *s)
{
    if (!s)
        return;
    s->hist_n = 0;
    s->hist_pos = 0;
    rng_seed(s, s->p.seed);
}

void vkl_sampler_accept(sampler *s, int32_t id)
{
    if (!s || id < 0 || id >= s->n_vocab || s->p.repeat_last_n <= 0)
        return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->hist_n < s->p.repeat_last_n)
        s->hist_n++;
}

/* ---------------------------------------------------------------- candidate selection */

/* Total order: higher logit first, then lower id. */
static inline bool cand_before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

static inline void cand_swap(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges c[0..n) so that c[0..k) are the k first in cand order (in any order), 0 < k < n.
 * Quickselect with a median-of-three pivot; falls back to a full sort if it makes too little progress. */
static void select_top(cand *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    int budget = 64;
    while (hi - lo > 16) {
        if (budget-- == 0) {
            qsort(c + lo, hi - lo, sizeof *c, cand_cmp);
            return;
        }
        size_t mid = lo + (hi - lo) / 2;
        /* median of three into c[lo] */
        if (cand_before(&c[mid], &c[lo]))
            cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[hi - 1], &c[lo]))
            cand_swap(&c[hi - 1], &c[lo]);
        if (cand_before(&c[hi - 1], &c[mid]))
            cand_swap(&c[hi - 1], &c[mid]);
        cand_swap(&c[lo], &c[mid]); /* pivot (the median) at lo */
        cand pivot = c[lo];
        /* partition (lo, hi): elements before the pivot go left */
        size_t store = lo + 1;
        for (size_t i = lo + 1; i < hi; i++)
            if (cand_before(&c[i], &pivot))
                cand_swap(&c[i], &c[store++]);
        cand_swap(&c[lo], &c[store - 1]); /* pivot at its final place store-1 */
        size_t pos = store - 1;
        if (pos == k || pos + 1 == k)
            return;
        if (pos > k)
            hi = pos;
        else
            lo = pos + 1;
    }
    qsort(c + lo, hi - lo, sizeof *c, cand_cmp);
}

/* c[0..k) = the k best of logits[0..n) (in no particular order), k < n: a heap of the k best so far, whose
 * root is the worst of them; one pass over the logits. */
static void heap_select(cand *c, const float *logits, size_t n, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        /* insert, sifting up (the parent must not be before the child) */
        cand x = {isnan(logits[i]) ? -INFINITY : logits[i], (int32_t)i};
        size_t j = i;
        while (j > 0 && cand_before(&c[(j - 1) / 2], &x)) {
            c[j] = c[(j - 1) / 2];
            j = (j - 1) / 2;
        }
        c[j] = x;
    }
    for (size_t i = k; i < n; i++) {
        cand x = {isnan(logits[i]) ? -INFINITY : logits[i], (int32_t)i};
        if (!cand_before(&x, &c[0]))
            continue;
        size_t j = 0;
        for (;;) {
            size_t ch = 2 * j + 1;
            if (ch >= k)
                break;
            if (ch + 1 < k && cand_before(&c[ch], &c[ch + 1]))
                ch++; /* the worse child */
            if (!cand_before(&x, &c[ch]))
                break;
            c[j] = c[ch];
            j = ch;
        }
        c[j] = x;
    }
}

static inline size_t top_p_bucket(float logit, float max_l)
{
    float d = (max_l - logit) * ((float)(TOP_P_BUCKETS - 1) / TOP_P_RANGE);
    return d < (float)(TOP_P_BUCKETS - 1) ? (size_t)d : TOP_P_BUCKETS - 1; /* -inf, NaN-free: d >= 0 */
}

/* Top-p over c[0..n): moves the kept candidates to the front and returns how many. */
static size_t top_p_filter(sampler *s, cand *c, size_t n, float max_l, float top_p)
{
    if (n <= TOP_P_SORT_MAX) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += exp((double)c[i].logit - max_l);
        const double target = (double)top_p * sum;
        qsort(c, n, sizeof *c, cand_cmp);
        double cum = 0.0;
        for (size_t i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - max_l);
            if (cum >= target)
                return i + 1;
        }
        return n; /* rounding: keep everything */
    }
    /* Buckets of logits, in order: every logit in bucket b is above every logit in bucket b+1. Whole buckets
     * are kept while their mass is below the target; the bucket that crosses it is sorted. */
    double *mass = s->mass;
    memset(mass, 0, sizeof s->mass);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = expf(c[i].logit - max_l);
        mass[top_p_bucket(c[i].logit, max_l)] += w;
        sum += w;
    }
    const double target = (double)top_p * sum;
    double before = 0.0;
    size_t edge = 0;
    while (edge < TOP_P_BUCKETS - 1 && before + mass[edge] < target)
        before += mass[edge++];
    /* [0, k1): buckets before the edge; [k1, k2): the edge bucket */
    size_t k1 = 0;
    for (size_t i = 0; i < n; i++)
        if (top_p_bucket(c[i].logit, max_l) < edge)
            cand_swap(&c[i], &c[k1++]);
    size_t k2 = k1;
    for (size_t i = k1; i < n; i++)
        if (top_p_bucket(c[i].logit, max_l) == edge)
            cand_swap(&c[i], &c[k2++]);
    qsort(c + k1, k2 - k1, sizeof *c, cand_cmp);
    double cum = before;
    for (size_t i = k1; i < k2; i++) {
        cum += exp((double)c[i].logit - max_l);
        if (cum >= target)
            return i + 1;
    }
    return k2;
}

static void apply_penalty(sampler *s, float *logits)
{
    if (s->p.repeat_penalty == 1.0f || s->hist_n == 0)
        return;
    if (++s->gen == 0) {
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof *s->stamp);
        s->gen = 1;
    }
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t id = s->hist[i];
        if (s->stamp[id] == s->gen)
            continue;
        s->stamp[id] = s->gen;
        if (logits[id] <= 0.0f)
            logits[id] *= s->p.repeat_penalty;
        else
            logits[id] /= s->p.repeat_penalty;
    }
}

int32_t vkl_sampler_sample(sampler *s, float *logits)
{
    if (!s || !logits) {
        vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "sampler_sample: NULL argument");
        return -1;
    }
    apply_penalty(s, logits);

    /* argmax (NaN never wins), also the answer for degenerate rows */
    int32_t best = 0;
    float best_l = -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (logits[i] > best_l) {
            best_l = logits[i];
            best = i;
        }
    if (s->p.temperature <= 0.0f || best_l == -INFINITY || best_l == INFINITY)
        return best;

    size_t n = (size_t)s->n_vocab;
    cand *c = s->c;
    const float max_l = best_l;

    /* top-k */
    size_t k = s->p.top_k > 0 ? (size_t)s->p.top_k : n;
    if (k < n && k <= TOP_K_HEAP_MAX) {
        heap_select(c, logits, n, k);
        n = k;
    } else {
        for (size_t i = 0; i < n; i++) {
            c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
            c[i].id = (int32_t)i;
        }
        if (k < n) {
            select_top(c, n, k);
            n = k;
        }
    }

    /* top-p over the probabilities at temperature 1 */
    if (s->p.top_p < 1.0f && n > 1)
        n = top_p_filter(s, c, n, max_l, s->p.top_p);

    /* min-p: p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p) */
    if (s->p.min_p > 0.0f && n > 1) {
        const float thr = max_l + logf(s->p.min_p);
        size_t j = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit >= thr || c[i].logit == max_l)
                c[j++] = c[i];
        n = j;
    }

    /* temperature, softmax, draw (the weights replace the logits) */
    const double inv_t = 1.0 / (double)s->p.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float w = (float)exp(((double)c[i].logit - max_l) * inv_t);
        c[i].logit = w;
        sum += w;
    }
    if (!(sum > 0.0) || !isfinite(sum))
        return best;
    const double r = rng_uniform01(s) * sum;
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].logit;
        if (r < cum)
            return c[i].id;
    }
    /* rounding left r at the very end: the last candidate with non-zero weight */
    for (size_t i = n; i-- > 0;)
        if (c[i].logit > 0.0f)
            return c[i].id;
    return best;
}

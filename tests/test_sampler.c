/* Sampler: greedy, reproducibility, top-k/top-p/min-p supports, temperature, repetition penalty, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/sampler.h"
#include "util.h"

static sampler_params plain(float temp, uint64_t seed)
{
    /* everything off except the temperature */
    sampler_params p = {temp, 0, 1.0f, 0.0f, 1.0f, 64, seed};
    return p;
}

static sampler *make(const sampler_params *p, int32_t n_vocab)
{
    sampler *s = NULL;
    vkllm_status st = vkl_sampler_create(p, n_vocab, &s);
    CHECK(st == VKLLM_OK, "sampler_create: %s", vkr_last_error());
    return s;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* Samples `n` times from the same logits (copied each time), counting per id. */
static void histogram(sampler *s, const float *logits, int32_t n_vocab, int n, int *counts)
{
    float *tmp = malloc((size_t)n_vocab * sizeof *tmp);
    memset(counts, 0, (size_t)n_vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        memcpy(tmp, logits, (size_t)n_vocab * sizeof *tmp);
        int32_t id = vkl_sampler_sample(s, tmp);
        CHECK(id >= 0 && id < n_vocab, "sampled id %d out of range", id);
        if (id >= 0 && id < n_vocab)
            counts[id]++;
    }
    free(tmp);
}

static void test_greedy(test_rng *r)
{
    const int32_t nv = 1000;
    float *x = malloc(nv * sizeof *x), *y = malloc(nv * sizeof *y);
    sampler_params p = vkl_sampler_default_params();
    p.temperature = 0.0f;
    sampler *s = make(&p, nv);
    sampler_params pk = plain(1.0f, 7);
    pk.top_k = 1;
    sampler *sk = make(&pk, nv);
    for (int it = 0; it < 200 && s && sk; it++) {
        rng_fill(r, x, nv, -10.0f, 10.0f);
        int32_t want = argmax(x, nv);
        memcpy(y, x, nv * sizeof *y);
        CHECK(vkl_sampler_sample(s, y) == want, "greedy: not the argmax");
        memcpy(y, x, nv * sizeof *y);
        CHECK(vkl_sampler_sample(sk, y) == want, "top_k = 1: not the argmax");
    }
    /* ties: the lowest id */
    for (int32_t i = 0; i < nv; i++)
        x[i] = 1.0f;
    x[500] = x[700] = 3.0f;
    if (s)
        CHECK(vkl_sampler_sample(s, x) == 500, "greedy tie");
    /* negative temperature is greedy too */
    p.temperature = -1.0f;
    sampler *sn = make(&p, nv);
    for (int32_t i = 0; i < nv; i++)
        x[i] = (float)((i * 37) % 101);
    if (sn)
        CHECK(vkl_sampler_sample(sn, x) == argmax(x, nv), "negative temperature");
    vkl_sampler_free(s);
    vkl_sampler_free(sk);
    vkl_sampler_free(sn);
    free(x);
    free(y);
}

static void sequence(sampler *s, const float *logits, int32_t nv, int n, int32_t *out)
{
    float *tmp = malloc((size_t)nv * sizeof *tmp);
    for (int i = 0; i < n; i++) {
        memcpy(tmp, logits, (size_t)nv * sizeof *tmp);
        out[i] = vkl_sampler_sample(s, tmp);
        vkl_sampler_accept(s, out[i]);
    }
    free(tmp);
}

static void test_reproducible(test_rng *r)
{
    const int32_t nv = 500;
    const int n = 300;
    float *x = malloc(nv * sizeof *x);
    rng_fill(r, x, nv, -2.0f, 2.0f);
    int32_t a[300], b[300], c[300], d[300];
    sampler_params p = vkl_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 100;
    p.repeat_penalty = 1.1f;
    p.seed = 12345;
    sampler *s1 = make(&p, nv), *s2 = make(&p, nv);
    p.seed = 12346;
    sampler *s3 = make(&p, nv);
    if (s1 && s2 && s3) {
        sequence(s1, x, nv, n, a);
        sequence(s2, x, nv, n, b);
        sequence(s3, x, nv, n, c);
        CHECK(!memcmp(a, b, sizeof a), "same seed, different sequences");
        CHECK(memcmp(a, c, sizeof a) != 0, "different seeds, same sequence");
        vkl_sampler_reset(s1);
        sequence(s1, x, nv, n, d);
        CHECK(!memcmp(a, d, sizeof a), "sampler_reset does not restart the sequence");
        /* seed 0 is an ordinary seed */
        p.seed = 0;
        sampler *s0 = make(&p, nv);
        if (s0) {
            sequence(s0, x, nv, n, d);
            CHECK(memcmp(a, d, sizeof a) != 0, "seed 0 gives seed 12345's sequence");
        }
        vkl_sampler_free(s0);
    }
    vkl_sampler_free(s1);
    vkl_sampler_free(s2);
    vkl_sampler_free(s3);
    free(x);
}

/* logits of the distribution probs (n entries) padded with very unlikely tokens */
static void logits_of(const double *probs, int n, float *x, int32_t nv)
{
    for (int32_t i = 0; i < nv; i++)
        x[i] = i < n ? (float)log(probs[i]) : -30.0f;
}

static void test_truncation(void)
{
    const int32_t nv = 64;
    const int N = 4000;
    float x[64];
    int counts[64];
    /* shuffled so that the order of ids is not the order of probabilities */
    const double probs[6] = {0.05, 0.30, 0.02, 0.45, 0.15, 0.03};
    logits_of(probs, 6, x, nv);

    /* plain temperature 1: frequencies follow the distribution */
    sampler_params p = plain(1.0f, 1);
    sampler *s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        for (int i = 0; i < 6; i++)
            CHECK(fabs(counts[i] / (double)N - probs[i]) < 0.04, "temperature 1: id %d frequency %.3f, expected %.3f",
                  i, counts[i] / (double)N, probs[i]);
    }
    vkl_sampler_free(s);

    /* top-k 2: only ids 3 and 1, in ratio 0.45 : 0.30 */
    p = plain(1.0f, 2);
    p.top_k = 2;
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        CHECK(counts[3] + counts[1] == N, "top_k 2: support larger than {3, 1}");
        CHECK(fabs(counts[3] / (double)N - 0.6) < 0.05, "top_k 2: id 3 frequency %.3f, expected 0.6",
              counts[3] / (double)N);
    }
    vkl_sampler_free(s);

    /* top-p 0.8: 0.45 + 0.30 = 0.75 < 0.8, + 0.15 = 0.90 -> {3, 1, 4} */
    p = plain(1.0f, 3);
    p.top_p = 0.8f;
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        CHECK(counts[3] + counts[1] + counts[4] == N, "top_p 0.8: support larger than {3, 1, 4}");
        CHECK(counts[3] > 0 && counts[1] > 0 && counts[4] > 0, "top_p 0.8: support smaller than {3, 1, 4}");
        CHECK(fabs(counts[4] / (double)N - 0.15 / 0.90) < 0.04, "top_p 0.8: id 4 frequency %.3f, expected %.3f",
              counts[4] / (double)N, 0.15 / 0.90);
    }
    vkl_sampler_free(s);

    /* top-p on a large vocabulary without top-k (exercises the incremental sort) */
    {
        const int32_t big = 50000;
        float *y = malloc(big * sizeof *y);
        for (int32_t i = 0; i < big; i++)
            y[i] = -(float)((i * 7919) % big) * 0.001f; /* a permutation of 0, -0.001, ..., -49.999 */
        /* p_j ~ exp(-0.001 j): mass of the top m = (1 - q^m)/(1 - q^big), q = e^-0.001; top_p 0.5 -> m = 693 */
        p = plain(1.0f, 4);
        p.top_p = 0.5f;
        s = make(&p, big);
        int *bc = calloc(big, sizeof *bc);
        if (s && bc) {
            float *tmp = malloc(big * sizeof *tmp);
            int max_rank = 0;
            for (int i = 0; i < 2000; i++) {
                memcpy(tmp, y, big * sizeof *tmp);
                int32_t id = vkl_sampler_sample(s, tmp);
                int rank = (int)lroundf(-y[id] * 1000.0f);
                if (rank > max_rank)
                    max_rank = rank;
            }
            CHECK(max_rank <= 695 && max_rank > 600, "top_p 0.5 on 50000 tokens: highest rank sampled %d", max_rank);
            free(tmp);
        }
        free(bc);
        vkl_sampler_free(s);
        free(y);
    }

    /* min-p 0.1: p >= 0.045 -> {3, 1, 4, 0}; 0.03 and 0.02 excluded */
    p = plain(1.0f, 5);
    p.min_p = 0.1f;
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        CHECK(counts[3] + counts[1] + counts[4] + counts[0] == N, "min_p 0.1: support larger than {3, 1, 4, 0}");
        CHECK(counts[0] > 0, "min_p 0.1: id 0 (p = 0.05) never sampled");
    }
    vkl_sampler_free(s);

    /* combined: top-k 3 then min-p 0.5 (p >= 0.225) -> {3, 1} */
    p = plain(1.0f, 6);
    p.top_k = 3;
    p.min_p = 0.5f;
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        CHECK(counts[3] + counts[1] == N && counts[1] > 0, "top_k 3 + min_p 0.5: support is not {3, 1}");
    }
    vkl_sampler_free(s);

    /* low temperature concentrates, high temperature spreads (truncation happens before temperature) */
    p = plain(0.05f, 7);
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        CHECK(counts[3] > N * 0.99, "temperature 0.05: argmax frequency %.3f", counts[3] / (double)N);
    }
    vkl_sampler_free(s);
    p = plain(4.0f, 8);
    p.top_k = 6;
    s = make(&p, nv);
    if (s) {
        histogram(s, x, nv, N, counts);
        /* at T = 4 the ratio p(3)/p(2) = (0.45/0.02)^(1/4) ~ 2.2 */
        CHECK(counts[2] > N / 20 && counts[3] < N / 3, "temperature 4: not spread out (%d, %d)", counts[2], counts[3]);
    }
    vkl_sampler_free(s);
}

static void test_penalty(void)
{
    const int32_t nv = 16;
    float x[16];
    sampler_params p = plain(0.0f, 0);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 4;
    sampler *s = make(&p, nv);
    if (!s)
        return;
    for (int32_t i = 0; i < nv; i++)
        x[i] = -5.0f;
    x[0] = 2.0f;
    x[1] = 1.9f;
    CHECK(vkl_sampler_sample(s, (float[16]){2.0f, 1.9f}) == 0, "no history: argmax");
    vkl_sampler_accept(s, 0);
    float y[16];
    memcpy(y, x, sizeof y);
    CHECK(vkl_sampler_sample(s, y) == 1, "positive logit penalized: 2.0 / 1.5 < 1.9");
    CHECK(fabsf(y[0] - 2.0f / 1.5f) < 1e-6f, "penalty applied in place: %f", (double)y[0]);
    /* the history window: 4 other tokens push token 0 out */
    for (int i = 0; i < 4; i++)
        vkl_sampler_accept(s, 5 + i);
    memcpy(y, x, sizeof y);
    CHECK(vkl_sampler_sample(s, y) == 0, "token 0 left the window but is still penalized");
    /* negative logits are multiplied */
    vkl_sampler_reset(s);
    for (int32_t i = 0; i < nv; i++)
        x[i] = -9.0f;
    x[2] = -1.0f;
    x[3] = -1.2f;
    vkl_sampler_accept(s, 2);
    memcpy(y, x, sizeof y);
    CHECK(vkl_sampler_sample(s, y) == 3, "negative logit penalized: -1.0 * 1.5 < -1.2");
    vkl_sampler_free(s);

    /* once per distinct token, however often it occurs */
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 8;
    s = make(&p, nv);
    if (!s)
        return;
    for (int32_t i = 0; i < nv; i++)
        x[i] = -5.0f;
    x[0] = 2.0f;
    x[1] = 1.7f;
    for (int i = 0; i < 3; i++)
        vkl_sampler_accept(s, 0);
    memcpy(y, x, sizeof y);
    CHECK(vkl_sampler_sample(s, y) == 0 && fabsf(y[0] - 2.0f / 1.1f) < 1e-6f, "penalty applied more than once: %f",
          (double)y[0]);
    vkl_sampler_accept(s, -1);  /* ignored */
    vkl_sampler_accept(s, nv);  /* ignored */
    memcpy(y, x, sizeof y);
    CHECK(vkl_sampler_sample(s, y) == 0, "out-of-range accept changed something");
    vkl_sampler_free(s);

    /* repeat_last_n 0 disables it */
    p.repeat_penalty = 10.0f;
    p.repeat_last_n = 0;
    s = make(&p, nv);
    if (s) {
        vkl_sampler_accept(s, 0);
        memcpy(y, x, sizeof y);
        CHECK(vkl_sampler_sample(s, y) == 0, "repeat_last_n 0 still penalizes");
    }
    vkl_sampler_free(s);
}

static void test_bad_input(void)
{
    sampler *s = NULL;
    sampler_params p = vkl_sampler_default_params();
    CHECK(vkl_sampler_create(&p, 0, &s) == VKLLM_ERR_INVALID_ARGUMENT && !s, "n_vocab 0");
    p.temperature = NAN;
    CHECK(vkl_sampler_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARGUMENT && !s, "NaN temperature");
    p = vkl_sampler_default_params();
    p.repeat_penalty = 0.0f;
    CHECK(vkl_sampler_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARGUMENT && !s, "repeat_penalty 0");
    p = vkl_sampler_default_params();
    p.repeat_last_n = -1;
    CHECK(vkl_sampler_create(&p, 10, &s) == VKLLM_ERR_INVALID_ARGUMENT && !s && vkr_last_error()[0], "repeat_last_n -1");
    CHECK(vkl_sampler_create(NULL, 10, &s) == VKLLM_OK && s, "NULL params: defaults");
    if (s) {
        float x[10] = {NAN, 1.0f, NAN, 3.0f, -INFINITY, 0, 0, 0, 0, 0};
        for (int i = 0; i < 50; i++) {
            float y[10];
            memcpy(y, x, sizeof y);
            int32_t id = vkl_sampler_sample(s, y);
            CHECK(id >= 0 && id < 10 && id != 0 && id != 2 && id != 4, "NaN/-inf logits: id %d", id);
        }
        float all_bad[10];
        for (int i = 0; i < 10; i++)
            all_bad[i] = i % 2 ? NAN : -INFINITY;
        CHECK(vkl_sampler_sample(s, all_bad) == 0, "all logits -inf/NaN: lowest id");
        float inf_row[10] = {0, 1, INFINITY, 2, INFINITY, 0, 0, 0, 0, 0};
        CHECK(vkl_sampler_sample(s, inf_row) == 2, "+inf logit wins");
        CHECK(vkl_sampler_sample(s, NULL) == -1, "NULL logits");
        CHECK(vkl_sampler_sample(NULL, x) == -1, "NULL sampler");
    }
    vkl_sampler_free(s);
    vkl_sampler_free(NULL);
    vkl_sampler_accept(NULL, 1);
    vkl_sampler_reset(NULL);
}

static void test_speed(test_rng *r)
{
    const int32_t nv = 128256;
    float *x = malloc(nv * sizeof *x), *y = malloc(nv * sizeof *y);
    for (int32_t i = 0; i < nv; i++)
        x[i] = 3.0f * rng_normal(r);
    sampler_params cfgs[2] = {vkl_sampler_default_params(), plain(0.8f, 1)};
    cfgs[1].top_p = 0.95f;
    const char *names[2] = {"defaults (top_k 40)", "top_p 0.95 only"};
    for (int k = 0; k < 2; k++) {
        sampler *s = make(&cfgs[k], nv);
        if (!s)
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const int iters = 50;
        for (int i = 0; i < iters; i++) {
            memcpy(y, x, nv * sizeof *y);
            int32_t id = vkl_sampler_sample(s, y);
            vkl_sampler_accept(s, id);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / iters;
        fprintf(stderr, "sample, %d-token vocab, %s: %.0f us\n", nv, names[k], us);
        vkl_sampler_free(s);
    }
    free(x);
    free(y);
}

int main(void)
{
    test_rng r;
    rng_init(&r, test_seed());
    test_greedy(&r);
    test_reproducible(&r);
    test_truncation();
    test_penalty();
    test_bad_input();
    test_speed(&r);
    return test_finish("sampler");
}

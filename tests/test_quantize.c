/* The error-minimising quantizers (host/format/quantize.c), checked through the CPU reference dequantizer
 * (host/format/quant.c's vkl_dequantize_row): per type, on seeded random rows (normal, and heavy-tailed: a normal
 * divided by the square root of an independent uniform, so a few values per block are far out), the
 * squared error of dequantize(vkl_quantize_row_search(x)) must not exceed the simple round-to-nearest
 * vkl_quantize_row's, and its relative RMS error ||x - x'|| / ||x|| must stay under a per-type bound (measured,
 * with margin; a misplaced bit or scale gives errors of order 1). Special rows (zeros, constants, one huge
 * outlier) must come back finite, zeros exactly and constants closely. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"
#include "host/format/quantize.h"
#include "util.h"

enum { N = 4096, ROWS = 16 };

typedef struct type_case {
    uint32_t type;
    double bound_normal, bound_heavy;   /* relative RMS error bounds */
} type_case;

/* Bounds: the relative RMS errors measured on these distributions (normal / heavy-tailed: Q4_0 .081/.112,
 * Q4_1 .070/.085, Q5_0 .040/.057, Q5_1 .033/.041, Q8_0 .0048/.0067, Q2_K .261/.294, Q3_K .143/.180,
 * Q4_K .070/.086, Q5_K .034/.042, Q6_K .016/.022, IQ4_NL .074/.091, IQ4_XS .074/.091) plus 30%. */
static const type_case cases[] = {
    {GGML_TYPE_Q4_0, 0.105, 0.145},  {GGML_TYPE_Q4_1, 0.091, 0.111},    {GGML_TYPE_Q5_0, 0.052, 0.074},
    {GGML_TYPE_Q5_1, 0.044, 0.054},  {GGML_TYPE_Q8_0, 0.0062, 0.0088},  {GGML_TYPE_Q2_K, 0.34, 0.38},
    {GGML_TYPE_Q3_K, 0.186, 0.235},  {GGML_TYPE_Q4_K, 0.091, 0.112},    {GGML_TYPE_Q5_K, 0.045, 0.055},
    {GGML_TYPE_Q6_K, 0.021, 0.028},  {GGML_TYPE_IQ4_NL, 0.096, 0.119},  {GGML_TYPE_IQ4_XS, 0.096, 0.119},
};

static double sq_err(const float *x, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return s;
}

static double sq_norm(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

/* Round trip of one row through the search quantizer (search) or the simple one. */
static void round_trip(uint32_t type, bool search, const float *x, float *y, void *buf)
{
    memset(buf, 0xa5, (size_t)vkl_ggml_row_bytes(type, N));     /* poison: every byte must be written */
    if (search)
        vkl_quantize_row_search(type, x, buf, N);
    else
        vkl_quantize_row(type, x, buf, N);
    vkl_dequantize_row(type, buf, y, N);
}

static void fill(test_rng *rng, float *x, bool heavy)
{
    for (size_t i = 0; i < N; i++) {
        float v = rng_normal(rng);
        if (heavy)
            v /= sqrtf(rng_uniform(rng, 0.02f, 1.0f));
        x[i] = 0.05f * v;
    }
}

static void check_distribution(const type_case *c, test_rng *rng, bool heavy, float *x, float *y, void *buf)
{
    double e_search = 0, e_simple = 0, norm = 0;
    for (int r = 0; r < ROWS; r++) {
        fill(rng, x, heavy);
        norm += sq_norm(x, N);
        round_trip(c->type, true, x, y, buf);
        e_search += sq_err(x, y, N);
        round_trip(c->type, false, x, y, buf);
        e_simple += sq_err(x, y, N);
    }
    double rel = sqrt(e_search / norm), rel_simple = sqrt(e_simple / norm);
    double bound = heavy ? c->bound_heavy : c->bound_normal;
    fprintf(stderr, "%-7s %-6s relative RMS error: search %.5f, simple %.5f (%.1f%% less squared error), bound %.4f\n",
            vkl_ggml_type_name(c->type), heavy ? "heavy" : "normal", rel, rel_simple,
            100.0 * (1.0 - e_search / e_simple), bound);
    CHECK(e_search <= e_simple, "%s %s: search error %g > simple %g", vkl_ggml_type_name(c->type),
          heavy ? "heavy" : "normal", e_search, e_simple);
    CHECK(rel <= bound, "%s %s: relative RMS error %g > %g", vkl_ggml_type_name(c->type), heavy ? "heavy" : "normal", rel,
          bound);
}

static void check_special(uint32_t type, float *x, float *y, void *buf)
{
    const char *name = vkl_ggml_type_name(type);
    /* All zeros: exactly zero back. */
    memset(x, 0, N * sizeof *x);
    round_trip(type, true, x, y, buf);
    CHECK(sq_norm(y, N) == 0, "%s: zeros do not come back as zeros", name);
    /* Constant rows, both signs: finite and within 1% (a constant is one level times the scale, or the
     * offset of the affine types; f16 scales round to 3 decimal digits). */
    const float constants[] = {0.37f, -2.5f, 1e-3f};
    for (size_t k = 0; k < sizeof constants / sizeof constants[0]; k++) {
        for (size_t i = 0; i < N; i++)
            x[i] = constants[k];
        round_trip(type, true, x, y, buf);
        CHECK(first_nonfinite(y, N) < 0, "%s: constant %g gives a non-finite value", name, constants[k]);
        CHECK(sqrt(sq_err(x, y, N) / sq_norm(x, N)) < 0.01, "%s: constant %g comes back as %g", name, constants[k],
              y[0]);
    }
    /* One huge outlier in small noise: finite everywhere; the outlier itself is kept within 10%. Values
     * beyond the f16 range (1e30) must still give finite (clamped) scales. */
    const float outliers[] = {1e4f, -1e6f, 1e30f};
    test_rng rng;
    rng_init(&rng, 12345);
    for (size_t k = 0; k < sizeof outliers / sizeof outliers[0]; k++) {
        fill(&rng, x, false);
        x[N / 3] = outliers[k];
        round_trip(type, true, x, y, buf);
        CHECK(first_nonfinite(y, N) < 0, "%s: outlier %g gives a non-finite value", name, outliers[k]);
        if (fabsf(outliers[k]) < 6e4f)
            CHECK(fabsf(y[N / 3] - x[N / 3]) <= 0.1f * fabsf(x[N / 3]), "%s: outlier %g comes back as %g", name,
                  outliers[k], y[N / 3]);
    }
}

int main(void)
{
    test_rng rng;
    rng_init(&rng, test_seed());
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    void *buf = malloc(N * sizeof(float));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(vkl_quantize_search_supported(cases[i].type), "%s not supported", vkl_ggml_type_name(cases[i].type));
        check_distribution(&cases[i], &rng, false, x, y, buf);
        check_distribution(&cases[i], &rng, true, x, y, buf);
        check_special(cases[i].type, x, y, buf);
    }
    /* The float types are plain conversions. */
    const uint32_t floats[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    for (size_t i = 0; i < 3; i++) {
        fill(&rng, x, true);
        round_trip(floats[i], true, x, y, buf);
        double rel = sqrt(sq_err(x, y, N) / sq_norm(x, N));
        CHECK(rel <= (floats[i] == GGML_TYPE_F32 ? 0 : floats[i] == GGML_TYPE_F16 ? 1e-3 : 4e-3), "%s: error %g",
              vkl_ggml_type_name(floats[i]), rel);
    }
    CHECK(!vkl_quantize_search_supported(GGML_TYPE_IQ2_XXS) && !vkl_quantize_search_supported(999), "unsupported types");
    free(x);
    free(y);
    free(buf);
    return test_finish("quantize");
}

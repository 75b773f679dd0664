/* host/quant.c: f16 conversion (exhaustive round trip, round-to-nearest-even at every midpoint),
 * type table, hand-built GGUF blocks, and quantize -> dequantize error bounds on seeded random data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/quant.h"
#include "util.h"

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static bool half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

static void test_fp16_known_values(void)
{
    static const struct { uint16_t h; float f; } known[] = {
        {0x0000, 0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x3800, 0.5f}, {0x3555, 0.333251953125f},
        {0x7bff, 65504.0f}, {0xfbff, -65504.0f}, {0x0400, 6.103515625e-05f} /* 2^-14 */,
        {0x0001, 5.9604644775390625e-08f} /* 2^-24 */, {0x03ff, 6.0975551605224609375e-05f} /* 1023*2^-24 */,
        {0x3c01, 1.0009765625f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        CHECK(fp16_to_fp32(known[i].h) == known[i].f, "fp16_to_fp32(0x%04x) = %.9g, want %.9g", known[i].h,
              fp16_to_fp32(known[i].h), known[i].f);
        CHECK(fp32_to_fp16(known[i].f) == known[i].h, "fp32_to_fp16(%.9g) = 0x%04x, want 0x%04x", known[i].f,
              fp32_to_fp16(known[i].f), known[i].h);
    }
    CHECK(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0x7c00) > 0, "0x7c00 is +inf");
    CHECK(isinf(fp16_to_fp32(0xfc00)) && fp16_to_fp32(0xfc00) < 0, "0xfc00 is -inf");
    CHECK(signbit(fp16_to_fp32(0x8000)) && fp16_to_fp32(0x8000) == 0.0f, "0x8000 is -0");
    CHECK(fp32_to_fp16(-0.0f) == 0x8000, "-0 keeps its sign");
    CHECK(fp32_to_fp16(INFINITY) == 0x7c00 && fp32_to_fp16(-INFINITY) == 0xfc00, "infinities");
    CHECK(fp32_to_fp16(1e10f) == 0x7c00 && fp32_to_fp16(-1e10f) == 0xfc00, "overflow goes to inf");
    CHECK(fp32_to_fp16(65519.996f) == 0x7bff, "just below 65520 rounds down to 65504");
    CHECK(fp32_to_fp16(65520.0f) == 0x7c00, "65520 is the tie between 65504 (odd) and 2^16: goes to inf");
    CHECK(fp32_to_fp16(bits_to_f32(0x00000001u)) == 0x0000, "f32 subnormal -> +0");
    CHECK(fp32_to_fp16(-bits_to_f32(0x00000001u)) == 0x8000, "negative f32 subnormal -> -0");
    CHECK(fp32_to_fp16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 is the tie between 0 and 2^-24: goes to 0");
    CHECK(fp32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001, "just above 2^-25 -> 2^-24");
    CHECK(fp32_to_fp16(ldexpf(3.0f, -25)) == 0x0002, "3*2^-25 is the tie between 1 and 2 (x2^-24): even");
    /* NaNs of every shape stay NaN, including a payload only in the low bits that f16 cannot hold. */
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f801fffu, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = fp32_to_fp16(bits_to_f32(nans[i]));
        CHECK(half_is_nan(h), "nan 0x%08x -> 0x%04x, not a nan", nans[i], h);
        CHECK((h >> 15) == (nans[i] >> 31), "nan 0x%08x lost its sign", nans[i]);
    }
}

/* Every one of the 65536 halves converts to f32 and back unchanged (NaNs stay NaN). */
static void test_fp16_round_trip_exhaustive(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_fp32((uint16_t)h);
        uint16_t back = fp32_to_fp16(f);
        if (half_is_nan((uint16_t)h)) {
            if (!isnan(f) || !half_is_nan(back)) {
                if (bad++ < 5)
                    CHECK(false, "nan 0x%04x -> %g -> 0x%04x", h, f, back);
            }
        } else if (back != h) {
            if (bad++ < 5)
                CHECK(false, "0x%04x -> %.9g -> 0x%04x", h, f, back);
        }
    }
    CHECK(bad == 0, "%d of 65536 halves did not round-trip", bad);
}

/* Between every pair of adjacent finite halves a < b (both signs): the exact midpoint goes to the one
 * with an even mantissa, and the floats next to the midpoint go to the nearer half. The midpoint of two
 * halves needs 12 significant bits, so it is exact in f32. */
static void test_fp16_rounding_midpoints(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        for (int neg = 0; neg < 2; neg++) {
            uint16_t lo = (uint16_t)(h | (neg ? 0x8000u : 0));
            uint16_t hi = (uint16_t)((h + 1) | (neg ? 0x8000u : 0));
            float a = fp16_to_fp32(lo), b = fp16_to_fp32(hi);
            float mid = (float)(((double)a + (double)b) / 2.0);
            uint16_t even = (h & 1u) ? hi : lo;
            uint16_t got_mid = fp32_to_fp16(mid);
            uint16_t got_below = fp32_to_fp16(nextafterf(mid, a));
            uint16_t got_above = fp32_to_fp16(nextafterf(mid, b));
            if (got_mid != even || got_below != lo || got_above != hi) {
                if (bad++ < 5)
                    CHECK(false, "between 0x%04x and 0x%04x: mid -> 0x%04x (want 0x%04x), below -> 0x%04x, above -> 0x%04x",
                          lo, hi, got_mid, even, got_below, got_above);
            }
        }
    }
    CHECK(bad == 0, "%d midpoint pairs rounded wrongly", bad);
}

#if defined(__FLT16_MAX__)
/* Cross-check against the compiler's own _Float16 conversion on random f32 bit patterns. */
static void test_fp16_vs_compiler(test_rng *r)
{
    int bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = rng_u32(r);
        if (i & 1) /* half the draws in the range f16 covers, where the interesting rounding happens */
            u = (u & 0x80ffffffu) | ((uint32_t)(100 + rng_u32(r) % 48) << 23);
        float f = bits_to_f32(u);
        _Float16 c = (_Float16)f;
        uint16_t want;
        memcpy(&want, &c, sizeof want);
        uint16_t got = fp32_to_fp16(f);
        bool ok = isnan(f) ? half_is_nan(got) : got == want;
        if (!ok && bad++ < 5)
            CHECK(false, "fp32_to_fp16(0x%08x = %.9g) = 0x%04x, compiler says 0x%04x", u, f, got, want);
    }
    CHECK(bad == 0, "%d random floats disagree with _Float16", bad);
}
#endif

static void test_type_table(void)
{
    static const struct { uint32_t type; const char *name; uint32_t bs, bb; } t[] = {
        {GGML_TYPE_F32, "f32", 1, 4}, {GGML_TYPE_F16, "f16", 1, 2},
        {GGML_TYPE_Q4_0, "q4_0", 32, 18}, {GGML_TYPE_Q8_0, "q8_0", 32, 34},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *name = ggml_type_name(t[i].type);
        CHECK(name && strcmp(name, t[i].name) == 0, "name of type %u", t[i].type);
        uint32_t back = 999;
        CHECK(ggml_type_from_name(t[i].name, &back) && back == t[i].type, "parse %s", t[i].name);
        CHECK(ggml_block_size(t[i].type) == t[i].bs, "block size of %s", t[i].name);
        CHECK(ggml_block_bytes(t[i].type) == t[i].bb, "block bytes of %s", t[i].name);
        CHECK(ggml_row_bytes(t[i].type, 64) == 64 / t[i].bs * t[i].bb, "row bytes of %s", t[i].name);
    }
    CHECK(ggml_type_name(3) == NULL && ggml_type_name(6) == NULL && ggml_type_name(12345) == NULL,
          "unsupported types have no name");
    uint32_t dummy;
    CHECK(!ggml_type_from_name("q5_0", &dummy) && !ggml_type_from_name("", &dummy) &&
          !ggml_type_from_name(NULL, &dummy), "unknown names are rejected");
    CHECK(ggml_block_size(7) == 0 && ggml_block_bytes(7) == 0 && ggml_row_bytes(7, 32) == 0, "type 7");
    CHECK(ggml_row_bytes(GGML_TYPE_Q4_0, 33) == 0 && ggml_row_bytes(GGML_TYPE_Q8_0, 16) == 0,
          "partial blocks are not representable");
    CHECK(ggml_row_bytes(GGML_TYPE_Q8_0, 0) == 0 && ggml_row_bytes(GGML_TYPE_F32, 3) == 12, "small rows");
    CHECK(ggml_row_bytes(GGML_TYPE_F32, UINT64_MAX / 2) == 0, "overflow is reported as 0");
}

/* Blocks written byte by byte from the format description, with known values. */
static void test_hand_built_blocks(void)
{
    float out[64];

    /* Q8_0: d = 0.5 (0x3800), q[i] = i - 16 for the first block; d = -2 (0xc000) and the int8 extremes
     * for the second. */
    uint8_t q8[2 * 34];
    q8[0] = 0x00, q8[1] = 0x38;
    for (int i = 0; i < 32; i++)
        q8[2 + i] = (uint8_t)(int8_t)(i - 16);
    q8[34] = 0x00, q8[35] = 0xc0;
    for (int i = 0; i < 32; i++)
        q8[36 + i] = 0;
    q8[36] = 0x80; /* -128 */
    q8[37] = 0x7f; /* 127 */
    q8[38] = 0x01;
    q8[39] = 0xff; /* -1 */
    dequantize_row(GGML_TYPE_Q8_0, q8, out, 64);
    for (int i = 0; i < 32; i++)
        CHECK(out[i] == (float)(i - 16) * 0.5f, "q8_0 block 0 [%d] = %g", i, out[i]);
    CHECK(out[32] == 256.0f && out[33] == -254.0f && out[34] == -2.0f && out[35] == 2.0f,
          "q8_0 block 1 extremes: %g %g %g %g", out[32], out[33], out[34], out[35]);
    for (int i = 36; i < 64; i++)
        CHECK(out[i] == 0.0f, "q8_0 block 1 [%d] = %g", i, out[i]);

    /* Q4_0: d = 1 (0x3c00); byte j = j | (15 - j) << 4, so element j = j - 8 and element j + 16 = 7 - j.
     * Second block: d = -0.25 (0xb400), every byte 0x0f -> low nibble 15 (value 7 * -0.25),
     * high nibble 0 (value -8 * -0.25). */
    uint8_t q4[2 * 18];
    q4[0] = 0x00, q4[1] = 0x3c;
    for (int j = 0; j < 16; j++)
        q4[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    q4[18] = 0x00, q4[19] = 0xb4;
    for (int j = 0; j < 16; j++)
        q4[20 + j] = 0x0f;
    dequantize_row(GGML_TYPE_Q4_0, q4, out, 64);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (float)(j - 8), "q4_0 block 0 [%d] = %g, want %d", j, out[j], j - 8);
        CHECK(out[j + 16] == (float)(7 - j), "q4_0 block 0 [%d] = %g, want %d", j + 16, out[j + 16], 7 - j);
        CHECK(out[32 + j] == -1.75f, "q4_0 block 1 [%d] = %g", j, out[32 + j]);
        CHECK(out[48 + j] == 2.0f, "q4_0 block 1 [%d] = %g", j + 16, out[48 + j]);
    }

    /* F16 (little-endian halves) and F32 (copied). */
    uint8_t f16[6] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00};
    dequantize_row(GGML_TYPE_F16, f16, out, 3);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24), "f16 row: %g %g %g", out[0], out[1],
          out[2]);
    float f32[3] = {1.5f, -0.0f, 3e38f};
    dequantize_row(GGML_TYPE_F32, f32, out, 3);
    CHECK(memcmp(out, f32, sizeof f32) == 0, "f32 row is copied");

    /* Quantizers on hand-picked blocks, against the formulas in host/quant.h. */
    float x[32] = {0};
    uint8_t blk[34];
    memset(blk, 0xaa, sizeof blk);
    quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    CHECK(blk[0] == 0 && blk[1] == 0, "q8_0 of zeros: d = 0");
    dequantize_row(GGML_TYPE_Q8_0, blk, out, 32);
    for (int i = 0; i < 32; i++)
        CHECK(out[i] == 0.0f, "q8_0 of zeros [%d] = %g", i, out[i]);
    memset(blk, 0xaa, sizeof blk);
    quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
    dequantize_row(GGML_TYPE_Q4_0, blk, out, 32);
    for (int i = 0; i < 32; i++)
        CHECK(out[i] == 0.0f, "q4_0 of zeros [%d] = %g", i, out[i]);

    /* Q8_0: amax 127 -> d = 1, q = round(x) with halves away from zero. */
    x[0] = 127.0f, x[1] = -2.5f, x[2] = 2.5f, x[3] = 0.49f, x[4] = -127.0f, x[5] = 63.5f;
    quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    CHECK(blk[0] == 0x00 && blk[1] == 0x3c, "q8_0 d = 1 (0x%02x%02x)", blk[1], blk[0]);
    CHECK((int8_t)blk[2] == 127 && (int8_t)blk[3] == -3 && (int8_t)blk[4] == 3 && (int8_t)blk[5] == 0 &&
          (int8_t)blk[6] == -127 && (int8_t)blk[7] == 64, "q8_0 quants %d %d %d %d %d %d", (int8_t)blk[2],
          (int8_t)blk[3], (int8_t)blk[4], (int8_t)blk[5], (int8_t)blk[6], (int8_t)blk[7]);

    /* Q4_0: the signed value of largest magnitude (+1, first) maps to -8, d = -1/8; the opposite value
     * -1 would be +8 and clamps to 15 (value -0.875). 0.3 -> (int)(-2.4 + 8.5) = 6 -> 0.25. */
    memset(x, 0, sizeof x);
    x[0] = 1.0f, x[1] = -1.0f, x[17] = 0.3f;
    quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
    dequantize_row(GGML_TYPE_Q4_0, blk, out, 32);
    CHECK(blk[0] == 0x00 && blk[1] == 0xb0, "q4_0 d = -0.125 (0x%02x%02x)", blk[1], blk[0]);
    CHECK(out[0] == 1.0f && out[1] == -0.875f && out[17] == 0.25f && out[2] == 0.0f, "q4_0 values %g %g %g %g",
          out[0], out[1], out[17], out[2]);
    CHECK(blk[2] == 0x80 && blk[3] == 0x6f, "q4_0 nibbles 0x%02x 0x%02x", blk[2], blk[3]);

    /* Non-finite input must not crash or trip the sanitizers; the output is whatever it is. */
    x[3] = NAN, x[4] = INFINITY;
    quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
}

/* quantize -> dequantize on random data. With the exact scale d (amax/127 for Q8_0, max/-8 for Q4_0) and
 * the scale actually stored, d16 = f16(d), the error of element x is
 *     |x - q*d16| <= |x - q*d| + |q|*|d - d16| <= |d|/2 + |q|*|d - d16|
 * except for Q4_0 elements of the sign opposite to the maximum that clamp at q = 15 (error up to |d|).
 * We allow a further 1e-6 * amax for the f32 rounding of x/d. */
static void test_quantize_error_bounds(test_rng *r)
{
    enum { N = 32 * 256 };
    static float x[N], y[N];
    static uint8_t buf[N / 32 * 34];
    static const float scales[] = {1e-4f, 1.0f, 300.0f};
    int bad8 = 0, bad4 = 0;
    double worst8 = 0, worst4 = 0;   /* max error / (|d|/2) seen */

    for (int trial = 0; trial < 12; trial++) {
        float s = scales[trial % 3];
        for (int i = 0; i < N; i++)
            x[i] = (trial & 4) ? s * rng_normal(r) : rng_uniform(r, -s, s);
        if (trial & 8) /* an outlier in some blocks, as real weights have */
            for (int b = 0; b < N / 32; b += 3)
                x[b * 32 + rng_u32(r) % 32] *= 20.0f;

        /* Q8_0 */
        quantize_row(GGML_TYPE_Q8_0, x, buf, N);
        dequantize_row(GGML_TYPE_Q8_0, buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            double d = amax / 127.0f;
            double d16 = fp16_to_fp32((uint16_t)(buf[b * 34] | buf[b * 34 + 1] << 8));
            for (int i = 0; i < 32; i++) {
                double q_abs = fabs((double)xb[i]) / d + 0.5;   /* >= |q| */
                double err = fabs((double)xb[i] - y[b * 32 + i]);
                double bound = d / 2 + q_abs * fabs(d - d16) + 1e-6 * amax;
                if (d16 >= 6.2e-5) /* normal f16 scale: the f16 rounding of d is relative, report it */
                    worst8 = fmax(worst8, err / (d / 2));
                if (!(err <= bound) && bad8++ < 5)
                    CHECK(false, "q8_0 block %d [%d]: x %.9g -> %.9g, error %.3g > bound %.3g", b, i, xb[i],
                          y[b * 32 + i], err, bound);
            }
        }

        /* Q4_0 */
        quantize_row(GGML_TYPE_Q4_0, x, buf, N);
        dequantize_row(GGML_TYPE_Q4_0, buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0, vmax = 0;
            for (int i = 0; i < 32; i++)
                if (fabsf(xb[i]) > amax)
                    amax = fabsf(xb[i]), vmax = xb[i];
            double d = fabs((double)(vmax / -8.0f));
            double d16 = fabs((double)fp16_to_fp32((uint16_t)(buf[b * 18] | buf[b * 18 + 1] << 8)));
            for (int i = 0; i < 32; i++) {
                double err = fabs((double)xb[i] - y[b * 32 + i]);
                bool clamped = xb[i] * vmax < 0 && fabsf(xb[i]) > 7.5f * (float)d;
                double bound = (clamped ? d : d / 2) + 8 * fabs(d - d16) + 1e-6 * amax;
                if (!clamped && d16 >= 6.2e-5)
                    worst4 = fmax(worst4, err / (d / 2));
                if (!(err <= bound) && bad4++ < 5)
                    CHECK(false, "q4_0 block %d [%d]: x %.9g -> %.9g, error %.3g > bound %.3g", b, i, xb[i],
                          y[b * 32 + i], err, bound);
            }
        }

        /* Quantizing the dequantized values again gives the same bytes (the grid maps onto itself). */
        uint8_t again[N / 32 * 34];
        quantize_row(GGML_TYPE_Q8_0, x, buf, N);
        dequantize_row(GGML_TYPE_Q8_0, buf, y, N);
        quantize_row(GGML_TYPE_Q8_0, y, again, N);
        CHECK(memcmp(buf, again, N / 32 * 34) == 0, "q8_0 is not idempotent (trial %d)", trial);
        quantize_row(GGML_TYPE_Q4_0, x, buf, N);
        dequantize_row(GGML_TYPE_Q4_0, buf, y, N);
        quantize_row(GGML_TYPE_Q4_0, y, again, N);
        CHECK(memcmp(buf, again, N / 32 * 18) == 0, "q4_0 is not idempotent (trial %d)", trial);

        /* F16 rows: each element within half an f16 ulp (relative 2^-11) for these normal-range values. */
        quantize_row(GGML_TYPE_F16, x, buf, 256);
        dequantize_row(GGML_TYPE_F16, buf, y, 256);
        for (int i = 0; i < 256; i++) {
            if (fabsf(x[i]) < 6.2e-5f)
                continue;   /* subnormal halves have an absolute, not relative, step */
            CHECK(fabs((double)y[i] - x[i]) <= fabs((double)x[i]) * ldexp(1.0, -11), "f16 row [%d]", i);
        }
    }
    CHECK(bad8 == 0, "%d q8_0 elements outside the bound", bad8);
    CHECK(bad4 == 0, "%d q4_0 elements outside the bound", bad4);
    fprintf(stderr, "worst error / (d/2): q8_0 %.4f, q4_0 %.4f (f16 scale rounding accounts for > 1)\n", worst8,
            worst4);
}

int main(void)
{
    test_rng r;
    rng_init(&r, test_seed());
    test_fp16_known_values();
    test_fp16_round_trip_exhaustive();
    test_fp16_rounding_midpoints();
#if defined(__FLT16_MAX__)
    test_fp16_vs_compiler(&r);
#endif
    test_type_table();
    test_hand_built_blocks();
    test_quantize_error_bounds(&r);
    return test_finish("quant");
}

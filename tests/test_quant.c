/* host/format/quant.c: f16 and bf16 conversion (exhaustive round trip, round-to-nearest-even at every midpoint),
 * the type table (sizes and device layout written out by hand), hand-built GGUF blocks of every type whose
 * values are worked out by hand, and quantize -> dequantize error bounds on seeded random data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"
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
        CHECK(vkl_fp16_to_fp32(known[i].h) == known[i].f, "fp16_to_fp32(0x%04x) = %.9g, want %.9g", known[i].h,
              vkl_fp16_to_fp32(known[i].h), known[i].f);
        CHECK(vkl_fp32_to_fp16(known[i].f) == known[i].h, "fp32_to_fp16(%.9g) = 0x%04x, want 0x%04x", known[i].f,
              vkl_fp32_to_fp16(known[i].f), known[i].h);
    }
    CHECK(isinf(vkl_fp16_to_fp32(0x7c00)) && vkl_fp16_to_fp32(0x7c00) > 0, "0x7c00 is +inf");
    CHECK(isinf(vkl_fp16_to_fp32(0xfc00)) && vkl_fp16_to_fp32(0xfc00) < 0, "0xfc00 is -inf");
    CHECK(signbit(vkl_fp16_to_fp32(0x8000)) && vkl_fp16_to_fp32(0x8000) == 0.0f, "0x8000 is -0");
    CHECK(vkl_fp32_to_fp16(-0.0f) == 0x8000, "-0 keeps its sign");
    CHECK(vkl_fp32_to_fp16(INFINITY) == 0x7c00 && vkl_fp32_to_fp16(-INFINITY) == 0xfc00, "infinities");
    CHECK(vkl_fp32_to_fp16(1e10f) == 0x7c00 && vkl_fp32_to_fp16(-1e10f) == 0xfc00, "overflow goes to inf");
    CHECK(vkl_fp32_to_fp16(65519.996f) == 0x7bff, "just below 65520 rounds down to 65504");
    CHECK(vkl_fp32_to_fp16(65520.0f) == 0x7c00, "65520 is the tie between 65504 (odd) and 2^16: goes to inf");
    CHECK(vkl_fp32_to_fp16(bits_to_f32(0x00000001u)) == 0x0000, "f32 subnormal -> +0");
    CHECK(vkl_fp32_to_fp16(-bits_to_f32(0x00000001u)) == 0x8000, "negative f32 subnormal -> -0");
    CHECK(vkl_fp32_to_fp16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 is the tie between 0 and 2^-24: goes to 0");
    CHECK(vkl_fp32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001, "just above 2^-25 -> 2^-24");
    CHECK(vkl_fp32_to_fp16(ldexpf(3.0f, -25)) == 0x0002, "3*2^-25 is the tie between 1 and 2 (x2^-24): even");
    /* NaNs of every shape stay NaN, including a payload only in the low bits that f16 cannot hold. */
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f801fffu, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = vkl_fp32_to_fp16(bits_to_f32(nans[i]));
        CHECK(half_is_nan(h), "nan 0x%08x -> 0x%04x, not a nan", nans[i], h);
        CHECK((h >> 15) == (nans[i] >> 31), "nan 0x%08x lost its sign", nans[i]);
    }
}

/* Every one of the 65536 halves converts to f32 and back unchanged (NaNs stay NaN). */
static void test_fp16_round_trip_exhaustive(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkl_fp16_to_fp32((uint16_t)h);
        uint16_t back = vkl_fp32_to_fp16(f);
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
            float a = vkl_fp16_to_fp32(lo), b = vkl_fp16_to_fp32(hi);
            float mid = (float)(((double)a + (double)b) / 2.0);
            uint16_t even = (h & 1u) ? hi : lo;
            uint16_t got_mid = vkl_fp32_to_fp16(mid);
            uint16_t got_below = vkl_fp32_to_fp16(nextafterf(mid, a));
            uint16_t got_above = vkl_fp32_to_fp16(nextafterf(mid, b));
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
        uint16_t got = vkl_fp32_to_fp16(f);
        bool ok = isnan(f) ? half_is_nan(got) : got == want;
        if (!ok && bad++ < 5)
            CHECK(false, "fp32_to_fp16(0x%08x = %.9g) = 0x%04x, compiler says 0x%04x", u, f, got, want);
    }
    CHECK(bad == 0, "%d random floats disagree with _Float16", bad);
}
#endif

static void test_type_table(void)
{
    /* Block sizes and bytes as the GGUF format defines them (ggml's block structs, summed by hand). */
    static const struct { uint32_t type; const char *name; uint32_t bs, bb; } t[] = {
        {GGML_TYPE_F32, "f32", 1, 4},        {GGML_TYPE_F16, "f16", 1, 2},          {GGML_TYPE_BF16, "bf16", 1, 2},
        {GGML_TYPE_Q4_0, "q4_0", 32, 18},    {GGML_TYPE_Q4_1, "q4_1", 32, 20},      {GGML_TYPE_Q5_0, "q5_0", 32, 22},
        {GGML_TYPE_Q5_1, "q5_1", 32, 24},    {GGML_TYPE_Q8_0, "q8_0", 32, 34},      {GGML_TYPE_Q2_K, "q2_K", 256, 84},
        {GGML_TYPE_Q3_K, "q3_K", 256, 110},  {GGML_TYPE_Q4_K, "q4_K", 256, 144},    {GGML_TYPE_Q5_K, "q5_K", 256, 176},
        {GGML_TYPE_Q6_K, "q6_K", 256, 210},  {GGML_TYPE_IQ4_NL, "iq4_nl", 32, 18},  {GGML_TYPE_IQ4_XS, "iq4_xs", 256, 136},
        {GGML_TYPE_MXFP4, "mxfp4", 32, 17},  {GGML_TYPE_IQ2_XXS, "iq2_xxs", 256, 66}, {GGML_TYPE_IQ2_XS, "iq2_xs", 256, 74},
        {GGML_TYPE_IQ2_S, "iq2_s", 256, 82}, {GGML_TYPE_IQ3_XXS, "iq3_xxs", 256, 98}, {GGML_TYPE_IQ3_S, "iq3_s", 256, 110},
        {GGML_TYPE_IQ1_S, "iq1_s", 256, 50}, {GGML_TYPE_IQ1_M, "iq1_m", 256, 56},
    };
    const size_t n = sizeof t / sizeof t[0];
    CHECK(vkl_ggml_type_count() == n, "the table has %zu types, want %zu", vkl_ggml_type_count(), n);
    for (size_t i = 0; i < n; i++) {
        const char *name = vkl_ggml_type_name(t[i].type);
        CHECK(name && strcmp(name, t[i].name) == 0, "name of type %u", t[i].type);
        CHECK(vkl_ggml_type_label(t[i].type) && strcmp(vkl_ggml_type_label(t[i].type), t[i].name) == 0, "label of %s",
              t[i].name);
        uint32_t back = 999;
        CHECK(vkl_ggml_type_from_name(t[i].name, &back) && back == t[i].type, "parse %s", t[i].name);
        char lower[16];
        snprintf(lower, sizeof lower, "%s", t[i].name);
        for (char *c = lower; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        back = 999;
        CHECK(vkl_ggml_type_from_name(lower, &back) && back == t[i].type, "parse %s", lower);
        CHECK(vkl_ggml_block_size(t[i].type) == t[i].bs, "block size of %s", t[i].name);
        CHECK(vkl_ggml_block_bytes(t[i].type) == t[i].bb, "block bytes of %s", t[i].name);
        CHECK(vkl_ggml_row_bytes(t[i].type, 512) == 512 / t[i].bs * t[i].bb, "row bytes of %s", t[i].name);
        const ggml_type_info *info = vkl_ggml_type_get(t[i].type);
        CHECK(info && info->id == t[i].type, "ggml_type_get(%s)", t[i].name);
        bool listed = false;
        for (size_t j = 0; j < vkl_ggml_type_count(); j++)
            listed |= vkl_ggml_type_at(j)->id == t[i].type;
        CHECK(listed, "%s is in the list", t[i].name);
    }
    CHECK(vkl_ggml_type_at(n) == NULL, "past the end of the list");
    uint32_t parsed;
    CHECK(vkl_ggml_type_from_name("Q4_K", &parsed) && parsed == GGML_TYPE_Q4_K, "upper case Q4_K");
    CHECK(vkl_ggml_type_name(GGML_TYPE_Q8_1) == NULL && vkl_ggml_type_name(GGML_TYPE_TQ1_0) == NULL &&
          vkl_ggml_type_name(99) == NULL && vkl_ggml_type_name(12345) == NULL && vkl_ggml_type_get(99) == NULL,
          "types vkllm does not read have no name");
    CHECK(vkl_ggml_type_label(GGML_TYPE_TQ1_0) && !strcmp(vkl_ggml_type_label(GGML_TYPE_TQ1_0), "tq1_0") &&
          vkl_ggml_type_label(99) == NULL, "labels of types GGUF knows");
    uint32_t dummy;
    CHECK(!vkl_ggml_type_from_name("q8_1", &dummy) && !vkl_ggml_type_from_name("q4", &dummy) &&
          !vkl_ggml_type_from_name("q4_k_m", &dummy) && !vkl_ggml_type_from_name("", &dummy) &&
          !vkl_ggml_type_from_name(NULL, &dummy), "unknown names are rejected");
    CHECK(vkl_ggml_block_size(9) == 0 && vkl_ggml_block_bytes(9) == 0 && vkl_ggml_row_bytes(9, 32) == 0, "type 9 (q8_1)");
    CHECK(vkl_ggml_row_bytes(GGML_TYPE_Q4_0, 33) == 0 && vkl_ggml_row_bytes(GGML_TYPE_Q8_0, 16) == 0 &&
          vkl_ggml_row_bytes(GGML_TYPE_Q4_K, 128) == 0, "partial blocks are not representable");
    CHECK(vkl_ggml_row_bytes(GGML_TYPE_Q8_0, 0) == 0 && vkl_ggml_row_bytes(GGML_TYPE_F32, 3) == 12, "small rows");
    CHECK(vkl_ggml_row_bytes(GGML_TYPE_F32, UINT64_MAX / 2) == 0, "overflow is reported as 0");

    /* Device layout, written out by hand from each block struct: the quants range and the meta size. */
    static const struct { uint32_t type; uint32_t qs_start, qs_bytes, meta_bytes; } lay[] = {
        {GGML_TYPE_F32, 0, 4, 0},        {GGML_TYPE_F16, 0, 2, 0},        {GGML_TYPE_BF16, 0, 2, 0},
        {GGML_TYPE_Q4_0, 2, 16, 2},      {GGML_TYPE_Q8_0, 2, 32, 2},      {GGML_TYPE_IQ4_NL, 2, 16, 2},
        {GGML_TYPE_Q4_1, 4, 16, 4},      {GGML_TYPE_Q5_0, 6, 16, 8},      {GGML_TYPE_Q5_1, 8, 16, 8},
        {GGML_TYPE_Q2_K, 16, 64, 20},    {GGML_TYPE_Q3_K, 0, 96, 16},     {GGML_TYPE_Q4_K, 16, 128, 16},
        {GGML_TYPE_Q5_K, 16, 160, 16},   {GGML_TYPE_Q6_K, 0, 192, 20},    {GGML_TYPE_IQ4_XS, 8, 128, 8},
        {GGML_TYPE_MXFP4, 1, 16, 4},     {GGML_TYPE_IQ2_XXS, 2, 64, 2},   {GGML_TYPE_IQ2_XS, 2, 64, 12},
        {GGML_TYPE_IQ2_S, 2, 80, 2},     {GGML_TYPE_IQ3_XXS, 2, 96, 2},   {GGML_TYPE_IQ3_S, 2, 64, 48},
        {GGML_TYPE_IQ1_S, 2, 48, 2},     {GGML_TYPE_IQ1_M, 0, 48, 8},
    };
    CHECK(sizeof lay / sizeof lay[0] == vkl_ggml_type_count(), "every type's layout is checked");
    for (size_t i = 0; i < sizeof lay / sizeof lay[0]; i++) {
        const ggml_type_info *info = vkl_ggml_type_get(lay[i].type);
        if (!info)
            continue;
        CHECK(info->qs_start == lay[i].qs_start && info->qs_bytes == lay[i].qs_bytes &&
              info->meta_bytes == lay[i].meta_bytes, "layout of %s: qs [%u, +%u) meta %u", info->name,
              info->qs_start, info->qs_bytes, info->meta_bytes);
        /* The rule: the rest of the block is one f16 (meta 2) or is rounded up to a multiple of 4. */
        uint32_t rest = info->block_bytes - info->qs_bytes;
        if (info->block > 1)
            CHECK(info->meta_bytes == (rest == 2 ? 2 : (rest + 3) / 4 * 4), "meta rule for %s", info->name);
        CHECK(info->qs_start + info->qs_bytes <= info->block_bytes, "qs range of %s inside the block", info->name);
        /* Quants of a block fill whole 16-byte (or 4-byte for the 1-element types) units. */
        CHECK(info->qs_bytes % (info->block > 1 ? 16 : 2) == 0, "qs bytes of %s", info->name);
    }
    CHECK(vkl_ggml_type_get(GGML_TYPE_Q4_0)->kernels && vkl_ggml_type_get(GGML_TYPE_Q8_0)->kernels &&
          vkl_ggml_type_get(GGML_TYPE_F32)->kernels && vkl_ggml_type_get(GGML_TYPE_F16)->kernels, "kernel types");
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
    vkl_dequantize_row(GGML_TYPE_Q8_0, q8, out, 64);
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
    vkl_dequantize_row(GGML_TYPE_Q4_0, q4, out, 64);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (float)(j - 8), "q4_0 block 0 [%d] = %g, want %d", j, out[j], j - 8);
        CHECK(out[j + 16] == (float)(7 - j), "q4_0 block 0 [%d] = %g, want %d", j + 16, out[j + 16], 7 - j);
        CHECK(out[32 + j] == -1.75f, "q4_0 block 1 [%d] = %g", j, out[32 + j]);
        CHECK(out[48 + j] == 2.0f, "q4_0 block 1 [%d] = %g", j + 16, out[48 + j]);
    }

    /* F16 (little-endian halves) and F32 (copied). */
    uint8_t f16[6] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00};
    vkl_dequantize_row(GGML_TYPE_F16, f16, out, 3);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24), "f16 row: %g %g %g", out[0], out[1],
          out[2]);
    float f32[3] = {1.5f, -0.0f, 3e38f};
    vkl_dequantize_row(GGML_TYPE_F32, f32, out, 3);
    CHECK(memcmp(out, f32, sizeof f32) == 0, "f32 row is copied");

    /* Quantizers on hand-picked blocks, against the formulas in host/format/quant.h. */
    float x[32] = {0};
    uint8_t blk[34];
    memset(blk, 0xaa, sizeof blk);
    vkl_quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    CHECK(blk[0] == 0 && blk[1] == 0, "q8_0 of zeros: d = 0");
    vkl_dequantize_row(GGML_TYPE_Q8_0, blk, out, 32);
    for (int i = 0; i < 32; i++)
        CHECK(out[i] == 0.0f, "q8_0 of zeros [%d] = %g", i, out[i]);
    memset(blk, 0xaa, sizeof blk);
    vkl_quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
    vkl_dequantize_row(GGML_TYPE_Q4_0, blk, out, 32);
    for (int i = 0; i < 32; i++)
        CHECK(out[i] == 0.0f, "q4_0 of zeros [%d] = %g", i, out[i]);

    /* Q8_0: amax 127 -> d = 1, q = round(x) with halves away from zero. */
    x[0] = 127.0f, x[1] = -2.5f, x[2] = 2.5f, x[3] = 0.49f, x[4] = -127.0f, x[5] = 63.5f;
    vkl_quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    CHECK(blk[0] == 0x00 && blk[1] == 0x3c, "q8_0 d = 1 (0x%02x%02x)", blk[1], blk[0]);
    CHECK((int8_t)blk[2] == 127 && (int8_t)blk[3] == -3 && (int8_t)blk[4] == 3 && (int8_t)blk[5] == 0 &&
          (int8_t)blk[6] == -127 && (int8_t)blk[7] == 64, "q8_0 quants %d %d %d %d %d %d", (int8_t)blk[2],
          (int8_t)blk[3], (int8_t)blk[4], (int8_t)blk[5], (int8_t)blk[6], (int8_t)blk[7]);

    /* Q4_0: the signed value of largest magnitude (+1, first) maps to -8, d = -1/8; the opposite value
     * -1 would be +8 and clamps to 15 (value -0.875). 0.3 -> (int)(-2.4 + 8.5) = 6 -> 0.25. */
    memset(x, 0, sizeof x);
    x[0] = 1.0f, x[1] = -1.0f, x[17] = 0.3f;
    vkl_quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
    vkl_dequantize_row(GGML_TYPE_Q4_0, blk, out, 32);
    CHECK(blk[0] == 0x00 && blk[1] == 0xb0, "q4_0 d = -0.125 (0x%02x%02x)", blk[1], blk[0]);
    CHECK(out[0] == 1.0f && out[1] == -0.875f && out[17] == 0.25f && out[2] == 0.0f, "q4_0 values %g %g %g %g",
          out[0], out[1], out[17], out[2]);
    CHECK(blk[2] == 0x80 && blk[3] == 0x6f, "q4_0 nibbles 0x%02x 0x%02x", blk[2], blk[3]);

    /* Non-finite input must not crash or trip the sanitizers; the output is whatever it is. */
    x[3] = NAN, x[4] = INFINITY;
    vkl_quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    vkl_quantize_row(GGML_TYPE_Q4_0, x, blk, 32);
}

/* Checks out[e] == want for the listed elements of a hand-built block. */
typedef struct { int e; float want; } expect;
static void check_elements(const char *what, const float *out, const expect *ex, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK(out[ex[i].e] == ex[i].want, "%s [%d] = %g, want %g", what, ex[i].e, out[ex[i].e], ex[i].want);
}
#define CHECK_ELEMENTS(what, out, ...)                                                                         \
    do {                                                                                                       \
        static const expect ex_[] = {__VA_ARGS__};                                                             \
        check_elements(what, out, ex_, sizeof ex_ / sizeof ex_[0]);                                           \
    } while (0)

/* The legacy 32-element types beyond Q4_0/Q8_0, and BF16: blocks written byte by byte, values by hand. */
static void test_hand_built_legacy(void)
{
    float out[32];

    /* Q4_1 {f16 d, f16 m, qs[16]}: d = 0.5 (0x3800), m = -1 (0xbc00); qs[j] = j | (15 - j) << 4, so element
     * j = j * 0.5 - 1 and element j + 16 = (15 - j) * 0.5 - 1. */
    uint8_t q41[20] = {0x00, 0x38, 0x00, 0xbc};
    for (int j = 0; j < 16; j++)
        q41[4 + j] = (uint8_t)(j | (15 - j) << 4);
    vkl_dequantize_row(GGML_TYPE_Q4_1, q41, out, 32);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (float)j * 0.5f - 1.0f, "q4_1 [%d] = %g", j, out[j]);
        CHECK(out[j + 16] == (float)(15 - j) * 0.5f - 1.0f, "q4_1 [%d] = %g", j + 16, out[j + 16]);
    }

    /* Q5_0 {f16 d, qh[4], qs[16]}: d = 1; qh = 0x80000001 (bytes 01 00 00 80): fifth bits of elements 0 and
     * 31; qs[j] = j | (15 - j) << 4. Element 0 = (0 | 16) - 16 = 0, element 1 = 1 - 16 = -15,
     * element 15 = -1, element 16 = 15 - 16 = -1, element 30 = 1 - 16 = -15, element 31 = (0 | 16) - 16 = 0. */
    uint8_t q50[22] = {0x00, 0x3c, 0x01, 0x00, 0x00, 0x80};
    for (int j = 0; j < 16; j++)
        q50[6 + j] = (uint8_t)(j | (15 - j) << 4);
    vkl_dequantize_row(GGML_TYPE_Q5_0, q50, out, 32);
    CHECK_ELEMENTS("q5_0", out, {0, 0.0f}, {1, -15.0f}, {15, -1.0f}, {16, -1.0f}, {17, -2.0f}, {30, -15.0f},
                   {31, 0.0f});

    /* Q5_1 {f16 d, f16 m, qh[4], qs[16]}: d = 0.25 (0x3400), m = 2 (0x4000); qh bit 16 only (byte 2 = 0x01):
     * element 16's fifth bit; every qs byte 0x21 (low nibble 1, high nibble 2). Elements 0..15 =
     * 1 * 0.25 + 2 = 2.25; element 16 = (2 | 16) * 0.25 + 2 = 6.5; elements 17..31 = 2 * 0.25 + 2 = 2.5. */
    uint8_t q51[24] = {0x00, 0x34, 0x00, 0x40, 0x00, 0x00, 0x01, 0x00};
    memset(q51 + 8, 0x21, 16);
    vkl_dequantize_row(GGML_TYPE_Q5_1, q51, out, 32);
    for (int e = 0; e < 32; e++) {
        float want = e < 16 ? 2.25f : e == 16 ? 6.5f : 2.5f;
        CHECK(out[e] == want, "q5_1 [%d] = %g, want %g", e, out[e], want);
    }

    /* IQ4_NL {f16 d, qs[16]}: d = 0.5, qs[j] = j | (15 - j) << 4: element j = 0.5 * level[j], element
     * j + 16 = 0.5 * level[15 - j], levels -127 -104 -83 -65 -49 -35 -22 -10 1 13 25 38 53 69 89 113. */
    uint8_t iq4nl[18] = {0x00, 0x38};
    for (int j = 0; j < 16; j++)
        iq4nl[2 + j] = (uint8_t)(j | (15 - j) << 4);
    vkl_dequantize_row(GGML_TYPE_IQ4_NL, iq4nl, out, 32);
    CHECK_ELEMENTS("iq4_nl", out, {0, -63.5f}, {1, -52.0f}, {7, -5.0f}, {8, 0.5f}, {15, 56.5f}, {16, 56.5f},
                   {17, 44.5f}, {24, -5.0f}, {31, -63.5f});

    /* BF16: 0x3f80 = 1, 0xc0c0 = -1.5 * 2^2 = -6, 0x0001 = 2^-133 (an f32 subnormal), 0x7f80 = inf. */
    uint8_t bf[8] = {0x80, 0x3f, 0xc0, 0xc0, 0x01, 0x00, 0x80, 0x7f};
    vkl_dequantize_row(GGML_TYPE_BF16, bf, out, 4);
    CHECK(out[0] == 1.0f && out[1] == -6.0f && out[2] == ldexpf(1.0f, -133) && isinf(out[3]), "bf16: %g %g %g %g",
          out[0], out[1], out[2], out[3]);
    /* Rounding to nearest even on the dropped 16 bits: 1 + 2^-8 is the tie between 0x3f80 and 0x3f81 -> 0x3f80;
     * 1 + 3 * 2^-8 the tie between 0x3f81 and 0x3f82 -> 0x3f82; just above the first tie -> 0x3f81. */
    CHECK(vkl_fp32_to_bf16(1.0f) == 0x3f80 && vkl_fp32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80 &&
          vkl_fp32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82 &&
          vkl_fp32_to_bf16(nextafterf(1.0f + ldexpf(1.0f, -8), 2.0f)) == 0x3f81, "bf16 rounding");
    CHECK(vkl_fp32_to_bf16(-6.0f) == 0xc0c0 && vkl_fp32_to_bf16(INFINITY) == 0x7f80 && vkl_fp32_to_bf16(3.4e38f) == 0x7f80,
          "bf16 -6, inf, and 3.4e38 rounds up to inf");
    uint16_t nan = vkl_fp32_to_bf16(bits_to_f32(0x7f800001u));
    CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0, "a NaN with only low payload bits stays NaN (0x%04x)", nan);
}

/* The 256-element super-block types: one block each, bytes set by hand, values worked out by hand. */
static void test_hand_built_super_blocks(void)
{
    float out[256];

    /* Q2_K {scales[16], qs[64], f16 d, f16 dmin}: d = 1, dmin = 0.5. Scale byte s = sc | m << 4 for the
     * 16-element sub-block s: s0 = 0x21 (sc 1, m 2), s1 = 0x03, s2 = 0x12, s4 = 0x04, s6 = 0x01, s9 = 0xf5,
     * s10 = 0x37, others 0. 2-bit quants: element e in qs[(e / 128) * 32 + e % 32] at bits 2 * ((e % 128) / 32).
     * qs[0] = 0xe4: e0 = 0, e32 = 1, e64 = 2, e96 = 3; qs[16] = 0x03: e16 = 3; qs[33] = 0x0c: e161 = 3.
     * x = d * sc * q - dmin * m: e0 = 0 - 1 = -1; e1 = -1; e16 = 3 * 3 = 9; e32 = 2 * 1 - 0.5 = 1.5;
     * e64 = 4 * 2 = 8; e96 = 1 * 3 = 3; e144 (s9, q 0) = -7.5; e161 (s10) = 7 * 3 - 1.5 = 19.5. */
    uint8_t q2[84] = {0};
    q2[0] = 0x21, q2[1] = 0x03, q2[2] = 0x12, q2[4] = 0x04, q2[6] = 0x01, q2[9] = 0xf5, q2[10] = 0x37;
    q2[16 + 0] = 0xe4, q2[16 + 16] = 0x03, q2[16 + 33] = 0x0c;
    q2[80] = 0x00, q2[81] = 0x3c, q2[82] = 0x00, q2[83] = 0x38;
    vkl_dequantize_row(GGML_TYPE_Q2_K, q2, out, 256);
    CHECK_ELEMENTS("q2_K", out, {0, -1.0f}, {1, -1.0f}, {16, 9.0f}, {32, 1.5f}, {64, 8.0f}, {96, 3.0f},
                   {144, -7.5f}, {161, 19.5f}, {255, 0.0f});

    /* Q3_K {hmask[32], qs[64], scales[12], f16 d}: d = 0.5. Scales are 6 bits minus 32; scale s: low 4 bits
     * in scales[s % 8] (low nibble for s < 8, high for s >= 8), top 2 bits in scales[8 + s % 4] at bit
     * 2 * (s / 4). scale 0 = 33 - 32 = 1 (low 1 in byte 0, top 2 in byte 8 bits 0-1); scale 2 = 30 - 32 = -2
     * (low 14 in byte 2, top 1 in byte 10); scale 15 = 63 - 32 = 31 (low 15 in byte 7's high nibble, top 3
     * in byte 11 bits 6-7); the others are 0 - 32 = -32. q = 2 low bits (as Q2_K) - (hmask bit ? 0 : 4), the
     * hmask bit of element e being bit e / 32 of hmask[e % 32].
     * e0: hmask[0] bit 0 set, low 3 -> q 3 -> 0.5 * 1 * 3 = 1.5. e1: no bit, low 0 -> q -4 -> -2.
     * e16 (scale -32): q -4 -> 64. e32 (scale -2): hmask[0] bit 1 clear, low 1 -> q -3 -> 3.
     * e128 (scale 8 = -32): hmask[0] bit 4 set, low 2 (qs[32] bits 0-1) -> q 2 -> -32.
     * e255 (scale 31): hmask[31] bit 7 clear, low 0 -> q -4 -> -62. */
    uint8_t q3[110] = {0};
    q3[0] = 0x11;                        /* hmask[0]: bits 0 (e0) and 4 (e128) */
    q3[32 + 0] = 0x07;                   /* qs[0]: e0 low 3, e32 low 1 */
    q3[32 + 32] = 0x02;                  /* qs[32]: e128 low 2 */
    q3[96 + 0] = 0x01, q3[96 + 2] = 0x0e, q3[96 + 7] = 0xf0;
    q3[96 + 8] = 0x02, q3[96 + 10] = 0x01, q3[96 + 11] = 0xc0;
    q3[108] = 0x00, q3[109] = 0x38;
    vkl_dequantize_row(GGML_TYPE_Q3_K, q3, out, 256);
    CHECK_ELEMENTS("q3_K", out, {0, 1.5f}, {1, -2.0f}, {16, 64.0f}, {32, 3.0f}, {128, -32.0f}, {255, -62.0f});

    /* Q4_K {f16 d, f16 dmin, scales[12], qs[128]}: d = 0.5, dmin = 0.25. 6-bit (scale, min) of the 32-element
     * sub-block s: s < 4: bytes[s] & 63, bytes[s + 4] & 63; s >= 4: (bytes[s + 4] & 15) | (bytes[s - 4] >> 6) << 4,
     * (bytes[s + 4] >> 4) | (bytes[s] >> 6) << 4. Sub-block 0: (10, 4): bytes[0] = 10, bytes[4] = 4.
     * Sub-block 1: (1, 0): bytes[1] low 6 bits = 1. Sub-block 5: (51 = 0b110011, 34 = 0b100010):
     * bytes[9] = 3 | 2 << 4 = 0x23, bytes[1] |= 3 << 6 (-> 0xc1), bytes[5] = 2 << 6 = 0x80.
     * Nibbles: sub-block s in qs[(s / 2) * 32 ..], low nibble for even s. qs[0] = 0x27: e0 = 7, e32 = 2;
     * qs[64] = 0xf0: e128 = 0, e160 = 15. x = d * sc * q - dmin * m: e0 = 35 - 1 = 34; e1 = -1; e32 = 1;
     * e128 (sub-block 4: (0, 0)) = 0; e160 = 0.5 * 51 * 15 - 0.25 * 34 = 374. */
    uint8_t q4[144] = {0};
    q4[0] = 0x00, q4[1] = 0x38, q4[2] = 0x00, q4[3] = 0x34;
    q4[4 + 0] = 10, q4[4 + 1] = 0xc1, q4[4 + 4] = 4, q4[4 + 5] = 0x80, q4[4 + 9] = 0x23;
    q4[16 + 0] = 0x27, q4[16 + 64] = 0xf0;
    vkl_dequantize_row(GGML_TYPE_Q4_K, q4, out, 256);
    CHECK_ELEMENTS("q4_K", out, {0, 34.0f}, {1, -1.0f}, {32, 1.0f}, {128, 0.0f}, {160, 374.0f}, {161, -8.5f});

    /* Q5_K {f16 d, f16 dmin, scales[12], qh[32], qs[128]}: d = dmin = 1. Sub-block 0: (2, 1): bytes[0] = 2,
     * bytes[4] = 1. Sub-block 7: (17 = 0b010001, 48 = 0b110000): bytes[11] = 1 | 0 << 4 = 0x01,
     * bytes[3] = 1 << 6, bytes[7] = 3 << 6. Fifth bit of e: bit e / 32 of qh[e % 32]; qh[0] = 0x81: e0 and e224.
     * qs[0] = 0x03: e0 low 3 -> q 19 -> 2 * 19 - 1 = 37; e1 -> 0 - 1 = -1.
     * e224 (sub-block 7, high nibble of qs[96]) = 5 -> q 21 -> 17 * 21 - 48 = 309; e225 -> -48. */
    uint8_t q5[176] = {0};
    q5[0] = 0x00, q5[1] = 0x3c, q5[2] = 0x00, q5[3] = 0x3c;
    q5[4 + 0] = 2, q5[4 + 4] = 1, q5[4 + 11] = 0x01, q5[4 + 3] = 0x40, q5[4 + 7] = 0xc0;
    q5[16 + 0] = 0x81;
    q5[48 + 0] = 0x03, q5[48 + 96] = 0x50;
    vkl_dequantize_row(GGML_TYPE_Q5_K, q5, out, 256);
    CHECK_ELEMENTS("q5_K", out, {0, 37.0f}, {1, -1.0f}, {224, 309.0f}, {225, -48.0f}, {32, 0.0f});

    /* Q6_K {ql[128], qh[64], int8 scales[16], f16 d}: d = 0.5; scales[0] = 2, [2] = -1, [4] = 3, [6] = 1,
     * [8] = -128, [15] = 127 (scale of element e: scales[e / 16]). Element e: h = e / 128, t = (e % 128) / 32,
     * l = e % 32; low 4 bits in ql[h * 64 + (t % 2) * 32 + l] (low nibble for t < 2), top 2 in qh[h * 32 + l]
     * at bit 2t; value (q - 32) * scale * d.
     * ql[0] = 0xf5, ql[32] = 0xa0, qh[0] = 2 | 0 << 2 | 3 << 4 | 1 << 6 = 0x72:
     *   e0 = 5 | 2 << 4 = 37 -> 5 * 2 * 0.5 = 5; e32 = 0 -> -32 * -1 * 0.5 = 16;
     *   e64 = 15 | 3 << 4 = 63 -> 31 * 3 * 0.5 = 46.5; e96 = 10 | 1 << 4 = 26 -> -6 * 1 * 0.5 = -3.
     * ql[64] = 0x01, qh[32] = 0x02: e128 = 33 -> 1 * -128 * 0.5 = -64.
     * ql[127] = 0x30, qh[63] = 0x80: e255 = 3 | 2 << 4 = 35 -> 3 * 127 * 0.5 = 190.5.  e1 = -32 * 2 * 0.5. */
    uint8_t q6[210] = {0};
    q6[0] = 0xf5, q6[32] = 0xa0, q6[64] = 0x01, q6[127] = 0x30;
    q6[128 + 0] = 0x72, q6[128 + 32] = 0x02, q6[128 + 63] = 0x80;
    q6[192 + 0] = 2, q6[192 + 2] = 0xff, q6[192 + 4] = 3, q6[192 + 6] = 1, q6[192 + 8] = 0x80, q6[192 + 15] = 127;
    q6[208] = 0x00, q6[209] = 0x38;
    vkl_dequantize_row(GGML_TYPE_Q6_K, q6, out, 256);
    CHECK_ELEMENTS("q6_K", out, {0, 5.0f}, {1, -32.0f}, {32, 16.0f}, {64, 46.5f}, {96, -3.0f}, {128, -64.0f},
                   {255, 190.5f});

    /* IQ4_XS {f16 d, uint16 scales_h, scales_l[4], qs[128]}: d = 0.25. Scale of sub-block s (32 elements):
     * low 4 bits = nibble s % 2 of scales_l[s / 2], top 2 = bits 2s of scales_h, minus 32.
     * Sub-block 0 = 33 - 32 = 1 (scales_l[0] = 0x01, scales_h bits 0-1 = 2), sub-block 1 = -32, sub-block 7 =
     * 63 - 32 = 31 (scales_l[3] = 0xf0, scales_h bits 14-15 = 3): scales_h = 0xc002. Sub-block s's 16 bytes at
     * qs[16 s], IQ4_NL nibble order. qs[0] = 0x8f: e0 = level 15 = 113 -> 28.25; e16 = level 8 = 1 -> 0.25;
     * e32 = level 0 = -127, scale -32 -> 1016; e224 = -127 * 31 * 0.25 = -984.25;
     * qs[127] = 0x70: e255 = level 7 = -10 -> -77.5. */
    uint8_t xs[136] = {0};
    xs[0] = 0x00, xs[1] = 0x34, xs[2] = 0x02, xs[3] = 0xc0;
    xs[4 + 0] = 0x01, xs[4 + 3] = 0xf0;
    xs[8 + 0] = 0x8f, xs[8 + 127] = 0x70;
    vkl_dequantize_row(GGML_TYPE_IQ4_XS, xs, out, 256);
    CHECK_ELEMENTS("iq4_xs", out, {0, 28.25f}, {16, 0.25f}, {32, 1016.0f}, {224, -984.25f}, {255, -77.5f});
}

/* MXFP4 and the IQ grid types: one block each, bytes set by hand. The grid entries used were read from llama.cpp's
 * own dequantization (tools/derive_grids.sh) and are written out here as numbers: IQ2_XXS entry 1 = {43, 8 x7},
 * 2 = {25, 25, 8 x6}, 255 = {8, 25, 8, 8, 25, 43, 43, 43}; IQ2_XS 300 = {8, 25, 25, 8, 8, 25, 8, 25}, 511 = {43 x8};
 * IQ2_S 700 = {8, 8, 8, 43, 43, 8, 25, 25}, 1023 = {43 x8}; IQ3_XXS 1 = {20, 4, 4, 4}, 200 = {4, 62, 4, 44},
 * 255 = {4, 28, 52, 62}; IQ3_S 300 = {3, 5, 3, 7}, 511 = {1, 1, 15, 15}; IQ1_S 1000 = {-1, 0, -1, -1, 0, 0, 0, 0},
 * 2047 = {1 x8}, 1 = {1, -1 x7}; entry 0 is the smallest value everywhere (8, 4, 1, -1). */
static void test_hand_built_grid_types(void)
{
    float out[256];

    /* MXFP4 {E8M0 e, qs[16]}: e = 126 -> 2^-1; qs[j] = j | (15 - j) << 4; E2M1 codes 0..15 = 0, 0.5, 1, 1.5, 2, 3,
     * 4, 6, then the same negated. e0 = 0, e1 = 0.25, e7 = 3, e9 = -0.25, e15 = e16 = -3, e24 = 3. Block 2: e = 0
     * (2^-127, a subnormal scale), code 7: 6 * 2^-127 = 3 * 2^-126. Block 3: e = 254, code 1: 0.5 * 2^127. */
    uint8_t mx[3 * 17] = {126};
    for (int j = 0; j < 16; j++)
        mx[1 + j] = (uint8_t)(j | (15 - j) << 4);
    mx[17] = 0, mx[18] = 0x07, mx[34] = 254, mx[35] = 0x01;
    vkl_dequantize_row(GGML_TYPE_MXFP4, mx, out, 96);
    CHECK_ELEMENTS("mxfp4", out, {0, 0.0f}, {1, 0.25f}, {7, 3.0f}, {9, -0.25f}, {15, -3.0f}, {16, -3.0f}, {24, 3.0f},
                   {31, 0.0f}, {32, ldexpf(3.0f, -126)}, {48, 0.0f}, {64, ldexpf(1.0f, 126)});

    /* IQ2_XXS {f16 d, per sub-block: 4 index bytes, uint32 w = 7 sign bits per group | scale << 28}: d = 0.5.
     * Sub-block 0: indices 1, 2, 0, 255; w = 0x38000001: scale 3 (db = 0.5 * 3.5 / 4 = 0.4375), group 0 signs
     * 0000001 (e0 negative; odd, so the eighth, e7, too), group 3 signs 1000000 (j = 6, and j = 7 by parity).
     * e0 = -43 db = -18.8125, e1 = 8 db = 3.5, e7 = -3.5, e8 = 25 db = 10.9375, e16 = 3.5, e25 = 10.9375,
     * e29 = 18.8125, e30 = e31 = -18.8125. Sub-block 1: all zero: db = 0.0625, 8 db = 0.5. */
    uint8_t iq2xxs[66] = {0x00, 0x38, 1, 2, 0, 255, 0x01, 0x00, 0x00, 0x38};
    vkl_dequantize_row(GGML_TYPE_IQ2_XXS, iq2xxs, out, 256);
    CHECK_ELEMENTS("iq2_xxs", out, {0, -18.8125f}, {1, 3.5f}, {7, -3.5f}, {8, 10.9375f}, {16, 3.5f}, {25, 10.9375f},
                   {29, 18.8125f}, {30, -18.8125f}, {31, -18.8125f}, {32, 0.5f}, {255, 0.5f});

    /* IQ2_XS {f16 d, uint16 qs[32] = index | 7 sign bits << 9, scales[8]}: d = 1, scales[0] = 0x21: groups 0-1
     * scale 1 (db = 1.5 / 4 = 0.375), groups 2-3 scale 2 (0.625); others 0 (0.125). Group 0: index 300, signs 0000011
     * (even: e7 positive) -> 0x072c; group 2: index 511, signs 0000100 (odd: e23 too) -> 0x09ff.
     * e0 = -3, e1 = -9.375, e2 = 9.375, e7 = 9.375, e8 = 3, e16 = 26.875, e18 = e23 = -26.875, e255 = 1. */
    uint8_t iq2xs[74] = {0x00, 0x3c, 0x2c, 0x07, 0x00, 0x00, 0xff, 0x09};
    iq2xs[66] = 0x21;
    vkl_dequantize_row(GGML_TYPE_IQ2_XS, iq2xs, out, 256);
    CHECK_ELEMENTS("iq2_xs", out, {0, -3.0f}, {1, -9.375f}, {2, 9.375f}, {7, 9.375f}, {8, 3.0f}, {16, 26.875f},
                   {17, 26.875f}, {18, -26.875f}, {23, -26.875f}, {255, 1.0f});

    /* IQ2_S {f16 d, qs[32], signs[32], qh[8], scales[8]}: d = 1. Group 0: index 700 = 0x2bc (qs[0] = 0xbc, qh[0]
     * bits 0-1 = 2), signs 0x81; group 3: index 1023 (qs[3] = 0xff, qh[0] bits 6-7 = 3), signs 0x02. scales[0] =
     * 0x13: groups 0-1 db = 3.5 / 4 = 0.875, groups 2-3 db = 0.375. e0 = -7, e3 = 37.625, e6 = 21.875, e7 = -21.875,
     * e8 = 7, e16 = 3, e24 = 16.125, e25 = -16.125, e255 = 8 / 8 = 1. */
    uint8_t iq2s[82] = {0x00, 0x3c, 0xbc, 0, 0, 0xff};
    iq2s[34] = 0x81, iq2s[37] = 0x02, iq2s[66] = 0xc2, iq2s[74] = 0x13;
    vkl_dequantize_row(GGML_TYPE_IQ2_S, iq2s, out, 256);
    CHECK_ELEMENTS("iq2_s", out, {0, -7.0f}, {3, 37.625f}, {6, 21.875f}, {7, -21.875f}, {8, 7.0f}, {16, 3.0f},
                   {24, 16.125f}, {25, -16.125f}, {255, 1.0f});

    /* IQ3_XXS {f16 d, qs[64] (index per 4), uint32 per sub-block = 7 sign bits per 8 | scale << 28}: d = 2.
     * Sub-block 0: indices 1, 200, 255, 0, ...; w = 0x10000002: scale 1 (db = 2 * 1.5 / 2 = 1.5), signs of e0-7
     * 0000010 (e1, and e7 by parity). e0 = 30, e1 = -6, e2 = 6, e5 = 93, e7 = -66, e8 = 6, e11 = 93, e12 = 6.
     * Sub-block 1: db = 0.5, e32 = 2; e255 = 2. */
    uint8_t iq3xxs[98] = {0x00, 0x40, 1, 200, 255};
    iq3xxs[66] = 0x02, iq3xxs[69] = 0x10;
    vkl_dequantize_row(GGML_TYPE_IQ3_XXS, iq3xxs, out, 256);
    CHECK_ELEMENTS("iq3_xxs", out, {0, 30.0f}, {1, -6.0f}, {2, 6.0f}, {5, 93.0f}, {7, -66.0f}, {8, 6.0f}, {11, 93.0f},
                   {12, 6.0f}, {32, 2.0f}, {255, 2.0f});

    /* IQ3_S {f16 d, qs[64], qh[8], signs[32], scales[4]}: d = 0.5. Group 0: index 300 = 0x12c (qs[0] = 0x2c, qh[0]
     * bit 0), group 1: 511 (qs[1] = 0xff, qh[0] bit 1); signs[0] = 0x90 (e4, e7); scales[0] = 0x02: sub-block 0
     * db = 0.5 * (1 + 4) = 2.5, sub-block 1 db = 0.5. e0 = 7.5, e1 = 12.5, e3 = 17.5, e4 = -2.5, e6 = 37.5,
     * e7 = -37.5, e8 = 2.5, e32 = 0.5, e255 = 0.5. */
    uint8_t iq3s[110] = {0x00, 0x38, 0x2c, 0xff};
    iq3s[66] = 0x03, iq3s[74] = 0x90, iq3s[106] = 0x02;
    vkl_dequantize_row(GGML_TYPE_IQ3_S, iq3s, out, 256);
    CHECK_ELEMENTS("iq3_s", out, {0, 7.5f}, {1, 12.5f}, {3, 17.5f}, {4, -2.5f}, {6, 37.5f}, {7, -37.5f}, {8, 2.5f},
                   {32, 0.5f}, {255, 0.5f});

    /* IQ1_S {f16 d, qs[32], uint16 qh[8]}: d = 0.25. Group 0: index 1000 = 0x3e8 (qs[0] = 0xe8, qh[0] bits 0-2 = 3),
     * group 1: 2047 (qs[1] = 0xff, bits 3-5 = 7); qh[0] scale bits 12-14 = 2 (dl = 0.25 * 5 = 1.25), bit 15: delta
     * -1/8 -> qh[0] = 0xa03b. e0 = 1.25 * -1.125 = -1.40625, e1 = -0.15625, e8 = 1.09375, e16 (index 0) = -1.40625.
     * Sub-block 1: dl = 0.25, delta +1/8: e32 = -0.21875; e255 the same. */
    uint8_t iq1s[50] = {0x00, 0x34, 0xe8, 0xff};
    iq1s[34] = 0x3b, iq1s[35] = 0xa0;
    vkl_dequantize_row(GGML_TYPE_IQ1_S, iq1s, out, 256);
    CHECK_ELEMENTS("iq1_s", out, {0, -1.40625f}, {1, -0.15625f}, {8, 1.09375f}, {16, -1.40625f}, {32, -0.21875f},
                   {255, -0.21875f});

    /* IQ1_M {qs[32], qh[16], four uint16 scales}: d = 0.5 = f16 0x3800, its nibbles 0, 0, 8, 3 in the scales' top
     * nibbles. scales[0] = 0x0019: sub-block 0 half 0 scale 1 (dl = 1.5), half 1 scale 3 (dl = 3.5). Group 0:
     * index 1000 (qs[0] = 0xe8, nibble 3 | 8: delta -1/8), group 1: 2047 (qs[1] = 0xff, nibble 7: +1/8) -> qh[0] =
     * 0x7b; group 2: index 1 (qs[2] = 1, delta +). e0 = 1.5 * -1.125 = -1.6875, e1 = -0.1875, e8 = 1.6875,
     * e16 = 3.5 * 1.125 = 3.9375, e17 = -3.0625, e24 (index 0) = -3.0625; sub-block 1 dl = 0.5: e32 = -0.4375. */
    uint8_t iq1m[56] = {0xe8, 0xff, 0x01};
    iq1m[32] = 0x7b, iq1m[48] = 0x19, iq1m[53] = 0x80, iq1m[55] = 0x30;
    vkl_dequantize_row(GGML_TYPE_IQ1_M, iq1m, out, 256);
    CHECK_ELEMENTS("iq1_m", out, {0, -1.6875f}, {1, -0.1875f}, {8, 1.6875f}, {16, 3.9375f}, {17, -3.0625f},
                   {24, -3.0625f}, {32, -0.4375f}, {255, -0.4375f});

    /* vkl_ggml_block_set_rms: random bytes become a block whose values have the root mean square asked for, within
     * the f16 rounding of d (2^-11 relative). */
    static const struct { uint32_t type; float rms; } want[] = {{GGML_TYPE_IQ3_S, 3.0f}, {GGML_TYPE_IQ1_M, 0.05f},
                                                               {GGML_TYPE_IQ2_XXS, 1e-3f}};
    for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
        uint8_t blk[110];
        for (int i = 0; i < 110; i++)
            blk[i] = (uint8_t)(i * 37 + 11 * (int)t);
        vkl_ggml_block_set_rms(want[t].type, blk, want[t].rms);
        vkl_dequantize_row(want[t].type, blk, out, 256);
        double sq = 0.0;
        for (int i = 0; i < 256; i++)
            sq += (double)out[i] * out[i];
        const double rms = sqrt(sq / 256);
        CHECK(fabs(rms - want[t].rms) <= 1e-3 * want[t].rms, "%s set to rms %g: %g", vkl_ggml_type_name(want[t].type),
              want[t].rms, rms);
    }
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
        vkl_quantize_row(GGML_TYPE_Q8_0, x, buf, N);
        vkl_dequantize_row(GGML_TYPE_Q8_0, buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            double d = amax / 127.0f;
            double d16 = vkl_fp16_to_fp32((uint16_t)(buf[b * 34] | buf[b * 34 + 1] << 8));
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
        vkl_quantize_row(GGML_TYPE_Q4_0, x, buf, N);
        vkl_dequantize_row(GGML_TYPE_Q4_0, buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0, vmax = 0;
            for (int i = 0; i < 32; i++)
                if (fabsf(xb[i]) > amax)
                    amax = fabsf(xb[i]), vmax = xb[i];
            double d = fabs((double)(vmax / -8.0f));
            double d16 = fabs((double)vkl_fp16_to_fp32((uint16_t)(buf[b * 18] | buf[b * 18 + 1] << 8)));
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
        vkl_quantize_row(GGML_TYPE_Q8_0, x, buf, N);
        vkl_dequantize_row(GGML_TYPE_Q8_0, buf, y, N);
        vkl_quantize_row(GGML_TYPE_Q8_0, y, again, N);
        CHECK(memcmp(buf, again, N / 32 * 34) == 0, "q8_0 is not idempotent (trial %d)", trial);
        vkl_quantize_row(GGML_TYPE_Q4_0, x, buf, N);
        vkl_dequantize_row(GGML_TYPE_Q4_0, buf, y, N);
        vkl_quantize_row(GGML_TYPE_Q4_0, y, again, N);
        CHECK(memcmp(buf, again, N / 32 * 18) == 0, "q4_0 is not idempotent (trial %d)", trial);

        /* F16 rows: each element within half an f16 ulp (relative 2^-11) for these normal-range values. */
        vkl_quantize_row(GGML_TYPE_F16, x, buf, 256);
        vkl_dequantize_row(GGML_TYPE_F16, buf, y, 256);
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

/* quantize -> dequantize for every type on seeded random data (normal, uniform, with outliers, tiny and
 * large magnitudes): the relative RMS error of the whole row, sqrt(sum (x - y)^2 / sum x^2), stays within a
 * bound stated per type, and every element within a stated fraction of its block's largest magnitude. The
 * bounds are about 1.5x the errors these simple round-to-nearest quantizers reach (printed), and far below
 * what a wrong element order gives (an error of the order of the values themselves: RMS ~1.4). */
static void test_round_trip_all_types(test_rng *r)
{
    /* Element bounds: Q4_0/Q5_0 elements of the sign opposite to the block's maximum clamp at +7/+15 (error up
     * to d = 1/8, 1/16 of the max); the K-quants' sub-block scales are themselves rounded (4/6/8 bits); bf16
     * keeps 8 significant bits (2^-8 relative), f16 11. Tiny blocks (1e-3) have subnormal f16 scales. */
    static const struct { uint32_t type; double rms, elem; } bound[] = {
        {GGML_TYPE_F32, 0, 0},            {GGML_TYPE_F16, 5e-4, 6e-4},      {GGML_TYPE_BF16, 4e-3, 4e-3},
        {GGML_TYPE_Q8_0, 0.014, 0.012},   {GGML_TYPE_Q4_0, 0.2, 0.16},      {GGML_TYPE_Q4_1, 0.15, 0.1},
        {GGML_TYPE_Q5_0, 0.1, 0.08},      {GGML_TYPE_Q5_1, 0.07, 0.05},     {GGML_TYPE_Q2_K, 0.55, 0.5},
        {GGML_TYPE_Q3_K, 0.33, 0.4},      {GGML_TYPE_Q4_K, 0.15, 0.1},      {GGML_TYPE_Q5_K, 0.075, 0.085},
        {GGML_TYPE_Q6_K, 0.04, 0.08},     {GGML_TYPE_IQ4_NL, 0.17, 0.17},   {GGML_TYPE_IQ4_XS, 0.17, 0.23},
        {GGML_TYPE_MXFP4, 0.23, 0.21},
    };
    enum { N = QK_K * 32 };
    static float x[N], y[N];
    static uint8_t buf[N * 4];
    size_t quantizable = 0;
    for (size_t i = 0; i < vkl_ggml_type_count(); i++)
        quantizable += vkl_ggml_type_can_quantize(vkl_ggml_type_at(i)->id);
    CHECK(sizeof bound / sizeof bound[0] == quantizable, "every type with a quantizer has a bound");
    CHECK(!vkl_ggml_type_can_quantize(GGML_TYPE_IQ2_XXS) && !vkl_ggml_type_can_quantize(GGML_TYPE_IQ1_M) &&
          vkl_ggml_type_can_quantize(GGML_TYPE_MXFP4) && vkl_ggml_type_can_quantize(GGML_TYPE_F32), "which types quantize");
    /* A type without a quantizer gets zero blocks (a valid row of zeros), never uninitialised bytes. */
    memset(buf, 0xa5, 66 * 2);
    vkl_quantize_row(GGML_TYPE_IQ2_XXS, x, buf, 512);
    for (int i = 0; i < 66 * 2; i++)
        CHECK(buf[i] == 0, "iq2_xxs quantize_row byte %d = 0x%02x", i, buf[i]);
    for (size_t ti = 0; ti < sizeof bound / sizeof bound[0]; ti++) {
        const uint32_t type = bound[ti].type;
        const char *name = vkl_ggml_type_name(type);
        const uint32_t bs = vkl_ggml_block_size(type) > 1 ? vkl_ggml_block_size(type) : 32;
        double worst_rms = 0, worst_elem = 0;
        for (int trial = 0; trial < 8; trial++) {
            const float scale = trial % 4 == 0 ? 1e-3f : trial % 4 == 1 ? 1.0f : trial % 4 == 2 ? 40.0f : 0.05f;
            for (int i = 0; i < N; i++)
                x[i] = (trial & 1) ? scale * rng_normal(r) : rng_uniform(r, -scale, scale);
            if (trial >= 4) /* outliers, as real weights have */
                for (int i = 0; i < N; i += 97)
                    x[i] *= 8.0f;
            if (trial == 6) /* one sign only (the types with a minimum must handle an all-positive block) */
                for (int i = 0; i < N; i++)
                    x[i] = fabsf(x[i]);
            memset(y, 0xff, sizeof y);   /* NaN: an element the dequantizer skips fails */
            vkl_quantize_row(type, x, buf, N);
            vkl_dequantize_row(type, buf, y, N);
            double se = 0, sx = 0;
            for (int b = 0; b < N / (int)bs; b++) {
                float amax = 0;
                for (uint32_t i = 0; i < bs; i++)
                    amax = fmaxf(amax, fabsf(x[b * bs + i]));
                for (uint32_t i = 0; i < bs; i++) {
                    double d = (double)x[b * bs + i] - y[b * bs + i];
                    se += d * d;
                    sx += (double)x[b * bs + i] * x[b * bs + i];
                    double rel = fabs(d) / amax;
                    if (!(rel <= worst_elem))
                        worst_elem = isnan(rel) ? INFINITY : rel;
                }
            }
            worst_rms = fmax(worst_rms, sqrt(se / sx));
        }
        CHECK(worst_rms <= bound[ti].rms, "%s: relative RMS error %.4g > %.4g", name, worst_rms, bound[ti].rms);
        CHECK(worst_elem <= bound[ti].elem, "%s: element error %.4g of the block max > %.4g", name, worst_elem,
              bound[ti].elem);
        fprintf(stderr, "%-7s round trip: relative RMS %.4f (bound %.3g), element / block max %.4f (bound %.3g)\n",
                name, worst_rms, bound[ti].rms, worst_elem, bound[ti].elem);

        /* Zeros stay zeros; non-finite input neither crashes nor trips the sanitizers. */
        memset(x, 0, sizeof x);
        vkl_quantize_row(type, x, buf, QK_K);
        vkl_dequantize_row(type, buf, y, QK_K);
        for (int i = 0; i < QK_K; i++)
            CHECK(y[i] == 0.0f, "%s of zeros [%d] = %g", name, i, y[i]);
        x[3] = NAN, x[100] = INFINITY, x[200] = -INFINITY;
        vkl_quantize_row(type, x, buf, QK_K);
        vkl_dequantize_row(type, buf, y, QK_K);
    }
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
    test_hand_built_legacy();
    test_hand_built_super_blocks();
    test_hand_built_grid_types();
    test_quantize_error_bounds(&r);
    test_round_trip_all_types(&r);
    return test_finish("quant");
}

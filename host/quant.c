/* CPU-side number formats: IEEE binary16 conversion and the GGUF block formats F32, F16, Q8_0, Q4_0.
 *
 * Block layouts (little-endian, packed, no padding):
 *   Q8_0 (34 bytes / 32 values): f16 d, int8 q[32];                value i = q[i] * d
 *   Q4_0 (18 bytes / 32 values): f16 d, uint8 qs[16];              value j      = ((qs[j] & 15) - 8) * d
 *                                                                  value j + 16 = ((qs[j] >> 4) - 8) * d
 * Blocks start at odd addresses in general, so every multi-byte field is read and written byte by byte. */
#include "host/quant.h"

#include <math.h>
#include <string.h>

/* ---- binary16 <-> binary32 ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;

    if (exp == 0x1f) {                       /* infinity or NaN: keep the payload */
        return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    }
    if (exp == 0) {
        if (mant == 0) {                     /* signed zero */
            return f32_from_bits(sign);
        }
        /* Subnormal: mant * 2^-24. Normalise so the leading one lands on bit 10. */
        uint32_t e = 113;                    /* biased f32 exponent of 2^-14 */
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            e--;
        }
        mant &= 0x3ffu;
        return f32_from_bits(sign | (e << 23) | (mant << 13));
    }
    /* Normal: rebias the exponent from 15 to 127. */
    return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Shifts m right by `shift` bits (1..31), rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned shift)
{
    uint32_t kept = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u))) {
        kept++;
    }
    return kept;
}

uint16_t fp32_to_fp16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t mant = u & 0x7fffffu;

    if (exp == 0xff) {
        if (mant == 0) {
            return sign | 0x7c00u;                               /* infinity */
        }
        /* NaN: keep the top payload bits, and force the quiet bit so the result cannot become inf. */
        return (uint16_t)(sign | 0x7c00u | 0x200u | (mant >> 13));
    }

    int e = (int)exp - 127 + 15;             /* biased half exponent */
    if (e >= 31) {
        return sign | 0x7c00u;               /* too large: overflows to infinity */
    }
    if (e <= 0) {
        /* Subnormal half (or zero). The value is m * 2^(exp-150) with the implicit one restored;
         * in units of the half subnormal step 2^-24 that is m >> (14 - e). Below 2^-25 (e < -10) every
         * value rounds to zero; f32 subnormals (exp == 0) are far below that. */
        if (e < -10) {
            return sign;
        }
        uint32_t m = mant | 0x800000u;
        /* A carry out of the subnormal range yields 0x400, the smallest normal: still correct. */
        return (uint16_t)(sign | shift_round_even(m, (unsigned)(14 - e)));
    }
    /* Normal: the 10 top mantissa bits, rounded on the 13 dropped bits. A carry into the exponent is
     * the correct result, including the carry from 0x7bff into 0x7c00 (infinity). */
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) {
        h++;
    }
    return (uint16_t)(sign | h);
}

/* ---- types ---- */

const char *ggml_type_name(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: return "f32";
    case GGML_TYPE_F16: return "f16";
    case GGML_TYPE_Q4_0: return "q4_0";
    case GGML_TYPE_Q8_0: return "q8_0";
    default: return NULL;
    }
}

const char *ggml_type_label(uint32_t type)
{
    /* GGUF's tensor type numbers (gaps are retired types). */
    static const char *const labels[] = {
        "f32",     "f16",    "q4_0",    "q4_1",  "q4_2", "q4_3", "q5_0",   "q5_1",  "q8_0",   "q8_1",
        "q2_K",    "q3_K",   "q4_K",    "q5_K",  "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl",  "iq3_s",  "iq2_s",   "iq4_xs", "i8",  "i16",  "i32",    "i64",   "f64",    "iq1_m",
        "bf16",    NULL,     NULL,      NULL,    "tq1_0", "tq2_0",
    };
    return type < sizeof labels / sizeof labels[0] ? labels[type] : NULL;
}

bool ggml_type_from_name(const char *name, uint32_t *type)
{
    static const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q4_0, GGML_TYPE_Q8_0};
    if (name == NULL) {
        return false;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(name, ggml_type_name(types[i])) == 0) {
            if (type != NULL) {
                *type = types[i];
            }
            return true;
        }
    }
    return false;
}

uint32_t ggml_block_size(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: return 1;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return QK4_0;
    case GGML_TYPE_Q8_0: return QK8_0;
    default: return 0;
    }
}

uint32_t ggml_block_bytes(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: return 4;
    case GGML_TYPE_F16: return 2;
    case GGML_TYPE_Q4_0: return 2 + QK4_0 / 2;
    case GGML_TYPE_Q8_0: return 2 + QK8_0;
    default: return 0;
    }
}

uint64_t ggml_row_bytes(uint32_t type, uint64_t n)
{
    uint64_t bs = ggml_block_size(type);
    uint64_t bb = ggml_block_bytes(type);
    if (bs == 0 || n % bs != 0) {
        return 0;
    }
    uint64_t blocks = n / bs;
    if (blocks > UINT64_MAX / bb) {
        return 0;
    }
    return blocks * bb;
}

/* ---- dequantization ---- */

static uint16_t load_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void store_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

void dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    const uint8_t *s = src;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) {
            dst[i] = fp16_to_fp32(load_u16le(s + 2 * i));
        }
        return;
    case GGML_TYPE_Q8_0:
        for (uint64_t b = 0; b < n / QK8_0; b++) {
            const uint8_t *blk = s + b * (2 + QK8_0);
            float d = fp16_to_fp32(load_u16le(blk));
            for (int i = 0; i < QK8_0; i++) {
                dst[b * QK8_0 + i] = (float)(int8_t)blk[2 + i] * d;
            }
        }
        return;
    case GGML_TYPE_Q4_0:
        for (uint64_t b = 0; b < n / QK4_0; b++) {
            const uint8_t *blk = s + b * (2 + QK4_0 / 2);
            float d = fp16_to_fp32(load_u16le(blk));
            for (int j = 0; j < QK4_0 / 2; j++) {
                uint8_t byte = blk[2 + j];
                dst[b * QK4_0 + j] = (float)((int)(byte & 0x0f) - 8) * d;
                dst[b * QK4_0 + j + QK4_0 / 2] = (float)((int)(byte >> 4) - 8) * d;
            }
        }
        return;
    default:
        /* Unsupported type: callers check ggml_type_name first; never leave dst uninitialised. */
        for (uint64_t i = 0; i < n; i++) {
            dst[i] = 0.0f;
        }
        return;
    }
}

/* ---- quantization ---- */

static void quantize_block_q8_0(const float *x, uint8_t *blk)
{
    float amax = 0.0f;
    for (int i = 0; i < QK8_0; i++) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
        }
    }
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16le(blk, fp32_to_fp16(d));
    for (int i = 0; i < QK8_0; i++) {
        float q = roundf(x[i] * id);          /* |q| <= 127 for finite input */
        if (!(q >= -127.0f)) {                /* also catches NaN (from inf/nan input): no UB cast */
            q = q > 0.0f ? 127.0f : (q < 0.0f ? -127.0f : 0.0f);
        } else if (q > 127.0f) {
            q = 127.0f;
        }
        blk[2 + i] = (uint8_t)(int8_t)q;
    }
}

/* min(15, (int)(v + 8.5)), kept in 0..15 (and defined) for any v, NaN included. */
static int q4_nibble(float v)
{
    float t = v + 8.5f;
    if (!(t >= 0.0f)) {
        return 0;
    }
    if (t >= 15.0f) {
        return 15;
    }
    return (int)t;
}

static void quantize_block_q4_0(const float *x, uint8_t *blk)
{
    /* The value of largest magnitude, with its sign, is mapped to -8 (the one end of the range that
     * has no positive counterpart); values of the opposite sign and the same magnitude clamp at +7. */
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < QK4_0; i++) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    float d = vmax / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16le(blk, fp32_to_fp16(d));
    for (int j = 0; j < QK4_0 / 2; j++) {
        blk[2 + j] = (uint8_t)(q4_nibble(x[j] * id) | (q4_nibble(x[j + QK4_0 / 2] * id) << 4));
    }
}

void quantize_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    uint8_t *out = dst;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) {
            store_u16le(out + 2 * i, fp32_to_fp16(src[i]));
        }
        return;
    case GGML_TYPE_Q8_0:
        for (uint64_t b = 0; b < n / QK8_0; b++) {
            quantize_block_q8_0(src + b * QK8_0, out + b * (2 + QK8_0));
        }
        return;
    case GGML_TYPE_Q4_0:
        for (uint64_t b = 0; b < n / QK4_0; b++) {
            quantize_block_q4_0(src + b * QK4_0, out + b * (2 + QK4_0 / 2));
        }
        return;
    default:
        return;                               /* unsupported: nothing is written */
    }
}

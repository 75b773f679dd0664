/* CPU-side number formats: IEEE binary16 and bfloat16 conversion, the weight-type table, and the GGUF
 * block formats (layouts at each type's dequantizer below; little-endian, packed, no padding).
 * Blocks start at odd addresses in general, so every multi-byte field is read and written byte by byte. */
#include "host/format/quant.h"

#include <math.h>
#include <stdio.h>
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

float vkl_fp16_to_fp32(uint16_t h)
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

uint16_t vkl_fp32_to_fp16(float f)
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

float vkl_bf16_to_fp32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t vkl_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x40u);   /* NaN: keep it NaN even if the payload was in the low bits */
    }
    /* Round to nearest even on the 16 dropped bits; a carry into the exponent is correct (up to inf). */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ---- little-endian fields and rounding helpers ---- */

static uint16_t load_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void store_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

static float load_f16(const uint8_t *p) { return vkl_fp16_to_fp32(load_u16le(p)); }

/* Stores x as f16 and returns the value stored, so that quantizers work with the scale readers will see. */
static float store_f16(uint8_t *p, float x)
{
    uint16_t h = vkl_fp32_to_fp16(x);
    store_u16le(p, h);
    return vkl_fp16_to_fp32(h);
}

/* As store_f16, but never smaller in magnitude than x (the next f16 code away from zero when rounding went
 * towards it): a super-block scale that rounded down would push the largest sub-block scale out of its
 * integer range, and then whole sub-blocks clamp. Matters where d is an f16 subnormal (small weights), whose
 * codes are up to tens of per cent apart. */
static float store_f16_up(uint8_t *p, float x)
{
    uint16_t h = vkl_fp32_to_fp16(x);
    if (fabsf(vkl_fp16_to_fp32(h)) < fabsf(x) && (h & 0x7fffu) < 0x7bffu)
        h++;   /* f16 codes grow with magnitude within a sign */
    store_u16le(p, h);
    return vkl_fp16_to_fp32(h);
}

/* round(v) clamped to [lo, hi]; NaN gives the value nearest 0. Defined for any v (no UB cast). */
static int round_clamp(float v, int lo, int hi)
{
    if (v != v) {
        return lo > 0 ? lo : (hi < 0 ? hi : 0);
    }
    if (v <= (float)lo) {
        return lo;
    }
    if (v >= (float)hi) {
        return hi;
    }
    return (int)roundf(v);
}

/* The element of largest magnitude, with its sign (0 for an all-zero block). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            vmax = x[i];
        }
    }
    return vmax;
}

static void min_max(const float *x, int n, float *lo, float *hi)
{
    *lo = x[0];
    *hi = x[0];
    for (int i = 1; i < n; i++) {
        *lo = fminf(*lo, x[i]);
        *hi = fmaxf(*hi, x[i]);
    }
}

static float safe_inv(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* ---- legacy 32-element blocks ----
 * Nibble order of Q4_0/Q4_1/Q5_0/Q5_1/IQ4_NL: element j (0..15) is the low nibble of qs[j], element j + 16
 * its high nibble. Q5_0/Q5_1's fifth bit of element e is bit e of qh, a little-endian uint32. */

static int nibble32(const uint8_t *qs, int e) { return (qs[e % 16] >> (4 * (e / 16))) & 15; }

static void put_nibble32(uint8_t *qs, int e, int q) { qs[e % 16] |= (uint8_t)((q & 15) << (4 * (e / 16))); }

static uint32_t load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Q8_0 (34 bytes): f16 d, int8 q[32]; x = q * d */
static void dequant_q8_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int i = 0; i < 32; i++) {
        y[i] = (float)(int8_t)b[2 + i] * d;
    }
}

/* Q4_0 (18 bytes): f16 d, qs[16]; x = (nibble - 8) * d */
static void dequant_q4_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int e = 0; e < 32; e++) {
        y[e] = (float)(nibble32(b + 2, e) - 8) * d;
    }
}

/* Q4_1 (20 bytes): f16 d, f16 m, qs[16]; x = nibble * d + m */
static void dequant_q4_1(const uint8_t *b, float *y)
{
    float d = load_f16(b), m = load_f16(b + 2);
    for (int e = 0; e < 32; e++) {
        y[e] = (float)nibble32(b + 4, e) * d + m;
    }
}

/* Q5_0 (22 bytes): f16 d, qh[4], qs[16]; x = ((nibble | fifth bit << 4) - 16) * d */
static void dequant_q5_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    uint32_t qh = load_u32le(b + 2);
    for (int e = 0; e < 32; e++) {
        y[e] = (float)((nibble32(b + 6, e) | (int)((qh >> e) & 1u) << 4) - 16) * d;
    }
}

/* Q5_1 (24 bytes): f16 d, f16 m, qh[4], qs[16]; x = (nibble | fifth bit << 4) * d + m */
static void dequant_q5_1(const uint8_t *b, float *y)
{
    float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh = load_u32le(b + 4);
    for (int e = 0; e < 32; e++) {
        y[e] = (float)(nibble32(b + 8, e) | (int)((qh >> e) & 1u) << 4) * d + m;
    }
}

const int8_t vkl_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* IQ4_NL (18 bytes): f16 d, qs[16] (Q4_0's nibble order); x = d * level[nibble] */
static void dequant_iq4_nl(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int e = 0; e < 32; e++) {
        y[e] = d * (float)vkl_iq4_levels[nibble32(b + 2, e)];
    }
}

static void quant_q8_0(const float *x, uint8_t *b)
{
    float amax = fabsf(signed_absmax(x, 32));
    float d = amax / 127.0f;
    float id = safe_inv(d);
    store_u16le(b, vkl_fp32_to_fp16(d));
    for (int i = 0; i < 32; i++) {
        b[2 + i] = (uint8_t)(int8_t)round_clamp(x[i] * id, -127, 127);
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

static void quant_q4_0(const float *x, uint8_t *b)
{
    /* The value of largest magnitude, with its sign, is mapped to -8 (the one end of the range that
     * has no positive counterpart); values of the opposite sign and the same magnitude clamp at +7. */
    float d = signed_absmax(x, 32) / -8.0f;
    float id = safe_inv(d);
    store_u16le(b, vkl_fp32_to_fp16(d));
    memset(b + 2, 0, 16);
    for (int e = 0; e < 32; e++) {
        put_nibble32(b + 2, e, q4_nibble(x[e] * id));
    }
}

/* q = round((x - min) / d) in 0..nmax with d = (max - min) / nmax; stores d and m = min as f16 at b. */
static void quant_min_max(const float *x, uint8_t *b, int nmax, int *q)
{
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    float d = store_f16(b, (hi - lo) / (float)nmax);
    float m = store_f16(b + 2, lo);
    float id = safe_inv(d);
    for (int e = 0; e < 32; e++) {
        q[e] = round_clamp((x[e] - m) * id, 0, nmax);
    }
}

static void quant_q4_1(const float *x, uint8_t *b)
{
    int q[32];
    quant_min_max(x, b, 15, q);
    memset(b + 4, 0, 16);
    for (int e = 0; e < 32; e++) {
        put_nibble32(b + 4, e, q[e]);
    }
}

/* Packs 5-bit values: low nibbles into qs, fifth bits into the little-endian uint32 qh. */
static void put_q5(uint8_t *qh, uint8_t *qs, const int *q)
{
    memset(qh, 0, 4);
    memset(qs, 0, 16);
    for (int e = 0; e < 32; e++) {
        put_nibble32(qs, e, q[e]);
        qh[e / 8] |= (uint8_t)(((q[e] >> 4) & 1) << (e % 8));
    }
}

static void quant_q5_0(const float *x, uint8_t *b)
{
    float d = store_f16(b, signed_absmax(x, 32) / -16.0f);   /* largest magnitude -> -16, as Q4_0 */
    float id = safe_inv(d);
    int q[32];
    for (int e = 0; e < 32; e++) {
        q[e] = round_clamp(x[e] * id, -16, 15) + 16;
    }
    put_q5(b + 2, b + 6, q);
}

static void quant_q5_1(const float *x, uint8_t *b)
{
    int q[32];
    quant_min_max(x, b, 31, q);
    put_q5(b + 4, b + 8, q);
}

/* Index of the level nearest v. */
static int iq4_nearest(float v)
{
    int best = 0;
    for (int i = 1; i < 16; i++) {
        if (fabsf(v - (float)vkl_iq4_levels[i]) < fabsf(v - (float)vkl_iq4_levels[best])) {
            best = i;
        }
    }
    return best;
}

static void quant_iq4_nl(const float *x, uint8_t *b)
{
    float d = store_f16(b, signed_absmax(x, 32) / (float)vkl_iq4_levels[0]);   /* largest magnitude -> -127 */
    float id = safe_inv(d);
    memset(b + 2, 0, 16);
    for (int e = 0; e < 32; e++) {
        put_nibble32(b + 2, e, iq4_nearest(x[e] * id));
    }
}

/* MXFP4 (17 bytes): E8M0 exponent e, qs[16] (Q4_0's nibble order) holding E2M1 codes: bit 3 the sign, bits 1-2
 * an exponent, bit 0 a mantissa bit; magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. x = e2m1 * 2^(e - 127), where
 * e = 0 gives 2^-127 (a subnormal float) and e = 255 2^128 (no NaN code: ggml reads it as a number). Held
 * here as twice the E2M1 value (integers 0..12) times 2^(e - 128), both exact in a float. */
static const int8_t mxfp4_twice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static void dequant_mxfp4(const uint8_t *b, float *y)
{
    float scale = ldexpf(1.0f, (int)b[0] - 128);
    for (int e = 0; e < 32; e++) {
        y[e] = (float)mxfp4_twice[nibble32(b + 1, e)] * scale;
    }
}

/* The smallest exponent whose range (6 * 2^(e - 127)) holds the largest magnitude, then the nearest code. */
static void quant_mxfp4(const float *x, uint8_t *b)
{
    float amax = fabsf(signed_absmax(x, 32));
    int e = 0;
    if (amax > 0.0f && isfinite(amax)) {
        (void)frexpf(amax / 6.0f, &e);   /* amax / 6 = m * 2^e, m in [0.5, 1): 2^e >= amax / 6 */
        e = e + 127 < 0 ? 0 : e + 127 > 254 ? 254 : e + 127;
        if (e > 0 && ldexpf(6.0f, e - 128) >= amax)   /* 2^(e-1) suffices when amax / 6 is a power of two */
            e--;
    }
    b[0] = (uint8_t)e;
    memset(b + 1, 0, 16);
    for (int i = 0; i < 32; i++) {
        float v = ldexpf(x[i], 128 - e);   /* twice the E2M1 value */
        int best = 0;
        for (int c = 1; c < 16; c++) {
            if (fabsf(v - (float)mxfp4_twice[c]) < fabsf(v - (float)mxfp4_twice[best])) {
                best = c;
            }
        }
        put_nibble32(b + 1, i, best);
    }
}

/* ---- 256-element super-blocks (K-quants, IQ4_XS) ----
 * Q2_K/Q3_K's 2-bit quants: element e sits in byte (e / 128) * 32 + e % 32 of qs at bit 2 * ((e % 128) / 32),
 * i.e. each half of the block uses 32 bytes, and within a half the four 32-element groups take bit pairs
 * 0-1, 2-3, 4-5, 6-7. Their 16 sub-blocks are 16 elements each (sub-block e / 16). */

static int q2_get(const uint8_t *qs, int e) { return (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

static void q2_put(uint8_t *qs, int e, int q) { qs[(e / 128) * 32 + e % 32] |= (uint8_t)((q & 3) << (2 * ((e % 128) / 32))); }

/* Q2_K (84 bytes): scales[16], qs[64], f16 d, f16 dmin. Sub-block s: scale byte = sc | m << 4 (4 bits each);
 * x = d * sc * q - dmin * m. */
static void dequant_q2_K(const uint8_t *b, float *y)
{
    float d = load_f16(b + 80), dmin = load_f16(b + 82);
    for (int e = 0; e < QK_K; e++) {
        uint8_t sc = b[e / 16];
        y[e] = d * (float)(sc & 15) * (float)q2_get(b + 16, e) - dmin * (float)(sc >> 4);
    }
}

/* Q3_K's 16 6-bit scales in 12 bytes: scale s has its low 4 bits in byte s % 8 (low nibble for s < 8, high
 * nibble for s >= 8) and its top 2 bits in byte 8 + s % 4 at bit 2 * (s / 4); the value is that - 32. */
static int q3_scale(const uint8_t *sc, int s)
{
    int low = (sc[s % 8] >> (4 * (s / 8))) & 15;
    int high = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (low | high << 4) - 32;
}

static void q3_put_scale(uint8_t *sc, int s, int v)
{
    int u = v + 32;
    sc[s % 8] |= (uint8_t)((u & 15) << (4 * (s / 8)));
    sc[8 + s % 4] |= (uint8_t)(((u >> 4) & 3) << (2 * (s / 4)));
}

/* Q3_K (110 bytes): hmask[32], qs[64], scales[12], f16 d. Element e: 2 low bits from qs as Q2_K, high bit
 * = bit e / 32 of hmask[e % 32]; q = low - (high bit ? 0 : 4), in -4..3; x = d * scale(e / 16) * q. */
static void dequant_q3_K(const uint8_t *b, float *y)
{
    float d = load_f16(b + 108);
    for (int e = 0; e < QK_K; e++) {
        int high = (b[e % 32] >> (e / 32)) & 1;
        int q = q2_get(b + 32, e) - (high ? 0 : 4);
        y[e] = d * (float)q3_scale(b + 96, e / 16) * (float)q;
    }
}

/* Q4_K/Q5_K's 8 pairs (scale, min) of 6 bits in 12 bytes: for s < 4, scale = bytes[s] & 63 and
 * min = bytes[s + 4] & 63; for s >= 4, scale = (bytes[s + 4] & 15) | (bytes[s - 4] >> 6) << 4 and
 * min = (bytes[s + 4] >> 4) | (bytes[s] >> 6) << 4. */
static void k4_scale_min(const uint8_t *sc, int s, int *scale, int *min)
{
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

static void k4_put_scale_min(uint8_t *sc, int s, int scale, int min)
{
    if (s < 4) {
        sc[s] |= (uint8_t)scale;
        sc[s + 4] |= (uint8_t)min;
    } else {
        sc[s + 4] |= (uint8_t)((scale & 15) | (min & 15) << 4);
        sc[s - 4] |= (uint8_t)((scale >> 4) << 6);
        sc[s] |= (uint8_t)((min >> 4) << 6);
    }
}

/* Q4_K/Q5_K nibbles: 8 sub-blocks of 32; sub-block s is in bytes (s / 2) * 32 .. + 32 of qs, low nibbles
 * for even s, high for odd s. */
static int k4_nibble(const uint8_t *qs, int e) { return (qs[(e / 64) * 32 + e % 32] >> (4 * ((e / 32) % 2))) & 15; }

static void k4_put_nibble(uint8_t *qs, int e, int q) { qs[(e / 64) * 32 + e % 32] |= (uint8_t)((q & 15) << (4 * ((e / 32) % 2))); }

/* Q4_K (144 bytes): f16 d, f16 dmin, scales[12], qs[128]; x = d * scale(e / 32) * q - dmin * min(e / 32). */
static void dequant_q4_K(const uint8_t *b, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    for (int e = 0; e < QK_K; e++) {
        int sc, m;
        k4_scale_min(b + 4, e / 32, &sc, &m);
        y[e] = d * (float)sc * (float)k4_nibble(b + 16, e) - dmin * (float)m;
    }
}

/* Q5_K (176 bytes): f16 d, f16 dmin, scales[12], qh[32], qs[128]; as Q4_K with a fifth bit: bit e / 32 of
 * qh[e % 32]. */
static void dequant_q5_K(const uint8_t *b, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    for (int e = 0; e < QK_K; e++) {
        int sc, m;
        k4_scale_min(b + 4, e / 32, &sc, &m);
        int q = k4_nibble(b + 48, e) | ((b[16 + e % 32] >> (e / 32)) & 1) << 4;
        y[e] = d * (float)sc * (float)q - dmin * (float)m;
    }
}

/* Q6_K element e: half h = e / 128, quarter t = (e % 128) / 32, l = e % 32. Low 4 bits in
 * ql[h * 64 + (t % 2) * 32 + l] (low nibble for t < 2, high for t >= 2), top 2 bits in qh[h * 32 + l] at
 * bit 2 * t. */
static int q6_get(const uint8_t *ql, const uint8_t *qh, int e)
{
    int h = e / 128, t = (e % 128) / 32, l = e % 32;
    int low = (ql[h * 64 + (t % 2) * 32 + l] >> (4 * (t / 2))) & 15;
    int high = (qh[h * 32 + l] >> (2 * t)) & 3;
    return low | high << 4;
}

static void q6_put(uint8_t *ql, uint8_t *qh, int e, int q)
{
    int h = e / 128, t = (e % 128) / 32, l = e % 32;
    ql[h * 64 + (t % 2) * 32 + l] |= (uint8_t)((q & 15) << (4 * (t / 2)));
    qh[h * 32 + l] |= (uint8_t)(((q >> 4) & 3) << (2 * t));
}

/* Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], f16 d; x = d * scales[e / 16] * (q - 32). */
static void dequant_q6_K(const uint8_t *b, float *y)
{
    float d = load_f16(b + 208);
    for (int e = 0; e < QK_K; e++) {
        y[e] = d * (float)(int8_t)b[192 + e / 16] * (float)(q6_get(b, b + 128, e) - 32);
    }
}

/* IQ4_XS sub-block s (8 of 32) scale: low 4 bits = nibble s % 2 of scales_l[s / 2], top 2 bits = bits 2s,
 * 2s+1 of scales_h; the value is that - 32. */
static int iq4xs_scale(const uint8_t *b, int s)
{
    int low = (b[4 + s / 2] >> (4 * (s % 2))) & 15;
    int high = (load_u16le(b + 2) >> (2 * s)) & 3;
    return (low | high << 4) - 32;
}

/* IQ4_XS (136 bytes): f16 d, uint16 scales_h, scales_l[4], qs[128]. Sub-block s has its 16 bytes at
 * qs[16 s], in IQ4_NL's nibble order; x = d * scale(s) * level[nibble]. */
static void dequant_iq4_xs(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int e = 0; e < QK_K; e++) {
        y[e] = d * (float)iq4xs_scale(b, e / 32) * (float)vkl_iq4_levels[nibble32(b + 8 + (e / 32) * 16, e % 32)];
    }
}

/* Asymmetric sub-blocks (Q2_K, Q4_K, Q5_K): n_sub sub-blocks of `sub` elements, x = d*ls*q - dmin*lm with
 * q in 0..nmax and the sub-block scale ls and min lm in 0..smax. Each sub-block takes min(0, its min) and its
 * max; the super-block scales d and dmin map the largest sub-block scale and min to smax. Stores d, dmin as
 * f16 at dd[0], dd[2]; fills q, ls, lm. */
static void kquant_asym(const float *x, int n_sub, int sub, int nmax, int smax, uint8_t *dd, int *q, int *ls, int *lm)
{
    float scale[16], mn[16], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < n_sub; s++) {
        float lo, hi;
        min_max(x + s * sub, sub, &lo, &hi);
        lo = fminf(lo, 0.0f);
        scale[s] = (hi - lo) / (float)nmax;
        mn[s] = -lo;
        max_scale = fmaxf(max_scale, scale[s]);
        max_min = fmaxf(max_min, mn[s]);
    }
    float d = store_f16(dd, max_scale / (float)smax);
    float dmin = store_f16(dd + 2, max_min / (float)smax);
    for (int s = 0; s < n_sub; s++) {
        ls[s] = round_clamp(scale[s] * safe_inv(d), 0, smax);
        lm[s] = round_clamp(mn[s] * safe_inv(dmin), 0, smax);
        float dl = d * (float)ls[s], ml = dmin * (float)lm[s];
        for (int i = 0; i < sub; i++) {
            q[s * sub + i] = round_clamp((x[s * sub + i] + ml) * safe_inv(dl), 0, nmax);
        }
    }
}

/* Signed sub-block scales (Q3_K, Q6_K, IQ4_XS): sub-block s's scale maps its value of largest magnitude to
 * qneg (the negative end of its range); the super-block scale d maps the largest sub-block scale, with its
 * sign, to smin; ls[s] = round(scale / d) in smin..smax. Stores d as f16 at dp and returns it. */
static float kquant_sym(const float *x, int n_sub, int sub, float qneg, int smin, int smax, uint8_t *dp, int *ls)
{
    float scale[16];
    for (int s = 0; s < n_sub; s++) {
        scale[s] = signed_absmax(x + s * sub, sub) / qneg;
    }
    float d = store_f16_up(dp, signed_absmax(scale, n_sub) / (float)smin);
    for (int s = 0; s < n_sub; s++) {
        ls[s] = round_clamp(scale[s] * safe_inv(d), smin, smax);
    }
    return d;
}

static void quant_q2_K(const float *x, uint8_t *b)
{
    int q[QK_K], ls[16], lm[16];
    memset(b, 0, 84);
    kquant_asym(x, 16, 16, 3, 15, b + 80, q, ls, lm);
    for (int s = 0; s < 16; s++) {
        b[s] = (uint8_t)(ls[s] | lm[s] << 4);
    }
    for (int e = 0; e < QK_K; e++) {
        q2_put(b + 16, e, q[e]);
    }
}

static void quant_q3_K(const float *x, uint8_t *b)
{
    int ls[16];
    memset(b, 0, 110);
    float d = kquant_sym(x, 16, 16, -4.0f, -32, 31, b + 108, ls);
    for (int s = 0; s < 16; s++) {
        q3_put_scale(b + 96, s, ls[s]);
    }
    for (int e = 0; e < QK_K; e++) {
        int q = round_clamp(x[e] * safe_inv(d * (float)ls[e / 16]), -4, 3);
        if (q >= 0) {
            b[e % 32] |= (uint8_t)(1u << (e / 32));   /* high bit set: no -4 */
        }
        q2_put(b + 32, e, q & 3);
    }
}

/* Q4_K and Q5_K (with_qh: the fifth bits in qh[32] before the nibbles). */
static void quant_q45_K(const float *x, uint8_t *b, bool with_qh)
{
    int q[QK_K], ls[8], lm[8];
    uint8_t *qs = b + (with_qh ? 48 : 16);
    memset(b, 0, with_qh ? 176 : 144);
    kquant_asym(x, 8, 32, with_qh ? 31 : 15, 63, b, q, ls, lm);
    for (int s = 0; s < 8; s++) {
        k4_put_scale_min(b + 4, s, ls[s], lm[s]);
    }
    for (int e = 0; e < QK_K; e++) {
        k4_put_nibble(qs, e, q[e]);
        if (with_qh) {
            b[16 + e % 32] |= (uint8_t)(((q[e] >> 4) & 1) << (e / 32));
        }
    }
}

static void quant_q4_K(const float *x, uint8_t *b) { quant_q45_K(x, b, false); }

static void quant_q5_K(const float *x, uint8_t *b) { quant_q45_K(x, b, true); }

static void quant_q6_K(const float *x, uint8_t *b)
{
    int ls[16];
    memset(b, 0, 210);
    float d = kquant_sym(x, 16, 16, -32.0f, -128, 127, b + 208, ls);
    for (int s = 0; s < 16; s++) {
        b[192 + s] = (uint8_t)(int8_t)ls[s];
    }
    for (int e = 0; e < QK_K; e++) {
        q6_put(b, b + 128, e, round_clamp(x[e] * safe_inv(d * (float)ls[e / 16]), -32, 31) + 32);
    }
}

static void quant_iq4_xs(const float *x, uint8_t *b)
{
    int ls[8];
    memset(b, 0, 136);
    float d = kquant_sym(x, 8, 32, (float)vkl_iq4_levels[0], -32, 31, b, ls);
    uint16_t scales_h = 0;
    for (int s = 0; s < 8; s++) {
        int u = ls[s] + 32;
        b[4 + s / 2] |= (uint8_t)((u & 15) << (4 * (s % 2)));
        scales_h |= (uint16_t)(((u >> 4) & 3) << (2 * s));
    }
    store_u16le(b + 2, scales_h);
    for (int e = 0; e < QK_K; e++) {
        float id = safe_inv(d * (float)ls[e / 32]);
        put_nibble32(b + 8 + (e / 32) * 16, e % 32, iq4_nearest(x[e] * id));
    }
}

/* ---- the IQ grid types (256-element super-blocks; no quantizer: vkllm reads them, does not write them) ----
 * Groups of 8 (IQ2, IQ1) or 4 (IQ3) elements take their magnitudes from a grid entry (shaders/iq_grids.glsl, read
 * through iq_grid8 / iq_grid4) and their signs from sign bits (a set bit negates), times a sub-block scale.
 * Where a group has 7 sign bits, the eighth makes the number of set bits even. */

#include "shaders/iq_grids.glsl"   /* macros only: the grids, shared with the shaders */

static const uint32_t iq2xxs_grid[] = {IQ2XXS_GRID};
static const uint32_t iq2xs_grid[] = {IQ2XS_GRID};
static const uint32_t iq2s_grid[] = {IQ2S_GRID};
static const uint32_t iq3xxs_grid[] = {IQ3XXS_GRID};
static const uint32_t iq3s_grid[] = {IQ3S_GRID};
static const uint32_t iq1s_grid[] = {IQ1S_GRID};

/* Which grid each type reads (IQ1_M shares IQ1_S's). */
static const struct {
    uint32_t type;
    const uint32_t *grid;
    uint32_t bytes;
} IQ_GRIDS[] = {
    {GGML_TYPE_IQ2_XXS, iq2xxs_grid, sizeof iq2xxs_grid}, {GGML_TYPE_IQ2_XS, iq2xs_grid, sizeof iq2xs_grid},
    {GGML_TYPE_IQ2_S, iq2s_grid, sizeof iq2s_grid},       {GGML_TYPE_IQ3_XXS, iq3xxs_grid, sizeof iq3xxs_grid},
    {GGML_TYPE_IQ3_S, iq3s_grid, sizeof iq3s_grid},       {GGML_TYPE_IQ1_S, iq1s_grid, sizeof iq1s_grid},
    {GGML_TYPE_IQ1_M, iq1s_grid, sizeof iq1s_grid},
};

const uint32_t *vkl_ggml_type_grid(uint32_t type, uint32_t *bytes)
{
    for (size_t i = 0; i < sizeof IQ_GRIDS / sizeof IQ_GRIDS[0]; i++) {
        if (IQ_GRIDS[i].type == type) {
            *bytes = IQ_GRIDS[i].bytes;
            return IQ_GRIDS[i].grid;
        }
    }
    *bytes = 0;
    return NULL;
}

/* Element j (0..7) of entry i of a grid of bytes (two little-endian words per entry). */
static int iq_grid8(const uint32_t *grid, uint32_t i, int j) { return (int)((grid[2 * i + j / 4] >> (8 * (j % 4))) & 0xffu); }
/* Element j (0..3) of entry i of a grid of 4 bytes per entry. */
static int iq_grid4(const uint32_t *grid, uint32_t i, int j) { return (int)((grid[i] >> (8 * j)) & 0xffu); }
/* Element j (0..7) of entry i of IQ1_S's grid (-1, 0, 1 stored plus one in 2 bits; two entries per word). */
static int iq1_grid(uint32_t i, int j) { return (int)((iq1s_grid[i / 2] >> (16 * (i % 2) + 2 * j)) & 3u) - 1; }

/* Seven sign bits and their parity as the eighth. */
static uint32_t iq_signs7(uint32_t s)
{
    s &= 127u;
    uint32_t p = s ^ (s >> 4);
    p ^= p >> 2;
    p ^= p >> 1;
    return s | (p & 1u) << 7;
}

static float iq_sign(uint32_t signs, int j) { return (signs >> j) & 1u ? -1.0f : 1.0f; }

/* IQ2_XXS (66 bytes): f16 d, then per 32-element sub-block s 8 bytes: 4 grid indices (byte l: group l of 8
 * elements) and a little-endian uint32 w with 7 sign bits per group (bits 7l..7l+6) and the scale in bits 28-31;
 * x = d * (0.5 + scale) / 4 * grid[index][j] * sign. Grid: 256 entries of 8 values in {8, 25, 43}. */
static void dequant_iq2_xxs(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int s = 0; s < 8; s++) {
        const uint8_t *q = b + 2 + 8 * s;
        uint32_t w = load_u32le(q + 4);
        float db = d * (0.5f + (float)(w >> 28)) * 0.25f;
        for (int l = 0; l < 4; l++) {
            uint32_t signs = iq_signs7(w >> (7 * l));
            for (int j = 0; j < 8; j++)
                y[32 * s + 8 * l + j] = db * (float)iq_grid8(iq2xxs_grid, q[l], j) * iq_sign(signs, j);
        }
    }
}

/* IQ2_XS (74 bytes): f16 d, uint16 qs[32] (group g of 8: 9-bit grid index, 7 sign bits above it), scales[8]
 * (sub-block s of 32: low nibble for its first 16 elements, high nibble for the others);
 * x = d * (0.5 + scale) / 4 * grid[index][j] * sign. Grid: 512 entries of 8 values in {8, 25, 43}. */
static void dequant_iq2_xs(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int g = 0; g < 32; g++) {
        uint32_t q = load_u16le(b + 2 + 2 * g);
        int scale = (b[66 + g / 4] >> (4 * ((g / 2) % 2))) & 15;
        float db = d * (0.5f + (float)scale) * 0.25f;
        uint32_t signs = iq_signs7(q >> 9);
        for (int j = 0; j < 8; j++)
            y[8 * g + j] = db * (float)iq_grid8(iq2xs_grid, q & 511u, j) * iq_sign(signs, j);
    }
}

/* IQ2_S (82 bytes): f16 d, qs[32] (low 8 bits of group g's grid index), signs[32] (8 sign bits of group g),
 * qh[8] (bits 8-9 of the index of group g at bit 2 * (g % 4) of qh[g / 4]), scales[8] as IQ2_XS;
 * x = d * (0.5 + scale) / 4 * grid[index][j] * sign. Grid: 1024 entries of 8 values in {8, 25, 43}. */
static void dequant_iq2_s(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int g = 0; g < 32; g++) {
        uint32_t index = b[2 + g] | ((uint32_t)(b[66 + g / 4] >> (2 * (g % 4))) & 3u) << 8;
        int scale = (b[74 + g / 4] >> (4 * ((g / 2) % 2))) & 15;
        float db = d * (0.5f + (float)scale) * 0.25f;
        for (int j = 0; j < 8; j++)
            y[8 * g + j] = db * (float)iq_grid8(iq2s_grid, index, j) * iq_sign(b[34 + g], j);
    }
}

/* IQ3_XXS (98 bytes): f16 d, qs[64] (grid index of group g of 4 elements), then per 32-element sub-block s a
 * little-endian uint32 w: 7 sign bits for each 8 elements l (bits 7l..7l+6), the scale in bits 28-31;
 * x = d * (0.5 + scale) / 2 * grid[index][j] * sign. Grid: 256 entries of 4 values in 4..62. */
static void dequant_iq3_xxs(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int s = 0; s < 8; s++) {
        uint32_t w = load_u32le(b + 66 + 4 * s);
        float db = d * (0.5f + (float)(w >> 28)) * 0.5f;
        for (int e = 0; e < 32; e++) {
            uint32_t signs = iq_signs7(w >> (7 * (e / 8)));
            y[32 * s + e] = db * (float)iq_grid4(iq3xxs_grid, b[2 + 8 * s + e / 4], e % 4) * iq_sign(signs, e % 8);
        }
    }
}

/* IQ3_S (110 bytes): f16 d, qs[64] (low 8 bits of the grid index of group g of 4 elements), qh[8] (bit 8 of
 * group g's index at bit g % 8 of qh[g / 8]), signs[32] (bit e % 8 of signs[e / 8]: element e), scales[4]
 * (sub-block s of 32: nibble s % 2 of scales[s / 2]); x = d * (1 + 2 * scale) * grid[index][j] * sign.
 * Grid: 512 entries of 4 values in 1..15. */
static void dequant_iq3_s(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int e = 0; e < QK_K; e++) {
        int g = e / 4, s = e / 32;
        uint32_t index = b[2 + g] | ((uint32_t)(b[66 + g / 8] >> (g % 8)) & 1u) << 8;
        float db = d * (float)(1 + 2 * ((b[106 + s / 2] >> (4 * (s % 2))) & 15));
        y[e] = db * (float)iq_grid4(iq3s_grid, index, e % 4) * iq_sign(b[74 + e / 8], e % 8);
    }
}

/* IQ1_S (50 bytes): f16 d, qs[32] (low 8 bits of the grid index of group g of 8), uint16 qh[8]: for sub-block
 * s of 32, bits 3l..3l+2 of qh[s] are bits 8-10 of group 4s + l's index, bits 12-14 the scale, bit 15 the
 * sign of delta; x = d * (2 * scale + 1) * (grid[index][j] + delta), delta = +-1/8. Grid: 2048 entries of
 * 8 values in -1, 0, 1. */
static void dequant_iq1_s(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int g = 0; g < 32; g++) {
        uint32_t qh = load_u16le(b + 34 + 2 * (g / 4));
        uint32_t index = b[2 + g] | ((qh >> (3 * (g % 4))) & 7u) << 8;
        float dl = d * (float)(2 * ((qh >> 12) & 7) + 1), delta = qh & 0x8000u ? -0.125f : 0.125f;
        for (int j = 0; j < 8; j++)
            y[8 * g + j] = dl * ((float)iq1_grid(index, j) + delta);
    }
}

/* IQ1_M (56 bytes): qs[32] (low 8 bits of group g's index), qh[16] (group g: nibble g % 2 of qh[g / 2], bits
 * 0-2 = index bits 8-10, bit 3 = sign of delta), four little-endian uint16 scales: their top nibbles, first to
 * last, are the 16 bits of the f16 d; the other 12 bits of scales[s / 2] hold 3-bit scales, bits
 * 6 * (s % 2) + 3h for half h (16 elements) of sub-block s. x = d * (2 * scale + 1) * (grid[index][j] + delta),
 * delta = +-1/8, IQ1_S's grid. */
static void dequant_iq1_m(const uint8_t *b, float *y)
{
    uint16_t dbits = 0;
    for (int k = 0; k < 4; k++)
        dbits |= (uint16_t)((b[48 + 2 * k + 1] >> 4) << (4 * k));
    float d = vkl_fp16_to_fp32(dbits);
    for (int g = 0; g < 32; g++) {
        int s = g / 4, h = (g / 2) % 2;
        uint32_t nib = (b[32 + g / 2] >> (4 * (g % 2))) & 15u;
        uint32_t index = b[g] | (nib & 7u) << 8;
        uint32_t sc = load_u16le(b + 48 + 2 * (s / 2));
        float dl = d * (float)(2 * ((sc >> (6 * (s % 2) + 3 * h)) & 7) + 1), delta = nib & 8u ? -0.125f : 0.125f;
        for (int j = 0; j < 8; j++)
            y[8 * g + j] = dl * ((float)iq1_grid(index, j) + delta);
    }
}

/* ---- the type table ---- */

typedef struct type_entry {
    ggml_type_info info;
    void (*dequant)(const uint8_t *block, float *y);   /* one block; NULL for f32/f16/bf16 */
    void (*quant)(const float *x, uint8_t *block);
} type_entry;

/*    id                 name      block bytes kernels qs_start qs_bytes meta fallback         file_type  dequant quant */
static const type_entry TYPES[] = {
    {{GGML_TYPE_F32,    "f32",    1,    4,   true,  0,  4,   0,  GGML_TYPE_F32,    0},  NULL,           NULL},
    {{GGML_TYPE_F16,    "f16",    1,    2,   true,  0,  2,   0,  GGML_TYPE_F16,    1},  NULL,           NULL},
    {{GGML_TYPE_BF16,   "bf16",   1,    2,   true,  0,  2,   0,  GGML_TYPE_BF16,   32}, NULL,           NULL},
    {{GGML_TYPE_Q4_0,   "q4_0",   32,   18,  true,  2,  16,  2,  GGML_TYPE_Q4_0,   2},  dequant_q4_0,   quant_q4_0},
    {{GGML_TYPE_Q4_1,   "q4_1",   32,   20,  true,  4,  16,  4,  GGML_TYPE_Q4_1,   3},  dequant_q4_1,   quant_q4_1},
    {{GGML_TYPE_Q5_0,   "q5_0",   32,   22,  true,  6,  16,  8,  GGML_TYPE_Q5_0,   8},  dequant_q5_0,   quant_q5_0},
    {{GGML_TYPE_Q5_1,   "q5_1",   32,   24,  true,  8,  16,  8,  GGML_TYPE_Q5_1,   9},  dequant_q5_1,   quant_q5_1},
    {{GGML_TYPE_Q8_0,   "q8_0",   32,   34,  true,  2,  32,  2,  GGML_TYPE_Q8_0,   7},  dequant_q8_0,   quant_q8_0},
    {{GGML_TYPE_Q2_K,   "q2_K",   QK_K, 84,  true,  16, 64,  20, GGML_TYPE_Q4_0,   10}, dequant_q2_K,   quant_q2_K},
    {{GGML_TYPE_Q3_K,   "q3_K",   QK_K, 110, true,  0,  96,  16, GGML_TYPE_Q4_0,   11}, dequant_q3_K,   quant_q3_K},
    {{GGML_TYPE_Q4_K,   "q4_K",   QK_K, 144, true,  16, 128, 16, GGML_TYPE_Q5_0,   14}, dequant_q4_K,   quant_q4_K},
    {{GGML_TYPE_Q5_K,   "q5_K",   QK_K, 176, true,  16, 160, 16, GGML_TYPE_Q5_1,   16}, dequant_q5_K,   quant_q5_K},
    {{GGML_TYPE_Q6_K,   "q6_K",   QK_K, 210, true,  0,  192, 20, GGML_TYPE_Q8_0,   18}, dequant_q6_K,   quant_q6_K},
    {{GGML_TYPE_IQ4_NL, "iq4_nl", 32,   18,  true,  2,  16,  2,  GGML_TYPE_IQ4_NL, 25}, dequant_iq4_nl, quant_iq4_nl},
    {{GGML_TYPE_IQ4_XS, "iq4_xs", QK_K, 136, true,  8,  128, 8,  GGML_TYPE_IQ4_NL, 30}, dequant_iq4_xs, quant_iq4_xs},
    {{GGML_TYPE_MXFP4,  "mxfp4",  32,   17,  true,  1,  16,  4,  GGML_TYPE_MXFP4,  38}, dequant_mxfp4,  quant_mxfp4},
    {{GGML_TYPE_IQ2_XXS,"iq2_xxs",QK_K, 66,  true,  2,  64,  2,  GGML_TYPE_IQ4_NL, 19}, dequant_iq2_xxs,NULL},
    {{GGML_TYPE_IQ2_XS, "iq2_xs", QK_K, 74,  true,  2,  64,  12, GGML_TYPE_IQ4_NL, 20}, dequant_iq2_xs, NULL},
    {{GGML_TYPE_IQ2_S,  "iq2_s",  QK_K, 82,  true,  2,  80,  2,  GGML_TYPE_IQ4_NL, 28}, dequant_iq2_s,  NULL},
    {{GGML_TYPE_IQ3_XXS,"iq3_xxs",QK_K, 98,  true,  2,  96,  2,  GGML_TYPE_IQ4_NL, 23}, dequant_iq3_xxs,NULL},
    {{GGML_TYPE_IQ3_S,  "iq3_s",  QK_K, 110, true,  2,  64,  48, GGML_TYPE_IQ4_NL, 26}, dequant_iq3_s,  NULL},
    {{GGML_TYPE_IQ1_S,  "iq1_s",  QK_K, 50,  true,  2,  48,  2,  GGML_TYPE_IQ4_NL, 24}, dequant_iq1_s,  NULL},
    {{GGML_TYPE_IQ1_M,  "iq1_m",  QK_K, 56,  true,  0,  48,  8,  GGML_TYPE_IQ4_NL, 31}, dequant_iq1_m,  NULL},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static const type_entry *entry(uint32_t type)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        if (TYPES[i].info.id == type) {
            return &TYPES[i];
        }
    }
    return NULL;
}

const ggml_type_info *vkl_ggml_type_get(uint32_t type)
{
    const type_entry *t = entry(type);
    return t ? &t->info : NULL;
}

size_t vkl_ggml_type_count(void) { return N_TYPES; }

const ggml_type_info *vkl_ggml_type_at(size_t i) { return i < N_TYPES ? &TYPES[i].info : NULL; }

void vkl_ggml_type_list_names(char *buf, size_t size)
{
    size_t len = 0;
    if (size == 0) {
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < N_TYPES && len < size; i++) {
        int n = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", TYPES[i].info.name);
        len += n > 0 ? (size_t)n : 0;
    }
}

const char *vkl_ggml_type_name(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t ? t->name : NULL;
}

const char *vkl_ggml_type_label(uint32_t type)
{
    /* GGUF's tensor type numbers (gaps are retired types). */
    static const char *const labels[] = {
        "f32",     "f16",    "q4_0",    "q4_1",  "q4_2", "q4_3", "q5_0",   "q5_1",  "q8_0",   "q8_1",
        "q2_K",    "q3_K",   "q4_K",    "q5_K",  "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl",  "iq3_s",  "iq2_s",   "iq4_xs", "i8",  "i16",  "i32",    "i64",   "f64",    "iq1_m",
        "bf16",    NULL,     NULL,      NULL,    "tq1_0", "tq2_0", NULL,    NULL,    NULL,     "mxfp4",
    };
    return type < sizeof labels / sizeof labels[0] ? labels[type] : NULL;
}

const char *vkl_ggml_file_type_name(uint32_t file_type)
{
    /* llama.cpp's LLAMA_FTYPE_* values (gaps are retired file types). */
    static const char *const names[] = {
        "F32",    "F16",     "Q4_0",    "Q4_1",   NULL,      NULL,     NULL,     "Q8_0",   "Q5_0",    "Q5_1",
        "Q2_K",   "Q3_K_S",  "Q3_K_M",  "Q3_K_L", "Q4_K_S",  "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",    "IQ2_XXS",
        "IQ2_XS", "Q2_K_S",  "IQ3_XS",  "IQ3_XXS", "IQ1_S",  "IQ4_NL", "IQ3_S",  "IQ3_M",  "IQ2_S",   "IQ2_M",
        "IQ4_XS", "IQ1_M",   "BF16",    NULL,     NULL,      NULL,     "TQ1_0",  "TQ2_0",  "MXFP4_MOE",
    };
    return file_type < sizeof names / sizeof names[0] ? names[file_type] : NULL;
}

static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb) {
            return false;
        }
    }
    return *a == *b;
}

bool vkl_ggml_type_from_name(const char *name, uint32_t *type)
{
    if (name == NULL) {
        return false;
    }
    for (size_t i = 0; i < N_TYPES; i++) {
        if (same_name(name, TYPES[i].info.name)) {
            if (type != NULL) {
                *type = TYPES[i].info.id;
            }
            return true;
        }
    }
    return false;
}

uint32_t vkl_ggml_block_size(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t ? t->block : 0;
}

uint32_t vkl_ggml_block_bytes(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t ? t->block_bytes : 0;
}

uint64_t vkl_ggml_row_bytes(uint32_t type, uint64_t n)
{
    uint64_t bs = vkl_ggml_block_size(type);
    uint64_t bb = vkl_ggml_block_bytes(type);
    if (bs == 0 || n % bs != 0) {
        return 0;
    }
    uint64_t blocks = n / bs;
    if (blocks > UINT64_MAX / bb) {
        return 0;
    }
    return blocks * bb;
}

/* ---- rows ---- */

void vkl_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    const uint8_t *s = src;
    const type_entry *t = entry(type);
    if (t == NULL) {
        /* Unsupported type: callers check vkl_ggml_type_name first; never leave dst uninitialised. */
        for (uint64_t i = 0; i < n; i++) {
            dst[i] = 0.0f;
        }
        return;
    }
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) {
            dst[i] = vkl_fp16_to_fp32(load_u16le(s + 2 * i));
        }
        return;
    case GGML_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) {
            dst[i] = vkl_bf16_to_fp32(load_u16le(s + 2 * i));
        }
        return;
    default:
        for (uint64_t b = 0; b < n / t->info.block; b++) {
            t->dequant(s + b * t->info.block_bytes, dst + b * t->info.block);
        }
        return;
    }
}

bool vkl_ggml_type_can_quantize(uint32_t type)
{
    const type_entry *t = entry(type);
    return t != NULL && (t->quant != NULL || t->info.block == 1);
}

void vkl_ggml_block_set_rms(uint32_t type, uint8_t *block, float rms)
{
    const type_entry *t = entry(type);
    if (t == NULL || t->quant != NULL || t->info.block == 1) {
        return;
    }
    float y[QK_K];
    uint8_t dbits[2];
    for (int pass = 0; pass < 2; pass++) {
        float d = 1.0f;
        if (pass == 1) {   /* d = 1 gave these values: scale them to the root mean square asked for */
            double sq = 0.0;
            t->dequant(block, y);
            for (uint32_t i = 0; i < t->info.block; i++) {
                sq += (double)y[i] * y[i];
            }
            d = sq > 0.0 ? (float)(rms / sqrt(sq / t->info.block)) : 0.0f;
        }
        store_f16(dbits, d);
        if (type == GGML_TYPE_IQ1_M) {   /* the f16's nibbles are the top nibbles of the four uint16 scales */
            uint16_t h = load_u16le(dbits);
            for (int k = 0; k < 4; k++) {
                block[48 + 2 * k + 1] = (uint8_t)((block[48 + 2 * k + 1] & 0x0fu) | ((h >> (4 * k)) & 15u) << 4);
            }
        } else {                         /* the others start with the f16 d */
            memcpy(block, dbits, 2);
        }
    }
}

void vkl_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    uint8_t *out = dst;
    const type_entry *t = entry(type);
    if (t == NULL) {
        return;                               /* unsupported: nothing is written */
    }
    if (!vkl_ggml_type_can_quantize(type)) {
        memset(dst, 0, (size_t)vkl_ggml_row_bytes(type, n));   /* zero scales: zeros, a valid row */
        return;
    }
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) {
            store_u16le(out + 2 * i, vkl_fp32_to_fp16(src[i]));
        }
        return;
    case GGML_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) {
            store_u16le(out + 2 * i, vkl_fp32_to_bf16(src[i]));
        }
        return;
    default:
        for (uint64_t b = 0; b < n / t->info.block; b++) {
            t->quant(src + b * t->info.block, out + b * t->info.block_bytes);
        }
        return;
    }
}

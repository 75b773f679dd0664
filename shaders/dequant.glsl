/* The weight types of the kernels: one GLSL block per type, read through 32-bit words only (no 8/16-bit
 * storage, no shaderFloat16). Exactly one WTYPE_<NAME> is defined by the variant (shaders/list_matmul.cmake).
 *
 * Unquantized types: F32 (floats), F16 and BF16 (W16: two 16-bit values per word, w16_pair / W16_AT).
 *
 * Quantized types (WQUANT) use the device layout of host/ops/tensor.c: each GGUF block is split into its quants
 * (one contiguous byte range of the block, a multiple of 16 bytes) in the quants region, bound as `wq`
 * (uvec4, binding 0), and its other bytes ("meta": scales, mins, high bits), zero-padded to DQ_META_BYTES, in
 * the meta region, bound as `wd` (uint, binding 1); block b of row r is block r * blocks_per_row + b in both.
 * This file declares those two bindings (and, for the IQ grid types, the grid's: DQ_GRID_BINDING, which the kernel
 * defines). Every kernel reads quantized weights through this interface only:
 *   DQ_QK             elements per block
 *   DQ_QV             uvec4s of quants per block
 *   DQ_UNITS          units per block; a unit is what one or a few uvec4 loads of quants give:
 *   DQ_RUNS           runs of 16 consecutive elements per unit (1, 2 or 4)
 *   DQ_META_BYTES     meta bytes per block (2: one f16, addressed as a half; else a multiple of 4)
 *   DqMeta dq_meta(d_off, blk)    the meta of block blk (d_off: bytes from the start of wd to block 0), loaded
 *                                 once per block where a kernel walks a whole block
 *   uint dq_run_pos(u, r)         element offset of run r of unit u inside the block (a multiple of 16)
 *   dq_unit(meta, qb, u, q, ab)   unit u of the block whose quants start at wq[qb]: q[4r + j] holds elements
 *                                 4j..4j+3 of run r as raw quant values (IQ4: the non-linear table values),
 *                                 and the run's value is ab[r].x * q + ab[r].y
 * so a dot product with x is sum_r ab[r].x * dot(q_r, x_r) + ab[r].y * sum(x_r): no multiply per element.
 * The 32-element types also define DQ_QUARTERS and give a block in quarters, so that a GPU kernel's consecutive
 * lanes read consecutive words of quants and consecutive vec4s of x (matvec.comp):
 *   dq_quarter(meta, qw, j, lo, hi, ab)  quarter j (0..3) of the block whose quants start at word qw of wqw
 *                                 (the uint view of the quants): lo = elements 4j..4j+3, hi = 16+4j..16+4j+3
 *                                 (for the nibble types the two nibbles of quant word j), value = ab.x * q + ab.y
 * Quant values become floats through small_uints_minus (bit operations, no int-to-float conversion).
 * Adding a type = one block below (and its table row in host/format/quant.c, its name in list_matmul.cmake). */
#ifndef VKLLM_DEQUANT_GLSL
#define VKLLM_DEQUANT_GLSL

/* Integers below 2^23 as floats without an int-to-float conversion (a quarter-rate instruction on NVIDIA GPUs,
 * which caps a 4-bit matvec below the memory bandwidth): OR them into the mantissa of 2^23 and subtract 2^23. Exact;
 * `bias` (an integer) is subtracted in the same operation. */
vec4 small_uints_minus(uvec4 v, float bias)
{
    return uintBitsToFloat(v | 0x4B000000u) - (8388608.0 + bias);
}

/* The four unsigned bytes of a word, as floats (byte 0 first). */
vec4 ubytes(uint w)
{
    return small_uints_minus(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xFFu, 0.0);
}

/* The four signed bytes of a word, as floats (byte 0 first): flipping the sign bits maps b to b + 128. */
vec4 q8_word(uint w)
{
    w ^= 0x80808080u;
    return small_uints_minus(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xFFu, 128.0);
}

/* Half number h of an array of words holding packed f16 values (little-endian: even halves low). */
#define HALF_AT(arr, h) (unpackHalf2x16((arr)[(h) >> 1])[(h) & 1u])

/* Byte i of the bytes held little-endian in the words of v (uvec3/uvec4). */
#define DQ_BYTE(v, i) bitfieldExtract((v)[(i) >> 2], int(8u * ((i) & 3u)), 8)

/* The four bits b0..b3 of x moved to bit 0 of bytes 0..3 (multiplication without carries). */
uint spread4(uint x)
{
    return (x * 0x00204081u) & 0x01010101u;
}

/* Nibble layout shared by the 32-element sub-blocks of Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q4_K: byte j
 * of 16 holds element j in its low nibble and element 16 + j in its high one. Run 0 = low nibbles, run 1 = high ones, each with
 * extra high bits hi0/hi1 ORed in per byte (spread to bit 4 by the caller, 0 for 4-bit types). */
void dq_nibble_runs(uvec4 v, uvec4 hi0, uvec4 hi1, out vec4 q[8])
{
    for (uint i = 0u; i < 4u; i++) {
        q[i] = ubytes((v[i] & 0x0F0F0F0Fu) | hi0[i]);
        q[4u + i] = ubytes(((v[i] >> 4) & 0x0F0F0F0Fu) | hi1[i]);
    }
}

/* The non-linear 4-bit values of IQ4_NL and IQ4_XS (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38,
 * 53, 69, 89, 113) for nibble indices n (0..15): the degree-4 least-squares polynomial through
 * them, rounded, gives each exactly (its error is at most 0.476; f32 evaluation adds < 1e-4). Five vector
 * operations instead of a lookup, which costs a load per lane on CPU drivers (or selects: twice as slow there). */
vec4 iq4_poly(uvec4 n)
{
    const vec4 f = small_uints_minus(n, 0.0);
    return round(fma(fma(fma(fma(vec4(0.0013247202), f, vec4(0.041216824)), f, vec4(-1.5001836)), f,
                         vec4(24.743246)), f, vec4(-127.0436)));
}
#ifdef DQ_IQ4_LOOKUP
/* The kernel's own IQ4 value lookup (mm_cpu.comp: through subgroup shuffles), used instead of iq4_poly. */
vec4 DQ_IQ4_LOOKUP(uvec4 n);
#else
#define DQ_IQ4_LOOKUP iq4_poly
#endif
/* Runs 0 and 1 (low and high nibbles of v's 16 bytes) as IQ4 values. */
void dq_iq4_runs(uvec4 v, out vec4 q[8])
{
    for (uint i = 0u; i < 4u; i++) {
        const uvec4 b = uvec4(v[i], v[i] >> 8, v[i] >> 16, v[i] >> 24);
        q[i] = DQ_IQ4_LOOKUP(b & 0xFu);
        q[4u + i] = DQ_IQ4_LOOKUP((b >> 4) & 0xFu);
    }
}

/* 6-bit scale and min number i (0..7) of the 12 packed bytes of a Q4_K/Q5_K block (ggml's get_scale_min_k4):
 * sub-blocks 0..3 take the low 6 bits of bytes i and i + 4; 4..7 take nibbles of byte i + 4 and the top two
 * bits of bytes i - 4 and i. */
vec2 k4_scale_min(uvec3 s, uint i)
{
    if (i < 4u)
        return vec2(DQ_BYTE(s, i) & 63u, DQ_BYTE(s, i + 4u) & 63u);
    const uint b = DQ_BYTE(s, i + 4u);
    return vec2((b & 0xFu) | ((DQ_BYTE(s, i - 4u) >> 6) << 4), (b >> 4) | ((DQ_BYTE(s, i) >> 6) << 4));
}

#if defined(WTYPE_F16) || defined(WTYPE_BF16)
#define W16 1
/* The two 16-bit weights of a word (element 2i low). */
vec2 w16_pair(uint w)
{
#ifdef WTYPE_F16
    return unpackHalf2x16(w);
#else
    return vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xFFFF0000u));
#endif
}
#define W16_AT(arr, h) (w16_pair((arr)[(h) >> 1])[(h) & 1u])
#endif

#if !defined(WTYPE_F32) && !defined(W16)
#define WQUANT 1
layout(set = 0, binding = 0) readonly buffer DqQuants { uvec4 wq[]; };
layout(set = 0, binding = 0) readonly buffer DqQuantWords { uint wqw[]; };
layout(set = 0, binding = 1) readonly buffer DqMetas { uint wd[]; };
#endif

/* ---- Q8_0: 32 int8, meta f16 d; value = d * q. Unit = 16 quants. ---- */
#if defined(WTYPE_Q8_0)
#define DQ_QK 32u
#define DQ_QV 2u
#define DQ_UNITS 2u
#define DQ_RUNS 1u
#define DQ_META_BYTES 2u
struct DqMeta { float d; };
DqMeta dq_meta(uint d_off, uint blk) { return DqMeta(HALF_AT(wd, (d_off >> 1) + blk)); }
uint dq_run_pos(uint u, uint r) { return 16u * u; }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[4], out vec2 ab[1])
{
    const uvec4 v = wq[qb + u];
    for (uint i = 0u; i < 4u; i++)
        q[i] = q8_word(v[i]);
    ab[0] = vec2(m.d, 0.0);
}
#define DQ_QUARTERS 1
void dq_quarter(DqMeta m, uint qw, uint j, out vec4 lo, out vec4 hi, out vec2 ab)
{
    lo = q8_word(wqw[qw + j]);
    hi = q8_word(wqw[qw + 4u + j]);
    ab = vec2(m.d, 0.0);
}

/* ---- Q4_0: 16 bytes of nibbles, meta f16 d; value = d * (q - 8). Q4_1: meta (d, m); value = d * q + m.
 *      IQ4_NL: as Q4_0 with value = d * table[q]. ---- */
#elif defined(WTYPE_Q4_0) || defined(WTYPE_Q4_1) || defined(WTYPE_IQ4_NL)
#define DQ_QK 32u
#define DQ_QV 1u
#define DQ_UNITS 1u
#define DQ_RUNS 2u
#ifdef WTYPE_Q4_1
#define DQ_META_BYTES 4u
struct DqMeta { vec2 ab; };
DqMeta dq_meta(uint d_off, uint blk) { return DqMeta(unpackHalf2x16(wd[(d_off >> 2) + blk])); }
#else
#define DQ_META_BYTES 2u
struct DqMeta { vec2 ab; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const float d = HALF_AT(wd, (d_off >> 1) + blk);
#ifdef WTYPE_Q4_0
    return DqMeta(vec2(d, -8.0 * d));
#else
    return DqMeta(vec2(d, 0.0));
#endif
}
#endif
uint dq_run_pos(uint u, uint r) { return 16u * r; }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[8], out vec2 ab[2])
{
#ifdef WTYPE_IQ4_NL
    dq_iq4_runs(wq[qb], q);
#else
    dq_nibble_runs(wq[qb], uvec4(0u), uvec4(0u), q);
#endif
    ab[0] = m.ab;
    ab[1] = m.ab;
}
#define DQ_QUARTERS 1
void dq_quarter(DqMeta m, uint qw, uint j, out vec4 lo, out vec4 hi, out vec2 ab)
{
    const uint w = wqw[qw + j];
#ifdef WTYPE_IQ4_NL
    const uvec4 b = uvec4(w, w >> 8, w >> 16, w >> 24);
    lo = iq4_poly(b & 0xFu);
    hi = iq4_poly((b >> 4) & 0xFu);
#else
    lo = ubytes(w & 0x0F0F0F0Fu);
    hi = ubytes((w >> 4) & 0x0F0F0F0Fu);
#endif
    ab = m.ab;
}

/* ---- Q5_0 / Q5_1: nibbles as Q4_0 plus a fifth bit per element from qh (bit j: element j). Q5_0: meta
 *      (d, qh, pad), value = d * (q - 16); Q5_1: meta (d, m, qh), value = d * q + m. ---- */
#elif defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
#define DQ_QK 32u
#define DQ_QV 1u
#define DQ_UNITS 1u
#define DQ_RUNS 2u
#define DQ_META_BYTES 8u
struct DqMeta { vec2 ab; uint qh; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 2u * blk;
    const uint w0 = wd[w], w1 = wd[w + 1u];
#ifdef WTYPE_Q5_0
    const float d = unpackHalf2x16(w0).x;
    return DqMeta(vec2(d, -16.0 * d), (w0 >> 16) | (w1 << 16));
#else
    return DqMeta(unpackHalf2x16(w0), w1);
#endif
}
uint dq_run_pos(uint u, uint r) { return 16u * r; }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[8], out vec2 ab[2])
{
    uvec4 h0, h1;
    for (uint i = 0u; i < 4u; i++) {
        h0[i] = spread4((m.qh >> (4u * i)) & 0xFu) << 4;
        h1[i] = spread4((m.qh >> (16u + 4u * i)) & 0xFu) << 4;
    }
    dq_nibble_runs(wq[qb], h0, h1, q);
    ab[0] = m.ab;
    ab[1] = m.ab;
}
#define DQ_QUARTERS 1
void dq_quarter(DqMeta m, uint qw, uint j, out vec4 lo, out vec4 hi, out vec2 ab)
{
    const uint w = wqw[qw + j];
    lo = ubytes((w & 0x0F0F0F0Fu) | (spread4((m.qh >> (4u * j)) & 0xFu) << 4));
    hi = ubytes(((w >> 4) & 0x0F0F0F0Fu) | (spread4((m.qh >> (16u + 4u * j)) & 0xFu) << 4));
    ab = m.ab;
}

/* ---- Q2_K: 256 elements; quants qs[64] (2 bits), meta (scales[16]: scale low nibble, min high nibble;
 *      f16 d, dmin). Element 128n + 32j + l (l < 32) is bits 2j of qs[32n + l], sub-block 8n + 2j + l / 16:
 *      value = d * scale * q - dmin * min. Unit u = qs uvec4 u (n = u / 2, h = u % 2): run j = shift 2j. ---- */
#elif defined(WTYPE_Q2_K)
#define DQ_QK 256u
#define DQ_QV 4u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
#define DQ_META_BYTES 20u
struct DqMeta { uvec4 sc; vec2 dm; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 5u * blk;
    return DqMeta(uvec4(wd[w], wd[w + 1u], wd[w + 2u], wd[w + 3u]), unpackHalf2x16(wd[w + 4u]));
}
uint dq_run_pos(uint u, uint r) { return 128u * (u >> 1) + 32u * r + 16u * (u & 1u); }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u];
    for (uint j = 0u; j < 4u; j++) {
        for (uint i = 0u; i < 4u; i++)
            q[4u * j + i] = ubytes((v[i] >> (2u * j)) & 0x03030303u);
        const uint s = DQ_BYTE(m.sc, 8u * (u >> 1) + 2u * j + (u & 1u));
        ab[j] = vec2(m.dm.x * float(s & 0xFu), -m.dm.y * float(s >> 4));
    }
}

/* ---- Q3_K: 256 elements; quants (hmask[32], qs[64]), meta (scales[12]: sixteen 6-bit signed scales + 32,
 *      f16 d, pad). Element 128n + 32j + l: low bits 2j of qs[32n + l], high bit 4n + j of hmask[l] (clear:
 *      subtract 4), sub-block s = 8n + 2j + l / 16; value = d * (scale_s - 32) * (q - 4) with q = low | high << 2.
 *      Scale s: low nibble of byte s % 8 (high nibble for s >= 8), bits 2 * (s / 4) of byte 8 + s % 4 on top.
 *      Unit u = qs uvec4 u with hmask uvec4 u % 2; run j = shift 2j. ---- */
#elif defined(WTYPE_Q3_K)
#define DQ_QK 256u
#define DQ_QV 6u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
#define DQ_META_BYTES 16u
struct DqMeta { uvec3 sc; float d; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 4u * blk;
    return DqMeta(uvec3(wd[w], wd[w + 1u], wd[w + 2u]), unpackHalf2x16(wd[w + 3u]).x);
}
uint dq_run_pos(uint u, uint r) { return 128u * (u >> 1) + 32u * r + 16u * (u & 1u); }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uint n = u >> 1, h = u & 1u;
    const uvec4 v = wq[qb + 2u + u], hm = wq[qb + h];
    for (uint j = 0u; j < 4u; j++) {
        for (uint i = 0u; i < 4u; i++)
            q[4u * j + i] = ubytes(((v[i] >> (2u * j)) & 0x03030303u) | (((hm[i] >> (4u * n + j)) & 0x01010101u) << 2));
        const uint s = 8u * n + 2u * j + h;
        const uint lo = (DQ_BYTE(m.sc, s & 7u) >> (4u * (s >> 3))) & 0xFu;
        const uint hi = (DQ_BYTE(m.sc, 8u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
        const float a = m.d * (float(lo | (hi << 4)) - 32.0);
        ab[j] = vec2(a, -4.0 * a);
    }
}

/* ---- Q4_K / Q5_K: 256 elements in 8 sub-blocks of 32, meta (f16 d, dmin, scales[12]: 6-bit scale and min
 *      per sub-block, k4_scale_min); value = d * scale * q - dmin * min. Element 64j + l (l < 32): low nibble
 *      of qs[32j + l]; 64j + 32 + l: its high nibble. Q4_K quants = qs[128]; unit u = the two qs uvec4s of
 *      j = u (two whole sub-blocks, so each scale and min is decoded once per 32 elements), runs = the low
 *      nibbles of each, then the high ones. Q5_K quants = (qh[32], qs[128]), a fifth bit 2j (low) / 2j + 1 (high)
 *      of qh[l]; unit u = the two qs uvec4s of j = 2(u / 2) + t (t < 2) at half u % 2 with their qh uvec4. ---- */
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
#define DQ_QK 256u
#define DQ_META_BYTES 16u
struct DqMeta { vec2 dm; uvec3 sc; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 4u * blk;
    return DqMeta(unpackHalf2x16(wd[w]), uvec3(wd[w + 1u], wd[w + 2u], wd[w + 3u]));
}
vec2 k4_ab(DqMeta m, uint sub)
{
    const vec2 sm = k4_scale_min(m.sc, sub);
    return vec2(m.dm.x * sm.x, -m.dm.y * sm.y);
}
#ifdef WTYPE_Q4_K
#define DQ_QV 8u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
uint dq_run_pos(uint u, uint r) { return 64u * u + 16u * r; }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    vec4 lo_hi[8];
    for (uint t = 0u; t < 2u; t++) {
        dq_nibble_runs(wq[qb + 2u * u + t], uvec4(0u), uvec4(0u), lo_hi);
        for (uint i = 0u; i < 4u; i++) {
            q[4u * t + i] = lo_hi[i];
            q[8u + 4u * t + i] = lo_hi[4u + i];
        }
    }
    ab[0] = k4_ab(m, 2u * u);
    ab[1] = ab[0];
    ab[2] = k4_ab(m, 2u * u + 1u);
    ab[3] = ab[2];
}
#else
#define DQ_QV 10u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
uint dq_run_pos(uint u, uint r) { return 64u * (2u * (u >> 1) + (r >> 1)) + 32u * (r & 1u) + 16u * (u & 1u); }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uint h = u & 1u;
    const uvec4 hv = wq[qb + h];
    for (uint t = 0u; t < 2u; t++) {
        const uint j = 2u * (u >> 1) + t;
        vec4 qt[8];
        dq_nibble_runs(wq[qb + 2u + 2u * j + h], ((hv >> (2u * j)) & 0x01010101u) << 4,
                       ((hv >> (2u * j + 1u)) & 0x01010101u) << 4, qt);
        for (uint i = 0u; i < 8u; i++)
            q[8u * t + i] = qt[i];
        ab[2u * t] = k4_ab(m, 2u * j);
        ab[2u * t + 1u] = k4_ab(m, 2u * j + 1u);
    }
}
#endif

/* ---- Q6_K: 256 elements; quants (ql[128], qh[64]), meta (int8 scales[16], f16 d, pad); value = d * scale *
 *      (q - 32). In half n (128 elements, ql + 64n, qh + 32n, scales + 8n), for l < 32: element l = low nibble
 *      of ql[l] | bits 0-1 of qh[l] << 4; l + 32: ql[l + 32] low, qh bits 2-3; l + 64: ql[l] high, bits 4-5;
 *      l + 96: ql[l + 32] high, bits 6-7; scale 8n + l / 16 + 2 * (which of the four). Unit u (n = u / 2,
 *      h = u % 2, l = 16h..16h+15) = ql uvec4s 4n + h and 4n + 2 + h with qh uvec4 2n + h: four runs. ---- */
#elif defined(WTYPE_Q6_K)
#define DQ_QK 256u
#define DQ_QV 12u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
#define DQ_META_BYTES 20u
struct DqMeta { uvec4 sc; float d; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 5u * blk;
    return DqMeta(uvec4(wd[w], wd[w + 1u], wd[w + 2u], wd[w + 3u]), unpackHalf2x16(wd[w + 4u]).x);
}
uint dq_run_pos(uint u, uint r) { return 128u * (u >> 1) + 32u * r + 16u * (u & 1u); }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uint n = u >> 1, h = u & 1u;
    const uvec4 a = wq[qb + 4u * n + h], b = wq[qb + 4u * n + 2u + h], c = wq[qb + 8u + 2u * n + h];
    for (uint i = 0u; i < 4u; i++) {
        q[i] = ubytes((a[i] & 0x0F0F0F0Fu) | ((c[i] & 0x03030303u) << 4));
        q[4u + i] = ubytes((b[i] & 0x0F0F0F0Fu) | (((c[i] >> 2) & 0x03030303u) << 4));
        q[8u + i] = ubytes(((a[i] >> 4) & 0x0F0F0F0Fu) | (((c[i] >> 4) & 0x03030303u) << 4));
        q[12u + i] = ubytes(((b[i] >> 4) & 0x0F0F0F0Fu) | (((c[i] >> 6) & 0x03030303u) << 4));
    }
    for (uint r = 0u; r < 4u; r++) {
        const float s = m.d * float(bitfieldExtract(int(m.sc[2u * n + (r >> 1)]), int(8u * (2u * (r & 1u) + h)), 8));
        ab[r] = vec2(s, -32.0 * s);
    }
}

/* ---- IQ4_XS: 256 elements in 8 sub-blocks of 32 laid out as IQ4_NL; quants qs[128], meta (f16 d,
 *      scales_h u16, scales_l[4]): sub-block s has the 6-bit scale (nibble s of scales_l) | (bits 2s of
 *      scales_h) << 4, minus 32; value = d * scale * table[q]. Unit u = sub-block u. ---- */
#elif defined(WTYPE_IQ4_XS)
#define DQ_QK 256u
#define DQ_QV 8u
#define DQ_UNITS 8u
#define DQ_RUNS 2u
#define DQ_META_BYTES 8u
struct DqMeta { float d; uint sh; uint sl; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 2u * blk;
    const uint w0 = wd[w];
    return DqMeta(unpackHalf2x16(w0).x, w0 >> 16, wd[w + 1u]);
}
uint dq_run_pos(uint u, uint r) { return 32u * u + 16u * r; }
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[8], out vec2 ab[2])
{
    dq_iq4_runs(wq[qb + u], q);
    const uint ls = ((m.sl >> (4u * u)) & 0xFu) | (((m.sh >> (2u * u)) & 3u) << 4);
    ab[0] = vec2(m.d * (float(ls) - 32.0), 0.0);
    ab[1] = ab[0];
}

/* ---- MXFP4: 32 elements; quants qs[16] in Q4_0's nibble order holding E2M1 codes (bit 3 sign, bits 0-2 the
 *      magnitude code m: 0, 0.5, 1, 1.5, 2, 3, 4, 6), meta (E8M0 exponent e, pad); value = e2m1 * 2^(e - 127).
 *      For m >= 2 the float's bits are (m << 22) + bits of 0.5 (exponent and mantissa bit line up); m = 1 is
 *      0.5 and m = 0 zero, which m * bits of 0.5 gives: no conversion per element. ---- */
#elif defined(WTYPE_MXFP4)
#define DQ_QK 32u
#define DQ_QV 1u
#define DQ_UNITS 1u
#define DQ_RUNS 2u
#define DQ_META_BYTES 4u
struct DqMeta { float d; };
DqMeta dq_meta(uint d_off, uint blk)
{
    /* 2^(e - 127) as float bits; e = 0 (2^-127) is subnormal: 0x00400000 */
    const uint e = wd[(d_off >> 2) + blk] & 0xFFu;
    return DqMeta(uintBitsToFloat(e == 0u ? 0x00400000u : e << 23));
}
uint dq_run_pos(uint u, uint r) { return 16u * r; }
vec4 mxfp4_values(uvec4 n)
{
    const uvec4 m = n & 7u;
    const uvec4 mag = mix(m * 0x3F000000u, (m << 22) + 0x3F000000u, greaterThanEqual(m, uvec4(2u)));
    return uintBitsToFloat(mag | ((n & 8u) << 28));
}
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[8], out vec2 ab[2])
{
    const uvec4 v = wq[qb];
    for (uint i = 0u; i < 4u; i++) {
        const uvec4 b = uvec4(v[i], v[i] >> 8, v[i] >> 16, v[i] >> 24);
        q[i] = mxfp4_values(b & 0xFu);
        q[4u + i] = mxfp4_values((b >> 4) & 0xFu);
    }
    ab[0] = vec2(m.d, 0.0);
    ab[1] = ab[0];
}
#define DQ_QUARTERS 1
void dq_quarter(DqMeta m, uint qw, uint j, out vec4 lo, out vec4 hi, out vec2 ab)
{
    const uint w = wqw[qw + j];
    const uvec4 b = uvec4(w, w >> 8, w >> 16, w >> 24);
    lo = mxfp4_values(b & 0xFu);
    hi = mxfp4_values((b >> 4) & 0xFu);
    ab = vec2(m.d, 0.0);
}

/* ---- The IQ grid types (256 elements): groups of 8 (IQ2, IQ1) or 4 (IQ3) elements are a grid entry with sign
 *      bits (set: negative), times a sub-block scale; the layouts are spelled out at their dequantizers in
 *      host/format/quant.c. Runs are 16 consecutive elements. The grids (shaders/iq_grids.glsl, measured from
 *      llama.cpp) are read from a storage buffer (a uniform one where the kernel defines DQ_GRID_UNIFORM) at
 *      binding DQ_GRID_BINDING, which the kernel defines as the
 *      binding after its others before including this file; the host binds the device's copy of the type's
 *      grid there (vkl_ggml_type_grid, vkr_constant_buffer). One load per grid entry: an IQ2 entry (8 bytes)
 *      as a uvec2, an IQ3 entry (4 bytes) as a uint, two IQ1 entries (16 bits each) in a uint. (Constant
 *      arrays of hundreds of dynamically indexed words made lavapipe's pipelines take minutes to build.) ---- */
#elif defined(WTYPE_IQ2_XXS) || defined(WTYPE_IQ2_XS) || defined(WTYPE_IQ2_S) || defined(WTYPE_IQ3_XXS) || \
      defined(WTYPE_IQ3_S) || defined(WTYPE_IQ1_S) || defined(WTYPE_IQ1_M)
#ifndef DQ_GRID_BINDING
#error "a kernel of an IQ grid type defines DQ_GRID_BINDING (its binding after the others) before dequant.glsl"
#endif
#ifdef DQ_GRID_UNIFORM
/* The kernel binds the grid as a uniform buffer (mm_cpu.comp: llvmpipe gathers from one lane by lane without a
 * branch, bounds check and exec-mask test per lane as for a storage buffer; the host sets the binding's
 * descriptor type to match). std140: an array of uvec4 (a uint array would have a 16-byte stride). */
#if defined(WTYPE_IQ2_XXS) || defined(WTYPE_IQ3_S)
#define DQ_GRID_BYTES 2048u
#elif defined(WTYPE_IQ2_XS) || defined(WTYPE_IQ1_S) || defined(WTYPE_IQ1_M)
#define DQ_GRID_BYTES 4096u
#elif defined(WTYPE_IQ2_S)
#define DQ_GRID_BYTES 8192u
#else
#define DQ_GRID_BYTES 1024u
#endif
layout(set = 0, binding = DQ_GRID_BINDING, std140) uniform DqGrid { uvec4 dq_grid4[DQ_GRID_BYTES / 16u]; };
uint dq_grid_word(uint w) { return dq_grid4[w >> 2][w & 3u]; }
#define IQ2_ENTRY(i) uvec2(dq_grid_word(2u * (i)), dq_grid_word(2u * (i) + 1u))
#elif defined(WTYPE_IQ2_XXS) || defined(WTYPE_IQ2_XS) || defined(WTYPE_IQ2_S)
layout(set = 0, binding = DQ_GRID_BINDING) readonly buffer DqGrid { uvec2 dq_grid[]; };
#define IQ2_ENTRY(i) dq_grid[i]
#else
layout(set = 0, binding = DQ_GRID_BINDING) readonly buffer DqGrid { uint dq_grid[]; };
#define dq_grid_word(w) dq_grid[w]
#endif
#define DQ_QK 256u
#define DQ_UNITS 4u
#define DQ_RUNS 4u
uint dq_run_pos(uint u, uint r) { return 64u * u + 16u * r; }
/* Seven sign bits with their parity as the eighth (IQ2_XXS, IQ2_XS, IQ3_XXS). */
uint iq_signs7(uint s)
{
    s &= 127u;
    return s | ((uint(bitCount(s)) & 1u) << 7);
}
/* The four bytes of grid word w as floats, negated where bits 0..3 of s are set (the sign bits flipped). */
vec4 iq_signed(uint w, uint s)
{
    return uintBitsToFloat(floatBitsToUint(ubytes(w)) ^ ((uvec4(s, s >> 1, s >> 2, s >> 3) & 1u) << 31));
}
/* Byte i of the block's meta (word w0 onwards). */
uint iq_meta_byte(uint w0, uint i) { return bitfieldExtract(wd[w0 + (i >> 2)], int(8u * (i & 3u)), 8); }

#if defined(WTYPE_IQ1_S) || defined(WTYPE_IQ1_M)
#define DQ_QV 3u
/* The eight elements of IQ1_S grid entry i (2 bits each, value + 1) as two vec4s. */
void iq1_entry(uint i, out vec4 lo, out vec4 hi)
{
    const uint x = dq_grid_word(i >> 1) >> (16u * (i & 1u));
    lo = small_uints_minus(uvec4(x, x >> 2, x >> 4, x >> 6) & 3u, 1.0);
    hi = small_uints_minus(uvec4(x >> 8, x >> 10, x >> 12, x >> 14) & 3u, 1.0);
}
#endif

#if defined(WTYPE_IQ2_XXS) || defined(WTYPE_IQ2_S) || defined(WTYPE_IQ3_XXS) || defined(WTYPE_IQ1_S)
/* meta: the f16 d alone */
#define DQ_META_BYTES 2u
struct DqMeta { float d; };
DqMeta dq_meta(uint d_off, uint blk) { return DqMeta(HALF_AT(wd, (d_off >> 1) + blk)); }
#endif

#if defined(WTYPE_IQ2_XXS)
/* Quants qs[64]: sub-block s = 4 index bytes + a uint32 (7 sign bits per group of 8, scale in bits 28-31).
 * Unit u = quants uvec4 u = sub-blocks 2u, 2u + 1; run r = groups 2(r % 2), +1 of sub-block 2u + r / 2. */
#define DQ_QV 4u
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u];
    for (uint r = 0u; r < 4u; r++) {
        const uint idx = v[2u * (r >> 1)], w = v[2u * (r >> 1) + 1u];
        for (uint t = 0u; t < 2u; t++) {
            const uint l = 2u * (r & 1u) + t, s = iq_signs7(w >> (7u * l));
            const uvec2 e = IQ2_ENTRY(bitfieldExtract(idx, int(8u * l), 8));
            q[4u * r + 2u * t] = iq_signed(e.x, s);
            q[4u * r + 2u * t + 1u] = iq_signed(e.y, s >> 4);
        }
        ab[r] = vec2(m.d * (0.5 + float(w >> 28)) * 0.25, 0.0);
    }
}

#elif defined(WTYPE_IQ2_XS)
/* Quants qs[64]: group g of 8 = uint16 (9-bit index, 7 sign bits); meta (f16 d, scales[8], pad): sub-block s's
 * byte holds the scale of its first 16 elements (low nibble) and of the others. Unit u = quants uvec4 u. */
#define DQ_QV 4u
#define DQ_META_BYTES 12u
struct DqMeta { float d; uint w; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 3u * blk;
    return DqMeta(unpackHalf2x16(wd[w]).x, w);
}
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u];
    const uint sc2 = (wd[m.w + ((2u + 2u * u) >> 2)] >> (8u * ((2u + 2u * u) & 3u))) & 0xFFFFu;   /* 2 scale bytes */
    for (uint r = 0u; r < 4u; r++) {
        for (uint t = 0u; t < 2u; t++) {
            const uint x = v[r] >> (16u * t), s = iq_signs7(x >> 9);
            const uvec2 e = IQ2_ENTRY(x & 511u);
            q[4u * r + 2u * t] = iq_signed(e.x, s);
            q[4u * r + 2u * t + 1u] = iq_signed(e.y, s >> 4);
        }
        ab[r] = vec2(m.d * (0.5 + float((sc2 >> (4u * r)) & 0xFu)) * 0.25, 0.0);
    }
}

#elif defined(WTYPE_IQ2_S)
/* Quants (qs[32], signs[32], qh[8], scales[8]): group g = index byte g | 2 bits of qh[g / 4] << 8, sign byte g;
 * scales as IQ2_XS. Unit u = groups 8u..8u+7: half u % 2 of qs and signs uvec4 u / 2, qh and scale bytes 2u, +1. */
#define DQ_QV 5u
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 qs = wq[qb + (u >> 1)], sg = wq[qb + 2u + (u >> 1)], hs = wq[qb + 4u];
    const uint qh2 = (hs[u >> 1] >> (16u * (u & 1u))) & 0xFFFFu;           /* qh bytes 2u, 2u + 1 */
    const uint sc2 = (hs[2u + (u >> 1)] >> (16u * (u & 1u))) & 0xFFFFu;    /* scale bytes 2u, 2u + 1 */
    for (uint r = 0u; r < 4u; r++) {
        const uint idx = qs[2u * (u & 1u) + (r >> 1)], sw = sg[2u * (u & 1u) + (r >> 1)];
        for (uint t = 0u; t < 2u; t++) {
            const uint k = 2u * r + t, l = k & 3u;   /* group 8u + k: byte l of its index and sign words */
            const uint g = bitfieldExtract(idx, int(8u * l), 8) | (((qh2 >> (2u * k)) & 3u) << 8);
            const uint s = sw >> (8u * l);
            const uvec2 e = IQ2_ENTRY(g);
            q[4u * r + 2u * t] = iq_signed(e.x, s);
            q[4u * r + 2u * t + 1u] = iq_signed(e.y, s >> 4);
        }
        ab[r] = vec2(m.d * (0.5 + float((sc2 >> (4u * r)) & 0xFu)) * 0.25, 0.0);
    }
}

#elif defined(WTYPE_IQ3_XXS)
/* Quants (qs[64]: an index byte per group of 4; 8 uint32: 7 sign bits per 8 elements, scale in bits 28-31).
 * Unit u = index uvec4 u (sub-blocks 2u, 2u + 1) with their two sign words in uvec4 4 + u / 2. */
#define DQ_QV 6u
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u], sw = wq[qb + 4u + (u >> 1)];
    for (uint r = 0u; r < 4u; r++) {
        const uint w = sw[2u * (u & 1u) + (r >> 1)], idx = v[r];
        for (uint j = 0u; j < 4u; j++) {
            const uint s = iq_signs7(w >> (7u * (2u * (r & 1u) + (j >> 1))));
            q[4u * r + j] = iq_signed(dq_grid_word(bitfieldExtract(idx, int(8u * j), 8)), s >> (4u * (j & 1u)));
        }
        ab[r] = vec2(m.d * (0.5 + float(w >> 28)) * 0.5, 0.0);
    }
}

#elif defined(WTYPE_IQ3_S)
/* Quants qs[64] (low 8 bits of an index per group of 4); meta (f16 d, qh[8], signs[32], scales[4], pad):
 * bit 8 of group g's index = bit g % 8 of qh[g / 8], element e's sign = bit e % 8 of signs[e / 8], sub-block s's
 * scale = nibble s % 2 of scales[s / 2]. Unit u = quants uvec4 u (sub-blocks 2u, 2u + 1): its 16 qh bits are meta
 * bytes 2 + 2u, 3 + 2u, its 64 sign bits bytes 10 + 8u .. 17 + 8u (16 per run, from the high half of meta word
 * 2 + 2u on), its scales byte 42 + u. */
#define DQ_QV 4u
#define DQ_META_BYTES 48u
struct DqMeta { float d; uint w; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 12u * blk;
    return DqMeta(unpackHalf2x16(wd[w]).x, w);
}
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u];
    const uint qh = wd[m.w + ((u + 1u) >> 1)] >> (16u * ((u + 1u) & 1u));   /* groups 16u.. (low 16 bits) */
    const uint sb = m.w + 2u + 2u * u;
    const uvec3 sw = uvec3(wd[sb], wd[sb + 1u], wd[sb + 2u]);
    const uint scb = iq_meta_byte(m.w, 42u + u);   /* scales of sub-blocks 2u (low nibble) and 2u + 1 */
    for (uint r = 0u; r < 4u; r++) {
        const uint s2 = sw[(r + 1u) >> 1] >> (16u * ((r + 1u) & 1u));   /* signs of run r (low 16 bits) */
        for (uint j = 0u; j < 4u; j++) {
            const uint k = 4u * r + j, g = bitfieldExtract(v[r], int(8u * j), 8) | (((qh >> k) & 1u) << 8);
            q[4u * r + j] = iq_signed(dq_grid_word(g), s2 >> (4u * j));
        }
        ab[r] = vec2(m.d * float(1u + 2u * ((scb >> (4u * (r >> 1))) & 0xFu)), 0.0);
    }
}

#elif defined(WTYPE_IQ1_S)
/* Quants (qs[32]: low 8 bits of an index per group of 8; uint16 qh[8]: per sub-block 3 index bits per group,
 * scale in bits 12-14, the sign of delta = +-1/8 in bit 15). Unit u = groups 8u..8u+7 (sub-blocks 2u, 2u + 1):
 * half u % 2 of qs uvec4 u / 2 and word u of the qh uvec4. value = dl * grid + dl * delta. */
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 qs = wq[qb + (u >> 1)];
    const uint qhw = wq[qb + 2u][u];
    for (uint r = 0u; r < 4u; r++) {
        const uint qh = qhw >> (16u * (r >> 1)), idx = qs[2u * (u & 1u) + (r >> 1)];
        for (uint t = 0u; t < 2u; t++) {
            const uint l = 2u * (r & 1u) + t, g = bitfieldExtract(idx, int(8u * l), 8) | (((qh >> (3u * l)) & 7u) << 8);
            iq1_entry(g, q[4u * r + 2u * t], q[4u * r + 2u * t + 1u]);
        }
        const float dl = m.d * float(2u * ((qh >> 12) & 7u) + 1u);
        ab[r] = vec2(dl, (qh & 0x8000u) != 0u ? -0.125 * dl : 0.125 * dl);
    }
}

#elif defined(WTYPE_IQ1_M)
/* Quants (qs[32], qh[16]: group g's nibble g % 2 of qh[g / 2] = index bits 8-10 and the sign of its delta = +-1/8
 * in bit 3); meta = four uint16 scales: their top nibbles form the f16 d, 3-bit scale of half h of sub-block s
 * at bit 6 * (s % 2) + 3h of scales[s / 2]. Unit u = groups 8u..8u+7: half u % 2 of qs uvec4 u / 2, word u of
 * the qh uvec4. A run's two groups can differ in delta: it goes into q (value = dl * (grid + delta)). */
#define DQ_META_BYTES 8u
struct DqMeta { float d; uvec2 sc; };
DqMeta dq_meta(uint d_off, uint blk)
{
    const uint w = (d_off >> 2) + 2u * blk;
    const uvec2 sc = uvec2(wd[w], wd[w + 1u]);
    const uint h = (sc.x >> 12 & 0xFu) | (sc.x >> 24 & 0xF0u) | (sc.y >> 4 & 0xF00u) | (sc.y >> 16 & 0xF000u);
    return DqMeta(unpackHalf2x16(h).x, sc);
}
void dq_unit(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 qs = wq[qb + (u >> 1)];
    const uint qh = wq[qb + 2u][u], sc = m.sc[u >> 1] >> (16u * (u & 1u));
    for (uint r = 0u; r < 4u; r++) {
        const uint idx = qs[2u * (u & 1u) + (r >> 1)];
        for (uint t = 0u; t < 2u; t++) {
            const uint k = 2u * r + t, nib = (qh >> (4u * k)) & 0xFu;
            const uint g = bitfieldExtract(idx, int(8u * (k & 3u)), 8) | ((nib & 7u) << 8);
            const float delta = (nib & 8u) != 0u ? -0.125 : 0.125;
            vec4 lo, hi;
            iq1_entry(g, lo, hi);
            q[4u * r + 2u * t] = lo + delta;
            q[4u * r + 2u * t + 1u] = hi + delta;
        }
        ab[r] = vec2(m.d * float(2u * ((sc >> (6u * (r >> 1) + 3u * (r & 1u))) & 7u) + 1u), 0.0);
    }
}
#endif
#endif

#endif

#version 450
/* Y[col][row] = sum_k W[row][k] * X[col][k] for CPU Vulkan devices (lavapipe/llvmpipe): vkl_op_matmul with any
 * number of columns (decode matvec, small batches and prompts).
 *
 * Why a kernel of its own: a CPU driver runs one subgroup as SIMD lanes of one thread. Arithmetic is cheap
 * (one vector instruction for all lanes), but a buffer load is executed lane by lane with bounds checks,
 * so it costs about as much as a dozen vector instructions per 32-bit component per lane; barriers and
 * shared memory are expensive too. So this kernel minimises the 32-bit components each lane loads per
 * multiply-add and uses neither barriers nor shared memory:
 *   - a workgroup is one subgroup (WG = the subgroup size); invocation t owns rows row0 + t + WG*i
 *     (i < RPL) of the tile and all NC columns of it, so no reduction across invocations is needed;
 *   - every invocation walks the whole row, 16 bytes of weights per load (uvec4), each loaded once and
 *     used for NC columns; the block scales of two blocks come in one word;
 *   - x is the same for all invocations (they walk the same k): invocation 0 of the subgroup loads it and
 *     subgroupShuffle hands it to the others (one lane's load instead of WG), used for WG*RPL rows;
 *   - Q4_0 nibbles are not shifted down: (q & 0xF << 4j) is converted as it is and x is pre-scaled by the
 *     exact power of two 2^-4j once per block (the products equal those with shifted nibbles, barring
 *     underflow of |x| < 2^-100);
 *   - sum((q - 8) * x) = sum(q * x) - 8 * sum(x), with 8 * sum(x) computed once per block and column.
 * Rows past M are clamped on load and skipped on store; columns past N likewise.
 *
 * USE_INT64 (shaderInt64; Q8_0/Q4_0, one column: the decode matvec): the per-lane cost is per component
 * loaded, and a 64-bit component costs about what a 32-bit one does, so this variant loads 32 bytes of quants
 * per load (u64vec4: one Q8_0 or two Q4_0 blocks) and the scales of four blocks as one uint64_t; x comes eight
 * floats per lane in one load by all lanes, then shuffles (llvmpipe walks every lane for every load, active or
 * not, so that costs less than WG loads by invocation 0). About a third fewer instructions than 32-bit loads.
 * Its loop tests at the end: llvmpipe runs a loop's body once more with every lane masked off when the exit
 * test comes first.
 *
 * Tiles of several columns (batched decode) of Q4_0 and Q8_0 (MC_BLOCK; with USE_INT64 and MC_INT64, Q4_0:
 * MC64_X/MC64_BLOCK): llvmpipe lowers fma to a multiply and an add, so each weight and column costs two vector
 * instructions whatever the code; everything else is made small next to that: x of a block is loaded by all
 * lanes and shuffled, each row's quants are dequantized once and used in NC independent chains, and the sums
 * go to an array indexed by constants only (every loop unrolled), which stays in registers: llvmpipe keeps an
 * array indexed at run time in memory and stores to it lane by lane.
 *
 * Other quantized types (DQ_GENERIC) go through dequant.glsl: per block, each row's meta is loaded once (a few
 * words per 256 elements for the K-quants), then unit by unit the x of the unit's runs is gathered (one load per
 * lane, then shuffles) with its sums, and each row's unit is dequantized and used for every column as
 * a * dot(q, x) + b * sum(x).
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl), each with 32-bit loads; Q8_0 and Q4_0 also with
 * USE_INT64 (NC == 1), and Q4_0 with USE_INT64 and MC_INT64 (any NC). F32 needs K % 4 == 0, F16/BF16
 * K % 8 == 0 (rows in whole 16-byte units); every type needs w_off % 16 == 0 and x_off, x_stride multiples of
 * 4 floats; USE_INT64 needs K % 128 == 0,
 * w_off % 32 == 0, d_off % 8 == 0 and x_off % 8 == 0 (the host checks and otherwise uses the 32-bit variant or
 * the generic kernels).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = X, 3 = Y (IQ grid types: 4 = grid); F32/F16/BF16:
 * 0 = data, 1 = X, 2 = Y.
 * Spec constants: 0 = WG (the subgroup size), 1 = RPL (rows per invocation), 2 = NC (columns per tile). */
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
#ifdef USE_INT64
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif

#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
#define DQ_IQ4_LOOKUP iq4_shuffled   /* below */
#endif
#define DQ_GRID_BINDING 4   /* the IQ grid types' grid (dequant.glsl) */
#define DQ_GRID_UNIFORM 1   /* ... as a uniform buffer: gathered without a branch per lane */
#include "dequant.glsl"
#if defined(WQUANT) && !defined(WTYPE_Q4_0) && !defined(WTYPE_Q8_0)
#define DQ_GENERIC 1   /* through dequant.glsl's units (Q4_0 and Q8_0 have hand-tuned paths) */
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint RPL = 16;
layout(constant_id = 2) const uint NC = 1;

layout(push_constant) uniform Push {
    uint K;         /* row length */
    uint M;         /* rows in this dispatch */
    uint N;         /* columns in this dispatch */
    uint w_off;     /* bytes from the start of binding 0 to the first row of the dispatch (multiple of 16) */
    uint d_off;     /* bytes from the start of the meta binding to the first row (quantized) */
    uint x_off;     /* floats from the start of the X binding to the first column (multiple of 4) */
    uint x_stride;  /* floats between two columns of X (multiple of 4) */
    uint y_off;     /* floats from the start of the Y binding to (first column, first row) */
    uint y_stride;  /* floats between two columns of Y */
} pc;

#ifdef USE_INT64
/* 64-bit views of the weight regions (dequant.glsl's wq, wd) */
layout(set = 0, binding = 0) readonly buffer WQ64 { u64vec4 wq64[]; };   /* one Q8_0 block or two Q4_0 blocks */
layout(set = 0, binding = 1) readonly buffer WD64 { uint64_t wd64[]; };  /* the scales of four blocks */
layout(set = 0, binding = 2) readonly buffer X8 { u64vec4 x8[]; };   /* eight floats */
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#elif defined(WQUANT)   /* bindings 0 (quants) and 1 (meta): dequant.glsl */
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#else
#ifdef WTYPE_F32
layout(set = 0, binding = 0) readonly buffer W4 { vec4 w4[]; };
#else
layout(set = 0, binding = 0) readonly buffer W4 { uvec4 w4[]; };
#endif
layout(set = 0, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
#endif

#ifdef USE_INT64
/* X_LOAD(I, XN): x8[I + j] (eight floats each; I uniform) for j < XN into xv[2j], xv[2j + 1]. Invocation t
 * loads x8[I + t] and shuffles hand it to the others: one load for all lanes instead of XN loads by
 * invocation 0 (llvmpipe walks every lane for each load, active or not). lo_/hi_[j / WG] hold what invocation
 * j % WG loaded; they are XN long so that every index stays in bounds before the loops are unrolled. */
#define X_LOAD(I, XN)                                                                                       \
    {                                                                                                       \
        vec4 lo_[XN], hi_[XN];                                                                              \
        for (uint r_ = 0u; r_ < (XN); r_ += WG) {                                                           \
            u64vec4 v_ = u64vec4(0ul);                                                                      \
            if (r_ + gl_SubgroupInvocationID < (XN))                                                        \
                v_ = x8[(I) + r_ + gl_SubgroupInvocationID];                                                \
            lo_[r_ / WG] = uintBitsToFloat(uvec4(unpackUint2x32(v_.x), unpackUint2x32(v_.y)));              \
            hi_[r_ / WG] = uintBitsToFloat(uvec4(unpackUint2x32(v_.z), unpackUint2x32(v_.w)));              \
        }                                                                                                   \
        for (uint j_ = 0u; j_ < (XN); j_++) {                                                               \
            xv[2u * j_] = subgroupShuffle(lo_[j_ / WG], j_ % WG);                                           \
            xv[2u * j_ + 1u] = subgroupShuffle(hi_[j_ / WG], j_ % WG);                                      \
        }                                                                                                   \
    }
#else
/* x4[idx], loaded by invocation 0 of the subgroup and shuffled to the others (idx is uniform). */
vec4 x_uniform(uint idx)
{
    vec4 v = vec4(0.0);
    if (gl_SubgroupInvocationID == 0u)
        v = x4[idx];
    return subgroupShuffle(v, 0u);
}
#ifdef DQ_GENERIC
const uint XU = DQ_RUNS * 4u;   /* vec4s of x per unit */
/* X_GATHER(c, B0, U): the XU vec4s of x of unit U of the block starting at element B0, column c, into
 * xv[c * XU ..]: invocation t loads the t-th (in rounds of WG) and shuffles hand them to all (one load for all
 * lanes instead of XU loads by invocation 0: llvmpipe walks every lane for each load, active or not). */
#define X_GATHER(c, B0, U)                                                                                  \
    {                                                                                                       \
        vec4 g_[XU];                                                                                        \
        for (uint r_ = 0u; r_ < XU; r_ += WG) {                                                             \
            const uint t_ = r_ + gl_SubgroupInvocationID;                                                   \
            g_[r_ / WG] = vec4(0.0);                                                                        \
            if (t_ < XU)                                                                                    \
                g_[r_ / WG] = x4[xbase[c] + (((B0) + dq_run_pos((U), t_ >> 2)) >> 2) + (t_ & 3u)];          \
        }                                                                                                   \
        for (uint j_ = 0u; j_ < XU; j_++)                                                                   \
            xv[(c) * XU + j_] = subgroupShuffle(g_[j_ / WG], j_ % WG);                                      \
    }
#endif
#endif

#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
/* The 16 IQ4 values through subgroup shuffles: llvmpipe emits fma() as a multiply and an add, so iq4_poly
 * costs ~10 vector instructions per value, and an indexed constant array a load per lane; a shuffle is one
 * permute instruction. Invocation t holds value k * WG + t in iq4_tab[k] (set once in main); value n is
 * shuffled from invocation n % WG's iq4_tab[n / WG] (WG = the subgroup size; two shuffles and a select at 8). */
const uint IQ4_TABS = (16u + WG - 1u) / WG;
float iq4_tab[16];
void iq4_tab_init()
{
    for (uint k = 0u; k < IQ4_TABS; k++)
        iq4_tab[k] = iq4_poly(uvec4(min(k * WG + gl_SubgroupInvocationID, 15u))).x;
}
vec4 iq4_shuffled(uvec4 n)
{
    vec4 r;
    for (uint c = 0u; c < 4u; c++) {
        r[c] = subgroupShuffle(iq4_tab[0], n[c] % WG);
        for (uint k = 1u; k < IQ4_TABS; k++) {
            const float v = subgroupShuffle(iq4_tab[k], n[c] % WG);
            r[c] = n[c] / WG == k ? v : r[c];
        }
    }
    return r;
}
#endif

#if defined(WTYPE_Q2_K)
/* Q2_K's 2-bit quants taken in place, as Q4_0's nibbles: element 4w+c of run r of a unit is bits 8c+2r of quant
 * word w; (w & 3 << (8c + 2r)) converts exactly to q * 2^(8c+2r) (one and and one conversion per value, against
 * dq_unit's shift, and, or and subtract), and x of run r is pre-scaled by 2^-(8c+2r) once per unit for all rows
 * (DQ_X_SCALE), so the products are those of the shifted quants. Byte 3 is shifted down by 24 first (the
 * conversion is signed). The sums of x are taken before the scaling. */
#define DQ_X_SCALE q2k_x_scale
#define DQ_UNIT q2k_unit_in_place
vec4 q2k_x_scale(uint r)
{
    const float e = 1.0 / float(1u << (2u * r));
    return vec4(e, e / 256.0, e / 65536.0, e);
}
void q2k_unit_in_place(DqMeta m, uint qb, uint u, out vec4 q[16], out vec2 ab[4])
{
    const uvec4 v = wq[qb + u];
    const uvec4 top = v >> 24;
    for (uint r = 0u; r < 4u; r++) {
        const uint k = 2u * r;
        for (uint i = 0u; i < 4u; i++)
            q[4u * r + i] = vec4(ivec4(v[i] & (3u << k), v[i] & (0x300u << k), v[i] & (0x30000u << k),
                                       top[i] & (3u << k)));
        const uint s = DQ_BYTE(m.sc, 8u * (u >> 1) + 2u * r + (u & 1u));
        ab[r] = vec2(m.dm.x * float(s & 0xFu), -m.dm.y * float(s >> 4));
    }
}
#endif
#ifndef DQ_UNIT
#define DQ_UNIT dq_unit   /* the kernels' unit function (dequant.glsl's unless a type has one above) */
#endif

#if defined(WTYPE_Q4_0)
/* Element 4w+i of a block is at bit 8i of word w, element 16+4w+i at bit 8i+4 (GGUF order). The nibbles
 * are taken in place; x is pre-scaled by 2^-8i and 2^-(8i+4) to match (the top one is shifted down). */
const vec4 SCALE_LO = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
const vec4 SCALE_HI = vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 1048576.0, 1.0);
vec4 nib_lo(uint q) { return vec4(ivec4(q & 0xFu, q & 0xF00u, q & 0xF0000u, q & 0xF000000u)); }
vec4 nib_hi(uint q) { return vec4(ivec4(q & 0xF0u, q & 0xF000u, q & 0xF00000u, q >> 28)); }
#endif

/* MC_WORD(V, J): quant vector V (four weights) times x vector J of every column (xm[c * XPC + J], each column's
 * XPC vec4s of x in xm) into that column's sum s_[c]: one fma per weight and column (the tiles of several
 * columns, MC_BLOCK and MC64_STEP). */
#define MC_WORD(V, J)                                                                                       \
    [[unroll]] for (uint e_ = 0u; e_ < 4u; e_++)                                                            \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            s_[c] = fma((V)[e_], xm[c * XPC + (J)][e_], s_[c]);

#ifdef USE_INT64
/* The 64-bit-load variant: one column (NC == 1), Q8_0 or Q4_0, K a multiple of 128, w_off a multiple of 32 bytes,
 * d_off of 8 and x_off of 8 floats (the host checks). A row is walked in groups of four blocks, whose scales
 * come in one uint64_t, and each group in two steps of two blocks: x of the step (64 floats) in one X_LOAD,
 * then for each row one u64vec4 of quants (Q4_0) or two (Q8_0). The loop tests at its end: llvmpipe runs a
 * loop's body once more, all lanes masked off, when the exit test comes first. */
#if defined(WTYPE_Q4_0)
const uint WPU = 64u;   /* weights per u64vec4 of quants */
/* PREP_X: 8 * sum(x) of each block of the step in xs, and x pre-scaled for the nibbles taken in place. */
#define PREP_X                                                                                              \
    float xs[2];                                                                                            \
    for (uint h = 0u; h < 2u; h++) {                                                                        \
        const uint o = h * 8u;                                                                              \
        xs[h] = 8.0 * dot((xv[o] + xv[o + 1u]) + (xv[o + 2u] + xv[o + 3u]) + (xv[o + 4u] + xv[o + 5u]) +    \
                              (xv[o + 6u] + xv[o + 7u]),                                                    \
                          vec4(1.0));                                                                       \
        for (uint j = 0u; j < 4u; j++) {                                                                    \
            xv[o + j] *= SCALE_LO;                                                                          \
            xv[o + 4u + j] *= SCALE_HI;                                                                     \
        }                                                                                                   \
    }
/* Q4_SUM(W, H): sum(q * x) over block H of the step, its quants in words W. */
#define Q4_SUM(W, H)                                                                                        \
    (dot(nib_lo((W).x), xv[(H) * 8u]) + dot(nib_lo((W).y), xv[(H) * 8u + 1u]) +                            \
     dot(nib_lo((W).z), xv[(H) * 8u + 2u]) + dot(nib_lo((W).w), xv[(H) * 8u + 3u]) +                        \
     dot(nib_hi((W).x), xv[(H) * 8u + 4u]) + dot(nib_hi((W).y), xv[(H) * 8u + 5u]) +                        \
     dot(nib_hi((W).z), xv[(H) * 8u + 6u]) + dot(nib_hi((W).w), xv[(H) * 8u + 7u]))
/* ROW_STEP(i, B, D): row i's sum over blocks B, B + 1 with scales D.x, D.y. */
#define ROW_STEP(i, B, D)                                                                                   \
    {                                                                                                       \
        const u64vec4 q = wq64[rq[i] + ((B) >> 1)];                                                           \
        acc[i] += (D).x * (Q4_SUM(uvec4(unpackUint2x32(q.x), unpackUint2x32(q.y)), 0u) - xs[0]) +           \
                  (D).y * (Q4_SUM(uvec4(unpackUint2x32(q.z), unpackUint2x32(q.w)), 1u) - xs[1]);            \
    }
#else
const uint WPU = 32u;
#define PREP_X
/* Q8_SUM(Q, H): sum(q * x) over block H of the step, its quants in Q. */
#define Q8_SUM(Q, H)                                                                                        \
    (dot(q8_word(unpackUint2x32((Q).x).x), xv[(H) * 8u]) +                                                  \
     dot(q8_word(unpackUint2x32((Q).x).y), xv[(H) * 8u + 1u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).y).x), xv[(H) * 8u + 2u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).y).y), xv[(H) * 8u + 3u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).z).x), xv[(H) * 8u + 4u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).z).y), xv[(H) * 8u + 5u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).w).x), xv[(H) * 8u + 6u]) +                                             \
     dot(q8_word(unpackUint2x32((Q).w).y), xv[(H) * 8u + 7u]))
#define ROW_STEP(i, B, D)                                                                                   \
    {                                                                                                       \
        const u64vec4 q0 = wq64[rq[i] + (B)], q1 = wq64[rq[i] + (B) + 1u];                                      \
        acc[i] += (D).x * Q8_SUM(q0, 0u) + (D).y * Q8_SUM(q1, 1u);                                          \
    }
#endif
#ifdef MC_INT64
/* Tiles of several columns with 64-bit loads (Q4_0, the conditions above but NC > 1): the 32-bit variant's
 * MC_BLOCK scheme in steps of two blocks, with half the load components per lane: one u64vec4 of quants per row,
 * the scales of four blocks in one uint64_t, and x of two blocks of a column in one load by all lanes. */
#ifndef WTYPE_Q4_0
#error "MC_INT64 is built for Q4_0 only"
#endif
const uint XPC = 16u;   /* vec4s of x per column in xm (two blocks) */
/* MC64_X(c, G): blocks G, G + 1 of column c: invocation t loads floats 8t..8t+7 (block G + t / 4), sums and
 * pre-scales them (elements 0..15 of a block are low nibbles, 16..31 high ones); shuffles hand them to all. */
#define MC64_X(c, G)                                                                                        \
    {                                                                                                       \
        vec4 lo_[8], hi_[8];                                                                                \
        float p_[8];                                                                                        \
        [[unroll]] for (uint r_ = 0u; r_ < 8u; r_ += WG) {                                                  \
            const uint t_ = r_ + gl_SubgroupInvocationID;                                                   \
            u64vec4 v_ = u64vec4(0ul);                                                                      \
            if (t_ < 8u)                                                                                    \
                v_ = x8[xbase[c] + (G) * 4u + t_];                                                          \
            const vec4 l_ = uintBitsToFloat(uvec4(unpackUint2x32(v_.x), unpackUint2x32(v_.y)));             \
            const vec4 h_ = uintBitsToFloat(uvec4(unpackUint2x32(v_.z), unpackUint2x32(v_.w)));             \
            const vec4 sc_ = (t_ & 3u) < 2u ? SCALE_LO : SCALE_HI;                                          \
            p_[r_ / WG] = dot(l_ + h_, vec4(1.0));                                                          \
            lo_[r_ / WG] = l_ * sc_;                                                                        \
            hi_[r_ / WG] = h_ * sc_;                                                                        \
        }                                                                                                   \
        [[unroll]] for (uint h_ = 0u; h_ < 2u; h_++) {                                                      \
            float s_ = 0.0;                                                                                 \
            [[unroll]] for (uint u_ = 0u; u_ < 4u; u_++) {                                                  \
                const uint l_ = 4u * h_ + u_;                                                               \
                xm[(c) * XPC + h_ * 8u + 2u * u_] = subgroupShuffle(lo_[l_ / WG], l_ % WG);                  \
                xm[(c) * XPC + h_ * 8u + 2u * u_ + 1u] = subgroupShuffle(hi_[l_ / WG], l_ % WG);             \
                s_ += subgroupShuffle(p_[l_ / WG], l_ % WG);                                                \
            }                                                                                               \
            xs[(c) * 2u + h_] = 8.0 * s_;                                                                   \
        }                                                                                                   \
    }
/* MC64_BLOCK(i, W, H, D): row i's block H of the step, its quants in words W, scale D, for every column. */
#define MC64_BLOCK(i, W, H, D)                                                                              \
    {                                                                                                       \
        float s_[NC];                                                                                       \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            s_[c] = -xs[c * 2u + (H)];                                                                      \
        [[unroll]] for (uint w_ = 0u; w_ < 4u; w_++) {                                                      \
            MC_WORD(nib_lo((W)[w_]), (H) * 8u + w_)                                                         \
            MC_WORD(nib_hi((W)[w_]), (H) * 8u + 4u + w_)                                                    \
        }                                                                                                   \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            mac[(i) * NC + c] = fma((D), s_[c], mac[(i) * NC + c]);                                         \
    }

void main()
{
    const uint row0 = gl_WorkGroupID.x * (WG * RPL) + gl_LocalInvocationID.x;
    const uint col0 = gl_WorkGroupID.y * NC;
    const uint nb = pc.K / 32u;

    uint xbase[NC];   /* u64vec4 index of each column's x */
    [[unroll]] for (uint c = 0u; c < NC; c++)
        xbase[c] = (pc.x_off + min(col0 + c, pc.N - 1u) * pc.x_stride) >> 3;
    uint rq[RPL];     /* u64vec4 index of each row's quants */
    uint rd[RPL];     /* uint64_t index of each row's scales */
    [[unroll]] for (uint i = 0u; i < RPL; i++) {
        const uint r = min(row0 + i * WG, pc.M - 1u);
        rq[i] = (pc.w_off >> 5) + r * (pc.K / 64u);
        rd[i] = (pc.d_off >> 3) + r * (nb >> 2);
    }
    float mac[RPL * NC];
    [[unroll]] for (uint i = 0u; i < RPL * NC; i++)
        mac[i] = 0.0;
    uint g = 0u;   /* first block of the group of four */
    do {
        uvec2 sc[RPL];
        [[unroll]] for (uint i = 0u; i < RPL; i++)
            sc[i] = unpackUint2x32(wd64[rd[i] + (g >> 2)]);
        [[unroll]] for (uint st = 0u; st < 2u; st++) {
            vec4 xm[NC * XPC];
            float xs[NC * 2u];
            [[unroll]] for (uint c = 0u; c < NC; c++)
                MC64_X(c, g + 2u * st)
            [[unroll]] for (uint i = 0u; i < RPL; i++) {
                const u64vec4 q = wq64[rq[i] + (g >> 1) + st];
                const vec2 d = unpackHalf2x16(sc[i][st]);
                MC64_BLOCK(i, uvec4(unpackUint2x32(q.x), unpackUint2x32(q.y)), 0u, d.x)
                MC64_BLOCK(i, uvec4(unpackUint2x32(q.z), unpackUint2x32(q.w)), 1u, d.y)
            }
        }
        g += 4u;
    } while (g < nb);

    [[unroll]] for (uint c = 0u; c < NC; c++) {
        [[unroll]] for (uint i = 0u; i < RPL; i++) {
            const uint row = row0 + i * WG;
            if (col0 + c < pc.N && row < pc.M)
                y[pc.y_off + (col0 + c) * pc.y_stride + row] = mac[i * NC + c];
        }
    }
}
#else
/* STEP(G, S): blocks G + 2S, G + 2S + 1 of every row; their scales are halves 2S, 2S + 1 of sc. */
#define STEP(G, S)                                                                                          \
    {                                                                                                       \
        vec4 xv[16];                                                                                        \
        X_LOAD(xbase + ((G) + 2u * (S)) * 4u, 8u)                                                           \
        PREP_X                                                                                              \
        for (uint i = 0u; i < RPL; i++)                                                                     \
            ROW_STEP(i, (G) + 2u * (S), unpackHalf2x16(sc[i][S]))                                           \
    }

void main()
{
    const uint t = gl_LocalInvocationID.x;
    const uint row0 = gl_WorkGroupID.x * (WG * RPL) + t;
    const uint last_row = pc.M - 1u;
    const uint xbase = pc.x_off >> 3;   /* u64vec4 index of x (one column) */
    const uint nb = pc.K / 32u;

    float acc[RPL];
    uint rq[RPL];     /* u64vec4 index of each row's quants */
    uint rd[RPL];     /* uint64_t index of each row's scales */
    for (uint i = 0u; i < RPL; i++) {
        const uint r = min(row0 + i * WG, last_row);
        acc[i] = 0.0;
        rq[i] = (pc.w_off >> 5) + r * (pc.K / WPU);
        rd[i] = (pc.d_off >> 3) + r * (nb >> 2);
    }
    uint g = 0u;   /* first block of the group */
    do {
        uvec2 sc[RPL];
        for (uint i = 0u; i < RPL; i++)
            sc[i] = unpackUint2x32(wd64[rd[i] + (g >> 2)]);
        STEP(g, 0u)
        STEP(g, 1u)
        g += 4u;
    } while (g < nb);

    for (uint i = 0u; i < RPL; i++) {
        const uint row = row0 + i * WG;
        if (row < pc.M)
            y[pc.y_off + row] = acc[i];
    }
}
#endif
#else
/* LOAD_X(U): the x values of unit U of every column into xv (Q4_0 also gets 8 * sum(x) in xs, and x
 * pre-scaled for the nibbles taken in place). ROW_UNIT(i, U[, D]): row i of the invocation, unit U (with
 * block scale D), accumulated for every column. */
#if defined(WTYPE_Q4_0)
#define LOAD_X(U)                                                                                           \
    vec4 xv[NC * 8u];                                                                                       \
    float xs[NC];                                                                                           \
    for (uint c = 0u; c < NC; c++) {                                                                        \
        for (uint j = 0u; j < 8u; j++)                                                                      \
            xv[c * 8u + j] = x_uniform(xbase[c] + (U) * 8u + j);                                            \
        xs[c] = 8.0 * dot((xv[c * 8u] + xv[c * 8u + 1u]) + (xv[c * 8u + 2u] + xv[c * 8u + 3u]) +            \
                              (xv[c * 8u + 4u] + xv[c * 8u + 5u]) + (xv[c * 8u + 6u] + xv[c * 8u + 7u]),    \
                          vec4(1.0));                                                                       \
        for (uint j = 0u; j < 4u; j++) {                                                                    \
            xv[c * 8u + j] *= SCALE_LO;                                                                     \
            xv[c * 8u + 4u + j] *= SCALE_HI;                                                                \
        }                                                                                                   \
    }
#define ROW_UNIT(i, B, D)                                                                                   \
    {                                                                                                       \
        const float d_ = (D);                                                                               \
        const uvec4 q = wq[rq[i] + (B)];                                                                    \
        const vec4 l0 = nib_lo(q.x), l1 = nib_lo(q.y), l2 = nib_lo(q.z), l3 = nib_lo(q.w);                  \
        const vec4 h0 = nib_hi(q.x), h1 = nib_hi(q.y), h2 = nib_hi(q.z), h3 = nib_hi(q.w);                  \
        for (uint c = 0u; c < NC; c++) {                                                                    \
            const uint x0 = c * 8u;                                                                         \
            const float s = dot(l0, xv[x0]) + dot(l1, xv[x0 + 1u]) + dot(l2, xv[x0 + 2u]) +                 \
                            dot(l3, xv[x0 + 3u]) + dot(h0, xv[x0 + 4u]) + dot(h1, xv[x0 + 5u]) +            \
                            dot(h2, xv[x0 + 6u]) + dot(h3, xv[x0 + 7u]);                                    \
            acc[(i) * NC + c] += d_ * (s - xs[c]);                                                          \
        }                                                                                                   \
    }
#elif defined(WTYPE_Q8_0)
#define LOAD_X(U)                                                                                           \
    vec4 xv[NC * 8u];                                                                                       \
    for (uint c = 0u; c < NC; c++)                                                                          \
        for (uint j = 0u; j < 8u; j++)                                                                      \
            xv[c * 8u + j] = x_uniform(xbase[c] + (U) * 8u + j);
#define ROW_UNIT(i, B, D)                                                                                   \
    {                                                                                                       \
        const float d_ = (D);                                                                               \
        const uvec4 qa = wq[rq[i] + 2u * (B)], qb = wq[rq[i] + 2u * (B) + 1u];                              \
        const vec4 v0 = q8_word(qa.x), v1 = q8_word(qa.y), v2 = q8_word(qa.z), v3 = q8_word(qa.w);          \
        const vec4 v4 = q8_word(qb.x), v5 = q8_word(qb.y), v6 = q8_word(qb.z), v7 = q8_word(qb.w);          \
        for (uint c = 0u; c < NC; c++) {                                                                    \
            const uint x0 = c * 8u;                                                                         \
            const float s = dot(v0, xv[x0]) + dot(v1, xv[x0 + 1u]) + dot(v2, xv[x0 + 2u]) +                 \
                            dot(v3, xv[x0 + 3u]) + dot(v4, xv[x0 + 4u]) + dot(v5, xv[x0 + 5u]) +            \
                            dot(v6, xv[x0 + 6u]) + dot(v7, xv[x0 + 7u]);                                    \
            acc[(i) * NC + c] += d_ * s;                                                                    \
        }                                                                                                   \
    }
#elif defined(W16)
#define LOAD_X(U)                                                                                           \
    vec4 xv[NC * 2u];                                                                                       \
    for (uint c = 0u; c < NC; c++) {                                                                        \
        xv[c * 2u] = x_uniform(xbase[c] + (U) * 2u);                                                        \
        xv[c * 2u + 1u] = x_uniform(xbase[c] + (U) * 2u + 1u);                                              \
    }
#define ROW_UNIT(i, U)                                                                                      \
    {                                                                                                       \
        const uvec4 h = w4[rq[i] + (U)];                                                                    \
        const vec4 a = vec4(w16_pair(h.x), w16_pair(h.y));                                                  \
        const vec4 b = vec4(w16_pair(h.z), w16_pair(h.w));                                                  \
        for (uint c = 0u; c < NC; c++)                                                                      \
            acc[(i) * NC + c] += dot(a, xv[c * 2u]) + dot(b, xv[c * 2u + 1u]);                              \
    }
#else
#define LOAD_X(U)                                                                                           \
    vec4 xv[NC];                                                                                            \
    for (uint c = 0u; c < NC; c++)                                                                          \
        xv[c] = x_uniform(xbase[c] + (U));
#define ROW_UNIT(i, U)                                                                                      \
    {                                                                                                       \
        const vec4 w = w4[rq[i] + (U)];                                                                     \
        for (uint c = 0u; c < NC; c++)                                                                      \
            acc[(i) * NC + c] += dot(w, xv[c]);                                                             \
    }
#endif

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q8_0)
/* Tiles of more than two columns (batched decode), Q4_0 and Q8_0, block by block (MC_BLOCK). The per-column work
 * dominates there, so it is kept to one fused multiply-add per weight and column:
 *   - x of the block, per column: invocation t loads floats 4t..4t+3 (one load for all lanes), sums and
 *     pre-scales them (Q4_0), and constant-index shuffles hand them to all (MC_X);
 *   - each row's quants are dequantized once and used in NC independent fma chains (MC_ROW);
 *   - every loop is unrolled, so that no array is indexed at run time: llvmpipe keeps such arrays in memory and
 *     stores to them lane by lane. */
const uint XPC = 8u;   /* vec4s of x per column in xm (one block) */
#if defined(WTYPE_Q4_0)
#define MC_X(c, B)                                                                                          \
    {                                                                                                       \
        vec4 g_[8];                                                                                         \
        float p_[8];                                                                                        \
        [[unroll]] for (uint r_ = 0u; r_ < 8u; r_ += WG) {                                                  \
            const uint t_ = r_ + gl_SubgroupInvocationID;                                                   \
            vec4 v_ = vec4(0.0);                                                                            \
            if (t_ < 8u)                                                                                    \
                v_ = x4[xbase[c] + (B) * 8u + t_];                                                          \
            p_[r_ / WG] = dot(v_, vec4(1.0));                                                               \
            g_[r_ / WG] = v_ * (t_ < 4u ? SCALE_LO : SCALE_HI);                                             \
        }                                                                                                   \
        float s_ = 0.0;                                                                                     \
        [[unroll]] for (uint j_ = 0u; j_ < 8u; j_++) {                                                      \
            xm[(c) * 8u + j_] = subgroupShuffle(g_[j_ / WG], j_ % WG);                                      \
            s_ += subgroupShuffle(p_[j_ / WG], j_ % WG);                                                    \
        }                                                                                                   \
        xs[c] = 8.0 * s_;                                                                                   \
    }
#define MC_ROW(i, B, D)                                                                                     \
    {                                                                                                       \
        const uvec4 q_ = wq[rq[i] + (B)];                                                                   \
        float s_[NC];                                                                                       \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            s_[c] = -xs[c];                                                                                 \
        [[unroll]] for (uint w_ = 0u; w_ < 4u; w_++) {                                                      \
            MC_WORD(nib_lo(q_[w_]), w_)                                                                     \
            MC_WORD(nib_hi(q_[w_]), w_ + 4u)                                                                \
        }                                                                                                   \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            mac[(i) * NC + c] = fma((D), s_[c], mac[(i) * NC + c]);                                         \
    }
#else
#define MC_X(c, B)                                                                                          \
    {                                                                                                       \
        vec4 g_[8];                                                                                         \
        [[unroll]] for (uint r_ = 0u; r_ < 8u; r_ += WG) {                                                  \
            const uint t_ = r_ + gl_SubgroupInvocationID;                                                   \
            g_[r_ / WG] = vec4(0.0);                                                                        \
            if (t_ < 8u)                                                                                    \
                g_[r_ / WG] = x4[xbase[c] + (B) * 8u + t_];                                                 \
        }                                                                                                   \
        [[unroll]] for (uint j_ = 0u; j_ < 8u; j_++)                                                        \
            xm[(c) * 8u + j_] = subgroupShuffle(g_[j_ / WG], j_ % WG);                                      \
    }
#define MC_ROW(i, B, D)                                                                                     \
    {                                                                                                       \
        const uvec4 qa_ = wq[rq[i] + 2u * (B)], qb_ = wq[rq[i] + 2u * (B) + 1u];                            \
        float s_[NC];                                                                                       \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            s_[c] = 0.0;                                                                                    \
        [[unroll]] for (uint w_ = 0u; w_ < 4u; w_++) {                                                      \
            MC_WORD(q8_word(qa_[w_]), w_)                                                                   \
            MC_WORD(q8_word(qb_[w_]), w_ + 4u)                                                              \
        }                                                                                                   \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            mac[(i) * NC + c] = fma((D), s_[c], mac[(i) * NC + c]);                                         \
    }
#endif
/* MC_BLOCK(B, H): block B of every row and column, row i's scale dd[i].H. */
#define MC_BLOCK(B, H)                                                                                      \
    {                                                                                                       \
        vec4 xm[NC * 8u];                                                                                   \
        float xs[NC];                                                                                       \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                           \
            MC_X(c, B)                                                                                      \
        [[unroll]] for (uint i = 0u; i < RPL; i++)                                                          \
            MC_ROW(i, B, dd[i].H)                                                                           \
    }
#endif

void main()
{
    const uint t = gl_LocalInvocationID.x;
    const uint row0 = gl_WorkGroupID.x * (WG * RPL) + t;
    const uint col0 = gl_WorkGroupID.y * NC;
    const uint last_row = pc.M - 1u;

    uint xbase[NC];   /* vec4 index of each column's x */
    for (uint c = 0u; c < NC; c++)
        xbase[c] = (pc.x_off + min(col0 + c, pc.N - 1u) * pc.x_stride) >> 2;
    float acc[RPL * NC];
    for (uint i = 0u; i < RPL * NC; i++)
        acc[i] = 0.0;
    uint rq[RPL];     /* index of the first 16-byte unit of each row */

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q8_0)
    const uint nb = pc.K / 32u;
#if defined(WTYPE_Q4_0)
    const uint upb = 1u;   /* 16-byte units per block */
#else
    const uint upb = 2u;
#endif
    uint rd[RPL];     /* index of the first scale (half) of each row */
    for (uint i = 0u; i < RPL; i++) {
        const uint r = min(row0 + i * WG, last_row);
        rq[i] = (pc.w_off >> 4) + r * nb * upb;
        rd[i] = (pc.d_off >> 1) + r * nb;
    }
    if (NC <= 2u && ((nb | (pc.d_off >> 1)) & 1u) == 0u) {
        /* Two blocks per step, their scales from one word. */
        for (uint b = 0u; b < nb; b += 2u) {
            vec2 dd[RPL];
            for (uint i = 0u; i < RPL; i++)
                dd[i] = unpackHalf2x16(wd[(rd[i] + b) >> 1]);
            {
                LOAD_X(b)
                for (uint i = 0u; i < RPL; i++)
                    ROW_UNIT(i, b, dd[i].x)
            }
            {
                LOAD_X(b + 1u)
                for (uint i = 0u; i < RPL; i++)
                    ROW_UNIT(i, b + 1u, dd[i].y)
            }
        }
    } else if (NC > 2u && ((nb | (pc.d_off >> 1)) & 1u) == 0u) {
        /* Two blocks per step, their scales from one word. The sums go to mac, which (unlike acc) is indexed by
         * constants only, so it stays out of memory. */
        float mac[RPL * NC];
        [[unroll]] for (uint i = 0u; i < RPL * NC; i++)
            mac[i] = 0.0;
        uint b = 0u;
        do {
            vec2 dd[RPL];
            [[unroll]] for (uint i = 0u; i < RPL; i++)
                dd[i] = unpackHalf2x16(wd[(rd[i] + b) >> 1]);
            MC_BLOCK(b, x)
            MC_BLOCK(b + 1u, y)
            b += 2u;
        } while (b < nb);
        [[unroll]] for (uint i = 0u; i < RPL * NC; i++)
            acc[i] = mac[i];
    } else {
        /* One block per step. A scales word holds two blocks' scales: it is loaded at even half indices
         * (and at the first block) and kept, so each word is still loaded once, whatever the parity. */
        uint dw[RPL];
        for (uint b = 0u; b < nb; b++) {
            LOAD_X(b)
            for (uint i = 0u; i < RPL; i++) {
                const uint h = rd[i] + b;
                if ((h & 1u) == 0u || b == 0u)
                    dw[i] = wd[h >> 1];
                const vec2 dv = unpackHalf2x16(dw[i]);
                ROW_UNIT(i, b, (h & 1u) != 0u ? dv.y : dv.x)
            }
        }
    }
#elif defined(DQ_GENERIC)
    /* Block by block: each row's meta loaded once per block, then unit by unit: the x of the unit's runs
     * (gathered by the lanes and shuffled, with their sums), then each row's unit for every column. */
    const uint nb = pc.K / DQ_QK;
#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    iq4_tab_init();
#endif
    uint rb[RPL];     /* first block of each row */
    for (uint i = 0u; i < RPL; i++)
        rb[i] = min(row0 + i * WG, last_row) * nb;
    uint b = 0u;
    do {
        DqMeta m[RPL];
        [[unroll]] for (uint i = 0u; i < RPL; i++)
            m[i] = dq_meta(pc.d_off, rb[i] + b);
        [[unroll]] for (uint u = 0u; u < DQ_UNITS; u++) {
            vec4 xv[NC * XU];
            float xs[NC * DQ_RUNS];
            for (uint c = 0u; c < NC; c++) {
                X_GATHER(c, b * DQ_QK, u)
                for (uint r = 0u; r < DQ_RUNS; r++) {
                    const uint o = c * XU + 4u * r;
                    xs[c * DQ_RUNS + r] = dot((xv[o] + xv[o + 1u]) + (xv[o + 2u] + xv[o + 3u]), vec4(1.0));
#ifdef DQ_X_SCALE
                    for (uint j = 0u; j < 4u; j++)
                        xv[o + j] *= DQ_X_SCALE(r);
#endif
                }
            }
            [[unroll]] for (uint i = 0u; i < RPL; i++) {
                vec4 q[XU];
                vec2 ab[DQ_RUNS];
                DQ_UNIT(m[i], (pc.w_off >> 4) + (rb[i] + b) * DQ_QV, u, q, ab);
                for (uint c = 0u; c < NC; c++) {
                    float s = 0.0;
                    for (uint r = 0u; r < DQ_RUNS; r++) {
                        const uint o = c * XU + 4u * r;
                        s += ab[r].x * ((dot(q[4u * r], xv[o]) + dot(q[4u * r + 1u], xv[o + 1u])) +
                                        (dot(q[4u * r + 2u], xv[o + 2u]) + dot(q[4u * r + 3u], xv[o + 3u]))) +
                             ab[r].y * xs[c * DQ_RUNS + r];
                    }
                    acc[i * NC + c] += s;
                }
            }
        }
        b++;
    } while (b < nb);
#else
#ifdef W16
    const uint nu = pc.K / 8u;
#else
    const uint nu = pc.K / 4u;
#endif
    for (uint i = 0u; i < RPL; i++)
        rq[i] = (pc.w_off >> 4) + min(row0 + i * WG, last_row) * nu;
    for (uint u = 0u; u < nu; u++) {
        LOAD_X(u)
        for (uint i = 0u; i < RPL; i++)
            ROW_UNIT(i, u)
    }
#endif

    for (uint c = 0u; c < NC; c++) {
        const uint col = col0 + c;
        if (col >= pc.N)
            break;
        for (uint i = 0u; i < RPL; i++) {
            const uint row = row0 + i * WG;
            if (row < pc.M)
                y[pc.y_off + col * pc.y_stride + row] = acc[i * NC + c];
        }
    }
}
#endif

#version 450
/* y[row] = sum_k W[row][k] * x[k]: the decode matrix-vector product (op_matmul with n_cols == 1).
 *
 * A workgroup of WG invocations computes ROWS consecutive rows. Every invocation walks the row in
 * 16-byte units of the weight (one uvec4/vec4 load per row per unit: a Q4_0 block, half a Q8_0 block,
 * 8 halves, 4 floats), strided by WG, so each weight byte is read exactly once and consecutive
 * invocations read consecutive 16-byte units. The x values of a unit are loaded once and reused for
 * the ROWS rows. The ROWS partial sums are then reduced across the workgroup: subgroupAdd and a short
 * pass through shared memory (USE_SUBGROUP), or a shared-memory tree (WG must be a power of two).
 *
 * Variants: WTYPE_F32 / WTYPE_F16 / WTYPE_Q8_0 / WTYPE_Q4_0, and USE_SUBGROUP.
 * Bindings: quantized: 0 = quants region, 1 = scales region, 2 = x, 3 = y;
 *           F32/F16:   0 = data, 1 = x, 2 = y.
 * The host may bind the weight (and y) at an offset aligned down from the first row of the dispatch;
 * w_off/d_off/y_off say where that row starts inside the bindings. */

#extension GL_GOOGLE_include_directive : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

#include "dequant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint ROWS = 2;

layout(push_constant) uniform Push {
    uint K;        /* row length in elements */
    uint M;        /* rows in this dispatch */
    uint w_off;    /* bytes from the start of binding 0 to the first row of the dispatch */
    uint d_off;    /* bytes from the start of the scales binding to the first row (quantized) */
    uint y_off;    /* floats from the start of the y binding to the output of the first row */
} pc;

#ifdef WQUANT
layout(set = 0, binding = 0) readonly buffer WQ { uvec4 wq[]; };
layout(set = 0, binding = 1) readonly buffer WD { uint wd[]; };
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#else
#ifdef WTYPE_F32
layout(set = 0, binding = 0) readonly buffer W4 { vec4 w4[]; };
layout(set = 0, binding = 0) readonly buffer W1 { float w1[]; };
#else
layout(set = 0, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(set = 0, binding = 0) readonly buffer W1 { uint w1[]; };
#endif
layout(set = 0, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 1) readonly buffer X1 { float x1[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
#endif

shared float red[WG * ROWS];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint row0 = gl_WorkGroupID.x * ROWS;
    const uint last = pc.M - 1u;

    float acc[ROWS];
    for (uint i = 0u; i < ROWS; i++)
        acc[i] = 0.0;

#if defined(WTYPE_Q4_0)
    /* unit = one block: 16 bytes of nibbles + one scale, 32 values of x. */
    const uint nb = pc.K / 32u;
    const uint qbase = pc.w_off >> 4;
    const uint dbase = pc.d_off >> 1;
    for (uint b = tid; b < nb; b += WG) {
        const vec4 xa = x4[b * 8u + 0u], xb = x4[b * 8u + 1u], xc = x4[b * 8u + 2u], xd = x4[b * 8u + 3u];
        const vec4 xe = x4[b * 8u + 4u], xf = x4[b * 8u + 5u], xg = x4[b * 8u + 6u], xh = x4[b * 8u + 7u];
        /* sum((q - 8) * x) = sum(q * x) - 8 * sum(x) */
        const float xsum8 = 8.0 * dot((xa + xb) + (xc + xd) + (xe + xf) + (xg + xh), vec4(1.0));
        for (uint i = 0u; i < ROWS; i++) {
            const uint r = min(row0 + i, last);
            const uvec4 q = wq[qbase + r * nb + b];
            const float d = HALF_AT(wd, dbase + r * nb + b);
            const float s = dot(q4_lo(q.x), xa) + dot(q4_lo(q.y), xb) + dot(q4_lo(q.z), xc) +
                            dot(q4_lo(q.w), xd) + dot(q4_hi(q.x), xe) + dot(q4_hi(q.y), xf) +
                            dot(q4_hi(q.z), xg) + dot(q4_hi(q.w), xh);
            acc[i] += d * (s - xsum8);
        }
    }
#elif defined(WTYPE_Q8_0)
    /* unit = half a block: 16 int8 quants + the block's scale, 16 values of x. */
    const uint nb = pc.K / 32u;
    const uint nu = nb * 2u;
    const uint qbase = pc.w_off >> 4;
    const uint dbase = pc.d_off >> 1;
    for (uint u = tid; u < nu; u += WG) {
        const vec4 xa = x4[u * 4u + 0u], xb = x4[u * 4u + 1u], xc = x4[u * 4u + 2u], xd = x4[u * 4u + 3u];
        for (uint i = 0u; i < ROWS; i++) {
            const uint r = min(row0 + i, last);
            const uvec4 q = wq[qbase + r * nu + u];
            const float d = HALF_AT(wd, dbase + r * nb + (u >> 1));
            acc[i] += d * (dot(q8_word(q.x), xa) + dot(q8_word(q.y), xb) + dot(q8_word(q.z), xc) +
                           dot(q8_word(q.w), xd));
        }
    }
#elif defined(WTYPE_F16)
    if ((pc.K & 7u) == 0u && (pc.w_off & 15u) == 0u) {
        /* unit = 8 halves (16 bytes). */
        const uint nu = pc.K / 8u;
        const uint base = pc.w_off >> 4;
        for (uint u = tid; u < nu; u += WG) {
            const vec4 xa = x4[u * 2u], xb = x4[u * 2u + 1u];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                const uvec4 h = w4[base + r * nu + u];
                acc[i] += dot(vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y)), xa) +
                          dot(vec4(unpackHalf2x16(h.z), unpackHalf2x16(h.w)), xb);
            }
        }
    } else {
        /* any K: one half at a time (rows need not start on a word). */
        const uint base = pc.w_off >> 1;
        for (uint k = tid; k < pc.K; k += WG) {
            const float xk = x1[k];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                acc[i] += HALF_AT(w1, base + r * pc.K + k) * xk;
            }
        }
    }
#else /* WTYPE_F32 */
    if ((pc.K & 3u) == 0u && (pc.w_off & 15u) == 0u) {
        /* unit = 4 floats (16 bytes). */
        const uint nu = pc.K / 4u;
        const uint base = pc.w_off >> 4;
        for (uint u = tid; u < nu; u += WG) {
            const vec4 xa = x4[u];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                acc[i] += dot(w4[base + r * nu + u], xa);
            }
        }
    } else {
        const uint base = pc.w_off >> 2;
        for (uint k = tid; k < pc.K; k += WG) {
            const float xk = x1[k];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                acc[i] += w1[base + r * pc.K + k] * xk;
            }
        }
    }
#endif

#ifdef USE_SUBGROUP
    for (uint i = 0u; i < ROWS; i++)
        acc[i] = subgroupAdd(acc[i]);
    if (subgroupElect()) {
        for (uint i = 0u; i < ROWS; i++)
            red[gl_SubgroupID * ROWS + i] = acc[i];
    }
    barrier();
    if (tid < ROWS && row0 + tid < pc.M) {
        float s = 0.0;
        for (uint j = 0u; j < gl_NumSubgroups; j++)
            s += red[j * ROWS + tid];
        y[pc.y_off + row0 + tid] = s;
    }
#else
    for (uint i = 0u; i < ROWS; i++)
        red[i * WG + tid] = acc[i];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) {
            for (uint i = 0u; i < ROWS; i++)
                red[i * WG + tid] += red[i * WG + tid + s];
        }
        barrier();
    }
    if (tid < ROWS && row0 + tid < pc.M)
        y[pc.y_off + row0 + tid] = red[tid * WG];
#endif
}

#version 450
/* y[c][row] = sum_k W[row][k] * x[c][k] for c < NCOLS: the decode matrix-vector product (op_matmul with
 * n_cols == 1) and its multi-column form for small batches (a few sequences or a short prompt) on GPUs.
 *
 * A workgroup of WG invocations computes ROWS consecutive rows for NCOLS columns. Every invocation walks
 * the row in 16-byte units of the weight (one uvec4/vec4 load per row per unit: a Q4_0 block, half a Q8_0
 * block, 8 halves, 4 floats), strided by WG, so each weight byte is read exactly once (for all NCOLS
 * columns) and consecutive invocations read consecutive 16-byte units. The x values of a unit are loaded
 * once per column and reused for the ROWS rows. The ROWS * NCOLS partial sums are then reduced across the
 * workgroup: subgroupAdd and a short pass through shared memory (USE_SUBGROUP), or a shared-memory tree
 * (WG must be a power of two).
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
layout(constant_id = 2) const uint NCOLS = 1;

layout(push_constant) uniform Push {
    uint K;        /* row length in elements */
    uint M;        /* rows in this dispatch */
    uint w_off;    /* bytes from the start of binding 0 to the first row of the dispatch */
    uint d_off;    /* bytes from the start of the scales binding to the first row (quantized) */
    uint y_off;    /* floats from the start of the y binding to the output of the first row */
    uint x_stride; /* floats between two columns of x (NCOLS > 1; a multiple of 4 when K is) */
    uint y_stride; /* floats between two columns of y (NCOLS > 1) */
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

const uint NACC = ROWS * NCOLS;   /* accumulator i * NCOLS + c: row i, column c */
shared float red[WG * NACC];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint row0 = gl_WorkGroupID.x * ROWS;
    const uint last = pc.M - 1u;

    float acc[NACC];
    for (uint i = 0u; i < NACC; i++)
        acc[i] = 0.0;

#if defined(WTYPE_Q4_0)
    /* unit = one block: 16 bytes of nibbles + one scale, 32 values of x per column. The quants of the ROWS
     * rows are loaded first, then each column's x in turn (few registers live at a time). */
    const uint nb = pc.K / 32u;
    const uint qbase = pc.w_off >> 4;
    const uint dbase = pc.d_off >> 1;
    const uint xs4 = pc.x_stride >> 2;
    for (uint b = tid; b < nb; b += WG) {
        uvec4 q[ROWS];
        float d[ROWS];
        for (uint i = 0u; i < ROWS; i++) {
            const uint r = min(row0 + i, last);
            q[i] = wq[qbase + r * nb + b];
            d[i] = HALF_AT(wd, dbase + r * nb + b);
        }
        for (uint c = 0u; c < NCOLS; c++) {
            const uint xi = c * xs4 + b * 8u;
            const vec4 xa = x4[xi + 0u], xb = x4[xi + 1u], xc = x4[xi + 2u], xd = x4[xi + 3u];
            const vec4 xe = x4[xi + 4u], xf = x4[xi + 5u], xg = x4[xi + 6u], xh = x4[xi + 7u];
            /* sum((q - 8) * x) = sum(q * x) - 8 * sum(x) */
            const float xsum8 = 8.0 * dot((xa + xb) + (xc + xd) + (xe + xf) + (xg + xh), vec4(1.0));
            for (uint i = 0u; i < ROWS; i++) {
                const float s = dot(q4_lo(q[i].x), xa) + dot(q4_lo(q[i].y), xb) + dot(q4_lo(q[i].z), xc) +
                                dot(q4_lo(q[i].w), xd) + dot(q4_hi(q[i].x), xe) + dot(q4_hi(q[i].y), xf) +
                                dot(q4_hi(q[i].z), xg) + dot(q4_hi(q[i].w), xh);
                acc[i * NCOLS + c] += d[i] * (s - xsum8);
            }
        }
    }
#elif defined(WTYPE_Q8_0)
    /* unit = half a block: 16 int8 quants + the block's scale, 16 values of x per column. */
    const uint nb = pc.K / 32u;
    const uint nu = nb * 2u;
    const uint qbase = pc.w_off >> 4;
    const uint dbase = pc.d_off >> 1;
    const uint xs4 = pc.x_stride >> 2;
    for (uint u = tid; u < nu; u += WG) {
        uvec4 q[ROWS];
        float d[ROWS];
        for (uint i = 0u; i < ROWS; i++) {
            const uint r = min(row0 + i, last);
            q[i] = wq[qbase + r * nu + u];
            d[i] = HALF_AT(wd, dbase + r * nb + (u >> 1));
        }
        for (uint c = 0u; c < NCOLS; c++) {
            const uint xi = c * xs4 + u * 4u;
            const vec4 xa = x4[xi + 0u], xb = x4[xi + 1u], xc = x4[xi + 2u], xd = x4[xi + 3u];
            for (uint i = 0u; i < ROWS; i++)
                acc[i * NCOLS + c] += d[i] * (dot(q8_word(q[i].x), xa) + dot(q8_word(q[i].y), xb) +
                                              dot(q8_word(q[i].z), xc) + dot(q8_word(q[i].w), xd));
        }
    }
#elif defined(WTYPE_F16)
    if ((pc.K & 7u) == 0u && (pc.w_off & 15u) == 0u) {
        /* unit = 8 halves (16 bytes). */
        const uint nu = pc.K / 8u;
        const uint base = pc.w_off >> 4;
        const uint xs4 = pc.x_stride >> 2;
        for (uint u = tid; u < nu; u += WG) {
            vec4 xv[2u * NCOLS];
            for (uint c = 0u; c < NCOLS; c++) {
                xv[c * 2u] = x4[c * xs4 + u * 2u];
                xv[c * 2u + 1u] = x4[c * xs4 + u * 2u + 1u];
            }
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                const uvec4 h = w4[base + r * nu + u];
                const vec4 a = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
                const vec4 b = vec4(unpackHalf2x16(h.z), unpackHalf2x16(h.w));
                for (uint c = 0u; c < NCOLS; c++)
                    acc[i * NCOLS + c] += dot(a, xv[c * 2u]) + dot(b, xv[c * 2u + 1u]);
            }
        }
    } else {
        /* any K: one half at a time (rows need not start on a word). */
        const uint base = pc.w_off >> 1;
        for (uint k = tid; k < pc.K; k += WG) {
            float xk[NCOLS];
            for (uint c = 0u; c < NCOLS; c++)
                xk[c] = x1[c * pc.x_stride + k];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                const float w = HALF_AT(w1, base + r * pc.K + k);
                for (uint c = 0u; c < NCOLS; c++)
                    acc[i * NCOLS + c] += w * xk[c];
            }
        }
    }
#else /* WTYPE_F32 */
    if ((pc.K & 3u) == 0u && (pc.w_off & 15u) == 0u) {
        /* unit = 4 floats (16 bytes). */
        const uint nu = pc.K / 4u;
        const uint base = pc.w_off >> 4;
        const uint xs4 = pc.x_stride >> 2;
        for (uint u = tid; u < nu; u += WG) {
            vec4 xv[NCOLS];
            for (uint c = 0u; c < NCOLS; c++)
                xv[c] = x4[c * xs4 + u];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                const vec4 w = w4[base + r * nu + u];
                for (uint c = 0u; c < NCOLS; c++)
                    acc[i * NCOLS + c] += dot(w, xv[c]);
            }
        }
    } else {
        const uint base = pc.w_off >> 2;
        for (uint k = tid; k < pc.K; k += WG) {
            float xk[NCOLS];
            for (uint c = 0u; c < NCOLS; c++)
                xk[c] = x1[c * pc.x_stride + k];
            for (uint i = 0u; i < ROWS; i++) {
                const uint r = min(row0 + i, last);
                const float w = w1[base + r * pc.K + k];
                for (uint c = 0u; c < NCOLS; c++)
                    acc[i * NCOLS + c] += w * xk[c];
            }
        }
    }
#endif

    /* Reduce the NACC sums across the workgroup; output o = i * NCOLS + c goes to y[c][row0 + i]. */
#ifdef USE_SUBGROUP
    for (uint i = 0u; i < NACC; i++)
        acc[i] = subgroupAdd(acc[i]);
    if (subgroupElect()) {
        for (uint i = 0u; i < NACC; i++)
            red[gl_SubgroupID * NACC + i] = acc[i];
    }
    barrier();
    for (uint o = tid; o < NACC; o += WG) {
        const uint row = row0 + o / NCOLS;
        if (row < pc.M) {
            float s = 0.0;
            for (uint j = 0u; j < gl_NumSubgroups; j++)
                s += red[j * NACC + o];
            y[pc.y_off + (o % NCOLS) * pc.y_stride + row] = s;
        }
    }
#else
    for (uint i = 0u; i < NACC; i++)
        red[i * WG + tid] = acc[i];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) {
            for (uint i = 0u; i < NACC; i++)
                red[i * WG + tid] += red[i * WG + tid + s];
        }
        barrier();
    }
    for (uint o = tid; o < NACC; o += WG) {
        const uint row = row0 + o / NCOLS;
        if (row < pc.M)
            y[pc.y_off + (o % NCOLS) * pc.y_stride + row] = red[o * WG];
    }
#endif
}

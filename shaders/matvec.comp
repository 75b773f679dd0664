#version 450
/* y[c][row] = sum_k W[row][k] * x[c][k] for c < NCOLS: the decode matrix-vector product (vkl_op_matmul with
 * n_cols == 1) and its multi-column form for small batches (a few sequences or a short prompt) on GPUs.
 *
 * A workgroup of WG invocations computes ROWS consecutive rows for NCOLS columns. Every invocation walks
 * the row in units of the weight (quantized: dequant_pieces.glsl's pieces, one quant word and 2 or 4 vec4s of x
 * each, or for the types without pieces dequant.glsl's units; 8 halves; 4 floats), strided by WG,
 * so each weight byte is read exactly once (for all NCOLS columns) and consecutive invocations read
 * consecutive pieces of the weight and of x. The x values of a unit are loaded
 * once per column and reused for the ROWS rows. The ROWS * NCOLS partial sums are then reduced across the
 * workgroup: subgroupAdd and a short pass through shared memory (USE_SUBGROUP), or a shared-memory tree
 * (WG must be a power of two).
 *
 * FUSED variants also do, chosen by specialization constants, what a token would otherwise run as separate
 * dispatches around the matvec (each removes a dispatch and a barrier from the decode graph):
 *   FUSE_NORM: x is RMS-normalised first and scaled by the norm weight g (binding after y): the matvec of
 *     vkl_op_rmsnorm's output. Each invocation multiplies the x values it loads by g and sums their squares;
 *     the sum is reduced with the dot products (the workgroup covers all of K), and the row results are
 *     scaled by 1/sqrt(mean(x^2) + eps) at the end: sum(w * x * g * s) = s * sum(w * x * g).
 *   FUSE_GLU: the weight holds 2M rows, [gate; up]; the workgroup computes gate row r and up row M + r
 *     together and writes y[r] = act(gate) * up: SiLU (vkl_op_silu_mul on the stacked matvec's output), or with
 *     GLU_GELU GELU-tanh (vkl_op_gelu_mul: Gemma's GeGLU).
 *   FUSE_ACC: y[r] += result (the residual add).
 *   ROPE_KV (variant _rope): the weight's rows are rows row_base.. of the stacked Q;K;V projection and column c
 *     is the token at positions[c]: interleaved rope turns each pair of rows (2i, 2i+1) of a head, Q rows go to
 *     y rotated, K rows (rotated) and V rows go into the f16 caches at row positions[c] and not to y (matvec,
 *     then vkl_op_rope_kv_store, in one dispatch). ROWS is even and so is the first row of every workgroup, so both
 *     rows of a pair are this workgroup's: the even row's invocation writes the cache word (a packed half pair).
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl), USE_SUBGROUP, FUSED, ROPE_KV (with FUSED).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = x, 3 = y (FUSED: 4 = g);
 *           F32/F16/BF16: 0 = data, 1 = x, 2 = y (FUSED: 3 = g);
 *           ROPE_KV: then the K cache, the V cache, positions, the rope frequency divisors;
 *           IQ grid types: then the grid (dequant.glsl).
 * The host may bind the weight (and y) at an offset aligned down from the first row of the dispatch;
 * w_off/d_off/y_off say where that row starts inside the bindings. */

#extension GL_GOOGLE_include_directive : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

/* The IQ grid types' grid (dequant.glsl): after the bindings below */
#if defined(ROPE_KV)
#define DQ_GRID_BINDING 9
#elif defined(FUSED)
#define DQ_GRID_BINDING 5
#else
#define DQ_GRID_BINDING 4
#endif
#include "dequant.glsl"
#include "dequant_pieces.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint ROWS = 2;
layout(constant_id = 2) const uint NCOLS = 1;

layout(push_constant) uniform Push {
    uint K;        /* row length in elements */
    uint M;        /* rows in this dispatch */
    uint w_off;    /* bytes from the start of binding 0 to the first row of the dispatch */
    uint d_off;    /* bytes from the start of the meta binding to the first row (quantized) */
    uint y_off;    /* floats from the start of the y binding to the output of the first row */
    uint x_stride; /* floats between two columns of x (NCOLS > 1; a multiple of 4 when K is) */
    uint y_stride; /* floats between two columns of y (NCOLS > 1) */
#ifdef FUSED
    uint g_off;    /* floats from the start of the g binding to g[0] (a multiple of 4) */
    float eps;     /* FUSE_NORM */
#endif
#ifdef ROPE_KV
    uint row_base;   /* Q;K;V row of the dispatch's first row (even) */
    uint q_rows;     /* n_heads * head_dim */
    uint kv_rows;    /* n_kv_heads * head_dim */
    uint half_head;  /* head_dim / 2 */
    uint half_rot;   /* n_rot / 2: rotated pairs per head */
    float freq_exp;  /* pair i turns at pos * 2^(i * freq_exp) (as rope.comp) */
    uint has_ff;     /* divide by freq_factors[f_off + i] */
    uint f_off;
    uint n_ctx;      /* cache rows; a position beyond is not stored (guards memory only) */
    uint kc_off;     /* words */
    uint vc_off;
    uint p_off;      /* uints */
#endif
} pc;

#ifdef FUSED
layout(constant_id = 3) const uint FUSE_NORM = 0;
layout(constant_id = 4) const uint FUSE_GLU = 0;
layout(constant_id = 5) const uint FUSE_ACC = 0;
layout(constant_id = 6) const uint GLU_GELU = 0;
#define Y_ACCESS
#else
const uint FUSE_NORM = 0, FUSE_GLU = 0, FUSE_ACC = 0, GLU_GELU = 0;
#define Y_ACCESS writeonly
#endif

#ifdef WQUANT   /* bindings 0 (quants) and 1 (meta): dequant.glsl */
layout(set = 0, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(set = 0, binding = 3) Y_ACCESS buffer Y { float y[]; };
#ifdef FUSED
layout(set = 0, binding = 4) readonly buffer G4 { vec4 g4[]; };
layout(set = 0, binding = 4) readonly buffer G1 { float g1[]; };
#endif
#define ROPE_KV_BINDING 5
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
layout(set = 0, binding = 2) Y_ACCESS buffer Y { float y[]; };
#ifdef FUSED
layout(set = 0, binding = 3) readonly buffer G4 { vec4 g4[]; };
layout(set = 0, binding = 3) readonly buffer G1 { float g1[]; };
#endif
#define ROPE_KV_BINDING 4
#endif

#ifdef ROPE_KV
layout(set = 0, binding = ROPE_KV_BINDING) writeonly buffer KC { uint kc[]; };
layout(set = 0, binding = ROPE_KV_BINDING + 1) writeonly buffer VC { uint vc[]; };
layout(set = 0, binding = ROPE_KV_BINDING + 2) readonly buffer P { uint positions[]; };
layout(set = 0, binding = ROPE_KV_BINDING + 3) readonly buffer F { float freq_factors[]; };   /* read if has_ff */

#include "rope_pair.glsl"

/* Dispatch row `row` of column c has the final value v, the other row of its pair vp. A Q row: v becomes
 * its rotated value and true is returned (write it to y). K and V rows: the even row stores the pair into
 * its cache; false (nothing for y). */
bool rope_kv_epilogue(uint row, uint c, inout float v, float vp)
{
    const uint gr = pc.row_base + row;
    const bool odd = (gr & 1u) != 0u;
    const vec2 pair = odd ? vec2(vp, v) : vec2(v, vp);
    const uint pos = positions[pc.p_off + c];
    if (gr < pc.q_rows) {
        const vec2 r = rope_pair(pair, (gr >> 1) % pc.half_head, pos);
        v = odd ? r.y : r.x;
        return true;
    }
    if (odd || pos >= pc.n_ctx)
        return false;
    const uint kv = gr - pc.q_rows;   /* K row, or kv_rows + the V row */
    const uint word = pos * (pc.kv_rows >> 1);   /* the cache row's first word */
    if (kv < pc.kv_rows)
        kc[pc.kc_off + word + (kv >> 1)] = packHalf2x16(rope_pair(pair, (kv >> 1) % pc.half_head, pos));
    else
        vc[pc.vc_off + word + ((kv - pc.kv_rows) >> 1)] = packHalf2x16(pair);
    return false;
}
#endif

/* Accumulator i * NCOLS + c: weight row i of the workgroup (for FUSE_GLU: rows ROWS.. are the up rows),
 * column c. FUSE_NORM adds one sum of squares per column after them. */
const uint WROWS = ROWS * (1u + FUSE_GLU);
const uint NACC = WROWS * NCOLS;
const uint NRED = NACC + FUSE_NORM * NCOLS;
shared float red[WG * NRED];

uint row0;   /* first output row of the workgroup */

/* Weight row of accumulator row i, clamped to the last row (the extra rows are computed and dropped). */
uint weight_row(uint i)
{
    const uint last = pc.M - 1u;
    return i < ROWS ? min(row0 + i, last) : pc.M + min(row0 + i - ROWS, last);
}

float ss[NCOLS];   /* FUSE_NORM: this invocation's share of sum(x^2), per column */

/* FUSE_NORM: x values at vec4 index u of column c: adds their squares to ss[c] and returns them times g. */
vec4 norm_x4(vec4 v, uint c, uint u)
{
#ifdef FUSED
    if (FUSE_NORM != 0u) {
        ss[c] += dot(v, v);
        return v * g4[(pc.g_off >> 2) + u];
    }
#endif
    return v;
}

float norm_x1(float v, uint c, uint k)
{
#ifdef FUSED
    if (FUSE_NORM != 0u) {
        ss[c] = fma(v, v, ss[c]);
        return v * g1[pc.g_off + k];
    }
#endif
    return v;
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    row0 = gl_WorkGroupID.x * ROWS;

    float acc[NACC];
    for (uint i = 0u; i < NACC; i++)
        acc[i] = 0.0;
    for (uint c = 0u; c < NCOLS; c++)
        ss[c] = 0.0;

#if defined(WQUANT) && defined(DQ_PIECES)
    /* Types with pieces (dequant_pieces.glsl: every quantized type of the kernels but the IQ grid types): piece t
     * of a row is piece t % DQ_PIECES of block t / DQ_PIECES, one quant word (a 32-element type's quarter, a
     * 256-element type's word with its sub-block scales) and DQ_PV vec4s of x, so consecutive invocations read
     * consecutive quant words and, for each of the DQ_PV x loads, consecutive vec4s of x (a unit per invocation
     * would put them 64-256 bytes apart: many cache-line passes per subgroup load on a GPU). The invocations of
     * a block read the same meta words. */
    const uint nb = pc.K / DQ_QK;
    const uint qwbase = pc.w_off >> 2;
    const uint xs4 = pc.x_stride >> 2;
    for (uint t = tid; t < nb * DQ_PIECES; t += WG) {
        const uint b = t / DQ_PIECES, p = t % DQ_PIECES;
        for (uint c = 0u; c < NCOLS; c++) {
            vec4 xv[DQ_PV];
            float xs[DQ_PV];
            for (uint i = 0u; i < DQ_PV; i++) {
                const uint gi = (b * DQ_QK + dq_piece_pos(p, i)) >> 2;
                xv[i] = norm_x4(x4[c * xs4 + gi], c, gi);
                xs[i] = dot(xv[i], vec4(1.0));
            }
            for (uint i = 0u; i < WROWS; i++) {
                const uint blk = weight_row(i) * nb + b;
                vec4 q[DQ_PV];
                vec2 ab[DQ_PV];
                dq_piece(dq_meta(pc.d_off, blk), qwbase + blk * DQ_QV * 4u, p, q, ab);
                float s = 0.0;
                for (uint v = 0u; v < DQ_PV; v++)
                    s += ab[v].x * dot(q[v], xv[v]) + ab[v].y * xs[v];
                acc[i * NCOLS + c] += s;
            }
        }
    }
#elif defined(WQUANT)
    /* The types without pieces through dequant.glsl's units: unit t of a row is unit t % DQ_UNITS of block t / DQ_UNITS.
     * The x values of the unit's runs are loaded once per column, then each row's unit is dequantized. */
    const uint nb = pc.K / DQ_QK;
    const uint nu = nb * DQ_UNITS;
    const uint qbase = pc.w_off >> 4;
    const uint xs4 = pc.x_stride >> 2;
    for (uint t = tid; t < nu; t += WG) {
        const uint b = t / DQ_UNITS, u = t % DQ_UNITS;
        for (uint c = 0u; c < NCOLS; c++) {
            vec4 xv[DQ_RUNS * 4u];
            float xs[DQ_RUNS];
            for (uint r = 0u; r < DQ_RUNS; r++) {
                const uint gi = (b * DQ_QK + dq_run_pos(u, r)) >> 2;
                for (uint j = 0u; j < 4u; j++)
                    xv[4u * r + j] = norm_x4(x4[c * xs4 + gi + j], c, gi + j);
                xs[r] = dot((xv[4u * r] + xv[4u * r + 1u]) + (xv[4u * r + 2u] + xv[4u * r + 3u]), vec4(1.0));
            }
            for (uint i = 0u; i < WROWS; i++) {
                const uint blk = weight_row(i) * nb + b;
                vec4 q[DQ_RUNS * 4u];
                vec2 ab[DQ_RUNS];
                dq_unit(dq_meta(pc.d_off, blk), qbase + blk * DQ_QV, u, q, ab);
                float s = 0.0;
                for (uint r = 0u; r < DQ_RUNS; r++)
                    s += ab[r].x * ((dot(q[4u * r], xv[4u * r]) + dot(q[4u * r + 1u], xv[4u * r + 1u])) +
                                    (dot(q[4u * r + 2u], xv[4u * r + 2u]) + dot(q[4u * r + 3u], xv[4u * r + 3u]))) +
                         ab[r].y * xs[r];
                acc[i * NCOLS + c] += s;
            }
        }
    }
#elif defined(W16)
    if ((pc.K & 7u) == 0u && (pc.w_off & 15u) == 0u) {
        /* unit = 8 halves (16 bytes). */
        const uint nu = pc.K / 8u;
        const uint base = pc.w_off >> 4;
        const uint xs4 = pc.x_stride >> 2;
        for (uint u = tid; u < nu; u += WG) {
            vec4 xv[2u * NCOLS];
            for (uint c = 0u; c < NCOLS; c++) {
                xv[c * 2u] = norm_x4(x4[c * xs4 + u * 2u], c, u * 2u);
                xv[c * 2u + 1u] = norm_x4(x4[c * xs4 + u * 2u + 1u], c, u * 2u + 1u);
            }
            for (uint i = 0u; i < WROWS; i++) {
                const uint r = weight_row(i);
                const uvec4 h = w4[base + r * nu + u];
                const vec4 a = vec4(w16_pair(h.x), w16_pair(h.y));
                const vec4 b = vec4(w16_pair(h.z), w16_pair(h.w));
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
                xk[c] = norm_x1(x1[c * pc.x_stride + k], c, k);
            for (uint i = 0u; i < WROWS; i++) {
                const uint r = weight_row(i);
                const float w = W16_AT(w1, base + r * pc.K + k);
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
                xv[c] = norm_x4(x4[c * xs4 + u], c, u);
            for (uint i = 0u; i < WROWS; i++) {
                const uint r = weight_row(i);
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
                xk[c] = norm_x1(x1[c * pc.x_stride + k], c, k);
            for (uint i = 0u; i < WROWS; i++) {
                const uint r = weight_row(i);
                const float w = w1[base + r * pc.K + k];
                for (uint c = 0u; c < NCOLS; c++)
                    acc[i * NCOLS + c] += w * xk[c];
            }
        }
    }
#endif

    /* Reduce the NRED sums across the workgroup into red[0 .. NRED), then write the outputs. */
#ifdef USE_SUBGROUP
    for (uint i = 0u; i < NACC; i++)
        acc[i] = subgroupAdd(acc[i]);
    for (uint c = 0u; c < FUSE_NORM * NCOLS; c++)
        ss[c] = subgroupAdd(ss[c]);
    if (subgroupElect()) {
        for (uint i = 0u; i < NACC; i++)
            red[gl_SubgroupID * NRED + i] = acc[i];
        for (uint c = 0u; c < FUSE_NORM * NCOLS; c++)
            red[gl_SubgroupID * NRED + NACC + c] = ss[c];
    }
    barrier();
    for (uint i = tid; i < NRED; i += WG) {
        float s = red[i];
        for (uint j = 1u; j < gl_NumSubgroups; j++)
            s += red[j * NRED + i];
        red[i] = s;   /* only invocation tid reads and writes entry i: no race */
    }
#else
    for (uint i = 0u; i < NACC; i++)
        red[i * WG + tid] = acc[i];
    for (uint c = 0u; c < FUSE_NORM * NCOLS; c++)
        red[(NACC + c) * WG + tid] = ss[c];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) {
            for (uint i = 0u; i < NRED; i++)
                red[i * WG + tid] += red[i * WG + tid + s];
        }
        barrier();
    }
    if (tid == 0u) {
        for (uint i = 1u; i < NRED; i++)
            red[i] = red[i * WG];
    }
#endif
    barrier();
    /* Output o = i * NCOLS + c goes to y[c][row0 + i]. */
    for (uint o = tid; o < ROWS * NCOLS; o += WG) {
        const uint row = row0 + o / NCOLS, c = o % NCOLS;
        if (row >= pc.M)
            continue;
        float v = red[o];
        float scale = 1.0;
#ifdef FUSED
        if (FUSE_NORM != 0u)
            scale = inversesqrt(red[NACC + c] / float(pc.K) + pc.eps);
#endif
        v *= scale;
        if (FUSE_GLU != 0u)
            v = (GLU_GELU != 0u ? act_gelu_tanh(v) : act_silu(v)) * (red[ROWS * NCOLS + o] * scale);
#ifdef ROPE_KV
        if (!rope_kv_epilogue(row, c, v, red[((o / NCOLS) ^ 1u) * NCOLS + c] * scale))
            continue;
#endif
        const uint yi = pc.y_off + c * pc.y_stride + row;
#ifdef FUSED
        if (FUSE_ACC != 0u)
            v += y[yi];
#endif
        y[yi] = v;
    }
}

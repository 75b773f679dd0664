#version 450
/* Y[col][row] = sum_k W[row][k] * X[col][k]: the prefill matrix product (vkl_op_matmul with n_cols > 1).
 *
 * A workgroup computes a BM x BN tile (rows x columns) of Y; BM and BN are specialization constants that
 * host/ops/ops_matmul.c sizes from the device's shared memory (128 x 128, 128 x 64, 64 x 64 or 64 x 32;
 * VKLLM_MATMUL_TILE).
 * K is walked in steps of BK = 32: the workgroup dequantizes a BM x 32 slice of W into As[k][m] and copies
 * the matching BN x 32 slice of X into Bs[k][n] (shared memory), then every invocation accumulates an
 * 8 x 8 micro-tile from it in registers: rows 4tx..4tx+3 and BM/2+4tx.., columns 4ty..4ty+3 and BN/2+4ty..,
 * so one k costs four vec4 shared loads for 64 FMAs (neighbouring invocations read neighbouring vec4s, see
 * swz: no bank conflicts; invocations with the same tx read the same vec4: a broadcast).
 * Quantized: a step is two runs of 16 elements of dequant.glsl's units, in the units' order (k is not
 * contiguous inside a step for the K-quants; X is gathered in the same order, step_k); each load item
 * dequantizes one unit and keeps the step's runs of it.
 * Out-of-range rows/columns are clamped on load and skipped on store; for F32/F16 the last K step is
 * zero-padded, so any K works (quantized types need whole blocks).
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = X, 3 = Y (IQ grid types: 4 = grid); F32/F16/BF16:
 * 0 = data, 1 = X, 2 = Y.
 * Spec constants: 0 = WG (must be (BM/8)*(BN/8)), 1 = BM, 2 = BN (powers of two, at least 32). */
#extension GL_GOOGLE_include_directive : require
#define DQ_GRID_BINDING 4   /* the IQ grid types' grid (dequant.glsl) */
#include "dequant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 64;

const uint BK = 32u;

layout(push_constant) uniform Push {
    uint K;         /* row length */
    uint M;         /* rows in this dispatch */
    uint N;         /* columns in this dispatch */
    uint w_off;     /* bytes from the start of binding 0 to the first row of the dispatch */
    uint d_off;     /* bytes from the start of the meta binding to the first row (quantized) */
    uint x_off;     /* floats from the start of the X binding to the first column */
    uint y_off;     /* floats from the start of the Y binding to (first column, first row) */
    uint y_stride;  /* floats between two columns of Y (the full M of the op) */
} pc;

#ifdef WQUANT   /* bindings 0 (quants) and 1 (meta): dequant.glsl */
layout(set = 0, binding = 2) readonly buffer XB { float xb[]; };
layout(set = 0, binding = 3) writeonly buffer YB { float yb[]; };
#else
#ifdef WTYPE_F32
layout(set = 0, binding = 0) readonly buffer W1 { float w1[]; };
#else
layout(set = 0, binding = 0) readonly buffer W1 { uint w1[]; };
#endif
layout(set = 0, binding = 1) readonly buffer XB { float xb[]; };
layout(set = 0, binding = 2) writeonly buffer YB { float yb[]; };
#endif

/* The shared tiles, BM (BN) floats per k, unpadded: the host sizes BM, BN by them (128 * (BM + BN) bytes). Vec4
 * number v of row k is stored at v ^ swz(k), so that the element-wise stores of the load phase (4 consecutive k
 * of 8 consecutive rows per 32 invocations) hit 32 different banks, while the vec4 reads of the product (one
 * k, consecutive v) stay a permutation of consecutive vec4s. */
const uint SA4 = BM / 4u;
const uint SB4 = BN / 4u;
shared vec4 As[BK * SA4];
shared vec4 Bs[BK * SB4];
uint swz(uint k) { return (k & 3u) << 1; }

/* Element of the row at index kk of the K step starting at k0. Quantized: a step is runs gr = k0 / 16 and gr + 1
 * of the row's sequence of runs (run gr % DQ_RUNS of unit gr / DQ_RUNS), which need not be contiguous in K. */
uint step_k(uint k0, uint kk)
{
#ifdef WQUANT
    const uint gr = (k0 + kk) / 16u, gu = gr / DQ_RUNS;
    return gu / DQ_UNITS * DQ_QK + dq_run_pos(gu % DQ_UNITS, gr % DQ_RUNS) + kk % 16u;
#else
    return k0 + kk;
#endif
}

/* Element (k, i) of a shared tile of S4 vec4s per k. */
#define TILE_SET(T, S4, k, i, v) T[(k) * (S4) + (((i) >> 2) ^ swz(k))][(i) & 3u] = (v)

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint TX = BM / 8u, TY = BN / 8u;
    const uint tx = tid % TX;
    const uint ty = tid / TX;
    const uint m0 = gl_WorkGroupID.x * BM;
    const uint n0 = gl_WorkGroupID.y * BN;
    const uint last_row = pc.M - 1u;
    const uint last_col = pc.N - 1u;

    vec4 acc[16];   /* acc[4i + j][e]: row half i >> 1, column half i & 1 (see the store) */
    for (uint i = 0u; i < 16u; i++)
        acc[i] = vec4(0.0);

#ifdef WQUANT
    const uint nb = pc.K / DQ_QK;
    const uint qbase = pc.w_off >> 4;
    /* units per step and runs kept of each: two units of one run, or the runs r0, r0 + 1 of one unit */
    const uint US = DQ_RUNS == 1u ? 2u : 1u;
    const uint RK = DQ_RUNS == 1u ? 1u : 2u;
#elif defined(W16)
    const uint base = pc.w_off >> 1;
#else
    const uint base = pc.w_off >> 2;
#endif

    for (uint k0 = 0u; k0 < pc.K; k0 += BK) {
        /* ---- W slice: BM rows x 32 values, dequantized into As[k][m] ---- */
#ifdef WQUANT
        for (uint e = tid; e < BM * US; e += WG) {
            const uint m = e / US, s = e % US;
            const uint gr = k0 / 16u + s;     /* first run of the item, in the row's sequence of runs */
            const uint gu = gr / DQ_RUNS, r0 = gr % DQ_RUNS;
            const uint blk = min(m0 + m, last_row) * nb + gu / DQ_UNITS;
            vec4 q[DQ_RUNS * 4u];
            vec2 ab[DQ_RUNS];
            dq_unit(dq_meta(pc.d_off, blk), qbase + blk * DQ_QV, gu % DQ_UNITS, q, ab);
            for (uint r = 0u; r < RK; r++) {
                const vec2 rab = ab[r0 + r];
                for (uint j = 0u; j < 4u; j++) {
                    const vec4 v = q[4u * (r0 + r) + j] * rab.x + rab.y;
                    const uint k = (s + r) * 16u + 4u * j;
                    TILE_SET(As, SA4, k + 0u, m, v.x);
                    TILE_SET(As, SA4, k + 1u, m, v.y);
                    TILE_SET(As, SA4, k + 2u, m, v.z);
                    TILE_SET(As, SA4, k + 3u, m, v.w);
                }
            }
        }
#else
        /* item u: k = 4 * (u / (4 * BM)) + u % 4 of row (u / 4) % BM (four consecutive k per row and 8 rows
         * per 32 invocations: conflict-free stores) */
        for (uint u = tid; u < BM * BK; u += WG) {
            const uint m = (u >> 2) % BM, kk = (u / (4u * BM)) * 4u + (u & 3u);
            const uint k = k0 + kk;
            const uint r = min(m0 + m, last_row);
            float v = 0.0;
            if (k < pc.K) {
#ifdef W16
                v = W16_AT(w1, base + r * pc.K + k);
#else
                v = w1[base + r * pc.K + k];
#endif
            }
            TILE_SET(As, SA4, kk, m, v);
        }
#endif
        /* ---- X slice: BN columns x 32 values into Bs[k][n] (same item order as the F32 W slice) ---- */
        for (uint u = tid; u < BN * BK; u += WG) {
            const uint n = (u >> 2) % BN, kk = (u / (4u * BN)) * 4u + (u & 3u);
            const uint k = step_k(k0, kk);
            const uint c = min(n0 + n, last_col);
            TILE_SET(Bs, SB4, kk, n, k < pc.K ? xb[pc.x_off + c * pc.K + k] : 0.0);
        }
        barrier();

        for (uint kk = 0u; kk < BK; kk++) {
            const uint z = swz(kk);
            const vec4 a0 = As[kk * SA4 + (tx ^ z)], a1 = As[kk * SA4 + ((TX + tx) ^ z)];
            const vec4 b0 = Bs[kk * SB4 + (ty ^ z)], b1 = Bs[kk * SB4 + ((TY + ty) ^ z)];
            for (uint j = 0u; j < 4u; j++) {
                acc[j] = fma(a0, vec4(b0[j]), acc[j]);
                acc[4u + j] = fma(a0, vec4(b1[j]), acc[4u + j]);
                acc[8u + j] = fma(a1, vec4(b0[j]), acc[8u + j]);
                acc[12u + j] = fma(a1, vec4(b1[j]), acc[12u + j]);
            }
        }
        barrier();
    }

    /* acc[4i + j][e]: row (i >> 1) * BM/2 + 4tx + e, column (i & 1) * BN/2 + 4ty + j */
    for (uint i = 0u; i < 4u; i++) {
        for (uint j = 0u; j < 4u; j++) {
            const uint col = n0 + (i & 1u) * (BN / 2u) + 4u * ty + j;
            if (col > last_col)
                continue;
            const uint rb = m0 + (i >> 1) * (BM / 2u) + 4u * tx;
            for (uint e = 0u; e < 4u; e++)
                if (rb + e <= last_row)
                    yb[pc.y_off + col * pc.y_stride + rb + e] = acc[4u * i + j][e];
        }
    }
}

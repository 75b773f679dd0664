#version 450
/* Y[col][row] = sum_k W[row][k] * X[col][k]: the prefill matrix product (op_matmul with n_cols > 1).
 *
 * A workgroup computes a BM x BN tile (rows x columns) of Y. The K dimension is walked in steps of
 * BK = 32 (quantized: 32 or 64 elements, whole units of dequant.glsl, not contiguous in K for the K-quants):
 * the workgroup dequantizes a BM x BK slice of W and copies the matching BN x BK slice of X into shared memory, then every invocation accumulates a TM x TN sub-tile from it
 * (rows tx + i*TX, columns ty + j*TY, so shared reads of neighbouring invocations are neighbours).
 * Out-of-range rows/columns are clamped on load and skipped on store; for F32/F16 the last K step is
 * zero-padded, so any K works (quantized types need whole blocks).
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = X, 3 = Y; F32/F16/BF16: 0 = data, 1 = X, 2 = Y.
 * Spec constants: 0 = WG (must be (BM/TM)*(BN/TN)), 1 = BM, 2 = BN (multiples of 4). */
#extension GL_GOOGLE_include_directive : require
#include "dequant.glsl"

#define TM 4u
#define TN 4u

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 32;

#ifdef WQUANT
/* A K step is US units of dequant.glsl (two for one-run units): BK elements, in the order of the units'
 * runs (k is not contiguous inside a step; X is gathered in the same order). */
const uint US = DQ_RUNS == 1u ? 2u : 1u;
const uint BK = US * DQ_RUNS * 16u;
#else
const uint BK = 32u;
#endif

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

const uint SA = BM + 1u;   /* padded strides of the shared tiles */
const uint SB = BN + 1u;
shared float As[BK * SA];
shared float Bs[BK * SB];

/* Element of the row at index kk of the K step starting at k0 (quantized: the order of the step's units). */
uint step_k(uint k0, uint kk)
{
#ifdef WQUANT
    const uint gu = k0 / BK * US + kk / (DQ_RUNS * 16u);
    return gu / DQ_UNITS * DQ_QK + dq_run_pos(gu % DQ_UNITS, (kk / 16u) % DQ_RUNS) + kk % 16u;
#else
    return k0 + kk;
#endif
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint TX = BM / TM;
    const uint tx = tid % TX;
    const uint ty = tid / TX;
    const uint TY = BN / TN;
    const uint m0 = gl_WorkGroupID.x * BM;
    const uint n0 = gl_WorkGroupID.y * BN;
    const uint last_row = pc.M - 1u;
    const uint last_col = pc.N - 1u;

    float acc[TM * TN];
    for (uint i = 0u; i < TM * TN; i++)
        acc[i] = 0.0;

#ifdef WQUANT
    const uint nb = pc.K / DQ_QK;
    const uint qbase = pc.w_off >> 4;
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
            const uint gu = k0 / BK * US + s;   /* unit of the row */
            const uint blk = min(m0 + m, last_row) * nb + gu / DQ_UNITS;
            vec4 q[DQ_RUNS * 4u];
            vec2 ab[DQ_RUNS];
            dq_unit(dq_meta(pc.d_off, blk), qbase + blk * DQ_QV, gu % DQ_UNITS, q, ab);
            for (uint i = 0u; i < DQ_RUNS * 4u; i++) {
                const vec4 v = q[i] * ab[i >> 2].x + ab[i >> 2].y;
                const uint k = (s * DQ_RUNS) * 16u + 4u * i;
                As[(k + 0u) * SA + m] = v.x;
                As[(k + 1u) * SA + m] = v.y;
                As[(k + 2u) * SA + m] = v.z;
                As[(k + 3u) * SA + m] = v.w;
            }
        }
#else
        for (uint u = tid; u < BM * BK; u += WG) {
            const uint m = u / BK, kk = u % BK;
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
            As[kk * SA + m] = v;
        }
#endif
        /* ---- X slice: BN columns x 32 values into Bs[k][n] ---- */
        for (uint u = tid; u < BN * BK; u += WG) {
            const uint n = u / BK, kk = u % BK;
            const uint k = step_k(k0, kk);
            const uint c = min(n0 + n, last_col);
            Bs[kk * SB + n] = k < pc.K ? xb[pc.x_off + c * pc.K + k] : 0.0;
        }
        barrier();

        for (uint kk = 0u; kk < BK; kk++) {
            float a[TM], b[TN];
            for (uint i = 0u; i < TM; i++)
                a[i] = As[kk * SA + tx + i * TX];
            for (uint j = 0u; j < TN; j++)
                b[j] = Bs[kk * SB + ty + j * TY];
            for (uint i = 0u; i < TM; i++)
                for (uint j = 0u; j < TN; j++)
                    acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
        }
        barrier();
    }

    for (uint j = 0u; j < TN; j++) {
        const uint col = n0 + ty + j * TY;
        if (col > last_col)
            continue;
        for (uint i = 0u; i < TM; i++) {
            const uint row = m0 + tx + i * TX;
            if (row <= last_row)
                yb[pc.y_off + col * pc.y_stride + row] = acc[i * TN + j];
        }
    }
}

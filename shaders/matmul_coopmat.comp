#version 450
/* Y[col][row] = sum_k W[row][k] * X[col][k] with cooperative matrices (f16 inputs, f32 accumulation): the
 * prefill matrix product of vkl_op_matmul on devices with VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix,
 * chosen by host/ops/ops_matmul.c only with VKLLM_COOPMAT=1 (experimental). Same contract, bindings and push
 * constants as shaders/matmul.comp, so the host drives it with the same tiled_dispatches().
 *
 * One source, two SPIR-V forms. This GLSL uses GL_NV_cooperative_matrix (the only form Debian 12's glslang
 * 12.0 compiles) and is built as NAME_nv.spv; shaders/tools/spirv_coopmat_khr.c rewrites that module into
 * SPV_KHR_cooperative_matrix as NAME_khr.spv (see shaders/shaders.cmake). Both need the Vulkan memory model
 * (SPV_NV_cooperative_matrix requires it, and SPV_KHR_cooperative_matrix requires it in Shader modules) and
 * are SPIR-V 1.6 (a KHR cooperative-matrix pipeline must be SPIR-V 1.6 or require full subgroups:
 * VUID-RuntimeSpirv-OpTypeCooperativeMatrixKHR-10770).
 *
 * Matrix shape: 16x16x16, f16 x f16 + f32 -> f32, subgroup scope: offered by NVIDIA (NV and KHR) and by AMD
 * RDNA3 (KHR); the host checks the device's property list for exactly this entry.
 * Mapping: the cooperative product C[MxN] += A[MxK] * B[KxN] with M = weight rows, N = columns of X (tokens),
 * K = the shared dimension. A = W (row-major in shared memory: As[m][k]), B[k][n] = X[n][k] (column-major:
 * Bs[n][k]), C[m][n] = Y[n][m] (stored column-major).
 *
 * A workgroup computes a BM x BN tile of Y with NSG = SG_M x SG_N subgroups; each subgroup owns a TM x TN grid of
 * 16 x 16 accumulators (spec constants: host/ops/ops_matmul.c picks 128 x 128 = 2 x 4 subgroups of 4 x 2, 128 x 64,
 * 64 x 64 = 2 x 2 of 2 x 2, or 64 x 32 from the device's shared memory; VKLLM_COOPMAT_TILE). K is walked in steps
 * of BK = 32 (quantized: two runs of 16 elements of dequant.glsl's units, in the units' order, see step_k): the
 * workgroup dequantizes a BM x 32 slice of W and loads the matching BN x 32 slice of X (out-of-range
 * rows/columns clamped, K zero-padded for F32/F16, so any K works; quantized types need whole blocks), then
 * every subgroup does two 16-deep cooperative steps from it. X is already f16: the host converts it once per
 * matrix product (shaders/convert_f16.comp: columns of K16 = K rounded up to 8 halves, zero-padded), so a row
 * tile reads 8 halves per uvec4 load and converts nothing. Loads are double-buffered through registers: the
 * slices of the next step are read and dequantized before the cooperative steps of the current one
 * and stored to shared memory after them, so their memory latency overlaps the products.
 * The accumulators go through a
 * per-subgroup 16 x 16 f32 staging area in shared memory and are written with bounds checks (partial tiles).
 * Cooperative loads/stores need pointer and stride aligned to 16 bytes: the strides (80 and 64 bytes) and tile
 * offsets are multiples of 16; the shared arrays' own alignment is the driver's choice (assumed 16 bytes;
 * not yet checked on hardware). Inputs beyond the f16 range (|x| > 65504) become infinities: the price of f16
 * inputs.
 *
 * The host sets WG = NSG * subgroup size (requiring that subgroup size where it may vary). If the driver
 * still runs a different number of subgroups, the workgroup writes NaN over its tile instead of a wrong
 * result, so the tests catch it.
 *
 * Rewriter constraint (see spirv_coopmat_khr.c): glslang gives A and B the same SPIR-V type; the rewriter
 * splits it by data flow and cannot retype arrays, so only one of the two roles may live in an array: the
 * A fragments are an array, B is a single variable. No function takes or returns a cooperative matrix.
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl); COOPMAT_EMULATE (tests only, VKLLM_COOPMAT=emulate):
 * the CM_* operations below in plain GLSL (shaders/coopmat_emulate.glsl), so the tiling, dequantization,
 * staging and bounds checks run on devices without cooperative matrices (lavapipe).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = X (f16), 3 = Y (IQ grid types: 4 = grid);
 * F32/F16/BF16: 0 = data, 1 = X (f16), 2 = Y.
 * Spec constants: 0 = WG (NSG * subgroup size), 1 = SG_M, 2 = SG_N, 3 = TM, 4 = TN.
 *
 * A later NVIDIA path (not written): VK_NV_cooperative_matrix2 (builds on VK_KHR_cooperative_matrix; SPIR-V
 * SPV_NV_cooperative_matrix2 + SPV_NV_tensor_addressing, GLSL GL_NV_cooperative_matrix2; features listed in
 * VkPhysicalDeviceCooperativeMatrix2FeaturesNV) offers what this kernel does by hand: workgroup-scope matrices
 * with flexible dimensions (sizes in multiples of the granularities that
 * vkGetPhysicalDeviceCooperativeMatrixFlexibleDimensionsPropertiesNV lists), staged through shared memory by the
 * compiler, would replace the SG_M x SG_N subgroup grid, the As/Bs tiles and the double buffering; tensor
 * addressing (coopMatLoadTensorNV with a tensor layout, clamped or zero-filled out-of-range rows and K) would
 * replace the clamping and zero padding; and its decode functions (a callback that turns the block of a
 * quantized weight holding an element into its value as the matrix is loaded) would let dequant.glsl's types
 * load straight into the A matrix instead of through the f16 shared tile. Per-element operations and
 * conversions could then fuse the epilogue (scale, add) into the store. Such a kernel needs a glslang newer
 * than Debian 12's 12.0 (GL_NV_cooperative_matrix2 is not in it), and its own self-check like this one. */
#extension GL_GOOGLE_include_directive : require
#ifndef COOPMAT_EMULATE
#extension GL_NV_cooperative_matrix : require
#endif
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
#pragma use_vulkan_memory_model
#define DQ_GRID_BINDING 4   /* the IQ grid types' grid (dequant.glsl) */
#include "dequant.glsl"

#define CM 16u          /* cooperative matrix edge (M = N = K = 16) */
#define BK 32u          /* K per shared-memory step (quantized: two runs of 16 of dequant.glsl, see step_k) */
#define SA (BK + 8u)    /* padded row strides of the shared tiles, in halves: 80 bytes, a multiple of 16 */
#define SB (BK + 8u)

/* The tile (host/ops/ops_matmul.c's coopmat_tile picks it from the device's shared memory): SG_M x SG_N subgroups,
 * each owning TM x TN accumulators of 16 x 16, so BM = SG_M * TM * 16 rows and BN = SG_N * TN * 16 columns. */
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint SG_M = 2;
layout(constant_id = 2) const uint SG_N = 2;
layout(constant_id = 3) const uint TM = 2;
layout(constant_id = 4) const uint TN = 2;
const uint NSG = SG_M * SG_N;
const uint BM = SG_M * TM * CM;
const uint BN = SG_N * TN * CM;

/* The cooperative-matrix operations the kernel uses (the emulation defines the same names). */
#ifdef COOPMAT_EMULATE
#include "coopmat_emulate.glsl"
#else
#define CM_TYPE_A fcoopmatNV<16, gl_ScopeSubgroup, CM, CM>
#define CM_TYPE_B fcoopmatNV<16, gl_ScopeSubgroup, CM, CM>
#define CM_TYPE_C fcoopmatNV<32, gl_ScopeSubgroup, CM, CM>
#define CM_ZERO(D) D = CM_TYPE_C(0.0)
#define CM_LOAD(D, ARR, OFF, STRIDE, COLMAJOR) coopMatLoadNV(D, ARR, OFF, STRIDE, COLMAJOR)
#define CM_STORE(S, ARR, OFF, STRIDE, COLMAJOR) coopMatStoreNV(S, ARR, OFF, STRIDE, COLMAJOR)
#define CM_MULADD(D, A, B, C) D = coopMatMulAddNV(A, B, C)
#endif

layout(push_constant) uniform Push {
    uint K;         /* row length */
    uint M;         /* rows in this dispatch */
    uint N;         /* columns in this dispatch */
    uint w_off;     /* bytes from the start of binding 0 to the first row of the dispatch */
    uint d_off;     /* bytes from the start of the meta binding to the first row (quantized) */
    uint x_off;     /* halves from the start of the X binding to the first column (a multiple of 8) */
    uint y_off;     /* floats from the start of the Y binding to (first column, first row) */
    uint y_stride;  /* floats between two columns of Y (the full M of the op) */
} pc;

#ifdef WQUANT   /* bindings 0 (quants) and 1 (meta): dequant.glsl */
layout(set = 0, binding = 2) readonly buffer XB { uvec4 xb[]; };
layout(set = 0, binding = 3) writeonly buffer YB { float yb[]; };
#else
#ifdef WTYPE_F32
layout(set = 0, binding = 0) readonly buffer W1 { float w1[]; };
#else
layout(set = 0, binding = 0) readonly buffer W1 { uint w1[]; };
#endif
layout(set = 0, binding = 1) readonly buffer XB { uvec4 xb[]; };
layout(set = 0, binding = 2) writeonly buffer YB { float yb[]; };
#endif

shared float16_t As[BM * SA];            /* W slice: As[m * SA + k] */
shared float16_t Bs[BN * SB];            /* X slice: Bs[n * SB + k] */
shared float Cs[NSG * CM * CM];          /* per-subgroup staging of one accumulator, column-major */

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

/* Load items of a K step, each WV f16vec4s of consecutive k of one row of W, or 8 halves (one uvec4) of one
 * column of X: W quantized, one run (16 values) per item, BM * 2 items; W F32/F16/BF16, 4 values per item, 8
 * items per row; X, 4 items per column. Every invocation holds the values of its items (WI and XI of them) in
 * registers between the loads and the stores. */
#ifdef WQUANT
#define WV 4u
#else
#define WV 1u
#endif
const uint W_ITEMS = BM * (BK / (4u * WV));
const uint X_ITEMS = BN * (BK / 8u);
const uint WI = (W_ITEMS + WG - 1u) / WG;
const uint XI = (X_ITEMS + WG - 1u) / WG;

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * BM;
    const uint n0 = gl_WorkGroupID.y * BN;
    const uint last_row = pc.M - 1u;
    const uint last_col = pc.N - 1u;

    /* The tile layout needs exactly NSG subgroups; anything else is reported as NaN, never as numbers. */
    if (gl_NumSubgroups != NSG) {
        for (uint u = tid; u < BM * BN; u += WG) {
            const uint row = m0 + u % BM, col = n0 + u / BM;
            if (row <= last_row && col <= last_col)
                yb[pc.y_off + col * pc.y_stride + row] = uintBitsToFloat(0x7fc00000u);
        }
        return;
    }
    const uint sg = gl_SubgroupID;
    const uint wm = (sg % SG_M) * (TM * CM);   /* this subgroup's block inside the tile */
    const uint wn = (sg / SG_M) * (TN * CM);

    CM_TYPE_C acc[TM * TN];
    [[unroll]] for (uint i = 0u; i < TM * TN; i++)
        CM_ZERO(acc[i]);

#ifdef WQUANT
    const uint nb = pc.K / DQ_QK;
    const uint qbase = pc.w_off >> 4;
#elif defined(W16)
    const uint base = pc.w_off >> 1;
#else
    const uint base = pc.w_off >> 2;
#endif

    /* Double buffering: the values of step k0 + BK are loaded (and dequantized, converted to f16) into
     * registers before the cooperative products of step k0 run from shared memory, and stored after them. */
    f16vec4 wreg[WI * WV];
    uvec4 xreg[XI];   /* 8 halves each */
    const uint K16 = (pc.K + 7u) & ~7u;
    for (uint k0 = 0u; k0 < pc.K + BK; k0 += BK) {
        if (k0 < pc.K) {
            /* ---- load step k0: W rows (dequantized) and X columns, clamped, K zero-padded ---- */
            [[unroll]] for (uint i = 0u; i < WI; i++) {
                const uint e = tid + i * WG;
                if (e >= W_ITEMS)
                    break;
#ifdef WQUANT
                /* one run: its unit is dequantized whole and the run picked */
                const uint m = e >> 1, gr = k0 / 16u + (e & 1u), gu = gr / DQ_RUNS, r = gr % DQ_RUNS;
                const uint blk = min(m0 + m, last_row) * nb + gu / DQ_UNITS;
                vec4 q[DQ_RUNS * 4u];
                vec2 ab[DQ_RUNS];
                dq_unit(dq_meta(pc.d_off, blk), qbase + blk * DQ_QV, gu % DQ_UNITS, q, ab);
                for (uint j = 0u; j < 4u; j++)
                    wreg[i * WV + j] = f16vec4(q[4u * r + j] * ab[r].x + ab[r].y);
#else
                const uint m = e >> 3, k = k0 + 4u * (e & 7u);
                const uint rb = base + min(m0 + m, last_row) * pc.K;
                vec4 v;
                for (uint c = 0u; c < 4u; c++) {
#ifdef W16
                    v[c] = k + c < pc.K ? W16_AT(w1, rb + k + c) : 0.0;
#else
                    v[c] = k + c < pc.K ? w1[rb + k + c] : 0.0;
#endif
                }
                wreg[i] = f16vec4(v);
#endif
            }
            [[unroll]] for (uint i = 0u; i < XI; i++) {
                const uint e = tid + i * WG;
                if (e >= X_ITEMS)
                    break;
                const uint n = e >> 2, k = step_k(k0, 8u * (e & 3u));   /* 8 contiguous k (runs are 16 long) */
                xreg[i] = k < K16 ? xb[(pc.x_off + min(n0 + n, last_col) * K16 + k) >> 3] : uvec4(0u);
            }
        }
        if (k0 > 0u) {
            /* ---- cooperative products of step k0 - BK (in shared memory) ---- */
            [[unroll]] for (uint kk = 0u; kk < BK; kk += CM) {
                CM_TYPE_A a[TM];
                [[unroll]] for (uint i = 0u; i < TM; i++)
                    CM_LOAD(a[i], As, (wm + i * CM) * SA + kk, SA, false);   /* row-major */
                [[unroll]] for (uint j = 0u; j < TN; j++) {
                    CM_TYPE_B b;
                    CM_LOAD(b, Bs, (wn + j * CM) * SB + kk, SB, true);       /* column-major */
                    [[unroll]] for (uint i = 0u; i < TM; i++)
                        CM_MULADD(acc[i * TN + j], a[i], b, acc[i * TN + j]);
                }
            }
            barrier();
        }
        if (k0 < pc.K) {
            /* ---- store step k0 to shared memory ---- */
            [[unroll]] for (uint i = 0u; i < WI; i++) {
                const uint e = tid + i * WG;
                if (e >= W_ITEMS)
                    break;
#ifdef WQUANT
                const uint a0 = (e >> 1) * SA + (e & 1u) * 16u;
#else
                const uint a0 = (e >> 3) * SA + 4u * (e & 7u);
#endif
                for (uint j = 0u; j < WV; j++)
                    for (uint c = 0u; c < 4u; c++)
                        As[a0 + 4u * j + c] = wreg[i * WV + j][c];
            }
            [[unroll]] for (uint i = 0u; i < XI; i++) {
                const uint e = tid + i * WG;
                if (e >= X_ITEMS)
                    break;
                const uint b0 = (e >> 2) * SB + 8u * (e & 3u);
                for (uint c = 0u; c < 4u; c++) {
                    const f16vec2 h = unpackFloat2x16(xreg[i][c]);
                    Bs[b0 + 2u * c] = h.x;
                    Bs[b0 + 2u * c + 1u] = h.y;
                }
            }
            barrier();
        }
    }

    /* ---- Store: each accumulator through this subgroup's staging area, bounds-checked ---- */
    const uint stage = sg * (CM * CM);
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            CM_STORE(acc[i * TN + j], Cs, stage, CM, true);   /* Cs[stage + n * 16 + m] */
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = gl_SubgroupInvocationID; e < CM * CM; e += gl_SubgroupSize) {
                const uint row = m0 + wm + i * CM + e % CM;
                const uint col = n0 + wn + j * CM + e / CM;
                if (row <= last_row && col <= last_col)
                    yb[pc.y_off + col * pc.y_stride + row] = Cs[stage + e];
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
    }
}

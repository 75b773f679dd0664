#version 450
/* out[i][:] = dequantized row ids[i] of a weight table (vkl_op_get_rows), i < n.
 *
 * Workgroup (x, i): x walks the row in units of dequant.glsl (quantized: 16, 32 or 64 values each) or one
 * value (F32/F16/BF16), i is the id index. A table larger than maxStorageBufferRange is handled by the
 * host with one dispatch per chunk of table rows [row_begin, row_end): a dispatch only writes the ids
 * that fall in its chunk; ids >= M (invalid) produce a row of zeros, written by the dispatch with
 * zero_invalid set, so every output row is written exactly once.
 *
 * Variants: every weight type (WTYPE_*, dequant.glsl).
 * Bindings: quantized: 0 = quants region, 1 = meta region, 2 = ids, 3 = out (IQ grid types: 4 = grid);
 *           F32/F16/BF16: 0 = data, 1 = ids, 2 = out. */
#extension GL_GOOGLE_include_directive : require
#define DQ_GRID_BINDING 4   /* the IQ grid types' grid (dequant.glsl) */
#include "dequant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(push_constant) uniform Push {
    uint K;             /* row length */
    uint row_begin;     /* table rows bound by this dispatch: [row_begin, row_end) */
    uint row_end;
    uint M;             /* rows of the whole table */
    uint zero_invalid;  /* this dispatch writes zeros for ids >= M */
    uint w_off;         /* bytes from the start of binding 0 to row row_begin */
    uint d_off;         /* bytes from the start of the meta binding to row row_begin (quantized) */
    uint ids_off;       /* uints from the start of the ids binding to the first id of the dispatch */
    uint out_off;       /* floats from the start of the out binding to the first output row */
} pc;

#ifdef WQUANT   /* bindings 0 (quants) and 1 (meta): dequant.glsl */
layout(set = 0, binding = 2) readonly buffer IDS { uint ids[]; };
layout(set = 0, binding = 3) writeonly buffer OUT { float outv[]; };
#else
#ifdef WTYPE_F32
layout(set = 0, binding = 0) readonly buffer W1 { float w1[]; };
#else
layout(set = 0, binding = 0) readonly buffer W1 { uint w1[]; };
#endif
layout(set = 0, binding = 1) readonly buffer IDS { uint ids[]; };
layout(set = 0, binding = 2) writeonly buffer OUT { float outv[]; };
#endif

void main()
{
    const uint u = gl_GlobalInvocationID.x;
    const uint i = gl_WorkGroupID.y;
    const uint id = ids[pc.ids_off + i];
    const bool valid = id < pc.M;
    if (valid ? (id < pc.row_begin || id >= pc.row_end) : pc.zero_invalid == 0u)
        return;
    const uint r = id - pc.row_begin;
    const uint o = pc.out_off + i * pc.K;

#ifdef WQUANT
    /* u = unit u % DQ_UNITS of block u / DQ_UNITS (the host dispatches K / 16 invocations per id, an upper bound) */
    if (u >= pc.K / (DQ_RUNS * 16u))
        return;
    const uint b = u / DQ_UNITS, un = u % DQ_UNITS;
    vec4 q[DQ_RUNS * 4u];
    vec2 ab[DQ_RUNS];
    for (uint j = 0u; j < DQ_RUNS; j++)
        ab[j] = vec2(0.0);   /* an invalid id: zeros */
    for (uint j = 0u; j < DQ_RUNS * 4u; j++)
        q[j] = vec4(0.0);
    if (valid) {
        const uint blk = r * (pc.K / DQ_QK) + b;
        dq_unit(dq_meta(pc.d_off, blk), (pc.w_off >> 4) + blk * DQ_QV, un, q, ab);
    }
    for (uint j = 0u; j < DQ_RUNS * 4u; j++) {
        const vec4 v = q[j] * ab[j >> 2].x + ab[j >> 2].y;
        const uint k = o + b * DQ_QK + dq_run_pos(un, j >> 2) + 4u * (j & 3u);
        outv[k + 0u] = v.x;
        outv[k + 1u] = v.y;
        outv[k + 2u] = v.z;
        outv[k + 3u] = v.w;
    }
#else
    if (u >= pc.K)
        return;
    float v = 0.0;
    if (valid) {
#ifdef W16
        v = W16_AT(w1, (pc.w_off >> 1) + r * pc.K + u);
#else
        v = w1[(pc.w_off >> 2) + r * pc.K + u];
#endif
    }
    outv[o + u] = v;
#endif
}

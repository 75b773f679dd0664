#version 450
/* out[i][:] = dequantized row ids[i] of a weight table (op_get_rows), i < n.
 *
 * Workgroup (x, i): x walks the row in units of one word of the table (Q4_0: 8 values, Q8_0: 4 values)
 * or one value (F32/F16), i is the id index. A table larger than maxStorageBufferRange is handled by the
 * host with one dispatch per chunk of table rows [row_begin, row_end): a dispatch only writes the ids
 * that fall in its chunk; ids >= M (invalid) produce a row of zeros, written by the dispatch with
 * zero_invalid set, so every output row is written exactly once.
 *
 * Variants: WTYPE_F32 / WTYPE_F16 / WTYPE_Q8_0 / WTYPE_Q4_0.
 * Bindings: quantized: 0 = quants region, 1 = scales region, 2 = ids, 3 = out; F32/F16: 0 = data, 1 = ids, 2 = out. */
#extension GL_GOOGLE_include_directive : require
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
    uint d_off;         /* bytes from the start of the scales binding to row row_begin (quantized) */
    uint ids_off;       /* uints from the start of the ids binding to the first id of the dispatch */
    uint out_off;       /* floats from the start of the out binding to the first output row */
} pc;

#ifdef WQUANT
layout(set = 0, binding = 0) readonly buffer WQ { uint wq[]; };
layout(set = 0, binding = 1) readonly buffer WD { uint wd[]; };
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

#if defined(WTYPE_Q4_0)
    const uint nw = pc.K / 8u;   /* words per row */
    if (u >= nw)
        return;
    const uint k = (u >> 2) * 32u + (u & 3u) * 4u;
    vec4 lo = vec4(0.0), hi = vec4(0.0);
    if (valid) {
        const float d = HALF_AT(wd, (pc.d_off >> 1) + r * (pc.K / 32u) + (u >> 2));
        const uint q = wq[(pc.w_off >> 2) + r * nw + u];
        lo = (q4_lo(q) - 8.0) * d;
        hi = (q4_hi(q) - 8.0) * d;
    }
    outv[o + k + 0u] = lo.x;
    outv[o + k + 1u] = lo.y;
    outv[o + k + 2u] = lo.z;
    outv[o + k + 3u] = lo.w;
    outv[o + k + 16u] = hi.x;
    outv[o + k + 17u] = hi.y;
    outv[o + k + 18u] = hi.z;
    outv[o + k + 19u] = hi.w;
#elif defined(WTYPE_Q8_0)
    const uint nw = pc.K / 4u;
    if (u >= nw)
        return;
    const uint k = u * 4u;
    vec4 v = vec4(0.0);
    if (valid) {
        const float d = HALF_AT(wd, (pc.d_off >> 1) + r * (pc.K / 32u) + (u >> 3));
        v = q8_word(wq[(pc.w_off >> 2) + r * nw + u]) * d;
    }
    outv[o + k + 0u] = v.x;
    outv[o + k + 1u] = v.y;
    outv[o + k + 2u] = v.z;
    outv[o + k + 3u] = v.w;
#else
    if (u >= pc.K)
        return;
    float v = 0.0;
    if (valid) {
#ifdef WTYPE_F16
        v = HALF_AT(w1, (pc.w_off >> 1) + r * pc.K + u);
#else
        v = w1[(pc.w_off >> 2) + r * pc.K + u];
#endif
    }
    outv[o + u] = v;
#endif
}

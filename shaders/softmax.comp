#version 450
#extension GL_GOOGLE_include_directive : require
/* Row softmax: one workgroup per row. out[r][c] = exp(x[r][c]*scale - max) / sum over the unmasked
 * columns; with causal set, columns c > causal_offset + r are masked (written as 0).
 * out may alias x (each invocation reads its columns before writing them). */
#define NEED_REDUCE
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n_rows;
    uint n_cols;
    float scale;
    uint causal;
    uint causal_offset;
    uint x_off;
    uint o_off;
} pc;

void main()
{
    const uint row = flat_group();
    if (row >= pc.n_rows)
        return;
    const uint lid = gl_LocalInvocationID.x;
    const uint xb = pc.x_off + row * pc.n_cols;
    const uint ob = pc.o_off + row * pc.n_cols;

    uint lim = pc.n_cols;
    if (pc.causal != 0 && pc.causal_offset < pc.n_cols)
        lim = min(pc.n_cols, pc.causal_offset + row + 1);

    float m = NEG_INF;
    for (uint c = lid; c < lim; c += WG)
        m = max(m, x[xb + c] * pc.scale);
    m = wg_max(m);

    float s = 0.0;
    for (uint c = lid; c < lim; c += WG)
        s += exp(x[xb + c] * pc.scale - m);
    s = wg_sum(s);
    const float inv = 1.0 / s;

    for (uint c = lid; c < pc.n_cols; c += WG)
        o[ob + c] = c < lim ? exp(x[xb + c] * pc.scale - m) * inv : 0.0;
}

#version 450
#extension GL_GOOGLE_include_directive : require
/* RMS norm: one workgroup per row. out[r][i] = x[r][i] / sqrt(mean(x[r]^2) + eps) * w[i].
 * out may alias x (each invocation reads its elements before writing them). With ADD defined the result is
 * added to out instead (Gemma's norm of a block's output before the residual add; out must not alias x). */
#define NEED_REDUCE
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer W { float w[]; };
layout(set = 0, binding = 2) buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n_rows;
    uint dim;
    float eps;
    uint x_off;   /* element offsets inside the bound ranges */
    uint w_off;
    uint o_off;
} pc;

void main()
{
    const uint row = flat_group();
    if (row >= pc.n_rows)
        return;
    const uint lid = gl_LocalInvocationID.x;
    const uint xb = pc.x_off + row * pc.dim;
    const uint ob = pc.o_off + row * pc.dim;

    float ss = 0.0;
    for (uint i = lid; i < pc.dim; i += WG) {
        const float v = x[xb + i];
        ss = fma(v, v, ss);
    }
    ss = wg_sum(ss);
    const float r = inversesqrt(ss / float(pc.dim) + pc.eps);

    for (uint i = lid; i < pc.dim; i += WG)
#ifdef ADD
        o[ob + i] += x[xb + i] * r * w[pc.w_off + i];
#else
        o[ob + i] = x[xb + i] * r * w[pc.w_off + i];
#endif
}

#version 450
#extension GL_GOOGLE_include_directive : require
/* Rotary position embedding, in place on x[n_rows][n_heads][head_dim]. One invocation per rotated pair.
 * Pair i of a head (i < n_rot/2) is (2i, 2i+1) in interleaved mode, (i, i + n_rot/2) in NeoX mode, and
 * turns by theta = positions[row] * theta_base^(-2i/n_rot) / freq_factors[i]. Dims >= n_rot are left alone. */
#include "common_ops.glsl"

layout(set = 0, binding = 0) buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer P { uint positions[]; };
layout(set = 0, binding = 2) readonly buffer F { float freq_factors[]; };   /* read only when has_ff */

layout(push_constant) uniform PC {
    uint n_rows;
    uint n_heads;
    uint head_dim;
    uint n_rot;
    float freq_exp;   /* -2 * log2(theta_base) / n_rot: theta_base^(-2i/n_rot) = exp2(i * freq_exp) */
    uint neox;
    uint has_ff;
    uint x_off;
    uint p_off;
    uint f_off;
} pc;

void main()
{
    const uint half_rot = pc.n_rot / 2;
    const uint idx = flat_group() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_rows * pc.n_heads * half_rot)
        return;
    const uint i = idx % half_rot;
    const uint rowhead = idx / half_rot;
    const uint row = rowhead / pc.n_heads;

    float freq = exp2(float(i) * pc.freq_exp);
    if (pc.has_ff != 0)
        freq /= freq_factors[pc.f_off + i];
    const float theta = float(positions[pc.p_off + row]) * freq;
    const float c = cos(theta), s = sin(theta);

    const uint base = pc.x_off + rowhead * pc.head_dim;
    const uint a = pc.neox != 0 ? base + i : base + 2 * i;
    const uint b = pc.neox != 0 ? a + half_rot : a + 1;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}

#version 450
#extension GL_GOOGLE_include_directive : require
/* Merges the parts of split attention (attention.comp with SPLIT): for each (row, head), part s holds an
 * unnormalised output acc_s[head_dim], its running max m_s and sum l_s. With M = max_s m_s:
 *   out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s.
 * One workgroup per (row, head); each invocation produces output elements d = lid, lid + WG, ... */
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer S { float part[]; };
layout(set = 0, binding = 1) writeonly buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n_groups;    /* rows * heads */
    uint n_split;
    uint head_dim;
    uint s_off;       /* floats */
    uint o_off;
} pc;

void main()
{
    const uint g = flat_group();
    if (g >= pc.n_groups)
        return;
    const uint stride = pc.head_dim + 2;
    const uint base = pc.s_off + g * pc.n_split * stride;
    float mx = NEG_INF;
    for (uint s = 0; s < pc.n_split; s++)
        mx = max(mx, part[base + s * stride + pc.head_dim]);
    float l = 0.0;
    for (uint s = 0; s < pc.n_split; s++) {
        const float ms = part[base + s * stride + pc.head_dim];
        l += ms == NEG_INF ? 0.0 : exp(ms - mx) * part[base + s * stride + pc.head_dim + 1];
    }
    const float inv = 1.0 / l;
    for (uint d = gl_LocalInvocationID.x; d < pc.head_dim; d += WG) {
        float a = 0.0;
        for (uint s = 0; s < pc.n_split; s++) {
            const float ms = part[base + s * stride + pc.head_dim];
            if (ms != NEG_INF)
                a += exp(ms - mx) * part[base + s * stride + d];
        }
        o[pc.o_off + g * pc.head_dim + d] = a * inv;
    }
}

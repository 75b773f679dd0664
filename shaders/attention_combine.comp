#version 450
#extension GL_GOOGLE_include_directive : require
/* Merges the parts of split attention (attention.comp / attention_tiled.comp with SPLIT): for each (row, head),
 * part s holds an unnormalised output acc_s[head_dim], its running max m_s and sum l_s (an empty part:
 * m_s = -inf, l_s = 0, acc_s = 0). With M = max_s m_s and w_s = exp(m_s - M):
 *   out = sum_s w_s acc_s / sum_s w_s l_s.
 * One workgroup per (row, head): the invocations read the parts' m_s and l_s side by side (M and the sum are
 * workgroup reductions, the weights go to shared memory), then each produces output elements
 * d = lid, lid + WG, ..., four parts per loop trip so their loads are in flight together. */
#define NEED_REDUCE
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer S { float part[]; };
layout(set = 0, binding = 1) writeonly buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n_groups;    /* rows * heads */
    uint n_split;     /* <= MAX_SPLIT */
    uint head_dim;
    uint s_off;       /* floats */
    uint o_off;
} pc;

const uint MAX_SPLIT = 64;   /* ATTN_MAX_SPLIT in host/ops/ops_attention.c */

shared float weight[MAX_SPLIT];

void main()
{
    const uint g = flat_group();
    if (g >= pc.n_groups)   /* uniform over the workgroup: the reductions below stay in uniform control flow */
        return;
    const uint lid = gl_LocalInvocationID.x;
    const uint n = pc.n_split;
    const uint stride = pc.head_dim + 2;
    const uint base = pc.s_off + g * n * stride;
    float mx = NEG_INF;
    for (uint s = lid; s < n; s += WG)
        mx = max(mx, part[base + s * stride + pc.head_dim]);
    mx = wg_max(mx);
    float l = 0.0;
    for (uint s = lid; s < n; s += WG) {
        const float ms = part[base + s * stride + pc.head_dim];
        const float w = ms == NEG_INF ? 0.0 : exp(ms - mx);
        weight[s] = w;
        l += w * part[base + s * stride + pc.head_dim + 1];
    }
    const float inv = 1.0 / wg_sum(l);   /* its barriers also publish weight[] */
    for (uint d = lid; d < pc.head_dim; d += WG) {
        float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        uint s = 0;
        for (; s + 4 <= n; s += 4) {
            const uint p = base + s * stride + d;
            a0 += weight[s] * part[p];
            a1 += weight[s + 1] * part[p + stride];
            a2 += weight[s + 2] * part[p + 2 * stride];
            a3 += weight[s + 3] * part[p + 3 * stride];
        }
        for (; s < n; s++)
            a0 += weight[s] * part[base + s * stride + d];
        o[pc.o_off + g * pc.head_dim + d] = ((a0 + a1) + (a2 + a3)) * inv;
    }
}

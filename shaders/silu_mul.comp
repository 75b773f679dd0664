#version 450
#extension GL_GOOGLE_include_directive : require
/* out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i], or with GELU defined
 * gelu(gate[i]) * up[i] in the tanh approximation 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) (Gemma).
 * One invocation per element; out may alias gate or up. */
#include "common_ops.glsl"
#include "activation.glsl"

layout(set = 0, binding = 0) readonly buffer G { float gate[]; };
layout(set = 0, binding = 1) readonly buffer U { float up[]; };
layout(set = 0, binding = 2) buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n;
    uint g_off;
    uint u_off;
    uint o_off;
} pc;

void main()
{
    const uint i = flat_group() * WG + gl_LocalInvocationID.x;
    if (i >= pc.n)
        return;
    const float g = gate[pc.g_off + i];
#ifdef GELU
    o[pc.o_off + i] = act_gelu_tanh(g) * up[pc.u_off + i];
#else
    o[pc.o_off + i] = act_silu(g) * up[pc.u_off + i];
#endif
}

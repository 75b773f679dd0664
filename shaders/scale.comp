#version 450
#extension GL_GOOGLE_include_directive : require
/* In place on x[0..n): x * a (SOFTCAP unset: Gemma's embedding scale), or a * tanh(x / a) (SOFTCAP: final
 * logit soft-capping). tanh's argument is clamped to +-15, where it is +-1 in f32, so large inputs cannot
 * overflow an exp inside the implementation's tanh. */
#include "common_ops.glsl"

layout(set = 0, binding = 0) buffer X { float x[]; };

layout(push_constant) uniform PC {
    uint n;
    float a;
    uint x_off;
} pc;

void main()
{
    const uint i = flat_group() * WG + gl_LocalInvocationID.x;
    if (i >= pc.n)
        return;
#ifdef SOFTCAP
    x[pc.x_off + i] = pc.a * tanh(clamp(x[pc.x_off + i] / pc.a, -15.0, 15.0));
#else
    x[pc.x_off + i] *= pc.a;
#endif
}

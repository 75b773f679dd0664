#version 450
#extension GL_GOOGLE_include_directive : require
/* out[i] = a[i] + b[i]. One invocation per element; out may alias a or b. */
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n;
    uint a_off;
    uint b_off;
    uint o_off;
} pc;

void main()
{
    const uint i = flat_group() * WG + gl_LocalInvocationID.x;
    if (i >= pc.n)
        return;
    o[pc.o_off + i] = a[pc.a_off + i] + b[pc.b_off + i];
}

#version 450
// Reads a buffer once with 16-byte loads and writes one sum per workgroup: measures the device's read
// bandwidth for `vkllm bench`. The sum is written so the compiler cannot drop the loads.
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Params { uint n_vec4; uint per_thread; } p;

shared uint partial[gl_WorkGroupSize.x];

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint acc = 0;
    for (uint k = 0; k < p.per_thread; k++) {
        uint i = gl_GlobalInvocationID.x + k * stride;
        if (i < p.n_vec4) {
            uvec4 v = src[i];
            acc += v.x ^ v.y ^ v.z ^ v.w;
        }
    }
    partial[gl_LocalInvocationID.x] = acc;
    barrier();
    if (gl_LocalInvocationID.x == 0) {
        uint s = 0;
        for (uint j = 0; j < gl_WorkGroupSize.x; j++)
            s += partial[j];
        dst[gl_WorkGroupID.x] = s;
    }
}

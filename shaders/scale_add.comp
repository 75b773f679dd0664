#version 450
// y[i] = x[i] * a + b: the smallest useful kernel, used by the runtime's own tests (graph barriers,
// replay, large buffers).
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint n; float a; float b; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i < p.n)
        y[i] = x[i] * p.a + p.b;
}

/* Shared pieces of the non-matmul kernels (rmsnorm, rope, softmax, elementwise, kv_store, attention).
 *   layout(local_size_x_id = 0): the workgroup size is spec constant 0, visible here as WG (a power of
 *   two chosen by the host). Dispatches are 1-D lists of workgroups laid out over x and y (to stay under
 *   maxComputeWorkGroupCount): flat_group() is the index in that list.
 * Reductions over the workgroup (wg_sum, wg_max) use subgroup arithmetic when USE_SUBGROUP is defined
 * (variant *_sg), else a shared-memory tree. They must be called in uniform control flow by every
 * invocation of the workgroup. Include this first, right after #version and the include extension. */
#ifndef VKLLM_COMMON_OPS_GLSL
#define VKLLM_COMMON_OPS_GLSL

#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 0) const uint WG = 64;

#define NEG_INF uintBitsToFloat(0xff800000u)

uint flat_group()
{
    return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
}

#ifdef NEED_REDUCE
shared float red_buf[WG];

#ifdef USE_SUBGROUP
float wg_sum(float v)
{
    v = subgroupAdd(v);
    if (subgroupElect())
        red_buf[gl_SubgroupID] = v;
    barrier();
    float r = red_buf[0];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        r += red_buf[i];
    barrier();
    return r;
}

float wg_max(float v)
{
    v = subgroupMax(v);
    if (subgroupElect())
        red_buf[gl_SubgroupID] = v;
    barrier();
    float r = red_buf[0];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        r = max(r, red_buf[i]);
    barrier();
    return r;
}
#else
float wg_sum(float v)
{
    const uint lid = gl_LocalInvocationID.x;
    red_buf[lid] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red_buf[lid] += red_buf[lid + s];
        barrier();
    }
    float r = red_buf[0];
    barrier();
    return r;
}

float wg_max(float v)
{
    const uint lid = gl_LocalInvocationID.x;
    red_buf[lid] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red_buf[lid] = max(red_buf[lid], red_buf[lid + s]);
        barrier();
    }
    float r = red_buf[0];
    barrier();
    return r;
}
#endif
#endif /* NEED_REDUCE */

#endif

#version 450
/* X (n_cols columns of K floats) to f16, once per matrix product, for the cooperative-matrix matmul
 * (host/ops/ops_matmul.c; shaders/matmul_coopmat.comp reads it 8 halves per uvec4 load instead of converting
 * floats in every row tile). Column c goes to halves [c * K16, c * K16 + K16) of the output, K16 = K rounded up
 * to 8, the halves from K on zero, so every uvec4 of a column is whole. An invocation writes one uvec4 (8
 * halves) of one column: x = its uvec4 in the column, y = the column. Values beyond the f16 range become
 * infinities (the kernel's inputs are f16).
 * Bindings: 0 = X (floats), 1 = the f16 output (uvec4s). */
layout(local_size_x = 64) in;

layout(push_constant) uniform Push {
    uint K;       /* floats per column of X */
    uint K16;     /* halves per column of the output (K rounded up to 8) */
    uint x_off;   /* floats from the start of binding 0 to column 0 */
    uint o_off;   /* uvec4s from the start of binding 1 to column 0 */
} pc;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer O { uvec4 o[]; };

void main()
{
    const uint j = gl_GlobalInvocationID.x, c = gl_WorkGroupID.y;
    if (j >= pc.K16 / 8u)
        return;
    const uint xb = pc.x_off + c * pc.K, k = 8u * j;
    float v[8];
    for (uint i = 0u; i < 8u; i++)
        v[i] = k + i < pc.K ? x[xb + k + i] : 0.0;
    o[pc.o_off + c * (pc.K16 / 8u) + j] = uvec4(packHalf2x16(vec2(v[0], v[1])), packHalf2x16(vec2(v[2], v[3])),
                                                packHalf2x16(vec2(v[4], v[5])), packHalf2x16(vec2(v[6], v[7])));
}

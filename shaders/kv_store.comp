#version 450
#extension GL_GOOGLE_include_directive : require
/* Stores K and V rows (f32, n_rows x kv_dim) into the f16 caches at row positions[r]. The caches are
 * uint arrays of packed half pairs ([n_ctx][kv_dim/2] words). One invocation per pair of each K and V.
 * A position >= n_ctx is skipped (the host checks positions it knows; this only guards memory).
 * With ROPE defined, K is first rotated in the interleaved layout (pairs (2i, 2i+1), which are exactly
 * the packed pairs), with the same arithmetic as rope.comp, so decode needs no separate rope of K. */
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer K { float k[]; };
layout(set = 0, binding = 1) readonly buffer V { float v[]; };
layout(set = 0, binding = 2) writeonly buffer KC { uint kc[]; };
layout(set = 0, binding = 3) writeonly buffer VC { uint vc[]; };
layout(set = 0, binding = 4) readonly buffer P { uint positions[]; };
#ifdef ROPE
layout(set = 0, binding = 5) readonly buffer F { float freq_factors[]; };   /* read only when has_ff */
#endif

layout(push_constant) uniform PC {
    uint n_rows;
    uint kv_half;     /* kv_dim / 2: words per cache row */
    uint n_ctx;
    uint k_off;       /* floats */
    uint v_off;
    uint kc_off;      /* words */
    uint vc_off;
    uint p_off;
#ifdef ROPE
    uint half_head;   /* head_dim / 2: pairs per head */
    uint half_rot;    /* n_rot / 2: rotated pairs per head */
    float freq_exp;   /* as rope.comp */
    uint has_ff;
    uint f_off;
#endif
} pc;

void main()
{
    const uint idx = flat_group() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_rows * pc.kv_half)
        return;
    const uint r = idx / pc.kv_half;
    const uint c = idx % pc.kv_half;
    const uint pos = positions[pc.p_off + r];
    if (pos >= pc.n_ctx)
        return;
    const uint src = 2 * idx;   /* = r * kv_dim + 2c */
    const uint dst = pos * pc.kv_half + c;
    vec2 kk = vec2(k[pc.k_off + src], k[pc.k_off + src + 1]);
#ifdef ROPE
    const uint i = c % pc.half_head;
    if (i < pc.half_rot) {
        float freq = exp2(float(i) * pc.freq_exp);
        if (pc.has_ff != 0)
            freq /= freq_factors[pc.f_off + i];
        const float theta = float(pos) * freq;
        const float cs = cos(theta), sn = sin(theta);
        kk = vec2(kk.x * cs - kk.y * sn, kk.x * sn + kk.y * cs);
    }
#endif
    kc[pc.kc_off + dst] = packHalf2x16(kk);
    vc[pc.vc_off + dst] = packHalf2x16(vec2(v[pc.v_off + src], v[pc.v_off + src + 1]));
}

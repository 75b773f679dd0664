#version 450
#extension GL_GOOGLE_include_directive : require
/* Stores K and V rows (f32, n_rows x kv_dim) into the f16 caches at row positions[r]. The caches are
 * uint arrays of packed half pairs ([n_ctx][kv_dim/2] words). One invocation per pair of each K and V.
 * A position >= n_ctx is skipped (the host checks positions it knows; this only guards memory).
 * With ROPE defined, K is first rotated in the interleaved layout (pairs (2i, 2i+1), which are exactly
 * the packed pairs), with the same arithmetic as rope.comp, so decode needs no separate rope of K; and when
 * q_half > 0, Q (n_rows x 2*q_half floats) is rotated in place by the invocations after those of K/V, so it
 * needs no rope dispatch either. With row_base != 0 (several sequences in one cache), row r goes to cache row
 * positions[n_rows + r] + positions[2 * n_rows + r]: its sequence's first row plus its row within the
 * sequence (its position, unless positions were removed before it; rope still turns by the position). */
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer K { float k[]; };
layout(set = 0, binding = 1) readonly buffer V { float v[]; };
layout(set = 0, binding = 2) writeonly buffer KC { uint kc[]; };
layout(set = 0, binding = 3) writeonly buffer VC { uint vc[]; };
layout(set = 0, binding = 4) readonly buffer P { uint positions[]; };
#ifdef ROPE
layout(set = 0, binding = 5) readonly buffer F { float freq_factors[]; };   /* read only when has_ff */
layout(set = 0, binding = 6) buffer Q { float q[]; };                        /* used only when q_half > 0 */
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
    uint q_half;      /* query pairs per row (n_heads * head_dim / 2); 0: no Q */
    uint q_off;       /* floats */
#endif
    uint row_base;    /* positions[n_rows + r] holds row r's first cache row */
} pc;

#ifdef ROPE
#include "rope_pair.glsl"

/* Pair (x, y) = dims (2i, 2i+1) of a head (pair index c of the row) turned for position pos. */
vec2 rotate(vec2 xy, uint c, uint pos)
{
    return rope_pair(xy, c % pc.half_head, pos);
}
#endif

void main()
{
    const uint idx = flat_group() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_rows * pc.kv_half) {
#ifdef ROPE
        const uint j = idx - pc.n_rows * pc.kv_half;   /* a pair of Q */
        if (j < pc.n_rows * pc.q_half) {
            const uint at = pc.q_off + 2 * j;
            const vec2 qq = rotate(vec2(q[at], q[at + 1]), j % pc.q_half, positions[pc.p_off + j / pc.q_half]);
            q[at] = qq.x;
            q[at + 1] = qq.y;
        }
#endif
        return;
    }
    const uint r = idx / pc.kv_half;
    const uint c = idx % pc.kv_half;
    const uint pos = positions[pc.p_off + r];
    const uint at = pc.row_base != 0 ? positions[pc.p_off + pc.n_rows + r] + positions[pc.p_off + 2 * pc.n_rows + r]
                                     : pos;
    if (at >= pc.n_ctx)
        return;
    const uint src = 2 * idx;   /* = r * kv_dim + 2c */
    const uint dst = at * pc.kv_half + c;
    vec2 kk = vec2(k[pc.k_off + src], k[pc.k_off + src + 1]);
#ifdef ROPE
    kk = rotate(kk, c, pos);
#endif
    kc[pc.kc_off + dst] = packHalf2x16(kk);
    vc[pc.vc_off + dst] = packHalf2x16(vec2(v[pc.v_off + src], v[pc.v_off + src + 1]));
}

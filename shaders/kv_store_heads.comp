#version 450
#extension GL_GOOGLE_include_directive : require
/* Q/K/V preparation for one layer in one dispatch, a workgroup per (row, head): the n_heads query heads of a
 * row, then its n_kv_heads key/value heads. Each head is read into shared memory and, in order:
 *   + its bias (flag BIAS: aux holds q bias [n_heads*head_dim], k bias, v bias [n_kv_heads*head_dim] each),
 *   per-head RMSNorm times a weight (flag NORM: aux then holds q norm [head_dim], k norm [head_dim]),
 *   rope: pair i < n_rot/2 is (i, i + n_rot/2) (flag NEOX) or (2i, 2i+1), turned by
 *   pos * theta_base^(-2i/n_rot) / freq_factors[i] (flag FF), cos and sin times mscale.
 * Query heads are written back in place; key heads, and the value heads with their bias, go to the f16 caches
 * at row positions[r] (uint words of packed half pairs, as kv_store.comp); a position >= n_ctx is skipped,
 * unless the cache is a ring (flag RING: a sliding-window layer's cache of n_ctx rows, position p in row
 * p % n_ctx). Flag ROW_BASE (several sequences in one cache): row r goes to cache row
 * positions[n_rows + r] + positions[2 * n_rows + r], its sequence's first row plus its row within the
 * sequence (its position, unless positions were removed before it); with RING too, one ring of n_ctx rows per
 * sequence: sequence positions[n_rows + r] / seq_rows, row sequence * n_ctx + p % n_ctx. */
#define NEED_REDUCE
#include "common_ops.glsl"

layout(set = 0, binding = 0) buffer Q { float q[]; };
layout(set = 0, binding = 1) readonly buffer K { float k[]; };
layout(set = 0, binding = 2) readonly buffer V { float v[]; };
layout(set = 0, binding = 3) writeonly buffer KC { uint kc[]; };
layout(set = 0, binding = 4) writeonly buffer VC { uint vc[]; };
layout(set = 0, binding = 5) readonly buffer P { uint positions[]; };
layout(set = 0, binding = 6) readonly buffer F { float freq_factors[]; };   /* read only with FF */
layout(set = 0, binding = 7) readonly buffer A { float aux[]; };            /* read only with BIAS or NORM */

layout(push_constant) uniform PC {
    uint n_rows;
    uint n_heads;
    uint n_kv_heads;
    uint head_dim;
    uint n_rot;
    uint n_ctx;
    float freq_exp;   /* -2 * log2(theta_base) / n_rot */
    float mscale;
    uint flags;       /* 1 NEOX, 2 FF, 4 BIAS, 8 NORM, 16 no Q heads, 32 RING, 64 ROW_BASE */
    float eps;
    uint q_off;       /* floats */
    uint k_off;
    uint v_off;
    uint kc_off;      /* words */
    uint vc_off;
    uint p_off;
    uint f_off;
    uint a_off;
    uint seq_rows;    /* RING with ROW_BASE: the rows between two sequences' bases */
} pc;

const uint NEOX = 1u, FF = 2u, BIAS = 4u, NORM = 8u, NO_Q = 16u, RING = 32u, ROW_BASE = 64u;
const uint MAX_HEAD_DIM = 256;

shared float h[MAX_HEAD_DIM];

void main()
{
    const uint n_q = (pc.flags & NO_Q) != 0u ? 0u : pc.n_heads;
    const uint slots = n_q + pc.n_kv_heads;
    const uint g = flat_group();
    if (g >= pc.n_rows * slots)
        return;
    const uint lid = gl_LocalInvocationID.x;
    const uint row = g / slots, s = g % slots;
    const bool is_q = s < n_q;
    const uint head = is_q ? s : s - n_q;
    const uint hd = pc.head_dim;
    const uint q_dim = pc.n_heads * hd, kv_dim = pc.n_kv_heads * hd;
    const uint pos = positions[pc.p_off + row];
    const uint src = is_q ? pc.q_off + row * q_dim + head * hd : pc.k_off + row * kv_dim + head * hd;
    const uint bias_at = pc.a_off + (is_q ? head * hd : q_dim + head * hd);

    float ss = 0.0;
    for (uint i = lid; i < hd; i += WG) {
        float x = is_q ? q[src + i] : k[src + i];
        if ((pc.flags & BIAS) != 0u)
            x += aux[bias_at + i];
        h[i] = x;
        ss = fma(x, x, ss);
    }
    if ((pc.flags & NORM) != 0u) {
        const float r = inversesqrt(wg_sum(ss) / float(hd) + pc.eps);
        const uint norm_at = pc.a_off + ((pc.flags & BIAS) != 0u ? q_dim + 2u * kv_dim : 0u) + (is_q ? 0u : hd);
        for (uint i = lid; i < hd; i += WG)
            h[i] = h[i] * r * aux[norm_at + i];
    }
    barrier();
    const uint half_rot = pc.n_rot / 2u;
    for (uint i = lid; i < half_rot; i += WG) {
        const uint a = (pc.flags & NEOX) != 0u ? i : 2u * i;
        const uint b = (pc.flags & NEOX) != 0u ? i + half_rot : a + 1u;
        float freq = exp2(float(i) * pc.freq_exp);
        if ((pc.flags & FF) != 0u)
            freq /= freq_factors[pc.f_off + i];
        const float theta = float(pos) * freq;
        const float cs = cos(theta) * pc.mscale, sn = sin(theta) * pc.mscale;
        const float x0 = h[a], x1 = h[b];
        h[a] = x0 * cs - x1 * sn;
        h[b] = x0 * sn + x1 * cs;
    }
    barrier();
    if (is_q) {
        for (uint i = lid; i < hd; i += WG)
            q[src + i] = h[i];
        return;
    }
    const uint at = (pc.flags & ROW_BASE) != 0u
                        ? positions[pc.p_off + pc.n_rows + row] + positions[pc.p_off + 2u * pc.n_rows + row]
                        : pos;
    if (at >= pc.n_ctx && (pc.flags & RING) == 0u)
        return;
    const uint hd2 = hd / 2u;
    const bool seq_ring = (pc.flags & (RING | ROW_BASE)) == (RING | ROW_BASE);
    const uint ring_row = seq_ring ? positions[pc.p_off + pc.n_rows + row] / pc.seq_rows * pc.n_ctx : 0u;
    const uint dst = ((pc.flags & RING) != 0u ? ring_row + pos % pc.n_ctx : at) * (kv_dim / 2u) + head * hd2;
    const uint vsrc = pc.v_off + row * kv_dim + head * hd;
    const uint vbias = pc.a_off + q_dim + kv_dim + head * hd;
    for (uint c = lid; c < hd2; c += WG) {
        kc[pc.kc_off + dst + c] = packHalf2x16(vec2(h[2u * c], h[2u * c + 1u]));
        vec2 vv = vec2(v[vsrc + 2u * c], v[vsrc + 2u * c + 1u]);
        if ((pc.flags & BIAS) != 0u)
            vv += vec2(aux[vbias + 2u * c], aux[vbias + 2u * c + 1u]);
        vc[pc.vc_off + dst + c] = packHalf2x16(vv);
    }
}

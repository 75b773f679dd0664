#version 450
#extension GL_GOOGLE_include_directive : require
/* Causal attention over the f16 KV cache, one workgroup per (query row, query head), online softmax
 * over tiles of WG cache rows (flash-attention style), so no score row is ever held whole:
 *   for each tile: every invocation scores one cache row j (q . K[j], q pre-scaled), the tile max
 *   updates the running max m, the running sum and output are rescaled by exp(m_old - m_new), and each
 *   invocation accumulates its output pairs d2 = lid, lid + WG, ... over the tile's V rows.
 * Query row r sees cache rows 0..min(positions[r], n_ctx - 1), or with window > 0 only the last `window` of
 * them (sliding-window layers: the reads are bounded by the window). With ring != 0 the cache is a ring of
 * n_ctx rows holding position j in row j % n_ctx (a sliding-window layer's cache sized to its window), and
 * row r sees positions up to positions[r] itself. With softcap > 0 a score s becomes
 * softcap * tanh(s / softcap) (Gemma 2). Head h reads kv head h / group.
 * Caches are uint arrays of packed half pairs: row j, kv head g starts at word j*kv_stride + g*hd2.
 * SPLIT (flash decoding): n_split workgroups share a (row, head), each taking one contiguous part of the
 * cache rows (at least part_min of them, so short caches leave the last parts empty), and write their unnormalised output with their running max and sum to a scratch buffer
 * (binding 4: per (row, head, split) head_dim floats, then m, then l); attention_combine.comp merges
 * them. Long contexts then keep many workgroups busy even for one query row.
 * row_base != 0 (several sequences in one cache): positions[n_rows + r] is the first cache row of row r's
 * sequence and positions[2 * n_rows + r] its row within it (its position, unless positions were removed
 * before it), and row r sees rows base .. base + that row (windowed within them) instead of 0 .. positions[r].
 * With ring too (sliding-window layers of several sequences), the cache holds one ring of n_ctx rows per
 * sequence: row r's sequence is base / seq_rows (the base is its first row in the full layers) and position j
 * of it is in row sequence * n_ctx + j % n_ctx. */
#define NEED_REDUCE
#include "common_ops.glsl"

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
layout(set = 0, binding = 1) readonly buffer KC { uint kc[]; };
layout(set = 0, binding = 2) readonly buffer VC { uint vc[]; };
layout(set = 0, binding = 3) readonly buffer P { uint positions[]; };
layout(set = 0, binding = 4) writeonly buffer O { float o[]; };   /* SPLIT: the scratch buffer */

layout(push_constant) uniform PC {
    uint n_rows;
    uint n_heads;
    uint group;       /* n_heads / n_kv_heads */
    uint hd2;         /* head_dim / 2 (<= 128) */
    uint kv_stride;   /* words per cache row = n_kv_heads * hd2 */
    uint n_ctx;
    float scale;
    uint q_off;       /* floats */
    uint k_off;       /* words */
    uint v_off;
    uint p_off;
    uint o_off;       /* floats */
    uint n_split;     /* SPLIT only */
    uint window;      /* 0: all rows up to the position */
    float softcap;    /* 0: none */
    uint ring;        /* the cache is a ring of n_ctx rows (window > 0) */
    uint part_min;    /* SPLIT only: the fewest cache rows a part takes */
    uint row_base;    /* positions[n_rows + r]: row r's first cache row, [2 n_rows + r] its row in it */
    uint seq_rows;    /* ring with row_base: the rows between two sequences' bases */
} pc;

const uint MAX_HD2 = 128;
const uint PPT = (MAX_HD2 + WG - 1) / WG;   /* output pairs per invocation, at most */

shared vec2 qs[MAX_HD2];
shared float ps[WG];

void main()
{
#ifdef SPLIT
    const uint split = flat_group() % pc.n_split;
    const uint g = flat_group() / pc.n_split;
#else
    const uint g = flat_group();
#endif
    if (g >= pc.n_rows * pc.n_heads)
        return;
    const uint lid = gl_LocalInvocationID.x;
    const uint row = g / pc.n_heads;
    const uint h = g % pc.n_heads;
    const uint kvh = h / pc.group;
    const uint hd2 = pc.hd2;
    const uint qb = pc.q_off + g * 2 * hd2;   /* = (row * n_heads + h) * head_dim */
    const uint kb = pc.k_off + kvh * hd2;
    const uint vb = pc.v_off + kvh * hd2;

    for (uint d = lid; d < hd2; d += WG)
        qs[d] = vec2(q[qb + 2 * d], q[qb + 2 * d + 1]) * pc.scale;
    const uint pos = pc.row_base != 0 ? positions[pc.p_off + 2 * pc.n_rows + row] : positions[pc.p_off + row];
    const uint base = pc.row_base != 0 ? positions[pc.p_off + pc.n_rows + row] : 0;
    const uint kv_len = (pc.ring != 0 ? base + pos : min(base + pos, pc.n_ctx - 1)) + 1;
    /* ring: the first cache row of this row's ring; position j (kv index base + j) in ring_row + j % n_ctx */
    const uint ring_row = pc.ring != 0 && pc.row_base != 0 ? base / pc.seq_rows * pc.n_ctx : 0;
    const uint kv_lo = pc.window != 0 && kv_len > base + pc.window ? kv_len - pc.window : base;
#ifdef SPLIT
    const uint chunk = max((kv_len - kv_lo + pc.n_split - 1) / pc.n_split, pc.part_min);
    const uint j_begin = min(kv_lo + split * chunk, kv_len);
    const uint j_end = min(j_begin + chunk, kv_len);
#else
    const uint j_begin = kv_lo, j_end = kv_len;
#endif
    barrier();

    float m = NEG_INF;      /* running max (uniform) */
    float l_part = 0.0;     /* this invocation's share of the running sum */
    vec2 acc[PPT];
    for (uint k = 0; k < PPT; k++)
        acc[k] = vec2(0.0);

    for (uint j0 = j_begin; j0 < j_end; j0 += WG) {
        const uint j = j0 + lid;
        float s = NEG_INF;
        if (j < j_end) {
            const uint kr = kb + (pc.ring != 0 ? ring_row + (j - base) % pc.n_ctx : j) * pc.kv_stride;
            float d0 = 0.0, d1 = 0.0;
            uint i = 0;
            for (; i + 1 < hd2; i += 2) {
                d0 += dot(unpackHalf2x16(kc[kr + i]), qs[i]);
                d1 += dot(unpackHalf2x16(kc[kr + i + 1]), qs[i + 1]);
            }
            if (i < hd2)
                d0 += dot(unpackHalf2x16(kc[kr + i]), qs[i]);
            s = d0 + d1;
            if (pc.softcap > 0.0)
                s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
        }
        const float m_new = max(m, wg_max(s));   /* finite: row j0 is always visible */
        const float alpha = exp(m - m_new);
        const float p = j < j_end ? exp(s - m_new) : 0.0;
        l_part = l_part * alpha + p;
        ps[lid] = p;
        barrier();

        const uint nt = min(WG, j_end - j0);
        for (uint k = 0; k < PPT; k++) {
            const uint d2 = lid + k * WG;
            if (d2 < hd2) {
                vec2 a = acc[k] * alpha;
                if (pc.ring == 0) {
                    uint vr = vb + j0 * pc.kv_stride + d2;
                    for (uint t = 0; t < nt; t++, vr += pc.kv_stride)
                        a += ps[t] * unpackHalf2x16(vc[vr]);
                } else {
                    uint jr = (j0 - base) % pc.n_ctx;   /* cache row of position j0 + t, in its ring */
                    for (uint t = 0; t < nt; t++) {
                        a += ps[t] * unpackHalf2x16(vc[vb + (ring_row + jr) * pc.kv_stride + d2]);
                        jr = jr + 1 == pc.n_ctx ? 0 : jr + 1;
                    }
                }
                acc[k] = a;
            }
        }
        barrier();
        m = m_new;
    }

#ifdef SPLIT
    /* An empty part (more parts than rows) leaves m = -inf, l = 0, acc = 0: it weighs nothing. */
    const float l = wg_sum(l_part);
    const uint sb = pc.o_off + (g * pc.n_split + split) * (2 * hd2 + 2);
    for (uint k = 0; k < PPT; k++) {
        const uint d2 = lid + k * WG;
        if (d2 < hd2) {
            o[sb + 2 * d2] = acc[k].x;
            o[sb + 2 * d2 + 1] = acc[k].y;
        }
    }
    if (lid == 0) {
        o[sb + 2 * hd2] = m;
        o[sb + 2 * hd2 + 1] = l;
    }
#else
    const float inv = 1.0 / wg_sum(l_part);
    const uint ob = pc.o_off + g * 2 * hd2;
    for (uint k = 0; k < PPT; k++) {
        const uint d2 = lid + k * WG;
        if (d2 < hd2) {
            o[ob + 2 * d2] = acc[k].x * inv;
            o[ob + 2 * d2 + 1] = acc[k].y * inv;
        }
    }
#endif
}

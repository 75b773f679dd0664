#version 450
#extension GL_GOOGLE_include_directive : require
/* Causal attention over the f16 KV cache for a prompt (many query rows): the same result as attention.comp,
 * but a workgroup takes BQ query vectors that share one kv head (rows x the heads of its group) and walks
 * the cache in tiles of BC rows held in shared memory, so each K/V tile is read once for BQ queries instead
 * of once per query (flash attention; no score matrix beyond BQ x BC is ever held). Per tile:
 *   1. K and V rows j0 .. j0+BC-1 go to shared memory (the words of packed half pairs, as in the cache);
 *   2. the BQ x BC scores q.K (q pre-scaled), -inf past each query's visible length;
 *   3. per query: running max m, rescale factor alpha = exp(m_old - m_new), p = exp(s - m_new), running sum;
 *   4. each invocation updates its output pairs: acc = acc * alpha + sum_c p_c V_c, over the visible rows
 *      only (rows past a query's length or before its window are never multiplied, whatever they hold).
 * Query vector i of kv head g is row i / group, head g * group + i % group; it sees cache rows
 * 0 .. min(positions[row], n_ctx - 1), or only the last `window` of them when window > 0 (tiles before the
 * block's earliest visible row are not read). softcap > 0: scores s -> softcap * tanh(s / softcap). ring != 0: the
 * cache is a ring of n_ctx rows, position j in row j % n_ctx, and queries see positions up to their own; with
 * row_base too, one ring of n_ctx rows per sequence: the rows the block walks are base + position, and row
 * v is position v % seq_rows of sequence v / seq_rows, in cache row sequence * n_ctx + position % n_ctx.
 * Spec constants: 0 = WG (common_ops.glsl), 1 = BQ, 2 = BC, 3 = HD2 (head_dim / 2): they size the shared
 * arrays, so the host picks them to fit the device's shared memory. K rows in shared memory are HD2 + 1 words
 * apart: step 2 reads ks[c][d] with consecutive invocations on consecutive rows c, which a stride of HD2 (a
 * multiple of 32 for the usual head sizes) would put all on one shared-memory bank.
 * Decode (one query row per sequence) uses the same kernel with BQ = the group's heads, so a workgroup reads
 * each K/V row once for all query heads of its kv head, coalesced (invocations over the row's words).
 * SPLIT (flash decoding): n_split workgroups share a block, each taking a contiguous part of the block's
 * visible cache rows (at least part_min rows, so short caches use fewer parts and later ones do nothing), and
 * write each query's unnormalised output, running max and sum to a scratch buffer laid out as
 * attention.comp's SPLIT form (per (row, head, part): head_dim floats, m, l), merged by attention_combine. */
#include "common_ops.glsl"

layout(constant_id = 1) const uint BQ = 16;
layout(constant_id = 2) const uint BC = 32;
layout(constant_id = 3) const uint HD2 = 64;

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
layout(set = 0, binding = 1) readonly buffer KC { uint kc[]; };
layout(set = 0, binding = 2) readonly buffer VC { uint vc[]; };
layout(set = 0, binding = 3) readonly buffer P { uint positions[]; };
layout(set = 0, binding = 4) writeonly buffer O { float o[]; };

layout(push_constant) uniform PC {
    uint n_rows;
    uint n_heads;
    uint group;       /* n_heads / n_kv_heads */
    uint kv_stride;   /* words per cache row = n_kv_heads * HD2 */
    uint n_ctx;
    float scale;
    uint q_off;       /* floats */
    uint k_off;       /* words */
    uint v_off;
    uint p_off;
    uint o_off;       /* floats */
    uint n_blocks;    /* workgroups per kv head */
    uint window;      /* 0: all rows up to the position */
    float softcap;    /* 0: none */
    uint ring;        /* the cache is a ring of n_ctx rows (window > 0) */
    uint n_split;     /* SPLIT only */
    uint part_min;    /* SPLIT only: the fewest cache rows a part takes */
    uint row_base;    /* positions[n_rows + r]: row r's first cache row, [2 n_rows + r] its row in it, as attention.comp */
    uint seq_rows;    /* ring with row_base: the rows between two sequences' bases */
} pc;

const uint OPI = (BQ * HD2 + WG - 1) / WG;   /* output pairs per invocation */
const uint KS = HD2 + 1;                     /* K row stride in shared memory (words) */
const uint LPI = (BC * HD2 + WG - 1) / WG;   /* K (and V) words each invocation loads per tile */
const uint SPI = (BQ * BC + WG - 1) / WG;    /* scores per invocation per tile */

shared uint ks[BC * KS];
shared uint vs[BC * HD2];
shared vec2 qs[BQ * HD2];
shared float sp[BQ * BC];      /* scores, then probabilities */
shared float row_m[BQ], row_l[BQ], row_alpha[BQ];
shared uint row_len[BQ];       /* visible cache rows per query: row_lo .. row_len - 1; 0 past the last query */
shared uint row_lo[BQ];

void main()
{
#ifdef SPLIT
    const uint split = flat_group() % pc.n_split;
    const uint block = flat_group() / pc.n_split;
#else
    const uint block = flat_group();
#endif
    const uint kvh = block / pc.n_blocks;
    const uint first = (block % pc.n_blocks) * BQ;   /* first query vector of the block */
    const uint n_q = pc.n_rows * pc.group;                 /* query vectors of this kv head */
    if (kvh * pc.group >= pc.n_heads)
        return;
    const uint lid = gl_LocalInvocationID.x;

    for (uint r = lid; r < BQ; r += WG) {
        const uint i = first + r;
        /* the query's row within its sequence (its position without row_base) */
        const uint pos = i >= n_q ? 0u : positions[pc.p_off + (pc.row_base != 0u ? 2u * pc.n_rows : 0u) + i / pc.group];
        const uint base = i < n_q && pc.row_base != 0u ? positions[pc.p_off + pc.n_rows + i / pc.group] : 0u;
        const uint len = i < n_q ? (pc.ring != 0u ? base + pos : min(base + pos, pc.n_ctx - 1u)) + 1u : 0u;
        row_len[r] = len;
        row_lo[r] = i >= n_q ? 0xffffffffu : pc.window != 0u && len > base + pc.window ? len - pc.window : base;
        row_m[r] = NEG_INF;
        row_l[r] = 0.0;
    }
    for (uint e = lid; e < BQ * HD2; e += WG) {
        const uint r = e / HD2, d = e % HD2, i = first + r;
        vec2 v = vec2(0.0);
        if (i < n_q) {
            const uint head = kvh * pc.group + i % pc.group;
            const uint qb = pc.q_off + ((i / pc.group) * pc.n_heads + head) * 2u * HD2;
            v = vec2(q[qb + 2u * d], q[qb + 2u * d + 1u]) * pc.scale;
        }
        qs[e] = v;
    }
    barrier();
    uint j_end = 0u;              /* the longest visible length in the block (uniform) */
    uint j_start = 0xffffffffu;   /* the earliest visible row */
    for (uint r = 0u; r < BQ; r++) {
        j_end = max(j_end, row_len[r]);
        j_start = min(j_start, row_lo[r]);
    }
#ifdef SPLIT
    {
        const uint span = j_end > j_start ? j_end - j_start : 0u;
        const uint chunk = max((span + pc.n_split - 1u) / pc.n_split, pc.part_min);
        j_start = j_start + min(split * chunk, span);
        j_end = min(j_start + chunk, j_end);
    }
#endif

    vec2 acc[OPI];
    for (uint k = 0u; k < OPI; k++)
        acc[k] = vec2(0.0);

    for (uint j0 = j_start; j0 < j_end; j0 += BC) {
        const uint nc = min(BC, j_end - j0);
        /* A fixed count per invocation (from spec constants) lets the compiler issue all the loads at once. */
        for (uint k = 0u; k < LPI; k++) {
            const uint e = lid + k * WG, c = e / HD2, d = e % HD2;
            if (c < nc) {
                const uint v = j0 + c;
                const uint row = pc.ring == 0u    ? v
                                 : pc.row_base == 0u ? v % pc.n_ctx
                                                     : v / pc.seq_rows * pc.n_ctx + v % pc.seq_rows % pc.n_ctx;
                ks[c * KS + d] = kc[pc.k_off + row * pc.kv_stride + kvh * HD2 + d];
                vs[e] = vc[pc.v_off + row * pc.kv_stride + kvh * HD2 + d];
            }
        }
        barrier();
        for (uint k = 0u; k < SPI; k++) {
            const uint e = lid + k * WG, r = e / BC, c = e % BC;
            if (e >= BQ * BC)
                break;
            float s = NEG_INF;
            if (j0 + c < row_len[r] && j0 + c >= row_lo[r] && c < nc) {
                float d0 = 0.0, d1 = 0.0;
                uint d = 0u;
                for (; d + 1u < HD2; d += 2u) {
                    d0 += dot(unpackHalf2x16(ks[c * KS + d]), qs[r * HD2 + d]);
                    d1 += dot(unpackHalf2x16(ks[c * KS + d + 1u]), qs[r * HD2 + d + 1u]);
                }
                if (d < HD2)
                    d0 += dot(unpackHalf2x16(ks[c * KS + d]), qs[r * HD2 + d]);
                s = d0 + d1;
                if (pc.softcap > 0.0)
                    s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
            }
            sp[e] = s;
        }
        barrier();
        /* Over all BC columns (those past nc scored -inf): a constant count the compiler unrolls, so the shared
         * loads of a row go out together instead of one per loop trip. */
        for (uint r = lid; r < BQ; r += WG) {
            float mx = NEG_INF;
            for (uint c = 0u; c < BC; c++)
                mx = max(mx, sp[r * BC + c]);
            const float m_old = row_m[r], m_new = max(m_old, mx);
            /* A query with nothing visible in this tile (m_new may still be -inf): nothing changes. */
            const float alpha = m_new == NEG_INF ? 1.0 : exp(m_old - m_new);
            float sum = 0.0;
            for (uint c = 0u; c < BC; c++) {
                const float s = sp[r * BC + c];
                const float p = s == NEG_INF ? 0.0 : exp(s - m_new);
                sp[r * BC + c] = p;
                sum += p;
            }
            row_alpha[r] = alpha;
            row_l[r] = row_l[r] * alpha + sum;
            row_m[r] = m_new;
        }
        barrier();
        for (uint k = 0u; k < OPI; k++) {
            const uint e = lid + k * WG;
            if (e < BQ * HD2) {
                const uint r = e / HD2, d = e % HD2;
                const uint nv = min(nc, row_len[r] > j0 ? row_len[r] - j0 : 0u);
                const uint c0 = row_lo[r] > j0 ? row_lo[r] - j0 : 0u;   /* rows before the window */
                vec2 a = acc[k] * row_alpha[r];
                for (uint c = c0; c < nv; c++)
                    a += sp[r * BC + c] * unpackHalf2x16(vs[c * HD2 + d]);
                acc[k] = a;
            }
        }
        barrier();
    }

    for (uint k = 0u; k < OPI; k++) {
        const uint e = lid + k * WG;
        const uint r = e / HD2, d = e % HD2, i = first + r;
        if (e < BQ * HD2 && i < n_q) {
            const uint g = (i / pc.group) * pc.n_heads + kvh * pc.group + i % pc.group;   /* row, head */
#ifdef SPLIT
            /* A query that sees nothing in this part leaves m = -inf, l = 0, acc = 0: it weighs nothing. */
            const uint sb = pc.o_off + (g * pc.n_split + split) * (2u * HD2 + 2u);
            o[sb + 2u * d] = acc[k].x;
            o[sb + 2u * d + 1u] = acc[k].y;
            if (d == 0u) {
                o[sb + 2u * HD2] = row_m[r];
                o[sb + 2u * HD2 + 1u] = row_l[r];
            }
#else
            const vec2 v = acc[k] / row_l[r];
            o[pc.o_off + g * 2u * HD2 + 2u * d] = v.x;
            o[pc.o_off + g * 2u * HD2 + 2u * d + 1u] = v.y;
#endif
        }
    }
}

/* The quantized weight types in pieces of one 32-bit quant word (include after dequant.glsl): the view a GPU
 * kernel takes when consecutive lanes should read consecutive words of quants and consecutive vec4s of x
 * (shaders/matvec.comp). A unit of dequant.glsl is 16 to 48 bytes of quants and 16 to 64 elements per lane, so
 * lanes walking units read x 64-256 bytes apart (many L1 passes per subgroup load); a piece is one word of
 * quants (plus the high-bit word that goes with it) and 2 or 4 vec4s of x, and the pieces of a block are
 * numbered so that for every i, vec4 i of consecutive pieces is consecutive in x.
 *   DQ_PIECES               pieces per block
 *   DQ_PV                   vec4s (of 4 consecutive elements) per piece
 *   uint dq_piece_pos(p, i) element offset of vec4 i of piece p inside the block (a multiple of 4)
 *   dq_piece(meta, qw, p, q, ab)  piece p of the block whose quants start at word qw of wqw: q[i] holds the raw
 *                           quant values of vec4 i, whose values are ab[i].x * q[i] + ab[i].y
 * The 32-element types are their quarters (dq_quarter: lo = vec4 0, hi = vec4 1, one scale); the 256-element
 * types decode each piece's scales from the block's meta (the layouts are described in dequant.glsl). */
#ifndef VKLLM_DEQUANT_PIECES_GLSL
#define VKLLM_DEQUANT_PIECES_GLSL

#if defined(DQ_QUARTERS)
#define DQ_PIECES 4u
#define DQ_PV 2u
uint dq_piece_pos(uint p, uint i) { return 4u * p + 16u * i; }
void dq_piece(DqMeta m, uint qw, uint p, out vec4 q[DQ_PV], out vec2 ab[DQ_PV])
{
    dq_quarter(m, qw, p, q[0], q[1], ab[0]);
    ab[1] = ab[0];
}

/* Q4_K / Q5_K: piece p = qs word w = p % 8 of sub-block pair j = p / 8: bytes 4w..4w+3 of the pair's 32 give
 * elements 64j + 4w.. (low nibbles, sub-block 2j) and 64j + 32 + 4w.. (high nibbles, sub-block 2j + 1); Q5_K adds
 * the fifth bits 2j / 2j + 1 of qh word w. */
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
#define DQ_PIECES 32u
#define DQ_PV 2u
uint dq_piece_pos(uint p, uint i) { return 64u * (p >> 3) + 4u * (p & 7u) + 32u * i; }
void dq_piece(DqMeta m, uint qw, uint p, out vec4 q[DQ_PV], out vec2 ab[DQ_PV])
{
    const uint j = p >> 3;
#ifdef WTYPE_Q4_K
    const uint v = wqw[qw + p], h0 = 0u, h1 = 0u;
#else
    const uint v = wqw[qw + 8u + p], h = wqw[qw + (p & 7u)];
    const uint h0 = ((h >> (2u * j)) & 0x01010101u) << 4, h1 = ((h >> (2u * j + 1u)) & 0x01010101u) << 4;
#endif
    q[0] = ubytes((v & 0x0F0F0F0Fu) | h0);
    q[1] = ubytes(((v >> 4) & 0x0F0F0F0Fu) | h1);
    ab[0] = k4_ab(m, 2u * j);
    ab[1] = k4_ab(m, 2u * j + 1u);
}

/* Q2_K / Q3_K: piece p = qs word w = p % 8 of half n = p / 8 (bytes l = 4w..4w+3 of the half's 32): vec4 j holds
 * elements 128n + 32j + 4w.. (bits 2j; Q3_K: high bit 4n + j of hmask word w), sub-block 8n + 2j + w / 4. */
#elif defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K)
#define DQ_PIECES 16u
#define DQ_PV 4u
uint dq_piece_pos(uint p, uint i) { return 128u * (p >> 3) + 32u * i + 4u * (p & 7u); }
void dq_piece(DqMeta m, uint qw, uint p, out vec4 q[DQ_PV], out vec2 ab[DQ_PV])
{
    const uint n = p >> 3;
#ifdef WTYPE_Q2_K
    const uint v = wqw[qw + p];
    for (uint j = 0u; j < 4u; j++) {
        q[j] = ubytes((v >> (2u * j)) & 0x03030303u);
        const uint s = DQ_BYTE(m.sc, 8u * n + 2u * j + ((p & 7u) >> 2));
        ab[j] = vec2(m.dm.x * float(s & 0xFu), -m.dm.y * float(s >> 4));
    }
#else
    const uint v = wqw[qw + 8u + p], hm = wqw[qw + (p & 7u)];
    for (uint j = 0u; j < 4u; j++) {
        q[j] = ubytes(((v >> (2u * j)) & 0x03030303u) | (((hm >> (4u * n + j)) & 0x01010101u) << 2));
        const uint s = 8u * n + 2u * j + ((p & 7u) >> 2);
        const uint lo = (DQ_BYTE(m.sc, s & 7u) >> (4u * (s >> 3))) & 0xFu;
        const uint hi = (DQ_BYTE(m.sc, 8u + (s & 3u)) >> (2u * (s >> 2))) & 3u;
        const float a = m.d * (float(lo | (hi << 4)) - 32.0);
        ab[j] = vec2(a, -4.0 * a);
    }
#endif
}

/* Q6_K: piece p = word w = p % 8 of half n = p / 8 (l = 4w..4w+3): ql words 16n + w (ql[l]) and 16n + 8 + w
 * (ql[l + 32]), qh word 32 + 8n + w; vec4 i holds elements 128n + 32i + 4w.., scale 8n + 2i + w / 4. */
#elif defined(WTYPE_Q6_K)
#define DQ_PIECES 16u
#define DQ_PV 4u
uint dq_piece_pos(uint p, uint i) { return 128u * (p >> 3) + 32u * i + 4u * (p & 7u); }
void dq_piece(DqMeta m, uint qw, uint p, out vec4 q[DQ_PV], out vec2 ab[DQ_PV])
{
    const uint n = p >> 3, w = p & 7u;
    const uint a = wqw[qw + 16u * n + w], b = wqw[qw + 16u * n + 8u + w], c = wqw[qw + 32u + 8u * n + w];
    q[0] = ubytes((a & 0x0F0F0F0Fu) | ((c & 0x03030303u) << 4));
    q[1] = ubytes((b & 0x0F0F0F0Fu) | (((c >> 2) & 0x03030303u) << 4));
    q[2] = ubytes(((a >> 4) & 0x0F0F0F0Fu) | (((c >> 4) & 0x03030303u) << 4));
    q[3] = ubytes(((b >> 4) & 0x0F0F0F0Fu) | (((c >> 6) & 0x03030303u) << 4));
    for (uint i = 0u; i < 4u; i++) {
        const uint s = 8u * n + 2u * i + (w >> 2);
        const float d = m.d * float(bitfieldExtract(int(m.sc[s >> 2]), int(8u * (s & 3u)), 8));
        ab[i] = vec2(d, -32.0 * d);
    }
}

/* IQ4_XS: piece p = word w = p % 4 of sub-block s = p / 4: elements 32s + 4w.. (low nibbles) and 32s + 16 + 4w..
 * (high nibbles), both with the sub-block's scale. */
#elif defined(WTYPE_IQ4_XS)
#define DQ_PIECES 32u
#define DQ_PV 2u
uint dq_piece_pos(uint p, uint i) { return 32u * (p >> 2) + 4u * (p & 3u) + 16u * i; }
void dq_piece(DqMeta m, uint qw, uint p, out vec4 q[DQ_PV], out vec2 ab[DQ_PV])
{
    const uint v = wqw[qw + p], s = p >> 2;
    const uvec4 b = uvec4(v, v >> 8, v >> 16, v >> 24);
    q[0] = iq4_poly(b & 0xFu);
    q[1] = iq4_poly((b >> 4) & 0xFu);
    const uint ls = ((m.sl >> (4u * s)) & 0xFu) | (((m.sh >> (2u * s)) & 3u) << 4);
    ab[0] = vec2(m.d * (float(ls) - 32.0), 0.0);
    ab[1] = ab[0];
}
#endif

#endif

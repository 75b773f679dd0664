/* Error-minimising quantizers (see quantize.h). Block layouts are those of GGUF (little-endian, packed):
 *
 *   Q4_0   f16 d, qs[16]                     x = d * (q - 8),   q 4 bits; low nibbles hold elements 0..15
 *   Q4_1   f16 d, f16 m, qs[16]              x = d * q + m
 *   Q5_0   f16 d, qh[4], qs[16]              x = d * (q - 16),  q's 5th bit of element j is bit j of qh
 *   Q5_1   f16 d, f16 m, qh[4], qs[16]       x = d * q + m
 *   Q8_0   f16 d, int8 qs[32]                x = d * q
 *   IQ4_NL f16 d, qs[16]                     x = d * kvalues[q] (the 16 non-uniform levels below)
 *   Q2_K   scales[16], qs[64], f16 d, f16 dmin                 16 sub-blocks of 16: scale/min 4 bits each
 *   Q3_K   hmask[32], qs[64], scales[12], f16 d               16 sub-blocks of 16: signed 6-bit scales
 *   Q4_K   f16 d, f16 dmin, scales[12], qs[128]                8 sub-blocks of 32: 6-bit scale and min
 *   Q5_K   f16 d, f16 dmin, scales[12], qh[32], qs[128]        as Q4_K, 5-bit quants
 *   Q6_K   ql[128], qh[64], int8 scales[16], f16 d             16 sub-blocks of 16, 6-bit quants
 *   IQ4_XS f16 d, u16 scales_h, scales_l[4], qs[128]           8 sub-blocks of 32, 6-bit scales (-32 offset)
 * The bit placements are spelled out where each block is packed.
 *
 * Every quant is a level of a grid: integers lo..hi, or a table of 16 values (IQ4). A quant is stored as
 * its index in the grid (q - lo), which is exactly the unsigned field the formats store. */
#include "host/format/quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "host/format/ggml_types.h"
#include "host/format/quant.h"

/* The midpoints between consecutive IQ4 levels: the decision thresholds of the nearest level. */
static const float iq4_mids[15] = {-115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
                                   7.0f,    19.0f,  31.5f,  45.5f,  61.0f,  79.0f,  101.0f};

typedef struct grid {
    int lo, hi;              /* levels lo..hi (indices 0..hi-lo) */
    const int8_t *table;     /* non-NULL: level of index i is table[i] (lo = 0, hi = 15) */
    const float *mids;       /* with table: the hi midpoints between consecutive levels */
} grid;

static float level(const grid *g, int index) { return g->table ? (float)g->table[index] : (float)(g->lo + index); }

/* Index of the level nearest v; defined for any v (NaN gives the lowest). */
static int nearest(const grid *g, float v)
{
    if (g->table) {                          /* binary search for the first midpoint >= v */
        int a = 0, b = g->hi;
        while (a < b) {
            int m = (a + b) / 2;
            if (v > g->mids[m])
                a = m + 1;
            else
                b = m;
        }
        return a;
    }
    if (!(v > (float)g->lo))
        return 0;
    if (v >= (float)g->hi)
        return g->hi - g->lo;
    return (int)floorf(v + 0.5f) - g->lo;
}

/* Assigns each x_i its nearest level for x ~ s * level + o, writes the indices, returns the squared error. */
static double assign(const float *x, int n, const grid *g, float s, float o, uint8_t *q)
{
    float inv = s != 0.0f ? 1.0f / s : 0.0f;
    double err = 0;
    for (int i = 0; i < n; i++) {
        int k = nearest(g, (x[i] - o) * inv);
        q[i] = (uint8_t)k;
        double e = (double)x[i] - ((double)s * level(g, k) + o);
        err += e * e;
    }
    return err;
}

/* Candidate scales are the naive one (the largest-magnitude value on one end of the grid) times these
 * factors; each candidate's rounding is then refitted by least squares. */
enum { N_FACTORS = 17 };
static float factor(int k) { return 0.76f + 0.03f * (float)k; }   /* 0.76 .. 1.24; k = 8 gives 1 */

/* Symmetric fit, x ~ d * level(q): returns the d of least squared error among the candidates (a
 * candidate's quants fixed, the best d is sum(x*l)/sum(l*l), its error sum(x^2) - sum(x*l)^2/sum(l*l)). */
static float fit_scale(const float *x, int n, const grid *g)
{
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            vmax = x[i];
        }
    }
    if (!(amax > 0.0f) || !isfinite(amax))
        return isfinite(amax) ? 0.0f : (vmax > 0 ? FLT_MAX : -FLT_MAX);
    const float ends[2] = {level(g, 0), level(g, g->hi - g->lo)};
    double best_gain = -1.0;
    float best_d = 0.0f;
    for (int e = 0; e < 2; e++) {
        if (ends[e] == 0.0f)
            continue;
        for (int k = 0; k < N_FACTORS; k++) {
            float d = vmax / ends[e] * factor(k);
            float inv = 1.0f / d;
            double sxl = 0, sll = 0;
            for (int i = 0; i < n; i++) {
                double l = level(g, nearest(g, x[i] * inv));
                sxl += x[i] * l;
                sll += l * l;
            }
            if (sll > 0 && sxl * sxl / sll > best_gain) {
                best_gain = sxl * sxl / sll;
                best_d = (float)(sxl / sll);
            }
        }
    }
    return best_d;
}

/* Affine fit, x ~ d * q + m with q in 0..g->hi: among candidate ranges, the (d >= 0, m) of least squared
 * error, each candidate's quants refitted by least squares (twice: re-rounded with the refitted d, m).
 * m_nonpositive: the K-quants store the offset as a subtracted non-negative min, so m <= 0. */
static void fit_scale_min(const float *x, int n, const grid *g, bool m_nonpositive, float *d_out, float *m_out)
{
    float lo = x[0], hi = x[0];
    double sx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sx += x[i];
        sxx += (double)x[i] * x[i];
    }
    if (m_nonpositive && lo > 0.0f)
        lo = 0.0f;
    *d_out = 0.0f;
    *m_out = lo;
    if (!(hi > lo) || !isfinite(hi - lo))
        return;
    double best_err = DBL_MAX;
    for (int k = 0; k < N_FACTORS; k++) {
        double d = (hi - lo) / (double)g->hi * factor(k), m = lo;
        for (int iter = 0; iter < 2; iter++) {
            double inv = 1.0 / d, sq = 0, sqq = 0, sxq = 0;
            for (int i = 0; i < n; i++) {
                double q = nearest(g, (float)((x[i] - m) * inv));
                sq += q;
                sqq += q * q;
                sxq += x[i] * q;
            }
            if (!(sqq > 0))
                break;
            /* Both d and m by least squares; when every q is equal (det 0) only d, with m kept. */
            double det = n * sqq - sq * sq, nd, nm;
            if (det > 0) {
                nd = (n * sxq - sx * sq) / det;
                nm = (sx - nd * sq) / n;
            } else {
                nd = (sxq - m * sq) / sqq;
                nm = m;
            }
            if (m_nonpositive && nm > 0) {
                nm = 0;
                nd = sxq / sqq;
            }
            if (!(nd > 0))
                break;
            d = nd;
            m = nm;
            double err = sxx + d * d * sqq + n * m * m - 2 * d * sxq - 2 * m * sx + 2 * d * m * sq;
            if (err < best_err) {
                best_err = err;
                *d_out = (float)d;
                *m_out = (float)m;
            }
        }
    }
}

/* ---- storage helpers ---- */

static void store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

/* v rounded to f16, clamped to the finite f16 range (a huge outlier must not give an infinite scale). */
static float to_f16(float v, uint8_t *p)
{
    v = fminf(fmaxf(v, -65504.0f), 65504.0f);
    uint16_t h = vkl_fp32_to_fp16(isnan(v) ? 0.0f : v);
    if (p)
        store_u16(p, h);
    return vkl_fp16_to_fp32(h);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Rounded integer of v clamped to lo..hi (0 for NaN). */
static int round_clamp(float v, int lo, int hi)
{
    if (!(v >= (float)lo))
        return v > 0 ? hi : (isnan(v) ? 0 : lo);
    return v >= (float)hi ? hi : clampi((int)floorf(v + 0.5f), lo, hi);
}

/* ---- 32-element block formats ---- */

static const grid grid_q4 = {-8, 7, NULL, NULL}, grid_q5 = {-16, 15, NULL, NULL}, grid_q8 = {-128, 127, NULL, NULL};
static const grid grid_u4 = {0, 15, NULL, NULL}, grid_u5 = {0, 31, NULL, NULL}, grid_iq4 = {0, 15, vkl_iq4_levels, iq4_mids};

/* Symmetric block of 32: the fp16 scale at blk, the grid indices in q. */
static void block_symmetric(const float *x, const grid *g, uint8_t *blk, uint8_t *q)
{
    float d = to_f16(fit_scale(x, 32, g), blk);
    assign(x, 32, g, d, 0.0f, q);
}

/* Affine block of 32: fp16 d and m at blk and blk + 2. */
static void block_affine(const float *x, const grid *g, uint8_t *blk, uint8_t *q)
{
    float d, m;
    fit_scale_min(x, 32, g, false, &d, &m);
    d = to_f16(d, blk);
    m = to_f16(m, blk + 2);
    assign(x, 32, g, d, m, q);
}

/* 32 4-bit indices: element j in the low nibble of byte j, element j + 16 in its high nibble. */
static void pack_nibbles_32(const uint8_t *q, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] << 4));
}

/* The 5th bits of 32 indices: bit j of the little-endian 32-bit qh is element j's. */
static void pack_high_bits_32(const uint8_t *q, uint8_t *qh)
{
    memset(qh, 0, 4);
    for (int j = 0; j < 32; j++)
        qh[j / 8] |= (uint8_t)(((q[j] >> 4) & 1) << (j % 8));
}

/* The 32-element formats, one block each. Q4_0 and IQ4_NL: f16 d, then 16 bytes of nibbles. */
static void block_symmetric_nibbles(const float *x, const grid *g, uint8_t *blk)
{
    uint8_t q[32];
    block_symmetric(x, g, blk, q);
    pack_nibbles_32(q, blk + 2);
}

static void block_q4_0(const float *x, uint8_t *blk) { block_symmetric_nibbles(x, &grid_q4, blk); }
static void block_iq4_nl(const float *x, uint8_t *blk) { block_symmetric_nibbles(x, &grid_iq4, blk); }

static void block_q4_1(const float *x, uint8_t *blk)
{
    uint8_t q[32];
    block_affine(x, &grid_u4, blk, q);
    pack_nibbles_32(q, blk + 4);
}

static void block_q5_0(const float *x, uint8_t *blk)
{
    uint8_t q[32];
    block_symmetric(x, &grid_q5, blk, q);
    pack_high_bits_32(q, blk + 2);
    pack_nibbles_32(q, blk + 6);
}

static void block_q5_1(const float *x, uint8_t *blk)
{
    uint8_t q[32];
    block_affine(x, &grid_u5, blk, q);
    pack_high_bits_32(q, blk + 4);
    pack_nibbles_32(q, blk + 8);
}

static void block_q8_0(const float *x, uint8_t *blk)
{
    uint8_t q[32];
    block_symmetric(x, &grid_q8, blk, q);
    for (int i = 0; i < 32; i++)
        blk[2 + i] = (uint8_t)(int8_t)(q[i] - 128);
}

/* ---- K-quants: sub-block scales against a super-block scale ---- */

/* The f16 codes tried for a super-block scale near v: the nearest, and where that is subnormal (tiny
 * blocks) also its neighbours of larger and smaller magnitude: subnormal steps are coarse (up to 50%),
 * and the right neighbour can halve the error. Returns how many codes it wrote. */
static int scale_codes(float v, uint16_t *codes)
{
    v = fminf(fmaxf(v, -65504.0f), 65504.0f);
    uint16_t h = vkl_fp32_to_fp16(isnan(v) ? 0.0f : v);
    int n = 0;
    codes[n++] = h;
    if ((h & 0x7c00u) != 0)                 /* normal: neighbours differ by 0.1%, not worth trying */
        return n;
    if ((h & 0x7fffu) < 0x03feu) {          /* larger magnitude, staying subnormal */
        codes[n++] = (uint16_t)(h + 1);
        codes[n++] = (uint16_t)(h + 2);
    }
    if ((h & 0x7fffu) > 0)                  /* smaller magnitude, not crossing zero */
        codes[n++] = (uint16_t)(h - 1);
    return n;
}

/* Symmetric sub-blocks (Q3_K, Q6_K, IQ4_XS): each sub-block's scale s_j is fitted, then stored as the
 * integer c_j = round(s_j / d) in cmin..cmax with d chosen so the largest-magnitude s_j maps to cmin (the
 * end with more room). For each candidate f16 code of d, each c_j is re-picked among c_j-1..c_j+1 for
 * least error; the best d wins. Writes the f16 d at d_out, the c_j and the indices q. */
static void subblocks_symmetric(const float *x, int n_sub, int sub_len, const grid *g, int cmin, int cmax,
                                uint8_t *d_out, int *c, uint8_t *q)
{
    float s[16], smax = 0.0f;
    for (int j = 0; j < n_sub; j++) {
        s[j] = fit_scale(x + j * sub_len, sub_len, g);
        if (fabsf(s[j]) > fabsf(smax))
            smax = s[j];
    }
    uint16_t codes[4];
    int n_codes = scale_codes(smax / (float)cmin, codes);
    double best_total = DBL_MAX;
    int cc[16];
    uint8_t qq[QK_K], tmp[32];
    for (int k = 0; k < n_codes; k++) {
        float d = vkl_fp16_to_fp32(codes[k]);
        float inv = d != 0.0f ? 1.0f / d : 0.0f;
        double total = 0;
        for (int j = 0; j < n_sub; j++) {
            int c0 = round_clamp(s[j] * inv, cmin, cmax);
            double best = DBL_MAX;
            for (int cj = clampi(c0 - 1, cmin, cmax); cj <= clampi(c0 + 1, cmin, cmax); cj++) {
                double err = assign(x + j * sub_len, sub_len, g, d * (float)cj, 0.0f, tmp);
                if (err < best) {
                    best = err;
                    cc[j] = cj;
                    memcpy(qq + j * sub_len, tmp, (size_t)sub_len);
                }
            }
            total += best;
        }
        if (total < best_total) {
            best_total = total;
            store_u16(d_out, codes[k]);
            memcpy(c, cc, (size_t)n_sub * sizeof *c);
            memcpy(q, qq, (size_t)(n_sub * sub_len));
        }
    }
}

/* Affine sub-blocks (Q2_K, Q4_K, Q5_K): x ~ (d*c_j) * q - (dmin*m_j), c_j and m_j in 0..cmax; d and dmin
 * map the largest fitted scale and min to cmax. For each pair of candidate f16 codes of d and dmin, c_j
 * and m_j are re-picked among their 3x3 neighbours; the best pair wins. */
static void subblocks_affine(const float *x, int n_sub, int sub_len, const grid *g, int cmax, uint8_t *d_out,
                             uint8_t *dmin_out, int *c, int *m, uint8_t *q)
{
    float s[16], mn[16], smax = 0.0f, mmax = 0.0f;
    for (int j = 0; j < n_sub; j++) {
        float off;
        fit_scale_min(x + j * sub_len, sub_len, g, true, &s[j], &off);
        mn[j] = -off;
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, mn[j]);
    }
    uint16_t dcodes[4], mcodes[4];
    int n_d = scale_codes(smax / (float)cmax, dcodes), n_m = scale_codes(mmax / (float)cmax, mcodes);
    double best_total = DBL_MAX;
    int cc[16], mm[16];
    uint8_t qq[QK_K], tmp[32];
    for (int kd = 0; kd < n_d; kd++) {
        for (int km = 0; km < n_m; km++) {
            float d = vkl_fp16_to_fp32(dcodes[kd]), dmin = vkl_fp16_to_fp32(mcodes[km]);
            float inv = d > 0.0f ? 1.0f / d : 0.0f, minv = dmin > 0.0f ? 1.0f / dmin : 0.0f;
            double total = 0;
            for (int j = 0; j < n_sub; j++) {
                int c0 = round_clamp(s[j] * inv, 0, cmax), m0 = round_clamp(mn[j] * minv, 0, cmax);
                double best = DBL_MAX;
                for (int cj = clampi(c0 - 1, 0, cmax); cj <= clampi(c0 + 1, 0, cmax); cj++) {
                    for (int mj = clampi(m0 - 1, 0, cmax); mj <= clampi(m0 + 1, 0, cmax); mj++) {
                        double err = assign(x + j * sub_len, sub_len, g, d * (float)cj, -dmin * (float)mj, tmp);
                        if (err < best) {
                            best = err;
                            cc[j] = cj;
                            mm[j] = mj;
                            memcpy(qq + j * sub_len, tmp, (size_t)sub_len);
                        }
                    }
                }
                total += best;
            }
            if (total < best_total) {
                best_total = total;
                store_u16(d_out, dcodes[kd]);
                store_u16(dmin_out, mcodes[km]);
                memcpy(c, cc, (size_t)n_sub * sizeof *c);
                memcpy(m, mm, (size_t)n_sub * sizeof *m);
                memcpy(q, qq, (size_t)(n_sub * sub_len));
            }
        }
    }
}

/* Q4_K/Q5_K's 12 bytes of eight 6-bit scales c and mins m: for j < 4, byte j holds c_j in its low 6 bits
 * and byte j + 4 holds m_j; c_{j+4} and m_{j+4} keep their low 4 bits in byte j + 8 (c low nibble, m high
 * nibble) and their top 2 bits in bits 6..7 of bytes j and j + 4. */
static void pack_scales_k4(const int *c, const int *m, uint8_t *out)
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((c[j] & 63) | ((c[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((c[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

static const grid grid_u2 = {0, 3, NULL, NULL}, grid_q3 = {-4, 3, NULL, NULL}, grid_q6 = {-32, 31, NULL, NULL};

/* Q2_K, 84 bytes: scales[16] (scale low nibble, min high nibble), qs[64], d, dmin. In each half of 128
 * elements, 2-bit field 2i of byte l of that half's 32 qs bytes is element 32i + l. */
static void block_q2_k(const float *x, uint8_t *blk)
{
    int c[16], m[16];
    uint8_t q[QK_K];
    subblocks_affine(x, 16, 16, &grid_u2, 15, blk + 80, blk + 82, c, m, q);
    for (int j = 0; j < 16; j++)
        blk[j] = (uint8_t)(c[j] | (m[j] << 4));
    uint8_t *qs = blk + 16;
    memset(qs, 0, 64);
    for (int e = 0; e < QK_K; e++)
        qs[(e / 128) * 32 + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
}

/* Q3_K, 110 bytes: hmask[32], qs[64], scales[12], d. Index u = q + 4 (0..7): its low 2 bits are placed as
 * in Q2_K, its high bit is bit (e / 32) of hmask[e % 32]. Scale j (c_j + 32, 6 bits): low 4 bits in byte j
 * (j < 8, low nibble) or j - 8 (high nibble); top 2 bits at bits 2*(j/4) of byte 8 + j%4. */
static void block_q3_k(const float *x, uint8_t *blk)
{
    int c[16];
    uint8_t q[QK_K];
    subblocks_symmetric(x, 16, 16, &grid_q3, -32, 31, blk + 108, c, q);
    uint8_t *hmask = blk, *qs = blk + 32, *sc = blk + 96;
    memset(blk, 0, 108);
    for (int e = 0; e < QK_K; e++) {
        qs[(e / 128) * 32 + e % 32] |= (uint8_t)((q[e] & 3) << (2 * ((e % 128) / 32)));
        hmask[e % 32] |= (uint8_t)((q[e] >> 2) << (e / 32));
    }
    for (int j = 0; j < 16; j++) {
        int u = c[j] + 32;
        sc[j % 8] |= (uint8_t)((u & 15) << (j < 8 ? 0 : 4));
        sc[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
    }
}

/* Q4_K (144 bytes) and Q5_K (176): d, dmin, scales[12], [qh[32],] qs[128]. In each 64-element chunk i,
 * byte l of its 32 qs bytes holds element 64i + l (low nibble) and 64i + 32 + l (high nibble); Q5_K's 5th
 * bit of element 64i + l is bit 2i of qh[l], of element 64i + 32 + l bit 2i + 1. */
static void block_q45_k(const float *x, uint8_t *blk, bool five_bits)
{
    int c[8], m[8];
    uint8_t q[QK_K];
    subblocks_affine(x, 8, 32, five_bits ? &grid_u5 : &grid_u4, 63, blk, blk + 2, c, m, q);
    pack_scales_k4(c, m, blk + 4);
    uint8_t *qh = blk + 16, *qs = blk + (five_bits ? 48 : 16);
    if (five_bits)
        memset(qh, 0, 32);
    for (int i = 0; i < 4; i++) {
        for (int l = 0; l < 32; l++) {
            uint8_t lo = q[64 * i + l], hi = q[64 * i + 32 + l];
            qs[32 * i + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
            if (five_bits)
                qh[l] |= (uint8_t)(((lo >> 4) << (2 * i)) | ((hi >> 4) << (2 * i + 1)));
        }
    }
}

static void block_q4_k(const float *x, uint8_t *blk) { block_q45_k(x, blk, false); }
static void block_q5_k(const float *x, uint8_t *blk) { block_q45_k(x, blk, true); }

/* Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], d. Index u = q + 32 (6 bits). In each half h of 128
 * elements, for l < 32: ql[64h + l] holds the low nibbles of elements l (low) and l + 64 (high),
 * ql[64h + 32 + l] those of l + 32 and l + 96, qh[32h + l] the top 2 bits of l, l + 32, l + 64, l + 96 at
 * bits 0, 2, 4, 6. */
static void block_q6_k(const float *x, uint8_t *blk)
{
    int c[16];
    uint8_t q[QK_K];
    subblocks_symmetric(x, 16, 16, &grid_q6, -128, 127, blk + 208, c, q);
    uint8_t *ql = blk, *qh = blk + 128;
    int8_t *sc = (int8_t *)(blk + 192);
    for (int j = 0; j < 16; j++)
        sc[j] = (int8_t)c[j];
    for (int h = 0; h < 2; h++) {
        const uint8_t *u = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((u[l] & 15) | ((u[l + 64] & 15) << 4));
            ql[64 * h + 32 + l] = (uint8_t)((u[l + 32] & 15) | ((u[l + 96] & 15) << 4));
            qh[32 * h + l] = (uint8_t)((u[l] >> 4) | ((u[l + 32] >> 4) << 2) | ((u[l + 64] >> 4) << 4) |
                                       ((u[l + 96] >> 4) << 6));
        }
    }
}

/* IQ4_XS, 136 bytes: d, scales_h (u16), scales_l[4], qs[128]. Sub-block j's scale c_j + 32 (6 bits): low 4
 * bits in nibble j%2 of scales_l[j/2], top 2 bits at bits 2j of scales_h. Its 32 indices as IQ4_NL's. */
static void block_iq4_xs(const float *x, uint8_t *blk)
{
    int c[8];
    uint8_t q[QK_K];
    subblocks_symmetric(x, 8, 32, &grid_iq4, -32, 31, blk, c, q);
    uint16_t high = 0;
    memset(blk + 4, 0, 4);
    for (int j = 0; j < 8; j++) {
        int u = c[j] + 32;
        blk[4 + j / 2] |= (uint8_t)((u & 15) << (4 * (j % 2)));
        high |= (uint16_t)((u >> 4) << (2 * j));
    }
    store_u16(blk + 2, high);
    for (int j = 0; j < 8; j++)
        pack_nibbles_32(q + 32 * j, blk + 8 + 16 * j);
}

/* ---- rows ---- */

typedef struct block_format {
    uint32_t type, elements, bytes;
    void (*quantize)(const float *x, uint8_t *blk);
} block_format;

static const block_format formats[] = {
    {GGML_TYPE_Q4_0, 32, 18, block_q4_0},     {GGML_TYPE_Q4_1, 32, 20, block_q4_1},
    {GGML_TYPE_Q5_0, 32, 22, block_q5_0},     {GGML_TYPE_Q5_1, 32, 24, block_q5_1},
    {GGML_TYPE_Q8_0, 32, 34, block_q8_0},     {GGML_TYPE_IQ4_NL, 32, 18, block_iq4_nl},
    {GGML_TYPE_Q2_K, QK_K, 84, block_q2_k},   {GGML_TYPE_Q3_K, QK_K, 110, block_q3_k},
    {GGML_TYPE_Q4_K, QK_K, 144, block_q4_k},  {GGML_TYPE_Q5_K, QK_K, 176, block_q5_k},
    {GGML_TYPE_Q6_K, QK_K, 210, block_q6_k},  {GGML_TYPE_IQ4_XS, QK_K, 136, block_iq4_xs},
};

static const block_format *format_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].type == type)
            return &formats[i];
    return NULL;
}

bool vkl_quantize_search_supported(uint32_t type)
{
    return format_of(type) || type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

void vkl_quantize_row_search(uint32_t type, const float *src, void *dst, uint64_t n)
{
    const block_format *f = format_of(type);
    if (!f) {
        vkl_quantize_row(type, src, dst, n);      /* F32, F16, BF16: plain conversions, as the reference does */
        return;
    }
    uint8_t *out = dst;
    for (uint64_t b = 0; b < n / f->elements; b++)
        f->quantize(src + b * f->elements, out + b * f->bytes);
}

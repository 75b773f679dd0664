/* vkl_op_kv_store and vkl_op_attention against ref_kv_store / ref_attention on seeded random data.
 *   kv_store: rows written at scattered positions (not starting at 0, out of order, the last cache row),
 *     every other cache word must keep its poison; a position >= n_ctx writes nothing.
 *     Tolerance: each half equals the reference's round-to-nearest-even f16 or is its neighbour (1 ulp,
 *     for devices whose conversion rounds toward zero).
 *   attention (cache uploaded as the very f16 values the reference uses, rows past the largest position
 *     set to f16 NaN so any read beyond the causal limit shows): one query row (decode) and many (prompt),
 *     grouped-query heads (group 1, 3, 4, 8), head_dim 2..256 (also not a multiple of the tile), KV
 *     lengths from 1 to ~4000 (not multiples of the tile), positions not starting at 0 and unordered,
 *     sharp score distributions (large scale) that move the running max. Every kernel: the per-row one
 *     (subgroup and shared-memory reductions), its split form (flash decoding), and the tiled prompt kernel
 *     (forced for every case with VKLLM_ATTN_TILED=1, and its split form). Split decode as planned (parts of
 *     at least ATTN_SPLIT_MIN_ROWS rows) at KV lengths 1, 63, 64, 65, 129, 200, 1000, n_ctx 512 and 1024,
 *     group 1/4/8, window, soft-cap, ring, on both kernels (the device's choice and a GPU's); nothing written
 *     outside the output or the scratch. Tolerance: relative L2 < 1e-4 (same f16 inputs; only f32
 *     accumulation and exp differ from the double reference).
 *   vkl_op_attention_split_plan: CPU off, GPU parts bounded by the context, VKLLM_ATTN_SPLIT=0/1/N.
 *   row_base (several sequences in one cache): query rows of three sequences, unordered, each seeing only its
 *     sequence's rows (the others NaN), per-row, split and tiled kernels; kv_store to base + position.
 *   ring with row_base (a ring per sequence): query rows of three sequences at positions far past, within and
 *     below their ring's size, each seeing the window of its own ring; rope_kv_store_heads into each ring.
 *   kv_store + attention in one recorded graph, replayed for decode steps with new positions and rows (also
 *     split, across the length where a second part starts): relative L2 < 1e-3 (the GPU's f16 rounding may differ from the reference's by 1 ulp). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"
#include "util.h"

#define F16_NAN 0x7e00u

static bool verbose(void) { return getenv("VKLLM_TEST_VERBOSE") != NULL; }

/* Which attention kernel vkl_op_attention takes here (for messages). */
static const char *kernel_name(const vkr_device *dev)
{
    const char *tiled = getenv("VKLLM_ATTN_TILED");
    if (tiled && (!strcmp(tiled, "0") || !strcmp(tiled, "1")))
        return tiled[0] == '1' ? "tiled kernel" : "per-row kernel";
    return dev->info.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? "per-row kernel" : "tiled kernel";
}

static void fill_f16(test_rng *rng, uint16_t *h, size_t n, float sigma)
{
    for (size_t i = 0; i < n; i++)
        h[i] = ref_f16_bits(rng_normal(rng) * sigma);
}

/* ---- kv_store ---- */

/* Cache halves that differ from the reference's beyond rounding (printing the first few); *inexact counts
 * those 1 ulp off. */
static size_t wrong_halves(const uint16_t *kgot, const uint16_t *vgot, const uint16_t *kref, const uint16_t *vref,
                           size_t cache, uint32_t kv_dim, size_t *inexact)
{
    size_t bad = 0;
    for (size_t i = 0; i < cache; i++) {
        for (int which = 0; which < 2; which++) {
            uint16_t a = which ? vgot[i] : kgot[i], b = which ? vref[i] : kref[i];
            int d = (int)a - (int)b;
            if (a == b)
                continue;
            /* Both written (not poison) and neighbours of the same sign. */
            if ((a >> 15) == (b >> 15) && (d == 1 || d == -1)) {
                (*inexact)++;
                continue;
            }
            if (bad < 5)
                fprintf(stderr, "  %s cache row %zu col %zu: 0x%04x, want 0x%04x\n", which ? "v" : "k", i / kv_dim,
                        i % kv_dim, a, b);
            bad++;
        }
    }
    return bad;
}

static void test_kv_store(vkr_device *dev, test_rng *rng, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_ctx,
                          uint32_t n_rows, size_t cache_off, size_t act_off)
{
    const uint32_t kv_dim = n_kv_heads * head_dim;
    const size_t act = (size_t)n_rows * kv_dim, cache = (size_t)n_ctx * kv_dim;
    float *k = malloc(act * 4), *v = malloc(act * 4);
    uint16_t *kref = malloc(cache * 2), *vref = malloc(cache * 2), *kgot = malloc(cache * 2), *vgot = malloc(cache * 2);
    uint32_t *pos = malloc((size_t)n_rows * 4);
    /* Distinct positions: a random permutation's first rows, last cache row included, one out of range. */
    uint32_t *perm = malloc((size_t)n_ctx * 4);
    for (uint32_t i = 0; i < n_ctx; i++)
        perm[i] = i;
    for (uint32_t i = n_ctx - 1; i > 0; i--) {
        uint32_t j = rng_u32(rng) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint32_t r = 0; r < n_rows; r++)
        pos[r] = perm[r];
    if (n_rows > 2) {
        pos[1] = n_ctx + 5;   /* skipped */
        for (uint32_t r = 0; r < n_rows; r++)
            if (pos[r] == n_ctx - 1)
                pos[r] = perm[1];
        pos[2] = n_ctx - 1;
    }
    for (size_t i = 0; i < act; i++) {
        k[i] = rng_normal(rng) * 3.0f;
        v[i] = rng_normal(rng);
    }
    k[0] = 1e-6f;       /* f16 subnormal */
    v[0] = 70000.0f;    /* f16 overflow -> inf */
    uint32_t poison[2] = {OPT_POISON, OPT_POISON};
    for (size_t i = 0; i < cache; i++)
        kref[i] = vref[i] = ((const uint16_t *)poison)[i % 2];
    ref_kv_store(k, v, kref, vref, pos, n_rows, kv_dim, n_ctx);

    vkr_buffer *kb = opt_buffer(dev, act_off + act * 4 + 16), *vb = opt_buffer(dev, act * 4);
    vkr_buffer *kcb = opt_buffer(dev, cache_off + cache * 2 + 64), *vcb = opt_buffer(dev, cache * 2);
    vkr_buffer *pb = opt_buffer(dev, (size_t)n_rows * 4);
    vkr_graph *g = NULL;
    vk_attention_params p = {.n_rows = n_rows, .n_heads = n_kv_heads, .n_kv_heads = n_kv_heads,
                             .head_dim = head_dim, .n_ctx = n_ctx, .scale = 1.0f};
    if (kb && vb && kcb && vcb && pb && opt_upload(dev, kb, act_off, k, act * 4) &&
        opt_upload(dev, vb, 0, v, act * 4) && opt_upload(dev, pb, 0, pos, (size_t)n_rows * 4) &&
        vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_kv_store(g, vk_view_of(kb, act_off), vk_view_of(vb, 0), vk_view_of(kcb, cache_off),
                                      vk_view_of(vcb, 0), vk_view_of(pb, 0), &p);
        if (test_op_run(g, st, "op_kv_store") && opt_download(dev, kcb, cache_off, kgot, cache * 2) &&
            opt_download(dev, vcb, 0, vgot, cache * 2)) {
            size_t inexact = 0, bad = wrong_halves(kgot, vgot, kref, vref, cache, kv_dim, &inexact);
            CHECK(bad == 0, "kv_store %u heads x %u, n_ctx %u, %u rows: %zu halves wrong (%zu off by 1 ulp)",
                  n_kv_heads, head_dim, n_ctx, n_rows, bad, inexact);
            if (verbose())
                fprintf(stderr, "kv_store %ux%u n_ctx %u: %zu halves 1 ulp off\n", n_kv_heads, head_dim, n_ctx,
                        inexact);
            size_t outside = opt_count_outside(dev, kcb, cache_off, cache * 2);
            CHECK(outside == 0, "kv_store: %zu words written outside the k cache", outside);
        }
    } else {
        CHECK(false, "kv_store: setup failed: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, kb, vb, kcb, vcb, pb);
    free(k);
    free(v);
    free(kref);
    free(vref);
    free(kgot);
    free(vgot);
    free(pos);
    free(perm);
}

/* ---- attention over an uploaded cache ---- */

typedef struct attn_case {
    uint32_t n_rows, n_heads, n_kv_heads, head_dim, n_ctx;
    float scale;            /* 0: 1/sqrt(head_dim) */
    uint32_t pos0;          /* positions pos0 + r, unless `pos` is given */
    const uint32_t *pos;
    uint32_t window;        /* sliding window (0: none) */
    float softcap;          /* score soft-cap (0: none) */
    bool ring;              /* the device cache is a ring of n_ctx rows (position p in row p % n_ctx) */
} attn_case;

/* n_split > 1: flash decoding (parts merged by attention_combine) through a scratch buffer, parts of at least
 * split_min cache rows (0: the default, ATTN_SPLIT_MIN_ROWS). */
static void test_attention(vkr_device *dev, test_rng *rng, const attn_case *c, size_t off_a, size_t off_b,
                           uint32_t n_split, uint32_t split_min)
{
    const uint32_t kv_dim = c->n_kv_heads * c->head_dim;
    uint32_t *pos = malloc((size_t)c->n_rows * 4);
    uint32_t max_pos = 0;
    for (uint32_t r = 0; r < c->n_rows; r++) {
        pos[r] = c->pos ? c->pos[r] : c->pos0 + r;
        max_pos = pos[r] > max_pos ? pos[r] : max_pos;
    }
    /* The reference reads a linear cache of every position; a ring device cache gets its visible rows. */
    const uint32_t lin_ctx = c->ring ? max_pos + 1 : c->n_ctx;
    const size_t nq = (size_t)c->n_rows * c->n_heads * c->head_dim, lin = (size_t)lin_ctx * kv_dim;
    const size_t cache = (size_t)c->n_ctx * kv_dim;
    const float scale = c->scale > 0 ? c->scale : 1.0f / sqrtf((float)c->head_dim);
    float *q = malloc(nq * 4), *ref = malloc(nq * 4), *got = malloc(nq * 4);
    uint16_t *kc = malloc(lin * 2), *vc = malloc(lin * 2);
    for (size_t i = 0; i < nq; i++)
        q[i] = rng_normal(rng);
    fill_f16(rng, kc, lin, 1.0f);
    fill_f16(rng, vc, lin, 1.0f);
    /* Rows no query may see are NaN: reading one poisons the output. With a window, that includes the rows
     * before every query's window. */
    uint32_t lo = UINT32_MAX;
    for (uint32_t r = 0; r < c->n_rows; r++) {
        uint32_t len = (pos[r] < lin_ctx ? pos[r] : lin_ctx - 1) + 1;
        uint32_t first = c->window && len > c->window ? len - c->window : 0;
        lo = first < lo ? first : lo;
    }
    for (size_t i = 0; i < (size_t)lo * kv_dim; i++)
        kc[i] = vc[i] = F16_NAN;
    for (size_t i = ((size_t)max_pos + 1) * kv_dim; i < lin; i++)
        kc[i] = vc[i] = F16_NAN;
    ref_attention(q, kc, vc, pos, ref, c->n_rows, c->n_heads, c->n_kv_heads, c->head_dim, lin_ctx, scale, c->window,
                  c->softcap);
    if (c->ring) {   /* positions lo..max_pos into rows p % n_ctx, the other rows NaN */
        uint16_t *rk = malloc(cache * 2), *rv = malloc(cache * 2);
        for (size_t i = 0; i < cache; i++)
            rk[i] = rv[i] = F16_NAN;
        for (uint32_t p = lo; p <= max_pos; p++) {
            memcpy(rk + (size_t)(p % c->n_ctx) * kv_dim, kc + (size_t)p * kv_dim, kv_dim * 2);
            memcpy(rv + (size_t)(p % c->n_ctx) * kv_dim, vc + (size_t)p * kv_dim, kv_dim * 2);
        }
        free(kc);
        free(vc);
        kc = rk, vc = rv;
    }

    vkr_buffer *qb = opt_buffer(dev, off_a + nq * 4), *ob = opt_buffer(dev, off_b + nq * 4 + 64);
    vkr_buffer *kcb = opt_buffer(dev, off_b + cache * 2), *vcb = opt_buffer(dev, off_a + cache * 2 + 16);
    vkr_buffer *pb = opt_buffer(dev, off_a + (size_t)c->n_rows * 4);
    const size_t scratch_bytes = (size_t)c->n_rows * c->n_heads * n_split * (c->head_dim + 2) * 4;
    vkr_buffer *sb = n_split > 1 ? opt_buffer(dev, off_b + scratch_bytes) : NULL;
    vkr_graph *g = NULL;
    vk_attention_params p = {.n_rows = c->n_rows, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads,
                             .head_dim = c->head_dim, .n_ctx = c->n_ctx, .scale = scale,
                             .n_split = n_split, .split_min_rows = split_min, .scratch = vk_view_of(sb, off_b),
                             .window = c->window,
                             .softcap = c->softcap, .ring = c->ring};
    if (qb && ob && kcb && vcb && pb && (sb || n_split <= 1) && opt_upload(dev, qb, off_a, q, nq * 4) &&
        opt_upload(dev, kcb, off_b, kc, cache * 2) && opt_upload(dev, vcb, off_a, vc, cache * 2) &&
        opt_upload(dev, pb, off_a, pos, (size_t)c->n_rows * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_attention(g, vk_view_of(qb, off_a), vk_view_of(kcb, off_b), vk_view_of(vcb, off_a),
                                       vk_view_of(pb, off_a), vk_view_of(ob, off_b), &p);
        if (test_op_run(g, st, "op_attention") && opt_download(dev, ob, off_b, got, nq * 4)) {
            double e = rel_l2(got, ref, nq);
            if (verbose())
                fprintf(stderr, "attention %u rows, %u/%u heads x %u, max pos %u: rel L2 %.3g\n", c->n_rows,
                        c->n_heads, c->n_kv_heads, c->head_dim, max_pos, e);
            CHECK(e < 1e-4, "attention %u rows, %u/%u heads x %u, n_ctx %u, max pos %u, scale %g, window %u, "
                  "softcap %g, offs %zu/%zu, split %u (min %u), %s: rel L2 %.3g (first non-finite %ld)", c->n_rows,
                  c->n_heads, c->n_kv_heads, c->head_dim, c->n_ctx, max_pos, (double)scale, c->window,
                  (double)c->softcap, off_a, off_b, n_split, split_min, kernel_name(dev), e,
                  first_nonfinite(got, nq));
            if (!(e < 1e-4))
                opt_report_mismatches("out", got, ref, nq, 1e-5, 1e-3);
            size_t outside = opt_count_outside(dev, ob, off_b, nq * 4);
            CHECK(outside == 0, "attention: %zu words written outside the output", outside);
            if (sb) {
                outside = opt_count_outside(dev, sb, off_b, scratch_bytes);
                CHECK(outside == 0, "attention: %zu words written outside the scratch", outside);
            }
        }
    } else {
        CHECK(false, "attention: setup failed: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, qb, ob, kcb, vcb, pb, sb);
    free(q);
    free(ref);
    free(got);
    free(kc);
    free(vc);
    free(pos);
}

/* ---- kv_store + attention, one recording replayed ---- */

/* A prompt of n_prompt rows at positions start.., then n_steps decode steps replaying one recorded graph
 * (kv_store of the new row, then attention) with new rows and positions each time. */
static void test_replay(vkr_device *dev, test_rng *rng, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                        uint32_t n_ctx, uint32_t start, uint32_t n_prompt, uint32_t n_steps, uint32_t n_split)
{
    const uint32_t kv_dim = n_kv_heads * head_dim, q_dim = n_heads * head_dim;
    const size_t cache = (size_t)n_ctx * kv_dim;
    const float scale = 1.0f / sqrtf((float)head_dim);
    float *q = malloc((size_t)n_prompt * q_dim * 4), *k = malloc((size_t)n_prompt * kv_dim * 4);
    float *v = malloc((size_t)n_prompt * kv_dim * 4);
    float *ref = malloc((size_t)n_prompt * q_dim * 4), *got = malloc((size_t)n_prompt * q_dim * 4);
    uint16_t *kc = malloc(cache * 2), *vc = malloc(cache * 2);
    uint32_t *pos = malloc((size_t)n_prompt * 4);
    fill_f16(rng, kc, cache, 1.0f);   /* rows < start: earlier context */
    fill_f16(rng, vc, cache, 1.0f);
    for (size_t i = (size_t)start * kv_dim; i < cache; i++)
        kc[i] = vc[i] = F16_NAN;      /* not yet written */

    vkr_buffer *qb = opt_buffer(dev, (size_t)n_prompt * q_dim * 4), *ob = opt_buffer(dev, (size_t)n_prompt * q_dim * 4);
    vkr_buffer *kb = opt_buffer(dev, (size_t)n_prompt * kv_dim * 4);
    vkr_buffer *vb = opt_buffer(dev, (size_t)n_prompt * kv_dim * 4);
    vkr_buffer *kcb = opt_buffer(dev, cache * 2), *vcb = opt_buffer(dev, cache * 2);
    vkr_buffer *pb = opt_buffer(dev, (size_t)n_prompt * 4);
    vkr_buffer *sb = n_split > 1 ? opt_buffer(dev, (size_t)n_heads * n_split * (head_dim + 2) * 4) : NULL;
    vkr_graph *gp = NULL, *gd = NULL;
    bool ok = qb && ob && kb && vb && kcb && vcb && pb && (sb || n_split <= 1) && opt_upload(dev, kcb, 0, kc, cache * 2) &&
              opt_upload(dev, vcb, 0, vc, cache * 2) && vkr_graph_create(dev, &gp) == VKLLM_OK &&
              vkr_graph_create(dev, &gd) == VKLLM_OK;
    CHECK(ok, "replay: setup failed: %s", vkr_last_error());
    vk_attention_params pp = {.n_rows = n_prompt, .n_heads = n_heads, .n_kv_heads = n_kv_heads,
                              .head_dim = head_dim, .n_ctx = n_ctx, .scale = scale};
    /* Decode: split into parts of the default minimum length, so the same recording runs one part, then more. */
    vk_attention_params pd = {.n_rows = 1, .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim,
                              .n_ctx = n_ctx, .scale = scale, .n_split = n_split, .scratch = vk_view_of(sb, 0)};
    if (ok) {
        vk_view qv = vk_view_of(qb, 0), kv = vk_view_of(kb, 0), vv = vk_view_of(vb, 0), ov = vk_view_of(ob, 0);
        vk_view kcv = vk_view_of(kcb, 0), vcv = vk_view_of(vcb, 0), pv = vk_view_of(pb, 0);
        vkllm_status st;
        if ((st = vkl_op_kv_store(gp, kv, vv, kcv, vcv, pv, &pp)) != VKLLM_OK ||
            (st = vkl_op_attention(gp, qv, kcv, vcv, pv, ov, &pp)) != VKLLM_OK ||
            (st = vkl_op_kv_store(gd, kv, vv, kcv, vcv, pv, &pd)) != VKLLM_OK ||
            (st = vkl_op_attention(gd, qv, kcv, vcv, pv, ov, &pd)) != VKLLM_OK)
            ok = false;
        CHECK(ok, "replay: building graphs: %s", vkr_last_error());
    }
    for (uint32_t step = 0; ok && step <= n_steps; step++) {
        /* step 0: the prompt; then decode steps at the following positions. */
        const uint32_t rows = step == 0 ? n_prompt : 1;
        for (uint32_t r = 0; r < rows; r++)
            pos[r] = step == 0 ? start + r : start + n_prompt + step - 1;
        rng_fill(rng, q, (size_t)rows * q_dim, -1.5f, 1.5f);
        rng_fill(rng, k, (size_t)rows * kv_dim, -1.5f, 1.5f);
        rng_fill(rng, v, (size_t)rows * kv_dim, -1.5f, 1.5f);
        ref_kv_store(k, v, kc, vc, pos, rows, kv_dim, n_ctx);
        ref_attention(q, kc, vc, pos, ref, rows, n_heads, n_kv_heads, head_dim, n_ctx, scale, 0, 0.0f);
        if (!opt_upload(dev, qb, 0, q, (size_t)rows * q_dim * 4) ||
            !opt_upload(dev, kb, 0, k, (size_t)rows * kv_dim * 4) ||
            !opt_upload(dev, vb, 0, v, (size_t)rows * kv_dim * 4) || !opt_upload(dev, pb, 0, pos, (size_t)rows * 4) ||
            !opt_poison(dev, ob))
            break;
        vkllm_status st = vkr_graph_run(step == 0 ? gp : gd);
        CHECK(st == VKLLM_OK, "graph run: %s", vkr_last_error());
        if (st != VKLLM_OK || !opt_download(dev, ob, 0, got, (size_t)rows * q_dim * 4))
            break;
        double e = rel_l2(got, ref, (size_t)rows * q_dim);
        if (verbose())
            fprintf(stderr, "replay step %u (%u rows at %u): rel L2 %.3g\n", step, rows, pos[0], e);
        CHECK(e < 1e-3, "kv_store+attention %u/%u heads x %u, split %u, step %u (%u rows at position %u): rel L2 %.3g",
              n_heads, n_kv_heads, head_dim, n_split, step, rows, pos[0], e);
    }
    vkr_graph_destroy(gp);
    vkr_graph_destroy(gd);
    TEST_DESTROY_BUFFERS(dev, qb, ob, kb, vb, kcb, vcb, pb, sb);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(got);
    free(kc);
    free(vc);
    free(pos);
}

/* Bad arguments are refused and add no dispatch (a graph and a buffer of 1 << 16 bytes). */
static void argument_errors(vkr_graph *g, vkr_buffer *b)
{
    vk_view v = vk_view_of(b, 0);
    vk_attention_params p = {.n_rows = 1, .n_heads = 8, .n_kv_heads = 3,
                             .head_dim = 64, .n_ctx = 16, .scale = 0.125f};
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "8 heads over 3 kv heads");
    p.n_kv_heads = 2;
    p.head_dim = 63;
    CHECK(vkl_op_kv_store(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "odd head_dim");
    p.head_dim = 512;
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_UNSUPPORTED, "head_dim 512");
    p.head_dim = 64;
    p.n_ctx = 0;
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "n_ctx 0");
    p.n_ctx = 1000;
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "cache past the buffer's end");
    p.n_ctx = 16;
    p.scale = NAN;
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "NaN scale");
    CHECK(vkl_op_attention(g, v, v, v, v, v, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL params");
    p.scale = 0.125f;
    p.ring = p.row_base = true;
    p.window = 4;
    p.seq_rows = 8;
    p.ring_rows = 5;   /* 16 rows are not rings of 5 */
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "rings of 5 rows in 16");
    p.ring_rows = 8;
    p.window = 9;
    CHECK(vkl_op_attention(g, v, v, v, v, v, &p) == VKLLM_ERR_INVALID_ARGUMENT, "a window of 9 in rings of 8");
    CHECK(vkr_graph_size(g) == 0, "failed calls added %u dispatches", vkr_graph_size(g));
}

/* ---- Several sequences in one cache (row_base) ---- */

/* Three sequences of seq_rows rows each; query rows of any of them, unordered, each at a row of its
 * sequence: positions, base rows and rows within the sequences in one buffer. The positions are past the
 * rows (as after a removal in the middle of a sequence): neither op ropes here, so only the rows may decide.
 * The reference: each row alone over its sequence's rows. Every row past a sequence's last queried row is
 * NaN, so a read into another sequence (or past the causal limit) shows. kv_store with row_base writes row
 * base + row (the reference's rows made absolute); every other word keeps its poison. */
static void test_row_base(vkr_device *dev, test_rng *rng, uint32_t n_split)
{
    enum { N_SEQ = 3, SEQ_ROWS = 70, N_ROWS = 9, N_HEADS = 4, N_KV = 2, HD = 64 };
    static const uint32_t seq[N_ROWS] = {2, 0, 1, 2, 0, 1, 1, 0, 2};
    static const uint32_t at[N_ROWS] = {69, 3, 40, 0, 64, 41, 5, 4, 17};
    const uint32_t kv_dim = N_KV * HD, n_ctx = N_SEQ * SEQ_ROWS;
    const size_t nq = (size_t)N_ROWS * N_HEADS * HD, cache = (size_t)n_ctx * kv_dim;
    const float scale = 0.125f;
    float *q = malloc(nq * 4), *ref = malloc(nq * 4), *got = malloc(nq * 4);
    float *k = malloc((size_t)N_ROWS * kv_dim * 4), *v = malloc((size_t)N_ROWS * kv_dim * 4);
    uint16_t *kc = malloc(cache * 2), *vc = malloc(cache * 2), *kref = malloc(cache * 2), *vref = malloc(cache * 2);
    uint16_t *kgot = malloc(cache * 2), *vgot = malloc(cache * 2);
    uint32_t pos[3 * N_ROWS], abs_pos[N_ROWS], last[N_SEQ] = {0};
    for (uint32_t r = 0; r < N_ROWS; r++) {
        pos[r] = at[r] + 1000 + 37 * r;
        pos[N_ROWS + r] = seq[r] * SEQ_ROWS;
        pos[2 * N_ROWS + r] = at[r];
        abs_pos[r] = seq[r] * SEQ_ROWS + at[r];
        last[seq[r]] = at[r] > last[seq[r]] ? at[r] : last[seq[r]];
    }
    for (size_t i = 0; i < nq; i++)
        q[i] = rng_normal(rng);
    rng_fill(rng, k, (size_t)N_ROWS * kv_dim, -2.0f, 2.0f);
    rng_fill(rng, v, (size_t)N_ROWS * kv_dim, -2.0f, 2.0f);
    fill_f16(rng, kc, cache, 1.0f);
    fill_f16(rng, vc, cache, 1.0f);
    for (uint32_t s = 0; s < N_SEQ; s++)
        for (size_t i = ((size_t)s * SEQ_ROWS + last[s] + 1) * kv_dim; i < (size_t)(s + 1) * SEQ_ROWS * kv_dim; i++)
            kc[i] = vc[i] = F16_NAN;
    for (uint32_t r = 0; r < N_ROWS; r++) {
        const size_t base = (size_t)seq[r] * SEQ_ROWS * kv_dim;
        ref_attention(q + (size_t)r * N_HEADS * HD, kc + base, vc + base, &at[r], ref + (size_t)r * N_HEADS * HD, 1,
                      N_HEADS, N_KV, HD, SEQ_ROWS, scale, 0, 0.0f);
    }
    uint32_t poison[2] = {OPT_POISON, OPT_POISON};
    for (size_t i = 0; i < cache; i++)
        kref[i] = vref[i] = ((const uint16_t *)poison)[i % 2];
    ref_kv_store(k, v, kref, vref, abs_pos, N_ROWS, kv_dim, n_ctx);

    vkr_buffer *qb = opt_buffer(dev, nq * 4), *ob = opt_buffer(dev, nq * 4), *pb = opt_buffer(dev, sizeof pos);
    vkr_buffer *kcb = opt_buffer(dev, cache * 2), *vcb = opt_buffer(dev, cache * 2);
    vkr_buffer *kb = opt_buffer(dev, (size_t)N_ROWS * kv_dim * 4), *vb = opt_buffer(dev, (size_t)N_ROWS * kv_dim * 4);
    vkr_buffer *sb = opt_buffer(dev, (size_t)N_ROWS * N_HEADS * (n_split + 1) * (HD + 2) * 4);
    vkr_graph *g = NULL;
    vk_attention_params p = {.n_rows = N_ROWS, .n_heads = N_HEADS, .n_kv_heads = N_KV, .head_dim = HD,
                             .n_ctx = n_ctx, .scale = scale, .n_split = n_split, .scratch = vk_view_of(sb, 0),
                             .split_min_rows = 1, .row_base = true};
    if (qb && ob && pb && kcb && vcb && kb && vb && sb && opt_upload(dev, qb, 0, q, nq * 4) &&
        opt_upload(dev, kcb, 0, kc, cache * 2) && opt_upload(dev, vcb, 0, vc, cache * 2) &&
        opt_upload(dev, pb, 0, pos, sizeof pos) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_attention(g, vk_view_of(qb, 0), vk_view_of(kcb, 0), vk_view_of(vcb, 0), vk_view_of(pb, 0),
                                       vk_view_of(ob, 0), &p);
        if (test_op_run(g, st, "op_attention (row_base)") && opt_download(dev, ob, 0, got, nq * 4)) {
            double e = rel_l2(got, ref, nq);
            CHECK(e < 1e-4, "attention with row_base, split %u: rel L2 %.3g (first non-finite %ld)", n_split, e,
                  first_nonfinite(got, nq));
        }
        vkr_graph_clear(g);
        vkr_buffer_fill(dev, kcb, 0, cache * 2, OPT_POISON);
        vkr_buffer_fill(dev, vcb, 0, cache * 2, OPT_POISON);
        st = opt_upload(dev, kb, 0, k, (size_t)N_ROWS * kv_dim * 4) && opt_upload(dev, vb, 0, v, (size_t)N_ROWS * kv_dim * 4)
                 ? vkl_op_kv_store(g, vk_view_of(kb, 0), vk_view_of(vb, 0), vk_view_of(kcb, 0), vk_view_of(vcb, 0),
                               vk_view_of(pb, 0), &p)
                 : VKLLM_ERR_DEVICE_LOST;
        size_t inexact = 0;
        if (test_op_run(g, st, "op_kv_store (row_base)") && opt_download(dev, kcb, 0, kgot, cache * 2) &&
            opt_download(dev, vcb, 0, vgot, cache * 2))
            CHECK(wrong_halves(kgot, vgot, kref, vref, cache, kv_dim, &inexact) == 0,
                  "kv_store with row_base: halves differ from the reference");
    } else {
        CHECK(false, "row_base: setup failed: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, qb, ob, pb, kcb, vcb, kb, vb, sb);
    free(q);
    free(ref);
    free(got);
    free(k);
    free(v);
    free(kc);
    free(vc);
    free(kref);
    free(vref);
    free(kgot);
    free(vgot);
}

/* Rings of RING rows per sequence (sliding-window layers of several sequences): three sequences whose rings
 * end at different positions (one far past the ring, one not yet wrapped), query rows of any of them at
 * the positions a batch may hold (within NB of the ring's end). Each ring holds the positions it keeps, its
 * unwritten rows NaN. The reference: each row alone over a linear cache of its sequence's window, taken from
 * its ring (NaN elsewhere). rope_kv_store_heads (no rotation) writes row s * RING + p % RING, every other
 * word keeps its poison. */
static void test_ring_row_base(vkr_device *dev, test_rng *rng, uint32_t n_split)
{
    enum { N_SEQ = 3, RING = 20, WINDOW = 12, SEQ_ROWS = 100, N_ROWS = 9, N_HEADS = 4, N_KV = 2, HD = 64 };
    static const uint32_t end[N_SEQ] = {95, 7, 40};
    static const uint32_t seq[N_ROWS] = {2, 0, 1, 2, 0, 1, 0, 2, 1};
    static const uint32_t at[N_ROWS] = {39, 94, 0, 31, 86, 6, 90, 35, 3};
    const uint32_t kv_dim = N_KV * HD, n_ctx = N_SEQ * RING;
    const size_t nq = (size_t)N_ROWS * N_HEADS * HD, cache = (size_t)n_ctx * kv_dim, nkv = (size_t)N_ROWS * kv_dim;
    const size_t lin = (size_t)SEQ_ROWS * kv_dim;
    const float scale = 0.125f;
    float *q = malloc(nq * 4), *ref = malloc(nq * 4), *got = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4);
    uint16_t *kc = malloc(cache * 2), *vc = malloc(cache * 2), *kref = malloc(cache * 2), *vref = malloc(cache * 2);
    uint16_t *kgot = malloc(cache * 2), *vgot = malloc(cache * 2), *kl = malloc(lin * 2), *vl = malloc(lin * 2);
    uint32_t pos[3 * N_ROWS], ring_row[N_ROWS];
    for (uint32_t r = 0; r < N_ROWS; r++) {
        pos[r] = pos[2 * N_ROWS + r] = at[r];
        pos[N_ROWS + r] = seq[r] * SEQ_ROWS;
        ring_row[r] = seq[r] * RING + at[r] % RING;
    }
    for (size_t i = 0; i < nq; i++)
        q[i] = rng_normal(rng);
    rng_fill(rng, k, nkv, -2.0f, 2.0f);
    rng_fill(rng, v, nkv, -2.0f, 2.0f);
    fill_f16(rng, kc, cache, 1.0f);
    fill_f16(rng, vc, cache, 1.0f);
    for (uint32_t s = 0; s < N_SEQ; s++)   /* a ring not yet wrapped: its rows past the end unwritten */
        for (size_t i = ((size_t)s * RING + end[s]) * kv_dim; end[s] < RING && i < (size_t)(s + 1) * RING * kv_dim; i++)
            kc[i] = vc[i] = F16_NAN;
    for (uint32_t r = 0; r < N_ROWS; r++) {
        for (size_t i = 0; i < lin; i++)
            kl[i] = vl[i] = F16_NAN;
        for (uint32_t j = at[r] + 1 > WINDOW ? at[r] + 1 - WINDOW : 0; j <= at[r]; j++) {
            const size_t from = ((size_t)seq[r] * RING + j % RING) * kv_dim;
            memcpy(kl + (size_t)j * kv_dim, kc + from, kv_dim * 2);
            memcpy(vl + (size_t)j * kv_dim, vc + from, kv_dim * 2);
        }
        ref_attention(q + (size_t)r * N_HEADS * HD, kl, vl, &at[r], ref + (size_t)r * N_HEADS * HD, 1, N_HEADS, N_KV,
                      HD, SEQ_ROWS, scale, WINDOW, 0.0f);
    }
    uint32_t poison[2] = {OPT_POISON, OPT_POISON};
    for (size_t i = 0; i < cache; i++)
        kref[i] = vref[i] = ((const uint16_t *)poison)[i % 2];
    ref_kv_store(k, v, kref, vref, ring_row, N_ROWS, kv_dim, n_ctx);

    vkr_buffer *qb = opt_buffer(dev, nq * 4), *ob = opt_buffer(dev, nq * 4), *pb = opt_buffer(dev, sizeof pos);
    vkr_buffer *kcb = opt_buffer(dev, cache * 2), *vcb = opt_buffer(dev, cache * 2);
    vkr_buffer *kb = opt_buffer(dev, nkv * 4), *vb = opt_buffer(dev, nkv * 4);
    vkr_buffer *sb = opt_buffer(dev, (size_t)N_ROWS * N_HEADS * (n_split + 1) * (HD + 2) * 4);
    vkr_graph *g = NULL;
    const vk_attention_params p = {
        .n_rows = N_ROWS, .n_heads = N_HEADS, .n_kv_heads = N_KV, .head_dim = HD, .n_ctx = n_ctx, .scale = scale,
        .n_split = n_split, .scratch = vk_view_of(sb, 0), .split_min_rows = 1, .window = WINDOW, .ring = true,
        .ring_rows = RING, .seq_rows = SEQ_ROWS, .row_base = true};
    const vk_rope_params no_rope = {.n_rows = N_ROWS, .n_heads = N_KV, .head_dim = HD, .theta_base = 10000.0f};
    const vk_head_prep prep = {.eps = 0.0f};
    if (qb && ob && pb && kcb && vcb && kb && vb && sb && opt_upload(dev, qb, 0, q, nq * 4) &&
        opt_upload(dev, kcb, 0, kc, cache * 2) && opt_upload(dev, vcb, 0, vc, cache * 2) &&
        opt_upload(dev, pb, 0, pos, sizeof pos) && opt_upload(dev, kb, 0, k, nkv * 4) &&
        opt_upload(dev, vb, 0, v, nkv * 4) && vkr_graph_create(dev, &g) == VKLLM_OK) {
        vkllm_status st = vkl_op_attention(g, vk_view_of(qb, 0), vk_view_of(kcb, 0), vk_view_of(vcb, 0),
                                           vk_view_of(pb, 0), vk_view_of(ob, 0), &p);
        if (test_op_run(g, st, "op_attention (rings)") && opt_download(dev, ob, 0, got, nq * 4)) {
            double e = rel_l2(got, ref, nq);
            CHECK(e < 1e-4, "attention over a ring per sequence, split %u: rel L2 %.3g (first non-finite %ld)", n_split,
                  e, first_nonfinite(got, nq));
        }
        vkr_graph_clear(g);
        vkr_buffer_fill(dev, kcb, 0, cache * 2, OPT_POISON);
        vkr_buffer_fill(dev, vcb, 0, cache * 2, OPT_POISON);
        st = vkl_op_rope_kv_store_heads(g, vk_view_of(NULL, 0), vk_view_of(kb, 0), vk_view_of(vb, 0),
                                        vk_view_of(kcb, 0), vk_view_of(vcb, 0), vk_view_of(pb, 0), &no_rope, &prep, &p);
        size_t inexact = 0;
        if (test_op_run(g, st, "op_rope_kv_store_heads (rings)") && opt_download(dev, kcb, 0, kgot, cache * 2) &&
            opt_download(dev, vcb, 0, vgot, cache * 2))
            CHECK(wrong_halves(kgot, vgot, kref, vref, cache, kv_dim, &inexact) == 0,
                  "rope_kv_store_heads into a ring per sequence: halves differ from the reference");
    } else {
        CHECK(false, "rings: setup failed: %s", vkr_last_error());
    }
    vkr_graph_destroy(g);
    TEST_DESTROY_BUFFERS(dev, qb, ob, pb, kcb, vcb, kb, vb, sb);
    void *host[] = {q, ref, got, k, v, kc, vc, kref, vref, kgot, vgot, kl, vl};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

/* The attention cases and a replay, for one kernel variant. */
static void attention_cases(vkr_device *dev, test_rng *rng)
{
    const size_t a1 = opt_aligned(dev, 1), a2 = opt_aligned(dev, 2);
    static const uint32_t pos_c[] = {0, 63, 64, 65, 130};
    static const uint32_t pos_e[] = {0, 1, 5000};      /* past n_ctx: sees the whole cache */
    static const uint32_t pos_g[] = {499, 250, 10, 130};
    static const attn_case cases[] = {
        {1, 8, 2, 128, 2100, 0, 2050, NULL, 0, 0, false},     /* decode, long context, group 4 */
        {37, 4, 1, 64, 200, 0.125f, 100, NULL, 0, 0, false},  /* prompt continuing at 100, group 4 */
        {5, 3, 3, 256, 131, 0, 0, pos_c, 0, 0, false},        /* MHA, head_dim 256 */
        {9, 6, 2, 80, 16, 0, 0, NULL, 0, 0, false},           /* prompt from 0, group 3, head_dim 80 */
        {3, 2, 1, 2, 1001, 0, 0, pos_e, 0, 0, false},         /* head_dim 2 */
        {1, 32, 4, 64, 4096, 0.125f, 3999, NULL, 0, 0, false},/* decode at 4000 rows, group 8 */
        {4, 4, 2, 32, 500, 2.0f, 0, pos_g, 0, 0, false},      /* sharp scores, unordered positions */
        {64, 2, 2, 128, 64, 0, 0, NULL, 0, 0, false},         /* prompt filling the context */
        {1, 1, 1, 16, 1, 0, 0, NULL, 0, 0, false},            /* a single cache row */
        {2, 4, 2, 96, 300, 0, 257, NULL, 0, 0, false},        /* head_dim 96, kv length 258..259 */
        /* Sliding windows (Gemma, rows before the window are NaN) and soft-capped scores (Gemma 2). */
        {37, 4, 1, 64, 200, 0.125f, 100, NULL, 16, 0, false},
        {1, 8, 2, 128, 2100, 0, 2050, NULL, 512, 0, false},
        {9, 6, 2, 80, 64, 0, 20, NULL, 4, 1.5f, false},
        {5, 3, 3, 256, 131, 0, 0, pos_c, 64, 30.0f, false},
        {4, 4, 2, 32, 500, 2.0f, 0, pos_g, 0, 5.0f, false},
        /* Ring caches of a sliding-window layer (window + batch - 1 rows), positions far past them. */
        {37, 4, 1, 64, 52, 0.125f, 1000, NULL, 16, 0, true},
        {1, 8, 2, 128, 512, 0, 5000, NULL, 512, 0, true},
        {9, 6, 2, 80, 12, 0, 20, NULL, 4, 1.5f, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_attention(dev, rng, &cases[i], i % 2 ? a1 : 0, i % 3 ? a2 : 0, 1, 0);
        /* Split parts of any size: fewer than, about as many as, and more than the cache rows some rows see. */
        test_attention(dev, rng, &cases[i], i % 3 ? a1 : 0, i % 2 ? a2 : 0, i % 3 ? 7 : 64, 1);
    }
    test_replay(dev, rng, 8, 2, 64, 200, 30, 17, 4, 1);
    /* Decode steps at positions 62..67 through one split recording: one part, then two. */
    test_replay(dev, rng, 8, 2, 64, 200, 60, 2, 6, 5);
    test_row_base(dev, rng, 1);
    test_row_base(dev, rng, 5);
    test_ring_row_base(dev, rng, 1);
    test_ring_row_base(dev, rng, 3);
}

/* Decode (one query row) split as vkl_op_attention_split_plan plans it (parts of at least ATTN_SPLIT_MIN_ROWS
 * rows), at KV lengths around the part size and long ones, grouped-query ratios 1, 4 and 8, a window, soft-caps
 * and a ring cache; a context of at most 512 rows split too. */
static void split_decode_cases(vkr_device *dev, test_rng *rng)
{
    static const uint32_t lengths[] = {1, 63, 64, 65, 129, 200, 1000};
    static const uint32_t groups[][2] = {{8, 8}, {16, 4}, {32, 4}};   /* heads, kv heads: ratio 1, 4, 8 */
    const size_t a1 = opt_aligned(dev, 1);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        const uint32_t *hg = groups[i % 3];
        const attn_case c = {1, hg[0], hg[1], 64, 1024, 0, lengths[i] - 1, NULL, 0, 0, false};
        test_attention(dev, rng, &c, 0, i % 2 ? a1 : 0, 16, 0);
        const attn_case c2 = {1, hg[0], hg[1], 128, 512, 0, lengths[i] - 1, NULL, 0, 0, false};   /* n_ctx 512 */
        test_attention(dev, rng, &c2, a1, 0, 8, 0);
    }
    static const attn_case special[] = {
        {1, 8, 1, 128, 1024, 0, 999, NULL, 0, 0, false},        /* group 8, one kv head */
        {1, 8, 2, 64, 2048, 0, 1500, NULL, 300, 0, false},      /* window: parts over the window only */
        {1, 8, 2, 64, 1024, 0.5f, 700, NULL, 0, 20.0f, false},  /* soft-capped, sharp scores */
        {1, 8, 2, 64, 300, 0, 4000, NULL, 300, 0, true},        /* ring cache of a sliding-window layer */
        {3, 8, 2, 64, 600, 0, 400, NULL, 0, 0, false},          /* three rows (lengths 401..403) */
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        test_attention(dev, rng, &special[i], i % 2 ? a1 : 0, 0, 12, 0);
}

/* vkl_op_attention_split_plan: off on CPU devices, parts for GPUs bounded by the context, VKLLM_ATTN_SPLIT. */
static void split_plan(vkr_device *dev)
{
    const VkPhysicalDeviceType type = dev->info.type;
    vk_attention_params p = {.n_rows = 1, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .n_ctx = 1024};
    unsetenv("VKLLM_ATTN_SPLIT");
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
    CHECK(vkl_op_attention_split_plan(dev, &p) == UINT32_MAX && p.n_split == 1, "CPU: split %u", p.n_split);
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    uint32_t from = vkl_op_attention_split_plan(dev, &p);
    CHECK(from == ATTN_SPLIT_MIN_ROWS && p.n_split == 1024 / ATTN_SPLIT_MIN_ROWS &&
          p.split_min_rows == ATTN_SPLIT_MIN_ROWS, "GPU, n_ctx 1024: split %u from %u", p.n_split, from);
    p.n_ctx = 100;
    from = vkl_op_attention_split_plan(dev, &p);
    CHECK(from == ATTN_SPLIT_MIN_ROWS && p.n_split == 2, "GPU, n_ctx 100: split %u from %u", p.n_split, from);
    p.n_ctx = 64;
    CHECK(vkl_op_attention_split_plan(dev, &p) == UINT32_MAX && p.n_split == 1, "GPU, n_ctx 64: split %u", p.n_split);
    p.n_ctx = 1024;
    setenv("VKLLM_ATTN_SPLIT", "0", 1);
    CHECK(vkl_op_attention_split_plan(dev, &p) == UINT32_MAX && p.n_split == 1, "VKLLM_ATTN_SPLIT=0: split %u",
          p.n_split);
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
    setenv("VKLLM_ATTN_SPLIT", "1", 1);
    CHECK(vkl_op_attention_split_plan(dev, &p) == ATTN_SPLIT_MIN_ROWS && p.n_split > 1, "VKLLM_ATTN_SPLIT=1: split %u",
          p.n_split);
    setenv("VKLLM_ATTN_SPLIT", "5", 1);
    CHECK(vkl_op_attention_split_plan(dev, &p) == 0 && p.n_split == 5 && p.split_min_rows == 1,
          "VKLLM_ATTN_SPLIT=5: split %u (min %u)", p.n_split, p.split_min_rows);
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    setenv("VKLLM_ATTN_SPLIT", "2x", 1);   /* not a number: ignored with a warning, as if unset */
    CHECK(vkl_op_attention_split_plan(dev, &p) == ATTN_SPLIT_MIN_ROWS && p.n_split == 1024 / ATTN_SPLIT_MIN_ROWS,
          "VKLLM_ATTN_SPLIT=2x: split %u", p.n_split);
    unsetenv("VKLLM_ATTN_SPLIT");
    dev->info.type = type;
}

int main(void)
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    vkr_device *dev = td.dev;
    const size_t a1 = opt_aligned(dev, 1), a2 = opt_aligned(dev, 2);

    test_kv_store(dev, &rng, 2, 6, 50, 5, 0, 0);
    test_kv_store(dev, &rng, 4, 128, 300, 37, a1, a2);
    test_kv_store(dev, &rng, 1, 2, 7, 7, 4, 8);
    test_kv_store(dev, &rng, 8, 64, 1000, 1, 0, 0);
    test_each_reduction_variant(dev, &rng, attention_cases);
    /* The tiled prompt kernel (GPUs' choice for prompts), forced for every case, decode rows too. */
    setenv("VKLLM_ATTN_TILED", "1", 1);
    attention_cases(dev, &rng);
    unsetenv("VKLLM_ATTN_TILED");
    test_replay(dev, &rng, 4, 4, 128, 100, 0, 5, 3, 1);
    /* Split decode on both kernels: this device's own choice, then a GPU's (the tiled kernel). */
    const VkPhysicalDeviceType type = dev->info.type;
    split_decode_cases(dev, &rng);
    dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    split_decode_cases(dev, &rng);
    test_replay(dev, &rng, 8, 2, 64, 200, 60, 2, 6, 5);
    dev->info.type = type;
    split_plan(dev);
    test_op_errors(dev, 1 << 16, argument_errors);
    test_device_close(&td);
    return test_finish("op_attention");
}

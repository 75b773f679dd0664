/* vkl_op_kv_store and vkl_op_attention (host/ops/ops.h). The KV cache of a layer is f16, [n_ctx][n_kv_heads*head_dim],
 * bound as uint words of packed half pairs (no 16-bit storage feature needed). Shaders:
 * shaders/kv_store.comp; for attention, GPUs take shaders/attention_tiled.comp (K/V tiles in shared memory
 * shared by a block of queries: a prompt's rows, or a decode row's heads of one kv head), CPU devices
 * shaders/attention.comp (a workgroup per query row and head); each has a SPLIT form for flash decoding,
 * merged by attention_combine.comp. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/ops/ops_misc_internal.h"
#include "runtime/log.h"

#define KV_STORE_WG 256
#define ATTN_MAX_HEAD_DIM 256

/* The rows of one ring: the whole cache, or with several sequences each one's. */
static uint32_t ring_size(const vk_attention_params *p) { return p->row_base ? p->ring_rows : p->n_ctx; }

/* The kernels' n_ctx: the rows of a ring (ring caches), else of the cache. */
static uint32_t kernel_rows(const vk_attention_params *p) { return p->ring ? ring_size(p) : p->n_ctx; }

/* The kernels' seq_rows (never 0: they divide by it only with ring and row_base). */
static uint32_t kernel_seq_rows(const vk_attention_params *p) { return p->seq_rows ? p->seq_rows : 1; }

static vkllm_status check_params(vkr_graph *g, const vk_attention_params *p, const char *op)
{
    if (!g)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: graph is NULL", op);
    if (!p)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: parameters are NULL", op);
    if (p->n_heads == 0 || p->n_kv_heads == 0 || p->n_heads % p->n_kv_heads)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %u query heads cannot share %u kv heads", op, p->n_heads,
                         p->n_kv_heads);
    if (p->head_dim == 0 || p->head_dim % 2)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: head_dim %u must be even and non-zero", op, p->head_dim);
    if (p->head_dim > ATTN_MAX_HEAD_DIM)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: head_dim %u is over %u", op, p->head_dim, ATTN_MAX_HEAD_DIM);
    if (p->n_ctx == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: n_ctx is 0", op);
    if (p->ring && p->row_base && (p->ring_rows == 0 || p->n_ctx % p->ring_rows || p->seq_rows == 0))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: rings of %u rows in a cache of %u rows, sequences %u rows "
                         "apart", op, p->ring_rows, p->n_ctx, p->seq_rows);
    if (p->ring && (p->window == 0 || p->window > ring_size(p)))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: a ring cache of %u rows needs a window of 1..%u, not %u", op,
                         ring_size(p), ring_size(p), p->window);
    const uint64_t kv_dim = (uint64_t)p->n_kv_heads * p->head_dim;
    if ((uint64_t)p->n_ctx * kv_dim / 2 > UINT32_MAX ||
        (uint64_t)p->n_rows * p->n_heads * p->head_dim > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: cache or activations too large for 32-bit indexing", op);
    return VKLLM_OK;
}

/* The bytes of `positions`: with row_base, the base rows and the rows within the sequences follow the
 * positions. */
static VkDeviceSize positions_bytes(const vk_attention_params *p)
{
    return (VkDeviceSize)p->n_rows * 4 * (p->row_base ? 3 : 1);
}

/* What both KV-store kernels take: the new rows' K and V (n_rows x kv_dim f32), the layer's caches and the
 * rows' positions (positions_bytes). */
typedef struct kv_views {
    vk_view k, v, k_cache, v_cache, positions;
} kv_views;

/* The rope both kernels can apply: an even n_rot within the head, a finite positive base. */
static bool rope_usable(const vk_rope_params *rope, uint32_t head_dim)
{
    return rope->n_rot <= head_dim && rope->n_rot % 2 == 0 && rope->theta_base > 0.0f && isfinite(rope->theta_base);
}

/* The kernels' freq_exp: -2 log2(theta_base) / n_rot (0 when nothing rotates). */
static float rope_freq_exp(const vk_rope_params *rope)
{
    return rope->n_rot ? (float)(-2.0 * log2((double)rope->theta_base) / (double)rope->n_rot) : 0.0f;
}

/* The set-up both KV-store builders share: *d made for pipeline `name` (reduce: its subgroup form where the
 * device has one) with n_buffers bindings, push_words words of push constants and workgroup size wg, and
 * k, v, k_cache, v_cache and positions bound at slots first .. first + 4 (their element offsets into off). */
static vkllm_status kv_store_begin(vkr_device *dev, vkr_dispatch *d, const char *name, bool reduce, uint32_t n_buffers,
                                   uint32_t push_words, uint32_t wg, uint32_t first, const kv_views *in,
                                   const vk_attention_params *p, uint32_t off[5])
{
    memset(d, 0, sizeof *d);
    d->name = name;
    const uint32_t kv_dim = p->n_kv_heads * p->head_dim;
    const VkDeviceSize kv_bytes = (VkDeviceSize)p->n_rows * kv_dim * 4;
    const VkDeviceSize cache_bytes = (VkDeviceSize)p->n_ctx * kv_dim * 2;
    vkllm_status st;
    if ((st = opsm_pipeline(dev, d, name, reduce, n_buffers, push_words * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, d, first, in->k.buf, in->k.offset, kv_bytes, false, 4, &off[0], "k")) != VKLLM_OK ||
        (st = opsm_bind(dev, d, first + 1, in->v.buf, in->v.offset, kv_bytes, false, 4, &off[1], "v")) != VKLLM_OK ||
        (st = opsm_bind(dev, d, first + 2, in->k_cache.buf, in->k_cache.offset, cache_bytes, true, 4, &off[2],
                        "k_cache")) != VKLLM_OK ||
        (st = opsm_bind(dev, d, first + 3, in->v_cache.buf, in->v_cache.offset, cache_bytes, true, 4, &off[3],
                        "v_cache")) != VKLLM_OK)
        return st;
    return opsm_bind(dev, d, first + 4, in->positions.buf, in->positions.offset, positions_bytes(p), false, 4, &off[4],
                     "positions");
}

/* Binds rope's frequency factors (checked by the caller) at `slot`, or without them a range of the positions,
 * which the shader then does not read. */
static vkllm_status bind_freq_factors(vkr_device *dev, vkr_dispatch *d, uint32_t slot, const vk_rope_params *rope,
                                      vk_view positions, const vk_attention_params *p, uint32_t *off)
{
    if (rope->freq_factors)
        return opsm_bind(dev, d, slot, rope->freq_factors->buffer, rope->freq_factors->qs_offset,
                         (VkDeviceSize)(rope->n_rot / 2) * 4, false, 4, off, "freq_factors");
    return opsm_bind(dev, d, slot, positions.buf, positions.offset, (VkDeviceSize)p->n_rows * 4, false, 4, off,
                     "positions");
}

/* kv_store, optionally rotating K first (interleaved rope only: its pairs are the packed f16 pairs), and Q in
 * place when q.buf is set. */
static vkllm_status kv_store(vkr_graph *g, vk_view q, const kv_views *in, const vk_rope_params *rope,
                             const vk_attention_params *p)
{
    const char *name = rope ? "kv_store_rope" : "kv_store";
    vkllm_status st = check_params(g, p, name);
    if (st != VKLLM_OK)
        return st;
    if (p->ring)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: ring caches are stored by op_rope_kv_store_heads", name);
    if (rope && (rope->mode != VK_ROPE_INTERLEAVED || rope->head_dim != p->head_dim ||
                 rope->n_heads != p->n_kv_heads || !rope_usable(rope, p->head_dim)))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                         "kv_store_rope: needs interleaved rope over the kv heads with n_rot <= head_dim, even");
    if (p->n_rows == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    const uint32_t wg = opsm_wg_size(dev, KV_STORE_WG);
    const uint32_t kv_dim = p->n_kv_heads * p->head_dim;
    const uint32_t q_half = rope && q.buf ? p->n_heads * p->head_dim / 2 : 0;
    uint32_t off[5], fo = 0, qo = 0;
    if ((st = kv_store_begin(dev, &d, name, false, rope ? 7 : 5, rope ? 16 : 9, wg, 0, in, p, off)) != VKLLM_OK ||
        (st = opsm_groups_for(dev, &d, (uint64_t)p->n_rows * (kv_dim / 2 + q_half), wg)) != VKLLM_OK)
        return st;
    /* Q (read and written), or k standing in for it: the shader does not touch it when q_half is 0. */
    if (rope && (st = opsm_bind(dev, &d, 6, q_half ? q.buf : in->k.buf, q_half ? q.offset : in->k.offset,
                                q_half ? (VkDeviceSize)p->n_rows * q_half * 8 : (VkDeviceSize)p->n_rows * kv_dim * 4,
                                q_half != 0, 4, &qo, "q")) != VKLLM_OK)
        return st;
    if (rope && rope->freq_factors &&
        (st = opsm_check_f32_vector(rope->freq_factors, rope->n_rot / 2, name, "freq_factors")) != VKLLM_OK)
        return st;
    if (rope && (st = bind_freq_factors(dev, &d, 5, rope, in->positions, p, &fo)) != VKLLM_OK)
        return st;
    d.push[0] = p->n_rows;
    d.push[1] = kv_dim / 2;
    d.push[2] = p->n_ctx;
    memcpy(&d.push[3], off, sizeof off);   /* k, v, k_cache, v_cache, positions */
    if (rope) {
        d.push[8] = p->head_dim / 2;
        d.push[9] = rope->n_rot / 2;
        opsm_push_f32(&d, 10, rope_freq_exp(rope));
        d.push[11] = rope->freq_factors != NULL;
        d.push[12] = fo;
        d.push[13] = q_half;
        d.push[14] = qo;
    }
    d.push[rope ? 15 : 8] = p->row_base;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_kv_store(vkr_graph *g, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                         vk_view positions, const vk_attention_params *p)
{
    const kv_views in = {k, v, k_cache, v_cache, positions};
    return kv_store(g, vk_view_of(NULL, 0), &in, NULL, p);
}

vkllm_status vkl_op_rope_kv_store(vkr_graph *g, vk_view q, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                              vk_view positions, const vk_rope_params *rope, const vk_attention_params *p)
{
    if (!rope)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "kv_store_rope: rope parameters are NULL");
    const kv_views in = {k, v, k_cache, v_cache, positions};
    return kv_store(g, q, &in, rope, p);
}

#define HEADS_WG 64

vkllm_status vkl_op_rope_kv_store_heads(vkr_graph *g, vk_view q, vk_view k, vk_view v, vk_view k_cache, vk_view v_cache,
                                    vk_view positions, const vk_rope_params *rope, const vk_head_prep *prep,
                                    const vk_attention_params *p)
{
    const char *name = "kv_store_heads";
    vkllm_status st = check_params(g, p, name);
    if (st != VKLLM_OK)
        return st;
    if (!rope || !prep)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: rope or head parameters are NULL", name);
    if ((rope->mode != VK_ROPE_INTERLEAVED && rope->mode != VK_ROPE_NEOX) || !rope_usable(rope, p->head_dim) ||
        !(rope->mscale >= 0.0f) || !isfinite(rope->mscale))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad rope (mode %d, n_rot %u of %u, base %g, mscale %g)", name,
                         (int)rope->mode, rope->n_rot, p->head_dim, (double)rope->theta_base, (double)rope->mscale);
    if (!(prep->eps >= 0.0f) || !isfinite(prep->eps))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad eps %g", name, (double)prep->eps);
    const uint32_t q_dim = p->n_heads * p->head_dim, kv_dim = p->n_kv_heads * p->head_dim;
    const uint64_t aux_n = (prep->bias ? (uint64_t)q_dim + 2 * kv_dim : 0) + (prep->norm ? 2 * p->head_dim : 0);
    if (aux_n && (st = opsm_check_f32_vector(prep->aux, aux_n, name, "aux")) != VKLLM_OK)
        return st;
    if (rope->freq_factors &&
        (st = opsm_check_f32_vector(rope->freq_factors, rope->n_rot / 2, name, "freq_factors")) != VKLLM_OK)
        return st;
    if (p->n_rows == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    const uint32_t wg = opsm_wg_size(dev, HEADS_WG);
    const bool has_q = q.buf != NULL;
    const VkDeviceSize rows_bytes = (VkDeviceSize)p->n_rows * 4;
    const kv_views in = {k, v, k_cache, v_cache, positions};
    uint32_t qo = 0, off[5], fo = 0, ao = 0;
    /* Unused slots (no Q, no factors, no aux) bind a range the shader never reads. */
    if ((st = kv_store_begin(dev, &d, name, true, 8, 19, wg, 1, &in, p, off)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, has_q ? q.buf : k.buf, has_q ? q.offset : k.offset,
                        has_q ? rows_bytes * q_dim : rows_bytes * kv_dim, has_q, 4, &qo, "q")) != VKLLM_OK)
        return st;
    st = bind_freq_factors(dev, &d, 6, rope, positions, p, &fo);
    if (st == VKLLM_OK && aux_n)
        st = opsm_bind(dev, &d, 7, prep->aux->buffer, prep->aux->qs_offset, aux_n * 4, false, 4, &ao, "aux");
    else if (st == VKLLM_OK)
        st = opsm_bind(dev, &d, 7, positions.buf, positions.offset, rows_bytes, false, 4, &ao, "positions");
    const uint64_t slots = (has_q ? p->n_heads : 0) + p->n_kv_heads;
    if (st != VKLLM_OK || (st = opsm_groups(dev, &d, (uint64_t)p->n_rows * slots)) != VKLLM_OK)
        return st;
    d.push[0] = p->n_rows;
    d.push[1] = p->n_heads;
    d.push[2] = p->n_kv_heads;
    d.push[3] = p->head_dim;
    d.push[4] = rope->n_rot;
    d.push[5] = kernel_rows(p);
    opsm_push_f32(&d, 6, rope_freq_exp(rope));
    opsm_push_f32(&d, 7, rope->mscale > 0.0f ? rope->mscale : 1.0f);
    d.push[8] = (rope->mode == VK_ROPE_NEOX ? 1u : 0u) | (rope->freq_factors ? 2u : 0u) | (prep->bias ? 4u : 0u) |
                (prep->norm ? 8u : 0u) | (has_q ? 0u : 16u) | (p->ring ? 32u : 0u) |
                (p->row_base ? 64u : 0u);
    opsm_push_f32(&d, 9, prep->eps);
    d.push[10] = qo;
    memcpy(&d.push[11], off, sizeof off);   /* k, v, k_cache, v_cache, positions */
    d.push[16] = fo;
    d.push[17] = ao;
    d.push[18] = kernel_seq_rows(p);
    return vkr_graph_add(g, &d);
}

#define ATTN_MAX_SPLIT 64
#define ATTN_TILED_MAX_BQ 16

/* The tiled kernel (shaders/attention_tiled.comp): query vectors per workgroup (bq: at most the n_q query
 * vectors of a kv head, rounded up to a power of two) and cache rows per tile (bc) whose shared arrays fit
 * the device; false if none do. */
static bool tiled_shape(const vkr_device *dev, uint32_t head_dim, uint64_t n_q, uint32_t *bq, uint32_t *bc)
{
    const uint64_t limit = dev->info.features.max_compute_shared_memory;
    const uint64_t hd2 = head_dim / 2;
    uint32_t q_max = 1;
    while (q_max < ATTN_TILED_MAX_BQ && q_max < n_q)
        q_max *= 2;
    for (uint32_t q = q_max; q >= 1; q /= 2) {
        for (uint32_t c = 32; c >= 8; c /= 2) {
            /* ks (rows padded by a word), vs (words), qs (vec2), sp, three row floats and two row uints */
            uint64_t bytes = 4 * (c * (hd2 + 1) + c * hd2 + 2 * q * hd2 + (uint64_t)q * c + 5 * q);
            if (bytes <= limit) {
                *bq = q;
                *bc = c;
                return true;
            }
        }
    }
    return false;
}

/* Whether vkl_op_attention takes the tiled kernel: VKLLM_ATTN_TILED=1/0 (tests) forces it on or off; otherwise
 * GPUs do, for prompts and decode alike (CPU devices gain nothing from shared memory). */
static bool use_tiled(const vkr_device *dev, const vk_attention_params *p, uint32_t *bq, uint32_t *bc)
{
    if (!tiled_shape(dev, p->head_dim, (uint64_t)p->n_rows * (p->n_heads / p->n_kv_heads), bq, bc))
        return false;
    const char *env = getenv("VKLLM_ATTN_TILED");
    if (env && (!strcmp(env, "0") || !strcmp(env, "1")))
        return env[0] == '1';
    return dev->info.type != VK_PHYSICAL_DEVICE_TYPE_CPU;
}

/* Compute units (SMs, CUs) the device probably has: Vulkan does not say without vendor extensions, and the
 * split only needs the order of magnitude. */
static uint32_t estimated_compute_units(const vkr_device *dev)
{
    switch (dev->info.type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return 128;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return 24;
    default:
        return 8;
    }
}

uint32_t vkl_op_attention_split_plan(const vkr_device *dev, vk_attention_params *p)
{
    p->n_split = 1;
    p->split_min_rows = ATTN_SPLIT_MIN_ROWS;
    const char *env = getenv("VKLLM_ATTN_SPLIT");
    char *end = NULL;
    long forced = env && *env ? strtol(env, &end, 10) : -1;
    if (env && *env && (*end || forced < 0)) {
        vkr_log(VKLLM_LOG_WARNING, "VKLLM_ATTN_SPLIT='%s' is not 0, 1 or a number of parts; ignored", env);
        forced = -1;
    }
    if (forced >= 2) {
        p->n_split = (uint32_t)(forced > ATTN_MAX_SPLIT ? ATTN_MAX_SPLIT : forced);
        p->split_min_rows = 1;
        return 0;
    }
    if (forced == 0 || (forced != 1 && dev->info.type == VK_PHYSICAL_DEVICE_TYPE_CPU) || p->n_kv_heads == 0)
        return UINT32_MAX;
    /* About two workgroups per compute unit at the longest context, never parts under the minimum. The
     * tiled kernel's workgroup serves a kv head's query heads, the per-row one a single head. */
    uint32_t bq, bc;
    const bool tiled = use_tiled(dev, p, &bq, &bc);
    const uint64_t units = (uint64_t)p->n_rows * (tiled ? p->n_kv_heads : p->n_heads);
    uint64_t parts = (2ull * estimated_compute_units(dev) + units - 1) / (units ? units : 1);
    const uint64_t by_len = ((uint64_t)p->n_ctx + ATTN_SPLIT_MIN_ROWS - 1) / ATTN_SPLIT_MIN_ROWS;
    parts = parts < by_len ? parts : by_len;
    parts = parts > 32 ? 32 : forced == 1 && parts < 2 ? 2 : parts;
    if (parts < 2 || by_len < 2)
        return UINT32_MAX;
    p->n_split = (uint32_t)parts;
    return ATTN_SPLIT_MIN_ROWS;   /* below it there is only one part: the merge would be wasted */
}

/* The fewest cache rows per split part the kernels are told. */
static uint32_t part_min(const vk_attention_params *p)
{
    return p->split_min_rows ? p->split_min_rows : ATTN_SPLIT_MIN_ROWS;
}

/* attention_tiled.comp: one workgroup per (kv head, block of bq query vectors[, split part]). */
static vkllm_status attention_tiled(vkr_graph *g, vkr_device *dev, vk_view q, vk_view k_cache, vk_view v_cache,
                                    vk_view positions, vk_view out, const vk_attention_params *p, uint32_t bq,
                                    uint32_t bc)
{
    const bool split = p->n_split > 1;
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = split ? "attention_tiled_split" : "attention_tiled";
    uint32_t sg = dev->info.features.subgroup_size;
    const uint32_t wg = opsm_wg_size(dev, sg > 64 ? sg : 64);
    vkr_pipeline_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.shader = d.name;
    desc.n_buffers = 5;
    desc.push_size = 19 * 4;
    desc.local_size_x = wg;
    desc.n_spec = 3;
    desc.spec[0] = bq;
    desc.spec[1] = bc;
    desc.spec[2] = p->head_dim / 2;
    const uint32_t group = p->n_heads / p->n_kv_heads, kv_dim = p->n_kv_heads * p->head_dim;
    const uint64_t n_blocks = ((uint64_t)p->n_rows * group + bq - 1) / bq;
    const VkDeviceSize act_bytes = (VkDeviceSize)p->n_rows * p->n_heads * p->head_dim * 4;
    const VkDeviceSize cache_bytes = (VkDeviceSize)p->n_ctx * kv_dim * 2;
    const VkDeviceSize scratch_bytes = (VkDeviceSize)p->n_rows * p->n_heads * p->n_split * (p->head_dim + 2) * 4;
    const vk_view dst = split ? p->scratch : out;
    uint32_t qo = 0, kco = 0, vco = 0, po = 0, oo = 0;
    vkllm_status st;
    if ((st = vkr_pipeline_get(dev, &desc, &d.pipeline)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, q.buf, q.offset, act_bytes, false, 4, &qo, "q")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, k_cache.buf, k_cache.offset, cache_bytes, false, 4, &kco, "k_cache")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 2, v_cache.buf, v_cache.offset, cache_bytes, false, 4, &vco, "v_cache")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 3, positions.buf, positions.offset, positions_bytes(p), false, 4, &po,
                        "positions")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 4, dst.buf, dst.offset, split ? scratch_bytes : act_bytes, true, 4, &oo,
                        split ? "scratch" : "out")) != VKLLM_OK ||
        (st = opsm_groups(dev, &d, n_blocks * p->n_kv_heads * (split ? p->n_split : 1))) != VKLLM_OK)
        return st;
    d.push[0] = p->n_rows;
    d.push[1] = p->n_heads;
    d.push[2] = group;
    d.push[3] = kv_dim / 2;
    d.push[4] = kernel_rows(p);
    opsm_push_f32(&d, 5, p->scale);
    d.push[6] = qo;
    d.push[7] = kco;
    d.push[8] = vco;
    d.push[9] = po;
    d.push[10] = oo;
    d.push[11] = (uint32_t)n_blocks;
    d.push[12] = p->window;
    opsm_push_f32(&d, 13, p->softcap);
    d.push[14] = p->ring;
    d.push[15] = split ? p->n_split : 1;
    d.push[16] = part_min(p);
    d.push[17] = p->row_base;
    d.push[18] = kernel_seq_rows(p);
    return vkr_graph_add(g, &d);
}

/* Merges the n_split parts in scratch into out (attention_combine.comp). */
static vkllm_status attention_combine(vkr_graph *g, vkr_device *dev, vk_view scratch, vk_view out,
                                      const vk_attention_params *p)
{
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "attention_combine";
    const uint64_t n_groups = (uint64_t)p->n_rows * p->n_heads;
    const uint32_t wg = opsm_wg_size(dev, 64);
    uint32_t so = 0, oo = 0;
    vkllm_status st;
    if ((st = opsm_pipeline(dev, &d, "attention_combine", true, 2, 5 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, scratch.buf, scratch.offset, n_groups * p->n_split * (p->head_dim + 2) * 4, false,
                        4, &so, "scratch")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, out.buf, out.offset, n_groups * p->head_dim * 4, true, 4, &oo, "out")) != VKLLM_OK ||
        (st = opsm_groups(dev, &d, n_groups)) != VKLLM_OK)
        return st;
    d.push[0] = (uint32_t)n_groups;
    d.push[1] = p->n_split;
    d.push[2] = p->head_dim;
    d.push[3] = so;
    d.push[4] = oo;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_attention(vkr_graph *g, vk_view q, vk_view k_cache, vk_view v_cache, vk_view positions,
                          vk_view out, const vk_attention_params *p)
{
    vkllm_status st = check_params(g, p, "attention");
    if (st != VKLLM_OK)
        return st;
    if (!isfinite(p->scale))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "attention: bad scale %g", (double)p->scale);
    if (!(p->softcap >= 0.0f) || !isfinite(p->softcap))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "attention: bad softcap %g", (double)p->softcap);
    const bool split = p->n_split > 1;
    if (split && (p->n_split > ATTN_MAX_SPLIT || !p->scratch.buf))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "attention: a split of %u parts needs a scratch buffer and at most %u",
                         p->n_split, ATTN_MAX_SPLIT);
    if (p->n_rows == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    uint32_t bq, bc;
    if (use_tiled(dev, p, &bq, &bc)) {
        if ((st = attention_tiled(g, dev, q, k_cache, v_cache, positions, out, p, bq, bc)) != VKLLM_OK || !split)
            return st;
        return attention_combine(g, dev, p->scratch, out, p);
    }
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = split ? "attention_split" : "attention";
    /* One cache row per invocation per tile: a tile of 64 rows (or one subgroup, if wider). */
    uint32_t sg = dev->info.features.subgroup_size;
    const uint32_t wg = opsm_wg_size(dev, sg > 64 ? sg : 64);
    const uint32_t kv_dim = p->n_kv_heads * p->head_dim;
    const VkDeviceSize act_bytes = (VkDeviceSize)p->n_rows * p->n_heads * p->head_dim * 4;
    const VkDeviceSize cache_bytes = (VkDeviceSize)p->n_ctx * kv_dim * 2;
    uint32_t qo = 0, kco = 0, vco = 0, po = 0, oo = 0;
    const VkDeviceSize scratch_bytes = (VkDeviceSize)p->n_rows * p->n_heads * p->n_split * (p->head_dim + 2) * 4;
    vk_view dst = split ? p->scratch : out;
    if ((st = opsm_pipeline(dev, &d, split ? "attention_split" : "attention", true, 5, 19 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, q.buf, q.offset, act_bytes, false, 4, &qo, "q")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, k_cache.buf, k_cache.offset, cache_bytes, false, 4, &kco, "k_cache")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 2, v_cache.buf, v_cache.offset, cache_bytes, false, 4, &vco, "v_cache")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 3, positions.buf, positions.offset, positions_bytes(p), false, 4, &po,
                        "positions")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 4, dst.buf, dst.offset, split ? scratch_bytes : act_bytes, true, 4, &oo,
                        split ? "scratch" : "out")) != VKLLM_OK ||
        (st = opsm_groups(dev, &d, (uint64_t)p->n_rows * p->n_heads * (split ? p->n_split : 1))) != VKLLM_OK)
        return st;
    d.push[0] = p->n_rows;
    d.push[1] = p->n_heads;
    d.push[2] = p->n_heads / p->n_kv_heads;
    d.push[3] = p->head_dim / 2;
    d.push[4] = kv_dim / 2;
    d.push[5] = kernel_rows(p);
    opsm_push_f32(&d, 6, p->scale);
    d.push[7] = qo;
    d.push[8] = kco;
    d.push[9] = vco;
    d.push[10] = po;
    d.push[11] = oo;
    d.push[12] = split ? p->n_split : 1;
    d.push[13] = p->window;
    opsm_push_f32(&d, 14, p->softcap);
    d.push[15] = p->ring;
    d.push[16] = part_min(p);
    d.push[17] = p->row_base;
    d.push[18] = kernel_seq_rows(p);
    if ((st = vkr_graph_add(g, &d)) != VKLLM_OK || !split)
        return st;
    return attention_combine(g, dev, p->scratch, out, p);
}

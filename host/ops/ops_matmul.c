/* vkl_op_matmul and vkl_op_get_rows.
 *
 * Kernel choice, per device and per call (n_cols = columns of x):
 *   CPU devices (VK_PHYSICAL_DEVICE_TYPE_CPU, e.g. lavapipe) with subgroup shuffles: shaders/mm_cpu.comp for
 *     every n_cols (a workgroup is one subgroup, each invocation owns whole rows, no barriers or shared
 *     memory; see the shader), with tiles of up to CPU_MAX_NC columns, provided the weight rows are whole
 *     16-byte units at 16-byte aligned offsets and x is 16-byte aligned; otherwise the GPU kernels below.
 *     One Q8_0/Q4_0 column uses its 64-bit-load variant where shaderInt64 and the alignment allow
 *     (cpu_i64_applies).
 *   GPUs: shaders/matvec.comp for n_cols == 1 (decode) and for 1 < n_cols <= MV_MAX_COLS (every weight
 *     byte read once for all columns: batched decode, short prompts), the tiled shaders/matmul.comp beyond.
 *     Beyond MV_MAX_COLS, devices with a cooperative-matrix extension enabled for it (runtime/device.c: by
 *     default where the device has the kernel's shape) use shaders/matmul_coopmat.comp instead (f16 inputs, f32
 *     accumulation; see matmul_coopmat()) once a one-time self-check against the tiled kernel passed on the
 *     device (coopmat_applies; VKLLM_COOPMAT=1 uses them without it, =0 never), x converted to f16 once per op.
 *
 * Weights larger than maxStorageBufferRange: every dispatch binds only a chunk of rows of the weight
 * (the quants/data region and the meta region separately) and the matching part of the output. A
 * bound range starts at the wanted offset rounded down to the device's offset alignment (and to 16 bytes,
 * so vec4/uvec4 indexing stays exact); the remainder goes to the shader in push constants. Chunk row
 * counts are multiples of 256 when there is more than one chunk, so with the tensor layout of
 * host/ops/tensor.c the remainders are normally 0. Workgroup counts are kept within maxComputeWorkGroupCount
 * the same way (more chunks).
 *
 * Weights may be row-range views of a larger tensor (vkl_tensor_rows: non-zero qs_offset and d_offset). The
 * quants region of a quantized weight must start on 16 bytes (F32/F16/BF16 data: 4); its meta region on 2 bytes
 * where the meta is one f16 per block (Q8_0, Q4_0, IQ4_NL), else on 4 (host/ops/tensor.c's layout gives both). The
 * CPU kernel also needs F32/F16/BF16 rows in whole 16-byte units and falls back to the GPU kernels if not.
 * Every type goes through the same code here: the shader variant is named after the type table's name. */
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/ops/ops_misc_internal.h"
#include "host/format/quant.h"
#include "runtime/log.h"

/* Tunables. */
#define MV_ROWS 2u          /* matvec: rows per workgroup */
#define MV_WG 64u           /* matvec: workgroup size (at least the subgroup size) */
#define MV_MAX_COLS 8u      /* GPUs: up to this many columns use the multi-column matvec */
#define MM_TILE_MAX 128u    /* matmul: largest tile edge (see matmul_tile) */
#define MM_MICRO 8u         /* matmul: rows and columns per invocation (fixed in shaders/matmul.comp) */
#define MM_MIN_GROUPS 128u  /* matmul: smaller tiles until a dispatch has this many workgroups (about one per
                             * multiprocessor of a large GPU) */
#define GR_WG 64u           /* get_rows: workgroup size */
#define CPU_RPL 32u         /* CPU kernel: rows per invocation for one column (fewer when that leaves too few
                             * workgroups) */
#define CPU_RPL_TILE 16u    /* ... for tiles of several columns (register use and compile time grow with both) */
#define CPU_RPL_GRID 8u     /* ... for the IQ grid types, whose units are several times longer (a load per grid
                             * entry): llvmpipe's compile time grows faster than the unrolled body (IQ3_S at 32 rows:
                             * about 6 minutes under load, at 8: 16 s) */
#define CPU_RPL_GRID_TILE 4u
#define CPU_MIN_GROUPS 16u  /* CPU kernel: workgroups wanted per dispatch, to keep the driver's threads busy */
#define CPU_MAX_NC 8u       /* CPU kernel: columns per tile (tiles have 1, 2, 4 or 8 columns: fewer pipelines) */
#define CHUNK_ROW_MULTIPLE 256u

typedef struct mm_ctx {
    vkr_device *dev;
    uint64_t max_range;     /* usable bytes of one binding, alignment slack already subtracted */
    uint64_t align;         /* binding offsets are multiples of this */
    uint32_t max_groups[3];
    uint64_t y_stride;      /* floats between two columns of y; 0: the weight's rows (not so for a part) */
    vkr_buffer *x16;        /* x as f16 (x16_convert), once per vkl_op_matmul for all parts; NULL: not yet */
} mm_ctx;

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static vkllm_status ctx_init(vkr_graph *g, mm_ctx *c, const char *op)
{
    memset(c, 0, sizeof *c);
    c->dev = g ? vkr_graph_device(g) : NULL;
    if (!c->dev)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: no graph", op);
    const vkr_features *ft = &c->dev->info.features;
    uint64_t a = ft->min_storage_buffer_offset_alignment ? ft->min_storage_buffer_offset_alignment : 1;
    c->align = a / gcd_u64(a, 16) * 16;   /* lcm(alignment, 16) */
    uint64_t range = ft->max_storage_buffer_range;
    if (range > UINT32_MAX)
        range = UINT32_MAX;   /* byte offsets inside a binding are uint in the shaders */
    uint64_t slack = c->align + 16;
    if (range <= slack + 16)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: maxStorageBufferRange %llu is too small", op,
                         (unsigned long long)ft->max_storage_buffer_range);
    c->max_range = range - slack;
    for (int i = 0; i < 3; i++)
        c->max_groups[i] = ft->max_workgroup_count[i] ? ft->max_workgroup_count[i] : 65535;
    return VKLLM_OK;
}

/* Binds bytes [off, off + len) of buf to slot `slot`, from `off` rounded down to the alignment; the end is
 * rounded up to a whole word when the buffer allows. *residual = bytes from the binding start to `off`. */
static vkllm_status bind_range(const mm_ctx *c, vkr_dispatch *d, uint32_t slot, vkr_buffer *buf, VkDeviceSize off,
                               VkDeviceSize len, bool write, uint32_t *residual)
{
    if (off > buf->size || len > buf->size - off)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: binding %u needs bytes [%llu, %llu) of a %llu-byte buffer",
                         d->name, slot, (unsigned long long)off, (unsigned long long)(off + len),
                         (unsigned long long)buf->size);
    VkDeviceSize base = off / c->align * c->align;
    VkDeviceSize end = (off + len + 3) & ~(VkDeviceSize)3;
    if (end > buf->size)
        end = off + len;
    if (end == base)
        end = base + 4 <= buf->size ? base + 4 : buf->size;
    if (end - base > c->max_range + c->align + 16)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: binding %u spans %llu bytes, over maxStorageBufferRange",
                         d->name, slot, (unsigned long long)(end - base));
    vkr_binding *b = &d->bindings[slot];
    b->buffer = buf;
    b->offset = base;
    b->range = end - base;
    b->write = write;
    *residual = (uint32_t)(off - base);
    return VKLLM_OK;
}

/* The type table (host/format/quant.c) says which weight types the kernels run. */
bool vkl_op_weight_type_supported(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t && t->kernels;
}

/* Kernel name suffix of a weight type: its table name (check_weight has checked that kernels exist). */
static const char *type_suffix(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t ? t->name : "none";
}

static bool type_quantized(uint32_t type)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    return t && t->meta_bytes > 0;
}

static vkllm_status check_weight(const vk_tensor *w, const char *op)
{
    if (!w || (!w->buffer && w->n_parts == 0))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: weight tensor is not on the device", op);
    if (!vkl_op_weight_type_supported(w->type))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: no kernel for weight type %s (%u)", op,
                         vkl_ggml_type_label(w->type) ? vkl_ggml_type_label(w->type) : "unknown", w->type);
    if (w->ne[0] == 0 || w->ne[1] == 0 || w->ne[0] > UINT32_MAX || w->ne[1] > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad weight shape %llu x %llu", op,
                         (unsigned long long)w->ne[0], (unsigned long long)w->ne[1]);
    if (type_quantized(w->type) && (w->ne[0] % vkl_ggml_block_size(w->type) || w->row_d_bytes == 0))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s row length %llu is not a multiple of %u", op,
                         type_suffix(w->type), (unsigned long long)w->ne[0], vkl_ggml_block_size(w->type));
    return VKLLM_OK;
}

static vkllm_status check_view(vk_view v, uint64_t bytes, const char *op, const char *what)
{
    if (!v.buf)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s buffer is NULL", op, what);
    if (v.offset % 4)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s offset %llu is not a multiple of 4", op, what,
                         (unsigned long long)v.offset);
    if (v.offset > v.buf->size || bytes > v.buf->size - v.offset)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s needs %llu bytes at offset %llu of a %llu-byte buffer",
                         op, what, (unsigned long long)bytes, (unsigned long long)v.offset,
                         (unsigned long long)v.buf->size);
    return VKLLM_OK;
}

/* Largest power of two <= v, v >= 1. */
static uint32_t pow2_floor(uint32_t v)
{
    uint32_t p = 1;
    while (p <= v / 2)
        p *= 2;
    return p;
}

/* Power-of-two workgroup size near `want` within the device limits. */
static uint32_t wg_size(const vkr_device *dev, uint32_t want)
{
    const vkr_features *ft = &dev->info.features;
    uint32_t lim = ft->max_workgroup_invocations ? ft->max_workgroup_invocations : 128;
    if (ft->max_workgroup_size[0] && ft->max_workgroup_size[0] < lim)
        lim = ft->max_workgroup_size[0];
    return pow2_floor(want < lim ? want : lim);
}

/* Rows per chunk: at most `limit`; when the whole range does not fit, a multiple of CHUNK_ROW_MULTIPLE
 * (and of `unit`) if possible. */
static uint64_t chunk_rows(uint64_t total, uint64_t limit, uint64_t unit)
{
    if (limit >= total)
        return total;
    if (limit >= CHUNK_ROW_MULTIPLE)
        return limit / CHUNK_ROW_MULTIPLE * CHUNK_ROW_MULTIPLE;
    if (limit >= unit)
        return limit / unit * unit;
    return limit;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Binds the rows [r0, r0 + nr) of the weight's regions to slots 0 (and 1 for quantized types). */
static vkllm_status bind_weight_rows(const mm_ctx *c, vkr_dispatch *d, const vk_tensor *w, uint64_t r0, uint64_t nr,
                                     uint32_t *w_res, uint32_t *d_res)
{
    vkllm_status st = bind_range(c, d, 0, w->buffer, w->qs_offset + r0 * w->row_qs_bytes, nr * w->row_qs_bytes,
                                 false, w_res);
    *d_res = 0;
    if (st == VKLLM_OK && type_quantized(w->type))
        st = bind_range(c, d, 1, w->buffer, w->d_offset + r0 * w->row_d_bytes, nr * w->row_d_bytes, false, d_res);
    return st;
}

/* The IQ grid types' kernels read their type's grid (vkl_ggml_type_grid) from one more binding after their others
 * (shaders/dequant.glsl's DQ_GRID_BINDING): the device's copy the tensor holds. Appends it to d. */
static vkllm_status bind_grid(vkr_dispatch *d, const vk_tensor *w)
{
    uint32_t bytes;
    if (!vkl_ggml_type_grid(w->type, &bytes))
        return VKLLM_OK;
    if (!w->grid)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: the %s weight has no grid (not from vkl_tensor_upload)",
                         d->name, type_suffix(w->type));
    d->bindings[d->n_bindings++] = (vkr_binding){w->grid, 0, bytes, false};
    return VKLLM_OK;
}

/* Rows per workgroup and workgroup size of the GPU matvec: MV_ROWS and MV_WG (at least a subgroup), or
 * VKLLM_MATVEC=ROWSxWG (e.g. 4x128: for tuning on a new GPU without a rebuild; ROWS 1..16, WG a power of
 * two within the device's limits). */
static void matvec_shape(const vkr_device *dev, uint32_t *rows, uint32_t *wg)
{
    uint32_t want = MV_WG;
    *rows = MV_ROWS;
    const char *env = getenv("VKLLM_MATVEC");
    unsigned r, w;
    char extra;
    if (env && isdigit((unsigned char)env[0]) && sscanf(env, "%ux%u%c", &r, &w, &extra) == 2 && r >= 1 && r <= 16 &&
        w >= 1 && w <= 1024) {
        *rows = r;
        want = w;
    } else if (env && *env) {
        static atomic_flag warned = ATOMIC_FLAG_INIT;   /* once, not at every matvec recorded */
        if (!atomic_flag_test_and_set(&warned))
            vkr_log(VKLLM_LOG_WARNING, "VKLLM_MATVEC='%s' is not ROWSxWG (ROWS 1..16, WG 1..1024); using %ux%u", env,
                    MV_ROWS, MV_WG);
    }
    if (dev->info.features.subgroup_size > want)
        want = dev->info.features.subgroup_size;
    *wg = wg_size(dev, want);
}

/* The matvec's reduction array red[WG * NRED] (matvec.comp: NRED = rows x (1 + GLU) x columns, plus one sum of
 * squares per column with the norm fused) within maxComputeSharedMemorySize: a shape over it (VKLLM_MATVEC=16x256
 * needs 48 KiB and more with columns) gives up workgroup size down to a subgroup, then rows (even ones for
 * the Q;K;V epilogue), with one warning. */
static vkllm_status matvec_fit_shared(const vkr_device *dev, const vk_matmul_fusion *f, uint32_t ncols, bool even,
                                      uint32_t *rows, uint32_t *wg)
{
    const uint32_t smem = dev->info.features.max_compute_shared_memory ? dev->info.features.max_compute_shared_memory
                                                                       : 16384;
    const uint32_t sg = dev->info.features.subgroup_size ? dev->info.features.subgroup_size : 1;
    const uint32_t rows0 = *rows, wg0 = *wg;
#define RED_BYTES(r, w) ((uint64_t)(w) * ((r) * (1u + (f && f->glu)) * ncols + (f && f->norm) * ncols) * 4)
    while (RED_BYTES(*rows, *wg) > smem && *wg / 2 >= sg)
        *wg /= 2;
    while (RED_BYTES(*rows, *wg) > smem && *rows > (even ? 2u : 1u))
        *rows -= even ? 2 : 1;
    if (RED_BYTES(*rows, *wg) > smem)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "matvec: no workgroup shape fits %u bytes of shared memory", smem);
#undef RED_BYTES
    if (*rows != rows0 || *wg != wg0) {
        static atomic_flag warned = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&warned))
            vkr_log(VKLLM_LOG_WARNING, "matvec shape %ux%u needs more than %u bytes of shared memory; using %ux%u",
                    rows0, wg0, smem, *rows, *wg);
    }
    return VKLLM_OK;
}

/* The Q;K;V epilogue's bindings from `slot` on (K cache, V cache, positions, rope frequency divisors) and its
 * push constants 10.. (9, the first row, is set per dispatch). UNSUPPORTED without a message when a cache does
 * not fit one binding. */
static vkllm_status bind_qkv_store(const mm_ctx *c, vkr_dispatch *d, uint32_t slot, const vk_qkv_store *qs,
                                   uint32_t ncols)
{
    const vk_attention_params *ap = qs->attn;
    const vk_rope_params *rp = qs->rope;
    const uint64_t kv_rows = (uint64_t)ap->n_kv_heads * ap->head_dim, cache_bytes = ap->n_ctx * kv_rows * 2;
    if (cache_bytes > c->max_range)
        return VKLLM_ERR_UNSUPPORTED;
    uint32_t kc_res, vc_res, p_res, f_res = 0;
    vkllm_status st;
    if ((st = bind_range(c, d, slot, qs->k_cache.buf, qs->k_cache.offset, cache_bytes, true, &kc_res)) != VKLLM_OK ||
        (st = bind_range(c, d, slot + 1, qs->v_cache.buf, qs->v_cache.offset, cache_bytes, true, &vc_res)) !=
            VKLLM_OK ||
        (st = bind_range(c, d, slot + 2, qs->positions.buf, qs->positions.offset, ncols * 4, false, &p_res)) !=
            VKLLM_OK)
        return st;
    if (rp->freq_factors)
        st = bind_range(c, d, slot + 3, rp->freq_factors->buffer, rp->freq_factors->qs_offset, rp->n_rot / 2 * 4,
                        false, &f_res);
    else
        d->bindings[slot + 3] = d->bindings[slot + 2];   /* not read */
    const uint32_t p[11] = {ap->n_heads * ap->head_dim, (uint32_t)kv_rows, ap->head_dim / 2, rp->n_rot / 2, 0,
                            rp->freq_factors != NULL, f_res / 4, ap->n_ctx, kc_res / 4, vc_res / 4, p_res / 4};
    memcpy(&d->push[10], p, sizeof p);
    opsm_push_f32(d, 14, (float)(-2.0 * log2((double)rp->theta_base) / (double)rp->n_rot));
    return st;
}

/* The GPU matvec for ncols columns (1 <= ncols <= MV_MAX_COLS), with the fusions of f (NULL: none). Returns
 * VKLLM_ERR_UNSUPPORTED without a message, before recording anything, when ncols > 1 or a fusion does not fit
 * its bindings (the caller then uses the tiled matmul or the separate ops). */
static vkllm_status matvec(vkr_graph *g, const mm_ctx *c, const vk_tensor *w, vk_view x, vk_view y, uint32_t ncols,
                           const vk_matmul_fusion *f)
{
    vkr_device *dev = c->dev;
    const bool quant = type_quantized(w->type);
    const uint64_t K = w->ne[0], M = w->ne[1];
    const bool glu = f && f->glu;
    const uint64_t out_rows = glu ? M / 2 : M;   /* y rows per column */
    const uint64_t ys = c->y_stride ? c->y_stride : out_rows;
    const bool sg = dev->info.features.subgroup_arithmetic;
    const uint64_t x_align = dev->info.features.min_storage_buffer_offset_alignment;

    if ((ncols > 1 || f) && (ncols * K * 4 > c->max_range || (ncols - 1) * ys >= c->max_range / 4 ||
                             (x_align && x.offset % x_align)))
        return VKLLM_ERR_UNSUPPORTED;
    if (K * 4 > c->max_range)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "matvec: x of %llu floats exceeds maxStorageBufferRange",
                         (unsigned long long)K);
    if (x_align && x.offset % x_align)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                         "matvec: x offset %llu is not a multiple of minStorageBufferOffsetAlignment (%llu)",
                         (unsigned long long)x.offset, (unsigned long long)x_align);

    uint32_t rows, wg;
    matvec_shape(dev, &rows, &wg);
    const vk_qkv_store *qs = f ? f->qkv : NULL;
    if (qs)
        rows += rows % 2;   /* both rows of a rope pair in one workgroup */
    vkllm_status fit = matvec_fit_shared(dev, f, ncols, qs != NULL, &rows, &wg);
    if (fit != VKLLM_OK)
        return fit;
    const bool gelu = glu && f->gelu;
    const uint32_t spec[6] = {rows, ncols, f && f->norm, glu, f && f->accumulate, gelu};

    char name[32];
    snprintf(name, sizeof name, "matvec_%s%s%s", type_suffix(w->type), sg ? "_sg" : "",
             qs ? "_rope" : f ? "_fused" : "");
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = !f ? (ncols == 1 ? "matvec" : "matmul")
             : qs             ? (f->norm ? "matvec_norm_rope_kv" : "matvec_rope_kv")
             : f->norm && glu ? (gelu ? "matvec_norm_geglu" : "matvec_norm_glu")
             : f->norm        ? "matvec_norm"
             : glu            ? (gelu ? "matvec_geglu" : "matvec_glu")
             : f->accumulate  ? "matvec_add"
                              : "matvec";
    d.n_bindings = (quant ? 4 : 3) + (f ? 1 : 0) + (qs ? 4 : 0);
    const uint32_t xslot = quant ? 2 : 1, yslot = xslot + 1, gslot = yslot + 1;
    vkllm_status st = bind_grid(&d, w);
    if (st != VKLLM_OK)
        return st;
    if (qs && d.n_bindings > dev->info.features.max_storage_buffers)
        return VKLLM_ERR_UNSUPPORTED;

    /* Rows per dispatch: the y binding spans (ncols - 1) * ys + nr floats. A GLU weight is bound whole
     * (the gate and up rows of one output row are M / 2 rows apart). */
    uint64_t limit = min_u64(c->max_range / w->row_qs_bytes, c->max_range / 4 - (ncols - 1) * ys);
    if (quant)
        limit = min_u64(limit, c->max_range / w->row_d_bytes);
    limit = min_u64(limit, (uint64_t)c->max_groups[0] * rows);
    if (glu && (M % 2 || M / 2 > limit / 2))
        return VKLLM_ERR_UNSUPPORTED;
    uint64_t per = glu ? out_rows : chunk_rows(M, limit, rows);
    if (qs && per % 2)
        return VKLLM_ERR_UNSUPPORTED;
    if (per == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "matvec: a weight row of %llu bytes exceeds maxStorageBufferRange",
                         (unsigned long long)w->row_qs_bytes);

    /* The norm weight is read as vec4 from g_off: its residual below the binding must be whole vec4s. With no
     * norm, x stands in for the unused binding. */
    uint32_t g_res = 0;
    if (f) {
        if (f->norm) {
            if (f->norm->type != GGML_TYPE_F32 || f->norm->ne[0] != K || f->norm->ne[1] != 1)
                return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "matvec: the norm weight is not an f32 vector of %llu",
                                 (unsigned long long)K);
            if ((st = bind_range(c, &d, gslot, f->norm->buffer, f->norm->qs_offset, K * 4, false, &g_res)) !=
                VKLLM_OK)
                return st;
            if (g_res % 16)
                return VKLLM_ERR_UNSUPPORTED;
        } else {
            d.bindings[gslot].buffer = x.buf;
            d.bindings[gslot].offset = x.offset;
            d.bindings[gslot].range = K * 4;
        }
    }
    if (qs && (st = bind_qkv_store(c, &d, gslot + 1, qs, ncols)) != VKLLM_OK)
        return st;
    if ((st = opsm_get_pipeline(dev, name, d.n_bindings, (qs ? 21 : f ? 9 : 7) * 4, wg, f ? 6 : 2, spec, &d.pipeline)) !=
        VKLLM_OK)
        return st;

    for (uint64_t r0 = 0; r0 < out_rows; r0 += per) {
        uint64_t nr = min_u64(per, out_rows - r0);
        uint32_t w_res, d_res, y_res;
        if ((st = glu ? bind_weight_rows(c, &d, w, 0, M, &w_res, &d_res)
                      : bind_weight_rows(c, &d, w, r0, nr, &w_res, &d_res)) != VKLLM_OK ||
            (st = bind_range(c, &d, yslot, y.buf, y.offset + r0 * 4, ((ncols - 1) * ys + nr) * 4, true, &y_res)) !=
                VKLLM_OK)
            return st;
        /* x is read as vec4 from the binding start, so it is bound exactly at its (aligned) offset. */
        d.bindings[xslot].buffer = x.buf;
        d.bindings[xslot].offset = x.offset;
        d.bindings[xslot].range = ncols * K * 4;
        d.bindings[xslot].write = false;
        d.push[0] = (uint32_t)K;
        d.push[1] = (uint32_t)nr;
        d.push[2] = w_res;
        d.push[3] = d_res;
        d.push[4] = y_res / 4;
        d.push[5] = (uint32_t)K;
        d.push[6] = (uint32_t)ys;
        if (f) {
            d.push[7] = g_res / 4;
            memcpy(&d.push[8], &f->eps, 4);
        }
        if (qs)
            d.push[9] = qs->row0 + (uint32_t)r0;
        d.groups[0] = (uint32_t)((nr + rows - 1) / rows);
        d.groups[1] = 1;
        d.groups[2] = 1;
        if ((st = vkr_graph_add(g, &d)) != VKLLM_OK)
            return st;
    }
    return VKLLM_OK;
}

/* Halves per column of x as f16 (shaders/convert_f16.comp): K rounded up to whole uvec4s. */
static uint64_t x16_stride(uint64_t K) { return (K + 7) / 8 * 8; }

/* Dispatches of a kernel that tiles Y by tile_rows x tile_cols: column chunks (X and Y chunks each within one
 * binding) and row chunks (weight regions within one binding), workgroup counts within the device limits.
 * `cpu` selects the push-constant layout of shaders/mm_cpu.comp (else shaders/matmul.comp). x_f16: x holds
 * columns of x16_stride(K) halves (the cooperative-matrix kernel), else of K floats. */
static vkllm_status tiled_dispatches(vkr_graph *g, const mm_ctx *c, vkr_dispatch *d, const vk_tensor *w, vk_view x,
                                     vk_view y, uint32_t n_cols, uint32_t tile_rows, uint32_t tile_cols, bool cpu,
                                     bool x_f16)
{
    const bool quant = type_quantized(w->type);
    const uint64_t K = w->ne[0], M = w->ne[1], N = n_cols;
    const uint64_t x_elem = x_f16 ? 2 : 4, x_col = (x_f16 ? x16_stride(K) : K) * x_elem;   /* bytes */
    const uint64_t ys = c->y_stride ? c->y_stride : M;
    const char *op = d->name;

    if (K * 4 > c->max_range)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: a row of x (%llu floats) exceeds maxStorageBufferRange", op,
                         (unsigned long long)K);
    /* Columns per chunk: X and Y chunks must each fit one binding. */
    uint64_t ncol = min_u64(N, c->max_range / x_col);
    ncol = min_u64(ncol, c->max_range / (ys * 4));
    ncol = min_u64(ncol, (uint64_t)c->max_groups[1] * tile_cols);
    if (ncol == 0)
        ncol = 1;   /* one column: the Y chunk is bounded by the row chunks below */
    if (ncol < N && ncol > tile_cols)
        ncol = ncol / tile_cols * tile_cols;

    uint64_t limit = min_u64(c->max_range / w->row_qs_bytes, (uint64_t)c->max_groups[0] * tile_rows);
    if (quant)
        limit = min_u64(limit, c->max_range / w->row_d_bytes);
    if (ncol == 1)
        limit = min_u64(limit, c->max_range / 4);
    uint64_t per = chunk_rows(M, limit, tile_rows);
    if (per == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: a weight row of %llu bytes exceeds maxStorageBufferRange", op,
                         (unsigned long long)w->row_qs_bytes);

    const uint32_t xslot = quant ? 2 : 1, yslot = xslot + 1;
    vkllm_status st;
    for (uint64_t c0 = 0; c0 < N; c0 += ncol) {
        uint64_t nc = min_u64(ncol, N - c0);
        for (uint64_t r0 = 0; r0 < M; r0 += per) {
            uint64_t nr = min_u64(per, M - r0);
            uint32_t w_res, d_res, x_res, y_res;
            if ((st = bind_weight_rows(c, d, w, r0, nr, &w_res, &d_res)) != VKLLM_OK ||
                (st = bind_range(c, d, xslot, x.buf, x.offset + c0 * x_col, nc * x_col, false, &x_res)) !=
                    VKLLM_OK ||
                (st = bind_range(c, d, yslot, y.buf, y.offset + (c0 * ys + r0) * 4, ((nc - 1) * ys + nr) * 4, true,
                                 &y_res)) != VKLLM_OK)
                return st;
            if (cpu) {
                const uint32_t p[9] = {(uint32_t)K, (uint32_t)nr, (uint32_t)nc, w_res, d_res, x_res / 4,
                                       (uint32_t)K, y_res / 4, (uint32_t)ys};
                memcpy(d->push, p, sizeof p);
            } else {
                const uint32_t p[8] = {(uint32_t)K, (uint32_t)nr, (uint32_t)nc, w_res, d_res, (uint32_t)(x_res / x_elem),
                                       y_res / 4, (uint32_t)ys};
                memcpy(d->push, p, sizeof p);
            }
            d->groups[0] = (uint32_t)((nr + tile_rows - 1) / tile_rows);
            d->groups[1] = (uint32_t)((nc + tile_cols - 1) / tile_cols);
            d->groups[2] = 1;
            if ((st = vkr_graph_add(g, d)) != VKLLM_OK)
                return st;
        }
    }
    return VKLLM_OK;
}

/* The CPU kernel applies: a CPU device with subgroup shuffles, weight rows in whole 16-byte units at a 16-byte
 * aligned offset, x 16-byte aligned (so every load is a uvec4/vec4). */
static bool cpu_kernel_applies(const mm_ctx *c, const vk_tensor *w, vk_view x)
{
    const vkr_device_info *info = &c->dev->info;
    return info->type == VK_PHYSICAL_DEVICE_TYPE_CPU && info->features.subgroup_shuffle &&
           info->features.subgroup_size > 0 && w->qs_offset % 16 == 0 && w->row_qs_bytes % 16 == 0 &&
           x.offset % 16 == 0;
}

/* Whether every binding of data at off + r * stride (any r) leaves a residual below it that is a multiple of a:
 * bindings start at multiples of c->align, and it and a are powers of two. */
static bool residual_aligned(const mm_ctx *c, uint64_t off, uint64_t stride, uint64_t a)
{
    return stride % a == 0 && off % c->align % a == 0;
}

/* A 64-bit-load variant of the CPU kernel (mm_cpu.comp with USE_INT64, found by name: the one-column matvec for
 * Q8_0 and Q4_0, "_i64", and the tiles of several columns for Q4_0, "_i64mc") applies: shaderInt64, K a multiple
 * of 128, quants bound at multiples of 32 bytes, scales of 8, x of 32. It loads twice the bytes per load of the
 * 32-bit variant (llvmpipe's cost is per component). */
static bool cpu_i64_applies(const mm_ctx *c, const vk_tensor *w, vk_view x, const char *name)
{
    return c->dev->info.features.int64 && vkr_shader_exists(name) && w->ne[0] % 128 == 0 &&
           residual_aligned(c, w->qs_offset, w->row_qs_bytes, 32) &&
           residual_aligned(c, w->d_offset, w->row_d_bytes, 8) && residual_aligned(c, x.offset, 0, 32);
}

static vkllm_status mm_cpu(vkr_graph *g, const mm_ctx *c, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols)
{
    vkr_device *dev = c->dev;
    const uint64_t M = w->ne[1];
    /* A workgroup is one subgroup. */
    const uint32_t wg = wg_size(dev, dev->info.features.subgroup_size);
    /* Columns per tile: n_cols rounded up to a power of two, at most CPU_MAX_NC (each value is a pipeline); at
     * most 4 for the types whose units are 64 elements (shaders/dequant.glsl DQ_RUNS 4: the 256-element K-quants
     * and IQ grid types, not IQ4_XS): at 8 their x arrays (8 x 64 floats) are not kept in registers, and an
     * 8-column tile took 8-11x the time of two 4-column ones on lavapipe and ~10 s to build. */
    const uint32_t max_nc = vkl_ggml_block_size(w->type) == 256 && w->type != GGML_TYPE_IQ4_XS ? 4 : CPU_MAX_NC;
    uint32_t nc = 1;
    while (nc < n_cols && nc < max_nc)
        nc *= 2;
    const uint64_t col_tiles = (n_cols + nc - 1) / nc;
    uint32_t grid_bytes;
    uint32_t rpl = vkl_ggml_type_grid(w->type, &grid_bytes) ? (nc == 1 ? CPU_RPL_GRID : CPU_RPL_GRID_TILE)
                   : nc == 1                                 ? CPU_RPL
                                                             : CPU_RPL_TILE;
    while (rpl > 1 && (M + (uint64_t)wg * rpl - 1) / ((uint64_t)wg * rpl) * col_tiles < CPU_MIN_GROUPS)
        rpl /= 2;
    const uint32_t spec[2] = {rpl, nc};

    char name[32];
    snprintf(name, sizeof name, "mm_cpu_%s_i64%s", type_suffix(w->type), nc > 1 ? "mc" : "");
    if (!cpu_i64_applies(c, w, x, name))
        snprintf(name, sizeof name, "mm_cpu_%s", type_suffix(w->type));
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = n_cols == 1 ? "matvec" : "matmul";
    d.n_bindings = type_quantized(w->type) ? 4 : 3;
    vkllm_status st = bind_grid(&d, w);
    /* the grid (binding 4, if any) as a uniform buffer: mm_cpu.comp defines DQ_GRID_UNIFORM */
    if (st == VKLLM_OK)
        st = opsm_get_pipeline_uniform(dev, name, d.n_bindings, grid_bytes ? 1u << 4 : 0u, 9 * 4, wg, 2, spec,
                                       &d.pipeline);
    if (st != VKLLM_OK)
        return st;
    return tiled_dispatches(g, c, &d, w, x, y, n_cols, wg * rpl, nc, true, false);
}

/* Shared memory of shaders/matmul.comp's tiles for a bm x bn tile (its As and Bs arrays). */
static uint32_t matmul_shared_bytes(uint32_t bm, uint32_t bn) { return 128u * (bm + bn); }

static bool matmul_tile_fits(const vkr_device *dev, uint32_t bm, uint32_t bn)
{
    const vkr_features *ft = &dev->info.features;
    const uint32_t wg = (bm / MM_MICRO) * (bn / MM_MICRO);
    const uint32_t smem = ft->max_compute_shared_memory ? ft->max_compute_shared_memory : 16384;
    return matmul_shared_bytes(bm, bn) <= smem && wg_size(dev, wg) == wg;
}

/* Tile of the tiled matmul: VKLLM_MATMUL_TILE=BMxBN (one of the tiles below; for tuning and tests) where it fits
 * the device, else the first of them that fits its shared memory and workgroup size and still gives
 * MM_MIN_GROUPS workgroups (128 columns only for more than 64 columns); 64 x 32 (12 KiB, 32 invocations) fits
 * every Vulkan device. */
static void matmul_tile(const vkr_device *dev, uint64_t M, uint32_t n_cols, uint32_t *bm, uint32_t *bn)
{
    static const uint32_t tiles[][2] = {{128, 128}, {128, 64}, {64, 64}, {64, 32}};
    const size_t n = sizeof tiles / sizeof tiles[0];
    const char *env = getenv("VKLLM_MATMUL_TILE");
    if (env && *env) {
        unsigned r, cl;
        char extra;
        if (sscanf(env, "%ux%u%c", &r, &cl, &extra) == 2)
            for (size_t i = 0; i < n; i++)
                if (r == tiles[i][0] && cl == tiles[i][1] && matmul_tile_fits(dev, r, cl)) {
                    *bm = r;
                    *bn = cl;
                    return;
                }
        static atomic_flag warned = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&warned))
            vkr_log(VKLLM_LOG_WARNING,
                    "VKLLM_MATMUL_TILE='%s' is not 128x128, 128x64, 64x64 or 64x32 within this device's limits; "
                    "choosing the tile",
                    env);
    }
    for (size_t i = 0; i < n; i++) {
        *bm = tiles[i][0];
        *bn = tiles[i][1];
        const uint64_t groups = (M + *bm - 1) / *bm * ((n_cols + *bn - 1) / *bn);
        if (i + 1 == n ||
            (matmul_tile_fits(dev, *bm, *bn) && (*bn < MM_TILE_MAX || n_cols > 64) && groups >= MM_MIN_GROUPS))
            return;
    }
}

static vkllm_status matmul(vkr_graph *g, const mm_ctx *c, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols)
{
    vkr_device *dev = c->dev;
    uint32_t bm, bn;
    matmul_tile(dev, w->ne[1], n_cols, &bm, &bn);
    const uint32_t spec[2] = {bm, bn};
    const uint32_t wg = (bm / MM_MICRO) * (bn / MM_MICRO);

    char name[32];
    snprintf(name, sizeof name, "matmul_%s", type_suffix(w->type));
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "matmul";
    d.n_bindings = type_quantized(w->type) ? 4 : 3;
    vkllm_status st = bind_grid(&d, w);
    if (st == VKLLM_OK)
        st = opsm_get_pipeline(dev, name, d.n_bindings, 8 * 4, wg, 2, spec, &d.pipeline);
    if (st != VKLLM_OK)
        return st;
    return tiled_dispatches(g, c, &d, w, x, y, n_cols, bm, bn, false, false);
}

/* The cooperative-matrix matmul (shaders/matmul_coopmat.comp: f16 inputs, f32 accumulation; experimental, not
 * yet validated on hardware). The device flags are set only where vkr_device_create enabled an extension for
 * it, i.e. with VKLLM_COOPMAT=1 and the 16x16x16 f16 shape (runtime/device.c): the KHR SPIR-V where
 * VK_KHR_cooperative_matrix was enabled, else the NV one (tests: VKLLM_COOPMAT=emulate, the same kernel with
 * the cooperative operations in plain GLSL, on any device with shaderFloat16 and the Vulkan memory model).
 * The workgroup is CM_NSG subgroups: the subgroup size is required where it may vary. */
#define VENDOR_AMD 0x1002u

/* The subgroup size the cooperative-matrix kernel runs with, 0 where none fits. AMD's matrix instructions
 * (RDNA3 WMMA) work on wave32, while its drivers report 64 as the default size: there the kernel requires 32
 * through subgroup size control and is not used without it. Elsewhere the device's default size, required
 * where the size may vary (it must then be controllable). */
static uint32_t coopmat_subgroup_size(const vkr_device *dev)
{
    const vkr_features *ft = &dev->info.features;
    const bool vary = ft->min_subgroup_size != ft->max_subgroup_size;
    if (dev->info.vendor_id == VENDOR_AMD && ft->subgroup_size != 32)
        return ft->subgroup_size_control && ft->min_subgroup_size <= 32 && ft->max_subgroup_size >= 32 ? 32 : 0;
    return ft->subgroup_size && (!vary || ft->subgroup_size_control) ? ft->subgroup_size : 0;
}

static bool coopmat_usable(const vkr_device *dev)
{
    const vkr_features *ft = &dev->info.features;
    return (ft->coopmat_khr_f16 || ft->coopmat_nv_f16 || ft->coopmat_emulated) && coopmat_subgroup_size(dev);
}

vkl_coopmat_choice vkl_coopmat_decide(bool usable, bool forced, int check)
{
    if (!usable)
        return VKL_COOPMAT_TILED;
    if (forced || check > 0)
        return VKL_COOPMAT_USE;
    return check < 0 ? VKL_COOPMAT_TILED : VKL_COOPMAT_RUN_CHECK;
}

/* Whether the prompt matmul uses the cooperative-matrix kernel on this device: vkl_coopmat_decide, running the
 * self-check the first time it is asked for (a failure to run it counts as failed; its message is dropped, since
 * the tiled kernel then does the op). */
static bool coopmat_applies(const mm_ctx *c)
{
    vkr_device *dev = c->dev;
    const vkl_coopmat_choice ch =
        vkl_coopmat_decide(coopmat_usable(dev), !dev->coopmat_auto, atomic_load(&dev->coopmat_check));
    if (ch != VKL_COOPMAT_RUN_CHECK)
        return ch == VKL_COOPMAT_USE;
    bool pass = false;
    double err = 0;
    if (vkl_coopmat_self_check(dev, &pass, &err) != VKLLM_OK) {
        vkr_log(VKLLM_LOG_DEBUG, "cooperative-matrix self-check could not run: %s", vkr_last_error());
        vkr_clear_error();
        pass = false;
    }
    atomic_store(&dev->coopmat_check, pass ? 1 : -1);
    vkr_log(VKLLM_LOG_DEBUG, "prompt matmul: %s (cooperative-matrix self-check %s, relative error %.2g)",
            pass ? "cooperative matrices" : "tiled kernel", pass ? "passed" : "failed", err);
    return pass;
}

/* A tile of shaders/matmul_coopmat.comp: sg_m x sg_n subgroups of tm x tn 16 x 16 accumulators. */
typedef struct coopmat_tile {
    uint32_t sg_m, sg_n, tm, tn;
} coopmat_tile;

static uint32_t coopmat_rows(coopmat_tile t) { return t.sg_m * t.tm * 16; }
static uint32_t coopmat_cols(coopmat_tile t) { return t.sg_n * t.tn * 16; }

/* Shared memory of the kernel with tile t: the f16 W and X slices (32 deep, rows padded to 40 halves) and the
 * f32 staging of one accumulator per subgroup; emulated, also every accumulator (coopmat_emulate.glsl). */
static uint32_t coopmat_shared_bytes(coopmat_tile t, bool emulated)
{
    const uint32_t nsg = t.sg_m * t.sg_n;
    return (coopmat_rows(t) + coopmat_cols(t)) * 40 * 2 + nsg * 1024 + (emulated ? nsg * t.tm * t.tn * 1024 : 0);
}

/* The tile: VKLLM_COOPMAT_TILE=BMxBN (one of the tiles below; for tuning and tests) where it fits the device, else
 * the first that fits its shared memory and workgroup size and gives MM_MIN_GROUPS workgroups (128 columns only
 * for more than 64 columns); 64 x 64 (4 subgroups of 2 x 2 accumulators) fits every device with the extension. */
static coopmat_tile coopmat_pick_tile(const vkr_device *dev, uint64_t M, uint32_t n_cols)
{
    static const coopmat_tile tiles[] = {{2, 4, 4, 2}, {2, 2, 4, 2}, {2, 2, 2, 2}, {2, 2, 2, 1}};
    const size_t n = sizeof tiles / sizeof tiles[0];
    const vkr_features *ft = &dev->info.features;
    const bool emulated = !ft->coopmat_khr_f16 && !ft->coopmat_nv_f16;
    const uint32_t smem = ft->max_compute_shared_memory;
    const uint32_t lim = ft->max_workgroup_invocations;
    const uint32_t sgs = coopmat_subgroup_size(dev);   /* as the dispatch will run (AMD: 32) */
#define TILE_FITS(t) \
    (coopmat_shared_bytes(t, emulated) <= smem && (t).sg_m * (t).sg_n * sgs <= lim)
    const char *env = getenv("VKLLM_COOPMAT_TILE");
    if (env && *env) {
        unsigned r, cl;
        char extra;
        if (sscanf(env, "%ux%u%c", &r, &cl, &extra) == 2)
            for (size_t i = 0; i < n; i++)
                if (coopmat_rows(tiles[i]) == r && coopmat_cols(tiles[i]) == cl && TILE_FITS(tiles[i]))
                    return tiles[i];
        static atomic_flag warned = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&warned))
            vkr_log(VKLLM_LOG_WARNING,
                    "VKLLM_COOPMAT_TILE='%s' is not 128x128, 128x64, 64x64 or 64x32 within this device's limits; "
                    "choosing the tile",
                    env);
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const coopmat_tile t = tiles[i];
        const uint32_t bm = coopmat_rows(t), bn = coopmat_cols(t);
        const uint64_t groups = (M + bm - 1) / bm * ((n_cols + bn - 1) / bn);
        if (TILE_FITS(t) && (bn < MM_TILE_MAX || n_cols > 64) && (groups >= MM_MIN_GROUPS || bm == 64))
            return t;
    }
#undef TILE_FITS
    return tiles[n - 2];
}

/* The conversion of vkl_op_to_f16 (shaders/convert_f16.comp), in column chunks that keep both sides within one
 * binding each. */
static vkllm_status to_f16(vkr_graph *g, const mm_ctx *c, vk_view x, vk_view out, uint64_t K, uint32_t n_cols)
{
    const uint64_t K16 = x16_stride(K);
    if (K * 4 > c->max_range || K16 / 8 > (uint64_t)c->max_groups[0] * 64)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "op_to_f16: a column of %llu floats is too long for this device",
                         (unsigned long long)K);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "convert_f16";
    d.n_bindings = 2;
    vkllm_status st = opsm_get_pipeline(c->dev, "convert_f16", 2, 4 * 4, 64, 0, NULL, &d.pipeline);
    if (st != VKLLM_OK)
        return st;
    uint64_t ncol = min_u64(n_cols, c->max_range / (K * 4));
    ncol = min_u64(ncol, c->max_groups[1]);
    for (uint64_t c0 = 0; c0 < n_cols; c0 += ncol) {
        const uint64_t nc = min_u64(ncol, n_cols - c0);
        uint32_t x_res, o_res;
        if ((st = bind_range(c, &d, 0, x.buf, x.offset + c0 * K * 4, nc * K * 4, false, &x_res)) != VKLLM_OK ||
            (st = bind_range(c, &d, 1, out.buf, out.offset + c0 * K16 * 2, nc * K16 * 2, true, &o_res)) != VKLLM_OK)
            return st;
        const uint32_t p[4] = {(uint32_t)K, (uint32_t)K16, x_res / 4, o_res / 16};
        memcpy(d.push, p, sizeof p);
        d.groups[0] = (uint32_t)((K16 / 8 + 63) / 64);
        d.groups[1] = (uint32_t)nc;
        d.groups[2] = 1;
        if ((st = vkr_graph_add(g, &d)) != VKLLM_OK)
            return st;
    }
    return VKLLM_OK;
}

vkllm_status vkl_op_to_f16(vkr_graph *g, vk_view x, vk_view out, uint32_t K, uint32_t n_cols)
{
    mm_ctx c;
    vkllm_status st = ctx_init(g, &c, "op_to_f16");
    if (st != VKLLM_OK)
        return st;
    if (K == 0 || n_cols == 0)
        return VKLLM_OK;
    if (out.offset % 16)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "op_to_f16: out offset %llu is not a multiple of 16",
                         (unsigned long long)out.offset);
    if ((st = check_view(x, (uint64_t)K * 4 * n_cols, "op_to_f16", "x")) != VKLLM_OK ||
        (st = check_view(out, x16_stride(K) * 2 * n_cols, "op_to_f16", "out")) != VKLLM_OK)
        return st;
    return to_f16(g, &c, x, out, K, n_cols);
}

/* x as f16 in the graph's scratch buffer, once per vkl_op_matmul: read by the cooperative-matrix kernel of every
 * part and row tile. */
static vkllm_status x16_convert(vkr_graph *g, mm_ctx *c, vk_view x, uint64_t K, uint32_t n_cols)
{
    vkr_buffer *buf;
    vkllm_status st = vkr_graph_scratch(g, (VkDeviceSize)n_cols * x16_stride(K) * 2, &buf);
    if (st == VKLLM_OK && (st = to_f16(g, c, x, vk_view_of(buf, 0), K, n_cols)) == VKLLM_OK)
        c->x16 = buf;
    return st;
}

static vkllm_status matmul_coopmat(vkr_graph *g, mm_ctx *c, const vk_tensor *w, vk_view x, vk_view y,
                                   uint32_t n_cols)
{
    vkr_device *dev = c->dev;
    const vkr_features *ft = &dev->info.features;
    const uint32_t sgs = coopmat_subgroup_size(dev);
    const bool vary = ft->min_subgroup_size != ft->max_subgroup_size;
    if (sgs == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "matmul_coopmat: the subgroup size cannot be fixed on this device");
    const coopmat_tile t = coopmat_pick_tile(dev, w->ne[1], n_cols);

    char name[40];
    snprintf(name, sizeof name, "matmul_coopmat_%s_%s", type_suffix(w->type),
             ft->coopmat_khr_f16 ? "khr" : ft->coopmat_nv_f16 ? "nv" : "emu");
    vkr_pipeline_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.shader = name;
    desc.push_size = 8 * 4;
    desc.local_size_x = t.sg_m * t.sg_n * sgs;
    desc.required_subgroup_size = vary || sgs != ft->subgroup_size ? sgs : 0;
    desc.n_spec = 4;
    desc.spec[0] = t.sg_m;
    desc.spec[1] = t.sg_n;
    desc.spec[2] = t.tm;
    desc.spec[3] = t.tn;
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "matmul_coopmat";
    d.n_bindings = type_quantized(w->type) ? 4 : 3;
    vkllm_status st = bind_grid(&d, w);
    desc.n_buffers = d.n_bindings;
    if (st == VKLLM_OK)
        st = vkr_pipeline_get(dev, &desc, &d.pipeline);
    if (st == VKLLM_OK && !c->x16)
        st = x16_convert(g, c, x, w->ne[0], n_cols);
    if (st != VKLLM_OK)
        return st;
    return tiled_dispatches(g, c, &d, w, vk_view_of(c->x16, 0), y, n_cols, coopmat_rows(t), coopmat_cols(t), false,
                            true);
}

/* The self-check: y = W x for a seeded F32 weight of COOPMAT_CHECK_M x COOPMAT_CHECK_K and COOPMAT_CHECK_N columns
 * (several tiles each way, partial ones included) on the cooperative-matrix kernel and on the tiled one in one
 * graph, compared within test_op_matmul_coopmat's tolerance (the f16 inputs' rounding). It catches a driver whose
 * cooperative matrices compute wrong results or a layout the kernel does not get (NaN: wrong subgroup count). */
#define COOPMAT_CHECK_K 320u
#define COOPMAT_CHECK_M 200u
#define COOPMAT_CHECK_N 72u
#define COOPMAT_CHECK_TOL 2e-3

vkllm_status vkl_coopmat_self_check(vkr_device *dev, bool *pass, double *rel_err)
{
    const uint32_t K = COOPMAT_CHECK_K, M = COOPMAT_CHECK_M, N = COOPMAT_CHECK_N;
    *pass = false;
    *rel_err = INFINITY;
    float *w = malloc((size_t)K * M * 4), *x = malloc((size_t)K * N * 4), *y = malloc((size_t)M * N * 2 * 4);
    vk_tensor t;
    memset(&t, 0, sizeof t);
    vkr_buffer *xb = NULL, *yb = NULL;
    vkr_graph *g = NULL;
    vkllm_status st = w && x && y ? VKLLM_OK : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "coopmat self-check: out of host memory");
    uint32_t s = 12345u;   /* a fixed LCG: the same check on every run */
    for (size_t i = 0; st == VKLLM_OK && i < (size_t)K * (M + N); i++) {
        s = s * 1664525u + 1013904223u;
        const float v = (float)(s >> 8) / 8388608.0f - 1.0f;   /* [-1, 1) */
        if (i < (size_t)K * M)
            w[i] = v;
        else
            x[i - (size_t)K * M] = v;
    }
    if (st == VKLLM_OK)
        st = vkl_tensor_upload(dev, GGML_TYPE_F32, K, M, w, &t);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (VkDeviceSize)K * N * 4, VKR_MEMORY_DEVICE, &xb);
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (VkDeviceSize)M * N * 2 * 4, VKR_MEMORY_DEVICE, &yb);
    if (st == VKLLM_OK)
        st = vkr_buffer_upload(dev, xb, 0, x, (size_t)K * N * 4);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    mm_ctx c;
    if (st == VKLLM_OK)
        st = ctx_init(g, &c, "coopmat self-check");
    if (st == VKLLM_OK)
        st = matmul_coopmat(g, &c, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), N);
    if (st == VKLLM_OK)
        st = matmul(g, &c, &t, vk_view_of(xb, 0), vk_view_of(yb, (VkDeviceSize)M * N * 4), N);
    if (st == VKLLM_OK)
        st = vkr_graph_run(g);
    if (st == VKLLM_OK)
        st = vkr_buffer_download(dev, yb, 0, y, (size_t)M * N * 2 * 4);
    if (st == VKLLM_OK) {
        double d2 = 0, r2 = 0;
        bool finite = true;
        for (size_t i = 0; i < (size_t)M * N; i++) {
            const double a = y[i], b = y[(size_t)M * N + i];
            finite = finite && isfinite(a) && isfinite(b);
            d2 += (a - b) * (a - b);
            r2 += b * b;
        }
        *rel_err = finite ? sqrt(d2 / (r2 > 0 ? r2 : 1e-30)) : INFINITY;
        *pass = finite && *rel_err < COOPMAT_CHECK_TOL;
    }
    vkr_graph_destroy(g);   /* each takes NULL */
    vkr_buffer_destroy(dev, xb);
    vkr_buffer_destroy(dev, yb);
    vkl_tensor_free(dev, &t);
    free(w);
    free(x);
    free(y);
    return st;
}

/* The kernel for this device and column count (see the top of the file). */
static vkllm_status matmul_any(vkr_graph *g, mm_ctx *c, const vk_tensor *w, vk_view x, vk_view y,
                               uint32_t n_cols)
{
    vkllm_status st;
    if (cpu_kernel_applies(c, w, x))
        return mm_cpu(g, c, w, x, y, n_cols);
    if (n_cols <= MV_MAX_COLS) {
        /* n_cols > 1 falls back to the tiled matmul when its bindings do not fit (status without message). */
        st = matvec(g, c, w, x, y, n_cols, NULL);
        if (st != VKLLM_ERR_UNSUPPORTED || n_cols == 1)
            return st;
    }
    if (n_cols > MV_MAX_COLS && coopmat_applies(c))
        return matmul_coopmat(g, c, w, x, y, n_cols);
    return matmul(g, c, w, x, y, n_cols);
}

vkllm_status vkl_op_matmul(vkr_graph *g, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols)
{
    mm_ctx c;
    vkllm_status st = ctx_init(g, &c, "op_matmul");
    if (st != VKLLM_OK || (st = check_weight(w, "op_matmul")) != VKLLM_OK)
        return st;
    if (n_cols == 0)
        return VKLLM_OK;
    const uint64_t K = w->ne[0], M = w->ne[1];
    if ((st = check_view(x, K * 4 * n_cols, "op_matmul", "x")) != VKLLM_OK ||
        (st = check_view(y, M * 4 * n_cols, "op_matmul", "y")) != VKLLM_OK)
        return st;
    if (w->n_parts > 0) {
        /* A tensor in parts: each part's rows go to their place in every column of y. */
        c.y_stride = M;
        for (uint32_t p = 0; p < w->n_parts && st == VKLLM_OK; p++)
            st = matmul_any(g, &c, &w->parts[p], x, vk_view_of(y.buf, y.offset + p * w->part_rows * 4), n_cols);
        return st;
    }
    return matmul_any(g, &c, w, x, y, n_cols);
}

/* The Q;K;V epilogue's arguments for a weight of M rows: an error for bad ones; *can false where the kernel
 * does not do this rope or cache (NeoX, mscale, a ring, several sequences: row_base). */
static vkllm_status check_qkv_store(const vk_matmul_fusion *f, uint64_t M, uint32_t n_cols, bool *can)
{
    const char *op = "op_matmul_fused";
    const vk_qkv_store *qs = f->qkv;
    const vk_rope_params *rp = qs->rope;
    const vk_attention_params *ap = qs->attn;
    if (!rp || !ap || f->glu || f->accumulate)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: the Q;K;V epilogue needs rope and attention parameters and "
                         "no glu or accumulate", op);
    if (ap->n_heads == 0 || ap->n_kv_heads == 0 || ap->head_dim == 0 || ap->head_dim % 2 || ap->n_ctx == 0 ||
        rp->n_rot > ap->head_dim || rp->n_rot % 2 || !(rp->theta_base > 0.0f) || !isfinite(rp->theta_base))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad heads (%u, %u kv, dim %u), rotation %u or base %g", op,
                         ap->n_heads, ap->n_kv_heads, ap->head_dim, rp->n_rot, (double)rp->theta_base);
    const uint64_t kv_rows = (uint64_t)ap->n_kv_heads * ap->head_dim;
    const uint64_t rows = (uint64_t)ap->n_heads * ap->head_dim + 2 * kv_rows;
    if (qs->row0 % 2 || M % 2 || qs->row0 + M > rows || rows > UINT32_MAX || ap->n_ctx * kv_rows / 2 > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: rows [%u, %llu) are not even rows within Q;K;V's %llu", op,
                         qs->row0, (unsigned long long)(qs->row0 + M), (unsigned long long)rows);
    vkllm_status st;
    const uint64_t cache_bytes = ap->n_ctx * kv_rows * 2;
    if ((st = check_view(qs->k_cache, cache_bytes, op, "k_cache")) != VKLLM_OK ||
        (st = check_view(qs->v_cache, cache_bytes, op, "v_cache")) != VKLLM_OK ||
        (st = check_view(qs->positions, (uint64_t)n_cols * 4, op, "positions")) != VKLLM_OK ||
        (rp->freq_factors && (st = opsm_check_f32_vector(rp->freq_factors, rp->n_rot / 2, op, "freq_factors"))))
        return st;
    *can = rp->mode == VK_ROPE_INTERLEAVED && (rp->mscale == 0.0f || rp->mscale == 1.0f) && !ap->ring && !ap->row_base;
    return VKLLM_OK;
}

vkllm_status vkl_op_matmul_fused(vkr_graph *g, const vk_tensor *w, vk_view x, vk_view y, uint32_t n_cols,
                             const vk_matmul_fusion *f, bool *fused)
{
    *fused = false;
    mm_ctx c;
    vkllm_status st = ctx_init(g, &c, "op_matmul_fused");
    if (st != VKLLM_OK || (st = check_weight(w, "op_matmul_fused")) != VKLLM_OK)
        return st;
    if (!f)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "op_matmul_fused: no fusion given");
    if (n_cols == 0 || n_cols > MV_MAX_COLS || cpu_kernel_applies(&c, w, x))
        return VKLLM_OK;
    const uint64_t K = w->ne[0], out_rows = f->glu ? w->ne[1] / 2 : w->ne[1];
    if (f->norm && (!(f->eps >= 0.0f) || !isfinite(f->eps)))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "op_matmul_fused: bad eps %g", (double)f->eps);
    if ((st = check_view(x, K * 4 * n_cols, "op_matmul_fused", "x")) != VKLLM_OK ||
        (st = check_view(y, out_rows * 4 * n_cols, "op_matmul_fused", "y")) != VKLLM_OK)
        return st;
    if (f->accumulate && x.buf == y.buf && x.offset < y.offset + out_rows * 4 * n_cols &&
        y.offset < x.offset + K * 4 * n_cols)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "op_matmul_fused: y += W x with y overlapping x");
    bool can = true;
    if (f->qkv && (st = check_qkv_store(f, w->ne[1], n_cols, &can)) != VKLLM_OK)
        return st;
    if (!can || (f->qkv && w->n_parts))
        return VKLLM_OK;
    /* UNSUPPORTED comes before anything is recorded; the separate ops then run (or report the problem). A
     * tensor in parts: part by part (all parts have the same shape but for their rows, so the first decides),
     * except a GLU weight, which must be bound whole. */
    const uint32_t n_parts = w->n_parts ? w->n_parts : 1;
    if (w->n_parts && f->glu)
        return VKLLM_OK;
    if (w->n_parts)
        c.y_stride = out_rows;
    for (uint32_t p = 0; p < n_parts; p++) {
        const vk_tensor *wp = w->n_parts ? &w->parts[p] : w;
        st = matvec(g, &c, wp, x, vk_view_of(y.buf, y.offset + p * w->part_rows * 4), n_cols, f);
        if (st == VKLLM_ERR_UNSUPPORTED && p == 0) {
            vkr_clear_error();
            return VKLLM_OK;
        }
        if (st != VKLLM_OK)
            return st;
    }
    *fused = true;
    return VKLLM_OK;
}

vkllm_status vkl_op_get_rows(vkr_graph *g, const vk_tensor *table, vk_view ids, vk_view out, uint32_t n)
{
    mm_ctx c;
    vkllm_status st = ctx_init(g, &c, "op_get_rows");
    if (st != VKLLM_OK || (st = check_weight(table, "op_get_rows")) != VKLLM_OK)
        return st;
    if (n == 0)
        return VKLLM_OK;
    const uint64_t K = table->ne[0], M = table->ne[1];
    if ((st = check_view(ids, (uint64_t)n * 4, "op_get_rows", "ids")) != VKLLM_OK ||
        (st = check_view(out, K * 4 * n, "op_get_rows", "out")) != VKLLM_OK)
        return st;
    vkr_device *dev = c.dev;
    const bool quant = type_quantized(table->type);
    const uint32_t wg = wg_size(dev, GR_WG);

    char name[32];
    snprintf(name, sizeof name, "get_rows_%s", type_suffix(table->type));
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "get_rows";
    d.n_bindings = quant ? 4 : 3;
    if ((st = bind_grid(&d, table)) != VKLLM_OK ||
        (st = opsm_get_pipeline(dev, name, d.n_bindings, 9 * 4, wg, 0, NULL, &d.pipeline)) != VKLLM_OK)
        return st;

    /* Invocations per id: one per element (F32/F16/BF16), or per unit of shaders/dequant.glsl (16 to 64 elements):
     * K / 16 is enough for every type, and the shader skips the rest. */
    const uint64_t units = quant ? K / 16 : K;
    const uint64_t gx = (units + wg - 1) / wg;
    if (gx > c.max_groups[0] || K * 4 > c.max_range)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "op_get_rows: rows of %llu elements are too long for this device",
                         (unsigned long long)K);
    /* ids per dispatch: one workgroup row (y) per id; the output chunk must fit one binding. */
    uint64_t nid = min_u64(n, c.max_groups[1]);
    nid = min_u64(nid, c.max_range / (K * 4));
    /* table rows per dispatch */
    uint64_t limit = c.max_range / table->row_qs_bytes;
    if (quant)
        limit = min_u64(limit, c.max_range / table->row_d_bytes);
    uint64_t per = chunk_rows(table->n_parts ? table->part_rows : M, limit, 1);
    if (per == 0 || nid == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "op_get_rows: a table row of %llu bytes exceeds maxStorageBufferRange",
                         (unsigned long long)table->row_qs_bytes);

    /* Chunks of table rows [r0, r0 + nr), inside one part of a table in parts (part rows [base, ...)). */
    const uint32_t islot = quant ? 2 : 1, oslot = islot + 1;
    for (uint64_t i0 = 0; i0 < n; i0 += nid) {
        uint64_t ni = min_u64(nid, n - i0);
        uint64_t nr;
        for (uint64_t r0 = 0; r0 < M; r0 += nr) {
            const uint64_t part = table->n_parts ? r0 / table->part_rows : 0;
            const uint64_t base = part * table->part_rows;
            const vk_tensor *tp = table->n_parts ? &table->parts[part] : table;
            nr = min_u64(per, base + tp->ne[1] - r0);
            uint32_t w_res = 0, d_res = 0, i_res = 0, o_res = 0;   /* set by the binds (gcc -O3 cannot tell) */
            if ((st = bind_weight_rows(&c, &d, tp, r0 - base, nr, &w_res, &d_res)) != VKLLM_OK ||
                (st = bind_range(&c, &d, islot, ids.buf, ids.offset + i0 * 4, ni * 4, false, &i_res)) != VKLLM_OK ||
                (st = bind_range(&c, &d, oslot, out.buf, out.offset + i0 * K * 4, ni * K * 4, true, &o_res)) !=
                    VKLLM_OK)
                return st;
            d.push[0] = (uint32_t)K;
            d.push[1] = (uint32_t)r0;
            d.push[2] = (uint32_t)(r0 + nr);
            d.push[3] = (uint32_t)M;
            d.push[4] = r0 + nr == M;   /* the last chunk writes zeros for invalid ids */
            d.push[5] = w_res;
            d.push[6] = d_res;
            d.push[7] = i_res / 4;
            d.push[8] = o_res / 4;
            d.groups[0] = (uint32_t)gx;
            d.groups[1] = (uint32_t)ni;
            d.groups[2] = 1;
            if ((st = vkr_graph_add(g, &d)) != VKLLM_OK)
                return st;
        }
    }
    return VKLLM_OK;
}

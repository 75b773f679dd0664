/* Weight upload: GGUF rows -> the device layout of host/ops/tensor.h, one device buffer per tensor (or per part,
 * for a tensor over maxMemoryAllocationSize).
 * F32/F16/BF16 rows are copied as they are; quantized blocks are split on the CPU, a chunk of blocks at a
 * time, into the quants region and the meta region as the type table (host/format/quant.h) says. */
#include "host/ops/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"

/* The meta region starts on this boundary (>= any minStorageBufferOffsetAlignment Vulkan allows). */
#define VKT_REGION_ALIGN 256u
/* Extra bytes at the end of the buffer so that 16-byte loads of the last unit stay inside it. */
#define VKT_TAIL_PAD 16u
/* Quant bytes repacked per upload call (Q8_0: 256 Ki blocks, 8 MiB of quants + 512 KiB of meta). */
#define VKT_CHUNK_QS_BYTES (8u * 1024u * 1024u)

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Repacks n_blocks GGUF blocks into the two regions, starting at block `first` of the tensor: the quants
 * byte range of each block to the quants region, the rest of the block (before the range, then after it),
 * zero-padded to meta_bytes, to the meta region. */
static vkllm_status upload_repacked(vkr_device *dev, vk_tensor *t, uint64_t first, const uint8_t *src,
                                    uint64_t n_blocks, const ggml_type_info *ti)
{
    const uint32_t qs_bytes = ti->qs_bytes, meta_bytes = ti->meta_bytes;
    const uint32_t tail = ti->block_bytes - ti->qs_start - qs_bytes;   /* block bytes after the quants */
    const uint64_t chunk_blocks = VKT_CHUNK_QS_BYTES / qs_bytes;
    uint64_t chunk = n_blocks < chunk_blocks ? n_blocks : chunk_blocks;
    uint8_t *qs = malloc((size_t)chunk * qs_bytes);
    uint8_t *meta = calloc((size_t)chunk, meta_bytes);   /* the padding stays zero */
    if (!qs || !meta) {
        free(qs);
        free(meta);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor upload: out of host memory");
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t b0 = 0; b0 < n_blocks && st == VKLLM_OK; b0 += chunk) {
        uint64_t nb = n_blocks - b0 < chunk ? n_blocks - b0 : chunk;
        const uint8_t *blk = src + b0 * ti->block_bytes;
        for (uint64_t b = 0; b < nb; b++, blk += ti->block_bytes) {
            uint8_t *m = meta + b * meta_bytes;   /* raw bytes, multi-byte fields stay little-endian */
            memcpy(m, blk, ti->qs_start);
            memcpy(m + ti->qs_start, blk + ti->qs_start + qs_bytes, tail);
            memcpy(qs + b * qs_bytes, blk + ti->qs_start, qs_bytes);
        }
        st = vkr_buffer_upload(dev, t->buffer, t->qs_offset + (first + b0) * qs_bytes, qs, (size_t)(nb * qs_bytes));
        if (st == VKLLM_OK)
            st = vkr_buffer_upload(dev, t->buffer, t->d_offset + (first + b0) * meta_bytes, meta,
                                   (size_t)(nb * meta_bytes));
    }
    free(qs);
    free(meta);
    return st;
}

vkllm_status vkl_tensor_upload(vkr_device *dev, uint32_t type, uint64_t ne0, uint64_t ne1, const void *gguf_data,
                              vk_tensor *out)
{
    return vkl_tensor_upload_stacked(dev, type, ne0, 1, &ne1, &gguf_data, out);
}

/* The device layout of n rows: sizes of the regions and of the buffer. */
typedef struct tensor_layout {
    uint64_t row_qs, row_d;     /* bytes per row in each region */
    const ggml_type_info *type;
} tensor_layout;

static uint64_t layout_size(const tensor_layout *l, uint64_t n, uint64_t *d_offset)
{
    uint64_t qs_total = l->row_qs * n, d_total = l->row_d * n;
    *d_offset = d_total ? align_up(qs_total, VKT_REGION_ALIGN) : 0;
    return align_up((d_total ? *d_offset + d_total : qs_total) + VKT_TAIL_PAD, 16);
}

/* The IQ grid types' grid for t (a reference on the device's copy). */
static vkllm_status acquire_grid(vkr_device *dev, vk_tensor *t)
{
    uint32_t bytes;
    const uint32_t *grid = vkl_ggml_type_grid(t->type, &bytes);
    return grid ? vkr_constant_acquire(dev, grid, bytes, &t->grid) : VKLLM_OK;
}

/* Uploads rows [r0, r0 + n) of the stacked sources (source p: src_ne1[p] rows at data[p]) as one tensor. */
static vkllm_status upload_rows(vkr_device *dev, uint32_t type, uint64_t ne0, const tensor_layout *l, uint32_t n_src,
                                const uint64_t *src_ne1, const void *const *data, uint64_t r0, uint64_t n,
                                vk_tensor *out)
{
    uint64_t d_offset;
    const uint64_t size = layout_size(l, n, &d_offset);
    const uint64_t qs_total = l->row_qs * n, d_total = l->row_d * n;
    vk_tensor t;
    memset(&t, 0, sizeof t);
    t.type = type;
    t.ne[0] = ne0;
    t.ne[1] = n;
    t.d_offset = d_offset;
    t.row_qs_bytes = l->row_qs;
    t.row_d_bytes = l->row_d;

    vkllm_status st = vkr_buffer_create(dev, size, VKR_MEMORY_DEVICE, &t.buffer);
    if (st != VKLLM_OK)
        return st;
    /* Zero the padding (the gap before the meta region and the tail) before the data goes in, so that the
     * word loads that straddle a region's end never see uninitialised bytes. */
    uint64_t data_end = d_total ? d_offset + d_total : qs_total;
    if (d_total)
        st = vkr_buffer_fill(dev, t.buffer, qs_total & ~3ull, d_offset - (qs_total & ~3ull), 0);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, t.buffer, data_end & ~3ull, size - (data_end & ~3ull), 0);
    const uint64_t src_row = vkl_ggml_row_bytes(type, ne0), blocks_per_row = ne0 / l->type->block;
    uint64_t s0 = 0;   /* first row of source p in the stack */
    for (uint32_t p = 0; p < n_src && st == VKLLM_OK; s0 += src_ne1[p], p++) {
        uint64_t a = s0 > r0 ? s0 : r0, b = s0 + src_ne1[p] < r0 + n ? s0 + src_ne1[p] : r0 + n;
        if (a >= b)
            continue;
        const uint8_t *src = (const uint8_t *)data[p] + (a - s0) * src_row;
        if (l->type->meta_bytes == 0)
            st = vkr_buffer_upload(dev, t.buffer, (a - r0) * l->row_qs, src, (size_t)((b - a) * l->row_qs));
        else
            st = upload_repacked(dev, &t, (a - r0) * blocks_per_row, src, (b - a) * blocks_per_row, l->type);
    }
    if (st == VKLLM_OK)
        st = acquire_grid(dev, &t);
    if (st != VKLLM_OK) {
        vkr_buffer_destroy(dev, t.buffer);
        return st;
    }
    *out = t;
    return VKLLM_OK;
}

vkllm_status vkl_tensor_upload_stacked(vkr_device *dev, uint32_t type, uint64_t ne0, uint32_t n_src,
                                      const uint64_t *src_ne1, const void *const *data, vk_tensor *out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no output tensor");
    memset(out, 0, sizeof *out);
    uint64_t ne1 = 0;
    for (uint32_t p = 0; p < n_src; p++) {
        if (!data[p])
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no data");
        if (src_ne1[p] > UINT32_MAX - ne1)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: too many rows");
        ne1 += src_ne1[p];
    }
    if (!dev || n_src == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no device or no data");
    if (ne0 == 0 || ne1 == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: empty tensor (%llu x %llu)",
                         (unsigned long long)ne0, (unsigned long long)ne1);
    if (ne0 > UINT32_MAX || ne1 > UINT32_MAX)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: dimensions %llu x %llu are too large",
                         (unsigned long long)ne0, (unsigned long long)ne1);

    tensor_layout l = {.type = vkl_ggml_type_get(type)};
    if (!l.type)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: unsupported tensor type %u", type);
    if (ne0 % l.type->block)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor upload: %s row length %llu is not a multiple of %u",
                         l.type->name, (unsigned long long)ne0, l.type->block);
    l.row_qs = ne0 / l.type->block * l.type->qs_bytes;
    l.row_d = ne0 / l.type->block * l.type->meta_bytes;
    /* ne0, ne1 < 2^32 and row bytes <= 4 * ne0: no overflow below. */
    uint64_t d_offset;
    const uint64_t max_alloc = dev->info.features.max_memory_allocation_size;
    if (!max_alloc || layout_size(&l, ne1, &d_offset) <= max_alloc)
        return upload_rows(dev, type, ne0, &l, n_src, src_ne1, data, 0, ne1, out);

    /* Larger than one allocation may be: parts of rows, a multiple of 256 rows each where possible (the
     * ops' row chunks then stay aligned), every part within the limit. */
    uint64_t per = 0;
    const uint64_t overhead = VKT_REGION_ALIGN + VKT_TAIL_PAD + 16;
    if (max_alloc > overhead)
        per = (max_alloc - overhead) / (l.row_qs + l.row_d);
    if (per >= 256)
        per = per / 256 * 256;
    if (per == 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "tensor upload: one row of %llu bytes exceeds the device's maxMemoryAllocationSize (%llu)",
                         (unsigned long long)(l.row_qs + l.row_d), (unsigned long long)max_alloc);
    const uint64_t n_split = (ne1 + per - 1) / per;
    vk_tensor t;
    memset(&t, 0, sizeof t);
    t.type = type;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.row_qs_bytes = l.row_qs;
    t.row_d_bytes = l.row_d;
    t.part_rows = per;
    t.parts = calloc((size_t)n_split, sizeof *t.parts);
    if (!t.parts)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor upload: out of host memory");
    vkllm_status st = acquire_grid(dev, &t);
    for (uint64_t r0 = 0; r0 < ne1 && st == VKLLM_OK; r0 += per, t.n_parts++)
        st = upload_rows(dev, type, ne0, &l, n_src, src_ne1, data, r0, ne1 - r0 < per ? ne1 - r0 : per,
                         &t.parts[t.n_parts]);
    if (st != VKLLM_OK) {
        vkl_tensor_free(dev, &t);
        return st;
    }
    *out = t;
    return VKLLM_OK;
}

bool vkl_tensor_rows(const vk_tensor *t, uint64_t r0, uint64_t n, vk_tensor *view)
{
    if (t->n_parts > 0 || r0 > t->ne[1] || n > t->ne[1] - r0 || n == 0)
        return false;
    uint64_t qs = t->qs_offset + r0 * t->row_qs_bytes, d = t->d_offset + r0 * t->row_d_bytes;
    if (qs % 16 || d % 16)
        return false;
    *view = *t;
    view->ne[1] = n;
    view->qs_offset = qs;
    view->d_offset = t->row_d_bytes ? d : 0;
    view->is_view = true;
    return true;
}

void vkl_tensor_free(vkr_device *dev, vk_tensor *t)
{
    if (!t)
        return;
    if (t->buffer && dev && !t->is_view)
        vkr_buffer_destroy(dev, t->buffer);
    if (t->grid && dev && !t->is_view)
        vkr_constant_release(dev, t->grid);
    for (uint32_t p = 0; p < t->n_parts; p++)
        vkl_tensor_free(dev, &t->parts[p]);
    free(t->parts);
    memset(t, 0, sizeof *t);
}

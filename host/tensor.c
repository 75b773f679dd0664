/* Weight upload: GGUF rows -> the device layout of host/tensor.h, one device buffer per tensor.
 * F32/F16 rows are copied as they are; Q8_0/Q4_0 blocks are split on the CPU, a chunk of blocks at a
 * time, into the quants region and the f16 scales region. */
#include "host/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "host/quant.h"

/* The scales region starts on this boundary (>= any minStorageBufferOffsetAlignment Vulkan allows). */
#define VKT_REGION_ALIGN 256u
/* Extra bytes at the end of the buffer so that 16-byte loads of the last unit stay inside it. */
#define VKT_TAIL_PAD 16u
/* Blocks repacked per upload call (Q8_0: 8 MiB of quants + 512 KiB of scales). */
#define VKT_CHUNK_BLOCKS (256u * 1024u)

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Repacks n_blocks GGUF blocks into the regions, starting at block `first` of the tensor. */
static vkllm_status upload_repacked(vkr_device *dev, vk_tensor *t, uint64_t first, const uint8_t *src,
                                    uint64_t n_blocks, uint32_t block_bytes, uint32_t qs_bytes)
{
    uint64_t chunk = n_blocks < VKT_CHUNK_BLOCKS ? n_blocks : VKT_CHUNK_BLOCKS;
    uint8_t *qs = malloc((size_t)chunk * qs_bytes);
    uint16_t *d = malloc((size_t)chunk * sizeof(uint16_t));
    if (!qs || !d) {
        free(qs);
        free(d);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tensor upload: out of host memory");
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t b0 = 0; b0 < n_blocks && st == VKLLM_OK; b0 += chunk) {
        uint64_t nb = n_blocks - b0 < chunk ? n_blocks - b0 : chunk;
        const uint8_t *blk = src + b0 * block_bytes;
        for (uint64_t b = 0; b < nb; b++, blk += block_bytes) {
            /* GGUF block: f16 d (little-endian), then the quants. Raw bits are kept as they are. */
            d[b] = (uint16_t)(blk[0] | (blk[1] << 8));
            memcpy(qs + b * qs_bytes, blk + 2, qs_bytes);
        }
        st = vkr_buffer_upload(dev, t->buffer, t->qs_offset + (first + b0) * qs_bytes, qs, (size_t)(nb * qs_bytes));
        if (st == VKLLM_OK)
            st = vkr_buffer_upload(dev, t->buffer, t->d_offset + (first + b0) * 2, d, (size_t)(nb * 2));
    }
    free(qs);
    free(d);
    return st;
}

vkllm_status vk_tensor_upload(vkr_device *dev, uint32_t type, uint64_t ne0, uint64_t ne1, const void *gguf_data,
                              vk_tensor *out)
{
    return vk_tensor_upload_stacked(dev, type, ne0, 1, &ne1, &gguf_data, out);
}

vkllm_status vk_tensor_upload_stacked(vkr_device *dev, uint32_t type, uint64_t ne0, uint32_t n_parts,
                                      const uint64_t *part_ne1, const void *const *data, vk_tensor *out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no output tensor");
    memset(out, 0, sizeof *out);
    uint64_t ne1 = 0;
    for (uint32_t p = 0; p < n_parts; p++) {
        if (!data[p])
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no data");
        if (part_ne1[p] > UINT32_MAX - ne1)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: too many rows");
        ne1 += part_ne1[p];
    }
    if (!dev || n_parts == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: no device or no data");
    if (ne0 == 0 || ne1 == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tensor upload: empty tensor (%llu x %llu)",
                         (unsigned long long)ne0, (unsigned long long)ne1);
    if (ne0 > UINT32_MAX || ne1 > UINT32_MAX)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: dimensions %llu x %llu are too large",
                         (unsigned long long)ne0, (unsigned long long)ne1);

    uint64_t row_qs, row_d = 0;
    uint32_t block = 1, block_bytes = 0, qs_bytes = 0;
    switch (type) {
    case GGML_TYPE_F32: row_qs = ne0 * 4; break;
    case GGML_TYPE_F16: row_qs = ne0 * 2; break;
    case GGML_TYPE_Q8_0: block = QK8_0; block_bytes = 2 + 32; qs_bytes = 32; break;
    case GGML_TYPE_Q4_0: block = QK4_0; block_bytes = 2 + 16; qs_bytes = 16; break;
    default:
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor upload: unsupported tensor type %u", type);
    }
    if (ne0 % block)
        return vkr_error(VKLLM_ERR_FORMAT, "tensor upload: %s row length %llu is not a multiple of %u",
                         ggml_type_name(type), (unsigned long long)ne0, block);
    if (block > 1) {
        row_qs = ne0 / block * qs_bytes;
        row_d = ne0 / block * 2;
    }
    /* ne0, ne1 < 2^32 and row bytes <= 4 * ne0: no overflow below. */
    uint64_t qs_total = row_qs * ne1;
    uint64_t d_total = row_d * ne1;
    uint64_t d_offset = align_up(qs_total, VKT_REGION_ALIGN);
    uint64_t size = align_up((d_total ? d_offset + d_total : qs_total) + VKT_TAIL_PAD, 16);

    vk_tensor t;
    memset(&t, 0, sizeof t);
    t.type = type;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.qs_offset = 0;
    t.d_offset = d_total ? d_offset : 0;
    t.row_qs_bytes = row_qs;
    t.row_d_bytes = row_d;

    vkllm_status st = vkr_buffer_create(dev, size, VKR_MEMORY_DEVICE, &t.buffer);
    if (st != VKLLM_OK)
        return st;
    /* Zero the padding (the gap before the scales and the tail) before the data goes in, so that the
     * word loads that straddle a region's end never see uninitialised bytes. */
    uint64_t data_end = d_total ? d_offset + d_total : qs_total;
    if (d_total)
        st = vkr_buffer_fill(dev, t.buffer, qs_total & ~3ull, d_offset - (qs_total & ~3ull), 0);
    if (st == VKLLM_OK)
        st = vkr_buffer_fill(dev, t.buffer, data_end & ~3ull, size - (data_end & ~3ull), 0);
    uint64_t row = 0;
    for (uint32_t p = 0; p < n_parts && st == VKLLM_OK; row += part_ne1[p], p++) {
        if (block == 1)
            st = vkr_buffer_upload(dev, t.buffer, row * row_qs, data[p], (size_t)(part_ne1[p] * row_qs));
        else
            st = upload_repacked(dev, &t, row * (ne0 / block), data[p], part_ne1[p] * (ne0 / block), block_bytes,
                                 qs_bytes);
    }
    if (st != VKLLM_OK) {
        vkr_buffer_destroy(dev, t.buffer);
        return st;
    }
    *out = t;
    return VKLLM_OK;
}

bool vk_tensor_rows(const vk_tensor *t, uint64_t r0, uint64_t n, vk_tensor *view)
{
    if (r0 > t->ne[1] || n > t->ne[1] - r0 || n == 0)
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

void vk_tensor_free(vkr_device *dev, vk_tensor *t)
{
    if (!t)
        return;
    if (t->buffer && dev && !t->is_view)
        vkr_buffer_destroy(dev, t->buffer);
    memset(t, 0, sizeof *t);
}

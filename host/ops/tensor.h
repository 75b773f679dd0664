/* Weight tensors on the device. Uploaded once into device-local memory in a layout made for the kernels:
 *   F32, F16, BF16: row-major elements as in GGUF (4, 2, 2 bytes each).
 *   Quantized types: the GGUF blocks split into two regions of one buffer ("structure of arrays"), as the
 *         type table says (ggml_type_info in host/format/quant.h):
 *         quants region at qs_offset: per block the qs_bytes bytes at qs_start of the GGUF block (Q8_0: 32 int8,
 *           Q4_0: 16 bytes of nibbles, Q4_K: 128 bytes of nibbles, Q6_K: ql then qh, ... in GGUF order);
 *         meta region at d_offset: per block meta_bytes: the other bytes of the block in their order, zero-padded
 *           (Q8_0/Q4_0: one f16 d; Q4_K: d, dmin, scales[12]; Q6_K: scales[16], d, 2 zero bytes).
 *         Block b of row r is block r*blocks_per_row + b in both regions.
 *   so that every load is 4/16-byte aligned and no 8/16-bit storage feature is needed.
 * A tensor larger than maxStorageBufferRange still works: ops split their dispatches by rows and bind
 * sub-ranges (rows are contiguous in each region). One larger than maxMemoryAllocationSize is uploaded as
 * parts: row ranges, each a tensor with its own buffer; vkl_op_matmul and vkl_op_get_rows take every part in turn. */
#ifndef VKLLM_TENSOR_H
#define VKLLM_TENSOR_H

#include "runtime/memory.h"
#include "host/format/ggml_types.h"

typedef struct vk_tensor {
    uint32_t type;            /* GGML_TYPE_*, one of the type table's (host/format/quant.h) */
    uint64_t ne[2];           /* ne[0] = row length (K), ne[1] = rows (M) */
    vkr_buffer *buffer;       /* owned */
    VkDeviceSize qs_offset;   /* start of the data (F32/F16) or quants region */
    VkDeviceSize d_offset;    /* start of the meta region (scales, mins, high bits; quantized types) */
    uint64_t row_qs_bytes;    /* bytes of one row in the data/quants region */
    uint64_t row_d_bytes;     /* bytes of one row in the meta region (0 for F32/F16/BF16) */
    bool is_view;             /* rows of another tensor: the buffer is not owned */
    /* IQ grid types: the device's copy of the type's grid (vkl_ggml_type_grid), which the ops bind; a reference
     * (vkr_constant_acquire) held by every tensor that owns a buffer or parts, dropped by vkl_tensor_free. */
    vkr_buffer *grid;
    /* A tensor split over allocations: n_parts > 1 part tensors (owned), rows [p * part_rows, ...) in part p
     * (the last may have fewer); buffer is then NULL. */
    uint32_t n_parts;
    uint64_t part_rows;
    struct vk_tensor *parts;
} vk_tensor;

/* Uploads a 1-D or 2-D tensor given in GGUF layout (rows of ne[0] elements) into device memory. */
vkllm_status vkl_tensor_upload(vkr_device *dev, uint32_t type, uint64_t ne0, uint64_t ne1, const void *gguf_data,
                              vk_tensor *out);
/* Uploads n_src tensors of one type and row length as one tensor, their rows stacked in order
 * (e.g. Wq;Wk;Wv, so one matvec computes all three). Source p has src_ne1[p] rows at data[p]. */
vkllm_status vkl_tensor_upload_stacked(vkr_device *dev, uint32_t type, uint64_t ne0, uint32_t n_src,
                                      const uint64_t *src_ne1, const void *const *data, vk_tensor *out);

/* A view of rows [r0, r0 + n) of t sharing its buffer. Returns false (and leaves *view unset) when the
 * rows would not start on a 16-byte boundary in each region, which the kernels need, or t is in parts. */
bool vkl_tensor_rows(const vk_tensor *t, uint64_t r0, uint64_t n, vk_tensor *view);

/* Frees an owned tensor's buffer; a view is only cleared. */
void vkl_tensor_free(vkr_device *dev, vk_tensor *t);

#endif

/* Device memory: buffers sub-allocated from large VkDeviceMemory blocks, and transfers through a
 * host-visible staging ring. A vkr_buffer is one VkBuffer bound at an offset inside a block. */
#ifndef VKR_MEMORY_H
#define VKR_MEMORY_H

#include "runtime/device.h"

typedef enum vkr_memory_kind {
    VKR_MEMORY_DEVICE,      /* device-local: weights, activations, KV cache */
    VKR_MEMORY_HOST,        /* host-visible + coherent, persistently mapped: small parameters, readback */
} vkr_memory_kind;

typedef struct vkr_buffer {
    VkBuffer buffer;
    VkDeviceSize size;
    void *mapped;           /* non-NULL for VKR_MEMORY_HOST */
    vkr_memory_kind kind;
    /* allocator bookkeeping */
    struct vkr_block *block;
    VkDeviceSize block_offset, block_size;
} vkr_buffer;

/* Fails with VKLLM_ERR_OUT_OF_DEVICE_MEMORY (clear message) if the memory cannot be had, or the
 * request exceeds maxMemoryAllocationSize or the device's memory_limit. */
vkllm_status vkr_buffer_create(vkr_device *dev, VkDeviceSize size, vkr_memory_kind kind, vkr_buffer **out);
void vkr_buffer_destroy(vkr_device *dev, vkr_buffer *buf);

/* Blocking copies between host memory and a buffer, through the staging ring (any size). */
vkllm_status vkr_buffer_upload(vkr_device *dev, vkr_buffer *dst, VkDeviceSize dst_offset, const void *src,
                               size_t size);
vkllm_status vkr_buffer_download(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, void *dst,
                                 size_t size);
/* Copies size bytes from src at src_offset to dst at dst_offset on the device (blocking; the ranges may be in
 * one buffer if they do not overlap). */
vkllm_status vkr_buffer_copy(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, vkr_buffer *dst,
                             VkDeviceSize dst_offset, VkDeviceSize size);
/* Fills [offset, offset+size) with a 32-bit pattern (size a multiple of 4): used to poison outputs. */
vkllm_status vkr_buffer_fill(vkr_device *dev, vkr_buffer *buf, VkDeviceSize offset, VkDeviceSize size,
                             uint32_t pattern);

/* Constant data the kernels bind (lookup tables): one device-local, read-only copy per `data` pointer (static
 * data), shared by its users. vkr_constant_acquire returns it and takes a reference, uploading it on the first;
 * vkr_constant_release drops one, and the last frees it (so it lives as long as the tensors that need it).
 * Bindable as a storage or a uniform buffer. Thread-safe. */
vkllm_status vkr_constant_acquire(vkr_device *dev, const void *data, size_t size, vkr_buffer **out);
void vkr_constant_release(vkr_device *dev, vkr_buffer *buf);

/* Bytes of device memory currently allocated in blocks (for soak tests and `bench`). */
uint64_t vkr_memory_allocated(const vkr_device *dev);

/* Internal: called by vkr_device_create/destroy. */
vkllm_status vkr_memory_init(vkr_device *dev);
void vkr_memory_shutdown(vkr_device *dev);

#endif

/* Device memory: large VkDeviceMemory blocks, each carved into buffers by a first-fit free list, and a
 * double-buffered host-visible staging ring for uploads and downloads. */
#include "runtime/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE_DEFAULT (256ull << 20)
#define STAGING_SLOT_SIZE (32ull << 20)
#define STAGING_SLOTS 2
#define MAX_FREE_RANGES 256
#define MAX_CONSTANTS 16   /* constant buffers per device (vkr_constant_acquire) */

typedef struct free_range {
    VkDeviceSize offset, size;
} free_range;

typedef struct vkr_block {
    struct vkr_block *next;
    VkDeviceMemory memory;
    VkDeviceSize size;
    uint32_t memory_type;
    void *mapped;
    uint32_t n_free;
    free_range free[MAX_FREE_RANGES];   /* sorted by offset, coalesced */
    uint32_t n_buffers;
} vkr_block;

typedef struct staging_slot {
    VkCommandBuffer cmd;
    VkFence fence;
    bool pending;
} staging_slot;

typedef struct constant_buffer {
    const void *data;   /* the host data it copies (the key) */
    vkr_buffer *buf;
    uint32_t refs;
} constant_buffer;

struct vkr_memory {
    vkr_block *blocks;
    uint64_t allocated;
    vkr_buffer *staging;
    staging_slot slots[STAGING_SLOTS];
    uint32_t next_slot;
    constant_buffer constants[MAX_CONSTANTS];   /* vkr_constant_acquire */
    uint32_t n_constants;
};

uint64_t vkr_memory_allocated(const vkr_device *dev) { return dev->memory ? dev->memory->allocated : 0; }

static int find_memory_type(const vkr_device *dev, uint32_t type_bits, VkMemoryPropertyFlags want,
                            VkMemoryPropertyFlags avoid)
{
    const VkPhysicalDeviceMemoryProperties *mp = &dev->memory_properties;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((type_bits & (1u << i)) && (f & want) == want && !(f & avoid))
            return (int)i;
    }
    return -1;
}

static bool block_take(vkr_block *b, VkDeviceSize size, VkDeviceSize align, VkDeviceSize *offset)
{
    for (uint32_t i = 0; i < b->n_free; i++) {
        free_range *r = &b->free[i];
        VkDeviceSize start = (r->offset + align - 1) / align * align;
        if (start + size > r->offset + r->size)
            continue;
        VkDeviceSize end = start + size;
        VkDeviceSize tail_off = end, tail_size = r->offset + r->size - end;
        VkDeviceSize head_size = start - r->offset;
        if (head_size && tail_size && b->n_free == MAX_FREE_RANGES)
            continue; /* no room to split this range; try another */
        if (head_size) {
            r->size = head_size;
            if (tail_size) {
                memmove(&b->free[i + 2], &b->free[i + 1], (b->n_free - i - 1) * sizeof *r);
                b->free[i + 1] = (free_range){tail_off, tail_size};
                b->n_free++;
            }
        } else if (tail_size) {
            *r = (free_range){tail_off, tail_size};
        } else {
            memmove(&b->free[i], &b->free[i + 1], (b->n_free - i - 1) * sizeof *r);
            b->n_free--;
        }
        *offset = start;
        return true;
    }
    return false;
}

static void block_give(vkr_block *b, VkDeviceSize offset, VkDeviceSize size)
{
    uint32_t i = 0;
    while (i < b->n_free && b->free[i].offset < offset)
        i++;
    bool merge_prev = i > 0 && b->free[i - 1].offset + b->free[i - 1].size == offset;
    bool merge_next = i < b->n_free && offset + size == b->free[i].offset;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (b->n_free - i - 1) * sizeof b->free[0]);
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].offset = offset;
        b->free[i].size += size;
    } else if (b->n_free < MAX_FREE_RANGES) {
        memmove(&b->free[i + 1], &b->free[i], (b->n_free - i) * sizeof b->free[0]);
        b->free[i] = (free_range){offset, size};
        b->n_free++;
    } /* else: the range leaks until the block is freed; cannot happen with < 256 live buffers per block */
}

/* "12.5 MiB", or the bytes below 1 MiB (not "0.0 MiB"). */
static void size_text(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= (1u << 20))
        snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
}

static vkllm_status too_large(uint64_t size, uint64_t max_alloc)
{
    char a[32], b[32];
    size_text(size, a, sizeof a);
    size_text(max_alloc, b, sizeof b);
    return vkr_error(VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "allocation of %s exceeds the device's maxMemoryAllocationSize (%s)",
                     a, b);
}

static vkllm_status block_create(vkr_device *dev, uint32_t type, VkDeviceSize size, bool map, vkr_block **out)
{
    vkr_memory *m = dev->memory;
    const vkr_features *ft = &dev->info.features;
    if (ft->max_memory_allocation_size && size > ft->max_memory_allocation_size)
        return too_large(size, ft->max_memory_allocation_size);
    if (dev->memory_limit && m->allocated + size > dev->memory_limit) {
        char a[32], b[32];
        size_text(size, a, sizeof a);
        size_text(dev->memory_limit, b, sizeof b);
        return vkr_error(VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "out of device memory: %s more would exceed the limit of %s", a,
                         b);
    }
    vkr_block *b = calloc(1, sizeof *b);
    if (!b)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = size, .memoryTypeIndex = type};
    VkResult r = vkAllocateMemory(dev->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        free(b);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return vkr_error(VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "out of device memory allocating %.1f MiB (%s)",
                             size / 1048576.0, vkr_result_name(r));
        return vkr_check(r, "vkAllocateMemory");
    }
    if (map) {
        r = vkMapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
        if (r != VK_SUCCESS) {
            vkFreeMemory(dev->device, b->memory, NULL);
            free(b);
            return vkr_check(r, "vkMapMemory");
        }
    }
    b->size = size;
    b->memory_type = type;
    b->n_free = 1;
    b->free[0] = (free_range){0, size};
    b->next = m->blocks;
    m->blocks = b;
    m->allocated += size;
    *out = b;
    return VKLLM_OK;
}

static void block_destroy(vkr_device *dev, vkr_block *b)
{
    vkr_memory *m = dev->memory;
    for (vkr_block **p = &m->blocks; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    m->allocated -= b->size;
    if (b->mapped)
        vkUnmapMemory(dev->device, b->memory);
    vkFreeMemory(dev->device, b->memory, NULL);
    free(b);
}

/* usage: besides storage and transfer (constant tables: also uniform, vkr_pipeline_desc.uniform_buffers) */
static vkllm_status buffer_create(vkr_device *dev, VkDeviceSize size, vkr_memory_kind kind, VkBufferUsageFlags usage,
                                  vkr_buffer **out)
{
    *out = NULL;
    if (size == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "buffer of size 0");
    vkr_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    buf->size = size;
    buf->kind = kind;
    uint64_t max_alloc = dev->info.features.max_memory_allocation_size;
    if (max_alloc && size > max_alloc) {
        free(buf);
        return too_large(size, max_alloc);
    }
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = usage | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(dev->device, &bci, NULL, &buf->buffer);
    if (r != VK_SUCCESS) {
        free(buf);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return vkr_error(VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "out of device memory creating a buffer of %.1f MiB (%s)",
                             size / 1048576.0, vkr_result_name(r));
        return vkr_check(r, "vkCreateBuffer");
    }
    vkllm_status st;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev->device, buf->buffer, &req);

    int type;
    bool map = kind == VKR_MEMORY_HOST;
    if (kind == VKR_MEMORY_DEVICE) {
        type = find_memory_type(dev, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    } else {
        /* Prefer cached host memory (fast CPU reads for readback), then any coherent host memory. */
        VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        type = find_memory_type(dev, req.memoryTypeBits, host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (type < 0)
            type = find_memory_type(dev, req.memoryTypeBits, host, 0);
    }
    if (type < 0)
        type = find_memory_type(dev, req.memoryTypeBits, map ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT : 0, 0);
    if (type < 0) {
        vkDestroyBuffer(dev->device, buf->buffer, NULL);
        free(buf);
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "no suitable memory type for a %s buffer",
                         kind == VKR_MEMORY_DEVICE ? "device" : "host");
    }

    vkr_memory *m = dev->memory;
    vkr_block *block = NULL;
    VkDeviceSize offset = 0;
    for (vkr_block *b = m->blocks; b && !block; b = b->next)
        if (b->memory_type == (uint32_t)type && (!map || b->mapped) && block_take(b, req.size, req.alignment, &offset))
            block = b;
    if (!block) {
        VkDeviceSize bsize = req.size > BLOCK_SIZE_DEFAULT ? req.size : BLOCK_SIZE_DEFAULT;
        uint64_t max_alloc = dev->info.features.max_memory_allocation_size;
        if (max_alloc && bsize > max_alloc && req.size <= max_alloc)
            bsize = max_alloc;
        if (dev->memory_limit && bsize > req.size && m->allocated + bsize > dev->memory_limit)
            bsize = req.size; /* under a memory limit, do not round up past it */
        st = block_create(dev, (uint32_t)type, bsize, map, &block);
        if (st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY && bsize > req.size) /* a smaller block may still fit */
            st = block_create(dev, (uint32_t)type, req.size, map, &block);
        if (st != VKLLM_OK) {
            vkDestroyBuffer(dev->device, buf->buffer, NULL);
            free(buf);
            return st;
        }
        block_take(block, req.size, req.alignment, &offset);
    }
    st = vkr_check(vkBindBufferMemory(dev->device, buf->buffer, block->memory, offset), "vkBindBufferMemory");
    if (st != VKLLM_OK) {
        block_give(block, offset, req.size);
        vkDestroyBuffer(dev->device, buf->buffer, NULL);
        free(buf);
        return st;
    }
    block->n_buffers++;
    buf->block = block;
    buf->block_offset = offset;
    buf->block_size = req.size;
    if (block->mapped)
        buf->mapped = (char *)block->mapped + offset;
    if (!map)
        buf->mapped = NULL; /* device-local memory that happens to be mappable is still not ours to touch */
    *out = buf;
    return VKLLM_OK;
}

/* With dev->memory_mutex held. */
static void buffer_destroy_locked(vkr_device *dev, vkr_buffer *buf)
{
    vkDestroyBuffer(dev->device, buf->buffer, NULL);
    vkr_block *b = buf->block;
    block_give(b, buf->block_offset, buf->block_size);
    if (--b->n_buffers == 0)
        block_destroy(dev, b);
    free(buf);
}

void vkr_buffer_destroy(vkr_device *dev, vkr_buffer *buf)
{
    if (!buf)
        return;
    pthread_mutex_lock(&dev->memory_mutex);
    buffer_destroy_locked(dev, buf);
    pthread_mutex_unlock(&dev->memory_mutex);
}

/* ---- Transfers ----
 * Each public call below holds dev->memory_mutex throughout: the staging ring is one per device. */

static vkllm_status slot_wait(vkr_device *dev, staging_slot *s)
{
    if (!s->pending)
        return VKLLM_OK;
    s->pending = false;
    return vkr_wait_fence(dev, s->fence, "vkWaitForFences (transfer)");
}

static vkllm_status wait_all(vkr_device *dev)
{
    vkllm_status first = VKLLM_OK;
    for (int i = 0; i < STAGING_SLOTS; i++) {
        vkllm_status st = slot_wait(dev, &dev->memory->slots[i]);
        if (first == VKLLM_OK)
            first = st;
    }
    return first;
}

/* Every transfer command buffer waits for all earlier GPU work and makes its writes visible to all
 * later work and the host: transfers are rare (load time, tests) so full barriers cost nothing. */
static void full_barrier(VkCommandBuffer cmd)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
}

static void host_read_barrier(VkCommandBuffer cmd)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
}

typedef enum { XFER_UPLOAD, XFER_DOWNLOAD, XFER_FILL, XFER_COPY } xfer_kind;

/* Records and submits one transfer on the next staging slot. XFER_COPY copies from src at staging_offset. */
static vkllm_status submit_transfer(vkr_device *dev, xfer_kind kind, vkr_buffer *buf, VkDeviceSize offset,
                                    VkDeviceSize size, VkDeviceSize staging_offset, uint32_t pattern,
                                    const vkr_buffer *src, staging_slot **used)
{
    vkr_memory *m = dev->memory;
    staging_slot *s = &m->slots[m->next_slot];
    m->next_slot = (m->next_slot + 1) % STAGING_SLOTS;
    vkllm_status st = slot_wait(dev, s);
    if (st != VKLLM_OK)
        return st;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if ((st = vkr_check(vkBeginCommandBuffer(s->cmd, &bi), "vkBeginCommandBuffer")) != VKLLM_OK)
        return st;
    full_barrier(s->cmd);
    VkBufferCopy region = {.size = size};
    switch (kind) {
    case XFER_UPLOAD:
        region.srcOffset = staging_offset;
        region.dstOffset = offset;
        vkCmdCopyBuffer(s->cmd, m->staging->buffer, buf->buffer, 1, &region);
        break;
    case XFER_DOWNLOAD:
        region.srcOffset = offset;
        region.dstOffset = staging_offset;
        vkCmdCopyBuffer(s->cmd, buf->buffer, m->staging->buffer, 1, &region);
        break;
    case XFER_FILL:
        vkCmdFillBuffer(s->cmd, buf->buffer, offset, size, pattern);
        break;
    case XFER_COPY:
        region.srcOffset = staging_offset;
        region.dstOffset = offset;
        vkCmdCopyBuffer(s->cmd, src->buffer, buf->buffer, 1, &region);
        break;
    }
    full_barrier(s->cmd);
    host_read_barrier(s->cmd);
    if ((st = vkr_check(vkEndCommandBuffer(s->cmd), "vkEndCommandBuffer")) != VKLLM_OK)
        return st;
    if ((st = vkr_check(vkResetFences(dev->device, 1, &s->fence), "vkResetFences")) != VKLLM_OK)
        return st;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cmd};
    if ((st = vkr_queue_submit(dev, &si, s->fence, "vkQueueSubmit (transfer)")) != VKLLM_OK)
        return st;
    s->pending = true;
    if (used)
        *used = s;
    return VKLLM_OK;
}

static vkllm_status check_range(const vkr_buffer *buf, VkDeviceSize offset, VkDeviceSize size)
{
    if (offset > buf->size || size > buf->size - offset)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "transfer of %llu bytes at offset %llu outside a buffer of %llu bytes",
                         (unsigned long long)size, (unsigned long long)offset, (unsigned long long)buf->size);
    return VKLLM_OK;
}

static vkllm_status buffer_upload(vkr_device *dev, vkr_buffer *dst, VkDeviceSize dst_offset, const void *src, size_t size)
{
    vkllm_status st = check_range(dst, dst_offset, size);
    if (st != VKLLM_OK || size == 0)
        return st;
    vkr_memory *m = dev->memory;
    const char *p = src;
    while (size > 0) {
        VkDeviceSize chunk = size < STAGING_SLOT_SIZE ? size : STAGING_SLOT_SIZE;
        uint32_t slot = m->next_slot;
        if ((st = slot_wait(dev, &m->slots[slot])) != VKLLM_OK)
            return st;
        VkDeviceSize soff = slot * STAGING_SLOT_SIZE;
        memcpy((char *)m->staging->mapped + soff, p, chunk);
        if ((st = submit_transfer(dev, XFER_UPLOAD, dst, dst_offset, chunk, soff, 0, NULL, NULL)) != VKLLM_OK) {
            wait_all(dev);
            return st;
        }
        p += chunk;
        dst_offset += chunk;
        size -= chunk;
    }
    return wait_all(dev);
}

static vkllm_status buffer_download(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, void *dst, size_t size)
{
    vkllm_status st = check_range(src, src_offset, size);
    if (st != VKLLM_OK || size == 0)
        return st;
    vkr_memory *m = dev->memory;
    char *p = dst;
    while (size > 0) {
        VkDeviceSize chunk = size < STAGING_SLOT_SIZE ? size : STAGING_SLOT_SIZE;
        VkDeviceSize soff = m->next_slot * STAGING_SLOT_SIZE;
        staging_slot *s;
        if ((st = submit_transfer(dev, XFER_DOWNLOAD, src, src_offset, chunk, soff, 0, NULL, &s)) != VKLLM_OK ||
            (st = slot_wait(dev, s)) != VKLLM_OK) {
            wait_all(dev);
            return st;
        }
        memcpy(p, (char *)m->staging->mapped + soff, chunk);
        p += chunk;
        src_offset += chunk;
        size -= chunk;
    }
    return VKLLM_OK;
}

static vkllm_status buffer_fill(vkr_device *dev, vkr_buffer *buf, VkDeviceSize offset, VkDeviceSize size, uint32_t pattern)
{
    vkllm_status st = check_range(buf, offset, size);
    if (st != VKLLM_OK || size == 0)
        return st;
    if ((offset | size) & 3)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "fill offset and size must be multiples of 4");
    staging_slot *s;
    if ((st = submit_transfer(dev, XFER_FILL, buf, offset, size, 0, pattern, NULL, &s)) != VKLLM_OK)
        return st;
    return slot_wait(dev, s);
}

static vkllm_status buffer_copy(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, vkr_buffer *dst,
                                VkDeviceSize dst_offset, VkDeviceSize size)
{
    vkllm_status st = check_range(src, src_offset, size);
    if (st == VKLLM_OK)
        st = check_range(dst, dst_offset, size);
    if (st != VKLLM_OK || size == 0)
        return st;
    if (src == dst && src_offset < dst_offset + size && dst_offset < src_offset + size)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "copy within one buffer between overlapping ranges");
    staging_slot *s;
    if ((st = submit_transfer(dev, XFER_COPY, dst, dst_offset, size, src_offset, 0, src, &s)) != VKLLM_OK)
        return st;
    return slot_wait(dev, s);
}

vkllm_status vkr_buffer_copy(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, vkr_buffer *dst,
                             VkDeviceSize dst_offset, VkDeviceSize size)
{
    pthread_mutex_lock(&dev->memory_mutex);
    vkllm_status st = buffer_copy(dev, src, src_offset, dst, dst_offset, size);
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

vkllm_status vkr_memory_init(vkr_device *dev)
{
    dev->memory = calloc(1, sizeof *dev->memory);
    if (!dev->memory)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkr_memory *m = dev->memory;
    VkCommandBuffer cmds[STAGING_SLOTS];
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = dev->command_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = STAGING_SLOTS,
    };
    vkllm_status st = vkr_check(vkAllocateCommandBuffers(dev->device, &ai, cmds), "vkAllocateCommandBuffers");
    if (st != VKLLM_OK)
        return st;
    for (int i = 0; i < STAGING_SLOTS; i++) {
        m->slots[i].cmd = cmds[i];
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if ((st = vkr_check(vkCreateFence(dev->device, &fci, NULL, &m->slots[i].fence), "vkCreateFence")) != VKLLM_OK)
            return st;
    }
    return vkr_buffer_create(dev, STAGING_SLOT_SIZE * STAGING_SLOTS, VKR_MEMORY_HOST, &m->staging);
}

void vkr_memory_shutdown(vkr_device *dev)
{
    vkr_memory *m = dev->memory;
    if (!m)
        return;
    wait_all(dev);
    for (int i = 0; i < STAGING_SLOTS; i++) {
        if (m->slots[i].fence)
            vkDestroyFence(dev->device, m->slots[i].fence, NULL);
        if (m->slots[i].cmd)
            vkFreeCommandBuffers(dev->device, dev->command_pool, 1, &m->slots[i].cmd);
    }
    for (uint32_t i = 0; i < m->n_constants; i++)   /* references a caller leaked */
        vkr_buffer_destroy(dev, m->constants[i].buf);
    if (m->staging)
        vkr_buffer_destroy(dev, m->staging);
    /* Blocks still holding buffers here were leaked by a caller; free the memory anyway. */
    while (m->blocks)
        block_destroy(dev, m->blocks);
    free(m);
    dev->memory = NULL;
}

vkllm_status vkr_buffer_create(vkr_device *dev, VkDeviceSize size, vkr_memory_kind kind, vkr_buffer **out)
{
    pthread_mutex_lock(&dev->memory_mutex);
    vkllm_status st = buffer_create(dev, size, kind, 0, out);
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

vkllm_status vkr_buffer_upload(vkr_device *dev, vkr_buffer *dst, VkDeviceSize dst_offset, const void *src, size_t size)
{
    pthread_mutex_lock(&dev->memory_mutex);
    vkllm_status st = buffer_upload(dev, dst, dst_offset, src, size);
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

vkllm_status vkr_constant_acquire(vkr_device *dev, const void *data, size_t size, vkr_buffer **out)
{
    *out = NULL;
    pthread_mutex_lock(&dev->memory_mutex);
    vkr_memory *m = dev->memory;
    vkllm_status st = VKLLM_OK;
    uint32_t i = 0;
    while (i < m->n_constants && m->constants[i].data != data)
        i++;
    if (i == m->n_constants) {
        vkr_buffer *buf = NULL;
        if (m->n_constants == MAX_CONSTANTS)
            st = vkr_error(VKLLM_ERR_UNSUPPORTED, "more than %d constant buffers on one device", MAX_CONSTANTS);
        else if ((st = buffer_create(dev, size, VKR_MEMORY_DEVICE, VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT, &buf)) ==
                     VKLLM_OK &&
                 (st = buffer_upload(dev, buf, 0, data, size)) != VKLLM_OK)
            buffer_destroy_locked(dev, buf);
        if (st == VKLLM_OK)
            m->constants[m->n_constants++] = (constant_buffer){data, buf, 0};
    }
    if (st == VKLLM_OK) {
        m->constants[i].refs++;
        *out = m->constants[i].buf;
    }
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

void vkr_constant_release(vkr_device *dev, vkr_buffer *buf)
{
    if (!buf)
        return;
    pthread_mutex_lock(&dev->memory_mutex);
    vkr_memory *m = dev->memory;
    for (uint32_t i = 0; i < m->n_constants; i++) {
        if (m->constants[i].buf != buf)
            continue;
        if (--m->constants[i].refs == 0) {
            buffer_destroy_locked(dev, buf);
            m->constants[i] = m->constants[--m->n_constants];
        }
        break;
    }
    pthread_mutex_unlock(&dev->memory_mutex);
}

vkllm_status vkr_buffer_download(vkr_device *dev, vkr_buffer *src, VkDeviceSize src_offset, void *dst, size_t size)
{
    pthread_mutex_lock(&dev->memory_mutex);
    vkllm_status st = buffer_download(dev, src, src_offset, dst, size);
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

vkllm_status vkr_buffer_fill(vkr_device *dev, vkr_buffer *buf, VkDeviceSize offset, VkDeviceSize size, uint32_t pattern)
{
    pthread_mutex_lock(&dev->memory_mutex);
    vkllm_status st = buffer_fill(dev, buf, offset, size, pattern);
    pthread_mutex_unlock(&dev->memory_mutex);
    return st;
}

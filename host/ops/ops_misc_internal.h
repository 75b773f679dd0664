/* Private helpers shared by host/ops/ops_misc.c and host/ops/ops_attention.c: binding views (aligned down to
 * minStorageBufferOffsetAlignment, the remainder passed to the shader as an element offset), workgroup
 * sizes, and 1-D workgroup lists laid out over x and y within maxComputeWorkGroupCount. */
#ifndef VKLLM_OPS_MISC_INTERNAL_H
#define VKLLM_OPS_MISC_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "host/ops/ops.h"

/* Largest power of two <= v (v >= 1). */
static inline uint32_t opsm_pow2_floor(uint32_t v)
{
    uint32_t p = 1;
    while (p <= v / 2)
        p *= 2;
    return p;
}

/* A power-of-two workgroup size near `want`, within the device's limits. */
static inline uint32_t opsm_wg_size(const vkr_device *dev, uint32_t want)
{
    const vkr_features *ft = &dev->info.features;
    uint32_t lim = ft->max_workgroup_invocations;
    if (ft->max_workgroup_size[0] && ft->max_workgroup_size[0] < lim)
        lim = ft->max_workgroup_size[0];
    if (lim == 0)
        lim = 128;   /* Vulkan's guaranteed minimum */
    if (want > lim)
        want = lim;
    return opsm_pow2_floor(want ? want : 1);
}

/* Workgroup size for kernels that reduce a row in one workgroup: a few subgroups. */
static inline uint32_t opsm_reduce_wg(const vkr_device *dev)
{
    uint32_t sg = dev->info.features.subgroup_size ? dev->info.features.subgroup_size : 32;
    uint32_t want = sg * 8;
    if (want < 64)
        want = 64;
    if (want > 256)
        want = 256;
    return opsm_wg_size(dev, want);
}

/* Binds bytes [offset, offset + bytes) of buf to slot `slot` of d. The bound range starts at the offset
 * rounded down to the device's alignment; *elem_off receives the remainder in elem_size units. */
static inline vkllm_status opsm_bind(const vkr_device *dev, vkr_dispatch *d, uint32_t slot, vkr_buffer *buf,
                                     VkDeviceSize offset, VkDeviceSize bytes, bool write, uint32_t elem_size,
                                     uint32_t *elem_off, const char *what)
{
    if (!buf)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s buffer is NULL", d->name, what);
    if (bytes == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s is empty", d->name, what);
    if (offset % elem_size)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s offset %llu is not a multiple of %u bytes", d->name,
                         what, (unsigned long long)offset, elem_size);
    if (offset > buf->size || bytes > buf->size - offset)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                         "%s: %s needs bytes [%llu, %llu) of a %llu-byte buffer", d->name, what,
                         (unsigned long long)offset, (unsigned long long)(offset + bytes),
                         (unsigned long long)buf->size);
    VkDeviceSize align = dev->info.features.min_storage_buffer_offset_alignment;
    if (align == 0)
        align = 1;
    VkDeviceSize base = offset / align * align;
    uint64_t rem = (offset - base) / elem_size;
    if (rem > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s offset does not fit", d->name, what);
    vkr_binding *b = &d->bindings[slot];
    b->buffer = buf;
    b->offset = base;
    b->range = (offset - base) + bytes;
    b->write = write;
    *elem_off = (uint32_t)rem;
    if (slot + 1 > d->n_bindings)
        d->n_bindings = slot + 1;
    return VKLLM_OK;
}

/* Lays n_groups workgroups out over x (and y when over the x limit). Shaders index them with
 * flat_group() (shaders/common_ops.glsl) and skip indices past the end. */
static inline vkllm_status opsm_groups(const vkr_device *dev, vkr_dispatch *d, uint64_t n_groups)
{
    const vkr_features *ft = &dev->info.features;
    uint64_t mx = ft->max_workgroup_count[0] ? ft->max_workgroup_count[0] : 65535;
    uint64_t my = ft->max_workgroup_count[1] ? ft->max_workgroup_count[1] : 65535;
    if (n_groups == 0)
        n_groups = 1;
    uint64_t gx = n_groups < mx ? n_groups : mx;
    uint64_t gy = (n_groups + gx - 1) / gx;
    if (gy > my)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: %llu workgroups exceed the device's dispatch limits", d->name,
                         (unsigned long long)n_groups);
    d->groups[0] = (uint32_t)gx;
    d->groups[1] = (uint32_t)gy;
    d->groups[2] = 1;
    return VKLLM_OK;
}

/* Workgroups for n_items invocations, one per item: flat_group() * WG + lid must not wrap in 32 bits. */
static inline vkllm_status opsm_groups_for(const vkr_device *dev, vkr_dispatch *d, uint64_t n_items, uint32_t wg)
{
    if (n_items > (1ull << 31))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: %llu items in one dispatch is too many", d->name,
                         (unsigned long long)n_items);
    return opsm_groups(dev, d, (n_items + wg - 1) / wg);
}

/* The pipeline of `shader` with n_buffers bindings (those in the mask uniform_buffers bound as uniform buffers,
 * the others as storage buffers: vkr_pipeline_desc), push_size bytes of push constants, wg invocations and
 * specialization constants spec[0..n_spec). */
static inline vkllm_status opsm_get_pipeline_uniform(vkr_device *dev, const char *shader, uint32_t n_buffers,
                                                     uint32_t uniform_buffers, uint32_t push_size, uint32_t wg,
                                                     uint32_t n_spec, const uint32_t *spec, vkr_pipeline **out)
{
    vkr_pipeline_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.shader = shader;
    desc.uniform_buffers = uniform_buffers;
    desc.n_buffers = n_buffers;
    desc.push_size = push_size;
    desc.local_size_x = wg;
    desc.n_spec = n_spec;
    for (uint32_t i = 0; i < n_spec; i++)
        desc.spec[i] = spec[i];
    return vkr_pipeline_get(dev, &desc, out);
}

/* opsm_get_pipeline_uniform with every binding a storage buffer. */
static inline vkllm_status opsm_get_pipeline(vkr_device *dev, const char *shader, uint32_t n_buffers,
                                             uint32_t push_size, uint32_t wg, uint32_t n_spec, const uint32_t *spec,
                                             vkr_pipeline **out)
{
    return opsm_get_pipeline_uniform(dev, shader, n_buffers, 0, push_size, wg, n_spec, spec, out);
}

/* The pipeline for `shader` (with "_sg" appended when `reduce` and the device has subgroup arithmetic). */
static inline vkllm_status opsm_pipeline(vkr_device *dev, vkr_dispatch *d, const char *shader, bool reduce,
                                         uint32_t n_buffers, uint32_t push_size, uint32_t wg)
{
    char name[64];
    if (reduce && dev->info.features.subgroup_arithmetic)
        snprintf(name, sizeof name, "%s_sg", shader);
    else
        snprintf(name, sizeof name, "%s", shader);
    return opsm_get_pipeline(dev, name, n_buffers, push_size, wg, 0, NULL, &d->pipeline);
}

static inline void opsm_push_f32(vkr_dispatch *d, uint32_t i, float v) { memcpy(&d->push[i], &v, 4); }

/* An f32 weight vector (rmsnorm weight, rope frequency factors) with at least n elements. */
static inline vkllm_status opsm_check_f32_vector(const vk_tensor *t, uint64_t n, const char *op, const char *what)
{
    if (!t || !t->buffer)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s tensor is missing", op, what);
    if (t->type != GGML_TYPE_F32)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "%s: %s tensor has type %u, f32 expected", op, what, t->type);
    if (t->ne[0] * (t->ne[1] ? t->ne[1] : 1) < n)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %s tensor has %llu elements, %llu needed", op, what,
                         (unsigned long long)(t->ne[0] * (t->ne[1] ? t->ne[1] : 1)), (unsigned long long)n);
    return VKLLM_OK;
}

#endif

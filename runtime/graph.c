/* The graph executor. Dispatches are recorded in order; a barrier is inserted before a dispatch only when
 * it touches a buffer range that an earlier dispatch since the last barrier wrote (read-after-write,
 * write-after-write) or, for a write, read (write-after-read). Independent dispatches run back to back.
 * Copies are ops of the same list (no pipeline: binding 0 the source, 1 the destination) at the transfer
 * stage; a barrier waits for the stages of the accesses since the last one. The recording is kept and
 * replayed by later submits. */
#include "runtime/graph.h"

#include <stdlib.h>
#include <string.h>

typedef struct access_range {
    VkBuffer buffer;
    VkDeviceSize begin, end;
    bool write;
} access_range;

#define SHADER_RW (VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT)
#define TRANSFER_RW (VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT)

struct vkr_graph {
    vkr_device *dev;
    vkr_dispatch *ops;
    uint32_t n, cap;

    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recorded, pending;
    bool timed;
    uint32_t barriers;

    VkDescriptorPool dpool;
    uint32_t dpool_sets;       /* capacity of dpool in sets */
    VkQueryPool queries;
    uint32_t query_cap;
    double *times_ns;
    uint64_t *raw_ts;          /* query results, sized with the pool: no allocation per replay */

    access_range *pending_access;   /* accesses since the last barrier */
    uint32_t n_pending, pending_cap;
    VkPipelineStageFlags pending_stages;   /* their stages, and their kinds of writes */
    VkAccessFlags pending_writes;
    uint32_t copies;
};

vkllm_status vkr_graph_create(vkr_device *dev, vkr_graph **out)
{
    *out = NULL;
    vkr_graph *g = calloc(1, sizeof *g);
    if (!g)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    g->dev = dev;
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    vkllm_status st = vkr_check(vkCreateCommandPool(dev->device, &pci, NULL, &g->pool), "vkCreateCommandPool");
    if (st == VKLLM_OK) {
        VkCommandBufferAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = g->pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        st = vkr_check(vkAllocateCommandBuffers(dev->device, &ai, &g->cmd), "vkAllocateCommandBuffers");
    }
    if (st == VKLLM_OK) {
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        st = vkr_check(vkCreateFence(dev->device, &fci, NULL, &g->fence), "vkCreateFence");
    }
    if (st != VKLLM_OK) {
        vkr_graph_destroy(g);
        return st;
    }
    *out = g;
    return VKLLM_OK;
}

void vkr_graph_destroy(vkr_graph *g)
{
    if (!g)
        return;
    VkDevice d = g->dev->device;
    if (g->pending)
        vkr_graph_wait(g);
    if (g->fence)
        vkDestroyFence(d, g->fence, NULL);
    if (g->pool)
        vkDestroyCommandPool(d, g->pool, NULL);
    if (g->dpool)
        vkDestroyDescriptorPool(d, g->dpool, NULL);
    if (g->queries)
        vkDestroyQueryPool(d, g->queries, NULL);
    free(g->times_ns);
    free(g->raw_ts);
    free(g->ops);
    free(g->pending_access);
    free(g);
}

void vkr_graph_clear(vkr_graph *g)
{
    if (g->pending)
        vkr_graph_wait(g);
    g->n = 0;
    g->copies = 0;
    g->recorded = false;
}

uint32_t vkr_graph_size(const vkr_graph *g) { return g->n; }

uint32_t vkr_graph_copy_count(const vkr_graph *g) { return g->copies; }

vkr_device *vkr_graph_device(const vkr_graph *g) { return g->dev; }

uint32_t vkr_graph_barrier_count(const vkr_graph *g) { return g->barriers; }

static VkDeviceSize binding_range(const vkr_binding *b)
{
    return b->range ? b->range : b->buffer->size - b->offset;
}

static vkllm_status append(vkr_graph *g, const vkr_dispatch *d)
{
    if (g->pending)
        vkr_graph_wait(g);
    if (g->n == g->cap) {
        uint32_t cap = g->cap ? g->cap * 2 : 64;
        vkr_dispatch *ops = realloc(g->ops, cap * sizeof *ops);
        if (!ops)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        g->ops = ops;
        g->cap = cap;
    }
    g->ops[g->n++] = *d;
    g->copies += d->pipeline == NULL;
    g->recorded = false;
    return VKLLM_OK;
}

vkllm_status vkr_graph_add(vkr_graph *g, const vkr_dispatch *d)
{
    const vkr_features *ft = &g->dev->info.features;
    if (!d->pipeline || d->n_bindings != d->pipeline->desc.n_buffers)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "dispatch '%s': %u bindings for a pipeline with %u buffers",
                         d->name ? d->name : "?", d->n_bindings, d->pipeline ? d->pipeline->desc.n_buffers : 0);
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        const vkr_binding *b = &d->bindings[i];
        if (!b->buffer || b->offset >= b->buffer->size || (b->range && b->range > b->buffer->size - b->offset))
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "dispatch '%s': binding %u is outside its buffer",
                             d->name ? d->name : "?", i);
        if (binding_range(b) > ft->max_storage_buffer_range)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                             "dispatch '%s': binding %u spans %llu bytes, over maxStorageBufferRange (%llu)",
                             d->name ? d->name : "?", i, (unsigned long long)binding_range(b),
                             (unsigned long long)ft->max_storage_buffer_range);
        if (ft->min_storage_buffer_offset_alignment && b->offset % ft->min_storage_buffer_offset_alignment)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "dispatch '%s': binding %u offset %llu is not aligned to %llu",
                             d->name ? d->name : "?", i, (unsigned long long)b->offset,
                             (unsigned long long)ft->min_storage_buffer_offset_alignment);
    }
    for (int i = 0; i < 3; i++)
        if (d->groups[i] == 0 || d->groups[i] > ft->max_workgroup_count[i])
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "dispatch '%s': %u workgroups in dimension %d (limit %u)",
                             d->name ? d->name : "?", d->groups[i], i, ft->max_workgroup_count[i]);
    return append(g, d);
}

vkllm_status vkr_graph_add_copy(vkr_graph *g, vkr_buffer *src, VkDeviceSize src_offset, vkr_buffer *dst,
                                VkDeviceSize dst_offset, VkDeviceSize size)
{
    if (!src || !dst || size == 0 || src_offset > src->size || size > src->size - src_offset ||
        dst_offset > dst->size || size > dst->size - dst_offset)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "graph copy of %llu bytes: outside its buffers",
                         (unsigned long long)size);
    if (src == dst && src_offset < dst_offset + size && dst_offset < src_offset + size)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "graph copy: source and destination overlap");
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "copy";
    d.n_bindings = 2;
    d.bindings[0] = (vkr_binding){src, src_offset, size, false};
    d.bindings[1] = (vkr_binding){dst, dst_offset, size, true};
    return append(g, &d);
}

static bool overlaps(const access_range *a, VkBuffer buf, VkDeviceSize begin, VkDeviceSize end)
{
    return a->buffer == buf && a->begin < end && begin < a->end;
}

/* True if dispatch d depends on an access since the last barrier. */
static bool needs_barrier(const vkr_graph *g, const vkr_dispatch *d)
{
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        const vkr_binding *b = &d->bindings[i];
        VkDeviceSize begin = b->offset, end = b->offset + binding_range(b);
        for (uint32_t j = 0; j < g->n_pending; j++) {
            const access_range *a = &g->pending_access[j];
            if ((a->write || b->write) && overlaps(a, b->buffer->buffer, begin, end))
                return true;
        }
    }
    return false;
}

static vkllm_status note_accesses(vkr_graph *g, const vkr_dispatch *d)
{
    if (g->n_pending + d->n_bindings > g->pending_cap) {
        uint32_t cap = (g->n_pending + d->n_bindings) * 2;
        access_range *a = realloc(g->pending_access, cap * sizeof *a);
        if (!a)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        g->pending_access = a;
        g->pending_cap = cap;
    }
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        const vkr_binding *b = &d->bindings[i];
        g->pending_access[g->n_pending++] =
            (access_range){b->buffer->buffer, b->offset, b->offset + binding_range(b), b->write};
    }
    const bool copy = d->pipeline == NULL;
    g->pending_stages |= copy ? VK_PIPELINE_STAGE_TRANSFER_BIT : VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
    g->pending_writes |= copy ? VK_ACCESS_TRANSFER_WRITE_BIT : VK_ACCESS_SHADER_WRITE_BIT;
    return VKLLM_OK;
}

static void memory_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src, VkAccessFlags src_access,
                           VkPipelineStageFlags dst, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = src_access, .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cmd, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

static vkllm_status prepare_descriptors(vkr_graph *g, VkDescriptorSet *sets)
{
    VkDevice d = g->dev->device;
    if (g->dpool && g->dpool_sets < g->n) {
        vkDestroyDescriptorPool(d, g->dpool, NULL);
        g->dpool = VK_NULL_HANDLE;
    }
    if (!g->dpool) {
        uint32_t sets_cap = g->n < 64 ? 64 : g->n;
        VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, sets_cap * VKR_MAX_BINDINGS};
        VkDescriptorPoolCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = sets_cap,
            .poolSizeCount = 1,
            .pPoolSizes = &size,
        };
        vkllm_status st = vkr_check(vkCreateDescriptorPool(d, &ci, NULL, &g->dpool), "vkCreateDescriptorPool");
        if (st != VKLLM_OK)
            return st;
        g->dpool_sets = sets_cap;
    } else {
        vkllm_status st = vkr_check(vkResetDescriptorPool(d, g->dpool, 0), "vkResetDescriptorPool");
        if (st != VKLLM_OK)
            return st;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        const vkr_dispatch *op = &g->ops[i];
        if (!op->pipeline)
            continue;   /* a copy */
        VkDescriptorSetAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = g->dpool,
            .descriptorSetCount = 1,
            .pSetLayouts = &op->pipeline->set_layout,
        };
        vkllm_status st = vkr_check(vkAllocateDescriptorSets(d, &ai, &sets[i]), "vkAllocateDescriptorSets");
        if (st != VKLLM_OK)
            return st;
        VkDescriptorBufferInfo infos[VKR_MAX_BINDINGS];
        VkWriteDescriptorSet writes[VKR_MAX_BINDINGS];
        for (uint32_t b = 0; b < op->n_bindings; b++) {
            infos[b] = (VkDescriptorBufferInfo){op->bindings[b].buffer->buffer, op->bindings[b].offset,
                                                binding_range(&op->bindings[b])};
            writes[b] = (VkWriteDescriptorSet){
                .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                .dstSet = sets[i],
                .dstBinding = b,
                .descriptorCount = 1,
                .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                .pBufferInfo = &infos[b],
            };
        }
        vkUpdateDescriptorSets(d, op->n_bindings, writes, 0, NULL);
    }
    return VKLLM_OK;
}

vkllm_status vkr_graph_record(vkr_graph *g, bool timestamps)
{
    if (g->pending) {
        vkllm_status st = vkr_graph_wait(g);
        if (st != VKLLM_OK)
            return st;
    }
    VkDevice d = g->dev->device;
    timestamps = timestamps && g->dev->info.features.timestamps;
    VkDescriptorSet *sets = calloc(g->n ? g->n : 1, sizeof *sets);
    if (!sets)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkllm_status st = prepare_descriptors(g, sets);
    if (st == VKLLM_OK && timestamps && g->query_cap < g->n + 1) {
        if (g->queries)
            vkDestroyQueryPool(d, g->queries, NULL);
        g->queries = VK_NULL_HANDLE;
        free(g->times_ns);
        free(g->raw_ts);
        g->times_ns = calloc(g->n + 1, sizeof *g->times_ns);
        g->raw_ts = calloc(g->n + 1, sizeof *g->raw_ts);
        VkQueryPoolCreateInfo qci = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = g->n + 1,
        };
        st = g->times_ns && g->raw_ts ? vkr_check(vkCreateQueryPool(d, &qci, NULL, &g->queries), "vkCreateQueryPool")
                         : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        g->query_cap = st == VKLLM_OK ? g->n + 1 : 0;
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (st == VKLLM_OK)
        st = vkr_check(vkResetCommandBuffer(g->cmd, 0), "vkResetCommandBuffer");
    if (st == VKLLM_OK)
        st = vkr_check(vkBeginCommandBuffer(g->cmd, &bi), "vkBeginCommandBuffer");
    if (st != VKLLM_OK) {
        free(sets);
        return st;
    }
    VkCommandBuffer cmd = g->cmd;
    /* Earlier submissions (uploads, other graphs, the host's writes) complete before we read. */
    memory_barrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, SHADER_RW | TRANSFER_RW);
    if (timestamps) {
        vkCmdResetQueryPool(cmd, g->queries, 0, g->n + 1);
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, g->queries, 0);
    }
    g->barriers = 0;
    g->n_pending = 0;
    g->pending_stages = 0;
    g->pending_writes = 0;
    VkPipeline bound = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < g->n && st == VKLLM_OK; i++) {
        const vkr_dispatch *op = &g->ops[i];
        const bool copy = op->pipeline == NULL;
        if (needs_barrier(g, op)) {
            memory_barrier(cmd, g->pending_stages, g->pending_writes,
                           copy ? VK_PIPELINE_STAGE_TRANSFER_BIT : VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                           copy ? TRANSFER_RW : SHADER_RW);
            g->barriers++;
            g->n_pending = 0;
            g->pending_stages = 0;
            g->pending_writes = 0;
        }
        st = note_accesses(g, op);
        if (copy) {
            const vkr_binding *s = &op->bindings[0], *d = &op->bindings[1];
            VkBufferCopy region = {s->offset, d->offset, s->range};
            vkCmdCopyBuffer(cmd, s->buffer->buffer, d->buffer->buffer, 1, &region);
            if (timestamps)
                vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->queries, i + 1);
            continue;
        }
        if (op->pipeline->pipeline != bound) {
            vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, op->pipeline->pipeline);
            bound = op->pipeline->pipeline;
        }
        vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, op->pipeline->layout, 0, 1, &sets[i], 0, NULL);
        if (op->pipeline->desc.push_size)
            vkCmdPushConstants(cmd, op->pipeline->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, op->pipeline->desc.push_size,
                               op->push);
        vkCmdDispatch(cmd, op->groups[0], op->groups[1], op->groups[2]);
        if (timestamps)
            vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->queries, i + 1);
    }
    /* Results become visible to the host and to later submissions. */
    memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                   VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                   VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    free(sets);
    vkllm_status end = vkr_check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
    if (st == VKLLM_OK)
        st = end;
    g->recorded = st == VKLLM_OK;
    g->timed = timestamps;
    return st;
}

vkllm_status vkr_graph_submit(vkr_graph *g)
{
    if (!g->recorded)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "graph submitted before it was recorded");
    if (g->pending) {
        vkllm_status st = vkr_graph_wait(g);
        if (st != VKLLM_OK)
            return st;
    }
    vkllm_status st = vkr_check(vkResetFences(g->dev->device, 1, &g->fence), "vkResetFences");
    if (st != VKLLM_OK)
        return st;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &g->cmd};
    st = vkr_queue_submit(g->dev, &si, g->fence, "vkQueueSubmit");
    g->pending = st == VKLLM_OK;
    return st;
}

vkllm_status vkr_graph_wait(vkr_graph *g)
{
    if (!g->pending)
        return VKLLM_OK;
    g->pending = false;
    vkllm_status st = vkr_wait_fence(g->dev, g->fence, "vkWaitForFences");
    if (st != VKLLM_OK)
        return st;
    if (g->timed && g->n) {
        uint64_t *ts = g->raw_ts;
        VkResult r = vkGetQueryPoolResults(g->dev->device, g->queries, 0, g->n + 1, (g->n + 1) * sizeof *ts, ts,
                                           sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        if (r == VK_SUCCESS) {
            double period = g->dev->info.features.timestamp_period_ns;
            for (uint32_t i = 0; i < g->n; i++)
                g->times_ns[i] = ts[i + 1] > ts[i] ? (double)(ts[i + 1] - ts[i]) * period : 0.0;
        }
        if (r != VK_SUCCESS)
            return vkr_check(r, "vkGetQueryPoolResults");
    }
    return VKLLM_OK;
}

vkllm_status vkr_graph_poll(vkr_graph *g, uint64_t timeout_ns, bool *done)
{
    *done = true;
    if (!g->pending || g->dev->lost)
        return vkr_graph_wait(g);
    VkResult r = vkWaitForFences(g->dev->device, 1, &g->fence, VK_TRUE, timeout_ns);
    if (r == VK_TIMEOUT) {
        *done = false;
        return VKLLM_OK;
    }
    return vkr_graph_wait(g);   /* signalled: returns at once; an error: reported (and a loss noted) there */
}

vkllm_status vkr_graph_run(vkr_graph *g)
{
    vkllm_status st = VKLLM_OK;
    if (!g->recorded)
        st = vkr_graph_record(g, false);
    if (st == VKLLM_OK)
        st = vkr_graph_submit(g);
    if (st == VKLLM_OK)
        st = vkr_graph_wait(g);
    return st;
}

double vkr_graph_dispatch_ns(const vkr_graph *g, uint32_t i)
{
    return g->timed && i < g->n && g->times_ns ? g->times_ns[i] : 0.0;
}

const char *vkr_graph_dispatch_name(const vkr_graph *g, uint32_t i)
{
    return i < g->n && g->ops[i].name ? g->ops[i].name : "";
}

/* The graph executor. Dispatches are recorded in order; a barrier is inserted before a dispatch only when
 * it touches a buffer range that an earlier dispatch since the last barrier wrote (read-after-write,
 * write-after-write) or, for a write, read (write-after-read). Independent dispatches run back to back.
 * Copies are ops of the same list (no pipeline: binding 0 the source, 1 the destination) at the transfer
 * stage; a barrier waits for the stages of the accesses since the last one. The recording is kept and
 * replayed by later submits.
 *
 * Split graphs (vkr_graph_set_split): each segment between marks is recorded into its own command buffer,
 * which begins with a barrier on everything submitted before and ends making its writes visible, so that
 * any run of consecutive segments can be one submission. Timestamp queries are laid out per segment: its
 * start, then one per dispatch (segment s's dispatch i is query i + s + 1), so a submission's queries are
 * one contiguous range. */
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
    VkCommandBuffer *cmds;     /* one per segment when split, else one */
    uint32_t n_cmds;
    VkFence fence;
    bool recorded, pending;
    bool timed;
    uint32_t barriers;

    uint32_t *marks;           /* dispatch counts at vkr_graph_mark_segment */
    uint32_t n_marks, marks_cap;
    double target_ns;          /* vkr_graph_set_split; 0: one submission */
    uint32_t n_seg;            /* segments as recorded (1 unless split) */
    uint32_t *seg_first;       /* n_seg + 1 dispatch indices */
    double *seg_ns;            /* each segment's last measured GPU time; < 0: not measured yet */
    uint32_t run_next;         /* the first segment of the next submission of the run in progress */
    uint32_t sub_first, sub_end;   /* the segments of the submission pending */
    double run_longest_ns;     /* the longest submission of the last run */
    uint32_t run_submits;
    uint64_t last_signal;      /* the device timeline's value of the last submission (0: none) */
    vkr_graph_stop_fn stop;    /* vkr_graph_set_stop */
    void *stop_user;

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

    vkr_buffer *scratch;       /* vkr_graph_scratch's buffer */
    vkr_buffer **retired;      /* smaller ones it replaced, still bound by this recording: freed at clear */
    uint32_t n_retired, retired_cap;
};

static vkllm_status finish_pending(vkr_graph *g);

/* An array *p of *cap elements grown (doubling, from 32) to hold at least `need`. */
static vkllm_status grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return VKLLM_OK;
    uint32_t n = *cap ? *cap : 32;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    *p = q;
    *cap = n;
    return VKLLM_OK;
}

/* At least n command buffers (kept across recordings). */
static vkllm_status ensure_cmds(vkr_graph *g, uint32_t n)
{
    if (g->n_cmds >= n)
        return VKLLM_OK;
    VkCommandBuffer *cmds = realloc(g->cmds, n * sizeof *cmds);
    if (!cmds)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    g->cmds = cmds;
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = g->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = n - g->n_cmds,
    };
    vkllm_status st = vkr_check(vkAllocateCommandBuffers(g->dev->device, &ai, cmds + g->n_cmds),
                                "vkAllocateCommandBuffers");
    if (st == VKLLM_OK)
        g->n_cmds = n;
    return st;
}

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
    if (st == VKLLM_OK)
        st = ensure_cmds(g, 1);
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

static void free_retired(vkr_graph *g)
{
    for (uint32_t i = 0; i < g->n_retired; i++)
        vkr_buffer_destroy(g->dev, g->retired[i]);
    g->n_retired = 0;
}

void vkr_graph_destroy(vkr_graph *g)
{
    if (!g)
        return;
    VkDevice d = g->dev->device;
    finish_pending(g);
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
    free(g->cmds);
    free(g->marks);
    free(g->seg_first);
    free(g->seg_ns);
    free_retired(g);
    free(g->retired);
    if (g->scratch)
        vkr_buffer_destroy(g->dev, g->scratch);
    free(g);
}

void vkr_graph_clear(vkr_graph *g)
{
    finish_pending(g);
    g->n = 0;
    g->n_marks = 0;
    g->copies = 0;
    g->recorded = false;
    free_retired(g);
}

vkllm_status vkr_graph_scratch(vkr_graph *g, VkDeviceSize bytes, vkr_buffer **out)
{
    *out = NULL;
    if (g->scratch && g->scratch->size >= bytes) {
        *out = g->scratch;
        return VKLLM_OK;
    }
    vkllm_status st;
    if (g->scratch) {
        if ((st = grow((void **)&g->retired, &g->retired_cap, g->n_retired + 1, sizeof *g->retired)) != VKLLM_OK)
            return st;
        g->retired[g->n_retired++] = g->scratch;
        g->scratch = NULL;
    }
    const VkDeviceSize unit = 1u << 16;   /* a little room, so that slightly larger requests reuse it */
    if ((st = vkr_buffer_create(g->dev, (bytes + unit - 1) / unit * unit, VKR_MEMORY_DEVICE, &g->scratch)) !=
        VKLLM_OK)
        return st;
    *out = g->scratch;
    return VKLLM_OK;
}

vkllm_status vkr_graph_mark_segment(vkr_graph *g)
{
    if (g->n == 0 || (g->n_marks && g->marks[g->n_marks - 1] == g->n))
        return VKLLM_OK;
    vkllm_status st = grow((void **)&g->marks, &g->marks_cap, g->n_marks + 1, sizeof *g->marks);
    if (st != VKLLM_OK)
        return st;
    g->marks[g->n_marks++] = g->n;
    g->recorded = g->recorded && g->target_ns <= 0;   /* a split recording has a command buffer per segment */
    return VKLLM_OK;
}

void vkr_graph_set_split(vkr_graph *g, double target_ns)
{
    if ((g->target_ns > 0) != (target_ns > 0)) {
        finish_pending(g);
        g->recorded = false;
    }
    g->target_ns = target_ns > 0 ? target_ns : 0;
}

void vkr_graph_set_stop(vkr_graph *g, vkr_graph_stop_fn stop, void *user)
{
    g->stop = stop;
    g->stop_user = user;
}

uint32_t vkr_graph_segments(const vkr_graph *g) { return g->n_seg; }
double vkr_graph_longest_submit_ns(const vkr_graph *g) { return g->run_longest_ns; }
uint32_t vkr_graph_run_submits(const vkr_graph *g) { return g->run_submits; }
uint64_t vkr_graph_last_signal(const vkr_graph *g) { return g->last_signal; }

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
    finish_pending(g);
    vkllm_status st = grow((void **)&g->ops, &g->cap, g->n + 1, sizeof *g->ops);
    if (st != VKLLM_OK)
        return st;
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
        if (vkr_descriptor_type(&d->pipeline->desc, i) == VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER &&
            binding_range(b) > VKR_MAX_UNIFORM_RANGE)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "dispatch '%s': uniform binding %u spans %llu bytes, over %u",
                             d->name ? d->name : "?", i, (unsigned long long)binding_range(b), VKR_MAX_UNIFORM_RANGE);
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
        const VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, sets_cap * VKR_MAX_BINDINGS},
                                               {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, sets_cap}};
        VkDescriptorPoolCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = sets_cap,
            .poolSizeCount = 2,
            .pPoolSizes = sizes,
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
                .descriptorType = vkr_descriptor_type(&op->pipeline->desc, b),
                .pBufferInfo = &infos[b],
            };
        }
        vkUpdateDescriptorSets(d, op->n_bindings, writes, 0, NULL);
    }
    return VKLLM_OK;
}

/* The segments of the recording: one, or split at the marks inside the graph; measurements start over. */
static vkllm_status plan_segments(vkr_graph *g)
{
    uint32_t n_seg = 1;
    for (uint32_t i = 0; g->target_ns > 0 && i < g->n_marks; i++)
        n_seg += g->marks[i] < g->n;
    uint32_t *first = realloc(g->seg_first, (n_seg + 1) * sizeof *first);
    if (first)
        g->seg_first = first;
    double *ns = first ? realloc(g->seg_ns, n_seg * sizeof *ns) : NULL;
    if (!ns)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    g->seg_ns = ns;
    first[0] = 0;
    for (uint32_t i = 0, k = 1; k < n_seg; i++)
        if (g->marks[i] < g->n)
            first[k++] = g->marks[i];
    first[n_seg] = g->n;
    for (uint32_t s = 0; s < n_seg; s++)
        ns[s] = -1.0;
    g->n_seg = n_seg;
    g->run_next = n_seg;
    return ensure_cmds(g, n_seg);
}

/* Segment s into cmd (begun): barriers, its dispatches and, with timestamps, its queries. */
static vkllm_status record_segment(vkr_graph *g, VkCommandBuffer cmd, uint32_t s, const VkDescriptorSet *sets,
                                   bool timestamps)
{
    const uint32_t first = g->seg_first[s], end = g->seg_first[s + 1];
    /* Earlier submissions (uploads, other graphs, earlier segments, the host's writes) complete before we read. */
    memory_barrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, SHADER_RW | TRANSFER_RW);
    if (timestamps) {
        vkCmdResetQueryPool(cmd, g->queries, first + s, end - first + 1);
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, g->queries, first + s);
    }
    g->n_pending = 0;
    g->pending_stages = 0;
    g->pending_writes = 0;
    VkPipeline bound = VK_NULL_HANDLE;
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = first; i < end && st == VKLLM_OK; i++) {
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
            const vkr_binding *src = &op->bindings[0], *dst = &op->bindings[1];
            VkBufferCopy region = {src->offset, dst->offset, src->range};
            vkCmdCopyBuffer(cmd, src->buffer->buffer, dst->buffer->buffer, 1, &region);
            if (timestamps)
                vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->queries, i + s + 1);
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
            vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, g->queries, i + s + 1);
    }
    /* Results become visible to the host and to later submissions. */
    memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                   VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                   VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    return st;
}

vkllm_status vkr_graph_record(vkr_graph *g, bool timestamps)
{
    vkllm_status st = finish_pending(g);
    if (st != VKLLM_OK)
        return st;
    VkDevice d = g->dev->device;
    timestamps = timestamps && g->dev->info.features.timestamps;
    g->recorded = false;
    st = plan_segments(g);
    VkDescriptorSet *sets = calloc(g->n ? g->n : 1, sizeof *sets);
    if (st == VKLLM_OK && !sets)
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == VKLLM_OK)
        st = prepare_descriptors(g, sets);
    uint32_t n_queries = g->n + g->n_seg;
    if (st == VKLLM_OK && timestamps && g->query_cap < n_queries) {
        if (g->queries)
            vkDestroyQueryPool(d, g->queries, NULL);
        g->queries = VK_NULL_HANDLE;
        free(g->times_ns);
        free(g->raw_ts);
        g->times_ns = calloc(n_queries, sizeof *g->times_ns);   /* n_queries > n: any later recording fits */
        g->raw_ts = calloc(n_queries, sizeof *g->raw_ts);
        VkQueryPoolCreateInfo qci = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = n_queries,
        };
        st = g->times_ns && g->raw_ts ? vkr_check(vkCreateQueryPool(d, &qci, NULL, &g->queries), "vkCreateQueryPool")
                         : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        g->query_cap = st == VKLLM_OK ? n_queries : 0;
    }
    g->barriers = 0;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    for (uint32_t s = 0; s < g->n_seg && st == VKLLM_OK; s++) {
        VkCommandBuffer cmd = g->cmds[s];
        st = vkr_check(vkResetCommandBuffer(cmd, 0), "vkResetCommandBuffer");
        if (st == VKLLM_OK)
            st = vkr_check(vkBeginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer");
        if (st != VKLLM_OK)
            break;
        st = record_segment(g, cmd, s, sets, timestamps);
        vkllm_status end = vkr_check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
        if (st == VKLLM_OK)
            st = end;
    }
    free(sets);
    g->recorded = st == VKLLM_OK;
    g->timed = timestamps;
    return st;
}

/* Where the submission starting at segment s ends: as many segments as the split target holds by their
 * last measured times; one not measured yet goes alone, as does one longer than the target. */
static uint32_t submission_end(const vkr_graph *g, uint32_t s)
{
    if (g->target_ns <= 0 || !g->timed)
        return g->n_seg;
    uint32_t e = s;
    for (double sum = 0; e < g->n_seg && g->seg_ns[e] >= 0; e++) {
        sum += g->seg_ns[e];
        if (e > s && sum > g->target_ns)
            break;
    }
    return e > s ? e : s + 1;
}

/* Submits segments [s, submission_end) as one vkQueueSubmit. */
static vkllm_status submit_from(vkr_graph *g, uint32_t s)
{
    uint32_t e = submission_end(g, s);
    vkllm_status st = vkr_check(vkResetFences(g->dev->device, 1, &g->fence), "vkResetFences");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = e - s, .pCommandBuffers = &g->cmds[s]};
    uint64_t value = 0;
    if (st == VKLLM_OK)
        st = vkr_queue_submit_signal(g->dev, &si, g->fence, "vkQueueSubmit", &value);
    if (value)
        g->last_signal = value;
    g->pending = st == VKLLM_OK;
    g->sub_first = s;
    g->sub_end = e;
    g->run_next = st == VKLLM_OK ? e : g->n_seg;
    g->run_submits += st == VKLLM_OK;
    return st;
}

/* Waits for the pending submission and reads its timestamps: the dispatches', its segments' and its own
 * GPU time. */
static vkllm_status complete(vkr_graph *g)
{
    g->pending = false;
    vkllm_status st = vkr_wait_fence(g->dev, g->fence, "vkWaitForFences");
    if (st != VKLLM_OK || !g->timed || !g->n) {
        if (st != VKLLM_OK)
            g->run_next = g->n_seg;
        return st;
    }
    uint32_t q0 = g->seg_first[g->sub_first] + g->sub_first, q1 = g->seg_first[g->sub_end] + g->sub_end;
    uint64_t *ts = g->raw_ts;
    VkResult r = vkGetQueryPoolResults(g->dev->device, g->queries, q0, q1 - q0, (q1 - q0) * sizeof *ts, ts + q0,
                                       sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS) {
        g->run_next = g->n_seg;
        return vkr_check(r, "vkGetQueryPoolResults");
    }
    double period = g->dev->info.features.timestamp_period_ns, submit_ns = 0;
    for (uint32_t s = g->sub_first; s < g->sub_end; s++) {
        double seg = 0;
        for (uint32_t i = g->seg_first[s]; i < g->seg_first[s + 1]; i++) {
            uint64_t a = ts[i + s], b = ts[i + s + 1];
            g->times_ns[i] = b > a ? (double)(b - a) * period : 0.0;
            seg += g->times_ns[i];
        }
        g->seg_ns[s] = seg;
        submit_ns += seg;
    }
    if (submit_ns > g->run_longest_ns)
        g->run_longest_ns = submit_ns;
    return VKLLM_OK;
}

/* Completes the submission pending, if any, and gives up the rest of its run (a graph being changed or
 * destroyed). */
static vkllm_status finish_pending(vkr_graph *g)
{
    vkllm_status st = g->pending ? complete(g) : VKLLM_OK;
    g->run_next = g->n_seg;
    return st;
}

/* After a submission completed: submits the rest of a split run, unless the stop callback gives it up. */
static vkllm_status continue_run(vkr_graph *g)
{
    if (g->run_next >= g->n_seg)
        return VKLLM_OK;
    if (g->stop && g->stop(g->stop_user)) {
        uint32_t done = g->run_next;
        g->run_next = g->n_seg;
        return vkr_error(VKLLM_ERR_CANCELLED, "aborted by the callback after %u of the split run's %u segments", done,
                         g->n_seg);
    }
    return submit_from(g, g->run_next);
}

vkllm_status vkr_graph_submit(vkr_graph *g)
{
    if (!g->recorded)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "graph submitted before it was recorded");
    vkllm_status st = vkr_graph_wait(g);
    if (st != VKLLM_OK)
        return st;
    g->run_longest_ns = 0;
    g->run_submits = 0;
    return submit_from(g, 0);
}

vkllm_status vkr_graph_wait(vkr_graph *g)
{
    while (g->pending) {
        vkllm_status st = complete(g);
        if (st == VKLLM_OK)
            st = continue_run(g);
        if (st != VKLLM_OK)
            return st;
    }
    return VKLLM_OK;
}

vkllm_status vkr_graph_poll(vkr_graph *g, uint64_t timeout_ns, bool *done)
{
    *done = true;
    if (!g->pending)
        return VKLLM_OK;
    if (!g->dev->lost && vkWaitForFences(g->dev->device, 1, &g->fence, VK_TRUE, timeout_ns) == VK_TIMEOUT) {
        *done = false;
        return VKLLM_OK;
    }
    /* signalled: returns at once; an error (a loss noted) is reported there */
    vkllm_status st = complete(g);
    if (st == VKLLM_OK && g->run_next < g->n_seg) {
        st = continue_run(g);
        *done = st != VKLLM_OK;
    }
    return st;
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

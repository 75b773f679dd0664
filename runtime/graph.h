/* The graph executor: an ordered list of compute dispatches (pipeline, buffer bindings, push constants,
 * group counts) recorded into one command buffer with only the barriers its data dependencies need
 * (read-after-write, write-after-read, write-after-write on overlapping buffer ranges). A recorded
 * graph is replayed by submitting it again: values that change between replays (positions, lengths)
 * must live in buffers, not push constants. Optional timestamp queries give per-dispatch GPU time. */
#ifndef VKR_GRAPH_H
#define VKR_GRAPH_H

#include "runtime/memory.h"
#include "runtime/pipeline.h"

typedef struct vkr_binding {
    vkr_buffer *buffer;
    VkDeviceSize offset;
    VkDeviceSize range;     /* 0 = from offset to the end of the buffer */
    bool write;             /* the dispatch writes this range (else: reads only) */
} vkr_binding;

typedef struct vkr_dispatch {
    vkr_pipeline *pipeline;
    uint32_t n_bindings;    /* must equal pipeline->desc.n_buffers */
    vkr_binding bindings[VKR_MAX_BINDINGS];
    uint32_t push[VKR_MAX_PUSH / 4];   /* pipeline->desc.push_size bytes are used */
    uint32_t groups[3];
    const char *name;       /* for timings; a static string */
} vkr_dispatch;

typedef struct vkr_graph vkr_graph;

vkllm_status vkr_graph_create(vkr_device *dev, vkr_graph **out);
void vkr_graph_destroy(vkr_graph *g);
/* The device the graph was created on (ops use it to get pipelines and limits). */
vkr_device *vkr_graph_device(const vkr_graph *g);

/* Removes all dispatches (and the recording), keeping allocations for reuse. */
void vkr_graph_clear(vkr_graph *g);
/* Appends a dispatch (copied). Checks bindings against maxStorageBufferRange and the offset alignment. */
vkllm_status vkr_graph_add(vkr_graph *g, const vkr_dispatch *d);
/* Appends a copy of bytes [src_offset, src_offset + size) of src to dst_offset of dst (vkCmdCopyBuffer), ordered
 * against the dispatches by the same rules (e.g. a submission's inputs, written by the host, copied into
 * device-local memory once at its start). It counts in vkr_graph_size and has a time (name "copy"). */
vkllm_status vkr_graph_add_copy(vkr_graph *g, vkr_buffer *src, VkDeviceSize src_offset, vkr_buffer *dst,
                                VkDeviceSize dst_offset, VkDeviceSize size);
/* A device-local buffer of at least `bytes` for intermediate data of the ops being added (e.g. an f16 copy of a
 * matmul's input), owned by the graph: valid until vkr_graph_destroy (one replaced by a larger request stays
 * valid until vkr_graph_clear). Every call may return the same buffer; the dispatches that use it are ordered by
 * the usual data dependencies. */
vkllm_status vkr_graph_scratch(vkr_graph *g, VkDeviceSize bytes, vkr_buffer **out);
/* Dispatches and copies. */
uint32_t vkr_graph_size(const vkr_graph *g);
/* Copies among them. */
uint32_t vkr_graph_copy_count(const vkr_graph *g);

/* Ends a segment after the dispatches added so far (e.g. after each layer). Segments matter only to a
 * split graph; marks are cleared with the dispatches. */
vkllm_status vkr_graph_mark_segment(vkr_graph *g);
/* Splits a run into several submissions of consecutive segments, each as many segments as fit target_ns
 * by their GPU time measured in the previous runs (timestamps; a segment not measured yet, or longer than
 * the target alone, is a submission of its own); 0: one submission (the default). Each segment is then
 * recorded into its own command buffer. Without timestamps a split graph runs as one submission. */
void vkr_graph_set_split(vkr_graph *g, double target_ns);
/* Asked before each submission of a split run after its first (stop(user), NULL: never): true gives up the
 * rest of the run, and vkr_graph_wait or vkr_graph_poll return VKLLM_ERR_CANCELLED once the submission pending
 * completed, leaving nothing pending (the next vkr_graph_submit starts a whole run). */
typedef bool (*vkr_graph_stop_fn)(void *user);
void vkr_graph_set_stop(vkr_graph *g, vkr_graph_stop_fn stop, void *user);

/* Records the command buffer(s) (descriptor sets, barriers, optional timestamps). Call after the last add. */
vkllm_status vkr_graph_record(vkr_graph *g, bool timestamps);
/* Starts a run: submits the recorded work (one vkQueueSubmit; a split graph's first submission) without
 * waiting. vkr_graph_wait completes the run: a split graph's submissions one after the other, each waited
 * for before the next is submitted. */
vkllm_status vkr_graph_submit(vkr_graph *g);
vkllm_status vkr_graph_wait(vkr_graph *g);
/* Waits at most timeout_ns (0: just looks) for the pending submission; when it finished, its timestamps are
 * read and a split run's next submission is submitted. *done tells whether the whole run finished. Nothing
 * pending: done. */
vkllm_status vkr_graph_poll(vkr_graph *g, uint64_t timeout_ns, bool *done);
/* As recorded: the number of segments (1 unless split). After a timed run: its number of submissions and
 * the GPU time of the longest (the sum of its dispatches' times). */
uint32_t vkr_graph_segments(const vkr_graph *g);
uint32_t vkr_graph_run_submits(const vkr_graph *g);
double vkr_graph_longest_submit_ns(const vkr_graph *g);
/* The value of the device's timeline semaphore (dev->timeline) that the graph's last submission signals;
 * 0: none yet, or no timeline. */
uint64_t vkr_graph_last_signal(const vkr_graph *g);
/* Records if needed, submits and waits. */
vkllm_status vkr_graph_run(vkr_graph *g);

/* After a timed run: GPU nanoseconds of dispatch i (0 if timestamps were not recorded). */
double vkr_graph_dispatch_ns(const vkr_graph *g, uint32_t i);
const char *vkr_graph_dispatch_name(const vkr_graph *g, uint32_t i);
/* Number of pipeline barriers the recording inserted (tests check that independent work has none). */
uint32_t vkr_graph_barrier_count(const vkr_graph *g);

#endif

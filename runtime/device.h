/* Vulkan instance and device: creation, device choice, and the features/limits the kernels depend on.
 * Knows nothing of LLMs. Function pointers come from volk (volkLoadInstance/volkLoadDevice). */
#ifndef VKR_DEVICE_H
#define VKR_DEVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "runtime/error.h"

/* What the kernels may use. Every optional feature has a fallback kernel. */
typedef struct vkr_features {
    bool fp16;                  /* shaderFloat16 */
    bool int8;                  /* shaderInt8 */
    bool int16;                 /* shaderInt16 */
    bool int64;                 /* shaderInt64 */
    bool storage16;             /* storageBuffer16BitAccess */
    bool storage8;              /* storageBuffer8BitAccess */
    bool integer_dot_product;   /* shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product / 1.3) */
    bool subgroup_arithmetic;   /* subgroupAdd etc. in compute */
    bool subgroup_shuffle;
    bool subgroup_size_control; /* VK_EXT_subgroup_size_control / 1.3 */
    bool compute_full_subgroups;
    /* Cooperative matrices (the prompt matmul, shaders/matmul_coopmat.comp). In a device listing: what the
     * device supports. On a device from vkr_device_create: what was enabled, which happens unless VKLLM_COOPMAT=0,
     * with Vulkan 1.3, shaderFloat16, vulkanMemoryModel and the 16x16x16 shape below; otherwise all false (also
     * on external devices). */
    bool coopmat_khr;           /* VK_KHR_cooperative_matrix with its cooperativeMatrix feature */
    bool coopmat_nv;            /* VK_NV_cooperative_matrix with its cooperativeMatrix feature */
    bool coopmat_khr_f16;       /* KHR lists M=N=K=16, f16 x f16 + f32 -> f32, subgroup scope, compute stage */
    bool coopmat_nv_f16;        /* NV lists the same */
    bool vulkan_memory_model;   /* vulkanMemoryModel (the cooperative-matrix kernels use it) */
    bool coopmat_emulated;      /* tests: VKLLM_COOPMAT=emulate runs the same kernel with the cooperative
                                 * operations emulated in plain GLSL (needs shaderFloat16, vulkanMemoryModel) */
    bool memory_budget;         /* VK_EXT_memory_budget */
    bool timestamps;            /* timestampComputeAndGraphics / queue timestampValidBits */
    bool timeline_semaphore;    /* timelineSemaphore (Vulkan 1.2) */
    uint32_t subgroup_size, min_subgroup_size, max_subgroup_size;
    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation_size;
    uint64_t min_storage_buffer_offset_alignment;
    uint32_t max_compute_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    uint32_t max_workgroup_count[3];
    uint32_t max_push_constants_size;
    uint32_t max_storage_buffers;   /* per shader stage and per descriptor set, the smaller */
    float timestamp_period_ns;
} vkr_features;

typedef struct vkr_heap_info {
    uint64_t size;
    uint64_t budget;            /* from VK_EXT_memory_budget, else 0 */
    uint64_t usage;
    bool device_local;
} vkr_heap_info;

/* Everything `vkllm devices` prints about one physical device. */
typedef struct vkr_device_info {
    uint32_t index;
    char name[256];
    VkPhysicalDeviceType type;
    uint32_t vendor_id, device_id;
    uint32_t api_version;
    char driver_name[256];
    char driver_info[256];
    uint32_t driver_version;    /* raw, vendor-encoded */
    uint8_t device_uuid[VK_UUID_SIZE];
    uint8_t pipeline_cache_uuid[VK_UUID_SIZE];   /* what a compatible pipeline cache's header holds */
    uint32_t n_heaps;
    vkr_heap_info heaps[VK_MAX_MEMORY_HEAPS];
    vkr_features features;
} vkr_device_info;

typedef struct vkr_instance vkr_instance;

typedef struct vkr_instance_options {
    bool validation;        /* enable VK_LAYER_KHRONOS_validation (also forced on by VKLLM_VALIDATION=1) */
    bool sync_validation;   /* also synchronization validation (VKLLM_VALIDATION=sync) */
} vkr_instance_options;

/* Loads the Vulkan loader with volk and creates an instance. VKLLM_ERR_NO_DEVICE if there is no loader
 * or no driver. Validation messages are printed to stderr and counted. */
vkllm_status vkr_instance_create(const vkr_instance_options *opts, vkr_instance **out);
void vkr_instance_destroy(vkr_instance *inst);
VkInstance vkr_instance_handle(const vkr_instance *inst);

/* Number of validation/debug messages (warning or error severity) seen by any instance of this process. */
uint32_t vkr_validation_message_count(void);

/* Lists the physical devices. *out is malloc'ed (free it). */
vkllm_status vkr_enumerate_devices(vkr_instance *inst, vkr_device_info **out, uint32_t *count);

/* Picks a device: `selector` NULL/"" = default preference (discrete > integrated > virtual > cpu),
 * a decimal index, or a case-insensitive substring of the name. Also reads VKLLM_DEVICE when selector is NULL. */
vkllm_status vkr_select_device(vkr_instance *inst, const char *selector, uint32_t *index);

typedef struct vkr_device_options {
    const char *selector;         /* see vkr_select_device */
    uint64_t memory_limit;        /* 0 = none; else device allocations beyond this fail (for OOM tests) */
} vkr_device_options;

typedef struct vkr_memory vkr_memory;   /* runtime/memory.c */
typedef struct vkr_pipelines vkr_pipelines; /* runtime/pipeline.c */

typedef struct vkr_device {
    vkr_instance *instance;             /* NULL when created on the host's handles */
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    bool owns_device;
    vkr_device_info info;               /* including .features */
    VkPhysicalDeviceMemoryProperties memory_properties;
    VkCommandPool command_pool;         /* for the runtime's own transfers */
    vkr_memory *memory;
    vkr_pipelines *pipelines;
    uint64_t memory_limit;
    /* Device loss: set once a submission or wait reported VK_ERROR_DEVICE_LOST (or GPU work did not finish
     * within the GPU timeout); every later submission or wait then fails at once with
     * VKLLM_ERR_DEVICE_LOST instead of touching the queue or waiting on fences that may never signal. */
    bool lost;
    uint32_t gpu_timeout_s;             /* VKLLM_GPU_TIMEOUT (seconds; 0 = wait forever); default 600 */
    uint64_t submits;                   /* queue submissions so far */
    uint64_t lose_at_submit;            /* fault injection (tests): this submission reports device loss; 0 = off */
    /* Threads: contexts of one model run on several threads at once. The queue (Vulkan requires its
     * submissions to be externally synchronized) is taken under queue_mutex and, on an application's
     * device, also under the application's own lock (queue_lock/queue_unlock, when given); the
     * allocator with the staging ring, and the pipeline table, each under their own mutex. */
    pthread_mutex_t queue_mutex, memory_mutex, pipeline_mutex;
    /* With timelineSemaphore: a timeline semaphore that vkr_queue_submit_signal's submissions signal with
     * increasing values (the last one given: timeline_value, under queue_mutex); else VK_NULL_HANDLE. */
    VkSemaphore timeline;
    uint64_t timeline_value;
    void (*queue_lock)(void *user);
    void (*queue_unlock)(void *user);
    /* Cooperative matrices (when enabled, see coopmat_* in the features): with VKLLM_COOPMAT unset the prompt
     * matmul uses them only after host/ops/ops_matmul.c's one-time self-check on this device passed; set, always.
     * coopmat_check: 0 not run yet, 1 passed, -1 failed. */
    bool coopmat_auto;
    atomic_int coopmat_check;
    void *queue_lock_user;
} vkr_device;

vkllm_status vkr_device_create(vkr_instance *inst, const vkr_device_options *opts, vkr_device **out);

/* An application's device (embedding): its handles, what it enabled, and how to share its queue. */
typedef struct vkr_external_device {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    /* The VkPhysicalDeviceFeatures2 chain the application passed to vkCreateDevice (its pNext may hold
     * VkPhysicalDeviceVulkan11/12/13Features and the 8/16-bit storage, float16/int8, subgroup size control
     * and integer dot product structs); NULL: only the baseline kernels are used. */
    const VkPhysicalDeviceFeatures2 *enabled_features;
    const char *const *enabled_extensions;   /* the extensions it enabled */
    uint32_t n_enabled_extensions;
    uint64_t memory_limit;                   /* 0 = none */
    void (*queue_lock)(void *user);          /* both or neither: taken around every use of the queue */
    void (*queue_unlock)(void *user);
    void *queue_lock_user;
} vkr_external_device;

/* Wraps a device the embedding application created, after checking it: Vulkan >= 1.2 (instance and
 * device), a queue family that exists and has compute. Optional features are used only where the
 * application says it enabled them. Not destroyed by us; destroying waits only for our own work. */
vkllm_status vkr_device_create_external(const vkr_external_device *ext, vkr_device **out);
void vkr_device_destroy(vkr_device *dev);

/* Converts a failing VkResult into a status + message ("vkAllocateMemory failed: VK_ERROR_..."; for
 * VK_ERROR_DEVICE_LOST: VKLLM_ERR_DEVICE_LOST, "device lost (vkQueueSubmit: VK_ERROR_DEVICE_LOST) ..."). */
vkllm_status vkr_check(VkResult r, const char *what);

/* Every queue submission and fence wait of the runtime goes through these two. They fail at once with
 * VKLLM_ERR_DEVICE_LOST on a device already lost, and mark it lost when Vulkan reports the loss. The wait
 * polls in 1 s slices, asking vkGetFenceStatus for device loss between them, and gives up after
 * dev->gpu_timeout_s seconds (VKLLM_GPU_TIMEOUT; the device is then treated as lost): a hung or lost
 * device cannot make it loop forever.
 * Fault injection for tests: VKLLM_DEBUG_LOSE_DEVICE=N (read at device creation) or
 * vkr_device_inject_loss makes the N-th submission report VK_ERROR_DEVICE_LOST without submitting. */
vkllm_status vkr_queue_submit(vkr_device *dev, const VkSubmitInfo *si, VkFence fence, const char *what);
/* The same, also signalling dev->timeline (when there is one; si must signal no other semaphore) with the
 * next value, which goes into *value (0 without a timeline or when the submission failed). */
vkllm_status vkr_queue_submit_signal(vkr_device *dev, const VkSubmitInfo *si, VkFence fence, const char *what,
                                     uint64_t *value);
vkllm_status vkr_wait_fence(vkr_device *dev, VkFence fence, const char *what);
/* Tests: the n-th queue submission from now (n >= 1) reports device loss. */
void vkr_device_inject_loss(vkr_device *dev, uint64_t n);
const char *vkr_result_name(VkResult r);

const char *vkr_device_type_name(VkPhysicalDeviceType t);
/* Human driver version, decoded per vendor (NVIDIA 10/8/8/6 bits, else Vulkan major.minor.patch). */
void vkr_driver_version_string(const vkr_device_info *info, char *buf, size_t len);

#endif

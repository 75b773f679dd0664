/* Compute pipelines built from the SPIR-V embedded in the library, with specialization constants,
 * cached per device (in memory) and through a VkPipelineCache saved in the user's cache directory. */
#ifndef VKR_PIPELINE_H
#define VKR_PIPELINE_H

#include "runtime/device.h"

#define VKR_MAX_BINDINGS 10
#define VKR_MAX_SPEC 8
#define VKR_MAX_PUSH 128
#define VKR_MAX_UNIFORM_RANGE 16384u   /* the smallest maxUniformBufferRange Vulkan allows */

/* Shader convention (every compute shader in shaders/ follows it):
 *   layout(set = 0, binding = i) buffer ...      storage buffers 0..n_buffers-1 (uniform buffers where the
 *                                                description's uniform_buffers says so)
 *   layout(push_constant) uniform ...            at most VKR_MAX_PUSH bytes
 *   layout(local_size_x_id = 0) in;              workgroup size = spec constant 0
 *   layout(constant_id = 1..) const uint ...     further tunables (spec[0] -> id 1, spec[1] -> id 2, ...) */
typedef struct vkr_pipeline_desc {
    const char *shader;              /* name of the embedded shader (file name of the .spv without extension) */
    uint32_t n_buffers;
    uint32_t push_size;              /* bytes, multiple of 4 */
    uint32_t local_size_x;           /* spec constant 0 */
    uint32_t n_spec;
    uint32_t spec[VKR_MAX_SPEC];     /* spec constants 1..n_spec */
    uint32_t required_subgroup_size; /* 0 = driver's choice; else needs subgroup_size_control */
    uint32_t uniform_buffers;        /* bit i set: binding i is a uniform buffer (small read-only tables, at most
                                      * VKR_MAX_UNIFORM_RANGE bytes: CPU drivers gather from one without a branch
                                      * per lane) */
} vkr_pipeline_desc;

typedef struct vkr_pipeline {
    vkr_pipeline_desc desc;
    VkPipeline pipeline;
    VkPipelineLayout layout;
    VkDescriptorSetLayout set_layout;
} vkr_pipeline;

/* Returns the pipeline for `desc`, creating it the first time. Owned by the device. */
vkllm_status vkr_pipeline_get(vkr_device *dev, const vkr_pipeline_desc *desc, vkr_pipeline **out);

/* The descriptor type of binding i of pipelines of this description. */
VkDescriptorType vkr_descriptor_type(const vkr_pipeline_desc *desc, uint32_t binding);

/* True if the library embeds a shader of this name. */
bool vkr_shader_exists(const char *name);

/* Internal: called by vkr_device_create/destroy (loads/saves the on-disk cache). */
vkllm_status vkr_pipelines_init(vkr_device *dev);
void vkr_pipelines_shutdown(vkr_device *dev);

#endif

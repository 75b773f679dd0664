/* Compute pipelines from the embedded SPIR-V. Each distinct description is built once per device; the
 * driver's pipeline cache is kept on disk, keyed by device UUID and driver version, so later runs skip
 * shader compilation. */
#include "runtime/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/shader_table.h"

struct vkr_pipelines {
    VkPipelineCache cache;
    void *loaded;          /* the cache file's bytes as given to the driver (NULL: none or rejected) */
    size_t loaded_size;
    char path[1024];
    vkr_pipeline **items;
    uint32_t n, cap;
};

static const vkr_shader_blob *find_shader(const char *name)
{
    for (const vkr_shader_blob *s = vkr_shader_table; s->name; s++)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

bool vkr_shader_exists(const char *name) { return find_shader(name) != NULL; }

static bool make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok)
            return false;
    }
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

/* $VKLLM_CACHE_DIR, else $XDG_CACHE_HOME/vkllm, else ~/.cache/vkllm; empty if none or disabled. A directory
 * too long for our buffers is not cut short: VKLLM_CACHE_DIR is then ignored with a warning, another one
 * means no cache. */
static void cache_path(const vkr_device *dev, char *out, size_t len)
{
    out[0] = '\0';
    const char *off = getenv("VKLLM_NO_PIPELINE_CACHE");
    if (off && *off && strcmp(off, "0"))
        return;
    char dir[768];
    const char *d = getenv("VKLLM_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n = -1;
    if (d && *d) {
        n = snprintf(dir, sizeof dir, "%s", d);
        if (n < 0 || (size_t)n >= sizeof dir) {
            vkr_log(VKLLM_LOG_WARNING, "VKLLM_CACHE_DIR is %zu bytes long, more than the %zu allowed; using the default "
                    "pipeline cache directory", strlen(d), sizeof dir - 1);
            n = -1;
        }
    }
    if (n < 0 && xdg && *xdg)
        n = snprintf(dir, sizeof dir, "%s/vkllm", xdg);
    else if (n < 0 && home && *home)
        n = snprintf(dir, sizeof dir, "%s/.cache/vkllm", home);
    if (n < 0 || (size_t)n >= sizeof dir || !make_dirs(dir))
        return;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", dev->info.device_uuid[i]);
    snprintf(out, len, "%s/pipelines-%s-%08x.bin", dir, uuid, dev->info.driver_version);
}

/* The file's bytes if it is a regular file of 1 byte to 64 MiB; anything else (a FIFO, a device: opened
 * without blocking and refused) is no cache. */
static void *read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat sb;
    void *data = NULL;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && sb.st_size < (64l << 20) &&
        (data = malloc((size_t)sb.st_size))) {
        size_t n = (size_t)sb.st_size, got = 0;
        while (got < n) {
            ssize_t r = read(fd, (char *)data + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got == n) {
            *size = n;
        } else {
            free(data);
            data = NULL;
        }
    }
    close(fd);
    return data;
}

/* The whole version-one header (length, version, vendor, device, cache UUID) must be this device's; the
 * driver checks it too, but a foreign file is never passed in. The driver version is in the file name. */
static bool cache_header_matches(const vkr_device *dev, const void *data, size_t size)
{
    if (size < 16 + VK_UUID_SIZE)
        return false;
    const uint8_t *b = data;
    uint32_t header_len, version, vendor, device;
    memcpy(&header_len, b, 4);
    memcpy(&version, b + 4, 4);
    memcpy(&vendor, b + 8, 4);
    memcpy(&device, b + 12, 4);
    return header_len >= 16 + VK_UUID_SIZE && header_len <= size && version == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
           vendor == dev->info.vendor_id && device == dev->info.device_id &&
           memcmp(b + 16, dev->info.pipeline_cache_uuid, VK_UUID_SIZE) == 0;
}

vkllm_status vkr_pipelines_init(vkr_device *dev)
{
    vkr_pipelines *p = calloc(1, sizeof *p);
    if (!p)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    dev->pipelines = p;
    cache_path(dev, p->path, sizeof p->path);
    size_t size = 0;
    void *data = p->path[0] ? read_file(p->path, &size) : NULL;
    if (data && !cache_header_matches(dev, data, size)) {
        free(data);
        data = NULL;
        size = 0;
    }
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = data ? size : 0,
        .pInitialData = data,
    };
    VkResult r = vkCreatePipelineCache(dev->device, &ci, NULL, &p->cache);
    if (r != VK_SUCCESS && data) { /* a stale or corrupt file: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(dev->device, &ci, NULL, &p->cache);
        free(data);
        data = NULL;
        size = 0;
    }
    /* Kept to compare at exit: a rejected file (data NULL) or one whose content differs is rewritten. */
    p->loaded = data;
    p->loaded_size = size;
    return vkr_check(r, "vkCreatePipelineCache");
}

static void save_cache(vkr_device *dev)
{
    vkr_pipelines *p = dev->pipelines;
    size_t size = 0;
    if (!p->path[0] || !p->cache || vkGetPipelineCacheData(dev->device, p->cache, &size, NULL) != VK_SUCCESS ||
        size == 0)
        return;
    void *data = malloc(size);
    if (!data)
        return;
    if (vkGetPipelineCacheData(dev->device, p->cache, &size, data) == VK_SUCCESS &&
        !(p->loaded && size == p->loaded_size && memcmp(data, p->loaded, size) == 0)) {
        /* Write-then-rename so a concurrent reader never sees half a file. */
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", p->path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(data, 1, size, f) == size;
            ok = fclose(f) == 0 && ok;
            if (!ok || rename(tmp, p->path) != 0)
                remove(tmp);
        }
    }
    free(data);
}

void vkr_pipelines_shutdown(vkr_device *dev)
{
    vkr_pipelines *p = dev->pipelines;
    if (!p)
        return;
    save_cache(dev);
    free(p->loaded);
    for (uint32_t i = 0; i < p->n; i++) {
        vkr_pipeline *pl = p->items[i];
        vkDestroyPipeline(dev->device, pl->pipeline, NULL);
        vkDestroyPipelineLayout(dev->device, pl->layout, NULL);
        vkDestroyDescriptorSetLayout(dev->device, pl->set_layout, NULL);
        free(pl);
    }
    free(p->items);
    if (p->cache)
        vkDestroyPipelineCache(dev->device, p->cache, NULL);
    free(p);
    dev->pipelines = NULL;
}

VkDescriptorType vkr_descriptor_type(const vkr_pipeline_desc *desc, uint32_t binding)
{
    return desc->uniform_buffers >> binding & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

static bool same_desc(const vkr_pipeline_desc *a, const vkr_pipeline_desc *b)
{
    if (strcmp(a->shader, b->shader) || a->n_buffers != b->n_buffers || a->push_size != b->push_size ||
        a->local_size_x != b->local_size_x || a->n_spec != b->n_spec ||
        a->required_subgroup_size != b->required_subgroup_size || a->uniform_buffers != b->uniform_buffers)
        return false;
    return memcmp(a->spec, b->spec, a->n_spec * sizeof a->spec[0]) == 0;
}

static void destroy_partial(vkr_device *dev, vkr_pipeline *pl, VkShaderModule module)
{
    if (module)
        vkDestroyShaderModule(dev->device, module, NULL);
    if (pl->layout)
        vkDestroyPipelineLayout(dev->device, pl->layout, NULL);
    if (pl->set_layout)
        vkDestroyDescriptorSetLayout(dev->device, pl->set_layout, NULL);
    free(pl);
}

static vkllm_status pipeline_get(vkr_device *dev, const vkr_pipeline_desc *desc, vkr_pipeline **out)
{
    vkr_pipelines *p = dev->pipelines;
    for (uint32_t i = 0; i < p->n; i++)
        if (same_desc(&p->items[i]->desc, desc)) {
            *out = p->items[i];
            return VKLLM_OK;
        }

    const vkr_shader_blob *blob = find_shader(desc->shader);
    if (!blob)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "no embedded shader named '%s'", desc->shader);
    const vkr_features *ft = &dev->info.features;
    if (desc->n_buffers > VKR_MAX_BINDINGS || desc->n_spec > VKR_MAX_SPEC || desc->push_size > VKR_MAX_PUSH ||
        desc->push_size > ft->max_push_constants_size || desc->push_size % 4)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "pipeline '%s': bad buffer, spec or push-constant count", desc->shader);
    if (desc->local_size_x == 0 || desc->local_size_x > ft->max_workgroup_size[0] ||
        desc->local_size_x > ft->max_workgroup_invocations)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "pipeline '%s': workgroup size %u not supported by the device",
                         desc->shader, desc->local_size_x);
    if (desc->required_subgroup_size &&
        (!ft->subgroup_size_control || desc->required_subgroup_size < ft->min_subgroup_size ||
         desc->required_subgroup_size > ft->max_subgroup_size))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "pipeline '%s': subgroup size %u cannot be required on this device",
                         desc->shader, desc->required_subgroup_size);

    vkr_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    pl->desc = *desc;

    VkDescriptorSetLayoutBinding bindings[VKR_MAX_BINDINGS];
    for (uint32_t i = 0; i < desc->n_buffers; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = vkr_descriptor_type(desc, i),
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dsl = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = desc->n_buffers,
        .pBindings = bindings,
    };
    vkllm_status st = vkr_check(vkCreateDescriptorSetLayout(dev->device, &dsl, NULL, &pl->set_layout),
                                "vkCreateDescriptorSetLayout");
    if (st != VKLLM_OK) {
        destroy_partial(dev, pl, VK_NULL_HANDLE);
        return st;
    }
    VkPushConstantRange push = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = desc->push_size};
    VkPipelineLayoutCreateInfo plc = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &pl->set_layout,
        .pushConstantRangeCount = desc->push_size ? 1 : 0,
        .pPushConstantRanges = &push,
    };
    st = vkr_check(vkCreatePipelineLayout(dev->device, &plc, NULL, &pl->layout), "vkCreatePipelineLayout");
    if (st != VKLLM_OK) {
        destroy_partial(dev, pl, VK_NULL_HANDLE);
        return st;
    }
    VkShaderModule module = VK_NULL_HANDLE;
    VkShaderModuleCreateInfo smc = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = blob->size,
        .pCode = blob->code,
    };
    st = vkr_check(vkCreateShaderModule(dev->device, &smc, NULL, &module), "vkCreateShaderModule");
    if (st != VKLLM_OK) {
        destroy_partial(dev, pl, VK_NULL_HANDLE);
        return st;
    }

    uint32_t values[1 + VKR_MAX_SPEC];
    VkSpecializationMapEntry entries[1 + VKR_MAX_SPEC];
    values[0] = desc->local_size_x;
    for (uint32_t i = 0; i < desc->n_spec; i++)
        values[1 + i] = desc->spec[i];
    for (uint32_t i = 0; i <= desc->n_spec; i++)
        entries[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
    VkSpecializationInfo spec = {
        .mapEntryCount = desc->n_spec + 1,
        .pMapEntries = entries,
        .dataSize = (desc->n_spec + 1) * 4,
        .pData = values,
    };
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo sgsize = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = desc->required_subgroup_size,
    };
    VkComputePipelineCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .pNext = desc->required_subgroup_size ? &sgsize : NULL,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = module,
            .pName = "main",
            .pSpecializationInfo = &spec,
        },
        .layout = pl->layout,
    };
    st = vkr_check(vkCreateComputePipelines(dev->device, p->cache, 1, &cpi, NULL, &pl->pipeline),
                   "vkCreateComputePipelines");
    vkDestroyShaderModule(dev->device, module, NULL);
    if (st != VKLLM_OK) {
        destroy_partial(dev, pl, VK_NULL_HANDLE);
        return st;
    }
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 32;
        vkr_pipeline **items = realloc(p->items, cap * sizeof *items);
        if (!items) {
            vkDestroyPipeline(dev->device, pl->pipeline, NULL);
            destroy_partial(dev, pl, VK_NULL_HANDLE);
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        }
        p->items = items;
        p->cap = cap;
    }
    p->items[p->n++] = pl;
    /* The shader name must outlive the caller's string. */
    pl->desc.shader = blob->name;
    *out = pl;
    return VKLLM_OK;
}

/* Contexts on several threads record graphs at once: the table is shared. */
vkllm_status vkr_pipeline_get(vkr_device *dev, const vkr_pipeline_desc *desc, vkr_pipeline **out)
{
    pthread_mutex_lock(&dev->pipeline_mutex);
    vkllm_status st = pipeline_get(dev, desc, out);
    pthread_mutex_unlock(&dev->pipeline_mutex);
    return st;
}

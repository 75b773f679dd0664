/* Instance, physical-device choice, feature detection and logical-device creation. */
#include "runtime/device.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/log.h"
#include "runtime/coopmat_compat.h"
#include "runtime/memory.h"
#include "runtime/pipeline.h"

struct vkr_instance {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t api_version;
    /* VK_KHR_cooperative_matrix structures may be passed: no validation layer, or one that knows them (one
     * older than the extension reports every unknown structure in a pNext chain as an error). */
    bool coopmat_khr_known;
};

/* Counted across instances: tests fail on any message. Atomic because drivers may call back from
 * their own threads. */
static _Atomic uint32_t validation_messages;

uint32_t vkr_validation_message_count(void) { return validation_messages; }

const char *vkr_result_name(VkResult r)
{
    switch (r) {
#define CASE(x) case x: return #x
        CASE(VK_SUCCESS);
        CASE(VK_NOT_READY);
        CASE(VK_TIMEOUT);
        CASE(VK_INCOMPLETE);
        CASE(VK_ERROR_OUT_OF_HOST_MEMORY);
        CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY);
        CASE(VK_ERROR_INITIALIZATION_FAILED);
        CASE(VK_ERROR_DEVICE_LOST);
        CASE(VK_ERROR_MEMORY_MAP_FAILED);
        CASE(VK_ERROR_LAYER_NOT_PRESENT);
        CASE(VK_ERROR_EXTENSION_NOT_PRESENT);
        CASE(VK_ERROR_FEATURE_NOT_PRESENT);
        CASE(VK_ERROR_INCOMPATIBLE_DRIVER);
        CASE(VK_ERROR_TOO_MANY_OBJECTS);
        CASE(VK_ERROR_FORMAT_NOT_SUPPORTED);
        CASE(VK_ERROR_FRAGMENTED_POOL);
        CASE(VK_ERROR_OUT_OF_POOL_MEMORY);
        CASE(VK_ERROR_INVALID_SHADER_NV);
        CASE(VK_ERROR_UNKNOWN);
#undef CASE
    default: return "VK_ERROR_(unknown)";
    }
}

vkllm_status vkr_check(VkResult r, const char *what)
{
    if (r == VK_SUCCESS)
        return VKLLM_OK;
    vkllm_status st = VKLLM_ERR_VULKAN;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        st = VKLLM_ERR_OUT_OF_DEVICE_MEMORY;
    else if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        st = VKLLM_ERR_OUT_OF_HOST_MEMORY;
    else if (r == VK_ERROR_DEVICE_LOST)
        return vkr_error(VKLLM_ERR_DEVICE_LOST,
                         "device lost (%s: VK_ERROR_DEVICE_LOST): the GPU driver reset the device or it crashed; "
                         "free the model and load it again",
                         what);
    return vkr_error(st, "%s failed: %s", what, vkr_result_name(r));
}

static vkllm_status already_lost(const char *what)
{
    return vkr_error(VKLLM_ERR_DEVICE_LOST, "device lost (%s: the device was lost earlier): free the model and load "
                                            "it again", what);
}

vkllm_status vkr_queue_submit_signal(vkr_device *dev, const VkSubmitInfo *si, VkFence fence, const char *what,
                                     uint64_t *value)
{
    if (value)
        *value = 0;
    if (dev->lost)
        return already_lost(what);
    VkSubmitInfo signalling = *si;
    VkTimelineSemaphoreSubmitInfo tsi = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO, .pNext = si->pNext,
                                         .signalSemaphoreValueCount = 1};
    bool signal = value && dev->timeline;
    if (signal) {
        signalling.pNext = &tsi;
        signalling.signalSemaphoreCount = 1;
        signalling.pSignalSemaphores = &dev->timeline;
    }
    pthread_mutex_lock(&dev->queue_mutex);
    /* Values are taken in submission order on the one queue, so they are signalled in increasing order. */
    uint64_t next = dev->timeline_value + 1;
    tsi.pSignalSemaphoreValues = &next;
    if (dev->queue_lock)
        dev->queue_lock(dev->queue_lock_user);
    dev->submits++;
    VkResult r = dev->lose_at_submit && dev->submits >= dev->lose_at_submit
                     ? VK_ERROR_DEVICE_LOST
                     : vkQueueSubmit(dev->queue, 1, signal ? &signalling : si, fence);
    if (dev->queue_unlock)
        dev->queue_unlock(dev->queue_lock_user);
    if (signal && r == VK_SUCCESS)
        *value = dev->timeline_value = next;
    pthread_mutex_unlock(&dev->queue_mutex);
    if (r == VK_ERROR_DEVICE_LOST)
        dev->lost = true;
    return vkr_check(r, what);
}

vkllm_status vkr_queue_submit(vkr_device *dev, const VkSubmitInfo *si, VkFence fence, const char *what)
{
    return vkr_queue_submit_signal(dev, si, fence, what, NULL);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

vkllm_status vkr_wait_fence(vkr_device *dev, VkFence fence, const char *what)
{
    if (dev->lost)
        return already_lost(what);
    double start = monotonic_s();
    for (;;) {
        VkResult r = vkWaitForFences(dev->device, 1, &fence, VK_TRUE, 1000000000ull);
        if (r == VK_TIMEOUT) {
            /* Drivers report a loss through any fence query; a hung device that never reports one is
             * caught by the timeout. */
            VkResult s = vkGetFenceStatus(dev->device, fence);
            if (s == VK_SUCCESS)
                return VKLLM_OK;
            if (s != VK_NOT_READY)
                r = s;
            else if (dev->gpu_timeout_s && monotonic_s() - start >= dev->gpu_timeout_s) {
                dev->lost = true;
                return vkr_error(VKLLM_ERR_DEVICE_LOST,
                                 "device lost: %s did not finish within %u s (set VKLLM_GPU_TIMEOUT to allow longer)",
                                 what, dev->gpu_timeout_s);
            } else
                continue;
        }
        if (r == VK_ERROR_DEVICE_LOST)
            dev->lost = true;
        return vkr_check(r, what);
    }
}

void vkr_device_inject_loss(vkr_device *dev, uint64_t n) { dev->lose_at_submit = dev->submits + (n ? n : 1); }

/* A zeroed device with its mutexes; device_discard undoes it (before the Vulkan objects exist). */
static vkr_device *device_alloc(void)
{
    vkr_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return NULL;
    pthread_mutex_init(&dev->queue_mutex, NULL);
    pthread_mutex_init(&dev->memory_mutex, NULL);
    pthread_mutex_init(&dev->pipeline_mutex, NULL);
    return dev;
}

static void device_discard(vkr_device *dev)
{
    pthread_mutex_destroy(&dev->queue_mutex);
    pthread_mutex_destroy(&dev->memory_mutex);
    pthread_mutex_destroy(&dev->pipeline_mutex);
    free(dev);
}

/* Reads VKLLM_GPU_TIMEOUT and VKLLM_DEBUG_LOSE_DEVICE into a new device. */
static void read_debug_env(vkr_device *dev)
{
    dev->gpu_timeout_s = 600;
    const char *v = getenv("VKLLM_GPU_TIMEOUT");
    if (v && *v) {
        char *end;
        errno = 0;
        unsigned long t = strtoul(v, &end, 10);
        if (*end == '\0' && isdigit((unsigned char)v[0]) && !errno && t <= 86400)
            dev->gpu_timeout_s = (uint32_t)t;
        else
            vkr_log(VKLLM_LOG_WARNING, "VKLLM_GPU_TIMEOUT='%s' is not a number of seconds from 0 to 86400; using %u",
                    v, dev->gpu_timeout_s);
    }
    v = getenv("VKLLM_DEBUG_LOSE_DEVICE");
    if (v && *v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end == '\0' && n > 0)
            dev->lose_at_submit = n;
    }
}

const char *vkr_device_type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

void vkr_driver_version_string(const vkr_device_info *info, char *buf, size_t len)
{
    uint32_t v = info->driver_version;
    if (info->vendor_id == 0x10DE) /* NVIDIA: 10.8.8.6 */
        snprintf(buf, len, "%u.%u.%u.%u", v >> 22, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
    else
        snprintf(buf, len, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                     VkDebugUtilsMessageTypeFlagsEXT type,
                                                     const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)user;
    (void)type;
    vkllm_log_level level =
        severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? VKLLM_LOG_ERROR : VKLLM_LOG_WARNING;
    vkr_log(level, "vulkan validation: %s", data && data->pMessage ? data->pMessage : "(no message)");
    validation_messages++;
    return VK_FALSE;
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The layer's specVersion (the Vulkan header it was built with), 0 if it is not installed. */
static uint32_t layer_version(const char *name)
{
    uint32_t n = 0, version = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (!props)
        return 0;
    if (vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !version; i++)
            if (strcmp(props[i].layerName, name) == 0)
                version = props[i].specVersion;
    free(props);
    return version;
}

static bool has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (!props)
        return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static bool has_instance_extension(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *props = calloc(n, sizeof *props);
    if (!props)
        return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

vkllm_status vkr_instance_create(const vkr_instance_options *opts, vkr_instance **out)
{
    *out = NULL;
    if (volkInitialize() != VK_SUCCESS)
        return vkr_error(VKLLM_ERR_NO_DEVICE, "no Vulkan loader found (libvulkan.so.1): install a Vulkan driver");
    uint32_t api = volkGetInstanceVersion();
    if (api < VK_API_VERSION_1_2)
        return vkr_error(VKLLM_ERR_NO_DEVICE, "the Vulkan loader supports only Vulkan %u.%u; 1.2 is needed",
                         VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api));
    if (api > VK_API_VERSION_1_3)
        api = VK_API_VERSION_1_3;

    const char *env = getenv("VKLLM_VALIDATION");
    bool validation = (opts && opts->validation) || env_flag("VKLLM_VALIDATION");
    bool sync = (opts && opts->sync_validation) || (env && strcmp(env, "sync") == 0);
    if (sync)
        validation = true;

    const char *layers[1];
    uint32_t n_layers = 0;
    const char *exts[2];
    uint32_t n_exts = 0;
    bool debug_utils = false;
    if (validation) {
        if (!has_layer("VK_LAYER_KHRONOS_validation"))
            return vkr_error(VKLLM_ERR_NO_DEVICE,
                             "validation was requested but VK_LAYER_KHRONOS_validation is not installed "
                             "(Debian: vulkan-validationlayers)");
        layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        if (has_instance_extension(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            debug_utils = true;
        }
    }

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm",
        .pEngineName = "vkllm",
        .apiVersion = api,
    };
    VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT vfeatures = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = &sync_feature,
    };
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
        .pfnUserCallback = debug_callback,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    /* Messages from instance creation itself go through the chained messenger info. */
    const void **chain = &ci.pNext;
    if (debug_utils) {
        *chain = &dbg;
        chain = (const void **)&dbg.pNext;
    }
    if (sync)
        *chain = &vfeatures;

    vkr_instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    VkResult r = vkCreateInstance(&ci, NULL, &inst->instance);
    if (r != VK_SUCCESS) {
        free(inst);
        if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
            return vkr_error(VKLLM_ERR_NO_DEVICE, "no Vulkan driver found (vkCreateInstance: %s)", vkr_result_name(r));
        return vkr_check(r, "vkCreateInstance");
    }
    inst->api_version = api;
    /* VK_KHR_cooperative_matrix arrived with Vulkan header 1.3.255. */
    inst->coopmat_khr_known =
        !validation || layer_version("VK_LAYER_KHRONOS_validation") >= VK_MAKE_API_VERSION(0, 1, 3, 255);
    volkLoadInstanceOnly(inst->instance);
    if (debug_utils) {
        dbg.pNext = NULL;
        r = vkCreateDebugUtilsMessengerEXT(inst->instance, &dbg, NULL, &inst->messenger);
        if (r != VK_SUCCESS) {
            vkDestroyInstance(inst->instance, NULL);
            free(inst);
            return vkr_check(r, "vkCreateDebugUtilsMessengerEXT");
        }
    }
    *out = inst;
    return VKLLM_OK;
}

void vkr_instance_destroy(vkr_instance *inst)
{
    if (!inst)
        return;
    if (inst->messenger)
        vkDestroyDebugUtilsMessengerEXT(inst->instance, inst->messenger, NULL);
    vkDestroyInstance(inst->instance, NULL);
    free(inst);
}

VkInstance vkr_instance_handle(const vkr_instance *inst) { return inst->instance; }

/* ---- Feature detection ---- */

typedef struct device_extensions {
    bool memory_budget, subgroup_size_control, integer_dot_product, coopmat_khr, coopmat_nv;
} device_extensions;

static device_extensions query_extensions(VkPhysicalDevice pd)
{
    device_extensions e = {0};
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS)
        return e;
    VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
    if (!props)
        return e;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS) {
        for (uint32_t i = 0; i < n; i++) {
            const char *name = props[i].extensionName;
            e.memory_budget |= !strcmp(name, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
            e.subgroup_size_control |= !strcmp(name, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
            e.integer_dot_product |= !strcmp(name, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
            e.coopmat_khr |= !strcmp(name, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
            e.coopmat_nv |= !strcmp(name, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
        }
    }
    free(props);
    return e;
}

static int compute_queue_family(VkPhysicalDevice pd, bool *timestamps)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    if (!q)
        return -1;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0)
            continue;
        /* Prefer the universal queue: it is the one drivers tune first and it always has timestamps. */
        if (best < 0 || (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            best = (int)i;
        if (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)
            break;
    }
    if (best >= 0 && timestamps)
        *timestamps = q[best].timestampValidBits > 0;
    free(q);
    return best;
}

/* Cooperative matrices: the extensions' cooperativeMatrix features, whether compute shaders may use them,
 * and whether the property list has the one shape shaders/matmul_coopmat.comp uses: M = N = K = 16,
 * A, B f16, C and Result f32, subgroup scope (NVIDIA offers it in both extensions, AMD RDNA3 in KHR). The
 * structs are chained only for extensions the device has (KHR: and a validation layer, if any, that knows
 * them). Failed queries leave the path off. */
static void query_coopmat(VkPhysicalDevice pd, bool has_khr, bool has_nv, vkr_features *ft)
{
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fk = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV fn = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDeviceCooperativeMatrixPropertiesKHR pk = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR};
    VkPhysicalDeviceCooperativeMatrixPropertiesNV pn = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
    VkPhysicalDeviceProperties2 p = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    if (!has_khr && !has_nv)
        return;
    if (has_khr) {
        fk.pNext = f.pNext;
        f.pNext = &fk;
        pk.pNext = p.pNext;
        p.pNext = &pk;
    }
    if (has_nv) {
        fn.pNext = f.pNext;
        f.pNext = &fn;
        pn.pNext = p.pNext;
        p.pNext = &pn;
    }
    vkGetPhysicalDeviceFeatures2(pd, &f);
    vkGetPhysicalDeviceProperties2(pd, &p);
    ft->coopmat_khr = has_khr && fk.cooperativeMatrix;
    ft->coopmat_nv = has_nv && fn.cooperativeMatrix;

    VkInstance instance = volkGetLoadedInstance();
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get_khr =
        instance ? (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
                       instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR")
                 : NULL;
    uint32_t n = 0;
    if (ft->coopmat_khr && (pk.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && get_khr &&
        get_khr(pd, &n, NULL) == VK_SUCCESS && n > 0) {
        VkCooperativeMatrixPropertiesKHR *props = calloc(n, sizeof *props);
        if (props) {
            for (uint32_t i = 0; i < n; i++)
                props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
            VkResult r = get_khr(pd, &n, props);
            for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) {
                const VkCooperativeMatrixPropertiesKHR *q = &props[i];
                ft->coopmat_khr_f16 |= q->MSize == 16 && q->NSize == 16 && q->KSize == 16 &&
                                       q->AType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                                       q->BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                                       q->CType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
                                       q->ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR && !q->saturatingAccumulation &&
                                       q->scope == VK_SCOPE_SUBGROUP_KHR;
            }
            free(props);
        }
    }
    n = 0;
    if (ft->coopmat_nv && (pn.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
        vkGetPhysicalDeviceCooperativeMatrixPropertiesNV &&
        vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, NULL) == VK_SUCCESS && n > 0) {
        VkCooperativeMatrixPropertiesNV *props = calloc(n, sizeof *props);
        if (props) {
            for (uint32_t i = 0; i < n; i++)
                props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
            VkResult r = vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, props);
            for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) {
                const VkCooperativeMatrixPropertiesNV *q = &props[i];
                ft->coopmat_nv_f16 |= q->MSize == 16 && q->NSize == 16 && q->KSize == 16 &&
                                      q->AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                                      q->BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                                      q->CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                                      q->DType == VK_COMPONENT_TYPE_FLOAT32_NV && q->scope == VK_SCOPE_SUBGROUP_NV;
            }
            free(props);
        }
    }
}

/* khr_known: VK_KHR_cooperative_matrix may be queried (see vkr_instance.coopmat_khr_known). */
static void fill_info(VkPhysicalDevice pd, uint32_t index, vkr_device_info *info, bool khr_known)
{
    memset(info, 0, sizeof *info);
    info->index = index;
    device_extensions ext = query_extensions(pd);

    VkPhysicalDeviceSubgroupProperties subgroup = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sizectl = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES, .pNext = &subgroup};
    VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
                                               .pNext = &sizectl};
    VkPhysicalDeviceIDProperties ids = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &driver};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &ids};
    vkGetPhysicalDeviceProperties2(pd, &props);
    VkPhysicalDeviceProperties *p = &props.properties;

    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    info->type = p->deviceType;
    info->vendor_id = p->vendorID;
    info->device_id = p->deviceID;
    info->api_version = p->apiVersion;
    info->driver_version = p->driverVersion;
    snprintf(info->driver_name, sizeof info->driver_name, "%s", driver.driverName);
    snprintf(info->driver_info, sizeof info->driver_info, "%s", driver.driverInfo);
    memcpy(info->device_uuid, ids.deviceUUID, VK_UUID_SIZE);
    memcpy(info->pipeline_cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
    bool v13 = p->apiVersion >= VK_API_VERSION_1_3;

    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = v13 ? &f13 : NULL};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(pd, &f);

    vkr_features *ft = &info->features;
    ft->fp16 = f12.shaderFloat16;
    ft->int8 = f12.shaderInt8;
    ft->int16 = f.features.shaderInt16;
    ft->int64 = f.features.shaderInt64;
    ft->storage16 = f11.storageBuffer16BitAccess;
    ft->storage8 = f12.storageBuffer8BitAccess;
    /* Optional features that are extensions before 1.3 are only used through the 1.3 core path. */
    ft->integer_dot_product = v13 && f13.shaderIntegerDotProduct;
    ft->subgroup_size_control = v13 && f13.subgroupSizeControl;
    ft->compute_full_subgroups = v13 && f13.computeFullSubgroups;
    VkSubgroupFeatureFlags ops = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? subgroup.supportedOperations : 0;
    ft->subgroup_arithmetic = (ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
    ft->subgroup_shuffle = (ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) != 0;
    ft->subgroup_size = subgroup.subgroupSize;
    ft->min_subgroup_size = ft->subgroup_size_control ? sizectl.minSubgroupSize : subgroup.subgroupSize;
    ft->max_subgroup_size = ft->subgroup_size_control ? sizectl.maxSubgroupSize : subgroup.subgroupSize;
    ft->vulkan_memory_model = f12.vulkanMemoryModel;
    ft->timeline_semaphore = f12.timelineSemaphore;
    query_coopmat(pd, ext.coopmat_khr && khr_known, ext.coopmat_nv, ft);
    ft->memory_budget = ext.memory_budget;
    bool queue_timestamps = false;
    compute_queue_family(pd, &queue_timestamps);
    ft->timestamps = queue_timestamps && p->limits.timestampPeriod > 0;
    ft->timestamp_period_ns = p->limits.timestampPeriod;
    ft->max_storage_buffer_range = p->limits.maxStorageBufferRange;
    ft->min_storage_buffer_offset_alignment = p->limits.minStorageBufferOffsetAlignment;
    ft->max_compute_shared_memory = p->limits.maxComputeSharedMemorySize;
    ft->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) {
        ft->max_workgroup_size[i] = p->limits.maxComputeWorkGroupSize[i];
        ft->max_workgroup_count[i] = p->limits.maxComputeWorkGroupCount[i];
    }
    ft->max_push_constants_size = p->limits.maxPushConstantsSize;
    ft->max_storage_buffers = p->limits.maxPerStageDescriptorStorageBuffers < p->limits.maxDescriptorSetStorageBuffers
                                  ? p->limits.maxPerStageDescriptorStorageBuffers
                                  : p->limits.maxDescriptorSetStorageBuffers;

    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 props2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(pd, &props2);
    ft->max_memory_allocation_size = m3.maxMemoryAllocationSize;

    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mem = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                             .pNext = ext.memory_budget ? &budget : NULL};
    vkGetPhysicalDeviceMemoryProperties2(pd, &mem);
    info->n_heaps = mem.memoryProperties.memoryHeapCount;
    for (uint32_t i = 0; i < info->n_heaps; i++) {
        info->heaps[i].size = mem.memoryProperties.memoryHeaps[i].size;
        info->heaps[i].device_local = mem.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
        if (ext.memory_budget) {
            info->heaps[i].budget = budget.heapBudget[i];
            info->heaps[i].usage = budget.heapUsage[i];
        }
    }
}

static vkllm_status physical_devices(vkr_instance *inst, VkPhysicalDevice **out, uint32_t *count)
{
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst->instance, &n, NULL);
    if (r != VK_SUCCESS)
        return vkr_check(r, "vkEnumeratePhysicalDevices");
    if (n == 0)
        return vkr_error(VKLLM_ERR_NO_DEVICE, "no Vulkan device found (is a Vulkan driver installed?)");
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!pds)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    r = vkEnumeratePhysicalDevices(inst->instance, &n, pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(pds);
        return vkr_check(r, "vkEnumeratePhysicalDevices");
    }
    *out = pds;
    *count = n;
    return VKLLM_OK;
}

vkllm_status vkr_enumerate_devices(vkr_instance *inst, vkr_device_info **out, uint32_t *count)
{
    VkPhysicalDevice *pds;
    uint32_t n;
    vkllm_status st = physical_devices(inst, &pds, &n);
    if (st != VKLLM_OK)
        return st;
    vkr_device_info *infos = calloc(n, sizeof *infos);
    if (!infos) {
        free(pds);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (uint32_t i = 0; i < n; i++)
        fill_info(pds[i], i, &infos[i], inst->coopmat_khr_known);
    free(pds);
    *out = infos;
    *count = n;
    return VKLLM_OK;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

vkllm_status vkr_select_device(vkr_instance *inst, const char *selector, uint32_t *index)
{
    if (!selector || !*selector)
        selector = getenv("VKLLM_DEVICE");
    vkr_device_info *infos;
    uint32_t n;
    vkllm_status st = vkr_enumerate_devices(inst, &infos, &n);
    if (st != VKLLM_OK)
        return st;
    int best = -1;
    if (selector && *selector) {
        char *end;
        /* An index is digits only ("-1" is a name to look for, not 2^64 - 1). */
        unsigned long v = strtoul(selector, &end, 10);
        if (*end == '\0' && isdigit((unsigned char)selector[0])) {
            if (v >= n) {
                free(infos);
                return vkr_error(VKLLM_ERR_NO_DEVICE, "device %lu does not exist (%u device%s found; see 'vkllm devices')",
                                 v, n, n == 1 ? "" : "s");
            }
            best = (int)v;
        } else {
            for (uint32_t i = 0; i < n && best < 0; i++)
                if (contains_nocase(infos[i].name, selector))
                    best = (int)i;
            if (best < 0) {
                free(infos);
                return vkr_error(VKLLM_ERR_NO_DEVICE, "no device name contains '%s' (see 'vkllm devices')", selector);
            }
        }
    } else {
        for (uint32_t i = 0; i < n; i++)
            if (best < 0 || type_rank(infos[i].type) > type_rank(infos[best].type))
                best = (int)i;
    }
    free(infos);
    *index = (uint32_t)best;
    return VKLLM_OK;
}

/* Shared tail of both creation paths: the runtime's own objects. */
static vkllm_status device_finish(vkr_device *dev)
{
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = dev->queue_family,
    };
    vkllm_status st = vkr_check(vkCreateCommandPool(dev->device, &pci, NULL, &dev->command_pool), "vkCreateCommandPool");
    if (st == VKLLM_OK && dev->info.features.timeline_semaphore) {
        VkSemaphoreTypeCreateInfo type = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                          .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE};
        VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &type};
        st = vkr_check(vkCreateSemaphore(dev->device, &sci, NULL, &dev->timeline), "vkCreateSemaphore");
    }
    if (st == VKLLM_OK)
        st = vkr_memory_init(dev);
    if (st == VKLLM_OK)
        st = vkr_pipelines_init(dev);
    return st;
}

vkllm_status vkr_device_create(vkr_instance *inst, const vkr_device_options *opts, vkr_device **out)
{
    *out = NULL;
    uint32_t index;
    vkllm_status st = vkr_select_device(inst, opts ? opts->selector : NULL, &index);
    if (st != VKLLM_OK)
        return st;
    VkPhysicalDevice *pds;
    uint32_t n;
    if ((st = physical_devices(inst, &pds, &n)) != VKLLM_OK)
        return st;
    VkPhysicalDevice pd = pds[index];
    free(pds);

    vkr_device *dev = device_alloc();
    if (!dev)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    dev->instance = inst;
    dev->physical = pd;
    dev->owns_device = true;
    dev->memory_limit = opts ? opts->memory_limit : 0;
    read_debug_env(dev);
    fill_info(pd, index, &dev->info, inst->coopmat_khr_known);
    /* Tests: kernels are chosen as for a discrete GPU, so a CPU device (lavapipe) runs the GPU paths too. */
    const char *as_gpu = getenv("VKLLM_DEBUG_AS_GPU");
    if (as_gpu && !strcmp(as_gpu, "1"))
        dev->info.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
    vkGetPhysicalDeviceMemoryProperties(pd, &dev->memory_properties);
    if (dev->info.api_version < VK_API_VERSION_1_2) {
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "device '%s' supports only Vulkan %u.%u; 1.2 is needed", dev->info.name,
                       VK_API_VERSION_MAJOR(dev->info.api_version), VK_API_VERSION_MINOR(dev->info.api_version));
        device_discard(dev);
        return st;
    }
    int family = compute_queue_family(pd, NULL);
    if (family < 0) {
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "device '%s' has no compute queue", dev->info.name);
        device_discard(dev);
        return st;
    }
    dev->queue_family = (uint32_t)family;

    /* Enable exactly the optional features the kernels may use, where present. */
    const vkr_features *ft = &dev->info.features;
    bool v13 = dev->info.api_version >= VK_API_VERSION_1_3;
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
        .subgroupSizeControl = ft->subgroup_size_control,
        .computeFullSubgroups = ft->compute_full_subgroups,
        .shaderIntegerDotProduct = ft->integer_dot_product,
    };
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = v13 ? &f13 : NULL,
        .shaderFloat16 = ft->fp16,
        .shaderInt8 = ft->int8,
        .storageBuffer8BitAccess = ft->storage8,
        .timelineSemaphore = ft->timeline_semaphore,
    };
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &f12,
        .storageBuffer16BitAccess = ft->storage16,
    };
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    features.features.shaderInt16 = ft->int16;
    features.features.shaderInt64 = ft->int64;

    /* Cooperative matrices: by default (VKLLM_COOPMAT unset or empty) and with VKLLM_COOPMAT=1,
     * VK_KHR_cooperative_matrix is enabled where the device lists the 16x16x16 f16 shape the kernel uses, else
     * VK_NV_cooperative_matrix; =khr / =nv only that one (tests, validation); =emulate the tests' plain-GLSL
     * kernel; =0 none. By default the prompt matmul uses them only once host/ops/ops_matmul.c's self-check
     * passed on the device (coopmat_auto); set, it always does. With vulkanMemoryModel (the kernels' SPIR-V
     * uses the Vulkan memory model) and Vulkan 1.3 (SPIR-V 1.6). Should the driver refuse, the device is
     * created without, so the option never costs the device. */
    const char *cm_set = getenv("VKLLM_COOPMAT");
    const bool cm_auto = !cm_set || !*cm_set;
    const char *cm_env = cm_auto ? "1" : cm_set;
    bool cm_on = cm_auto || env_flag("VKLLM_COOPMAT");
    if (cm_on && strcmp(cm_env, "1") && strcmp(cm_env, "khr") && strcmp(cm_env, "nv") && strcmp(cm_env, "emulate")) {
        vkr_log(VKLLM_LOG_WARNING, "VKLLM_COOPMAT='%s' is not one of 0, 1, khr, nv, emulate; cooperative matrices stay off",
                cm_env);
        cm_on = false;
    }
    dev->coopmat_auto = cm_auto;
    atomic_init(&dev->coopmat_check, 0);
    const bool cm_emulate = cm_on && !strcmp(cm_env, "emulate") && ft->fp16 && ft->vulkan_memory_model;
    const bool cm_ok = cm_on && strcmp(cm_env, "emulate") && v13 && ft->fp16 && ft->vulkan_memory_model;
    const bool cm_khr = cm_ok && strcmp(cm_env, "nv") && ft->coopmat_khr && ft->coopmat_khr_f16;
    const bool cm_nv = cm_ok && !cm_khr && strcmp(cm_env, "khr") && ft->coopmat_nv && ft->coopmat_nv_f16;
    const bool tries[2][2] = {{cm_khr, cm_nv}, {false, false}};   /* {KHR, NV} per vkCreateDevice attempt */
    const int n_tries = cm_khr || cm_nv ? 2 : 1;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR cmk = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cmn = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .cooperativeMatrix = VK_TRUE};

    const char *exts[4];
    uint32_t n_exts = 0;
    if (ft->memory_budget)
        exts[n_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    const uint32_t n_base_exts = n_exts;

    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = dev->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &features,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    bool on_khr = false, on_nv = false;
    for (int a = 0; a < n_tries; a++) {
        on_khr = tries[a][0];
        on_nv = tries[a][1];
        n_exts = n_base_exts;
        const void **chain = (const void **)(v13 ? &f13.pNext : &f12.pNext);
        *chain = NULL;
        if (on_khr) {
            exts[n_exts++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
            *chain = &cmk;
            chain = (const void **)&cmk.pNext;
            *chain = NULL;
        }
        if (on_nv) {
            exts[n_exts++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
            *chain = &cmn;
            chain = (const void **)&cmn.pNext;
            *chain = NULL;
        }
        f12.vulkanMemoryModel = on_khr || on_nv || cm_emulate;
        dci.enabledExtensionCount = n_exts;
        st = vkr_check(vkCreateDevice(pd, &dci, NULL, &dev->device), "vkCreateDevice");
        if (st == VKLLM_OK)
            break;
    }
    if (st != VKLLM_OK) {
        device_discard(dev);
        return st;
    }
    dev->info.features.coopmat_khr = dev->info.features.coopmat_khr_f16 = on_khr;
    dev->info.features.coopmat_nv = dev->info.features.coopmat_nv_f16 = on_nv;
    dev->info.features.coopmat_emulated = cm_emulate;
    volkLoadDevice(dev->device);
    vkGetDeviceQueue(dev->device, dev->queue_family, 0, &dev->queue);
    if ((st = device_finish(dev)) != VKLLM_OK) {
        vkr_device_destroy(dev);
        return st;
    }
    /* Tests: a lower maxMemoryAllocationSize (bytes), so small models take the paths of tensors over it.
     * Applied after the staging buffers exist. */
    const char *max_alloc = getenv("VKLLM_DEBUG_MAX_ALLOCATION");
    if (max_alloc && *max_alloc) {
        char *end;
        unsigned long long v = strtoull(max_alloc, &end, 10);
        if (*end == '\0' && v > 0 && (!dev->info.features.max_memory_allocation_size ||
                                      v < dev->info.features.max_memory_allocation_size))
            dev->info.features.max_memory_allocation_size = v;
    }
    *out = dev;
    return VKLLM_OK;
}

static bool listed(const vkr_external_device *ext, const char *name)
{
    for (uint32_t i = 0; i < ext->n_enabled_extensions; i++)
        if (ext->enabled_extensions[i] && !strcmp(ext->enabled_extensions[i], name))
            return true;
    return false;
}

/* Keeps on only the optional features the application enabled (its VkPhysicalDeviceFeatures2 chain and
 * extension list), of those the device has: what the kernels use must have been enabled at vkCreateDevice. */
static void restrict_to_enabled(const vkr_external_device *ext, uint32_t api_version, vkr_features *ft)
{
    bool fp16 = false, int8 = false, storage16 = false, storage8 = false, memory_model = false;
    bool size_control = false, full_subgroups = false, dot = false, int16 = false, int64 = false, timeline = false;
    const VkPhysicalDeviceFeatures2 *f = ext->enabled_features;
    if (f && f->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2) {
        int16 = f->features.shaderInt16;
        int64 = f->features.shaderInt64;
        for (const VkBaseInStructure *s = f->pNext; s; s = s->pNext) {
            switch (s->sType) {
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES:
                storage16 |= ((const VkPhysicalDeviceVulkan11Features *)s)->storageBuffer16BitAccess;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: {
                const VkPhysicalDeviceVulkan12Features *v = (const void *)s;
                fp16 |= v->shaderFloat16;
                int8 |= v->shaderInt8;
                storage8 |= v->storageBuffer8BitAccess;
                memory_model |= v->vulkanMemoryModel;
                timeline |= v->timelineSemaphore;
                break;
            }
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES: {
                const VkPhysicalDeviceVulkan13Features *v = (const void *)s;
                size_control |= v->subgroupSizeControl;
                full_subgroups |= v->computeFullSubgroups;
                dot |= v->shaderIntegerDotProduct;
                break;
            }
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES:
                storage16 |= ((const VkPhysicalDevice16BitStorageFeatures *)s)->storageBuffer16BitAccess;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES:
                storage8 |= ((const VkPhysicalDevice8BitStorageFeatures *)s)->storageBuffer8BitAccess;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES:
                fp16 |= ((const VkPhysicalDeviceShaderFloat16Int8Features *)s)->shaderFloat16;
                int8 |= ((const VkPhysicalDeviceShaderFloat16Int8Features *)s)->shaderInt8;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES:
                size_control |= ((const VkPhysicalDeviceSubgroupSizeControlFeatures *)s)->subgroupSizeControl;
                full_subgroups |= ((const VkPhysicalDeviceSubgroupSizeControlFeatures *)s)->computeFullSubgroups;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES:
                timeline |= ((const VkPhysicalDeviceTimelineSemaphoreFeatures *)s)->timelineSemaphore;
                break;
            case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES:
                dot |= ((const VkPhysicalDeviceShaderIntegerDotProductFeatures *)s)->shaderIntegerDotProduct;
                break;
            default: break;
            }
        }
    }
    /* Before 1.3 these two are extensions, usable only where the application enabled them. */
    bool v13 = api_version >= VK_API_VERSION_1_3;
    size_control &= v13 || listed(ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    full_subgroups &= size_control;
    dot &= v13 || listed(ext, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    ft->fp16 &= fp16;
    ft->int8 &= int8;
    ft->int16 &= int16;
    ft->int64 &= int64;
    ft->storage16 &= storage16;
    ft->storage8 &= storage8;
    ft->subgroup_size_control &= size_control;
    ft->compute_full_subgroups &= full_subgroups;
    ft->integer_dot_product &= dot;
    ft->memory_budget &= listed(ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    ft->vulkan_memory_model &= memory_model;
    ft->timeline_semaphore &= timeline;
    /* Cooperative matrices stay off on an application's device (experimental, opt-in on our own). */
    ft->coopmat_khr = ft->coopmat_nv = ft->coopmat_khr_f16 = ft->coopmat_nv_f16 = ft->coopmat_emulated = false;
}

/* The application's queue family exists and can run compute. */
static vkllm_status check_queue_family(VkPhysicalDevice pd, uint32_t family, bool *timestamps)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    if (family >= n)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vk_queue_family %u does not exist (the device has %u queue famil%s)",
                         family, n, n == 1 ? "y" : "ies");
    VkQueueFamilyProperties *q = calloc(n, sizeof *q);
    if (!q)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    bool compute = family < n && (q[family].queueFlags & VK_QUEUE_COMPUTE_BIT);
    *timestamps = family < n && q[family].timestampValidBits > 0;
    free(q);
    if (!compute)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "vk_queue_family %u has no compute capability", family);
    return VKLLM_OK;
}

vkllm_status vkr_device_create_external(const vkr_external_device *ext, vkr_device **out)
{
    *out = NULL;
    if (!ext->instance || !ext->physical || !ext->device || !ext->queue)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "external device: instance, physical device, device and queue are required");
    if (!ext->queue_lock != !ext->queue_unlock)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "external device: give both queue lock callbacks or neither");
    if (volkInitialize() != VK_SUCCESS)
        return vkr_error(VKLLM_ERR_NO_DEVICE, "no Vulkan loader found (libvulkan.so.1)");
    volkLoadInstanceOnly(ext->instance);
    vkr_device *dev = device_alloc();
    if (!dev)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    dev->physical = ext->physical;
    dev->device = ext->device;
    dev->queue = ext->queue;
    dev->queue_family = ext->queue_family;
    dev->memory_limit = ext->memory_limit;
    dev->queue_lock = ext->queue_lock;
    dev->queue_unlock = ext->queue_unlock;
    dev->queue_lock_user = ext->queue_lock_user;
    read_debug_env(dev);
    /* Checked with Vulkan 1.0 calls only, before anything newer is called. The device's version caps the
     * effective one; the instance's (VkApplicationInfo.apiVersion) cannot be queried, but a device whose
     * effective version is below 1.2 returns no 1.2 commands. */
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(ext->physical, &props);
    bool timestamps = false;
    vkllm_status st = VKLLM_OK;
    if (props.apiVersion < VK_API_VERSION_1_2)
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "device '%s' supports only Vulkan %u.%u; 1.2 is needed", props.deviceName,
                       VK_API_VERSION_MAJOR(props.apiVersion), VK_API_VERSION_MINOR(props.apiVersion));
    else if (!vkGetDeviceProcAddr(ext->device, "vkGetSemaphoreCounterValue"))
        st = vkr_error(VKLLM_ERR_UNSUPPORTED, "the application's Vulkan instance or device is below version 1.2: create the "
                       "instance with VkApplicationInfo.apiVersion >= VK_API_VERSION_1_2");
    else
        st = check_queue_family(ext->physical, ext->queue_family, &timestamps);
    if (st != VKLLM_OK) {
        device_discard(dev);
        return st;
    }
    fill_info(ext->physical, 0, &dev->info, false);
    restrict_to_enabled(ext, dev->info.api_version, &dev->info.features);
    dev->info.features.timestamps &= timestamps;
    vkGetPhysicalDeviceMemoryProperties(ext->physical, &dev->memory_properties);
    volkLoadDevice(ext->device);
    if ((st = device_finish(dev)) != VKLLM_OK) {
        vkr_device_destroy(dev);
        return st;
    }
    *out = dev;
    return VKLLM_OK;
}

void vkr_device_destroy(vkr_device *dev)
{
    if (!dev)
        return;
    /* A lost device may never go idle (a hung GPU that never reported the loss); its work is abandoned.
     * On an application's device only our own work is waited for: every graph and transfer waits for its
     * fence when it is destroyed, and the application's work is none of ours. */
    if (dev->owns_device && dev->device && !dev->lost && vkDeviceWaitIdle(dev->device) == VK_ERROR_DEVICE_LOST)
        dev->lost = true;
    vkr_pipelines_shutdown(dev);
    vkr_memory_shutdown(dev);
    if (dev->command_pool)
        vkDestroyCommandPool(dev->device, dev->command_pool, NULL);
    if (dev->timeline)
        vkDestroySemaphore(dev->device, dev->timeline, NULL);
    if (dev->owns_device && dev->device)
        vkDestroyDevice(dev->device, NULL);
    device_discard(dev);
}

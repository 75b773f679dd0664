/* See app_device.h. */
#include "app_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint32_t messages;

uint32_t app_device_messages(void) { return messages; }

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)severity;
    (void)type;
    (void)user;
    fprintf(stderr, "application's validation: %s\n", data && data->pMessage ? data->pMessage : "(none)");
    messages++;
    return VK_FALSE;
}

static bool fail(const char *what, VkResult r)
{
    fprintf(stderr, "FAIL: the application's %s: %d\n", what, (int)r);
    return false;
}

static bool create(app_device *a, uint32_t api_version, bool all_features);

bool app_device_create(app_device *a, uint32_t api_version, bool all_features)
{
    if (create(a, api_version, all_features))
        return true;
    app_device_destroy(a);
    return false;
}

static bool create(app_device *a, uint32_t api_version, bool all_features)
{
    memset(a, 0, sizeof *a);
    if (volkInitialize() != VK_SUCCESS)
        return fail("volkInitialize", VK_ERROR_INITIALIZATION_FAILED);
    const char *env = getenv("VKLLM_VALIDATION");
    bool validation = env && *env && strcmp(env, "0");
    const char *layer = "VK_LAYER_KHRONOS_validation", *debug_utils = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = api_version};
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT,
        .pfnUserCallback = on_message,
    };
    /* VKLLM_VALIDATION=sync: also synchronization validation, as vkllm's own instance does */
    VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT sync = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT, .pNext = &dbg,
                                    .enabledValidationFeatureCount = 1, .pEnabledValidationFeatures = &sync_feature};
    bool with_sync = validation && !strcmp(env, "sync");
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = with_sync ? (const void *)&sync : validation ? (const void *)&dbg : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = validation,
        .ppEnabledLayerNames = &layer,
        .enabledExtensionCount = validation,
        .ppEnabledExtensionNames = &debug_utils,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &a->instance);
    if (r != VK_SUCCESS)
        return fail("vkCreateInstance", r);
    volkLoadInstanceOnly(a->instance);
    if (validation && (r = vkCreateDebugUtilsMessengerEXT(a->instance, &dbg, NULL, &a->messenger)) != VK_SUCCESS)
        return fail("vkCreateDebugUtilsMessengerEXT", r);
    uint32_t n = 1;
    r = vkEnumeratePhysicalDevices(a->instance, &n, &a->physical);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0)
        return fail("vkEnumeratePhysicalDevices", r);
    VkQueueFamilyProperties q[16];
    a->n_families = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(a->physical, &a->n_families, q);
    while (a->family < a->n_families && !(q[a->family].queueFlags & VK_QUEUE_COMPUTE_BIT))
        a->family++;
    if (a->family == a->n_families)
        return fail("compute queue family search", VK_ERROR_FEATURE_NOT_PRESENT);

    /* The features: what the device has (queried into the same structs), or none. */
    a->f12 = (VkPhysicalDeviceVulkan12Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    a->f11 = (VkPhysicalDeviceVulkan11Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                                .pNext = &a->f12};
    a->features = (VkPhysicalDeviceFeatures2){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &a->f11};
    if (all_features) {
        vkGetPhysicalDeviceFeatures2(a->physical, &a->features);
        VkPhysicalDeviceFeatures keep = {.shaderInt16 = a->features.features.shaderInt16,
                                         .shaderInt64 = a->features.features.shaderInt64};
        a->features.features = keep;
        VkPhysicalDeviceVulkan12Features f12 = {.sType = a->f12.sType,
                                                .shaderFloat16 = a->f12.shaderFloat16,
                                                .shaderInt8 = a->f12.shaderInt8,
                                                .storageBuffer8BitAccess = a->f12.storageBuffer8BitAccess};
        a->f12 = f12;
        VkPhysicalDeviceVulkan11Features f11 = {.sType = a->f11.sType, .pNext = &a->f12,
                                                .storageBuffer16BitAccess = a->f11.storageBuffer16BitAccess};
        a->f11 = f11;
    }
    /* The application's own use of 1.2: timeline semaphores (test_app_device waits on one). */
    a->f12.timelineSemaphore = api_version >= VK_API_VERSION_1_2;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = a->family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = api_version >= VK_API_VERSION_1_2 ? &a->features : NULL,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    if ((r = vkCreateDevice(a->physical, &dci, NULL, &a->device)) != VK_SUCCESS)
        return fail("vkCreateDevice", r);
    volkLoadDevice(a->device);
    vkGetDeviceQueue(a->device, a->family, 0, &a->queue);
    return true;
}

void app_device_destroy(app_device *a)
{
    if (a->device)
        vkDestroyDevice(a->device, NULL);
    if (a->messenger)
        vkDestroyDebugUtilsMessengerEXT(a->instance, a->messenger, NULL);
    if (a->instance)
        vkDestroyInstance(a->instance, NULL);
    memset(a, 0, sizeof *a);
}

void app_device_params(const app_device *a, bool tell_features, vkllm_model_params *p)
{
    p->vk_instance = a->instance;
    p->vk_physical_device = a->physical;
    p->vk_device = a->device;
    p->vk_queue = a->queue;
    p->vk_queue_family = a->family;
    if (tell_features) {
        p->vk_enabled_features = &a->features;
        p->vk_enabled_extensions = a->extensions;
        p->vk_n_enabled_extensions = a->n_extensions;
    }
}

/* An application's own Vulkan device, made as an embedding engine makes it (tests of the vk_* model
 * parameters): its own instance (chosen API version, the validation layer when VKLLM_VALIDATION is set, with
 * synchronization validation when it is "sync", a messenger counting messages), the first device, its first compute queue family, and the features and
 * extensions it chose to enable. */
#ifndef VKLLM_TEST_APP_DEVICE_H
#define VKLLM_TEST_APP_DEVICE_H

#include <volk.h>

#include "vkllm.h"

typedef struct app_device {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t family;
    uint32_t n_families;
    VkPhysicalDeviceFeatures2 features;     /* what was enabled, chained: */
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    const char *extensions[2];
    uint32_t n_extensions;
} app_device;

/* api_version: the instance's VkApplicationInfo.apiVersion. all_features: enable every optional feature
 * vkllm uses that the device has (else none). False (message printed, nothing left to destroy) on failure. */
bool app_device_create(app_device *a, uint32_t api_version, bool all_features);
void app_device_destroy(app_device *a);
/* Fills the vk_* fields of p with a's handles (and, if tell_features, what a enabled). */
void app_device_params(const app_device *a, bool tell_features, vkllm_model_params *p);
/* Validation messages the application's messenger received. */
uint32_t app_device_messages(void);

#endif

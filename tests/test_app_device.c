/* vkllm on the application's own Vulkan device (the vk_* model parameters), made by the test as an engine
 * makes it (tests/app_device.c): the checks at load (Vulkan 1.2 instance, queue family, lock callbacks),
 * the features the application says it enabled being used (and only those), memory_limit on this path,
 * the stories260K greedy story, and vkllm_model_free returning while the application's own work on the
 * queue is still pending (it waits for vkllm's fences only). No validation message on either side. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "app_device.h"
#include "greedy.h"
#include "host/api_internal.h"
#include "runtime/memory.h"
#include "util.h"

static const char *model_path;

static vkllm_status load(const app_device *a, bool tell_features, uint64_t memory_limit, vkllm_model **m)
{
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    app_device_params(a, tell_features, &mp);
    mp.memory_limit = memory_limit;
    return vkllm_model_load(model_path, &mp, m);
}

/* An instance created for Vulkan 1.0 is refused with the reason, before vkllm uses anything newer. */
static void test_old_instance(void)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_0, false)) {
        test_failures++;
        return;
    }
    vkllm_model *m = NULL;
    vkllm_status st = load(&a, false, 0, &m);
    CHECK(st == VKLLM_ERR_UNSUPPORTED && !m, "a Vulkan 1.0 instance: status %d", st);
    CHECK(strstr(vkllm_last_error(), "apiVersion >= VK_API_VERSION_1_2") != NULL, "message: %s", vkllm_last_error());
    printf("1.0 instance: %s\n", vkllm_last_error());
    vkllm_model_free(m);
    app_device_destroy(&a);
}

static void lock_nothing(void *user) { (void)user; }

/* A queue family that does not exist, and one queue lock callback without the other. */
static void test_bad_arguments(void)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_2, false)) {
        test_failures++;
        return;
    }
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    app_device_params(&a, false, &mp);
    mp.vk_queue_family = a.n_families;
    vkllm_model *m = NULL;
    vkllm_status st = vkllm_model_load(model_path, &mp, &m);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && !m && strstr(vkllm_last_error(), "does not exist"),
          "queue family %u of %u: status %d, %s", a.n_families, a.n_families, st, vkllm_last_error());
    vkllm_model_free(m);
    app_device_params(&a, false, &mp);
    mp.vk_queue_lock = lock_nothing;
    st = vkllm_model_load(model_path, &mp, &m);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && !m, "a queue lock without an unlock: status %d", st);
    vkllm_model_free(m);
    app_device_destroy(&a);
}

/* The features vkllm uses are those the application enabled: all it can (and then the faster kernels run
 * and still write the golden story), or none when it tells nothing. */
static void test_features(void)
{
    for (int tell = 0; tell < 2; tell++) {
        app_device a;
        if (!app_device_create(&a, VK_API_VERSION_1_2, true)) {
            test_failures++;
            return;
        }
        vkllm_model *m = NULL;
        vkllm_status st = load(&a, tell, 0, &m);
        CHECK(st == VKLLM_OK, "load: %s", vkllm_last_error());
        if (st == VKLLM_OK) {
            const vkr_features *ft = &vkl_api_model_device(m)->info.features;
            CHECK(ft->fp16 == (tell && a.f12.shaderFloat16), "fp16 %d (told %d)", ft->fp16, tell);
            CHECK(ft->int8 == (tell && a.f12.shaderInt8), "int8 %d (told %d)", ft->int8, tell);
            CHECK(ft->storage8 == (tell && a.f12.storageBuffer8BitAccess), "storage8 %d", ft->storage8);
            CHECK(ft->storage16 == (tell && a.f11.storageBuffer16BitAccess), "storage16 %d", ft->storage16);
            CHECK(ft->int16 == (tell && a.features.features.shaderInt16), "int16 %d", ft->int16);
            CHECK(ft->int64 == (tell && a.features.features.shaderInt64), "int64 %d", ft->int64);
            CHECK(!ft->subgroup_size_control && !ft->memory_budget, "features the application did not enable are on");
            if (tell)
                CHECK(ft->fp16 || ft->int8 || ft->int16 || ft->storage16, "the device has none of the optional features");
            char text[1024];
            st = greedy_story(m, 0, 30, text, sizeof text);
            CHECK(st == VKLLM_OK && !strncmp(text, GREEDY_STORY_START, strlen(GREEDY_STORY_START)),
                  "features told %d: '%s' (%s)", tell, text, st == VKLLM_OK ? "" : vkllm_last_error());
            printf("features told %d (fp16 %d int8 %d int16 %d storage16 %d): %s\n", tell, ft->fp16, ft->int8,
                   ft->int16, ft->storage16, text);
        }
        vkllm_model_free(m);
        app_device_destroy(&a);
    }
}

/* memory_limit holds on the application's device: a small one fails the load, a larger one is kept. */
static void test_memory_limit(void)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_2, false)) {
        test_failures++;
        return;
    }
    vkllm_model *m = NULL;
    vkllm_status st = load(&a, false, 1u << 20, &m);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY && !m, "1 MiB limit: status %d (%s)", st, vkllm_last_error());
    vkllm_model_free(m);
    m = NULL;
    const uint64_t limit = 80ull << 20;
    st = load(&a, false, limit, &m);
    CHECK(st == VKLLM_OK, "80 MiB limit: %s", vkllm_last_error());
    if (st == VKLLM_OK) {
        char text[256];
        CHECK(greedy_story(m, 0, 20, text, sizeof text) == VKLLM_OK, "generate: %s", vkllm_last_error());
        uint64_t used = vkr_memory_allocated(vkl_api_model_device(m));
        CHECK(used <= limit, "%llu bytes allocated over the limit", (unsigned long long)used);
    }
    vkllm_model_free(m);
    app_device_destroy(&a);
}

typedef struct freeing {
    vkllm_model *m;
    _Atomic bool done;
} freeing;

static void *free_model(void *arg)
{
    freeing *f = arg;
    vkllm_model_free(f->m);
    f->done = true;
    return NULL;
}

/* The application has a submission on the queue that waits for a timeline semaphore it signals later:
 * the device cannot go idle, yet vkllm_model_free returns (a vkDeviceWaitIdle would wait for ever). */
static void test_free_waits_for_own_work(void)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_2, false)) {
        test_failures++;
        return;
    }
    vkllm_model *m = NULL;
    char text[256];
    if (load(&a, false, 0, &m) != VKLLM_OK || greedy_story(m, 0, 20, text, sizeof text) != VKLLM_OK) {
        CHECK(false, "load and generate: %s", vkllm_last_error());
        vkllm_model_free(m);
        app_device_destroy(&a);
        return;
    }
    VkSemaphoreTypeCreateInfo type = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                      .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE};
    VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &type};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkSemaphore sem = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    CHECK(vkCreateSemaphore(a.device, &sci, NULL, &sem) == VK_SUCCESS, "vkCreateSemaphore");
    CHECK(vkCreateFence(a.device, &fci, NULL, &fence) == VK_SUCCESS, "vkCreateFence");
    uint64_t wait_value = 1;
    VkPipelineStageFlags stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
    VkTimelineSemaphoreSubmitInfo ts = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                        .waitSemaphoreValueCount = 1,
                                        .pWaitSemaphoreValues = &wait_value};
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pNext = &ts, .waitSemaphoreCount = 1,
                       .pWaitSemaphores = &sem, .pWaitDstStageMask = &stage};
    CHECK(vkQueueSubmit(a.queue, 1, &si, fence) == VK_SUCCESS, "the application's vkQueueSubmit");

    freeing f = {.m = m, .done = false};
    pthread_t t;
    bool started = pthread_create(&t, NULL, free_model, &f) == 0;
    CHECK(started, "pthread_create");
    for (int i = 0; i < 1000 && started && !f.done; i++) {
        struct timespec pause = {0, 10000000};
        nanosleep(&pause, NULL);
    }
    CHECK(!started || f.done, "vkllm_model_free did not return within 10 s while the application's work was pending");
    CHECK(vkGetFenceStatus(a.device, fence) == VK_NOT_READY, "the application's submission finished early");
    VkSemaphoreSignalInfo signal = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO, .semaphore = sem, .value = 1};
    CHECK(vkSignalSemaphore(a.device, &signal) == VK_SUCCESS, "vkSignalSemaphore");
    CHECK(vkWaitForFences(a.device, 1, &fence, VK_TRUE, 10000000000ull) == VK_SUCCESS, "the application's fence");
    if (started)
        pthread_join(t, NULL);
    else
        vkllm_model_free(m);
    vkDestroyFence(a.device, fence, NULL);
    vkDestroySemaphore(a.device, sem, NULL);
    app_device_destroy(&a);
}

int main(void)
{
    model_path = test_shared_path("models/stories260K.gguf");
    if (!model_path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    test_old_instance();
    test_bad_arguments();
    test_features();
    test_memory_limit();
    test_free_waits_for_own_work();
    CHECK(app_device_messages() == 0, "%u validation message(s) on the application's instance", app_device_messages());
    return test_finish("app_device");
}

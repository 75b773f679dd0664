/* vkllm_context_timeline: the timeline semaphore that vkllm's submissions signal (include/vkllm.h), on a
 * synthetic "tiny" model (Q8_0, seeded):
 * - on vkllm's own device: the value is 0 before the first submission, grows with every decode, and the
 *   semaphore reaches it after vkllm_decode returns (also for a token split into layer groups by a budget
 *   below its GPU time);
 * - on the application's device (tests/app_device.c) that enabled timelineSemaphore and says so: after
 *   vkllm_decode_submit, the application's own submission (a fill of its buffer) waits for the value on the
 *   GPU; once its fence signals the semaphore holds the value and vkllm_decode_wait completes at once with
 *   the logits of a blocking decode, bit for bit. Run again under synchronization validation (sync_timeline);
 * - VKLLM_ERR_UNSUPPORTED on an application's device that does not say it enabled the feature, and
 *   VKLLM_ERR_INVALID_ARGUMENT for NULL arguments. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_device.h"
#include "host/api_internal.h"
#include "host/format/ggml_types.h"
#include "host/model/llama.h"
#include "host/tools/synth.h"
#include "runtime/error.h"
#include "util.h"

#define N_PROMPT 12

static int32_t prompt[N_PROMPT];

static vkllm_context *new_context(vkllm_model *m, uint32_t budget_us)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 64;
    cp.max_gpu_us_per_submit = budget_us;
    vkllm_context *c = NULL;
    CHECK(vkllm_context_create(m, &cp, &c) == VKLLM_OK, "context: %s", vkllm_last_error());
    return c;
}

static VkDevice device_of(vkllm_context *c) { return vkl_api_context_model(c)->dev->device; }

/* Decodes one token with vkllm_decode and checks that the value grew and the semaphore reached it. */
static void check_step(vkllm_context *c, int32_t token, uint64_t *last, const char *what)
{
    const float *logits;
    CHECK(vkllm_decode(c, &token, 1, &logits) == VKLLM_OK, "%s: decode: %s", what, vkllm_last_error());
    VkSemaphore sem = VK_NULL_HANDLE;
    uint64_t value = 0, reached = 0;
    CHECK(vkllm_context_timeline(c, &sem, &value) == VKLLM_OK, "%s: %s", what, vkllm_last_error());
    CHECK(value > *last, "%s: the value did not grow (%llu after %llu)", what, (unsigned long long)value,
          (unsigned long long)*last);
    /* The fence vkllm_decode waited for may signal a moment before the semaphore (lavapipe): wait for it. */
    VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO, .semaphoreCount = 1, .pSemaphores = &sem,
                              .pValues = &value};
    CHECK(vkWaitSemaphores(device_of(c), &wi, 10000000000ull) == VK_SUCCESS, "%s: the value %llu never signalled",
          what, (unsigned long long)value);
    CHECK(vkGetSemaphoreCounterValue(device_of(c), sem, &reached) == VK_SUCCESS && reached >= value,
          "%s: the semaphore is at %llu, below %llu", what, (unsigned long long)reached, (unsigned long long)value);
    *last = value;
}

static void test_own_device(const char *path)
{
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        CHECK(false, "load: %s", vkllm_last_error());
        return;
    }
    vkllm_context *c = new_context(m, 0);
    VkSemaphore sem = VK_NULL_HANDLE;
    uint64_t value = 1;
    vkllm_status st = c ? vkllm_context_timeline(c, &sem, &value) : VKLLM_ERR_INVALID_ARGUMENT;
    bool has = vkl_api_context_model(c)->dev->info.features.timeline_semaphore;
    CHECK(st == (has ? VKLLM_OK : VKLLM_ERR_UNSUPPORTED), "own device (timelineSemaphore %d): status %d: %s", has,
          (int)st, vkllm_last_error());
    if (st == VKLLM_OK) {
        CHECK(sem != VK_NULL_HANDLE && value == 0, "before any submission: semaphore %p, value %llu", (void *)sem,
              (unsigned long long)value);
        const float *logits;
        CHECK(vkllm_decode(c, prompt, N_PROMPT, &logits) == VKLLM_OK, "prompt: %s", vkllm_last_error());
        uint64_t last = 0;
        for (int i = 0; i < 3; i++)
            check_step(c, prompt[i], &last, "own device");
        /* A budget of 1 us: every layer group alone, several submissions per token. */
        vkllm_context *split = new_context(m, 1);
        uint64_t split_last = 0;
        for (int i = 0; split && i < 3; i++)
            check_step(split, prompt[i], &split_last, "split token");
        CHECK(split_last > last, "the model's one timeline: %llu after %llu", (unsigned long long)split_last,
              (unsigned long long)last);
        vkllm_context_free(split);
    } else
        printf("vkllm's device has no timelineSemaphore: only the application's device is tested\n");
    CHECK(vkllm_context_timeline(c, NULL, &value) == VKLLM_ERR_INVALID_ARGUMENT, "NULL semaphore");
    CHECK(vkllm_context_timeline(c, &sem, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL value");
    vkllm_context_free(c);
    vkllm_model_free(m);
}

/* The application's buffer, command buffer and fence; a fill of the buffer submitted waiting for the
 * timeline semaphore at `value`. */
typedef struct app_work {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
} app_work;

static bool app_work_create(const app_device *a, app_work *w)
{
    memset(w, 0, sizeof *w);
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 1 << 20,
                              .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT};
    if (vkCreateBuffer(a->device, &bci, NULL, &w->buffer) != VK_SUCCESS)
        return false;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(a->device, w->buffer, &req);
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)__builtin_ctz(req.memoryTypeBits)};
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, .queueFamilyIndex = a->family};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vkAllocateMemory(a->device, &mai, NULL, &w->memory) != VK_SUCCESS ||
        vkBindBufferMemory(a->device, w->buffer, w->memory, 0) != VK_SUCCESS ||
        vkCreateCommandPool(a->device, &pci, NULL, &w->pool) != VK_SUCCESS ||
        vkCreateFence(a->device, &fci, NULL, &w->fence) != VK_SUCCESS)
        return false;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = w->pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (vkAllocateCommandBuffers(a->device, &cai, &w->cmd) != VK_SUCCESS || vkBeginCommandBuffer(w->cmd, &bi) != VK_SUCCESS)
        return false;
    vkCmdFillBuffer(w->cmd, w->buffer, 0, VK_WHOLE_SIZE, 0x5eed);
    return vkEndCommandBuffer(w->cmd) == VK_SUCCESS;
}

static void app_work_destroy(const app_device *a, app_work *w)
{
    if (w->fence)
        vkDestroyFence(a->device, w->fence, NULL);
    if (w->pool)
        vkDestroyCommandPool(a->device, w->pool, NULL);
    if (w->buffer)
        vkDestroyBuffer(a->device, w->buffer, NULL);
    if (w->memory)
        vkFreeMemory(a->device, w->memory, NULL);
}

static bool app_submit_after(const app_device *a, app_work *w, VkSemaphore sem, uint64_t value)
{
    VkPipelineStageFlags stage = VK_PIPELINE_STAGE_TRANSFER_BIT;
    VkTimelineSemaphoreSubmitInfo ts = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                        .waitSemaphoreValueCount = 1, .pWaitSemaphoreValues = &value};
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pNext = &ts, .waitSemaphoreCount = 1,
                       .pWaitSemaphores = &sem, .pWaitDstStageMask = &stage, .commandBufferCount = 1,
                       .pCommandBuffers = &w->cmd};
    return vkResetFences(a->device, 1, &w->fence) == VK_SUCCESS && vkQueueSubmit(a->queue, 1, &si, w->fence) == VK_SUCCESS;
}

static void test_app_device(const char *path)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_2, true)) {
        test_failures++;
        return;
    }
    app_work w;
    vkllm_model *m = NULL, *untold = NULL;
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    app_device_params(&a, true, &mp);
    if (!app_work_create(&a, &w) || vkllm_model_load(path, &mp, &m) != VKLLM_OK) {
        CHECK(false, "the application's work or the load: %s", vkllm_last_error());
        goto done;
    }
    uint32_t n_vocab = vkllm_model_n_vocab(m);
    float *want = malloc(n_vocab * sizeof *want);
    vkllm_context *ref = new_context(m, 0), *c = new_context(m, 0);
    const float *logits = NULL;
    if (want && ref && vkllm_decode(ref, prompt, N_PROMPT, &logits) == VKLLM_OK)
        memcpy(want, logits, n_vocab * sizeof *want);
    else
        CHECK(false, "reference: %s", vkllm_last_error());
    VkSemaphore sem = VK_NULL_HANDLE;
    uint64_t value = 0, reached = 0;
    if (want && c && vkllm_decode_submit(c, prompt, N_PROMPT) == VKLLM_OK &&
        vkllm_context_timeline(c, &sem, &value) == VKLLM_OK) {
        CHECK(value > 0, "a value after the submission");
        CHECK(app_submit_after(&a, &w, sem, value), "the application's submission");
        CHECK(vkWaitForFences(a.device, 1, &w.fence, VK_TRUE, 60000000000ull) == VK_SUCCESS, "the application's fence");
        CHECK(vkGetSemaphoreCounterValue(a.device, sem, &reached) == VK_SUCCESS && reached >= value,
              "the semaphore is at %llu, below %llu", (unsigned long long)reached, (unsigned long long)value);
        CHECK(vkllm_decode_wait(c, 1000000000ull, &logits) == VKLLM_OK && logits, "wait: %s", vkllm_last_error());
        CHECK(logits && !memcmp(logits, want, n_vocab * sizeof *want), "the logits differ from a blocking decode");
        printf("the application's submission waited for value %llu\n", (unsigned long long)value);
    } else
        CHECK(false, "submit and timeline: %s", vkllm_last_error());
    vkllm_context_free(c);
    vkllm_context_free(ref);
    free(want);

    /* The same device, the features not told: no timeline. */
    vkllm_model_default_params(&mp);
    app_device_params(&a, false, &mp);
    if (vkllm_model_load(path, &mp, &untold) == VKLLM_OK) {
        vkllm_context *u = new_context(untold, 0);
        CHECK(u && vkllm_context_timeline(u, &sem, &value) == VKLLM_ERR_UNSUPPORTED, "features not told: supported?");
        CHECK(strstr(vkllm_last_error(), "vk_enabled_features") != NULL, "message: %s", vkllm_last_error());
        vkllm_context_free(u);
    } else
        CHECK(false, "load: %s", vkllm_last_error());
done:
    vkllm_model_free(untold);
    vkllm_model_free(m);
    app_work_destroy(&a, &w);
    app_device_destroy(&a);
}

int main(void)
{
    char path[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/timeline-tiny-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q8_0, .path = path, .seed = 5};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    for (int i = 0; i < N_PROMPT; i++)
        prompt[i] = 3 + i * 37 % 500;
    if (st == VKLLM_OK) {
        test_own_device(path);
        test_app_device(path);
    }
    remove(path);
    CHECK(app_device_messages() == 0, "%u validation message(s) on the application's instance", app_device_messages());
    return test_finish("timeline");
}

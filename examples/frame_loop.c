/* A game's frame loop that generates text on the side (README: Embedding): one Vulkan device and queue,
 * the application's, shared with vkllm through the application's queue lock. Every frame (60 per second)
 * the application records and submits its own work (a clear of a 4 MiB buffer, standing in for
 * rendering) and waits for it, as presenting would; vkllm meanwhile decodes a prompt and then samples
 * tokens with vkllm_decode_submit/vkllm_decode_poll, never blocking the frame, each of its submissions
 * kept under max_gpu_us_per_submit. At the end it prints the frame-time percentiles, tok/s, vkllm's
 * longest submission and the text.
 *
 *     frame_loop MODEL.gguf [BUDGET_US|PERCENT% [SECONDS [N_TOKENS]]]    (defaults: 30000, 3, 32)
 *
 * PERCENT%: the budget is that share of one token's GPU time, measured first (the fastest of a few
 * tokens): below 100, vkllm must split each token into groups of layers.
 *
 * Exit status: 0 if text was produced and no vkllm submission took longer than the budget (GPU
 * timestamps), 1 otherwise, 77 if the model file is absent. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vulkan/vulkan.h>

#include <vkllm.h>

#define FRAME_NS 16666667.0
#define MAX_FRAMES 4096
#define CLEAR_BYTES (4u << 20)

typedef struct app_vulkan {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t family;
    pthread_mutex_t queue_lock;   /* the engine's lock of its queue, taken by vkllm too */
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
} app_vulkan;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void lock_queue(void *user) { pthread_mutex_lock(&((app_vulkan *)user)->queue_lock); }
static void unlock_queue(void *user) { pthread_mutex_unlock(&((app_vulkan *)user)->queue_lock); }

/* The first device with a compute queue family; its buffer, command buffer and fence for the frames. */
static bool app_create(app_vulkan *a)
{
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "frame_loop",
                             .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    uint32_t n = 1;
    if (vkCreateInstance(&ici, NULL, &a->instance) != VK_SUCCESS)
        return false;
    VkResult r = vkEnumeratePhysicalDevices(a->instance, &n, &a->physical);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0)
        return false;
    VkQueueFamilyProperties families[16];
    uint32_t n_families = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(a->physical, &n_families, families);
    for (a->family = 0; a->family < n_families; a->family++)
        if (families[a->family].queueFlags & VK_QUEUE_COMPUTE_BIT)
            break;
    if (a->family == n_families)
        return false;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = a->family,
                                   .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    if (vkCreateDevice(a->physical, &dci, NULL, &a->device) != VK_SUCCESS)
        return false;
    vkGetDeviceQueue(a->device, a->family, 0, &a->queue);
    pthread_mutex_init(&a->queue_lock, NULL);

    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = CLEAR_BYTES,
                              .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT};
    if (vkCreateBuffer(a->device, &bci, NULL, &a->buffer) != VK_SUCCESS)
        return false;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(a->device, a->buffer, &req);
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)__builtin_ctz(req.memoryTypeBits)};
    if (vkAllocateMemory(a->device, &mai, NULL, &a->memory) != VK_SUCCESS ||
        vkBindBufferMemory(a->device, a->buffer, a->memory, 0) != VK_SUCCESS)
        return false;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = a->family};
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vkCreateCommandPool(a->device, &pci, NULL, &a->pool) != VK_SUCCESS)
        return false;
    cai.commandPool = a->pool;
    return vkAllocateCommandBuffers(a->device, &cai, &a->cmd) == VK_SUCCESS &&
           vkCreateFence(a->device, &fci, NULL, &a->fence) == VK_SUCCESS;
}

/* The application's own work for one frame, recorded anew, submitted under its queue lock and waited for. */
static bool app_frame(app_vulkan *a, uint32_t frame)
{
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (vkResetCommandBuffer(a->cmd, 0) != VK_SUCCESS || vkBeginCommandBuffer(a->cmd, &bi) != VK_SUCCESS)
        return false;
    vkCmdFillBuffer(a->cmd, a->buffer, 0, VK_WHOLE_SIZE, frame);
    if (vkEndCommandBuffer(a->cmd) != VK_SUCCESS || vkResetFences(a->device, 1, &a->fence) != VK_SUCCESS)
        return false;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &a->cmd};
    lock_queue(a);
    VkResult r = vkQueueSubmit(a->queue, 1, &si, a->fence);
    unlock_queue(a);
    return r == VK_SUCCESS && vkWaitForFences(a->device, 1, &a->fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS;
}

static void app_destroy(app_vulkan *a)
{
    if (a->device) {
        vkDeviceWaitIdle(a->device);
        vkDestroyFence(a->device, a->fence, NULL);
        vkDestroyCommandPool(a->device, a->pool, NULL);
        vkDestroyBuffer(a->device, a->buffer, NULL);
        vkFreeMemory(a->device, a->memory, NULL);
        vkDestroyDevice(a->device, NULL);
        pthread_mutex_destroy(&a->queue_lock);
    }
    if (a->instance)
        vkDestroyInstance(a->instance, NULL);
}

/* At the loading screen: the prompt and a token decoded once and forgotten, so that the first
 * submissions in the loop do not include the driver's first-use shader compilation (lavapipe's is
 * inside the GPU time) nor the recording of the graphs. */
static vkllm_status warm_up(vkllm_context *ctx, const int32_t *prompt, size_t n_prompt)
{
    const float *logits;
    vkllm_status st = vkllm_decode(ctx, prompt, n_prompt, &logits);
    if (st == VKLLM_OK)
        st = vkllm_decode(ctx, prompt, 1, &logits);
    if (st == VKLLM_OK)
        st = vkllm_context_truncate(ctx, 0);
    return st;
}

/* One token's GPU time in microseconds: the fastest of a few after the prompt, in a context without a
 * budget (0 on failure). */
static double token_gpu_us(vkllm_model *model, const int32_t *prompt, size_t n_prompt)
{
    vkllm_context *ctx = NULL;
    const float *logits;
    double best = 0;
    if (vkllm_context_create(model, NULL, &ctx) != VKLLM_OK)
        return 0;
    vkllm_context_set_timing(ctx, true);
    if (vkllm_decode(ctx, prompt, n_prompt, &logits) == VKLLM_OK)
        for (int i = 0; i < 8 && vkllm_decode(ctx, &prompt[i % n_prompt], 1, &logits) == VKLLM_OK; i++) {
            double us = vkllm_context_last_gpu_ns(ctx) / 1e3;
            best = i == 0 || us < best ? us : best;
        }
    vkllm_context_free(ctx);
    return best;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [BUDGET_US [SECONDS [N_TOKENS]]]\n", argv[0]);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        printf("skipped: %s not found\n", argv[1]);
        return 77;
    }
    fclose(f);
    uint32_t budget_us = argc > 2 ? (uint32_t)atol(argv[2]) : 30000;
    double budget_share = argc > 2 && strchr(argv[2], '%') ? atof(argv[2]) / 100 : 0;
    double seconds = argc > 3 ? atof(argv[3]) : 3.0;
    int n_predict = argc > 4 ? atoi(argv[4]) : 32;

    static app_vulkan a;
    static double frame_ms[MAX_FRAMES];
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_sampler *sampler = NULL;
    vkllm_detokenizer *detok = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    char text[4096] = "";
    size_t text_len = 0;
    int rc = 1, n_generated = 0;
    uint32_t n_frames = 0;
    if (!app_create(&a)) {
        printf("FAIL: the application's Vulkan device could not be created\n");
        goto done;
    }

    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    mp.vk_instance = a.instance;
    mp.vk_physical_device = a.physical;
    mp.vk_device = a.device;
    mp.vk_queue = a.queue;
    mp.vk_queue_family = a.family;
    mp.vk_queue_lock = lock_queue;
    mp.vk_queue_unlock = unlock_queue;
    mp.vk_queue_lock_user = &a;
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 256;
    vkllm_sampler_params sp;
    vkllm_sampler_default_params(&sp);
    sp.temperature = 0;
    const char *p = "Once upon a time";
    if (vkllm_model_load(argv[1], &mp, &model) != VKLLM_OK ||
        vkllm_tokenize(model, p, strlen(p), true, false, &prompt, &n_prompt) != VKLLM_OK) {
        printf("FAIL: %s\n", vkllm_last_error());
        goto done;
    }
    if (budget_share > 0) {
        double token_us = token_gpu_us(model, prompt, n_prompt);
        budget_us = (uint32_t)(budget_share * token_us);
        printf("one token: %.0f us of GPU time; budget %u us\n", token_us, budget_us);
    }
    cp.max_gpu_us_per_submit = budget_us;
    if (budget_us == 0 || vkllm_context_create(model, &cp, &ctx) != VKLLM_OK ||
        vkllm_sampler_create(model, &sp, &sampler) != VKLLM_OK || vkllm_detokenizer_create(model, &detok) != VKLLM_OK ||
        warm_up(ctx, prompt, n_prompt) != VKLLM_OK || vkllm_decode_submit(ctx, prompt, n_prompt) != VKLLM_OK) {
        printf("FAIL: %s\n", budget_us ? vkllm_last_error() : "no budget");
        goto done;
    }
    const char *piece;
    size_t len;
    for (size_t i = 0; i < n_prompt; i++)
        if (vkllm_detokenizer_push(detok, prompt[i], &piece, &len) == VKLLM_OK && text_len + len < sizeof text) {
            memcpy(text + text_len, piece, len);
            text_len += len;
        }

    bool generating = true;
    double longest = 0;   /* vkllm's longest submission in the loop, read after each step (prompt chunk or token) */
    uint32_t pos = vkllm_context_position(ctx);
    double start = now_ns(), first_token = 0;
    while (n_frames < MAX_FRAMES && now_ns() - start < seconds * 1e9 && generating) {
        double t0 = now_ns();
        if (!app_frame(&a, n_frames)) {
            printf("FAIL: the application's frame %u\n", n_frames);
            goto done;
        }
        /* vkllm's turn: take what the GPU finished, never wait for it. */
        const float *logits;
        vkllm_status st = vkllm_decode_poll(ctx, &logits);
        if (vkllm_context_position(ctx) != pos) {
            pos = vkllm_context_position(ctx);
            double us = vkllm_context_last_submit_gpu_us(ctx);
            longest = us > longest ? us : longest;
        }
        if (st == VKLLM_OK) {
            int32_t id = vkllm_sampler_sample(sampler, logits);
            if (!n_generated++)
                first_token = now_ns();
            if (vkllm_detokenizer_push(detok, id, &piece, &len) == VKLLM_OK && text_len + len < sizeof text) {
                memcpy(text + text_len, piece, len);
                text_len += len;
            }
            generating = n_generated < n_predict && !vkllm_token_is_eog(model, id);
            if (generating)
                st = vkllm_decode_submit(ctx, &id, 1);
        }
        if (st != VKLLM_OK && st != VKLLM_NOT_READY) {
            printf("FAIL: %s\n", vkllm_last_error());
            goto done;
        }
        frame_ms[n_frames++] = (now_ns() - t0) / 1e6;
        struct timespec until = {0};
        double next = start + n_frames * FRAME_NS, left = next - now_ns();
        if (left > 0) {
            until.tv_nsec = (long)left;
            nanosleep(&until, NULL);
        }
    }
    double end = now_ns();
    if (generating && vkllm_decode_wait(ctx, UINT64_MAX, NULL) != VKLLM_OK)
        printf("note: %s\n", vkllm_last_error());
    text[text_len] = '\0';

    qsort(frame_ms, n_frames, sizeof *frame_ms, by_value);
    printf("%u frames in %.2f s: frame time p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n", n_frames,
           (end - start) / 1e9, n_frames ? frame_ms[n_frames / 2] : 0.0, n_frames ? frame_ms[n_frames * 95 / 100] : 0.0,
           n_frames ? frame_ms[n_frames * 99 / 100] : 0.0, n_frames ? frame_ms[n_frames - 1] : 0.0);
    printf("%d tokens, %.1f tok/s after the prompt; longest vkllm submission %.0f us (budget %u us)\n", n_generated,
           n_generated > 1 ? (n_generated - 1) / ((end - first_token) / 1e9) : 0.0, longest, budget_us);
    printf("text: %s\n", text);
    if (n_generated == 0)
        printf("FAIL: no text generated\n");
    else if (longest <= 0 || longest > budget_us)
        printf("FAIL: a vkllm submission took %.0f us, over the budget of %u us\n", longest, budget_us);
    else
        rc = 0;
done:
    vkllm_free(prompt);
    vkllm_detokenizer_free(detok);
    vkllm_sampler_free(sampler);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    app_destroy(&a);
    return rc;
}

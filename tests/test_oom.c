/* Out of device memory and device loss.
 *
 * Memory: a device with a memory limit (vkr_device_options.memory_limit, the API's memory_limit, the CLI's
 * --memory-limit) refuses allocations past it with VKLLM_ERR_OUT_OF_DEVICE_MEMORY and a clear message.
 * A model load or context creation that fails that way frees everything it had taken: the device's
 * allocated bytes (vkr_memory_allocated) are back where they were, and the sanitizer build checks that no
 * host memory leaks. Under a limit the allocator sizes blocks exactly, so the numbers are comparable.
 *
 * Device loss: VK_ERROR_DEVICE_LOST maps to VKLLM_ERR_DEVICE_LOST ("device lost"); a lost device fails
 * every later submission and wait at once (no hang), and everything can still be freed. The loss is
 * injected (vkr_device_inject_loss, VKLLM_DEBUG_LOSE_DEVICE), and the GPU timeout is exercised on a fence
 * that is never submitted. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "host/tools/synth.h"
#include "runtime/graph.h"
#include "util.h"
#include "vkllm.h"

#define MIB (1ull << 20)
/* The staging ring (runtime/memory.c): two 32 MiB host-visible slots, taken at device creation. */
#define STAGING (64 * MIB)

static char model_path[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static vkr_device *open_device(test_device *t, uint64_t limit)
{
    vkr_device *dev = NULL;
    vkr_device_options o = {.memory_limit = limit};
    vkllm_status st = vkr_device_create(t->inst, &o, &dev);
    CHECK(st == VKLLM_OK, "device with a %.1f MiB limit: %s", limit / (double)MIB, vkr_last_error());
    return st == VKLLM_OK ? dev : NULL;
}

static void test_status_mapping(void)
{
    vkllm_status st = vkr_check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit");
    CHECK(st == VKLLM_ERR_DEVICE_LOST, "VK_ERROR_DEVICE_LOST maps to %d", st);
    CHECK(strstr(vkr_last_error(), "device lost") != NULL, "message: %s", vkr_last_error());
    CHECK(!strcmp(vkr_status_name(VKLLM_ERR_DEVICE_LOST), "device lost"), "status name");
    st = vkr_check(VK_ERROR_OUT_OF_DEVICE_MEMORY, "vkAllocateMemory");
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "VK_ERROR_OUT_OF_DEVICE_MEMORY maps to %d", st);
    CHECK(!strcmp(vkr_status_name(VKLLM_ERR_OUT_OF_DEVICE_MEMORY), "out of device memory"), "status name");
}

/* Runtime level: exact accounting of what a failed load or context gives back. */
static void test_limits(test_device *t, const gguf_file *f)
{
    /* Room for the staging ring and a little: the weights (about 0.5 MiB) cannot fit. */
    vkr_device *dev = open_device(t, STAGING + 128 * 1024);
    if (!dev)
        return;
    uint64_t base = vkr_memory_allocated(dev);
    llama_model *m = (llama_model *)1;
    vkllm_status st = vkl_llama_model_load(dev, f, NULL, NULL, &m);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "load under a tiny limit: %d %s", st, vkr_last_error());
    CHECK(strstr(vkr_last_error(), "out of device memory") != NULL, "message: %s", vkr_last_error());
    CHECK(m == NULL, "a failed load must leave *out NULL");
    CHECK(vkr_memory_allocated(dev) == base, "a failed load left %llu bytes allocated (base %llu)",
          (unsigned long long)vkr_memory_allocated(dev), (unsigned long long)base);
    fprintf(stderr, "ok: load under the limit: %s\n", vkr_last_error());
    vkr_device_destroy(dev);

    /* Room for the model and a small context, not for a 16384-position one (8 MiB of K/V). */
    dev = open_device(t, STAGING + 4 * MIB);
    if (!dev)
        return;
    base = vkr_memory_allocated(dev);
    st = vkl_llama_model_load(dev, f, NULL, NULL, &m);
    CHECK(st == VKLLM_OK, "load under a 4 MiB limit: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        uint64_t with_model = vkr_memory_allocated(dev);
        CHECK(with_model > base, "loading took no memory?");
        llama_context *c = (llama_context *)1;
        st = vkl_llama_context_create(m, 16384, 64, &c);
        CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "16384-position context under the limit: %d %s", st,
              vkr_last_error());
        CHECK(c == NULL, "a failed context must leave *out NULL");
        CHECK(vkr_memory_allocated(dev) == with_model, "a failed context left %llu bytes (model alone: %llu)",
              (unsigned long long)vkr_memory_allocated(dev), (unsigned long long)with_model);
        fprintf(stderr, "ok: context under the limit: %s\n", vkr_last_error());
        /* The model still works in a context that fits. */
        st = vkl_llama_context_create(m, 64, 16, &c);
        CHECK(st == VKLLM_OK, "small context: %s", vkr_last_error());
        if (st == VKLLM_OK) {
            int32_t ids[3] = {1, 20, 30};
            CHECK(vkl_llama_eval(c, ids, 3, 0, false, NULL) == VKLLM_OK, "eval: %s", vkr_last_error());
            vkl_llama_context_free(c);
        }
        CHECK(vkr_memory_allocated(dev) == with_model, "a freed context did not give its memory back");
        vkl_llama_model_free(m);
        CHECK(vkr_memory_allocated(dev) == base, "a freed model did not give its memory back");
    }
    vkr_device_destroy(dev);
}

/* The public API: memory_limit in vkllm_model_params. */
static void test_api_limit(void)
{
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    vkllm_model *m = (vkllm_model *)1;
    mp.memory_limit = 1 * MIB; /* not even the staging ring fits */
    vkllm_status st = vkllm_model_load(model_path, &mp, &m);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY && m == NULL, "1 MiB limit: %d %s", st, vkllm_last_error());
    CHECK(strstr(vkllm_last_error(), "out of device memory") != NULL, "message: %s", vkllm_last_error());
    fprintf(stderr, "ok: API 1 MiB limit: %s\n", vkllm_last_error());
    mp.memory_limit = STAGING + 128 * 1024;
    st = vkllm_model_load(model_path, &mp, &m);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY && m == NULL, "staging+128 KiB limit: %d %s", st, vkllm_last_error());
    mp.memory_limit = STAGING + 4 * MIB;
    st = vkllm_model_load(model_path, &mp, &m);
    CHECK(st == VKLLM_OK, "4 MiB limit: %s", vkllm_last_error());
    if (st != VKLLM_OK)
        return;
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 16384;
    vkllm_context *c = (vkllm_context *)1;
    st = vkllm_context_create(m, &cp, &c);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY && c == NULL, "big context: %d %s", st, vkllm_last_error());
    cp.n_ctx = 32;
    st = vkllm_context_create(m, &cp, &c);
    CHECK(st == VKLLM_OK, "small context after a failed one: %s", vkllm_last_error());
    if (st == VKLLM_OK) {
        int32_t t = 1;
        const float *logits;
        CHECK(vkllm_decode(c, &t, 1, &logits) == VKLLM_OK, "decode: %s", vkllm_last_error());
        vkllm_context_free(c);
    }
    vkllm_model_free(m);
}

/* Device loss, injected at the next submission: the decode that hits it and everything after fail with
 * VKLLM_ERR_DEVICE_LOST at once; freeing works. */
static void test_device_lost(test_device *t, const gguf_file *f)
{
    vkr_device *dev = open_device(t, 0);
    if (!dev)
        return;
    llama_model *m = NULL;
    llama_context *c = NULL;
    vkllm_status st = vkl_llama_model_load(dev, f, NULL, NULL, &m);
    CHECK(st == VKLLM_OK, "load: %s", vkr_last_error());
    if (st == VKLLM_OK)
        st = vkl_llama_context_create(m, 32, 8, &c);
    CHECK(st == VKLLM_OK, "context: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        int32_t ids[4] = {1, 7, 8, 9};
        CHECK(vkl_llama_eval(c, ids, 4, 0, false, NULL) == VKLLM_OK, "eval before the loss: %s", vkr_last_error());
        vkr_device_inject_loss(dev, 1);
        double t0 = now_s();
        st = vkl_llama_eval(c, ids, 1, 4, false, NULL);
        CHECK(st == VKLLM_ERR_DEVICE_LOST && strstr(vkr_last_error(), "device lost"), "eval at the loss: %d %s", st,
              vkr_last_error());
        fprintf(stderr, "ok: decode on a lost device: %s\n", vkr_last_error());
        st = vkl_llama_eval(c, ids, 4, 0, false, NULL);
        CHECK(st == VKLLM_ERR_DEVICE_LOST, "eval after the loss: %d %s", st, vkr_last_error());
        uint32_t word = 0;
        vkr_buffer *b = NULL;
        if (vkr_buffer_create(dev, 256, VKR_MEMORY_DEVICE, &b) == VKLLM_OK) {
            CHECK(vkr_buffer_upload(dev, b, 0, &word, 4) == VKLLM_ERR_DEVICE_LOST, "upload on a lost device");
            CHECK(vkr_buffer_download(dev, b, 0, &word, 4) == VKLLM_ERR_DEVICE_LOST, "download on a lost device");
            vkr_buffer_destroy(dev, b);
        }
        CHECK(now_s() - t0 < 5.0, "calls on a lost device took %.1f s", now_s() - t0);
    }
    double t0 = now_s();
    vkl_llama_context_free(c);
    vkl_llama_model_free(m);
    vkr_device_destroy(dev);
    CHECK(now_s() - t0 < 5.0, "freeing on a lost device took %.1f s", now_s() - t0);
}

/* The wait gives up after the GPU timeout on work that never finishes (a fence never submitted stands in
 * for a hung GPU) and treats the device as lost, instead of waiting forever. */
static void test_gpu_timeout(test_device *t)
{
    vkr_device *dev = open_device(t, 0);
    if (!dev)
        return;
    VkFence fence = VK_NULL_HANDLE;
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vkCreateFence(dev->device, &fci, NULL, &fence) == VK_SUCCESS) {
        dev->gpu_timeout_s = 1;
        double t0 = now_s();
        vkllm_status st = vkr_wait_fence(dev, fence, "test wait");
        double dt = now_s() - t0;
        CHECK(st == VKLLM_ERR_DEVICE_LOST && dev->lost, "timeout: %d %s", st, vkr_last_error());
        CHECK(strstr(vkr_last_error(), "did not finish within 1 s") != NULL, "message: %s", vkr_last_error());
        CHECK(dt >= 0.9 && dt < 10.0, "the wait took %.1f s with a 1 s timeout", dt);
        fprintf(stderr, "ok: GPU timeout after %.1f s: %s\n", dt, vkr_last_error());
        vkDestroyFence(dev->device, fence, NULL);
    }
    vkr_device_destroy(dev);
}

/* The public API with the loss injected by the environment: the load fails cleanly. */
static void test_api_device_lost(void)
{
    setenv("VKLLM_DEBUG_LOSE_DEVICE", "2", 1);
    vkllm_model *m = (vkllm_model *)1;
    vkllm_status st = vkllm_model_load(model_path, NULL, &m);
    unsetenv("VKLLM_DEBUG_LOSE_DEVICE");
    CHECK(st == VKLLM_ERR_DEVICE_LOST && m == NULL, "load with a lost device: %d %s", st, vkllm_last_error());
    CHECK(strstr(vkllm_last_error(), "device lost") != NULL, "message: %s", vkllm_last_error());
    fprintf(stderr, "ok: API load on a lost device: %s\n", vkllm_last_error());
}

int main(void)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(model_path, sizeof model_path, "%s/oom-tiny-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q8_0, .path = model_path, .seed = 5};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return test_finish("oom");
    test_status_mapping();
    gguf_file *f = NULL;
    test_device t;
    st = vkl_gguf_open(model_path, &f);
    CHECK(st == VKLLM_OK, "open: %s", vkr_last_error());
    if (st == VKLLM_OK && test_device_open(&t)) {
        test_limits(&t, f);
        test_device_lost(&t, f);
        test_gpu_timeout(&t);
        test_device_close(&t);
    }
    vkl_gguf_close(f);
    test_api_limit();
    test_api_device_lost();
    remove(model_path);
    return test_finish("oom");
}

/* An application that embeds vkllm the way an engine does, linked against libvkllm.so or libvkllm.a
 * (tests/embed/CMakeLists.txt builds all four combinations):
 * - it has Vulkan entry points of its own: its own copy of volk (APP_OWN_VOLK), whose vkCreateInstance
 *   pointer and volk* functions have the same names as the ones inside vkllm, or the loader's prototypes
 *   from -lvulkan, which a Vulkan pointer in libvkllm.a would shadow;
 * - it defines functions named like ggml's (an engine that also runs whisper.cpp or llama.cpp), exported
 *   (-rdynamic) as a plugin host's are.
 * It creates its own instance, has vkllm generate the stories260K greedy continuation, then checks its own
 * Vulkan state is untouched and vkllm never called its ggml look-alikes.
 *
 *     embed_app MODEL.gguf      (exit 77 if the model is absent) */
#ifdef APP_OWN_VOLK
#include "volk.h"
#else
#include <vulkan/vulkan.h>
#endif

#include <stdio.h>
#include <string.h>

#include "vkllm.h"

static int clash_calls;

/* ggml's names and signatures; vkllm's internal functions had the same names before they took the vkl_ prefix. */
int64_t gguf_find_key(const void *ctx, const char *key)
{
    (void)ctx;
    (void)key;
    clash_calls++;
    return -1;
}
void llama_model_free(void *model)
{
    (void)model;
    clash_calls++;
}
const char *ggml_type_name(int type)
{
    (void)type;
    clash_calls++;
    return "app";
}

static int fail(const char *what)
{
    printf("FAIL: %s\n", what);
    return 1;
}

static int app_vulkan_create(VkInstance *instance)
{
#ifdef APP_OWN_VOLK
    if (volkInitialize() != VK_SUCCESS)
        return fail("the application's volkInitialize");
#endif
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    if (vkCreateInstance(&ci, NULL, instance) != VK_SUCCESS)
        return fail("the application's vkCreateInstance");
#ifdef APP_OWN_VOLK
    volkLoadInstanceOnly(*instance);
#endif
    return 0;
}

/* The application's Vulkan still works on its own instance after vkllm created and destroyed its own. */
static int app_vulkan_check(VkInstance instance)
{
#ifdef APP_OWN_VOLK
    if (volkGetLoadedInstance() != instance)
        return fail("vkllm replaced the application's volk instance");
#endif
    uint32_t n = 0;
    if (vkEnumeratePhysicalDevices(instance, &n, NULL) != VK_SUCCESS || n == 0)
        return fail("the application's vkEnumeratePhysicalDevices after vkllm");
    vkDestroyInstance(instance, NULL);
    return 0;
}

/* Greedy continuation of "Once upon a time" (the golden text of tests/cli_run.sh). */
static int generate(const char *path)
{
    static const char expect[] = "Once upon a time, there was a little girl named Lily";
    const char *prompt = "Once upon a time";
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_sampler *sampler = NULL;
    vkllm_sampler_params sp;
    vkllm_sampler_default_params(&sp);
    sp.temperature = 0;
    int32_t ids[64], *prompt_ids = NULL;
    size_t n = 0;
    char *text = NULL;
    size_t len;
    const float *logits;
    int rc = 1;
    if (vkllm_model_load(path, NULL, &model) != VKLLM_OK || vkllm_context_create(model, NULL, &ctx) != VKLLM_OK ||
        vkllm_sampler_create(model, &sp, &sampler) != VKLLM_OK ||
        vkllm_tokenize(model, prompt, strlen(prompt), true, false, &prompt_ids, &n) != VKLLM_OK ||
        vkllm_decode(ctx, prompt_ids, n, &logits) != VKLLM_OK) {
        printf("FAIL: %s\n", vkllm_last_error());
        goto done;
    }
    memcpy(ids, prompt_ids, n * sizeof *ids);
    while (n < 24) {
        ids[n] = vkllm_sampler_sample(sampler, logits);
        if (vkllm_decode(ctx, &ids[n++], 1, &logits) != VKLLM_OK) {
            printf("FAIL: %s\n", vkllm_last_error());
            goto done;
        }
    }
    if (vkllm_detokenize(model, ids, n, &text, &len) != VKLLM_OK) {
        printf("FAIL: %s\n", vkllm_last_error());
        goto done;
    }
    printf("%s\n", text);
    rc = strncmp(text, expect, strlen(expect)) != 0 ? fail("not the golden text") : 0;
done:
    vkllm_free(text);
    vkllm_free(prompt_ids);
    vkllm_sampler_free(sampler);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return fail("usage: embed_app MODEL.gguf");
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        printf("skipped: %s not found\n", argv[1]);
        return 77;
    }
    fclose(f);
    if (strcmp(vkllm_version(), VKLLM_VERSION_STRING) != 0)
        return fail("vkllm_version() is not the header's VKLLM_VERSION_STRING");

    VkInstance instance;
    if (app_vulkan_create(&instance) || generate(argv[1]) || app_vulkan_check(instance))
        return 1;
    if (clash_calls)
        return fail("vkllm called the application's gguf_find_key, llama_model_free or ggml_type_name");
    printf("ok: vkllm %s generated next to the application's own Vulkan and ggml names\n", vkllm_version());
    return 0;
}

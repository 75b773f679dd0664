/* Parameter structs that grow (include/vkllm.h, "Parameter structs"): the *_default_params macros write
 * the caller's sizeof; a struct from an older header (a smaller size, garbage past it) is read only up to
 * its size; one from a newer header (a larger size) is accepted when the unknown part is zero and refused
 * otherwise; an uninitialized size is refused with a message naming the default_params function. */
#include <stddef.h>
#include <string.h>

#include "util.h"
#include "vkllm.h"

/* A caller whose header is newer than the library: one more field. */
typedef struct newer_context_params {
    vkllm_context_params known;
    uint64_t future_field;
} newer_context_params;

static void test_context_params(vkllm_model *m)
{
    vkllm_context_params p;
    memset(&p, 0xEE, sizeof p);
    vkllm_context_default_params(&p);
    CHECK(p.size == sizeof p && p.n_ctx == 0 && p.n_batch == 0 && !p.abort, "defaults: size %u", p.size);

    /* An older header's struct ended before `abort`: the garbage there must not be called. */
    memset(&p, 0xEE, sizeof p);
    vkllm_context_default_params_sized(&p, offsetof(vkllm_context_params, abort));
    CHECK(p.size == offsetof(vkllm_context_params, abort), "old size written %u", p.size);
    CHECK(p.abort == (vkllm_abort_fn)(uintptr_t)0xEEEEEEEEEEEEEEEEull, "default_params wrote past the caller's size");
    p.n_ctx = 32;
    p.n_batch = 2;
    vkllm_context *c = NULL;
    vkllm_status st = vkllm_context_create(m, &p, &c);
    CHECK(st == VKLLM_OK && vkllm_context_n_ctx(c) == 32, "old-size params: %s", vkllm_last_error());
    const int32_t ids[5] = {1, 2, 3, 4, 5};
    const float *logits;
    if (c)   /* 3 batches: the garbage abort pointer would be called between them */
        CHECK(vkllm_decode(c, ids, 5, &logits) == VKLLM_OK, "decode: %s", vkllm_last_error());
    vkllm_context_free(c);
    c = NULL;

    newer_context_params big;
    memset(&big, 0xEE, sizeof big);
    vkllm_context_default_params(&big.known);
    vkllm_context_default_params_sized(&big.known, sizeof big);
    CHECK(big.known.size == sizeof big && big.future_field == 0, "newer header's defaults: size %u, field %llx",
          big.known.size, (unsigned long long)big.future_field);
    st = vkllm_context_create(m, &big.known, &c);
    CHECK(st == VKLLM_OK, "newer header, unknown field zero: %s", vkllm_last_error());
    vkllm_context_free(c);
    c = NULL;
    big.future_field = 1;
    st = vkllm_context_create(m, &big.known, &c);
    CHECK(st == VKLLM_ERR_UNSUPPORTED && !c && strstr(vkllm_last_error(), "does not know"),
          "newer header, unknown field set: %d %s", st, vkllm_last_error());

    vkllm_context_params zero;
    memset(&zero, 0, sizeof zero);
    st = vkllm_context_create(m, &zero, &c);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && !c && strstr(vkllm_last_error(), "vkllm_context_params.size is 0") &&
              strstr(vkllm_last_error(), "vkllm_context_default_params"),
          "uninitialized params: %d %s", st, vkllm_last_error());
}

static void test_sampler_and_model_params(vkllm_model *m, const char *path)
{
    vkllm_sampler_params sp;
    vkllm_sampler_default_params(&sp);
    CHECK(sp.size == sizeof sp && sp.top_k == 40 && sp.repeat_last_n == 64, "sampler defaults");
    /* An older header without `seed`: the library's default seed, not the garbage. */
    memset(&sp, 0xEE, sizeof sp);
    vkllm_sampler_default_params_sized(&sp, offsetof(vkllm_sampler_params, seed));
    vkllm_sampler *s = NULL;
    CHECK(vkllm_sampler_create(m, &sp, &s) == VKLLM_OK, "old sampler params: %s", vkllm_last_error());
    vkllm_sampler_free(s);

    vkllm_model_params mp;
    memset(&mp, 0, sizeof mp);
    vkllm_model *bad = NULL;
    vkllm_status st = vkllm_model_load(path, &mp, &bad);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && !bad && strstr(vkllm_last_error(), "vkllm_model_params.size is 0"),
          "uninitialized model params: %d %s", st, vkllm_last_error());
}

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    char model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", path);
    vkllm_model *m = NULL;
    /* An older header's model params: they ended before the application-device fields (garbage there). */
    vkllm_model_params mp;
    memset(&mp, 0xEE, sizeof mp);
    vkllm_model_default_params_sized(&mp, offsetof(vkllm_model_params, vk_instance));
    if (vkllm_model_load(model_path, &mp, &m) != VKLLM_OK) {
        fprintf(stderr, "FAIL: old-size model params: %s\n", vkllm_last_error());
        return 1;
    }
    test_context_params(m);
    test_sampler_and_model_params(m, model_path);
    vkllm_model_free(m);
    return test_finish("params");
}

/* The log callback (vkllm_log_set): the library's warnings and Vulkan validation messages reach an
 * installed callback with their level and user pointer, long messages arrive whole, NULL restores the
 * default stderr writer, and a callback swapped while other threads log always gets its own user pointer. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/format/gguf.h"
#include "host/text/tokenizer.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "util.h"
#include "vkllm.h"

typedef struct captured {
    int count;
    vkllm_log_level level;
    char message[4096];
} captured;

static void capture(vkllm_log_level level, const char *message, void *user)
{
    captured *c = user;
    c->count++;
    c->level = level;
    snprintf(c->message, sizeof c->message, "%s", message);
}

/* Writes a vocabulary-only byte-level BPE GGUF whose tokenizer.ggml.pre is `pre` and loads its tokenizer:
 * an unknown name makes the tokenizer guess one and warn. */
static vkllm_status load_vocab_with_pre(const char *pre)
{
    char path[512];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/test_log_vocab_%d.gguf", dir && *dir ? dir : "/tmp", (int)getpid());
    static const char *const tokens[] = {"a", "b", "ab"};
    static const char *const merges[] = {"a b"};
    gguf_writer *w = NULL;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st != VKLLM_OK)
        return st;
    st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2");
    if (st == VKLLM_OK)
        st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.pre", pre);
    if (st == VKLLM_OK)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, 3);
    if (st == VKLLM_OK)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    vkllm_status closed = vkl_gguf_writer_close(w);
    if (st == VKLLM_OK)
        st = closed;
    gguf_file *f = NULL;
    if (st == VKLLM_OK)
        st = vkl_gguf_open(path, &f);
    if (st == VKLLM_OK) {
        tokenizer *tok = NULL;
        st = vkl_tokenizer_load(f, &tok);
        vkl_tokenizer_free(tok);
        vkl_gguf_close(f);
    }
    remove(path);
    return st;
}

static void test_tokenizer_warning(void)
{
    captured c = {0};
    vkllm_log_set(capture, &c);
    vkllm_status st = load_vocab_with_pre("no-such-pre");
    CHECK(st == VKLLM_OK, "vocab with an unknown pre-tokenizer: %s", vkr_last_error());
    CHECK(c.count == 1, "one warning expected, got %d", c.count);
    CHECK(c.level == VKLLM_LOG_WARNING, "level %d, expected VKLLM_LOG_WARNING", (int)c.level);
    CHECK(strstr(c.message, "\"no-such-pre\" is not known") != NULL, "message: %s", c.message);
    CHECK(strchr(c.message, '\n') == NULL, "the message carries no newline: %s", c.message);

    /* a known pre-tokenizer logs nothing */
    c.count = 0;
    st = load_vocab_with_pre("gpt-2");
    CHECK(st == VKLLM_OK && c.count == 0, "gpt-2 vocab: status %d, %d message(s)", st, c.count);
    vkllm_log_set(NULL, NULL);
}

/* Longer than the logger's stack buffer: must arrive whole, not cut. */
static void test_long_message(void)
{
    captured c = {0};
    char text[3000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    vkllm_log_set(capture, &c);
    vkr_log(VKLLM_LOG_DEBUG, "start %s end", text);
    vkllm_log_set(NULL, NULL);
    CHECK(c.count == 1 && c.level == VKLLM_LOG_DEBUG, "long message: %d call(s), level %d", c.count, (int)c.level);
    CHECK(strlen(c.message) == sizeof text - 1 + 10 && strncmp(c.message, "start x", 7) == 0 &&
              strcmp(c.message + strlen(c.message) - 5, "x end") == 0,
          "long message arrived with %zu bytes", strlen(c.message));
}

/* With NULL the default writer is back: the warning goes to stderr as "vkllm: warning: ...", and the
 * previous callback hears nothing. stderr is pointed at a file for the duration. */
static void test_default_restored(void)
{
    captured c = {0};
    vkllm_log_set(capture, &c);
    vkllm_log_set(NULL, &c);   /* the user pointer is ignored with the default */

    char path[512];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/test_log_stderr_%d.txt", dir && *dir ? dir : "/tmp", (int)getpid());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *f = fopen(path, "w");
    CHECK(saved >= 0 && f, "cannot redirect stderr to %s", path);
    if (saved < 0 || !f) {
        if (f)
            fclose(f);
        return;
    }
    dup2(fileno(f), STDERR_FILENO);
    vkllm_status st = load_vocab_with_pre("no-such-pre");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(f);

    size_t len = 0;
    char *written = test_read_file(path, &len);
    remove(path);
    CHECK(st == VKLLM_OK, "vocab with an unknown pre-tokenizer: %s", vkr_last_error());
    CHECK(c.count == 0, "the removed callback was called %d time(s)", c.count);
    static const char want[] =
        "vkllm: warning: tokenizer.ggml.pre \"no-such-pre\" is not known; using the gpt-2 pre-tokenizer\n";
    CHECK(written && strcmp(written, want) == 0, "stderr after restoring the default: %s", written ? written : "(none)");
    free(written);
}

/* A validation error (a buffer of size 0 is invalid usage) reaches the callback at VKLLM_LOG_ERROR. */
static void test_validation_message(void)
{
    test_device td = {0};
    if (!test_device_open(&td)) {
        test_failures++;
        return;
    }
    captured c = {0};
    uint32_t before = vkr_validation_message_count();
    vkllm_log_set(capture, &c);
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = 0,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
    };
    VkBuffer b = VK_NULL_HANDLE;
    if (vkCreateBuffer(td.dev->device, &bci, NULL, &b) == VK_SUCCESS && b)
        vkDestroyBuffer(td.dev->device, b, NULL);
    vkllm_log_set(NULL, NULL);
    uint32_t seen = vkr_validation_message_count() - before;
    test_expected_validation_messages += seen;
    if (seen == 0) {
        fprintf(stderr, "note: no validation layer: its route to the callback is not checked\n");
    } else {
        CHECK(c.count == (int)seen, "%u validation message(s) but %d callback call(s)", seen, c.count);
        CHECK(c.level == VKLLM_LOG_ERROR, "validation error at level %d", (int)c.level);
        CHECK(strncmp(c.message, "vulkan validation: ", 19) == 0, "validation message: %.200s", c.message);
    }
    test_device_close(&td);
}

/* Threads log while the main thread swaps between two callbacks: each must get its own user pointer. */
static int tag_a, tag_b;
static _Atomic int wrong_pairs, calls;

static void callback_a(vkllm_log_level level, const char *message, void *user)
{
    (void)level, (void)message;
    calls++;
    if (user != &tag_a)
        wrong_pairs++;
}

static void callback_b(vkllm_log_level level, const char *message, void *user)
{
    (void)level, (void)message;
    calls++;
    if (user != &tag_b)
        wrong_pairs++;
}

static void *log_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        vkr_log(VKLLM_LOG_DEBUG, "message %d", i);
    return NULL;
}

static void test_threads(void)
{
    vkllm_log_set(callback_a, &tag_a);
    pthread_t threads[3];
    int started = 0;
    for (int i = 0; i < 3; i++)
        if (pthread_create(&threads[i], NULL, log_many, NULL) == 0)
            started++;
    for (int i = 0; i < 20000; i++)
        vkllm_log_set(i % 2 ? callback_a : callback_b, i % 2 ? (void *)&tag_a : (void *)&tag_b);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    vkllm_log_set(NULL, NULL);
    CHECK(started == 3, "started %d of 3 threads", started);
    CHECK(calls == started * 20000, "%d callback calls for %d messages", (int)calls, started * 20000);
    CHECK(wrong_pairs == 0, "%d call(s) got the other callback's user pointer", (int)wrong_pairs);
}

int main(void)
{
    test_tokenizer_warning();
    test_long_message();
    test_default_restored();
    test_validation_message();
    test_threads();
    return test_finish("log");
}

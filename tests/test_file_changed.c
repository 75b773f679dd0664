/* A model file that changes under the reader: truncated by another process after vkl_gguf_open, or while
 * vkllm_model_load uploads its weights (the progress callback truncates it). Each must be the error "file
 * changed or truncated while loading", never a SIGBUS from touching a mapping past the new end of file.
 * Also the reader's growing read of the metadata (a vocabulary larger than its first 4 MiB read), and a
 * FIFO, which vkl_gguf_open refuses at once instead of waiting for a writer. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/tools/synth.h"
#include "util.h"
#include "vkllm.h"

static char tmp_dir[400];

/* After vkl_gguf_open the file is cut to its first 64 bytes: the metadata stays readable (it is a copy) and
 * reading a tensor is an I/O error naming the cause. */
static void test_truncated_after_open(const char *tiny)
{
    char path[512];
    snprintf(path, sizeof path, "%s/file-changed-open-%d.gguf", tmp_dir, (int)getpid());
    size_t len = 0;
    char *bytes = test_read_file(tiny, &len);
    FILE *out = bytes ? fopen(path, "wb") : NULL;
    bool written = out && fwrite(bytes, 1, len, out) == len;
    written = out && fclose(out) == 0 && written;
    free(bytes);
    CHECK(written, "copy %s to %s", tiny, path);
    if (!written)
        return;
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "gguf_open: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    CHECK(truncate(path, 64) == 0, "truncate %s", path);
    const char *arch = NULL;
    uint64_t arch_len = 0;
    CHECK(vkl_gguf_get_str(f, "general.architecture", &arch, &arch_len) && arch_len == 5 && !memcmp(arch, "llama", 5),
          "metadata after truncation");
    const gguf_tensor *t = vkl_gguf_find_tensor(f, "token_embd.weight");
    CHECK(t != NULL, "token_embd.weight");
    if (t) {
        void *data = NULL;
        st = vkl_gguf_tensor_load(f, t, &data);
        CHECK(st == VKLLM_ERR_IO && data == NULL && strstr(vkr_last_error(), "file changed or truncated while loading"),
              "tensor read after truncation: status %d, '%s'", (int)st, vkr_last_error());
        free(data);
    }
    vkl_gguf_close(f);
    remove(path);
}

typedef struct truncate_on_progress {
    const char *path;
    int calls;
} truncate_on_progress;

static bool cut_file(float fraction, void *user)
{
    (void)fraction;
    truncate_on_progress *t = user;
    if (t->calls++ == 0)
        CHECK(truncate(t->path, 0) == 0, "truncate %s", t->path);
    return true;
}

/* The file is emptied after the first tensor is on the device: the load fails with the message. */
static void test_truncated_while_loading(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/file-changed-load-%d.gguf", tmp_dir, (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q4_0, .path = path, .seed = 5};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    truncate_on_progress t = {path, 0};
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    mp.progress = cut_file;
    mp.progress_user = &t;
    vkllm_model *m = NULL;
    st = vkllm_model_load(path, &mp, &m);
    if (st == VKLLM_ERR_NO_DEVICE) {
        printf("no Vulkan device: the load while truncating is not run\n");
    } else {
        CHECK(t.calls > 0, "the progress callback was never called");
        CHECK(st == VKLLM_ERR_IO && m == NULL && strstr(vkllm_last_error(), "file changed or truncated while loading"),
              "load of a file emptied meanwhile: status %d, '%s'", (int)st, vkllm_last_error());
    }
    vkllm_model_free(m);
    remove(path);
}

/* A vocabulary of 80,000 strings of 60 bytes (about 5.4 MiB of metadata): more than the first read. */
static void test_large_metadata(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/file-changed-meta-%d.gguf", tmp_dir, (int)getpid());
    enum { N = 80000, LEN = 60 };
    char *pool = malloc((size_t)N * (LEN + 1));
    const char **strs = malloc(N * sizeof *strs);
    CHECK(pool && strs, "out of memory");
    gguf_writer *w = NULL;
    vkllm_status st = pool && strs ? vkl_gguf_writer_open(path, &w) : VKLLM_ERR_OUT_OF_HOST_MEMORY;
    if (st == VKLLM_OK) {
        for (int i = 0; i < N; i++) {
            char *s = pool + (size_t)i * (LEN + 1);
            snprintf(s, LEN + 1, "%060d", i);
            strs[i] = s;
        }
        const uint64_t ne[1] = {32};
        float v[32];
        for (int i = 0; i < 32; i++)
            v[i] = (float)i;
        st = vkl_gguf_writer_kv_arr_str(w, "big.strings", strs, N);
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_tensor_info(w, "t", GGML_TYPE_F32, 1, ne);
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_tensor_data(w, v, sizeof v);
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_close(w);
        else
            vkl_gguf_writer_abort(w);
    }
    CHECK(st == VKLLM_OK, "write %s: %s", path, vkr_last_error());
    gguf_file *f = NULL;
    if (st == VKLLM_OK && (st = vkl_gguf_open(path, &f)) == VKLLM_OK) {
        const char *s;
        uint64_t n;
        CHECK(vkl_gguf_get_arr_str(f, "big.strings", N - 1, &s, &n) && n == LEN && !memcmp(s, strs[N - 1], LEN),
              "last string");
        const gguf_tensor *t = vkl_gguf_find_tensor(f, "t");
        float back[32] = {0};
        CHECK(t && vkl_gguf_tensor_read(f, t, back) == VKLLM_OK && back[31] == 31.0f, "tensor after large metadata");
    }
    CHECK(st == VKLLM_OK, "gguf_open of large metadata: %s", vkr_last_error());
    vkl_gguf_close(f);
    free(pool);
    free(strs);
    remove(path);
}

static void test_fifo(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/file-changed-fifo-%d", tmp_dir, (int)getpid());
    CHECK(mkfifo(path, 0600) == 0, "mkfifo %s", path);
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);   /* before the fix: blocks until a writer opens the FIFO */
    CHECK(st == VKLLM_ERR_IO && f == NULL && strstr(vkr_last_error(), "not a regular file"), "FIFO: status %d, '%s'",
          (int)st, vkr_last_error());
    remove(path);
}

int main(void)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s", tmp && *tmp ? tmp : "/tmp");
    alarm(300);   /* a regression that blocks (the FIFO) fails instead of hanging ctest */
    char tiny[512];
    snprintf(tiny, sizeof tiny, "%s/file-changed-tiny-%d.gguf", tmp_dir, (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q8_0, .path = tiny, .seed = 3};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    if (st == VKLLM_OK)
        test_truncated_after_open(tiny);
    remove(tiny);
    test_large_metadata();
    test_fifo();
    test_truncated_while_loading();
    return test_finish("file_changed");
}
